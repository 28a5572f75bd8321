//! Change requests: their status machine, implementation plans, and the sync with runbooks
//! (import, re-import, clear source, save as runbook). Pure functions; the service persists.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fields::{
    EstMinutes, Label, MAX_STEPS, MAX_TITLE_CHARS, Markdown, Title, ValidationError,
};
use crate::ids::{ChangeId, Key, RunbookId, StepId, TaskId, UserId, WorkspaceId};
use crate::runbook::{
    ApprovalCount, ApprovalExpiry, Runbook, RunbookInput, StepInput, approval_policy,
};

/// Where a change stands: `draft → approved → in_progress → completed`, or `cancelled` from any
/// state that is not final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    /// Being written.
    Draft,
    /// Approved; may start.
    Approved,
    /// Being carried out.
    InProgress,
    /// Done; the plan may be saved as a runbook.
    Completed,
    /// Abandoned.
    Cancelled,
}

impl ChangeStatus {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeStatus::Draft => "draft",
            ChangeStatus::Approved => "approved",
            ChangeStatus::InProgress => "in_progress",
            ChangeStatus::Completed => "completed",
            ChangeStatus::Cancelled => "cancelled",
        }
    }

    /// True for completed and cancelled: nothing moves them any more.
    pub fn is_final(self) -> bool {
        matches!(self, ChangeStatus::Completed | ChangeStatus::Cancelled)
    }
}

/// A request to move a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeAction {
    /// draft → approved.
    Approve,
    /// approved → in_progress (gated on a live execution when the plan came from a runbook).
    Start,
    /// in_progress → completed.
    Complete,
    /// any non-final → cancelled.
    Cancel,
}

impl ChangeAction {
    /// Lowercase verb.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeAction::Approve => "approve",
            ChangeAction::Start => "start",
            ChangeAction::Complete => "complete",
            ChangeAction::Cancel => "cancel",
        }
    }
}

/// Why a change operation was refused by a rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// The action does not apply in the current status.
    #[error("{key} is {from}; to {action} it, it must be {needs}")]
    BadTransition {
        /// The change.
        key: Key,
        /// Current status.
        from: &'static str,
        /// The action.
        action: &'static str,
        /// The status(es) it would need.
        needs: &'static str,
    },
    /// The plan of a final change cannot change.
    #[error("{key} is {status}; its plan can no longer change")]
    Final {
        /// The change.
        key: Key,
        /// Its status.
        status: &'static str,
    },
    /// Only published runbooks can be imported.
    #[error("{runbook} is a draft; only published runbooks can be imported (publish it first)")]
    ImportDraft {
        /// The runbook.
        runbook: Key,
    },
    /// Archived runbooks cannot be imported or updated.
    #[error("{runbook} is archived")]
    Archived {
        /// The runbook.
        runbook: Key,
    },
    /// Re-import without a source.
    #[error("{key} has no source runbook; import one first")]
    NoSource {
        /// The change.
        key: Key,
    },
    /// Save-as before completion.
    #[error(
        "{key} is {status}; its plan can be saved as a runbook only once the change is completed"
    )]
    NotCompleted {
        /// The change.
        key: Key,
        /// Its status.
        status: &'static str,
    },
    /// Save-as of a plan whose tasks are all empty.
    #[error(
        "every task in the plan of {key} is empty; add at least one task with a title or description"
    )]
    EmptyPlan {
        /// The change.
        key: Key,
    },
    /// Save-as into a draft runbook.
    #[error("{runbook} is not published; a change's plan can update only a published runbook")]
    IntoDraft {
        /// The runbook.
        runbook: Key,
    },
    /// No task with that number.
    #[error("{key} has no task {task}; its plan has {count} tasks")]
    NoSuchTask {
        /// The change.
        key: Key,
        /// The task named.
        task: usize,
        /// How many there are.
        count: usize,
    },
    /// Start gate: a plan from a runbook needs a live execution first.
    #[error(
        "{key} came from {runbook}; start an execution of {runbook} linked to {key} before starting the change"
    )]
    NeedsExecution {
        /// The change.
        key: Key,
        /// The source runbook.
        runbook: Key,
    },
    /// A field broke a limit.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

