//! [`MemoryStore`]: a complete, in-memory [`Store`] for tests, simulations and examples.
//!
//! Everything lives behind one [`std::sync::Mutex`], taken for the duration of one call and
//! never held across an `.await`, so every call is atomic and calls are serialised. A commit
//! applies its writes in order, validating each against the state left by the writes before it
//! (so one commit may insert a runbook and then its first version); if any write is refused,
//! every write already applied is undone from an undo log and the audit chain is untouched.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use uuid::Uuid;

use crate::analytics::{RunFacts, StatsQuery};
use crate::audit::{self, AuditEntry};
use crate::change::ChangeRequest;
use crate::execution::{ChannelRef, Execution, ExecutionStatus, StepEvent};
use crate::ids::{ChangeId, ExecutionId, IncidentId, Key, KeyKind, RunbookId, UserId, WorkspaceId};
use crate::incident::Incident;
use crate::runbook::{Runbook, RunbookVersion};
use crate::store::{
    AuditQuery, Commit, DraftFilter, ExecutionQuery, RunbookQuery, Store, StoreError, StoreResult,
    Write,
};
use crate::workspace::{ChatIdentity, Membership, User, Workspace};

use crate::store::contract::{self, DEFAULT_AUDIT_PAGE, DEFAULT_PAGE, page_size as page};
use crate::store::search::SearchText;

/// A value that at most one row may hold.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Unique {
    Slug(String),
    SlackTeam(String),
    Handle(String),
    /// A chat identity mapped in a workspace.
    Chat(WorkspaceId, ChatIdentity),
    /// A key of a table (`runbook`, `execution`, `change`, `incident`) in a workspace.
    Key(&'static str, WorkspaceId, Key),
}

