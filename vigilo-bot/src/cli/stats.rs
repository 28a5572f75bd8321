//! `vigilo runbook stats RB-…` and `vigilo stats`: timing and outcomes across executions.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::{Value, json};
use vigilo_core::analytics::{RunbookStats, StatsQuery, StepStats, Suggestion, WorkspaceStats};
use vigilo_core::ids::KeyKind;
use vigilo_core::service::Who;

use super::output::{Paint, Table};
use super::{CliError, Ctx, Ref};
use crate::chart;

/// An RFC 3339 time (`--since`).
pub(crate) fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-05-01T00:00:00Z ({e})"))
}

/// The options of `runbook stats`.
#[derive(Debug, Clone)]
pub struct RunbookStatsArgs {
    /// The runbook.
    pub runbook: Ref,
    /// Only this version's executions.
    pub version: Option<u32>,
    /// Only executions started since.
    pub since: Option<DateTime<Utc>>,
    /// Count rehearsals too.
    pub include_rehearsals: bool,
    /// Write a chart here.
    pub chart: Option<PathBuf>,
    /// Propose estimates.
    pub suggest: bool,
    /// Save them as a new version.
    pub apply: bool,
}

/// `vigilo stats`.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  vigilo --as bob stats --since 2026-05-01T00:00:00Z")]
pub struct StatsArgs {
    /// Only executions started at or after this time.
    #[arg(long, value_parser = parse_since, value_name = "RFC3339")]
    pub since: Option<DateTime<Utc>>,
}

/// Minutes for a table cell: one decimal, `-` for none.
pub fn mins(m: Option<f64>) -> String {
    m.map_or_else(|| "-".into(), |m| format!("{m}"))
}

/// A rate as a whole percentage, `-` for none.
pub fn pct(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{:.0}%", r * 100.0))
}

/// The JSON of one step.
fn step_json(s: &StepStats) -> Value {
    json!({
        "order": s.order,
        "step_id": s.step,
        "title": s.title,
        "runs": s.runs,
        "done": s.done,
        "skipped": s.skipped,
        "failed_runs": s.failed_runs,
        "retries": s.retries,
        "gated": s.gated,
        "est_minutes": s.est_minutes,
        "median_minutes": s.median_minutes,
        "p90_minutes": s.p90_minutes,
        "skip_rate": s.skip_rate,
        "fail_rate": s.fail_rate,
        "approval_wait_median_minutes": s.approval_wait_median_minutes,
    })
}

/// The JSON of `runbook stats` (names fixed by the CLI contract).
pub fn stats_json(s: &RunbookStats, suggested: Option<&[Suggestion]>) -> Value {
    let mut v = json!({
        "runbook": s.runbook.to_string(),
        "title": s.title,
        "version": s.newest_version,
        "since": s.query.since,
        "include_rehearsals": s.query.include_rehearsals,
        "executions": s.executions,
        "completed": s.completed,
        "aborted": s.aborted,
        "running": s.running,
        "completion_rate": s.completion_rate,
        "abort_rate": s.abort_rate,
        "est_minutes": s.est_minutes,
        "median_minutes": s.median_minutes,
        "p90_minutes": s.p90_minutes,
        "steps": s.steps.iter().map(step_json).collect::<Vec<_>>(),
    });
    if let (Some(list), Some(obj)) = (suggested, v.as_object_mut()) {
        obj.insert(
            "suggested".into(),
            list.iter()
                .map(|x| {
                    json!({
                        "order": x.order,
                        "title": x.title,
                        "est_minutes": x.est_minutes,
                        "current_minutes": x.current_minutes,
                        "done_runs": x.done_runs,
                        "kept_because": x.kept_because,
                    })
                })
                .collect(),
        );
    }
    v
}

