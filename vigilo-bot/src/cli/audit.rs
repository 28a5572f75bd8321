//! `vigilo audit …`: list, export (streamed page by page, JSON lines or CSV), verify the hash
//! chain and every stored column (exit 7 naming the first bad entry), and signed checkpoints
//! (keygen, checkpoint, verify --checkpoint).

use std::io::Write;
use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};
use vigilo_core::audit::AuditEntry;
use vigilo_core::checkpoint::Checkpoint;
use vigilo_core::service::{AuditFilter, AuditVerdict, CheckpointVerdict};
use vigilo_core::store::AuditQuery;

use super::output::Out;
use super::output::{Table, cut, time};
use super::{CliError, Ctx, Global, keys};

/// The formats of `audit export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One JSON entry per line.
    Jsonl,
    /// Comma-separated values with a header row (RFC 4180 quoting).
    Csv,
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-05-01T09:00:00Z ({e})"))
}

/// `vigilo audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// List audit entries, oldest first.
    #[command(
        after_help = "Example:\n  vigilo --as bob audit list --target RB-00001 --since 2026-05-01T00:00:00Z"
    )]
    List {
        /// Entries about this key or handle, or linking to it (`RB-00001`, `@alice`).
        #[arg(long)]
        target: Option<String>,
        /// Entries by this member.
        #[arg(long, value_name = "handle")]
        actor: Option<String>,
        /// Entries at or after this time (RFC 3339).
        #[arg(long, value_parser = parse_time, value_name = "RFC3339")]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Entries before this time (RFC 3339).
        #[arg(long, value_parser = parse_time, value_name = "RFC3339")]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// At most this many (0: all).
        #[arg(long, default_value_t = 0)]
        limit: usize,
    },
    /// Write the whole trail, streamed page by page.
    #[command(
        after_help = "Examples:\n  vigilo audit export > trail.jsonl\n  vigilo audit export --format csv -o trail.csv"
    )]
    Export {
        /// jsonl (default) or csv.
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
        /// Write to this file instead of standard output.
        #[arg(short, long, value_name = "file")]
        output: Option<PathBuf>,
    },
    /// Check the hash chain and every stored column: exit 0 when intact, 7 naming the first
    /// bad entry. With --checkpoint, also that each signed head still holds (7 if the chain was
    /// truncated, rolled back to an older backup or rebuilt, or the checkpoint was edited). With
    /// --report, that an execution report still matches the trail (7 naming what differs).
    #[command(
        after_help = "Examples:\n  vigilo --workspace acme audit verify\n  vigilo audit verify --checkpoint ckpt-0900.json --trusted-key audit.key.pub\n  vigilo audit verify --report EX-00001.md"
    )]
    Verify {
        /// A checkpoint file written by `audit checkpoint` (repeat for several).
        #[arg(long, value_name = "FILE")]
        checkpoint: Vec<PathBuf>,
        /// The public key checkpoints must be signed with (hex, or a file such as KEY.pub).
        #[arg(long, value_name = "HEX|FILE", requires = "checkpoint")]
        trusted_key: Option<String>,
        /// An execution report (md or json, from `exec report`): exit 7 naming what differs
        /// when a character of it, or an audit entry behind it, was changed.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
    },
    /// Create an Ed25519 signing key for checkpoints (mode 0600; never in the database), and
    /// its public key in FILE.pub.
    #[command(after_help = "Example:\n  vigilo audit keygen --out /etc/vigilo/audit.key")]
    Keygen {
        /// Where to write the key (must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Sign the head of every workspace's chain (each verified first), as a JSON array: keep it
    /// where the database cannot reach.
    #[command(
        after_help = "Example:\n  vigilo audit checkpoint --key /etc/vigilo/audit.key --out ckpt-$(date +%F-%H%M).json"
    )]
    Checkpoint {
        /// The signing key (from `audit keygen`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// Entries fetched per page.
const PAGE: usize = 1000;

/// Runs an `audit` subcommand.
pub async fn dispatch(ctx: &Ctx, c: AuditCmd) -> Result<(), CliError> {
    match c {
        AuditCmd::List {
            target,
            actor,
            since,
            until,
            limit,
        } => {
            let (_, who, _, _) = ctx.who().await?;
            let mut entries = Vec::new();
            let mut after = 0;
            loop {
                let want = if limit == 0 {
                    PAGE
                } else {
                    (limit - entries.len()).min(PAGE)
                };
                let page = ctx
                    .vigilo
                    .audit_entries(
                        &who,
                        AuditFilter {
                            target: target.clone(),
                            actor: actor.clone(),
                            since,
                            until,
                            after_seq: after,
                            limit: want,
                        },
                    )
                    .await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                let short = page.len() < want;
                entries.extend(page);
                if short || (limit != 0 && entries.len() >= limit) {
                    break;
                }
            }
            let docs: Vec<Value> = entries.iter().map(entry_json).collect();
            ctx.out.emit(&Value::Array(docs), |p| {
                if entries.is_empty() {
                    return "No audit entries.".into();
                }
                let mut t = Table::new(&["SEQ", "AT", "ACTOR", "ACTION", "TARGET", "DETAILS"]);
                for e in &entries {
                    t.row(vec![
                        e.seq.to_string(),
                        time(e.at),
                        e.actor_handle
                            .as_ref()
                            .map_or("-".into(), |h| format!("@{h}")),
                        e.action.clone(),
                        e.target.clone(),
                        cut(&details(e), 60),
                    ]);
                }
                t.render(p)
            })
        }
        AuditCmd::Export { format, output } => export(ctx, format, output).await,
        AuditCmd::Verify {
            checkpoint,
            trusted_key,
            report: Some(report),
        } => {
            if !checkpoint.is_empty() {
                verify_checkpoints(ctx, &checkpoint, trusted_key.as_deref()).await?;
            }
            super::report::verify(ctx, &report).await
        }
        AuditCmd::Verify {
            checkpoint,
            trusted_key,
            ..
        } if !checkpoint.is_empty() => {
            verify_checkpoints(ctx, &checkpoint, trusted_key.as_deref()).await
        }
        AuditCmd::Verify { .. } => verify(ctx).await,
        AuditCmd::Checkpoint { key, out } => make_checkpoint(ctx, &key, out.as_deref()).await,
        // Handled before a database is opened.
        AuditCmd::Keygen { out } => keygen(&ctx.global, &out),
    }
}

/// An entry as JSON: the stored entry, plus `surface` and `principal` at the top level (from its
/// origin; absent in entries written before origins were recorded).
fn entry_json(e: &AuditEntry) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or_else(|_| json!({ "seq": e.seq }));
    if let (Value::Object(m), Some(origin)) = (&mut v, &e.origin) {
        m.insert("surface".into(), json!(origin.surface.as_str()));
        m.insert("principal".into(), json!(origin.principal));
    }
    v
}

