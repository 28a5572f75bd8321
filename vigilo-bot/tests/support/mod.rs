//! Helpers for the Slack tests: a fake Slack Web API that records every call, a client that
//! signs requests with Slack's real scheme, Slack payload builders, and a world of two
//! workspaces over a real SQLite file.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod process;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use vigilo_bot::slack::verify::sign;
use vigilo_bot::slack::{SlackOptions, SlackServer};
use vigilo_core::ids::{Key, WorkspaceId};
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::runbook::{RunbookInput, StepInput};
use vigilo_core::service::{CreateRunbook, NewMember, Vigilo, Who};
use vigilo_core::store::AuditQuery;
use vigilo_core::workspace::ChatIdentity;
use vigilo_store::{SqliteOptions, SqliteStore};

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
    /// Per method: how many more calls to answer 429, and the `Retry-After` seconds.
    limits: Mutex<HashMap<String, (u32, u64)>>,
    next_ts: AtomicU64,
    /// What `apps.connections.open` answers (Socket Mode's WebSocket URL).
    socket_url: Mutex<Option<String>>,
    /// `http://127.0.0.1:PORT`: where the upload URLs the fake hands out point.
    base: Mutex<String>,
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
            .route("/api/{method}", post(api).get(api_get))
            .route("/upload/{file}", post(upload))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        *state.base.lock().unwrap() = format!("http://{addr}");
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

    /// The calls of one method.
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// Forgets the calls so far.
    pub fn clear(&self) {
        self.state.calls.lock().unwrap().clear();
    }

    /// Answers the next `times` calls of `method` with 429 and `Retry-After: secs`.
    pub fn rate_limit(&self, method: &str, times: u32, secs: u64) {
        self.state
            .limits
            .lock()
            .unwrap()
            .insert(method.to_owned(), (times, secs));
    }

    /// Makes `apps.connections.open` answer with `url` (a Socket Mode server of the test).
    pub fn set_socket_url(&self, url: &str) {
        *self.state.socket_url.lock().unwrap() = Some(url.to_owned());
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

/// Why a message body breaks Slack's limits, if it does: 50 blocks, 150 characters per header,
/// 3,000 per section text, 2,000 per field, 75 per button label, and 10,000 characters over
/// every text field of the message (the notification text included).
pub fn over_slack_limits(body: &Value) -> Option<String> {
    fn chars(v: &Value) -> usize {
        v.as_str().map_or(0, |s| s.chars().count())
    }
    fn text_chars(v: &Value) -> usize {
        match v {
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) if k == "text" => s.chars().count(),
                    other => text_chars(other),
                })
                .sum(),
            Value::Array(items) => items.iter().map(text_chars).sum(),
            _ => 0,
        }
    }
    let blocks = body["blocks"].as_array()?;
    if blocks.len() > 50 {
        return Some(format!("{} blocks", blocks.len()));
    }
    for b in blocks {
        match b["type"].as_str() {
            Some("header") if chars(&b["text"]["text"]) > 150 => {
                return Some("a header over 150 characters".into());
            }
            Some("section") => {
                if chars(&b["text"]["text"]) > 3_000 {
                    return Some("a section over 3,000 characters".into());
                }
                if b["fields"]
                    .as_array()
                    .is_some_and(|f| f.len() > 10 || f.iter().any(|f| chars(&f["text"]) > 2_000))
                {
                    return Some("fields over 10, or over 2,000 characters".into());
                }
            }
            Some("actions")
                if b["elements"]
                    .as_array()
                    .is_some_and(|e| e.iter().any(|e| chars(&e["text"]["text"]) > 75)) =>
            {
                return Some("a button label over 75 characters".into());
            }
            _ => {}
        }
    }
    let total = chars(&body["text"]) + blocks.iter().map(text_chars).sum::<usize>();
    (total > 10_000).then(|| format!("{total} characters of text in one message"))
}

async fn api(
    State(state): State<Arc<FakeState>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    {
        let mut limits = state.limits.lock().unwrap();
        if let Some((left, secs)) = limits.get_mut(&method)
            && *left > 0
        {
            *left -= 1;
            let secs = *secs;
            state.calls.lock().unwrap().push(Call {
                method: format!("{method} (429)"),
                body: Value::Null,
                ts: None,
                at: Instant::now(),
                auth: String::new(),
            });
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, secs.to_string())],
                "rate limited",
            )
                .into_response();
        }
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    // Like Slack, refuse a message over its limits (the test then sees no `ts` and no post).
    if let Some(why) = over_slack_limits(&body) {
        state.calls.lock().unwrap().push(Call {
            method: format!("{method} (rejected: {why})"),
            body,
            ts: None,
            at: Instant::now(),
            auth: String::new(),
        });
        return (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            json!({ "ok": false, "error": "invalid_blocks", "detail": why }).to_string(),
        )
            .into_response();
    }
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
        "files.completeUploadExternal" => json!({
            "ok": true,
            "files": body["files"].as_array().cloned().unwrap_or_default()
                .iter()
                .map(|f| json!({ "id": f["id"], "title": f["title"] }))
                .collect::<Vec<_>>(),
        }),
        "apps.connections.open" => match state.socket_url.lock().unwrap().clone() {
            Some(url) => json!({ "ok": true, "url": url }),
            None => json!({ "ok": false, "error": "socket_mode_not_set_up" }),
        },
        "views.open" => {
            let mut view = body["view"].clone();
            view["id"] = json!("V0001");
            view["team_id"] = json!("T0ACME");
            view["hash"] = json!("h1");
            json!({ "ok": true, "view": view })
        }
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

