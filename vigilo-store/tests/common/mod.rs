//! Helpers shared by the integration tests: a store in a temporary directory.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::ops::Deref;
use std::path::PathBuf;

use tempfile::TempDir;
use vigilo_core::store::Store;
use vigilo_store::{SqliteOptions, SqliteStore};

/// A file-backed store that deletes its directory when dropped.
pub struct TempStore {
    store: SqliteStore,
    dir: TempDir,
}

impl TempStore {
    /// A fresh store in a new temporary directory, with the default options.
    pub async fn new() -> Self {
        Self::with_options(SqliteOptions::default()).await
    }

    /// A fresh store in a new temporary directory.
    pub async fn with_options(options: SqliteOptions) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SqliteStore::open(dir.path().join("vigilo.db"), options)
            .await
            .expect("open a fresh store");
        Self { store, dir }
    }

    /// The store itself.
    pub fn sqlite(&self) -> &SqliteStore {
        &self.store
    }

    /// The database file.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("vigilo.db")
    }
}

impl Deref for TempStore {
    type Target = dyn Store;

    fn deref(&self) -> &Self::Target {
        &self.store
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

use chrono::{DateTime, Utc};
use vigilo_core::audit::{AuditDraft, AuditEntry, AuditLinks};
use vigilo_core::clock::to_micros;
use vigilo_core::execution::machine::{self, Command, StartParams};
use vigilo_core::execution::{EventKind, Execution, StepEvent};
use vigilo_core::fields::Name;
use vigilo_core::ids::{Key, KeyKind, RunbookId, UserId, WorkspaceId};
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::runbook::{Runbook, RunbookBody, RunbookInput, StepInput};
use vigilo_core::store::{AuditQuery, Commit, StoreResult, Write};
use vigilo_core::workspace::{Actor, Membership, Policy, User, Workspace};

/// Now, at microsecond precision.
pub fn now() -> DateTime<Utc> {
    to_micros(Utc::now())
}

/// An audit draft by the system.
pub fn draft(action: &str, target: &str) -> AuditDraft {
    AuditDraft {
        at: now(),
        actor: None,
        actor_handle: None,
        action: action.into(),
        target: target.into(),
        details: serde_json::json!({}),
        links: AuditLinks::default(),
        origin: None,
    }
}

/// Commits `writes` in `ws` with a test audit entry.
pub async fn commit(
    store: &dyn Store,
    ws: WorkspaceId,
    writes: Vec<Write>,
) -> StoreResult<AuditEntry> {
    store
        .commit(Commit {
            workspace: ws,
            writes,
            audit: draft("test.write", "test"),
            acting: None,
        })
        .await
}

/// A workspace and its owner, committed.
pub struct Ctx {
    pub ws: Workspace,
    pub owner: User,
}

impl Ctx {
    pub fn id(&self) -> WorkspaceId {
        self.ws.id
    }
}

/// Creates workspace `slug` and a user `{slug}-owner`.
pub async fn setup(store: &dyn Store, slug: &str) -> Ctx {
    let ws = Workspace {
        id: WorkspaceId::new(),
        slug: Name::parse_field("slug", slug).unwrap(),
        policy: Policy::default(),
        slack_team: None,
        created_at: now(),
        rev: 1,
    };
    let owner = User {
        id: UserId::new(),
        handle: Name::parse_field("handle", format!("{slug}-owner")).unwrap(),
        rev: 1,
    };
    commit(
        store,
        ws.id,
        vec![
            Write::Workspace {
                workspace: ws.clone(),
                expected_rev: None,
            },
            Write::User {
                user: owner.clone(),
                expected_rev: None,
            },
        ],
    )
    .await
    .unwrap();
    Ctx { ws, owner }
}

/// A valid runbook body whose steps are `(title, description)` pairs.
pub fn body(title: &str, description: &str, steps: &[(&str, &str)]) -> RunbookBody {
    RunbookInput {
        title: title.into(),
        description: description.into(),
        category: String::new(),
        steps: steps
            .iter()
            .map(|(t, d)| StepInput {
                title: (*t).into(),
                description: (*d).into(),
                est_minutes: 5,
                ..StepInput::default()
            })
            .collect(),
    }
    .validate()
    .unwrap()
}

/// Allocates a key and commits a published runbook.
pub async fn add_runbook(store: &dyn Store, ctx: &Ctx, body: RunbookBody) -> Runbook {
    let key = store
        .allocate_key(ctx.id(), KeyKind::Runbook)
        .await
        .unwrap();
    let at = now();
    let rb = Runbook {
        id: RunbookId::new(),
        workspace: ctx.id(),
        key,
        body,
        version: 1,
        owner: ctx.owner.id,
        is_published: true,
        archived_at: None,
        created_at: at,
        updated_at: at,
        rev: 1,
    };
    commit(
        store,
        ctx.id(),
        vec![Write::Runbook {
            runbook: rb.clone(),
            expected_rev: None,
        }],
    )
    .await
    .unwrap();
    rb
}

/// A running execution (rev 1, three steps) of a made-up runbook, not yet committed, as the
/// state machine starts it.
pub fn new_execution(ctx: &Ctx, number: u64) -> Execution {
    let at = now();
    let steps = ["Drain", "Restart", "Check"]
        .into_iter()
        .map(|title| StepInput {
            title: title.into(),
            est_minutes: 5,
            ..StepInput::default()
        })
        .collect();
    let rb = Runbook {
        id: RunbookId::new(),
        workspace: ctx.id(),
        key: Key::new(KeyKind::Runbook, 1),
        body: RunbookInput {
            title: "Test".into(),
            steps,
            ..RunbookInput::default()
        }
        .validate()
        .unwrap(),
        version: 1,
        owner: ctx.owner.id,
        is_published: true,
        archived_at: None,
        created_at: at,
        updated_at: at,
        rev: 1,
    };
    machine::start(
        &rb,
        StartParams {
            key: Key::new(KeyKind::Execution, number),
            operator: ctx.owner.id,
            change: None,
            incident: None,
            rehearsal: false,
            channel: None,
        },
        at,
    )
    .execution
}

/// The `started` event of `e` (what `machine::start` made with it).
pub fn started_event(e: &Execution) -> StepEvent {
    StepEvent {
        execution: e.id,
        seq: 1,
        kind: EventKind::Started,
        step_order: None,
        step_id: None,
        actor: e.operator,
        at: e.started_at,
        note: None,
        started_at: None,
        satisfied_as: None,
        to: None,
    }
}

/// The execution as inserted, with its `started` event.
pub fn insert_execution(e: &Execution) -> Vec<Write> {
    vec![
        Write::Execution {
            execution: e.clone(),
            expected_rev: None,
        },
        Write::StepEvent(started_event(e)),
    ]
}

/// The next revision of `e`, as the state machine writes it: the current step marked done by
/// the operator with `note`, as an update of `e.rev` with its event.
pub fn bump_execution_with(e: &Execution, note: &str) -> Vec<Write> {
    let step = e.current_index().map_or(1, |i| i as u32 + 1);
    let actor = Actor {
        user: User {
            id: e.operator,
            handle: Name::parse_field("handle", "operator").unwrap(),
            rev: 1,
        },
        membership: Membership {
            workspace: e.workspace,
            user: e.operator,
            role: WorkspaceRole::Owner,
            team_roles: Default::default(),
            display_name: Default::default(),
            chat_identities: vec![],
            removed_at: None,
            rev: 1,
        },
    };
    let t = machine::apply(
        e,
        &Command::Done {
            step,
            note: Some(note.into()),
        },
        &actor,
        &Policy::default(),
        now(),
    )
    .unwrap();
    vec![
        Write::Execution {
            execution: t.execution,
            expected_rev: Some(e.rev),
        },
        Write::StepEvent(t.event),
    ]
}

/// [`bump_execution_with`] a note naming the new revision.
pub fn bump_execution(e: &Execution) -> Vec<Write> {
    bump_execution_with(e, &format!("rev {}", e.rev + 1))
}

/// `writes` as if read at revision `read` instead: the execution and its event claim
/// revision `read + 1`, so the store finds a moved revision when it applies them.
pub fn as_if_read_at(mut writes: Vec<Write>, read: u64) -> Vec<Write> {
    for w in &mut writes {
        match w {
            Write::Execution {
                execution,
                expected_rev,
            } => {
                *expected_rev = Some(read);
                execution.rev = read + 1;
            }
            Write::StepEvent(ev) => ev.seq = read + 1,
            _ => {}
        }
    }
    writes
}

/// Every audit entry of `ws`, verified as a chain; returns how many there are.
pub async fn verified_chain(store: &dyn Store, ws: WorkspaceId) -> u64 {
    let entries = store.audit(ws, &AuditQuery::default()).await.unwrap();
    vigilo_core::audit::verify(&entries).unwrap()
}
