//! Opening files: migrations are idempotent and upgrade older schemas; files that are not
//! Vigilo databases, or are from a newer schema, are refused and left byte-identical.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use vigilo_core::store::{Store, Write};
use vigilo_store::sqlite::{APPLICATION_ID, MIGRATIONS, Migration};
use vigilo_store::{OpenError, SqliteOptions, SqliteStore};

/// Every file of `dir` with its bytes (the database, and any -wal / -shm beside it).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn version(path: &Path) -> i64 {
    let c = Connection::open(path).unwrap();
    c.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

fn schema(path: &Path) -> Vec<(String, String)> {
    let c = Connection::open(path).unwrap();
    let mut s = c
        .prepare("SELECT name, coalesce(sql, '') FROM sqlite_schema ORDER BY name")
        .unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

async fn open(path: &Path) -> Result<SqliteStore, OpenError> {
    SqliteStore::open(path, SqliteOptions::default()).await
}

#[tokio::test]
async fn a_new_file_gets_the_schema_wal_and_the_vigilo_application_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    open(&path).await.unwrap().close().await;
    let c = Connection::open(&path).unwrap();
    let app: i32 = c
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .unwrap();
    let mode: String = c
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(app, APPLICATION_ID);
    assert_eq!(mode, "wal");
    assert_eq!(version(&path), MIGRATIONS.len() as i64);
}

#[tokio::test]
async fn an_empty_file_is_a_new_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.db");
    std::fs::write(&path, b"").unwrap();
    open(&path).await.unwrap().close().await;
    assert_eq!(version(&path), MIGRATIONS.len() as i64);
}

#[tokio::test]
async fn migrating_twice_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("twice.db");
    let store = open(&path).await.unwrap();
    let ctx = common::setup(&store, "ops").await;
    store.close().await;
    let (schema_1, files_1) = (schema(&path), snapshot(dir.path()));

    let store = open(&path).await.unwrap();
    assert_eq!(
        store.workspace(ctx.id()).await.unwrap(),
        ctx.ws,
        "data survives a reopen"
    );
    store.close().await;
    assert_eq!(version(&path), MIGRATIONS.len() as i64);
    assert_eq!(schema(&path), schema_1);
    assert_eq!(snapshot(dir.path()), files_1, "reopening changed no byte");
}

/// The WAL file is kept at its size when the store closes (so a restarted process writes over
/// blocks already allocated), and checkpointed first: the database file alone holds every
/// commit.
#[tokio::test]
async fn the_wal_file_is_kept_checkpointed_at_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kept.db");
    let store = open(&path).await.unwrap();
    let ctx = common::setup(&store, "ops").await;
    store.close().await;
    let wal = dir.path().join("kept.db-wal");
    let kept = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert!(kept > 0, "the WAL file is kept with its size");

    // The database file alone, copied without its WAL, has the data.
    let alone = tempfile::tempdir().unwrap();
    let copy = alone.path().join("copy.db");
    std::fs::copy(&path, &copy).unwrap();
    let c = Connection::open(&copy).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM workspaces", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1, "the close checkpointed every commit into the file");
    drop(c);

    let store = open(&path).await.unwrap();
    assert_eq!(store.workspace(ctx.id()).await.unwrap(), ctx.ws);
    common::setup(&store, "dev").await;
    store.close().await;
}

/// A migration after the shipped ones that only a test knows, to exercise the upgrade path.
const TEST_MIGRATION_NEXT: &str = "
    CREATE TABLE upgrade_probe (answer INTEGER NOT NULL) STRICT;
    INSERT INTO upgrade_probe (answer) VALUES (42);
";

#[tokio::test]
async fn a_schema_1_database_is_upgraded_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let v1: &[Migration] = &[MIGRATIONS[0]];
    let store = SqliteStore::open_with_migrations(&path, SqliteOptions::default(), v1).unwrap();
    let ctx = common::setup(&store, "ops").await;
    store.close().await;
    assert_eq!(version(&path), 1);

    let mut next: Vec<Migration> = MIGRATIONS.to_vec();
    next.push(Migration::sql(TEST_MIGRATION_NEXT));
    let store = SqliteStore::open_with_migrations(&path, SqliteOptions::default(), &next).unwrap();
    assert_eq!(store.workspace(ctx.id()).await.unwrap(), ctx.ws);
    assert_eq!(common::verified_chain(&store, ctx.id()).await, 1);
    store.close().await;
    assert_eq!(version(&path), next.len() as i64);
    let c = Connection::open(&path).unwrap();
    let answer: i64 = c
        .query_row("SELECT answer FROM upgrade_probe", [], |r| r.get(0))
        .unwrap();
    assert_eq!(answer, 42);
    drop(c);

    // This build does not know the probe: the upgraded file is now from a newer schema.
    let before = snapshot(dir.path());
    match open(&path).await {
        Err(OpenError::TooNew { found, known, .. }) => {
            assert_eq!(found, next.len() as i64);
            assert_eq!(known, MIGRATIONS.len());
        }
        other => panic!("expected TooNew, got {other:?}"),
    }
    assert_eq!(snapshot(dir.path()), before);
}

