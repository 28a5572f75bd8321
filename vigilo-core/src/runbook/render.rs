//! Rendering of diffs for people.
//!
//! Both renderers produce plain text without ANSI escapes; a caller that wants colour colours
//! each line (unified) or row (side by side) by its marker. Control characters in step texts
//! are shown as `\u{FFFD}` so a runbook cannot smuggle terminal escapes into the output.
//!
//! Both renderers show the same things:
//! * changed runbook fields (title, description, category);
//! * every added, removed, changed and moved step, with its field lines; added and removed
//!   steps show their whole content;
//! * unchanged steps as one line each when next to a change, and collapsed into one
//!   `… N unchanged steps` line elsewhere;
//! * inside a field, up to 3 unchanged lines around each change, longer runs of unchanged
//!   lines collapsed into one `… N unchanged lines` line.
//!
//! Step numbers are positions in the new version, except for a removed step (its old position)
//! and a moved step (`old → new`).

use std::borrow::Cow;

use super::diff::{DiffLine, FieldDiff, LineTag, RunbookDiff, StepDiff, StepDiffKind};

/// Unchanged lines shown on each side of a changed line inside a field.
const CONTEXT_LINES: usize = 3;
/// Unchanged steps shown on each side of a step that is not unchanged.
const CONTEXT_STEPS: usize = 1;

/// A unified, line-oriented rendering of `d`.
///
/// ```text
/// --- v3
/// +++ v4
/// @@ runbook (changed: title) @@
///   title:
/// -   Fail over the db
/// +   Fail over the database
///   step 1 "Announce" (unchanged)
/// @@ step 2 "Stop writes" (changed: description, est_minutes) @@
///   description:
///     Put the app in read-only mode.
/// -   Wait a minute.
/// +   Wait until the queue is empty.
///   est_minutes:
/// -   5
/// +   10
/// - step 3 "Old check" (removed)
/// - description:
/// -   Check the old dashboard.
/// @@ step 6 → 3 "Promote replica" (moved) @@
/// + step 4 "Verify" (added)
/// + verification:
/// +   psql -c 'select 1'
///   … 12 unchanged steps (5–16)
/// ```
///
/// Every line starts with `-`, `+`, `@` or a space. A diff without changes renders as the two
/// header lines and `  (no changes)`.
pub fn unified(d: &RunbookDiff) -> String {
    let mut out = String::new();
    out.push_str(&format!("--- v{}\n+++ v{}\n", d.from_version, d.to_version));
    if d.is_empty() {
        out.push_str("  (no changes)\n");
        return out;
    }
    if !d.fields.is_empty() {
        out.push_str(&format!(
            "@@ runbook (changed: {}) @@\n",
            field_names(&d.fields)
        ));
        for f in &d.fields {
            unified_field(&mut out, ' ', f);
        }
    }
    for item in step_items(d) {
        match item {
            StepItem::Skipped { count, first, last } => {
                out.push_str(&format!("  … {count} unchanged steps ({first}–{last})\n"));
            }
            StepItem::Step(s) => unified_step(&mut out, s),
        }
    }
    out
}

fn unified_step(out: &mut String, s: &StepDiff) {
    let title = clean(s.title(), false);
    let block = match s.kind {
        StepDiffKind::Added => {
            out.push_str(&format!(
                "+ step {} \"{title}\" (added)\n",
                order(s.to_order)
            ));
            '+'
        }
        StepDiffKind::Removed => {
            out.push_str(&format!(
                "- step {} \"{title}\" (removed)\n",
                order(s.from_order)
            ));
            '-'
        }
        StepDiffKind::Unchanged => {
            out.push_str(&format!(
                "  step {} \"{title}\" (unchanged)\n",
                order(s.to_order)
            ));
            return;
        }
        StepDiffKind::Moved | StepDiffKind::Changed => {
            let what = match (s.kind, s.moved) {
                (StepDiffKind::Changed, true) => {
                    format!("moved; changed: {}", field_names(&s.fields))
                }
                (StepDiffKind::Changed, false) => format!("changed: {}", field_names(&s.fields)),
                _ => "moved".to_owned(),
            };
            out.push_str(&format!(
                "@@ step {} \"{title}\" ({what}) @@\n",
                step_number(s)
            ));
            ' '
        }
    };
    for f in &s.fields {
        unified_field(out, block, f);
    }
}

