//! `vigilo change …`: change requests, their implementation plan (imported from a runbook and
//! then change-owned), status moves, and save-as-runbook.

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use vigilo_core::change::{ChangeAction, ChangeRequest};
use vigilo_core::ids::{Key, KeyKind};
use vigilo_core::runbook::StepInput;
use vigilo_core::service::{ChangeView, SaveAs, Who};

use super::output::{Paint, Table, indent, markdown};
use super::runbook::badges;
use super::{CliError, Ctx, Ref, cr_ref, rb_ref, views};

/// Fields of a plan task.
#[derive(Clone, Debug, Default, Args)]
pub struct TaskFields {
    /// Title.
    #[arg(long)]
    pub title: Option<String>,
    /// Instruction (markdown).
    #[arg(long)]
    pub description: Option<String>,
    /// Owner role (a workspace role or a team role such as `dba`).
    #[arg(long)]
    pub role: Option<String>,
    /// Estimated minutes.
    #[arg(long, value_name = "minutes")]
    pub est: Option<i64>,
    /// Expected outcome.
    #[arg(long)]
    pub expected: Option<String>,
    /// Verification command or check.
    #[arg(long)]
    pub verification: Option<String>,
    /// Rollback note.
    #[arg(long)]
    pub rollback: Option<String>,
    /// Requires approval (`--approval` alone means yes).
    #[arg(long, value_name = "yes|no", num_args = 0..=1, default_missing_value = "yes", value_parser = parse_yes_no)]
    pub approval: Option<bool>,
    /// Destructive (`--destructive` alone means yes).
    #[arg(long, value_name = "yes|no", num_args = 0..=1, default_missing_value = "yes", value_parser = parse_yes_no)]
    pub destructive: Option<bool>,
}

fn parse_yes_no(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "on" | "1" | "required" => Ok(true),
        "no" | "n" | "false" | "off" | "0" => Ok(false),
        _ => Err(format!("expected yes or no, not `{s}`")),
    }
}

/// `vigilo change task …`.
#[derive(Debug, Subcommand)]
pub enum TaskCmd {
    /// Add a task to the plan.
    #[command(
        after_help = "Example:\n  vigilo --as bob change task add CR-00001 --title 'Drain node 3' --est 5 --role sre --at 2"
    )]
    Add {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
        /// The task's fields.
        #[command(flatten)]
        fields: TaskFields,
        /// Insert at this position (1-based; default: at the end).
        #[arg(long, value_name = "N")]
        at: Option<usize>,
    },
    /// Change fields of task N (the others stay).
    #[command(
        after_help = "Example:\n  vigilo --as bob change task edit CR-00001 2 --est 15 --approval"
    )]
    Edit {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
        /// The task number (1-based).
        n: usize,
        /// The fields to change.
        #[command(flatten)]
        fields: TaskFields,
    },
    /// Remove task N.
    #[command(after_help = "Example:\n  vigilo --as bob change task remove CR-00001 3")]
    Remove {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
        /// The task number (1-based).
        n: usize,
    },
}

