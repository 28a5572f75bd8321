//! `vigilo runbook …`: files in and out (import, export, sync), list, show, publish,
//! unpublish, archive, history, diff, search.
//!
//! Import and sync check every file, then every target and permission, before saving any:
//! a file with an error, or a refusal found up front, changes nothing at all.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::{Value, json};
use vigilo_core::authz::{self, Action, Subject, Visibility};
use vigilo_core::ids::{Key, KeyKind, UserId};
use vigilo_core::runbook::file::{self, RunbookFile};
use vigilo_core::runbook::render;
use vigilo_core::runbook::{Runbook, RunbookBody, VersionSource, adopt_step_ids};
use vigilo_core::service::{CreateRunbook, ListRunbooks, RunbookSave, Who};
use vigilo_core::workspace::Actor;

use super::context::display_name;
use super::output::{Paint, Table, cut, indent, markdown, terminal_width, time};
use super::{CliError, Ctx, Ref, rb_ref, views};

/// `vigilo runbook …`.
#[derive(Debug, Subcommand)]
pub enum RunbookCmd {
    /// Create or update runbooks from Markdown files (every file is checked before any is saved).
    #[command(
        after_help = "Examples:\n  vigilo --as alice runbook import rotate-cert.md --publish\n  vigilo --as alice runbook import rotate-cert.md --into RB-00003 --expect-version 4\n\nA file whose front matter has `key = \"RB-…\"` updates that runbook; others create new ones.\nImporting an unchanged file changes nothing (no new version)."
    )]
    Import {
        /// The files (the format of `runbook export`).
        #[arg(required = true, value_name = "file.md")]
        files: Vec<PathBuf>,
        /// Save the file as a new version of this runbook.
        #[arg(long, value_parser = rb_ref, value_name = "RB-…")]
        into: Option<Ref>,
        /// Refuse (exit 5) unless the runbook is still at this version.
        #[arg(long, requires = "into", value_name = "N")]
        expect_version: Option<u32>,
        /// Publish the runbooks after saving.
        #[arg(long)]
        publish: bool,
    },
    /// Print a runbook as a Markdown file (the format `import` and `sync` read).
    #[command(
        after_help = "Examples:\n  vigilo --as alice runbook export RB-00001 > rotate-cert.md\n  vigilo --as alice runbook export RB-00001 --version 2 -o old.md"
    )]
    Export {
        /// The runbook.
        #[arg(value_parser = rb_ref, value_name = "RB-…")]
        runbook: Ref,
        /// An older version.
        #[arg(long, value_name = "N")]
        version: Option<u32>,
        /// Write to this file instead of standard output.
        #[arg(short, long, value_name = "file")]
        output: Option<PathBuf>,
    },
    /// Create or update runbooks from every `*.md` file under a folder; only what changed gets a new version.
    #[command(
        after_help = "Example:\n  vigilo --as alice runbook sync ./runbooks\n\nFiles are matched to runbooks by their `key = \"RB-…\"` front-matter field, else by exact\ntitle; the others create new runbooks. README.md files are skipped. If any file has an\nerror, nothing at all is changed (exit 6, naming file:line)."
    )]
    Sync {
        /// The folder (searched recursively; hidden folders and README.md are skipped).
        dir: PathBuf,
        /// Check every file and show what would change, without saving.
        #[arg(long)]
        dry_run: bool,
    },
    /// List runbooks (published; drafts you may see with --drafts).
    #[command(after_help = "Example:\n  vigilo --as bob runbook list --category database --drafts")]
    List {
        /// Only this category.
        #[arg(long)]
        category: Option<String>,
        /// Include the drafts you may see.
        #[arg(long)]
        drafts: bool,
        /// List archived runbooks instead (admins and the owner).
        #[arg(long)]
        archived: bool,
    },
    /// Show a runbook with its steps.
    #[command(after_help = "Example:\n  vigilo --as bob runbook show RB-00001 --version 2")]
    Show {
        /// The runbook.
        #[arg(value_parser = rb_ref, value_name = "RB-…")]
        runbook: Ref,
        /// An older version.
        #[arg(long, value_name = "N")]
        version: Option<u32>,
    },
    /// Publish a runbook (its owner, admins, the workspace owner).
    #[command(after_help = "Example:\n  vigilo --as alice runbook publish RB-00001")]
    Publish {
        /// The runbook.
        #[arg(value_parser = rb_ref, value_name = "RB-…")]
        runbook: Ref,
    },
    /// Unpublish a runbook back to draft.
    #[command(after_help = "Example:\n  vigilo --as alice runbook unpublish RB-00001")]
    Unpublish {
        /// The runbook.
        #[arg(value_parser = rb_ref, value_name = "RB-…")]
        runbook: Ref,
    },
    /// Archive (soft-delete) a runbook (admins and the owner).
    #[command(after_help = "Example:\n  vigilo --as alice runbook archive RB-00001")]
    Archive {
        /// The runbook.
        #[arg(value_parser = rb_ref, value_name = "RB-…")]
        runbook: Ref,
    },
    /// Every version: author, time and source.
    #[command(after_help = "Example:\n  vigilo --as bob runbook history RB-00001")]
    History {
        /// The runbook.
        #[arg(value_parser = rb_ref, value_name = "RB-…")]
        runbook: Ref,
    },
    /// The step-level diff between two versions.
    #[command(
        after_help = "Examples:\n  vigilo --as bob runbook diff RB-00001 --from 1 --to 3\n  vigilo --as bob runbook diff RB-00001 --from 1 --to 3 --side-by-side"
    )]
    Diff {
        /// The runbook.
        #[arg(value_parser = rb_ref, value_name = "RB-…")]
        runbook: Ref,
        /// The older version (default: the one before --to).
        #[arg(long, value_name = "N")]
        from: Option<u32>,
        /// The newer version (default: the current one).
        #[arg(long, value_name = "M")]
        to: Option<u32>,
        /// Two columns, old on the left.
        #[arg(long)]
        side_by_side: bool,
        /// Width of the side-by-side view (default: the terminal's, or 120).
        #[arg(long, value_name = "columns")]
        width: Option<usize>,
    },
    /// Per-step timing and outcomes across executions: a table, a chart, new estimates.
    #[command(
        after_help = "Examples:\n  vigilo --as bob runbook stats RB-00001\n  vigilo --as bob runbook stats RB-00001 --since 2026-05-01T00:00:00Z --chart rb1.png\n  vigilo --as alice runbook stats RB-00001 --suggest --apply\n\nMinutes per step over the runs where it was done (skipped and failed steps count in their\nrates); rehearsals are left out unless --include-rehearsals. --suggest proposes the median\nof real runs, rounded, at least 1 minute (steps done fewer than 5 times keep theirs);\n--apply saves them as a new version."
    )]
    Stats {
        /// The runbook.
        #[arg(value_parser = rb_ref, value_name = "RB-…")]
        runbook: Ref,
        /// Only executions of this version.
        #[arg(long, value_name = "N")]
        version: Option<u32>,
        /// Only executions started at or after this time.
        #[arg(long, value_parser = super::stats::parse_since, value_name = "RFC3339")]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Count rehearsals too.
        #[arg(long)]
        include_rehearsals: bool,
        /// Draw estimate against actual per step into this file (.svg or .png).
        #[arg(long, value_name = "FILE.svg|FILE.png")]
        chart: Option<PathBuf>,
        /// Propose new estimates from the real runs.
        #[arg(long)]
        suggest: bool,
        /// Save the proposed estimates as a new version (needs --suggest).
        #[arg(long, requires = "suggest")]
        apply: bool,
    },
    /// Full-text search over titles, descriptions and steps.
    #[command(after_help = "Example:\n  vigilo --as bob runbook search certificate rotate")]
    Search {
        /// The words (all must match).
        #[arg(required = true)]
        words: Vec<String>,
        /// At most this many results.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

/// Runs a `runbook` subcommand.
pub async fn dispatch(ctx: &Ctx, c: RunbookCmd) -> Result<(), CliError> {
    let (_, who, _, _) = ctx.who().await?;
    match c {
        RunbookCmd::Import {
            files,
            into,
            expect_version,
            publish,
        } => import(ctx, &who, files, into, expect_version, publish).await,
        RunbookCmd::Export {
            runbook,
            version,
            output,
        } => export(ctx, &who, runbook, version, output).await,
        RunbookCmd::Sync { dir, dry_run } => sync(ctx, &who, &dir, dry_run).await,
        RunbookCmd::List {
            category,
            drafts,
            archived,
        } => list(ctx, &who, category, drafts, archived).await,
        RunbookCmd::Show { runbook, version } => show(ctx, &who, runbook, version).await,
        RunbookCmd::Publish { runbook } => publish_cmd(ctx, &who, runbook, Some(true)).await,
        RunbookCmd::Unpublish { runbook } => publish_cmd(ctx, &who, runbook, Some(false)).await,
        RunbookCmd::Archive { runbook } => publish_cmd(ctx, &who, runbook, None).await,
        RunbookCmd::History { runbook } => history(ctx, &who, runbook).await,
        RunbookCmd::Diff {
            runbook,
            from,
            to,
            side_by_side,
            width,
        } => diff(ctx, &who, runbook, from, to, side_by_side, width).await,
        RunbookCmd::Search { words, limit } => search(ctx, &who, &words.join(" "), limit).await,
        RunbookCmd::Stats {
            runbook,
            version,
            since,
            include_rehearsals,
            chart,
            suggest,
            apply,
        } => {
            super::stats::runbook_stats(
                ctx,
                &who,
                super::stats::RunbookStatsArgs {
                    runbook,
                    version,
                    since,
                    include_rehearsals,
                    chart,
                    suggest,
                    apply,
                },
            )
            .await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Files in: import and sync
// ---------------------------------------------------------------------------------------------

/// A file read and parsed.
struct Parsed {
    name: String,
    /// How the version source names the file (its name for import, its path in the folder
    /// for sync).
    source: String,
    file: RunbookFile,
    /// The line of the front matter's `owner` key (1-based), for errors about the owner.
    owner_line: usize,
}

/// The 1-based line of the front matter's `owner = …`, or 1 when there is none.
fn owner_line(text: &str) -> usize {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix("owner")
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(1, |i| i + 1)
}

/// The member a file names as its owner: refused, with the file and line, unless they are a
/// current member who may own runbooks (an operator or above: an owner edits and publishes).
async fn file_owner(
    ctx: &Ctx,
    who: &Who,
    at: &str,
    handle: &str,
) -> Result<vigilo_core::workspace::User, CliError> {
    let (user, m) = ctx
        .vigilo
        .member(who.workspace, handle)
        .await
        .map_err(|e| CliError::NotFound(format!("{at}: owner: {e}")))?;
    if m.role < vigilo_core::roles::WorkspaceRole::Operator {
        return Err(CliError::Refused(format!(
            "{at}: owner: @{} is a {} and cannot own runbooks; name an operator, admin or owner, or make @{} an operator first (`vigilo user set-role {} operator`)",
            user.handle,
            m.role.as_str(),
            user.handle,
            user.handle
        )));
    }
    Ok(user)
}

/// What saving one file will do.
enum Target {
    Create {
        owner: Option<UserId>,
    },
    Update {
        runbook: Box<Runbook>,
        changed: bool,
        /// The file's `owner`, when it names someone other than the current owner.
        new_owner: Option<String>,
    },
}

struct Item {
    name: String,
    source: String,
    file: RunbookFile,
    target: Target,
    publish: Option<bool>,
}

/// Reads and parses every file; all errors are reported together and nothing is saved.
fn read_all(paths: &[(PathBuf, String, String)]) -> Result<Vec<Parsed>, CliError> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (path, name, source) in paths {
        let text = match std::fs::read(path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(t) => t,
                Err(_) => {
                    errors.push(format!("{name}:1: the file is not UTF-8 text"));
                    continue;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CliError::NotFound(format!("{name}: no such file")));
            }
            // A file that is there but cannot be read is a refused input, named like the
            // others (and nothing is saved), not a failure of Vigilo.
            Err(e) => {
                errors.push(format!("{name}: cannot read the file ({e})"));
                continue;
            }
        };
        match file::parse(name, &text) {
            Ok(file) => out.push(Parsed {
                name: name.clone(),
                source: source.clone(),
                file,
                owner_line: owner_line(&text),
            }),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        let n = errors.len();
        errors.push(format!(
            "nothing was changed ({n} file{} with errors)",
            if n == 1 { "" } else { "s" }
        ));
        Err(CliError::Refused(errors.join("\n")))
    }
}

fn subject(rb: &Runbook) -> Subject {
    Subject {
        owner: Some(rb.owner),
        visibility: Some(match (rb.archived_at, rb.is_published) {
            (Some(_), p) => Visibility::Archived { was_published: p },
            (None, true) => Visibility::Published,
            (None, false) => Visibility::Draft,
        }),
    }
}

fn allowed(actor: &Actor, action: Action, s: &Subject, name: &str) -> Result<(), CliError> {
    authz::authorize(actor.id(), actor.role(), action, s)
        .map_err(|d| CliError::Denied(format!("{name}: {d}")))
}

/// Every runbook the actor can see (published and visible drafts), for matching by title.
async fn visible_runbooks(ctx: &Ctx, who: &Who) -> Result<Vec<Runbook>, CliError> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = ctx
            .vigilo
            .list_runbooks(
                who,
                ListRunbooks {
                    drafts: true,
                    after,
                    limit: 500,
                    ..Default::default()
                },
            )
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.key);
        let full = page.len() < 500;
        all.extend(page);
        if full {
            break;
        }
    }
    Ok(all)
}

