//! Approval reminders: while the bot serves, every [`ReminderOptions::check_every`] it looks for
//! running executions started from Slack whose current step waits for approvals
//! ([`Vigilo::waiting_approvals`](vigilo_core::service::Vigilo::waiting_approvals), which also
//! records the lapses due by now) and
//!
//! - mentions, in the run's thread, the members whose role can approve the step (`<@U…>` from
//!   their Slack identities, never `@channel`): once when the step is first seen waiting, then
//!   at most once per [`ReminderOptions::again_after`] (30 minutes) while it still waits;
//! - updates the step's card when its lapsed approvals changed since it last looked, so a lapse
//!   shows without anyone clicking.
//!
//! Time is the service's clock, so tests drive it with a `ManualClock`. What was mentioned when
//! is kept in this process: a restarted bot, or a second replica, may mention a waiting step
//! once more within the 30 minutes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use slack_morphism::prelude::SlackMessageContent;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vigilo_core::execution::approvals_summary;
use vigilo_core::ids::ExecutionId;
use vigilo_core::roles::RoleRequirement;
use vigilo_core::service::WaitingApproval;

use super::state::{Bot, Origin};
use crate::chat::markdown::escape_mrkdwn;
use crate::chat::refs::Placement;
use crate::chat::reply::Anchor;

/// How often the bot looks for waiting steps by default.
pub const DEFAULT_CHECK_EVERY: Duration = Duration::from_secs(60);
/// The least time between two mentions of one waiting step: 30 minutes.
pub const REMIND_AGAIN_AFTER: Duration = Duration::from_secs(30 * 60);

/// What the reminders do.
#[derive(Clone, Debug)]
pub struct ReminderOptions {
    /// Whether reminders run at all (`vigilo serve slack --no-approval-reminders` turns them
    /// off; lapses are then recorded only when a run is read or acted on).
    pub enabled: bool,
    /// How often to look for waiting steps.
    pub check_every: Duration,
    /// The least time between two mentions of one waiting step.
    pub again_after: Duration,
}

impl Default for ReminderOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            check_every: DEFAULT_CHECK_EVERY,
            again_after: REMIND_AGAIN_AFTER,
        }
    }
}

/// One wait: the execution, the step, and when the step became current (a retried step waits
/// anew).
type WaitKey = (ExecutionId, u32, DateTime<Utc>);

/// What this process has shown of each wait.
#[derive(Debug, Default)]
pub(crate) struct ReminderLog {
    /// When each wait was last mentioned.
    mentioned: HashMap<WaitKey, DateTime<Utc>>,
    /// How many lapsed approvals each wait's card showed when last updated.
    lapses_shown: HashMap<WaitKey, usize>,
}

impl ReminderLog {
    /// Whether the wait is to be mentioned at `now`: never mentioned yet, or last mentioned at
    /// least `again_after` ago. Records the mention when it says yes.
    pub(crate) fn mention_due(
        &mut self,
        key: WaitKey,
        now: DateTime<Utc>,
        again_after: Duration,
    ) -> bool {
        let again = chrono::Duration::from_std(again_after).unwrap_or(chrono::Duration::MAX);
        let due = self
            .mentioned
            .get(&key)
            .is_none_or(|last| now - *last >= again);
        if due {
            self.mentioned.insert(key, now);
        }
        due
    }

    /// Whether the wait's card is to be updated: its lapsed approvals are not the ones last
    /// shown. Records them when it says yes.
    pub(crate) fn card_stale(&mut self, key: WaitKey, lapsed: usize) -> bool {
        let shown = self.lapses_shown.insert(key, lapsed).unwrap_or(0);
        shown != lapsed
    }

    /// Forgets the waits that are over (not in `live`).
    fn retain(&mut self, live: &[WaitKey]) {
        self.mentioned.retain(|k, _| live.contains(k));
        self.lapses_shown.retain(|k, _| live.contains(k));
    }
}

/// The running reminders.
#[derive(Debug)]
pub(crate) struct Reminders {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Reminders {
    /// Starts the reminders on the bot's background runtime; `None` when they are off.
    pub(crate) fn start(bot: Arc<Bot>, opts: ReminderOptions) -> Option<Self> {
        if !opts.enabled {
            return None;
        }
        let (stop, stopped) = watch::channel(false);
        let task = bot.background().clone().spawn(run(bot, opts, stopped));
        Some(Self { stop, task })
    }

    /// Stops the reminders and waits for them.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn run(bot: Arc<Bot>, opts: ReminderOptions, mut stopped: watch::Receiver<bool>) {
    let mut log = ReminderLog::default();
    let every = opts.check_every.max(Duration::from_millis(10));
    loop {
        tokio::select! {
            () = remind_all(&bot, &opts, &mut log) => {}
            _ = stopped.changed() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// One look at every workspace.
async fn remind_all(bot: &Bot, opts: &ReminderOptions, log: &mut ReminderLog) {
    let vigilo = bot.engine.vigilo();
    let workspaces = match vigilo.workspaces().await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "approval reminders: cannot list the workspaces");
            return;
        }
    };
    let mut live = Vec::new();
    for ws in workspaces {
        let waiting = match vigilo.waiting_approvals(ws.id).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(workspace = %ws.slug, error = %e, "approval reminders: cannot read the waiting steps");
                continue;
            }
        };
        for w in waiting {
            let Some(channel) = w
                .execution
                .channel
                .as_ref()
                .filter(|c| c.platform == "slack")
                .map(|c| c.channel.clone())
            else {
                continue;
            };
            let key = (w.execution.id, w.step, w.since);
            live.push(key);
            let origin = Origin {
                team: String::new(),
                user: String::new(),
                channel: channel.clone(),
                thread_ts: None,
            };
            let lapsed = w
                .execution
                .steps
                .get(w.step as usize - 1)
                .map_or(0, |s| s.lapsed.len());
            if log.card_stale(key, lapsed) {
                let replies = bot.engine.current_card_update(&w.execution).await;
                bot.deliver(ws.id, &origin, &replies).await;
            }
            if log.mention_due(key, vigilo.now(), opts.again_after) {
                mention(bot, ws.id, &channel, &w).await;
            }
        }
    }
    log.retain(&live);
}

