//! The HTTP listener: routes, body limit, signature check, acknowledgement, metrics, graceful
//! shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use slack_morphism::prelude::*;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vigilo_core::service::Vigilo;

use super::metrics::Metrics;
use super::payload::{self, Interaction, PayloadError};
use super::reminders::Reminders;
use super::socket_mode::SocketMode;
use super::state::Bot;
use super::verify::{self, RETRY_NUM_HEADER, Refusal};
use super::watch::AuditWatch;
use super::web_api::WebApi;
use super::{Ack, SlackError, SlackOptions, commands, events, interactions};
use crate::chat::ChatEngine;

/// A running Slack surface: the HTTP listener (and Socket Mode when asked for).
///
/// ```no_run
/// # async fn demo(vigilo: vigilo_core::service::Vigilo) -> Result<(), vigilo_bot::slack::SlackError> {
/// use vigilo_bot::slack::{SlackOptions, SlackServer};
///
/// let opts = SlackOptions {
///     listen: "127.0.0.1:0".parse().unwrap(),
///     ..SlackOptions::from_env()
/// };
/// let server = SlackServer::bind(vigilo, opts).await?;
/// println!("listening on {}", server.local_addr());
/// server.shutdown().await
/// # }
/// ```
#[derive(Debug)]
pub struct SlackServer {
    addr: SocketAddr,
    bot: Arc<Bot>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    socket: Option<SocketMode>,
    grace: Duration,
    watch: Option<AuditWatch>,
    reminders: Option<Reminders>,
    background: Background,
}

/// The runtime of the bot's background work (engine calls, store writes, Web API posts), apart
/// from the one acknowledging requests so those never queue behind it. Shut down without
/// blocking when dropped (a runtime must not be dropped inside async code).
struct Background(Option<tokio::runtime::Runtime>);

impl Background {
    /// Threads of the background runtime.
    const WORKERS: usize = 2;

    /// Starts the runtime; returns it with a handle to spawn on.
    fn start() -> Result<(Self, tokio::runtime::Handle), SlackError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(Self::WORKERS)
            .thread_name("vigilo-slack-work")
            .enable_all()
            .build()
            .map_err(SlackError::Runtime)?;
        let handle = rt.handle().clone();
        Ok((Self(Some(rt)), handle))
    }

    /// Stops the runtime without waiting for what still runs on it.
    fn stop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Background").finish_non_exhaustive()
    }
}

impl SlackServer {
    /// Checks the options, binds the listener, starts serving (and connects Socket Mode when
    /// asked for). Returns once requests are being accepted.
    pub async fn bind(vigilo: Vigilo, opts: SlackOptions) -> Result<Self, SlackError> {
        opts.validate()?;
        let metrics = Arc::new(Metrics::new());
        let web = WebApi::new(
            &opts.slack_api_url,
            &opts.bot_token,
            opts.retry,
            metrics.clone(),
        )?;
        let (background, handle) = Background::start()?;
        let bot = Arc::new(Bot::new(
            ChatEngine::new(vigilo),
            web,
            metrics,
            opts.signing_secret.clone(),
            handle,
        ));
        let listener = TcpListener::bind(opts.listen)
            .await
            .map_err(|source| SlackError::Bind {
                addr: opts.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SlackError::Bind {
            addr: opts.listen,
            source,
        })?;
        let app = router(bot.clone(), opts.max_body_bytes);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        let socket = if opts.socket_mode {
            match SocketMode::start(bot.clone(), &opts).await {
                Ok(s) => Some(s),
                Err(e) => {
                    let _ = stop.send(());
                    let _ = task.await;
                    return Err(e);
                }
            }
        } else {
            None
        };
        tracing::info!(%addr, socket_mode = opts.socket_mode, api = %opts.slack_api_url, "Slack surface listening");
        let watch = AuditWatch::start(bot.clone(), opts.watch.clone());
        let reminders = Reminders::start(bot.clone(), opts.reminders.clone());
        Ok(Self {
            addr,
            bot,
            stop: Some(stop),
            task,
            socket,
            grace: opts.shutdown_grace,
            watch,
            reminders,
            background,
        })
    }

    /// The address the listener is bound to (the port chosen when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `signal` resolves, then shuts down as [`shutdown`](Self::shutdown) does.
    /// Returns early with the error if the listener fails.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> Result<(), SlackError> {
        let failed = tokio::select! {
            () = signal => None,
            res = &mut self.task => Some(res),
        };
        match failed {
            None => self.shutdown().await,
            Some(res) => {
                if let Some(w) = self.watch.take() {
                    w.stop().await;
                }
                if let Some(r) = self.reminders.take() {
                    r.stop().await;
                }
                if let Some(s) = self.socket.take() {
                    s.shutdown().await;
                }
                self.bot.wait_idle(self.grace).await;
                self.background.stop();
                joined(res)
            }
        }
    }

