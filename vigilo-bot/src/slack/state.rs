//! [`Bot`]: what every handler shares — the engine, the Web API client, message references,
//! metrics, redelivery memory — and the steps every request goes through after it was
//! acknowledged: who is acting, one task at a time per channel, showing the engine's replies.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OwnedMutexGuard;
use vigilo_core::error::ErrorKind;
use vigilo_core::ids::{UserId, WorkspaceId};
use vigilo_core::service::Who;
use vigilo_core::workspace::ChatIdentity;

use super::blocks;
use super::dedupe::Dedupe;
use super::metrics::Metrics;
use super::web_api::{FileUpload, WebApi};
use crate::chat::errors::error_reply;
use crate::chat::reply::Image;
use crate::chat::{Attachment, ChatContext, ChatEngine, MessageRefs, Placement, Reply, Visibility};

/// The platform name recorded on executions started from Slack.
pub const PLATFORM: &str = "slack";
/// How long a resolved Slack team and user stay cached. Only the mapping of Slack ids to
/// Vigilo ids is cached: membership and roles are checked by the engine, in the store, at the
/// moment of every action, so a removed member is refused at once; a Slack id moved to
/// another user or team takes effect within this time.
pub const IDENTITY_TTL: Duration = Duration::from_secs(60);
/// How many resolved identities are cached at most (the cache is emptied when full).
const IDENTITY_CAPACITY: usize = 10_000;

/// A Slack message: channel and `ts`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlackRef {
    /// The channel.
    pub channel: String,
    /// The message's `ts`.
    pub ts: String,
}

/// Where a request came from: the Slack team, user and channel, and the thread when the click
/// came from a threaded card (private answers go there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The Slack team (`T…`).
    pub team: String,
    /// The Slack user (`U…`).
    pub user: String,
    /// The channel (`C…`).
    pub channel: String,
    /// The thread of the message clicked, if any.
    pub thread_ts: Option<String>,
}

impl Origin {
    /// Who is behind the request, as its signature proves it: the team and the user
    /// (`T…/U…`), recorded in the audit entries the request writes.
    pub fn principal(&self) -> vigilo_core::audit::Origin {
        vigilo_core::audit::Origin::new(
            vigilo_core::audit::Surface::Slack,
            format!("{}/{}", self.team, self.user),
        )
    }
}

/// The acting user, resolved: their workspace and Vigilo user, and the chat context.
#[derive(Clone, Debug)]
pub struct Acting {
    /// The workspace of the Slack team.
    pub workspace: WorkspaceId,
    /// The engine's context.
    pub ctx: ChatContext,
}

/// The shared state of the Slack surface.
pub struct Bot {
    /// The chat engine.
    pub engine: ChatEngine,
    /// The Web API client.
    pub web: WebApi,
    /// Anchors to Slack messages.
    pub refs: MessageRefs<SlackRef>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Bodies already accepted.
    pub dedupe: Dedupe,
    /// The signing secret; empty refuses every signed request.
    pub signing_secret: String,
    channels: ChannelLocks,
    background: tokio::runtime::Handle,
    running: AtomicUsize,
    identities: Mutex<HashMap<(String, String), Resolved>>,
}

/// A cached resolution of a Slack team and user: workspace, user, when it was resolved.
type Resolved = (WorkspaceId, UserId, Instant);