/// `GET /api/{method}` (slack-morphism sends `files.getUploadURLExternal` as a GET with its
/// arguments in the query): recorded with the arguments as the body; answers an upload URL
/// on this fake.
async fn api_get(
    State(state): State<Arc<FakeState>>,
    Path(method): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
) -> Response {
    let args: HashMap<String, String> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).unwrap_or_default();
    let body = json!(args);
    let n = state.next_ts.fetch_add(1, Ordering::SeqCst) + 1;
    let answer = match method.as_str() {
        "files.getUploadURLExternal" => {
            let base = state.base.lock().unwrap().clone();
            json!({ "ok": true, "upload_url": format!("{base}/upload/F{n:05}"), "file_id": format!("F{n:05}") })
        }
        _ => json!({ "ok": false, "error": "unknown_method" }),
    };
    state.calls.lock().unwrap().push(Call {
        method,
        body,
        ts: None,
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

/// `POST /upload/{file}`: the bytes of an upload, recorded as the call `upload` with `file`,
/// `content_type` and the bytes as `text`; answered as Slack does, in plain text.
async fn upload(
    State(state): State<Arc<FakeState>>,
    Path(file): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    state.calls.lock().unwrap().push(Call {
        method: "upload".into(),
        body: json!({
            "file": file,
            "content_type": content_type,
            "text": String::from_utf8_lossy(&body),
        }),
        ts: None,
        at: Instant::now(),
        auth: String::new(),
    });
    (
        [(header::CONTENT_TYPE, "text/plain")],
        format!("OK - {}", body.len()),
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

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Answer {
        let req = axum::http::Request::get(format!("{}{path}", self.base))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = self.http.request(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
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

    /// The form body of the submission of the modal `opened` (a `views.open` call) with
    /// `reason`.
    pub fn submit(&self, opened: &Call, reason: &str) -> String {
        let mut view = opened.body["view"].clone();
        view["id"] = json!("V0001");
        view["team_id"] = json!(self.team);
        view["hash"] = json!("h1");
        view["state"] = json!({ "values": { "vigilo.reason": { "vigilo.reason": {
            "type": "plain_text_input", "value": reason,
        } } } });
        form(&json!({
            "type": "view_submission",
            "team": { "id": self.team, "domain": "acme" },
            "user": { "id": self.user, "team_id": self.team },
            "api_app_id": "A0VIGILO",
            "trigger_id": format!("{}.3.trigger", unique()),
            "view": view,
        }))
    }
}

/// An interaction payload as Slack posts it: the form field `payload`.
pub fn form(payload: &Value) -> String {
    serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap()
}

/// A workspace with its Slack team and members.
pub struct Space {
    /// The workspace.
    pub id: WorkspaceId,
    /// Its owner.
    pub owner: Who,
    /// Members by handle.
    pub members: HashMap<String, Who>,
}

/// Creates workspace `slug` linked to `team`, with `members`: (handle, role, team roles, Slack
/// user id).
pub async fn space(
    vigilo: &Vigilo,
    slug: &str,
    team: &str,
    members: &[(&str, WorkspaceRole, &[&str], &str)],
) -> Space {
    let (ws, owner) = vigilo
        .create_workspace(slug, &format!("{slug}-owner"), "Owner")
        .await
        .unwrap();
    let owner = Who::new(ws.id, owner.id);
    vigilo.link_slack_team(&owner, team).await.unwrap();
    let mut out = HashMap::new();
    for (handle, role, teams, slack) in members {
        let (u, _) = vigilo
            .add_member(
                &owner,
                NewMember {
                    handle: (*handle).into(),
                    display_name: String::new(),
                    role: *role,
                    team_roles: teams.iter().map(|t| t.to_string()).collect(),
                    chat_identity: Some(ChatIdentity::slack(*slack)),
                },
            )
            .await
            .unwrap();
        out.insert((*handle).to_owned(), Who::new(ws.id, u.id));
    }
    Space {
        id: ws.id,
        owner,
        members: out,
    }
}

/// A published runbook of `steps` (title, gated) owned by the `sre` role.
pub async fn runbook(vigilo: &Vigilo, who: &Who, title: &str, steps: &[(&str, bool)]) -> Key {
    let input = RunbookInput {
        title: title.into(),
        description: "A runbook for the Slack tests.".into(),
        category: "ops".into(),
        steps: steps
            .iter()
            .map(|(t, gated)| StepInput {
                title: (*t).into(),
                description: format!("Do **{t}** & check <it>."),
                owner_role: "sre".into(),
                est_minutes: 5,
                expected_outcome: "It is done.".into(),
                requires_approval: *gated,
                is_destructive: *gated,
                ..Default::default()
            })
            .collect(),
    };
    vigilo
        .create_runbook(
            who,
            input,
            CreateRunbook {
                publish: true,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .key
}

/// Opens the service over a new SQLite file in `dir`.
pub async fn open_sqlite(dir: &std::path::Path, options: SqliteOptions) -> Vigilo {
    let store = SqliteStore::open(dir.join("vigilo.db"), options)
        .await
        .unwrap();
    Vigilo::new(Arc::new(store))
}

/// Starts the bot over `vigilo`, talking to `fake`, on a free loopback port.
pub async fn start_bot(vigilo: Vigilo, fake: &FakeSlack) -> SlackServer {
    SlackServer::bind(
        vigilo,
        SlackOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            signing_secret: SECRET.into(),
            bot_token: "xoxb-test-token".into(),
            slack_api_url: fake.url.clone(),
            ..SlackOptions::default()
        },
    )
    .await
    .unwrap()
}

/// How many audit entries the workspace has.
pub async fn audit_count(vigilo: &Vigilo, ws: WorkspaceId) -> usize {
    vigilo
        .store()
        .audit(
            ws,
            &AuditQuery {
                limit: 100_000,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .len()
}
