//! The messages of an execution: its header, the card of each step (active, failed, acted on)
//! and the summary. Pure functions of the execution and the users' handles.

use chrono::{DateTime, Utc};
use vigilo_core::analytics::Typical;
use vigilo_core::execution::{
    Drift, EventKind, ExecStep, Execution, ExecutionStatus, ExecutionSummary, StepEvent, StepNote,
    StepStatus,
};
use vigilo_core::ids::UserId;
use vigilo_core::roles::RoleRequirement;

use super::budget::{MAX_MESSAGE_CHARS, blocks_chars, paginate_within};
use super::format::{Names, estimate, minutes, time, variance};
use super::limits::{MAX_BLOCKS, MAX_SECTION_CHARS, split_code, split_markdown, truncate};
use super::markdown::{LINE_BREAK, escape_markdown, escape_markdown_keeping_code};
use super::reply::{
    ACTION_ABORT, ACTION_APPROVE, ACTION_DIFF, ACTION_DONE, ACTION_FAIL, ACTION_NOTE,
    ACTION_REPORT, ACTION_RETRY, ACTION_SKIP, Badge, Block, Button, ButtonStyle, ButtonValue,
    Field, Prompt, Reply,
};

/// Markdown split into sections that fit the limits.
pub fn sections(markdown: &str) -> impl Iterator<Item = Block> {
    split_markdown(markdown, MAX_SECTION_CHARS)
        .into_iter()
        .map(Block::Section)
}

/// Verbatim text split into code blocks that fit the limits.
pub fn code_blocks(code: &str) -> impl Iterator<Item = Block> {
    split_code(code, MAX_SECTION_CHARS)
        .into_iter()
        .map(Block::Code)
}

/// `Step 3/9 · title`, plain text.
pub fn step_title(exec: &Execution, idx: usize) -> String {
    let title = exec
        .steps
        .get(idx)
        .map(|s| s.step.title.to_string())
        .unwrap_or_default();
    format!("Step {}/{} · {title}", idx + 1, exec.steps.len())
}

fn est_total(exec: &Execution) -> u64 {
    exec.steps
        .iter()
        .map(|s| u64::from(s.step.est_minutes.get()))
        .sum()
}

/// The operator, and who started the run when it was handed over since.
fn operator_text(exec: &Execution, names: &Names) -> String {
    if exec.handoffs.is_empty() {
        names.md(exec.operator)
    } else {
        format!(
            "{} (started by {})",
            names.md(exec.operator),
            names.md(exec.started_by())
        )
    }
}