fn details(e: &AuditEntry) -> String {
    match &e.details {
        Value::Object(m) if m.is_empty() => String::new(),
        Value::Object(m) => m
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// The CSV columns of `audit export --format csv`.
pub const CSV_COLUMNS: [&str; 18] = [
    "seq",
    "at",
    "actor",
    "actor_handle",
    "action",
    "target",
    "details",
    "runbook",
    "runbook_version",
    "change",
    "incident",
    "execution",
    "id",
    "workspace",
    "prev_hash",
    "hash",
    "surface",
    "principal",
];

/// One CSV field, quoted when it holds a comma, a quote, or a line break (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn csv_row(e: &AuditEntry) -> String {
    let opt = |o: Option<String>| o.unwrap_or_default();
    let cells = [
        e.seq.to_string(),
        e.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        opt(e.actor.map(|a| a.to_string())),
        opt(e.actor_handle.clone()),
        e.action.clone(),
        e.target.clone(),
        e.details.to_string(),
        opt(e.links.runbook.map(|k| k.to_string())),
        opt(e.links.runbook_version.map(|v| v.to_string())),
        opt(e.links.change.map(|k| k.to_string())),
        opt(e.links.incident.map(|k| k.to_string())),
        opt(e.links.execution.map(|k| k.to_string())),
        e.id.to_string(),
        e.workspace.to_string(),
        e.prev_hash.clone(),
        e.hash.clone(),
        opt(e.origin.as_ref().map(|o| o.surface.as_str().to_owned())),
        opt(e.origin.as_ref().map(|o| o.principal.clone())),
    ];
    let mut line = cells
        .iter()
        .map(|c| csv_field(c))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// Streams the whole trail page by page: memory stays flat whatever its length. Reading needs
/// no acting user (like verify); with `--as`, the user must be a member.
async fn export(
    ctx: &Ctx,
    format: ExportFormat,
    output: Option<std::path::PathBuf>,
) -> Result<(), CliError> {
    let ws = ctx.workspace().await?;
    if ctx.global.as_user.is_some() {
        ctx.who().await?;
    }
    let mut sink: Box<dyn Write> = match &output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| {
                CliError::Internal(format!("cannot create {}: {e}", path.display()))
            })?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    if format == ExportFormat::Csv {
        sink.write_all(CSV_COLUMNS.join(",").as_bytes())?;
        sink.write_all(b"\r\n")?;
    }
    let mut after = 0;
    let mut count: u64 = 0;
    loop {
        let page = ctx
            .store()
            .audit(
                ws.id,
                &AuditQuery {
                    after_seq: after,
                    limit: PAGE,
                    ..Default::default()
                },
            )
            .await
            .map_err(vigilo_core::error::Error::from)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            match format {
                ExportFormat::Jsonl => {
                    serde_json::to_writer(&mut sink, &entry_json(e))
                        .map_err(|err| CliError::Internal(format!("cannot write JSON: {err}")))?;
                    sink.write_all(b"\n")?;
                }
                ExportFormat::Csv => sink.write_all(csv_row(e).as_bytes())?,
            }
        }
        count += page.len() as u64;
        sink.flush()?;
        if page.len() < PAGE {
            break;
        }
    }
    sink.flush()?;
    drop(sink);
    if let Some(path) = output {
        let doc = json!({ "file": path.display().to_string(), "entries": count, "workspace": ws.slug.as_str() });
        ctx.out.emit(&doc, |_| {
            format!(
                "Wrote {count} audit entries of {} to {}.",
                ws.slug,
                path.display()
            )
        })?;
    }
    Ok(())
}

