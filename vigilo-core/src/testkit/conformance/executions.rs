//! Executions: rows and events, a click's reads at once, lists.

use crate::execution::machine::{self, Command, StartParams};
use crate::execution::{ChannelRef, ExecutionStatus};
use crate::ids::{ChangeId, ExecutionId, Key, KeyKind, WorkspaceId};
use crate::runbook::VersionSource;
use crate::store::{ExecutionQuery, Store, StoreError, Write};

use super::fixtures::*;

/// An execution and its events read back exactly; a step commits the new execution with the next
/// event; a stale revision is a `Conflict` and changes nothing; a duplicate (execution, seq) is
/// `AlreadyExists`; missing rows are `NotFound`.
pub async fn execution_round_trip(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let rb = add_runbook(
        store,
        &ctx,
        simple_body("Restart the API"),
        &ctx.alice,
        true,
    )
    .await;
    let key = store
        .allocate_key(ctx.id(), KeyKind::Execution)
        .await
        .unwrap();
    let started = machine::start(
        &rb,
        StartParams {
            key,
            operator: ctx.alice.id,
            change: None,
            incident: None,
            rehearsal: false,
            channel: Some(ChannelRef {
                platform: "slack".into(),
                channel: "C1".into(),
            }),
        },
        now(),
    );
    commit_ok(
        store,
        ctx.id(),
        vec![
            Write::Execution {
                execution: started.execution.clone(),
                expected_rev: None,
            },
            Write::StepEvent(started.event.clone()),
        ],
        draft_by(&ctx.alice, "execution.started", &key.to_string()),
    )
    .await;
    let ex = started.execution;
    assert_eq!(store.execution(ctx.id(), ex.id).await.unwrap(), ex);
    assert_eq!(store.execution_by_key(ctx.id(), key).await.unwrap(), ex);
    assert_eq!(
        store.step_events(ctx.id(), ex.id).await.unwrap(),
        vec![started.event.clone()]
    );

    let t = machine::apply(
        &ex,
        &Command::Done {
            step: 1,
            note: Some("all good".into()),
        },
        &ctx.actor(&ctx.bob),
        &ctx.ws.policy,
        now(),
    )
    .unwrap();
    commit_ok(
        store,
        ctx.id(),
        vec![
            Write::Execution {
                execution: t.execution.clone(),
                expected_rev: Some(1),
            },
            Write::StepEvent(t.event.clone()),
        ],
        draft_by(&ctx.bob, "execution.step_done", &key.to_string()),
    )
    .await;
    let ex2 = t.execution;
    assert_eq!(ex2.rev, 2);
    assert_eq!(store.execution(ctx.id(), ex.id).await.unwrap(), ex2);
    assert_eq!(
        store.step_events(ctx.id(), ex.id).await.unwrap(),
        vec![started.event.clone(), t.event.clone()]
    );

    // A second command computed from the stale row.
    let lost = machine::apply(
        &ex,
        &Command::Skip {
            step: 1,
            reason: "not needed".into(),
        },
        &ctx.actor(&ctx.alice),
        &ctx.ws.policy,
        now(),
    )
    .unwrap();
    assert_conflict(
        try_commit(
            store,
            ctx.id(),
            vec![
                Write::Execution {
                    execution: lost.execution,
                    expected_rev: Some(1),
                },
                Write::StepEvent(lost.event.clone()),
            ],
        )
        .await,
        "execution update with a stale revision",
    );
    assert_eq!(store.execution(ctx.id(), ex.id).await.unwrap(), ex2);
    assert!(
        try_commit(store, ctx.id(), vec![Write::StepEvent(lost.event.clone())])
            .await
            .is_err(),
        "an event without its execution's write is refused"
    );

    assert_eq!(
        store.step_events(ctx.id(), ex.id).await.unwrap(),
        vec![started.event, t.event]
    );

    // Walk to the end: the sealed execution reads back exactly.
    let ex3 = step(store, &ctx, &ex2, done(2), &ctx.bob).await;
    let ex4 = step(store, &ctx, &ex3, done(3), &ctx.bob).await;
    assert_eq!(ex4.status, ExecutionStatus::Completed);
    assert_eq!(store.execution(ctx.id(), ex.id).await.unwrap(), ex4);
    let events = store.step_events(ctx.id(), ex.id).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );

    let dup_key = machine::start(
        &rb,
        StartParams {
            key,
            operator: ctx.bob.id,
            change: None,
            incident: None,
            rehearsal: true,
            channel: None,
        },
        now(),
    );
    assert_already_exists(
        try_commit(
            store,
            ctx.id(),
            vec![
                Write::Execution {
                    execution: dup_key.execution.clone(),
                    expected_rev: None,
                },
                Write::StepEvent(dup_key.event.clone()),
            ],
        )
        .await,
        "a second execution with the same key",
    );
    let mut ghost = dup_key.execution.clone();
    ghost.rev = 2;
    let mut ghost_event = dup_key.event.clone();
    ghost_event.seq = 2;
    assert_not_found(
        try_commit(
            store,
            ctx.id(),
            vec![
                Write::Execution {
                    execution: ghost,
                    expected_rev: Some(1),
                },
                Write::StepEvent(ghost_event),
            ],
        )
        .await,
        "update of an execution that does not exist",
    );
    assert!(
        try_commit(store, ctx.id(), vec![Write::StepEvent(dup_key.event)])
            .await
            .is_err(),
        "an event of an execution that does not exist is refused"
    );
    assert_not_found(
        store.execution(ctx.id(), dup_key.execution.id).await,
        "refused execution",
    );
    assert_not_found(
        store.step_events(ctx.id(), ExecutionId::new()).await,
        "events of an unknown execution",
    );
    assert_eq!(store.execution_by_key(ctx.id(), key).await.unwrap(), ex4);
}

