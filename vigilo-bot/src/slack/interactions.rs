//! Button clicks (`block_actions`) and reason modals (`view_submission`).
//!
//! A click is checked before it is acknowledged: a known action id, a button value of ours
//! naming the workspace of the clicker's team, a known team and user. Done and Approve go to
//! the engine in the background; Skip…, Failed… and Abort… first open a modal (`views.open`)
//! whose submission carries the reason back. An empty reason is refused in the modal itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::http::StatusCode;
use slack_morphism::prelude::*;

use super::Ack;
use super::blocks::{
    ButtonPayload, ModalContext, PROMPT_CALLBACK_ID, REASON_ACTION_ID, REASON_BLOCK_ID,
    prompt_modal,
};
use super::state::{Acting, Bot, Origin, SlackRef, committed};
use crate::chat::markdown::decode_slack_entities;
use crate::chat::reply::ACTIONS;
use crate::chat::{Anchor, ButtonValue};

/// Handles an interaction payload. `key` identifies the delivery for redelivery checks;
/// `received` is when it arrived (for the click → committed latency).
pub(crate) async fn interaction(
    bot: &Arc<Bot>,
    ev: SlackInteractionEvent,
    key: &[u8],
    received: Instant,
) -> Ack {
    match ev {
        SlackInteractionEvent::BlockActions(ev) => block_actions(bot, ev, key, received).await,
        SlackInteractionEvent::ViewSubmission(ev) => view_submission(bot, ev, key, received).await,
        _ => Ack::Empty,
    }
}

fn refuse(status: StatusCode, message: &'static str) -> Ack {
    Ack::Refuse(status, message)
}

async fn block_actions(
    bot: &Arc<Bot>,
    ev: SlackInteractionBlockActionsEvent,
    key: &[u8],
    received: Instant,
) -> Ack {
    let Some(action) = ev.actions.as_ref().and_then(|a| a.first()) else {
        return refuse(StatusCode::BAD_REQUEST, "no action in the payload");
    };
    let action_id = action.action_id.0.clone();
    if !ACTIONS.contains(&action_id.as_str()) {
        return refuse(StatusCode::BAD_REQUEST, "unknown action");
    }
    let Some(raw_value) = action.value.clone() else {
        return refuse(StatusCode::BAD_REQUEST, "malformed button value");
    };
    let Some(payload) = ButtonPayload::decode(&raw_value) else {
        return refuse(StatusCode::BAD_REQUEST, "malformed button value");
    };
    let Ok(button) = payload.value.parse::<ButtonValue>() else {
        return refuse(StatusCode::BAD_REQUEST, "malformed button value");
    };
    let Some(user) = &ev.user else {
        return refuse(StatusCode::BAD_REQUEST, "no user in the payload");
    };
    let (message_ts, container_channel, is_ephemeral) = match &ev.container {
        SlackInteractionActionContainer::Message(m) => (
            Some(m.message_ts.0.clone()),
            m.channel_id.as_ref().map(|c| c.0.clone()),
            m.is_ephemeral.unwrap_or(false),
        ),
        _ => (None, None, false),
    };
    let Some(channel) = ev
        .channel
        .as_ref()
        .map(|c| c.id.0.clone())
        .or(container_channel)
    else {
        return refuse(StatusCode::BAD_REQUEST, "no channel in the payload");
    };
    let thread_ts = ev
        .message
        .as_ref()
        .and_then(|m| m.origin.thread_ts.as_ref())
        .map(|t| t.0.clone());
    let origin = Origin {
        team: ev.team.id.0.clone(),
        user: user.id.0.clone(),
        channel,
        thread_ts,
    };
    let acting = match identify(bot, &origin, key).await {
        Ok(a) => a,
        Err(ack) => return ack,
    };
    if payload.workspace != acting.workspace {
        tracing::warn!(team = %origin.team, user = %origin.user, "click on another workspace's button refused");
        return refuse(
            StatusCode::FORBIDDEN,
            "this button belongs to another workspace; nothing changed",
        );
    }
    if !bot.dedupe.first_time(key) {
        bot.metrics.duplicate();
        return Ack::Empty;
    }
    // The clicked card and its thread, so updates find them even after a restart.
    if !is_ephemeral {
        if let Some(ts) = &message_ts {
            let card = SlackRef {
                channel: origin.channel.clone(),
                ts: ts.clone(),
            };
            bot.refs.remember(acting.workspace, button.anchor(), card);
        }
        if let Some(ts) = &origin.thread_ts {
            let header = SlackRef {
                channel: origin.channel.clone(),
                ts: ts.clone(),
            };
            bot.refs.remember(
                acting.workspace,
                Anchor::Execution(button.execution),
                header,
            );
        }
    }
    if let Some(prompt) = payload.prompt() {
        let context = ModalContext {
            action_id,
            value: raw_value,
            channel: origin.channel.clone(),
            message_ts: if is_ephemeral { None } else { message_ts },
            thread_ts: origin.thread_ts.clone(),
        };
        let trigger = ev.trigger_id.0.clone();
        let task_bot = bot.clone();
        bot.spawn(async move {
            let view = prompt_modal(&prompt, &context);
            let _ = task_bot.web.open_view(&trigger, view).await;
        });
        return Ack::Empty;
    }
    spawn_click(
        bot,
        acting,
        origin,
        action_id,
        payload.value,
        None,
        received,
    );
    Ack::Empty
}

