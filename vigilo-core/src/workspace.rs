//! Workspaces, users, memberships and chat identities.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fields::{Label, Name};
use crate::ids::{UserId, WorkspaceId};
use crate::roles::WorkspaceRole;

/// Rules a workspace chooses for itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// When true (the default), the execution's operator at that moment (who started it, or to
    /// whom it was handed over) cannot approve its gated steps: four eyes on every destructive
    /// or gated step.
    pub approver_must_differ: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            approver_must_differ: true,
        }
    }
}

/// A workspace: the unit of isolation. Nothing in one workspace is visible from another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    /// Row id.
    pub id: WorkspaceId,
    /// The short name used in commands (`/ws/{slug}`).
    pub slug: Name,
    /// The workspace's rules.
    pub policy: Policy,
    /// The Slack team linked to this workspace, if any.
    pub slack_team: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Row revision, bumped on every write (optimistic concurrency).
    pub rev: u64,
}

/// A person or program known to Vigilo: only what is global to them, their handle. Everything
/// a workspace says about a person (display name, rank, team roles, chat identities) lives in
/// their [`Membership`] of that workspace, so one workspace's admins can never change what
/// another workspace sees or who may act there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Row id.
    pub id: UserId,
    /// Unique handle, lowercase (`alice`). Global and never changed: audit entries name it.
    pub handle: Name,
    /// Row revision, bumped on every write.
    pub rev: u64,
}

/// An account on a chat platform (`slack`, user `U…`) mapped to a member of one workspace.
///
/// It has no team of its own: it is bound to the workspace's linked team (see
/// [`Workspace::slack_team`]), whenever that link is made, before or after the mapping. A
/// platform user is recognised only in the workspace whose member it was mapped to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChatIdentity {
    /// Platform name, e.g. `slack`.
    pub platform: String,
    /// The platform's user id.
    pub user: String,
}

impl ChatIdentity {
    /// A Slack user (`U…` or `W…`).
    pub fn slack(user: impl Into<String>) -> Self {
        Self {
            platform: "slack".into(),
            user: user.into(),
        }
    }
}

/// A user's place in a workspace: the workspace's own view of a person. Its admins change it;
/// nothing here is visible from, or changeable by, another workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The workspace.
    pub workspace: WorkspaceId,
    /// The user.
    pub user: UserId,
    /// Their rank.
    pub role: WorkspaceRole,
    /// Named team roles (`dba`, `sre`) they hold in this workspace.
    pub team_roles: BTreeSet<Name>,
    /// Display name in this workspace (`Alice Martin`); may be empty.
    #[serde(default)]
    pub display_name: Label,
    /// Chat accounts that act as this member in this workspace (unique within it).
    #[serde(default)]
    pub chat_identities: Vec<ChatIdentity>,
    /// When they were removed from the workspace (off-boarding); `None` while they belong.
    /// A removed member can no longer act or be mapped; history keeps their handle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_at: Option<DateTime<Utc>>,
    /// Row revision, bumped on every write. A commit made on a member's authority carries the
    /// revision it was checked at, and the store refuses it if the revision has moved.
    pub rev: u64,
}

impl Membership {
    /// Whether the member still belongs to the workspace (not removed).
    pub fn is_active(&self) -> bool {
        self.removed_at.is_none()
    }

    /// Whether this membership counts as an owner of the workspace.
    pub fn is_active_owner(&self) -> bool {
        self.is_active() && self.role == WorkspaceRole::Owner
    }

    /// The display name, or `handle` when there is none.
    pub fn name<'a>(&'a self, handle: &'a str) -> &'a str {
        if self.display_name.is_empty() {
            handle
        } else {
            self.display_name.as_str()
        }
    }
}

/// The acting user as the rules see them: who, and their role in the workspace at this moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The user.
    pub user: User,
    /// Their membership in the workspace being acted in.
    pub membership: Membership,
}

impl Actor {
    /// The user's id.
    pub fn id(&self) -> UserId {
        self.user.id
    }

    /// The user's rank.
    pub fn role(&self) -> WorkspaceRole {
        self.membership.role
    }

    /// The name this workspace shows for them.
    pub fn name(&self) -> &str {
        self.membership.name(self.user.handle.as_str())
    }
}
