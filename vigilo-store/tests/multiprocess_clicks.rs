//! Two processes on one store file, racing through the real service:
//!
//! - 100 simultaneous `Done step 1` clicks on one execution, 50 from tasks of this process and
//!   50 from a child process (`vigilo-store-testchild clicks`), released together by a barrier
//!   file: exactly one is applied, the 99 others are answered with a conflict (never a busy or
//!   "unavailable" error), there is one Done event, and the audit chain is intact.
//! - Concurrent edits of one runbook from both processes, all based on the same version: in
//!   every round exactly one wins and every other edit gets the stale-version conflict
//!   ([`ErrorKind::Conflict`]).

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use vigilo_core::error::ErrorKind;
use vigilo_core::execution::EventKind;
use vigilo_core::execution::machine::Command;
use vigilo_core::ids::Key;
use vigilo_core::runbook::{Runbook, RunbookInput, StepInput, VersionSource};
use vigilo_core::service::{AuditVerdict, CreateRunbook, StartOptions, Vigilo, Who};
use vigilo_core::store::{AuditQuery, Store};
use vigilo_store::{SqliteOptions, SqliteStore};

/// The helper binary (`src/bin/vigilo-store-testchild.rs`).
const CHILD: &str = env!("CARGO_BIN_EXE_vigilo-store-testchild");
/// Clicks per process.
const CLICKS: usize = 50;
/// How long any one line of the child is waited for.
const LINE_TIMEOUT: Duration = Duration::from_secs(60);

/// A child process whose stdout lines arrive on a channel; killed if still running when dropped.
struct ChildProcess {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl ChildProcess {
    fn spawn(args: &[String]) -> Self {
        let mut child = Process::new(CHILD)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {CHILD}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Self {
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    /// The next line, or a panic with the child's stderr if it ended or went silent.
    async fn line(&mut self) -> String {
        match tokio::time::timeout(LINE_TIMEOUT, self.lines.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => panic!("the child ended early: {}", self.finish()),
            Err(_) => panic!("the child said nothing for {LINE_TIMEOUT:?}"),
        }
    }

    /// Waits for the child to exit; its status and stderr.
    fn finish(&mut self) -> String {
        let status = self.child.wait().unwrap();
        let stderr = self
            .stderr
            .take()
            .map(|t| t.join().unwrap())
            .unwrap_or_default();
        format!("{status}; stderr:\n{stderr}")
    }

    /// Waits for a successful exit.
    fn wait_success(&mut self) {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the child failed: {}", self.finish());
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A store file in a temporary directory and the service over it.
struct Fixture {
    _dir: tempfile::TempDir,
    db: PathBuf,
    barriers: PathBuf,
    store: Arc<dyn Store>,
    vigilo: Vigilo,
    who: Who,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("shared.db");
        let barriers = dir.path().join("barriers");
        std::fs::create_dir(&barriers).unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&db, SqliteOptions::default())
                .await
                .unwrap(),
        );
        let vigilo = Vigilo::new(Arc::clone(&store));
        let (ws, alice) = vigilo
            .create_workspace("ops", "alice", "Alice")
            .await
            .unwrap();
        Self {
            _dir: dir,
            db,
            barriers,
            store,
            vigilo,
            who: Who::new(ws.id, alice.id),
        }
    }

    async fn runbook(&self, steps: usize) -> Runbook {
        let input = RunbookInput {
            title: "Rotate the TLS certificates".into(),
            description: "Renew, deploy, verify.".into(),
            category: "security".into(),
            steps: (1..=steps)
                .map(|i| StepInput {
                    title: format!("Step {i}"),
                    description: format!("Do step {i}."),
                    est_minutes: 2,
                    ..StepInput::default()
                })
                .collect(),
        };
        self.vigilo
            .create_runbook(
                &self.who,
                input,
                CreateRunbook {
                    publish: true,
                    ..CreateRunbook::default()
                },
            )
            .await
            .unwrap()
    }

    /// Creates `name` in the barrier directory atomically, with `content`.
    fn release(&self, name: &str, content: &str) {
        let tmp = self.barriers.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, self.barriers.join(name)).unwrap();
    }

    fn path_arg(path: &Path) -> String {
        path.to_str().unwrap().to_owned()
    }

    async fn chain_is_intact(&self) -> u64 {
        match self.vigilo.verify_audit(self.who.workspace).await.unwrap() {
            AuditVerdict::Intact { entries, .. } => entries,
            AuditVerdict::Tampered(t) => panic!("audit chain broken: {t}"),
        }
    }

