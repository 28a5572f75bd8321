//! Audit verification (issue 13): `Vigilo::verify_audit` of a 1,000,000-entry chain on a
//! SQLite file against raw rusqlite reading and decoding the same rows, each side's time and
//! peak memory measured in a child process of its own; and what the per-row checks of an audit
//! read (`AuditEntry::check_stored`, `AuditEntry::check_successor`) add to filtered lists.
//!
//! The chain is built fast: the workspace, its members and one execution go through the
//! service (so the schema and the first entries are real), then entries sealed with
//! [`audit::seal`] after the real head are appended with raw inserts, every column as the
//! store's `append_audit` writes it, in transactions of [`BATCH`] entries. They are the step
//! transitions of executions of 400 runbooks by 20 members, eight executions interleaved at a
//! time, some linked to changes and incidents, with failures, retries, skips and aborts.

use std::collections::VecDeque;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use rusqlite::config::DbConfig;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, params};
use serde_json::json;
use sha2::{Digest, Sha256};
use vigilo_core::audit::{
    self, AuditDraft, AuditEntry, AuditLinks, Origin, StoredColumns, Surface, Verifier,
};
use vigilo_core::ids::{Key, KeyKind, UserId, WorkspaceId};
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::service::{AuditFilter, AuditVerdict, NewMember, Vigilo, Who};
use vigilo_core::store::{AuditQuery, Store as _};
use vigilo_store::{SqliteOptions, SqliteStore};

use crate::service::{STEPS, Service};
use crate::stats::{Latencies, median};
use crate::{Row, say};

/// Entries of the chain verified (`VIGILO_BENCH_AUDIT_ENTRIES` overrides, for trying the
/// benchmark out on a smaller file).
pub const ENTRIES: u64 = 1_000_000;
/// Members of the workspace (the owner and 19 operators).
const MEMBERS: usize = 20;
/// Runbooks the executions run.
const RUNBOOKS: u64 = 400;
/// Executions whose entries interleave in the chain.
const IN_FLIGHT: usize = 8;
/// Entries appended per transaction while building.
const BATCH: u64 = 50_000;
/// The first argument that makes the benchmark a child process measuring one side.
const CHILD: &str = "__audit-child";
/// The line a child reports on.
const MARK: &str = "AUDIT-CHILD";
/// The store's `mmap_size` default, given to the raw connections too.
const MMAP: u64 = 1 << 30;

/// What `SqliteStore::audit` selects (a copy of `AUDIT_COLUMNS` in
/// `vigilo-store/src/sqlite/read.rs`).
const STORE_COLUMNS: &str = "a.doc, a.workspace_id, a.seq, a.id, a.at, a.actor, a.action, \
    a.target, a.link_runbook, a.link_change, a.link_incident, a.link_execution, a.hash, \
    (SELECT substr(n.doc, -140, 64) FROM audit n \
     WHERE n.workspace_id = a.workspace_id AND n.seq = a.seq + 1), \
    (SELECT max(h.seq) FROM audit h WHERE h.workspace_id = a.workspace_id)";

/// The insert of the store's `append_audit`.
const INSERT: &str = "INSERT INTO audit (workspace_id, seq, id, at, actor, action, target,
     link_runbook, link_change, link_incident, link_execution, hash, doc)
 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

/// SplitMix64: the same chain on every build.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const VERBS: &[&str] = &[
    "drain",
    "cordon",
    "verify",
    "restart",
    "promote",
    "snapshot",
    "rotate",
    "scale",
    "flush",
    "reindex",
    "fail over",
    "check",
];
const NOUNS: &[&str] = &[
    "node pool",
    "primary",
    "replica",
    "certificate",
    "cache",
    "queue",
    "ingress",
    "backup",
    "schema",
    "partition",
    "gateway",
    "dashboard",
];

/// A member: id and handle.
type Member = (UserId, String);

/// The entries of executions, in the order they reach the chain.
struct Generator<'a> {
    rng: Rng,
    members: &'a [Member],
    next_execution: u64,
    at_micros: i64,
    flights: Vec<VecDeque<AuditDraft>>,
}

impl<'a> Generator<'a> {
    fn new(members: &'a [Member], first_execution: u64, at_micros: i64) -> Self {
        Self {
            rng: Rng(0xA0D1_7000 ^ first_execution),
            members,
            next_execution: first_execution,
            at_micros,
            flights: (0..IN_FLIGHT).map(|_| VecDeque::new()).collect(),
        }
    }

    /// The next entry: from one of the executions in flight (a new one when it has ended),
    /// 1–61 s after the previous entry.
    fn next(&mut self) -> AuditDraft {
        let i = self.rng.below(IN_FLIGHT as u64) as usize;
        loop {
            if let Some(mut draft) = self.flights[i].pop_front() {
                self.at_micros += 1_000_000 + self.rng.below(60_000_000) as i64;
                draft.at = DateTime::from_timestamp_micros(self.at_micros).unwrap_or(draft.at);
                return draft;
            }
            self.flights[i] = self.execution();
        }
    }

    fn member(&mut self) -> usize {
        self.rng.below(self.members.len() as u64) as usize
    }

