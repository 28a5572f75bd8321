//! Change requests: create, plan edits, import / re-import / clear source, status moves with the
//! execution gate, save as runbook.

use serde::Serialize;
use serde_json::json;

use super::{Vigilo, Who};
use crate::audit::AuditLinks;
use crate::authz::{Action, Subject};
use crate::change::{self, ChangeAction, ChangeError, ChangeRequest, ChangeStatus};
use crate::error::{Error, Result, Rule, Thing};
use crate::fields::{Markdown, Title};
use crate::ids::{ChangeId, Key, KeyKind};
use crate::runbook::{Runbook, RunbookInput, VersionSource, adopt_step_ids};
use crate::store::{StoreError, Write};
use crate::workspace::Actor;

use super::runbooks::CreateRunbook;

/// A change with its source banner: the runbook it came from and whether a newer version exists.
#[derive(Clone, Debug, Serialize)]
pub struct ChangeView {
    /// The change.
    pub change: ChangeRequest,
    /// The source runbook's current version when it moved past the imported one.
    pub newer_version_available: Option<u32>,
}

/// Where save-as-runbook writes the plan.
#[derive(Clone, Debug)]
pub enum SaveAs {
    /// A new runbook (a draft owned by the actor).
    New {
        /// Its title.
        title: String,
        /// Its category.
        category: String,
    },
    /// A new version of an existing published runbook.
    Into {
        /// The runbook.
        runbook: Key,
    },
}

