//! The figures: per step and per runbook, computed from [`RunFacts`] by pure functions.
//!
//! Definitions (the same for every store, since every store answers with the same facts):
//!
//! - a step's **runs** are the counted executions in which it was done, skipped or failed at
//!   least once; **skip rate** is skipped runs over runs, **fail rate** runs with at least one
//!   failure over runs, **retries** every retry;
//! - its **median** and **p90** (nearest rank) actual minutes are over the runs where it was
//!   done, each from the moment the step became current (or was last retried) to done; a step
//!   never done has none, not zero;
//! - its **approval wait** is from that same moment to the last approval before done;
//! - steps are matched across versions by step id, titled and ordered as in the newest version
//!   of the window; steps no longer in it come after, without an order;
//! - a runbook's **total** is its completed executions' time from start to seal, against the
//!   sum of the newest version's estimates.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::facts::{RunFacts, StatsQuery};
use crate::execution::{EventKind, ExecutionStatus};
use crate::ids::{Key, RunbookId, StepId};
use crate::runbook::Step;

/// The figures of one step across the counted executions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// 1-based position in the newest version of the window; `None` for a step that is no
    /// longer in it.
    pub order: Option<u32>,
    /// The step's stable id.
    pub step: StepId,
    /// Its title in the newest version it appears in.
    pub title: String,
    /// Its estimate there.
    pub est_minutes: u32,
    /// Whether it asks for an approval there.
    pub gated: bool,
    /// Executions in which it was done, skipped or failed.
    pub runs: u64,
    /// Runs in which it was done.
    pub done: u64,
    /// Runs in which it was skipped.
    pub skipped: u64,
    /// Runs in which it failed at least once.
    pub failed_runs: u64,
    /// Retries, over all runs.
    pub retries: u64,
    /// Median actual minutes over the runs where it was done (one decimal).
    pub median_minutes: Option<f64>,
    /// 90th percentile (nearest rank) of the same.
    pub p90_minutes: Option<f64>,
    /// `skipped / runs`, `None` without runs.
    pub skip_rate: Option<f64>,
    /// `failed_runs / runs`, `None` without runs.
    pub fail_rate: Option<f64>,
    /// Median minutes from reaching the step to its last approval, over the runs where it was
    /// approved and done.
    pub approval_wait_median_minutes: Option<f64>,
}

/// The figures of one runbook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunbookStats {
    /// `RB-…`.
    pub runbook: Key,
    /// The runbook's current title.
    pub title: String,
    /// Which executions were counted.
    pub query: StatsQuery,
    /// The newest version among them (or the runbook's, without executions).
    pub newest_version: Option<u32>,
    /// Executions counted (running ones included).
    pub executions: u64,
    /// Completed among them.
    pub completed: u64,
    /// Aborted among them.
    pub aborted: u64,
    /// Still running.
    pub running: u64,
    /// `completed / executions`.
    pub completion_rate: Option<f64>,
    /// `aborted / executions`.
    pub abort_rate: Option<f64>,
    /// The newest version's estimates, summed.
    pub est_minutes: u64,
    /// Median minutes from start to seal of the completed executions.
    pub median_minutes: Option<f64>,
    /// 90th percentile of the same.
    pub p90_minutes: Option<f64>,
    /// Per step, in the newest version's order, then the steps no longer in it.
    pub steps: Vec<StepStats>,
}

/// Executions started in one week.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeekStats {
    /// The Monday (UTC) the week starts on.
    pub week: NaiveDate,
    /// Executions started that week.
    pub executions: u64,
    /// Completed among them.
    pub completed: u64,
    /// Aborted among them.
    pub aborted: u64,
}

/// A step that takes longer than its estimate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlowStep {
    /// `RB-…`.
    pub runbook: Key,
    /// The runbook's title.
    pub runbook_title: String,
    /// The step's figures.
    pub step: StepStats,
    /// `median - estimate`, minutes.
    pub over_minutes: f64,
}

