//! The facts timing figures are computed from ([`Store::run_facts`]): one query over the
//! typed columns of `executions` and `step_events`, answered from two covering indexes
//! (schema 4), never from the documents.
//!
//! [`Store::run_facts`]: vigilo_core::store::Store::run_facts

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use rusqlite::types::ValueRef;
use vigilo_core::analytics::{EventFact, RunFacts, StatsQuery, fact_kind};
use vigilo_core::execution::ExecutionStatus;
use vigilo_core::ids::{RunbookId, StepId, WorkspaceId};
use vigilo_core::store::{StoreError, StoreResult};

use super::rows::{micros, sql_err};

/// Schema 4: what the facts query reads, in index order, so it never touches a document.
pub(crate) const MIGRATION_4: &str = r#"
CREATE INDEX executions_facts
    ON executions (workspace_id, runbook_id, runbook_version, rehearsal, status, id);
CREATE INDEX step_events_facts
    ON step_events (execution_id, seq, kind, step_id, at, started_at);
"#;

/// The query's shape; `{runbook}` is the runbook condition or nothing. No sort: one would
/// make the planner walk every execution of the file in id order; rows are grouped by
/// execution here (a nested loop gives them one execution after another anyway).
macro_rules! facts_sql {
    ($runbook:literal) => {
        concat!(
            "SELECT e.id, e.runbook_id, e.runbook_version, e.status, s.at,
                    ev.kind, ev.step_id, ev.at, ev.started_at
             FROM executions e
             JOIN step_events s ON s.execution_id = e.id AND s.seq = 1
             LEFT JOIN step_events ev ON ev.execution_id = e.id AND ev.seq > 1
                 AND ev.kind IN ('approved', 'done', 'skipped', 'failed', 'retried', 'aborted')
             WHERE e.workspace_id = ?1 ",
            $runbook,
            " AND (?3 IS NULL OR e.runbook_version = ?3)
               AND (?4 OR e.rehearsal = 0)
               AND (?5 IS NULL OR s.at >= ?5)
               AND (?6 IS NULL OR s.at < ?6)"
        )
    };
}

const ONE_RUNBOOK: &str = facts_sql!("AND e.runbook_id = ?2");
const WHOLE_WORKSPACE: &str = facts_sql!("AND ?2 IS NULL");

fn corrupt(what: &str, value: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("run facts: the {what} `{value}` cannot be read"))
}

fn time(us: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| corrupt("time", us))
}

fn status(s: &str) -> StoreResult<ExecutionStatus> {
    Ok(match s {
        "running" => ExecutionStatus::Running,
        "completed" => ExecutionStatus::Completed,
        "aborted" => ExecutionStatus::Aborted,
        other => return Err(corrupt("status", other)),
    })
}

fn str_of<'a>(v: ValueRef<'a>, what: &str) -> StoreResult<&'a str> {
    v.as_str().map_err(|_| corrupt(what, "not text"))
}

/// Every execution `query` admits in `ws`, with its events of the kinds the figures use.
pub(crate) fn run_facts(
    c: &Connection,
    ws: WorkspaceId,
    query: &StatsQuery,
) -> StoreResult<Vec<RunFacts>> {
    let sql = if query.runbook.is_some() {
        ONE_RUNBOOK
    } else {
        WHOLE_WORKSPACE
    };
    let mut stmt = c.prepare_cached(sql).map_err(sql_err)?;
    let mut rows = stmt
        .query(rusqlite::params![
            ws.to_string(),
            query.runbook.map(|r| r.to_string()),
            query.version,
            query.include_rehearsals,
            query.since.map(micros),
            query.until.map(micros),
        ])
        .map_err(sql_err)?;
    let mut out: Vec<RunFacts> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut current = String::new();
    let mut at_index = 0;
    while let Some(row) = rows.next().map_err(sql_err)? {
        let id = str_of(row.get_ref(0).map_err(sql_err)?, "execution id")?;
        if out.is_empty() || id != current {
            current.clear();
            current.push_str(id);
            if let Some(i) = index.get(id) {
                at_index = *i;
            } else {
                let runbook: RunbookId = str_of(row.get_ref(1).map_err(sql_err)?, "runbook id")?
                    .parse()
                    .map_err(|e| corrupt("runbook id", e))?;
                let version: i64 = row.get(2).map_err(sql_err)?;
                out.push(RunFacts {
                    runbook,
                    version: u32::try_from(version).map_err(|_| corrupt("version", version))?,
                    status: status(str_of(row.get_ref(3).map_err(sql_err)?, "status")?)?,
                    started_at: time(row.get(4).map_err(sql_err)?)?,
                    events: Vec::new(),
                });
                at_index = out.len() - 1;
                index.insert(current.clone(), at_index);
            }
        }
        let kind = match row.get_ref(5).map_err(sql_err)? {
            ValueRef::Null => continue,
            v => match fact_kind(str_of(v, "event kind")?) {
                Some(k) => k,
                None => continue,
            },
        };
        let step = match row.get_ref(6).map_err(sql_err)? {
            ValueRef::Null => None,
            v => Some(
                str_of(v, "step id")?
                    .parse::<StepId>()
                    .map_err(|e| corrupt("step id", e))?,
            ),
        };
        let at = time(row.get(7).map_err(sql_err)?)?;
        let started_at = row
            .get::<_, Option<i64>>(8)
            .map_err(sql_err)?
            .map(time)
            .transpose()?;
        if let Some(run) = out.get_mut(at_index) {
            run.events.push(EventFact {
                kind,
                step,
                at,
                started_at,
            });
        }
    }
    Ok(out)
}
