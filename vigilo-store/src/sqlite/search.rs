//! Full-text search of runbooks: what is indexed, and how user words become a safe FTS5 query.
//!
//! The `runbook_search` FTS5 table holds, per runbook (rowid = `runbooks.pk`), three columns:
//! the title, the description, and the title and description of every step.
//!
//! Ranking, best first: the title outweighs everything, so runbooks whose title holds more of
//! the words come first; among those with as many title words, `bm25` over the description
//! (weight [`DESCRIPTION_WEIGHT`]) and the step text (weight [`STEPS_WEIGHT`]) decides; the key
//! number breaks the remaining ties; a title equal to the words searched (its title key, see
//! `store::search::title_key`) comes before all. (The title is a tier of its own rather than a bm25 weight:
//! bm25 favours short titles, which would order two runbooks that both name the words in their
//! title by title length, not by relevance.)
//!
//! A word in thousands of runbooks (more than `read::BROAD` matches) is answered without
//! scoring every match: the tiers stay, the large ones in newest-first order (see
//! `read::broad_search`).

/// bm25 weight of the description column.
pub(crate) const DESCRIPTION_WEIGHT: f64 = 3.0;
/// bm25 weight of the step text column.
pub(crate) const STEPS_WEIGHT: f64 = 1.0;

/// User input as FTS5 terms, one per word, or `None` when the input has no word at all.
///
/// Each whitespace-separated word becomes one double-quoted string (quotes inside doubled), so
/// nothing the user types is FTS5 syntax: `AND`, `NEAR(…)`, `col:`, `*` and `^` are plain text.
/// A quoted string is a phrase of the tokens inside it (`foo-bar` finds "foo bar"), and no
/// string is a prefix query. Words without a letter or digit (`-`, `"`) would be empty phrases
/// and are dropped.
pub(crate) fn terms(words: &str) -> Option<Terms> {
    let quoted: Vec<String> = vigilo_core::store::search::words(words)?
        .into_iter()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    Some(Terms(quoted))
}

/// The quoted terms of a search.
pub(crate) struct Terms(Vec<String>);

impl Terms {
    /// The FTS5 query matching runbooks that hold every term, in any column.
    pub(crate) fn all(&self) -> String {
        self.0.join(" AND ")
    }

    /// The FTS5 query matching runbooks whose title holds every term.
    pub(crate) fn all_in_title(&self) -> String {
        format!("title : ({})", self.all())
    }

    /// One FTS5 query per term, matching runbooks whose title holds it.
    pub(crate) fn in_title(&self) -> impl Iterator<Item = String> + '_ {
        self.0.iter().map(|t| format!("title : {t}"))
    }
}

/// Whether the FTS5 query `query` matches at most `n` runbooks (of any workspace): counted by
/// walking the index, without scoring, and stopping after `n + 1`.
pub(crate) fn matches_at_most(
    c: &rusqlite::Connection,
    query: &str,
    n: usize,
) -> vigilo_core::store::StoreResult<bool> {
    let cap = i64::try_from(n).unwrap_or(i64::MAX).saturating_add(1);
    let found: i64 = c
        .prepare_cached(
            "SELECT count(*) FROM (SELECT rowid FROM runbook_search WHERE runbook_search MATCH ?1 LIMIT ?2)",
        )
        .and_then(|mut s| s.query_row(rusqlite::params![query, cap], |r| r.get(0)))
        .map_err(super::rows::sql_err)?;
    Ok(found < cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_is_quoted_and_required() {
        let t = terms("db restart").map(|t| t.all());
        assert_eq!(t.as_deref(), Some(r#""db" AND "restart""#));
        let t = terms(r#"a"b NEAR(x) col:y * -- "#).map(|t| t.all());
        assert_eq!(t.as_deref(), Some(r#""a""b" AND "NEAR(x)" AND "col:y""#));
        assert!(terms("  -- * \" ").is_none());
        let title: Vec<String> = terms("db x")
            .map(|t| t.in_title().collect())
            .unwrap_or_default();
        assert_eq!(title, vec![r#"title : "db""#, r#"title : "x""#]);
    }
}
