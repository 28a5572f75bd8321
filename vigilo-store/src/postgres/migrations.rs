//! The schema, as embedded migrations recorded in the `vigilo_schema_version` table.
//!
//! Migration `n` (1-based) takes a database from version `n - 1` to `n`, in one transaction
//! together with its row in `vigilo_schema_version`. A migration is SQL; one that must
//! convert documents (schema 4's executions) continues in Rust in the same transaction, run
//! right after its SQL (see `apply_missing`). Shipped migrations are never edited: a
//! schema change is a new entry at the end of [`MIGRATIONS`].
//!
//! Replicas may start at the same moment: a replica that finds migrations missing takes an
//! advisory lock (keyed by [`MIGRATION_LOCK`] and the schema), then runs each migration in a
//! transaction that reads the version again first, so exactly one replica applies each
//! migration and the others see it applied.
//!
//! The schema lives in the first schema of the connection's `search_path` (`public` unless the
//! URL says otherwise, e.g. `?options=-c%20search_path%3Dvigilo`).
//!
//! Conventions of the schema (those of the SQLite adapter): every entity is stored whole as
//! JSON text in `doc` (the core struct, read back with serde; `text` rather than `jsonb` so it
//! reads back byte for byte), next to real, indexed columns for what queries filter and sort
//! on — except executions since schema 4, stored as a header, a content-addressed snapshot of
//! their steps and their events, with a few state columns (see `lean`). Ids are `uuid`, key numbers, revisions and sequence numbers `bigint`, times
//! `timestamptz` (microseconds, the precision every store keeps). Text that queries compare or
//! sort is `COLLATE "C"`: byte order, like the in-memory reference store, whatever the
//! database's locale. Every table but `users` (global, a handle each) is keyed or
//! indexed by workspace.

use tokio_postgres::Client;
use tracing::info;

use super::error::PgError;

/// The seed of the advisory lock that serialises migrations: the ASCII bytes `VGLOmigr`. The
/// lock's key is `hashtextextended(current_schema(), MIGRATION_LOCK)`, so migrations of one
/// schema (of one database) are serialised, and Vigilo schemas side by side in one database
/// migrate independently.
pub const MIGRATION_LOCK: i64 = i64::from_be_bytes(*b"VGLOmigr");

/// Every migration, oldest first. Never edit an entry once shipped; append a new one.
pub const MIGRATIONS: &[&str] = &[
    MIGRATION_1,
    MIGRATION_2,
    MIGRATION_3,
    MIGRATION_4,
    super::stats::MIGRATION_5,
];

/// Schema 1: every table, its indexes, the runbook search columns and the audit guards.
const MIGRATION_1: &str = r#"
CREATE TABLE workspaces (
    id          uuid    NOT NULL PRIMARY KEY,
    slug        text    COLLATE "C" NOT NULL,
    slack_team  text    COLLATE "C",
    rev         bigint  NOT NULL,
    doc         text    NOT NULL,
    CONSTRAINT workspaces_slug_key UNIQUE (slug),
    CONSTRAINT workspaces_slack_team_key UNIQUE (slack_team)
);

-- The head of each workspace's audit chain: the last entry's seq (0 before the first) and
-- hash. Created with the workspace. Every commit locks its workspace's row (FOR UPDATE) just
-- before it appends its entry, which serialises the chain across every connection and process
-- while the row writes before it run concurrently.
CREATE TABLE audit_heads (
    workspace_id  uuid    NOT NULL PRIMARY KEY REFERENCES workspaces (id),
    seq           bigint  NOT NULL,
    hash          text    NOT NULL
);

CREATE TABLE users (
    id      uuid    NOT NULL PRIMARY KEY,
    handle  text    COLLATE "C" NOT NULL,
    rev     bigint  NOT NULL,
    doc     text    NOT NULL,
    CONSTRAINT users_handle_key UNIQUE (handle)
);