/// Mentions the approvers of a waiting step in the run's thread (in the channel when the
/// thread is not known to this process).
async fn mention(bot: &Bot, ws: vigilo_core::ids::WorkspaceId, channel: &str, w: &WaitingApproval) {
    let vigilo = bot.engine.vigilo();
    let exec = &w.execution;
    let Some(step) = exec.steps.get(w.step as usize - 1) else {
        return;
    };
    let mut given = Vec::with_capacity(step.approvals.len());
    for a in &step.approvals {
        given.push(match vigilo.user(a.by).await {
            Ok(u) => format!("@{}", u.handle),
            Err(_) => "someone".to_owned(),
        });
    }
    let text = reminder_text(w, &given);
    let thread = match bot.refs.place(
        ws,
        &crate::chat::reply::Target::Thread(Anchor::Execution(exec.key)),
    ) {
        Placement::Post { thread } => thread,
        Placement::Update(r) => Some(r),
        // Only a refresh is skipped; a thread reply never is. In the channel, then.
        Placement::Skip => None,
    };
    let (channel, thread_ts) = match &thread {
        Some(t) => (t.channel.as_str(), Some(t.ts.as_str())),
        None => (channel, None),
    };
    let content = SlackMessageContent::new().with_text(text);
    if let Err(e) = bot.web.post_message(channel, thread_ts, content).await {
        tracing::warn!(execution = %exec.key, error = %e, "posting an approval reminder failed");
    }
}

/// The reminder: the approvers' mentions (`<@U…>`, the only unescaped part), then what waits
/// (`EX-00001 step 2/3 · Swap waits for 1 of 2 approvals (@carol) by team role `sre``).
/// Members without a Slack identity are named by handle; nobody able to approve is said too.
pub(crate) fn reminder_text(w: &WaitingApproval, given: &[String]) -> String {
    let exec = &w.execution;
    let Some(step) = exec.steps.get(w.step as usize - 1) else {
        return String::new();
    };
    let mut mentions = Vec::new();
    let mut handles = Vec::new();
    for (user, m) in &w.approvers {
        match m.chat_identities.iter().find(|i| i.platform == "slack") {
            Some(id) if is_slack_id(&id.user) => mentions.push(format!("<@{}>", id.user)),
            _ => handles.push(format!("@{}", user.handle)),
        }
    }
    let requirement = RoleRequirement::from_owner_role(step.step.owner_role.as_str());
    let waits = format!(
        "{} step {}/{} · {} waits for {} by {requirement}",
        exec.key,
        w.step,
        exec.steps.len(),
        step.step.title,
        approvals_summary(step.step.approvals_needed(), given),
    );
    let mut text = escape_mrkdwn(&waits);
    if !handles.is_empty() {
        text.push_str(&escape_mrkdwn(&format!(" (also: {})", handles.join(", "))));
    }
    if mentions.is_empty() && handles.is_empty() {
        text.push_str(&escape_mrkdwn(
            "; nobody in this workspace can approve it now: an admin can give someone the role",
        ));
    }
    text.push('.');
    if mentions.is_empty() {
        text
    } else {
        format!("{} {text}", mentions.join(" "))
    }
}

/// A Slack user id as a mention may carry it: `U…` or `W…`, letters and digits only.
fn is_slack_id(id: &str) -> bool {
    id.len() >= 2
        && (id.starts_with('U') || id.starts_with('W'))
        && id.chars().all(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_wait_is_mentioned_once_then_at_most_every_30_minutes() {
        let mut log = ReminderLog::default();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let key = (ExecutionId::new(), 2, t0);
        let min = |m: i64| t0 + chrono::Duration::minutes(m);
        assert!(log.mention_due(key, min(0), REMIND_AGAIN_AFTER));
        assert!(!log.mention_due(key, min(1), REMIND_AGAIN_AFTER));
        assert!(!log.mention_due(key, min(29), REMIND_AGAIN_AFTER));
        assert!(log.mention_due(key, min(30), REMIND_AGAIN_AFTER));
        assert!(!log.mention_due(key, min(59), REMIND_AGAIN_AFTER));
        // A retried step is a new wait.
        assert!(log.mention_due((key.0, 2, min(40)), min(41), REMIND_AGAIN_AFTER));
        // Lapses shown once each.
        assert!(!log.card_stale(key, 0));
        assert!(log.card_stale(key, 1));
        assert!(!log.card_stale(key, 1));
        log.retain(&[]);
        assert!(log.mention_due(key, min(60), REMIND_AGAIN_AFTER));
    }

    #[test]
    fn only_plain_slack_ids_are_mentioned() {
        assert!(is_slack_id("U0123ABC"));
        assert!(is_slack_id("W0123"));
        assert!(!is_slack_id("U01>|x"));
        assert!(!is_slack_id("!channel"));
    }
}
