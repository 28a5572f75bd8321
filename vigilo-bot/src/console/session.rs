//! One console session: who is acting, in which channel, and what is on screen.

use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt};
use vigilo_core::error::ErrorKind;
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::service::{Vigilo, Who};
use vigilo_core::workspace::{Membership, User, Workspace};

use super::input::{Line, read_line};
use super::screen::Screen;
use super::seed::{self, Seeded};
use super::style::Style;
use super::{ConsoleError, ConsoleOptions, PLATFORM};
use crate::chat::command::ParseError;
use crate::chat::errors::{error_reply, parse_error_reply};
use crate::chat::reply::Reply;
use crate::chat::{ChatContext, ChatEngine};

pub(super) struct Session {
    engine: ChatEngine,
    workspace: Workspace,
    ctx: ChatContext,
    user: User,
    membership: Membership,
    screen: Screen,
    interactive: bool,
    seeded: Option<Seeded>,
    db_path: Option<String>,
}

/// `@bob (operator; team roles: sre)`.
fn describe(user: &User, m: &Membership) -> String {
    let mut s = format!("@{} ({}", user.handle, m.role);
    if !m.team_roles.is_empty() {
        let names: Vec<&str> = m.team_roles.iter().map(|n| n.as_str()).collect();
        s.push_str(&format!("; team roles: {}", names.join(", ")));
    }
    s.push(')');
    s
}

impl Session {
    pub(super) async fn start(
        vigilo: Vigilo,
        options: &ConsoleOptions,
    ) -> Result<Self, ConsoleError> {
        let seeded = if options.seed && seed::is_fresh(&vigilo).await? {
            match seed::seed_demo(&vigilo).await {
                Ok(s) => Some(s),
                // Another console seeded the same fresh database a moment ago.
                Err(e) if e.kind() == ErrorKind::Conflict => None,
                Err(e) => return Err(e.into()),
            }
        } else {
            None
        };
        let workspace = match &options.workspace {
            Some(slug) => vigilo.workspace_by_slug(slug).await?,
            None => {
                let mut all = vigilo.workspaces().await?;
                if all.len() > 1 {
                    let slugs: Vec<&str> = all.iter().map(|w| w.slug.as_str()).collect();
                    return Err(ConsoleError::Setup(format!(
                        "the database has several workspaces ({}); choose one with --workspace",
                        slugs.join(", ")
                    )));
                }
                all.pop().ok_or_else(|| {
                    ConsoleError::Setup(
                        "the database has no workspace; create one with `vigilo workspace create`, or let the console seed the demo"
                            .into(),
                    )
                })?
            }
        };
        let (user, membership) = match &options.user {
            Some(handle) => vigilo.member(workspace.id, handle).await?,
            None => {
                let members = vigilo
                    .store()
                    .list_members(workspace.id)
                    .await
                    .map_err(vigilo_core::error::Error::from)?;
                members
                    .into_iter()
                    .find(|(_, m)| m.role == WorkspaceRole::Owner)
                    .ok_or_else(|| {
                        ConsoleError::Setup(format!(
                            "workspace `{}` has no owner to act as; choose a user with --user",
                            workspace.slug
                        ))
                    })?
            }
        };
        let ctx = ChatContext::new(
            Who::new(workspace.id, user.id),
            PLATFORM,
            options.channel.clone(),
        );
        let interactive = options.interactive.unwrap_or(false);
        Ok(Self {
            engine: ChatEngine::new(vigilo),
            workspace,
            ctx,
            user,
            membership,
            screen: Screen::new(Style::new(options.color.unwrap_or(false))),
            interactive,
            seeded,
            db_path: options.db_path.as_ref().map(|p| p.display().to_string()),
        })
    }

    async fn write<W: AsyncWrite + Unpin>(
        &self,
        out: &mut W,
        text: &str,
    ) -> Result<(), ConsoleError> {
        out.write_all(text.as_bytes()).await?;
        out.flush().await?;
        Ok(())
    }

