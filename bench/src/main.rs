//! `vigilo-bench`: Vigilo's SQLite store through the real service, each figure next to raw
//! rusqlite measured in the same run (see `BENCHMARKS.md`).
//!
//! ```text
//! cargo run --release -p vigilo-bench -- all            # everything (~5 minutes)
//! cargo run --release -p vigilo-bench -- act size       # some of: act concurrent diff size corpus
//! cargo run --release -p vigilo-bench -- all --quick    # fewer rounds, 10,000 runbooks
//! options: --dir <path> (keep the files there; a seeded corpus.db is reused), --rounds <n>,
//!          --runbooks <n>
//! ```
//!
//! The machine is small and shared, so every comparison interleaves the two sides round by
//! round (alternating which goes first) and reports medians.

mod audit;
mod corpus;
mod diff;
mod raw;
mod runstats;
mod service;
mod size;
mod stats;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::raw::{Raw, Shape};
use crate::service::{STEPS, Service};
use crate::stats::{Latencies, median};

/// Concurrent executions in the concurrency benchmark.
const TASKS: usize = 64;

/// Command-line options.
struct Args {
    benches: Vec<String>,
    quick: bool,
    dir: Option<PathBuf>,
    rounds: Option<usize>,
    runbooks: Option<usize>,
}

const BENCHES: &[&str] = &[
    "act",
    "concurrent",
    "diff",
    "size",
    "corpus",
    "audit",
    "stats",
];

