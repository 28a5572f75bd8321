//! The Events API: the `url_verification` challenge, and `app_mention` (`@Vigilo run RB-00012`)
//! handled like the slash command. Other events are acknowledged and ignored.

use std::sync::Arc;

use axum::http::StatusCode;
use slack_morphism::prelude::*;

use super::Ack;
use super::state::{Bot, Origin};
use crate::chat::markdown::decode_slack_entities;

/// Handles an Events API body (already verified).
pub(crate) async fn event_body(bot: &Arc<Bot>, body: &[u8]) -> Ack {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ack::Refuse(StatusCode::BAD_REQUEST, "malformed event JSON");
    };
    if value.get("type").and_then(|t| t.as_str()) == Some("url_verification") {
        return match value.get("challenge").and_then(|c| c.as_str()) {
            Some(c) => Ack::Challenge(c.to_owned()),
            None => Ack::Refuse(StatusCode::BAD_REQUEST, "malformed url_verification"),
        };
    }
    match serde_json::from_value::<SlackPushEvent>(value) {
        Ok(SlackPushEvent::EventCallback(cb)) => push_event(bot, cb).await,
        Ok(_) => Ack::Empty,
        Err(e) => {
            // An event type this version does not model: acknowledge it, or Slack retries.
            tracing::debug!(error = %e, "ignored an event that does not parse");
            Ack::Empty
        }
    }
}

/// Handles one event callback (HTTP or Socket Mode).
pub(crate) async fn push_event(bot: &Arc<Bot>, cb: SlackPushEventCallback) -> Ack {
    let SlackEventCallbackBody::AppMention(mention) = cb.event else {
        return Ack::Empty;
    };
    // Slack redelivers an event with the same id.
    if !bot.dedupe.first_time(cb.event_id.0.as_bytes()) {
        bot.metrics.duplicate();
        return Ack::Empty;
    }
    let origin = Origin {
        team: cb.team_id.0,
        user: mention.user.0,
        channel: mention.channel.0,
        thread_ts: mention.origin.thread_ts.map(|t| t.0),
    };
    let text = decode_slack_entities(&strip_mentions(
        mention.content.text.as_deref().unwrap_or(""),
    ));
    let task_bot = bot.clone();
    bot.spawn(async move {
        let bot = task_bot;
        let acting = match bot.identify(&origin).await {
            Ok(a) => a,
            Err(reply) => return bot.tell(None, &origin, &reply).await,
        };
        let _turn = bot.channel_turn(&origin.team, &origin.channel).await;
        let replies = bot.engine.handle_text(&acting.ctx, &text).await;
        bot.deliver(acting.workspace, &origin, &replies).await;
    });
    Ack::Empty
}

/// The text of a mention without the leading `<@U…>` mentions of the bot.
fn strip_mentions(text: &str) -> String {
    let mut rest = text.trim_start();
    while let Some(after) = rest.strip_prefix("<@") {
        match after.find('>') {
            Some(end) => rest = after[end + 1..].trim_start(),
            None => break,
        }
    }
    rest.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_leading_mentions() {
        assert_eq!(strip_mentions("<@U0BOT> run RB-00001"), "run RB-00001");
        assert_eq!(strip_mentions("  <@U0BOT|vigilo>  status"), "status");
        assert_eq!(strip_mentions("help <@U1>"), "help <@U1>");
    }
}
