//! Human keys: allocation per kind and workspace, under concurrency.

use crate::ids::{Key, KeyKind, WorkspaceId};
use crate::store::{Store, Write};

use super::fixtures::*;

/// Keys start at 1 and rise by one per kind and per workspace, independently; a key whose
/// creation failed is not handed out again; an unknown workspace is refused.
pub async fn allocate_key_monotonic(store: &dyn Store) {
    let a = setup(store, "ops").await;
    let b = setup(store, "dev").await;
    let next = move |ws: WorkspaceId, kind: KeyKind| async move {
        store.allocate_key(ws, kind).await.unwrap()
    };
    assert_eq!(
        next(a.id(), KeyKind::Runbook).await,
        Key::new(KeyKind::Runbook, 1)
    );
    assert_eq!(
        next(a.id(), KeyKind::Runbook).await,
        Key::new(KeyKind::Runbook, 2)
    );
    assert_eq!(
        next(a.id(), KeyKind::Change).await,
        Key::new(KeyKind::Change, 1)
    );
    assert_eq!(
        next(a.id(), KeyKind::Runbook).await,
        Key::new(KeyKind::Runbook, 3)
    );
    assert_eq!(
        next(a.id(), KeyKind::Incident).await,
        Key::new(KeyKind::Incident, 1)
    );
    assert_eq!(
        next(a.id(), KeyKind::Execution).await,
        Key::new(KeyKind::Execution, 1)
    );
    assert_eq!(
        next(b.id(), KeyKind::Runbook).await,
        Key::new(KeyKind::Runbook, 1)
    );
    assert_eq!(
        next(b.id(), KeyKind::Execution).await,
        Key::new(KeyKind::Execution, 1)
    );
    assert_eq!(
        next(a.id(), KeyKind::Incident).await,
        Key::new(KeyKind::Incident, 2)
    );

    // A key spent on a failed insert stays spent.
    let key = next(a.id(), KeyKind::Runbook).await;
    assert_eq!(key.number, 4);
    let mut rb = new_runbook(&a, key, simple_body("Never stored"), &a.alice, true);
    rb.rev = 7;
    assert!(
        try_commit(
            store,
            a.id(),
            vec![Write::Runbook {
                runbook: rb,
                expected_rev: Some(6),
            }],
        )
        .await
        .is_err()
    );
    assert_eq!(
        next(a.id(), KeyKind::Runbook).await,
        Key::new(KeyKind::Runbook, 5)
    );
    assert!(
        store
            .allocate_key(WorkspaceId::new(), KeyKind::Runbook)
            .await
            .is_err(),
        "keys of a workspace that does not exist are refused"
    );
}

/// 50 concurrent callers get 50 distinct keys, exactly 1 to 50, and the next caller gets 51.
pub async fn allocate_key_concurrent(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let ws = ctx.id();
    let mut got: Vec<u64> = parallel(50, move |_| async move {
        store
            .allocate_key(ws, KeyKind::Execution)
            .await
            .unwrap()
            .number
    });
    got.sort_unstable();
    assert_eq!(
        got,
        (1..=50).collect::<Vec<u64>>(),
        "50 concurrent keys are 1..=50, none twice"
    );
    assert_eq!(
        store
            .allocate_key(ws, KeyKind::Execution)
            .await
            .unwrap()
            .number,
        51
    );
    assert_eq!(
        store
            .allocate_key(ws, KeyKind::Runbook)
            .await
            .unwrap()
            .number,
        1
    );
}
