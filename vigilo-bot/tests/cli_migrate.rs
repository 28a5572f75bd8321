//! `vigilo migrate --from sqlite:PATH --to postgres://…` through the real binary, from a real
//! SQLite file into a fresh database of the PostgreSQL server of `VIGILO_TEST_PG_URL`.
//!
//! Everything must arrive as it was (the same JSON from `runbook show`, `exec show`, `change
//! show`, `audit list`, … against either database), key counters must continue, the audit
//! chain must verify on the target, and the command must refuse a target that holds data, a
//! source that is not a Vigilo database, and a source whose audit chain is broken. Without
//! `VIGILO_TEST_PG_URL` the tests say they were skipped, and pass.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use cli_support::{Env, ROTATE, path_str, simple};
use serde_json::Value;
use vigilo_store::postgres::ScratchDatabase;

const URL_VAR: &str = "VIGILO_TEST_PG_URL";

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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A fresh, empty database on the test server.
fn scratch(rt: &tokio::runtime::Runtime, admin: &str) -> ScratchDatabase {
    rt.block_on(ScratchDatabase::create(admin)).unwrap()
}

/// A source database with something in every table: two workspaces, members with a Slack
/// identity, runbooks with several versions (one archived, one draft), executions in every
/// state, a change with a plan, incidents.
fn busy_source() -> Env {
    let env = Env::seeded();
    let alice = Some("alice");
    let bob = Some("bob");
    env.ok(
        alice,
        &["workspace", "link-slack", "acme", "--team", "T0ACME"],
    );
    env.ok(
        alice,
        &[
            "user",
            "add",
            "erin",
            "--role",
            "operator",
            "--slack-id",
            "U0ERIN",
        ],
    );
    let rotate = env.write("rotate.md", ROTATE);
    env.ok(
        alice,
        &["runbook", "import", path_str(&rotate), "--publish"],
    );
    let purge = env.write(
        "purge.md",
        &simple("Purge the cache", &[("Drain", 2), ("Purge", 3)]),
    );
    env.ok(alice, &["runbook", "import", path_str(&purge), "--publish"]);
    let purge2 = env.write(
        "purge2.md",
        &simple(
            "Purge the cache",
            &[("Drain", 2), ("Purge", 4), ("Check", 1)],
        ),
    );
    env.ok(
        alice,
        &["runbook", "import", path_str(&purge2), "--into", "RB-00002"],
    );
    let old = env.write("old.md", &simple("Old way", &[("Do it", 1)]));
    env.ok(alice, &["runbook", "import", path_str(&old), "--publish"]);
    env.ok(alice, &["runbook", "archive", "RB-00003"]);
    let draft = env.write("draft.md", &simple("Half written", &[("Think", 5)]));
    env.ok(bob, &["runbook", "import", path_str(&draft)]);

    env.ok(bob, &["incident", "create", "--title", "Edge 5xx spike"]);
    env.ok(bob, &["incident", "create", "--title", "Disk full"]);
    env.ok(bob, &["incident", "resolve", "INC-00002"]);
    env.ok(
        bob,
        &["exec", "start", "RB-00002", "--incident", "INC-00001"],
    );
    env.ok(
        bob,
        &[
            "exec", "done", "EX-00001", "--step", "1", "--note", "drained",
        ],
    );
    env.ok(
        bob,
        &["exec", "skip", "EX-00001", "--reason", "already empty"],
    );
    env.ok(bob, &["exec", "done", "EX-00001"]);
    env.ok(bob, &["exec", "start", "RB-00002"]);
    env.ok(bob, &["exec", "fail", "EX-00002", "--note", "refused"]);
    env.ok(
        bob,
        &["exec", "abort", "EX-00002", "--reason", "window closed"],
    );
    env.ok(bob, &["exec", "start", "RB-00002"]);
    env.ok(bob, &["exec", "done", "EX-00003"]);

    env.ok(bob, &["change", "create", "--title", "Rotate edge certs"]);
    env.ok(bob, &["change", "import", "CR-00001", "RB-00002"]);
    env.ok(alice, &["change", "approve", "CR-00001"]);

    // A second workspace with a chain of its own.
    env.ok(
        None,
        &["workspace", "create", "payments", "--owner", "carol"],
    );
    env.ok(
        Some("carol"),
        &[
            "--workspace",
            "payments",
            "incident",
            "create",
            "--title",
            "Card declines",
        ],
    );
    env
}

