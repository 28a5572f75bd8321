//! Every read of the [`vigilo_core::store::Store`] trait, as a plain function of a read
//! connection. Each names the workspace in its `WHERE`, so a row of another workspace is
//! simply not found.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};
use vigilo_core::audit::{AuditEntry, StoredColumns, Tamper};
use vigilo_core::change::ChangeRequest;
use vigilo_core::execution::{Execution, StepEvent};
use vigilo_core::ids::{ChangeId, ExecutionId, Key, KeyKind, RunbookId, UserId, WorkspaceId};
use vigilo_core::incident::Incident;
use vigilo_core::runbook::{Runbook, RunbookVersion};
use vigilo_core::store::{
    AuditQuery, DraftFilter, ExecutionQuery, RunbookQuery, StoreError, StoreResult,
};
use vigilo_core::workspace::{ChatIdentity, Membership, User, Workspace};

use super::executions;
use super::rows::{from_doc, int, many, micros_ceil, one, sql_err, text};
use super::search::{self, DESCRIPTION_WEIGHT, STEPS_WEIGHT, terms};
use crate::shared::{DEFAULT_AUDIT_PAGE, DEFAULT_PAGE, page};

/// Runs `f` in one read transaction, so its statements see one snapshot.
fn snapshot<T>(conn: &Connection, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
    let tx = conn.unchecked_transaction().map_err(sql_err)?;
    let out = f(&tx)?;
    tx.finish().map_err(sql_err)?;
    Ok(out)
}

/// `NotFound` for a key of another kind than the table holds.
fn key_of(key: Key, kind: KeyKind, what: &str) -> StoreResult<i64> {
    if key.kind == kind {
        int(key.number, "key number")
    } else {
        Err(StoreError::NotFound(format!("{what} {key}")))
    }
}

pub(crate) fn workspace(c: &Connection, id: WorkspaceId) -> StoreResult<Workspace> {
    one(
        c,
        "SELECT doc FROM workspaces WHERE id = ?1",
        [id.to_string()],
        || format!("workspace {id}"),
    )
}

pub(crate) fn workspace_by_slug(c: &Connection, slug: &str) -> StoreResult<Workspace> {
    one(
        c,
        "SELECT doc FROM workspaces WHERE slug = ?1",
        [slug],
        || format!("workspace {slug}"),
    )
}

pub(crate) fn workspace_by_slack_team(c: &Connection, team: &str) -> StoreResult<Workspace> {
    one(
        c,
        "SELECT doc FROM workspaces WHERE slack_team = ?1",
        [team],
        || format!("workspace for Slack team {team}"),
    )
}

pub(crate) fn list_workspaces(c: &Connection) -> StoreResult<Vec<Workspace>> {
    many(
        c,
        "SELECT doc FROM workspaces ORDER BY slug",
        [],
        "workspace",
    )
}

pub(crate) fn user(c: &Connection, id: UserId) -> StoreResult<User> {
    one(
        c,
        "SELECT doc FROM users WHERE id = ?1",
        [id.to_string()],
        || format!("user {id}"),
    )
}

pub(crate) fn user_by_handle(c: &Connection, handle: &str) -> StoreResult<User> {
    one(
        c,
        "SELECT doc FROM users WHERE handle = ?1",
        [handle],
        || format!("user {handle}"),
    )
}

pub(crate) fn member_by_chat(
    c: &Connection,
    ws: WorkspaceId,
    identity: &ChatIdentity,
) -> StoreResult<(User, Membership)> {
    let mut stmt = c
        .prepare_cached(
            "SELECT u.doc, m.doc FROM member_identities i
             JOIN memberships m ON m.workspace_id = i.workspace_id AND m.user_id = i.user_id
             JOIN users u ON u.id = i.user_id
             WHERE i.workspace_id = ?1 AND i.platform = ?2 AND i.user = ?3",
        )
        .map_err(sql_err)?;
    let row = stmt
        .query_row(
            [
                ws.to_string(),
                identity.platform.clone(),
                identity.user.clone(),
            ],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        )
        .optional()
        .map_err(sql_err)?;
    let Some((u, m)) = row else {
        return Err(StoreError::NotFound(format!(
            "member with chat identity {}/{}",
            identity.platform, identity.user
        )));
    };
    Ok((from_doc(&u, "user")?, from_doc(&m, "membership")?))
}

