//! Markdown for chat: runbook texts are CommonMark; each surface gets its own flavour.
//!
//! - [`to_mrkdwn`]: Slack's `mrkdwn` (`*bold*`, `_italic_`, `~strike~`, `<url|text>`, code
//!   fences). Every `&`, `<` and `>` of the source text is escaped, links are kept only for
//!   `http`, `https` and `mailto` targets, and the words `@channel`, `@here` and `@everyone` are
//!   broken with a zero-width space, so no runbook or user text can ever ping a channel.
//! - [`to_plain`]: plain terminal text (lists with `-`, code indented by four spaces, links as
//!   `text (url)`), with control characters replaced so text cannot smuggle terminal escapes.
//!
//! In both, a soft line break (a hard-wrapped source line) is a space, as CommonMark says, and a
//! table is shown with aligned columns in a monospace block (Slack: a code block).
//!
//! Text that is *not* markdown (titles, handles, reasons shown verbatim) is embedded into
//! markdown with [`escape_markdown`], and into `mrkdwn` with [`escape_mrkdwn`].

use pulldown_cmark::{Event, LinkType, Parser, Tag, TagEnd};

/// The output flavour of [`render`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// Slack `mrkdwn`, escaped.
    Mrkdwn,
    /// Plain terminal text.
    Plain,
}

/// A CommonMark hard line break: lines of a list the bot writes (runbooks, summary lines) are
/// joined with it, since a plain line break is a space.
pub const LINE_BREAK: &str = "  \n";

/// Renders CommonMark `markdown` as Slack `mrkdwn`; see the module documentation.
pub fn to_mrkdwn(markdown: &str) -> String {
    render(markdown, Flavor::Mrkdwn)
}

/// Renders CommonMark `markdown` as plain terminal text; see the module documentation.
pub fn to_plain(markdown: &str) -> String {
    render(markdown, Flavor::Plain)
}

/// Renders CommonMark `markdown` in `flavor`.
pub fn render(markdown: &str, flavor: Flavor) -> String {
    let mut r = Renderer::new(flavor);
    for event in Parser::new_ext(markdown, super::prepare::options()) {
        r.event(event);
    }
    r.finish()
}

/// Escapes plain text for `mrkdwn`: `&`, `<`, `>` become entities, special mentions are broken,
/// control characters (other than newline and tab) are replaced.
pub fn escape_mrkdwn(text: &str) -> String {
    defuse_mentions(&sanitize(&escape_entities(text)))
}

/// Decodes the three entities Slack puts in the text it sends (`&amp;`, `&lt;`, `&gt;`), so a
/// slash command's text or a modal's input reaches the engine as the user typed it. Apply it to
/// text coming *from* Slack, never to text going to it.
pub fn decode_slack_entities(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A code block in `mrkdwn`: fenced, escaped, with any triple backtick inside broken up.
pub fn code_to_mrkdwn(code: &str) -> String {
    let body = escape_mrkdwn(code.trim_end_matches('\n')).replace("```", "`\u{200B}``");
    format!("```\n{body}\n```")
}

/// Escapes plain text so CommonMark shows it literally: every ASCII punctuation character gets
/// a backslash. `escape_markdown("<!channel> *x*")` renders as the text `<!channel> *x*`.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_ascii_punctuation() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Like [`escape_markdown`], but keeps `` `code` `` spans as code (service messages quote
/// commands that way): text between backticks is left as it is.
pub fn escape_markdown_keeping_code(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut in_code = false;
    for c in text.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if c.is_ascii_punctuation() && !in_code {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Replaces control characters other than newline and tab by `U+FFFD`, so text cannot carry
/// terminal escape sequences.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

fn escape_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Inserts a zero-width space after the `@` of `@channel`, `@here` and `@everyone` when they
/// stand as words (not inside an e-mail address).
fn defuse_mentions(text: &str) -> String {
    const WORDS: [&str; 3] = ["channel", "here", "everyone"];
    let mut out = String::with_capacity(text.len());
    let mut prev: Option<char> = None;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let after = &rest[c.len_utf8()..];
        if c == '@' && !prev.is_some_and(char::is_alphanumeric) {
            let hit = WORDS.iter().find(|w| {
                after.len() >= w.len()
                    && after.is_char_boundary(w.len())
                    && after[..w.len()].eq_ignore_ascii_case(w)
                    && !after[w.len()..]
                        .chars()
                        .next()
                        .is_some_and(|n| n.is_alphanumeric() || n == '_')
            });
            out.push('@');
            if hit.is_some() {
                out.push('\u{200B}');
            }
        } else {
            out.push(c);
        }
        prev = Some(c);
        rest = after;
    }
    out
}

/// Whether a link target may become a live link in `mrkdwn`.
fn linkable(dest: &str) -> bool {
    let lower = dest.trim().to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://") || lower.starts_with("mailto:")
}

/// Slack's formatting characters inside a bold, italic or struck-through span shown as
/// lookalikes, so a title such as `Restart *all* pods` stays one bold span: `*` as `∗`, `_` as
/// `ˍ`, `~` as `∼`, a backtick as `ˋ`.
fn defuse_formatting(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '*' => '\u{2217}',
            '_' => '\u{02CD}',
            '~' => '\u{223C}',
            '`' => '\u{02CB}',
            c => c,
        })
        .collect()
}

