//! An execution as stores keep it: a header written once, an immutable snapshot of its steps,
//! and its events. The state of every step is what its events say, so a step transition
//! stores only the event (and a few columns a store indexes), never the whole execution again.
//!
//! [`split`] takes an [`Execution`] apart; [`replay`] puts it back together from the three
//! parts, applying each event as [`machine::apply`](super::machine::apply) did when it was
//! accepted. `replay(split(e), events) == e` holds for every execution the machine builds;
//! the property test of the machine checks it after every command.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    Approval, ChannelRef, EventKind, ExecStep, Execution, ExecutionStatus, Handoff, StepEvent,
    StepNote, StepStatus,
};
use crate::ids::{ChangeId, ExecutionId, Key, RunbookId, UserId, WorkspaceId};
use crate::runbook::Step;

/// What an execution is that no command changes: written once, when it starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionHeader {
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
    /// Who started it (hand-overs are events: see [`replay`]).
    pub operator: UserId,
    /// A linked change, if any.
    pub change: Option<Key>,
    /// The linked change's id, if any.
    pub change_id: Option<ChangeId>,
    /// A linked incident, if any.
    pub incident: Option<Key>,
    /// A practice run.
    pub rehearsal: bool,
    /// The channel it was started from, if any.
    pub channel: Option<ChannelRef>,
    /// When it started.
    pub started_at: DateTime<Utc>,
}

/// The steps an execution walks, as they were in the snapshotted version: immutable, and
/// stored once per distinct content ([`Snapshot::hash_of`]), however many runs share it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl Snapshot {
    /// The canonical document of the snapshot: its JSON (struct fields in declaration order).
    pub fn document(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// The content address of a snapshot document: lowercase hex SHA-256 of its bytes.
    pub fn hash_of(document: &str) -> String {
        hex::encode(Sha256::digest(document.as_bytes()))
    }
}

/// Why an execution could not be rebuilt from its stored parts: the parts disagree, which
/// only an edit behind Vigilo's back or a bug can cause.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("execution {key}: event {seq} cannot be replayed: {reason}")]
pub struct ReplayError {
    /// The execution.
    pub key: Key,
    /// The event that did not fit (0 when the first event is missing).
    pub seq: u64,
    /// What did not fit.
    pub reason: String,
}

/// Takes an execution apart into its header and its snapshot; its state is in its events.
pub fn split(e: &Execution) -> (ExecutionHeader, Snapshot) {
    (
        header(e),
        Snapshot {
            steps: e.steps.iter().map(|s| s.step.clone()).collect(),
        },
    )
}

/// The header of an execution (see [`split`]).
pub fn header(e: &Execution) -> ExecutionHeader {
    ExecutionHeader {
        id: e.id,
        workspace: e.workspace,
        key: e.key,
        runbook: e.runbook,
        runbook_key: e.runbook_key,
        runbook_version: e.runbook_version,
        title: e.title.clone(),
        operator: e.started_by(),
        change: e.change,
        change_id: e.change_id,
        incident: e.incident,
        rehearsal: e.rehearsal,
        channel: e.channel.clone(),
        started_at: e.started_at,
    }
}

/// Rebuilds an execution from its header, its snapshot and its events in `seq` order (1, 2,
/// 3, … without gaps, starting with `started`). Each event changes the state exactly as the
/// command that produced it did in [`machine::apply`](super::machine::apply).
pub fn replay(
    header: ExecutionHeader,
    snapshot: Snapshot,
    events: &[StepEvent],
) -> Result<Execution, ReplayError> {
    let key = header.key;
    let fail = |seq: u64, reason: String| ReplayError { key, seq, reason };
    let Some(first) = events.first() else {
        return Err(fail(0, "it has no `started` event".into()));
    };
    if first.kind != EventKind::Started || first.seq != 1 {
        return Err(fail(
            first.seq,
            format!(
                "the first event is `{}` #{}, not `started` #1",
                first.kind.as_str(),
                first.seq
            ),
        ));
    }
    let empty = snapshot.steps.is_empty();
    let mut e = Execution {
        id: header.id,
        workspace: header.workspace,
        key: header.key,
        runbook: header.runbook,
        runbook_key: header.runbook_key,
        runbook_version: header.runbook_version,
        title: header.title,
        operator: header.operator,
        handoffs: Vec::new(),
        change: header.change,
        change_id: header.change_id,
        incident: header.incident,
        rehearsal: header.rehearsal,
        channel: header.channel,
        status: if empty {
            ExecutionStatus::Completed
        } else {
            ExecutionStatus::Running
        },
        steps: snapshot
            .steps
            .into_iter()
            .enumerate()
            .map(|(i, step)| ExecStep {
                step,
                status: StepStatus::Pending,
                started_at: (i == 0).then_some(first.at),
                completed_at: None,
                note: None,
                actor: None,
                approvals: Vec::new(),
                lapsed: Vec::new(),
                failures: 0,
                notes: Vec::new(),
            })
            .collect(),
        started_at: header.started_at,
        sealed_at: empty.then_some(first.at),
        abort_reason: None,
        rev: 1,
    };
    for ev in &events[1..] {
        if ev.seq != e.rev + 1 {
            return Err(fail(
                ev.seq,
                format!(
                    "it follows event {} (events are numbered without gaps)",
                    e.rev
                ),
            ));
        }
        // Notes are the one kind accepted after the seal (see `machine::apply`).
        if e.status.is_sealed() && ev.kind != EventKind::Noted {
            return Err(fail(ev.seq, "it follows the seal".into()));
        }
        apply_event(&mut e, ev).map_err(|reason| fail(ev.seq, reason))?;
        e.rev = ev.seq;
    }
    Ok(e)
}

