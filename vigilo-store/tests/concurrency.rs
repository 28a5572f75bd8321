//! Optimistic concurrency under load: many callers updating one row from the same revision get
//! exactly one winner, whether their commits share a transaction or not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    TempStore, bump_execution_with, commit, insert_execution, new_execution, setup, verified_chain,
};
use rusqlite::Connection;
use vigilo_core::store::StoreError;

async fn hundred_updates_from_one_revision(hold_lock: bool) {
    let store = Arc::new(TempStore::new().await);
    let ctx = Arc::new(setup(&**store, "ops").await);
    let e = new_execution(&ctx, 1);
    commit(&**store, ctx.id(), insert_execution(&e))
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
            let writes = bump_execution_with(&e, &format!("update {i}"));
            tokio::spawn(async move { commit(&**store, ctx.id(), writes).await })
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
    let note = stored.steps[0].note.as_ref().map(|n| n.as_str().to_owned());
    assert!(note.is_some_and(|n| n.starts_with("update ")));
    assert_eq!(store.step_events(ctx.id(), e.id).await.unwrap().len(), 2);
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
