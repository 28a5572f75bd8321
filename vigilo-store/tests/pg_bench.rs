//! A throughput benchmark of step transitions on PostgreSQL (ignored by default; needs
//! `VIGILO_TEST_PG_URL`):
//!
//! ```text
//! VIGILO_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo test -p vigilo-store --features postgres --test pg_bench -- --ignored --nocapture
//! ```
//!
//! Each client walks executions of a ten-step runbook step by step ("done"), as fast as it can,
//! for a few seconds. The executions are started before the timed window: only step
//! transitions are timed and counted (until 2026-11-30 a start, every eleventh operation and a
//! costlier one, was timed and counted as a transition too). A transition is one
//! [`Store::commit`]: the execution's new revision, its step event, and one audit entry
//! chained after the workspace's head. Measured with 1 and 8 clients,
//! all in one workspace (one audit chain, so commits serialise on its head) and each in a
//! workspace of its own; through the store alone (the commit, as one call of the server-side
//! function and, for comparison, as a transaction), and through the service ([`Vigilo::act`],
//! which also reads the actor, the execution and the workspace).
//!
//! The baseline, in the same run against the same server: `pgbench` (from `PATH`, or the
//! `PGBENCH` variable) committing one-row inserts (`INSERT INTO one_row (v) VALUES (1)`, one
//! autocommitted transaction per row, prepared statements) with 1 and 8 clients for as long.
//! Each round measures pgbench and then Vigilo at 1 client, then at 8 clients, so that each
//! ratio compares two measurements taken moments apart (the machine is shared and its disk
//! latency swings); [`ROUNDS`] rounds, and the medians of the rates and of the per-round ratios
//! are printed.

#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use vigilo_core::execution::machine::{self, Command};
use vigilo_core::execution::{Execution, ExecutionStatus};
use vigilo_core::ids::Key;
use vigilo_core::runbook::{RunbookInput, StepInput};
use vigilo_core::service::{CreateRunbook, StartOptions, Vigilo, Who};
use vigilo_core::store::{Commit, Write};
use vigilo_store::postgres::{PgOptions, PgStore, ScratchDatabase};

const URL_VAR: &str = "VIGILO_TEST_PG_URL";
const RUN_FOR: Duration = Duration::from_secs(3);
const STEPS: u32 = 10;
/// Times each figure is measured (the median is printed); `VIGILO_BENCH_ROUNDS` overrides it.
const ROUNDS: usize = 5;

fn rounds() -> usize {
    std::env::var("VIGILO_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|r| *r > 0)
        .unwrap_or(ROUNDS)
}

/// How a client applies a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    /// `Store::commit` of the transition, as one call of the server-side function (the
    /// default): the client holds the execution and its actor (read once when it starts).
    Store,
    /// The same commit as a transaction of several statements
    /// (`PgOptions::server_side_transitions(false)`).
    StoreTx,
    /// `Vigilo::act`: reads the actor, the execution and the workspace, then commits.
    Service,
}

struct Client {
    vigilo: Vigilo,
    who: Who,
    runbook: Key,
    actor: vigilo_core::workspace::Actor,
}

impl Client {
    async fn start(&self) -> Execution {
        self.vigilo
            .start_execution(&self.who, self.runbook, StartOptions::default())
            .await
            .unwrap()
    }

    /// Marks the current step done; returns the execution after it.
    async fn step(&self, ex: &Execution, via: Via) -> Execution {
        let step = ex.current_index().map(|i| i as u32 + 1).unwrap();
        let cmd = Command::Done { step, note: None };
        match via {
            Via::Service => {
                self.vigilo
                    .act(&self.who, ex.key, cmd)
                    .await
                    .unwrap()
                    .execution
            }
            Via::Store | Via::StoreTx => {
                let actor = &self.actor;
                let policy = Default::default();
                let t = machine::apply(ex, &cmd, actor, &policy, self.vigilo.now()).unwrap();
                let mut draft = vigilo_core::audit::AuditDraft {
                    at: self.vigilo.now(),
                    actor: Some(actor.id()),
                    actor_handle: Some(actor.user.handle.to_string()),
                    action: "execution.step_done".into(),
                    target: ex.key.to_string(),
                    details: serde_json::json!({ "step": step }),
                    links: Default::default(),
                    origin: None,
                };
                draft.links.execution = Some(ex.key);
                self.vigilo
                    .store()
                    .commit(Commit {
                        workspace: self.who.workspace,
                        writes: vec![
                            Write::Execution {
                                execution: t.execution.clone(),
                                expected_rev: Some(ex.rev),
                            },
                            Write::StepEvent(t.event),
                        ],
                        audit: draft,
                        acting: Some(vigilo_core::store::ActingMember {
                            user: actor.id(),
                            membership_rev: actor.membership.rev,
                        }),
                    })
                    .await
                    .unwrap();
                t.execution
            }
        }
    }
}

