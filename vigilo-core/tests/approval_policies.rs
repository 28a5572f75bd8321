//! Approval policies end to end through the service and the file format: `approval: N` distinct
//! approvers (the operator not among them by default, the same approver counted once, an
//! approval standing after its approver is demoted), `approval-expires: M` lapses recorded once
//! each when the run is next read or acted on, and what a refused Done says is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{DateTime, Duration};
use vigilo_core::clock::ManualClock;
use vigilo_core::error::{Error, ErrorKind};
use vigilo_core::execution::machine::{Command, ExecError};
use vigilo_core::execution::{EventKind, ExecStep, StepStatus};
use vigilo_core::ids::Key;
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::runbook::diff;
use vigilo_core::runbook::file;
use vigilo_core::runbook::{RunbookInput, StepInput};
use vigilo_core::service::{AuditFilter, CreateRunbook, NewMember, StartOptions, Vigilo, Who};
use vigilo_core::store::Store;
use vigilo_core::testkit::memory::MemoryStore;
use vigilo_core::workspace::Policy;

const FILE: &str = r#"+++
title = "Fail over the primary"
+++

## 1. Promote the replica
- role: dba
- est: 5
- approval: 2
- approval-expires: 30

Promote it.

## 2. Announce
- est: 1
"#;

#[test]
fn the_file_format_reads_and_writes_approval_policies() {
    let f = file::parse("failover.md", FILE).unwrap();
    let s = &f.input.steps[0];
    assert!(s.requires_approval);
    assert_eq!(s.approvals_required, 2);
    assert_eq!(s.approval_expires_minutes, Some(30));
    let body = f.input.clone().validate().unwrap();
    assert_eq!(body.steps[0].approvals_needed(), 2);
    assert_eq!(body.steps[1].approvals_needed(), 0);
    // Canonical form: what was read is written back exactly.
    assert_eq!(file::write(&body, None, None), FILE);
    // `approval: 1` is one approval, written canonically as `required`.
    let one = FILE.replace("- approval: 2\n", "- approval: 1\n");
    let body = file::parse("f.md", &one).unwrap().input.validate().unwrap();
    assert!(
        file::write(&body, None, None).contains("- approval: required\n- approval-expires: 30\n")
    );
}

#[test]
fn bad_approval_policies_name_the_line_and_the_fix() {
    let err = |text: String| file::parse("failover.md", &text).unwrap_err().to_string();
    let e = err(FILE.replace("- approval: 2", "- approval: 0"));
    assert!(
        e.starts_with("failover.md:8: step 1: approval must name at least one approver"),
        "{e}"
    );
    let e = err(FILE.replace("- approval: 2", "- approval: two"));
    assert!(
        e.starts_with("failover.md:8: step 1: approval must be `required`, a number"),
        "{e}"
    );
    let e = err(FILE.replace("- approval: 2", "- approval: 11"));
    assert!(
        e.starts_with("failover.md:8: step 1: approval must be between 1 and 10"),
        "{e}"
    );
    let e = err(FILE.replace("- approval: 2\n", ""));
    assert!(
        e.starts_with("failover.md:8: step 1: approval-expires needs an approval gate"),
        "{e}"
    );
    let e = err(FILE.replace("- approval-expires: 30", "- approval-expires: 0"));
    assert!(
        e.starts_with("failover.md:9: step 1: approval-expires must be between 1 and 10080"),
        "{e}"
    );
    let e = err(FILE.replace("- approval-expires: 30", "- approval-expires: soon"));
    assert!(e.contains("approval-expires must be whole minutes"), "{e}");
    let e = err(FILE.replace("- approval-expires: 30", "- expires: 30"));
    assert!(e.contains("did you mean \"approval-expires\""), "{e}");
    // The library refuses a count or an expiry on a step without a gate, naming the field.
    let e = RunbookInput {
        title: "T".into(),
        steps: vec![StepInput {
            title: "S".into(),
            approvals_required: 2,
            ..StepInput::default()
        }],
        ..RunbookInput::default()
    }
    .validate()
    .unwrap_err();
    assert_eq!(e.field, "steps[1].approvals_required");
}

#[test]
fn a_changed_policy_shows_in_the_diff() {
    let from = file::parse("a.md", FILE).unwrap().input;
    let mut to = from.clone();
    to.steps[0].approvals_required = 3;
    to.steps[0].approval_expires_minutes = None;
    // Same step ids on both sides, as versions of one runbook have.
    let from = from.validate().unwrap();
    let mut to = to.validate().unwrap();
    for (a, b) in from.steps.iter().zip(&mut to.steps) {
        b.id = a.id;
    }
    let d = diff::diff(1, &from, 2, &to);
    let changed = d.steps[0].changed_fields();
    assert_eq!(changed, ["approvals_required", "approval_expires_minutes"]);
    let f = &d.steps[0].fields;
    let text: Vec<String> = f
        .iter()
        .flat_map(|f| f.lines.iter().map(|l| l.text.clone()))
        .collect();
    assert_eq!(text, ["2", "3", "30", "never"]);
}

