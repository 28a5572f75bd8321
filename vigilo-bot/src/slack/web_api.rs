//! The Slack Web API calls the bot makes (`chat.postMessage`, `chat.update`,
//! `chat.postEphemeral`, `views.open`, and a file upload: `files.getUploadURLExternal`, the
//! bytes posted to the URL it answers, `files.completeUploadExternal`), through
//! slack-morphism's hyper client.
//!
//! A 429 answer is waited out: the call is retried after its `Retry-After` (one second when
//! absent, at most [`RetryPolicy::max_delay`]), at most [`RetryPolicy::max_retries`] times.
//! Every call is counted in the metrics.
//!
//! The client speaks HTTPS with the system's root certificates to `https://` URLs (Slack), and
//! plain HTTP to an `http://` URL given with `--slack-api-url` (a local proxy or a test double).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;

use super::SlackError;
use super::metrics::Metrics;

/// The Web API's address.
pub const SLACK_API_URL: &str = "https://slack.com/api";

/// How 429 answers are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after a 429 before the call fails (default 3).
    pub max_retries: u32,
    /// The longest wait honoured; a longer `Retry-After` is cut to this (default 30 s).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            max_delay: Duration::from_secs(30),
        }
    }
}

/// A connector for `url`: plain HTTP for `http://` URLs, HTTPS with the system roots otherwise.
pub(crate) enum Connector {
    /// Plain HTTP (a local proxy or test double).
    Http(SlackClientHyperConnector<HttpConnector>),
    /// HTTPS, the real Slack.
    Https(SlackClientHyperHttpsConnector),
}

impl Connector {
    /// The connector for the Web API at `url` (no trailing slash needed).
    pub(crate) fn for_url(url: &str) -> Result<Self, SlackError> {
        let url = url.trim_end_matches('/');
        if url.starts_with("http://") {
            Ok(Connector::Http(
                SlackClientHyperConnector::with_connector(HttpConnector::new())
                    .with_slack_api_url(url),
            ))
        } else if url.starts_with("https://") {
            let c = SlackClientHyperConnector::new().map_err(SlackError::Tls)?;
            Ok(Connector::Https(c.with_slack_api_url(url)))
        } else {
            Err(SlackError::Config(format!(
                "the Slack API URL must start with http:// or https:// (got `{url}`)"
            )))
        }
    }
}

#[async_trait]
trait Transport: Send + Sync {
    async fn post_message(
        &self,
        req: &SlackApiChatPostMessageRequest,
    ) -> ClientResult<SlackApiChatPostMessageResponse>;
    async fn update(
        &self,
        req: &SlackApiChatUpdateRequest,
    ) -> ClientResult<SlackApiChatUpdateResponse>;
    async fn post_ephemeral(
        &self,
        req: &SlackApiChatPostEphemeralRequest,
    ) -> ClientResult<SlackApiChatPostEphemeralResponse>;
    async fn views_open(
        &self,
        req: &SlackApiViewsOpenRequest,
    ) -> ClientResult<SlackApiViewsOpenResponse>;
    async fn get_upload_url(
        &self,
        req: &SlackApiFilesGetUploadUrlExternalRequest,
    ) -> ClientResult<SlackApiFilesGetUploadUrlExternalResponse>;
    async fn upload(
        &self,
        req: &SlackApiFilesUploadViaUrlRequest,
    ) -> ClientResult<SlackApiFilesUploadViaUrlResponse>;
    async fn complete_upload(
        &self,
        req: &SlackApiFilesCompleteUploadExternalRequest,
    ) -> ClientResult<SlackApiFilesCompleteUploadExternalResponse>;
}

struct Hyper<H: Send + Sync + Clone + Connect + 'static> {
    client: SlackClient<SlackClientHyperConnector<H>>,
    token: SlackApiToken,
}

