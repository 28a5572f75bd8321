//! The schema, as embedded migrations counted with `PRAGMA user_version`.
//!
//! Migration `n` (1-based) takes a database from `user_version = n - 1` to `n`, in one
//! transaction together with the version bump. Shipped migrations are never edited: a schema
//! change is a new entry at the end of [`MIGRATIONS`].
//!
//! Conventions of the schema: every entity is stored whole as JSON in `doc` (the core struct,
//! read back with serde), next to real, indexed columns for what queries filter and sort on.
//! Every table is keyed or indexed by workspace (users, which are global and hold only a handle,
//! excepted). Times in columns are microseconds since the Unix epoch.

use rusqlite::{Connection, TransactionBehavior};
use tracing::info;

/// `PRAGMA application_id` of a Vigilo database: the ASCII bytes `VGLO` (0x56474C4F).
pub const APPLICATION_ID: i32 = i32::from_be_bytes(*b"VGLO");

/// One schema migration: its SQL, then, when rows must be rewritten by code (a hash, a check
/// through the core's rules), a conversion run in the same transaction.
#[derive(Clone, Copy)]
pub struct Migration {
    /// The schema change.
    pub sql: &'static str,
    /// Rewrites rows after `sql`, before the version bump; an error rolls both back.
    pub convert: Option<fn(&Connection) -> rusqlite::Result<()>>,
}

impl std::fmt::Debug for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migration")
            .field("sql", &self.sql)
            .field("convert", &self.convert.is_some())
            .finish()
    }
}

impl Migration {
    /// A migration that is SQL only.
    pub const fn sql(sql: &'static str) -> Self {
        Self { sql, convert: None }
    }
}

/// Every migration, oldest first. Never edit an entry once shipped; append a new one.
pub const MIGRATIONS: &[Migration] = &[
    Migration::sql(MIGRATION_1),
    Migration::sql(MIGRATION_2),
    Migration {
        sql: super::executions::MIGRATION_3,
        convert: Some(super::executions::convert_executions),
    },
    Migration::sql(super::stats::MIGRATION_4),
];

/// Schema 1: every table, its indexes, the runbook search index and the audit guards.
const MIGRATION_1: &str = r#"
PRAGMA application_id = 1447513167;

CREATE TABLE workspaces (
    id          TEXT    NOT NULL PRIMARY KEY,
    slug        TEXT    NOT NULL UNIQUE,
    slack_team  TEXT    UNIQUE,
    rev         INTEGER NOT NULL,
    doc         TEXT    NOT NULL
) STRICT;

CREATE TABLE users (
    id      TEXT    NOT NULL PRIMARY KEY,
    handle  TEXT    NOT NULL UNIQUE,
    rev     INTEGER NOT NULL,
    doc     TEXT    NOT NULL
) STRICT;

CREATE TABLE chat_identities (
    platform  TEXT NOT NULL,
    team      TEXT NOT NULL,
    user      TEXT NOT NULL,
    user_id   TEXT NOT NULL REFERENCES users (id),
    PRIMARY KEY (platform, team, user)
) STRICT;
CREATE INDEX chat_identities_by_user ON chat_identities (user_id);

CREATE TABLE memberships (
    workspace_id  TEXT    NOT NULL,
    user_id       TEXT    NOT NULL REFERENCES users (id),
    rev           INTEGER NOT NULL,
    doc           TEXT    NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
) STRICT;
CREATE INDEX memberships_by_user ON memberships (user_id);

-- `pk` is the stable rowid shared with `runbook_search` (an explicit INTEGER PRIMARY KEY, so
-- VACUUM cannot renumber it).
CREATE TABLE runbooks (
    pk            INTEGER PRIMARY KEY,
    id            TEXT    NOT NULL UNIQUE,
    workspace_id  TEXT    NOT NULL,
    key_number    INTEGER NOT NULL,
    category      TEXT    NOT NULL,
    is_published  INTEGER NOT NULL,
    owner         TEXT    NOT NULL,
    archived      INTEGER NOT NULL,
    rev           INTEGER NOT NULL,
    doc           TEXT    NOT NULL,
    UNIQUE (workspace_id, key_number)
) STRICT;
CREATE INDEX runbooks_published_by_category
    ON runbooks (workspace_id, category, key_number) WHERE is_published = 1 AND archived = 0;
