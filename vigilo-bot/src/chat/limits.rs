//! Platform limits, and splitting long texts to stay inside them instead of failing.
//!
//! The limits are Slack's (the strictest surface): 3,000 characters per section text, 50 blocks
//! per message, 150 characters per header, 10 fields of 2,000 characters each. The engine splits
//! every markdown text with [`split_markdown`] and every code text with [`split_code`], measuring
//! the *rendered* `mrkdwn` (escaping included), so a surface that renders one
//! [`Block::Section`] with [`to_mrkdwn`] always stays within [`MAX_SECTION_CHARS`].
//! Splits prefer paragraph boundaries, then lines, then spaces; code fences are closed and
//! reopened around a split, and a table's header is repeated. Before a text is split it is made
//! self-contained ([`super::prepare`]): list numbers and link targets survive the split.
//!
//! A message as a whole stays within [`super::budget`]: [`fit_reply`] spreads a long reply over
//! several messages.

use super::budget::{MAX_MESSAGE_CHARS, block_chars, blocks_chars, paginate_within};
use super::markdown::{code_to_mrkdwn, escape_mrkdwn, to_mrkdwn};
use super::prepare::self_contained;
use super::reply::{Block, Field, Reply, Target};

/// The longest command text accepted (8 KiB); longer input is refused before parsing.
pub const MAX_INPUT_BYTES: usize = 8 * 1024;
/// Characters in one section text (Slack: 3,000).
pub const MAX_SECTION_CHARS: usize = 3_000;
/// Blocks in one message (Slack: 50).
pub const MAX_BLOCKS: usize = 50;
/// Characters in a header (Slack: 150).
pub const MAX_HEADER_CHARS: usize = 150;
/// Fields in one fields block (Slack: 10).
pub const MAX_FIELDS: usize = 10;
/// Characters in one field value (Slack: 2,000).
pub const MAX_FIELD_CHARS: usize = 2_000;
/// Characters in a button label (Slack: 75).
pub const MAX_BUTTON_LABEL_CHARS: usize = 75;
/// Characters in a reply's plain-text fallback.
pub const MAX_FALLBACK_CHARS: usize = 3_000;
/// Buttons in one buttons block (Slack: 25 elements per actions block).
pub const MAX_BUTTONS: usize = 25;

/// What a message that had to be shortened says at its end.
pub const SHORTENED_NOTE: &str =
    "_This message was shortened to fit; `show RB-…` has the full runbook._";

/// The smallest limit the splitters honour: one character always fits, even escaped.
const MIN_LIMIT: usize = 16;

/// Cuts `text` to at most `max` characters, ending in `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let keep = max.saturating_sub(1);
    let mut out: String = text.chars().take(keep).collect();
    out.push('…');
    out
}

/// Splits markdown into chunks whose `mrkdwn` rendering has at most `max` characters each.
/// Empty input gives no chunk.
pub fn split_markdown(markdown: &str, max: usize) -> Vec<String> {
    let max = max.max(MIN_LIMIT);
    let measure = |s: &str| to_mrkdwn(s).chars().count();
    let text = markdown.trim_matches('\n');
    if text.trim().is_empty() {
        return Vec::new();
    }
    if measure(text) <= max {
        return vec![text.to_owned()];
    }
    let prepared = self_contained(text);
    let units = attach_continuations(paragraphs(&prepared), max, &measure);
    let chunks = pack(
        &units,
        "\n\n",
        max,
        &measure,
        &|unit: &str| match Fence::of_block(unit) {
            Some(fence) => split_fenced(unit, &fence, max),
            None if is_table(unit) => split_table(unit, max, &measure),
            None => split_lines(unit, max, &measure),
        },
    );
    chunks
        .into_iter()
        .map(|c| dedent_chunk(c.trim_matches('\n').to_owned()))
        .filter(|c| !c.trim().is_empty() && !to_mrkdwn(c).trim().is_empty())
        .collect()
}