/// [`Store::action_reads`] answers what the four single reads answer: the rows when they are
/// there, `NotFound` for each part that is not (a non-member, an unknown user, an execution of
/// another workspace or an unknown key), whatever the other parts are.
pub async fn action_reads_match_single_reads(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let other = setup(store, "other").await;
    let rb = add_runbook(
        store,
        &ctx,
        simple_body("Restart the API"),
        &ctx.alice,
        true,
    )
    .await;
    let started = start_execution(store, &ctx, &rb, &ctx.alice, None, None).await;
    let key = started.key;

    let all = store.action_reads(ctx.id(), ctx.bob.id, key).await;
    assert_eq!(
        all.workspace.unwrap(),
        store.workspace(ctx.id()).await.unwrap()
    );
    assert_eq!(all.user.unwrap(), ctx.bob);
    assert_eq!(all.membership.unwrap(), ctx.bob_m);
    assert_eq!(all.execution.unwrap(), started);

    // A user of another workspace: the user is there, the membership is not.
    let stranger = store.action_reads(ctx.id(), other.alice.id, key).await;
    assert_eq!(stranger.user.unwrap(), other.alice);
    assert!(matches!(stranger.membership, Err(StoreError::NotFound(_))));
    assert_eq!(stranger.execution.unwrap(), started);

    // The execution seen from the other workspace does not exist; nor does an unknown key.
    let across = store.action_reads(other.id(), other.alice.id, key).await;
    assert_eq!(across.workspace.unwrap(), other.ws);
    assert_eq!(across.membership.unwrap(), other.alice_m);
    assert!(matches!(across.execution, Err(StoreError::NotFound(_))));
    let unknown = Key::new(KeyKind::Execution, key.number + 1);
    let missing = store.action_reads(ctx.id(), ctx.alice.id, unknown).await;
    assert!(matches!(missing.execution, Err(StoreError::NotFound(_))));
    assert_eq!(missing.membership.unwrap(), ctx.alice_m);

    // An unknown user and an unknown workspace.
    let nobody = store
        .action_reads(ctx.id(), crate::ids::UserId::new(), key)
        .await;
    assert!(matches!(nobody.user, Err(StoreError::NotFound(_))));
    assert!(matches!(nobody.membership, Err(StoreError::NotFound(_))));
    let nowhere = store
        .action_reads(WorkspaceId::new(), ctx.alice.id, key)
        .await;
    assert!(matches!(nowhere.workspace, Err(StoreError::NotFound(_))));
    assert!(matches!(nowhere.execution, Err(StoreError::NotFound(_))));
}

