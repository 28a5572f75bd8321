//! Workspace isolation: reads, writes, and what a workspace says about a person.

use crate::change::ChangeStatus;
use crate::execution::machine;
use crate::ids::{ExecutionId, Key, KeyKind, UserId, WorkspaceId};
use crate::incident::IncidentStatus;
use crate::roles::WorkspaceRole;
use crate::runbook::RunbookVersion;
use crate::store::{AuditQuery, DraftFilter, ExecutionQuery, RunbookQuery, Store, Write};

use super::fixtures::*;

/// Every by-id and by-key read made with another workspace's id is `NotFound`, and every list of
/// a workspace holds only its own rows.
pub async fn workspace_isolation_reads(store: &dyn Store) {
    let a = setup(store, "ops").await;
    let b = setup(store, "dev").await;
    let rb = add_runbook(store, &a, simple_body("Restart the API"), &a.alice, true).await;
    let cr = add_change(store, &a, "Upgrade").await;
    let inc = add_incident(store, &a, "API down").await;
    let ex = start_execution(store, &a, &rb, &a.alice, Some(&cr), None).await;

    assert_not_found(
        store.membership(b.id(), a.alice.id).await,
        "membership through another workspace",
    );
    assert_not_found(
        store.runbook(b.id(), rb.id).await,
        "runbook through another workspace",
    );
    assert_not_found(
        store.runbook_by_key(b.id(), rb.key).await,
        "runbook key through another workspace",
    );
    assert_not_found(
        store.runbook_version(b.id(), rb.id, 1).await,
        "version through another workspace",
    );
    assert_not_found(
        store.runbook_versions(b.id(), rb.id).await,
        "versions through another workspace",
    );
    assert_not_found(
        store.execution(b.id(), ex.id).await,
        "execution through another workspace",
    );
    assert_not_found(
        store.execution_by_key(b.id(), ex.key).await,
        "execution key through another workspace",
    );
    assert_not_found(
        store.step_events(b.id(), ex.id).await,
        "events through another workspace",
    );
    assert_not_found(
        store.change(b.id(), cr.id).await,
        "change through another workspace",
    );
    assert_not_found(
        store.change_by_key(b.id(), cr.key).await,
        "change key through another workspace",
    );
    assert_not_found(
        store.incident_by_key(b.id(), inc.key).await,
        "incident key through another workspace",
    );

    let all = RunbookQuery {
        drafts: DraftFilter::All,
        ..RunbookQuery::default()
    };
    assert_eq!(store.list_runbooks(b.id(), &all).await.unwrap(), Vec::new());
    assert_eq!(
        store
            .search_runbooks(b.id(), "restart", DraftFilter::All, 0)
            .await
            .unwrap(),
        Vec::new()
    );
    assert_eq!(
        store
            .list_executions(b.id(), &ExecutionQuery::default())
            .await
            .unwrap(),
        Vec::new()
    );
    assert_eq!(
        store
            .list_executions(
                b.id(),
                &ExecutionQuery {
                    runbook: Some(rb.id),
                    change: Some(cr.id),
                    ..ExecutionQuery::default()
                }
            )
            .await
            .unwrap(),
        Vec::new()
    );
    assert_eq!(store.list_changes(b.id()).await.unwrap(), Vec::new());
    assert_eq!(store.list_incidents(b.id()).await.unwrap(), Vec::new());
    let members: Vec<UserId> = store
        .list_members(b.id())
        .await
        .unwrap()
        .iter()
        .map(|(u, _)| u.id)
        .collect();
    assert_eq!(members, vec![b.alice.id, b.bob.id]);
    let b_audit = audit_all(store, b.id()).await;
    assert_eq!(seqs(&b_audit), vec![1]);
    assert!(b_audit.iter().all(|e| e.workspace == b.id()));
    let by_target = AuditQuery {
        target: Some(rb.key.to_string()),
        ..AuditQuery::default()
    };
    assert_eq!(store.audit(b.id(), &by_target).await.unwrap(), Vec::new());

    // B's own RB-00001 is B's, A's stays A's.
    let rb_b = add_runbook(store, &b, simple_body("Dev runbook"), &b.alice, true).await;
    assert_eq!(rb_b.key, rb.key);
    assert_eq!(store.runbook_by_key(b.id(), rb.key).await.unwrap(), rb_b);
    assert_eq!(store.runbook_by_key(a.id(), rb.key).await.unwrap(), rb);
    assert_not_found(
        store.runbook(a.id(), rb_b.id).await,
        "B's runbook through A",
    );
    assert_eq!(
        store.runbook_versions(a.id(), rb.id).await.unwrap(),
        vec![first_version(&rb)]
    );
    assert_eq!(store.execution(a.id(), ex.id).await.unwrap(), ex);
    assert_eq!(store.list_runbooks(b.id(), &all).await.unwrap(), vec![rb_b]);
}

