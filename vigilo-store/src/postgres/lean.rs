//! Executions as PostgreSQL keeps them since schema 4: a header written once, a snapshot of
//! the steps stored once per content (`execution_snapshots`), a few state columns a step
//! updates, and the events — never the whole execution again (see
//! [`vigilo_core::execution::history`]).
//!
//! Writing: [`ExecutionParts`] (what an insert writes once), [`ExecutionState`] (what every
//! step updates), [`EventColumns`] (the typed copies of an event). Reading: [`StoredExecution`]
//! (the columns every read of an execution selects, [`EXECUTION_COLUMNS`] from
//! [`EXECUTION_FROM`]) is checked and rebuilt with [`history::replay`]; a snapshot whose
//! document does not hash to its key, events that do not replay, or state columns that
//! disagree with the events are [`StoreError::Corrupt`], naming the execution.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;
use vigilo_core::execution::history::{self, ExecutionHeader, Snapshot};
use vigilo_core::execution::{Execution, StepEvent};
use vigilo_core::ids::WorkspaceId;
use vigilo_core::store::{StoreError, StoreResult};

use super::rows::{from_doc, int, to_doc};
pub(crate) use crate::snapshot_cache::SnapshotCache;

/// The columns every read of an execution selects, in [`StoredExecution::at`]'s order: the
/// header, the snapshot's hash and document, the state columns, the event documents in `seq`
/// order.
pub(crate) const EXECUTION_COLUMNS: &str = "e.doc, e.snapshot, s.doc, e.rev, e.status, \
     ARRAY(SELECT v.doc FROM step_events v WHERE v.execution_id = e.id ORDER BY v.seq)";

/// The tables [`EXECUTION_COLUMNS`] reads (executions `e`, their snapshots `s`).
pub(crate) const EXECUTION_FROM: &str = "executions e LEFT JOIN execution_snapshots s \
     ON s.workspace_id = e.workspace_id AND s.hash = e.snapshot";

/// What an execution's insert writes once: its header document, and its snapshot with the
/// snapshot's content address.
pub(crate) struct ExecutionParts {
    /// `history::ExecutionHeader` as JSON.
    pub(crate) header: String,
    /// The snapshot document ([`Snapshot::document`]).
    pub(crate) snapshot: String,
    /// [`Snapshot::hash_of`] the document.
    pub(crate) hash: String,
}

impl ExecutionParts {
    /// The parts of `e` (named `what` in errors).
    pub(crate) fn of(e: &Execution, what: &str) -> StoreResult<Self> {
        let (header, snapshot) = history::split(e);
        let snapshot = snapshot.document().map_err(|err| {
            StoreError::backend(format!("cannot encode the steps of {what}"), err)
        })?;
        Ok(Self {
            header: to_doc(&header, what)?,
            hash: Snapshot::hash_of(&snapshot),
            snapshot,
        })
    }
}

/// The state columns of an execution: what a step transition updates.
pub(crate) struct ExecutionState {
    /// `running`, `completed` or `aborted`.
    pub(crate) status: &'static str,
    /// The current step, 1-based; `None` once sealed.
    pub(crate) current_step: Option<i32>,
    /// The revision.
    pub(crate) rev: i64,
}

impl ExecutionState {
    /// The state of `e`.
    pub(crate) fn of(e: &Execution) -> StoreResult<Self> {
        let current_step = e
            .current_index()
            .map(|i| {
                i32::try_from(i + 1).map_err(|err| {
                    StoreError::backend(format!("step {i} of execution {}", e.key), err)
                })
            })
            .transpose()?;
        Ok(Self {
            status: e.status.as_str(),
            current_step,
            rev: int(e.rev, "revision")?,
        })
    }
}

/// The typed columns of a step event (the document stays the event's JSON).
pub(crate) struct EventColumns {
    /// What happened (`done`, `approved`, …).
    pub(crate) kind: &'static str,
    /// The step's stable id (none for start and abort).
    pub(crate) step_id: Option<Uuid>,
    /// When.
    pub(crate) at: DateTime<Utc>,
    /// When the step became current (done, skipped, failed).
    pub(crate) started_at: Option<DateTime<Utc>>,
}

