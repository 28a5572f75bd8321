//! One commit's row writes and its audit entry, run inside the transaction
//! [`super::PgStore`] opened for it. Any error leaves the transaction to be rolled back.
//!
//! The rules are those of [`vigilo_core::store::Write`], checked in the order of the SQLite
//! adapter (and so of the in-memory reference store): a row of another workspace is
//! `NotFound`; an insert of an existing id or unique value is `AlreadyExists` (the unique
//! constraints decide, under PostgreSQL's own locking, so two replicas inserting the same
//! handle at once get one winner); an update of a moved revision is `Conflict` (`UPDATE …
//! WHERE id AND workspace_id AND rev`, then a look at the stored revision to tell `Conflict`
//! from `NotFound`); the written value must carry its new revision.
//!
//! The audit chain: after the row writes, the commit locks its workspace's row of
//! `audit_heads` (`SELECT … FOR UPDATE`, which also proves the workspace exists), seals its
//! entry after that head, appends it and moves the head, all in the same transaction. The lock
//! is held until `COMMIT`, so appends to one chain are serialised across every connection and
//! process; a concurrent appender waits and then reads the head as committed (PostgreSQL
//! re-reads a row locked `FOR UPDATE` after the wait). The head lock is always the last lock a
//! commit takes, so it adds no deadlock.

use std::collections::BTreeSet;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

use chrono::{DateTime, Utc};

use deadpool_postgres::{Client, Transaction};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use uuid::Uuid;
use vigilo_core::audit::{self, AuditEntry, AuditLinks};
use vigilo_core::change::ChangeRequest;
use vigilo_core::execution::{Execution, StepEvent};
use vigilo_core::ids::{Key, KeyKind, WorkspaceId};
use vigilo_core::incident::Incident;
use vigilo_core::runbook::{Runbook, RunbookVersion};
use vigilo_core::store::{self, Commit, StoreError, StoreResult, Write};
use vigilo_core::workspace::{Membership, User, Workspace};

use super::error::{Fail, fail, store_err, violated};
use super::lean::{self, EventColumns, ExecutionParts, ExecutionState};
use super::rows::{Params, int, micros, to_doc, uint};
use crate::shared::SearchText;

/// A sealed entry, and the id of the transaction that appends it (to learn, if the connection
/// breaks during `COMMIT`, whether it committed).
pub(crate) struct Sealed {
    /// The entry as appended.
    pub entry: AuditEntry,
    /// `txid_current()` of the transaction.
    pub txid: i64,
    /// `pg_backend_pid()` of the connection that ran it.
    pub pid: i32,
}

/// Runs `sql` (prepared once per connection) and returns how many rows it changed.
async fn exec(
    tx: &Transaction<'_>,
    sql: &str,
    params: &Params<'_>,
) -> Result<u64, tokio_postgres::Error> {
    let stmt = tx.prepare_cached(sql).await?;
    tx.execute(&stmt, params).await
}

/// Runs `sql` (prepared once per connection) and returns its row, if any.
async fn query_opt(
    tx: &Transaction<'_>,
    sql: &str,
    params: &Params<'_>,
) -> Result<Option<Row>, tokio_postgres::Error> {
    let stmt = tx.prepare_cached(sql).await?;
    tx.query_opt(&stmt, params).await
}

/// Hands out the next key of `kind` in `workspace`: one autocommitted statement whose
/// `ON CONFLICT DO UPDATE` locks the counter row, so concurrent callers in any process get
/// distinct, increasing numbers. `NotFound` when the workspace does not exist.
pub(crate) async fn allocate_key(
    c: &Client,
    workspace: WorkspaceId,
    kind: KeyKind,
) -> StoreResult<Key> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO key_counters (workspace_id, kind, last)
             SELECT $1::uuid, $2::text, 1 WHERE EXISTS (SELECT 1 FROM workspaces WHERE id = $1::uuid)
             ON CONFLICT (workspace_id, kind) DO UPDATE SET last = key_counters.last + 1
             RETURNING last",
        )
        .await
        .map_err(|e| store_err("preparing key allocation", e))?;
    let row = c
        .query_opt(&stmt, &[&workspace.0, &kind.as_str()])
        .await
        .map_err(|e| store_err("allocating a key", e))?;
    let Some(row) = row else {
        return Err(StoreError::NotFound(format!("workspace {workspace}")));
    };
    let last: i64 = row
        .try_get(0)
        .map_err(|e| store_err("reading an allocated key", e))?;
    Ok(Key::new(kind, uint(last, "key counter")?))
}

