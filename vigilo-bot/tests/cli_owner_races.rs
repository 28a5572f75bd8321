//! Two owners taking each other's ownership at the same moment, as two real `vigilo`
//! processes: the invariant "a workspace always keeps an active owner" must hold across
//! processes, so it is checked inside the store's transaction, not only by the service before
//! it commits.
//!
//! Each round makes a fresh workspace owned by alice, with bob as a second owner and carol as a
//! member (who can always read the member list), then starts both commands at once (spawns both,
//! then waits): `--as alice user set-role bob admin` against `--as bob user set-role alice
//! admin`, or `user remove` of each other. Afterwards the workspace must have at least one
//! active owner, at most one command may have succeeded, and the other must have been told so
//! with exit 4 (denied), 5 (conflict) or 6 (refused) — never 1, never a crash. Every round is
//! run to the end before asserting, and the counts (winners per side, the losers' exit codes
//! and error kinds, rounds left without an owner) are printed on stderr.
//!
//! On SQLite all rounds share one database file (one workspace per round); on PostgreSQL one
//! scratch database of the server of `VIGILO_TEST_PG_URL` (skipped with a message without it).
//!
//! `VIGILO_RACE_ROUNDS` changes the number of rounds (default 100). `VIGILO_RACE_BIN` runs the
//! races against another `vigilo` binary: pointed at a build from before the store checked the
//! owner invariant (commit 602d029, which has no `user remove`, so only the `set_role` tests
//! apply), the `set_role` tests fail, with workspaces left without an owner.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use serde_json::Value;

#[cfg(feature = "postgres")]
const URL_VAR: &str = "VIGILO_TEST_PG_URL";

/// The binary under test.
fn binary() -> PathBuf {
    std::env::var_os("VIGILO_RACE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_vigilo")))
}

fn rounds() -> usize {
    std::env::var("VIGILO_RACE_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100)
}

/// Where the rounds run: a database (a SQLite path or a `postgres://` URL) and a working
/// directory for the processes.
struct Db<'a> {
    db: &'a str,
    dir: &'a Path,
}

/// What one process printed and how it ended.
#[derive(Debug)]
struct Run {
    /// The exit code; `None` when it was killed by a signal.
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// The `kind` of the `{"error":{…}}` document on stderr, or a placeholder.
    fn error_kind(&self) -> String {
        self.stderr
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<Value>(l).ok())
            .and_then(|v| v["error"]["kind"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "(no JSON error)".into())
    }
}

