//! Running together through the binary: `exec note`, `exec handoff`, `exec takeover`, and the
//! drift `exec show` and `vigilo run` report when a newer version is published under a run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use cli_support::{Env, ROTATE, path_str};

fn with_run() -> Env {
    let env = Env::seeded();
    let f = env.write("rotate.md", ROTATE);
    env.ok(Some("alice"), &["runbook", "import", path_str(&f)]);
    env.ok(Some("bob"), &["exec", "start", "RB-00001"]);
    env
}

#[test]
fn notes_on_any_step_with_clear_refusals() {
    let env = with_run();
    let before = env.audit_count();
    // Default: the current step; several words are one note; the state does not change.
    let n = env.json(
        Some("bob"),
        &["exec", "note", "EX-00001", "paged", "the", "on-call"],
    );
    assert_eq!(n["event"]["kind"], "noted");
    assert_eq!(n["event"]["step"], 1);
    assert_eq!(n["current_step"], 1);
    assert_eq!(n["steps"][0]["status"], "pending");
    assert_eq!(n["steps"][0]["notes"][0]["author"], "bob");
    assert_eq!(n["steps"][0]["notes"][0]["text"], "paged the on-call");
    assert!(n["steps"][0]["notes"][0]["at"].is_string());
    // Any step, by anyone who may act on the run (carol is an admin).
    env.ok(
        Some("carol"),
        &[
            "exec",
            "note",
            "EX-00001",
            "--step",
            "2",
            "bundle is in the vault",
        ],
    );
    assert_eq!(env.audit_count(), before + 2);
    // Dave (member) may not act on bob's run: denied, exit 4, nothing written.
    let e = env.fails(Some("dave"), &["exec", "note", "EX-00001", "hello"], 4);
    assert_eq!(e["kind"], "denied");
    // Empty: refused with what to do; too long: the limit; no such step: not found.
    let e = env.fails(Some("bob"), &["exec", "note", "EX-00001", "  "], 6);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("a note is required"),
        "{e}"
    );
    let long = "x".repeat(2_001);
    let e = env.fails(Some("bob"), &["exec", "note", "EX-00001", &long], 6);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("at most 2000 characters"),
        "{e}"
    );
    env.fails(
        Some("bob"),
        &["exec", "note", "EX-00001", "--step", "3", "x"],
        3,
    );
    assert_eq!(env.audit_count(), before + 2);

    // `exec show`: notes per step, in JSON and for people.
    let show = env.json(Some("dave"), &["exec", "show", "EX-00001"]);
    assert_eq!(show["steps"][1]["notes"][0]["author"], "carol");
    assert_eq!(show["operator"], "bob");
    assert!(show["newer_version"].is_null());
    let text = env.ok(Some("dave"), &["exec", "show", "EX-00001"]);
    assert!(text.contains("step 2 · @carol"), "{text}");
    assert!(text.contains("bundle is in the vault"), "{text}");

    // After the seal, a post-mortem note is still taken; the run stays aborted.
    env.ok(
        Some("bob"),
        &["exec", "abort", "EX-00001", "--reason", "window closed"],
    );
    let n = env.json(
        Some("bob"),
        &["exec", "note", "EX-00001", "retry on Monday"],
    );
    assert_eq!(n["status"], "aborted");
    assert_eq!(n["steps"][0]["notes"][1]["text"], "retry on Monday");
    env.fails(Some("bob"), &["exec", "done", "EX-00001"], 6);
}