    /// The entries of one execution, as `Vigilo::start_execution` and `Vigilo::act` write them
    /// (times are set as they reach the chain).
    fn execution(&mut self) -> VecDeque<AuditDraft> {
        let k = self.next_execution;
        self.next_execution += 1;
        let ex = Key::new(KeyKind::Execution, k);
        let rb_n = 1 + self.rng.below(RUNBOOKS);
        let rb = Key::new(KeyKind::Runbook, rb_n);
        let version = 1 + (rb_n % 7) as u32;
        let steps = 4 + (rb_n * 7 % 13) as u32;
        // One execution in five runs for a change (five per change); one in ten for an
        // incident (eight per incident).
        let links = AuditLinks {
            runbook: Some(rb),
            runbook_version: Some(version),
            change: (k % 5 == 1).then(|| Key::new(KeyKind::Change, k / 25 + 1)),
            incident: (k % 10 == 3).then(|| Key::new(KeyKind::Incident, k / 80 + 1)),
            execution: Some(ex),
        };
        let operator = self.member();
        let origin_of = |m: usize, rng: &mut Rng, members: &[Member]| {
            if rng.below(5) == 0 {
                Origin::new(Surface::Cli, format!("{}@ops-bastion-2", members[m].1))
            } else {
                Origin::new(Surface::Slack, format!("T0VIGILO01/U0{:08}", m * 7919))
            }
        };
        let members = self.members;
        let mut out = VecDeque::new();
        let draft = |m: usize, action: &str, details, rng: &mut Rng| AuditDraft {
            at: DateTime::UNIX_EPOCH,
            actor: Some(members[m].0),
            actor_handle: Some(members[m].1.clone()),
            action: action.to_owned(),
            target: ex.to_string(),
            details,
            links: links.clone(),
            origin: Some(origin_of(m, rng, members)),
        };
        let started =
            json!({ "runbook": rb, "version": version, "rehearsal": false, "steps": steps });
        out.push_back(draft(operator, "execution.started", started, &mut self.rng));
        for s in 1..=steps {
            let actor = if self.rng.below(5) == 0 {
                self.member()
            } else {
                operator
            };
            let title = format!(
                "{} the {} ({})",
                VERBS[(rb_n as usize + s as usize) % VERBS.len()],
                NOUNS[(rb_n as usize * 3 + s as usize) % NOUNS.len()],
                s
            );
            let step = |note: Option<&str>, sealed: Option<&str>, role: Option<&str>| {
                json!({
                    "step": s, "step_title": title, "note": note, "sealed": sealed,
                    "approver_role": role,
                })
            };
            let sealed = (s == steps).then_some("completed");
            if rb_n.is_multiple_of(4) && s == 2 {
                let approver = (operator + 1 + self.member() % (members.len() - 1)) % members.len();
                let d = step(None, None, Some("operator"));
                out.push_back(draft(approver, "execution.step_approved", d, &mut self.rng));
            }
            match self.rng.below(100) {
                0..=1 => {
                    let d = step(
                        Some("error rate above 2% after the change: rolled back"),
                        Some("aborted"),
                        None,
                    );
                    out.push_back(draft(actor, "execution.aborted", d, &mut self.rng));
                    break;
                }
                2..=6 => {
                    let d = step(Some("timed out waiting for healthy replicas"), None, None);
                    out.push_back(draft(actor, "execution.step_failed", d, &mut self.rng));
                    let d = step(None, None, None);
                    out.push_back(draft(actor, "execution.step_retried", d, &mut self.rng));
                    let d = step(None, sealed, None);
                    out.push_back(draft(actor, "execution.step_done", d, &mut self.rng));
                }
                7..=11 => {
                    let d = step(
                        Some("not needed: already done by the on-call"),
                        sealed,
                        None,
                    );
                    out.push_back(draft(actor, "execution.step_skipped", d, &mut self.rng));
                }
                _ => {
                    let d = step(None, sealed, None);
                    out.push_back(draft(actor, "execution.step_done", d, &mut self.rng));
                }
            }
        }
        out
    }
}

/// The chain measured.
struct Chain {
    db: PathBuf,
    who: Who,
    members: Vec<Member>,
    entries: u64,
}

/// How the chain was built.
struct Built {
    appended: u64,
    elapsed: Duration,
}

/// The workspace's members, as (id, handle).
async fn members(vigilo: &Vigilo, who: &Who) -> Result<Vec<Member>> {
    Ok(vigilo
        .members(who)
        .await?
        .into_iter()
        .map(|(u, _)| (u.id, u.handle.to_string()))
        .collect())
}

