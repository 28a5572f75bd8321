//! One commit's row writes and its audit entry, applied on the writer connection inside the
//! savepoint the writer opened for it. Any error leaves the savepoint to be rolled back.
//!
//! The rules are those of [`vigilo_core::store::Write`], checked in the same order as the
//! in-memory store of the core testkit: a row of another workspace is `NotFound`; an insert
//! of an existing id or unique value is `AlreadyExists`; an update of a moved revision is
//! `Conflict`; the written value must carry its new revision.

use rusqlite::{Connection, OptionalExtension, Params, params};
use vigilo_core::audit::{self, AuditDraft, AuditEntry};
use vigilo_core::change::ChangeRequest;
use vigilo_core::clock::to_micros;
use vigilo_core::ids::{Key, KeyKind, WorkspaceId};
use vigilo_core::incident::Incident;
use vigilo_core::runbook::{Runbook, RunbookVersion};
use vigilo_core::store::{self, Commit, StoreError, StoreResult, Write};
use vigilo_core::workspace::{Membership, User, Workspace};

use super::rows::{exists, int, micros, sql_err, to_doc, unique_violation};
use crate::shared::SearchText;

/// Applies every write of `commit` in order, then seals and appends its audit entry.
///
/// The commit's invariants (see [`Commit`]) are checked here, on the writer connection inside
/// the commit's savepoint, where no other commit can interleave: the acting membership before
/// the writes, the workspace's owner after them.
pub(crate) fn apply_commit(conn: &Connection, commit: &Commit) -> StoreResult<AuditEntry> {
    store::contract::check_commit(commit)?;
    let ws = commit.workspace;
    if let Some(acting) = commit.acting {
        let rev: Option<u64> = conn
            .prepare_cached("SELECT rev FROM memberships WHERE workspace_id = ?1 AND user_id = ?2")
            .and_then(|mut s| {
                s.query_row(params![ws.to_string(), acting.user.to_string()], |r| {
                    r.get(0)
                })
                .optional()
            })
            .map_err(sql_err)?;
        if rev != Some(acting.membership_rev) {
            return Err(store::authority_moved(acting.user));
        }
    }
    for write in &commit.writes {
        apply_write(conn, ws, write)?;
    }
    ensure_workspace(conn, ws)?;
    if commit.writes_membership()
        && !exists(
            conn,
            "SELECT 1 FROM memberships WHERE workspace_id = ?1
             AND json_extract(doc, '$.role') = 'owner' AND json_extract(doc, '$.removed_at') IS NULL",
            [ws.to_string()],
        )?
    {
        return Err(store::no_owner_left());
    }
    append_audit(conn, ws, &commit.audit)
}

/// Hands out the next key of `kind` in `workspace` from the counters table.
pub(crate) fn allocate_key(
    conn: &Connection,
    workspace: WorkspaceId,
    kind: KeyKind,
) -> StoreResult<Key> {
    ensure_workspace(conn, workspace)?;
    let number: u64 = conn
        .prepare_cached(
            "INSERT INTO key_counters (workspace_id, kind, last) VALUES (?1, ?2, 1)
             ON CONFLICT (workspace_id, kind) DO UPDATE SET last = last + 1
             RETURNING last",
        )
        .and_then(|mut s| s.query_row(params![workspace.to_string(), kind.as_str()], |r| r.get(0)))
        .map_err(sql_err)?;
    Ok(Key::new(kind, number))
}

fn ensure_workspace(conn: &Connection, ws: WorkspaceId) -> StoreResult<()> {
    if exists(
        conn,
        "SELECT 1 FROM workspaces WHERE id = ?1",
        [ws.to_string()],
    )? {
        Ok(())
    } else {
        Err(StoreError::NotFound(format!("workspace {ws}")))
    }
}

