//! Executions through the binary: every step command, `--step N` semantics (exit 5, nothing
//! changed), approvals (denied: exit 4), sealed executions (exit 6), show/list JSON, and the
//! interactive `run` driven through standard input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use cli_support::{Env, ROTATE, has_keys, path_str, simple};

fn with_rotate() -> Env {
    let env = Env::seeded();
    let f = env.write("rotate.md", ROTATE);
    env.ok(Some("alice"), &["runbook", "import", path_str(&f)]);
    env
}

#[test]
fn step_commands_and_exit_codes() {
    let env = with_rotate();
    // A member cannot execute; an unknown runbook is not found.
    env.fails(Some("dave"), &["exec", "start", "RB-00001"], 4);
    env.fails(Some("bob"), &["exec", "start", "RB-00009"], 3);
    let ex = env.json(Some("bob"), &["exec", "start", "RB-00001"]);
    has_keys(
        &ex,
        &["key", "id", "status", "started_at", "steps", "current_step"],
    );
    assert_eq!(ex["key"], "EX-00001");
    assert_eq!(ex["status"], "running");
    assert_eq!(ex["current_step"], 1);
    assert_eq!(ex["steps"][0]["status"], "pending");

    // --step names the step meant: not the current one → exit 5, nothing changed.
    let before = env.audit_count();
    let e = env.fails(Some("bob"), &["exec", "done", "EX-00001", "--step", "2"], 5);
    assert_eq!(e["kind"], "conflict");
    assert_eq!(env.audit_count(), before);
    env.fails(Some("bob"), &["exec", "done", "EX-00001", "--step", "9"], 3);
    // Skip without a reason is refused by a rule.
    let e = env.fails(Some("bob"), &["exec", "skip", "EX-00001"], 6);
    assert!(e["message"].as_str().unwrap().contains("reason"), "{e}");
    let e = env.fails(
        Some("bob"),
        &["exec", "fail", "EX-00001", "--note", "  "],
        6,
    );
    assert_eq!(e["kind"], "refused");
    // Fail, retry, done.
    let f = env.json(
        Some("bob"),
        &[
            "exec",
            "fail",
            "EX-00001",
            "--step",
            "1",
            "--note",
            "nobody answered",
        ],
    );
    assert_eq!(f["steps"][0]["status"], "failed");
    assert_eq!(f["event"]["kind"], "failed");
    env.fails(Some("bob"), &["exec", "done", "EX-00001"], 6);
    let r = env.json(Some("bob"), &["exec", "retry", "EX-00001", "--step", "1"]);
    assert_eq!(r["steps"][0]["status"], "pending");
    let d = env.json(
        Some("bob"),
        &["exec", "done", "EX-00001", "--step", "1", "--note", "acked"],
    );
    let s1 = &d["steps"][0];
    has_keys(
        s1,
        &[
            "order",
            "title",
            "status",
            "started_at",
            "completed_at",
            "note",
            "actual_minutes",
            "variance_minutes",
        ],
    );
    assert_eq!(s1["status"], "done");
    assert_eq!(s1["note"], "acked");
    assert!(s1["actual_minutes"].is_number());
    assert!(s1["variance_minutes"].is_number());
    assert_eq!(d["current_step"], 2);
    // Acting on step 1 again: exit 5 naming who did it.
    let e = env.fails(Some("bob"), &["exec", "done", "EX-00001", "--step", "1"], 5);
    assert!(e["message"].as_str().unwrap().contains("@bob"), "{e}");

    // Step 2 is gated: done before approval is refused; the operator may not approve his own
    // execution; a member without the role is denied (exit 4); carol (sre) approves.
    env.fails(Some("bob"), &["exec", "done", "EX-00001", "--step", "2"], 6);
    let e = env.fails(
        Some("bob"),
        &["exec", "approve", "EX-00001", "--step", "2"],
        4,
    );
    assert_eq!(e["kind"], "denied");
    env.fails(
        Some("dave"),
        &["exec", "approve", "EX-00001", "--step", "2"],
        4,
    );
    env.fails(
        Some("alice"),
        &["exec", "approve", "EX-00001", "--step", "2"],
        4,
    );
    let a = env.json(
        Some("carol"),
        &["exec", "approve", "EX-00001", "--step", "2"],
    );
    assert_eq!(a["steps"][1]["approved_by"], "carol");
    env.fails(
        Some("carol"),
        &["exec", "approve", "EX-00001", "--step", "2"],
        5,
    );
    let done = env.json(Some("bob"), &["exec", "done", "EX-00001", "--step", "2"]);
    assert_eq!(done["status"], "completed");
    assert!(done["completed_at"].is_string());
    has_keys(
        &done,
        &["est_minutes", "actual_minutes", "variance_minutes"],
    );
    // Sealed: everything is refused.
    let e = env.fails(Some("bob"), &["exec", "done", "EX-00001"], 6);
    assert!(e["message"].as_str().unwrap().contains("sealed"), "{e}");
    env.fails(
        Some("bob"),
        &["exec", "abort", "EX-00001", "--reason", "late"],
        6,
    );

    // Show, human and JSON.
    let show = env.json(Some("dave"), &["exec", "show", "EX-00001"]);
    assert_eq!(show["steps"][1]["actor"], "bob");
    assert_eq!(show["operator"], "bob");
    let text = env.ok(Some("dave"), &["exec", "show", "EX-00001"]);
    assert!(
        text.contains("ACTUAL") && text.contains("VAR") && text.contains("@carol"),
        "{text}"
    );
    assert!(text.contains("Total: est 12 min"), "{text}");

    // Abort a second one; skip with a reason on a third; list.
    env.ok(Some("bob"), &["exec", "start", "RB-00001"]);
    env.fails(Some("bob"), &["exec", "abort", "EX-00002"], 6);
    let ab = env.json(
        Some("bob"),
        &["exec", "abort", "EX-00002", "--reason", "window closed"],
    );
    assert_eq!(ab["status"], "aborted");
    assert_eq!(ab["abort_reason"], "window closed");
    env.ok(Some("bob"), &["exec", "start", "RB-00001"]);
    let sk = env.json(
        Some("bob"),
        &[
            "exec",
            "skip",
            "EX-00003",
            "--step",
            "1",
            "--reason",
            "already announced",
        ],
    );
    assert_eq!(sk["steps"][0]["status"], "skipped");
    assert_eq!(sk["steps"][0]["note"], "already announced");
    let all = env.json(Some("dave"), &["exec", "list"]);
    assert_eq!(all.as_array().unwrap().len(), 3);
    assert_eq!(all[0]["key"], "EX-00003", "newest first");
    let open = env.json(
        Some("dave"),
        &["exec", "list", "--open", "--runbook", "RB-00001"],
    );
    assert_eq!(open.as_array().unwrap().len(), 1);
    assert_eq!(open[0]["status"], "running");
    let text = env.ok(Some("dave"), &["exec", "list"]);
    assert!(text.starts_with("KEY"), "{text}");

    // Links: an incident, a rehearsal of a draft.
    env.ok(
        Some("dave"),
        &["incident", "create", "--title", "Expired cert"],
    );
    let linked = env.json(
        Some("bob"),
        &["exec", "start", "RB-00001", "--incident", "INC-00001"],
    );
    assert_eq!(linked["incident"], "INC-00001");
    let draft = env.write("draft.md", &simple("Draft thing", &[("Try", 1)]));
    env.ok(Some("bob"), &["runbook", "import", path_str(&draft)]);
    env.fails(Some("bob"), &["exec", "start", "RB-00002"], 6);
    let reh = env.json(Some("bob"), &["exec", "start", "RB-00002", "--rehearsal"]);
    assert_eq!(reh["rehearsal"], true);
}

