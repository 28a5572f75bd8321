//! Runbooks as Markdown files: the format `vigilo runbook import|export|sync` reads and writes.
//!
//! ```markdown
//! +++
//! title = "Rotate the TLS certificate on the edge proxies"
//! category = "security"
//! owner = "alice"          # optional; default: the importing user
//! published = true         # optional; default false
//! key = "RB-00007"         # optional; written by export, matches the file to its runbook
//! +++
//!
//! Rotate the wildcard certificate before it expires.
//!
//! ## 1. Announce the rotation
//! - role: operator
//! - est: 2
//! - expected: The on-call engineer acknowledges in #ops.
//!
//! Post in #ops that the rotation starts and link this runbook.
//! ```
//!
//! [`parse`] reads a file into a [`RunbookFile`]; every error names the file and the line
//! (`rotate.md:14: step 3 is numbered 4`). [`write()`] produces the canonical form, and
//! `parse(write(b))` gives back exactly `b` (step ids aside).
//!
//! # The rules, precisely
//!
//! - TOML front matter between `+++` lines: `title` (required), `category`, `owner`,
//!   `published`, and `key` (`RB-…`, an extension of the product format: a file that carries
//!   it names the runbook it belongs to, so a sync follows it through title changes).
//! - The description is the text between the front matter and the first step heading; one
//!   blank line after the front matter and one before the first heading belong to the layout.
//! - A step is a `## N. Title` heading, numbered from 1. A `## ` line inside a fenced code block
//!   is not a heading.
//! - The first list directly under the heading holds the fields, one `- name: value` item each:
//!   `role`, `est` (whole minutes), `expected`, `verification`, `rollback`, `approval:
//!   required` (or `approval: N`, N distinct approvers; `required` is the canonical form of
//!   one), `approval-expires: M` (each approval lapses after M whole minutes; needs
//!   `approval`), `destructive: yes`. A value may go on over lines indented by two spaces. A
//!   value written as a TOML basic string (`"…"`, with `\n`, `\"`, `\\` escapes) is read
//!   unescaped: the writer uses that form for values a plain item cannot carry exactly
//!   (leading or trailing blanks, blank lines, code fences, a leading `"`).
//! - After the list and one blank line comes the instruction, kept byte for byte, up to the
//!   next heading (the blank line before the heading, and the final line break of a step at the
//!   end of the file, belong to the layout).
//! - A text line that would read as a heading, or a code fence that is never closed, is written
//!   with one more leading backslash (`\## Notes`); the reader removes one backslash from every
//!   line outside a code block that starts with backslashes followed by such a line. So texts
//!   round-trip exactly, and CommonMark shows `\## Notes` as the text `## Notes`.

use std::ops::Range;

use crate::fields::{MAX_STEPS, ValidationError};
use crate::ids::{Key, KeyKind};
use crate::runbook::{RunbookBody, RunbookInput, StepInput, no_steps_message};

/// A runbook read from a file: the body to save, plus what the front matter says about the
/// runbook record itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunbookFile {
    /// Title, description, category and steps, validated (it passes [`RunbookInput::validate`]).
    /// Step ids are `None`.
    pub input: RunbookInput,
    /// The `key` the file names (`RB-…`), if any.
    pub key: Option<Key>,
    /// The owner's handle, if given.
    pub owner: Option<String>,
    /// Whether the runbook is to be published, if given.
    pub published: Option<bool>,
}

/// Why a file could not be read: the file, the 1-based line, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct FileError {
    /// The file name as given to [`parse`].
    pub file: String,
    /// The line, 1-based.
    pub line: usize,
    /// What is wrong, and how to fix it.
    pub message: String,
}

/// The step fields a file may give, in canonical order.
const STEP_FIELDS: [&str; 8] = [
    "role",
    "est",
    "expected",
    "verification",
    "rollback",
    "approval",
    "approval-expires",
    "destructive",
];

/// The front-matter fields.
const FRONT_FIELDS: [&str; 5] = ["title", "category", "owner", "published", "key"];

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// The canonical file of `body`, without a `key`. `owner` and `published` go into the front
/// matter when given.
pub fn write(body: &RunbookBody, owner: Option<&str>, published: Option<bool>) -> String {
    write_keyed(None, body, owner, published)
}