/// The last entry of the workspace's chain: `seq`, `at` (µs).
fn head(conn: &Connection, ws: WorkspaceId) -> Result<(u64, i64)> {
    Ok(conn.query_row(
        "SELECT seq, at FROM audit WHERE workspace_id = ?1 ORDER BY seq DESC LIMIT 1",
        [ws.to_string()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// Opens (or reuses) the chain file in `dir`: builds it unless it already holds `n` entries.
async fn open_or_build(dir: &Path, n: u64) -> Result<(Chain, Option<Built>)> {
    let db = dir.join(if n == ENTRIES {
        "audit.db".to_owned()
    } else {
        format!("audit-{n}.db")
    });
    if db.exists() {
        let svc = Service::open(&db).await?;
        let members = members(&svc.vigilo, &svc.who).await?;
        let who = svc.who;
        svc.close().await?;
        let (entries, _) = head(&Connection::open(&db)?, who.workspace)?;
        if entries != n {
            bail!(
                "{} exists but its chain has {entries} entries, not {n}; delete it",
                db.display()
            );
        }
        let chain = Chain {
            db,
            who,
            members,
            entries,
        };
        return Ok((chain, None));
    }
    let t = Instant::now();
    let svc = Service::create(&db).await?;
    for i in 1..MEMBERS {
        let new = NewMember {
            handle: format!("op{i:02}"),
            display_name: format!("Operator {i}"),
            role: WorkspaceRole::Operator,
            team_roles: Vec::new(),
            chat_identity: None,
        };
        svc.vigilo.add_member(&svc.who, new).await?;
    }
    // One execution walked through the service: real step entries at the head.
    let ex = svc.start().await?;
    for step in 1..=STEPS {
        svc.done(ex.key, step).await?;
    }
    let members = members(&svc.vigilo, &svc.who).await?;
    let who = svc.who;
    svc.close().await?;
    let appended = append(&db, who.workspace, &members, ex.key.number + 1, n)?;
    let chain = Chain {
        db,
        who,
        members,
        entries: n,
    };
    let built = Built {
        appended,
        elapsed: t.elapsed(),
    };
    Ok((chain, Some(built)))
}

/// Appends sealed entries after the chain's head until it holds `n`; how many were appended.
fn append(
    db: &Path,
    ws: WorkspaceId,
    members: &[Member],
    first_execution: u64,
    n: u64,
) -> Result<u64> {
    let mut conn = Connection::open(db)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let wsid = ws.to_string();
    let (mut seq, mut hash, at): (u64, String, i64) = conn.query_row(
        "SELECT seq, hash, at FROM audit WHERE workspace_id = ?1 ORDER BY seq DESC LIMIT 1",
        [&wsid],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let first = seq;
    let mut generator = Generator::new(members, first_execution, at);
    let t = Instant::now();
    while seq < n {
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(INSERT)?;
            let link = |k: Option<Key>| k.map(|k| k.to_string());
            for _ in 0..BATCH.min(n - seq) {
                let entry = audit::seal(ws, generator.next(), Some((seq, &hash)));
                // As the store writes them (format 3: the hashed text, then the hash).
                let doc = vigilo_core::audit::stored_document(&entry);
                insert.execute(params![
                    wsid,
                    entry.seq,
                    entry.id.to_string(),
                    entry.at.timestamp_micros(),
                    entry.actor.map(|a| a.to_string()),
                    entry.action,
                    entry.target,
                    link(entry.links.runbook),
                    link(entry.links.change),
                    link(entry.links.incident),
                    link(entry.links.execution),
                    entry.hash,
                    doc
                ])?;
                seq = entry.seq;
                hash = entry.hash;
            }
        }
        tx.commit()?;
        if seq % 200_000 < BATCH {
            say(&format!(
                "    {seq} entries ({:.0} appended/s)",
                (seq - first) as f64 / t.elapsed().as_secs_f64()
            ));
        }
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(seq - first)
}

/// A read-only connection set up like the store's readers (`mmap_size`, in-memory
/// temporaries, plans independent of bound values).
fn open_raw(db: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {} read-only", db.display()))?;
    conn.pragma_update(None, "mmap_size", MMAP)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(conn)
}

// ---------------------------------------------------------------------------------------------
// Part 1: verifying the whole chain, one side per child process.

/// One side of the verification benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// `Vigilo::verify_audit` over `SqliteStore`.
    Verify,
    /// Raw rusqlite: `SELECT doc … ORDER BY seq`, each doc decoded into an `AuditEntry`.
    Raw,
    /// The raw read, each entry pushed through `audit::Verifier` (hash and chain checked once).
    RawVerifier,
}

impl Side {
    const ALL: [Side; 3] = [Side::Raw, Side::RawVerifier, Side::Verify];

    fn name(self) -> &'static str {
        match self {
            Side::Verify => "verify",
            Side::Raw => "raw",
            Side::RawVerifier => "raw-verifier",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|side| side.name() == s)
            .with_context(|| format!("unknown side {s}"))
    }
}

/// Memory figures of `/proc/self/status`, in KiB.
#[derive(Clone, Copy, Debug, Default)]
struct Status {
    rss: u64,
    hwm: u64,
    anon: u64,
    file: u64,
}

fn status() -> Status {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mut s = Status::default();
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let kb = value
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap_or(0);
        match name {
            "VmRSS" => s.rss = kb,
            "VmHWM" => s.hwm = kb,
            "RssAnon" => s.anon = kb,
            "RssFile" => s.file = kb,
            _ => {}
        }
    }
    s
}

/// The memory a measured call adds: `VmHWM` reset with `/proc/self/clear_refs` ("5") before
/// it, and a sampler thread reading `RssAnon` and `RssFile` every 5 ms (`VmHWM` does not
/// split anonymous memory from mapped file pages).
struct Memory {
    base: Status,
    reset: bool,
    stop: Arc<AtomicBool>,
    sampler: std::thread::JoinHandle<(u64, u64)>,
}

impl Memory {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let sampler = std::thread::spawn(move || {
            let (mut anon, mut file) = (0, 0);
            while !flag.load(Ordering::Relaxed) {
                let s = status();
                anon = anon.max(s.anon);
                file = file.max(s.file);
                std::thread::sleep(Duration::from_millis(5));
            }
            (anon, file)
        });
        std::thread::sleep(Duration::from_millis(20));
        let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        Self {
            base: status(),
            reset,
            stop,
            sampler,
        }
    }

    /// Ends the measurement: `key=value` pairs for the parent.
    fn finish(self) -> String {
        self.stop.store(true, Ordering::Relaxed);
        let (anon, file) = self.sampler.join().unwrap_or_default();
        let end = status();
        format!(
            "rss_kb={} hwm_kb={} anon_kb={} anon_peak_kb={} file_kb={} file_peak_kb={} reset={}",
            self.base.rss,
            end.hwm,
            self.base.anon,
            anon.max(end.anon),
            self.base.file,
            file.max(end.file),
            self.reset
        )
    }
}

/// When the benchmark runs itself as a child to measure one side alone: runs it. `None` in
/// the parent.
pub fn child_main() -> Option<Result<()>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.split_first() {
        Some((first, rest)) if first == CHILD => Some(child(rest)),
        _ => None,
    }
}

