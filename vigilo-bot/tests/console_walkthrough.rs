//! The console channel over a real SQLite file, driven by scripted input: the TLS rotation of
//! the demo workspace from start to summary, with a stale click, a refused empty reason, an
//! unknown command, a denied approval (checked in the store), `/as` and the summary's variances.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use vigilo_bot::console::{ConsoleOptions, run_with};
use vigilo_core::clock::ManualClock;
use vigilo_core::execution::{ExecutionStatus, StepStatus};
use vigilo_core::ids::{Key, KeyKind};
use vigilo_core::service::{Vigilo, Who};
use vigilo_store::{SqliteOptions, SqliteStore};

struct Demo {
    _dir: tempfile::TempDir,
    vigilo: Vigilo,
    clock: Arc<ManualClock>,
}

async fn demo() -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("vigilo.db"), SqliteOptions::default())
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2025, 5, 1, 9, 0, 0).unwrap(),
    ));
    let vigilo = Vigilo::with_clock(Arc::new(store), clock.clone());
    Demo {
        _dir: dir,
        vigilo,
        clock,
    }
}

async fn console(vigilo: &Vigilo, user: Option<&str>, script: &str) -> String {
    let mut out = Vec::new();
    run_with(
        vigilo.clone(),
        ConsoleOptions {
            user: user.map(str::to_owned),
            ..Default::default()
        },
        script.as_bytes(),
        &mut out,
    )
    .await
    .unwrap();
    String::from_utf8(out).unwrap()
}

async fn as_alice(vigilo: &Vigilo) -> Who {
    let ws = vigilo.workspace_by_slug("acme").await.unwrap();
    let (alice, _) = vigilo.member(ws.id, "alice").await.unwrap();
    Who::new(ws.id, alice.id)
}

fn ex1() -> Key {
    Key::new(KeyKind::Execution, 1)
}

fn assert_has(out: &str, needle: &str) {
    assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
}