/// `vigilo change …`.
#[derive(Debug, Subcommand)]
pub enum ChangeCmd {
    /// Create a change request (draft).
    #[command(
        after_help = "Example:\n  vigilo --as bob change create --title 'Rotate edge certs' --description 'Expires Friday'"
    )]
    Create {
        /// Title.
        #[arg(long)]
        title: String,
        /// Description (markdown).
        #[arg(long, default_value = "")]
        description: String,
    },
    /// The plan, with its source banner (runbook, version, newer version available).
    #[command(after_help = "Example:\n  vigilo --as bob change show CR-00001")]
    Show {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
    },
    /// List change requests.
    #[command(after_help = "Example:\n  vigilo --as bob change list")]
    List,
    /// Copy a published runbook's steps into the plan.
    #[command(after_help = "Example:\n  vigilo --as bob change import CR-00001 RB-00003")]
    Import {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
        /// The runbook.
        #[arg(value_parser = rb_ref, value_name = "RB-…")]
        runbook: Ref,
    },
    /// Take the source runbook's newest version into the plan.
    #[command(after_help = "Example:\n  vigilo --as bob change reimport CR-00001")]
    Reimport {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
    },
    /// Drop the link to the source runbook (the tasks stay).
    #[command(after_help = "Example:\n  vigilo --as bob change clear-source CR-00001")]
    ClearSource {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
    },
    /// Edit the plan's tasks.
    #[command(subcommand)]
    Task(TaskCmd),
    /// draft → approved (admins and the owner).
    #[command(after_help = "Example:\n  vigilo --as alice change approve CR-00001")]
    Approve {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
    },
    /// approved → in_progress (a plan from a runbook needs a live execution linked first).
    #[command(after_help = "Example:\n  vigilo --as bob change start CR-00001")]
    Start {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
    },
    /// in_progress → completed.
    #[command(after_help = "Example:\n  vigilo --as bob change complete CR-00001")]
    Complete {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
    },
    /// Cancel a change that is not final.
    #[command(after_help = "Example:\n  vigilo --as bob change cancel CR-00001")]
    Cancel {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
    },
    /// Save a completed change's plan as a new runbook, or as a new version of a published one.
    #[command(
        after_help = "Examples:\n  vigilo --as bob change save-as-runbook CR-00001 --new --title 'Rotate edge certs' --category security\n  vigilo --as bob change save-as-runbook CR-00001 --into RB-00003"
    )]
    SaveAsRunbook {
        /// The change.
        #[arg(value_parser = cr_ref, value_name = "CR-…")]
        change: Ref,
        /// Create a new runbook (a draft owned by you).
        #[arg(long, requires = "title", conflicts_with = "into")]
        new: bool,
        /// The new runbook's title.
        #[arg(long, requires = "new")]
        title: Option<String>,
        /// The new runbook's category.
        #[arg(long, requires = "new")]
        category: Option<String>,
        /// Save as a new version of this published runbook.
        #[arg(long, value_parser = rb_ref, value_name = "RB-…", required_unless_present = "new")]
        into: Option<Ref>,
    },
}

