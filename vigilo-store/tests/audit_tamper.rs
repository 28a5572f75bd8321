//! The audit trail against a rogue administrator: someone with the SQLite file, or superuser
//! rights on the PostgreSQL server, who drops the append-only triggers and edits the `audit`
//! table with raw SQL, one stored column at a time.
//!
//! Every case builds a realistic trail through the real service ([`Vigilo`] over the store: a
//! workspace, an operator and an admin, a runbook with a gated step, published; an incident and
//! a change; an execution linking all three, a step done, the gated step approved by the admin,
//! then done), edits one entry outside Vigilo, and asserts what the brief of the column checks
//! promises:
//!
//! - `verify_audit` answers [`AuditVerdict::Tampered`] naming the edited entry and the column;
//! - a filtered `audit_entries` that returns the edited row after the edit, and an unfiltered
//!   one, fail with [`ErrorKind::Tampered`], never `Ok` with the edited row.
//!
//! The `*_hidden` modules ask more of the lists: a filter that returned the entry *before* the
//! edit must not answer `Ok` afterwards with a re-sealed (edited, hash recomputed) entry, nor
//! without an entry that was deleted or moved to another workspace: each list checks every
//! returned entry's successor.
//!
//! The `*_left_to_verify` modules are the edits no list can see: an edit of `actor`, `at`, or a
//! link moves the row out of the filters that used to find it, and a filter cannot report what
//! it does not return. That is what the full check is for (`audit verify`, and the Slack bot's
//! scheduled check with its alert): these tests show the list answering without the row, and
//! `verify_audit` naming it.
//!
//! The same cases run on a SQLite file (the store closed, the file edited with a second
//! rusqlite connection, the store opened again) and on the real PostgreSQL server of
//! `VIGILO_TEST_PG_URL` (a scratch schema per case, edited through a plain tokio-postgres
//! client while the store stays connected). Without `VIGILO_TEST_PG_URL` the PostgreSQL cases
//! say they were skipped, and pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use vigilo_core::audit::{AuditEntry, compute_hash};
use vigilo_core::clock::ManualClock;
use vigilo_core::error::{Error, ErrorKind};
use vigilo_core::execution::machine::Command;
use vigilo_core::ids::{Key, KeyKind, UserId, WorkspaceId};
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::runbook::{RunbookInput, StepInput};
use vigilo_core::service::{
    AuditFilter, AuditVerdict, CreateRunbook, NewMember, StartOptions, Vigilo, Who,
};
use vigilo_core::store::{AuditQuery, Store};
use vigilo_store::{SqliteOptions, SqliteStore};

#[cfg(feature = "postgres")]
use vigilo_store::postgres::{PgOptions, PgStore, ScratchDatabase};

/// The variable naming the admin URL of the test server.
#[cfg(feature = "postgres")]
const URL_VAR: &str = "VIGILO_TEST_PG_URL";

// ---------------------------------------------------------------------------------------------
// The two stores, and raw access to them
// ---------------------------------------------------------------------------------------------

/// Which store a case runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    #[cfg(feature = "postgres")]
    Postgres,
}

/// One raw statement, in each store's dialect.
#[derive(Clone, Debug)]
struct Sql {
    sqlite: String,
    pg: String,
}

impl Sql {
    /// A statement both dialects spell the same way.
    fn same(sql: impl Into<String>) -> Self {
        let sql = sql.into();
        Self {
            sqlite: sql.clone(),
            pg: sql,
        }
    }

    fn each(sqlite: impl Into<String>, pg: impl Into<String>) -> Self {
        Self {
            sqlite: sqlite.into(),
            pg: pg.into(),
        }
    }
}

/// The database behind a case.
enum Db {
    Sqlite {
        path: PathBuf,
        store: Option<Arc<SqliteStore>>,
        _dir: tempfile::TempDir,
    },
    #[cfg(feature = "postgres")]
    Pg {
        store: Arc<PgStore>,
        client: tokio_postgres::Client,
        _db: ScratchDatabase,
    },
}

/// A store with the trail built in it.
struct Harness {
    // Dropped first: the service holds the store.
    vigilo: Option<Vigilo>,
    db: Db,
    clock: Arc<ManualClock>,
    t: Trail,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.vigilo = None;
        #[cfg(feature = "postgres")]
        if let Db::Pg { store, .. } = &self.db {
            store.close();
        }
    }
}

/// The admin URL, or `None` after saying plainly that the test is skipped (as the other
/// PostgreSQL tests of this crate do).
#[cfg(feature = "postgres")]
fn admin_url(test: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) => Some(url),
        Err(_) => {
            println!(
                "SKIPPED {test}: {URL_VAR} is not set, so there is no PostgreSQL server to test \
                 against. Set {URL_VAR}=postgres://postgres@127.0.0.1:5432/postgres to run it."
            );
            None
        }
    }
}

