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

use crate::audit::{self, AuditDraft, AuditEntry, AuditLinks, GENESIS_HASH, Origin, Surface};
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
    ActingMember, AuditQuery, Commit, DraftFilter, ExecutionQuery, RunbookQuery, Store, StoreError,
    StoreResult, Write,
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
            commit_checks_acting_membership,
            workspace_keeps_an_owner,
            owner_demotions_race,
            audit_chain,
            audit_queries,
            workspace_isolation_reads,
            workspace_isolation_writes,
            people_are_isolated_between_workspaces,
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
    "commit_checks_acting_membership",
    "workspace_keeps_an_owner",
    "owner_demotions_race",
    "audit_chain",
    "audit_queries",
    "workspace_isolation_reads",
    "workspace_isolation_writes",
    "people_are_isolated_between_workspaces",
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
        rev: 1,
    }
}

fn chat(platform: &str, user: &str) -> ChatIdentity {
    ChatIdentity {
        platform: platform.into(),
        user: user.into(),
    }
}

fn label(s: &str) -> Label {
    Label::parse_field("display_name", s).unwrap()
}

fn new_membership(workspace: WorkspaceId, user: UserId, role: WorkspaceRole) -> Membership {
    Membership {
        workspace,
        user,
        role,
        team_roles: BTreeSet::new(),
        display_name: Label::default(),
        chat_identities: Vec::new(),
        removed_at: None,
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
        origin: None,
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
    try_commit_as(store, ws, writes, None).await
}

/// [`try_commit`] on the authority of `acting`.
async fn try_commit_as(
    store: &dyn Store,
    ws: WorkspaceId,
    writes: Vec<Write>,
    acting: Option<ActingMember>,
) -> StoreResult<AuditEntry> {
    store
        .commit(Commit {
            workspace: ws,
            writes,
            audit: draft("test.write", "test"),
            acting,
        })
        .await
}

fn acting(m: &Membership) -> Option<ActingMember> {
    Some(ActingMember {
        user: m.user,
        membership_rev: m.rev,
    })
}

/// `m` updated by `f`, with the next revision, as a write expecting `m`'s revision.
fn update_membership(m: &Membership, f: impl FnOnce(&mut Membership)) -> (Membership, Write) {
    let mut next = m.clone();
    f(&mut next);
    next.rev = m.rev + 1;
    let write = Write::Membership {
        membership: next.clone(),
        expected_rev: Some(m.rev),
    };
    (next, write)
}

fn insert_membership(m: &Membership) -> Write {
    Write::Membership {
        membership: m.clone(),
        expected_rev: None,
    }
}

fn insert_user(u: &User) -> Write {
    Write::User {
        user: u.clone(),
        expected_rev: None,
    }
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
            acting: None,
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
fn assert_authority_moved<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::AuthorityMoved(_)) => {}
        other => panic!("{what}: expected AuthorityMoved, got {other:?}"),
    }
}

#[track_caller]
fn assert_no_owner_left<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::NoOwnerLeft) => {}
        other => panic!("{what}: expected NoOwnerLeft, got {other:?}"),
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

