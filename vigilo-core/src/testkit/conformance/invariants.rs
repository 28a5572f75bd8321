//! The commit invariants: the acting membership re-checked at commit, a workspace keeps an
//! active owner, and both under races.

use crate::audit;
use crate::ids::{Key, KeyKind, UserId};
use crate::roles::WorkspaceRole;
use crate::store::{ActingMember, Store, StoreError, Write};

use super::fixtures::*;

/// A commit carrying an acting member applies only while that member's membership of the
/// workspace is still at the revision it names: after the membership moves, the commit is a
/// `Conflict` that applies nothing and appends no audit entry; so is a commit on the authority
/// of a user who is not a member of the workspace (or only of another one).
pub async fn commit_checks_acting_membership(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let other = setup(store, "dev").await;
    let rb_write = |title: &str| {
        let rb = new_runbook(
            &ctx,
            Key::new(KeyKind::Runbook, 1),
            simple_body(title),
            &ctx.bob,
            false,
        );
        (
            rb.clone(),
            vec![
                Write::Runbook {
                    runbook: rb.clone(),
                    expected_rev: None,
                },
                Write::RunbookVersion(first_version(&rb)),
            ],
        )
    };

    // 1. The acting membership is current: the commit applies.
    let (rb, writes) = rb_write("Current authority");
    let entry = try_commit_as(store, ctx.id(), writes, acting(&ctx.bob_m))
        .await
        .unwrap();
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap(), rb);
    let before = audit_len(store, ctx.id()).await;
    assert_eq!(entry.seq as usize, before);

    // 2. bob's membership moves (alice, acting, changes his role).
    let (bob_m2, write) = update_membership(&ctx.bob_m, |m| m.role = WorkspaceRole::Member);
    try_commit_as(store, ctx.id(), vec![write], acting(&ctx.alice_m))
        .await
        .unwrap();
    let before = before + 1;

    // 3. A commit on bob's old authority is refused and applies nothing.
    let mut rb_edit = rb.clone();
    rb_edit.is_published = true;
    rb_edit.rev = 2;
    let publish = vec![Write::Runbook {
        runbook: rb_edit.clone(),
        expected_rev: Some(1),
    }];
    assert_authority_moved(
        try_commit_as(store, ctx.id(), publish.clone(), acting(&ctx.bob_m)).await,
        "a commit on the authority of a membership that has moved",
    );
    assert_authority_moved(
        try_commit_as(
            store,
            ctx.id(),
            publish.clone(),
            Some(ActingMember {
                user: ctx.bob.id,
                membership_rev: bob_m2.rev + 1,
            }),
        )
        .await,
        "a commit on the authority of a revision not reached yet",
    );
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap(), rb);
    assert_eq!(
        store.membership(ctx.id(), ctx.bob.id).await.unwrap(),
        bob_m2
    );
    assert_eq!(
        audit_len(store, ctx.id()).await,
        before,
        "a refused commit appends no audit entry"
    );
    // An audit-only commit is checked too.
    assert_authority_moved(
        try_commit_as(store, ctx.id(), Vec::new(), acting(&ctx.bob_m)).await,
        "an audit-only commit on a moved authority",
    );
    assert_eq!(audit_len(store, ctx.id()).await, before);

    // 4. Users who are not members of this workspace have no authority in it.
    let loner = new_user("loner");
    commit_ok(
        store,
        ctx.id(),
        vec![insert_user(&loner)],
        draft("user.created", "loner"),
    )
    .await;
    let before = before + 1;
    for (who, user) in [
        ("a user without membership", loner.id),
        ("a member of another workspace only", other.bob.id),
        ("an unknown user", UserId::new()),
    ] {
        assert_authority_moved(
            try_commit_as(
                store,
                ctx.id(),
                publish.clone(),
                Some(ActingMember {
                    user,
                    membership_rev: 1,
                }),
            )
            .await,
            &format!("a commit on the authority of {who}"),
        );
    }
    // Nor does a member of B act in A with B's membership revision.
    assert_authority_moved(
        try_commit_as(store, ctx.id(), publish.clone(), acting(&other.alice_m)).await,
        "a commit in A on the authority of a membership of B",
    );
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap(), rb);
    assert_eq!(audit_len(store, ctx.id()).await, before);
    assert_eq!(audit_len(store, other.id()).await, 1);

    // 5. The current revision works again, with the entry chained right after.
    let entry = try_commit_as(store, ctx.id(), publish, acting(&bob_m2))
        .await
        .unwrap();
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap(), rb_edit);
    assert_eq!(entry.seq as usize, before + 1);

    // 6. A member may change their own membership on its current authority: the authority is
    // what the command was checked against, before the commit's own writes (an owner stepping
    // down while another owner remains).
    let (bob_m3, write) = update_membership(&bob_m2, |m| m.role = WorkspaceRole::Operator);
    try_commit_as(store, ctx.id(), vec![write], acting(&bob_m2))
        .await
        .unwrap();
    assert_eq!(
        store.membership(ctx.id(), ctx.bob.id).await.unwrap(),
        bob_m3
    );
    let all = audit_all(store, ctx.id()).await;
    assert_eq!(audit::verify(&all).unwrap(), all.len() as u64);
}