    async fn show<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut W,
        replies: &[Reply],
    ) -> Result<(), ConsoleError> {
        let mut text = String::new();
        for r in replies {
            text.push_str(&self.screen.render(r));
            text.push('\n');
        }
        self.write(out, &text).await
    }

    /// A console message (not from the engine): one line, then a blank line.
    async fn say<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut W,
        text: &str,
    ) -> Result<(), ConsoleError> {
        self.write(out, &format!("{text}\n\n")).await
    }

    pub(super) async fn welcome<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut W,
    ) -> Result<(), ConsoleError> {
        if !self.interactive {
            return Ok(());
        }
        let style = self.screen.style();
        let mut text = style.bold(&format!(
            "Vigilo console · workspace {} · channel #{}",
            self.workspace.slug, self.ctx.channel
        ));
        if let Some(p) = &self.db_path {
            text.push_str(&style.dim(&format!(" · database {p}")));
        }
        text.push('\n');
        if let Some(s) = &self.seeded {
            let books: Vec<String> = s
                .runbooks
                .iter()
                .map(|(k, t)| format!("  {k}  {t}"))
                .collect();
            text.push_str(&format!(
                "This is a new database, so it holds a demo: @alice (owner), @bob (operator, sre), @carol (member, dba), @dave (admin), and the runbooks\n{}\n",
                books.join("\n")
            ));
        }
        text.push_str(&format!(
            "You are {}. Type `help` for the commands; `/as carol` acts as another user, `/whoami` says who you are, `/quit` leaves.\nButtons show as numbered choices: type the number to press one.\n\n",
            describe(&self.user, &self.membership)
        ));
        self.write(out, &text).await
    }

    /// Prints the prompt when interactive; always true (the loop ends on input).
    pub(super) async fn prompt<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut W,
    ) -> Result<bool, ConsoleError> {
        if self.interactive {
            let p = self
                .screen
                .style()
                .bold(&format!("{}@{}> ", self.user.handle, self.workspace.slug));
            self.write(out, &p).await?;
        }
        Ok(true)
    }

    /// Handles one line; false to stop.
    pub(super) async fn line<R, W>(
        &mut self,
        line: Line,
        input: &mut R,
        out: &mut W,
    ) -> Result<bool, ConsoleError>
    where
        R: AsyncBufRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        if line.too_long() {
            let reply = parse_error_reply(&ParseError::TooLong { len: line.len });
            self.show(out, &[reply]).await?;
            return Ok(true);
        }
        let text = line.text.trim();
        if text.is_empty() {
            return Ok(true);
        }
        let (word, rest) = match text.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim()),
            None => (text, ""),
        };
        match word.to_ascii_lowercase().as_str() {
            "/quit" | "/exit" => return Ok(false),
            "/whoami" => {
                let msg = format!(
                    "You are {} in workspace {}, channel #{}.",
                    describe(&self.user, &self.membership),
                    self.workspace.slug,
                    self.ctx.channel
                );
                self.say(out, &msg).await?;
            }
            "/as" => self.switch_user(rest, out).await?,
            "/help" => {
                self.say(out, "Console: `/as <handle>` acts as another member, `/whoami` says who you are, `/quit` leaves; type a number to press that button.").await?;
                let replies = self.engine.handle_text(&self.ctx, "help").await;
                self.show(out, &replies).await?;
            }
            _ if text.bytes().all(|b| b.is_ascii_digit()) => self.press(text, input, out).await?,
            _ => {
                let replies = self.engine.handle_text(&self.ctx, text).await;
                self.show(out, &replies).await?;
            }
        }
        Ok(true)
    }

    async fn switch_user<W: AsyncWrite + Unpin>(
        &mut self,
        handle: &str,
        out: &mut W,
    ) -> Result<(), ConsoleError> {
        if handle.is_empty() {
            let members = self.engine.vigilo().members(&self.ctx.who).await;
            let msg = match members {
                Ok(list) => {
                    let all: Vec<String> = list.iter().map(|(u, m)| describe(u, m)).collect();
                    format!("Usage: /as <handle>. Members: {}.", all.join(", "))
                }
                Err(_) => "Usage: /as <handle>.".to_owned(),
            };
            return self.say(out, &msg).await;
        }
        match self.engine.vigilo().member(self.workspace.id, handle).await {
            Ok((user, membership)) => {
                self.ctx.who = Who::new(self.workspace.id, user.id);
                let msg = format!("You are now {}.", describe(&user, &membership));
                self.user = user;
                self.membership = membership;
                self.say(out, &msg).await
            }
            Err(e) => self.show(out, &[error_reply(&e)]).await,
        }
    }

    async fn press<R, W>(
        &mut self,
        number: &str,
        input: &mut R,
        out: &mut W,
    ) -> Result<(), ConsoleError>
    where
        R: AsyncBufRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let button = number
            .parse::<usize>()
            .ok()
            .and_then(|n| self.screen.button(n))
            .cloned();
        let Some(button) = button else {
            return self
                .say(out, &format!("There is no choice [{number}] on screen."))
                .await;
        };
        let text = match &button.prompt {
            None => None,
            Some(prompt) => {
                if self.interactive {
                    let q = self.screen.style().bold(&format!("{} ", prompt.label));
                    self.write(out, &q).await?;
                }
                match read_line(input).await? {
                    Some(line) if !line.too_long() => Some(line.text.trim().to_owned()),
                    Some(line) => {
                        let reply = parse_error_reply(&ParseError::TooLong { len: line.len });
                        return self.show(out, &[reply]).await;
                    }
                    None => {
                        return self
                            .say(out, "Cancelled: the input ended before the reason.")
                            .await;
                    }
                }
            }
        };
        let replies = self
            .engine
            .click(&self.ctx, &button.action_id, &button.value, text)
            .await;
        self.show(out, &replies).await
    }
}
