//! Optimistic concurrency under load: many callers updating one row from the same revision get
//! exactly one winner, whether their commits share a transaction or not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TempStore, commit, insert_execution, new_execution, setup, verified_chain};
use rusqlite::Connection;
use vigilo_core::store::{StoreError, Write};

async fn hundred_updates_from_one_revision(hold_lock: bool) {
    let store = Arc::new(TempStore::new().await);
    let ctx = Arc::new(setup(&**store, "ops").await);
    let e = new_execution(&ctx, 1);
    commit(&**store, ctx.id(), vec![insert_execution(&e)])
        .await
        .unwrap();

    // Optionally hold the write lock while the updates queue, so they land in one batch.
    let lock = hold_lock.then(|| {
        let c = Connection::open(store.path()).unwrap();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        c
    });
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let (store, ctx) = (Arc::clone(&store), Arc::clone(&ctx));
            let mut next = e.clone();
            next.rev = 2;
            next.title = format!("update {i}");
            tokio::spawn(async move {
                commit(
                    &**store,
                    ctx.id(),
                    vec![Write::Execution {
                        execution: next,
                        expected_rev: Some(1),
                    }],
                )
                .await
            })
        })
        .collect();
    if let Some(c) = lock {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.execute_batch("COMMIT").unwrap();
    }

    let (mut ok, mut conflicts) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict(_)) => conflicts += 1,
            Err(other) => panic!("expected Ok or Conflict, got {other:?}"),
        }
    }
    assert_eq!((ok, conflicts), (1, 99));
    let stored = store.execution(ctx.id(), e.id).await.unwrap();
    assert_eq!(stored.rev, 2);
    assert!(stored.title.starts_with("update "));
    // setup, insert, and the one winning update.
    assert_eq!(verified_chain(&**store, ctx.id()).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_updates_of_one_execution_have_one_winner() {
    hundred_updates_from_one_revision(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_updates_in_one_batch_have_one_winner() {
    hundred_updates_from_one_revision(true).await;
}