/// Terminates the backend `pid` if it is still running transaction `txid` (an in-doubt commit
/// whose connection the server has not noticed is gone): the transaction then ends, committed
/// if its `COMMIT` had arrived, aborted if not. Checking the transaction id guards against a
/// process id the server has since given to another connection.
pub(crate) async fn terminate_if_running(c: &Client, pid: i32, txid: i64) -> StoreResult<bool> {
    let row = c
        .query_one(
            "SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM pg_stat_activity
             WHERE pid = $1 AND backend_xid::text::bigint = $2 % 4294967296",
            &[&pid, &txid],
        )
        .await
        .map_err(|e| store_err("ending an in-doubt transaction", e))?;
    row.try_get(0)
        .map_err(|e| store_err("ending an in-doubt transaction", e))
}

/// `txid_status` of a transaction (see [`Sealed::txid`]).
pub(crate) async fn txid_status(c: &Client, txid: i64) -> StoreResult<Option<String>> {
    let row = c
        .query_one("SELECT txid_status($1)", &[&txid])
        .await
        .map_err(|e| store_err("asking for a transaction's status", e))?;
    row.try_get(0)
        .map_err(|e| store_err("reading a transaction's status", e))
}

/// Applies every write of `commit` in order, then seals and appends its audit entry.
pub(crate) async fn apply_commit(tx: &Transaction<'_>, commit: &Commit) -> Result<Sealed, Fail> {
    store::contract::check_commit(commit).map_err(Fail::done)?;
    if let [
        Write::Execution {
            execution,
            expected_rev: Some(expected),
        },
        Write::StepEvent(event),
    ] = commit.writes.as_slice()
    {
        return step_transition(tx, commit, execution, *expected, event).await;
    }
    let ws = commit.workspace;
    for write in &commit.writes {
        apply_write(tx, ws, write, &commit.writes).await?;
    }
    append_audit(tx, commit).await
}

/// Applies one write of a commit whose writes are `all` (an execution's write takes its time
/// from the event paired with it).
async fn apply_write(
    tx: &Transaction<'_>,
    ws: WorkspaceId,
    write: &Write,
    all: &[Write],
) -> Result<(), Fail> {
    match write {
        Write::Workspace {
            workspace,
            expected_rev,
        } => write_workspace(tx, workspace, *expected_rev).await,
        Write::User { user, expected_rev } => write_user(tx, user, *expected_rev).await,
        Write::Membership {
            membership,
            expected_rev,
        } => write_membership(tx, ws, membership, *expected_rev).await,
        Write::Runbook {
            runbook,
            expected_rev,
        } => write_runbook(tx, ws, runbook, *expected_rev).await,
        Write::RunbookVersion(version) => write_version(tx, ws, version).await,
        Write::Execution {
            execution,
            expected_rev,
        } => {
            let at = lean::paired_event(all, execution)?.at;
            write_execution(tx, ws, execution, *expected_rev, at).await
        }
        Write::StepEvent(event) => write_event(tx, ws, event).await,
        Write::Change {
            change,
            expected_rev,
        } => write_change(tx, ws, change, *expected_rev).await,
        Write::Incident {
            incident,
            expected_rev,
        } => write_incident(tx, ws, incident, *expected_rev).await,
    }
}

/// Maps the error of an insert or update: a unique violation is `AlreadyExists`, named by
/// `taken` from the constraint's name.
fn written(e: tokio_postgres::Error, taken: impl FnOnce(&str) -> String) -> Fail {
    match violated(&e, &SqlState::UNIQUE_VIOLATION) {
        Some(constraint) => Fail::done(StoreError::AlreadyExists(taken(&constraint))),
        None => fail("writing a row", e),
    }
}

/// After an update that changed no row: `NotFound` when the row is not there (in this
/// workspace), `Conflict` when its revision moved.
async fn not_updated(
    tx: &Transaction<'_>,
    rev_sql: &str,
    key: &Params<'_>,
    what: &str,
    expected: u64,
) -> Fail {
    match query_opt(tx, rev_sql, key).await {
        Ok(None) => Fail::done(store::contract::stale(what, None, expected)),
        Ok(Some(row)) => {
            let stored: Option<i64> = row.try_get(0).ok();
            Fail::done(store::contract::stale(
                what,
                Some(
                    stored
                        .and_then(|s| u64::try_from(s).ok())
                        .unwrap_or_default(),
                ),
                expected,
            ))
        }
        Err(e) => fail("reading a revision", e),
    }
}

