//! The console channel: the chat conversation in a terminal.
//!
//! Commands are typed with or without `/runbook`; buttons are numbered choices and typing the
//! number presses one; Skip… and Failed… ask for the reason on the next line. Console commands:
//! `/as <handle>` acts as another member, `/whoami`, `/help`, `/quit`.
//!
//! Input is read line by line. When it is not a terminal, no welcome, prompt or colour is
//! printed, so a script works and its output is stable:
//!
//! ```text
//! printf 'run RB-00003\n1\n4\n' | vigilo console
//! ```
//!
//! A database without any workspace is seeded with the demo workspace of [`seed`].

mod input;
mod screen;
pub mod seed;
mod session;
mod style;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt, BufReader};
use vigilo_core::service::Vigilo;
use vigilo_store::{SqliteOptions, SqliteStore};

pub use input::{Line, read_line};
pub use screen::Screen;
pub use style::{Style, no_color_env};

use session::Session;

/// The platform name the console records on executions it starts.
pub const PLATFORM: &str = "console";
/// The channel used when none is given.
pub const DEFAULT_CHANNEL: &str = "console";

/// How the console starts.
#[derive(Clone, Debug)]
pub struct ConsoleOptions {
    /// The channel: executions started here are "open in this channel" (default `console`).
    pub channel: String,
    /// Act as this member (handle); default: the workspace owner.
    pub user: Option<String>,
    /// The workspace slug; default: the only workspace (or the demo one).
    pub workspace: Option<String>,
    /// The database file, shown in the welcome ([`open`] opens it).
    pub db_path: Option<PathBuf>,
    /// Seed the demo workspace into a database that has no workspace (default true).
    pub seed: bool,
    /// Print the welcome and prompts; `None`: when standard input is a terminal ([`run`]), never
    /// ([`run_with`]).
    pub interactive: Option<bool>,
    /// Use colour; `None`: when interactive, standard output is a terminal and `NO_COLOR` is
    /// not set ([`run`]), never ([`run_with`]).
    pub color: Option<bool>,
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        Self {
            channel: DEFAULT_CHANNEL.to_owned(),
            user: None,
            workspace: None,
            db_path: None,
            seed: true,
            interactive: None,
            color: None,
        }
    }
}

/// Why the console could not run.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// Reading input or writing output failed.
    #[error("terminal input/output failed: {0}")]
    Io(#[from] std::io::Error),
    /// The service refused to set the console up (unknown workspace or user, storage error).
    #[error("{0}")]
    Vigilo(#[from] vigilo_core::error::Error),
    /// The database could not be opened.
    #[error("cannot open the database: {0}")]
    Open(#[from] vigilo_store::OpenError),
    /// The console cannot choose a workspace or user by itself.
    #[error("{0}")]
    Setup(String),
}

/// Opens (or creates) the SQLite database at `path` and returns the service over it.
pub async fn open(path: impl AsRef<Path>) -> Result<Vigilo, ConsoleError> {
    let store = SqliteStore::open(path, SqliteOptions::default()).await?;
    Ok(
        Vigilo::new(Arc::new(store)).acting_via(crate::principal::local_origin(
            vigilo_core::audit::Surface::Console,
        )),
    )
}

/// Runs the console on standard input and output until `/quit` or the end of input.
pub async fn run(vigilo: Vigilo, mut options: ConsoleOptions) -> Result<(), ConsoleError> {
    let interactive = *options
        .interactive
        .get_or_insert_with(|| std::io::stdin().is_terminal());
    options
        .color
        .get_or_insert_with(|| interactive && std::io::stdout().is_terminal() && !no_color_env());
    let input = BufReader::new(tokio::io::stdin());
    let output = tokio::io::stdout();
    run_with(vigilo, options, input, output).await
}

/// Runs the console reading commands from `input` and writing to `output` (tests, embedding).
/// Not interactive and without colour unless the options say otherwise.
pub async fn run_with<R, W>(
    vigilo: Vigilo,
    options: ConsoleOptions,
    mut input: R,
    mut output: W,
) -> Result<(), ConsoleError>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut session = Session::start(vigilo, &options).await?;
    session.welcome(&mut output).await?;
    while session.prompt(&mut output).await? {
        let Some(line) = read_line(&mut input).await? else {
            break;
        };
        if !session.line(line, &mut input, &mut output).await? {
            break;
        }
    }
    output.flush().await?;
    Ok(())
}
