//! [`ChatEngine`]: the conversation, platform-neutral. Surfaces hand it parsed commands and
//! button presses with a [`ChatContext`]; it calls [`Vigilo`] and answers with [`Reply`]s.
//!
//! Every handler returns replies and never fails: a refused or failed service call becomes a
//! private reply that says what to do (a denial names the role needed, a stale click names who
//! acted first), and nothing else is posted.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use vigilo_core::audit::Origin;
use vigilo_core::error::Error;
use vigilo_core::execution::machine::Command as StepCommand;
use vigilo_core::execution::{ChannelRef, Drift, EventKind, Execution, ExecutionSummary};
use vigilo_core::ids::{Key, UserId};
use vigilo_core::service::{ActOutcome, ListRunbooks, StartOptions, Vigilo, Who};
use vigilo_core::store::ExecutionQuery;
use vigilo_core::workspace::ChatIdentity;

use super::cards::{self, Outcome};
use super::command::{Command, parse};
use super::errors::{error_reply, parse_error_reply};
use super::format::Names;
use super::limits::fit_reply;
use super::markdown::escape_markdown;
use super::reply::{
    ACTION_ABORT, ACTION_APPROVE, ACTION_DIFF, ACTION_DONE, ACTION_FAIL, ACTION_NOTE,
    ACTION_REPORT, ACTION_RETRY, ACTION_SKIP, Anchor, ButtonValue, Reply, Target,
};
use super::views;

/// Who acts, from where: the acting user and the channel the conversation happens in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatContext {
    /// The acting user in their workspace.
    pub who: Who,
    /// The platform (`slack`, `console`).
    pub platform: String,
    /// The platform's channel id; executions started here are "open in this channel".
    pub channel: String,
    /// Who is really behind the request (Slack: the signed team and user), recorded in every
    /// audit entry the request writes; `None` keeps the engine's own.
    pub origin: Option<Origin>,
}

impl ChatContext {
    /// A context for `who` in `channel` of `platform`.
    pub fn new(who: Who, platform: impl Into<String>, channel: impl Into<String>) -> Self {
        Self {
            who,
            platform: platform.into(),
            channel: channel.into(),
            origin: None,
        }
    }

    /// The same context, recording `origin` in the audit entries its commands write.
    pub fn with_origin(mut self, origin: Origin) -> Self {
        self.origin = Some(origin);
        self
    }

    /// The channel as the core records it on executions.
    pub fn channel_ref(&self) -> ChannelRef {
        ChannelRef {
            platform: self.platform.clone(),
            channel: self.channel.clone(),
        }
    }
}

/// The platform-neutral chat engine.
#[derive(Clone, Debug)]
pub struct ChatEngine {
    vigilo: Vigilo,
    handles: Arc<Handles>,
}

/// How many user handles [`Handles`] keeps at most (it is emptied when full).
const HANDLES_CAPACITY: usize = 10_000;

/// Handles of the users cards name, read from the store once per user: a user's handle never
/// changes (the service renames nobody; a user found again by handle keeps it), so a step
/// card does not cost a store read for its operator's name. Only names are kept: roles and
/// membership are read by the service at every action.
#[derive(Debug, Default)]
struct Handles(Mutex<HashMap<UserId, String>>);

impl Handles {
    fn get(&self, id: UserId) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    fn put(&self, id: UserId, handle: String) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= HANDLES_CAPACITY {
            map.clear();
        }
        map.insert(id, handle);
    }
}

impl ChatEngine {
    /// An engine over `vigilo`.
    pub fn new(vigilo: Vigilo) -> Self {
        Self {
            vigilo,
            handles: Arc::default(),
        }
    }

    /// The service the engine calls.
    pub fn vigilo(&self) -> &Vigilo {
        &self.vigilo
    }

    /// Parses `text` (with or without `/runbook`) and handles it; a text that does not parse
    /// gets a private reply with the usage meant.
    pub async fn handle_text(&self, ctx: &ChatContext, text: &str) -> Vec<Reply> {
        match parse(text) {
            Ok(cmd) => self.handle(ctx, cmd).await,
            Err(e) => finish(vec![parse_error_reply(&e)]),
        }
    }

