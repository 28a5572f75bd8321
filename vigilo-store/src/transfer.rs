//! Copying a whole Vigilo database from one store to another (feature `postgres`): what
//! `vigilo migrate --from sqlite:PATH --to postgres://…` runs.
//!
//! [`read_sqlite`] reads every row of an SQLite database into a [`Snapshot`], in one read
//! transaction on a read-only connection (the file is never written); each row's JSON
//! document is decoded into its core type, so a row that is not Vigilo's is refused rather
//! than copied. [`crate::postgres::PgStore::import_snapshot`] then writes the snapshot into an
//! empty PostgreSQL database in one transaction.
//!
//! Everything is copied as it is: ids, keys and the key counters (so the next key handed out
//! continues the sequence), revisions, every runbook version, executions and their events,
//! changes, incidents, users with their chat identities and memberships, and every audit entry
//! byte for byte (so the hash chain verifies on the target exactly as on the source). Nothing
//! passes through [`vigilo_core::store::Store::commit`], which would seal new entries.
//!
//! The snapshot is held in memory, each row decoded and as text: roughly twice the size of the
//! SQLite file's rows (a million audit entries take a gigabyte or two).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use serde::de::DeserializeOwned;
use uuid::Uuid;
use vigilo_core::audit::{self, AuditEntry, Tamper};
use vigilo_core::change::ChangeRequest;
use vigilo_core::execution::{Execution, StepEvent};
use vigilo_core::ids::WorkspaceId;
use vigilo_core::incident::Incident;
use vigilo_core::runbook::{Runbook, RunbookVersion};
use vigilo_core::workspace::{Membership, User, Workspace};

use crate::sqlite::{APPLICATION_ID, MIGRATIONS};

/// The tables a copy fills, in the order they are written (parents before children). The
/// names are those of both schemas.
pub const TABLES: [&str; 12] = [
    "workspaces",
    "users",
    "memberships",
    "member_identities",
    "runbooks",
    "runbook_versions",
    "executions",
    "step_events",
    "changes",
    "incidents",
    "key_counters",
    "audit",
];

/// Rows per table, by name (every name of [`TABLES`]).
pub type TableCounts = BTreeMap<&'static str, u64>;

/// Why a copy failed or was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The source file does not exist.
    #[error("there is no database at {}; check the path given to --from", .0.display())]
    SourceMissing(PathBuf),
    /// The source is not a Vigilo database (another program's file). It was not modified.
    #[error("{} is not a Vigilo database ({reason}); nothing was copied", .path.display())]
    NotVigilo {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// The source's schema is not the one this build reads.
    #[error(
        "{} has schema version {found}, but this build of Vigilo copies version {known}; {hint}",
        .path.display()
    )]
    SchemaVersion {
        /// The file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The version this build copies.
        known: usize,
        /// What to do.
        hint: &'static str,
    },
    /// SQLite failed while reading the source.
    #[error("cannot read {} ({doing}): {source}", .path.display())]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What was being read.
        doing: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The source file could not be read at all.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A row of the source could not be understood.
    #[error("the source's table {table} holds a row Vigilo cannot read: {detail}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The source's audit chain does not verify: copying it would hide the tampering.
    #[error(
        "the audit chain of workspace {workspace} in the source is broken at entry {}: {}; \
         nothing was copied (run `vigilo --db <source> --workspace {workspace} audit verify` to see it)",
        .tamper.seq, .tamper.problem
    )]
    SourceTampered {
        /// The workspace's slug.
        workspace: String,
        /// Where the chain breaks.
        tamper: Tamper,
    },
    /// The target already holds data; nothing was written.
    #[error(
        "the target database already holds Vigilo data ({found}); nothing was copied. \
         Migrate into a new, empty database (e.g. `createdb vigilo`), or drop this one's data \
         first if it is really meant to be replaced"
    )]
    TargetNotEmpty {
        /// The tables with rows, and how many.
        found: String,
    },
    /// A PostgreSQL statement failed; the transaction was rolled back, nothing was copied.
    #[error("PostgreSQL failed while {doing}: {source}; nothing was copied")]
    Postgres {
        /// What was being done.
        doing: String,
        /// The server's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// No connection to the target could be had.
    #[error("cannot get a connection to the target PostgreSQL: {0}")]
    Pool(String),
    /// After writing, the target's row count of a table differs from the source's.
    #[error(
        "table {table} has {target} rows in the target but {source_rows} in the source; the \
         copy was rolled back"
    )]
    CountMismatch {
        /// The table.
        table: &'static str,
        /// Rows in the source.
        source_rows: u64,
        /// Rows in the target.
        target: u64,
    },
}

/// A row as stored: its decoded value and its JSON document exactly as the source holds it.
#[derive(Clone, Debug)]
pub struct Doc<T> {
    /// The decoded row.
    pub value: T,
    /// The `doc` column, byte for byte.
    pub doc: String,
}

