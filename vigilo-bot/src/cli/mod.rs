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
//! (tables, colour, JSON), [`views`] (the `--json` shapes), and one module per command group.

pub mod admin;
pub mod audit;
pub mod change;
pub mod context;
pub mod error;
pub mod exec;
pub mod keys;
pub mod migrate;
pub mod output;
pub mod run;
pub mod runbook;
pub mod views;

use std::path::PathBuf;
use std::str::FromStr;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use vigilo_core::ids::{Key, KeyKind};
use vigilo_core::roles::WorkspaceRole;

pub use context::Ctx;
pub use error::{CliError, report_usage};

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

/// `vigilo init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The owner's handle (created if new).
    #[arg(long, value_name = "handle")]
    pub owner: String,
    /// The owner's display name.
    #[arg(long)]
    pub name: Option<String>,
}

/// `vigilo workspace …`.
#[derive(Debug, Subcommand)]
pub enum WorkspaceCmd {
    /// Create a workspace owned by a user (created if new).
    #[command(after_help = "Example:\n  vigilo workspace create payments --owner alice")]
    Create {
        /// The workspace's short name.
        slug: String,
        /// The owner's handle.
        #[arg(long, value_name = "handle")]
        owner: String,
        /// The owner's display name, if the user is new.
        #[arg(long)]
        name: Option<String>,
    },
    /// List the workspaces in the database.
    #[command(after_help = "Example:\n  vigilo workspace list --json")]
    List,
    /// Link a Slack team to a workspace (admins and the owner).
    #[command(
        after_help = "Example:\n  vigilo --as alice workspace link-slack acme --team T0123ABCD"
    )]
    LinkSlack {
        /// The workspace.
        slug: String,
        /// The Slack team id (`T…`).
        #[arg(long, value_name = "T…")]
        team: String,
    },
}

fn parse_role(s: &str) -> Result<WorkspaceRole, String> {
    WorkspaceRole::from_str(s).map_err(|e| e.problem)
}

