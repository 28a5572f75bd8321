//! Writing a whole [`Snapshot`] into an empty database in one transaction (`vigilo migrate`),
//! and counting rows per table.
//!
//! Rows go in as they are: same ids, revisions, key numbers and counters, and every `doc`
//! byte for byte, audit entries included (with the chain heads set to each workspace's last
//! entry). The derived columns (search vectors, status, links…) are computed as
//! [`super::write`] computes them. Rows are sent a chunk at a time as arrays
//! (`INSERT … SELECT … FROM unnest($1, $2, …)`), which keeps round trips few.
//!
//! The transaction first locks the tables against writers, then checks that every table is
//! empty (otherwise nothing is written: [`TransferError::TargetNotEmpty`]), and counts every
//! table again before `COMMIT`: a count that differs from the snapshot's rolls everything back.

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;
use tracing::info;
use uuid::Uuid;

use std::collections::HashMap;

use vigilo_core::execution::StepEvent;
use vigilo_core::ids::ExecutionId;

use super::PgStore;
use super::convert;
use super::lean::EventColumns;
use crate::shared::SearchText;
use crate::transfer::{Snapshot, TABLES, TableCounts, TransferError};

/// Rows per statement.
const CHUNK: usize = 1000;

/// One statement's parameters: one array per column.
type Columns = Vec<Box<dyn ToSql + Sync + Send>>;

fn pg(doing: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> TransferError {
    let doing = doing.into();
    move |source| TransferError::Postgres { doing, source }
}

fn int(n: u64, table: &'static str) -> Result<i64, TransferError> {
    i64::try_from(n).map_err(|_| TransferError::Corrupt {
        table,
        detail: format!("{n} is too large for PostgreSQL's bigint"),
    })
}

/// Sends `rows` a chunk at a time through `sql`, whose parameters are the arrays `columns`
/// builds from a chunk.
async fn insert<T>(
    tx: &Transaction<'_>,
    table: &'static str,
    sql: &str,
    rows: &[T],
    columns: impl Fn(&[T]) -> Result<Columns, TransferError>,
) -> Result<(), TransferError> {
    if rows.is_empty() {
        return Ok(());
    }
    let stmt = tx
        .prepare(sql)
        .await
        .map_err(pg(format!("preparing the copy of {table}")))?;
    for chunk in rows.chunks(CHUNK) {
        let cols = columns(chunk)?;
        let params: Vec<&(dyn ToSql + Sync)> = cols
            .iter()
            .map(|c| c.as_ref() as &(dyn ToSql + Sync))
            .collect();
        tx.execute(&stmt, &params)
            .await
            .map_err(pg(format!("copying {table}")))?;
    }
    Ok(())
}

/// A column of a chunk: `f` of every row, as one array parameter.
fn col<T, V>(chunk: &[T], f: impl Fn(&T) -> V) -> Box<dyn ToSql + Sync + Send>
where
    Vec<V>: ToSql + Sync + Send + 'static,
{
    Box::new(chunk.iter().map(f).collect::<Vec<V>>())
}

impl PgStore {
    /// Rows per table of [`TABLES`].
    pub async fn table_counts(&self) -> Result<TableCounts, TransferError> {
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| TransferError::Pool(e.to_string()))?;
        count_tables(&**client).await
    }

    /// Writes every row of `snapshot` into this database, which must hold no Vigilo data, in
    /// one transaction; returns the row counts read back before `COMMIT` (equal to the
    /// snapshot's, or nothing was committed).
    ///
    /// Meant for a database no replica is using yet: the tables are locked for the duration,
    /// so a replica started meanwhile waits.
    pub async fn import_snapshot(&self, snapshot: &Snapshot) -> Result<TableCounts, TransferError> {
        let mut client = self
            .pool
            .get()
            .await
            .map_err(|e| TransferError::Pool(e.to_string()))?;
        let tx = client
            .transaction()
            .await
            .map_err(pg("starting the copy's transaction"))?;
        tx.batch_execute(&format!(
            "LOCK TABLE {}, audit_heads, execution_snapshots IN EXCLUSIVE MODE",
            TABLES.join(", ")
        ))
        .await
        .map_err(pg("locking the target's tables"))?;
        let before = count_tables(&*tx).await?;
        let found: Vec<String> = before
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(t, n)| format!("{t}: {n} rows"))
            .collect();
        if !found.is_empty() {
            return Err(TransferError::TargetNotEmpty {
                found: found.join(", "),
            });
        }
        write_all(&tx, snapshot).await?;
        let after = count_tables(&*tx).await?;
        let want = snapshot.counts();
        for table in TABLES {
            let (source_rows, target) = (want[table], after[table]);
            if source_rows != target {
                return Err(TransferError::CountMismatch {
                    table,
                    source_rows,
                    target,
                });
            }
        }
        tx.commit().await.map_err(pg("committing the copy"))?;
        info!(rows = ?after, "copied a snapshot into PostgreSQL");
        Ok(after)
    }
}

