//! Runbooks: create, edit (versioned), publish, archive, list, search, history, diff.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Vigilo, Who, fmt_time};
use crate::audit::AuditLinks;
use crate::authz::{Action, Subject, Visibility};
use crate::error::{ConflictKind, Error, Result, Rule, Thing};
use crate::ids::{Key, KeyKind, RunbookId, UserId};
use crate::roles::WorkspaceRole;
use crate::runbook::diff::{RunbookDiff, diff};
use crate::runbook::{
    Runbook, RunbookInput, RunbookVersion, VersionSource, adopt_step_ids, no_steps_message,
};
use crate::store::{Commit, DraftFilter, RunbookQuery, StoreError, Write};
use crate::workspace::Actor;

/// Options for a new runbook.
#[derive(Clone, Debug)]
pub struct CreateRunbook {
    /// The owner; `None` makes the creator the owner.
    pub owner: Option<UserId>,
    /// Publish at once.
    pub publish: bool,
    /// Where the body came from (created directly, a file, a change).
    pub source: VersionSource,
}

impl Default for CreateRunbook {
    fn default() -> Self {
        Self {
            owner: None,
            publish: false,
            source: VersionSource::Created,
        }
    }
}

/// The result of a save: the runbook as it now stands, and whether the version moved.
#[derive(Clone, Debug)]
pub struct EditOutcome {
    /// The runbook after the save.
    pub runbook: Runbook,
    /// False when the save changed nothing (no version bump, no audit entry).
    pub changed: bool,
}

/// One runbook to save in [`Vigilo::save_runbooks`].
#[derive(Clone, Debug)]
pub enum RunbookSave {
    /// A new runbook.
    Create {
        /// Its body.
        input: RunbookInput,
        /// Owner, publication and source.
        options: CreateRunbook,
    },
    /// A new version of an existing runbook, and optionally its publication and owner.
    Update {
        /// The runbook.
        key: Key,
        /// The new body (unchanged: no new version).
        input: RunbookInput,
        /// Refuse unless the runbook is still at this version.
        expected_version: Option<u32>,
        /// Where the body came from.
        source: VersionSource,
        /// Publish (`true`) or unpublish (`false`) it; `None` leaves it.
        publish: Option<bool>,
        /// Hand it to this member (handle); `None` or the current owner leaves it.
        owner: Option<String>,
    },
}

/// What [`Vigilo::save_runbooks`] did to one runbook.
#[derive(Clone, Debug)]
pub struct Saved {
    /// The runbook as it now stands.
    pub runbook: Runbook,
    /// Its version before the save (`None` for a new runbook).
    pub previous_version: Option<u32>,
    /// A new runbook, or a new version of the body.
    pub changed: bool,
    /// Its owner changed.
    pub owner_changed: bool,
}

/// Which runbooks to list.
#[derive(Clone, Debug, Default)]
pub struct ListRunbooks {
    /// Only this category.
    pub category: Option<String>,
    /// Include the drafts the actor may see (their own; all for admins and the owner).
    pub drafts: bool,
    /// List archived runbooks instead (admins and the owner).
    pub archived: bool,
    /// Keyset pagination: start after this key.
    pub after: Option<Key>,
    /// At most this many (0: 100).
    pub limit: usize,
}

/// One line of a runbook's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The version.
    pub version: u32,
    /// Who saved it (handle).
    pub author: String,
    /// When.
    pub saved_at: DateTime<Utc>,
    /// How (edit, file sync, save-as from `CR-…`).
    pub source: VersionSource,
    /// The title at that version.
    pub title: String,
    /// How many steps it had.
    pub steps: usize,
}

pub(crate) fn visibility(rb: &Runbook) -> Visibility {
    match (rb.archived_at, rb.is_published) {
        (Some(_), p) => Visibility::Archived { was_published: p },
        (None, true) => Visibility::Published,
        (None, false) => Visibility::Draft,
    }
}

pub(crate) fn subject(rb: &Runbook) -> Subject {
    Subject {
        owner: Some(rb.owner),
        visibility: Some(visibility(rb)),
    }
}

