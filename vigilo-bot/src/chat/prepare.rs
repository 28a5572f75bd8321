//! Markdown made self-contained before it is split into chunks (see [`super::limits`]).
//!
//! A chunk of a long text is rendered on its own, so whatever the text relies on from elsewhere
//! must be written into it first:
//!
//! - **Ordered list numbers.** CommonMark numbers a list from its first marker on (`1.` `1.`
//!   `1.` shows as 1, 2, 3); a chunk that starts in the middle of such a list would restart at
//!   1. Every ordered item's marker is rewritten to the number it shows.
//! - **Reference-style links.** `[the docs][docs]` needs its `[docs]: https://…` definition,
//!   which may land in another chunk. Every reference link becomes an inline link, and the
//!   definitions (which show nothing) are removed.
//!
//! Everything else is kept byte for byte.

use std::ops::Range;

use pulldown_cmark::{Event, LinkType, Options, Parser, Tag};

/// The options every parse of runbook markdown uses.
pub fn options() -> Options {
    Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS
}

/// `markdown` with explicit list numbers and inline links; see the module documentation.
pub fn self_contained(markdown: &str) -> String {
    let parser = Parser::new_ext(markdown, options());
    let mut edits: Vec<(Range<usize>, String)> = parser
        .reference_definitions()
        .iter()
        .map(|(_, def)| (def.span.clone(), String::new()))
        .collect();
    let mut lists: Vec<Option<u64>> = Vec::new();
    for (event, range) in parser.into_offset_iter() {
        match event {
            Event::Start(Tag::List(first)) => lists.push(first),
            Event::End(pulldown_cmark::TagEnd::List(_)) => {
                lists.pop();
            }
            Event::Start(Tag::Item) => {
                if let Some(Some(n)) = lists.last_mut() {
                    if let Some(edit) = renumber(markdown, range.start, *n) {
                        edits.push(edit);
                    }
                    *n += 1;
                }
            }
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                ..
            })
            | Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                ..
            }) => {
                if let Some(edit) = inline_link(markdown, range, link_type, &dest_url, &title) {
                    edits.push(edit);
                }
            }
            _ => {}
        }
    }
    apply(markdown, edits)
}

/// The edit writing `n` over the digits of the ordered marker at `at`, when it differs.
fn renumber(src: &str, at: usize, n: u64) -> Option<(Range<usize>, String)> {
    let rest = src.get(at..)?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let written = &rest[..digits];
    let wanted = n.to_string();
    (written != wanted).then(|| (at..at + digits, wanted))
}

/// The edit turning the reference link spanning `range` into an inline link.
fn inline_link(
    src: &str,
    range: Range<usize>,
    link_type: LinkType,
    dest: &str,
    title: &str,
) -> Option<(Range<usize>, String)> {
    let mut range = range;
    if link_type == LinkType::Collapsed
        && !src.get(range.clone())?.ends_with("[]")
        && src.get(range.end..)?.starts_with("[]")
    {
        range.end += 2;
    }
    let text = src.get(range.clone())?;
    let label_end = match link_type {
        LinkType::Shortcut => text.len(),
        LinkType::Collapsed => text.strip_suffix("[]")?.len(),
        LinkType::Reference => {
            let open = text.rfind('[')?;
            text.ends_with(']').then_some(open)?
        }
        _ => return None,
    };
    let label = &text[..label_end];
    if !label.starts_with('[') && !label.starts_with("![") {
        return None;
    }
    let dest = dest.replace('<', "%3C").replace('>', "%3E");
    let title = if title.is_empty() {
        String::new()
    } else {
        format!(" \"{}\"", title.replace('"', "\\\""))
    };
    Some((range, format!("{label}(<{dest}>{title})")))
}

/// Applies non-overlapping edits (an edit inside an earlier one is dropped).
fn apply(src: &str, mut edits: Vec<(Range<usize>, String)>) -> String {
    if edits.is_empty() {
        return src.to_owned();
    }
    edits.sort_by_key(|(r, _)| (r.start, std::cmp::Reverse(r.end)));
    let mut out = String::with_capacity(src.len() + 64);
    let mut at = 0;
    for (range, text) in edits {
        if range.start < at || range.end > src.len() {
            continue;
        }
        out.push_str(&src[at..range.start]);
        out.push_str(&text);
        at = range.end;
    }
    out.push_str(&src[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_get_their_shown_numbers() {
        assert_eq!(self_contained("1. a\n1. b\n1. c"), "1. a\n2. b\n3. c");
        assert_eq!(self_contained("3. a\n7. b"), "3. a\n4. b");
        assert_eq!(
            self_contained("1. a\n   1. x\n   1. y\n1. b"),
            "1. a\n   1. x\n   2. y\n2. b"
        );
        assert_eq!(self_contained("- a\n- b"), "- a\n- b");
    }

    #[test]
    fn reference_links_become_inline() {
        let md = "See [the docs][d], [x][] and [y].\n\n[d]: https://a.example/d\n[x]: https://a.example/x \"X\"\n[y]: <https://a.example/y z>\n";
        let out = self_contained(md);
        assert_eq!(
            out.trim_end(),
            "See [the docs](<https://a.example/d>), [x](<https://a.example/x> \"X\") and [y](<https://a.example/y z>)."
        );
        assert_eq!(
            self_contained("[inline](https://a.example)"),
            "[inline](https://a.example)"
        );
    }
}