pub(crate) fn membership(c: &Connection, ws: WorkspaceId, user: UserId) -> StoreResult<Membership> {
    one(
        c,
        "SELECT doc FROM memberships WHERE workspace_id = ?1 AND user_id = ?2",
        [ws.to_string(), user.to_string()],
        || format!("membership of user {user}"),
    )
}

pub(crate) fn list_members(
    c: &Connection,
    ws: WorkspaceId,
) -> StoreResult<Vec<(User, Membership)>> {
    let mut stmt = c
        .prepare_cached(
            "SELECT u.doc, m.doc FROM memberships m JOIN users u ON u.id = m.user_id
             WHERE m.workspace_id = ?1 ORDER BY u.handle",
        )
        .map_err(sql_err)?;
    let mut rows = stmt.query([ws.to_string()]).map_err(sql_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_err)? {
        let user: String = row.get(0).map_err(sql_err)?;
        let member: String = row.get(1).map_err(sql_err)?;
        out.push((from_doc(&user, "user")?, from_doc(&member, "membership")?));
    }
    Ok(out)
}

pub(crate) fn runbook(c: &Connection, ws: WorkspaceId, id: RunbookId) -> StoreResult<Runbook> {
    one(
        c,
        "SELECT doc FROM runbooks WHERE id = ?1 AND workspace_id = ?2",
        [id.to_string(), ws.to_string()],
        || format!("runbook {id}"),
    )
}

pub(crate) fn runbook_by_key(c: &Connection, ws: WorkspaceId, key: Key) -> StoreResult<Runbook> {
    let number = key_of(key, KeyKind::Runbook, "runbook")?;
    one(
        c,
        "SELECT doc FROM runbooks WHERE workspace_id = ?1 AND key_number = ?2",
        [text(ws.to_string()), Value::Integer(number)],
        || format!("runbook {key}"),
    )
}

/// The SQL condition of a draft filter on the `runbooks` table aliased `r`, pushing its
/// parameter (if any) onto `params`: the SQL uses anonymous `?` parameters in push order.
/// Booleans are literals, so the planner can use the partial indexes.
fn drafts_condition(drafts: DraftFilter, params: &mut Vec<Value>) -> &'static str {
    match drafts {
        DraftFilter::None => " AND r.is_published = 1",
        DraftFilter::OwnedBy(user) => {
            params.push(text(user.to_string()));
            " AND (r.is_published = 1 OR r.owner = ?)"
        }
        DraftFilter::All => "",
        DraftFilter::Only => " AND r.is_published = 0",
    }
}

pub(crate) fn list_runbooks(
    c: &Connection,
    ws: WorkspaceId,
    q: &RunbookQuery,
) -> StoreResult<Vec<Runbook>> {
    let mut params = vec![text(ws.to_string())];
    let mut sql = String::from("SELECT r.doc FROM runbooks r WHERE r.workspace_id = ?");
    sql.push_str(if q.archived {
        " AND r.archived = 1"
    } else {
        " AND r.archived = 0"
    });
    sql.push_str(drafts_condition(q.drafts, &mut params));
    if let Some(category) = &q.category {
        sql.push_str(" AND r.category = ?");
        params.push(text(category.clone()));
    }
    if let Some(after) = q.after_number {
        sql.push_str(" AND r.key_number > ?");
        params.push(Value::Integer(int(after, "key number")?));
    }
    sql.push_str(" ORDER BY r.key_number LIMIT ?");
    params.push(Value::Integer(page(q.limit, DEFAULT_PAGE)));
    many(c, &sql, rusqlite::params_from_iter(params), "runbook")
}

pub(crate) fn search_runbooks(
    c: &Connection,
    ws: WorkspaceId,
    words: &str,
    drafts: DraftFilter,
    limit: usize,
) -> StoreResult<Vec<Runbook>> {
    let Some(terms) = terms(words) else {
        // No word to match: every visible runbook matches, in key order.
        let q = RunbookQuery {
            drafts,
            limit,
            ..RunbookQuery::default()
        };
        return list_runbooks(c, ws, &q);
    };
    let key = vigilo_core::store::search::title_key(words);
    let limit = page(limit, DEFAULT_PAGE);
    if search::matches_at_most(c, &terms.all(), BROAD)? {
        ranked_search(c, ws, &terms, &key, drafts, limit)
    } else {
        broad_search(c, ws, &terms, &key, drafts, limit)
    }
}

/// Above this many matches (in the whole index), a search does not score every match: see
/// [`broad_search`].
pub(crate) const BROAD: usize = 2_000;

