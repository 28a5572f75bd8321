//! Verifying a report: what a report file claims to be ([`claimed`]), and the comparison of
//! the file with the report rendered again from the trail ([`compare`]), naming the first
//! difference by step and field.

use serde_json::Value;

use super::markdown::{self, MARKER};
use super::{AuditRef, ExecutionReport, ReportFormat};
use crate::ids::{Key, KeyKind};

/// Why a report does not match the trail (or cannot be read as a report any more): a sentence
/// naming the place and both values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct Mismatch {
    /// What differs, and where.
    pub problem: String,
}

impl Mismatch {
    fn new(problem: impl Into<String>) -> Self {
        Self {
            problem: problem.into(),
        }
    }
}

/// What a report file says it is the report of, as written (the verifier then checks all of
/// it against the trail).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimed {
    /// Markdown or JSON.
    pub format: ReportFormat,
    /// The workspace's slug.
    pub workspace: String,
    /// The execution.
    pub execution: Key,
    /// The audit head the report covers.
    pub head: AuditRef,
}

/// The text with CRLF line endings made LF.
pub fn normalise(text: &str) -> String {
    text.replace("\r\n", "\n")
}

/// Whether `text` looks like a CSV report (its header row), which cannot be verified.
pub fn is_csv(text: &str) -> bool {
    text.trim_start().starts_with("execution,runbook,version,")
}

/// Reads what a Markdown or JSON report claims to be. A report too damaged to say is a
/// [`Mismatch`] naming what is missing: it was altered, or it is not a report.
pub fn claimed(text: &str) -> Result<Claimed, Mismatch> {
    let text = normalise(text);
    let trimmed = text.trim_start();
    let not_a_report = |why: String| {
        Mismatch::new(format!(
            "this is not an execution report as Vigilo writes it ({why}): it was altered, or it is another file; `vigilo exec report EX-… --format md|json` writes one"
        ))
    };
    if trimmed.starts_with('{') {
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            not_a_report(format!(
                "not valid JSON at line {}, column {}: {e}",
                e.line(),
                e.column()
            ))
        })?;
        let s = |ptr: &str| v.pointer(ptr).and_then(Value::as_str).map(str::to_owned);
        let workspace = s("/workspace").ok_or_else(|| not_a_report("no `workspace`".into()))?;
        let key = s("/execution/key").ok_or_else(|| not_a_report("no `execution.key`".into()))?;
        let seq = v
            .pointer("/audit_head/seq")
            .and_then(Value::as_u64)
            .ok_or_else(|| not_a_report("no `audit_head.seq`".into()))?;
        let hash =
            s("/audit_head/hash").ok_or_else(|| not_a_report("no `audit_head.hash`".into()))?;
        let execution = Key::parse_kind(&key, KeyKind::Execution)
            .map_err(|e| not_a_report(format!("`execution.key` {key:?}: {e}")))?;
        return Ok(Claimed {
            format: ReportFormat::Json,
            workspace,
            execution,
            head: AuditRef { seq, hash },
        });
    }
    if !(trimmed.starts_with(MARKER)
        || trimmed.starts_with('#')
        || text.contains("| Audit head | "))
    {
        return Err(not_a_report(
            "neither JSON nor a Markdown report's first table".into(),
        ));
    }
    let c = markdown::read_claims(&text).map_err(not_a_report)?;
    let execution = Key::parse_kind(&c.execution, KeyKind::Execution)
        .map_err(|e| not_a_report(format!("its `Execution` row {:?}: {e}", c.execution)))?;
    let seq = c.head_seq.parse::<u64>().map_err(|_| {
        not_a_report(format!(
            "its `Audit head` row names entry {:?}, not a number",
            c.head_seq
        ))
    })?;
    Ok(Claimed {
        format: ReportFormat::Md,
        workspace: c.workspace,
        execution,
        head: AuditRef {
            seq,
            hash: c.head_hash,
        },
    })
}

/// Compares a report file with `expected`, the report rendered again from the trail as of the
/// head the file claims, in the file's `format`. Equal text (after [`normalise`]) is a match;
/// otherwise the first difference is named: the step (or the run) and the field, what the
/// report says, what the trail says, and the audit entries behind that line.
pub fn compare(
    text: &str,
    expected: &ExecutionReport,
    format: ReportFormat,
) -> Result<(), Mismatch> {
    let text = normalise(text);
    let want = expected.render(format);
    if text == want {
        return Ok(());
    }
    if format == ReportFormat::Json
        && let Ok(found) = serde_json::from_str::<Value>(&text)
        && let Ok(wanted) = serde_json::from_str::<Value>(&want)
        && let Some((path, f, w)) = first_json_difference(&found, &wanted, String::new())
    {
        let (place, field) = json_place(&path);
        return Err(Mismatch::new(format!(
            "{place} `{field}`: the report says {f}, the audit trail says {w}{}",
            behind(expected, &place)
        )));
    }
    let found: Vec<&str> = text.split('\n').collect();
    let wanted: Vec<&str> = want.split('\n').collect();
    let i = found
        .iter()
        .zip(&wanted)
        .position(|(a, b)| a != b)
        .unwrap_or(found.len().min(wanted.len()));
    let line = i + 1;
    let (Some(f), Some(w)) = (found.get(i), wanted.get(i)) else {
        return Err(Mismatch::new(if found.len() < wanted.len() {
            format!(
                "the report ends at line {line}, before the end of the report of the trail (lines were removed)"
            )
        } else {
            format!("the report has text after its end, from line {line} (lines were added)")
        }));
    };
    if format == ReportFormat::Json {
        return Err(Mismatch::new(format!(
            "line {line}: the facts agree, but the text differs from the report of the trail (`{}` instead of `{}`): it was reformatted or edited",
            cut(f),
            cut(w)
        )));
    }
    let (place, field) = markdown::place_of(&wanted, i);
    let field = if field.is_empty() {
        String::new()
    } else {
        format!(" `{field}`")
    };
    Err(Mismatch::new(format!(
        "line {line}, {place}{field}: the report says `{}`, the audit trail says `{}`{}",
        cut(value_of(f)),
        cut(value_of(w)),
        behind(expected, &place)
    )))
}