/// Rows per table.
async fn count_tables(
    c: &impl tokio_postgres::GenericClient,
) -> Result<TableCounts, TransferError> {
    let sql = TABLES
        .iter()
        .map(|t| format!("(SELECT count(*) FROM {t})"))
        .collect::<Vec<_>>()
        .join(", ");
    let row = c
        .query_one(&format!("SELECT {sql}"), &[])
        .await
        .map_err(pg("counting rows"))?;
    let mut out = TableCounts::new();
    for (i, table) in TABLES.into_iter().enumerate() {
        let n: i64 = row.try_get(i).map_err(pg("counting rows"))?;
        out.insert(table, u64::try_from(n).unwrap_or_default());
    }
    Ok(out)
}

/// The executions and their events, in the lean form of schema 4 ([`super::lean`]): each
/// execution's header, its snapshot (once per content and workspace) and state columns, each
/// event with its typed columns. Every event document is copied byte for byte, but for approvals
/// recorded before events carried the approver's role, which get it from the execution (see
/// [`convert::prepare`]); an execution its events do not rebuild is refused, naming it.
async fn write_executions(tx: &Transaction<'_>, s: &Snapshot) -> Result<(), TransferError> {
    let mut events: HashMap<ExecutionId, Vec<&StepEvent>> = HashMap::new();
    for (_, ev) in &s.step_events {
        events
            .entry(ev.value.execution)
            .or_default()
            .push(&ev.value);
    }
    let mut filled: HashMap<(ExecutionId, u64), String> = HashMap::new();
    for chunk in s.executions.chunks(CHUNK) {
        let mut batch = Vec::with_capacity(chunk.len());
        for e in chunk {
            let mut own: Vec<StepEvent> = events
                .get(&e.value.id)
                .map(|evs| evs.iter().map(|ev| (*ev).clone()).collect())
                .unwrap_or_default();
            own.sort_by_key(|ev| ev.seq);
            let converted = convert::convert(e.value.clone(), own).map_err(|reason| {
                TransferError::Corrupt {
                    table: "executions",
                    detail: format!(
                        "execution {} of workspace {}: {reason}",
                        e.value.key, e.value.workspace
                    ),
                }
            })?;
            for (seq, _, doc) in &converted.events {
                if let Some(doc) = doc {
                    filled.insert(
                        (e.value.id, u64::try_from(*seq).unwrap_or_default()),
                        doc.clone(),
                    );
                }
            }
            batch.push(converted);
        }
        convert::write_executions(tx, &batch, "executions")
            .await
            .map_err(pg("copying executions"))?;
    }
    insert(
        tx,
        "step_events",
        "INSERT INTO step_events (execution_id, seq, workspace_id, doc, kind, step_id, at,
             started_at)
         SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::text[], $5::text[],
             $6::uuid[], $7::timestamptz[], $8::timestamptz[])",
        &s.step_events,
        |c| {
            let seqs = c
                .iter()
                .map(|(_, e)| int(e.value.seq, "step_events"))
                .collect::<Result<Vec<_>, _>>()?;
            let cols: Vec<EventColumns> =
                c.iter().map(|(_, e)| EventColumns::of(&e.value)).collect();
            Ok(vec![
                col(c, |(_, e)| e.value.execution.0),
                Box::new(seqs),
                col(c, |(ws, _)| ws.0),
                col(c, |(_, e)| {
                    filled
                        .get(&(e.value.execution, e.value.seq))
                        .unwrap_or(&e.doc)
                        .clone()
                }),
                col(&cols, |x| x.kind.to_owned()),
                col(&cols, |x| x.step_id),
                col(&cols, |x| x.at),
                col(&cols, |x| x.started_at),
            ])
        },
    )
    .await
}

