//! Exact round trips of every row type.

use chrono::{Duration, TimeZone, Utc};
use serde_json::json;

use crate::audit::{self, AuditLinks, Origin, Surface};
use crate::change::{self, ChangeStatus, PlanTask};
use crate::clock;
use crate::execution::machine::{self, Command, StartParams};
use crate::execution::{Approval, ChannelRef, ExecutionStatus, StepStatus};
use crate::ids::{Key, KeyKind};
use crate::incident::IncidentStatus;
use crate::roles::WorkspaceRole;
use crate::runbook::{RunbookInput, RunbookVersion, StepInput, VersionSource};
use crate::store::{RunbookQuery, Store, Write};

use super::fixtures::*;

/// Every row type reads back equal to what was written: every field, optional fields set and
/// unset, text byte for byte (markdown whitespace, Unicode), vectors in order, timestamps at
/// microsecond precision.
pub async fn rows_round_trip_exactly(store: &dyn Store) {
    let t0 = clock::to_micros(
        Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 59).unwrap() + Duration::microseconds(123_457),
    );
    let t1 = now();

    let mut ws = new_workspace("round-trip");
    ws.created_at = t0;
    ws.slack_team = Some("T0ROUND".into());
    ws.policy.approver_must_differ = false;
    let user = new_user("zoe");
    let mut membership = new_membership(ws.id, user.id, WorkspaceRole::Admin);
    membership.team_roles = [name("dba"), name("sre"), name("net.ops")]
        .into_iter()
        .collect();
    membership.display_name = label("Zoë Ølberg 🚀");
    // Not in sorted order: the order written is the order read.
    membership.chat_identities = vec![
        chat("slack", "U9"),
        chat("console", "zoe"),
        chat("slack", "U1"),
    ];
    // The owner every workspace keeps.
    let owner = new_user("root");
    let mut owner_m = new_membership(ws.id, owner.id, WorkspaceRole::Owner);
    owner_m.display_name = label("Root of «all» — 根");
    // A removed member, removed at a time with microseconds.
    let gone = new_user("yuri");
    let mut gone_m = new_membership(ws.id, gone.id, WorkspaceRole::Operator);
    gone_m.removed_at = Some(t0);
    commit_ok(
        store,
        ws.id,
        vec![
            Write::Workspace {
                workspace: ws.clone(),
                expected_rev: None,
            },
            insert_user(&user),
            insert_membership(&membership),
            insert_user(&owner),
            insert_membership(&owner_m),
            insert_user(&gone),
            insert_membership(&gone_m),
        ],
        draft("workspace.created", "round-trip"),
    )
    .await;
    assert_eq!(store.workspace(ws.id).await.unwrap(), ws);
    assert_eq!(store.user(user.id).await.unwrap(), user);
    assert_eq!(store.membership(ws.id, user.id).await.unwrap(), membership);
    assert_eq!(store.membership(ws.id, owner.id).await.unwrap(), owner_m);
    assert_eq!(store.membership(ws.id, gone.id).await.unwrap(), gone_m);
    for identity in &membership.chat_identities {
        assert_eq!(
            store.member_by_chat(ws.id, identity).await.unwrap(),
            (user.clone(), membership.clone())
        );
    }
    assert_eq!(
        store.list_members(ws.id).await.unwrap(),
        vec![
            (owner.clone(), owner_m.clone()),
            (gone.clone(), gone_m.clone()),
            (user.clone(), membership.clone()),
        ],
        "members by handle, removed ones included"
    );
    // Removal and its time move on update; reinstating clears it.
    let (regone, write) = update_membership(&gone_m, |m| {
        m.removed_at = Some(t1 + Duration::microseconds(7));
    });
    commit_ok(store, ws.id, vec![write], draft("member.removed", "yuri")).await;
    assert_eq!(store.membership(ws.id, gone.id).await.unwrap(), regone);
    let (back, write) = update_membership(&regone, |m| m.removed_at = None);
    commit_ok(store, ws.id, vec![write], draft("member.restored", "yuri")).await;
    assert_eq!(store.membership(ws.id, gone.id).await.unwrap(), back);
    let ctx = Ctx {
        ws: ws.clone(),
        alice: user.clone(),
        bob: user.clone(),
        alice_m: membership.clone(),
        bob_m: membership,
    };

    let rich = RunbookInput {
        title: "Fail over «primary» DB — ünïcødé 🚀".into(),
        description:
            "  Leading spaces\n\n# Heading\n\n```sh\necho 'hi'   \n```\n\ttab\r\ntrailing   \n\n"
                .into(),
        category: "databases/postgres".into(),
        steps: vec![
            StepInput {
                title: "Check replication lag".into(),
                description: "Run:\n\n    SELECT now() - pg_last_xact_replay_timestamp();\n".into(),
                owner_role: "dba".into(),
                est_minutes: 10_080,
                expected_outcome: "Lag < 1 s".into(),
                verification: "`psql -c 'select 1'`".into(),
                rollback_note: "Nothing to undo".into(),
                requires_approval: true,
                approval_expires_minutes: Some(45),
                is_destructive: false,
                ..StepInput::default()
            },
            StepInput {
                title: "Promote".into(),
                description: String::new(),
                owner_role: "operator".into(),
                est_minutes: 0,
                requires_approval: false,
                is_destructive: true,
                ..StepInput::default()
            },
            StepInput {
                title: "Announce".into(),
                description: "Post in #ops ✅".into(),
                ..StepInput::default()
            },
        ],
    }
    .validate()
    .unwrap();
    let key = store.allocate_key(ws.id, KeyKind::Runbook).await.unwrap();
    let mut rb = new_runbook(&ctx, key, rich, &user, true);
    rb.created_at = t0;
    rb.updated_at = t1;
    rb.archived_at = Some(t1 + Duration::microseconds(1));
    let versions = vec![
        RunbookVersion {
            saved_at: t0,
            ..first_version(&rb)
        },
        RunbookVersion {
            version: 2,
            source: VersionSource::SaveAsFromChange {
                change: Key::new(KeyKind::Change, 100_000),
            },
            saved_at: t1,
            ..first_version(&rb)
        },
        RunbookVersion {
            version: 3,
            source: VersionSource::FileSync {
                file: "runbooks/fail over.md".into(),
            },
            saved_at: t1,
            ..first_version(&rb)
        },
    ];
    rb.version = 3;
    let mut writes = vec![Write::Runbook {
        runbook: rb.clone(),
        expected_rev: None,
    }];
    writes.extend(versions.iter().cloned().map(Write::RunbookVersion));
    commit_ok(
        store,
        ws.id,
        writes,
        runbook_draft(&user, "runbook.created", key),
    )
    .await;
    assert_eq!(store.runbook(ws.id, rb.id).await.unwrap(), rb);
    assert_eq!(store.runbook_by_key(ws.id, key).await.unwrap(), rb);
    assert_eq!(
        store.runbook_versions(ws.id, rb.id).await.unwrap(),
        versions
    );
    let archived = RunbookQuery {
        archived: true,
        ..RunbookQuery::default()
    };
    assert_eq!(
        store.list_runbooks(ws.id, &archived).await.unwrap(),
        vec![rb.clone()]
    );

    // A change with an imported plan and every field set.
    let cr_key = store.allocate_key(ws.id, KeyKind::Change).await.unwrap();
    let mut live = rb.clone();
    live.archived_at = None;
    let mut cr = change::import_runbook(&new_change(&ctx, cr_key, "Fail over"), &live).unwrap();
    cr.tasks
        .push(PlanTask::from_input(StepInput::default(), 4).unwrap());
    cr.status = ChangeStatus::InProgress;
    cr.created_at = t0;
    cr.updated_at = t1;
    let inc_key = store.allocate_key(ws.id, KeyKind::Incident).await.unwrap();
    let mut inc = new_incident(&ctx, inc_key, "Primary unreachable");
    inc.status = IncidentStatus::Resolved;
    inc.created_at = t0;
    inc.resolved_at = Some(t1);

    // An execution with every optional field set, walked by the machine through every kind
    // of event: approved, done with a note, failed three times (retried twice), aborted.
    let ex_key = store.allocate_key(ws.id, KeyKind::Execution).await.unwrap();
    let started = machine::start(
        &live,
        StartParams {
            key: ex_key,
            operator: user.id,
            change: Some((cr.key, cr.id)),
            incident: Some(inc.key),
            rehearsal: true,
            channel: Some(ChannelRef {
                platform: "slack".into(),
                channel: "C0ROUND".into(),
            }),
        },
        t0,
    );
    commit_ok(
        store,
        ws.id,
        vec![
            Write::Change {
                change: cr.clone(),
                expected_rev: None,
            },
            Write::Incident {
                incident: inc.clone(),
                expected_rev: None,
            },
            Write::Execution {
                execution: started.execution.clone(),
                expected_rev: None,
            },
            Write::StepEvent(started.event.clone()),
        ],
        draft("bulk", "round-trip"),
    )
    .await;
    assert_eq!(store.change(ws.id, cr.id).await.unwrap(), cr);
    assert_eq!(store.incident_by_key(ws.id, inc.key).await.unwrap(), inc);
    assert_eq!(
        store.execution(ws.id, started.execution.id).await.unwrap(),
        started.execution
    );
    let mut ex = started.execution;
    let mut events = vec![started.event];
    let actor = ctx.actor(&user);
    let walk = [
        Command::Approve { step: 1 },
        Command::Done {
            step: 1,
            note: Some("lag was 0.2 s".into()),
        },
        Command::Fail {
            step: 2,
            note: "disk full".into(),
        },
        Command::Retry { step: 2 },
        Command::Fail {
            step: 2,
            note: "still full".into(),
        },
        Command::Retry { step: 2 },
        Command::Fail {
            step: 2,
            note: "full again".into(),
        },
        Command::Abort {
            reason: "window closed — **abort**".into(),
        },
    ];
    let mut entry = None;
    for (i, cmd) in walk.iter().enumerate() {
        let at = t1 + Duration::microseconds(i as i64);
        let mut t = machine::apply(&ex, cmd, &actor, &ws.policy, at).unwrap();
        let mut d = draft_by(&user, "execution.step", &ex_key.to_string());
        if i == 2 {
            // Markdown whitespace kept byte for byte, in the event and the state it rebuilds.
            t.event.note = Some(md("  disk full\n"));
            t.execution.steps[1].note = Some(md("  disk full\n"));
            d.at = t0;
            d.details = json!({ "note": "disk full", "float": 1.5, "big": 9_007_199_254_740_993_u64, "list": ["a", { "b": null }] });
            d.links = AuditLinks {
                runbook: Some(key),
                runbook_version: Some(3),
                change: Some(cr.key),
                incident: Some(inc.key),
                execution: Some(ex_key),
            };
            d.origin = Some(Origin::new(Surface::Slack, "T1/U1"));
        }
        let e = commit_ok(
            store,
            ws.id,
            vec![
                Write::Execution {
                    execution: t.execution.clone(),
                    expected_rev: Some(ex.rev),
                },
                Write::StepEvent(t.event.clone()),
            ],
            d,
        )
        .await;
        if i == 2 {
            assert_eq!(e.origin, Some(Origin::new(Surface::Slack, "T1/U1")));
            assert_eq!(
                store.step_events(ws.id, ex.id).await.unwrap().last(),
                Some(&t.event)
            );
            assert_eq!(store.execution(ws.id, ex.id).await.unwrap(), t.execution);
        }
        if i == 2 {
            entry = Some(e);
        }
        ex = t.execution;
        events.push(t.event);
    }
    assert_eq!(
        ex.steps[0].approvals,
        vec![Approval {
            by: user.id,
            at: t1,
            satisfied_as: "dba".into(),
        }]
    );
    assert_eq!(ex.steps[1].status, StepStatus::Failed);
    assert_eq!(ex.steps[1].failures, 3);
    assert_eq!(ex.status, ExecutionStatus::Aborted);
    assert_eq!(store.execution(ws.id, ex.id).await.unwrap(), ex);
    assert_eq!(store.execution_by_key(ws.id, ex_key).await.unwrap(), ex);
    assert_eq!(store.step_events(ws.id, ex.id).await.unwrap(), events);
    let Some(entry) = entry else {
        panic!("the walk committed no entry with an origin");
    };
    let chain = audit_all(store, ws.id).await;
    assert_eq!(chain.iter().filter(|e| **e == entry).count(), 1);
    assert!(
        chain
            .iter()
            .filter(|e| **e != entry)
            .all(|e| e.origin.is_none()),
        "entries without an origin read back without one"
    );
    assert_eq!(audit::verify(&chain).unwrap(), chain.len() as u64);
    // Each surface reads back as written, and the chain still verifies.
    let surfaces = [Surface::Cli, Surface::Console, Surface::Api, Surface::Slack];
    for (i, surface) in surfaces.into_iter().enumerate() {
        let mut d = draft_by(&user, "test.origin", "round-trip");
        d.origin = Some(Origin::new(surface, format!("ops@host-{i} ✓")));
        let e = commit_ok(store, ws.id, Vec::new(), d.clone()).await;
        assert_eq!(e.origin, d.origin);
    }
    let chain = audit_all(store, ws.id).await;
    let origins: Vec<_> = chain[chain.len() - 4..]
        .iter()
        .map(|e| e.origin.clone().map(|o| o.surface))
        .collect();
    assert_eq!(origins, surfaces.map(Some).to_vec());
    assert_eq!(audit::verify(&chain).unwrap(), chain.len() as u64);
}