    /// Stops gracefully: Socket Mode disconnects, the listener stops accepting, requests in
    /// flight are answered, and background work (store writes, follow-up messages) finishes —
    /// waiting at most the configured grace period for it.
    pub async fn shutdown(mut self) -> Result<(), SlackError> {
        if let Some(w) = self.watch.take() {
            w.stop().await;
        }
        if let Some(r) = self.reminders.take() {
            r.stop().await;
        }
        if let Some(s) = self.socket.take() {
            s.shutdown().await;
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let res = (&mut self.task).await;
        if !self.bot.wait_idle(self.grace).await {
            tracing::warn!(
                grace_ms = self.grace.as_millis() as u64,
                "background work still running at shutdown"
            );
        }
        self.background.stop();
        tracing::info!("Slack surface stopped");
        joined(res)
    }
}

fn joined(res: Result<std::io::Result<()>, tokio::task::JoinError>) -> Result<(), SlackError> {
    match res {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(SlackError::Serve(e)),
        Err(e) => Err(SlackError::Serve(std::io::Error::other(e.to_string()))),
    }
}

fn router(bot: Arc<Bot>, max_body: usize) -> Router {
    Router::new()
        .route("/slack/commands", post(commands_endpoint))
        .route("/slack/interactions", post(interactions_endpoint))
        .route("/slack/events", post(events_endpoint))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_endpoint))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(bot)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics_endpoint(State(bot): State<Arc<Bot>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        bot.metrics.encode(),
    )
        .into_response()
}

type Body = Result<Bytes, BytesRejection>;

async fn commands_endpoint(
    State(bot): State<Arc<Bot>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let received = Instant::now();
    let ack = match checked(&bot, &headers, body) {
        Err(ack) => ack,
        Ok(body) => match parse_command(&body) {
            Ok(Some(ev)) => commands::command(&bot, ev, &body).await,
            Ok(None) => Ack::Empty,
            Err(ack) => ack,
        },
    };
    respond(&bot.metrics, "commands", &headers, received, ack)
}

async fn interactions_endpoint(
    State(bot): State<Arc<Bot>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let received = Instant::now();
    let ack = match checked(&bot, &headers, body) {
        Err(ack) => ack,
        Ok(body) => match parse_interaction(&body) {
            Ok(ev) => interactions::interaction(&bot, ev, &body, received).await,
            Err(ack) => ack,
        },
    };
    respond(&bot.metrics, "interactions", &headers, received, ack)
}

async fn events_endpoint(State(bot): State<Arc<Bot>>, headers: HeaderMap, body: Body) -> Response {
    let received = Instant::now();
    let ack = match checked(&bot, &headers, body) {
        Err(ack) => ack,
        Ok(body) => events::event_body(&bot, &body).await,
    };
    respond(&bot.metrics, "events", &headers, received, ack)
}

/// The body, once it was read within the limit and its signature checked.
fn checked(bot: &Bot, headers: &HeaderMap, body: Body) -> Result<Bytes, Ack> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Ack::Refuse(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
        } else {
            Ack::Refuse(StatusCode::BAD_REQUEST, "unreadable request body")
        }
    })?;
    verify::verify(&bot.signing_secret, headers, &body, verify::unix_now()).map_err(|r| {
        let message = match r {
            Refusal::MissingHeaders => "missing Slack signature headers",
            Refusal::StaleTimestamp => "stale or invalid request timestamp",
            Refusal::BadSignature => "invalid request signature",
        };
        Ack::Refuse(r.status(), message)
    })?;
    Ok(body)
}

/// A slash command's form; `None` for Slack's `ssl_check` probe.
fn parse_command(body: &[u8]) -> Result<Option<SlackCommandEvent>, Ack> {
    let malformed = || Ack::Refuse(StatusCode::BAD_REQUEST, "malformed slash command");
    let fields: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|_| malformed())?;
    if fields.iter().any(|(k, v)| k == "ssl_check" && v == "1") {
        return Ok(None);
    }
    serde_urlencoded::from_bytes(body)
        .map(Some)
        .map_err(|_| malformed())
}

#[derive(Deserialize)]
struct InteractionForm {
    payload: String,
}

/// An interaction's `payload` form field, parsed ([`payload`]).
fn parse_interaction(body: &[u8]) -> Result<Interaction, Ack> {
    let form: InteractionForm = serde_urlencoded::from_bytes(body)
        .map_err(|_| Ack::Refuse(StatusCode::BAD_REQUEST, "malformed interaction form"))?;
    payload::parse(&form.payload).map_err(|e| match e {
        PayloadError::NotJson => Ack::Refuse(StatusCode::BAD_REQUEST, "malformed payload JSON"),
        PayloadError::NoType => Ack::Refuse(StatusCode::BAD_REQUEST, "the payload has no type"),
    })
}

fn json(value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The acknowledgement as an HTTP response, counted and logged.
fn respond(
    metrics: &Metrics,
    endpoint: &'static str,
    headers: &HeaderMap,
    received: Instant,
    ack: Ack,
) -> Response {
    let retry = headers
        .get(RETRY_NUM_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let response = match ack {
        Ack::Empty => StatusCode::OK.into_response(),
        Ack::Command(r) => json(&r),
        Ack::View(r) => json(&r),
        Ack::Challenge(c) => json(&serde_json::json!({ "challenge": c })),
        Ack::Refuse(status, message) => {
            tracing::warn!(
                endpoint,
                status = status.as_u16(),
                reason = message,
                retry,
                "request refused"
            );
            (status, format!("{message}\n")).into_response()
        }
    };
    let status = response.status().as_u16();
    let seconds = received.elapsed().as_secs_f64();
    metrics.answered(endpoint, status, seconds);
    tracing::debug!(
        endpoint,
        status,
        ack_us = (seconds * 1e6) as u64,
        retry,
        "acknowledged"
    );
    response
}