/// A search with few enough matches to rank them all: a title equal to the words first, then
/// titles holding more of the words, then `bm25` over description and steps, then key.
fn ranked_search(
    c: &Connection,
    ws: WorkspaceId,
    terms: &search::Terms,
    key: &str,
    drafts: DraftFilter,
    limit: i64,
) -> StoreResult<Vec<Runbook>> {
    // How many of the words the title holds: one uncorrelated (computed once) subquery each.
    let mut params = vec![text(key)];
    let mut title_hits = Vec::new();
    for term in terms.in_title() {
        title_hits
            .push("(s.rowid IN (SELECT rowid FROM runbook_search WHERE runbook_search MATCH ?))");
        params.push(text(term));
    }
    // The inner query ranks every match but reads only narrow columns; the documents (large,
    // often on overflow pages) are read for the page that is returned, not for every match.
    let mut sql = format!(
        "SELECT r.doc FROM (SELECT s.rowid AS pk, (r.title_key = ?) AS exact, {} AS title_hits, \
         bm25(runbook_search, 0.0, {DESCRIPTION_WEIGHT:.1}, {STEPS_WEIGHT:.1}) AS score, \
         r.key_number AS key_number \
         FROM runbook_search s JOIN runbooks r ON r.pk = s.rowid \
         WHERE runbook_search MATCH ? AND r.workspace_id = ? AND r.archived = 0",
        title_hits.join(" + ")
    );
    params.push(text(terms.all()));
    params.push(text(ws.to_string()));
    sql.push_str(drafts_condition(drafts, &mut params));
    sql.push_str(
        " ORDER BY exact DESC, title_hits DESC, score, key_number LIMIT ?) t \
         JOIN runbooks r ON r.pk = t.pk ORDER BY t.exact DESC, t.title_hits DESC, t.score, t.key_number",
    );
    params.push(Value::Integer(limit));
    many(c, &sql, rusqlite::params_from_iter(params), "runbook")
}

/// A search whose words are everywhere (more than [`BROAD`] matches), answered without scoring
/// every match. The tiers stay: a title equal to the words first (by index), then runbooks
/// whose title holds every word, then the others. Within the title tier, `bm25` still ranks
/// when it has at most [`BROAD`] members; a tier larger than that, and the last tier, are in
/// newest-first order (the full-text index walked backwards, stopping at the page), because a
/// word in thousands of runbooks says little about which of them is best.
fn broad_search(
    c: &Connection,
    ws: WorkspaceId,
    terms: &search::Terms,
    key: &str,
    drafts: DraftFilter,
    limit: i64,
) -> StoreResult<Vec<Runbook>> {
    let want = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut pks: Vec<i64> = Vec::new();
    let take = |c: &Connection, sql: String, mut params: Vec<Value>, pks: &mut Vec<i64>| {
        params.push(Value::Integer(limit));
        let mut stmt = c.prepare_cached(&sql).map_err(sql_err)?;
        let found = stmt
            .query_map(rusqlite::params_from_iter(params), |r| r.get::<_, i64>(0))
            .map_err(sql_err)?;
        for pk in found {
            let pk = pk.map_err(sql_err)?;
            if pks.len() < want && !pks.contains(&pk) {
                pks.push(pk);
            }
        }
        Ok::<_, StoreError>(())
    };
    let visible = |params: &mut Vec<Value>| {
        params.push(text(ws.to_string()));
        format!(
            "r.workspace_id = ? AND r.archived = 0{}",
            drafts_condition(drafts, params)
        )
    };
    // 1. A title that is the words searched.
    let mut params = vec![];
    let cond = visible(&mut params);
    params.push(text(key));
    take(
        c,
        format!(
            "SELECT r.pk FROM runbooks r WHERE {cond} AND r.title_key = ? ORDER BY r.key_number LIMIT ?"
        ),
        params,
        &mut pks,
    )?;
    // 2. Titles holding every word: ranked when few, newest first when many.
    let in_title = terms.all_in_title();
    if pks.len() < want {
        let (query, order) = if search::matches_at_most(c, &in_title, BROAD)? {
            // Scored like a ranked search: the words anywhere, and in the title. The
            // title-filtered phrases add nothing to the score (the title weighs 0), so bm25
            // ranks by the description and the steps.
            (
                format!("({}) AND ({in_title})", terms.all()),
                format!(
                    "bm25(runbook_search, 0.0, {DESCRIPTION_WEIGHT:.1}, {STEPS_WEIGHT:.1}), r.key_number"
                ),
            )
        } else {
            (in_title.clone(), "s.rowid DESC".to_owned())
        };
        let sql = format!(
            "SELECT r.pk FROM runbook_search s JOIN runbooks r ON r.pk = s.rowid \
             WHERE runbook_search MATCH ? AND {{cond}} ORDER BY {order} LIMIT ?"
        );
        let mut params = vec![text(query)];
        let cond = visible(&mut params);
        take(c, sql.replace("{cond}", &cond), params, &mut pks)?;
    }
    // 3. The others, newest first.
    if pks.len() < want {
        let mut params = vec![text(format!("({}) NOT ({in_title})", terms.all()))];
        let cond = visible(&mut params);
        take(
            c,
            format!(
                "SELECT r.pk FROM runbook_search s JOIN runbooks r ON r.pk = s.rowid \
                 WHERE runbook_search MATCH ? AND {cond} ORDER BY s.rowid DESC LIMIT ?"
            ),
            params,
            &mut pks,
        )?;
    }
    pks.into_iter()
        .map(|pk| {
            one(c, "SELECT doc FROM runbooks WHERE pk = ?1", [pk], || {
                format!("runbook row {pk}")
            })
        })
        .collect()
}

