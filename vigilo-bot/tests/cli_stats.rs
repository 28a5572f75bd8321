//! `vigilo runbook stats` and `vigilo stats` through the binary, on a file whose runs were
//! walked by the library with a manual clock, so every figure is known: the table, `--json`,
//! the chart files, `--suggest` and `--suggest --apply`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use cli_support::{Env, path_str, simple};
use vigilo_core::clock::ManualClock;
use vigilo_core::execution::machine::Command;
use vigilo_core::service::{StartOptions, Vigilo, Who};
use vigilo_store::{SqliteOptions, SqliteStore};

/// The steps and their estimates.
const STEPS: &[(&str, u32)] = &[
    ("Announce the rotation", 5),
    ("Drain traffic from proxy A", 10),
    ("Swap the certificate", 15),
    ("Verify the TLS handshake", 5),
    ("Restore traffic", 10),
    ("Close the change", 2),
];
/// Each step's typical minutes; run `i` adds `(7i + 3s) mod 5`.
const BASE: [i64; 6] = [4, 14, 12, 3, 9, 1];
const RUNS: i64 = 14;

fn minutes(step: usize, run: i64) -> i64 {
    BASE[step] + (run * 7 + step as i64 * 3) % 5
}

/// Imports the runbook and walks `RUNS` runs of it as bob, one a day, plus a rehearsal.
fn history() -> Env {
    let env = Env::seeded();
    let f = env.write("rotate.md", &simple("Rotate the edge certificate", STEPS));
    env.ok(
        Some("alice"),
        &["runbook", "import", path_str(&f), "--publish"],
    );
    let db = env.db.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let store = SqliteStore::open(&db, SqliteOptions::default())
            .await
            .unwrap();
        let start: DateTime<Utc> = "2026-03-02T09:00:00Z".parse().unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let vigilo = Vigilo::with_clock(Arc::new(store), clock.clone());
        let ws = vigilo.workspace_by_slug("acme").await.unwrap();
        let (bob, _) = vigilo.member(ws.id, "bob").await.unwrap();
        let who = Who::new(ws.id, bob.id);
        let rb = "RB-00001".parse().unwrap();
        for run in 0..=RUNS {
            let rehearsal = run == RUNS;
            let ex = vigilo
                .start_execution(
                    &who,
                    rb,
                    StartOptions {
                        rehearsal,
                        ..StartOptions::default()
                    },
                )
                .await
                .unwrap();
            for step in 0..STEPS.len() {
                let m = if rehearsal { 100 } else { minutes(step, run) };
                clock.advance(Duration::minutes(m));
                let cmd = Command::Done {
                    step: step as u32 + 1,
                    note: None,
                };
                vigilo.act(&who, ex.key, cmd).await.unwrap();
            }
            clock.advance(Duration::days(1));
        }
    });
    env
}

