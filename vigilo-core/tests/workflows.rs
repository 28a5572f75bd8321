//! The product page's five workflows and four troubleshooting cases, end to end through the
//! `Vigilo` service on the in-memory store, plus isolation, conflicts and the audit chain.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{DateTime, Duration};
use vigilo_core::audit::AuditLinks;
use vigilo_core::change::{ChangeAction, ChangeStatus};
use vigilo_core::clock::ManualClock;
use vigilo_core::error::{Error, ErrorKind};
use vigilo_core::execution::machine::Command;
use vigilo_core::execution::{ExecutionStatus, StepStatus};
use vigilo_core::ids::Key;
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::runbook::diff::StepDiffKind;
use vigilo_core::runbook::{RunbookInput, StepInput, VersionSource};
use vigilo_core::service::{
    AuditFilter, AuditVerdict, CreateRunbook, ListRunbooks, NewMember, RunbookSave, SaveAs,
    StartOptions, Vigilo, Who,
};
use vigilo_core::store::Store;
use vigilo_core::testkit::memory::MemoryStore;

struct World {
    v: Vigilo,
    clock: Arc<ManualClock>,
    store: Arc<dyn Store>,
    alice: Who, // owner
    bob: Who,   // operator, sre
    carol: Who, // member, dba
    dave: Who,  // admin
    erin: Who,  // operator
}

async fn world() -> World {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(
        DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
    ));
    let v = Vigilo::with_clock(store.clone(), clock.clone());
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
    let bob = add("bob", WorkspaceRole::Operator, &["sre"]).await;
    let carol = add("carol", WorkspaceRole::Member, &["dba"]).await;
    let dave = add("dave", WorkspaceRole::Admin, &[]).await;
    let erin = add("erin", WorkspaceRole::Operator, &[]).await;
    World {
        v,
        clock,
        store,
        alice,
        bob,
        carol,
        dave,
        erin,
    }
}

fn step(title: &str, est: i64, role: &str, gated: bool) -> StepInput {
    StepInput {
        title: title.into(),
        description: format!("Do *{title}* carefully.\nThen check."),
        est_minutes: est,
        owner_role: role.into(),
        requires_approval: gated,
        is_destructive: gated,
        verification: "curl -sI https://edge.example.com".into(),
        ..Default::default()
    }
}

fn restore_db() -> RunbookInput {
    RunbookInput {
        title: "Restore the orders database".into(),
        description: "From the nightly backup. Dashboard: https://grafana.example.com/d/db".into(),
        category: "database".into(),
        steps: vec![
            step("Announce", 2, "operator", false),
            step("Stop writers", 5, "dba", true),
            step("Restore", 20, "", false),
        ],
    }
}

async fn audit_count(w: &World) -> usize {
    w.v.audit_entries(&w.alice, AuditFilter::default())
        .await
        .unwrap()
        .len()
}

fn key(s: &str) -> Key {
    s.parse().unwrap()
}

