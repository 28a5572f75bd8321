//! The storage seam: a dyn-safe async trait every adapter implements (in-memory in
//! `testkit`, SQLite and PostgreSQL in `vigilo-store`).
//!
//! Reads are one method each. Writes go through one method, [`Store::commit`]: a [`Commit`] is
//! one state change — its row writes plus exactly one audit entry — applied atomically or not at
//! all. Concurrency is optimistic: every update carries the revision the caller read, and a
//! moved revision is a [`StoreError::Conflict`]. Every read and write names the workspace; an id
//! of another workspace behaves exactly like an id that does not exist.

pub mod contract;
pub mod search;

pub use contract::{authority_moved, no_owner_left};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::analytics::{RunFacts, StatsQuery};
use crate::audit::{AuditDraft, AuditEntry};
use crate::change::ChangeRequest;
use crate::execution::{ChannelRef, Execution, StepEvent};
use crate::ids::{ChangeId, ExecutionId, Key, KeyKind, RunbookId, UserId, WorkspaceId};
use crate::incident::Incident;
use crate::runbook::{Runbook, RunbookVersion};
use crate::workspace::{ChatIdentity, Membership, User, Workspace};

/// A storage failure, free of any backend type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No such row in this workspace.
    #[error("{0} not found")]
    NotFound(String),
    /// The row moved since it was read (stale revision), or a unique value was taken by a
    /// concurrent writer.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The acting member's membership moved between the check of a command and its commit (a
    /// role change or a removal committed first): nothing was applied.
    #[error(
        "the acting member's role in this workspace changed (user {0}) while the command was being applied; nothing was changed, run it again"
    )]
    AuthorityMoved(UserId),
    /// The commit would have left its workspace without an active owner (another owner was
    /// demoted or removed at the same moment): nothing was applied.
    #[error(
        "this change would leave the workspace without an owner (another owner was demoted or removed at the same moment); nothing was changed"
    )]
    NoOwnerLeft,
    /// An insert collided with an existing unique value (slug, handle, chat identity).
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The backend is unreachable or busy; the same call may succeed later. Nothing was applied.
    #[error("storage temporarily unavailable: {message}")]
    Unavailable {
        /// What happened, without internals.
        message: String,
        /// The backend error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Stored data could not be read back (corruption or a newer schema).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// An audit entry read back does not match its hash, or a column stored beside it does not
    /// say what the hashed entry says: the trail was edited outside Vigilo.
    #[error("{0}")]
    Tampered(crate::audit::Tamper),
    /// Any other backend failure.
    #[error("storage error: {message}")]
    Backend {
        /// A short description.
        message: String,
        /// The backend error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl StoreError {
    /// A backend failure wrapping `source`.
    pub fn backend(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Backend {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

impl StoreError {
    /// The same error, without its source (which cannot be copied): for an answer that must
    /// report one failure in several places, such as [`ActionReads::failed`].
    pub fn copied(&self) -> Self {
        match self {
            StoreError::NotFound(m) => StoreError::NotFound(m.clone()),
            StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
            StoreError::AuthorityMoved(u) => StoreError::AuthorityMoved(*u),
            StoreError::NoOwnerLeft => StoreError::NoOwnerLeft,
            StoreError::AlreadyExists(m) => StoreError::AlreadyExists(m.clone()),
            StoreError::Unavailable { message, .. } => StoreError::Unavailable {
                message: message.clone(),
                source: None,
            },
            StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
            StoreError::Tampered(t) => StoreError::Tampered(t.clone()),
            StoreError::Backend { message, .. } => StoreError::Backend {
                message: message.clone(),
                source: None,
            },
        }
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// One row write of a [`Commit`]. `expected_rev: None` inserts (refused with
/// [`StoreError::AlreadyExists`] if the id or a unique value exists); `Some(r)` updates the row
/// only if its stored `rev` is `r` (else [`StoreError::Conflict`]). The written value carries
/// its new `rev` (1 on insert, `r + 1` on update).
#[derive(Clone, Debug)]
pub enum Write {
    /// Insert or update a workspace (unique slug, unique Slack team).
    Workspace {
        /// The row.
        workspace: Workspace,
        /// See [`Write`].
        expected_rev: Option<u64>,
    },
    /// Insert or update a user (unique handle).
    User {
        /// The row.
        user: User,
        /// See [`Write`].
        expected_rev: Option<u64>,
    },
    /// Insert or update a membership (unique per workspace and user; its chat identities
    /// unique within the workspace).
    Membership {
        /// The row.
        membership: Membership,
        /// See [`Write`].
        expected_rev: Option<u64>,
    },
    /// Insert or update a runbook (unique key per workspace).
    Runbook {
        /// The row.
        runbook: Runbook,
        /// See [`Write`].
        expected_rev: Option<u64>,
    },
    /// Insert a saved version (unique per runbook and version).
    RunbookVersion(RunbookVersion),
    /// Insert or update an execution, always with the [`Write::StepEvent`] of its new revision
    /// ([`contract::check_events_paired`]). An execution's header
    /// ([`crate::execution::history::ExecutionHeader`]) and steps are written once, on insert;
    /// an update moves its state, which is what its events say, so a store may keep only the
    /// event and a few state columns, and changes to the header in an update are not stored.
    Execution {
        /// The row.
        execution: Execution,
        /// See [`Write`].
        expected_rev: Option<u64>,
    },
    /// Append a step event (unique per execution and seq).
    StepEvent(StepEvent),
    /// Insert or update a change request.
    Change {
        /// The row.
        change: ChangeRequest,
        /// See [`Write`].
        expected_rev: Option<u64>,
    },
    /// Insert or update an incident.
    Incident {
        /// The row.
        incident: Incident,
        /// See [`Write`].
        expected_rev: Option<u64>,
    },
}

/// A row a [`Write`] inserts or updates: it carries the revision it is written at.
pub trait Revisioned: Clone {
    /// The row's revision, to be set by [`Write::insert`] and [`Write::update`].
    fn rev_mut(&mut self) -> &mut u64;
    /// The write of this row, `expected_rev` as in [`Write`].
    fn into_write(self, expected_rev: Option<u64>) -> Write;
}

macro_rules! revisioned {
    ($($ty:ty => $variant:ident { $field:ident }),* $(,)?) => {
        $(
            impl Revisioned for $ty {
                fn rev_mut(&mut self) -> &mut u64 {
                    &mut self.rev
                }
                fn into_write(self, expected_rev: Option<u64>) -> Write {
                    Write::$variant {
                        $field: self,
                        expected_rev,
                    }
                }
            }
        )*
    };
}

revisioned!(
    Workspace => Workspace { workspace },
    User => User { user },
    Membership => Membership { membership },
    Runbook => Runbook { runbook },
    Execution => Execution { execution },
    ChangeRequest => Change { change },
    Incident => Incident { incident },
);

impl Write {
    /// Inserts `row`: sets its revision to 1 and writes a copy.
    pub fn insert<R: Revisioned>(row: &mut R) -> Write {
        *row.rev_mut() = 1;
        row.clone().into_write(None)
    }

    /// Updates `row`, read at revision `read`: sets its revision to `read + 1` and writes a copy,
    /// applied only if the stored row is still at `read`. The one way to bump a revision, so
    /// it can never be bumped without stating the revision read (or the other way round).
    pub fn update<R: Revisioned>(row: &mut R, read: u64) -> Write {
        *row.rev_mut() = read.saturating_add(1);
        row.clone().into_write(Some(read))
    }
}

/// The membership a change was authorised by: the acting user and the revision of their
/// membership that the rules were checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActingMember {
    /// The acting user.
    pub user: UserId,
    /// The revision of their membership of the commit's workspace when it was checked.
    pub membership_rev: u64,
}

/// One state change: row writes and the one audit entry that records them, applied atomically.
///
/// Besides the writes' own revision checks, every store enforces two invariants inside the
/// transaction that applies the commit (not before it, where a concurrent commit could slip in
/// between):
/// - **the authority still holds**: when `acting` is set, the acting user's membership of the
///   workspace must still be at `membership_rev` (a role change, or a removal, committed in
///   between makes the commit a [`StoreError::Conflict`]);
/// - **a workspace always has an owner**: a commit that writes a membership must leave the
///   workspace with at least one active owner (else [`StoreError::Conflict`]).
#[derive(Clone, Debug)]
pub struct Commit {
    /// The workspace every write belongs to (and whose audit chain gets the entry).
    pub workspace: WorkspaceId,
    /// The writes, applied in order.
    pub writes: Vec<Write>,
    /// The audit entry; the store assigns its `seq` and chains it with [`crate::audit::seal`].
    pub audit: AuditDraft,
    /// The membership that authorised the change (`None` for the system, e.g. bootstrap).
    pub acting: Option<ActingMember>,
}

impl Commit {
    /// Whether the commit writes a membership (and so must keep the workspace's owner).
    pub fn writes_membership(&self) -> bool {
        self.writes
            .iter()
            .any(|w| matches!(w, Write::Membership { .. }))
    }
}

/// Which drafts a runbook list includes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DraftFilter {
    /// Published only.
    #[default]
    None,
    /// Published plus the drafts this user owns.
    OwnedBy(UserId),
    /// Published and all drafts.
    All,
    /// Drafts only (all of them).
    Only,
}

/// A page of runbooks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunbookQuery {
    /// Only this category (exact match).
    pub category: Option<String>,
    /// Which drafts to include.
    pub drafts: DraftFilter,
    /// List archived runbooks instead of live ones.
    pub archived: bool,
    /// Start after this key number (keyset pagination).
    pub after_number: Option<u64>,
    /// At most this many (0 means the adapter's default of 100).
    pub limit: usize,
}

/// A page of executions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecutionQuery {
    /// Only executions of this runbook.
    pub runbook: Option<RunbookId>,
    /// Only this runbook version.
    pub runbook_version: Option<u32>,
    /// Only running ones.
    pub open_only: bool,
    /// Only those linked to this change.
    pub change: Option<ChangeId>,
    /// Only those started from this channel.
    pub channel: Option<ChannelRef>,
    /// At most this many, newest first (0 means 100).
    pub limit: usize,
}

/// A page of audit entries, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only entries whose target is this, or that link to this key.
    pub target: Option<String>,
    /// Only entries by this user.
    pub actor: Option<UserId>,
    /// Only entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only entries before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only entries with `seq` greater than this (pagination).
    pub after_seq: u64,
    /// At most this many (0 means 1000).
    pub limit: usize,
}

/// The rows an action on an execution is checked against, read together by
/// [`Store::action_reads`]. Each is the answer its own read method would give.
#[derive(Debug)]
pub struct ActionReads {
    /// [`Store::workspace`] of the workspace acted in.
    pub workspace: StoreResult<Workspace>,
    /// [`Store::user`] of the acting user.
    pub user: StoreResult<User>,
    /// [`Store::membership`] of the acting user in that workspace.
    pub membership: StoreResult<Membership>,
    /// [`Store::execution_by_key`] of the execution acted on.
    pub execution: StoreResult<Execution>,
}

impl ActionReads {
    /// Every part failed with `error` (the read as a whole failed). The membership part, the
    /// one a caller checks first, keeps the error's source.
    pub fn failed(error: StoreError) -> Self {
        Self {
            workspace: Err(error.copied()),
            user: Err(error.copied()),
            execution: Err(error.copied()),
            membership: Err(error),
        }
    }
}

/// Storage for Vigilo. Object safe; use it as `Arc<dyn Store>`.
///
/// # Implementing a store
///
/// Every method but [`Store::action_reads`] must be written. A store of its own keeps the
/// contract written on this module: it checks a commit's claims with
/// [`contract::check_commit`], applies each commit (or each `commit_all`) whole or not at all
/// with its audit entry sealed onto the workspace's chain, and proves it by running the
/// conformance suite, `vigilo_core::conformance_tests!` (feature `testkit`), unchanged.
///
/// The skeleton below wraps another store and delegates every method to it, counting the state
/// changes applied on the way: the shape of a metrics, tracing or caching layer, and the list
/// of what a new adapter answers.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// use async_trait::async_trait;
/// use vigilo_core::analytics::{RunFacts, StatsQuery};
/// use vigilo_core::audit::AuditEntry;
/// use vigilo_core::change::ChangeRequest;
/// use vigilo_core::execution::{Execution, StepEvent};
/// use vigilo_core::ids::{ChangeId, ExecutionId, Key, KeyKind, RunbookId, UserId, WorkspaceId};
/// use vigilo_core::incident::Incident;
/// use vigilo_core::runbook::{Runbook, RunbookVersion};
/// use vigilo_core::store::{
///     ActionReads, AuditQuery, Commit, DraftFilter, ExecutionQuery, RunbookQuery, Store,
///     StoreResult,
/// };
/// use vigilo_core::workspace::{ChatIdentity, Membership, User, Workspace};
///
/// /// Delegates everything to `inner` and counts the state changes it applies.
/// struct CountingStore<S> {
///     inner: S,
///     commits: AtomicU64,
/// }
///
/// #[async_trait]
/// impl<S: Store> Store for CountingStore<S> {
///     async fn commit(&self, commit: Commit) -> StoreResult<AuditEntry> {
///         // A store of its own would start with `contract::check_commit(&commit)?` and apply
///         // the writes and the sealed audit entry in one transaction.
///         let entry = self.inner.commit(commit).await?;
///         self.commits.fetch_add(1, Ordering::Relaxed);
///         Ok(entry)
///     }
///
///     async fn commit_all(&self, commits: Vec<Commit>) -> StoreResult<Vec<AuditEntry>> {
///         let entries = self.inner.commit_all(commits).await?;
///         self.commits.fetch_add(entries.len() as u64, Ordering::Relaxed);
///         Ok(entries)
///     }
///
///     async fn allocate_key(&self, workspace: WorkspaceId, kind: KeyKind) -> StoreResult<Key> {
///         self.inner.allocate_key(workspace, kind).await
///     }
///
///     // Provided by the trait (four concurrent reads), delegated so the inner store's own
///     // answer, in one round trip, is kept.
///     async fn action_reads(
///         &self,
///         workspace: WorkspaceId,
///         user: UserId,
///         execution: Key,
///     ) -> ActionReads {
///         self.inner.action_reads(workspace, user, execution).await
///     }
///
///     async fn workspace(&self, id: WorkspaceId) -> StoreResult<Workspace> {
///         self.inner.workspace(id).await
///     }
///
///     async fn workspace_by_slug(&self, slug: &str) -> StoreResult<Workspace> {
///         self.inner.workspace_by_slug(slug).await
///     }
///
///     async fn workspace_by_slack_team(&self, team: &str) -> StoreResult<Workspace> {
///         self.inner.workspace_by_slack_team(team).await
///     }
///
///     async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>> {
///         self.inner.list_workspaces().await
///     }
///
///     async fn user(&self, id: UserId) -> StoreResult<User> {
///         self.inner.user(id).await
///     }
///
///     async fn user_by_handle(&self, handle: &str) -> StoreResult<User> {
///         self.inner.user_by_handle(handle).await
///     }
///
///     async fn member_by_chat(
///         &self,
///         workspace: WorkspaceId,
///         identity: &ChatIdentity,
///     ) -> StoreResult<(User, Membership)> {
///         self.inner.member_by_chat(workspace, identity).await
///     }
///
///     async fn membership(&self, workspace: WorkspaceId, user: UserId) -> StoreResult<Membership> {
///         self.inner.membership(workspace, user).await
///     }
///
///     async fn list_members(&self, workspace: WorkspaceId) -> StoreResult<Vec<(User, Membership)>> {
///         self.inner.list_members(workspace).await
///     }
///
///     async fn runbook(&self, workspace: WorkspaceId, id: RunbookId) -> StoreResult<Runbook> {
///         self.inner.runbook(workspace, id).await
///     }
///
///     async fn runbook_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<Runbook> {
///         self.inner.runbook_by_key(workspace, key).await
///     }
///
///     async fn list_runbooks(
///         &self,
///         workspace: WorkspaceId,
///         query: &RunbookQuery,
///     ) -> StoreResult<Vec<Runbook>> {
///         self.inner.list_runbooks(workspace, query).await
///     }
///
///     async fn search_runbooks(
///         &self,
///         workspace: WorkspaceId,
///         words: &str,
///         drafts: DraftFilter,
///         limit: usize,
///     ) -> StoreResult<Vec<Runbook>> {
///         self.inner.search_runbooks(workspace, words, drafts, limit).await
///     }
///
///     async fn runbook_version(
///         &self,
///         workspace: WorkspaceId,
///         id: RunbookId,
///         version: u32,
///     ) -> StoreResult<RunbookVersion> {
///         self.inner.runbook_version(workspace, id, version).await
///     }
///
///     async fn runbook_versions(
///         &self,
///         workspace: WorkspaceId,
///         id: RunbookId,
///     ) -> StoreResult<Vec<RunbookVersion>> {
///         self.inner.runbook_versions(workspace, id).await
///     }
///
///     async fn execution(&self, workspace: WorkspaceId, id: ExecutionId) -> StoreResult<Execution> {
///         self.inner.execution(workspace, id).await
///     }
///
///     async fn execution_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<Execution> {
///         self.inner.execution_by_key(workspace, key).await
///     }
///
///     async fn list_executions(
///         &self,
///         workspace: WorkspaceId,
///         query: &ExecutionQuery,
///     ) -> StoreResult<Vec<Execution>> {
///         self.inner.list_executions(workspace, query).await
///     }
///
///     async fn step_events(
///         &self,
///         workspace: WorkspaceId,
///         execution: ExecutionId,
///     ) -> StoreResult<Vec<StepEvent>> {
///         self.inner.step_events(workspace, execution).await
///     }
///
///     async fn run_facts(
///         &self,
///         workspace: WorkspaceId,
///         query: &StatsQuery,
///     ) -> StoreResult<Vec<RunFacts>> {
///         self.inner.run_facts(workspace, query).await
///     }
///
///     async fn change(&self, workspace: WorkspaceId, id: ChangeId) -> StoreResult<ChangeRequest> {
///         self.inner.change(workspace, id).await
///     }
///
///     async fn change_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<ChangeRequest> {
///         self.inner.change_by_key(workspace, key).await
///     }
///
///     async fn list_changes(&self, workspace: WorkspaceId) -> StoreResult<Vec<ChangeRequest>> {
///         self.inner.list_changes(workspace).await
///     }
///
///     async fn incident_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<Incident> {
///         self.inner.incident_by_key(workspace, key).await
///     }
///
///     async fn list_incidents(&self, workspace: WorkspaceId) -> StoreResult<Vec<Incident>> {
///         self.inner.list_incidents(workspace).await
///     }
///
///     async fn audit(
///         &self,
///         workspace: WorkspaceId,
///         query: &AuditQuery,
///     ) -> StoreResult<Vec<AuditEntry>> {
///         self.inner.audit(workspace, query).await
///     }
/// }
///
/// // The wrapper over the in-memory store (feature `testkit`), under the service.
/// # #[cfg(feature = "testkit")]
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use vigilo_core::service::Vigilo;
/// use vigilo_core::testkit::memory::MemoryStore;
///
/// let store = Arc::new(CountingStore {
///     inner: MemoryStore::new(),
///     commits: AtomicU64::new(0),
/// });
/// let vigilo = Vigilo::new(store.clone());
/// vigilo.create_workspace("acme", "alice", "Alice").await?;
/// assert_eq!(store.commits.load(Ordering::Relaxed), 1);
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "testkit"))]
/// # fn main() {}
/// ```
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies one state change atomically: every write and the sealed audit entry, or nothing.
    /// Returns the sealed audit entry.
    async fn commit(&self, commit: Commit) -> StoreResult<AuditEntry>;

    /// Applies several state changes as one: every commit in order, each with its own audit
    /// entry (chained one after the other), or none of them. For an operation that spans
    /// records and must never be left half-done, such as saving a folder of runbook files.
    /// Returns the sealed entries in order. An empty list commits nothing.
    async fn commit_all(&self, commits: Vec<Commit>) -> StoreResult<Vec<AuditEntry>>;

    /// Allocates the next key of `kind` in `workspace`: monotonic, never handed out twice, even
    /// to concurrent callers or processes. A key whose creation then fails is simply unused.
    async fn allocate_key(&self, workspace: WorkspaceId, kind: KeyKind) -> StoreResult<Key>;

    /// Everything a step action checks against, read at once: the workspace, the acting user
    /// and their membership, and the execution `execution` (a key). A click's latency is
    /// mostly its round trips to the store, so an adapter should answer in one (PostgreSQL:
    /// one statement; SQLite: one reader call). This default runs the four reads concurrently.
    async fn action_reads(
        &self,
        workspace: WorkspaceId,
        user: UserId,
        execution: Key,
    ) -> ActionReads {
        let (ws, u, m, e) = futures_util::future::join4(
            self.workspace(workspace),
            self.user(user),
            self.membership(workspace, user),
            self.execution_by_key(workspace, execution),
        )
        .await;
        ActionReads {
            workspace: ws,
            user: u,
            membership: m,
            execution: e,
        }
    }

    /// A workspace by id.
    async fn workspace(&self, id: WorkspaceId) -> StoreResult<Workspace>;
    /// A workspace by slug.
    async fn workspace_by_slug(&self, slug: &str) -> StoreResult<Workspace>;
    /// The workspace linked to a Slack team.
    async fn workspace_by_slack_team(&self, team: &str) -> StoreResult<Workspace>;
    /// Every workspace, by slug.
    async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>>;

    /// A user by id.
    async fn user(&self, id: UserId) -> StoreResult<User>;
    /// A user by handle.
    async fn user_by_handle(&self, handle: &str) -> StoreResult<User>;
    /// The member of `workspace` a chat identity is mapped to, with their user row. Removed
    /// members hold no identities, so they are never found here.
    async fn member_by_chat(
        &self,
        workspace: WorkspaceId,
        identity: &ChatIdentity,
    ) -> StoreResult<(User, Membership)>;
    /// A user's membership of a workspace.
    async fn membership(&self, workspace: WorkspaceId, user: UserId) -> StoreResult<Membership>;
    /// Every member of a workspace with their user row, by handle (removed members included).
    async fn list_members(&self, workspace: WorkspaceId) -> StoreResult<Vec<(User, Membership)>>;

    /// A runbook by id.
    async fn runbook(&self, workspace: WorkspaceId, id: RunbookId) -> StoreResult<Runbook>;
    /// A runbook by key.
    async fn runbook_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<Runbook>;
    /// A page of runbooks ordered by key.
    async fn list_runbooks(
        &self,
        workspace: WorkspaceId,
        query: &RunbookQuery,
    ) -> StoreResult<Vec<Runbook>>;
    /// Runbooks (not archived) matching every word in title, description or step text, best
    /// match first: runbooks whose title holds more of the words come first; the order within
    /// such a tier is the adapter's relevance ranking (SQLite: bm25), then the key. Words match
    /// whole words at least (an adapter may also match inside words). `drafts` filters like
    /// [`RunbookQuery::drafts`]; `limit` 0 means 100.
    async fn search_runbooks(
        &self,
        workspace: WorkspaceId,
        words: &str,
        drafts: DraftFilter,
        limit: usize,
    ) -> StoreResult<Vec<Runbook>>;
    /// One saved version.
    async fn runbook_version(
        &self,
        workspace: WorkspaceId,
        id: RunbookId,
        version: u32,
    ) -> StoreResult<RunbookVersion>;
    /// Every saved version, oldest first.
    async fn runbook_versions(
        &self,
        workspace: WorkspaceId,
        id: RunbookId,
    ) -> StoreResult<Vec<RunbookVersion>>;

    /// An execution by id.
    async fn execution(&self, workspace: WorkspaceId, id: ExecutionId) -> StoreResult<Execution>;
    /// An execution by key.
    async fn execution_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<Execution>;
    /// A page of executions, newest first.
    async fn list_executions(
        &self,
        workspace: WorkspaceId,
        query: &ExecutionQuery,
    ) -> StoreResult<Vec<Execution>>;
    /// An execution's events, in order.
    async fn step_events(
        &self,
        workspace: WorkspaceId,
        execution: ExecutionId,
    ) -> StoreResult<Vec<StepEvent>>;
    /// What the timing figures are computed from ([`crate::analytics`]): every execution of
    /// `workspace` that `query` admits ([`StatsQuery::admits`]), with its runbook, version,
    /// status and start, and the typed columns of its events of the kinds the figures use
    /// ([`crate::analytics::FACT_KINDS`]; other kinds left out). In any order. This is an
    /// aggregate read over event rows: an adapter answers it from indexed columns, without
    /// loading whole executions or their documents ([`RunFacts::of`] is the reference answer).
    async fn run_facts(
        &self,
        workspace: WorkspaceId,
        query: &StatsQuery,
    ) -> StoreResult<Vec<RunFacts>>;

    /// A change by id.
    async fn change(&self, workspace: WorkspaceId, id: ChangeId) -> StoreResult<ChangeRequest>;
    /// A change by key.
    async fn change_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<ChangeRequest>;
    /// Every change, by key.
    async fn list_changes(&self, workspace: WorkspaceId) -> StoreResult<Vec<ChangeRequest>>;

    /// An incident by key.
    async fn incident_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<Incident>;
    /// Every incident, by key.
    async fn list_incidents(&self, workspace: WorkspaceId) -> StoreResult<Vec<Incident>>;

    /// A page of audit entries, oldest first. Every entry returned is checked against its hash
    /// and against the columns the query filtered on ([`crate::audit::AuditEntry::check_stored`]);
    /// the first that fails is [`StoreError::Tampered`], never an answer.
    async fn audit(
        &self,
        workspace: WorkspaceId,
        query: &AuditQuery,
    ) -> StoreResult<Vec<AuditEntry>>;
}
