//! Executions: a runbook version walked step by step, and the pure state machine that rules it.
//!
//! The model lives here; every rule lives in [`machine`], one pure function with time passed in.

pub mod drift;
pub mod history;
pub mod machine;
pub mod summary;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fields::Markdown;
use crate::ids::{ChangeId, ExecutionId, Key, RunbookId, StepId, UserId, WorkspaceId};
use crate::runbook::Step;

pub use drift::Drift;
pub use machine::{Command, ExecError, MAX_NOTE_CHARS, Transition, apply};
pub use summary::{ExecutionSummary, StepTiming};

/// Whether an execution is still running or sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Steps are being walked.
    Running,
    /// Every step is done or skipped; sealed.
    Completed,
    /// Aborted with a reason; sealed.
    Aborted,
}

impl ExecutionStatus {
    /// True once the execution is sealed: no command changes it any more.
    pub fn is_sealed(self) -> bool {
        !matches!(self, ExecutionStatus::Running)
    }

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Running => "running",
            ExecutionStatus::Completed => "completed",
            ExecutionStatus::Aborted => "aborted",
        }
    }
}

/// Where a step of an execution stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not acted on yet (or retried after a failure).
    Pending,
    /// Done.
    Done,
    /// Skipped with a reason.
    Skipped,
    /// Failed with a note; can be retried, skipped, or the execution aborted.
    Failed,
}

impl StepStatus {
    /// Lowercase name, as in `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Done => "done",
            StepStatus::Skipped => "skipped",
            StepStatus::Failed => "failed",
        }
    }

    /// True for the statuses that let the walk move past the step.
    pub fn is_complete(self) -> bool {
        matches!(self, StepStatus::Done | StepStatus::Skipped)
    }
}

/// An approval of a gated step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Who approved.
    pub by: UserId,
    /// When.
    pub at: DateTime<Utc>,
    /// The role that satisfied the step's `owner_role` at that moment (for the audit trail).
    pub satisfied_as: String,
}

/// A note on a step: a remark that changes nothing of the step's state (what was seen, a link,
/// a post-mortem remark after the seal).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepNote {
    /// Who wrote it.
    pub author: UserId,
    /// When.
    pub at: DateTime<Utc>,
    /// The text (markdown, at most [`MAX_NOTE_CHARS`] characters).
    pub text: Markdown,
    /// The event that added it (its `seq`).
    pub seq: u64,
}

/// A change of an execution's operator: a hand-over by the operator (or an admin), or a
/// takeover by an admin or the owner (`by == to`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    /// The operator before.
    pub from: UserId,
    /// The operator after.
    pub to: UserId,
    /// Who made the change.
    pub by: UserId,
    /// When.
    pub at: DateTime<Utc>,
}

impl Handoff {
    /// True when the new operator took the run over themselves.
    pub fn is_takeover(&self) -> bool {
        self.by == self.to && self.by != self.from
    }
}

/// One step of an execution: the snapshot of the runbook step and what happened to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecStep {
    /// The step as it was in the snapshotted version.
    pub step: Step,
    /// Where it stands.
    pub status: StepStatus,
    /// When the step became current.
    pub started_at: Option<DateTime<Utc>>,
    /// When it was done, skipped or failed.
    pub completed_at: Option<DateTime<Utc>>,
    /// The note (done, failed) or reason (skipped).
    pub note: Option<Markdown>,
    /// Who marked it.
    pub actor: Option<UserId>,
    /// The approvals standing, in the order they were given (gated steps): distinct
    /// approvers, at most the step's `approvals_required`. Documents written before approval
    /// policies carried one `approval` (or `null`); they read as a list of it.
    #[serde(default, alias = "approval", deserialize_with = "approvals_compat")]
    pub approvals: Vec<Approval>,
    /// Approvals that lapsed (`approval-expires`) before the step was done, oldest first; a
    /// retry clears them with the standing ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lapsed: Vec<Approval>,
    /// How many times it failed.
    pub failures: u32,
    /// Notes added to the step, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<StepNote>,
}

impl ExecStep {
    /// How many more approvals Done waits for (0 once enough stand, or without a gate).
    pub fn approvals_missing(&self) -> u32 {
        self.step
            .approvals_needed()
            .saturating_sub(u32::try_from(self.approvals.len()).unwrap_or(u32::MAX))
    }

    /// When `a` lapses under this step's policy, if approvals lapse.
    pub fn lapses_at(&self, a: &Approval) -> Option<DateTime<Utc>> {
        self.step
            .approval_expires_minutes
            .map(|m| a.at + m.duration())
    }
}

/// `1 of 2 approvals (@carol)`: how many of the `need` approvals stand, and by whom (`by`,
/// handles as shown). `no approval yet` / `0 of 2 approvals` when none stand.
pub fn approvals_summary(need: u32, by: &[String]) -> String {
    let have = by.len();
    let noun = if need == 1 { "approval" } else { "approvals" };
    if have == 0 {
        return if need == 1 {
            "no approval yet".to_owned()
        } else {
            format!("0 of {need} {noun}")
        };
    }
    format!("{have} of {need} {noun} ({})", by.join(", "))
}

/// Reads `approvals` as a list, or as the single `approval` (an object or `null`) of documents
/// written before approval policies.
fn approvals_compat<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Approval>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Many(Vec<Approval>),
        One(Option<Approval>),
    }
    Ok(match Either::deserialize(d)? {
        Either::Many(v) => v,
        Either::One(o) => o.into_iter().collect(),
    })
}

/// A chat channel an execution was started from, so the channel can find "its" executions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRef {
    /// Platform (`slack`, `console`).
    pub platform: String,
    /// The platform's channel id.
    pub channel: String,
}

