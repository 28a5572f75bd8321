//! Executions: start, act on steps, read, summarise.

use serde_json::json;

use super::runbooks::subject;
use super::{CONFLICT_RETRIES, Vigilo, Who, fmt_time};
use crate::audit::{AuditDraft, AuditLinks};
use crate::authz::{Action, Subject};
use crate::error::{ConflictKind, Error, ExecFailure, Result, Rule, Thing};
use crate::execution::machine::{self, Command, ExecError, StartParams};
use crate::execution::{ChannelRef, EventKind, Execution, ExecutionSummary, StepEvent};
use crate::ids::{Key, KeyKind, WorkspaceId};
use crate::incident::IncidentStatus;
use crate::runbook::no_steps_message;
use crate::store::{ExecutionQuery, StoreError, Write};

/// Options for starting an execution.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// Link an open change (`CR-…`).
    pub change: Option<Key>,
    /// Link an open incident (`INC-…`).
    pub incident: Option<Key>,
    /// A practice run: allowed on drafts for anyone who may view the runbook, and left out of
    /// timing analytics.
    pub rehearsal: bool,
    /// The chat channel it is started from.
    pub channel: Option<ChannelRef>,
}

/// The result of an accepted step command.
#[derive(Clone, Debug)]
pub struct ActOutcome {
    /// The execution after the command.
    pub execution: Execution,
    /// The event it produced.
    pub event: StepEvent,
}

/// The service's answer to a failed read of execution `key`: a missing one is named, with
/// where to look.
fn execution_not_found(e: StoreError, key: Key) -> Error {
    match e {
        StoreError::NotFound(_) => Error::not_found(
            Thing::Execution,
            key.to_string(),
            format!("no execution {key} in this workspace"),
        ),
        other => other.into(),
    }
}

impl Vigilo {
    pub(super) async fn load_execution(&self, who: &Who, key: Key) -> Result<Execution> {
        if key.kind != KeyKind::Execution {
            return Err(Error::wrong_key(key, "an execution"));
        }
        let exec = self
            .store
            .execution_by_key(who.workspace, key)
            .await
            .map_err(|e| execution_not_found(e, key))?;
        self.record_lapses(who.workspace, exec).await
    }