/// The aligned table of `runbook stats`.
pub fn stats_table(s: &RunbookStats, p: &Paint) -> String {
    let mut out = format!(
        "{} {} (v{}): {} execution{}, {} completed ({}), {} aborted ({}), {} running{}\n",
        s.runbook,
        s.title,
        s.newest_version.unwrap_or(0),
        s.executions,
        if s.executions == 1 { "" } else { "s" },
        s.completed,
        pct(s.completion_rate),
        s.aborted,
        pct(s.abort_rate),
        s.running,
        if s.query.include_rehearsals {
            ", rehearsals included"
        } else {
            ""
        },
    );
    out.push_str(&format!(
        "Whole run: estimate {} min, median {} min, p90 {} min\n\n",
        s.est_minutes,
        mins(s.median_minutes),
        mins(s.p90_minutes)
    ));
    let mut t = Table::new(&[
        "#", "STEP", "RUNS", "EST", "MEDIAN", "P90", "SKIP", "FAIL", "RETRIES", "WAIT",
    ]);
    for st in &s.steps {
        t.row(vec![
            st.order.map_or_else(|| "-".into(), |o| o.to_string()),
            if st.order.is_some() {
                st.title.clone()
            } else {
                format!("{} (removed)", st.title)
            },
            st.runs.to_string(),
            st.est_minutes.to_string(),
            mins(st.median_minutes),
            mins(st.p90_minutes),
            pct(st.skip_rate),
            pct(st.fail_rate),
            st.retries.to_string(),
            if st.gated {
                mins(st.approval_wait_median_minutes)
            } else {
                String::new()
            },
        ]);
    }
    out.push_str(&t.render(p));
    out.push_str("Minutes; MEDIAN and P90 over the runs where the step was done; WAIT: reaching a gated step to its last approval.\n");
    out
}

fn suggestions_table(list: &[Suggestion], p: &Paint) -> String {
    let mut t = Table::new(&["#", "STEP", "EST", "SUGGESTED", "DONE RUNS", "NOTE"]);
    for s in list {
        t.row(vec![
            s.order.to_string(),
            s.title.clone(),
            s.current_minutes.to_string(),
            s.est_minutes.to_string(),
            s.done_runs.to_string(),
            s.kept_because
                .as_ref()
                .map_or_else(String::new, |k| format!("kept: {k}")),
        ]);
    }
    t.render(p)
}

/// Runs `runbook stats`.
pub(crate) async fn runbook_stats(
    ctx: &Ctx,
    who: &Who,
    a: RunbookStatsArgs,
) -> Result<(), CliError> {
    if a.apply && !a.suggest {
        return Err(CliError::Usage(
            "--apply saves the suggested estimates; add --suggest".into(),
        ));
    }
    if let Some(path) = &a.chart {
        // Refuse a bad name before reading anything.
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if !matches!(ext.as_deref(), Some("svg" | "png")) {
            return Err(CliError::Usage(
                chart::ChartError::Format(path.display().to_string()).to_string(),
            ));
        }
    }
    let key = ctx.key(who, a.runbook, KeyKind::Runbook).await?;
    let query = StatsQuery {
        version: a.version,
        since: a.since,
        include_rehearsals: a.include_rehearsals,
        ..StatsQuery::default()
    };
    let (stats, suggestions, applied) = if a.apply {
        let done = ctx.vigilo.apply_estimates(who, key, query).await?;
        let applied = Some((done.outcome.changed, done.outcome.runbook.version));
        (done.stats, Some(done.suggestions), applied)
    } else if a.suggest {
        let (s, list) = ctx.vigilo.suggest_estimates(who, key, query).await?;
        (s, Some(list), None)
    } else {
        (ctx.vigilo.runbook_stats(who, key, query).await?, None, None)
    };
    if let Some(path) = &a.chart {
        chart::write(&stats, path).map_err(|e| CliError::Refused(e.to_string()))?;
    }
    let mut json = stats_json(&stats, suggestions.as_deref());
    if let (Some((changed, version)), Some(obj)) = (applied, json.as_object_mut()) {
        obj.insert(
            "applied".into(),
            json!({"changed": changed, "version": version}),
        );
    }
    if let Some(path) = &a.chart
        && let Some(obj) = json.as_object_mut()
    {
        obj.insert("chart".into(), json!(path.display().to_string()));
    }
    ctx.out.emit(&json, |p| {
        let mut out = stats_table(&stats, p);
        if let Some(list) = &suggestions {
            out.push_str("\nSuggested estimates (median of done runs, rounded, at least 1 min):\n");
            out.push_str(&suggestions_table(list, p));
        }
        match applied {
            Some((true, v)) => out.push_str(&format!(
                "Saved as v{v} (source: estimates from {} runs).\n",
                stats.executions
            )),
            Some((false, _)) => out.push_str("Every estimate already matched; nothing saved.\n"),
            None => {}
        }
        if let Some(path) = &a.chart {
            out.push_str(&format!("Chart written to {}\n", path.display()));
        }
        out
    })
}

