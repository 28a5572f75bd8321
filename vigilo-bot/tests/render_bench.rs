//! Render and post time of the largest steps of the corpus (ignored by default; a measurement,
//! not a check):
//!
//! ```text
//! cargo test --release -p vigilo-bot --test render_bench -- --ignored --nocapture
//! ```
//!
//! - **Render**: the pure path a step's messages take — the cards
//!   (`cards::step_messages`), the limits and the message budget (`limits::fit_reply`) and
//!   Block Kit (`slack::blocks::render`) — repeated `VIGILO_RENDER_ROUNDS` times (200), median
//!   and p99 per step, and per message. Baseline in the same run: the same path for a short
//!   one-message step.
//! - **Post**: through the real bot on loopback against the fake Web API: from the signed Done
//!   click on the step before to the last message of the step posted (the store write, the
//!   render, and every `chat.postMessage`), median of `VIGILO_POST_ROUNDS` (15) walks. Baseline:
//!   the same for the short step.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::*;
use vigilo_bot::chat::cards;
use vigilo_bot::chat::format::Names;
use vigilo_bot::chat::limits::fit_reply;
use vigilo_bot::slack::blocks;
use vigilo_core::execution::Execution;
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::runbook::file;
use vigilo_core::runbook::{RunbookInput, StepInput};
use vigilo_core::service::{CreateRunbook, StartOptions, Vigilo, Who};
use vigilo_store::SqliteOptions;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn corpus_input(name: &str) -> RunbookInput {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name);
    file::parse(name, &std::fs::read_to_string(path).unwrap())
        .unwrap()
        .input
}

/// Two short steps first (the second is the baseline), then the given steps.
fn with_short_first(mut input: RunbookInput) -> RunbookInput {
    for title in ["Announce the work", "Open the change window"] {
        input.steps.insert(
            0,
            StepInput {
                title: title.into(),
                description: "Post in #ops that the work starts and link this runbook.".into(),
                est_minutes: 2,
                expected_outcome: "The on-call engineer acknowledges.".into(),
                ..Default::default()
            },
        );
    }
    input
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Renders step `idx` of `exec` as the bot does; returns the number of messages.
fn render_step(exec: &Execution, idx: usize, names: &Names) -> usize {
    let ws = exec.workspace;
    let mut n = 0;
    for reply in cards::step_messages(exec, idx, names) {
        for fitted in fit_reply(reply) {
            let rendered = blocks::render(&fitted, ws);
            std::hint::black_box(&rendered);
            n += 1;
        }
    }
    n
}

#[derive(Clone, Copy)]
struct Rendered {
    messages: usize,
    chars: usize,
    p50: Duration,
    p99: Duration,
}

fn time_render(exec: &Execution, idx: usize, rounds: usize) -> Rendered {
    let names = Names::default();
    let messages = render_step(exec, idx, &names);
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        render_step(exec, idx, &names);
        times.push(t.elapsed());
    }
    times.sort();
    Rendered {
        messages,
        chars: exec.steps[idx].step.description.as_str().chars().count(),
        p50: quantile(&times, 0.5),
        p99: quantile(&times, 0.99),
    }
}