/// Schema 2 moves people into workspaces: a schema-1 file whose users carry a display name and
/// global chat identities upgrades in place. Every membership takes the display name; an
/// identity moves to the membership in the workspace linked to its team only (so an identity
/// of team T0ACME never maps in another workspace), and one mapped before any link (empty
/// team) to every membership of its user; the audit chain still verifies.
#[tokio::test]
async fn schema_2_moves_names_and_chat_identities_into_memberships() {
    use vigilo_core::workspace::ChatIdentity;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.db");
    let v1: &[Migration] = &[MIGRATIONS[0]];
    let store = SqliteStore::open_with_migrations(&path, SqliteOptions::default(), v1).unwrap();
    let acme = common::setup(&store, "acme").await;
    let evil = common::setup(&store, "evil").await;
    store.close().await;

    // People as the first schema stored them, written as that build wrote them.
    let olivia = uuid::Uuid::now_v7();
    let c = Connection::open(&path).unwrap();
    c.execute(
        "UPDATE workspaces SET slack_team = 'T0ACME', doc = json_set(doc, '$.slack_team', 'T0ACME')
         WHERE id = ?1",
        [acme.id().to_string()],
    )
    .unwrap();
    c.execute(
        "INSERT INTO users (id, handle, rev, doc) VALUES (?1, 'olivia', 1, ?2)",
        rusqlite::params![
            olivia.to_string(),
            format!(
                r#"{{"id":"{olivia}","handle":"olivia","display_name":"Olivia Ørsted","chat_identities":[{{"platform":"slack","team":"T0ACME","user":"U0OLI"}},{{"platform":"slack","team":"","user":"U0PRE"}}],"rev":1}}"#
            )
        ],
    )
    .unwrap();
    for (team, user) in [("T0ACME", "U0OLI"), ("", "U0PRE")] {
        c.execute(
            "INSERT INTO chat_identities (platform, team, user, user_id) VALUES ('slack', ?1, ?2, ?3)",
            rusqlite::params![team, user, olivia.to_string()],
        )
        .unwrap();
    }
    for (ws, role) in [(acme.id(), "owner"), (evil.id(), "member")] {
        c.execute(
            "INSERT INTO memberships (workspace_id, user_id, rev, doc) VALUES (?1, ?2, 1, ?3)",
            rusqlite::params![
                ws.to_string(),
                olivia.to_string(),
                format!(
                    r#"{{"workspace":"{ws}","user":"{olivia}","role":"{role}","team_roles":[],"rev":1}}"#
                )
            ],
        )
        .unwrap();
    }
    drop(c);

    let store = open(&path).await.unwrap();
    assert_eq!(version(&path), MIGRATIONS.len() as i64);
    let user = store.user_by_handle("olivia").await.unwrap();
    assert_eq!(user.id.0, olivia);
    let in_acme = store.membership(acme.id(), user.id).await.unwrap();
    let in_evil = store.membership(evil.id(), user.id).await.unwrap();
    assert_eq!(in_acme.display_name.as_str(), "Olivia Ørsted");
    assert_eq!(in_evil.display_name.as_str(), "Olivia Ørsted");
    let mut acme_ids: Vec<&str> = in_acme
        .chat_identities
        .iter()
        .map(|c| c.user.as_str())
        .collect();
    acme_ids.sort();
    assert_eq!(acme_ids, ["U0OLI", "U0PRE"]);
    let evil_ids: Vec<&str> = in_evil
        .chat_identities
        .iter()
        .map(|c| c.user.as_str())
        .collect();
    assert_eq!(
        evil_ids,
        ["U0PRE"],
        "an identity of team T0ACME stays in acme"
    );
    let found = store
        .member_by_chat(acme.id(), &ChatIdentity::slack("U0OLI"))
        .await
        .unwrap();
    assert_eq!(found.0.id, user.id);
    assert!(
        store
            .member_by_chat(evil.id(), &ChatIdentity::slack("U0OLI"))
            .await
            .is_err()
    );
    assert_eq!(
        store
            .member_by_chat(evil.id(), &ChatIdentity::slack("U0PRE"))
            .await
            .unwrap()
            .0
            .id,
        user.id
    );
    assert_eq!(common::verified_chain(&store, acme.id()).await, 1);
    assert_eq!(common::verified_chain(&store, evil.id()).await, 1);
    store.close().await;
    // The user row keeps only what is global.
    let c = Connection::open(&path).unwrap();
    let doc: String = c
        .query_row("SELECT doc FROM users WHERE handle = 'olivia'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(
        !doc.contains("display_name") && !doc.contains("chat_identities"),
        "{doc}"
    );
    let old: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'chat_identities'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(old, 0);
}

