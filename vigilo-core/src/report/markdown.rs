//! The Markdown report: a fact table for the run, a step overview table, then one section per
//! step with its status, minutes, note, approvals, notes and the audit entries behind it.
//!
//! Written for a ticket or a code host (GitHub-flavoured tables, no HTML but `<br>` inside a
//! cell). Text that people wrote (titles, notes, reasons) is escaped so it shows as written and
//! cannot change the layout; handles are code spans (`` `@bob` ``), so pasting the report into
//! a tracker never notifies anyone. The three facts a verifier needs first — the workspace,
//! the execution and the audit head — are rows of the first table ([`read_claims`]).

use std::fmt::Write as _;

use super::{
    ApprovalFact, AuditRef, ExecutionReport, NoteFact, REPORT_FORMAT, StepFacts, show_time,
};
use crate::execution::ExecutionStatus;

/// The first line of every Markdown report (an HTML comment: invisible when rendered).
pub const MARKER: &str = "<!-- vigilo execution report";

/// Table row labels a verifier reads back.
const ROW_WORKSPACE: &str = "| Workspace | ";
const ROW_EXECUTION: &str = "| Execution | ";
const ROW_HEAD: &str = "| Audit head | ";

/// `text` escaped for Markdown: every character that could start formatting, a link, HTML or a
/// table cell boundary is backslash-escaped; line breaks become `<br>`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '#' | '!' | '$' => {
                out.push('\\');
                out.push(c);
            }
            '\r' => {}
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out
}

fn who(handle: &str) -> String {
    format!("`@{}`", handle.replace('`', "'"))
}

fn opt(v: Option<String>) -> String {
    v.unwrap_or_else(|| "—".into())
}

fn refs(list: &[AuditRef]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    list.iter()
        .map(|r| format!("entry {} `{}`", r.seq, r.hash))
        .collect::<Vec<_>>()
        .join(", ")
}

fn minutes(actual: Option<f64>, est: u64) -> String {
    match actual {
        Some(a) => format!("{a:.1} actual, {est} estimated"),
        None => format!("— actual, {est} estimated"),
    }
}