/// A user reads back by id and handle; an update moves the handle (the old one stops matching); a
/// stale revision is a `Conflict` and changes nothing. A member reads back by each chat identity
/// its membership holds (with the user row); an update of the membership replaces its identities
/// (the old ones stop matching) and its display name; a stale revision changes nothing.
pub async fn user_round_trip(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let carol = new_user("carol");
    let mut carol_m = new_membership(ctx.id(), carol.id, WorkspaceRole::Member);
    carol_m.display_name = label("Carol Ng");
    carol_m.chat_identities = vec![chat("slack", "U1"), chat("console", "carol")];
    commit_ok(
        store,
        ctx.id(),
        vec![insert_user(&carol), insert_membership(&carol_m)],
        draft_by(&ctx.alice, "user.created", "carol"),
    )
    .await;
    assert_eq!(store.user(carol.id).await.unwrap(), carol);
    assert_eq!(store.user_by_handle("carol").await.unwrap(), carol);
    assert_eq!(store.membership(ctx.id(), carol.id).await.unwrap(), carol_m);
    assert_eq!(
        store
            .member_by_chat(ctx.id(), &chat("slack", "U1"))
            .await
            .unwrap(),
        (carol.clone(), carol_m.clone())
    );
    assert_eq!(
        store
            .member_by_chat(ctx.id(), &chat("console", "carol"))
            .await
            .unwrap(),
        (carol.clone(), carol_m.clone())
    );
    assert_not_found(
        store.member_by_chat(ctx.id(), &chat("slack", "U2")).await,
        "an identity nobody holds",
    );
    assert_not_found(
        store.member_by_chat(ctx.id(), &chat("teams", "U1")).await,
        "the same user id on another platform",
    );

    // The user row: a rename.
    let mut next = carol.clone();
    next.handle = name("caroline");
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
    assert_not_found(
        store.user_by_handle("carol").await,
        "old handle after rename",
    );
    assert_eq!(
        store
            .member_by_chat(ctx.id(), &chat("slack", "U1"))
            .await
            .unwrap(),
        (next.clone(), carol_m.clone()),
        "a member found by identity comes with the user row as it is now"
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

    // The membership: display name and identities replaced.
    let (moved, write) = update_membership(&carol_m, |m| {
        m.display_name = label("Caroline Ng");
        m.chat_identities = vec![chat("slack", "U1"), chat("slack", "U9")];
    });
    commit_ok(
        store,
        ctx.id(),
        vec![write],
        draft_by(&ctx.alice, "member.updated", "caroline"),
    )
    .await;
    assert_eq!(store.membership(ctx.id(), carol.id).await.unwrap(), moved);
    for identity in [chat("slack", "U1"), chat("slack", "U9")] {
        assert_eq!(
            store.member_by_chat(ctx.id(), &identity).await.unwrap(),
            (next.clone(), moved.clone())
        );
    }
    assert_not_found(
        store
            .member_by_chat(ctx.id(), &chat("console", "carol"))
            .await,
        "an identity the update removed",
    );

    let (_, stale) = update_membership(&carol_m, |m| {
        m.chat_identities = vec![chat("slack", "U7")];
    });
    assert_conflict(
        try_commit(store, ctx.id(), vec![stale]).await,
        "membership update with a stale revision",
    );
    assert_eq!(store.membership(ctx.id(), carol.id).await.unwrap(), moved);
    assert_not_found(
        store.member_by_chat(ctx.id(), &chat("slack", "U7")).await,
        "identity of a refused update",
    );
}

/// Handles are unique across users and chat identities unique within a workspace: taken ones
/// are refused on insert (`AlreadyExists`) and on update; an identity differing in any part is
/// another identity; a handle or identity given up is free again.
pub async fn user_unique_values(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let dan = new_user("dan");
    let mut dan_m = new_membership(ctx.id(), dan.id, WorkspaceRole::Member);
    dan_m.chat_identities = vec![chat("slack", "U1")];
    commit_ok(
        store,
        ctx.id(),
        vec![insert_user(&dan), insert_membership(&dan_m)],
        draft("user.created", "dan"),
    )
    .await;

    let same_handle = new_user("dan");
    assert_already_exists(
        try_commit(store, ctx.id(), vec![insert_user(&same_handle)]).await,
        "a second user with handle `dan`",
    );
    assert_not_found(store.user(same_handle.id).await, "refused user");

    let dana = new_user("dana");
    let mut same_identity = new_membership(ctx.id(), dana.id, WorkspaceRole::Member);
    same_identity.chat_identities = vec![chat("slack", "U2"), chat("slack", "U1")];
    assert_taken(
        try_commit(
            store,
            ctx.id(),
            vec![insert_user(&dana), insert_membership(&same_identity)],
        )
        .await,
        "a second member of the workspace with identity slack/U1",
    );
    assert_not_found(store.user_by_handle("dana").await, "refused user by handle");
    assert_not_found(
        store.membership(ctx.id(), dana.id).await,
        "refused membership",
    );
    assert_not_found(
        store.member_by_chat(ctx.id(), &chat("slack", "U2")).await,
        "identity of a refused membership",
    );
    assert_eq!(
        store
            .member_by_chat(ctx.id(), &chat("slack", "U1"))
            .await
            .unwrap(),
        (dan.clone(), dan_m.clone())
    );

    let mut same_id = new_user("daniel");
    same_id.id = dan.id;
    assert_already_exists(
        try_commit(store, ctx.id(), vec![insert_user(&same_id)]).await,
        "insert of an existing user id",
    );

    // Another platform, another user id: other identities.
    let mut dana_m = new_membership(ctx.id(), dana.id, WorkspaceRole::Member);
    dana_m.chat_identities = vec![chat("teams", "U1"), chat("slack", "U12")];
    commit_ok(
        store,
        ctx.id(),
        vec![insert_user(&dana), insert_membership(&dana_m)],
        draft("user.created", "dana"),
    )
    .await;
    assert_eq!(
        store
            .member_by_chat(ctx.id(), &chat("teams", "U1"))
            .await
            .unwrap(),
        (dana.clone(), dana_m.clone())
    );
    assert_eq!(
        store
            .member_by_chat(ctx.id(), &chat("slack", "U1"))
            .await
            .unwrap(),
        (dan.clone(), dan_m.clone())
    );

    let mut onto_dan = dana.clone();
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
    assert_eq!(store.user(dana.id).await.unwrap(), dana);
    let (_, steal_identity) = update_membership(&dana_m, |m| {
        m.chat_identities.push(chat("slack", "U1"));
    });
    assert_taken(
        try_commit(store, ctx.id(), vec![steal_identity]).await,
        "adding an identity another member of the workspace holds",
    );
    assert_eq!(store.membership(ctx.id(), dana.id).await.unwrap(), dana_m);
    assert_eq!(
        store
            .member_by_chat(ctx.id(), &chat("slack", "U1"))
            .await
            .unwrap(),
        (dan.clone(), dan_m.clone())
    );

    // dan gives up his handle and his identity: both are free again.
    let mut renamed = dan.clone();
    renamed.handle = name("daniel");
    renamed.rev = 2;
    let (_, unmapped) = update_membership(&dan_m, |m| m.chat_identities.clear());
    commit_ok(
        store,
        ctx.id(),
        vec![
            Write::User {
                user: renamed,
                expected_rev: Some(1),
            },
            unmapped,
        ],
        draft("user.renamed", "daniel"),
    )
    .await;
    assert_not_found(
        store.member_by_chat(ctx.id(), &chat("slack", "U1")).await,
        "an identity given up",
    );
    let new_dan = new_user("dan");
    let mut new_dan_m = new_membership(ctx.id(), new_dan.id, WorkspaceRole::Member);
    new_dan_m.chat_identities = vec![chat("slack", "U1")];
    commit_ok(
        store,
        ctx.id(),
        vec![insert_user(&new_dan), insert_membership(&new_dan_m)],
        draft("user.created", "dan"),
    )
    .await;
    assert_eq!(store.user_by_handle("dan").await.unwrap(), new_dan);
    assert_eq!(
        store
            .member_by_chat(ctx.id(), &chat("slack", "U1"))
            .await
            .unwrap(),
        (new_dan, new_dan_m)
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
        acting: None,
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
                acting: None,
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

    // 2. A new member, then a duplicate runbook key: the user's handle and the member's
    //    identity stay free.
    let dora = new_user("dora");
    let mut dora_m = new_membership(ctx.id(), dora.id, WorkspaceRole::Operator);
    dora_m.chat_identities = vec![chat("slack", "UDORA")];
    let dup = new_runbook(&ctx, rb.key, simple_body("Duplicate"), &ctx.alice, true);
    assert_already_exists(
        try_commit(
            store,
            ctx.id(),
            vec![
                insert_user(&dora),
                insert_membership(&dora_m),
                Write::Runbook {
                    runbook: dup,
                    expected_rev: None,
                },
            ],
        )
        .await,
        "a commit whose third write repeats a key",
    );
    assert_not_found(store.user(dora.id).await, "user of a refused commit");
    assert_not_found(
        store.user_by_handle("dora").await,
        "handle of a refused commit",
    );
    assert_not_found(
        store.membership(ctx.id(), dora.id).await,
        "membership of a refused commit",
    );
    assert_not_found(
        store
            .member_by_chat(ctx.id(), &chat("slack", "UDORA"))
            .await,
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
            insert_user(&dora),
            insert_membership(&dora_m),
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
            .member_by_chat(ctx.id(), &chat("slack", "UDORA"))
            .await
            .unwrap(),
        (dora, dora_m)
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

/// A commit carrying an acting member applies only while that member's membership of the
/// workspace is still at the revision it names: after the membership moves, the commit is a
/// `Conflict` that applies nothing and appends no audit entry; so is a commit on the authority
/// of a user who is not a member of the workspace (or only of another one).
pub async fn commit_checks_acting_membership(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let other = setup(store, "dev").await;
    let rb_write = |title: &str| {
        let rb = new_runbook(
            &ctx,
            Key::new(KeyKind::Runbook, 1),
            simple_body(title),
            &ctx.bob,
            false,
        );
        (
            rb.clone(),
            vec![
                Write::Runbook {
                    runbook: rb.clone(),
                    expected_rev: None,
                },
                Write::RunbookVersion(first_version(&rb)),
            ],
        )
    };

    // 1. The acting membership is current: the commit applies.
    let (rb, writes) = rb_write("Current authority");
    let entry = try_commit_as(store, ctx.id(), writes, acting(&ctx.bob_m))
        .await
        .unwrap();
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap(), rb);
    let before = audit_len(store, ctx.id()).await;
    assert_eq!(entry.seq as usize, before);

    // 2. bob's membership moves (alice, acting, changes his role).
    let (bob_m2, write) = update_membership(&ctx.bob_m, |m| m.role = WorkspaceRole::Member);
    try_commit_as(store, ctx.id(), vec![write], acting(&ctx.alice_m))
        .await
        .unwrap();
    let before = before + 1;

    // 3. A commit on bob's old authority is refused and applies nothing.
    let mut rb_edit = rb.clone();
    rb_edit.is_published = true;
    rb_edit.rev = 2;
    let publish = vec![Write::Runbook {
        runbook: rb_edit.clone(),
        expected_rev: Some(1),
    }];
    assert_authority_moved(
        try_commit_as(store, ctx.id(), publish.clone(), acting(&ctx.bob_m)).await,
        "a commit on the authority of a membership that has moved",
    );
    assert_authority_moved(
        try_commit_as(
            store,
            ctx.id(),
            publish.clone(),
            Some(ActingMember {
                user: ctx.bob.id,
                membership_rev: bob_m2.rev + 1,
            }),
        )
        .await,
        "a commit on the authority of a revision not reached yet",
    );
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap(), rb);
    assert_eq!(
        store.membership(ctx.id(), ctx.bob.id).await.unwrap(),
        bob_m2
    );
    assert_eq!(
        audit_len(store, ctx.id()).await,
        before,
        "a refused commit appends no audit entry"
    );
    // An audit-only commit is checked too.
    assert_authority_moved(
        try_commit_as(store, ctx.id(), Vec::new(), acting(&ctx.bob_m)).await,
        "an audit-only commit on a moved authority",
    );
    assert_eq!(audit_len(store, ctx.id()).await, before);

    // 4. Users who are not members of this workspace have no authority in it.
    let loner = new_user("loner");
    commit_ok(
        store,
        ctx.id(),
        vec![insert_user(&loner)],
        draft("user.created", "loner"),
    )
    .await;
    let before = before + 1;
    for (who, user) in [
        ("a user without membership", loner.id),
        ("a member of another workspace only", other.bob.id),
        ("an unknown user", UserId::new()),
    ] {
        assert_authority_moved(
            try_commit_as(
                store,
                ctx.id(),
                publish.clone(),
                Some(ActingMember {
                    user,
                    membership_rev: 1,
                }),
            )
            .await,
            &format!("a commit on the authority of {who}"),
        );
    }
    // Nor does a member of B act in A with B's membership revision.
    assert_authority_moved(
        try_commit_as(store, ctx.id(), publish.clone(), acting(&other.alice_m)).await,
        "a commit in A on the authority of a membership of B",
    );
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap(), rb);
    assert_eq!(audit_len(store, ctx.id()).await, before);
    assert_eq!(audit_len(store, other.id()).await, 1);

    // 5. The current revision works again, with the entry chained right after.
    let entry = try_commit_as(store, ctx.id(), publish, acting(&bob_m2))
        .await
        .unwrap();
    assert_eq!(store.runbook(ctx.id(), rb.id).await.unwrap(), rb_edit);
    assert_eq!(entry.seq as usize, before + 1);

    // 6. A member may change their own membership on its current authority: the authority is
    // what the command was checked against, before the commit's own writes (an owner stepping
    // down while another owner remains).
    let (bob_m3, write) = update_membership(&bob_m2, |m| m.role = WorkspaceRole::Operator);
    try_commit_as(store, ctx.id(), vec![write], acting(&bob_m2))
        .await
        .unwrap();
    assert_eq!(
        store.membership(ctx.id(), ctx.bob.id).await.unwrap(),
        bob_m3
    );
    let all = audit_all(store, ctx.id()).await;
    assert_eq!(audit::verify(&all).unwrap(), all.len() as u64);
}

/// A commit that writes a membership must leave the workspace with an active owner: demoting
/// or removing the last owner is a `Conflict` that applies nothing; with two owners, one can be
/// demoted; the check is on the state the whole commit leaves (a hand-over in one commit works).
pub async fn workspace_keeps_an_owner(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let before = audit_len(store, ctx.id()).await;
    let rb = new_runbook(
        &ctx,
        Key::new(KeyKind::Runbook, 1),
        simple_body("Rides along"),
        &ctx.alice,
        true,
    );
    let rb_write = Write::Runbook {
        runbook: rb.clone(),
        expected_rev: None,
    };

    // 1. The only owner demoted, or removed: refused, with the writes beside it.
    let (_, demote_alice) = update_membership(&ctx.alice_m, |m| m.role = WorkspaceRole::Admin);
    assert_no_owner_left(
        try_commit(
            store,
            ctx.id(),
            vec![rb_write.clone(), demote_alice.clone()],
        )
        .await,
        "demoting the only owner",
    );
    let (_, remove_alice) = update_membership(&ctx.alice_m, |m| m.removed_at = Some(now()));
    assert_no_owner_left(
        try_commit_as(store, ctx.id(), vec![remove_alice], acting(&ctx.alice_m)).await,
        "removing the only owner",
    );
    assert_eq!(
        store.membership(ctx.id(), ctx.alice.id).await.unwrap(),
        ctx.alice_m
    );
    assert_not_found(
        store.runbook(ctx.id(), rb.id).await,
        "a write of a commit that left no owner",
    );
    assert_eq!(audit_len(store, ctx.id()).await, before);

    // 2. A workspace created without an active owner is refused too.
    let empty = new_workspace("ownerless");
    let mut ghost_owner = new_membership(empty.id, ctx.alice.id, WorkspaceRole::Owner);
    ghost_owner.removed_at = Some(now());
    for (what, m) in [
        (
            "a new workspace whose only member is an admin",
            new_membership(empty.id, ctx.alice.id, WorkspaceRole::Admin),
        ),
        ("a new workspace whose only owner is removed", ghost_owner),
    ] {
        assert_no_owner_left(
            try_commit(
                store,
                empty.id,
                vec![
                    Write::Workspace {
                        workspace: empty.clone(),
                        expected_rev: None,
                    },
                    insert_membership(&m),
                ],
            )
            .await,
            what,
        );
    }
    assert_not_found(store.workspace(empty.id).await, "an ownerless workspace");

    // 3. Two owners: one may be demoted.
    let (bob_owner, write) = update_membership(&ctx.bob_m, |m| m.role = WorkspaceRole::Owner);
    commit_ok(
        store,
        ctx.id(),
        vec![write],
        draft("member.promoted", "bob"),
    )
    .await;
    let (alice_admin, write) = update_membership(&ctx.alice_m, |m| m.role = WorkspaceRole::Admin);
    commit_ok(
        store,
        ctx.id(),
        vec![write],
        draft("member.demoted", "alice"),
    )
    .await;
    assert_eq!(
        store.membership(ctx.id(), ctx.alice.id).await.unwrap(),
        alice_admin
    );

    // 4. The last remaining owner marked removed (still role owner): refused.
    let (_, remove_bob) = update_membership(&bob_owner, |m| m.removed_at = Some(now()));
    assert_no_owner_left(
        try_commit(store, ctx.id(), vec![remove_bob]).await,
        "removing the last remaining owner",
    );
    let (_, demote_bob) = update_membership(&bob_owner, |m| m.role = WorkspaceRole::Member);
    assert_no_owner_left(
        try_commit(store, ctx.id(), vec![demote_bob]).await,
        "demoting the last remaining owner",
    );
    assert_eq!(
        store.membership(ctx.id(), ctx.bob.id).await.unwrap(),
        bob_owner
    );

    // 5. A hand-over in one commit: the state the commit leaves has an owner.
    let (alice_owner, promote) = update_membership(&alice_admin, |m| m.role = WorkspaceRole::Owner);
    let (bob_gone, remove) = update_membership(&bob_owner, |m| m.removed_at = Some(now()));
    commit_ok(
        store,
        ctx.id(),
        vec![remove, promote],
        draft("member.handover", "alice"),
    )
    .await;
    let owners: Vec<UserId> = store
        .list_members(ctx.id())
        .await
        .unwrap()
        .iter()
        .filter(|(_, m)| m.is_active_owner())
        .map(|(u, _)| u.id)
        .collect();
    assert_eq!(owners, vec![ctx.alice.id]);
    assert_eq!(
        store.membership(ctx.id(), ctx.alice.id).await.unwrap(),
        alice_owner
    );
    assert_eq!(
        store.membership(ctx.id(), ctx.bob.id).await.unwrap(),
        bob_gone
    );
}

/// Rounds of the acting race of [`owner_demotions_race`] (each two concurrent commits).
const ACTING_RACE_ROUNDS: usize = 300;
/// Rounds of the plain race (no acting member: the owner invariant alone).
const PLAIN_RACE_ROUNDS: usize = 200;

/// Two owners demote each other at the same moment, hundreds of times. With an acting member
/// (each on the authority of its own membership revision) and without one (the owner invariant
/// alone), at most one of the two commits may succeed, every loser is a `Conflict`, the
/// workspace always keeps an active owner, and what is stored is exactly the winner's change.
pub async fn owner_demotions_race(store: &dyn Store) {
    let ctx = setup(store, "ops").await;
    let (x, y) = (new_user("racer-x"), new_user("racer-y"));
    commit_ok(
        store,
        ctx.id(),
        vec![insert_user(&x), insert_user(&y)],
        draft("user.created", "racers"),
    )
    .await;
    let mut violations: Vec<String> = Vec::new();
    let mut wins = 0;
    for round in 0..ACTING_RACE_ROUNDS + PLAIN_RACE_ROUNDS {
        let with_acting = round < ACTING_RACE_ROUNDS;
        // A fresh workspace where x and y are both owners.
        let ws = new_workspace(&format!("race-{round}"));
        let xm = new_membership(ws.id, x.id, WorkspaceRole::Owner);
        let ym = new_membership(ws.id, y.id, WorkspaceRole::Owner);
        commit_ok(
            store,
            ws.id,
            vec![
                Write::Workspace {
                    workspace: ws.clone(),
                    expected_rev: None,
                },
                insert_membership(&xm),
                insert_membership(&ym),
            ],
            draft("workspace.created", "race"),
        )
        .await;
        // Caller 0 is x demoting y; caller 1 is y demoting x.
        let pairs = [(&xm, &ym), (&ym, &xm)];
        let results = parallel(2, |i| {
            let (me, them) = pairs[i];
            let ws = ws.id;
            async move {
                let (_, demote) = update_membership(them, |m| m.role = WorkspaceRole::Admin);
                let by = if with_acting { acting(me) } else { None };
                try_commit_as(store, ws, vec![demote], by).await
            }
        });
        let kind = if with_acting { "acting" } else { "plain" };
        let won: Vec<usize> = (0..2).filter(|&i| results[i].is_ok()).collect();
        for (i, r) in results.iter().enumerate() {
            if let Err(e) = r
                && !matches!(
                    e,
                    StoreError::Conflict(_)
                        | StoreError::AuthorityMoved(_)
                        | StoreError::NoOwnerLeft
                )
            {
                violations.push(format!(
                    "{kind} round {round}: caller {i} lost with {e:?}, not Conflict"
                ));
            }
        }
        if won.len() > 1 {
            violations.push(format!("{kind} round {round}: both demotions succeeded"));
        }
        wins += won.len();
        let members = store.list_members(ws.id).await.unwrap();
        let owners: Vec<UserId> = members
            .iter()
            .filter(|(_, m)| m.is_active_owner())
            .map(|(u, _)| u.id)
            .collect();
        if owners.is_empty() {
            violations.push(format!("{kind} round {round}: no active owner left"));
        }
        // What is stored is the winner's change, or nothing.
        let expected: Vec<UserId> = match won.as_slice() {
            [] => vec![x.id, y.id],
            [0] => vec![x.id],
            [1] => vec![y.id],
            _ => Vec::new(),
        };
        if owners != expected && won.len() <= 1 {
            violations.push(format!(
                "{kind} round {round}: winners {won:?} but owners {owners:?} are stored"
            ));
        }
        let entries = audit_len(store, ws.id).await;
        if entries != 1 + won.len() {
            violations.push(format!(
                "{kind} round {round}: {entries} audit entries for {} successful commits",
                1 + won.len()
            ));
        }
    }
    assert!(
        violations.is_empty(),
        "{} violations in {} races:\n{}",
        violations.len(),
        ACTING_RACE_ROUNDS + PLAIN_RACE_ROUNDS,
        violations.join("\n")
    );
    assert!(
        wins > 0,
        "no demotion ever succeeded: the race tested nothing"
    );
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
    d.origin = Some(Origin::new(Surface::Slack, "T1/U1"));
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
            &returned.links,
            &returned.origin
        ),
        (
            d.at,
            d.actor,
            &d.actor_handle,
            &d.action,
            &d.target,
            &d.details,
            &d.links,
            &d.origin
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

/// What a workspace says about a person is its own: one user's memberships of two workspaces
/// hold different display names, roles and chat identities; the same chat identity maps to
/// different users in two workspaces and each workspace finds only its own member; updating one
/// membership changes nothing seen through the other; a commit for one workspace cannot write a
/// membership of the other.
pub async fn people_are_isolated_between_workspaces(store: &dyn Store) {
    let a = setup(store, "ops").await;
    let b = setup(store, "dev").await;
    let mal = new_user("mal");
    let imp = new_user("imp");
    let mut mal_a = new_membership(a.id(), mal.id, WorkspaceRole::Admin);
    mal_a.display_name = label("Mal Reynolds");
    mal_a.team_roles = [name("sre")].into_iter().collect();
    mal_a.chat_identities = vec![chat("slack", "U0MAL"), chat("console", "mal")];
    let mut mal_b = new_membership(b.id(), mal.id, WorkspaceRole::Member);
    mal_b.display_name = label("M. R. (contractor)");
    mal_b.chat_identities = vec![chat("slack", "UMALB")];
    // In B, U0MAL is someone else.
    let mut imp_b = new_membership(b.id(), imp.id, WorkspaceRole::Operator);
    imp_b.display_name = label("Not Mal");
    imp_b.chat_identities = vec![chat("slack", "U0MAL")];
    commit_ok(
        store,
        a.id(),
        vec![insert_user(&mal), insert_membership(&mal_a)],
        draft_by(&a.alice, "member.added", "mal"),
    )
    .await;
    commit_ok(
        store,
        b.id(),
        vec![
            insert_membership(&mal_b),
            insert_user(&imp),
            insert_membership(&imp_b),
        ],
        draft_by(&b.alice, "member.added", "mal"),
    )
    .await;

    assert_eq!(store.membership(a.id(), mal.id).await.unwrap(), mal_a);
    assert_eq!(store.membership(b.id(), mal.id).await.unwrap(), mal_b);
    assert_not_found(
        store.membership(a.id(), imp.id).await,
        "a member of B through A",
    );
    let slack_mal = chat("slack", "U0MAL");
    assert_eq!(
        store.member_by_chat(a.id(), &slack_mal).await.unwrap(),
        (mal.clone(), mal_a.clone())
    );
    assert_eq!(
        store.member_by_chat(b.id(), &slack_mal).await.unwrap(),
        (imp.clone(), imp_b.clone())
    );
    assert_not_found(
        store.member_by_chat(a.id(), &chat("slack", "UMALB")).await,
        "B's identity of mal through A",
    );
    assert_not_found(
        store.member_by_chat(b.id(), &chat("console", "mal")).await,
        "A's identity of mal through B",
    );
    let members_of = |ws: WorkspaceId| async move {
        store
            .list_members(ws)
            .await
            .unwrap()
            .into_iter()
            .filter(|(u, _)| u.id == mal.id || u.id == imp.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(members_of(a.id()).await, vec![(mal.clone(), mal_a.clone())]);
    assert_eq!(
        members_of(b.id()).await,
        vec![(imp.clone(), imp_b.clone()), (mal.clone(), mal_b.clone())]
    );

    // A changes everything it says about mal, and gives up U0MAL.
    let (mal_a2, write) = update_membership(&mal_a, |m| {
        m.role = WorkspaceRole::Operator;
        m.display_name = label("Captain");
        m.team_roles.clear();
        m.chat_identities = vec![chat("slack", "UMALA")];
    });
    commit_ok(
        store,
        a.id(),
        vec![write],
        draft_by(&a.alice, "member.updated", "mal"),
    )
    .await;
    assert_eq!(store.membership(a.id(), mal.id).await.unwrap(), mal_a2);
    assert_eq!(store.membership(b.id(), mal.id).await.unwrap(), mal_b);
    assert_not_found(
        store.member_by_chat(a.id(), &slack_mal).await,
        "an identity A gave up",
    );
    assert_eq!(
        store.member_by_chat(b.id(), &slack_mal).await.unwrap(),
        (imp.clone(), imp_b.clone()),
        "B's mapping of the same identity is untouched"
    );
    assert_eq!(
        store
            .member_by_chat(b.id(), &chat("slack", "UMALB"))
            .await
            .unwrap(),
        (mal.clone(), mal_b.clone())
    );
    assert_eq!(
        members_of(b.id()).await,
        vec![(imp.clone(), imp_b.clone()), (mal.clone(), mal_b.clone())]
    );

    // B maps one more identity that A's member holds; A's mapping is untouched.
    let (mal_b2, write) = update_membership(&mal_b, |m| {
        m.chat_identities.push(chat("slack", "UMALA"));
    });
    commit_ok(
        store,
        b.id(),
        vec![write],
        draft_by(&b.alice, "member.updated", "mal"),
    )
    .await;
    assert_eq!(
        store
            .member_by_chat(a.id(), &chat("slack", "UMALA"))
            .await
            .unwrap(),
        (mal.clone(), mal_a2.clone())
    );
    assert_eq!(
        store
            .member_by_chat(b.id(), &chat("slack", "UMALA"))
            .await
            .unwrap(),
        (mal.clone(), mal_b2.clone())
    );

    // A commit for A cannot reach B's memberships.
    let (audit_a, audit_b) = (
        audit_len(store, a.id()).await,
        audit_len(store, b.id()).await,
    );
    let (_, promote_in_b) = update_membership(&mal_b2, |m| {
        m.role = WorkspaceRole::Owner;
        m.display_name = label("Hijacked");
    });
    assert_not_found(
        try_commit(store, a.id(), vec![promote_in_b]).await,
        "update of B's membership in a commit for A",
    );
    let (_, steal_in_b) = update_membership(&imp_b, |m| m.chat_identities.clear());
    assert_not_found(
        try_commit(store, a.id(), vec![steal_in_b]).await,
        "update of another member of B in a commit for A",
    );
    let mut plant = new_membership(b.id(), a.bob.id, WorkspaceRole::Owner);
    plant.chat_identities = vec![chat("slack", "UPLANT")];
    assert_not_found(
        try_commit(store, a.id(), vec![insert_membership(&plant)]).await,
        "insert of a membership of B in a commit for A",
    );
    assert_eq!(store.membership(b.id(), mal.id).await.unwrap(), mal_b2);
    assert_eq!(store.membership(b.id(), imp.id).await.unwrap(), imp_b);
    assert_not_found(
        store.membership(b.id(), a.bob.id).await,
        "a planted membership",
    );
    assert_not_found(
        store.member_by_chat(b.id(), &chat("slack", "UPLANT")).await,
        "identity of a planted membership",
    );
    assert_eq!(audit_len(store, a.id()).await, audit_a);
    assert_eq!(audit_len(store, b.id()).await, audit_b);
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
        store.member_by_chat(ws, &chat("slack", "U1")).await,
        "member by chat identity",
    );

    let ctx = setup(store, "ops").await;
    let id = ctx.id();
    let rb_key = Key::new(KeyKind::Runbook, 1);
    assert_not_found(
        store.workspace_by_slack_team("T1").await,
        "workspace without a Slack team",
    );
    assert_not_found(store.membership(id, UserId::new()).await, "membership");
    assert_not_found(
        store.member_by_chat(id, &chat("slack", "U1")).await,
        "member by an identity nobody holds",
    );
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
    let user = new_user("zoe");
    let mut membership = new_membership(ws.id, user.id, WorkspaceRole::Admin);
    membership.team_roles = [name("dba"), name("sre"), name("net.ops")]
        .into_iter()
        .collect();
    membership.display_name = label("Zoë Ølberg 🚀");
    // Not in sorted order: the order written is the order read.
    membership.chat_identities = vec![
        chat("slack", "U9"),
        chat("console", "zoe"),
        chat("slack", "U1"),
    ];
    // The owner every workspace keeps.
    let owner = new_user("root");
    let mut owner_m = new_membership(ws.id, owner.id, WorkspaceRole::Owner);
    owner_m.display_name = label("Root of «all» — 根");
    // A removed member, removed at a time with microseconds.
    let gone = new_user("yuri");
    let mut gone_m = new_membership(ws.id, gone.id, WorkspaceRole::Operator);
    gone_m.removed_at = Some(t0);
    commit_ok(
        store,
        ws.id,
        vec![
            Write::Workspace {
                workspace: ws.clone(),
                expected_rev: None,
            },
            insert_user(&user),
            insert_membership(&membership),
            insert_user(&owner),
            insert_membership(&owner_m),
            insert_user(&gone),
            insert_membership(&gone_m),
        ],
        draft("workspace.created", "round-trip"),
    )
    .await;
    assert_eq!(store.workspace(ws.id).await.unwrap(), ws);
    assert_eq!(store.user(user.id).await.unwrap(), user);
    assert_eq!(store.membership(ws.id, user.id).await.unwrap(), membership);
    assert_eq!(store.membership(ws.id, owner.id).await.unwrap(), owner_m);
    assert_eq!(store.membership(ws.id, gone.id).await.unwrap(), gone_m);
    for identity in &membership.chat_identities {
        assert_eq!(
            store.member_by_chat(ws.id, identity).await.unwrap(),
            (user.clone(), membership.clone())
        );
    }
    assert_eq!(
        store.list_members(ws.id).await.unwrap(),
        vec![
            (owner.clone(), owner_m.clone()),
            (gone.clone(), gone_m.clone()),
            (user.clone(), membership.clone()),
        ],
        "members by handle, removed ones included"
    );
    // Removal and its time move on update; reinstating clears it.
    let (regone, write) = update_membership(&gone_m, |m| {
        m.removed_at = Some(t1 + Duration::microseconds(7));
    });
    commit_ok(store, ws.id, vec![write], draft("member.removed", "yuri")).await;
    assert_eq!(store.membership(ws.id, gone.id).await.unwrap(), regone);
    let (back, write) = update_membership(&regone, |m| m.removed_at = None);
    commit_ok(store, ws.id, vec![write], draft("member.restored", "yuri")).await;
    assert_eq!(store.membership(ws.id, gone.id).await.unwrap(), back);
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
    d.origin = Some(Origin::new(Surface::Slack, "T1/U1"));
    let entry = commit_ok(store, ws.id, vec![Write::StepEvent(event.clone())], d).await;
    assert_eq!(entry.origin, Some(Origin::new(Surface::Slack, "T1/U1")));
    assert_eq!(store.step_events(ws.id, ex.id).await.unwrap(), vec![event]);
    let chain = audit_all(store, ws.id).await;
    assert_eq!(chain.last(), Some(&entry));
    assert!(
        chain[..chain.len() - 1].iter().all(|e| e.origin.is_none()),
        "entries without an origin read back without one"
    );
    assert_eq!(audit::verify(&chain).unwrap(), chain.len() as u64);
    // Each surface reads back as written, and the chain still verifies.
    let surfaces = [Surface::Cli, Surface::Console, Surface::Api, Surface::Slack];
    for (i, surface) in surfaces.into_iter().enumerate() {
        let mut d = draft_by(&user, "test.origin", "round-trip");
        d.origin = Some(Origin::new(surface, format!("ops@host-{i} ✓")));
        let e = commit_ok(store, ws.id, Vec::new(), d.clone()).await;
        assert_eq!(e.origin, d.origin);
    }
    let chain = audit_all(store, ws.id).await;
    let origins: Vec<_> = chain[chain.len() - 4..]
        .iter()
        .map(|e| e.origin.clone().map(|o| o.surface))
        .collect();
    assert_eq!(origins, surfaces.map(Some).to_vec());
    assert_eq!(audit::verify(&chain).unwrap(), chain.len() as u64);
}
