//! [`Vigilo`]: the service every front end calls. Each method takes the acting user first,
//! authorizes with [`crate::authz`], applies the pure logic, and persists the result together
//! with its one audit entry in a single [`Store::commit`].

mod admin;
mod approvals;
mod audit_trail;
mod changes;
mod executions;
mod incidents;
mod reports;
mod runbooks;
mod stats;
mod together;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::audit::{AuditDraft, AuditEntry, AuditLinks, Origin, Surface};
use crate::authz::{self, Action, Subject};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, NotMember, Result};
use crate::ids::{UserId, WorkspaceId};
use crate::store::{ActingMember, Commit, Store, StoreError, StoreResult, Write};
use crate::workspace::{Actor, Workspace};

pub use admin::{NewMember, Removed};
pub use approvals::WaitingApproval;
pub use audit_trail::{AuditFilter, AuditVerdict, CheckpointVerdict};
pub use changes::{ChangeView, SaveAs};
pub use executions::{ActOutcome, StartOptions};
pub use reports::ReportVerdict;
pub use runbooks::{CreateRunbook, EditOutcome, ListRunbooks, RunbookSave, Saved, VersionInfo};
pub use stats::AppliedEstimates;

/// How many times a write that lost an optimistic race is re-read and re-applied before the
/// conflict is reported.
const CONFLICT_RETRIES: usize = 8;

/// Who is acting, and where: the workspace and the user. Roles are looked up afresh on every
/// call, so a role changed a moment ago counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Who {
    /// The workspace acted in.
    pub workspace: WorkspaceId,
    /// The acting user.
    pub user: UserId,
}

impl Who {
    /// `user` acting in `workspace`.
    pub fn new(workspace: WorkspaceId, user: UserId) -> Self {
        Self { workspace, user }
    }
}

/// The runbook engine as a service: storage and clock behind traits.
///
/// # Example
///
/// An owner writes and publishes a runbook; an operator starts a run and marks its first step
/// done; a member, who may neither start runs nor act on someone else's, is refused.
///
/// ```
/// # #[cfg(feature = "testkit")]
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
///
/// use vigilo_core::error::ErrorKind;
/// use vigilo_core::execution::machine::Command;
/// use vigilo_core::execution::{ExecutionStatus, StepStatus};
/// use vigilo_core::roles::WorkspaceRole;
/// use vigilo_core::runbook::{RunbookInput, StepInput};
/// use vigilo_core::service::{CreateRunbook, NewMember, StartOptions, Vigilo, Who};
/// use vigilo_core::testkit::memory::MemoryStore;
///
/// let vigilo = Vigilo::new(Arc::new(MemoryStore::new()));
/// let (ws, alice) = vigilo.create_workspace("acme", "alice", "Alice").await?;
/// let alice = Who::new(ws.id, alice.id);
/// let member = |handle: &str, role| NewMember {
///     handle: handle.into(),
///     display_name: String::new(),
///     role,
///     team_roles: Vec::new(),
///     chat_identity: None,
/// };
/// let (bob, _) = vigilo
///     .add_member(&alice, member("bob", WorkspaceRole::Operator))
///     .await?;
/// let bob = Who::new(ws.id, bob.id);
/// let (carol, _) = vigilo
///     .add_member(&alice, member("carol", WorkspaceRole::Member))
///     .await?;
/// let carol = Who::new(ws.id, carol.id);
///
/// // A published runbook of two steps.
/// let step = |title: &str| StepInput {
///     title: title.into(),
///     est_minutes: 5,
///     ..StepInput::default()
/// };
/// let input = RunbookInput {
///     title: "Rotate the TLS certificate".into(),
///     description: String::new(),
///     category: "edge".into(),
///     steps: vec![step("Issue the certificate"), step("Reload the proxies")],
/// };
/// let options = CreateRunbook {
///     publish: true,
///     ..CreateRunbook::default()
/// };
/// let rb = vigilo.create_runbook(&alice, input, options).await?;
///
/// // Bob, an operator, starts a run and marks step 1 done.
/// let ex = vigilo
///     .start_execution(&bob, rb.key, StartOptions::default())
///     .await?;
/// let done = |step| Command::Done { step, note: None };
/// let outcome = vigilo.act(&bob, ex.key, done(1)).await?;
/// assert_eq!(outcome.execution.steps[0].status, StepStatus::Done);
/// assert_eq!(outcome.execution.status, ExecutionStatus::Running);
///
/// // Carol, a member, may not act on Bob's run: refused, and nothing is written.
/// let refused = vigilo.act(&carol, ex.key, done(2)).await.unwrap_err();
/// assert_eq!(refused.kind(), ErrorKind::Denied);
/// assert_eq!(vigilo.execution(&bob, ex.key).await?.steps[1].status, StepStatus::Pending);
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "testkit"))]
/// # fn main() {}
/// ```
#[derive(Clone)]
pub struct Vigilo {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    origin: Arc<Origin>,
}

