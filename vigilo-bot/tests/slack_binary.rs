//! The real `vigilo serve slack` binary: a SQLite file seeded with the CLI, the server pointed
//! at a fake Slack Web API with `--slack-api-url`, an execution walked with signed requests,
//! SIGTERM, and the file reopened with the CLI to check every acknowledged write is there.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;
mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use cli_support::{Env, ROTATE};
use support::process::BotProcess;
use support::{FakeSlack, SECRET, SlackClient, SlackUser};

/// `vigilo serve slack …` on the env's database, with the Slack variables of `vars` only.
fn serve(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigilo"));
    c.current_dir(env.dir.path())
        .env("VIGILO_DB", &env.db)
        .env_remove("RUST_LOG")
        .env_remove("SLACK_SIGNING_SECRET")
        .env_remove("SLACK_BOT_TOKEN")
        .env_remove("SLACK_APP_TOKEN")
        .env("NO_COLOR", "1")
        .args(["serve", "slack"])
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in vars {
        c.env(k, v);
    }
    c
}

/// acme linked to Slack team T0ACME; alice (owner), bob (operator, sre, Slack U0BOB), carol
/// (member, sre, Slack U0CAROL); the rotation runbook, published.
fn seeded() -> Env {
    let env = Env::empty();
    env.ok(
        None,
        &[
            "init",
            "--workspace",
            "acme",
            "--owner",
            "alice",
            "--name",
            "Alice",
        ],
    );
    env.ok(
        Some("alice"),
        &["workspace", "link-slack", "acme", "--team", "T0ACME"],
    );
    env.ok(
        Some("alice"),
        &[
            "user",
            "add",
            "bob",
            "--role",
            "operator",
            "--team-role",
            "sre",
            "--slack-id",
            "U0BOB",
        ],
    );
    env.ok(
        Some("alice"),
        &[
            "user",
            "add",
            "carol",
            "--role",
            "member",
            "--team-role",
            "sre",
            "--slack-id",
            "U0CAROL",
        ],
    );
    let file = env.write("rotate.md", ROTATE);
    env.ok(
        Some("alice"),
        &["runbook", "import", file.to_str().unwrap()],
    );
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_slack_and_stops_cleanly_on_sigterm() {
    let env = seeded();
    let fake = FakeSlack::start().await;
    let mut server = BotProcess::spawn(
        "vigilo serve slack",
        serve(
            &env,
            &[
                "--listen",
                "127.0.0.1:0",
                "--slack-api-url",
                &format!("{}/", fake.url),
                "--log-format",
                "json",
                "-v",
            ],
            &[
                ("SLACK_SIGNING_SECRET", SECRET),
                ("SLACK_BOT_TOKEN", "xoxb-binary-test"),
            ],
        ),
    );
    let listening = server.wait_log("Slack surface listening", Duration::from_secs(10));
    let addr: SocketAddr = listening["fields"]["addr"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(listening["level"], "INFO");
    let client = SlackClient::new(addr, SECRET);
    assert_eq!(client.get("/healthz").await.body.trim(), "ok");
    let bob = SlackUser::new("T0ACME", "U0BOB", "C0OPS");

    // Every request URL of the Slack app manifest is served: unsigned, each gets the
    // signature refusal (400), not a 404.
    let manifest = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../slack-manifest.yml"
    ))
    .unwrap();
    let paths: Vec<&str> = manifest
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            l.split_once("https://vigilo.example.com")
                .map(|(_, p)| p.trim())
        })
        .collect();
    assert_eq!(
        paths,
        ["/slack/commands", "/slack/events", "/slack/interactions"],
        "{manifest}"
    );
    for path in paths {
        let a = client.post_with(path, b"x=1".to_vec(), &[]).await;
        assert_eq!(
            (a.status, a.body.trim()),
            (400, "missing Slack signature headers"),
            "{path}"
        );
    }

    // A forged request is refused by the binary too.
    let forged = SlackClient {
        secret: "wrong".into(),
        ..client.clone()
    };
    let a = forged
        .post("/slack/commands", &bob.command("run RB-00001"))
        .await;
    assert_eq!(a.status, 401);

    // run → header and card 1 (the trailing slash of --slack-api-url was dropped).
    let a = client
        .post("/slack/commands", &bob.command("run RB-00001"))
        .await;
    assert_eq!((a.status, a.body.as_str()), (200, ""));
    let posts = fake.wait_calls(0, "chat.postMessage", 2).await;
    assert_eq!(posts[0].auth, "Bearer xoxb-binary-test");
    assert!(posts[0].text().contains("RB-00001"), "{}", posts[0].text());
    let card1 = posts[1].clone();
    assert!(card1.text().contains("Step 1/2"), "{}", card1.text());

    // Done → card 2, gated. bob started the execution, so he may not approve it himself
    // (told privately); carol (sre) approves.
    let from = fake.count();
    let a = client
        .post("/slack/interactions", &bob.click(&card1, "vigilo.done"))
        .await;
    assert_eq!(a.status, 200);
    let card2 = fake.wait_calls(from, "chat.postMessage", 1).await[0].clone();
    assert!(
        card2.text().contains("APPROVAL REQUIRED"),
        "{}",
        card2.text()
    );
    let from = fake.count();
    client
        .post("/slack/interactions", &bob.click(&card2, "vigilo.approve"))
        .await;
    let denied = fake.wait_calls(from, "chat.postEphemeral", 1).await;
    assert_eq!(denied[0].body["user"], "U0BOB");
    let carol = SlackUser::new("T0ACME", "U0CAROL", "C0OPS");
    let from = fake.count();
    client
        .post(
            "/slack/interactions",
            &carol.click(&card2, "vigilo.approve"),
        )
        .await;
    let up = fake.wait_calls(from, "chat.update", 1).await;
    assert!(up[0].text().contains("APPROVED"), "{}", up[0].text());

    // The last Done, then SIGTERM at once: the write and its messages still finish.
    let from = fake.count();
    let a = client
        .post("/slack/interactions", &bob.click(&card2, "vigilo.done"))
        .await;
    assert_eq!((a.status, a.body.as_str()), (200, ""));
    let code = tokio::task::spawn_blocking(move || {
        let code = server.terminate();
        (code, server)
    })
    .await
    .unwrap();
    let (code, mut server) = code;
    let log = server.log().to_vec();
    assert_eq!(code, 0, "clean exit; stderr:\n{log:#?}");
    assert!(
        log.iter().any(|l| l.contains("Slack surface stopped")),
        "{log:#?}"
    );
    let calls: Vec<_> = fake.calls().into_iter().skip(from).collect();
    assert!(
        calls
            .iter()
            .any(|c| c.method == "chat.postMessage" && c.text().contains("Summary")),
        "the summary was posted before exiting: {calls:#?}"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );

    // Reopened with the CLI: the execution is completed and sealed, the audit chain intact.
    let show = env.json(Some("bob"), &["exec", "show", "EX-00001"]);
    assert_eq!(show["status"], "completed", "{show:#}");
    assert_eq!(show["operator"], "bob");
    assert_eq!(show["steps"][1]["approved_by"], "carol");
    assert_eq!(show["steps"][1]["actor"], "bob");
    let verify = env.json(None, &["audit", "verify"]);
    assert_eq!(verify["result"], "intact");
    assert!(verify["entries"].as_i64().unwrap() >= 6, "{verify}");
}