async fn view_submission(
    bot: &Arc<Bot>,
    ev: SlackInteractionViewSubmissionEvent,
    key: &[u8],
    received: Instant,
) -> Ack {
    let SlackView::Modal(modal) = &ev.view.view else {
        return Ack::Empty;
    };
    if modal.callback_id.as_ref().map(|c| c.0.as_str()) != Some(PROMPT_CALLBACK_ID) {
        return Ack::Empty;
    }
    let Some(context) = modal
        .private_metadata
        .as_deref()
        .and_then(|m| serde_json::from_str::<ModalContext>(m).ok())
    else {
        return refuse(StatusCode::BAD_REQUEST, "malformed modal metadata");
    };
    if !ACTIONS.contains(&context.action_id.as_str()) {
        return refuse(StatusCode::BAD_REQUEST, "unknown action");
    }
    let Some(payload) = ButtonPayload::decode(&context.value) else {
        return refuse(StatusCode::BAD_REQUEST, "malformed button value");
    };
    let reason = ev
        .view
        .state_params
        .state
        .as_ref()
        .and_then(|s| s.values.get(&SlackBlockId(REASON_BLOCK_ID.to_owned())))
        .and_then(|b| b.get(&SlackActionId(REASON_ACTION_ID.to_owned())))
        .and_then(|v| v.value.as_deref())
        .map(decode_slack_entities)
        .unwrap_or_default();
    let reason = reason.trim().to_owned();
    if reason.is_empty() {
        let errors = HashMap::from([(
            REASON_BLOCK_ID.to_owned(),
            "Please give a reason; nothing was changed.".to_owned(),
        )]);
        return Ack::View(Box::new(SlackViewSubmissionResponse::Errors(
            SlackViewSubmissionErrorsResponse::new(errors),
        )));
    }
    let origin = Origin {
        team: ev.team.id.0.clone(),
        user: ev.user.id.0.clone(),
        channel: context.channel.clone(),
        thread_ts: context.thread_ts.clone(),
    };
    let acting = match identify(bot, &origin, key).await {
        Ok(a) => a,
        Err(ack) => return ack,
    };
    if payload.workspace != acting.workspace {
        return refuse(
            StatusCode::FORBIDDEN,
            "this button belongs to another workspace; nothing changed",
        );
    }
    if !bot.dedupe.first_time(key) {
        bot.metrics.duplicate();
        return Ack::Empty;
    }
    spawn_click(
        bot,
        acting,
        origin,
        context.action_id,
        payload.value,
        Some(reason),
        received,
    );
    Ack::Empty
}

/// Resolves the clicker; an unknown team or user is told privately how to get access (once
/// per delivery) and the click is acknowledged without effect.
async fn identify(bot: &Arc<Bot>, origin: &Origin, key: &[u8]) -> Result<Acting, Ack> {
    match bot.identify(origin).await {
        Ok(a) => Ok(a),
        Err(reply) => {
            tracing::info!(team = %origin.team, user = %origin.user, "click from an unknown Slack team or user");
            if bot.dedupe.first_time(key) {
                let task_bot = bot.clone();
                let origin = origin.clone();
                bot.spawn(async move { task_bot.tell(None, &origin, &reply).await });
            }
            Err(Ack::Empty)
        }
    }
}

/// Sends the click to the engine in the background, in the channel's turn, and shows the
/// replies once it answered (after the write committed).
fn spawn_click(
    bot: &Arc<Bot>,
    acting: Acting,
    origin: Origin,
    action_id: String,
    value: String,
    text: Option<String>,
    received: Instant,
) {
    let task_bot = bot.clone();
    bot.spawn(async move {
        let bot = task_bot;
        let started = Instant::now();
        let _turn = bot.channel_turn(&origin.team, &origin.channel).await;
        let turn = Instant::now();
        let replies = bot
            .engine
            .click(&acting.ctx, &action_id, &value, text)
            .await;
        let answered = Instant::now();
        let done = committed(&replies);
        if done {
            bot.metrics
                .committed(answered.duration_since(received).as_secs_f64());
        }
        bot.deliver(acting.workspace, &origin, &replies).await;
        let delivered = Instant::now();
        let stages = [
            ("queued", started.duration_since(received)),
            ("channel", turn.duration_since(started)),
            ("engine", answered.duration_since(turn)),
            ("deliver", delivered.duration_since(answered)),
        ];
        for (stage, took) in stages {
            bot.metrics.click_stage(stage, took.as_secs_f64());
        }
        tracing::debug!(
            action_id,
            value,
            committed = done,
            queued_us = stages[0].1.as_micros() as u64,
            channel_us = stages[1].1.as_micros() as u64,
            engine_us = stages[2].1.as_micros() as u64,
            deliver_us = stages[3].1.as_micros() as u64,
            "click handled"
        );
    });
}