#[tokio::test]
async fn a_failing_migration_is_rolled_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fail.db");
    SqliteStore::open_with_migrations(&path, SqliteOptions::default(), &[MIGRATIONS[0]])
        .unwrap()
        .close()
        .await;
    let broken: &[Migration] = &[
        MIGRATIONS[0],
        Migration::sql("CREATE TABLE half_done (x INTEGER); SELECT no_such_function();"),
    ];
    let err =
        SqliteStore::open_with_migrations(&path, SqliteOptions::default(), broken).unwrap_err();
    assert!(matches!(err, OpenError::Sqlite { .. }), "{err:?}");
    assert_eq!(version(&path), 1);
    assert!(!schema(&path).iter().any(|(name, _)| name == "half_done"));
}

#[tokio::test]
async fn another_programs_sqlite_file_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me');")
            .unwrap();
    }
    let before = snapshot(dir.path());
    let err = open(&path).await.unwrap_err();
    assert!(matches!(err, OpenError::NotVigilo { .. }), "{err:?}");
    assert!(err.to_string().contains("not a Vigilo database"), "{err}");
    assert_eq!(
        snapshot(dir.path()),
        before,
        "the file and its directory are unchanged"
    );
}

#[tokio::test]
async fn a_sqlite_file_with_another_application_id_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    {
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "application_id", 1234).unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
    }
    let before = snapshot(dir.path());
    let err = open(&path).await.unwrap_err();
    assert!(matches!(err, OpenError::NotVigilo { .. }), "{err:?}");
    assert_eq!(snapshot(dir.path()), before);
}

#[tokio::test]
async fn a_garbage_file_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("text.db", b"hello, I am not a database\n".repeat(200)),
        ("short.db", b"SQLite".to_vec()),
        ("zeros.db", vec![0u8; 4096]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let before = snapshot(dir.path());
        let err = open(&path).await.unwrap_err();
        assert!(
            matches!(err, OpenError::NotVigilo { .. }),
            "{name}: {err:?}"
        );
        assert_eq!(snapshot(dir.path()), before, "{name} untouched");
    }
}

#[tokio::test]
async fn a_newer_schema_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer.db");
    open(&path).await.unwrap().close().await;
    {
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
    }
    let before = snapshot(dir.path());
    let err = open(&path).await.unwrap_err();
    match &err {
        OpenError::TooNew { found: 99, .. } => {}
        other => panic!("expected TooNew, got {other:?}"),
    }
    assert!(err.to_string().contains("newer"), "{err}");
    assert_eq!(snapshot(dir.path()), before);
}

/// The schema-2 file `tests/data/schema2/schema2.db`, made by the release before schema 3
/// (`gen.sh` beside it): two workspaces' worth of runs walked through the real CLI, with
/// approvals (by rank and by team role), notes, a skip, failures with retries, aborts, a
/// rehearsal and runs of two versions.
fn schema2_copy(dir: &Path) -> PathBuf {
    let path = dir.join("schema2.db");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/schema2/schema2.db"),
        &path,
    )
    .unwrap();
    path
}

