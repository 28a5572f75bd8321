//! Whole executions into the lean form of schema 4 ([`super::lean`]): the conversion of
//! schema 4's migration, and of `vigilo migrate`'s import.
//!
//! [`prepare`] takes an execution as it was stored whole, with its events, fills what older
//! approval events lack (`satisfied_as`, from the step's approval when its approver and time
//! match the event's), and proves that the lean form gives the same execution back:
//! `history::replay` of its header, snapshot and events must equal it. An execution that does
//! not is never converted: the migration (or import) fails naming it, and nothing is changed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tokio_postgres::Transaction;
use tokio_postgres::types::ToSql;
use uuid::Uuid;
use vigilo_core::execution::history;
use vigilo_core::execution::{EventKind, Execution, StepEvent};

use super::error::PgError;
use super::lean::{EventColumns, ExecutionParts, ExecutionState};
use super::migrations::MIGRATION_4_FINISH;
use super::rows::to_doc;

/// Fills the `satisfied_as` of approval events recorded before events carried it, from
/// `old`'s step approvals, and checks that `old` is what its header, snapshot and (filled)
/// events rebuild. Returns which events were filled; on a mismatch, why.
pub(crate) fn prepare(old: &Execution, events: &mut [StepEvent]) -> Result<Vec<bool>, String> {
    let mut filled = vec![false; events.len()];
    for (ev, filled) in events.iter_mut().zip(filled.iter_mut()) {
        if ev.kind != EventKind::Approved || ev.satisfied_as.is_some() {
            continue;
        }
        // The approval still standing by this approver at this time (documents written
        // before approval policies read as a list of their one approval).
        let approval = ev
            .step_order
            .and_then(|o| (o as usize).checked_sub(1))
            .and_then(|i| old.steps.get(i))
            .and_then(|s| {
                s.approvals
                    .iter()
                    .find(|a| a.by == ev.actor && a.at == ev.at)
            });
        if let Some(a) = approval {
            ev.satisfied_as = Some(a.satisfied_as.clone());
            *filled = true;
        }
    }
    let (header, snapshot) = history::split(old);
    let rebuilt = history::replay(header, snapshot, events).map_err(|e| e.to_string())?;
    if rebuilt != *old {
        return Err(format!(
            "rebuilt from its {} events it differs from its stored document ({})",
            events.len(),
            difference(old, &rebuilt)
        ));
    }
    Ok(filled)
}

/// Where two executions differ first, in words.
fn difference(old: &Execution, new: &Execution) -> String {
    if old.rev != new.rev {
        return format!("revision {} stored, {} rebuilt", old.rev, new.rev);
    }
    if old.status != new.status {
        return format!(
            "status {} stored, {} rebuilt",
            old.status.as_str(),
            new.status.as_str()
        );
    }
    if let Some((i, (a, b))) = old
        .steps
        .iter()
        .zip(&new.steps)
        .enumerate()
        .find(|(_, (a, b))| a != b)
    {
        return format!("step {}: {a:?} stored, {b:?} rebuilt", i + 1);
    }
    "their execution fields differ (sealing time or abort reason)".into()
}

/// One execution in its lean form, ready to be written.
pub(crate) struct Converted {
    pub(crate) execution: Execution,
    pub(crate) parts: ExecutionParts,
    pub(crate) state: ExecutionState,
    /// The last event's time.
    pub(crate) updated_at: DateTime<Utc>,
    /// Each event's key (`seq`), typed columns, and its document when it was filled (else the
    /// stored document stays).
    pub(crate) events: Vec<(i64, EventColumns, Option<String>)>,
}