/// Runs a `change` subcommand.
pub async fn dispatch(ctx: &Ctx, c: ChangeCmd) -> Result<(), CliError> {
    let (_, who, _, _) = ctx.who().await?;
    let kind = KeyKind::Change;
    match c {
        ChangeCmd::Create { title, description } => {
            let c = ctx.vigilo.create_change(&who, &title, &description).await?;
            let key = c.key;
            show_after(ctx, &who, key, |p| {
                format!("Created {}: {}", p.bold(&key.to_string()), c.title)
            })
            .await
        }
        ChangeCmd::Show { change } => {
            let key = ctx.key(&who, change, kind).await?;
            let v = ctx.vigilo.change(&who, key).await?;
            let doc = views::change(ctx, &v).await;
            let owner = ctx.handle(v.change.owner).await;
            ctx.out.emit(&doc, |p| render(p, &v, &owner))
        }
        ChangeCmd::List => {
            let all = ctx.vigilo.list_changes(&who).await?;
            let mut docs = Vec::new();
            let mut t = Table::new(&["KEY", "STATUS", "OWNER", "SOURCE", "TASKS", "TITLE"]);
            for c in &all {
                docs.push(views::change_summary(ctx, c).await);
                t.row(vec![
                    c.key.to_string(),
                    c.status.as_str().to_owned(),
                    format!("@{}", ctx.handle(c.owner).await),
                    c.source
                        .as_ref()
                        .map_or("-".into(), |s| format!("{} v{}", s.key, s.version)),
                    c.tasks.len().to_string(),
                    c.title.to_string(),
                ]);
            }
            ctx.out.emit(&Value::Array(docs), |p| {
                if t.is_empty() {
                    "No change requests.".into()
                } else {
                    t.render(p)
                }
            })
        }
        ChangeCmd::Import { change, runbook } => {
            let key = ctx.key(&who, change, kind).await?;
            let rb = ctx.key(&who, runbook, KeyKind::Runbook).await?;
            let c = ctx.vigilo.import_into_change(&who, key, rb).await?;
            show_after(ctx, &who, key, |_| {
                format!("Imported {rb} into {key}: {} tasks.", c.tasks.len())
            })
            .await
        }
        ChangeCmd::Reimport { change } => {
            let key = ctx.key(&who, change, kind).await?;
            let c = ctx.vigilo.reimport_change(&who, key).await?;
            let src = source_text(&c);
            show_after(ctx, &who, key, |_| {
                format!("Re-imported {src} into {key}: {} tasks.", c.tasks.len())
            })
            .await
        }
        ChangeCmd::ClearSource { change } => {
            let key = ctx.key(&who, change, kind).await?;
            ctx.vigilo.clear_change_source(&who, key).await?;
            show_after(ctx, &who, key, |_| {
                format!("Cleared the source of {key}; its tasks stay.")
            })
            .await
        }
        ChangeCmd::Task(t) => task(ctx, &who, t).await,
        ChangeCmd::Approve { change } => mv(ctx, &who, change, ChangeAction::Approve).await,
        ChangeCmd::Start { change } => mv(ctx, &who, change, ChangeAction::Start).await,
        ChangeCmd::Complete { change } => mv(ctx, &who, change, ChangeAction::Complete).await,
        ChangeCmd::Cancel { change } => mv(ctx, &who, change, ChangeAction::Cancel).await,
        ChangeCmd::SaveAsRunbook {
            change,
            new,
            title,
            category,
            into,
        } => {
            let key = ctx.key(&who, change, kind).await?;
            let to = if new {
                SaveAs::New {
                    title: title.unwrap_or_default(),
                    category: category.unwrap_or_default(),
                }
            } else {
                let Some(into) = into else {
                    return Err(CliError::Usage(
                        "say where to save: --new --title … [--category …], or --into RB-…".into(),
                    ));
                };
                SaveAs::Into {
                    runbook: ctx.key(&who, into, KeyKind::Runbook).await?,
                }
            };
            let rb = ctx.vigilo.save_change_as_runbook(&who, key, to).await?;
            let mut doc = views::runbook(ctx, &rb, rb.version, &rb.body).await;
            if let Value::Object(m) = &mut doc {
                m.insert("change".into(), json!(key));
            }
            ctx.out.emit(&doc, |p| {
                let what = if new {
                    format!("new runbook {} (draft)", p.bold(&rb.key.to_string()))
                } else {
                    format!("{} v{}", p.bold(&rb.key.to_string()), rb.version)
                };
                format!(
                    "Saved the plan of {key} as {what}: {} ({} steps).",
                    rb.body.title,
                    rb.body.steps.len()
                )
            })
        }
    }
}

fn source_text(c: &ChangeRequest) -> String {
    c.source
        .as_ref()
        .map_or_else(|| "-".into(), |s| format!("{} v{}", s.key, s.version))
}

/// Prints the change after a command: its JSON, or `headline` and the plan.
async fn show_after(
    ctx: &Ctx,
    who: &Who,
    key: Key,
    headline: impl FnOnce(&Paint) -> String,
) -> Result<(), CliError> {
    let v = ctx.vigilo.change(who, key).await?;
    let doc = views::change(ctx, &v).await;
    let owner = ctx.handle(v.change.owner).await;
    ctx.out.emit(&doc, |p| {
        format!("{}\n\n{}", headline(p), render(p, &v, &owner))
    })
}

async fn mv(
    ctx: &Ctx,
    who: &Who,
    change: super::Ref,
    action: ChangeAction,
) -> Result<(), CliError> {
    let key = ctx.key(who, change, KeyKind::Change).await?;
    let c = ctx.vigilo.move_change(who, key, action).await?;
    let v = ctx.vigilo.change(who, key).await?;
    let doc = views::change(ctx, &v).await;
    ctx.out.emit(&doc, |p| {
        format!("{key} is now {}.", p.bold(c.status.as_str()))
    })
}

fn merge(mut base: StepInput, f: TaskFields) -> StepInput {
    if let Some(v) = f.title {
        base.title = v;
    }
    if let Some(v) = f.description {
        base.description = v;
    }
    if let Some(v) = f.role {
        base.owner_role = v;
    }
    if let Some(v) = f.est {
        base.est_minutes = v;
    }
    if let Some(v) = f.expected {
        base.expected_outcome = v;
    }
    if let Some(v) = f.verification {
        base.verification = v;
    }
    if let Some(v) = f.rollback {
        base.rollback_note = v;
    }
    if let Some(v) = f.approval {
        base.requires_approval = v;
    }
    if let Some(v) = f.destructive {
        base.is_destructive = v;
    }
    base
}