    /// Handles one command.
    pub async fn handle(&self, ctx: &ChatContext, cmd: Command) -> Vec<Reply> {
        tracing::debug!(command = %cmd.subcommand(), channel = %ctx.channel, "chat command");
        let replies = match self.dispatch(ctx, cmd).await {
            Ok(r) => r,
            Err(e) => vec![error_reply(&e)],
        };
        finish(replies)
    }

    /// Handles a button press: `action_id` and `value` as the button carried them, `text` the
    /// reason or note the surface asked for (Skip…, Failed…, Abort…).
    pub async fn click(
        &self,
        ctx: &ChatContext,
        action_id: &str,
        value: &str,
        text: Option<String>,
    ) -> Vec<Reply> {
        tracing::debug!(action_id, value, channel = %ctx.channel, "chat click");
        let Ok(v) = value.parse::<ButtonValue>() else {
            return finish(vec![private(
                "This button is not valid any more; `status` shows where the execution stands.",
            )]);
        };
        if action_id == ACTION_REPORT {
            let replies = match self.report(ctx, Some(v.execution)).await {
                Ok(r) => r,
                Err(e) => vec![error_reply(&e)],
            };
            return finish(replies);
        }
        let text = text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        let step = v.step.unwrap_or(0);
        if action_id == ACTION_DIFF {
            return finish(match self.drift_diff(ctx, v.execution).await {
                Ok(r) => vec![r],
                Err(e) => vec![error_reply(&e)],
            });
        }
        if action_id == ACTION_NOTE {
            let Some(note) = text else {
                return finish(vec![private(
                    "A note is required; press Note… again and write one. Nothing changed.",
                )]);
            };
            let noted = self
                .via(ctx)
                .add_note(&ctx.who, v.execution, v.step, &note, v.rev)
                .await;
            return finish(match noted {
                Ok(o) => self.after_act(ctx, &o).await,
                Err(e) => vec![error_reply(&e)],
            });
        }
        let needs_step = action_id != ACTION_ABORT;
        if needs_step && v.step.is_none() {
            return finish(vec![private(
                "This button does not name a step; `status` shows where the execution stands.",
            )]);
        }
        let cmd = match action_id {
            ACTION_DONE => StepCommand::Done { step, note: text },
            ACTION_APPROVE => StepCommand::Approve { step },
            ACTION_RETRY => StepCommand::Retry { step },
            ACTION_SKIP => match text {
                Some(reason) => StepCommand::Skip { step, reason },
                None => {
                    return finish(vec![private(
                        "A skip reason is required; press Skip… again and give one. Nothing changed.",
                    )]);
                }
            },
            ACTION_FAIL => match text {
                Some(note) => StepCommand::Fail { step, note },
                None => {
                    return finish(vec![private(
                        "A failure note is required; press Failed… again and say what went wrong. Nothing changed.",
                    )]);
                }
            },
            ACTION_ABORT => match text {
                Some(reason) => StepCommand::Abort { reason },
                None => {
                    return finish(vec![private(
                        "An abort reason is required; press Abort… again and give one. Nothing changed.",
                    )]);
                }
            },
            other => {
                tracing::debug!(action_id = other, "unknown action");
                return finish(vec![private(
                    "This button is not one Vigilo knows; nothing changed.",
                )]);
            }
        };
        finish(self.act(ctx, v.execution, cmd).await)
    }

    /// The service that records `ctx`'s origin in the entries it writes.
    fn via(&self, ctx: &ChatContext) -> Vigilo {
        match &ctx.origin {
            Some(o) => self.vigilo.acting_via(o.clone()),
            None => self.vigilo.clone(),
        }
    }

