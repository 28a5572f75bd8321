//! `vigilo run`: walk a runbook in the terminal. Each step is shown as a card (instruction,
//! expected outcome, verification, rollback, DESTRUCTIVE / APPROVAL REQUIRED badges, and a
//! progress line), then a prompt takes Done, Skip (reason), Failed (note), Approve, Retry or
//! Abort. At the end, a summary with the timing variance of every step.
//!
//! Input is read line by line, so it works with piped standard input:
//!
//! ```text
//! printf 'd\ns\nnot needed today\nd all good\n' | vigilo --as bob run RB-00001
//! ```
//!
//! Answers: `d [note]`, `s [reason]`, `f [note]`, `a [handle]` (approve; with a handle, records
//! that member's approval, for an approver at the same terminal), `r`, `b [reason]` (abort),
//! `n <note>` (a note on the step; its state does not change), `q` (leave the execution
//! running; resume with `vigilo run EX-…`), Enter to refresh.
//!
//! When a newer version of the runbook was published after the run started, the card says so
//! (with the number of steps changed and the diff command); the run stays on its version.

use std::io::IsTerminal;

use clap::Args;
use tokio::io::{AsyncBufReadExt, BufReader};
use vigilo_core::execution::{Command, ExecStep, Execution, StepStatus};
use vigilo_core::ids::{Key, KeyKind};
use vigilo_core::roles::RoleRequirement;
use vigilo_core::service::Who;

use super::exec::{event_line, render, sealed_line};
use super::output::{Paint, indent, markdown, signed_minutes, terminal_width};
use super::runbook::badges;
use super::{CliError, Ctx, Ref, cr_ref, inc_ref, run_ref, views};

/// `vigilo run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The runbook to execute, or an open execution to resume.
    #[arg(value_parser = run_ref, value_name = "RB-…|EX-…")]
    pub target: Ref,
    /// Link an open change.
    #[arg(long, value_parser = cr_ref, value_name = "CR-…")]
    pub change: Option<Ref>,
    /// Link an open incident.
    #[arg(long, value_parser = inc_ref, value_name = "INC-…")]
    pub incident: Option<Ref>,
    /// A practice run (allowed on drafts).
    #[arg(long)]
    pub rehearsal: bool,
}

/// Standard input, line by line.
struct Input {
    lines: tokio::io::Lines<BufReader<tokio::io::Stdin>>,
    tty: bool,
}

impl Input {
    fn new() -> Self {
        Self {
            lines: BufReader::new(tokio::io::stdin()).lines(),
            tty: std::io::stdin().is_terminal(),
        }
    }

    /// Shows `prompt` (on a terminal) and reads one line; `None` at the end of input.
    async fn ask(&mut self, ctx: &Ctx, prompt: &str) -> Result<Option<String>, CliError> {
        if self.tty {
            use std::io::Write;
            let mut o = std::io::stdout().lock();
            o.write_all(prompt.as_bytes())?;
            o.flush()?;
        } else {
            say(ctx, prompt.trim_end())?;
        }
        let line = self.lines.next_line().await?;
        Ok(line.map(|l| crate::chat::markdown::sanitize(l.trim())))
    }
}

