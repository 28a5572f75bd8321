//! How SQLite keeps executions: a header written once, a content-addressed snapshot of the
//! steps shared by every run of the same content, and the events, which are the state
//! ([`vigilo_core::execution::history`]). A step transition updates three small columns of the
//! `executions` row (`status`, `current_step`, `rev`), inserts its event and appends its audit
//! entry; it never writes the execution again.
//!
//! Also here: schema 3, which converts the executions of older files in place, and the
//! snapshot cache (parsed snapshots by content, re-checked against the bytes read).

use std::sync::OnceLock;

use rusqlite::{Connection, params};
use vigilo_core::execution::history::{self, ExecutionHeader, Snapshot};
use vigilo_core::execution::{Execution, StepEvent};
use vigilo_core::ids::WorkspaceId;
use vigilo_core::store::{self, StoreError, StoreResult};

use super::rows::{from_doc, int, many, micros, sql_err, to_doc};
use super::write::{inserted, not_updated, parent_workspace, run_insert, run_update};
use crate::snapshot_cache::SnapshotCache;

/// Schema 3: executions kept as header, snapshot and events. The columns are added here; the
/// rows are rewritten by [`convert_executions`] in the same transaction.
pub(crate) const MIGRATION_3: &str = r#"
CREATE TABLE execution_snapshots (
    workspace_id  TEXT NOT NULL,
    hash          TEXT NOT NULL,
    doc           TEXT NOT NULL,
    PRIMARY KEY (workspace_id, hash)
) STRICT;

ALTER TABLE executions ADD COLUMN rehearsal INTEGER NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN snapshot TEXT NOT NULL DEFAULT '';
ALTER TABLE executions ADD COLUMN current_step INTEGER;

ALTER TABLE step_events ADD COLUMN kind TEXT NOT NULL DEFAULT '';
ALTER TABLE step_events ADD COLUMN step_id TEXT;
ALTER TABLE step_events ADD COLUMN at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE step_events ADD COLUMN started_at INTEGER;

-- Search: a runbook whose title is exactly the words searched comes first, found by index
-- however common the words are (see `search.rs`).
ALTER TABLE runbooks ADD COLUMN title_key TEXT NOT NULL DEFAULT '';
CREATE INDEX runbooks_by_title_key ON runbooks (workspace_id, title_key) WHERE archived = 0;
"#;

/// The columns of the state a transition moves: status, current step (1-based, `NULL` once
/// sealed) and revision.
fn state(e: &Execution) -> (&'static str, Option<i64>, u64) {
    (
        e.status.as_str(),
        e.current_index().and_then(|i| i64::try_from(i + 1).ok()),
        e.rev,
    )
}

/// Stores a new execution (header, snapshot once per content) or moves an existing one's
/// state columns. The contract made sure the commit carries the event of the new revision,
/// which is where the steps' state lives.
pub(crate) fn write_execution(
    conn: &Connection,
    ws: WorkspaceId,
    e: &Execution,
    expected: Option<u64>,
) -> StoreResult<()> {
    let what = format!("execution {}", e.key);
    let id = e.id.to_string();
    let wsid = ws.to_string();
    let (status, current, rev) = state(e);
    let Some(read_rev) = expected else {
        let (header, snapshot) = history::split(e);
        let hash = store_snapshot(conn, &wsid, &snapshot, &what)?;
        let doc = to_doc(&header, &what)?;
        return inserted(
            run_insert(
                conn,
                "INSERT INTO executions (id, workspace_id, key_number, runbook_id, runbook_version,
                     status, change_id, channel_platform, channel_id, rev, doc, rehearsal,
                     snapshot, current_step)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    id,
                    wsid,
                    int(e.key.number, "key number")?,
                    e.runbook.to_string(),
                    e.runbook_version,
                    status,
                    e.change_id.map(|c| c.to_string()),
                    e.channel.as_ref().map(|c| c.platform.as_str()),
                    e.channel.as_ref().map(|c| c.channel.as_str()),
                    rev,
                    doc,
                    e.rehearsal,
                    hash,
                    current,
                ],
            ),
            |_| what.clone(),
        )
        .map(drop);
    };
    let changed = run_update(
        conn,
        "UPDATE executions SET status = ?3, current_step = ?4, rev = ?5
         WHERE id = ?1 AND workspace_id = ?2 AND rev = ?6",
        params![id, wsid, status, current, rev, read_rev],
    )
    .map_err(sql_err)?;
    if changed {
        Ok(())
    } else {
        Err(not_updated(
            conn,
            "SELECT rev FROM executions WHERE id = ?1 AND workspace_id = ?2",
            [&id, &wsid],
            &what,
            read_rev,
        ))
    }
}