fn apply_write(conn: &Connection, ws: WorkspaceId, write: &Write) -> StoreResult<()> {
    match write {
        Write::Workspace {
            workspace,
            expected_rev,
        } => write_workspace(conn, workspace, *expected_rev),
        Write::User { user, expected_rev } => write_user(conn, user, *expected_rev),
        Write::Membership {
            membership,
            expected_rev,
        } => write_membership(conn, ws, membership, *expected_rev),
        Write::Runbook {
            runbook,
            expected_rev,
        } => write_runbook(conn, ws, runbook, *expected_rev),
        Write::RunbookVersion(version) => write_version(conn, ws, version),
        Write::Execution {
            execution,
            expected_rev,
        } => super::executions::write_execution(conn, ws, execution, *expected_rev),
        Write::StepEvent(event) => super::executions::write_event(conn, ws, event),
        Write::Change {
            change,
            expected_rev,
        } => write_change(conn, ws, change, *expected_rev),
        Write::Incident {
            incident,
            expected_rev,
        } => write_incident(conn, ws, incident, *expected_rev),
    }
}

/// The outcome of an insert: unique and primary-key violations become `AlreadyExists`, named by
/// `taken` from SQLite's `UNIQUE constraint failed: table.column` message.
pub(crate) fn inserted<T>(
    result: rusqlite::Result<T>,
    taken: impl FnOnce(&str) -> String,
) -> StoreResult<T> {
    result.map_err(|e| match unique_violation(&e) {
        Some(msg) => StoreError::AlreadyExists(taken(msg)),
        None => sql_err(e),
    })
}

/// After an update that changed no row: `NotFound` when the row is not there (in this
/// workspace), `Conflict` when its revision moved.
pub(crate) fn not_updated<P: Params>(
    conn: &Connection,
    rev_sql: &str,
    key: P,
    what: &str,
    expected: u64,
) -> StoreError {
    let current: Result<Option<u64>, rusqlite::Error> = conn
        .prepare_cached(rev_sql)
        .and_then(|mut s| s.query_row(key, |r| r.get(0)).optional());
    match current {
        Ok(stored) => store::contract::stale(what, stored, expected),
        Err(e) => sql_err(e),
    }
}

/// Runs an update statement; `Ok(true)` when it changed the row.
pub(crate) fn run_update<P: Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<bool> {
    conn.prepare_cached(sql)?.execute(params).map(|n| n > 0)
}

pub(crate) fn run_insert<P: Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

fn write_workspace(conn: &Connection, w: &Workspace, expected: Option<u64>) -> StoreResult<()> {
    let what = format!("workspace {}", w.slug);
    let doc = to_doc(w, &what)?;
    let taken = |msg: &str| {
        if msg.contains("workspaces.slug") {
            format!("workspace slug `{}`", w.slug)
        } else if msg.contains("workspaces.slack_team") {
            format!(
                "a workspace linked to Slack team `{}`",
                w.slack_team.as_deref().unwrap_or_default()
            )
        } else {
            what.clone()
        }
    };
    let id = w.id.to_string();
    match expected {
        None => inserted(
            run_insert(
                conn,
                "INSERT INTO workspaces (id, slug, slack_team, rev, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, w.slug.as_str(), w.slack_team, w.rev, doc],
            ),
            taken,
        )
        .map(drop),
        Some(r) => {
            let changed = inserted(
                run_update(
                    conn,
                    "UPDATE workspaces SET slug = ?2, slack_team = ?3, rev = ?4, doc = ?5 WHERE id = ?1 AND rev = ?6",
                    params![id, w.slug.as_str(), w.slack_team, w.rev, doc, r],
                ),
                taken,
            )?;
            if changed {
                Ok(())
            } else {
                Err(not_updated(conn, "SELECT rev FROM workspaces WHERE id = ?1", [&id], &what, r))
            }
        }
    }
}