    /// Records every approval of `exec` that has lapsed by now (`approval-expires`), each as
    /// one commit: its `approval_expired` event and one audit entry
    /// `execution.approval_expired`, made by no member (the rule lapsed it) and naming whose
    /// approval it was. Returns the execution as it then stands.
    ///
    /// Exactly once across processes and replicas: every reader past the moment builds the same
    /// event, the store's revision check lets one commit it, and the others re-read and find it
    /// recorded. Called on every read of one execution and before every command.
    pub(super) async fn record_lapses(
        &self,
        ws: WorkspaceId,
        mut exec: Execution,
    ) -> Result<Execution> {
        // Each turn records one lapse or re-reads after losing a race; a step holds at most
        // `MAX_APPROVALS` approvals.
        let turns = crate::runbook::approval::MAX_APPROVALS as usize + CONFLICT_RETRIES;
        for _ in 0..turns {
            let now = self.now();
            let Some(t) = machine::lapse(&exec, now) else {
                return Ok(exec);
            };
            let draft = self.lapse_draft(&exec, &t, now).await;
            let writes = vec![
                Write::Execution {
                    execution: t.execution.clone(),
                    expected_rev: Some(exec.rev),
                },
                Write::StepEvent(t.event.clone()),
            ];
            let commit = crate::store::Commit {
                workspace: ws,
                writes,
                audit: draft,
                acting: None,
            };
            match self.store.commit(commit).await {
                Ok(_) => exec = t.execution,
                Err(StoreError::Conflict(_) | StoreError::AlreadyExists(_)) => {
                    // Another process recorded it (or moved the run): read what it wrote.
                    exec = self
                        .store
                        .execution_by_key(ws, exec.key)
                        .await
                        .map_err(|e| execution_not_found(e, exec.key))?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::conflict(
            exec.key.to_string(),
            ConflictKind::Concurrent,
            format!(
                "{} is being changed by many people at once; try again",
                exec.key
            ),
        ))
    }

    /// The audit entry of a lapse: no acting member; whose approval lapsed, with the role it
    /// was given with, when it was given and when it lapsed, and what the step still lacks.
    async fn lapse_draft(
        &self,
        exec: &Execution,
        t: &machine::Transition,
        now: chrono::DateTime<chrono::Utc>,
    ) -> AuditDraft {
        let order = t.event.step_order.unwrap_or(0);
        let step = t.execution.steps.get((order as usize).saturating_sub(1));
        let lapsed = step.and_then(|s| s.lapsed.last());
        AuditDraft {
            at: now,
            actor: None,
            actor_handle: None,
            action: EventKind::ApprovalExpired.audit_action().to_owned(),
            target: exec.key.to_string(),
            details: json!({
                "step": order,
                "step_title": step.map(|s| s.step.title.to_string()),
                "approver": self.handle_of(t.event.actor).await.trim_start_matches('@'),
                "approver_role": lapsed.map(|a| a.satisfied_as.clone()),
                "approved_at": lapsed.map(|a| a.at),
                "expired_at": t.event.at,
                "expires_minutes": step
                    .and_then(|s| s.step.approval_expires_minutes)
                    .map(|m| m.minutes()),
                "approvals": step.map(|s| s.approvals.len()),
                "approvals_required": step.map(|s| s.step.approvals_needed()),
            }),
            links: AuditLinks {
                runbook: Some(exec.runbook_key),
                runbook_version: Some(exec.runbook_version),
                change: exec.change,
                incident: exec.incident,
                execution: Some(exec.key),
            },
            origin: Some(self.origin().clone()),
        }
    }

    /// Starts an execution: snapshots the runbook's current version and steps.
    pub async fn start_execution(
        &self,
        who: &Who,
        runbook: Key,
        opts: StartOptions,
    ) -> Result<Execution> {
        let actor = self.actor(who).await?;
        let rb = self.load_runbook(who, runbook).await?;
        if opts.rehearsal {
            self.check(&actor, Action::RehearseRunbook, &subject(&rb))?;
        } else {
            self.check(&actor, Action::ExecuteRunbook, &Subject::NONE)?;
            self.check(&actor, Action::ViewRunbook, &subject(&rb))?;
        }
        if rb.archived_at.is_some() {
            return Err(Error::refused(
                Rule::Archived,
                format!("{runbook} is archived; archived runbooks cannot be executed"),
            ));
        }
        if rb.body.has_no_steps() {
            return Err(Error::refused(
                Rule::NoSteps,
                no_steps_message(&runbook.to_string()),
            ));
        }
        if !rb.is_published && !opts.rehearsal {
            return Err(Error::refused(
                Rule::Draft,
                format!("{runbook} is a draft; publish it first, or start a rehearsal"),
            ));
        }
        let change = match opts.change {
            Some(ck) => {
                let c = self.load_change(who, ck).await?;
                if c.status.is_final() {
                    return Err(Error::refused(
                        Rule::ChangeClosed,
                        format!(
                            "{ck} is {}; link an execution only to an open change",
                            c.status.as_str()
                        ),
                    ));
                }
                Some((c.key, c.id))
            }
            None => None,
        };
        if let Some(ik) = opts.incident {
            let inc = self.load_incident(who, ik).await?;
            if inc.status != IncidentStatus::Open {
                return Err(Error::refused(
                    Rule::IncidentResolved,
                    format!("{ik} is resolved; link an execution only to an open incident"),
                ));
            }
        }
        let key = self
            .store
            .allocate_key(who.workspace, KeyKind::Execution)
            .await?;
        let now = self.now();
        let t = machine::start(
            &rb,
            StartParams {
                key,
                operator: actor.id(),
                change,
                incident: opts.incident,
                rehearsal: opts.rehearsal,
                channel: opts.channel,
            },
            now,
        );
        let draft = self.draft(
            Some(&actor),
            now,
            "execution.started",
            key.to_string(),
            json!({
                "runbook": rb.key,
                "version": rb.version,
                "rehearsal": opts.rehearsal,
                "steps": rb.body.steps.len(),
                // Pins the content the run follows: a report checks the stored version
                // against it (see `report::version_hash`).
                "version_hash": crate::report::version_hash(&rb.body),
            }),
            AuditLinks {
                runbook: Some(rb.key),
                runbook_version: Some(rb.version),
                change: change.map(|c| c.0),
                incident: opts.incident,
                execution: Some(key),
            },
        );
        self.commit(
            &actor,
            vec![
                Write::Execution {
                    execution: t.execution.clone(),
                    expected_rev: None,
                },
                Write::StepEvent(t.event),
            ],
            draft,
        )
        .await?;
        Ok(t.execution)
    }

    /// Applies a command (done, skip, fail, approve, retry, abort, note, hand over, take
    /// over). Roles are checked now, at click time, against the operator of this moment. A command for a step that is no longer current changes nothing and says
    /// who acted on it and when, so double clicks and redeliveries apply once.
    pub async fn act(&self, who: &Who, execution: Key, cmd: Command) -> Result<ActOutcome> {
        for _ in 0..CONFLICT_RETRIES {
            // The reads an action checks against, at once (one round trip where the store
            // can). A non-member is refused before anything else is said.
            let reads = self
                .store
                .action_reads(who.workspace, who.user, execution)
                .await;
            let actor = Self::actor_from(reads.membership, reads.user)?;
            if execution.kind != KeyKind::Execution {
                return Err(Error::wrong_key(execution, "an execution"));
            }
            let exec = reads
                .execution
                .map_err(|e| execution_not_found(e, execution))?;
            // Lapses due by now are recorded first, so the command meets the step as it stands.
            let exec = self.record_lapses(who.workspace, exec).await?;
            let ws = reads.workspace;
            // The operator at this moment is the one that counts (after a hand-over, the new
            // one); approvals are the state machine's rule.
            let run = Subject {
                owner: Some(exec.operator),
                visibility: None,
            };
            match &cmd {
                Command::Approve { .. } => {}
                Command::HandOver { .. } => {
                    self.check(&actor, Action::HandOverExecution, &run)?;
                }
                Command::TakeOver => {
                    self.check(&actor, Action::TakeOverExecution, &Subject::NONE)?;
                }
                _ => self.check(&actor, Action::ActOnExecution, &run)?,
            }
            let ws = ws?;
            let now = self.now();
            let t = match machine::apply(&exec, &cmd, &actor, &ws.policy, now) {
                Ok(t) => t,
                Err(e) => return Err(self.explain(&exec, e).await),
            };
            let kind = t.event.kind;
            let action = kind.audit_action();
            let operators = match t.event.to {
                Some(to) => Some((
                    self.handle_of(exec.operator).await,
                    self.handle_of(to).await,
                )),
                None => None,
            };
            let step_title = t
                .event
                .step_order
                .and_then(|o| exec.steps.get(o as usize - 1))
                .map(|s| s.step.title.to_string());
            let mut details = json!({
                "step": t.event.step_order,
                "step_title": step_title,
                "note": t.event.note.as_ref().map(|n| n.as_str()),
                "sealed": t.execution.status.is_sealed().then(|| t.execution.status.as_str()),
                "approver_role": t.event.step_order
                    .and_then(|o| t.execution.steps.get(o as usize - 1))
                    .filter(|_| kind == EventKind::Approved)
                    .and_then(|s| s.approvals.last())
                    .map(|a| a.satisfied_as.clone()),
                "from": operators.as_ref().map(|o| o.0.as_str()),
                "to": operators.as_ref().map(|o| o.1.as_str()),
            });
            // A step asking for several approvals says how many stand after this one.
            if let Some(s) = t
                .event
                .step_order
                .and_then(|o| t.execution.steps.get(o as usize - 1))
                .filter(|s| kind == EventKind::Approved && s.step.approvals_needed() > 1)
                && let Some(obj) = details.as_object_mut()
            {
                obj.insert(
                    "approvals".into(),
                    json!(format!(
                        "{} of {}",
                        s.approvals.len(),
                        s.step.approvals_needed()
                    )),
                );
            }
            let draft = self.draft(
                Some(&actor),
                now,
                action,
                execution.to_string(),
                details,
                AuditLinks {
                    runbook: Some(exec.runbook_key),
                    runbook_version: Some(exec.runbook_version),
                    change: exec.change,
                    incident: exec.incident,
                    execution: Some(execution),
                },
            );
            let writes = vec![
                Write::Execution {
                    execution: t.execution.clone(),
                    expected_rev: Some(exec.rev),
                },
                Write::StepEvent(t.event.clone()),
            ];
            match self
                .store
                .commit(crate::store::Commit {
                    workspace: who.workspace,
                    writes,
                    audit: draft,
                    acting: Some(super::acting_member(&actor)),
                })
                .await
            {
                Ok(_) => {
                    return Ok(ActOutcome {
                        execution: t.execution,
                        event: t.event,
                    });
                }
                // Lost a race with another click: re-read and re-apply; the state machine then
                // explains what happened.
                Err(StoreError::Conflict(_)) | Err(StoreError::AlreadyExists(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::conflict(
            execution.to_string(),
            ConflictKind::Concurrent,
            format!("{execution} is being changed by many people at once; try again"),
        ))
    }

    /// Turns a state-machine refusal into a message that names people.
    pub(super) async fn explain(&self, exec: &Execution, e: ExecError) -> Error {
        let failure = |by_handle: Option<String>, message: String| {
            Error::Execution(ExecFailure::new(
                Some(exec.key),
                e.clone(),
                by_handle,
                message,
            ))
        };
        match &e {
            ExecError::NotCurrent {
                step,
                current,
                status,
                by: Some(by),
                at: Some(at),
            } => {
                let now_current = current
                    .map(|c| format!("; step {c} is current"))
                    .unwrap_or_default();
                let handle = self.handle_of(*by).await;
                let message = format!(
                    "step {step} of {} was already marked {} by {handle} at {}{now_current}; nothing changed",
                    exec.key,
                    status.as_str(),
                    fmt_time(*at)
                );
                failure(Some(handle), message)
            }
            ExecError::DuplicateNote { step, at } => {
                let message = format!(
                    "this note was already added to step {step} of {} at {}; nothing changed",
                    exec.key,
                    fmt_time(*at)
                );
                failure(None, message)
            }
            ExecError::AlreadyApproved { step, by, at } => {
                let handle = self.handle_of(*by).await;
                let message = format!(
                    "step {step} of {} was already approved by {handle} at {}; nothing changed",
                    exec.key,
                    fmt_time(*at)
                );
                failure(Some(handle), message)
            }
            ExecError::NeedsApproval {
                step,
                requirement,
                have,
                need,
            } if *need > 1 => {
                let given = match exec.steps.get((*step as usize).saturating_sub(1)) {
                    Some(s) => self.approvals_text(s).await,
                    None => format!("{have} of {need} approvals"),
                };
                let message = format!(
                    "step {step} of {} needs {need} distinct approvals by {requirement} before it can be marked done; it has {given}",
                    exec.key
                );
                failure(None, message)
            }
            ExecError::Sealed { key, status, at } => {
                let last = exec
                    .steps
                    .iter()
                    .filter_map(|s| s.actor.zip(s.completed_at))
                    .max_by_key(|(_, t)| *t);
                let handle = match last {
                    Some((u, _)) => Some(self.handle_of(u).await),
                    None => None,
                };
                let by = handle
                    .as_ref()
                    .map(|h| format!(", last step by {h}"))
                    .unwrap_or_default();
                let when = at
                    .map(|t| format!(" at {}", fmt_time(t)))
                    .unwrap_or_default();
                let message = format!(
                    "{key} is sealed ({status}{when}{by}); no further changes. Start a new execution to run the runbook again"
                );
                failure(handle, message)
            }
            _ => match Error::from(e.clone()) {
                Error::Execution(f) => {
                    let message = f.to_string();
                    failure(None, message)
                }
                other => other,
            },
        }
    }

    /// A step's approvals as the surfaces show them: `1 of 2 approvals (@carol)`, `no
    /// approvals yet`, `2 of 2 approvals (@carol, @dave)`; empty for a step without a gate.
    pub async fn approvals_text(&self, step: &crate::execution::ExecStep) -> String {
        let need = step.step.approvals_needed();
        if need == 0 {
            return String::new();
        }
        let mut handles = Vec::with_capacity(step.approvals.len());
        for a in &step.approvals {
            handles.push(self.handle_of(a.by).await);
        }
        crate::execution::approvals_summary(need, &handles)
    }

    /// An execution by key (any member).
    pub async fn execution(&self, who: &Who, key: Key) -> Result<Execution> {
        self.actor(who).await?;
        self.load_execution(who, key).await
    }

    /// An execution's events, in order.
    pub async fn execution_events(&self, who: &Who, key: Key) -> Result<Vec<StepEvent>> {
        let exec = self.execution(who, key).await?;
        Ok(self.store.step_events(who.workspace, exec.id).await?)
    }

    /// Actual vs estimated minutes per step and in total.
    pub async fn execution_summary(
        &self,
        who: &Who,
        key: Key,
    ) -> Result<(Execution, ExecutionSummary)> {
        let exec = self.execution(who, key).await?;
        let s = ExecutionSummary::of(&exec, self.now());
        Ok((exec, s))
    }

    /// Lists executions, newest first. `runbook` narrows to one runbook (and `query.runbook_version`
    /// to one of its versions: which executions ran v3).
    pub async fn list_executions(
        &self,
        who: &Who,
        runbook: Option<Key>,
        mut query: ExecutionQuery,
    ) -> Result<Vec<Execution>> {
        self.actor(who).await?;
        if let Some(k) = runbook {
            query.runbook = Some(self.load_runbook(who, k).await?.id);
        }
        Ok(self.store.list_executions(who.workspace, &query).await?)
    }

    /// The executions open in a chat channel, newest first.
    pub async fn executions_in_channel(
        &self,
        who: &Who,
        channel: ChannelRef,
    ) -> Result<Vec<Execution>> {
        self.list_executions(
            who,
            None,
            ExecutionQuery {
                open_only: true,
                channel: Some(channel),
                ..Default::default()
            },
        )
        .await
    }

    /// True when a change may start: its plan has no source runbook, or a live (not rehearsal)
    /// execution of that runbook linked to the change is running or completed.
    pub(crate) async fn change_gate_open(
        &self,
        who: &Who,
        change: &crate::change::ChangeRequest,
    ) -> Result<bool> {
        let Some(src) = &change.source else {
            return Ok(true);
        };
        let execs = self
            .store
            .list_executions(
                who.workspace,
                &ExecutionQuery {
                    runbook: Some(src.runbook),
                    change: Some(change.id),
                    limit: 500,
                    ..Default::default()
                },
            )
            .await?;
        Ok(execs.iter().any(|e| {
            !e.rehearsal
                && matches!(
                    e.status,
                    crate::execution::ExecutionStatus::Running
                        | crate::execution::ExecutionStatus::Completed
                )
        }))
    }
}
