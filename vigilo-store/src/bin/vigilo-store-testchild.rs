//! `vigilo-store-testchild`: a child process for vigilo-store's crash-safety and cross-process
//! tests. It drives the real [`Vigilo`] service over a real [`SqliteStore`] file
//! (`synchronous=FULL`) and reports on stdout, one flushed line each, what the service
//! acknowledged: a line is printed only AFTER the call returned `Ok`, so every line the parent
//! reads is a write the store promised to keep.
//!
//! Modes (all paths absolute or relative to the working directory):
//!
//! - `crash <db> <walkers>`: creates workspace `ops` (owner `alice`, admin `bob`) and a
//!   published 10-step runbook (steps 3 and 7 gated, step 5 skipped), then `walkers` tasks each
//!   start executions and walk them to the end, one after the other, until the process is
//!   killed. Lines: `opened` once the store is open (not an acknowledgement), then
//!   `ack workspace <ws> <alice>`, `ack member <bob>`, `ack runbook <RB-key>`,
//!   `ack start <EX-key>`, `ack step <EX-key> <seq> <kind> <step>`.
//! - `clicks <db> <ws> <user> <EX-key> <count> <barrier>`: prepares `count` concurrent
//!   `Done step 1` commands, prints `ready`, waits until the file `<barrier>` exists, fires them
//!   all at once and prints one `outcome ok <seq>` or `outcome err <kind> <retryable> <message>`
//!   line per command.
//! - `edits <db> <ws> <user> <RB-key> <rounds> <editors> <barrier-dir>`: for each round `r`
//!   (1-based) waits until `<barrier-dir>/go-<r>` exists (it holds the runbook version every
//!   editor must base its edit on), fires `editors` concurrent edits of the runbook with that
//!   expected version, and prints `edit <r> ok <version>` or `edit <r> err <kind> <message>`
//!   per edit, then `round <r> done`.
//!
//! Errors end the process with a message on stderr and a non-zero exit code.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use vigilo_core::error::Error;
use vigilo_core::execution::machine::Command;
use vigilo_core::ids::Key;
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::runbook::{RunbookInput, StepInput, VersionSource};
use vigilo_core::service::{CreateRunbook, NewMember, StartOptions, Vigilo, Who};
use vigilo_store::{SqliteOptions, SqliteStore};

/// The steps of the crash-test runbook that need an approval before they can be done.
const GATED_STEPS: [u32; 2] = [3, 7];
/// The step of the crash-test runbook that is skipped rather than done.
const SKIPPED_STEP: u32 = 5;
/// How many steps the crash-test runbook has.
const STEPS: u32 = 10;
/// How many executions one crash walker starts before it stops (it is normally killed first).
const MAX_EXECUTIONS_PER_WALKER: usize = 10_000;
/// How long a barrier is waited for before the child gives up.
const BARRIER_TIMEOUT: Duration = Duration::from_secs(60);

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building the Tokio runtime")?;
    runtime.block_on(run(&args))
}

async fn run(args: &[String]) -> Result<()> {
    let mode = args.first().map(String::as_str).unwrap_or_default();
    let rest = args.get(1..).unwrap_or_default();
    match mode {
        "crash" => {
            let [db, walkers] = fixed::<2>(rest, "crash <db> <walkers>")?;
            crash(Path::new(db), parse(walkers, "walkers")?).await
        }
        "clicks" => {
            let [db, ws, user, exec, count, barrier] =
                fixed::<6>(rest, "clicks <db> <ws> <user> <EX-key> <count> <barrier>")?;
            let who = Who::new(parse(ws, "workspace id")?, parse(user, "user id")?);
            clicks(
                Path::new(db),
                who,
                parse(exec, "execution key")?,
                parse(count, "count")?,
                Path::new(barrier),
            )
            .await
        }
        "edits" => {
            let [db, ws, user, rb, rounds, editors, dir] = fixed::<7>(
                rest,
                "edits <db> <ws> <user> <RB-key> <rounds> <editors> <barrier-dir>",
            )?;
            let who = Who::new(parse(ws, "workspace id")?, parse(user, "user id")?);
            edits(
                Path::new(db),
                who,
                parse(rb, "runbook key")?,
                parse(rounds, "rounds")?,
                parse(editors, "editors")?,
                Path::new(dir),
            )
            .await
        }
        other => bail!("unknown mode `{other}`; expected crash, clicks or edits"),
    }
}