fn write_user(conn: &Connection, u: &User, expected: Option<u64>) -> StoreResult<()> {
    let what = format!("user {}", u.handle);
    let doc = to_doc(u, &what)?;
    let taken = |msg: &str| {
        if msg.contains("users.handle") {
            format!("user handle `{}`", u.handle)
        } else {
            what.clone()
        }
    };
    let id = u.id.to_string();
    match expected {
        None => {
            inserted(
                run_insert(
                    conn,
                    "INSERT INTO users (id, handle, rev, doc) VALUES (?1, ?2, ?3, ?4)",
                    params![id, u.handle.as_str(), u.rev, doc],
                ),
                taken,
            )?;
        }
        Some(r) => {
            let changed = inserted(
                run_update(
                    conn,
                    "UPDATE users SET handle = ?2, rev = ?3, doc = ?4 WHERE id = ?1 AND rev = ?5",
                    params![id, u.handle.as_str(), u.rev, doc, r],
                ),
                taken,
            )?;
            if !changed {
                return Err(not_updated(
                    conn,
                    "SELECT rev FROM users WHERE id = ?1",
                    [&id],
                    &what,
                    r,
                ));
            }
        }
    }
    Ok(())
}

fn write_membership(
    conn: &Connection,
    ws: WorkspaceId,
    m: &Membership,
    expected: Option<u64>,
) -> StoreResult<()> {
    let what = format!("membership of user {}", m.user);
    let user = m.user.to_string();
    if !exists(conn, "SELECT 1 FROM users WHERE id = ?1", [&user])? {
        return Err(StoreError::NotFound(format!("user {}", m.user)));
    }
    let doc = to_doc(m, &what)?;
    let wsid = ws.to_string();
    match expected {
        None => {
            inserted(
                run_insert(
                    conn,
                    "INSERT INTO memberships (workspace_id, user_id, rev, doc) VALUES (?1, ?2, ?3, ?4)",
                    params![wsid, user, m.rev, doc],
                ),
                |_| what.clone(),
            )?;
        }
        Some(r) => {
            let changed = run_update(
                conn,
                "UPDATE memberships SET rev = ?3, doc = ?4 WHERE workspace_id = ?1 AND user_id = ?2 AND rev = ?5",
                params![wsid, user, m.rev, doc, r],
            )
            .map_err(sql_err)?;
            if !changed {
                return Err(not_updated(
                    conn,
                    "SELECT rev FROM memberships WHERE workspace_id = ?1 AND user_id = ?2",
                    [&wsid, &user],
                    &what,
                    r,
                ));
            }
            conn.prepare_cached(
                "DELETE FROM member_identities WHERE workspace_id = ?1 AND user_id = ?2",
            )
            .and_then(|mut s| s.execute([&wsid, &user]))
            .map_err(sql_err)?;
        }
    }
    let identities: std::collections::BTreeSet<_> = m.chat_identities.iter().collect();
    for c in identities {
        inserted(
            run_insert(
                conn,
                "INSERT INTO member_identities (workspace_id, platform, user, user_id) VALUES (?1, ?2, ?3, ?4)",
                params![wsid, c.platform, c.user, user],
            ),
            |_| format!("chat identity {}/{} in this workspace", c.platform, c.user),
        )?;
    }
    Ok(())
}