fn child(args: &[String]) -> Result<()> {
    let [side, db, ws, expected] = args else {
        bail!("usage: vigilo-bench {CHILD} SIDE DB WORKSPACE ENTRIES");
    };
    let side = Side::parse(side)?;
    let db = PathBuf::from(db);
    let ws: WorkspaceId = ws.parse()?;
    let expected: u64 = expected.parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (entries, took, memory) = runtime.block_on(measure_side(side, &db, ws))?;
    if entries != expected {
        bail!(
            "{} read {entries} entries, expected {expected}",
            side.name()
        );
    }
    println!(
        "{MARK} entries={entries} secs={:.6} {memory}",
        took.as_secs_f64()
    );
    Ok(())
}

/// Runs one side once: entries read, time, and the memory report.
async fn measure_side(side: Side, db: &Path, ws: WorkspaceId) -> Result<(u64, Duration, String)> {
    match side {
        Side::Verify => {
            let store = Arc::new(SqliteStore::open(db, SqliteOptions::default()).await?);
            let vigilo = Vigilo::new(store.clone());
            let memory = Memory::start();
            let t = Instant::now();
            let verdict = vigilo.verify_audit(ws).await?;
            let took = t.elapsed();
            let memory = memory.finish();
            drop(vigilo);
            if let Ok(store) = Arc::try_unwrap(store) {
                store.close().await;
            }
            match verdict {
                AuditVerdict::Intact { entries, .. } => Ok((entries, took, memory)),
                AuditVerdict::Tampered(t) => bail!("the chain does not verify: {t}"),
            }
        }
        Side::Raw | Side::RawVerifier => {
            let conn = open_raw(db)?;
            let memory = Memory::start();
            let t = Instant::now();
            let entries = raw_read(&conn, ws, side == Side::RawVerifier)?;
            let took = t.elapsed();
            Ok((entries, took, memory.finish()))
        }
    }
}

/// The raw read of the whole chain: every doc decoded into an `AuditEntry`, and pushed
/// through a `Verifier` when `verify`.
fn raw_read(conn: &Connection, ws: WorkspaceId, verify: bool) -> Result<u64> {
    let mut stmt = conn.prepare("SELECT doc FROM audit WHERE workspace_id = ?1 ORDER BY seq")?;
    let mut rows = stmt.query([ws.to_string()])?;
    let mut verifier = Verifier::new();
    let mut count = 0;
    let mut last = String::new();
    while let Some(row) = rows.next()? {
        let entry: AuditEntry = serde_json::from_str(row.get_ref(0)?.as_str()?)?;
        if verify {
            verifier.push(&entry)?;
        }
        count += 1;
        last = entry.hash;
    }
    black_box(last);
    Ok(count)
}

/// What a child reported.
#[derive(Clone, Debug, Default)]
struct ChildRun {
    secs: f64,
    /// `VmHWM` − `VmRSS` before the call, KiB.
    peak_growth: u64,
    /// Sampled peak `RssAnon` − `RssAnon` before the call, KiB.
    anon_growth: u64,
    /// Sampled peak `RssFile` − `RssFile` before, KiB (mapped pages of the database file).
    file_growth: u64,
    base_rss: u64,
    reset: bool,
}

fn run_child(side: Side, chain: &Chain) -> Result<ChildRun> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .arg(CHILD)
        .arg(side.name())
        .arg(&chain.db)
        .arg(chain.who.workspace.to_string())
        .arg(chain.entries.to_string())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "the {} child failed: {}{}",
            side.name(),
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = stdout
        .lines()
        .find(|l| l.starts_with(MARK))
        .with_context(|| format!("the {} child reported nothing: {stdout}", side.name()))?;
    let field = |name: &str| -> Result<&str> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .with_context(|| format!("no {name} in {line}"))
    };
    let kb = |name: &str| -> Result<u64> { Ok(field(name)?.parse()?) };
    Ok(ChildRun {
        secs: field("secs")?.parse()?,
        peak_growth: kb("hwm_kb")?.saturating_sub(kb("rss_kb")?),
        anon_growth: kb("anon_peak_kb")?.saturating_sub(kb("anon_kb")?),
        file_growth: kb("file_peak_kb")?.saturating_sub(kb("file_kb")?),
        base_rss: kb("rss_kb")?,
        reset: field("reset")? == "true",
    })
}

fn mb(kib: f64) -> f64 {
    kib * 1024.0 / 1e6
}

// ---------------------------------------------------------------------------------------------
// Part 2: filtered lists, with and without the row checks.

/// A filtered `audit list`.
struct Filter {
    name: String,
    target: Option<String>,
    actor: Option<Member>,
    since: Option<DateTime<Utc>>,
    limit: usize,
}

impl Filter {
    fn query(&self) -> AuditQuery {
        AuditQuery {
            target: self.target.clone(),
            actor: self.actor.as_ref().map(|a| a.0),
            since: self.since,
            until: None,
            after_seq: 0,
            limit: self.limit,
        }
    }

