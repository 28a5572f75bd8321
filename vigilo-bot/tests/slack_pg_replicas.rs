//! The real `vigilo serve slack` binary on PostgreSQL (`VIGILO_TEST_PG_URL`), each test on a
//! fresh database of its own:
//!
//! - two replicas (two processes) share one database and receive interleaved, signed clicks
//!   for the same executions — the same click delivered to both, a second click on the same
//!   button, a redelivery to the same process — and every step transition is applied exactly
//!   once, the next card is posted once, and `vigilo audit verify` exits 0;
//! - PostgreSQL "restarting" under a running bot: every connection of the bot's pool is ended
//!   from the server side (`pg_terminate_backend` of every backend on the test database, which
//!   is what a server restart does to a client's connections) and the bot's next actions
//!   succeed without restarting it. The shared test server itself is never restarted: other
//!   tests run against it at the same time.
//!
//! Without `VIGILO_TEST_PG_URL` the tests say they were skipped, and pass.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cli_support::{Env, simple};
use serde_json::Value;
use support::process::BotProcess;
use support::{Call, FakeSlack, SECRET, SlackClient, SlackUser};
use vigilo_store::postgres::ScratchDatabase;

const URL_VAR: &str = "VIGILO_TEST_PG_URL";
/// Executions walked at once.
const EXECUTIONS: usize = 4;
/// Steps of the runbook.
const STEPS: usize = 4;

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

/// A running `vigilo serve slack` and the address it listens on.
struct Server {
    process: BotProcess,
    addr: SocketAddr,
}

impl Server {
    /// Starts `vigilo --db <db> serve slack` on a free port (the OS picks it: `--listen
    /// 127.0.0.1:0`; the address is read from the "listening" log line).
    fn start(name: &'static str, env: &Env, db: &str, fake: &FakeSlack) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigilo"));
        cmd.current_dir(env.dir.path())
            .env_remove("VIGILO_DB")
            .env_remove("RUST_LOG")
            .env_remove("SLACK_APP_TOKEN")
            .env("SLACK_SIGNING_SECRET", SECRET)
            .env("SLACK_BOT_TOKEN", "xoxb-replica-test")
            .env("NO_COLOR", "1")
            .args(["--db", db, "--log-format", "json", "-v"])
            .args(["serve", "slack", "--listen", "127.0.0.1:0"])
            .args(["--slack-api-url", &fake.url])
            .stdin(Stdio::null());
        let mut process = BotProcess::spawn(name, cmd);
        let addr = process.listening_addr(Duration::from_secs(20));
        Server { process, addr }
    }

    /// Every stderr line so far.
    fn log(&mut self) -> &[String] {
        self.process.log()
    }

    /// Sends SIGTERM and waits for the exit (at most 10 s); returns the exit code.
    fn terminate(&mut self) -> i32 {
        self.process.terminate()
    }
}

/// `vigilo --db <db> [--as user] --json args…`, asserting exit 0.
fn cli(env: &Env, db: &str, user: Option<&str>, args: &[&str]) -> Value {
    let mut a = vec!["--db", db];
    a.extend_from_slice(args);
    env.json(user, &a)
}

/// acme linked to Slack team T0ACME; alice (owner), bob (operator, Slack U0BOB); a published
/// runbook of [`STEPS`] plain steps — all on the PostgreSQL database `db`.
fn seed(env: &Env, db: &str) {
    cli(
        env,
        db,
        None,
        &["init", "--workspace", "acme", "--owner", "alice"],
    );
    cli(
        env,
        db,
        Some("alice"),
        &["workspace", "link-slack", "acme", "--team", "T0ACME"],
    );
    cli(
        env,
        db,
        Some("alice"),
        &[
            "user",
            "add",
            "bob",
            "--role",
            "operator",
            "--slack-id",
            "U0BOB",
        ],
    );
    let steps: Vec<(String, u32)> = (1..=STEPS)
        .map(|i| (format!("Step number {i}"), 1))
        .collect();
    let steps: Vec<(&str, u32)> = steps.iter().map(|(t, e)| (t.as_str(), *e)).collect();
    let file = env.write("walk.md", &simple("Walk the line", &steps));
    cli(
        env,
        db,
        Some("alice"),
        &["runbook", "import", file.to_str().unwrap(), "--publish"],
    );
}

/// The posted card of step `step` of execution `key` (its Done button names both), if posted.
fn cards_of(calls: &[Call], key: &str, step: usize) -> Vec<Call> {
    let wanted = format!("{key}:{step}\\\"");
    let wanted_plain = format!("\"{key}:{step}\"");
    calls
        .iter()
        .filter(|c| c.method == "chat.postMessage")
        .filter(|c| {
            c.button("vigilo.done")
                .is_some_and(|v| v.contains(&wanted) || v.contains(&wanted_plain))
        })
        .cloned()
        .collect()
}

/// Waits until the card of `step` of `key` was posted; returns it.
async fn wait_card(fake: &FakeSlack, key: &str, step: usize) -> Call {
    let calls = fake
        .wait_for(0, &format!("the card of step {step} of {key}"), |c| {
            !cards_of(c, key, step).is_empty()
        })
        .await;
    cards_of(&calls, key, step).remove(0)
}