/// Columns a text takes in a monospace font: East Asian wide and full-width characters take
/// two.
fn display_width(text: &str) -> usize {
    text.chars()
        .map(|c| {
            let c = c as u32;
            let wide = (0x1100..=0x115F).contains(&c)
                || (0x2E80..=0xA4CF).contains(&c)
                || (0xAC00..=0xD7A3).contains(&c)
                || (0xF900..=0xFAFF).contains(&c)
                || (0xFE30..=0xFE4F).contains(&c)
                || (0xFF00..=0xFF60).contains(&c)
                || (0xFFE0..=0xFFE6).contains(&c)
                || (0x1F300..=0x1FAFF).contains(&c)
                || (0x20000..=0x3FFFD).contains(&c);
            if wide { 2 } else { 1 }
        })
        .sum()
}

struct OpenLink {
    dest: String,
    start: usize,
}

struct Renderer {
    flavor: Flavor,
    out: String,
    at_line_start: bool,
    blank_pending: bool,
    /// Just wrote a list bullet: the item's first paragraph continues on the same line.
    fresh_item: bool,
    /// Continuation prefixes: `> ` for quotes, spaces for list items and plain code blocks.
    prefixes: Vec<String>,
    lists: Vec<Option<u64>>,
    links: Vec<OpenLink>,
    /// How many bold, italic, struck-through or heading spans are open: inside one, Slack's
    /// formatting characters in the text would end it early, so they are shown as lookalikes.
    styled: usize,
    /// The table being read: its rows of cells (rendered without styling), shown at its end.
    table: Option<Vec<Vec<String>>>,
    /// Where the current table cell's text starts in `out`.
    cell_start: usize,
}

impl Renderer {
    fn new(flavor: Flavor) -> Self {
        Self {
            flavor,
            out: String::new(),
            at_line_start: true,
            blank_pending: false,
            fresh_item: false,
            prefixes: Vec::new(),
            lists: Vec::new(),
            links: Vec::new(),
            styled: 0,
            table: None,
            cell_start: 0,
        }
    }

    fn mrkdwn(&self) -> bool {
        self.flavor == Flavor::Mrkdwn && self.table.is_none()
    }

    /// Whether text is escaped for Slack (also inside tables, which are code there).
    fn escaped(&self) -> bool {
        self.flavor == Flavor::Mrkdwn
    }

    /// Writes already-escaped output, inserting the line prefixes after every newline.
    fn raw(&mut self, s: &str) {
        for (i, piece) in s.split('\n').enumerate() {
            if i > 0 {
                self.out.push('\n');
                self.at_line_start = true;
            }
            if piece.is_empty() {
                continue;
            }
            if self.at_line_start {
                for p in &self.prefixes {
                    self.out.push_str(p);
                }
                self.at_line_start = false;
            }
            self.out.push_str(piece);
            self.fresh_item = false;
        }
    }