#[test]
fn hand_over_and_take_over() {
    let env = with_run();
    env.ok(
        Some("alice"),
        &["user", "add", "erin", "--role", "operator"],
    );
    // Only the operator, an admin or the owner hands over; only to someone who may execute.
    let e = env.fails(
        Some("erin"),
        &["exec", "handoff", "EX-00001", "--to", "erin"],
        4,
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("the execution's operator"),
        "{e}"
    );
    let e = env.fails(
        Some("bob"),
        &["exec", "handoff", "EX-00001", "--to", "dave"],
        6,
    );
    assert!(
        e["message"].as_str().unwrap().contains("@dave is a member"),
        "{e}"
    );
    env.fails(
        Some("bob"),
        &["exec", "handoff", "EX-00001", "--to", "nobody"],
        3,
    );

    let h = env.json(
        Some("bob"),
        &["exec", "handoff", "EX-00001", "--to", "@erin"],
    );
    assert_eq!(h["operator"], "erin");
    assert_eq!(h["started_by"], "bob");
    assert_eq!(h["event"]["kind"], "handed_over");
    assert_eq!(h["event"]["to"], "erin");
    assert_eq!(h["handoffs"][0]["from"], "bob");
    assert_eq!(h["handoffs"][0]["to"], "erin");
    assert_eq!(h["handoffs"][0]["by"], "bob");
    let text = env.ok(
        Some("erin"),
        &["exec", "handoff", "EX-00001", "--to", "bob"],
    );
    assert!(
        text.contains("handed over by @erin to @bob; @bob is the operator now"),
        "{text}"
    );
    // Takeover: an operator is denied (exit 4); an admin becomes the operator.
    env.fails(Some("erin"), &["exec", "takeover", "EX-00001"], 4);
    let t = env.json(Some("carol"), &["exec", "takeover", "EX-00001"]);
    assert_eq!(t["operator"], "carol");
    assert_eq!(t["handoffs"].as_array().unwrap().len(), 3);
    assert_eq!(t["handoffs"][2]["takeover"], true);
    // The operator of this moment counts for approvals: carol (sre) now runs it and may not
    // approve step 2 herself.
    env.ok(Some("carol"), &["exec", "done", "EX-00001", "--step", "1"]);
    let e = env.fails(
        Some("carol"),
        &["exec", "approve", "EX-00001", "--step", "2"],
        4,
    );
    assert!(e["message"].as_str().unwrap().contains("operator"), "{e}");
    let text = env.ok(Some("bob"), &["exec", "show", "EX-00001"]);
    assert!(text.contains("operator @carol"), "{text}");
    assert!(text.contains("Taken over from @bob by @carol"), "{text}");
    // A second takeover by the operator changes nothing.
    env.fails(Some("carol"), &["exec", "takeover", "EX-00001"], 6);
}

#[test]
fn a_newer_published_version_is_reported_and_the_run_keeps_its_own() {
    let env = with_run();
    let mut newer = ROTATE.replace("Post in #ops", "Post in #ops and #edge");
    newer.push_str("\n## 3. Tell the team\n- role: operator\n- est: 1\n\nSay it is done.\n");
    let f = env.write("rotate2.md", &newer);
    env.ok(
        Some("alice"),
        &["runbook", "import", path_str(&f), "--into", "RB-00001"],
    );
    let show = env.json(Some("bob"), &["exec", "show", "EX-00001"]);
    assert_eq!(show["runbook_version"], 1);
    assert_eq!(show["newer_version"], 2);
    assert_eq!(show["newer_version_steps_changed"], 2);
    assert_eq!(show["steps"].as_array().unwrap().len(), 2);
    let text = env.ok(Some("bob"), &["exec", "show", "EX-00001"]);
    assert!(
        text.contains("v2 was published after this run started: 2 steps changed"),
        "{text}"
    );
    assert!(text.contains("vigilo runbook diff RB-00001 1 2"), "{text}");
    // `vigilo run` says it on the card, and the run walks its own version to the end.
    let r = env.run_stdin(
        Some("bob"),
        &["run", "EX-00001"],
        "n checked the diff\nd\nq\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("v2 was published after this run started"),
        "{}",
        r.stdout
    );
    let show = env.json(Some("bob"), &["exec", "show", "EX-00001"]);
    assert_eq!(show["steps"][0]["notes"][0]["text"], "checked the diff");
    assert_eq!(show["current_step"], 2);
    assert_eq!(show["runbook_version"], 1);
}