/// The canonical file of `body`, naming the runbook `key` in the front matter when given (what
/// `vigilo runbook export` writes, so a later import or sync finds the runbook again).
pub fn write_keyed(
    key: Option<Key>,
    body: &RunbookBody,
    owner: Option<&str>,
    published: Option<bool>,
) -> String {
    let mut out = String::with_capacity(256 + body.description.as_str().len());
    out.push_str("+++\n");
    out.push_str(&format!("title = {}\n", quote(body.title.as_str())));
    if !body.category.is_empty() {
        out.push_str(&format!("category = {}\n", quote(body.category.as_str())));
    }
    if let Some(o) = owner.filter(|o| !o.is_empty()) {
        out.push_str(&format!("owner = {}\n", quote(o)));
    }
    if let Some(p) = published {
        out.push_str(&format!("published = {p}\n"));
    }
    if let Some(k) = key {
        out.push_str(&format!("key = {}\n", quote(&k.to_string())));
    }
    out.push_str("+++\n");

    let has_steps = !body.steps.is_empty();
    let description = body.description.as_str();
    if !description.is_empty() {
        out.push('\n');
        push_text(&mut out, description);
        out.push('\n');
        if has_steps {
            out.push('\n');
        }
    } else if has_steps {
        out.push('\n');
    }

    let last = body.steps.len().saturating_sub(1);
    for (i, step) in body.steps.iter().enumerate() {
        out.push_str(&format!("## {}. {}\n", i + 1, step.title.as_str()));
        push_field(&mut out, "role", step.owner_role.as_str());
        out.push_str(&format!("- est: {}\n", step.est_minutes.get()));
        push_field(&mut out, "expected", step.expected_outcome.as_str());
        push_field(&mut out, "verification", step.verification.as_str());
        push_field(&mut out, "rollback", step.rollback_note.as_str());
        match step.approvals_needed() {
            0 => {}
            1 => out.push_str("- approval: required\n"),
            n => out.push_str(&format!("- approval: {n}\n")),
        }
        if let Some(m) = step
            .approval_expires_minutes
            .filter(|_| step.requires_approval)
        {
            out.push_str(&format!("- approval-expires: {m}\n"));
        }
        if step.is_destructive {
            out.push_str("- destructive: yes\n");
        }
        let text = step.description.as_str();
        if !text.is_empty() {
            out.push('\n');
            push_text(&mut out, text);
            out.push('\n');
            if i != last {
                out.push('\n');
            }
        } else if i != last {
            out.push('\n');
        }
    }
    out
}

/// Appends a field item, unless the value is empty.
fn push_field(out: &mut String, name: &str, value: &str) {
    if value.is_empty() {
        return;
    }
    out.push_str("- ");
    out.push_str(name);
    out.push_str(": ");
    if plain_value(value) {
        let mut lines = value.split('\n');
        if let Some(first) = lines.next() {
            out.push_str(first);
        }
        for l in lines {
            out.push_str("\n  ");
            out.push_str(l);
        }
    } else {
        out.push_str(&quote(value));
    }
    out.push('\n');
}

/// True when a value reads back exactly from a plain list item (with two-space continuation
/// lines), so it needs no quoting.
fn plain_value(v: &str) -> bool {
    !v.is_empty()
        && !v.starts_with('"')
        && !v.contains("```")
        && !v.contains("~~~")
        && !v.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
        && v.trim_start() == v
        && v.split('\n')
            .all(|l| !l.trim().is_empty() && l.trim_end() == l)
}

/// Appends a description or instruction, escaping the lines that would otherwise read as a
/// heading or an unclosed code fence (see the module documentation).
fn push_text(out: &mut String, text: &str) {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut i = 0;
    while let Some(full) = lines.get(i) {
        let content = strip_nl(full);
        if escaped_special(content) || heading_like(content) {
            out.push('\\');
            out.push_str(full);
            i += 1;
            continue;
        }
        if let Some(f) = fence_open(content) {
            let close = (i + 1..lines.len()).find(|&j| fence_close(strip_nl(lines[j]), f));
            match close {
                Some(j) => {
                    for l in &lines[i..=j] {
                        out.push_str(l);
                    }
                    i = j + 1;
                }
                None => {
                    out.push('\\');
                    out.push_str(full);
                    i += 1;
                }
            }
            continue;
        }
        out.push_str(full);
        i += 1;
    }
}