/// Starts an execution of RB-00001 through `client`'s replica; returns its key.
async fn start_execution(fake: &FakeSlack, client: &SlackClient, bob: &SlackUser) -> String {
    let from = fake.count();
    let a = client
        .post("/slack/commands", &bob.command("run RB-00001"))
        .await;
    assert_eq!((a.status, a.body.as_str()), (200, ""), "{a:?}");
    let calls = fake
        .wait_for(from, "the first card of a new execution", |c| {
            c.iter().any(|c| c.button("vigilo.done").is_some())
        })
        .await;
    let card = calls
        .iter()
        .find(|c| c.button("vigilo.done").is_some())
        .unwrap();
    let value = card.button("vigilo.done").unwrap();
    let at = value.find("EX-").unwrap();
    value[at..at + 8].to_owned()
}

/// The step numbers of every `execution.step_done` entry of the audit trail, per execution.
fn steps_done(env: &Env, db: &str) -> BTreeMap<String, Vec<u64>> {
    let entries = cli(env, db, Some("alice"), &["audit", "list"]);
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in entries.as_array().unwrap() {
        if e["action"] == "execution.step_done" {
            out.entry(e["target"].as_str().unwrap().to_owned())
                .or_default()
                .push(e["details"]["step"].as_u64().unwrap());
        }
    }
    out
}

