//! Runbooks: rows, versions, lists and search.

use crate::fields::Title;
use crate::ids::{Key, KeyKind, RunbookId, UserId};
use crate::runbook::{RunbookVersion, VersionSource};
use crate::store::{DraftFilter, RunbookQuery, Store, Write};

use super::fixtures::*;

/// A runbook reads back by id and key exactly as written; an update with the right revision is
/// stored; a stale revision is a `Conflict` and leaves the row unchanged; a missing row is
/// `NotFound`; a taken key or id is `AlreadyExists`.
pub async fn runbook_round_trip(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let rb = add_runbook(
        store,
        &ctx,
        body("Restart the API", "When it hangs", "api", STEPS),
        &ctx.alice,
        false,
    )
    .await;
    assert_eq!(rb.key, Key::new(KeyKind::Runbook, 1));
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap(), rb);
    assert_eq!(store.runbook_by_key(ctx.id(), rb.key).await.unwrap(), rb);

    let mut edited_body = rb.body.clone();
    edited_body.title = Title::parse("Restart the API gateway").unwrap();
    edited_body.steps.swap(0, 2);
    edited_body.steps.pop();
    let edited = edit_runbook(store, &ctx, &rb, edited_body, VersionSource::Edit).await;
    assert_eq!(edited.rev, 2);
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap(), edited);

    let published = update_runbook(store, &ctx, &edited, |r| r.is_published = true).await;
    assert_eq!((published.rev, published.version), (3, 2));
    assert_eq!(
        store.runbook_by_key(ctx.id(), rb.key).await.unwrap(),
        published
    );

    let mut stale = edited.clone();
    stale.body.title = Title::parse("Lost update").unwrap();
    stale.rev = 3;
    assert_conflict(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Runbook {
                runbook: stale,
                expected_rev: Some(2),
            }],
        )
        .await,
        "runbook update with a stale revision",
    );
    assert_eq!(
        store.runbook(ctx.id(), rb.id).await.unwrap(),
        published,
        "a refused update changes nothing"
    );

    let mut ghost = new_runbook(
        &ctx,
        Key::new(KeyKind::Runbook, 77),
        simple_body("Ghost"),
        &ctx.alice,
        true,
    );
    ghost.rev = 2;
    assert_not_found(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Runbook {
                runbook: ghost.clone(),
                expected_rev: Some(1),
            }],
        )
        .await,
        "update of a runbook that does not exist",
    );
    assert_not_found(
        store.runbook(ctx.id(), ghost.id).await,
        "runbook of a refused update",
    );

    let same_key = new_runbook(&ctx, rb.key, simple_body("Same key"), &ctx.bob, true);
    assert_already_exists(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Runbook {
                runbook: same_key.clone(),
                expected_rev: None,
            }],
        )
        .await,
        "a second runbook with key RB-00001",
    );
    assert_not_found(
        store.runbook(ctx.id(), same_key.id).await,
        "refused runbook",
    );

    let mut same_id = new_runbook(
        &ctx,
        Key::new(KeyKind::Runbook, 50),
        simple_body("Same id"),
        &ctx.bob,
        true,
    );
    same_id.id = rb.id;
    assert_already_exists(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Runbook {
                runbook: same_id,
                expected_rev: None,
            }],
        )
        .await,
        "insert of an existing runbook id",
    );
    assert_not_found(
        store
            .runbook_by_key(ctx.id(), Key::new(KeyKind::Runbook, 50))
            .await,
        "key of a refused insert",
    );
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap(), published);
}

