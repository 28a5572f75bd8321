//! Runbooks, their steps and their saved versions.

pub mod approval;
pub mod diff;
pub mod file;
pub mod render;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fields::{EstMinutes, Label, MAX_STEPS, Markdown, Title, ValidationError};
use crate::ids::{Key, RunbookId, StepId, UserId, WorkspaceId};

pub use approval::{ApprovalCount, ApprovalExpiry};

/// One step of a runbook. `order` is not stored: a step's order is its 1-based position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Stable across edits, so a diff can tell a changed step from a removed one and a moved one.
    pub id: StepId,
    /// What the step does.
    pub title: Title,
    /// The instruction, markdown.
    pub description: Markdown,
    /// Which role is expected to run (and, when gated, approve) the step: a workspace role name,
    /// a team role such as `dba`, or empty.
    pub owner_role: Label,
    /// Estimated minutes.
    pub est_minutes: EstMinutes,
    /// What the operator should see when the step worked.
    pub expected_outcome: Markdown,
    /// A command or check the operator confirms.
    pub verification: Markdown,
    /// How to undo the step.
    pub rollback_note: Markdown,
    /// Done is refused until someone whose role satisfies `owner_role` approves.
    pub requires_approval: bool,
    /// How many distinct approvers a gated step needs (`approval: N`); 1 on a step without a
    /// gate. Left out of the stored document when 1, so older documents read and hash the same.
    #[serde(default, skip_serializing_if = "ApprovalCount::is_one")]
    pub approvals_required: ApprovalCount,
    /// Minutes after which each approval lapses unless the step was done first
    /// (`approval-expires: M`); `None`: approvals stand. Always `None` on a step without a gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_expires_minutes: Option<ApprovalExpiry>,
    /// Shown with a danger badge: cannot be undone trivially.
    pub is_destructive: bool,
}

impl Step {
    /// How many distinct approvals Done waits for: 0 on a step without a gate.
    pub fn approvals_needed(&self) -> u32 {
        if self.requires_approval {
            self.approvals_required.get()
        } else {
            0
        }
    }

    /// The approval policy in words, for cards and terminals: `1 approval`, `2 approvals, each
    /// lapsing after 30 min`; `None` on a step without a gate.
    pub fn approval_policy_text(&self) -> Option<String> {
        let n = self.approvals_needed();
        if n == 0 {
            return None;
        }
        let mut s = if n == 1 {
            "1 approval".to_owned()
        } else {
            format!("{n} approvals")
        };
        if let Some(m) = self.approval_expires_minutes {
            s.push_str(&format!(
                ", {} lapsing after {m} min",
                if n == 1 { "it" } else { "each" }
            ));
        }
        Some(s)
    }
}

/// Unvalidated step fields as a front end receives them; [`StepInput::validate`] turns them
/// into a [`Step`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StepInput {
    /// Keep this id to edit an existing step; `None` for a new step.
    pub id: Option<StepId>,
    /// Step title.
    pub title: String,
    /// Instruction markdown.
    pub description: String,
    /// Owner role text.
    pub owner_role: String,
    /// Estimate in minutes.
    pub est_minutes: i64,
    /// Expected outcome.
    pub expected_outcome: String,
    /// Verification command or check.
    pub verification: String,
    /// Rollback note.
    pub rollback_note: String,
    /// Approval gate.
    pub requires_approval: bool,
    /// Distinct approvers a gated step needs; 0 (unset) means 1.
    pub approvals_required: i64,
    /// Minutes after which each approval lapses; `None`: approvals stand.
    pub approval_expires_minutes: Option<i64>,
    /// Danger badge.
    pub is_destructive: bool,
}