CREATE TABLE chat_identities (
    platform  text  COLLATE "C" NOT NULL,
    team      text  COLLATE "C" NOT NULL,
    "user"    text  COLLATE "C" NOT NULL,
    user_id   uuid  NOT NULL REFERENCES users (id),
    CONSTRAINT chat_identities_pkey PRIMARY KEY (platform, team, "user")
);
CREATE INDEX chat_identities_by_user ON chat_identities (user_id);

CREATE TABLE memberships (
    workspace_id  uuid    NOT NULL,
    user_id       uuid    NOT NULL REFERENCES users (id),
    rev           bigint  NOT NULL,
    doc           text    NOT NULL,
    CONSTRAINT memberships_pkey PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

-- `search` is the weighted full-text vector (title 'A', description 'B', step titles and
-- descriptions 'C'); `title_search` the title's alone, for the title-hit tier of the ranking.
-- Both are written with the row, in the same statement.
CREATE TABLE runbooks (
    id            uuid      NOT NULL PRIMARY KEY,
    workspace_id  uuid      NOT NULL,
    key_number    bigint    NOT NULL,
    category      text      COLLATE "C" NOT NULL,
    is_published  boolean   NOT NULL,
    owner         uuid      NOT NULL,
    archived      boolean   NOT NULL,
    rev           bigint    NOT NULL,
    search        tsvector  NOT NULL,
    title_search  tsvector  NOT NULL,
    doc           text      NOT NULL,
    CONSTRAINT runbooks_key UNIQUE (workspace_id, key_number)
);
CREATE INDEX runbooks_published_by_category
    ON runbooks (workspace_id, category, key_number) WHERE is_published AND NOT archived;
CREATE INDEX runbooks_drafts_by_owner
    ON runbooks (workspace_id, owner, key_number) WHERE NOT is_published AND NOT archived;
CREATE INDEX runbooks_archived
    ON runbooks (workspace_id, category, key_number) WHERE archived;
CREATE INDEX runbooks_search ON runbooks USING gin (search);

CREATE TABLE runbook_versions (
    runbook_id    uuid    NOT NULL REFERENCES runbooks (id),
    version       bigint  NOT NULL,
    workspace_id  uuid    NOT NULL,
    doc           text    NOT NULL,
    CONSTRAINT runbook_versions_pkey PRIMARY KEY (runbook_id, version)
);
CREATE INDEX runbook_versions_by_workspace ON runbook_versions (workspace_id);

CREATE TABLE executions (
    id                uuid    NOT NULL PRIMARY KEY,
    workspace_id      uuid    NOT NULL,
    key_number        bigint  NOT NULL,
    runbook_id        uuid    NOT NULL,
    runbook_version   bigint  NOT NULL,
    status            text    COLLATE "C" NOT NULL,
    change_id         uuid,
    channel_platform  text    COLLATE "C",
    channel_id        text    COLLATE "C",
    rev               bigint  NOT NULL,
    doc               text    NOT NULL,
    CONSTRAINT executions_key UNIQUE (workspace_id, key_number)
);
CREATE INDEX executions_by_runbook
    ON executions (workspace_id, runbook_id, key_number);
CREATE INDEX executions_open
    ON executions (workspace_id, key_number) WHERE status = 'running';
CREATE INDEX executions_by_change
    ON executions (workspace_id, change_id, key_number) WHERE change_id IS NOT NULL;
CREATE INDEX executions_by_channel
    ON executions (workspace_id, channel_platform, channel_id, key_number) WHERE channel_id IS NOT NULL;

CREATE TABLE step_events (
    execution_id  uuid    NOT NULL REFERENCES executions (id),
    seq           bigint  NOT NULL,
    workspace_id  uuid    NOT NULL,
    doc           text    NOT NULL,
    CONSTRAINT step_events_pkey PRIMARY KEY (execution_id, seq)
);
CREATE INDEX step_events_by_workspace ON step_events (workspace_id);

CREATE TABLE changes (
    id            uuid    NOT NULL PRIMARY KEY,
    workspace_id  uuid    NOT NULL,
    key_number    bigint  NOT NULL,
    status        text    COLLATE "C" NOT NULL,
    rev           bigint  NOT NULL,
    doc           text    NOT NULL,
    CONSTRAINT changes_key UNIQUE (workspace_id, key_number)
);

CREATE TABLE incidents (
    id            uuid    NOT NULL PRIMARY KEY,
    workspace_id  uuid    NOT NULL,
    key_number    bigint  NOT NULL,
    status        text    COLLATE "C" NOT NULL,
    rev           bigint  NOT NULL,
    doc           text    NOT NULL,
    CONSTRAINT incidents_key UNIQUE (workspace_id, key_number)
);

-- The last key number handed out, per workspace and kind (`runbook`, `change`, …). Bumped by
-- one autocommitted INSERT … ON CONFLICT DO UPDATE … RETURNING, which takes the row lock:
-- concurrent callers in any process get distinct, increasing numbers.
CREATE TABLE key_counters (
    workspace_id  uuid    NOT NULL,
    kind          text    COLLATE "C" NOT NULL,
    last          bigint  NOT NULL,
    CONSTRAINT key_counters_pkey PRIMARY KEY (workspace_id, kind)
);

-- The audit chain: `doc` is the whole sealed entry (what audit::Verifier re-checks); the
-- other columns are copies for filtering.
CREATE TABLE audit (
    workspace_id    uuid         NOT NULL,
    seq             bigint       NOT NULL,
    id              uuid         NOT NULL,
    at              timestamptz  NOT NULL,
    actor           uuid,
    action          text         COLLATE "C" NOT NULL,
    target          text         COLLATE "C" NOT NULL,
    link_runbook    text         COLLATE "C",
    link_change     text         COLLATE "C",
    link_incident   text         COLLATE "C",
    link_execution  text         COLLATE "C",
    hash            text         NOT NULL,
    doc             text         NOT NULL,
    CONSTRAINT audit_pkey PRIMARY KEY (workspace_id, seq),
    CONSTRAINT audit_id_key UNIQUE (id)
);
CREATE INDEX audit_by_target    ON audit (workspace_id, target, seq);
CREATE INDEX audit_by_actor     ON audit (workspace_id, actor, seq) WHERE actor IS NOT NULL;
CREATE INDEX audit_by_time      ON audit (workspace_id, at);
CREATE INDEX audit_by_runbook   ON audit (workspace_id, link_runbook, seq)   WHERE link_runbook IS NOT NULL;
CREATE INDEX audit_by_change    ON audit (workspace_id, link_change, seq)    WHERE link_change IS NOT NULL;
CREATE INDEX audit_by_incident  ON audit (workspace_id, link_incident, seq)  WHERE link_incident IS NOT NULL;
CREATE INDEX audit_by_execution ON audit (workspace_id, link_execution, seq) WHERE link_execution IS NOT NULL;

-- The trail is append-only: the store never edits or deletes an entry, and refuses to.
CREATE FUNCTION vigilo_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only';
END;
$$;
CREATE TRIGGER audit_no_update_or_delete BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION vigilo_audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION vigilo_audit_append_only();
"#;

/// Schema 2: `vigilo_step_transition`, a step transition (what every click commits) in one
/// statement, so in one round trip: the execution's new revision, its step event, and its audit
/// entry sealed after the chain head inside the database.
///
/// It does what the transaction of `write::step_transition` does, in the same order and with
/// the same locks: the execution update (`WHERE rev = expected`; on a moved or missing row it
/// writes nothing and returns the stored revision, `NULL` if none, with `o_seq` `NULL`), the
/// event insert, then the chain head locked `FOR UPDATE`. The entry's hash is the SHA-256 of the
/// template Vigilo computed (`vigilo_core::audit::hash_template`) with the head's `seq + 1` and
/// hash filled in; its document likewise. Called in autocommit, so the statement is the
/// transaction: the head lock is held only while it runs and commits. Also: executions pages
/// keep room for updates in place, and execution documents are compressed with lz4 where the
/// server supports it.
const MIGRATION_2: &str = r#"
CREATE FUNCTION vigilo_step_transition(
    p_workspace uuid, p_execution uuid, p_expected_rev bigint,
    p_key_number bigint, p_runbook uuid, p_runbook_version bigint, p_status text,
    p_change uuid, p_channel_platform text, p_channel_id text, p_rev bigint, p_doc text,
    p_event_seq bigint, p_event_doc text,
    p_audit_id uuid, p_at timestamptz, p_actor uuid, p_action text, p_target text,
    p_link_runbook text, p_link_change text, p_link_incident text, p_link_execution text,
    p_hash_head bytea, p_hash_middle bytea, p_hash_tail bytea,
    p_doc_head text, p_doc_middle text, p_genesis text,
    OUT o_seq bigint, OUT o_prev_hash text, OUT o_hash text, OUT o_stored_rev bigint)
LANGUAGE plpgsql AS $$
DECLARE
    head_seq bigint;
    head_hash text;
BEGIN
    UPDATE executions SET key_number = p_key_number, runbook_id = p_runbook,
        runbook_version = p_runbook_version, status = p_status, change_id = p_change,
        channel_platform = p_channel_platform, channel_id = p_channel_id, rev = p_rev,
        doc = p_doc
    WHERE id = p_execution AND workspace_id = p_workspace AND rev = p_expected_rev;
    IF NOT FOUND THEN
        SELECT rev INTO o_stored_rev FROM executions
        WHERE id = p_execution AND workspace_id = p_workspace;
        RETURN;
    END IF;
    INSERT INTO step_events (execution_id, seq, workspace_id, doc)
    VALUES (p_execution, p_event_seq, p_workspace, p_event_doc);
    SELECT seq, hash INTO head_seq, head_hash FROM audit_heads
    WHERE workspace_id = p_workspace FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'workspace % has no audit chain head', p_workspace
            USING ERRCODE = 'no_data_found';
    END IF;
    o_seq := head_seq + 1;
    o_prev_hash := CASE WHEN head_seq = 0 THEN p_genesis ELSE head_hash END;
    o_hash := encode(sha256(p_hash_head || convert_to(o_seq::text, 'UTF8') || p_hash_middle
        || convert_to(o_prev_hash, 'UTF8') || p_hash_tail), 'hex');
    INSERT INTO audit (workspace_id, seq, id, at, actor, action, target,
        link_runbook, link_change, link_incident, link_execution, hash, doc)
    VALUES (p_workspace, o_seq, p_audit_id, p_at, p_actor, p_action, p_target,
        p_link_runbook, p_link_change, p_link_incident, p_link_execution, o_hash,
        p_doc_head || o_seq::text || p_doc_middle || o_prev_hash || '","hash":"' || o_hash
            || '"}');
    UPDATE audit_heads SET seq = o_seq, hash = o_hash WHERE workspace_id = p_workspace;
    o_stored_rev := p_rev;
END;
$$;

-- An execution's document (its steps with the runbook snapshot, a few KB) is rewritten by every
-- step: leave room on each page for the new version, so the update stays on the page and writes
-- no index entries (a HOT update), and compress it with lz4 where the server has it (cheaper
-- than the default pglz, which showed up in profiles of step transitions).
ALTER TABLE executions SET (fillfactor = 70);
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings
               WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        EXECUTE 'ALTER TABLE executions ALTER COLUMN doc SET COMPRESSION lz4';
    END IF;
END;
$$;
"#;

/// Schema 3: people per workspace, and commits checked against the acting membership.
///
/// A user row keeps only the handle; each membership holds the workspace's view of the person
/// (display name, chat identities, removal), and chat identities are keyed by workspace
/// (`member_identities`), bound to whatever Slack team the workspace is linked to. Existing data
/// moves in place, as in the SQLite schema 2: every membership takes its user's display name; an
/// identity moves to the memberships of the workspace linked to its team, or, when it was mapped
/// before any link (empty team), to every membership of its user.
///
/// `vigilo_step_transition` takes the acting member and the membership revision the click was
/// checked at, and refuses the transition (SQLSTATE `VG001`, nothing applied) when the
/// membership moved, checked after the chain head lock like every other commit's invariants.
const MIGRATION_3: &str = r#"
CREATE TABLE member_identities (
    workspace_id  uuid  NOT NULL,
    platform      text  COLLATE "C" NOT NULL,
    "user"        text  COLLATE "C" NOT NULL,
    user_id       uuid  NOT NULL REFERENCES users (id),
    CONSTRAINT member_identities_pkey PRIMARY KEY (workspace_id, platform, "user")
);
CREATE INDEX member_identities_by_member ON member_identities (workspace_id, user_id);

INSERT INTO member_identities (workspace_id, platform, "user", user_id)
SELECT m.workspace_id, i.platform, i."user", i.user_id
FROM chat_identities i
JOIN memberships m ON m.user_id = i.user_id
JOIN workspaces w ON w.id = m.workspace_id
WHERE i.team = '' OR w.slack_team = i.team
ON CONFLICT DO NOTHING;

UPDATE memberships m SET doc = jsonb_set(jsonb_set(m.doc::jsonb,
    '{display_name}',
    coalesce((SELECT u.doc::jsonb -> 'display_name' FROM users u WHERE u.id = m.user_id),
             '""'::jsonb)),
    '{chat_identities}',
    (SELECT coalesce(jsonb_agg(jsonb_build_object('platform', i.platform, 'user', i."user")),
                     '[]'::jsonb)
     FROM member_identities i
     WHERE i.workspace_id = m.workspace_id AND i.user_id = m.user_id))::text;

UPDATE users SET doc = (doc::jsonb - 'display_name' - 'chat_identities')::text;

DROP TABLE chat_identities;

DROP FUNCTION vigilo_step_transition(
    uuid, uuid, bigint, bigint, uuid, bigint, text, uuid, text, text, bigint, text, bigint, text,
    uuid, timestamptz, uuid, text, text, text, text, text, text, bytea, bytea, bytea, text, text,
    text);

CREATE FUNCTION vigilo_step_transition(
    p_workspace uuid, p_execution uuid, p_expected_rev bigint,
    p_key_number bigint, p_runbook uuid, p_runbook_version bigint, p_status text,
    p_change uuid, p_channel_platform text, p_channel_id text, p_rev bigint, p_doc text,
    p_event_seq bigint, p_event_doc text,
    p_audit_id uuid, p_at timestamptz, p_actor uuid, p_action text, p_target text,
    p_link_runbook text, p_link_change text, p_link_incident text, p_link_execution text,
    p_hash_head bytea, p_hash_middle bytea, p_hash_tail bytea,
    p_doc_head text, p_doc_middle text, p_genesis text,
    p_acting_user uuid, p_acting_rev bigint,
    OUT o_seq bigint, OUT o_prev_hash text, OUT o_hash text, OUT o_stored_rev bigint)
LANGUAGE plpgsql AS $$
DECLARE
    head_seq bigint;
    head_hash text;
BEGIN
    UPDATE executions SET key_number = p_key_number, runbook_id = p_runbook,
        runbook_version = p_runbook_version, status = p_status, change_id = p_change,
        channel_platform = p_channel_platform, channel_id = p_channel_id, rev = p_rev,
        doc = p_doc
    WHERE id = p_execution AND workspace_id = p_workspace AND rev = p_expected_rev;
    IF NOT FOUND THEN
        SELECT rev INTO o_stored_rev FROM executions
        WHERE id = p_execution AND workspace_id = p_workspace;
        RETURN;
    END IF;
    INSERT INTO step_events (execution_id, seq, workspace_id, doc)
    VALUES (p_execution, p_event_seq, p_workspace, p_event_doc);
    SELECT seq, hash INTO head_seq, head_hash FROM audit_heads
    WHERE workspace_id = p_workspace FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'workspace % has no audit chain head', p_workspace
            USING ERRCODE = 'no_data_found';
    END IF;
    IF p_acting_user IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM memberships
        WHERE workspace_id = p_workspace AND user_id = p_acting_user AND rev = p_acting_rev
    ) THEN
        RAISE EXCEPTION 'the membership of user % moved since the action was checked',
            p_acting_user USING ERRCODE = 'VG001';
    END IF;
    o_seq := head_seq + 1;
    o_prev_hash := CASE WHEN head_seq = 0 THEN p_genesis ELSE head_hash END;
    o_hash := encode(sha256(p_hash_head || convert_to(o_seq::text, 'UTF8') || p_hash_middle
        || convert_to(o_prev_hash, 'UTF8') || p_hash_tail), 'hex');
    INSERT INTO audit (workspace_id, seq, id, at, actor, action, target,
        link_runbook, link_change, link_incident, link_execution, hash, doc)
    VALUES (p_workspace, o_seq, p_audit_id, p_at, p_actor, p_action, p_target,
        p_link_runbook, p_link_change, p_link_incident, p_link_execution, o_hash,
        p_doc_head || o_seq::text || p_doc_middle || o_prev_hash || '","hash":"' || o_hash
            || '"}');
    UPDATE audit_heads SET seq = o_seq, hash = o_hash WHERE workspace_id = p_workspace;
    o_stored_rev := p_rev;
