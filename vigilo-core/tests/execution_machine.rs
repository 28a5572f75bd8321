//! The execution state machine as a table of cases: a setup (commands that must succeed), one
//! command by one actor, and the expected outcome.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use vigilo_core::execution::machine::{self, Command, ExecError, StartParams};
use vigilo_core::execution::{EventKind, Execution, ExecutionStatus, ExecutionSummary, StepStatus};
use vigilo_core::fields::Name;
use vigilo_core::ids::{Key, KeyKind, RunbookId, UserId, WorkspaceId};
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::runbook::{Runbook, RunbookInput, StepInput};
use vigilo_core::workspace::{Actor, Membership, Policy, User};

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

fn actor(handle: &str, role: WorkspaceRole, teams: &[&str]) -> Actor {
    let id = UserId::new();
    Actor {
        user: User {
            id,
            handle: Name::parse_field("handle", handle).unwrap(),
            rev: 1,
        },
        membership: Membership {
            workspace: WorkspaceId::new(),
            user: id,
            role,
            team_roles: teams
                .iter()
                .map(|t| Name::parse_field("t", *t).unwrap())
                .collect::<BTreeSet<_>>(),
            display_name: Default::default(),
            chat_identities: vec![],
            removed_at: None,
            rev: 1,
        },
    }
}

fn step(title: &str, est: i64, role: &str, gated: bool) -> StepInput {
    StepInput {
        title: title.into(),
        est_minutes: est,
        owner_role: role.into(),
        requires_approval: gated,
        ..Default::default()
    }
}

fn runbook() -> Runbook {
    let body = RunbookInput {
        title: "Restore the orders database".into(),
        steps: vec![
            step("Announce", 2, "operator", false),
            step("Stop writers", 5, "dba", true),
            step("Restore", 20, "admin", true),
            step("Verify", 5, "", false),
        ],
        ..Default::default()
    }
    .validate()
    .unwrap();
    Runbook {
        id: RunbookId::new(),
        workspace: WorkspaceId::new(),
        key: Key::new(KeyKind::Runbook, 12),
        body,
        version: 3,
        owner: UserId::new(),
        is_published: true,
        archived_at: None,
        created_at: t0(),
        updated_at: t0(),
        rev: 1,
    }
}

struct People {
    op: Actor,
    op2: Actor,
    carol_dba: Actor,
    dave_admin: Actor,
    member: Actor,
}

fn people() -> People {
    People {
        op: actor("olga", WorkspaceRole::Operator, &[]),
        op2: actor("otto", WorkspaceRole::Operator, &["sre"]),
        carol_dba: actor("carol", WorkspaceRole::Member, &["dba"]),
        dave_admin: actor("dave", WorkspaceRole::Admin, &[]),
        member: actor("mia", WorkspaceRole::Member, &[]),
    }
}

fn started(p: &People) -> Execution {
    machine::start(
        &runbook(),
        StartParams {
            key: Key::new(KeyKind::Execution, 1),
            operator: p.op.id(),
            change: None,
            incident: None,
            rehearsal: false,
            channel: None,
        },
        t0(),
    )
    .execution
}

fn done(step: u32) -> Command {
    Command::Done { step, note: None }
}

#[derive(Debug)]
enum Expect {
    Ok(EventKind),
    Err(fn(&ExecError) -> bool),
}

