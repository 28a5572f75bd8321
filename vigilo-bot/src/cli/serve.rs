//! `serve`: the chat front ends served by the `vigilo` binary (`serve slack`).

use std::path::PathBuf;

use clap::Subcommand;

use super::{CliError, Ctx, Global, keys};

/// `vigilo serve …`.
#[derive(Debug, Subcommand)]
pub enum ServeCmd {
    /// The Slack bot.
    #[command(
        after_help = "Example:\n  SLACK_BOT_TOKEN=… SLACK_SIGNING_SECRET=… vigilo serve slack --listen 127.0.0.1:3000"
    )]
    Slack {
        /// Address to listen on for Slack's HTTP requests.
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: String,
        /// Slack's Web API base URL (for tests against a fake Slack).
        #[arg(long, value_name = "URL")]
        slack_api_url: Option<String>,
        /// Use Socket Mode instead of HTTP requests.
        #[arg(long)]
        socket_mode: bool,
        /// Verify every audit chain at start and this often (`6h`, `30m`, `90s`; `0` never).
        #[arg(long, value_name = "DURATION", default_value = "6h", value_parser = parse_duration)]
        verify_every: std::time::Duration,
        /// Post to this channel when an audit check finds tampering.
        #[arg(long, value_name = "C…")]
        alert_channel: Option<String>,
        /// Sign checkpoints of every chain with this key (from `audit keygen`) and post them.
        #[arg(long, value_name = "FILE", requires = "checkpoint_channel")]
        checkpoint_key: Option<PathBuf>,
        /// Where to post signed checkpoints: a channel the database's administrators cannot edit.
        #[arg(long, value_name = "C…", requires = "checkpoint_key")]
        checkpoint_channel: Option<String>,
        /// How often to post a checkpoint.
        #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
        checkpoint_every: std::time::Duration,
        /// Do not mention approvers in the runs' threads when a gated step waits (lapses are
        /// then recorded only when a run is read or acted on).
        #[arg(long)]
        no_approval_reminders: bool,
    },
}

/// A duration as `90s`, `30m`, `6h`, `1d` or a bare number of seconds.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; write e.g. 90s, 30m, 6h or 1d"))?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(|| format!("{s:?} is not a duration; write e.g. 90s, 30m, 6h or 1d"))?;
    Ok(std::time::Duration::from_secs(secs))
}

/// Runs `vigilo serve …`.
pub async fn run(global: Global, cmd: ServeCmd) -> Result<(), CliError> {
    let ServeCmd::Slack {
        listen,
        slack_api_url,
        socket_mode,
        verify_every,
        alert_channel,
        checkpoint_key,
        checkpoint_channel,
        checkpoint_every,
        no_approval_reminders,
    } = cmd;
    let checkpoints = match (checkpoint_key, checkpoint_channel) {
        (Some(key), Some(channel)) => Some(crate::slack::CheckpointPosting {
            key: std::sync::Arc::new(keys::read(&key)?),
            channel,
            every: checkpoint_every,
        }),
        _ => None,
    };
    let watch = crate::slack::WatchOptions {
        verify_every: (!verify_every.is_zero()).then_some(verify_every),
        alert_channel,
        checkpoints,
    };
    let reminders = crate::slack::ReminderOptions {
        enabled: !no_approval_reminders,
        ..crate::slack::ReminderOptions::default()
    };
    serve_slack(
        global,
        &listen,
        slack_api_url,
        socket_mode,
        watch,
        reminders,
    )
    .await
}

/// `vigilo serve slack`: checks the options before opening the store, then serves until
/// SIGINT or SIGTERM and closes the store, so every acknowledged write is on disk.
async fn serve_slack(
    global: Global,
    listen: &str,
    slack_api_url: Option<String>,
    socket_mode: bool,
    watch: crate::slack::WatchOptions,
    reminders: crate::slack::ReminderOptions,
) -> Result<(), CliError> {
    let listen = listen.parse().map_err(|e| {
        CliError::Usage(format!(
            "--listen {listen:?} is not an address: {e}; give host:port, e.g. 127.0.0.1:3000"
        ))
    })?;
    let mut opts = crate::slack::SlackOptions::from_env();
    opts.listen = listen;
    opts.socket_mode = socket_mode;
    opts.watch = watch;
    opts.reminders = reminders;
    if let Some(url) = slack_api_url {
        let url = url.trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "--slack-api-url {url:?} must start with http:// or https://"
            )));
        }
        opts.slack_api_url = url;
    }
    opts.validate()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let ctx = Ctx::open(global, false).await?;
    tracing::info!(db = %ctx.db_label, listen = %opts.listen, socket_mode, "serving Slack");
    let result = crate::slack::serve(ctx.vigilo.clone(), opts)
        .await
        .map_err(|e| CliError::Internal(e.to_string()));
    ctx.close().await;
    result
}
