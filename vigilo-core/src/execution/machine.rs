//! The execution state machine: one pure function, no I/O, time passed in.
//!
//! Every rule about walking an execution lives here, so it is testable with a table of cases:
//! commands name the step they are meant for, sealed executions refuse everything, Skip and
//! Abort need a reason, Failed needs a note, gated steps need an approval by a role that
//! satisfies the step's `owner_role` at the moment of approval — as many distinct approvers as
//! the step's `approvals_required` — and approvals lapse by the step's `approval_expires_minutes`
//! ([`due_lapses`], [`lapse`]: each lapse is one event, applied before any other command).
//! Notes change no step's state and are the one command a sealed execution still accepts (for
//! the post-mortem); a hand-over or takeover changes the operator, who is then the one that
//! counts for every later check.

use chrono::{DateTime, Utc};

use crate::execution::{
    Approval, ChannelRef, EventKind, ExecStep, Execution, ExecutionStatus, Handoff, StepEvent,
    StepNote, StepStatus,
};
use crate::fields::{Markdown, ValidationError};
use crate::ids::{ChangeId, ExecutionId, Key, UserId};
use crate::roles::RoleRequirement;
use crate::runbook::Runbook;
use crate::workspace::{Actor, Policy};

/// A command for a running execution. Step commands name the 1-based step they are meant for,
/// so a double click or a redelivered request can never act on the next step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Mark the step done.
    Done {
        /// The step meant.
        step: u32,
        /// Optional note.
        note: Option<String>,
    },
    /// Skip the step; a reason is required.
    Skip {
        /// The step meant.
        step: u32,
        /// Why.
        reason: String,
    },
    /// Mark the step failed; a note is required.
    Fail {
        /// The step meant.
        step: u32,
        /// What went wrong.
        note: String,
    },
    /// Approve a gated step.
    Approve {
        /// The step meant.
        step: u32,
    },
    /// Open a failed step again.
    Retry {
        /// The step meant.
        step: u32,
    },
    /// Seal the execution as aborted; a reason is required.
    Abort {
        /// Why.
        reason: String,
    },
    /// Add a note to any step (current, finished or not reached), sealed executions included.
    Note {
        /// The step noted (any step of the execution).
        step: u32,
        /// The note (required, at most [`MAX_NOTE_CHARS`] characters).
        text: String,
        /// The revision the author saw when writing it: the same author's same text on the same
        /// step added after it is a repeat (a double click, a redelivery) and is refused.
        /// `None` skips the check.
        seen_rev: Option<u64>,
    },
    /// The operator (or an admin) hands the execution to another member. Who may receive it is
    /// the caller's rule ([`crate::authz`]); the machine refuses a hand-over to the operator.
    HandOver {
        /// The new operator.
        to: UserId,
    },
    /// The actor becomes the operator (an admin or the owner: the caller's rule).
    TakeOver,
}

/// The longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 2_000;

impl Command {
    /// The step the command names, if it is a step command.
    pub fn step(&self) -> Option<u32> {
        match self {
            Command::Done { step, .. }
            | Command::Skip { step, .. }
            | Command::Fail { step, .. }
            | Command::Approve { step }
            | Command::Retry { step }
            | Command::Note { step, .. } => Some(*step),
            Command::Abort { .. } | Command::HandOver { .. } | Command::TakeOver => None,
        }
    }

    /// True for the commands that move a step or seal the execution (everything but notes,
    /// hand-overs and takeovers); they name the current step.
    pub fn moves_steps(&self) -> bool {
        !matches!(
            self,
            Command::Note { .. } | Command::HandOver { .. } | Command::TakeOver
        )
    }

    /// The verb, for messages and the audit trail.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Done { .. } => "done",
            Command::Skip { .. } => "skip",
            Command::Fail { .. } => "fail",
            Command::Approve { .. } => "approve",
            Command::Retry { .. } => "retry",
            Command::Abort { .. } => "abort",
            Command::Note { .. } => "note",
            Command::HandOver { .. } => "hand over",
            Command::TakeOver => "take over",
        }
    }
}