/// A TOML basic string: `"…"` with `\"`, `\\`, `\n`, `\t`, `\r` and `\uXXXX` escapes.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------------
// Lines, headings, fences
// ---------------------------------------------------------------------------------------------

fn strip_nl(line: &str) -> &str {
    line.strip_suffix('\n').unwrap_or(line)
}

/// `##` at the start of the line, followed by a blank or nothing.
fn heading_like(line: &str) -> bool {
    match line.strip_prefix("##") {
        Some(rest) => rest.is_empty() || rest.starts_with([' ', '\t', '\r']),
        None => false,
    }
}

/// A code fence: the character and how many times it repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fence {
    ch: char,
    len: usize,
}

/// Up to three spaces, then at least three backticks or tildes (backtick fences have no
/// backtick in their info string).
fn fence_open(line: &str) -> Option<Fence> {
    let rest = line.trim_start_matches(' ');
    if line.len() - rest.len() > 3 {
        return None;
    }
    let ch = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = rest.chars().take_while(|c| *c == ch).count();
    if len < 3 {
        return None;
    }
    let info = &rest[len * ch.len_utf8()..];
    if ch == '`' && info.contains('`') {
        return None;
    }
    Some(Fence { ch, len })
}

/// Closes `f`: up to three spaces, at least as many fence characters, then only blanks.
fn fence_close(line: &str, f: Fence) -> bool {
    let rest = line.trim_start_matches(' ');
    if line.len() - rest.len() > 3 {
        return false;
    }
    let len = rest.chars().take_while(|c| *c == f.ch).count();
    len >= f.len && rest[len * f.ch.len_utf8()..].trim().is_empty()
}

/// Backslashes followed by a heading-like line or a fence: a line the writer escaped.
fn escaped_special(line: &str) -> bool {
    if !line.starts_with('\\') {
        return false;
    }
    let rest = line.trim_start_matches('\\');
    heading_like(rest) || fence_open(rest).is_some()
}

/// One line of the file.
#[derive(Clone, Copy, Debug)]
struct Line<'a> {
    /// 1-based line number.
    no: usize,
    /// The line with its `\n`.
    full: &'a str,
    /// Outside a code block and written with one extra leading backslash.
    escaped: bool,
}

impl<'a> Line<'a> {
    fn text(&self) -> &'a str {
        strip_nl(self.full)
    }

    fn is_blank(&self) -> bool {
        self.text().trim().is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, line: usize, message: impl Into<String>) -> FileError {
        FileError {
            file: self.file.to_owned(),
            line,
            message: message.into(),
        }
    }
}

/// Where things were found, to point validation errors at the right line.
#[derive(Default)]
struct Lines {
    front: usize,
    title: Option<usize>,
    category: Option<usize>,
    published: Option<usize>,
    description: usize,
    steps: Vec<StepLines>,
}

