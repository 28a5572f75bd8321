//! Opening files: migrations are idempotent and upgrade older schemas; files that are not
//! Vigilo databases, or are from a newer schema, are refused and left byte-identical.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use vigilo_core::store::Store;
use vigilo_store::sqlite::{APPLICATION_ID, MIGRATIONS};
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

/// A second migration that only a test knows, to exercise the upgrade path.
const TEST_MIGRATION_2: &str = "
    CREATE TABLE upgrade_probe (answer INTEGER NOT NULL) STRICT;
    INSERT INTO upgrade_probe (answer) VALUES (42);
";

#[tokio::test]
async fn a_schema_1_database_is_upgraded_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let v1: &[&str] = &[MIGRATIONS[0]];
    let store = SqliteStore::open_with_migrations(&path, SqliteOptions::default(), v1).unwrap();
    let ctx = common::setup(&store, "ops").await;
    store.close().await;
    assert_eq!(version(&path), 1);

    let v2: &[&str] = &[MIGRATIONS[0], TEST_MIGRATION_2];
    let store = SqliteStore::open_with_migrations(&path, SqliteOptions::default(), v2).unwrap();
    assert_eq!(store.workspace(ctx.id()).await.unwrap(), ctx.ws);
    assert_eq!(common::verified_chain(&store, ctx.id()).await, 1);
    store.close().await;
    assert_eq!(version(&path), 2);
    let c = Connection::open(&path).unwrap();
    let answer: i64 = c
        .query_row("SELECT answer FROM upgrade_probe", [], |r| r.get(0))
        .unwrap();
    assert_eq!(answer, 42);
    drop(c);

    // This build knows one migration only: the upgraded file is now from a newer schema.
    let before = snapshot(dir.path());
    match open(&path).await {
        Err(OpenError::TooNew {
            found: 2, known, ..
        }) => assert_eq!(known, MIGRATIONS.len()),
        other => panic!("expected TooNew, got {other:?}"),
    }
    assert_eq!(snapshot(dir.path()), before);
}

#[tokio::test]
async fn a_failing_migration_is_rolled_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fail.db");
    SqliteStore::open_with_migrations(&path, SqliteOptions::default(), &[MIGRATIONS[0]])
        .unwrap()
        .close()
        .await;
    let broken: &[&str] = &[
        MIGRATIONS[0],
        "CREATE TABLE half_done (x INTEGER); SELECT no_such_function();",
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
