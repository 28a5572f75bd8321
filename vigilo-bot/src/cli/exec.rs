//! `vigilo exec …`: start an execution, act on its steps (`--step N` names the step meant; when
//! it is not the current one nothing changes and the exit code is 5), note any step, hand it
//! over or take it over, show and list.

use clap::Subcommand;
use serde_json::{Value, json};
use vigilo_core::execution::{
    Command, Drift, EventKind, Execution, ExecutionStatus, ExecutionSummary, StepStatus,
};
use vigilo_core::ids::{Key, KeyKind};
use vigilo_core::service::{ActOutcome, StartOptions, Who};
use vigilo_core::store::ExecutionQuery;

use super::output::{Paint, Table, signed_minutes, time, time_opt};
use super::{CliError, Ctx, Ref, cr_ref, ex_ref, inc_ref, rb_ref, views};

/// `vigilo exec …`.
#[derive(Debug, Subcommand)]
pub enum ExecCmd {
    /// Start an execution of a published runbook (or a rehearsal of a draft).
    #[command(after_help = "Example:\n  vigilo --as bob exec start RB-00001 --change CR-00002")]
    Start {
        /// The runbook.
        #[arg(value_parser = rb_ref, value_name = "RB-…")]
        runbook: Ref,
        /// Link an open change.
        #[arg(long, value_parser = cr_ref, value_name = "CR-…")]
        change: Option<Ref>,
        /// Link an open incident.
        #[arg(long, value_parser = inc_ref, value_name = "INC-…")]
        incident: Option<Ref>,
        /// A practice run: allowed on drafts, left out of timing analytics.
        #[arg(long)]
        rehearsal: bool,
    },
    /// Mark the current step done.
    #[command(
        after_help = "Example:\n  vigilo --as bob exec done EX-00001 --step 2 --note 'all green'\n\nWith --step N, nothing changes (exit 5) unless step N is the current step."
    )]
    Done {
        /// The execution.
        #[arg(value_parser = ex_ref, value_name = "EX-…")]
        execution: Ref,
        /// The step meant (must be the current one).
        #[arg(long, value_name = "N")]
        step: Option<u32>,
        /// A note.
        #[arg(long)]
        note: Option<String>,
    },
    /// Skip the current step, with a reason.
    #[command(
        after_help = "Example:\n  vigilo --as bob exec skip EX-00001 --step 3 --reason 'cache already empty'"
    )]
    Skip {
        /// The execution.
        #[arg(value_parser = ex_ref, value_name = "EX-…")]
        execution: Ref,
        /// The step meant (must be the current one).
        #[arg(long, value_name = "N")]
        step: Option<u32>,
        /// Why (required).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Mark the current step failed, with a note.
    #[command(
        after_help = "Example:\n  vigilo --as bob exec fail EX-00001 --note 'proxy 3 refused the bundle'"
    )]
    Fail {
        /// The execution.
        #[arg(value_parser = ex_ref, value_name = "EX-…")]
        execution: Ref,
        /// The step meant (must be the current one).
        #[arg(long, value_name = "N")]
        step: Option<u32>,
        /// What went wrong (required).
        #[arg(long)]
        note: Option<String>,
    },
    /// Approve the current (gated) step.
    #[command(after_help = "Example:\n  vigilo --as carol exec approve EX-00001 --step 2")]
    Approve {
        /// The execution.
        #[arg(value_parser = ex_ref, value_name = "EX-…")]
        execution: Ref,
        /// The step meant (must be the current one).
        #[arg(long, value_name = "N")]
        step: Option<u32>,
    },
    /// Open a failed step again.
    #[command(after_help = "Example:\n  vigilo --as bob exec retry EX-00001 --step 2")]
    Retry {
        /// The execution.
        #[arg(value_parser = ex_ref, value_name = "EX-…")]
        execution: Ref,
        /// The step meant (must be the current one).
        #[arg(long, value_name = "N")]
        step: Option<u32>,
    },
    /// Abort the execution, with a reason (seals it).
    #[command(
        after_help = "Example:\n  vigilo --as bob exec abort EX-00001 --reason 'change window closed'"
    )]
    Abort {
        /// The execution.
        #[arg(value_parser = ex_ref, value_name = "EX-…")]
        execution: Ref,
        /// Why (required).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Add a note to a step (default: the current one; once sealed, the step it stopped at).
    /// The step's state does not change; sealed executions take notes too.
    #[command(
        after_help = "Example:\n  vigilo --as bob exec note EX-00001 --step 2 'proxy 3 was slow to reload'\n\nNotes are at most 2000 characters. Anyone who may act on the execution may add one."
    )]
    Note {
        /// The execution.
        #[arg(value_parser = ex_ref, value_name = "EX-…")]
        execution: Ref,
        /// The step noted (any step of the execution).
        #[arg(long, value_name = "N")]
        step: Option<u32>,
        /// The note (several words are joined with spaces).
        #[arg(value_name = "TEXT", required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Hand the execution to another member who may execute runbooks (its operator, an admin
    /// or the owner).
    #[command(
        after_help = "Example:\n  vigilo --as bob exec handoff EX-00001 --to erin\n\nFrom then on the new operator is the one that counts: for who may act on the steps, and for approvals (the operator may not approve their own gated steps)."
    )]
    Handoff {
        /// The execution.
        #[arg(value_parser = ex_ref, value_name = "EX-…")]
        execution: Ref,
        /// The new operator's handle.
        #[arg(long, value_name = "HANDLE")]
        to: String,
    },
    /// Become the execution's operator (admins and the owner), e.g. when its operator left.
    #[command(after_help = "Example:\n  vigilo --as alice exec takeover EX-00001")]
    Takeover {
        /// The execution.
        #[arg(value_parser = ex_ref, value_name = "EX-…")]
        execution: Ref,
    },
    /// Steps, who and when, actual vs estimated minutes, notes, hand-overs, and whether a newer
    /// version of the runbook was published since it started.
    #[command(after_help = "Example:\n  vigilo --as bob exec show EX-00001 --json")]
    Show {
        /// The execution.
        #[arg(value_parser = ex_ref, value_name = "EX-…")]
        execution: Ref,
    },
    /// The run as evidence: runbook version and its hash, operator, links, every step with
    /// who, when, minutes, notes and approvals, and the audit entries behind each line.
    #[command(
        after_help = "Examples:\n  vigilo --as bob exec report EX-00001 > EX-00001.md\n  vigilo --as bob exec report EX-00001 --format json -o EX-00001.json\n  vigilo audit verify --report EX-00001.md\n\nSealed or not; the report covers the audit trail up to its head, and `audit verify --report` checks every character of an md or json report against it."
    )]
    Report {
        /// The execution.
        #[arg(value_parser = ex_ref, value_name = "EX-…")]
        execution: Ref,
        /// md (default; json with --json), json or csv.
        #[arg(long, value_enum)]
        format: Option<super::report::ReportFormatArg>,
        /// Write to this file instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
    },
    /// List executions, newest first.
    #[command(after_help = "Example:\n  vigilo --as bob exec list --runbook RB-00001 --open")]
    List {
        /// Only executions of this runbook.
        #[arg(long, value_parser = rb_ref, value_name = "RB-…")]
        runbook: Option<Ref>,
        /// Only running ones.
        #[arg(long)]
        open: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

/// Runs an `exec` subcommand.
pub async fn dispatch(ctx: &Ctx, c: ExecCmd) -> Result<(), CliError> {
    let (_, who, _, _) = ctx.who().await?;
    match c {
        ExecCmd::Start {
            runbook,
            change,
            incident,
            rehearsal,
        } => {
            let exec = start(ctx, &who, runbook, change, incident, rehearsal).await?;
            let (exec, summary) = ctx.vigilo.execution_summary(&who, exec.key).await?;
            let doc = views::execution(ctx, &exec, &summary, None).await;
            ctx.out.emit(&doc, |p| {
                let mut s = format!(
                    "Started {} of {} v{}: {}",
                    p.bold(&exec.key.to_string()),
                    exec.runbook_key,
                    exec.runbook_version,
                    exec.title
                );
                if exec.rehearsal {
                    s.push_str(" (rehearsal)");
                }
                s.push('\n');
                s.push_str(&next_line(&exec));
                s
            })
        }
        ExecCmd::Done {
            execution,
            step,
            note,
        } => {
            act(ctx, &who, execution, step, |step| Command::Done {
                step,
                note,
            })
            .await
        }
        ExecCmd::Skip {
            execution,
            step,
            reason,
        } => {
            act(ctx, &who, execution, step, |step| Command::Skip {
                step,
                reason: reason.unwrap_or_default(),
            })
            .await
        }
        ExecCmd::Fail {
            execution,
            step,
            note,
        } => {
            act(ctx, &who, execution, step, |step| Command::Fail {
                step,
                note: note.unwrap_or_default(),
            })
            .await
        }
        ExecCmd::Approve { execution, step } => {
            act(ctx, &who, execution, step, |step| Command::Approve { step }).await
        }
        ExecCmd::Retry { execution, step } => {
            act(ctx, &who, execution, step, |step| Command::Retry { step }).await
        }
        ExecCmd::Abort { execution, reason } => {
            act(ctx, &who, execution, None, |_| Command::Abort {
                reason: reason.unwrap_or_default(),
            })
            .await
        }
        ExecCmd::Note {
            execution,
            step,
            text,
        } => {
            let key = ctx.key(&who, execution, KeyKind::Execution).await?;
            let o = ctx
                .vigilo
                .add_note(&who, key, step, &text.join(" "), None)
                .await?;
            report(ctx, &who, key, &o).await
        }
        ExecCmd::Handoff { execution, to } => {
            let key = ctx.key(&who, execution, KeyKind::Execution).await?;
            let o = ctx.vigilo.hand_over(&who, key, &to).await?;
            report(ctx, &who, key, &o).await
        }
        ExecCmd::Takeover { execution } => {
            let key = ctx.key(&who, execution, KeyKind::Execution).await?;
            let o = ctx.vigilo.take_over(&who, key).await?;
            report(ctx, &who, key, &o).await
        }
        ExecCmd::Show { execution } => {
            let key = ctx.key(&who, execution, KeyKind::Execution).await?;
            let (exec, summary) = ctx.vigilo.execution_summary(&who, key).await?;
            let drift = ctx.vigilo.drift_of(&who, &exec).await?;
            let doc = views::execution(ctx, &exec, &summary, drift.as_ref()).await;
            let mut text = render(ctx, &ctx.out.paint(), &exec, &summary).await;
            if let Some(d) = &drift {
                text.push_str(&drift_lines(&ctx.out.paint(), &exec, d));
            }
            ctx.out.emit(&doc, |_| text)
        }
        ExecCmd::Report {
            execution,
            format,
            output,
        } => super::report::report(ctx, &who, execution, format, output).await,
        ExecCmd::List {
            runbook,
            open,
            limit,
        } => {
            let rb = ctx.key_opt(&who, runbook, KeyKind::Runbook).await?;
            let list = ctx
                .vigilo
                .list_executions(
                    &who,
                    rb,
                    ExecutionQuery {
                        open_only: open,
                        limit: limit.clamp(1, 10_000),
                        ..Default::default()
                    },
                )
                .await?;
            let mut docs = Vec::new();
            let mut t = Table::new(&[
                "KEY", "RUNBOOK", "STATUS", "STEP", "OPERATOR", "STARTED", "LINKS", "TITLE",
            ]);
            for e in &list {
                docs.push(views::execution_summary(ctx, e).await);
                let mut links = Vec::new();
                if let Some(c) = e.change {
                    links.push(c.to_string());
                }
                if let Some(i) = e.incident {
                    links.push(i.to_string());
                }
                if e.rehearsal {
                    links.push("rehearsal".into());
                }
                t.row(vec![
                    e.key.to_string(),
                    format!("{} v{}", e.runbook_key, e.runbook_version),
                    e.status.as_str().to_owned(),
                    e.current_index()
                        .map_or("-".into(), |i| format!("{}/{}", i + 1, e.steps.len())),
                    format!("@{}", ctx.handle(e.operator).await),
                    time(e.started_at),
                    links.join(" "),
                    e.title.clone(),
                ]);
            }
            ctx.out.emit(&Value::Array(docs), |p| {
                if t.is_empty() {
                    "No executions.".into()
                } else {
                    t.render(p)
                }
            })
        }
    }
}

/// Starts an execution (shared with `vigilo run`).
pub async fn start(
    ctx: &Ctx,
    who: &Who,
    runbook: Ref,
    change: Option<Ref>,
    incident: Option<Ref>,
    rehearsal: bool,
) -> Result<Execution, CliError> {
    let runbook = ctx.key(who, runbook, KeyKind::Runbook).await?;
    let change = ctx.key_opt(who, change, KeyKind::Change).await?;
    let incident = ctx.key_opt(who, incident, KeyKind::Incident).await?;
    Ok(ctx
        .vigilo
        .start_execution(
            who,
            runbook,
            StartOptions {
                change,
                incident,
                rehearsal,
                channel: None,
            },
        )
        .await?)
}

/// The step a command is meant for: `--step N`, else the current step.
pub fn step_for(exec: &Execution, step: Option<u32>) -> u32 {
    step.unwrap_or_else(|| {
        exec.current_index()
            .map_or(exec.steps.len().max(1) as u32, |i| i as u32 + 1)
    })
}

/// Applies a step command and reports the outcome.
async fn act(
    ctx: &Ctx,
    who: &Who,
    r: Ref,
    step: Option<u32>,
    cmd: impl FnOnce(u32) -> Command,
) -> Result<(), CliError> {
    let key = ctx.key(who, r, KeyKind::Execution).await?;
    let exec = ctx.vigilo.execution(who, key).await?;
    let cmd = cmd(step_for(&exec, step));
    let outcome = ctx.vigilo.act(who, key, cmd).await?;
    report(ctx, who, key, &outcome).await
}

/// Prints what a step command did, then what comes next.
pub async fn report(ctx: &Ctx, who: &Who, key: Key, o: &ActOutcome) -> Result<(), CliError> {
    let (exec, summary) = ctx.vigilo.execution_summary(who, key).await?;
    let drift = ctx.vigilo.drift_of(who, &exec).await?;
    let mut doc = views::execution(ctx, &exec, &summary, drift.as_ref()).await;
    // After an approval: how many stand, by whom, and what is still missing.
    let approvals = match o.event.kind {
        EventKind::Approved => {
            let step = o
                .event
                .step_order
                .and_then(|n| exec.steps.get((n as usize).saturating_sub(1)));
            match step {
                Some(s) => Some((ctx.vigilo.approvals_text(s).await, s.approvals_missing(), s)),
                None => None,
            }
        }
        _ => None,
    };
    if let (Value::Object(m), Some((text, missing, _))) = (&mut doc, &approvals) {
        m.insert(
            "approvals".into(),
            json!({ "summary": text, "missing": missing }),
        );
    }
    if let Value::Object(m) = &mut doc {
        m.insert(
            "event".into(),
            json!({
                "kind": o.event.kind.as_str(),
                "step": o.event.step_order,
                "note": o.event.note.as_ref().map(|n| n.as_str()),
                "at": o.event.at,
                "actor": ctx.handle(o.event.actor).await,
                "to": ctx.handle_opt(o.event.to).await,
            }),
        );
    }
    let actor = ctx.handle(o.event.actor).await;
    let to = ctx.handle_opt(o.event.to).await;
    ctx.out.emit(&doc, |p| {
        let mut s = match &to {
            Some(to) if o.event.kind == EventKind::TakenOver => {
                format!(
                    "{}: taken over by @{to}; @{to} is the operator now.",
                    exec.key
                )
            }
            Some(to) => format!(
                "{}: handed over by @{actor} to @{to}; @{to} is the operator now.",
                exec.key
            ),
            None => event_line(p, &exec, o, &actor),
        };
        s.push('\n');
        if let Some((text, missing, step)) = &approvals {
            let role =
                vigilo_core::roles::RoleRequirement::from_owner_role(step.step.owner_role.as_str());
            if *missing == 0 {
                s.push_str(&format!(
                    "Approvals: {text}; the step can be marked done.\n"
                ));
            } else {
                s.push_str(&format!(
                    "Approvals: {text}; still missing: {} by {role}.\n",
                    if *missing == 1 {
                        "1 approval".to_owned()
                    } else {
                        format!("{missing} approvals")
                    }
                ));
            }
        }
        if exec.status.is_sealed() {
            s.push_str(&sealed_line(p, &exec, &summary));
        } else {
            s.push_str(&next_line(&exec));
        }
        s
    })
}

/// `EX-00001: step 2 "Swap" done by @bob.`
pub fn event_line(p: &Paint, exec: &Execution, o: &ActOutcome, actor: &str) -> String {
    let step = o
        .event
        .step_order
        .and_then(|n| exec.steps.get(n as usize - 1).map(|s| (n, s)));
    let what = o.event.kind.as_str();
    match step {
        Some((n, s)) if o.event.kind != EventKind::Aborted => format!(
            "{}: step {n} \"{}\" {} by @{actor}.",
            exec.key,
            s.step.title,
            p.bold(what)
        ),
        _ => format!("{}: {} by @{actor}.", exec.key, p.bold(what)),
    }
}

/// The APPROVED cell of `exec show`: `-`, `@carol`, or `1/2 @carol` when a step asks for
/// several approvals.
async fn approved_cell(ctx: &Ctx, es: &vigilo_core::execution::ExecStep) -> String {
    let mut handles = Vec::with_capacity(es.approvals.len());
    for a in &es.approvals {
        handles.push(format!("@{}", ctx.handle(a.by).await));
    }
    let need = es.step.approvals_needed();
    match (need, handles.is_empty()) {
        (0 | 1, true) => "-".into(),
        (0 | 1, false) => handles.join(" "),
        _ => format!("{}/{need} {}", handles.len(), handles.join(" "))
            .trim_end()
            .to_owned(),
    }
}

/// The drift of a run: `v4 was published after this run started: 2 steps changed`, and the
/// command that shows the diff. The run stays on its own version.
pub fn drift_lines(p: &Paint, exec: &Execution, d: &Drift) -> String {
    format!(
        "{}\n  The run stays on v{}; `vigilo runbook diff {} {} {}` shows what changed.\n",
        p.yellow(&format!("⚠ {}", d.headline())),
        d.run_version,
        exec.runbook_key,
        d.run_version,
        d.newer_version
    )
}

/// What is current now.
pub fn next_line(exec: &Execution) -> String {
    match exec.current_index() {
        Some(i) => {
            let s = &exec.steps[i];
            let mut line = format!(
                "Current: step {} of {} \"{}\"",
                i + 1,
                exec.steps.len(),
                s.step.title
            );
            if s.status == StepStatus::Failed {
                line.push_str(" (failed: retry, skip with a reason, or abort)");
            } else if s.approvals_missing() > 0 {
                if s.step.approvals_needed() > 1 {
                    line.push_str(&format!(
                        " (needs {} more approvals before done, {} of {} given)",
                        s.approvals_missing(),
                        s.approvals.len(),
                        s.step.approvals_needed()
                    ));
                } else {
                    line.push_str(" (needs approval before done)");
                }
            }
            line
        }
        None => format!("{} is {}.", exec.key, exec.status.as_str()),
    }
}

/// `EX-… completed in 12.3 min vs 17 min estimated (-4.7 min).`
pub fn sealed_line(p: &Paint, exec: &Execution, s: &ExecutionSummary) -> String {
    let status = match exec.status {
        ExecutionStatus::Completed => p.green("completed"),
        ExecutionStatus::Aborted => p.red("aborted"),
        ExecutionStatus::Running => "running".into(),
    };
    let mut line = format!(
        "{} {status} in {:.1} min vs {} min estimated ({} min); {} done, {} skipped",
        exec.key,
        s.actual_minutes,
        s.est_minutes,
        signed_minutes(s.variance_minutes),
        s.done,
        s.skipped
    );
    if let Some(r) = &exec.abort_reason {
        line.push_str(&format!(
            "; reason: {}",
            crate::chat::markdown::sanitize(r.as_str())
        ));
    }
    line.push('.');
    line
}

/// The execution with its step table, for people.
pub async fn render(ctx: &Ctx, p: &Paint, exec: &Execution, s: &ExecutionSummary) -> String {
    let mut out = format!(
        "{}  {}\n",
        p.bold(&exec.key.to_string()),
        p.bold(&exec.title)
    );
    let mut meta = vec![
        format!("{} v{}", exec.runbook_key, exec.runbook_version),
        exec.status.as_str().to_owned(),
        format!("operator @{}", ctx.handle(exec.operator).await),
        format!("started {}", time(exec.started_at)),
    ];
    if let Some(c) = exec.change {
        meta.push(format!("change {c}"));
    }
    if let Some(i) = exec.incident {
        meta.push(format!("incident {i}"));
    }
    if exec.rehearsal {
        meta.push("rehearsal".into());
    }
    out.push_str(&p.dim(&meta.join(" · ")));
    out.push('\n');
    let mut t = Table::new(&[
        "#",
        "STEP",
        "STATUS",
        "EST",
        "ACTUAL",
        "VAR",
        "BY",
        "APPROVED",
        "COMPLETED",
        "NOTE",
    ]);
    for (i, (es, timing)) in exec.steps.iter().zip(&s.steps).enumerate() {
        let current = exec.current_index() == Some(i);
        t.row(vec![
            if current {
                format!("▶{}", i + 1)
            } else {
                (i + 1).to_string()
            },
            es.step.title.to_string(),
            es.status.as_str().to_owned(),
            es.step.est_minutes.get().to_string(),
            timing
                .actual_minutes
                .map_or("-".into(), |a| format!("{a:.1}")),
            timing.variance_minutes.map_or("-".into(), signed_minutes),
            match ctx.handle_opt(es.actor).await {
                Some(h) => format!("@{h}"),
                None => "-".into(),
            },
            approved_cell(ctx, es).await,
            time_opt(es.completed_at),
            es.note.as_ref().map(|n| n.to_string()).unwrap_or_default(),
        ]);
    }
    out.push_str(&t.render(p));
    out.push_str(&format!(
        "Total: est {} min · actual {:.1} min · variance {} min · {} done, {} skipped, {} failed, {} pending\n",
        s.est_minutes,
        s.actual_minutes,
        signed_minutes(s.variance_minutes),
        s.done,
        s.skipped,
        s.failed,
        s.pending
    ));
    if let Some(r) = &exec.abort_reason {
        out.push_str(&format!(
            "Aborted: {}\n",
            crate::chat::markdown::sanitize(r.as_str())
        ));
    }
    for h in &exec.handoffs {
        let (from, to) = (ctx.handle(h.from).await, ctx.handle(h.to).await);
        let line = if h.is_takeover() {
            format!("Taken over from @{from} by @{to} at {}", time(h.at))
        } else {
            let by = ctx.handle(h.by).await;
            format!(
                "Handed over from @{from} to @{to} by @{by} at {}",
                time(h.at)
            )
        };
        out.push_str(&p.dim(&line));
        out.push('\n');
    }
    let notes = exec.notes();
    if !notes.is_empty() {
        out.push_str(&p.bold("Notes"));
        out.push('\n');
        for (i, n) in notes {
            out.push_str(&format!(
                "  step {} · @{} · {}: {}\n",
                i + 1,
                ctx.handle(n.author).await,
                time(n.at),
                crate::chat::markdown::sanitize(n.text.as_str())
            ));
        }
    }
    out
}
