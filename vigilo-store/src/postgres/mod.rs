//! [`PgStore`]: Vigilo's storage in PostgreSQL (feature `postgres`), for running several
//! replicas of the service against one database.
//!
//! - `migrations`: the schema ([`MIGRATIONS`]), applied by [`PgStore::connect`] under an
//!   advisory lock and recorded in `vigilo_schema_version`.
//! - `write`: one commit's SQL (row writes, then the audit chain head lock and the append);
//!   `transition`: a step transition (what every click commits) in one round trip, as one
//!   call of a server-side function;
//!   `read`: every read query; `search`: full-text search with `tsvector`.
//! - `lean`: executions as schema 4 stores them (a header, a snapshot of the steps stored once
//!   per content, state columns, the events) and how reads rebuild and check them;
//!   `convert`: whole executions into that form (schema 4's migration, the import).
//! - `rows`: JSON documents, numbers and times; `error`: [`PgError`] and how driver errors
//!   become [`StoreError`]s.
//! - `scratch` (feature `testkit`): `ScratchDatabase`, a throw-away database for tests.
//! - `import`: [`PgStore::import_snapshot`], the target side of `vigilo migrate` (see
//!   [`crate::transfer`]).
//!
//! The design mirrors the SQLite adapter (same logical schema, same checks in the same
//! order), with PostgreSQL's concurrency doing what SQLite's single writer did:
//!
//! - **Step transitions** (an execution's new revision and its step event: what every click
//!   commits) run as one autocommitted call of the `vigilo_step_transition` function, one
//!   round trip, with the checks, locks and answers of the transaction below (see
//!   `transition`; [`PgOptions::server_side_transitions`] turns it off). Either way a step
//!   writes only what changed: the execution's state columns, its event, the audit entry and
//!   the chain head; the execution is rebuilt from its events on read (`lean`).
//! - **Commits** run in one `READ COMMITTED` transaction each, on a pooled connection.
//!   Revisions are checked by the `UPDATE … WHERE rev = $expected` itself, unique values by the
//!   unique constraints (`23505` becomes [`StoreError::AlreadyExists`]), so concurrent writers
//!   in any number of processes get exactly one winner.
//! - **The audit chain** of each workspace is serialised by a row lock on the workspace's
//!   `audit_heads` row, taken as the commit's last lock and held until `COMMIT`: two replicas
//!   can never seal two entries after the same head (and the `(workspace_id, seq)` primary key
//!   of `audit` would refuse it anyway).
//! - **Keys** come from one autocommitted `INSERT … ON CONFLICT DO UPDATE SET last = last + 1
//!   RETURNING last` per call: the row lock makes it race-free across processes.
//! - **Deadlocks and serialization failures** (`40P01`, `40001`) abort the whole transaction,
//!   which is then run again with backoff ([`PgOptions::max_retries`]); callers never see them.
//! - **A lost connection** before `COMMIT` was sent means nothing was applied: the caller gets
//!   [`StoreError::Unavailable`] and may simply retry. If the connection breaks while `COMMIT`
//!   is on its way, the outcome is in doubt; the store then asks the server, on another
//!   connection, for the status of that transaction (`txid_status`) and answers accordingly:
//!   the sealed entry if it committed, `Unavailable` if it did not. (If the server still shows
//!   the transaction in progress after a second — the network broke, the socket did not close
//!   — the store ends that backend with `pg_terminate_backend`, which settles it either way.)
//!   A one-call step transition has no `COMMIT` to lose: a connection lost at any point of the
//!   call puts it in doubt, and the store settles it from the call's backend and the audit
//!   trail (see `transition`). Each question asked while settling is bounded by
//!   [`PgOptions::in_doubt_timeout`]. A connection found broken also empties the pool of its idle connections (a server
//!   restart or failover ends them all, and each would otherwise fail one caller in turn);
//!   reads, key allocations and a commit whose `BEGIN` found its connection dead then run once
//!   more on a new connection, so a bot recovers from a restarted server on its own.
//!   Sessions also run with an idle-in-transaction timeout
//!   ([`PgOptions::idle_in_transaction_timeout`]) and server-side TCP keepalives, so a commit
//!   cut off by a broken network cannot hold its workspace's chain head for long.
//!
//! TLS is not supported yet: connect over loopback or a private network (`sslmode=disable` or
//! the default `prefer`); a URL with `sslmode=require` is refused with
//! [`PgError::TlsUnsupported`].