impl Unique {
    fn describe(&self) -> String {
        match self {
            Unique::Slug(s) => format!("workspace slug `{s}`"),
            Unique::SlackTeam(t) => format!("a workspace linked to Slack team `{t}`"),
            Unique::Handle(h) => format!("user handle `{h}`"),
            Unique::Chat(_, c) => format!("chat identity {}/{}", c.platform, c.user),
            Unique::Key(what, _, key) => format!("{what} {key}"),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    workspaces: BTreeMap<WorkspaceId, Workspace>,
    users: BTreeMap<UserId, User>,
    memberships: BTreeMap<(WorkspaceId, UserId), Membership>,
    runbooks: BTreeMap<RunbookId, Runbook>,
    versions: BTreeMap<(RunbookId, u32), RunbookVersion>,
    executions: BTreeMap<ExecutionId, Execution>,
    events: BTreeMap<(ExecutionId, u64), StepEvent>,
    changes: BTreeMap<ChangeId, ChangeRequest>,
    incidents: BTreeMap<IncidentId, Incident>,
    /// Every unique value, with the id of the row holding it.
    uniques: HashMap<Unique, Uuid>,
    /// Audit chains, per workspace, in `seq` order.
    audit: HashMap<WorkspaceId, Vec<AuditEntry>>,
    /// The last key number handed out, per workspace and kind.
    counters: HashMap<(WorkspaceId, KeyKind), u64>,
}

/// Undoes one applied write.
type UndoLog = Vec<Box<dyn FnOnce(&mut State)>>;

/// What the generic write path needs to know about a table's rows.
trait Row: Clone + 'static {
    type Id: Copy + Ord + 'static;
    /// The table's name in messages.
    const WHAT: &'static str;
    fn id(&self) -> Self::Id;
    fn table(s: &State) -> &BTreeMap<Self::Id, Self>;
    fn table_mut(s: &mut State) -> &mut BTreeMap<Self::Id, Self>;
    /// The workspace the row belongs to (through its parent for rows without one), `None` for
    /// global rows (users). A missing parent is `NotFound`.
    fn workspace(&self, s: &State) -> StoreResult<Option<WorkspaceId>>;
    /// The row revision, `None` for insert-only rows.
    fn rev(&self) -> Option<u64>;
    /// How the row is named in messages.
    fn describe(&self) -> String;
    /// The unique values the row holds (besides its id).
    fn uniques(&self) -> Vec<Unique> {
        Vec::new()
    }
    /// The id recorded as holder of the row's unique values.
    fn owner(&self) -> Uuid {
        Uuid::nil()
    }
    /// Rows the row refers to that must exist.
    fn check_refs(&self, _s: &State) -> StoreResult<()> {
        Ok(())
    }
}

impl Row for Workspace {
    type Id = WorkspaceId;
    const WHAT: &'static str = "workspace";
    fn id(&self) -> WorkspaceId {
        self.id
    }
    fn table(s: &State) -> &BTreeMap<WorkspaceId, Self> {
        &s.workspaces
    }
    fn table_mut(s: &mut State) -> &mut BTreeMap<WorkspaceId, Self> {
        &mut s.workspaces
    }
    fn workspace(&self, _s: &State) -> StoreResult<Option<WorkspaceId>> {
        Ok(Some(self.id))
    }
    fn rev(&self) -> Option<u64> {
        Some(self.rev)
    }
    fn describe(&self) -> String {
        format!("workspace {}", self.slug)
    }
    fn uniques(&self) -> Vec<Unique> {
        let mut u = vec![Unique::Slug(self.slug.to_string())];
        if let Some(team) = &self.slack_team {
            u.push(Unique::SlackTeam(team.clone()));
        }
        u
    }
    fn owner(&self) -> Uuid {
        self.id.0
    }
}

impl Row for User {
    type Id = UserId;
    const WHAT: &'static str = "user";
    fn id(&self) -> UserId {
        self.id
    }
    fn table(s: &State) -> &BTreeMap<UserId, Self> {
        &s.users
    }
    fn table_mut(s: &mut State) -> &mut BTreeMap<UserId, Self> {
        &mut s.users
    }
    fn workspace(&self, _s: &State) -> StoreResult<Option<WorkspaceId>> {
        Ok(None)
    }
    fn rev(&self) -> Option<u64> {
        Some(self.rev)
    }
    fn describe(&self) -> String {
        format!("user {}", self.handle)
    }
    fn uniques(&self) -> Vec<Unique> {
        vec![Unique::Handle(self.handle.to_string())]
    }
    fn owner(&self) -> Uuid {
        self.id.0
    }
}

impl Row for Membership {
    type Id = (WorkspaceId, UserId);
    const WHAT: &'static str = "membership";
    fn id(&self) -> (WorkspaceId, UserId) {
        (self.workspace, self.user)
    }
    fn table(s: &State) -> &BTreeMap<(WorkspaceId, UserId), Self> {
        &s.memberships
    }
    fn table_mut(s: &mut State) -> &mut BTreeMap<(WorkspaceId, UserId), Self> {
        &mut s.memberships
    }
    fn workspace(&self, _s: &State) -> StoreResult<Option<WorkspaceId>> {
        Ok(Some(self.workspace))
    }
    fn rev(&self) -> Option<u64> {
        Some(self.rev)
    }
    fn describe(&self) -> String {
        format!("membership of user {}", self.user)
    }
    fn uniques(&self) -> Vec<Unique> {
        self.chat_identities
            .iter()
            .map(|c| Unique::Chat(self.workspace, c.clone()))
            .collect()
    }
    fn owner(&self) -> Uuid {
        self.user.0
    }
    fn check_refs(&self, s: &State) -> StoreResult<()> {
        if s.users.contains_key(&self.user) {
            Ok(())
        } else {
            Err(StoreError::NotFound(format!("user {}", self.user)))
        }
    }
}

impl Row for Runbook {
    type Id = RunbookId;
    const WHAT: &'static str = "runbook";
    fn id(&self) -> RunbookId {
        self.id
    }
    fn table(s: &State) -> &BTreeMap<RunbookId, Self> {
        &s.runbooks
    }
    fn table_mut(s: &mut State) -> &mut BTreeMap<RunbookId, Self> {
        &mut s.runbooks
    }
    fn workspace(&self, _s: &State) -> StoreResult<Option<WorkspaceId>> {
        Ok(Some(self.workspace))
    }
    fn rev(&self) -> Option<u64> {
        Some(self.rev)
    }
    fn describe(&self) -> String {
        format!("runbook {}", self.key)
    }
    fn uniques(&self) -> Vec<Unique> {
        vec![Unique::Key(Self::WHAT, self.workspace, self.key)]
    }
    fn owner(&self) -> Uuid {
        self.id.0
    }
}

impl Row for RunbookVersion {
    type Id = (RunbookId, u32);
    const WHAT: &'static str = "runbook version";
    fn id(&self) -> (RunbookId, u32) {
        (self.runbook, self.version)
    }
    fn table(s: &State) -> &BTreeMap<(RunbookId, u32), Self> {
        &s.versions
    }
    fn table_mut(s: &mut State) -> &mut BTreeMap<(RunbookId, u32), Self> {
        &mut s.versions
    }
    fn workspace(&self, s: &State) -> StoreResult<Option<WorkspaceId>> {
        s.runbooks
            .get(&self.runbook)
            .map(|r| Some(r.workspace))
            .ok_or_else(|| StoreError::NotFound(format!("runbook {}", self.runbook)))
    }
    fn rev(&self) -> Option<u64> {
        None
    }
    fn describe(&self) -> String {
        format!("version {} of runbook {}", self.version, self.runbook)
    }
}

impl Row for Execution {
    type Id = ExecutionId;
    const WHAT: &'static str = "execution";
    fn id(&self) -> ExecutionId {
        self.id
    }
    fn table(s: &State) -> &BTreeMap<ExecutionId, Self> {
        &s.executions
    }
    fn table_mut(s: &mut State) -> &mut BTreeMap<ExecutionId, Self> {
        &mut s.executions
    }
    fn workspace(&self, _s: &State) -> StoreResult<Option<WorkspaceId>> {
        Ok(Some(self.workspace))
    }
    fn rev(&self) -> Option<u64> {
        Some(self.rev)
    }
    fn describe(&self) -> String {
        format!("execution {}", self.key)
    }
    fn uniques(&self) -> Vec<Unique> {
        vec![Unique::Key(Self::WHAT, self.workspace, self.key)]
    }
    fn owner(&self) -> Uuid {
        self.id.0
    }
}

impl Row for StepEvent {
    type Id = (ExecutionId, u64);
    const WHAT: &'static str = "step event";
    fn id(&self) -> (ExecutionId, u64) {
        (self.execution, self.seq)
    }
    fn table(s: &State) -> &BTreeMap<(ExecutionId, u64), Self> {
        &s.events
    }
    fn table_mut(s: &mut State) -> &mut BTreeMap<(ExecutionId, u64), Self> {
        &mut s.events
    }
    fn workspace(&self, s: &State) -> StoreResult<Option<WorkspaceId>> {
        s.executions
            .get(&self.execution)
            .map(|e| Some(e.workspace))
            .ok_or_else(|| StoreError::NotFound(format!("execution {}", self.execution)))
    }
    fn rev(&self) -> Option<u64> {
        None
    }
    fn describe(&self) -> String {
        format!("event {} of execution {}", self.seq, self.execution)
    }
}

impl Row for ChangeRequest {
    type Id = ChangeId;
    const WHAT: &'static str = "change";
    fn id(&self) -> ChangeId {
        self.id
    }
    fn table(s: &State) -> &BTreeMap<ChangeId, Self> {
        &s.changes
    }
    fn table_mut(s: &mut State) -> &mut BTreeMap<ChangeId, Self> {
        &mut s.changes
    }
    fn workspace(&self, _s: &State) -> StoreResult<Option<WorkspaceId>> {
        Ok(Some(self.workspace))
    }
    fn rev(&self) -> Option<u64> {
        Some(self.rev)
    }
    fn describe(&self) -> String {
        format!("change {}", self.key)
    }
    fn uniques(&self) -> Vec<Unique> {
        vec![Unique::Key(Self::WHAT, self.workspace, self.key)]
    }
    fn owner(&self) -> Uuid {
        self.id.0
    }
}

impl Row for Incident {
    type Id = IncidentId;
    const WHAT: &'static str = "incident";
    fn id(&self) -> IncidentId {
        self.id
    }
    fn table(s: &State) -> &BTreeMap<IncidentId, Self> {
        &s.incidents
    }
    fn table_mut(s: &mut State) -> &mut BTreeMap<IncidentId, Self> {
        &mut s.incidents
    }
    fn workspace(&self, _s: &State) -> StoreResult<Option<WorkspaceId>> {
        Ok(Some(self.workspace))
    }
    fn rev(&self) -> Option<u64> {
        Some(self.rev)
    }
    fn describe(&self) -> String {
        format!("incident {}", self.key)
    }
    fn uniques(&self) -> Vec<Unique> {
        vec![Unique::Key(Self::WHAT, self.workspace, self.key)]
    }
    fn owner(&self) -> Uuid {
        self.id.0
    }
}

/// Stores `row` (keeping the unique index in step) and returns the row it replaced.
fn put<R: Row>(s: &mut State, row: R) -> Option<R> {
    let owner = row.owner();
    let new_uniques = row.uniques();
    let old = R::table_mut(s).insert(row.id(), row);
    if let Some(o) = &old {
        release(s, o);
    }
    for u in new_uniques {
        s.uniques.insert(u, owner);
    }
    old
}

/// Removes the row with `id`.
fn remove<R: Row>(s: &mut State, id: R::Id) {
    if let Some(o) = R::table_mut(s).remove(&id) {
        release(s, &o);
    }
}

/// Frees the unique values `row` holds.
fn release<R: Row>(s: &mut State, row: &R) {
    let owner = row.owner();
    for u in row.uniques() {
        if s.uniques.get(&u) == Some(&owner) {
            s.uniques.remove(&u);
        }
    }
}

/// Validates one write against the current state and applies it, logging how to undo it.
fn write<R: Row>(
    s: &mut State,
    ws: WorkspaceId,
    row: R,
    expected_rev: Option<u64>,
    undo: &mut UndoLog,
) -> StoreResult<()> {
    // What the write claims (its workspace, its new revision) was checked for the whole commit
    // by the contract; here, what depends on the state.
    if let Some(w) = row.workspace(s)? {
        contract::belongs(ws, w, &row.describe())?;
    }
    let id = row.id();
    match (expected_rev, R::table(s).get(&id)) {
        (None, Some(_)) => return Err(StoreError::AlreadyExists(row.describe())),
        (None, None) => {}
        (Some(r), None) => return Err(contract::stale(&row.describe(), None, r)),
        (Some(r), Some(current)) => {
            if let Some(w) = current.workspace(s)?
                && w != ws
            {
                return Err(StoreError::NotFound(row.describe()));
            }
            if current.rev() != Some(r) {
                return Err(contract::stale(&row.describe(), current.rev(), r));
            }
        }
    }
    row.check_refs(s)?;
    let owner = row.owner();
    for u in row.uniques() {
        if let Some(holder) = s.uniques.get(&u)
            && *holder != owner
        {
            return Err(StoreError::AlreadyExists(u.describe()));
        }
    }
    let old = put(s, row);
    undo.push(Box::new(move |s: &mut State| match old {
        Some(o) => {
            put(s, o);
        }
        None => remove::<R>(s, id),
    }));
    Ok(())
}

fn apply(s: &mut State, ws: WorkspaceId, w: Write, undo: &mut UndoLog) -> StoreResult<()> {
    match w {
        Write::Workspace {
            workspace,
            expected_rev,
        } => write(s, ws, workspace, expected_rev, undo),
        Write::User { user, expected_rev } => write(s, ws, user, expected_rev, undo),
        Write::Membership {
            membership,
            expected_rev,
        } => write(s, ws, membership, expected_rev, undo),
        Write::Runbook {
            runbook,
            expected_rev,
        } => write(s, ws, runbook, expected_rev, undo),
        Write::RunbookVersion(v) => write(s, ws, v, None, undo),
        Write::Execution {
            execution,
            expected_rev,
        } => write(s, ws, execution, expected_rev, undo),
        Write::StepEvent(e) => write(s, ws, e, None, undo),
        Write::Change {
            change,
            expected_rev,
        } => write(s, ws, change, expected_rev, undo),
        Write::Incident {
            incident,
            expected_rev,
        } => write(s, ws, incident, expected_rev, undo),
    }
}

/// A row of `ws`, or `NotFound`.
fn scoped<'a, T>(
    row: Option<&'a T>,
    ws: WorkspaceId,
    of: impl Fn(&T) -> WorkspaceId,
    what: impl FnOnce() -> String,
) -> StoreResult<T>
where
    T: Clone + 'a,
{
    match row {
        Some(r) if of(r) == ws => Ok(r.clone()),
        _ => Err(StoreError::NotFound(what())),
    }
}

