//! Read-only views: help, runbook lists, one runbook, its history, a version diff, and an
//! execution's report.

use vigilo_core::execution::{Drift, Execution, StepStatus};
use vigilo_core::runbook::Runbook;
use vigilo_core::runbook::diff::RunbookDiff;
use vigilo_core::runbook::render;
use vigilo_core::service::VersionInfo;

use super::cards::{code_blocks, sections, step_title};
use super::command::Subcommand;
use super::format::{Names, estimate, time};
use super::markdown::{LINE_BREAK, escape_markdown, escape_markdown_keeping_code};
use super::reply::{Badge, Block, Field, Reply};

/// The command list, or the usage of one command.
pub fn help_blocks(topic: Option<Subcommand>) -> Vec<Block> {
    match topic {
        Some(s) => vec![
            Block::Header(format!("/runbook {}", s.name())),
            Block::Section(format!(
                "`{}`  \n{}",
                s.usage(),
                escape_markdown_keeping_code(&super::format::capitalize(s.summary()))
            )),
        ],
        None => {
            let lines: Vec<String> = Subcommand::ALL
                .iter()
                .map(|s| {
                    format!(
                        "`{}` — {}",
                        s.usage(),
                        escape_markdown_keeping_code(s.summary())
                    )
                })
                .collect();
            vec![
                Block::Header("Vigilo runbook commands".into()),
                Block::Section(lines.join(LINE_BREAK)),
                Block::Context(
                    "`done`, `skip`, `fail`, `approve`, `retry`, `abort`, `note`, `handoff` and `takeover` act on the execution open in this channel; when several are open, name one right after the command word: `done EX-00002`. The buttons on step cards do the same.".into(),
                ),
            ]
        }
    }
}

/// The help reply.
pub fn help(topic: Option<Subcommand>) -> Reply {
    let text = match topic {
        Some(s) => s.usage().to_owned(),
        None => "Vigilo runbook commands".to_owned(),
    };
    Reply::private(text, help_blocks(topic))
}

/// One line describing a runbook in a list.
pub fn runbook_line(rb: &Runbook) -> String {
    let mut parts = vec![format!(
        "`{}` **{}**",
        rb.key,
        escape_markdown(rb.body.title.as_str())
    )];
    if !rb.body.category.is_empty() {
        parts.push(escape_markdown(rb.body.category.as_str()));
    }
    parts.push(format!("v{}", rb.version));
    parts.push(plural(rb.body.steps.len(), "step"));
    parts.push(format!("~{}", estimate(rb.body.est_total_minutes())));
    if !rb.is_published {
        parts.push("_draft_".into());
    }
    parts.join(" · ")
}

/// A list of runbooks under a title; `empty` is said when there is none.
pub fn runbook_list(title: &str, runbooks: &[Runbook], empty: &str) -> Reply {
    let mut blocks = vec![Block::Header(title.to_owned())];
    if runbooks.is_empty() {
        blocks.push(Block::Section(escape_markdown_keeping_code(empty)));
    } else {
        let lines: Vec<String> = runbooks.iter().map(runbook_line).collect();
        blocks.extend(sections(&lines.join(LINE_BREAK)));
        blocks.push(Block::Context(
            "`show RB-…` shows one; `run RB-…` starts it here.".into(),
        ));
    }
    Reply::private(title, blocks)
}