/// Exactly `N` arguments, or a usage error.
fn fixed<'a, const N: usize>(args: &'a [String], usage: &str) -> Result<[&'a str; N]> {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    refs.try_into()
        .map_err(|_| anyhow!("usage: vigilo-store-testchild {usage}"))
}

/// Parses one argument, naming it in the error.
fn parse<T>(text: &str, what: &str) -> Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e| anyhow!("invalid {what} `{text}`: {e}"))
}

/// Prints one line and flushes it, so the parent sees it before anything else happens.
fn say(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").context("writing to stdout")?;
    out.flush().context("flushing stdout")
}

/// Opens the store with the production defaults (`synchronous=FULL`) and the service over it.
async fn service(db: &Path) -> Result<Vigilo> {
    let store = SqliteStore::open(db, SqliteOptions::default())
        .await
        .with_context(|| format!("opening {}", db.display()))?;
    Ok(Vigilo::new(Arc::new(store)))
}

/// The crash-test runbook: 10 steps, two of them gated.
fn crash_runbook() -> RunbookInput {
    RunbookInput {
        title: "Fail over the primary database".into(),
        description: "Promote the replica and repoint the applications.".into(),
        category: "database".into(),
        steps: (1..=STEPS)
            .map(|i| StepInput {
                title: format!("Step {i}: check and act"),
                description: format!("Run the check of step {i}, then act on its outcome."),
                est_minutes: 5,
                requires_approval: GATED_STEPS.contains(&i),
                ..StepInput::default()
            })
            .collect(),
    }
}

