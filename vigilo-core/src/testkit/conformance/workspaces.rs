//! Workspaces, users and memberships: rows read back, unique values, updates.

use crate::ids::UserId;
use crate::roles::WorkspaceRole;
use crate::store::{Store, Write};
use crate::workspace::Policy;

use super::fixtures::*;

/// A workspace reads back by id, slug and Slack team; `list_workspaces` orders by slug; an update
/// with the right revision moves slug and team (the old ones stop matching); a stale revision is a
/// `Conflict`; updating a missing workspace is `NotFound`.
pub async fn workspace_round_trip(store: &dyn Store) {
    let mut ws = new_workspace("ops");
    ws.slack_team = Some("T0001".into());
    ws.policy = Policy {
        approver_must_differ: false,
    };
    let entry = commit_ok(
        store,
        ws.id,
        vec![Write::Workspace {
            workspace: ws.clone(),
            expected_rev: None,
        }],
        draft("workspace.created", "ops"),
    )
    .await;
    assert_eq!(entry.seq, 1);
    assert_eq!(entry.workspace, ws.id);
    assert_eq!(store.workspace(ws.id).await.unwrap(), ws);
    assert_eq!(store.workspace_by_slug("ops").await.unwrap(), ws);
    assert_eq!(store.workspace_by_slack_team("T0001").await.unwrap(), ws);

    let other = new_workspace("abc");
    commit_ok(
        store,
        other.id,
        vec![Write::Workspace {
            workspace: other.clone(),
            expected_rev: None,
        }],
        draft("workspace.created", "abc"),
    )
    .await;
    assert_eq!(
        store.list_workspaces().await.unwrap(),
        vec![other.clone(), ws.clone()]
    );

    let mut renamed = ws.clone();
    renamed.slug = name("ops-eu");
    renamed.slack_team = Some("T0002".into());
    renamed.policy = Policy::default();
    renamed.rev = 2;
    commit_ok(
        store,
        ws.id,
        vec![Write::Workspace {
            workspace: renamed.clone(),
            expected_rev: Some(1),
        }],
        draft("workspace.renamed", "ops-eu"),
    )
    .await;
    assert_eq!(store.workspace(ws.id).await.unwrap(), renamed);
    assert_eq!(store.workspace_by_slug("ops-eu").await.unwrap(), renamed);
    assert_eq!(
        store.workspace_by_slack_team("T0002").await.unwrap(),
        renamed
    );
    assert_not_found(
        store.workspace_by_slug("ops").await,
        "old slug after rename",
    );
    assert_not_found(
        store.workspace_by_slack_team("T0001").await,
        "old Slack team after relink",
    );

    let mut stale = renamed.clone();
    stale.slug = name("ops-x");
    stale.rev = 2;
    assert_conflict(
        try_commit(
            store,
            ws.id,
            vec![Write::Workspace {
                workspace: stale,
                expected_rev: Some(1),
            }],
        )
        .await,
        "workspace update with a stale revision",
    );
    assert_eq!(
        store.workspace(ws.id).await.unwrap(),
        renamed,
        "a refused update changes nothing"
    );
    assert_not_found(
        store.workspace_by_slug("ops-x").await,
        "slug of a refused update",
    );

    let mut ghost = new_workspace("ghost");
    ghost.rev = 2;
    assert_not_found(
        try_commit(
            store,
            ghost.id,
            vec![Write::Workspace {
                workspace: ghost.clone(),
                expected_rev: Some(1),
            }],
        )
        .await,
        "update of a workspace that does not exist",
    );
    assert_not_found(
        store.workspace(ghost.id).await,
        "workspace of a refused update",
    );
}