END;
$$;
"#;

/// Schema 4: an execution is stored as what changes and what does not (issue 16).
///
/// - `execution_snapshots`: the steps an execution walks (`history::Snapshot`), one row per
///   distinct content and workspace, keyed by the SHA-256 of the document; written once
///   (`INSERT … ON CONFLICT DO NOTHING`) when an execution starts, never updated.
/// - `executions`: rebuilt with `doc` the header (`history::ExecutionHeader`, written at
///   insert only), `snapshot` (the hash), `rehearsal`, and the small state columns a step
///   updates — `status`, `current_step` (1-based, `NULL` once sealed), `updated_at` (the last
///   event's time), `rev` — placed last, so that a step's update in place logs only them.
/// - `step_events`: typed copies of the event (`kind`, `step_id`, `at`, `started_at`) for
///   queries; `doc` stays the event's JSON.
/// - `vigilo_step_transition` writes only the state columns, the event, the audit entry and the
///   chain head.
///
/// The statements below create the new tables and columns; `convert::schema_4` then converts
/// every execution in the same transaction (each checked with `history::replay` against its
/// old document first) and runs [`MIGRATION_4_FINISH`].
const MIGRATION_4: &str = r#"
CREATE TABLE execution_snapshots (
    workspace_id  uuid  NOT NULL,
    hash          text  COLLATE "C" NOT NULL,
    doc           text  NOT NULL,
    CONSTRAINT execution_snapshots_pkey PRIMARY KEY (workspace_id, hash)
);

