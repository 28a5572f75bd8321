//! Identifiers: opaque UUID v7 newtypes for rows, and human keys (`RB-00042`) for people.
//!
//! Ids and keys are distinct types so that a bare `String` or `Uuid` can never be passed where
//! one of them is meant. Keys are per workspace, monotonic and never reused.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered (UUID v7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// Identifies a workspace: the unit of isolation.
    WorkspaceId
);
id_type!(
    /// Identifies a user across workspaces; membership gives the user a role in one workspace.
    UserId
);
id_type!(
    /// Identifies a runbook; stable across versions.
    RunbookId
);
id_type!(
    /// Identifies one step of a runbook; kept across edits so diffs can tell "changed" from "moved".
    StepId
);
id_type!(
    /// Identifies one execution of a runbook.
    ExecutionId
);
id_type!(
    /// Identifies a change request.
    ChangeId
);
id_type!(
    /// Identifies a task of a change request's implementation plan.
    TaskId
);
id_type!(
    /// Identifies an incident.
    IncidentId
);
id_type!(
    /// Identifies an audit entry.
    AuditId
);

/// What kind of record a [`Key`] names; each kind has its own counter per workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// `RB-`: a runbook.
    Runbook,
    /// `CR-`: a change request.
    Change,
    /// `INC-`: an incident.
    Incident,
    /// `EX-`: an execution.
    Execution,
}

impl KeyKind {
    /// Every kind, in a fixed order (useful for stores that keep one counter per kind).
    pub const ALL: [KeyKind; 4] = [
        KeyKind::Runbook,
        KeyKind::Change,
        KeyKind::Incident,
        KeyKind::Execution,
    ];

    /// The prefix printed before the dash.
    pub fn prefix(self) -> &'static str {
        match self {
            KeyKind::Runbook => "RB",
            KeyKind::Change => "CR",
            KeyKind::Incident => "INC",
            KeyKind::Execution => "EX",
        }
    }

    /// A stable lowercase name, used in storage and in errors.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Runbook => "runbook",
            KeyKind::Change => "change",
            KeyKind::Incident => "incident",
            KeyKind::Execution => "execution",
        }
    }

    /// Parses [`KeyKind::as_str`] back.
    pub fn from_name(s: &str) -> Option<Self> {
        KeyKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A human key such as `RB-00042`: a kind and a number, at least five digits when printed,
/// widening past 99999 (`RB-100000`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// Which counter the number came from.
    pub kind: KeyKind,
    /// The number, starting at 1 in each workspace.
    pub number: u64,
}

impl Key {
    /// A key of `kind` with `number`.
    pub fn new(kind: KeyKind, number: u64) -> Self {
        Self { kind, number }
    }

    /// Parses a key of one expected kind, so `EX-00001` is refused where a runbook is meant.
    pub fn parse_kind(s: &str, kind: KeyKind) -> Result<Key, KeyError> {
        let key: Key = s.parse()?;
        if key.kind != kind {
            return Err(KeyError::WrongKind {
                input: s.to_owned(),
                expected: kind.prefix(),
            });
        }
        Ok(key)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:05}", self.kind.prefix(), self.number)
    }
}

/// Why a text is not a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text does not look like `PREFIX-NNNNN`.
    #[error("`{input}` is not a key; keys look like RB-00012, CR-00003, INC-00007 or EX-00001")]
    Malformed {
        /// What was given.
        input: String,
    },
    /// A well-formed key of another kind.
    #[error("`{input}` is not the kind of key expected here; expected a {expected}- key")]
    WrongKind {
        /// What was given.
        input: String,
        /// The prefix that was expected.
        expected: &'static str,
    },
}

impl FromStr for Key {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || KeyError::Malformed {
            input: s.chars().take(40).collect(),
        };
        let (prefix, digits) = s.trim().split_once('-').ok_or_else(malformed)?;
        let kind = KeyKind::ALL
            .into_iter()
            .find(|k| k.prefix().eq_ignore_ascii_case(prefix))
            .ok_or_else(malformed)?;
        if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        let number: u64 = digits.parse().map_err(|_| malformed())?;
        if number == 0 {
            return Err(malformed());
        }
        Ok(Key { kind, number })
    }
}

impl Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_print_five_digits_and_widen() {
        assert_eq!(Key::new(KeyKind::Runbook, 42).to_string(), "RB-00042");
        assert_eq!(Key::new(KeyKind::Incident, 7).to_string(), "INC-00007");
        assert_eq!(
            Key::new(KeyKind::Execution, 100_000).to_string(),
            "EX-100000"
        );
    }

    #[test]
    fn keys_round_trip_and_refuse_garbage() {
        for s in ["RB-00042", "CR-00001", "INC-123456", "EX-00009"] {
            let k: Key = s.parse().unwrap();
            assert_eq!(k.to_string(), s);
        }
        assert_eq!(
            "rb-7".parse::<Key>().unwrap(),
            Key::new(KeyKind::Runbook, 7)
        );
        for bad in [
            "",
            "RB",
            "RB-",
            "RB-0",
            "XX-00001",
            "RB-12a",
            "RB--1",
            "RB-99999999999999999999",
        ] {
            assert!(bad.parse::<Key>().is_err(), "{bad} parsed");
        }
        assert!(matches!(
            Key::parse_kind("EX-00001", KeyKind::Runbook),
            Err(KeyError::WrongKind { .. })
        ));
    }
}