    async fn dispatch(&self, ctx: &ChatContext, cmd: Command) -> Result<Vec<Reply>, Error> {
        let who = &ctx.who;
        Ok(match cmd {
            Command::Help { topic } => vec![views::help(topic)],
            Command::List { category } => {
                let ws = self.vigilo.workspace_of(who).await?;
                let list = self
                    .vigilo
                    .list_runbooks(
                        who,
                        ListRunbooks {
                            category: category.clone(),
                            drafts: true,
                            ..Default::default()
                        },
                    )
                    .await?;
                let (title, empty) = match &category {
                    Some(c) => (
                        format!("Runbooks in {c}"),
                        format!("No runbooks in category `{c}`; `list` shows all of them."),
                    ),
                    None => (
                        format!("Runbooks of {}", ws.slug),
                        "No runbooks yet.".to_owned(),
                    ),
                };
                vec![views::runbook_list(&title, &list, &empty)]
            }
            Command::Search { words } => {
                let found = self.vigilo.search_runbooks(who, &words, 20).await?;
                vec![views::runbook_list(
                    &format!("Search: {words}"),
                    &found,
                    "Nothing matches; try other words, or `list`.",
                )]
            }
            Command::Show { runbook } => {
                let rb = self.vigilo.runbook(who, runbook).await?;
                let owner = self.handle_of(rb.owner).await;
                vec![views::runbook(&rb, &owner)]
            }
            Command::History { runbook } => {
                let rb = self.vigilo.runbook(who, runbook).await?;
                let versions = self.vigilo.runbook_history(who, runbook).await?;
                vec![views::history(&rb, &versions)]
            }
            Command::Diff { runbook, from, to } => {
                let rb = self.vigilo.runbook(who, runbook).await?;
                let d = self.vigilo.diff_runbook(who, runbook, from, to).await?;
                vec![views::diff(&rb, &d)]
            }
            Command::Publish { runbook } => self.publish(ctx, runbook).await?,
            Command::Stats { runbook } => {
                let stats = self
                    .vigilo
                    .runbook_stats(who, runbook, vigilo_core::analytics::StatsQuery::default())
                    .await?;
                vec![super::stats::reply(&stats)]
            }
            Command::Run {
                runbook,
                change,
                incident,
                rehearsal,
            } => {
                let exec = self
                    .via(ctx)
                    .start_execution(
                        who,
                        runbook,
                        StartOptions {
                            change,
                            incident,
                            rehearsal,
                            channel: Some(ctx.channel_ref()),
                        },
                    )
                    .await?;
                self.started(&exec).await
            }
            Command::Status { execution } => self.status(ctx, execution).await?,
            Command::Report { execution } => self.report(ctx, execution).await?,
            Command::Done { execution, note } => {
                self.act_on_open(ctx, execution, |step| StepCommand::Done { step, note })
                    .await?
            }
            Command::Skip { execution, reason } => {
                self.act_on_open(ctx, execution, |step| StepCommand::Skip { step, reason })
                    .await?
            }
            Command::Fail { execution, note } => {
                self.act_on_open(ctx, execution, |step| StepCommand::Fail { step, note })
                    .await?
            }
            Command::Approve { execution } => {
                self.act_on_open(ctx, execution, |step| StepCommand::Approve { step })
                    .await?
            }
            Command::Retry { execution } => {
                self.act_on_open(ctx, execution, |step| StepCommand::Retry { step })
                    .await?
            }
            Command::Abort { execution, reason } => {
                self.act_on_open(ctx, execution, |_| StepCommand::Abort { reason })
                    .await?
            }
            Command::Note {
                execution,
                step,
                text,
            } => {
                let exec = match self.find_open(ctx, execution, "note").await? {
                    Ok(e) => e,
                    Err(replies) => return Ok(replies),
                };
                let o = self
                    .via(ctx)
                    .add_note(who, exec.key, step, &text, Some(exec.rev))
                    .await?;
                self.after_act(ctx, &o).await
            }
            Command::Handoff { execution, to } => {
                let exec = match self.find_open(ctx, execution, "handoff").await? {
                    Ok(e) => e,
                    Err(replies) => return Ok(replies),
                };
                let handle = self.member_handle(ctx, &to).await?;
                let o = self.via(ctx).hand_over(who, exec.key, &handle).await?;
                self.after_act(ctx, &o).await
            }
            Command::Takeover { execution } => {
                let exec = match self.find_open(ctx, execution, "takeover").await? {
                    Ok(e) => e,
                    Err(replies) => return Ok(replies),
                };
                let o = self.via(ctx).take_over(who, exec.key).await?;
                self.after_act(ctx, &o).await
            }
        })
    }