CREATE TABLE executions_v4 (
    id                uuid         NOT NULL,
    workspace_id      uuid         NOT NULL,
    key_number        bigint       NOT NULL,
    runbook_id        uuid         NOT NULL,
    runbook_version   bigint       NOT NULL,
    change_id         uuid,
    channel_platform  text         COLLATE "C",
    channel_id        text         COLLATE "C",
    rehearsal         boolean      NOT NULL,
    snapshot          text         COLLATE "C" NOT NULL,
    doc               text         NOT NULL,
    status            text         COLLATE "C" NOT NULL,
    current_step      integer,
    updated_at        timestamptz  NOT NULL,
    rev               bigint       NOT NULL
) WITH (fillfactor = 70);

ALTER TABLE step_events
    ADD COLUMN kind        text         COLLATE "C",
    ADD COLUMN step_id     uuid,
    ADD COLUMN at          timestamptz,
    ADD COLUMN started_at  timestamptz;
"#;

/// The end of schema 4, after the executions were converted: the new table takes the old one's
/// name and indexes; the event columns become required; the step function is redefined.
///
/// The events' foreign key to `executions` is not made again: every event is written only
/// after its execution's row was written or updated in the same transaction (the insert and
/// the update both name the execution and its workspace), executions are never deleted, and
/// its check cost every step a row lock and a trigger's query.
pub(crate) const MIGRATION_4_FINISH: &str = r#"
ALTER TABLE step_events DROP CONSTRAINT step_events_execution_id_fkey;
DROP TABLE executions;
ALTER TABLE executions_v4 RENAME TO executions;
ALTER TABLE executions
    ADD CONSTRAINT executions_pkey PRIMARY KEY (id),
    ADD CONSTRAINT executions_key UNIQUE (workspace_id, key_number);