/// A field: a label line marked with `block`, then its lines marked by their tags.
fn unified_field(out: &mut String, block: char, f: &FieldDiff) {
    out.push_str(&format!("{block} {}:\n", f.field));
    for row in field_rows(f) {
        match row {
            FieldRow::Line(l) => {
                out.push(l.tag.marker());
                if !l.text.is_empty() {
                    out.push_str("   ");
                    out.push_str(&clean(&l.text, false));
                }
                out.push('\n');
            }
            FieldRow::Skipped(n) => out.push_str(&format!("    … {n} unchanged lines\n")),
        }
    }
}

/// A two-column rendering of `d`: the old version on the left, the new one on the right, and
/// between them a marker: `<` only on the left (deleted), `>` only on the right (inserted),
/// `|` different on the two sides, a space for the same on both.
///
/// Every line holds at most `width` characters (counted as `char`s; a tab counts as four
/// spaces). Cells longer than their column end in `…`; trailing spaces are trimmed. Below 5
/// columns there is no room for text and the rows hold little more than markers.
pub fn side_by_side(d: &RunbookDiff, width: usize) -> String {
    let mut t = Table::new(width);
    t.row(
        &format!("--- v{}", d.from_version),
        ' ',
        &format!("+++ v{}", d.to_version),
    );
    if d.is_empty() {
        t.row("(no changes)", ' ', "(no changes)");
        return t.out;
    }
    if !d.fields.is_empty() {
        t.row("runbook", '|', "runbook (changed)");
        for f in &d.fields {
            t.field(' ', f);
        }
    }
    for item in step_items(d) {
        match item {
            StepItem::Skipped { count, .. } => {
                let cell = format!("… {count} unchanged steps");
                t.row(&cell, ' ', &cell);
            }
            StepItem::Step(s) => t.step(s),
        }
    }
    t.out
}

/// Rows of a side-by-side rendering.
struct Table {
    out: String,
    width: usize,
    col: usize,
}

impl Table {
    fn new(width: usize) -> Self {
        Table {
            out: String::new(),
            width,
            col: width.saturating_sub(3) / 2,
        }
    }

    fn row(&mut self, left: &str, marker: char, right: &str) {
        let mut line = String::with_capacity(self.width + 8);
        fit(&mut line, left, self.col);
        line.push(' ');
        line.push(marker);
        line.push(' ');
        fit(&mut line, right, self.col);
        let line = line.trim_end();
        // Only narrower than 3 columns can the marker itself overflow.
        match line.char_indices().nth(self.width) {
            Some((cut, _)) => self.out.push_str(line[..cut].trim_end()),
            None => self.out.push_str(line),
        }
        self.out.push('\n');
    }

    fn step(&mut self, s: &StepDiff) {
        let old = format!(
            "step {} \"{}\"",
            order(s.from_order),
            s.from_title.as_deref().unwrap_or_default()
        );
        let new = format!(
            "step {} \"{}\"",
            order(s.to_order),
            s.to_title.as_deref().unwrap_or_default()
        );
        let block = match s.kind {
            StepDiffKind::Added => {
                self.row("", '>', &format!("{new} (added)"));
                '>'
            }
            StepDiffKind::Removed => {
                self.row(&format!("{old} (removed)"), '<', "");
                '<'
            }
            StepDiffKind::Unchanged => {
                self.row(&old, ' ', &new);
                return;
            }
            StepDiffKind::Moved => {
                self.row(&old, '|', &format!("{new} (moved)"));
                ' '
            }
            StepDiffKind::Changed => {
                let what = if s.moved { "moved, changed" } else { "changed" };
                self.row(&old, '|', &format!("{new} ({what})"));
                ' '
            }
        };
        for f in &s.fields {
            self.field(block, f);
        }
    }

    /// A field: a label row, then its lines, a deleted run paired with the inserted run that
    /// follows it.
    fn field(&mut self, block: char, f: &FieldDiff) {
        let label = format!("  {}:", f.field);
        match block {
            '>' => self.row("", '>', &label),
            '<' => self.row(&label, '<', ""),
            _ => self.row(&label, ' ', &label),
        }
        let rows = field_rows(f);
        let mut k = 0;
        while let Some(row) = rows.get(k) {
            match row {
                FieldRow::Skipped(n) => {
                    let cell = format!("    … {n} unchanged lines");
                    self.row(&cell, ' ', &cell);
                    k += 1;
                }
                FieldRow::Line(l) if l.tag == LineTag::Equal => {
                    let cell = text_cell(l);
                    self.row(&cell, ' ', &cell);
                    k += 1;
                }
                FieldRow::Line(_) => {
                    let dels = run_of(&rows, k, LineTag::Delete);
                    let ins = run_of(&rows, k + dels.len(), LineTag::Insert);
                    k += dels.len() + ins.len();
                    for p in 0..dels.len().max(ins.len()) {
                        match (dels.get(p), ins.get(p)) {
                            (Some(a), Some(b)) => self.row(&text_cell(a), '|', &text_cell(b)),
                            (Some(a), None) => self.row(&text_cell(a), '<', ""),
                            (None, Some(b)) => self.row("", '>', &text_cell(b)),
                            (None, None) => {}
                        }
                    }
                }
            }
        }
    }
}

