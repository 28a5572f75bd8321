//! A small web service (axum) that embeds the engine and exposes a run over HTTP.
//!
//! It shows what an embedding program needs to put Vigilo behind its own API:
//!
//! - a [`Vigilo`] over a real SQLite file ([`SqliteStore`]), seeded on first start with a
//!   workspace, an operator, an approver and a published runbook with a gated step;
//! - three JSON routes: `POST /runs` `{"runbook":"RB-00001","as":"bob"}` starts an execution,
//!   `GET /runs/{key}?as=bob` shows it (steps, status, current step), and
//!   `POST /runs/{key}/steps/{n}` `{"as":"carol","action":"done"|"approve"|"skip","reason":…}`
//!   acts on a step;
//! - engine errors mapped from [`Error::kind`] to an HTTP status (404, 403, 409, 422, 500) and
//!   a body `{"error":{"kind":…,"message":…}}`, the message being the engine's own sentence;
//! - every audit entry written through the service records where the request came from
//!   ([`Vigilo::acting_via`] with [`Surface::Api`] and the client's address).
//!
//! The acting user is *named in the request body* (`"as"`) because this is an example: a real
//! service authenticates the caller (a session, a token, mTLS) and maps that identity to a
//! handle; it never trusts a name the client sends.
//!
//! `--self-test` binds `127.0.0.1:0`, drives the whole walk over real HTTP on loopback with a
//! minimal client ([`vigilo_examples::loopback_http`]), prints each request and response,
//! checks that the run completes and that the audit chain verifies, and exits 0 (non-zero on
//! any failure).
//!
//! Run: `cargo run -p vigilo-examples --bin http_service -- [--db FILE] [--listen ADDR]`
//! (default `127.0.0.1:8088`, a database in a temporary directory), or `-- --self-test`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use vigilo_core::audit::{Origin, Surface};
use vigilo_core::error::{Error, ErrorKind};
use vigilo_core::execution::machine::Command;
use vigilo_core::execution::{ExecStep, Execution};
use vigilo_core::ids::{Key, UserId, WorkspaceId};
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::runbook::{RunbookInput, StepInput};
use vigilo_core::service::{AuditFilter, AuditVerdict, CreateRunbook, NewMember, StartOptions};
use vigilo_core::service::{Vigilo, Who};
use vigilo_examples::loopback_http::{self, Reply};
use vigilo_store::{SqliteOptions, SqliteStore};

/// The seeded workspace's slug.
const WORKSPACE: &str = "acme";

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse(std::env::args().skip(1))?;

    // Without `--db`, a database in a temporary directory removed at exit.
    let mut tmp = None;
    let db = match &args.db {
        Some(db) => db.clone(),
        None => tmp.insert(tempfile::tempdir()?).path().join("vigilo.db"),
    };
    let store = SqliteStore::open(&db, SqliteOptions::default())
        .await
        .with_context(|| format!("opening {}", db.display()))?;
    let vigilo = Vigilo::new(Arc::new(store));
    println!("database {}", db.display());
    let workspace = seed(&vigilo).await?;

    let state = AppState { vigilo, workspace };
    let listen = if args.self_test {
        SocketAddr::from(([127, 0, 0, 1], 0))
    } else {
        args.listen
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    // The client's address reaches the handlers through `ConnectInfo`.
    let server = axum::serve(
        listener,
        router(state.clone()).into_make_service_with_connect_info::<SocketAddr>(),
    );

    if !args.self_test {
        // Ctrl-C stops accepting, lets requests in flight finish, and closes the store.
        server
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        println!("stopped");
        return Ok(());
    }
    let server = tokio::spawn(async move { server.await });
    let outcome = self_test(addr, &state).await;
    server.abort();
    outcome?;
    println!("self-test passed");
    Ok(())
}

/// The command line: `--db FILE`, `--listen ADDR`, `--self-test`.
#[derive(Debug)]
struct Args {
    db: Option<PathBuf>,
    listen: SocketAddr,
    self_test: bool,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self> {
        let mut out = Args {
            db: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8088)),
            self_test: false,
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--db" => out.db = Some(args.next().context("--db needs a file")?.into()),
                "--listen" => {
                    let addr = args.next().context("--listen needs an address")?;
                    out.listen = addr
                        .parse()
                        .with_context(|| format!("--listen {addr}: not host:port"))?;
                }
                "--self-test" => out.self_test = true,
                other => bail!(
                    "unknown argument {other:?}; usage: http_service [--db FILE] [--listen ADDR] [--self-test]"
                ),
            }
        }
        Ok(out)
    }
}