    fn service_filter(&self) -> AuditFilter {
        AuditFilter {
            target: self.target.clone(),
            actor: self.actor.as_ref().map(|a| a.1.clone()),
            since: self.since,
            until: None,
            after_seq: 0,
            limit: self.limit,
        }
    }
}

/// The SQL and parameters `SqliteStore::audit` runs for `q` (a copy of the query building of
/// `audit` in `vigilo-store/src/sqlite/read.rs`), selecting `columns`.
fn store_sql(ws: WorkspaceId, q: &AuditQuery, columns: &str) -> (String, Vec<SqlValue>) {
    fn bind(params: &mut Vec<SqlValue>, value: SqlValue) -> String {
        params.push(value);
        format!("?{}", params.len())
    }
    let mut params = Vec::new();
    let ws_p = bind(&mut params, SqlValue::Text(ws.to_string()));
    let after = bind(&mut params, SqlValue::Integer(q.after_seq as i64));
    let mut sql = match &q.target {
        Some(target) => {
            let t = bind(&mut params, SqlValue::Text(target.clone()));
            let arms: Vec<String> = ["target", "link_runbook", "link_change", "link_incident", "link_execution"]
                .iter()
                .map(|col| format!("SELECT seq FROM audit WHERE workspace_id = {ws_p} AND {col} = {t} AND seq > {after}"))
                .collect();
            format!(
                "SELECT {columns} FROM ({}) m JOIN audit a ON a.workspace_id = {ws_p} AND a.seq = m.seq WHERE 1 = 1",
                arms.join(" UNION ")
            )
        }
        None => {
            format!(
                "SELECT {columns} FROM audit a WHERE a.workspace_id = {ws_p} AND a.seq > {after}"
            )
        }
    };
    if let Some(actor) = q.actor {
        let p = bind(&mut params, SqlValue::Text(actor.to_string()));
        sql.push_str(&format!(" AND a.actor = {p}"));
    }
    if let Some(since) = q.since {
        let p = bind(&mut params, SqlValue::Integer(micros_ceil(since)));
        sql.push_str(&format!(" AND a.at >= {p}"));
    }
    if let Some(until) = q.until {
        let p = bind(&mut params, SqlValue::Integer(micros_ceil(until)));
        sql.push_str(&format!(" AND a.at < {p}"));
    }
    let limit = if q.limit == 0 { 1000 } else { q.limit };
    let p = bind(&mut params, SqlValue::Integer(limit as i64));
    sql.push_str(&format!(" ORDER BY a.seq LIMIT {p}"));
    (sql, params)
}

/// The first whole microsecond at or after `t` (as the store binds times).
fn micros_ceil(t: DateTime<Utc>) -> i64 {
    let floor = t.timestamp_micros();
    if t.timestamp_subsec_nanos().is_multiple_of(1000) {
        floor
    } else {
        floor.saturating_add(1)
    }
}

/// An audit row of the store's query, as `checked_entry` reads it (without its checks).
fn stored_row(row: &rusqlite::Row<'_>) -> Result<(AuditEntry, StoredColumns)> {
    let doc: String = row.get(0)?;
    let stored = StoredColumns {
        workspace: row.get(1)?,
        seq: row.get(2)?,
        id: row.get(3)?,
        at_micros: row.get(4)?,
        actor: row.get(5)?,
        action: row.get(6)?,
        target: row.get(7)?,
        link_runbook: row.get(8)?,
        link_change: row.get(9)?,
        link_incident: row.get(10)?,
        link_execution: row.get(11)?,
        hash: row.get(12)?,
        next_prev_hash: row.get(13)?,
        head_seq: row.get::<_, Option<i64>>(14)?.unwrap_or_default(),
        document: None,
    };
    let entry: AuditEntry = serde_json::from_str(&doc)?;
    let mut stored = stored;
    stored.document = Some(doc);
    Ok((entry, stored))
}

/// The ways a filtered list is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    /// The store's `WHERE` with `SELECT a.doc` only (the read before issue 13), docs decoded.
    DocOnly,
    /// (a) the store's SQL with every column, the columns read and the docs decoded, no checks.
    Raw,
    /// (a) + `audit::compute_hash` of each entry (how much of the checks is the hash).
    Hash,
    /// (b) (a) + `check_stored` per row, then `check_successor` per row, as the store does.
    Checked,
    /// (c) `SqliteStore::audit`.
    Store,
    /// (c) `Vigilo::audit_entries` (adds the actor's reads and, with an actor filter, the
    /// handle's).
    Service,
}

impl Way {
    const ALL: [Way; 6] = [
        Way::DocOnly,
        Way::Raw,
        Way::Hash,
        Way::Checked,
        Way::Store,
        Way::Service,
    ];

    fn label(self) -> &'static str {
        match self {
            Way::DocOnly => "doc only",
            Way::Raw => "(a) raw",
            Way::Hash => "(a)+hash",
            Way::Checked => "(b) checked",
            Way::Store => "(c) store",
            Way::Service => "(c) service",
        }
    }
}