#[test]
fn the_state_machine_table() {
    let p = people();
    let policy = Policy::default();
    type Setup<'a> = Vec<(&'a Actor, Command)>;
    let cases: Vec<(&str, Setup, &Actor, Command, Expect)> = vec![
        (
            "done on the current step",
            vec![],
            &p.op,
            done(1),
            Expect::Ok(EventKind::Done),
        ),
        (
            "done with a note",
            vec![],
            &p.op,
            Command::Done {
                step: 1,
                note: Some("ok".into()),
            },
            Expect::Ok(EventKind::Done),
        ),
        (
            "done on a later step is a conflict",
            vec![],
            &p.op,
            done(2),
            Expect::Err(|e| {
                matches!(
                    e,
                    ExecError::NotCurrent {
                        step: 2,
                        current: Some(1),
                        ..
                    }
                )
            }),
        ),
        (
            "done twice (double click) is a conflict naming who",
            vec![(&p.op, done(1))],
            &p.op2,
            done(1),
            Expect::Err(|e| {
                matches!(
                    e,
                    ExecError::NotCurrent {
                        step: 1,
                        status: StepStatus::Done,
                        by: Some(_),
                        at: Some(_),
                        ..
                    }
                )
            }),
        ),
        (
            "no step 0",
            vec![],
            &p.op,
            done(0),
            Expect::Err(|e| matches!(e, ExecError::NoSuchStep { .. })),
        ),
        (
            "no step 9",
            vec![],
            &p.op,
            done(9),
            Expect::Err(|e| matches!(e, ExecError::NoSuchStep { count: 4, .. })),
        ),
        (
            "skip needs a reason",
            vec![],
            &p.op,
            Command::Skip {
                step: 1,
                reason: "  ".into(),
            },
            Expect::Err(|e| matches!(e, ExecError::ReasonRequired { .. })),
        ),
        (
            "skip with a reason",
            vec![],
            &p.op,
            Command::Skip {
                step: 1,
                reason: "announced already".into(),
            },
            Expect::Ok(EventKind::Skipped),
        ),
        (
            "fail needs a note",
            vec![],
            &p.op,
            Command::Fail {
                step: 1,
                note: "".into(),
            },
            Expect::Err(|e| matches!(e, ExecError::ReasonRequired { .. })),
        ),
        (
            "fail with a note",
            vec![],
            &p.op,
            Command::Fail {
                step: 1,
                note: "pager down".into(),
            },
            Expect::Ok(EventKind::Failed),
        ),
        (
            "done after fail needs a retry",
            vec![(
                &p.op,
                Command::Fail {
                    step: 1,
                    note: "x".into(),
                },
            )],
            &p.op,
            done(1),
            Expect::Err(|e| matches!(e, ExecError::StepFailed { .. })),
        ),
        (
            "retry after fail",
            vec![(
                &p.op,
                Command::Fail {
                    step: 1,
                    note: "x".into(),
                },
            )],
            &p.op,
            Command::Retry { step: 1 },
            Expect::Ok(EventKind::Retried),
        ),
        (
            "skip after fail",
            vec![(
                &p.op,
                Command::Fail {
                    step: 1,
                    note: "x".into(),
                },
            )],
            &p.op,
            Command::Skip {
                step: 1,
                reason: "not needed".into(),
            },
            Expect::Ok(EventKind::Skipped),
        ),
        (
            "retry a step that did not fail",
            vec![],
            &p.op,
            Command::Retry { step: 1 },
            Expect::Err(|e| matches!(e, ExecError::NotFailed { .. })),
        ),
        (
            "abort needs a reason",
            vec![],
            &p.op,
            Command::Abort { reason: "".into() },
            Expect::Err(|e| matches!(e, ExecError::ReasonRequired { .. })),
        ),
        (
            "abort after a failure",
            vec![(
                &p.op,
                Command::Fail {
                    step: 1,
                    note: "x".into(),
                },
            )],
            &p.op,
            Command::Abort {
                reason: "rolling back".into(),
            },
            Expect::Ok(EventKind::Aborted),
        ),
        (
            "approve a step without a gate",
            vec![],
            &p.dave_admin,
            Command::Approve { step: 1 },
            Expect::Err(|e| matches!(e, ExecError::NotGated { .. })),
        ),
        (
            "done on a gated step before approval",
            vec![(&p.op, done(1))],
            &p.op,
            done(2),
            Expect::Err(|e| matches!(e, ExecError::NeedsApproval { step: 2, .. })),
        ),
        (
            "approve by a role that does not satisfy (admin is not dba)",
            vec![(&p.op, done(1))],
            &p.dave_admin,
            Command::Approve { step: 2 },
            Expect::Err(
                |e| matches!(e, ExecError::ApproverRole { requirement, .. } if requirement.contains("dba")),
            ),
        ),
        (
            "approve by the team role",
            vec![(&p.op, done(1))],
            &p.carol_dba,
            Command::Approve { step: 2 },
            Expect::Ok(EventKind::Approved),
        ),
        (
            "approve by the operator who started is refused",
            vec![(&p.op, done(1))],
            &p.op,
            Command::Approve { step: 2 },
            Expect::Err(|e| matches!(e, ExecError::ApproverIsOperator { .. })),
        ),
        (
            "approve twice is a conflict",
            vec![
                (&p.op, done(1)),
                (&p.carol_dba, Command::Approve { step: 2 }),
            ],
            &p.carol_dba,
            Command::Approve { step: 2 },
            Expect::Err(|e| matches!(e, ExecError::AlreadyApproved { .. })),
        ),
        (
            "done after approval",
            vec![
                (&p.op, done(1)),
                (&p.carol_dba, Command::Approve { step: 2 }),
            ],
            &p.op,
            done(2),
            Expect::Ok(EventKind::Done),
        ),
        (
            "rank requirement: operator cannot approve an admin step",
            vec![
                (&p.op, done(1)),
                (&p.carol_dba, Command::Approve { step: 2 }),
                (&p.op, done(2)),
            ],
            &p.op2,
            Command::Approve { step: 3 },
            Expect::Err(|e| matches!(e, ExecError::ApproverRole { .. })),
        ),
        (
            "rank requirement: admin approves an admin step",
            vec![
                (&p.op, done(1)),
                (&p.carol_dba, Command::Approve { step: 2 }),
                (&p.op, done(2)),
            ],
            &p.dave_admin,
            Command::Approve { step: 3 },
            Expect::Ok(EventKind::Approved),
        ),
        (
            "a member may approve (role checked by the step) but approval of step 1 is not gated",
            vec![],
            &p.member,
            Command::Approve { step: 1 },
            Expect::Err(|e| matches!(e, ExecError::NotGated { .. })),
        ),
        (
            "sealed after abort refuses everything",
            vec![(
                &p.op,
                Command::Abort {
                    reason: "stop".into(),
                },
            )],
            &p.op,
            done(1),
            Expect::Err(|e| {
                matches!(
                    e,
                    ExecError::Sealed {
                        status: "aborted",
                        ..
                    }
                )
            }),
        ),
        (
            "a retried gated step needs a fresh approval",
            vec![
                (&p.op, done(1)),
                (&p.carol_dba, Command::Approve { step: 2 }),
                (
                    &p.op,
                    Command::Fail {
                        step: 2,
                        note: "lock".into(),
                    },
                ),
                (&p.op, Command::Retry { step: 2 }),
            ],
            &p.op,
            done(2),
            Expect::Err(|e| matches!(e, ExecError::NeedsApproval { .. })),
        ),
        (
            "a note over 64 KiB is refused",
            vec![],
            &p.op,
            Command::Done {
                step: 1,
                note: Some("x".repeat(70_000)),
            },
            Expect::Err(|e| matches!(e, ExecError::Invalid(_))),
        ),
    ];
    for (name, setup, who, cmd, expect) in cases {
        let mut exec = started(&p);
        let mut now = t0();
        for (a, c) in setup {
            now += Duration::minutes(1);
            exec = machine::apply(&exec, &c, a, &policy, now)
                .unwrap_or_else(|e| panic!("{name}: setup {c:?} failed: {e}"))
                .execution;
        }
        let before = exec.clone();
        let got = machine::apply(&exec, &cmd, who, &policy, now + Duration::minutes(1));
        match (&expect, got) {
            (Expect::Ok(kind), Ok(t)) => {
                assert_eq!(t.event.kind, *kind, "{name}");
                assert_eq!(
                    t.execution.rev,
                    before.rev + 1,
                    "{name}: one event per command"
                );
                assert_eq!(t.event.seq, t.execution.rev, "{name}");
            }
            (Expect::Err(pred), Err(e)) => {
                assert!(pred(&e), "{name}: wrong error {e:?}");
                assert!(!e.to_string().is_empty());
            }
            (exp, got) => panic!("{name}: expected {exp:?}, got {got:?}"),
        }
        assert_eq!(exec, before, "{name}: apply must not change its input");
    }
}

