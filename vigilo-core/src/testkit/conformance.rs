//! The conformance suite: one set of behaviours every [`Store`] adapter must show, written once
//! and run unchanged against the in-memory store, SQLite and PostgreSQL.
//!
//! Each case is a `pub async fn case(store: &dyn Store)` that takes a **fresh, empty** store and
//! panics (through `assert!`) when the store breaks the contract written on [`crate::store`].
//! Cases that exercise concurrency run callers on parallel OS threads, so every case must run on
//! a multi-thread Tokio runtime; [`crate::conformance_tests!`] sets that up.
//!
//! # Running the suite against an adapter
//!
//! In an integration test of the adapter's crate (with `vigilo-core`'s `testkit` feature on),
//! call the macro once with an `async` expression that builds a fresh store. The expression is
//! evaluated once per case and must evaluate to something that dereferences to `dyn Store`:
//! an `Arc<dyn Store>`, a `Box<dyn Store>`, or a guard of your own that owns what the store
//! needs (a temporary directory, a scratch database) and drops it after the case.
//!
//! ```ignore
//! // tests/conformance_sqlite.rs
//! vigilo_core::conformance_tests!(async {
//!     let dir = tempfile::tempdir().unwrap();
//!     TempStore::open(dir).await // impl Deref<Target = dyn vigilo_core::store::Store>
//! });
//! ```
//!
//! The macro expands to one `#[test]` per name in [`ALL`] (each running its case on a fresh
//! multi-thread Tokio runtime with two workers, like
//! `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`), plus
//! `conformance_suite_is_complete`, which checks that the macro and [`ALL`] agree.
//! Run one case with `cargo test --test conformance_memory runbook_round_trip`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::future::Future;
use std::ops::Deref;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;

use crate::audit::{self, AuditDraft, AuditEntry, AuditLinks, GENESIS_HASH};
use crate::change::{self, ChangeRequest, ChangeStatus, PlanTask};
use crate::clock;
use crate::execution::machine::{self, Command, StartParams};
use crate::execution::{Approval, ChannelRef, Execution, ExecutionStatus, StepStatus};
use crate::fields::{Label, Markdown, Name, Title};
use crate::ids::{ChangeId, ExecutionId, IncidentId, Key, KeyKind, RunbookId, UserId, WorkspaceId};
use crate::incident::{Incident, IncidentStatus};
use crate::roles::WorkspaceRole;
use crate::runbook::{
    Runbook, RunbookBody, RunbookInput, RunbookVersion, StepInput, VersionSource,
};
use crate::store::{
    AuditQuery, Commit, DraftFilter, ExecutionQuery, RunbookQuery, Store, StoreError, StoreResult,
    Write,
};
use crate::workspace::{Actor, ChatIdentity, Membership, Policy, User, Workspace};

/// Expands to one test per conformance case, each run against a fresh store built by the given
/// `async` expression (evaluated once per case; its value must dereference to `dyn Store`).
///
/// ```ignore
/// vigilo_core::conformance_tests!(async {
///     std::sync::Arc::new(vigilo_core::testkit::memory::MemoryStore::new())
///         as std::sync::Arc<dyn vigilo_core::store::Store>
/// });
/// ```
///
/// See [`testkit::conformance`](crate::testkit::conformance) for the details.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr $(,)?) => {
        $crate::conformance_tests!(@cases $factory;
            workspace_round_trip,
            workspace_unique_values,
            user_round_trip,
            user_unique_values,
            concurrent_inserts_of_one_handle,
            membership_round_trip,
            runbook_round_trip,
            runbook_versions,
            list_runbooks_filters,
            search_runbooks,
            execution_round_trip,
            action_reads_match_single_reads,
            list_executions_filters,
            change_round_trip,
            incident_round_trip,
            default_page_sizes,
            allocate_key_monotonic,
            allocate_key_concurrent,
            commit_is_atomic,
            commit_all_is_all_or_nothing,
            commit_applies_writes_in_order,
            commit_to_unknown_workspace_is_refused,
            concurrent_updates_one_winner,
            audit_chain,
            audit_queries,
            workspace_isolation_reads,
            workspace_isolation_writes,
            missing_rows_are_not_found,
            rows_round_trip_exactly,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testkit::conformance::run(async {
                    let store = $factory.await;
                    $crate::testkit::conformance::$case($crate::testkit::conformance::as_store(&store)).await;
                });
            }
        )*

        #[test]
        fn conformance_suite_is_complete() {
            let listed: &[&str] = &[$(stringify!($case)),*];
            assert_eq!(listed, $crate::testkit::conformance::ALL);
        }
    };
}

/// The names of every case, in the order [`crate::conformance_tests!`] declares them.
pub const ALL: &[&str] = &[
    "workspace_round_trip",
    "workspace_unique_values",
    "user_round_trip",
    "user_unique_values",
    "concurrent_inserts_of_one_handle",
    "membership_round_trip",
    "runbook_round_trip",
    "runbook_versions",
    "list_runbooks_filters",
    "search_runbooks",
    "execution_round_trip",
    "action_reads_match_single_reads",
    "list_executions_filters",
    "change_round_trip",
    "incident_round_trip",
    "default_page_sizes",
    "allocate_key_monotonic",
    "allocate_key_concurrent",
    "commit_is_atomic",
    "commit_all_is_all_or_nothing",
    "commit_applies_writes_in_order",
    "commit_to_unknown_workspace_is_refused",
    "concurrent_updates_one_winner",
    "audit_chain",
    "audit_queries",
    "workspace_isolation_reads",
    "workspace_isolation_writes",
    "missing_rows_are_not_found",
    "rows_round_trip_exactly",
];

/// Runs one case on a fresh multi-thread Tokio runtime with two workers (used by
/// [`crate::conformance_tests!`]).
#[doc(hidden)]
pub fn run(case: impl Future<Output = ()>) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("cannot build the Tokio runtime for a conformance case: {e}"),
    };
    runtime.block_on(case);
}

/// Borrows the store out of whatever the factory of [`crate::conformance_tests!`] built.
#[doc(hidden)]
pub fn as_store<S: Deref<Target = dyn Store>>(store: &S) -> &dyn Store {
    &**store
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// Now, at the microsecond precision every store keeps.
fn now() -> DateTime<Utc> {
    clock::to_micros(Utc::now())
}

fn name(s: &str) -> Name {
    Name::parse_field("name", s).unwrap()
}

fn md(s: &str) -> Markdown {
    Markdown::parse_field("text", s).unwrap()
}

fn new_workspace(slug: &str) -> Workspace {
    Workspace {
        id: WorkspaceId::new(),
        slug: name(slug),
        policy: Policy::default(),
        slack_team: None,
        created_at: now(),
        rev: 1,
    }
}

fn new_user(handle: &str) -> User {
    User {
        id: UserId::new(),
        handle: name(handle),
        display_name: Label::parse_field("display_name", format!("User {handle}")).unwrap(),
        chat_identities: Vec::new(),
        rev: 1,
    }
}

fn chat(platform: &str, team: &str, user: &str) -> ChatIdentity {
    ChatIdentity {
        platform: platform.into(),
        team: team.into(),
        user: user.into(),
    }
}

fn new_membership(workspace: WorkspaceId, user: UserId, role: WorkspaceRole) -> Membership {
    Membership {
        workspace,
        user,
        role,
        team_roles: BTreeSet::new(),
        rev: 1,
    }
}

fn draft(action: &str, target: &str) -> AuditDraft {
    AuditDraft {
        at: now(),
        actor: None,
        actor_handle: None,
        action: action.into(),
        target: target.into(),
        details: json!({}),
        links: AuditLinks::default(),
    }
}

fn draft_by(user: &User, action: &str, target: &str) -> AuditDraft {
    AuditDraft {
        actor: Some(user.id),
        actor_handle: Some(user.handle.to_string()),
        ..draft(action, target)
    }
}

fn runbook_draft(user: &User, action: &str, key: Key) -> AuditDraft {
    let mut d = draft_by(user, action, &key.to_string());
    d.links.runbook = Some(key);
    d
}

async fn try_commit(
    store: &dyn Store,
    ws: WorkspaceId,
    writes: Vec<Write>,
) -> StoreResult<AuditEntry> {
    store
        .commit(Commit {
            workspace: ws,
            writes,
            audit: draft("test.write", "test"),
        })
        .await
}

async fn commit_ok(
    store: &dyn Store,
    ws: WorkspaceId,
    writes: Vec<Write>,
    audit: AuditDraft,
) -> AuditEntry {
    let action = audit.action.clone();
    match store
        .commit(Commit {
            workspace: ws,
            writes,
            audit,
        })
        .await
    {
        Ok(e) => e,
        Err(e) => panic!("commit `{action}` failed: {e:?}"),
    }
}

#[track_caller]
fn assert_not_found<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

#[track_caller]
fn assert_conflict<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

#[track_caller]
fn assert_already_exists<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::AlreadyExists(_)) => {}
        other => panic!("{what}: expected AlreadyExists, got {other:?}"),
    }
}

/// A collision with a unique value on update: `AlreadyExists` or `Conflict` both say it.
#[track_caller]
fn assert_taken<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::AlreadyExists(_) | StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected AlreadyExists or Conflict, got {other:?}"),
    }
}

async fn audit_all(store: &dyn Store, ws: WorkspaceId) -> Vec<AuditEntry> {
    store.audit(ws, &AuditQuery::default()).await.unwrap()
}

async fn audit_len(store: &dyn Store, ws: WorkspaceId) -> usize {
    audit_all(store, ws).await.len()
}

/// Runs `n` callers at once on their own OS threads (started together behind a barrier) and
/// returns their results in caller order. Needs a multi-thread Tokio runtime.
fn parallel<T, F, Fut>(n: usize, f: F) -> Vec<T>
where
    T: Send,
    F: Fn(usize) -> Fut + Sync,
    Fut: Future<Output = T>,
{
    let handle = tokio::runtime::Handle::current();
    let barrier = std::sync::Barrier::new(n);
    tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let joins: Vec<_> = (0..n)
                .map(|i| {
                    let (f, handle, barrier) = (&f, &handle, &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        handle.block_on(f(i))
                    })
                })
                .collect();
            joins
                .into_iter()
                .map(|j| j.join().expect("a concurrent caller panicked"))
                .collect()
        })
    })
}

/// A workspace with an owner (alice) and an operator (bob).
struct Ctx {
    ws: Workspace,
    alice: User,
    bob: User,
    alice_m: Membership,
    bob_m: Membership,
}

impl Ctx {
    fn id(&self) -> WorkspaceId {
        self.ws.id
    }

    fn actor(&self, user: &User) -> Actor {
        let membership = if user.id == self.alice.id {
            self.alice_m.clone()
        } else {
            self.bob_m.clone()
        };
        Actor {
            user: user.clone(),
            membership,
        }
    }
}

/// Creates workspace `slug` with users `{slug}-alice` (owner) and `{slug}-bob` (operator), in one
/// commit.
async fn setup(store: &dyn Store, slug: &str) -> Ctx {
    let ws = new_workspace(slug);
    let alice = new_user(&format!("{slug}-alice"));
    let bob = new_user(&format!("{slug}-bob"));
    let alice_m = new_membership(ws.id, alice.id, WorkspaceRole::Owner);
    let bob_m = new_membership(ws.id, bob.id, WorkspaceRole::Operator);
    commit_ok(
        store,
        ws.id,
        vec![
            Write::Workspace {
                workspace: ws.clone(),
                expected_rev: None,
            },
            Write::User {
                user: alice.clone(),
                expected_rev: None,
            },
            Write::User {
                user: bob.clone(),
                expected_rev: None,
            },
            Write::Membership {
                membership: alice_m.clone(),
                expected_rev: None,
            },
            Write::Membership {
                membership: bob_m.clone(),
                expected_rev: None,
            },
        ],
        draft("workspace.created", slug),
    )
    .await;
    Ctx {
        ws,
        alice,
        bob,
        alice_m,
        bob_m,
    }
}

const STEPS: &[(&str, &str)] = &[
    ("Prepare", "Get ready"),
    ("Act", "Do the thing"),
    ("Verify", "Check the result"),
];