    /// The handle a `handoff` names: `@handle`, `handle`, or a platform mention (`<@U123>`,
    /// `<@U123|name>`) resolved through this workspace's chat identities.
    async fn member_handle(&self, ctx: &ChatContext, to: &str) -> Result<String, Error> {
        let Some(id) = to
            .strip_prefix("<@")
            .and_then(|m| m.strip_suffix('>'))
            .map(|m| m.split('|').next().unwrap_or(m))
        else {
            return Ok(to.trim_start_matches('@').to_owned());
        };
        let (user, _) = self
            .vigilo
            .member_for_chat(
                ctx.who.workspace,
                &ChatIdentity {
                    platform: ctx.platform.clone(),
                    user: id.to_owned(),
                },
            )
            .await?;
        Ok(user.handle.to_string())
    }

    /// The private diff between a run's version and the newest published one (the header's
    /// Diff button), or why there is none.
    async fn drift_diff(&self, ctx: &ChatContext, key: Key) -> Result<Reply, Error> {
        let exec = self.vigilo.execution(&ctx.who, key).await?;
        Ok(match self.vigilo.drift_of(&ctx.who, &exec).await? {
            Some(d) => views::drift_diff(&exec, &d),
            None => private(&format!(
                "{key} runs {} v{}, the newest published version; there is nothing to compare.",
                exec.runbook_key, exec.runbook_version
            )),
        })
    }

    /// The drift of `exec`, or `None` when it cannot be read (it is advisory: a failed read
    /// never hides the answer to the command).
    async fn drift(&self, ctx: &ChatContext, exec: &Execution) -> Option<Drift> {
        self.vigilo.drift_of(&ctx.who, exec).await.ok().flatten()
    }

    async fn publish(&self, ctx: &ChatContext, key: Key) -> Result<Vec<Reply>, Error> {
        let who = &ctx.who;
        let before = self.vigilo.runbook(who, key).await?;
        if before.is_published {
            return Ok(vec![private(&format!(
                "{key} is already published (v{}).",
                before.version
            ))]);
        }
        let rb = self.via(ctx).set_published(who, key, true).await?;
        let actor = self.handle_of(who.user).await;
        let text = format!(
            "@{actor} published {key} v{}: {}",
            rb.version, rb.body.title
        );
        Ok(vec![Reply::public(
            text,
            vec![super::reply::Block::Section(format!(
                "{} published **{key}** v{}: {}. `run {key}` starts it.",
                escape_markdown(&format!("@{actor}")),
                rb.version,
                escape_markdown(rb.body.title.as_str())
            ))],
        )])
    }

