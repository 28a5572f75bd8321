//! Opening a database file: refusing what is not ours (before anything is written), setting
//! the connection pragmas, and migrating.

use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, FileControl, MAIN_DB, OpenFlags};
use tracing::debug;

use super::migrations::{APPLICATION_ID, Migration, migrate, schema_version};
use super::options::SqliteOptions;

/// How many prepared statements each connection keeps (reads build a few dozen variants).
const STATEMENT_CACHE: usize = 128;

/// The first 16 bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The file exists but is not a Vigilo database (another program's SQLite file, or not
    /// SQLite at all). It was not modified.
    #[error("{} is not a Vigilo database ({reason}); it was left untouched", .path.display())]
    NotVigilo {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// The file was written by a newer Vigilo whose schema this build does not know. It was
    /// not modified.
    #[error(
        "{} has schema version {found}, newer than the {known} this build of Vigilo knows; \
         upgrade Vigilo to open it (the file was left untouched)",
        .path.display()
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The newest version this build knows.
        known: usize,
    },
    /// The file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// SQLite refused an operation while opening.
    #[error("cannot open {} ({doing}): {source}", .path.display())]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What the store was doing.
        doing: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// SQLite would not switch the file to WAL mode (e.g. on a file system without shared
    /// memory support).
    #[error("cannot use WAL mode on {} (journal_mode stayed `{mode}`)", .path.display())]
    NoWal {
        /// The file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },
    /// The writer thread could not be started.
    #[error("cannot start the writer thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Wraps a SQLite error met while doing `doing` on `path`.
fn sqlite(path: &Path, doing: &'static str) -> impl FnOnce(rusqlite::Error) -> OpenError {
    let path = path.to_path_buf();
    move |source| OpenError::Sqlite {
        path,
        doing,
        source,
    }
}

/// Refuses a non-empty file that does not start with the SQLite header, without opening it.
fn check_header(path: &Path) -> Result<(), OpenError> {
    let io = |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    let mut header = Vec::with_capacity(SQLITE_HEADER.len());
    file.by_ref()
        .take(SQLITE_HEADER.len() as u64)
        .read_to_end(&mut header)
        .map_err(io)?;
    if header.is_empty() || header.as_slice() == SQLITE_HEADER {
        Ok(())
    } else {
        Err(OpenError::NotVigilo {
            path: path.to_path_buf(),
            reason: "it is not an SQLite database file".into(),
        })
    }
}

/// What an opened file holds.
enum Found {
    /// A new, empty database.
    Empty,
    /// A Vigilo database at this schema version.
    Vigilo,
}

/// Reads the file's identity (reads only) and refuses what is not a Vigilo database of a
/// schema this build knows.
fn identify(conn: &Connection, path: &Path, known: usize) -> Result<Found, OpenError> {
    let not_vigilo = |reason: String| OpenError::NotVigilo {
        path: path.to_path_buf(),
        reason,
    };
    let read = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => not_vigilo("it is not an SQLite database file".into()),
        _ => sqlite(path, "reading the schema version")(e),
    };
    let app_id: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(read)?;
    let version = schema_version(conn).map_err(read)?;
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(read)?;
    debug!(app_id, version, objects, "identified database file");
    if app_id == 0 && version == 0 && objects == 0 {
        return Ok(Found::Empty);
    }
    if app_id != APPLICATION_ID {
        return Err(not_vigilo(if app_id == 0 {
            format!(
                "it is an SQLite database of another program: {objects} schema objects, user_version {version}"
            )
        } else {
            format!("its application_id is {app_id:#x}, not Vigilo's {APPLICATION_ID:#x}")
        }));
    }
    if version < 1 {
        return Err(not_vigilo(
            "it carries Vigilo's application_id but no schema version".into(),
        ));
    }
    if usize::try_from(version).map_or(true, |v| v > known) {
        return Err(OpenError::TooNew {
            path: path.to_path_buf(),
            found: version,
            known,
        });
    }
    Ok(Found::Vigilo)
}

