//! The store contract, checked in one place: what a [`Commit`] must satisfy before and while an
//! adapter applies it, and the errors every adapter reports in the same words. An adapter calls
//! [`check_commit`] first, then only stores, asking [`stale`] and [`belongs`] for the answers
//! that depend on what it has stored.
//!
//! The rules (see [`Write`]):
//! - **Workspace ownership.** Every row of a commit belongs to the commit's workspace; a row of
//!   another workspace does not exist from here ([`StoreError::NotFound`]).
//! - **Revisions.** A written value carries its new revision: 1 on insert, the revision read
//!   plus one on update ([`Write`]'s constructors set it, so a caller cannot bump one without
//!   stating the other). An update finds the stored row at the revision read, or it is a
//!   [`StoreError::Conflict`] (and [`StoreError::NotFound`] when the row is not there).
//! - **Uniqueness.** Inserting an existing id or a taken unique value (slug, Slack team, handle,
//!   a chat identity within a workspace, a key per workspace) is [`StoreError::AlreadyExists`];
//!   the adapter's unique indexes decide it.
//! - **Executions and their events travel together** ([`check_events_paired`]): an
//!   execution's state is what its events say, so a store may keep only what changed.
//! - **Invariants at commit** ([`Commit`]): the acting membership has not moved
//!   ([`StoreError::AuthorityMoved`]); the workspace keeps an active owner
//!   ([`StoreError::NoOwnerLeft`]).

use super::{Commit, StoreError, StoreResult, Write};
use crate::execution::history;
use crate::ids::{UserId, WorkspaceId};

/// The page size a list uses when the query gives none (0).
pub const DEFAULT_PAGE: usize = 100;
/// The page size of audit reads when the query gives none (0).
pub const DEFAULT_AUDIT_PAGE: usize = 1000;

/// A query's page size: `limit`, or `default` when it is 0.
pub fn page_size(limit: usize, default: usize) -> usize {
    if limit == 0 { default } else { limit }
}

/// How a write names its row in errors (`runbook RB-00001`, `user alice`, …).
pub fn describe(write: &Write) -> String {
    match write {
        Write::Workspace { workspace, .. } => format!("workspace {}", workspace.slug),
        Write::User { user, .. } => format!("user {}", user.handle),
        Write::Membership { membership, .. } => format!("membership of user {}", membership.user),
        Write::Runbook { runbook, .. } => format!("runbook {}", runbook.key),
        Write::RunbookVersion(v) => format!("version {} of runbook {}", v.version, v.runbook),
        Write::Execution { execution, .. } => format!("execution {}", execution.key),
        Write::StepEvent(ev) => format!("event {} of execution {}", ev.seq, ev.execution),
        Write::Change { change, .. } => format!("change {}", change.key),
        Write::Incident { incident, .. } => format!("incident {}", incident.key),
    }
}

/// Refuses a row of another workspace: from the commit's workspace it does not exist.
pub fn belongs(ws: WorkspaceId, row_ws: WorkspaceId, what: &str) -> StoreResult<()> {
    if row_ws == ws {
        Ok(())
    } else {
        Err(StoreError::NotFound(format!(
            "{what} (it belongs to workspace {row_ws})"
        )))
    }
}

/// Refuses a value that does not carry its new revision (1 on insert, `expected + 1` on
/// update).
pub fn carries_new_rev(what: &str, rev: u64, expected: Option<u64>) -> StoreResult<()> {
    let want = expected.map_or(Some(1), |r| r.checked_add(1));
    if Some(rev) == want {
        Ok(())
    } else {
        Err(StoreError::Backend {
            message: format!(
                "{what} must be written with its new revision ({}), not {rev}",
                want.map_or_else(|| "none".to_owned(), |w| w.to_string()),
            ),
            source: None,
        })
    }
}

/// The workspace a write's row carries itself, and its revision and the one it was read at;
/// `None` for rows whose workspace is their parent's (versions, events) or that have none
/// (users).
fn claims(write: &Write) -> (Option<WorkspaceId>, Option<(u64, Option<u64>)>) {
    match write {
        Write::Workspace {
            workspace,
            expected_rev,
        } => (Some(workspace.id), Some((workspace.rev, *expected_rev))),
        Write::User { user, expected_rev } => (None, Some((user.rev, *expected_rev))),
        Write::Membership {
            membership,
            expected_rev,
        } => (
            Some(membership.workspace),
            Some((membership.rev, *expected_rev)),
        ),
        Write::Runbook {
            runbook,
            expected_rev,
        } => (Some(runbook.workspace), Some((runbook.rev, *expected_rev))),
        Write::Execution {
            execution,
            expected_rev,
        } => (
            Some(execution.workspace),
            Some((execution.rev, *expected_rev)),
        ),
        Write::Change {
            change,
            expected_rev,
        } => (Some(change.workspace), Some((change.rev, *expected_rev))),
        Write::Incident {
            incident,
            expected_rev,
        } => (
            Some(incident.workspace),
            Some((incident.rev, *expected_rev)),
        ),
        Write::RunbookVersion(_) | Write::StepEvent(_) => (None, None),
    }
}