/// Converts `old` with its `events` (in `seq` order); the reason when it cannot be.
pub(crate) fn convert(old: Execution, mut events: Vec<StepEvent>) -> Result<Converted, String> {
    let filled = prepare(&old, &mut events)?;
    let what = format!("execution {}", old.key);
    let parts = ExecutionParts::of(&old, &what).map_err(|e| e.to_string())?;
    let state = ExecutionState::of(&old).map_err(|e| e.to_string())?;
    let updated_at = events.last().map_or(old.started_at, |ev| ev.at);
    let events = events
        .iter()
        .zip(filled)
        .map(|(ev, filled)| {
            let seq = i64::try_from(ev.seq).map_err(|e| e.to_string())?;
            let doc = if filled {
                Some(to_doc(ev, "step event").map_err(|e| e.to_string())?)
            } else {
                None
            };
            Ok((seq, EventColumns::of(ev), doc))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Converted {
        execution: old,
        parts,
        state,
        updated_at,
        events,
    })
}

/// Executions converted per round trip.
const BATCH: i64 = 500;

/// Schema 4's conversion, inside its transaction: every execution of the old `executions`
/// table (whole documents) into `executions_v4`, `execution_snapshots` and the typed event
/// columns, then [`MIGRATION_4_FINISH`].
pub(crate) async fn schema_4(tx: &Transaction<'_>, version: i32) -> Result<(), PgError> {
    let failed = |source| PgError::Migration { version, source };
    let select = tx
        .prepare(
            "SELECT e.id, e.workspace_id, e.doc,
                 ARRAY(SELECT v.seq FROM step_events v WHERE v.execution_id = e.id ORDER BY v.seq),
                 ARRAY(SELECT v.doc FROM step_events v WHERE v.execution_id = e.id ORDER BY v.seq)
             FROM executions e WHERE e.id > $1 ORDER BY e.id LIMIT $2",
        )
        .await
        .map_err(failed)?;
    let mut after = Uuid::nil();
    let mut converted_count = 0u64;
    loop {
        let rows = tx.query(&select, &[&after, &BATCH]).await.map_err(failed)?;
        let Some(last) = rows.last() else { break };
        after = last.try_get(0).map_err(failed)?;
        let mut batch = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: Uuid = row.try_get(0).map_err(failed)?;
            let ws: Uuid = row.try_get(1).map_err(failed)?;
            let doc: String = row.try_get(2).map_err(failed)?;
            let seqs: Vec<i64> = row.try_get(3).map_err(failed)?;
            let docs: Vec<String> = row.try_get(4).map_err(failed)?;
            let refuse = |execution: String, reason: String| PgError::Conversion {
                version,
                execution,
                workspace: ws,
                reason,
            };
            let old: Execution = serde_json::from_str(&doc).map_err(|e| {
                refuse(
                    id.to_string(),
                    format!("its document is not an execution: {e}"),
                )
            })?;
            let name = old.key.to_string();
            let mut events = Vec::with_capacity(docs.len());
            for (seq, doc) in seqs.iter().zip(&docs) {
                let ev: StepEvent = serde_json::from_str(doc).map_err(|e| {
                    refuse(
                        name.clone(),
                        format!("its event {seq} is not a step event: {e}"),
                    )
                })?;
                if i64::try_from(ev.seq).ok() != Some(*seq) || ev.execution.0 != id {
                    return Err(refuse(
                        name,
                        format!(
                            "its event row {seq} holds event {} of execution {}",
                            ev.seq, ev.execution
                        ),
                    ));
                }
                events.push(ev);
            }
            if old.id.0 != id || old.workspace.0 != ws {
                return Err(refuse(
                    name,
                    format!(
                        "its document names execution {} of workspace {}",
                        old.id, old.workspace
                    ),
                ));
            }
            batch.push(convert(old, events).map_err(|reason| refuse(name, reason))?);
        }
        write_executions(tx, &batch, "executions_v4")
            .await
            .map_err(failed)?;
        update_events(tx, &batch).await.map_err(failed)?;
        converted_count += batch.len() as u64;
    }
    tx.batch_execute(MIGRATION_4_FINISH).await.map_err(failed)?;
    tracing::info!(
        executions = converted_count,
        "converted executions to header, snapshot and events"
    );
    Ok(())
}