/// The header message of an execution: runbook, version, operator, links, step count and
/// estimate; once sealed, its outcome. While it runs and `drift` says a newer version was
/// published since it started, it says so with the number of steps changed, and offers the
/// diff (a Diff button); the run stays on its version.
pub fn execution_header(
    exec: &Execution,
    names: &Names,
    summary: &ExecutionSummary,
    drift: Option<&Drift>,
) -> Reply {
    let mut fields = vec![
        Field::new(
            "Runbook",
            format!("{} v{}", exec.runbook_key, exec.runbook_version),
        ),
        Field::new("Operator", operator_text(exec, names)),
        Field::new("Steps", exec.steps.len().to_string()),
        Field::new("Estimated total", estimate(est_total(exec))),
    ];
    if let Some(c) = exec.change {
        fields.push(Field::new("Change", c.to_string()));
    }
    if let Some(i) = exec.incident {
        fields.push(Field::new("Incident", i.to_string()));
    }
    fields.push(Field::new("Started", time(exec.started_at)));
    let status = match exec.status {
        ExecutionStatus::Running => "running".to_owned(),
        ExecutionStatus::Completed => format!(
            "completed at {} · {} (estimate {}, {})",
            exec.sealed_at.map(time).unwrap_or_default(),
            minutes(summary.actual_minutes),
            estimate(summary.est_minutes),
            variance(summary.variance_minutes)
        ),
        ExecutionStatus::Aborted => format!(
            "aborted at {}",
            exec.sealed_at.map(time).unwrap_or_default()
        ),
    };
    fields.push(Field::new("Status", status));
    let mut blocks = vec![Block::Header(format!("{} · {}", exec.key, exec.title))];
    if exec.rehearsal {
        blocks.push(Block::Badges(vec![Badge::Rehearsal]));
    }
    blocks.push(Block::Fields(fields));
    if let Some(reason) = &exec.abort_reason {
        blocks.extend(sections(&format!("**Abort reason:** {reason}")));
    }
    if let Some(d) = drift.filter(|_| !exec.status.is_sealed()) {
        blocks.push(Block::Section(format!(
            "⚠ **{}**; this run stays on v{}.",
            d.headline(),
            d.run_version
        )));
        blocks.push(Block::Buttons(vec![button(
            ACTION_DIFF,
            &format!("Diff v{} → v{}", d.run_version, d.newer_version),
            &exec.key.to_string(),
            ButtonStyle::Default,
            None,
        )]));
    }
    let context = if exec.status.is_sealed() {
        format!("{} is sealed; the summary is in the thread.", exec.key)
    } else {
        "Steps follow in the thread. Act with their buttons, or type `done`, `skip <reason>`, `fail <note>`, `approve` in this channel.".to_owned()
    };
    blocks.push(Block::Context(context));
    let text = format!(
        "{} started {}: {} v{} {} ({}, ~{})",
        names.plain(exec.operator),
        exec.key,
        exec.runbook_key,
        exec.runbook_version,
        exec.title,
        super::views::plural(exec.steps.len(), "step"),
        estimate(est_total(exec))
    );
    Reply::public(text, blocks)
}

fn badges(step: &ExecStep) -> Option<Block> {
    let mut b = Vec::new();
    if step.step.is_destructive {
        b.push(Badge::Destructive);
    }
    if step.step.requires_approval {
        b.push(Badge::ApprovalRequired);
        if !step.approvals.is_empty() && step.approvals_missing() == 0 {
            b.push(Badge::Approved);
        }
    }
    (!b.is_empty()).then_some(Block::Badges(b))
}

fn requirement(step: &ExecStep) -> RoleRequirement {
    RoleRequirement::from_owner_role(step.step.owner_role.as_str())
}

/// A verification text as verbatim code: surrounding code fences, if any, are dropped.
fn verification_code(text: &str) -> String {
    let t = text.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t.to_owned();
    };
    let body = rest.split_once('\n').map(|(_, b)| b).unwrap_or("");
    body.trim_end()
        .strip_suffix("```")
        .unwrap_or(body)
        .trim_end()
        .to_owned()
}

/// A markdown label followed by markdown text: inline when the text starts as a paragraph, on
/// its own line when the text starts with a list, heading, quote, fence or table.
fn labelled(label: &str, text: &str) -> String {
    let t = text.trim();
    let digits = t.trim_start_matches(|c: char| c.is_ascii_digit());
    let ordered = digits.len() < t.len() && (digits.starts_with(". ") || digits.starts_with(") "));
    let starts_block = ordered
        || ["- ", "* ", "+ ", "#", ">", "```", "~~~", "|"]
            .iter()
            .any(|m| t.starts_with(m));
    if starts_block {
        format!("**{label}**\n\n{t}")
    } else {
        format!("**{label}:** {t}")
    }
}

/// `1 of 2 approvals (@carol)`, with handles as markdown.
pub fn approvals_count(step: &ExecStep, names: &Names) -> String {
    let by: Vec<String> = step.approvals.iter().map(|a| names.md(a.by)).collect();
    vigilo_core::execution::approvals_summary(step.step.approvals_needed(), &by)
}

