//! Faults against a real PostgreSQL server (`VIGILO_TEST_PG_URL`, an admin URL such as
//! `postgres://postgres@127.0.0.1:5432/postgres`): connections lost in the middle of a commit
//! and replicas migrating one fresh database at the same moment.
//!
//! Connection losses are made two ways:
//!
//! - `pg_terminate_backend` from another connection while the commit's backend waits for a
//!   lock another test connection holds (on the execution row, or on the audit chain head after
//!   every row write of the commit ran);
//! - a TCP proxy between the store and the server that cuts the connection exactly at `COMMIT`:
//!   before the server gets it (it can never commit), right after (it commits, but the reply
//!   never arrives: the outcome is in doubt until the store asks the server), or before it
//!   while keeping the server's side open (a broken network: the server keeps the transaction
//!   open until the store ends its backend).
//!
//! Step transitions run both ways: as one call of the server-side function (the default) and as
//! a transaction (`PgOptions::server_side_transitions(false)`); for the call, the proxy cuts
//! at the request that carries it instead of at `COMMIT`.
//!
//! Every time, the action must be applied completely or not at all, a failed call must be
//! [`StoreError::Unavailable`] (retryable), the next attempt must succeed, and the audit chain
//! must verify. Without `VIGILO_TEST_PG_URL` each test says it was skipped, and passes.

#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_postgres::NoTls;
use vigilo_core::audit;
use vigilo_core::error::Error;
use vigilo_core::execution::ExecutionStatus;
use vigilo_core::execution::machine::Command;
use vigilo_core::ids::Key;
use vigilo_core::runbook::{RunbookInput, StepInput};
use vigilo_core::service::{CreateRunbook, StartOptions, Vigilo, Who};
use vigilo_core::store::{AuditQuery, Store, StoreError};
use vigilo_store::postgres::{MIGRATIONS, PgOptions, PgStore, ScratchDatabase};

const URL_VAR: &str = "VIGILO_TEST_PG_URL";

/// The admin URL, or `None` after saying plainly that the test is skipped.
fn admin_url(test: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) => Some(url),
        Err(_) => {
            println!(
                "SKIPPED {test}: {URL_VAR} is not set, so there is no PostgreSQL server to test \
                 against. Set {URL_VAR}=postgres://postgres@127.0.0.1:5432/postgres to run it."
            );
            None
        }
    }
}