/// True when saving `f` over `rb` would change the body.
fn changes(rb: &Runbook, f: &RunbookFile) -> bool {
    let mut input = f.input.clone();
    adopt_step_ids(&rb.body.steps, &mut input.steps);
    match input.validate() {
        Ok(body) => body != rb.body,
        Err(_) => true,
    }
}

/// Decides what each file does and checks every permission and rule that can be checked
/// before saving anything.
async fn plan(
    ctx: &Ctx,
    who: &Who,
    parsed: Vec<Parsed>,
    into: Option<Key>,
    expect_version: Option<u32>,
    publish: bool,
    by_title: bool,
) -> Result<Vec<Item>, CliError> {
    let actor = ctx.vigilo.actor(who).await?;
    let existing = if by_title {
        visible_runbooks(ctx, who).await?
    } else {
        Vec::new()
    };
    let mut titles: HashMap<&str, Vec<&Runbook>> = HashMap::new();
    for rb in &existing {
        titles.entry(rb.body.title.as_str()).or_default().push(rb);
    }
    let mut items = Vec::new();
    let mut claimed: HashMap<Key, String> = HashMap::new();
    let mut new_titles: HashSet<String> = HashSet::new();
    for p in parsed {
        let name = p.name;
        let wanted_key = into.or(p.file.key);
        let target_rb = match wanted_key {
            Some(k) => Some(ctx.vigilo.runbook(who, k).await.map_err(|e| {
                let msg = format!("{name}: {e}");
                match e.kind() {
                    vigilo_core::error::ErrorKind::NotFound => CliError::NotFound(format!(
                        "{msg} (remove the `key` line from the file to create a new runbook)"
                    )),
                    vigilo_core::error::ErrorKind::Denied => CliError::Denied(msg),
                    _ => CliError::Service(e),
                }
            })?),
            None if by_title => match titles.get(p.file.input.title.trim()).map(Vec::as_slice) {
                Some([one]) => Some((*one).clone()),
                Some(many) if many.len() > 1 => {
                    let keys: Vec<String> = many.iter().map(|r| r.key.to_string()).collect();
                    return Err(CliError::Refused(format!(
                        "{name}: several runbooks are titled {:?} ({}); add `key = \"RB-…\"` to the file's front matter to say which; nothing was changed",
                        p.file.input.title,
                        keys.join(", ")
                    )));
                }
                _ => None,
            },
            None => None,
        };
        let target = match target_rb {
            Some(rb) => {
                if let Some(other) = claimed.insert(rb.key, name.clone()) {
                    return Err(CliError::Refused(format!(
                        "{name} and {other} both update {}; nothing was changed",
                        rb.key
                    )));
                }
                if rb.archived_at.is_some() {
                    return Err(CliError::Refused(format!(
                        "{name}: {} is archived and cannot be edited; nothing was changed",
                        rb.key
                    )));
                }
                if let Some(v) = expect_version
                    && v != rb.version
                {
                    return Err(CliError::Conflict(format!(
                        "{} is at version {}, but --expect-version is {v}; nothing was changed (`runbook history {}` shows who saved what)",
                        rb.key, rb.version, rb.key
                    )));
                }
                let changed = changes(&rb, &p.file);
                if changed {
                    allowed(&actor, Action::EditRunbook, &subject(&rb), &name)?;
                }
                let new_owner = match &p.file.owner {
                    Some(h) => {
                        let user =
                            file_owner(ctx, who, &format!("{name}:{}", p.owner_line), h).await?;
                        if user.id == rb.owner {
                            None
                        } else {
                            allowed(&actor, Action::EditRunbook, &subject(&rb), &name)?;
                            Some(user.handle.to_string())
                        }
                    }
                    None => None,
                };
                Target::Update {
                    runbook: Box::new(rb),
                    changed,
                    new_owner,
                }
            }
            None => {
                allowed(&actor, Action::CreateRunbook, &Subject::NONE, &name)?;
                if by_title && !new_titles.insert(p.file.input.title.trim().to_owned()) {
                    return Err(CliError::Refused(format!(
                        "{name}: another file also creates a runbook titled {:?}; titles tell runbooks apart in a sync, so make them differ; nothing was changed",
                        p.file.input.title
                    )));
                }
                let owner = match &p.file.owner {
                    Some(h) => Some(
                        file_owner(ctx, who, &format!("{name}:{}", p.owner_line), h)
                            .await?
                            .id,
                    ),
                    None => None,
                };
                Target::Create { owner }
            }
        };
        let desired = if publish {
            Some(true)
        } else {
            p.file.published
        };
        if let (Target::Update { runbook, .. }, Some(want)) = (&target, desired)
            && runbook.is_published != want
        {
            allowed(&actor, Action::PublishRunbook, &subject(runbook), &name)?;
        }
        items.push(Item {
            name,
            source: p.source,
            file: p.file,
            target,
            publish: desired,
        });
    }
    Ok(items)
}