fn draft_visible(rb: &Runbook, drafts: DraftFilter) -> bool {
    match drafts {
        DraftFilter::None => rb.is_published,
        DraftFilter::OwnedBy(user) => rb.is_published || rb.owner == user,
        DraftFilter::All => true,
        DraftFilter::Only => !rb.is_published,
    }
}

fn links_to(entry: &AuditEntry, target: &str) -> bool {
    if entry.target == target {
        return true;
    }
    let l = &entry.links;
    [l.runbook, l.change, l.incident, l.execution]
        .into_iter()
        .flatten()
        .any(|k| k.to_string() == target)
}

/// A complete in-memory [`Store`]: atomic commits, optimistic revisions, unique values, key
/// counters, per-workspace audit chains and workspace isolation, all behind one mutex.
///
/// ```
/// use std::sync::Arc;
/// use vigilo_core::store::Store;
/// use vigilo_core::testkit::memory::MemoryStore;
///
/// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
/// # let _ = store;
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A commit never panics half-way (it undoes on error), so a poisoned lock still guards a
        // consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Applies one commit to the locked state, recording in `undo` how to take back every change
/// (its writes and its audit entry), so that a caller can roll back this commit and any
/// before it.
fn commit_locked(s: &mut State, commit: Commit, undo: &mut UndoLog) -> StoreResult<AuditEntry> {
    contract::check_commit(&commit)?;
    let keeps_owner = commit.writes_membership();
    let Commit {
        workspace: ws,
        writes,
        audit: draft,
        acting,
    } = commit;
    // The authority is checked against the state the command was checked in, before the
    // commit's own writes (which may update the acting member's own membership).
    if let Some(acting) = acting {
        let rev = s.memberships.get(&(ws, acting.user)).map(|m| m.rev);
        if rev != Some(acting.membership_rev) {
            return Err(crate::store::authority_moved(acting.user));
        }
    }
    writes.into_iter().try_for_each(|w| apply(s, ws, w, undo))?;
    if !s.workspaces.contains_key(&ws) {
        return Err(StoreError::NotFound(format!("workspace {ws}")));
    }
    if keeps_owner
        && !s
            .memberships
            .values()
            .any(|m| m.workspace == ws && m.is_active_owner())
    {
        return Err(crate::store::no_owner_left());
    }
    let chain = s.audit.entry(ws).or_default();
    let entry = audit::seal(ws, draft, chain.last().map(|e| (e.seq, e.hash.as_str())));
    chain.push(entry.clone());
    undo.push(Box::new(move |s: &mut State| {
        if let Some(chain) = s.audit.get_mut(&ws) {
            chain.pop();
        }
    }));
    Ok(entry)
}