/// Slug and Slack team are unique: inserting a taken one is `AlreadyExists` (and so is a taken
/// id); renaming onto a taken slug is refused; a value given up by an update is free again.
pub async fn workspace_unique_values(store: &dyn Store) {
    let mut ops = new_workspace("ops");
    ops.slack_team = Some("T1".into());
    commit_ok(
        store,
        ops.id,
        vec![Write::Workspace {
            workspace: ops.clone(),
            expected_rev: None,
        }],
        draft("workspace.created", "ops"),
    )
    .await;

    let same_slug = new_workspace("ops");
    assert_already_exists(
        try_commit(
            store,
            same_slug.id,
            vec![Write::Workspace {
                workspace: same_slug.clone(),
                expected_rev: None,
            }],
        )
        .await,
        "a second workspace with slug `ops`",
    );
    assert_not_found(store.workspace(same_slug.id).await, "refused workspace");

    let mut same_team = new_workspace("dev");
    same_team.slack_team = Some("T1".into());
    assert_already_exists(
        try_commit(
            store,
            same_team.id,
            vec![Write::Workspace {
                workspace: same_team.clone(),
                expected_rev: None,
            }],
        )
        .await,
        "a second workspace linked to Slack team T1",
    );
    assert_not_found(
        store.workspace_by_slug("dev").await,
        "refused workspace by slug",
    );

    let mut same_id = new_workspace("other");
    same_id.id = ops.id;
    assert_already_exists(
        try_commit(
            store,
            ops.id,
            vec![Write::Workspace {
                workspace: same_id,
                expected_rev: None,
            }],
        )
        .await,
        "insert of an existing workspace id",
    );
    assert_eq!(store.workspace(ops.id).await.unwrap(), ops);

    let dev = new_workspace("dev");
    commit_ok(
        store,
        dev.id,
        vec![Write::Workspace {
            workspace: dev.clone(),
            expected_rev: None,
        }],
        draft("workspace.created", "dev"),
    )
    .await;
    let mut onto_ops = dev.clone();
    onto_ops.slug = name("ops");
    onto_ops.rev = 2;
    assert_taken(
        try_commit(
            store,
            dev.id,
            vec![Write::Workspace {
                workspace: onto_ops,
                expected_rev: Some(1),
            }],
        )
        .await,
        "renaming a workspace onto a taken slug",
    );
    assert_eq!(store.workspace(dev.id).await.unwrap(), dev);

    // ops gives up its slug and team; both are free again.
    let mut moved = ops.clone();
    moved.slug = name("ops-old");
    moved.slack_team = None;
    moved.rev = 2;
    commit_ok(
        store,
        ops.id,
        vec![Write::Workspace {
            workspace: moved,
            expected_rev: Some(1),
        }],
        draft("workspace.renamed", "ops-old"),
    )
    .await;
    let mut fresh = new_workspace("ops");
    fresh.slack_team = Some("T1".into());
    commit_ok(
        store,
        fresh.id,
        vec![Write::Workspace {
            workspace: fresh.clone(),
            expected_rev: None,
        }],
        draft("workspace.created", "ops"),
    )
    .await;
    assert_eq!(store.workspace_by_slug("ops").await.unwrap(), fresh);
    assert_eq!(store.workspace_by_slack_team("T1").await.unwrap(), fresh);
}