/// `vigilo user …`.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a member (admins and the owner).
    #[command(
        after_help = "Example:\n  vigilo --as alice user add carol --role admin --name 'Carol D.' --team-role dba --slack-id U024BE7LH"
    )]
    Add {
        /// The user's handle (created if new).
        handle: String,
        /// member, operator, admin or owner.
        #[arg(long, value_parser = parse_role)]
        role: WorkspaceRole,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Their Slack user id, so the bot knows them.
        #[arg(long, value_name = "U…")]
        slack_id: Option<String>,
        /// Kept for scripts: a Slack identity always binds to the team the workspace is (or
        /// will be) linked to; a team given here must be that team.
        #[arg(long, value_name = "T…")]
        slack_team: Option<String>,
        /// A team role such as `dba` (repeat for several).
        #[arg(long = "team-role", value_name = "name")]
        team_roles: Vec<String>,
    },
    /// Change a member's role (and team roles, when given).
    #[command(after_help = "Example:\n  vigilo --as alice user set-role bob admin --team-role sre")]
    SetRole {
        /// The member.
        handle: String,
        /// member, operator, admin or owner.
        #[arg(value_parser = parse_role)]
        role: WorkspaceRole,
        /// Replace the team roles with these (repeat for several).
        #[arg(long = "team-role", value_name = "name")]
        team_roles: Vec<String>,
        /// Remove every team role.
        #[arg(long, conflicts_with = "team_roles")]
        clear_team_roles: bool,
    },
    /// List the workspace's members.
    #[command(after_help = "Example:\n  vigilo --as bob user list")]
    List,
    /// Remove a member (off-boarding): they can no longer act or be mapped in this workspace;
    /// history and the audit trail keep their name. Admins and the owner; the last owner
    /// cannot be removed.
    #[command(after_help = "Example:\n  vigilo --as alice user remove bob")]
    Remove {
        /// The member.
        handle: String,
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

/// `vigilo runbook …`.
#[derive(Debug, Subcommand)]
pub enum RunbookCmd {
    /// Create or update runbooks from Markdown files (every file is checked before any is saved).
    #[command(
        after_help = "Examples:\n  vigilo --as alice runbook import rotate-cert.md --publish\n  vigilo --as alice runbook import rotate-cert.md --into RB-00003 --expect-version 4\n\nA file whose front matter has `key = \"RB-…\"` updates that runbook; others create new ones.\nImporting an unchanged file changes nothing (no new version)."
    )]
    Import {
        /// The files (the format of `runbook export`).
        #[arg(required = true, value_name = "file.md")]
        files: Vec<PathBuf>,
        /// Save the file as a new version of this runbook.
        #[arg(long, value_parser = rb_ref, value_name = "RB-…")]
        into: Option<Ref>,
        /// Refuse (exit 5) unless the runbook is still at this version.
        #[arg(long, requires = "into", value_name = "N")]
        expect_version: Option<u32>,
        /// Publish the runbooks after saving.
        #[arg(long)]
        publish: bool,
    },
    /// Print a runbook as a Markdown file (the format `import` and `sync` read).
    #[command(
        after_help = "Examples:\n  vigilo --as alice runbook export RB-00001 > rotate-cert.md\n  vigilo --as alice runbook export RB-00001 --version 2 -o old.md"
    )]
    Export {
        /// The runbook.
        #[arg(value_parser = rb_ref, value_name = "RB-…")]
        runbook: Ref,
        /// An older version.
        #[arg(long, value_name = "N")]
        version: Option<u32>,
        /// Write to this file instead of standard output.
        #[arg(short, long, value_name = "file")]
        output: Option<PathBuf>,
    },
    /// Create or update runbooks from every `*.md` file under a folder; only what changed gets a new version.
    #[command(
        after_help = "Example:\n  vigilo --as alice runbook sync ./runbooks\n\nFiles are matched to runbooks by their `key = \"RB-…\"` front-matter field, else by exact\ntitle; the others create new runbooks. README.md files are skipped. If any file has an\nerror, nothing at all is changed (exit 6, naming file:line)."
    )]
    Sync {
        /// The folder (searched recursively; hidden folders and README.md are skipped).
        dir: PathBuf,
        /// Check every file and show what would change, without saving.
        #[arg(long)]
        dry_run: bool,
    },
    /// List runbooks (published; drafts you may see with --drafts).
    #[command(after_help = "Example:\n  vigilo --as bob runbook list --category database --drafts")]
    List {
        /// Only this category.
        #[arg(long)]
        category: Option<String>,
        /// Include the drafts you may see.
        #[arg(long)]
        drafts: bool,
        /// List archived runbooks instead (admins and the owner).
        #[arg(long)]
        archived: bool,
    },
    /// Show a runbook with its steps.
    #[command(after_help = "Example:\n  vigilo --as bob runbook show RB-00001 --version 2")]
    Show {
        /// The runbook.
        #[arg(value_parser = rb_ref, value_name = "RB-…")]
        runbook: Ref,
        /// An older version.
        #[arg(long, value_name = "N")]
        version: Option<u32>,
    },
    /// Publish a runbook (its owner, admins, the workspace owner).
    #[command(after_help = "Example:\n  vigilo --as alice runbook publish RB-00001")]
    Publish {
        /// The runbook.
        #[arg(value_parser = rb_ref, value_name = "RB-…")]
        runbook: Ref,
    },
    /// Unpublish a runbook back to draft.
    #[command(after_help = "Example:\n  vigilo --as alice runbook unpublish RB-00001")]
    Unpublish {
        /// The runbook.
        #[arg(value_parser = rb_ref, value_name = "RB-…")]
        runbook: Ref,
    },
    /// Archive (soft-delete) a runbook (admins and the owner).
    #[command(after_help = "Example:\n  vigilo --as alice runbook archive RB-00001")]
    Archive {
        /// The runbook.
        #[arg(value_parser = rb_ref, value_name = "RB-…")]
        runbook: Ref,
    },
    /// Every version: author, time and source.
    #[command(after_help = "Example:\n  vigilo --as bob runbook history RB-00001")]
    History {
        /// The runbook.
        #[arg(value_parser = rb_ref, value_name = "RB-…")]
        runbook: Ref,
    },
    /// The step-level diff between two versions.
    #[command(
        after_help = "Examples:\n  vigilo --as bob runbook diff RB-00001 --from 1 --to 3\n  vigilo --as bob runbook diff RB-00001 --from 1 --to 3 --side-by-side"
    )]
    Diff {
        /// The runbook.
        #[arg(value_parser = rb_ref, value_name = "RB-…")]
        runbook: Ref,
        /// The older version (default: the one before --to).
        #[arg(long, value_name = "N")]
        from: Option<u32>,
        /// The newer version (default: the current one).
        #[arg(long, value_name = "M")]
        to: Option<u32>,
        /// Two columns, old on the left.
        #[arg(long)]
        side_by_side: bool,
        /// Width of the side-by-side view (default: the terminal's, or 120).
        #[arg(long, value_name = "columns")]
        width: Option<usize>,
    },
    /// Full-text search over titles, descriptions and steps.
    #[command(after_help = "Example:\n  vigilo --as bob runbook search certificate rotate")]
    Search {
        /// The words (all must match).
        #[arg(required = true)]
        words: Vec<String>,
        /// At most this many results.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

/// `vigilo exec …`.
#[derive(Debug, Subcommand)]
pub enum ExecCmd {
    /// Start an execution of a published runbook (or a rehearsal of a draft).
    #[command(after_help = "Example:\n  vigilo --as bob exec start RB-00001 --change CR-00002")]
    Start {
        /// The runbook.
        #[arg(value_parser = rb_ref, value_name = "RB-…")]
        runbook: Ref,
        /// Link an open change.
        #[arg(long, value_parser = cr_ref, value_name = "CR-…")]
        change: Option<Ref>,
        /// Link an open incident.
        #[arg(long, value_parser = inc_ref, value_name = "INC-…")]
        incident: Option<Ref>,
        /// A practice run: allowed on drafts, left out of timing analytics.
        #[arg(long)]
        rehearsal: bool,
    },
    /// Mark the current step done.
    #[command(
        after_help = "Example:\n  vigilo --as bob exec done EX-00001 --step 2 --note 'all green'\n\nWith --step N, nothing changes (exit 5) unless step N is the current step."
    )]
    Done {
        /// The execution.
        #[arg(value_parser = ex_ref, value_name = "EX-…")]
        execution: Ref,
        /// The step meant (must be the current one).
        #[arg(long, value_name = "N")]
        step: Option<u32>,
        /// A note.
        #[arg(long)]
        note: Option<String>,
    },
    /// Skip the current step, with a reason.
    #[command(
        after_help = "Example:\n  vigilo --as bob exec skip EX-00001 --step 3 --reason 'cache already empty'"
    )]
    Skip {
        /// The execution.
        #[arg(value_parser = ex_ref, value_name = "EX-…")]
        execution: Ref,
        /// The step meant (must be the current one).
        #[arg(long, value_name = "N")]
        step: Option<u32>,
        /// Why (required).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Mark the current step failed, with a note.
    #[command(
        after_help = "Example:\n  vigilo --as bob exec fail EX-00001 --note 'proxy 3 refused the bundle'"
    )]
    Fail {
        /// The execution.
        #[arg(value_parser = ex_ref, value_name = "EX-…")]
        execution: Ref,
        /// The step meant (must be the current one).
        #[arg(long, value_name = "N")]
        step: Option<u32>,
        /// What went wrong (required).
        #[arg(long)]
        note: Option<String>,
    },
    /// Approve the current (gated) step.
    #[command(after_help = "Example:\n  vigilo --as carol exec approve EX-00001 --step 2")]
    Approve {
        /// The execution.
        #[arg(value_parser = ex_ref, value_name = "EX-…")]
        execution: Ref,
        /// The step meant (must be the current one).
        #[arg(long, value_name = "N")]
        step: Option<u32>,
    },
    /// Open a failed step again.
    #[command(after_help = "Example:\n  vigilo --as bob exec retry EX-00001 --step 2")]
    Retry {
        /// The execution.
        #[arg(value_parser = ex_ref, value_name = "EX-…")]
        execution: Ref,
        /// The step meant (must be the current one).
        #[arg(long, value_name = "N")]
        step: Option<u32>,
    },
    /// Abort the execution, with a reason (seals it).
    #[command(
        after_help = "Example:\n  vigilo --as bob exec abort EX-00001 --reason 'change window closed'"
    )]
    Abort {
        /// The execution.
        #[arg(value_parser = ex_ref, value_name = "EX-…")]
        execution: Ref,
        /// Why (required).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Steps, who and when, actual vs estimated minutes.
    #[command(after_help = "Example:\n  vigilo --as bob exec show EX-00001 --json")]
    Show {
        /// The execution.
        #[arg(value_parser = ex_ref, value_name = "EX-…")]
        execution: Ref,
    },
    /// List executions, newest first.
    #[command(after_help = "Example:\n  vigilo --as bob exec list --runbook RB-00001 --open")]
    List {
        /// Only executions of this runbook.
        #[arg(long, value_parser = rb_ref, value_name = "RB-…")]
        runbook: Option<Ref>,
        /// Only running ones.
        #[arg(long)]
        open: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

/// `vigilo run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The runbook to execute, or an open execution to resume.
    #[arg(value_parser = run_ref, value_name = "RB-…|EX-…")]
    pub target: Ref,
    /// Link an open change.
    #[arg(long, value_parser = cr_ref, value_name = "CR-…")]
    pub change: Option<Ref>,
    /// Link an open incident.
    #[arg(long, value_parser = inc_ref, value_name = "INC-…")]
    pub incident: Option<Ref>,
    /// A practice run (allowed on drafts).
    #[arg(long)]
    pub rehearsal: bool,
}

/// Fields of a plan task.
#[derive(Clone, Debug, Default, Args)]
pub struct TaskFields {
    /// Title.
    #[arg(long)]
    pub title: Option<String>,
    /// Instruction (markdown).
    #[arg(long)]
    pub description: Option<String>,
    /// Owner role (a workspace role or a team role such as `dba`).
    #[arg(long)]
    pub role: Option<String>,
    /// Estimated minutes.
    #[arg(long, value_name = "minutes")]
    pub est: Option<i64>,
    /// Expected outcome.
    #[arg(long)]
    pub expected: Option<String>,
    /// Verification command or check.
    #[arg(long)]
    pub verification: Option<String>,
    /// Rollback note.
    #[arg(long)]
    pub rollback: Option<String>,
    /// Requires approval (`--approval` alone means yes).
    #[arg(long, value_name = "yes|no", num_args = 0..=1, default_missing_value = "yes", value_parser = parse_yes_no)]
    pub approval: Option<bool>,
    /// Destructive (`--destructive` alone means yes).
    #[arg(long, value_name = "yes|no", num_args = 0..=1, default_missing_value = "yes", value_parser = parse_yes_no)]
    pub destructive: Option<bool>,
}

fn parse_yes_no(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "on" | "1" | "required" => Ok(true),
        "no" | "n" | "false" | "off" | "0" => Ok(false),
        _ => Err(format!("expected yes or no, not `{s}`")),
    }
}