#[async_trait]
impl Store for MemoryStore {
    async fn commit(&self, commit: Commit) -> StoreResult<AuditEntry> {
        let mut guard = self.lock();
        let mut undo: UndoLog = Vec::new();
        let result = commit_locked(&mut guard, commit, &mut undo);
        if result.is_err() {
            while let Some(u) = undo.pop() {
                u(&mut guard);
            }
        }
        result
    }

    async fn commit_all(&self, commits: Vec<Commit>) -> StoreResult<Vec<AuditEntry>> {
        let mut guard = self.lock();
        let mut undo: UndoLog = Vec::new();
        let mut entries = Vec::with_capacity(commits.len());
        for commit in commits {
            match commit_locked(&mut guard, commit, &mut undo) {
                Ok(entry) => entries.push(entry),
                Err(e) => {
                    while let Some(u) = undo.pop() {
                        u(&mut guard);
                    }
                    return Err(e);
                }
            }
        }
        Ok(entries)
    }

    async fn allocate_key(&self, workspace: WorkspaceId, kind: KeyKind) -> StoreResult<Key> {
        let mut s = self.lock();
        if !s.workspaces.contains_key(&workspace) {
            return Err(StoreError::NotFound(format!("workspace {workspace}")));
        }
        let counter = s.counters.entry((workspace, kind)).or_insert(0);
        *counter += 1;
        Ok(Key::new(kind, *counter))
    }

