//! Step transitions in one round trip: what every click commits (the execution's new
//! revision, its step event and one audit entry) as one autocommitted call of
//! `vigilo_step_transition` (schema 2, redefined in schema 3 with the acting membership and in
//! schema 4 to write only the execution's state columns, its event, the audit entry and the
//! chain head; see [`super::migrations`]), instead of a transaction of four round trips.
//!
//! The function does what `write::step_transition` does, with the same checks and the same
//! locks in the same order; the audit entry is sealed inside the database, after the chain head
//! it locks, from the [`audit::hash_template`] Vigilo computed, so no head is read beforehand
//! and none is cached. It returns the entry's `seq`, previous hash and hash, and Vigilo checks
//! the hash against its own [`audit::compute_hash`] before reporting the entry.
//!
//! **In doubt.** There is no `COMMIT` to lose: the call is the transaction. If the connection
//! breaks while the call is on its way, the store waits until the call's backend no longer runs
//! a statement (or a second has passed), ends it (`pg_terminate_backend`: its transaction is
//! then settled either way, and nothing it had not yet received will ever run), waits until it
//! is gone, and then looks the entry up by its id: there means committed, absent means nothing
//! was applied. The backend is known per pooled connection ([`Backend`], read once per connection)
//! by its process id *and* start time, so a process id the server has since reused is never
//! mistaken for it.

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use tokio_postgres::error::SqlState;
use vigilo_core::audit::{self, AuditEntry, GENESIS_HASH};
use vigilo_core::execution::{Execution, StepEvent};
use vigilo_core::ids::AuditId;
use vigilo_core::store::{self, Commit, StoreError, StoreResult, Write};

use super::error::{Fail, fail, is_connection_loss, store_err, violated};
use super::lean::{EventColumns, ExecutionState};
use super::rows::{int, micros, to_doc, uint};
use super::write::LinkColumns;

/// A commit that is a step transition: an update of one execution and one event of it.
pub(crate) struct Transition<'a> {
    commit: &'a Commit,
    execution: &'a Execution,
    expected: u64,
    event: &'a StepEvent,
}

impl<'a> Transition<'a> {
    /// `commit` as a step transition, if it is exactly one (anything else takes the
    /// transaction path).
    pub(crate) fn of(commit: &'a Commit) -> Option<Self> {
        match commit.writes.as_slice() {
            [
                Write::Execution {
                    execution,
                    expected_rev: Some(expected),
                },
                Write::StepEvent(event),
            ] if event.execution == execution.id => Some(Self {
                commit,
                execution,
                expected: *expected,
                event,
            }),
            _ => None,
        }
    }
}

/// The server process behind a pooled connection, and when it started (a process id alone
/// may be reused by the server for a later connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backend {
    pid: i32,
    started: DateTime<Utc>,
}

/// The backend of connection `c` (one round trip; the store remembers it per connection);
/// `None` if the server does not show the session in `pg_stat_activity`.
pub(crate) async fn backend(c: &Client) -> Result<Option<Backend>, tokio_postgres::Error> {
    let row = c
        .query_opt(
            "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let pid: i32 = row.try_get(0)?;
    let started: Option<DateTime<Utc>> = row.try_get(1)?;
    Ok(started.map(|started| Backend { pid, started }))
}

/// How one call ended.
pub(crate) enum Outcome {
    /// Committed; the sealed entry.
    Committed(AuditEntry),
    /// Nothing was applied.
    Failed(Fail),
    /// The connection broke while the call was on its way: it may or may not have committed.
    /// The entry as it would be sealed, but for its chain fields.
    InDoubt(AuditEntry, tokio_postgres::Error),
}

/// The call, with its 29 parameters in the function's order (schema 4).
const CALL_SQL: &str =
    "SELECT o_seq, o_prev_hash, o_hash, o_stored_rev FROM vigilo_step_transition(
     $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
     $21, $22, $23, $24, $25, $26, $27, $28, $29)";

/// The SQLSTATE `vigilo_step_transition` raises when the acting membership moved.
const AUTHORITY_MOVED: &str = "VG001";