/// Every table's rows, parents first, then the chain heads.
async fn write_all(tx: &Transaction<'_>, s: &Snapshot) -> Result<(), TransferError> {
    insert(
        tx,
        "workspaces",
        "INSERT INTO workspaces (id, slug, slack_team, rev, doc)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::text[])",
        &s.workspaces,
        |c| {
            Ok(vec![
                col(c, |w| w.value.id.0),
                col(c, |w| w.value.slug.to_string()),
                col(c, |w| w.value.slack_team.clone()),
                col(c, |w| i64::try_from(w.value.rev).unwrap_or(i64::MAX)),
                col(c, |w| w.doc.clone()),
            ])
        },
    )
    .await?;
    insert(
        tx,
        "users",
        "INSERT INTO users (id, handle, rev, doc)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[])",
        &s.users,
        |c| {
            Ok(vec![
                col(c, |u| u.value.id.0),
                col(c, |u| u.value.handle.to_string()),
                col(c, |u| i64::try_from(u.value.rev).unwrap_or(i64::MAX)),
                col(c, |u| u.doc.clone()),
            ])
        },
    )
    .await?;
    insert(
        tx,
        "memberships",
        "INSERT INTO memberships (workspace_id, user_id, rev, doc)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::text[])",
        &s.memberships,
        |c| {
            Ok(vec![
                col(c, |m| m.value.workspace.0),
                col(c, |m| m.value.user.0),
                col(c, |m| i64::try_from(m.value.rev).unwrap_or(i64::MAX)),
                col(c, |m| m.doc.clone()),
            ])
        },
    )
    .await?;
    insert(
        tx,
        "member_identities",
        r#"INSERT INTO member_identities (workspace_id, platform, "user", user_id)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[])"#,
        &s.member_identities,
        |c| {
            Ok(vec![
                col(c, |i| i.workspace_id),
                col(c, |i| i.platform.clone()),
                col(c, |i| i.user.clone()),
                col(c, |i| i.user_id),
            ])
        },
    )
    .await?;
    insert(
        tx,
        "runbooks",
        "INSERT INTO runbooks (id, workspace_id, key_number, category, is_published, owner,
             archived, rev, search, title_search, doc)
         SELECT id, ws, num, cat, published, owner, archived, rev,
             setweight(to_tsvector('simple'::regconfig, title), 'A')
             || setweight(to_tsvector('simple'::regconfig, descr), 'B')
             || setweight(to_tsvector('simple'::regconfig, steps), 'C'),
             to_tsvector('simple'::regconfig, title), doc
         FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], $5::bool[], $6::uuid[],
             $7::bool[], $8::bigint[], $9::text[], $10::text[], $11::text[], $12::text[])
             AS r(id, ws, num, cat, published, owner, archived, rev, title, descr, steps, doc)",
        &s.runbooks,
        |c| {
            let mut nums = Vec::with_capacity(c.len());
            let mut revs = Vec::with_capacity(c.len());
            for r in c {
                nums.push(int(r.value.key.number, "runbooks")?);
                revs.push(int(r.value.rev, "runbooks")?);
            }
            let texts: Vec<SearchText> = c.iter().map(|r| SearchText::of(&r.value.body)).collect();
            Ok(vec![
                col(c, |r| r.value.id.0),
                col(c, |r| r.value.workspace.0),
                Box::new(nums),
                col(c, |r| r.value.body.category.as_str().to_owned()),
                col(c, |r| r.value.is_published),
                col(c, |r| r.value.owner.0),
                col(c, |r| r.value.archived_at.is_some()),
                Box::new(revs),
                col(&texts, |t| t.title.clone()),
                col(&texts, |t| t.description.clone()),
                col(&texts, |t| t.steps.clone()),
                col(c, |r| r.doc.clone()),
            ])
        },
    )
    .await?;
    insert(
        tx,
        "runbook_versions",
        "INSERT INTO runbook_versions (runbook_id, version, workspace_id, doc)
         SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::text[])",
        &s.runbook_versions,
        |c| {
            Ok(vec![
                col(c, |(_, v)| v.value.runbook.0),
                col(c, |(_, v)| i64::from(v.value.version)),
                col(c, |(ws, _)| ws.0),
                col(c, |(_, v)| v.doc.clone()),
            ])
        },
    )
    .await?;
    write_executions(tx, s).await?;
    insert(
        tx,
        "changes",
        "INSERT INTO changes (id, workspace_id, key_number, status, rev, doc)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], $5::bigint[],
             $6::text[])",
        &s.changes,
        |c| {
            let mut nums = Vec::with_capacity(c.len());
            let mut revs = Vec::with_capacity(c.len());
            for x in c {
                nums.push(int(x.value.key.number, "changes")?);
                revs.push(int(x.value.rev, "changes")?);
            }
            Ok(vec![
                col(c, |x| x.value.id.0),
                col(c, |x| x.value.workspace.0),
                Box::new(nums),
                col(c, |x| x.value.status.as_str().to_owned()),
                Box::new(revs),
                col(c, |x| x.doc.clone()),
            ])
        },
    )
    .await?;
    insert(
        tx,
        "incidents",
        "INSERT INTO incidents (id, workspace_id, key_number, status, rev, doc)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::text[], $5::bigint[],
             $6::text[])",
        &s.incidents,
        |c| {
            let mut nums = Vec::with_capacity(c.len());
            let mut revs = Vec::with_capacity(c.len());
            for x in c {
                nums.push(int(x.value.key.number, "incidents")?);
                revs.push(int(x.value.rev, "incidents")?);
            }
            Ok(vec![
                col(c, |x| x.value.id.0),
                col(c, |x| x.value.workspace.0),
                Box::new(nums),
                col(c, |x| x.value.status.as_str().to_owned()),
                Box::new(revs),
                col(c, |x| x.doc.clone()),
            ])
        },
    )
    .await?;
    insert(
        tx,
        "key_counters",
        "INSERT INTO key_counters (workspace_id, kind, last)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[])",
        &s.key_counters,
        |c| {
            let lasts = c
                .iter()
                .map(|k| int(k.last, "key_counters"))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(vec![
                col(c, |k| k.workspace.0),
                col(c, |k| k.kind.clone()),
                Box::new(lasts),
            ])
        },
    )
    .await?;
    insert(
        tx,
        "audit",
        "INSERT INTO audit (workspace_id, seq, id, at, actor, action, target,
             link_runbook, link_change, link_incident, link_execution, hash, doc)
         SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::timestamptz[],
             $5::uuid[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
             $11::text[], $12::text[], $13::text[])",
        &s.audit,
        |c| {
            let seqs = c
                .iter()
                .map(|e| int(e.value.seq, "audit"))
                .collect::<Result<Vec<_>, _>>()?;
            let link = |k: Option<vigilo_core::ids::Key>| k.map(|k| k.to_string());
            Ok(vec![
                col(c, |e| e.value.workspace.0),
                Box::new(seqs),
                col(c, |e| e.value.id.0),
                col(c, |e| -> DateTime<Utc> { e.value.at }),
                col(c, |e| e.value.actor.map(|a| a.0)),
                col(c, |e| e.value.action.clone()),
                col(c, |e| e.value.target.clone()),
                col(c, |e| link(e.value.links.runbook)),
                col(c, |e| link(e.value.links.change)),
                col(c, |e| link(e.value.links.incident)),
                col(c, |e| link(e.value.links.execution)),
                col(c, |e| e.value.hash.clone()),
                col(c, |e| e.doc.clone()),
            ])
        },
    )
    .await?;
    // Each workspace's chain head: its last entry (seq 0 and no hash before the first).
    let heads: Vec<(Uuid, i64, String)> = s
        .workspaces
        .iter()
        .map(|w| {
            let last = s
                .audit
                .iter()
                .filter(|e| e.value.workspace == w.value.id)
                .max_by_key(|e| e.value.seq);
            let (seq, hash) =
                last.map_or((0, String::new()), |e| (e.value.seq, e.value.hash.clone()));
            Ok((w.value.id.0, int(seq, "audit")?, hash))
        })
        .collect::<Result<_, TransferError>>()?;
    insert(
        tx,
        "audit_heads",
        "INSERT INTO audit_heads (workspace_id, seq, hash)
         SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[])",
        &heads,
        |c| {
            Ok(vec![
                col(c, |h| h.0),
                col(c, |h| h.1),
                col(c, |h| h.2.clone()),
            ])
        },
    )
    .await
}