CREATE INDEX runbooks_drafts_by_owner
    ON runbooks (workspace_id, owner, key_number) WHERE is_published = 0 AND archived = 0;
CREATE INDEX runbooks_archived
    ON runbooks (workspace_id, category, key_number) WHERE archived = 1;

-- Full-text index of each runbook (rowid = runbooks.pk): its title, its description, and the
-- title and description of every step. Written in the same transaction as the runbook row.
CREATE VIRTUAL TABLE runbook_search USING fts5 (
    title, description, steps,
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TABLE runbook_versions (
    runbook_id    TEXT    NOT NULL REFERENCES runbooks (id),
    version       INTEGER NOT NULL,
    workspace_id  TEXT    NOT NULL,
    doc           TEXT    NOT NULL,
    PRIMARY KEY (runbook_id, version)
) STRICT;
CREATE INDEX runbook_versions_by_workspace ON runbook_versions (workspace_id);

CREATE TABLE executions (
    id                TEXT    NOT NULL PRIMARY KEY,
    workspace_id      TEXT    NOT NULL,
    key_number        INTEGER NOT NULL,
    runbook_id        TEXT    NOT NULL,
    runbook_version   INTEGER NOT NULL,
    status            TEXT    NOT NULL,
    change_id         TEXT,
    channel_platform  TEXT,
    channel_id        TEXT,
    rev               INTEGER NOT NULL,
    doc               TEXT    NOT NULL,
    UNIQUE (workspace_id, key_number)
) STRICT;
CREATE INDEX executions_by_runbook
    ON executions (workspace_id, runbook_id, key_number);
CREATE INDEX executions_open
    ON executions (workspace_id, key_number) WHERE status = 'running';
CREATE INDEX executions_by_change
    ON executions (workspace_id, change_id, key_number) WHERE change_id IS NOT NULL;
CREATE INDEX executions_by_channel
    ON executions (workspace_id, channel_platform, channel_id, key_number) WHERE channel_id IS NOT NULL;

CREATE TABLE step_events (
    execution_id  TEXT    NOT NULL REFERENCES executions (id),
    seq           INTEGER NOT NULL,
    workspace_id  TEXT    NOT NULL,
    doc           TEXT    NOT NULL,
    PRIMARY KEY (execution_id, seq)
) STRICT;
CREATE INDEX step_events_by_workspace ON step_events (workspace_id);

CREATE TABLE changes (
    id            TEXT    NOT NULL PRIMARY KEY,
    workspace_id  TEXT    NOT NULL,
    key_number    INTEGER NOT NULL,
    status        TEXT    NOT NULL,
    rev           INTEGER NOT NULL,
    doc           TEXT    NOT NULL,
    UNIQUE (workspace_id, key_number)
) STRICT;

CREATE TABLE incidents (
    id            TEXT    NOT NULL PRIMARY KEY,
    workspace_id  TEXT    NOT NULL,
    key_number    INTEGER NOT NULL,
    status        TEXT    NOT NULL,
    rev           INTEGER NOT NULL,
    doc           TEXT    NOT NULL,
    UNIQUE (workspace_id, key_number)
) STRICT;

-- The last key number handed out, per workspace and kind (`runbook`, `change`, …).
CREATE TABLE key_counters (
    workspace_id  TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    last          INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, kind)
) STRICT, WITHOUT ROWID;