impl std::fmt::Debug for Bot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bot")
            .field("running", &self.running.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Bot {
    /// The shared state. Background work ([`spawn`](Self::spawn)) runs on `background`, a
    /// runtime apart from the one answering requests.
    pub fn new(
        engine: ChatEngine,
        web: WebApi,
        metrics: Arc<Metrics>,
        signing_secret: String,
        background: tokio::runtime::Handle,
    ) -> Self {
        Self {
            engine,
            web,
            refs: MessageRefs::new(),
            metrics,
            dedupe: Dedupe::default(),
            signing_secret,
            channels: ChannelLocks::default(),
            background,
            running: AtomicUsize::new(0),
            identities: Mutex::new(HashMap::new()),
        }
    }

    /// Resolves the Slack team to its workspace and the Slack user to a Vigilo user. On
    /// failure, the private reply to show (it says how to get access).
    ///
    /// A resolved pair is cached for [`IDENTITY_TTL`], so a click is usually acknowledged
    /// without waiting for the store; failures are never cached, so a team or user linked a
    /// moment ago is recognised at once.
    pub async fn identify(&self, origin: &Origin) -> Result<Acting, Reply> {
        let key = (origin.team.clone(), origin.user.clone());
        let cached = {
            let map = self.identities.lock().unwrap_or_else(|p| p.into_inner());
            map.get(&key)
                .filter(|(_, _, at)| at.elapsed() < IDENTITY_TTL)
                .map(|(ws, user, _)| (*ws, *user))
        };
        if let Some((ws, user)) = cached {
            return Ok(Acting {
                workspace: ws,
                ctx: ChatContext::new(Who::new(ws, user), PLATFORM, origin.channel.clone())
                    .with_origin(origin.principal()),
            });
        }
        let acting = self.resolve(origin).await?;
        let mut map = self.identities.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= IDENTITY_CAPACITY {
            map.clear();
        }
        map.insert(key, (acting.workspace, acting.ctx.who.user, Instant::now()));
        Ok(acting)
    }

    /// [`identify`](Self::identify) without the cache: two store reads.
    async fn resolve(&self, origin: &Origin) -> Result<Acting, Reply> {
        let vigilo = self.engine.vigilo();
        let failed = |e: vigilo_core::error::Error| {
            if e.kind() == ErrorKind::Internal {
                self.metrics.store_error();
            }
            error_reply(&e)
        };
        let ws = vigilo
            .workspace_for_slack_team(&origin.team)
            .await
            .map_err(failed)?;
        // Only this workspace's own mappings count: a Slack user mapped in another workspace
        // never acts here.
        let (user, _) = vigilo
            .member_for_chat(
                ws.id,
                &ChatIdentity {
                    platform: PLATFORM.to_owned(),
                    user: origin.user.clone(),
                },
            )
            .await
            .map_err(failed)?;
        Ok(Acting {
            workspace: ws.id,
            ctx: ChatContext::new(Who::new(ws.id, user.id), PLATFORM, origin.channel.clone())
                .with_origin(origin.principal()),
        })
    }

    /// Runs `work` in the background, tracked for graceful shutdown: on the background runtime,
    /// so the engine's calls, rendering and Web API posts never hold up an acknowledgement.
    pub fn spawn(self: &Arc<Self>, work: impl Future<Output = ()> + Send + 'static) {
        struct Running(Arc<Bot>);
        impl Drop for Running {
            fn drop(&mut self) {
                self.0.running.fetch_sub(1, Ordering::SeqCst);
                self.0.metrics.task_finished();
            }
        }
        self.running.fetch_add(1, Ordering::SeqCst);
        self.metrics.task_started();
        let guard = Running(self.clone());
        self.background.spawn(async move {
            let _guard = guard;
            work.await;
        });
    }

    /// The background runtime, for long-running work that is not a request's (the audit watch).
    pub(crate) fn background(&self) -> &tokio::runtime::Handle {
        &self.background
    }

    /// Waits until no background task runs, at most `limit`; true when they all finished.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.running.load(Ordering::SeqCst) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Waits for the channel's turn: work for one channel runs one at a time, so its messages
    /// are posted and updated in order.
    pub async fn channel_turn(&self, team: &str, channel: &str) -> ChannelTurn {
        self.channels.lock(format!("{team}/{channel}")).await
    }

    /// Shows one private reply to the user of `origin`.
    pub async fn tell(&self, workspace: Option<WorkspaceId>, origin: &Origin, reply: &Reply) {
        let rendered = blocks::render(reply, workspace.unwrap_or(WorkspaceId(uuid::Uuid::nil())));
        let _ = self
            .web
            .post_ephemeral(
                &origin.channel,
                &origin.user,
                origin.thread_ts.as_deref(),
                rendered.content(),
            )
            .await;
    }

    /// Shows the engine's replies in order: private ones to the actor only, public ones as new
    /// messages, thread replies or in-place updates, remembering the messages that are anchored.
    pub async fn deliver(&self, workspace: WorkspaceId, origin: &Origin, replies: &[Reply]) {
        for reply in replies {
            if is_store_failure(reply) {
                self.metrics.store_error();
            }
            if reply.visibility == Visibility::Private {
                self.tell(Some(workspace), origin, reply).await;
                continue;
            }
            if let Some(file) = &reply.file {
                self.upload(workspace, origin, reply, file).await;
                continue;
            }
            let content = blocks::render(reply, workspace).content();
            let posted = match self.refs.place(workspace, &reply.target) {
                Placement::Post { thread } => {
                    let channel = thread
                        .as_ref()
                        .map_or(origin.channel.as_str(), |t| &t.channel);
                    let thread_ts = thread.as_ref().map(|t| t.ts.as_str());
                    self.web
                        .post_message(channel, thread_ts, content)
                        .await
                        .ok()
                        .map(|p| SlackRef {
                            channel: p.channel,
                            ts: p.ts,
                        })
                }
                Placement::Update(r) => self
                    .web
                    .update(&r.channel, &r.ts, content)
                    .await
                    .ok()
                    .map(|()| r),
                Placement::Skip => None,
            };
            if let Some(image) = &reply.image {
                self.upload_image(workspace, origin, posted.as_ref(), image)
                    .await;
            }
            if let (Some(anchor), Some(r)) = (reply.anchor, posted) {
                self.refs.remember(workspace, anchor, r);
            }
        }
    }
}

impl Bot {
    /// Shares a reply's file where the reply belongs (the run's thread when its header is
    /// known, else the channel), with the reply's text as its comment.
    async fn upload(
        &self,
        workspace: WorkspaceId,
        origin: &Origin,
        reply: &Reply,
        file: &Attachment,
    ) {
        let thread = match self.refs.place(workspace, &reply.target) {
            Placement::Post { thread } => thread,
            Placement::Update(r) => Some(r),
            Placement::Skip => None,
        };
        let channel = thread
            .as_ref()
            .map_or(origin.channel.as_str(), |t| t.channel.as_str());
        let comment = blocks::render(reply, workspace).text;
        let upload = FileUpload {
            channel,
            thread_ts: thread.as_ref().map(|t| t.ts.as_str()),
            filename: &file.filename,
            title: &file.title,
            content_type: "text/markdown",
            content: file.content.as_bytes(),
            comment: &comment,
        };
        if let Err(e) = self.web.upload_file(&upload).await {
            tracing::warn!(file = %file.filename, error = %e, "the file could not be shared");
            let text = format!(
                "Slack did not accept the file {}; try again in a moment. The CLI writes the same report: `vigilo exec report`.",
                file.filename
            );
            let reply = Reply::private_markdown(
                crate::chat::markdown::escape_markdown_keeping_code(&text),
                text,
            );
            self.tell(Some(workspace), origin, &reply).await;
        }
    }
}

impl Bot {
    /// Shares a reply's picture in the channel of the message just posted (`posted`, else
    /// the channel of the command), with the picture's title as its comment.
    async fn upload_image(
        &self,
        workspace: WorkspaceId,
        origin: &Origin,
        posted: Option<&SlackRef>,
        image: &Image,
    ) {
        let channel = posted.map_or(origin.channel.as_str(), |r| r.channel.as_str());
        let comment = crate::chat::markdown::escape_markdown(&image.title);
        let upload = FileUpload {
            channel,
            thread_ts: None,
            filename: &image.filename,
            title: &image.title,
            content_type: "image/png",
            content: &image.png,
            comment: &comment,
        };
        if let Err(e) = self.web.upload_file(&upload).await {
            tracing::warn!(file = %image.filename, error = %e, "the chart could not be shared");
            let text = format!(
                "Slack did not accept the chart {}; the CLI draws the same one: `vigilo runbook stats … --chart FILE.png`.",
                image.filename
            );
            let reply = Reply::private_markdown(
                crate::chat::markdown::escape_markdown_keeping_code(&text),
                text,
            );
            self.tell(Some(workspace), origin, &reply).await;
        }
    }
}

/// True when the engine's reply reports a storage failure (the wording of
/// [`error_reply`] for [`ErrorKind::Internal`]).
pub fn is_store_failure(reply: &Reply) -> bool {
    reply.visibility == Visibility::Private && reply.text.starts_with("Vigilo could not complete")
}

/// True when the replies show that the engine changed something: it answers a refused or failed
/// call with private replies only, and a report (a file) changes nothing.
pub fn committed(replies: &[Reply]) -> bool {
    replies
        .iter()
        .any(|r| r.visibility == Visibility::Public && r.file.is_none())
}

/// One async lock per channel, created on demand and dropped when nobody holds or waits for it.
#[derive(Debug, Default)]
struct ChannelLocks {
    map: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl ChannelLocks {
    async fn lock(&self, key: String) -> ChannelTurn {
        let lock = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        let guard = lock.lock_owned().await;
        ChannelTurn {
            guard: Some(guard),
            key,
            map: self.map.clone(),
        }
    }
}

/// A channel's turn; dropping it lets the next task for the channel run.
#[derive(Debug)]
pub struct ChannelTurn {
    guard: Option<OwnedMutexGuard<()>>,
    key: String,
    map: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Drop for ChannelTurn {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use vigilo_core::error::Error;
    use vigilo_core::store::StoreError;

    use super::*;

    #[test]
    fn recognises_store_failures() {
        let e = Error::Store(StoreError::Corrupt("page 7".into()));
        assert!(is_store_failure(&error_reply(&e)));
        let denied = vigilo_core::authz::authorize(
            vigilo_core::ids::UserId::new(),
            vigilo_core::roles::WorkspaceRole::Member,
            vigilo_core::authz::Action::ManageMembers,
            &vigilo_core::authz::Subject::NONE,
        )
        .unwrap_err();
        assert!(!is_store_failure(&error_reply(&Error::Denied(denied))));
    }

    #[tokio::test]
    async fn channel_locks_are_dropped() {
        let locks = ChannelLocks::default();
        let a = locks.lock("T/C1".into()).await;
        let b = locks.lock("T/C2".into()).await;
        assert_eq!(locks.map.lock().unwrap().len(), 2);
        drop(a);
        drop(b);
        assert!(locks.map.lock().unwrap().is_empty());
    }
}