/// Applies one recorded event to the state, as the machine did when it accepted it.
fn apply_event(e: &mut Execution, ev: &StepEvent) -> Result<(), String> {
    match ev.kind {
        EventKind::Aborted => {
            e.status = ExecutionStatus::Aborted;
            e.sealed_at = Some(ev.at);
            e.abort_reason = ev.note.clone();
            return Ok(());
        }
        EventKind::HandedOver | EventKind::TakenOver => {
            let to = ev
                .to
                .ok_or_else(|| format!("a `{}` event names no new operator", ev.kind.as_str()))?;
            e.handoffs.push(Handoff {
                from: e.operator,
                to,
                by: ev.actor,
                at: ev.at,
            });
            e.operator = to;
            return Ok(());
        }
        _ => {}
    }
    let order = ev
        .step_order
        .ok_or_else(|| format!("a `{}` event names no step", ev.kind.as_str()))?;
    let idx = (order as usize)
        .checked_sub(1)
        .filter(|i| *i < e.steps.len())
        .ok_or_else(|| format!("it names step {order} of {}", e.steps.len()))?;
    if ev.kind == EventKind::Noted {
        let text = ev
            .note
            .clone()
            .ok_or_else(|| "a `noted` event without its text".to_owned())?;
        e.steps[idx].notes.push(StepNote {
            author: ev.actor,
            at: ev.at,
            text,
            seq: ev.seq,
        });
        return Ok(());
    }
    if e.current_index() != Some(idx) {
        return Err(format!("step {order} was not the current step"));
    }
    let count = e.steps.len();
    let s = &mut e.steps[idx];
    match ev.kind {
        EventKind::Started => return Err("a second `started` event".into()),
        EventKind::Aborted | EventKind::Noted | EventKind::HandedOver | EventKind::TakenOver => {}
        EventKind::Approved => {
            if s.approvals.iter().any(|a| a.by == ev.actor) {
                return Err("a second approval by the same approver".into());
            }
            s.approvals.push(Approval {
                by: ev.actor,
                at: ev.at,
                satisfied_as: ev.satisfied_as.clone().unwrap_or_default(),
            });
        }
        EventKind::ApprovalExpired => {
            let pos = s
                .approvals
                .iter()
                .position(|a| a.by == ev.actor)
                .ok_or_else(|| format!("no approval of step {order} by its actor to lapse"))?;
            let gone = s.approvals.remove(pos);
            if s.lapses_at(&gone) != Some(ev.at) {
                return Err(format!(
                    "the approval of step {order} does not lapse at the event's time"
                ));
            }
            s.lapsed.push(gone);
        }
        EventKind::Retried => {
            s.status = StepStatus::Pending;
            s.started_at = Some(ev.at);
            s.completed_at = None;
            s.actor = None;
            s.note = None;
            s.approvals.clear();
            s.lapsed.clear();
        }
        EventKind::Failed => {
            s.status = StepStatus::Failed;
            s.completed_at = Some(ev.at);
            s.note = ev.note.clone();
            s.actor = Some(ev.actor);
            s.failures += 1;
        }
        EventKind::Done | EventKind::Skipped => {
            s.status = if ev.kind == EventKind::Done {
                StepStatus::Done
            } else {
                StepStatus::Skipped
            };
            s.completed_at = Some(ev.at);
            s.note = ev.note.clone();
            s.actor = Some(ev.actor);
            if idx + 1 < count {
                if let Some(next) = e.steps.get_mut(idx + 1) {
                    next.started_at = Some(ev.at);
                }
            } else {
                e.status = ExecutionStatus::Completed;
                e.sealed_at = Some(ev.at);
            }
        }
    }
    Ok(())
}

