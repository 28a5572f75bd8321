//! `vigilo exec report EX-… [--format md|json|csv] [-o FILE]` and `vigilo audit verify --report
//! FILE`: the run as evidence, and the check of such a report against the audit trail (exit 7
//! naming what differs).

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde_json::json;
use vigilo_core::ids::{Key, KeyKind};
use vigilo_core::report::ReportFormat;
use vigilo_core::service::{ReportVerdict, Who};

use super::{CliError, Ctx, Ref};

/// The formats of `exec report`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormatArg {
    /// Markdown, for a ticket or a code host (verifiable).
    Md,
    /// JSON with the contract's field names (verifiable).
    Json,
    /// CSV, one row per step (RFC 4180).
    Csv,
}

impl From<ReportFormatArg> for ReportFormat {
    fn from(f: ReportFormatArg) -> Self {
        match f {
            ReportFormatArg::Md => ReportFormat::Md,
            ReportFormatArg::Json => ReportFormat::Json,
            ReportFormatArg::Csv => ReportFormat::Csv,
        }
    }
}

/// `exec report`: the report on standard output, or written to `output`. Without `--format`,
/// Markdown (JSON with `--json`).
pub async fn report(
    ctx: &Ctx,
    who: &Who,
    execution: Ref,
    format: Option<ReportFormatArg>,
    output: Option<PathBuf>,
) -> Result<(), CliError> {
    let key: Key = ctx.key(who, execution, KeyKind::Execution).await?;
    let format: ReportFormat = match format {
        Some(f) => f.into(),
        None if ctx.out.json => ReportFormat::Json,
        None => ReportFormat::Md,
    };
    let report = ctx.vigilo.execution_report(who, key).await?;
    let text = report.render(format);
    match output {
        Some(path) => {
            std::fs::write(&path, &text).map_err(|e| {
                CliError::Internal(format!(
                    "cannot write the report to {}: {e}",
                    path.display()
                ))
            })?;
            let doc = json!({
                "file": path.display().to_string(),
                "execution": key,
                "format": format.as_str(),
                "audit_head": report.audit_head,
            });
            ctx.out.emit(&doc, |_| {
                format!(
                    "Wrote the {} report of {key} to {} (audit head: entry {}).",
                    format.as_str(),
                    path.display(),
                    report.audit_head.seq
                )
            })
        }
        // `--json` with another format: one JSON document carrying the report's text.
        None if ctx.out.json && format != ReportFormat::Json => ctx.out.json(&json!({
            "execution": key,
            "format": format.as_str(),
            "report": text,
        })),
        None => ctx.out.text(&text),
    }
}

/// `audit verify --report FILE`: exit 0 when the report matches the trail, 7 naming the first
/// difference. The workspace is `--workspace` when given, else the one the report names.
pub async fn verify(ctx: &Ctx, file: &Path) -> Result<(), CliError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        CliError::NotFound(format!(
            "cannot read the report {}: {e}; pass a file written by `vigilo exec report`",
            file.display()
        ))
    })?;
    let workspace = match &ctx.global.workspace {
        Some(_) => Some(ctx.workspace().await?.id),
        None => None,
    };
    let verdict = ctx.vigilo.verify_report(workspace, &text).await?;
    let mut doc = serde_json::to_value(&verdict).unwrap_or(serde_json::Value::Null);
    if let serde_json::Value::Object(m) = &mut doc {
        m.insert("file".into(), json!(file.display().to_string()));
    }
    match verdict {
        ReportVerdict::Verified {
            workspace,
            execution,
            format,
            head,
            entries,
            chain,
        } => ctx.out.emit(&doc, |p| {
            format!(
                "{} the {} report of {execution} in {}: it matches the {entries} audit entries behind it, up to entry {head}; the chain of {workspace} ({chain} entries) is intact",
                p.green("verified"),
                format.as_str(),
                file.display(),
            )
        }),
        ReportVerdict::Tampered { problem, .. } => {
            if ctx.out.json {
                ctx.out.json(&doc)?;
            }
            Err(CliError::Tampered(format!(
                "the report {} does not match the audit trail: {problem}",
                file.display()
            )))
        }
    }
}