impl Vigilo {
    pub(crate) async fn load_change(&self, who: &Who, key: Key) -> Result<ChangeRequest> {
        if key.kind != KeyKind::Change {
            return Err(Error::wrong_key(key, "a change"));
        }
        self.store
            .change_by_key(who.workspace, key)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => Error::not_found(
                    Thing::Change,
                    key.to_string(),
                    format!("no change {key} in this workspace"),
                ),
                other => other.into(),
            })
    }

    async fn change_for(
        &self,
        who: &Who,
        key: Key,
        action: Action,
    ) -> Result<(Actor, ChangeRequest)> {
        let actor = self.actor(who).await?;
        let c = self.load_change(who, key).await?;
        self.check(
            &actor,
            action,
            &Subject {
                owner: Some(c.owner),
                visibility: None,
            },
        )?;
        Ok((actor, c))
    }

    async fn save_change(
        &self,
        actor: &Actor,
        old: &ChangeRequest,
        mut next: ChangeRequest,
        (action, details, runbook): (&str, serde_json::Value, Option<(Key, u32)>),
    ) -> Result<ChangeRequest> {
        let now = self.now();
        next.updated_at = now;
        let draft = self.draft(
            Some(actor),
            now,
            action,
            old.key.to_string(),
            details,
            AuditLinks {
                change: Some(old.key),
                runbook: runbook.map(|r| r.0),
                runbook_version: runbook.map(|r| r.1),
                ..Default::default()
            },
        );
        self.commit(actor, vec![Write::update(&mut next, old.rev)], draft)
            .await?;
        Ok(next)
    }

    /// Creates a change request in `draft` (operators and above).
    pub async fn create_change(
        &self,
        who: &Who,
        title: &str,
        description: &str,
    ) -> Result<ChangeRequest> {
        let actor = self.actor(who).await?;
        self.check(&actor, Action::CreateChange, &Subject::NONE)?;
        let title = Title::parse(title)?;
        let description = Markdown::parse_field("description", description)?;
        let key = self
            .store
            .allocate_key(who.workspace, KeyKind::Change)
            .await?;
        let now = self.now();
        let c = ChangeRequest {
            id: ChangeId::new(),
            workspace: who.workspace,
            key,
            title,
            description,
            owner: actor.id(),
            status: ChangeStatus::Draft,
            tasks: Vec::new(),
            source: None,
            created_at: now,
            updated_at: now,
            rev: 1,
        };
        let draft = self.draft(
            Some(&actor),
            now,
            "change.created",
            key.to_string(),
            json!({ "title": c.title.as_str() }),
            AuditLinks {
                change: Some(key),
                ..Default::default()
            },
        );
        self.commit(
            &actor,
            vec![Write::Change {
                change: c.clone(),
                expected_rev: None,
            }],
            draft,
        )
        .await?;
        Ok(c)
    }

    /// A change with its source banner (any member).
    pub async fn change(&self, who: &Who, key: Key) -> Result<ChangeView> {
        self.actor(who).await?;
        let c = self.load_change(who, key).await?;
        let newer = match &c.source {
            Some(src) => match self.store.runbook(who.workspace, src.runbook).await {
                Ok(rb) => change::newer_version_available(&c, Some(&rb)).then_some(rb.version),
                Err(StoreError::NotFound(_)) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        Ok(ChangeView {
            change: c,
            newer_version_available: newer,
        })
    }

    /// Every change (any member).
    pub async fn list_changes(&self, who: &Who) -> Result<Vec<ChangeRequest>> {
        self.actor(who).await?;
        Ok(self.store.list_changes(who.workspace).await?)
    }

    /// Copies a published runbook's steps into the plan and records the source.
    pub async fn import_into_change(
        &self,
        who: &Who,
        change_key: Key,
        runbook: Key,
    ) -> Result<ChangeRequest> {
        let (actor, c) = self.change_for(who, change_key, Action::EditChange).await?;
        let rb = self.load_runbook(who, runbook).await?;
        self.import_runbook_into(&actor, &c, &rb, "change.plan_imported")
            .await
    }

    async fn import_runbook_into(
        &self,
        actor: &Actor,
        c: &ChangeRequest,
        rb: &Runbook,
        action: &str,
    ) -> Result<ChangeRequest> {
        let next = change::import_runbook(c, rb)?;
        self.save_change(
            actor,
            c,
            next,
            (
                action,
                json!({ "runbook": rb.key, "version": rb.version, "tasks": rb.body.steps.len() }),
                Some((rb.key, rb.version)),
            ),
        )
        .await
    }

    /// Re-imports the newest version of the plan's source runbook.
    pub async fn reimport_change(&self, who: &Who, change_key: Key) -> Result<ChangeRequest> {
        let (actor, c) = self.change_for(who, change_key, Action::EditChange).await?;
        let Some(src) = &c.source else {
            return Err(ChangeError::NoSource { key: c.key }.into());
        };
        let rb = self.store.runbook(who.workspace, src.runbook).await?;
        self.import_runbook_into(&actor, &c, &rb, "change.plan_reimported")
            .await
    }

    /// Removes the link to the source runbook deliberately; the tasks stay.
    pub async fn clear_change_source(&self, who: &Who, change_key: Key) -> Result<ChangeRequest> {
        let (actor, c) = self.change_for(who, change_key, Action::EditChange).await?;
        let Some(src) = c.source.clone() else {
            return Ok(c);
        };
        let next = change::clear_source(&c)?;
        self.save_change(
            &actor,
            &c,
            next,
            (
                "change.source_cleared",
                json!({ "runbook": src.key, "version": src.version }),
                Some((src.key, src.version)),
            ),
        )
        .await
    }

    /// Adds a task at position `at` (1-based; `None` appends).
    pub async fn add_change_task(
        &self,
        who: &Who,
        change_key: Key,
        task: crate::runbook::StepInput,
        at: Option<usize>,
    ) -> Result<ChangeRequest> {
        let (actor, c) = self.change_for(who, change_key, Action::EditChange).await?;
        let next = change::add_task(&c, task, at)?;
        let n = at.unwrap_or(next.tasks.len());
        self.save_change(
            &actor,
            &c,
            next,
            ("change.task_added", json!({ "task": n }), None),
        )
        .await
    }

    /// Replaces task `n` (1-based).
    pub async fn edit_change_task(
        &self,
        who: &Who,
        change_key: Key,
        n: usize,
        task: crate::runbook::StepInput,
    ) -> Result<ChangeRequest> {
        let (actor, c) = self.change_for(who, change_key, Action::EditChange).await?;
        let next = change::edit_task(&c, n, task)?;
        if next.tasks == c.tasks {
            return Ok(c);
        }
        self.save_change(
            &actor,
            &c,
            next,
            ("change.task_edited", json!({ "task": n }), None),
        )
        .await
    }

    /// Removes task `n` (1-based).
    pub async fn remove_change_task(
        &self,
        who: &Who,
        change_key: Key,
        n: usize,
    ) -> Result<ChangeRequest> {
        let (actor, c) = self.change_for(who, change_key, Action::EditChange).await?;
        let next = change::remove_task(&c, n)?;
        self.save_change(
            &actor,
            &c,
            next,
            ("change.task_removed", json!({ "task": n }), None),
        )
        .await
    }

    /// Moves a change: approve (admins, the owner), start (gated on a live execution when the
    /// plan came from a runbook), complete, cancel (the change's owner, admins, the owner).
    pub async fn move_change(
        &self,
        who: &Who,
        change_key: Key,
        action: ChangeAction,
    ) -> Result<ChangeRequest> {
        let needed = if action == ChangeAction::Approve {
            Action::ApproveChange
        } else {
            Action::MoveChange
        };
        let (actor, c) = self.change_for(who, change_key, needed).await?;
        let status = change::transition(&c, action)?;
        if action == ChangeAction::Start && !self.change_gate_open(who, &c).await? {
            let runbook = c.source.as_ref().map(|s| s.key).unwrap_or(c.key);
            return Err(ChangeError::NeedsExecution {
                key: c.key,
                runbook,
            }
            .into());
        }
        let mut next = c.clone();
        next.status = status;
        self.save_change(
            &actor,
            &c,
            next,
            (
                &format!("change.{}", status.as_str()),
                json!({ "from": c.status.as_str(), "to": status.as_str() }),
                c.source.as_ref().map(|s| (s.key, s.version)),
            ),
        )
        .await
    }

    /// Saves a completed change's plan as a new runbook or a new version of a published one.
    /// The audit entry links both the change and the runbook, so lineage is queryable.
    pub async fn save_change_as_runbook(
        &self,
        who: &Who,
        change_key: Key,
        to: SaveAs,
    ) -> Result<Runbook> {
        let (actor, c) = self
            .change_for(who, change_key, Action::SaveChangeAsRunbook)
            .await?;
        let source = VersionSource::SaveAsFromChange { change: c.key };
        match to {
            SaveAs::New { title, category } => {
                let input =
                    change::plan_as_runbook(&c, title, c.description.to_string(), category)?;
                // The creation is recorded as `runbook.created` linking the change; the change
                // itself does not move, so that one audit entry is the whole state change.
                let mut actor_who = *who;
                actor_who.user = actor.id();
                self.create_runbook(
                    &actor_who,
                    input,
                    CreateRunbook {
                        owner: None,
                        publish: false,
                        source,
                    },
                )
                .await
                .map_err(|e| match e {
                    // Creating needs operator; the table lets the change's owner save-as.
                    Error::Denied(mut d) if d.action == Action::CreateRunbook => {
                        d.doing = "saving a change's plan as a new runbook (creating a runbook)";
                        Error::Denied(d)
                    }
                    other => other,
                })
            }
            SaveAs::Into { runbook } => {
                let rb = self.load_runbook(who, runbook).await?;
                if rb.archived_at.is_some() {
                    return Err(ChangeError::Archived { runbook }.into());
                }
                if !rb.is_published {
                    return Err(ChangeError::IntoDraft { runbook }.into());
                }
                let mut input: RunbookInput = change::plan_as_runbook(
                    &c,
                    rb.body.title.to_string(),
                    rb.body.description.to_string(),
                    rb.body.category.to_string(),
                )?;
                // Steps copied from this runbook keep their ids; others are matched by title.
                let own: std::collections::HashSet<_> =
                    rb.body.steps.iter().map(|s| s.id).collect();
                for s in &mut input.steps {
                    if s.id.is_some_and(|id| !own.contains(&id)) {
                        s.id = None;
                    }
                }
                adopt_step_ids(&rb.body.steps, &mut input.steps);
                self.save_plan_into(&actor, &rb, input, source).await
            }
        }
    }

    async fn save_plan_into(
        &self,
        actor: &Actor,
        rb: &Runbook,
        input: RunbookInput,
        source: VersionSource,
    ) -> Result<Runbook> {
        // The table grants save-as to the change's owner: the edit is made in their name
        // without the runbook-owner check, recorded as `runbook.edited` linking the change.
        let body = input.validate()?;
        let VersionSource::SaveAsFromChange { change } = &source else {
            return Err(Error::refused(Rule::Input, "save-as needs a change"));
        };
        if body == rb.body {
            // Nothing to save and nothing to record: say so rather than report a save.
            return Err(Error::refused(
                Rule::NoChange,
                format!(
                    "the plan of {change} is the same as {} v{}; nothing changed and nothing was recorded",
                    rb.key, rb.version
                ),
            ));
        }
        let now = self.now();
        let mut next = rb.clone();
        next.body = body;
        next.version = rb.version + 1;
        next.updated_at = now;
        let version = crate::runbook::RunbookVersion {
            runbook: rb.id,
            version: next.version,
            body: next.body.clone(),
            author: actor.id(),
            saved_at: now,
            source: source.clone(),
        };
        let draft = self.draft(
            Some(actor),
            now,
            "change.saved_as_runbook",
            change.to_string(),
            json!({ "runbook": rb.key, "from_version": rb.version, "to_version": next.version }),
            AuditLinks {
                change: Some(*change),
                runbook: Some(rb.key),
                runbook_version: Some(next.version),
                ..Default::default()
            },
        );
        self.commit(
            actor,
            vec![
                Write::update(&mut next, rb.rev),
                Write::RunbookVersion(version),
            ],
            draft,
        )
        .await?;
        Ok(next)
    }
}