fn body(title: &str, description: &str, category: &str, steps: &[(&str, &str)]) -> RunbookBody {
    RunbookInput {
        title: title.into(),
        description: description.into(),
        category: category.into(),
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
    .expect("fixture runbook is valid")
}

fn simple_body(title: &str) -> RunbookBody {
    body(title, "", "", STEPS)
}

fn new_runbook(ctx: &Ctx, key: Key, body: RunbookBody, owner: &User, published: bool) -> Runbook {
    let at = now();
    Runbook {
        id: RunbookId::new(),
        workspace: ctx.id(),
        key,
        body,
        version: 1,
        owner: owner.id,
        is_published: published,
        archived_at: None,
        created_at: at,
        updated_at: at,
        rev: 1,
    }
}

fn first_version(rb: &Runbook) -> RunbookVersion {
    RunbookVersion {
        runbook: rb.id,
        version: 1,
        body: rb.body.clone(),
        author: rb.owner,
        saved_at: rb.created_at,
        source: VersionSource::Created,
    }
}

/// Allocates a key and commits a runbook with its version 1.
async fn add_runbook(
    store: &dyn Store,
    ctx: &Ctx,
    body: RunbookBody,
    owner: &User,
    published: bool,
) -> Runbook {
    let key = store
        .allocate_key(ctx.id(), KeyKind::Runbook)
        .await
        .unwrap();
    let rb = new_runbook(ctx, key, body, owner, published);
    commit_ok(
        store,
        ctx.id(),
        vec![
            Write::Runbook {
                runbook: rb.clone(),
                expected_rev: None,
            },
            Write::RunbookVersion(first_version(&rb)),
        ],
        runbook_draft(owner, "runbook.created", key),
    )
    .await;
    rb
}

/// Commits `f(rb)` with the next revision (publish, archive: the version stays).
async fn update_runbook(
    store: &dyn Store,
    ctx: &Ctx,
    rb: &Runbook,
    f: impl FnOnce(&mut Runbook),
) -> Runbook {
    let mut next = rb.clone();
    f(&mut next);
    next.rev = rb.rev + 1;
    next.updated_at = now();
    commit_ok(
        store,
        ctx.id(),
        vec![Write::Runbook {
            runbook: next.clone(),
            expected_rev: Some(rb.rev),
        }],
        runbook_draft(&ctx.alice, "runbook.updated", rb.key),
    )
    .await;
    next
}

/// Commits a new body as the next version, with its version row.
async fn edit_runbook(
    store: &dyn Store,
    ctx: &Ctx,
    rb: &Runbook,
    body: RunbookBody,
    source: VersionSource,
) -> Runbook {
    let mut next = rb.clone();
    next.body = body;
    next.version += 1;
    next.rev += 1;
    next.updated_at = now();
    let version = RunbookVersion {
        runbook: rb.id,
        version: next.version,
        body: next.body.clone(),
        author: ctx.alice.id,
        saved_at: next.updated_at,
        source,
    };
    commit_ok(
        store,
        ctx.id(),
        vec![
            Write::Runbook {
                runbook: next.clone(),
                expected_rev: Some(rb.rev),
            },
            Write::RunbookVersion(version),
        ],
        runbook_draft(&ctx.alice, "runbook.edited", rb.key),
    )
    .await;
    next
}

/// Starts an execution of `rb` (machine::start) and commits it with its first event.
async fn start_execution(
    store: &dyn Store,
    ctx: &Ctx,
    rb: &Runbook,
    operator: &User,
    change: Option<&ChangeRequest>,
    channel: Option<ChannelRef>,
) -> Execution {
    let key = store
        .allocate_key(ctx.id(), KeyKind::Execution)
        .await
        .unwrap();
    let t = machine::start(
        rb,
        StartParams {
            key,
            operator: operator.id,
            change: change.map(|c| (c.key, c.id)),
            incident: None,
            rehearsal: false,
            channel,
        },
        now(),
    );
    let mut d = draft_by(operator, "execution.started", &key.to_string());
    d.links.execution = Some(key);
    d.links.runbook = Some(rb.key);
    commit_ok(
        store,
        ctx.id(),
        vec![
            Write::Execution {
                execution: t.execution.clone(),
                expected_rev: None,
            },
            Write::StepEvent(t.event),
        ],
        d,
    )
    .await;
    t.execution
}

/// Applies `cmd` by `user` through the state machine and commits the result.
async fn step(
    store: &dyn Store,
    ctx: &Ctx,
    ex: &Execution,
    cmd: Command,
    user: &User,
) -> Execution {
    let t = machine::apply(ex, &cmd, &ctx.actor(user), &ctx.ws.policy, now()).unwrap();
    let mut d = draft_by(user, "execution.step", &ex.key.to_string());
    d.links.execution = Some(ex.key);
    commit_ok(
        store,
        ctx.id(),
        vec![
            Write::Execution {
                execution: t.execution.clone(),
                expected_rev: Some(ex.rev),
            },
            Write::StepEvent(t.event),
        ],
        d,
    )
    .await;
    t.execution
}

fn done(step: u32) -> Command {
    Command::Done { step, note: None }
}

fn new_change(ctx: &Ctx, key: Key, title: &str) -> ChangeRequest {
    let at = now();
    let task = PlanTask::from_input(
        StepInput {
            title: "Announce".into(),
            description: "Post in #ops".into(),
            ..StepInput::default()
        },
        1,
    )
    .unwrap();
    ChangeRequest {
        id: ChangeId::new(),
        workspace: ctx.id(),
        key,
        title: Title::parse(title).unwrap(),
        description: md("Why and how"),
        owner: ctx.alice.id,
        status: ChangeStatus::Draft,
        tasks: vec![task],
        source: None,
        created_at: at,
        updated_at: at,
        rev: 1,
    }
}

async fn add_change(store: &dyn Store, ctx: &Ctx, title: &str) -> ChangeRequest {
    let key = store.allocate_key(ctx.id(), KeyKind::Change).await.unwrap();
    let cr = new_change(ctx, key, title);
    let mut d = draft_by(&ctx.alice, "change.created", &key.to_string());
    d.links.change = Some(key);
    commit_ok(
        store,
        ctx.id(),
        vec![Write::Change {
            change: cr.clone(),
            expected_rev: None,
        }],
        d,
    )
    .await;
    cr
}

fn new_incident(ctx: &Ctx, key: Key, title: &str) -> Incident {
    Incident {
        id: IncidentId::new(),
        workspace: ctx.id(),
        key,
        title: Title::parse(title).unwrap(),
        status: IncidentStatus::Open,
        created_by: ctx.bob.id,
        created_at: now(),
        resolved_at: None,
        rev: 1,
    }
}

async fn add_incident(store: &dyn Store, ctx: &Ctx, title: &str) -> Incident {
    let key = store
        .allocate_key(ctx.id(), KeyKind::Incident)
        .await
        .unwrap();
    let inc = new_incident(ctx, key, title);
    let mut d = draft_by(&ctx.bob, "incident.created", &key.to_string());
    d.links.incident = Some(key);
    commit_ok(
        store,
        ctx.id(),
        vec![Write::Incident {
            incident: inc.clone(),
            expected_rev: None,
        }],
        d,
    )
    .await;
    inc
}

fn keys(rows: &[Runbook]) -> Vec<u64> {
    rows.iter().map(|r| r.key.number).collect()
}

fn exec_keys(rows: &[Execution]) -> Vec<u64> {
    rows.iter().map(|e| e.key.number).collect()
}

fn seqs(entries: &[AuditEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq).collect()
}

// ---------------------------------------------------------------------------------------------
// Workspaces, users, memberships
// ---------------------------------------------------------------------------------------------

/// A workspace reads back by id, slug and Slack team; `list_workspaces` orders by slug; an update
/// with the right revision moves slug and team (the old ones stop matching); a stale revision is a
/// `Conflict`; updating a missing workspace is `NotFound`.
pub async fn workspace_round_trip(store: &dyn Store) {
    let mut ws = new_workspace("ops");
    ws.slack_team = Some("T0001".into());
    ws.policy = Policy {
        approver_must_differ: false,
    };
    let entry = commit_ok(
        store,
        ws.id,
        vec![Write::Workspace {
            workspace: ws.clone(),
            expected_rev: None,
        }],
        draft("workspace.created", "ops"),
    )
    .await;
    assert_eq!(entry.seq, 1);
    assert_eq!(entry.workspace, ws.id);
    assert_eq!(store.workspace(ws.id).await.unwrap(), ws);
    assert_eq!(store.workspace_by_slug("ops").await.unwrap(), ws);
    assert_eq!(store.workspace_by_slack_team("T0001").await.unwrap(), ws);

    let other = new_workspace("abc");
    commit_ok(
        store,
        other.id,
        vec![Write::Workspace {
            workspace: other.clone(),
            expected_rev: None,
        }],
        draft("workspace.created", "abc"),
    )
    .await;
    assert_eq!(
        store.list_workspaces().await.unwrap(),
        vec![other.clone(), ws.clone()]
    );

    let mut renamed = ws.clone();
    renamed.slug = name("ops-eu");
    renamed.slack_team = Some("T0002".into());
    renamed.policy = Policy::default();
    renamed.rev = 2;
    commit_ok(
        store,
        ws.id,
        vec![Write::Workspace {
            workspace: renamed.clone(),
            expected_rev: Some(1),
        }],
        draft("workspace.renamed", "ops-eu"),
    )
    .await;
    assert_eq!(store.workspace(ws.id).await.unwrap(), renamed);
    assert_eq!(store.workspace_by_slug("ops-eu").await.unwrap(), renamed);
    assert_eq!(
        store.workspace_by_slack_team("T0002").await.unwrap(),
        renamed
    );
    assert_not_found(
        store.workspace_by_slug("ops").await,
        "old slug after rename",
    );
    assert_not_found(
        store.workspace_by_slack_team("T0001").await,
        "old Slack team after relink",
    );

    let mut stale = renamed.clone();
    stale.slug = name("ops-x");
    stale.rev = 2;
    assert_conflict(
        try_commit(
            store,
            ws.id,
            vec![Write::Workspace {
                workspace: stale,
                expected_rev: Some(1),
            }],
        )
        .await,
        "workspace update with a stale revision",
    );
    assert_eq!(
        store.workspace(ws.id).await.unwrap(),
        renamed,
        "a refused update changes nothing"
    );
    assert_not_found(
        store.workspace_by_slug("ops-x").await,
        "slug of a refused update",
    );

    let mut ghost = new_workspace("ghost");
    ghost.rev = 2;
    assert_not_found(
        try_commit(
            store,
            ghost.id,
            vec![Write::Workspace {
                workspace: ghost.clone(),
                expected_rev: Some(1),
            }],
        )
        .await,
        "update of a workspace that does not exist",
    );
    assert_not_found(
        store.workspace(ghost.id).await,
        "workspace of a refused update",
    );
}

/// Slug and Slack team are unique: inserting a taken one is `AlreadyExists` (and so is a taken
/// id); renaming onto a taken slug is refused; a value given up by an update is free again.
pub async fn workspace_unique_values(store: &dyn Store) {
    let mut ops = new_workspace("ops");
    ops.slack_team = Some("T1".into());
    commit_ok(
        store,
        ops.id,
        vec![Write::Workspace {
            workspace: ops.clone(),
            expected_rev: None,
        }],
        draft("workspace.created", "ops"),
    )
    .await;

    let same_slug = new_workspace("ops");
    assert_already_exists(
        try_commit(
            store,
            same_slug.id,
            vec![Write::Workspace {
                workspace: same_slug.clone(),
                expected_rev: None,
            }],
        )
        .await,
        "a second workspace with slug `ops`",
    );
    assert_not_found(store.workspace(same_slug.id).await, "refused workspace");

    let mut same_team = new_workspace("dev");
    same_team.slack_team = Some("T1".into());
    assert_already_exists(
        try_commit(
            store,
            same_team.id,
            vec![Write::Workspace {
                workspace: same_team.clone(),
                expected_rev: None,
            }],
        )
        .await,
        "a second workspace linked to Slack team T1",
    );
    assert_not_found(
        store.workspace_by_slug("dev").await,
        "refused workspace by slug",
    );

    let mut same_id = new_workspace("other");
    same_id.id = ops.id;
    assert_already_exists(
        try_commit(
            store,
            ops.id,
            vec![Write::Workspace {
                workspace: same_id,
                expected_rev: None,
            }],
        )
        .await,
        "insert of an existing workspace id",
    );
    assert_eq!(store.workspace(ops.id).await.unwrap(), ops);

    let dev = new_workspace("dev");
    commit_ok(
        store,
        dev.id,
        vec![Write::Workspace {
            workspace: dev.clone(),
            expected_rev: None,
        }],
        draft("workspace.created", "dev"),
    )
    .await;
    let mut onto_ops = dev.clone();
    onto_ops.slug = name("ops");
    onto_ops.rev = 2;
    assert_taken(
        try_commit(
            store,
            dev.id,
            vec![Write::Workspace {
                workspace: onto_ops,
                expected_rev: Some(1),
            }],
        )
        .await,
        "renaming a workspace onto a taken slug",
    );
    assert_eq!(store.workspace(dev.id).await.unwrap(), dev);

    // ops gives up its slug and team; both are free again.
    let mut moved = ops.clone();
    moved.slug = name("ops-old");
    moved.slack_team = None;
    moved.rev = 2;
    commit_ok(
        store,
        ops.id,
        vec![Write::Workspace {
            workspace: moved,
            expected_rev: Some(1),
        }],
        draft("workspace.renamed", "ops-old"),
    )
    .await;
    let mut fresh = new_workspace("ops");
    fresh.slack_team = Some("T1".into());
    commit_ok(
        store,
        fresh.id,
        vec![Write::Workspace {
            workspace: fresh.clone(),
            expected_rev: None,
        }],
        draft("workspace.created", "ops"),
    )
    .await;
    assert_eq!(store.workspace_by_slug("ops").await.unwrap(), fresh);
    assert_eq!(store.workspace_by_slack_team("T1").await.unwrap(), fresh);
}

/// A user reads back by id, handle and each chat identity; an update moves handle and identities
/// (the old ones stop matching); a stale revision is a `Conflict` and changes nothing.
pub async fn user_round_trip(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let mut carol = new_user("carol");
    carol.chat_identities = vec![chat("slack", "T1", "U1"), chat("console", "", "carol")];
    commit_ok(
        store,
        ctx.id(),
        vec![Write::User {
            user: carol.clone(),
            expected_rev: None,
        }],
        draft_by(&ctx.alice, "user.created", "carol"),
    )
    .await;
    assert_eq!(store.user(carol.id).await.unwrap(), carol);
    assert_eq!(store.user_by_handle("carol").await.unwrap(), carol);
    assert_eq!(
        store
            .user_by_chat(&chat("slack", "T1", "U1"))
            .await
            .unwrap(),
        carol
    );
    assert_eq!(
        store
            .user_by_chat(&chat("console", "", "carol"))
            .await
            .unwrap(),
        carol
    );
    assert_not_found(
        store.user_by_chat(&chat("slack", "T2", "U1")).await,
        "identity of another team",
    );

    let mut next = carol.clone();
    next.handle = name("caroline");
    next.display_name = Label::parse_field("display_name", "Caroline Ng").unwrap();
    next.chat_identities = vec![chat("slack", "T1", "U1"), chat("slack", "T9", "U9")];
    next.rev = 2;
    commit_ok(
        store,
        ctx.id(),
        vec![Write::User {
            user: next.clone(),
            expected_rev: Some(1),
        }],
        draft_by(&ctx.alice, "user.renamed", "caroline"),
    )
    .await;
    assert_eq!(store.user(carol.id).await.unwrap(), next);
    assert_eq!(store.user_by_handle("caroline").await.unwrap(), next);
    assert_eq!(
        store
            .user_by_chat(&chat("slack", "T9", "U9"))
            .await
            .unwrap(),
        next
    );
    assert_eq!(
        store
            .user_by_chat(&chat("slack", "T1", "U1"))
            .await
            .unwrap(),
        next
    );
    assert_not_found(
        store.user_by_handle("carol").await,
        "old handle after rename",
    );
    assert_not_found(
        store.user_by_chat(&chat("console", "", "carol")).await,
        "removed identity",
    );

    let mut stale = next.clone();
    stale.handle = name("cee");
    stale.rev = 2;
    assert_conflict(
        try_commit(
            store,
            ctx.id(),
            vec![Write::User {
                user: stale,
                expected_rev: Some(1),
            }],
        )
        .await,
        "user update with a stale revision",
    );
    assert_eq!(store.user(carol.id).await.unwrap(), next);
    assert_not_found(
        store.user_by_handle("cee").await,
        "handle of a refused update",
    );
}

/// Handles and chat identities are unique across users: taken ones are refused on insert
/// (`AlreadyExists`) and on update; an identity differing in any part is another identity; a
/// handle given up is free again.
pub async fn user_unique_values(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let mut dan = new_user("dan");
    dan.chat_identities = vec![chat("slack", "T1", "U1")];
    commit_ok(
        store,
        ctx.id(),
        vec![Write::User {
            user: dan.clone(),
            expected_rev: None,
        }],
        draft("user.created", "dan"),
    )
    .await;

    let same_handle = new_user("dan");
    assert_already_exists(
        try_commit(
            store,
            ctx.id(),
            vec![Write::User {
                user: same_handle.clone(),
                expected_rev: None,
            }],
        )
        .await,
        "a second user with handle `dan`",
    );
    assert_not_found(store.user(same_handle.id).await, "refused user");

    let mut same_identity = new_user("dana");
    same_identity.chat_identities = vec![chat("slack", "T1", "U2"), chat("slack", "T1", "U1")];
    assert_already_exists(
        try_commit(
            store,
            ctx.id(),
            vec![Write::User {
                user: same_identity,
                expected_rev: None,
            }],
        )
        .await,
        "a second user with identity slack/T1/U1",
    );
    assert_not_found(store.user_by_handle("dana").await, "refused user by handle");
    assert_not_found(
        store.user_by_chat(&chat("slack", "T1", "U2")).await,
        "identity of a refused user",
    );

    let mut same_id = new_user("daniel");
    same_id.id = dan.id;
    assert_already_exists(
        try_commit(
            store,
            ctx.id(),
            vec![Write::User {
                user: same_id,
                expected_rev: None,
            }],
        )
        .await,
        "insert of an existing user id",
    );

    let mut other_team = new_user("dana");
    other_team.chat_identities = vec![chat("slack", "T2", "U1"), chat("teams", "T1", "U1")];
    commit_ok(
        store,
        ctx.id(),
        vec![Write::User {
            user: other_team.clone(),
            expected_rev: None,
        }],
        draft("user.created", "dana"),
    )
    .await;
    assert_eq!(
        store
            .user_by_chat(&chat("slack", "T2", "U1"))
            .await
            .unwrap(),
        other_team
    );
    assert_eq!(
        store
            .user_by_chat(&chat("slack", "T1", "U1"))
            .await
            .unwrap(),
        dan
    );

    let mut onto_dan = other_team.clone();
    onto_dan.handle = name("dan");
    onto_dan.rev = 2;
    assert_taken(
        try_commit(
            store,
            ctx.id(),
            vec![Write::User {
                user: onto_dan,
                expected_rev: Some(1),
            }],
        )
        .await,
        "renaming a user onto a taken handle",
    );
    let mut steal_identity = other_team.clone();
    steal_identity
        .chat_identities
        .push(chat("slack", "T1", "U1"));
    steal_identity.rev = 2;
    assert_taken(
        try_commit(
            store,
            ctx.id(),
            vec![Write::User {
                user: steal_identity,
                expected_rev: Some(1),
            }],
        )
        .await,
        "adding an identity another user holds",
    );
    assert_eq!(store.user(other_team.id).await.unwrap(), other_team);

    let mut renamed = dan.clone();
    renamed.handle = name("daniel");
    renamed.chat_identities.clear();
    renamed.rev = 2;
    commit_ok(
        store,
        ctx.id(),
        vec![Write::User {
            user: renamed,
            expected_rev: Some(1),
        }],
        draft("user.renamed", "daniel"),
    )
    .await;
    let mut new_dan = new_user("dan");
    new_dan.chat_identities = vec![chat("slack", "T1", "U1")];
    commit_ok(
        store,
        ctx.id(),
        vec![Write::User {
            user: new_dan.clone(),
            expected_rev: None,
        }],
        draft("user.created", "dan"),
    )
    .await;
    assert_eq!(store.user_by_handle("dan").await.unwrap(), new_dan);
    assert_eq!(
        store
            .user_by_chat(&chat("slack", "T1", "U1"))
            .await
            .unwrap(),
        new_dan
    );
}

/// 20 concurrent inserts of users with the same handle: exactly one succeeds, the others are
/// refused (`AlreadyExists`, or `Conflict` for a value taken by a concurrent writer).
pub async fn concurrent_inserts_of_one_handle(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let ws = ctx.id();
    let results = parallel(20, move |_| async move {
        let user = new_user("racer");
        let id = user.id;
        let r = try_commit(
            store,
            ws,
            vec![Write::User {
                user,
                expected_rev: None,
            }],
        )
        .await;
        (id, r)
    });
    let winners: Vec<UserId> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one insert of handle `racer` wins"
    );
    for (_, r) in results.into_iter().filter(|(_, r)| r.is_err()) {
        assert_taken(r, "a losing concurrent insert");
    }
    assert_eq!(store.user_by_handle("racer").await.unwrap().id, winners[0]);
    assert_eq!(
        audit_len(store, ctx.id()).await,
        2,
        "one audit entry per successful commit"
    );
}