/// The outcome of one file.
struct Saved {
    name: String,
    key: Option<Key>,
    id: String,
    title: String,
    action: &'static str,
    version: u32,
    previous_version: Option<u32>,
    is_published: bool,
}

impl Saved {
    fn json(&self) -> Value {
        json!({
            "file": self.name,
            "key": self.key,
            "id": self.id,
            "title": self.title,
            "action": self.action,
            "changed": self.action != "unchanged",
            "version": self.version,
            "previous_version": self.previous_version,
            "is_published": self.is_published,
        })
    }

    fn line(&self, p: &Paint) -> String {
        let what = match self.action {
            "created" => p.green(&format!("created v{}", self.version)),
            "updated" => p.yellow(&format!(
                "updated v{} → v{}",
                self.previous_version.unwrap_or(0),
                self.version
            )),
            "would create" => p.green("would create"),
            "would update" => p.yellow(&format!(
                "would update v{} → v{}",
                self.version,
                self.version + 1
            )),
            other => format!("{other} (v{})", self.version),
        };
        let published = if self.is_published {
            "published"
        } else {
            "draft"
        };
        format!(
            "{}  {}  {}  {}  {}",
            self.name,
            p.bold(
                &self
                    .key
                    .map_or_else(|| "(new)".to_owned(), |k| k.to_string())
            ),
            what,
            published,
            cut(&self.title, 60)
        )
    }
}

