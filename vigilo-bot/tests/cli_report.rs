//! `vigilo exec report` and `vigilo audit verify --report` through the binary: a finished run's
//! report verifies in md and json; a changed character of the report, an audit entry behind it
//! edited in the SQLite file, or the run's stored runbook version edited, exit 7 naming what
//! differs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use cli_support::{Env, ROTATE, has_keys, path_str};

fn finished() -> Env {
    let env = Env::seeded();
    let f = env.write("rotate.md", ROTATE);
    env.ok(Some("alice"), &["runbook", "import", path_str(&f)]);
    env.ok(
        Some("alice"),
        &["incident", "create", "--title", "Certificate expiring"],
    );
    env.ok(
        Some("bob"),
        &["exec", "start", "RB-00001", "--incident", "INC-00001"],
    );
    env.ok(
        Some("bob"),
        &[
            "exec",
            "done",
            "EX-00001",
            "--note",
            "acknowledged by @dave, \"ok\"",
        ],
    );
    env.ok(
        Some("carol"),
        &["exec", "approve", "EX-00001", "--step", "2"],
    );
    env.ok(Some("bob"), &["exec", "done", "EX-00001", "--step", "2"]);
    env
}

/// Drops the audit table's guards, as someone editing the file directly would.
fn unguard(env: &Env) -> rusqlite::Connection {
    let c = env.sqlite();
    c.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        .unwrap();
    c
}

#[test]
fn a_finished_runs_report_verifies_in_md_and_json() {
    let env = finished();
    let md = env.ok(Some("dave"), &["exec", "report", "EX-00001"]);
    assert!(md.starts_with("<!-- vigilo execution report"), "{md}");
    assert!(
        md.contains("# EX-00001: Rotate the TLS certificate on the edge proxies"),
        "{md}"
    );
    assert!(md.contains("| Incident | INC-00001 |"), "{md}");
    assert!(md.contains("`@carol` as sre at "), "{md}");
    let md_file = env.write("EX-00001.md", &md);
    let out = env.ok(None, &["audit", "verify", "--report", path_str(&md_file)]);
    assert!(out.contains("verified"), "{out}");

    let json_file = env.path("EX-00001.json");
    env.ok(
        Some("bob"),
        &[
            "exec",
            "report",
            "EX-00001",
            "--format",
            "json",
            "-o",
            path_str(&json_file),
        ],
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_file).unwrap()).unwrap();
    has_keys(&doc, &["execution", "steps", "audit_head"]);
    has_keys(
        &doc["execution"],
        &[
            "key",
            "runbook",
            "version",
            "version_hash",
            "operator",
            "handoffs",
            "status",
            "started_at",
            "completed_at",
            "change",
            "incident",
        ],
    );
    for step in doc["steps"].as_array().unwrap() {
        has_keys(
            step,
            &[
                "order",
                "title",
                "status",
                "by",
                "at",
                "est_minutes",
                "actual_minutes",
                "note",
                "approvals",
                "notes",
                "audit",
            ],
        );
    }
    assert_eq!(doc["execution"]["status"], "completed");
    assert_eq!(doc["execution"]["operator"], "bob");
    assert_eq!(doc["execution"]["incident"], "INC-00001");
    assert_eq!(doc["steps"][1]["approvals"][0]["by"], "carol");
    assert_eq!(doc["steps"][1]["approvals"][0]["role"], "sre");
    has_keys(&doc["audit_head"], &["seq", "hash"]);
    let v = env.json(None, &["audit", "verify", "--report", path_str(&json_file)]);
    assert_eq!(v["result"], "verified", "{v}");
    assert_eq!(v["execution"], "EX-00001");
    // `--json` alone prints the JSON report.
    let same = env.json(Some("bob"), &["exec", "report", "EX-00001"]);
    assert_eq!(same, doc);

    // CSV: a header and one row per step; not verifiable (exit 6, saying why).
    let csv = env.ok(
        Some("bob"),
        &["exec", "report", "EX-00001", "--format", "csv"],
    );
    let rows: Vec<&str> = csv.trim_end().split("\r\n").collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(
        rows[1].contains("\"acknowledged by @dave, \"\"ok\"\"\""),
        "{csv}"
    );
    let csv_file = env.write("EX-00001.csv", &csv);
    let e = env.fails(
        None,
        &["audit", "verify", "--report", path_str(&csv_file)],
        6,
    );
    assert!(e["message"].as_str().unwrap().contains("CSV"), "{e}");

    // Mistakes are named.
    env.fails(Some("bob"), &["exec", "report", "EX-00042"], 3);
    env.fails(None, &["audit", "verify", "--report", "nowhere.md"], 3);
    env.fails(
        Some("bob"),
        &["exec", "report", "EX-00001", "--format", "pdf"],
        2,
    );
}

