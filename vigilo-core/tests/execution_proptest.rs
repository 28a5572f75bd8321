//! 10,000 random command sequences against the state machine — several actors, roles changing
//! mid-way, notes (after the seal too), hand-overs and takeovers, steps asking for up to three
//! distinct approvals that lapse after a few minutes, time passing — checking the invariants
//! after every command and lapse, and that the events alone rebuild the state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use vigilo_core::execution::machine::{self, Command, StartParams};
use vigilo_core::execution::{EventKind, Execution, StepEvent, StepStatus, history};
use vigilo_core::fields::Name;
use vigilo_core::ids::{Key, KeyKind, RunbookId, UserId, WorkspaceId};
use vigilo_core::roles::{RoleRequirement, WorkspaceRole};
use vigilo_core::runbook::{Runbook, RunbookInput, StepInput};
use vigilo_core::workspace::{Actor, Membership, Policy, User};

#[derive(Clone, Debug)]
enum Op {
    /// Actor index, command.
    Cmd(usize, Command),
    /// Actor index gets a new rank.
    SetRole(usize, WorkspaceRole),
    /// Actor index gains or loses the `dba` team role.
    ToggleDba(usize),
    /// Minutes pass.
    Wait(i64),
    /// The next command is applied without recording the lapses due first (as an embedder
    /// calling `apply` alone might): the machine must still never let a step be done on a
    /// lapsed approval.
    SkipLapses,
    /// Actor index notes step (any number, 0 and past the end included) with a text; the note
    /// was written at the current revision minus the given lag (`None`: no repeat check).
    Note(usize, u32, String, Option<u64>),
    /// Actor index hands the execution to actor index.
    HandOver(usize, usize),
    /// Actor index takes the execution over.
    TakeOver(usize),
}

const PEOPLE: usize = 6;

fn role() -> impl Strategy<Value = WorkspaceRole> {
    prop::sample::select(WorkspaceRole::ALL.to_vec())
}

fn text() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", " ", "ok", "pager is down", "done by hand"])
        .prop_map(String::from)
}

fn command() -> impl Strategy<Value = Command> {
    let step = 0u32..7;
    prop_oneof![
        4 => (step.clone(), prop::option::of(text())).prop_map(|(step, note)| Command::Done { step, note }),
        2 => (step.clone(), text()).prop_map(|(step, reason)| Command::Skip { step, reason }),
        2 => (step.clone(), text()).prop_map(|(step, note)| Command::Fail { step, note }),
        3 => step.clone().prop_map(|step| Command::Approve { step }),
        2 => step.prop_map(|step| Command::Retry { step }),
        1 => text().prop_map(|reason| Command::Abort { reason }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0usize..PEOPLE, command()).prop_map(|(a, c)| Op::Cmd(a, c)),
        1 => (0usize..PEOPLE, role()).prop_map(|(a, r)| Op::SetRole(a, r)),
        1 => (0usize..PEOPLE).prop_map(Op::ToggleDba),
        2 => (0i64..4).prop_map(Op::Wait),
        1 => Just(Op::SkipLapses),
        3 => (0usize..PEOPLE, 0u32..7, text(), prop::option::of(0u64..3))
            .prop_map(|(a, s, t, lag)| Op::Note(a, s, t, lag)),
        1 => (0usize..PEOPLE, 0usize..PEOPLE).prop_map(|(a, b)| Op::HandOver(a, b)),
        1 => (0usize..PEOPLE).prop_map(Op::TakeOver),
    ]
}

