//! Executions on PostgreSQL as header, snapshot and events (schema 4, issue 16), on a real
//! server (`VIGILO_TEST_PG_URL`; without it each test says it was skipped, and passes):
//!
//! - a step writes only the execution's state columns and its event (on both step-transition
//!   paths): the header document and the snapshot row stay as they were written at start;
//! - snapshots are stored once per content within a workspace, never shared across workspaces;
//! - an edit behind Vigilo's back of what an execution is rebuilt from — its snapshot row, its
//!   events, its state columns — is found on read (`StoreError::Corrupt`, naming the
//!   execution), even after the store has cached the snapshot.

#![cfg(all(feature = "postgres", feature = "testkit"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tokio_postgres::NoTls;
use vigilo_core::audit::AuditDraft;
use vigilo_core::execution::machine::{self, Command, StartParams};
use vigilo_core::execution::{Execution, StepStatus};
use vigilo_core::ids::{KeyKind, WorkspaceId};
use vigilo_core::runbook::{RunbookInput, StepInput};
use vigilo_core::service::{CreateRunbook, StartOptions, Vigilo, Who};
use vigilo_core::store::{Commit, Write};
use vigilo_core::store::{ExecutionQuery, Store, StoreError};
use vigilo_store::postgres::{PgOptions, PgStore, ScratchDatabase};

const URL_VAR: &str = "VIGILO_TEST_PG_URL";

fn admin_url(test: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) => Some(url),
        Err(_) => {
            eprintln!(
                "SKIPPED {test}: {URL_VAR} is not set, so there is no PostgreSQL server to test \
                 against. Set {URL_VAR}=postgres://postgres@127.0.0.1:5432/postgres to run it."
            );
            None
        }
    }
}