/// Saves every planned file as one: all of them, or (on any refusal, conflict or storage
/// failure) none.
async fn apply(
    ctx: &Ctx,
    who: &Who,
    items: Vec<Item>,
    expect_version: Option<u32>,
) -> Result<Vec<Saved>, CliError> {
    let mut names = Vec::with_capacity(items.len());
    let mut saves = Vec::with_capacity(items.len());
    for item in items {
        let source = VersionSource::FileSync {
            file: item.source.clone(),
        };
        names.push(item.name);
        saves.push(match item.target {
            Target::Create { owner } => RunbookSave::Create {
                input: item.file.input,
                options: CreateRunbook {
                    owner,
                    publish: item.publish.unwrap_or(false),
                    source,
                },
            },
            Target::Update {
                runbook, new_owner, ..
            } => RunbookSave::Update {
                key: runbook.key,
                input: item.file.input,
                expected_version: expect_version,
                source,
                publish: item.publish,
                owner: new_owner,
            },
        });
    }
    let done = ctx.vigilo.save_runbooks(who, saves).await?;
    Ok(names
        .into_iter()
        .zip(done)
        .map(|(name, d)| {
            let rb = d.runbook;
            Saved {
                name,
                key: Some(rb.key),
                id: rb.id.to_string(),
                title: rb.body.title.to_string(),
                action: match (d.previous_version, d.changed, d.owner_changed) {
                    (None, _, _) => "created",
                    (Some(_), true, _) => "updated",
                    (Some(_), false, true) => "owner changed",
                    (Some(_), false, false) => "unchanged",
                },
                version: rb.version,
                previous_version: d.previous_version,
                is_published: rb.is_published,
            }
        })
        .collect())
}

