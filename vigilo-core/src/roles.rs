//! Workspace roles (ranked), team roles (held by name), and what a step's `owner_role` asks for.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::fields::{Name, ValidationError};

/// A member's rank in a workspace: Member < Operator < Admin < Owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceRole {
    /// Reads published runbooks, takes part in channels.
    Member,
    /// Creates runbooks, executes them, runs changes.
    Operator,
    /// Administers the workspace: drafts of others, archive, users.
    Admin,
    /// The workspace owner: everything an admin may, plus ownership of the workspace.
    Owner,
}

impl WorkspaceRole {
    /// All roles, lowest first.
    pub const ALL: [WorkspaceRole; 4] = [
        WorkspaceRole::Member,
        WorkspaceRole::Operator,
        WorkspaceRole::Admin,
        WorkspaceRole::Owner,
    ];

    /// The lowercase name used in commands and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceRole::Member => "member",
            WorkspaceRole::Operator => "operator",
            WorkspaceRole::Admin => "admin",
            WorkspaceRole::Owner => "owner",
        }
    }
}

impl fmt::Display for WorkspaceRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WorkspaceRole {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        WorkspaceRole::ALL
            .into_iter()
            .find(|r| r.as_str() == lower)
            .ok_or_else(|| {
                ValidationError::new(
                    "role",
                    format!("`{s}` is not a role; use member, operator, admin or owner"),
                )
            })
    }
}

/// What a step's `owner_role` asks of the person who approves it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RoleRequirement {
    /// No role named: any operator or above.
    Unspecified,
    /// A workspace role: satisfied by that rank or higher.
    Rank(WorkspaceRole),
    /// A team role such as `dba`: satisfied only by members who hold it.
    Team(Name),
}

impl RoleRequirement {
    /// Reads a step's `owner_role` text: empty, a workspace role name, or a team role name.
    pub fn from_owner_role(text: &str) -> RoleRequirement {
        let t = text.trim();
        if t.is_empty() {
            return RoleRequirement::Unspecified;
        }
        if let Ok(rank) = t.parse::<WorkspaceRole>() {
            return RoleRequirement::Rank(rank);
        }
        match Name::parse_field("owner_role", t) {
            Ok(name) => RoleRequirement::Team(name),
            // A role text that is not a valid name can be held by nobody; only the workspace
            // owner may approve, so a typo never locks a runbook for good.
            Err(_) => RoleRequirement::Rank(WorkspaceRole::Owner),
        }
    }

    /// True when someone with `role` and `team_roles` satisfies this requirement.
    pub fn satisfied_by(&self, role: WorkspaceRole, team_roles: &BTreeSet<Name>) -> bool {
        match self {
            RoleRequirement::Unspecified => role >= WorkspaceRole::Operator,
            RoleRequirement::Rank(need) => role >= *need,
            RoleRequirement::Team(name) => team_roles.contains(name),
        }
    }
}

impl fmt::Display for RoleRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoleRequirement::Unspecified => f.write_str("operator or above"),
            RoleRequirement::Rank(WorkspaceRole::Owner) => f.write_str("owner"),
            RoleRequirement::Rank(r) => write!(f, "{r} or above"),
            RoleRequirement::Team(n) => write!(f, "team role `{n}`"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_are_read_from_owner_role() {
        let dba = Name::parse_field("r", "dba").unwrap();
        let held: BTreeSet<Name> = [dba.clone()].into();
        assert!(RoleRequirement::from_owner_role("dba").satisfied_by(WorkspaceRole::Member, &held));
        assert!(
            !RoleRequirement::from_owner_role("dba")
                .satisfied_by(WorkspaceRole::Owner, &BTreeSet::new())
        );
        assert!(
            RoleRequirement::from_owner_role("Admin").satisfied_by(WorkspaceRole::Owner, &held)
        );
        assert!(
            !RoleRequirement::from_owner_role("admin").satisfied_by(WorkspaceRole::Operator, &held)
        );
        assert!(RoleRequirement::from_owner_role("").satisfied_by(WorkspaceRole::Operator, &held));
        assert!(!RoleRequirement::from_owner_role("").satisfied_by(WorkspaceRole::Member, &held));
    }
}
