//! Execution reports: the run as evidence ([`crate::report`]), and the check of a report
//! against the audit trail.

use serde::Serialize;

use super::{Vigilo, Who};
use crate::audit::{AuditEntry, Tamper};
use crate::error::{Error, Result, Rule, Thing};
use crate::ids::{Key, WorkspaceId};
use crate::report::{self, AuditRef, ExecutionReport, Mismatch, ReportFormat};
use crate::runbook::RunbookBody;
use crate::store::{AuditQuery, StoreError};
use crate::workspace::Workspace;

/// Entries read per page.
const PAGE: usize = 1000;

/// What checking a report against the trail found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ReportVerdict {
    /// Every character of the report is what the trail gives, and the trail is intact.
    Verified {
        /// The workspace's slug.
        workspace: String,
        /// The execution reported.
        execution: Key,
        /// `md` or `json`.
        format: ReportFormat,
        /// The audit head the report covers.
        head: u64,
        /// The audit entries behind the report's lines.
        entries: usize,
        /// The entries of the workspace's chain, all verified.
        chain: u64,
    },
    /// The report, or the trail behind it, was changed: the problem names what differs.
    Tampered {
        /// The workspace's slug, when known.
        workspace: Option<String>,
        /// The execution the report claims, when readable.
        execution: Option<Key>,
        /// What differs, and where.
        problem: String,
    },
}

impl Vigilo {
    /// The report of execution `key` as of now (any member; sealed or not): every fact read from
    /// the execution's audit entries, each line with the entries behind it, and the head of
    /// the workspace's chain. See [`crate::report`].
    pub async fn execution_report(&self, who: &Who, key: Key) -> Result<ExecutionReport> {
        // Membership, the key's kind, and a missing execution, said as everywhere else.
        self.execution(who, key).await?;
        let ws = self.store.workspace(who.workspace).await?;
        let mut entries = self.linked(ws.id, key, 0, u64::MAX).await?;
        let last = entries.last().map_or(0, |e| e.seq);
        let head = self.head_from(ws.id, last).await?;
        // Entries of the run committed between the two reads belong in the report too.
        if head.seq > last {
            entries.extend(self.linked(ws.id, key, last, head.seq).await?);
        }
        let body = self.snapshot_body(ws.id, &entries, key).await?;
        report::derive(ws.slug.as_str(), key, &body, &entries, head).map_err(derive_error)
    }

    /// Checks a report written by [`Self::execution_report`] (Markdown or JSON, as the file
    /// reads) against the trail: the workspace's whole chain verifies, the chain still holds
    /// the report's audit head, and the report rendered again from the entries up to that head
    /// is the report, character for character. Reading the trail needs no acting user.
    /// `workspace` is where to look; `None` takes the workspace the report names.
    ///
    /// A CSV report is refused ([`Rule::Input`]): it leaves out the audit head.
    pub async fn verify_report(
        &self,
        workspace: Option<WorkspaceId>,
        text: &str,
    ) -> Result<ReportVerdict> {
        if report::compare::is_csv(text) {
            return Err(Error::refused(
                Rule::Input,
                "a CSV report cannot be verified: it leaves out the audit head; verify the Markdown or JSON report of the same run",
            ));
        }
        let tampered = |ws: Option<&Workspace>, execution: Option<Key>, problem: String| {
            Ok(ReportVerdict::Tampered {
                workspace: ws.map(|w| w.slug.to_string()),
                execution,
                problem,
            })
        };
        let claim = match report::claimed(text) {
            Ok(c) => c,
            Err(Mismatch { problem }) => return tampered(None, None, problem),
        };
        let ex = Some(claim.execution);
        let ws = match workspace {
            Some(id) => self.store.workspace(id).await?,
            None => match self.store.workspace_by_slug(&claim.workspace).await {
                Ok(ws) => ws,
                Err(StoreError::NotFound(_)) => {
                    return tampered(
                        None,
                        ex,
                        format!(
                            "the report names workspace `{}`, which is not in this database: the report was altered, or name the workspace to check it in",
                            claim.workspace
                        ),
                    );
                }
                Err(e) => return Err(e.into()),
            },
        };
        let chain = match self.verify_audit(ws.id).await? {
            super::AuditVerdict::Intact { entries, .. } => entries,
            super::AuditVerdict::Tampered(t) => {
                return tampered(Some(&ws), ex, chain_broken(&t));
            }
        };
        if chain < claim.head.seq {
            return tampered(
                Some(&ws),
                ex,
                format!(
                    "the report covers the audit trail of {} up to entry {}, but the trail ends at entry {chain}: its newest entries were deleted, or the database was restored from an older backup",
                    ws.slug, claim.head.seq
                ),
            );
        }
        let found = match self.linked(ws.id, claim.execution, 0, claim.head.seq).await {
            Ok(found) => found,
            Err(Error::Tampered(t)) => return tampered(Some(&ws), ex, chain_broken(&t)),
            Err(e) => return Err(e),
        };
        let head_hash = match self.entry_at(ws.id, claim.head.seq).await {
            Ok(e) => e.map(|e| e.hash).unwrap_or_default(),
            Err(Error::Tampered(t)) => return tampered(Some(&ws), ex, chain_broken(&t)),
            Err(e) => return Err(e),
        };
        if head_hash != claim.head.hash {
            return tampered(
                Some(&ws),
                ex,
                format!(
                    "the audit head: the report says entry {} hashes `{}`, the audit trail's entry {} hashes `{head_hash}`",
                    claim.head.seq, claim.head.hash, claim.head.seq
                ),
            );
        }
        let body = match self.snapshot_body(ws.id, &found, claim.execution).await {
            Ok(b) => b,
            Err(Error::NotFound(_))
            | Err(Error::Tampered(_))
            | Err(Error::Store(StoreError::Corrupt(_))) => {
                return tampered(
                    Some(&ws),
                    ex,
                    format!(
                        "the audit trail of {} up to entry {} records no run {} with its runbook version: the report was altered, or is of another database",
                        ws.slug, claim.head.seq, claim.execution
                    ),
                );
            }
            Err(e) => return Err(e),
        };
        let head = AuditRef {
            seq: claim.head.seq,
            hash: head_hash,
        };
        let expected = match report::derive(ws.slug.as_str(), claim.execution, &body, &found, head)
        {
            Ok(r) => r,
            Err(e) => return tampered(Some(&ws), ex, e.to_string()),
        };
        if let Err(Mismatch { problem }) = report::compare(text, &expected, claim.format) {
            return tampered(Some(&ws), ex, problem);
        }
        Ok(ReportVerdict::Verified {
            workspace: ws.slug.to_string(),
            execution: claim.execution,
            format: claim.format,
            head: claim.head.seq,
            entries: expected.entries().len(),
            chain,
        })
    }

