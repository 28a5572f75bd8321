//! Shared fixtures of the conformance cases: rows built fresh, commits that must succeed,
//! the assertions on a store's errors, and callers run in parallel.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::{AuditDraft, AuditEntry, AuditLinks};
use crate::change::{ChangeRequest, ChangeStatus, PlanTask};
use crate::clock;
use crate::execution::machine::{self, Command, StartParams};
use crate::execution::{ChannelRef, Execution};
use crate::fields::{Label, Markdown, Name, Title};
use crate::ids::{ChangeId, IncidentId, Key, KeyKind, RunbookId, UserId, WorkspaceId};
use crate::incident::{Incident, IncidentStatus};
use crate::roles::WorkspaceRole;
use crate::runbook::{
    Runbook, RunbookBody, RunbookInput, RunbookVersion, StepInput, VersionSource,
};
use crate::store::{ActingMember, AuditQuery, Commit, Store, StoreError, StoreResult, Write};
use crate::workspace::{Actor, ChatIdentity, Membership, Policy, User, Workspace};

/// Now, at the microsecond precision every store keeps.
pub(super) fn now() -> DateTime<Utc> {
    clock::to_micros(Utc::now())
}

pub(super) fn name(s: &str) -> Name {
    Name::parse_field("name", s).unwrap()
}

pub(super) fn md(s: &str) -> Markdown {
    Markdown::parse_field("text", s).unwrap()
}

pub(super) fn new_workspace(slug: &str) -> Workspace {
    Workspace {
        id: WorkspaceId::new(),
        slug: name(slug),
        policy: Policy::default(),
        slack_team: None,
        created_at: now(),
        rev: 1,
    }
}

pub(super) fn new_user(handle: &str) -> User {
    User {
        id: UserId::new(),
        handle: name(handle),
        rev: 1,
    }
}

pub(super) fn chat(platform: &str, user: &str) -> ChatIdentity {
    ChatIdentity {
        platform: platform.into(),
        user: user.into(),
    }
}

pub(super) fn label(s: &str) -> Label {
    Label::parse_field("display_name", s).unwrap()
}

pub(super) fn new_membership(
    workspace: WorkspaceId,
    user: UserId,
    role: WorkspaceRole,
) -> Membership {
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

pub(super) fn draft(action: &str, target: &str) -> AuditDraft {
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

pub(super) fn draft_by(user: &User, action: &str, target: &str) -> AuditDraft {
    AuditDraft {
        actor: Some(user.id),
        actor_handle: Some(user.handle.to_string()),
        ..draft(action, target)
    }
}

pub(super) fn runbook_draft(user: &User, action: &str, key: Key) -> AuditDraft {
    let mut d = draft_by(user, action, &key.to_string());
    d.links.runbook = Some(key);
    d
}

pub(super) async fn try_commit(
    store: &dyn Store,
    ws: WorkspaceId,
    writes: Vec<Write>,
) -> StoreResult<AuditEntry> {
    try_commit_as(store, ws, writes, None).await
}

/// [`try_commit`] on the authority of `acting`.
pub(super) async fn try_commit_as(
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

pub(super) fn acting(m: &Membership) -> Option<ActingMember> {
    Some(ActingMember {
        user: m.user,
        membership_rev: m.rev,
    })
}

/// `m` updated by `f`, with the next revision, as a write expecting `m`'s revision.
pub(super) fn update_membership(
    m: &Membership,
    f: impl FnOnce(&mut Membership),
) -> (Membership, Write) {
    let mut next = m.clone();
    f(&mut next);
    next.rev = m.rev + 1;
    let write = Write::Membership {
        membership: next.clone(),
        expected_rev: Some(m.rev),
    };
    (next, write)
}

pub(super) fn insert_membership(m: &Membership) -> Write {
    Write::Membership {
        membership: m.clone(),
        expected_rev: None,
    }
}

pub(super) fn insert_user(u: &User) -> Write {
    Write::User {
        user: u.clone(),
        expected_rev: None,
    }
}

pub(super) async fn commit_ok(
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
pub(super) fn assert_not_found<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

#[track_caller]
pub(super) fn assert_conflict<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

#[track_caller]
pub(super) fn assert_authority_moved<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::AuthorityMoved(_)) => {}
        other => panic!("{what}: expected AuthorityMoved, got {other:?}"),
    }
}

#[track_caller]
pub(super) fn assert_no_owner_left<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::NoOwnerLeft) => {}
        other => panic!("{what}: expected NoOwnerLeft, got {other:?}"),
    }
}