/// Rejects an update that changed nothing, explaining why.
async fn updated(
    tx: &Transaction<'_>,
    changed: u64,
    rev_sql: &str,
    key: &Params<'_>,
    what: &str,
    expected: u64,
) -> Result<(), Fail> {
    if changed > 0 {
        Ok(())
    } else {
        Err(not_updated(tx, rev_sql, key, what, expected).await)
    }
}

async fn write_workspace(
    tx: &Transaction<'_>,
    w: &Workspace,
    expected: Option<u64>,
) -> Result<(), Fail> {
    let what = format!("workspace {}", w.slug);
    let rev = int(w.rev, "revision")?;
    let doc = to_doc(w, &what)?;
    let taken = |constraint: &str| match constraint {
        "workspaces_slug_key" => format!("workspace slug `{}`", w.slug),
        "workspaces_slack_team_key" => format!(
            "a workspace linked to Slack team `{}`",
            w.slack_team.as_deref().unwrap_or_default()
        ),
        _ => what.clone(),
    };
    let slug = w.slug.as_str();
    match expected {
        None => exec(
            tx,
            // The workspace and the head of its audit chain (seq 0: no entry yet).
            "WITH w AS (
                 INSERT INTO workspaces (id, slug, slack_team, rev, doc) VALUES ($1, $2, $3, $4, $5)
                 RETURNING id
             )
             INSERT INTO audit_heads (workspace_id, seq, hash) SELECT id, 0, '' FROM w",
            &[&w.id.0, &slug, &w.slack_team, &rev, &doc],
        )
        .await
        .map(drop)
        .map_err(|e| written(e, taken)),
        Some(r) => {
            let expected = int(r, "revision")?;
            let changed = exec(
                tx,
                "UPDATE workspaces SET slug = $2, slack_team = $3, rev = $4, doc = $5
                 WHERE id = $1 AND rev = $6",
                &[&w.id.0, &slug, &w.slack_team, &rev, &doc, &expected],
            )
            .await
            .map_err(|e| written(e, taken))?;
            updated(
                tx,
                changed,
                "SELECT rev FROM workspaces WHERE id = $1",
                &[&w.id.0],
                &what,
                r,
            )
            .await
        }
    }
}

async fn write_user(tx: &Transaction<'_>, u: &User, expected: Option<u64>) -> Result<(), Fail> {
    let what = format!("user {}", u.handle);
    let rev = int(u.rev, "revision")?;
    let doc = to_doc(u, &what)?;
    let taken = |constraint: &str| match constraint {
        "users_handle_key" => format!("user handle `{}`", u.handle),
        _ => what.clone(),
    };
    let handle = u.handle.as_str();
    match expected {
        None => {
            exec(
                tx,
                "INSERT INTO users (id, handle, rev, doc) VALUES ($1, $2, $3, $4)",
                &[&u.id.0, &handle, &rev, &doc],
            )
            .await
            .map_err(|e| written(e, taken))?;
        }
        Some(r) => {
            let expected = int(r, "revision")?;
            let changed = exec(
                tx,
                "UPDATE users SET handle = $2, rev = $3, doc = $4 WHERE id = $1 AND rev = $5",
                &[&u.id.0, &handle, &rev, &doc, &expected],
            )
            .await
            .map_err(|e| written(e, taken))?;
            updated(
                tx,
                changed,
                "SELECT rev FROM users WHERE id = $1",
                &[&u.id.0],
                &what,
                r,
            )
            .await?;
        }
    }
    Ok(())
}

