//! The SQLite side of `vigilo migrate` (feature `postgres`): a whole Vigilo SQLite database
//! read, read-only and in one transaction, into a [`Snapshot`] (re-exported as
//! [`crate::transfer::read_sqlite`]). It sits next to the adapter whose schema it reads.

use std::io::Read;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use serde::de::DeserializeOwned;
use uuid::Uuid;
use vigilo_core::ids::WorkspaceId;

use super::{APPLICATION_ID, MIGRATIONS};
use crate::transfer::{ChatIdentityRow, Doc, KeyCounterRow, Snapshot, TransferError, check_links};
use vigilo_core::execution::Execution;

/// The first 16 bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Reads every row of the Vigilo SQLite database at `path`, without writing to it (blocking:
/// call it from a blocking thread in async code).
///
/// Refuses a missing file, a file that is not SQLite or not Vigilo's (checked by its header,
/// `application_id` and schema version before any table is read), and a schema version other
/// than the one this build writes.
pub fn read_sqlite(path: &Path) -> Result<Snapshot, TransferError> {
    check_file(path)?;
    let sqlite = |doing: &str| {
        let path = path.to_path_buf();
        let doing = doing.to_owned();
        move |source| TransferError::Sqlite {
            path,
            doing,
            source,
        }
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite("opening the file read-only"))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(sqlite("setting busy_timeout"))?;
    let not_vigilo = |reason: String| TransferError::NotVigilo {
        path: path.to_path_buf(),
        reason,
    };
    let app_id: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => {
                not_vigilo("it is not an SQLite database file".into())
            }
            _ => sqlite("reading the application id")(e),
        })?;
    if app_id != APPLICATION_ID {
        return Err(not_vigilo(if app_id == 0 {
            "it is an SQLite database without Vigilo's application id: another program's, or empty"
                .into()
        } else {
            format!("its application_id is {app_id:#x}, not Vigilo's {APPLICATION_ID:#x}")
        }));
    }
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sqlite("reading the schema version"))?;
    let known = MIGRATIONS.len();
    if usize::try_from(version).ok() != Some(known) {
        let hint = if usize::try_from(version).is_ok_and(|v| v > known) {
            "upgrade Vigilo, then migrate"
        } else {
            "open it once with this build (e.g. `vigilo --db <file> workspace list`) to upgrade its schema, then migrate"
        };
        return Err(TransferError::SchemaVersion {
            path: path.to_path_buf(),
            found: version,
            known,
            hint,
        });
    }
    // One read transaction: every table from the same moment, even if a bot is writing.
    let tx = conn
        .unchecked_transaction()
        .map_err(sqlite("starting a read transaction"))?;
    let r = Reader { conn: &tx, path };
    let snapshot = Snapshot {
        workspaces: r.docs("workspaces", "SELECT doc FROM workspaces ORDER BY id")?,
        users: r.docs("users", "SELECT doc FROM users ORDER BY id")?,
        memberships: r.docs(
            "memberships",
            "SELECT doc FROM memberships ORDER BY workspace_id, user_id",
        )?,
        member_identities: r.member_identities()?,
        runbooks: r.docs(
            "runbooks",
            "SELECT doc FROM runbooks ORDER BY workspace_id, key_number",
        )?,
        runbook_versions: r.docs_in_workspace(
            "runbook_versions",
            "SELECT workspace_id, doc FROM runbook_versions ORDER BY runbook_id, version",
        )?,
        executions: r.executions()?,
        step_events: r.docs_in_workspace(
            "step_events",
            "SELECT workspace_id, doc FROM step_events ORDER BY execution_id, seq",
        )?,
        changes: r.docs(
            "changes",
            "SELECT doc FROM changes ORDER BY workspace_id, key_number",
        )?,
        incidents: r.docs(
            "incidents",
            "SELECT doc FROM incidents ORDER BY workspace_id, key_number",
        )?,
        key_counters: r.key_counters()?,
        audit: r.docs("audit", "SELECT doc FROM audit ORDER BY workspace_id, seq")?,
    };
    tx.finish().map_err(sqlite("ending the read transaction"))?;
    check_links(&snapshot)?;
    Ok(snapshot)
}