    async fn workspace(&self, id: WorkspaceId) -> StoreResult<Workspace> {
        self.lock()
            .workspaces
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("workspace {id}")))
    }

    async fn workspace_by_slug(&self, slug: &str) -> StoreResult<Workspace> {
        self.lock()
            .workspaces
            .values()
            .find(|w| w.slug.as_str() == slug)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("workspace {slug}")))
    }

    async fn workspace_by_slack_team(&self, team: &str) -> StoreResult<Workspace> {
        self.lock()
            .workspaces
            .values()
            .find(|w| w.slack_team.as_deref() == Some(team))
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("workspace for Slack team {team}")))
    }

    async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>> {
        let mut all: Vec<Workspace> = self.lock().workspaces.values().cloned().collect();
        all.sort_by(|a, b| a.slug.cmp(&b.slug));
        Ok(all)
    }

    async fn user(&self, id: UserId) -> StoreResult<User> {
        self.lock()
            .users
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("user {id}")))
    }

    async fn user_by_handle(&self, handle: &str) -> StoreResult<User> {
        self.lock()
            .users
            .values()
            .find(|u| u.handle.as_str() == handle)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("user {handle}")))
    }

    async fn member_by_chat(
        &self,
        workspace: WorkspaceId,
        identity: &ChatIdentity,
    ) -> StoreResult<(User, Membership)> {
        let s = self.lock();
        s.memberships
            .values()
            .find(|m| m.workspace == workspace && m.chat_identities.contains(identity))
            .and_then(|m| s.users.get(&m.user).map(|u| (u.clone(), m.clone())))
            .ok_or_else(|| {
                StoreError::NotFound(format!(
                    "member with chat identity {}/{}",
                    identity.platform, identity.user
                ))
            })
    }

    async fn membership(&self, workspace: WorkspaceId, user: UserId) -> StoreResult<Membership> {
        self.lock()
            .memberships
            .get(&(workspace, user))
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("membership of user {user}")))
    }

    async fn list_members(&self, workspace: WorkspaceId) -> StoreResult<Vec<(User, Membership)>> {
        let s = self.lock();
        let mut out: Vec<(User, Membership)> = s
            .memberships
            .values()
            .filter(|m| m.workspace == workspace)
            .filter_map(|m| s.users.get(&m.user).map(|u| (u.clone(), m.clone())))
            .collect();
        out.sort_by(|a, b| a.0.handle.cmp(&b.0.handle));
        Ok(out)
    }

    async fn runbook(&self, workspace: WorkspaceId, id: RunbookId) -> StoreResult<Runbook> {
        scoped(
            self.lock().runbooks.get(&id),
            workspace,
            |r| r.workspace,
            || format!("runbook {id}"),
        )
    }

    async fn runbook_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<Runbook> {
        let s = self.lock();
        let row = s
            .runbooks
            .values()
            .find(|r| r.workspace == workspace && r.key == key);
        scoped(row, workspace, |r| r.workspace, || format!("runbook {key}"))
    }

    async fn list_runbooks(
        &self,
        workspace: WorkspaceId,
        query: &RunbookQuery,
    ) -> StoreResult<Vec<Runbook>> {
        let s = self.lock();
        let mut out: Vec<Runbook> = s
            .runbooks
            .values()
            .filter(|r| r.workspace == workspace)
            .filter(|r| r.archived_at.is_some() == query.archived)
            .filter(|r| {
                query
                    .category
                    .as_deref()
                    .is_none_or(|c| r.body.category.as_str() == c)
            })
            .filter(|r| draft_visible(r, query.drafts))
            .filter(|r| query.after_number.is_none_or(|n| r.key.number > n))
            .cloned()
            .collect();
        out.sort_by_key(|r| r.key.number);
        out.truncate(page(query.limit, DEFAULT_PAGE));
        Ok(out)
    }

    async fn search_runbooks(
        &self,
        workspace: WorkspaceId,
        input: &str,
        drafts: DraftFilter,
        limit: usize,
    ) -> StoreResult<Vec<Runbook>> {
        let words: Vec<String> = crate::store::search::words(input)
            .unwrap_or_default()
            .into_iter()
            .map(str::to_lowercase)
            .collect();
        let key = crate::store::search::title_key(input);
        let s = self.lock();
        let mut hits: Vec<((bool, usize), &Runbook)> = s
            .runbooks
            .values()
            .filter(|r| {
                r.workspace == workspace && r.archived_at.is_none() && draft_visible(r, drafts)
            })
            .filter_map(|r| {
                let indexed = SearchText::of(&r.body);
                let title = indexed.title.to_lowercase();
                let text = [
                    title.clone(),
                    indexed.description.to_lowercase(),
                    indexed.steps.to_lowercase(),
                ];
                let all = words
                    .iter()
                    .all(|w| text.iter().any(|t| t.contains(w.as_str())));
                all.then(|| {
                    (
                        (
                            crate::store::search::title_key(&indexed.title) == key,
                            words.iter().filter(|w| title.contains(w.as_str())).count(),
                        ),
                        r,
                    )
                })
            })
            .collect();
        hits.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.key.number.cmp(&b.1.key.number)));
        Ok(hits
            .into_iter()
            .take(page(limit, DEFAULT_PAGE))
            .map(|(_, r)| r.clone())
            .collect())
    }

    async fn runbook_version(
        &self,
        workspace: WorkspaceId,
        id: RunbookId,
        version: u32,
    ) -> StoreResult<RunbookVersion> {
        let s = self.lock();
        scoped(
            s.runbooks.get(&id),
            workspace,
            |r| r.workspace,
            || format!("runbook {id}"),
        )?;
        s.versions
            .get(&(id, version))
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("version {version} of runbook {id}")))
    }

    async fn runbook_versions(
        &self,
        workspace: WorkspaceId,
        id: RunbookId,
    ) -> StoreResult<Vec<RunbookVersion>> {
        let s = self.lock();
        scoped(
            s.runbooks.get(&id),
            workspace,
            |r| r.workspace,
            || format!("runbook {id}"),
        )?;
        Ok(s.versions
            .range((id, 0)..=(id, u32::MAX))
            .map(|(_, v)| v.clone())
            .collect())
    }

    async fn execution(&self, workspace: WorkspaceId, id: ExecutionId) -> StoreResult<Execution> {
        scoped(
            self.lock().executions.get(&id),
            workspace,
            |e| e.workspace,
            || format!("execution {id}"),
        )
    }

    async fn execution_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<Execution> {
        let s = self.lock();
        let row = s
            .executions
            .values()
            .find(|e| e.workspace == workspace && e.key == key);
        scoped(
            row,
            workspace,
            |e| e.workspace,
            || format!("execution {key}"),
        )
    }

    async fn list_executions(
        &self,
        workspace: WorkspaceId,
        query: &ExecutionQuery,
    ) -> StoreResult<Vec<Execution>> {
        let s = self.lock();
        let channel_matches = |c: &Option<ChannelRef>| {
            query
                .channel
                .as_ref()
                .is_none_or(|want| c.as_ref() == Some(want))
        };
        let mut out: Vec<Execution> = s
            .executions
            .values()
            .filter(|e| e.workspace == workspace)
            .filter(|e| query.runbook.is_none_or(|r| e.runbook == r))
            .filter(|e| query.runbook_version.is_none_or(|v| e.runbook_version == v))
            .filter(|e| !query.open_only || e.status == ExecutionStatus::Running)
            .filter(|e| query.change.is_none_or(|c| e.change_id == Some(c)))
            .filter(|e| channel_matches(&e.channel))
            .cloned()
            .collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.key.number));
        out.truncate(page(query.limit, DEFAULT_PAGE));
        Ok(out)
    }

    async fn step_events(
        &self,
        workspace: WorkspaceId,
        execution: ExecutionId,
    ) -> StoreResult<Vec<StepEvent>> {
        let s = self.lock();
        scoped(
            s.executions.get(&execution),
            workspace,
            |e| e.workspace,
            || format!("execution {execution}"),
        )?;
        Ok(s.events
            .range((execution, 0)..=(execution, u64::MAX))
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn run_facts(
        &self,
        workspace: WorkspaceId,
        query: &StatsQuery,
    ) -> StoreResult<Vec<RunFacts>> {
        let s = self.lock();
        Ok(s.executions
            .values()
            .filter(|e| e.workspace == workspace)
            .filter_map(|e| {
                let events: Vec<StepEvent> = s
                    .events
                    .range((e.id, 0)..=(e.id, u64::MAX))
                    .map(|(_, ev)| ev.clone())
                    .collect();
                RunFacts::of(e, &events, query)
            })
            .collect())
    }

    async fn change(&self, workspace: WorkspaceId, id: ChangeId) -> StoreResult<ChangeRequest> {
        scoped(
            self.lock().changes.get(&id),
            workspace,
            |c| c.workspace,
            || format!("change {id}"),
        )
    }

    async fn change_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<ChangeRequest> {
        let s = self.lock();
        let row = s
            .changes
            .values()
            .find(|c| c.workspace == workspace && c.key == key);
        scoped(row, workspace, |c| c.workspace, || format!("change {key}"))
    }

    async fn list_changes(&self, workspace: WorkspaceId) -> StoreResult<Vec<ChangeRequest>> {
        let s = self.lock();
        let mut out: Vec<ChangeRequest> = s
            .changes
            .values()
            .filter(|c| c.workspace == workspace)
            .cloned()
            .collect();
        out.sort_by_key(|c| c.key.number);
        Ok(out)
    }

    async fn incident_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<Incident> {
        let s = self.lock();
        let row = s
            .incidents
            .values()
            .find(|i| i.workspace == workspace && i.key == key);
        scoped(
            row,
            workspace,
            |i| i.workspace,
            || format!("incident {key}"),
        )
    }

    async fn list_incidents(&self, workspace: WorkspaceId) -> StoreResult<Vec<Incident>> {
        let s = self.lock();
        let mut out: Vec<Incident> = s
            .incidents
            .values()
            .filter(|i| i.workspace == workspace)
            .cloned()
            .collect();
        out.sort_by_key(|i| i.key.number);
        Ok(out)
    }

    async fn audit(
        &self,
        workspace: WorkspaceId,
        query: &AuditQuery,
    ) -> StoreResult<Vec<AuditEntry>> {
        let s = self.lock();
        let Some(chain) = s.audit.get(&workspace) else {
            return Ok(Vec::new());
        };
        let found: Vec<AuditEntry> = chain
            .iter()
            .filter(|e| e.seq > query.after_seq)
            .filter(|e| query.target.as_deref().is_none_or(|t| links_to(e, t)))
            .filter(|e| query.actor.is_none_or(|a| e.actor == Some(a)))
            .filter(|e| query.since.is_none_or(|t| e.at >= t))
            .filter(|e| query.until.is_none_or(|t| e.at < t))
            .take(page(query.limit, DEFAULT_AUDIT_PAGE))
            .cloned()
            .collect();
        // The contract every store keeps: each entry checked against its hash and its place in
        // the chain (this store keeps no separate columns, so they are the entry's own).
        let head_seq = chain.last().map_or(0, |e| e.seq);
        for e in &found {
            let next = chain.get(usize::try_from(e.seq).unwrap_or(usize::MAX));
            let stored = stored_columns(e, next, head_seq);
            e.check_stored(&stored).map_err(StoreError::Tampered)?;
            e.check_successor(&stored).map_err(StoreError::Tampered)?;
        }
        Ok(found)
    }
}

/// The columns an SQL store would keep for `e`, taken from the entry itself.
fn stored_columns(
    e: &AuditEntry,
    next: Option<&AuditEntry>,
    head_seq: u64,
) -> crate::audit::StoredColumns {
    let key = |k: Option<Key>| k.map(|k| k.to_string());
    crate::audit::StoredColumns {
        workspace: e.workspace.to_string(),
        seq: i64::try_from(e.seq).unwrap_or(i64::MAX),
        id: e.id.to_string(),
        at_micros: e.at.timestamp_micros(),
        actor: e.actor.map(|a| a.to_string()),
        action: e.action.clone(),
        target: e.target.clone(),
        link_runbook: key(e.links.runbook),
        link_change: key(e.links.change),
        link_incident: key(e.links.incident),
        link_execution: key(e.links.execution),
        hash: e.hash.clone(),
        next_prev_hash: next.map(|n| n.prev_hash.clone()),
        head_seq: i64::try_from(head_seq).unwrap_or(i64::MAX),
        document: None,
    }
}