/// A workspace with its owner and a published runbook of [`STEPS`] steps.
async fn workspace(vigilo: &Vigilo, slug: &str) -> (Who, Key) {
    let (ws, owner) = vigilo
        .create_workspace(slug, &format!("{slug}-owner"), "Owner")
        .await
        .unwrap();
    let who = Who::new(ws.id, owner.id);
    let input = RunbookInput {
        title: "Long procedure".into(),
        description: String::new(),
        category: "bench".into(),
        steps: (1..=STEPS)
            .map(|i| StepInput {
                title: format!("Step {i}"),
                est_minutes: 1,
                ..StepInput::default()
            })
            .collect(),
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
        .await
        .unwrap();
    (who, rb.key)
}

/// Transitions per second with `clients` clients, in one shared workspace or one each.
/// Also the write-ahead log bytes written per transition during the timed window (read on
/// `pg`).
async fn measure(
    pg: &tokio_postgres::Client,
    store: Arc<PgStore>,
    clients: usize,
    shared: bool,
    via: Via,
    round: usize,
) -> (f64, f64) {
    let vigilo = Vigilo::new(store);
    let mut setups = Vec::new();
    for i in 0..clients {
        if shared && i > 0 {
            let first: &(Who, Key) = &setups[0];
            setups.push(*first);
        } else {
            setups.push(workspace(&vigilo, &format!("bench-{round}-{i}")).await);
        }
    }
    // Executions are started before the timed window (a start is not a step transition), then
    // every client walks its own, step by step, from the same moment.
    let ready = Arc::new(tokio::sync::Barrier::new(clients + 1));
    let pre_started = if clients == 1 { 600 } else { 150 };
    let tasks: Vec<_> = setups
        .into_iter()
        .map(|(who, runbook)| {
            let vigilo = vigilo.clone();
            let ready = ready.clone();
            tokio::spawn(async move {
                let actor = vigilo.actor(&who).await.unwrap();
                let client = Client {
                    vigilo,
                    who,
                    runbook,
                    actor,
                };
                let mut queue = Vec::with_capacity(pre_started);
                for _ in 0..pre_started {
                    queue.push(client.start().await);
                }
                ready.wait().await;
                let deadline = Instant::now() + RUN_FOR;
                let mut done = 0u64;
                let mut ex = queue.pop().unwrap();
                while Instant::now() < deadline {
                    ex = client.step(&ex, via).await;
                    done += 1;
                    if ex.status == ExecutionStatus::Completed {
                        // Only when the pre-started ones ran out does a start fall inside the
                        // window (its time counts, it does not).
                        ex = match queue.pop() {
                            Some(next) => next,
                            None => client.start().await,
                        };
                    }
                }
                done
            })
        })
        .collect();
    ready.wait().await;
    let lsn = wal_lsn(pg).await;
    let started = Instant::now();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let label = format!(
        "{via:?} {clients}{}",
        if shared { "" } else { " (a workspace each)" }
    );
    let wal = wal_since(pg, &lsn, &label).await / (total.max(1) as f64);
    (total as f64 / elapsed, wal)
}

/// What a baseline script does per transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Script {
    /// `INSERT INTO one_row (v) VALUES (1)`, autocommitted.
    OneRow,
    /// The logical work of one step transition in one transaction, one statement at a time:
    /// the state row's update, the event's insert, the chain head's update, the audit row's
    /// insert ([`RAW_SCRIPT`]).
    Step,
    /// The same transaction sent as one pipeline (`\startpipeline` … `\endpipeline`): one
    /// round trip, as Vigilo's one-call path.
    StepPipelined,
}

