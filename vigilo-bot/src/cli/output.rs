//! Output: one JSON document with `--json`, otherwise text for people — aligned tables, and
//! colour only on a terminal (never when `NO_COLOR` is set or `TERM=dumb`).

use std::io::{IsTerminal, Write};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::CliError;

/// How and where a command prints.
#[derive(Clone, Copy, Debug)]
pub struct Out {
    /// `--json`: print exactly one JSON document.
    pub json: bool,
    /// Colour escapes allowed.
    pub color: bool,
}

impl Out {
    /// Output for `--json` or people, colour decided from the environment.
    pub fn new(json: bool) -> Self {
        Self {
            json,
            color: !json && color_wanted(),
        }
    }

    /// Prints text as it is (a line break is added when missing).
    pub fn text(&self, s: &str) -> Result<(), CliError> {
        let mut o = std::io::stdout().lock();
        o.write_all(s.as_bytes())?;
        if !s.ends_with('\n') {
            o.write_all(b"\n")?;
        }
        o.flush()?;
        Ok(())
    }

    /// Prints a JSON document, pretty.
    pub fn json(&self, v: &Value) -> Result<(), CliError> {
        let s = serde_json::to_string_pretty(v)
            .map_err(|e| CliError::Internal(format!("cannot print JSON: {e}")))?;
        self.text(&s)
    }

    /// Prints `v` with `--json`, else the text `human` builds.
    pub fn emit(&self, v: &Value, human: impl FnOnce(&Paint) -> String) -> Result<(), CliError> {
        if self.json {
            self.json(v)
        } else {
            self.text(&human(&self.paint()))
        }
    }

    /// The colours for human text.
    pub fn paint(&self) -> Paint {
        Paint { on: self.color }
    }
}

/// True when standard output is a terminal that wants colour.
pub fn color_wanted() -> bool {
    std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// The terminal's width, `COLUMNS`, or `fallback`.
pub fn terminal_width(fallback: usize) -> usize {
    if let Some((terminal_size::Width(w), _)) = terminal_size::terminal_size() {
        return usize::from(w).max(20);
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|w| *w >= 20)
        .unwrap_or(fallback)
}

/// ANSI colours, or nothing.
#[derive(Clone, Copy, Debug)]
pub struct Paint {
    on: bool,
}

impl Paint {
    /// Colours on or off.
    pub fn new(on: bool) -> Self {
        Self { on }
    }

    fn wrap(&self, code: &str, s: &str) -> String {
        if self.on && !s.is_empty() {
            format!("\u{1b}[{code}m{s}\u{1b}[0m")
        } else {
            s.to_owned()
        }
    }

    /// True when colours are on.
    pub fn enabled(&self) -> bool {
        self.on
    }

    /// Bold.
    pub fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }
    /// Dim.
    pub fn dim(&self, s: &str) -> String {
        self.wrap("2", s)
    }
    /// Red.
    pub fn red(&self, s: &str) -> String {
        self.wrap("31", s)
    }
    /// Bold red on nothing: danger badges.
    pub fn danger(&self, s: &str) -> String {
        self.wrap("1;37;41", s)
    }
    /// Yellow.
    pub fn yellow(&self, s: &str) -> String {
        self.wrap("33", s)
    }
    /// Bold yellow: approval badges.
    pub fn warn(&self, s: &str) -> String {
        self.wrap("1;30;43", s)
    }
    /// Green.
    pub fn green(&self, s: &str) -> String {
        self.wrap("32", s)
    }
    /// Cyan.
    pub fn cyan(&self, s: &str) -> String {
        self.wrap("36", s)
    }
}

/// A table with a header row; columns are aligned by character count.
#[derive(Clone, Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (cells are sanitised and cut to one line).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows
            .push(cells.into_iter().map(|c| one_line(&c)).collect());
    }

    /// True when there is no row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The aligned text; the header is bold with colour on.
    pub fn render(&self, paint: &Paint) -> String {
        let cols = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate().take(cols) {
                if i + 1 == cols {
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    let pad = widths[i].saturating_sub(c.chars().count()) + 2;
                    s.extend(std::iter::repeat_n(' ', pad));
                }
            }
            s.trim_end().to_owned()
        };
        let mut out = paint.bold(&line(&self.header));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }
}

/// Text made safe for one table cell: control characters replaced, lines joined, cut at 60.
pub fn one_line(s: &str) -> String {
    let joined: String = s
        .chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .collect();
    let clean = crate::chat::markdown::sanitize(&joined);
    cut(&clean, 60)
}

/// Cuts to `n` characters, ending in `…` when cut.
pub fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A time for people.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// An optional time for people (`-` when absent).
pub fn time_opt(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".to_owned(), time)
}

/// Minutes with one decimal and a sign for variances.
pub fn signed_minutes(m: f64) -> String {
    if m > 0.0 {
        format!("+{m:.1}")
    } else {
        format!("{m:.1}")
    }
}

/// Indents every line of `s` by `n` spaces.
pub fn indent(s: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    s.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Markdown for the terminal: plain text, control characters replaced.
pub fn markdown(s: &str) -> String {
    crate::chat::markdown::to_plain(s).trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["KEY", "TITLE"]);
        t.row(vec!["RB-00001".into(), "Restart".into()]);
        t.row(vec!["RB-10".into(), "Multi\nline".into()]);
        let s = t.render(&Paint::new(false));
        assert_eq!(
            s,
            "KEY       TITLE\nRB-00001  Restart\nRB-10     Multi line\n"
        );
    }
}
