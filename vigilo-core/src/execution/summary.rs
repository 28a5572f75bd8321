//! Execution summaries: actual vs estimated minutes per step and in total.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::execution::{Execution, StepStatus};
use crate::ids::UserId;

/// Timing of one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepTiming {
    /// 1-based order.
    pub order: u32,
    /// Step title.
    pub title: String,
    /// Status.
    pub status: StepStatus,
    /// Estimate.
    pub est_minutes: u32,
    /// Minutes from becoming current to completion, when complete (one decimal).
    pub actual_minutes: Option<f64>,
    /// `actual - estimated`, when complete.
    pub variance_minutes: Option<f64>,
    /// When it became current.
    pub started_at: Option<DateTime<Utc>>,
    /// When it was completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// Who marked it.
    pub actor: Option<UserId>,
    /// Who approved it first.
    pub approver: Option<UserId>,
    /// Everyone whose approval stands, in the order given.
    #[serde(default)]
    pub approvers: Vec<UserId>,
    /// Note or reason.
    pub note: Option<String>,
}

/// Timing of a whole execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionSummary {
    /// Per step.
    pub steps: Vec<StepTiming>,
    /// Sum of the estimates.
    pub est_minutes: u64,
    /// Minutes from start to seal (or to `now` while running).
    pub actual_minutes: f64,
    /// `actual - estimated`.
    pub variance_minutes: f64,
    /// Steps done.
    pub done: usize,
    /// Steps skipped.
    pub skipped: usize,
    /// Steps failed (still failed).
    pub failed: usize,
    /// Steps not reached.
    pub pending: usize,
}

/// Minutes from `from` to `to`, one decimal (never negative).
pub(crate) fn minutes(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    let ms = (to - from).num_milliseconds().max(0) as f64;
    (ms / 6_000.0).round() / 10.0
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

impl ExecutionSummary {
    /// Summarises `exec`; `now` ends the clock of a running execution.
    pub fn of(exec: &Execution, now: DateTime<Utc>) -> Self {
        let steps: Vec<StepTiming> = exec
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let actual = match (s.started_at, s.completed_at) {
                    (Some(a), Some(b)) => Some(minutes(a, b)),
                    _ => None,
                };
                let est = s.step.est_minutes.get();
                StepTiming {
                    order: i as u32 + 1,
                    title: s.step.title.to_string(),
                    status: s.status,
                    est_minutes: est,
                    actual_minutes: actual,
                    variance_minutes: actual.map(|a| round1(a - f64::from(est))),
                    started_at: s.started_at,
                    completed_at: s.completed_at,
                    actor: s.actor,
                    approver: s.approvals.first().map(|a| a.by),
                    approvers: s.approvals.iter().map(|a| a.by).collect(),
                    note: s.note.as_ref().map(|n| n.to_string()),
                }
            })
            .collect();
        let est_minutes: u64 = steps.iter().map(|s| u64::from(s.est_minutes)).sum();
        let actual_minutes = minutes(exec.started_at, exec.sealed_at.unwrap_or(now));
        let count = |st: StepStatus| steps.iter().filter(|s| s.status == st).count();
        ExecutionSummary {
            est_minutes,
            actual_minutes,
            variance_minutes: round1(actual_minutes - est_minutes as f64),
            done: count(StepStatus::Done),
            skipped: count(StepStatus::Skipped),
            failed: count(StepStatus::Failed),
            pending: count(StepStatus::Pending),
            steps,
        }
    }
}