/// A task of an implementation plan: a change-owned copy of a runbook step, freely editable.
/// Unlike a step, a task may be empty (no title, no description).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanTask {
    /// Row id.
    pub id: TaskId,
    /// The runbook step it was copied from, kept so save-as into that runbook keeps step ids.
    pub from_step: Option<StepId>,
    /// Title; may be empty.
    pub title: String,
    /// Instruction markdown.
    pub description: Markdown,
    /// Owner role text.
    pub owner_role: Label,
    /// Estimate.
    pub est_minutes: EstMinutes,
    /// Expected outcome.
    pub expected_outcome: Markdown,
    /// Verification.
    pub verification: Markdown,
    /// Rollback note.
    pub rollback_note: Markdown,
    /// Approval gate.
    pub requires_approval: bool,
    /// Distinct approvers the gate needs (kept from the step, so save-as keeps the policy).
    #[serde(default, skip_serializing_if = "ApprovalCount::is_one")]
    pub approvals_required: ApprovalCount,
    /// Minutes after which each approval lapses, if they do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_expires_minutes: Option<ApprovalExpiry>,
    /// Danger badge.
    pub is_destructive: bool,
}

impl PlanTask {
    /// True when the task has neither a title nor a description.
    pub fn is_empty(&self) -> bool {
        self.title.trim().is_empty() && self.description.is_blank()
    }

    /// Builds a task from unvalidated step-shaped input (title may be empty).
    pub fn from_input(input: StepInput, n: usize) -> Result<PlanTask, ValidationError> {
        let at = format!("tasks[{n}].");
        let title = input.title.trim().to_owned();
        if title.chars().count() > MAX_TITLE_CHARS {
            return Err(ValidationError::new(
                format!("{at}title"),
                format!("must be at most {MAX_TITLE_CHARS} characters"),
            ));
        }
        if title.chars().any(|c| c.is_control()) {
            return Err(ValidationError::new(
                format!("{at}title"),
                "must be one line",
            ));
        }
        let wrap = |e: ValidationError| e.within(&at);
        let (approvals_required, approval_expires_minutes) = approval_policy(
            input.requires_approval,
            input.approvals_required,
            input.approval_expires_minutes,
        )
        .map_err(wrap)?;
        Ok(PlanTask {
            id: TaskId::new(),
            from_step: input.id,
            title,
            description: Markdown::parse_field("description", input.description).map_err(wrap)?,
            owner_role: Label::parse_field("owner_role", input.owner_role).map_err(wrap)?,
            est_minutes: EstMinutes::new(input.est_minutes).map_err(wrap)?,
            expected_outcome: Markdown::parse_field("expected_outcome", input.expected_outcome)
                .map_err(wrap)?,
            verification: Markdown::parse_field("verification", input.verification)
                .map_err(wrap)?,
            rollback_note: Markdown::parse_field("rollback_note", input.rollback_note)
                .map_err(wrap)?,
            requires_approval: input.requires_approval,
            approvals_required,
            approval_expires_minutes,
            is_destructive: input.is_destructive,
        })
    }