    async fn actions(&self, prefix: &str) -> Vec<String> {
        self.store
            .audit(
                self.who.workspace,
                &AuditQuery {
                    limit: 100_000,
                    ..AuditQuery::default()
                },
            )
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .filter(|a| a.starts_with(prefix))
            .collect()
    }
}

/// How one click or edit ended: `ok` or the error's kind, and whether it was retryable.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Ok,
    Err {
        kind: String,
        retryable: bool,
        message: String,
    },
}

impl Outcome {
    fn of<T>(r: &vigilo_core::error::Result<T>) -> Self {
        match r {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Err {
                kind: e.kind().as_str().to_owned(),
                retryable: e.is_retryable(),
                message: e.to_string(),
            },
        }
    }

    /// From the child's `err <kind> <retryable> <message>` words.
    fn parse_err(words: &str) -> Self {
        let mut parts = words.splitn(3, ' ');
        let kind = parts.next().unwrap_or_default().to_owned();
        let retryable = parts.next() == Some("true");
        let message = parts.next().unwrap_or_default().to_owned();
        Outcome::Err {
            kind,
            retryable,
            message,
        }
    }

    fn is_conflict(&self) -> bool {
        matches!(self, Outcome::Err { kind, retryable: false, .. } if kind == ErrorKind::Conflict.as_str())
    }
}