/// Reads `f` the raw way `way` (`DocOnly`, `Raw`, `Hash` or `Checked`): the entries' `seq`s.
fn read_raw(conn: &Connection, ws: WorkspaceId, f: &Filter, way: Way) -> Result<Vec<u64>> {
    let q = f.query();
    if way == Way::DocOnly {
        let (sql, params) = store_sql(ws, &q, "a.doc");
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let doc: String = row.get(0)?;
            let entry: AuditEntry = serde_json::from_str(&doc)?;
            out.push(entry.seq);
        }
        return Ok(out);
    }
    let (sql, params) = store_sql(ws, &q, STORE_COLUMNS);
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut read = Vec::new();
    while let Some(row) = rows.next()? {
        let (entry, stored) = stored_row(row)?;
        match way {
            Way::Hash => {
                black_box(audit::compute_hash(&entry) == entry.hash);
            }
            Way::Checked => entry.check_stored(&stored)?,
            _ => {}
        }
        read.push((entry, stored));
    }
    if way == Way::Checked {
        for (entry, stored) in &read {
            entry.check_successor(stored)?;
        }
    }
    Ok(read.into_iter().map(|(e, _)| e.seq).collect())
}

/// The filters measured, given the chain (`entries` long).
fn filters(conn: &Connection, chain: &Chain) -> Result<Vec<Filter>> {
    let ws = chain.who.workspace.to_string();
    let at_of = |seq: u64| -> Result<DateTime<Utc>> {
        let micros: i64 = conn.query_row(
            "SELECT at FROM audit WHERE workspace_id = ?1 AND seq = ?2",
            params![ws, seq],
            |r| r.get(0),
        )?;
        DateTime::from_timestamp_micros(micros).context("time out of range")
    };
    // Keys in the middle of the synthetic executions (8 executions per incident).
    let executions = chain.entries / 12;
    let ex = Key::new(KeyKind::Execution, executions / 2);
    let inc = Key::new(KeyKind::Incident, executions / 2 / 80 + 1);
    let rb = Key::new(KeyKind::Runbook, 123);
    let actor = chain
        .members
        .iter()
        .find(|m| m.1 == "op07")
        .cloned()
        .context("no member op07")?;
    let n = chain.entries;
    Ok(vec![
        Filter {
            name: format!("target {ex} (one execution)"),
            target: Some(ex.to_string()),
            actor: None,
            since: None,
            limit: 0,
        },
        Filter {
            name: format!("target {inc} (an incident, 8 executions)"),
            target: Some(inc.to_string()),
            actor: None,
            since: None,
            limit: 0,
        },
        Filter {
            name: format!("target {rb} (a runbook; first page)"),
            target: Some(rb.to_string()),
            actor: None,
            since: None,
            limit: 1000,
        },
        Filter {
            name: "actor @op07, limit 100".into(),
            target: None,
            actor: Some(actor.clone()),
            since: None,
            limit: 100,
        },
        Filter {
            name: "actor @op07, limit 1000".into(),
            target: None,
            actor: Some(actor),
            since: None,
            limit: 1000,
        },
        Filter {
            name: "since (the last 100 entries)".into(),
            target: None,
            actor: None,
            since: Some(at_of(n - 99)?),
            limit: 1000,
        },
        Filter {
            name: "since (the last 1000 entries)".into(),
            target: None,
            actor: None,
            since: Some(at_of(n - 999)?),
            limit: 1000,
        },
    ])
}

/// One filter's timings, by way.
struct FilterResult {
    name: String,
    rows: usize,
    /// Rounds measured (fewer for a slow query).
    rounds: usize,
    times: Vec<Latencies>,
    /// Per round: (b) / (a), and (a)+hash / (a).
    checked_ratio: Vec<f64>,
    hash_ratio: Vec<f64>,
}

impl FilterResult {
    fn median(&self, way: Way) -> f64 {
        self.times[way as usize].median()
    }
}

async fn run_way(
    way: Way,
    f: &Filter,
    conn: &Connection,
    store: &SqliteStore,
    vigilo: &Vigilo,
    who: Who,
) -> Result<Vec<u64>> {
    Ok(match way {
        Way::Store => store
            .audit(who.workspace, &f.query())
            .await?
            .into_iter()
            .map(|e| e.seq)
            .collect(),
        Way::Service => vigilo
            .audit_entries(&who, f.service_filter())
            .await?
            .into_iter()
            .map(|e| e.seq)
            .collect(),
        _ => read_raw(conn, who.workspace, f, way)?,
    })
}