/// The workspace at a glance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceStats {
    /// Which executions were counted.
    pub query: StatsQuery,
    /// Executions counted.
    pub executions: u64,
    /// Completed among them.
    pub completed: u64,
    /// Aborted among them.
    pub aborted: u64,
    /// Still running.
    pub running: u64,
    /// Per week of start, oldest first, weeks without executions included.
    pub by_week: Vec<WeekStats>,
    /// The steps furthest over their estimate (median), at most [`SLOWEST_STEPS`].
    pub slowest_steps: Vec<SlowStep>,
}

/// How many steps [`WorkspaceStats::slowest_steps`] lists.
pub const SLOWEST_STEPS: usize = 5;

/// A runbook's name and versions, as the figures need them.
#[derive(Clone, Debug, Default)]
pub struct RunbookShape {
    /// `RB-…`.
    pub key: Option<Key>,
    /// Current title.
    pub title: String,
    /// The steps of each version that may be needed (at least every version the facts name;
    /// without facts, the version to show).
    pub versions: BTreeMap<u32, Vec<Step>>,
}

/// Microseconds as minutes, one decimal.
pub fn minutes(us: i64) -> f64 {
    (us as f64 / 6_000_000.0).round() / 10.0
}

/// The median of sorted values: the mean of the two middle ones for an even count.
fn median(sorted: &[i64]) -> Option<i64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let mid = n / 2;
    Some(if n.is_multiple_of(2) {
        sorted[mid - 1] + (sorted[mid] - sorted[mid - 1]) / 2
    } else {
        sorted[mid]
    })
}

/// The nearest-rank 90th percentile of sorted values.
fn p90(sorted: &[i64]) -> Option<i64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (n * 9).div_ceil(10).max(1);
    sorted.get(rank - 1).copied()
}

fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn micros(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX).max(0)
}

/// A hasher for ids (random UUIDs need no SipHash): folds the bytes 8 at a time with the
/// FxHash multiply. The figures hash one step id per event, so this is most of their cost.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by step id.
type IdMap<V> = HashMap<StepId, V, BuildHasherDefault<IdHasher>>;

/// What one execution did with one step.
#[derive(Default)]
struct StepRun {
    done: Option<(DateTime<Utc>, Option<DateTime<Utc>>)>,
    skipped: bool,
    failures: u32,
    retries: u32,
    last_approval: Option<DateTime<Utc>>,
}

/// One step's figures, accumulating.
#[derive(Default)]
struct StepAcc {
    runs: u64,
    done: u64,
    skipped: u64,
    failed_runs: u64,
    retries: u64,
    durations: Vec<i64>,
    waits: Vec<i64>,
}

/// Where a step was last seen: the version, its position there and the step.
type Found<'a> = (u32, usize, &'a Step);

/// A runbook's figures, accumulating.
#[derive(Default)]
struct RunbookAcc {
    executions: u64,
    completed: u64,
    aborted: u64,
    running: u64,
    newest: Option<u32>,
    totals: Vec<i64>,
    steps: IdMap<StepAcc>,
}

impl RunbookAcc {
    fn add(&mut self, run: &RunFacts, scratch: &mut IdMap<StepRun>) {
        self.executions += 1;
        self.newest = self.newest.max(Some(run.version));
        match run.status {
            ExecutionStatus::Completed => {
                self.completed += 1;
                if let Some(sealed) = run.sealed_at() {
                    self.totals.push(micros(run.started_at, sealed));
                }
            }
            ExecutionStatus::Aborted => self.aborted += 1,
            ExecutionStatus::Running => self.running += 1,
        }
        scratch.clear();
        for ev in &run.events {
            let Some(step) = ev.step else { continue };
            let s = scratch.entry(step).or_default();
            match ev.kind {
                EventKind::Done => s.done = Some((ev.at, ev.started_at)),
                EventKind::Skipped => s.skipped = true,
                EventKind::Failed => s.failures += 1,
                EventKind::Retried => s.retries += 1,
                EventKind::Approved => s.last_approval = s.last_approval.max(Some(ev.at)),
                // Started, aborted, and kinds that change no outcome (notes, hand-overs).
                _ => {}
            }
        }
        for (step, s) in scratch.iter() {
            let acc = self.steps.entry(*step).or_default();
            acc.retries += u64::from(s.retries);
            let reached = s.done.is_some() || s.skipped || s.failures > 0;
            if !reached {
                continue;
            }
            acc.runs += 1;
            acc.skipped += u64::from(s.skipped);
            acc.failed_runs += u64::from(s.failures > 0);
            if let Some((at, started)) = s.done {
                acc.done += 1;
                if let Some(started) = started {
                    acc.durations.push(micros(started, at));
                    if let Some(approved) = s.last_approval {
                        acc.waits.push(micros(started, approved));
                    }
                }
            }
        }
    }