    /// The entries linked to execution `key` with `seq` in `(after, until]`, oldest first,
    /// page by page. Every page is checked by the store against the entries' hashes.
    async fn linked(
        &self,
        workspace: WorkspaceId,
        key: Key,
        after: u64,
        until: u64,
    ) -> Result<Vec<AuditEntry>> {
        let mut out = Vec::new();
        let mut after = after;
        loop {
            let page = self
                .store
                .audit(
                    workspace,
                    &AuditQuery {
                        target: Some(key.to_string()),
                        after_seq: after,
                        limit: PAGE,
                        ..Default::default()
                    },
                )
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            let full = page.len() == PAGE;
            out.extend(
                page.into_iter()
                    .filter(|e| e.seq <= until && report::derive::backs(e, key)),
            );
            if !full || after >= until {
                break;
            }
        }
        Ok(out)
    }

    /// The newest entry of the workspace's chain, read forward from entry `after` (the chain's
    /// head; the genesis hash for an empty chain).
    async fn head_from(&self, workspace: WorkspaceId, after: u64) -> Result<AuditRef> {
        let mut head = match after {
            0 => AuditRef {
                seq: 0,
                hash: crate::audit::GENESIS_HASH.to_owned(),
            },
            n => match self.entry_at(workspace, n).await? {
                Some(e) => AuditRef {
                    seq: e.seq,
                    hash: e.hash,
                },
                None => AuditRef {
                    seq: 0,
                    hash: crate::audit::GENESIS_HASH.to_owned(),
                },
            },
        };
        loop {
            let page = self
                .store
                .audit(
                    workspace,
                    &AuditQuery {
                        after_seq: head.seq,
                        limit: PAGE,
                        ..Default::default()
                    },
                )
                .await?;
            let full = page.len() == PAGE;
            let Some(last) = page.into_iter().last() else {
                break;
            };
            head = AuditRef {
                seq: last.seq,
                hash: last.hash,
            };
            if !full {
                break;
            }
        }
        Ok(head)
    }

    /// Entry `seq` of the workspace's chain, if it exists.
    async fn entry_at(&self, workspace: WorkspaceId, seq: u64) -> Result<Option<AuditEntry>> {
        if seq == 0 {
            return Ok(None);
        }
        let page = self
            .store
            .audit(
                workspace,
                &AuditQuery {
                    after_seq: seq - 1,
                    limit: 1,
                    ..Default::default()
                },
            )
            .await?;
        Ok(page.into_iter().next().filter(|e| e.seq == seq))
    }

    /// The body of the runbook version the run's start entry names.
    async fn snapshot_body(
        &self,
        workspace: WorkspaceId,
        entries: &[AuditEntry],
        key: Key,
    ) -> Result<RunbookBody> {
        let start = report::derive::start_entry(entries, key)
            .ok_or_else(|| derive_error(report::DeriveError::NoStart { execution: key }))?;
        let (runbook, version) = report::derive::snapshot_of(start).map_err(derive_error)?;
        let missing = |e: StoreError| match e {
            StoreError::NotFound(_) => Error::not_found(
                Thing::RunbookVersion,
                format!("{runbook} v{version}"),
                format!("{runbook} v{version}, the version {key} ran, is not in this workspace"),
            ),
            other => other.into(),
        };
        let rb = self
            .store
            .runbook_by_key(workspace, runbook)
            .await
            .map_err(missing)?;
        Ok(self
            .store
            .runbook_version(workspace, rb.id, version)
            .await
            .map_err(missing)?
            .body)
    }
}

/// The trail broken under a report, said as `audit verify` says it.
fn chain_broken(t: &Tamper) -> String {
    format!(
        "the audit trail behind the report is broken at entry {}: {}",
        t.seq, t.problem
    )
}

/// A report that cannot be derived from a stored trail: the trail or a version was changed.
fn derive_error(e: report::DeriveError) -> Error {
    match &e {
        report::DeriveError::NoStart { .. } => Error::Store(StoreError::Corrupt(e.to_string())),
        report::DeriveError::VersionChanged { seq, .. }
        | report::DeriveError::Unreadable { seq, .. } => Error::Tampered(Tamper {
            seq: *seq,
            problem: e.to_string(),
        }),
    }
}