/// The small print of a gated step's approvals: each standing approval with the role it was
/// given with, and each lapse (`approval-expires`), one per line.
fn approval_line(step: &ExecStep, names: &Names) -> Option<String> {
    let mut lines = Vec::new();
    if step.step.approvals_needed() > 1 {
        lines.push(approvals_count(step, names));
    }
    for a in &step.approvals {
        let lapses = step
            .lapses_at(a)
            .filter(|_| !step.status.is_complete())
            .map(|t| format!(", lapses at {}", time(t)))
            .unwrap_or_default();
        lines.push(format!(
            "Approved by {} at {} (as {}){lapses}",
            names.md(a.by),
            time(a.at),
            escape_markdown(&a.satisfied_as)
        ));
    }
    for a in &step.lapsed {
        let at = step.lapses_at(a).map(time).unwrap_or_default();
        lines.push(format!(
            "⌛ The approval by {} (given at {}) lapsed at {at}",
            names.md(a.by),
            time(a.at),
        ));
    }
    (!lines.is_empty()).then(|| lines.join(LINE_BREAK))
}

fn step_fields(step: &ExecStep, names: &Names) -> Block {
    let mut fields = vec![Field::new(
        "Estimate",
        estimate(u64::from(step.step.est_minutes.get())),
    )];
    let role = step.step.owner_role.as_str();
    fields.push(Field::new(
        "Owner role",
        if role.is_empty() {
            "any operator".to_owned()
        } else {
            escape_markdown(role)
        },
    ));
    if step.step.requires_approval {
        let need = step.step.approvals_needed();
        let mut value = match (need, step.approvals.first()) {
            (1, Some(a)) => format!("approved by {} at {}", names.md(a.by), time(a.at)),
            (1, None) => format!(
                "needs {}",
                escape_markdown_keeping_code(&requirement(step).to_string())
            ),
            _ if step.approvals_missing() == 0 => approvals_count(step, names),
            _ => format!(
                "{} · needs {}",
                approvals_count(step, names),
                escape_markdown_keeping_code(&requirement(step).to_string())
            ),
        };
        if let Some(m) = step.step.approval_expires_minutes {
            value.push_str(&format!(
                " · {} lapses after {m} min",
                if need == 1 { "it" } else { "each" }
            ));
        }
        fields.push(Field::new("Approval", value));
    }
    if let Some(at) = step.started_at {
        fields.push(Field::new("Current since", time(at)));
    }
    Block::Fields(fields)
}

fn button(
    action: &str,
    label: &str,
    value: &str,
    style: ButtonStyle,
    prompt: Option<Prompt>,
) -> Button {
    Button {
        action_id: action.to_owned(),
        label: label.to_owned(),
        value: value.to_owned(),
        style,
        prompt,
    }
}

fn skip_button(value: &str, order: usize) -> Button {
    button(
        ACTION_SKIP,
        "Skip…",
        value,
        ButtonStyle::Default,
        Some(Prompt {
            title: format!("Skip step {order}"),
            label: format!("Why is step {order} skipped?"),
            submit: "Skip".into(),
        }),
    )
}

/// The Note… button of step `order` (its value carries the revision it was drawn at).
fn note_button(value: &str, order: usize) -> Button {
    button(
        ACTION_NOTE,
        "Note…",
        value,
        ButtonStyle::Default,
        Some(Prompt {
            title: format!("Note on step {order}"),
            label: format!("Your note on step {order} (its state does not change)"),
            submit: "Add note".into(),
        }),
    )
}

/// How many notes a card shows (the newest); `exec show` and the summary list them all.
const MAX_CARD_NOTES: usize = 5;
/// The longest note a card shows in full.
const MAX_CARD_NOTE_TEXT_CHARS: usize = 500;

/// One note as a markdown line: who, when, and the text (already markdown).
pub fn note_line(note: &StepNote, names: &Names, max_chars: usize) -> String {
    labelled(
        &format!("📝 {} at {}", names.md(note.author), time(note.at)),
        &truncate(note.text.as_str(), max_chars),
    )
}