impl StepInput {
    /// Validates every field; errors name the field as `steps[N].field` with N 1-based.
    pub fn validate(self, order: usize) -> Result<Step, ValidationError> {
        let at = format!("steps[{order}].");
        let wrap = |e: ValidationError| e.within(&at);
        let (approvals_required, approval_expires_minutes) = approval_policy(
            self.requires_approval,
            self.approvals_required,
            self.approval_expires_minutes,
        )
        .map_err(wrap)?;
        Ok(Step {
            id: self.id.unwrap_or_default(),
            title: Title::parse(self.title).map_err(wrap)?,
            description: Markdown::parse_field("description", self.description).map_err(wrap)?,
            owner_role: Label::parse_field("owner_role", self.owner_role).map_err(wrap)?,
            est_minutes: EstMinutes::new(self.est_minutes).map_err(wrap)?,
            expected_outcome: Markdown::parse_field("expected_outcome", self.expected_outcome)
                .map_err(wrap)?,
            verification: Markdown::parse_field("verification", self.verification).map_err(wrap)?,
            rollback_note: Markdown::parse_field("rollback_note", self.rollback_note)
                .map_err(wrap)?,
            requires_approval: self.requires_approval,
            approvals_required,
            approval_expires_minutes,
            is_destructive: self.is_destructive,
        })
    }
}

/// Validates an approval policy as input gives it: a count of 0 means one; a count above one
/// or an expiry needs the gate.
pub fn approval_policy(
    gated: bool,
    count: i64,
    expires: Option<i64>,
) -> Result<(ApprovalCount, Option<ApprovalExpiry>), ValidationError> {
    let count = if count == 0 {
        ApprovalCount::ONE
    } else {
        ApprovalCount::parse_field("approvals_required", count)?
    };
    let expires = expires
        .map(|m| ApprovalExpiry::parse_field("approval_expires_minutes", m))
        .transpose()?;
    if !gated && !count.is_one() {
        return Err(ValidationError::new(
            "approvals_required",
            format!(
                "asks for {count} approvers on a step without an approval gate; set requires_approval (in a file: `approval: {count}`)"
            ),
        ));
    }
    if !gated && expires.is_some() {
        return Err(ValidationError::new(
            "approval_expires_minutes",
            "applies only to a gated step; set requires_approval (in a file: `approval: required`) or remove it",
        ));
    }
    Ok((count, expires))
}

impl From<&Step> for StepInput {
    fn from(s: &Step) -> Self {
        StepInput {
            id: Some(s.id),
            title: s.title.to_string(),
            description: s.description.to_string(),
            owner_role: s.owner_role.to_string(),
            est_minutes: i64::from(s.est_minutes.get()),
            expected_outcome: s.expected_outcome.to_string(),
            verification: s.verification.to_string(),
            rollback_note: s.rollback_note.to_string(),
            requires_approval: s.requires_approval,
            approvals_required: i64::from(s.approvals_needed()),
            approval_expires_minutes: s.approval_expires_minutes.map(|m| i64::from(m.minutes())),
            is_destructive: s.is_destructive,
        }
    }
}

/// The versioned part of a runbook: what an edit changes and a version keeps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunbookBody {
    /// Title.
    pub title: Title,
    /// Markdown description.
    pub description: Markdown,
    /// Free-text category used by filters; may be empty.
    pub category: Label,
    /// The ordered steps.
    pub steps: Vec<Step>,
}

impl RunbookBody {
    /// Whether the body has no step: such a runbook can be saved as a draft, but not published
    /// or started ([`no_steps_message`]).
    pub fn has_no_steps(&self) -> bool {
        self.steps.is_empty()
    }

    /// Sum of the step estimates.
    pub fn est_total_minutes(&self) -> u64 {
        self.steps
            .iter()
            .map(|s| u64::from(s.est_minutes.get()))
            .sum()
    }
}

/// Unvalidated runbook fields as a front end receives them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunbookInput {
    /// Title.
    pub title: String,
    /// Markdown description.
    pub description: String,
    /// Category.
    pub category: String,
    /// Steps in order.
    pub steps: Vec<StepInput>,
}

impl RunbookInput {
    /// Validates every field, at most 500 steps, and unique step ids.
    pub fn validate(self) -> Result<RunbookBody, ValidationError> {
        if self.steps.len() > MAX_STEPS {
            return Err(ValidationError::new(
                "steps",
                format!(
                    "a runbook may have at most {MAX_STEPS} steps (got {})",
                    self.steps.len()
                ),
            ));
        }
        let mut steps = Vec::with_capacity(self.steps.len());
        let mut seen = std::collections::HashSet::new();
        for (i, s) in self.steps.into_iter().enumerate() {
            let step = s.validate(i + 1)?;
            if !seen.insert(step.id) {
                return Err(ValidationError::new(
                    format!("steps[{}].id", i + 1),
                    "repeats the id of an earlier step; each step appears once",
                ));
            }
            steps.push(step);
        }
        Ok(RunbookBody {
            title: Title::parse(self.title)?,
            description: Markdown::parse_field("description", self.description)?,
            category: Label::parse_field("category", self.category)?,
            steps,
        })
    }
}

