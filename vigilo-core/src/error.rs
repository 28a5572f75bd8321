//! The error every [`crate::service::Vigilo`] method returns: typed facts a program can match
//! on (who may, who acted first, which rule, which key), a kind a front end can map to an exit
//! code or an HTTP status, and a message for any reader that names no surface's commands.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::authz::Denied;
use crate::change::ChangeError;
use crate::execution::ExecError;
use crate::fields::ValidationError;
use crate::ids::{Key, KeyError};
use crate::store::StoreError;

/// The class of an error, stable for scripts (`--json` prints it as `kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No such thing in this workspace (CLI exit 3).
    NotFound,
    /// The permission table says no (exit 4).
    Denied,
    /// Someone else acted first, or a value is taken (exit 5).
    Conflict,
    /// A rule refuses it, or an input broke a limit (exit 6).
    Refused,
    /// The audit trail was found edited outside Vigilo (exit 7).
    Tampered,
    /// Storage failed (exit 1).
    Internal,
}

impl ErrorKind {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Denied => "denied",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Refused => "refused",
            ErrorKind::Tampered => "tampered",
            ErrorKind::Internal => "internal",
        }
    }
}

/// What was not found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Thing {
    /// A workspace (by slug).
    Workspace,
    /// A user (by handle), anywhere.
    User,
    /// A member of this workspace (by handle).
    Member,
    /// A runbook (by key).
    Runbook,
    /// A version of a runbook (`RB-00001 v3`).
    RunbookVersion,
    /// An execution (by key).
    Execution,
    /// A step of an execution.
    Step,
    /// A change request (by key).
    Change,
    /// A task of a change's plan.
    Task,
    /// An incident (by key).
    Incident,
    /// A chat identity (platform user id) mapped to no member.
    ChatIdentity,
    /// A Slack team linked to no workspace.
    SlackTeam,
    /// A key of the wrong kind or form (`CR-00001` where an execution key was expected).
    Key,
    /// Something else the store could not find.
    Other,
}

/// Something named was not found (or exists only in another workspace, which is the same
/// thing to the caller).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NotFound {
    /// What kind of thing.
    pub thing: Thing,
    /// The name given: a key, a handle, a slug, a chat user id.
    pub name: String,
    message: String,
}