/// Runs `vigilo run`.
pub async fn run(ctx: &Ctx, a: RunArgs) -> Result<(), CliError> {
    let (_, who, _, _) = ctx.who().await?;
    let key = match a.target {
        Ref::Key(k) if k.kind == KeyKind::Execution => {
            if a.change.is_some() || a.incident.is_some() || a.rehearsal {
                return Err(CliError::Usage(
                    "--change, --incident and --rehearsal apply when starting from a runbook, not when resuming an execution".into(),
                ));
            }
            k
        }
        target => {
            let exec =
                super::exec::start(ctx, &who, target, a.change, a.incident, a.rehearsal).await?;
            let p = ctx.out.paint();
            say(
                ctx,
                &format!(
                    "Started {} of {} v{}: {}{}",
                    p.bold(&exec.key.to_string()),
                    exec.runbook_key,
                    exec.runbook_version,
                    exec.title,
                    if exec.rehearsal { " (rehearsal)" } else { "" }
                ),
            )?;
            exec.key
        }
    };
    let p = ctx.out.paint();
    let mut input = Input::new();
    let mut shown: Option<(usize, u64)> = None;
    loop {
        let exec = ctx.vigilo.execution(&who, key).await?;
        let Some(idx) = exec.current_index() else {
            return finish(ctx, &who, key, None).await;
        };
        if shown != Some((idx, exec.rev)) {
            let mut text = card(&p, &exec, idx, ctx.vigilo.now());
            if let Some(d) = ctx.vigilo.drift_of(&who, &exec).await? {
                text.push('\n');
                text.push_str(super::exec::drift_lines(&p, &exec, &d).trim_end());
            }
            say(ctx, &text)?;
            shown = Some((idx, exec.rev));
        }
        let step = &exec.steps[idx];
        let n = idx as u32 + 1;
        let Some(answer) = input.ask(ctx, &prompt(&p, step)).await? else {
            let left = format!(
                "\n{} left running at step {n}; resume with `vigilo run {}`.",
                exec.key, exec.key
            );
            return finish(ctx, &who, key, Some(left)).await;
        };
        let (verb, rest) = match answer.split_once(char::is_whitespace) {
            Some((v, r)) => (v.to_ascii_lowercase(), r.trim().to_owned()),
            None => (answer.to_ascii_lowercase(), String::new()),
        };
        let mut actor = who;
        let approve_as_self = matches!(verb.as_str(), "a" | "approve") && rest.is_empty();
        let cmd = match verb.as_str() {
            "" => {
                shown = None;
                continue;
            }
            "d" | "done" => Command::Done {
                step: n,
                note: (!rest.is_empty()).then_some(rest),
            },
            "s" | "skip" => Command::Skip {
                step: n,
                reason: text_or_ask(ctx, &mut input, rest, "Reason for skipping: ").await?,
            },
            "f" | "fail" | "failed" => Command::Fail {
                step: n,
                note: text_or_ask(ctx, &mut input, rest, "What went wrong: ").await?,
            },
            "a" | "approve" => {
                if !rest.is_empty() {
                    let ws = who.workspace;
                    match ctx.vigilo.member(ws, &rest).await {
                        Ok((u, _)) => actor = Who::new(ws, u.id),
                        Err(e) => {
                            say(ctx, &p.red(&format!("✗ {e}")))?;
                            continue;
                        }
                    }
                }
                Command::Approve { step: n }
            }
            "r" | "retry" => Command::Retry { step: n },
            "n" | "note" => Command::Note {
                step: n,
                text: text_or_ask(ctx, &mut input, rest, "Note: ").await?,
                seen_rev: Some(exec.rev),
            },
            "b" | "abort" => Command::Abort {
                reason: text_or_ask(ctx, &mut input, rest, "Reason for aborting: ").await?,
            },
            "q" | "quit" | "exit" => {
                let left = format!(
                    "{} left running at step {n}; resume with `vigilo run {}`.",
                    exec.key, exec.key
                );
                return finish(ctx, &who, key, Some(left)).await;
            }
            "?" | "h" | "help" => {
                say(ctx, HELP)?;
                continue;
            }
            other => {
                say(
                    ctx,
                    &p.red(&format!("✗ `{other}` is not an answer; type ? for help")),
                )?;
                continue;
            }
        };
        match ctx.vigilo.act(&actor, key, cmd).await {
            Ok(o) => {
                let by = ctx.handle(o.event.actor).await;
                say(
                    ctx,
                    &p.green(&format!("✓ {}", event_line(&p, &o.execution, &o, &by))),
                )?;
            }
            Err(e) => {
                let hint = match e.kind() {
                    vigilo_core::error::ErrorKind::Denied if approve_as_self => {
                        format!(
                            "\n  Another member can approve with `vigilo --as <handle> exec approve {key} --step {n}`, or type `a <handle>` here; then press Enter."
                        )
                    }
                    _ => String::new(),
                };
                say(ctx, &p.red(&format!("✗ {e}{hint}")))?;
            }
        }
    }
}

/// Prints human text, unless `--json` asked for one document only.
fn say(ctx: &Ctx, s: &str) -> Result<(), CliError> {
    if ctx.out.json {
        Ok(())
    } else {
        ctx.out.text(s)
    }
}

/// Ends the walk: the summary (sealed) or `left` (still running); with `--json`, the
/// execution as one document.
async fn finish(ctx: &Ctx, who: &Who, key: Key, left: Option<String>) -> Result<(), CliError> {
    let (exec, summary) = ctx.vigilo.execution_summary(who, key).await?;
    if ctx.out.json {
        let drift = ctx.vigilo.drift_of(who, &exec).await?;
        return ctx
            .out
            .json(&views::execution(ctx, &exec, &summary, drift.as_ref()).await);
    }
    let p = ctx.out.paint();
    match left {
        Some(text) => ctx.out.text(&text),
        None => {
            let mut s = String::from("\n");
            s.push_str(&render(ctx, &p, &exec, &summary).await);
            s.push_str(&sealed_line(&p, &exec, &summary));
            ctx.out.text(&s)
        }
    }
}