/// `vigilo --json --db <db> [--workspace ws] [--as user] args…` on either database.
fn json_on(env: &Env, db: &str, ws: &str, user: Option<&str>, args: &[&str]) -> Value {
    let mut a = vec!["--db", db, "--workspace", ws];
    a.extend_from_slice(args);
    env.json(user, &a)
}

#[test]
fn migrate_copies_everything_and_the_chain_verifies() {
    let Some(admin) = admin_url("migrate_copies_everything_and_the_chain_verifies") else {
        return;
    };
    let rt = runtime();
    let target = scratch(&rt, &admin);
    let env = busy_source();
    let source = format!("sqlite:{}", env.db.display());

    let report = env.json(None, &["migrate", "--from", &source, "--to", target.url()]);
    assert_eq!(report["result"], "copied", "{report}");
    assert_eq!(report["audit_verified"], true);
    let tables = report["tables"].as_object().unwrap();
    assert_eq!(tables.len(), 12, "{report}");
    for (table, n) in tables {
        assert_eq!(n["source"], n["target"], "{table}: {report}");
        assert!(
            n["source"].as_u64().unwrap() > 0,
            "{table} is empty in the source: {report}"
        );
    }
    // Cross-check the source counts against the file itself.
    let c = env.sqlite();
    for (table, n) in tables {
        let rows: i64 = c
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(n["source"].as_i64().unwrap(), rows, "{table}");
    }
    drop(c);
    let chains = report["workspaces"].as_array().unwrap();
    assert_eq!(chains.len(), 2, "{report}");

    // Both chains verify on the target (the audit verify command itself).
    let sqlite_db = env.db.to_str().unwrap().to_owned();
    let pg = target.url().to_owned();
    for ws in ["acme", "payments"] {
        let on_pg = json_on(&env, &pg, ws, None, &["audit", "verify"]);
        let on_sqlite = json_on(&env, &sqlite_db, ws, None, &["audit", "verify"]);
        assert_eq!(on_pg["result"], "intact", "{on_pg}");
        assert_eq!(on_pg, on_sqlite, "{ws}: the chains differ");
    }

    // Every read gives the same document from either database.
    let same = |ws: &str, user: &str, args: &[&str]| {
        let a = json_on(&env, &sqlite_db, ws, Some(user), args);
        let b = json_on(&env, &pg, ws, Some(user), args);
        assert_eq!(
            a,
            b,
            "`{}` differs between SQLite and PostgreSQL",
            args.join(" ")
        );
    };
    for args in [
        &["runbook", "list", "--drafts"][..],
        &["runbook", "list", "--archived"],
        &["runbook", "show", "RB-00002"],
        &["runbook", "show", "RB-00002", "--version", "1"],
        &["runbook", "history", "RB-00002"],
        &["runbook", "search", "cache"],
        &["exec", "list"],
        &["exec", "show", "EX-00001"],
        &["exec", "show", "EX-00002"],
        &["exec", "show", "EX-00003"],
        &["change", "show", "CR-00001"],
        &["incident", "list"],
        &["user", "list"],
        &["audit", "list"],
    ] {
        same("acme", "alice", args);
    }
    same("acme", "bob", &["runbook", "list", "--drafts"]);
    same("payments", "carol", &["incident", "list"]);
    same("payments", "carol", &["audit", "list"]);
    let ws_a = env.json(None, &["--db", &sqlite_db, "workspace", "list"]);
    let ws_b = env.json(None, &["--db", &pg, "workspace", "list"]);
    assert_eq!(ws_a, ws_b);

    // Key counters continue where the source left them, and the chain grows on the target.
    let inc = json_on(
        &env,
        &pg,
        "acme",
        Some("bob"),
        &["incident", "create", "--title", "New"],
    );
    assert_eq!(inc["key"], "INC-00003", "{inc}");
    let ex = json_on(
        &env,
        &pg,
        "acme",
        Some("bob"),
        &["exec", "start", "RB-00001"],
    );
    assert_eq!(ex["key"], "EX-00004", "{ex}");
    let rb = json_on(
        &env,
        &pg,
        "payments",
        Some("carol"),
        &["incident", "create", "--title", "x"],
    );
    assert_eq!(rb["key"], "INC-00002", "{rb}");
    let verify = json_on(&env, &pg, "acme", None, &["audit", "verify"]);
    assert_eq!(verify["result"], "intact", "{verify}");
    assert_eq!(
        verify["entries"].as_u64().unwrap(),
        chains.iter().find(|c| c["slug"] == "acme").unwrap()["audit_entries"]
            .as_u64()
            .unwrap()
            + 2
    );
    // The bot knows Erin by her Slack id on the target too: she can act through the service.
    let users = json_on(&env, &pg, "acme", Some("alice"), &["user", "list"]);
    assert!(users.to_string().contains("U0ERIN"), "{users}");

    // A second migration into the same (now busy) database is refused, and changes nothing.
    let before = env.json(
        None,
        &["--db", &pg, "--workspace", "acme", "audit", "verify"],
    );
    let e = env.fails(None, &["migrate", "--from", &source, "--to", &pg], 6);
    assert_eq!(e["kind"], "refused", "{e}");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("already holds"), "{msg}");
    assert!(msg.contains("workspaces: 2 rows"), "{msg}");
    let after = env.json(
        None,
        &["--db", &pg, "--workspace", "acme", "audit", "verify"],
    );
    assert_eq!(before, after);

    rt.block_on(target.drop_database());
}

