//! Commits: atomicity, `commit_all`, the order of writes, unknown workspaces, one winner among
//! concurrent updates.

use crate::audit;
use crate::execution::machine::{self, Command, StartParams};
use crate::execution::{Execution, StepStatus};
use crate::ids::{Key, KeyKind, WorkspaceId};
use crate::roles::WorkspaceRole;
use crate::runbook::Runbook;
use crate::store::{Commit, ExecutionQuery, Store, Write};

use super::fixtures::*;

/// A commit whose later write is refused applies none of its writes (rows, unique values) and
/// appends no audit entry; the chain continues without a gap.
pub async fn commit_is_atomic(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let rb = add_runbook(
        store,
        &ctx,
        simple_body("Restart the API"),
        &ctx.alice,
        true,
    )
    .await;
    let entries_before = audit_len(store, ctx.id()).await;

    // 1. Insert, then a stale update: Conflict, and the insert is gone.
    let key2 = store
        .allocate_key(ctx.id(), KeyKind::Runbook)
        .await
        .unwrap();
    let rb2 = new_runbook(&ctx, key2, simple_body("Second"), &ctx.alice, true);
    let mut stale = rb.clone();
    stale.rev = 8;
    assert_conflict(
        try_commit(
            store,
            ctx.id(),
            vec![
                Write::Runbook {
                    runbook: rb2.clone(),
                    expected_rev: None,
                },
                Write::RunbookVersion(first_version(&rb2)),
                Write::Runbook {
                    runbook: stale,
                    expected_rev: Some(7),
                },
            ],
        )
        .await,
        "a commit whose last write is stale",
    );
    assert_not_found(
        store.runbook(ctx.id(), rb2.id).await,
        "insert of a refused commit (by id)",
    );
    assert_not_found(
        store.runbook_by_key(ctx.id(), key2).await,
        "insert of a refused commit (by key)",
    );
    assert_not_found(
        store.runbook_versions(ctx.id(), rb2.id).await,
        "versions of a refused commit",
    );
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap(), rb);
    assert_eq!(
        audit_len(store, ctx.id()).await,
        entries_before,
        "a refused commit appends no audit entry"
    );

    // 2. A new member, then a duplicate runbook key: the user's handle and the member's
    //    identity stay free.
    let dora = new_user("dora");
    let mut dora_m = new_membership(ctx.id(), dora.id, WorkspaceRole::Operator);
    dora_m.chat_identities = vec![chat("slack", "UDORA")];
    let dup = new_runbook(&ctx, rb.key, simple_body("Duplicate"), &ctx.alice, true);
    assert_already_exists(
        try_commit(
            store,
            ctx.id(),
            vec![
                insert_user(&dora),
                insert_membership(&dora_m),
                Write::Runbook {
                    runbook: dup,
                    expected_rev: None,
                },
            ],
        )
        .await,
        "a commit whose third write repeats a key",
    );
    assert_not_found(store.user(dora.id).await, "user of a refused commit");
    assert_not_found(
        store.user_by_handle("dora").await,
        "handle of a refused commit",
    );
    assert_not_found(
        store.membership(ctx.id(), dora.id).await,
        "membership of a refused commit",
    );
    assert_not_found(
        store
            .member_by_chat(ctx.id(), &chat("slack", "UDORA"))
            .await,
        "identity of a refused commit",
    );

    // 3. A good update, then a duplicate version: the update is not applied.
    let mut next = rb.clone();
    next.body = simple_body("Edited");
    next.version = 2;
    next.rev = 2;
    assert_already_exists(
        try_commit(
            store,
            ctx.id(),
            vec![
                Write::Runbook {
                    runbook: next,
                    expected_rev: Some(1),
                },
                Write::RunbookVersion(first_version(&rb)),
            ],
        )
        .await,
        "a commit whose second write repeats a version",
    );
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap(), rb);

    // 4. Execution and event, then an update of a change that does not exist.
    let ex_key = store
        .allocate_key(ctx.id(), KeyKind::Execution)
        .await
        .unwrap();
    let t = machine::start(
        &rb,
        StartParams {
            key: ex_key,
            operator: ctx.bob.id,
            change: None,
            incident: None,
            rehearsal: false,
            channel: None,
        },
        now(),
    );
    let mut ghost = new_change(&ctx, Key::new(KeyKind::Change, 40), "Ghost");
    ghost.rev = 2;
    assert_not_found(
        try_commit(
            store,
            ctx.id(),
            vec![
                Write::Execution {
                    execution: t.execution.clone(),
                    expected_rev: None,
                },
                Write::StepEvent(t.event),
                Write::Change {
                    change: ghost,
                    expected_rev: Some(1),
                },
            ],
        )
        .await,
        "a commit whose last write updates a missing change",
    );
    assert_not_found(
        store.execution(ctx.id(), t.execution.id).await,
        "execution of a refused commit",
    );
    assert_not_found(
        store.execution_by_key(ctx.id(), ex_key).await,
        "execution key of a refused commit",
    );
    assert_eq!(
        store
            .list_executions(ctx.id(), &ExecutionQuery::default())
            .await
            .unwrap(),
        Vec::new()
    );
    assert_eq!(
        audit_len(store, ctx.id()).await,
        entries_before,
        "refused commits append no audit entry"
    );

    // The values a refused commit held are free, and the chain continues at the next seq.
    let entry = commit_ok(
        store,
        ctx.id(),
        vec![
            insert_user(&dora),
            insert_membership(&dora_m),
            Write::Runbook {
                runbook: rb2.clone(),
                expected_rev: None,
            },
        ],
        draft("retry", "dora"),
    )
    .await;
    assert_eq!(entry.seq, entries_before as u64 + 1);
    assert_eq!(
        store
            .member_by_chat(ctx.id(), &chat("slack", "UDORA"))
            .await
            .unwrap(),
        (dora, dora_m)
    );
    assert_eq!(store.runbook_by_key(ctx.id(), key2).await.unwrap(), rb2);
    let all = audit_all(store, ctx.id()).await;
    assert_eq!(seqs(&all), (1..=all.len() as u64).collect::<Vec<_>>());
    assert_eq!(audit::verify(&all).unwrap(), all.len() as u64);
}