    fn finish(mut self, key: Key, shape: &RunbookShape, query: &StatsQuery) -> RunbookStats {
        let newest = self
            .newest
            .or_else(|| shape.versions.keys().next_back().copied());
        let newest_steps: &[Step] = newest
            .and_then(|v| shape.versions.get(&v))
            .map_or(&[], Vec::as_slice);
        let mut steps = Vec::with_capacity(self.steps.len().max(newest_steps.len()));
        for (i, st) in newest_steps.iter().enumerate() {
            let acc = self.steps.remove(&st.id).unwrap_or_default();
            steps.push(step_stats(Some(i as u32 + 1), st.id, Some(st), acc));
        }
        // Steps no longer in the newest version: newest version they appear in first, then
        // their order there.
        let mut rest: Vec<(StepId, StepAcc, Option<Found<'_>>)> = self
            .steps
            .drain()
            .map(|(id, acc)| {
                let found = shape.versions.iter().rev().find_map(|(v, steps)| {
                    steps
                        .iter()
                        .position(|s| s.id == id)
                        .map(|p| (*v, p, &steps[p]))
                });
                (id, acc, found)
            })
            .collect();
        rest.sort_by(|a, b| {
            let ka = a.2.map(|(v, p, _)| (std::cmp::Reverse(v), p));
            let kb = b.2.map(|(v, p, _)| (std::cmp::Reverse(v), p));
            ka.cmp(&kb).then(a.0.cmp(&b.0))
        });
        for (id, acc, found) in rest {
            steps.push(step_stats(None, id, found.map(|f| f.2), acc));
        }
        self.totals.sort_unstable();
        RunbookStats {
            runbook: key,
            title: shape.title.clone(),
            query: query.clone(),
            newest_version: newest,
            executions: self.executions,
            completed: self.completed,
            aborted: self.aborted,
            running: self.running,
            completion_rate: rate(self.completed, self.executions),
            abort_rate: rate(self.aborted, self.executions),
            est_minutes: newest_steps
                .iter()
                .map(|s| u64::from(s.est_minutes.get()))
                .sum(),
            median_minutes: median(&self.totals).map(minutes),
            p90_minutes: p90(&self.totals).map(minutes),
            steps,
        }
    }
}

fn step_stats(order: Option<u32>, id: StepId, step: Option<&Step>, mut acc: StepAcc) -> StepStats {
    acc.durations.sort_unstable();
    acc.waits.sort_unstable();
    StepStats {
        order,
        step: id,
        title: step.map_or_else(|| format!("(step {id})"), |s| s.title.to_string()),
        est_minutes: step.map_or(0, |s| s.est_minutes.get()),
        gated: step.is_some_and(|s| s.requires_approval),
        runs: acc.runs,
        done: acc.done,
        skipped: acc.skipped,
        failed_runs: acc.failed_runs,
        retries: acc.retries,
        median_minutes: median(&acc.durations).map(minutes),
        p90_minutes: p90(&acc.durations).map(minutes),
        skip_rate: rate(acc.skipped, acc.runs),
        fail_rate: rate(acc.failed_runs, acc.runs),
        approval_wait_median_minutes: median(&acc.waits).map(minutes),
    }
}

/// The figures of runbook `key` from the facts of its counted executions (any order) and its
/// versions (`shape`).
pub fn runbook_stats(
    key: Key,
    shape: &RunbookShape,
    facts: &[RunFacts],
    query: &StatsQuery,
) -> RunbookStats {
    let mut acc = RunbookAcc::default();
    let mut scratch = IdMap::default();
    for run in facts {
        acc.add(run, &mut scratch);
    }
    acc.finish(key, shape, query)
}

/// The Monday (UTC) of the week `at` falls in.
pub fn week_of(at: DateTime<Utc>) -> NaiveDate {
    let day = at.date_naive();
    day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

/// The workspace's figures from the facts of its counted executions (any order), with the
/// shape of every runbook they name (a runbook without a shape is counted but has no steps
/// among the slowest).
pub fn workspace_stats(
    facts: &[RunFacts],
    shapes: &HashMap<RunbookId, RunbookShape>,
    query: &StatsQuery,
) -> WorkspaceStats {
    let mut per_runbook: HashMap<RunbookId, RunbookAcc> = HashMap::new();
    let mut weeks: BTreeMap<NaiveDate, WeekStats> = BTreeMap::new();
    let mut scratch = IdMap::default();
    for run in facts {
        per_runbook
            .entry(run.runbook)
            .or_default()
            .add(run, &mut scratch);
        let week = week_of(run.started_at);
        let w = weeks.entry(week).or_insert(WeekStats {
            week,
            executions: 0,
            completed: 0,
            aborted: 0,
        });
        w.executions += 1;
        w.completed += u64::from(run.status == ExecutionStatus::Completed);
        w.aborted += u64::from(run.status == ExecutionStatus::Aborted);
    }
    let mut by_week = Vec::with_capacity(weeks.len());
    let mut next: Option<NaiveDate> = None;
    for (week, w) in weeks {
        while let Some(n) = next.filter(|n| *n < week) {
            by_week.push(WeekStats {
                week: n,
                executions: 0,
                completed: 0,
                aborted: 0,
            });
            next = Some(n + Duration::days(7));
        }
        by_week.push(w);
        next = Some(week + Duration::days(7));
    }
    let (mut executions, mut completed, mut aborted, mut running) = (0, 0, 0, 0);
    let mut slowest = Vec::new();
    for (id, acc) in per_runbook {
        executions += acc.executions;
        completed += acc.completed;
        aborted += acc.aborted;
        running += acc.running;
        let Some(shape) = shapes.get(&id) else {
            continue;
        };
        let Some(key) = shape.key else { continue };
        let stats = acc.finish(key, shape, query);
        for step in stats.steps {
            let Some(median) = step.median_minutes else {
                continue;
            };
            let over = ((median - f64::from(step.est_minutes)) * 10.0).round() / 10.0;
            if over > 0.0 {
                slowest.push(SlowStep {
                    runbook: key,
                    runbook_title: stats.title.clone(),
                    step,
                    over_minutes: over,
                });
            }
        }
    }
    slowest.sort_by(|a, b| {
        b.over_minutes
            .total_cmp(&a.over_minutes)
            .then(a.runbook.cmp(&b.runbook))
            .then(a.step.order.cmp(&b.step.order))
    });
    slowest.truncate(SLOWEST_STEPS);
    WorkspaceStats {
        query: query.clone(),
        executions,
        completed,
        aborted,
        running,
        by_week,
        slowest_steps: slowest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p90_of_known_values() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[5]), Some(5));
        assert_eq!(median(&[1, 3]), Some(2));
        assert_eq!(median(&[1, 2, 9]), Some(2));
        assert_eq!(p90(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), Some(9));
        assert_eq!(p90(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), Some(10));
        assert_eq!(p90(&[7]), Some(7));
    }

    #[test]
    fn minutes_round_to_one_decimal() {
        assert_eq!(minutes(90_000_000), 1.5);
        assert_eq!(minutes(0), 0.0);
        assert_eq!(minutes(3_000_000), 0.1); // 0.05 rounds up
    }
}