CREATE INDEX executions_by_runbook
    ON executions (workspace_id, runbook_id, key_number);
CREATE INDEX executions_open
    ON executions (workspace_id, key_number) WHERE status = 'running';
CREATE INDEX executions_by_change
    ON executions (workspace_id, change_id, key_number) WHERE change_id IS NOT NULL;
CREATE INDEX executions_by_channel
    ON executions (workspace_id, channel_platform, channel_id, key_number) WHERE channel_id IS NOT NULL;
ALTER TABLE step_events
    ALTER COLUMN kind SET NOT NULL,
    ALTER COLUMN at SET NOT NULL;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings
               WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        EXECUTE 'ALTER TABLE execution_snapshots ALTER COLUMN doc SET COMPRESSION lz4';
    END IF;
END;
$$;

DROP FUNCTION vigilo_step_transition(
    uuid, uuid, bigint, bigint, uuid, bigint, text, uuid, text, text, bigint, text, bigint, text,
    uuid, timestamptz, uuid, text, text, text, text, text, text, bytea, bytea, bytea, text, text,
    text, uuid, bigint);

CREATE FUNCTION vigilo_step_transition(
    p_workspace uuid, p_execution uuid, p_expected_rev bigint,
    p_status text, p_current_step integer, p_rev bigint,
    p_event_seq bigint, p_event_kind text, p_event_step uuid, p_event_at timestamptz,
    p_event_started_at timestamptz, p_event_doc text,
    p_audit_id uuid, p_at timestamptz, p_actor uuid, p_action text, p_target text,
    p_link_runbook text, p_link_change text, p_link_incident text, p_link_execution text,
    p_hash_head bytea, p_hash_middle bytea, p_hash_tail bytea,
    p_doc_head text, p_doc_middle text, p_genesis text,
    p_acting_user uuid, p_acting_rev bigint,
    OUT o_seq bigint, OUT o_prev_hash text, OUT o_hash text, OUT o_stored_rev bigint)
