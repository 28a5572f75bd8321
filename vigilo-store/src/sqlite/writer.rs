//! The writer thread: it owns the one write connection and group-commits.
//!
//! Callers send a [`Request`] over a channel and await its answer on a Tokio oneshot. The
//! thread takes every request queued so far (at most `max_batch`) and runs them in ONE
//! `BEGIN IMMEDIATE` transaction, each inside its own `SAVEPOINT`: a request that fails is
//! rolled back to its savepoint alone, and its neighbours go on. Then it commits once (one WAL
//! sync for the whole batch) and answers every caller only after `COMMIT` returned, so an
//! `Ok` is durable. Requests that arrive meanwhile form the next batch.
//!
//! If a statement error aborted the whole transaction (SQLite does so for I/O errors, a full
//! disk, or out of memory), the failing request is answered with its error and the batch is
//! run again without it. If `BEGIN` or `COMMIT` finds the file locked by another process after
//! `busy_timeout`, it is retried with backoff, and after the last retry every caller of the
//! batch gets [`StoreError::Unavailable`] with nothing applied.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;
use tracing::{debug, error, warn};
use vigilo_core::audit::AuditEntry;
use vigilo_core::ids::{Key, KeyKind, WorkspaceId};
use vigilo_core::store::{Commit, StoreError, StoreResult};

use super::options::SqliteOptions;
use super::rows::is_busy;
use super::write::{allocate_key, apply_commit};

/// The first pause before retrying a busy `BEGIN`/`COMMIT`; doubled each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
/// The longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How many committed transactions between two `PRAGMA optimize` (planner statistics).
const OPTIMIZE_EVERY: u64 = 1000;

/// A write the thread performs.
pub(crate) enum Op {
    /// [`vigilo_core::store::Store::commit`].
    Commit(Box<Commit>),
    /// [`vigilo_core::store::Store::allocate_key`].
    AllocateKey(WorkspaceId, KeyKind),
    /// [`vigilo_core::store::Store::commit_all`]: several commits under one savepoint.
    CommitAll(Vec<Commit>),
}

/// What a performed [`Op`] returns.
pub(crate) enum Done {
    /// The sealed audit entry of a commit.
    Entry(Box<AuditEntry>),
    /// An allocated key.
    Key(Key),
    /// The sealed audit entries of a [`Op::CommitAll`], in order.
    Entries(Vec<AuditEntry>),
}

/// One queued write and where to answer it.
pub(crate) struct Request {
    op: Op,
    reply: oneshot::Sender<StoreResult<Done>>,
    /// When it was queued (how long the oldest of a batch waited is logged at debug level).
    queued: Instant,
}

/// Counts of what the writer committed since the store was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Transactions committed (each one disk sync with `synchronous=FULL`).
    pub transactions: u64,
    /// Requests (commits and key allocations) answered from those transactions, successful or
    /// refused. `writes / transactions` is the average group-commit batch.
    pub writes: u64,
}

/// The live counters behind [`WriteStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    transactions: AtomicU64,
    writes: AtomicU64,
}

impl Counters {
    pub(crate) fn get(&self) -> WriteStats {
        WriteStats {
            transactions: self.transactions.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
        }
    }
}

/// The handle callers use to reach the writer thread. Dropping it stops the thread once the
/// queued requests are done.
pub(crate) struct Writer {
    queue: mpsc::Sender<Request>,
    counters: Arc<Counters>,
}