#[async_trait]
impl<H: Send + Sync + Clone + Connect + 'static> Transport for Hyper<H> {
    async fn post_message(
        &self,
        req: &SlackApiChatPostMessageRequest,
    ) -> ClientResult<SlackApiChatPostMessageResponse> {
        self.client
            .open_session(&self.token)
            .chat_post_message(req)
            .await
    }
    async fn update(
        &self,
        req: &SlackApiChatUpdateRequest,
    ) -> ClientResult<SlackApiChatUpdateResponse> {
        self.client.open_session(&self.token).chat_update(req).await
    }
    async fn post_ephemeral(
        &self,
        req: &SlackApiChatPostEphemeralRequest,
    ) -> ClientResult<SlackApiChatPostEphemeralResponse> {
        self.client
            .open_session(&self.token)
            .chat_post_ephemeral(req)
            .await
    }
    async fn views_open(
        &self,
        req: &SlackApiViewsOpenRequest,
    ) -> ClientResult<SlackApiViewsOpenResponse> {
        self.client.open_session(&self.token).views_open(req).await
    }
    async fn get_upload_url(
        &self,
        req: &SlackApiFilesGetUploadUrlExternalRequest,
    ) -> ClientResult<SlackApiFilesGetUploadUrlExternalResponse> {
        self.client
            .open_session(&self.token)
            .get_upload_url_external(req)
            .await
    }
    async fn upload(
        &self,
        req: &SlackApiFilesUploadViaUrlRequest,
    ) -> ClientResult<SlackApiFilesUploadViaUrlResponse> {
        self.client
            .open_session(&self.token)
            .files_upload_via_url(req)
            .await
    }
    async fn complete_upload(
        &self,
        req: &SlackApiFilesCompleteUploadExternalRequest,
    ) -> ClientResult<SlackApiFilesCompleteUploadExternalResponse> {
        self.client
            .open_session(&self.token)
            .files_complete_upload_external(req)
            .await
    }
}

/// The bot's Web API client.
#[derive(Clone)]
pub struct WebApi {
    transport: Arc<dyn Transport>,
    metrics: Arc<Metrics>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for WebApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebApi")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// A message the Web API posted: where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Posted {
    /// The channel.
    pub channel: String,
    /// The message's `ts`.
    pub ts: String,
}

/// A text file to share with [`WebApi::upload_file`].
#[derive(Clone, Copy, Debug)]
pub struct FileUpload<'a> {
    /// The channel to share it in.
    pub channel: &'a str,
    /// The thread (its parent message's `ts`), if any.
    pub thread_ts: Option<&'a str>,
    /// The file's name.
    pub filename: &'a str,
    /// Its title.
    pub title: &'a str,
    /// Its MIME type (`text/markdown`).
    pub content_type: &'a str,
    /// The bytes.
    pub content: &'a [u8],
    /// The message introducing it (mrkdwn, escaped).
    pub comment: &'a str,
}

impl WebApi {
    /// A client for the Web API at `url` acting with `bot_token`.
    pub fn new(
        url: &str,
        bot_token: &str,
        retry: RetryPolicy,
        metrics: Arc<Metrics>,
    ) -> Result<Self, SlackError> {
        let token = SlackApiToken::new(SlackApiTokenValue(bot_token.to_owned()));
        let transport: Arc<dyn Transport> = match Connector::for_url(url)? {
            Connector::Http(c) => Arc::new(Hyper {
                client: SlackClient::new(c),
                token,
            }),
            Connector::Https(c) => Arc::new(Hyper {
                client: SlackClient::new(c),
                token,
            }),
        };
        Ok(Self {
            transport,
            metrics,
            retry,
        })
    }

