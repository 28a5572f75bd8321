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
    /// When true (the default), the operator who started an execution cannot approve its gated
    /// steps: four eyes on every destructive or gated step.
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

/// A person or program known to Vigilo. Users are global; a [`Membership`] gives them a role in
/// one workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Row id.
    pub id: UserId,
    /// Unique handle, lowercase (`alice`).
    pub handle: Name,
    /// Display name (`Alice Martin`); may be empty.
    pub display_name: Label,
    /// Accounts on chat platforms that map to this user.
    pub chat_identities: Vec<ChatIdentity>,
    /// Row revision, bumped on every write.
    pub rev: u64,
}

impl User {
    /// The display name, or the handle when there is none.
    pub fn name(&self) -> &str {
        if self.display_name.is_empty() {
            self.handle.as_str()
        } else {
            self.display_name.as_str()
        }
    }
}

/// An account on a chat platform (`slack`, team `T…`, user `U…`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChatIdentity {
    /// Platform name, e.g. `slack`.
    pub platform: String,
    /// The platform's team or server id; empty where the platform has none.
    pub team: String,
    /// The platform's user id.
    pub user: String,
}

/// A user's place in a workspace: a rank and the team roles they hold.
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
    /// Row revision, bumped on every write.
    pub rev: u64,
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
}
