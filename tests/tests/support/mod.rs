//! Slack over loopback for the stories: a fake Slack Web API that records every call and a
//! client that signs requests with Slack's real scheme (trimmed from
//! `vigilo-bot/tests/support/mod.rs`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use vigilo_bot::slack::verify::sign;

/// The signing secret of the tests.
pub const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
/// How long a test waits for the bot's follow-up calls.
pub const WAIT: Duration = Duration::from_secs(10);

/// One Web API call the fake received.
#[derive(Clone, Debug)]
pub struct Call {
    /// `chat.postMessage`, `chat.update`, …
    pub method: String,
    /// The JSON body.
    pub body: Value,
    /// The `ts` the fake answered with (posted messages).
    pub ts: Option<String>,
    /// When it arrived.
    pub at: Instant,
    /// The `Authorization` header.
    pub auth: String,
}

impl Call {
    /// The channel of the call.
    pub fn channel(&self) -> &str {
        self.body["channel"].as_str().unwrap_or("")
    }

    /// The message's text and blocks, as one string (for `contains` checks).
    pub fn text(&self) -> String {
        format!("{} {}", self.body["text"], self.body["blocks"])
    }

    /// The value of the button with `action_id`, if the message has one.
    pub fn button(&self, action_id: &str) -> Option<String> {
        let blocks = self.body["blocks"].as_array()?;
        blocks
            .iter()
            .filter(|b| b["type"] == "actions")
            .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
            .find(|e| e["action_id"] == action_id)
            .and_then(|e| e["value"].as_str().map(str::to_owned))
    }
}

#[derive(Default)]
struct FakeState {
    calls: Mutex<Vec<Call>>,
    next_ts: AtomicU64,
}

/// A fake Slack Web API on loopback.
pub struct FakeSlack {
    /// Its base URL, `http://127.0.0.1:PORT/api` (no trailing slash).
    pub url: String,
    state: Arc<FakeState>,
}