/// A step: gated, owner role, approvals asked, minutes after which they lapse.
type Gate = (bool, &'static str, i64, Option<i64>);

fn gated_runbook(gates: &[Gate]) -> Runbook {
    let steps = gates
        .iter()
        .enumerate()
        .map(|(i, (g, r, n, m))| StepInput {
            title: format!("Step {}", i + 1),
            est_minutes: 5,
            owner_role: (*r).into(),
            requires_approval: *g,
            approvals_required: if *g { *n } else { 1 },
            approval_expires_minutes: m.filter(|_| *g),
            ..Default::default()
        })
        .collect();
    let body = RunbookInput {
        title: "Random".into(),
        steps,
        ..Default::default()
    }
    .validate()
    .unwrap();
    let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    Runbook {
        id: RunbookId::new(),
        workspace: WorkspaceId::new(),
        key: Key::new(KeyKind::Runbook, 1),
        body,
        version: 1,
        owner: UserId::new(),
        is_published: true,
        archived_at: None,
        created_at: t,
        updated_at: t,
        rev: 1,
    }
}

fn actors(roles: &[WorkspaceRole]) -> Vec<Actor> {
    roles
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let id = UserId::new();
            Actor {
                user: User {
                    id,
                    handle: Name::parse_field("h", format!("user{i}")).unwrap(),
                    rev: 1,
                },
                membership: Membership {
                    workspace: WorkspaceId::new(),
                    user: id,
                    role: *r,
                    team_roles: BTreeSet::new(),
                    display_name: Default::default(),
                    chat_identities: vec![],
                    removed_at: None,
                    rev: 1,
                },
            }
        })
        .collect()
}

fn gate() -> impl Strategy<Value = Gate> {
    (
        any::<bool>(),
        prop::sample::select(vec!["", "operator", "admin", "owner", "dba"]),
        1i64..=3,
        prop::option::of(1i64..=4),
    )
}