/// A membership reads back; `list_members` pairs users and memberships ordered by handle; role
/// and team roles update with the right revision; stale revision, duplicate and missing rows are
/// refused.
pub async fn membership_round_trip(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    assert_eq!(
        store.membership(ctx.id(), ctx.alice.id).await.unwrap(),
        ctx.alice_m
    );
    assert_eq!(
        store.membership(ctx.id(), ctx.bob.id).await.unwrap(),
        ctx.bob_m
    );

    let abe = new_user("abe");
    let abe_m = new_membership(ctx.id(), abe.id, WorkspaceRole::Member);
    let loner = new_user("zed");
    commit_ok(
        store,
        ctx.id(),
        vec![
            Write::User {
                user: abe.clone(),
                expected_rev: None,
            },
            Write::Membership {
                membership: abe_m.clone(),
                expected_rev: None,
            },
            Write::User {
                user: loner.clone(),
                expected_rev: None,
            },
        ],
        draft_by(&ctx.alice, "member.added", "abe"),
    )
    .await;
    let members = store.list_members(ctx.id()).await.unwrap();
    assert_eq!(
        members,
        vec![
            (abe.clone(), abe_m.clone()),
            (ctx.alice.clone(), ctx.alice_m.clone()),
            (ctx.bob.clone(), ctx.bob_m.clone()),
        ]
    );
    assert_not_found(
        store.membership(ctx.id(), loner.id).await,
        "a user without membership",
    );
    assert_not_found(
        store.membership(ctx.id(), UserId::new()).await,
        "an unknown user",
    );

    let mut promoted = abe_m.clone();
    promoted.role = WorkspaceRole::Admin;
    promoted.team_roles = [name("dba"), name("sre")].into_iter().collect();
    promoted.rev = 2;
    commit_ok(
        store,
        ctx.id(),
        vec![Write::Membership {
            membership: promoted.clone(),
            expected_rev: Some(1),
        }],
        draft_by(&ctx.alice, "member.role_changed", "abe"),
    )
    .await;
    assert_eq!(store.membership(ctx.id(), abe.id).await.unwrap(), promoted);

    let mut stale = abe_m.clone();
    stale.role = WorkspaceRole::Owner;
    stale.rev = 2;
    assert_conflict(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Membership {
                membership: stale,
                expected_rev: Some(1),
            }],
        )
        .await,
        "membership update with a stale revision",
    );
    assert_eq!(store.membership(ctx.id(), abe.id).await.unwrap(), promoted);

    assert_already_exists(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Membership {
                membership: new_membership(ctx.id(), abe.id, WorkspaceRole::Member),
                expected_rev: None,
            }],
        )
        .await,
        "a second membership of the same user",
    );
    let mut missing = new_membership(ctx.id(), loner.id, WorkspaceRole::Member);
    missing.rev = 2;
    assert_not_found(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Membership {
                membership: missing,
                expected_rev: Some(1),
            }],
        )
        .await,
        "update of a membership that does not exist",
    );
    assert_eq!(store.list_members(ctx.id()).await.unwrap().len(), 3);
}

// ---------------------------------------------------------------------------------------------
// Runbooks
// ---------------------------------------------------------------------------------------------

/// A runbook reads back by id and key exactly as written; an update with the right revision is
/// stored; a stale revision is a `Conflict` and leaves the row unchanged; a missing row is
/// `NotFound`; a taken key or id is `AlreadyExists`.
pub async fn runbook_round_trip(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let rb = add_runbook(
        store,
        &ctx,
        body("Restart the API", "When it hangs", "api", STEPS),
        &ctx.alice,
        false,
    )
    .await;
    assert_eq!(rb.key, Key::new(KeyKind::Runbook, 1));
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap(), rb);
    assert_eq!(store.runbook_by_key(ctx.id(), rb.key).await.unwrap(), rb);

    let mut edited_body = rb.body.clone();
    edited_body.title = Title::parse("Restart the API gateway").unwrap();
    edited_body.steps.swap(0, 2);
    edited_body.steps.pop();
    let edited = edit_runbook(store, &ctx, &rb, edited_body, VersionSource::Edit).await;
    assert_eq!(edited.rev, 2);
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap(), edited);

    let published = update_runbook(store, &ctx, &edited, |r| r.is_published = true).await;
    assert_eq!((published.rev, published.version), (3, 2));
    assert_eq!(
        store.runbook_by_key(ctx.id(), rb.key).await.unwrap(),
        published
    );

    let mut stale = edited.clone();
    stale.body.title = Title::parse("Lost update").unwrap();
    stale.rev = 3;
    assert_conflict(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Runbook {
                runbook: stale,
                expected_rev: Some(2),
            }],
        )
        .await,
        "runbook update with a stale revision",
    );
    assert_eq!(
        store.runbook(ctx.id(), rb.id).await.unwrap(),
        published,
        "a refused update changes nothing"
    );

    let mut ghost = new_runbook(
        &ctx,
        Key::new(KeyKind::Runbook, 77),
        simple_body("Ghost"),
        &ctx.alice,
        true,
    );
    ghost.rev = 2;
    assert_not_found(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Runbook {
                runbook: ghost.clone(),
                expected_rev: Some(1),
            }],
        )
        .await,
        "update of a runbook that does not exist",
    );
    assert_not_found(
        store.runbook(ctx.id(), ghost.id).await,
        "runbook of a refused update",
    );

    let same_key = new_runbook(&ctx, rb.key, simple_body("Same key"), &ctx.bob, true);
    assert_already_exists(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Runbook {
                runbook: same_key.clone(),
                expected_rev: None,
            }],
        )
        .await,
        "a second runbook with key RB-00001",
    );
    assert_not_found(
        store.runbook(ctx.id(), same_key.id).await,
        "refused runbook",
    );

    let mut same_id = new_runbook(
        &ctx,
        Key::new(KeyKind::Runbook, 50),
        simple_body("Same id"),
        &ctx.bob,
        true,
    );
    same_id.id = rb.id;
    assert_already_exists(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Runbook {
                runbook: same_id,
                expected_rev: None,
            }],
        )
        .await,
        "insert of an existing runbook id",
    );
    assert_not_found(
        store
            .runbook_by_key(ctx.id(), Key::new(KeyKind::Runbook, 50))
            .await,
        "key of a refused insert",
    );
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap(), published);
}

/// Saved versions list oldest first and read back one by one; a duplicate (runbook, version) is
/// `AlreadyExists` and leaves the saved one unchanged; unknown versions and runbooks are
/// `NotFound`.
pub async fn runbook_versions(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let rb = add_runbook(
        store,
        &ctx,
        simple_body("Rotate certificates"),
        &ctx.alice,
        true,
    )
    .await;
    let v1 = first_version(&rb);
    assert_eq!(
        store.runbook_versions(ctx.id(), rb.id).await.unwrap(),
        vec![v1.clone()]
    );

    let rb2 = edit_runbook(
        store,
        &ctx,
        &rb,
        simple_body("Rotate TLS certificates"),
        VersionSource::Edit,
    )
    .await;
    let rb3 = edit_runbook(
        store,
        &ctx,
        &rb2,
        simple_body("Rotate all TLS certificates"),
        VersionSource::FileSync {
            file: "certs.md".into(),
        },
    )
    .await;
    let versions = store.runbook_versions(ctx.id(), rb.id).await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(versions[0], v1);
    assert_eq!(versions[1].body, rb2.body);
    assert_eq!(versions[1].source, VersionSource::Edit);
    assert_eq!(versions[2].body, rb3.body);
    assert_eq!(
        versions[2].source,
        VersionSource::FileSync {
            file: "certs.md".into()
        }
    );
    assert_eq!(
        store.runbook_version(ctx.id(), rb.id, 2).await.unwrap(),
        versions[1]
    );
    assert_eq!(
        store.runbook_version(ctx.id(), rb.id, 3).await.unwrap(),
        versions[2]
    );

    let mut duplicate = versions[1].clone();
    duplicate.body = simple_body("Overwritten");
    duplicate.source = VersionSource::Edit;
    assert_already_exists(
        try_commit(store, ctx.id(), vec![Write::RunbookVersion(duplicate)]).await,
        "a second version 2",
    );
    assert_eq!(
        store.runbook_version(ctx.id(), rb.id, 2).await.unwrap(),
        versions[1]
    );

    assert_not_found(store.runbook_version(ctx.id(), rb.id, 9).await, "version 9");
    assert_not_found(
        store.runbook_version(ctx.id(), RunbookId::new(), 1).await,
        "version of an unknown runbook",
    );
    assert_not_found(
        store.runbook_versions(ctx.id(), RunbookId::new()).await,
        "versions of an unknown runbook",
    );
    let orphan = RunbookVersion {
        runbook: RunbookId::new(),
        ..v1
    };
    assert!(
        try_commit(store, ctx.id(), vec![Write::RunbookVersion(orphan)])
            .await
            .is_err(),
        "a version of a runbook that does not exist is refused"
    );
    assert_eq!(
        store.runbook_versions(ctx.id(), rb.id).await.unwrap(),
        versions
    );
}