/// `vigilo change task …`.
#[derive(Debug, Subcommand)]
pub enum TaskCmd {
    /// Add a task to the plan.
    #[command(
        after_help = "Example:\n  vigilo --as bob change task add CR-00001 --title 'Drain node 3' --est 5 --role sre --at 2"
    )]
    Add {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
        /// The task's fields.
        #[command(flatten)]
        fields: TaskFields,
        /// Insert at this position (1-based; default: at the end).
        #[arg(long, value_name = "N")]
        at: Option<usize>,
    },
    /// Change fields of task N (the others stay).
    #[command(
        after_help = "Example:\n  vigilo --as bob change task edit CR-00001 2 --est 15 --approval"
    )]
    Edit {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
        /// The task number (1-based).
        n: usize,
        /// The fields to change.
        #[command(flatten)]
        fields: TaskFields,
    },
    /// Remove task N.
    #[command(after_help = "Example:\n  vigilo --as bob change task remove CR-00001 3")]
    Remove {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
        /// The task number (1-based).
        n: usize,
    },
}

/// `vigilo change …`.
#[derive(Debug, Subcommand)]
pub enum ChangeCmd {
    /// Create a change request (draft).
    #[command(
        after_help = "Example:\n  vigilo --as bob change create --title 'Rotate edge certs' --description 'Expires Friday'"
    )]
    Create {
        /// Title.
        #[arg(long)]
        title: String,
        /// Description (markdown).
        #[arg(long, default_value = "")]
        description: String,
    },
    /// The plan, with its source banner (runbook, version, newer version available).
    #[command(after_help = "Example:\n  vigilo --as bob change show CR-00001")]
    Show {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
    },
    /// List change requests.
    #[command(after_help = "Example:\n  vigilo --as bob change list")]
    List,
    /// Copy a published runbook's steps into the plan.
    #[command(after_help = "Example:\n  vigilo --as bob change import CR-00001 RB-00003")]
    Import {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
        /// The runbook.
        #[arg(value_parser = rb_ref, value_name = "RB-…")]
        runbook: Ref,
    },
    /// Take the source runbook's newest version into the plan.
    #[command(after_help = "Example:\n  vigilo --as bob change reimport CR-00001")]
    Reimport {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
    },
    /// Drop the link to the source runbook (the tasks stay).
    #[command(after_help = "Example:\n  vigilo --as bob change clear-source CR-00001")]
    ClearSource {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
    },
    /// Edit the plan's tasks.
    #[command(subcommand)]
    Task(TaskCmd),
    /// draft → approved (admins and the owner).
    #[command(after_help = "Example:\n  vigilo --as alice change approve CR-00001")]
    Approve {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
    },
    /// approved → in_progress (a plan from a runbook needs a live execution linked first).
    #[command(after_help = "Example:\n  vigilo --as bob change start CR-00001")]
    Start {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
    },
    /// in_progress → completed.
    #[command(after_help = "Example:\n  vigilo --as bob change complete CR-00001")]
    Complete {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
    },
    /// Cancel a change that is not final.
    #[command(after_help = "Example:\n  vigilo --as bob change cancel CR-00001")]
    Cancel {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
    },
    /// Save a completed change's plan as a new runbook, or as a new version of a published one.
    #[command(
        after_help = "Examples:\n  vigilo --as bob change save-as-runbook CR-00001 --new --title 'Rotate edge certs' --category security\n  vigilo --as bob change save-as-runbook CR-00001 --into RB-00003"
    )]
    SaveAsRunbook {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
        /// Create a new runbook (a draft owned by you).
        #[arg(long, requires = "title", conflicts_with = "into")]
        new: bool,
        /// The new runbook's title.
        #[arg(long, requires = "new")]
        title: Option<String>,
        /// The new runbook's category.
        #[arg(long, requires = "new")]
        category: Option<String>,
        /// Save as a new version of this published runbook.
        #[arg(long, value_parser = rb_ref, value_name = "RB-…", required_unless_present = "new")]
        into: Option<Ref>,
    },
}