/// Checks what a write claims, before anything stored is consulted: its row belongs to `ws`
/// and carries its new revision.
pub fn check_write(ws: WorkspaceId, write: &Write) -> StoreResult<()> {
    let (row_ws, rev) = claims(write);
    if row_ws.is_some() || rev.is_some() {
        let what = describe(write);
        if let Some(row_ws) = row_ws {
            belongs(ws, row_ws, &what)?;
        }
        if let Some((rev, expected)) = rev {
            carries_new_rev(&what, rev, expected)?;
        }
    }
    Ok(())
}

/// Checks every write of `commit` ([`check_write`]) and that executions and their events
/// travel together ([`check_events_paired`]): what an adapter calls before storing.
pub fn check_commit(commit: &Commit) -> StoreResult<()> {
    commit
        .writes
        .iter()
        .try_for_each(|w| check_write(commit.workspace, w))?;
    check_events_paired(&commit.writes)
}

/// An execution's state is what its events say ([`crate::execution::history`]), so a store may
/// keep an execution as its header, its snapshot and its events: every execution written
/// comes with the event of its new revision, and every event with its execution's write.
pub fn check_events_paired(writes: &[Write]) -> StoreResult<()> {
    let executions = || {
        writes.iter().filter_map(|w| match w {
            Write::Execution { execution, .. } => Some(execution),
            _ => None,
        })
    };
    let events = || {
        writes.iter().filter_map(|w| match w {
            Write::StepEvent(ev) => Some(ev),
            _ => None,
        })
    };
    let unpaired = |message: String| StoreError::Backend {
        message,
        source: None,
    };
    for e in executions() {
        if !events().any(|ev| history::event_matches(e, ev)) {
            return Err(unpaired(format!(
                "execution {} must be written with its event {} (an execution's state is its events)",
                e.key, e.rev
            )));
        }
    }
    for ev in events() {
        if !executions().any(|e| history::event_matches(e, ev)) {
            return Err(unpaired(format!(
                "event {} of execution {} must be written with the execution at revision {}",
                ev.seq, ev.execution, ev.seq
            )));
        }
    }
    Ok(())
}

/// The answer to an update that changed no row: [`StoreError::NotFound`] when the row is not
/// stored (in this workspace), [`StoreError::Conflict`] when its revision moved.
pub fn stale(what: &str, stored: Option<u64>, expected: u64) -> StoreError {
    match stored {
        None => StoreError::NotFound(what.to_owned()),
        Some(stored) => StoreError::Conflict(format!(
            "{what} was changed by someone else (revision {stored} is stored, {expected} was read)"
        )),
    }
}

/// The conflict a store reports when the acting member's membership moved between the check
/// and the commit.
pub fn authority_moved(user: UserId) -> StoreError {
    StoreError::AuthorityMoved(user)
}

/// The conflict a store reports when a commit would leave its workspace without an owner.
pub fn no_owner_left() -> StoreError {
    StoreError::NoOwnerLeft
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ids::{IncidentId, Key, KeyKind};
    use crate::incident::{Incident, IncidentStatus};

    fn incident(ws: WorkspaceId) -> Incident {
        Incident {
            id: IncidentId::new(),
            workspace: ws,
            key: Key::new(KeyKind::Incident, 1),
            title: crate::fields::Title::parse_field("title", "Disk full").unwrap(),
            status: IncidentStatus::Open,
            created_by: UserId::new(),
            created_at: chrono::Utc::now(),
            resolved_at: None,
            rev: 7,
        }
    }

    #[test]
    fn the_constructors_state_both_revisions() {
        let ws = WorkspaceId::new();
        let mut i = incident(ws);
        let w = Write::insert(&mut i);
        assert_eq!(i.rev, 1);
        assert!(
            matches!(&w, Write::Incident { incident, expected_rev: None } if incident.rev == 1)
        );
        check_write(ws, &w).unwrap();
        let w = Write::update(&mut i, 4);
        assert_eq!(i.rev, 5);
        assert!(
            matches!(&w, Write::Incident { incident, expected_rev: Some(4) } if incident.rev == 5)
        );
        check_write(ws, &w).unwrap();
    }

    #[test]
    fn a_write_claiming_another_workspace_or_a_wrong_revision_is_refused() {
        let ws = WorkspaceId::new();
        let other = incident(WorkspaceId::new());
        let w = Write::Incident {
            incident: other,
            expected_rev: None,
        };
        assert!(matches!(check_write(ws, &w), Err(StoreError::NotFound(_))));
        let w = Write::Incident {
            incident: incident(ws),
            expected_rev: Some(3),
        };
        assert!(matches!(
            check_write(ws, &w),
            Err(StoreError::Backend { .. })
        ));
        assert!(matches!(stale("x", None, 3), StoreError::NotFound(_)));
        assert!(matches!(stale("x", Some(4), 3), StoreError::Conflict(_)));
        assert_eq!(page_size(0, DEFAULT_PAGE), 100);
        assert_eq!(page_size(7, DEFAULT_PAGE), 7);
    }
}
