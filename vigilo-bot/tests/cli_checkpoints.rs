//! Signed checkpoints through the binary, against what a rogue administrator with the database
//! file can do that the chain alone cannot show: cut off the newest entries, restore an older
//! backup, rebuild the chain with valid hashes; and an edited or foreign checkpoint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use cli_support::{Env, ROTATE, path_str};
use serde_json::Value;
use vigilo_core::audit::{AuditEntry, compute_hash};

fn busy_env() -> Env {
    let env = Env::seeded();
    let f = env.write("rotate.md", ROTATE);
    env.ok(Some("alice"), &["runbook", "import", path_str(&f)]);
    env.ok(Some("bob"), &["exec", "start", "RB-00001"]);
    env.ok(Some("bob"), &["exec", "done", "EX-00001"]);
    env
}

/// `audit keygen` then `audit checkpoint --out`; returns (key path, checkpoint path).
fn key_and_checkpoint(env: &Env, name: &str) -> (String, String) {
    let key = env.path(&format!("{name}.key"));
    if !key.exists() {
        env.ok(None, &["audit", "keygen", "--out", path_str(&key)]);
    }
    let out = env.path(&format!("{name}.json"));
    env.ok(
        None,
        &[
            "audit",
            "checkpoint",
            "--key",
            path_str(&key),
            "--out",
            path_str(&out),
        ],
    );
    (path_str(&key).to_owned(), path_str(&out).to_owned())
}

fn verify_with(env: &Env, checkpoint: &str) -> cli_support::Run {
    env.run(
        None,
        &["--json", "audit", "verify", "--checkpoint", checkpoint],
    )
}

/// Drops the append-only triggers, as someone with the file can.
fn drop_triggers(c: &rusqlite::Connection) {
    c.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        .unwrap();
}

#[test]
fn keygen_writes_a_private_key_only_its_owner_reads() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::empty();
    let key = env.path("audit.key");
    let made = env.json(None, &["audit", "keygen", "--out", path_str(&key)]);
    let public = made["public_key"].as_str().unwrap();
    assert_eq!(public.len(), 64);
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .contains("BEGIN PRIVATE KEY")
    );
    let pubfile = std::fs::read_to_string(env.path("audit.key.pub")).unwrap();
    assert_eq!(pubfile.trim(), public);
    // Never overwritten; no database needed or created.
    env.fails(None, &["audit", "keygen", "--out", path_str(&key)], 6);
    assert!(!env.db.exists());
    // A key others can read is refused.
    let env = busy_env();
    let (key, _) = key_and_checkpoint(&env, "k");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = env.fails(None, &["audit", "checkpoint", "--key", &key], 6);
    assert!(e["message"].as_str().unwrap().contains("chmod 600"), "{e}");
}

#[test]
fn a_checkpoint_holds_while_the_chain_grows() {
    let env = busy_env();
    let (key, cp) = key_and_checkpoint(&env, "first");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&cp).unwrap()).unwrap();
    let one = &doc.as_array().unwrap()[0];
    for k in ["workspace", "seq", "head", "at", "public_key", "signature"] {
        assert!(one.get(k).is_some(), "checkpoint lacks {k}: {one}");
    }
    assert_eq!(one["seq"].as_i64().unwrap(), env.audit_count());
    // More work afterwards: the signed head is still in place.
    env.ok(
        Some("alice"),
        &["incident", "create", "--title", "Disk full on db-2"],
    );
    let r = verify_with(&env, &cp);
    assert_eq!(r.code, 0, "{r:?}");
    let v = r.json();
    assert_eq!(v["result"], "intact");
    assert_eq!(v["checkpoints"][0]["result"], "holds");
    // With the trusted key named, as a file and as hex.
    let pubfile = format!("{key}.pub");
    env.ok(
        None,
        &[
            "audit",
            "verify",
            "--checkpoint",
            &cp,
            "--trusted-key",
            &pubfile,
        ],
    );
    let hex = std::fs::read_to_string(&pubfile).unwrap();
    env.ok(
        None,
        &[
            "audit",
            "verify",
            "--checkpoint",
            &cp,
            "--trusted-key",
            hex.trim(),
        ],
    );
}