    /// How a sealed run compares with its runbook's typical run, read as its operator (who
    /// may view the runbook); nothing when that cannot be read.
    async fn typical(
        &self,
        exec: &Execution,
        summary: &ExecutionSummary,
    ) -> Option<vigilo_core::analytics::Typical> {
        let who = Who::new(exec.workspace, exec.operator);
        match self.vigilo.typical_run(&who, exec, summary).await {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(error = %e, "no typical run to compare with");
                None
            }
        }
    }

    /// The header and first step card of a new execution.
    async fn started(&self, exec: &Execution) -> Vec<Reply> {
        let names = self.names(exec).await;
        let summary = ExecutionSummary::of(exec, self.vigilo.now());
        let mut out = vec![
            cards::execution_header(exec, &names, &summary, None)
                .with_anchor(Anchor::Execution(exec.key)),
        ];
        match exec.current_index() {
            Some(i) => out.extend(self.card(exec, i, &names)),
            None => out.push(
                cards::summary(
                    exec,
                    &summary,
                    &names,
                    self.typical(exec, &summary).await.as_ref(),
                )
                .with_target(Target::Thread(Anchor::Execution(exec.key))),
            ),
        }
        out
    }

    /// The messages of step `idx`, threaded under the header: the step's text when it needs
    /// messages of its own, then the active card (anchored: it is updated when acted on).
    fn card(&self, exec: &Execution, idx: usize, names: &Names) -> Vec<Reply> {
        let mut out: Vec<Reply> = cards::step_messages(exec, idx, names)
            .into_iter()
            .map(|r| r.with_target(Target::Thread(Anchor::Execution(exec.key))))
            .collect();
        if let Some(card) = out.last_mut() {
            card.anchor = Some(step_anchor(exec.key, idx));
        }
        out
    }

    async fn status(&self, ctx: &ChatContext, named: Option<Key>) -> Result<Vec<Reply>, Error> {
        let execs = match named {
            Some(k) => vec![self.vigilo.execution(&ctx.who, k).await?],
            None => {
                self.vigilo
                    .executions_in_channel(&ctx.who, ctx.channel_ref())
                    .await?
            }
        };
        let mut names = Names::default();
        let mut drifts = Vec::with_capacity(execs.len());
        for e in &execs {
            self.add_names(&mut names, e).await;
            drifts.push(self.drift(ctx, e).await);
        }
        let mut out = vec![views::status(&execs, &names, &drifts)];
        // With one execution in view, show its current card again (privately) so its buttons
        // are at hand; updates still go to the card in the thread.
        if let [exec] = execs.as_slice()
            && let Some(i) = exec.current_index()
        {
            out.extend(
                cards::step_messages(exec, i, &names)
                    .into_iter()
                    .map(|mut m| {
                        m.visibility = super::reply::Visibility::Private;
                        m
                    }),
            );
        }
        Ok(out)
    }

    /// The report of execution `named` (else the newest started in this channel, sealed or
    /// not), posted as a Markdown file in the run's thread.
    async fn report(&self, ctx: &ChatContext, named: Option<Key>) -> Result<Vec<Reply>, Error> {
        let key = match named {
            Some(k) => k,
            None => {
                let newest = self
                    .vigilo
                    .list_executions(
                        &ctx.who,
                        None,
                        ExecutionQuery {
                            channel: Some(ctx.channel_ref()),
                            limit: 1,
                            ..Default::default()
                        },
                    )
                    .await?;
                match newest.first() {
                    Some(e) => e.key,
                    None => {
                        return Ok(vec![private(
                            "No execution was started in this channel; name one: `report EX-…`.",
                        )]);
                    }
                }
            }
        };
        let report = self.vigilo.execution_report(&ctx.who, key).await?;
        let who = self.handle_of(ctx.who.user).await;
        Ok(vec![views::report(&report, &who)])
    }

    /// Finds the execution a typed step command means and applies it to its current step.
    async fn act_on_open(
        &self,
        ctx: &ChatContext,
        named: Option<Key>,
        make: impl FnOnce(u32) -> StepCommand,
    ) -> Result<Vec<Reply>, Error> {
        let exec = match self.find_open(ctx, named, "done").await? {
            Ok(e) => e,
            Err(replies) => return Ok(replies),
        };
        // A sealed execution has no current step; naming its last one lets the service explain.
        let step = exec
            .current_index()
            .map(|i| i as u32 + 1)
            .unwrap_or(exec.steps.len().max(1) as u32);
        Ok(self.act(ctx, exec.key, make(step)).await)
    }

    /// The execution a typed command means: the one named, else the one open in this channel.
    /// When none or several are open, the replies that say so (`word` is the command word the
    /// example names).
    async fn find_open(
        &self,
        ctx: &ChatContext,
        named: Option<Key>,
        word: &str,
    ) -> Result<Result<Execution, Vec<Reply>>, Error> {
        Ok(Ok(match named {
            Some(k) => self.vigilo.execution(&ctx.who, k).await?,
            None => {
                let mut open = self
                    .vigilo
                    .executions_in_channel(&ctx.who, ctx.channel_ref())
                    .await?;
                match open.len() {
                    0 => {
                        return Ok(Err(vec![private(&format!(
                            "No execution is open in this channel. Start one with `run RB-…`, or name one: `{word} EX-…`."
                        ))]));
                    }
                    1 => open.remove(0),
                    _ => {
                        let mut names = Names::default();
                        for e in &open {
                            self.add_names(&mut names, e).await;
                        }
                        let lines: Vec<String> = open
                            .iter()
                            .map(|e| views::execution_line(e, &names))
                            .collect();
                        let first = open.first().map(|e| e.key.to_string()).unwrap_or_default();
                        let text = format!(
                            "{} are open in this channel; name the one you mean right after the command word, e.g. `{word} {first}`.",
                            views::plural(open.len(), "execution")
                        );
                        return Ok(Err(vec![Reply::private(
                            text.clone(),
                            vec![
                                super::reply::Block::Section(text),
                                super::reply::Block::Section(lines.join("\n\n")),
                            ],
                        )]));
                    }
                }
            }
        }))
    }

    /// Applies a step command and answers with the updated card, the next card, and on seal the
    /// summary and the updated header; or with one private error reply.
    async fn act(&self, ctx: &ChatContext, execution: Key, cmd: StepCommand) -> Vec<Reply> {
        match self.via(ctx).act(&ctx.who, execution, cmd).await {
            Ok(outcome) => self.after_act(ctx, &outcome).await,
            Err(e) => vec![error_reply(&e)],
        }
    }

    /// The card of `exec`'s current step, as an update of the card in place: what a surface
    /// shows when the step changed without a click here (approvals lapsed, recorded by a read
    /// in the background). `None` when no step is current.
    pub async fn current_card_update(&self, exec: &Execution) -> Vec<Reply> {
        let Some(i) = exec.current_index() else {
            return Vec::new();
        };
        let names = self.names(exec).await;
        finish(vec![
            cards::step_card(exec, i, &names)
                .with_target(Target::Update(step_anchor(exec.key, i)))
                .with_anchor(step_anchor(exec.key, i)),
        ])
    }

    async fn after_act(&self, ctx: &ChatContext, outcome: &ActOutcome) -> Vec<Reply> {
        let exec = &outcome.execution;
        let event = &outcome.event;
        let mut names = self.names(exec).await;
        let summary = ExecutionSummary::of(exec, self.vigilo.now());
        let idx = event.step_order.map(|o| o as usize - 1);
        let mut out = Vec::new();
        match (event.kind, idx) {
            (EventKind::Noted, Some(i)) => {
                // In the run's thread for everyone, and on the step's card if it has one.
                if let Some(note) = exec.steps.get(i).and_then(|s| s.notes.last()) {
                    out.push(
                        cards::note_posted(exec, i, note, &names)
                            .with_target(Target::Thread(Anchor::Execution(exec.key))),
                    );
                }
                if let Some(card) = self.card_of(exec, i, &names, &summary) {
                    out.push(
                        card.with_target(Target::Refresh(step_anchor(exec.key, i)))
                            .with_anchor(step_anchor(exec.key, i)),
                    );
                }
            }
            (EventKind::HandedOver | EventKind::TakenOver, _) => {
                if let Some(to) = event.to {
                    self.add_names(&mut names, exec).await;
                    if !names.contains(to)
                        && let Some(h) = self.cached_handle(to).await
                    {
                        names.insert(to, h);
                    }
                }
                out.push(
                    cards::handed_over(exec, event, &names)
                        .with_target(Target::Thread(Anchor::Execution(exec.key))),
                );
                out.push(
                    cards::execution_header(
                        exec,
                        &names,
                        &summary,
                        self.drift(ctx, exec).await.as_ref(),
                    )
                    .with_target(Target::Update(Anchor::Execution(exec.key)))
                    .with_anchor(Anchor::Execution(exec.key)),
                );
                return out;
            }
            (EventKind::Approved | EventKind::Failed | EventKind::Retried, Some(i)) => {
                out.push(
                    cards::step_card(exec, i, &names)
                        .with_target(Target::Update(step_anchor(exec.key, i)))
                        .with_anchor(step_anchor(exec.key, i)),
                );
            }
            (EventKind::Done | EventKind::Skipped, Some(i)) => {
                out.push(
                    cards::acted_card(exec, i, &names, &summary, Outcome::Finished)
                        .with_target(Target::Update(step_anchor(exec.key, i)))
                        .with_anchor(step_anchor(exec.key, i)),
                );
                if let Some(next) = exec.current_index() {
                    out.extend(self.card(exec, next, &names));
                }
            }
            (EventKind::Aborted, Some(i)) => {
                out.push(
                    cards::acted_card(
                        exec,
                        i,
                        &names,
                        &summary,
                        Outcome::Aborted {
                            by: event.actor,
                            at: event.at,
                        },
                    )
                    .with_target(Target::Update(step_anchor(exec.key, i)))
                    .with_anchor(step_anchor(exec.key, i)),
                );
            }
            _ => {}
        }
        if event.kind == EventKind::Noted {
            return out;
        }
        if exec.status.is_sealed() {
            out.push(
                cards::summary(
                    exec,
                    &summary,
                    &names,
                    self.typical(exec, &summary).await.as_ref(),
                )
                .with_target(Target::Thread(Anchor::Execution(exec.key))),
            );
            out.push(
                cards::execution_header(exec, &names, &summary, None)
                    .with_target(Target::Update(Anchor::Execution(exec.key)))
                    .with_anchor(Anchor::Execution(exec.key)),
            );
        } else if let Some(d) = self.drift(ctx, exec).await {
            // A newer version was published under the run: its header says so, where the
            // surface knows the header (never as a new message).
            out.push(
                cards::execution_header(exec, &names, &summary, Some(&d))
                    .with_target(Target::Refresh(Anchor::Execution(exec.key)))
                    .with_anchor(Anchor::Execution(exec.key)),
            );
        }
        out
    }

    /// The card step `idx` shows now, if it has one: the active card while current, the
    /// compact card once acted on; none for a step not reached.
    fn card_of(
        &self,
        exec: &Execution,
        idx: usize,
        names: &Names,
        summary: &ExecutionSummary,
    ) -> Option<Reply> {
        let step = exec.steps.get(idx)?;
        if exec.current_index() == Some(idx) {
            return Some(cards::step_card(exec, idx, names));
        }
        // The step a run was aborted at keeps the card that says who aborted it (the note is
        // in the thread).
        step.status
            .is_complete()
            .then(|| cards::acted_card(exec, idx, names, summary, Outcome::Finished))
    }

    /// `handle` of a user (without `@`), or `someone`.
    async fn handle_of(&self, user: UserId) -> String {
        self.cached_handle(user)
            .await
            .unwrap_or_else(|| "someone".to_owned())
    }

    /// `handle` of a user (without `@`), from [`Handles`] or the store; `None` if it cannot be
    /// read.
    async fn cached_handle(&self, user: UserId) -> Option<String> {
        if let Some(h) = self.handles.get(user) {
            return Some(h);
        }
        let handle = self
            .vigilo
            .store()
            .user(user)
            .await
            .ok()?
            .handle
            .to_string();
        self.handles.put(user, handle.clone());
        Some(handle)
    }

    async fn names(&self, exec: &Execution) -> Names {
        let mut names = Names::default();
        self.add_names(&mut names, exec).await;
        names
    }

    /// Resolves the handles of everyone an execution mentions.
    async fn add_names(&self, names: &mut Names, exec: &Execution) {
        let mut ids: HashSet<UserId> = HashSet::new();
        ids.insert(exec.operator);
        for h in &exec.handoffs {
            ids.extend([h.from, h.to, h.by]);
        }
        for s in &exec.steps {
            ids.extend(s.actor);
            ids.extend(s.approvals.iter().chain(&s.lapsed).map(|a| a.by));
            ids.extend(s.notes.iter().map(|n| n.author));
        }
        for id in ids {
            if names.contains(id) {
                continue;
            }
            if let Some(handle) = self.cached_handle(id).await {
                names.insert(id, handle);
            }
        }
    }
}

fn step_anchor(execution: Key, idx: usize) -> Anchor {
    Anchor::StepCard {
        execution,
        step: idx as u32 + 1,
    }
}

/// A private reply of one markdown text (given with backtick code spans).
fn private(text: &str) -> Reply {
    Reply::private_markdown(
        super::markdown::escape_markdown_keeping_code(text),
        text.to_owned(),
    )
}

/// Applies the platform limits to every reply.
fn finish(replies: Vec<Reply>) -> Vec<Reply> {
    replies.into_iter().flat_map(fit_reply).collect()
}
