//! Running together through the `Vigilo` service: notes on any step, hand-over and takeover,
//! and the drift of a run whose runbook got a newer published version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{DateTime, Duration};
use vigilo_core::clock::ManualClock;
use vigilo_core::error::{Error, ErrorKind, Rule};
use vigilo_core::execution::machine::Command;
use vigilo_core::execution::{EventKind, ExecutionStatus};
use vigilo_core::ids::Key;
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::runbook::{RunbookInput, StepInput, VersionSource};
use vigilo_core::service::{AuditFilter, CreateRunbook, NewMember, StartOptions, Vigilo, Who};
use vigilo_core::testkit::memory::MemoryStore;

struct World {
    v: Vigilo,
    clock: Arc<ManualClock>,
    alice: Who, // owner
    bob: Who,   // operator
    carol: Who, // member, dba
    dave: Who,  // admin
    erin: Who,  // operator
}

async fn world() -> World {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(
        DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
    ));
    let v = Vigilo::with_clock(store, clock.clone());
    let (ws, alice) = v.create_workspace("acme", "alice", "Alice").await.unwrap();
    let alice = Who::new(ws.id, alice.id);
    let add = async |handle: &str, role, teams: &[&str]| {
        let (u, _) = v
            .add_member(
                &alice,
                NewMember {
                    handle: handle.into(),
                    display_name: String::new(),
                    role,
                    team_roles: teams.iter().map(|s| s.to_string()).collect(),
                    chat_identity: None,
                },
            )
            .await
            .unwrap();
        Who::new(ws.id, u.id)
    };
    let bob = add("bob", WorkspaceRole::Operator, &[]).await;
    let carol = add("carol", WorkspaceRole::Member, &["dba"]).await;
    let dave = add("dave", WorkspaceRole::Admin, &[]).await;
    let erin = add("erin", WorkspaceRole::Operator, &[]).await;
    World {
        v,
        clock,
        alice,
        bob,
        carol,
        dave,
        erin,
    }
}

fn step(title: &str, gated: bool) -> StepInput {
    StepInput {
        title: title.into(),
        est_minutes: 5,
        owner_role: if gated {
            "operator".into()
        } else {
            String::new()
        },
        requires_approval: gated,
        ..Default::default()
    }
}

fn body() -> RunbookInput {
    RunbookInput {
        title: "Fail over the database".into(),
        steps: vec![
            step("Announce", false),
            step("Promote", true),
            step("Verify", false),
        ],
        ..Default::default()
    }
}