fn write_runbook(
    conn: &Connection,
    ws: WorkspaceId,
    rb: &Runbook,
    expected: Option<u64>,
) -> StoreResult<()> {
    let what = format!("runbook {}", rb.key);
    let doc = to_doc(rb, &what)?;
    let id = rb.id.to_string();
    let wsid = ws.to_string();
    let number = int(rb.key.number, "key number")?;
    let category = rb.body.category.as_str();
    let owner = rb.owner.to_string();
    let archived = rb.archived_at.is_some();
    let title_key = store::search::title_key(rb.body.title.as_str());
    let pk: i64 = match expected {
        None => inserted(
            conn.prepare_cached(
                "INSERT INTO runbooks (id, workspace_id, key_number, category, is_published, owner, archived, rev, doc, title_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING pk",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![id, wsid, number, category, rb.is_published, owner, archived, rb.rev, doc, title_key],
                    |r| r.get(0),
                )
            }),
            |_| what.clone(),
        )?,
        Some(r) => {
            let pk: Option<i64> = inserted(
                conn.prepare_cached(
                    "UPDATE runbooks SET key_number = ?3, category = ?4, is_published = ?5, owner = ?6,
                         archived = ?7, rev = ?8, doc = ?9, title_key = ?11
                     WHERE id = ?1 AND workspace_id = ?2 AND rev = ?10 RETURNING pk",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![id, wsid, number, category, rb.is_published, owner, archived, rb.rev, doc, r, title_key],
                        |row| row.get(0),
                    )
                    .optional()
                }),
                |_| what.clone(),
            )?;
            let Some(pk) = pk else {
                return Err(not_updated(
                    conn,
                    "SELECT rev FROM runbooks WHERE id = ?1 AND workspace_id = ?2",
                    [&id, &wsid],
                    &what,
                    r,
                ));
            };
            conn.prepare_cached("DELETE FROM runbook_search WHERE rowid = ?1")
                .and_then(|mut s| s.execute([pk]))
                .map_err(sql_err)?;
            pk
        }
    };
    let text = SearchText::of(&rb.body);
    conn.prepare_cached(
        "INSERT INTO runbook_search (rowid, title, description, steps) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut s| s.execute(params![pk, text.title, text.description, text.steps]))
    .map_err(sql_err)?;
    Ok(())
}

/// The workspace of a parent row (`parent_sql` selects its `workspace_id`), or `NotFound`.
pub(crate) fn parent_workspace(
    conn: &Connection,
    parent_sql: &str,
    parent_id: &str,
    parent_what: String,
) -> StoreResult<WorkspaceId> {
    let found: Option<String> = conn
        .prepare_cached(parent_sql)
        .and_then(|mut s| s.query_row([parent_id], |r| r.get(0)).optional())
        .map_err(sql_err)?;
    let Some(ws) = found else {
        return Err(StoreError::NotFound(parent_what));
    };
    ws.parse().map_err(|e| {
        StoreError::Corrupt(format!("{parent_what} has a malformed workspace id: {e}"))
    })
}

fn write_version(conn: &Connection, ws: WorkspaceId, v: &RunbookVersion) -> StoreResult<()> {
    let what = format!("version {} of runbook {}", v.version, v.runbook);
    let runbook = v.runbook.to_string();
    let owner_ws = parent_workspace(
        conn,
        "SELECT workspace_id FROM runbooks WHERE id = ?1",
        &runbook,
        format!("runbook {}", v.runbook),
    )?;
    store::contract::belongs(ws, owner_ws, &what)?;
    let doc = to_doc(v, &what)?;
    inserted(
        run_insert(
            conn,
            "INSERT INTO runbook_versions (runbook_id, version, workspace_id, doc) VALUES (?1, ?2, ?3, ?4)",
            params![runbook, v.version, ws.to_string(), doc],
        ),
        |_| what.clone(),
    )
    .map(drop)
}

/// Inserts or updates a row of a keyed table with the columns
/// `(id, workspace_id, key_number, status, rev, doc)`: changes and incidents.
#[allow(clippy::too_many_arguments)]
fn write_keyed(
    conn: &Connection,
    table: KeyedTable,
    ws: WorkspaceId,
    what: &str,
    id: String,
    key: Key,
    status: &str,
    rev: u64,
    doc: String,
    expected: Option<u64>,
) -> StoreResult<()> {
    let wsid = ws.to_string();
    let number = int(key.number, "key number")?;
    match expected {
        None => inserted(
            run_insert(
                conn,
                table.insert_sql(),
                params![id, wsid, number, status, rev, doc],
            ),
            |_| what.to_owned(),
        )
        .map(drop),
        Some(r) => {
            let changed = inserted(
                run_update(
                    conn,
                    table.update_sql(),
                    params![id, wsid, number, status, rev, doc, r],
                ),
                |_| what.to_owned(),
            )?;
            if changed {
                Ok(())
            } else {
                Err(not_updated(conn, table.rev_sql(), [&id, &wsid], what, r))
            }
        }
    }
}