/// `list_runbooks` orders by key and honours category, every `DraftFilter`, `archived`, and
/// keyset pagination (`after_number`, `limit`).
pub async fn list_runbooks_filters(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let (alice, bob) = (&ctx.alice, &ctx.bob);
    add_runbook(
        store,
        &ctx,
        body("Restart API", "", "api", STEPS),
        alice,
        true,
    )
    .await; // 1
    add_runbook(
        store,
        &ctx,
        body("Rotate certs", "", "security", STEPS),
        bob,
        true,
    )
    .await; // 2
    add_runbook(
        store,
        &ctx,
        body("Alice draft", "", "api", STEPS),
        alice,
        false,
    )
    .await; // 3
    add_runbook(store, &ctx, body("Bob draft", "", "api", STEPS), bob, false).await; // 4
    let old = add_runbook(
        store,
        &ctx,
        body("Old procedure", "", "api", STEPS),
        alice,
        true,
    )
    .await; // 5
    update_runbook(store, &ctx, &old, |r| r.archived_at = Some(now())).await;
    let old_draft = add_runbook(
        store,
        &ctx,
        body("Old draft", "", "api", STEPS),
        alice,
        false,
    )
    .await; // 6
    update_runbook(store, &ctx, &old_draft, |r| r.archived_at = Some(now())).await;
    add_runbook(
        store,
        &ctx,
        body("Restart workers", "", "api", STEPS),
        bob,
        true,
    )
    .await; // 7

    let ws = ctx.id();
    let list =
        move |q: RunbookQuery| async move { keys(&store.list_runbooks(ws, &q).await.unwrap()) };
    let q = |drafts: DraftFilter| RunbookQuery {
        drafts,
        ..RunbookQuery::default()
    };
    assert_eq!(
        list(RunbookQuery::default()).await,
        vec![1, 2, 7],
        "published only by default"
    );
    assert_eq!(list(q(DraftFilter::None)).await, vec![1, 2, 7]);
    assert_eq!(
        list(q(DraftFilter::OwnedBy(alice.id))).await,
        vec![1, 2, 3, 7]
    );
    assert_eq!(
        list(q(DraftFilter::OwnedBy(bob.id))).await,
        vec![1, 2, 4, 7]
    );
    assert_eq!(
        list(q(DraftFilter::OwnedBy(UserId::new()))).await,
        vec![1, 2, 7]
    );
    assert_eq!(list(q(DraftFilter::All)).await, vec![1, 2, 3, 4, 7]);
    assert_eq!(list(q(DraftFilter::Only)).await, vec![3, 4]);

    let cat = |c: &str, drafts: DraftFilter| RunbookQuery {
        category: Some(c.into()),
        drafts,
        ..RunbookQuery::default()
    };
    assert_eq!(list(cat("api", DraftFilter::None)).await, vec![1, 7]);
    assert_eq!(list(cat("security", DraftFilter::All)).await, vec![2]);
    assert_eq!(list(cat("api", DraftFilter::Only)).await, vec![3, 4]);
    assert_eq!(
        list(cat("ap", DraftFilter::All)).await,
        Vec::<u64>::new(),
        "category is an exact match"
    );

    let archived = |drafts: DraftFilter| RunbookQuery {
        archived: true,
        drafts,
        ..RunbookQuery::default()
    };
    assert_eq!(list(archived(DraftFilter::None)).await, vec![5]);
    assert_eq!(list(archived(DraftFilter::All)).await, vec![5, 6]);
    assert_eq!(list(archived(DraftFilter::Only)).await, vec![6]);
    assert_eq!(list(archived(DraftFilter::OwnedBy(bob.id))).await, vec![5]);

    let page = |after: Option<u64>, limit: usize| RunbookQuery {
        drafts: DraftFilter::All,
        after_number: after,
        limit,
        ..RunbookQuery::default()
    };
    assert_eq!(list(page(None, 2)).await, vec![1, 2]);
    assert_eq!(list(page(Some(2), 2)).await, vec![3, 4]);
    assert_eq!(list(page(Some(4), 2)).await, vec![7]);
    assert_eq!(list(page(Some(7), 2)).await, Vec::<u64>::new());
    assert_eq!(
        list(page(Some(1), 0)).await,
        vec![2, 3, 4, 7],
        "limit 0 is the default page"
    );
    let full = store
        .list_runbooks(ctx.id(), &q(DraftFilter::All))
        .await
        .unwrap();
    assert_eq!(
        full[0],
        store.runbook(ctx.id(), full[0].id).await.unwrap(),
        "listed rows are whole rows"
    );
}

/// `search_runbooks`: case-insensitive, every word must appear in the title, the description or
/// a step's title or description; ranked by title hits then key; archived runbooks never appear;
/// drafts follow the filter; `limit` caps the result.
pub async fn search_runbooks(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let (alice, bob) = (&ctx.alice, &ctx.bob);
    let gateway_steps: &[(&str, &str)] = &[
        ("Drain traffic", "Move the load balancer away"),
        ("Restart", "systemctl restart gateway"),
        ("Check", "curl the health endpoint"),
    ];
    let failover_steps: &[(&str, &str)] = &[
        ("Promote replica", "pg_ctl promote"),
        ("Repoint", "update DNS"),
        ("Verify", "run smoke tests"),
    ];
    let rotation_steps: &[(&str, &str)] = &[
        ("Generate key", "openssl rand"),
        ("Deploy key", "update the gateway config"),
        ("Revoke old key", "delete it"),
    ];
    let rb1 = add_runbook(
        store,
        &ctx,
        body(
            "Restart the API gateway",
            "When the gateway hangs",
            "",
            gateway_steps,
        ),
        alice,
        true,
    )
    .await;
    let rb2 = add_runbook(
        store,
        &ctx,
        body(
            "Database failover",
            "Promote the replica; the API reconnects",
            "",
            failover_steps,
        ),
        alice,
        true,
    )
    .await;
    let rb3 = add_runbook(
        store,
        &ctx,
        body("API key rotation", "Rotate keys", "", rotation_steps),
        alice,
        true,
    )
    .await;
    let rb4 = add_runbook(
        store,
        &ctx,
        body("API gateway draft", "", "", STEPS),
        bob,
        false,
    )
    .await;
    let rb5 = add_runbook(
        store,
        &ctx,
        body("API gateway legacy", "", "", STEPS),
        alice,
        true,
    )
    .await;
    update_runbook(store, &ctx, &rb5, |r| r.archived_at = Some(now())).await;

    let ws = ctx.id();
    let search = move |words: &'static str, drafts: DraftFilter, limit: usize| async move {
        keys(
            &store
                .search_runbooks(ws, words, drafts, limit)
                .await
                .unwrap(),
        )
    };
    let (k1, k2, k3, k4) = (
        rb1.key.number,
        rb2.key.number,
        rb3.key.number,
        rb4.key.number,
    );
    assert_eq!(
        search("api", DraftFilter::None, 0).await,
        vec![k1, k3, k2],
        "title hits first, then key"
    );
    assert_eq!(
        search("gateway api", DraftFilter::None, 0).await,
        vec![k1, k3],
        "every word must appear"
    );
    assert_eq!(
        search("GATEWAY", DraftFilter::None, 0).await,
        vec![k1, k3],
        "case-insensitive"
    );
    assert_eq!(
        search("Replica", DraftFilter::None, 0).await,
        vec![k2],
        "description and step text"
    );
    assert_eq!(
        search("systemctl", DraftFilter::None, 0).await,
        vec![k1],
        "step description"
    );
    assert_eq!(
        search("drain", DraftFilter::None, 0).await,
        vec![k1],
        "step title"
    );
    assert_eq!(
        search("api nosuchword", DraftFilter::None, 0).await,
        Vec::<u64>::new()
    );
    assert_eq!(
        search("gateway", DraftFilter::All, 0).await,
        vec![k1, k4, k3]
    );
    assert_eq!(
        search("gateway", DraftFilter::OwnedBy(bob.id), 0).await,
        vec![k1, k4, k3]
    );
    assert_eq!(
        search("gateway", DraftFilter::OwnedBy(alice.id), 0).await,
        vec![k1, k3]
    );
    assert_eq!(search("gateway", DraftFilter::Only, 0).await, vec![k4]);
    assert_eq!(
        search("legacy", DraftFilter::All, 0).await,
        Vec::<u64>::new(),
        "archived never appear"
    );
    assert_eq!(search("api", DraftFilter::None, 1).await, vec![k1]);
    assert_eq!(search("api", DraftFilter::All, 2).await, vec![k1, k3]);
    let found = store
        .search_runbooks(ctx.id(), "failover", DraftFilter::None, 0)
        .await
        .unwrap();
    assert_eq!(found, vec![rb2], "results are whole rows");
}

// ---------------------------------------------------------------------------------------------
// Executions, changes, incidents
// ---------------------------------------------------------------------------------------------

/// An execution and its events read back exactly; a step commits the new execution with the next
/// event; a stale revision is a `Conflict` and changes nothing; a duplicate (execution, seq) is
/// `AlreadyExists`; missing rows are `NotFound`.
pub async fn execution_round_trip(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let rb = add_runbook(
        store,
        &ctx,
        simple_body("Restart the API"),
        &ctx.alice,
        true,
    )
    .await;
    let key = store
        .allocate_key(ctx.id(), KeyKind::Execution)
        .await
        .unwrap();
    let started = machine::start(
        &rb,
        StartParams {
            key,
            operator: ctx.alice.id,
            change: None,
            incident: None,
            rehearsal: false,
            channel: Some(ChannelRef {
                platform: "slack".into(),
                channel: "C1".into(),
            }),
        },
        now(),
    );
    commit_ok(
        store,
        ctx.id(),
        vec![
            Write::Execution {
                execution: started.execution.clone(),
                expected_rev: None,
            },
            Write::StepEvent(started.event.clone()),
        ],
        draft_by(&ctx.alice, "execution.started", &key.to_string()),
    )
    .await;
    let ex = started.execution;
    assert_eq!(store.execution(ctx.id(), ex.id).await.unwrap(), ex);
    assert_eq!(store.execution_by_key(ctx.id(), key).await.unwrap(), ex);
    assert_eq!(
        store.step_events(ctx.id(), ex.id).await.unwrap(),
        vec![started.event.clone()]
    );

    let t = machine::apply(
        &ex,
        &Command::Done {
            step: 1,
            note: Some("all good".into()),
        },
        &ctx.actor(&ctx.bob),
        &ctx.ws.policy,
        now(),
    )
    .unwrap();
    commit_ok(
        store,
        ctx.id(),
        vec![
            Write::Execution {
                execution: t.execution.clone(),
                expected_rev: Some(1),
            },
            Write::StepEvent(t.event.clone()),
        ],
        draft_by(&ctx.bob, "execution.step_done", &key.to_string()),
    )
    .await;
    let ex2 = t.execution;
    assert_eq!(ex2.rev, 2);
    assert_eq!(store.execution(ctx.id(), ex.id).await.unwrap(), ex2);
    assert_eq!(
        store.step_events(ctx.id(), ex.id).await.unwrap(),
        vec![started.event.clone(), t.event.clone()]
    );

    // A second command computed from the stale row.
    let lost = machine::apply(
        &ex,
        &Command::Skip {
            step: 1,
            reason: "not needed".into(),
        },
        &ctx.actor(&ctx.alice),
        &ctx.ws.policy,
        now(),
    )
    .unwrap();
    assert_conflict(
        try_commit(
            store,
            ctx.id(),
            vec![
                Write::Execution {
                    execution: lost.execution,
                    expected_rev: Some(1),
                },
                Write::StepEvent(lost.event.clone()),
            ],
        )
        .await,
        "execution update with a stale revision",
    );
    assert_eq!(store.execution(ctx.id(), ex.id).await.unwrap(), ex2);
    assert_already_exists(
        try_commit(store, ctx.id(), vec![Write::StepEvent(lost.event)]).await,
        "a second event 2 of the same execution",
    );
    assert_eq!(
        store.step_events(ctx.id(), ex.id).await.unwrap(),
        vec![started.event, t.event]
    );

    // Walk to the end: the sealed execution reads back exactly.
    let ex3 = step(store, &ctx, &ex2, done(2), &ctx.bob).await;
    let ex4 = step(store, &ctx, &ex3, done(3), &ctx.bob).await;
    assert_eq!(ex4.status, ExecutionStatus::Completed);
    assert_eq!(store.execution(ctx.id(), ex.id).await.unwrap(), ex4);
    let events = store.step_events(ctx.id(), ex.id).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );

    let dup_key = machine::start(
        &rb,
        StartParams {
            key,
            operator: ctx.bob.id,
            change: None,
            incident: None,
            rehearsal: true,
            channel: None,
        },
        now(),
    );
    assert_already_exists(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Execution {
                execution: dup_key.execution.clone(),
                expected_rev: None,
            }],
        )
        .await,
        "a second execution with the same key",
    );
    let mut ghost = dup_key.execution.clone();
    ghost.rev = 2;
    assert_not_found(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Execution {
                execution: ghost,
                expected_rev: Some(1),
            }],
        )
        .await,
        "update of an execution that does not exist",
    );
    assert!(
        try_commit(store, ctx.id(), vec![Write::StepEvent(dup_key.event)])
            .await
            .is_err(),
        "an event of an execution that does not exist is refused"
    );
    assert_not_found(
        store.execution(ctx.id(), dup_key.execution.id).await,
        "refused execution",
    );
    assert_not_found(
        store.step_events(ctx.id(), ExecutionId::new()).await,
        "events of an unknown execution",
    );
    assert_eq!(store.execution_by_key(ctx.id(), key).await.unwrap(), ex4);
}

/// [`Store::action_reads`] answers what the four single reads answer: the rows when they are
/// there, `NotFound` for each part that is not (a non-member, an unknown user, an execution of
/// another workspace or an unknown key), whatever the other parts are.
pub async fn action_reads_match_single_reads(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let other = setup(store, "other").await;
    let rb = add_runbook(
        store,
        &ctx,
        simple_body("Restart the API"),
        &ctx.alice,
        true,
    )
    .await;
    let started = start_execution(store, &ctx, &rb, &ctx.alice, None, None).await;
    let key = started.key;

    let all = store.action_reads(ctx.id(), ctx.bob.id, key).await;
    assert_eq!(
        all.workspace.unwrap(),
        store.workspace(ctx.id()).await.unwrap()
    );
    assert_eq!(all.user.unwrap(), ctx.bob);
    assert_eq!(all.membership.unwrap(), ctx.bob_m);
    assert_eq!(all.execution.unwrap(), started);

    // A user of another workspace: the user is there, the membership is not.
    let stranger = store.action_reads(ctx.id(), other.alice.id, key).await;
    assert_eq!(stranger.user.unwrap(), other.alice);
    assert!(matches!(stranger.membership, Err(StoreError::NotFound(_))));
    assert_eq!(stranger.execution.unwrap(), started);

    // The execution seen from the other workspace does not exist; nor does an unknown key.
    let across = store.action_reads(other.id(), other.alice.id, key).await;
    assert_eq!(across.workspace.unwrap(), other.ws);
    assert_eq!(across.membership.unwrap(), other.alice_m);
    assert!(matches!(across.execution, Err(StoreError::NotFound(_))));
    let unknown = Key::new(KeyKind::Execution, key.number + 1);
    let missing = store.action_reads(ctx.id(), ctx.alice.id, unknown).await;
    assert!(matches!(missing.execution, Err(StoreError::NotFound(_))));
    assert_eq!(missing.membership.unwrap(), ctx.alice_m);

    // An unknown user and an unknown workspace.
    let nobody = store
        .action_reads(ctx.id(), crate::ids::UserId::new(), key)
        .await;
    assert!(matches!(nobody.user, Err(StoreError::NotFound(_))));
    assert!(matches!(nobody.membership, Err(StoreError::NotFound(_))));
    let nowhere = store
        .action_reads(WorkspaceId::new(), ctx.alice.id, key)
        .await;
    assert!(matches!(nowhere.workspace, Err(StoreError::NotFound(_))));
    assert!(matches!(nowhere.execution, Err(StoreError::NotFound(_))));
}