#[test]
fn an_edited_or_foreign_checkpoint_is_rejected() {
    let env = busy_env();
    let (key, cp) = key_and_checkpoint(&env, "mine");
    let text = std::fs::read_to_string(&cp).unwrap();
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    // Moving the signed seq back (to hide entries after it) breaks the signature.
    doc[0]["seq"] = Value::from(doc[0]["seq"].as_i64().unwrap() - 1);
    let edited = env.write("edited.json", &doc.to_string());
    let r = verify_with(&env, path_str(&edited));
    assert_eq!(r.code, 7, "{r:?}");
    assert!(r.stderr.contains("edited after signing"), "{}", r.stderr);
    // Garbage is not a checkpoint.
    let garbage = env.write("garbage.json", &text[..text.len() / 2]);
    assert_eq!(verify_with(&env, path_str(&garbage)).code, 7);
    // A checkpoint signed by someone else's key: fine alone, refused against the trusted key.
    let (_, theirs) = key_and_checkpoint(&env, "theirs");
    let r = env.run(
        None,
        &[
            "audit",
            "verify",
            "--checkpoint",
            &theirs,
            "--trusted-key",
            &format!("{key}.pub"),
        ],
    );
    assert_eq!(r.code, 7, "{r:?}");
    assert!(r.stderr.contains("not by the trusted key"), "{}", r.stderr);
}

#[test]
fn truncation_is_caught_by_a_checkpoint_only() {
    let env = busy_env();
    let (_, cp) = key_and_checkpoint(&env, "ckpt");
    let n = env.audit_count();
    let c = env.sqlite();
    drop_triggers(&c);
    c.execute("DELETE FROM audit WHERE seq > ?1", [n - 2])
        .unwrap();
    drop(c);
    // The shorter chain is consistent: the chain alone cannot tell.
    assert_eq!(
        env.json(None, &["audit", "verify"])["result"],
        "intact",
        "truncation is invisible from inside the chain"
    );
    let r = verify_with(&env, &cp);
    assert_eq!(r.code, 7, "{r:?}");
    assert!(
        r.stderr.contains(&format!("ends at entry {}", n - 2)) && r.stderr.contains("older backup"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_restored_older_backup_is_caught() {
    let env = busy_env();
    let backup = env.path("backup.db");
    // A backup taken with SQLite's own online backup (VACUUM INTO), then more work, then a
    // checkpoint of the newer state.
    env.sqlite()
        .execute("VACUUM INTO ?1", [path_str(&backup)])
        .unwrap();
    env.ok(
        Some("alice"),
        &["incident", "create", "--title", "Disk full on db-2"],
    );
    let (_, cp) = key_and_checkpoint(&env, "later");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", env.db.display()));
    }
    std::fs::copy(&backup, &env.db).unwrap();
    assert_eq!(env.json(None, &["audit", "verify"])["result"], "intact");
    let r = verify_with(&env, &cp);
    assert_eq!(r.code, 7, "{r:?}");
    assert!(r.stderr.contains("rolled back"), "{}", r.stderr);
}

#[test]
fn a_chain_rebuilt_with_valid_hashes_is_caught() {
    let env = busy_env();
    let (_, cp) = key_and_checkpoint(&env, "ckpt");
    // Rewrite entry 3 (bob's import becomes carol's) and re-hash every entry after it, as an
    // attacker who knows the format would: the chain verifies again on its own.
    let c = env.sqlite();
    drop_triggers(&c);
    let docs: Vec<(i64, String)> = c
        .prepare("SELECT seq, doc FROM audit ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut prev: Option<String> = None;
    for (seq, doc) in docs {
        let mut e: AuditEntry = serde_json::from_str(&doc).unwrap();
        if seq == 3 {
            e.details = serde_json::json!({ "rewritten": true });
        }
        if let Some(p) = &prev {
            e.prev_hash = p.clone();
        }
        e.hash = compute_hash(&e);
        prev = Some(e.hash.clone());
        c.execute(
            "UPDATE audit SET doc = ?1, hash = ?2 WHERE seq = ?3",
            rusqlite::params![serde_json::to_string(&e).unwrap(), e.hash, seq],
        )
        .unwrap();
    }
    drop(c);
    assert_eq!(
        env.json(None, &["audit", "verify"])["result"],
        "intact",
        "a rebuilt chain verifies on its own"
    );
    let r = verify_with(&env, &cp);
    assert_eq!(r.code, 7, "{r:?}");
    assert!(r.stderr.contains("rebuilt"), "{}", r.stderr);
}