async fn import(
    ctx: &Ctx,
    who: &Who,
    files: Vec<PathBuf>,
    into: Option<Ref>,
    expect_version: Option<u32>,
    publish: bool,
) -> Result<(), CliError> {
    if into.is_some() && files.len() > 1 {
        return Err(CliError::Usage(
            "--into takes exactly one file; import the others separately".into(),
        ));
    }
    let into = ctx.key_opt(who, into, KeyKind::Runbook).await?;
    let paths: Vec<(PathBuf, String, String)> = files
        .into_iter()
        .map(|p| {
            let name = display_name(&p, None);
            let source = p
                .file_name()
                .map_or_else(|| name.clone(), |f| f.to_string_lossy().into_owned());
            (p, name, source)
        })
        .collect();
    let parsed = read_all(&paths)?;
    let items = plan(ctx, who, parsed, into, expect_version, publish, false).await?;
    let saved = apply(ctx, who, items, expect_version).await?;
    let v = match saved.as_slice() {
        [one] => one.json(),
        many => Value::Array(many.iter().map(Saved::json).collect()),
    };
    ctx.out.emit(&v, |p| {
        saved
            .iter()
            .map(|s| s.line(p))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// Every `*.md` file under `dir`, sorted; hidden entries and README.md are skipped.
fn markdown_files(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    /// A folder or entry that cannot be read: the path and the system's reason.
    type Unreadable = (PathBuf, std::io::Error);
    fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<(), Unreadable> {
        if depth > 32 {
            return Ok(());
        }
        let entries = std::fs::read_dir(dir).map_err(|e| (dir.to_path_buf(), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| (dir.to_path_buf(), e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let ft = entry.file_type().map_err(|e| (path.clone(), e))?;
            if ft.is_dir() {
                walk(&path, out, depth + 1)?;
            } else if (ft.is_file() || ft.is_symlink())
                && name.to_ascii_lowercase().ends_with(".md")
                && !name.eq_ignore_ascii_case("readme.md")
            {
                out.push(path);
            }
        }
        Ok(())
    }
    if !dir.is_dir() {
        return Err(CliError::NotFound(format!(
            "{} is not a folder",
            dir.display()
        )));
    }
    let mut out = Vec::new();
    walk(dir, &mut out, 0).map_err(|(path, e)| {
        let name = if path == dir {
            dir.display().to_string()
        } else {
            display_name(&path, Some(dir))
        };
        CliError::Refused(format!(
            "{name}: cannot read the folder ({e})\nnothing was changed"
        ))
    })?;
    out.sort();
    Ok(out)
}

async fn sync(ctx: &Ctx, who: &Who, dir: &Path, dry_run: bool) -> Result<(), CliError> {
    let files = markdown_files(dir)?;
    let paths: Vec<(PathBuf, String, String)> = files
        .into_iter()
        .map(|p| {
            let name = display_name(&p, Some(dir));
            (p, name.clone(), name)
        })
        .collect();
    let parsed = read_all(&paths)?;
    let items = plan(ctx, who, parsed, None, None, false, true).await?;
    let saved = if dry_run {
        items
            .into_iter()
            .map(|i| {
                let (key, id, version, action, published) = match &i.target {
                    Target::Create { .. } => (
                        None,
                        String::new(),
                        0,
                        "would create",
                        i.publish.unwrap_or(false),
                    ),
                    Target::Update {
                        runbook,
                        changed,
                        new_owner,
                    } => (
                        Some(runbook.key),
                        runbook.id.to_string(),
                        runbook.version,
                        if *changed {
                            "would update"
                        } else if new_owner.is_some() {
                            "would change owner"
                        } else {
                            "unchanged"
                        },
                        i.publish.unwrap_or(runbook.is_published),
                    ),
                };
                Saved {
                    title: i.file.input.title.clone(),
                    name: i.name,
                    key,
                    id,
                    action,
                    version,
                    previous_version: None,
                    is_published: published,
                }
            })
            .collect()
    } else {
        apply(ctx, who, items, None).await?
    };
    let count = |a: &str| saved.iter().filter(|s| s.action == a).count();
    let (created, updated, unchanged) = (count("created"), count("updated"), count("unchanged"));
    let v = json!({
        "dir": dir.display().to_string(),
        "dry_run": dry_run,
        "created": created,
        "updated": updated,
        "unchanged": unchanged,
        "runbooks": saved.iter().map(Saved::json).collect::<Vec<_>>(),
    });
    ctx.out.emit(&v, |p| {
        let mut s: Vec<String> = saved.iter().map(|x| x.line(p)).collect();
        if saved.is_empty() {
            s.push(format!("No runbook files (*.md) in {}.", dir.display()));
        }
        if dry_run {
            s.push("Dry run: nothing was saved.".into());
        } else {
            s.push(format!(
                "{created} created, {updated} updated, {unchanged} unchanged."
            ));
            if saved.iter().any(|x| x.action == "created") {
                s.push(
                    "Tip: add `key = \"RB-…\"` to a file's front matter so it stays linked when its title changes (`runbook export` writes it)."
                        .into(),
                );
            }
        }
        s.join("\n")
    })
}

// ---------------------------------------------------------------------------------------------
// Files out, and reading
// ---------------------------------------------------------------------------------------------

async fn export(
    ctx: &Ctx,
    who: &Who,
    r: Ref,
    version: Option<u32>,
    output: Option<PathBuf>,
) -> Result<(), CliError> {
    let key = ctx.key(who, r, KeyKind::Runbook).await?;
    let rb = ctx.vigilo.runbook(who, key).await?;
    let (v, body) = match version {
        Some(n) => (n, ctx.vigilo.runbook_version(who, key, n).await?.body),
        None => (rb.version, rb.body.clone()),
    };
    let owner = ctx.handle(rb.owner).await;
    let text = file::write_keyed(Some(key), &body, Some(&owner), Some(rb.is_published));
    match output {
        Some(path) => {
            std::fs::write(&path, &text)
                .map_err(|e| CliError::Internal(format!("cannot write {}: {e}", path.display())))?;
            let doc = json!({ "key": key, "id": rb.id, "version": v, "file": path.display().to_string() });
            ctx.out
                .emit(&doc, |_| format!("Wrote {key} v{v} to {}.", path.display()))
        }
        None if ctx.out.json => ctx.out.json(&json!({
            "key": key,
            "id": rb.id,
            "version": v,
            "markdown": text,
        })),
        None => ctx.out.text(&text),
    }
}

fn status_word(rb: &Runbook) -> &'static str {
    if rb.archived_at.is_some() {
        "archived"
    } else if rb.is_published {
        "published"
    } else {
        "draft"
    }
}

async fn list(
    ctx: &Ctx,
    who: &Who,
    category: Option<String>,
    drafts: bool,
    archived: bool,
) -> Result<(), CliError> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = ctx
            .vigilo
            .list_runbooks(
                who,
                ListRunbooks {
                    category: category.clone(),
                    drafts,
                    archived,
                    after,
                    limit: 500,
                },
            )
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.key);
        let done = page.len() < 500;
        all.extend(page);
        if done {
            break;
        }
    }
    let mut docs = Vec::with_capacity(all.len());
    let mut rows = Vec::with_capacity(all.len());
    for rb in &all {
        docs.push(views::runbook_summary(ctx, rb).await);
        rows.push(vec![
            rb.key.to_string(),
            format!("v{}", rb.version),
            status_word(rb).to_owned(),
            rb.body.category.to_string(),
            rb.body.steps.len().to_string(),
            format!("{} min", rb.body.est_total_minutes()),
            format!("@{}", ctx.handle(rb.owner).await),
            rb.body.title.to_string(),
        ]);
    }
    ctx.out.emit(&Value::Array(docs), |p| {
        if rows.is_empty() {
            return if drafts || archived {
                "No runbooks.".into()
            } else {
                "No published runbooks (drafts are listed with --drafts).".into()
            };
        }
        let mut t = Table::new(&[
            "KEY", "VERSION", "STATUS", "CATEGORY", "STEPS", "EST", "OWNER", "TITLE",
        ]);
        for r in rows {
            t.row(r);
        }
        t.render(p)
    })
}

/// Badges of a step for people.
pub fn badges(p: &Paint, destructive: bool, approval: bool) -> String {
    let badge = |text: &str, f: fn(&Paint, &str) -> String| {
        if p.enabled() {
            f(p, &format!(" {text} "))
        } else {
            format!("[{text}]")
        }
    };
    let mut b = Vec::new();
    if destructive {
        b.push(badge("DESTRUCTIVE", Paint::danger));
    }
    if approval {
        b.push(badge("APPROVAL REQUIRED", Paint::warn));
    }
    b.join(" ")
}

fn render_body(
    p: &Paint,
    key: Key,
    version: u32,
    rb: &Runbook,
    owner: &str,
    body: &RunbookBody,
) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "{}  {}\n",
        p.bold(&key.to_string()),
        p.bold(body.title.as_str())
    ));
    let mut meta = vec![format!("version {version}")];
    if version != rb.version {
        meta.push(format!("current is v{}", rb.version));
    }
    if !body.category.is_empty() {
        meta.push(body.category.to_string());
    }
    meta.push(format!("owner @{owner}"));
    meta.push(status_word(rb).to_owned());
    meta.push(format!(
        "{} steps, est {} min",
        body.steps.len(),
        body.est_total_minutes()
    ));
    s.push_str(&p.dim(&meta.join(" · ")));
    s.push('\n');
    if !body.description.is_blank() {
        s.push('\n');
        s.push_str(&markdown(body.description.as_str()));
        s.push('\n');
    }
    for (i, st) in body.steps.iter().enumerate() {
        s.push('\n');
        let mut head = format!("{}. {}", i + 1, st.title);
        let b = badges(p, st.is_destructive, st.requires_approval);
        if !b.is_empty() {
            head.push_str("  ");
            head.push_str(&b);
        }
        s.push_str(&p.bold(&head));
        s.push('\n');
        let mut facts = Vec::new();
        if !st.owner_role.is_empty() {
            facts.push(format!("role {}", st.owner_role));
        }
        facts.push(format!("est {} min", st.est_minutes.get()));
        s.push_str(&indent(&p.dim(&facts.join(" · ")), 3));
        s.push('\n');
        if !st.description.is_blank() {
            s.push_str(&indent(&markdown(st.description.as_str()), 3));
            s.push('\n');
        }
        for (label, text) in [
            ("Expected", &st.expected_outcome),
            ("Verification", &st.verification),
            ("Rollback", &st.rollback_note),
        ] {
            if !text.is_blank() {
                s.push_str(&indent(
                    &format!("{}: {}", p.cyan(label), markdown(text.as_str())),
                    3,
                ));
                s.push('\n');
            }
        }
    }
    s
}

