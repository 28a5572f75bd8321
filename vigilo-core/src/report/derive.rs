//! The report as a fold over the execution's audit entries: pure, no I/O.
//!
//! The entries are those linked to the execution (see [`backs`]), oldest first, up to the
//! report's head. `execution.started` gives the runbook, version, operator, links and start;
//! each step entry (`execution.step_*`, naming its step in `details.step`) sets that step's
//! line; `execution.aborted` and the entry whose `details.sealed` is set seal the run. An
//! entry of another kind is listed behind its step, or behind the execution, with no fact
//! taken from it: new kinds (hand-overs, notes) add an arm to the fold (`Fold::apply`).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    ApprovalFact, AuditRef, ExecutionFacts, ExecutionReport, Handoff, NoteFact, REPORT_FORMAT,
    StepFacts, version_hash,
};
use crate::audit::AuditEntry;
use crate::execution::summary::minutes;
use crate::execution::{ExecutionStatus, StepStatus};
use crate::ids::Key;
use crate::runbook::RunbookBody;

/// Why a report could not be derived from the entries given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeriveError {
    /// No `execution.started` entry among them.
    #[error(
        "no audit entry records the start of {execution}; its trail is incomplete, or the report's audit head is older than the run"
    )]
    NoStart {
        /// The execution.
        execution: Key,
    },
    /// The version body read now does not hash as recorded when the run started.
    #[error(
        "{runbook} v{version} now hashes {found}, but audit entry {seq} recorded {recorded} when the run started: the stored version was changed"
    )]
    VersionChanged {
        /// The runbook.
        runbook: Key,
        /// The version.
        version: u32,
        /// The hash recorded in the start entry.
        recorded: String,
        /// The hash of the body as read now.
        found: String,
        /// The start entry.
        seq: u64,
    },
    /// An entry does not say what an entry of its kind says.
    #[error("audit entry {seq} ({action}) cannot be read as part of a run: {problem}")]
    Unreadable {
        /// The entry.
        seq: u64,
        /// Its action.
        action: String,
        /// What is missing or wrong.
        problem: String,
    },
}

/// Whether `entry` belongs to the trail of execution `key`: it targets the key or links to it
/// (what a store's `AuditQuery::target` answers for an `EX-` key).
pub fn backs(entry: &AuditEntry, key: Key) -> bool {
    entry.links.execution == Some(key) || entry.target == key.to_string()
}

/// The `execution.started` entry of execution `key` among `entries`, if there is one.
pub fn start_entry(entries: &[AuditEntry], key: Key) -> Option<&AuditEntry> {
    entries
        .iter()
        .find(|e| e.action == "execution.started" && backs(e, key))
}

/// The runbook and version a start entry names (`details.runbook` and `details.version`, or
/// its links).
pub fn snapshot_of(e: &AuditEntry) -> Result<(Key, u32), DeriveError> {
    let runbook = match e.details.get("runbook").cloned() {
        Some(v) => serde_json::from_value::<Key>(v)
            .map_err(|err| unreadable(e, format!("`details.runbook`: {err}")))?,
        None => e
            .links
            .runbook
            .ok_or_else(|| unreadable(e, "it names no runbook"))?,
    };
    let version = match e.details.get("version").and_then(Value::as_u64) {
        Some(v) => {
            u32::try_from(v).map_err(|_| unreadable(e, "`details.version` is out of range"))?
        }
        None => e
            .links
            .runbook_version
            .ok_or_else(|| unreadable(e, "it names no runbook version"))?,
    };
    Ok((runbook, version))
}

/// The report of execution `key` in workspace `workspace`: `entries` are the entries that
/// [`backs`] the execution with `seq` up to `head.seq` (in any order; others are ignored),
/// `body` the snapshotted version's body as stored.
pub fn derive(
    workspace: &str,
    key: Key,
    body: &RunbookBody,
    entries: &[AuditEntry],
    head: super::AuditRef,
) -> Result<ExecutionReport, DeriveError> {
    let mut ours: Vec<&AuditEntry> = entries
        .iter()
        .filter(|e| e.seq <= head.seq && backs(e, key))
        .collect();
    ours.sort_by_key(|e| e.seq);
    let start = *ours
        .iter()
        .find(|e| e.action == "execution.started")
        .ok_or(DeriveError::NoStart { execution: key })?;
    let mut fold = Fold::start(key, body, start)?;
    for e in ours.iter().filter(|e| e.seq != start.seq) {
        fold.apply(e)?;
    }
    Ok(fold.finish(workspace, head))
}

