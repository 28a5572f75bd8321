//! The audit watch: while the bot serves, it verifies every workspace's audit chain (at start,
//! then every [`WatchOptions::verify_every`]), logs and exports the result as metrics, and posts
//! to an alert channel when tampering is found; and, with a signing key, posts signed
//! checkpoints of every chain to a channel the database cannot reach: an outside witness.
//!
//! A row whose stored columns were edited is hidden from a filtered query rather than shown
//! wrong; only a full check finds it, so the bot runs one on a schedule.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use slack_morphism::prelude::SlackMessageContent;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use vigilo_core::ids::WorkspaceId;
use vigilo_core::service::AuditVerdict;

use super::state::Bot;

/// The default interval of the audit check: six hours.
pub const DEFAULT_VERIFY_EVERY: Duration = Duration::from_secs(6 * 3600);
/// The default interval of signed checkpoints: one hour.
pub const DEFAULT_CHECKPOINT_EVERY: Duration = Duration::from_secs(3600);

/// What the watch does.
#[derive(Clone)]
pub struct WatchOptions {
    /// Verify every chain this often (`None`: never, not even at start).
    pub verify_every: Option<Duration>,
    /// Where to post when tampering is found (a channel id), besides the log and `/metrics`.
    pub alert_channel: Option<String>,
    /// Signed checkpoints to post, if any.
    pub checkpoints: Option<CheckpointPosting>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            verify_every: Some(DEFAULT_VERIFY_EVERY),
            alert_channel: None,
            checkpoints: None,
        }
    }
}

impl std::fmt::Debug for WatchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchOptions")
            .field("verify_every", &self.verify_every)
            .field("alert_channel", &self.alert_channel)
            .field(
                "checkpoints",
                &self.checkpoints.as_ref().map(|c| (&c.channel, c.every)),
            )
            .finish()
    }
}

/// Signed checkpoints posted to a channel.
#[derive(Clone)]
pub struct CheckpointPosting {
    /// The signing key (read from a file outside the database).
    pub key: Arc<SigningKey>,
    /// The channel to post to.
    pub channel: String,
    /// How often (the first at start).
    pub every: Duration,
}

/// The running watch.
#[derive(Debug)]
pub(crate) struct AuditWatch {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl AuditWatch {
    /// Starts the watch on the bot's background runtime; `None` when it has nothing to do.
    pub(crate) fn start(bot: Arc<Bot>, opts: WatchOptions) -> Option<Self> {
        if opts.verify_every.is_none() && opts.checkpoints.is_none() {
            return None;
        }
        let (stop, stopped) = watch::channel(false);
        let task = bot.background().clone().spawn(run(bot, opts, stopped));
        Some(Self { stop, task })
    }

    /// Stops the watch and waits for it (a check in progress is abandoned between reads).
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn run(bot: Arc<Bot>, opts: WatchOptions, mut stopped: watch::Receiver<bool>) {
    let start = Instant::now();
    let mut next_verify = opts.verify_every.map(|_| start);
    let mut next_checkpoint = opts.checkpoints.as_ref().map(|_| start);
    let mut alerted: HashSet<WorkspaceId> = HashSet::new();
    loop {
        let now = Instant::now();
        if let (Some(at), Some(every)) = (next_verify, opts.verify_every)
            && at <= now
        {
            tokio::select! {
                () = check_all(&bot, opts.alert_channel.as_deref(), &mut alerted) => {}
                _ = stopped.changed() => return,
            }
            next_verify = Some(Instant::now() + every.max(Duration::from_secs(1)));
        }
        if let (Some(at), Some(posting)) = (next_checkpoint, &opts.checkpoints)
            && at <= now
        {
            tokio::select! {
                () = post_checkpoints(&bot, posting, opts.alert_channel.as_deref()) => {}
                _ = stopped.changed() => return,
            }
            next_checkpoint = Some(Instant::now() + posting.every.max(Duration::from_secs(1)));
        }
        let wake = [next_verify, next_checkpoint].into_iter().flatten().min();
        let Some(wake) = wake else { return };
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Verifies every workspace's chain; alerts once per workspace while it stays tampered.
async fn check_all(bot: &Bot, alert_channel: Option<&str>, alerted: &mut HashSet<WorkspaceId>) {
    let vigilo = bot.engine.vigilo();
    let workspaces = match vigilo.workspaces().await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "audit check: cannot list the workspaces");
            bot.metrics.audit_checked("error", unix_now());
            return;
        }
    };
    let mut result = "intact";
    for ws in workspaces {
        match vigilo.verify_audit(ws.id).await {
            Ok(AuditVerdict::Intact { entries, head }) => {
                tracing::info!(workspace = %ws.slug, entries, head = head.as_deref().unwrap_or("-"), "audit chain intact");
                bot.metrics.audit_verdict(ws.slug.as_str(), true, entries);
                alerted.remove(&ws.id);
            }
            Ok(AuditVerdict::Tampered(t)) => {
                tracing::error!(workspace = %ws.slug, seq = t.seq, problem = %t.problem, "audit chain tampered");
                bot.metrics.audit_verdict(ws.slug.as_str(), false, 0);
                result = "tampered";
                if alerted.insert(ws.id)
                    && let Some(channel) = alert_channel
                {
                    let text = format!(
                        ":rotating_light: The audit trail of workspace *{}* was changed outside Vigilo: entry {}: {}. Nothing in it after that entry can be trusted until this is explained; `vigilo --workspace {} audit verify` shows the same.",
                        ws.slug, t.seq, t.problem, ws.slug
                    );
                    post(bot, channel, text).await;
                }
            }
            Err(e) => {
                tracing::warn!(workspace = %ws.slug, error = %e, "audit check failed");
                if result == "intact" {
                    result = "error";
                }
            }
        }
    }
    bot.metrics.audit_checked(result, unix_now());
}

/// Signs and posts a checkpoint of every chain, one message per workspace.
async fn post_checkpoints(bot: &Bot, posting: &CheckpointPosting, alert_channel: Option<&str>) {
    let vigilo = bot.engine.vigilo();
    match vigilo.checkpoints(&posting.key).await {
        Ok(checkpoints) => {
            for cp in checkpoints {
                let json = serde_json::to_string(&[&cp]).unwrap_or_default();
                let text = format!(
                    "Vigilo audit checkpoint of *{}*: entry {} (keep this message; `vigilo audit verify --checkpoint FILE` checks the chain against it)\n```\n{json}\n```",
                    cp.slug, cp.seq
                );
                if post(bot, &posting.channel, text).await {
                    bot.metrics.checkpoint_posted();
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "no checkpoint signed");
            if let Some(channel) = alert_channel {
                post(
                    bot,
                    channel,
                    format!(":rotating_light: Vigilo did not sign an audit checkpoint: {e}"),
                )
                .await;
            }
        }
    }
}

/// Posts `text`; false (and a warning) when Slack refused it.
async fn post(bot: &Bot, channel: &str, text: String) -> bool {
    let content = SlackMessageContent::new().with_text(text);
    match bot.web.post_message(channel, None, content).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(channel, error = %e, "posting an audit message failed");
            false
        }
    }
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}