/// `list_executions` is newest first (descending key) and honours runbook, version, open_only,
/// change, channel and limit, alone and combined.
pub async fn list_executions_filters(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let rb_a = add_runbook(store, &ctx, simple_body("Runbook A"), &ctx.alice, true).await;
    let rb_b = add_runbook(store, &ctx, simple_body("Runbook B"), &ctx.alice, true).await;
    let cr = add_change(store, &ctx, "Upgrade").await;
    let c1 = ChannelRef {
        platform: "slack".into(),
        channel: "C1".into(),
    };
    let c2 = ChannelRef {
        platform: "slack".into(),
        channel: "C2".into(),
    };
    let ex1 = start_execution(store, &ctx, &rb_a, &ctx.alice, None, Some(c1.clone())).await;
    let rb_a2 = edit_runbook(
        store,
        &ctx,
        &rb_a,
        simple_body("Runbook A, second edition"),
        VersionSource::Edit,
    )
    .await;
    let ex2 = start_execution(store, &ctx, &rb_a2, &ctx.bob, Some(&cr), Some(c2.clone())).await;
    let ex3 = start_execution(store, &ctx, &rb_b, &ctx.bob, None, Some(c1.clone())).await;
    let ex4 = start_execution(store, &ctx, &rb_a2, &ctx.alice, None, None).await;
    step(
        store,
        &ctx,
        &ex4,
        Command::Abort {
            reason: "wrong window".into(),
        },
        &ctx.alice,
    )
    .await;
    let (n1, n2, n3, n4) = (
        ex1.key.number,
        ex2.key.number,
        ex3.key.number,
        ex4.key.number,
    );
    assert!(n1 < n2 && n2 < n3 && n3 < n4);

    let ws = ctx.id();
    let list = move |q: ExecutionQuery| async move {
        exec_keys(&store.list_executions(ws, &q).await.unwrap())
    };
    assert_eq!(
        list(ExecutionQuery::default()).await,
        vec![n4, n3, n2, n1],
        "newest first"
    );
    let by_runbook = ExecutionQuery {
        runbook: Some(rb_a.id),
        ..ExecutionQuery::default()
    };
    assert_eq!(list(by_runbook.clone()).await, vec![n4, n2, n1]);
    assert_eq!(
        list(ExecutionQuery {
            runbook_version: Some(2),
            ..by_runbook.clone()
        })
        .await,
        vec![n4, n2]
    );
    assert_eq!(
        list(ExecutionQuery {
            runbook_version: Some(1),
            ..ExecutionQuery::default()
        })
        .await,
        vec![n3, n1]
    );
    assert_eq!(
        list(ExecutionQuery {
            open_only: true,
            ..ExecutionQuery::default()
        })
        .await,
        vec![n3, n2, n1]
    );
    assert_eq!(
        list(ExecutionQuery {
            open_only: true,
            ..by_runbook.clone()
        })
        .await,
        vec![n2, n1]
    );
    assert_eq!(
        list(ExecutionQuery {
            change: Some(cr.id),
            ..ExecutionQuery::default()
        })
        .await,
        vec![n2]
    );
    assert_eq!(
        list(ExecutionQuery {
            change: Some(ChangeId::new()),
            ..ExecutionQuery::default()
        })
        .await,
        Vec::<u64>::new()
    );
    assert_eq!(
        list(ExecutionQuery {
            channel: Some(c1.clone()),
            ..ExecutionQuery::default()
        })
        .await,
        vec![n3, n1]
    );
    assert_eq!(
        list(ExecutionQuery {
            channel: Some(c1.clone()),
            runbook: Some(rb_b.id),
            ..ExecutionQuery::default()
        })
        .await,
        vec![n3]
    );
    assert_eq!(
        list(ExecutionQuery {
            channel: Some(ChannelRef {
                platform: "console".into(),
                channel: "C1".into(),
            }),
            ..ExecutionQuery::default()
        })
        .await,
        Vec::<u64>::new(),
        "a channel is platform and id"
    );
    assert_eq!(
        list(ExecutionQuery {
            limit: 2,
            ..ExecutionQuery::default()
        })
        .await,
        vec![n4, n3]
    );
    let rows = store.list_executions(ctx.id(), &by_runbook).await.unwrap();
    assert_eq!(rows[2], ex1, "listed rows are whole rows");
    assert_eq!(rows[0].status, ExecutionStatus::Aborted);
}