/// The report being folded from the entries.
struct Fold {
    exec: ExecutionFacts,
    steps: Vec<StepFacts>,
    /// When each step became current (for its actual minutes).
    current_since: Vec<Option<DateTime<Utc>>>,
}

fn reference(e: &AuditEntry) -> AuditRef {
    AuditRef {
        seq: e.seq,
        hash: e.hash.clone(),
    }
}

fn text(details: &Value, field: &str) -> Option<String> {
    details
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn unreadable(e: &AuditEntry, problem: impl Into<String>) -> DeriveError {
    DeriveError::Unreadable {
        seq: e.seq,
        action: e.action.clone(),
        problem: problem.into(),
    }
}

/// The acting handle of an entry (`someone` for an entry without one).
fn handle(e: &AuditEntry) -> String {
    e.actor_handle.clone().unwrap_or_else(|| "someone".into())
}

impl Fold {
    fn start(key: Key, body: &RunbookBody, e: &AuditEntry) -> Result<Self, DeriveError> {
        let (runbook, version) = snapshot_of(e)?;
        let found = version_hash(body);
        if let Some(recorded) = text(&e.details, "version_hash")
            && recorded != found
        {
            return Err(DeriveError::VersionChanged {
                runbook,
                version,
                recorded,
                found,
                seq: e.seq,
            });
        }
        let steps: Vec<StepFacts> = body
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| StepFacts {
                order: i as u32 + 1,
                title: s.title.to_string(),
                status: StepStatus::Pending,
                by: None,
                at: None,
                est_minutes: s.est_minutes.get(),
                actual_minutes: None,
                note: None,
                approvals: Vec::new(),
                notes: Vec::new(),
                audit: Vec::new(),
            })
            .collect();
        let mut current_since = vec![None; steps.len()];
        if let Some(first) = current_since.first_mut() {
            *first = Some(e.at);
        }
        let empty = steps.is_empty();
        Ok(Fold {
            exec: ExecutionFacts {
                key,
                runbook,
                title: body.title.to_string(),
                version,
                version_hash: found,
                operator: handle(e),
                handoffs: Vec::new(),
                // A runbook without steps is sealed at its start.
                status: if empty {
                    ExecutionStatus::Completed
                } else {
                    ExecutionStatus::Running
                },
                rehearsal: e
                    .details
                    .get("rehearsal")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                started_at: e.at,
                completed_at: empty.then_some(e.at),
                actual_minutes: empty.then_some(0.0),
                est_minutes: body.est_total_minutes(),
                change: e.links.change,
                incident: e.links.incident,
                abort_reason: None,
                audit: vec![reference(e)],
            },
            steps,
            current_since,
        })
    }

    /// The 0-based index of the step an entry names in `details.step`, if it names one.
    fn step_of(&self, e: &AuditEntry) -> Result<Option<usize>, DeriveError> {
        let Some(n) = e.details.get("step").and_then(Value::as_u64) else {
            return Ok(None);
        };
        match usize::try_from(n)
            .ok()
            .filter(|n| (1..=self.steps.len()).contains(n))
        {
            Some(n) => Ok(Some(n - 1)),
            None => Err(unreadable(
                e,
                format!(
                    "it names step {n}, but the run has {} steps",
                    self.steps.len()
                ),
            )),
        }
    }

    fn seal(&mut self, e: &AuditEntry, status: ExecutionStatus) {
        self.exec.status = status;
        self.exec.completed_at = Some(e.at);
        self.exec.actual_minutes = Some(minutes(self.exec.started_at, e.at));
        self.exec.audit.push(reference(e));
    }

    fn apply(&mut self, e: &AuditEntry) -> Result<(), DeriveError> {
        let step = self.step_of(e)?;
        let need_step = || unreadable(e, "it names no step");
        match e.action.as_str() {
            "execution.aborted" => {
                self.exec.abort_reason = text(&e.details, "note");
                self.seal(e, ExecutionStatus::Aborted);
                return Ok(());
            }
            "execution.step_approved" => {
                let i = step.ok_or_else(need_step)?;
                self.steps[i].approvals.push(ApprovalFact {
                    by: handle(e),
                    role: text(&e.details, "approver_role").unwrap_or_default(),
                    at: e.at,
                    lapsed_at: None,
                });
            }
            "execution.approval_expired" => {
                // No acting member: the rule lapsed the approval of `details.approver` at
                // `details.expired_at`. It stays in the step's list, marked; the entry is
                // accounted behind the step.
                let i = step.ok_or_else(need_step)?;
                let Some(approver) =
                    text(&e.details, "approver").map(|h| h.trim_start_matches('@').to_owned())
                else {
                    return Err(unreadable(e, "it names no approver"));
                };
                let at = match e.details.get("expired_at") {
                    Some(v) => serde_json::from_value::<DateTime<Utc>>(v.clone())
                        .map_err(|err| unreadable(e, format!("its `expired_at`: {err}")))?,
                    None => e.at,
                };
                // The approver's latest approval of the step still standing (an approver whose
                // handle could not be read when the lapse was recorded marks none).
                if let Some(a) = self.steps[i]
                    .approvals
                    .iter_mut()
                    .rev()
                    .find(|a| a.lapsed_at.is_none() && a.by == approver)
                {
                    a.lapsed_at = Some(at);
                }
            }
            "execution.step_done" | "execution.step_skipped" | "execution.step_failed" => {
                let i = step.ok_or_else(need_step)?;
                let status = match e.action.as_str() {
                    "execution.step_done" => StepStatus::Done,
                    "execution.step_skipped" => StepStatus::Skipped,
                    _ => StepStatus::Failed,
                };
                let s = &mut self.steps[i];
                s.status = status;
                s.by = Some(handle(e));
                s.at = Some(e.at);
                s.note = text(&e.details, "note");
                s.actual_minutes = self.current_since[i].map(|since| minutes(since, e.at));
                if status.is_complete()
                    && let Some(next) = self.current_since.get_mut(i + 1)
                {
                    *next = Some(e.at);
                }
            }
            "execution.step_retried" => {
                let i = step.ok_or_else(need_step)?;
                let s = &mut self.steps[i];
                s.status = StepStatus::Pending;
                s.by = None;
                s.at = None;
                s.note = None;
                s.actual_minutes = None;
                self.current_since[i] = Some(e.at);
            }
            "execution.note_added" => {
                // A note changes no outcome, and may come after the seal: the step's line
                // takes it, the run stays as it was.
                let i = step.ok_or_else(need_step)?;
                self.steps[i].notes.push(NoteFact {
                    author: handle(e),
                    at: e.at,
                    text: text(&e.details, "note").unwrap_or_default(),
                });
                self.steps[i].audit.push(reference(e));
                return Ok(());
            }
            "execution.handed_over" | "execution.taken_over" => {
                // Recorded as `@handle`; the report names people by handle, as its actors.
                let bare =
                    |key| text(&e.details, key).map(|h| h.trim_start_matches('@').to_owned());
                let (Some(from), Some(to)) = (bare("from"), bare("to")) else {
                    return Err(unreadable(e, "it names no operator before and after"));
                };
                self.exec.operator = to.clone();
                self.exec.handoffs.push(Handoff {
                    from,
                    to,
                    by: handle(e),
                    at: e.at,
                });
                self.exec.audit.push(reference(e));
                return Ok(());
            }
            // A kind this fold does not read yet: accounted for, no fact taken.
            _ => {}
        }
        match step {
            Some(i) => self.steps[i].audit.push(reference(e)),
            None => self.exec.audit.push(reference(e)),
        }
        if let Some(sealed) = text(&e.details, "sealed") {
            let status = match sealed.as_str() {
                "completed" => ExecutionStatus::Completed,
                "aborted" => ExecutionStatus::Aborted,
                other => return Err(unreadable(e, format!("it seals the run as `{other}`"))),
            };
            self.seal(e, status);
        }
        Ok(())
    }

    fn finish(self, workspace: &str, head: AuditRef) -> ExecutionReport {
        ExecutionReport {
            report_format: REPORT_FORMAT,
            workspace: workspace.to_owned(),
            execution: self.exec,
            steps: self.steps,
            audit_head: head,
        }
    }
}