fn parse_args() -> Result<Args> {
    let mut args = Args {
        benches: Vec::new(),
        quick: false,
        dir: None,
        rounds: None,
        runbooks: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "--quick" => args.quick = true,
            "--dir" => args.dir = Some(PathBuf::from(value("--dir")?)),
            "--rounds" => args.rounds = Some(value("--rounds")?.parse()?),
            "--runbooks" => args.runbooks = Some(value("--runbooks")?.parse()?),
            "all" => args.benches.extend(BENCHES.iter().map(|b| (*b).to_owned())),
            b if BENCHES.contains(&b) => args.benches.push(b.to_owned()),
            "-h" | "--help" => {
                println!(
                    "usage: vigilo-bench [all | {}]... [--quick] [--dir PATH] [--rounds N] [--runbooks N]",
                    BENCHES.join(" | ")
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}` (try --help)"),
        }
    }
    if args.benches.is_empty() {
        bail!(
            "name the benchmarks to run: all, or some of {}",
            BENCHES.join(", ")
        );
    }
    Ok(args)
}

fn main() -> Result<()> {
    if let Some(done) = audit::child_main() {
        return done;
    }
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

/// One line of the summary table.
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) measured: String,
    pub(crate) baseline: String,
    pub(crate) ratio: String,
    pub(crate) target: String,
    pub(crate) met: bool,
}

/// Prints a line at once (the runs are long).
pub(crate) fn say(text: &str) {
    println!("{text}");
    let _ = std::io::stdout().flush();
}

async fn run(args: Args) -> Result<()> {
    let scratch;
    let dir: PathBuf = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            scratch = tempfile::tempdir()?;
            scratch.path().to_path_buf()
        }
    };
    say(&machine(&dir));
    let fsync = fsync_probe(&dir)?;
    say(&format!(
        "fsync probe (4 KiB write + fdatasync, 100 times): {}\n",
        fsync.describe()
    ));
    let rounds = args.rounds.unwrap_or(if args.quick { 3 } else { 7 });
    let mut rows = Vec::new();
    let started = Instant::now();
    for bench in &args.benches {
        let t = Instant::now();
        match bench.as_str() {
            "act" => {
                rows.extend(bench_act(&dir, rounds, if args.quick { 100 } else { 200 }).await?)
            }
            "concurrent" => rows.push(bench_concurrent(&dir, rounds).await?),
            "diff" => rows.push(bench_diff(if args.quick { 30 } else { 101 })?),
            "size" => rows.push(bench_size(&dir).await?),
            "corpus" => {
                let n = args
                    .runbooks
                    .unwrap_or(if args.quick { 10_000 } else { 100_000 });
                rows.extend(bench_corpus(&dir, n, if args.quick { 30 } else { 101 }).await?);
            }
            "audit" => rows.extend(audit::bench(&dir, rounds).await?),
            "stats" => rows.extend(runstats::bench(&dir, rounds.max(9)).await?),
            other => bail!("unknown benchmark {other}"),
        }
        say(&format!("  ({bench} took {:.1?})\n", t.elapsed()));
    }
    let mut table = String::from(
        "| Benchmark | Vigilo | Raw rusqlite | Ratio | Target | Met |\n|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} |",
            r.name,
            r.measured,
            r.baseline,
            r.ratio,
            r.target,
            if r.met { "yes" } else { "**no**" }
        );
    }
    say(&format!(
        "## Summary (all benchmarks took {:.1?})\n\n{table}",
        started.elapsed()
    ));
    Ok(())
}

/// CPU, memory, kernel, the file system of `dir`, SQLite's version, the build profile.
fn machine(dir: &Path) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU", str::trim)
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .map(|l| l.trim_start_matches("MemTotal:").trim().to_owned())
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let fs = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && canonical.starts_with(f[1])).then(|| {
                (
                    f[1].len(),
                    format!("{} {} on {} ({})", f[2], f[0], f[1], f[3]),
                )
            })
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, s)| s)
        .unwrap_or_default();
    format!(
        "# vigilo-bench\n\nmachine: {cpu}, {cores} cores, {mem} RAM, Linux {}\nfiles: {} ({fs})\nSQLite {} (bundled), {} build\n",
        kernel.trim(),
        canonical.display(),
        rusqlite::version(),
        if cfg!(debug_assertions) {
            "DEBUG (numbers meaningless)"
        } else {
            "release"
        },
    )
}

/// The raw cost of durability here: 4 KiB appended and `fdatasync`ed, 100 times.
fn fsync_probe(dir: &Path) -> Result<Latencies> {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path)?;
    let block = [0x5a_u8; 4096];
    let mut lat = Latencies::default();
    for _ in 0..100 {
        file.write_all(&block)?;
        let t = Instant::now();
        file.sync_data()?;
        lat.push(t.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(lat)
}

fn rate(ops: usize, took: Duration) -> f64 {
    ops as f64 / took.as_secs_f64()
}

/// Sequential step transitions: `Vigilo::act` vs the raw transaction doing the same logical
/// work (a small state-row update, an event, an audit entry), with the first release's raw
/// shape (the whole execution document rewritten) alongside; `n` each per round, in an order
/// that rotates between rounds.
async fn bench_act(dir: &Path, rounds: usize, n: usize) -> Result<Vec<Row>> {
    say(&format!(
        "## Durable step transition, one execution at a time ({rounds} rounds of {n} transitions per side, order rotating)"
    ));
    let svc = Service::create(&dir.join("act.db")).await?;
    let template = serde_json::to_value(svc.start().await?)?;
    let mut lean = Raw::create_shaped(&dir.join("act-raw.db"), template.clone(), Shape::Lean)?;
    let mut whole = Raw::create_shaped(&dir.join("act-raw-doc.db"), template, Shape::WholeDoc)?;
    svc.sequential_acts(20).await?;
    lean.sequential_acts(20)?;
    whole.sequential_acts(20)?;
    let (mut vigilo_rates, mut raw_rates, mut doc_rates) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ratios, mut doc_ratios) = (Vec::new(), Vec::new());
    let (mut vigilo_all, mut raw_all) = (Latencies::default(), Latencies::default());
    for round in 0..rounds {
        let (mut v, mut r, mut d) = (None, None, None);
        for side in 0..3 {
            match (round + side) % 3 {
                0 => v = Some(svc.sequential_acts(n).await?),
                1 => r = Some(lean.sequential_acts(n)?),
                _ => d = Some(whole.sequential_acts(n)?),
            }
        }
        let (Some(v), Some(r), Some(d)) = (v, r, d) else {
            bail!("a side did not run");
        };
        let (vr, rr, dr) = (
            1000.0 / v.median(),
            1000.0 / r.median(),
            1000.0 / d.median(),
        );
        say(&format!(
            "  round {}: Vigilo::act {vr:.0}/s (median {:.3} ms), raw same work {rr:.0}/s (median {:.3} ms), raw whole doc {dr:.0}/s; ratio {:.2} (vs whole doc {:.2})",
            round + 1,
            v.median(),
            r.median(),
            vr / rr,
            vr / dr
        ));
        vigilo_rates.push(vr);
        raw_rates.push(rr);
        doc_rates.push(dr);
        ratios.push(vr / rr);
        doc_ratios.push(vr / dr);
        vigilo_all.extend(&v);
        raw_all.extend(&r);
    }
    let ratio = median(&ratios);
    say(&format!("  Vigilo::act:    {}", vigilo_all.describe()));
    say(&format!("  raw same work:  {}", raw_all.describe()));
    say(&format!(
        "  median of round rates: Vigilo {:.0}/s, raw same work {:.0}/s, raw whole doc {:.0}/s; median of round ratios {ratio:.2} (vs whole doc {:.2})",
        median(&vigilo_rates),
        median(&raw_rates),
        median(&doc_rates),
        median(&doc_ratios)
    ));
    svc.close().await?;
    lean.close()?;
    whole.close()?;
    let wal = bench_wal(dir).await?;
    Ok(vec![
        Row {
            name: "Durable step transition, sequential (`Vigilo::act` vs one raw transaction of the same writes)".into(),
            measured: format!(
                "{:.0}/s (median {:.2} ms, p99 {:.2} ms)",
                median(&vigilo_rates),
                vigilo_all.median(),
                vigilo_all.p(99.0)
            ),
            baseline: format!(
                "{:.0}/s (median {:.2} ms, p99 {:.2} ms); whole-doc raw {:.0}/s",
                median(&raw_rates),
                raw_all.median(),
                raw_all.p(99.0),
                median(&doc_rates)
            ),
            ratio: format!("{ratio:.2}×"),
            target: "≥ 0.8×".into(),
            met: ratio >= 0.8,
        },
        wal,
    ])
}

/// Bytes the write-ahead log grows by per step transition: Vigilo, the raw transaction of the
/// same writes, and the whole-document raw one, on fresh files (100 transitions each, started
/// executions excluded; well under the 1,000-page auto-checkpoint, so the log only grows).
async fn bench_wal(dir: &Path) -> Result<Row> {
    const EXECUTIONS: usize = 10;
    let wal_size = |db: &Path| -> Result<u64> {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        Ok(std::fs::metadata(PathBuf::from(wal)).map_or(0, |m| m.len()))
    };
    let transitions = (EXECUTIONS * STEPS as usize) as f64;
    let db = dir.join("wal.db");
    let svc = Service::create(&db).await?;
    let mut keys = Vec::new();
    for _ in 0..EXECUTIONS {
        keys.push(svc.start().await?.key);
    }
    let before = wal_size(&db)?;
    for key in &keys {
        for step in 1..=STEPS {
            svc.done(*key, step).await?;
        }
    }
    let vigilo = (wal_size(&db)? - before) as f64 / transitions;
    let template = serde_json::to_value(svc.start().await?)?;
    svc.close().await?;
    let mut per_shape = Vec::new();
    for (name, shape) in [
        ("wal-raw.db", Shape::Lean),
        ("wal-raw-doc.db", Shape::WholeDoc),
    ] {
        let db = dir.join(name);
        let mut raw = Raw::create_shaped(&db, template.clone(), shape)?;
        let mut execs = Vec::new();
        for _ in 0..EXECUTIONS {
            execs.push(raw.start()?);
        }
        let before = wal_size(&db)?;
        for exec in &mut execs {
            for step in 1..=STEPS {
                raw.done(exec, step)?;
            }
        }
        per_shape.push((wal_size(&db)? - before) as f64 / transitions);
        raw.close()?;
    }
    say(&format!(
        "  WAL per transition: Vigilo {vigilo:.0} B, raw same work {:.0} B, raw whole doc {:.0} B",
        per_shape[0], per_shape[1]
    ));
    Ok(Row {
        name: "SQLite write-ahead log per step transition".into(),
        measured: format!("{vigilo:.0} B"),
        baseline: format!(
            "{:.0} B (same work); whole-doc raw {:.0} B",
            per_shape[0], per_shape[1]
        ),
        ratio: format!("{:.2}×", vigilo / per_shape[0]),
        target: "reported".into(),
        met: true,
    })
}

/// 64 executions walked concurrently through `Vigilo::act` vs raw one-commit-per-action.
async fn bench_concurrent(dir: &Path, rounds: usize) -> Result<Row> {
    let n_raw = 200;
    say(&format!(
        "## {TASKS} concurrent executions ({rounds} rounds: {TASKS}×{STEPS} transitions through Vigilo::act vs {n_raw} sequential raw transactions, alternating)"
    ));
    let svc = Service::create(&dir.join("concurrent.db")).await?;
    let template = serde_json::to_value(svc.start().await?)?;
    let mut raw = Raw::create_shaped(&dir.join("concurrent-raw.db"), template, Shape::Lean)?;
    svc.concurrent_walks(8).await?;
    raw.sequential_acts(20)?;
    let (mut vigilo_rates, mut raw_rates, mut ratios, mut batches) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let run_vigilo = || svc.concurrent_walks(TASKS);
        let ((took, stats), r) = if round % 2 == 0 {
            let r = raw.sequential_acts(n_raw)?;
            (run_vigilo().await?, r)
        } else {
            let v = run_vigilo().await?;
            (v, raw.sequential_acts(n_raw)?)
        };
        let vr = rate(TASKS * STEPS as usize, took);
        let rr = 1000.0 / r.median();
        let batch = stats.writes as f64 / stats.transactions.max(1) as f64;
        say(&format!(
            "  round {}: Vigilo {vr:.0} transitions/s ({} in {took:.2?}; {} commits in {} transactions, {batch:.1} per group commit), raw {rr:.0}/s, ratio {:.2}",
            round + 1,
            TASKS * STEPS as usize,
            stats.writes,
            stats.transactions,
            vr / rr
        ));
        vigilo_rates.push(vr);
        raw_rates.push(rr);
        ratios.push(vr / rr);
        batches.push(batch);
    }
    let ratio = median(&ratios);
    say(&format!(
        "  median: Vigilo {:.0}/s, raw {:.0}/s, ratio {ratio:.2}, {:.1} writes per transaction",
        median(&vigilo_rates),
        median(&raw_rates),
        median(&batches)
    ));
    svc.close().await?;
    raw.close()?;
    Ok(Row {
        name: format!(
            "{TASKS} concurrent executions (`Vigilo::act`, group commit) vs raw sequential one-fsync-per-action"
        ),
        measured: format!(
            "{:.0} transitions/s ({:.1} commits per transaction)",
            median(&vigilo_rates),
            median(&batches)
        ),
        baseline: format!("{:.0}/s", median(&raw_rates)),
        ratio: format!("{ratio:.2}×"),
        target: "≥ 3×".into(),
        met: ratio >= 3.0,
    })
}

fn bench_diff(runs: usize) -> Result<Row> {
    say(&format!(
        "## runbook::diff::diff of two 500-step versions ({runs} runs)"
    ));
    let lat = diff::measure(runs)?;
    say(&format!("  {}", lat.describe()));
    Ok(Row {
        name: "`runbook::diff::diff`, two 500-step versions".into(),
        measured: format!("median {:.2} ms (p90 {:.2} ms)", lat.median(), lat.p(90.0)),
        baseline: "—".into(),
        ratio: "—".into(),
        target: "≤ 5 ms".into(),
        met: lat.median() <= 5.0,
    })
}

async fn bench_size(dir: &Path) -> Result<Row> {
    let n = 1000;
    say(&format!(
        "## File size: {n} executions of a {STEPS}-step runbook, every step done"
    ));
    let r = size::measure(dir, n).await?;
    say(&format!(
        "  store: {} bytes before, {} after (checkpointed); {:.0} bytes per execution; page size {}, {} free pages; walked in {:.1?}",
        r.base,
        r.after,
        r.per_execution(),
        r.page_size,
        r.free_pages,
        r.elapsed
    ));
    for (name, bytes) in r.tables.iter().take(12) {
        say(&format!("    {name:<36} {bytes:>12} bytes"));
    }
    say(&format!(
        "  raw baseline schema: {} → {} bytes; {:.0} bytes per execution",
        r.raw.0,
        r.raw.1,
        r.raw_per_execution()
    ));
    Ok(Row {
        name: format!("File size, {n} executions × {STEPS} steps done (after checkpoint)"),
        measured: format!(
            "{:.2} MB per 1,000 ({:.0} B per execution)",
            r.per_execution() * 1000.0 / 1e6,
            r.per_execution()
        ),
        baseline: format!(
            "{:.2} MB per 1,000 ({:.0} B)",
            r.raw_per_execution() * 1000.0 / 1e6,
            r.raw_per_execution()
        ),
        ratio: format!(
            "{:.2}× the bytes",
            r.per_execution() / r.raw_per_execution()
        ),
        target: "report".into(),
        met: true,
    })
}

async fn bench_corpus(dir: &Path, n: usize, rounds: usize) -> Result<Vec<Row>> {
    say(&format!(
        "## {n} runbooks: seeding, list by category, search ({rounds} interleaved rounds)"
    ));
    let db = dir.join(if n == 100_000 {
        "corpus.db".to_owned()
    } else {
        format!("corpus-{n}.db")
    });
    let (svc, seeded) = corpus::open_or_seed(&db, n).await?;
    let mut rows = Vec::new();
    match &seeded {
        Some(s) => {
            say(&format!(
                "  seeded {} runbooks in {:.1?} ({:.0}/s) through Store::allocate_key + Store::commit from 256 tasks: {} writes in {} transactions",
                s.runbooks,
                s.elapsed,
                rate(s.runbooks, s.elapsed),
                s.stats.writes,
                s.stats.transactions
            ));
            rows.push(Row {
                name: format!("Seeding {n} runbooks (key + commit each, 256 tasks)"),
                measured: format!(
                    "{:.1?} ({:.0} runbooks/s)",
                    s.elapsed,
                    rate(s.runbooks, s.elapsed)
                ),
                baseline: "—".into(),
                ratio: "—".into(),
                target: "report".into(),
                met: true,
            });
        }
        None => say(&format!("  reusing the corpus in {}", db.display())),
    }
    let size = std::fs::metadata(&db)?.len();
    say(&format!(
        "  file: {:.1} MB (before checkpoint)",
        size as f64 / 1e6
    ));
    let results = corpus::measure(
        &db,
        std::sync::Arc::clone(&svc.store),
        &svc.vigilo,
        svc.who,
        rounds,
    )
    .await?;
    for r in &results {
        say(&format!(
            "  {} → {} returned, {} matching\n    store:   {}\n    service: {}\n    raw:     {}",
            r.name,
            r.returned,
            r.matching,
            r.store.describe(),
            r.service.describe(),
            r.raw.describe()
        ));
        let target = if r.name.starts_with("list") {
            2.0
        } else {
            10.0
        };
        rows.push(Row {
            name: format!("{} over {n} ({} match)", r.name, r.matching),
            measured: format!(
                "store {:.2} ms (p90 {:.2}); service {:.2} ms",
                r.store.median(),
                r.store.p(90.0),
                r.service.median()
            ),
            baseline: format!("{:.2} ms", r.raw.median()),
            ratio: format!("{:.2}× the time", r.store.median() / r.raw.median()),
            target: format!("≤ {target} ms"),
            met: r.store.median() <= target,
        });
    }
    svc.close().await?;
    Ok(rows)
}
