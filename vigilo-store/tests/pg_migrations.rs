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
    assert_eq!(MIGRATIONS.len(), 3);

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
    let functions: Vec<(i16, String)> = c
        .query(
            "SELECT pronargs, pg_get_function_identity_arguments(oid) FROM pg_proc
             WHERE proname = 'vigilo_step_transition'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(functions.len(), 1, "{functions:?}");
    assert_eq!(functions[0].0, 31, "{functions:?}");
    assert!(
        functions[0]
            .1
            .contains("p_genesis text, p_acting_user uuid, p_acting_rev bigint"),
        "{functions:?}"
    );
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