/// `commit_all`: several commits apply in order with chained audit entries, or, when any one
/// is refused, none of them applies and no entry is appended; an empty list is a no-op.
pub async fn commit_all_is_all_or_nothing(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let rb = add_runbook(
        store,
        &ctx,
        simple_body("Restart the API"),
        &ctx.alice,
        true,
    )
    .await;
    let before = audit_len(store, ctx.id()).await;
    assert!(store.commit_all(Vec::new()).await.unwrap().is_empty());
    assert_eq!(audit_len(store, ctx.id()).await, before);

    let new_rb = |n: u64, title: &str| {
        new_runbook(
            &ctx,
            Key::new(KeyKind::Runbook, n),
            simple_body(title),
            &ctx.alice,
            false,
        )
    };
    let create = |r: &Runbook| Commit {
        workspace: ctx.id(),
        writes: vec![
            Write::Runbook {
                runbook: r.clone(),
                expected_rev: None,
            },
            Write::RunbookVersion(first_version(r)),
        ],
        audit: runbook_draft(&ctx.alice, "runbook.created", r.key),
        acting: None,
    };
    let k2 = store
        .allocate_key(ctx.id(), KeyKind::Runbook)
        .await
        .unwrap();
    let k3 = store
        .allocate_key(ctx.id(), KeyKind::Runbook)
        .await
        .unwrap();
    let (rb2, rb3) = (new_rb(k2.number, "Second"), new_rb(k3.number, "Third"));

    // 1. The third commit is stale: the first two are taken back too.
    let mut stale = rb.clone();
    stale.rev = 8;
    let refused = store
        .commit_all(vec![
            create(&rb2),
            create(&rb3),
            Commit {
                workspace: ctx.id(),
                writes: vec![Write::Runbook {
                    runbook: stale,
                    expected_rev: Some(7),
                }],
                audit: draft("test.write", "test"),
                acting: None,
            },
        ])
        .await;
    assert_conflict(refused.map(|_| ()), "commit_all whose last commit is stale");
    assert_not_found(
        store.runbook(ctx.id(), rb2.id).await,
        "the first commit of a refused commit_all",
    );
    assert_not_found(
        store.runbook_by_key(ctx.id(), k3).await,
        "the second commit of a refused commit_all",
    );
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap(), rb);
    assert_eq!(
        audit_len(store, ctx.id()).await,
        before,
        "a refused commit_all appends no audit entry"
    );

    // 2. All accepted: every write applied, one entry per commit, chained in order, and the
    //    chain goes on after them.
    let entries = store
        .commit_all(vec![create(&rb2), create(&rb3)])
        .await
        .unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].seq, entries[0].seq + 1);
    assert_eq!(entries[1].prev_hash, entries[0].hash);
    assert_eq!(entries[0].target, k2.to_string());
    assert_eq!(entries[1].target, k3.to_string());
    assert_eq!(store.runbook(ctx.id(), rb2.id).await.unwrap(), rb2);
    assert_eq!(store.runbook_by_key(ctx.id(), k3).await.unwrap(), rb3);
    assert_eq!(audit_len(store, ctx.id()).await, before + 2);
    let next = try_commit(store, ctx.id(), Vec::new()).await.unwrap();
    assert_eq!(next.seq, entries[1].seq + 1);
    assert_eq!(next.prev_hash, entries[1].hash);
}