    /// Writes source text, escaped for the flavour.
    fn text(&mut self, s: &str) {
        if self.escaped() {
            let mut escaped = escape_entities(s);
            if self.styled > 0 && self.mrkdwn() {
                escaped = defuse_formatting(&escaped);
            }
            self.raw(&escaped);
        } else {
            self.raw(s);
        }
    }

    fn newline(&mut self) {
        self.out.push('\n');
        self.at_line_start = true;
    }

    fn start_block(&mut self) {
        if self.fresh_item {
            self.fresh_item = false;
            self.blank_pending = false;
            return;
        }
        if self.out.is_empty() {
            self.blank_pending = false;
            return;
        }
        if !self.at_line_start {
            self.newline();
        }
        if self.blank_pending && self.lists.is_empty() {
            self.newline();
        }
        self.blank_pending = false;
    }

    fn end_block(&mut self) {
        self.blank_pending = true;
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(t) => self.text(&t),
            Event::Code(c) => {
                self.raw("`");
                self.text(&c);
                self.raw("`");
            }
            Event::InlineMath(m) | Event::DisplayMath(m) => self.text(&m),
            Event::Html(h) | Event::InlineHtml(h) => self.text(&h),
            Event::FootnoteReference(f) => {
                self.raw("[^");
                self.text(&f);
                self.raw("]");
            }
            Event::SoftBreak => self.raw(" "),
            Event::HardBreak => {
                if self.table.is_some() {
                    self.raw(" ");
                } else {
                    self.newline();
                }
            }
            Event::Rule => {
                self.start_block();
                self.raw(if self.mrkdwn() { "———" } else { "----" });
                self.end_block();
            }
            Event::TaskListMarker(done) => self.raw(if done { "[x] " } else { "[ ] " }),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph | Tag::HtmlBlock | Tag::MetadataBlock(_) => self.start_block(),
            Tag::Heading { .. } => {
                self.start_block();
                if self.mrkdwn() {
                    self.raw("*");
                }
                self.styled += 1;
            }
            Tag::BlockQuote(_) => {
                self.start_block();
                self.prefixes.push("> ".into());
            }
            Tag::CodeBlock(_) => {
                self.start_block();
                if self.mrkdwn() {
                    self.raw("```");
                    self.newline();
                } else {
                    self.prefixes.push("    ".into());
                }
            }
            Tag::List(first) => {
                if self.lists.is_empty() {
                    self.start_block();
                }
                self.lists.push(first);
            }
            Tag::Item => {
                if !self.at_line_start {
                    self.newline();
                }
                let bullet = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let b = format!("{n}. ");
                        *n += 1;
                        b
                    }
                    _ => {
                        if self.mrkdwn() {
                            "• ".to_owned()
                        } else {
                            "- ".to_owned()
                        }
                    }
                };
                self.raw(&bullet);
                self.prefixes.push(" ".repeat(bullet.chars().count()));
                self.fresh_item = true;
            }
            Tag::Table(_) => {
                self.start_block();
                self.table = Some(Vec::new());
            }
            Tag::TableHead | Tag::TableRow => {
                if let Some(t) = self.table.as_mut() {
                    t.push(Vec::new());
                }
            }
            Tag::TableCell => self.cell_start = self.out.len(),
            Tag::Emphasis => {
                if self.mrkdwn() {
                    self.raw("_");
                }
                self.styled += 1;
            }
            Tag::Strong => {
                if self.mrkdwn() {
                    self.raw("*");
                }
                self.styled += 1;
            }
            Tag::Strikethrough => {
                if self.mrkdwn() {
                    self.raw("~");
                }
                self.styled += 1;
            }
            Tag::Link {
                link_type,
                dest_url,
                ..
            } => {
                let dest = if link_type == LinkType::Email {
                    format!("mailto:{dest_url}")
                } else {
                    dest_url.to_string()
                };
                self.links.push(OpenLink {
                    dest,
                    start: self.out.len(),
                });
            }
            Tag::Image { dest_url, .. } => self.links.push(OpenLink {
                dest: dest_url.to_string(),
                start: self.out.len(),
            }),
            Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::Superscript
            | Tag::Subscript => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph | TagEnd::HtmlBlock | TagEnd::MetadataBlock(_) => self.end_block(),
            TagEnd::Heading(_) => {
                self.styled = self.styled.saturating_sub(1);
                if self.mrkdwn() {
                    self.raw("*");
                }
                self.end_block();
            }
            TagEnd::BlockQuote(_) => {
                self.prefixes.pop();
                self.end_block();
            }
            TagEnd::CodeBlock => {
                if self.mrkdwn() {
                    if !self.at_line_start {
                        self.newline();
                    }
                    self.raw("```");
                } else {
                    self.prefixes.pop();
                }
                self.end_block();
            }
            TagEnd::List(_) => {
                self.lists.pop();
                if self.lists.is_empty() {
                    self.end_block();
                }
            }
            TagEnd::Item => {
                self.prefixes.pop();
                self.fresh_item = false;
            }
            TagEnd::Table => {
                let rows = self.table.take().unwrap_or_default();
                self.table_block(&rows);
                self.end_block();
            }
            TagEnd::TableHead | TagEnd::TableRow => {}
            TagEnd::TableCell => {
                let start = self.cell_start.min(self.out.len());
                let cell = self.out[start..].trim().to_owned();
                self.out.truncate(start);
                if let Some(row) = self.table.as_mut().and_then(|t| t.last_mut()) {
                    row.push(cell);
                }
            }
            TagEnd::Emphasis => {
                self.styled = self.styled.saturating_sub(1);
                if self.mrkdwn() {
                    self.raw("_");
                }
            }
            TagEnd::Strong => {
                self.styled = self.styled.saturating_sub(1);
                if self.mrkdwn() {
                    self.raw("*");
                }
            }
            TagEnd::Strikethrough => {
                self.styled = self.styled.saturating_sub(1);
                if self.mrkdwn() {
                    self.raw("~");
                }
            }
            TagEnd::Link | TagEnd::Image => self.close_link(),
            TagEnd::FootnoteDefinition
            | TagEnd::DefinitionList
            | TagEnd::DefinitionListTitle
            | TagEnd::DefinitionListDefinition
            | TagEnd::Superscript
            | TagEnd::Subscript => {}
        }
    }

    /// A table with aligned columns: a code block in `mrkdwn`, indented lines in plain text.
    fn table_block(&mut self, rows: &[Vec<String>]) {
        // The cells' text was taken back out: the table starts where the line started.
        self.at_line_start = self.out.is_empty() || self.out.ends_with('\n');
        let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0usize; columns];
        for row in rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(display_width(cell));
            }
        }
        let line = |row: &[String]| -> String {
            let cells: Vec<String> = (0..columns)
                .map(|i| {
                    let cell = row.get(i).map(String::as_str).unwrap_or("");
                    let pad = widths[i].saturating_sub(display_width(cell));
                    format!("{cell}{}", " ".repeat(pad))
                })
                .collect();
            cells.join(" | ").trim_end().to_owned()
        };
        let mut lines: Vec<String> = Vec::with_capacity(rows.len() + 1);
        for (i, row) in rows.iter().enumerate() {
            lines.push(line(row));
            if i == 0 {
                let rule: Vec<String> = widths.iter().map(|w| "-".repeat((*w).max(1))).collect();
                lines.push(rule.join("-+-"));
            }
        }
        if self.flavor == Flavor::Mrkdwn {
            let body = lines.join("\n").replace("```", "`\u{200B}``");
            self.raw(&format!("```\n{body}\n```"));
        } else {
            self.prefixes.push("    ".into());
            self.raw(&lines.join("\n"));
            self.prefixes.pop();
        }
    }

    fn close_link(&mut self) {
        let Some(link) = self.links.pop() else {
            return;
        };
        let start = link.start.min(self.out.len());
        let label = self.out[start..].to_owned();
        let dest = link.dest.trim().to_owned();
        if dest.is_empty() {
            return;
        }
        match self.flavor {
            Flavor::Mrkdwn if linkable(&dest) && self.table.is_none() => {
                self.out.truncate(start);
                let url = escape_entities(&dest).replace('|', "%7C");
                let plain_label = label.trim();
                if plain_label.is_empty() || plain_label == escape_entities(&dest) {
                    self.raw(&format!("<{url}>"));
                } else {
                    self.raw(&format!("<{url}|{}>", label.replace('\n', " ")));
                }
            }
            _ => {
                let shown = if self.escaped() {
                    escape_entities(&dest)
                } else {
                    dest.clone()
                };
                if label.trim().is_empty() {
                    self.raw(&shown);
                } else if label.trim() != shown {
                    self.raw(&format!(" ({shown})"));
                }
            }
        }
    }

    fn finish(self) -> String {
        let out = sanitize(self.out.trim_matches('\n').trim_end());
        match self.flavor {
            Flavor::Mrkdwn => defuse_mentions(&out),
            Flavor::Plain => out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrkdwn_formats_and_escapes() {
        assert_eq!(to_mrkdwn("**bold** and _it_"), "*bold* and _it_");
        assert_eq!(to_mrkdwn("a & b < c > d"), "a &amp; b &lt; c &gt; d");
        assert_eq!(to_mrkdwn("<!channel> hi"), "&lt;!channel&gt; hi");
        assert_eq!(to_mrkdwn("ping @channel now"), "ping @\u{200B}channel now");
        assert_eq!(to_mrkdwn("mail ops@here.com"), "mail ops@here.com");
        assert_eq!(
            to_mrkdwn("[docs](https://x.example/a?b=1&c=2)"),
            "<https://x.example/a?b=1&amp;c=2|docs>"
        );
        assert_eq!(to_mrkdwn("[x](!here)"), "x (!here)");
        assert_eq!(to_mrkdwn("<https://a.example>"), "<https://a.example>");
        assert_eq!(
            to_mrkdwn("```sh\nls <dir>\n```"),
            "```\nls &lt;dir&gt;\n```"
        );
        assert_eq!(to_mrkdwn("- a\n- b"), "• a\n• b");
        assert_eq!(to_mrkdwn("# Title\n\ntext"), "*Title*\n\ntext");
    }

    #[test]
    fn titles_stay_one_bold_span() {
        let title = escape_markdown("Restart *all* pods_now `x`");
        assert_eq!(
            to_mrkdwn(&format!("**{title}** · 3 steps")),
            "*Restart \u{2217}all\u{2217} pods\u{02CD}now \u{02CB}x\u{02CB}* · 3 steps"
        );
        assert_eq!(
            to_plain(&format!("**{title}**")),
            "Restart *all* pods_now `x`"
        );
        assert_eq!(to_mrkdwn("a *b* c"), "a _b_ c");
    }

    #[test]
    fn soft_breaks_are_spaces_and_tables_align() {
        assert_eq!(to_mrkdwn("one\ntwo"), "one two");
        assert_eq!(to_plain("one  \ntwo"), "one\ntwo");
        assert_eq!(
            to_mrkdwn("| a | long header |\n|---|---|\n| wide cell | x |"),
            "```\na         | long header\n----------+------------\nwide cell | x\n```"
        );
        assert_eq!(
            to_plain("| 班 | b |\n|---|---|\n| x | y |"),
            "    班 | b\n    ---+--\n    x  | y"
        );
    }

    #[test]
    fn slack_entities_decode_once() {
        assert_eq!(
            decode_slack_entities("a &amp;lt; b &lt;x&gt; &amp;"),
            "a &lt; b <x> &"
        );
        let t = "R&D <ops> & more";
        assert_eq!(decode_slack_entities(&escape_mrkdwn(t)), t);
    }

    #[test]
    fn plain_is_plain() {
        assert_eq!(
            to_plain("**bold** [docs](https://x.example)"),
            "bold docs (https://x.example)"
        );
        assert_eq!(to_plain("one\n\n```\ncode\n```"), "one\n\n    code");
        assert_eq!(to_plain("1. a\n2. b"), "1. a\n2. b");
        assert_eq!(to_plain("esc \u{1b}[31m"), "esc \u{FFFD}[31m");
    }

    #[test]
    fn escape_markdown_is_literal() {
        let t = "<!channel> *x* & [a](b) 1. #";
        assert_eq!(to_plain(&escape_markdown(t)), t);
        assert_eq!(
            to_mrkdwn(&escape_markdown(t)),
            "&lt;!channel&gt; *x* &amp; [a](b) 1. #"
        );
    }
}