impl Writer {
    /// Starts the thread, which takes ownership of `conn`.
    pub(crate) fn spawn(
        conn: Connection,
        options: SqliteOptions,
    ) -> std::io::Result<(Self, thread::JoinHandle<()>)> {
        let (queue, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let handle = thread::Builder::new()
            .name("vigilo-sqlite-writer".into())
            .spawn(move || run(conn, rx, &options, &thread_counters))?;
        Ok((Self { queue, counters }, handle))
    }

    /// What the writer committed so far.
    pub(crate) fn stats(&self) -> WriteStats {
        self.counters.get()
    }

    /// Queues `op` and waits (asynchronously) until it is committed or refused.
    pub(crate) async fn submit(&self, op: Op) -> StoreResult<Done> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Unavailable {
            message: "the SQLite writer thread has stopped".into(),
            source: None,
        };
        self.queue
            .send(Request {
                op,
                reply,
                queued: Instant::now(),
            })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The thread's loop: one batch per wake-up, until every [`Writer`] is dropped.
fn run(
    conn: Connection,
    rx: mpsc::Receiver<Request>,
    options: &SqliteOptions,
    counters: &Counters,
) {
    let max = options.max_batch.max(1);
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < max {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let before = counters.get().transactions;
        process(&conn, batch, options, counters);
        let after = counters.get().transactions;
        if after != before && after.is_multiple_of(OPTIMIZE_EVERY) {
            optimize(&conn);
        }
    }
    optimize(&conn);
    debug!("SQLite writer thread stopped");
}

/// Refreshes planner statistics where tables changed a lot (cheap when none did).
fn optimize(conn: &Connection) {
    if let Err(e) = conn.execute_batch("PRAGMA optimize") {
        warn!(error = %e, "PRAGMA optimize failed");
    }
}

/// How one attempt at a batch ended.
enum Attempt {
    /// Committed: one result per request, in order.
    Committed(Vec<StoreResult<Done>>),
    /// The request at this index broke the whole transaction (rolled back); retry without it.
    Aborted(usize, StoreError),
    /// Nothing could be committed; every request fails with this.
    Failed(Failure),
}

/// A failure shared by a whole batch (errors are not `Clone`, so each caller gets its own).
struct Failure {
    busy: bool,
    message: String,
}

impl Failure {
    fn of(doing: &str, e: &rusqlite::Error) -> Self {
        Self {
            busy: is_busy(e),
            message: format!("{doing}: {e}"),
        }
    }

    fn to_error(&self) -> StoreError {
        if self.busy {
            StoreError::Unavailable {
                message: format!(
                    "the database stayed locked by another process ({})",
                    self.message
                ),
                source: None,
            }
        } else {
            StoreError::Backend {
                message: self.message.clone(),
                source: None,
            }
        }
    }
}

/// Runs a batch until it is committed or failed, answering every caller once.
fn process(
    conn: &Connection,
    mut batch: Vec<Request>,
    options: &SqliteOptions,
    counters: &Counters,
) {
    let started = Instant::now();
    let waited = batch
        .first()
        .map_or(Duration::ZERO, |r| started.duration_since(r.queued));
    loop {
        let mut commit_took = Duration::ZERO;
        match attempt(conn, &batch, options, &mut commit_took) {
            Attempt::Committed(results) => {
                debug!(
                    writes = batch.len(),
                    waited_us = waited.as_micros() as u64,
                    apply_us = started.elapsed().saturating_sub(commit_took).as_micros() as u64,
                    commit_us = commit_took.as_micros() as u64,
                    "group commit"
                );
                counters.transactions.fetch_add(1, Ordering::Relaxed);
                counters
                    .writes
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                for (request, result) in batch.into_iter().zip(results) {
                    // The caller may have given up waiting; the write stands all the same.
                    let _ = request.reply.send(result);
                }
                return;
            }
            Attempt::Aborted(index, err) => {
                warn!(error = %err, "a write aborted its batch's transaction; retrying the others");
                let request = batch.remove(index);
                let _ = request.reply.send(Err(err));
                if batch.is_empty() {
                    return;
                }
            }
            Attempt::Failed(failure) => {
                error!(message = %failure.message, writes = batch.len(), "a batch of writes failed");
                for request in batch {
                    let _ = request.reply.send(Err(failure.to_error()));
                }
                return;
            }
        }
    }
}

/// Runs `sql` (a transaction-control statement), retrying while another process holds the lock.
fn with_busy_retry(conn: &Connection, sql: &str, options: &SqliteOptions) -> rusqlite::Result<()> {
    let mut pause = FIRST_BACKOFF;
    let mut tries = 0;
    loop {
        match conn.prepare_cached(sql).and_then(|mut s| s.execute([])) {
            Ok(_) => return Ok(()),
            Err(e) if is_busy(&e) && tries < options.busy_retries => {
                tries += 1;
                warn!(statement = sql, attempt = tries, "database busy; retrying");
                thread::sleep(pause);
                pause = (pause * 2).min(MAX_BACKOFF);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Runs a transaction-control statement without retry.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(drop)
}

/// Rolls back whatever transaction is open (after a failure).
fn rollback(conn: &Connection) {
    if !conn.is_autocommit()
        && let Err(e) = exec(conn, "ROLLBACK")
    {
        error!(error = %e, "ROLLBACK failed");
    }
}

/// One try at a batch: one transaction, one savepoint per request, one commit. `commit_took`
/// is set to how long `COMMIT` (the disk sync) took.
fn attempt(
    conn: &Connection,
    batch: &[Request],
    options: &SqliteOptions,
    commit_took: &mut Duration,
) -> Attempt {
    if let Err(e) = with_busy_retry(conn, "BEGIN IMMEDIATE", options) {
        return Attempt::Failed(Failure::of("BEGIN IMMEDIATE", &e));
    }
    let mut results = Vec::with_capacity(batch.len());
    for (index, request) in batch.iter().enumerate() {
        if let Err(e) = exec(conn, "SAVEPOINT request") {
            rollback(conn);
            return Attempt::Failed(Failure::of("SAVEPOINT", &e));
        }
        let outcome = match &request.op {
            Op::Commit(commit) => apply_commit(conn, commit).map(|e| Done::Entry(Box::new(e))),
            Op::AllocateKey(ws, kind) => allocate_key(conn, *ws, *kind).map(Done::Key),
            // One savepoint for all of them: the first failure rolls every one back.
            Op::CommitAll(commits) => commits
                .iter()
                .map(|c| apply_commit(conn, c))
                .collect::<StoreResult<Vec<_>>>()
                .map(Done::Entries),
        };
        match outcome {
            Ok(done) => {
                if let Err(e) = exec(conn, "RELEASE request") {
                    rollback(conn);
                    return Attempt::Failed(Failure::of("RELEASE", &e));
                }
                results.push(Ok(done));
            }
            Err(err) => {
                if conn.is_autocommit() {
                    // SQLite rolled the whole transaction back: the batch must run again.
                    return Attempt::Aborted(index, err);
                }
                if let Err(e) =
                    exec(conn, "ROLLBACK TO request").and_then(|()| exec(conn, "RELEASE request"))
                {
                    rollback(conn);
                    warn!(error = %e, "ROLLBACK TO a savepoint failed");
                    return Attempt::Aborted(index, err);
                }
                results.push(Err(err));
            }
        }
    }
    let committing = Instant::now();
    let committed = with_busy_retry(conn, "COMMIT", options);
    *commit_took = committing.elapsed();
    if let Err(e) = committed {
        rollback(conn);
        return Attempt::Failed(Failure::of("COMMIT", &e));
    }
    Attempt::Committed(results)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use chrono::Utc;
    use vigilo_core::audit::{AuditDraft, AuditLinks};
    use vigilo_core::fields::Name;
    use vigilo_core::store::Write;
    use vigilo_core::workspace::{Policy, Workspace};

    use super::super::migrations::MIGRATIONS;
    use super::super::open::open_writer;
    use super::*;

    fn commit(ws: WorkspaceId, writes: Vec<Write>, details: serde_json::Value) -> Op {
        Op::Commit(Box::new(Commit {
            workspace: ws,
            writes,
            audit: AuditDraft {
                at: Utc::now(),
                actor: None,
                actor_handle: None,
                action: "test".into(),
                target: "test".into(),
                details,
                links: AuditLinks::default(),
                origin: None,
            },
            acting: None,
        }))
    }

    /// A write that fills the disk (here: the page limit) can make SQLite abandon the whole
    /// transaction; the writer then fails that write alone and commits its neighbours.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_breaks_the_transaction_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full.db");
        let options = SqliteOptions::default();
        let conn = open_writer(&path, &options, MIGRATIONS).unwrap();
        let ws = Workspace {
            id: WorkspaceId::new(),
            slug: Name::parse_field("slug", "ops").unwrap(),
            policy: Policy::default(),
            slack_team: None,
            created_at: Utc::now(),
            rev: 1,
        };
        let create = Write::Workspace {
            workspace: ws.clone(),
            expected_rev: None,
        };
        let Op::Commit(first) = commit(ws.id, vec![create], serde_json::json!({})) else {
            unreachable!()
        };
        apply_commit(&conn, &first).unwrap();
        let pages: i64 = conn
            .pragma_query_value(None, "page_count", |r| r.get(0))
            .unwrap();
        conn.pragma_update(None, "max_page_count", pages + 40)
            .unwrap();
        let (writer, thread) = Writer::spawn(conn, options).unwrap();
        let writer = Arc::new(writer);

        // Hold the lock so that the three requests queue into one batch.
        let lock = Connection::open(&path).unwrap();
        lock.execute_batch("BEGIN IMMEDIATE").unwrap();
        let blocker = {
            let w = Arc::clone(&writer);
            tokio::spawn(
                async move { w.submit(commit(ws.id, vec![], serde_json::json!({}))).await },
            )
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let huge = serde_json::json!({ "blob": "x".repeat(1 << 20) });
        let tasks: Vec<_> = [
            serde_json::json!({"n": 1}),
            huge,
            serde_json::json!({"n": 3}),
        ]
        .into_iter()
        .map(|details| {
            let w = Arc::clone(&writer);
            tokio::spawn(async move { w.submit(commit(ws.id, vec![], details)).await })
        })
        .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        lock.execute_batch("COMMIT").unwrap();

        assert!(blocker.await.unwrap().is_ok());
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        assert!(results[0].is_ok(), "{:?}", results[0].as_ref().err());
        assert!(
            matches!(results[1], Err(StoreError::Unavailable { .. })),
            "{:?}",
            results[1].as_ref().err()
        );
        assert!(results[2].is_ok(), "{:?}", results[2].as_ref().err());
        // The three tasks reach the writer in any order; the two that committed took the two
        // numbers after the blocker's, with no gap where the failed one was.
        let mut seqs: Vec<u64> = [&results[0], &results[2]]
            .iter()
            .map(|r| match r {
                Ok(Done::Entry(e)) => e.seq,
                _ => 0,
            })
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, vec![3, 4], "no gap where the failed entry was");

        drop(writer);
        thread.join().unwrap();
    }
}