/// The notes of a step as a card shows them: the newest few, and how many more there are.
fn note_blocks(step: &ExecStep, names: &Names) -> Vec<Block> {
    let n = step.notes.len();
    let shown = &step.notes[n.saturating_sub(MAX_CARD_NOTES)..];
    let mut blocks: Vec<Block> = shown
        .iter()
        .flat_map(|note| {
            sections(&note_line(note, names, MAX_CARD_NOTE_TEXT_CHARS)).collect::<Vec<_>>()
        })
        .collect();
    if n > shown.len() {
        blocks.push(Block::Context(format!(
            "{} earlier; the summary lists every note.",
            super::views::plural(n - shown.len(), "note")
        )));
    }
    blocks
}

/// Characters a step card keeps for everything but the step's text (title, badges, failure,
/// fields, approval, buttons, small print); the text gets the rest of the message budget.
const CARD_RESERVE_CHARS: usize = 3_000;
/// Blocks a step card keeps for everything but the step's text.
const CARD_RESERVE_BLOCKS: usize = 10;
/// The longest failure note a card shows (the full note is in `exec show` and the summary).
const MAX_CARD_NOTE_CHARS: usize = 1_500;
/// Characters a continuation message keeps for its title and small print.
const PART_RESERVE_CHARS: usize = 500;

/// The step's text in two halves: what goes before the card's fields (instruction, expected
/// outcome) and what goes after them (verification, rollback note).
fn step_text_halves(step: &ExecStep) -> (Vec<Block>, Vec<Block>) {
    let mut head: Vec<Block> = sections(step.step.description.as_str()).collect();
    if !step.step.expected_outcome.is_blank() {
        head.extend(sections(&labelled(
            "Expected outcome",
            step.step.expected_outcome.as_str(),
        )));
    }
    let mut blocks = Vec::new();
    let verification = verification_code(step.step.verification.as_str());
    if !verification.is_empty() {
        blocks.push(Block::Section("**Verification**".into()));
        blocks.extend(code_blocks(&verification));
    }
    if !step.step.rollback_note.is_blank() {
        blocks.extend(sections(&labelled(
            "Rollback",
            step.step.rollback_note.as_str(),
        )));
    }
    (head, blocks)
}

/// The step's text as the card shows it.
enum CardText {
    /// On the card: what goes before the card's fields, and what goes after them.
    Here(Vec<Block>, Vec<Block>),
    /// In this many continuation messages above the card.
    Above(usize),
}

/// Where the step's text goes, and the pages of the continuation messages (none when it is on
/// the card). Decided by the step's text alone, so a card and every later update of it agree.
fn step_text(step: &ExecStep) -> (CardText, Vec<Vec<Block>>) {
    let (head, tail) = step_text_halves(step);
    let blocks = head.len() + tail.len();
    let chars = blocks_chars(&head) + blocks_chars(&tail);
    if blocks + CARD_RESERVE_BLOCKS <= MAX_BLOCKS && chars + CARD_RESERVE_CHARS <= MAX_MESSAGE_CHARS
    {
        return (CardText::Here(head, tail), Vec::new());
    }
    let mut all = head;
    all.extend(tail);
    let pages = paginate_within(all, MAX_BLOCKS - 2, MAX_MESSAGE_CHARS - PART_RESERVE_CHARS);
    (CardText::Above(pages.len()), pages)
}

/// Every message of the current step, in order: when its text is too long for one message, the
/// text continues over several messages first, and the card with the buttons comes last (see
/// [`step_card`]); otherwise the card alone.
pub fn step_messages(exec: &Execution, idx: usize, names: &Names) -> Vec<Reply> {
    let Some(step) = exec.steps.get(idx) else {
        return vec![step_card(exec, idx, names)];
    };
    let (on_card, pages) = step_text(step);
    let n = pages.len();
    let mut out: Vec<Reply> = pages
        .into_iter()
        .enumerate()
        .map(|(i, page)| text_part(exec, idx, page, i, n))
        .collect();
    out.push(card_with(exec, idx, names, on_card));
    out
}