/// A plain connection to `url` (for blocking locks and killing backends).
async fn plain(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A workspace with an owner and a running execution of a three-step runbook.
struct Fixture {
    store: Arc<PgStore>,
    vigilo: Vigilo,
    who: Who,
    exec: Key,
}

impl Fixture {
    async fn new(url: &str, options: PgOptions) -> Self {
        let store = Arc::new(PgStore::connect(url, options).await.unwrap());
        let vigilo = Vigilo::new(store.clone());
        let (ws, owner) = vigilo
            .create_workspace("ops", "alice", "Alice")
            .await
            .unwrap();
        let who = Who::new(ws.id, owner.id);
        let step = |title: &str| StepInput {
            title: title.into(),
            est_minutes: 5,
            ..StepInput::default()
        };
        let input = RunbookInput {
            title: "Restart the API".into(),
            description: "When it hangs".into(),
            category: "api".into(),
            steps: vec![step("Drain"), step("Restart"), step("Check")],
        };
        let rb = vigilo
            .create_runbook(
                &who,
                input,
                CreateRunbook {
                    publish: true,
                    ..CreateRunbook::default()
                },
            )
            .await
            .unwrap();
        let exec = vigilo
            .start_execution(&who, rb.key, StartOptions::default())
            .await
            .unwrap()
            .key;
        Self {
            store,
            vigilo,
            who,
            exec,
        }
    }

    async fn done(&self, step: u32) -> Result<(), Error> {
        self.vigilo
            .act(&self.who, self.exec, Command::Done { step, note: None })
            .await
            .map(drop)
    }

    /// (execution revision, number of step events, number of audit entries), after checking
    /// that the audit chain verifies.
    async fn state(&self) -> (u64, usize, usize) {
        let ws = self.who.workspace;
        let ex = self.store.execution_by_key(ws, self.exec).await.unwrap();
        let events = self.store.step_events(ws, ex.id).await.unwrap();
        let chain = self.store.audit(ws, &AuditQuery::default()).await.unwrap();
        audit::verify(&chain).expect("the audit chain verifies");
        (ex.rev, events.len(), chain.len())
    }

    async fn execution_id(&self) -> uuid::Uuid {
        self.store
            .execution_by_key(self.who.workspace, self.exec)
            .await
            .unwrap()
            .id
            .0
    }
}

#[track_caller]
fn assert_unavailable(r: Result<(), Error>, what: &str) {
    match r {
        Err(Error::Store(StoreError::Unavailable { .. })) => {}
        other => panic!("{what}: expected Store(Unavailable), got {other:?}"),
    }
}

/// Waits until a backend of `application_name` waits for a lock, then terminates it.
async fn kill_when_waiting(admin: &tokio_postgres::Client, application_name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = admin
            .query(
                "SELECT pid FROM pg_stat_activity
                 WHERE application_name = $1 AND wait_event_type = 'Lock'",
                &[&application_name],
            )
            .await
            .unwrap();
        if let Some(row) = rows.first() {
            let pid: i32 = row.get(0);
            let killed: bool = admin
                .query_one("SELECT pg_terminate_backend($1)", &[&pid])
                .await
                .unwrap()
                .get(0);
            assert!(killed, "terminate backend {pid}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the commit never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs "done step 1" while `lock_sql` (with the fixture's `$1`) holds a lock in another
/// transaction, kills the commit's backend while it waits, and checks that nothing was applied,
/// the caller got `Unavailable`, and the retry applies the step once.
async fn killed_while_waiting(test: &str, lock_sql: &str, lock_param: Lock, one_call: bool) {
    let Some(admin) = admin_url(test) else { return };
    let scratch = ScratchDatabase::create_schema(&admin).await.unwrap();
    let app = scratch.name().to_owned();
    let f = Fixture::new(
        scratch.url(),
        PgOptions::default()
            .max_connections(4)
            .application_name(app.clone())
            .server_side_transitions(one_call),
    )
    .await;
    let before = f.state().await;

    let blocker = plain(scratch.url()).await;
    blocker.batch_execute("BEGIN").await.unwrap();
    let param = match lock_param {
        Lock::Execution => f.execution_id().await,
        Lock::Workspace => f.who.workspace.0,
    };
    blocker.query(lock_sql, &[&param]).await.unwrap();

    let act = {
        let vigilo = f.vigilo.clone();
        let (who, exec) = (f.who, f.exec);
        tokio::spawn(async move {
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
                .map(drop)
        })
    };
    let killer = plain(&admin).await;
    kill_when_waiting(&killer, &app).await;
    assert_unavailable(act.await.unwrap(), "a commit whose connection was killed");
    blocker.batch_execute("ROLLBACK").await.unwrap();

    assert_eq!(
        f.state().await,
        before,
        "nothing of the killed commit was applied"
    );
    f.done(1).await.expect("the next attempt succeeds");
    let (rev, events, entries) = f.state().await;
    assert_eq!(
        (rev, events, entries),
        (before.0 + 1, before.1 + 1, before.2 + 1),
        "the retry applied the step once"
    );
    drop(f);
    scratch.drop_database().await;
}

/// Which fixture id the blocking statement locks.
enum Lock {
    Execution,
    Workspace,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_killed_while_waiting_for_a_row_lock_applies_nothing() {
    killed_while_waiting(
        "a_commit_killed_while_waiting_for_a_row_lock_applies_nothing",
        "SELECT 1 FROM executions WHERE id = $1 FOR UPDATE",
        Lock::Execution,
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_killed_while_waiting_for_a_row_lock_applies_nothing() {
    killed_while_waiting(
        "a_transaction_killed_while_waiting_for_a_row_lock_applies_nothing",
        "SELECT 1 FROM executions WHERE id = $1 FOR UPDATE",
        Lock::Execution,
        false,
    )
    .await;
}

/// The commit's row writes all ran; it dies waiting for the audit chain head: they are rolled
/// back with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_killed_while_waiting_for_the_chain_head_applies_nothing() {
    killed_while_waiting(
        "a_commit_killed_while_waiting_for_the_chain_head_applies_nothing",
        "SELECT 1 FROM audit_heads WHERE workspace_id = $1 FOR UPDATE",
        Lock::Workspace,
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_killed_while_waiting_for_the_chain_head_applies_nothing() {
    killed_while_waiting(
        "a_transaction_killed_while_waiting_for_the_chain_head_applies_nothing",
        "SELECT 1 FROM audit_heads WHERE workspace_id = $1 FOR UPDATE",
        Lock::Workspace,
        false,
    )
    .await;
}

/// What the proxy does with the next `COMMIT` it sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Cut {
    /// Nothing: pass everything through.
    Never = 0,
    /// Swallow the `COMMIT` and close both connections: the server never gets it.
    BeforeCommit = 1,
    /// Forward the `COMMIT`, then close the client's connection at once (the server's a
    /// moment later): the server commits, the client never hears of it.
    AfterCommit = 2,
    /// Swallow the `COMMIT` and close the client's connection, but keep the server's open (a
    /// broken network): the server keeps the transaction open, idle, holding its locks.
    HangBeforeCommit = 3,
}

/// Where the proxy cuts: at `COMMIT` (a transaction's last message), or at the call of a
/// one-call step transition (the whole request holding it, recognised by the audit action it
/// carries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    Commit,
    StepCall,
}

impl At {
    fn pattern(self) -> &'static [u8] {
        match self {
            At::Commit => COMMIT_MESSAGE,
            At::StepCall => b"execution.step_done",
        }
    }

    /// Where the request to hold back starts in a chunk the pattern was found in at `at`.
    fn cut_point(self, at: usize) -> usize {
        match self {
            At::Commit => at,
            At::StepCall => 0,
        }
    }
}

/// A TCP proxy to the PostgreSQL server that cuts one connection at its next `COMMIT` (or
/// step call).
struct Proxy {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
}

/// The simple-protocol query message `COMMIT` (what tokio-postgres sends to commit).
const COMMIT_MESSAGE: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";

impl Proxy {
    async fn start(upstream: SocketAddr, at: At) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(Cut::Never as u8));
        let shared = mode.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                tokio::spawn(pump(client, server, shared.clone(), at));
            }
        });
        Self { addr, mode }
    }

    fn arm(&self, cut: Cut) {
        self.mode.store(cut as u8, Ordering::SeqCst);
    }

    fn armed(&self) -> bool {
        self.mode.load(Ordering::SeqCst) != Cut::Never as u8
    }
}