mod convert;
mod error;
mod import;
mod lean;
mod migrations;
mod options;
mod read;
mod rows;
#[cfg(feature = "testkit")]
mod scratch;
mod search;
mod stats;
mod transition;
mod write;

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::{Client, Manager, ManagerConfig, ObjectId, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;
use tracing::{debug, info, warn};
use vigilo_core::analytics::{RunFacts, StatsQuery};
use vigilo_core::audit::AuditEntry;
use vigilo_core::change::ChangeRequest;
use vigilo_core::execution::{Execution, StepEvent};
use vigilo_core::ids::{ChangeId, ExecutionId, Key, KeyKind, RunbookId, UserId, WorkspaceId};
use vigilo_core::incident::Incident;
use vigilo_core::runbook::{Runbook, RunbookVersion};
use vigilo_core::store::{
    ActionReads, AuditQuery, Commit, DraftFilter, ExecutionQuery, RunbookQuery, Store, StoreError,
    StoreResult,
};
use vigilo_core::workspace::{ChatIdentity, Membership, User, Workspace};

pub use error::PgError;
pub use migrations::{MIGRATION_LOCK, MIGRATIONS};
pub use options::PgOptions;
#[cfg(feature = "testkit")]
pub use scratch::ScratchDatabase;

use error::{Fail, fail, is_connection_loss, pool_err, store_err, unavailable};
use transition::{Outcome, Transition};
use write::Sealed;

/// Runs one call on a pooled connection (`c`). If the call finds the connection broken, the
/// connection is discarded (see [`discard`]) with every idle one (see
/// [`PgStore::forget_idle`]), and the call runs once more on a new connection: reads are
/// idempotent, and a key allocation run twice at worst leaves a gap in the numbers, never hands
/// one out twice.
macro_rules! read {
    ($store:ident, |$c:ident| $call:expr) => {{
        let mut again = true;
        loop {
            let $c = $store.client().await?;
            let result = $call.await;
            match &result {
                Err(StoreError::Unavailable { .. }) => {
                    $store.discard($c);
                    $store.forget_idle();
                    if !again {
                        break result;
                    }
                    again = false;
                    debug!("a read found its connection broken; running it once more on a new one");
                }
                _ => break result,
            }
        }
    }};
}

/// The first pause before running a deadlocked commit again; doubled each time (with jitter).
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
/// The longest pause between two tries of a commit.
const MAX_BACKOFF: Duration = Duration::from_millis(500);
/// How long an in-doubt commit's old backend may stay "in progress" before the store ends it.
const IN_DOUBT_GRACE: Duration = Duration::from_secs(1);

/// A [`Store`] in a PostgreSQL database, shared safely by any number of processes.
///
/// Cheap to share behind an `Arc`; every call takes a connection from the store's pool for the
/// duration of one statement (reads, key allocation) or one transaction (commits). See the
/// [module documentation](self) for how commits, the audit chain and keys stay correct across
/// replicas.
///
/// ```no_run
/// # async fn demo() -> Result<(), vigilo_store::postgres::PgError> {
/// use std::sync::Arc;
/// use vigilo_core::store::Store;
/// use vigilo_store::postgres::{PgOptions, PgStore};
///
/// let store: Arc<dyn Store> = Arc::new(
///     PgStore::connect("postgres://vigilo@127.0.0.1:5432/vigilo", PgOptions::default()).await?,
/// );
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
pub struct PgStore {
    pool: Pool,
    options: PgOptions,
    /// The server process behind each pooled connection that ran a one-call step transition
    /// (to settle one whose connection broke): read once per connection.
    backends: Mutex<HashMap<ObjectId, transition::Backend>>,
    /// Set when one-call step transitions turned out impossible on this server.
    transactions_only: AtomicBool,
    /// Parsed execution snapshots (immutable, content-addressed).
    snapshots: lean::SnapshotCache,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PgStore")
            .field("connections", &status.size)
            .field("max_connections", &status.max_size)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database?…`, or
    /// a `key=value` connection string) and brings its schema up to date.
    ///
    /// Must be called within a Tokio runtime: each pooled connection is driven by a task
    /// spawned on it. Missing migrations of [`MIGRATIONS`] are applied, each in one
    /// transaction under an advisory lock, so replicas starting at the same moment are safe; a
    /// database whose schema is newer than this build knows is refused
    /// ([`PgError::TooNew`]) without being modified.
    pub async fn connect(url: &str, options: PgOptions) -> Result<Self, PgError> {
        Self::connect_with_migrations(url, options, MIGRATIONS).await
    }

    /// Like [`PgStore::connect`], with another list of migrations: for tests of the upgrade
    /// path. Production code uses [`MIGRATIONS`].
    pub async fn connect_with_migrations(
        url: &str,
        options: PgOptions,
        migrations: &[&str],
    ) -> Result<Self, PgError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(PgError::Url)?;
        if config.get_ssl_mode() == SslMode::Require {
            return Err(PgError::TlsUnsupported);
        }
        config.connect_timeout(options.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name(options.application_name.clone());
        }
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        config.options(session_options(config.get_options(), &options));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.acquire_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| PgError::Pool(e.to_string()))?;
        let mut client = pool
            .get()
            .await
            .map_err(|e| PgError::Connect(Box::new(e)))?;
        if let Err(e) = migrations::migrate(&mut client, migrations).await {
            // Never pool a connection that may still hold the migration lock.
            discard(client);
            return Err(e);
        }
        drop(client);
        info!(
            max_connections = options.max_connections,
            "connected PostgreSQL store"
        );
        Ok(Self {
            pool,
            options,
            backends: Mutex::new(HashMap::new()),
            transactions_only: AtomicBool::new(false),
            snapshots: lean::SnapshotCache::default(),
        })
    }

    /// The options the store was connected with.
    pub fn options(&self) -> &PgOptions {
        &self.options
    }

    /// Closes the pool: connections in use are closed when returned, later calls get
    /// [`StoreError::Unavailable`].
    pub fn close(&self) {
        self.pool.close();
    }

    /// Drops every idle pooled connection. Called after a connection loss: a server restart or
    /// failover ends every connection at once, and a dropped connection looks healthy to the
    /// pool until it is used, so without this each of them would fail one caller in turn.
    fn forget_idle(&self) {
        let dropped = self.pool.retain(|_, _| false).removed.len();
        if dropped > 0 {
            info!(
                dropped,
                "dropped the idle PostgreSQL connections after a connection loss"
            );
        }
    }

    /// A pooled connection, or `Unavailable`.
    async fn client(&self) -> StoreResult<Client> {
        self.pool.get().await.map_err(pool_err)
    }

    /// One try at commits: one transaction on one connection, all of them or none.
    async fn commit_once(&self, commits: &[Commit]) -> Result<Vec<AuditEntry>, Fail> {
        let mut client = self.pool.get().await.map_err(|e| Fail::done(pool_err(e)))?;
        if let [commit] = commits
            && self.options.server_side_transitions
            && !self.transactions_only.load(Ordering::Relaxed)
            && let Some(t) = Transition::of(commit)
        {
            match self.transition_once(client, &t).await {
                OneCall::Done(result) => return result.map(|entry| vec![entry]),
                OneCall::Declined(back) => client = back,
            }
        }
        match run_commit(&mut client, commits).await {
            Attempt::Committed(entries) => Ok(entries),
            Attempt::InDoubt(sealed, cause) => {
                self.discard(client);
                self.forget_idle();
                self.resolve_in_doubt(sealed, cause).await
            }
            Attempt::Failed(f) => {
                if matches!(f.error, StoreError::Unavailable { .. }) {
                    self.discard(client);
                    self.forget_idle();
                }
                Err(f)
            }
        }
    }

    /// One try at a step transition as one call ([`transition`]) on `client`; the client back
    /// when the transition must take the transaction path instead.
    async fn transition_once(&self, client: Client, t: &Transition<'_>) -> OneCall {
        let id = deadpool_postgres::Object::id(&client);
        let known = self.backends.lock().ok().and_then(|b| b.get(&id).copied());
        let backend = match known {
            Some(b) => b,
            None => match transition::backend(&client).await {
                Ok(Some(b)) => {
                    if let Ok(mut all) = self.backends.lock() {
                        // Connections the pool dropped on its own leave entries behind:
                        // start over now and then (each is read again on its next use).
                        if all.len() > 4 * self.options.max_connections {
                            all.clear();
                        }
                        all.insert(id, b);
                    }
                    b
                }
                // The server hides this session from it (an unusual setup): without the
                // backend an in-doubt call could not be settled, so step transitions take the
                // transaction path from now on.
                Ok(None) => {
                    if !self.transactions_only.swap(true, Ordering::Relaxed) {
                        warn!(
                            "this session is not in pg_stat_activity; step transitions run as transactions from now on"
                        );
                    }
                    return OneCall::Declined(client);
                }
                Err(e) if is_connection_loss(&e) => {
                    self.discard(client);
                    self.forget_idle();
                    let error = store_err("reading the connection's backend", e);
                    return OneCall::Done(Err(Fail { error, retry: true }));
                }
                // Busy or refused: this transition takes the transaction path.
                Err(e) => {
                    debug!(error = %e, "cannot read the connection's backend; running a transaction");
                    return OneCall::Declined(client);
                }
            },
        };
        let Some(outcome) = transition::run(&client, t).await else {
            return OneCall::Declined(client);
        };
        OneCall::Done(match outcome {
            Outcome::Committed(entry) => Ok(entry),
            Outcome::Failed(f) => {
                if matches!(f.error, StoreError::Unavailable { .. }) {
                    self.discard(client);
                    self.forget_idle();
                }
                Err(f)
            }
            Outcome::InDoubt(open, cause) => {
                // The connection is gone: out of the pool first, so that settling has every
                // slot but this one.
                self.discard(client);
                self.forget_idle();
                self.settle_transition(backend, open, cause).await
            }
        })
    }

    /// A one-call step transition whose connection broke while the call was on its way: ends
    /// its backend if it still runs, then learns from the audit trail whether it committed
    /// (see [`transition`]), until [`PgOptions::in_doubt_timeout`] passes.
    async fn settle_transition(
        &self,
        backend: transition::Backend,
        open: AuditEntry,
        cause: tokio_postgres::Error,
    ) -> Result<AuditEntry, Fail> {
        warn!(?backend, error = %cause, "connection lost during a step transition; asking the server whether it committed");
        let started = Instant::now();
        let deadline = started + self.options.in_doubt_timeout;
        let mut pause = Duration::from_millis(5);
        loop {
            match bounded(deadline, self.backend_state(backend)).await {
                Ok(None) => match bounded(deadline, self.find_entry(open.id)).await {
                    Ok(Some((seq, prev, hash))) => {
                        info!(?backend, "the in-doubt step transition had committed");
                        return transition::sealed(open, seq, prev, hash).map_err(Fail::done);
                    }
                    Ok(None) => {
                        info!(?backend, "the in-doubt step transition had not committed");
                        return Err(Fail::done(unavailable(
                            "the connection to PostgreSQL was lost while applying a step; \
                             nothing was applied",
                            cause,
                        )));
                    }
                    Err(e) => debug!(error = %e, "cannot look for the in-doubt entry yet"),
                },
                // Still running the call: let it finish for a moment (the server notices the
                // closed connection only when it next talks to it).
                Ok(Some(state)) if state == "active" && started.elapsed() < IN_DOUBT_GRACE => {
                    debug!(?backend, "the in-doubt step transition still runs");
                }
                Ok(Some(state)) => {
                    let ended = bounded(deadline, self.terminate(backend)).await;
                    debug!(?backend, %state, ?ended, "ended the backend of an in-doubt step transition");
                }
                Err(e) => debug!(error = %e, "cannot ask about the in-doubt step transition yet"),
            }
            if Instant::now() >= deadline {
                return Err(Fail::done(StoreError::Backend {
                    message: format!(
                        "the connection to PostgreSQL was lost while applying a step, and \
                         whether it was applied could not be learned within {:?}; read the \
                         execution again before retrying",
                        self.options.in_doubt_timeout
                    ),
                    source: Some(Box::new(cause)),
                }));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// See [`read::action_reads`].
    async fn read_for_action(
        &self,
        workspace: WorkspaceId,
        user: UserId,
        execution: Key,
    ) -> StoreResult<ActionReads> {
        read!(self, |c| read::action_reads(
            &c,
            &self.snapshots,
            workspace,
            user,
            execution
        ))
    }

    /// See [`transition::backend_state`].
    async fn backend_state(&self, backend: transition::Backend) -> StoreResult<Option<String>> {
        read!(self, |c| transition::backend_state(&c, backend))
    }

    /// See [`transition::terminate`].
    async fn terminate(&self, backend: transition::Backend) -> StoreResult<()> {
        read!(self, |c| transition::terminate(&c, backend))
    }

    /// See [`transition::find_entry`].
    async fn find_entry(
        &self,
        id: vigilo_core::ids::AuditId,
    ) -> StoreResult<Option<(i64, String, String)>> {
        read!(self, |c| transition::find_entry(&c, id))
    }

    /// Forgets the backend of a connection that is being dropped.
    fn forget_backend(&self, id: ObjectId) {
        if let Ok(mut all) = self.backends.lock() {
            all.remove(&id);
        }
    }

    /// Takes a broken connection out of the pool for good (see [`discard`]), forgetting its
    /// backend.
    fn discard(&self, client: Client) {
        self.forget_backend(deadpool_postgres::Object::id(&client));
        discard(client);
    }

    /// The connection broke while `COMMIT` was on its way: asks the server, on other
    /// connections, whether the transaction committed, until it knows or
    /// [`PgOptions::in_doubt_timeout`] passes.
    async fn resolve_in_doubt(
        &self,
        sealed: SealedAll,
        cause: tokio_postgres::Error,
    ) -> Result<Vec<AuditEntry>, Fail> {
        warn!(txid = sealed.txid, error = %cause, "connection lost during COMMIT; asking the server whether it committed");
        let started = Instant::now();
        let deadline = started + self.options.in_doubt_timeout;
        let mut pause = Duration::from_millis(20);
        let mut terminated = false;
        loop {
            match bounded(deadline, self.txid_status(sealed.txid)).await {
                Ok(Some(status)) if status == "committed" => {
                    info!(txid = sealed.txid, "the in-doubt commit had committed");
                    return Ok(sealed.entries);
                }
                Ok(Some(status)) if status == "aborted" => {
                    info!(txid = sealed.txid, "the in-doubt commit had not committed");
                    return Err(Fail::done(unavailable(
                        "the connection to PostgreSQL was lost while committing; nothing was applied",
                        cause,
                    )));
                }
                // "in progress": the server has not noticed the old connection is gone (a
                // broken network rather than a closed socket). After a moment, end it: its
                // transaction then commits if `COMMIT` had arrived, and aborts if not.
                Ok(status) => {
                    debug!(?status, "in-doubt commit not resolved yet");
                    if !terminated && started.elapsed() >= IN_DOUBT_GRACE {
                        terminated = true;
                        let ended =
                            bounded(deadline, self.terminate_if_running(sealed.pid, sealed.txid))
                                .await;
                        warn!(
                            pid = sealed.pid,
                            ?ended,
                            "ended the backend of an in-doubt commit"
                        );
                    }
                }
                Err(e) => debug!(error = %e, "cannot ask about the in-doubt commit yet"),
            }
            if Instant::now() >= deadline {
                return Err(Fail::done(StoreError::Backend {
                    message: format!(
                        "the connection to PostgreSQL was lost while committing, and whether the \
                         commit was applied could not be learned within {:?}; read the data \
                         again before retrying",
                        self.options.in_doubt_timeout
                    ),
                    source: Some(Box::new(cause)),
                }));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// See [`write::terminate_if_running`].
    async fn terminate_if_running(&self, pid: i32, txid: i64) -> StoreResult<bool> {
        read!(self, |c| write::terminate_if_running(&c, pid, txid))
    }

    /// `txid_status` of a transaction: `committed`, `aborted`, `in progress`, or `None` when
    /// the server no longer knows it.
    async fn txid_status(&self, txid: i64) -> StoreResult<Option<String>> {
        read!(self, |c| write::txid_status(&c, txid))
    }
}

/// The startup `options` of every connection: the URL's own, then the store's session
/// settings (an idle-in-transaction timeout, and server-side TCP keepalives so the server also
/// notices a vanished client).
fn session_options(from_url: Option<&str>, options: &PgOptions) -> String {
    let mut out = from_url.unwrap_or_default().to_owned();
    let ms = options.idle_in_transaction_timeout.as_millis();
    if ms > 0 {
        out.push_str(&format!(" -c idle_in_transaction_session_timeout={ms}"));
    }
    out.push_str(
        " -c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3",
    );
    out.trim().to_owned()
}

/// How a step transition's one call went.
enum OneCall {
    /// It ran (or settled): the entry or the failure.
    Done(Result<AuditEntry, Fail>),
    /// It must run as a transaction instead, on this connection.
    Declined(Client),
}

/// How one try at a commit ended.
enum Attempt {
    /// `COMMIT` succeeded.
    Committed(Vec<AuditEntry>),
    /// The connection broke while `COMMIT` was on its way: it may or may not have committed.
    InDoubt(SealedAll, tokio_postgres::Error),
    /// Nothing was applied.
    Failed(Fail),
}

/// The sealed entries of one transaction, and what identifies it on the server.
struct SealedAll {
    entries: Vec<AuditEntry>,
    txid: i64,
    pid: i32,
}

/// Runs commits, in order, in one transaction on `client`.
async fn run_commit(client: &mut Client, commits: &[Commit]) -> Attempt {
    let tx = match client.transaction().await {
        Ok(tx) => tx,
        // A pooled connection found dead at `BEGIN` (the server restarted since it was last
        // used): nothing of the commit was sent, so it simply runs again on another one.
        Err(e) if is_connection_loss(&e) => {
            return Attempt::Failed(Fail {
                error: store_err("starting a transaction", e),
                retry: true,
            });
        }
        Err(e) => return Attempt::Failed(fail("starting a transaction", e)),
    };
    // Any error here drops `tx`, which rolls the transaction back (or the server does, if the
    // connection is gone): nothing of this try stays applied.
    let mut sealed = SealedAll {
        entries: Vec::with_capacity(commits.len()),
        txid: 0,
        pid: 0,
    };
    for commit in commits {
        match write::apply_commit(&tx, commit).await {
            Ok(Sealed { entry, txid, pid }) => {
                sealed.entries.push(entry);
                sealed.txid = txid;
                sealed.pid = pid;
            }
            Err(f) => return Attempt::Failed(f),
        }
    }
    match tx.commit().await {
        Ok(()) => Attempt::Committed(sealed.entries),
        Err(e) if is_connection_loss(&e) => Attempt::InDoubt(sealed, e),
        Err(e) => Attempt::Failed(fail("committing", e)),
    }
}

/// Takes a connection that failed with a connection loss (or a busy server) out of the pool
/// for good: after a `FATAL` error the server closes it a moment later, and until then it
/// would look healthy to the pool.
fn discard(client: Client) {
    drop(deadpool_postgres::Object::take(client));
}

/// `call`, given up at `deadline` (a question asked while settling an in-doubt commit must not
/// outlive the time allowed for settling it, whatever the network does).
async fn bounded<T>(
    deadline: Instant,
    call: impl Future<Output = StoreResult<T>>,
) -> StoreResult<T> {
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, call).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Unavailable {
            message: "no answer from PostgreSQL in time".into(),
            source: None,
        }),
    }
}

/// `pause`, plus or minus up to half of it, so that retrying callers spread out.
fn jittered(pause: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let half = pause / 2;
    let spread = u32::try_from(random % 1000).unwrap_or(0);
    half + pause * spread / 1000
}

#[async_trait]
impl Store for PgStore {
    async fn commit(&self, commit: Commit) -> StoreResult<AuditEntry> {
        let mut entries = self.commit_all(vec![commit]).await?;
        entries.pop().ok_or_else(|| StoreError::Backend {
            message: "a commit returned no audit entry".into(),
            source: None,
        })
    }

    async fn commit_all(&self, commits: Vec<Commit>) -> StoreResult<Vec<AuditEntry>> {
        if commits.is_empty() {
            return Ok(Vec::new());
        }
        // The contract's own checks, before the database is asked anything (every path: the
        // one-call transition and the transaction).
        for commit in &commits {
            vigilo_core::store::contract::check_commit(commit)?;
        }
        let mut pause = FIRST_BACKOFF;
        let mut tries = 0;
        loop {
            match self.commit_once(&commits).await {
                Ok(entries) => return Ok(entries),
                Err(f) if f.retry && tries < self.options.max_retries => {
                    tries += 1;
                    debug!(attempt = tries, error = %f.error, "commit lost a lock race or found its connection dead; running it again");
                    tokio::time::sleep(jittered(pause)).await;
                    pause = (pause * 2).min(MAX_BACKOFF);
                }
                Err(f) => return Err(f.error),
            }
        }
    }

    async fn allocate_key(&self, workspace: WorkspaceId, kind: KeyKind) -> StoreResult<Key> {
        read!(self, |c| write::allocate_key(&c, workspace, kind))
    }

    async fn action_reads(
        &self,
        workspace: WorkspaceId,
        user: UserId,
        execution: Key,
    ) -> ActionReads {
        self.read_for_action(workspace, user, execution)
            .await
            .unwrap_or_else(ActionReads::failed)
    }

    async fn workspace(&self, id: WorkspaceId) -> StoreResult<Workspace> {
        read!(self, |c| read::workspace(&c, id))
    }

    async fn workspace_by_slug(&self, slug: &str) -> StoreResult<Workspace> {
        read!(self, |c| read::workspace_by_slug(&c, slug))
    }

    async fn workspace_by_slack_team(&self, team: &str) -> StoreResult<Workspace> {
        read!(self, |c| read::workspace_by_slack_team(&c, team))
    }

    async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>> {
        read!(self, |c| read::list_workspaces(&c))
    }

    async fn user(&self, id: UserId) -> StoreResult<User> {
        read!(self, |c| read::user(&c, id))
    }

    async fn user_by_handle(&self, handle: &str) -> StoreResult<User> {
        read!(self, |c| read::user_by_handle(&c, handle))
    }

    async fn member_by_chat(
        &self,
        workspace: WorkspaceId,
        identity: &ChatIdentity,
    ) -> StoreResult<(User, Membership)> {
        read!(self, |c| read::member_by_chat(&c, workspace, identity))
    }

    async fn membership(&self, workspace: WorkspaceId, user: UserId) -> StoreResult<Membership> {
        read!(self, |c| read::membership(&c, workspace, user))
    }

    async fn list_members(&self, workspace: WorkspaceId) -> StoreResult<Vec<(User, Membership)>> {
        read!(self, |c| read::list_members(&c, workspace))
    }

    async fn runbook(&self, workspace: WorkspaceId, id: RunbookId) -> StoreResult<Runbook> {
        read!(self, |c| read::runbook(&c, workspace, id))
    }

    async fn runbook_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<Runbook> {
        read!(self, |c| read::runbook_by_key(&c, workspace, key))
    }

    async fn list_runbooks(
        &self,
        workspace: WorkspaceId,
        query: &RunbookQuery,
    ) -> StoreResult<Vec<Runbook>> {
        read!(self, |c| read::list_runbooks(&c, workspace, query))
    }

    async fn search_runbooks(
        &self,
        workspace: WorkspaceId,
        words: &str,
        drafts: DraftFilter,
        limit: usize,
    ) -> StoreResult<Vec<Runbook>> {
        read!(self, |c| read::search_runbooks(
            &c, workspace, words, drafts, limit
        ))
    }

    async fn runbook_version(
        &self,
        workspace: WorkspaceId,
        id: RunbookId,
        version: u32,
    ) -> StoreResult<RunbookVersion> {
        read!(self, |c| read::runbook_version(&c, workspace, id, version))
    }

    async fn runbook_versions(
        &self,
        workspace: WorkspaceId,
        id: RunbookId,
    ) -> StoreResult<Vec<RunbookVersion>> {
        read!(self, |c| read::runbook_versions(&c, workspace, id))
    }

    async fn execution(&self, workspace: WorkspaceId, id: ExecutionId) -> StoreResult<Execution> {
        read!(self, |c| read::execution(
            &c,
            &self.snapshots,
            workspace,
            id
        ))
    }

    async fn execution_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<Execution> {
        read!(self, |c| read::execution_by_key(
            &c,
            &self.snapshots,
            workspace,
            key
        ))
    }

    async fn list_executions(
        &self,
        workspace: WorkspaceId,
        query: &ExecutionQuery,
    ) -> StoreResult<Vec<Execution>> {
        read!(self, |c| read::list_executions(
            &c,
            &self.snapshots,
            workspace,
            query
        ))
    }

    async fn step_events(
        &self,
        workspace: WorkspaceId,
        execution: ExecutionId,
    ) -> StoreResult<Vec<StepEvent>> {
        read!(self, |c| read::step_events(&c, workspace, execution))
    }

    async fn run_facts(
        &self,
        workspace: WorkspaceId,
        query: &StatsQuery,
    ) -> StoreResult<Vec<RunFacts>> {
        read!(self, |c| stats::run_facts(&c, workspace, query))
    }

    async fn change(&self, workspace: WorkspaceId, id: ChangeId) -> StoreResult<ChangeRequest> {
        read!(self, |c| read::change(&c, workspace, id))
    }

    async fn change_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<ChangeRequest> {
        read!(self, |c| read::change_by_key(&c, workspace, key))
    }

    async fn list_changes(&self, workspace: WorkspaceId) -> StoreResult<Vec<ChangeRequest>> {
        read!(self, |c| read::list_changes(&c, workspace))
    }

    async fn incident_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<Incident> {
        read!(self, |c| read::incident_by_key(&c, workspace, key))
    }

    async fn list_incidents(&self, workspace: WorkspaceId) -> StoreResult<Vec<Incident>> {
        read!(self, |c| read::list_incidents(&c, workspace))
    }

    async fn audit(
        &self,
        workspace: WorkspaceId,
        query: &AuditQuery,
    ) -> StoreResult<Vec<AuditEntry>> {
        read!(self, |c| read::audit(&c, workspace, query))
    }
}