async fn write_membership(
    tx: &Transaction<'_>,
    ws: WorkspaceId,
    m: &Membership,
    expected: Option<u64>,
) -> Result<(), Fail> {
    let what = format!("membership of user {}", m.user);
    let rev = int(m.rev, "revision")?;
    let doc = to_doc(m, &what)?;
    match expected {
        None => exec(
            tx,
            "INSERT INTO memberships (workspace_id, user_id, rev, doc) VALUES ($1, $2, $3, $4)",
            &[&ws.0, &m.user.0, &rev, &doc],
        )
        .await
        .map(drop)
        .map_err(|e| {
            if violated(&e, &SqlState::FOREIGN_KEY_VIOLATION).is_some() {
                Fail::done(StoreError::NotFound(format!("user {}", m.user)))
            } else {
                written(e, |_| what.clone())
            }
        })?,
        Some(r) => {
            let expected = int(r, "revision")?;
            let changed = exec(
                tx,
                "UPDATE memberships SET rev = $3, doc = $4
                 WHERE workspace_id = $1 AND user_id = $2 AND rev = $5",
                &[&ws.0, &m.user.0, &rev, &doc, &expected],
            )
            .await
            .map_err(|e| fail("updating a membership", e))?;
            updated(
                tx,
                changed,
                "SELECT rev FROM memberships WHERE workspace_id = $1 AND user_id = $2",
                &[&ws.0, &m.user.0],
                &what,
                r,
            )
            .await?;
            exec(
                tx,
                "DELETE FROM member_identities WHERE workspace_id = $1 AND user_id = $2",
                &[&ws.0, &m.user.0],
            )
            .await
            .map_err(|e| fail("replacing chat identities", e))?;
        }
    }
    let identities: BTreeSet<_> = m.chat_identities.iter().collect();
    for c in identities {
        exec(
            tx,
            r#"INSERT INTO member_identities (workspace_id, platform, "user", user_id)
               VALUES ($1, $2, $3, $4)"#,
            &[&ws.0, &c.platform, &c.user, &m.user.0],
        )
        .await
        .map_err(|e| {
            written(e, |_| {
                format!("chat identity {}/{} in this workspace", c.platform, c.user)
            })
        })?;
    }
    Ok(())
}

async fn write_runbook(
    tx: &Transaction<'_>,
    ws: WorkspaceId,
    rb: &Runbook,
    expected: Option<u64>,
) -> Result<(), Fail> {
    let what = format!("runbook {}", rb.key);
    let rev = int(rb.rev, "revision")?;
    let doc = to_doc(rb, &what)?;
    let number = int(rb.key.number, "key number")?;
    let category = rb.body.category.as_str();
    let archived = rb.archived_at.is_some();
    let text = SearchText::of(&rb.body);
    match expected {
        None => exec(
            tx,
            "INSERT INTO runbooks (id, workspace_id, key_number, category, is_published, owner,
                 archived, rev, search, title_search, doc)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                 setweight(to_tsvector('simple'::regconfig, $9::text), 'A')
                 || setweight(to_tsvector('simple'::regconfig, $10::text), 'B')
                 || setweight(to_tsvector('simple'::regconfig, $11::text), 'C'),
                 to_tsvector('simple'::regconfig, $9::text), $12)",
            &[
                &rb.id.0,
                &ws.0,
                &number,
                &category,
                &rb.is_published,
                &rb.owner.0,
                &archived,
                &rev,
                &text.title,
                &text.description,
                &text.steps,
                &doc,
            ],
        )
        .await
        .map(drop)
        .map_err(|e| written(e, |_| what.clone())),
        Some(r) => {
            let expected = int(r, "revision")?;
            let changed = exec(
                tx,
                "UPDATE runbooks SET key_number = $3, category = $4, is_published = $5,
                     owner = $6, archived = $7, rev = $8,
                     search = setweight(to_tsvector('simple'::regconfig, $9::text), 'A')
                         || setweight(to_tsvector('simple'::regconfig, $10::text), 'B')
                         || setweight(to_tsvector('simple'::regconfig, $11::text), 'C'),
                     title_search = to_tsvector('simple'::regconfig, $9::text),
                     doc = $12
                 WHERE id = $1 AND workspace_id = $2 AND rev = $13",
                &[
                    &rb.id.0,
                    &ws.0,
                    &number,
                    &category,
                    &rb.is_published,
                    &rb.owner.0,
                    &archived,
                    &rev,
                    &text.title,
                    &text.description,
                    &text.steps,
                    &doc,
                    &expected,
                ],
            )
            .await
            .map_err(|e| written(e, |_| what.clone()))?;
            updated(
                tx,
                changed,
                "SELECT rev FROM runbooks WHERE id = $1 AND workspace_id = $2",
                &[&rb.id.0, &ws.0],
                &what,
                r,
            )
            .await
        }
    }
}

async fn write_version(
    tx: &Transaction<'_>,
    ws: WorkspaceId,
    v: &RunbookVersion,
) -> Result<(), Fail> {
    let what = format!("version {} of runbook {}", v.version, v.runbook);
    let doc = to_doc(v, &what)?;
    let version = i64::from(v.version);
    // Inserted only if the runbook is there, in this workspace.
    let inserted = exec(
        tx,
        "INSERT INTO runbook_versions (runbook_id, version, workspace_id, doc)
         SELECT id, $2::bigint, workspace_id, $4::text FROM runbooks
         WHERE id = $1 AND workspace_id = $3",
        &[&v.runbook.0, &version, &ws.0, &doc],
    )
    .await
    .map_err(|e| written(e, |_| what.clone()))?;
    if inserted == 0 {
        return Err(Fail::done(StoreError::NotFound(format!(
            "runbook {}",
            v.runbook
        ))));
    }
    Ok(())
}