impl NotFound {
    /// A `thing` named `name`, described by `message` (a sentence for any reader).
    pub fn new(thing: Thing, name: impl Into<String>, message: impl Into<String>) -> Self {
        NotFound {
            thing,
            name: name.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Why two writes collided.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConflictKind {
    /// The edit was based on a version that is no longer current.
    Stale {
        /// The version the edit was based on, when known.
        expected: Option<u32>,
        /// The version found, when known.
        found: Option<u32>,
        /// The handle of who saved the version found, when known.
        by: Option<String>,
        /// When it was saved.
        at: Option<DateTime<Utc>>,
    },
    /// The value is taken (a slug, a handle's membership, a chat identity, a linked team).
    Taken {
        /// What kind of value: a [`Thing::Member`] (already a member), a
        /// [`Thing::ChatIdentity`] (mapped to another member), a [`Thing::Workspace`] (slug), a
        /// [`Thing::SlackTeam`] (linked to another workspace), [`Thing::Other`] (a store's key).
        thing: Thing,
        /// Who holds it, when it is a person (`@bob`).
        holder: Option<String>,
    },
    /// Someone else changed it at the same moment; nothing was applied, a retry may succeed.
    Concurrent,
    /// The acting member's own role changed (or they were removed) between the check and the
    /// commit; nothing was applied. Run again: the command is checked against the new role.
    AuthorityMoved,
    /// The change would have left the workspace without an owner (another owner was demoted or
    /// removed at the same moment); nothing was applied.
    NoOwnerLeft,
}

/// A conflict: someone acted first, or a value is taken.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Conflict {
    /// What collided (`RB-00001`, `workspace acme`, a store's description).
    pub what: String,
    /// How.
    pub kind: ConflictKind,
    message: String,
}

impl Conflict {
    /// A conflict on `what`, described by `message`.
    pub fn new(what: impl Into<String>, kind: ConflictKind, message: impl Into<String>) -> Self {
        Conflict {
            what: what.into(),
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The product rule that refused a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Rule {
    /// A workspace keeps at least one owner.
    LastOwner,
    /// A runbook's owner must be an operator or above.
    MemberCannotOwn,
    /// A runbook without steps cannot be published, started or saved published.
    NoSteps,
    /// The runbook is archived.
    Archived,
    /// The runbook is a draft (publish it first).
    Draft,
    /// The call would change nothing.
    NoChange,
    /// An execution may be linked only to an open change.
    ChangeClosed,
    /// An execution may be linked only to an open incident; a resolved one stays resolved.
    IncidentResolved,
    /// A search needs at least one word.
    EmptySearch,
    /// An input (a file, a value) was refused; the detail names where.
    Input,
    /// A chat identity must belong to the workspace's linked team.
    ChatTeam,
    /// An execution may be handed only to a member who may execute runbooks.
    CannotOperate,
}

/// A refusal by a rule of the product.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusal {
    /// The rule.
    pub rule: Rule,
    /// What was refused and why, for any reader.
    pub detail: String,
}

impl Refusal {
    /// A refusal by `rule`.
    pub fn new(rule: Rule, detail: impl Into<String>) -> Self {
        Refusal {
            rule,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// A step command refused by the execution state machine, with the people it names resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecFailure {
    /// The execution, when known.
    pub execution: Option<Key>,
    /// The state machine's refusal, with its facts (`NotCurrent { by, at, .. }`).
    pub error: ExecError,
    /// The handle of the member the facts name (who acted first, who acted last), when any.
    pub by_handle: Option<String>,
    message: String,
}

impl ExecFailure {
    /// A refusal of the state machine on `execution`, described by `message`.
    pub fn new(
        execution: Option<Key>,
        error: ExecError,
        by_handle: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        ExecFailure {
            execution,
            error,
            by_handle,
            message: message.into(),
        }
    }
}

impl fmt::Display for ExecFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The acting user is not an active member of the workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NotMember {
    /// True when they were a member and were removed.
    pub removed: bool,
}

impl fmt::Display for NotMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.removed {
            f.write_str(
                "you were removed from this workspace; ask a workspace admin to add you again",
            )
        } else {
            f.write_str("you are not a member of this workspace; ask a workspace admin to add you")
        }
    }
}

/// A refused or failed service call. Each variant carries its facts; `Display` is a sentence
/// for any reader (it names no command of any surface), and each surface phrases the facts for
/// its own readers. [`Error::kind`] gives the coarse class.
///
/// An embedding program matches on the variants and reads their facts (this example runs
/// with `cargo test -p vigilo-core --doc --features testkit`):
///
/// ```
/// # #[cfg(not(feature = "testkit"))]
/// # fn main() {}
/// # #[cfg(feature = "testkit")]
/// # fn main() {
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
///
/// use vigilo_core::authz::Action;
/// use vigilo_core::error::{Error, ErrorKind};
/// use vigilo_core::execution::ExecError;
/// use vigilo_core::execution::machine::Command;
/// use vigilo_core::roles::WorkspaceRole;
/// use vigilo_core::runbook::{RunbookInput, StepInput};
/// use vigilo_core::service::{CreateRunbook, NewMember, StartOptions, Vigilo, Who};
/// use vigilo_core::testkit::memory::MemoryStore;
///
/// let vigilo = Vigilo::new(Arc::new(MemoryStore::new()));
/// let (ws, alice) = vigilo.create_workspace("acme", "alice", "Alice").await.unwrap();
/// let alice = Who::new(ws.id, alice.id);
/// let add = |handle: &str, role| NewMember {
///     handle: handle.into(),
///     display_name: String::new(),
///     role,
///     team_roles: vec![],
///     chat_identity: None,
/// };
/// let (carol, _) = vigilo.add_member(&alice, add("carol", WorkspaceRole::Member)).await.unwrap();
/// let carol = Who::new(ws.id, carol.id);
/// let runbook = RunbookInput {
///     title: "Restart the queue".into(),
///     steps: vec![
///         StepInput { title: "Drain".into(), ..Default::default() },
///         StepInput { title: "Restart".into(), ..Default::default() },
///     ],
///     ..Default::default()
/// };
///
/// // A member may not create runbooks: the denial names the action and the actor's role.
/// match vigilo.create_runbook(&carol, runbook.clone(), CreateRunbook::default()).await {
///     Err(Error::Denied(d)) => {
///         assert_eq!(d.action, Action::CreateRunbook);
///         assert_eq!(d.actor_role, WorkspaceRole::Member);
///     }
///     other => panic!("{other:?}"),
/// }
///
/// let publish = CreateRunbook { publish: true, ..Default::default() };
/// let rb = vigilo.create_runbook(&alice, runbook, publish).await.unwrap();
/// let ex = vigilo.start_execution(&alice, rb.key, StartOptions::default()).await.unwrap();
/// let done = Command::Done { step: 1, note: None };
/// vigilo.act(&alice, ex.key, done.clone()).await.unwrap();
///
/// // A second click on the same step is told who acted first, and when.
/// match vigilo.act(&alice, ex.key, done).await {
///     Err(e @ Error::Execution(_)) => {
///         assert_eq!(e.kind(), ErrorKind::Conflict);
///         let Error::Execution(f) = e else { unreachable!() };
///         let ExecError::NotCurrent { step, by, at, .. } = f.error else { panic!() };
///         assert_eq!(step, 1);
///         assert_eq!(by, Some(alice.user));
///         assert!(at.is_some());
///         assert_eq!(f.by_handle.as_deref(), Some("@alice"));
///     }
///     other => panic!("{other:?}"),
/// }
/// # });
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not found (or only in another workspace, which is the same thing to the caller).
    #[error("{0}")]
    NotFound(NotFound),
    /// Denied by the permission table: the action, who may, and the actor's role.
    #[error("{0}")]
    Denied(Denied),
    /// The acting user is not an active member of the workspace (a denial).
    #[error("{0}")]
    NotMember(NotMember),
    /// A step command refused by the execution state machine.
    #[error("{0}")]
    Execution(ExecFailure),
    /// A change-request operation refused by its rules.
    #[error("{0}")]
    Change(ChangeError),
    /// A conflict: stale version, value taken, someone else at the same moment.
    #[error("{0}")]
    Conflict(Conflict),
    /// Refused by a rule of the product.
    #[error("{0}")]
    Refused(Refusal),
    /// An input broke a limit; names the field.
    #[error("invalid {0}")]
    Invalid(#[from] ValidationError),
    /// The audit trail was found edited: an entry read back does not match its hash or its
    /// stored columns.
    #[error("the audit trail was tampered with: {0}")]
    Tampered(crate::audit::Tamper),
    /// The store failed; nothing was applied.
    #[error("{0}")]
    Store(#[source] StoreError),
}

impl Error {
    /// The class of the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Denied(_) | Error::NotMember(_) => ErrorKind::Denied,
            Error::Execution(f) => match f.error {
                ExecError::Invalid(_) => ErrorKind::Refused,
                ExecError::NoSuchStep { .. } => ErrorKind::NotFound,
                ExecError::NotCurrent { .. }
                | ExecError::AlreadyApproved { .. }
                | ExecError::LapsesDue { .. }
                | ExecError::DuplicateNote { .. } => ErrorKind::Conflict,
                ExecError::ApproverRole { .. } | ExecError::ApproverIsOperator { .. } => {
                    ErrorKind::Denied
                }
                _ => ErrorKind::Refused,
            },
            Error::Change(ChangeError::NoSuchTask { .. }) => ErrorKind::NotFound,
            Error::Change(_) => ErrorKind::Refused,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Refused(_) | Error::Invalid(_) => ErrorKind::Refused,
            Error::Tampered(_) => ErrorKind::Tampered,
            Error::Store(_) => ErrorKind::Internal,
        }
    }

    /// True when retrying the same call later may succeed (storage busy or unreachable).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Store(StoreError::Unavailable { .. }))
    }

    /// A [`NotFound`].
    pub fn not_found(thing: Thing, name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::NotFound(NotFound::new(thing, name, message))
    }

    /// A [`Refusal`].
    pub fn refused(rule: Rule, detail: impl Into<String>) -> Self {
        Error::Refused(Refusal::new(rule, detail))
    }

    /// A [`Conflict`].
    pub fn conflict(
        what: impl Into<String>,
        kind: ConflictKind,
        message: impl Into<String>,
    ) -> Self {
        Error::Conflict(Conflict::new(what, kind, message))
    }

    /// A key of the wrong kind: `{key} is not {a_what} key`.
    pub(crate) fn wrong_key(key: Key, a_what: &str) -> Self {
        Error::not_found(
            Thing::Key,
            key.to_string(),
            format!("{key} is not {a_what} key"),
        )
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => {
                let message = format!("{what} not found");
                Error::not_found(Thing::Other, what, message)
            }
            StoreError::Conflict(what) => {
                let message = format!(
                    "{what}; someone else changed it at the same moment, reload and try again"
                );
                Error::conflict(what, ConflictKind::Concurrent, message)
            }
            StoreError::AlreadyExists(what) => {
                let message = format!("{what} already exists");
                Error::conflict(
                    what,
                    ConflictKind::Taken {
                        thing: Thing::Other,
                        holder: None,
                    },
                    message,
                )
            }
            StoreError::AuthorityMoved(user) => {
                let message = StoreError::AuthorityMoved(user).to_string();
                Error::conflict(
                    format!("user {user}"),
                    ConflictKind::AuthorityMoved,
                    message,
                )
            }
            StoreError::NoOwnerLeft => Error::conflict(
                "the workspace's owners",
                ConflictKind::NoOwnerLeft,
                StoreError::NoOwnerLeft.to_string(),
            ),
            StoreError::Tampered(t) => Error::Tampered(t),
            other => Error::Store(other),
        }
    }
}

impl From<Denied> for Error {
    fn from(d: Denied) -> Self {
        Error::Denied(d)
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        let message = e.to_string();
        Error::not_found(Thing::Key, message.clone(), message)
    }
}

impl From<ChangeError> for Error {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::Invalid(v) => Error::Invalid(v),
            other => Error::Change(other),
        }
    }
}

/// A state-machine refusal whose message needs no user names.
impl From<ExecError> for Error {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::Invalid(v) => Error::Invalid(v),
            other => {
                let message = other.to_string();
                Error::Execution(ExecFailure::new(None, other, None, message))
            }
        }
    }
}

/// Shorthand for service results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