/// A commit for workspace A refuses any row of workspace B (inserting or updating it, claiming
/// its id, hanging a version or event on it) and changes nothing in either workspace.
pub async fn workspace_isolation_writes(store: &dyn Store) {
    let a = setup(store, "ops").await;
    let b = setup(store, "dev").await;
    let rb_b = add_runbook(store, &b, simple_body("Dev runbook"), &b.alice, true).await;
    let cr_b = add_change(store, &b, "Dev change").await;
    let inc_b = add_incident(store, &b, "Dev incident").await;
    let ex_b = start_execution(store, &b, &rb_b, &b.alice, None, None).await;
    let (audit_a, audit_b) = (
        audit_len(store, a.id()).await,
        audit_len(store, b.id()).await,
    );

    let mut refused: Vec<(&str, Vec<Write>)> = Vec::new();
    let fresh_b = new_runbook(
        &b,
        Key::new(KeyKind::Runbook, 9),
        simple_body("Planted"),
        &b.alice,
        true,
    );
    refused.push((
        "insert of a runbook of B",
        vec![Write::Runbook {
            runbook: fresh_b.clone(),
            expected_rev: None,
        }],
    ));
    let mut rb_b_edit = rb_b.clone();
    rb_b_edit.body = simple_body("Hijacked");
    rb_b_edit.rev = 2;
    refused.push((
        "update of a runbook of B",
        vec![Write::Runbook {
            runbook: rb_b_edit.clone(),
            expected_rev: Some(1),
        }],
    ));
    let mut claimed = rb_b_edit.clone();
    claimed.workspace = a.id();
    refused.push((
        "update of B's runbook id claimed for A",
        vec![Write::Runbook {
            runbook: claimed,
            expected_rev: Some(1),
        }],
    ));
    refused.push((
        "a version of a runbook of B",
        vec![Write::RunbookVersion(RunbookVersion {
            version: 2,
            body: simple_body("Hijacked"),
            ..first_version(&rb_b)
        })],
    ));
    let t = machine::apply(&ex_b, &done(1), &b.actor(&b.bob), &b.ws.policy, now()).unwrap();
    refused.push((
        "an event of an execution of B",
        vec![Write::StepEvent(t.event.clone())],
    ));
    refused.push((
        "update of an execution of B",
        vec![
            Write::Execution {
                execution: t.execution.clone(),
                expected_rev: Some(1),
            },
            Write::StepEvent(t.event.clone()),
        ],
    ));
    let mut ex_planted = t.execution.clone();
    ex_planted.id = ExecutionId::new();
    ex_planted.key = Key::new(KeyKind::Execution, 9);
    ex_planted.rev = 1;
    refused.push((
        "insert of an execution of B",
        vec![Write::Execution {
            execution: ex_planted,
            expected_rev: None,
        }],
    ));
    let mut cr_edit = cr_b.clone();
    cr_edit.status = ChangeStatus::Cancelled;
    cr_edit.rev = 2;
    refused.push((
        "update of a change of B",
        vec![Write::Change {
            change: cr_edit,
            expected_rev: Some(1),
        }],
    ));
    refused.push((
        "insert of a change of B",
        vec![Write::Change {
            change: new_change(&b, Key::new(KeyKind::Change, 9), "Planted"),
            expected_rev: None,
        }],
    ));
    let mut inc_edit = inc_b.clone();
    inc_edit.status = IncidentStatus::Resolved;
    inc_edit.rev = 2;
    refused.push((
        "update of an incident of B",
        vec![Write::Incident {
            incident: inc_edit,
            expected_rev: Some(1),
        }],
    ));
    refused.push((
        "insert of an incident of B",
        vec![Write::Incident {
            incident: new_incident(&b, Key::new(KeyKind::Incident, 9), "Planted"),
            expected_rev: None,
        }],
    ));
    let mut ws_b = b.ws.clone();
    ws_b.policy.approver_must_differ = false;
    ws_b.rev = 2;
    refused.push((
        "update of workspace B",
        vec![Write::Workspace {
            workspace: ws_b,
            expected_rev: Some(1),
        }],
    ));
    let mut bob_m = b.bob_m.clone();
    bob_m.role = WorkspaceRole::Owner;
    bob_m.rev = 2;
    refused.push((
        "update of a membership of B",
        vec![Write::Membership {
            membership: bob_m,
            expected_rev: Some(1),
        }],
    ));
    refused.push((
        "insert of a membership of B",
        vec![Write::Membership {
            membership: new_membership(b.id(), a.alice.id, WorkspaceRole::Owner),
            expected_rev: None,
        }],
    ));
    let a_runbook = new_runbook(
        &a,
        Key::new(KeyKind::Runbook, 1),
        simple_body("Fine on its own"),
        &a.alice,
        true,
    );
    refused.push((
        "a valid write of A followed by a row of B",
        vec![
            Write::Runbook {
                runbook: a_runbook.clone(),
                expected_rev: None,
            },
            Write::Runbook {
                runbook: fresh_b.clone(),
                expected_rev: None,
            },
        ],
    ));

    for (what, writes) in refused {
        assert!(
            try_commit(store, a.id(), writes).await.is_err(),
            "{what} in a commit for A is refused"
        );
    }

    assert_eq!(store.runbook(b.id(), rb_b.id).await.unwrap(), rb_b);
    assert_not_found(
        store.runbook(b.id(), fresh_b.id).await,
        "planted runbook in B",
    );
    assert_not_found(
        store.runbook(a.id(), fresh_b.id).await,
        "planted runbook in A",
    );
    assert_not_found(store.runbook(a.id(), rb_b.id).await, "claimed runbook in A");
    assert_not_found(
        store.runbook(a.id(), a_runbook.id).await,
        "A's write of a refused commit",
    );
    assert_eq!(
        store.runbook_versions(b.id(), rb_b.id).await.unwrap(),
        vec![first_version(&rb_b)]
    );
    assert_eq!(store.execution(b.id(), ex_b.id).await.unwrap(), ex_b);
    assert_eq!(store.step_events(b.id(), ex_b.id).await.unwrap().len(), 1);
    assert_eq!(
        store
            .list_executions(b.id(), &ExecutionQuery::default())
            .await
            .unwrap(),
        vec![ex_b]
    );
    assert_eq!(store.list_changes(b.id()).await.unwrap(), vec![cr_b]);
    assert_eq!(store.list_incidents(b.id()).await.unwrap(), vec![inc_b]);
    assert_eq!(store.workspace(b.id()).await.unwrap(), b.ws);
    assert_eq!(store.membership(b.id(), b.bob.id).await.unwrap(), b.bob_m);
    assert_not_found(
        store.membership(b.id(), a.alice.id).await,
        "planted membership",
    );
    assert_eq!(
        store
            .list_runbooks(a.id(), &RunbookQuery::default())
            .await
            .unwrap(),
        Vec::new()
    );
    assert_eq!(
        audit_len(store, a.id()).await,
        audit_a,
        "no audit entry in A"
    );
    assert_eq!(
        audit_len(store, b.id()).await,
        audit_b,
        "no audit entry in B"
    );
}

