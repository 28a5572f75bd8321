//! Full-text search of runbooks: what is indexed, and how user words become a query that can
//! never fail.
//!
//! Each runbook row carries two `tsvector` columns, written with the row under the `simple`
//! configuration (lower-cased words, no stemming, no stop words — runbooks are full of
//! commands and names that a language dictionary would mangle):
//!
//! - `search`: the title (weight `A`), the description (`B`) and the title and description of
//!   every step (`C`);
//! - `title_search`: the title alone.
//!
//! User text reaches PostgreSQL only as bound parameters of `plainto_tsquery('simple', …)`,
//! which treats every character as text (no operators, no syntax errors) and ANDs the words.
//!
//! Ranking, best first: a title that is the words searched (`store::search::title_key`,
//! computed in SQL for the matching rows); runbooks whose title holds more of the words (one `@@` per word
//! against `title_search`); then `ts_rank` over the weighted vector; then the key number.
//! (The title is a tier of its own, as in the SQLite adapter: a rank alone would favour short
//! titles.)

/// The words of a search, or `None` when the input has no word at all (then every visible
/// runbook matches, in key order, as in the SQLite adapter). Words without a letter or digit
/// (`-`, `*`) can match nothing and are dropped.
pub(crate) fn words(input: &str) -> Option<Vec<String>> {
    vigilo_core::store::search::words(input).map(|w| w.into_iter().map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_without_letters_are_dropped() {
        assert_eq!(
            words(" db  restart ").as_deref(),
            Some(&["db".to_owned(), "restart".to_owned()][..])
        );
        assert_eq!(
            words(r#"a"b & !x -- *"#).as_deref(),
            Some(&[r#"a"b"#.to_owned(), "!x".to_owned()][..])
        );
        assert!(words("  -- * & | ").is_none());
    }
}