/// The entry's stored document (format 3, [`audit::stored_document`]) with its chain fields
/// left open: the text before `seq`, and between `seq` and `prev_hash` — the hash template's
/// own (the function appends `prev_hash`, then `","hash":"`, the hash and `"}`). `None` if the
/// entry has no template.
fn doc_template(open: &AuditEntry) -> StoreResult<Option<(String, String)>> {
    Ok(audit::hash_template(open).map(|t| (t.head, t.middle)))
}

/// A transition's values as the function takes them.
struct Prepared {
    expected: i64,
    state: ExecutionState,
    event_seq: i64,
    event: EventColumns,
    event_doc: String,
    doc_head: String,
    doc_middle: String,
}

/// The values of `t`; `None` for what the transaction path must answer (a value without its
/// new revision) or cannot happen (an entry of an unexpected shape).
fn prepare(t: &Transition<'_>, open: &AuditEntry) -> StoreResult<Option<Prepared>> {
    let e = t.execution;
    let Some((doc_head, doc_middle)) = doc_template(open)? else {
        return Ok(None);
    };
    if t.expected.checked_add(1) != Some(e.rev) {
        return Ok(None);
    }
    Ok(Some(Prepared {
        expected: int(t.expected, "revision")?,
        state: ExecutionState::of(e)?,
        event_seq: int(t.event.seq, "event seq")?,
        event: EventColumns::of(t.event),
        event_doc: to_doc(t.event, "step event")?,
        doc_head,
        doc_middle,
    }))
}

/// Runs the transition as one call on `c`. `None` when it cannot be expressed as one (the
/// caller then runs the transaction path).
pub(crate) async fn run(c: &Client, t: &Transition<'_>) -> Option<Outcome> {
    let ws = t.commit.workspace;
    let e = t.execution;
    let what = format!("execution {}", e.key);
    if e.workspace != ws {
        // `write::same_workspace`'s answer; the transaction path gives it.
        return None;
    }
    let draft = &t.commit.audit;
    let open = AuditEntry {
        id: AuditId::new(),
        workspace: ws,
        seq: 0,
        at: micros(draft.at),
        actor: draft.actor,
        actor_handle: draft.actor_handle.clone(),
        action: draft.action.clone(),
        target: draft.target.clone(),
        details: draft.details.clone(),
        links: draft.links.clone(),
        origin: draft.origin.clone(),
        prev_hash: String::new(),
        hash: String::new(),
    };
    // A template that does not reproduce Vigilo's own hash never reaches the database: the
    // transaction path seals the entry instead.
    let hash = audit::hash_template(&open)?;
    let p = match prepare(t, &open) {
        Ok(Some(p)) => p,
        Ok(None) => return None,
        Err(err) => return Some(Outcome::Failed(Fail::done(err))),
    };
    let links = LinkColumns::of(&open.links);
    let acting_user = t.commit.acting.map(|a| a.user.0);
    let acting_rev = match t
        .commit
        .acting
        .map(|a| int(a.membership_rev, "revision"))
        .transpose()
    {
        Ok(r) => r,
        Err(err) => return Some(Outcome::Failed(Fail::done(err))),
    };
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 29] = [
        &ws.0,
        &e.id.0,
        &p.expected,
        &p.state.status,
        &p.state.current_step,
        &p.state.rev,
        &p.event_seq,
        &p.event.kind,
        &p.event.step_id,
        &p.event.at,
        &p.event.started_at,
        &p.event_doc,
        &open.id.0,
        &open.at,
        &open.actor.map(|a| a.0),
        &open.action,
        &open.target,
        &links.runbook,
        &links.change,
        &links.incident,
        &links.execution,
        &hash.head.as_bytes(),
        &hash.middle.as_bytes(),
        &hash.tail.as_bytes(),
        &p.doc_head,
        &p.doc_middle,
        &GENESIS_HASH,
        &acting_user,
        &acting_rev,
    ];
    let stmt = match c.prepare_cached(CALL_SQL).await {
        Ok(s) => s,
        // Nothing was sent but the statement: it may run again on another connection.
        Err(err) if is_connection_loss(&err) => {
            return Some(Outcome::Failed(Fail {
                error: store_err("preparing a step transition", err),
                retry: true,
            }));
        }
        Err(err) => return Some(Outcome::Failed(fail("preparing a step transition", err))),
    };
    let row = match c.query_one(&stmt, &params).await {
        Ok(row) => row,
        Err(err) if is_connection_loss(&err) => return Some(Outcome::InDoubt(open, err)),
        Err(err) => return Some(Outcome::Failed(refused(err, t))),
    };
    let corrupt = |err: tokio_postgres::Error| {
        Fail::done(StoreError::Corrupt(format!(
            "the answer of a step transition is unreadable: {err}"
        )))
    };
    let read = (|| {
        let seq: Option<i64> = row.try_get(0)?;
        let prev: Option<String> = row.try_get(1)?;
        let hash: Option<String> = row.try_get(2)?;
        let stored: Option<i64> = row.try_get(3)?;
        Ok((seq, prev, hash, stored))
    })();
    let (seq, prev, hash, stored) = match read {
        Ok(r) => r,
        Err(err) => return Some(Outcome::Failed(corrupt(err))),
    };
    Some(match (seq, prev, hash) {
        (Some(seq), Some(prev), Some(hash)) => match sealed(open, seq, prev, hash) {
            Ok(entry) => Outcome::Committed(entry),
            Err(err) => Outcome::Failed(Fail::done(err)),
        },
        // Nothing was written: the execution moved, or is not there.
        _ => Outcome::Failed(Fail::done(match stored {
            Some(stored) => StoreError::Conflict(format!(
                "{what} was changed by someone else (revision {stored} is stored, {} was read)",
                t.expected
            )),
            None => StoreError::NotFound(what),
        })),
    })
}

