//! The `vigilo` command line: every command of the CLI contract (`shared/spec/cli.md`).
//!
//! [`Cli`] is the clap definition; [`run()`] executes a parsed command against the database and
//! prints its result (a table for people, one JSON document with `--json`). Errors are
//! [`CliError`]s whose [`CliError::exit_code`] is the contract's exit code:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | internal or backend error |
//! | 2 | usage error |
//! | 3 | not found |
//! | 4 | permission denied |
//! | 5 | conflict |
//! | 6 | refused by a rule (including a runbook file with an error) |
//! | 7 | `audit verify` found tampering |
//!
//! The modules: [`context`] (opening the store, resolving workspace and user), [`output`]
//! (tables, colour, JSON), [`views`] (the `--json` shapes), and one module per command group,
//! each holding its clap types next to what runs them: [`admin`] (`init`, `workspace`, `user`,
//! `incident`, `console`, `completions`), [`runbook`], [`exec`], [`run`](mod@run), [`change`],
//! [`audit`], [`report`] (`exec report`, `audit verify --report`), [`serve`], [`migrate`]. This module keeps the top-level [`Cli`], [`Command`] and
//! [`Global`], the parsers of record references shared by the groups ([`Ref`]), and [`run()`].

pub mod admin;
pub mod audit;
pub mod change;
pub mod context;
pub mod error;
pub mod exec;
pub mod keys;
pub mod migrate;
pub mod output;
pub mod report;
pub mod run;
pub mod runbook;
pub mod serve;
pub mod stats;
pub mod views;

use clap::{ArgAction, Args, Parser, Subcommand};
use vigilo_core::ids::{Key, KeyKind};

pub use admin::{ConsoleArgs, IncidentCmd, InitArgs, UserCmd, WorkspaceCmd};
pub use audit::{AuditCmd, ExportFormat};
pub use change::{ChangeCmd, TaskCmd, TaskFields};
pub use context::Ctx;
pub use error::{CliError, report_usage};
pub use exec::ExecCmd;
pub use run::RunArgs;
pub use runbook::RunbookCmd;
pub use serve::ServeCmd;

const ROOT_AFTER_HELP: &str = "\
Examples:
  vigilo init --workspace acme --owner alice
  vigilo --as alice user add bob --role operator
  vigilo --as alice runbook import rotate-cert.md --publish
  vigilo --as bob run RB-00001
  vigilo audit verify

Environment: VIGILO_DB, VIGILO_WORKSPACE, VIGILO_USER, NO_COLOR, RUST_LOG.
Exit codes: 0 ok, 1 internal, 2 usage, 3 not found, 4 denied, 5 conflict, 6 refused, 7 tampered.";

/// The `vigilo` command line.
#[derive(Debug, Parser)]
#[command(
    name = "vigilo",
    version,
    about = "Vigilo: versioned runbooks, step-by-step executions, change sync and a verifiable audit trail.",
    after_help = ROOT_AFTER_HELP,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Clone, Debug, Args)]
pub struct Global {
    /// The database: `sqlite:PATH`, a bare path (SQLite), or `postgres://…`.
    #[arg(
        long,
        global = true,
        env = "VIGILO_DB",
        default_value = "./vigilo.db",
        value_name = "URL-or-path"
    )]
    pub db: String,
    /// The workspace to act in (default: the only workspace, if exactly one exists).
    #[arg(long, global = true, env = "VIGILO_WORKSPACE", value_name = "slug")]
    pub workspace: Option<String>,
    /// The acting user (commands that act on behalf of someone require it).
    #[arg(long = "as", global = true, env = "VIGILO_USER", value_name = "handle")]
    pub as_user: Option<String>,
    /// Print one JSON document on stdout; errors as {"error":{"kind":…,"message":…}} on stderr.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v info, -vv debug, -vvv trace; RUST_LOG overrides).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
    /// How log lines on stderr look: `text` for people, `json` (one object per line) for log
    /// collectors.
    #[arg(
        long,
        global = true,
        env = "VIGILO_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        value_name = "text|json"
    )]
    pub log_format: LogFormat,
}

/// The format of log lines on stderr (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured on a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the database's first workspace and its owner.
    #[command(
        after_help = "Example:\n  vigilo init --workspace acme --owner alice --name 'Alice Martin'"
    )]
    Init(InitArgs),
    /// Workspaces: create, list, link a Slack team.
    #[command(subcommand)]
    Workspace(WorkspaceCmd),
    /// Members of the workspace and their roles.
    #[command(subcommand)]
    User(UserCmd),
    /// Runbooks: import and export Markdown files, list, show, publish, history, diff.
    #[command(subcommand)]
    Runbook(RunbookCmd),
    /// Executions: start one, act on its steps, show it.
    #[command(subcommand)]
    Exec(ExecCmd),
    /// Walk a runbook step by step in the terminal (reads standard input when piped).
    #[command(
        after_help = "Examples:\n  vigilo --as bob run RB-00001 --incident INC-00002\n  vigilo --as bob run EX-00004          # resume an open execution\n  printf 'd\\ns\\nnot needed\\n' | vigilo --as bob run RB-00001"
    )]
    Run(RunArgs),
    /// Change requests: plan from a runbook, move through approve/start/complete, save back.
    #[command(subcommand)]
    Change(ChangeCmd),
    /// Incidents to link executions to.
    #[command(subcommand)]
    Incident(IncidentCmd),
    /// The audit trail: list, export, verify the hash chain.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// The workspace at a glance: runs per week, completed and aborted, the slowest steps.
    Stats(stats::StatsArgs),
    /// Serve a chat front end.
    #[command(subcommand)]
    Serve(ServeCmd),
    /// Copy an SQLite database into an empty PostgreSQL database, then verify the copy.
    #[command(
        after_help = "Example:\n  vigilo migrate --from sqlite:./vigilo.db --to postgres://vigilo@db.internal:5432/vigilo\n\nThe source is only read. The target must hold no Vigilo data (exit 6 otherwise). Every\nrow is copied as it is (ids, keys and counters, versions, executions, audit chain), then\nrow counts and every audit chain are verified on the target."
    )]
    Migrate(migrate::MigrateArgs),
    /// The chat bot in the terminal (reads standard input when it is not a terminal).
    #[command(
        after_help = "Examples:\n  vigilo console\n  printf 'list\\n' | vigilo console --channel ops"
    )]
    Console(ConsoleArgs),
    /// Print a shell completion script.
    #[command(after_help = "Example:\n  vigilo completions bash > /etc/bash_completion.d/vigilo")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// A record named by its key (`RB-00001`) or its id (a UUID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ref {
    /// A human key.
    Key(Key),
    /// A row id (UUID); resolved to the key in the workspace.
    Id(uuid::Uuid),
}