/// The result of an accepted command: the new execution and the one event it produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The execution after the command.
    pub execution: Execution,
    /// The event to append (exactly one per command).
    pub event: StepEvent,
}

/// Why a command was refused. Users appear as ids; the service names them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// The execution is sealed.
    #[error("{key} is sealed ({status}); start a new execution to run the runbook again")]
    Sealed {
        /// The execution.
        key: Key,
        /// `completed` or `aborted`.
        status: &'static str,
        /// When it was sealed.
        at: Option<DateTime<Utc>>,
    },
    /// The step named does not exist.
    #[error("{key} has no step {step}; it has {count} steps")]
    NoSuchStep {
        /// The execution.
        key: Key,
        /// The step named.
        step: u32,
        /// How many steps there are.
        count: usize,
    },
    /// The step named is not the current one (already acted on, or not reached yet).
    #[error("step {step} is not the current step{}", current.map(|c| format!(" (step {c} is)")).unwrap_or_default())]
    NotCurrent {
        /// The step named.
        step: u32,
        /// The current step.
        current: Option<u32>,
        /// The status of the named step.
        status: StepStatus,
        /// Who acted on it, if anyone.
        by: Option<UserId>,
        /// When.
        at: Option<DateTime<Utc>>,
    },
    /// A reason or note is required and was empty.
    #[error("{what} is required and must not be empty")]
    ReasonRequired {
        /// `a skip reason`, `a failure note`, `an abort reason`.
        what: &'static str,
    },
    /// Done on a gated step before enough approvals stand.
    #[error(
        "step {step} requires {} by {requirement} before it can be marked done ({have} of {need} given)",
        if *need == 1 { "approval".to_owned() } else { format!("{need} distinct approvals") }
    )]
    NeedsApproval {
        /// The step.
        step: u32,
        /// Who may approve.
        requirement: String,
        /// Approvals standing.
        have: u32,
        /// Approvals the step needs.
        need: u32,
    },
    /// Approvals of the step have lapsed by now and their lapses are not recorded yet; the
    /// service records them ([`lapse`]) before it applies a command, so this is only seen by an
    /// embedder calling [`apply`] alone.
    #[error(
        "approvals of step {step} have lapsed and must be recorded first; read the execution again and retry"
    )]
    LapsesDue {
        /// The step.
        step: u32,
    },
    /// The approver's role does not satisfy the step's `owner_role`.
    #[error("approving step {step} needs {requirement}; your role is {role}")]
    ApproverRole {
        /// The step.
        step: u32,
        /// Who may approve.
        requirement: String,
        /// The approver's rank (and team roles).
        role: String,
    },
    /// The workspace requires a second person to approve.
    #[error(
        "the operator of this execution (who started it, or to whom it was handed over) cannot approve its gated steps; ask someone with {requirement}"
    )]
    ApproverIsOperator {
        /// Who may approve.
        requirement: String,
    },
    /// The step already has every approval it needs, or this approver's (the same approver
    /// twice counts once).
    #[error("step {step} is already approved")]
    AlreadyApproved {
        /// The step.
        step: u32,
        /// By whom (the approver themself when they approved already, else the last one).
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Approve on a step without a gate.
    #[error("step {step} does not require approval; mark it done")]
    NotGated {
        /// The step.
        step: u32,
    },
    /// Done or approve on a failed step that was not retried.
    #[error("step {step} failed; retry it, skip it with a reason, or abort the execution")]
    StepFailed {
        /// The step.
        step: u32,
    },
    /// Retry on a step that did not fail.
    #[error("step {step} has not failed, so there is nothing to retry")]
    NotFailed {
        /// The step.
        step: u32,
    },
    /// A note or reason broke a limit.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The same note by the same author on the same step was added after the revision the
    /// command was made at: a repeat.
    #[error("this note was already added to step {step}; nothing changed")]
    DuplicateNote {
        /// The step.
        step: u32,
        /// When the first one was added.
        at: DateTime<Utc>,
    },
    /// A hand-over to the operator, or a takeover by the operator.
    #[error("{user_is} already the operator of {key}; nothing changed")]
    AlreadyOperator {
        /// The execution.
        key: Key,
        /// `you are` or `they are`.
        user_is: &'static str,
    },
}

