//! `stats`: `Vigilo::runbook_stats` over a runbook with 10,000 executions of 20 steps, against
//! the same aggregate query on a raw rusqlite connection, in the same run.
//!
//! Seeding: one execution walked through the service gives the real rows (workspace, runbook,
//! snapshot, header, events); 9,999 more are inserted with raw SQL in one transaction, each a
//! copy with its own id, key, start and step times (so the medians are real work). Their event
//! documents are the template's: the figures read only the typed columns.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, params};
use vigilo_core::analytics::StatsQuery;
use vigilo_core::clock::ManualClock;
use vigilo_core::execution::machine::Command;
use vigilo_core::ids::ExecutionId;
use vigilo_core::runbook::{RunbookInput, StepInput};
use vigilo_core::service::{CreateRunbook, StartOptions, Vigilo, Who};
use vigilo_store::{SqliteOptions, SqliteStore};

use crate::Row;
use crate::stats::{Latencies, median};

/// Executions and steps of the benchmark.
pub const EXECUTIONS: usize = 10_000;
const STEPS: usize = 20;

/// The store's facts query (vigilo-store/src/sqlite/stats.rs), on a raw connection.
const RAW: &str = "SELECT e.id, e.runbook_id, e.runbook_version, e.status, s.at,
        ev.kind, ev.step_id, ev.at, ev.started_at
 FROM executions e
 JOIN step_events s ON s.execution_id = e.id AND s.seq = 1
 LEFT JOIN step_events ev ON ev.execution_id = e.id AND ev.seq > 1
     AND ev.kind IN ('approved', 'done', 'skipped', 'failed', 'retried', 'aborted')
 WHERE e.workspace_id = ?1 AND e.runbook_id = ?2
   AND (?3 IS NULL OR e.runbook_version = ?3)
   AND (?4 OR e.rehearsal = 0)
   AND (?5 IS NULL OR s.at >= ?5)
   AND (?6 IS NULL OR s.at < ?6)";

/// Seeds `db` and returns (workspace id, runbook id, owner) as text plus the `Who`.
async fn seed(db: &Path) -> Result<(Who, vigilo_core::ids::Key, String, String)> {
    let store = SqliteStore::open(db, SqliteOptions::default()).await?;
    let start: DateTime<Utc> = "2026-01-05T09:00:00Z".parse()?;
    let clock = Arc::new(ManualClock::new(start));
    let vigilo = Vigilo::with_clock(Arc::new(store), clock.clone());
    let (ws, owner) = vigilo.create_workspace("bench", "owner", "Owner").await?;
    let who = Who::new(ws.id, owner.id);
    let input = RunbookInput {
        title: "Twenty steps".into(),
        steps: (1..=STEPS)
            .map(|i| StepInput {
                title: format!("Step {i}"),
                est_minutes: 5,
                ..StepInput::default()
            })
            .collect(),
        ..RunbookInput::default()
    };
    let rb = vigilo
        .create_runbook(
            &who,
            input,
            CreateRunbook {
                publish: true,
                ..CreateRunbook::default()
            },
        )
        .await?;
    let ex = vigilo
        .start_execution(&who, rb.key, StartOptions::default())
        .await?;
    for step in 1..=STEPS as u32 {
        clock.advance(Duration::minutes(5));
        vigilo
            .act(&who, ex.key, Command::Done { step, note: None })
            .await?;
    }
    Ok((who, rb.key, ws.id.to_string(), rb.id.to_string()))
}

