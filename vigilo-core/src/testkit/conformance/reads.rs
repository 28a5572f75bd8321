//! Reads in general: default page sizes, rows that were never written.

use crate::execution::machine::{self, StartParams};
use crate::ids::{ChangeId, ExecutionId, Key, KeyKind, RunbookId, UserId, WorkspaceId};
use crate::store::{DraftFilter, ExecutionQuery, RunbookQuery, Store, Write};

use super::fixtures::*;

/// A `limit` of 0 means 100 runbooks (list and search) and 100 executions, newest first.
pub async fn default_page_sizes(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let mut runbooks = Vec::new();
    let mut writes = Vec::new();
    for i in 0..105 {
        let key = store
            .allocate_key(ctx.id(), KeyKind::Runbook)
            .await
            .unwrap();
        let rb = new_runbook(
            &ctx,
            key,
            simple_body(&format!("Restart service {i}")),
            &ctx.alice,
            true,
        );
        writes.push(Write::Runbook {
            runbook: rb.clone(),
            expected_rev: None,
        });
        runbooks.push(rb);
    }
    commit_ok(store, ctx.id(), writes, draft("runbook.imported", "bulk")).await;
    let listed = store
        .list_runbooks(ctx.id(), &RunbookQuery::default())
        .await
        .unwrap();
    assert_eq!(keys(&listed), (1..=100).collect::<Vec<u64>>());
    let found = store
        .search_runbooks(ctx.id(), "restart", DraftFilter::None, 0)
        .await
        .unwrap();
    assert_eq!(found.len(), 100);
    assert_eq!(
        store
            .list_runbooks(
                ctx.id(),
                &RunbookQuery {
                    limit: 1000,
                    ..RunbookQuery::default()
                }
            )
            .await
            .unwrap()
            .len(),
        105
    );

    let mut writes = Vec::new();
    for rb in runbooks.iter() {
        let key = store
            .allocate_key(ctx.id(), KeyKind::Execution)
            .await
            .unwrap();
        let t = machine::start(
            rb,
            StartParams {
                key,
                operator: ctx.bob.id,
                change: None,
                incident: None,
                rehearsal: false,
                channel: None,
            },
            now(),
        );
        writes.push(Write::Execution {
            execution: t.execution,
            expected_rev: None,
        });
        writes.push(Write::StepEvent(t.event));
    }
    commit_ok(store, ctx.id(), writes, draft("execution.bulk", "bulk")).await;
    let listed = store
        .list_executions(ctx.id(), &ExecutionQuery::default())
        .await
        .unwrap();
    assert_eq!(exec_keys(&listed), (6..=105).rev().collect::<Vec<u64>>());
}

/// Reads of rows that were never written are `NotFound`; lists of an empty store are empty.
pub async fn missing_rows_are_not_found(store: &dyn Store) {
    assert_eq!(store.list_workspaces().await.unwrap(), Vec::new());
    let ws = WorkspaceId::new();
    assert_not_found(store.workspace(ws).await, "workspace");
    assert_not_found(store.workspace_by_slug("ops").await, "workspace by slug");
    assert_not_found(
        store.workspace_by_slack_team("T1").await,
        "workspace by Slack team",
    );
    assert_not_found(store.user(UserId::new()).await, "user");
    assert_not_found(store.user_by_handle("alice").await, "user by handle");
    assert_not_found(
        store.member_by_chat(ws, &chat("slack", "U1")).await,
        "member by chat identity",
    );

    let ctx = setup(store, "ops").await;
    let id = ctx.id();
    let rb_key = Key::new(KeyKind::Runbook, 1);
    assert_not_found(
        store.workspace_by_slack_team("T1").await,
        "workspace without a Slack team",
    );
    assert_not_found(store.membership(id, UserId::new()).await, "membership");
    assert_not_found(
        store.member_by_chat(id, &chat("slack", "U1")).await,
        "member by an identity nobody holds",
    );
    assert_not_found(store.runbook(id, RunbookId::new()).await, "runbook");
    assert_not_found(store.runbook_by_key(id, rb_key).await, "runbook by key");
    assert_not_found(
        store.runbook_version(id, RunbookId::new(), 1).await,
        "runbook version",
    );
    assert_not_found(
        store.runbook_versions(id, RunbookId::new()).await,
        "runbook versions",
    );
    assert_not_found(store.execution(id, ExecutionId::new()).await, "execution");
    assert_not_found(
        store
            .execution_by_key(id, Key::new(KeyKind::Execution, 1))
            .await,
        "execution by key",
    );
    assert_not_found(
        store.step_events(id, ExecutionId::new()).await,
        "step events",
    );
    assert_not_found(store.change(id, ChangeId::new()).await, "change");
    assert_not_found(
        store.change_by_key(id, Key::new(KeyKind::Change, 1)).await,
        "change by key",
    );
    assert_not_found(
        store
            .incident_by_key(id, Key::new(KeyKind::Incident, 1))
            .await,
        "incident by key",
    );

    let rb = add_runbook(store, &ctx, simple_body("Only one"), &ctx.alice, true).await;
    assert_not_found(
        store
            .runbook_by_key(id, Key::new(KeyKind::Runbook, 2))
            .await,
        "next runbook key",
    );
    assert_not_found(
        store
            .execution_by_key(id, Key::new(KeyKind::Execution, rb.key.number))
            .await,
        "an execution key with a runbook's number",
    );
    assert_eq!(store.runbook_versions(id, rb.id).await.unwrap().len(), 1);
    assert_eq!(
        store
            .list_executions(id, &ExecutionQuery::default())
            .await
            .unwrap(),
        Vec::new()
    );
    assert_eq!(store.list_changes(id).await.unwrap(), Vec::new());
    assert_eq!(store.list_incidents(id).await.unwrap(), Vec::new());
    assert_eq!(
        store
            .search_runbooks(id, "nothing", DraftFilter::All, 0)
            .await
            .unwrap(),
        Vec::new()
    );
    assert_eq!(audit_all(store, ws).await, Vec::new());
}
