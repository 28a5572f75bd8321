//! The permission table of the product page, enforced in one pure function.
//!
//! | Action | Roles |
//! |---|---|
//! | View published runbooks | All workspace members |
//! | View drafts | Owner of the runbook, Admin, Owner |
//! | Create runbook | Operator, Admin, Owner |
//! | Edit runbook (bumps version) | Owner of the runbook, Admin, Workspace Owner |
//! | Publish / unpublish | Owner of the runbook, Admin, Workspace Owner |
//! | Execute runbook | Operator, Admin, Owner |
//! | Save change plan back as runbook | Owner of the change, Admin, Workspace Owner |
//! | Archive runbook | Admin, Owner |
//!
//! Vigilo adds, for people: adding members, changing ranks and team roles, removing members and
//! linking chat teams is for admins and the owner ([`Action::ManageMembers`]); granting, taking
//! or removing the owner rank is for the owner ([`Action::ManageOwners`]); owning a runbook is
//! for operators and above ([`Action::OwnRunbook`], checked on the person named as owner).
//!
//! Vigilo's additions (readings of what the page leaves open) are listed on [`Action`]; for
//! running together:
//!
//! | Action | Roles |
//! |---|---|
//! | Act on an execution's steps (done, skip, fail, retry, abort, note) | Its operator at that moment, Operator, Admin, Owner |
//! | Hand an execution over | Its operator at that moment, Admin, Owner (to a member who may execute runbooks) |
//! | Take an execution over | Admin, Owner |

use std::fmt;

use crate::ids::UserId;
use crate::roles::WorkspaceRole;

/// Something a member may try to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// See a runbook (published: every member; draft: its owner, admin, owner).
    ViewRunbook,
    /// Create a runbook: operator and above.
    CreateRunbook,
    /// Edit a runbook: its owner, admin, owner.
    EditRunbook,
    /// Publish or unpublish: its owner, admin, owner.
    PublishRunbook,
    /// Archive: admin, owner.
    ArchiveRunbook,
    /// Execute for real: operator and above.
    ExecuteRunbook,
    /// A rehearsal: anyone who may view the runbook (drafts included).
    RehearseRunbook,
    /// Done / skip / fail / retry / abort / note on an execution: operator and above, or the
    /// execution's operator at that moment (so a member's rehearsal can be walked by that
    /// member; after a hand-over, the new operator).
    ActOnExecution,
    /// Hand an execution to another member: its operator at that moment, admin, owner. (The
    /// member receiving it must be allowed to execute runbooks — or, for a rehearsal, be a
    /// member: checked by the service on that member.)
    HandOverExecution,
    /// Take an execution over (become its operator): admin, owner.
    TakeOverExecution,
    /// Create a change request: operator and above.
    CreateChange,
    /// Edit a change's plan (import, re-import, clear source, tasks): its owner, admin, owner.
    EditChange,
    /// Approve a change (draft → approved): admin, owner.
    ApproveChange,
    /// Start, complete or cancel a change: its owner, admin, owner.
    MoveChange,
    /// Save a completed change's plan as a runbook: its owner, admin, owner.
    SaveChangeAsRunbook,
    /// Declare an incident: every member.
    CreateIncident,
    /// Resolve an incident: operator and above.
    ResolveIncident,
    /// Add, change and remove members, link chat teams: admin, owner.
    ManageMembers,
    /// Grant, take or remove the owner rank: the workspace owner only.
    ManageOwners,
    /// Be named a runbook's owner (who may then edit and publish it): operator and above.
    OwnRunbook,
    /// Read the audit trail: every member (transparency is the point of an audit trail).
    ViewAudit,
}

impl Action {
    /// Every action, for exhaustive tests.
    pub const ALL: [Action; 21] = [
        Action::ViewRunbook,
        Action::CreateRunbook,
        Action::EditRunbook,
        Action::PublishRunbook,
        Action::ArchiveRunbook,
        Action::ExecuteRunbook,
        Action::RehearseRunbook,
        Action::ActOnExecution,
        Action::HandOverExecution,
        Action::TakeOverExecution,
        Action::CreateChange,
        Action::EditChange,
        Action::ApproveChange,
        Action::MoveChange,
        Action::SaveChangeAsRunbook,
        Action::CreateIncident,
        Action::ResolveIncident,
        Action::ManageMembers,
        Action::ManageOwners,
        Action::OwnRunbook,
        Action::ViewAudit,
    ];

    /// How the action reads in a denial ("editing a runbook").
    pub fn gerund(self) -> &'static str {
        match self {
            Action::ViewRunbook => "viewing this runbook",
            Action::CreateRunbook => "creating a runbook",
            Action::EditRunbook => "editing this runbook",
            Action::PublishRunbook => "publishing or unpublishing this runbook",
            Action::ArchiveRunbook => "archiving a runbook",
            Action::ExecuteRunbook => "executing a runbook",
            Action::RehearseRunbook => "rehearsing this runbook",
            Action::ActOnExecution => "acting on this execution",
            Action::HandOverExecution => "handing this execution over",
            Action::TakeOverExecution => "taking an execution over",
            Action::CreateChange => "creating a change",
            Action::EditChange => "editing this change's plan",
            Action::ApproveChange => "approving a change",
            Action::MoveChange => "moving this change",
            Action::SaveChangeAsRunbook => "saving this change's plan as a runbook",
            Action::CreateIncident => "declaring an incident",
            Action::ResolveIncident => "resolving an incident",
            Action::ManageMembers => "managing members",
            Action::ManageOwners => "granting, taking or removing the owner rank",
            Action::OwnRunbook => "owning a runbook",
            Action::ViewAudit => "reading the audit trail",
        }
    }
}