/// Saved versions list oldest first and read back one by one; a duplicate (runbook, version) is
/// `AlreadyExists` and leaves the saved one unchanged; unknown versions and runbooks are
/// `NotFound`.
pub async fn runbook_versions(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let rb = add_runbook(
        store,
        &ctx,
        simple_body("Rotate certificates"),
        &ctx.alice,
        true,
    )
    .await;
    let v1 = first_version(&rb);
    assert_eq!(
        store.runbook_versions(ctx.id(), rb.id).await.unwrap(),
        vec![v1.clone()]
    );

    let rb2 = edit_runbook(
        store,
        &ctx,
        &rb,
        simple_body("Rotate TLS certificates"),
        VersionSource::Edit,
    )
    .await;
    let rb3 = edit_runbook(
        store,
        &ctx,
        &rb2,
        simple_body("Rotate all TLS certificates"),
        VersionSource::FileSync {
            file: "certs.md".into(),
        },
    )
    .await;
    let versions = store.runbook_versions(ctx.id(), rb.id).await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(versions[0], v1);
    assert_eq!(versions[1].body, rb2.body);
    assert_eq!(versions[1].source, VersionSource::Edit);
    assert_eq!(versions[2].body, rb3.body);
    assert_eq!(
        versions[2].source,
        VersionSource::FileSync {
            file: "certs.md".into()
        }
    );
    assert_eq!(
        store.runbook_version(ctx.id(), rb.id, 2).await.unwrap(),
        versions[1]
    );
    assert_eq!(
        store.runbook_version(ctx.id(), rb.id, 3).await.unwrap(),
        versions[2]
    );

    let mut duplicate = versions[1].clone();
    duplicate.body = simple_body("Overwritten");
    duplicate.source = VersionSource::Edit;
    assert_already_exists(
        try_commit(store, ctx.id(), vec![Write::RunbookVersion(duplicate)]).await,
        "a second version 2",
    );
    assert_eq!(
        store.runbook_version(ctx.id(), rb.id, 2).await.unwrap(),
        versions[1]
    );

    assert_not_found(store.runbook_version(ctx.id(), rb.id, 9).await, "version 9");
    assert_not_found(
        store.runbook_version(ctx.id(), RunbookId::new(), 1).await,
        "version of an unknown runbook",
    );
    assert_not_found(
        store.runbook_versions(ctx.id(), RunbookId::new()).await,
        "versions of an unknown runbook",
    );
    let orphan = RunbookVersion {
        runbook: RunbookId::new(),
        ..v1
    };
    assert!(
        try_commit(store, ctx.id(), vec![Write::RunbookVersion(orphan)])
            .await
            .is_err(),
        "a version of a runbook that does not exist is refused"
    );
    assert_eq!(
        store.runbook_versions(ctx.id(), rb.id).await.unwrap(),
        versions
    );
}