/// A run of one runbook version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    /// Row id.
    pub id: ExecutionId,
    /// The workspace.
    pub workspace: WorkspaceId,
    /// `EX-NNNNN`.
    pub key: Key,
    /// The runbook executed.
    pub runbook: RunbookId,
    /// Its key, for display.
    pub runbook_key: Key,
    /// The version snapshotted at start.
    pub runbook_version: u32,
    /// The runbook title at that version.
    pub title: String,
    /// The operator now: who started it, or whom it was last handed over to.
    pub operator: UserId,
    /// Every change of operator, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handoffs: Vec<Handoff>,
    /// A linked change, if any.
    pub change: Option<Key>,
    /// The linked change's id, if any.
    pub change_id: Option<ChangeId>,
    /// A linked incident, if any.
    pub incident: Option<Key>,
    /// A practice run (may run drafts; left out of timing analytics).
    pub rehearsal: bool,
    /// The channel it was started from, if any.
    pub channel: Option<ChannelRef>,
    /// Running, completed or aborted.
    pub status: ExecutionStatus,
    /// The steps with what happened to them.
    pub steps: Vec<ExecStep>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it was sealed.
    pub sealed_at: Option<DateTime<Utc>>,
    /// The abort reason, when aborted.
    pub abort_reason: Option<Markdown>,
    /// How many step events were applied; also the optimistic-concurrency revision.
    pub rev: u64,
}

impl Execution {
    /// The 0-based index of the current step: the first that is not done or skipped.
    pub fn current_index(&self) -> Option<usize> {
        if self.status.is_sealed() {
            return None;
        }
        self.steps.iter().position(|s| !s.status.is_complete())
    }

    /// The current step, if the execution is running.
    pub fn current(&self) -> Option<&ExecStep> {
        self.current_index().and_then(|i| self.steps.get(i))
    }

    /// Who started the execution (the operator before the first hand-over).
    pub fn started_by(&self) -> UserId {
        self.handoffs.first().map_or(self.operator, |h| h.from)
    }

    /// The 0-based step a note goes to when none is named: the current step; once sealed, the
    /// step the run stopped at (aborted) or the last step (completed). `None` without steps.
    pub fn note_step_index(&self) -> Option<usize> {
        self.steps
            .iter()
            .position(|s| !s.status.is_complete())
            .or_else(|| self.steps.len().checked_sub(1))
    }

    /// Every note of the execution with its step's 0-based index, oldest first.
    pub fn notes(&self) -> Vec<(usize, &StepNote)> {
        let mut all: Vec<(usize, &StepNote)> = self
            .steps
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.notes.iter().map(move |n| (i, n)))
            .collect();
        all.sort_by_key(|(_, n)| n.seq);
        all
    }
}

/// What a step event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The execution started.
    Started,
    /// A gated step was approved.
    Approved,
    /// A step was done.
    Done,
    /// A step was skipped.
    Skipped,
    /// A step failed.
    Failed,
    /// A failed step was opened again.
    Retried,
    /// The execution was aborted.
    Aborted,
    /// An approval lapsed (`approval-expires`): the event's actor is the approver whose
    /// approval it was, its time the moment it lapsed.
    ApprovalExpired,
    /// A note was added to a step (state unchanged; accepted after the seal too).
    Noted,
    /// The operator (or an admin) handed the execution to another member.
    HandedOver,
    /// An admin or the owner took the execution over.
    TakenOver,
}

impl EventKind {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::Approved => "approved",
            EventKind::Done => "done",
            EventKind::Skipped => "skipped",
            EventKind::Failed => "failed",
            EventKind::Retried => "retried",
            EventKind::Aborted => "aborted",
            EventKind::ApprovalExpired => "approval_expired",
            EventKind::Noted => "noted",
            EventKind::HandedOver => "handed_over",
            EventKind::TakenOver => "taken_over",
        }
    }

    /// The audit action of the entry committed with an event of this kind.
    pub fn audit_action(self) -> &'static str {
        match self {
            EventKind::Started => "execution.started",
            EventKind::Approved => "execution.step_approved",
            EventKind::Done => "execution.step_done",
            EventKind::Skipped => "execution.step_skipped",
            EventKind::Failed => "execution.step_failed",
            EventKind::Retried => "execution.step_retried",
            EventKind::Aborted => "execution.aborted",
            EventKind::ApprovalExpired => "execution.approval_expired",
            EventKind::Noted => "execution.note_added",
            EventKind::HandedOver => "execution.handed_over",
            EventKind::TakenOver => "execution.taken_over",
        }
    }
}

/// One row of an execution's history (`RunbookStepEvent`): exactly one per applied command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepEvent {
    /// The execution.
    pub execution: ExecutionId,
    /// 1, 2, 3, …: equals the execution's `rev` after the event.
    pub seq: u64,
    /// What happened.
    pub kind: EventKind,
    /// The step (1-based order), absent for start.
    pub step_order: Option<u32>,
    /// The step's stable id.
    pub step_id: Option<StepId>,
    /// Who.
    pub actor: UserId,
    /// When.
    pub at: DateTime<Utc>,
    /// Note or reason.
    pub note: Option<Markdown>,
    /// When the step became current (for done, skipped, failed).
    pub started_at: Option<DateTime<Utc>>,
    /// For an approval: the role that satisfied the step's `owner_role` at that moment, so
    /// the event alone rebuilds the step's [`Approval`] ([`history::replay`]). Absent on
    /// every other kind, and on approvals recorded before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub satisfied_as: Option<String>,
    /// For a hand-over or takeover: the new operator. Absent on every other kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<UserId>,
}
