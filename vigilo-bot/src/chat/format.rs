//! Small formatting helpers shared by the messages: minutes, variances, times, user names.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use vigilo_core::ids::UserId;

use super::markdown::escape_markdown;

/// Minutes with one decimal: `2.5 min`.
pub fn minutes(m: f64) -> String {
    format!("{:.1} min", m)
}

/// Whole estimated minutes: `45 min`.
pub fn estimate(m: u64) -> String {
    format!("{m} min")
}

/// A signed variance with one decimal: `+1.5 min`, `-3.0 min` (never `-0.0`).
pub fn variance(v: f64) -> String {
    let v = if v.abs() < 0.05 { 0.0 } else { v };
    format!("{v:+.1} min")
}

/// A time as people read it in a channel: `2025-05-01 14:02 UTC`.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Handles of the users an execution mentions, resolved once per reply.
#[derive(Clone, Debug, Default)]
pub struct Names {
    handles: HashMap<UserId, String>,
}

impl Names {
    /// Records `handle` (without `@`) for `id`.
    pub fn insert(&mut self, id: UserId, handle: impl Into<String>) {
        self.handles.insert(id, handle.into());
    }

    /// Whether `id` is known.
    pub fn contains(&self, id: UserId) -> bool {
        self.handles.contains_key(&id)
    }

    /// `@handle`, or `someone` for an unknown user; plain text.
    pub fn plain(&self, id: UserId) -> String {
        match self.handles.get(&id) {
            Some(h) => format!("@{h}"),
            None => "someone".to_owned(),
        }
    }

    /// [`Names::plain`], escaped for markdown.
    pub fn md(&self, id: UserId) -> String {
        escape_markdown(&self.plain(id))
    }
}

/// Upper-cases the first character.
pub fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(minutes(2.0), "2.0 min");
        assert_eq!(variance(-3.0), "-3.0 min");
        assert_eq!(variance(1.25), "+1.2 min");
        assert_eq!(variance(-0.01), "+0.0 min");
        assert_eq!(capitalize("step 1"), "Step 1");
    }
}