/// Every `(id, workspace, doc)` of `table`'s rows, as stored.
fn rows(path: &Path, sql: &str) -> Vec<(String, String, String)> {
    let c = Connection::open(path).unwrap();
    let mut stmt = c.prepare(sql).unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Schema 3 converts executions stored whole into header, snapshot and events: every
/// execution reads back equal to the document it replaces, every event and audit entry is
/// kept (approvals gain the role they were given with, from the execution that holds them),
/// one snapshot row per distinct content, the chain verifies, and clicks work afterwards.
#[tokio::test]
async fn schema_3_converts_executions_made_by_the_previous_release() {
    use vigilo_core::execution::{EventKind, Execution, StepEvent};
    use vigilo_core::ids::{ExecutionId, WorkspaceId};
    let dir = tempfile::tempdir().unwrap();
    let path = schema2_copy(dir.path());
    assert_eq!(version(&path), 2);
    let old_executions = rows(&path, "SELECT id, workspace_id, doc FROM executions");
    let old_events = rows(
        &path,
        "SELECT execution_id, CAST(seq AS TEXT), doc FROM step_events ORDER BY execution_id, seq",
    );
    let old_audit = rows(
        &path,
        "SELECT workspace_id, CAST(seq AS TEXT), doc FROM audit ORDER BY seq",
    );
    assert_eq!(old_executions.len(), 6);
    assert_eq!(old_events.len(), 20);

    let store = open(&path).await.unwrap();
    assert_eq!(version(&path), MIGRATIONS.len() as i64);
    let mut approvals = 0;
    for (id, ws, doc) in &old_executions {
        let old: Execution = serde_json::from_str(doc).unwrap();
        let ws = WorkspaceId(ws.parse().unwrap());
        let id = ExecutionId(id.parse().unwrap());
        assert_eq!(store.execution(ws, id).await.unwrap(), old, "{}", old.key);
        assert_eq!(store.execution_by_key(ws, old.key).await.unwrap(), old);
        let events = store.step_events(ws, id).await.unwrap();
        let before: Vec<StepEvent> = old_events
            .iter()
            .filter(|(e, _, _)| *e == id.to_string())
            .map(|(_, _, d)| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(events.len(), before.len());
        for (now, was) in events.iter().zip(&before) {
            let mut now = now.clone();
            if now.kind == EventKind::Approved {
                // The approval still standing says the role it was given with.
                let standing = old.steps[now.step_order.unwrap() as usize - 1]
                    .approvals
                    .iter()
                    .find(|a| a.by == now.actor && a.at == now.at);
                assert_eq!(
                    now.satisfied_as.as_deref(),
                    standing.map(|a| a.satisfied_as.as_str())
                );
                approvals += usize::from(standing.is_some());
                now.satisfied_as = None;
            }
            assert_eq!(&now, was);
        }
    }
    assert_eq!(
        approvals, 3,
        "EX-00001, EX-00002 (given again) and EX-00003"
    );
    // Events without a new field keep their documents byte for byte; the audit trail is
    // untouched.
    let new_events = rows(
        &path,
        "SELECT execution_id, CAST(seq AS TEXT), doc FROM step_events ORDER BY execution_id, seq",
    );
    let unchanged = new_events
        .iter()
        .zip(&old_events)
        .filter(|(a, b)| a == b)
        .count();
    // Four approvals were given; the one a retry took back is not part of any state, so it
    // stays as it was recorded (its role is in its audit entry's details).
    assert_eq!(
        unchanged,
        old_events.len() - 3,
        "three standing approvals gained their role"
    );
    assert_eq!(
        rows(
            &path,
            "SELECT workspace_id, CAST(seq AS TEXT), doc FROM audit ORDER BY seq"
        ),
        old_audit
    );
    let ws = WorkspaceId(old_executions[0].1.parse().unwrap());
    assert_eq!(
        common::verified_chain(&store, ws).await,
        old_audit.len() as u64
    );
    let c = Connection::open(&path).unwrap();
    let snapshots: i64 = c
        .query_row("SELECT count(*) FROM execution_snapshots", [], |r| r.get(0))
        .unwrap();
    assert_eq!(snapshots, 3, "RB-00001 v1 and v2, RB-00002 v1");
    drop(c);

    // A click on a converted run: only the state columns and a new event are written.
    let running: Execution = old_executions
        .iter()
        .map(|(_, _, d)| serde_json::from_str::<Execution>(d).unwrap())
        .find(|e| e.key.number == 4)
        .unwrap();
    let writes = common::bump_execution(&running);
    let Write::Execution {
        execution: next, ..
    } = &writes[0]
    else {
        panic!("the first write is the execution");
    };
    let next = next.clone();
    common::commit(&store, ws, writes).await.unwrap();
    assert_eq!(store.execution(ws, running.id).await.unwrap(), next);
    store.close().await;
}

/// A converted execution must rebuild equal to its old document; one whose events disagree
/// with it (here: an event edited behind Vigilo's back) stops the migration, names the
/// execution, and leaves the file at schema 2.
#[tokio::test]
async fn schema_3_refuses_executions_whose_events_disagree_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = schema2_copy(dir.path());
    {
        let c = Connection::open(&path).unwrap();
        let n = c
            .execute(
                "UPDATE step_events SET doc = json_set(doc, '$.kind', 'skipped')
                 WHERE seq = 2 AND execution_id =
                     (SELECT id FROM executions WHERE key_number = 1)",
                [],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    let before = rows(&path, "SELECT id, workspace_id, doc FROM executions");
    let err = open(&path).await.unwrap_err().to_string();
    assert!(err.contains("schema 3 cannot convert execution"), "{err}");
    assert!(err.contains("do not rebuild"), "{err}");
    assert_eq!(version(&path), 2);
    assert_eq!(
        rows(&path, "SELECT id, workspace_id, doc FROM executions"),
        before
    );
}
