//! New estimates from real runs, and how one run compares with the typical run.

use serde::{Deserialize, Serialize};

use super::figures::RunbookStats;
use crate::fields::MAX_EST_MINUTES;
use crate::ids::StepId;

/// A step needs at least this many done runs before its estimate is replaced.
pub const MIN_RUNS_TO_SUGGEST: u64 = 5;

/// A proposed estimate for one step of the newest version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suggestion {
    /// 1-based position in the newest version.
    pub order: u32,
    /// The step.
    pub step: StepId,
    /// Its title.
    pub title: String,
    /// The estimate it has.
    pub current_minutes: u32,
    /// The estimate proposed: the median of the done runs rounded to whole minutes, at least
    /// 1; the current one when [`Suggestion::kept_because`] says why.
    pub est_minutes: u32,
    /// Runs in which the step was done.
    pub done_runs: u64,
    /// Why the estimate is kept, when it is.
    pub kept_because: Option<String>,
}

/// One suggestion per step of the newest version, in its order.
pub fn suggest(stats: &RunbookStats) -> Vec<Suggestion> {
    stats
        .steps
        .iter()
        .filter_map(|s| {
            let order = s.order?;
            let (est, kept) = match s.median_minutes {
                Some(median) if s.done >= MIN_RUNS_TO_SUGGEST => {
                    let est = (median.round() as u32).clamp(1, MAX_EST_MINUTES);
                    (est, None)
                }
                _ => (
                    s.est_minutes,
                    Some(format!(
                        "done in {} run{} ({MIN_RUNS_TO_SUGGEST} needed)",
                        s.done,
                        if s.done == 1 { "" } else { "s" }
                    )),
                ),
            };
            Some(Suggestion {
                order,
                step: s.step,
                title: s.title.clone(),
                current_minutes: s.est_minutes,
                est_minutes: est,
                done_runs: s.done,
                kept_because: kept,
            })
        })
        .collect()
}

/// How one run's length compares with the runbook's typical (median) completed run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Typical {
    /// The median minutes of the completed runs.
    pub median_minutes: f64,
    /// How many completed runs.
    pub runs: u64,
    /// This run's minutes minus the median.
    pub difference_minutes: f64,
}

impl Typical {
    /// The comparison of a run of `actual_minutes` with `stats`, when there is a typical run
    /// to compare with.
    pub fn of(actual_minutes: f64, stats: &RunbookStats) -> Option<Self> {
        let median = stats.median_minutes?;
        Some(Self {
            median_minutes: median,
            runs: stats.completed,
            difference_minutes: ((actual_minutes - median) * 10.0).round() / 10.0,
        })
    }

    /// "12 min longer than the median of 14 runs".
    pub fn sentence(&self) -> String {
        let runs = if self.runs == 1 {
            "1 run".to_string()
        } else {
            format!("{} runs", self.runs)
        };
        let d = self.difference_minutes.abs();
        let amount = if d >= 10.0 {
            format!("{d:.0}")
        } else {
            format!("{d}")
        };
        if d < 1.0 {
            format!("about the median of {runs}")
        } else if self.difference_minutes > 0.0 {
            format!("{amount} min longer than the median of {runs}")
        } else {
            format!("{amount} min shorter than the median of {runs}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typical(diff: f64, runs: u64) -> Typical {
        Typical {
            median_minutes: 20.0,
            runs,
            difference_minutes: diff,
        }
    }

    #[test]
    fn the_summary_sentence_compares_with_the_median() {
        assert_eq!(
            typical(12.0, 14).sentence(),
            "12 min longer than the median of 14 runs"
        );
        assert_eq!(
            typical(-3.5, 2).sentence(),
            "3.5 min shorter than the median of 2 runs"
        );
        assert_eq!(typical(0.4, 1).sentence(), "about the median of 1 run");
    }
}