/// Writes the snapshot row of `snapshot` unless its content is stored already; returns its
/// hash.
fn store_snapshot(
    conn: &Connection,
    wsid: &str,
    snapshot: &Snapshot,
    what: &str,
) -> StoreResult<String> {
    let doc = snapshot
        .document()
        .map_err(|e| StoreError::backend(format!("cannot encode the steps of {what}"), e))?;
    let hash = Snapshot::hash_of(&doc);
    run_insert(
        conn,
        "INSERT INTO execution_snapshots (workspace_id, hash, doc) VALUES (?1, ?2, ?3)
         ON CONFLICT (workspace_id, hash) DO NOTHING",
        params![wsid, hash, doc],
    )
    .map_err(sql_err)?;
    Ok(hash)
}

/// Appends an event, with the typed columns analytics read.
pub(crate) fn write_event(conn: &Connection, ws: WorkspaceId, ev: &StepEvent) -> StoreResult<()> {
    let what = format!("event {} of execution {}", ev.seq, ev.execution);
    let execution = ev.execution.to_string();
    let owner_ws = parent_workspace(
        conn,
        "SELECT workspace_id FROM executions WHERE id = ?1",
        &execution,
        format!("execution {}", ev.execution),
    )?;
    store::contract::belongs(ws, owner_ws, &what)?;
    let doc = to_doc(ev, &what)?;
    inserted(
        run_insert(
            conn,
            "INSERT INTO step_events (execution_id, seq, workspace_id, doc, kind, step_id, at, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                execution,
                ev.seq,
                ws.to_string(),
                doc,
                ev.kind.as_str(),
                ev.step_id.map(|s| s.to_string()),
                micros(ev.at),
                ev.started_at.map(micros),
            ],
        ),
        |_| what.clone(),
    )
    .map(drop)
}

/// The columns a read of executions selects, in this order, from `executions e` joined with
/// its snapshot `s`: the header, the snapshot's address and document, and the id.
pub(crate) const COLUMNS: &str = "e.doc, e.snapshot, s.doc, e.id";

/// The join every read of executions uses (outer, so an execution whose snapshot row went
/// missing is reported, not hidden).
pub(crate) const FROM: &str = "executions e LEFT JOIN execution_snapshots s
     ON s.workspace_id = e.workspace_id AND s.hash = e.snapshot";

/// Reads the executions `sql` selects (its first columns being [`COLUMNS`]) and rebuilds each
/// from its events.
pub(crate) fn read_executions<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> StoreResult<Vec<Execution>> {
    let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
    let mut rows = stmt.query(params).map_err(sql_err)?;
    let mut parts = Vec::new();
    while let Some(row) = rows.next().map_err(sql_err)? {
        let header: String = row.get(0).map_err(sql_err)?;
        let hash: String = row.get(1).map_err(sql_err)?;
        let doc: Option<String> = row.get(2).map_err(sql_err)?;
        let id: String = row.get(3).map_err(sql_err)?;
        parts.push((header, hash, doc, id));
    }
    drop(rows);
    parts
        .into_iter()
        .map(|(header, hash, doc, id)| rebuild(conn, &header, &hash, &doc, &id))
        .collect()
}

/// One execution from its stored parts.
fn rebuild(
    conn: &Connection,
    header: &str,
    hash: &str,
    snapshot_doc: &Option<String>,
    id: &str,
) -> StoreResult<Execution> {
    let header: ExecutionHeader = from_doc(header, &format!("execution {id}"))?;
    let what = format!("execution {}", header.key);
    let Some(snapshot_doc) = snapshot_doc else {
        return Err(StoreError::Corrupt(format!(
            "the steps of {what} (snapshot {hash}) are missing: the snapshot row was deleted"
        )));
    };
    let snapshot = snapshots().get(hash, snapshot_doc, &what)?;
    let events = events_of(conn, id, &what)?;
    history::replay(header, snapshot, &events).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The events of execution `id`, in order.
pub(crate) fn events_of(conn: &Connection, id: &str, what: &str) -> StoreResult<Vec<StepEvent>> {
    many(
        conn,
        "SELECT doc FROM step_events WHERE execution_id = ?1 ORDER BY seq",
        [id],
        &format!("an event of {what}"),
    )
}

/// The process's snapshot cache: reads are functions of a connection, so the cache is shared
/// by every connection (and every SQLite store) of the process.
fn snapshots() -> &'static SnapshotCache {
    static CACHE: OnceLock<SnapshotCache> = OnceLock::new();
    CACHE.get_or_init(SnapshotCache::default)
}

