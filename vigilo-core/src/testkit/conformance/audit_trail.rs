//! The audit trail: one chain per workspace, and its queries.

use chrono::Duration;
use serde_json::json;

use crate::audit::{self, AuditLinks, GENESIS_HASH, Origin, Surface};
use crate::ids::{Key, KeyKind};
use crate::store::{AuditQuery, Store};
use crate::workspace::User;

use super::fixtures::*;

/// Each workspace has its own chain: seq 1, 2, 3… without gaps, the first chained to the genesis
/// hash, every entry verifying; `commit` returns the entry as stored, holding the draft exactly.
pub async fn audit_chain(store: &dyn Store) {
    let a = setup(store, "ops").await;
    let rb = add_runbook(store, &a, simple_body("Restart the API"), &a.alice, true).await;
    let mut d = runbook_draft(&a.alice, "runbook.edited", rb.key);
    d.details = json!({ "from": 1, "to": 2, "note": "typo — fixed", "steps": [1, 2, 3], "nested": { "ok": true, "none": null } });
    d.links = AuditLinks {
        runbook: Some(rb.key),
        runbook_version: Some(2),
        change: Some(Key::new(KeyKind::Change, 3)),
        incident: Some(Key::new(KeyKind::Incident, 4)),
        execution: Some(Key::new(KeyKind::Execution, 5)),
    };
    d.origin = Some(Origin::new(Surface::Slack, "T1/U1"));
    let returned = commit_ok(store, a.id(), Vec::new(), d.clone()).await;
    assert_eq!(returned.seq, 3);
    assert_eq!(returned.workspace, a.id());
    assert_eq!(
        (
            returned.at,
            returned.actor,
            &returned.actor_handle,
            &returned.action,
            &returned.target,
            &returned.details,
            &returned.links,
            &returned.origin
        ),
        (
            d.at,
            d.actor,
            &d.actor_handle,
            &d.action,
            &d.target,
            &d.details,
            &d.links,
            &d.origin
        )
    );
    for i in 0..5 {
        commit_ok(
            store,
            a.id(),
            Vec::new(),
            draft("test.tick", &format!("tick-{i}")),
        )
        .await;
    }
    let b = setup(store, "dev").await;
    let entry_b = commit_ok(store, b.id(), Vec::new(), draft("test.tick", "dev")).await;
    assert_eq!(entry_b.seq, 2, "each workspace has its own chain");

    let chain = audit_all(store, a.id()).await;
    assert_eq!(seqs(&chain), (1..=8).collect::<Vec<u64>>());
    assert_eq!(chain[0].prev_hash, GENESIS_HASH);
    assert!(chain.iter().all(|e| e.workspace == a.id()));
    assert_eq!(
        chain[2], returned,
        "the entry read back is the entry commit returned"
    );
    assert_eq!(audit::verify(&chain).unwrap(), 8);
    let chain_b = audit_all(store, b.id()).await;
    assert_eq!(seqs(&chain_b), vec![1, 2]);
    assert_eq!(chain_b[1], entry_b);
    assert_eq!(audit::verify(&chain_b).unwrap(), 2);
    // Pages verify when streamed in order.
    let mut verifier = audit::Verifier::new();
    let mut after = 0;
    loop {
        let page = store
            .audit(
                a.id(),
                &AuditQuery {
                    after_seq: after,
                    limit: 3,
                    ..AuditQuery::default()
                },
            )
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            verifier.push(e).unwrap();
        }
    }
    assert_eq!(verifier.count(), 8);
}