async fn pump(client: TcpStream, server: TcpStream, mode: Arc<AtomicU8>, cut_at: At) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from_client.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let pattern = cut_at.pattern();
        let at = chunk
            .windows(pattern.len())
            .position(|w| w == pattern)
            .map(|at| cut_at.cut_point(at));
        if let Some(at) = at {
            let cut = mode.swap(Cut::Never as u8, Ordering::SeqCst);
            if cut == Cut::BeforeCommit as u8 {
                let _ = to_server.write_all(&chunk[..at]).await;
                back.abort();
                return;
            }
            if cut == Cut::HangBeforeCommit as u8 {
                let _ = to_server.write_all(&chunk[..at]).await;
                back.abort();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    drop(to_server);
                });
                return;
            }
            if cut == Cut::AfterCommit as u8 {
                let _ = to_server.write_all(chunk).await;
                let _ = to_server.flush().await;
                back.abort();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    drop(to_server);
                });
                return;
            }
        }
        if to_server.write_all(chunk).await.is_err() {
            break;
        }
    }
    back.abort();
}

/// A scratch database reached through a [`Proxy`] that cuts at `at`: the database, the proxy,
/// and the database's URL through the proxy. `None` when the test is skipped.
async fn proxied(test: &str, at: At) -> Option<(ScratchDatabase, Proxy, String)> {
    let admin = admin_url(test)?;
    let scratch = ScratchDatabase::create_schema(&admin).await.unwrap();
    // The server's address, from a connection made with the admin URL.
    let probe = plain(&admin).await;
    let row = probe
        .query_one("SELECT host(inet_server_addr()), inet_server_port()", &[])
        .await
        .unwrap();
    let host: Option<String> = row.get(0);
    let port: Option<i32> = row.get(1);
    let upstream: SocketAddr = format!(
        "{}:{}",
        host.unwrap_or_else(|| "127.0.0.1".into()),
        port.unwrap_or(5432)
    )
    .parse()
    .unwrap();
    let proxy = Proxy::start(upstream, at).await;
    let url = scratch
        .url()
        .replacen(&upstream.to_string(), &proxy.addr.to_string(), 1);
    assert_ne!(
        url,
        scratch.url(),
        "the admin URL names the server as host:port"
    );
    Some((scratch, proxy, url))
}

