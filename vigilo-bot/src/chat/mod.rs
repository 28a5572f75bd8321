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
//! - [`refs`]: [`MessageRefs`], resolving symbolic targets to a surface's message ids.
//! - [`errors`]: service and parse errors as private replies.

pub mod cards;
pub mod command;
pub mod engine;
pub mod errors;
pub mod format;
pub mod limits;
pub mod markdown;
pub mod refs;
pub mod reply;
pub mod views;

pub use command::{Command, ParseError, Subcommand, parse};
pub use engine::{ChatContext, ChatEngine};
pub use refs::{MessageRefs, Placement};
pub use reply::{
    Anchor, Badge, Block, Button, ButtonStyle, ButtonValue, Field, Prompt, Reply, Target,
    Visibility,
};
