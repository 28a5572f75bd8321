//! The platform-neutral chat engine: what every surface (Slack, the console, later Discord)
//! shares.
//!
//! - [`command`]: the command grammar and its parser.
//! - [`reply`]: the reply model (blocks, buttons, visibility, symbolic message targets).
//! - [`engine`]: [`ChatEngine`], which handles commands and button presses by calling
//!   [`vigilo_core::service::Vigilo`].
//! - [`cards`] and [`views`]: the messages themselves, as pure functions.
//! - [`markdown`]: CommonMark to Slack `mrkdwn` (escaped) and to plain text.
//! - [`limits`]: platform limits and the splitting that keeps replies inside them.
//! - [`budget`]: the message budget (characters over all text fields of one message).
//! - [`prepare`]: markdown made self-contained before it is split (list numbers, links).
//! - [`refs`]: [`MessageRefs`], resolving symbolic targets to a surface's message ids.
//! - [`errors`]: service and parse errors as private replies.
//!
//! # How a surface drives the engine
//!
//! 1. Work out who is acting: a [`vigilo_core::service::Who`] (Slack: the team through
//!    `Vigilo::workspace_for_slack_team`, the user through `Vigilo::user_for_chat`; when either
//!    fails, show [`errors::error_reply`] of the error privately — it says how to get access).
//! 2. Build a [`ChatContext`] with the platform name and the channel id.
//! 3. A typed command: [`ChatEngine::handle_text`] with the text (with or without `/runbook`;
//!    Slack: decode its entities first with [`markdown::decode_slack_entities`]).
//!    A button press: [`ChatEngine::click`] with the button's `action_id` and `value`. When the
//!    [`Button`] has a [`Prompt`] (Skip…, Failed…, Abort…), ask for the text first (Slack: a
//!    modal) and pass it; the engine refuses an empty one.
//! 4. Show every returned [`Reply`] in order: [`Visibility::Private`] only to the actor (Slack:
//!    ephemeral); place it with [`MessageRefs::place`] (new message, thread reply, or in-place
//!    update) and, after posting, [`MessageRefs::remember`] its [`Reply::anchor`]. Render
//!    sections, field values and context with [`markdown::to_mrkdwn`], code with
//!    [`markdown::code_to_mrkdwn`], headers, labels and [`Reply::text`] with
//!    [`markdown::escape_mrkdwn`]: then nothing can ping a channel, and every block and every
//!    message is within Slack's limits ([`limits`], [`budget`]). A long step or answer comes as
//!    several replies in order; for a step, only the last (the card with the buttons) is
//!    anchored.
//!
//! The engine never fails: errors come back as private replies. It holds no state besides the
//! service, so one engine (it is `Clone`) serves every channel and workspace concurrently.

pub mod budget;
pub mod cards;
pub mod command;
pub mod engine;
pub mod errors;
pub mod format;
pub mod limits;
pub mod markdown;
pub mod prepare;
pub mod refs;
pub mod reply;
pub mod stats;
pub mod views;

pub use command::{Command, ParseError, Subcommand, parse};
pub use engine::{ChatContext, ChatEngine};
pub use refs::{MessageRefs, Placement};
pub use reply::{
    Anchor, Attachment, Badge, Block, Button, ButtonStyle, ButtonValue, Field, Prompt, Reply,
    Target, Visibility,
};
