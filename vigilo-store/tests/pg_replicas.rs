//! Two replicas of the service (two `PgStore`s with pools of their own, as two processes would
//! have) receive the same step commands for the same executions at the same moment — a chat
//! platform redelivering a click to both — on one PostgreSQL database (`VIGILO_TEST_PG_URL`).
//!
//! Every step transition must be applied exactly once (the other replica is told it was
//! already done), every execution must end completed with one event per transition, and the
//! workspace's audit chain must verify with one entry per applied transition. Without
//! `VIGILO_TEST_PG_URL` the test says it was skipped, and passes.

#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use vigilo_core::audit;
use vigilo_core::execution::machine::Command;
use vigilo_core::execution::{EventKind, ExecutionStatus, StepStatus};
use vigilo_core::runbook::{RunbookInput, StepInput};
use vigilo_core::service::{CreateRunbook, StartOptions, Vigilo, Who};
use vigilo_core::store::{AuditQuery, Store};
use vigilo_store::postgres::{PgOptions, PgStore, ScratchDatabase};

const URL_VAR: &str = "VIGILO_TEST_PG_URL";
const EXECUTIONS: usize = 6;
const STEPS: u32 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_apply_each_step_transition_exactly_once() {
    let Ok(admin) = std::env::var(URL_VAR) else {
        println!(
            "SKIPPED two_replicas_apply_each_step_transition_exactly_once: {URL_VAR} is not set, \
             so there is no PostgreSQL server to test against. Set \
             {URL_VAR}=postgres://postgres@127.0.0.1:5432/postgres to run it."
        );
        return;
    };
    let scratch = ScratchDatabase::create_schema(&admin).await.unwrap();
    let replica = |name: &str| {
        let url = scratch.url().to_owned();
        let options = PgOptions::default()
            .max_connections(4)
            .application_name(name);
        async move { Arc::new(PgStore::connect(&url, options).await.unwrap()) }
    };
    let (store_a, store_b) = (replica("replica-a").await, replica("replica-b").await);
    let a = Vigilo::new(store_a.clone());
    let b = Vigilo::new(store_b.clone());

    let (ws, owner) = a.create_workspace("ops", "alice", "Alice").await.unwrap();
    let who = Who::new(ws.id, owner.id);
    let input = RunbookInput {
        title: "Rotate the certificates".into(),
        description: String::new(),
        category: "security".into(),
        steps: (1..=STEPS)
            .map(|i| StepInput {
                title: format!("Step {i}"),
                est_minutes: 1,
                ..StepInput::default()
            })
            .collect(),
    };
    let rb = a
        .create_runbook(
            &who,
            input,
            CreateRunbook {
                publish: true,
                ..CreateRunbook::default()
            },
        )
        .await
        .unwrap();
    let mut keys = Vec::new();
    for i in 0..EXECUTIONS {
        // Started on alternating replicas.
        let service = if i % 2 == 0 { &a } else { &b };
        let ex = service
            .start_execution(&who, rb.key, StartOptions::default())
            .await
            .unwrap();
        keys.push(ex.key);
    }
    let entries_before = store_a
        .audit(ws.id, &AuditQuery::default())
        .await
        .unwrap()
        .len();

    // Every execution walks its steps; each "done" goes to both replicas at once.
    let walks: Vec<_> = keys
        .iter()
        .map(|&key| {
            let (a, b) = (a.clone(), b.clone());
            tokio::spawn(async move {
                let mut applied = 0;
                for step in 1..=STEPS {
                    let cmd = Command::Done { step, note: None };
                    let (ra, rb) =
                        tokio::join!(a.act(&who, key, cmd.clone()), b.act(&who, key, cmd));
                    let wins = usize::from(ra.is_ok()) + usize::from(rb.is_ok());
                    assert_eq!(
                        wins, 1,
                        "{key} step {step}: exactly one replica applies it ({ra:?} / {rb:?})"
                    );
                    applied += wins;
                }
                applied
            })
        })
        .collect();
    let mut applied = 0;
    for w in walks {
        applied += w.await.unwrap();
    }
    assert_eq!(applied, EXECUTIONS * STEPS as usize);

    for key in &keys {
        // Read through the other replica than the one that created the workspace.
        let ex = store_b.execution_by_key(ws.id, *key).await.unwrap();
        assert_eq!(ex.status, ExecutionStatus::Completed, "{key}");
        assert!(ex.steps.iter().all(|s| s.status == StepStatus::Done));
        assert_eq!(
            ex.rev,
            1 + u64::from(STEPS),
            "{key}: one revision per transition"
        );
        let events = store_b.step_events(ws.id, ex.id).await.unwrap();
        assert_eq!(
            events.len(),
            1 + STEPS as usize,
            "{key}: one event per transition"
        );
        let done: Vec<u32> = events
            .iter()
            .filter(|e| e.kind == EventKind::Done)
            .filter_map(|e| e.step_order)
            .collect();
        assert_eq!(
            done,
            (1..=STEPS).collect::<Vec<_>>(),
            "{key}: each step done once, in order"
        );
    }
    let chain = store_b.audit(ws.id, &AuditQuery::default()).await.unwrap();
    assert_eq!(audit::verify(&chain).unwrap(), chain.len() as u64);
    assert_eq!(
        chain.len() - entries_before,
        EXECUTIONS * STEPS as usize,
        "one audit entry per applied transition"
    );
    let seqs: Vec<u64> = chain.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=chain.len() as u64).collect::<Vec<_>>());

    drop((a, b, store_a, store_b));
    scratch.drop_database().await;
}
