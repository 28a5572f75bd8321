//! The error every [`crate::service::Vigilo`] method returns: a kind a front end can map to an
//! exit code or an HTTP status, and a message that says what to do next.

use serde::Serialize;

use crate::authz::Denied;
use crate::change::ChangeError;
use crate::execution::ExecError;
use crate::fields::ValidationError;
use crate::ids::KeyError;
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

/// A refused or failed service call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not found (or only in another workspace, which is the same thing to the caller).
    #[error("{0}")]
    NotFound(String),
    /// Denied by the permission table or an approval rule; the message names who may.
    #[error("{0}")]
    Denied(String),
    /// A conflict: stale version, step already acted on, value taken.
    #[error("{0}")]
    Conflict(String),
    /// Refused by a rule of the product (sealed execution, draft import, …).
    #[error("{0}")]
    Refused(String),
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
            Error::Denied(_) => ErrorKind::Denied,
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
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Error::NotFound(format!("{what} not found")),
            StoreError::Conflict(what) => Error::Conflict(format!(
                "{what}; someone else changed it at the same moment, reload and try again"
            )),
            StoreError::AlreadyExists(what) => Error::Conflict(format!("{what} already exists")),
            StoreError::Tampered(t) => Error::Tampered(t),
            other => Error::Store(other),
        }
    }
}

impl From<Denied> for Error {
    fn from(d: Denied) -> Self {
        Error::Denied(d.to_string())
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        Error::NotFound(e.to_string())
    }
}

impl From<ChangeError> for Error {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::Invalid(v) => Error::Invalid(v),
            ChangeError::NoSuchTask { .. } => Error::NotFound(e.to_string()),
            other => Error::Refused(other.to_string()),
        }
    }
}

/// Maps a state-machine refusal whose message needs no user names.
impl From<ExecError> for Error {
    fn from(e: ExecError) -> Self {
        match e {
            ExecError::Invalid(v) => Error::Invalid(v),
            ExecError::NoSuchStep { .. } => Error::NotFound(e.to_string()),
            ExecError::NotCurrent { .. } | ExecError::AlreadyApproved { .. } => {
                Error::Conflict(e.to_string())
            }
            ExecError::ApproverRole { .. } | ExecError::ApproverIsOperator { .. } => {
                Error::Denied(e.to_string())
            }
            other => Error::Refused(other.to_string()),
        }
    }
}

/// Shorthand for service results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