/// The writes of a commit apply in order, each seeing the ones before it: insert then update the
/// same row, and two users swapping handles through a temporary one.
pub async fn commit_applies_writes_in_order(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let key = store
        .allocate_key(ctx.id(), KeyKind::Runbook)
        .await
        .unwrap();
    let rb = new_runbook(&ctx, key, simple_body("Draft"), &ctx.alice, false);
    let mut published = rb.clone();
    published.is_published = true;
    published.rev = 2;
    commit_ok(
        store,
        ctx.id(),
        vec![
            Write::Runbook {
                runbook: rb.clone(),
                expected_rev: None,
            },
            Write::RunbookVersion(first_version(&rb)),
            Write::Runbook {
                runbook: published.clone(),
                expected_rev: Some(1),
            },
        ],
        runbook_draft(&ctx.alice, "runbook.created", key),
    )
    .await;
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap(), published);

    let (mut x, mut y) = (new_user("xavier"), new_user("yolanda"));
    commit_ok(
        store,
        ctx.id(),
        vec![
            Write::User {
                user: x.clone(),
                expected_rev: None,
            },
            Write::User {
                user: y.clone(),
                expected_rev: None,
            },
        ],
        draft("user.created", "xavier"),
    )
    .await;
    let mut x_tmp = x.clone();
    x_tmp.handle = name("tmp");
    x_tmp.rev = 2;
    y.handle = name("xavier");
    y.rev = 2;
    x.handle = name("yolanda");
    x.rev = 3;
    commit_ok(
        store,
        ctx.id(),
        vec![
            Write::User {
                user: x_tmp,
                expected_rev: Some(1),
            },
            Write::User {
                user: y.clone(),
                expected_rev: Some(1),
            },
            Write::User {
                user: x.clone(),
                expected_rev: Some(2),
            },
        ],
        draft("user.swapped", "xavier"),
    )
    .await;
    assert_eq!(store.user_by_handle("yolanda").await.unwrap(), x);
    assert_eq!(store.user_by_handle("xavier").await.unwrap(), y);
    assert_not_found(store.user_by_handle("tmp").await, "the temporary handle");
}

/// A commit naming a workspace that does not exist is refused and records nothing.
pub async fn commit_to_unknown_workspace_is_refused(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let ghost = WorkspaceId::new();
    assert!(
        try_commit(store, ghost, Vec::new()).await.is_err(),
        "an audit-only commit"
    );
    let mut rb = new_runbook(
        &ctx,
        Key::new(KeyKind::Runbook, 1),
        simple_body("Ghost"),
        &ctx.alice,
        true,
    );
    rb.workspace = ghost;
    assert!(
        try_commit(
            store,
            ghost,
            vec![Write::Runbook {
                runbook: rb.clone(),
                expected_rev: None,
            }],
        )
        .await
        .is_err(),
        "a runbook of a workspace that does not exist"
    );
    assert_not_found(store.runbook(ghost, rb.id).await, "refused runbook");
    assert_eq!(audit_all(store, ghost).await, Vec::new());
    assert_eq!(store.list_workspaces().await.unwrap(), vec![ctx.ws.clone()]);
    assert_eq!(audit_len(store, ctx.id()).await, 1);
}

/// 20 concurrent commits updating the same execution from the same revision: exactly one wins,
/// the others get `Conflict`, and only the winner's event and audit entry are stored.
pub async fn concurrent_updates_one_winner(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let rb = add_runbook(
        store,
        &ctx,
        simple_body("Restart the API"),
        &ctx.alice,
        true,
    )
    .await;
    let ex = start_execution(store, &ctx, &rb, &ctx.alice, None, None).await;
    let entries_before = audit_len(store, ctx.id()).await;
    let (ctx_ref, ex_ref) = (&ctx, &ex);
    let results = parallel(20, move |i| {
        let (ctx, ex) = (ctx_ref, ex_ref);
        async move {
            let t = machine::apply(
                ex,
                &Command::Done {
                    step: 1,
                    note: Some(format!("caller {i}")),
                },
                &ctx.actor(&ctx.bob),
                &ctx.ws.policy,
                now(),
            )
            .unwrap();
            let r = try_commit(
                store,
                ctx.id(),
                vec![
                    Write::Execution {
                        execution: t.execution.clone(),
                        expected_rev: Some(ex.rev),
                    },
                    Write::StepEvent(t.event),
                ],
            )
            .await;
            (t.execution, r)
        }
    });
    let winners: Vec<&Execution> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(e, _)| e)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 20 concurrent updates wins"
    );
    let winner = winners[0].clone();
    for (_, r) in results.into_iter().filter(|(_, r)| r.is_err()) {
        assert_conflict(r, "a losing concurrent update");
    }
    let stored = store.execution(ctx.id(), ex.id).await.unwrap();
    assert_eq!(stored, winner);
    assert_eq!(stored.rev, 2);
    assert_eq!(stored.steps[0].status, StepStatus::Done);
    let events = store.step_events(ctx.id(), ex.id).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].note, winner.steps[0].note);
    assert_eq!(audit_len(store, ctx.id()).await, entries_before + 1);
}