async fn show(ctx: &Ctx, who: &Who, r: Ref, version: Option<u32>) -> Result<(), CliError> {
    let key = ctx.key(who, r, KeyKind::Runbook).await?;
    let rb = ctx.vigilo.runbook(who, key).await?;
    let (v, body, saved) = match version {
        Some(n) => {
            let ver = ctx.vigilo.runbook_version(who, key, n).await?;
            (n, ver.body, Some((ver.author, ver.saved_at, ver.source)))
        }
        None => (rb.version, rb.body.clone(), None),
    };
    let owner = ctx.handle(rb.owner).await;
    let mut doc = views::runbook(ctx, &rb, v, &body).await;
    if let (Value::Object(m), Some((author, at, source))) = (&mut doc, &saved) {
        m.insert("saved_by".into(), json!(ctx.handle(*author).await));
        m.insert("saved_at".into(), json!(at));
        m.insert("source".into(), json!(source.to_string()));
    }
    ctx.out
        .emit(&doc, |p| render_body(p, key, v, &rb, &owner, &body))
}

async fn publish_cmd(ctx: &Ctx, who: &Who, r: Ref, publish: Option<bool>) -> Result<(), CliError> {
    let key = ctx.key(who, r, KeyKind::Runbook).await?;
    let rb = match publish {
        Some(p) => ctx.vigilo.set_published(who, key, p).await?,
        None => ctx.vigilo.archive_runbook(who, key).await?,
    };
    let doc = views::runbook_summary(ctx, &rb).await;
    ctx.out.emit(&doc, |p| {
        let what = match publish {
            Some(true) => p.green("published"),
            Some(false) => "unpublished (draft)".to_owned(),
            None => p.yellow("archived"),
        };
        format!("{} v{} is {what}: {}", rb.key, rb.version, rb.body.title)
    })
}