/// A user reads back by id and handle; an update moves the handle (the old one stops matching); a
/// stale revision is a `Conflict` and changes nothing. A member reads back by each chat identity
/// its membership holds (with the user row); an update of the membership replaces its identities
/// (the old ones stop matching) and its display name; a stale revision changes nothing.
pub async fn user_round_trip(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let carol = new_user("carol");
    let mut carol_m = new_membership(ctx.id(), carol.id, WorkspaceRole::Member);
    carol_m.display_name = label("Carol Ng");
    carol_m.chat_identities = vec![chat("slack", "U1"), chat("console", "carol")];
    commit_ok(
        store,
        ctx.id(),
        vec![insert_user(&carol), insert_membership(&carol_m)],
        draft_by(&ctx.alice, "user.created", "carol"),
    )
    .await;
    assert_eq!(store.user(carol.id).await.unwrap(), carol);
    assert_eq!(store.user_by_handle("carol").await.unwrap(), carol);
    assert_eq!(store.membership(ctx.id(), carol.id).await.unwrap(), carol_m);
    assert_eq!(
        store
            .member_by_chat(ctx.id(), &chat("slack", "U1"))
            .await
            .unwrap(),
        (carol.clone(), carol_m.clone())
    );
    assert_eq!(
        store
            .member_by_chat(ctx.id(), &chat("console", "carol"))
            .await
            .unwrap(),
        (carol.clone(), carol_m.clone())
    );
    assert_not_found(
        store.member_by_chat(ctx.id(), &chat("slack", "U2")).await,
        "an identity nobody holds",
    );
    assert_not_found(
        store.member_by_chat(ctx.id(), &chat("teams", "U1")).await,
        "the same user id on another platform",
    );

    // The user row: a rename.
    let mut next = carol.clone();
    next.handle = name("caroline");
    next.rev = 2;
    commit_ok(
        store,
        ctx.id(),
        vec![Write::User {
            user: next.clone(),
            expected_rev: Some(1),
        }],
        draft_by(&ctx.alice, "user.renamed", "caroline"),
    )
    .await;
    assert_eq!(store.user(carol.id).await.unwrap(), next);
    assert_eq!(store.user_by_handle("caroline").await.unwrap(), next);
    assert_not_found(
        store.user_by_handle("carol").await,
        "old handle after rename",
    );
    assert_eq!(
        store
            .member_by_chat(ctx.id(), &chat("slack", "U1"))
            .await
            .unwrap(),
        (next.clone(), carol_m.clone()),
        "a member found by identity comes with the user row as it is now"
    );

    let mut stale = next.clone();
    stale.handle = name("cee");
    stale.rev = 2;
    assert_conflict(
        try_commit(
            store,
            ctx.id(),
            vec![Write::User {
                user: stale,
                expected_rev: Some(1),
            }],
        )
        .await,
        "user update with a stale revision",
    );
    assert_eq!(store.user(carol.id).await.unwrap(), next);
    assert_not_found(
        store.user_by_handle("cee").await,
        "handle of a refused update",
    );

    // The membership: display name and identities replaced.
    let (moved, write) = update_membership(&carol_m, |m| {
        m.display_name = label("Caroline Ng");
        m.chat_identities = vec![chat("slack", "U1"), chat("slack", "U9")];
    });
    commit_ok(
        store,
        ctx.id(),
        vec![write],
        draft_by(&ctx.alice, "member.updated", "caroline"),
    )
    .await;
    assert_eq!(store.membership(ctx.id(), carol.id).await.unwrap(), moved);
    for identity in [chat("slack", "U1"), chat("slack", "U9")] {
        assert_eq!(
            store.member_by_chat(ctx.id(), &identity).await.unwrap(),
            (next.clone(), moved.clone())
        );
    }
    assert_not_found(
        store
            .member_by_chat(ctx.id(), &chat("console", "carol"))
            .await,
        "an identity the update removed",
    );

    let (_, stale) = update_membership(&carol_m, |m| {
        m.chat_identities = vec![chat("slack", "U7")];
    });
    assert_conflict(
        try_commit(store, ctx.id(), vec![stale]).await,
        "membership update with a stale revision",
    );
    assert_eq!(store.membership(ctx.id(), carol.id).await.unwrap(), moved);
    assert_not_found(
        store.member_by_chat(ctx.id(), &chat("slack", "U7")).await,
        "identity of a refused update",
    );
}

