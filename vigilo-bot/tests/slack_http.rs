//! The Slack surface over real HTTP on loopback: a fake Slack Web API records every call, a
//! client signs requests with Slack's scheme, and the store is a real SQLite file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;
use vigilo_bot::slack::SlackServer;
use vigilo_core::execution::{ExecutionStatus, StepStatus};
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
    assert!(!exec.steps[1].approvals.is_empty());

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
    // The summary: outcome, each step's status with actual against estimated minutes, the
    // skip reason, and the total variance.
    let text = summary.text();
    for want in [
        "Summary",
        "completed",
        "2 done",
        "1 skipped",
        "Variance",
        "est 5 min",
        "Not needed &amp; &lt;b&gt;today&lt;/b&gt;",
    ] {
        assert!(
            text.contains(want),
            "{want:?} missing from the summary: {text}"
        );
    }
    assert!(
        summary.body["text"]
            .as_str()
            .unwrap()
            .contains("against 15 min estimated"),
        "{text}"
    );
    assert!(
        summary.button("vigilo.done").is_none() && summary.button("vigilo.skip").is_none(),
        "no buttons on the summary"
    );
    // The skipped card, updated in place, names the reason and has no buttons left.
    let card3_update = updates_of(&calls, card3.ts.as_deref().unwrap())[0];
    assert!(card3_update.button("vigilo.skip").is_none());
    assert!(
        card3_update.text().contains("Not needed"),
        "{}",
        card3_update.text()
    );
    let exec = w.vigilo.execution(&w.who("dave"), ex(1)).await.unwrap();
    assert!(exec.status.is_sealed(), "{:?}", exec.status);
    assert_eq!(exec.status, ExecutionStatus::Completed);
    let statuses: Vec<StepStatus> = exec.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        [StepStatus::Done, StepStatus::Done, StepStatus::Skipped]
    );
    assert_eq!(
        exec.steps[2].note.as_ref().unwrap().as_str(),
        "Not needed & <b>today</b>",
        "the reason is stored as typed"
    );
    assert_eq!(exec.steps[1].actor, Some(w.who("dave").user));
    assert_eq!(
        exec.steps[1].approvals[0].by,
        w.who("bob").user,
        "approved by bob, not carol"
    );
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

    // An unknown action id, a value that is not ours: a 200 (never an error Slack would
    // show), a private explanation, and nothing changes.
    let ephemerals = w.fake.calls_of("chat.postEphemeral").len();
    let a = w
        .client
        .post(
            path,
            &form(&w.dave.click_payload("vigilo.explode", &done, &ts, None)),
        )
        .await;
    assert_eq!((a.status, a.body.trim()), (200, ""));
    let a = w
        .client
        .post(
            path,
            &form(&w.dave.click_payload("vigilo.done", "EX-00001:1", &ts, None)),
        )
        .await;
    assert_eq!((a.status, a.body.trim()), (200, ""));
    let told = w
        .fake
        .wait_calls(0, "chat.postEphemeral", ephemerals + 2)
        .await;
    assert!(
        told[ephemerals].text().contains("not one of Vigilo"),
        "{:?}",
        told[ephemerals]
    );

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
    let told = w.fake.wait_calls(from, "chat.postEphemeral", 4).await;
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
        since, ["chat.postEphemeral"; 4],
        "only the private answers (two explanations, two on how to get access)"
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