/// What a new execution is made of, besides the runbook snapshot.
#[derive(Clone, Debug)]
pub struct StartParams {
    /// The allocated `EX-` key.
    pub key: Key,
    /// Who starts it.
    pub operator: UserId,
    /// A linked change (key and id).
    pub change: Option<(Key, ChangeId)>,
    /// A linked incident.
    pub incident: Option<Key>,
    /// A practice run.
    pub rehearsal: bool,
    /// The channel it was started from.
    pub channel: Option<ChannelRef>,
}

/// Starts an execution of `runbook` as it is now: snapshots its version and steps; the first
/// step becomes current at `now`. Permission and publication are the caller's rules
/// ([`crate::authz`]); this only builds the state.
pub fn start(runbook: &Runbook, params: StartParams, now: DateTime<Utc>) -> Transition {
    let id = ExecutionId::new();
    let steps = runbook
        .body
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| ExecStep {
            step: s.clone(),
            status: StepStatus::Pending,
            started_at: (i == 0).then_some(now),
            completed_at: None,
            note: None,
            actor: None,
            approvals: Vec::new(),
            lapsed: Vec::new(),
            failures: 0,
            notes: Vec::new(),
        })
        .collect::<Vec<_>>();
    let empty = steps.is_empty();
    let execution = Execution {
        id,
        workspace: runbook.workspace,
        key: params.key,
        runbook: runbook.id,
        runbook_key: runbook.key,
        runbook_version: runbook.version,
        title: runbook.body.title.to_string(),
        operator: params.operator,
        handoffs: Vec::new(),
        change: params.change.map(|c| c.0),
        change_id: params.change.map(|c| c.1),
        incident: params.incident,
        rehearsal: params.rehearsal,
        channel: params.channel,
        // A runbook without steps has nothing to walk: it is sealed at once.
        status: if empty {
            ExecutionStatus::Completed
        } else {
            ExecutionStatus::Running
        },
        steps,
        started_at: now,
        sealed_at: empty.then_some(now),
        abort_reason: None,
        rev: 1,
    };
    let event = StepEvent {
        execution: id,
        seq: 1,
        kind: EventKind::Started,
        step_order: None,
        step_id: None,
        actor: params.operator,
        at: now,
        note: None,
        started_at: None,
        satisfied_as: None,
        to: None,
    };
    Transition { execution, event }
}

fn required_text(what: &'static str, field: &str, text: &str) -> Result<Markdown, ExecError> {
    if text.trim().is_empty() {
        return Err(ExecError::ReasonRequired { what });
    }
    Ok(Markdown::parse_field(field, text.trim())?)
}