fn drafts_for(actor: &Actor) -> DraftFilter {
    if actor.role() >= WorkspaceRole::Admin {
        DraftFilter::All
    } else {
        DraftFilter::OwnedBy(actor.id())
    }
}

impl Vigilo {
    /// A runbook by key, without a permission check (internal).
    pub(crate) async fn load_runbook(&self, who: &Who, key: Key) -> Result<Runbook> {
        if key.kind != KeyKind::Runbook {
            return Err(Error::wrong_key(key, "a runbook"));
        }
        self.store
            .runbook_by_key(who.workspace, key)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => Error::not_found(
                    Thing::Runbook,
                    key.to_string(),
                    format!("no runbook {key} in this workspace"),
                ),
                other => other.into(),
            })
    }

    async fn runbook_for(&self, who: &Who, key: Key, action: Action) -> Result<(Actor, Runbook)> {
        let actor = self.actor(who).await?;
        let rb = self.load_runbook(who, key).await?;
        self.check(&actor, action, &subject(&rb))?;
        Ok((actor, rb))
    }

    /// Creates a runbook at version 1 (operators and above).
    pub async fn create_runbook(
        &self,
        who: &Who,
        input: RunbookInput,
        opts: CreateRunbook,
    ) -> Result<Runbook> {
        let actor = self.actor(who).await?;
        let (commit, rb) = self.plan_create(who, &actor, input, opts).await?;
        self.store.commit(commit).await?;
        Ok(rb)
    }

    /// The commit that creates a runbook (checks, key, rows, audit entry), not yet applied.
    async fn plan_create(
        &self,
        who: &Who,
        actor: &Actor,
        input: RunbookInput,
        opts: CreateRunbook,
    ) -> Result<(Commit, Runbook)> {
        self.check(actor, Action::CreateRunbook, &Subject::NONE)?;
        let body = input.validate()?;
        if opts.publish && body.has_no_steps() {
            return Err(Error::refused(
                Rule::NoSteps,
                no_steps_message(&format!("The runbook {:?}", body.title.as_str())),
            ));
        }
        let owner = match opts.owner {
            Some(o) if o != actor.id() => {
                let m = match self.store.membership(who.workspace, o).await {
                    Ok(m) if m.is_active() => m,
                    _ => {
                        return Err(Error::not_found(
                            Thing::Member,
                            o.to_string(),
                            "the chosen owner is not a member of this workspace",
                        ));
                    }
                };
                let handle = self.handle_of(o).await;
                may_own_runbooks(&handle, &m)?;
                o
            }
            _ => actor.id(),
        };
        let key = self
            .store
            .allocate_key(who.workspace, KeyKind::Runbook)
            .await?;
        let now = self.now();
        let rb = Runbook {
            id: RunbookId::new(),
            workspace: who.workspace,
            key,
            body,
            version: 1,
            owner,
            is_published: opts.publish,
            archived_at: None,
            created_at: now,
            updated_at: now,
            rev: 1,
        };
        let version = RunbookVersion {
            runbook: rb.id,
            version: 1,
            body: rb.body.clone(),
            author: actor.id(),
            saved_at: now,
            source: opts.source.clone(),
        };
        let links = AuditLinks {
            runbook: Some(key),
            runbook_version: Some(1),
            change: match &opts.source {
                VersionSource::SaveAsFromChange { change } => Some(*change),
                _ => None,
            },
            ..Default::default()
        };
        let draft = self.draft(
            Some(actor),
            now,
            "runbook.created",
            key.to_string(),
            json!({
                "title": rb.body.title.as_str(),
                "category": rb.body.category.as_str(),
                "steps": rb.body.steps.len(),
                "published": rb.is_published,
                "source": opts.source,
            }),
            links,
        );
        let commit = Commit {
            workspace: who.workspace,
            writes: vec![
                Write::Runbook {
                    runbook: rb.clone(),
                    expected_rev: None,
                },
                Write::RunbookVersion(version),
            ],
            audit: draft,
            acting: Some(super::acting_member(actor)),
        };
        Ok((commit, rb))
    }

    /// Saves a new body. A save that changes nothing does not bump the version; a save based on
    /// a stale `expected_version` is refused with a conflict naming who saved the newer version.
    pub async fn edit_runbook(
        &self,
        who: &Who,
        key: Key,
        input: RunbookInput,
        expected_version: Option<u32>,
        source: VersionSource,
    ) -> Result<EditOutcome> {
        let (actor, rb) = self.runbook_for(who, key, Action::EditRunbook).await?;
        let Some((commit, next)) = self
            .plan_edit(who, &actor, &rb, input, expected_version, source)
            .await?
        else {
            return Ok(EditOutcome {
                runbook: rb,
                changed: false,
            });
        };
        match self.store.commit(commit).await.map_err(Error::from) {
            Ok(_) => Ok(EditOutcome {
                runbook: next,
                changed: true,
            }),
            Err(Error::Conflict(_)) => Err(self.saved_meanwhile(who, key).await),
            Err(e) => Err(e),
        }
    }

    /// A conflict naming who saved `key` while the caller was saving.
    async fn saved_meanwhile(&self, who: &Who, key: Key) -> Error {
        let now_rb = match self.load_runbook(who, key).await {
            Ok(rb) => rb,
            Err(e) => return e,
        };
        match self
            .store
            .runbook_version(who.workspace, now_rb.id, now_rb.version)
            .await
        {
            Ok(saved) => {
                let by = self.handle_of(saved.author).await;
                let message = format!(
                    "{key} was saved as version {} by {by} at {} while you were saving; reload it and save again",
                    now_rb.version,
                    fmt_time(saved.saved_at)
                );
                Error::conflict(
                    key.to_string(),
                    ConflictKind::Stale {
                        expected: None,
                        found: Some(now_rb.version),
                        by: Some(by),
                        at: Some(saved.saved_at),
                    },
                    message,
                )
            }
            Err(e) => e.into(),
        }
    }

    /// The commit that saves `input` as the next version of `rb` (permission, archive and
    /// version checks included), or `None` when the body would not change.
    async fn plan_edit(
        &self,
        who: &Who,
        actor: &Actor,
        rb: &Runbook,
        input: RunbookInput,
        expected_version: Option<u32>,
        source: VersionSource,
    ) -> Result<Option<(Commit, Runbook)>> {
        let key = rb.key;
        self.check(actor, Action::EditRunbook, &subject(rb))?;
        // Steps given without an id keep the id of the matching existing step (by title, else
        // same position and text), so a re-saved file does not look like all-new steps.
        let mut input = input;
        adopt_step_ids(&rb.body.steps, &mut input.steps);
        let body = input.validate()?;
        if rb.archived_at.is_some() {
            return Err(Error::refused(
                Rule::Archived,
                format!("{key} is archived; archived runbooks cannot be edited"),
            ));
        }
        if rb.is_published && body.has_no_steps() {
            return Err(Error::refused(
                Rule::NoSteps,
                format!(
                    "{}; unpublish it first to keep it as a draft",
                    no_steps_message(&format!("The new version of {key}"))
                ),
            ));
        }
        if let Some(expected) = expected_version
            && expected != rb.version
        {
            let saved = self
                .store
                .runbook_version(who.workspace, rb.id, rb.version)
                .await?;
            let by = self.handle_of(saved.author).await;
            let message = format!(
                "{key} is at version {} (saved by {by} at {}), but this edit was based on version {expected}; reload it, reapply the change and save again",
                rb.version,
                fmt_time(saved.saved_at)
            );
            return Err(Error::conflict(
                key.to_string(),
                ConflictKind::Stale {
                    expected: Some(expected),
                    found: Some(rb.version),
                    by: Some(by),
                    at: Some(saved.saved_at),
                },
                message,
            ));
        }
        if body == rb.body {
            return Ok(None);
        }
        let now = self.now();
        let mut next = rb.clone();
        next.body = body;
        next.version = rb.version + 1;
        next.updated_at = now;
        let version = RunbookVersion {
            runbook: rb.id,
            version: next.version,
            body: next.body.clone(),
            author: actor.id(),
            saved_at: now,
            source: source.clone(),
        };
        let change_link = match &source {
            VersionSource::SaveAsFromChange { change } => Some(*change),
            _ => None,
        };
        let d = diff(rb.version, &rb.body, next.version, &next.body);
        let draft = self.draft(
            Some(actor),
            now,
            "runbook.edited",
            key.to_string(),
            json!({
                "from_version": rb.version,
                "to_version": next.version,
                "source": source,
                "summary": d.summary,
            }),
            AuditLinks {
                runbook: Some(key),
                runbook_version: Some(next.version),
                change: change_link,
                ..Default::default()
            },
        );
        let commit = Commit {
            workspace: who.workspace,
            writes: vec![
                Write::update(&mut next, rb.rev),
                Write::RunbookVersion(version),
            ],
            audit: draft,
            acting: Some(super::acting_member(actor)),
        };
        Ok(Some((commit, next)))
    }

    /// Publishes or unpublishes (owner of the runbook, admins, the workspace owner). The version
    /// does not move: publication is not an edit of the body.
    pub async fn set_published(&self, who: &Who, key: Key, published: bool) -> Result<Runbook> {
        let (actor, rb) = self.runbook_for(who, key, Action::PublishRunbook).await?;
        match self.plan_publish(who, &actor, &rb, published)? {
            Some((commit, next)) => {
                self.store.commit(commit).await?;
                Ok(next)
            }
            None => Ok(rb),
        }
    }

    /// The commit that publishes or unpublishes `rb`, or `None` when it already is.
    fn plan_publish(
        &self,
        who: &Who,
        actor: &Actor,
        rb: &Runbook,
        published: bool,
    ) -> Result<Option<(Commit, Runbook)>> {
        let key = rb.key;
        self.check(actor, Action::PublishRunbook, &subject(rb))?;
        if rb.archived_at.is_some() {
            return Err(Error::refused(
                Rule::Archived,
                format!("{key} is archived; it cannot be published"),
            ));
        }
        if rb.is_published == published {
            return Ok(None);
        }
        if published && rb.body.has_no_steps() {
            return Err(Error::refused(
                Rule::NoSteps,
                no_steps_message(&key.to_string()),
            ));
        }
        let now = self.now();
        let mut next = rb.clone();
        next.is_published = published;
        next.updated_at = now;
        let draft = self.draft(
            Some(actor),
            now,
            if published {
                "runbook.published"
            } else {
                "runbook.unpublished"
            },
            key.to_string(),
            json!({ "version": rb.version }),
            AuditLinks {
                runbook: Some(key),
                runbook_version: Some(rb.version),
                ..Default::default()
            },
        );
        let commit = Commit {
            workspace: who.workspace,
            writes: vec![Write::update(&mut next, rb.rev)],
            audit: draft,
            acting: Some(super::acting_member(actor)),
        };
        Ok(Some((commit, next)))
    }

    /// Hands a runbook to another member (by handle): the runbook's owner, admins and the
    /// workspace owner may. Ownership is metadata, not the body, so the version does not move;
    /// the audit entry names the previous and the new owner.
    pub async fn set_runbook_owner(&self, who: &Who, key: Key, new_owner: &str) -> Result<Runbook> {
        let (actor, rb) = self.runbook_for(who, key, Action::EditRunbook).await?;
        match self.plan_owner(who, &actor, &rb, new_owner).await? {
            Some((commit, next)) => {
                self.store.commit(commit).await?;
                Ok(next)
            }
            None => Ok(rb),
        }
    }

    /// The commit that hands `rb` to the member `new_owner`, or `None` when they own it.
    async fn plan_owner(
        &self,
        who: &Who,
        actor: &Actor,
        rb: &Runbook,
        new_owner: &str,
    ) -> Result<Option<(Commit, Runbook)>> {
        let key = rb.key;
        self.check(actor, Action::EditRunbook, &subject(rb))?;
        if rb.archived_at.is_some() {
            return Err(Error::refused(
                Rule::Archived,
                format!("{key} is archived; its owner cannot change"),
            ));
        }
        let (user, m) = self.member(who.workspace, new_owner).await?;
        if rb.owner == user.id {
            return Ok(None);
        }
        may_own_runbooks(&format!("@{}", user.handle), &m)?;
        let previous = self.handle_of(rb.owner).await;
        let now = self.now();
        let mut next = rb.clone();
        next.owner = user.id;
        next.updated_at = now;
        let draft = self.draft(
            Some(actor),
            now,
            "runbook.owner_changed",
            key.to_string(),
            json!({ "from": previous, "to": format!("@{}", user.handle), "version": rb.version }),
            AuditLinks {
                runbook: Some(key),
                runbook_version: Some(rb.version),
                ..Default::default()
            },
        );
        let commit = Commit {
            workspace: who.workspace,
            writes: vec![Write::update(&mut next, rb.rev)],
            audit: draft,
            acting: Some(super::acting_member(actor)),
        };
        Ok(Some((commit, next)))
    }

    /// Saves several runbooks as one: creations, new versions, publication and owner changes,
    /// every one checked first, then committed together — all of them, or (on any refusal,
    /// conflict or storage failure) none. This is what a folder sync needs: it must never be
    /// left half-applied.
    pub async fn save_runbooks(&self, who: &Who, saves: Vec<RunbookSave>) -> Result<Vec<Saved>> {
        let actor = self.actor(who).await?;
        let mut commits = Vec::new();
        let mut saved = Vec::with_capacity(saves.len());
        for save in saves {
            match save {
                RunbookSave::Create { input, options } => {
                    let (commit, rb) = self.plan_create(who, &actor, input, options).await?;
                    commits.push(commit);
                    saved.push(Saved {
                        runbook: rb,
                        previous_version: None,
                        changed: true,
                        owner_changed: false,
                    });
                }
                RunbookSave::Update {
                    key,
                    input,
                    expected_version,
                    source,
                    publish,
                    owner,
                } => {
                    let rb = self.load_runbook(who, key).await?;
                    let previous_version = rb.version;
                    let mut current = rb;
                    let mut changed = false;
                    if let Some((commit, next)) = self
                        .plan_edit(who, &actor, &current, input, expected_version, source)
                        .await?
                    {
                        commits.push(commit);
                        current = next;
                        changed = true;
                    }
                    if let Some(want) = publish
                        && let Some((commit, next)) =
                            self.plan_publish(who, &actor, &current, want)?
                    {
                        commits.push(commit);
                        current = next;
                    }
                    let mut owner_changed = false;
                    if let Some(handle) = owner
                        && let Some((commit, next)) =
                            self.plan_owner(who, &actor, &current, &handle).await?
                    {
                        commits.push(commit);
                        current = next;
                        owner_changed = true;
                    }
                    saved.push(Saved {
                        runbook: current,
                        previous_version: Some(previous_version),
                        changed,
                        owner_changed,
                    });
                }
            }
        }
        match self.store.commit_all(commits).await {
            Ok(entries) => {
                tracing::debug!(workspace = %who.workspace, entries = entries.len(), "saved runbooks");
                Ok(saved)
            }
            Err(StoreError::Conflict(m)) => {
                let message = format!(
                    "a runbook was changed by someone else while saving ({m}); nothing was saved; try the same again"
                );
                Err(Error::conflict(m, ConflictKind::Concurrent, message))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Archives (soft-deletes) a runbook (admins and the owner). It keeps its key and history.
    pub async fn archive_runbook(&self, who: &Who, key: Key) -> Result<Runbook> {
        let (actor, rb) = self.runbook_for(who, key, Action::ArchiveRunbook).await?;
        if rb.archived_at.is_some() {
            return Err(Error::refused(
                Rule::Archived,
                format!("{key} is already archived"),
            ));
        }
        let now = self.now();
        let mut next = rb.clone();
        next.archived_at = Some(now);
        next.updated_at = now;
        let draft = self.draft(
            Some(&actor),
            now,
            "runbook.archived",
            key.to_string(),
            json!({ "version": rb.version }),
            AuditLinks {
                runbook: Some(key),
                ..Default::default()
            },
        );
        self.commit(&actor, vec![Write::update(&mut next, rb.rev)], draft)
            .await?;
        Ok(next)
    }

    /// A runbook the actor may see.
    pub async fn runbook(&self, who: &Who, key: Key) -> Result<Runbook> {
        Ok(self.runbook_for(who, key, Action::ViewRunbook).await?.1)
    }

    /// One saved version of a runbook the actor may see.
    pub async fn runbook_version(
        &self,
        who: &Who,
        key: Key,
        version: u32,
    ) -> Result<RunbookVersion> {
        let (_, rb) = self.runbook_for(who, key, Action::ViewRunbook).await?;
        self.store
            .runbook_version(who.workspace, rb.id, version)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => Error::not_found(
                    Thing::RunbookVersion,
                    format!("{key} v{version}"),
                    format!(
                        "{key} has no version {version}; its versions are 1 to {}",
                        rb.version
                    ),
                ),
                other => other.into(),
            })
    }

    /// Lists runbooks: published ones, plus the drafts the actor may see when asked.
    pub async fn list_runbooks(&self, who: &Who, list: ListRunbooks) -> Result<Vec<Runbook>> {
        let actor = self.actor(who).await?;
        if list.archived {
            self.check(&actor, Action::ArchiveRunbook, &Subject::NONE)
                .map_err(|e| match e {
                    Error::Denied(mut d) => {
                        d.doing = "listing archived runbooks";
                        Error::Denied(d)
                    }
                    other => other,
                })?;
        }
        let query = RunbookQuery {
            category: list.category.filter(|c| !c.trim().is_empty()),
            drafts: if list.drafts || list.archived {
                drafts_for(&actor)
            } else {
                DraftFilter::None
            },
            archived: list.archived,
            after_number: list.after.map(|k| k.number),
            limit: list.limit,
        };
        Ok(self.store.list_runbooks(who.workspace, &query).await?)
    }

    /// Full-text search over titles, descriptions and step text; drafts the actor may see are
    /// included, archived runbooks are not.
    pub async fn search_runbooks(
        &self,
        who: &Who,
        words: &str,
        limit: usize,
    ) -> Result<Vec<Runbook>> {
        let actor = self.actor(who).await?;
        if words.trim().is_empty() {
            return Err(Error::refused(
                Rule::EmptySearch,
                "give at least one word to search for",
            ));
        }
        if words.len() > 1024 {
            return Err(
                crate::fields::ValidationError::new("words", "must be at most 1024 bytes").into(),
            );
        }
        let limit = if limit == 0 { 20 } else { limit.min(500) };
        Ok(self
            .store
            .search_runbooks(who.workspace, words, drafts_for(&actor), limit)
            .await?)
    }

    /// Every version of a runbook with author, time and source (lineage: which change produced
    /// which version).
    pub async fn runbook_history(&self, who: &Who, key: Key) -> Result<Vec<VersionInfo>> {
        let (_, rb) = self.runbook_for(who, key, Action::ViewRunbook).await?;
        let versions = self.store.runbook_versions(who.workspace, rb.id).await?;
        let mut out = Vec::with_capacity(versions.len());
        for v in versions {
            out.push(VersionInfo {
                version: v.version,
                author: self
                    .handle_of(v.author)
                    .await
                    .trim_start_matches('@')
                    .to_owned(),
                saved_at: v.saved_at,
                source: v.source,
                title: v.body.title.to_string(),
                steps: v.body.steps.len(),
            });
        }
        Ok(out)
    }

    /// The step-level diff between two versions (either may be the current one).
    pub async fn diff_runbook(
        &self,
        who: &Who,
        key: Key,
        from: u32,
        to: u32,
    ) -> Result<RunbookDiff> {
        let a = self.runbook_version(who, key, from).await?;
        let b = self.runbook_version(who, key, to).await?;
        Ok(diff(from, &a.body, to, &b.body))
    }
}

/// Refuses an owner who may not own runbooks ([`Action::OwnRunbook`], checked on the person
/// named): a runbook's owner may edit and publish it.
fn may_own_runbooks(handle: &str, m: &crate::workspace::Membership) -> Result<()> {
    crate::authz::authorize(m.user, m.role, Action::OwnRunbook, &Subject::NONE).map_err(|_| {
        Error::refused(
            Rule::MemberCannotOwn,
            format!(
                "{handle} is a {} and cannot own runbooks; a runbook's owner must be an operator, admin or owner",
                m.role.as_str()
            ),
        )
    })
}
