//! Socket Mode: Slack pushes commands, clicks and events over WebSocket connections the bot
//! opens with the app token (`SLACK_APP_TOKEN`, `connections:write`), for workspaces without a
//! public URL. Each envelope goes to the same handlers as the HTTP endpoints; slack-morphism
//! acknowledges it with the handler's answer. No signature is involved: the connection itself
//! is authenticated by the token.
//!
//! slack-morphism's callbacks are plain function pointers, so the [`Bot`] travels as the
//! listener's user state. The listener is started with `start()` and stopped with
//! `shutdown()` (its `serve()` would install its own signal handlers).
//!
//! Tested over loopback by `tests/slack_socket_mode.rs`: the fake Web API's
//! `apps.connections.open` answers with a plain `ws://127.0.0.1:…` URL of a test WebSocket
//! server (slack-morphism connects with tokio-tungstenite's `connect_async`, which takes `ws://`
//! as well as `wss://`).

use std::sync::Arc;
use std::time::Instant;

use axum::http::StatusCode;
use hyper_util::client::legacy::connect::Connect;
use slack_morphism::prelude::*;

use super::state::Bot;
use super::web_api::Connector;
use super::{Ack, SlackError, SlackOptions, commands, events, interactions};

type Stop =
    Box<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync>;

/// The running Socket Mode listener.
pub(crate) struct SocketMode {
    stop: Stop,
}

impl std::fmt::Debug for SocketMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketMode").finish_non_exhaustive()
    }
}

impl SocketMode {
    /// Opens the connections with the app token and starts listening.
    pub(crate) async fn start(bot: Arc<Bot>, opts: &SlackOptions) -> Result<Self, SlackError> {
        let token = opts.app_token.clone().unwrap_or_default();
        match Connector::for_url(&opts.slack_api_url)? {
            Connector::Http(c) => start_with(bot, c, token).await,
            Connector::Https(c) => start_with(bot, c, token).await,
        }
    }

    /// Closes the connections.
    pub(crate) async fn shutdown(self) {
        (self.stop)().await;
    }
}

async fn start_with<H>(
    bot: Arc<Bot>,
    connector: SlackClientHyperConnector<H>,
    app_token: String,
) -> Result<SocketMode, SlackError>
where
    H: Send + Sync + Clone + Connect + 'static,
{
    let client = Arc::new(SlackClient::new(connector));
    let callbacks = SlackSocketModeListenerCallbacks::new()
        .with_command_events(on_command::<H>)
        .with_interaction_events(on_interaction::<H>)
        .with_push_events(on_push::<H>);
    let env = Arc::new(
        SlackClientEventsListenerEnvironment::new(client)
            .with_error_handler(on_error::<H>)
            .with_user_state(bot),
    );
    let listener =
        SlackClientSocketModeListener::new(&SlackClientSocketModeConfig::new(), env, callbacks);
    let token = SlackApiToken::new(SlackApiTokenValue(app_token));
    listener
        .listen_for(&token)
        .await
        .map_err(|e| SlackError::SocketMode(e.to_string()))?;
    listener.start().await;
    tracing::info!("Socket Mode connected");
    let listener = Arc::new(listener);
    Ok(SocketMode {
        stop: Box::new(move || {
            let listener = listener.clone();
            Box::pin(async move { listener.shutdown().await })
        }),
    })
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

type Client<H> = Arc<SlackClient<SlackClientHyperConnector<H>>>;

/// Marks a callback result that only means "acknowledge without a payload".
#[derive(Debug, thiserror::Error)]
#[error("acknowledged")]
struct Acknowledged;

async fn bot_of(state: &SlackClientEventsUserState) -> Result<Arc<Bot>, BoxError> {
    state
        .read()
        .await
        .get_user_state::<Arc<Bot>>()
        .cloned()
        .ok_or_else(|| "the Slack bot state is missing".into())
}

fn count(bot: &Bot, endpoint: &'static str, received: Instant, ack: &Ack) {
    let status = match ack {
        Ack::Refuse(status, message) => {
            tracing::warn!(endpoint, reason = message, "Socket Mode envelope refused");
            *status
        }
        _ => StatusCode::OK,
    };
    bot.metrics
        .answered(endpoint, status.as_u16(), received.elapsed().as_secs_f64());
}

async fn on_command<H: Send + Sync + Clone + Connect + 'static>(
    ev: SlackCommandEvent,
    _client: Client<H>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    let received = Instant::now();
    let bot = bot_of(&state).await?;
    let key = serde_json::to_vec(&ev).unwrap_or_default();
    let ack = commands::command(&bot, ev, &key).await;
    count(&bot, "socket_commands", received, &ack);
    match ack {
        Ack::Command(r) => Ok(*r),
        _ => Err(Box::new(Acknowledged)),
    }
}

async fn on_interaction<H: Send + Sync + Clone + Connect + 'static>(
    ev: SlackInteractionEvent,
    _client: Client<H>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<SlackInteractionResponse> {
    let received = Instant::now();
    let bot = bot_of(&state).await?;
    let key = serde_json::to_vec(&ev).unwrap_or_default();
    let ack = match serde_json::to_value(&ev)
        .ok()
        .and_then(|v| super::payload::from_value(&v).ok())
    {
        Some(ev) => interactions::interaction(&bot, ev, &key, received).await,
        None => Ack::Empty,
    };
    count(&bot, "socket_interactions", received, &ack);
    Ok(match ack {
        Ack::View(v) => SlackInteractionResponse::ViewSubmission(*v),
        _ => SlackInteractionResponse::Empty,
    })
}

async fn on_push<H: Send + Sync + Clone + Connect + 'static>(
    ev: SlackPushEventCallback,
    _client: Client<H>,
    state: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let received = Instant::now();
    let bot = bot_of(&state).await?;
    let ack = events::push_event(&bot, ev).await;
    count(&bot, "socket_events", received, &ack);
    Ok(())
}

/// Every envelope is acknowledged, even one whose handling failed: a redelivery would fail the
/// same way.
fn on_error<H: Send + Sync + Clone + Connect + 'static>(
    err: BoxError,
    _client: Client<H>,
    _state: SlackClientEventsUserState,
) -> HttpStatusCode {
    if !err.is::<Acknowledged>() {
        tracing::warn!(error = %err, "Socket Mode envelope failed");
    }
    HttpStatusCode::OK
}