/// `list_executions` is newest first (descending key) and honours runbook, version, open_only,
/// change, channel and limit, alone and combined.
pub async fn list_executions_filters(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let rb_a = add_runbook(store, &ctx, simple_body("Runbook A"), &ctx.alice, true).await;
    let rb_b = add_runbook(store, &ctx, simple_body("Runbook B"), &ctx.alice, true).await;
    let cr = add_change(store, &ctx, "Upgrade").await;
    let c1 = ChannelRef {
        platform: "slack".into(),
        channel: "C1".into(),
    };
    let c2 = ChannelRef {
        platform: "slack".into(),
        channel: "C2".into(),
    };
    let ex1 = start_execution(store, &ctx, &rb_a, &ctx.alice, None, Some(c1.clone())).await;
    let rb_a2 = edit_runbook(
        store,
        &ctx,
        &rb_a,
        simple_body("Runbook A, second edition"),
        VersionSource::Edit,
    )
    .await;
    let ex2 = start_execution(store, &ctx, &rb_a2, &ctx.bob, Some(&cr), Some(c2.clone())).await;
    let ex3 = start_execution(store, &ctx, &rb_b, &ctx.bob, None, Some(c1.clone())).await;
    let ex4 = start_execution(store, &ctx, &rb_a2, &ctx.alice, None, None).await;
    step(
        store,
        &ctx,
        &ex4,
        Command::Abort {
            reason: "wrong window".into(),
        },
        &ctx.alice,
    )
    .await;
    let (n1, n2, n3, n4) = (
        ex1.key.number,
        ex2.key.number,
        ex3.key.number,
        ex4.key.number,
    );
    assert!(n1 < n2 && n2 < n3 && n3 < n4);

    let ws = ctx.id();
    let list = move |q: ExecutionQuery| async move {
        exec_keys(&store.list_executions(ws, &q).await.unwrap())
    };
    assert_eq!(
        list(ExecutionQuery::default()).await,
        vec![n4, n3, n2, n1],
        "newest first"
    );
    let by_runbook = ExecutionQuery {
        runbook: Some(rb_a.id),
        ..ExecutionQuery::default()
    };
    assert_eq!(list(by_runbook.clone()).await, vec![n4, n2, n1]);
    assert_eq!(
        list(ExecutionQuery {
            runbook_version: Some(2),
            ..by_runbook.clone()
        })
        .await,
        vec![n4, n2]
    );
    assert_eq!(
        list(ExecutionQuery {
            runbook_version: Some(1),
            ..ExecutionQuery::default()
        })
        .await,
        vec![n3, n1]
    );
    assert_eq!(
        list(ExecutionQuery {
            open_only: true,
            ..ExecutionQuery::default()
        })
        .await,
        vec![n3, n2, n1]
    );
    assert_eq!(
        list(ExecutionQuery {
            open_only: true,
            ..by_runbook.clone()
        })
        .await,
        vec![n2, n1]
    );
    assert_eq!(
        list(ExecutionQuery {
            change: Some(cr.id),
            ..ExecutionQuery::default()
        })
        .await,
        vec![n2]
    );
    assert_eq!(
        list(ExecutionQuery {
            change: Some(ChangeId::new()),
            ..ExecutionQuery::default()
        })
        .await,
        Vec::<u64>::new()
    );
    assert_eq!(
        list(ExecutionQuery {
            channel: Some(c1.clone()),
            ..ExecutionQuery::default()
        })
        .await,
        vec![n3, n1]
    );
    assert_eq!(
        list(ExecutionQuery {
            channel: Some(c1.clone()),
            runbook: Some(rb_b.id),
            ..ExecutionQuery::default()
        })
        .await,
        vec![n3]
    );
    assert_eq!(
        list(ExecutionQuery {
            channel: Some(ChannelRef {
                platform: "console".into(),
                channel: "C1".into(),
            }),
            ..ExecutionQuery::default()
        })
        .await,
        Vec::<u64>::new(),
        "a channel is platform and id"
    );
    assert_eq!(
        list(ExecutionQuery {
            limit: 2,
            ..ExecutionQuery::default()
        })
        .await,
        vec![n4, n3]
    );
    let rows = store.list_executions(ctx.id(), &by_runbook).await.unwrap();
    assert_eq!(rows[2], ex1, "listed rows are whole rows");
    assert_eq!(rows[0].status, ExecutionStatus::Aborted);
}

/// A change reads back by id and key and lists by key; updates need the right revision; a taken
/// key is `AlreadyExists`; missing rows are `NotFound`.
pub async fn change_round_trip(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let rb = add_runbook(
        store,
        &ctx,
        simple_body("Upgrade Postgres"),
        &ctx.alice,
        true,
    )
    .await;
    let cr1 = add_change(store, &ctx, "Upgrade Postgres to 17").await;
    let cr2 = add_change(store, &ctx, "Rotate certificates").await;
    assert_eq!(store.change(ctx.id(), cr1.id).await.unwrap(), cr1);
    assert_eq!(store.change_by_key(ctx.id(), cr2.key).await.unwrap(), cr2);
    assert_eq!(
        store.list_changes(ctx.id()).await.unwrap(),
        vec![cr1.clone(), cr2.clone()]
    );

    let mut imported = change::import_runbook(&cr1, &rb).unwrap();
    imported.status = ChangeStatus::Approved;
    imported.rev = 2;
    imported.updated_at = now();
    commit_ok(
        store,
        ctx.id(),
        vec![Write::Change {
            change: imported.clone(),
            expected_rev: Some(1),
        }],
        draft_by(&ctx.alice, "change.approved", &cr1.key.to_string()),
    )
    .await;
    assert_eq!(store.change(ctx.id(), cr1.id).await.unwrap(), imported);

    let mut stale = cr1.clone();
    stale.status = ChangeStatus::Cancelled;
    stale.rev = 2;
    assert_conflict(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Change {
                change: stale,
                expected_rev: Some(1),
            }],
        )
        .await,
        "change update with a stale revision",
    );
    assert_eq!(
        store.change_by_key(ctx.id(), cr1.key).await.unwrap(),
        imported
    );

    let dup = new_change(&ctx, cr2.key, "Same key");
    assert_already_exists(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Change {
                change: dup.clone(),
                expected_rev: None,
            }],
        )
        .await,
        "a second change with the same key",
    );
    let mut ghost = dup.clone();
    ghost.key = Key::new(KeyKind::Change, 99);
    ghost.rev = 2;
    assert_not_found(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Change {
                change: ghost,
                expected_rev: Some(1),
            }],
        )
        .await,
        "update of a change that does not exist",
    );
    assert_not_found(store.change(ctx.id(), dup.id).await, "refused change");
    assert_not_found(
        store
            .change_by_key(ctx.id(), Key::new(KeyKind::Change, 99))
            .await,
        "unknown change key",
    );
    assert_eq!(
        store.list_changes(ctx.id()).await.unwrap(),
        vec![imported, cr2]
    );
}

/// An incident reads back by key and lists by key; resolving needs the right revision; a taken key
/// is `AlreadyExists`; missing rows are `NotFound`.
pub async fn incident_round_trip(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let i1 = add_incident(store, &ctx, "API down").await;
    let i2 = add_incident(store, &ctx, "Disk full").await;
    assert_eq!(store.incident_by_key(ctx.id(), i1.key).await.unwrap(), i1);
    assert_eq!(
        store.list_incidents(ctx.id()).await.unwrap(),
        vec![i1.clone(), i2.clone()]
    );

    let mut resolved = i1.clone();
    resolved.status = IncidentStatus::Resolved;
    resolved.resolved_at = Some(now());
    resolved.rev = 2;
    commit_ok(
        store,
        ctx.id(),
        vec![Write::Incident {
            incident: resolved.clone(),
            expected_rev: Some(1),
        }],
        draft_by(&ctx.bob, "incident.resolved", &i1.key.to_string()),
    )
    .await;
    assert_eq!(
        store.incident_by_key(ctx.id(), i1.key).await.unwrap(),
        resolved
    );

    let mut stale = i1.clone();
    stale.title = Title::parse("Lost update").unwrap();
    stale.rev = 2;
    assert_conflict(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Incident {
                incident: stale,
                expected_rev: Some(1),
            }],
        )
        .await,
        "incident update with a stale revision",
    );
    assert_eq!(
        store.incident_by_key(ctx.id(), i1.key).await.unwrap(),
        resolved
    );

    let dup = new_incident(&ctx, i2.key, "Same key");
    assert_already_exists(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Incident {
                incident: dup.clone(),
                expected_rev: None,
            }],
        )
        .await,
        "a second incident with the same key",
    );
    let mut ghost = dup;
    ghost.key = Key::new(KeyKind::Incident, 99);
    ghost.rev = 2;
    assert_not_found(
        try_commit(
            store,
            ctx.id(),
            vec![Write::Incident {
                incident: ghost,
                expected_rev: Some(1),
            }],
        )
        .await,
        "update of an incident that does not exist",
    );
    assert_not_found(
        store
            .incident_by_key(ctx.id(), Key::new(KeyKind::Incident, 99))
            .await,
        "unknown incident key",
    );
    assert_eq!(
        store.list_incidents(ctx.id()).await.unwrap(),
        vec![resolved, i2]
    );
}

/// A `limit` of 0 means 100 runbooks (list and search) and 100 executions, newest first.
pub async fn default_page_sizes(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let mut runbooks = Vec::new();
    let mut writes = Vec::new();
    for i in 0..105 {
        let key = store
            .allocate_key(ctx.id(), KeyKind::Runbook)
            .await
            .unwrap();
        let rb = new_runbook(
            &ctx,
            key,
            simple_body(&format!("Restart service {i}")),
            &ctx.alice,
            true,
        );
        writes.push(Write::Runbook {
            runbook: rb.clone(),
            expected_rev: None,
        });
        runbooks.push(rb);
    }
    commit_ok(store, ctx.id(), writes, draft("runbook.imported", "bulk")).await;
    let listed = store
        .list_runbooks(ctx.id(), &RunbookQuery::default())
        .await
        .unwrap();
    assert_eq!(keys(&listed), (1..=100).collect::<Vec<u64>>());
    let found = store
        .search_runbooks(ctx.id(), "restart", DraftFilter::None, 0)
        .await
        .unwrap();
    assert_eq!(found.len(), 100);
    assert_eq!(
        store
            .list_runbooks(
                ctx.id(),
                &RunbookQuery {
                    limit: 1000,
                    ..RunbookQuery::default()
                }
            )
            .await
            .unwrap()
            .len(),
        105
    );

    let mut writes = Vec::new();
    for rb in runbooks.iter() {
        let key = store
            .allocate_key(ctx.id(), KeyKind::Execution)
            .await
            .unwrap();
        let t = machine::start(
            rb,
            StartParams {
                key,
                operator: ctx.bob.id,
                change: None,
                incident: None,
                rehearsal: false,
                channel: None,
            },
            now(),
        );
        writes.push(Write::Execution {
            execution: t.execution,
            expected_rev: None,
        });
        writes.push(Write::StepEvent(t.event));
    }
    commit_ok(store, ctx.id(), writes, draft("execution.bulk", "bulk")).await;
    let listed = store
        .list_executions(ctx.id(), &ExecutionQuery::default())
        .await
        .unwrap();
    assert_eq!(exec_keys(&listed), (6..=105).rev().collect::<Vec<u64>>());
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/// Keys start at 1 and rise by one per kind and per workspace, independently; a key whose
/// creation failed is not handed out again; an unknown workspace is refused.
pub async fn allocate_key_monotonic(store: &dyn Store) {
    let a = setup(store, "ops").await;
    let b = setup(store, "dev").await;
    let next = move |ws: WorkspaceId, kind: KeyKind| async move {
        store.allocate_key(ws, kind).await.unwrap()
    };
    assert_eq!(
        next(a.id(), KeyKind::Runbook).await,
        Key::new(KeyKind::Runbook, 1)
    );
    assert_eq!(
        next(a.id(), KeyKind::Runbook).await,
        Key::new(KeyKind::Runbook, 2)
    );
    assert_eq!(
        next(a.id(), KeyKind::Change).await,
        Key::new(KeyKind::Change, 1)
    );
    assert_eq!(
        next(a.id(), KeyKind::Runbook).await,
        Key::new(KeyKind::Runbook, 3)
    );
    assert_eq!(
        next(a.id(), KeyKind::Incident).await,
        Key::new(KeyKind::Incident, 1)
    );
    assert_eq!(
        next(a.id(), KeyKind::Execution).await,
        Key::new(KeyKind::Execution, 1)
    );
    assert_eq!(
        next(b.id(), KeyKind::Runbook).await,
        Key::new(KeyKind::Runbook, 1)
    );
    assert_eq!(
        next(b.id(), KeyKind::Execution).await,
        Key::new(KeyKind::Execution, 1)
    );
    assert_eq!(
        next(a.id(), KeyKind::Incident).await,
        Key::new(KeyKind::Incident, 2)
    );

    // A key spent on a failed insert stays spent.
    let key = next(a.id(), KeyKind::Runbook).await;
    assert_eq!(key.number, 4);
    let mut rb = new_runbook(&a, key, simple_body("Never stored"), &a.alice, true);
    rb.rev = 7;
    assert!(
        try_commit(
            store,
            a.id(),
            vec![Write::Runbook {
                runbook: rb,
                expected_rev: Some(6),
            }],
        )
        .await
        .is_err()
    );
    assert_eq!(
        next(a.id(), KeyKind::Runbook).await,
        Key::new(KeyKind::Runbook, 5)
    );
    assert!(
        store
            .allocate_key(WorkspaceId::new(), KeyKind::Runbook)
            .await
            .is_err(),
        "keys of a workspace that does not exist are refused"
    );
}

/// 50 concurrent callers get 50 distinct keys, exactly 1 to 50, and the next caller gets 51.
pub async fn allocate_key_concurrent(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let ws = ctx.id();
    let mut got: Vec<u64> = parallel(50, move |_| async move {
        store
            .allocate_key(ws, KeyKind::Execution)
            .await
            .unwrap()
            .number
    });
    got.sort_unstable();
    assert_eq!(
        got,
        (1..=50).collect::<Vec<u64>>(),
        "50 concurrent keys are 1..=50, none twice"
    );
    assert_eq!(
        store
            .allocate_key(ws, KeyKind::Execution)
            .await
            .unwrap()
            .number,
        51
    );
    assert_eq!(
        store
            .allocate_key(ws, KeyKind::Runbook)
            .await
            .unwrap()
            .number,
        1
    );
}

// ---------------------------------------------------------------------------------------------
// Commits
// ---------------------------------------------------------------------------------------------

/// `commit_all`: several commits apply in order with chained audit entries, or, when any one
/// is refused, none of them applies and no entry is appended; an empty list is a no-op.
pub async fn commit_all_is_all_or_nothing(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let rb = add_runbook(
        store,
        &ctx,
        simple_body("Restart the API"),
        &ctx.alice,
        true,
    )
    .await;
    let before = audit_len(store, ctx.id()).await;
    assert!(store.commit_all(Vec::new()).await.unwrap().is_empty());
    assert_eq!(audit_len(store, ctx.id()).await, before);

    let new_rb = |n: u64, title: &str| {
        new_runbook(
            &ctx,
            Key::new(KeyKind::Runbook, n),
            simple_body(title),
            &ctx.alice,
            false,
        )
    };
    let create = |r: &Runbook| Commit {
        workspace: ctx.id(),
        writes: vec![
            Write::Runbook {
                runbook: r.clone(),
                expected_rev: None,
            },
            Write::RunbookVersion(first_version(r)),
        ],
        audit: runbook_draft(&ctx.alice, "runbook.created", r.key),
    };
    let k2 = store
        .allocate_key(ctx.id(), KeyKind::Runbook)
        .await
        .unwrap();
    let k3 = store
        .allocate_key(ctx.id(), KeyKind::Runbook)
        .await
        .unwrap();
    let (rb2, rb3) = (new_rb(k2.number, "Second"), new_rb(k3.number, "Third"));

    // 1. The third commit is stale: the first two are taken back too.
    let mut stale = rb.clone();
    stale.rev = 8;
    let refused = store
        .commit_all(vec![
            create(&rb2),
            create(&rb3),
            Commit {
                workspace: ctx.id(),
                writes: vec![Write::Runbook {
                    runbook: stale,
                    expected_rev: Some(7),
                }],
                audit: draft("test.write", "test"),
            },
        ])
        .await;
    assert_conflict(refused.map(|_| ()), "commit_all whose last commit is stale");
    assert_not_found(
        store.runbook(ctx.id(), rb2.id).await,
        "the first commit of a refused commit_all",
    );
    assert_not_found(
        store.runbook_by_key(ctx.id(), k3).await,
        "the second commit of a refused commit_all",
    );
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap(), rb);
    assert_eq!(
        audit_len(store, ctx.id()).await,
        before,
        "a refused commit_all appends no audit entry"
    );

    // 2. All accepted: every write applied, one entry per commit, chained in order, and the
    //    chain goes on after them.
    let entries = store
        .commit_all(vec![create(&rb2), create(&rb3)])
        .await
        .unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].seq, entries[0].seq + 1);
    assert_eq!(entries[1].prev_hash, entries[0].hash);
    assert_eq!(entries[0].target, k2.to_string());
    assert_eq!(entries[1].target, k3.to_string());
    assert_eq!(store.runbook(ctx.id(), rb2.id).await.unwrap(), rb2);
    assert_eq!(store.runbook_by_key(ctx.id(), k3).await.unwrap(), rb3);
    assert_eq!(audit_len(store, ctx.id()).await, before + 2);
    let next = try_commit(store, ctx.id(), Vec::new()).await.unwrap();
    assert_eq!(next.seq, entries[1].seq + 1);
    assert_eq!(next.prev_hash, entries[1].hash);
}