/// 100 clicks on step 1 of a fresh execution, 50 per process; returns every outcome.
async fn click_round(fx: &Fixture, runbook: Key, round: usize) {
    let exec = fx
        .vigilo
        .start_execution(&fx.who, runbook, StartOptions::default())
        .await
        .unwrap();
    let barrier = fx.barriers.join(format!("clicks-{round}"));
    let mut child = ChildProcess::spawn(&[
        "clicks".into(),
        Fixture::path_arg(&fx.db),
        fx.who.workspace.to_string(),
        fx.who.user.to_string(),
        exec.key.to_string(),
        CLICKS.to_string(),
        Fixture::path_arg(&barrier),
    ]);
    assert_eq!(child.line().await, "ready");

    let (go, gate) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = (0..CLICKS)
        .map(|_| {
            let (vigilo, who, mut gate) = (fx.vigilo.clone(), fx.who, gate.clone());
            tokio::spawn(async move {
                gate.wait_for(|open| *open).await.unwrap();
                let r = vigilo
                    .act(
                        &who,
                        exec.key,
                        Command::Done {
                            step: 1,
                            note: None,
                        },
                    )
                    .await;
                Outcome::of(&r)
            })
        })
        .collect();
    // Let the tasks reach the gate, then release both processes at once.
    tokio::time::sleep(Duration::from_millis(50)).await;
    fx.release(&format!("clicks-{round}"), "go");
    go.send(true).unwrap();

    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(("parent", t.await.unwrap()));
    }
    for _ in 0..CLICKS {
        let line = child.line().await;
        let outcome = if let Some(rest) = line.strip_prefix("outcome ok ") {
            assert_eq!(rest, "2", "the applied Done is event 2");
            Outcome::Ok
        } else if let Some(rest) = line.strip_prefix("outcome err ") {
            Outcome::parse_err(rest)
        } else {
            panic!("unexpected line from the child: {line:?}");
        };
        outcomes.push(("child", outcome));
    }
    child.wait_success();

    let applied: Vec<_> = outcomes.iter().filter(|(_, o)| *o == Outcome::Ok).collect();
    let others: Vec<_> = outcomes
        .iter()
        .filter(|(_, o)| *o != Outcome::Ok && !o.is_conflict())
        .collect();
    assert_eq!(
        applied.len(),
        1,
        "round {round}: exactly one click applies: {applied:?}"
    );
    assert!(
        others.is_empty(),
        "round {round}: every other click is a conflict (no busy/unavailable): {others:?}"
    );
    assert_eq!(outcomes.len(), 2 * CLICKS);

    let events = fx.vigilo.execution_events(&fx.who, exec.key).await.unwrap();
    let kinds: Vec<_> = events
        .iter()
        .map(|e| (e.seq, e.kind, e.step_order))
        .collect();
    assert_eq!(
        kinds,
        [(1, EventKind::Started, None), (2, EventKind::Done, Some(1))],
        "round {round}: one Done event"
    );
    let stored = fx.vigilo.execution(&fx.who, exec.key).await.unwrap();
    assert_eq!(stored.rev, 2);
    println!(
        "round {round}: the winner was in the {}; {} conflicts",
        applied[0].0,
        outcomes.len() - 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_clicks_from_two_processes_apply_once() {
    let fx = Fixture::new().await;
    let rb = fx.runbook(3).await;
    const ROUNDS: usize = 3;
    for round in 1..=ROUNDS {
        click_round(&fx, rb.key, round).await;
    }
    assert_eq!(
        fx.actions("execution.step_done").await.len(),
        ROUNDS,
        "one step_done audit entry per round"
    );
    // Workspace, runbook, and per round a start and one Done.
    assert_eq!(fx.chain_is_intact().await, 2 + 2 * ROUNDS as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_edits_from_two_processes_have_one_winner_per_round() {
    const ROUNDS: u32 = 8;
    const EDITORS: usize = 4;
    let fx = Fixture::new().await;
    let rb = fx.runbook(5).await;
    let mut child = ChildProcess::spawn(&[
        "edits".into(),
        Fixture::path_arg(&fx.db),
        fx.who.workspace.to_string(),
        fx.who.user.to_string(),
        rb.key.to_string(),
        ROUNDS.to_string(),
        EDITORS.to_string(),
        Fixture::path_arg(&fx.barriers),
    ]);
    assert_eq!(child.line().await, "ready");
    let base = RunbookInput::from(&rb.body);

    for round in 1..=ROUNDS {
        // Every edit of this round is based on the version the previous round left.
        let expected = round;
        let (go, gate) = tokio::sync::watch::channel(false);
        let tasks: Vec<_> = (0..EDITORS)
            .map(|editor| {
                let (vigilo, who, mut gate) = (fx.vigilo.clone(), fx.who, gate.clone());
                let mut input = base.clone();
                input.description =
                    format!("Round {round}: edited by the parent, editor {editor}.");
                tokio::spawn(async move {
                    gate.wait_for(|open| *open).await.unwrap();
                    let r = vigilo
                        .edit_runbook(&who, rb.key, input, Some(expected), VersionSource::Edit)
                        .await;
                    if let Ok(out) = &r {
                        assert!(
                            out.changed,
                            "an edit that changes the body bumps the version"
                        );
                        assert_eq!(out.runbook.version, expected + 1);
                    }
                    Outcome::of(&r)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        fx.release(&format!("go-{round}"), &expected.to_string());
        go.send(true).unwrap();

        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(("parent", t.await.unwrap()));
        }
        loop {
            let line = child.line().await;
            if line == format!("round {round} done") {
                break;
            }
            let rest = line
                .strip_prefix(&format!("edit {round} "))
                .unwrap_or_else(|| panic!("unexpected line from the child: {line:?}"));
            let outcome = if let Some(version) = rest.strip_prefix("ok ") {
                assert_eq!(version, (expected + 1).to_string());
                Outcome::Ok
            } else if let Some(err) = rest.strip_prefix("err ") {
                Outcome::parse_err(err)
            } else {
                panic!("unexpected line from the child: {line:?}");
            };
            outcomes.push(("child", outcome));
        }
        assert_eq!(outcomes.len(), 2 * EDITORS, "round {round}: {outcomes:?}");
        let winners: Vec<_> = outcomes.iter().filter(|(_, o)| *o == Outcome::Ok).collect();
        assert_eq!(winners.len(), 1, "round {round}: one winner: {outcomes:?}");
        let losers: Vec<_> = outcomes.iter().filter(|(_, o)| *o != Outcome::Ok).collect();
        assert!(
            losers.iter().all(|(_, o)| o.is_conflict()),
            "round {round}: every loser gets the stale-version conflict: {losers:?}"
        );
        println!("round {round}: the winner was in the {}", winners[0].0);
    }
    child.wait_success();

    let now = fx.vigilo.runbook(&fx.who, rb.key).await.unwrap();
    assert_eq!(now.version, ROUNDS + 1);
    let versions = fx
        .store
        .runbook_versions(fx.who.workspace, rb.id)
        .await
        .unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        (1..=ROUNDS + 1).collect::<Vec<_>>()
    );
    assert_eq!(fx.actions("runbook.edited").await.len(), ROUNDS as usize);
    // Workspace, runbook creation, one edit per round.
    assert_eq!(fx.chain_is_intact().await, 2 + u64::from(ROUNDS));
}
