//! The Slack surface: the chat engine behind Slack's slash commands, buttons and modals.
//!
//! [`serve`] runs it until SIGINT or SIGTERM; [`SlackServer`] runs it under a test's or an
//! embedding program's control (bind to port 0, read the bound address, shut down).
//!
//! # Requests
//!
//! | endpoint | what |
//! |---|---|
//! | `POST /slack/commands` | `/runbook …` |
//! | `POST /slack/interactions` | button clicks, modal submissions |
//! | `POST /slack/events` | `url_verification`, `app_mention` (`@Vigilo status`) |
//! | `GET /healthz` | `ok` |
//! | `GET /metrics` | Prometheus metrics ([`metrics`]) |
//!
//! Every `/slack/*` request is checked before anything else ([`verify`]): a missing header
//! (400), a stale timestamp or a wrong signature (401), a body over
//! [`SlackOptions::max_body_bytes`] (413), a payload that is not JSON (400) or a button of
//! another workspace (403) get a 4xx with a short message, and nothing changes. Every payload
//! shape Slack sends is read ([`payload`]); a button or modal Vigilo does not handle gets a 200
//! and, where the payload says who and where, a private explanation. A click or command from a Slack team not linked to a workspace, or a user not mapped
//! to a Vigilo user, is acknowledged and answered privately with how to get access.
//!
//! # Acknowledge first, then act
//!
//! Slack wants an answer within three seconds. The handler verifies, parses, resolves who is
//! acting (the Slack team and user → workspace and user mapping is cached for a minute, so a
//! click is usually acknowledged without touching the store; roles are still checked by the
//! engine at the moment of the action) and answers at once (an empty 200, or the modal's validation error); the engine call —
//! the store write — and the messages that follow run in a background task, so success is
//! only ever shown after the write committed. Background tasks run on a runtime of their own
//! (owned by [`SlackServer`], two threads), so an acknowledgement never waits in a queue behind
//! them. Work for one channel runs one task at a time, so
//! its cards are posted and updated in order. A redelivery (Slack's `X-Slack-Retry-Num`, the
//! same body again) is acknowledged and ignored; a double click reaches the engine twice and the
//! second is refused as stale, privately.
//!
//! # Rendering
//!
//! The engine's [`Reply`](crate::chat::Reply)s become Block Kit ([`blocks`]); private replies
//! are ephemeral (`chat.postEphemeral`), new ones are posted (`chat.postMessage`, threaded under
//! the execution's header), acted-on cards are updated in place (`chat.update`) through
//! [`MessageRefs`](crate::chat::MessageRefs). Skip…, Failed… and Abort… open a modal
//! (`views.open`). 429 answers are waited out (`Retry-After`). All text is escaped.
//!
//! # Socket Mode
//!
//! With [`SlackOptions::socket_mode`], the bot also opens Slack's Socket Mode connections with
//! the app token, for workspaces without a public URL; the events reach the same handlers. The
//! HTTP listener still serves `/healthz` and `/metrics`.

pub mod blocks;
mod commands;
mod dedupe;
mod events;
mod interactions;
pub mod metrics;
pub mod payload;
pub mod reminders;
mod server;
mod socket_mode;
mod state;
pub mod verify;
pub mod watch;
pub mod web_api;

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::StatusCode;
use slack_morphism::prelude::{SlackCommandEventResponse, SlackViewSubmissionResponse};
use vigilo_core::service::Vigilo;

pub use reminders::ReminderOptions;
pub use server::SlackServer;
pub use watch::{CheckpointPosting, WatchOptions};
pub use web_api::{RetryPolicy, SLACK_API_URL};

/// The default address of the HTTP listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
/// The largest request body accepted by default (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// How the Slack surface runs.
#[derive(Clone)]
pub struct SlackOptions {
    /// The HTTP listener's address (default `127.0.0.1:3000`; port 0 picks a free one).
    pub listen: SocketAddr,
    /// `SLACK_SIGNING_SECRET`: verifies every request to `/slack/*`. Required unless
    /// [`socket_mode`](Self::socket_mode) is set; when empty, every signed request is refused.
    pub signing_secret: String,
    /// `SLACK_BOT_TOKEN` (`xoxb-…`): the Web API calls.
    pub bot_token: String,
    /// `SLACK_APP_TOKEN` (`xapp-…`): Socket Mode's connections.
    pub app_token: Option<String>,
    /// Receive events over Socket Mode (with the app token) as well as over HTTP.
    pub socket_mode: bool,
    /// The Web API's base URL, without a trailing slash (default `https://slack.com/api`). An
    /// `http://` URL is spoken to in plain HTTP (a local proxy or a test double).
    pub slack_api_url: String,
    /// The largest request body accepted; larger ones get 413 (default 1 MiB).
    pub max_body_bytes: usize,
    /// How 429 answers from the Web API are retried.
    pub retry: RetryPolicy,
    /// How long shutdown waits for background work (store writes, follow-up messages) to
    /// finish (default 10 s).
    pub shutdown_grace: Duration,
    /// The audit watch: scheduled verification, alerts, signed checkpoints.
    pub watch: WatchOptions,
    /// Approval reminders in the runs' threads (on by default).
    pub reminders: ReminderOptions,
}

