//! `init`, `workspace`, `user`, `incident`, `console` and `completions`.

use std::str::FromStr;

use clap::{Args, CommandFactory, Subcommand};
use serde_json::{Value, json};
use vigilo_core::ids::KeyKind;
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::service::NewMember;
use vigilo_core::workspace::ChatIdentity;

use super::output::{Table, time, time_opt};
use super::{Cli, CliError, Ctx, Ref, inc_ref, views};
use crate::console::{ConsoleOptions, DEFAULT_CHANNEL};

/// `vigilo init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The owner's handle (created if new).
    #[arg(long, value_name = "handle")]
    pub owner: String,
    /// The owner's display name.
    #[arg(long)]
    pub name: Option<String>,
}

/// `vigilo workspace …`.
#[derive(Debug, Subcommand)]
pub enum WorkspaceCmd {
    /// Create a workspace owned by a user (created if new).
    #[command(after_help = "Example:\n  vigilo workspace create payments --owner alice")]
    Create {
        /// The workspace's short name.
        slug: String,
        /// The owner's handle.
        #[arg(long, value_name = "handle")]
        owner: String,
        /// The owner's display name, if the user is new.
        #[arg(long)]
        name: Option<String>,
    },
    /// List the workspaces in the database.
    #[command(after_help = "Example:\n  vigilo workspace list --json")]
    List,
    /// Link a Slack team to a workspace (admins and the owner).
    #[command(
        after_help = "Example:\n  vigilo --as alice workspace link-slack acme --team T0123ABCD"
    )]
    LinkSlack {
        /// The workspace.
        slug: String,
        /// The Slack team id (`T…`).
        #[arg(long, value_name = "T…")]
        team: String,
    },
}

fn parse_role(s: &str) -> Result<WorkspaceRole, String> {
    WorkspaceRole::from_str(s).map_err(|e| e.problem)
}

/// `vigilo user …`.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a member (admins and the owner).
    #[command(
        after_help = "Example:\n  vigilo --as alice user add carol --role admin --name 'Carol D.' --team-role dba --slack-id U024BE7LH"
    )]
    Add {
        /// The user's handle (created if new).
        handle: String,
        /// member, operator, admin or owner.
        #[arg(long, value_parser = parse_role)]
        role: WorkspaceRole,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Their Slack user id, so the bot knows them.
        #[arg(long, value_name = "U…")]
        slack_id: Option<String>,
        /// Kept for scripts: a Slack identity always binds to the team the workspace is (or
        /// will be) linked to; a team given here must be that team.
        #[arg(long, value_name = "T…")]
        slack_team: Option<String>,
        /// A team role such as `dba` (repeat for several).
        #[arg(long = "team-role", value_name = "name")]
        team_roles: Vec<String>,
    },
    /// Change a member's role (and team roles, when given).
    #[command(after_help = "Example:\n  vigilo --as alice user set-role bob admin --team-role sre")]
    SetRole {
        /// The member.
        handle: String,
        /// member, operator, admin or owner.
        #[arg(value_parser = parse_role)]
        role: WorkspaceRole,
        /// Replace the team roles with these (repeat for several).
        #[arg(long = "team-role", value_name = "name")]
        team_roles: Vec<String>,
        /// Remove every team role.
        #[arg(long, conflicts_with = "team_roles")]
        clear_team_roles: bool,
    },
    /// List the workspace's members.
    #[command(after_help = "Example:\n  vigilo --as bob user list")]
    List,
    /// Remove a member (off-boarding): they can no longer act or be mapped in this workspace;
    /// history and the audit trail keep their name. Admins and the owner; the last owner
    /// cannot be removed.
    #[command(after_help = "Example:\n  vigilo --as alice user remove bob")]
    Remove {
        /// The member.
        handle: String,
    },
}

/// `vigilo incident …`.
#[derive(Debug, Subcommand)]
pub enum IncidentCmd {
    /// Declare an incident (any member).
    #[command(after_help = "Example:\n  vigilo --as bob incident create --title 'Edge 5xx spike'")]
    Create {
        /// Title.
        #[arg(long)]
        title: String,
    },
    /// List incidents.
    #[command(after_help = "Example:\n  vigilo --as bob incident list")]
    List,
    /// Resolve an incident (operators and above).
    #[command(after_help = "Example:\n  vigilo --as bob incident resolve INC-00001")]
    Resolve {
        /// The incident.
        #[arg(value_parser = inc_ref, value_name = "INC-…")]
        incident: Ref,
    },
}

/// `vigilo console`.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// The channel executions are started in.
    #[arg(long, value_name = "name")]
    pub channel: Option<String>,
}

/// `vigilo init --workspace <slug> --owner <handle>`.
pub async fn init(ctx: &Ctx, a: InitArgs) -> Result<(), CliError> {
    let Some(slug) = ctx.global.workspace.clone() else {
        return Err(CliError::Usage(
            "init needs the new workspace's name: `vigilo init --workspace <slug> --owner <handle>`"
                .into(),
        ));
    };
    create_workspace(ctx, &slug, &a.owner, a.name.as_deref().unwrap_or("")).await
}