#[test]
fn a_changed_character_of_the_report_exits_7_naming_it() {
    let env = finished();
    let md = env.ok(Some("bob"), &["exec", "report", "EX-00001"]);
    // Who did step 2.
    let line = md
        .lines()
        .find(|l| l.starts_with("- **Status:** done by `@bob`") && md.contains(l))
        .unwrap();
    let edited = md.replacen(line, &line.replace("@bob", "@bot"), 1);
    let f = env.write("edited.md", &edited);
    let r = env.run(None, &["audit", "verify", "--report", path_str(&f)]);
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(r.stderr.contains("step 1 `Status`"), "{}", r.stderr);
    assert!(
        r.stderr.contains("@bot") && r.stderr.contains("@bob"),
        "{}",
        r.stderr
    );
    // One digit of a minute count in the JSON report.
    let json = env.ok(
        Some("bob"),
        &["exec", "report", "EX-00001", "--format", "json"],
    );
    let edited = json.replacen("\"est_minutes\": 10", "\"est_minutes\": 11", 1);
    assert_ne!(edited, json);
    let f = env.write("edited.json", &edited);
    let r = env.run(
        None,
        &["--json", "audit", "verify", "--report", path_str(&f)],
    );
    assert_eq!(r.code, 7, "{}", r.stderr);
    let doc = r.json();
    assert_eq!(doc["result"], "tampered");
    assert!(
        doc["problem"]
            .as_str()
            .unwrap()
            .contains("step 2 `est_minutes`"),
        "{doc}"
    );
}

#[test]
fn an_edited_entry_behind_the_report_exits_7() {
    let env = finished();
    let text = env.ok(
        Some("bob"),
        &["exec", "report", "EX-00001", "--format", "json"],
    );
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let report = env.write("EX-00001.json", &text);
    let md = env.write(
        "EX-00001.md",
        &env.ok(Some("bob"), &["exec", "report", "EX-00001"]),
    );
    env.ok(None, &["audit", "verify", "--report", path_str(&report)]);
    // The note of step 1, changed in the entry that records it.
    let seq = json["steps"][0]["audit"][0]["seq"].as_i64().unwrap();
    {
        let c = unguard(&env);
        let doc: String = c
            .query_row("SELECT doc FROM audit WHERE seq = ?1", [seq], |r| r.get(0))
            .unwrap();
        assert!(doc.contains("acknowledged by"), "{doc}");
        c.execute(
            "UPDATE audit SET doc = ?1 WHERE seq = ?2",
            rusqlite::params![doc.replace("acknowledged by", "acknowledged, by"), seq],
        )
        .unwrap();
    }
    for file in [&report, &md] {
        let r = env.run(None, &["audit", "verify", "--report", path_str(file)]);
        assert_eq!(r.code, 7, "{}", r.stderr);
        assert!(
            r.stderr.contains(&format!("broken at entry {seq}")),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn an_edited_runbook_version_behind_the_report_exits_7() {
    let env = finished();
    let md = env.write(
        "EX-00001.md",
        &env.ok(Some("bob"), &["exec", "report", "EX-00001"]),
    );
    env.ok(None, &["audit", "verify", "--report", path_str(&md)]);
    let c = env.sqlite();
    let doc: String = c
        .query_row(
            "SELECT doc FROM runbook_versions WHERE version = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    c.execute(
        "UPDATE runbook_versions SET doc = ?1 WHERE version = 1",
        [doc.replacen("\"est_minutes\":10", "\"est_minutes\":1", 1)],
    )
    .unwrap();
    let r = env.run(None, &["audit", "verify", "--report", path_str(&md)]);
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(r.stderr.contains("RB-00001 v1 now hashes"), "{}", r.stderr);
    // Reading the report now says so too, as tampering.
    let r = env.run(Some("bob"), &["exec", "report", "EX-00001"]);
    assert_eq!(r.code, 7, "{}", r.stderr);
}
