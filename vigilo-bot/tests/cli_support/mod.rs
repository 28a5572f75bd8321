//! Running the real `vigilo` binary against a real SQLite file in a temporary folder.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A temporary folder with a database in it.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
}

/// What a run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// stdout as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// stderr as the `{"error":{…}}` document.
    pub fn error(&self) -> Value {
        let line = self.stderr.lines().last().unwrap_or("");
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stderr is not a JSON error ({e}):\n{}", self.stderr));
        v["error"].clone()
    }
}

impl Env {
    /// An empty folder (no database yet).
    pub fn empty() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("vigilo.db");
        Env { dir, db }
    }

    /// A workspace `acme` owned by alice, with bob (operator), carol (admin, team role sre)
    /// and dave (member).
    pub fn seeded() -> Env {
        let env = Env::empty();
        env.ok(
            None,
            &[
                "init",
                "--workspace",
                "acme",
                "--owner",
                "alice",
                "--name",
                "Alice",
            ],
        );
        env.ok(Some("alice"), &["user", "add", "bob", "--role", "operator"]);
        env.ok(
            Some("alice"),
            &[
                "user",
                "add",
                "carol",
                "--role",
                "admin",
                "--team-role",
                "sre",
            ],
        );
        env.ok(Some("alice"), &["user", "add", "dave", "--role", "member"]);
        env
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    fn command(&self, user: Option<&str>, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vigilo"));
        c.current_dir(self.dir.path())
            .env("VIGILO_DB", &self.db)
            .env_remove("VIGILO_WORKSPACE")
            .env_remove("VIGILO_USER")
            .env_remove("RUST_LOG")
            .env_remove("SLACK_BOT_TOKEN")
            .env_remove("SLACK_SIGNING_SECRET")
            .env_remove("SLACK_APP_TOKEN")
            .env("NO_COLOR", "1");
        if let Some(u) = user {
            c.args(["--as", u]);
        }
        c.args(args);
        c
    }

    /// Runs `vigilo [--as user] args…` with no input.
    pub fn run(&self, user: Option<&str>, args: &[&str]) -> Run {
        let out = self
            .command(user, args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run::from(out)
    }

    /// Runs with `input` on standard input.
    pub fn run_stdin(&self, user: Option<&str>, args: &[&str], input: &str) -> Run {
        let mut child = self
            .command(user, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        Run::from(child.wait_with_output().unwrap())
    }

    /// Runs and asserts exit 0; returns stdout.
    pub fn ok(&self, user: Option<&str>, args: &[&str]) -> String {
        let r = self.run(user, args);
        assert_eq!(
            r.code, 0,
            "vigilo {args:?} as {user:?} failed ({}):\nstdout: {}\nstderr: {}",
            r.code, r.stdout, r.stderr
        );
        r.stdout
    }

    /// Runs with `--json`, asserts exit 0 and returns the document.
    pub fn json(&self, user: Option<&str>, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let r = self.run(user, &a);
        assert_eq!(
            r.code, 0,
            "vigilo --json {args:?} as {user:?} failed ({}):\nstdout: {}\nstderr: {}",
            r.code, r.stdout, r.stderr
        );
        r.json()
    }

    /// Runs with `--json`, asserts exit `code` and returns the error document (kind, message).
    pub fn fails(&self, user: Option<&str>, args: &[&str], code: i32) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let r = self.run(user, &a);
        assert_eq!(
            r.code, code,
            "vigilo --json {args:?} as {user:?}: expected exit {code}, got {}:\nstdout: {}\nstderr: {}",
            r.code, r.stdout, r.stderr
        );
        assert!(
            r.stdout.is_empty() || code == 7,
            "an error printed on stdout: {}",
            r.stdout
        );
        r.error()
    }

    /// A connection to the database file, for checks and tampering.
    pub fn sqlite(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.db).unwrap()
    }

    /// How many audit entries the workspace has.
    pub fn audit_count(&self) -> i64 {
        self.sqlite()
            .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
            .unwrap()
    }
}

/// The spec's example runbook file.
pub const ROTATE: &str = r#"+++
title = "Rotate the TLS certificate on the edge proxies"
category = "security"
owner = "alice"          # optional; default: the importing user
published = true         # optional; default false
+++

Rotate the wildcard certificate before it expires.
Dashboard: https://grafana.example.com/d/edge

## 1. Announce the rotation
- role: operator
- est: 2
- expected: The on-call engineer acknowledges in #ops.

Post in #ops that the rotation starts and link this runbook.

## 2. Swap the certificate on the proxies
- role: sre
- est: 10
- approval: required
- destructive: yes
- verification: `curl -sI https://edge.example.com | grep -i expire`
- rollback: Re-deploy the previous certificate bundle from the vault.

Run the deploy job with the new bundle:

    deploy-cert --bundle new.pem --all
"#;

/// A small runbook file.
pub fn simple(title: &str, steps: &[(&str, u32)]) -> String {
    let mut s =
        format!("+++\ntitle = \"{title}\"\ncategory = \"ops\"\n+++\n\nWhat {title} does.\n");
    for (i, (t, est)) in steps.iter().enumerate() {
        s.push_str(&format!(
            "\n## {}. {t}\n- role: operator\n- est: {est}\n\nDo {t}.\n",
            i + 1
        ));
    }
    s
}

/// Asserts that `v` has every key of `keys`.
pub fn has_keys(v: &Value, keys: &[&str]) {
    for k in keys {
        assert!(v.get(*k).is_some(), "missing `{k}` in {v:#}");
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