/// A realistic event document (the size of a `done` event's JSON).
const RAW_EVENT_DOC: &str = r#"{"execution":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","seq":5,"kind":"done","step_order":5,"step_id":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c","actor":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d","at":"2026-12-06T10:11:12.123456Z","note":null,"started_at":"2026-12-06T10:11:11.123456Z"}"#;

/// A realistic audit document (the size of a step's entry).
fn raw_audit_doc() -> String {
    format!(
        r#"{{"id":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5e","workspace":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5f","seq":123,"at":"2026-12-06T10:11:12.123456Z","actor":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d","actor_handle":"bench-0-owner","action":"execution.step_done","target":"EX-00042","details":{{"step":5}},"links":{{"runbook":null,"runbook_version":null,"change":null,"incident":null,"execution":"EX-00042"}},"prev_hash":"{h}","hash":"{h}"}}"#,
        h = "ab".repeat(32)
    )
}

/// The logical work of a step transition, per client `:client_id` (its own workspace, chain
/// head and state row): the tables are made by [`RAW_TABLES`], the documents (of the sizes
/// Vigilo writes) come from its one-row table `raw_docs` (pgbench would take the colons of
/// JSON in the script's text for variables).
fn raw_script(pipelined: bool) -> String {
    let (open, close) = if pipelined {
        ("\\startpipeline\n", "\\endpipeline\n")
    } else {
        ("", "")
    };
    format!(
        "\\set ws :client_id\n{open}BEGIN;\n\
         UPDATE raw_state SET current_step = current_step % 10 + 1, updated_at = now(), rev = rev + 1 WHERE id = :ws;\n\
         INSERT INTO raw_events (execution_id, seq, kind, step_id, at, started_at, doc) SELECT s.id, s.rev, 'done', '0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c', now(), now(), d.event FROM raw_state s, raw_docs d WHERE s.id = :ws;\n\
         UPDATE raw_heads SET seq = seq + 1, hash = md5(seq::text) || md5(seq::text) WHERE ws = :ws;\n\
         INSERT INTO raw_audit (ws, seq, id, at, actor, action, target, link_execution, hash, doc) SELECT h.ws, h.seq, gen_random_uuid(), now(), '0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d', 'execution.step_done', 'EX-00042', 'EX-00042', h.hash, d.audit FROM raw_heads h, raw_docs d WHERE h.ws = :ws;\n\
         COMMIT;\n{close}"
    )
}

/// The tables of [`raw_script`]: its documents, a state row per client (a 450-byte header before the state
/// columns, as Vigilo's `executions`), the events, the chain heads and the audit rows, each
/// with its primary key only.
const RAW_TABLES: &str = "
CREATE TABLE raw_docs (event text NOT NULL, audit text NOT NULL);
CREATE TABLE raw_state (id int PRIMARY KEY, header text NOT NULL, status text NOT NULL,
    current_step int, updated_at timestamptz NOT NULL, rev bigint NOT NULL) WITH (fillfactor = 70);
INSERT INTO raw_state SELECT g, repeat('h', 450), 'running', 1, now(), 1 FROM generate_series(0, 15) g;
CREATE TABLE raw_events (execution_id int, seq bigint, kind text NOT NULL, step_id uuid,
    at timestamptz NOT NULL, started_at timestamptz, doc text NOT NULL,
    PRIMARY KEY (execution_id, seq));
CREATE TABLE raw_heads (ws int PRIMARY KEY, seq bigint NOT NULL, hash text NOT NULL);
INSERT INTO raw_heads SELECT g, 0, '' FROM generate_series(0, 15) g;
CREATE TABLE raw_audit (ws int, seq bigint, id uuid NOT NULL, at timestamptz NOT NULL,
    actor uuid, action text NOT NULL, target text NOT NULL, link_execution text,
    hash text NOT NULL, doc text NOT NULL, PRIMARY KEY (ws, seq));
