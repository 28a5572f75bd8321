//! Change requests and incidents.

use crate::change::{self, ChangeStatus};
use crate::fields::Title;
use crate::ids::{Key, KeyKind};
use crate::incident::IncidentStatus;
use crate::store::{Store, Write};

use super::fixtures::*;

/// A change reads back by id and key and lists by key; updates need the right revision; a taken
/// key is `AlreadyExists`; missing rows are `NotFound`.
pub async fn change_round_trip(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let rb = add_runbook(
        store,
        &ctx,
        simple_body("Upgrade Postgres"),
        &ctx.alice,
        true,
    )
    .await;
    let cr1 = add_change(store, &ctx, "Upgrade Postgres to 17").await;
    let cr2 = add_change(store, &ctx, "Rotate certificates").await;
    assert_eq!(store.change(ctx.id(), cr1.id).await.unwrap(), cr1);
    assert_eq!(store.change_by_key(ctx.id(), cr2.key).await.unwrap(), cr2);
    assert_eq!(
        store.list_changes(ctx.id()).await.unwrap(),
        vec![cr1.clone(), cr2.clone()]
    );

    let mut imported = change::import_runbook(&cr1, &rb).unwrap();
    imported.status = ChangeStatus::Approved;
    imported.rev = 2;
    imported.updated_at = now();
    commit_ok(
        store,
        ctx.id(),
        vec![Write::Change {
            change: imported.clone(),
            expected_rev: Some(1),
        }],
        draft_by(&ctx.alice, "change.approved", &cr1.key.to_string()),
    )
    .await;
    assert_eq!(store.change(ctx.id(), cr1.id).await.unwrap(), imported);

    let mut stale = cr1.clone();
    stale.status = ChangeStatus::Cancelled;
    stale.rev = 2;
    assert_conflict(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Change {
                change: stale,
                expected_rev: Some(1),
            }],
        )
        .await,
        "change update with a stale revision",
    );
    assert_eq!(
        store.change_by_key(ctx.id(), cr1.key).await.unwrap(),
        imported
    );

    let dup = new_change(&ctx, cr2.key, "Same key");
    assert_already_exists(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Change {
                change: dup.clone(),
                expected_rev: None,
            }],
        )
        .await,
        "a second change with the same key",
    );
    let mut ghost = dup.clone();
    ghost.key = Key::new(KeyKind::Change, 99);
    ghost.rev = 2;
    assert_not_found(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Change {
                change: ghost,
                expected_rev: Some(1),
            }],
        )
        .await,
        "update of a change that does not exist",
    );
    assert_not_found(store.change(ctx.id(), dup.id).await, "refused change");
    assert_not_found(
        store
            .change_by_key(ctx.id(), Key::new(KeyKind::Change, 99))
            .await,
        "unknown change key",
    );
    assert_eq!(
        store.list_changes(ctx.id()).await.unwrap(),
        vec![imported, cr2]
    );
}

/// An incident reads back by key and lists by key; resolving needs the right revision; a taken key
/// is `AlreadyExists`; missing rows are `NotFound`.
pub async fn incident_round_trip(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let i1 = add_incident(store, &ctx, "API down").await;
    let i2 = add_incident(store, &ctx, "Disk full").await;
    assert_eq!(store.incident_by_key(ctx.id(), i1.key).await.unwrap(), i1);
    assert_eq!(
        store.list_incidents(ctx.id()).await.unwrap(),
        vec![i1.clone(), i2.clone()]
    );

    let mut resolved = i1.clone();
    resolved.status = IncidentStatus::Resolved;
    resolved.resolved_at = Some(now());
    resolved.rev = 2;
    commit_ok(
        store,
        ctx.id(),
        vec![Write::Incident {
            incident: resolved.clone(),
            expected_rev: Some(1),
        }],
        draft_by(&ctx.bob, "incident.resolved", &i1.key.to_string()),
    )
    .await;
    assert_eq!(
        store.incident_by_key(ctx.id(), i1.key).await.unwrap(),
        resolved
    );

    let mut stale = i1.clone();
    stale.title = Title::parse("Lost update").unwrap();
    stale.rev = 2;
    assert_conflict(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Incident {
                incident: stale,
                expected_rev: Some(1),
            }],
        )
        .await,
        "incident update with a stale revision",
    );
    assert_eq!(
        store.incident_by_key(ctx.id(), i1.key).await.unwrap(),
        resolved
    );

    let dup = new_incident(&ctx, i2.key, "Same key");
    assert_already_exists(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Incident {
                incident: dup.clone(),
                expected_rev: None,
            }],
        )
        .await,
        "a second incident with the same key",
    );
    let mut ghost = dup;
    ghost.key = Key::new(KeyKind::Incident, 99);
    ghost.rev = 2;
    assert_not_found(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Incident {
                incident: ghost,
                expected_rev: Some(1),
            }],
        )
        .await,
        "update of an incident that does not exist",
    );
    assert_not_found(
        store
            .incident_by_key(ctx.id(), Key::new(KeyKind::Incident, 99))
            .await,
        "unknown incident key",
    );
    assert_eq!(
        store.list_incidents(ctx.id()).await.unwrap(),
        vec![resolved, i2]
    );
}