/// Continuation message `i` of `n` of step `idx`'s text.
fn text_part(exec: &Execution, idx: usize, page: Vec<Block>, i: usize, n: usize) -> Reply {
    let title = step_title(exec, idx);
    let mut blocks = vec![Block::Header(title.clone())];
    blocks.extend(page);
    blocks.push(Block::Context(format!(
        "{} · the step's text, part {} of {n}; the buttons follow",
        exec.key,
        i + 1
    )));
    Reply::public(format!("{title} ({}/{n})", i + 1), blocks)
}

/// The card of the current step, with its buttons: Done, Skip…, Failed… and, on a gated step
/// not yet approved, Approve. A failed step shows what failed and offers Retry, Skip… and
/// Abort… instead. When the step's text is too long for one message, the card says that the
/// text is in the messages before it ([`step_messages`]) and carries everything else; this is
/// the message updated in place when the step is acted on.
pub fn step_card(exec: &Execution, idx: usize, names: &Names) -> Reply {
    let Some(step) = exec.steps.get(idx) else {
        return Reply::public(String::new(), Vec::new());
    };
    card_with(exec, idx, names, step_text(step).0)
}

/// The card of step `idx` with its text placed as `text` says.
fn card_with(exec: &Execution, idx: usize, names: &Names, text: CardText) -> Reply {
    let Some(step) = exec.steps.get(idx) else {
        return Reply::public(String::new(), Vec::new());
    };
    let order = idx + 1;
    let value = ButtonValue {
        execution: exec.key,
        step: Some(order as u32),
        rev: None,
    }
    .to_string();
    let note_value = ButtonValue {
        execution: exec.key,
        step: Some(order as u32),
        rev: Some(exec.rev),
    }
    .to_string();
    let mut blocks = vec![Block::Header(step_title(exec, idx))];
    blocks.extend(badges(step));
    let failed = step.status == StepStatus::Failed;
    if failed {
        let by = step
            .actor
            .map(|u| names.md(u))
            .unwrap_or_else(|| "someone".into());
        let at = step.completed_at.map(time).unwrap_or_default();
        let note = step
            .note
            .as_ref()
            .map(|n| truncate(n.as_str(), MAX_CARD_NOTE_CHARS))
            .unwrap_or_default();
        blocks.extend(sections(&format!(
            "✖ **Failed** (marked by {by} at {at}): {note}"
        )));
    }
    match text {
        CardText::Here(head, tail) => {
            blocks.extend(head);
            blocks.push(step_fields(step, names));
            blocks.extend(tail);
        }
        CardText::Above(n) => {
            blocks.push(Block::Context(format!(
                "The step's text is in the {n} messages above."
            )));
            blocks.push(step_fields(step, names));
        }
    }
    if let Some(line) = approval_line(step, names) {
        blocks.push(Block::Context(line));
    }
    blocks.extend(note_blocks(step, names));
    let gated_open = step.approvals_missing() > 0;
    let mut buttons = if failed {
        vec![
            button(ACTION_RETRY, "Retry", &value, ButtonStyle::Primary, None),
            skip_button(&value, order),
            button(
                ACTION_ABORT,
                "Abort…",
                &value,
                ButtonStyle::Danger,
                Some(Prompt {
                    title: format!("Abort {}", exec.key),
                    label: format!("Why abort {}?", exec.key),
                    submit: "Abort".into(),
                }),
            ),
        ]
    } else {
        let mut b = vec![
            button(ACTION_DONE, "Done", &value, ButtonStyle::Primary, None),
            skip_button(&value, order),
            button(
                ACTION_FAIL,
                "Failed…",
                &value,
                ButtonStyle::Danger,
                Some(Prompt {
                    title: format!("Step {order} failed"),
                    label: "What went wrong?".into(),
                    submit: "Mark failed".into(),
                }),
            ),
        ];
        if gated_open {
            b.push(button(
                ACTION_APPROVE,
                "Approve",
                &value,
                ButtonStyle::Primary,
                None,
            ));
        }
        b
    };
    buttons.push(note_button(&note_value, order));
    blocks.push(Block::Buttons(buttons));
    let typed = if failed {
        "`retry`, `skip <reason>`, `abort <reason>`, `note <text>`"
    } else if gated_open {
        "`done`, `skip <reason>`, `fail <note>`, `approve`, `note <text>`"
    } else {
        "`done`, `skip <reason>`, `fail <note>`, `note <text>`"
    };
    blocks.push(Block::Context(format!(
        "{} · {} v{} · or type {typed}",
        exec.key, exec.runbook_key, exec.runbook_version
    )));
    Reply::public(step_title(exec, idx), blocks)
}

