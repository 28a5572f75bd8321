//! The binary's global contract: database and workspace resolution, users, incidents, exit
//! codes 0–6 with their `--json` error shapes, help, completions, and unavailable backends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use cli_support::{Env, has_keys};

#[test]
fn setup_workspaces_and_users() {
    let env = Env::empty();
    // No database yet: not found, and nothing is created.
    let e = env.fails(Some("alice"), &["runbook", "list"], 3);
    assert_eq!(e["kind"], "not_found");
    assert!(
        e["message"].as_str().unwrap().contains("vigilo init"),
        "{e}"
    );
    assert!(!env.db.exists());

    // init prints the workspace (its key is the slug) and creates the file.
    let ws = env.json(None, &["init", "--workspace", "acme", "--owner", "alice"]);
    has_keys(&ws, &["id", "key", "slug", "owner"]);
    assert_eq!(ws["slug"], "acme");
    assert_eq!(ws["owner"], "alice");
    assert!(env.db.exists());
    // init again: the slug is taken.
    assert_eq!(
        env.fails(None, &["init", "--workspace", "acme", "--owner", "bob"], 5)["kind"],
        "conflict"
    );
    // init without --workspace: usage.
    assert_eq!(
        env.fails(None, &["init", "--owner", "x"], 2)["kind"],
        "usage"
    );

    // Users.
    let bob = env.json(
        Some("alice"),
        &[
            "user",
            "add",
            "bob",
            "--role",
            "operator",
            "--name",
            "Bob",
            "--slack-id",
            "U1",
        ],
    );
    has_keys(&bob, &["id", "key", "handle", "role", "team_roles"]);
    assert_eq!(bob["role"], "operator");
    assert_eq!(bob["chat_identities"][0]["user"], "U1");
    env.ok(
        Some("alice"),
        &[
            "user",
            "add",
            "carol",
            "--role",
            "admin",
            "--team-role",
            "sre",
        ],
    );
    // Adding twice is a conflict; a member may not add users; a bad role is a usage error.
    assert_eq!(
        env.fails(
            Some("alice"),
            &["user", "add", "bob", "--role", "member"],
            5
        )["kind"],
        "conflict"
    );
    let denied = env.fails(Some("bob"), &["user", "add", "eve", "--role", "member"], 4);
    assert_eq!(denied["kind"], "denied");
    assert!(
        denied["message"].as_str().unwrap().contains("admin"),
        "{denied}"
    );
    env.fails(
        Some("alice"),
        &["user", "add", "eve", "--role", "wizard"],
        2,
    );
    let m = env.json(
        Some("alice"),
        &["user", "set-role", "bob", "admin", "--team-role", "dba"],
    );
    assert_eq!(m["role"], "admin");
    assert_eq!(m["team_roles"][0], "dba");
    let list = env.json(Some("bob"), &["user", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 3);
    let text = env.ok(Some("bob"), &["user", "list"]);
    assert!(text.starts_with("HANDLE"), "{text}");
    assert!(text.contains("@carol"), "{text}");
    // The only owner cannot be demoted.
    assert_eq!(
        env.fails(Some("alice"), &["user", "set-role", "alice", "admin"], 6)["kind"],
        "refused"
    );

    // Acting user: required, and must be a member.
    let e = env.fails(None, &["runbook", "list"], 2);
    assert_eq!(e["kind"], "usage");
    assert!(e["message"].as_str().unwrap().contains("--as"), "{e}");
    env.fails(Some("nobody"), &["runbook", "list"], 3);

    // A second workspace: commands must then name one; VIGILO_WORKSPACE works too.
    let ws2 = env.json(None, &["workspace", "create", "beta", "--owner", "zed"]);
    assert_eq!(ws2["slug"], "beta");
    let e = env.fails(Some("alice"), &["runbook", "list"], 2);
    assert!(
        e["message"].as_str().unwrap().contains("--workspace"),
        "{e}"
    );
    env.ok(Some("alice"), &["--workspace", "acme", "runbook", "list"]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigilo"))
        .current_dir(env.dir.path())
        .env("VIGILO_DB", format!("sqlite:{}", env.db.display()))
        .env("VIGILO_WORKSPACE", "beta")
        .env("VIGILO_USER", "zed")
        .args(["--json", "user", "list"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let members: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(members[0]["handle"], "zed");
    // Workspace isolation: alice is not a member of beta.
    env.fails(
        Some("alice"),
        &["--workspace", "beta", "runbook", "list"],
        3,
    );
    env.fails(
        Some("alice"),
        &["--workspace", "gamma", "runbook", "list"],
        3,
    );
    let all = env.json(None, &["workspace", "list"]);
    assert_eq!(all.as_array().unwrap().len(), 2);
    let linked = env.json(
        Some("alice"),
        &["workspace", "link-slack", "acme", "--team", "T0123"],
    );
    assert_eq!(linked["slack_team"], "T0123");
    env.fails(
        Some("zed"),
        &["workspace", "link-slack", "acme", "--team", "T9"],
        3,
    );
}

#[test]
fn incidents_and_error_shapes() {
    let env = Env::seeded();
    let inc = env.json(
        Some("dave"),
        &["incident", "create", "--title", "Edge 5xx spike"],
    );
    has_keys(&inc, &["id", "key", "title", "status", "created_at"]);
    assert_eq!(inc["key"], "INC-00001");
    assert_eq!(inc["status"], "open");
    // A member may not resolve; an operator may; twice is refused.
    assert_eq!(
        env.fails(Some("dave"), &["incident", "resolve", "INC-00001"], 4)["kind"],
        "denied"
    );
    let r = env.json(Some("bob"), &["incident", "resolve", "INC-00001"]);
    assert_eq!(r["status"], "resolved");
    assert!(r["resolved_at"].is_string());
    env.fails(Some("bob"), &["incident", "resolve", "INC-00001"], 6);
    env.fails(Some("bob"), &["incident", "resolve", "INC-00009"], 3);
    // The id is accepted wherever the key is.
    let id = inc["id"].as_str().unwrap();
    env.fails(Some("bob"), &["incident", "resolve", id], 6);
    let list = env.json(Some("dave"), &["incident", "list"]);
    assert_eq!(list[0]["key"], "INC-00001");
    let text = env.ok(Some("dave"), &["incident", "list"]);
    assert!(
        text.contains("INC-00001") && text.contains("resolved"),
        "{text}"
    );

    // A malformed key is a usage error (exit 2), also as JSON.
    let e = env.fails(Some("bob"), &["runbook", "show", "XX-1"], 2);
    assert_eq!(e["kind"], "usage");
    env.fails(Some("bob"), &["runbook", "show", "EX-00001"], 2);
    // Unknown subcommand / missing argument.
    env.fails(None, &["frobnicate"], 2);
    let r = env.run(None, &["exec", "skip"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("Usage"), "{}", r.stderr);
    // Without --json, errors are one `error:` line on stderr.
    let r = env.run(Some("bob"), &["runbook", "show", "RB-00042"]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.starts_with("error: no runbook RB-00042"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty());
}

#[test]
fn help_completions_and_backends() {
    let env = Env::empty();
    for args in [
        vec!["--help"],
        vec!["runbook", "import", "--help"],
        vec!["exec", "done", "--help"],
        vec!["change", "save-as-runbook", "--help"],
        vec!["audit", "verify", "--help"],
    ] {
        let r = env.run(None, &args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(
            r.stdout.contains("Example"),
            "{args:?} help has no example:\n{}",
            r.stdout
        );
    }
    let r = env.run(None, &["--version"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with("vigilo "), "{}", r.stdout);
    for shell in ["bash", "zsh", "fish"] {
        let out = env.ok(None, &["completions", shell]);
        assert!(out.contains("vigilo"), "{shell}");
        assert!(out.contains("runbook"), "{shell}");
    }
    env.fails(None, &["completions", "tcsh"], 2);
    // PostgreSQL: without the `postgres` feature a clear error; with it, an unreachable
    // server. Either way exit 1, naming PostgreSQL.
    let e = env.fails(
        Some("alice"),
        &[
            "--db",
            "postgres://u:secret@127.0.0.1:1/vigilo",
            "runbook",
            "list",
        ],
        1,
    );
    assert_eq!(e["kind"], "internal");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("PostgreSQL"), "{e}");
    assert!(!msg.contains("secret"), "the password is not printed: {e}");
    #[cfg(not(feature = "postgres"))]
    assert!(
        msg.contains("PostgreSQL support is not built into this binary yet"),
        "{e}"
    );
    // A file that is not a Vigilo database is refused and left alone.
    let junk = env.write("junk.db", "not a database at all");
    let e = env.fails(
        Some("alice"),
        &["--db", junk.to_str().unwrap(), "runbook", "list"],
        1,
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("not a Vigilo database"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(&junk).unwrap(),
        "not a database at all"
    );
    // serve slack without its tokens: a usage error naming what is missing.
    let e = env.fails(None, &["serve", "slack"], 2);
    assert!(
        e["message"].as_str().unwrap().contains("SLACK_BOT_TOKEN"),
        "{e}"
    );
}

#[test]
fn console_runs_without_as() {
    let env = Env::empty();
    // A fresh database: the console seeds its demo workspace and picks its own user.
    let r = env.run_stdin(None, &["console"], "help\n/quit\n");
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(!r.stdout.is_empty());
    let r = env.run_stdin(None, &["console", "--channel", "ops"], "list\n");
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("RB-"), "{}", r.stdout);
}

/// The same binary on PostgreSQL, when built with `postgres` and a server is given in
/// `VIGILO_TEST_PG_URL` (CI starts one).
#[cfg(feature = "postgres")]
#[test]
fn postgres_backend() {
    let Ok(admin) = std::env::var("VIGILO_TEST_PG_URL") else {
        eprintln!("VIGILO_TEST_PG_URL not set; skipping the PostgreSQL run");
        return;
    };
    // A database of its own: the server's `postgres` database may hold another build's schema.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let scratch = rt
        .block_on(vigilo_store::postgres::ScratchDatabase::create(&admin))
        .unwrap();
    let url = scratch.url().to_owned();
    let env = Env::empty();
    let tag = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let ws = format!("cli-{tag}");
    let owner = format!("o{tag}");
    let run = |args: &[&str]| {
        let mut a = vec![
            "--db",
            url.as_str(),
            "--workspace",
            ws.as_str(),
            "--as",
            owner.as_str(),
            "--json",
        ];
        a.extend_from_slice(args);
        env.run(None, &a)
    };
    let r = env.run(
        None,
        &[
            "--db",
            &url,
            "--workspace",
            &ws,
            "--json",
            "init",
            "--owner",
            &owner,
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let f = env.write(
        "rotate.md",
        cli_support::ROTATE
            .replace("owner = \"alice\"", "")
            .as_str(),
    );
    let r = run(&["runbook", "import", f.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let key = r.json()["key"].as_str().unwrap().to_owned();
    let r = run(&["runbook", "export", &key]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let exported = r.json()["markdown"].as_str().unwrap().to_owned();
    let e = env.write("exported.md", &exported);
    let r = run(&["runbook", "import", e.to_str().unwrap()]);
    assert_eq!(r.json()["action"], "unchanged");
    let r = run(&["audit", "verify"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["result"], "intact");
    rt.block_on(scratch.drop_database());
}