/// What a workspace says about a person is its own: one user's memberships of two workspaces
/// hold different display names, roles and chat identities; the same chat identity maps to
/// different users in two workspaces and each workspace finds only its own member; updating one
/// membership changes nothing seen through the other; a commit for one workspace cannot write a
/// membership of the other.
pub async fn people_are_isolated_between_workspaces(store: &dyn Store) {
    let a = setup(store, "ops").await;
    let b = setup(store, "dev").await;
    let mal = new_user("mal");
    let imp = new_user("imp");
    let mut mal_a = new_membership(a.id(), mal.id, WorkspaceRole::Admin);
    mal_a.display_name = label("Mal Reynolds");
    mal_a.team_roles = [name("sre")].into_iter().collect();
    mal_a.chat_identities = vec![chat("slack", "U0MAL"), chat("console", "mal")];
    let mut mal_b = new_membership(b.id(), mal.id, WorkspaceRole::Member);
    mal_b.display_name = label("M. R. (contractor)");
    mal_b.chat_identities = vec![chat("slack", "UMALB")];
    // In B, U0MAL is someone else.
    let mut imp_b = new_membership(b.id(), imp.id, WorkspaceRole::Operator);
    imp_b.display_name = label("Not Mal");
    imp_b.chat_identities = vec![chat("slack", "U0MAL")];
    commit_ok(
        store,
        a.id(),
        vec![insert_user(&mal), insert_membership(&mal_a)],
        draft_by(&a.alice, "member.added", "mal"),
    )
    .await;
    commit_ok(
        store,
        b.id(),
        vec![
            insert_membership(&mal_b),
            insert_user(&imp),
            insert_membership(&imp_b),
        ],
        draft_by(&b.alice, "member.added", "mal"),
    )
    .await;

    assert_eq!(store.membership(a.id(), mal.id).await.unwrap(), mal_a);
    assert_eq!(store.membership(b.id(), mal.id).await.unwrap(), mal_b);
    assert_not_found(
        store.membership(a.id(), imp.id).await,
        "a member of B through A",
    );
    let slack_mal = chat("slack", "U0MAL");
    assert_eq!(
        store.member_by_chat(a.id(), &slack_mal).await.unwrap(),
        (mal.clone(), mal_a.clone())
    );
    assert_eq!(
        store.member_by_chat(b.id(), &slack_mal).await.unwrap(),
        (imp.clone(), imp_b.clone())
    );
    assert_not_found(
        store.member_by_chat(a.id(), &chat("slack", "UMALB")).await,
        "B's identity of mal through A",
    );
    assert_not_found(
        store.member_by_chat(b.id(), &chat("console", "mal")).await,
        "A's identity of mal through B",
    );
    let members_of = |ws: WorkspaceId| async move {
        store
            .list_members(ws)
            .await
            .unwrap()
            .into_iter()
            .filter(|(u, _)| u.id == mal.id || u.id == imp.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(members_of(a.id()).await, vec![(mal.clone(), mal_a.clone())]);
    assert_eq!(
        members_of(b.id()).await,
        vec![(imp.clone(), imp_b.clone()), (mal.clone(), mal_b.clone())]
    );

    // A changes everything it says about mal, and gives up U0MAL.
    let (mal_a2, write) = update_membership(&mal_a, |m| {
        m.role = WorkspaceRole::Operator;
        m.display_name = label("Captain");
        m.team_roles.clear();
        m.chat_identities = vec![chat("slack", "UMALA")];
    });
    commit_ok(
        store,
        a.id(),
        vec![write],
        draft_by(&a.alice, "member.updated", "mal"),
    )
    .await;
    assert_eq!(store.membership(a.id(), mal.id).await.unwrap(), mal_a2);
    assert_eq!(store.membership(b.id(), mal.id).await.unwrap(), mal_b);
    assert_not_found(
        store.member_by_chat(a.id(), &slack_mal).await,
        "an identity A gave up",
    );
    assert_eq!(
        store.member_by_chat(b.id(), &slack_mal).await.unwrap(),
        (imp.clone(), imp_b.clone()),
        "B's mapping of the same identity is untouched"
    );
    assert_eq!(
        store
            .member_by_chat(b.id(), &chat("slack", "UMALB"))
            .await
            .unwrap(),
        (mal.clone(), mal_b.clone())
    );
    assert_eq!(
        members_of(b.id()).await,
        vec![(imp.clone(), imp_b.clone()), (mal.clone(), mal_b.clone())]
    );

    // B maps one more identity that A's member holds; A's mapping is untouched.
    let (mal_b2, write) = update_membership(&mal_b, |m| {
        m.chat_identities.push(chat("slack", "UMALA"));
    });
    commit_ok(
        store,
        b.id(),
        vec![write],
        draft_by(&b.alice, "member.updated", "mal"),
    )
    .await;
    assert_eq!(
        store
            .member_by_chat(a.id(), &chat("slack", "UMALA"))
            .await
            .unwrap(),
        (mal.clone(), mal_a2.clone())
    );
    assert_eq!(
        store
            .member_by_chat(b.id(), &chat("slack", "UMALA"))
            .await
            .unwrap(),
        (mal.clone(), mal_b2.clone())
    );

    // A commit for A cannot reach B's memberships.
    let (audit_a, audit_b) = (
        audit_len(store, a.id()).await,
        audit_len(store, b.id()).await,
    );
    let (_, promote_in_b) = update_membership(&mal_b2, |m| {
        m.role = WorkspaceRole::Owner;
        m.display_name = label("Hijacked");
    });
    assert_not_found(
        try_commit(store, a.id(), vec![promote_in_b]).await,
        "update of B's membership in a commit for A",
    );
    let (_, steal_in_b) = update_membership(&imp_b, |m| m.chat_identities.clear());
    assert_not_found(
        try_commit(store, a.id(), vec![steal_in_b]).await,
        "update of another member of B in a commit for A",
    );
    let mut plant = new_membership(b.id(), a.bob.id, WorkspaceRole::Owner);
    plant.chat_identities = vec![chat("slack", "UPLANT")];
    assert_not_found(
        try_commit(store, a.id(), vec![insert_membership(&plant)]).await,
        "insert of a membership of B in a commit for A",
    );
    assert_eq!(store.membership(b.id(), mal.id).await.unwrap(), mal_b2);
    assert_eq!(store.membership(b.id(), imp.id).await.unwrap(), imp_b);
    assert_not_found(
        store.membership(b.id(), a.bob.id).await,
        "a planted membership",
    );
    assert_not_found(
        store.member_by_chat(b.id(), &chat("slack", "UPLANT")).await,
        "identity of a planted membership",
    );
    assert_eq!(audit_len(store, a.id()).await, audit_a);
    assert_eq!(audit_len(store, b.id()).await, audit_b);
}