/// The tables [`write_keyed`] writes.
#[derive(Clone, Copy)]
enum KeyedTable {
    Changes,
    Incidents,
}

impl KeyedTable {
    fn insert_sql(self) -> &'static str {
        match self {
            KeyedTable::Changes => {
                "INSERT INTO changes (id, workspace_id, key_number, status, rev, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            }
            KeyedTable::Incidents => {
                "INSERT INTO incidents (id, workspace_id, key_number, status, rev, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            }
        }
    }

    fn update_sql(self) -> &'static str {
        match self {
            KeyedTable::Changes => {
                "UPDATE changes SET key_number = ?3, status = ?4, rev = ?5, doc = ?6
                 WHERE id = ?1 AND workspace_id = ?2 AND rev = ?7"
            }
            KeyedTable::Incidents => {
                "UPDATE incidents SET key_number = ?3, status = ?4, rev = ?5, doc = ?6
                 WHERE id = ?1 AND workspace_id = ?2 AND rev = ?7"
            }
        }
    }

    fn rev_sql(self) -> &'static str {
        match self {
            KeyedTable::Changes => "SELECT rev FROM changes WHERE id = ?1 AND workspace_id = ?2",
            KeyedTable::Incidents => {
                "SELECT rev FROM incidents WHERE id = ?1 AND workspace_id = ?2"
            }
        }
    }
}

fn write_change(
    conn: &Connection,
    ws: WorkspaceId,
    c: &ChangeRequest,
    expected: Option<u64>,
) -> StoreResult<()> {
    let what = format!("change {}", c.key);
    let doc = to_doc(c, &what)?;
    write_keyed(
        conn,
        KeyedTable::Changes,
        ws,
        &what,
        c.id.to_string(),
        c.key,
        c.status.as_str(),
        c.rev,
        doc,
        expected,
    )
}

fn write_incident(
    conn: &Connection,
    ws: WorkspaceId,
    i: &Incident,
    expected: Option<u64>,
) -> StoreResult<()> {
    let what = format!("incident {}", i.key);
    let doc = to_doc(i, &what)?;
    write_keyed(
        conn,
        KeyedTable::Incidents,
        ws,
        &what,
        i.id.to_string(),
        i.key,
        i.status.as_str(),
        i.rev,
        doc,
        expected,
    )
}

/// Seals `draft` after the workspace's last entry (its time truncated to the microsecond, the
/// precision every store keeps) and appends it.
fn append_audit(conn: &Connection, ws: WorkspaceId, draft: &AuditDraft) -> StoreResult<AuditEntry> {
    let wsid = ws.to_string();
    let prev: Option<(u64, String)> = conn
        .prepare_cached(
            "SELECT seq, hash FROM audit WHERE workspace_id = ?1 ORDER BY seq DESC LIMIT 1",
        )
        .and_then(|mut s| {
            s.query_row([&wsid], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(sql_err)?;
    let mut draft = draft.clone();
    draft.at = to_micros(draft.at);
    let entry = audit::seal(
        ws,
        draft,
        prev.as_ref().map(|(seq, hash)| (*seq, hash.as_str())),
    );
    let doc = audit::stored_document(&entry);
    let link = |k: Option<Key>| k.map(|k| k.to_string());
    run_insert(
        conn,
        "INSERT INTO audit (workspace_id, seq, id, at, actor, action, target,
             link_runbook, link_change, link_incident, link_execution, hash, doc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            wsid,
            entry.seq,
            entry.id.to_string(),
            micros(entry.at),
            entry.actor.map(|a| a.to_string()),
            entry.action,
            entry.target,
            link(entry.links.runbook),
            link(entry.links.change),
            link(entry.links.incident),
            link(entry.links.execution),
            entry.hash,
            doc
        ],
    )
    .map_err(sql_err)?;
    Ok(entry)
}