#[test]
fn the_walk_seals_after_the_last_step_and_times_each_step() {
    let p = people();
    let policy = Policy::default();
    let mut exec = started(&p);
    let cmds: Vec<(&Actor, Command, i64)> = vec![
        (&p.op, done(1), 3),
        (&p.carol_dba, Command::Approve { step: 2 }, 1),
        (&p.op, done(2), 4),
        (&p.dave_admin, Command::Approve { step: 3 }, 2),
        (&p.op, done(3), 30),
        (
            &p.op,
            Command::Skip {
                step: 4,
                reason: "verified by monitoring".into(),
            },
            1,
        ),
    ];
    let mut now = t0();
    for (a, c, minutes) in cmds {
        now += Duration::minutes(minutes);
        exec = machine::apply(&exec, &c, a, &policy, now)
            .unwrap()
            .execution;
    }
    assert_eq!(exec.status, ExecutionStatus::Completed);
    assert_eq!(exec.sealed_at, Some(now));
    assert_eq!(exec.current(), None);
    let err = machine::apply(&exec, &done(4), &p.op, &policy, now).unwrap_err();
    assert!(err.to_string().contains("sealed"), "{err}");
    let s = ExecutionSummary::of(&exec, now);
    assert_eq!(s.est_minutes, 32);
    assert_eq!(s.actual_minutes, 41.0);
    assert_eq!(s.variance_minutes, 9.0);
    assert_eq!(s.steps[0].actual_minutes, Some(3.0));
    assert_eq!(s.steps[0].variance_minutes, Some(1.0));
    // Step 2 became current at minute 3, was approved at 4 and done at 8.
    assert_eq!(s.steps[1].actual_minutes, Some(5.0));
    assert_eq!(s.steps[2].actual_minutes, Some(32.0));
    assert_eq!(s.steps[2].variance_minutes, Some(12.0));
    assert_eq!(s.steps[3].status, StepStatus::Skipped);
    assert_eq!((s.done, s.skipped, s.failed, s.pending), (3, 1, 0, 0));
    assert_eq!(exec.steps[1].approvals[0].satisfied_as, "dba");
}