/// The places in `text` where Slack would notify people: `<!channel>`, `<!here>`,
/// `<!everyone>`, `<!subteam^…>`, user and channel links, and the bare words `@channel`,
/// `@here`, `@everyone` (the bot breaks them with a zero-width space after the `@`). The URL
/// of a live link (`<https://…|label>`) is not text Slack looks for mentions in, so it is left
/// out of the word check (its label is not).
fn pings(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for needle in ["<!", "<@", "<#"] {
        for (i, _) in text.match_indices(needle) {
            found.push(text[i..].chars().take(24).collect());
        }
    }
    let mut words = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("<http") {
        words.push_str(&rest[..i]);
        let link = &rest[i..];
        let url_end = link.find(['|', '>']).unwrap_or(link.len());
        rest = &link[url_end..];
    }
    words.push_str(rest);
    let lower = words.to_lowercase();
    for word in ["@channel", "@here", "@everyone"] {
        for (i, _) in lower.match_indices(word) {
            found.push(lower[i..].chars().take(24).collect());
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_from_runbooks_and_users_never_pings() {
    use vigilo_core::runbook::{RunbookInput, StepInput};
    use vigilo_core::service::CreateRunbook;

    assert_eq!(pings("a <!here> b @Channel").len(), 2, "the checker works");
    assert!(pings("a @\u{200B}channel &lt;!here&gt;").is_empty());
    assert!(pings("<https://x.example/@here|the @\u{200B}here page>").is_empty());
    assert_eq!(pings("<https://x.example/|@here>").len(), 1);

    let w = world().await;
    let nasty = RunbookInput {
        title: "Failover <!everyone> <@U0VICTIM> & @channel".into(),
        description: "Wakes <!here> up.".into(),
        category: "ops".into(),
        steps: vec![
            StepInput {
                title: "Page <!subteam^S0ONCALL> @here".into(),
                description: "Tell @channel and <!here|here>; see \
                              [@everyone](https://example.com/?q=<!channel>) and \
                              <https://evil.example|@here>, then *<@U0VICTIM>*."
                    .into(),
                owner_role: "sre".into(),
                est_minutes: 2,
                expected_outcome: "<!everyone> knows".into(),
                verification: "echo '<!channel>' && curl @here".into(),
                rollback_note: "Ping <@U0VICTIM> in <#C0SECRET>".into(),
                ..Default::default()
            },
            StepInput {
                title: "Close <!channel>".into(),
                description: "Done @everyone.".into(),
                owner_role: "sre".into(),
                est_minutes: 1,
                ..Default::default()
            },
        ],
    };
    let key = w
        .vigilo
        .create_runbook(
            &w.acme.owner,
            nasty,
            CreateRunbook {
                publish: true,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .key;
    assert_eq!(key.to_string(), "RB-00002");

    // Run it, skip the first step with a reason full of pings, finish the second.
    let from = w.fake.count();
    w.client
        .post("/slack/commands", &w.dave.command("run RB-00002"))
        .await;
    let posts = w.fake.wait_calls(from, "chat.postMessage", 2).await;
    let (header, card1) = (&posts[0], &posts[1]);
    assert!(header.text().contains("RB-00002"), "{}", header.text());
    assert!(card1.text().contains("Ping"), "{}", card1.text());
    let mark = w.fake.count();
    w.client
        .post("/slack/interactions", &w.dave.click(card1, "vigilo.skip"))
        .await;
    let opened = w.fake.wait_calls(mark, "views.open", 1).await[0].clone();
    let mark = w.fake.count();
    let reason = "<!channel> @here <@U0VICTIM> <!everyone> &lt;!here&gt;";
    let a = w
        .client
        .post("/slack/interactions", &w.dave.submit(&opened, reason))
        .await;
    assert_eq!((a.status, a.body.as_str()), (200, ""));
    let card2 = w.fake.wait_calls(mark, "chat.postMessage", 1).await[0].clone();
    let mark = w.fake.count();
    w.client
        .post("/slack/interactions", &w.dave.click(&card2, "vigilo.done"))
        .await;
    let summary = w.fake.wait_calls(mark, "chat.postMessage", 1).await[0].clone();
    assert!(summary.text().contains("Summary"), "{}", summary.text());
    assert!(
        summary.text().contains("VICTIM"),
        "the reason is shown, defused: {}",
        summary.text()
    );

    // Commands whose answers echo what was typed (Slack sends `<`, `>`, `&` as entities).
    let mark = w.fake.count();
    for text in [
        "search <!channel>",
        "search &lt;!here&gt; @everyone",
        "show <@U0VICTIM>",
        "run RB-99999 @channel",
        "frobnicate <!everyone>",
        "status",
        "show RB-00002",
    ] {
        let a = w
            .client
            .post("/slack/commands", &w.dave.command(text))
            .await;
        assert_eq!(a.status, 200, "{text}: {a:?}");
        assert!(pings(&a.body).is_empty(), "{text}: {}", a.body);
    }
    let answers = w
        .fake
        .wait_for(mark, "seven answers", |c| c.len() >= 7)
        .await;
    assert!(
        answers.iter().any(|c| c.text().contains("VICTIM")),
        "a typed mention is echoed, defused: {answers:#?}"
    );
    // A team id that is not linked is echoed in the access hint.
    let stranger = SlackUser::new("T0<!here>", "U0<!channel>", "C0OPS");
    let a = w
        .client
        .post("/slack/commands", &stranger.command("help"))
        .await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("link-slack"), "{}", a.body);
    assert!(pings(&a.body).is_empty(), "{}", a.body);

    tokio::time::sleep(Duration::from_millis(200)).await;
    let calls = w.fake.calls();
    assert!(calls.len() >= 13, "{calls:#?}");
    for call in &calls {
        let found = pings(&call.body.to_string());
        assert!(found.is_empty(), "{} would ping: {found:?}", call.method);
    }
    let exec = w.vigilo.execution(&w.who("dave"), ex(1)).await.unwrap();
    assert_eq!(
        exec.steps[0].note.as_ref().unwrap().as_str(),
        "<!channel> @here <@U0VICTIM> <!everyone> <!here>",
        "stored as typed, only shown escaped"
    );
    w.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_modal_submissions_and_strangers_change_nothing() {
    let w = world().await;
    let (_header, card1) = w.run().await;
    let from = w.fake.count();
    w.client
        .post("/slack/interactions", &w.dave.click(&card1, "vigilo.skip"))
        .await;
    let opened = w.fake.wait_calls(from, "views.open", 1).await[0].clone();
    let before = w.snapshot().await;
    let from = w.fake.count();
    let path = "/slack/interactions";

    // Gina of globex submits acme's modal: refused, and globex's own EX-00001 does not move.
    let a = w
        .client
        .post(path, &w.gina.submit(&opened, "why not"))
        .await;
    assert_eq!(a.status, 403, "{a:?}");
    // Tampered metadata: an action id that is not ours, or metadata that does not parse.
    let mut forged = opened.clone();
    let meta: Value =
        serde_json::from_str(forged.body["view"]["private_metadata"].as_str().unwrap()).unwrap();
    let mut bad = meta.clone();
    bad["a"] = "vigilo.explode".into();
    forged.body["view"]["private_metadata"] = bad.to_string().into();
    let a = w.client.post(path, &w.dave.submit(&forged, "x")).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert!(a.body.contains(r#""response_action":"errors""#), "{a:?}");
    assert!(a.body.contains("not one of Vigilo"), "{a:?}");
    forged.body["view"]["private_metadata"] = "{nope".into();
    let a = w.client.post(path, &w.dave.submit(&forged, "x")).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert!(a.body.contains("not valid any more"), "{a:?}");
    // A stale submission (a valid body signed six minutes ago).
    let a = w
        .client
        .post_at(path, &w.dave.submit(&opened, "late"), now() - 360, &[])
        .await;
    assert_eq!(a.status, 401);
    // A submission with a signature for another body.
    let body = w.dave.submit(&opened, "mine");
    let t = now();
    let sig = vigilo_bot::slack::verify::sign(SECRET, t, w.dave.submit(&opened, "x").as_bytes());
    let a = w
        .client
        .post_with(
            path,
            body.into_bytes(),
            &[
                ("x-slack-request-timestamp", t.to_string()),
                ("x-slack-signature", sig),
            ],
        )
        .await;
    assert_eq!(a.status, 401);

    // An unknown user and an unknown team submitting: acknowledged, told privately.
    let nobody = SlackUser::new("T0ACME", "U0NOBODY", "C0OPS");
    let a = w.client.post(path, &nobody.submit(&opened, "me")).await;
    assert_eq!((a.status, a.body.as_str()), (200, ""));
    let stranger = SlackUser::new("T0NOPE", "U0X", "C0OPS");
    let a = w.client.post(path, &stranger.submit(&opened, "me")).await;
    assert_eq!((a.status, a.body.as_str()), (200, ""));
    // An unknown team's slash command: answered privately at once with how to get access.
    let a = w
        .client
        .post("/slack/commands", &stranger.command("run RB-00001"))
        .await;
    assert_eq!(a.status, 200);
    let v: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["response_type"], "ephemeral");
    assert!(
        v.to_string().contains("link-slack") && v.to_string().contains("--team T0NOPE"),
        "{v}"
    );

    let told = w.fake.wait_calls(from, "chat.postEphemeral", 2).await;
    assert!(told.iter().any(|c| c.body["user"] == "U0NOBODY"));
    assert!(told.iter().any(|c| c.body["user"] == "U0X"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let since: Vec<String> = w
        .fake
        .calls()
        .into_iter()
        .skip(from)
        .map(|c| c.method)
        .collect();
    assert_eq!(since, ["chat.postEphemeral", "chat.postEphemeral"]);
    assert_eq!(w.snapshot().await, before, "nothing changed in the store");
    let globex = w
        .vigilo
        .execution(&w.globex.members["gina"], ex(1))
        .await
        .unwrap();
    assert_eq!(
        globex.current_index(),
        Some(0),
        "globex's EX-00001 untouched"
    );
    assert_eq!(globex.steps[0].status, StepStatus::Pending);

    // The genuine submission still works.
    let a = w
        .client
        .post(path, &w.dave.submit(&opened, "not needed"))
        .await;
    assert_eq!(a.status, 200);
    w.fake.wait_calls(from, "chat.update", 1).await;
    let exec = w.vigilo.execution(&w.who("dave"), ex(1)).await.unwrap();
    assert_eq!(exec.steps[0].status, StepStatus::Skipped);
    w.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_checked_at_the_click_even_for_a_known_clicker() {
    let w = world().await;
    let (_header, card1) = w.run().await;
    let from = w.fake.count();
    w.client
        .post("/slack/interactions", &w.dave.click(&card1, "vigilo.done"))
        .await;
    let card2 = w.fake.wait_calls(from, "chat.postMessage", 1).await[0].clone();
    // bob is resolved (and remembered) by a first request.
    let from = w.fake.count();
    w.client
        .post("/slack/commands", &w.bob.command("status"))
        .await;
    w.fake.wait_calls(from, "chat.postEphemeral", 1).await;

    // bob loses the sre role: his Approve is refused privately, naming the role.
    w.vigilo
        .set_member_role(
            &w.acme.owner,
            "bob",
            WorkspaceRole::Operator,
            Some(vec!["dba".into()]),
        )
        .await
        .unwrap();
    let before = w.snapshot().await;
    let from = w.fake.count();
    let a = w
        .client
        .post(
            "/slack/interactions",
            &w.bob.click(&card2, "vigilo.approve"),
        )
        .await;
    assert_eq!(a.status, 200);
    let denial = w.fake.wait_calls(from, "chat.postEphemeral", 1).await;
    assert_eq!(denial[0].body["user"], "U0BOB");
    assert!(denial[0].text().contains("sre"), "{}", denial[0].text());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(w.fake.count(), from + 1, "{:#?}", w.fake.calls());
    assert_eq!(w.snapshot().await, before, "nothing changed");

    // Given it back, his next click approves.
    w.vigilo
        .set_member_role(
            &w.acme.owner,
            "bob",
            WorkspaceRole::Operator,
            Some(vec!["sre".into()]),
        )
        .await
        .unwrap();
    let from = w.fake.count();
    w.client
        .post(
            "/slack/interactions",
            &w.bob.click(&card2, "vigilo.approve"),
        )
        .await;
    let up = w.fake.wait_calls(from, "chat.update", 1).await;
    assert!(up[0].text().contains("APPROVED"), "{}", up[0].text());
    let exec = w.vigilo.execution(&w.who("dave"), ex(1)).await.unwrap();
    assert_eq!(
        exec.steps[1].approvals.first().map(|a| a.by),
        Some(w.who("bob").user)
    );
    w.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_uploaded_into_the_runs_thread() {
    let w = world().await;
    let (header, card1) = w.run().await;
    let header_ts = header.ts.clone().unwrap();
    // Walk the run to its end: done, approved (bob, sre), done, done.
    let from = w.fake.count();
    w.client
        .post("/slack/interactions", &w.dave.click(&card1, "vigilo.done"))
        .await;
    let card2 = w.fake.wait_calls(from, "chat.postMessage", 1).await[0].clone();
    w.vigilo
        .act(
            &w.who("bob"),
            ex(1),
            vigilo_core::execution::Command::Approve { step: 2 },
        )
        .await
        .unwrap();
    let from = w.fake.count();
    w.client
        .post("/slack/interactions", &w.dave.click(&card2, "vigilo.done"))
        .await;
    let card3 = w.fake.wait_calls(from, "chat.postMessage", 1).await[0].clone();
    let from = w.fake.count();
    w.client
        .post("/slack/interactions", &w.dave.click(&card3, "vigilo.done"))
        .await;
    let summary = w.fake.wait_calls(from, "chat.postMessage", 1).await[0].clone();
    assert!(summary.text().contains("Summary"), "{}", summary.text());
    assert!(summary.button("vigilo.report").is_some(), "{summary:#?}");
    let entries = audit_count(&w.vigilo, w.acme.id).await;

    // Carol (a member) presses Report: the external upload flow, into the run's thread.
    let from = w.fake.count();
    let a = w
        .client
        .post(
            "/slack/interactions",
            &w.carol.click(&summary, "vigilo.report"),
        )
        .await;
    assert_eq!((a.status, a.body.as_str()), (200, ""));
    let calls = w
        .fake
        .wait_for(from, "the report's upload", |c| {
            c.iter().any(|c| c.method == "files.completeUploadExternal")
        })
        .await;
    let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(
        methods,
        [
            "files.getUploadURLExternal",
            "upload",
            "files.completeUploadExternal"
        ],
        "{calls:#?}"
    );
    let (get, put, complete) = (&calls[0], &calls[1], &calls[2]);
    assert_eq!(get.auth, "Bearer xoxb-test-token");
    assert_eq!(get.body["filename"], "EX-00001-report.md");
    let text = put.body["text"].as_str().unwrap();
    assert_eq!(get.body["length"], text.len().to_string());
    assert_eq!(put.body["content_type"], "text/markdown");
    assert!(text.starts_with("<!-- vigilo execution report"), "{text}");
    assert!(text.contains("`@bob` as sre"), "{text}");
    assert_eq!(complete.auth, "Bearer xoxb-test-token");
    assert_eq!(complete.body["channel_id"], "C0OPS");
    assert_eq!(complete.body["thread_ts"], header_ts.as_str());
    assert_eq!(complete.body["files"][0]["id"], put.body["file"]);
    assert_eq!(complete.body["files"][0]["title"], "EX-00001 report");
    let comment = complete.body["initial_comment"].as_str().unwrap();
    assert!(comment.contains("Report of EX-00001"), "{comment}");
    // What was uploaded verifies against the trail, and reporting wrote nothing.
    let verdict = w.vigilo.verify_report(None, text).await.unwrap();
    assert!(
        matches!(
            verdict,
            vigilo_core::service::ReportVerdict::Verified { .. }
        ),
        "{verdict:?}"
    );
    assert_eq!(audit_count(&w.vigilo, w.acme.id).await, entries);

    // `/runbook report` in the channel: the newest run started here, sealed or not.
    let from = w.fake.count();
    let a = w
        .client
        .post("/slack/commands", &w.bob.command("report"))
        .await;
    assert_eq!(a.status, 200);
    let completes = w
        .fake
        .wait_calls(from, "files.completeUploadExternal", 1)
        .await;
    assert_eq!(completes[0].body["thread_ts"], header_ts.as_str());
    // A run that does not exist here is said privately, and nothing is uploaded.
    let from = w.fake.count();
    w.client
        .post("/slack/commands", &w.bob.command("report EX-00042"))
        .await;
    let told = w.fake.wait_calls(from, "chat.postEphemeral", 1).await;
    assert!(told[0].text().contains("EX-00042"), "{}", told[0].text());
    assert!(
        w.fake
            .calls()
            .iter()
            .skip(from)
            .all(|c| !c.method.starts_with("files.")),
        "{:#?}",
        w.fake.calls()
    );
    // A failed upload is said privately to whoever asked.
    w.fake.rate_limit("files.completeUploadExternal", 9, 0);
    let from = w.fake.count();
    w.client
        .post("/slack/commands", &w.bob.command("report EX-00001"))
        .await;
    let told = w.fake.wait_calls(from, "chat.postEphemeral", 1).await;
    assert_eq!(told[0].body["user"], "U0BOB");
    assert!(
        told[0].text().contains("did not accept"),
        "{}",
        told[0].text()
    );
    w.server.shutdown().await.unwrap();
}

/// `/runbook stats RB-…`: the table is posted in the channel, then the chart goes through the
/// external upload flow as a PNG; the summary card of a run compares it with the typical run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_post_a_table_and_upload_the_chart() {
    let w = world().await;
    let (_header, _card1) = w.run().await;
    let dave = w.who("dave");
    let done = |step| vigilo_core::execution::Command::Done { step, note: None };
    w.vigilo.act(&dave, ex(1), done(1)).await.unwrap();
    w.vigilo
        .act(
            &w.who("bob"),
            ex(1),
            vigilo_core::execution::Command::Approve { step: 2 },
        )
        .await
        .unwrap();
    w.vigilo.act(&dave, ex(1), done(2)).await.unwrap();
    w.vigilo.act(&dave, ex(1), done(3)).await.unwrap();

    let from = w.fake.count();
    let a = w
        .client
        .post("/slack/commands", &w.dave.command("stats RB-00001"))
        .await;
    assert_eq!(a.status, 200);
    let calls = w
        .fake
        .wait_for(from, "the chart's upload", |c| {
            c.iter().any(|c| c.method == "files.completeUploadExternal")
        })
        .await;
    let methods: Vec<&str> = calls.iter().map(|c| c.method.as_str()).collect();
    assert_eq!(
        methods,
        [
            "chat.postMessage",
            "files.getUploadURLExternal",
            "upload",
            "files.completeUploadExternal"
        ],
        "{calls:#?}"
    );
    let table = calls[0].text();
    assert!(table.contains("Stats of RB-00001"), "{table}");
    assert!(table.contains("MED"), "{table}");
    assert_eq!(calls[1].body["filename"], "RB-00001-stats.png");
    assert_eq!(calls[2].body["content_type"], "image/png");
    let bytes = calls[2].body["text"].as_str().unwrap();
    assert!(bytes.starts_with("\u{FFFD}PNG"), "not a PNG");
    assert_eq!(calls[3].body["channel_id"], "C0OPS");
}