impl FakeSlack {
    /// Starts the fake on a free port.
    pub async fn start() -> Self {
        let state = Arc::new(FakeState::default());
        let app = Router::new()
            .route("/api/{method}", post(api))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}/api"),
            state,
        }
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().unwrap().clone()
    }

    /// How many calls so far.
    pub fn count(&self) -> usize {
        self.state.calls.lock().unwrap().len()
    }

    /// Waits (up to [`WAIT`]) until the calls since index `from` satisfy `done`; returns them.
    pub async fn wait_for(
        &self,
        from: usize,
        what: &str,
        done: impl Fn(&[Call]) -> bool,
    ) -> Vec<Call> {
        let deadline = Instant::now() + WAIT;
        loop {
            let calls: Vec<Call> = self.calls().into_iter().skip(from).collect();
            if done(&calls) {
                return calls;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; calls since {from}: {calls:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for `n` calls of `method` since index `from`.
    pub async fn wait_calls(&self, from: usize, method: &str, n: usize) -> Vec<Call> {
        self.wait_for(from, &format!("{n} × {method}"), |c| {
            c.iter().filter(|c| c.method == method).count() >= n
        })
        .await
        .into_iter()
        .filter(|c| c.method == method)
        .collect()
    }
}

async fn api(
    State(state): State<Arc<FakeState>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let channel = body["channel"].as_str().unwrap_or("C0").to_owned();
    let n = state.next_ts.fetch_add(1, Ordering::SeqCst) + 1;
    let ts = format!("1700000000.{n:06}");
    let answer = match method.as_str() {
        "chat.postMessage" => json!({
            "ok": true, "channel": channel, "ts": ts,
            "message": { "ts": ts, "text": body["text"] },
        }),
        "chat.update" => json!({
            "ok": true, "channel": channel, "ts": body["ts"], "message": {},
        }),
        "chat.postEphemeral" => json!({ "ok": true, "message_ts": ts }),
        _ => json!({ "ok": false, "error": "unknown_method" }),
    };
    let posted = method == "chat.postMessage";
    state.calls.lock().unwrap().push(Call {
        method,
        body,
        ts: posted.then_some(ts),
        at: Instant::now(),
        auth: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
    });
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        answer.to_string(),
    )
        .into_response()
}

/// The current Unix time.
pub fn now() -> i64 {
    vigilo_bot::slack::verify::unix_now()
}

/// A client posting to the bot as Slack would.
#[derive(Clone)]
pub struct SlackClient {
    /// The bot's base URL.
    pub base: String,
    /// The secret it signs with.
    pub secret: String,
    /// The HTTP client.
    pub http: Client<HttpConnector, Full<Bytes>>,
}

/// An HTTP answer: status and body text.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The body.
    pub body: String,
}

impl SlackClient {
    /// A client for the bot at `addr`.
    pub fn new(addr: SocketAddr, secret: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            base: format!("http://{addr}"),
            secret: secret.to_owned(),
            http: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(256)
                .build(connector),
        }
    }

    /// Posts `body` to `path` with exactly `headers`.
    pub async fn post_with(&self, path: &str, body: Vec<u8>, headers: &[(&str, String)]) -> Answer {
        let mut req = axum::http::Request::post(format!("{}{path}", self.base))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = self
            .http
            .request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// Signs `body` at `ts` and posts it.
    pub async fn post_at(
        &self,
        path: &str,
        body: &str,
        ts: i64,
        extra: &[(&str, String)],
    ) -> Answer {
        let mut headers = vec![
            ("x-slack-request-timestamp", ts.to_string()),
            ("x-slack-signature", sign(&self.secret, ts, body.as_bytes())),
        ];
        headers.extend(extra.iter().cloned());
        self.post_with(path, body.as_bytes().to_vec(), &headers)
            .await
    }

    /// Signs `body` now and posts it.
    pub async fn post(&self, path: &str, body: &str) -> Answer {
        self.post_at(path, body, now(), &[]).await
    }
}

static UNIQUE: AtomicU64 = AtomicU64::new(1);

fn unique() -> u64 {
    UNIQUE.fetch_add(1, Ordering::SeqCst)
}

/// Someone in Slack: team, user, channel.
#[derive(Clone, Debug)]
pub struct SlackUser {
    /// `T…`.
    pub team: String,
    /// `U…`.
    pub user: String,
    /// `C…`.
    pub channel: String,
}

impl SlackUser {
    /// A user.
    pub fn new(team: &str, user: &str, channel: &str) -> Self {
        Self {
            team: team.into(),
            user: user.into(),
            channel: channel.into(),
        }
    }

    /// The form body of `/runbook text`.
    pub fn command(&self, text: &str) -> String {
        let n = unique();
        serde_urlencoded::to_string([
            ("token", "legacy-verification-token"),
            ("team_id", self.team.as_str()),
            ("team_domain", "acme"),
            ("channel_id", self.channel.as_str()),
            ("channel_name", "ops"),
            ("user_id", self.user.as_str()),
            ("user_name", "someone"),
            ("command", "/runbook"),
            ("text", text),
            (
                "response_url",
                &format!("https://hooks.slack.com/commands/{}/{n}/x", self.team),
            ),
            ("trigger_id", &format!("{n}.1.trigger")),
        ])
        .unwrap()
    }

    /// The `block_actions` payload of a click on `action_id` with `value`, on the message
    /// `message_ts` in the thread `thread_ts`.
    pub fn click_payload(
        &self,
        action_id: &str,
        value: &str,
        message_ts: &str,
        thread_ts: Option<&str>,
    ) -> Value {
        let n = unique();
        let mut message =
            json!({ "type": "message", "ts": message_ts, "text": "card", "user": "U0BOT" });
        if let Some(t) = thread_ts {
            message["thread_ts"] = json!(t);
        }
        json!({
            "type": "block_actions",
            "team": { "id": self.team, "domain": "acme" },
            "user": { "id": self.user, "team_id": self.team, "username": "someone" },
            "api_app_id": "A0VIGILO",
            "container": { "type": "message", "message_ts": message_ts, "channel_id": self.channel, "is_ephemeral": false },
            "trigger_id": format!("{n}.2.trigger"),
            "channel": { "id": self.channel, "name": "ops" },
            "message": message,
            "response_url": format!("https://hooks.slack.com/actions/{}/{n}/x", self.team),
            "actions": [{
                "type": "button", "action_id": action_id, "block_id": "b1",
                "text": { "type": "plain_text", "text": "Done" },
                "value": value, "action_ts": format!("1700000001.{n:06}"),
            }],
        })
    }

    /// The form body of a click on the button `action_id` of the posted card `card`.
    pub fn click(&self, card: &Call, action_id: &str) -> String {
        let value = card
            .button(action_id)
            .unwrap_or_else(|| panic!("no {action_id} button on {card:#?}"));
        let ts = card.ts.clone().expect("a posted message");
        let thread = card.body["thread_ts"].as_str();
        form(&self.click_payload(action_id, &value, &ts, thread))
    }
}

/// An interaction payload as Slack posts it: the form field `payload`.
pub fn form(payload: &Value) -> String {
    serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap()
}