fn parse_ref(s: &str, kind: KeyKind) -> Result<Ref, String> {
    if let Ok(id) = uuid::Uuid::parse_str(s.trim()) {
        return Ok(Ref::Id(id));
    }
    Key::parse_kind(s, kind)
        .map(Ref::Key)
        .map_err(|e| e.to_string())
}

fn rb_ref(s: &str) -> Result<Ref, String> {
    parse_ref(s, KeyKind::Runbook)
}
fn ex_ref(s: &str) -> Result<Ref, String> {
    parse_ref(s, KeyKind::Execution)
}
fn cr_ref(s: &str) -> Result<Ref, String> {
    parse_ref(s, KeyKind::Change)
}
fn inc_ref(s: &str) -> Result<Ref, String> {
    parse_ref(s, KeyKind::Incident)
}
fn run_ref(s: &str) -> Result<Ref, String> {
    let key: Result<Key, _> = s.parse();
    match key {
        Ok(k) if matches!(k.kind, KeyKind::Runbook | KeyKind::Execution) => Ok(Ref::Key(k)),
        Ok(_) => Err(format!(
            "`{s}` is neither a runbook (RB-…) nor an execution (EX-…) key"
        )),
        Err(_) => parse_ref(s, KeyKind::Runbook),
    }
}

/// Runs a parsed command, printing its result. The store is closed before returning, so every
/// write is on disk when the process exits.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let Cli { global, command } = cli;
    if let Command::Completions { shell } = command {
        return admin::completions(shell);
    }
    let create = matches!(
        command,
        Command::Init(_) | Command::Workspace(WorkspaceCmd::Create { .. }) | Command::Console(_)
    );
    if let Command::Serve(cmd) = command {
        return serve::run(global, cmd).await;
    }
    if let Command::Migrate(args) = command {
        return migrate::run(global, args).await;
    }
    if let Command::Audit(AuditCmd::Keygen { out }) = &command {
        return audit::keygen(&global, out);
    }
    let ctx = Ctx::open(global, create).await?;
    let result = dispatch(&ctx, command).await;
    ctx.close().await;
    result
}

async fn dispatch(ctx: &Ctx, command: Command) -> Result<(), CliError> {
    match command {
        Command::Init(a) => admin::init(ctx, a).await,
        Command::Workspace(c) => admin::workspace(ctx, c).await,
        Command::User(c) => admin::user(ctx, c).await,
        Command::Runbook(c) => runbook::dispatch(ctx, c).await,
        Command::Exec(c) => exec::dispatch(ctx, c).await,
        Command::Run(a) => run::run(ctx, a).await,
        Command::Change(c) => change::dispatch(ctx, c).await,
        Command::Incident(c) => admin::incident(ctx, c).await,
        Command::Audit(c) => audit::dispatch(ctx, c).await,
        Command::Stats(a) => stats::workspace_stats(ctx, a).await,
        Command::Console(a) => admin::console(ctx, a).await,
        Command::Serve(_) | Command::Migrate(_) | Command::Completions { .. } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// Every command people run has a short example in its help.
    #[test]
    fn every_command_has_an_example() {
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", c.get_name());
            if c.has_subcommands() {
                for s in c.get_subcommands() {
                    walk(s, &path, missing);
                }
            } else if !c
                .get_after_help()
                .is_some_and(|h| h.to_string().contains("Example"))
            {
                missing.push(path);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "no example in the help of: {missing:?}");
    }

    #[test]
    fn database_urls() {
        use context::DbUrl;
        use std::path::PathBuf;
        let sqlite = |p: &str| DbUrl::Sqlite(PathBuf::from(p));
        assert_eq!(
            "./vigilo.db".parse::<DbUrl>().ok(),
            Some(sqlite("./vigilo.db"))
        );
        assert_eq!(
            "sqlite:/tmp/x.db".parse::<DbUrl>().ok(),
            Some(sqlite("/tmp/x.db"))
        );
        assert_eq!(
            "sqlite:///tmp/x.db".parse::<DbUrl>().ok(),
            Some(sqlite("/tmp/x.db"))
        );
        assert!(matches!(
            "postgres://u@h/db".parse::<DbUrl>(),
            Ok(DbUrl::Postgres(_))
        ));
        assert!("sqlite:".parse::<DbUrl>().is_err());
    }

    #[test]
    fn csv_fields_are_quoted() {
        assert_eq!(audit::csv_field("plain"), "plain");
        assert_eq!(audit::csv_field("a,b"), "\"a,b\"");
        assert_eq!(audit::csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(audit::csv_field("two\nlines"), "\"two\nlines\"");
    }
}