impl EventColumns {
    /// The columns of `ev`.
    pub(crate) fn of(ev: &StepEvent) -> Self {
        Self {
            kind: ev.kind.as_str(),
            step_id: ev.step_id.map(|s| s.0),
            at: ev.at,
            started_at: ev.started_at,
        }
    }
}

/// The event of `e`'s revision among `writes` (the store contract pairs every execution write
/// with it): its time is the execution's `updated_at`.
pub(crate) fn paired_event<'a>(
    writes: &'a [vigilo_core::store::Write],
    e: &Execution,
) -> StoreResult<&'a StepEvent> {
    writes
        .iter()
        .find_map(|w| match w {
            vigilo_core::store::Write::StepEvent(ev) if history::event_matches(e, ev) => Some(ev),
            _ => None,
        })
        .ok_or_else(|| StoreError::Backend {
            message: format!(
                "execution {} must be written with its event {} (an execution's state is its \
                 events)",
                e.key, e.rev
            ),
            source: None,
        })
}

/// An execution's columns as [`EXECUTION_COLUMNS`] selects them.
pub(crate) struct StoredExecution {
    header: String,
    hash: String,
    snapshot: Option<String>,
    rev: i64,
    status: String,
    events: Vec<String>,
}

impl StoredExecution {
    /// The columns of `row` from index `at` on (see [`EXECUTION_COLUMNS`]); `None` when the
    /// header is `NULL` (a left join that found no execution).
    pub(crate) fn at(row: &Row, at: usize, what: &str) -> StoreResult<Option<Self>> {
        let unreadable = |e: tokio_postgres::Error| StoreError::Corrupt(format!("{what}: {e}"));
        let header: Option<String> = row.try_get(at).map_err(unreadable)?;
        let Some(header) = header else {
            return Ok(None);
        };
        Ok(Some(Self {
            header,
            hash: row.try_get(at + 1).map_err(unreadable)?,
            snapshot: row.try_get(at + 2).map_err(unreadable)?,
            rev: row.try_get(at + 3).map_err(unreadable)?,
            status: row.try_get(at + 4).map_err(unreadable)?,
            events: row.try_get(at + 5).map_err(unreadable)?,
        }))
    }

    /// The execution these columns store, rebuilt from its header, snapshot and events, and
    /// checked against the state columns and the workspace it was read in.
    pub(crate) fn rebuild(
        self,
        ws: WorkspaceId,
        cache: &SnapshotCache,
        what: &str,
    ) -> StoreResult<Execution> {
        let header: ExecutionHeader = from_doc(&self.header, what)?;
        let what = format!("execution {}", header.key);
        let corrupt = |problem: String| StoreError::Corrupt(format!("{what}: {problem}"));
        if header.workspace != ws {
            return Err(corrupt(format!(
                "its header names workspace {}, but it is stored in workspace {ws}",
                header.workspace
            )));
        }
        let Some(doc) = self.snapshot else {
            return Err(corrupt(format!(
                "its snapshot of steps {} is missing",
                self.hash
            )));
        };
        let snapshot = cache.get(&self.hash, &doc, &what)?;
        let events = self
            .events
            .iter()
            .map(|doc| from_doc::<StepEvent>(doc, &format!("an event of {what}")))
            .collect::<StoreResult<Vec<_>>>()?;
        if let Some(ev) = events.iter().find(|ev| ev.execution != header.id) {
            return Err(corrupt(format!(
                "its event {} names execution {}",
                ev.seq, ev.execution
            )));
        }
        let id = header.id;
        let e = history::replay(header, snapshot, &events).map_err(|err| {
            StoreError::Corrupt(format!(
                "{err} (execution {id} cannot be rebuilt from its stored events)"
            ))
        })?;
        if i64::try_from(e.rev).ok() != Some(self.rev) || e.status.as_str() != self.status {
            return Err(corrupt(format!(
                "its stored state (revision {}, {}) disagrees with its events (revision {}, {})",
                self.rev,
                self.status,
                e.rev,
                e.status.as_str()
            )));
        }
        Ok(e)
    }
}