/// The approvals of step `order` that the events leave standing (given since its last retry
/// and not lapsed since): `(approver, when)`. Computed from the events alone, independently of
/// the machine's state.
fn standing(events: &[StepEvent], order: u32) -> Vec<(UserId, DateTime<Utc>)> {
    let mut out: Vec<(UserId, DateTime<Utc>)> = Vec::new();
    for e in events.iter().filter(|e| e.step_order == Some(order)) {
        match e.kind {
            EventKind::Approved => out.push((e.actor, e.at)),
            EventKind::ApprovalExpired => out.retain(|(by, _)| *by != e.actor),
            EventKind::Retried => out.clear(),
            _ => {}
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn invariants_hold_for_random_sequences(
        gates in prop::collection::vec(gate(), 0..6),
        roles in prop::collection::vec(role(), PEOPLE),
        ops in prop::collection::vec(op(), 0..40),
        policy_differs in any::<bool>(),
    ) {
        let rb = gated_runbook(&gates);
        let mut people = actors(&roles);
        let policy = Policy { approver_must_differ: policy_differs };
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let start = machine::start(&rb, StartParams {
            key: Key::new(KeyKind::Execution, 1),
            operator: people[0].id(),
            change: None, incident: None, rehearsal: false, channel: None,
        }, t0);
        let mut exec: Execution = start.execution;
        let mut events: Vec<StepEvent> = vec![start.event];
        let (header, snapshot) = history::split(&exec);
        prop_assert_eq!(&history::replay(header, snapshot, &events).unwrap(), &exec);
        let mut now = t0;
        let mut skip_lapses = false;
        for op in ops {
            now += Duration::seconds(37);
            match op {
                Op::Wait(m) => now += Duration::minutes(m),
                Op::SkipLapses => skip_lapses = true,
                Op::SetRole(a, r) => people[a].membership.role = r,
                Op::ToggleDba(a) => {
                    let dba = Name::parse_field("t", "dba").unwrap();
                    if !people[a].membership.team_roles.remove(&dba) {
                        people[a].membership.team_roles.insert(dba);
                    }
                }
                Op::Cmd(..) | Op::Note(..) | Op::HandOver(..) | Op::TakeOver(..) => {
                    // Lapses due by now are recorded first, one event each, as the service does.
                    let record_lapses = !std::mem::take(&mut skip_lapses);
                    while let Some(t) = record_lapses.then(|| machine::lapse(&exec, now)).flatten() {
                        let i = t.event.step_order.unwrap() as usize - 1;
                        let s = &exec.steps[i];
                        prop_assert_eq!(t.event.kind, EventKind::ApprovalExpired);
                        prop_assert_eq!(t.event.seq, exec.rev + 1);
                        prop_assert_eq!(Some(i), exec.current_index());
                        let gone = s.approvals.iter().find(|a| a.by == t.event.actor).unwrap();
                        let m = s.step.approval_expires_minutes.unwrap();
                        prop_assert_eq!(t.event.at, gone.at + m.duration());
                        prop_assert!(t.event.at <= now);
                        prop_assert_eq!(t.execution.steps[i].approvals.len() + 1, s.approvals.len());
                        prop_assert_eq!(t.execution.steps[i].status, s.status);
                        exec = t.execution;
                        events.push(t.event);
                        let (header, snapshot) = history::split(&exec);
                        prop_assert_eq!(&history::replay(header, snapshot, &events).unwrap(), &exec);
                    }
                    let (a, cmd) = match op {
                        Op::Cmd(a, cmd) => (a, cmd),
                        Op::Note(a, step, text, lag) => (a, Command::Note {
                            step,
                            text,
                            seen_rev: lag.map(|l| exec.rev.saturating_sub(l)),
                        }),
                        Op::HandOver(a, b) => (a, Command::HandOver { to: people[b].id() }),
                        Op::TakeOver(a) => (a, Command::TakeOver),
                        _ => unreachable!(),
                    };
                    let before = exec.clone();
                    let actor = &people[a];
                    match machine::apply(&exec, &cmd, actor, &policy, now) {
                        Err(_) => {
                            // Refusals change nothing.
                            prop_assert_eq!(&exec, &before);
                        }
                        Ok(t) => {
                            // Sealed stays sealed: nothing but a note is accepted after the seal.
                            prop_assert!(
                                !before.status.is_sealed() || t.event.kind == EventKind::Noted,
                                "accepted a {:?} on a sealed execution", t.event.kind
                            );
                            // Exactly one event per accepted command, numbered in order.
                            prop_assert_eq!(t.execution.rev, before.rev + 1);
                            prop_assert_eq!(t.event.seq, t.execution.rev);
                            prop_assert_eq!(t.event.actor, actor.id());
                            prop_assert!(t.event.kind != EventKind::ApprovalExpired);
                            // A command that moves a step named the step that was current.
                            if cmd.moves_steps()
                                && let Some(s) = cmd.step()
                            {
                                prop_assert_eq!(Some(s as usize - 1), before.current_index());
                                prop_assert_eq!(t.event.step_order, Some(s));
                            }
                            match &cmd {
                                Command::Note { step, text, seen_rev } => {
                                    // A note changes nothing but the notes of its step.
                                    let i = *step as usize - 1;
                                    let mut stripped = t.execution.clone();
                                    let added = stripped.steps[i].notes.pop().unwrap();
                                    stripped.rev = before.rev;
                                    prop_assert_eq!(&stripped, &before);
                                    prop_assert_eq!(added.text.as_str(), text.trim());
                                    prop_assert_eq!(added.author, actor.id());
                                    // Never the same author's same text twice after the revision seen.
                                    if let Some(seen) = seen_rev {
                                        prop_assert!(!before.steps[i].notes.iter().any(|n| n.seq > *seen && n.author == added.author && n.text == added.text));
                                    }
                                }
                                Command::HandOver { to } => {
                                    prop_assert_eq!(t.execution.operator, *to);
                                    prop_assert_ne!(before.operator, *to);
                                    prop_assert_eq!(t.execution.handoffs.len(), before.handoffs.len() + 1);
                                    prop_assert_eq!(t.execution.started_by(), before.started_by());
                                }
                                Command::TakeOver => {
                                    prop_assert_eq!(t.execution.operator, actor.id());
                                    prop_assert!(t.execution.handoffs.last().unwrap().is_takeover());
                                }
                                _ => prop_assert_eq!(t.execution.operator, before.operator),
                            }
                            // Every approval satisfied the role at its time, and policy (the
                            // operator at that moment, after any hand-over), by someone whose
                            // approval did not stand already, and never beyond what the step asks.
                            if t.event.kind == EventKind::Approved {
                                let order = t.event.step_order.unwrap();
                                let i = order as usize - 1;
                                let step = &t.execution.steps[i].step;
                                prop_assert!(step.requires_approval);
                                let req = RoleRequirement::from_owner_role(step.owner_role.as_str());
                                prop_assert!(req.satisfied_by(actor.role(), &actor.membership.team_roles));
                                if policy.approver_must_differ {
                                    // The operator of that moment, after any hand-over.
                                    prop_assert_ne!(actor.id(), t.execution.operator);
                                }
                                let was = standing(&events, order);
                                prop_assert!(was.iter().all(|(by, _)| *by != actor.id()), "the same approver twice");
                                prop_assert!((was.len() as u32) < step.approvals_needed());
                            }
                            // Done on a gated step only with N distinct approvals standing, none
                            // of them lapsed by now — counted from the events alone.
                            if t.event.kind == EventKind::Done {
                                let order = t.event.step_order.unwrap();
                                let s = &t.execution.steps[order as usize - 1];
                                let valid: BTreeSet<UserId> = standing(&events, order)
                                    .into_iter()
                                    .filter(|(_, at)| s.step.approval_expires_minutes.is_none_or(|m| *at + m.duration() > now))
                                    .map(|(by, _)| by)
                                    .collect();
                                prop_assert!(valid.len() as u32 >= s.step.approvals_needed(),
                                    "step {} done with {} of {} valid approvals", order, valid.len(), s.step.approvals_needed());
                            }
                            exec = t.execution;
                            events.push(t.event);
                            // The events alone rebuild the state (what the SQL stores keep).
                            let (header, snapshot) = history::split(&exec);
                            prop_assert_eq!(header.operator, events[0].actor);
                            prop_assert_eq!(&history::replay(header, snapshot, &events).unwrap(), &exec);
                        }
                    }
                }
            }
            // Steps complete in order: no complete step after an incomplete one.
            let first_open = exec.steps.iter().position(|s| !s.status.is_complete()).unwrap_or(exec.steps.len());
            prop_assert!(exec.steps[first_open..].iter().skip(1).all(|s| s.status == StepStatus::Pending && s.completed_at.is_none()));
            // Completed means every step complete; running means one is open.
            match exec.status {
                vigilo_core::execution::ExecutionStatus::Completed => prop_assert_eq!(first_open, exec.steps.len()),
                vigilo_core::execution::ExecutionStatus::Running => prop_assert!(first_open < exec.steps.len()),
                vigilo_core::execution::ExecutionStatus::Aborted => prop_assert!(exec.abort_reason.is_some()),
            }
        }
        // The events rebuild the state through JSON too, as the stores keep them.
        let json: Vec<StepEvent> = serde_json::from_str(&serde_json::to_string(&events).unwrap()).unwrap();
        let (header, snapshot) = history::split(&exec);
        prop_assert_eq!(&history::replay(header, snapshot, &json).unwrap(), &exec);
        // The event log and the execution agree.
        prop_assert_eq!(events.len() as u64, exec.rev);
        for (i, e) in events.iter().enumerate() {
            prop_assert_eq!(e.seq, i as u64 + 1);
        }
        let done_events = events.iter().filter(|e| matches!(e.kind, EventKind::Done | EventKind::Skipped)).count();
        prop_assert_eq!(done_events, exec.steps.iter().filter(|s| s.status.is_complete()).count());
    }
}