#[test]
fn missing_tokens_are_a_usage_error() {
    let env = Env::empty();
    /// Arguments, environment, and the variable the error must name.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 3] = [
        (&[], &[("SLACK_SIGNING_SECRET", "s")], "SLACK_BOT_TOKEN"),
        (
            &[],
            &[("SLACK_BOT_TOKEN", "xoxb-1")],
            "SLACK_SIGNING_SECRET",
        ),
        (
            &["--socket-mode"],
            &[("SLACK_BOT_TOKEN", "xoxb-1")],
            "SLACK_APP_TOKEN",
        ),
    ];
    for (args, vars, missing) in cases {
        let out = serve(&env, args, vars).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {vars:?}: {stderr}");
        assert!(stderr.contains(missing), "{missing} not named: {stderr}");
        assert!(out.stdout.is_empty());
    }
    let out = serve(
        &env,
        &["--slack-api-url", "slack.example.com/api"],
        &[("SLACK_SIGNING_SECRET", "s"), ("SLACK_BOT_TOKEN", "xoxb-1")],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!env.db.exists(), "nothing was created by a refused start");
}

#[test]
fn a_bad_or_busy_listen_address_is_refused_clearly() {
    let env = seeded();
    let vars = [("SLACK_SIGNING_SECRET", "s"), ("SLACK_BOT_TOKEN", "xoxb-1")];
    // Not an address: a usage error that says what to give.
    let out = serve(&env, &["--listen", "localhost-3000"], &vars)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("host:port"), "{stderr}");
    // A port someone else holds: exit 1 naming the address, no panic.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = serve(&env, &["--listen", &addr], &vars).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&addr), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn the_manifest_asks_for_what_the_bot_uses() {
    let manifest = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../slack-manifest.yml"
    ))
    .unwrap();
    let lines: Vec<&str> = manifest
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    for want in [
        "- command: /runbook",
        "- chat:write",
        "- commands",
        "- app_mentions:read",
        "- app_mention",
        "is_enabled: true",
        "socket_mode_enabled: false",
    ] {
        assert!(lines.contains(&want), "{want:?} missing from the manifest");
    }
    // Slack accepts only a-z, 0-9, `-`, `_` and `.` in the bot's display name.
    let name = lines
        .iter()
        .find_map(|l| l.strip_prefix("display_name: "))
        .unwrap();
    assert!(
        name.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c)),
        "{name}"
    );
}