impl std::fmt::Debug for SlackOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secrets.
        f.debug_struct("SlackOptions")
            .field("listen", &self.listen)
            .field("socket_mode", &self.socket_mode)
            .field("slack_api_url", &self.slack_api_url)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("retry", &self.retry)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("watch", &self.watch)
            .field("reminders", &self.reminders)
            .finish_non_exhaustive()
    }
}

impl Default for SlackOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            signing_secret: String::new(),
            bot_token: String::new(),
            app_token: None,
            socket_mode: false,
            slack_api_url: SLACK_API_URL.to_owned(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            retry: RetryPolicy::default(),
            shutdown_grace: Duration::from_secs(10),
            watch: WatchOptions::default(),
            reminders: ReminderOptions::default(),
        }
    }
}

impl SlackOptions {
    /// Options with the tokens read from `SLACK_SIGNING_SECRET`, `SLACK_BOT_TOKEN` and
    /// `SLACK_APP_TOKEN` (unset ones stay empty) and everything else default.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            signing_secret: var("SLACK_SIGNING_SECRET").unwrap_or_default(),
            bot_token: var("SLACK_BOT_TOKEN").unwrap_or_default(),
            app_token: var("SLACK_APP_TOKEN"),
            ..Self::default()
        }
    }

    /// Checks that the tokens the chosen mode needs are there.
    pub fn validate(&self) -> Result<(), SlackError> {
        if self.bot_token.trim().is_empty() {
            return Err(SlackError::Config(
                "SLACK_BOT_TOKEN is not set: the bot needs its token (xoxb-…) to post messages"
                    .into(),
            ));
        }
        if !self.socket_mode && self.signing_secret.trim().is_empty() {
            return Err(SlackError::Config(
                "SLACK_SIGNING_SECRET is not set: it verifies that requests come from Slack (the app's Basic Information page shows it)"
                    .into(),
            ));
        }
        if self.socket_mode
            && self
                .app_token
                .as_deref()
                .is_none_or(|t| t.trim().is_empty())
        {
            return Err(SlackError::Config(
                "SLACK_APP_TOKEN is not set: Socket Mode needs an app-level token (xapp-…) with connections:write"
                    .into(),
            ));
        }
        if self.max_body_bytes == 0 {
            return Err(SlackError::Config("the body limit must be above 0".into()));
        }
        Ok(())
    }
}

/// Why the Slack surface could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    /// A missing token or an invalid option.
    #[error("{0}")]
    Config(String),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server failed while running.
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// The system's root certificates could not be loaded for HTTPS to Slack.
    #[error("cannot load the system's root certificates for HTTPS: {0}")]
    Tls(#[source] std::io::Error),
    /// The threads for background work could not be started.
    #[error("cannot start the background worker threads: {0}")]
    Runtime(#[source] std::io::Error),
    /// Socket Mode could not connect.
    #[error("Socket Mode failed: {0}")]
    SocketMode(String),
}

/// Runs the Slack surface over `vigilo` until SIGINT or SIGTERM, then shuts down gracefully:
/// no new requests, in-flight ones answered, background work finished (up to
/// [`SlackOptions::shutdown_grace`]).
pub async fn serve(vigilo: Vigilo, opts: SlackOptions) -> Result<(), SlackError> {
    let server = SlackServer::bind(vigilo, opts).await?;
    server.run_until(shutdown_signal()).await
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

/// What a handler answers Slack with.
#[derive(Debug)]
pub(crate) enum Ack {
    /// An empty 200.
    Empty,
    /// The answer to a slash command (a private message).
    Command(Box<SlackCommandEventResponse>),
    /// The answer to a modal submission (validation errors).
    View(Box<SlackViewSubmissionResponse>),
    /// The `url_verification` challenge.
    Challenge(String),
    /// A refusal: 4xx and a short message; nothing changed.
    Refuse(StatusCode, &'static str),
}
