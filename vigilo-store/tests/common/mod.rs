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
use vigilo_core::execution::{Execution, ExecutionStatus};
use vigilo_core::fields::Name;
use vigilo_core::ids::{ExecutionId, Key, KeyKind, RunbookId, UserId, WorkspaceId};
use vigilo_core::runbook::{Runbook, RunbookBody, RunbookInput, StepInput};
use vigilo_core::store::{AuditQuery, Commit, StoreResult, Write};
use vigilo_core::workspace::{Policy, User, Workspace};

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

/// A running execution (rev 1, no steps) of a made-up runbook, not yet committed.
pub fn new_execution(ctx: &Ctx, number: u64) -> Execution {
    Execution {
        id: ExecutionId::new(),
        workspace: ctx.id(),
        key: Key::new(KeyKind::Execution, number),
        runbook: RunbookId::new(),
        runbook_key: Key::new(KeyKind::Runbook, 1),
        runbook_version: 1,
        title: "Test".into(),
        operator: ctx.owner.id,
        change: None,
        change_id: None,
        incident: None,
        rehearsal: false,
        channel: None,
        status: ExecutionStatus::Running,
        steps: Vec::new(),
        started_at: now(),
        sealed_at: None,
        abort_reason: None,
        rev: 1,
    }
}

/// The execution as inserted.
pub fn insert_execution(e: &Execution) -> Write {
    Write::Execution {
        execution: e.clone(),
        expected_rev: None,
    }
}

/// The next revision of `e` (as the state machine would write it), as an update of `e.rev`.
pub fn bump_execution(e: &Execution) -> Write {
    let mut next = e.clone();
    next.rev += 1;
    next.title = format!("Test rev {}", next.rev);
    Write::Execution {
        execution: next,
        expected_rev: Some(e.rev),
    }
}

/// Every audit entry of `ws`, verified as a chain; returns how many there are.
pub async fn verified_chain(store: &dyn Store, ws: WorkspaceId) -> u64 {
    let entries = store.audit(ws, &AuditQuery::default()).await.unwrap();
    vigilo_core::audit::verify(&entries).unwrap()
}