/// The publication state of a runbook, as far as permissions care.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Visibility {
    /// Published, not archived.
    Published,
    /// Draft, not archived.
    Draft,
    /// Archived (soft-deleted); `was_published` tells who could see it before.
    Archived {
        /// Whether it was published when archived.
        was_published: bool,
    },
}

/// The facts about the thing acted on that the table needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subject {
    /// The owner of the runbook or change, or the operator of the execution.
    pub owner: Option<UserId>,
    /// For runbooks: published, draft or archived.
    pub visibility: Option<Visibility>,
}

impl Subject {
    /// A subject with no owner and no visibility (workspace-level actions).
    pub const NONE: Subject = Subject {
        owner: None,
        visibility: None,
    };
}

/// A refusal by the permission table, naming who would be allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{doing} needs {allowed}; you are {role}")]
#[non_exhaustive]
pub struct Denied {
    /// What was attempted.
    pub action: Action,
    /// The actor's workspace role.
    pub actor_role: WorkspaceRole,
    /// What was attempted, as a gerund ([`Action::gerund`], or a more precise phrase).
    pub doing: &'static str,
    /// Who may do it, e.g. `the owner of the runbook, an admin or the workspace owner`.
    pub allowed: &'static str,
    /// The actor's role (and "not the owner" when ownership was the question).
    pub role: String,
}

enum Rule {
    AnyMember,
    AtLeast(WorkspaceRole),
    OwnerOrAdmin,
}

impl Rule {
    fn allowed(&self, what: &'static str) -> &'static str {
        match self {
            Rule::AnyMember => "any workspace member",
            Rule::AtLeast(WorkspaceRole::Operator) => {
                "an operator, an admin or the workspace owner"
            }
            Rule::AtLeast(WorkspaceRole::Admin) => "an admin or the workspace owner",
            Rule::AtLeast(WorkspaceRole::Owner) => "the workspace owner",
            Rule::AtLeast(WorkspaceRole::Member) => "any workspace member",
            Rule::OwnerOrAdmin => what,
        }
    }
}

fn rule_for(action: Action, subject: &Subject) -> (Rule, &'static str) {
    use Action as A;
    let runbook_owner = "the owner of the runbook, an admin or the workspace owner";
    let change_owner = "the owner of the change, an admin or the workspace owner";
    let draft_like = matches!(
        subject.visibility,
        Some(Visibility::Draft)
            | Some(Visibility::Archived {
                was_published: false
            })
    );
    match action {
        A::ViewRunbook | A::RehearseRunbook if draft_like => (Rule::OwnerOrAdmin, runbook_owner),
        A::ViewRunbook | A::RehearseRunbook => (Rule::AnyMember, ""),
        A::CreateRunbook
        | A::ExecuteRunbook
        | A::CreateChange
        | A::ResolveIncident
        | A::OwnRunbook => (Rule::AtLeast(WorkspaceRole::Operator), ""),
        A::EditRunbook | A::PublishRunbook => (Rule::OwnerOrAdmin, runbook_owner),
        A::ArchiveRunbook | A::ApproveChange | A::ManageMembers | A::TakeOverExecution => {
            (Rule::AtLeast(WorkspaceRole::Admin), "")
        }
        A::ActOnExecution => (
            Rule::OwnerOrAdmin,
            "the execution's operator, an operator, an admin or the workspace owner",
        ),
        A::HandOverExecution => (
            Rule::OwnerOrAdmin,
            "the execution's operator, an admin or the workspace owner",
        ),
        A::EditChange | A::MoveChange | A::SaveChangeAsRunbook => {
            (Rule::OwnerOrAdmin, change_owner)
        }
        A::ManageOwners => (Rule::AtLeast(WorkspaceRole::Owner), ""),
        A::CreateIncident | A::ViewAudit => (Rule::AnyMember, ""),
    }
}

/// Decides whether a member with `role` (user `actor`) may take `action` on `subject`.
pub fn authorize(
    actor: UserId,
    role: WorkspaceRole,
    action: Action,
    subject: &Subject,
) -> Result<(), Denied> {
    let (rule, owner_text) = rule_for(action, subject);
    let is_owner = subject.owner == Some(actor);
    let ok = match rule {
        Rule::AnyMember => true,
        Rule::AtLeast(min) => role >= min,
        Rule::OwnerOrAdmin => {
            let floor = if action == Action::ActOnExecution {
                WorkspaceRole::Operator
            } else {
                WorkspaceRole::Admin
            };
            is_owner || role >= floor
        }
    };
    if ok {
        return Ok(());
    }
    let mut role_text = role.to_string();
    if matches!(rule, Rule::OwnerOrAdmin) {
        role_text.push_str(" and not the owner");
    }
    Err(Denied {
        action,
        actor_role: role,
        doing: action.gerund(),
        allowed: rule.allowed(owner_text),
        role: role_text,
    })
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Visibility::Published => f.write_str("published"),
            Visibility::Draft => f.write_str("draft"),
            Visibility::Archived { .. } => f.write_str("archived"),
        }
    }
}
