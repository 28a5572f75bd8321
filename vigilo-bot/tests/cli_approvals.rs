//! Approval policies through the `vigilo` binary: a file with `approval: 2` and
//! `approval-expires: 30` imported, exported and shown; the operator refused, the same approver
//! counted once, `exec approve` saying what is still missing, `exec show --json` listing
//! `steps[].approvals[]` of `{by, role, at}`; and a lapse that happened while nobody looked,
//! recorded once when the CLI next reads the run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use std::sync::Arc;

use chrono::{Duration, Utc};
use cli_support::{Env, path_str};
use vigilo_core::clock::ManualClock;
use vigilo_core::execution::machine::Command;
use vigilo_core::service::{StartOptions, Vigilo, Who};
use vigilo_store::{SqliteOptions, SqliteStore};

const FAILOVER: &str = r#"+++
title = "Fail over the primary"
published = true
+++

## 1. Promote the replica
- role: sre
- est: 5
- approval: 2
- approval-expires: 30

Promote it.

## 2. Announce
- est: 1
"#;

fn messages(v: &serde_json::Value) -> &str {
    v["message"].as_str().unwrap()
}

#[test]
fn two_approvals_through_the_cli() {
    let env = Env::seeded();
    env.ok(
        Some("alice"),
        &[
            "user",
            "add",
            "erin",
            "--role",
            "operator",
            "--team-role",
            "sre",
        ],
    );
    let f = env.write("failover.md", FAILOVER);
    env.ok(Some("alice"), &["runbook", "import", path_str(&f)]);
    // The file round-trips, and `runbook show` names the policy.
    let exported = env.ok(Some("alice"), &["runbook", "export", "RB-00001"]);
    assert!(
        exported.contains("- approval: 2\n- approval-expires: 30\n"),
        "{exported}"
    );
    let shown = env.json(Some("alice"), &["runbook", "show", "RB-00001"]);
    assert_eq!(shown["steps"][0]["requires_approval"], true);
    assert_eq!(shown["steps"][0]["approvals_required"], 2);
    assert_eq!(shown["steps"][0]["approval_expires_minutes"], 30);
    assert_eq!(shown["steps"][1]["approvals_required"], 0);

    let ex = env.json(Some("carol"), &["exec", "start", "RB-00001"]);
    let key = ex["key"].as_str().unwrap().to_owned();
    // The operator (carol started it) is not one of the two.
    let e = env.fails(Some("carol"), &["exec", "approve", &key], 4);
    assert!(messages(&e).contains("operator"), "{e}");
    // Bob is no sre.
    env.fails(Some("bob"), &["exec", "approve", &key], 4);
    // Erin approves: the answer says what is still missing.
    let out = env.ok(Some("erin"), &["exec", "approve", &key]);
    assert!(
        out.contains(
            "Approvals: 1 of 2 approvals (@erin); still missing: 1 approval by team role `sre`."
        ),
        "{out}"
    );
    // The same approver twice counts once.
    let e = env.fails(Some("erin"), &["exec", "approve", &key], 5);
    assert!(messages(&e).contains("already approved by @erin"), "{e}");
    // Done is refused, naming what stands.
    let e = env.fails(Some("carol"), &["exec", "done", &key], 6);
    assert!(messages(&e).contains("1 of 2 approvals (@erin)"), "{e}");

    let show = env.json(Some("dave"), &["exec", "show", &key]);
    let approvals = show["steps"][0]["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0]["by"], "erin");
    assert_eq!(approvals[0]["role"], "sre");
    assert!(approvals[0]["at"].is_string());
    assert_eq!(show["steps"][0]["approvals_missing"], 1);
    let human = env.ok(Some("dave"), &["exec", "show", &key]);
    assert!(human.contains("1/2 @erin"), "{human}");

    // Alice holds no sre; give it to her, and she completes the pair.
    env.ok(
        Some("alice"),
        &["user", "set-role", "alice", "owner", "--team-role", "sre"],
    );
    let json = env.json(Some("alice"), &["exec", "approve", &key]);
    assert_eq!(json["approvals"]["missing"], 0);
    assert_eq!(
        json["approvals"]["summary"],
        "2 of 2 approvals (@erin, @alice)"
    );
    env.ok(Some("carol"), &["exec", "done", &key]);
}

#[test]
fn a_lapse_is_recorded_once_when_the_cli_next_reads_the_run() {
    let env = Env::seeded();
    env.ok(
        Some("alice"),
        &[
            "user",
            "add",
            "erin",
            "--role",
            "operator",
            "--team-role",
            "sre",
        ],
    );
    let f = env.write("failover.md", FAILOVER);
    env.ok(Some("alice"), &["runbook", "import", path_str(&f)]);
    // Two hours ago (through the library on the same file): bob started it, erin approved.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = rt.block_on(async {
        let store = SqliteStore::open(&env.db, SqliteOptions::default())
            .await
            .unwrap();
        let clock = Arc::new(ManualClock::new(Utc::now() - Duration::hours(2)));
        let v = Vigilo::with_clock(Arc::new(store), clock);
        let ws = v.workspace_by_slug("acme").await.unwrap();
        let who = |h: &str| {
            let v = v.clone();
            let h = h.to_owned();
            async move { Who::new(ws.id, v.member(ws.id, &h).await.unwrap().0.id) }
        };
        let (bob, erin) = (who("bob").await, who("erin").await);
        let ex = v
            .start_execution(&bob, "RB-00001".parse().unwrap(), StartOptions::default())
            .await
            .unwrap();
        v.act(&erin, ex.key, Command::Approve { step: 1 })
            .await
            .unwrap();
        ex.key.to_string()
    });
    drop(rt);
    let lapses = || {
        env.json(Some("alice"), &["audit", "list", "--target", &key])
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "execution.approval_expired")
            .count()
    };
    assert_eq!(lapses(), 0, "nothing is recorded until the run is read");
    let show = env.json(Some("dave"), &["exec", "show", &key]);
    assert_eq!(show["steps"][0]["approvals"].as_array().unwrap().len(), 0);
    let lapsed = show["steps"][0]["lapsed_approvals"].as_array().unwrap();
    assert_eq!(lapsed.len(), 1);
    assert_eq!(lapsed[0]["by"], "erin");
    env.json(Some("bob"), &["exec", "show", &key]);
    assert_eq!(lapses(), 1);
    let e = env.fails(Some("bob"), &["exec", "done", &key], 6);
    assert!(messages(&e).contains("0 of 2 approvals"), "{e}");
    assert_eq!(lapses(), 1);
    env.ok(None, &["audit", "verify"]);
}