async fn world(dir: &std::path::Path) -> (Vigilo, Who) {
    let vigilo = open_sqlite(dir, SqliteOptions::default()).await;
    let acme = space(
        &vigilo,
        "acme",
        "T0ACME",
        &[("dave", WorkspaceRole::Admin, &[], "U0DAVE")],
    )
    .await;
    let dave = acme.members["dave"];
    (vigilo, dave)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run with --ignored --nocapture"]
async fn render_and_post_the_largest_steps() {
    let rounds = env("VIGILO_RENDER_ROUNDS", 200);
    let post_rounds = env("VIGILO_POST_ROUNDS", 15);
    let dir = tempfile::tempdir().unwrap();
    let (vigilo, dave) = world(dir.path()).await;
    // Two short steps, then the k8s drain's two long steps (27,000 and 56,000 characters), and the
    // 20,000-character restore step.
    let mut drain = corpus_input("k8s-node-drain.md");
    drain.steps.truncate(2);
    let mut restore = corpus_input("bulk-restore.md");
    drain.steps.push(restore.steps.remove(0));
    let mut input = with_short_first(drain);
    for s in &mut input.steps {
        s.requires_approval = false;
    }
    let rb = vigilo
        .create_runbook(
            &dave,
            input,
            CreateRunbook {
                publish: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let exec = vigilo
        .start_execution(&dave, rb.key, StartOptions::default())
        .await
        .unwrap();

    println!("\nrender (cards + limits + Block Kit), {rounds} rounds, per step and per message:");
    let names = [
        "short step (baseline)",
        "k8s drain step 1 (nested lists)",
        "k8s drain step 2 (code block)",
        "bulk restore step 1",
    ];
    // Step `idx + 1` of the execution is `names[idx]`.
    let base = time_render(&exec, 1, rounds);
    for (i, name) in names.iter().enumerate() {
        let idx = i + 1;
        let r = if idx == 1 {
            base
        } else {
            time_render(&exec, idx, rounds)
        };
        let per = r.p50 / r.messages as u32;
        println!(
            "  {name:34} {:>6} chars  {:>2} msgs  p50 {}  p99 {}  per message {}  ({:.1}x the baseline's per message)",
            r.chars,
            r.messages,
            ms(r.p50),
            ms(r.p99),
            ms(per),
            per.as_secs_f64() / (base.p50 / base.messages as u32).as_secs_f64()
        );
    }

    // Post: the real bot on loopback.
    let fake = FakeSlack::start().await;
    let server = start_bot(vigilo.clone(), &fake).await;
    let client = SlackClient::new(server.local_addr(), SECRET);
    let user = SlackUser::new("T0ACME", "U0DAVE", "C0OPS");
    let mut posts: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    for _ in 0..post_rounds {
        let from = fake.count();
        client
            .post("/slack/commands", &user.command(&format!("run {}", rb.key)))
            .await;
        let mut card = fake.wait_calls(from, "chat.postMessage", 2).await[1].clone();
        for (i, times) in posts.iter_mut().enumerate() {
            let idx = i + 1;
            let from = fake.count();
            let t = Instant::now();
            client
                .post("/slack/interactions", &user.click(&card, "vigilo.done"))
                .await;
            let title = format!("Step {}/5 · ", idx + 1);
            let calls = fake
                .wait_for(from, "the next card", |calls| {
                    calls.iter().any(|c| {
                        c.method == "chat.postMessage"
                            && c.button("vigilo.done").is_some()
                            && c.body["blocks"][0]["text"]["text"]
                                .as_str()
                                .is_some_and(|h| h.starts_with(&title))
                    })
                })
                .await;
            times.push(t.elapsed());
            card = calls
                .into_iter()
                .rfind(|c| c.button("vigilo.done").is_some())
                .unwrap();
        }
        let from = fake.count();
        client
            .post("/slack/interactions", &user.click(&card, "vigilo.done"))
            .await;
        fake.wait_calls(from, "chat.update", 2).await;
    }
    println!(
        "\npost (click on the step before → every message of the step posted), {post_rounds} walks:"
    );
    let base_post = {
        let mut t = posts[0].clone();
        t.sort();
        quantile(&t, 0.5)
    };
    for (idx, name) in names.iter().enumerate() {
        let mut t = posts[idx].clone();
        t.sort();
        println!(
            "  {name:34} p50 {}  max {}  ({:.1}x the baseline)",
            ms(quantile(&t, 0.5)),
            ms(*t.last().unwrap()),
            quantile(&t, 0.5).as_secs_f64() / base_post.as_secs_f64()
        );
    }
    server.shutdown().await.unwrap();
}