#[test]
fn an_execution_stored_before_approval_policies_still_reads() {
    let step = r#"{"step":{"id":"0190f0a0-0000-7000-8000-000000000001","title":"S","description":"",
        "owner_role":"","est_minutes":0,"expected_outcome":"","verification":"","rollback_note":"",
        "requires_approval":true,"is_destructive":false},"status":"pending","started_at":null,
        "completed_at":null,"note":null,"actor":null,
        "approval":{"by":"0190f0a0-0000-7000-8000-000000000002","at":"2027-01-15T08:00:00Z","satisfied_as":"admin"},
        "failures":0}"#;
    let s: ExecStep = serde_json::from_str(step).unwrap();
    assert_eq!(s.approvals.len(), 1);
    assert_eq!(s.approvals[0].satisfied_as, "admin");
    assert_eq!(s.step.approvals_needed(), 1);
    let none: ExecStep = serde_json::from_str(&step.replace(
        r#"{"by":"0190f0a0-0000-7000-8000-000000000002","at":"2027-01-15T08:00:00Z","satisfied_as":"admin"}"#,
        "null",
    ))
    .unwrap();
    assert!(none.approvals.is_empty());
    // Written again, it says `approvals`, and reads back the same.
    let again: ExecStep = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(again, s);
}

struct World {
    v: Vigilo,
    clock: Arc<ManualClock>,
    store: Arc<dyn Store>,
    alice: Who, // owner, dba
    bob: Who,   // operator, dba
    carol: Who, // member, dba
    dave: Who,  // admin, dba
}

async fn world() -> World {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(
        DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
    ));
    let v = Vigilo::with_clock(store.clone(), clock.clone());
    let (ws, alice) = v.create_workspace("acme", "alice", "Alice").await.unwrap();
    let alice = Who::new(ws.id, alice.id);
    v.set_member_role(
        &alice,
        "alice",
        WorkspaceRole::Owner,
        Some(vec!["dba".into()]),
    )
    .await
    .unwrap();
    let add = async |handle: &str, role| {
        let (u, _) = v
            .add_member(
                &alice,
                NewMember {
                    handle: handle.into(),
                    display_name: String::new(),
                    role,
                    team_roles: vec!["dba".into()],
                    chat_identity: None,
                },
            )
            .await
            .unwrap();
        Who::new(ws.id, u.id)
    };
    let bob = add("bob", WorkspaceRole::Operator).await;
    let carol = add("carol", WorkspaceRole::Member).await;
    let dave = add("dave", WorkspaceRole::Admin).await;
    World {
        v,
        clock,
        store,
        alice,
        bob,
        carol,
        dave,
    }
}

async fn started(w: &World) -> Key {
    let input = file::parse("failover.md", FILE).unwrap().input;
    let rb =
        w.v.create_runbook(
            &w.alice,
            input,
            CreateRunbook {
                publish: true,
                ..CreateRunbook::default()
            },
        )
        .await
        .unwrap();
    w.v.start_execution(&w.bob, rb.key, StartOptions::default())
        .await
        .unwrap()
        .key
}

fn approve() -> Command {
    Command::Approve { step: 1 }
}

fn done() -> Command {
    Command::Done {
        step: 1,
        note: None,
    }
}

async fn lapse_entries(w: &World) -> usize {
    w.v.audit_entries(&w.alice, AuditFilter::default())
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action == "execution.approval_expired")
        .count()
}

