//! Button clicks (`block_actions`) and reason modals (`view_submission`).
//!
//! A click is checked before it is acknowledged: a known action id, a button value of ours
//! naming the workspace of the clicker's team, a known team and user. Done and Approve go to
//! the engine in the background; Skip…, Failed… and Abort… first open a modal (`views.open`)
//! whose submission carries the reason back. An empty reason is refused in the modal itself.
//!
//! Payloads are read leniently ([`super::payload`]): org-wide installs (`"team": null`), clicks
//! without `response_url` or `trigger_id`, unknown blocks and fields. A button or modal Vigilo
//! did not make is acknowledged with a 200 and explained privately, never refused with a 400
//! that Slack would show as an error.

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
use super::payload::Interaction;
use super::state::{Acting, Bot, Origin, SlackRef, committed};
use crate::chat::markdown::decode_slack_entities;
use crate::chat::reply::{ACTION_REPORT, ACTIONS};
use crate::chat::{Anchor, ButtonValue, Reply};

/// What a click on a button Vigilo did not put there is told, privately.
const NOT_OURS: &str = "This button is not one of Vigilo's, or no longer valid; nothing changed. `/runbook status` shows where your executions stand.";

/// Handles an interaction payload. `key` identifies the delivery for redelivery checks;
/// `received` is when it arrived (for the click → committed latency). Every payload Slack can
/// send is acknowledged with a 200: what Vigilo does not handle is explained privately where
/// the payload says who and where, and changes nothing.
pub(crate) async fn interaction(
    bot: &Arc<Bot>,
    ev: Interaction,
    key: &[u8],
    received: Instant,
) -> Ack {
    match ev.kind.as_str() {
        "block_actions" => block_actions(bot, ev, key, received).await,
        "view_submission" => view_submission(bot, ev, key, received).await,
        other => {
            tracing::debug!(kind = other, "interaction not handled");
            Ack::Empty
        }
    }
}

fn refuse(status: StatusCode, message: &'static str) -> Ack {
    Ack::Refuse(status, message)
}

/// Where to answer an interaction privately, when the payload says who and where.
fn origin_of(ev: &Interaction) -> Option<Origin> {
    Some(Origin {
        team: ev.team.clone().or_else(|| ev.enterprise.clone())?,
        user: ev.user.clone()?,
        channel: ev.channel.clone()?,
        thread_ts: ev.thread_ts.clone(),
    })
}

/// Acknowledges an interaction Vigilo does not handle, explaining `why` privately (once per
/// delivery) when the payload says who and where and the team is known.
fn unhandled(bot: &Arc<Bot>, ev: &Interaction, key: &[u8], why: &'static str) -> Ack {
    tracing::info!(team = ?ev.team, user = ?ev.user, why, "interaction not handled");
    if let Some(origin) = origin_of(ev)
        && bot.dedupe.first_time(key)
    {
        let task_bot = bot.clone();
        bot.spawn(async move {
            let workspace = task_bot.identify(&origin).await.ok().map(|a| a.workspace);
            let reply = Reply::private_markdown(
                crate::chat::markdown::escape_markdown_keeping_code(NOT_OURS),
                NOT_OURS,
            );
            task_bot.tell(workspace, &origin, &reply).await;
        });
    }
    Ack::Empty
}

async fn block_actions(bot: &Arc<Bot>, ev: Interaction, key: &[u8], received: Instant) -> Ack {
    let Some(action) = ev.action.clone() else {
        return Ack::Empty;
    };
    let action_id = action.action_id.clone();
    if !ACTIONS.contains(&action_id.as_str()) {
        return unhandled(bot, &ev, key, "unknown action");
    }
    let Some(raw_value) = action.value.clone() else {
        return unhandled(bot, &ev, key, "button without a value");
    };
    let Some(payload) = ButtonPayload::decode(&raw_value) else {
        return unhandled(bot, &ev, key, "malformed button value");
    };
    let Ok(button) = payload.value.parse::<ButtonValue>() else {
        return unhandled(bot, &ev, key, "malformed button value");
    };
    let Some(origin) = origin_of(&ev) else {
        tracing::info!(team = ?ev.team, user = ?ev.user, channel = ?ev.channel, "click without team, user or channel");
        return Ack::Empty;
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
    let message_ts = ev.message_ts.clone();
    let is_ephemeral = ev.is_ephemeral;
    // The clicked card and its thread, so updates find them even after a restart. The Report
    // button sits on the summary, which is no anchored card.
    if !is_ephemeral {
        if let Some(ts) = message_ts.as_ref().filter(|_| action_id != ACTION_REPORT) {
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
        let Some(trigger) = ev.trigger_id.clone() else {
            // No trigger, no modal: say how to give the reason by typing instead.
            let reply = Reply::private_markdown(
                "This button needs a reason, and Slack sent no way to ask for it here; type `/runbook skip <reason>`, `/runbook fail <note>` or `/runbook abort <reason>` instead. Nothing changed.",
                "Type the command with a reason instead; nothing changed.",
            );
            let task_bot = bot.clone();
            let workspace = acting.workspace;
            bot.spawn(async move { task_bot.tell(Some(workspace), &origin, &reply).await });
            return Ack::Empty;
        };
        let context = ModalContext {
            action_id,
            value: raw_value,
            channel: origin.channel.clone(),
            message_ts: if is_ephemeral { None } else { message_ts },
            thread_ts: origin.thread_ts.clone(),
        };
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

/// A modal answer showing `message` under the reason input: the modal stays open.
fn modal_error(message: &str) -> Ack {
    let errors = HashMap::from([(REASON_BLOCK_ID.to_owned(), message.to_owned())]);
    Ack::View(Box::new(SlackViewSubmissionResponse::Errors(
        SlackViewSubmissionErrorsResponse::new(errors),
    )))
}

async fn view_submission(bot: &Arc<Bot>, ev: Interaction, key: &[u8], received: Instant) -> Ack {
    let Some(view) = &ev.view else {
        return Ack::Empty;
    };
    if view.callback_id.as_deref() != Some(PROMPT_CALLBACK_ID) {
        // Another app's or another flow's modal: closed, nothing done.
        return Ack::Empty;
    }
    let Some(context) = view
        .private_metadata
        .as_deref()
        .and_then(|m| serde_json::from_str::<ModalContext>(m).ok())
    else {
        return modal_error(
            "This form is not valid any more; nothing changed. Close it and press the button on the step again.",
        );
    };
    if !ACTIONS.contains(&context.action_id.as_str()) {
        return modal_error("This form is not one of Vigilo's; nothing changed.");
    }
    let Some(payload) = ButtonPayload::decode(&context.value) else {
        return modal_error("This form is not one of Vigilo's; nothing changed.");
    };
    let reason = view
        .input(REASON_BLOCK_ID, REASON_ACTION_ID)
        .map(|r| decode_slack_entities(&r))
        .unwrap_or_default();
    let reason = reason.trim().to_owned();
    if reason.is_empty() {
        return modal_error("Please give a reason; nothing was changed.");
    }
    let (Some(team), Some(user)) = (ev.team.clone().or(ev.enterprise.clone()), ev.user.clone())
    else {
        return modal_error("Slack did not say who submitted this form; nothing changed.");
    };
    let origin = Origin {
        team,
        user,
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
