//! Full-text search of runbooks: what is indexed, and how user words become a safe FTS5 query.
//!
//! The `runbook_search` FTS5 table holds, per runbook (rowid = `runbooks.pk`), three columns:
//! the title, the description, and the title and description of every step. Results are ranked
//! with `bm25`, a word in the title weighing [`TITLE_WEIGHT`] times one in a step.

use vigilo_core::runbook::RunbookBody;

/// bm25 weight of the title column.
pub(crate) const TITLE_WEIGHT: f64 = 10.0;
/// bm25 weight of the description column.
pub(crate) const DESCRIPTION_WEIGHT: f64 = 3.0;
/// bm25 weight of the step text column.
pub(crate) const STEPS_WEIGHT: f64 = 1.0;

/// The text of a runbook as indexed.
pub(crate) struct SearchText {
    /// The title.
    pub title: String,
    /// The description.
    pub description: String,
    /// Every step's title and description, one after the other.
    pub steps: String,
}

impl SearchText {
    /// The indexed text of `body`.
    pub(crate) fn of(body: &RunbookBody) -> Self {
        let mut steps = String::new();
        for step in &body.steps {
            steps.push_str(step.title.as_str());
            steps.push('\n');
            steps.push_str(step.description.as_str());
            steps.push('\n');
        }
        Self {
            title: body.title.to_string(),
            description: body.description.to_string(),
            steps,
        }
    }
}

/// Turns user input into an FTS5 query that requires every word, or `None` when the input has
/// no word at all.
///
/// Each whitespace-separated word becomes one double-quoted string (quotes inside doubled), so
/// nothing the user types is FTS5 syntax: `AND`, `NEAR(…)`, `col:`, `*` and `^` are plain text.
/// A quoted string is a phrase of the tokens inside it (`foo-bar` finds "foo bar"), and no
/// string is a prefix query. Words without a letter or digit (`-`, `"`) would be empty phrases
/// and are dropped.
pub(crate) fn match_query(words: &str) -> Option<String> {
    let terms: Vec<String> = words
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    if terms.is_empty() { None } else { Some(terms.join(" AND ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_is_quoted_and_required() {
        assert_eq!(match_query("db restart").as_deref(), Some(r#""db" AND "restart""#));
        assert_eq!(
            match_query(r#"a"b NEAR(x) col:y * -- "#).as_deref(),
            Some(r#""a""b" AND "NEAR(x)" AND "col:y""#)
        );
        assert_eq!(match_query("  -- * \" "), None);
    }
}
