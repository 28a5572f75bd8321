//! A custom [`Store`]: the skeleton to start from when Vigilo must keep its data somewhere
//! new. This one wraps another store and counts what the engine asks of it (commits, reads),
//! which is also how you would add metrics, caching or tracing around a store.
//!
//! Every method of the trait is spelled out, so a real adapter can replace each delegation
//! with its own storage. Whatever it does, it must keep the contract written on
//! [`vigilo_core::store`] — check the claims of a commit with
//! [`vigilo_core::store::contract::check_commit`], apply all or nothing, keep the audit chain —
//! and prove it the way this one does: `vigilo_core::conformance_tests!` runs the whole suite
//! against it (`tests/custom_store_conformance.rs`).

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use vigilo_core::analytics::{RunFacts, StatsQuery};
use vigilo_core::audit::AuditEntry;
use vigilo_core::change::ChangeRequest;
use vigilo_core::execution::{Execution, StepEvent};
use vigilo_core::ids::{ChangeId, ExecutionId, Key, KeyKind, RunbookId, UserId, WorkspaceId};
use vigilo_core::incident::Incident;
use vigilo_core::runbook::{Runbook, RunbookVersion};
use vigilo_core::store::{
    AuditQuery, Commit, DraftFilter, ExecutionQuery, RunbookQuery, Store, StoreResult,
};
use vigilo_core::workspace::{ChatIdentity, Membership, User, Workspace};

/// A store that delegates to `S` and counts commits and reads.
#[derive(Debug, Default)]
pub struct CountingStore<S> {
    inner: S,
    commits: AtomicU64,
    reads: AtomicU64,
}

impl<S: Store> CountingStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            commits: AtomicU64::new(0),
            reads: AtomicU64::new(0),
        }
    }

    /// Commits applied or attempted (each commit of a `commit_all` counts).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Reads served.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    fn read(&self) -> &S {
        self.reads.fetch_add(1, Ordering::Relaxed);
        &self.inner
    }
}

#[async_trait]
impl<S: Store> Store for CountingStore<S> {
    async fn commit(&self, commit: Commit) -> StoreResult<AuditEntry> {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.inner.commit(commit).await
    }

    async fn commit_all(&self, commits: Vec<Commit>) -> StoreResult<Vec<AuditEntry>> {
        self.commits
            .fetch_add(commits.len() as u64, Ordering::Relaxed);
        self.inner.commit_all(commits).await
    }

    async fn allocate_key(&self, workspace: WorkspaceId, kind: KeyKind) -> StoreResult<Key> {
        self.inner.allocate_key(workspace, kind).await
    }

    async fn workspace(&self, id: WorkspaceId) -> StoreResult<Workspace> {
        self.read().workspace(id).await
    }

    async fn workspace_by_slug(&self, slug: &str) -> StoreResult<Workspace> {
        self.read().workspace_by_slug(slug).await
    }

    async fn workspace_by_slack_team(&self, team: &str) -> StoreResult<Workspace> {
        self.read().workspace_by_slack_team(team).await
    }

    async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>> {
        self.read().list_workspaces().await
    }

    async fn user(&self, id: UserId) -> StoreResult<User> {
        self.read().user(id).await
    }

    async fn user_by_handle(&self, handle: &str) -> StoreResult<User> {
        self.read().user_by_handle(handle).await
    }

    async fn member_by_chat(
        &self,
        workspace: WorkspaceId,
        identity: &ChatIdentity,
    ) -> StoreResult<(User, Membership)> {
        self.read().member_by_chat(workspace, identity).await
    }

    async fn membership(&self, workspace: WorkspaceId, user: UserId) -> StoreResult<Membership> {
        self.read().membership(workspace, user).await
    }

    async fn list_members(&self, workspace: WorkspaceId) -> StoreResult<Vec<(User, Membership)>> {
        self.read().list_members(workspace).await
    }

    async fn runbook(&self, workspace: WorkspaceId, id: RunbookId) -> StoreResult<Runbook> {
        self.read().runbook(workspace, id).await
    }

    async fn runbook_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<Runbook> {
        self.read().runbook_by_key(workspace, key).await
    }

    async fn list_runbooks(
        &self,
        workspace: WorkspaceId,
        query: &RunbookQuery,
    ) -> StoreResult<Vec<Runbook>> {
        self.read().list_runbooks(workspace, query).await
    }

    async fn search_runbooks(
        &self,
        workspace: WorkspaceId,
        words: &str,
        drafts: DraftFilter,
        limit: usize,
    ) -> StoreResult<Vec<Runbook>> {
        self.read()
            .search_runbooks(workspace, words, drafts, limit)
            .await
    }

    async fn runbook_version(
        &self,
        workspace: WorkspaceId,
        id: RunbookId,
        version: u32,
    ) -> StoreResult<RunbookVersion> {
        self.read().runbook_version(workspace, id, version).await
    }

    async fn runbook_versions(
        &self,
        workspace: WorkspaceId,
        id: RunbookId,
    ) -> StoreResult<Vec<RunbookVersion>> {
        self.read().runbook_versions(workspace, id).await
    }

    async fn execution(&self, workspace: WorkspaceId, id: ExecutionId) -> StoreResult<Execution> {
        self.read().execution(workspace, id).await
    }

    async fn execution_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<Execution> {
        self.read().execution_by_key(workspace, key).await
    }

    async fn list_executions(
        &self,
        workspace: WorkspaceId,
        query: &ExecutionQuery,
    ) -> StoreResult<Vec<Execution>> {
        self.read().list_executions(workspace, query).await
    }

    async fn step_events(
        &self,
        workspace: WorkspaceId,
        execution: ExecutionId,
    ) -> StoreResult<Vec<StepEvent>> {
        self.read().step_events(workspace, execution).await
    }

    async fn run_facts(
        &self,
        workspace: WorkspaceId,
        query: &StatsQuery,
    ) -> StoreResult<Vec<RunFacts>> {
        self.read().run_facts(workspace, query).await
    }

    async fn change(&self, workspace: WorkspaceId, id: ChangeId) -> StoreResult<ChangeRequest> {
        self.read().change(workspace, id).await
    }

    async fn change_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<ChangeRequest> {
        self.read().change_by_key(workspace, key).await
    }

    async fn list_changes(&self, workspace: WorkspaceId) -> StoreResult<Vec<ChangeRequest>> {
        self.read().list_changes(workspace).await
    }

    async fn incident_by_key(&self, workspace: WorkspaceId, key: Key) -> StoreResult<Incident> {
        self.read().incident_by_key(workspace, key).await
    }

    async fn list_incidents(&self, workspace: WorkspaceId) -> StoreResult<Vec<Incident>> {
        self.read().list_incidents(workspace).await
    }

    async fn audit(
        &self,
        workspace: WorkspaceId,
        query: &AuditQuery,
    ) -> StoreResult<Vec<AuditEntry>> {
        self.read().audit(workspace, query).await
    }
}