/// Applies `cmd` by `actor` at `now` to `exec`. On success returns the new execution and exactly
/// one event; on refusal returns why and `exec` is unchanged (it is only borrowed).
pub fn apply(
    exec: &Execution,
    cmd: &Command,
    actor: &Actor,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<Transition, ExecError> {
    if let Command::Note {
        step,
        text,
        seen_rev,
    } = cmd
    {
        return note(exec, *step, text, *seen_rev, actor.id(), now);
    }
    if exec.status.is_sealed() {
        return Err(ExecError::Sealed {
            key: exec.key,
            status: exec.status.as_str(),
            at: exec.sealed_at,
        });
    }
    let mut next = exec.clone();
    let seq = exec.rev + 1;
    next.rev = seq;
    let mut event = StepEvent {
        execution: exec.id,
        seq,
        kind: EventKind::Aborted,
        step_order: None,
        step_id: None,
        actor: actor.id(),
        at: now,
        note: None,
        started_at: None,
        satisfied_as: None,
        to: None,
    };

    if let Command::Abort { reason } = cmd {
        let reason = required_text("an abort reason", "reason", reason)?;
        next.status = ExecutionStatus::Aborted;
        next.sealed_at = Some(now);
        next.abort_reason = Some(reason.clone());
        event.note = Some(reason);
        if let Some(i) = exec.current_index() {
            event.step_order = Some(i as u32 + 1);
            event.step_id = exec.steps.get(i).map(|s| s.step.id);
        }
        return Ok(Transition {
            execution: next,
            event,
        });
    }
    if let Command::HandOver { .. } | Command::TakeOver = cmd {
        let (to, kind, user_is) = match cmd {
            Command::HandOver { to } => (*to, EventKind::HandedOver, "they are"),
            _ => (actor.id(), EventKind::TakenOver, "you are"),
        };
        if to == exec.operator {
            return Err(ExecError::AlreadyOperator {
                key: exec.key,
                user_is,
            });
        }
        next.handoffs.push(Handoff {
            from: exec.operator,
            to,
            by: actor.id(),
            at: now,
        });
        next.operator = to;
        event.kind = kind;
        event.to = Some(to);
        return Ok(Transition {
            execution: next,
            event,
        });
    }
    let Some(order) = cmd.step() else {
        return unreachable_abort();
    };

    let count = exec.steps.len();
    if order == 0 || order as usize > count {
        return Err(ExecError::NoSuchStep {
            key: exec.key,
            step: order,
            count,
        });
    }
    let idx = order as usize - 1;
    let current = exec.current_index();
    if current != Some(idx) {
        let named = &exec.steps[idx];
        return Err(ExecError::NotCurrent {
            step: order,
            current: current.map(|c| c as u32 + 1),
            status: named.status,
            by: named.actor,
            at: named.completed_at,
        });
    }
    let step = &exec.steps[idx];
    event.step_order = Some(order);
    event.step_id = Some(step.step.id);
    event.started_at = step.started_at;
    let requirement = RoleRequirement::from_owner_role(step.step.owner_role.as_str());

    match cmd {
        Command::Approve { .. } => {
            if !step.step.requires_approval {
                return Err(ExecError::NotGated { step: order });
            }
            if step.status == StepStatus::Failed {
                return Err(ExecError::StepFailed { step: order });
            }
            if lapses_due_on(step, now) {
                return Err(ExecError::LapsesDue { step: order });
            }
            if let Some(a) = step.approvals.iter().find(|a| a.by == actor.id()) {
                return Err(ExecError::AlreadyApproved {
                    step: order,
                    by: a.by,
                    at: a.at,
                });
            }
            if step.approvals_missing() == 0
                && let Some(a) = step.approvals.last()
            {
                return Err(ExecError::AlreadyApproved {
                    step: order,
                    by: a.by,
                    at: a.at,
                });
            }
            if policy.approver_must_differ && actor.id() == exec.operator {
                return Err(ExecError::ApproverIsOperator {
                    requirement: requirement.to_string(),
                });
            }
            let team = &actor.membership.team_roles;
            if !requirement.satisfied_by(actor.role(), team) {
                let mut role = actor.role().to_string();
                if !team.is_empty() {
                    let names: Vec<&str> = team.iter().map(|n| n.as_str()).collect();
                    role.push_str(&format!(" (team roles: {})", names.join(", ")));
                }
                return Err(ExecError::ApproverRole {
                    step: order,
                    requirement: requirement.to_string(),
                    role,
                });
            }
            let satisfied_as = match &requirement {
                RoleRequirement::Team(n) => n.to_string(),
                _ => actor.role().to_string(),
            };
            event.satisfied_as = Some(satisfied_as.clone());
            next.steps[idx].approvals.push(Approval {
                by: actor.id(),
                at: now,
                satisfied_as,
            });
            event.kind = EventKind::Approved;
            return Ok(Transition {
                execution: next,
                event,
            });
        }
        Command::Retry { .. } => {
            if step.status != StepStatus::Failed {
                return Err(ExecError::NotFailed { step: order });
            }
            let s = &mut next.steps[idx];
            s.status = StepStatus::Pending;
            s.started_at = Some(now);
            s.completed_at = None;
            s.actor = None;
            s.note = None;
            // A retried gated step is approved again: what was approved was the attempt that failed.
            s.approvals.clear();
            s.lapsed.clear();
            event.kind = EventKind::Retried;
            return Ok(Transition {
                execution: next,
                event,
            });
        }
        Command::Done { note, .. } => {
            if step.status == StepStatus::Failed {
                return Err(ExecError::StepFailed { step: order });
            }
            if lapses_due_on(step, now) {
                return Err(ExecError::LapsesDue { step: order });
            }
            if step.approvals_missing() > 0 {
                return Err(ExecError::NeedsApproval {
                    step: order,
                    requirement: requirement.to_string(),
                    have: u32::try_from(step.approvals.len()).unwrap_or(u32::MAX),
                    need: step.step.approvals_needed(),
                });
            }
            let note = match note.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
                Some(n) => Some(Markdown::parse_field("note", n)?),
                None => None,
            };
            finish_step(
                &mut next,
                idx,
                StepStatus::Done,
                note.clone(),
                actor.id(),
                now,
            );
            event.kind = EventKind::Done;
            event.note = note;
        }
        Command::Skip { reason, .. } => {
            let reason = required_text("a skip reason", "reason", reason)?;
            finish_step(
                &mut next,
                idx,
                StepStatus::Skipped,
                Some(reason.clone()),
                actor.id(),
                now,
            );
            event.kind = EventKind::Skipped;
            event.note = Some(reason);
        }
        Command::Fail { note, .. } => {
            if step.status == StepStatus::Failed {
                return Err(ExecError::StepFailed { step: order });
            }
            let note = required_text("a failure note", "note", note)?;
            let s = &mut next.steps[idx];
            s.status = StepStatus::Failed;
            s.completed_at = Some(now);
            s.note = Some(note.clone());
            s.actor = Some(actor.id());
            s.failures += 1;
            event.kind = EventKind::Failed;
            event.note = Some(note);
        }
        Command::Abort { .. }
        | Command::Note { .. }
        | Command::HandOver { .. }
        | Command::TakeOver => return unreachable_abort(),
    }
    Ok(Transition {
        execution: next,
        event,
    })
}