LANGUAGE plpgsql AS $$
DECLARE
    head_seq bigint;
    head_hash text;
BEGIN
    UPDATE executions SET status = p_status, current_step = p_current_step,
        updated_at = p_event_at, rev = p_rev
    WHERE id = p_execution AND workspace_id = p_workspace AND rev = p_expected_rev;
    IF NOT FOUND THEN
        SELECT rev INTO o_stored_rev FROM executions
        WHERE id = p_execution AND workspace_id = p_workspace;
        RETURN;
    END IF;
    INSERT INTO step_events (execution_id, seq, workspace_id, doc, kind, step_id, at, started_at)
    VALUES (p_execution, p_event_seq, p_workspace, p_event_doc, p_event_kind, p_event_step,
        p_event_at, p_event_started_at);
    SELECT seq, hash INTO head_seq, head_hash FROM audit_heads
    WHERE workspace_id = p_workspace FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'workspace % has no audit chain head', p_workspace
            USING ERRCODE = 'no_data_found';
    END IF;
    IF p_acting_user IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM memberships
        WHERE workspace_id = p_workspace AND user_id = p_acting_user AND rev = p_acting_rev
    ) THEN
        RAISE EXCEPTION 'the membership of user % moved since the action was checked',
            p_acting_user USING ERRCODE = 'VG001';
    END IF;
    o_seq := head_seq + 1;
    o_prev_hash := CASE WHEN head_seq = 0 THEN p_genesis ELSE head_hash END;
    o_hash := encode(sha256(p_hash_head || convert_to(o_seq::text, 'UTF8') || p_hash_middle
        || convert_to(o_prev_hash, 'UTF8') || p_hash_tail), 'hex');
    INSERT INTO audit (workspace_id, seq, id, at, actor, action, target,
        link_runbook, link_change, link_incident, link_execution, hash, doc)
    VALUES (p_workspace, o_seq, p_audit_id, p_at, p_actor, p_action, p_target,
        p_link_runbook, p_link_change, p_link_incident, p_link_execution, o_hash,
        p_doc_head || o_seq::text || p_doc_middle || o_prev_hash || '","hash":"' || o_hash
            || '"}');
    UPDATE audit_heads SET seq = o_seq, hash = o_hash WHERE workspace_id = p_workspace;
    o_stored_rev := p_rev;