/// An audit entry's link columns (the keys it links to, as text).
pub(crate) struct LinkColumns {
    pub(crate) runbook: Option<String>,
    pub(crate) change: Option<String>,
    pub(crate) incident: Option<String>,
    pub(crate) execution: Option<String>,
}

impl LinkColumns {
    /// The columns of `links`.
    pub(crate) fn of(links: &AuditLinks) -> Self {
        let text = |k: Option<Key>| k.map(|k| k.to_string());
        Self {
            runbook: text(links.runbook),
            change: text(links.change),
            incident: text(links.incident),
            execution: text(links.execution),
        }
    }
}

/// An execution: on insert, its snapshot (once per content and workspace) and its row (the
/// header and the state columns); on update, the state columns only (its state is its events:
/// see [`lean`]). `at` is the time of the event written with it.
async fn write_execution(
    tx: &Transaction<'_>,
    ws: WorkspaceId,
    e: &Execution,
    expected: Option<u64>,
    at: DateTime<Utc>,
) -> Result<(), Fail> {
    let what = format!("execution {}", e.key);
    let state = ExecutionState::of(e)?;
    match expected {
        None => {
            let parts = ExecutionParts::of(e, &what)?;
            let number = int(e.key.number, "key number")?;
            exec(
                tx,
                "WITH snapshot AS (
                     INSERT INTO execution_snapshots (workspace_id, hash, doc)
                     VALUES ($2, $10, $16) ON CONFLICT DO NOTHING
                 )
                 INSERT INTO executions (id, workspace_id, key_number, runbook_id,
                     runbook_version, change_id, channel_platform, channel_id, rehearsal,
                     snapshot, doc, status, current_step, updated_at, rev)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                &[
                    &e.id.0,
                    &ws.0,
                    &number,
                    &e.runbook.0,
                    &i64::from(e.runbook_version),
                    &e.change_id.map(|c| c.0),
                    &e.channel.as_ref().map(|c| c.platform.as_str()),
                    &e.channel.as_ref().map(|c| c.channel.as_str()),
                    &e.rehearsal,
                    &parts.hash,
                    &parts.header,
                    &state.status,
                    &state.current_step,
                    &at,
                    &state.rev,
                    &parts.snapshot,
                ],
            )
            .await
            .map(drop)
            .map_err(|err| written(err, |_| what.clone()))
        }
        Some(r) => {
            let expected = int(r, "revision")?;
            let changed = exec(
                tx,
                TRANSITION_UPDATE_SQL,
                &[
                    &e.id.0,
                    &ws.0,
                    &state.status,
                    &state.current_step,
                    &at,
                    &state.rev,
                    &expected,
                ],
            )
            .await
            .map_err(|err| written(err, |_| what.clone()))?;
            updated(
                tx,
                changed,
                "SELECT rev FROM executions WHERE id = $1 AND workspace_id = $2",
                &[&e.id.0, &ws.0],
                &what,
                r,
            )
            .await
        }
    }
}

async fn write_event(tx: &Transaction<'_>, ws: WorkspaceId, ev: &StepEvent) -> Result<(), Fail> {
    let what = format!("event {} of execution {}", ev.seq, ev.execution);
    let doc = to_doc(ev, &what)?;
    let seq = int(ev.seq, "event seq")?;
    let cols = EventColumns::of(ev);
    // Inserted only if the execution is there, in this workspace.
    let inserted = exec(
        tx,
        TRANSITION_EVENT_SQL,
        &[
            &ev.execution.0,
            &seq,
            &ws.0,
            &doc,
            &cols.kind,
            &cols.step_id,
            &cols.at,
            &cols.started_at,
        ],
    )
    .await
    .map_err(|e| written(e, |_| what.clone()))?;
    if inserted == 0 {
        return Err(Fail::done(StoreError::NotFound(format!(
            "execution {}",
            ev.execution
        ))));
    }
    Ok(())
}

/// The tables [`write_keyed`] writes: rows with the columns
/// `(id, workspace_id, key_number, status, rev, doc)`.
#[derive(Clone, Copy)]
enum KeyedTable {
    Changes,
    Incidents,
}

