//! Full-text search: ranking, the index kept in step with edits (in the same transaction), and
//! user input that can never be FTS5 syntax.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{TempStore, add_runbook, body, bump_execution, commit, new_execution, setup};
use vigilo_core::runbook::Runbook;
use vigilo_core::store::{DraftFilter, StoreError, Write};

const NO_STEPS: &[(&str, &str)] = &[];

fn keys(found: &[Runbook]) -> Vec<u64> {
    found.iter().map(|r| r.key.number).collect()
}

async fn search(store: &TempStore, ctx: &common::Ctx, words: &str) -> Vec<u64> {
    keys(
        &store
            .search_runbooks(ctx.id(), words, DraftFilter::All, 0)
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn title_hits_rank_first_then_bm25_over_the_text() {
    let store = TempStore::new().await;
    let ctx = setup(&*store, "ops").await;
    // Key order is the reverse of the expected ranking.
    let once = add_runbook(
        &*store,
        &ctx,
        body(
            "Network checks",
            "A long description that mentions the cache only once, among many other words about \
             routers, switches, cables, firewalls, load balancers and name servers.",
            NO_STEPS,
        ),
    )
    .await;
    let often = add_runbook(
        &*store,
        &ctx,
        body(
            "Warm up",
            "Flush the cache, then warm the cache.",
            &[("Cache", "fill the cache")],
        ),
    )
    .await;
    let titled = add_runbook(
        &*store,
        &ctx,
        body("Purge the CDN cache", "", &[("Purge", "curl -X PURGE")]),
    )
    .await;
    let two_in_title = add_runbook(
        &*store,
        &ctx,
        body("Cache purge", "", &[("Purge", "purge the cache")]),
    )
    .await;

    assert_eq!(
        search(&store, &ctx, "cache").await,
        vec![
            two_in_title.key.number,
            titled.key.number,
            often.key.number,
            once.key.number
        ],
        "title hits first (the one whose steps also say it ahead), then the text where the word \
         weighs more, whatever the key order"
    );
    assert_eq!(
        search(&store, &ctx, "purge cache").await,
        vec![two_in_title.key.number, titled.key.number],
        "both titles hold both words: the steps decide"
    );
    assert_eq!(
        search(&store, &ctx, "cache warm").await,
        vec![often.key.number],
        "every word is required"
    );
}

#[tokio::test]
async fn the_index_follows_edits_and_only_committed_ones() {
    let store = TempStore::new().await;
    let ctx = setup(&*store, "ops").await;
    let rb = add_runbook(
        &*store,
        &ctx,
        body(
            "Restart the gateway",
            "When it hangs",
            &[("Drain", "move traffic away")],
        ),
    )
    .await;
    assert_eq!(search(&store, &ctx, "gateway").await, vec![rb.key.number]);
    assert_eq!(search(&store, &ctx, "traffic").await, vec![rb.key.number]);

    // An edit replaces every indexed column.
    let mut edited = rb.clone();
    edited.body = body(
        "Rotate certificates",
        "Yearly",
        &[("Renew", "ask the vault")],
    );
    edited.rev = 2;
    commit(
        &*store,
        ctx.id(),
        vec![Write::Runbook {
            runbook: edited.clone(),
            expected_rev: Some(1),
        }],
    )
    .await
    .unwrap();
    for old in ["gateway", "hangs", "drain", "traffic"] {
        assert!(
            search(&store, &ctx, old).await.is_empty(),
            "`{old}` is still found"
        );
    }
    for new in ["certificates", "yearly", "renew", "vault"] {
        assert_eq!(
            search(&store, &ctx, new).await,
            vec![rb.key.number],
            "`{new}` is not found"
        );
    }

    // An edit in a commit that fails later on is rolled back, index included.
    let mut doomed = edited.clone();
    doomed.body = body("Doomed words", "", NO_STEPS);
    doomed.rev = 3;
    let missing = new_execution(&ctx, 1);
    let mut writes = vec![Write::Runbook {
        runbook: doomed,
        expected_rev: Some(2),
    }];
    writes.extend(bump_execution(&missing));
    let result = commit(&*store, ctx.id(), writes).await;
    assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
    assert!(search(&store, &ctx, "doomed").await.is_empty());
    assert_eq!(
        search(&store, &ctx, "certificates").await,
        vec![rb.key.number]
    );
}

#[tokio::test]
async fn fts_syntax_in_input_is_plain_text() {
    let store = TempStore::new().await;
    let ctx = setup(&*store, "ops").await;
    let rb = add_runbook(
        &*store,
        &ctx,
        body(
            "Fix NEAR misses",
            "title: AND OR NOT",
            &[("Step", "quote \" and star *")],
        ),
    )
    .await;
    for input in [
        "\"",
        "\"\"",
        "*",
        "NEAR(",
        "NEAR(a b)",
        "title:",
        "AND",
        "OR NOT",
        "a OR",
        "(",
        ")",
        "^x",
        "-x",
        "col:fix",
        "{title}: fix",
        "\u{0}",
        "ünïcödé",
        "fix*",
    ] {
        let result = store
            .search_runbooks(ctx.id(), input, DraftFilter::All, 0)
            .await;
        assert!(result.is_ok(), "`{input}` failed: {result:?}");
    }
    assert_eq!(search(&store, &ctx, "near").await, vec![rb.key.number]);
    assert_eq!(
        search(&store, &ctx, "NEAR(misses)").await,
        vec![rb.key.number]
    );
    assert_eq!(
        search(&store, &ctx, "AND OR NOT").await,
        vec![rb.key.number]
    );
    assert!(search(&store, &ctx, "fix*").await.len() <= 1);
    assert!(
        search(&store, &ctx, "fi").await.is_empty(),
        "no prefix matching"
    );
    // Input without any word matches everything visible, like the in-memory store.
    assert_eq!(search(&store, &ctx, " * \" ").await, vec![rb.key.number]);
}

/// Builds runbook `n` of the broad-search corpus, not yet committed.
fn broad_runbook(ctx: &common::Ctx, n: u64, title: &str, description: &str) -> Runbook {
    let at = common::now();
    Runbook {
        id: vigilo_core::ids::RunbookId::new(),
        workspace: ctx.id(),
        key: vigilo_core::ids::Key::new(vigilo_core::ids::KeyKind::Runbook, n),
        body: body(title, description, NO_STEPS),
        version: 1,
        owner: ctx.owner.id,
        is_published: true,
        archived_at: None,
        created_at: at,
        updated_at: at,
        rev: 1,
    }
}

/// A word in more runbooks than the store scores one by one (`BROAD`, 2,000): the answer keeps
/// the tiers — the title that is the words first, then titles holding them (ranked, there are
/// few), then the others newest first — and fills the page.
#[tokio::test]
async fn a_word_everywhere_keeps_the_tiers_without_scoring_every_match() {
    let store = TempStore::new().await;
    let ctx = setup(&*store, "ops").await;
    let mut writes = Vec::new();
    // 1..=2400: "restart" in the description only.
    for n in 1..=2400 {
        let rb = broad_runbook(&ctx, n, &format!("Service {n}"), "Restart it if it hangs.");
        writes.push(Write::Runbook {
            runbook: rb,
            expected_rev: None,
        });
    }
    // 2401..=2405: "restart" in the title; 2403 mentions it three times, so bm25 puts it
    // first among them.
    for n in 2401..=2405 {
        let description = if n == 2403 {
            "restart, restart, restart"
        } else {
            "Nothing else."
        };
        writes.push(Write::Runbook {
            runbook: broad_runbook(&ctx, n, &format!("Restart service {n}"), description),
            expected_rev: None,
        });
    }
    // 2406: the exact title, oldest would lose on key order; 2407: archived, never shown.
    writes.push(Write::Runbook {
        runbook: broad_runbook(&ctx, 2406, "RESTART", "x"),
        expected_rev: None,
    });
    let mut archived = broad_runbook(&ctx, 2407, "Restart", "x");
    archived.archived_at = Some(common::now());
    writes.push(Write::Runbook {
        runbook: archived,
        expected_rev: None,
    });
    commit(&*store, ctx.id(), writes).await.unwrap();

    let found = keys(
        &store
            .search_runbooks(ctx.id(), "restart", DraftFilter::All, 10)
            .await
            .unwrap(),
    );
    assert_eq!(found.len(), 10, "the page is filled");
    assert_eq!(found[0], 2406, "the exact title first: {found:?}");
    assert_eq!(found[1], 2403, "then the title tier, ranked: {found:?}");
    let mut title_tier = found[1..6].to_vec();
    title_tier.sort_unstable();
    assert_eq!(title_tier, vec![2401, 2402, 2403, 2404, 2405], "{found:?}");
    assert_eq!(
        found[6..],
        [2400, 2399, 2398, 2397],
        "then the newest others"
    );
    assert!(!found.contains(&2407), "archived never appear");

    // Two words, both everywhere: every result holds both.
    let found = store
        .search_runbooks(ctx.id(), "restart hangs", DraftFilter::All, 5)
        .await
        .unwrap();
    assert_eq!(keys(&found), vec![2400, 2399, 2398, 2397, 2396]);
    // A rare word next to a common one is ranked as before.
    assert_eq!(search(&store, &ctx, "restart 2403").await, vec![2403]);
}