/// The lines with tag `tag` in `rows` from `start` on, up to the first other row.
fn run_of<'a>(rows: &[FieldRow<'a>], start: usize, tag: LineTag) -> Vec<&'a DiffLine> {
    rows.iter()
        .skip(start)
        .map_while(|r| match r {
            FieldRow::Line(l) if l.tag == tag => Some(*l),
            _ => None,
        })
        .collect()
}

fn text_cell(l: &DiffLine) -> String {
    format!("    {}", l.text)
}

/// Appends `s` to `buf` as exactly `n` chars: padded with spaces, or cut and ended with `…`.
/// Tabs become four spaces and other control characters `\u{FFFD}`.
fn fit(buf: &mut String, s: &str, n: usize) {
    let s = clean(s, true);
    let len = s.chars().count();
    if len <= n {
        buf.push_str(&s);
        buf.extend(std::iter::repeat_n(' ', n - len));
    } else if n > 0 {
        buf.extend(s.chars().take(n - 1));
        buf.push('…');
    }
}

/// Replaces control characters by `\u{FFFD}`; tabs are kept, or expanded to four spaces.
fn clean(s: &str, expand_tabs: bool) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\t' if expand_tabs => out.push_str("    "),
            '\t' => out.push('\t'),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn field_names(fields: &[FieldDiff]) -> String {
    fields
        .iter()
        .map(|f| f.field.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn order(o: Option<u32>) -> String {
    o.map_or_else(|| "?".to_owned(), |n| n.to_string())
}

/// `N` for a step in place, `old → new` for a moved one.
fn step_number(s: &StepDiff) -> String {
    if s.moved {
        format!("{} → {}", order(s.from_order), order(s.to_order))
    } else {
        order(s.to_order)
    }
}

/// A step to show, or a run of unchanged steps shown as one line.
enum StepItem<'a> {
    Step(&'a StepDiff),
    Skipped {
        count: usize,
        first: String,
        last: String,
    },
}

/// The steps to show: every step that is not unchanged plus [`CONTEXT_STEPS`] unchanged
/// neighbours on each side; other runs of two or more unchanged steps are collapsed.
fn step_items(d: &RunbookDiff) -> Vec<StepItem<'_>> {
    let n = d.steps.len();
    let mut show = vec![false; n];
    for (k, s) in d.steps.iter().enumerate() {
        if s.kind != StepDiffKind::Unchanged {
            let hi = (k + CONTEXT_STEPS).min(n.saturating_sub(1));
            for v in show
                .iter_mut()
                .take(hi + 1)
                .skip(k.saturating_sub(CONTEXT_STEPS))
            {
                *v = true;
            }
        }
    }
    let mut items = Vec::new();
    let mut hidden: Vec<&StepDiff> = Vec::new();
    for (s, shown) in d.steps.iter().zip(show) {
        if shown {
            hidden_run(&mut items, &mut hidden);
            items.push(StepItem::Step(s));
        } else {
            hidden.push(s);
        }
    }
    hidden_run(&mut items, &mut hidden);
    items
}

fn hidden_run<'a>(items: &mut Vec<StepItem<'a>>, hidden: &mut Vec<&'a StepDiff>) {
    match hidden.as_slice() {
        [] => {}
        [one] => items.push(StepItem::Step(one)),
        [first, .., last] => items.push(StepItem::Skipped {
            count: hidden.len(),
            first: order(first.to_order),
            last: order(last.to_order),
        }),
    }
    hidden.clear();
}

/// A line of a field to show, or a run of unchanged lines shown as one line.
enum FieldRow<'a> {
    Line(&'a DiffLine),
    Skipped(usize),
}