#[tokio::test]
async fn two_distinct_approvers_not_the_operator_and_once_each() {
    let w = world().await;
    let ex = started(&w).await;
    // The operator is not one of the N while approver_must_differ is on.
    let e = w.v.act(&w.bob, ex, approve()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    w.v.act(&w.carol, ex, approve()).await.unwrap();
    // The same approver twice counts once: refused as already done, nothing written.
    let e = w.v.act(&w.carol, ex, approve()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("already approved by @carol"), "{e}");
    // Done says what is still missing.
    let e = w.v.act(&w.bob, ex, done()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Refused);
    assert!(
        e.to_string()
            .contains("needs 2 distinct approvals by team role `dba` before it can be marked done; it has 1 of 2 approvals (@carol)"),
        "{e}"
    );
    // Carol is demoted (she loses `dba`): her approval stands, it was valid when given.
    w.v.set_member_role(&w.alice, "carol", WorkspaceRole::Member, Some(vec![]))
        .await
        .unwrap();
    w.v.act(&w.dave, ex, approve()).await.unwrap();
    // A third approval is not needed.
    let e = w.v.act(&w.alice, ex, approve()).await.unwrap_err();
    assert!(matches!(
        e,
        Error::Execution(ref f) if matches!(f.error, ExecError::AlreadyApproved { .. })
    ));
    let out = w.v.act(&w.bob, ex, done()).await.unwrap();
    let s = &out.execution.steps[0];
    assert_eq!(s.status, StepStatus::Done);
    let roles: Vec<&str> = s
        .approvals
        .iter()
        .map(|a| a.satisfied_as.as_str())
        .collect();
    assert_eq!(roles, ["dba", "dba"]);
    assert_eq!(
        w.v.approvals_text(s).await,
        "2 of 2 approvals (@carol, @dave)"
    );
}

#[tokio::test]
async fn with_approver_must_differ_off_the_operator_may_be_one_of_them() {
    let w = world().await;
    w.v.set_policy(
        &w.alice,
        Policy {
            approver_must_differ: false,
        },
    )
    .await
    .unwrap();
    let ex = started(&w).await;
    w.v.act(&w.bob, ex, approve()).await.unwrap();
    w.v.act(&w.dave, ex, approve()).await.unwrap();
    w.v.act(&w.bob, ex, done()).await.unwrap();
}

#[tokio::test]
async fn approvals_lapse_once_each_when_the_run_is_next_read() {
    let w = world().await;
    let ex = started(&w).await;
    w.v.act(&w.carol, ex, approve()).await.unwrap();
    w.clock.advance(Duration::minutes(10));
    w.v.act(&w.dave, ex, approve()).await.unwrap();
    // 29 minutes after Carol's approval: nothing has lapsed yet.
    w.clock.advance(Duration::minutes(19));
    assert_eq!(
        w.v.execution(&w.alice, ex).await.unwrap().steps[0]
            .approvals
            .len(),
        2
    );
    assert_eq!(lapse_entries(&w).await, 0);
    // At minute 30 Carol's lapses; reading it twice records it once.
    w.clock.advance(Duration::minutes(1));
    let read = w.v.execution(&w.carol, ex).await.unwrap();
    assert_eq!(read.steps[0].approvals.len(), 1);
    assert_eq!(read.steps[0].lapsed.len(), 1);
    w.v.execution(&w.alice, ex).await.unwrap();
    assert_eq!(lapse_entries(&w).await, 1);
    // Done is refused: the step is back to waiting for what it lacks.
    let e = w.v.act(&w.bob, ex, done()).await.unwrap_err();
    assert!(e.to_string().contains("1 of 2 approvals (@dave)"), "{e}");
    // Much later both lapse... Dave's too, by the next action, and each is one entry.
    w.clock.advance(Duration::minutes(60));
    let e = w.v.act(&w.bob, ex, done()).await.unwrap_err();
    assert!(e.to_string().contains("0 of 2 approvals"), "{e}");
    assert_eq!(lapse_entries(&w).await, 2);
    let events = w.v.execution_events(&w.alice, ex).await.unwrap();
    let lapses: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::ApprovalExpired)
        .collect();
    assert_eq!(lapses.len(), 2);
    let t0 = events[0].at;
    assert_eq!(lapses[0].at, t0 + Duration::minutes(30));
    assert_eq!(lapses[1].at, t0 + Duration::minutes(40));
    // The entry: no acting member, and whose approval it was.
    let entries =
        w.v.audit_entries(&w.alice, AuditFilter::default())
            .await
            .unwrap();
    let lapse = entries
        .iter()
        .find(|e| e.action == "execution.approval_expired")
        .unwrap();
    assert_eq!(lapse.actor, None);
    assert_eq!(lapse.details["approver"], "carol");
    assert_eq!(lapse.details["approver_role"], "dba");
    assert_eq!(lapse.details["expires_minutes"], 30);
    // Approving again and done before the next lapse works.
    w.v.act(&w.carol, ex, approve()).await.unwrap();
    w.v.act(&w.dave, ex, approve()).await.unwrap();
    w.clock.advance(Duration::minutes(29));
    w.v.act(&w.bob, ex, done()).await.unwrap();
    // Done first: nothing lapses afterwards.
    w.clock.advance(Duration::minutes(120));
    let after = w.v.execution(&w.alice, ex).await.unwrap();
    assert_eq!(after.steps[0].approvals.len(), 2);
    assert_eq!(lapse_entries(&w).await, 2);
    assert!(matches!(
        w.v.verify_audit(w.alice.workspace).await.unwrap(),
        vigilo_core::service::AuditVerdict::Intact { .. }
    ));
    assert_eq!(
        entries.len() + 3,
        w.store
            .audit(w.alice.workspace, &Default::default())
            .await
            .unwrap()
            .len()
    );
}
