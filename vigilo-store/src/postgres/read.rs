//! Every read of the [`vigilo_core::store::Store`] trait, as a function of a pooled
//! connection. Each names the workspace in its `WHERE`, so a row of another workspace is simply
//! not found, and each is one statement, so it reads one snapshot.

use deadpool_postgres::Client;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;
use vigilo_core::audit::{AuditEntry, StoredColumns, Tamper};
use vigilo_core::change::ChangeRequest;
use vigilo_core::execution::{Execution, StepEvent};
use vigilo_core::ids::{ChangeId, ExecutionId, Key, KeyKind, RunbookId, UserId, WorkspaceId};
use vigilo_core::incident::Incident;
use vigilo_core::runbook::{Runbook, RunbookVersion};
use vigilo_core::store::{
    ActionReads, AuditQuery, DraftFilter, ExecutionQuery, RunbookQuery, StoreError, StoreResult,
};
use vigilo_core::workspace::{ChatIdentity, Membership, User, Workspace};

use super::error::store_err;
use super::lean::{EXECUTION_COLUMNS, EXECUTION_FROM, SnapshotCache, StoredExecution};
use super::rows::{Params, doc_at, from_doc, int, micros_ceil};
use super::search::words;
use crate::shared::{DEFAULT_AUDIT_PAGE, DEFAULT_PAGE, page};

/// A parameter list built alongside dynamic SQL.
#[derive(Default)]
struct Binds(Vec<Box<dyn ToSql + Sync + Send>>);

impl Binds {
    /// Adds `value` and returns its placeholder (`$n`).
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.0.push(Box::new(value));
        format!("${}", self.0.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect()
    }
}

/// Runs `sql` (prepared once per connection) and returns its rows.
async fn rows(c: &Client, sql: &str, params: &Params<'_>) -> StoreResult<Vec<Row>> {
    let stmt = c
        .prepare_cached(sql)
        .await
        .map_err(|e| store_err("preparing a read", e))?;
    c.query(&stmt, params)
        .await
        .map_err(|e| store_err("reading", e))
}

/// The `doc` of the one row `sql` selects, decoded; `NotFound(what)` without a row.
async fn one<T: serde::de::DeserializeOwned>(
    c: &Client,
    sql: &str,
    params: &Params<'_>,
    what: impl FnOnce() -> String,
) -> StoreResult<T> {
    match rows(c, sql, params).await?.first() {
        Some(row) => doc_at(row, 0, &what()),
        None => Err(StoreError::NotFound(what())),
    }
}

/// The `doc` of every row `sql` selects, decoded, in order.
async fn many<T: serde::de::DeserializeOwned>(
    c: &Client,
    sql: &str,
    params: &Params<'_>,
    what: &str,
) -> StoreResult<Vec<T>> {
    rows(c, sql, params)
        .await?
        .iter()
        .map(|row| doc_at(row, 0, what))
        .collect()
}

/// `NotFound` for a key of another kind than the table holds.
fn key_of(key: Key, kind: KeyKind, what: &str) -> StoreResult<i64> {
    if key.kind == kind {
        int(key.number, "key number")
    } else {
        Err(StoreError::NotFound(format!("{what} {key}")))
    }
}

