//! Load generator for the Slack surface (ignored by default; a measurement, not a check):
//! signed Done clicks at a fixed rate over loopback against the real `vigilo serve slack`
//! binary on a SQLite file, each click on the current step of one of many executions.
//!
//! ```text
//! cargo test --release -p vigilo-bot --test slack_load -- --ignored --nocapture
//! ```
//!
//! Settings (environment): `VIGILO_LOAD_RATE` clicks per second (500), `VIGILO_LOAD_SECS`
//! (10), `VIGILO_LOAD_STEPS` steps per execution (10).
//!
//! The world (workspace, operator, runbook, executions) is written to a SQLite file through the
//! library, the file closed, and the bot started on it as its own process — the binary with its
//! defaults (SQLite `synchronous=FULL`, a multi-thread runtime), `--listen 127.0.0.1:0`, the
//! address read from its JSON log. This test process is only the load client and the fake Slack
//! Web API, on their own 2-worker runtime.
//!
//! Reported: the acknowledgement latency seen by the client (send → complete response, p50,
//! p99, max), click → committed measured inside the bot (`vigilo_slack_click_committed_seconds`
//! from its `/metrics`, quantiles interpolated within its buckets), and click → card updated as
//! the fake Slack API saw it (exact; committed plus posting the update). A baseline is measured
//! in the same run first: the same client, rate and bodies against a bare axum endpoint in this
//! process that reads the body and answers 200 (`VIGILO_LOAD_BASELINE=0` skips it), so the
//! bot's own cost can be told apart from the loopback, HTTP and scheduling cost of this machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::*;
use vigilo_bot::slack::blocks::ButtonPayload;
use vigilo_core::execution::ChannelRef;
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::service::{StartOptions, Vigilo};
use vigilo_store::{SqliteOptions, SqliteStore};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Quantile `q` of a Prometheus histogram named `name` in `text`, interpolated linearly within
/// the bucket that holds it (as `histogram_quantile` does).
fn histogram_quantile(text: &str, name: &str, q: f64) -> f64 {
    let prefix = format!("{name}_bucket{{le=\"");
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|l| {
            let (le, rest) = l.split_once("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, rest.trim().parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let Some(&(_, total)) = buckets.last() else {
        return f64::NAN;
    };
    let target = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in &buckets {
        if count >= target {
            if le.is_infinite() {
                return prev.0;
            }
            let in_bucket = count - prev.1;
            let frac = if in_bucket > 0.0 {
                (target - prev.1) / in_bucket
            } else {
                1.0
            };
            return prev.0 + (le - prev.0) * frac;
        }
        prev = (le, count);
    }
    f64::NAN
}

/// The buckets of one stage of `vigilo_slack_click_stage_seconds`, renamed
/// `vigilo_stage_bucket{le="…"}` for [`histogram_quantile`].
fn stage_histogram(text: &str, stage: &str) -> String {
    let mark = format!("stage=\"{stage}\"");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("vigilo_slack_click_stage_seconds_bucket{")?;
            let (labels, value) = rest.split_once('}')?;
            if !labels.split(',').any(|kv| kv == mark) {
                return None;
            }
            let le = labels.split(',').find_map(|kv| kv.strip_prefix("le="))?;
            Some(format!("vigilo_stage_bucket{{le={le}}}{value}\n"))
        })
        .collect()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.trim().parse().ok()))
        .unwrap_or(0.0)
}

fn ms(seconds: f64) -> String {
    format!("{:.2} ms", seconds * 1000.0)
}

/// Posts `bodies` to `path` at `rate` per second, each in its own task; returns per body its
/// key, when it was sent, the acknowledgement latency and status, and how long sending took.
async fn fire(
    client: &SlackClient,
    path: &'static str,
    bodies: Vec<(String, String)>,
    rate: u64,
) -> (Vec<(String, Instant, f64, u16)>, Duration) {
    let period = Duration::from_nanos(1_000_000_000 / rate);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(bodies.len());
    for (key, body) in bodies {
        tick.tick().await;
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let a = client.post(path, &body).await;
            (key, t0, t0.elapsed().as_secs_f64(), a.status)
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap());
    }
    (out, started.elapsed())
}