/// Opens the writer connection: refuses a file that is not ours before writing anything, then
/// switches to WAL, sets the pragmas, and applies `migrations`.
pub(crate) fn open_writer(
    path: &Path,
    options: &SqliteOptions,
    migrations: &[Migration],
) -> Result<Connection, OpenError> {
    check_header(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn =
        Connection::open_with_flags(path, flags).map_err(sqlite(path, "opening the file"))?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(sqlite(path, "setting busy_timeout"))?;
    let found = identify(&conn, path, migrations.len())?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(sqlite(path, "switching to WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::NoWal {
            path: path.to_path_buf(),
            mode,
        });
    }
    // Keep the WAL file, at its size, when the last connection closes (it is checkpointed
    // first, as always). Appending to a growing file costs each commit's sync a journal
    // commit of the file system's metadata; with the file kept, a restarted process writes
    // over blocks already allocated, as a long-running one does once its WAL has wrapped.
    conn.file_control(Some(MAIN_DB), FileControl::PersistWal(&mut 1))
        .map_err(sqlite(path, "keeping the WAL file"))?;
    conn.pragma_update(None, "synchronous", options.synchronous.pragma_value())
        .map_err(sqlite(path, "setting synchronous"))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(sqlite(path, "enabling foreign keys"))?;
    conn.pragma_update(None, "mmap_size", options.mmap_size)
        .map_err(sqlite(path, "setting mmap_size"))?;
    // Savepoint journals and sorts stay in memory: with the default (files), every group
    // commit created, wrote and deleted a temporary file for its savepoints.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(sqlite(path, "setting temp_store"))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    stable_plans(&conn).map_err(sqlite(path, "fixing query plans"))?;
    if matches!(found, Found::Empty) {
        debug!(path = %path.display(), "creating a new Vigilo database");
    }
    migrate(&mut conn, migrations).map_err(sqlite(path, "migrating the schema"))?;
    // Give the query planner statistics where tables changed enough to need them (bounded work).
    conn.execute_batch("PRAGMA analysis_limit = 400; PRAGMA optimize = 0x10002;")
        .map_err(sqlite(path, "refreshing planner statistics"))?;
    Ok(conn)
}

/// Opens one read connection to a database the writer has already opened and migrated.
pub(crate) fn open_reader(path: &Path, options: &SqliteOptions) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(options.busy_timeout)?;
    conn.pragma_update(None, "query_only", "ON")?;
    conn.pragma_update(None, "mmap_size", options.mmap_size)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    stable_plans(&conn)?;
    Ok(conn)
}

/// Plans do not depend on bound values (SQLite's query planner stability guarantee). Without
/// it, with the statistics `PRAGMA optimize` gathers (`sqlite_stat4`), a cached statement whose
/// parameter is compared with an indexed column — the audit chain head's `workspace_id = ?1` —
/// was compiled again every time it was bound: about a tenth of the writer thread's time
/// under a steady stream of commits. Every statement here is a lookup by key or a scan in
/// index order, which the statistics without the values plan just as well.
fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map(drop)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use rusqlite::StatementStatus;

    use super::*;

    /// How often a cached lookup on an indexed column was compiled again over ten bindings,
    /// on a table with `sqlite_stat4` statistics.
    fn recompiles(stable: bool) -> i32 {
        let conn = Connection::open_in_memory().unwrap();
        if stable {
            stable_plans(&conn).unwrap();
        }
        conn.execute_batch(
            "CREATE TABLE t (a TEXT NOT NULL, b INTEGER NOT NULL);
             CREATE INDEX t_a_b ON t (a, b);",
        )
        .unwrap();
        for i in 0..200 {
            conn.execute(
                "INSERT INTO t (a, b) VALUES (?1, ?2)",
                (format!("w{}", i % 3), i),
            )
            .unwrap();
        }
        conn.execute_batch("ANALYZE").unwrap();
        let sql = "SELECT b FROM t WHERE a = ?1 ORDER BY b DESC LIMIT 1";
        for i in 0..10 {
            let mut s = conn.prepare_cached(sql).unwrap();
            let _: i64 = s.query_row([format!("w{}", i % 3)], |r| r.get(0)).unwrap();
        }
        let s = conn.prepare_cached(sql).unwrap();
        s.get_status(StatementStatus::RePrepare)
    }

    #[test]
    fn bound_values_do_not_recompile_statements() {
        assert!(
            recompiles(false) > 0,
            "without the guarantee SQLite recompiles"
        );
        assert_eq!(recompiles(true), 0);
    }
}
