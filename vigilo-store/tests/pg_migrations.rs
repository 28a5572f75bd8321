//! The PostgreSQL schema upgrade of people into workspaces (schema 3), on a real server: a
//! database created at schema 2, holding people as schema 2 stored them (a display name and
//! global chat identities on the user, rows in `chat_identities`, memberships without a name),
//! is upgraded in place by connecting with every migration. The PostgreSQL twin of the SQLite
//! test `schema_2_moves_names_and_chat_identities_into_memberships` (tests/migrations.rs),
//! plus what only PostgreSQL has: the step transition function, redefined with the acting
//! member, must be the only `vigilo_step_transition` left and must serve a click after the
//! upgrade (the one-call path, counted by `pg_stat_user_functions`).
//!
//! Uses a fresh database of the server of `VIGILO_TEST_PG_URL`; without it the test says it was
//! skipped, and passes.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;
use vigilo_core::execution::StepStatus;
use vigilo_core::execution::machine::Command;
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::runbook::{RunbookInput, StepInput};
use vigilo_core::service::{CreateRunbook, NewMember, StartOptions, Vigilo, Who};
use vigilo_core::store::Store;
use vigilo_core::workspace::ChatIdentity;
use vigilo_store::postgres::{MIGRATIONS, PgOptions, PgStore, ScratchDatabase};

const URL_VAR: &str = "VIGILO_TEST_PG_URL";

/// The admin URL, or `None` after saying plainly that the test is skipped.
fn admin_url(test: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) => Some(url),
        Err(_) => {
            println!(
                "SKIPPED {test}: {URL_VAR} is not set, so there is no PostgreSQL server to test \
                 against. Set {URL_VAR}=postgres://postgres@127.0.0.1:5432/postgres to run it."
            );
            None
        }
    }
}