/// By default a step transition is one call: it sends no `COMMIT` (so the proxy, armed to cut
/// at the next one, never does); with the option off it is a transaction again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_transition_is_one_call_without_commit() {
    let Some((scratch, proxy, url)) =
        proxied("a_step_transition_is_one_call_without_commit", At::Commit).await
    else {
        return;
    };
    let f = Fixture::new(&url, PgOptions::default().max_connections(4)).await;
    let before = f.state().await;
    proxy.arm(Cut::BeforeCommit);
    f.done(1).await.expect("step 1 is applied");
    assert!(proxy.armed(), "no COMMIT was sent for the step");
    assert_eq!(
        f.state().await,
        (before.0 + 1, before.1 + 1, before.2 + 1),
        "the step, its event and its entry"
    );
    proxy.arm(Cut::Never);

    let transactions = Vigilo::new(Arc::new(
        PgStore::connect(
            &url,
            PgOptions::default()
                .max_connections(4)
                .server_side_transitions(false),
        )
        .await
        .unwrap(),
    ));
    proxy.arm(Cut::BeforeCommit);
    let cut = transactions
        .act(
            &f.who,
            f.exec,
            Command::Done {
                step: 2,
                note: None,
            },
        )
        .await
        .map(drop);
    assert_unavailable(cut, "a transaction cut at COMMIT");
    assert!(!proxy.armed(), "the transaction path sends COMMIT");
    drop((f, transactions));
    scratch.drop_database().await;
}