#[track_caller]
pub(super) fn assert_already_exists<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::AlreadyExists(_)) => {}
        other => panic!("{what}: expected AlreadyExists, got {other:?}"),
    }
}

/// A collision with a unique value on update: `AlreadyExists` or `Conflict` both say it.
#[track_caller]
pub(super) fn assert_taken<T: Debug>(r: StoreResult<T>, what: &str) {
    match r {
        Err(StoreError::AlreadyExists(_) | StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected AlreadyExists or Conflict, got {other:?}"),
    }
}

pub(super) async fn audit_all(store: &dyn Store, ws: WorkspaceId) -> Vec<AuditEntry> {
    store.audit(ws, &AuditQuery::default()).await.unwrap()
}

pub(super) async fn audit_len(store: &dyn Store, ws: WorkspaceId) -> usize {
    audit_all(store, ws).await.len()
}

/// Runs `n` callers at once on their own OS threads (started together behind a barrier) and
/// returns their results in caller order. Needs a multi-thread Tokio runtime.
pub(super) fn parallel<T, F, Fut>(n: usize, f: F) -> Vec<T>
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
pub(super) struct Ctx {
    pub(super) ws: Workspace,
    pub(super) alice: User,
    pub(super) bob: User,
    pub(super) alice_m: Membership,
    pub(super) bob_m: Membership,
}

impl Ctx {
    pub(super) fn id(&self) -> WorkspaceId {
        self.ws.id
    }

    pub(super) fn actor(&self, user: &User) -> Actor {
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
pub(super) async fn setup(store: &dyn Store, slug: &str) -> Ctx {
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

pub(super) const STEPS: &[(&str, &str)] = &[
    ("Prepare", "Get ready"),
    ("Act", "Do the thing"),
    ("Verify", "Check the result"),
];

pub(super) fn body(
    title: &str,
    description: &str,
    category: &str,
    steps: &[(&str, &str)],
) -> RunbookBody {
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

pub(super) fn simple_body(title: &str) -> RunbookBody {
    body(title, "", "", STEPS)
}

pub(super) fn new_runbook(
    ctx: &Ctx,
    key: Key,
    body: RunbookBody,
    owner: &User,
    published: bool,
) -> Runbook {
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

pub(super) fn first_version(rb: &Runbook) -> RunbookVersion {
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
pub(super) async fn add_runbook(
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
pub(super) async fn update_runbook(
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
pub(super) async fn edit_runbook(
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
pub(super) async fn start_execution(
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
pub(super) async fn step(
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

pub(super) fn done(step: u32) -> Command {
    Command::Done { step, note: None }
}

pub(super) fn new_change(ctx: &Ctx, key: Key, title: &str) -> ChangeRequest {
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

pub(super) async fn add_change(store: &dyn Store, ctx: &Ctx, title: &str) -> ChangeRequest {
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

pub(super) fn new_incident(ctx: &Ctx, key: Key, title: &str) -> Incident {
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

pub(super) async fn add_incident(store: &dyn Store, ctx: &Ctx, title: &str) -> Incident {
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

pub(super) fn keys(rows: &[Runbook]) -> Vec<u64> {
    rows.iter().map(|r| r.key.number).collect()
}

pub(super) fn exec_keys(rows: &[Execution]) -> Vec<u64> {
    rows.iter().map(|e| e.key.number).collect()
}

pub(super) fn seqs(entries: &[AuditEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq).collect()
}