pub(crate) fn runbook_version(
    c: &Connection,
    ws: WorkspaceId,
    id: RunbookId,
    version: u32,
) -> StoreResult<RunbookVersion> {
    snapshot(c, |c| {
        runbook_exists(c, ws, id)?;
        one(
            c,
            "SELECT doc FROM runbook_versions WHERE runbook_id = ?1 AND version = ?2 AND workspace_id = ?3",
            [
                text(id.to_string()),
                Value::Integer(i64::from(version)),
                text(ws.to_string()),
            ],
            || format!("version {version} of runbook {id}"),
        )
    })
}

pub(crate) fn runbook_versions(
    c: &Connection,
    ws: WorkspaceId,
    id: RunbookId,
) -> StoreResult<Vec<RunbookVersion>> {
    snapshot(c, |c| {
        runbook_exists(c, ws, id)?;
        many(
            c,
            "SELECT doc FROM runbook_versions WHERE runbook_id = ?1 AND workspace_id = ?2 ORDER BY version",
            [id.to_string(), ws.to_string()],
            "runbook version",
        )
    })
}

fn runbook_exists(c: &Connection, ws: WorkspaceId, id: RunbookId) -> StoreResult<()> {
    if super::rows::exists(
        c,
        "SELECT 1 FROM runbooks WHERE id = ?1 AND workspace_id = ?2",
        [id.to_string(), ws.to_string()],
    )? {
        Ok(())
    } else {
        Err(StoreError::NotFound(format!("runbook {id}")))
    }
}

pub(crate) fn execution(
    c: &Connection,
    ws: WorkspaceId,
    id: ExecutionId,
) -> StoreResult<Execution> {
    first(
        executions::read_executions(
            c,
            &format!(
                "SELECT {} FROM {} WHERE e.id = ?1 AND e.workspace_id = ?2",
                executions::COLUMNS,
                executions::FROM
            ),
            [id.to_string(), ws.to_string()],
        )?,
        || format!("execution {id}"),
    )
}

pub(crate) fn execution_by_key(
    c: &Connection,
    ws: WorkspaceId,
    key: Key,
) -> StoreResult<Execution> {
    let number = key_of(key, KeyKind::Execution, "execution")?;
    first(
        executions::read_executions(
            c,
            &format!(
                "SELECT {} FROM {} WHERE e.workspace_id = ?1 AND e.key_number = ?2",
                executions::COLUMNS,
                executions::FROM
            ),
            [text(ws.to_string()), Value::Integer(number)],
        )?,
        || format!("execution {key}"),
    )
}

/// The single row a read by id or key found, or `NotFound`.
fn first<T>(rows: Vec<T>, what: impl FnOnce() -> String) -> StoreResult<T> {
    rows.into_iter()
        .next()
        .ok_or_else(|| StoreError::NotFound(what()))
}