/// The store reaches the server through a proxy that cuts the connection at `COMMIT` (step
/// transitions as transactions) or at the step call (step transitions as one call).
async fn cut_at_commit(test: &str, cut: Cut, at: At) {
    let Some((scratch, proxy, url)) = proxied(test, at).await else {
        return;
    };
    let options = PgOptions::default()
        .max_connections(4)
        .server_side_transitions(at == At::StepCall);
    let f = Fixture::new(&url, options).await;
    let before = f.state().await;
    proxy.arm(cut);
    let result = f.done(1).await;
    assert!(!proxy.armed(), "the proxy cut the commit's connection");
    let after = f.state().await;
    match cut {
        Cut::BeforeCommit | Cut::HangBeforeCommit => {
            assert_unavailable(result, "a commit the server never got");
            assert_eq!(after, before, "nothing was applied");
            f.done(1).await.expect("the next attempt succeeds");
        }
        Cut::AfterCommit => {
            result.expect("a commit the server made is reported as made");
            assert_eq!(
                after,
                (before.0 + 1, before.1 + 1, before.2 + 1),
                "the step was applied once"
            );
            // Acting again on the same step changes nothing (the state machine says so).
            assert!(f.done(1).await.is_err(), "step 1 is no longer current");
        }
        Cut::Never => unreachable!(),
    }
    let (rev, events, entries) = f.state().await;
    assert_eq!(
        (rev, events, entries),
        (before.0 + 1, before.1 + 1, before.2 + 1),
        "step 1 was done exactly once"
    );
    f.done(2).await.unwrap();
    f.done(3).await.unwrap();
    let ex = f
        .store
        .execution_by_key(f.who.workspace, f.exec)
        .await
        .unwrap();
    assert_eq!(ex.status, ExecutionStatus::Completed);
    f.state().await;
    drop(f);
    scratch.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_before_commit_reached_the_server_applies_nothing() {
    cut_at_commit(
        "a_connection_lost_before_commit_reached_the_server_applies_nothing",
        Cut::BeforeCommit,
        At::Commit,
    )
    .await;
}

/// The server never notices the client is gone (its socket stays open): the store ends the
/// backend still holding the transaction (and the chain head), learns it aborted, and says
/// `Unavailable`; the next attempt does not wait for that transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_cut_off_by_a_broken_network_applies_nothing() {
    cut_at_commit(
        "a_commit_cut_off_by_a_broken_network_applies_nothing",
        Cut::HangBeforeCommit,
        At::Commit,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_after_commit_reached_the_server_reports_the_commit() {
    cut_at_commit(
        "a_connection_lost_after_commit_reached_the_server_reports_the_commit",
        Cut::AfterCommit,
        At::Commit,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_call_lost_before_it_reached_the_server_applies_nothing() {
    cut_at_commit(
        "a_step_call_lost_before_it_reached_the_server_applies_nothing",
        Cut::BeforeCommit,
        At::StepCall,
    )
    .await;
}

/// The server's side of the connection stays open and its backend idle: the store ends that
/// backend (so the call can never arrive later), finds no entry, and says `Unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_call_cut_off_by_a_broken_network_applies_nothing() {
    cut_at_commit(
        "a_step_call_cut_off_by_a_broken_network_applies_nothing",
        Cut::HangBeforeCommit,
        At::StepCall,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_call_lost_after_it_reached_the_server_reports_the_commit() {
    cut_at_commit(
        "a_step_call_lost_after_it_reached_the_server_reports_the_commit",
        Cut::AfterCommit,
        At::StepCall,
    )
    .await;
}

/// Four replicas start at the same moment on a fresh database: all connect, the schema is
/// migrated once, and the store works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connects_migrate_a_fresh_database_once() {
    let Some(admin) = admin_url("concurrent_connects_migrate_a_fresh_database_once") else {
        return;
    };
    let scratch = ScratchDatabase::create(&admin).await.unwrap();
    let url = scratch.url().to_owned();
    let connects: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                PgStore::connect(&url, PgOptions::default().max_connections(2)).await
            })
        })
        .collect();
    let mut stores = Vec::new();
    for c in connects {
        stores.push(c.await.unwrap().expect("every replica connects"));
    }
    let client = plain(&url).await;
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM vigilo_schema_version ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected: Vec<i32> = (1..=MIGRATIONS.len() as i32).collect();
    assert_eq!(versions, expected, "each migration recorded once");
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'audit'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 1);

    // Every replica works on the one schema.
    let vigilo = Vigilo::new(Arc::new(stores.pop().unwrap()));
    let (ws, _) = vigilo
        .create_workspace("ops", "alice", "Alice")
        .await
        .unwrap();
    for store in &stores {
        assert_eq!(store.workspace(ws.id).await.unwrap(), ws);
    }
    drop(stores);
    drop(vigilo);
    drop(client);
    scratch.drop_database().await;
}

/// A database migrated by a newer build (one more migration) is refused, untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused() {
    let Some(admin) = admin_url("a_newer_schema_is_refused") else {
        return;
    };
    let scratch = ScratchDatabase::create_schema(&admin).await.unwrap();
    let mut newer: Vec<&str> = MIGRATIONS.to_vec();
    newer.push("CREATE TABLE from_the_future (id integer)");
    let store = PgStore::connect_with_migrations(scratch.url(), PgOptions::default(), &newer)
        .await
        .unwrap();
    drop(store);
    match PgStore::connect(scratch.url(), PgOptions::default()).await {
        Err(vigilo_store::postgres::PgError::TooNew { found, known }) => {
            assert_eq!(
                (found as usize, known),
                (MIGRATIONS.len() + 1, MIGRATIONS.len())
            );
        }
        other => panic!("expected TooNew, got {other:?}"),
    }
    scratch.drop_database().await;
}