#[derive(Default)]
struct StepLines {
    heading: usize,
    fields: Vec<(&'static str, usize)>,
    instruction: Option<usize>,
}

impl StepLines {
    fn field(&self, name: &str) -> usize {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(self.heading, |(_, l)| *l)
    }
}

/// Reads a runbook file. `file_name` is only used in error messages.
pub fn parse(file_name: &str, text: &str) -> Result<RunbookFile, FileError> {
    let cx = Ctx { file: file_name };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines: Vec<Line<'_>> = text
        .split_inclusive('\n')
        .enumerate()
        .map(|(i, full)| Line {
            no: i + 1,
            full,
            escaped: false,
        })
        .collect();

    // Front matter.
    let opens = lines.first().is_some_and(|l| l.text().trim_end() == "+++");
    if !opens {
        return Err(cx.err(
            1,
            "a runbook file starts with TOML front matter between `+++` lines (with at least `title = \"…\"`)",
        ));
    }
    let close = lines
        .iter()
        .skip(1)
        .position(|l| l.text().trim_end() == "+++")
        .map(|p| p + 1)
        .ok_or_else(|| {
            cx.err(
                1,
                "the front matter opened here is not closed; add a `+++` line after it",
            )
        })?;
    let mut found = Lines {
        front: 1,
        ..Default::default()
    };
    let mut file = RunbookFile::default();
    front_matter(&cx, &lines[1..close], &mut file, &mut found)?;

    // Mark headings and escaped lines, tracking code fences.
    let mut headings = Vec::new();
    let mut fence: Option<Fence> = None;
    for (i, line) in lines.iter_mut().enumerate().skip(close + 1) {
        let t = line.text();
        if let Some(f) = fence {
            if fence_close(t, f) {
                fence = None;
            }
            continue;
        }
        if escaped_special(t) {
            line.escaped = true;
        } else if heading_like(t) {
            headings.push(i);
        } else if let Some(f) = fence_open(t) {
            fence = Some(f);
        }
    }

    // Description.
    let body_start = close + 1;
    let first_heading = headings.first().copied().unwrap_or(lines.len());
    let mut desc_lines = &lines[body_start..first_heading];
    if desc_lines.first().is_some_and(Line::is_blank) {
        desc_lines = &desc_lines[1..];
    }
    found.description = desc_lines.first().map_or(lines[close].no + 1, |l| l.no);
    file.input.description = region_text(desc_lines, first_heading < lines.len());

    // Steps.
    if headings.len() > MAX_STEPS {
        let l = lines[headings[MAX_STEPS]].no;
        return Err(cx.err(
            l,
            format!(
                "a runbook may have at most {MAX_STEPS} steps (this file has {})",
                headings.len()
            ),
        ));
    }
    for (n, &h) in headings.iter().enumerate() {
        let end = headings.get(n + 1).copied().unwrap_or(lines.len());
        let (step, at) = parse_step(&cx, n + 1, &lines[h], &lines[h + 1..end], end < lines.len())?;
        file.input.steps.push(step);
        found.steps.push(at);
    }

    // Validate, pointing at the line of the field that is wrong.
    if let Err(e) = file.input.clone().validate() {
        return Err(validation_error(&cx, &found, e));
    }
    if file.published == Some(true) && file.input.steps.is_empty() {
        return Err(cx.err(
            found.published.unwrap_or(found.front),
            format!(
                "`published = true`, but {}; add a step, or set `published = false` to save a draft",
                no_steps_message("this file")
            ),
        ));
    }
    Ok(file)
}

/// The text of a description or instruction region: lines unescaped, then the layout's line
/// breaks removed (the last line's break, and a blank line before a following heading).
fn region_text(lines: &[Line<'_>], before_heading: bool) -> String {
    let mut s = String::new();
    for l in lines {
        if l.escaped {
            s.push_str(&l.full[1..]);
        } else {
            s.push_str(l.full);
        }
    }
    if s.ends_with('\n') {
        s.pop();
        if before_heading {
            let tail_start = s.rfind('\n').map_or(0, |p| p + 1);
            if s[tail_start..].trim().is_empty() {
                s.truncate(tail_start.saturating_sub(1));
            }
        }
    }
    s
}

fn front_matter(
    cx: &Ctx<'_>,
    lines: &[Line<'_>],
    file: &mut RunbookFile,
    found: &mut Lines,
) -> Result<(), FileError> {
    let first_no = lines.first().map_or(2, |l| l.no);
    let src: String = lines.iter().map(|l| l.full).collect();
    let table: toml::Table = toml::from_str(&src).map_err(|e| {
        let line = e.span().map_or(first_no, |r: Range<usize>| {
            first_no + src[..r.start.min(src.len())].matches('\n').count()
        });
        cx.err(
            line,
            format!("front matter: {}", e.message().trim_end_matches('\n')),
        )
    })?;
    let line_of = |key: &str| key_line(lines, key).unwrap_or(first_no);
    let mut keys: Vec<(usize, &String, &toml::Value)> =
        table.iter().map(|(k, v)| (line_of(k), k, v)).collect();
    keys.sort_by_key(|(l, k, _)| (*l, (*k).clone()));
    let mut title = None;
    for (line, k, v) in keys {
        let string = |what: &str| -> Result<String, FileError> {
            match v {
                toml::Value::String(s) => Ok(s.clone()),
                _ => Err(cx.err(line, format!("`{k}` must be a string, like {what}"))),
            }
        };
        match k.as_str() {
            "title" => {
                title = Some(string("title = \"Restart the API\"")?);
                found.title = Some(line);
            }
            "category" => {
                file.input.category = string("category = \"database\"")?;
                found.category = Some(line);
            }
            "owner" => file.owner = Some(string("owner = \"alice\"")?),
            "published" => match v {
                toml::Value::Boolean(b) => {
                    file.published = Some(*b);
                    found.published = Some(line);
                }
                _ => return Err(cx.err(line, "`published` must be true or false")),
            },
            "key" => {
                let s = string("key = \"RB-00001\"")?;
                let key = Key::parse_kind(&s, KeyKind::Runbook).map_err(|_| {
                    cx.err(
                        line,
                        format!("`key` must be a runbook key such as \"RB-00001\", not {s:?}"),
                    )
                })?;
                file.key = Some(key);
            }
            "description" => {
                return Err(cx.err(
                    line,
                    "unknown field \"description\" (the description is the text between the front matter and the first step)",
                ));
            }
            other => return Err(cx.err(line, unknown_field(other, &FRONT_FIELDS))),
        }
    }
    match title {
        Some(t) => file.input.title = t,
        None => {
            return Err(cx.err(
                found.front,
                "the front matter has no title; add `title = \"…\"`",
            ));
        }
    }
    Ok(())
}

/// The line of `key = …` in the front matter.
fn key_line(lines: &[Line<'_>], key: &str) -> Option<usize> {
    lines.iter().find_map(|l| {
        let t = l.text().trim_start();
        let rest = t
            .strip_prefix(key)
            .or_else(|| t.strip_prefix(&format!("\"{key}\"")))
            .or_else(|| t.strip_prefix(&format!("'{key}'")))?;
        rest.trim_start().starts_with('=').then_some(l.no)
    })
}

/// `unknown field "x"`, with a suggestion when one known field is close.
fn unknown_field(name: &str, known: &[&str]) -> String {
    let lower = name.to_ascii_lowercase();
    let alias = match lower.as_str() {
        "owner_role" | "owner role" | "owner" | "team" | "who" => Some("role"),
        "est_minutes" | "minutes" | "time" | "duration" | "eta" => Some("est"),
        "expected_outcome" | "outcome" | "expect" | "result" => Some("expected"),
        "verify" | "check" | "verification_command" => Some("verification"),
        "rollback_note" | "undo" | "revert" => Some("rollback"),
        "requires_approval" | "approve" | "approved" | "gate" | "gated" | "approvals"
        | "approvers" | "approvals_required" => Some("approval"),
        "approval_expires"
        | "approval_expires_minutes"
        | "expires"
        | "expiry"
        | "approval-expiry"
        | "approval expires" => Some("approval-expires"),
        "is_destructive" | "danger" | "dangerous" => Some("destructive"),
        "name" | "heading" => Some("title"),
        "is_published" | "publish" => Some("published"),
        "author" | "owned_by" => Some("owner"),
        _ => None,
    }
    .filter(|a| known.contains(a));
    let close = alias.or_else(|| {
        known
            .iter()
            .filter(|k| {
                lower.starts_with(*k) || k.starts_with(lower.as_str()) || distance(&lower, k) <= 2
            })
            .min_by_key(|k| distance(&lower, k))
            .copied()
    });
    let shown: String = name.chars().take(40).collect();
    match close {
        Some(k) => format!("unknown field {shown:?} (did you mean {k:?}?)"),
        None => format!(
            "unknown field {shown:?} (known fields: {})",
            known.join(", ")
        ),
    }
}

/// Levenshtein distance, for suggestions (inputs are short field names).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `## N. Title` → (N, Title).
fn parse_heading(cx: &Ctx<'_>, line: &Line<'_>) -> Result<(u64, String), FileError> {
    let t = line.text();
    let rest = t.get(2..).unwrap_or("").trim_start();
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let bad = || {
        let shown: String = t.trim_end().chars().take(60).collect();
        cx.err(
            line.no,
            format!(
                "expected a step heading `## N. Title`, found `{shown}` (to keep a `## ` line in a text, write it as `\\## `)"
            ),
        )
    };
    if digits.is_empty() {
        return Err(bad());
    }
    let after = rest[digits.len()..].strip_prefix('.').ok_or_else(bad)?;
    let n = if digits.len() > 6 {
        u64::MAX
    } else {
        digits.parse::<u64>().map_err(|_| bad())?
    };
    Ok((n, after.trim().to_owned()))
}

/// A `- name: value` item: the name and the rest after the colon.
fn field_item(text: &str) -> Option<(&str, &str)> {
    let rest = text
        .strip_prefix("- ")
        .or_else(|| text.strip_prefix("* "))
        .or_else(|| text.strip_prefix("+ "))?;
    let (name, value) = rest.split_once(':')?;
    let name = name.trim();
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == ' ');
    ok.then_some((name, value))
}

fn is_list_item(text: &str) -> bool {
    text.starts_with("- ") || text.starts_with("* ") || text.starts_with("+ ") || text == "-"
}

fn is_continuation(text: &str) -> bool {
    text.starts_with("  ") || text.starts_with('\t')
}

/// The value of a field item: its first line and continuation lines; a whole TOML basic string
/// is unescaped.
fn field_value(first: &str, more: &[&str]) -> String {
    let first = first.trim_start_matches([' ', '\t']).trim_end();
    if more.is_empty()
        && first.starts_with('"')
        && let Some(s) = unquote(first)
    {
        return s;
    }
    let mut v = first.to_owned();
    for l in more {
        let l = l
            .strip_prefix("  ")
            .or_else(|| l.strip_prefix('\t'))
            .unwrap_or(l);
        v.push('\n');
        v.push_str(l.trim_end());
    }
    v
}

/// Reads a whole TOML basic string (`"…"`), or `None` when `s` is not exactly one.
fn unquote(s: &str) -> Option<String> {
    let mut chars = s.strip_prefix('"')?.chars();
    let mut out = String::new();
    loop {
        match chars.next()? {
            '"' => break,
            '\\' => match chars.next()? {
                'b' => out.push('\u{8}'),
                't' => out.push('\t'),
                'n' => out.push('\n'),
                'f' => out.push('\u{c}'),
                'r' => out.push('\r'),
                'e' => out.push('\u{1b}'),
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                u @ ('u' | 'U') => {
                    let n = if u == 'u' { 4 } else { 8 };
                    let hex: String = chars.by_ref().take(n).collect();
                    if hex.len() != n {
                        return None;
                    }
                    let code = u32::from_str_radix(&hex, 16).ok()?;
                    out.push(char::from_u32(code)?);
                }
                _ => return None,
            },
            c => out.push(c),
        }
    }
    chars.as_str().trim().is_empty().then_some(out)
}

fn parse_step(
    cx: &Ctx<'_>,
    expected: usize,
    heading: &Line<'_>,
    region: &[Line<'_>],
    before_heading: bool,
) -> Result<(StepInput, StepLines), FileError> {
    let (n, title) = parse_heading(cx, heading)?;
    if n != expected as u64 {
        return Err(cx.err(
            heading.no,
            if n > 999_999 {
                format!("step {expected} has a number that is far too large")
            } else {
                format!("step {expected} is numbered {n}")
            },
        ));
    }
    if title.is_empty() {
        return Err(cx.err(
            heading.no,
            format!("step {expected} has no title (write `## {expected}. Title`)"),
        ));
    }
    let mut step = StepInput {
        title,
        ..Default::default()
    };
    let mut at = StepLines {
        heading: heading.no,
        ..Default::default()
    };

    // The field list: directly under the heading (blank lines before it are tolerated when
    // what follows them is clearly a field item).
    let mut i = 0;
    let first_non_blank = region.iter().position(|l| !l.is_blank());
    if let Some(p) = first_non_blank
        && p > 0
        && field_item(region[p].text()).is_some_and(|(name, _)| {
            let lower = name.to_ascii_lowercase();
            STEP_FIELDS.contains(&lower.as_str())
        })
    {
        i = p;
    }
    let list_starts = region
        .get(i)
        .is_some_and(|l| !l.escaped && field_item(l.text()).is_some());
    if list_starts {
        let mut seen: Vec<&'static str> = Vec::new();
        while let Some(line) = region.get(i) {
            let t = line.text();
            if line.escaped || !is_list_item(t) {
                break;
            }
            let Some((name, first)) = field_item(t) else {
                return Err(cx.err(
                    line.no,
                    format!(
                        "step {expected}: expected a field `- name: value` here; leave a blank line between the fields and the instruction"
                    ),
                ));
            };
            let mut j = i + 1;
            while region
                .get(j)
                .is_some_and(|l| !l.escaped && is_continuation(l.text()))
            {
                j += 1;
            }
            let more: Vec<&str> = region[i + 1..j].iter().map(|l| l.text()).collect();
            let value = field_value(first, &more);
            let lower = name.to_ascii_lowercase();
            let Some(field) = STEP_FIELDS.iter().copied().find(|f| *f == lower) else {
                return Err(cx.err(line.no, unknown_field(name, &STEP_FIELDS)));
            };
            if seen.contains(&field) {
                return Err(cx.err(
                    line.no,
                    format!("step {expected}: field {field:?} is given twice"),
                ));
            }
            seen.push(field);
            at.fields.push((field, line.no));
            set_field(cx, expected, &mut step, field, value, line.no)?;
            i = j;
        }
        if region.get(i).is_some_and(Line::is_blank) {
            i += 1;
        }
    } else if region.first().is_some_and(Line::is_blank) {
        // No fields: the blank line after the heading belongs to the layout.
        i = 1;
    }
    if step.approval_expires_minutes.is_some() && !step.requires_approval {
        return Err(cx.err(
            at.field("approval-expires"),
            format!(
                "step {expected}: approval-expires needs an approval gate on the same step; add `- approval: required` (or `- approval: 2`), or remove approval-expires"
            ),
        ));
    }
    let rest = region.get(i..).unwrap_or(&[]);
    at.instruction = rest.first().map(|l| l.no);
    step.description = region_text(rest, before_heading);
    Ok((step, at))
}

fn set_field(
    cx: &Ctx<'_>,
    n: usize,
    step: &mut StepInput,
    field: &str,
    value: String,
    line: usize,
) -> Result<(), FileError> {
    match field {
        "role" => step.owner_role = value,
        "est" => step.est_minutes = parse_est(cx, n, &value, line)?,
        "expected" => step.expected_outcome = value,
        "verification" => step.verification = value,
        "rollback" => step.rollback_note = value,
        "approval" => {
            let v = value.trim().to_ascii_lowercase();
            let (gated, count) = match v.as_str() {
                "required" | "yes" | "true" | "y" => (true, 1),
                "no" | "false" | "none" | "optional" | "not required" | "n" | "" => (false, 0),
                d if !d.is_empty() && d.len() <= 6 && d.bytes().all(|b| b.is_ascii_digit()) => {
                    match d.parse::<i64>() {
                        Ok(n) if n >= 1 => (true, n),
                        _ => {
                            return Err(cx.err(
                                line,
                                format!(
                                    "step {n}: approval must name at least one approver (`approval: required` or `approval: 2`); write `approval: no` for none"
                                ),
                            ));
                        }
                    }
                }
                _ => {
                    return Err(cx.err(
                        line,
                        format!(
                            "step {n}: approval must be `required`, a number of distinct approvers such as `2`, or `no`, not {:?}",
                            short(&value)
                        ),
                    ));
                }
            };
            step.requires_approval = gated;
            step.approvals_required = count;
        }
        "approval-expires" => {
            step.approval_expires_minutes = Some(parse_minutes(
                cx,
                n,
                "approval-expires",
                &value,
                line,
                crate::runbook::approval::MAX_APPROVAL_EXPIRES_MINUTES,
                1,
            )?);
        }
        "destructive" => {
            step.is_destructive = match value.trim().to_ascii_lowercase().as_str() {
                "yes" | "true" | "y" => true,
                "no" | "false" | "n" | "" => false,
                _ => {
                    return Err(cx.err(
                        line,
                        format!(
                            "step {n}: destructive must be `yes` (or `no`), not {:?}",
                            short(&value)
                        ),
                    ));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn short(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

/// Whole minutes, optionally followed by `m`, `min`, `mins` or `minutes`.
fn parse_est(cx: &Ctx<'_>, n: usize, value: &str, line: usize) -> Result<i64, FileError> {
    parse_minutes(cx, n, "est", value, line, crate::fields::MAX_EST_MINUTES, 0)
}

/// Whole minutes between `min` and `max` for the field `field`, optionally followed by `m`,
/// `min`, `mins` or `minutes`.
fn parse_minutes(
    cx: &Ctx<'_>,
    n: usize,
    field: &str,
    value: &str,
    line: usize,
    max: u32,
    min: u32,
) -> Result<i64, FileError> {
    let v = value.trim();
    let digits_end = v
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit())
        .map_or(v.len(), |(i, _)| i);
    let (digits, unit) = v.split_at(digits_end);
    let unit_ok = matches!(
        unit.trim().to_ascii_lowercase().as_str(),
        "" | "m" | "min" | "mins" | "minute" | "minutes"
    );
    if digits.is_empty() || !unit_ok {
        return Err(cx.err(
            line,
            format!(
                "step {n}: {field} must be whole minutes, like `- {field}: 10`, not {:?}",
                short(v)
            ),
        ));
    }
    // Out of range is said here, with the number as written: a value too large for any
    // integer must not be reported as the integer it was clamped to.
    match digits.parse::<u32>() {
        Ok(m) if (min..=max).contains(&m) => Ok(i64::from(m)),
        _ => Err(cx.err(
            line,
            format!("step {n}: {field} must be between {min} and {max} minutes (got {digits})"),
        )),
    }
}

/// Maps a validation error of the whole input to the line of the field.
fn validation_error(cx: &Ctx<'_>, at: &Lines, e: ValidationError) -> FileError {
    if let Some(rest) = e.field.strip_prefix("steps[")
        && let Some((n, field)) = rest.split_once("].")
        && let Ok(n) = n.parse::<usize>()
        && let Some(s) = at.steps.get(n.wrapping_sub(1))
    {
        let (name, line) = match field {
            "title" => ("title", s.heading),
            "description" => ("instruction", s.instruction.unwrap_or(s.heading)),
            "owner_role" => ("role", s.field("role")),
            "est_minutes" => ("est", s.field("est")),
            "expected_outcome" => ("expected", s.field("expected")),
            "verification" => ("verification", s.field("verification")),
            "rollback_note" => ("rollback", s.field("rollback")),
            "approvals_required" => ("approval", s.field("approval")),
            "approval_expires_minutes" => ("approval-expires", s.field("approval-expires")),
            other => (other, s.heading),
        };
        return cx.err(line, format!("step {n}: {name} {}", e.problem));
    }
    let line = match e.field.as_str() {
        "title" => at.title.unwrap_or(at.front),
        "category" => at.category.unwrap_or(at.front),
        "description" => at.description,
        _ => at.front,
    };
    cx.err(line, format!("{} {}", e.field, e.problem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips() {
        for s in ["", "a", "\"x\"", "a\\b", "line\nline", "\t \r\u{1}\u{7f}é"] {
            assert_eq!(unquote(&quote(s)).as_deref(), Some(s), "{s:?}");
        }
        assert_eq!(unquote("\"a\" trailing"), None);
        assert_eq!(unquote("\"open"), None);
    }

    #[test]
    fn suggestions() {
        assert!(unknown_field("estimate", &STEP_FIELDS).contains("did you mean \"est\""));
        assert!(unknown_field("rollbak", &STEP_FIELDS).contains("did you mean \"rollback\""));
        assert!(unknown_field("zzz", &STEP_FIELDS).contains("known fields"));
    }

    #[test]
    fn fences() {
        assert_eq!(fence_open("```bash"), Some(Fence { ch: '`', len: 3 }));
        assert_eq!(fence_open("    ```"), None);
        assert_eq!(fence_open("``"), None);
        assert_eq!(fence_open("```a`b"), None);
        assert!(fence_close("````", Fence { ch: '`', len: 3 }));
        assert!(!fence_close("```x", Fence { ch: '`', len: 3 }));
        assert!(!fence_close("~~~", Fence { ch: '`', len: 3 }));
    }
}