";

/// pgbench's rate (transactions per second) and number of transactions running `script` with
/// `clients` clients (each on its own workspace's rows), on the database of `url`; `None`,
/// saying why, when pgbench cannot run.
fn pgbench(url: &str, clients: usize, script: Script) -> Option<(f64, f64)> {
    let file = std::env::temp_dir().join(format!("vigilo-{script:?}-{}.sql", std::process::id()));
    let text = match script {
        Script::OneRow => "INSERT INTO one_row (v) VALUES (1);\n".to_owned(),
        Script::Step => raw_script(false),
        Script::StepPipelined => raw_script(true),
    };
    std::fs::write(&file, text).unwrap();
    let program = std::env::var("PGBENCH").unwrap_or_else(|_| "pgbench".into());
    let out = std::process::Command::new(&program)
        .args(["-n", "-M", "prepared", "-c", &clients.to_string()])
        .args(["-j", &clients.min(2).to_string()])
        .args(["-T", &RUN_FOR.as_secs().to_string()])
        .arg("-f")
        .arg(&file)
        .arg(url)
        .output();
    let _ = std::fs::remove_file(&file);
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            println!(
                "pgbench failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return None;
        }
        Err(e) => {
            println!("pgbench not run ({program}: {e}); set PGBENCH to its path");
            return None;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tps = stdout.lines().find_map(|l| {
        l.strip_prefix("tps = ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    })?;
    let count = stdout.lines().find_map(|l| {
        l.strip_prefix("number of transactions actually processed: ")
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
    })?;
    Some((tps, count))
}

/// The server's write-ahead log position.
async fn wal_lsn(client: &tokio_postgres::Client) -> String {
    client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0)
}

/// The write-ahead log written since `from` for this database: with `pg_walinspect`, the
/// records that touch its blocks and the commit records of their transactions (the server is
/// shared: other databases' writes are left out), printed by record type when
/// `VIGILO_BENCH_WAL` is set; without it, every byte written since.
async fn wal_since(client: &tokio_postgres::Client, from: &str, label: &str) -> f64 {
    let by_type = client
        .query(
            "WITH r AS (
                 SELECT * FROM pg_get_wal_records_info($1::text::pg_lsn, pg_current_wal_lsn())
             ), db AS (
                 SELECT '/' || oid::text || '/' AS tag FROM pg_database
                 WHERE datname = current_database()
             ), mine AS (
                 SELECT r.* FROM r, db WHERE strpos(r.block_ref, db.tag) > 0
             ), txs AS (SELECT DISTINCT xid FROM mine WHERE xid <> 0)
             SELECT resource_manager || '/' || record_type, count(*)::float8,
                    sum(record_length)::float8, sum(fpi_length)::float8
             FROM (SELECT * FROM mine
                   UNION ALL
                   SELECT r.* FROM r WHERE r.resource_manager = 'Transaction'
                       AND r.xid IN (SELECT xid FROM txs)) x
             GROUP BY 1 ORDER BY 3 DESC",
            &[&from],
        )
        .await;
    match by_type {
        Ok(rows) => {
            let total: f64 = rows.iter().map(|r| r.get::<_, f64>(2)).sum();
            if std::env::var("VIGILO_BENCH_WAL").is_ok() {
                println!("WAL of {label}: {total:.0} bytes");
                for r in &rows {
                    println!(
                        "  {:<28} {:>8.0} records {:>10.0} bytes ({:.0} of them full pages)",
                        r.get::<_, String>(0),
                        r.get::<_, f64>(1),
                        r.get::<_, f64>(2),
                        r.get::<_, f64>(3)
                    );
                }
            }
            total
        }
        Err(e) => {
            eprintln!("pg_walinspect not usable ({e}); counting every WAL byte");
            let now: f64 = client
                .query_one(
                    "SELECT (pg_current_wal_lsn() - $1::text::pg_lsn)::float8",
                    &[&from],
                )
                .await
                .unwrap()
                .get(0);
            now
        }
    }
}

/// Whether a case runs: all of them, or those `VIGILO_BENCH_CASES` names (comma-separated,
/// as printed: `Store 1`, `Service 8`, `Store 8 (a workspace each)`, …), to profile one.
fn selected(via: Via, clients: usize, shared: bool) -> bool {
    let Ok(only) = std::env::var("VIGILO_BENCH_CASES") else {
        return true;
    };
    let name = format!(
        "{via:?} {clients}{}",
        if shared { "" } else { " (a workspace each)" }
    );
    only.split(',').any(|c| c.trim() == name)
}

fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture and VIGILO_TEST_PG_URL"]
async fn step_transitions_per_second() {
    let Ok(admin) = std::env::var(URL_VAR) else {
        println!("SKIPPED step_transitions_per_second: {URL_VAR} is not set");
        return;
    };
    let scratch = ScratchDatabase::create(&admin).await.unwrap();
    // Time spent inside the step-transition function, per call (pg_stat_user_functions).
    {
        let (admin_client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        admin_client
            .batch_execute(&format!(
                "ALTER DATABASE \"{}\" SET track_functions = 'pl'",
                scratch.name()
            ))
            .await
            .unwrap();
    }
    let store = Arc::new(
        PgStore::connect(scratch.url(), PgOptions::default().max_connections(16))
            .await
            .unwrap(),
    );
    let tx_store = Arc::new(
        PgStore::connect(
            scratch.url(),
            PgOptions::default()
                .max_connections(16)
                .server_side_transitions(false),
        )
        .await
        .unwrap(),
    );
    let (client, conn) = tokio_postgres::connect(scratch.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute("CREATE TABLE one_row (id bigserial PRIMARY KEY, v integer NOT NULL)")
        .await
        .unwrap();
    client.batch_execute(RAW_TABLES).await.unwrap();
    // Per-database WAL accounting (see `wal_since`); without it, every byte counts.
    if let Err(e) = client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        .await
    {
        println!("no pg_walinspect ({e}): WAL figures include other databases' writes");
    }
    client
        .execute(
            "INSERT INTO raw_docs (event, audit) VALUES ($1, $2)",
            &[&RAW_EVENT_DOC, &raw_audit_doc()],
        )
        .await
        .unwrap();
    let settings = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('fsync'),
                    current_setting('synchronous_commit')",
            &[],
        )
        .await
        .unwrap();
    println!(
        "PostgreSQL {} (fsync={}, synchronous_commit={}); {} s per measurement, median of {}",
        settings.get::<_, String>(0),
        settings.get::<_, String>(1),
        settings.get::<_, String>(2),
        RUN_FOR.as_secs(),
        rounds()
    );

    // The cases: at 1 client, and at 8 clients each in a workspace of its own (as the
    // baseline scripts' clients, each on its own rows); Store at 8 clients in one workspace
    // too (one chain head for all).
    let cases: [(Via, usize, bool); 7] = [
        (Via::Store, 1, true),
        (Via::StoreTx, 1, true),
        (Via::Service, 1, true),
        (Via::Store, 8, false),
        (Via::StoreTx, 8, false),
        (Via::Service, 8, false),
        (Via::Store, 8, true),
    ];
    let scripts = [Script::OneRow, Script::Step, Script::StepPipelined];
    let mut vigilo: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    // Per case, per round: the case's rate over each script's rate of that round.
    let mut ratios: Vec<[Vec<f64>; 3]> = vec![Default::default(); cases.len()];
    // Per number of clients (1, 8) and script: rates and WAL bytes per transaction.
    let mut baseline: [[Vec<f64>; 3]; 2] = Default::default();
    let mut baseline_wal: [[Vec<f64>; 3]; 2] = Default::default();
    let mut wal: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut round = 0;
    for _ in 0..rounds() {
        for (slot, clients) in [(0, 1), (1, 8)] {
            let mut base = [None; 3];
            for (k, script) in scripts.iter().enumerate() {
                let url = scratch.url().to_owned();
                let script = *script;
                let lsn = wal_lsn(&client).await;
                let got = tokio::task::spawn_blocking(move || pgbench(&url, clients, script))
                    .await
                    .unwrap();
                if let Some((tps, count)) = got {
                    baseline[slot][k].push(tps);
                    let label = format!("pgbench {script:?} {clients}");
                    baseline_wal[slot][k]
                        .push(wal_since(&client, &lsn, &label).await / count.max(1.0));
                    base[k] = Some(tps);
                }
            }
            for (i, (via, n, shared)) in cases.iter().enumerate() {
                if *n != clients || !selected(*via, *n, *shared) {
                    continue;
                }
                round += 1;
                let on = if *via == Via::StoreTx {
                    tx_store.clone()
                } else {
                    store.clone()
                };
                let (rate, per_op) = measure(&client, on, *n, *shared, *via, round).await;
                vigilo[i].push(rate);
                wal[i].push(per_op);
                for (k, b) in base.iter().enumerate() {
                    if let Some(b) = b {
                        ratios[i][k].push(rate / b);
                    }
                }
            }
        }
    }
    for (slot, clients) in [(0, 1), (1, 8)] {
        for (k, script) in scripts.iter().enumerate() {
            if baseline[slot][k].is_empty() {
                println!("pgbench {script:?}: {clients} client(s): not measured");
            } else {
                println!(
                    "pgbench {script:?}: {clients} client(s): {:.0} tps (runs: {:.0?}); WAL {:.0} bytes per transaction",
                    median(baseline[slot][k].clone()),
                    baseline[slot][k],
                    median(baseline_wal[slot][k].clone()),
                );
            }
        }
    }
    for (i, (via, clients, shared)) in cases.iter().enumerate() {
        if vigilo[i].is_empty() {
            continue;
        }
        let rate = median(vigilo[i].clone());
        let ratio = |k: usize| {
            format!(
                "{:.2}x (rounds {:.2?})",
                median(ratios[i][k].clone()),
                ratios[i][k]
            )
        };
        println!(
            "{via:?}: {clients} client(s), {}: {rate:.0} transitions/s; WAL {:.0} bytes per transition; \
             vs the step script {}; vs the pipelined script {}; vs one-row {}",
            if *shared {
                "one workspace"
            } else {
                "a workspace each"
            },
            median(wal[i].clone()),
            ratio(1),
            ratio(2),
            ratio(0),
        );
    }
    let sizes = client
        .query_one(
            "SELECT (SELECT avg(length(doc))::float8 FROM step_events),
                    (SELECT avg(length(doc))::float8 FROM audit),
                    (SELECT avg(length(doc))::float8 FROM executions),
                    (SELECT avg(length(doc))::float8 FROM raw_events),
                    (SELECT avg(length(doc))::float8 FROM raw_audit)",
            &[],
        )
        .await
        .unwrap();
    println!(
        "average document sizes: Vigilo event {:.0}, audit {:.0}, execution header {:.0}; \
         script event {:.0}, audit {:.0}",
        sizes.get::<_, Option<f64>>(0).unwrap_or_default(),
        sizes.get::<_, Option<f64>>(1).unwrap_or_default(),
        sizes.get::<_, Option<f64>>(2).unwrap_or_default(),
        sizes.get::<_, Option<f64>>(3).unwrap_or_default(),
        sizes.get::<_, Option<f64>>(4).unwrap_or_default(),
    );
    let calls = client
        .query_opt(
            "SELECT calls, total_time FROM pg_stat_user_functions
             WHERE funcname = 'vigilo_step_transition'",
            &[],
        )
        .await
        .unwrap();
    if let Some(row) = calls {
        let (n, ms): (i64, f64) = (row.get(0), row.get(1));
        println!(
            "vigilo_step_transition: {n} calls, {:.3} ms inside the function per call (before its commit)",
            ms / (n.max(1) as f64)
        );
    }
    // Where the server's work goes: how many execution updates were HOT (no index entries
    // written), and the write-ahead log written over the whole run.
    let stats = client
        .query_one(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'executions'",
            &[],
        )
        .await
        .unwrap();
    println!(
        "execution updates: {} of which HOT: {}",
        stats.get::<_, i64>(0),
        stats.get::<_, i64>(1)
    );
    drop(store);
    drop(tx_store);
    scratch.drop_database().await;
}