/// One runbook: its fields, description and steps.
pub fn runbook(rb: &Runbook, owner: &str) -> Reply {
    let mut blocks = vec![Block::Header(format!("{} · {}", rb.key, rb.body.title))];
    if !rb.is_published {
        blocks.push(Block::Badges(vec![Badge::Draft]));
    }
    let category = if rb.body.category.is_empty() {
        "—".to_owned()
    } else {
        escape_markdown(rb.body.category.as_str())
    };
    blocks.push(Block::Fields(vec![
        Field::new("Category", category),
        Field::new("Version", rb.version.to_string()),
        Field::new(
            "Owner",
            escape_markdown(&format!("@{}", owner.trim_start_matches('@'))),
        ),
        Field::new("Steps", rb.body.steps.len().to_string()),
        Field::new("Estimated total", estimate(rb.body.est_total_minutes())),
        Field::new("Updated", time(rb.updated_at)),
    ]));
    if !rb.body.description.is_blank() {
        blocks.extend(sections(rb.body.description.as_str()));
    }
    for (i, s) in rb.body.steps.iter().enumerate() {
        let mut flags = vec![estimate(u64::from(s.est_minutes.get()))];
        if !s.owner_role.is_empty() {
            flags.push(format!(
                "owner role {}",
                escape_markdown(s.owner_role.as_str())
            ));
        }
        if s.is_destructive {
            flags.push("**DESTRUCTIVE**".into());
        }
        if s.requires_approval {
            flags.push("**APPROVAL REQUIRED**".into());
        }
        let mut text = format!(
            "**{}. {}** · {}",
            i + 1,
            escape_markdown(s.title.as_str()),
            flags.join(" · ")
        );
        if !s.description.is_blank() {
            text.push_str("\n\n");
            text.push_str(s.description.as_str());
        }
        blocks.extend(sections(&text));
    }
    let context = if rb.is_published {
        format!("Start it here with `run {}`.", rb.key)
    } else {
        format!(
            "A draft: `publish {}` publishes it, `run {} rehearsal` practises it.",
            rb.key, rb.key
        )
    };
    blocks.push(Block::Context(context));
    Reply::private(format!("{} {}", rb.key, rb.body.title), blocks)
}

/// The versions of a runbook.
pub fn history(rb: &Runbook, versions: &[VersionInfo]) -> Reply {
    let title = format!("History of {} · {}", rb.key, rb.body.title);
    let lines: Vec<String> = versions
        .iter()
        .map(|v| {
            format!(
                "**v{}** · {} · {} · {} · {} · {}",
                v.version,
                time(v.saved_at),
                escape_markdown(&format!("@{}", v.author.trim_start_matches('@'))),
                escape_markdown(&v.source.to_string()),
                plural(v.steps, "step"),
                escape_markdown(&v.title)
            )
        })
        .collect();
    let mut blocks = vec![Block::Header(title.clone())];
    blocks.extend(sections(&lines.join(LINE_BREAK)));
    if versions.len() > 1 {
        blocks.push(Block::Context(format!(
            "`diff {} {} {}` shows what changed.",
            rb.key,
            versions.len().saturating_sub(1).max(1),
            versions.len()
        )));
    }
    Reply::private(title, blocks)
}

/// The diff between two versions, as a unified rendering in code blocks.
pub fn diff(rb: &Runbook, d: &RunbookDiff) -> Reply {
    let title = format!("{} · v{} → v{}", rb.key, d.from_version, d.to_version);
    let mut blocks = vec![Block::Header(title.clone())];
    if d.is_empty() {
        blocks.push(Block::Section(format!(
            "No differences between v{} and v{}.",
            d.from_version, d.to_version
        )));
    } else {
        let s = &d.summary;
        blocks.push(Block::Fields(vec![
            Field::new("Added", s.added.to_string()),
            Field::new("Removed", s.removed.to_string()),
            Field::new("Changed", s.changed.to_string()),
            Field::new("Moved", s.moved.to_string()),
            Field::new("Unchanged", s.unchanged.to_string()),
        ]));
        blocks.extend(code_blocks(&render::unified(d)));
    }
    Reply::private(title, blocks)
}

/// The diff between the version a run walks and the newest published one (the header's Diff
/// button).
pub fn drift_diff(exec: &Execution, d: &Drift) -> Reply {
    let title = format!(
        "{} · v{} → v{}",
        exec.runbook_key, d.run_version, d.newer_version
    );
    let mut blocks = vec![
        Block::Header(title.clone()),
        Block::Section(format!(
            "{}. {} stays on v{}; a new run starts on v{}.",
            escape_markdown(&d.headline()),
            exec.key,
            d.run_version,
            d.newer_version
        )),
    ];
    let s = &d.diff.summary;
    blocks.push(Block::Fields(vec![
        Field::new("Added", s.added.to_string()),
        Field::new("Removed", s.removed.to_string()),
        Field::new("Changed", s.changed.to_string()),
        Field::new("Moved", s.moved.to_string()),
        Field::new("Unchanged", s.unchanged.to_string()),
    ]));
    blocks.extend(code_blocks(&render::unified(&d.diff)));
    Reply::private(title, blocks)
}