/// The lines of a field to show: every changed line plus [`CONTEXT_LINES`] unchanged lines on
/// each side; other runs of two or more unchanged lines are collapsed.
fn field_rows(f: &FieldDiff) -> Vec<FieldRow<'_>> {
    let n = f.lines.len();
    let mut keep = vec![false; n];
    for (k, l) in f.lines.iter().enumerate() {
        if l.tag != LineTag::Equal {
            let hi = (k + CONTEXT_LINES).min(n.saturating_sub(1));
            for v in keep
                .iter_mut()
                .take(hi + 1)
                .skip(k.saturating_sub(CONTEXT_LINES))
            {
                *v = true;
            }
        }
    }
    let mut rows = Vec::new();
    let mut hidden: Vec<&DiffLine> = Vec::new();
    for (l, kept) in f.lines.iter().zip(keep) {
        if kept {
            hidden_lines(&mut rows, &mut hidden);
            rows.push(FieldRow::Line(l));
        } else {
            hidden.push(l);
        }
    }
    hidden_lines(&mut rows, &mut hidden);
    rows
}

fn hidden_lines<'a>(rows: &mut Vec<FieldRow<'a>>, hidden: &mut Vec<&'a DiffLine>) {
    match hidden.as_slice() {
        [] => {}
        [one] => rows.push(FieldRow::Line(one)),
        more => rows.push(FieldRow::Skipped(more.len())),
    }
    hidden.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::StepId;
    use crate::runbook::diff::diff;
    use crate::runbook::{RunbookBody, RunbookInput, StepInput};

    fn step(title: &str) -> StepInput {
        StepInput {
            id: Some(StepId::new()),
            title: title.to_owned(),
            description: format!("Do {title}.\n"),
            est_minutes: 5,
            ..StepInput::default()
        }
    }

    fn body(title: &str, steps: Vec<StepInput>) -> RunbookBody {
        RunbookInput {
            title: title.to_owned(),
            description: String::new(),
            category: "database".to_owned(),
            steps,
        }
        .validate()
        .unwrap()
    }

    /// a b c d → d a b' e: d moved first, b changed, c removed, e added, title changed.
    fn sample() -> RunbookDiff {
        let (a, mut b, c, d) = (step("a"), step("b"), step("c"), step("d"));
        b.description = "one\ntwo\nthree\n".to_owned();
        let from = body("Fail over", vec![a.clone(), b.clone(), c, d.clone()]);
        let mut b2 = b;
        b2.description = "one\nTWO\nthree\n".to_owned();
        b2.est_minutes = 10;
        let mut e = step("e");
        e.verification = "psql -c 'select 1'\n".to_owned();
        let to = body("Fail over the database", vec![d, a, b2, e]);
        diff(3, &from, 4, &to)
    }

    #[test]
    fn unified_shows_every_kind() {
        let text = unified(&sample());
        let expected = "\
--- v3
+++ v4
@@ runbook (changed: title) @@
  title:
-   Fail over
+   Fail over the database
@@ step 4 → 1 \"d\" (moved) @@
  step 2 \"a\" (unchanged)
@@ step 3 \"b\" (changed: description, est_minutes) @@
  description:
    one
-   two
+   TWO
    three
  est_minutes:
-   5
+   10
- step 3 \"c\" (removed)
- description:
-   Do c.
- est_minutes:
-   5
+ step 4 \"e\" (added)
+ description:
+   Do e.
+ est_minutes:
+   5
+ verification:
+   psql -c 'select 1'
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn unified_of_no_changes() {
        let b = body("R", vec![step("a")]);
        let text = unified(&diff(1, &b, 2, &b));
        assert_eq!(text, "--- v1\n+++ v2\n  (no changes)\n");
    }

    #[test]
    fn unified_collapses_unchanged_steps_and_lines() {
        let mut steps: Vec<StepInput> = (1..=20).map(|i| step(&format!("s{i}"))).collect();
        steps[9].description = (1..=20).map(|i| format!("line {i}\n")).collect();
        let from = body("R", steps.clone());
        steps[9].description = steps[9].description.replace("line 10\n", "line ten\n");
        let to = body("R", steps);
        let text = unified(&diff(1, &from, 2, &to));
        assert!(text.contains("  … 8 unchanged steps (1–8)\n"), "{text}");
        assert!(text.contains("  step 9 \"s9\" (unchanged)\n"), "{text}");
        assert!(
            text.contains("@@ step 10 \"s10\" (changed: description) @@\n"),
            "{text}"
        );
        assert!(text.contains("  step 11 \"s11\" (unchanged)\n"), "{text}");
        assert!(text.contains("  … 9 unchanged steps (12–20)\n"), "{text}");
        assert!(text.contains("    … 6 unchanged lines\n"), "{text}");
        assert!(
            text.contains(
                "    line 7\n    line 8\n    line 9\n-   line 10\n+   line ten\n    line 11\n"
            ),
            "{text}"
        );
        assert!(!text.contains("    line 6\n"), "{text}");
        assert!(
            text.contains("    line 13\n    … 7 unchanged lines\n"),
            "{text}"
        );
        for l in text.lines() {
            assert!(
                matches!(l.chars().next(), Some(' ' | '+' | '-' | '@')),
                "{l:?}"
            );
        }
    }

    #[test]
    fn unified_marks_moved_and_changed() {
        let (a, b) = (step("a"), step("b"));
        let from = body("R", vec![a.clone(), b.clone()]);
        let mut b2 = b;
        b2.is_destructive = true;
        let to = body("R", vec![b2, a]);
        let text = unified(&diff(1, &from, 2, &to));
        assert!(
            text.contains("@@ step 2 → 1 \"b\" (moved; changed: is_destructive) @@\n")
                || text.contains("@@ step 1 → 2 \"a\" (moved) @@\n"),
            "{text}"
        );
    }

    #[test]
    fn control_characters_are_neutralised() {
        let a = step("a");
        let from = body("R", vec![a.clone()]);
        let mut a2 = a;
        a2.description = "\u{1b}[31mred\u{7}\tx\n".to_owned();
        let to = body("R", vec![a2]);
        let d = diff(1, &from, 2, &to);
        let text = unified(&d);
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text}"
        );
        assert!(text.contains("+   \u{FFFD}[31mred\u{FFFD}\tx\n"), "{text}");
        let sbs = side_by_side(&d, 80);
        assert!(!sbs.contains('\u{1b}') && !sbs.contains('\t'), "{sbs}");
    }

    #[test]
    fn side_by_side_shows_markers() {
        let text = side_by_side(&sample(), 80);
        let rows: Vec<&str> = text.lines().collect();
        assert!(
            rows[0].starts_with("--- v3") && rows[0].ends_with("+++ v4"),
            "{text}"
        );
        let col = (80 - 3) / 2;
        let marker = |r: &str| r.chars().nth(col + 1);
        let find = |needle: &str| {
            rows.iter()
                .find(|r| r.contains(needle))
                .copied()
                .unwrap_or_else(|| panic!("no row with {needle:?} in\n{text}"))
        };
        let r = find("TWO");
        assert_eq!(marker(r), Some('|'), "{r}");
        assert!(r.starts_with("    two "), "{r}");
        assert_eq!(marker(find("step 3 \"c\" (removed)")), Some('<'));
        assert_eq!(marker(find("step 4 \"e\" (added)")), Some('>'));
        assert_eq!(marker(find("psql")), Some('>'));
        assert!(find("psql").starts_with(&" ".repeat(col + 1)));
        assert_eq!(marker(find("(moved)")), Some('|'));
        assert_eq!(marker(find("    three")), Some(' '));
        assert_eq!(marker(find("Fail over the database")), Some('|'));
        let r = find("step 2 \"a\"");
        assert_eq!(marker(r), Some(' '));
        assert!(r.starts_with("step 1 \"a\""), "{r}");
    }

    #[test]
    fn side_by_side_pairs_uneven_runs() {
        let mut a = step("a");
        a.description = "x\ny\n".to_owned();
        let from = body("R", vec![a.clone()]);
        a.description = "X\n".to_owned();
        let to = body("R", vec![a]);
        let text = side_by_side(&diff(1, &from, 2, &to), 40);
        let col = (40 - 3) / 2;
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("    x") || l.contains("    y"))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0].chars().nth(col + 1), Some('|'));
        assert!(lines[0].ends_with("    X"));
        assert_eq!(lines[1].chars().nth(col + 1), Some('<'));
    }

    #[test]
    fn side_by_side_never_exceeds_the_width() {
        let mut a = step("Ünïcødé 🚀 step with a rather long title that will not fit in a column");
        a.description = "日本語のテキスト、とても長い行です。".repeat(5) + "\n\tindented\n";
        let from = body("R", vec![a.clone(), step("b")]);
        a.description = "é".repeat(300);
        a.title = "🚀".repeat(150);
        let to = body("Ŧitle ✓", vec![step("new one"), a]);
        let d = diff(1, &from, 2, &to);
        for width in 0..=130 {
            let text = side_by_side(&d, width);
            assert!(!text.is_empty());
            for l in text.lines() {
                assert!(l.chars().count() <= width, "width {width}: {l:?}");
            }
        }
        let text = side_by_side(&d, 60);
        assert!(text.contains('…'), "{text}");
    }

    #[test]
    fn side_by_side_of_no_changes() {
        let b = body("R", vec![step("a")]);
        let text = side_by_side(&diff(1, &b, 2, &b), 40);
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("(no changes)"));
    }
}
