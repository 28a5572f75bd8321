//! Approval lapses are recorded exactly once however many readers race past their moment: two
//! services over two stores on one database (two `SqliteStore`s on one file, each with its own
//! writer and cache, as two processes have; and two `PgStore`s with pools of their own on one
//! PostgreSQL schema, as two replicas have) read and act on a run whose approvals lapsed, many
//! times at once. Each lapse is one `approval_expired` event and one audit entry, and the chain
//! verifies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{DateTime, Duration};
use vigilo_core::clock::ManualClock;
use vigilo_core::execution::EventKind;
use vigilo_core::execution::machine::Command;
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::runbook::{RunbookInput, StepInput};
use vigilo_core::service::{AuditVerdict, CreateRunbook, NewMember, StartOptions, Vigilo, Who};
use vigilo_core::store::{AuditQuery, Store};
use vigilo_store::{SqliteOptions, SqliteStore};

/// Readers racing per service.
const READERS: usize = 12;

async fn race(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let clock = Arc::new(ManualClock::new(
        DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
    ));
    let va = Vigilo::with_clock(a.clone(), clock.clone());
    let vb = Vigilo::with_clock(b, clock.clone());
    let (ws, alice) = va.create_workspace("ops", "alice", "Alice").await.unwrap();
    let alice = Who::new(ws.id, alice.id);
    let add = async |handle: &str| {
        let (u, _) = va
            .add_member(
                &alice,
                NewMember {
                    handle: handle.into(),
                    display_name: String::new(),
                    role: WorkspaceRole::Admin,
                    team_roles: Vec::new(),
                    chat_identity: None,
                },
            )
            .await
            .unwrap();
        Who::new(ws.id, u.id)
    };
    let (carol, dave) = (add("carol").await, add("dave").await);
    let input = RunbookInput {
        title: "Fail over".into(),
        steps: vec![
            StepInput {
                title: "Promote".into(),
                requires_approval: true,
                approvals_required: 2,
                approval_expires_minutes: Some(5),
                ..StepInput::default()
            },
            StepInput {
                title: "Announce".into(),
                ..StepInput::default()
            },
        ],
        ..RunbookInput::default()
    };
    let rb = va
        .create_runbook(
            &alice,
            input,
            CreateRunbook {
                publish: true,
                ..CreateRunbook::default()
            },
        )
        .await
        .unwrap();
    let ex = va
        .start_execution(&alice, rb.key, StartOptions::default())
        .await
        .unwrap();
    va.act(&carol, ex.key, Command::Approve { step: 1 })
        .await
        .unwrap();
    clock.advance(Duration::minutes(1));
    vb.act(&dave, ex.key, Command::Approve { step: 1 })
        .await
        .unwrap();
    // Both approvals have lapsed by now; nobody has looked yet.
    clock.advance(Duration::minutes(10));

    let mut tasks = Vec::new();
    for i in 0..READERS * 2 {
        let v = if i % 2 == 0 { va.clone() } else { vb.clone() };
        let key = ex.key;
        tasks.push(tokio::spawn(async move {
            if i % 3 == 0 {
                // Acting meets the step as it stands once the lapses are recorded.
                let e = v
                    .act(
                        &alice,
                        key,
                        Command::Done {
                            step: 1,
                            note: None,
                        },
                    )
                    .await
                    .unwrap_err();
                assert!(e.to_string().contains("0 of 2 approvals"), "{e}");
            } else {
                let read = v.execution(&alice, key).await.unwrap();
                assert!(read.steps[0].approvals.is_empty());
                assert_eq!(read.steps[0].lapsed.len(), 2);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    let events = a.step_events(ws.id, ex.id).await.unwrap();
    let lapses: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::ApprovalExpired)
        .map(|e| (e.actor, e.at))
        .collect();
    let t0 = events[0].at;
    assert_eq!(
        lapses,
        [
            (carol.user, t0 + Duration::minutes(5)),
            (dave.user, t0 + Duration::minutes(6)),
        ]
    );
    let entries = a
        .audit(
            ws.id,
            &AuditQuery {
                limit: 10_000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let recorded = entries
        .iter()
        .filter(|e| e.action == "execution.approval_expired")
        .count();
    assert_eq!(recorded, 2, "one entry per lapse");
    assert!(matches!(
        va.verify_audit(ws.id).await.unwrap(),
        AuditVerdict::Intact { .. }
    ));
    // Both stores rebuild the same execution.
    let (ra, rb_) = (
        va.execution(&alice, ex.key).await.unwrap(),
        vb.execution(&carol, ex.key).await.unwrap(),
    );
    assert_eq!(ra, rb_);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sqlite_stores_on_one_file_record_each_lapse_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vigilo.db");
    let a = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    let b = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    race(Arc::new(a), Arc::new(b)).await;
}

#[cfg(all(feature = "postgres", feature = "testkit"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_replicas_record_each_lapse_once() {
    use vigilo_store::postgres::{PgOptions, PgStore, ScratchDatabase};
    const URL_VAR: &str = "VIGILO_TEST_PG_URL";
    let Ok(admin) = std::env::var(URL_VAR) else {
        eprintln!(
            "SKIPPED two_postgres_replicas_record_each_lapse_once: {URL_VAR} is not set. Set \
             {URL_VAR}=postgres://postgres@127.0.0.1:5432/postgres to run it."
        );
        return;
    };
    let scratch = ScratchDatabase::create_schema(&admin).await.unwrap();
    let replica = async |name: &str| {
        let options = PgOptions::default()
            .max_connections(4)
            .application_name(name);
        Arc::new(PgStore::connect(scratch.url(), options).await.unwrap())
    };
    let (a, b) = (replica("replica-a").await, replica("replica-b").await);
    race(a, b).await;
}
