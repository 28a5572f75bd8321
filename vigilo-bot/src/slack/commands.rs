//! `/runbook …` slash commands: acknowledged at once, handled by the engine in the background,
//! answered with messages posted through the Web API (so they can be threaded and updated).

use std::sync::Arc;

use axum::http::StatusCode;
use slack_morphism::prelude::*;

use super::Ack;
use super::state::{Bot, Origin};
use crate::chat::Reply;
use crate::chat::markdown::decode_slack_entities;

/// Handles a slash command. `key` identifies the delivery (its body) for redelivery checks.
pub(crate) async fn command(bot: &Arc<Bot>, ev: SlackCommandEvent, key: &[u8]) -> Ack {
    let origin = Origin {
        team: ev.team_id.0,
        user: ev.user_id.0,
        channel: ev.channel_id.0,
        thread_ts: None,
    };
    if origin.team.is_empty() || origin.user.is_empty() || origin.channel.is_empty() {
        return Ack::Refuse(StatusCode::BAD_REQUEST, "malformed slash command");
    }
    let text = decode_slack_entities(ev.text.as_deref().unwrap_or(""));
    let acting = match bot.identify(&origin).await {
        Ok(a) => a,
        // Unknown team or user: the answer to the command itself says how to get access.
        Err(reply) => return Ack::Command(Box::new(ephemeral(&reply))),
    };
    if !bot.dedupe.first_time(key) {
        bot.metrics.duplicate();
        return Ack::Empty;
    }
    tracing::info!(team = %origin.team, user = %origin.user, channel = %origin.channel, "slash command");
    let task_bot = bot.clone();
    bot.spawn(async move {
        let bot = task_bot;
        let _turn = bot.channel_turn(&origin.team, &origin.channel).await;
        let replies = bot.engine.handle_text(&acting.ctx, &text).await;
        bot.deliver(acting.workspace, &origin, &replies).await;
    });
    Ack::Empty
}

/// A private reply as the immediate answer to a slash command.
fn ephemeral(reply: &Reply) -> SlackCommandEventResponse {
    let rendered = super::blocks::render(reply, vigilo_core::ids::WorkspaceId(uuid::Uuid::nil()));
    SlackCommandEventResponse::new(rendered.content())
        .with_response_type(SlackMessageResponseType::Ephemeral)
}
