//! The Slack surface over real HTTP on loopback: a fake Slack Web API records every call, a
//! client signs requests with Slack's scheme, and the store is a real SQLite file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;
use vigilo_bot::slack::SlackServer;
use vigilo_core::execution::ExecutionStatus;
use vigilo_core::ids::{Key, KeyKind};
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::service::{Vigilo, Who};
use vigilo_store::SqliteOptions;

struct World {
    _dir: tempfile::TempDir,
    vigilo: Vigilo,
    acme: Space,
    globex: Space,
    fake: FakeSlack,
    server: SlackServer,
    client: SlackClient,
    dave: SlackUser,
    bob: SlackUser,
    carol: SlackUser,
    gina: SlackUser,
}

impl World {
    fn who(&self, handle: &str) -> Who {
        self.acme.members[handle]
    }

    /// Audit entries of both workspaces, and the revision of EX-00001 in acme (0 if none).
    async fn snapshot(&self) -> (usize, usize, u64) {
        let rev = self
            .vigilo
            .execution(&self.who("dave"), ex(1))
            .await
            .map(|e| e.rev)
            .unwrap_or(0);
        (
            audit_count(&self.vigilo, self.acme.id).await,
            audit_count(&self.vigilo, self.globex.id).await,
            rev,
        )
    }

    /// `/runbook run RB-00001` by dave; returns the header and the first card.
    async fn run(&self) -> (Call, Call) {
        let from = self.fake.count();
        let a = self
            .client
            .post("/slack/commands", &self.dave.command("run RB-00001"))
            .await;
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.body, "", "a command is acknowledged with an empty 200");
        let posts = self.fake.wait_calls(from, "chat.postMessage", 2).await;
        (posts[0].clone(), posts[1].clone())
    }
}

fn ex(n: u64) -> Key {
    Key::new(KeyKind::Execution, n)
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let vigilo = open_sqlite(dir.path(), SqliteOptions::default()).await;
    let acme = space(
        &vigilo,
        "acme",
        "T0ACME",
        &[
            ("dave", WorkspaceRole::Admin, &[], "U0DAVE"),
            ("bob", WorkspaceRole::Operator, &["sre"], "U0BOB"),
            ("carol", WorkspaceRole::Member, &["dba"], "U0CAROL"),
        ],
    )
    .await;
    let globex = space(
        &vigilo,
        "globex",
        "T0GLOBEX",
        &[("gina", WorkspaceRole::Operator, &["sre"], "U0GINA")],
    )
    .await;
    runbook(
        &vigilo,
        &acme.owner,
        "Rotate <!channel> & @here certs",
        &[("Announce", false), ("Install", true), ("Verify", false)],
    )
    .await;
    // Globex has an execution EX-00001 of its own, so a key alone names one in both.
    let g = globex.members["gina"];
    let grb = runbook(&vigilo, &globex.owner, "Globex", &[("One", false)]).await;
    vigilo
        .start_execution(&g, grb, Default::default())
        .await
        .unwrap();
    let fake = FakeSlack::start().await;
    let server = start_bot(vigilo.clone(), &fake).await;
    let client = SlackClient::new(server.local_addr(), SECRET);
    World {
        _dir: dir,
        vigilo,
        acme,
        globex,
        fake,
        server,
        client,
        dave: SlackUser::new("T0ACME", "U0DAVE", "C0OPS"),
        bob: SlackUser::new("T0ACME", "U0BOB", "C0OPS"),
        carol: SlackUser::new("T0ACME", "U0CAROL", "C0OPS"),
        gina: SlackUser::new("T0GLOBEX", "U0GINA", "C0OPS"),
    }
}