/// The executions open in a channel, with their current step and, when a newer version of
/// their runbook was published since they started, that (`drifts` in the same order).
pub fn status(executions: &[Execution], names: &Names, drifts: &[Option<Drift>]) -> Reply {
    let title = if executions.is_empty() {
        "No execution is open in this channel".to_owned()
    } else {
        format!(
            "{} open in this channel",
            plural(executions.len(), "execution")
        )
    };
    let mut blocks = vec![Block::Header(title.clone())];
    if executions.is_empty() {
        blocks.push(Block::Section(
            "Start one with `run RB-…`; `list` shows the runbooks.".into(),
        ));
    }
    for (i, exec) in executions.iter().enumerate() {
        let mut line = execution_line(exec, names);
        if let Some(Some(d)) = drifts.get(i) {
            line.push_str(LINE_BREAK);
            line.push_str(&format!(
                "⚠ {}; it stays on v{}",
                escape_markdown(&d.headline()),
                d.run_version
            ));
        }
        blocks.extend(sections(&line));
    }
    Reply::private(title, blocks)
}

/// One execution: key, runbook, operator, and where it stands.
pub fn execution_line(exec: &Execution, names: &Names) -> String {
    let head = format!(
        "**{}** · {} v{} {} · operator {} · started {}",
        exec.key,
        exec.runbook_key,
        exec.runbook_version,
        escape_markdown(&exec.title),
        names.md(exec.operator),
        time(exec.started_at)
    );
    let at = match exec.current_index() {
        Some(i) => {
            let step = &exec.steps[i];
            let state = match step.status {
                StepStatus::Failed => {
                    " — failed; `retry`, `skip <reason>` or `abort <reason>`".to_owned()
                }
                _ if step.approvals_missing() > 0 => format!(
                    " — waiting for {} by {}",
                    if step.step.approvals_needed() > 1 {
                        super::cards::approvals_count(step, names)
                    } else {
                        "approval".to_owned()
                    },
                    escape_markdown_keeping_code(
                        &vigilo_core::roles::RoleRequirement::from_owner_role(
                            step.step.owner_role.as_str()
                        )
                        .to_string()
                    )
                ),
                _ => String::new(),
            };
            format!("Now: {}{state}", escape_markdown(&step_title(exec, i)))
        }
        None => format!(
            "{} at {}",
            exec.status.as_str(),
            exec.sealed_at.map(time).unwrap_or_default()
        ),
    };
    format!("{head}{LINE_BREAK}{at}")
}

/// `1 execution`, `2 executions`.
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The reply carrying an execution's report: a short message in the run's thread, with the
/// Markdown report as its file (`EX-00001-report.md`). `requested_by` is a handle, without `@`.
pub fn report(report: &vigilo_core::report::ExecutionReport, requested_by: &str) -> Reply {
    use vigilo_core::report::ReportFormat;
    let e = &report.execution;
    let filename = format!("{}-report.md", e.key);
    let text = format!(
        "Report of {} ({}), audit trail up to entry {}",
        e.key,
        e.status.as_str(),
        report.audit_head.seq
    );
    let section = format!(
        "Report of **{}** ({}), requested by {}: every step with who, when and the audit entries behind it, up to entry {} of the trail. Check it with `vigilo audit verify --report {filename}`.",
        e.key,
        e.status.as_str(),
        escape_markdown(&format!("@{requested_by}")),
        report.audit_head.seq
    );
    Reply::public(text, vec![Block::Section(section)])
        .with_target(super::reply::Target::Thread(
            super::reply::Anchor::Execution(e.key),
        ))
        .with_file(super::reply::Attachment {
            title: format!("{} report", e.key),
            filename,
            content: report.render(ReportFormat::Md),
        })
}