/// A bare axum endpoint on loopback: reads the body, answers an empty 200.
async fn bare_endpoint() -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/slack/interactions",
        axum::routing::post(|_body: axum::body::Bytes| async { axum::http::StatusCode::OK }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// `vigilo serve slack` on `db`, talking to `fake`: the child and the address it listens on
/// (from its JSON log line); its stderr is drained by a thread so it never blocks.
///
/// With `VIGILO_LOAD_LOG=<file>`, every log line goes to that file, and the bot's log filter is
/// `VIGILO_LOAD_RUST_LOG` (for example `vigilo_bot=debug,vigilo_store=trace`, which logs each
/// click's stages, each group commit's wait, apply and sync times, and each read's hand-off).
fn start_binary(db: &std::path::Path, fake: &FakeSlack) -> (Child, SocketAddr) {
    let log_file = std::env::var_os("VIGILO_LOAD_LOG");
    let filter = std::env::var("VIGILO_LOAD_RUST_LOG").unwrap_or_else(|_| "info".into());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigilo"));
    if log_file.is_some() {
        cmd.env("RUST_LOG", filter);
    } else {
        cmd.env_remove("RUST_LOG");
    }
    let mut child = cmd
        .current_dir(db.parent().unwrap())
        .env("VIGILO_DB", db)
        .env_remove("SLACK_APP_TOKEN")
        .env("SLACK_SIGNING_SECRET", SECRET)
        .env("SLACK_BOT_TOKEN", "xoxb-load-test")
        .env("NO_COLOR", "1")
        .args([
            "serve",
            "slack",
            "--listen",
            "127.0.0.1:0",
            "--slack-api-url",
        ])
        .arg(&fake.url)
        .args(["--log-format", "json", "-v"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let mut log = log_file.map(|p| std::io::BufWriter::new(std::fs::File::create(p).unwrap()));
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(log) = &mut log {
                use std::io::Write;
                let _ = writeln!(log, "{line}");
                if !line.contains("Slack surface listening") {
                    continue;
                }
            }
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["fields"]["message"] == "Slack surface listening" {
                let _ = tx.send(v["fields"]["addr"].as_str().unwrap_or("").to_owned());
            } else if v["level"] == "WARN" || v["level"] == "ERROR" {
                eprintln!("bot: {line}");
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the bot logs its address")
        .parse()
        .unwrap();
    (child, addr)
}

/// SIGTERM, then the exit code (at most 30 s).
fn terminate(mut child: Child) -> Option<i32> {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a load measurement: run with --ignored --nocapture, in release mode"]
async fn clicks_at_a_fixed_rate() {
    let rate: u64 = env("VIGILO_LOAD_RATE", 500);
    let secs: u64 = env("VIGILO_LOAD_SECS", 10);
    let steps: u64 = env("VIGILO_LOAD_STEPS", 10);
    let total = rate * secs;
    let executions = total.div_ceil(steps);

    // The world: one workspace, one operator, a runbook of `steps` plain steps, and one
    // execution per channel, started directly through the service.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vigilo.db");
    let store = Arc::new(
        SqliteStore::open(&db, SqliteOptions::default())
            .await
            .unwrap(),
    );
    let vigilo = Vigilo::new(store.clone());
    let acme = space(
        &vigilo,
        "acme",
        "T0LOAD",
        &[("op", WorkspaceRole::Operator, &["sre"], "U0OP")],
    )
    .await;
    let op = acme.members["op"];
    let titles: Vec<String> = (1..=steps).map(|i| format!("Step number {i}")).collect();
    let spec: Vec<(&str, bool)> = titles.iter().map(|t| (t.as_str(), false)).collect();
    let rb = runbook(&vigilo, &acme.owner, "Load", &spec).await;
    let setup = Instant::now();
    for i in 0..executions {
        vigilo
            .start_execution(
                &op,
                rb,
                StartOptions {
                    channel: Some(ChannelRef {
                        platform: "slack".into(),
                        channel: format!("C{i:06}"),
                    }),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    eprintln!(
        "set up {executions} executions of {steps} steps in {:?}",
        setup.elapsed()
    );

    // The file is closed before the bot opens it.
    drop(vigilo);
    if let Ok(store) = Arc::try_unwrap(store) {
        store.close().await;
    }

    let fake = FakeSlack::start().await;
    let (child, addr) = tokio::task::block_in_place(|| start_binary(&db, &fake));
    let client = SlackClient::new(addr, SECRET);

    // Click i: a Done on step (i / executions) + 1 of execution (i % executions) + 1, so one
    // execution gets one click every `executions / rate` seconds.
    let bodies: Vec<(String, String)> = (0..total)
        .map(|i| {
            let e = i % executions + 1;
            let step = i / executions + 1;
            let user = SlackUser::new("T0LOAD", "U0OP", &format!("C{:06}", e - 1));
            let value = ButtonPayload {
                workspace: acme.id,
                value: format!("EX-{e:05}:{step}"),
                prompt: None,
            }
            .encode();
            let card_ts = format!("1600000000.{e:06}{step:03}");
            let header_ts = format!("1600000000.{e:06}000");
            let body = form(&user.click_payload("vigilo.done", &value, &card_ts, Some(&header_ts)));
            (card_ts, body)
        })
        .collect();

    // The baseline: the same bodies, client and rate against an endpoint that does nothing.
    let baseline = if env("VIGILO_LOAD_BASELINE", 1) == 1 {
        let bare = SlackClient::new(bare_endpoint().await, SECRET);
        let (answers, _) = fire(&bare, "/slack/interactions", bodies.clone(), rate).await;
        let mut lat: Vec<f64> = answers.iter().map(|a| a.2).collect();
        lat.sort_by(f64::total_cmp);
        assert!(answers.iter().all(|a| a.3 == 200));
        Some(lat)
    } else {
        None
    };

    let load_before = load_average();
    let (answers, sending) = fire(&client, "/slack/interactions", bodies, rate).await;
    let sent: HashMap<String, Instant> = answers.iter().map(|a| (a.0.clone(), a.1)).collect();
    let acks: Vec<(f64, u16)> = answers.iter().map(|a| (a.2, a.3)).collect();

    // Wait for every click to be committed and its card updated.
    let deadline = Instant::now() + Duration::from_secs(120);
    let metrics = loop {
        let m = client.get("/metrics").await.body;
        let committed = metric(&m, "vigilo_slack_click_committed_seconds_count");
        let in_flight = metric(&m, "vigilo_slack_in_flight");
        if (committed as u64 >= total && in_flight == 0.0) || Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let mut ack: Vec<f64> = acks.iter().map(|a| a.0).collect();
    ack.sort_by(f64::total_cmp);
    let non_200 = acks.iter().filter(|a| a.1 != 200).count();
    let mut seen: Vec<f64> = fake
        .calls_of("chat.update")
        .iter()
        .filter_map(|c| {
            let t0 = sent.get(c.body["ts"].as_str()?)?;
            Some(c.at.duration_since(*t0).as_secs_f64())
        })
        .collect();
    seen.sort_by(f64::total_cmp);
    let committed = metric(&metrics, "vigilo_slack_click_committed_seconds_count");
    let ephemeral = fake.calls_of("chat.postEphemeral").len();
    let store_errors = metric(&metrics, "vigilo_slack_store_errors_total");
    let q = |p| histogram_quantile(&metrics, "vigilo_slack_click_committed_seconds", p);

    println!();
    println!(
        "## Slack load: {total} Done clicks at {rate}/s over {secs} s ({executions} executions × {steps} steps, SQLite synchronous=FULL, the bot in its own process)"
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| sending took | {:.2} s ({:.0} clicks/s offered) |",
        sending.as_secs_f64(),
        total as f64 / sending.as_secs_f64()
    );
    println!(
        "| acknowledged 200 | {} of {total} ({non_200} other) |",
        total as usize - non_200
    );
    println!(
        "| committed | {committed} (private refusals: {ephemeral}, store errors: {store_errors}) |"
    );
    println!(
        "| ack latency p50 / p99 / max (client) | {} / {} / {} |",
        ms(percentile(&ack, 50.0)),
        ms(percentile(&ack, 99.0)),
        ms(percentile(&ack, 100.0))
    );
    println!(
        "| click → committed p50 / p99 (bot histogram) | {} / {} |",
        ms(q(0.5)),
        ms(q(0.99))
    );
    println!(
        "| click → card updated p50 / p99 / max (fake Slack) | {} / {} / {} |",
        ms(percentile(&seen, 50.0)),
        ms(percentile(&seen, 99.0)),
        ms(percentile(&seen, 100.0))
    );
    for stage in ["queued", "channel", "engine", "deliver"] {
        let text = stage_histogram(&metrics, stage);
        let q = |p| histogram_quantile(&text, "vigilo_stage", p);
        println!(
            "| stage {stage} p50 / p99 (bot histogram) | {} / {} |",
            ms(q(0.5)),
            ms(q(0.99))
        );
    }
    if let Some(base) = &baseline {
        println!(
            "| baseline: bare axum endpoint, ack p50 / p99 / max | {} / {} / {} |",
            ms(percentile(base, 50.0)),
            ms(percentile(base, 99.0)),
            ms(percentile(base, 100.0))
        );
        println!(
            "| bot ack ÷ baseline, p50 / p99 | {:.1}× / {:.1}× |",
            percentile(&ack, 50.0) / percentile(base, 50.0),
            percentile(&ack, 99.0) / percentile(base, 99.0)
        );
    }
    println!(
        "| load average before / after the bot phase | {load_before} / {} |",
        load_average()
    );
    println!();
    let code = tokio::task::block_in_place(|| terminate(child));
    assert_eq!(code, Some(0), "the bot stops cleanly on SIGTERM");
    assert_eq!(non_200, 0, "every click acknowledged");
}