impl Harness {
    /// A fresh store with the trail built through the service, or `None` when the case is
    /// skipped (PostgreSQL without a server).
    async fn start(backend: Backend, test: &str) -> Option<Self> {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap(),
        ));
        let (db, store): (Db, Arc<dyn Store>) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("vigilo.db");
                let store = Arc::new(
                    SqliteStore::open(&path, SqliteOptions::default())
                        .await
                        .unwrap(),
                );
                (
                    Db::Sqlite {
                        path,
                        store: Some(store.clone()),
                        _dir: dir,
                    },
                    store,
                )
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                let admin = admin_url(test)?;
                let db = ScratchDatabase::create_schema(&admin).await.unwrap();
                let store = Arc::new(
                    PgStore::connect(db.url(), PgOptions::default().max_connections(4))
                        .await
                        .unwrap(),
                );
                let (client, conn) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                (
                    Db::Pg {
                        store: store.clone(),
                        client,
                        _db: db,
                    },
                    store,
                )
            }
        };
        let _ = test;
        let vigilo = Vigilo::with_clock(store.clone(), clock.clone());
        let t = Trail::build(&vigilo, &clock, &*store).await;
        Some(Self {
            vigilo: Some(vigilo),
            db,
            clock,
            t,
        })
    }

    fn vigilo(&self) -> &Vigilo {
        self.vigilo.as_ref().expect("the service is open")
    }

    /// Runs `stmts` on the database as its administrator would, outside Vigilo, after dropping
    /// the append-only triggers when `drop_triggers`; returns each statement's row count or
    /// error. SQLite: the store is closed, the file edited through a connection of its own, the
    /// store opened again. PostgreSQL: a plain client on the scratch schema, the store stays
    /// connected.
    async fn raw(&mut self, drop_triggers: bool, stmts: &[Sql]) -> Vec<Result<u64, String>> {
        match &mut self.db {
            Db::Sqlite { path, store, .. } => {
                self.vigilo = None;
                let owned = Arc::try_unwrap(store.take().expect("the store is open"))
                    .expect("nothing else holds the store");
                owned.close().await;
                let c = rusqlite::Connection::open(&*path).unwrap();
                if drop_triggers {
                    c.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
                        .unwrap();
                }
                let out = stmts
                    .iter()
                    .map(|s| {
                        c.execute(&s.sqlite, [])
                            .map(|n| n as u64)
                            .map_err(|e| e.to_string())
                    })
                    .collect();
                c.close().map_err(|(_, e)| e).unwrap();
                let reopened = Arc::new(
                    SqliteStore::open(&*path, SqliteOptions::default())
                        .await
                        .unwrap(),
                );
                *store = Some(reopened.clone());
                self.vigilo = Some(Vigilo::with_clock(reopened, self.clock.clone()));
                out
            }
            #[cfg(feature = "postgres")]
            Db::Pg { client, .. } => {
                if drop_triggers {
                    client
                        .batch_execute("DROP TRIGGER audit_no_update_or_delete ON audit")
                        .await
                        .unwrap();
                }
                let mut out = Vec::new();
                for s in stmts {
                    out.push(client.execute(&s.pg, &[]).await.map_err(|e| e.to_string()));
                }
                out
            }
        }
    }

    /// Drops the triggers and runs `stmts`, each of which must change exactly one row.
    async fn tamper(&mut self, stmts: &[Sql]) {
        let done = self.raw(true, stmts).await;
        for (s, r) in stmts.iter().zip(done) {
            assert_eq!(r, Ok(1), "the edit {s:?} must change one row");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The trail
// ---------------------------------------------------------------------------------------------

/// The sequence numbers of the trail's entries in workspace `acme`.
#[derive(Clone, Copy, Debug)]
struct Seqs {
    ws_created: u64,
    oscar_added: u64,
    ada_added: u64,
    rb_created: u64,
    rb_published: u64,
    incident: u64,
    change: u64,
    started: u64,
    step1_done: u64,
    approved: u64,
    step2_done: u64,
}

/// What the service wrote, as read back before any edit.
struct Trail {
    ws: WorkspaceId,
    other_ws: WorkspaceId,
    owner: Who,
    operator: Who,
    admin: Who,
    other_owner: Who,
    operator_id: UserId,
    admin_id: UserId,
    rb: Key,
    ex: Key,
    cr: Key,
    inc: Key,
    /// A moment before the first entry.
    start: DateTime<Utc>,
    entries: Vec<AuditEntry>,
    s: Seqs,
}

impl Trail {
    async fn build(v: &Vigilo, clock: &ManualClock, store: &dyn Store) -> Trail {
        let start = v.now();
        let tick = || clock.advance(Duration::minutes(1));
        tick();
        let (ws, olivia) = v
            .create_workspace("acme", "olivia", "Olivia Owner")
            .await
            .unwrap();
        let owner = Who::new(ws.id, olivia.id);
        let member = |handle: &str, name: &str, role| NewMember {
            handle: handle.into(),
            display_name: name.into(),
            role,
            team_roles: Vec::new(),
            chat_identity: None,
        };
        tick();
        let (oscar, _) = v
            .add_member(
                &owner,
                member("oscar", "Oscar Operator", WorkspaceRole::Operator),
            )
            .await
            .unwrap();
        tick();
        let (ada, _) = v
            .add_member(&owner, member("ada", "Ada Admin", WorkspaceRole::Admin))
            .await
            .unwrap();
        let operator = Who::new(ws.id, oscar.id);
        let admin = Who::new(ws.id, ada.id);
        tick();
        let rb = v
            .create_runbook(
                &owner,
                RunbookInput {
                    title: "Fail over the primary database".into(),
                    description: "When the primary is unreachable".into(),
                    category: "database".into(),
                    steps: vec![
                        StepInput {
                            title: "Announce the fail-over".into(),
                            description: "Post in #ops".into(),
                            est_minutes: 2,
                            ..StepInput::default()
                        },
                        StepInput {
                            title: "Promote the replica".into(),
                            description: "`pg_ctl promote`".into(),
                            owner_role: "admin".into(),
                            est_minutes: 10,
                            requires_approval: true,
                            is_destructive: true,
                            ..StepInput::default()
                        },
                    ],
                },
                CreateRunbook::default(),
            )
            .await
            .unwrap();
        tick();
        v.set_published(&owner, rb.key, true).await.unwrap();
        tick();
        let inc = v
            .create_incident(&operator, "Primary database unreachable")
            .await
            .unwrap();
        tick();
        let cr = v
            .create_change(&operator, "Fail over to the replica", "The primary is gone")
            .await
            .unwrap();
        tick();
        let ex = v
            .start_execution(
                &operator,
                rb.key,
                StartOptions {
                    change: Some(cr.key),
                    incident: Some(inc.key),
                    ..StartOptions::default()
                },
            )
            .await
            .unwrap();
        tick();
        v.act(
            &operator,
            ex.key,
            Command::Done {
                step: 1,
                note: Some("announced in #ops".into()),
            },
        )
        .await
        .unwrap();
        tick();
        v.act(&admin, ex.key, Command::Approve { step: 2 })
            .await
            .unwrap();
        tick();
        v.act(
            &operator,
            ex.key,
            Command::Done {
                step: 2,
                note: Some("replica promoted".into()),
            },
        )
        .await
        .unwrap();
        tick();
        let (other, gus) = v
            .create_workspace("globex", "gus", "Gus Owner")
            .await
            .unwrap();

        let entries = store.audit(ws.id, &AuditQuery::default()).await.unwrap();
        let seq = |action: &str, nth: usize| -> u64 {
            entries
                .iter()
                .filter(|e| e.action == action)
                .nth(nth)
                .unwrap_or_else(|| panic!("no entry {action} #{nth} in {entries:#?}"))
                .seq
        };
        let s = Seqs {
            ws_created: seq("workspace.created", 0),
            oscar_added: seq("member.added", 0),
            ada_added: seq("member.added", 1),
            rb_created: seq("runbook.created", 0),
            rb_published: seq("runbook.published", 0),
            incident: seq("incident.created", 0),
            change: seq("change.created", 0),
            started: seq("execution.started", 0),
            step1_done: seq("execution.step_done", 0),
            approved: seq("execution.step_approved", 0),
            step2_done: seq("execution.step_done", 1),
        };
        let t = Trail {
            ws: ws.id,
            other_ws: other.id,
            owner,
            operator,
            admin,
            other_owner: Who::new(other.id, gus.id),
            operator_id: oscar.id,
            admin_id: ada.id,
            rb: rb.key,
            ex: ex.key,
            cr: cr.key,
            inc: inc.key,
            start,
            entries,
            s,
        };
        // The trail is what the cases rely on: one entry per change, in this order, with
        // actors, targets and links.
        assert_eq!(t.entries.len(), 11, "{:#?}", t.entries);
        assert_eq!(
            [
                s.ws_created,
                s.oscar_added,
                s.ada_added,
                s.rb_created,
                s.rb_published,
                s.incident,
                s.change,
                s.started,
                s.step1_done,
                s.approved,
                s.step2_done
            ],
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
        );
        let a = t.entry(s.approved);
        assert_eq!(a.actor, Some(ada.id));
        assert_eq!(a.target, ex.key.to_string());
        assert_eq!(a.links.runbook, Some(rb.key));
        assert_eq!(a.links.change, Some(cr.key));
        assert_eq!(a.links.incident, Some(inc.key));
        assert_eq!(a.links.execution, Some(ex.key));
        assert_eq!(a.details["approver_role"], "admin");
        t
    }

    fn entry(&self, seq: u64) -> &AuditEntry {
        self.entries.iter().find(|e| e.seq == seq).unwrap()
    }

    /// `WHERE` of entry `seq` of workspace `acme`.
    fn row(&self, seq: i64) -> String {
        format!("workspace_id = '{}' AND seq = {seq}", self.ws)
    }

    /// An `UPDATE` of entry `seq` of `acme`.
    fn update(&self, seq: u64, set: &str) -> Sql {
        Sql::same(format!(
            "UPDATE audit SET {set} WHERE {}",
            self.row(seq as i64)
        ))
    }
}

fn by_target(key: impl ToString) -> AuditFilter {
    AuditFilter {
        target: Some(key.to_string()),
        ..AuditFilter::default()
    }
}

fn by_actor(handle: &str) -> AuditFilter {
    AuditFilter {
        actor: Some(handle.into()),
        ..AuditFilter::default()
    }
}

fn other_key(kind: KeyKind) -> Key {
    Key::new(kind, 99)
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

/// One edit and what must notice it.
struct Case {
    /// The raw edit.
    edits: Vec<Sql>,
    /// The workspaces to verify, and what each verdict's problem must say.
    verdicts: Vec<(WorkspaceId, String)>,
    /// The seq a verdict or an error may name (the edited entry's, original or new).
    seqs: Vec<u64>,
    /// Lists that return the edited row after the edit (filtered, and unfiltered): each must
    /// fail with `Tampered`.
    lists: Vec<(String, Who, AuditFilter)>,
    /// Lists that returned the entry before the edit: none may answer `Ok` without it (or with
    /// it forged) afterwards.
    original: Vec<(String, Who, AuditFilter)>,
}

impl Case {
    /// An edit of one column of entry `seq` of `acme`, whose verdict names `column`.
    fn column(t: &Trail, seq: u64, column: &str, edit: Sql) -> Self {
        Case {
            edits: vec![edit],
            verdicts: vec![(t.ws, format!("`{column}`"))],
            seqs: vec![seq],
            lists: vec![("unfiltered".into(), t.owner, AuditFilter::default())],
            original: Vec::new(),
        }
    }

    fn list(mut self, label: &str, who: Who, f: AuditFilter) -> Self {
        self.lists.push((label.into(), who, f));
        self
    }

    fn originally(mut self, label: &str, who: Who, f: AuditFilter) -> Self {
        self.original.push((label.into(), who, f));
        self
    }
}

/// `workspace_id`: the approval moved into another workspace (whose chain is shorter, so the
/// key `(workspace_id, seq)` is free there).
fn workspace_moved(t: &Trail) -> Case {
    let a = t.s.approved;
    Case {
        edits: vec![t.update(a, &format!("workspace_id = '{}'", t.other_ws))],
        verdicts: vec![
            // Where it arrived: the column says globex, the hashed entry acme.
            (t.other_ws, "`workspace_id`".into()),
            // Where it left: a gap.
            (t.ws, format!("entry {a} is missing")),
        ],
        seqs: vec![a],
        lists: vec![
            (
                "globex, unfiltered".into(),
                t.other_owner,
                AuditFilter::default(),
            ),
            (
                "globex, by target EX".into(),
                t.other_owner,
                by_target(t.ex),
            ),
        ],
        original: vec![
            ("acme, unfiltered".into(), t.owner, AuditFilter::default()),
            ("acme, by target EX".into(), t.owner, by_target(t.ex)),
        ],
    }
}

/// `seq`: the approval renumbered past the end of the chain.
fn seq_renumbered(t: &Trail) -> Case {
    let a = t.s.approved;
    let mut c = Case::column(t, a, "seq", t.update(a, "seq = 1000"))
        .list("by target EX", t.owner, by_target(t.ex))
        .list(
            "after seq 11",
            t.owner,
            AuditFilter {
                after_seq: 11,
                ..AuditFilter::default()
            },
        );
    c.seqs.push(1000);
    c
}

/// `id`: another id.
fn id_replaced(t: &Trail) -> Case {
    let id = uuid::Uuid::now_v7();
    Case::column(
        t,
        t.s.approved,
        "id",
        t.update(t.s.approved, &format!("id = '{id}'")),
    )
    .list("by target EX", t.owner, by_target(t.ex))
}

/// `at`: moved to 1970.
fn at_1970(t: &Trail) -> Case {
    let a = t.s.approved;
    let edit = Sql::each(
        format!("UPDATE audit SET at = 0 WHERE {}", t.row(a as i64)),
        format!(
            "UPDATE audit SET at = '1970-01-01T00:00:00Z' WHERE {}",
            t.row(a as i64)
        ),
    );
    Case::column(t, a, "at", edit)
        .list(
            "since 1970, until the trail began",
            t.owner,
            AuditFilter {
                since: Some(Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap()),
                until: Some(t.start),
                ..AuditFilter::default()
            },
        )
        .originally(
            "since the approval",
            t.owner,
            AuditFilter {
                since: Some(t.entry(a).at),
                ..AuditFilter::default()
            },
        )
}

/// `actor`: the admin's approval handed to the operator.
fn actor_moved(t: &Trail) -> Case {
    let a = t.s.approved;
    Case::column(
        t,
        a,
        "actor",
        t.update(a, &format!("actor = '{}'", t.operator_id)),
    )
    .list("by actor oscar", t.owner, by_actor("oscar"))
    .originally("by actor ada", t.owner, by_actor("ada"))
}

/// `link_execution`: the same key written in lower case, so a filter on the canonical key no
/// longer finds the row while a lenient comparison would call it equal.
fn link_recased(t: &Trail) -> Case {
    let a = t.s.approved;
    Case::column(
        t,
        a,
        "link_execution",
        t.update(a, "link_execution = lower(link_execution)"),
    )
    .list("unfiltered", t.owner, AuditFilter::default())
}

/// `actor`: erased.
fn actor_nulled(t: &Trail) -> Case {
    let a = t.s.approved;
    Case::column(t, a, "actor", t.update(a, "actor = NULL"))
        .list("by target EX", t.owner, by_target(t.ex))
        .originally("by actor ada", t.owner, by_actor("ada"))
}

/// `action`: the approval made a skip.
fn action_changed(t: &Trail) -> Case {
    let a = t.s.approved;
    Case::column(
        t,
        a,
        "action",
        t.update(a, "action = 'execution.step_skipped'"),
    )
    .list("by target EX", t.owner, by_target(t.ex))
}

/// `target` alone (the entry still links the execution).
fn target_changed(t: &Trail) -> Case {
    let a = t.s.approved;
    let new = other_key(KeyKind::Execution);
    Case::column(t, a, "target", t.update(a, &format!("target = '{new}'")))
        .list("by the new target", t.owner, by_target(new))
        .list("by the old target (still linked)", t.owner, by_target(t.ex))
}

/// `target` with its link, `link_execution`: the entry moved to another execution.
fn target_and_link_changed(t: &Trail) -> Case {
    let a = t.s.approved;
    let new = other_key(KeyKind::Execution);
    Case::column(
        t,
        a,
        "target",
        t.update(a, &format!("target = '{new}', link_execution = '{new}'")),
    )
    .list("by the new target", t.owner, by_target(new))
    .originally("by target EX", t.owner, by_target(t.ex))
}

/// `link_runbook`: another runbook.
fn link_runbook_changed(t: &Trail) -> Case {
    let a = t.s.approved;
    let new = other_key(KeyKind::Runbook);
    Case::column(
        t,
        a,
        "link_runbook",
        t.update(a, &format!("link_runbook = '{new}'")),
    )
    .list("by the new runbook", t.owner, by_target(new))
    .originally("by target RB", t.owner, by_target(t.rb))
}

/// `link_change`: another change.
fn link_change_changed(t: &Trail) -> Case {
    let a = t.s.approved;
    let new = other_key(KeyKind::Change);
    Case::column(
        t,
        a,
        "link_change",
        t.update(a, &format!("link_change = '{new}'")),
    )
    .list("by the new change", t.owner, by_target(new))
    .originally("by target CR", t.owner, by_target(t.cr))
}

/// `link_incident`: another incident.
fn link_incident_changed(t: &Trail) -> Case {
    let a = t.s.approved;
    let new = other_key(KeyKind::Incident);
    Case::column(
        t,
        a,
        "link_incident",
        t.update(a, &format!("link_incident = '{new}'")),
    )
    .list("by the new incident", t.owner, by_target(new))
    .originally("by target INC", t.owner, by_target(t.inc))
}

/// `link_execution` alone (the target still names the execution).
fn link_execution_changed(t: &Trail) -> Case {
    let a = t.s.approved;
    let new = other_key(KeyKind::Execution);
    Case::column(
        t,
        a,
        "link_execution",
        t.update(a, &format!("link_execution = '{new}'")),
    )
    .list("by the new execution", t.owner, by_target(new))
    .list("by target EX", t.owner, by_target(t.ex))
}

/// `hash`: another entry's hash.
fn hash_replaced(t: &Trail) -> Case {
    let a = t.s.approved;
    let other = &t.entry(t.s.step2_done).hash;
    Case::column(t, a, "hash", t.update(a, &format!("hash = '{other}'"))).list(
        "by target EX",
        t.owner,
        by_target(t.ex),
    )
}

/// `doc`: a detail edited inside the JSON (still valid JSON, still an entry): the approval
/// said to satisfy `owner` instead of `admin`.
fn doc_detail_edited(t: &Trail) -> Case {
    let a = t.s.approved;
    let row = t.row(a as i64);
    let edit = Sql::each(
        format!(
            "UPDATE audit SET doc = json_set(doc, '$.details.approver_role', 'owner') WHERE {row}"
        ),
        format!(
            "UPDATE audit SET doc = jsonb_set(doc::jsonb, '{{details,approver_role}}', '\"owner\"')::text WHERE {row}"
        ),
    );
    let mut c = Case::column(t, a, "doc", edit).list("by target EX", t.owner, by_target(t.ex));
    c.verdicts = vec![(t.ws, "do not match its hash".into())];
    c
}

/// `doc` and `hash` rewritten together, the hash recomputed (the scheme is public, unkeyed
/// SHA-256): the approval's detail edited and re-sealed in place. The entry checks against
/// itself; the next entry's previous-hash no longer matches.
fn doc_resealed(t: &Trail) -> Case {
    let a = t.s.approved;
    let mut e = t.entry(a).clone();
    e.details["approver_role"] = serde_json::json!("owner");
    e.hash = compute_hash(&e);
    let doc = serde_json::to_string(&e).unwrap().replace('\'', "''");
    let next = t.s.step2_done;
    Case {
        edits: vec![t.update(a, &format!("doc = '{doc}', hash = '{}'", e.hash))],
        verdicts: vec![(t.ws, "previous-hash does not match".into())],
        seqs: vec![next],
        lists: Vec::new(),
        original: vec![
            ("by target EX".into(), t.owner, by_target(t.ex)),
            ("by actor ada".into(), t.owner, by_actor("ada")),
        ],
    }
}

/// An entry in the middle deleted.
fn entry_deleted(t: &Trail) -> Case {
    let d = t.s.step1_done;
    Case {
        edits: vec![Sql::same(format!(
            "DELETE FROM audit WHERE {}",
            t.row(d as i64)
        ))],
        verdicts: vec![(t.ws, format!("entry {d} is missing"))],
        seqs: vec![d],
        lists: Vec::new(),
        original: vec![
            ("unfiltered".into(), t.owner, AuditFilter::default()),
            ("by target EX".into(), t.owner, by_target(t.ex)),
        ],
    }
}

/// Two entries in the middle swapped (their `seq` exchanged): the runbook published after the
/// incident was declared.
fn entries_swapped(t: &Trail) -> Case {
    let (p, i) = (t.s.rb_published, t.s.incident);
    Case {
        edits: vec![
            t.update(p, "seq = -1"),
            Sql::same(format!(
                "UPDATE audit SET seq = {p} WHERE {}",
                t.row(i as i64)
            )),
            Sql::same(format!("UPDATE audit SET seq = {i} WHERE {}", t.row(-1))),
        ],
        verdicts: vec![(t.ws, "`seq`".into())],
        seqs: vec![p, i],
        lists: vec![("unfiltered".into(), t.owner, AuditFilter::default())],
        original: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Runners
// ---------------------------------------------------------------------------------------------

/// Asserts a list failed as tampering, naming one of `seqs`.
fn expect_tampered(test: &str, label: &str, got: Result<Vec<AuditEntry>, Error>, seqs: &[u64]) {
    match got {
        Err(Error::Tampered(t)) => {
            assert!(
                seqs.contains(&t.seq),
                "{test}: list {label}: Tampered names entry {} ({}), expected one of {seqs:?}",
                t.seq,
                t.problem
            );
            println!(
                "{test}: list {label}: Tampered at entry {}: {}",
                t.seq, t.problem
            );
        }
        Err(e) => panic!(
            "{test}: list {label}: expected ErrorKind::Tampered, got {:?}: {e}",
            e.kind()
        ),
        Ok(v) => {
            let listed: Vec<u64> = v.iter().map(|e| e.seq).collect();
            panic!(
                "ESCAPED {test}: list {label} answered Ok with entries {listed:?} after the edit \
                 of entry {seqs:?}"
            )
        }
    }
}

/// The edit, then the verdicts and the lists that return the edited row.
async fn detect(backend: Backend, test: &str, case: fn(&Trail) -> Case) {
    let Some(mut h) = Harness::start(backend, test).await else {
        return;
    };
    let c = case(&h.t);
    h.tamper(&c.edits).await;
    for (ws, needle) in &c.verdicts {
        match h.vigilo().verify_audit(*ws).await.unwrap() {
            AuditVerdict::Tampered(t) => {
                println!(
                    "{test}: verify({ws}) reports entry {}: {}",
                    t.seq, t.problem
                );
                assert!(
                    c.seqs.contains(&t.seq),
                    "{test}: verify names entry {} ({}), expected one of {:?}",
                    t.seq,
                    t.problem,
                    c.seqs
                );
                assert!(
                    t.problem.contains(needle.as_str()),
                    "{test}: the problem should say {needle:?}: {}",
                    t.problem
                );
            }
            other => panic!("ESCAPED {test}: verify({ws}) answered {other:?}"),
        }
    }
    for (label, who, filter) in &c.lists {
        let got = h.vigilo().audit_entries(who, filter.clone()).await;
        if let Err(e) = &got {
            assert_eq!(e.kind(), ErrorKind::Tampered, "{test}: {label}: {e}");
        }
        expect_tampered(test, label, got, &c.seqs);
    }
}

/// The edit, then the lists that found the entry before it: each must fail as tampering, not
/// answer `Ok` without the entry (or with it forged).
async fn not_hidden(backend: Backend, test: &str, case: fn(&Trail) -> Case) {
    let Some(mut h) = Harness::start(backend, test).await else {
        return;
    };
    let c = case(&h.t);
    assert!(!c.original.is_empty());
    let mut before = Vec::new();
    for (label, who, filter) in &c.original {
        let listed: Vec<u64> = h
            .vigilo()
            .audit_entries(who, filter.clone())
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert!(
            c.seqs
                .iter()
                .chain(&[h.t.s.approved])
                .any(|s| listed.contains(s)),
            "{test}: before the edit, {label} lists the entry: {listed:?}"
        );
        before.push(listed);
    }
    h.tamper(&c.edits).await;
    let mut escaped = Vec::new();
    for ((label, who, filter), before) in c.original.iter().zip(before) {
        match h.vigilo().audit_entries(who, filter.clone()).await {
            Err(Error::Tampered(t)) => {
                println!(
                    "{test}: list {label}: Tampered at entry {}: {}",
                    t.seq, t.problem
                )
            }
            Err(e) => panic!("{test}: list {label}: expected Tampered, got {e}"),
            Ok(v) => {
                let after: Vec<u64> = v.iter().map(|e| e.seq).collect();
                escaped.push(format!(
                    "list {label} listed {before:?} before the edit and answers Ok with \
                     {after:?} after it"
                ));
            }
        }
    }
    assert!(
        escaped.is_empty(),
        "ESCAPED {test}: the edit went unnoticed by a list that used to return the entry: {}",
        escaped.join("; ")
    );
}

/// The edit moves the row out of the lists that found it; the full check names it.
async fn left_to_verify(backend: Backend, test: &str, case: fn(&Trail) -> Case) {
    let Some(mut h) = Harness::start(backend, test).await else {
        return;
    };
    let c = case(&h.t);
    h.tamper(&c.edits).await;
    for (label, who, filter) in &c.original {
        match h.vigilo().audit_entries(who, filter.clone()).await {
            Ok(v) => {
                let after: Vec<u64> = v.iter().map(|e| e.seq).collect();
                assert!(
                    c.seqs.iter().all(|s| !after.contains(s)),
                    "{test}: list {label} returned the edited entry as genuine: {after:?}"
                );
            }
            Err(e) => assert_eq!(e.kind(), ErrorKind::Tampered, "{test}: list {label}: {e}"),
        }
    }
    match h.vigilo().verify_audit(h.t.ws).await.unwrap() {
        AuditVerdict::Tampered(t) => assert!(
            c.seqs.contains(&t.seq),
            "{test}: verify names entry {} ({}), expected one of {:?}",
            t.seq,
            t.problem,
            c.seqs
        ),
        other => panic!("{test}: verify missed the edit: {other:?}"),
    }
}

/// Before any edit: verify says intact, the lists answer what the trail holds, and the
/// append-only triggers refuse an edit.
async fn baseline(backend: Backend, test: &str) {
    let Some(mut h) = Harness::start(backend, test).await else {
        return;
    };
    let t = &h.t;
    let v = h.vigilo();
    assert_eq!(
        v.verify_audit(t.ws).await.unwrap(),
        AuditVerdict::Intact {
            entries: 11,
            head: Some(t.entry(t.s.step2_done).hash.clone()),
        }
    );
    assert!(matches!(
        v.verify_audit(t.other_ws).await.unwrap(),
        AuditVerdict::Intact { entries: 1, .. }
    ));
    let approved_at = t.entry(t.s.approved).at;
    let links = |e: &AuditEntry, key: Key| {
        let k = Some(key);
        e.target == key.to_string()
            || e.links.runbook == k
            || e.links.change == k
            || e.links.incident == k
            || e.links.execution == k
    };
    let s = t.s;
    type Pred<'a> = Box<dyn Fn(&AuditEntry) -> bool + 'a>;
    let checks: Vec<(&str, Who, AuditFilter, Pred<'_>, Vec<u64>)> = vec![
        (
            "unfiltered",
            t.operator,
            AuditFilter::default(),
            Box::new(|_| true),
            (1..=11).collect(),
        ),
        (
            "by actor oscar",
            t.admin,
            by_actor("oscar"),
            Box::new(|e| e.actor == Some(t.operator_id)),
            vec![s.incident, s.change, s.started, s.step1_done, s.step2_done],
        ),
        (
            "by actor ada",
            t.owner,
            by_actor("ada"),
            Box::new(|e| e.actor == Some(t.admin_id)),
            vec![s.approved],
        ),
        (
            "by target EX",
            t.owner,
            by_target(t.ex),
            Box::new(|e| links(e, t.ex)),
            vec![s.started, s.step1_done, s.approved, s.step2_done],
        ),
        (
            "by target RB",
            t.owner,
            by_target(t.rb),
            Box::new(|e| links(e, t.rb)),
            vec![
                s.rb_created,
                s.rb_published,
                s.started,
                s.step1_done,
                s.approved,
                s.step2_done,
            ],
        ),
        (
            "by target CR",
            t.owner,
            by_target(t.cr),
            Box::new(|e| links(e, t.cr)),
            vec![s.change, s.started, s.step1_done, s.approved, s.step2_done],
        ),
        (
            "by target INC",
            t.owner,
            by_target(t.inc),
            Box::new(|e| links(e, t.inc)),
            vec![
                s.incident,
                s.started,
                s.step1_done,
                s.approved,
                s.step2_done,
            ],
        ),
        (
            "since the approval",
            t.owner,
            AuditFilter {
                since: Some(approved_at),
                ..AuditFilter::default()
            },
            Box::new(|e| e.at >= approved_at),
            vec![s.approved, s.step2_done],
        ),
        (
            "since 1970, until the trail began",
            t.owner,
            AuditFilter {
                since: Some(Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap()),
                until: Some(t.start),
                ..AuditFilter::default()
            },
            Box::new(|_| false),
            vec![],
        ),
        (
            "by the other targets",
            t.owner,
            by_target(other_key(KeyKind::Execution)),
            Box::new(|_| false),
            vec![],
        ),
    ];
    for (label, who, filter, pred, want) in checks {
        let got: Vec<u64> = v
            .audit_entries(&who, filter)
            .await
            .unwrap_or_else(|e| panic!("{test}: {label}: {e}"))
            .iter()
            .map(|e| e.seq)
            .collect();
        let from_trail: Vec<u64> = t
            .entries
            .iter()
            .filter(|e| pred(e))
            .map(|e| e.seq)
            .collect();
        assert_eq!(from_trail, want, "{test}: {label}: the trail itself");
        assert_eq!(got, want, "{test}: {label}");
    }
    // globex sees its own trail only.
    let globex: Vec<u64> = v
        .audit_entries(&t.other_owner, AuditFilter::default())
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(globex, [1]);

    // With the triggers in place the store itself refuses an edit or a deletion.
    let a = t.s.approved;
    let refused = [
        t.update(a, "action = 'execution.step_skipped'"),
        Sql::same(format!("DELETE FROM audit WHERE {}", t.row(a as i64))),
    ];
    let done = h.raw(false, &refused).await;
    for (s, r) in refused.iter().zip(&done) {
        assert!(r.is_err(), "{test}: {s:?} must be refused: {r:?}");
    }
    let v = h.vigilo();
    assert!(matches!(
        v.verify_audit(h.t.ws).await.unwrap(),
        AuditVerdict::Intact { entries: 11, .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// The tests, on each store
// ---------------------------------------------------------------------------------------------

macro_rules! on_store {
    ($module:ident, $backend:expr, $runner:ident: $($case:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$runner(
                        $backend,
                        concat!(stringify!($module), "::", stringify!($case)),
                        super::$case,
                    )
                    .await;
                }
            )*
        }
    };
}

macro_rules! detected {
    ($module:ident, $backend:expr) => {
        on_store!($module, $backend, detect:
            workspace_moved,
            seq_renumbered,
            id_replaced,
            at_1970,
            actor_moved,
            actor_nulled,
            action_changed,
            target_changed,
            target_and_link_changed,
            link_runbook_changed,
            link_change_changed,
            link_incident_changed,
            link_execution_changed,
            hash_replaced,
            link_recased,
            doc_detail_edited,
            doc_resealed,
            entry_deleted,
            entries_swapped,
        );
    };
}

macro_rules! hidden {
    ($module:ident, $backend:expr) => {
        on_store!($module, $backend, not_hidden:
            workspace_moved,
            doc_resealed,
            entry_deleted,
        );
    };
}

macro_rules! left {
    ($module:ident, $backend:expr) => {
        on_store!($module, $backend, left_to_verify:
            at_1970,
            actor_moved,
            actor_nulled,
            target_and_link_changed,
            link_runbook_changed,
            link_change_changed,
            link_incident_changed,
        );
    };
}

detected!(sqlite, super::Backend::Sqlite);
hidden!(sqlite_hidden, super::Backend::Sqlite);
left!(sqlite_left_to_verify, super::Backend::Sqlite);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_baseline() {
    baseline(Backend::Sqlite, "sqlite_baseline").await;
}

#[cfg(feature = "postgres")]
detected!(postgres, super::Backend::Postgres);
#[cfg(feature = "postgres")]
hidden!(postgres_hidden, super::Backend::Postgres);
#[cfg(feature = "postgres")]
left!(postgres_left_to_verify, super::Backend::Postgres);

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_baseline() {
    baseline(Backend::Postgres, "postgres_baseline").await;
}
