//! The baseline: raw rusqlite, what a hand-written persistence layer would do for one step
//! transition, in a file of its own with the same durability (WAL, `synchronous=FULL`).
//!
//! One transition is one `BEGIN IMMEDIATE … COMMIT` transaction that reads the audit chain's
//! head, inserts a step-event row (JSON doc), inserts an audit row whose SHA-256 chains it to
//! the previous one (JSON doc), and moves the execution under a revision check. How it moves
//! it is the [`Shape`]: the same logical work as Vigilo's (`Lean`: three small columns of the
//! execution's row), or the first release's (`WholeDoc`: the execution's JSON doc, a real
//! execution serialised by the service, edited in place and written again). No service logic,
//! no permission reads, no writer thread: the floor for the same rows.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::service::STEPS;
use crate::stats::Latencies;

/// The baseline's schema: the same three tables, keyed the same way, without the store's
/// secondary indexes.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS executions (
    id TEXT NOT NULL PRIMARY KEY, key TEXT NOT NULL, rev INTEGER NOT NULL, doc TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'running', current_step INTEGER
) STRICT;
CREATE TABLE IF NOT EXISTS step_events (
    execution_id TEXT NOT NULL, seq INTEGER NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
) STRICT;
CREATE TABLE IF NOT EXISTS audit (
    workspace_id TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (workspace_id, seq)
) STRICT;
";

/// What a raw transition writes to the execution's row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Status, current step and revision: what Vigilo writes since schema 3.
    Lean,
    /// The whole execution document, as the first release wrote it.
    WholeDoc,
}

/// A raw-rusqlite database file.
pub struct Raw {
    conn: Connection,
    shape: Shape,
    workspace: String,
    actor: String,
    template: Value,
    next_number: u64,
}

/// One execution of the baseline: its id, key, revision and JSON doc.
pub struct RawExec {
    id: String,
    key: String,
    rev: u64,
    doc: Value,
}

/// Lowercase hex of bytes.
fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

impl Raw {
    /// Creates (or opens) the baseline file at `path`, durable (`synchronous=FULL`), writing
    /// transitions of `shape`; `template` is an execution doc as the service returns it.
    pub fn create_shaped(path: &Path, template: Value, shape: Shape) -> Result<Self> {
        let mut raw = Self::create_with(path, template, "FULL")?;
        raw.shape = shape;
        Ok(raw)
    }

