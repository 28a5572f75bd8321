//! CLI errors: a kind that maps to the contract's exit code, and a message for people.

use std::io::Write;

use vigilo_core::change::ChangeError;
use vigilo_core::error::{ConflictKind, Error, ErrorKind, Rule, Thing};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The service refused or failed; its kind decides the exit code. The message is the
    /// service's, followed by the command that helps, chosen from the error's facts.
    #[error("{}", service_message(.0))]
    Service(#[from] Error),
    /// The command line is incomplete or contradictory (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Something named does not exist (exit 3).
    #[error("{0}")]
    NotFound(String),
    /// Permission denied (exit 4).
    #[error("{0}")]
    Denied(String),
    /// A conflict (exit 5).
    #[error("{0}")]
    Conflict(String),
    /// Refused by a rule, e.g. a runbook file with an error (exit 6).
    #[error("{0}")]
    Refused(String),
    /// `audit verify` found tampering (exit 7).
    #[error("{0}")]
    Tampered(String),
    /// The database or the machine failed (exit 1).
    #[error("{0}")]
    Internal(String),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Io(#[from] std::io::Error),
}

impl CliError {
    /// The kind printed as `error.kind` with `--json`.
    pub fn kind(&self) -> &'static str {
        match self {
            CliError::Service(e) => e.kind().as_str(),
            CliError::Usage(_) => "usage",
            CliError::NotFound(_) => ErrorKind::NotFound.as_str(),
            CliError::Denied(_) => ErrorKind::Denied.as_str(),
            CliError::Conflict(_) => ErrorKind::Conflict.as_str(),
            CliError::Refused(_) => ErrorKind::Refused.as_str(),
            CliError::Tampered(_) => "tampered",
            CliError::Internal(_) | CliError::Io(_) => ErrorKind::Internal.as_str(),
        }
    }

    /// The exit code of the CLI contract.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Service(e) => match e.kind() {
                ErrorKind::NotFound => 3,
                ErrorKind::Denied => 4,
                ErrorKind::Conflict => 5,
                ErrorKind::Refused => 6,
                ErrorKind::Tampered => 7,
                ErrorKind::Internal => 1,
            },
            CliError::Usage(_) => 2,
            CliError::NotFound(_) => 3,
            CliError::Denied(_) => 4,
            CliError::Conflict(_) => 5,
            CliError::Refused(_) => 6,
            CliError::Tampered(_) => 7,
            CliError::Internal(_) | CliError::Io(_) => 1,
        }
    }

    /// True when the output went to a pipe that was closed (`vigilo audit export | head`):
    /// not worth reporting.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Prints the error on stderr: `error: …` for people, `{"error":{…}}` with `--json`.
    pub fn report(&self, json: bool) {
        if self.is_broken_pipe() {
            return;
        }
        print_error(self.kind(), &self.to_string(), json);
    }
}

/// The service's message, with the `vigilo` command that helps next when the facts suggest
/// one. Core messages name no command: this is where the CLI's readers get theirs.
fn service_message(e: &Error) -> String {
    match hint(e) {
        Some(h) => format!("{e}; {h}"),
        None => e.to_string(),
    }
}

fn hint(e: &Error) -> Option<String> {
    Some(match e {
        Error::NotFound(n) => match n.thing {
            Thing::Workspace => "`vigilo workspace list` shows the workspaces".into(),
            Thing::Runbook => "`vigilo runbook list` shows the runbooks".into(),
            Thing::Execution => "`vigilo exec list` shows the executions".into(),
            Thing::Change => "`vigilo change list` shows the changes".into(),
            Thing::Incident => "`vigilo incident list` shows the incidents".into(),
            Thing::Member => "`vigilo user list` shows its members".into(),
            Thing::SlackTeam => format!(
                "link it with `vigilo workspace link-slack <slug> --team {}`",
                n.name
            ),
            Thing::ChatIdentity => format!(
                "`vigilo user add <handle> --role <role> --slack-id {}` maps it",
                n.name
            ),
            _ => return None,
        },
        Error::NotMember(m) if m.removed => "`vigilo user add` adds them again".into(),
        Error::NotMember(_) => "`vigilo user add` adds a member".into(),
        Error::Conflict(c) => match &c.kind {
            ConflictKind::Taken {
                thing: Thing::ChatIdentity,
                holder: Some(h),
            } => format!(
                "`vigilo user remove {}` removes that mapping",
                h.trim_start_matches('@')
            ),
            ConflictKind::Taken {
                thing: Thing::Member,
                holder: Some(h),
            } => format!(
                "`vigilo user set-role {} <role>` changes the role",
                h.trim_start_matches('@')
            ),
            _ => return None,
        },
        Error::Change(ChangeError::NeedsExecution { key, runbook }) => {
            format!("`vigilo exec start {runbook} --change {key}` starts one")
        }
        Error::Refused(r) => match r.rule {
            Rule::MemberCannotOwn => "`vigilo user set-role` changes a role".into(),
            Rule::Draft => "`vigilo runbook publish` publishes it".into(),
            Rule::CannotOperate => "`vigilo user list` shows everyone's role".into(),
            _ => return None,
        },
        _ => return None,
    })
}

fn print_error(kind: &str, message: &str, json: bool) {
    let mut err = std::io::stderr().lock();
    let _ = if json {
        let doc = serde_json::json!({ "error": { "kind": kind, "message": message } });
        writeln!(err, "{doc}")
    } else {
        writeln!(err, "error: {}", message.trim_end())
    };
}

/// Reports a command-line parse error: clap's own output (help and version go to stdout with
/// exit 0), or a `usage` JSON error with `--json`. Returns the exit code.
pub fn report_usage(e: &clap::Error, json: bool) -> u8 {
    use clap::error::ErrorKind as K;
    let informational = matches!(e.kind(), K::DisplayHelp | K::DisplayVersion);
    if json && !informational {
        let text = e.render().to_string();
        let message = text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("invalid command line")
            .trim_start_matches("error: ")
            .to_owned();
        print_error("usage", &message, true);
        return 2;
    }
    let _ = e.print();
    if informational {
        0
    } else {
        u8::try_from(e.exit_code()).unwrap_or(2)
    }
}

#[cfg(test)]
mod tests {
    use vigilo_core::error::{ConflictKind, Error, Rule, Thing};

    use super::CliError;

    #[test]
    fn the_cli_adds_the_command_and_keeps_the_exit_code() {
        let e = CliError::from(Error::not_found(
            Thing::Runbook,
            "RB-00009",
            "no runbook RB-00009 in this workspace",
        ));
        assert_eq!(e.exit_code(), 3);
        assert_eq!(e.kind(), "not_found");
        assert_eq!(
            e.to_string(),
            "no runbook RB-00009 in this workspace; `vigilo runbook list` shows the runbooks"
        );
        let e = CliError::from(Error::conflict(
            "@bob",
            ConflictKind::Taken {
                thing: Thing::Member,
                holder: Some("@bob".into()),
            },
            "@bob is already a member; change their role instead",
        ));
        assert_eq!(e.exit_code(), 5);
        assert!(
            e.to_string()
                .ends_with("`vigilo user set-role bob <role>` changes the role")
        );
        let e = CliError::from(Error::refused(Rule::NoChange, "nothing changed"));
        assert_eq!(
            (e.exit_code(), e.to_string()),
            (6, "nothing changed".into())
        );
    }
}