/// The entry `open` with the chain fields the database sealed it with, checked against
/// Vigilo's own hash of it.
pub(crate) fn sealed(
    mut open: AuditEntry,
    seq: i64,
    prev_hash: String,
    hash: String,
) -> StoreResult<AuditEntry> {
    open.seq = uint(seq, "audit seq")?;
    open.prev_hash = prev_hash;
    open.hash = hash;
    let expected = audit::compute_hash(&open);
    if expected != open.hash {
        return Err(StoreError::Corrupt(format!(
            "audit entry {} of workspace {} was sealed with hash {} in the database, but its \
             contents hash to {expected}",
            open.seq, open.workspace, open.hash
        )));
    }
    Ok(open)
}

/// Maps an error of the call (the server refused it; nothing was applied).
fn refused(err: tokio_postgres::Error, t: &Transition<'_>) -> Fail {
    // As the transaction path answers a unique value that is taken (`write::written`).
    if let Some(constraint) = violated(&err, &SqlState::UNIQUE_VIOLATION) {
        if constraint.starts_with("step_events") {
            return Fail::done(StoreError::AlreadyExists(format!(
                "event {} of execution {}",
                t.event.seq, t.event.execution
            )));
        }
        if constraint.starts_with("executions") {
            return Fail::done(StoreError::AlreadyExists(format!(
                "execution {}",
                t.execution.key
            )));
        }
    }
    if let (Some(code), Some(acting)) = (err.code(), t.commit.acting)
        && code.code() == AUTHORITY_MOVED
    {
        return Fail::done(store::authority_moved(acting.user));
    }
    if err.code() == Some(&SqlState::NO_DATA_FOUND) {
        return Fail::done(StoreError::NotFound(format!(
            "workspace {}",
            t.commit.workspace
        )));
    }
    fail("applying a step transition", err)
}

/// What `backend` is doing (`pg_stat_activity.state`: `active` while it runs a statement),
/// or `None` once it is gone. Run on another connection.
pub(crate) async fn backend_state(c: &Client, backend: Backend) -> StoreResult<Option<String>> {
    let row = c
        .query_opt(
            "SELECT coalesce(state, '') FROM pg_stat_activity WHERE pid = $1 AND backend_start = $2",
            &[&backend.pid, &backend.started],
        )
        .await
        .map_err(|e| store_err("asking about an in-doubt step transition", e))?;
    row.map(|r| r.try_get(0))
        .transpose()
        .map_err(|e| store_err("asking about an in-doubt step transition", e))
}