    /// A whole-document baseline with another `PRAGMA synchronous` (the file-size run uses `OFF`:
    /// durability does not change what is stored).
    pub fn create_with(path: &Path, template: Value, synchronous: &str) -> Result<Self> {
        let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            bail!("journal_mode stayed {mode}");
        }
        conn.pragma_update(None, "synchronous", synchronous)?;
        conn.execute_batch(SCHEMA)?;
        let workspace = template["workspace"].as_str().unwrap_or("ws").to_owned();
        let actor = template["operator"].as_str().unwrap_or("user").to_owned();
        Ok(Self {
            conn,
            shape: Shape::WholeDoc,
            workspace,
            actor,
            template,
            next_number: 1,
        })
    }

    /// Appends an audit entry chained to the workspace's last one (inside `tx`).
    fn audit(
        tx: &rusqlite::Transaction<'_>,
        workspace: &str,
        actor: &str,
        action: &str,
        target: &str,
        details: Value,
    ) -> Result<()> {
        let head: Option<(u64, String)> = tx
            .prepare_cached(
                "SELECT seq, hash FROM audit WHERE workspace_id = ?1 ORDER BY seq DESC LIMIT 1",
            )?
            .query_row([workspace], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (seq, prev) = head.map_or((1, "0".repeat(64)), |(s, h)| (s + 1, h));
        let mut entry = json!({
            "workspace": workspace,
            "seq": seq,
            "at": chrono::Utc::now(),
            "actor": actor,
            "action": action,
            "target": target,
            "details": details,
            "prev_hash": prev,
        });
        let mut hasher = Sha256::new();
        hasher.update(prev.as_bytes());
        hasher.update(serde_json::to_vec(&entry)?);
        let hash = hex(&hasher.finalize());
        entry["hash"] = Value::String(hash.clone());
        tx.prepare_cached(
            "INSERT INTO audit (workspace_id, seq, hash, doc) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            workspace,
            seq,
            hash,
            serde_json::to_string(&entry)?
        ])?;
        Ok(())
    }

    fn event(tx: &rusqlite::Transaction<'_>, exec: &RawExec, event: &Value) -> Result<()> {
        tx.prepare_cached("INSERT INTO step_events (execution_id, seq, doc) VALUES (?1, ?2, ?3)")?
            .execute(params![exec.id, exec.rev, serde_json::to_string(event)?])?;
        Ok(())
    }

    /// Starts an execution: its row, its first event and its audit entry, in one transaction.
    pub fn start(&mut self) -> Result<RawExec> {
        let number = self.next_number;
        self.next_number += 1;
        let mut doc = self.template.clone();
        let id = format!("raw-{number:08}");
        let key = format!("EX-{number:05}");
        doc["id"] = json!(id);
        doc["key"] = json!(key);
        doc["rev"] = json!(1);
        let exec = RawExec {
            id,
            key,
            rev: 1,
            doc,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached("INSERT INTO executions (id, key, rev, doc) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![
                exec.id,
                exec.key,
                exec.rev,
                serde_json::to_string(&exec.doc)?
            ])?;
        let event = json!({ "execution": exec.id, "seq": 1, "kind": "started", "actor": self.actor, "at": chrono::Utc::now() });
        Self::event(&tx, &exec, &event)?;
        Self::audit(
            &tx,
            &self.workspace,
            &self.actor,
            "execution.started",
            &exec.key,
            json!({ "steps": STEPS }),
        )?;
        tx.commit()?;
        Ok(exec)
    }

    /// The measured transaction: marks `step` of `exec` done.
    pub fn done(&mut self, exec: &mut RawExec, step: u32) -> Result<()> {
        let now = chrono::Utc::now();
        let expected = exec.rev;
        exec.rev += 1;
        let index = step as usize - 1;
        exec.doc["rev"] = json!(exec.rev);
        exec.doc["steps"][index]["status"] = json!("done");
        exec.doc["steps"][index]["completed_at"] = json!(now);
        exec.doc["steps"][index]["actor"] = json!(self.actor);
        if step < STEPS {
            exec.doc["steps"][index + 1]["started_at"] = json!(now);
        } else {
            exec.doc["status"] = json!("completed");
            exec.doc["sealed_at"] = json!(now);
        }
        let event = json!({
            "execution": exec.id, "seq": exec.rev, "kind": "done", "step_order": step,
            "actor": self.actor, "at": now,
        });
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        Self::event(&tx, exec, &event)?;
        Self::audit(
            &tx,
            &self.workspace,
            &self.actor,
            "execution.step_done",
            &exec.key,
            json!({ "step": step }),
        )?;
        let changed = match self.shape {
            Shape::WholeDoc => tx
                .prepare_cached(
                    "UPDATE executions SET rev = ?1, doc = ?2 WHERE id = ?3 AND rev = ?4",
                )?
                .execute(params![
                    exec.rev,
                    serde_json::to_string(&exec.doc)?,
                    exec.id,
                    expected
                ])?,
            Shape::Lean => tx
                .prepare_cached(
                    "UPDATE executions SET status = ?1, current_step = ?2, rev = ?3
                     WHERE id = ?4 AND rev = ?5",
                )?
                .execute(params![
                    if step < STEPS { "running" } else { "completed" },
                    (step < STEPS).then_some(step + 1),
                    exec.rev,
                    exec.id,
                    expected
                ])?,
        };
        if changed != 1 {
            bail!("{}: revision {expected} moved", exec.key);
        }
        tx.commit()?;
        Ok(())
    }

    /// `n` transitions, one execution at a time (started as needed, untimed); the latency of
    /// each.
    pub fn sequential_acts(&mut self, n: usize) -> Result<Latencies> {
        let mut latencies = Latencies::default();
        while latencies.len() < n {
            let mut exec = self.start()?;
            for step in 1..=STEPS {
                if latencies.len() == n {
                    break;
                }
                let t = Instant::now();
                self.done(&mut exec, step)?;
                latencies.push(t.elapsed());
            }
        }
        Ok(latencies)
    }

    /// Starts `n` executions and walks each to the end (for the file-size comparison).
    pub fn walk(&mut self, n: usize) -> Result<()> {
        for _ in 0..n {
            let mut exec = self.start()?;
            for step in 1..=STEPS {
                self.done(&mut exec, step)?;
            }
        }
        Ok(())
    }

    /// Closes the connection (checkpointing the WAL).
    pub fn close(self) -> Result<()> {
        self.conn.close().map_err(|(_, e)| e)?;
        Ok(())
    }
}