/// Copies the template execution `EXECUTIONS - 1` times with raw SQL, in one transaction.
fn copy_runs(db: &Path) -> Result<()> {
    let mut c = Connection::open(db)?;
    // The seeding store's writer may still be closing.
    c.busy_timeout(std::time::Duration::from_secs(30))?;
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let (id, ws, key, rb, version, doc, snapshot): (String, String, i64, String, i64, String, String) =
        tx.query_row(
            "SELECT id, workspace_id, key_number, runbook_id, runbook_version, doc, snapshot FROM executions",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
        )?;
    let events: Vec<(i64, String, String, Option<String>, i64)> = {
        let mut st = tx.prepare(
            "SELECT seq, doc, kind, step_id, at FROM step_events WHERE execution_id = ?1 ORDER BY seq",
        )?;
        let rows = st.query_map([&id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let t0 = events
        .first()
        .map(|e| e.4)
        .context("the template has no events")?;
    {
        let mut ins_ex = tx.prepare(
            "INSERT INTO executions (id, workspace_id, key_number, runbook_id, runbook_version,
                 status, rev, doc, rehearsal, snapshot, current_step)
             VALUES (?1, ?2, ?3, ?4, ?5, 'completed', ?6, ?7, 0, ?8, NULL)",
        )?;
        let mut ins_ev = tx.prepare(
            "INSERT INTO step_events (execution_id, seq, workspace_id, doc, kind, step_id, at, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for n in 1..EXECUTIONS as i64 {
            let new = ExecutionId::new().to_string();
            ins_ex.execute(params![
                new,
                ws,
                key + n,
                rb,
                version,
                events.len() as i64,
                doc,
                snapshot
            ])?;
            let mut at = t0 + n * 3_600_000_000;
            for (seq, ev_doc, kind, step, _) in &events {
                let started = at;
                if *seq > 1 {
                    // 1 to 12 minutes, varying by run and step.
                    at += ((n * 7 + seq * 13) % 12 + 1) * 60_000_000;
                }
                ins_ev.execute(params![
                    new,
                    seq,
                    ws,
                    ev_doc,
                    kind,
                    step,
                    at,
                    (*seq > 1).then_some(started)
                ])?;
            }
        }
    }
    tx.commit()?;
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;")?;
    Ok(())
}

/// Runs the raw query, reading every column, and returns the row count.
fn raw_facts(c: &Connection, ws: &str, rb: &str) -> Result<usize> {
    let mut st = c.prepare_cached(RAW)?;
    let mut rows = st.query(params![
        ws,
        rb,
        None::<i64>,
        false,
        None::<i64>,
        None::<i64>
    ])?;
    let mut n = 0;
    let mut sum = 0i64;
    while let Some(r) = rows.next()? {
        let _id: &str = r.get_ref(0)?.as_str()?;
        let v: i64 = r.get(2)?;
        let s: i64 = r.get(4)?;
        let _kind: Option<&str> = r.get_ref(5)?.as_str_or_null()?;
        let _step: Option<&str> = r.get_ref(6)?.as_str_or_null()?;
        let at: Option<i64> = r.get(7)?;
        let st: Option<i64> = r.get(8)?;
        sum = sum.wrapping_add(v + s + at.unwrap_or(0) - st.unwrap_or(0));
        n += 1;
    }
    std::hint::black_box(sum);
    Ok(n)
}

/// The benchmark: seed, then `rounds` interleaved rounds of the service and the raw query.
pub async fn bench(dir: &Path, rounds: usize) -> Result<Vec<Row>> {
    let db = dir.join("stats.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("stats.db{ext}")));
    }
    let t = Instant::now();
    let (who, key, ws, rb) = seed(&db).await?;
    copy_runs(&db)?;
    crate::say(&format!(
        "  seeded {EXECUTIONS} executions × {STEPS} steps in {:.1?}",
        t.elapsed()
    ));
    let store = SqliteStore::open(&db, SqliteOptions::default()).await?;
    let vigilo = Vigilo::new(Arc::new(store));
    let raw = Connection::open(&db)?;
    raw.execute_batch("PRAGMA mmap_size = 1073741824; PRAGMA temp_store = MEMORY;")?;
    // Warm both and check they see the same executions.
    let s = vigilo
        .runbook_stats(&who, key, StatsQuery::default())
        .await?;
    anyhow::ensure!(
        s.executions == EXECUTIONS as u64,
        "{} executions",
        s.executions
    );
    let n = raw_facts(&raw, &ws, &rb)?;
    let (mut svc, mut base, mut ratios) = (Latencies::default(), Latencies::default(), Vec::new());
    for round in 0..rounds {
        let one = |_: bool| -> Result<std::time::Duration> {
            let t = Instant::now();
            raw_facts(&raw, &ws, &rb)?;
            Ok(t.elapsed())
        };
        let (a, b) = if round % 2 == 0 {
            let t = Instant::now();
            vigilo
                .runbook_stats(&who, key, StatsQuery::default())
                .await?;
            let a = t.elapsed();
            (a, one(true)?)
        } else {
            let b = one(true)?;
            let t = Instant::now();
            vigilo
                .runbook_stats(&who, key, StatsQuery::default())
                .await?;
            (t.elapsed(), b)
        };
        svc.push(a);
        base.push(b);
        ratios.push(a.as_secs_f64() / b.as_secs_f64());
    }
    let m = svc.median();
    crate::say(&format!(
        "  runbook stats: service {} ; raw query ({n} rows) {}",
        svc.describe(),
        base.describe()
    ));
    Ok(vec![Row {
        name: format!("`runbook_stats`, {EXECUTIONS} executions × {STEPS} steps (SQLite)"),
        measured: format!("{m:.1} ms"),
        baseline: format!("{:.1} ms (the facts query, rows read)", base.median()),
        ratio: format!("{:.2}×", median(&ratios)),
        target: "≤ 100 ms".into(),
        met: m <= 100.0,
    }])
}
