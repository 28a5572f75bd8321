//! The bot's audit watch over loopback: a signed checkpoint posted at start (and one that
//! verifies against the chain), every chain verified on a schedule with the result in
//! `/metrics`, and one alert in the alert channel when a column is edited behind Vigilo's back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;
use vigilo_bot::slack::{CheckpointPosting, SlackOptions, SlackServer, WatchOptions};
use vigilo_core::checkpoint::Checkpoint;
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::service::CheckpointVerdict;
use vigilo_store::SqliteOptions;

/// Polls `/metrics` until it contains `line`, at most 10 s.
async fn metrics_show(client: &SlackClient, line: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = client.get("/metrics").await.body;
        if m.contains(line) || Instant::now() > deadline {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_checkpoints_verifies_and_alerts_once() {
    let dir = tempfile::tempdir().unwrap();
    let vigilo = open_sqlite(dir.path(), SqliteOptions::default()).await;
    let acme = space(
        &vigilo,
        "acme",
        "T0ACME",
        &[("bob", WorkspaceRole::Operator, &[], "U0BOB")],
    )
    .await;
    runbook(&vigilo, &acme.owner, "Restart", &[("Drain", false)]).await;
    let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let fake = FakeSlack::start().await;
    let server = SlackServer::bind(
        vigilo.clone(),
        SlackOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            signing_secret: SECRET.into(),
            bot_token: "xoxb-test-token".into(),
            slack_api_url: fake.url.clone(),
            watch: WatchOptions {
                verify_every: Some(Duration::from_millis(300)),
                alert_channel: Some("C0ALERT".into()),
                checkpoints: Some(CheckpointPosting {
                    key: Arc::new(key.clone()),
                    channel: "C0WITNESS".into(),
                    every: Duration::from_secs(3600),
                }),
            },
            ..SlackOptions::default()
        },
    )
    .await
    .unwrap();
    let client = SlackClient::new(server.local_addr(), SECRET);

    // At start: a checkpoint of acme in the witness channel, and acme verified intact.
    let posted = fake.wait_calls(0, "chat.postMessage", 1).await;
    let witness = &posted[0];
    assert_eq!(witness.channel(), "C0WITNESS");
    let text = witness.body["text"].as_str().unwrap().to_owned();
    let json = text
        .split("```")
        .nth(1)
        .map(str::trim)
        .unwrap_or_else(|| panic!("no JSON in {text}"));
    let checkpoints: Vec<Checkpoint> = serde_json::from_str(json).unwrap();
    assert_eq!(checkpoints.len(), 1);
    assert_eq!(checkpoints[0].slug, "acme");
    let verdict = vigilo
        .verify_checkpoint(&checkpoints[0], Some(&key.verifying_key()))
        .await
        .unwrap();
    assert!(
        matches!(verdict, CheckpointVerdict::Holds { .. }),
        "{verdict:?}"
    );
    let m = metrics_show(&client, r#"vigilo_slack_audit_intact{workspace="acme"} 1"#).await;
    assert!(
        m.contains(r#"vigilo_slack_audit_intact{workspace="acme"} 1"#),
        "{m}"
    );
    assert!(
        m.contains("vigilo_slack_audit_checkpoints_posted_total 1"),
        "{m}"
    );

    // A rogue administrator moves the actor of entry 2 to nobody, straight in the file.
    let c = rusqlite::Connection::open(dir.path().join("vigilo.db")).unwrap();
    c.execute_batch("DROP TRIGGER audit_no_update; UPDATE audit SET actor = NULL WHERE seq = 2;")
        .unwrap();
    drop(c);
    let m = metrics_show(&client, r#"vigilo_slack_audit_intact{workspace="acme"} 0"#).await;
    assert!(
        m.contains(r#"vigilo_slack_audit_intact{workspace="acme"} 0"#),
        "{m}"
    );
    let alerts: Vec<Call> = fake
        .calls_of("chat.postMessage")
        .into_iter()
        .filter(|c| c.channel() == "C0ALERT")
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let alert = alerts[0].text();
    assert!(
        alert.contains("acme") && alert.contains("entry 2") && alert.contains("`actor`"),
        "{alert}"
    );
    // Later checks find it again but do not repeat the alert.
    let checks_before = metrics_count(
        &client,
        "vigilo_slack_audit_verifications_total{result=\"tampered\"}",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while metrics_count(
        &client,
        "vigilo_slack_audit_verifications_total{result=\"tampered\"}",
    )
    .await
        < checks_before + 2
    {
        assert!(Instant::now() < deadline, "no further checks ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let alerts = fake
        .calls_of("chat.postMessage")
        .into_iter()
        .filter(|c| c.channel() == "C0ALERT")
        .count();
    assert_eq!(alerts, 1, "one alert while it stays tampered");
    server.shutdown().await.unwrap();
}

/// The value of the metric line starting with `name` (0 when absent).
async fn metrics_count(client: &SlackClient, name: &str) -> u64 {
    let m = client.get("/metrics").await.body;
    m.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