/// A commit whose later write is refused applies none of its writes (rows, unique values) and
/// appends no audit entry; the chain continues without a gap.
pub async fn commit_is_atomic(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let rb = add_runbook(
        store,
        &ctx,
        simple_body("Restart the API"),
        &ctx.alice,
        true,
    )
    .await;
    let entries_before = audit_len(store, ctx.id()).await;

    // 1. Insert, then a stale update: Conflict, and the insert is gone.
    let key2 = store
        .allocate_key(ctx.id(), KeyKind::Runbook)
        .await
        .unwrap();
    let rb2 = new_runbook(&ctx, key2, simple_body("Second"), &ctx.alice, true);
    let mut stale = rb.clone();
    stale.rev = 8;
    assert_conflict(
        try_commit(
            store,
            ctx.id(),
            vec![
                Write::Runbook {
                    runbook: rb2.clone(),
                    expected_rev: None,
                },
                Write::RunbookVersion(first_version(&rb2)),
                Write::Runbook {
                    runbook: stale,
                    expected_rev: Some(7),
                },
            ],
        )
        .await,
        "a commit whose last write is stale",
    );
    assert_not_found(
        store.runbook(ctx.id(), rb2.id).await,
        "insert of a refused commit (by id)",
    );
    assert_not_found(
        store.runbook_by_key(ctx.id(), key2).await,
        "insert of a refused commit (by key)",
    );
    assert_not_found(
        store.runbook_versions(ctx.id(), rb2.id).await,
        "versions of a refused commit",
    );
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap(), rb);
    assert_eq!(
        audit_len(store, ctx.id()).await,
        entries_before,
        "a refused commit appends no audit entry"
    );

    // 2. A new user, then a duplicate runbook key: the user's handle and identity stay free.
    let mut dora = new_user("dora");
    dora.chat_identities = vec![chat("slack", "T1", "UDORA")];
    let dup = new_runbook(&ctx, rb.key, simple_body("Duplicate"), &ctx.alice, true);
    assert_already_exists(
        try_commit(
            store,
            ctx.id(),
            vec![
                Write::User {
                    user: dora.clone(),
                    expected_rev: None,
                },
                Write::Runbook {
                    runbook: dup,
                    expected_rev: None,
                },
            ],
        )
        .await,
        "a commit whose second write repeats a key",
    );
    assert_not_found(store.user(dora.id).await, "user of a refused commit");
    assert_not_found(
        store.user_by_handle("dora").await,
        "handle of a refused commit",
    );
    assert_not_found(
        store.user_by_chat(&chat("slack", "T1", "UDORA")).await,
        "identity of a refused commit",
    );

    // 3. A good update, then a duplicate version: the update is not applied.
    let mut next = rb.clone();
    next.body = simple_body("Edited");
    next.version = 2;
    next.rev = 2;
    assert_already_exists(
        try_commit(
            store,
            ctx.id(),
            vec![
                Write::Runbook {
                    runbook: next,
                    expected_rev: Some(1),
                },
                Write::RunbookVersion(first_version(&rb)),
            ],
        )
        .await,
        "a commit whose second write repeats a version",
    );
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap(), rb);

    // 4. Execution and event, then an update of a change that does not exist.
    let ex_key = store
        .allocate_key(ctx.id(), KeyKind::Execution)
        .await
        .unwrap();
    let t = machine::start(
        &rb,
        StartParams {
            key: ex_key,
            operator: ctx.bob.id,
            change: None,
            incident: None,
            rehearsal: false,
            channel: None,
        },
        now(),
    );
    let mut ghost = new_change(&ctx, Key::new(KeyKind::Change, 40), "Ghost");
    ghost.rev = 2;
    assert_not_found(
        try_commit(
            store,
            ctx.id(),
            vec![
                Write::Execution {
                    execution: t.execution.clone(),
                    expected_rev: None,
                },
                Write::StepEvent(t.event),
                Write::Change {
                    change: ghost,
                    expected_rev: Some(1),
                },
            ],
        )
        .await,
        "a commit whose last write updates a missing change",
    );
    assert_not_found(
        store.execution(ctx.id(), t.execution.id).await,
        "execution of a refused commit",
    );
    assert_not_found(
        store.execution_by_key(ctx.id(), ex_key).await,
        "execution key of a refused commit",
    );
    assert_eq!(
        store
            .list_executions(ctx.id(), &ExecutionQuery::default())
            .await
            .unwrap(),
        Vec::new()
    );
    assert_eq!(
        audit_len(store, ctx.id()).await,
        entries_before,
        "refused commits append no audit entry"
    );

    // The values a refused commit held are free, and the chain continues at the next seq.
    let entry = commit_ok(
        store,
        ctx.id(),
        vec![
            Write::User {
                user: dora.clone(),
                expected_rev: None,
            },
            Write::Runbook {
                runbook: rb2.clone(),
                expected_rev: None,
            },
        ],
        draft("retry", "dora"),
    )
    .await;
    assert_eq!(entry.seq, entries_before as u64 + 1);
    assert_eq!(
        store
            .user_by_chat(&chat("slack", "T1", "UDORA"))
            .await
            .unwrap(),
        dora
    );
    assert_eq!(store.runbook_by_key(ctx.id(), key2).await.unwrap(), rb2);
    let all = audit_all(store, ctx.id()).await;
    assert_eq!(seqs(&all), (1..=all.len() as u64).collect::<Vec<_>>());
    assert_eq!(audit::verify(&all).unwrap(), all.len() as u64);
}

/// The writes of a commit apply in order, each seeing the ones before it: insert then update the
/// same row, and two users swapping handles through a temporary one.
pub async fn commit_applies_writes_in_order(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let key = store
        .allocate_key(ctx.id(), KeyKind::Runbook)
        .await
        .unwrap();
    let rb = new_runbook(&ctx, key, simple_body("Draft"), &ctx.alice, false);
    let mut published = rb.clone();
    published.is_published = true;
    published.rev = 2;
    commit_ok(
        store,
        ctx.id(),
        vec![
            Write::Runbook {
                runbook: rb.clone(),
                expected_rev: None,
            },
            Write::RunbookVersion(first_version(&rb)),
            Write::Runbook {
                runbook: published.clone(),
                expected_rev: Some(1),
            },
        ],
        runbook_draft(&ctx.alice, "runbook.created", key),
    )
    .await;
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap(), published);

    let (mut x, mut y) = (new_user("xavier"), new_user("yolanda"));
    commit_ok(
        store,
        ctx.id(),
        vec![
            Write::User {
                user: x.clone(),
                expected_rev: None,
            },
            Write::User {
                user: y.clone(),
                expected_rev: None,
            },
        ],
        draft("user.created", "xavier"),
    )
    .await;
    let mut x_tmp = x.clone();
    x_tmp.handle = name("tmp");
    x_tmp.rev = 2;
    y.handle = name("xavier");
    y.rev = 2;
    x.handle = name("yolanda");
    x.rev = 3;
    commit_ok(
        store,
        ctx.id(),
        vec![
            Write::User {
                user: x_tmp,
                expected_rev: Some(1),
            },
            Write::User {
                user: y.clone(),
                expected_rev: Some(1),
            },
            Write::User {
                user: x.clone(),
                expected_rev: Some(2),
            },
        ],
        draft("user.swapped", "xavier"),
    )
    .await;
    assert_eq!(store.user_by_handle("yolanda").await.unwrap(), x);
    assert_eq!(store.user_by_handle("xavier").await.unwrap(), y);
    assert_not_found(store.user_by_handle("tmp").await, "the temporary handle");
}

/// A commit naming a workspace that does not exist is refused and records nothing.
pub async fn commit_to_unknown_workspace_is_refused(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let ghost = WorkspaceId::new();
    assert!(
        try_commit(store, ghost, Vec::new()).await.is_err(),
        "an audit-only commit"
    );
    let mut rb = new_runbook(
        &ctx,
        Key::new(KeyKind::Runbook, 1),
        simple_body("Ghost"),
        &ctx.alice,
        true,
    );
    rb.workspace = ghost;
    assert!(
        try_commit(
            store,
            ghost,
            vec![Write::Runbook {
                runbook: rb.clone(),
                expected_rev: None,
            }],
        )
        .await
        .is_err(),
        "a runbook of a workspace that does not exist"
    );
    assert_not_found(store.runbook(ghost, rb.id).await, "refused runbook");
    assert_eq!(audit_all(store, ghost).await, Vec::new());
    assert_eq!(store.list_workspaces().await.unwrap(), vec![ctx.ws.clone()]);
    assert_eq!(audit_len(store, ctx.id()).await, 1);
}

/// 20 concurrent commits updating the same execution from the same revision: exactly one wins,
/// the others get `Conflict`, and only the winner's event and audit entry are stored.
pub async fn concurrent_updates_one_winner(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let rb = add_runbook(
        store,
        &ctx,
        simple_body("Restart the API"),
        &ctx.alice,
        true,
    )
    .await;
    let ex = start_execution(store, &ctx, &rb, &ctx.alice, None, None).await;
    let entries_before = audit_len(store, ctx.id()).await;
    let (ctx_ref, ex_ref) = (&ctx, &ex);
    let results = parallel(20, move |i| {
        let (ctx, ex) = (ctx_ref, ex_ref);
        async move {
            let t = machine::apply(
                ex,
                &Command::Done {
                    step: 1,
                    note: Some(format!("caller {i}")),
                },
                &ctx.actor(&ctx.bob),
                &ctx.ws.policy,
                now(),
            )
            .unwrap();
            let r = try_commit(
                store,
                ctx.id(),
                vec![
                    Write::Execution {
                        execution: t.execution.clone(),
                        expected_rev: Some(ex.rev),
                    },
                    Write::StepEvent(t.event),
                ],
            )
            .await;
            (t.execution, r)
        }
    });
    let winners: Vec<&Execution> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(e, _)| e)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 20 concurrent updates wins"
    );
    let winner = winners[0].clone();
    for (_, r) in results.into_iter().filter(|(_, r)| r.is_err()) {
        assert_conflict(r, "a losing concurrent update");
    }
    let stored = store.execution(ctx.id(), ex.id).await.unwrap();
    assert_eq!(stored, winner);
    assert_eq!(stored.rev, 2);
    assert_eq!(stored.steps[0].status, StepStatus::Done);
    let events = store.step_events(ctx.id(), ex.id).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].note, winner.steps[0].note);
    assert_eq!(audit_len(store, ctx.id()).await, entries_before + 1);
}

// ---------------------------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------------------------