/// The message a note posts in the run's thread: who noted which step, and the note.
pub fn note_posted(exec: &Execution, idx: usize, note: &StepNote, names: &Names) -> Reply {
    let title = step_title(exec, idx);
    let mut blocks: Vec<Block> = sections(&note_line(note, names, MAX_NOTE_POST_CHARS)).collect();
    blocks.push(Block::Context(format!(
        "{} · a note on {}; the step's state did not change",
        exec.key,
        escape_markdown(&title)
    )));
    Reply::public(
        format!("{} noted {title}", names.plain(note.author)),
        blocks,
    )
}

/// The longest note posted in the thread in full (the longest note is shorter still).
const MAX_NOTE_POST_CHARS: usize = 2_500;

/// The message a hand-over or takeover posts in the run's thread, naming the new operator.
pub fn handed_over(exec: &Execution, event: &StepEvent, names: &Names) -> Reply {
    let to = event.to.unwrap_or(exec.operator);
    let (line, text) = if event.kind == EventKind::TakenOver {
        (
            format!(
                "↪ {} took {} over; {} is the operator now.",
                names.md(to),
                exec.key,
                names.md(to)
            ),
            format!("{} took {} over", names.plain(to), exec.key),
        )
    } else {
        (
            format!(
                "↪ {} handed {} to {}; {} is the operator now.",
                names.md(event.actor),
                exec.key,
                names.md(to),
                names.md(to)
            ),
            format!(
                "{} handed {} to {}",
                names.plain(event.actor),
                exec.key,
                names.plain(to)
            ),
        )
    };
    Reply::public(
        text,
        vec![
            Block::Section(line),
            Block::Context(
                "The operator acts on the steps and may not approve the run's gated steps.".into(),
            ),
        ],
    )
}