async fn plain(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A workspace with its owner and a published three-step runbook.
async fn workspace(vigilo: &Vigilo, slug: &str) -> (Who, vigilo_core::ids::Key) {
    let (ws, owner) = vigilo
        .create_workspace(slug, &format!("{slug}-owner"), "Owner")
        .await
        .unwrap();
    let who = Who::new(ws.id, owner.id);
    let rb = vigilo
        .create_runbook(
            &who,
            RunbookInput {
                title: "Restart the API".into(),
                description: String::new(),
                category: "ops".into(),
                steps: ["Drain", "Restart", "Check"]
                    .iter()
                    .map(|t| StepInput {
                        title: (*t).into(),
                        description: format!("{t} it."),
                        est_minutes: 2,
                        ..StepInput::default()
                    })
                    .collect(),
            },
            CreateRunbook {
                publish: true,
                ..CreateRunbook::default()
            },
        )
        .await
        .unwrap();
    (who, rb.key)
}

/// The stored row of an execution: header document, snapshot hash, status, current step, rev.
async fn row(
    c: &tokio_postgres::Client,
    e: &Execution,
) -> (String, String, String, Option<i32>, i64) {
    let r = c
        .query_one(
            "SELECT doc, snapshot, status, current_step, rev FROM executions WHERE id = $1",
            &[&e.id.0],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
}

async fn count(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get(0)
}

/// On both paths (the one-call function and the transaction), a step leaves the header and
/// the snapshot as written at start and moves only the state columns; its event carries its
/// typed columns. Runs of one runbook share one snapshot row; another workspace has its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_writes_only_the_state_columns_and_its_event() {
    let Some(admin) = admin_url("a_step_writes_only_the_state_columns_and_its_event") else {
        return;
    };
    let scratch = ScratchDatabase::create_schema(&admin).await.unwrap();
    let c = plain(scratch.url()).await;
    for (round, one_call) in [(0, true), (1, false)] {
        let store = Arc::new(
            PgStore::connect(
                scratch.url(),
                PgOptions::default()
                    .max_connections(2)
                    .server_side_transitions(one_call),
            )
            .await
            .unwrap(),
        );
        let vigilo = Vigilo::new(store.clone());
        let (who, rb) = workspace(&vigilo, &format!("acme-{round}")).await;
        let (other, _) = workspace(&vigilo, &format!("beta-{round}")).await;
        let snapshots_before = count(&c, "SELECT count(*) FROM execution_snapshots").await;
        let first = vigilo
            .start_execution(&who, rb, StartOptions::default())
            .await
            .unwrap();
        let second = vigilo
            .start_execution(&who, rb, StartOptions::default())
            .await
            .unwrap();
        // The same steps (ids included) run in the other workspace.
        let mut same = store.runbook_by_key(who.workspace, rb).await.unwrap();
        same.workspace = other.workspace;
        let key = store
            .allocate_key(other.workspace, KeyKind::Execution)
            .await
            .unwrap();
        let t = machine::start(
            &same,
            StartParams {
                key,
                operator: other.user,
                change: None,
                incident: None,
                rehearsal: false,
                channel: None,
            },
            vigilo.now(),
        );
        store
            .commit(Commit {
                workspace: other.workspace,
                writes: vec![
                    Write::Execution {
                        execution: t.execution.clone(),
                        expected_rev: None,
                    },
                    Write::StepEvent(t.event),
                ],
                audit: AuditDraft {
                    at: vigilo.now(),
                    actor: None,
                    actor_handle: None,
                    action: "execution.started".into(),
                    target: key.to_string(),
                    details: serde_json::json!({}),
                    links: Default::default(),
                    origin: None,
                },
                acting: None,
            })
            .await
            .unwrap();
        let elsewhere = t.execution;
        assert_eq!(
            store.execution_by_key(other.workspace, key).await.unwrap(),
            elsewhere
        );
        assert_eq!(
            count(&c, "SELECT count(*) FROM execution_snapshots").await,
            snapshots_before + 2,
            "the same steps: one snapshot per workspace, none shared across workspaces"
        );
        let (header, hash, status, current, rev) = row(&c, &first).await;
        assert_eq!((status.as_str(), current, rev), ("running", Some(1), 1));
        assert_eq!(row(&c, &second).await.1, hash, "same steps, same snapshot");
        assert_eq!(row(&c, &elsewhere).await.1, hash, "same content address");
        assert!(!header.contains("\"steps\""), "{header}");

        let acted = vigilo
            .act(
                &who,
                first.key,
                Command::Done {
                    step: 1,
                    note: Some("drained".into()),
                },
            )
            .await
            .unwrap();
        assert_eq!(acted.execution.steps[0].status, StepStatus::Done);
        let (header_after, hash_after, status, current, rev) = row(&c, &first).await;
        assert_eq!(header_after, header, "the header is written once");
        assert_eq!(hash_after, hash);
        assert_eq!((status.as_str(), current, rev), ("running", Some(2), 2));
        let ev = c
            .query_one(
                "SELECT kind, step_id, at, started_at FROM step_events
                 WHERE execution_id = $1 AND seq = 2",
                &[&first.id.0],
            )
            .await
            .unwrap();
        assert_eq!(ev.get::<_, String>(0), "done");
        assert_eq!(
            ev.get::<_, Option<uuid::Uuid>>(1),
            acted.event.step_id.map(|s| s.0)
        );
        assert_eq!(
            ev.get::<_, chrono::DateTime<chrono::Utc>>(2),
            acted.event.at
        );
        assert_eq!(
            ev.get::<_, Option<chrono::DateTime<chrono::Utc>>>(3),
            acted.event.started_at
        );
        for step in 2..=3 {
            vigilo
                .act(&who, first.key, Command::Done { step, note: None })
                .await
                .unwrap();
        }
        let (_, _, status, current, rev) = row(&c, &first).await;
        assert_eq!((status.as_str(), current, rev), ("completed", None, 4));
        assert_eq!(
            count(&c, "SELECT count(*) FROM execution_snapshots").await,
            snapshots_before + 2
        );
        let sealed = store
            .execution_by_key(who.workspace, first.key)
            .await
            .unwrap();
        assert!(sealed.status.is_sealed());
        assert_eq!(sealed.rev, 4);
        store.close();
    }
    drop(c);
    scratch.drop_database().await;
}

/// Whether `got` is a `Corrupt` error naming `key` and containing `words`.
fn assert_corrupt<T: std::fmt::Debug>(got: Result<T, StoreError>, key: &str, words: &str) {
    match got {
        Err(StoreError::Corrupt(m)) => {
            assert!(m.contains(key) && m.contains(words), "{m}");
        }
        other => panic!("expected Corrupt naming {key} ({words}), got {other:?}"),
    }
}

/// Every read of an execution finds an edit of what it is rebuilt from.
async fn every_read_finds_it(store: &PgStore, ws: WorkspaceId, e: &Execution, words: &str) {
    let key = e.key.to_string();
    assert_corrupt(store.execution_by_key(ws, e.key).await, &key, words);
    assert_corrupt(store.execution(ws, e.id).await, &key, words);
    assert_corrupt(
        store.list_executions(ws, &ExecutionQuery::default()).await,
        &key,
        words,
    );
    assert_corrupt(
        store.action_reads(ws, e.operator, e.key).await.execution,
        &key,
        words,
    );
}

/// An edited snapshot row (a step's text changed, or the row gone), a deleted event, and an
/// edited state column are each found on every read, naming the execution; restored, the
/// execution reads back as before. The snapshot is read (and cached) before it is edited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_of_what_an_execution_is_rebuilt_from_are_found() {
    let Some(admin) = admin_url("edits_of_what_an_execution_is_rebuilt_from_are_found") else {
        return;
    };
    let scratch = ScratchDatabase::create_schema(&admin).await.unwrap();
    let store = Arc::new(
        PgStore::connect(scratch.url(), PgOptions::default().max_connections(2))
            .await
            .unwrap(),
    );
    let vigilo = Vigilo::new(store.clone());
    let (who, rb) = workspace(&vigilo, "acme").await;
    let ex = vigilo
        .start_execution(&who, rb, StartOptions::default())
        .await
        .unwrap();
    let ex = vigilo
        .act(
            &who,
            ex.key,
            Command::Done {
                step: 1,
                note: None,
            },
        )
        .await
        .unwrap()
        .execution;
    let ws = who.workspace;
    assert_eq!(store.execution_by_key(ws, ex.key).await.unwrap(), ex);
    let c = plain(scratch.url()).await;
    let hash: String = c
        .query_one("SELECT snapshot FROM executions WHERE id = $1", &[&ex.id.0])
        .await
        .unwrap()
        .get(0);

    // A step's instruction rewritten in the snapshot row.
    let original: String = c
        .query_one(
            "SELECT doc FROM execution_snapshots WHERE hash = $1",
            &[&hash],
        )
        .await
        .unwrap()
        .get(0);
    let edited = original.replace("Restart it.", "Delete the database.");
    assert_ne!(edited, original);
    c.execute(
        "UPDATE execution_snapshots SET doc = $2 WHERE hash = $1",
        &[&hash, &edited],
    )
    .await
    .unwrap();
    every_read_finds_it(&store, ws, &ex, "was edited").await;
    // A fresh store (nothing cached) finds it too.
    let fresh = PgStore::connect(scratch.url(), PgOptions::default().max_connections(1))
        .await
        .unwrap();
    every_read_finds_it(&fresh, ws, &ex, "was edited").await;
    fresh.close();

    // The snapshot row gone.
    c.execute("DELETE FROM execution_snapshots WHERE hash = $1", &[&hash])
        .await
        .unwrap();
    every_read_finds_it(&store, ws, &ex, "is missing").await;
    c.execute(
        "INSERT INTO execution_snapshots (workspace_id, hash, doc) VALUES ($1, $2, $3)",
        &[&ws.0, &hash, &edited],
    )
    .await
    .unwrap();
    c.execute(
        "UPDATE execution_snapshots SET doc = $2 WHERE hash = $1",
        &[&hash, &original],
    )
    .await
    .unwrap();
    assert_eq!(store.execution_by_key(ws, ex.key).await.unwrap(), ex);

    // The last event deleted: the events no longer reach the stored revision.
    let last: String = c
        .query_one(
            "DELETE FROM step_events WHERE execution_id = $1 AND seq = 2 RETURNING doc",
            &[&ex.id.0],
        )
        .await
        .unwrap()
        .get(0);
    every_read_finds_it(&store, ws, &ex, "disagrees with its events").await;
    c.execute(
        "INSERT INTO step_events (execution_id, seq, workspace_id, doc, kind, at)
         VALUES ($1, 2, $2, $3, 'done', now())",
        &[&ex.id.0, &ws.0, &last],
    )
    .await
    .unwrap();
    assert_eq!(store.execution_by_key(ws, ex.key).await.unwrap(), ex);

    // An event that does not fit (a done of a step that was not current).
    let moved = last.replace("\"step_order\":1", "\"step_order\":3");
    assert_ne!(moved, last);
    c.execute(
        "UPDATE step_events SET doc = $2 WHERE execution_id = $1 AND seq = 2",
        &[&ex.id.0, &moved],
    )
    .await
    .unwrap();
    every_read_finds_it(&store, ws, &ex, "cannot be replayed").await;
    c.execute(
        "UPDATE step_events SET doc = $2 WHERE execution_id = $1 AND seq = 2",
        &[&ex.id.0, &last],
    )
    .await
    .unwrap();

    // The status column edited.
    c.execute(
        "UPDATE executions SET status = 'completed' WHERE id = $1",
        &[&ex.id.0],
    )
    .await
    .unwrap();
    every_read_finds_it(&store, ws, &ex, "disagrees with its events").await;
    c.execute(
        "UPDATE executions SET status = 'running' WHERE id = $1",
        &[&ex.id.0],
    )
    .await
    .unwrap();
    assert_eq!(store.execution_by_key(ws, ex.key).await.unwrap(), ex);

    store.close();
    drop(c);
    scratch.drop_database().await;
}