/// Each workspace has its own chain: seq 1, 2, 3… without gaps, the first chained to the genesis
/// hash, every entry verifying; `commit` returns the entry as stored, holding the draft exactly.
pub async fn audit_chain(store: &dyn Store) {
    let a = setup(store, "ops").await;
    let rb = add_runbook(store, &a, simple_body("Restart the API"), &a.alice, true).await;
    let mut d = runbook_draft(&a.alice, "runbook.edited", rb.key);
    d.details = json!({ "from": 1, "to": 2, "note": "typo — fixed", "steps": [1, 2, 3], "nested": { "ok": true, "none": null } });
    d.links = AuditLinks {
        runbook: Some(rb.key),
        runbook_version: Some(2),
        change: Some(Key::new(KeyKind::Change, 3)),
        incident: Some(Key::new(KeyKind::Incident, 4)),
        execution: Some(Key::new(KeyKind::Execution, 5)),
    };
    let returned = commit_ok(store, a.id(), Vec::new(), d.clone()).await;
    assert_eq!(returned.seq, 3);
    assert_eq!(returned.workspace, a.id());
    assert_eq!(
        (
            returned.at,
            returned.actor,
            &returned.actor_handle,
            &returned.action,
            &returned.target,
            &returned.details,
            &returned.links
        ),
        (
            d.at,
            d.actor,
            &d.actor_handle,
            &d.action,
            &d.target,
            &d.details,
            &d.links
        )
    );
    for i in 0..5 {
        commit_ok(
            store,
            a.id(),
            Vec::new(),
            draft("test.tick", &format!("tick-{i}")),
        )
        .await;
    }
    let b = setup(store, "dev").await;
    let entry_b = commit_ok(store, b.id(), Vec::new(), draft("test.tick", "dev")).await;
    assert_eq!(entry_b.seq, 2, "each workspace has its own chain");

    let chain = audit_all(store, a.id()).await;
    assert_eq!(seqs(&chain), (1..=8).collect::<Vec<u64>>());
    assert_eq!(chain[0].prev_hash, GENESIS_HASH);
    assert!(chain.iter().all(|e| e.workspace == a.id()));
    assert_eq!(
        chain[2], returned,
        "the entry read back is the entry commit returned"
    );
    assert_eq!(audit::verify(&chain).unwrap(), 8);
    let chain_b = audit_all(store, b.id()).await;
    assert_eq!(seqs(&chain_b), vec![1, 2]);
    assert_eq!(chain_b[1], entry_b);
    assert_eq!(audit::verify(&chain_b).unwrap(), 2);
    // Pages verify when streamed in order.
    let mut verifier = audit::Verifier::new();
    let mut after = 0;
    loop {
        let page = store
            .audit(
                a.id(),
                &AuditQuery {
                    after_seq: after,
                    limit: 3,
                    ..AuditQuery::default()
                },
            )
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            verifier.push(e).unwrap();
        }
    }
    assert_eq!(verifier.count(), 8);
}