impl From<&RunbookBody> for RunbookInput {
    fn from(b: &RunbookBody) -> Self {
        RunbookInput {
            title: b.title.to_string(),
            description: b.description.to_string(),
            category: b.category.to_string(),
            steps: b.steps.iter().map(StepInput::from).collect(),
        }
    }
}

/// A runbook as it stands now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runbook {
    /// Row id.
    pub id: RunbookId,
    /// The workspace it belongs to.
    pub workspace: WorkspaceId,
    /// `RB-NNNNN`, kept for ever (also when archived).
    pub key: Key,
    /// The current body.
    pub body: RunbookBody,
    /// Current version, starting at 1 and bumped by every saved edit that changes the body.
    pub version: u32,
    /// The owning user.
    pub owner: UserId,
    /// Only published runbooks can be executed for real and imported into changes.
    pub is_published: bool,
    /// Soft delete: archived runbooks leave every list but keep their key and history.
    pub archived_at: Option<DateTime<Utc>>,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
    /// Row revision, bumped on every write (also publish and archive, which keep `version`).
    pub rev: u64,
}

/// Where a saved version came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VersionSource {
    /// Version 1, created directly.
    Created,
    /// An edit through the library, the CLI or the bot.
    Edit,
    /// A Markdown file imported or synced.
    FileSync {
        /// The file name the body came from.
        file: String,
    },
    /// The implementation plan of a completed change, saved as a runbook.
    SaveAsFromChange {
        /// The change, `CR-…`.
        change: Key,
    },
    /// New estimates from the timing of real runs (`runbook stats --suggest --apply`).
    Estimates {
        /// How many executions the figures counted.
        runs: u64,
    },
}

impl std::fmt::Display for VersionSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VersionSource::Created => f.write_str("created"),
            VersionSource::Edit => f.write_str("edit"),
            VersionSource::FileSync { file } => write!(f, "file sync ({file})"),
            VersionSource::SaveAsFromChange { change } => write!(f, "save-as from {change}"),
            VersionSource::Estimates { runs } => write!(
                f,
                "estimates from {runs} run{}",
                if *runs == 1 { "" } else { "s" }
            ),
        }
    }
}

/// One saved version of a runbook's body: every version is kept, the current one included.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunbookVersion {
    /// The runbook.
    pub runbook: RunbookId,
    /// The version number.
    pub version: u32,
    /// The body as saved.
    pub body: RunbookBody,
    /// Who saved it.
    pub author: UserId,
    /// When.
    pub saved_at: DateTime<Utc>,
    /// How.
    pub source: VersionSource,
}

/// Gives steps of `new` without an id the id of the step in `old` with the same title (first
/// unused match), so a file without ids re-imports without every step looking new.
pub fn adopt_step_ids(old: &[Step], new: &mut [StepInput]) {
    let mut used: std::collections::HashSet<StepId> = new.iter().filter_map(|s| s.id).collect();
    for (pos, s) in new.iter_mut().enumerate() {
        if s.id.is_some() {
            continue;
        }
        let title = s.title.trim();
        let by_title = old
            .iter()
            .find(|o| !used.contains(&o.id) && o.title.as_str() == title);
        let by_position = old.get(pos).filter(|o| {
            !used.contains(&o.id) && {
                // Same position and the same instruction: a renamed step.
                o.description.as_str() == s.description
            }
        });
        if let Some(o) = by_title.or(by_position) {
            s.id = Some(o.id);
            used.insert(o.id);
        }
    }
}

/// Why a runbook without steps (`what`: its key, or its file) cannot be published or started,
/// and what a step looks like.
pub fn no_steps_message(what: &str) -> String {
    format!(
        "{what} has no steps, so it cannot be published or started; a step is a `## 1. Title` heading followed by its instruction (a draft without steps may still be saved)"
    )
}