/// [`vigilo_core::store::Store::action_reads`] in one statement (one round trip): the four
/// rows as four scalar subqueries, `NULL` where one is missing.
pub(crate) async fn action_reads(
    c: &Client,
    cache: &SnapshotCache,
    ws: WorkspaceId,
    user: UserId,
    execution: Key,
) -> StoreResult<ActionReads> {
    // Not an execution key: no execution has it (the query then looks for none).
    let number = key_of(execution, KeyKind::Execution, "execution").unwrap_or(-1);
    let found = rows(
        c,
        &format!(
            "SELECT (SELECT doc FROM workspaces WHERE id = $1),
                    (SELECT doc FROM users WHERE id = $2),
                    (SELECT doc FROM memberships WHERE workspace_id = $1 AND user_id = $2),
                    x.*
             FROM (VALUES (1)) AS one LEFT JOIN LATERAL (
                 SELECT {EXECUTION_COLUMNS} FROM {EXECUTION_FROM}
                 WHERE e.workspace_id = $1 AND e.key_number = $3
             ) x ON true"
        ),
        &[&ws.0, &user.0, &number],
    )
    .await?;
    let Some(row) = found.first() else {
        return Err(StoreError::Backend {
            message: "the action reads returned no row".into(),
            source: None,
        });
    };
    fn part<T: serde::de::DeserializeOwned>(
        row: &Row,
        index: usize,
        what: String,
    ) -> StoreResult<T> {
        let doc: Option<String> = row
            .try_get(index)
            .map_err(|e| StoreError::Corrupt(format!("{what} is unreadable: {e}")))?;
        match doc {
            Some(doc) => from_doc(&doc, &what),
            None => Err(StoreError::NotFound(what)),
        }
    }
    let what = format!("execution {execution}");
    Ok(ActionReads {
        workspace: part(row, 0, format!("workspace {ws}")),
        user: part(row, 1, format!("user {user}")),
        membership: part(row, 2, format!("membership of user {user}")),
        execution: StoredExecution::at(row, 3, &what).and_then(|stored| match stored {
            Some(stored) => stored.rebuild(ws, cache, &what),
            None => Err(StoreError::NotFound(what.clone())),
        }),
    })
}

pub(crate) async fn workspace(c: &Client, id: WorkspaceId) -> StoreResult<Workspace> {
    one(
        c,
        "SELECT doc FROM workspaces WHERE id = $1",
        &[&id.0],
        || format!("workspace {id}"),
    )
    .await
}

pub(crate) async fn workspace_by_slug(c: &Client, slug: &str) -> StoreResult<Workspace> {
    one(
        c,
        "SELECT doc FROM workspaces WHERE slug = $1",
        &[&slug],
        || format!("workspace {slug}"),
    )
    .await
}

pub(crate) async fn workspace_by_slack_team(c: &Client, team: &str) -> StoreResult<Workspace> {
    one(
        c,
        "SELECT doc FROM workspaces WHERE slack_team = $1",
        &[&team],
        || format!("workspace for Slack team {team}"),
    )
    .await
}

pub(crate) async fn list_workspaces(c: &Client) -> StoreResult<Vec<Workspace>> {
    many(
        c,
        "SELECT doc FROM workspaces ORDER BY slug",
        &[],
        "workspace",
    )
    .await
}

pub(crate) async fn user(c: &Client, id: UserId) -> StoreResult<User> {
    one(c, "SELECT doc FROM users WHERE id = $1", &[&id.0], || {
        format!("user {id}")
    })
    .await
}

pub(crate) async fn user_by_handle(c: &Client, handle: &str) -> StoreResult<User> {
    one(
        c,
        "SELECT doc FROM users WHERE handle = $1",
        &[&handle],
        || format!("user {handle}"),
    )
    .await
}

pub(crate) async fn member_by_chat(
    c: &Client,
    ws: WorkspaceId,
    identity: &ChatIdentity,
) -> StoreResult<(User, Membership)> {
    let found = rows(
        c,
        r#"SELECT u.doc, m.doc FROM member_identities i
           JOIN memberships m ON m.workspace_id = i.workspace_id AND m.user_id = i.user_id
           JOIN users u ON u.id = i.user_id
           WHERE i.workspace_id = $1 AND i.platform = $2 AND i."user" = $3"#,
        &[&ws.0, &identity.platform, &identity.user],
    )
    .await?;
    let Some(row) = found.first() else {
        return Err(StoreError::NotFound(format!(
            "member with chat identity {}/{}",
            identity.platform, identity.user
        )));
    };
    Ok((doc_at(row, 0, "user")?, doc_at(row, 1, "membership")?))
}

pub(crate) async fn membership(
    c: &Client,
    ws: WorkspaceId,
    user: UserId,
) -> StoreResult<Membership> {
    one(
        c,
        "SELECT doc FROM memberships WHERE workspace_id = $1 AND user_id = $2",
        &[&ws.0, &user.0],
        || format!("membership of user {user}"),
    )
    .await
}