#[test]
fn runbook_stats_states_the_figures_and_draws_the_chart() {
    let env = history();
    let v = env.json(Some("bob"), &["runbook", "stats", "RB-00001", "--json"]);
    assert_eq!(v["runbook"], "RB-00001");
    assert_eq!(v["executions"], 14, "the rehearsal is left out: {v:#}");
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 6);
    // Step 1: 4,6,8,5,7,4,6,8,5,7,4,6,8,5 minutes → median 6, p90 (13th of 14) 8.
    assert_eq!(steps[0]["order"], 1);
    assert_eq!(steps[0]["title"], "Announce the rotation");
    assert_eq!(steps[0]["runs"], 14);
    assert_eq!(steps[0]["est_minutes"], 5);
    assert_eq!(steps[0]["median_minutes"], 6.0);
    assert_eq!(steps[0]["p90_minutes"], 8.0);
    assert_eq!(steps[0]["skip_rate"], 0.0);
    assert_eq!(steps[0]["fail_rate"], 0.0);
    assert!(steps[0]["approval_wait_median_minutes"].is_null());
    // With the rehearsal, its 100-minute steps count.
    let all = env.json(
        Some("bob"),
        &[
            "runbook",
            "stats",
            "RB-00001",
            "--include-rehearsals",
            "--json",
        ],
    );
    assert_eq!(all["executions"], 15);
    assert_eq!(all["steps"][0]["p90_minutes"], 8.0);
    assert_eq!(all["steps"][0]["median_minutes"], 6.0);

    // The table.
    let text = env.ok(Some("bob"), &["runbook", "stats", "RB-00001"]);
    assert!(text.contains("14 executions"), "{text}");
    assert!(text.contains("MEDIAN"), "{text}");
    assert!(text.contains("Announce the rotation"), "{text}");

    // The charts.
    let png = env.path("stats.png");
    let svg = env.path("stats.svg");
    env.ok(
        Some("bob"),
        &["runbook", "stats", "RB-00001", "--chart", path_str(&png)],
    );
    env.ok(
        Some("bob"),
        &["runbook", "stats", "RB-00001", "--chart", path_str(&svg)],
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let doc = std::fs::read_to_string(&svg).unwrap();
    assert!(doc.starts_with("<svg"), "{}", &doc[..80.min(doc.len())]);
    assert!(doc.contains("Swap the certificate"));
    if let Ok(out) = std::env::var("VIGILO_STATS_CHART_OUT") {
        std::fs::copy(&png, out).unwrap();
    }
    let bad = env.fails(
        Some("bob"),
        &["runbook", "stats", "RB-00001", "--chart", "x.jpg"],
        2,
    );
    assert!(
        bad["message"].as_str().unwrap().contains(".svg or .png"),
        "{bad}"
    );
}

#[test]
fn suggest_and_apply_new_estimates() {
    let env = history();
    let v = env.json(
        Some("alice"),
        &["runbook", "stats", "RB-00001", "--suggest", "--json"],
    );
    let s = v["suggested"].as_array().unwrap();
    assert_eq!(s.len(), 6);
    assert_eq!(s[0]["order"], 1);
    assert_eq!(s[0]["est_minutes"], 6);
    let version = env.json(Some("alice"), &["runbook", "show", "RB-00001", "--json"]);
    assert_eq!(version["version"], 1, "--suggest alone saves nothing");

    let before = env.audit_count();
    let applied = env.json(
        Some("alice"),
        &[
            "runbook",
            "stats",
            "RB-00001",
            "--suggest",
            "--apply",
            "--json",
        ],
    );
    assert_eq!(applied["applied"]["changed"], true);
    assert_eq!(applied["applied"]["version"], 2);
    assert_eq!(env.audit_count(), before + 1, "one audit entry");
    let history = env.json(Some("alice"), &["runbook", "history", "RB-00001", "--json"]);
    assert_eq!(history[1]["source"], "estimates from 14 runs");
    let shown = env.json(Some("alice"), &["runbook", "show", "RB-00001", "--json"]);
    assert_eq!(shown["steps"][0]["est_minutes"], 6);

    // A member may not edit: the normal edit permission.
    env.fails(
        Some("dave"),
        &["runbook", "stats", "RB-00001", "--suggest", "--apply"],
        4,
    );
    // --apply without --suggest is a usage error.
    env.fails(
        Some("alice"),
        &["runbook", "stats", "RB-00001", "--apply"],
        2,
    );
}

#[test]
fn workspace_stats_at_a_glance() {
    let env = history();
    let v = env.json(Some("dave"), &["stats", "--json"]);
    assert_eq!(v["executions"], 14);
    assert_eq!(v["completed"], 14);
    assert_eq!(v["aborted"], 0);
    let weeks = v["by_week"].as_array().unwrap();
    // One run a day from Monday 2026-03-02: two weeks.
    assert_eq!(weeks.len(), 2);
    assert_eq!(weeks[0]["week"], "2026-03-02");
    assert_eq!(weeks[0]["executions"], 7);
    let slow = v["slowest_steps"].as_array().unwrap();
    assert!(!slow.is_empty());
    assert_eq!(slow[0]["title"], "Drain traffic from proxy A", "{v:#}");
    let recent = env.json(
        Some("dave"),
        &["stats", "--since", "2026-03-09T00:00:00Z", "--json"],
    );
    assert_eq!(recent["executions"], 7);
    let text = env.ok(Some("dave"), &["stats"]);
    assert!(text.contains("Slowest steps"), "{text}");
}