/// Splits a code text into chunks whose fenced `mrkdwn` rendering
/// ([`code_to_mrkdwn`]) has at most `max` characters each. Empty input gives no chunk.
pub fn split_code(code: &str, max: usize) -> Vec<String> {
    let max = max.max(MIN_LIMIT);
    let measure = |s: &str| code_to_mrkdwn(s).chars().count();
    let text = code.trim_end_matches('\n');
    if text.trim().is_empty() {
        return Vec::new();
    }
    if measure(text) <= max {
        return vec![text.to_owned()];
    }
    let units: Vec<String> = text.split('\n').map(str::to_owned).collect();
    pack(&units, "\n", max, &measure, &|line: &str| {
        split_chars(line, max, &measure)
    })
}

/// Splits `blocks` into messages of at most `max_blocks` blocks each (at least one message,
/// possibly empty).
pub fn paginate(blocks: Vec<Block>, max_blocks: usize) -> Vec<Vec<Block>> {
    let max_blocks = max_blocks.max(1);
    if blocks.len() <= max_blocks {
        return vec![blocks];
    }
    let mut pages = Vec::new();
    let mut page = Vec::with_capacity(max_blocks);
    for b in blocks {
        if page.len() == max_blocks {
            pages.push(std::mem::take(&mut page));
        }
        page.push(b);
    }
    if !page.is_empty() {
        pages.push(page);
    }
    pages
}

/// Keeps `blocks` within one message of `max_blocks` blocks and `max_chars` characters: past
/// either, the last blocks are dropped and a context block saying so (`note`) takes the last
/// place. Used for messages that are updated in place and so cannot spread over several
/// messages.
pub fn fit_one_message(
    mut blocks: Vec<Block>,
    max_blocks: usize,
    max_chars: usize,
    note: &str,
) -> Vec<Block> {
    let max_blocks = max_blocks.max(1);
    if blocks.len() <= max_blocks && blocks_chars(&blocks) <= max_chars {
        return blocks;
    }
    // Keep the buttons: they are what the message is for.
    let buttons = blocks
        .iter()
        .rposition(|b| matches!(b, Block::Buttons(_)))
        .map(|i| blocks.remove(i));
    let note = Block::Context(note.to_owned());
    let room_blocks = max_blocks.saturating_sub(1 + usize::from(buttons.is_some()));
    let mut room_chars = max_chars
        .saturating_sub(block_chars(&note))
        .saturating_sub(buttons.as_ref().map_or(0, block_chars));
    let mut kept = Vec::with_capacity(room_blocks + 2);
    for block in blocks {
        let size = block_chars(&block);
        if kept.len() == room_blocks || size > room_chars {
            break;
        }
        room_chars -= size;
        kept.push(block);
    }
    kept.push(note);
    kept.extend(buttons);
    kept.truncate(max_blocks);
    kept
}

/// Brings one reply within every limit: headers, fields, sections, code and context are cut or
/// split, and a reply over [`MAX_BLOCKS`] blocks or [`MAX_MESSAGE_CHARS`] characters is spread
/// over several messages in order, all with the reply's target; an anchored reply's anchor and
/// buttons go with its last message. An update, or an anchored new top-level message (an
/// execution's header, which its thread hangs from), must stay one message and is shortened
/// with [`SHORTENED_NOTE`] instead.
pub fn fit_reply(reply: Reply) -> Vec<Reply> {
    let Reply {
        blocks,
        visibility,
        target,
        anchor,
        text,
        file,
        image,
    } = reply;
    let text = truncate(&text, MAX_FALLBACK_CHARS);
    let room = MAX_MESSAGE_CHARS.saturating_sub(escape_mrkdwn(&text).chars().count());
    let mut blocks: Vec<Block> = blocks.into_iter().flat_map(fit_block).collect();
    let one_message = matches!(target, Target::Update(_) | Target::Refresh(_))
        || (anchor.is_some() && target == Target::NewMessage);
    if one_message {
        return vec![Reply {
            blocks: fit_one_message(blocks, MAX_BLOCKS, room, SHORTENED_NOTE),
            visibility,
            target,
            anchor,
            text,
            file,
            image,
        }];
    }
    if blocks.len() <= MAX_BLOCKS && blocks_chars(&blocks) <= room {
        return vec![Reply {
            blocks,
            visibility,
            target,
            anchor,
            text,
            file,
            image,
        }];
    }
    // The buttons go on the last message: the one anchored, updated when acted on.
    let buttons: Vec<Block> = if anchor.is_some() {
        let (buttons, rest): (Vec<Block>, Vec<Block>) = blocks
            .into_iter()
            .partition(|b| matches!(b, Block::Buttons(_)));
        blocks = rest;
        buttons
    } else {
        Vec::new()
    };
    let mut pages = paginate_within(
        blocks,
        MAX_BLOCKS.saturating_sub(buttons.len()),
        room.saturating_sub(blocks_chars(&buttons)),
    );
    if let Some(last) = pages.last_mut() {
        last.extend(buttons);
    }
    let n = pages.len();
    pages
        .into_iter()
        .enumerate()
        .map(|(i, page)| Reply {
            blocks: page,
            visibility,
            target,
            anchor: if i + 1 == n { anchor } else { None },
            text: text.clone(),
            file: if i + 1 == n { file.clone() } else { None },
            image: if i + 1 == n { image.clone() } else { None },
        })
        .collect()
}