fn approvals(list: &[ApprovalFact]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    list.iter()
        .map(|a| {
            let mut line = format!(
                "{} as {} at {}",
                who(&a.by),
                escape(&a.role),
                show_time(a.at)
            );
            if let Some(t) = a.lapsed_at {
                line.push_str(&format!(" (lapsed at {})", show_time(t)));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn notes(list: &[NoteFact]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    list.iter()
        .map(|n| {
            format!(
                "{} at {}: {}",
                who(&n.author),
                show_time(n.at),
                escape(&n.text)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The report as Markdown, ending in a newline.
pub fn render(r: &ExecutionReport) -> String {
    let e = &r.execution;
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        s,
        "{MARKER}, format {REPORT_FORMAT}; check it with `vigilo audit verify --report FILE` -->"
    );
    let _ = writeln!(s, "# {}: {}", e.key, escape(&e.title));
    s.push('\n');
    let _ = writeln!(
        s,
        "The record of run {} of {} v{}, read from the audit trail of workspace {}. Each line names the audit entries behind it (`seq` and hash); `vigilo audit verify --report` checks every character of this report against that trail.",
        e.key,
        e.runbook,
        e.version,
        escape(&r.workspace)
    );
    s.push('\n');
    let status = match e.status {
        ExecutionStatus::Running => "running (not sealed yet)".to_owned(),
        other => other.as_str().to_owned(),
    };
    let handoffs = if e.handoffs.is_empty() {
        "none".to_owned()
    } else {
        e.handoffs
            .iter()
            .map(|h| {
                format!(
                    "{} to {} by {} at {}",
                    who(&h.from),
                    who(&h.to),
                    who(&h.by),
                    show_time(h.at)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let rows: [(&str, String); 17] = [
        ("Workspace", escape(&r.workspace)),
        ("Execution", e.key.to_string()),
        ("Runbook", format!("{} v{}", e.runbook, e.version)),
        ("Version hash", format!("`{}`", e.version_hash)),
        ("Status", status),
        (
            "Rehearsal",
            if e.rehearsal { "yes" } else { "no" }.to_owned(),
        ),
        ("Operator", who(&e.operator)),
        ("Hand-overs", handoffs),
        ("Started", show_time(e.started_at)),
        ("Sealed", opt(e.completed_at.map(show_time))),
        ("Minutes", minutes(e.actual_minutes, e.est_minutes)),
        ("Change", opt(e.change.map(|k| k.to_string()))),
        ("Incident", opt(e.incident.map(|k| k.to_string()))),
        ("Abort reason", opt(e.abort_reason.as_deref().map(escape))),
        ("Steps", r.steps.len().to_string()),
        ("Audit entries", refs(&e.audit)),
        (
            "Audit head",
            format!("entry {} `{}`", r.audit_head.seq, r.audit_head.hash),
        ),
    ];
    s.push_str("| Run | |\n|---|---|\n");
    for (label, value) in rows {
        let _ = writeln!(s, "| {label} | {value} |");
    }
    s.push('\n');
    s.push_str("## Steps\n\n");
    if r.steps.is_empty() {
        s.push_str("The runbook version has no steps.\n");
    } else {
        s.push_str("| # | Step | Status | By | At | Est. min | Actual min |\n");
        s.push_str("|---:|---|---|---|---|---:|---:|\n");
        for st in &r.steps {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                st.order,
                escape(&st.title),
                st.status.as_str(),
                opt(st.by.as_deref().map(who)),
                opt(st.at.map(show_time)),
                st.est_minutes,
                opt(st.actual_minutes.map(|a| format!("{a:.1}"))),
            );
        }
    }
    for st in &r.steps {
        s.push('\n');
        step(&mut s, st);
    }
    s
}

fn step(s: &mut String, st: &StepFacts) {
    let _ = writeln!(s, "### {}. {}", st.order, escape(&st.title));
    s.push('\n');
    let mut status = st.status.as_str().to_owned();
    if let Some(by) = &st.by {
        let _ = write!(status, " by {}", who(by));
    }
    if let Some(at) = st.at {
        let _ = write!(status, " at {}", show_time(at));
    }
    let items: [(&str, String); 6] = [
        ("Status", status),
        (
            "Minutes",
            minutes(st.actual_minutes, u64::from(st.est_minutes)),
        ),
        ("Note", opt(st.note.as_deref().map(escape))),
        ("Approvals", approvals(&st.approvals)),
        ("Notes", notes(&st.notes)),
        ("Audit entries", refs(&st.audit)),
    ];
    for (label, value) in items {
        let _ = writeln!(s, "- **{label}:** {value}");
    }
}

/// What the first table of a Markdown report says about where it belongs: the workspace's
/// slug, the execution key and the audit head, as written (unchecked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// The `Workspace` row.
    pub workspace: String,
    /// The `Execution` row.
    pub execution: String,
    /// The `seq` of the `Audit head` row.
    pub head_seq: String,
    /// The hash of the `Audit head` row.
    pub head_hash: String,
}

/// Reads the [`Claims`] of a Markdown report, or says which row is missing.
pub fn read_claims(text: &str) -> Result<Claims, String> {
    let row = |label: &str| -> Result<String, String> {
        text.lines()
            .find_map(|l| l.strip_prefix(label).and_then(|v| v.strip_suffix(" |")))
            .map(str::to_owned)
            .ok_or_else(|| {
                format!(
                    "it has no `{}` row in its first table",
                    label.trim_matches(|c| c == '|' || c == ' ')
                )
            })
    };
    let head = row(ROW_HEAD)?;
    let (seq, hash) = head
        .strip_prefix("entry ")
        .and_then(|h| h.split_once(' '))
        .ok_or_else(|| format!("its `Audit head` row reads `{head}`, not `entry SEQ `HASH``"))?;
    Ok(Claims {
        workspace: row(ROW_WORKSPACE)?,
        execution: row(ROW_EXECUTION)?,
        head_seq: seq.to_owned(),
        head_hash: hash.trim_matches('`').to_owned(),
    })
}

/// Where a line of a Markdown report sits, for naming a difference: `run` for the first
/// table, `step N` for a step's section (or its row of the overview table), and the label of
/// the line (`By`, `Note`, `Audit entries`, …).
pub(crate) fn place_of(lines: &[&str], index: usize) -> (String, String) {
    const OVERVIEW: [&str; 7] = ["#", "Step", "Status", "By", "At", "Est. min", "Actual min"];
    let line = lines.get(index).copied().unwrap_or("");
    let section = lines[..index.min(lines.len())]
        .iter()
        .rev()
        .find(|l| l.starts_with("## ") || l.starts_with("### "))
        .copied();
    let label = if let Some(rest) = line.strip_prefix("- **") {
        rest.split_once(":**").map(|(l, _)| l.to_owned())
    } else if let Some(rest) = line.strip_prefix("| ") {
        rest.split_once(" | ").map(|(l, _)| l.to_owned())
    } else {
        None
    };
    match section {
        None if line.starts_with("| ") => ("run".into(), label.unwrap_or_default()),
        None => ("the report's heading".into(), String::new()),
        Some(h) if h.starts_with("### ") => {
            let n = h[4..].split_once('.').map_or("?", |(n, _)| n);
            (format!("step {n}"), label.unwrap_or_default())
        }
        Some(_) => {
            // A row of the step overview table: `| N | title | status | … |`.
            match line.strip_prefix("| ").and_then(|r| r.split_once(" | ")) {
                Some((n, _)) if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => (
                    format!("step {n}"),
                    format!("overview row ({})", OVERVIEW.join(", ")),
                ),
                _ => ("the step overview".into(), String::new()),
            }
        }
    }
}