/// A plain connection to `url`, for writing as an old build wrote and for looking at the
/// catalog.
async fn plain(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

async fn schema_version(c: &tokio_postgres::Client) -> i32 {
    c.query_one("SELECT max(version) FROM vigilo_schema_version", &[])
        .await
        .unwrap()
        .get(0)
}

/// How many calls of `vigilo_step_transition` the server's statistics have seen (the database
/// tracks function calls; see the test). Statistics reach the shared view when a session
/// flushes them, so this waits up to `patience` for at least `want`.
async fn transition_calls(c: &tokio_postgres::Client, want: i64, patience: Duration) -> i64 {
    let start = Instant::now();
    loop {
        c.batch_execute("SELECT pg_stat_clear_snapshot()")
            .await
            .unwrap();
        let calls: i64 = c
            .query_one(
                "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_user_functions
                 WHERE funcname = 'vigilo_step_transition'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if calls >= want || start.elapsed() > patience {
            return calls;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every `vigilo_step_transition` of the database: its number of parameters and their list.
async fn step_functions(c: &tokio_postgres::Client) -> Vec<(i16, String)> {
    c.query(
        "SELECT pronargs, pg_get_function_identity_arguments(oid) FROM pg_proc
         WHERE proname = 'vigilo_step_transition'",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// Schema 3 moves people into workspaces: a schema-2 database whose users carry a display name
/// and global chat identities upgrades in place. Every membership takes the display name; an
/// identity moves to the membership in the workspace linked to its team only, and one mapped
/// before any link (empty team) to every membership of its user; the old table and the old
/// function signature are gone; the audit chain still verifies; and a click after the upgrade
/// commits through the redefined function.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_3_moves_names_and_chat_identities_into_memberships() {
    let Some(admin) = admin_url("schema_3_moves_names_and_chat_identities_into_memberships") else {
        return;
    };
    let db = ScratchDatabase::create(&admin).await.unwrap();
    let url = db.url().to_owned();
    let options = || PgOptions::default().max_connections(4);

    // A database at schema 2, with two workspaces written through the store (workspaces and
    // users are rows schema 2 already had, in the same shape).
    let v2: &[&str] = &MIGRATIONS[..2];
    let store = PgStore::connect_with_migrations(&url, options(), v2)
        .await
        .unwrap();
    let acme = common::setup(&store, "acme").await;
    let evil = common::setup(&store, "evil").await;
    store.close();
    drop(store);

    // People as schema 2 stored them, written as that build wrote them.
    let c = plain(&url).await;
    assert_eq!(schema_version(&c).await, 2);
    let olivia = uuid::Uuid::now_v7();
    c.execute(
        r#"UPDATE workspaces SET slack_team = 'T0ACME',
               doc = (doc::jsonb || '{"slack_team":"T0ACME"}'::jsonb)::text
           WHERE id = $1"#,
        &[&acme.id().0],
    )
    .await
    .unwrap();
    let user_doc = format!(
        r#"{{"id":"{olivia}","handle":"olivia","display_name":"Olivia Ørsted","chat_identities":[{{"platform":"slack","team":"T0ACME","user":"U0OLI"}},{{"platform":"slack","team":"","user":"U0PRE"}}],"rev":1}}"#
    );
    c.execute(
        "INSERT INTO users (id, handle, rev, doc) VALUES ($1, 'olivia', 1, $2)",
        &[&olivia, &user_doc],
    )
    .await
    .unwrap();
    for (team, user) in [("T0ACME", "U0OLI"), ("", "U0PRE")] {
        c.execute(
            r#"INSERT INTO chat_identities (platform, team, "user", user_id)
               VALUES ('slack', $1, $2, $3)"#,
            &[&team, &user, &olivia],
        )
        .await
        .unwrap();
    }
    for (ws, role) in [(acme.id(), "owner"), (evil.id(), "member")] {
        let doc = format!(
            r#"{{"workspace":"{ws}","user":"{olivia}","role":"{role}","team_roles":[],"rev":1}}"#
        );
        c.execute(
            "INSERT INTO memberships (workspace_id, user_id, rev, doc) VALUES ($1, $2, 1, $3)",
            &[&ws.0, &olivia, &doc],
        )
        .await
        .unwrap();
    }
    let before: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_proc WHERE proname = 'vigilo_step_transition'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(before, 1, "schema 2 has one step transition function");
    // Count function calls in this database from now on (sessions started later see it).
    c.batch_execute(&format!(
        "ALTER DATABASE \"{}\" SET track_functions = 'all'",
        db.name()
    ))
    .await
    .unwrap();

    // The upgrade.
    let store = Arc::new(PgStore::connect(&url, options()).await.unwrap());
    assert_eq!(schema_version(&c).await, MIGRATIONS.len() as i32);

    let user = store.user_by_handle("olivia").await.unwrap();
    assert_eq!(user.id.0, olivia);
    let in_acme = store.membership(acme.id(), user.id).await.unwrap();
    let in_evil = store.membership(evil.id(), user.id).await.unwrap();
    assert_eq!(in_acme.display_name.as_str(), "Olivia Ørsted");
    assert_eq!(in_evil.display_name.as_str(), "Olivia Ørsted");
    assert_eq!(in_acme.role, WorkspaceRole::Owner);
    assert_eq!(in_evil.role, WorkspaceRole::Member);
    assert!(in_acme.is_active() && in_evil.is_active());
    let mut acme_ids: Vec<&str> = in_acme
        .chat_identities
        .iter()
        .map(|c| c.user.as_str())
        .collect();
    acme_ids.sort();
    assert_eq!(acme_ids, ["U0OLI", "U0PRE"]);
    let evil_ids: Vec<&str> = in_evil
        .chat_identities
        .iter()
        .map(|c| c.user.as_str())
        .collect();
    assert_eq!(
        evil_ids,
        ["U0PRE"],
        "an identity of team T0ACME stays in acme"
    );
    for (ws, slack_user, found) in [
        (acme.id(), "U0OLI", true),
        (acme.id(), "U0PRE", true),
        (evil.id(), "U0OLI", false),
        (evil.id(), "U0PRE", true),
    ] {
        let got = store
            .member_by_chat(ws, &ChatIdentity::slack(slack_user))
            .await;
        if found {
            let (u, m) = got.unwrap_or_else(|e| panic!("{slack_user} in {ws}: {e:?}"));
            assert_eq!(u.id, user.id);
            assert_eq!(m.workspace, ws);
        } else {
            assert!(got.is_err(), "{slack_user} must not map in {ws}: {got:?}");
        }
    }
    assert_eq!(common::verified_chain(&*store, acme.id()).await, 1);
    assert_eq!(common::verified_chain(&*store, evil.id()).await, 1);

    // The user row keeps only what is global; the old table and the old function are gone.
    let doc: String = c
        .query_one("SELECT doc FROM users WHERE handle = 'olivia'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        !doc.contains("display_name") && !doc.contains("chat_identities"),
        "{doc}"
    );
    let old_table: bool = c
        .query_one("SELECT to_regclass('chat_identities') IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(old_table, "the table chat_identities is dropped");
    let functions = step_functions(&c).await;
    assert_eq!(functions.len(), 1, "{functions:?}");
    let old_signature: bool = c
        .query_one(
            "SELECT to_regprocedure('vigilo_step_transition(uuid, uuid, bigint, bigint, uuid, \
             bigint, text, uuid, text, text, bigint, text, bigint, text, uuid, timestamptz, uuid, \
             text, text, text, text, text, text, bytea, bytea, bytea, text, text, text)') IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        old_signature,
        "the 29-parameter function of schema 2 is gone"
    );

    // A click after the upgrade: olivia (acme's owner, from schema 2) adds an operator, who
    // walks a step of a published runbook.
    let calls_before = transition_calls(&c, 0, Duration::ZERO).await;
    let vigilo = Vigilo::new(store.clone());
    let olivia_who = Who::new(acme.id(), user.id);
    let (oscar, _) = vigilo
        .add_member(
            &olivia_who,
            NewMember {
                handle: "oscar".into(),
                display_name: "Oscar".into(),
                role: WorkspaceRole::Operator,
                team_roles: Vec::new(),
                chat_identity: None,
            },
        )
        .await
        .unwrap();
    let oscar = Who::new(acme.id(), oscar.id);
    let step = |title: &str| StepInput {
        title: title.into(),
        est_minutes: 5,
        ..StepInput::default()
    };
    let rb = vigilo
        .create_runbook(
            &olivia_who,
            RunbookInput {
                title: "Restart the API".into(),
                description: "When it hangs".into(),
                category: "api".into(),
                steps: vec![step("Drain"), step("Restart")],
            },
            CreateRunbook {
                publish: true,
                ..CreateRunbook::default()
            },
        )
        .await
        .unwrap();
    let ex = vigilo
        .start_execution(&oscar, rb.key, StartOptions::default())
        .await
        .unwrap();
    let acted = vigilo
        .act(
            &oscar,
            ex.key,
            Command::Done {
                step: 1,
                note: Some("after the upgrade".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(acted.execution.steps[0].status, StepStatus::Done);
    let stored = store.execution_by_key(acme.id(), ex.key).await.unwrap();
    assert_eq!(stored.steps[0].status, StepStatus::Done);
    assert_eq!(stored.rev, acted.execution.rev);
    // 1 (schema 2) + member added + runbook created + execution started + step done.
    assert_eq!(common::verified_chain(&*store, acme.id()).await, 5);

    // The click went through the function: its sessions flush their statistics when they
    // end, so close the pool before looking.
    store.close();
    drop(vigilo);
    drop(store);
    let calls = transition_calls(&c, calls_before + 1, Duration::from_secs(15)).await;
    assert_eq!(
        calls,
        calls_before + 1,
        "the step transition after the upgrade was one call of vigilo_step_transition"
    );

    drop(c);
    db.drop_database().await;
}

// ---------------------------------------------------------------------------------------------
// Schema 4: executions as header, snapshot and events
// ---------------------------------------------------------------------------------------------

use chrono::{DateTime, Utc};
use vigilo_core::audit::{self, AuditDraft, AuditLinks};
use vigilo_core::clock::to_micros;
use vigilo_core::execution::machine::{self, StartParams};
use vigilo_core::execution::{ChannelRef, EventKind, Execution, ExecutionStatus, StepEvent};
use vigilo_core::ids::{KeyKind, WorkspaceId};
use vigilo_core::runbook::Runbook;
use vigilo_core::workspace::{Actor, Policy};

/// Writes executions, their events and their audit entries exactly as the schema-3 store did
/// (the whole execution in `executions.doc`, rewritten by every step), on a plain connection.
struct Schema3Writer {
    c: tokio_postgres::Client,
    /// The clock of the walks: one second per command.
    at: DateTime<Utc>,
}

/// One walk: the execution as the state machine left it, and every event it produced (as the
/// machine made them, `satisfied_as` included).
struct Walk {
    ws: WorkspaceId,
    e: Execution,
    events: Vec<StepEvent>,
    /// Approvals were written without `satisfied_as`, as builds before it wrote them.
    old_approvals: bool,
}

impl Schema3Writer {
    fn tick(&mut self) -> DateTime<Utc> {
        self.at += chrono::Duration::seconds(1);
        self.at
    }

    /// Commits the execution `e` (inserted, or updated from `expected`) with its event and an
    /// audit entry sealed after the chain head, in one transaction, as schema 3 stored them.
    async fn commit(
        &mut self,
        walk_ws: WorkspaceId,
        e: &Execution,
        expected: Option<u64>,
        ev: &StepEvent,
        old_approvals: bool,
        actor: &Actor,
    ) {
        let tx = self.c.transaction().await.unwrap();
        let doc = if old_approvals {
            previous_release_doc(e)
        } else {
            serde_json::to_string(e).unwrap()
        };
        let (number, rev) = (e.key.number as i64, e.rev as i64);
        let channel = e.channel.as_ref();
        match expected {
            None => {
                tx.execute(
                    "INSERT INTO executions (id, workspace_id, key_number, runbook_id,
                         runbook_version, status, change_id, channel_platform, channel_id, rev, doc)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    &[
                        &e.id.0,
                        &walk_ws.0,
                        &number,
                        &e.runbook.0,
                        &i64::from(e.runbook_version),
                        &e.status.as_str(),
                        &e.change_id.map(|c| c.0),
                        &channel.map(|c| c.platform.as_str()),
                        &channel.map(|c| c.channel.as_str()),
                        &rev,
                        &doc,
                    ],
                )
                .await
                .unwrap();
            }
            Some(expected) => {
                let n = tx
                    .execute(
                        "UPDATE executions SET status = $3, rev = $4, doc = $5
                         WHERE id = $1 AND workspace_id = $2 AND rev = $6",
                        &[
                            &e.id.0,
                            &walk_ws.0,
                            &e.status.as_str(),
                            &rev,
                            &doc,
                            &(expected as i64),
                        ],
                    )
                    .await
                    .unwrap();
                assert_eq!(n, 1);
            }
        }
        let mut ev = ev.clone();
        if old_approvals {
            ev.satisfied_as = None;
        }
        tx.execute(
            "INSERT INTO step_events (execution_id, seq, workspace_id, doc) VALUES ($1, $2, $3, $4)",
            &[
                &e.id.0,
                &(ev.seq as i64),
                &walk_ws.0,
                &serde_json::to_string(&ev).unwrap(),
            ],
        )
        .await
        .unwrap();
        let head = tx
            .query_one(
                "SELECT seq, hash FROM audit_heads WHERE workspace_id = $1 FOR UPDATE",
                &[&walk_ws.0],
            )
            .await
            .unwrap();
        let (seq, hash): (i64, String) = (head.get(0), head.get(1));
        let draft = AuditDraft {
            at: ev.at,
            actor: Some(actor.id()),
            actor_handle: Some(actor.user.handle.to_string()),
            action: format!("execution.{}", ev.kind.as_str()),
            target: e.key.to_string(),
            details: serde_json::json!({ "step": ev.step_order }),
            links: AuditLinks {
                execution: Some(e.key),
                ..AuditLinks::default()
            },
            origin: None,
        };
        let prev = (seq > 0).then_some((seq as u64, hash.as_str()));
        let entry = audit::seal(walk_ws, draft, prev);
        tx.execute(
            "INSERT INTO audit (workspace_id, seq, id, at, actor, action, target,
                 link_execution, hash, doc)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &walk_ws.0,
                &(entry.seq as i64),
                &entry.id.0,
                &entry.at,
                &entry.actor.map(|a| a.0),
                &entry.action,
                &entry.target,
                &entry.links.execution.map(|k| k.to_string()),
                &entry.hash,
                &audit::stored_document(&entry),
            ],
        )
        .await
        .unwrap();
        tx.execute(
            "UPDATE audit_heads SET seq = $2, hash = $3 WHERE workspace_id = $1",
            &[&walk_ws.0, &(entry.seq as i64), &entry.hash],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    /// Starts a walk of `rb` by `operator`.
    #[allow(clippy::too_many_arguments)]
    async fn start(
        &mut self,
        store: &PgStore,
        rb: &Runbook,
        operator: &Actor,
        rehearsal: bool,
        channel: Option<ChannelRef>,
        old_approvals: bool,
    ) -> Walk {
        let key = store
            .allocate_key(rb.workspace, KeyKind::Execution)
            .await
            .unwrap();
        let at = self.tick();
        let t = machine::start(
            rb,
            StartParams {
                key,
                operator: operator.id(),
                change: None,
                incident: None,
                rehearsal,
                channel,
            },
            at,
        );
        self.commit(
            rb.workspace,
            &t.execution,
            None,
            &t.event,
            old_approvals,
            operator,
        )
        .await;
        Walk {
            ws: rb.workspace,
            e: t.execution,
            events: vec![t.event],
            old_approvals,
        }
    }

    /// Applies `cmd` by `actor` to the walk and stores it.
    async fn act(&mut self, walk: &mut Walk, cmd: Command, actor: &Actor) {
        let at = self.tick();
        let t = machine::apply(&walk.e, &cmd, actor, &Policy::default(), at)
            .unwrap_or_else(|e| panic!("{cmd:?} on {}: {e:?}", walk.e.key));
        self.commit(
            walk.ws,
            &t.execution,
            Some(walk.e.rev),
            &t.event,
            walk.old_approvals,
            actor,
        )
        .await;
        walk.e = t.execution;
        walk.events.push(t.event);
    }
}

/// `e` as the release before approval policies wrote it: each step's one `approval` (an
/// object or `null`) where the model now keeps the list `approvals` (and `lapsed`).
fn previous_release_doc(e: &Execution) -> String {
    let mut doc = serde_json::to_value(e).unwrap();
    for step in doc["steps"].as_array_mut().unwrap() {
        let step = step.as_object_mut().unwrap();
        let approvals = step.remove("approvals").unwrap();
        assert!(
            step.remove("lapsed").is_none(),
            "no lapses before approval policies"
        );
        let approvals = approvals.as_array().unwrap();
        assert!(
            approvals.len() <= 1,
            "one approval at most before approval policies"
        );
        step.insert(
            "approval".into(),
            approvals
                .first()
                .cloned()
                .unwrap_or(serde_json::Value::Null),
        );
    }
    let text = serde_json::to_string(&doc).unwrap();
    assert!(!text.contains("\"approvals\""), "{text}");
    text
}

/// The events of a walk as they read back after the conversion: an approval written without
/// `satisfied_as` gets it from the step's approval when that approval is still the step's (its
/// approver and time match); one whose approval a retry cleared stays without.
fn events_after_conversion(walk: &Walk) -> Vec<StepEvent> {
    walk.events
        .iter()
        .map(|ev| {
            let mut ev = ev.clone();
            if walk.old_approvals && ev.kind == EventKind::Approved {
                let kept = ev
                    .step_order
                    .and_then(|o| walk.e.steps.get(o as usize - 1))
                    .is_some_and(|s| {
                        s.approvals
                            .iter()
                            .any(|a| a.by == ev.actor && a.at == ev.at)
                    });
                if !kept {
                    ev.satisfied_as = None;
                }
            }
            ev
        })
        .collect()
}

/// A workspace for the schema-4 test: its owner (who approves) and operator (who walks), and
/// two published runbooks (the second with a gated step), made through the service at schema 3.
struct Ws4 {
    owner: Actor,
    operator: Actor,
    plain: Runbook,
    gated: Runbook,
}

async fn workspace_at_schema_3(vigilo: &Vigilo, slug: &str) -> Ws4 {
    let (ws, owner) = vigilo
        .create_workspace(slug, &format!("{slug}-owner"), "Owner")
        .await
        .unwrap();
    let owner_who = Who::new(ws.id, owner.id);
    let (operator, _) = vigilo
        .add_member(
            &owner_who,
            NewMember {
                handle: format!("{slug}-op"),
                display_name: "Operator".into(),
                role: WorkspaceRole::Operator,
                team_roles: Vec::new(),
                chat_identity: None,
            },
        )
        .await
        .unwrap();
    let step = |title: &str, gated: bool| StepInput {
        title: title.into(),
        description: format!("Do **{title}** carefully."),
        est_minutes: 5,
        requires_approval: gated,
        ..StepInput::default()
    };
    let mut runbooks = Vec::new();
    for (title, gate) in [("Restart the API", false), ("Fail over the database", true)] {
        let rb = vigilo
            .create_runbook(
                &owner_who,
                RunbookInput {
                    title: title.into(),
                    description: "When it hangs".into(),
                    category: "ops".into(),
                    steps: vec![
                        step("Drain", false),
                        step("Switch", gate),
                        step("Check", false),
                        step("Announce", false),
                    ],
                },
                CreateRunbook {
                    publish: true,
                    ..CreateRunbook::default()
                },
            )
            .await
            .unwrap();
        runbooks.push(vigilo.store().runbook(ws.id, rb.id).await.unwrap());
    }
    let gated = runbooks.pop().unwrap();
    let plain = runbooks.pop().unwrap();
    Ws4 {
        owner: vigilo.actor(&owner_who).await.unwrap(),
        operator: vigilo.actor(&Who::new(ws.id, operator.id)).await.unwrap(),
        plain,
        gated,
    }
}

/// Walks of every kind in `w`: completed, completed through failures, retries and skips, an
/// approval cleared by a retry then given again, aborted early and late, a rehearsal left
/// running with its gated step approved, and one just started.
async fn walks(writer: &mut Schema3Writer, store: &PgStore, w: &Ws4, old: bool) -> Vec<Walk> {
    let (op, owner) = (&w.operator, &w.owner);
    let done = |step| Command::Done { step, note: None };
    let mut out = Vec::new();

    let mut a = writer.start(store, &w.plain, op, false, None, old).await;
    for s in 1..=4 {
        writer.act(&mut a, done(s), op).await;
    }
    out.push(a);

    let mut b = writer.start(store, &w.gated, op, false, None, old).await;
    writer.act(&mut b, done(1), op).await;
    writer
        .act(
            &mut b,
            Command::Fail {
                step: 2,
                note: "timeout".into(),
            },
            op,
        )
        .await;
    writer.act(&mut b, Command::Retry { step: 2 }, op).await;
    writer
        .act(&mut b, Command::Approve { step: 2 }, owner)
        .await;
    writer
        .act(
            &mut b,
            Command::Done {
                step: 2,
                note: Some("switched".into()),
            },
            op,
        )
        .await;
    writer
        .act(
            &mut b,
            Command::Skip {
                step: 3,
                reason: "checked by hand".into(),
            },
            op,
        )
        .await;
    writer
        .act(
            &mut b,
            Command::Fail {
                step: 4,
                note: "mail down".into(),
            },
            op,
        )
        .await;
    writer
        .act(
            &mut b,
            Command::Skip {
                step: 4,
                reason: "announced in chat".into(),
            },
            op,
        )
        .await;
    assert_eq!(b.e.status, ExecutionStatus::Completed);
    out.push(b);

    let mut c = writer.start(store, &w.gated, op, false, None, old).await;
    writer.act(&mut c, done(1), op).await;
    writer
        .act(&mut c, Command::Approve { step: 2 }, owner)
        .await;
    writer
        .act(
            &mut c,
            Command::Fail {
                step: 2,
                note: "lag".into(),
            },
            op,
        )
        .await;
    writer.act(&mut c, Command::Retry { step: 2 }, op).await;
    writer
        .act(&mut c, Command::Approve { step: 2 }, owner)
        .await;
    writer.act(&mut c, done(2), op).await;
    writer
        .act(
            &mut c,
            Command::Abort {
                reason: "rolled back".into(),
            },
            op,
        )
        .await;
    out.push(c);

    let mut d = writer.start(store, &w.plain, op, false, None, old).await;
    writer
        .act(
            &mut d,
            Command::Abort {
                reason: "wrong runbook".into(),
            },
            op,
        )
        .await;
    out.push(d);

    let channel = ChannelRef {
        platform: "slack".into(),
        channel: "C0OPS".into(),
    };
    let mut e = writer
        .start(store, &w.gated, op, true, Some(channel), old)
        .await;
    writer.act(&mut e, done(1), op).await;
    writer
        .act(&mut e, Command::Approve { step: 2 }, owner)
        .await;
    out.push(e);

    out.push(writer.start(store, &w.plain, op, false, None, old).await);
    out
}

/// Schema 4 converts executions in place: a database at schema 3 holding walks of every kind
/// in several workspaces, written as the schema-3 store wrote them (approvals with and without
/// `satisfied_as`), is upgraded by connecting; every execution then reads back equal to what
/// the state machine left (single reads, lists, a click's reads), its events equal (filled
/// approvals included), the audit chains verify, snapshots are stored once per content and
/// workspace, the headers no longer hold steps, the typed event columns are filled, only the new
/// step function is left, and new clicks work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_4_converts_whole_executions_into_header_snapshot_and_events() {
    let Some(admin) =
        admin_url("schema_4_converts_whole_executions_into_header_snapshot_and_events")
    else {
        return;
    };
    let db = ScratchDatabase::create(&admin).await.unwrap();
    let url = db.url().to_owned();
    let options = || PgOptions::default().max_connections(4);

    let v3: &[&str] = &MIGRATIONS[..3];
    let store = Arc::new(
        PgStore::connect_with_migrations(&url, options(), v3)
            .await
            .unwrap(),
    );
    let vigilo = Vigilo::new(store.clone());
    let acme = workspace_at_schema_3(&vigilo, "acme").await;
    let beta = workspace_at_schema_3(&vigilo, "beta").await;
    let mut writer = Schema3Writer {
        c: plain(&url).await,
        at: to_micros(Utc::now()),
    };
    let mut all = walks(&mut writer, &store, &acme, true).await;
    all.extend(walks(&mut writer, &store, &beta, false).await);
    drop(vigilo);
    store.close();
    drop(store);

    let c = plain(&url).await;
    assert_eq!(schema_version(&c).await, 3);
    let audit_before: i64 = c
        .query_one("SELECT count(*) FROM audit", &[])
        .await
        .unwrap()
        .get(0);

    // The upgrade.
    let store = Arc::new(PgStore::connect(&url, options()).await.unwrap());
    assert_eq!(schema_version(&c).await, MIGRATIONS.len() as i32);

    for walk in &all {
        let got = store.execution_by_key(walk.ws, walk.e.key).await.unwrap();
        assert_eq!(got, walk.e, "{} reads back as before", walk.e.key);
        assert_eq!(store.execution(walk.ws, walk.e.id).await.unwrap(), walk.e);
        assert_eq!(
            store.step_events(walk.ws, walk.e.id).await.unwrap(),
            events_after_conversion(walk),
            "events of {}",
            walk.e.key
        );
        let reads = store
            .action_reads(walk.ws, walk.e.operator, walk.e.key)
            .await;
        assert_eq!(reads.execution.unwrap(), walk.e);
    }
    for ws in [
        acme.owner.membership.workspace,
        beta.owner.membership.workspace,
    ] {
        let listed = store
            .list_executions(ws, &Default::default())
            .await
            .unwrap();
        let mut want: Vec<&Execution> = all.iter().filter(|x| x.ws == ws).map(|x| &x.e).collect();
        want.sort_by_key(|e| std::cmp::Reverse(e.key.number));
        assert_eq!(listed.iter().collect::<Vec<_>>(), want);
        let open = store
            .list_executions(
                ws,
                &vigilo_core::store::ExecutionQuery {
                    open_only: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(open.len(), 2, "the rehearsal and the one just started");
        // Entries of the walks, plus setup: all still there and chained.
        assert!(common::verified_chain(&*store, ws).await > 30);
    }
    let audit_after: i64 = c
        .query_one("SELECT count(*) FROM audit", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(audit_after, audit_before);

    // Stored once per content and workspace: two runbooks in each of two workspaces.
    let snapshots: i64 = c
        .query_one("SELECT count(*) FROM execution_snapshots", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(snapshots, 4);
    let headers_with_steps: i64 = c
        .query_one(
            "SELECT count(*) FROM executions WHERE doc::jsonb ? 'steps' OR doc::jsonb ? 'status'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(headers_with_steps, 0, "headers hold no steps and no state");
    let rows = c
        .query(
            "SELECT key_number, status, current_step, rev, rehearsal FROM executions",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), all.len());
    for row in &rows {
        let (number, status, current, rev, rehearsal): (i64, String, Option<i32>, i64, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        // Keys repeat across workspaces: some walk of that number has these columns.
        let matching = all.iter().any(|w| {
            w.e.key.number as i64 == number
                && w.e.status.as_str() == status
                && w.e.current_index().map(|i| i as i32 + 1) == current
                && w.e.rev as i64 == rev
                && w.e.rehearsal == rehearsal
        });
        assert!(
            matching,
            "state columns of EX {number}: {status} {current:?} {rev}"
        );
    }
    let untyped: i64 = c
        .query_one(
            "SELECT count(*) FROM step_events
             WHERE kind IS NULL OR at IS NULL OR kind <> doc::jsonb ->> 'kind'
                OR at <> (doc::jsonb ->> 'at')::timestamptz
                OR step_id IS DISTINCT FROM (doc::jsonb ->> 'step_id')::uuid
                OR started_at IS DISTINCT FROM (doc::jsonb ->> 'started_at')::timestamptz",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(untyped, 0, "every event's typed columns match its document");
    let functions = step_functions(&c).await;
    assert_eq!(functions.len(), 1, "{functions:?}");
    assert_eq!(functions[0].0, 29, "{functions:?}");
    assert!(
        !functions[0].1.contains("p_doc text"),
        "the new function takes no execution document: {functions:?}"
    );
    let old_table: bool = c
        .query_one("SELECT to_regclass('executions_v4') IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(old_table, "the conversion's table took the name executions");

    // New clicks: the rehearsal (gated step approved) and the one just started, walked on
    // through the service, then read back.
    let vigilo = Vigilo::new(store.clone());
    for walk in all.iter().filter(|w| !w.e.status.is_sealed()) {
        let who = Who::new(walk.ws, walk.e.operator);
        let step = walk.e.current_index().unwrap() as u32 + 1;
        let acted = vigilo
            .act(&who, walk.e.key, Command::Done { step, note: None })
            .await
            .unwrap();
        assert_eq!(acted.execution.rev, walk.e.rev + 1);
        assert_eq!(
            store.execution_by_key(walk.ws, walk.e.key).await.unwrap(),
            acted.execution
        );
        let events = store.step_events(walk.ws, walk.e.id).await.unwrap();
        assert_eq!(events.len() as u64, walk.e.rev + 1);
        assert_eq!(events.last().unwrap(), &acted.event);
    }
    for ws in [
        acme.owner.membership.workspace,
        beta.owner.membership.workspace,
    ] {
        common::verified_chain(&*store, ws).await;
    }
    drop(vigilo);
    store.close();
    drop(store);
    drop(c);
    db.drop_database().await;
}

/// A schema-3 execution whose document disagrees with its events (edited behind Vigilo's
/// back) stops the upgrade: the migration fails naming the execution, and nothing is changed
/// (still schema 3, the document as it was, no snapshot table).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_4_refuses_an_execution_its_events_do_not_rebuild() {
    let Some(admin) = admin_url("schema_4_refuses_an_execution_its_events_do_not_rebuild") else {
        return;
    };
    let db = ScratchDatabase::create(&admin).await.unwrap();
    let url = db.url().to_owned();
    let options = || PgOptions::default().max_connections(2);
    let v3: &[&str] = &MIGRATIONS[..3];
    let store = Arc::new(
        PgStore::connect_with_migrations(&url, options(), v3)
            .await
            .unwrap(),
    );
    let vigilo = Vigilo::new(store.clone());
    let w = workspace_at_schema_3(&vigilo, "acme").await;
    let mut writer = Schema3Writer {
        c: plain(&url).await,
        at: to_micros(Utc::now()),
    };
    let mut good = writer
        .start(&store, &w.plain, &w.operator, false, None, true)
        .await;
    writer
        .act(
            &mut good,
            Command::Done {
                step: 1,
                note: None,
            },
            &w.operator,
        )
        .await;
    let mut bad = writer
        .start(&store, &w.plain, &w.operator, false, None, true)
        .await;
    writer
        .act(
            &mut bad,
            Command::Done {
                step: 1,
                note: None,
            },
            &w.operator,
        )
        .await;
    drop(vigilo);
    store.close();
    drop(store);

    // Step 2 marked done in the document, with no event saying so.
    let c = plain(&url).await;
    let edited = c
        .execute(
            r#"UPDATE executions SET doc = jsonb_set(doc::jsonb, '{steps,1,status}', '"done"')::text
               WHERE id = $1"#,
            &[&bad.e.id.0],
        )
        .await
        .unwrap();
    assert_eq!(edited, 1);
    let before: String = c
        .query_one("SELECT doc FROM executions WHERE id = $1", &[&bad.e.id.0])
        .await
        .unwrap()
        .get(0);

    let err = PgStore::connect(&url, options()).await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&bad.e.key.to_string())
            && message.contains("version 4")
            && message.contains("nothing was changed"),
        "{message}"
    );
    assert!(message.contains("step 2"), "says what differs: {message}");
    assert!(!message.contains(&good.e.key.to_string()), "{message}");
    assert_eq!(schema_version(&c).await, 3, "rolled back");
    let after: String = c
        .query_one("SELECT doc FROM executions WHERE id = $1", &[&bad.e.id.0])
        .await
        .unwrap()
        .get(0);
    assert_eq!(after, before);
    let no_table: bool = c
        .query_one("SELECT to_regclass('execution_snapshots') IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(no_table);
    drop(c);
    db.drop_database().await;
}