/// On a new database: workspace `acme` owned by `alice`, `bob` an operator, `carol` a member
/// holding the team role `sre`, `dave` a plain member, and RB-00001, published, whose second
/// step is gated on `sre`. On a database seeded before, the workspace as it is.
async fn seed(vigilo: &Vigilo) -> Result<WorkspaceId> {
    if let Ok(ws) = vigilo.workspace_by_slug(WORKSPACE).await {
        println!("workspace {WORKSPACE} found, not seeded again");
        return Ok(ws.id);
    }
    // Seeding is the program's own doing, not a client's.
    let vigilo = vigilo.acting_via(Origin::new(Surface::Api, "example"));
    let (ws, alice) = vigilo
        .create_workspace(WORKSPACE, "alice", "Alice Martin")
        .await?;
    let alice = Who::new(ws.id, alice.id);
    let member = |handle: &str, role, teams: &[&str]| NewMember {
        handle: handle.into(),
        display_name: String::new(),
        role,
        team_roles: teams.iter().map(|t| t.to_string()).collect(),
        chat_identity: None,
    };
    let (bob, _) = vigilo
        .add_member(&alice, member("bob", WorkspaceRole::Operator, &[]))
        .await?;
    vigilo
        .add_member(&alice, member("carol", WorkspaceRole::Member, &["sre"]))
        .await?;
    vigilo
        .add_member(&alice, member("dave", WorkspaceRole::Member, &[]))
        .await?;
    let runbook = RunbookInput {
        title: "Rotate the TLS certificate on the edge proxies".into(),
        description: "Rotate the wildcard certificate before it expires.".into(),
        category: "security".into(),
        steps: vec![
            StepInput {
                title: "Announce the rotation".into(),
                description: "Post in #ops that the rotation starts.".into(),
                est_minutes: 2,
                ..Default::default()
            },
            StepInput {
                title: "Swap the certificate on the proxies".into(),
                description: "Run `deploy-cert --bundle new.pem --all`.".into(),
                owner_role: "sre".into(),
                est_minutes: 10,
                rollback_note: "Re-deploy the previous bundle from the vault.".into(),
                requires_approval: true,
                is_destructive: true,
                ..Default::default()
            },
            StepInput {
                title: "Confirm expiry dates".into(),
                est_minutes: 3,
                ..Default::default()
            },
        ],
    };
    let rb = vigilo
        .create_runbook(
            &Who::new(ws.id, bob.id),
            runbook,
            CreateRunbook {
                publish: true,
                ..Default::default()
            },
        )
        .await?;
    println!(
        "seeded workspace {WORKSPACE}: @alice owner, @bob operator, @carol member (sre), @dave member; {} published, step 2 gated on sre",
        rb.key
    );
    Ok(ws.id)
}

/// What every handler shares: the engine and the one workspace this example serves.
#[derive(Clone)]
struct AppState {
    vigilo: Vigilo,
    workspace: WorkspaceId,
}

/// The three routes.
fn router(state: AppState) -> Router {
    Router::new()
        .route("/runs", post(start_run))
        .route("/runs/{key}", get(show_run))
        .route("/runs/{key}/steps/{n}", post(act_on_step))
        .with_state(state)
}

/// A failed request: an engine error, or a request the service cannot read.
#[derive(Debug)]
enum ApiError {
    /// The engine refused; the status follows [`Error::kind`].
    Engine(Error),
    /// The request itself is malformed (bad JSON, unknown action, bad step number): 400.
    BadRequest(String),
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Engine(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, message) = match self {
            ApiError::Engine(e) => {
                let kind = e.kind();
                let status = match kind {
                    ErrorKind::NotFound => StatusCode::NOT_FOUND,
                    ErrorKind::Denied => StatusCode::FORBIDDEN,
                    ErrorKind::Conflict => StatusCode::CONFLICT,
                    ErrorKind::Refused => StatusCode::UNPROCESSABLE_ENTITY,
                    // Tampered, Internal, and any class added later.
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                (status, kind.as_str(), e.to_string())
            }
            ApiError::BadRequest(message) => (StatusCode::BAD_REQUEST, "bad_request", message),
        };
        json_response(
            status,
            &json!({ "error": { "kind": kind, "message": message } }),
        )
    }
}

/// A JSON body with its content type. (Written by hand rather than with axum's `Json`, which
/// would need the `json` feature and one more crate.)
fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Reads a JSON request body into `T`, or says what is wrong with it.
fn parse_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("request body: {e}")))
}

/// The engine for one request, recording the client's address as the principal in the audit
/// entries it writes.
fn engine_for(state: &AppState, client: SocketAddr) -> Vigilo {
    state
        .vigilo
        .acting_via(Origin::new(Surface::Api, client.to_string()))
}

/// The member named `handle` in the served workspace. In a real service this is where the
/// authenticated caller is mapped to a handle; here the client simply names one.
async fn acting_member(vigilo: &Vigilo, state: &AppState, handle: &str) -> Result<Who, ApiError> {
    let (user, _) = vigilo.member(state.workspace, handle).await?;
    Ok(Who::new(state.workspace, user.id))
}