pub(crate) async fn list_members(
    c: &Client,
    ws: WorkspaceId,
) -> StoreResult<Vec<(User, Membership)>> {
    rows(
        c,
        "SELECT u.doc, m.doc FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.workspace_id = $1 ORDER BY u.handle",
        &[&ws.0],
    )
    .await?
    .iter()
    .map(|row| Ok((doc_at(row, 0, "user")?, doc_at(row, 1, "membership")?)))
    .collect()
}

pub(crate) async fn runbook(c: &Client, ws: WorkspaceId, id: RunbookId) -> StoreResult<Runbook> {
    one(
        c,
        "SELECT doc FROM runbooks WHERE id = $1 AND workspace_id = $2",
        &[&id.0, &ws.0],
        || format!("runbook {id}"),
    )
    .await
}

pub(crate) async fn runbook_by_key(c: &Client, ws: WorkspaceId, key: Key) -> StoreResult<Runbook> {
    let number = key_of(key, KeyKind::Runbook, "runbook")?;
    one(
        c,
        "SELECT doc FROM runbooks WHERE workspace_id = $1 AND key_number = $2",
        &[&ws.0, &number],
        || format!("runbook {key}"),
    )
    .await
}

/// The SQL condition of a draft filter on the `runbooks` table aliased `r`, binding its
/// parameter (if any). Booleans are literals, so the planner can use the partial indexes.
fn drafts_condition(drafts: DraftFilter, binds: &mut Binds) -> String {
    match drafts {
        DraftFilter::None => " AND r.is_published".into(),
        DraftFilter::OwnedBy(user) => {
            format!(" AND (r.is_published OR r.owner = {})", binds.bind(user.0))
        }
        DraftFilter::All => String::new(),
        DraftFilter::Only => " AND NOT r.is_published".into(),
    }
}

pub(crate) async fn list_runbooks(
    c: &Client,
    ws: WorkspaceId,
    q: &RunbookQuery,
) -> StoreResult<Vec<Runbook>> {
    let mut b = Binds::default();
    let mut sql = format!(
        "SELECT r.doc FROM runbooks r WHERE r.workspace_id = {}",
        b.bind(ws.0)
    );
    sql.push_str(if q.archived {
        " AND r.archived"
    } else {
        " AND NOT r.archived"
    });
    sql.push_str(&drafts_condition(q.drafts, &mut b));
    if let Some(category) = &q.category {
        sql.push_str(&format!(" AND r.category = {}", b.bind(category.clone())));
    }
    if let Some(after) = q.after_number {
        sql.push_str(&format!(
            " AND r.key_number > {}",
            b.bind(int(after, "key number")?)
        ));
    }
    sql.push_str(&format!(
        " ORDER BY r.key_number LIMIT {}",
        b.bind(page(q.limit, DEFAULT_PAGE))
    ));
    many(c, &sql, &b.refs(), "runbook").await
}

pub(crate) async fn search_runbooks(
    c: &Client,
    ws: WorkspaceId,
    input: &str,
    drafts: DraftFilter,
    limit: usize,
) -> StoreResult<Vec<Runbook>> {
    let Some(words) = words(input) else {
        // No word to match: every visible runbook matches, in key order.
        let q = RunbookQuery {
            drafts,
            limit,
            ..RunbookQuery::default()
        };
        return list_runbooks(c, ws, &q).await;
    };
    let mut b = Binds::default();
    let ws_p = b.bind(ws.0);
    let all = b.bind(words.join(" "));
    let each = b.bind(words);
    let key = b.bind(vigilo_core::store::search::title_key(input));
    let mut sql = format!(
        "SELECT r.doc FROM runbooks r, plainto_tsquery('simple'::regconfig, {all}::text) q
         WHERE r.workspace_id = {ws_p} AND NOT r.archived AND r.search @@ q"
    );
    sql.push_str(&drafts_condition(drafts, &mut b));
    sql.push_str(&format!(
        " ORDER BY (btrim(lower(regexp_replace(r.doc::jsonb->'body'->>'title', '[^[:alnum:]]+', ' ', 'g')))
                    = {key}::text) DESC,
                   (SELECT count(*) FROM unnest({each}::text[]) w
                    WHERE r.title_search @@ plainto_tsquery('simple'::regconfig, w)) DESC,
                   ts_rank(r.search, q) DESC, r.key_number
          LIMIT {}",
        b.bind(page(limit, DEFAULT_PAGE))
    ));
    many(c, &sql, &b.refs(), "runbook").await
}