/// `vigilo_slack_click_committed_seconds_count` of a replica's `/metrics`: its clicks that
/// changed something.
async fn committed_clicks(client: &SlackClient) -> u64 {
    let metrics = client.get("/metrics").await.body;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("vigilo_slack_click_committed_seconds_count "))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_slack_processes_apply_every_click_exactly_once() {
    let Some(admin) = admin_url("two_serve_slack_processes_apply_every_click_exactly_once") else {
        return;
    };
    let scratch = ScratchDatabase::create(&admin).await.unwrap();
    let db = scratch.url().to_owned();
    let env = Env::empty();
    seed(&env, &db);
    let fake = FakeSlack::start().await;
    let (mut a, mut b) = (
        Server::start("replica-a", &env, &db, &fake),
        Server::start("replica-b", &env, &db, &fake),
    );
    let (ca, cb) = (
        SlackClient::new(a.addr, SECRET),
        SlackClient::new(b.addr, SECRET),
    );
    let bob = SlackUser::new("T0ACME", "U0BOB", "C0OPS");

    // Executions started on alternating replicas.
    let mut keys = Vec::new();
    for i in 0..EXECUTIONS {
        let client = if i % 2 == 0 { &ca } else { &cb };
        keys.push(start_execution(&fake, client, &bob).await);
    }
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        EXECUTIONS,
        "a key was handed out twice: {keys:?}"
    );

    // Round by round, every execution's current card gets, all at once: the same click
    // delivered to both replicas, a second click on the button (a double click) to the other
    // replica, and a redelivery of the first to the first replica.
    for step in 1..=STEPS {
        let mut sends = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let card = wait_card(&fake, key, step).await;
            let click = bob.click(&card, "vigilo.done");
            let double = bob.click(&card, "vigilo.done");
            let (first, second) = if i % 2 == 0 { (&ca, &cb) } else { (&cb, &ca) };
            for (client, body) in [
                (first, click.clone()),
                (second, click.clone()),
                (second, double),
                (first, click),
            ] {
                let client = client.clone();
                sends.push(tokio::spawn(async move {
                    client.post("/slack/interactions", &body).await
                }));
            }
        }
        for s in sends {
            let answer = s.await.unwrap();
            assert_eq!(answer.status, 200, "{answer:?}");
        }
        if step < STEPS {
            for key in &keys {
                wait_card(&fake, key, step + 1).await;
            }
        }
    }

    // Every execution completes (the last transitions may still be in flight).
    let deadline = Instant::now() + Duration::from_secs(20);
    for key in &keys {
        loop {
            let show = cli(&env, &db, Some("bob"), &["exec", "show", key]);
            if show["status"] == "completed" {
                for s in show["steps"].as_array().unwrap() {
                    assert_eq!(s["status"], "done", "{key}: {show:#}");
                }
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{key} did not complete: {show:#}\nreplica-a: {:#?}\nreplica-b: {:#?}",
                a.log(),
                b.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Exactly once: one step_done entry per step per execution, and one card per step.
    let done = steps_done(&env, &db);
    let calls = fake.calls();
    let want: Vec<u64> = (1..=STEPS as u64).collect();
    for key in &keys {
        let mut got = done.get(key).cloned().unwrap_or_default();
        got.sort_unstable();
        assert_eq!(got, want, "{key}: step transitions applied {got:?}");
        for step in 1..=STEPS {
            assert_eq!(
                cards_of(&calls, key, step).len(),
                1,
                "{key}: the card of step {step} was posted more than once"
            );
        }
    }
    // The replicas' own count of clicks that changed something adds up to one per transition.
    let committed_a = committed_clicks(&ca).await;
    let committed_b = committed_clicks(&cb).await;
    assert_eq!(
        committed_a + committed_b,
        (EXECUTIONS * STEPS) as u64,
        "clicks committed: replica-a {committed_a}, replica-b {committed_b}"
    );
    println!("clicks committed: replica-a {committed_a}, replica-b {committed_b}");

    // The chain verifies (the command itself: exit 0).
    let verify = cli(&env, &db, None, &["audit", "verify"]);
    assert_eq!(verify["result"], "intact", "{verify}");

    assert_eq!(a.terminate(), 0, "{:#?}", a.log());
    assert_eq!(b.terminate(), 0, "{:#?}", b.log());
    scratch.drop_database().await;
}

/// A connection to the server of `admin` (for ending backends and closing the database).
async fn admin_client(admin: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// Ends every backend connected to database `name` — what a server restart does to each
/// client connection — and returns how many there were.
async fn end_backends(admin: &tokio_postgres::Client, name: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .await
        .unwrap()
        .get(0)
}

/// Lets connections to database `name` in (`true`) or refuses them (`false`), as a server
/// that is down or still starting refuses them.
async fn allow_connections(admin: &tokio_postgres::Client, name: &str, allow: bool) {
    admin
        .batch_execute(&format!(
            r#"ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {allow}"#
        ))
        .await
        .unwrap();
}

/// Clicks Done on `card` and waits for the card of `next` of `key`.
async fn done_then(
    fake: &FakeSlack,
    client: &SlackClient,
    bob: &SlackUser,
    card: &Call,
    key: &str,
    next: usize,
) -> Call {
    let a = client
        .post("/slack/interactions", &bob.click(card, "vigilo.done"))
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    wait_card(fake, key, next).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_recovers_when_postgresql_drops_every_connection() {
    let Some(admin) = admin_url("the_bot_recovers_when_postgresql_drops_every_connection") else {
        return;
    };
    let scratch = ScratchDatabase::create(&admin).await.unwrap();
    let (db, name) = (scratch.url().to_owned(), scratch.name().to_owned());
    let env = Env::empty();
    seed(&env, &db);
    let fake = FakeSlack::start().await;
    let mut server = Server::start("bot", &env, &db, &fake);
    let client = SlackClient::new(server.addr, SECRET);
    let bob = SlackUser::new("T0ACME", "U0BOB", "C0OPS");
    let pg = admin_client(&admin).await;

    let key = start_execution(&fake, &client, &bob).await;
    let card1 = wait_card(&fake, &key, 1).await;
    let card2 = done_then(&fake, &client, &bob, &card1, &key, 2).await;

    // 1. An instant restart: every connection of the bot's pool is cut. The next click works
    //    at once (the pool drops the dead connections and opens new ones).
    let ended = end_backends(&pg, &name).await;
    assert!(ended >= 1, "the bot held no connection to end");
    let card3 = done_then(&fake, &client, &bob, &card2, &key, 3).await;

    // 2. A restart with downtime: connections are cut and new ones refused for a while. A
    //    click meanwhile gets a clear "try again" answer and changes nothing; once the server
    //    takes connections again, the same click works — the bot was never restarted.
    allow_connections(&pg, &name, false).await;
    end_backends(&pg, &name).await;
    let from = fake.count();
    let a = client
        .post("/slack/interactions", &bob.click(&card3, "vigilo.done"))
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let told = fake
        .wait_for(from, "the bot telling bob to try again", |c| {
            c.iter().any(|c| c.text().contains("try again"))
        })
        .await;
    assert!(
        cards_of(&told, &key, 4).is_empty(),
        "a step moved while the database was down: {told:#?}"
    );
    allow_connections(&pg, &name, true).await;
    let card4 = done_then(&fake, &client, &bob, &card3, &key, 4).await;
    assert_eq!(cards_of(&fake.calls(), &key, 4).len(), 1);

    // 3. Cut again while idle: a new execution (a key allocation and a commit) works too.
    end_backends(&pg, &name).await;
    let second = start_execution(&fake, &client, &bob).await;
    assert_ne!(second, key);
    let from = fake.count();
    client
        .post("/slack/interactions", &bob.click(&card4, "vigilo.done"))
        .await;
    fake.wait_for(from, "the summary of the first execution", |c| {
        c.iter().any(|c| c.text().contains("Summary"))
    })
    .await;

    assert!(
        server.process.child.try_wait().unwrap().is_none(),
        "the bot exited: {:#?}",
        server.log()
    );
    let show = cli(&env, &db, Some("bob"), &["exec", "show", &key]);
    assert_eq!(show["status"], "completed", "{show:#}");
    let done = steps_done(&env, &db);
    assert_eq!(done[&key], (1..=STEPS as u64).collect::<Vec<_>>());
    let verify = cli(&env, &db, None, &["audit", "verify"]);
    assert_eq!(verify["result"], "intact", "{verify}");
    assert_eq!(server.terminate(), 0, "{:#?}", server.log());
    scratch.drop_database().await;
}