/// The value part of a Markdown line: after a bullet's label, or after a table row's label.
fn value_of(line: &str) -> &str {
    if let Some((_, v)) = line.split_once(":** ") {
        return v;
    }
    if let Some(rest) = line.strip_prefix("| ")
        && let Some((_, v)) = rest.split_once(" | ")
    {
        return v.strip_suffix(" |").unwrap_or(v);
    }
    line
}

/// At most 120 characters of `s`, for a message.
fn cut(s: &str) -> String {
    if s.chars().count() <= 120 {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(117).collect();
    out.push('…');
    out
}

/// ` (audit entries 40, 41)` behind `place` (`run`, `step N`) in `r`, or nothing.
fn behind(r: &ExecutionReport, place: &str) -> String {
    let list = match place.strip_prefix("step ") {
        Some(n) => n
            .parse::<usize>()
            .ok()
            .and_then(|n| r.steps.get(n.wrapping_sub(1)))
            .map(|s| &s.audit),
        None if place == "run" => Some(&r.execution.audit),
        None => None,
    };
    match list {
        Some(l) if !l.is_empty() => {
            let seqs: Vec<String> = l.iter().map(|a| a.seq.to_string()).collect();
            let word = if seqs.len() == 1 { "entry" } else { "entries" };
            format!(" (audit {word} {} behind it)", seqs.join(", "))
        }
        _ => String::new(),
    }
}

/// `steps[2].approvals[0].by` → (`step 3`, `approvals[0].by`); `execution.operator` → (`run`,
/// `operator`).
fn json_place(path: &str) -> (String, String) {
    if let Some(rest) = path.strip_prefix("steps[")
        && let Some((i, field)) = rest.split_once(']')
    {
        let n = i
            .parse::<usize>()
            .map_or("?".to_owned(), |i| (i + 1).to_string());
        let field = field.trim_start_matches('.');
        return (
            format!("step {n}"),
            if field.is_empty() {
                "the step".into()
            } else {
                field.to_owned()
            },
        );
    }
    if let Some(field) = path.strip_prefix("execution.") {
        return ("run".into(), field.to_owned());
    }
    if let Some(field) = path.strip_prefix("audit_head.") {
        return ("audit head".into(), field.to_owned());
    }
    (
        "report".into(),
        if path.is_empty() {
            "the document".into()
        } else {
            path.to_owned()
        },
    )
}

fn show(v: Option<&Value>) -> String {
    match v {
        None => "nothing".into(),
        Some(v) => cut(&v.to_string()),
    }
}

/// The first place where `found` and `wanted` differ: its path and both values.
fn first_json_difference(
    found: &Value,
    wanted: &Value,
    path: String,
) -> Option<(String, String, String)> {
    let join = |p: &str, k: &str| {
        if p.is_empty() {
            k.to_owned()
        } else {
            format!("{p}.{k}")
        }
    };
    match (found, wanted) {
        (Value::Object(f), Value::Object(w)) => {
            for (k, wv) in w {
                let p = join(&path, k);
                match f.get(k) {
                    Some(fv) => {
                        if let Some(d) = first_json_difference(fv, wv, p) {
                            return Some(d);
                        }
                    }
                    None => return Some((p, show(None), show(Some(wv)))),
                }
            }
            f.iter()
                .find(|(k, _)| !w.contains_key(*k))
                .map(|(k, fv)| (join(&path, k), show(Some(fv)), show(None)))
        }
        (Value::Array(f), Value::Array(w)) => {
            for (i, wv) in w.iter().enumerate() {
                let p = format!("{path}[{i}]");
                match f.get(i) {
                    Some(fv) => {
                        if let Some(d) = first_json_difference(fv, wv, p) {
                            return Some(d);
                        }
                    }
                    None => return Some((p, show(None), show(Some(wv)))),
                }
            }
            f.get(w.len())
                .map(|fv| (format!("{path}[{}]", w.len()), show(Some(fv)), show(None)))
        }
        (f, w) if f == w => None,
        (f, w) => Some((path, show(Some(f)), show(Some(w)))),
    }
}