/// A commit that writes a membership must leave the workspace with an active owner: demoting
/// or removing the last owner is a `Conflict` that applies nothing; with two owners, one can be
/// demoted; the check is on the state the whole commit leaves (a hand-over in one commit works).
pub async fn workspace_keeps_an_owner(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let before = audit_len(store, ctx.id()).await;
    let rb = new_runbook(
        &ctx,
        Key::new(KeyKind::Runbook, 1),
        simple_body("Rides along"),
        &ctx.alice,
        true,
    );
    let rb_write = Write::Runbook {
        runbook: rb.clone(),
        expected_rev: None,
    };

    // 1. The only owner demoted, or removed: refused, with the writes beside it.
    let (_, demote_alice) = update_membership(&ctx.alice_m, |m| m.role = WorkspaceRole::Admin);
    assert_no_owner_left(
        try_commit(
            store,
            ctx.id(),
            vec![rb_write.clone(), demote_alice.clone()],
        )
        .await,
        "demoting the only owner",
    );
    let (_, remove_alice) = update_membership(&ctx.alice_m, |m| m.removed_at = Some(now()));
    assert_no_owner_left(
        try_commit_as(store, ctx.id(), vec![remove_alice], acting(&ctx.alice_m)).await,
        "removing the only owner",
    );
    assert_eq!(
        store.membership(ctx.id(), ctx.alice.id).await.unwrap(),
        ctx.alice_m
    );
    assert_not_found(
        store.runbook(ctx.id(), rb.id).await,
        "a write of a commit that left no owner",
    );
    assert_eq!(audit_len(store, ctx.id()).await, before);

    // 2. A workspace created without an active owner is refused too.
    let empty = new_workspace("ownerless");
    let mut ghost_owner = new_membership(empty.id, ctx.alice.id, WorkspaceRole::Owner);
    ghost_owner.removed_at = Some(now());
    for (what, m) in [
        (
            "a new workspace whose only member is an admin",
            new_membership(empty.id, ctx.alice.id, WorkspaceRole::Admin),
        ),
        ("a new workspace whose only owner is removed", ghost_owner),
    ] {
        assert_no_owner_left(
            try_commit(
                store,
                empty.id,
                vec![
                    Write::Workspace {
                        workspace: empty.clone(),
                        expected_rev: None,
                    },
                    insert_membership(&m),
                ],
            )
            .await,
            what,
        );
    }
    assert_not_found(store.workspace(empty.id).await, "an ownerless workspace");

    // 3. Two owners: one may be demoted.
    let (bob_owner, write) = update_membership(&ctx.bob_m, |m| m.role = WorkspaceRole::Owner);
    commit_ok(
        store,
        ctx.id(),
        vec![write],
        draft("member.promoted", "bob"),
    )
    .await;
    let (alice_admin, write) = update_membership(&ctx.alice_m, |m| m.role = WorkspaceRole::Admin);
    commit_ok(
        store,
        ctx.id(),
        vec![write],
        draft("member.demoted", "alice"),
    )
    .await;
    assert_eq!(
        store.membership(ctx.id(), ctx.alice.id).await.unwrap(),
        alice_admin
    );

    // 4. The last remaining owner marked removed (still role owner): refused.
    let (_, remove_bob) = update_membership(&bob_owner, |m| m.removed_at = Some(now()));
    assert_no_owner_left(
        try_commit(store, ctx.id(), vec![remove_bob]).await,
        "removing the last remaining owner",
    );
    let (_, demote_bob) = update_membership(&bob_owner, |m| m.role = WorkspaceRole::Member);
    assert_no_owner_left(
        try_commit(store, ctx.id(), vec![demote_bob]).await,
        "demoting the last remaining owner",
    );
    assert_eq!(
        store.membership(ctx.id(), ctx.bob.id).await.unwrap(),
        bob_owner
    );

    // 5. A hand-over in one commit: the state the commit leaves has an owner.
    let (alice_owner, promote) = update_membership(&alice_admin, |m| m.role = WorkspaceRole::Owner);
    let (bob_gone, remove) = update_membership(&bob_owner, |m| m.removed_at = Some(now()));
    commit_ok(
        store,
        ctx.id(),
        vec![remove, promote],
        draft("member.handover", "alice"),
    )
    .await;
    let owners: Vec<UserId> = store
        .list_members(ctx.id())
        .await
        .unwrap()
        .iter()
        .filter(|(_, m)| m.is_active_owner())
        .map(|(u, _)| u.id)
        .collect();
    assert_eq!(owners, vec![ctx.alice.id]);
    assert_eq!(
        store.membership(ctx.id(), ctx.alice.id).await.unwrap(),
        alice_owner
    );
    assert_eq!(
        store.membership(ctx.id(), ctx.bob.id).await.unwrap(),
        bob_gone
    );
}