fn updates_of<'a>(calls: &'a [Call], ts: &str) -> Vec<&'a Call> {
    calls
        .iter()
        .filter(|c| c.method == "chat.update" && c.body["ts"] == ts)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_execution_from_slack() {
    let w = world().await;
    let (header, card1) = w.run().await;

    // The header and the first card, threaded under it, escaped, with the bot token.
    assert_eq!(header.auth, "Bearer xoxb-test-token");
    assert_eq!(header.channel(), "C0OPS");
    assert!(header.body["thread_ts"].is_null());
    assert!(header.text().contains("RB-00001"), "{}", header.text());
    for call in [&header, &card1] {
        let text = call.text();
        for ping in ["<!channel>", "<!here>", "@here"] {
            assert!(!text.contains(ping), "{ping} in {text}");
        }
    }
    let header_ts = header.ts.clone().unwrap();
    assert_eq!(card1.body["thread_ts"], header_ts.as_str());
    assert!(card1.text().contains("Step 1/3"), "{}", card1.text());
    assert!(card1.button("vigilo.done").is_some());
    let exec = w.vigilo.execution(&w.who("dave"), ex(1)).await.unwrap();
    assert_eq!(exec.channel.as_ref().unwrap().channel, "C0OPS");
    assert_eq!(exec.channel.as_ref().unwrap().platform, "slack");

    // Done: the card is updated in place (buttons gone) and the next card is posted.
    let from = w.fake.count();
    let a = w
        .client
        .post("/slack/interactions", &w.dave.click(&card1, "vigilo.done"))
        .await;
    assert_eq!((a.status, a.body.as_str()), (200, ""));
    let calls = w
        .fake
        .wait_for(from, "card 1 updated and card 2 posted", |c| {
            c.iter().any(|c| c.method == "chat.update")
                && c.iter().any(|c| c.method == "chat.postMessage")
        })
        .await;
    let update = updates_of(&calls, card1.ts.as_deref().unwrap())[0];
    assert!(
        update.button("vigilo.done").is_none(),
        "buttons gone: {update:#?}"
    );
    let card2 = calls
        .iter()
        .find(|c| c.method == "chat.postMessage")
        .unwrap()
        .clone();
    assert_eq!(card2.body["thread_ts"], header_ts.as_str());
    assert!(
        card2.text().contains("APPROVAL REQUIRED"),
        "{}",
        card2.text()
    );
    assert!(card2.button("vigilo.approve").is_some());

    // Approve by carol (dba): a private denial naming the role; nothing changes.
    let before = w.snapshot().await;
    let from = w.fake.count();
    let a = w
        .client
        .post(
            "/slack/interactions",
            &w.carol.click(&card2, "vigilo.approve"),
        )
        .await;
    assert_eq!(a.status, 200);
    let denial = w.fake.wait_calls(from, "chat.postEphemeral", 1).await;
    assert_eq!(denial[0].body["user"], "U0CAROL");
    assert_eq!(denial[0].body["thread_ts"], header_ts.as_str());
    assert!(denial[0].text().contains("sre"), "{}", denial[0].text());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        w.fake.count(),
        from + 1,
        "only the private denial: {:#?}",
        w.fake.calls()
    );
    assert_eq!(w.snapshot().await, before, "the denial changed nothing");

    // Approve by bob (sre): the card is updated with the approval.
    let from = w.fake.count();
    let a = w
        .client
        .post(
            "/slack/interactions",
            &w.bob.click(&card2, "vigilo.approve"),
        )
        .await;
    assert_eq!(a.status, 200);
    let ups = w.fake.wait_calls(from, "chat.update", 1).await;
    assert_eq!(ups[0].body["ts"], card2.ts.as_deref().unwrap());
    assert!(ups[0].text().contains("APPROVED"), "{}", ups[0].text());
    let exec = w.vigilo.execution(&w.who("dave"), ex(1)).await.unwrap();
    assert!(exec.steps[1].approval.is_some());

    // Done on the approved step: card 3.
    let from = w.fake.count();
    w.client
        .post("/slack/interactions", &w.dave.click(&card2, "vigilo.done"))
        .await;
    let calls = w
        .fake
        .wait_for(from, "card 3", |c| {
            c.iter().any(|c| c.method == "chat.postMessage")
        })
        .await;
    let card3 = calls
        .iter()
        .find(|c| c.method == "chat.postMessage")
        .unwrap()
        .clone();
    assert!(card3.text().contains("Step 3/3"), "{}", card3.text());

    // Skip… opens a modal; an empty reason is refused in the modal and changes nothing.
    let from = w.fake.count();
    let a = w
        .client
        .post("/slack/interactions", &w.dave.click(&card3, "vigilo.skip"))
        .await;
    assert_eq!((a.status, a.body.as_str()), (200, ""));
    let opened = w.fake.wait_calls(from, "views.open", 1).await[0].clone();
    assert!(
        opened.body["trigger_id"]
            .as_str()
            .unwrap()
            .ends_with(".trigger")
    );
    assert_eq!(opened.body["view"]["type"], "modal");
    assert!(
        opened.body["view"]["title"]["text"]
            .as_str()
            .unwrap()
            .contains("Skip step 3")
    );
    let before = w.snapshot().await;
    let a = w
        .client
        .post("/slack/interactions", &w.dave.submit(&opened, "   "))
        .await;
    assert_eq!(a.status, 200);
    let v: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["response_action"], "errors");
    assert!(v["errors"]["vigilo.reason"].is_string());
    assert_eq!(w.snapshot().await, before);

    // A reason: the card is updated, the summary posted, the header updated; sealed.
    let from = w.fake.count();
    let a = w
        .client
        .post(
            "/slack/interactions",
            &w.dave.submit(&opened, "Not needed & <b>today</b>"),
        )
        .await;
    assert_eq!((a.status, a.body.as_str()), (200, ""));
    let calls = w
        .fake
        .wait_for(from, "the summary and the header update", |c| {
            updates_of(c, &header_ts).len() == 1 && c.iter().any(|c| c.method == "chat.postMessage")
        })
        .await;
    assert_eq!(updates_of(&calls, card3.ts.as_deref().unwrap()).len(), 1);
    let summary = calls
        .iter()
        .find(|c| c.method == "chat.postMessage")
        .unwrap();
    assert_eq!(summary.body["thread_ts"], header_ts.as_str());
    assert!(
        !summary.text().contains("<b>"),
        "escaped: {}",
        summary.text()
    );
    let exec = w.vigilo.execution(&w.who("dave"), ex(1)).await.unwrap();
    assert!(exec.status.is_sealed(), "{:?}", exec.status);
    assert_eq!(exec.status, ExecutionStatus::Completed);
    w.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_and_change_nothing() {
    let w = world().await;
    let (_header, card1) = w.run().await;
    let done = card1.button("vigilo.done").unwrap();
    let ts = card1.ts.clone().unwrap();
    let good = w.dave.click(&card1, "vigilo.done");
    let before = w.snapshot().await;
    let from = w.fake.count();
    let path = "/slack/interactions";

    // Signature problems.
    let wrong = SlackClient {
        secret: "not-the-secret".into(),
        ..w.client.clone()
    };
    let a = wrong.post(path, &good).await;
    assert_eq!(
        (a.status, a.body.trim()),
        (401, "invalid request signature")
    );
    let a = w.client.post_at(path, &good, now() - 301, &[]).await;
    assert_eq!(
        (a.status, a.body.trim()),
        (401, "stale or invalid request timestamp")
    );
    let a = w.client.post_at(path, &good, now() + 400, &[]).await;
    assert_eq!(a.status, 401);
    let a = w
        .client
        .post_with(path, good.clone().into_bytes(), &[])
        .await;
    assert_eq!(
        (a.status, a.body.trim()),
        (400, "missing Slack signature headers")
    );
    let a = w
        .client
        .post_with(
            path,
            good.clone().into_bytes(),
            &[("x-slack-request-timestamp", now().to_string())],
        )
        .await;
    assert_eq!(a.status, 400);
    let mut tampered = good.clone();
    tampered.push_str("&x=1");
    let t = now();
    let sig = vigilo_bot::slack::verify::sign(SECRET, t, good.as_bytes());
    let a = w
        .client
        .post_with(
            path,
            tampered.into_bytes(),
            &[
                ("x-slack-request-timestamp", t.to_string()),
                ("x-slack-signature", sig),
            ],
        )
        .await;
    assert_eq!(a.status, 401, "a body changed after signing");

    // A body over 1 MiB, signed.
    let huge = format!("payload={}", "a".repeat(1024 * 1024));
    let a = w.client.post(path, &huge).await;
    assert_eq!((a.status, a.body.trim()), (413, "request body too large"));
    let a = w.client.post("/slack/commands", &huge).await;
    assert_eq!(a.status, 413);

    // Payloads that do not parse.
    let a = w.client.post(path, "payload=%7Bnot%20json").await;
    assert_eq!((a.status, a.body.trim()), (400, "malformed payload JSON"));
    let a = w.client.post(path, "nothing=here").await;
    assert_eq!(a.status, 400);
    let a = w
        .client
        .post("/slack/commands", "text=run%20RB-00001")
        .await;
    assert_eq!((a.status, a.body.trim()), (400, "malformed slash command"));
    let a = w.client.post("/slack/events", "{oops").await;
    assert_eq!(a.status, 400);

    // An unknown action id, a value that is not ours.
    let a = w
        .client
        .post(
            path,
            &form(&w.dave.click_payload("vigilo.explode", &done, &ts, None)),
        )
        .await;
    assert_eq!((a.status, a.body.trim()), (400, "unknown action"));
    let a = w
        .client
        .post(
            path,
            &form(&w.dave.click_payload("vigilo.done", "EX-00001:1", &ts, None)),
        )
        .await;
    assert_eq!((a.status, a.body.trim()), (400, "malformed button value"));

    // Another workspace's button: globex has an EX-00001 too, and it must not move.
    let a = w
        .client
        .post(
            path,
            &form(&w.gina.click_payload("vigilo.done", &done, &ts, None)),
        )
        .await;
    assert_eq!(a.status, 403, "{a:?}");
    assert!(a.body.contains("another workspace"));

    // Unknown team, unknown user: acknowledged, told privately how to get access.
    let stranger = SlackUser::new("T0NOPE", "U0X", "C0OPS");
    let a = w
        .client
        .post(
            path,
            &form(&stranger.click_payload("vigilo.done", &done, &ts, None)),
        )
        .await;
    assert_eq!((a.status, a.body.as_str()), (200, ""));
    let nobody = SlackUser::new("T0ACME", "U0NOBODY", "C0OPS");
    let a = w
        .client
        .post(
            path,
            &form(&nobody.click_payload("vigilo.done", &done, &ts, None)),
        )
        .await;
    assert_eq!((a.status, a.body.as_str()), (200, ""));
    let told = w.fake.wait_calls(from, "chat.postEphemeral", 2).await;
    let texts: Vec<String> = told.iter().map(Call::text).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("link-slack") && t.contains("T0NOPE")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("--slack-id U0NOBODY")),
        "{texts:?}"
    );
    let a = w
        .client
        .post("/slack/commands", &nobody.command("status"))
        .await;
    assert_eq!(a.status, 200);
    let v: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["response_type"], "ephemeral");
    assert!(v.to_string().contains("--slack-id U0NOBODY"), "{v}");

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.snapshot().await, before, "nothing changed in the store");
    let since: Vec<String> = w
        .fake
        .calls()
        .into_iter()
        .skip(from)
        .map(|c| c.method)
        .collect();
    assert_eq!(
        since,
        ["chat.postEphemeral", "chat.postEphemeral"],
        "only the two private answers"
    );

    // The metrics counted the refusals.
    let m = w.client.get("/metrics").await.body;
    assert!(
        m.contains(r#"vigilo_slack_requests_total{endpoint="interactions",status="401"} 4"#),
        "{m}"
    );
    assert!(
        m.contains(r#"vigilo_slack_requests_total{endpoint="interactions",status="413"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"vigilo_slack_requests_total{endpoint="interactions",status="403"} 1"#),
        "{m}"
    );

    // And the genuine click still works afterwards.
    let a = w.client.post(path, &good).await;
    assert_eq!(a.status, 200);
    w.fake.wait_calls(from, "chat.update", 1).await;
    w.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeliveries_and_double_clicks_apply_once() {
    let w = world().await;
    let (_header, card1) = w.run().await;
    let audit = audit_count(&w.vigilo, w.acme.id).await;
    let body = w.dave.click(&card1, "vigilo.done");
    let from = w.fake.count();
    let a = w.client.post("/slack/interactions", &body).await;
    assert_eq!(a.status, 200);
    // Slack's redelivery: the same body, a fresh signature, X-Slack-Retry-Num.
    let a = w
        .client
        .post_at(
            "/slack/interactions",
            &body,
            now(),
            &[
                ("x-slack-retry-num", "1".into()),
                ("x-slack-retry-reason", "http_timeout".into()),
            ],
        )
        .await;
    assert_eq!((a.status, a.body.as_str()), (200, ""));
    w.fake.wait_calls(from, "chat.postMessage", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls: Vec<Call> = w.fake.calls().into_iter().skip(from).collect();
    assert_eq!(
        updates_of(&calls, card1.ts.as_deref().unwrap()).len(),
        1,
        "{calls:#?}"
    );
    assert_eq!(calls.len(), 2, "one update and one new card: {calls:#?}");
    assert_eq!(audit_count(&w.vigilo, w.acme.id).await, audit + 1);
    let exec = w.vigilo.execution(&w.who("dave"), ex(1)).await.unwrap();
    assert_eq!(exec.current_index(), Some(1));

    // A second, separate click on the same (stale) card: told privately, nothing changes.
    let from = w.fake.count();
    let a = w
        .client
        .post("/slack/interactions", &w.dave.click(&card1, "vigilo.done"))
        .await;
    assert_eq!(a.status, 200);
    let told = w.fake.wait_calls(from, "chat.postEphemeral", 1).await;
    assert!(
        told[0].text().contains("dave"),
        "names who acted: {}",
        told[0].text()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(w.fake.count(), from + 1);
    assert_eq!(audit_count(&w.vigilo, w.acme.id).await, audit + 1);
    let m = w.client.get("/metrics").await.body;
    assert!(m.contains("vigilo_slack_duplicates_total 1"), "{m}");
    w.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_waited_out() {
    let w = world().await;
    w.fake.rate_limit("chat.postMessage", 1, 1);
    let from = w.fake.count();
    let started = Instant::now();
    let (header, _card) = w.run().await;
    let calls: Vec<Call> = w.fake.calls().into_iter().skip(from).collect();
    assert_eq!(calls[0].method, "chat.postMessage (429)");
    assert!(
        header.at.duration_since(calls[0].at) >= Duration::from_millis(950),
        "waited Retry-After"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let m = w.client.get("/metrics").await.body;
    assert!(
        m.contains(r#"vigilo_slack_web_api_rate_limited_total{method="chat.postMessage"} 1"#),
        "{m}"
    );
    w.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_health_metrics_and_shutdown() {
    let w = world().await;
    let a = w
        .client
        .post("/slack/events", r#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#)
        .await;
    assert_eq!(a.status, 200);
    let v: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(
        v["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );

    // An app mention works like the command.
    let from = w.fake.count();
    let mention = serde_json::json!({
        "token": "x", "team_id": "T0ACME", "api_app_id": "A0VIGILO", "type": "event_callback",
        "event_id": "Ev0001", "event_time": 1_700_000_000,
        "event": { "type": "app_mention", "user": "U0DAVE", "channel": "C0OPS", "ts": "1700000000.000100",
                   "text": "<@U0BOT> help", "event_ts": "1700000000.000100" },
    });
    let a = w.client.post("/slack/events", &mention.to_string()).await;
    assert_eq!((a.status, a.body.as_str()), (200, ""));
    let help = w.fake.wait_calls(from, "chat.postEphemeral", 1).await;
    assert!(help[0].text().contains("run"), "{}", help[0].text());

    assert_eq!(w.client.get("/healthz").await.body.trim(), "ok");
    let m = w.client.get("/metrics").await;
    assert_eq!(m.status, 200);
    for name in [
        "vigilo_slack_requests_total",
        "vigilo_slack_acks_total",
        "vigilo_slack_ack_seconds_bucket",
        "vigilo_slack_click_committed_seconds",
        "vigilo_slack_store_errors_total",
    ] {
        assert!(m.body.contains(name), "{name} missing from {}", m.body);
    }

    // Shutdown right after a click still finishes its write and its messages.
    let (_header, card1) = w.run().await;
    let from = w.fake.count();
    let a = w
        .client
        .post("/slack/interactions", &w.dave.click(&card1, "vigilo.done"))
        .await;
    assert_eq!(a.status, 200);
    let addr = w.server.local_addr();
    w.server.shutdown().await.unwrap();
    let calls: Vec<Call> = w.fake.calls().into_iter().skip(from).collect();
    assert!(
        calls.iter().any(|c| c.method == "chat.update"),
        "{calls:#?}"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}