/// An approval of the current step that lapses at `at` (its approval time plus the step's
/// `approval_expires_minutes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lapse {
    /// The step (1-based).
    pub step: u32,
    /// The approval that lapses.
    pub approval: Approval,
    /// When it lapses.
    pub at: DateTime<Utc>,
}

/// True when an approval of `step` has lapsed by `now` without its lapse being recorded.
fn lapses_due_on(step: &ExecStep, now: DateTime<Utc>) -> bool {
    step.approvals
        .iter()
        .any(|a| step.lapses_at(a).is_some_and(|t| t <= now))
}

/// The approvals of the running execution's current step that have lapsed by `now` and are
/// not recorded as lapsed yet, in the order they lapse. Approvals of a step that is done or
/// skipped never lapse (the step was done first), nor do those of a sealed execution.
pub fn due_lapses(exec: &Execution, now: DateTime<Utc>) -> Vec<Lapse> {
    let Some(idx) = exec.current_index() else {
        return Vec::new();
    };
    let Some(step) = exec.steps.get(idx) else {
        return Vec::new();
    };
    let mut due: Vec<Lapse> = step
        .approvals
        .iter()
        .filter_map(|a| {
            let at = step.lapses_at(a).filter(|t| *t <= now)?;
            Some(Lapse {
                step: idx as u32 + 1,
                approval: a.clone(),
                at,
            })
        })
        .collect();
    due.sort_by_key(|l| l.at);
    due
}