/// A step asking for two approvals that lapse after 30 minutes: approvals by two people, a
/// lapse (an event with no acting member), the approval given again, done. After every commit
/// the store reads back exactly the execution the machine built, events included, and the
/// runbook's approval policy survives the version and the snapshot.
pub async fn approval_policies_round_trip(store: &dyn Store) {
    use crate::execution::EventKind;
    use crate::runbook::{RunbookInput, StepInput};
    use crate::workspace::Policy;

    let ctx = setup(store, "gates").await;
    let body = RunbookInput {
        title: "Fail over".into(),
        steps: vec![
            StepInput {
                title: "Promote the replica".into(),
                requires_approval: true,
                approvals_required: 2,
                approval_expires_minutes: Some(30),
                ..StepInput::default()
            },
            StepInput {
                title: "Announce".into(),
                ..StepInput::default()
            },
        ],
        ..RunbookInput::default()
    }
    .validate()
    .unwrap();
    let rb = add_runbook(store, &ctx, body.clone(), &ctx.alice, true).await;
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap().body, body);
    let key = store
        .allocate_key(ctx.id(), KeyKind::Execution)
        .await
        .unwrap();
    let t0 = now();
    let started = machine::start(
        &rb,
        StartParams {
            key,
            operator: ctx.alice.id,
            change: None,
            incident: None,
            rehearsal: false,
            channel: None,
        },
        t0,
    );
    commit_ok(
        store,
        ctx.id(),
        vec![
            Write::Execution {
                execution: started.execution.clone(),
                expected_rev: None,
            },
            Write::StepEvent(started.event.clone()),
        ],
        draft_by(&ctx.alice, "execution.started", &key.to_string()),
    )
    .await;
    let mut ex = started.execution;
    let mut events = vec![started.event];
    let policy = Policy {
        approver_must_differ: false,
    };
    let minute = chrono::Duration::minutes(1);
    let steps: [(Option<(&crate::workspace::User, Command)>, i32); 5] = [
        (Some((&ctx.bob, Command::Approve { step: 1 })), 1),
        (Some((&ctx.alice, Command::Approve { step: 1 })), 10),
        // Bob's approval lapses at minute 31.
        (None, 32),
        (Some((&ctx.bob, Command::Approve { step: 1 })), 33),
        (
            Some((
                &ctx.alice,
                Command::Done {
                    step: 1,
                    note: None,
                },
            )),
            34,
        ),
    ];
    for (what, minutes) in steps {
        let at = t0 + minute * minutes;
        let (t, audit) = match what {
            Some((user, cmd)) => (
                machine::apply(&ex, &cmd, &ctx.actor(user), &policy, at).unwrap(),
                draft_by(user, "execution.step", &key.to_string()),
            ),
            None => (
                machine::lapse(&ex, at).expect("a lapse is due"),
                draft("execution.approval_expired", &key.to_string()),
            ),
        };
        commit_ok(
            store,
            ctx.id(),
            vec![
                Write::Execution {
                    execution: t.execution.clone(),
                    expected_rev: Some(ex.rev),
                },
                Write::StepEvent(t.event.clone()),
            ],
            audit,
        )
        .await;
        ex = t.execution;
        events.push(t.event);
        assert_eq!(store.execution_by_key(ctx.id(), key).await.unwrap(), ex);
    }
    assert_eq!(store.step_events(ctx.id(), ex.id).await.unwrap(), events);
    assert_eq!(events[3].kind, EventKind::ApprovalExpired);
    assert_eq!(events[3].actor, ctx.bob.id);
    assert_eq!(events[3].at, t0 + minute * 31);
    let step = &ex.steps[0];
    assert_eq!(step.status, crate::execution::StepStatus::Done);
    let by: Vec<_> = step.approvals.iter().map(|a| a.by).collect();
    assert_eq!(by, [ctx.alice.id, ctx.bob.id]);
    assert_eq!(step.lapsed.len(), 1);
    assert_eq!(step.step.approvals_required.get(), 2);
}

