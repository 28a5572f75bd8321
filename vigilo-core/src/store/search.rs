//! What of a runbook a store indexes for search, and how a search's input becomes words: one
//! definition for every adapter.

use crate::runbook::RunbookBody;

/// The indexed text of a runbook: its title, its description, and every step's title and
/// description (weighted by the adapter in that order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchText {
    /// The title.
    pub title: String,
    /// The description.
    pub description: String,
    /// Every step's title and description, one after the other.
    pub steps: String,
}

impl SearchText {
    /// The indexed text of `body`.
    pub fn of(body: &RunbookBody) -> Self {
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

/// The words of a search input, or `None` when it has no word at all (then every visible
/// runbook matches, in key order). Words without a letter or digit (`-`, `*`, `"`) can match
/// nothing and are dropped.
pub fn words(input: &str) -> Option<Vec<&str>> {
    let words: Vec<&str> = input
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .collect();
    if words.is_empty() { None } else { Some(words) }
}

/// A title reduced to its words: lowercase, every run of characters that are not letters or
/// digits one space, trimmed. Two titles (or a title and a search input) with the same key name
/// the same words in the same order, so an adapter can find runbooks whose title *is* what was
/// searched with an index lookup, however common the words are.
pub fn title_key(text: &str) -> String {
    let mut key = String::with_capacity(text.len());
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !key.is_empty() {
            key.push(' ');
        }
        key.extend(word.chars().flat_map(char::to_lowercase));
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_keys_are_lowercase_words() {
        assert_eq!(title_key("Restart  the API!"), "restart the api");
        assert_eq!(title_key("pg-bouncer: RESTART"), "pg bouncer restart");
        assert_eq!(title_key("Ünïcødé Köln"), "ünïcødé köln");
        assert_eq!(title_key(" -- "), "");
    }

    #[test]
    fn words_drop_what_cannot_match() {
        assert_eq!(words("  - * \"\" "), None);
        assert_eq!(
            words("pg-bouncer  restart -"),
            Some(vec!["pg-bouncer", "restart"])
        );
    }
}
