//! Service errors as private replies that say what to do next.

use vigilo_core::error::{Error, ErrorKind};

use super::command::{ParseError, Subcommand};
use super::format::capitalize;
use super::markdown::escape_markdown_keeping_code;
use super::reply::{Block, Reply};
use super::views;

/// A service error as a private reply. Denials keep the service's wording, which names the role
/// needed; conflicts name who acted first; storage failures say nothing was changed.
pub fn error_reply(error: &Error) -> Reply {
    let message = error.to_string();
    let text = match error.kind() {
        ErrorKind::Denied => format!("Not allowed: {message}"),
        ErrorKind::Internal => {
            tracing::warn!(error = %message, "service call failed");
            format!(
                "Vigilo could not complete this ({message}). Nothing was changed; try again in a moment."
            )
        }
        ErrorKind::Tampered => {
            tracing::error!(error = %message, "audit trail tampering found");
            format!(
                "{}. Tell the workspace owner and your auditors (`vigilo audit verify` names the entry).",
                capitalize(&message)
            )
        }
        ErrorKind::NotFound | ErrorKind::Conflict | ErrorKind::Refused => capitalize(&message),
    };
    Reply::private_markdown(escape_markdown_keeping_code(&text), text)
}

/// A command that did not parse, as a private reply: the problem and the usage meant; for an
/// unknown command, the closest command and the command list.
pub fn parse_error_reply(error: &ParseError) -> Reply {
    let text = capitalize(&error.to_string());
    let mut blocks = vec![Block::Section(escape_markdown_keeping_code(&text))];
    match error {
        ParseError::Unknown { suggestion, .. } => {
            if let Some(s) = suggestion {
                blocks.push(Block::Section(format!(
                    "`{}` — {}",
                    s.usage(),
                    escape_markdown_keeping_code(s.summary())
                )));
            }
            blocks.extend(views::help_blocks(None));
        }
        ParseError::Usage { command, .. } if *command == Subcommand::Help => {
            blocks.extend(views::help_blocks(None));
        }
        _ => {}
    }
    Reply::private(text, blocks)
}