/// Handles are unique across users and chat identities unique within a workspace: taken ones
/// are refused on insert (`AlreadyExists`) and on update; an identity differing in any part is
/// another identity; a handle or identity given up is free again.
pub async fn user_unique_values(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let dan = new_user("dan");
    let mut dan_m = new_membership(ctx.id(), dan.id, WorkspaceRole::Member);
    dan_m.chat_identities = vec![chat("slack", "U1")];
    commit_ok(
        store,
        ctx.id(),
        vec![insert_user(&dan), insert_membership(&dan_m)],
        draft("user.created", "dan"),
    )
    .await;

    let same_handle = new_user("dan");
    assert_already_exists(
        try_commit(store, ctx.id(), vec![insert_user(&same_handle)]).await,
        "a second user with handle `dan`",
    );
    assert_not_found(store.user(same_handle.id).await, "refused user");

    let dana = new_user("dana");
    let mut same_identity = new_membership(ctx.id(), dana.id, WorkspaceRole::Member);
    same_identity.chat_identities = vec![chat("slack", "U2"), chat("slack", "U1")];
    assert_taken(
        try_commit(
            store,
            ctx.id(),
            vec![insert_user(&dana), insert_membership(&same_identity)],
        )
        .await,
        "a second member of the workspace with identity slack/U1",
    );
    assert_not_found(store.user_by_handle("dana").await, "refused user by handle");
    assert_not_found(
        store.membership(ctx.id(), dana.id).await,
        "refused membership",
    );
    assert_not_found(
        store.member_by_chat(ctx.id(), &chat("slack", "U2")).await,
        "identity of a refused membership",
    );
    assert_eq!(
        store
            .member_by_chat(ctx.id(), &chat("slack", "U1"))
            .await
            .unwrap(),
        (dan.clone(), dan_m.clone())
    );

    let mut same_id = new_user("daniel");
    same_id.id = dan.id;
    assert_already_exists(
        try_commit(store, ctx.id(), vec![insert_user(&same_id)]).await,
        "insert of an existing user id",
    );

    // Another platform, another user id: other identities.
    let mut dana_m = new_membership(ctx.id(), dana.id, WorkspaceRole::Member);
    dana_m.chat_identities = vec![chat("teams", "U1"), chat("slack", "U12")];
    commit_ok(
        store,
        ctx.id(),
        vec![insert_user(&dana), insert_membership(&dana_m)],
        draft("user.created", "dana"),
    )
    .await;
    assert_eq!(
        store
            .member_by_chat(ctx.id(), &chat("teams", "U1"))
            .await
            .unwrap(),
        (dana.clone(), dana_m.clone())
    );
    assert_eq!(
        store
            .member_by_chat(ctx.id(), &chat("slack", "U1"))
            .await
            .unwrap(),
        (dan.clone(), dan_m.clone())
    );

    let mut onto_dan = dana.clone();
    onto_dan.handle = name("dan");
    onto_dan.rev = 2;
    assert_taken(
        try_commit(
            store,
            ctx.id(),
            vec![Write::User {
                user: onto_dan,
                expected_rev: Some(1),
            }],
        )
        .await,
        "renaming a user onto a taken handle",
    );
    assert_eq!(store.user(dana.id).await.unwrap(), dana);
    let (_, steal_identity) = update_membership(&dana_m, |m| {
        m.chat_identities.push(chat("slack", "U1"));
    });
    assert_taken(
        try_commit(store, ctx.id(), vec![steal_identity]).await,
        "adding an identity another member of the workspace holds",
    );
    assert_eq!(store.membership(ctx.id(), dana.id).await.unwrap(), dana_m);
    assert_eq!(
        store
            .member_by_chat(ctx.id(), &chat("slack", "U1"))
            .await
            .unwrap(),
        (dan.clone(), dan_m.clone())
    );

    // dan gives up his handle and his identity: both are free again.
    let mut renamed = dan.clone();
    renamed.handle = name("daniel");
    renamed.rev = 2;
    let (_, unmapped) = update_membership(&dan_m, |m| m.chat_identities.clear());
    commit_ok(
        store,
        ctx.id(),
        vec![
            Write::User {
                user: renamed,
                expected_rev: Some(1),
            },
            unmapped,
        ],
        draft("user.renamed", "daniel"),
    )
    .await;
    assert_not_found(
        store.member_by_chat(ctx.id(), &chat("slack", "U1")).await,
        "an identity given up",
    );
    let new_dan = new_user("dan");
    let mut new_dan_m = new_membership(ctx.id(), new_dan.id, WorkspaceRole::Member);
    new_dan_m.chat_identities = vec![chat("slack", "U1")];
    commit_ok(
        store,
        ctx.id(),
        vec![insert_user(&new_dan), insert_membership(&new_dan_m)],
        draft("user.created", "dan"),
    )
    .await;
    assert_eq!(store.user_by_handle("dan").await.unwrap(), new_dan);
    assert_eq!(
        store
            .member_by_chat(ctx.id(), &chat("slack", "U1"))
            .await
            .unwrap(),
        (new_dan, new_dan_m)
    );
}