impl KeyedTable {
    fn insert_sql(self) -> &'static str {
        match self {
            KeyedTable::Changes => {
                "INSERT INTO changes (id, workspace_id, key_number, status, rev, doc)
                 VALUES ($1, $2, $3, $4, $5, $6)"
            }
            KeyedTable::Incidents => {
                "INSERT INTO incidents (id, workspace_id, key_number, status, rev, doc)
                 VALUES ($1, $2, $3, $4, $5, $6)"
            }
        }
    }

    fn update_sql(self) -> &'static str {
        match self {
            KeyedTable::Changes => {
                "UPDATE changes SET key_number = $3, status = $4, rev = $5, doc = $6
                 WHERE id = $1 AND workspace_id = $2 AND rev = $7"
            }
            KeyedTable::Incidents => {
                "UPDATE incidents SET key_number = $3, status = $4, rev = $5, doc = $6
                 WHERE id = $1 AND workspace_id = $2 AND rev = $7"
            }
        }
    }

    fn rev_sql(self) -> &'static str {
        match self {
            KeyedTable::Changes => "SELECT rev FROM changes WHERE id = $1 AND workspace_id = $2",
            KeyedTable::Incidents => {
                "SELECT rev FROM incidents WHERE id = $1 AND workspace_id = $2"
            }
        }
    }
}

/// One row of a [`KeyedTable`].
struct KeyedRow<'a> {
    what: &'a str,
    id: Uuid,
    key: Key,
    status: &'a str,
    rev: i64,
    doc: String,
}

async fn write_keyed(
    tx: &Transaction<'_>,
    table: KeyedTable,
    ws: WorkspaceId,
    row: KeyedRow<'_>,
    expected: Option<u64>,
) -> Result<(), Fail> {
    let number = int(row.key.number, "key number")?;
    match expected {
        None => exec(
            tx,
            table.insert_sql(),
            &[&row.id, &ws.0, &number, &row.status, &row.rev, &row.doc],
        )
        .await
        .map(drop)
        .map_err(|e| written(e, |_| row.what.to_owned())),
        Some(r) => {
            let expected = int(r, "revision")?;
            let changed = exec(
                tx,
                table.update_sql(),
                &[
                    &row.id,
                    &ws.0,
                    &number,
                    &row.status,
                    &row.rev,
                    &row.doc,
                    &expected,
                ],
            )
            .await
            .map_err(|e| written(e, |_| row.what.to_owned()))?;
            updated(tx, changed, table.rev_sql(), &[&row.id, &ws.0], row.what, r).await
        }
    }
}

async fn write_change(
    tx: &Transaction<'_>,
    ws: WorkspaceId,
    c: &ChangeRequest,
    expected: Option<u64>,
) -> Result<(), Fail> {
    let what = format!("change {}", c.key);
    let rev = int(c.rev, "revision")?;
    let doc = to_doc(c, &what)?;
    let row = KeyedRow {
        what: &what,
        id: c.id.0,
        key: c.key,
        status: c.status.as_str(),
        rev,
        doc,
    };
    write_keyed(tx, KeyedTable::Changes, ws, row, expected).await
}

async fn write_incident(
    tx: &Transaction<'_>,
    ws: WorkspaceId,
    i: &Incident,
    expected: Option<u64>,
) -> Result<(), Fail> {
    let what = format!("incident {}", i.key);
    let rev = int(i.rev, "revision")?;
    let doc = to_doc(i, &what)?;
    let row = KeyedRow {
        what: &what,
        id: i.id.0,
        key: i.key,
        status: i.status.as_str(),
        rev,
        doc,
    };
    write_keyed(tx, KeyedTable::Incidents, ws, row, expected).await
}

/// Locks the workspace's chain head, seals the commit's entry after it (its time truncated to
/// the microsecond, the precision every store keeps), appends it and moves the head.
async fn append_audit(tx: &Transaction<'_>, commit: &Commit) -> Result<Sealed, Fail> {
    let head = query_opt(tx, HEAD_SQL, &[&commit.workspace.0])
        .await
        .map_err(|e| fail("locking the audit chain", e))?;
    append_after(tx, commit, head).await
}