/// `vigilo incident …`.
#[derive(Debug, Subcommand)]
pub enum IncidentCmd {
    /// Declare an incident (any member).
    #[command(after_help = "Example:\n  vigilo --as bob incident create --title 'Edge 5xx spike'")]
    Create {
        /// Title.
        #[arg(long)]
        title: String,
    },
    /// List incidents.
    #[command(after_help = "Example:\n  vigilo --as bob incident list")]
    List,
    /// Resolve an incident (operators and above).
    #[command(after_help = "Example:\n  vigilo --as bob incident resolve INC-00001")]
    Resolve {
        /// The incident.
        #[arg(value_parser = inc_ref, value_name = "INC-…")]
        incident: Ref,
    },
}

/// The formats of `audit export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One JSON entry per line.
    Jsonl,
    /// Comma-separated values with a header row (RFC 4180 quoting).
    Csv,
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-05-01T09:00:00Z ({e})"))
}

/// `vigilo audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// List audit entries, oldest first.
    #[command(
        after_help = "Example:\n  vigilo --as bob audit list --target RB-00001 --since 2026-05-01T00:00:00Z"
    )]
    List {
        /// Entries about this key or handle, or linking to it (`RB-00001`, `@alice`).
        #[arg(long)]
        target: Option<String>,
        /// Entries by this member.
        #[arg(long, value_name = "handle")]
        actor: Option<String>,
        /// Entries at or after this time (RFC 3339).
        #[arg(long, value_parser = parse_time, value_name = "RFC3339")]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Entries before this time (RFC 3339).
        #[arg(long, value_parser = parse_time, value_name = "RFC3339")]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// At most this many (0: all).
        #[arg(long, default_value_t = 0)]
        limit: usize,
    },
    /// Write the whole trail, streamed page by page.
    #[command(
        after_help = "Examples:\n  vigilo audit export > trail.jsonl\n  vigilo audit export --format csv -o trail.csv"
    )]
    Export {
        /// jsonl (default) or csv.
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Write to this file instead of standard output.
        #[arg(short, long, value_name = "file")]
        output: Option<PathBuf>,
    },
    /// Check the hash chain and every stored column: exit 0 when intact, 7 naming the first
    /// bad entry. With --checkpoint, also that each signed head still holds (7 if the chain was
    /// truncated, rolled back to an older backup or rebuilt, or the checkpoint was edited).
    #[command(
        after_help = "Examples:\n  vigilo --workspace acme audit verify\n  vigilo audit verify --checkpoint ckpt-0900.json --trusted-key audit.key.pub"
    )]
    Verify {
        /// A checkpoint file written by `audit checkpoint` (repeat for several).
        #[arg(long, value_name = "FILE")]
        checkpoint: Vec<PathBuf>,
        /// The public key checkpoints must be signed with (hex, or a file such as KEY.pub).
        #[arg(long, value_name = "HEX|FILE", requires = "checkpoint")]
        trusted_key: Option<String>,
    },
    /// Create an Ed25519 signing key for checkpoints (mode 0600; never in the database), and
    /// its public key in FILE.pub.
    #[command(after_help = "Example:\n  vigilo audit keygen --out /etc/vigilo/audit.key")]
    Keygen {
        /// Where to write the key (must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Sign the head of every workspace's chain (each verified first), as a JSON array: keep it
    /// where the database cannot reach.
    #[command(
        after_help = "Example:\n  vigilo audit checkpoint --key /etc/vigilo/audit.key --out ckpt-$(date +%F-%H%M).json"
    )]
    Checkpoint {
        /// The signing key (from `audit keygen`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// `vigilo serve …`.
#[derive(Debug, Subcommand)]
pub enum ServeCmd {
    /// The Slack bot.
    #[command(
        after_help = "Example:\n  SLACK_BOT_TOKEN=… SLACK_SIGNING_SECRET=… vigilo serve slack --listen 127.0.0.1:3000"
    )]
    Slack {
        /// Address to listen on for Slack's HTTP requests.
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: String,
        /// Slack's Web API base URL (for tests against a fake Slack).
        #[arg(long, value_name = "URL")]
        slack_api_url: Option<String>,
        /// Use Socket Mode instead of HTTP requests.
        #[arg(long)]
        socket_mode: bool,
        /// Verify every audit chain at start and this often (`6h`, `30m`, `90s`; `0` never).
        #[arg(long, value_name = "DURATION", default_value = "6h", value_parser = parse_duration)]
        verify_every: std::time::Duration,
        /// Post to this channel when an audit check finds tampering.
        #[arg(long, value_name = "C…")]
        alert_channel: Option<String>,
        /// Sign checkpoints of every chain with this key (from `audit keygen`) and post them.
        #[arg(long, value_name = "FILE", requires = "checkpoint_channel")]
        checkpoint_key: Option<PathBuf>,
        /// Where to post signed checkpoints: a channel the database's administrators cannot edit.
        #[arg(long, value_name = "C…", requires = "checkpoint_key")]
        checkpoint_channel: Option<String>,
        /// How often to post a checkpoint.
        #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
        checkpoint_every: std::time::Duration,
    },
}

