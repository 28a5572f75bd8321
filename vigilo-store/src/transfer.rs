//! Copying a whole Vigilo database from one store to another (feature `postgres`): what
//! `vigilo migrate --from sqlite:PATH --to postgres://…` runs.
//!
//! [`read_sqlite`] (the SQLite side, which lives next to the SQLite adapter in
//! `sqlite/export.rs`) reads every row of an SQLite database into a [`Snapshot`], in one read
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
use std::path::PathBuf;

use uuid::Uuid;
use vigilo_core::audit::{self, AuditEntry, Tamper};
use vigilo_core::change::ChangeRequest;
use vigilo_core::execution::{Execution, StepEvent};
use vigilo_core::ids::WorkspaceId;
use vigilo_core::incident::Incident;
use vigilo_core::runbook::{Runbook, RunbookVersion};
use vigilo_core::workspace::{Membership, User, Workspace};

pub use crate::sqlite::export::read_sqlite;

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

/// Refuses rows whose workspace is not in the snapshot (they could not be written to a
/// database with the same constraints, and would be unreachable anyway).
pub(crate) fn check_links(s: &Snapshot) -> Result<(), TransferError> {
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