async fn history(ctx: &Ctx, who: &Who, r: Ref) -> Result<(), CliError> {
    let key = ctx.key(who, r, KeyKind::Runbook).await?;
    let versions = ctx.vigilo.runbook_history(who, key).await?;
    let docs: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({
                "version": v.version,
                "author": v.author,
                "saved_at": v.saved_at,
                "source": v.source.to_string(),
                "source_detail": v.source,
                "title": v.title,
                "step_count": v.steps,
            })
        })
        .collect();
    ctx.out.emit(&Value::Array(docs), |p| {
        let mut t = Table::new(&["VERSION", "AUTHOR", "SAVED", "SOURCE", "STEPS", "TITLE"]);
        for v in &versions {
            t.row(vec![
                format!("v{}", v.version),
                format!("@{}", v.author),
                time(v.saved_at),
                v.source.to_string(),
                v.steps.to_string(),
                v.title.clone(),
            ]);
        }
        format!("{key}\n{}", t.render(p))
    })
}

async fn diff(
    ctx: &Ctx,
    who: &Who,
    r: Ref,
    from: Option<u32>,
    to: Option<u32>,
    side_by_side: bool,
    width: Option<usize>,
) -> Result<(), CliError> {
    let key = ctx.key(who, r, KeyKind::Runbook).await?;
    let (from, to) = match (from, to) {
        (Some(f), Some(t)) => (f, t),
        (f, t) => {
            let rb = ctx.vigilo.runbook(who, key).await?;
            let t = t.unwrap_or(rb.version);
            (f.unwrap_or(t.saturating_sub(1).max(1)), t)
        }
    };
    let d = ctx.vigilo.diff_runbook(who, key, from, to).await?;
    if ctx.out.json {
        let mut v = serde_json::to_value(&d)
            .map_err(|e| CliError::Internal(format!("cannot print the diff: {e}")))?;
        if let Value::Object(m) = &mut v {
            m.insert("key".into(), json!(key));
        }
        return ctx.out.json(&v);
    }
    let p = ctx.out.paint();
    let text = if side_by_side {
        let w = width.unwrap_or_else(|| terminal_width(120)).max(20);
        let col = w.saturating_sub(3) / 2;
        render::side_by_side(&d, w)
            .lines()
            .map(|l| match l.chars().nth(col + 1) {
                Some('<') => p.red(l),
                Some('>') => p.green(l),
                Some('|') => p.yellow(l),
                _ => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        render::unified(&d)
            .lines()
            .map(|l| {
                if l.starts_with("---") || l.starts_with("+++") {
                    p.bold(l)
                } else if l.starts_with('-') {
                    p.red(l)
                } else if l.starts_with('+') {
                    p.green(l)
                } else if l.starts_with('@') {
                    p.cyan(l)
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    ctx.out.text(&format!("{key}\n{text}"))
}

async fn search(ctx: &Ctx, who: &Who, words: &str, limit: usize) -> Result<(), CliError> {
    let found = ctx.vigilo.search_runbooks(who, words, limit).await?;
    let mut docs = Vec::new();
    let mut rows = Vec::new();
    for rb in &found {
        docs.push(views::runbook_summary(ctx, rb).await);
        rows.push(vec![
            rb.key.to_string(),
            format!("v{}", rb.version),
            status_word(rb).to_owned(),
            rb.body.category.to_string(),
            rb.body.title.to_string(),
        ]);
    }
    ctx.out.emit(&Value::Array(docs), |p| {
        if rows.is_empty() {
            return format!("No runbook matches {words:?}.");
        }
        let mut t = Table::new(&["KEY", "VERSION", "STATUS", "CATEGORY", "TITLE"]);
        for r in rows {
            t.row(r);
        }
        t.render(p)
    })
}