/// Schema 3's rewrite of older rows: each runbook gets its title key (from the indexed title),
/// and every execution stored whole by schemas 1–2 is split: the header replaces the
/// document, the steps move to their snapshot row, approvals get the role they were given with
/// from the execution that holds them, events get their typed columns. Each converted
/// execution must rebuild, from its events, equal to the document it replaces; if one does
/// not, the migration fails and the file is left as it was.
pub(crate) fn convert_executions(conn: &Connection) -> rusqlite::Result<()> {
    let titles: Vec<(i64, String)> = conn
        .prepare("SELECT pk, title FROM runbooks JOIN runbook_search s ON s.rowid = runbooks.pk")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (pk, title) in titles {
        conn.execute(
            "UPDATE runbooks SET title_key = ?2 WHERE pk = ?1",
            params![pk, vigilo_core::store::search::title_key(&title)],
        )?;
    }
    let rows: Vec<(String, String, String)> = conn
        .prepare("SELECT id, workspace_id, doc FROM executions")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (id, wsid, doc) in rows {
        convert_one(conn, &id, &wsid, &doc).map_err(|message| {
            rusqlite::Error::ToSqlConversionFailure(
                format!("schema 3 cannot convert execution {id}: {message}").into(),
            )
        })?;
    }
    Ok(())
}

fn convert_one(conn: &Connection, id: &str, wsid: &str, doc: &str) -> Result<(), String> {
    let old: Execution = serde_json::from_str(doc).map_err(|e| e.to_string())?;
    let docs: Vec<String> = conn
        .prepare("SELECT doc FROM step_events WHERE execution_id = ?1 ORDER BY seq")
        .and_then(|mut stmt| stmt.query_map([id], |r| r.get(0))?.collect())
        .map_err(|e| e.to_string())?;
    let mut events: Vec<StepEvent> = docs
        .iter()
        .map(|d| serde_json::from_str(d).map_err(|e| format!("an event: {e}")))
        .collect::<Result<_, _>>()?;
    // Which events gain a field; the others keep their documents byte for byte.
    let mut patched = vec![false; events.len()];
    for (ev, patched) in events.iter_mut().zip(&mut patched) {
        if ev.kind == vigilo_core::execution::EventKind::Approved && ev.satisfied_as.is_none() {
            ev.satisfied_as = ev
                .step_order
                .and_then(|o| old.steps.get((o as usize).checked_sub(1)?))
                .and_then(|s| {
                    s.approvals
                        .iter()
                        .find(|a| a.by == ev.actor && a.at == ev.at)
                })
                .map(|a| a.satisfied_as.clone());
            *patched = ev.satisfied_as.is_some();
        }
    }
    let (header, snapshot) = history::split(&old);
    let rebuilt =
        history::replay(header.clone(), snapshot.clone(), &events).map_err(|e| e.to_string())?;
    if rebuilt != old {
        return Err(
            "its events do not rebuild the stored state; open the file with the previous release and export it"
                .into(),
        );
    }
    let what = format!("execution {}", old.key);
    let hash = store_snapshot(conn, wsid, &snapshot, &what).map_err(|e| e.to_string())?;
    let header_doc = to_doc(&header, &what).map_err(|e| e.to_string())?;
    let (_, current, _) = state(&old);
    conn.execute(
        "UPDATE executions SET doc = ?2, rehearsal = ?3, snapshot = ?4, current_step = ?5 WHERE id = ?1",
        params![id, header_doc, old.rehearsal, hash, current],
    )
    .map_err(|e| e.to_string())?;
    for ((ev, doc), patched) in events.iter().zip(docs).zip(patched) {
        let doc = if patched {
            to_doc(ev, &what).map_err(|e| e.to_string())?
        } else {
            doc
        };
        conn.execute(
            "UPDATE step_events SET doc = ?3, kind = ?4, step_id = ?5, at = ?6, started_at = ?7
             WHERE execution_id = ?1 AND seq = ?2",
            params![
                id,
                int(ev.seq, "seq").map_err(|e| e.to_string())?,
                doc,
                ev.kind.as_str(),
                ev.step_id.map(|s| s.to_string()),
                micros(ev.at),
                ev.started_at.map(micros),
            ],
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}