/// One block within the limits, possibly as several blocks.
fn fit_block(block: Block) -> Vec<Block> {
    match block {
        Block::Header(t) => vec![Block::Header(truncate(&t, MAX_HEADER_CHARS))],
        Block::Section(md) => split_markdown(&md, MAX_SECTION_CHARS)
            .into_iter()
            .map(Block::Section)
            .collect(),
        Block::Context(md) => split_markdown(&md, MAX_SECTION_CHARS)
            .into_iter()
            .map(Block::Context)
            .collect(),
        Block::Code(code) => split_code(&code, MAX_SECTION_CHARS)
            .into_iter()
            .map(Block::Code)
            .collect(),
        Block::Fields(fields) => fields
            .chunks(MAX_FIELDS)
            .map(|chunk| Block::Fields(chunk.iter().map(fit_field).collect()))
            .collect(),
        Block::Buttons(buttons) => buttons
            .chunks(MAX_BUTTONS)
            .map(|chunk| {
                Block::Buttons(
                    chunk
                        .iter()
                        .cloned()
                        .map(|mut b| {
                            b.label = truncate(&b.label, MAX_BUTTON_LABEL_CHARS);
                            b
                        })
                        .collect(),
                )
            })
            .collect(),
        Block::Badges(b) => vec![Block::Badges(b)],
    }
}

/// A field whose label and rendered value fit [`MAX_FIELD_CHARS`] together.
fn fit_field(field: &Field) -> Field {
    let label = truncate(&field.label, 100);
    let room = MAX_FIELD_CHARS - label.chars().count() - 8;
    let mut value = field.value.clone();
    while to_mrkdwn(&value).chars().count() > room {
        let keep = value.chars().count() / 2;
        value = truncate(&value, keep.max(1));
        if keep <= 1 {
            break;
        }
    }
    Field { label, value }
}

/// Packs `units` joined by `sep` greedily into chunks of at most `max` measured characters.
/// A unit too large on its own is handed to `deeper`. Sizes are estimated by adding the units'
/// sizes and checked exactly once per chunk; a chunk that renders larger than its estimate is
/// halved until it fits.
fn pack(
    units: &[String],
    sep: &str,
    max: usize,
    measure: &dyn Fn(&str) -> usize,
    deeper: &dyn Fn(&str) -> Vec<String>,
) -> Vec<String> {
    let sep_cost = sep.chars().count();
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut estimate = 0usize;
    for unit in units {
        let size = measure(unit);
        if size > max {
            flush(&mut current, sep, max, measure, deeper, &mut out);
            estimate = 0;
            out.extend(deeper(unit));
            continue;
        }
        let added = if current.is_empty() {
            size
        } else {
            sep_cost + size
        };
        if !current.is_empty() && estimate + added > max {
            flush(&mut current, sep, max, measure, deeper, &mut out);
            current.push(unit);
            estimate = size;
        } else {
            current.push(unit);
            estimate += added;
        }
    }
    flush(&mut current, sep, max, measure, deeper, &mut out);
    out
}

