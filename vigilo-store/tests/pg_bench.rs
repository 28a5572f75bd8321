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
    let lsn = wal_bytes(pg).await;
    let started = Instant::now();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let wal = (wal_bytes(pg).await - lsn) / (total.max(1) as f64);
    (total as f64 / elapsed, wal)
}

/// pgbench's rate of one-row commits with `clients` clients, on the database of `url` (its
/// table `one_row` must exist); `None`, saying why, when pgbench cannot run.
fn pgbench(url: &str, clients: usize) -> Option<f64> {
    let script = std::env::temp_dir().join(format!("vigilo-onerow-{}.sql", std::process::id()));
    std::fs::write(&script, "INSERT INTO one_row (v) VALUES (1);\n").unwrap();
    let program = std::env::var("PGBENCH").unwrap_or_else(|_| "pgbench".into());
    let out = std::process::Command::new(&program)
        .args(["-n", "-M", "prepared", "-c", &clients.to_string()])
        .args(["-j", &clients.min(2).to_string()])
        .args(["-T", &RUN_FOR.as_secs().to_string()])
        .arg("-f")
        .arg(&script)
        .arg(url)
        .output();
    let _ = std::fs::remove_file(&script);
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
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        l.strip_prefix("tps = ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    })
}

/// The server's write-ahead log position, in bytes.
async fn wal_bytes(client: &tokio_postgres::Client) -> f64 {
    client
        .query_one("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::float8", &[])
        .await
        .unwrap()
        .get(0)
}

/// Log bytes written since `from` per operation, for a run of [`RUN_FOR`] at `rate` per second
/// (pgbench's rate covers only the first measurement of a round, so this is approximate).
async fn wal_per_op(client: &tokio_postgres::Client, from: f64, rate: f64) -> f64 {
    let ops = rate * RUN_FOR.as_secs_f64();
    (wal_bytes(client).await - from) / ops.max(1.0)
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

    let cases: [(Via, usize, bool); 8] = [
        (Via::Store, 1, true),
        (Via::StoreTx, 1, true),
        (Via::Service, 1, true),
        (Via::Store, 8, true),
        (Via::StoreTx, 8, true),
        (Via::Service, 8, true),
        (Via::Store, 8, false),
        (Via::Service, 8, false),
    ];
    let mut vigilo: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut baseline: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    // Write-ahead log bytes per operation: pgbench's first, then each case's.
    let mut wal: Vec<Vec<f64>> = vec![Vec::new(); cases.len() + 1];
    let mut round = 0;
    for _ in 0..rounds() {
        for (slot, clients) in [(0, 1), (1, 8)] {
            let url = scratch.url().to_owned();
            let lsn = wal_bytes(&client).await;
            let base = tokio::task::spawn_blocking(move || pgbench(&url, clients))
                .await
                .unwrap();
            if let Some(b) = base {
                baseline[slot].push(b);
                wal[0].push(wal_per_op(&client, lsn, b).await);
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
                wal[i + 1].push(per_op);
                if let Some(b) = base {
                    ratios[i].push(rate / b);
                }
            }
        }
    }
    for (slot, clients) in [(0, 1), (1, 8)] {
        if baseline[slot].is_empty() {
            println!("pgbench one-row commits: {clients} client(s): not measured");
        } else {
            println!(
                "pgbench one-row commits: {clients} client(s): {:.0} tps (runs: {:.0?})",
                median(baseline[slot].clone()),
                baseline[slot]
            );
        }
    }
    for (i, (via, clients, shared)) in cases.iter().enumerate() {
        let rate = median(vigilo[i].clone());
        let ratio = if ratios[i].is_empty() {
            String::new()
        } else {
            format!(
                "; {:.2}x pgbench (median of per-round ratios {:.2?})",
                median(ratios[i].clone()),
                ratios[i]
            )
        };
        println!(
            "{via:?}: {clients} client(s), {}: {rate:.0} transitions/s{ratio}",
            if *shared {
                "one workspace"
            } else {
                "a workspace each"
            }
        );
    }
    println!(
        "WAL bytes per operation (medians): pgbench one-row commit (1 client) {:.0}; {}",
        median(wal[0].clone()),
        cases
            .iter()
            .enumerate()
            .map(|(i, (via, n, shared))| format!(
                "{via:?} {n}{} {:.0}",
                if *shared { "" } else { " (a workspace each)" },
                median(wal[i + 1].clone())
            ))
            .collect::<Vec<_>>()
            .join("; ")
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
