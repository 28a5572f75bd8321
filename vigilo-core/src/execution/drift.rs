//! Drift: a newer version of the runbook was published while an execution runs an older one.
//!
//! An execution never switches version by itself: it walks the steps snapshotted at its start.
//! What changes is what its header says: the newest published version and how many steps differ
//! from the run's own, with the diff between the two at hand.

use serde::{Deserialize, Serialize};

use super::Execution;
use crate::runbook::Runbook;
use crate::runbook::diff::RunbookDiff;

/// A newer published version of an execution's runbook, and what changed since the run's own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// The version the execution runs.
    pub run_version: u32,
    /// The newest published version.
    pub newer_version: u32,
    /// Steps added, removed, changed or moved between the two.
    pub steps_changed: u32,
    /// The diff from the run's version to the newest.
    pub diff: RunbookDiff,
}

impl Drift {
    /// The drift described by `diff` (from the run's version to the newest published one).
    pub fn of(diff: RunbookDiff) -> Self {
        let s = &diff.summary;
        Self {
            run_version: diff.from_version,
            newer_version: diff.to_version,
            steps_changed: s.added + s.removed + s.changed + s.moved,
            diff,
        }
    }

    /// `v4 was published after this run started: 2 steps changed`.
    pub fn headline(&self) -> String {
        let changed = match self.steps_changed {
            0 => "no step changed".to_owned(),
            1 => "1 step changed".to_owned(),
            n => format!("{n} steps changed"),
        };
        format!(
            "v{} was published after this run started: {changed}",
            self.newer_version
        )
    }
}

/// The newest published version of `runbook` when it is newer than the one `exec` runs, else
/// `None`. A draft, an unpublished or an archived runbook has no newer published version, nor
/// has a runbook that is not the execution's.
pub fn newer_version(exec: &Execution, runbook: &Runbook) -> Option<u32> {
    (runbook.id == exec.runbook
        && runbook.is_published
        && runbook.archived_at.is_none()
        && runbook.version > exec.runbook_version)
        .then_some(runbook.version)
}