#[test]
fn policy_off_lets_the_operator_approve() {
    let p = people();
    let policy = Policy {
        approver_must_differ: false,
    };
    let mut exec = started(&p);
    exec = machine::apply(&exec, &done(1), &p.op, &policy, t0())
        .unwrap()
        .execution;
    // The operator is not a dba: still refused by role.
    assert!(matches!(
        machine::apply(&exec, &Command::Approve { step: 2 }, &p.op, &policy, t0()),
        Err(ExecError::ApproverRole { .. })
    ));
    let mut dba_op = p.op.clone();
    dba_op
        .membership
        .team_roles
        .insert(Name::parse_field("t", "dba").unwrap());
    assert!(machine::apply(&exec, &Command::Approve { step: 2 }, &dba_op, &policy, t0()).is_ok());
}

#[test]
fn an_empty_runbook_is_sealed_at_start() {
    let p = people();
    let mut rb = runbook();
    rb.body.steps.clear();
    let t = machine::start(
        &rb,
        StartParams {
            key: Key::new(KeyKind::Execution, 2),
            operator: p.op.id(),
            change: None,
            incident: None,
            rehearsal: true,
            channel: None,
        },
        t0(),
    );
    assert_eq!(t.execution.status, ExecutionStatus::Completed);
    assert_eq!(t.event.kind, EventKind::Started);
}

fn apply_ok(e: &Execution, cmd: Command, who: &Actor, at: DateTime<Utc>) -> Execution {
    machine::apply(e, &cmd, who, &Policy::default(), at)
        .unwrap_or_else(|err| panic!("{cmd:?} refused: {err}"))
        .execution
}

fn note(step: u32, text: &str, seen_rev: Option<u64>) -> Command {
    Command::Note {
        step,
        text: text.into(),
        seen_rev,
    }
}