async fn measure_filters(chain: &Chain, rounds: usize) -> Result<Vec<FilterResult>> {
    let conn = open_raw(&chain.db)?;
    let store = Arc::new(SqliteStore::open(&chain.db, SqliteOptions::default()).await?);
    let vigilo = Vigilo::new(store.clone());
    let who = chain.who;
    let filters = filters(&conn, chain)?;
    let mut results = Vec::new();
    // Warm-up, and every way must answer the same entries.
    for f in &filters {
        let t = Instant::now();
        let reference = run_way(Way::Store, f, &conn, &store, &vigilo, who).await?;
        // A slow query (a scan) gets fewer rounds, so the run stays within minutes.
        let rounds = if t.elapsed() > Duration::from_millis(200) {
            rounds.min(5)
        } else {
            rounds
        };
        for way in Way::ALL {
            let got = run_way(way, f, &conn, &store, &vigilo, who).await?;
            if got != reference {
                bail!(
                    "{}: {} answered {} entries, the store {}",
                    f.name,
                    way.label(),
                    got.len(),
                    reference.len()
                );
            }
        }
        let (sql, params) = store_sql(who.workspace, &f.query(), STORE_COLUMNS);
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?
            .query_map(rusqlite::params_from_iter(params), |r| {
                r.get::<_, String>(3)
            })?
            .collect::<rusqlite::Result<_>>()?;
        say(&format!("  plan of {}: {}", f.name, plan.join("; ")));
        results.push(FilterResult {
            name: f.name.clone(),
            rows: reference.len(),
            rounds,
            times: vec![Latencies::default(); Way::ALL.len()],
            checked_ratio: Vec::new(),
            hash_ratio: Vec::new(),
        });
    }
    for round in 0..rounds {
        for (f, r) in filters.iter().zip(results.iter_mut()) {
            if round >= r.rounds {
                continue;
            }
            let mut took = [Duration::ZERO; Way::ALL.len()];
            for i in 0..Way::ALL.len() {
                let way = Way::ALL[(round + i) % Way::ALL.len()];
                let t = Instant::now();
                black_box(run_way(way, f, &conn, &store, &vigilo, who).await?);
                took[way as usize] = t.elapsed();
                r.times[way as usize].push(took[way as usize]);
            }
            let raw = took[Way::Raw as usize].as_secs_f64();
            r.checked_ratio
                .push(took[Way::Checked as usize].as_secs_f64() / raw);
            r.hash_ratio
                .push(took[Way::Hash as usize].as_secs_f64() / raw);
        }
    }
    drop(vigilo);
    if let Ok(store) = Arc::try_unwrap(store) {
        store.close().await;
    }
    Ok(results)
}

/// Per-entry cost of the pieces of the checks, over the entries of one list (ns per entry,
/// medians of `reps` passes): serialising an entry, SHA-256 of that many bytes, the whole
/// `compute_hash`, `check_stored`, `check_successor`, and decoding a doc.
fn split(chain: &Chain, f: &Filter, reps: usize) -> Result<Vec<(&'static str, f64)>> {
    let conn = open_raw(&chain.db)?;
    let (sql, params) = store_sql(chain.who.workspace, &f.query(), STORE_COLUMNS);
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut read = Vec::new();
    let mut docs = Vec::new();
    while let Some(row) = rows.next()? {
        docs.push(row.get::<_, String>(0)?);
        read.push(stored_row(row)?);
    }
    let n = read.len().max(1) as f64;
    let bytes: Vec<Vec<u8>> = read
        .iter()
        .map(|(e, _)| serde_json::to_vec(e))
        .collect::<Result<_, _>>()?;
    let time = |name: &'static str, pass: &mut dyn FnMut() -> Result<()>| -> Result<_> {
        let mut samples = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            pass()?;
            samples.push(t.elapsed().as_secs_f64() * 1e9 / n);
        }
        Ok((name, median(&samples)))
    };
    Ok(vec![
        time("decode the doc (serde_json → AuditEntry)", &mut || {
            for d in &docs {
                black_box(serde_json::from_str::<AuditEntry>(d)?);
            }
            Ok(())
        })?,
        time("serialise the entry (serde_json::to_vec)", &mut || {
            for (e, _) in &read {
                black_box(serde_json::to_vec(e)?);
            }
            Ok(())
        })?,
        time("SHA-256 of that many bytes", &mut || {
            for b in &bytes {
                black_box(Sha256::digest(b));
            }
            Ok(())
        })?,
        time("audit::compute_hash (both, + hex)", &mut || {
            for (e, _) in &read {
                black_box(audit::compute_hash(e));
            }
            Ok(())
        })?,
        time("  of which: `at` as RFC 3339 (chrono)", &mut || {
            for (e, _) in &read {
                black_box(e.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
            }
            Ok(())
        })?,
        time("  of which: SHA-256 + hex, format! per byte", &mut || {
            for b in &bytes {
                let digest = Sha256::digest(b);
                let mut out = String::with_capacity(64);
                for x in digest {
                    out.push_str(&format!("{x:02x}"));
                }
                black_box(out);
            }
            Ok(())
        })?,
        time("check_stored (hash + 12 column compares)", &mut || {
            for (e, s) in &read {
                e.check_stored(s)?;
            }
            Ok(())
        })?,
        time("check_successor", &mut || {
            for (e, s) in &read {
                e.check_successor(s)?;
            }
            Ok(())
        })?,
    ])
}

// ---------------------------------------------------------------------------------------------

