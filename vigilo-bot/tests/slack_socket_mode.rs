//! Socket Mode over loopback: the fake Slack Web API answers `apps.connections.open` with the
//! `ws://` URL of a WebSocket server in this test, which speaks Slack's Socket Mode protocol —
//! `hello`, then a slash-command envelope and an interactive (`block_actions`) envelope — and
//! reads the bot's acknowledgements.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use vigilo_bot::slack::{SlackOptions, SlackServer};
use vigilo_core::execution::StepStatus;
use vigilo_core::ids::{Key, KeyKind};
use vigilo_core::roles::WorkspaceRole;
use vigilo_store::SqliteOptions;

/// A Socket Mode server on loopback: every connection gets Slack's `hello`; the connections are
/// handed to the test in the order they were opened.
async fn socket_server() -> (String, mpsc::UnboundedReceiver<WebSocketStream<TcpStream>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "ws://{}/link/?ticket=test-ticket",
        listener.local_addr().unwrap()
    );
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                continue;
            };
            let hello = json!({
                "type": "hello",
                "num_connections": 1,
                "debug_info": { "host": "applink-test", "approximate_connection_time": 18060 },
                "connection_info": { "app_id": "A0VIGILO" },
            });
            if ws.send(Message::text(hello.to_string())).await.is_err() {
                continue;
            }
            if tx.send(ws).is_err() {
                break;
            }
        }
    });
    (url, rx)
}

/// Sends `envelope` and waits for the acknowledgement carrying its `envelope_id`; returns it.
async fn deliver(ws: &mut WebSocketStream<TcpStream>, envelope: Value) -> Value {
    let id = envelope["envelope_id"].as_str().unwrap().to_owned();
    ws.send(Message::text(envelope.to_string())).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no acknowledgement of {id}"))
            .expect("the connection stays open")
            .unwrap();
        if let Message::Text(text) = frame {
            let ack: Value = serde_json::from_str(text.as_str()).unwrap();
            if ack["envelope_id"] == id.as_str() {
                return ack;
            }
            panic!("unexpected frame while waiting for {id}: {ack}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_mode_envelopes_are_acknowledged_and_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let vigilo = open_sqlite(dir.path(), SqliteOptions::default()).await;
    let acme = space(
        &vigilo,
        "acme",
        "T0ACME",
        &[("bob", WorkspaceRole::Operator, &["sre"], "U0BOB")],
    )
    .await;
    runbook(
        &vigilo,
        &acme.owner,
        "Rotate certs",
        &[("Announce", false), ("Verify", false)],
    )
    .await;

    let fake = FakeSlack::start().await;
    let (url, mut connections) = socket_server().await;
    fake.set_socket_url(&url);
    let server = SlackServer::bind(
        vigilo.clone(),
        SlackOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            bot_token: "xoxb-test-token".into(),
            app_token: Some("xapp-test-token".into()),
            socket_mode: true,
            slack_api_url: fake.url.clone(),
            ..SlackOptions::default()
        },
    )
    .await
    .unwrap();
    let mut ws = tokio::time::timeout(WAIT, connections.recv())
        .await
        .expect("the bot connects to the URL apps.connections.open gave")
        .unwrap();
    let opened = fake.calls_of("apps.connections.open");
    assert_eq!(opened[0].auth, "Bearer xapp-test-token");

    // The slash command: acknowledged by envelope id, then header and first card posted.
    let bob = SlackUser::new("T0ACME", "U0BOB", "C0OPS");
    let command = json!({
        "envelope_id": "env-command-1",
        "type": "slash_commands",
        "accepts_response_payload": true,
        "payload": {
            "token": "legacy", "team_id": "T0ACME", "team_domain": "acme",
            "channel_id": "C0OPS", "channel_name": "ops", "user_id": "U0BOB",
            "user_name": "bob", "command": "/runbook", "text": "run RB-00001",
            "api_app_id": "A0VIGILO", "is_enterprise_install": "false",
            "response_url": "https://hooks.slack.com/commands/T0ACME/1/x",
            "trigger_id": "1.1.trigger",
        },
    });
    let ack = deliver(&mut ws, command).await;
    assert_eq!(ack["envelope_id"], "env-command-1");
    let posts = fake.wait_calls(0, "chat.postMessage", 2).await;
    assert_eq!(posts[0].auth, "Bearer xoxb-test-token");
    assert!(posts[0].text().contains("RB-00001"), "{}", posts[0].text());
    let card1 = posts[1].clone();
    assert!(card1.text().contains("Step 1/2"), "{}", card1.text());

    // The Done click: acknowledged, the card updated in place, the next card posted.
    let from = fake.count();
    let value = card1.button("vigilo.done").unwrap();
    let click = bob.click_payload(
        "vigilo.done",
        &value,
        card1.ts.as_deref().unwrap(),
        card1.body["thread_ts"].as_str(),
    );
    let envelope = json!({
        "envelope_id": "env-click-1",
        "type": "interactive",
        "accepts_response_payload": false,
        "payload": click,
    });
    let ack = deliver(&mut ws, envelope).await;
    assert_eq!(ack["envelope_id"], "env-click-1");
    let calls = fake
        .wait_for(from, "card 1 updated and card 2 posted", |c| {
            c.iter().any(|c| c.method == "chat.update")
                && c.iter().any(|c| c.method == "chat.postMessage")
        })
        .await;
    let update = calls.iter().find(|c| c.method == "chat.update").unwrap();
    assert_eq!(update.body["ts"], card1.ts.as_deref().unwrap());
    assert!(update.button("vigilo.done").is_none(), "{update:#?}");

    // Applied once in the store: step 1 done by bob, step 2 still waiting.
    let exec = vigilo
        .execution(&acme.members["bob"], Key::new(KeyKind::Execution, 1))
        .await
        .unwrap();
    let statuses: Vec<StepStatus> = exec.steps.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [StepStatus::Done, StepStatus::Pending]);
    assert_eq!(exec.steps[0].actor, Some(acme.members["bob"].user));

    // Both envelopes were counted as Socket Mode acknowledgements.
    let metrics = SlackClient::new(server.local_addr(), SECRET)
        .get("/metrics")
        .await
        .body;
    for endpoint in ["socket_commands", "socket_interactions"] {
        let line =
            format!("vigilo_slack_requests_total{{endpoint=\"{endpoint}\",status=\"200\"}} 1");
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }
    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
        .await
        .expect("shutdown within 5 s")
        .unwrap();
}