fn flush(
    current: &mut Vec<&str>,
    sep: &str,
    max: usize,
    measure: &dyn Fn(&str) -> usize,
    deeper: &dyn Fn(&str) -> Vec<String>,
    out: &mut Vec<String>,
) {
    if current.is_empty() {
        return;
    }
    let joined = current.join(sep);
    if measure(&joined) <= max {
        out.push(joined);
    } else if current.len() == 1 {
        out.extend(deeper(&joined));
    } else {
        let mut second = current.split_off(current.len() / 2);
        flush(current, sep, max, measure, deeper, out);
        flush(&mut second, sep, max, measure, deeper, out);
    }
    current.clear();
}

/// Whether a paragraph unit is a table: a header row and a delimiter row (`|---|:--:|`).
fn is_table(unit: &str) -> bool {
    let mut lines = unit.split('\n');
    let (Some(head), Some(rule)) = (lines.next(), lines.next()) else {
        return false;
    };
    let rule = rule.trim();
    head.contains('|')
        && rule.contains('-')
        && rule
            .chars()
            .all(|c| matches!(c, '|' | '-' | ':' | ' ' | '\t'))
}

/// Splits a table by rows, repeating its header and delimiter rows in every chunk.
fn split_table(unit: &str, max: usize, measure: &dyn Fn(&str) -> usize) -> Vec<String> {
    let mut lines = unit.split('\n');
    let head = format!(
        "{}\n{}",
        lines.next().unwrap_or(""),
        lines.next().unwrap_or("")
    );
    let rows: Vec<String> = lines.map(str::to_owned).collect();
    let with_head = |body: &str| format!("{head}\n{body}");
    let measure_rows = |s: &str| measure(&with_head(s));
    pack(&rows, "\n", max, &measure_rows, &|row: &str| {
        split_words(row, max, measure)
    })
    .into_iter()
    .map(|body| {
        if measure_rows(&body) <= max {
            with_head(&body)
        } else {
            body
        }
    })
    .collect()
}

/// Joins an indented paragraph (the continuation of a list item after a blank line) to the unit
/// before it while the two fit together, so a chunk does not start with an indented line, which
/// would read as code on its own.
fn attach_continuations(
    units: Vec<String>,
    max: usize,
    measure: &dyn Fn(&str) -> usize,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(units.len());
    for unit in units {
        let indented = unit.starts_with(' ') || unit.starts_with('\t');
        if indented
            && Fence::of_block(&unit).is_none()
            && let Some(prev) = out.last_mut()
        {
            let joined = format!("{prev}\n\n{unit}");
            if measure(&joined) <= max {
                *prev = joined;
                continue;
            }
        }
        out.push(unit);
    }
    out
}

/// Splits a paragraph unit by lines, keeping each line with the more indented lines after it
/// (a list item with its nested items) where they fit, and going one level deeper where not.
fn split_lines(text: &str, max: usize, measure: &dyn Fn(&str) -> usize) -> Vec<String> {
    let base = text
        .split('\n')
        .filter(|l| !l.trim().is_empty())
        .map(indent_of)
        .min()
        .unwrap_or(0);
    let mut groups: Vec<String> = Vec::new();
    for line in text.split('\n') {
        let starts_group = !line.trim().is_empty() && indent_of(line) <= base;
        match groups.last_mut() {
            Some(g) if !starts_group => {
                g.push('\n');
                g.push_str(line);
            }
            _ => groups.push(line.to_owned()),
        }
    }
    if groups.len() > 1 {
        return pack(&groups, "\n", max, measure, &|group: &str| {
            split_lines(group, max, measure)
        });
    }
    // One line and what is nested under it.
    match text.split_once('\n') {
        None => split_words(text, max, measure),
        Some((head, rest)) => {
            let mut units = vec![head.to_owned()];
            units.extend(split_lines(rest, max, measure));
            pack(&units, "\n", max, measure, &|unit: &str| {
                split_words(unit, max, measure)
            })
        }
    }
}

/// The indentation of a line, in columns (a tab counts four).
fn indent_of(line: &str) -> usize {
    line.chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .map(|c| if c == '\t' { 4 } else { 1 })
        .sum()
}

