//! Group commit: concurrent commits share transactions, each succeeds or fails on its own, and
//! the audit chain stays whole. Also: another process holding the lock is waited out, or
//! reported as `Unavailable` with nothing applied.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{
    TempStore, as_if_read_at, bump_execution, commit, insert_execution, new_execution, setup,
    verified_chain,
};
use rusqlite::Connection;
use vigilo_core::ids::KeyKind;
use vigilo_core::store::{Store, StoreError};
use vigilo_store::{SqliteOptions, SqliteStore};

/// The write lock of the database file, held by another connection as another process would.
struct ExternalLock(Connection);

impl ExternalLock {
    fn take(path: &Path) -> Self {
        let c = Connection::open(path).unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        Self(c)
    }

    fn release(self) {
        self.0.execute_batch("COMMIT").unwrap();
    }
}

/// Lets spawned tasks reach the writer's queue.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_on_different_executions_all_succeed_and_the_chain_verifies() {
    let store = Arc::new(TempStore::new().await);
    let ctx = Arc::new(setup(&**store, "ops").await);
    let executions: Vec<_> = (1..=64).map(|n| new_execution(&ctx, n)).collect();

    // Inserts, queued while another process holds the lock: they must share few transactions.
    let before = store.sqlite().write_stats();
    let lock = ExternalLock::take(&store.path());
    let tasks: Vec<_> = executions
        .iter()
        .map(|e| {
            let (store, ctx, write) = (Arc::clone(&store), Arc::clone(&ctx), insert_execution(e));
            tokio::spawn(async move { commit(&**store, ctx.id(), write).await })
        })
        .collect();
    settle().await;
    lock.release();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let after = store.sqlite().write_stats();
    assert_eq!(after.writes - before.writes, 64);
    assert!(
        after.transactions - before.transactions <= 2,
        "64 queued commits should be grouped: {before:?} -> {after:?}"
    );

    // Updates, free-running.
    let tasks: Vec<_> = executions
        .iter()
        .map(|e| {
            let (store, ctx, write) = (Arc::clone(&store), Arc::clone(&ctx), bump_execution(e));
            tokio::spawn(async move { commit(&**store, ctx.id(), write).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for e in &executions {
        assert_eq!(store.execution(ctx.id(), e.id).await.unwrap().rev, 2);
    }
    assert_eq!(verified_chain(&**store, ctx.id()).await, 1 + 64 + 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_commit_among_concurrent_ones_fails_alone() {
    let store = Arc::new(TempStore::new().await);
    let ctx = Arc::new(setup(&**store, "ops").await);
    let target = new_execution(&ctx, 1000);
    commit(&**store, ctx.id(), insert_execution(&target))
        .await
        .unwrap();

    let before = store.sqlite().write_stats();
    let lock = ExternalLock::take(&store.path());
    // A first commit that the writer takes alone and that waits for the lock…
    let first = {
        let (store, ctx) = (Arc::clone(&store), Arc::clone(&ctx));
        tokio::spawn(async move { commit(&**store, ctx.id(), vec![]).await })
    };
    settle().await;
    // …so that everything queued meanwhile lands in the next batch, the bad commit among it.
    let orphan = new_execution(&ctx, 2000);
    let stale = as_if_read_at(bump_execution(&target), 7);
    let mut tasks = Vec::new();
    for n in 1..=32u64 {
        let (store, ctx) = (Arc::clone(&store), Arc::clone(&ctx));
        let writes = if n == 16 {
            // Inserts a row, then fails: the insert must be rolled back with it.
            [insert_execution(&orphan), stale.clone()].concat()
        } else {
            insert_execution(&new_execution(&ctx, n))
        };
        tasks.push(tokio::spawn(async move {
            commit(&**store, ctx.id(), writes).await
        }));
    }
    // A key allocation rides in the same batch.
    let key = {
        let (store, ctx) = (Arc::clone(&store), Arc::clone(&ctx));
        tokio::spawn(async move { store.allocate_key(ctx.id(), KeyKind::Runbook).await })
    };
    settle().await;
    lock.release();

    first.await.unwrap().unwrap();
    for (i, t) in tasks.into_iter().enumerate() {
        let result = t.await.unwrap();
        if i + 1 == 16 {
            assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
        } else {
            result.unwrap();
        }
    }
    assert_eq!(key.await.unwrap().unwrap().number, 1);
    let after = store.sqlite().write_stats();
    assert_eq!(after.writes - before.writes, 1 + 33);
    assert_eq!(
        after.transactions - before.transactions,
        2,
        "the first commit alone, then the 33 queued requests in one transaction"
    );

    assert!(matches!(
        store.execution(ctx.id(), orphan.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.execution(ctx.id(), target.id).await.unwrap(), target);
    // setup, target, first, and the 31 good ones; no gap where the bad one was.
    assert_eq!(verified_chain(&**store, ctx.id()).await, 1 + 1 + 1 + 31);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_past_the_retries_is_unavailable_and_applies_nothing() {
    let options = SqliteOptions::default()
        .busy_timeout(Duration::from_millis(50))
        .busy_retries(1);
    let store = Arc::new(TempStore::with_options(options).await);
    let ctx = setup(&**store, "ops").await;
    let e = new_execution(&ctx, 1);

    let lock = ExternalLock::take(&store.path());
    let result = commit(&**store, ctx.id(), insert_execution(&e)).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable { .. })),
        "{result:?}"
    );
    let key = store.allocate_key(ctx.id(), KeyKind::Change).await;
    assert!(
        matches!(key, Err(StoreError::Unavailable { .. })),
        "{key:?}"
    );
    lock.release();

    assert!(matches!(
        store.execution(ctx.id(), e.id).await,
        Err(StoreError::NotFound(_))
    ));
    commit(&**store, ctx.id(), insert_execution(&e))
        .await
        .unwrap();
    assert_eq!(
        store
            .allocate_key(ctx.id(), KeyKind::Change)
            .await
            .unwrap()
            .number,
        1
    );
    assert_eq!(verified_chain(&**store, ctx.id()).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_briefly_by_another_process_is_waited_out() {
    let store = TempStore::new().await;
    let ctx = setup(&*store, "ops").await;
    let lock = ExternalLock::take(&store.path());
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        lock.release();
    });
    commit(&*store, ctx.id(), insert_execution(&new_execution(&ctx, 1)))
        .await
        .unwrap();
    release.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_share_counters_and_the_chain() {
    // Two stores = two write connections with their own writer threads, as two processes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let first: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&path, SqliteOptions::default())
            .await
            .unwrap(),
    );
    let second: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&path, SqliteOptions::default())
            .await
            .unwrap(),
    );
    let ctx = Arc::new(setup(&*first, "ops").await);

    let mut tasks = Vec::new();
    for i in 0..100u64 {
        let ctx = Arc::clone(&ctx);
        let store = Arc::clone(if i % 2 == 0 { &first } else { &second });
        tasks.push(tokio::spawn(async move {
            let key = store
                .allocate_key(ctx.id(), KeyKind::Execution)
                .await
                .unwrap();
            commit(
                &*store,
                ctx.id(),
                insert_execution(&new_execution(&ctx, key.number)),
            )
            .await
            .unwrap();
            key.number
        }));
    }
    let mut numbers = Vec::new();
    for t in tasks {
        numbers.push(t.await.unwrap());
    }
    numbers.sort_unstable();
    assert_eq!(
        numbers,
        (1..=100).collect::<Vec<_>>(),
        "every key handed out once"
    );
    assert_eq!(verified_chain(&*first, ctx.id()).await, 101);
    assert_eq!(verified_chain(&*second, ctx.id()).await, 101);
}