    /// The task as step input (used by save-as).
    pub fn to_input(&self, n: usize) -> StepInput {
        let title = if self.title.trim().is_empty() {
            // A task with only a description becomes a step titled by its first line.
            let first = self
                .description
                .as_str()
                .lines()
                .find(|l| !l.trim().is_empty());
            first
                .map(|l| {
                    l.trim()
                        .trim_start_matches('#')
                        .trim()
                        .chars()
                        .take(MAX_TITLE_CHARS)
                        .collect()
                })
                .filter(|t: &String| !t.is_empty())
                .unwrap_or_else(|| format!("Step {n}"))
        } else {
            self.title.clone()
        };
        StepInput {
            id: self.from_step,
            title,
            description: self.description.to_string(),
            owner_role: self.owner_role.to_string(),
            est_minutes: i64::from(self.est_minutes.get()),
            expected_outcome: self.expected_outcome.to_string(),
            verification: self.verification.to_string(),
            rollback_note: self.rollback_note.to_string(),
            requires_approval: self.requires_approval,
            approvals_required: if self.requires_approval {
                i64::from(self.approvals_required.get())
            } else {
                0
            },
            approval_expires_minutes: self
                .approval_expires_minutes
                .map(|m| i64::from(m.minutes())),
            is_destructive: self.is_destructive,
        }
    }
}

/// The runbook a plan was imported from: the `Source: RB-… (vN)` banner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSource {
    /// The runbook.
    pub runbook: RunbookId,
    /// Its key.
    pub key: Key,
    /// The version imported.
    pub version: u32,
}

/// A change request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRequest {
    /// Row id.
    pub id: ChangeId,
    /// The workspace.
    pub workspace: WorkspaceId,
    /// `CR-NNNNN`.
    pub key: Key,
    /// Title.
    pub title: Title,
    /// Description markdown.
    pub description: Markdown,
    /// Who owns it.
    pub owner: UserId,
    /// Where it stands.
    pub status: ChangeStatus,
    /// The implementation plan.
    pub tasks: Vec<PlanTask>,
    /// The runbook the plan came from; cleared deliberately by clear-source.
    pub source: Option<PlanSource>,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Row revision.
    pub rev: u64,
}

/// The status an action leads to, or why it cannot apply. The start gate is checked by the
/// caller ([`ChangeError::NeedsExecution`]) because it needs the executions.
pub fn transition(
    change: &ChangeRequest,
    action: ChangeAction,
) -> Result<ChangeStatus, ChangeError> {
    use ChangeAction as A;
    use ChangeStatus as S;
    let bad = |needs| ChangeError::BadTransition {
        key: change.key,
        from: change.status.as_str(),
        action: action.as_str(),
        needs,
    };
    match (action, change.status) {
        (A::Approve, S::Draft) => Ok(S::Approved),
        (A::Approve, _) => Err(bad("draft")),
        (A::Start, S::Approved) => Ok(S::InProgress),
        (A::Start, _) => Err(bad("approved")),
        (A::Complete, S::InProgress) => Ok(S::Completed),
        (A::Complete, _) => Err(bad("in_progress")),
        (A::Cancel, s) if !s.is_final() => Ok(S::Cancelled),
        (A::Cancel, _) => Err(bad("draft, approved or in_progress")),
    }
}

/// Refuses plan edits on a final change.
pub fn ensure_plan_editable(change: &ChangeRequest) -> Result<(), ChangeError> {
    if change.status.is_final() {
        return Err(ChangeError::Final {
            key: change.key,
            status: change.status.as_str(),
        });
    }
    Ok(())
}

/// Copies the steps of a published runbook into the plan (replacing it) and records the source.
pub fn import_runbook(
    change: &ChangeRequest,
    runbook: &Runbook,
) -> Result<ChangeRequest, ChangeError> {
    ensure_plan_editable(change)?;
    if runbook.archived_at.is_some() {
        return Err(ChangeError::Archived {
            runbook: runbook.key,
        });
    }
    if !runbook.is_published {
        return Err(ChangeError::ImportDraft {
            runbook: runbook.key,
        });
    }
    let mut next = change.clone();
    next.tasks = runbook
        .body
        .steps
        .iter()
        .map(|s| PlanTask {
            id: TaskId::new(),
            from_step: Some(s.id),
            title: s.title.to_string(),
            description: s.description.clone(),
            owner_role: s.owner_role.clone(),
            est_minutes: s.est_minutes,
            expected_outcome: s.expected_outcome.clone(),
            verification: s.verification.clone(),
            rollback_note: s.rollback_note.clone(),
            requires_approval: s.requires_approval,
            approvals_required: s.approvals_required,
            approval_expires_minutes: s.approval_expires_minutes,
            is_destructive: s.is_destructive,
        })
        .collect();
    next.source = Some(PlanSource {
        runbook: runbook.id,
        key: runbook.key,
        version: runbook.version,
    });
    Ok(next)
}

