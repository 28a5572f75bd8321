//! File size per 1,000 executions of a 10-step runbook, every step walked to done.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rusqlite::Connection;

use crate::raw::Raw;
use crate::service::{STEPS, Service};

/// What the file-size run found.
pub struct SizeReport {
    /// Executions walked.
    pub executions: usize,
    /// Bytes of the store file with the workspace and the runbook only (after a checkpoint).
    pub base: u64,
    /// Bytes after the executions (after a checkpoint).
    pub after: u64,
    /// SQLite's page size.
    pub page_size: u64,
    /// Pages on the freelist after the run.
    pub free_pages: u64,
    /// Bytes per table and index (`dbstat`), largest first.
    pub tables: Vec<(String, u64)>,
    /// Time to walk them (64 concurrent tasks, `synchronous=FULL`).
    pub elapsed: Duration,
    /// The same executions in the raw baseline's schema: bytes before and after.
    pub raw: (u64, u64),
}

impl SizeReport {
    /// Bytes added per execution.
    pub fn per_execution(&self) -> f64 {
        (self.after.saturating_sub(self.base)) as f64 / self.executions as f64
    }

    /// Bytes added per execution in the raw baseline.
    pub fn raw_per_execution(&self) -> f64 {
        (self.raw.1.saturating_sub(self.raw.0)) as f64 / self.executions as f64
    }
}

/// Checkpoints the WAL into the file (truncating it) and returns the file's size.
fn checkpointed_size(db: &Path) -> Result<u64> {
    let conn = Connection::open(db)?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    drop(conn);
    Ok(std::fs::metadata(db)
        .with_context(|| format!("reading the size of {}", db.display()))?
        .len())
}

/// Bytes per table and index, from the `dbstat` virtual table.
fn tables(db: &Path) -> Result<Vec<(String, u64)>> {
    let conn = Connection::open(db)?;
    let mut stmt = conn
        .prepare("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY sum(pgsize) DESC")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<(String, u64)>>>()?;
    Ok(rows)
}

/// Walks `executions` executions to done through the service (64 concurrent tasks) in a fresh
/// store in `dir`, and the same in the raw baseline's schema.
pub async fn measure(dir: &Path, executions: usize) -> Result<SizeReport> {
    let db = dir.join("size.db");
    // The raw baseline's execution doc: a real one, from a scratch file.
    let template = {
        let scratch = Service::create(&dir.join("size-template.db")).await?;
        let doc = serde_json::to_value(scratch.start().await?)?;
        scratch.close().await?;
        doc
    };
    Service::create(&db).await?.close().await?;
    let base = checkpointed_size(&db)?;

    let svc = Arc::new(Service::open(&db).await?);
    let next = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (svc, next) = (Arc::clone(&svc), Arc::clone(&next));
        tasks.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < executions {
                let ex = svc.start().await?;
                for step in 1..=STEPS {
                    svc.done(ex.key, step).await?;
                }
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let elapsed = t.elapsed();
    match Arc::try_unwrap(svc) {
        Ok(svc) => svc.close().await?,
        Err(_) => anyhow::bail!("the service is still shared"),
    }
    let after = checkpointed_size(&db)?;
    let conn = Connection::open(&db)?;
    let page_size: u64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    let free_pages: u64 = conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
    drop(conn);
    let tables = tables(&db).unwrap_or_default();

    let raw_db = dir.join("size-raw.db");
    Raw::create_with(&raw_db, template.clone(), "OFF")?.close()?;
    let raw_base = checkpointed_size(&raw_db)?;
    let mut raw = Raw::create_with(&raw_db, template, "OFF")?;
    raw.walk(executions)?;
    raw.close()?;
    let raw_after = checkpointed_size(&raw_db)?;

    Ok(SizeReport {
        executions,
        base,
        after,
        page_size,
        free_pages,
        tables,
        elapsed,
        raw: (raw_base, raw_after),
    })
}