impl Db<'_> {
    /// `vigilo --json --db DB --workspace WS [--as USER] ARGS…`, not yet started.
    fn command(&self, ws: &str, user: Option<&str>, args: &[&str]) -> Command {
        let mut c = Command::new(binary());
        c.current_dir(self.dir)
            .env_remove("VIGILO_DB")
            .env_remove("VIGILO_WORKSPACE")
            .env_remove("VIGILO_USER")
            .env_remove("RUST_LOG")
            .env_remove("SLACK_BOT_TOKEN")
            .env_remove("SLACK_SIGNING_SECRET")
            .env_remove("SLACK_APP_TOKEN")
            .env("NO_COLOR", "1")
            .args(["--json", "--db", self.db, "--workspace", ws]);
        if let Some(u) = user {
            c.args(["--as", u]);
        }
        c.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn run(&self, ws: &str, user: Option<&str>, args: &[&str]) -> Run {
        Run::from(self.command(ws, user, args).output().unwrap())
    }

    fn ok(&self, ws: &str, user: Option<&str>, args: &[&str]) -> Run {
        let r = self.run(ws, user, args);
        assert_eq!(
            r.code,
            Some(0),
            "vigilo {args:?} as {user:?} in {ws}: {r:?}"
        );
        r
    }

    /// A workspace owned by alice and bob, with carol as a member.
    fn setup(&self, ws: &str) {
        self.ok(ws, None, &["workspace", "create", ws, "--owner", "alice"]);
        self.ok(
            ws,
            Some("alice"),
            &["user", "add", "bob", "--role", "owner"],
        );
        self.ok(
            ws,
            Some("alice"),
            &["user", "add", "carol", "--role", "member"],
        );
    }

    /// The handles of the workspace's active owners, read as carol.
    fn owners(&self, ws: &str) -> Vec<String> {
        let r = self.ok(ws, Some("carol"), &["user", "list"]);
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "owner" && m["removed_at"].is_null())
            .map(|m| m["handle"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// What the two commands of a round do to each other.
#[derive(Clone, Copy, Debug)]
enum Race {
    /// `user set-role <other> admin`.
    Demote,
    /// `user remove <other>`.
    Remove,
}

impl Race {
    fn args(self, other: &str) -> Vec<&str> {
        match self {
            Race::Demote => vec!["user", "set-role", other, "admin"],
            Race::Remove => vec!["user", "remove", other],
        }
    }
}

/// The counts over every round.
#[derive(Debug, Default)]
struct Tally {
    rounds: usize,
    alice_won: usize,
    bob_won: usize,
    neither_won: usize,
    both_won: usize,
    /// Exit code of each command that did not succeed.
    loser_codes: BTreeMap<i32, usize>,
    /// Error kind of each command that did not succeed.
    loser_kinds: BTreeMap<String, usize>,
    /// Rounds that ended without an active owner.
    no_owner: usize,
    /// Descriptions of what must not happen (zero owners, two winners, exit 1, a crash, …).
    violations: Vec<String>,
}

impl Tally {
    fn record(&mut self, ws: &str, alice: &Run, bob: &Run, owners: &[String]) {
        self.rounds += 1;
        let (a_ok, b_ok) = (alice.code == Some(0), bob.code == Some(0));
        match (a_ok, b_ok) {
            (true, true) => {
                self.both_won += 1;
                self.violations.push(format!(
                    "{ws}: both commands succeeded; owners now {owners:?}"
                ));
            }
            (true, false) => self.alice_won += 1,
            (false, true) => self.bob_won += 1,
            (false, false) => self.neither_won += 1,
        }
        for (who, r) in [("alice", alice), ("bob", bob)] {
            if r.code == Some(0) {
                continue;
            }
            *self.loser_kinds.entry(r.error_kind()).or_default() += 1;
            match r.code {
                Some(code) => {
                    *self.loser_codes.entry(code).or_default() += 1;
                    if ![4, 5, 6].contains(&code) {
                        self.violations.push(format!(
                            "{ws}: {who}'s command exited {code}, expected 0, 4, 5 or 6: {}",
                            r.stderr.trim()
                        ));
                    }
                }
                None => {
                    *self.loser_codes.entry(-1).or_default() += 1;
                    self.violations.push(format!(
                        "{ws}: {who}'s command was killed by a signal: {}",
                        r.stderr.trim()
                    ));
                }
            }
        }
        if owners.is_empty() {
            self.no_owner += 1;
            self.violations.push(format!(
                "{ws}: no active owner left (alice exited {:?}, bob exited {:?})",
                alice.code, bob.code
            ));
        }
    }

    fn report(&self, label: &str, elapsed: std::time::Duration) {
        eprintln!(
            "{label}: {} rounds in {:.1} s ({}): alice won {}, bob won {}, neither {}, both {}; \
             loser exit codes {:?}; loser error kinds {:?}; rounds without an owner: {}; \
             violations: {}",
            self.rounds,
            elapsed.as_secs_f64(),
            binary().display(),
            self.alice_won,
            self.bob_won,
            self.neither_won,
            self.both_won,
            self.loser_codes,
            self.loser_kinds,
            self.no_owner,
            self.violations.len()
        );
        for v in self.violations.iter().take(10) {
            eprintln!("  {v}");
        }
    }
}

/// Runs `rounds()` rounds of `race` on `db`, one fresh workspace each, then asserts.
fn races(label: &str, db: &Db<'_>, race: Race) {
    let start = Instant::now();
    let mut tally = Tally::default();
    for round in 0..rounds() {
        let ws = format!("race{round:04}");
        db.setup(&ws);
        let alice_args = race.args("bob");
        let bob_args = race.args("alice");
        let mut a = db.command(&ws, Some("alice"), &alice_args);
        let mut b = db.command(&ws, Some("bob"), &bob_args);
        // Both started before either is waited for.
        let a = a.spawn().unwrap();
        let b = b.spawn().unwrap();
        let alice = Run::from(a.wait_with_output().unwrap());
        let bob = Run::from(b.wait_with_output().unwrap());
        let owners = db.owners(&ws);
        tally.record(&ws, &alice, &bob, &owners);
    }
    tally.report(label, start.elapsed());
    assert!(
        tally.violations.is_empty(),
        "{label}: {} violations in {} rounds ({} without an owner); first: {:#?}",
        tally.violations.len(),
        tally.rounds,
        tally.no_owner,
        tally.violations.iter().take(5).collect::<Vec<_>>()
    );
    assert_eq!(tally.rounds, rounds());
}

fn sqlite_races(label: &str, race: Race) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("races.db");
    let db = Db {
        db: path.to_str().unwrap(),
        dir: dir.path(),
    };
    races(label, &db, race);
}

#[test]
fn sqlite_owners_demoting_each_other_leave_an_owner() {
    sqlite_races("sqlite set-role", Race::Demote);
}

#[test]
fn sqlite_owners_removing_each_other_leave_an_owner() {
    sqlite_races("sqlite remove", Race::Remove);
}

#[cfg(feature = "postgres")]
fn pg_races(test: &str, label: &str, race: Race) {
    use vigilo_store::postgres::ScratchDatabase;
    let Ok(admin) = std::env::var(URL_VAR) else {
        println!(
            "SKIPPED {test}: {URL_VAR} is not set, so there is no PostgreSQL server to test \
             against. Set {URL_VAR}=postgres://postgres@127.0.0.1:5432/postgres to run it."
        );
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let scratch = rt.block_on(ScratchDatabase::create(&admin)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = Db {
        db: scratch.url(),
        dir: dir.path(),
    };
    races(label, &db, race);
    rt.block_on(scratch.drop_database());
}

#[cfg(feature = "postgres")]
#[test]
fn pg_owners_demoting_each_other_leave_an_owner() {
    pg_races(
        "pg_owners_demoting_each_other_leave_an_owner",
        "postgres set-role",
        Race::Demote,
    );
}

#[cfg(feature = "postgres")]
#[test]
fn pg_owners_removing_each_other_leave_an_owner() {
    pg_races(
        "pg_owners_removing_each_other_leave_an_owner",
        "postgres remove",
        Race::Remove,
    );
}