/// What happened to a step that is no longer current.
#[derive(Clone, Copy, Debug)]
pub enum Outcome {
    /// Marked done or skipped (read from the step).
    Finished,
    /// The execution was aborted while this step was current.
    Aborted {
        /// Who aborted.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
}

/// The compact card a step becomes once acted on: who, what, when, how long against the
/// estimate, the note; no buttons.
pub fn acted_card(
    exec: &Execution,
    idx: usize,
    names: &Names,
    summary: &ExecutionSummary,
    outcome: Outcome,
) -> Reply {
    let Some(step) = exec.steps.get(idx) else {
        return Reply::public(String::new(), Vec::new());
    };
    let timing = summary.steps.get(idx);
    let est = estimate(u64::from(step.step.est_minutes.get()));
    let took = match timing.and_then(|t| t.actual_minutes.zip(t.variance_minutes)) {
        Some((actual, var)) => format!("{} (estimate {est}, {})", minutes(actual), variance(var)),
        None => format!("estimate {est}"),
    };
    let (line, text) = match outcome {
        Outcome::Aborted { by, at } => (
            format!("■ **Aborted** by {} at {}", names.md(by), time(at)),
            format!("aborted by {}", names.plain(by)),
        ),
        Outcome::Finished => {
            let (symbol, word) = match step.status {
                StepStatus::Done => ("✔", "Done"),
                StepStatus::Skipped => ("↷", "Skipped"),
                StepStatus::Failed => ("✖", "Failed"),
                StepStatus::Pending => ("·", "Pending"),
            };
            let by = step
                .actor
                .map(|u| names.md(u))
                .unwrap_or_else(|| "someone".into());
            let at = step.completed_at.map(time).unwrap_or_default();
            (
                format!("{symbol} **{word}** by {by} at {at} · {took}"),
                format!(
                    "{} by {} ({took})",
                    word.to_lowercase(),
                    step.actor
                        .map(|u| names.plain(u))
                        .unwrap_or_else(|| "someone".into())
                ),
            )
        }
    };
    let mut blocks = vec![Block::Header(step_title(exec, idx))];
    blocks.extend(badges(step));
    blocks.extend(sections(&line));
    if matches!(outcome, Outcome::Finished)
        && let Some(note) = step.note.as_ref().filter(|n| !n.is_blank())
    {
        let label = if step.status == StepStatus::Skipped {
            "Reason"
        } else {
            "Note"
        };
        blocks.extend(sections(&labelled(label, note.as_str())));
    }
    if let Outcome::Aborted { .. } = outcome
        && let Some(reason) = &exec.abort_reason
    {
        blocks.extend(sections(&labelled("Reason", reason.as_str())));
    }
    if let Some(a) = approval_line(step, names) {
        blocks.push(Block::Context(a));
    }
    blocks.extend(note_blocks(step, names));
    Reply::public(format!("{}: {text}", step_title(exec, idx)), blocks)
}

/// The longest note the summary shows in full.
const MAX_SUMMARY_NOTE_CHARS: usize = 1_000;

/// The summary posted when an execution is sealed: outcome, each step's status, actual against
/// estimated minutes, the total variance, every hand-over and every note.
///
/// `typical` compares the run with its runbook's typical run ("12 min longer than the median
/// of 14 runs"), when there is one.
pub fn summary(
    exec: &Execution,
    summary: &ExecutionSummary,
    names: &Names,
    typical: Option<&Typical>,
) -> Reply {
    let outcome = exec.status.as_str();
    let mut blocks = vec![Block::Header(format!("Summary · {} {outcome}", exec.key))];
    if exec.rehearsal {
        blocks.push(Block::Badges(vec![Badge::Rehearsal]));
    }
    blocks.extend(sections(&format!(
        "**{}** ({} v{}) · operator {}",
        escape_markdown(&exec.title),
        exec.runbook_key,
        exec.runbook_version,
        operator_text(exec, names)
    )));
    let lines: Vec<String> = summary
        .steps
        .iter()
        .zip(&exec.steps)
        .map(|(t, s)| {
            let (symbol, what) = match t.status {
                StepStatus::Done => ("✔", "done".to_owned()),
                StepStatus::Skipped => ("↷", "skipped".to_owned()),
                StepStatus::Failed => ("✖", "failed".to_owned()),
                StepStatus::Pending if s.started_at.is_some() => ("■", "not finished".to_owned()),
                StepStatus::Pending => ("·", "not reached".to_owned()),
            };
            let by = t
                .actor
                .filter(|_| t.status != StepStatus::Pending)
                .map(|u| format!(" by {}", names.md(u)))
                .unwrap_or_default();
            let timing = match t.actual_minutes.zip(t.variance_minutes) {
                Some((a, v)) => format!(
                    " · {} / est {} ({})",
                    minutes(a),
                    estimate(u64::from(t.est_minutes)),
                    variance(v)
                ),
                None => format!(" · est {}", estimate(u64::from(t.est_minutes))),
            };
            let note = match (&t.note, t.status) {
                (Some(n), StepStatus::Skipped | StepStatus::Failed) => {
                    format!(": {}", escape_markdown(&n.replace('\n', " ")))
                }
                _ => String::new(),
            };
            format!(
                "{symbol} {}\\. {} — {what}{by}{note}{timing}",
                t.order,
                escape_markdown(&t.title)
            )
        })
        .collect();
    if !lines.is_empty() {
        blocks.extend(sections(&lines.join(LINE_BREAK)));
    }
    let mut counts = vec![format!("{} done", summary.done)];
    if summary.skipped > 0 {
        counts.push(format!("{} skipped", summary.skipped));
    }
    if summary.failed > 0 {
        counts.push(format!("{} failed", summary.failed));
    }
    if summary.pending > 0 {
        counts.push(format!("{} not done", summary.pending));
    }
    blocks.push(Block::Fields(vec![
        Field::new("Outcome", outcome),
        Field::new("Steps", counts.join(" · ")),
        Field::new("Actual", minutes(summary.actual_minutes)),
        Field::new("Estimated", estimate(summary.est_minutes)),
        Field::new("Variance", variance(summary.variance_minutes)),
    ]));
    if let Some(t) = typical {
        blocks.push(Block::Context(escape_markdown(&format!(
            "This run: {}.",
            t.sentence()
        ))));
    }
    if let Some(reason) = &exec.abort_reason {
        blocks.extend(sections(&labelled("Abort reason", reason.as_str())));
    }
    if !exec.handoffs.is_empty() {
        let lines: Vec<String> = exec
            .handoffs
            .iter()
            .map(|h| {
                if h.is_takeover() {
                    format!(
                        "↪ taken over from {} by {} at {}",
                        names.md(h.from),
                        names.md(h.to),
                        time(h.at)
                    )
                } else {
                    format!(
                        "↪ {} → {} by {} at {}",
                        names.md(h.from),
                        names.md(h.to),
                        names.md(h.by),
                        time(h.at)
                    )
                }
            })
            .collect();
        blocks.extend(sections(&format!(
            "**Hand-overs**{LINE_BREAK}{}",
            lines.join(LINE_BREAK)
        )));
    }
    let notes = exec.notes();
    if !notes.is_empty() {
        blocks.push(Block::Section("**Notes**".into()));
        for (i, note) in notes {
            blocks.extend(sections(&format!(
                "Step {} · {}",
                i + 1,
                note_line(note, names, MAX_SUMMARY_NOTE_CHARS)
            )));
        }
    }
    blocks.push(Block::Context(format!(
        "{} is sealed; no further changes but notes (`note EX-… <text>`).",
        exec.key
    )));
    // The run as evidence, posted as a file in the thread.
    let value = ButtonValue {
        execution: exec.key,
        step: None,
        rev: None,
    };
    blocks.push(Block::Buttons(vec![button(
        ACTION_REPORT,
        "Report",
        &value.to_string(),
        ButtonStyle::Default,
        None,
    )]));
    let text = format!(
        "{} {outcome}: {}; {} against {} estimated ({})",
        exec.key,
        counts.join(", "),
        minutes(summary.actual_minutes),
        estimate(summary.est_minutes),
        variance(summary.variance_minutes)
    );
    Reply::public(text, blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_fences_are_dropped() {
        assert_eq!(verification_code("```sh\nls -l\n```"), "ls -l");
        assert_eq!(verification_code("  curl -sf x  "), "curl -sf x");
    }

    #[test]
    fn labels_inline_or_block() {
        assert_eq!(
            labelled("Rollback", "Restore it."),
            "**Rollback:** Restore it."
        );
        assert_eq!(labelled("Rollback", "- a\n- b"), "**Rollback**\n\n- a\n- b");
        assert_eq!(
            labelled("Outcome", "`nginx -t` passes"),
            "**Outcome:** `nginx -t` passes"
        );
        assert_eq!(labelled("Outcome", "13 months"), "**Outcome:** 13 months");
        assert_eq!(labelled("Outcome", "1. first"), "**Outcome**\n\n1. first");
    }
}