async fn started(w: &World) -> (Key, Key) {
    let rb =
        w.v.create_runbook(
            &w.bob,
            body(),
            CreateRunbook {
                publish: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ex =
        w.v.start_execution(&w.bob, rb.key, StartOptions::default())
            .await
            .unwrap();
    (rb.key, ex.key)
}

async fn audit_actions(w: &World) -> Vec<String> {
    w.v.audit_entries(&w.alice, AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

#[tokio::test]
async fn notes_go_to_any_step_once_each_with_one_audit_entry() {
    let w = world().await;
    let (_, ex) = started(&w).await;
    // Default: the current step. Any step by number. State unchanged.
    let o =
        w.v.add_note(&w.bob, ex, None, "paged the DBA", None)
            .await
            .unwrap();
    assert_eq!(o.event.kind, EventKind::Noted);
    assert_eq!(o.event.step_order, Some(1));
    let o =
        w.v.add_note(&w.erin, ex, Some(3), "check lag", None)
            .await
            .unwrap();
    assert_eq!(o.execution.current_index(), Some(0));
    assert_eq!(o.execution.steps[2].notes[0].text.as_str(), "check lag");
    assert_eq!(
        audit_actions(&w)
            .await
            .iter()
            .filter(|a| *a == "execution.note_added")
            .count(),
        2
    );
    // A member who may not act on bob's run is denied, and nothing is written.
    let before = audit_actions(&w).await.len();
    let err =
        w.v.add_note(&w.carol, ex, None, "hi", None)
            .await
            .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
    // Empty, too long, unknown step: clear refusals.
    let err =
        w.v.add_note(&w.bob, ex, None, "  ", None)
            .await
            .unwrap_err();
    assert!(err.to_string().contains("a note is required"), "{err}");
    let err =
        w.v.add_note(&w.bob, ex, None, &"x".repeat(2_001), None)
            .await
            .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert!(err.to_string().contains("at most 2000 characters"), "{err}");
    let err =
        w.v.add_note(&w.bob, ex, Some(7), "x", None)
            .await
            .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(audit_actions(&w).await.len(), before);

    // A double click: the same note made at the same revision is added once; the second is
    // a conflict that says when the first was added.
    let seen = w.v.execution(&w.bob, ex).await.unwrap().rev;
    w.v.add_note(&w.bob, ex, Some(2), "promote at 14:00", Some(seen))
        .await
        .unwrap();
    w.clock.advance(Duration::seconds(2));
    let err =
        w.v.add_note(&w.bob, ex, Some(2), "promote at 14:00", Some(seen))
            .await
            .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("already added to step 2"), "{err}");
    let exec = w.v.execution(&w.bob, ex).await.unwrap();
    assert_eq!(exec.steps[1].notes.len(), 1);

    // After the seal, notes are still accepted (post-mortem) and the run stays sealed.
    w.v.act(
        &w.bob,
        ex,
        Command::Abort {
            reason: "window closed".into(),
        },
    )
    .await
    .unwrap();
    let o =
        w.v.add_note(&w.bob, ex, None, "retry next window", None)
            .await
            .unwrap();
    assert_eq!(o.execution.status, ExecutionStatus::Aborted);
    assert_eq!(o.event.step_order, Some(1), "the step the run stopped at");
    let err =
        w.v.act(
            &w.bob,
            ex,
            Command::Done {
                step: 1,
                note: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
}

#[tokio::test]
async fn a_hand_over_moves_who_may_act_and_who_may_not_approve() {
    let w = world().await;
    let (_, ex) = started(&w).await;
    w.v.act(
        &w.bob,
        ex,
        Command::Done {
            step: 1,
            note: None,
        },
    )
    .await
    .unwrap();
    // Only the operator (or an admin, the owner) hands over; erin is an operator but not the
    // run's operator.
    let err = w.v.hand_over(&w.erin, ex, "erin").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
    assert!(
        err.to_string()
            .contains("the execution's operator, an admin or the workspace owner"),
        "{err}"
    );
    // To a member who may not execute runbooks: refused, naming the rule.
    let err = w.v.hand_over(&w.bob, ex, "@carol").await.unwrap_err();
    assert!(
        matches!(&err, Error::Refused(r) if r.rule == Rule::CannotOperate),
        "{err:?}"
    );
    assert!(err.to_string().contains("@carol is a member"), "{err}");
    // To an unknown handle: not found.
    let err = w.v.hand_over(&w.bob, ex, "zed").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // To bob himself: refused.
    let err = w.v.hand_over(&w.bob, ex, "bob").await.unwrap_err();
    assert!(err.to_string().contains("already the operator"), "{err}");

    let o = w.v.hand_over(&w.bob, ex, "@erin").await.unwrap();
    assert_eq!(o.event.kind, EventKind::HandedOver);
    assert_eq!(o.execution.operator, w.erin.user);
    // erin is now the operator: she cannot approve her gated step; bob now can.
    let err =
        w.v.act(&w.erin, ex, Command::Approve { step: 2 })
            .await
            .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
    w.v.act(&w.bob, ex, Command::Approve { step: 2 })
        .await
        .unwrap();
    // Takeover: admins and the owner only.
    let err = w.v.take_over(&w.bob, ex).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied, "{err}");
    let o = w.v.take_over(&w.dave, ex).await.unwrap();
    assert_eq!(o.event.kind, EventKind::TakenOver);
    let exec = w.v.execution(&w.bob, ex).await.unwrap();
    assert_eq!(exec.operator, w.dave.user);
    assert_eq!(exec.started_by(), w.bob.user);
    let pairs: Vec<_> = exec.handoffs.iter().map(|h| (h.from, h.to, h.by)).collect();
    assert_eq!(
        pairs,
        vec![
            (w.bob.user, w.erin.user, w.bob.user),
            (w.erin.user, w.dave.user, w.dave.user)
        ]
    );
    // Each is one audit entry naming both operators by handle.
    let entries =
        w.v.audit_entries(&w.alice, AuditFilter::default())
            .await
            .unwrap();
    let handed: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "execution.handed_over" || e.action == "execution.taken_over")
        .collect();
    assert_eq!(handed.len(), 2);
    assert_eq!(handed[0].details["from"], "@bob");
    assert_eq!(handed[0].details["to"], "@erin");
    assert_eq!(handed[1].details["to"], "@dave");
}

#[tokio::test]
async fn a_newer_published_version_is_drift_and_the_run_stays_on_its_own() {
    let w = world().await;
    let (rb, ex) = started(&w).await;
    assert_eq!(w.v.execution_drift(&w.carol, ex).await.unwrap(), None);
    let mut input = body();
    input.steps[1].description = "Use the runbook of the new cluster.".into();
    input.steps.push(step("Tell the team", false));
    w.v.edit_runbook(&w.bob, rb, input, Some(1), VersionSource::Edit)
        .await
        .unwrap();
    let d = w.v.execution_drift(&w.carol, ex).await.unwrap().unwrap();
    assert_eq!((d.run_version, d.newer_version, d.steps_changed), (1, 2, 2));
    assert_eq!(
        d.headline(),
        "v2 was published after this run started: 2 steps changed"
    );
    // The run keeps its version and its steps.
    let exec = w.v.execution(&w.bob, ex).await.unwrap();
    assert_eq!((exec.runbook_version, exec.steps.len()), (1, 3));
    // Unpublished: no newer *published* version.
    w.v.set_published(&w.bob, rb, false).await.unwrap();
    assert_eq!(w.v.execution_drift(&w.bob, ex).await.unwrap(), None);
}