#[tokio::test]
async fn the_tls_rotation_from_start_to_summary() {
    let d = demo().await;

    // Alice (the default user of the demo) starts the rotation and walks the first steps.
    let first = console(
        &d.vigilo,
        None,
        "run RB-00001\n\
         1\n\
         1\n\
         skip\n\
         6\n\
         \n\
         dne\n\
         5\n\
         /runbook done\n\
         /as carol\n\
         16\n\
         /quit\n\
         done this line is never read\n",
    )
    .await;
    // No prompt, no colour, no welcome when the input is not a terminal.
    assert!(!first.contains("vigilo>") && !first.contains('\u{1b}') && !first.contains("Welcome"));
    assert!(
        first.starts_with("== EX-00001 · Rotate the TLS certificate on the edge proxies =="),
        "{first}"
    );
    assert_has(
        &first,
        "Runbook: RB-00001 v1\nOperator: @alice\nSteps: 6\nEstimated total: 45 min\n",
    );
    assert_has(&first, "  == Step 1/6 · Announce the rotation ==");
    assert_has(&first, "  [1] Done  [2] Skip…  [3] Failed…");
    // Done on step 1: the card is updated (no buttons) and step 2 follows.
    assert_has(&first, "  ↻ == Step 1/6 · Announce the rotation ==");
    assert_has(
        &first,
        "  ✔ Done by @alice at 2025-05-01 09:00 UTC · 0.0 min (estimate 5 min, -5.0 min)",
    );
    assert_has(&first, "  [5] Done  [6] Skip…  [7] Failed…  [8] Note…");
    // Pressing the old Done again is a stale click, answered privately.
    assert_has(
        &first,
        "» Step 1 of EX-00001 was already marked done by @alice at 2025-05-01 09:00:00 UTC; step 2 is current; nothing changed",
    );
    // Mistakes.
    assert_has(
        &first,
        "» A skip reason is required. Usage: /runbook skip <reason>",
    );
    assert_has(
        &first,
        "» A skip reason is required; press Skip… again and give one. Nothing changed.",
    );
    assert_has(&first, "» Unknown command `dne`; did you mean `done`?");
    assert_has(&first, "» `/runbook done [note]` — mark the open step done");
    // Steps 2 and 3 done (a button, then typed), then the gated step.
    assert_has(
        &first,
        "  == Step 4/6 · Install the new certificate and reload the proxies ==",
    );
    assert_has(&first, "  [DESTRUCTIVE] [APPROVAL REQUIRED]");
    assert_has(
        &first,
        "  [13] Done  [14] Skip…  [15] Failed…  [16] Approve  [17] Note…",
    );
    assert_has(&first, "You are now @carol (member; team roles: dba).");
    assert_has(
        &first,
        "» Not allowed: approving step 4 needs team role `sre`; your role is member (team roles: dba)",
    );
    assert!(!first.contains("this line is never read"));

    // The denial changed nothing.
    let alice = as_alice(&d.vigilo).await;
    let exec = d.vigilo.execution(&alice, ex1()).await.unwrap();
    assert_eq!(exec.status, ExecutionStatus::Running);
    assert_eq!(exec.current_index(), Some(3));
    assert!(exec.steps[3].approvals.is_empty());
    assert_eq!(
        exec.steps.iter().map(|s| s.status).collect::<Vec<_>>(),
        [
            StepStatus::Done,
            StepStatus::Done,
            StepStatus::Done,
            StepStatus::Pending,
            StepStatus::Pending,
            StepStatus::Pending
        ]
    );
    let events = d.vigilo.execution_events(&alice, ex1()).await.unwrap();
    assert_eq!(
        events.len(),
        4,
        "started + three steps done; the denial left no event"
    );

    // Twenty minutes later bob, who holds `sre`, comes in: status shows the card again.
    d.clock.advance(Duration::minutes(20));
    let second = console(
        &d.vigilo,
        Some("bob"),
        "status\n\
         4\n\
         6\n\
         11\n\
         verified from the bastion instead\n\
         /whoami\n\
         /as alice\n\
         done all certificates recorded\n",
    )
    .await;
    assert_has(
        &second,
        "» Now: Step 4/6 · Install the new certificate and reload the proxies — waiting for approval by team role `sre`",
    );
    assert_has(&second, "» [1] Done  [2] Skip…  [3] Failed…  [4] Approve");
    // Approved: the card is updated in place, Approve gone.
    assert_has(&second, "  [DESTRUCTIVE] [APPROVAL REQUIRED] [APPROVED]");
    assert_has(&second, "  [6] Done  [7] Skip…  [8] Failed…  [9] Note…");
    assert_has(
        &second,
        "  ✔ Done by @bob at 2025-05-01 09:20 UTC · 20.0 min (estimate 15 min, +5.0 min)",
    );
    assert_has(
        &second,
        "  Approved by @bob at 2025-05-01 09:20 UTC (as sre)",
    );
    assert_has(
        &second,
        "  ↷ Skipped by @bob at 2025-05-01 09:20 UTC · 0.0 min (estimate 5 min, -5.0 min)",
    );
    assert_has(&second, "  Reason: verified from the bastion instead");
    assert_has(
        &second,
        "You are @bob (operator; team roles: sre) in workspace acme, channel #console.",
    );
    // The summary, with each step and the variances.
    assert_has(&second, "  == Summary · EX-00001 completed ==");
    assert_has(
        &second,
        "  ✔ 1. Announce the rotation — done by @alice · 0.0 min / est 5 min (-5.0 min)",
    );
    assert_has(
        &second,
        "  ✔ 4. Install the new certificate and reload the proxies — done by @bob · 20.0 min / est 15 min (+5.0 min)",
    );
    assert_has(
        &second,
        "  ↷ 5. Verify the served certificate from outside — skipped by @bob: verified from the bastion instead · 0.0 min / est 5 min (-5.0 min)",
    );
    assert_has(
        &second,
        "  ✔ 6. Update the inventory and close out — done by @alice · 0.0 min / est 5 min (-5.0 min)",
    );
    assert_has(&second, "Variance: -25.0 min");
    assert_has(
        &second,
        "↻ == EX-00001 · Rotate the TLS certificate on the edge proxies ==",
    );
    assert_has(
        &second,
        "Status: completed at 2025-05-01 09:20 UTC · 20.0 min (estimate 45 min, -25.0 min)",
    );

    let exec = d.vigilo.execution(&alice, ex1()).await.unwrap();
    assert_eq!(exec.status, ExecutionStatus::Completed);
    assert_eq!(exec.steps[4].status, StepStatus::Skipped);
    assert_eq!(
        exec.steps[5].note.as_ref().map(|n| n.as_str()),
        Some("all certificates recorded")
    );
    assert_eq!(
        exec.steps[3]
            .approvals
            .first()
            .map(|a| a.satisfied_as.as_str()),
        Some("sre")
    );

    // A click on the sealed execution's card changes nothing.
    let third = console(&d.vigilo, Some("bob"), "status EX-00001\ndone EX-00001\n").await;
    assert_has(&third, "» completed at 2025-05-01 09:20 UTC");
    assert_has(&third, "» EX-00001 is sealed (completed at");

    // The summary's Report button, and `report`, print the run's report whole; what is
    // printed verifies against the trail.
    assert!(second.contains("] Report"), "{second}");
    let fourth = console(&d.vigilo, Some("dave"), "report EX-00001\n").await;
    assert_has(
        &fourth,
        "Report of EX-00001 (completed), requested by @dave",
    );
    let start = fourth.find("── EX-00001-report.md ──\n").unwrap();
    let end = fourth.find("  ── end of EX-00001-report.md ──").unwrap();
    let printed: String = fourth[start..end]
        .lines()
        .skip(1)
        .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
        .collect();
    assert!(
        printed.starts_with("<!-- vigilo execution report"),
        "{printed}"
    );
    assert!(
        printed.contains("# EX-00001: Rotate the TLS certificate on the edge proxies"),
        "{printed}"
    );
    let verdict = d.vigilo.verify_report(None, &printed).await.unwrap();
    assert!(
        matches!(
            verdict,
            vigilo_core::service::ReportVerdict::Verified { .. }
        ),
        "{verdict:?}"
    );
}

