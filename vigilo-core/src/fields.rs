//! Validated field types. An invalid value cannot be constructed, so code past the boundary
//! never checks again; every error names the field and the limit that was broken.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The most characters a title may have.
pub const MAX_TITLE_CHARS: usize = 200;
/// The most bytes a markdown text (description, instruction, note) may have: 64 KiB.
pub const MAX_MARKDOWN_BYTES: usize = 64 * 1024;
/// The largest step estimate in minutes: one week.
pub const MAX_EST_MINUTES: u32 = 10_080;
/// The most steps a runbook (or tasks a plan) may have.
pub const MAX_STEPS: usize = 500;
/// The most characters of a short label (category, role name, handle, slug).
pub const MAX_LABEL_CHARS: usize = 64;

/// A value that did not pass validation: which field, and what the rule is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ValidationError {
    /// The field that was refused, e.g. `title` or `steps[3].est_minutes`.
    pub field: String,
    /// What is wrong and the limit, e.g. `must be at most 200 characters (got 231)`.
    pub problem: String,
}

impl ValidationError {
    /// A refusal of `field` because of `problem`.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The same error for a field nested inside another, e.g. `steps[2].` + `title`.
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = format!("{prefix}{}", self.field);
        self
    }
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident, $parse:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates `value` for the field named `field`.
            pub fn parse_field(field: &str, value: impl Into<String>) -> Result<Self, ValidationError> {
                let check: fn(&str, String) -> Result<String, ValidationError> = $parse;
                check(field, value.into()).map(Self)
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The text, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse_field(stringify!($name), s).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn check_title(field: &str, value: String) -> Result<String, ValidationError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    let n = trimmed.chars().count();
    if n > MAX_TITLE_CHARS {
        return Err(ValidationError::new(
            field,
            format!("must be at most {MAX_TITLE_CHARS} characters (got {n})"),
        ));
    }
    if trimmed.chars().any(|c| c.is_control()) {
        return Err(ValidationError::new(
            field,
            "must be one line without control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

fn check_markdown(field: &str, value: String) -> Result<String, ValidationError> {
    if value.len() > MAX_MARKDOWN_BYTES {
        return Err(ValidationError::new(
            field,
            format!(
                "must be at most {MAX_MARKDOWN_BYTES} bytes (64 KiB; got {})",
                value.len()
            ),
        ));
    }
    if value.contains('\0') {
        return Err(ValidationError::new(
            field,
            "must not contain NUL characters",
        ));
    }
    Ok(value)
}

fn check_label(field: &str, value: String) -> Result<String, ValidationError> {
    let trimmed = value.trim();
    let n = trimmed.chars().count();
    if n > MAX_LABEL_CHARS {
        return Err(ValidationError::new(
            field,
            format!("must be at most {MAX_LABEL_CHARS} characters (got {n})"),
        ));
    }
    if trimmed.chars().any(|c| c.is_control()) {
        return Err(ValidationError::new(
            field,
            "must be one line without control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

fn check_name(field: &str, value: String) -> Result<String, ValidationError> {
    let v = value.trim().trim_start_matches('@').to_ascii_lowercase();
    if v.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if v.len() > MAX_LABEL_CHARS {
        return Err(ValidationError::new(
            field,
            format!(
                "must be at most {MAX_LABEL_CHARS} characters (got {})",
                v.len()
            ),
        ));
    }
    let ok_first = v.as_bytes()[0].is_ascii_alphanumeric();
    if !ok_first
        || !v.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        })
    {
        return Err(ValidationError::new(
            field,
            "may hold only letters, digits, '-', '_' and '.', starting with a letter or digit",
        ));
    }
    Ok(v)
}

string_newtype!(
    /// A one-line title of 1 to 200 characters, trimmed.
    Title,
    check_title
);
string_newtype!(
    /// Markdown text of at most 64 KiB, kept byte for byte.
    Markdown,
    check_markdown
);
string_newtype!(
    /// A short one-line label (category, role text), at most 64 characters; may be empty.
    Label,
    check_label
);
string_newtype!(
    /// A lowercase name for a user handle, a workspace slug or a team role: letters, digits,
    /// `-`, `_`, `.`; a leading `@` is dropped.
    Name,
    check_name
);

impl Title {
    /// Validates a title for the field `title`.
    pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
        Self::parse_field("title", value)
    }
}

impl Markdown {
    /// The empty text.
    pub fn empty() -> Self {
        Self(String::new())
    }

    /// True when the text holds nothing but whitespace.
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl Default for Markdown {
    fn default() -> Self {
        Self::empty()
    }
}

impl Label {
    /// The empty label.
    pub fn empty() -> Self {
        Self(String::new())
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Default for Label {
    fn default() -> Self {
        Self::empty()
    }
}

/// A step's time estimate in whole minutes, 0 to 10,080 (one week).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EstMinutes(u32);

impl EstMinutes {
    /// Validates an estimate for the field named `field`.
    pub fn parse_field(field: &str, minutes: i64) -> Result<Self, ValidationError> {
        if !(0..=i64::from(MAX_EST_MINUTES)).contains(&minutes) {
            return Err(ValidationError::new(
                field,
                format!("must be between 0 and {MAX_EST_MINUTES} minutes (got {minutes})"),
            ));
        }
        Ok(Self(minutes as u32))
    }

    /// Validates an estimate for the field `est_minutes`.
    pub fn new(minutes: i64) -> Result<Self, ValidationError> {
        Self::parse_field("est_minutes", minutes)
    }

    /// The minutes.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<'de> Deserialize<'de> for EstMinutes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        Self::parse_field("est_minutes", n).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(Title::parse("  Restart  ").unwrap().as_str(), "Restart");
        let e = Title::parse("x".repeat(201)).unwrap_err();
        assert_eq!(e.field, "title");
        assert!(e.problem.contains("200"), "{e}");
        assert!(Title::parse("x".repeat(200)).is_ok());
        assert!(Title::parse("   ").is_err());
        assert!(Title::parse("a\nb").is_err());
    }

    #[test]
    fn markdown_is_bounded_at_64_kib() {
        assert!(Markdown::parse_field("description", "x".repeat(MAX_MARKDOWN_BYTES)).is_ok());
        let e =
            Markdown::parse_field("description", "x".repeat(MAX_MARKDOWN_BYTES + 1)).unwrap_err();
        assert!(e.to_string().contains("64 KiB"), "{e}");
    }

    #[test]
    fn estimates_are_bounded() {
        assert!(EstMinutes::new(0).is_ok());
        assert!(EstMinutes::new(10_080).is_ok());
        assert!(
            EstMinutes::new(10_081)
                .unwrap_err()
                .to_string()
                .contains("10080")
        );
        assert!(EstMinutes::new(-1).is_err());
        assert!(serde_json::from_str::<EstMinutes>("99999").is_err());
    }

    #[test]
    fn names_are_normalised() {
        assert_eq!(
            Name::parse_field("handle", "@Alice").unwrap().as_str(),
            "alice"
        );
        assert!(Name::parse_field("handle", "al ice").is_err());
        assert!(Name::parse_field("handle", "-x").is_err());
        assert!(Name::parse_field("handle", "").is_err());
    }
}