/// The JSON of `vigilo stats`.
pub fn workspace_json(w: &WorkspaceStats) -> Value {
    json!({
        "since": w.query.since,
        "executions": w.executions,
        "completed": w.completed,
        "aborted": w.aborted,
        "running": w.running,
        "by_week": w.by_week.iter().map(|x| json!({
            "week": x.week.to_string(),
            "executions": x.executions,
            "completed": x.completed,
            "aborted": x.aborted,
        })).collect::<Vec<_>>(),
        "slowest_steps": w.slowest_steps.iter().map(|s| json!({
            "runbook": s.runbook.to_string(),
            "runbook_title": s.runbook_title,
            "order": s.step.order,
            "title": s.step.title,
            "runs": s.step.runs,
            "est_minutes": s.step.est_minutes,
            "median_minutes": s.step.median_minutes,
            "over_minutes": s.over_minutes,
        })).collect::<Vec<_>>(),
    })
}

/// Runs `vigilo stats`.
pub(crate) async fn workspace_stats(ctx: &Ctx, a: StatsArgs) -> Result<(), CliError> {
    let (_, who, _, _) = ctx.who().await?;
    let w = ctx
        .vigilo
        .workspace_stats(
            &who,
            StatsQuery {
                since: a.since,
                ..StatsQuery::default()
            },
        )
        .await?;
    ctx.out.emit(&workspace_json(&w), |p| {
        let mut out = format!(
            "{} execution{}: {} completed, {} aborted, {} running (rehearsals left out)\n\n",
            w.executions,
            if w.executions == 1 { "" } else { "s" },
            w.completed,
            w.aborted,
            w.running
        );
        let widest = w.by_week.iter().map(|x| x.executions).max().unwrap_or(0);
        let mut t = Table::new(&["WEEK OF", "RUNS", "COMPLETED", "ABORTED", ""]);
        for x in &w.by_week {
            t.row(vec![
                x.week.to_string(),
                x.executions.to_string(),
                x.completed.to_string(),
                x.aborted.to_string(),
                crate::chat::stats::bar(x.executions as f64, widest as f64, 30),
            ]);
        }
        out.push_str(&t.render(p));
        if w.slowest_steps.is_empty() {
            out.push_str("\nNo step takes longer than its estimate (median).\n");
        } else {
            out.push_str("\nSlowest steps against their estimate (median of done runs):\n");
            let mut t = Table::new(&["RUNBOOK", "#", "STEP", "RUNS", "EST", "MEDIAN", "OVER"]);
            for s in &w.slowest_steps {
                t.row(vec![
                    s.runbook.to_string(),
                    s.step.order.map_or_else(|| "-".into(), |o| o.to_string()),
                    s.step.title.clone(),
                    s.step.done.to_string(),
                    s.step.est_minutes.to_string(),
                    mins(s.step.median_minutes),
                    format!("+{}", s.over_minutes),
                ]);
            }
            out.push_str(&t.render(p));
        }
        out
    })
}