async fn create_workspace(ctx: &Ctx, slug: &str, owner: &str, name: &str) -> Result<(), CliError> {
    let (ws, user) = ctx.vigilo.create_workspace(slug, owner, name).await?;
    let mut v = views::workspace(&ws);
    if let Value::Object(m) = &mut v {
        m.insert("key".into(), json!(ws.slug.as_str()));
        m.insert("owner".into(), json!(user.handle.as_str()));
        m.insert("db".into(), json!(ctx.db_label));
    }
    ctx.out.emit(&v, |p| {
        format!(
            "Created workspace {} owned by @{} in {}.\nNext: vigilo --as {} user add <handle> --role operator",
            p.bold(ws.slug.as_str()),
            user.handle,
            ctx.db_label,
            user.handle
        )
    })
}

/// `vigilo workspace …`.
pub async fn workspace(ctx: &Ctx, c: WorkspaceCmd) -> Result<(), CliError> {
    match c {
        WorkspaceCmd::Create { slug, owner, name } => {
            create_workspace(ctx, &slug, &owner, name.as_deref().unwrap_or("")).await
        }
        WorkspaceCmd::List => {
            let all = ctx.vigilo.workspaces().await?;
            let v = Value::Array(all.iter().map(views::workspace).collect());
            ctx.out.emit(&v, |p| {
                if all.is_empty() {
                    return "No workspace yet; create one with `vigilo init --workspace <slug> --owner <handle>`.".into();
                }
                let mut t = Table::new(&["SLUG", "SLACK TEAM", "CREATED"]);
                for w in &all {
                    t.row(vec![
                        w.slug.to_string(),
                        w.slack_team.clone().unwrap_or_else(|| "-".into()),
                        time(w.created_at),
                    ]);
                }
                t.render(p)
            })
        }
        WorkspaceCmd::LinkSlack { slug, team } => {
            let ws = ctx.vigilo.workspace_by_slug(&slug).await?;
            let Some(handle) = &ctx.global.as_user else {
                return Err(CliError::Usage(
                    "linking a Slack team acts on behalf of an admin: pass --as <handle>".into(),
                ));
            };
            let (user, _) = ctx.vigilo.member(ws.id, handle).await?;
            let who = vigilo_core::service::Who::new(ws.id, user.id);
            let ws = ctx.vigilo.link_slack_team(&who, &team).await?;
            ctx.out.emit(&views::workspace(&ws), |_| {
                format!("Linked Slack team {team} to workspace {}.", ws.slug)
            })
        }
    }
}

/// `vigilo user …`.
pub async fn user(ctx: &Ctx, c: UserCmd) -> Result<(), CliError> {
    let (ws, who, _, _) = ctx.who().await?;
    match c {
        UserCmd::Add {
            handle,
            role,
            name,
            slack_id,
            slack_team,
            team_roles,
        } => {
            if let (Some(_), Some(team)) = (&slack_id, slack_team.as_deref()) {
                match ws.slack_team.as_deref() {
                    Some(linked) if linked == team => {}
                    Some(linked) => {
                        return Err(CliError::Refused(format!(
                            "--slack-team {team} is not the Slack team of workspace {} ({linked}); a Slack identity binds to the workspace's linked team: leave --slack-team out",
                            ws.slug
                        )));
                    }
                    None => {
                        return Err(CliError::Refused(format!(
                            "workspace {} is not linked to a Slack team, so --slack-team {team} cannot be checked; leave it out (the identity binds to the team linked later with `vigilo workspace link-slack {} --team {team}`)",
                            ws.slug, ws.slug
                        )));
                    }
                }
            }
            let chat_identity = slack_id.map(ChatIdentity::slack);
            let (u, m) = ctx
                .vigilo
                .add_member(
                    &who,
                    NewMember {
                        handle,
                        display_name: name.unwrap_or_default(),
                        role,
                        team_roles,
                        chat_identity,
                    },
                )
                .await?;
            let mut v = views::member(&u, &m);
            if let Value::Object(map) = &mut v {
                map.insert("key".into(), json!(u.handle.as_str()));
            }
            ctx.out.emit(&v, |_| {
                format!("Added @{} as {} of {}.", u.handle, m.role, ws.slug)
            })
        }
        UserCmd::SetRole {
            handle,
            role,
            team_roles,
            clear_team_roles,
        } => {
            let teams = if clear_team_roles {
                Some(Vec::new())
            } else if team_roles.is_empty() {
                None
            } else {
                Some(team_roles)
            };
            let m = ctx
                .vigilo
                .set_member_role(&who, &handle, role, teams)
                .await?;
            let (u, _) = ctx.vigilo.member(ws.id, &handle).await?;
            ctx.out.emit(&views::member(&u, &m), |_| {
                let teams: Vec<&str> = m.team_roles.iter().map(|n| n.as_str()).collect();
                if teams.is_empty() {
                    format!("@{} is now {}.", u.handle, m.role)
                } else {
                    format!(
                        "@{} is now {} (team roles: {}).",
                        u.handle,
                        m.role,
                        teams.join(", ")
                    )
                }
            })
        }
        UserCmd::List => {
            let members = ctx.vigilo.members(&who).await?;
            let v = Value::Array(members.iter().map(|(u, m)| views::member(u, m)).collect());
            ctx.out.emit(&v, |p| {
                let mut t = Table::new(&["HANDLE", "NAME", "ROLE", "TEAM ROLES", "SLACK"]);
                for (u, m) in &members {
                    let teams: Vec<&str> = m.team_roles.iter().map(|n| n.as_str()).collect();
                    let slack: Vec<&str> = m
                        .chat_identities
                        .iter()
                        .filter(|c| c.platform == "slack")
                        .map(|c| c.user.as_str())
                        .collect();
                    t.row(vec![
                        format!("@{}", u.handle),
                        m.display_name.to_string(),
                        m.role.to_string(),
                        teams.join(", "),
                        slack.join(", "),
                    ]);
                }
                t.render(p)
            })
        }
        UserCmd::Remove { handle } => {
            let removed = ctx.vigilo.remove_member(&who, &handle).await?;
            let u = ctx.vigilo.user(removed.membership.user).await?;
            let runs: Vec<String> = removed
                .open_runs
                .iter()
                .map(|e| e.key.to_string())
                .collect();
            let mut v = views::member(&u, &removed.membership);
            if let Value::Object(map) = &mut v {
                map.insert("key".into(), json!(u.handle.as_str()));
                map.insert("open_runs".into(), json!(runs));
            }
            ctx.out.emit(&v, |_| {
                let mut out = format!(
                    "Removed @{} from {}: they can no longer act or be mapped here; history keeps their name.",
                    u.handle, ws.slug
                );
                if !runs.is_empty() {
                    out.push_str(&format!(
                        "\nTheir open runs stay readable and need a new operator: {}",
                        runs.join(", ")
                    ));
                }
                out
            })
        }
    }
}

