//! The CSV report: a header row, then one row per step (RFC 4180: fields with a comma, a quote
//! or a line break are quoted, quotes doubled; lines end in CRLF). Each row repeats the run's
//! key, runbook and version, so rows can be pasted into a larger sheet. Lists (approvals, notes,
//! audit entries) are joined with `; ` inside their field.

use chrono::SecondsFormat;

use super::ExecutionReport;

/// The header row's columns.
pub const COLUMNS: [&str; 17] = [
    "execution",
    "runbook",
    "version",
    "version_hash",
    "order",
    "title",
    "status",
    "by",
    "at",
    "est_minutes",
    "actual_minutes",
    "note",
    "approvals",
    "notes",
    "audit",
    "audit_head_seq",
    "audit_head_hash",
];

/// One field, quoted when it holds a comma, a quote or a line break.
pub fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The report as CSV.
pub fn render(r: &ExecutionReport) -> String {
    let e = &r.execution;
    let mut out = COLUMNS.join(",");
    out.push_str("\r\n");
    for s in &r.steps {
        let approvals: Vec<String> = s
            .approvals
            .iter()
            .map(|a| match a.lapsed_at {
                Some(t) => format!(
                    "{} as {} at {} (lapsed at {})",
                    a.by,
                    a.role,
                    time(a.at),
                    time(t)
                ),
                None => format!("{} as {} at {}", a.by, a.role, time(a.at)),
            })
            .collect();
        let notes: Vec<String> = s
            .notes
            .iter()
            .map(|n| format!("{} at {}: {}", n.author, time(n.at), n.text))
            .collect();
        let audit: Vec<String> = s
            .audit
            .iter()
            .map(|a| format!("{}:{}", a.seq, a.hash))
            .collect();
        let cells = [
            e.key.to_string(),
            e.runbook.to_string(),
            e.version.to_string(),
            e.version_hash.clone(),
            s.order.to_string(),
            s.title.clone(),
            s.status.as_str().to_owned(),
            s.by.clone().unwrap_or_default(),
            s.at.map(time).unwrap_or_default(),
            s.est_minutes.to_string(),
            s.actual_minutes
                .map(|a| format!("{a:.1}"))
                .unwrap_or_default(),
            s.note.clone().unwrap_or_default(),
            approvals.join("; "),
            notes.join("; "),
            audit.join("; "),
            r.audit_head.seq.to_string(),
            r.audit_head.hash.clone(),
        ];
        let row: Vec<String> = cells.iter().map(|c| field(c)).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}
