//! The facts timing figures are computed from ([`Store::run_facts`]) in one statement over
//! the typed columns of `executions` and `step_events` (schema 4), answered from the two
//! covering indexes of schema 5, never from the documents.
//!
//! [`Store::run_facts`]: vigilo_core::store::Store::run_facts

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use uuid::Uuid;
use vigilo_core::analytics::{EventFact, RunFacts, StatsQuery, fact_kind};
use vigilo_core::execution::ExecutionStatus;
use vigilo_core::ids::{RunbookId, StepId, WorkspaceId};
use vigilo_core::store::{StoreError, StoreResult};

use super::error::store_err;

/// Schema 5: what the facts query reads, in the indexes (index-only scans once vacuumed).
pub(crate) const MIGRATION_5: &str = r#"
CREATE INDEX executions_facts
    ON executions (workspace_id, runbook_id, runbook_version) INCLUDE (rehearsal, status);
CREATE INDEX step_events_facts
    ON step_events (execution_id, seq) INCLUDE (kind, step_id, at, started_at);
"#;

/// Rows of one execution may come in any order (no sort: they are grouped by id here).
const FACTS: &str = "
SELECT e.id, e.runbook_id, e.runbook_version, e.status, s.at,
       ev.kind, ev.step_id, ev.at, ev.started_at
FROM executions e
JOIN step_events s ON s.execution_id = e.id AND s.seq = 1
LEFT JOIN step_events ev ON ev.execution_id = e.id AND ev.seq > 1
     AND ev.kind IN ('approved', 'done', 'skipped', 'failed', 'retried', 'aborted')
WHERE e.workspace_id = $1
  AND ($2::uuid IS NULL OR e.runbook_id = $2)
  AND ($3::bigint IS NULL OR e.runbook_version = $3)
  AND ($4 OR NOT e.rehearsal)
  AND ($5::timestamptz IS NULL OR s.at >= $5)
  AND ($6::timestamptz IS NULL OR s.at < $6)";

fn corrupt(what: &str, value: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("run facts: the {what} `{value}` cannot be read"))
}

fn status(s: &str) -> StoreResult<ExecutionStatus> {
    Ok(match s {
        "running" => ExecutionStatus::Running,
        "completed" => ExecutionStatus::Completed,
        "aborted" => ExecutionStatus::Aborted,
        other => return Err(corrupt("status", other)),
    })
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    i: usize,
) -> StoreResult<T> {
    row.try_get(i).map_err(|e| corrupt("column", e))
}

/// Every execution `query` admits in `ws`, with its events of the kinds the figures use.
pub(crate) async fn run_facts(
    c: &Client,
    ws: WorkspaceId,
    query: &StatsQuery,
) -> StoreResult<Vec<RunFacts>> {
    let stmt = c
        .prepare_cached(FACTS)
        .await
        .map_err(|e| store_err("preparing the run facts", e))?;
    let version = query.version.map(i64::from);
    let rows = c
        .query(
            &stmt,
            &[
                &ws.0,
                &query.runbook.map(|r| r.0),
                &version,
                &query.include_rehearsals,
                &query.since,
                &query.until,
            ],
        )
        .await
        .map_err(|e| store_err("reading the run facts", e))?;
    let mut out: Vec<RunFacts> = Vec::new();
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    for row in &rows {
        let id: Uuid = get(row, 0)?;
        let at_index = match index.get(&id) {
            Some(i) => *i,
            None => {
                let version: i64 = get(row, 2)?;
                let state: String = get(row, 3)?;
                let started_at: Option<DateTime<Utc>> = get(row, 4)?;
                out.push(RunFacts {
                    runbook: RunbookId(get(row, 1)?),
                    version: u32::try_from(version).map_err(|_| corrupt("version", version))?,
                    status: status(&state)?,
                    started_at: started_at.ok_or_else(|| corrupt("start of execution", id))?,
                    events: Vec::new(),
                });
                index.insert(id, out.len() - 1);
                out.len() - 1
            }
        };
        let kind: Option<String> = get(row, 5)?;
        let Some(kind) = kind.as_deref().and_then(fact_kind) else {
            continue;
        };
        let step: Option<Uuid> = get(row, 6)?;
        let step = step.map(StepId);
        let at: Option<DateTime<Utc>> = get(row, 7)?;
        if let Some(run) = out.get_mut(at_index) {
            run.events.push(EventFact {
                kind,
                step,
                at: at.ok_or_else(|| corrupt("event time", id))?,
                started_at: get(row, 8)?,
            });
        }
    }
    Ok(out)
}