/// Audit queries: target matches the entry's target or any linked key; actor; `since` inclusive,
/// `until` exclusive; `after_seq`; `limit`; combined; oldest first.
pub async fn audit_queries(store: &dyn Store) {
    let ctx = setup(store, "ops").await; // seq 1, before `base`
    let base = now() + Duration::minutes(1);
    let at = |m: i64| base + Duration::minutes(m);
    let rb = Key::new(KeyKind::Runbook, 1);
    let ex = Key::new(KeyKind::Execution, 1);
    let cr = Key::new(KeyKind::Change, 1);
    let entry =
        |user: Option<&User>, action: &str, target: &str, minute: i64, links: AuditLinks| {
            let mut d = match user {
                Some(u) => draft_by(u, action, target),
                None => draft(action, target),
            };
            d.at = at(minute);
            d.links = links;
            d
        };
    let drafts = vec![
        entry(
            Some(&ctx.alice),
            "runbook.created",
            &rb.to_string(),
            0,
            AuditLinks {
                runbook: Some(rb),
                ..AuditLinks::default()
            },
        ), // 2
        entry(
            Some(&ctx.bob),
            "execution.started",
            &ex.to_string(),
            1,
            AuditLinks {
                runbook: Some(rb),
                runbook_version: Some(1),
                execution: Some(ex),
                ..AuditLinks::default()
            },
        ), // 3
        entry(
            Some(&ctx.bob),
            "execution.step_done",
            &ex.to_string(),
            2,
            AuditLinks {
                runbook: Some(rb),
                execution: Some(ex),
                change: Some(cr),
                ..AuditLinks::default()
            },
        ), // 4
        entry(
            Some(&ctx.alice),
            "change.created",
            &cr.to_string(),
            3,
            AuditLinks {
                change: Some(cr),
                ..AuditLinks::default()
            },
        ), // 5
        entry(None, "user.created", "carol", 4, AuditLinks::default()), // 6
    ];
    for d in drafts {
        commit_ok(store, ctx.id(), Vec::new(), d).await;
    }
    let ws = ctx.id();
    let q = move |query: AuditQuery| async move { seqs(&store.audit(ws, &query).await.unwrap()) };
    let target = |t: &str| AuditQuery {
        target: Some(t.into()),
        ..AuditQuery::default()
    };
    assert_eq!(q(AuditQuery::default()).await, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(
        q(target("RB-00001")).await,
        vec![2, 3, 4],
        "target or runbook link"
    );
    assert_eq!(q(target("EX-00001")).await, vec![3, 4]);
    assert_eq!(
        q(target("CR-00001")).await,
        vec![4, 5],
        "change link or target"
    );
    assert_eq!(q(target("carol")).await, vec![6]);
    assert_eq!(q(target("ops")).await, vec![1]);
    assert_eq!(q(target("RB-00002")).await, Vec::<u64>::new());
    let actor = |u: &User| AuditQuery {
        actor: Some(u.id),
        ..AuditQuery::default()
    };
    assert_eq!(q(actor(&ctx.alice)).await, vec![2, 5]);
    assert_eq!(q(actor(&ctx.bob)).await, vec![3, 4]);
    assert_eq!(
        q(AuditQuery {
            since: Some(at(1)),
            ..AuditQuery::default()
        })
        .await,
        vec![3, 4, 5, 6],
        "since is inclusive"
    );
    assert_eq!(
        q(AuditQuery {
            until: Some(at(2)),
            ..AuditQuery::default()
        })
        .await,
        vec![1, 2, 3],
        "until is exclusive"
    );
    assert_eq!(
        q(AuditQuery {
            since: Some(at(1)),
            until: Some(at(3)),
            ..AuditQuery::default()
        })
        .await,
        vec![3, 4]
    );
    assert_eq!(
        q(AuditQuery {
            after_seq: 3,
            ..AuditQuery::default()
        })
        .await,
        vec![4, 5, 6]
    );
    assert_eq!(
        q(AuditQuery {
            after_seq: 3,
            limit: 2,
            ..AuditQuery::default()
        })
        .await,
        vec![4, 5]
    );
    assert_eq!(
        q(AuditQuery {
            limit: 1,
            ..AuditQuery::default()
        })
        .await,
        vec![1]
    );
    assert_eq!(
        q(AuditQuery {
            target: Some("RB-00001".into()),
            actor: Some(ctx.bob.id),
            after_seq: 3,
            ..AuditQuery::default()
        })
        .await,
        vec![4]
    );
    assert_eq!(
        q(AuditQuery {
            target: Some("EX-00001".into()),
            limit: 1,
            ..AuditQuery::default()
        })
        .await,
        vec![3],
        "limit applies after the filters"
    );
}