pub(crate) fn list_executions(
    c: &Connection,
    ws: WorkspaceId,
    q: &ExecutionQuery,
) -> StoreResult<Vec<Execution>> {
    let mut params = vec![text(ws.to_string())];
    let mut sql = format!(
        "SELECT {} FROM {} WHERE e.workspace_id = ?",
        executions::COLUMNS,
        executions::FROM
    );
    if let Some(runbook) = q.runbook {
        sql.push_str(" AND e.runbook_id = ?");
        params.push(text(runbook.to_string()));
    }
    if let Some(version) = q.runbook_version {
        sql.push_str(" AND e.runbook_version = ?");
        params.push(Value::Integer(i64::from(version)));
    }
    if q.open_only {
        sql.push_str(" AND e.status = 'running'");
    }
    if let Some(change) = q.change {
        sql.push_str(" AND e.change_id = ?");
        params.push(text(change.to_string()));
    }
    if let Some(channel) = &q.channel {
        sql.push_str(" AND e.channel_platform = ? AND e.channel_id = ?");
        params.push(text(channel.platform.clone()));
        params.push(text(channel.channel.clone()));
    }
    sql.push_str(" ORDER BY e.key_number DESC LIMIT ?");
    params.push(Value::Integer(page(q.limit, DEFAULT_PAGE)));
    snapshot(c, |c| {
        executions::read_executions(c, &sql, rusqlite::params_from_iter(params))
    })
}

pub(crate) fn step_events(
    c: &Connection,
    ws: WorkspaceId,
    execution: ExecutionId,
) -> StoreResult<Vec<StepEvent>> {
    snapshot(c, |c| {
        if !super::rows::exists(
            c,
            "SELECT 1 FROM executions WHERE id = ?1 AND workspace_id = ?2",
            [execution.to_string(), ws.to_string()],
        )? {
            return Err(StoreError::NotFound(format!("execution {execution}")));
        }
        many(
            c,
            "SELECT doc FROM step_events WHERE execution_id = ?1 AND workspace_id = ?2 ORDER BY seq",
            [execution.to_string(), ws.to_string()],
            "step event",
        )
    })
}

pub(crate) fn change(c: &Connection, ws: WorkspaceId, id: ChangeId) -> StoreResult<ChangeRequest> {
    one(
        c,
        "SELECT doc FROM changes WHERE id = ?1 AND workspace_id = ?2",
        [id.to_string(), ws.to_string()],
        || format!("change {id}"),
    )
}

pub(crate) fn change_by_key(
    c: &Connection,
    ws: WorkspaceId,
    key: Key,
) -> StoreResult<ChangeRequest> {
    let number = key_of(key, KeyKind::Change, "change")?;
    one(
        c,
        "SELECT doc FROM changes WHERE workspace_id = ?1 AND key_number = ?2",
        [text(ws.to_string()), Value::Integer(number)],
        || format!("change {key}"),
    )
}

pub(crate) fn list_changes(c: &Connection, ws: WorkspaceId) -> StoreResult<Vec<ChangeRequest>> {
    many(
        c,
        "SELECT doc FROM changes WHERE workspace_id = ?1 ORDER BY key_number",
        [ws.to_string()],
        "change",
    )
}

pub(crate) fn incident_by_key(c: &Connection, ws: WorkspaceId, key: Key) -> StoreResult<Incident> {
    let number = key_of(key, KeyKind::Incident, "incident")?;
    one(
        c,
        "SELECT doc FROM incidents WHERE workspace_id = ?1 AND key_number = ?2",
        [text(ws.to_string()), Value::Integer(number)],
        || format!("incident {key}"),
    )
}

pub(crate) fn list_incidents(c: &Connection, ws: WorkspaceId) -> StoreResult<Vec<Incident>> {
    many(
        c,
        "SELECT doc FROM incidents WHERE workspace_id = ?1 ORDER BY key_number",
        [ws.to_string()],
        "incident",
    )
}

/// Pushes `value` and returns its numbered placeholder (`?N`).
fn bind(params: &mut Vec<Value>, value: Value) -> String {
    params.push(value);
    format!("?{}", params.len())
}