#[test]
fn run_walks_a_runbook_through_stdin() {
    let env = with_rotate();
    env.ok(
        Some("dave"),
        &["incident", "create", "--title", "Expiring cert"],
    );
    // done with a note; an unknown answer; approve as myself (denied, the walk goes on);
    // approve as carol; done.
    let input = "d acked in #ops\nzz\na\na carol\nd\n";
    let r = env.run_stdin(
        Some("bob"),
        &["run", "RB-00001", "--incident", "INC-00001"],
        input,
    );
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    let out = &r.stdout;
    assert!(out.contains("Step 1 of 2 · Announce the rotation"), "{out}");
    assert!(
        out.contains("Expected: The on-call engineer acknowledges in #ops."),
        "{out}"
    );
    assert!(out.contains("Progress: step 1 of 2 · elapsed"), "{out}");
    assert!(
        out.contains("Step 2 of 2 · Swap the certificate on the proxies"),
        "{out}"
    );
    assert!(out.contains("[DESTRUCTIVE] [APPROVAL REQUIRED]"), "{out}");
    assert!(out.contains("Verification: `curl -sI"), "{out}");
    assert!(out.contains("Rollback: Re-deploy"), "{out}");
    assert!(out.contains("deploy-cert --bundle new.pem --all"), "{out}");
    assert!(out.contains("is not an answer"), "{out}");
    assert!(out.contains("cannot approve its gated steps"), "{out}");
    assert!(out.contains("approved by @carol"), "{out}");
    assert!(out.contains("EX-00001 completed in"), "{out}");
    assert!(out.contains("min estimated"), "{out}");
    let show = env.json(Some("bob"), &["exec", "show", "EX-00001"]);
    assert_eq!(show["status"], "completed");
    assert_eq!(show["incident"], "INC-00001");
    assert_eq!(show["steps"][0]["note"], "acked in #ops");
    assert_eq!(show["steps"][1]["approved_by"], "carol");

    // Skip asks for its reason on the next line; the end of input leaves the execution running;
    // `run EX-…` resumes it, and failing then aborting ends it.
    let r = env.run_stdin(Some("bob"), &["run", "RB-00001"], "s\nalready announced\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("left running at step 2"), "{}", r.stdout);
    let r = env.run_stdin(
        Some("bob"),
        &["--json", "run", "EX-00002"],
        "f\nproxy 3 refused the bundle\nb change window closed\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.json();
    assert_eq!(doc["status"], "aborted");
    assert_eq!(doc["steps"][0]["status"], "skipped");
    assert_eq!(doc["steps"][0]["note"], "already announced");
    assert_eq!(doc["steps"][1]["status"], "failed");
    // Resuming a sealed execution shows its summary.
    let r = env.run_stdin(Some("bob"), &["run", "EX-00002"], "");
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("aborted"), "{}", r.stdout);
    env.fails(Some("dave"), &["run", "RB-00001"], 4);
}