#[tokio::test]
async fn workflow_1_author_a_runbook_from_scratch() {
    let w = world().await;
    let before = audit_count(&w).await;
    let rb =
        w.v.create_runbook(&w.bob, restore_db(), CreateRunbook::default())
            .await
            .unwrap();
    assert_eq!(rb.key.to_string(), "RB-00001");
    assert_eq!(rb.version, 1);
    assert!(!rb.is_published);
    assert_eq!(audit_count(&w).await, before + 1);
    // Drafts are visible to their owner, admins and the owner, not to other members.
    assert!(w.v.runbook(&w.bob, rb.key).await.is_ok());
    assert!(w.v.runbook(&w.dave, rb.key).await.is_ok());
    let denied = w.v.runbook(&w.carol, rb.key).await.unwrap_err();
    assert_eq!(denied.kind(), ErrorKind::Denied);
    assert!(
        denied.to_string().contains("owner of the runbook"),
        "{denied}"
    );
    // Lists: published only by default; drafts on request for those who may see them.
    let list = |who| {
        let v = w.v.clone();
        async move {
            v.list_runbooks(
                &who,
                ListRunbooks {
                    drafts: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .len()
        }
    };
    assert_eq!(list(w.bob).await, 1);
    assert_eq!(list(w.erin).await, 0);
    assert_eq!(list(w.carol).await, 0);
    // Members cannot create runbooks.
    let e =
        w.v.create_runbook(&w.carol, restore_db(), CreateRunbook::default())
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    assert!(e.to_string().contains("operator"), "{e}");
    // Publishing: not by another operator, yes by the owner.
    assert_eq!(
        w.v.set_published(&w.erin, rb.key, true)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Denied
    );
    let rb = w.v.set_published(&w.bob, rb.key, true).await.unwrap();
    assert!(rb.is_published);
    assert_eq!(rb.version, 1, "publishing is not an edit");
    assert_eq!(list(w.carol).await, 1);
    // Search finds it by step text.
    let hits = w.v.search_runbooks(&w.carol, "writers", 10).await.unwrap();
    assert_eq!(hits.len(), 1);
    // Invalid input names the field and the limit.
    let mut bad = restore_db();
    bad.steps[1].est_minutes = 20_000;
    let e =
        w.v.create_runbook(&w.bob, bad, CreateRunbook::default())
            .await
            .unwrap_err();
    assert!(
        e.to_string().contains("steps[2].est_minutes") && e.to_string().contains("10080"),
        "{e}"
    );
}

async fn published(w: &World) -> Key {
    let rb =
        w.v.create_runbook(
            &w.bob,
            restore_db(),
            CreateRunbook {
                publish: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    rb.key
}

#[tokio::test]
async fn workflow_2_execute_a_runbook_end_to_end() {
    let w = world().await;
    let rb = published(&w).await;
    let change =
        w.v.create_change(&w.bob, "Restore after corruption", "")
            .await
            .unwrap();
    let inc =
        w.v.create_incident(&w.carol, "Orders DB corrupted")
            .await
            .unwrap();
    let ex =
        w.v.start_execution(
            &w.bob,
            rb,
            StartOptions {
                change: Some(change.key),
                incident: Some(inc.key),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ex.key.to_string(), "EX-00001");
    assert_eq!(ex.runbook_version, 1);
    let before = audit_count(&w).await;
    w.clock.advance(Duration::minutes(3));
    w.v.act(
        &w.bob,
        ex.key,
        Command::Done {
            step: 1,
            note: None,
        },
    )
    .await
    .unwrap();
    // Gated step: Done is refused until approved by a dba; an admin is not a dba.
    let e =
        w.v.act(
            &w.bob,
            ex.key,
            Command::Done {
                step: 2,
                note: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Refused);
    assert!(e.to_string().contains("dba"), "{e}");
    let e =
        w.v.act(&w.dave, ex.key, Command::Approve { step: 2 })
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    assert!(e.to_string().contains("dba"), "{e}");
    w.clock.advance(Duration::minutes(1));
    w.v.act(&w.carol, ex.key, Command::Approve { step: 2 })
        .await
        .unwrap();
    w.clock.advance(Duration::minutes(6));
    w.v.act(
        &w.bob,
        ex.key,
        Command::Done {
            step: 2,
            note: Some("writers stopped".into()),
        },
    )
    .await
    .unwrap();
    w.clock.advance(Duration::minutes(25));
    let out =
        w.v.act(
            &w.bob,
            ex.key,
            Command::Skip {
                step: 3,
                reason: "restored by the DBA team".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(out.execution.status, ExecutionStatus::Completed);
    // Sealed: every later command is refused, saying so.
    let e =
        w.v.act(
            &w.bob,
            ex.key,
            Command::Done {
                step: 3,
                note: None,
            },
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("sealed"), "{e}");
    // One audit entry per state change (done, approve, done, skip), none for refusals.
    assert_eq!(audit_count(&w).await, before + 4);
    let (_, s) = w.v.execution_summary(&w.bob, ex.key).await.unwrap();
    assert_eq!(s.est_minutes, 27);
    assert_eq!(s.actual_minutes, 35.0);
    assert_eq!(s.variance_minutes, 8.0);
    assert_eq!(s.steps[1].actual_minutes, Some(7.0));
    assert_eq!(s.steps[2].status, StepStatus::Skipped);
    // The links surface in the audit log on both sides.
    for target in [change.key.to_string(), inc.key.to_string()] {
        let entries =
            w.v.audit_entries(
                &w.alice,
                AuditFilter {
                    target: Some(target.clone()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(
            entries.iter().any(|e| e.action == "execution.started"),
            "{target}"
        );
        assert!(
            entries.iter().any(|e| e.action == "execution.step_done"),
            "{target}"
        );
    }
    let events = w.v.execution_events(&w.bob, ex.key).await.unwrap();
    assert_eq!(events.len(), 5);
}

#[tokio::test]
async fn workflow_3_import_a_runbook_into_a_change() {
    let w = world().await;
    let rb = published(&w).await;
    let c =
        w.v.create_change(&w.erin, "Quarterly restore drill", "")
            .await
            .unwrap();
    let c = w.v.import_into_change(&w.erin, c.key, rb).await.unwrap();
    assert_eq!(c.tasks.len(), 3);
    let src = c.source.clone().unwrap();
    assert_eq!((src.key, src.version), (rb, 1));
    // The plan is change-owned: edit a task freely.
    let mut t = StepInput::from(&w.v.runbook(&w.erin, rb).await.unwrap().body.steps[0]);
    t.title = "Announce in #ops and #db".into();
    w.v.edit_change_task(&w.erin, c.key, 1, t).await.unwrap();
    assert_eq!(
        w.v.runbook(&w.erin, rb).await.unwrap().body.steps[0]
            .title
            .as_str(),
        "Announce"
    );
    // The source ships a newer version: the banner shows it.
    let mut input = restore_db();
    input.steps.push(step("Verify row counts", 5, "", false));
    w.v.edit_runbook(&w.bob, rb, input, Some(1), VersionSource::Edit)
        .await
        .unwrap();
    let view = w.v.change(&w.erin, c.key).await.unwrap();
    assert_eq!(view.newer_version_available, Some(2));
    let c = w.v.reimport_change(&w.erin, c.key).await.unwrap();
    assert_eq!(c.tasks.len(), 4);
    assert_eq!(c.source.as_ref().unwrap().version, 2);
    assert_eq!(
        w.v.change(&w.erin, c.key)
            .await
            .unwrap()
            .newer_version_available,
        None
    );
}

#[tokio::test]
async fn workflow_4_save_a_change_plan_back_as_a_runbook() {
    let w = world().await;
    let rb = published(&w).await;
    let c =
        w.v.create_change(&w.erin, "Restore with verification", "Adds a check.")
            .await
            .unwrap();
    w.v.import_into_change(&w.erin, c.key, rb).await.unwrap();
    w.v.add_change_task(
        &w.erin,
        c.key,
        step("Verify row counts", 5, "dba", false),
        None,
    )
    .await
    .unwrap();
    // Not completed yet: refused.
    let e =
        w.v.save_change_as_runbook(&w.erin, c.key, SaveAs::Into { runbook: rb })
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Refused);
    assert!(e.to_string().contains("completed"), "{e}");
    // Walk the change: approve (admin), start (gated on a live execution), complete.
    w.v.move_change(&w.dave, c.key, ChangeAction::Approve)
        .await
        .unwrap();
    let e =
        w.v.move_change(&w.erin, c.key, ChangeAction::Start)
            .await
            .unwrap_err();
    assert!(e.to_string().contains("start an execution"), "{e}");
    // A rehearsal does not open the gate; a live execution does.
    w.v.start_execution(
        &w.erin,
        rb,
        StartOptions {
            change: Some(c.key),
            rehearsal: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        w.v.move_change(&w.erin, c.key, ChangeAction::Start)
            .await
            .is_err()
    );
    w.v.start_execution(
        &w.erin,
        rb,
        StartOptions {
            change: Some(c.key),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    w.v.move_change(&w.erin, c.key, ChangeAction::Start)
        .await
        .unwrap();
    let c2 =
        w.v.move_change(&w.erin, c.key, ChangeAction::Complete)
            .await
            .unwrap();
    assert_eq!(c2.status, ChangeStatus::Completed);
    // Another operator (not the change's owner) may not save it.
    let e =
        w.v.save_change_as_runbook(&w.bob, c.key, SaveAs::Into { runbook: rb })
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    // Update the existing runbook: version bump, steps keep their ids, lineage recorded.
    let before = w.v.runbook(&w.erin, rb).await.unwrap();
    let after =
        w.v.save_change_as_runbook(&w.erin, c.key, SaveAs::Into { runbook: rb })
            .await
            .unwrap();
    assert_eq!(after.version, 2);
    assert_eq!(after.body.steps.len(), 4);
    assert_eq!(after.body.steps[0].id, before.body.steps[0].id);
    // Saving the same plan again changes nothing: refused by the rule, nothing recorded.
    match w
        .v
        .save_change_as_runbook(&w.erin, c.key, SaveAs::Into { runbook: rb })
        .await
    {
        Err(Error::Refused(r)) => {
            assert_eq!(r.rule, vigilo_core::error::Rule::NoChange);
            assert!(r.detail.contains("nothing changed"), "{r}");
        }
        other => panic!("{other:?}"),
    }
    let hist = w.v.runbook_history(&w.erin, rb).await.unwrap();
    assert_eq!(
        hist[1].source,
        VersionSource::SaveAsFromChange { change: c.key }
    );
    let lineage =
        w.v.audit_entries(
            &w.alice,
            AuditFilter {
                target: Some(rb.to_string()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let saved = lineage
        .iter()
        .find(|e| e.action == "change.saved_as_runbook")
        .unwrap();
    assert_eq!(saved.links.change, Some(c.key));
    assert_eq!(saved.links.runbook_version, Some(2));
    // Or a new runbook.
    let new =
        w.v.save_change_as_runbook(
            &w.erin,
            c.key,
            SaveAs::New {
                title: "Restore with verification".into(),
                category: "database".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(new.key.to_string(), "RB-00002");
    assert!(!new.is_published);
    assert_eq!(new.body.steps.len(), 4);
    let created =
        w.v.audit_entries(
            &w.alice,
            AuditFilter {
                target: Some(c.key.to_string()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        created
            .iter()
            .any(|e| e.action == "runbook.created" && e.links.runbook == Some(new.key))
    );
}

#[tokio::test]
async fn workflow_5_diff_two_versions() {
    let w = world().await;
    let rb = published(&w).await;
    let mut input = RunbookInput::from(&w.v.runbook(&w.bob, rb).await.unwrap().body);
    input.steps[2].description = "Run pg_restore.\nThen check.".into();
    input.steps.swap(0, 1);
    input.steps.remove(2);
    input.steps.push(step("Verify", 5, "", false));
    w.v.edit_runbook(&w.bob, rb, input, Some(1), VersionSource::Edit)
        .await
        .unwrap();
    let d = w.v.diff_runbook(&w.carol, rb, 1, 2).await.unwrap();
    assert!(!d.is_empty());
    assert_eq!(d.summary.added, 1);
    assert_eq!(d.summary.removed, 1);
    assert_eq!(d.summary.moved, 1);
    assert!(
        d.steps
            .iter()
            .any(|s| s.kind == StepDiffKind::Added && s.title() == "Verify")
    );
    let text = vigilo_core::runbook::render::unified(&d);
    assert!(text.contains("Verify"), "{text}");
    // The same version against itself is empty; an unknown version is not found.
    assert!(
        w.v.diff_runbook(&w.carol, rb, 2, 2)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        w.v.diff_runbook(&w.carol, rb, 1, 9)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn troubleshooting_1_the_import_picker_is_empty() {
    let w = world().await;
    let draft =
        w.v.create_runbook(&w.bob, restore_db(), CreateRunbook::default())
            .await
            .unwrap();
    // The picker lists published runbooks only.
    assert!(
        w.v.list_runbooks(&w.erin, ListRunbooks::default())
            .await
            .unwrap()
            .is_empty()
    );
    let c = w.v.create_change(&w.bob, "Change", "").await.unwrap();
    let e =
        w.v.import_into_change(&w.bob, c.key, draft.key)
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Refused);
    assert!(e.to_string().contains("publish"), "{e}");
    w.v.set_published(&w.bob, draft.key, true).await.unwrap();
    assert_eq!(
        w.v.list_runbooks(&w.erin, ListRunbooks::default())
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        w.v.import_into_change(&w.bob, c.key, draft.key)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn troubleshooting_2_roles_are_checked_at_click_time() {
    let w = world().await;
    let rb = published(&w).await;
    let ex =
        w.v.start_execution(&w.bob, rb, StartOptions::default())
            .await
            .unwrap();
    w.v.act(
        &w.bob,
        ex.key,
        Command::Done {
            step: 1,
            note: None,
        },
    )
    .await
    .unwrap();
    // Erin is an operator without the dba role: denied, naming the role.
    let e =
        w.v.act(&w.erin, ex.key, Command::Approve { step: 2 })
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    assert!(e.to_string().contains("dba"), "{e}");
    // Escalate: give erin the dba role mid-execution; her next click counts.
    w.v.set_member_role(
        &w.alice,
        "erin",
        WorkspaceRole::Operator,
        Some(vec!["dba".into()]),
    )
    .await
    .unwrap();
    w.v.act(&w.erin, ex.key, Command::Approve { step: 2 })
        .await
        .unwrap();
    // And a role taken away mid-execution counts too.
    let ex2 =
        w.v.start_execution(&w.bob, rb, StartOptions::default())
            .await
            .unwrap();
    w.v.act(
        &w.bob,
        ex2.key,
        Command::Done {
            step: 1,
            note: None,
        },
    )
    .await
    .unwrap();
    w.v.set_member_role(&w.alice, "erin", WorkspaceRole::Operator, Some(vec![]))
        .await
        .unwrap();
    assert!(
        w.v.act(&w.erin, ex2.key, Command::Approve { step: 2 })
            .await
            .is_err()
    );
    // The operator who started cannot approve their own gated step (default policy).
    w.v.set_member_role(
        &w.alice,
        "bob",
        WorkspaceRole::Operator,
        Some(vec!["dba".into()]),
    )
    .await
    .unwrap();
    let e =
        w.v.act(&w.bob, ex2.key, Command::Approve { step: 2 })
            .await
            .unwrap_err();
    assert!(e.to_string().contains("operator of this execution"), "{e}");
}

#[tokio::test]
async fn troubleshooting_3_save_as_is_greyed_out() {
    let w = world().await;
    let c = w.v.create_change(&w.erin, "Empty plan", "").await.unwrap();
    w.v.add_change_task(&w.erin, c.key, StepInput::default(), None)
        .await
        .unwrap();
    let e =
        w.v.save_change_as_runbook(
            &w.erin,
            c.key,
            SaveAs::New {
                title: "X".into(),
                category: String::new(),
            },
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("completed"), "{e}");
    w.v.move_change(&w.alice, c.key, ChangeAction::Approve)
        .await
        .unwrap();
    w.v.move_change(&w.erin, c.key, ChangeAction::Start)
        .await
        .unwrap();
    w.v.move_change(&w.erin, c.key, ChangeAction::Complete)
        .await
        .unwrap();
    let e =
        w.v.save_change_as_runbook(
            &w.erin,
            c.key,
            SaveAs::New {
                title: "X".into(),
                category: String::new(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Refused);
    assert!(e.to_string().contains("empty"), "{e}");
}

#[tokio::test]
async fn troubleshooting_4_the_source_banner_disappeared() {
    let w = world().await;
    let rb = published(&w).await;
    let c = w.v.create_change(&w.erin, "Change", "").await.unwrap();
    w.v.import_into_change(&w.erin, c.key, rb).await.unwrap();
    let c = w.v.clear_change_source(&w.erin, c.key).await.unwrap();
    assert!(c.source.is_none());
    assert_eq!(c.tasks.len(), 3, "clearing the source keeps the tasks");
    w.v.edit_runbook(
        &w.bob,
        rb,
        RunbookInput {
            title: "Renamed".into(),
            ..restore_db()
        },
        None,
        VersionSource::Edit,
    )
    .await
    .unwrap();
    let view = w.v.change(&w.erin, c.key).await.unwrap();
    assert!(view.change.source.is_none());
    assert_eq!(
        view.newer_version_available, None,
        "the banner does not come back by itself"
    );
    let e = w.v.reimport_change(&w.erin, c.key).await.unwrap_err();
    assert!(e.to_string().contains("import one first"), "{e}");
    // A new import brings it back.
    let c = w.v.import_into_change(&w.erin, c.key, rb).await.unwrap();
    assert_eq!(c.source.unwrap().version, 2);
}

#[tokio::test]
async fn versions_bump_only_on_change_and_stale_saves_name_the_author() {
    let w = world().await;
    let rb = published(&w).await;
    let before = audit_count(&w).await;
    let same =
        w.v.edit_runbook(&w.bob, rb, restore_db(), Some(1), VersionSource::Edit)
            .await
            .unwrap();
    assert!(!same.changed);
    assert_eq!(same.runbook.version, 1);
    assert_eq!(
        audit_count(&w).await,
        before,
        "a save that changes nothing is not a state change"
    );
    let mut input = restore_db();
    input.description = "Updated".into();
    w.v.edit_runbook(&w.dave, rb, input.clone(), Some(1), VersionSource::Edit)
        .await
        .unwrap();
    input.description = "Mine".into();
    let e =
        w.v.edit_runbook(&w.bob, rb, input, Some(1), VersionSource::Edit)
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(
        e.to_string().contains("@dave") && e.to_string().contains("version 2"),
        "{e}"
    );
    let hist = w.v.runbook_history(&w.bob, rb).await.unwrap();
    assert_eq!(hist.len(), 2);
    assert_eq!(hist[1].author, "dave");
    // Prior bodies are kept.
    let v1 = w.v.runbook_version(&w.bob, rb, 1).await.unwrap();
    assert!(
        v1.body
            .description
            .as_str()
            .starts_with("From the nightly backup")
    );
    // Archived runbooks keep their key, leave lists, refuse edits and executions.
    assert_eq!(
        w.v.archive_runbook(&w.bob, rb).await.unwrap_err().kind(),
        ErrorKind::Denied
    );
    w.v.archive_runbook(&w.dave, rb).await.unwrap();
    assert!(
        w.v.list_runbooks(&w.bob, ListRunbooks::default())
            .await
            .unwrap()
            .is_empty()
    );
    let archived =
        w.v.list_runbooks(
            &w.dave,
            ListRunbooks {
                archived: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(archived[0].key, rb);
    assert!(
        w.v.start_execution(&w.bob, rb, StartOptions::default())
            .await
            .is_err()
    );
    let next =
        w.v.create_runbook(&w.bob, restore_db(), CreateRunbook::default())
            .await
            .unwrap();
    assert_eq!(next.key.to_string(), "RB-00002", "keys are never reused");
}

#[tokio::test]
async fn workspaces_are_isolated() {
    let w = world().await;
    let rb = published(&w).await;
    let ex =
        w.v.start_execution(&w.bob, rb, StartOptions::default())
            .await
            .unwrap();
    let (other_ws, mallory) = w.v.create_workspace("evil", "mallory", "").await.unwrap();
    let mallory = Who::new(other_ws.id, mallory.id);
    // Another workspace's keys behave exactly like keys that do not exist.
    let missing = w.v.runbook(&mallory, key("RB-00077")).await.unwrap_err();
    let theirs = w.v.runbook(&mallory, rb).await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    assert_eq!(theirs.kind(), ErrorKind::NotFound);
    assert_eq!(
        missing.to_string().replace("RB-00077", "RB-?"),
        theirs.to_string().replace("RB-00001", "RB-?")
    );
    let e =
        w.v.act(
            &mallory,
            ex.key,
            Command::Done {
                step: 1,
                note: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    // A member of one workspace is not a member of the other.
    let e =
        w.v.runbook(&Who::new(other_ws.id, w.bob.user), rb)
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    assert!(w.v.member(other_ws.id, "bob").await.is_err());
    // Acting in a workspace one is not a member of is refused as such, whatever the key.
    for k in [ex.key, rb, key("EX-00077")] {
        let e =
            w.v.act(
                &Who::new(other_ws.id, w.bob.user),
                k,
                Command::Done {
                    step: 1,
                    note: None,
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Denied, "{k}: {e}");
        assert!(e.to_string().contains("not a member"), "{k}: {e}");
    }
    // A member naming a runbook key where an execution key belongs is told so.
    let e =
        w.v.act(
            &w.bob,
            rb,
            Command::Done {
                step: 1,
                note: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("is not an execution key"), "{e}");
    // Keys are per workspace.
    let rb2 =
        w.v.create_runbook(&mallory, restore_db(), CreateRunbook::default())
            .await
            .unwrap();
    assert_eq!(rb2.key.to_string(), "RB-00001");
}

#[tokio::test]
async fn double_clicks_apply_once_and_name_who_acted() {
    let w = world().await;
    let rb = published(&w).await;
    let ex =
        w.v.start_execution(&w.bob, rb, StartOptions::default())
            .await
            .unwrap();
    let mut tasks = Vec::new();
    for who in [w.bob, w.erin, w.dave, w.alice, w.bob, w.erin] {
        let v = w.v.clone();
        tasks.push(tokio::spawn(async move {
            v.act(
                &who,
                ex.key,
                Command::Done {
                    step: 1,
                    note: None,
                },
            )
            .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            // A step conflict is the state machine's, with who acted first.
            Err(e @ Error::Execution(_)) if e.kind() == ErrorKind::Conflict => {
                assert!(e.to_string().contains("already marked done by @"), "{e}")
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(w.v.execution_events(&w.bob, ex.key).await.unwrap().len(), 2);
}

#[tokio::test]
async fn the_audit_chain_verifies_and_detects_nothing_wrong() {
    let w = world().await;
    let rb = published(&w).await;
    let ex =
        w.v.start_execution(&w.bob, rb, StartOptions::default())
            .await
            .unwrap();
    w.v.act(
        &w.bob,
        ex.key,
        Command::Abort {
            reason: "drill over".into(),
        },
    )
    .await
    .unwrap();
    match w.v.verify_audit(w.alice.workspace).await.unwrap() {
        AuditVerdict::Intact { entries, head } => {
            assert_eq!(entries as usize, audit_count(&w).await);
            assert!(head.is_some());
        }
        AuditVerdict::Tampered(t) => panic!("{t}"),
    }
    // Queries by actor and time.
    let by_bob =
        w.v.audit_entries(
            &w.alice,
            AuditFilter {
                actor: Some("bob".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(by_bob.iter().all(|e| e.actor == Some(w.bob.user)));
    assert_eq!(by_bob.len(), 3);
    let _ = AuditLinks::default();
    let _ = &w.store;
}

#[tokio::test]
async fn runbook_ownership_can_be_handed_over() {
    let w = world().await;
    let key = published(&w).await;
    let before = w.v.runbook(&w.bob, key).await.unwrap();
    let entries = audit_count(&w).await;

    // An operator who does not own it may not hand it over; nothing changes.
    let denied =
        w.v.set_runbook_owner(&w.erin, key, "carol")
            .await
            .unwrap_err();
    assert_eq!(denied.kind(), ErrorKind::Denied, "{denied}");
    // Someone who is not a member cannot receive it.
    let missing =
        w.v.set_runbook_owner(&w.bob, key, "mallory")
            .await
            .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    assert!(missing.to_string().contains("@mallory"), "{missing}");
    assert_eq!(audit_count(&w).await, entries);

    // carol is a member: she may not own a runbook (an owner edits and publishes it).
    let refused =
        w.v.set_runbook_owner(&w.bob, key, "@carol")
            .await
            .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Refused, "{refused}");
    assert!(
        refused.to_string().contains("@carol is a member"),
        "{refused}"
    );
    assert_eq!(audit_count(&w).await, entries);

    // The owner hands it to erin (an operator): the version stays, one audit entry names both.
    let after = w.v.set_runbook_owner(&w.bob, key, "@erin").await.unwrap();
    assert_eq!(after.version, before.version);
    assert_ne!(after.owner, before.owner);
    assert_eq!(w.v.runbook(&w.erin, key).await.unwrap().owner, after.owner);
    let log =
        w.v.audit_entries(&w.alice, AuditFilter::default())
            .await
            .unwrap();
    assert_eq!(log.len(), entries + 1);
    let last = log.iter().max_by_key(|e| e.seq).unwrap();
    assert_eq!(last.action, "runbook.owner_changed");
    assert_eq!(last.details["from"], "@bob");
    assert_eq!(last.details["to"], "@erin");

    // Handing it to its owner again changes nothing; bob is no longer the owner.
    w.v.set_runbook_owner(&w.erin, key, "erin").await.unwrap();
    assert_eq!(audit_count(&w).await, entries + 1);
    let denied = w.v.set_runbook_owner(&w.bob, key, "bob").await.unwrap_err();
    assert_eq!(denied.kind(), ErrorKind::Denied, "{denied}");
}

#[tokio::test]
async fn saving_several_runbooks_is_all_or_nothing() {
    let w = world().await;
    let key = published(&w).await; // bob's, version 1, published
    let mut edited = restore_db();
    edited.steps[2].est_minutes = 30;
    let entries = audit_count(&w).await;
    let update = |publish, owner: Option<&str>| RunbookSave::Update {
        key,
        input: edited.clone(),
        expected_version: None,
        source: VersionSource::FileSync {
            file: "restore.md".into(),
        },
        publish,
        owner: owner.map(str::to_owned),
    };
    let create = |title: &str| RunbookSave::Create {
        input: RunbookInput {
            title: title.into(),
            ..restore_db()
        },
        options: CreateRunbook::default(),
    };

    // erin (operator, not bob) may create but not edit bob's runbook: nothing at all is saved.
    let denied =
        w.v.save_runbooks(&w.erin, vec![create("New one"), update(None, None)])
            .await
            .unwrap_err();
    assert_eq!(denied.kind(), ErrorKind::Denied, "{denied}");
    // An unknown owner in the last item: the same.
    let missing =
        w.v.save_runbooks(
            &w.bob,
            vec![create("New one"), update(Some(false), Some("mallory"))],
        )
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    assert_eq!(audit_count(&w).await, entries);
    let all = || ListRunbooks {
        drafts: true,
        ..Default::default()
    };
    assert_eq!(w.v.list_runbooks(&w.dave, all()).await.unwrap().len(), 1);

    // A member as the owner in the last item (a file's front matter naming a member): the same.
    let member_owner =
        w.v.save_runbooks(
            &w.bob,
            vec![create("New one"), update(Some(false), Some("carol"))],
        )
        .await
        .unwrap_err();
    assert_eq!(member_owner.kind(), ErrorKind::Refused, "{member_owner}");
    assert_eq!(audit_count(&w).await, entries);

    // bob: a new runbook, and his runbook edited, unpublished and handed to erin, at once.
    let saved =
        w.v.save_runbooks(
            &w.bob,
            vec![create("New one"), update(Some(false), Some("erin"))],
        )
        .await
        .unwrap();
    assert_eq!(saved.len(), 2);
    assert!(saved[0].changed && saved[0].previous_version.is_none());
    assert_eq!(saved[1].previous_version, Some(1));
    assert!(saved[1].changed && saved[1].owner_changed);
    let rb = w.v.runbook(&w.dave, key).await.unwrap();
    assert_eq!((rb.version, rb.is_published), (2, false));
    assert_eq!(rb.owner, saved[1].runbook.owner);
    assert_eq!(rb, saved[1].runbook);
    // One entry per change: created, edited, unpublished, owner changed.
    assert_eq!(audit_count(&w).await, entries + 4);
    assert_eq!(w.v.list_runbooks(&w.dave, all()).await.unwrap().len(), 2);
    assert!(matches!(
        w.v.verify_audit(w.alice.workspace).await.unwrap(),
        AuditVerdict::Intact { .. }
    ));
}