/// Refuses a missing file, or one that does not start with the SQLite header, before SQLite
/// opens it.
fn check_file(path: &Path) -> Result<(), TransferError> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(TransferError::SourceMissing(path.to_path_buf()));
        }
        Err(source) => {
            return Err(TransferError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mut header = Vec::with_capacity(SQLITE_HEADER.len());
    file.by_ref()
        .take(SQLITE_HEADER.len() as u64)
        .read_to_end(&mut header)
        .map_err(|source| TransferError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if header.as_slice() == SQLITE_HEADER {
        Ok(())
    } else {
        Err(TransferError::NotVigilo {
            path: path.to_path_buf(),
            reason: if header.is_empty() {
                "the file is empty".into()
            } else {
                "it is not an SQLite database file".into()
            },
        })
    }
}

/// Reads the tables of one source database.
struct Reader<'a> {
    conn: &'a Connection,
    path: &'a Path,
}

impl Reader<'_> {
    fn err(&self, table: &str) -> impl FnOnce(rusqlite::Error) -> TransferError {
        let path = self.path.to_path_buf();
        let doing = format!("reading table {table}");
        move |source| TransferError::Sqlite {
            path,
            doing,
            source,
        }
    }

    /// Every `doc` of `sql` (one column), decoded.
    fn docs<T: DeserializeOwned>(
        &self,
        table: &'static str,
        sql: &str,
    ) -> Result<Vec<Doc<T>>, TransferError> {
        let mut stmt = self.conn.prepare(sql).map_err(self.err(table))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.err(table))?;
        let mut out = Vec::new();
        for doc in rows {
            let doc = doc.map_err(self.err(table))?;
            out.push(decode(table, doc)?);
        }
        Ok(out)
    }

    /// Every execution, rebuilt from its header, snapshot and events; its `doc` is the whole
    /// execution as JSON (what the target splits again as it stores it).
    fn executions(&self) -> Result<Vec<Doc<Execution>>, TransferError> {
        let sql = format!(
            "SELECT {} FROM {} ORDER BY e.workspace_id, e.key_number",
            super::executions::COLUMNS,
            super::executions::FROM
        );
        let corrupt = |detail: String| TransferError::Corrupt {
            table: "executions",
            detail,
        };
        super::executions::read_executions(self.conn, &sql, [])
            .map_err(|e| corrupt(e.to_string()))?
            .into_iter()
            .map(|value| {
                let doc = serde_json::to_string(&value).map_err(|e| corrupt(e.to_string()))?;
                Ok(Doc { value, doc })
            })
            .collect()
    }

    /// Every `(workspace_id, doc)` of `sql`, decoded.
    fn docs_in_workspace<T: DeserializeOwned>(
        &self,
        table: &'static str,
        sql: &str,
    ) -> Result<Vec<(WorkspaceId, Doc<T>)>, TransferError> {
        let mut stmt = self.conn.prepare(sql).map_err(self.err(table))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(self.err(table))?;
        let mut out = Vec::new();
        for row in rows {
            let (ws, doc) = row.map_err(self.err(table))?;
            out.push((WorkspaceId(uuid(table, &ws)?), decode(table, doc)?));
        }
        Ok(out)
    }

    fn member_identities(&self) -> Result<Vec<ChatIdentityRow>, TransferError> {
        let table = "member_identities";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT workspace_id, platform, user, user_id FROM member_identities
                 ORDER BY workspace_id, platform, user",
            )
            .map_err(self.err(table))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(self.err(table))?;
        let mut out = Vec::new();
        for row in rows {
            let (workspace_id, platform, user, user_id) = row.map_err(self.err(table))?;
            out.push(ChatIdentityRow {
                workspace_id: uuid(table, &workspace_id)?,
                platform,
                user,
                user_id: uuid(table, &user_id)?,
            });
        }
        Ok(out)
    }

    fn key_counters(&self) -> Result<Vec<KeyCounterRow>, TransferError> {
        let table = "key_counters";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT workspace_id, kind, last FROM key_counters ORDER BY workspace_id, kind",
            )
            .map_err(self.err(table))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(self.err(table))?;
        let mut out = Vec::new();
        for row in rows {
            let (ws, kind, last) = row.map_err(self.err(table))?;
            let last = u64::try_from(last).map_err(|_| TransferError::Corrupt {
                table,
                detail: format!("the {kind} counter is negative ({last})"),
            })?;
            out.push(KeyCounterRow {
                workspace: WorkspaceId(uuid(table, &ws)?),
                kind,
                last,
            });
        }
        Ok(out)
    }
}

/// Decodes one `doc`, keeping its text.
fn decode<T: DeserializeOwned>(table: &'static str, doc: String) -> Result<Doc<T>, TransferError> {
    match serde_json::from_str(&doc) {
        Ok(value) => Ok(Doc { value, doc }),
        Err(e) => Err(TransferError::Corrupt {
            table,
            detail: e.to_string(),
        }),
    }
}

fn uuid(table: &'static str, s: &str) -> Result<Uuid, TransferError> {
    Uuid::parse_str(s).map_err(|e| TransferError::Corrupt {
        table,
        detail: format!("`{s}` is not an id: {e}"),
    })
}