/// The events recorded and the state they must rebuild agree on the revision: what an adapter
/// that stores executions by their events checks before it stores an update.
pub fn event_matches(execution: &Execution, event: &StepEvent) -> bool {
    event.execution == execution.id && event.seq == execution.rev
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    use crate::execution::machine::{self, Command, StartParams};
    use crate::ids::KeyKind;
    use crate::runbook::{RunbookInput, StepInput};
    use crate::workspace::{Actor, Membership, Policy, User};

    fn started() -> (Execution, StepEvent, Actor) {
        let body = RunbookInput {
            title: "Two".into(),
            steps: vec![
                StepInput {
                    title: "One".into(),
                    ..Default::default()
                },
                StepInput {
                    title: "Two".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
        .validate()
        .unwrap();
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let ws = WorkspaceId::new();
        let rb = crate::runbook::Runbook {
            id: RunbookId::new(),
            workspace: ws,
            key: Key::new(KeyKind::Runbook, 1),
            body,
            version: 1,
            owner: UserId::new(),
            is_published: true,
            archived_at: None,
            created_at: at,
            updated_at: at,
            rev: 1,
        };
        let user = User {
            id: UserId::new(),
            handle: crate::fields::Name::parse_field("h", "ann").unwrap(),
            rev: 1,
        };
        let membership = Membership {
            workspace: ws,
            user: user.id,
            role: crate::roles::WorkspaceRole::Operator,
            team_roles: Default::default(),
            display_name: Default::default(),
            chat_identities: vec![],
            removed_at: None,
            rev: 1,
        };
        let t = machine::start(
            &rb,
            StartParams {
                key: Key::new(KeyKind::Execution, 1),
                operator: user.id,
                change: None,
                incident: None,
                rehearsal: false,
                channel: None,
            },
            at,
        );
        (t.execution, t.event, Actor { user, membership })
    }

    #[test]
    fn parts_that_disagree_are_named() {
        let (e, first, actor) = started();
        let (h, s) = split(&e);
        assert_eq!(replay(h.clone(), s.clone(), &[]).unwrap_err().seq, 0);
        let done = machine::apply(
            &e,
            &Command::Done {
                step: 1,
                note: None,
            },
            &actor,
            &Policy::default(),
            first.at,
        )
        .unwrap();
        let ok = replay(h.clone(), s.clone(), &[first.clone(), done.event.clone()]).unwrap();
        assert_eq!(ok, done.execution);

        let mut gap = done.event.clone();
        gap.seq = 3;
        let err = replay(h.clone(), s.clone(), &[first.clone(), gap]).unwrap_err();
        assert_eq!(err.seq, 3);
        assert!(err.reason.contains("without gaps"), "{err}");

        let mut twice = done.event.clone();
        twice.seq = 3;
        let err = replay(
            h.clone(),
            s.clone(),
            &[first.clone(), done.event.clone(), twice],
        )
        .unwrap_err();
        assert!(err.reason.contains("not the current step"), "{err}");

        let mut far = done.event;
        far.step_order = Some(9);
        let err = replay(h.clone(), s.clone(), &[first.clone(), far]).unwrap_err();
        assert!(err.reason.contains("step 9 of 2"), "{err}");

        let err = replay(h, s, &[first.clone(), first]).unwrap_err();
        assert!(err.to_string().contains("EX-00001"), "{err}");
    }

    #[test]
    fn events_stored_before_notes_and_hand_overs_still_parse() {
        let (_, first, _) = started();
        let mut doc = serde_json::to_value(&first).unwrap();
        assert!(doc.get("to").is_none(), "an absent `to` is not written");
        doc.as_object_mut().unwrap().remove("satisfied_as");
        let back: StepEvent = serde_json::from_value(doc).unwrap();
        assert_eq!(back, first);
        // An execution document without `handoffs` or `notes` reads as having none.
        let (e, _, _) = started();
        let text = serde_json::to_string(&e).unwrap();
        assert!(
            !text.contains("handoffs") && !text.contains("notes"),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Execution>(&text).unwrap(), e);
    }

    #[test]
    fn a_hand_over_without_its_new_operator_is_named() {
        let (e, first, actor) = started();
        let (h, s) = split(&e);
        let t = machine::apply(&e, &Command::TakeOver, &actor, &Policy::default(), first.at);
        // The operator taking over their own run is refused by the machine; forge the event.
        assert!(t.is_err());
        let mut ev = first.clone();
        ev.seq = 2;
        ev.kind = EventKind::HandedOver;
        let err = replay(h.clone(), s.clone(), &[first.clone(), ev.clone()]).unwrap_err();
        assert!(err.reason.contains("names no new operator"), "{err}");
        ev.to = Some(UserId::new());
        let ok = replay(h, s, &[first, ev.clone()]).unwrap();
        assert_eq!(ok.operator, ev.to.unwrap());
        assert_eq!(ok.started_by(), actor.id());
    }

    #[test]
    fn snapshot_hash_is_sha256_of_the_document() {
        let doc = Snapshot { steps: vec![] }.document().unwrap();
        assert_eq!(doc, r#"{"steps":[]}"#);
        assert_eq!(
            Snapshot::hash_of(&doc),
            hex::encode(Sha256::digest(br#"{"steps":[]}"#))
        );
    }
}