pub(crate) async fn runbook_version(
    c: &Client,
    ws: WorkspaceId,
    id: RunbookId,
    version: u32,
) -> StoreResult<RunbookVersion> {
    // The runbook (in this workspace) and, if saved, the version: one snapshot.
    let found = rows(
        c,
        "SELECT v.doc FROM runbooks r
         LEFT JOIN runbook_versions v ON v.runbook_id = r.id AND v.version = $3
         WHERE r.id = $1 AND r.workspace_id = $2",
        &[&id.0, &ws.0, &i64::from(version)],
    )
    .await?;
    let Some(row) = found.first() else {
        return Err(StoreError::NotFound(format!("runbook {id}")));
    };
    let what = format!("version {version} of runbook {id}");
    let doc: Option<String> = row
        .try_get(0)
        .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))?;
    match doc {
        Some(doc) => super::rows::from_doc(&doc, &what),
        None => Err(StoreError::NotFound(what)),
    }
}

pub(crate) async fn runbook_versions(
    c: &Client,
    ws: WorkspaceId,
    id: RunbookId,
) -> StoreResult<Vec<RunbookVersion>> {
    children(
        c,
        "SELECT v.doc FROM runbooks r
         LEFT JOIN runbook_versions v ON v.runbook_id = r.id
         WHERE r.id = $1 AND r.workspace_id = $2 ORDER BY v.version",
        id.0,
        ws,
        || format!("runbook {id}"),
        "runbook version",
    )
    .await
}

/// The rows of a parent (selected with a `LEFT JOIN`, so the parent's one row with a `NULL`
/// doc means "no children"); `NotFound` when the parent is not in the workspace.
async fn children<T: serde::de::DeserializeOwned>(
    c: &Client,
    sql: &str,
    parent: Uuid,
    ws: WorkspaceId,
    parent_what: impl FnOnce() -> String,
    what: &str,
) -> StoreResult<Vec<T>> {
    let found = rows(c, sql, &[&parent, &ws.0]).await?;
    if found.is_empty() {
        return Err(StoreError::NotFound(parent_what()));
    }
    let mut out = Vec::with_capacity(found.len());
    for row in &found {
        let doc: Option<String> = row
            .try_get(0)
            .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))?;
        if let Some(doc) = doc {
            out.push(super::rows::from_doc(&doc, what)?);
        }
    }
    Ok(out)
}

/// The one execution `sql` selects ([`EXECUTION_COLUMNS`]), rebuilt; `NotFound(what)`
/// without a row.
async fn one_execution(
    c: &Client,
    cache: &SnapshotCache,
    ws: WorkspaceId,
    sql: &str,
    params: &Params<'_>,
    what: String,
) -> StoreResult<Execution> {
    match rows(c, sql, params).await?.first() {
        Some(row) => match StoredExecution::at(row, 0, &what)? {
            Some(stored) => stored.rebuild(ws, cache, &what),
            None => Err(StoreError::NotFound(what)),
        },
        None => Err(StoreError::NotFound(what)),
    }
}

pub(crate) async fn execution(
    c: &Client,
    cache: &SnapshotCache,
    ws: WorkspaceId,
    id: ExecutionId,
) -> StoreResult<Execution> {
    one_execution(
        c,
        cache,
        ws,
        &format!(
            "SELECT {EXECUTION_COLUMNS} FROM {EXECUTION_FROM}
             WHERE e.id = $1 AND e.workspace_id = $2"
        ),
        &[&id.0, &ws.0],
        format!("execution {id}"),
    )
    .await
}

pub(crate) async fn execution_by_key(
    c: &Client,
    cache: &SnapshotCache,
    ws: WorkspaceId,
    key: Key,
) -> StoreResult<Execution> {
    let number = key_of(key, KeyKind::Execution, "execution")?;
    one_execution(
        c,
        cache,
        ws,
        &format!(
            "SELECT {EXECUTION_COLUMNS} FROM {EXECUTION_FROM}
             WHERE e.workspace_id = $1 AND e.key_number = $2"
        ),
        &[&ws.0, &number],
        format!("execution {key}"),
    )
    .await
}