/// Ends `backend` (a connection the store has given up): whatever it runs is settled,
/// committed if it had committed, rolled back if not, and nothing it had not yet received will
/// run. Run on another connection.
pub(crate) async fn terminate(c: &Client, backend: Backend) -> StoreResult<()> {
    c.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE pid = $1 AND backend_start = $2",
        &[&backend.pid, &backend.started],
    )
    .await
    .map(drop)
    .map_err(|e| store_err("ending an in-doubt step transition", e))
}

/// The chain fields of entry `id` if it was committed: `(seq, prev_hash, hash)`.
pub(crate) async fn find_entry(
    c: &Client,
    id: AuditId,
) -> StoreResult<Option<(i64, String, String)>> {
    let row = c
        .query_opt(
            "SELECT seq, doc::json->>'prev_hash', hash FROM audit WHERE id = $1",
            &[&id.0],
        )
        .await
        .map_err(|e| store_err("looking for an in-doubt audit entry", e))?;
    row.map(|r| {
        Ok((
            r.try_get(0)
                .map_err(|e| store_err("reading an in-doubt audit entry", e))?,
            r.try_get(1)
                .map_err(|e| store_err("reading an in-doubt audit entry", e))?,
            r.try_get(2)
                .map_err(|e| store_err("reading an in-doubt audit entry", e))?,
        ))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;
    use vigilo_core::audit::{AuditLinks, compute_hash};
    use vigilo_core::ids::{UserId, WorkspaceId};

    use super::*;

    /// The document the function assembles is the entry's own serialisation.
    #[test]
    fn the_document_template_filled_in_is_the_entry() {
        let mut e = AuditEntry {
            id: AuditId::new(),
            workspace: WorkspaceId::new(),
            seq: 0,
            at: micros(Utc::now()),
            actor: Some(UserId::new()),
            actor_handle: Some("o\"brien \"seq\":0".into()),
            action: "execution.step_done".into(),
            target: "EX-00001".into(),
            details: json!({"seq": 0, "prev_hash": "", "note": "a \"b\" \\ c"}),
            links: AuditLinks {
                execution: Some("EX-00001".parse().unwrap()),
                ..AuditLinks::default()
            },
            origin: Some(vigilo_core::audit::Origin::new(
                vigilo_core::audit::Surface::Slack,
                "T1/U\"1",
            )),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let (head, middle) = doc_template(&e).unwrap().unwrap();
        e.seq = 4_294_967_296;
        e.prev_hash = "ab".repeat(32);
        e.hash = compute_hash(&e);
        let filled = format!(
            "{head}{}{middle}{}\",\"hash\":\"{}\"}}",
            e.seq, e.prev_hash, e.hash
        );
        assert_eq!(filled, audit::stored_document(&e));
        let back: AuditEntry = serde_json::from_str(&filled).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn a_sealed_entry_must_match_its_hash() {
        let open = AuditEntry {
            id: AuditId::new(),
            workspace: WorkspaceId::new(),
            seq: 0,
            at: micros(Utc::now()),
            actor: None,
            actor_handle: None,
            action: "execution.step_done".into(),
            target: "EX-00001".into(),
            details: json!({}),
            links: AuditLinks::default(),
            origin: None,
            prev_hash: String::new(),
            hash: String::new(),
        };
        let mut good = open.clone();
        good.seq = 1;
        good.prev_hash = GENESIS_HASH.into();
        let hash = compute_hash(&good);
        assert!(sealed(open.clone(), 1, GENESIS_HASH.into(), hash.clone()).is_ok());
        assert!(matches!(
            sealed(open, 2, GENESIS_HASH.into(), hash),
            Err(StoreError::Corrupt(_))
        ));
    }
}
