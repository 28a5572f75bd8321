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

/// What a signed checkpoint says of a chain as it is now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CheckpointVerdict {
    /// The signature is good and the chain still holds the signed head at its `seq` (it may
    /// have grown since, and verifies up to its end).
    Holds {
        /// The workspace's slug as signed.
        slug: String,
        /// The checkpointed `seq`.
        seq: u64,
        /// Entries the chain has now.
        entries: u64,
    },
    /// The checkpoint or the chain does not hold: the problem says which.
    Violated {
        /// The workspace's slug as signed.
        slug: String,
        /// The checkpointed `seq`.
        seq: u64,
        /// What is wrong: an edited checkpoint, a truncated or rolled-back chain, a rebuilt
        /// chain, a workspace that is gone, or a chain broken inside.
        problem: String,
    },
}

impl Vigilo {
    /// Signs the head of every workspace's chain with `key` (see [`crate::checkpoint`]). Each
    /// chain is verified first: a broken chain is never signed ([`crate::error::Error::Tampered`]).
    /// Needs no acting user: whoever holds the database and the key makes checkpoints.
    pub async fn checkpoints(
        &self,
        key: &ed25519_dalek::SigningKey,
    ) -> Result<Vec<crate::checkpoint::Checkpoint>> {
        let mut out = Vec::new();
        for ws in self.store.list_workspaces().await? {
            match self.verify_audit(ws.id).await? {
                AuditVerdict::Intact { entries, head } => {
                    let head = head.as_deref().map(|h| (entries, h));
                    out.push(crate::checkpoint::Checkpoint::sign(
                        key,
                        ws.id,
                        ws.slug.as_str(),
                        head,
                        self.now(),
                    ));
                }
                AuditVerdict::Tampered(t) => return Err(crate::error::Error::Tampered(t)),
            }
        }
        Ok(out)
    }

    /// Checks a signed checkpoint against the chain as it is now: its signature (against
    /// `trusted` too, when given), then that the workspace's chain verifies and still holds the
    /// signed hash at the signed `seq`. A chain shorter than the checkpoint was truncated or
    /// restored from an older backup; another hash at that `seq` means the chain was rebuilt.
    pub async fn verify_checkpoint(
        &self,
        checkpoint: &crate::checkpoint::Checkpoint,
        trusted: Option<&ed25519_dalek::VerifyingKey>,
    ) -> Result<CheckpointVerdict> {
        let cp = checkpoint;
        let violated = |problem: String| CheckpointVerdict::Violated {
            slug: cp.slug.clone(),
            seq: cp.seq,
            problem,
        };
        if let Err(e) = cp.check_signature(trusted) {
            return Ok(violated(e.to_string()));
        }
        match self.store.workspace(cp.workspace).await {
            Ok(_) => {}
            Err(crate::store::StoreError::NotFound(_)) => {
                return Ok(violated(format!(
                    "workspace {} ({}) is not in this database: it was deleted, or this is another database",
                    cp.slug, cp.workspace
                )));
            }
            Err(e) => return Err(e.into()),
        }
        let entries = match self.verify_audit(cp.workspace).await? {
            AuditVerdict::Intact { entries, .. } => entries,
            AuditVerdict::Tampered(t) => {
                return Ok(violated(format!(
                    "the chain itself is broken at entry {}: {}",
                    t.seq, t.problem
                )));
            }
        };
        if entries < cp.seq {
            return Ok(violated(format!(
                "the chain of {} ends at entry {entries}, but entry {} was checkpointed: its newest entries were deleted, or the database was restored from an older backup (rolled back)",
                cp.slug, cp.seq
            )));
        }
        if cp.seq > 0 {
            let found = self
                .store
                .audit(
                    cp.workspace,
                    &AuditQuery {
                        after_seq: cp.seq - 1,
                        limit: 1,
                        ..Default::default()
                    },
                )
                .await?;
            let hash = found
                .first()
                .filter(|e| e.seq == cp.seq)
                .map(|e| e.hash.clone())
                .unwrap_or_default();
            if hash != cp.head {
                return Ok(violated(format!(
                    "entry {} of {} now hashes {hash}, but the checkpoint signed {}: the chain was rebuilt or replaced",
                    cp.seq, cp.slug, cp.head
                )));
            }
        }
        Ok(CheckpointVerdict::Holds {
            slug: cp.slug.clone(),
            seq: cp.seq,
            entries,
        })
    }

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
            // The store's read checked every entry against its hash and its columns.
            for e in &page {
                if let Err(t) = v.push_hash_checked(e) {
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
            let handle = handle.trim_start_matches('@');
            crate::error::Error::not_found(
                crate::error::Thing::Member,
                format!("@{handle}"),
                format!("no user @{handle} has been a member of this workspace"),
            )
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