/// Checks the commit's invariants (see [`Commit`]) with the chain head locked: every commit of
/// the workspace that took the lock before this one has committed, and READ COMMITTED shows its
/// rows to these statements, so no commit can slip in between check and commit. The acting
/// membership must be at the revision the command was checked at (or, if this commit writes
/// that very membership, at the revision it writes); the workspace must keep an active owner.
async fn check_invariants(tx: &Transaction<'_>, commit: &Commit) -> Result<(), Fail> {
    let ws = commit.workspace;
    if let Some(acting) = commit.acting {
        let own = commit.writes.iter().find_map(|w| match w {
            Write::Membership { membership, .. } if membership.user == acting.user => {
                Some(membership.rev)
            }
            _ => None,
        });
        let want = int(own.unwrap_or(acting.membership_rev), "revision")?;
        let row = query_opt(
            tx,
            "SELECT 1 FROM memberships WHERE workspace_id = $1 AND user_id = $2 AND rev = $3",
            &[&ws.0, &acting.user.0, &want],
        )
        .await
        .map_err(|e| fail("checking the acting membership", e))?;
        if row.is_none() {
            return Err(Fail::done(store::authority_moved(acting.user)));
        }
    }
    if commit.writes_membership() {
        let row = query_opt(
            tx,
            "SELECT 1 FROM memberships WHERE workspace_id = $1
             AND doc::jsonb ->> 'role' = 'owner' AND doc::jsonb ->> 'removed_at' IS NULL
             LIMIT 1",
            &[&ws.0],
        )
        .await
        .map_err(|e| fail("checking the workspace's owner", e))?;
        if row.is_none() {
            return Err(Fail::done(store::no_owner_left()));
        }
    }
    Ok(())
}

/// Locks the chain head of workspace `$1` and reads it with the transaction's ids.
const HEAD_SQL: &str = "SELECT seq, hash, txid_current(), pg_backend_pid() FROM audit_heads
     WHERE workspace_id = $1 FOR UPDATE";

/// Seals the commit's entry after the locked `head` and appends it.
async fn append_after(
    tx: &Transaction<'_>,
    commit: &Commit,
    head: Option<Row>,
) -> Result<Sealed, Fail> {
    let ws = commit.workspace;
    // No head: the workspace does not exist (neither before nor in this commit).
    let Some(head) = head else {
        return Err(Fail::done(StoreError::NotFound(format!("workspace {ws}"))));
    };
    let corrupt = |e: tokio_postgres::Error| {
        Fail::done(StoreError::Corrupt(format!(
            "the audit chain head of workspace {ws} is unreadable: {e}"
        )))
    };
    let seq: i64 = head.try_get(0).map_err(corrupt)?;
    let hash: String = head.try_get(1).map_err(corrupt)?;
    let txid: i64 = head.try_get(2).map_err(corrupt)?;
    let pid: i32 = head.try_get(3).map_err(corrupt)?;
    let seq = uint(seq, "audit head seq")?;
    check_invariants(tx, commit).await?;
    let prev = (seq > 0).then_some((seq, hash.as_str()));
    let mut draft = commit.audit.clone();
    draft.at = micros(draft.at);
    let entry = audit::seal(ws, draft, prev);
    let doc = audit::stored_document(&entry);
    let links = LinkColumns::of(&entry.links);
    let new_seq = int(entry.seq, "audit seq")?;
    exec(
        tx,
        "WITH appended AS (
             INSERT INTO audit (workspace_id, seq, id, at, actor, action, target,
                 link_runbook, link_change, link_incident, link_execution, hash, doc)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         )
         UPDATE audit_heads SET seq = $2, hash = $12 WHERE workspace_id = $1",
        &[
            &ws.0,
            &new_seq,
            &entry.id.0,
            &entry.at,
            &entry.actor.map(|a| a.0),
            &entry.action,
            &entry.target,
            &links.runbook,
            &links.change,
            &links.incident,
            &links.execution,
            &entry.hash,
            &doc,
        ],
    )
    .await
    .map_err(|e| fail("appending the audit entry", e))?;
    Ok(Sealed { entry, txid, pid })
}

/// The SQL of an execution's update (in [`step_transition`] and [`write_execution`]): its state
/// columns only.
const TRANSITION_UPDATE_SQL: &str = "UPDATE executions SET status = $3, current_step = $4,
         updated_at = $5, rev = $6
     WHERE id = $1 AND workspace_id = $2 AND rev = $7";

/// The SQL of an event's insert (only if the execution is there, in this workspace), with its
/// typed columns.
const TRANSITION_EVENT_SQL: &str = "INSERT INTO step_events (execution_id, seq, workspace_id, doc,
         kind, step_id, at, started_at)
     SELECT id, $2::bigint, workspace_id, $4::text, $5::text, $6::uuid, $7::timestamptz,
         $8::timestamptz
     FROM executions WHERE id = $1 AND workspace_id = $3";