async fn task(ctx: &Ctx, who: &Who, t: TaskCmd) -> Result<(), CliError> {
    match t {
        TaskCmd::Add { change, fields, at } => {
            let key = ctx.key(who, change, KeyKind::Change).await?;
            let c = ctx
                .vigilo
                .add_change_task(who, key, merge(StepInput::default(), fields), at)
                .await?;
            let n = at.unwrap_or(c.tasks.len());
            show_after(ctx, who, key, |_| format!("Added task {n} to {key}.")).await
        }
        TaskCmd::Edit { change, n, fields } => {
            let key = ctx.key(who, change, KeyKind::Change).await?;
            let current = ctx.vigilo.change(who, key).await?.change;
            let Some(existing) = n.checked_sub(1).and_then(|i| current.tasks.get(i)) else {
                return Err(CliError::NotFound(format!(
                    "{key} has no task {n}; its plan has {} tasks",
                    current.tasks.len()
                )));
            };
            let input = merge(existing.to_input(n), fields);
            // A task keeps an empty title as empty (to_input would title it).
            let input =
                if existing.title.trim().is_empty() && input.title == existing.to_input(n).title {
                    StepInput {
                        title: String::new(),
                        ..input
                    }
                } else {
                    input
                };
            ctx.vigilo.edit_change_task(who, key, n, input).await?;
            show_after(ctx, who, key, |_| format!("Edited task {n} of {key}.")).await
        }
        TaskCmd::Remove { change, n } => {
            let key = ctx.key(who, change, KeyKind::Change).await?;
            ctx.vigilo.remove_change_task(who, key, n).await?;
            show_after(ctx, who, key, |_| format!("Removed task {n} from {key}.")).await
        }
    }
}

/// A change and its plan for people, with the source banner.
fn render(p: &Paint, v: &ChangeView, owner: &str) -> String {
    let c = &v.change;
    let mut s = format!(
        "{}  {}\n{}\n",
        p.bold(&c.key.to_string()),
        p.bold(c.title.as_str()),
        p.dim(&format!("{} · owner @{owner}", c.status.as_str()))
    );
    if let Some(src) = &c.source {
        let mut banner = format!("Source: {} (v{})", src.key, src.version);
        if let Some(newer) = v.newer_version_available {
            banner.push_str(&format!(
                "  {}",
                p.yellow(&format!(
                    "v{newer} available: `change reimport {}` to take it, `change clear-source {}` to dismiss",
                    c.key, c.key
                ))
            ));
        }
        s.push_str(&banner);
        s.push('\n');
    }
    if !c.description.is_blank() {
        s.push('\n');
        s.push_str(&markdown(c.description.as_str()));
        s.push('\n');
    }
    s.push('\n');
    if c.tasks.is_empty() {
        s.push_str(
            "Implementation plan: no tasks (`change import` a runbook or `change task add`).\n",
        );
        return s;
    }
    s.push_str(&p.bold("Implementation plan"));
    s.push('\n');
    let est: u32 = c.tasks.iter().map(|t| t.est_minutes.get()).sum();
    for (i, t) in c.tasks.iter().enumerate() {
        let title = if t.title.trim().is_empty() {
            p.dim("(untitled)")
        } else {
            t.title.clone()
        };
        let mut line = format!("{:>3}. {title}", i + 1);
        let b = badges(p, t.is_destructive, t.requires_approval);
        if !b.is_empty() {
            line.push_str("  ");
            line.push_str(&b);
        }
        let mut facts = Vec::new();
        if !t.owner_role.is_empty() {
            facts.push(format!("role {}", t.owner_role));
        }
        facts.push(format!("est {} min", t.est_minutes.get()));
        line.push_str(&format!("  {}", p.dim(&facts.join(" · "))));
        s.push_str(&line);
        s.push('\n');
        if !t.description.is_blank() {
            s.push_str(&indent(&markdown(t.description.as_str()), 6));
            s.push('\n');
        }
    }
    s.push_str(&format!("{} tasks, est {est} min\n", c.tasks.len()));
    s
}
