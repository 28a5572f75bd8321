//! [`SqliteStore`]: Vigilo's storage in one SQLite file.
//!
//! - `open`: refuses files that are not Vigilo databases or are from a newer schema, before
//!   writing anything; WAL, `synchronous`, `busy_timeout`, `foreign_keys`.
//! - `migrations`: the schema ([`MIGRATIONS`]), as embedded migrations counted with
//!   `PRAGMA user_version`.
//! - `writer`: the writer thread and its group commit; `write`: one commit's SQL.
//! - `readers` and `read`: the read pool and every read query; `search`: full-text search.
//! - `rows`: JSON documents, ids, times and error mapping.
//! - `export` (feature `postgres`): the whole database read into a `transfer::Snapshot`, the
//!   source side of `vigilo migrate`.

mod executions;
#[cfg(feature = "postgres")]
pub(crate) mod export;
mod migrations;
mod open;
mod options;
mod read;
mod readers;
mod rows;
mod search;
mod stats;
mod write;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use tracing::info;
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

pub use migrations::{APPLICATION_ID, MIGRATIONS, Migration};
pub use open::OpenError;
pub use options::{SqliteOptions, Synchronous};

use readers::Readers;
pub use writer::WriteStats;
use writer::{Done, Op, Writer};

/// A [`Store`] in one SQLite file.
///
/// Writes go to one writer thread that owns the write connection and group-commits: concurrent
/// [`Store::commit`] and [`Store::allocate_key`] calls share one transaction (each in its own
/// savepoint, so one failing write fails alone) and one disk sync, and each call returns only
/// after that transaction committed. Reads run on a small pool of read connections on Tokio's
/// blocking pool; in WAL mode they never wait for the writer.
///
/// Several processes may open the same file: writes are serialised by SQLite's lock (waited
/// for with `busy_timeout` and retried), and keys are allocated under that lock.
///
/// Dropping the store stops the writer thread after the writes already queued; use
/// [`SqliteStore::close`] to wait for that.
pub struct SqliteStore {
    path: PathBuf,
    writer: Writer,
    readers: Arc<Readers>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` and brings its schema up to date, on Tokio's
    /// blocking pool. See [`SqliteStore::open_blocking`].
    pub async fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, OpenError> {
        let path = path.as_ref().to_path_buf();
        let task_path = path.clone();
        tokio::task::spawn_blocking(move || Self::open_blocking(task_path, options))
            .await
            .map_err(|e| OpenError::Thread(std::io::Error::other(e)))?
    }

    /// Opens (or creates) the database at `path`, blocking the calling thread.
    ///
    /// A file that is not a Vigilo database ([`OpenError::NotVigilo`]: not SQLite, or SQLite
    /// with another program's tables or application id) or that has a newer schema than this
    /// build knows ([`OpenError::TooNew`]) is refused before anything is written to it.
    /// Otherwise missing migrations of [`MIGRATIONS`] are applied, each in one transaction.
    pub fn open_blocking(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<Self, OpenError> {
        Self::open_with_migrations(path, options, MIGRATIONS)
    }

    /// Like [`SqliteStore::open_blocking`], with another list of migrations: for tests of the
    /// upgrade path (a database created by an older list, opened with a longer one). Production
    /// code uses [`MIGRATIONS`].
    pub fn open_with_migrations(
        path: impl AsRef<Path>,
        options: SqliteOptions,
        migrations: &[Migration],
    ) -> Result<Self, OpenError> {
        let path = path.as_ref().to_path_buf();
        let conn = open::open_writer(&path, &options, migrations)?;
        let readers = Arc::new(Readers::new(path.clone(), options.clone()));
        let (writer, thread) = Writer::spawn(conn, options).map_err(OpenError::Thread)?;
        info!(path = %path.display(), "opened SQLite store");
        Ok(Self {
            path,
            writer,
            readers,
            writer_thread: Some(thread),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the writer thread committed since the store was opened (group-commit efficiency).
    pub fn write_stats(&self) -> WriteStats {
        self.writer.stats()
    }

    /// Stops the writer after the writes already queued and waits for it to close the write
    /// connection (checkpointing the WAL).
    pub async fn close(mut self) {
        let thread = self.writer_thread.take();
        drop(self);
        if let Some(thread) = thread {
            // Joining blocks until the queue drains: do it off the async workers.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    async fn write(&self, op: Op) -> StoreResult<Done> {
        self.writer.submit(op).await
    }

    async fn read<T, F>(&self, read: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> StoreResult<T> + Send + 'static,
    {
        self.readers.run(read).await
    }
}

/// The writer answered with the other kind of result: a bug in this adapter.
fn mismatched() -> StoreError {
    StoreError::Backend {
        message: "the SQLite writer answered with an unexpected result".into(),
        source: None,
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn commit(&self, commit: Commit) -> StoreResult<AuditEntry> {
        match self.write(Op::Commit(Box::new(commit))).await? {
            Done::Entry(entry) => Ok(*entry),
            Done::Key(_) | Done::Entries(_) => Err(mismatched()),
        }
    }

    async fn commit_all(&self, commits: Vec<Commit>) -> StoreResult<Vec<AuditEntry>> {
        if commits.is_empty() {
            return Ok(Vec::new());
        }
        match self.write(Op::CommitAll(commits)).await? {
            Done::Entries(entries) => Ok(entries),
            Done::Entry(_) | Done::Key(_) => Err(mismatched()),
        }
    }

    async fn allocate_key(&self, workspace: WorkspaceId, kind: KeyKind) -> StoreResult<Key> {
        match self.write(Op::AllocateKey(workspace, kind)).await? {
            Done::Key(key) => Ok(key),
            Done::Entry(_) | Done::Entries(_) => Err(mismatched()),
        }
    }

    /// The four reads in one reader call: one hand-off to the reader pool instead of four.
    async fn action_reads(
        &self,
        workspace: WorkspaceId,
        user: UserId,
        execution: Key,
    ) -> ActionReads {
        self.read(move |c| {
            Ok(ActionReads {
                workspace: read::workspace(c, workspace),
                user: read::user(c, user),
                membership: read::membership(c, workspace, user),
                execution: read::execution_by_key(c, workspace, execution),
            })
        })
        .await
        .unwrap_or_else(ActionReads::failed)
    }

    async fn workspace(&self, id: WorkspaceId) -> StoreResult<Workspace> {
        self.read(move |c| read::workspace(c, id)).await
    }

    async fn workspace_by_slug(&self, slug: &str) -> StoreResult<Workspace> {
        let slug = slug.to_owned();
        self.read(move |c| read::workspace_by_slug(c, &slug)).await
    }

    async fn workspace_by_slack_team(&self, team: &str) -> StoreResult<Workspace> {
        let team = team.to_owned();
        self.read(move |c| read::workspace_by_slack_team(c, &team))
            .await
    }

    async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>> {
        self.read(read::list_workspaces).await
    }

    async fn user(&self, id: UserId) -> StoreResult<User> {
        self.read(move |c| read::user(c, id)).await
    }

    async fn user_by_handle(&self, handle: &str) -> StoreResult<User> {
        let handle = handle.to_owned();
        self.read(move |c| read::user_by_handle(c, &handle)).await
    }

    async fn member_by_chat(
        &self,
        workspace: WorkspaceId,
        identity: &ChatIdentity,
    ) -> StoreResult<(User, Membership)> {
        let identity = identity.clone();
        self.read(move |c| read::member_by_chat(c, workspace, &identity))
            .await
    }

    async fn membership(&self, workspace: WorkspaceId, user: UserId) -> StoreResult<Membership> {
        self.read(move |c| read::membership(c, workspace, user))
            .await
    }

    async fn list_members(&self, workspace: WorkspaceId) -> StoreResult<Vec<(User, Membership)>> {
        self.read(move |c| read::list_members(c, workspace)).await
    }

    async fn runbook(&self, workspace: WorkspaceId, id: RunbookId) -> StoreResult<Runbook> {
        self.read(move |c| read::runbook(c, workspace, id)).await
    }

    async fn runbook_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<Runbook> {
        self.read(move |c| read::runbook_by_key(c, workspace, key))
            .await
    }

    async fn list_runbooks(
        &self,
        workspace: WorkspaceId,
        query: &RunbookQuery,
    ) -> StoreResult<Vec<Runbook>> {
        let query = query.clone();
        self.read(move |c| read::list_runbooks(c, workspace, &query))
            .await
    }

    async fn search_runbooks(
        &self,
        workspace: WorkspaceId,
        words: &str,
        drafts: DraftFilter,
        limit: usize,
    ) -> StoreResult<Vec<Runbook>> {
        let words = words.to_owned();
        self.read(move |c| read::search_runbooks(c, workspace, &words, drafts, limit))
            .await
    }

    async fn runbook_version(
        &self,
        workspace: WorkspaceId,
        id: RunbookId,
        version: u32,
    ) -> StoreResult<RunbookVersion> {
        self.read(move |c| read::runbook_version(c, workspace, id, version))
            .await
    }

    async fn runbook_versions(
        &self,
        workspace: WorkspaceId,
        id: RunbookId,
    ) -> StoreResult<Vec<RunbookVersion>> {
        self.read(move |c| read::runbook_versions(c, workspace, id))
            .await
    }

    async fn execution(&self, workspace: WorkspaceId, id: ExecutionId) -> StoreResult<Execution> {
        self.read(move |c| read::execution(c, workspace, id)).await
    }

    async fn execution_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<Execution> {
        self.read(move |c| read::execution_by_key(c, workspace, key))
            .await
    }

    async fn list_executions(
        &self,
        workspace: WorkspaceId,
        query: &ExecutionQuery,
    ) -> StoreResult<Vec<Execution>> {
        let query = query.clone();
        self.read(move |c| read::list_executions(c, workspace, &query))
            .await
    }

    async fn step_events(
        &self,
        workspace: WorkspaceId,
        execution: ExecutionId,
    ) -> StoreResult<Vec<StepEvent>> {
        self.read(move |c| read::step_events(c, workspace, execution))
            .await
    }

    async fn run_facts(
        &self,
        workspace: WorkspaceId,
        query: &StatsQuery,
    ) -> StoreResult<Vec<RunFacts>> {
        let query = query.clone();
        self.read(move |c| stats::run_facts(c, workspace, &query))
            .await
    }

    async fn change(&self, workspace: WorkspaceId, id: ChangeId) -> StoreResult<ChangeRequest> {
        self.read(move |c| read::change(c, workspace, id)).await
    }

    async fn change_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<ChangeRequest> {
        self.read(move |c| read::change_by_key(c, workspace, key))
            .await
    }

    async fn list_changes(&self, workspace: WorkspaceId) -> StoreResult<Vec<ChangeRequest>> {
        self.read(move |c| read::list_changes(c, workspace)).await
    }

    async fn incident_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<Incident> {
        self.read(move |c| read::incident_by_key(c, workspace, key))
            .await
    }

    async fn list_incidents(&self, workspace: WorkspaceId) -> StoreResult<Vec<Incident>> {
        self.read(move |c| read::list_incidents(c, workspace)).await
    }

    async fn audit(
        &self,
        workspace: WorkspaceId,
        query: &AuditQuery,
    ) -> StoreResult<Vec<AuditEntry>> {
        let query = query.clone();
        self.read(move |c| read::audit(c, workspace, &query)).await
    }
}