#[test]
fn notes_change_no_state_and_are_refused_when_empty_long_repeated_or_misplaced() {
    let p = people();
    let e = started(&p);
    let policy = Policy::default();
    // A note on a step not reached yet, by a member: the machine accepts it (who may act on
    // the run is the permission table's rule).
    let t = machine::apply(
        &e,
        &note(3, "  restore from the 02:00 snapshot ", Some(1)),
        &p.member,
        &policy,
        t0(),
    )
    .unwrap();
    assert_eq!(t.event.kind, EventKind::Noted);
    assert_eq!(t.event.step_order, Some(3));
    assert_eq!(t.execution.rev, 2);
    assert_eq!(
        t.execution.current_index(),
        Some(0),
        "the current step did not move"
    );
    let n = &t.execution.steps[2].notes[0];
    assert_eq!(n.text.as_str(), "restore from the 02:00 snapshot");
    assert_eq!((n.author, n.seq), (p.member.id(), 2));
    let e2 = t.execution;

    // The same text by the same author, made at the revision before it: a repeat.
    let again = machine::apply(
        &e2,
        &note(3, "restore from the 02:00 snapshot", Some(1)),
        &p.member,
        &policy,
        t0(),
    );
    assert!(
        matches!(again, Err(ExecError::DuplicateNote { step: 3, .. })),
        "{again:?}"
    );
    // Made after seeing it (a later, deliberate note), or by someone else: accepted.
    assert!(
        machine::apply(
            &e2,
            &note(3, "restore from the 02:00 snapshot", Some(2)),
            &p.member,
            &policy,
            t0()
        )
        .is_ok()
    );
    assert!(
        machine::apply(
            &e2,
            &note(3, "restore from the 02:00 snapshot", Some(1)),
            &p.op,
            &policy,
            t0()
        )
        .is_ok()
    );

    for (cmd, want) in [
        (note(1, "   ", None), "a note is required"),
        (note(9, "x", None), "has no step 9"),
        (note(0, "x", None), "has no step 0"),
        (
            note(1, &"é".repeat(2_001), None),
            "at most 2000 characters (got 2001)",
        ),
    ] {
        let err = machine::apply(&e2, &cmd, &p.op, &policy, t0()).unwrap_err();
        assert!(err.to_string().contains(want), "{cmd:?}: {err}");
    }
    assert!(
        machine::apply(
            &e2,
            &note(1, &"é".repeat(2_000), None),
            &p.op,
            &policy,
            t0()
        )
        .is_ok()
    );

    // After the seal, a note is still accepted (post-mortem); nothing else is.
    let aborted = apply_ok(
        &e2,
        Command::Abort {
            reason: "window closed".into(),
        },
        &p.op,
        t0(),
    );
    let t = machine::apply(
        &aborted,
        &note(1, "should have waited", None),
        &p.op2,
        &policy,
        t0(),
    )
    .unwrap();
    assert_eq!(t.execution.status, ExecutionStatus::Aborted);
    assert_eq!(t.execution.sealed_at, aborted.sealed_at);
    assert_eq!(
        aborted.note_step_index(),
        Some(0),
        "a note goes to the step the run stopped at"
    );
    assert!(matches!(
        machine::apply(&aborted, &Command::TakeOver, &p.dave_admin, &policy, t0()),
        Err(ExecError::Sealed { .. })
    ));
}

#[test]
fn a_hand_over_moves_who_counts_as_the_operator() {
    let p = people();
    let e = started(&p);
    let policy = Policy::default();
    let e = apply_ok(&e, done(1), &p.op, t0());
    // Handing the run to its own operator changes nothing.
    let same = machine::apply(
        &e,
        &Command::HandOver { to: p.op.id() },
        &p.op,
        &policy,
        t0(),
    );
    assert!(
        matches!(same, Err(ExecError::AlreadyOperator { .. })),
        "{same:?}"
    );
    let at = t0() + Duration::minutes(3);
    let t = machine::apply(
        &e,
        &Command::HandOver { to: p.op2.id() },
        &p.op,
        &policy,
        at,
    )
    .unwrap();
    assert_eq!(t.event.kind, EventKind::HandedOver);
    assert_eq!(t.event.to, Some(p.op2.id()));
    let e = t.execution;
    assert_eq!(e.operator, p.op2.id());
    assert_eq!(e.started_by(), p.op.id());
    let h = &e.handoffs[0];
    assert_eq!(
        (h.from, h.to, h.by, h.at),
        (p.op.id(), p.op2.id(), p.op.id(), at)
    );
    assert!(!h.is_takeover());
    // The operator of this moment may not approve; the one before may (if their role does).
    let e = apply_ok(&e, Command::Approve { step: 2 }, &p.carol_dba, t0());
    let e = apply_ok(&e, done(2), &p.op2, t0());
    let refused = machine::apply(&e, &Command::Approve { step: 3 }, &p.op2, &policy, t0());
    assert!(
        matches!(refused, Err(ExecError::ApproverIsOperator { .. })),
        "{refused:?}"
    );
    // An admin takes over: then the admin may not approve, and otto's approval needs admin.
    let e = apply_ok(&e, Command::TakeOver, &p.dave_admin, t0());
    assert!(e.handoffs[1].is_takeover());
    assert_eq!(e.operator, p.dave_admin.id());
    let refused = machine::apply(
        &e,
        &Command::Approve { step: 3 },
        &p.dave_admin,
        &policy,
        t0(),
    );
    assert!(
        matches!(refused, Err(ExecError::ApproverIsOperator { .. })),
        "{refused:?}"
    );
    let again = machine::apply(&e, &Command::TakeOver, &p.dave_admin, &policy, t0());
    assert!(
        matches!(again, Err(ExecError::AlreadyOperator { .. })),
        "{again:?}"
    );
}