/// `vigilo incident …`.
pub async fn incident(ctx: &Ctx, c: IncidentCmd) -> Result<(), CliError> {
    let (_, who, _, _) = ctx.who().await?;
    match c {
        IncidentCmd::Create { title } => {
            let i = ctx.vigilo.create_incident(&who, &title).await?;
            let v = views::incident(ctx, &i).await;
            ctx.out.emit(&v, |p| {
                format!("{} declared: {}", p.bold(&i.key.to_string()), i.title)
            })
        }
        IncidentCmd::List => {
            let all = ctx.vigilo.list_incidents(&who).await?;
            let mut rows = Vec::new();
            let mut docs = Vec::new();
            for i in &all {
                docs.push(views::incident(ctx, i).await);
                rows.push(vec![
                    i.key.to_string(),
                    i.status.as_str().to_owned(),
                    i.title.to_string(),
                    format!("@{}", ctx.handle(i.created_by).await),
                    time(i.created_at),
                    time_opt(i.resolved_at),
                ]);
            }
            ctx.out.emit(&Value::Array(docs), |p| {
                if rows.is_empty() {
                    return "No incidents.".into();
                }
                let mut t = Table::new(&["KEY", "STATUS", "TITLE", "BY", "CREATED", "RESOLVED"]);
                for r in rows {
                    t.row(r);
                }
                t.render(p)
            })
        }
        IncidentCmd::Resolve { incident } => {
            let key = ctx.key(&who, incident, KeyKind::Incident).await?;
            let i = ctx.vigilo.resolve_incident(&who, key).await?;
            let v = views::incident(ctx, &i).await;
            ctx.out.emit(&v, |_| format!("{} resolved.", i.key))
        }
    }
}

/// `vigilo console`: the chat conversation of [`crate::console`] on this database. Without
/// `--as`, the console picks its own default user.
pub async fn console(ctx: &Ctx, a: ConsoleArgs) -> Result<(), CliError> {
    let options = ConsoleOptions {
        channel: a.channel.unwrap_or_else(|| DEFAULT_CHANNEL.to_owned()),
        user: ctx.global.as_user.clone(),
        workspace: ctx.global.workspace.clone(),
        db_path: ctx.db_path.clone(),
        ..ConsoleOptions::default()
    };
    let vigilo = ctx.vigilo.acting_via(crate::principal::local_origin(
        vigilo_core::audit::Surface::Console,
    ));
    crate::console::run(vigilo, options)
        .await
        .map_err(|e| match e {
            crate::console::ConsoleError::Vigilo(v) => CliError::Service(v),
            crate::console::ConsoleError::Setup(s) => CliError::Usage(s),
            other => CliError::Internal(other.to_string()),
        })
}

/// `vigilo completions <shell>`.
pub fn completions(shell: clap_complete::Shell) -> Result<(), CliError> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "vigilo", &mut buf);
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    o.write_all(&buf)?;
    o.flush()?;
    Ok(())
}
