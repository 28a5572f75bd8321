//! Incidents: what an execution can be linked to for the remediation audit trail.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fields::Title;
use crate::ids::{IncidentId, Key, UserId, WorkspaceId};

/// Open or resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Being handled.
    Open,
    /// Over.
    Resolved,
}

impl IncidentStatus {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Open => "open",
            IncidentStatus::Resolved => "resolved",
        }
    }
}

/// An incident.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// Row id.
    pub id: IncidentId,
    /// The workspace.
    pub workspace: WorkspaceId,
    /// `INC-NNNNN`.
    pub key: Key,
    /// Title.
    pub title: Title,
    /// Open or resolved.
    pub status: IncidentStatus,
    /// Who declared it.
    pub created_by: UserId,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Row revision.
    pub rev: u64,
}