pub(crate) async fn list_executions(
    c: &Client,
    cache: &SnapshotCache,
    ws: WorkspaceId,
    q: &ExecutionQuery,
) -> StoreResult<Vec<Execution>> {
    let mut b = Binds::default();
    let mut sql = format!(
        "SELECT {EXECUTION_COLUMNS} FROM {EXECUTION_FROM} WHERE e.workspace_id = {}",
        b.bind(ws.0)
    );
    if let Some(runbook) = q.runbook {
        sql.push_str(&format!(" AND e.runbook_id = {}", b.bind(runbook.0)));
    }
    if let Some(version) = q.runbook_version {
        sql.push_str(&format!(
            " AND e.runbook_version = {}",
            b.bind(i64::from(version))
        ));
    }
    if q.open_only {
        sql.push_str(" AND e.status = 'running'");
    }
    if let Some(change) = q.change {
        sql.push_str(&format!(" AND e.change_id = {}", b.bind(change.0)));
    }
    if let Some(channel) = &q.channel {
        let platform = b.bind(channel.platform.clone());
        let id = b.bind(channel.channel.clone());
        sql.push_str(&format!(
            " AND e.channel_platform = {platform} AND e.channel_id = {id}"
        ));
    }
    sql.push_str(&format!(
        " ORDER BY e.key_number DESC LIMIT {}",
        b.bind(page(q.limit, DEFAULT_PAGE))
    ));
    let what = "execution";
    rows(c, &sql, &b.refs())
        .await?
        .iter()
        .filter_map(|row| StoredExecution::at(row, 0, what).transpose())
        .map(|stored| stored.and_then(|s| s.rebuild(ws, cache, what)))
        .collect()
}

pub(crate) async fn step_events(
    c: &Client,
    ws: WorkspaceId,
    execution: ExecutionId,
) -> StoreResult<Vec<StepEvent>> {
    children(
        c,
        "SELECT s.doc FROM executions e
         LEFT JOIN step_events s ON s.execution_id = e.id
         WHERE e.id = $1 AND e.workspace_id = $2 ORDER BY s.seq",
        execution.0,
        ws,
        || format!("execution {execution}"),
        "step event",
    )
    .await
}

pub(crate) async fn change(
    c: &Client,
    ws: WorkspaceId,
    id: ChangeId,
) -> StoreResult<ChangeRequest> {
    one(
        c,
        "SELECT doc FROM changes WHERE id = $1 AND workspace_id = $2",
        &[&id.0, &ws.0],
        || format!("change {id}"),
    )
    .await
}

pub(crate) async fn change_by_key(
    c: &Client,
    ws: WorkspaceId,
    key: Key,
) -> StoreResult<ChangeRequest> {
    let number = key_of(key, KeyKind::Change, "change")?;
    one(
        c,
        "SELECT doc FROM changes WHERE workspace_id = $1 AND key_number = $2",
        &[&ws.0, &number],
        || format!("change {key}"),
    )
    .await
}

pub(crate) async fn list_changes(c: &Client, ws: WorkspaceId) -> StoreResult<Vec<ChangeRequest>> {
    many(
        c,
        "SELECT doc FROM changes WHERE workspace_id = $1 ORDER BY key_number",
        &[&ws.0],
        "change",
    )
    .await
}

pub(crate) async fn incident_by_key(
    c: &Client,
    ws: WorkspaceId,
    key: Key,
) -> StoreResult<Incident> {
    let number = key_of(key, KeyKind::Incident, "incident")?;
    one(
        c,
        "SELECT doc FROM incidents WHERE workspace_id = $1 AND key_number = $2",
        &[&ws.0, &number],
        || format!("incident {key}"),
    )
    .await
}

pub(crate) async fn list_incidents(c: &Client, ws: WorkspaceId) -> StoreResult<Vec<Incident>> {
    many(
        c,
        "SELECT doc FROM incidents WHERE workspace_id = $1 ORDER BY key_number",
        &[&ws.0],
        "incident",
    )
    .await
}

