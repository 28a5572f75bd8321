//! What the timing figures are computed from: each execution counted, with the few columns of
//! its events that matter ([`RunFacts`]), as [`Store::run_facts`](crate::store::Store::run_facts)
//! answers them — an aggregate read over the event rows, never whole executions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::execution::{EventKind, Execution, ExecutionStatus, StepEvent};
use crate::ids::{RunbookId, StepId};

/// Which executions count: one runbook or the whole workspace, a version, a window of start
/// times, rehearsals or not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsQuery {
    /// One runbook; `None` for every runbook of the workspace.
    pub runbook: Option<RunbookId>,
    /// Only executions of this version.
    pub version: Option<u32>,
    /// Only executions started at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only executions started before this time.
    pub until: Option<DateTime<Utc>>,
    /// Count rehearsals too (left out by default).
    pub include_rehearsals: bool,
}

impl StatsQuery {
    /// The executions of one runbook, rehearsals left out.
    pub fn runbook(id: RunbookId) -> Self {
        Self {
            runbook: Some(id),
            ..Self::default()
        }
    }

    /// True if an execution with these properties counts. Stores with an index answer the
    /// same question in their query; this is the reference, used by the in-memory store.
    pub fn admits(
        &self,
        runbook: RunbookId,
        version: u32,
        rehearsal: bool,
        started_at: DateTime<Utc>,
    ) -> bool {
        self.runbook.is_none_or(|r| r == runbook)
            && self.version.is_none_or(|v| v == version)
            && (self.include_rehearsals || !rehearsal)
            && self.since.is_none_or(|s| started_at >= s)
            && self.until.is_none_or(|u| started_at < u)
    }
}

/// One event, reduced to what the figures use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFact {
    /// What happened (`started` is not repeated here: see [`RunFacts::started_at`]).
    pub kind: EventKind,
    /// The step, absent for `aborted`.
    pub step: Option<StepId>,
    /// When.
    pub at: DateTime<Utc>,
    /// When the step became current (on done, skipped and failed).
    pub started_at: Option<DateTime<Utc>>,
}

/// One execution that counts, with its events (in any order: the figures do not depend on it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFacts {
    /// The runbook executed.
    pub runbook: RunbookId,
    /// The version it ran.
    pub version: u32,
    /// Running, completed or aborted.
    pub status: ExecutionStatus,
    /// When it started (its `started` event).
    pub started_at: DateTime<Utc>,
    /// Its other events of the kinds the figures use: approved, done, skipped, failed, retried,
    /// aborted. Kinds added later are left out by the store.
    pub events: Vec<EventFact>,
}

impl RunFacts {
    /// The facts of `execution` from its events, if `query` admits it: the reference an
    /// adapter's aggregate query must agree with (the in-memory store answers with it).
    pub fn of(execution: &Execution, events: &[StepEvent], query: &StatsQuery) -> Option<Self> {
        if !query.admits(
            execution.runbook,
            execution.runbook_version,
            execution.rehearsal,
            execution.started_at,
        ) {
            return None;
        }
        Some(RunFacts {
            runbook: execution.runbook,
            version: execution.runbook_version,
            status: execution.status,
            started_at: execution.started_at,
            events: events
                .iter()
                .filter(|e| fact_kind(e.kind.as_str()).is_some())
                .map(|e| EventFact {
                    kind: e.kind,
                    step: e.step_id,
                    at: e.at,
                    started_at: e.started_at,
                })
                .collect(),
        })
    }

    /// When it was sealed: its last event, for a sealed execution.
    pub fn sealed_at(&self) -> Option<DateTime<Utc>> {
        if !self.status.is_sealed() {
            return None;
        }
        Some(
            self.events
                .iter()
                .map(|e| e.at)
                .max()
                .unwrap_or(self.started_at),
        )
    }
}

/// `kind` as stored (`EventKind::as_str`), or `None` for a kind the figures do not use (and
/// kinds added after this release).
pub fn fact_kind(kind: &str) -> Option<EventKind> {
    Some(match kind {
        "approved" => EventKind::Approved,
        "done" => EventKind::Done,
        "skipped" => EventKind::Skipped,
        "failed" => EventKind::Failed,
        "retried" => EventKind::Retried,
        "aborted" => EventKind::Aborted,
        _ => return None,
    })
}

/// The stored kinds [`fact_kind`] reads, for an SQL `IN (…)` list.
pub const FACT_KINDS: &[&str] = &[
    "approved", "done", "skipped", "failed", "retried", "aborted",
];
