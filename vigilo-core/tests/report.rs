//! Execution reports: built from the audit trail, rendered as Markdown, JSON and CSV, and
//! verified against the trail; every character of a report matters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{DateTime, Duration};
use vigilo_core::clock::ManualClock;
use vigilo_core::error::{Error, ErrorKind};
use vigilo_core::execution::machine::Command;
use vigilo_core::execution::{ExecutionStatus, StepStatus};
use vigilo_core::ids::Key;
use vigilo_core::report::{ExecutionReport, ReportFormat, version_hash};
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::runbook::{RunbookInput, StepInput};
use vigilo_core::service::{CreateRunbook, NewMember, ReportVerdict, StartOptions, Vigilo, Who};
use vigilo_core::store::Store;
use vigilo_core::testkit::memory::MemoryStore;

struct World {
    v: Vigilo,
    clock: Arc<ManualClock>,
    alice: Who,
    bob: Who,
    carol: Who,
    rb: Key,
}

async fn world() -> World {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(
        DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
    ));
    let v = Vigilo::with_clock(store, clock.clone());
    let (ws, alice) = v.create_workspace("acme", "alice", "Alice").await.unwrap();
    let alice = Who::new(ws.id, alice.id);
    let add = async |handle: &str, role, teams: &[&str]| {
        let (u, _) = v
            .add_member(
                &alice,
                NewMember {
                    handle: handle.into(),
                    display_name: String::new(),
                    role,
                    team_roles: teams.iter().map(|s| s.to_string()).collect(),
                    chat_identity: None,
                },
            )
            .await
            .unwrap();
        Who::new(ws.id, u.id)
    };
    let bob = add("bob", WorkspaceRole::Operator, &[]).await;
    let carol = add("carol", WorkspaceRole::Member, &["sre"]).await;
    let step = |title: &str, est: i64, gated: bool| StepInput {
        title: title.into(),
        description: format!("Do {title}."),
        owner_role: "sre".into(),
        est_minutes: est,
        requires_approval: gated,
        ..Default::default()
    };
    let input = RunbookInput {
        title: "Rotate the TLS | certificate <edge> *now*".into(),
        description: "Rotate it.".into(),
        category: "security".into(),
        steps: vec![
            step("Announce", 2, false),
            step("Swap the certificate", 10, true),
            step("Purge the cache", 3, false),
            step("Check expiry", 1, false),
        ],
    };
    let rb = v
        .create_runbook(
            &alice,
            input,
            CreateRunbook {
                publish: true,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .key;
    World {
        v,
        alice,
        clock,
        bob,
        carol,
        rb,
    }
}

/// A finished run: done with a note; approved, failed, retried, approved again and done;
/// skipped with a reason that needs escaping; done.
async fn finished_run(w: &World) -> Key {
    let ex =
        w.v.start_execution(&w.bob, w.rb, StartOptions::default())
            .await
            .unwrap()
            .key;
    let min = |m| w.clock.advance(Duration::seconds(m));
    min(90);
    let act = async |who: &Who, cmd| w.v.act(who, ex, cmd).await.unwrap();
    act(
        &w.bob,
        Command::Done {
            step: 1,
            note: Some("all green, \"quoted\"".into()),
        },
    )
    .await;
    min(30);
    act(&w.carol, Command::Approve { step: 2 }).await;
    min(240);
    act(
        &w.bob,
        Command::Fail {
            step: 2,
            note: "proxy 3 refused".into(),
        },
    )
    .await;
    min(60);
    act(&w.bob, Command::Retry { step: 2 }).await;
    act(&w.carol, Command::Approve { step: 2 }).await;
    min(300);
    act(
        &w.bob,
        Command::Done {
            step: 2,
            note: None,
        },
    )
    .await;
    min(10);
    act(
        &w.bob,
        Command::Skip {
            step: 3,
            reason: "cache | already *empty*\nsecond line <b>".into(),
        },
    )
    .await;
    min(45);
    act(
        &w.bob,
        Command::Done {
            step: 4,
            note: None,
        },
    )
    .await;
    ex
}

fn verified(v: &ReportVerdict) -> bool {
    matches!(v, ReportVerdict::Verified { .. })
}

fn problem(v: &ReportVerdict) -> String {
    match v {
        ReportVerdict::Tampered { problem, .. } => problem.clone(),
        other => panic!("expected tampering, got {other:?}"),
    }
}

#[tokio::test]
async fn a_finished_run_reports_its_facts_from_the_trail() {
    let w = world().await;
    let ex = finished_run(&w).await;
    let r: ExecutionReport = w.v.execution_report(&w.bob, ex).await.unwrap();
    let e = &r.execution;
    assert_eq!(r.workspace, "acme");
    assert_eq!(e.key, ex);
    assert_eq!(e.runbook, w.rb);
    assert_eq!(e.version, 1);
    let rb = w.v.runbook(&w.bob, w.rb).await.unwrap();
    assert_eq!(e.version_hash, version_hash(&rb.body));
    assert_eq!(e.version_hash.len(), 64);
    assert_eq!(e.operator, "bob");
    assert!(e.handoffs.is_empty());
    assert_eq!(e.status, ExecutionStatus::Completed);
    assert!(e.completed_at.is_some());
    assert_eq!(e.est_minutes, 16);
    assert_eq!(e.actual_minutes, Some(12.9));
    let s = &r.steps;
    assert_eq!(s.len(), 4);
    assert_eq!(
        (s[0].status, s[0].by.as_deref()),
        (StepStatus::Done, Some("bob"))
    );
    assert_eq!(s[0].actual_minutes, Some(1.5));
    assert_eq!(s[0].note.as_deref(), Some("all green, \"quoted\""));
    // Step 2: two approvals by carol as `sre` (the retry asked for a new one), the failure
    // and retry behind it, and its minutes counted from the retry.
    assert_eq!(s[1].status, StepStatus::Done);
    assert_eq!(s[1].approvals.len(), 2);
    assert!(
        s[1].approvals
            .iter()
            .all(|a| a.by == "carol" && a.role == "sre")
    );
    assert_eq!(s[1].audit.len(), 5);
    assert_eq!(s[1].actual_minutes, Some(5.0));
    assert_eq!(s[1].note, None);
    assert_eq!(s[2].status, StepStatus::Skipped);
    assert!(s[2].note.as_deref().unwrap().contains("second line"));
    assert!(s.iter().all(|s| s.notes.is_empty()));
    // Every entry of the run is behind some line; the last one seals the run.
    assert_eq!(r.entries().len(), 1 + 1 + 5 + 1 + 1);
    assert_eq!(e.audit.len(), 2);
    assert_eq!(r.audit_head.seq, *r.entries().last().unwrap());
    // The chain's head entry is the report's.
    let verdict = w.v.verify_audit(w.bob.workspace).await.unwrap();
    let vigilo_core::service::AuditVerdict::Intact { head, entries } = verdict else {
        panic!("{verdict:?}")
    };
    assert_eq!(head.as_deref(), Some(r.audit_head.hash.as_str()));
    assert_eq!(entries, r.audit_head.seq);
}

#[tokio::test]
async fn markdown_and_json_reports_verify_and_csv_is_refused() {
    let w = world().await;
    let ex = finished_run(&w).await;
    let r = w.v.execution_report(&w.bob, ex).await.unwrap();
    for format in [ReportFormat::Md, ReportFormat::Json] {
        let text = r.render(format);
        let v = w.v.verify_report(None, &text).await.unwrap();
        assert!(verified(&v), "{format:?}: {v:?}");
        // CRLF line endings (a ticket system's) change nothing.
        let crlf = text.replace('\n', "\r\n");
        assert!(verified(
            &w.v.verify_report(Some(w.bob.workspace), &crlf)
                .await
                .unwrap()
        ));
    }
    let md = r.render(ReportFormat::Md);
    assert!(md.contains("| Audit head | "), "{md}");
    assert!(md.contains("`@carol` as sre"), "{md}");
    // Text people wrote cannot break the layout.
    assert!(
        md.contains("cache \\| already \\*empty\\*<br>second line \\<b\\>"),
        "{md}"
    );
    assert!(
        md.contains("Rotate the TLS \\| certificate \\<edge\\> \\*now\\*"),
        "{md}"
    );
    let csv = r.render(ReportFormat::Csv);
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert!(
        lines[0].starts_with("execution,runbook,version,version_hash,order,title,status,by,at")
    );
    assert!(
        lines[1].contains(",\"all green, \"\"quoted\"\"\","),
        "{}",
        lines[1]
    );
    assert!(
        lines[3].contains("\"cache | already *empty*\nsecond"),
        "{csv}"
    );
    let err = w.v.verify_report(None, &csv).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
}

/// A character replaced by another of the same class, so that numbers stay numbers and hex
/// stays hex where that matters most.
fn flip(c: char) -> char {
    match c {
        '0'..='8' => ((c as u8) + 1) as char,
        '9' => '0',
        'a'..='y' | 'A'..='Y' => ((c as u8) + 1) as char,
        'z' => 'a',
        'Z' => 'A',
        ' ' => '_',
        '\n' => ' ',
        _ => 'x',
    }
}

#[tokio::test]
async fn every_changed_character_of_a_report_is_found() {
    let w = world().await;
    let ex = finished_run(&w).await;
    let r = w.v.execution_report(&w.bob, ex).await.unwrap();
    for format in [ReportFormat::Md, ReportFormat::Json] {
        let text = r.render(format);
        let chars: Vec<char> = text.chars().collect();
        let mut checked = 0;
        for i in 0..chars.len() {
            let mut changed = chars.clone();
            changed[i] = flip(chars[i]);
            if changed[i] == chars[i] {
                continue;
            }
            let edited: String = changed.into_iter().collect();
            let v =
                w.v.verify_report(Some(w.bob.workspace), &edited)
                    .await
                    .unwrap();
            assert!(
                !verified(&v),
                "{format:?}: changing character {i} ({:?}) went unnoticed",
                chars[i]
            );
            checked += 1;
        }
        assert!(checked > 2_000, "{format:?}: only {checked} characters");
    }
}

#[tokio::test]
async fn a_difference_is_named_with_both_values_and_the_entries_behind_it() {
    let w = world().await;
    let ex = finished_run(&w).await;
    let r = w.v.execution_report(&w.bob, ex).await.unwrap();
    let seqs: Vec<String> = r.steps[1].audit.iter().map(|a| a.seq.to_string()).collect();
    // JSON: step 2 done by someone else.
    let json = r.render(ReportFormat::Json);
    let mut doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    doc["steps"][1]["by"] = serde_json::json!("mallory");
    let mut edited = serde_json::to_string_pretty(&doc).unwrap();
    edited.push('\n');
    let p = problem(&w.v.verify_report(None, &edited).await.unwrap());
    assert!(p.contains("step 2 `by`"), "{p}");
    assert!(p.contains("\"mallory\"") && p.contains("\"bob\""), "{p}");
    assert!(p.contains(&seqs.join(", ")), "{p}");
    // Markdown: the note of step 1.
    let md = r.render(ReportFormat::Md);
    let edited = md.replace("all green", "all grey");
    let p = problem(&w.v.verify_report(None, &edited).await.unwrap());
    assert!(p.contains("step 1 `Note`"), "{p}");
    assert!(p.contains("all grey") && p.contains("all green"), "{p}");
    // Markdown: the operator in the run's table.
    let edited = md.replace("| Operator | `@bob` |", "| Operator | `@bobby` |");
    let p = problem(&w.v.verify_report(None, &edited).await.unwrap());
    assert!(p.contains("run `Operator`"), "{p}");
    // The audit head's hash.
    let h = &r.audit_head.hash;
    let edited = md.replace(h.as_str(), &h.chars().rev().collect::<String>());
    let p = problem(&w.v.verify_report(None, &edited).await.unwrap());
    assert!(p.contains("audit head"), "{p}");
    // A report of nothing Vigilo wrote.
    let p = problem(&w.v.verify_report(None, "hello\n").await.unwrap());
    assert!(p.contains("not an execution report"), "{p}");
}

#[tokio::test]
async fn a_running_report_keeps_verifying_as_of_its_head_and_aborts_are_reported() {
    let w = world().await;
    let ex =
        w.v.start_execution(&w.bob, w.rb, StartOptions::default())
            .await
            .unwrap()
            .key;
    w.v.act(
        &w.bob,
        ex,
        Command::Done {
            step: 1,
            note: None,
        },
    )
    .await
    .unwrap();
    let early = w.v.execution_report(&w.bob, ex).await.unwrap();
    assert_eq!(early.execution.status, ExecutionStatus::Running);
    assert_eq!(early.execution.completed_at, None);
    assert_eq!(early.steps[1].status, StepStatus::Pending);
    let md = early.render(ReportFormat::Md);
    // The run goes on, and other runs too: the early report still verifies as of its head.
    w.v.act(
        &w.bob,
        ex,
        Command::Abort {
            reason: "window closed".into(),
        },
    )
    .await
    .unwrap();
    let other =
        w.v.start_execution(&w.bob, w.rb, StartOptions::default())
            .await
            .unwrap();
    assert!(verified(&w.v.verify_report(None, &md).await.unwrap()));
    let late = w.v.execution_report(&w.bob, ex).await.unwrap();
    assert_eq!(late.execution.status, ExecutionStatus::Aborted);
    assert_eq!(
        late.execution.abort_reason.as_deref(),
        Some("window closed")
    );
    assert!(late.audit_head.seq > early.audit_head.seq);
    assert!(verified(
        &w.v.verify_report(None, &late.to_json()).await.unwrap()
    ));
    // A report of another execution, or of a key that is not one, is refused as elsewhere.
    let e = w.v.execution_report(&w.bob, w.rb).await.unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    assert_eq!(
        w.v.execution_report(&w.bob, Key::new(vigilo_core::ids::KeyKind::Execution, 99))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    // The other run's report is its own.
    let r = w.v.execution_report(&w.carol, other.key).await.unwrap();
    assert_eq!(r.entries().len(), 1);
}

/// Hand-overs and notes are facts of the report: every hand-over with who handed it to whom,
/// the operator of the end, each note under its step; a note after the seal changes no
/// outcome (the completion time stays); the report verifies in md and json.
#[tokio::test]
async fn hand_overs_and_notes_are_reported_and_verify() {
    let w = world().await;
    let ex =
        w.v.start_execution(&w.bob, w.rb, StartOptions::default())
            .await
            .unwrap()
            .key;
    w.clock.advance(Duration::seconds(60));
    w.v.add_note(&w.bob, ex, None, "pager *quiet*", None)
        .await
        .unwrap();
    w.v.hand_over(&w.bob, ex, "alice").await.unwrap();
    w.clock.advance(Duration::seconds(60));
    let sealed =
        w.v.act(
            &w.alice,
            ex,
            Command::Abort {
                reason: "window closed".into(),
            },
        )
        .await
        .unwrap()
        .execution;
    w.clock.advance(Duration::seconds(600));
    w.v.add_note(&w.alice, ex, Some(2), "post-mortem: cert was fine", None)
        .await
        .unwrap();

    let r = w.v.execution_report(&w.bob, ex).await.unwrap();
    assert_eq!(r.execution.operator, "alice");
    assert_eq!(r.execution.handoffs.len(), 1);
    assert_eq!(
        (
            r.execution.handoffs[0].from.as_str(),
            r.execution.handoffs[0].to.as_str(),
            r.execution.handoffs[0].by.as_str()
        ),
        ("bob", "alice", "bob")
    );
    assert_eq!(r.execution.status, ExecutionStatus::Aborted);
    assert_eq!(r.execution.completed_at, sealed.sealed_at);
    let notes: Vec<(&str, &str)> = r
        .steps
        .iter()
        .flat_map(|s| s.notes.iter().map(|n| (n.author.as_str(), n.text.as_str())))
        .collect();
    assert_eq!(
        notes,
        vec![
            ("bob", "pager *quiet*"),
            ("alice", "post-mortem: cert was fine")
        ]
    );
    assert_eq!(r.steps[0].notes.len(), 1, "the current step by default");
    for format in [ReportFormat::Md, ReportFormat::Json] {
        let text = r.render(format);
        let verdict = w.v.verify_report(None, &text).await.unwrap();
        assert!(verified(&verdict), "{format:?}: {verdict:?}");
        let edited = text.replacen("post-mortem", "post-morten", 1);
        assert!(!verified(&w.v.verify_report(None, &edited).await.unwrap()));
    }
}

#[tokio::test]
async fn a_lapsed_approval_is_reported_behind_its_step_and_verifies() {
    let w = world().await;
    let (dave, _) =
        w.v.add_member(
            &w.alice,
            NewMember {
                handle: "dave".into(),
                display_name: String::new(),
                role: WorkspaceRole::Member,
                team_roles: ["sre".to_string()].into_iter().collect(),
                chat_identity: None,
            },
        )
        .await
        .unwrap();
    let dave = Who::new(w.alice.workspace, dave.id);
    let rb =
        w.v.create_runbook(
            &w.alice,
            RunbookInput {
                title: "Fail over".into(),
                steps: vec![
                    StepInput {
                        title: "Promote the replica".into(),
                        owner_role: "sre".into(),
                        requires_approval: true,
                        approvals_required: 2,
                        approval_expires_minutes: Some(30),
                        ..Default::default()
                    },
                    StepInput {
                        title: "Announce".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
            CreateRunbook {
                publish: true,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .key;
    let ex =
        w.v.start_execution(&w.bob, rb, StartOptions::default())
            .await
            .unwrap()
            .key;
    let act = async |who: &Who, cmd| w.v.act(who, ex, cmd).await.unwrap();
    w.clock.advance(Duration::minutes(1));
    let first = act(&w.carol, Command::Approve { step: 1 }).await.event.at;
    // Carol's approval lapses at minute 31; the read at minute 32 records it.
    w.clock.advance(Duration::minutes(31));
    let read = w.v.execution(&w.bob, ex).await.unwrap();
    assert_eq!(read.steps[0].lapsed.len(), 1);
    act(&dave, Command::Approve { step: 1 }).await;
    act(&w.carol, Command::Approve { step: 1 }).await;
    act(
        &w.bob,
        Command::Done {
            step: 1,
            note: None,
        },
    )
    .await;
    act(
        &w.bob,
        Command::Done {
            step: 2,
            note: None,
        },
    )
    .await;

    let r = w.v.execution_report(&w.bob, ex).await.unwrap();
    assert_eq!(r.execution.status, ExecutionStatus::Completed);
    let approvals: Vec<(&str, Option<DateTime<chrono::Utc>>)> = r.steps[0]
        .approvals
        .iter()
        .map(|a| (a.by.as_str(), a.lapsed_at))
        .collect();
    assert_eq!(
        approvals,
        vec![
            ("carol", Some(first + Duration::minutes(30))),
            ("dave", None),
            ("carol", None),
        ]
    );
    // Approve, lapse, approve, approve and done behind step 1.
    assert_eq!(r.steps[0].audit.len(), 5);
    let md = r.render(ReportFormat::Md);
    assert!(md.contains("(lapsed at"), "{md}");
    for format in [ReportFormat::Md, ReportFormat::Json] {
        let text = r.render(format);
        let verdict = w.v.verify_report(None, &text).await.unwrap();
        assert!(verified(&verdict), "{format:?}: {verdict:?}");
    }
    let edited = md.replacen("(lapsed at", "(lapsed  at", 1);
    assert!(!verified(&w.v.verify_report(None, &edited).await.unwrap()));
    // A report of a run without lapses carries no `lapsed_at`.
    let plain = finished_run(&w).await;
    let json =
        w.v.execution_report(&w.bob, plain)
            .await
            .unwrap()
            .render(ReportFormat::Json);
    assert!(!json.contains("lapsed_at"), "{json}");
}