END;
$$;
"#;

/// The schema version the database is at (0 when it has no Vigilo schema yet).
async fn current_version(
    client: &impl tokio_postgres::GenericClient,
) -> Result<i32, tokio_postgres::Error> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('vigilo_schema_version') IS NOT NULL",
            &[],
        )
        .await?
        .try_get(0)?;
    if !exists {
        return Ok(0);
    }
    client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM vigilo_schema_version",
            &[],
        )
        .await?
        .try_get(0)
}

/// Refuses a database whose schema is newer than `migrations` know.
fn check_not_newer(found: i32, migrations: &[&str]) -> Result<(), PgError> {
    if usize::try_from(found).unwrap_or(usize::MAX) > migrations.len() {
        Err(PgError::TooNew {
            found,
            known: migrations.len(),
        })
    } else {
        Ok(())
    }
}

/// Applies every migration of `migrations` the database lacks, each in its own transaction,
/// with its version row, while holding the advisory lock of [`MIGRATION_LOCK`]. A database
/// already up to date is only read (no lock, no write).
///
/// The lock is a session lock taken *before* each migration's transaction begins: a
/// transaction that began before another replica's migration committed could keep seeing its
/// catalog as it was (PostgreSQL refreshes cached catalog lookups at transaction start), and
/// would try to create the tables again. On error the caller must close the connection, which
/// releases the lock if unlocking failed.
pub(crate) async fn migrate(client: &mut Client, migrations: &[&str]) -> Result<(), PgError> {
    let found = current_version(&*client)
        .await
        .map_err(|source| PgError::Migration { version: 0, source })?;
    check_not_newer(found, migrations)?;
    if usize::try_from(found).unwrap_or(usize::MAX) >= migrations.len() {
        return Ok(());
    }
    let lock = |what: &str| {
        format!("SELECT {what}(hashtextextended(coalesce(current_schema(), ''), {MIGRATION_LOCK}))")
    };
    client
        .batch_execute(&lock("pg_advisory_lock"))
        .await
        .map_err(|source| PgError::Migration { version: 0, source })?;
    let result = apply_missing(client, migrations).await;
    let unlocked = client.batch_execute(&lock("pg_advisory_unlock")).await;
    result?;
    unlocked.map_err(|source| PgError::Migration { version: 0, source })
}

