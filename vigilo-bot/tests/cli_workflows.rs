//! The product page's five workflows, end to end through the `vigilo` binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use cli_support::{Env, ROTATE, has_keys, path_str};

#[test]
fn the_five_workflows() {
    let env = Env::seeded();

    // 1. Author a runbook from scratch: title, category, owner, description, steps with
    //    estimates, roles, verification, a destructive flag; publish when ready.
    let draft = ROTATE.replace("published = true", "published = false");
    let f = env.write("rotate.md", &draft);
    let created = env.json(Some("bob"), &["runbook", "import", path_str(&f)]);
    assert_eq!(created["key"], "RB-00001");
    assert_eq!(created["is_published"], false);
    // Drafts stay visible to the owner, not in others' lists (nor to the change importer).
    assert_eq!(
        env.json(Some("dave"), &["runbook", "list"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    env.ok(
        Some("bob"),
        &["change", "create", "--title", "Rotate edge certs"],
    );
    let e = env.fails(
        Some("bob"),
        &["change", "import", "CR-00001", "RB-00001"],
        6,
    );
    assert!(e["message"].as_str().unwrap().contains("draft"), "{e}");
    let p = env.json(Some("alice"), &["runbook", "publish", "RB-00001"]);
    assert_eq!(p["is_published"], true);
    assert_eq!(p["version"], 1, "publishing is not an edit");
    let shown = env.json(Some("dave"), &["runbook", "show", "RB-00001"]);
    assert_eq!(
        shown["owner"], "alice",
        "owner from the file's front matter"
    );
    assert_eq!(shown["steps"][1]["is_destructive"], true);

    // 2. Execute end to end, linked to an incident; approvals on the gated step (the wrong
    //    person is denied, exit 4); sealed after the last step; timing variance on the summary.
    env.ok(
        Some("dave"),
        &["incident", "create", "--title", "Cert expires Friday"],
    );
    let ex = env.json(
        Some("bob"),
        &["exec", "start", "RB-00001", "--incident", "INC-00001"],
    );
    let key = ex["key"].as_str().unwrap().to_owned();
    env.ok(Some("bob"), &["exec", "done", &key, "--step", "1"]);
    let denied = env.fails(Some("dave"), &["exec", "approve", &key, "--step", "2"], 4);
    assert!(
        denied["message"].as_str().unwrap().contains("sre"),
        "{denied}"
    );
    env.ok(Some("carol"), &["exec", "approve", &key, "--step", "2"]);
    let done = env.json(Some("bob"), &["exec", "done", &key, "--step", "2"]);
    assert_eq!(done["status"], "completed");
    assert_eq!(done["est_minutes"], 12);
    assert!(done["variance_minutes"].as_f64().unwrap() < 0.0);
    env.fails(Some("bob"), &["exec", "skip", &key, "--reason", "late"], 6);
    let trail = env.json(Some("dave"), &["audit", "list", "--target", "INC-00001"]);
    let actions: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"incident.created"), "{actions:?}");
    assert!(
        actions.contains(&"execution.started"),
        "the link shows on the incident's side"
    );
    assert!(actions.contains(&"execution.step_approved"), "{actions:?}");

    // 3. Import into a change; the runbook ships a newer version; re-import takes it.
    let c = env.json(Some("bob"), &["change", "import", "CR-00001", "RB-00001"]);
    has_keys(
        &c,
        &[
            "key",
            "status",
            "source",
            "tasks",
            "newer_version_available",
        ],
    );
    assert_eq!(c["source"]["runbook"], "RB-00001");
    assert_eq!(c["source"]["version"], 1);
    assert_eq!(c["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(c["tasks"][1]["est_minutes"], 10);
    let exported = env.ok(Some("alice"), &["runbook", "export", "RB-00001"]);
    let v2 = env.write("rotate-v2.md", &exported.replace("- est: 10", "- est: 20"));
    env.ok(Some("alice"), &["runbook", "import", path_str(&v2)]);
    let banner = env.json(Some("bob"), &["change", "show", "CR-00001"]);
    assert_eq!(banner["newer_version_available"], 2);
    let text = env.ok(Some("bob"), &["change", "show", "CR-00001"]);
    assert!(
        text.contains("Source: RB-00001 (v1)") && text.contains("v2 available"),
        "{text}"
    );
    let re = env.json(Some("bob"), &["change", "reimport", "CR-00001"]);
    assert_eq!(re["source"]["version"], 2);
    assert_eq!(re["newer_version_available"], serde_json::Value::Null);
    assert_eq!(re["tasks"][1]["est_minutes"], 20);
    // Tasks are change-owned: edit them freely.
    let edited = env.json(
        Some("bob"),
        &["change", "task", "edit", "CR-00001", "1", "--est", "4"],
    );
    assert_eq!(edited["tasks"][0]["est_minutes"], 4);
    assert_eq!(edited["tasks"][0]["title"], "Announce the rotation");
    // Add a task the runbook did not have, remove nothing, and clear-source on another change.
    let added = env.json(
        Some("bob"),
        &[
            "change",
            "task",
            "add",
            "CR-00001",
            "--title",
            "Check the dashboards",
            "--est",
            "3",
            "--verification",
            "open grafana",
        ],
    );
    assert_eq!(added["tasks"].as_array().unwrap().len(), 3);
    env.ok(Some("bob"), &["change", "create", "--title", "Scratch"]);
    env.ok(Some("bob"), &["change", "import", "CR-00002", "RB-00001"]);
    let cleared = env.json(Some("bob"), &["change", "clear-source", "CR-00002"]);
    assert_eq!(cleared["source"], serde_json::Value::Null);
    assert_eq!(
        cleared["tasks"].as_array().unwrap().len(),
        2,
        "the tasks stay"
    );
    let removed = env.json(Some("bob"), &["change", "task", "remove", "CR-00002", "2"]);
    assert_eq!(removed["tasks"].as_array().unwrap().len(), 1);
    env.fails(
        Some("bob"),
        &["change", "task", "remove", "CR-00002", "5"],
        3,
    );
    let cancelled = env.json(Some("bob"), &["change", "cancel", "CR-00002"]);
    assert_eq!(cancelled["status"], "cancelled");
    let changes = env.json(Some("dave"), &["change", "list"]);
    let changes = changes.as_array().unwrap();
    assert_eq!(changes.len(), 2);
    has_keys(
        &changes[0],
        &["key", "id", "title", "status", "owner", "source"],
    );
    assert_eq!(changes[1]["status"], "cancelled");
    let text = env.ok(Some("dave"), &["change", "list"]);
    assert!(
        text.starts_with("KEY") && text.contains("CR-00002"),
        "{text}"
    );

    // 4. Save the plan back as a runbook once the change is completed: refused before (exit
    //    6); approve (admins), start (gated on a live execution linked to the change), complete.
    let e = env.fails(
        Some("bob"),
        &[
            "change",
            "save-as-runbook",
            "CR-00001",
            "--into",
            "RB-00001",
        ],
        6,
    );
    assert!(e["message"].as_str().unwrap().contains("completed"), "{e}");
    env.fails(Some("bob"), &["change", "approve", "CR-00001"], 4);
    let ap = env.json(Some("carol"), &["change", "approve", "CR-00001"]);
    assert_eq!(ap["status"], "approved");
    env.fails(Some("bob"), &["change", "start", "CR-00001"], 6);
    env.ok(
        Some("bob"),
        &["exec", "start", "RB-00001", "--change", "CR-00001"],
    );
    env.ok(Some("bob"), &["change", "start", "CR-00001"]);
    let comp = env.json(Some("bob"), &["change", "complete", "CR-00001"]);
    assert_eq!(comp["status"], "completed");
    let into = env.json(
        Some("bob"),
        &[
            "change",
            "save-as-runbook",
            "CR-00001",
            "--into",
            "RB-00001",
        ],
    );
    assert_eq!(into["key"], "RB-00001");
    assert_eq!(into["version"], 3, "updating bumps the version");
    assert_eq!(into["steps"].as_array().unwrap().len(), 3);
    let new = env.json(
        Some("bob"),
        &[
            "change",
            "save-as-runbook",
            "CR-00001",
            "--new",
            "--title",
            "Rotate edge certs (from CR-00001)",
            "--category",
            "security",
        ],
    );
    assert_eq!(new["key"], "RB-00002");
    assert_eq!(new["version"], 1);
    assert_eq!(new["is_published"], false);
    let hist = env.json(Some("dave"), &["runbook", "history", "RB-00001"]);
    assert_eq!(hist[2]["source"], "save-as from CR-00001");
    let lineage = env.json(Some("dave"), &["audit", "list", "--target", "CR-00001"]);
    assert!(
        lineage.as_array().unwrap().iter().any(
            |e| e["action"] == "change.saved_as_runbook" && e["links"]["runbook"] == "RB-00001"
        ),
        "{lineage:#}"
    );
    env.fails(Some("bob"), &["change", "save-as-runbook", "CR-00001"], 2);

    // 5. Diff two versions: added/removed/changed steps with line markers.
    let d = env.json(
        Some("dave"),
        &["runbook", "diff", "RB-00001", "--from", "1", "--to", "3"],
    );
    assert_eq!(d["summary"]["added"], 1);
    assert_eq!(d["summary"]["changed"], 2);
    let text = env.ok(
        Some("dave"),
        &["runbook", "diff", "RB-00001", "--from", "1", "--to", "3"],
    );
    assert!(
        text.contains("+ step 3 \"Check the dashboards\" (added)"),
        "{text}"
    );
    assert!(text.contains("-   10\n+   20"), "{text}");
    let sbs = env.ok(
        Some("dave"),
        &[
            "runbook",
            "diff",
            "RB-00001",
            "--from",
            "1",
            "--to",
            "3",
            "--side-by-side",
            "--width",
            "100",
        ],
    );
    assert!(sbs.contains("--- v1") && sbs.contains("+++ v3"), "{sbs}");
    // The whole trail still verifies.
    let v = env.json(None, &["audit", "verify"]);
    assert_eq!(v["result"], "intact");
}

/// Issue 14: saving a change's plan into the runbook it was imported from, unchanged, used to
/// print "new runbook RB-00001 (draft)" and record nothing. It is refused (exit 6) and says
/// plainly that nothing changed; nothing is written.
#[test]
fn save_as_into_with_an_unchanged_plan_says_nothing_changed() {
    let env = Env::seeded();
    let f = env.write("rotate.md", ROTATE);
    env.ok(Some("bob"), &["runbook", "import", path_str(&f)]);
    env.ok(
        Some("bob"),
        &["change", "create", "--title", "Rotate edge certs"],
    );
    env.ok(Some("bob"), &["change", "import", "CR-00001", "RB-00001"]);
    env.ok(Some("carol"), &["change", "approve", "CR-00001"]);
    env.ok(
        Some("bob"),
        &["exec", "start", "RB-00001", "--change", "CR-00001"],
    );
    env.ok(Some("bob"), &["change", "start", "CR-00001"]);
    env.ok(Some("bob"), &["change", "complete", "CR-00001"]);
    let before = env.audit_count();
    let args = [
        "change",
        "save-as-runbook",
        "CR-00001",
        "--into",
        "RB-00001",
    ];
    let e = env.fails(Some("bob"), &args, 6);
    assert_eq!(e["kind"], "refused", "{e}");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("nothing changed"), "{msg}");
    assert!(msg.contains("RB-00001 v1"), "{msg}");
    let r = env.run(Some("bob"), &args);
    assert_eq!(r.code, 6);
    assert!(!r.stdout.contains("new runbook"), "{}", r.stdout);
    assert!(r.stderr.contains("nothing changed"), "{}", r.stderr);
    assert_eq!(env.audit_count(), before, "nothing was recorded");
    let shown = env.json(Some("bob"), &["runbook", "show", "RB-00001"]);
    assert_eq!(shown["version"], 1);
}