/// Rounds of the acting race of [`owner_demotions_race`] (each two concurrent commits).
const ACTING_RACE_ROUNDS: usize = 300;
/// Rounds of the plain race (no acting member: the owner invariant alone).
const PLAIN_RACE_ROUNDS: usize = 200;

/// Two owners demote each other at the same moment, hundreds of times. With an acting member
/// (each on the authority of its own membership revision) and without one (the owner invariant
/// alone), at most one of the two commits may succeed, every loser is a `Conflict`, the
/// workspace always keeps an active owner, and what is stored is exactly the winner's change.
pub async fn owner_demotions_race(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let (x, y) = (new_user("racer-x"), new_user("racer-y"));
    commit_ok(
        store,
        ctx.id(),
        vec![insert_user(&x), insert_user(&y)],
        draft("user.created", "racers"),
    )
    .await;
    let mut violations: Vec<String> = Vec::new();
    let mut wins = 0;
    for round in 0..ACTING_RACE_ROUNDS + PLAIN_RACE_ROUNDS {
        let with_acting = round < ACTING_RACE_ROUNDS;
        // A fresh workspace where x and y are both owners.
        let ws = new_workspace(&format!("race-{round}"));
        let xm = new_membership(ws.id, x.id, WorkspaceRole::Owner);
        let ym = new_membership(ws.id, y.id, WorkspaceRole::Owner);
        commit_ok(
            store,
            ws.id,
            vec![
                Write::Workspace {
                    workspace: ws.clone(),
                    expected_rev: None,
                },
                insert_membership(&xm),
                insert_membership(&ym),
            ],
            draft("workspace.created", "race"),
        )
        .await;
        // Caller 0 is x demoting y; caller 1 is y demoting x.
        let pairs = [(&xm, &ym), (&ym, &xm)];
        let results = parallel(2, |i| {
            let (me, them) = pairs[i];
            let ws = ws.id;
            async move {
                let (_, demote) = update_membership(them, |m| m.role = WorkspaceRole::Admin);
                let by = if with_acting { acting(me) } else { None };
                try_commit_as(store, ws, vec![demote], by).await
            }
        });
        let kind = if with_acting { "acting" } else { "plain" };
        let won: Vec<usize> = (0..2).filter(|&i| results[i].is_ok()).collect();
        for (i, r) in results.iter().enumerate() {
            if let Err(e) = r
                && !matches!(
                    e,
                    StoreError::Conflict(_)
                        | StoreError::AuthorityMoved(_)
                        | StoreError::NoOwnerLeft
                )
            {
                violations.push(format!(
                    "{kind} round {round}: caller {i} lost with {e:?}, not Conflict"
                ));
            }
        }
        if won.len() > 1 {
            violations.push(format!("{kind} round {round}: both demotions succeeded"));
        }
        wins += won.len();
        let members = store.list_members(ws.id).await.unwrap();
        let owners: Vec<UserId> = members
            .iter()
            .filter(|(_, m)| m.is_active_owner())
            .map(|(u, _)| u.id)
            .collect();
        if owners.is_empty() {
            violations.push(format!("{kind} round {round}: no active owner left"));
        }
        // What is stored is the winner's change, or nothing.
        let expected: Vec<UserId> = match won.as_slice() {
            [] => vec![x.id, y.id],
            [0] => vec![x.id],
            [1] => vec![y.id],
            _ => Vec::new(),
        };
        if owners != expected && won.len() <= 1 {
            violations.push(format!(
                "{kind} round {round}: winners {won:?} but owners {owners:?} are stored"
            ));
        }
        let entries = audit_len(store, ws.id).await;
        if entries != 1 + won.len() {
            violations.push(format!(
                "{kind} round {round}: {entries} audit entries for {} successful commits",
                1 + won.len()
            ));
        }
    }
    assert!(
        violations.is_empty(),
        "{} violations in {} races:\n{}",
        violations.len(),
        ACTING_RACE_ROUNDS + PLAIN_RACE_ROUNDS,
        violations.join("\n")
    );
    assert!(
        wins > 0,
        "no demotion ever succeeded: the race tested nothing"
    );
}