/// An execution key from the path. A string that is no key is a key that does not exist.
fn execution_key(raw: &str) -> Result<Key, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::Engine(Error::not_found(
            vigilo_core::error::Thing::Execution,
            raw,
            format!("no execution {raw}"),
        ))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRun {
    runbook: String,
    #[serde(rename = "as")]
    as_handle: String,
}

/// `POST /runs`: starts an execution of a published runbook; 201 with the execution.
async fn start_run(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: StartRun = parse_body(&body)?;
    let vigilo = engine_for(&state, client);
    let who = acting_member(&vigilo, &state, &req.as_handle).await?;
    let runbook: Key = req.runbook.parse().map_err(|_| {
        ApiError::Engine(Error::not_found(
            vigilo_core::error::Thing::Runbook,
            req.runbook.as_str(),
            format!("no runbook {}", req.runbook),
        ))
    })?;
    let ex = vigilo
        .start_execution(&who, runbook, StartOptions::default())
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &execution_json(&vigilo, &ex).await?,
    ))
}

/// `GET /runs/{key}?as=<handle>`: the execution as the named member sees it.
async fn show_run(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let handle = query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("as="))
        .ok_or_else(|| ApiError::BadRequest("name the reader: ?as=<handle>".into()))?;
    let vigilo = engine_for(&state, client);
    let who = acting_member(&vigilo, &state, handle).await?;
    let ex = vigilo.execution(&who, execution_key(&key)?).await?;
    Ok(json_response(
        StatusCode::OK,
        &execution_json(&vigilo, &ex).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepAction {
    #[serde(rename = "as")]
    as_handle: String,
    action: String,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /runs/{key}/steps/{n}`: `done` (with an optional note in `reason`), `approve`, or
/// `skip` (a reason is required); 200 with the execution after it.
async fn act_on_step(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path((key, n)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: StepAction = parse_body(&body)?;
    let step: u32 = n
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("step {n:?}: not a step number")))?;
    let command = match req.action.as_str() {
        "done" => Command::Done {
            step,
            note: req.reason,
        },
        "approve" => Command::Approve { step },
        "skip" => Command::Skip {
            step,
            reason: req.reason.unwrap_or_default(),
        },
        other => {
            return Err(ApiError::BadRequest(format!(
                "action {other:?}: expected done, approve or skip"
            )));
        }
    };
    let vigilo = engine_for(&state, client);
    let who = acting_member(&vigilo, &state, &req.as_handle).await?;
    let out = vigilo.act(&who, execution_key(&key)?, command).await?;
    Ok(json_response(
        StatusCode::OK,
        &execution_json(&vigilo, &out.execution).await?,
    ))
}

/// An execution as the API shows it: key, runbook, status, the current step's number, and
/// every step with its status, gate, approver and note.
async fn execution_json(vigilo: &Vigilo, ex: &Execution) -> Result<Value, ApiError> {
    let mut steps = Vec::with_capacity(ex.steps.len());
    for (i, s) in ex.steps.iter().enumerate() {
        steps.push(step_json(vigilo, i + 1, s).await?);
    }
    Ok(json!({
        "key": ex.key.to_string(),
        "runbook": ex.runbook_key.to_string(),
        "version": ex.runbook_version,
        "title": ex.title,
        "operator": handle_of(vigilo, ex.operator).await?,
        "status": ex.status.as_str(),
        "current_step": ex.current_index().map(|i| i + 1),
        "steps": steps,
    }))
}

async fn step_json(vigilo: &Vigilo, n: usize, s: &ExecStep) -> Result<Value, ApiError> {
    let approved_by = match s.approvals.first() {
        Some(a) => Some(handle_of(vigilo, a.by).await?),
        None => None,
    };
    let mut approvals = Vec::with_capacity(s.approvals.len());
    for a in &s.approvals {
        approvals.push(json!({
            "by": handle_of(vigilo, a.by).await?,
            "role": a.satisfied_as,
            "at": a.at,
        }));
    }
    let by = match s.actor {
        Some(u) => Some(handle_of(vigilo, u).await?),
        None => None,
    };
    Ok(json!({
        "n": n,
        "title": s.step.title.as_str(),
        "status": s.status.as_str(),
        "requires_approval": s.step.requires_approval,
        "owner_role": s.step.owner_role.as_str(),
        "approved_by": approved_by,
        "approvals_required": s.step.approvals_needed(),
        "approvals": approvals,
        "by": by,
        "note": s.note.as_ref().map(|m| m.as_str()),
    }))
}

async fn handle_of(vigilo: &Vigilo, user: UserId) -> Result<String, ApiError> {
    Ok(vigilo.user(user).await?.handle.as_str().to_string())
}

/// The walk, over HTTP on loopback: start as @bob, read it, step 1 done, a member without the
/// role refused the gate (403), @bob refused his own gate, @carol (sre) approves, a repeated
/// click on step 1 (409), step 2 done, step 3 skipped, an unknown run (404); then the run is
/// completed, every entry the requests wrote names the API and the client's address, and the
/// audit chain verifies.
async fn self_test(addr: SocketAddr, state: &AppState) -> Result<()> {
    let run = call(
        addr,
        "POST",
        "/runs",
        Some(r#"{"runbook":"RB-00001","as":"bob"}"#),
        201,
    )
    .await?
    .json()?;
    let key = run["key"]
        .as_str()
        .context("no key in the started run")?
        .to_string();
    check(run["current_step"] == 1, "step 1 is current at start")?;

    call(addr, "GET", &format!("/runs/{key}?as=dave"), None, 200).await?;
    let steps = format!("/runs/{key}/steps");
    call(
        addr,
        "POST",
        &format!("{steps}/1"),
        Some(r#"{"as":"bob","action":"done","reason":"posted in #ops"}"#),
        200,
    )
    .await?;

    let denied = call(
        addr,
        "POST",
        &format!("{steps}/2"),
        Some(r#"{"as":"dave","action":"approve"}"#),
        403,
    )
    .await?
    .json()?;
    check(
        denied["error"]["kind"] == "denied",
        "a member without sre is denied the gate",
    )?;
    let own = call(
        addr,
        "POST",
        &format!("{steps}/2"),
        Some(r#"{"as":"bob","action":"approve"}"#),
        403,
    )
    .await?
    .json()?;
    check(
        own["error"]["kind"] == "denied",
        "the operator who started the run cannot approve its gate (four eyes)",
    )?;
    call(
        addr,
        "POST",
        &format!("{steps}/2"),
        Some(r#"{"as":"carol","action":"approve"}"#),
        200,
    )
    .await?;
    let again = call(
        addr,
        "POST",
        &format!("{steps}/1"),
        Some(r#"{"as":"bob","action":"done"}"#),
        409,
    )
    .await?
    .json()?;
    check(
        again["error"]["kind"] == "conflict",
        "a repeated click is a conflict",
    )?;
    call(
        addr,
        "POST",
        &format!("{steps}/2"),
        Some(r#"{"as":"bob","action":"done","reason":"rolled out"}"#),
        200,
    )
    .await?;
    call(
        addr,
        "POST",
        &format!("{steps}/3"),
        Some(r#"{"as":"bob","action":"skip","reason":"monitoring checks expiry"}"#),
        200,
    )
    .await?;
    call(addr, "GET", "/runs/EX-09999?as=bob", None, 404).await?;

    let done = call(addr, "GET", &format!("/runs/{key}?as=bob"), None, 200)
        .await?
        .json()?;
    check(done["status"] == "completed", "the run is completed")?;
    check(
        done["steps"][1]["approved_by"] == "carol",
        "step 2 was approved by @carol",
    )?;
    println!("{key} completed");

    // Every entry the requests wrote records the API and the client's loopback address.
    let (alice, _) = state.vigilo.member(state.workspace, "alice").await?;
    let entries = state
        .vigilo
        .audit_entries(&Who::new(state.workspace, alice.id), AuditFilter::default())
        .await?;
    for e in &entries {
        let origin = e.origin.as_ref().map_or_else(String::new, |o| {
            format!("{}/{}", o.surface.as_str(), o.principal)
        });
        println!("audit #{:<3} {:<24} {origin}", e.seq, e.action);
    }
    let over_http = entries
        .iter()
        .filter_map(|e| e.origin.as_ref())
        .filter(|o| o.surface == Surface::Api && o.principal.starts_with("127.0.0.1:"))
        .count();
    check(
        over_http == 5,
        "the five accepted requests (start, done, approve, done, skip) wrote five entries naming the client",
    )?;

    match state.vigilo.verify_audit(state.workspace).await? {
        AuditVerdict::Intact { entries, .. } => println!("audit chain intact: {entries} entries"),
        AuditVerdict::Tampered(t) => bail!("audit chain broken: {t}"),
    }
    Ok(())
}

/// Sends one request, prints it and the response, and checks the status (`0`: any).
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    expect: u16,
) -> Result<Reply> {
    println!("> {method} {path} {}", body.unwrap_or_default());
    let reply = loopback_http::request(addr, method, path, body).await?;
    println!("< {} {}", reply.status_line, reply.body);
    if expect != 0 && reply.status != expect {
        bail!(
            "{method} {path}: expected {expect}, got {}",
            reply.status_line
        );
    }
    Ok(reply)
}

fn check(ok: bool, what: &str) -> Result<()> {
    if !ok {
        bail!("check failed: {what}");
    }
    println!("ok: {what}");
    Ok(())
}
