//! A gated step's approval policy: how many distinct approvers it needs (`approval: N`) and
//! how long each approval stands (`approval-expires: M`). Both validate on construction and on
//! deserialisation, and name their limit when refused.

use std::fmt;

use chrono::Duration;
use serde::{Deserialize, Serialize};

use crate::fields::ValidationError;

/// The most distinct approvers a step may ask for.
pub const MAX_APPROVALS: u32 = 10;
/// The longest an approval may stand before it lapses, in minutes: one week.
pub const MAX_APPROVAL_EXPIRES_MINUTES: u32 = 10_080;

/// How many distinct approvers a gated step needs: 1 to [`MAX_APPROVALS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ApprovalCount(u32);

impl ApprovalCount {
    /// One approver: `approval: required`.
    pub const ONE: ApprovalCount = ApprovalCount(1);

    /// Validates a count for the field named `field`.
    pub fn parse_field(field: &str, n: i64) -> Result<Self, ValidationError> {
        if !(1..=i64::from(MAX_APPROVALS)).contains(&n) {
            return Err(ValidationError::new(
                field,
                format!("must be between 1 and {MAX_APPROVALS} approvers (got {n})"),
            ));
        }
        Ok(Self(n as u32))
    }

    /// The count.
    pub fn get(self) -> u32 {
        self.0
    }

    /// True for one approver (what serialisation leaves out, so older documents are unchanged).
    pub fn is_one(&self) -> bool {
        self.0 == 1
    }
}

impl Default for ApprovalCount {
    fn default() -> Self {
        Self::ONE
    }
}

impl fmt::Display for ApprovalCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for ApprovalCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        Self::parse_field("approvals_required", n).map_err(serde::de::Error::custom)
    }
}

/// How many whole minutes an approval stands before it lapses: 1 to
/// [`MAX_APPROVAL_EXPIRES_MINUTES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ApprovalExpiry(u32);

impl ApprovalExpiry {
    /// Validates a number of minutes for the field named `field`.
    pub fn parse_field(field: &str, minutes: i64) -> Result<Self, ValidationError> {
        if !(1..=i64::from(MAX_APPROVAL_EXPIRES_MINUTES)).contains(&minutes) {
            return Err(ValidationError::new(
                field,
                format!(
                    "must be between 1 and {MAX_APPROVAL_EXPIRES_MINUTES} minutes (got {minutes})"
                ),
            ));
        }
        Ok(Self(minutes as u32))
    }

    /// The minutes.
    pub fn minutes(self) -> u32 {
        self.0
    }

    /// The minutes as a duration.
    pub fn duration(self) -> Duration {
        Duration::minutes(i64::from(self.0))
    }
}

impl fmt::Display for ApprovalExpiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for ApprovalExpiry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        Self::parse_field("approval_expires_minutes", n).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn limits_are_named() {
        assert_eq!(ApprovalCount::parse_field("n", 3).unwrap().get(), 3);
        let e = ApprovalCount::parse_field("n", 0).unwrap_err();
        assert!(e.problem.contains("between 1 and 10"), "{e}");
        assert!(ApprovalCount::parse_field("n", 11).is_err());
        assert!(serde_json::from_str::<ApprovalCount>("0").is_err());
        assert_eq!(ApprovalExpiry::parse_field("m", 30).unwrap().minutes(), 30);
        assert!(ApprovalExpiry::parse_field("m", 0).is_err());
        assert!(ApprovalExpiry::parse_field("m", 10_081).is_err());
        assert!(serde_json::from_str::<ApprovalExpiry>("-5").is_err());
    }
}