/// `list_runbooks` orders by key and honours category, every `DraftFilter`, `archived`, and
/// keyset pagination (`after_number`, `limit`).
pub async fn list_runbooks_filters(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let (alice, bob) = (&ctx.alice, &ctx.bob);
    add_runbook(
        store,
        &ctx,
        body("Restart API", "", "api", STEPS),
        alice,
        true,
    )
    .await; // 1
    add_runbook(
        store,
        &ctx,
        body("Rotate certs", "", "security", STEPS),
        bob,
        true,
    )
    .await; // 2
    add_runbook(
        store,
        &ctx,
        body("Alice draft", "", "api", STEPS),
        alice,
        false,
    )
    .await; // 3
    add_runbook(store, &ctx, body("Bob draft", "", "api", STEPS), bob, false).await; // 4
    let old = add_runbook(
        store,
        &ctx,
        body("Old procedure", "", "api", STEPS),
        alice,
        true,
    )
    .await; // 5
    update_runbook(store, &ctx, &old, |r| r.archived_at = Some(now())).await;
    let old_draft = add_runbook(
        store,
        &ctx,
        body("Old draft", "", "api", STEPS),
        alice,
        false,
    )
    .await; // 6
    update_runbook(store, &ctx, &old_draft, |r| r.archived_at = Some(now())).await;
    add_runbook(
        store,
        &ctx,
        body("Restart workers", "", "api", STEPS),
        bob,
        true,
    )
    .await; // 7

    let ws = ctx.id();
    let list =
        move |q: RunbookQuery| async move { keys(&store.list_runbooks(ws, &q).await.unwrap()) };
    let q = |drafts: DraftFilter| RunbookQuery {
        drafts,
        ..RunbookQuery::default()
    };
    assert_eq!(
        list(RunbookQuery::default()).await,
        vec![1, 2, 7],
        "published only by default"
    );
    assert_eq!(list(q(DraftFilter::None)).await, vec![1, 2, 7]);
    assert_eq!(
        list(q(DraftFilter::OwnedBy(alice.id))).await,
        vec![1, 2, 3, 7]
    );
    assert_eq!(
        list(q(DraftFilter::OwnedBy(bob.id))).await,
        vec![1, 2, 4, 7]
    );
    assert_eq!(
        list(q(DraftFilter::OwnedBy(UserId::new()))).await,
        vec![1, 2, 7]
    );
    assert_eq!(list(q(DraftFilter::All)).await, vec![1, 2, 3, 4, 7]);
    assert_eq!(list(q(DraftFilter::Only)).await, vec![3, 4]);

    let cat = |c: &str, drafts: DraftFilter| RunbookQuery {
        category: Some(c.into()),
        drafts,
        ..RunbookQuery::default()
    };
    assert_eq!(list(cat("api", DraftFilter::None)).await, vec![1, 7]);
    assert_eq!(list(cat("security", DraftFilter::All)).await, vec![2]);
    assert_eq!(list(cat("api", DraftFilter::Only)).await, vec![3, 4]);
    assert_eq!(
        list(cat("ap", DraftFilter::All)).await,
        Vec::<u64>::new(),
        "category is an exact match"
    );

    let archived = |drafts: DraftFilter| RunbookQuery {
        archived: true,
        drafts,
        ..RunbookQuery::default()
    };
    assert_eq!(list(archived(DraftFilter::None)).await, vec![5]);
    assert_eq!(list(archived(DraftFilter::All)).await, vec![5, 6]);
    assert_eq!(list(archived(DraftFilter::Only)).await, vec![6]);
    assert_eq!(list(archived(DraftFilter::OwnedBy(bob.id))).await, vec![5]);

    let page = |after: Option<u64>, limit: usize| RunbookQuery {
        drafts: DraftFilter::All,
        after_number: after,
        limit,
        ..RunbookQuery::default()
    };
    assert_eq!(list(page(None, 2)).await, vec![1, 2]);
    assert_eq!(list(page(Some(2), 2)).await, vec![3, 4]);
    assert_eq!(list(page(Some(4), 2)).await, vec![7]);
    assert_eq!(list(page(Some(7), 2)).await, Vec::<u64>::new());
    assert_eq!(
        list(page(Some(1), 0)).await,
        vec![2, 3, 4, 7],
        "limit 0 is the default page"
    );
    let full = store
        .list_runbooks(ctx.id(), &q(DraftFilter::All))
        .await
        .unwrap();
    assert_eq!(
        full[0],
        store.runbook(ctx.id(), full[0].id).await.unwrap(),
        "listed rows are whole rows"
    );
}