async fn crash(db: &Path, walkers: usize) -> Result<()> {
    let vigilo = service(db).await?;
    say("opened")?;
    let (ws, alice) = vigilo
        .create_workspace("ops", "alice", "Alice")
        .await
        .context("creating the workspace")?;
    say(&format!("ack workspace {} {}", ws.id, alice.id))?;
    let operator = Who::new(ws.id, alice.id);
    let (bob, _) = vigilo
        .add_member(
            &operator,
            NewMember {
                handle: "bob".into(),
                display_name: "Bob".into(),
                role: WorkspaceRole::Admin,
                team_roles: Vec::new(),
                chat_identity: None,
            },
        )
        .await
        .context("adding bob")?;
    say(&format!("ack member {}", bob.id))?;
    let approver = Who::new(ws.id, bob.id);
    let rb = vigilo
        .create_runbook(
            &operator,
            crash_runbook(),
            CreateRunbook {
                publish: true,
                ..CreateRunbook::default()
            },
        )
        .await
        .context("creating the runbook")?;
    say(&format!("ack runbook {}", rb.key))?;

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..walkers.max(1) {
        let vigilo = vigilo.clone();
        tasks.spawn(async move { walk(&vigilo, operator, approver, rb.key).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a walker panicked")??;
    }
    Ok(())
}

/// Starts executions of `runbook` and walks each to the end, acknowledging every write.
async fn walk(vigilo: &Vigilo, operator: Who, approver: Who, runbook: Key) -> Result<()> {
    for _ in 0..MAX_EXECUTIONS_PER_WALKER {
        let ex = vigilo
            .start_execution(&operator, runbook, StartOptions::default())
            .await
            .context("starting an execution")?;
        say(&format!("ack start {}", ex.key))?;
        for order in 1..=STEPS {
            if GATED_STEPS.contains(&order) {
                let out = vigilo
                    .act(&approver, ex.key, Command::Approve { step: order })
                    .await
                    .with_context(|| format!("approving step {order} of {}", ex.key))?;
                say(&format!(
                    "ack step {} {} {} {order}",
                    ex.key,
                    out.event.seq,
                    out.event.kind.as_str()
                ))?;
            }
            let cmd = if order == SKIPPED_STEP {
                Command::Skip {
                    step: order,
                    reason: "not needed on this cluster".into(),
                }
            } else {
                Command::Done {
                    step: order,
                    note: None,
                }
            };
            let out = vigilo
                .act(&operator, ex.key, cmd)
                .await
                .with_context(|| format!("acting on step {order} of {}", ex.key))?;
            say(&format!(
                "ack step {} {} {} {order}",
                ex.key,
                out.event.seq,
                out.event.kind.as_str()
            ))?;
        }
    }
    Ok(())
}

/// Waits until `path` exists.
async fn wait_for(path: &Path) -> Result<()> {
    let start = Instant::now();
    while !path.exists() {
        if start.elapsed() > BARRIER_TIMEOUT {
            bail!("gave up waiting for {}", path.display());
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    Ok(())
}

/// One line describing a refused call: its kind, whether it is retryable, and its message.
fn refusal(e: &Error) -> String {
    format!(
        "{} {} {}",
        e.kind().as_str(),
        e.is_retryable(),
        e.to_string().replace('\n', " ")
    )
}

async fn clicks(db: &Path, who: Who, exec: Key, count: usize, barrier: &Path) -> Result<()> {
    let vigilo = service(db).await?;
    // Warm up: the read pool and the actor's rows, so the clicks start together.
    vigilo
        .execution(&who, exec)
        .await
        .with_context(|| format!("reading {exec}"))?;
    let (go, gate) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let vigilo = vigilo.clone();
        let mut gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            gate.wait_for(|open| *open).await.ok();
            vigilo
                .act(
                    &who,
                    exec,
                    Command::Done {
                        step: 1,
                        note: None,
                    },
                )
                .await
        }));
    }
    say("ready")?;
    wait_for(barrier).await?;
    go.send(true).context("opening the gate")?;
    for task in tasks {
        match task.await.context("a click panicked")? {
            Ok(out) => say(&format!("outcome ok {}", out.event.seq))?,
            Err(e) => say(&format!("outcome err {}", refusal(&e)))?,
        }
    }
    Ok(())
}

async fn edits(
    db: &Path,
    who: Who,
    runbook: Key,
    rounds: u32,
    editors: usize,
    dir: &Path,
) -> Result<()> {
    let vigilo = service(db).await?;
    let base = RunbookInput::from(
        &vigilo
            .runbook(&who, runbook)
            .await
            .with_context(|| format!("reading {runbook}"))?
            .body,
    );
    say("ready")?;
    for round in 1..=rounds {
        let go: PathBuf = dir.join(format!("go-{round}"));
        wait_for(&go).await?;
        let expected: u32 = parse(
            std::fs::read_to_string(&go)
                .with_context(|| format!("reading {}", go.display()))?
                .trim(),
            "expected version",
        )?;
        let mut tasks = Vec::with_capacity(editors);
        for editor in 0..editors {
            let vigilo = vigilo.clone();
            let mut input = base.clone();
            input.description = format!("Round {round}: edited by the child, editor {editor}.");
            tasks.push(tokio::spawn(async move {
                vigilo
                    .edit_runbook(&who, runbook, input, Some(expected), VersionSource::Edit)
                    .await
            }));
        }
        for task in tasks {
            match task.await.context("an edit panicked")? {
                Ok(out) if out.changed => {
                    say(&format!("edit {round} ok {}", out.runbook.version))?;
                }
                Ok(_) => say(&format!("edit {round} unchanged"))?,
                Err(e) => say(&format!("edit {round} err {}", refusal(&e)))?,
            }
        }
        say(&format!("round {round} done"))?;
    }
    Ok(())
}
