//! Service errors as private replies that say what to do next.

use vigilo_core::change::ChangeError;
use vigilo_core::error::{Error, ErrorKind, Rule, Thing};

use super::command::{ParseError, Subcommand};
use super::format::capitalize;
use super::markdown::escape_markdown_keeping_code;
use super::reply::{Block, Reply};
use super::views;

/// A service error as a private reply. Denials keep the service's wording, which names the role
/// needed; conflicts name who acted first; storage failures say nothing was changed.
pub fn error_reply(error: &Error) -> Reply {
    let message = chat_message(error);
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

/// The service's message for chat readers: the slash command that helps, or, for what only an
/// administrator at the command line can fix, the `vigilo` command to hand them.
fn chat_message(e: &Error) -> String {
    let hint = match e {
        Error::NotFound(n) => match n.thing {
            Thing::Runbook => "`/runbook list` shows the runbooks".to_owned(),
            Thing::Execution => "`/runbook status` shows the executions".to_owned(),
            Thing::SlackTeam => format!(
                "an admin can run `vigilo workspace link-slack <slug> --team {}`",
                n.name
            ),
            Thing::ChatIdentity => format!(
                "an admin can run `vigilo user add <handle> --role <role> --slack-id {}`",
                n.name
            ),
            _ => String::new(),
        },
        Error::Change(ChangeError::NeedsExecution { key, runbook }) => {
            format!("`/runbook run {runbook} {key}` starts one")
        }
        Error::Refused(r) if r.rule == Rule::Draft => "`/runbook publish` publishes it".to_owned(),
        _ => String::new(),
    };
    if hint.is_empty() {
        e.to_string()
    } else {
        format!("{e}; {hint}")
    }
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