/// The whole benchmark: build or reuse the chain, verify it (child processes), filtered lists.
pub async fn bench(dir: &Path, rounds: usize) -> Result<Vec<Row>> {
    let n = match std::env::var("VIGILO_BENCH_AUDIT_ENTRIES") {
        Ok(v) => v.parse().context("VIGILO_BENCH_AUDIT_ENTRIES")?,
        Err(_) => ENTRIES,
    };
    let verify_rounds = rounds.clamp(3, 5);
    let filter_rounds = rounds * 4 + 3;
    say(&format!(
        "## Audit verification (issue 13): a chain of {n} entries; verify ({verify_rounds} rounds, sides alternating, each in a child process), filtered lists ({filter_rounds} rounds, ways rotating)"
    ));
    let (chain, built) = open_or_build(dir, n).await?;
    match &built {
        Some(b) => say(&format!(
            "  built {}: the workspace, {MEMBERS} members and one execution through the service, then {} entries appended raw, in {:.1?}",
            chain.db.display(),
            b.appended,
            b.elapsed
        )),
        None => say(&format!("  reusing {}", chain.db.display())),
    }
    let size = std::fs::metadata(&chain.db)?.len();
    say(&format!(
        "  file: {:.1} MB ({:.0} B per entry)",
        size as f64 / 1e6,
        size as f64 / n as f64
    ));

    // Part 1.
    let mut runs: Vec<Vec<ChildRun>> = vec![Vec::new(); Side::ALL.len()];
    let mut ratios = Vec::new();
    for round in 0..verify_rounds {
        let mut order = Side::ALL;
        if round % 2 == 1 {
            order.reverse();
        }
        let mut this = vec![ChildRun::default(); Side::ALL.len()];
        for side in order {
            let i = Side::ALL
                .iter()
                .position(|s| *s == side)
                .unwrap_or_default();
            this[i] = run_child(side, &chain)?;
        }
        let line: Vec<String> = Side::ALL
            .iter()
            .zip(&this)
            .map(|(s, r)| {
                format!(
                    "{} {:.2} s ({:.0}/s, peak +{:.1} MB, anon +{:.1} MB)",
                    s.name(),
                    r.secs,
                    n as f64 / r.secs,
                    mb(r.peak_growth as f64),
                    mb(r.anon_growth as f64)
                )
            })
            .collect();
        let ratio = this[2].secs / this[0].secs;
        say(&format!(
            "  round {}: {}; verify/raw {ratio:.2}",
            round + 1,
            line.join(", ")
        ));
        ratios.push(ratio);
        for (i, r) in this.into_iter().enumerate() {
            runs[i].push(r);
        }
    }
    let med =
        |i: usize, f: &dyn Fn(&ChildRun) -> f64| median(&runs[i].iter().map(f).collect::<Vec<_>>());
    let secs = |i| med(i, &|r| r.secs);
    let peak = |i| mb(med(i, &|r| r.peak_growth as f64));
    let anon = |i| mb(med(i, &|r| r.anon_growth as f64));
    let file = |i| mb(med(i, &|r| r.file_growth as f64));
    let base = |i| mb(med(i, &|r| r.base_rss as f64));
    let ratio = median(&ratios);
    let resets = runs.iter().flatten().filter(|r| r.reset).count();
    for (i, side) in Side::ALL.iter().enumerate() {
        say(&format!(
            "  {:<13} median {:.2} s ({:.0} entries/s); RSS before {:.1} MB, peak growth (VmHWM − VmRSS before) {:.1} MB = anonymous +{:.1} MB, mapped file +{:.1} MB",
            side.name(),
            secs(i),
            n as f64 / secs(i),
            base(i),
            peak(i),
            anon(i),
            file(i)
        ));
    }
    say(&format!(
        "  median of round ratios verify/raw {ratio:.2}, verify/raw-verifier {:.2}; VmHWM reset by clear_refs in {resets} of {} child runs",
        median(
            &runs[2]
                .iter()
                .zip(&runs[1])
                .map(|(v, r)| v.secs / r.secs)
                .collect::<Vec<_>>()
        ),
        runs.iter().flatten().count()
    ));
    let mut rows = vec![Row {
        name: format!(
            "`audit verify`, {n} entries (`Vigilo::verify_audit` vs raw `SELECT doc` + decode)"
        ),
        measured: format!(
            "{:.2} s, {:.0} entries/s; peak RSS +{:.0} MB (anon +{:.1} MB)",
            secs(2),
            n as f64 / secs(2),
            peak(2),
            anon(2)
        ),
        baseline: format!(
            "{:.2} s, {:.0}/s; peak RSS +{:.0} MB (anon +{:.1} MB)",
            secs(0),
            n as f64 / secs(0),
            peak(0),
            anon(0)
        ),
        ratio: format!("{ratio:.2}× the time"),
        target: "report".into(),
        met: true,
    }];

    // Part 2.
    say(&format!(
        "  filtered lists ({filter_rounds} rounds; medians in ms; \"checks add\" = median over rounds of (b)/(a) − 1)"
    ));
    let results = measure_filters(&chain, filter_rounds).await?;
    for r in &results {
        let add = median(&r.checked_ratio) - 1.0;
        let hash = median(&r.hash_ratio) - 1.0;
        let times: Vec<String> = Way::ALL
            .iter()
            .map(|w| format!("{} {:.3}", w.label(), r.median(*w)))
            .collect();
        say(&format!(
            "  {} → {} entries ({} rounds): {}; checks add {:+.1}% (hash alone {:+.1}%)",
            r.name,
            r.rows,
            r.rounds,
            times.join(", "),
            add * 100.0,
            hash * 100.0
        ));
        rows.push(Row {
            name: format!(
                "`audit list` {} ({} entries): what the row checks add",
                r.name, r.rows
            ),
            measured: format!(
                "(b) {:.2} ms; store {:.2} ms, service {:.2} ms",
                r.median(Way::Checked),
                r.median(Way::Store),
                r.median(Way::Service)
            ),
            baseline: format!(
                "(a) {:.2} ms (doc only {:.2} ms)",
                r.median(Way::Raw),
                r.median(Way::DocOnly)
            ),
            ratio: format!("{:+.1}%", add * 100.0),
            target: "< +10%".into(),
            met: add < 0.10,
        });
    }
    let conn = open_raw(&chain.db)?;
    let f = filters(&conn, &chain)?
        .into_iter()
        .nth(2)
        .context("no runbook filter")?;
    say(&format!(
        "  per entry, over the {} list (ns, median of 15 passes):",
        f.name
    ));
    for (name, ns) in split(&chain, &f, 15)? {
        say(&format!("    {name:<44} {ns:>8.0} ns"));
    }
    Ok(rows)
}