const HELP: &str = "Answers:
  d [note]      done
  s [reason]    skip (a reason is required)
  f [note]      failed (a note is required)
  a [handle]    approve (as yourself, or record that member's approval)
  r             retry a failed step
  b [reason]    abort the execution
  n [note]      add a note to the step (its state does not change)
  q             quit, leaving the execution running
  Enter         refresh";

async fn text_or_ask(
    ctx: &Ctx,
    input: &mut Input,
    given: String,
    prompt: &str,
) -> Result<String, CliError> {
    if !given.is_empty() {
        return Ok(given);
    }
    Ok(input.ask(ctx, prompt).await?.unwrap_or_default())
}

fn prompt(p: &Paint, step: &ExecStep) -> String {
    let mut choices = Vec::new();
    if step.status == StepStatus::Failed {
        choices.push("[r]etry");
        choices.push("[s]kip");
    } else {
        if step.approvals_missing() > 0 {
            choices.push("[a]pprove");
        }
        choices.push("[d]one");
        choices.push("[s]kip");
        choices.push("[f]ail");
    }
    choices.push("[n]ote");
    choices.push("a[b]ort");
    choices.push("[q]uit");
    format!("{} > ", p.bold(&choices.join(" ")))
}

/// The card of the current step.
pub fn card(p: &Paint, exec: &Execution, idx: usize, now: chrono::DateTime<chrono::Utc>) -> String {
    let step = &exec.steps[idx];
    let total = exec.steps.len();
    let width = terminal_width(80).min(100);
    let title = format!("── Step {} of {total} · {} ", idx + 1, step.step.title);
    let rule_len = width.saturating_sub(title.chars().count());
    let mut s = format!(
        "\n{}\n",
        p.bold(&format!("{title}{}", "─".repeat(rule_len)))
    );
    let b = badges(p, step.step.is_destructive, step.step.requires_approval);
    let mut facts = Vec::new();
    if !step.step.owner_role.is_empty() {
        facts.push(format!("role {}", step.step.owner_role));
    }
    facts.push(format!("est {} min", step.step.est_minutes.get()));
    if !b.is_empty() {
        s.push_str(&b);
        s.push_str("  ");
    }
    s.push_str(&p.dim(&facts.join(" · ")));
    s.push('\n');
    if step.step.requires_approval {
        let req = RoleRequirement::from_owner_role(step.step.owner_role.as_str());
        let need = step.step.approvals_needed();
        let have = step.approvals.len();
        match step.approvals_missing() {
            0 if need == 1 => s.push_str(&p.green("Approved.\n")),
            0 => s.push_str(&p.green(&format!("Approved ({have} of {need} approvals).\n"))),
            _ if need == 1 => s.push_str(&format!(
                "Needs approval by {req} before it can be marked done.\n"
            )),
            _ => s.push_str(&format!(
                "Needs {need} distinct approvals by {req} before it can be marked done ({have} of {need} given).\n"
            )),
        }
        if let Some(m) = step.step.approval_expires_minutes {
            s.push_str(&p.dim(&format!(
                "Each approval lapses {m} min after it is given unless the step is done first.\n"
            )));
        }
        if !step.lapsed.is_empty() {
            s.push_str(&p.yellow(&format!(
                "{} lapsed; approve again.\n",
                if step.lapsed.len() == 1 {
                    "1 approval".to_owned()
                } else {
                    format!("{} approvals", step.lapsed.len())
                }
            )));
        }
    }
    if step.status == StepStatus::Failed {
        let note = step
            .note
            .as_ref()
            .map(|n| n.to_string())
            .unwrap_or_default();
        s.push_str(&p.red(&format!(
            "FAILED: {}\n",
            crate::chat::markdown::sanitize(&note)
        )));
    }
    if !step.step.description.is_blank() {
        s.push('\n');
        s.push_str(&indent(&markdown(step.step.description.as_str()), 2));
        s.push_str("\n\n");
    }
    for (label, text) in [
        ("Expected", &step.step.expected_outcome),
        ("Verification", &step.step.verification),
        ("Rollback", &step.step.rollback_note),
    ] {
        if !text.is_blank() {
            s.push_str(&format!(
                "{} {}\n",
                p.cyan(&format!("{label}:")),
                markdown(text.as_str())
            ));
        }
    }
    let elapsed = (now - exec.started_at).num_milliseconds().max(0) as f64 / 60_000.0;
    let est_so_far: u64 = exec.steps[..idx]
        .iter()
        .map(|s| u64::from(s.step.est_minutes.get()))
        .sum();
    let est_total: u64 = exec
        .steps
        .iter()
        .map(|s| u64::from(s.step.est_minutes.get()))
        .sum();
    s.push_str(&p.dim(&format!(
        "Progress: step {} of {total} · elapsed {elapsed:.1} min vs {est_so_far} min estimated so far ({} min; {est_total} min in total)",
        idx + 1,
        signed_minutes(elapsed - est_so_far as f64)
    )));
    s
}