/// A chunk that starts with an indented line (the middle of a nested list) loses its common
/// indentation: on its own, four spaces would make it a code block.
fn dedent_chunk(chunk: String) -> String {
    let first = chunk.split('\n').next().unwrap_or("");
    if indent_of(first) == 0 || Fence::open(first).is_some() {
        return chunk;
    }
    let common = chunk
        .split('\n')
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start_matches(' ').len())
        .min()
        .unwrap_or(0);
    if common == 0 {
        return chunk;
    }
    chunk
        .split('\n')
        .map(|l| {
            l.get(common..)
                .filter(|_| l.is_char_boundary(common))
                .unwrap_or(l.trim_start_matches(' '))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn split_words(text: &str, max: usize, measure: &dyn Fn(&str) -> usize) -> Vec<String> {
    let units: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
    if units.len() <= 1 {
        return split_chars(text, max, measure);
    }
    pack(&units, " ", max, measure, &|word: &str| {
        split_chars(word, max, measure)
    })
}

fn split_chars(text: &str, max: usize, measure: &dyn Fn(&str) -> usize) -> Vec<String> {
    let units: Vec<String> = text.chars().map(String::from).collect();
    // One character is the end of the road: keep it even if it renders oddly large.
    pack(&units, "", max, measure, &|c: &str| vec![c.to_owned()])
}

/// An opening code fence: its marker character, length and the full opening line.
struct Fence {
    marker: char,
    len: usize,
    line: String,
}

impl Fence {
    /// The fence opening `line`, if it is one (at most three spaces of indent).
    fn open(line: &str) -> Option<Fence> {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if indent > 3 {
            return None;
        }
        let rest = &line[indent..];
        let marker = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
        let len = rest.chars().take_while(|c| *c == marker).count();
        (len >= 3).then(|| Fence {
            marker,
            len,
            line: line.to_owned(),
        })
    }

    /// Whether `line` closes this fence.
    fn closes(&self, line: &str) -> bool {
        let t = line.trim();
        t.chars().count() >= self.len && t.chars().all(|c| c == self.marker)
    }

    /// The fence opening `block`, when the block is a fenced code block.
    fn of_block(block: &str) -> Option<Fence> {
        Fence::open(block.split('\n').next()?)
    }

    fn closing(&self) -> String {
        std::iter::repeat_n(self.marker, self.len).collect()
    }
}

/// Splits text into paragraph units at blank lines, keeping each fenced code block whole.
fn paragraphs(text: &str) -> Vec<String> {
    let mut units = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut fence: Option<Fence> = None;
    for line in text.split('\n') {
        match &fence {
            Some(f) => {
                current.push(line);
                if f.closes(line) {
                    fence = None;
                    units.push(current.join("\n"));
                    current.clear();
                }
            }
            None => {
                if let Some(f) = Fence::open(line) {
                    if !current.is_empty() {
                        units.push(current.join("\n"));
                        current.clear();
                    }
                    current.push(line);
                    fence = Some(f);
                } else if line.trim().is_empty() {
                    if !current.is_empty() {
                        units.push(current.join("\n"));
                        current.clear();
                    }
                } else {
                    current.push(line);
                }
            }
        }
    }
    if !current.is_empty() {
        units.push(current.join("\n"));
    }
    units
}

/// Splits a fenced code block by lines, closing and reopening the fence around each split.
fn split_fenced(block: &str, fence: &Fence, max: usize) -> Vec<String> {
    let mut lines: Vec<&str> = block.split('\n').collect();
    if lines.len() > 1 && lines.last().is_some_and(|l| fence.closes(l)) {
        lines.pop();
    }
    let inner: Vec<String> = lines.iter().skip(1).map(|l| (*l).to_owned()).collect();
    let close = fence.closing();
    let wrap = |body: &str| format!("{}\n{body}\n{close}", fence.line);
    let measure = |s: &str| to_mrkdwn(&wrap(s)).chars().count();
    pack(&inner, "\n", max, &measure, &|line: &str| {
        split_chars(line, max, &measure)
    })
    .into_iter()
    .map(|body| wrap(&body))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered_max(chunks: &[String]) -> usize {
        chunks
            .iter()
            .map(|c| to_mrkdwn(c).chars().count())
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn short_text_is_one_chunk() {
        assert_eq!(split_markdown("hello", 3000), vec!["hello".to_owned()]);
        assert!(split_markdown("  \n", 3000).is_empty());
    }

    #[test]
    fn long_paragraphs_split_at_boundaries() {
        let para = "word ".repeat(100);
        let text = vec![para.trim(); 30].join("\n\n");
        let chunks = split_markdown(&text, 3000);
        assert!(chunks.len() > 1);
        assert!(rendered_max(&chunks) <= 3000);
        for c in &chunks {
            assert!(c.starts_with("word"));
        }
    }

    #[test]
    fn escaping_counts() {
        let text = "&".repeat(2000);
        let chunks = split_markdown(&text, 3000);
        assert!(chunks.len() >= 4);
        assert!(rendered_max(&chunks) <= 3000);
        assert_eq!(chunks.concat(), text);
    }

    #[test]
    fn fences_are_reopened() {
        let code: String = (0..400).map(|i| format!("echo line {i}\n")).collect();
        let text = format!("Run:\n\n```sh\n{code}```\n\nDone.");
        let chunks = split_markdown(&text, 1000);
        assert!(rendered_max(&chunks) <= 1000);
        for c in chunks.iter().filter(|c| c.contains("echo")) {
            assert!(c.starts_with("```sh"), "{c}");
            assert!(c.ends_with("```"), "{c}");
        }
    }

    #[test]
    fn numbers_links_and_tables_survive_splits() {
        let items: String = (0..60)
            .map(|i| format!("1. Check item {i} with [the docs][d] and\n   tick it.\n"))
            .collect();
        let text = format!("{items}\n[d]: https://docs.example/x\n");
        let chunks = split_markdown(&text, 600);
        assert!(chunks.len() > 3);
        let plain: Vec<String> = chunks
            .iter()
            .map(|c| super::super::markdown::to_plain(c))
            .collect();
        let numbers: Vec<String> = plain
            .iter()
            .flat_map(|p| {
                p.lines()
                    .map(|l| l.split('.').next().unwrap_or("").to_owned())
            })
            .collect();
        let want: Vec<String> = (1..=60).map(|n| n.to_string()).collect();
        assert_eq!(numbers, want);
        assert!(
            plain
                .iter()
                .all(|p| p.lines().all(|l| l.contains("(https://docs.example/x)")))
        );

        let rows: String = (0..200).map(|i| format!("| host-{i} | ok |\n")).collect();
        let table = format!("| host | state |\n|---|---|\n{rows}");
        let chunks = split_markdown(&table, 1000);
        assert!(chunks.len() > 2);
        for c in &chunks {
            assert!(c.starts_with("| host | state |\n|---|---|"), "{c}");
            assert!(to_mrkdwn(c).starts_with("```\nhost"), "{c}");
        }
    }

    #[test]
    fn nested_chunks_never_turn_into_code() {
        let mut text = String::new();
        for a in 0..10 {
            text.push_str(&format!("{a}. Rack {a}\n"));
            for b in 0..30 {
                text.push_str(&format!(
                    "   - node {a}-{b}\n     - check the budget of {a}-{b}\n"
                ));
            }
        }
        for c in split_markdown(&text, 800) {
            assert!(!to_mrkdwn(&c).contains("```"), "{c}");
        }
    }

    #[test]
    fn code_splits_by_lines() {
        let code: String = (0..500).map(|i| format!("<line {i}>\n")).collect();
        let chunks = split_code(&code, 3000);
        assert!(chunks.len() > 1);
        for c in &chunks {
            assert!(code_to_mrkdwn(c).chars().count() <= 3000);
        }
    }

    #[test]
    fn pages_and_fit() {
        let blocks: Vec<Block> = (0..120).map(|i| Block::Section(i.to_string())).collect();
        let pages = paginate(blocks.clone(), 50);
        assert_eq!(
            pages.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![50, 50, 20]
        );
        let mut with_buttons = blocks;
        with_buttons.push(Block::Buttons(Vec::new()));
        let fit = fit_one_message(with_buttons, 50, MAX_MESSAGE_CHARS, "cut");
        assert_eq!(fit.len(), 50);
        assert!(matches!(fit.last(), Some(Block::Buttons(_))));
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