/// Applies the migrations the database lacks, reading its version afresh (under the lock).
async fn apply_missing(client: &mut Client, migrations: &[&str]) -> Result<(), PgError> {
    for (index, sql) in migrations.iter().enumerate() {
        let target = i32::try_from(index + 1).unwrap_or(i32::MAX);
        let failed = |source| PgError::Migration {
            version: target,
            source,
        };
        let tx = client.transaction().await.map_err(failed)?;
        let now = current_version(&tx).await.map_err(failed)?;
        check_not_newer(now, migrations)?;
        if now >= target {
            // Applied meanwhile (by another replica).
            tx.commit().await.map_err(failed)?;
            continue;
        }
        if now == 0 {
            tx.batch_execute(
                "CREATE TABLE vigilo_schema_version (
                     version     integer      NOT NULL PRIMARY KEY,
                     applied_at  timestamptz  NOT NULL DEFAULT now()
                 )",
            )
            .await
            .map_err(failed)?;
        }
        tx.batch_execute(sql).await.map_err(failed)?;
        if *sql == MIGRATION_4 {
            super::convert::schema_4(&tx, target).await?;
        }
        tx.execute(
            "INSERT INTO vigilo_schema_version (version) VALUES ($1)",
            &[&target],
        )
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        info!(version = target, "applied PostgreSQL schema migration");
    }
    Ok(())
}