async fn verify(ctx: &Ctx) -> Result<(), CliError> {
    let ws = ctx.workspace().await?;
    match ctx.vigilo.verify_audit(ws.id).await? {
        AuditVerdict::Intact { entries, head } => {
            let doc = json!({
                "workspace": ws.slug.as_str(),
                "result": "intact",
                "entries": entries,
                "head": head,
            });
            ctx.out.emit(&doc, |p| {
                format!(
                    "{} audit chain of {}: {entries} entries; head {}",
                    p.green("intact"),
                    ws.slug,
                    head.as_deref().unwrap_or("-")
                )
            })
        }
        AuditVerdict::Tampered(t) => {
            let doc = json!({
                "workspace": ws.slug.as_str(),
                "result": "tampered",
                "seq": t.seq,
                "problem": t.problem,
            });
            if ctx.out.json {
                ctx.out.json(&doc)?;
            }
            Err(CliError::Tampered(format!(
                "audit chain of {} broken at entry {}: {}",
                ws.slug, t.seq, t.problem
            )))
        }
    }
}

/// `audit keygen --out FILE`: needs no database.
pub fn keygen(global: &Global, out: &std::path::Path) -> Result<(), CliError> {
    let public = keys::generate(out)?;
    let public_file = keys::public_key_path(out);
    let doc = json!({
        "file": out.display().to_string(),
        "public_key": public,
        "public_key_file": public_file.display().to_string(),
    });
    Out::new(global.json).emit(&doc, |_| {
        format!(
            "Wrote an Ed25519 signing key to {} (mode 0600; keep it out of the database and its backups).\nPublic key: {public} (also in {}); give it to your auditors.",
            out.display(),
            public_file.display()
        )
    })
}

/// `audit checkpoint --key FILE [--out FILE]`.
async fn make_checkpoint(
    ctx: &Ctx,
    key: &std::path::Path,
    out: Option<&std::path::Path>,
) -> Result<(), CliError> {
    let key = keys::read(key)?;
    let checkpoints = ctx.vigilo.checkpoints(&key).await?;
    let doc = serde_json::to_value(&checkpoints)
        .map_err(|e| CliError::Internal(format!("cannot encode checkpoints: {e}")))?;
    match out {
        Some(path) => {
            let mut text = serde_json::to_string_pretty(&doc)
                .map_err(|e| CliError::Internal(format!("cannot encode checkpoints: {e}")))?;
            text.push('\n');
            std::fs::write(path, text)?;
            let summary = json!({ "file": path.display().to_string(), "checkpoints": doc });
            ctx.out.emit(&summary, |_| {
                let heads: Vec<String> = checkpoints
                    .iter()
                    .map(|c| format!("{} at entry {}", c.slug, c.seq))
                    .collect();
                format!("Signed {} to {}.", heads.join(", "), path.display())
            })
        }
        None => ctx.out.json(&doc),
    }
}

/// `audit verify --checkpoint FILE…`: every checkpoint of every file, each against its
/// workspace's chain as it is now; exit 7 at the first that does not hold (all are reported).
async fn verify_checkpoints(
    ctx: &Ctx,
    files: &[std::path::PathBuf],
    trusted: Option<&str>,
) -> Result<(), CliError> {
    let trusted = trusted.map(keys::trusted).transpose()?;
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| {
            CliError::NotFound(format!(
                "cannot read the checkpoint {}: {e}",
                file.display()
            ))
        })?;
        let checkpoints: Vec<Checkpoint> = serde_json::from_str(&text).map_err(|e| {
            CliError::Tampered(format!(
                "{} is not a checkpoint file written by `vigilo audit checkpoint` ({e}): edited or truncated",
                file.display()
            ))
        })?;
        for cp in &checkpoints {
            let verdict = ctx.vigilo.verify_checkpoint(cp, trusted.as_ref()).await?;
            if let CheckpointVerdict::Violated { problem, .. } = &verdict {
                failures.push(format!("{}: {problem}", file.display()));
            }
            let mut v = serde_json::to_value(&verdict).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("file".into(), json!(file.display().to_string()));
            }
            results.push(v);
        }
    }
    let doc = json!({
        "result": if failures.is_empty() { "intact" } else { "tampered" },
        "checkpoints": results,
    });
    if failures.is_empty() {
        return ctx.out.emit(&doc, |p| {
            let lines: Vec<String> = results
                .iter()
                .map(|r| {
                    format!(
                        "{} {}: the chain still holds entry {} as signed ({} entries now)",
                        p.green("holds"),
                        r["slug"].as_str().unwrap_or("?"),
                        r["seq"],
                        r["entries"]
                    )
                })
                .collect();
            lines.join("\n")
        });
    }
    if ctx.out.json {
        ctx.out.json(&doc)?;
    }
    Err(CliError::Tampered(failures.join("\n")))
}