/// Writes converted executions: their snapshots (once per workspace and content) and their
/// rows into `table`.
pub(crate) async fn write_executions(
    tx: &Transaction<'_>,
    batch: &[Converted],
    table: &str,
) -> Result<(), tokio_postgres::Error> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut snapshots: BTreeMap<(Uuid, &str), &str> = BTreeMap::new();
    for c in batch {
        snapshots
            .entry((c.execution.workspace.0, c.parts.hash.as_str()))
            .or_insert(c.parts.snapshot.as_str());
    }
    let (ws, (hashes, docs)): (Vec<Uuid>, (Vec<&str>, Vec<&str>)) = snapshots
        .iter()
        .map(|((ws, hash), doc)| (*ws, (*hash, *doc)))
        .unzip();
    tx.execute(
        "INSERT INTO execution_snapshots (workspace_id, hash, doc)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[])
         ON CONFLICT DO NOTHING",
        &[&ws, &hashes, &docs],
    )
    .await?;

    let ids: Vec<Uuid> = batch.iter().map(|c| c.execution.id.0).collect();
    let wss: Vec<Uuid> = batch.iter().map(|c| c.execution.workspace.0).collect();
    let numbers: Vec<i64> = batch
        .iter()
        .map(|c| i64::try_from(c.execution.key.number).unwrap_or(i64::MAX))
        .collect();
    let runbooks: Vec<Uuid> = batch.iter().map(|c| c.execution.runbook.0).collect();
    let versions: Vec<i64> = batch
        .iter()
        .map(|c| i64::from(c.execution.runbook_version))
        .collect();
    let changes: Vec<Option<Uuid>> = batch
        .iter()
        .map(|c| c.execution.change_id.map(|x| x.0))
        .collect();
    let platforms: Vec<Option<&str>> = batch
        .iter()
        .map(|c| c.execution.channel.as_ref().map(|x| x.platform.as_str()))
        .collect();
    let channels: Vec<Option<&str>> = batch
        .iter()
        .map(|c| c.execution.channel.as_ref().map(|x| x.channel.as_str()))
        .collect();
    let rehearsals: Vec<bool> = batch.iter().map(|c| c.execution.rehearsal).collect();
    let hashes: Vec<&str> = batch.iter().map(|c| c.parts.hash.as_str()).collect();
    let headers: Vec<&str> = batch.iter().map(|c| c.parts.header.as_str()).collect();
    let statuses: Vec<&str> = batch.iter().map(|c| c.state.status).collect();
    let currents: Vec<Option<i32>> = batch.iter().map(|c| c.state.current_step).collect();
    let updated: Vec<DateTime<Utc>> = batch.iter().map(|c| c.updated_at).collect();
    let revs: Vec<i64> = batch.iter().map(|c| c.state.rev).collect();
    let params: [&(dyn ToSql + Sync); 15] = [
        &ids,
        &wss,
        &numbers,
        &runbooks,
        &versions,
        &changes,
        &platforms,
        &channels,
        &rehearsals,
        &hashes,
        &headers,
        &statuses,
        &currents,
        &updated,
        &revs,
    ];
    tx.execute(
        &format!(
            "INSERT INTO {table} (id, workspace_id, key_number, runbook_id, runbook_version,
                 change_id, channel_platform, channel_id, rehearsal, snapshot, doc, status,
                 current_step, updated_at, rev)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::uuid[],
                 $5::bigint[], $6::uuid[], $7::text[], $8::text[], $9::bool[], $10::text[],
                 $11::text[], $12::text[], $13::int4[], $14::timestamptz[], $15::bigint[])"
        ),
        &params,
    )
    .await?;
    Ok(())
}

/// Sets the typed columns (and the filled documents) of converted executions' event rows.
async fn update_events(
    tx: &Transaction<'_>,
    batch: &[Converted],
) -> Result<(), tokio_postgres::Error> {
    let mut ev_ids = Vec::new();
    let mut ev_seqs = Vec::new();
    let mut kinds = Vec::new();
    let mut steps = Vec::new();
    let mut ats = Vec::new();
    let mut started = Vec::new();
    let mut docs = Vec::new();
    for c in batch {
        for (seq, cols, doc) in &c.events {
            ev_ids.push(c.execution.id.0);
            ev_seqs.push(*seq);
            kinds.push(cols.kind);
            steps.push(cols.step_id);
            ats.push(cols.at);
            started.push(cols.started_at);
            docs.push(doc.as_deref());
        }
    }
    tx.execute(
        "UPDATE step_events v SET kind = u.kind, step_id = u.step_id, at = u.at,
             started_at = u.started_at, doc = coalesce(u.doc, v.doc)
         FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::uuid[], $5::timestamptz[],
             $6::timestamptz[], $7::text[]) AS u(execution_id, seq, kind, step_id, at, started_at, doc)
         WHERE v.execution_id = u.execution_id AND v.seq = u.seq",
        &[&ev_ids, &ev_seqs, &kinds, &steps, &ats, &started, &docs],
    )
    .await?;
    Ok(())
}
