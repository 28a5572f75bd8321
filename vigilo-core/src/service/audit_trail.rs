//! Reading and verifying the audit trail.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Vigilo, Who};
use crate::audit::{AuditEntry, Tamper, Verifier};
use crate::authz::{Action, Subject};
use crate::error::Result;
use crate::ids::WorkspaceId;
use crate::store::AuditQuery;

/// Which audit entries to list.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Entries about this target or linking to this key (`RB-00001`, `@alice`).
    pub target: Option<String>,
    /// Entries by this handle.
    pub actor: Option<String>,
    /// Entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Entries before this time.
    pub until: Option<DateTime<Utc>>,
    /// Entries after this sequence number.
    pub after_seq: u64,
    /// At most this many (0: 1000).
    pub limit: usize,
}

/// The outcome of verifying a workspace's chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AuditVerdict {
    /// Every entry is in place and unaltered.
    Intact {
        /// Entries checked.
        entries: u64,
        /// The last entry's hash: record it elsewhere to detect a later truncation.
        head: Option<String>,
    },
    /// The first entry found edited, deleted or out of order.
    Tampered(Tamper),
}

impl Vigilo {
    /// Lists audit entries, oldest first (any member).
    pub async fn audit_entries(&self, who: &Who, filter: AuditFilter) -> Result<Vec<AuditEntry>> {
        let actor = self.actor(who).await?;
        self.check(&actor, Action::ViewAudit, &Subject::NONE)?;
        // A person who has left still has their entries: look the handle up among everyone who
        // ever was a member, removed or not.
        let actor_id = match &filter.actor {
            Some(h) => Some(self.past_or_present_member(who.workspace, h).await?),
            None => None,
        };
        let query = AuditQuery {
            target: filter.target,
            actor: actor_id,
            since: filter.since,
            until: filter.until,
            after_seq: filter.after_seq,
            limit: filter.limit,
        };
        Ok(self.store.audit(who.workspace, &query).await?)
    }

    /// Verifies the workspace's whole chain, page by page. Reading the trail needs no acting
    /// user: an auditor with the database verifies it as it is.
    pub async fn verify_audit(&self, workspace: WorkspaceId) -> Result<AuditVerdict> {
        let mut v = Verifier::new();
        let mut after = 0;
        loop {
            let page = match self
                .store
                .audit(
                    workspace,
                    &AuditQuery {
                        after_seq: after,
                        limit: 1000,
                        ..Default::default()
                    },
                )
                .await
            {
                Ok(page) => page,
                Err(crate::store::StoreError::Tampered(t)) => {
                    return Ok(AuditVerdict::Tampered(t));
                }
                Err(e) => return Err(e.into()),
            };
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in &page {
                if let Err(t) = v.push(e) {
                    return Ok(AuditVerdict::Tampered(t));
                }
            }
        }
        Ok(AuditVerdict::Intact {
            entries: v.count(),
            head: v.head().map(str::to_owned),
        })
    }

    /// The id of the user `handle` if they are, or were, a member of `workspace`.
    async fn past_or_present_member(
        &self,
        workspace: WorkspaceId,
        handle: &str,
    ) -> Result<crate::ids::UserId> {
        let not_found = || {
            crate::error::Error::NotFound(format!(
                "no user @{} has been a member of this workspace",
                handle.trim_start_matches('@')
            ))
        };
        let Ok(user) = self
            .store
            .user_by_handle(handle.trim_start_matches('@'))
            .await
        else {
            return Err(not_found());
        };
        match self.store.membership(workspace, user.id).await {
            Ok(_) => Ok(user.id),
            Err(crate::store::StoreError::NotFound(_)) => Err(not_found()),
            Err(e) => Err(e.into()),
        }
    }
}