/// A chat identity row (`platform`, `team`, `user` → the user's id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatIdentityRow {
    /// The workspace whose member it maps to.
    pub workspace_id: Uuid,
    /// The chat platform, e.g. `slack`.
    pub platform: String,
    /// The platform's user id.
    pub user: String,
    /// The Vigilo user.
    pub user_id: Uuid,
}

/// A key counter row: the last number handed out for one kind of key in one workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyCounterRow {
    /// The workspace.
    pub workspace: WorkspaceId,
    /// The kind (`runbook`, `change`, …).
    pub kind: String,
    /// The last number handed out.
    pub last: u64,
}

/// One workspace's audit chain as found by [`Snapshot::verify_chains`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSummary {
    /// The workspace.
    pub workspace: WorkspaceId,
    /// Its slug.
    pub slug: String,
    /// Entries in its chain.
    pub entries: u64,
    /// The last entry's hash.
    pub head: Option<String>,
}

/// Every row of a Vigilo database, read in one transaction.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Workspaces.
    pub workspaces: Vec<Doc<Workspace>>,
    /// Users (global).
    pub users: Vec<Doc<User>>,
    /// Memberships.
    pub memberships: Vec<Doc<Membership>>,
    /// Chat identities of members, per workspace.
    pub member_identities: Vec<ChatIdentityRow>,
    /// Runbooks.
    pub runbooks: Vec<Doc<Runbook>>,
    /// Every saved version of every runbook, with its workspace.
    pub runbook_versions: Vec<(WorkspaceId, Doc<RunbookVersion>)>,
    /// Executions.
    pub executions: Vec<Doc<Execution>>,
    /// Step events, with their workspace.
    pub step_events: Vec<(WorkspaceId, Doc<StepEvent>)>,
    /// Change requests.
    pub changes: Vec<Doc<ChangeRequest>>,
    /// Incidents.
    pub incidents: Vec<Doc<Incident>>,
    /// Key counters.
    pub key_counters: Vec<KeyCounterRow>,
    /// Audit entries, by workspace then `seq`.
    pub audit: Vec<Doc<AuditEntry>>,
}

impl Snapshot {
    /// Rows per table.
    pub fn counts(&self) -> TableCounts {
        let n = |len: usize| u64::try_from(len).unwrap_or(u64::MAX);
        let mut c = TableCounts::new();
        c.insert("workspaces", n(self.workspaces.len()));
        c.insert("users", n(self.users.len()));
        c.insert("memberships", n(self.memberships.len()));
        c.insert("member_identities", n(self.member_identities.len()));
        c.insert("runbooks", n(self.runbooks.len()));
        c.insert("runbook_versions", n(self.runbook_versions.len()));
        c.insert("executions", n(self.executions.len()));
        c.insert("step_events", n(self.step_events.len()));
        c.insert("changes", n(self.changes.len()));
        c.insert("incidents", n(self.incidents.len()));
        c.insert("key_counters", n(self.key_counters.len()));
        c.insert("audit", n(self.audit.len()));
        c
    }

    /// Verifies every workspace's audit chain as read (the same check as `vigilo audit
    /// verify`), so a tampered trail is never copied as if it were intact.
    pub fn verify_chains(&self) -> Result<Vec<ChainSummary>, TransferError> {
        let mut out = Vec::with_capacity(self.workspaces.len());
        for ws in &self.workspaces {
            let id = ws.value.id;
            let mut v = audit::Verifier::new();
            for e in self.audit.iter().filter(|e| e.value.workspace == id) {
                v.push(&e.value)
                    .map_err(|tamper| TransferError::SourceTampered {
                        workspace: ws.value.slug.to_string(),
                        tamper,
                    })?;
            }
            out.push(ChainSummary {
                workspace: id,
                slug: ws.value.slug.to_string(),
                entries: v.count(),
                head: v.head().map(str::to_owned),
            });
        }
        Ok(out)
    }
}

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
        executions: r.docs(
            "executions",
            "SELECT doc FROM executions ORDER BY workspace_id, key_number",
        )?,
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

/// Refuses rows whose workspace is not in the snapshot (they could not be written to a
/// database with the same constraints, and would be unreachable anyway).
fn check_links(s: &Snapshot) -> Result<(), TransferError> {
    let known: std::collections::BTreeSet<WorkspaceId> =
        s.workspaces.iter().map(|w| w.value.id).collect();
    let check = |table: &'static str, ws: WorkspaceId| {
        if known.contains(&ws) {
            Ok(())
        } else {
            Err(TransferError::Corrupt {
                table,
                detail: format!("a row belongs to workspace {ws}, which does not exist"),
            })
        }
    };
    for m in &s.memberships {
        check("memberships", m.value.workspace)?;
    }
    for r in &s.runbooks {
        check("runbooks", r.value.workspace)?;
    }
    for e in &s.executions {
        check("executions", e.value.workspace)?;
    }
    for c in &s.changes {
        check("changes", c.value.workspace)?;
    }
    for i in &s.incidents {
        check("incidents", i.value.workspace)?;
    }
    for k in &s.key_counters {
        check("key_counters", k.workspace)?;
    }
    for a in &s.audit {
        check("audit", a.value.workspace)?;
    }
    Ok(())
}