/// Audit queries: target matches the entry's target or any linked key; actor; `since` inclusive,
/// `until` exclusive; `after_seq`; `limit`; combined; oldest first.
pub async fn audit_queries(store: &dyn Store) {
    let ctx = setup(store, "ops").await; // seq 1, before `base`
    let base = now() + Duration::minutes(1);
    let at = |m: i64| base + Duration::minutes(m);
    let rb = Key::new(KeyKind::Runbook, 1);
    let ex = Key::new(KeyKind::Execution, 1);
    let cr = Key::new(KeyKind::Change, 1);
    let entry =
        |user: Option<&User>, action: &str, target: &str, minute: i64, links: AuditLinks| {
            let mut d = match user {
                Some(u) => draft_by(u, action, target),
                None => draft(action, target),
            };
            d.at = at(minute);
            d.links = links;
            d
        };
    let drafts = vec![
        entry(
            Some(&ctx.alice),
            "runbook.created",
            &rb.to_string(),
            0,
            AuditLinks {
                runbook: Some(rb),
                ..AuditLinks::default()
            },
        ), // 2
        entry(
            Some(&ctx.bob),
            "execution.started",
            &ex.to_string(),
            1,
            AuditLinks {
                runbook: Some(rb),
                runbook_version: Some(1),
                execution: Some(ex),
                ..AuditLinks::default()
            },
        ), // 3
        entry(
            Some(&ctx.bob),
            "execution.step_done",
            &ex.to_string(),
            2,
            AuditLinks {
                runbook: Some(rb),
                execution: Some(ex),
                change: Some(cr),
                ..AuditLinks::default()
            },
        ), // 4
        entry(
            Some(&ctx.alice),
            "change.created",
            &cr.to_string(),
            3,
            AuditLinks {
                change: Some(cr),
                ..AuditLinks::default()
            },
        ), // 5
        entry(None, "user.created", "carol", 4, AuditLinks::default()), // 6
    ];
    for d in drafts {
        commit_ok(store, ctx.id(), Vec::new(), d).await;
    }
    let ws = ctx.id();
    let q = move |query: AuditQuery| async move { seqs(&store.audit(ws, &query).await.unwrap()) };
    let target = |t: &str| AuditQuery {
        target: Some(t.into()),
        ..AuditQuery::default()
    };
    assert_eq!(q(AuditQuery::default()).await, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(
        q(target("RB-00001")).await,
        vec![2, 3, 4],
        "target or runbook link"
    );
    assert_eq!(q(target("EX-00001")).await, vec![3, 4]);
    assert_eq!(
        q(target("CR-00001")).await,
        vec![4, 5],
        "change link or target"
    );
    assert_eq!(q(target("carol")).await, vec![6]);
    assert_eq!(q(target("ops")).await, vec![1]);
    assert_eq!(q(target("RB-00002")).await, Vec::<u64>::new());
    let actor = |u: &User| AuditQuery {
        actor: Some(u.id),
        ..AuditQuery::default()
    };
    assert_eq!(q(actor(&ctx.alice)).await, vec![2, 5]);
    assert_eq!(q(actor(&ctx.bob)).await, vec![3, 4]);
    assert_eq!(
        q(AuditQuery {
            since: Some(at(1)),
            ..AuditQuery::default()
        })
        .await,
        vec![3, 4, 5, 6],
        "since is inclusive"
    );
    assert_eq!(
        q(AuditQuery {
            until: Some(at(2)),
            ..AuditQuery::default()
        })
        .await,
        vec![1, 2, 3],
        "until is exclusive"
    );
    assert_eq!(
        q(AuditQuery {
            since: Some(at(1)),
            until: Some(at(3)),
            ..AuditQuery::default()
        })
        .await,
        vec![3, 4]
    );
    assert_eq!(
        q(AuditQuery {
            after_seq: 3,
            ..AuditQuery::default()
        })
        .await,
        vec![4, 5, 6]
    );
    assert_eq!(
        q(AuditQuery {
            after_seq: 3,
            limit: 2,
            ..AuditQuery::default()
        })
        .await,
        vec![4, 5]
    );
    assert_eq!(
        q(AuditQuery {
            limit: 1,
            ..AuditQuery::default()
        })
        .await,
        vec![1]
    );
    assert_eq!(
        q(AuditQuery {
            target: Some("RB-00001".into()),
            actor: Some(ctx.bob.id),
            after_seq: 3,
            ..AuditQuery::default()
        })
        .await,
        vec![4]
    );
    assert_eq!(
        q(AuditQuery {
            target: Some("EX-00001".into()),
            limit: 1,
            ..AuditQuery::default()
        })
        .await,
        vec![3],
        "limit applies after the filters"
    );
}

// ---------------------------------------------------------------------------------------------
// Workspace isolation
// ---------------------------------------------------------------------------------------------

/// Every by-id and by-key read made with another workspace's id is `NotFound`, and every list of
/// a workspace holds only its own rows.
pub async fn workspace_isolation_reads(store: &dyn Store) {
    let a = setup(store, "ops").await;
    let b = setup(store, "dev").await;
    let rb = add_runbook(store, &a, simple_body("Restart the API"), &a.alice, true).await;
    let cr = add_change(store, &a, "Upgrade").await;
    let inc = add_incident(store, &a, "API down").await;
    let ex = start_execution(store, &a, &rb, &a.alice, Some(&cr), None).await;

    assert_not_found(
        store.membership(b.id(), a.alice.id).await,
        "membership through another workspace",
    );
    assert_not_found(
        store.runbook(b.id(), rb.id).await,
        "runbook through another workspace",
    );
    assert_not_found(
        store.runbook_by_key(b.id(), rb.key).await,
        "runbook key through another workspace",
    );
    assert_not_found(
        store.runbook_version(b.id(), rb.id, 1).await,
        "version through another workspace",
    );
    assert_not_found(
        store.runbook_versions(b.id(), rb.id).await,
        "versions through another workspace",
    );
    assert_not_found(
        store.execution(b.id(), ex.id).await,
        "execution through another workspace",
    );
    assert_not_found(
        store.execution_by_key(b.id(), ex.key).await,
        "execution key through another workspace",
    );
    assert_not_found(
        store.step_events(b.id(), ex.id).await,
        "events through another workspace",
    );
    assert_not_found(
        store.change(b.id(), cr.id).await,
        "change through another workspace",
    );
    assert_not_found(
        store.change_by_key(b.id(), cr.key).await,
        "change key through another workspace",
    );
    assert_not_found(
        store.incident_by_key(b.id(), inc.key).await,
        "incident key through another workspace",
    );

    let all = RunbookQuery {
        drafts: DraftFilter::All,
        ..RunbookQuery::default()
    };
    assert_eq!(store.list_runbooks(b.id(), &all).await.unwrap(), Vec::new());
    assert_eq!(
        store
            .search_runbooks(b.id(), "restart", DraftFilter::All, 0)
            .await
            .unwrap(),
        Vec::new()
    );
    assert_eq!(
        store
            .list_executions(b.id(), &ExecutionQuery::default())
            .await
            .unwrap(),
        Vec::new()
    );
    assert_eq!(
        store
            .list_executions(
                b.id(),
                &ExecutionQuery {
                    runbook: Some(rb.id),
                    change: Some(cr.id),
                    ..ExecutionQuery::default()
                }
            )
            .await
            .unwrap(),
        Vec::new()
    );
    assert_eq!(store.list_changes(b.id()).await.unwrap(), Vec::new());
    assert_eq!(store.list_incidents(b.id()).await.unwrap(), Vec::new());
    let members: Vec<UserId> = store
        .list_members(b.id())
        .await
        .unwrap()
        .iter()
        .map(|(u, _)| u.id)
        .collect();
    assert_eq!(members, vec![b.alice.id, b.bob.id]);
    let b_audit = audit_all(store, b.id()).await;
    assert_eq!(seqs(&b_audit), vec![1]);
    assert!(b_audit.iter().all(|e| e.workspace == b.id()));
    let by_target = AuditQuery {
        target: Some(rb.key.to_string()),
        ..AuditQuery::default()
    };
    assert_eq!(store.audit(b.id(), &by_target).await.unwrap(), Vec::new());

    // B's own RB-00001 is B's, A's stays A's.
    let rb_b = add_runbook(store, &b, simple_body("Dev runbook"), &b.alice, true).await;
    assert_eq!(rb_b.key, rb.key);
    assert_eq!(store.runbook_by_key(b.id(), rb.key).await.unwrap(), rb_b);
    assert_eq!(store.runbook_by_key(a.id(), rb.key).await.unwrap(), rb);
    assert_not_found(
        store.runbook(a.id(), rb_b.id).await,
        "B's runbook through A",
    );
    assert_eq!(
        store.runbook_versions(a.id(), rb.id).await.unwrap(),
        vec![first_version(&rb)]
    );
    assert_eq!(store.execution(a.id(), ex.id).await.unwrap(), ex);
    assert_eq!(store.list_runbooks(b.id(), &all).await.unwrap(), vec![rb_b]);
}

/// A commit for workspace A refuses any row of workspace B (inserting or updating it, claiming
/// its id, hanging a version or event on it) and changes nothing in either workspace.
pub async fn workspace_isolation_writes(store: &dyn Store) {
    let a = setup(store, "ops").await;
    let b = setup(store, "dev").await;
    let rb_b = add_runbook(store, &b, simple_body("Dev runbook"), &b.alice, true).await;
    let cr_b = add_change(store, &b, "Dev change").await;
    let inc_b = add_incident(store, &b, "Dev incident").await;
    let ex_b = start_execution(store, &b, &rb_b, &b.alice, None, None).await;
    let (audit_a, audit_b) = (
        audit_len(store, a.id()).await,
        audit_len(store, b.id()).await,
    );

    let mut refused: Vec<(&str, Vec<Write>)> = Vec::new();
    let fresh_b = new_runbook(
        &b,
        Key::new(KeyKind::Runbook, 9),
        simple_body("Planted"),
        &b.alice,
        true,
    );
    refused.push((
        "insert of a runbook of B",
        vec![Write::Runbook {
            runbook: fresh_b.clone(),
            expected_rev: None,
        }],
    ));
    let mut rb_b_edit = rb_b.clone();
    rb_b_edit.body = simple_body("Hijacked");
    rb_b_edit.rev = 2;
    refused.push((
        "update of a runbook of B",
        vec![Write::Runbook {
            runbook: rb_b_edit.clone(),
            expected_rev: Some(1),
        }],
    ));
    let mut claimed = rb_b_edit.clone();
    claimed.workspace = a.id();
    refused.push((
        "update of B's runbook id claimed for A",
        vec![Write::Runbook {
            runbook: claimed,
            expected_rev: Some(1),
        }],
    ));
    refused.push((
        "a version of a runbook of B",
        vec![Write::RunbookVersion(RunbookVersion {
            version: 2,
            body: simple_body("Hijacked"),
            ..first_version(&rb_b)
        })],
    ));
    let t = machine::apply(&ex_b, &done(1), &b.actor(&b.bob), &b.ws.policy, now()).unwrap();
    refused.push((
        "an event of an execution of B",
        vec![Write::StepEvent(t.event.clone())],
    ));
    refused.push((
        "update of an execution of B",
        vec![
            Write::Execution {
                execution: t.execution.clone(),
                expected_rev: Some(1),
            },
            Write::StepEvent(t.event.clone()),
        ],
    ));
    let mut ex_planted = t.execution.clone();
    ex_planted.id = ExecutionId::new();
    ex_planted.key = Key::new(KeyKind::Execution, 9);
    ex_planted.rev = 1;
    refused.push((
        "insert of an execution of B",
        vec![Write::Execution {
            execution: ex_planted,
            expected_rev: None,
        }],
    ));
    let mut cr_edit = cr_b.clone();
    cr_edit.status = ChangeStatus::Cancelled;
    cr_edit.rev = 2;
    refused.push((
        "update of a change of B",
        vec![Write::Change {
            change: cr_edit,
            expected_rev: Some(1),
        }],
    ));
    refused.push((
        "insert of a change of B",
        vec![Write::Change {
            change: new_change(&b, Key::new(KeyKind::Change, 9), "Planted"),
            expected_rev: None,
        }],
    ));
    let mut inc_edit = inc_b.clone();
    inc_edit.status = IncidentStatus::Resolved;
    inc_edit.rev = 2;
    refused.push((
        "update of an incident of B",
        vec![Write::Incident {
            incident: inc_edit,
            expected_rev: Some(1),
        }],
    ));
    refused.push((
        "insert of an incident of B",
        vec![Write::Incident {
            incident: new_incident(&b, Key::new(KeyKind::Incident, 9), "Planted"),
            expected_rev: None,
        }],
    ));
    let mut ws_b = b.ws.clone();
    ws_b.policy.approver_must_differ = false;
    ws_b.rev = 2;
    refused.push((
        "update of workspace B",
        vec![Write::Workspace {
            workspace: ws_b,
            expected_rev: Some(1),
        }],
    ));
    let mut bob_m = b.bob_m.clone();
    bob_m.role = WorkspaceRole::Owner;
    bob_m.rev = 2;
    refused.push((
        "update of a membership of B",
        vec![Write::Membership {
            membership: bob_m,
            expected_rev: Some(1),
        }],
    ));
    refused.push((
        "insert of a membership of B",
        vec![Write::Membership {
            membership: new_membership(b.id(), a.alice.id, WorkspaceRole::Owner),
            expected_rev: None,
        }],
    ));
    let a_runbook = new_runbook(
        &a,
        Key::new(KeyKind::Runbook, 1),
        simple_body("Fine on its own"),
        &a.alice,
        true,
    );
    refused.push((
        "a valid write of A followed by a row of B",
        vec![
            Write::Runbook {
                runbook: a_runbook.clone(),
                expected_rev: None,
            },
            Write::Runbook {
                runbook: fresh_b.clone(),
                expected_rev: None,
            },
        ],
    ));

    for (what, writes) in refused {
        assert!(
            try_commit(store, a.id(), writes).await.is_err(),
            "{what} in a commit for A is refused"
        );
    }

    assert_eq!(store.runbook(b.id(), rb_b.id).await.unwrap(), rb_b);
    assert_not_found(
        store.runbook(b.id(), fresh_b.id).await,
        "planted runbook in B",
    );
    assert_not_found(
        store.runbook(a.id(), fresh_b.id).await,
        "planted runbook in A",
    );
    assert_not_found(store.runbook(a.id(), rb_b.id).await, "claimed runbook in A");
    assert_not_found(
        store.runbook(a.id(), a_runbook.id).await,
        "A's write of a refused commit",
    );
    assert_eq!(
        store.runbook_versions(b.id(), rb_b.id).await.unwrap(),
        vec![first_version(&rb_b)]
    );
    assert_eq!(store.execution(b.id(), ex_b.id).await.unwrap(), ex_b);
    assert_eq!(store.step_events(b.id(), ex_b.id).await.unwrap().len(), 1);
    assert_eq!(
        store
            .list_executions(b.id(), &ExecutionQuery::default())
            .await
            .unwrap(),
        vec![ex_b]
    );
    assert_eq!(store.list_changes(b.id()).await.unwrap(), vec![cr_b]);
    assert_eq!(store.list_incidents(b.id()).await.unwrap(), vec![inc_b]);
    assert_eq!(store.workspace(b.id()).await.unwrap(), b.ws);
    assert_eq!(store.membership(b.id(), b.bob.id).await.unwrap(), b.bob_m);
    assert_not_found(
        store.membership(b.id(), a.alice.id).await,
        "planted membership",
    );
    assert_eq!(
        store
            .list_runbooks(a.id(), &RunbookQuery::default())
            .await
            .unwrap(),
        Vec::new()
    );
    assert_eq!(
        audit_len(store, a.id()).await,
        audit_a,
        "no audit entry in A"
    );
    assert_eq!(
        audit_len(store, b.id()).await,
        audit_b,
        "no audit entry in B"
    );
}

/// Reads of rows that were never written are `NotFound`; lists of an empty store are empty.
pub async fn missing_rows_are_not_found(store: &dyn Store) {
    assert_eq!(store.list_workspaces().await.unwrap(), Vec::new());
    let ws = WorkspaceId::new();
    assert_not_found(store.workspace(ws).await, "workspace");
    assert_not_found(store.workspace_by_slug("ops").await, "workspace by slug");
    assert_not_found(
        store.workspace_by_slack_team("T1").await,
        "workspace by Slack team",
    );
    assert_not_found(store.user(UserId::new()).await, "user");
    assert_not_found(store.user_by_handle("alice").await, "user by handle");
    assert_not_found(
        store.user_by_chat(&chat("slack", "T1", "U1")).await,
        "user by chat identity",
    );

    let ctx = setup(store, "ops").await;
    let id = ctx.id();
    let rb_key = Key::new(KeyKind::Runbook, 1);
    assert_not_found(
        store.workspace_by_slack_team("T1").await,
        "workspace without a Slack team",
    );
    assert_not_found(store.membership(id, UserId::new()).await, "membership");
    assert_not_found(store.runbook(id, RunbookId::new()).await, "runbook");
    assert_not_found(store.runbook_by_key(id, rb_key).await, "runbook by key");
    assert_not_found(
        store.runbook_version(id, RunbookId::new(), 1).await,
        "runbook version",
    );
    assert_not_found(
        store.runbook_versions(id, RunbookId::new()).await,
        "runbook versions",
    );
    assert_not_found(store.execution(id, ExecutionId::new()).await, "execution");
    assert_not_found(
        store
            .execution_by_key(id, Key::new(KeyKind::Execution, 1))
            .await,
        "execution by key",
    );
    assert_not_found(
        store.step_events(id, ExecutionId::new()).await,
        "step events",
    );
    assert_not_found(store.change(id, ChangeId::new()).await, "change");
    assert_not_found(
        store.change_by_key(id, Key::new(KeyKind::Change, 1)).await,
        "change by key",
    );
    assert_not_found(
        store
            .incident_by_key(id, Key::new(KeyKind::Incident, 1))
            .await,
        "incident by key",
    );

    let rb = add_runbook(store, &ctx, simple_body("Only one"), &ctx.alice, true).await;
    assert_not_found(
        store
            .runbook_by_key(id, Key::new(KeyKind::Runbook, 2))
            .await,
        "next runbook key",
    );
    assert_not_found(
        store
            .execution_by_key(id, Key::new(KeyKind::Execution, rb.key.number))
            .await,
        "an execution key with a runbook's number",
    );
    assert_eq!(store.runbook_versions(id, rb.id).await.unwrap().len(), 1);
    assert_eq!(
        store
            .list_executions(id, &ExecutionQuery::default())
            .await
            .unwrap(),
        Vec::new()
    );
    assert_eq!(store.list_changes(id).await.unwrap(), Vec::new());
    assert_eq!(store.list_incidents(id).await.unwrap(), Vec::new());
    assert_eq!(
        store
            .search_runbooks(id, "nothing", DraftFilter::All, 0)
            .await
            .unwrap(),
        Vec::new()
    );
    assert_eq!(audit_all(store, ws).await, Vec::new());
}

// ---------------------------------------------------------------------------------------------
// Exact round trips
// ---------------------------------------------------------------------------------------------

/// Every row type reads back equal to what was written: every field, optional fields set and
/// unset, text byte for byte (markdown whitespace, Unicode), vectors in order, timestamps at
/// microsecond precision.
pub async fn rows_round_trip_exactly(store: &dyn Store) {
    let t0 = clock::to_micros(
        Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 59).unwrap() + Duration::microseconds(123_457),
    );
    let t1 = now();

    let mut ws = new_workspace("round-trip");
    ws.created_at = t0;
    ws.slack_team = Some("T0ROUND".into());
    ws.policy.approver_must_differ = false;
    let mut user = new_user("zoe");
    user.display_name = Label::parse_field("display_name", "Zoë Ølberg 🚀").unwrap();
    // Not in sorted order: the order written is the order read.
    user.chat_identities = vec![
        chat("slack", "T9", "U9"),
        chat("console", "", "zoe"),
        chat("slack", "T1", "U1"),
    ];
    let mut membership = new_membership(ws.id, user.id, WorkspaceRole::Admin);
    membership.team_roles = [name("dba"), name("sre"), name("net.ops")]
        .into_iter()
        .collect();
    commit_ok(
        store,
        ws.id,
        vec![
            Write::Workspace {
                workspace: ws.clone(),
                expected_rev: None,
            },
            Write::User {
                user: user.clone(),
                expected_rev: None,
            },
            Write::Membership {
                membership: membership.clone(),
                expected_rev: None,
            },
        ],
        draft("workspace.created", "round-trip"),
    )
    .await;
    assert_eq!(store.workspace(ws.id).await.unwrap(), ws);
    assert_eq!(store.user(user.id).await.unwrap(), user);
    assert_eq!(store.membership(ws.id, user.id).await.unwrap(), membership);
    let ctx = Ctx {
        ws: ws.clone(),
        alice: user.clone(),
        bob: user.clone(),
        alice_m: membership.clone(),
        bob_m: membership,
    };

    let rich = RunbookInput {
        title: "Fail over «primary» DB — ünïcødé 🚀".into(),
        description:
            "  Leading spaces\n\n# Heading\n\n```sh\necho 'hi'   \n```\n\ttab\r\ntrailing   \n\n"
                .into(),
        category: "databases/postgres".into(),
        steps: vec![
            StepInput {
                title: "Check replication lag".into(),
                description: "Run:\n\n    SELECT now() - pg_last_xact_replay_timestamp();\n".into(),
                owner_role: "dba".into(),
                est_minutes: 10_080,
                expected_outcome: "Lag < 1 s".into(),
                verification: "`psql -c 'select 1'`".into(),
                rollback_note: "Nothing to undo".into(),
                requires_approval: true,
                is_destructive: false,
                ..StepInput::default()
            },
            StepInput {
                title: "Promote".into(),
                description: String::new(),
                owner_role: "operator".into(),
                est_minutes: 0,
                requires_approval: false,
                is_destructive: true,
                ..StepInput::default()
            },
            StepInput {
                title: "Announce".into(),
                description: "Post in #ops ✅".into(),
                ..StepInput::default()
            },
        ],
    }
    .validate()
    .unwrap();
    let key = store.allocate_key(ws.id, KeyKind::Runbook).await.unwrap();
    let mut rb = new_runbook(&ctx, key, rich, &user, true);
    rb.created_at = t0;
    rb.updated_at = t1;
    rb.archived_at = Some(t1 + Duration::microseconds(1));
    let versions = vec![
        RunbookVersion {
            saved_at: t0,
            ..first_version(&rb)
        },
        RunbookVersion {
            version: 2,
            source: VersionSource::SaveAsFromChange {
                change: Key::new(KeyKind::Change, 100_000),
            },
            saved_at: t1,
            ..first_version(&rb)
        },
        RunbookVersion {
            version: 3,
            source: VersionSource::FileSync {
                file: "runbooks/fail over.md".into(),
            },
            saved_at: t1,
            ..first_version(&rb)
        },
    ];
    rb.version = 3;
    let mut writes = vec![Write::Runbook {
        runbook: rb.clone(),
        expected_rev: None,
    }];
    writes.extend(versions.iter().cloned().map(Write::RunbookVersion));
    commit_ok(
        store,
        ws.id,
        writes,
        runbook_draft(&user, "runbook.created", key),
    )
    .await;
    assert_eq!(store.runbook(ws.id, rb.id).await.unwrap(), rb);
    assert_eq!(store.runbook_by_key(ws.id, key).await.unwrap(), rb);
    assert_eq!(
        store.runbook_versions(ws.id, rb.id).await.unwrap(),
        versions
    );
    let archived = RunbookQuery {
        archived: true,
        ..RunbookQuery::default()
    };
    assert_eq!(
        store.list_runbooks(ws.id, &archived).await.unwrap(),
        vec![rb.clone()]
    );

    // A change with an imported plan and every field set.
    let cr_key = store.allocate_key(ws.id, KeyKind::Change).await.unwrap();
    let mut live = rb.clone();
    live.archived_at = None;
    let mut cr = change::import_runbook(&new_change(&ctx, cr_key, "Fail over"), &live).unwrap();
    cr.tasks
        .push(PlanTask::from_input(StepInput::default(), 4).unwrap());
    cr.status = ChangeStatus::InProgress;
    cr.created_at = t0;
    cr.updated_at = t1;
    let inc_key = store.allocate_key(ws.id, KeyKind::Incident).await.unwrap();
    let mut inc = new_incident(&ctx, inc_key, "Primary unreachable");
    inc.status = IncidentStatus::Resolved;
    inc.created_at = t0;
    inc.resolved_at = Some(t1);

    // An execution with every optional field set.
    let ex_key = store.allocate_key(ws.id, KeyKind::Execution).await.unwrap();
    let mut ex = machine::start(
        &live,
        StartParams {
            key: ex_key,
            operator: user.id,
            change: Some((cr.key, cr.id)),
            incident: Some(inc.key),
            rehearsal: true,
            channel: Some(ChannelRef {
                platform: "slack".into(),
                channel: "C0ROUND".into(),
            }),
        },
        t0,
    )
    .execution;
    ex.steps[0].status = StepStatus::Done;
    ex.steps[0].completed_at = Some(t1);
    ex.steps[0].note = Some(md("lag was 0.2 s\n"));
    ex.steps[0].actor = Some(user.id);
    ex.steps[0].approval = Some(Approval {
        by: user.id,
        at: t1,
        satisfied_as: "dba".into(),
    });
    ex.steps[1].status = StepStatus::Failed;
    ex.steps[1].started_at = Some(t1);
    ex.steps[1].failures = 3;
    ex.status = ExecutionStatus::Aborted;
    ex.sealed_at = Some(t1);
    ex.abort_reason = Some(md("window closed — **abort**"));
    commit_ok(
        store,
        ws.id,
        vec![
            Write::Change {
                change: cr.clone(),
                expected_rev: None,
            },
            Write::Incident {
                incident: inc.clone(),
                expected_rev: None,
            },
            Write::Execution {
                execution: ex.clone(),
                expected_rev: None,
            },
        ],
        draft("bulk", "round-trip"),
    )
    .await;
    assert_eq!(store.change(ws.id, cr.id).await.unwrap(), cr);
    assert_eq!(store.incident_by_key(ws.id, inc.key).await.unwrap(), inc);
    assert_eq!(store.execution(ws.id, ex.id).await.unwrap(), ex);
    assert_eq!(store.execution_by_key(ws.id, ex_key).await.unwrap(), ex);

    let event = crate::execution::StepEvent {
        execution: ex.id,
        seq: 1,
        kind: crate::execution::EventKind::Failed,
        step_order: Some(2),
        step_id: Some(ex.steps[1].step.id),
        actor: user.id,
        at: t1,
        note: Some(md("  disk full\n")),
        started_at: Some(t0),
    };
    let mut d = draft_by(&user, "execution.step_failed", &ex_key.to_string());
    d.at = t0;
    d.details = json!({ "note": "disk full", "float": 1.5, "big": 9_007_199_254_740_993_u64, "list": ["a", { "b": null }] });
    d.links = AuditLinks {
        runbook: Some(key),
        runbook_version: Some(3),
        change: Some(cr.key),
        incident: Some(inc.key),
        execution: Some(ex_key),
    };
    let entry = commit_ok(store, ws.id, vec![Write::StepEvent(event.clone())], d).await;
    assert_eq!(store.step_events(ws.id, ex.id).await.unwrap(), vec![event]);
    let chain = audit_all(store, ws.id).await;
    assert_eq!(chain.last(), Some(&entry));
    assert_eq!(audit::verify(&chain).unwrap(), chain.len() as u64);
}