pub(crate) fn audit(
    c: &Connection,
    ws: WorkspaceId,
    q: &AuditQuery,
) -> StoreResult<Vec<AuditEntry>> {
    let mut params = Vec::new();
    let ws_p = bind(&mut params, text(ws.to_string()));
    let after = bind(&mut params, Value::Integer(int(q.after_seq, "seq")?));
    let mut sql = match &q.target {
        // The entries naming the target or linking to it, found through one index each, then
        // read by primary key: the cost follows the matches, not the length of the chain.
        Some(target) => {
            let t = bind(&mut params, text(target.clone()));
            let arms: Vec<String> = ["target", "link_runbook", "link_change", "link_incident", "link_execution"]
                .iter()
                .map(|col| format!("SELECT seq FROM audit WHERE workspace_id = {ws_p} AND {col} = {t} AND seq > {after}"))
                .collect();
            format!(
                "SELECT {AUDIT_COLUMNS} FROM ({}) m JOIN audit a ON a.workspace_id = {ws_p} AND a.seq = m.seq WHERE 1 = 1",
                arms.join(" UNION ")
            )
        }
        None => {
            format!(
                "SELECT {AUDIT_COLUMNS} FROM audit a WHERE a.workspace_id = {ws_p} AND a.seq > {after}"
            )
        }
    };
    if let Some(actor) = q.actor {
        sql.push_str(&format!(
            " AND a.actor = {}",
            bind(&mut params, text(actor.to_string()))
        ));
    }
    if let Some(since) = q.since {
        sql.push_str(&format!(
            " AND a.at >= {}",
            bind(&mut params, Value::Integer(micros_ceil(since)))
        ));
    }
    if let Some(until) = q.until {
        sql.push_str(&format!(
            " AND a.at < {}",
            bind(&mut params, Value::Integer(micros_ceil(until)))
        ));
    }
    let limit = bind(
        &mut params,
        Value::Integer(page(q.limit, DEFAULT_AUDIT_PAGE)),
    );
    sql.push_str(&format!(" ORDER BY a.seq LIMIT {limit}"));
    let mut stmt = c.prepare_cached(&sql).map_err(sql_err)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params))
        .map_err(sql_err)?;
    let mut checked = Vec::new();
    while let Some(row) = rows.next().map_err(sql_err)? {
        checked.push(checked_entry(row).map_err(sql_err)??);
    }
    // Each row's own columns first (above), then each row's place in the chain.
    checked
        .into_iter()
        .map(|(entry, stored)| {
            entry
                .check_successor(&stored)
                .map(|()| entry)
                .map_err(StoreError::Tampered)
        })
        .collect()
}

/// What an audit read selects: the document, then every column stored beside it.
/// The last two: the `prev_hash` of the entry after it, cut from its place at the end of that
/// entry's document ([`vigilo_core::audit::PREV_HASH_FROM_END`]), and the chain's last `seq`.
const AUDIT_COLUMNS: &str = "a.doc, a.workspace_id, a.seq, a.id, a.at, a.actor, a.action, \
    a.target, a.link_runbook, a.link_change, a.link_incident, a.link_execution, a.hash, \
    (SELECT CAST(substr(CAST(n.doc AS BLOB), -140, 64) AS TEXT) FROM audit n \
     WHERE n.workspace_id = a.workspace_id AND n.seq = a.seq + 1), \
    (SELECT max(h.seq) FROM audit h WHERE h.workspace_id = ?1)"; // ?1: the workspace, bound first

/// An audit row (selected with [`AUDIT_COLUMNS`]) as its entry, checked against its hash and its
/// stored columns: a mismatch is tampering, never an answer.
fn checked_entry(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<StoreResult<(AuditEntry, StoredColumns)>> {
    let doc: String = row.get(0)?;
    let stored = StoredColumns {
        workspace: row.get(1)?,
        seq: row.get(2)?,
        id: row.get(3)?,
        at_micros: row.get(4)?,
        actor: row.get(5)?,
        action: row.get(6)?,
        target: row.get(7)?,
        link_runbook: row.get(8)?,
        link_change: row.get(9)?,
        link_incident: row.get(10)?,
        link_execution: row.get(11)?,
        hash: row.get(12)?,
        next_prev_hash: row.get(13)?,
        head_seq: row.get::<_, Option<i64>>(14)?.unwrap_or_default(),
        document: None,
    };
    let entry: AuditEntry = match from_doc(&doc, "audit entry") {
        Ok(e) => e,
        Err(_) => {
            return Ok(Err(StoreError::Tampered(Tamper {
                seq: u64::try_from(stored.seq).unwrap_or_default(),
                problem: "its stored document is not an audit entry (edited)".into(),
            })));
        }
    };
    let mut stored = stored;
    stored.document = Some(doc);
    Ok(entry
        .check_stored(&stored)
        .map(|()| (entry, stored))
        .map_err(StoreError::Tampered))
}