/// A duration as `90s`, `30m`, `6h`, `1d` or a bare number of seconds.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; write e.g. 90s, 30m, 6h or 1d"))?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(|| format!("{s:?} is not a duration; write e.g. 90s, 30m, 6h or 1d"))?;
    Ok(std::time::Duration::from_secs(secs))
}

/// `vigilo console`.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// The channel executions are started in.
    #[arg(long, value_name = "name")]
    pub channel: Option<String>,
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
    if let Command::Serve(ServeCmd::Slack {
        listen,
        slack_api_url,
        socket_mode,
        verify_every,
        alert_channel,
        checkpoint_key,
        checkpoint_channel,
        checkpoint_every,
    }) = command
    {
        let checkpoints = match (checkpoint_key, checkpoint_channel) {
            (Some(key), Some(channel)) => Some(crate::slack::CheckpointPosting {
                key: std::sync::Arc::new(keys::read(&key)?),
                channel,
                every: checkpoint_every,
            }),
            _ => None,
        };
        let watch = crate::slack::WatchOptions {
            verify_every: (!verify_every.is_zero()).then_some(verify_every),
            alert_channel,
            checkpoints,
        };
        return serve_slack(global, &listen, slack_api_url, socket_mode, watch).await;
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

/// `vigilo serve slack`: checks the options before opening the store, then serves until
/// SIGINT or SIGTERM and closes the store, so every acknowledged write is on disk.
async fn serve_slack(
    global: Global,
    listen: &str,
    slack_api_url: Option<String>,
    socket_mode: bool,
    watch: crate::slack::WatchOptions,
) -> Result<(), CliError> {
    let listen = listen.parse().map_err(|e| {
        CliError::Usage(format!(
            "--listen {listen:?} is not an address: {e}; give host:port, e.g. 127.0.0.1:3000"
        ))
    })?;
    let mut opts = crate::slack::SlackOptions::from_env();
    opts.listen = listen;
    opts.socket_mode = socket_mode;
    opts.watch = watch;
    if let Some(url) = slack_api_url {
        let url = url.trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "--slack-api-url {url:?} must start with http:// or https://"
            )));
        }
        opts.slack_api_url = url;
    }
    opts.validate()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let ctx = Ctx::open(global, false).await?;
    tracing::info!(db = %ctx.db_label, listen = %opts.listen, socket_mode, "serving Slack");
    let result = crate::slack::serve(ctx.vigilo.clone(), opts)
        .await
        .map_err(|e| CliError::Internal(e.to_string()));
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