/// A step transition (the execution's new revision and its event: what every click commits),
/// with the same checks and answers as [`apply_write`] gives the two writes one after the other,
/// in fewer round trips: the update, the event insert and the chain head lock are sent together
/// as one pipeline (in that order, which the server keeps), and their answers checked in order.
async fn step_transition(
    tx: &Transaction<'_>,
    commit: &Commit,
    e: &Execution,
    expected: u64,
    ev: &StepEvent,
) -> Result<Sealed, Fail> {
    let ws = commit.workspace;
    let what = format!("execution {}", e.key);
    let state = ExecutionState::of(e)?;
    let expected_i = int(expected, "revision")?;
    let ev_what = format!("event {} of execution {}", ev.seq, ev.execution);
    let ev_doc = to_doc(ev, &ev_what)?;
    let ev_seq = int(ev.seq, "event seq")?;
    let cols = EventColumns::of(ev);

    // Prepared (once per connection) before anything is sent, so that the three statements
    // leave in order.
    let prepare = |e| fail("preparing a step transition", e);
    let update = tx
        .prepare_cached(TRANSITION_UPDATE_SQL)
        .await
        .map_err(prepare)?;
    let insert = tx
        .prepare_cached(TRANSITION_EVENT_SQL)
        .await
        .map_err(prepare)?;
    let head = tx.prepare_cached(HEAD_SQL).await.map_err(prepare)?;
    let update_params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
        &e.id.0,
        &ws.0,
        &state.status,
        &state.current_step,
        &ev.at,
        &state.rev,
        &expected_i,
    ];
    let insert_params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] = [
        &ev.execution.0,
        &ev_seq,
        &ws.0,
        &ev_doc,
        &cols.kind,
        &cols.step_id,
        &cols.at,
        &cols.started_at,
    ];
    let (updated_rows, inserted, head_row) = in_order(
        tx.execute(&update, &update_params),
        tx.execute(&insert, &insert_params),
        tx.query_opt(&head, &[&ws.0]),
    )
    .await;

    // The answers, checked in the order the sequential path checks them.
    let changed = updated_rows.map_err(|err| written(err, |_| what.clone()))?;
    if changed == 0 {
        return Err(match inserted {
            // The event insert found the execution here but its seq taken: someone else moved
            // the execution first (the transaction is aborted, so no more questions).
            Err(err) if violated(&err, &SqlState::UNIQUE_VIOLATION).is_some() => {
                Fail::done(StoreError::Conflict(format!(
                    "{what} was changed by someone else (a newer revision is stored, {expected} was read)"
                )))
            }
            Err(err) => fail("writing a step event", err),
            Ok(_) => {
                not_updated(
                    tx,
                    "SELECT rev FROM executions WHERE id = $1 AND workspace_id = $2",
                    &[&e.id.0, &ws.0],
                    &what,
                    expected,
                )
                .await
            }
        });
    }
    let inserted = inserted.map_err(|err| written(err, |_| ev_what.clone()))?;
    if inserted == 0 {
        return Err(Fail::done(StoreError::NotFound(format!(
            "execution {}",
            ev.execution
        ))));
    }
    let head_row = head_row.map_err(|err| fail("locking the audit chain", err))?;
    append_after(tx, commit, head_row).await
}

/// Runs three futures to completion, polling them in order every time: each one's request goes
/// out on its first poll, so the server receives them in this order (one pipeline).
async fn in_order<A, B, C>(a: A, b: B, c: C) -> (A::Output, B::Output, C::Output)
where
    A: Future,
    B: Future,
    C: Future,
{
    let (mut a, mut b, mut c) = (pin!(a), pin!(b), pin!(c));
    let (mut ra, mut rb, mut rc) = (None, None, None);
    poll_fn(|cx| {
        if ra.is_none()
            && let Poll::Ready(v) = a.as_mut().poll(cx)
        {
            ra = Some(v);
        }
        if rb.is_none()
            && let Poll::Ready(v) = b.as_mut().poll(cx)
        {
            rb = Some(v);
        }
        if rc.is_none()
            && let Poll::Ready(v) = c.as_mut().poll(cx)
        {
            rc = Some(v);
        }
        match (ra.take(), rb.take(), rc.take()) {
            (Some(x), Some(y), Some(z)) => Poll::Ready((x, y, z)),
            (x, y, z) => {
                (ra, rb, rc) = (x, y, z);
                Poll::Pending
            }
        }
    })
    .await
}