-- The audit chain: `doc` is the whole sealed entry (what audit::Verifier re-checks); the
-- other columns are copies for filtering. `at` is in microseconds, the precision of the hash.
CREATE TABLE audit (
    workspace_id    TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    id              TEXT    NOT NULL UNIQUE,
    at              INTEGER NOT NULL,
    actor           TEXT,
    action          TEXT    NOT NULL,
    target          TEXT    NOT NULL,
    link_runbook    TEXT,
    link_change     TEXT,
    link_incident   TEXT,
    link_execution  TEXT,
    hash            TEXT    NOT NULL,
    doc             TEXT    NOT NULL,
    PRIMARY KEY (workspace_id, seq)
) STRICT;
CREATE INDEX audit_by_target    ON audit (workspace_id, target, seq);
CREATE INDEX audit_by_actor     ON audit (workspace_id, actor, seq) WHERE actor IS NOT NULL;
CREATE INDEX audit_by_time      ON audit (workspace_id, at);
CREATE INDEX audit_by_runbook   ON audit (workspace_id, link_runbook, seq)   WHERE link_runbook IS NOT NULL;
CREATE INDEX audit_by_change    ON audit (workspace_id, link_change, seq)    WHERE link_change IS NOT NULL;
CREATE INDEX audit_by_incident  ON audit (workspace_id, link_incident, seq)  WHERE link_incident IS NOT NULL;
CREATE INDEX audit_by_execution ON audit (workspace_id, link_execution, seq) WHERE link_execution IS NOT NULL;

-- The trail is append-only: the store never edits or deletes an entry, and refuses to.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE (ABORT, 'audit entries are append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE (ABORT, 'audit entries are append-only'); END;
"#;

/// Schema 2: people per workspace. A user row keeps only the handle; each membership holds the
/// workspace's view of the person (display name, chat identities, removal), and chat identities
/// are keyed by workspace (`member_identities`), bound to whatever Slack team the workspace is
/// linked to. Existing data moves in place: every membership takes its user's display name; an
/// identity moves to the memberships of the workspace linked to its team, or, when it was mapped
/// before any link (empty team), to every membership of its user.
const MIGRATION_2: &str = r#"
CREATE TABLE member_identities (
    workspace_id  TEXT NOT NULL,
    platform      TEXT NOT NULL,
    user          TEXT NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (id),
    PRIMARY KEY (workspace_id, platform, user)
) STRICT;
CREATE INDEX member_identities_by_member ON member_identities (workspace_id, user_id);

INSERT OR IGNORE INTO member_identities (workspace_id, platform, user, user_id)
SELECT m.workspace_id, i.platform, i.user, i.user_id
FROM chat_identities i
JOIN memberships m ON m.user_id = i.user_id
JOIN workspaces w ON w.id = m.workspace_id
WHERE i.team = '' OR w.slack_team = i.team;

UPDATE memberships SET doc = json_set(doc,
    '$.display_name',
    coalesce((SELECT json_extract(u.doc, '$.display_name') FROM users u
              WHERE u.id = memberships.user_id), ''),
    '$.chat_identities',
    json((SELECT json_group_array(json_object('platform', i.platform, 'user', i.user))
          FROM member_identities i
          WHERE i.workspace_id = memberships.workspace_id
            AND i.user_id = memberships.user_id)));

UPDATE users SET doc = json_remove(doc, '$.display_name', '$.chat_identities');

DROP INDEX chat_identities_by_user;
DROP TABLE chat_identities;
"#;

/// The schema version a database is at (`PRAGMA user_version`).
pub(crate) fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Applies every migration of `migrations` the database lacks, each in its own
/// `BEGIN IMMEDIATE` transaction with its version bump. A concurrent process migrating the same
/// file is harmless: the version is read again under the write lock.
pub(crate) fn migrate(conn: &mut Connection, migrations: &[Migration]) -> rusqlite::Result<()> {
    for (index, migration) in migrations.iter().enumerate() {
        let target = i64::try_from(index + 1).unwrap_or(i64::MAX);
        if schema_version(conn)? >= target {
            continue;
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if schema_version(&tx)? >= target {
            continue;
        }
        tx.execute_batch(migration.sql)?;
        if let Some(convert) = migration.convert {
            convert(&tx)?;
        }
        tx.pragma_update(None, "user_version", target)?;
        tx.commit()?;
        info!(version = target, "applied schema migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_1_sets_the_vigilo_application_id() {
        assert!(MIGRATION_1.contains(&format!("PRAGMA application_id = {APPLICATION_ID};")));
    }
}