/// Notes, hand-overs and takeovers are events like any other: each is committed with the
/// execution at its revision, and the execution reads back exactly after each — its operator,
/// its hand-overs and every step's notes — including a note added after the seal, which leaves
/// the execution sealed.
pub async fn execution_notes_and_hand_overs(store: &dyn Store) {
    let ctx = setup(store, "together").await;
    let rb = add_runbook(store, &ctx, simple_body("Fail over"), &ctx.alice, true).await;
    let ex = start_execution(store, &ctx, &rb, &ctx.bob, None, None).await;
    let note = |step: u32, text: &str| Command::Note {
        step,
        text: text.into(),
        seen_rev: None,
    };
    let mut walk = vec![ex.clone()];
    let cmds: Vec<(Command, &crate::workspace::User)> = vec![
        (note(1, "paged the **DBA** <!channel>"), &ctx.bob),
        (note(3, "check the replica lag first"), &ctx.alice),
        (done(1), &ctx.bob),
        (Command::HandOver { to: ctx.alice.id }, &ctx.bob),
        (note(2, "taking this from here"), &ctx.alice),
        (Command::HandOver { to: ctx.bob.id }, &ctx.alice),
        (Command::TakeOver, &ctx.alice),
        (done(2), &ctx.alice),
        (done(3), &ctx.alice),
        (note(3, "post-mortem: lag was 40 s"), &ctx.bob),
    ];
    for (cmd, user) in cmds {
        let last = walk.last().unwrap().clone();
        let next = step(store, &ctx, &last, cmd, user).await;
        assert_eq!(store.execution(ctx.id(), ex.id).await.unwrap(), next);
        walk.push(next);
    }
    let last = walk.last().unwrap();
    assert_eq!(last.status, ExecutionStatus::Completed);
    assert_eq!(last.rev, 11);
    assert_eq!(last.operator, ctx.alice.id);
    assert_eq!(last.started_by(), ctx.bob.id);
    assert_eq!(last.handoffs.len(), 3);
    assert_eq!(
        last.steps.iter().map(|s| s.notes.len()).collect::<Vec<_>>(),
        vec![1, 1, 2]
    );
    assert_eq!(
        store.execution_by_key(ctx.id(), ex.key).await.unwrap(),
        *last
    );
    let events = store.step_events(ctx.id(), ex.id).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=11).collect::<Vec<u64>>()
    );
    let listed = store
        .list_executions(ctx.id(), &ExecutionQuery::default())
        .await
        .unwrap();
    assert_eq!(listed, vec![last.clone()]);
}