impl std::fmt::Debug for Vigilo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vigilo").finish_non_exhaustive()
    }
}

impl Vigilo {
    /// A service over `store` with the system clock.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self::with_clock(store, Arc::new(SystemClock))
    }

    /// A service over `store` reading time from `clock`.
    pub fn with_clock(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            origin: Arc::new(Origin::new(Surface::Api, "")),
        }
    }

    /// The same service, recording `origin` (the surface and the principal behind the acting
    /// user) in every audit entry it writes. A front end makes one per request or session: the
    /// Slack app per signed request (team and user id), the CLI per run (operating-system user
    /// and host). Without it entries say `api` with the principal the embedding program gave,
    /// empty by default. Cheap: the store and clock are shared.
    pub fn acting_via(&self, origin: Origin) -> Self {
        Self {
            store: self.store.clone(),
            clock: self.clock.clone(),
            origin: Arc::new(origin),
        }
    }

    /// The origin recorded in this service's audit entries.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The store, for read paths a front end streams itself (audit export).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The current time from the service's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Loads the acting user and their membership as of now. A user who is not a member of the
    /// workspace is refused as if the workspace did not exist for them.
    pub async fn actor(&self, who: &Who) -> Result<Actor> {
        // Both reads at once: an action's latency is mostly these round trips to the store.
        let (membership, user) = futures_util::future::join(
            self.store.membership(who.workspace, who.user),
            self.store.user(who.user),
        )
        .await;
        Self::actor_from(membership, user)
    }

    /// The actor of a membership and user read from the store (see [`Vigilo::actor`]).
    pub(crate) fn actor_from(
        membership: StoreResult<crate::workspace::Membership>,
        user: StoreResult<crate::workspace::User>,
    ) -> Result<Actor> {
        let membership = match membership {
            Ok(m) if m.is_active() => m,
            Ok(_) => {
                return Err(Error::NotMember(NotMember { removed: true }));
            }
            Err(StoreError::NotFound(_)) => {
                return Err(Error::NotMember(NotMember { removed: false }));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Actor {
            user: user?,
            membership,
        })
    }

    /// The workspace `who` acts in.
    pub async fn workspace_of(&self, who: &Who) -> Result<Workspace> {
        Ok(self.store.workspace(who.workspace).await?)
    }

    /// A user by id (for front ends that show who acted).
    pub async fn user(&self, id: UserId) -> Result<crate::workspace::User> {
        Ok(self.store.user(id).await?)
    }

    /// A user's handle for messages (`@alice`), or `someone` when unknown.
    pub(crate) async fn handle_of(&self, user: UserId) -> String {
        match self.store.user(user).await {
            Ok(u) => format!("@{}", u.handle),
            Err(_) => "someone".into(),
        }
    }

    fn check(&self, actor: &Actor, action: Action, subject: &Subject) -> Result<()> {
        authz::authorize(actor.id(), actor.role(), action, subject).map_err(Error::from)
    }

    fn draft(
        &self,
        actor: Option<&Actor>,
        now: DateTime<Utc>,
        action: &str,
        target: String,
        details: Value,
        links: AuditLinks,
    ) -> AuditDraft {
        AuditDraft {
            at: now,
            actor: actor.map(|a| a.id()),
            actor_handle: actor.map(|a| a.user.handle.to_string()),
            action: action.to_owned(),
            target,
            details,
            links,
            origin: Some((*self.origin).clone()),
        }
    }

    /// Commits `writes` and `audit` on the authority of `acting` (checked again by the store
    /// inside the transaction: see [`Commit`]).
    async fn commit(
        &self,
        actor: &Actor,
        writes: Vec<Write>,
        audit: AuditDraft,
    ) -> Result<AuditEntry> {
        let workspace = actor.membership.workspace;
        self.commit_in(workspace, Some(actor), writes, audit).await
    }

    /// [`Vigilo::commit`] in `workspace`, with no acting member for system changes.
    async fn commit_in(
        &self,
        workspace: WorkspaceId,
        acting: Option<&Actor>,
        writes: Vec<Write>,
        audit: AuditDraft,
    ) -> Result<AuditEntry> {
        let action = audit.action.clone();
        let entry = self
            .store
            .commit(Commit {
                workspace,
                writes,
                audit,
                acting: acting.map(acting_member),
            })
            .await?;
        tracing::debug!(%workspace, action, seq = entry.seq, "committed");
        Ok(entry)
    }
}

/// The authority a commit made by `actor` carries to the store.
pub(crate) fn acting_member(actor: &Actor) -> ActingMember {
    ActingMember {
        user: actor.id(),
        membership_rev: actor.membership.rev,
    }
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}