#[test]
fn migrate_refuses_bad_sources_and_leaves_the_target_empty() {
    let Some(admin) = admin_url("migrate_refuses_bad_sources_and_leaves_the_target_empty") else {
        return;
    };
    let rt = runtime();
    let target = scratch(&rt, &admin);
    let pg = target.url().to_owned();
    let env = Env::seeded();

    // A missing file: not found, and no file is created.
    let missing = env.path("nope.db");
    let e = env.fails(
        None,
        &["migrate", "--from", path_str(&missing), "--to", &pg],
        3,
    );
    assert!(
        e["message"].as_str().unwrap().contains("no database"),
        "{e}"
    );
    assert!(!missing.exists());

    // A text file, and another program's SQLite database: refused, untouched.
    let text = env.write("notes.db", "just some notes\n");
    let e = env.fails(
        None,
        &["migrate", "--from", path_str(&text), "--to", &pg],
        6,
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("not a Vigilo database"),
        "{e}"
    );
    let other = env.path("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch(
            "CREATE TABLE things (id INTEGER PRIMARY KEY); INSERT INTO things VALUES (1);",
        )
        .unwrap();
    let other_bytes = std::fs::read(&other).unwrap();
    let e = env.fails(
        None,
        &["migrate", "--from", path_str(&other), "--to", &pg],
        6,
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("not a Vigilo database"),
        "{e}"
    );
    assert_eq!(std::fs::read(&other).unwrap(), other_bytes);

    // Wrong way round: usage errors naming what is expected.
    let e = env.fails(None, &["migrate", "--from", &pg, "--to", &pg], 2);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("--from must be an SQLite"),
        "{e}"
    );
    let db = env.db.to_str().unwrap().to_owned();
    let e = env.fails(None, &["migrate", "--from", &db, "--to", &db], 2);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("--to must be a PostgreSQL URL"),
        "{e}"
    );

    // A source whose audit chain was edited: exit 7, nothing copied.
    {
        let c = env.sqlite();
        c.execute_batch("DROP TRIGGER audit_no_update;").unwrap();
        let doc: String = c
            .query_row("SELECT doc FROM audit WHERE seq = 2", [], |r| r.get(0))
            .unwrap();
        let mut v: Value = serde_json::from_str(&doc).unwrap();
        v["details"]["tampered"] = serde_json::json!(true);
        c.execute(
            "UPDATE audit SET doc = ?1 WHERE seq = 2",
            [serde_json::to_string(&v).unwrap()],
        )
        .unwrap();
    }
    let e = env.fails(None, &["migrate", "--from", &db, "--to", &pg], 7);
    assert!(
        e["message"].as_str().unwrap().contains("broken at entry 2"),
        "{e}"
    );

    // The target is still empty: a good source now migrates into it.
    let good = Env::seeded();
    let report = good.json(
        None,
        &["migrate", "--from", good.db.to_str().unwrap(), "--to", &pg],
    );
    assert_eq!(report["tables"]["workspaces"]["target"], 1, "{report}");

    rt.block_on(target.drop_database());
}