pub(crate) async fn audit(
    c: &Client,
    ws: WorkspaceId,
    q: &AuditQuery,
) -> StoreResult<Vec<AuditEntry>> {
    let mut b = Binds::default();
    let ws_p = b.bind(ws.0);
    let after = b.bind(int(q.after_seq, "seq")?);
    let mut sql = format!(
        "SELECT a.doc, a.workspace_id, a.seq, a.id, a.at, a.actor, a.action, a.target,
                a.link_runbook, a.link_change, a.link_incident, a.link_execution, a.hash,
                (SELECT left(right(n.doc, 140), 64) FROM audit n
                 WHERE n.workspace_id = a.workspace_id AND n.seq = a.seq + 1),
                (SELECT max(h.seq) FROM audit h WHERE h.workspace_id = {ws_p})
         FROM audit a WHERE a.workspace_id = {ws_p} AND a.seq > {after}"
    );
    if let Some(target) = &q.target {
        // The entries naming the target or linking to it (each column has its index; the
        // planner ORs them).
        let t = b.bind(target.clone());
        sql.push_str(&format!(
            " AND (a.target = {t} OR a.link_runbook = {t} OR a.link_change = {t}
                   OR a.link_incident = {t} OR a.link_execution = {t})"
        ));
    }
    if let Some(actor) = q.actor {
        sql.push_str(&format!(" AND a.actor = {}", b.bind(actor.0)));
    }
    if let Some(since) = q.since {
        sql.push_str(&format!(" AND a.at >= {}", b.bind(micros_ceil(since))));
    }
    if let Some(until) = q.until {
        sql.push_str(&format!(" AND a.at < {}", b.bind(micros_ceil(until))));
    }
    sql.push_str(&format!(
        " ORDER BY a.seq LIMIT {}",
        b.bind(page(q.limit, DEFAULT_AUDIT_PAGE))
    ));
    let checked = rows(c, &sql, &b.refs())
        .await?
        .iter()
        .map(checked_entry)
        .collect::<StoreResult<Vec<_>>>()?;
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

/// An audit row as its entry, checked against its hash and its stored columns: a mismatch is
/// tampering, never an answer.
fn checked_entry(row: &Row) -> StoreResult<(AuditEntry, StoredColumns)> {
    let read = |e: tokio_postgres::Error| store_err("reading an audit row", e);
    let seq: i64 = row.try_get(2).map_err(read)?;
    let tampered = |problem: &str| {
        StoreError::Tampered(Tamper {
            seq: u64::try_from(seq).unwrap_or_default(),
            problem: problem.into(),
        })
    };
    let doc: String = row.try_get(0).map_err(read)?;
    let Ok(entry) = from_doc::<AuditEntry>(&doc, "audit entry") else {
        return Err(tampered(
            "its stored document is not an audit entry (edited)",
        ));
    };
    let workspace: Uuid = row.try_get(1).map_err(read)?;
    let id: Uuid = row.try_get(3).map_err(read)?;
    let at: chrono::DateTime<chrono::Utc> = row.try_get(4).map_err(read)?;
    let actor: Option<Uuid> = row.try_get(5).map_err(read)?;
    let stored = StoredColumns {
        workspace: workspace.to_string(),
        seq,
        id: id.to_string(),
        at_micros: at.timestamp_micros(),
        actor: actor.map(|a| a.to_string()),
        action: row.try_get(6).map_err(read)?,
        target: row.try_get(7).map_err(read)?,
        link_runbook: row.try_get(8).map_err(read)?,
        link_change: row.try_get(9).map_err(read)?,
        link_incident: row.try_get(10).map_err(read)?,
        link_execution: row.try_get(11).map_err(read)?,
        hash: row.try_get(12).map_err(read)?,
        next_prev_hash: row.try_get(13).map_err(read)?,
        head_seq: row
            .try_get::<_, Option<i64>>(14)
            .map_err(read)?
            .unwrap_or_default(),
        document: Some(doc),
    };
    entry
        .check_stored(&stored)
        .map(|()| (entry, stored))
        .map_err(StoreError::Tampered)
}