    /// Runs `call`, waiting out 429 answers as the [`RetryPolicy`] says.
    async fn call<T, F, Fut>(&self, method: &'static str, call: F) -> ClientResult<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ClientResult<T>>,
    {
        let mut retries = 0;
        loop {
            match call().await {
                Err(SlackClientError::RateLimitError(e)) if retries < self.retry.max_retries => {
                    retries += 1;
                    let delay = e
                        .retry_after
                        .unwrap_or(Duration::from_secs(1))
                        .min(self.retry.max_delay);
                    self.metrics.rate_limited(method);
                    tracing::info!(
                        method,
                        retry = retries,
                        delay_ms = delay.as_millis() as u64,
                        "Slack rate limit: waiting before retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
                result => {
                    self.metrics.web_api_call(method, result.is_ok());
                    if let Err(e) = &result {
                        tracing::warn!(method, error = %e, "Slack Web API call failed");
                    }
                    return result;
                }
            }
        }
    }

    /// `chat.postMessage`: a new message in `channel`, in the thread of `thread_ts` if given.
    pub async fn post_message(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        content: SlackMessageContent,
    ) -> ClientResult<Posted> {
        let mut req =
            SlackApiChatPostMessageRequest::new(SlackChannelId(channel.to_owned()), content)
                .with_unfurl_links(false)
                .with_unfurl_media(false);
        if let Some(ts) = thread_ts {
            req = req.with_thread_ts(SlackTs(ts.to_owned()));
        }
        let res = self
            .call("chat.postMessage", || self.transport.post_message(&req))
            .await?;
        Ok(Posted {
            channel: res.channel.0,
            ts: res.ts.0,
        })
    }

    /// `chat.update`: replaces the message `ts` in `channel`.
    pub async fn update(
        &self,
        channel: &str,
        ts: &str,
        content: SlackMessageContent,
    ) -> ClientResult<()> {
        let req = SlackApiChatUpdateRequest::new(
            SlackChannelId(channel.to_owned()),
            content,
            SlackTs(ts.to_owned()),
        );
        self.call("chat.update", || self.transport.update(&req))
            .await
            .map(|_| ())
    }

    /// `chat.postEphemeral`: a message only `user` sees, in `channel` (and thread).
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        thread_ts: Option<&str>,
        content: SlackMessageContent,
    ) -> ClientResult<()> {
        let mut req = SlackApiChatPostEphemeralRequest::new(
            SlackChannelId(channel.to_owned()),
            SlackUserId(user.to_owned()),
            content,
        );
        if let Some(ts) = thread_ts {
            req = req.with_thread_ts(SlackTs(ts.to_owned()));
        }
        self.call("chat.postEphemeral", || self.transport.post_ephemeral(&req))
            .await
            .map(|_| ())
    }

    /// Shares a text file in `channel` (in the thread of `thread_ts` if given) with `comment`
    /// as its message, by Slack's external upload flow: `files.getUploadURLExternal` (name and
    /// length), the bytes posted to the upload URL it answers, then
    /// `files.completeUploadExternal` with the file's id and title, the channel and thread.
    /// Each step waits out 429s; a failure stops the flow (an upload never completed is
    /// discarded by Slack).
    pub async fn upload_file(&self, file: &FileUpload<'_>) -> ClientResult<()> {
        let get = SlackApiFilesGetUploadUrlExternalRequest::new(
            file.filename.to_owned(),
            file.content.len(),
        );
        let url = self
            .call("files.getUploadURLExternal", || {
                self.transport.get_upload_url(&get)
            })
            .await?;
        let put = SlackApiFilesUploadViaUrlRequest::new(
            url.upload_url,
            file.content.to_vec(),
            file.content_type.to_owned(),
        );
        self.call("files.upload", || self.transport.upload(&put))
            .await?;
        let mut complete = SlackApiFilesCompleteUploadExternalRequest::new(vec![
            SlackApiFilesComplete::new(url.file_id).with_title(file.title.to_owned()),
        ])
        .with_channel_id(SlackChannelId(file.channel.to_owned()))
        .with_initial_comment(file.comment.to_owned());
        if let Some(ts) = file.thread_ts {
            complete = complete.with_thread_ts(SlackTs(ts.to_owned()));
        }
        self.call("files.completeUploadExternal", || {
            self.transport.complete_upload(&complete)
        })
        .await
        .map(|_| ())
    }

    /// `views.open`: shows `view` to the user whose click gave `trigger_id`.
    pub async fn open_view(&self, trigger_id: &str, view: SlackView) -> ClientResult<()> {
        let req = SlackApiViewsOpenRequest::new(SlackTriggerId(trigger_id.to_owned()), view);
        self.call("views.open", || self.transport.views_open(&req))
            .await
            .map(|_| ())
    }
}