/// `search_runbooks`: case-insensitive, every word must appear in the title, the description or
/// a step's title or description; ranked by title hits then key; archived runbooks never appear;
/// drafts follow the filter; `limit` caps the result.
pub async fn search_runbooks(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let (alice, bob) = (&ctx.alice, &ctx.bob);
    let gateway_steps: &[(&str, &str)] = &[
        ("Drain traffic", "Move the load balancer away"),
        ("Restart", "systemctl restart gateway"),
        ("Check", "curl the health endpoint"),
    ];
    let failover_steps: &[(&str, &str)] = &[
        ("Promote replica", "pg_ctl promote"),
        ("Repoint", "update DNS"),
        ("Verify", "run smoke tests"),
    ];
    let rotation_steps: &[(&str, &str)] = &[
        ("Generate key", "openssl rand"),
        ("Deploy key", "update the gateway config"),
        ("Revoke old key", "delete it"),
    ];
    let rb1 = add_runbook(
        store,
        &ctx,
        body(
            "Restart the API gateway",
            "When the gateway hangs",
            "",
            gateway_steps,
        ),
        alice,
        true,
    )
    .await;
    let rb2 = add_runbook(
        store,
        &ctx,
        body(
            "Database failover",
            "Promote the replica; the API reconnects",
            "",
            failover_steps,
        ),
        alice,
        true,
    )
    .await;
    let rb3 = add_runbook(
        store,
        &ctx,
        body("API key rotation", "Rotate keys", "", rotation_steps),
        alice,
        true,
    )
    .await;
    let rb4 = add_runbook(
        store,
        &ctx,
        body("API gateway draft", "", "", STEPS),
        bob,
        false,
    )
    .await;
    let rb5 = add_runbook(
        store,
        &ctx,
        body("API gateway legacy", "", "", STEPS),
        alice,
        true,
    )
    .await;
    update_runbook(store, &ctx, &rb5, |r| r.archived_at = Some(now())).await;

    let ws = ctx.id();
    let search = move |words: &'static str, drafts: DraftFilter, limit: usize| async move {
        keys(
            &store
                .search_runbooks(ws, words, drafts, limit)
                .await
                .unwrap(),
        )
    };
    let (k1, k2, k3, k4) = (
        rb1.key.number,
        rb2.key.number,
        rb3.key.number,
        rb4.key.number,
    );
    assert_eq!(
        search("api", DraftFilter::None, 0).await,
        vec![k1, k3, k2],
        "title hits first, then key"
    );
    assert_eq!(
        search("gateway api", DraftFilter::None, 0).await,
        vec![k1, k3],
        "every word must appear"
    );
    assert_eq!(
        search("GATEWAY", DraftFilter::None, 0).await,
        vec![k1, k3],
        "case-insensitive"
    );
    assert_eq!(
        search("Replica", DraftFilter::None, 0).await,
        vec![k2],
        "description and step text"
    );
    assert_eq!(
        search("systemctl", DraftFilter::None, 0).await,
        vec![k1],
        "step description"
    );
    assert_eq!(
        search("drain", DraftFilter::None, 0).await,
        vec![k1],
        "step title"
    );
    assert_eq!(
        search("api nosuchword", DraftFilter::None, 0).await,
        Vec::<u64>::new()
    );
    assert_eq!(
        search("gateway", DraftFilter::All, 0).await,
        vec![k1, k4, k3]
    );
    assert_eq!(
        search("gateway", DraftFilter::OwnedBy(bob.id), 0).await,
        vec![k1, k4, k3]
    );
    assert_eq!(
        search("gateway", DraftFilter::OwnedBy(alice.id), 0).await,
        vec![k1, k3]
    );
    assert_eq!(search("gateway", DraftFilter::Only, 0).await, vec![k4]);
    assert_eq!(
        search("legacy", DraftFilter::All, 0).await,
        Vec::<u64>::new(),
        "archived never appear"
    );
    assert_eq!(search("api", DraftFilter::None, 1).await, vec![k1]);
    assert_eq!(search("api", DraftFilter::All, 2).await, vec![k1, k3]);
    let found = store
        .search_runbooks(ctx.id(), "failover", DraftFilter::None, 0)
        .await
        .unwrap();
    assert_eq!(found, vec![rb2], "results are whole rows");

    // A title that is exactly the words searched (case and punctuation aside) comes first,
    // before an older runbook whose title also holds every word (word order matters: the
    // same search in another order finds both in the title tier, ranked by each store's
    // relevance score, which this suite does not compare).
    let exact = add_runbook(
        store,
        &ctx,
        body("Gateway: restart!", "", "", gateway_steps),
        alice,
        true,
    )
    .await;
    assert_eq!(
        search("gateway restart", DraftFilter::None, 0).await,
        vec![exact.key.number, k1],
        "an exact title first"
    );
}