/// True when the plan's source runbook has moved past the imported version (the yellow chip).
pub fn newer_version_available(change: &ChangeRequest, source_now: Option<&Runbook>) -> bool {
    match (&change.source, source_now) {
        (Some(src), Some(rb)) => rb.id == src.runbook && rb.version > src.version,
        _ => false,
    }
}

/// Removes the link to the source runbook; the tasks stay.
pub fn clear_source(change: &ChangeRequest) -> Result<ChangeRequest, ChangeError> {
    ensure_plan_editable(change)?;
    let mut next = change.clone();
    next.source = None;
    Ok(next)
}

/// Validates `input` and inserts it as task `at` (1-based; `None` appends).
pub fn add_task(
    change: &ChangeRequest,
    input: StepInput,
    at: Option<usize>,
) -> Result<ChangeRequest, ChangeError> {
    ensure_plan_editable(change)?;
    if change.tasks.len() >= MAX_STEPS {
        return Err(ValidationError::new(
            "tasks",
            format!("a plan may have at most {MAX_STEPS} tasks"),
        )
        .into());
    }
    let count = change.tasks.len();
    let pos = at.unwrap_or(count + 1);
    if pos == 0 || pos > count + 1 {
        return Err(ChangeError::NoSuchTask {
            key: change.key,
            task: pos,
            count,
        });
    }
    let mut task = PlanTask::from_input(input, pos)?;
    task.from_step = None;
    let mut next = change.clone();
    next.tasks.insert(pos - 1, task);
    Ok(next)
}

/// Replaces task `n` (1-based) with `input`, keeping its id and step link.
pub fn edit_task(
    change: &ChangeRequest,
    n: usize,
    input: StepInput,
) -> Result<ChangeRequest, ChangeError> {
    ensure_plan_editable(change)?;
    let count = change.tasks.len();
    let Some(old) = n.checked_sub(1).and_then(|i| change.tasks.get(i)) else {
        return Err(ChangeError::NoSuchTask {
            key: change.key,
            task: n,
            count,
        });
    };
    let mut task = PlanTask::from_input(input, n)?;
    task.id = old.id;
    task.from_step = old.from_step;
    let mut next = change.clone();
    next.tasks[n - 1] = task;
    Ok(next)
}

/// Removes task `n` (1-based).
pub fn remove_task(change: &ChangeRequest, n: usize) -> Result<ChangeRequest, ChangeError> {
    ensure_plan_editable(change)?;
    let count = change.tasks.len();
    if n == 0 || n > count {
        return Err(ChangeError::NoSuchTask {
            key: change.key,
            task: n,
            count,
        });
    }
    let mut next = change.clone();
    next.tasks.remove(n - 1);
    Ok(next)
}

/// The body a completed change's plan becomes: its non-empty tasks as steps.
pub fn plan_as_runbook(
    change: &ChangeRequest,
    title: String,
    description: String,
    category: String,
) -> Result<RunbookInput, ChangeError> {
    if change.status != ChangeStatus::Completed {
        return Err(ChangeError::NotCompleted {
            key: change.key,
            status: change.status.as_str(),
        });
    }
    let steps: Vec<StepInput> = change
        .tasks
        .iter()
        .filter(|t| !t.is_empty())
        .enumerate()
        .map(|(i, t)| t.to_input(i + 1))
        .collect();
    if steps.is_empty() {
        return Err(ChangeError::EmptyPlan { key: change.key });
    }
    Ok(RunbookInput {
        title,
        description,
        category,
        steps,
    })
}