#[tokio::test]
async fn a_scripted_session_prints_stable_output() {
    let d = demo().await;
    let script = "run RB-00003\n1\n/as carol\n5\n/as dave\nstatus\n";
    let out = console(&d.vigilo, None, script).await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("console_expected_rollback.txt");
    // `VIGILO_BLESS=1 cargo test` rewrites the expected output after a deliberate change.
    if std::env::var_os("VIGILO_BLESS").is_some() {
        std::fs::write(&path, &out).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(out, expected, "\n--- got ---\n{out}");
}

#[tokio::test]
async fn interactive_sessions_welcome_and_prompt() {
    let d = demo().await;
    let mut out = Vec::new();
    run_with(
        d.vigilo.clone(),
        ConsoleOptions {
            interactive: Some(true),
            db_path: Some("demo.db".into()),
            ..Default::default()
        },
        "/whoami\n/as nobody\n/as\n42\nlist\n".as_bytes(),
        &mut out,
    )
    .await
    .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_has(
        &out,
        "Vigilo console · workspace acme · channel #console · database demo.db",
    );
    assert_has(
        &out,
        "RB-00001  Rotate the TLS certificate on the edge proxies",
    );
    assert_has(
        &out,
        "You are @alice (owner). Type `help` for the commands; `/as carol` acts as another user",
    );
    assert_has(&out, "alice@acme> ");
    assert_has(&out, "» No user @nobody in this workspace");
    assert_has(&out, "Usage: /as <handle>. Members: ");
    assert_has(&out, "There is no choice [42] on screen.");
    assert_has(
        &out,
        "`RB-00002` Restore the orders database from backup · database · v1 · 5 steps · ~60 min",
    );
    assert!(!out.contains('\u{1b}'), "no colour unless asked");

    // A second start does not seed again, and a missing user is an error.
    let mut out = Vec::new();
    let err = run_with(
        d.vigilo.clone(),
        ConsoleOptions {
            user: Some("zed".into()),
            ..Default::default()
        },
        "".as_bytes(),
        &mut out,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no user @zed"), "{err}");
    assert_eq!(d.vigilo.workspaces().await.unwrap().len(), 1);
}

#[tokio::test]
async fn oversized_lines_are_refused_cleanly() {
    let d = demo().await;
    let script = format!("{}\nlist\n", "x".repeat(100_000));
    let out = console(&d.vigilo, None, &script).await;
    assert_has(
        &out,
        "» That command is 100000 bytes long; commands are at most 8192 bytes",
    );
    assert_has(&out, "RB-00003");
}

#[tokio::test]
async fn notes_hand_overs_and_a_newer_version_in_the_console() {
    let d = demo().await;
    // Alice starts the rollback and notes step 1 through its Note… button ([4]); pressing the
    // same button again with the same text is a repeat and adds nothing.
    let first = console(
        &d.vigilo,
        None,
        "run RB-00003\n\
         4\n\
         error rate *doubled* at 08:55\n\
         4\n\
         error rate *doubled* at 08:55\n\
         4\n\
         \n\
         note --step 3 roll back to r41, not r40\n\
         note\n\
         handoff @carol\n\
         handoff @bob\n",
    )
    .await;
    assert_has(
        &first,
        "  📝 @alice at 2025-05-01 09:00 UTC: error rate doubled at 08:55",
    );
    assert_has(
        &first,
        "  EX-00001 · a note on Step 1/5 · Confirm the bad release; the step's state did not change",
    );
    assert_has(
        &first,
        "» This note was already added to step 1 of EX-00001 at 2025-05-01 09:00:00 UTC; nothing changed",
    );
    assert_has(
        &first,
        "» A note is required; press Note… again and write one. Nothing changed.",
    );
    assert_has(
        &first,
        "  📝 @alice at 2025-05-01 09:00 UTC: roll back to r41, not r40",
    );
    assert_has(
        &first,
        "» The note is required. Usage: /runbook note [--step N] <text>",
    );
    assert_has(&first, "» @carol is a member and may not execute runbooks");
    assert_has(
        &first,
        "  ↪ @alice handed EX-00001 to @bob; @bob is the operator now.",
    );
    assert_has(&first, "Operator: @bob (started by @alice)");

    // Alice may still act (an owner); dave (admin) takes the run over; a newer version of the
    // runbook is published meanwhile: status and the next click's header say so, and the
    // header's Diff button shows the diff. The run stays on v1.
    let alice = as_alice(&d.vigilo).await;
    let rb: Key = "RB-00003".parse().unwrap();
    let mut input =
        vigilo_core::runbook::RunbookInput::from(&d.vigilo.runbook(&alice, rb).await.unwrap().body);
    input.steps[1].title = "Freeze the pipeline and the feature flags".into();
    d.vigilo
        .edit_runbook(
            &alice,
            rb,
            input,
            Some(1),
            vigilo_core::runbook::VersionSource::Edit,
        )
        .await
        .unwrap();
    // [1] is the Diff button of the header the takeover updates.
    let second = console(&d.vigilo, Some("dave"), "takeover\n1\nstatus\ndone\n").await;
    assert_has(
        &second,
        "  ↪ @dave took EX-00001 over; @dave is the operator now.",
    );
    assert_has(&second, "[1] Diff v1 → v2");
    assert_has(&second, "» == RB-00003 · v1 → v2 ==");
    assert_has(
        &second,
        "» v2 was published after this run started: 1 step changed. EX-00001 stays on v1; a new run starts on v2.",
    );
    assert_has(
        &second,
        "» ⚠ v2 was published after this run started: 1 step changed; it stays on v1",
    );
    // After a step, the header is refreshed with the drift (and its Diff button).
    assert_has(&second, "  ✔ Done by @dave");
    assert_has(
        &second,
        "↻ == EX-00001 · Roll back a bad deploy of the checkout service ==",
    );
    assert_has(
        &second,
        "⚠ v2 was published after this run started: 1 step changed; this run stays on v1.",
    );
    let exec = d.vigilo.execution(&alice, ex1()).await.unwrap();
    assert_eq!(exec.runbook_version, 1);
    assert_eq!(exec.operator, exec.handoffs[1].to);
    assert_eq!(exec.steps[0].notes.len(), 1);
    assert_eq!(exec.steps[2].notes.len(), 1);
    assert_eq!(exec.current_index(), Some(1), "{second}");
}