/// Records the first lapse due at `now` ([`due_lapses`]): the approval leaves the step's
/// standing approvals for its `lapsed` ones, and one `approval_expired` event says whose it was
/// (its actor) and when it lapsed (its time). `None` when nothing is due. Deterministic: every
/// process that sees the same execution at a time past the lapse builds the same transition,
/// and the optimistic revision check lets one of them commit it.
pub fn lapse(exec: &Execution, now: DateTime<Utc>) -> Option<Transition> {
    let first = due_lapses(exec, now).into_iter().next()?;
    let idx = first.step as usize - 1;
    let mut next = exec.clone();
    let seq = exec.rev + 1;
    next.rev = seq;
    let step = next.steps.get_mut(idx)?;
    let pos = step
        .approvals
        .iter()
        .position(|a| a.by == first.approval.by)?;
    let gone = step.approvals.remove(pos);
    step.lapsed.push(gone);
    let event = StepEvent {
        execution: exec.id,
        seq,
        kind: EventKind::ApprovalExpired,
        step_order: Some(first.step),
        step_id: Some(step.step.id),
        actor: first.approval.by,
        at: first.at,
        note: None,
        started_at: None,
        satisfied_as: None,
        to: None,
    };
    Some(Transition {
        execution: next,
        event,
    })
}

/// Adds a note to step `order` of `exec` (running or sealed); see [`Command::Note`].
fn note(
    exec: &Execution,
    order: u32,
    text: &str,
    seen_rev: Option<u64>,
    author: UserId,
    now: DateTime<Utc>,
) -> Result<Transition, ExecError> {
    let count = exec.steps.len();
    let idx = (order as usize)
        .checked_sub(1)
        .filter(|i| *i < count)
        .ok_or(ExecError::NoSuchStep {
            key: exec.key,
            step: order,
            count,
        })?;
    let text = required_text("a note", "note", text)?;
    let chars = text.as_str().chars().count();
    if chars > MAX_NOTE_CHARS {
        return Err(ValidationError::new(
            "note",
            format!("must be at most {MAX_NOTE_CHARS} characters (got {chars}); shorten it or split it into several notes"),
        )
        .into());
    }
    let step = &exec.steps[idx];
    if let Some(seen) = seen_rev
        && let Some(first) = step
            .notes
            .iter()
            .find(|n| n.seq > seen && n.author == author && n.text == text)
    {
        return Err(ExecError::DuplicateNote {
            step: order,
            at: first.at,
        });
    }
    let seq = exec.rev + 1;
    let mut next = exec.clone();
    next.rev = seq;
    next.steps[idx].notes.push(StepNote {
        author,
        at: now,
        text: text.clone(),
        seq,
    });
    Ok(Transition {
        execution: next,
        event: StepEvent {
            execution: exec.id,
            seq,
            kind: EventKind::Noted,
            step_order: Some(order),
            step_id: Some(step.step.id),
            actor: author,
            at: now,
            note: Some(text),
            started_at: None,
            satisfied_as: None,
            to: None,
        },
    })
}

/// Marks step `idx` complete, makes the next one current, and seals after the last.
fn finish_step(
    exec: &mut Execution,
    idx: usize,
    status: StepStatus,
    note: Option<Markdown>,
    actor: UserId,
    now: DateTime<Utc>,
) {
    if let Some(s) = exec.steps.get_mut(idx) {
        s.status = status;
        s.completed_at = Some(now);
        s.note = note;
        s.actor = Some(actor);
    }
    match exec.steps.get_mut(idx + 1) {
        Some(next) => next.started_at = Some(now),
        None => {
            exec.status = ExecutionStatus::Completed;
            exec.sealed_at = Some(now);
        }
    }
}

/// Abort is matched before step commands; this keeps the match total without a panic.
fn unreachable_abort<T>() -> Result<T, ExecError> {
    Err(ExecError::ReasonRequired {
        what: "an abort reason",
    })
}