/// 20 concurrent inserts of users with the same handle: exactly one succeeds, the others are
/// refused (`AlreadyExists`, or `Conflict` for a value taken by a concurrent writer).
pub async fn concurrent_inserts_of_one_handle(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let ws = ctx.id();
    let results = parallel(20, move |_| async move {
        let user = new_user("racer");
        let id = user.id;
        let r = try_commit(
            store,
            ws,
            vec![Write::User {
                user,
                expected_rev: None,
            }],
        )
        .await;
        (id, r)
    });
    let winners: Vec<UserId> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one insert of handle `racer` wins"
    );
    for (_, r) in results.into_iter().filter(|(_, r)| r.is_err()) {
        assert_taken(r, "a losing concurrent insert");
    }
    assert_eq!(store.user_by_handle("racer").await.unwrap().id, winners[0]);
    assert_eq!(
        audit_len(store, ctx.id()).await,
        2,
        "one audit entry per successful commit"
    );
}

/// A membership reads back; `list_members` pairs users and memberships ordered by handle; role
/// and team roles update with the right revision; stale revision, duplicate and missing rows are
/// refused.
pub async fn membership_round_trip(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    assert_eq!(
        store.membership(ctx.id(), ctx.alice.id).await.unwrap(),
        ctx.alice_m
    );
    assert_eq!(
        store.membership(ctx.id(), ctx.bob.id).await.unwrap(),
        ctx.bob_m
    );

    let abe = new_user("abe");
    let abe_m = new_membership(ctx.id(), abe.id, WorkspaceRole::Member);
    let loner = new_user("zed");
    commit_ok(
        store,
        ctx.id(),
        vec![
            Write::User {
                user: abe.clone(),
                expected_rev: None,
            },
            Write::Membership {
                membership: abe_m.clone(),
                expected_rev: None,
            },
            Write::User {
                user: loner.clone(),
                expected_rev: None,
            },
        ],
        draft_by(&ctx.alice, "member.added", "abe"),
    )
    .await;
    let members = store.list_members(ctx.id()).await.unwrap();
    assert_eq!(
        members,
        vec![
            (abe.clone(), abe_m.clone()),
            (ctx.alice.clone(), ctx.alice_m.clone()),
            (ctx.bob.clone(), ctx.bob_m.clone()),
        ]
    );
    assert_not_found(
        store.membership(ctx.id(), loner.id).await,
        "a user without membership",
    );
    assert_not_found(
        store.membership(ctx.id(), UserId::new()).await,
        "an unknown user",
    );

    let mut promoted = abe_m.clone();
    promoted.role = WorkspaceRole::Admin;
    promoted.team_roles = [name("dba"), name("sre")].into_iter().collect();
    promoted.rev = 2;
    commit_ok(
        store,
        ctx.id(),
        vec![Write::Membership {
            membership: promoted.clone(),
            expected_rev: Some(1),
        }],
        draft_by(&ctx.alice, "member.role_changed", "abe"),
    )
    .await;
    assert_eq!(store.membership(ctx.id(), abe.id).await.unwrap(), promoted);

    let mut stale = abe_m.clone();
    stale.role = WorkspaceRole::Owner;
    stale.rev = 2;
    assert_conflict(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Membership {
                membership: stale,
                expected_rev: Some(1),
            }],
        )
        .await,
        "membership update with a stale revision",
    );
    assert_eq!(store.membership(ctx.id(), abe.id).await.unwrap(), promoted);

    assert_already_exists(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Membership {
                membership: new_membership(ctx.id(), abe.id, WorkspaceRole::Member),
                expected_rev: None,
            }],
        )
        .await,
        "a second membership of the same user",
    );
    let mut missing = new_membership(ctx.id(), loner.id, WorkspaceRole::Member);
    missing.rev = 2;
    assert_not_found(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Membership {
                membership: missing,
                expected_rev: Some(1),
            }],
        )
        .await,
        "update of a membership that does not exist",
    );
    assert_eq!(store.list_members(ctx.id()).await.unwrap().len(), 3);
}
