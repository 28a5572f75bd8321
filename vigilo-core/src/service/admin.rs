//! Workspaces, users and memberships.

use std::collections::BTreeSet;

use serde_json::json;

use super::{Vigilo, Who};
use crate::audit::AuditLinks;
use crate::authz::{Action, Subject};
use crate::error::{ConflictKind, Error, Result, Rule, Thing};
use crate::fields::{Label, Name};
use crate::ids::{UserId, WorkspaceId};
use crate::roles::WorkspaceRole;
use crate::store::{StoreError, Write};
use crate::workspace::{ChatIdentity, Membership, Policy, User, Workspace};

/// A member to add: who they are and what they may do.
#[derive(Clone, Debug)]
pub struct NewMember {
    /// Handle (`alice`); the user is created if no user has it yet. An existing person keeps
    /// their handle; nothing else of theirs is shared between workspaces.
    pub handle: String,
    /// Display name in this workspace; may be empty.
    pub display_name: String,
    /// Their rank.
    pub role: WorkspaceRole,
    /// Team roles such as `dba`.
    pub team_roles: Vec<String>,
    /// A chat account to map to them in this workspace (a Slack user of the workspace's linked
    /// team, whenever the link is made).
    pub chat_identity: Option<ChatIdentity>,
}

/// What removing a member left behind.
#[derive(Clone, Debug)]
pub struct Removed {
    /// The membership as it now stands (removed).
    pub membership: Membership,
    /// Their executions still running in the workspace: they stay readable, and another
    /// operator can take them over (hand-over).
    pub open_runs: Vec<crate::execution::Execution>,
}

fn parse_team_roles(names: &[String]) -> Result<BTreeSet<Name>> {
    names
        .iter()
        .map(|n| Name::parse_field("team_role", n.as_str()).map_err(Error::from))
        .collect()
}

/// Checks a chat identity's shape: a known platform and an id of letters and digits.
fn check_identity(id: &ChatIdentity) -> Result<()> {
    if id.platform != "slack" {
        return Err(crate::fields::ValidationError::new(
            "chat identity",
            "the platform must be `slack`",
        )
        .into());
    }
    let user = id.user.as_str();
    if user.is_empty() || user.len() > 64 || !user.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(crate::fields::ValidationError::new(
            "slack_id",
            "must be a Slack user id such as U01234567",
        )
        .into());
    }
    Ok(())
}

impl Vigilo {
    /// Creates a workspace owned by `owner_handle` (created if new). The bootstrap call: it has
    /// no acting user but the new owner.
    pub async fn create_workspace(
        &self,
        slug: &str,
        owner_handle: &str,
        owner_name: &str,
    ) -> Result<(Workspace, User)> {
        let slug = Name::parse_field("slug", slug)?;
        let handle = Name::parse_field("handle", owner_handle)?;
        let display_name = Label::parse_field("name", owner_name)?;
        match self.store.workspace_by_slug(slug.as_str()).await {
            Ok(_) => {
                return Err(Error::conflict(
                    slug.to_string(),
                    ConflictKind::Taken {
                        thing: Thing::Workspace,
                        holder: None,
                    },
                    format!("workspace `{slug}` already exists"),
                ));
            }
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let now = self.now();
        let ws = Workspace {
            id: WorkspaceId::new(),
            slug,
            policy: Policy::default(),
            slack_team: None,
            created_at: now,
            rev: 1,
        };
        let mut writes = vec![Write::Workspace {
            workspace: ws.clone(),
            expected_rev: None,
        }];
        let user = match self.store.user_by_handle(handle.as_str()).await {
            Ok(u) => u,
            Err(StoreError::NotFound(_)) => {
                let u = User {
                    id: UserId::new(),
                    handle,
                    rev: 1,
                };
                writes.push(Write::User {
                    user: u.clone(),
                    expected_rev: None,
                });
                u
            }
            Err(e) => return Err(e.into()),
        };
        writes.push(Write::Membership {
            membership: Membership {
                workspace: ws.id,
                user: user.id,
                role: WorkspaceRole::Owner,
                team_roles: BTreeSet::new(),
                display_name,
                chat_identities: Vec::new(),
                removed_at: None,
                rev: 1,
            },
            expected_rev: None,
        });
        let draft = crate::audit::AuditDraft {
            at: now,
            actor: Some(user.id),
            actor_handle: Some(user.handle.to_string()),
            action: "workspace.created".into(),
            target: ws.slug.to_string(),
            details: json!({ "owner": user.handle.as_str() }),
            links: AuditLinks::default(),
            origin: Some(self.origin().clone()),
        };
        self.commit_in(ws.id, None, writes, draft).await?;
        Ok((ws, user))
    }

    /// A workspace by slug.
    pub async fn workspace_by_slug(&self, slug: &str) -> Result<Workspace> {
        self.store
            .workspace_by_slug(slug)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => {
                    Error::not_found(Thing::Workspace, slug, format!("no workspace `{slug}`"))
                }
                other => other.into(),
            })
    }

    /// Every workspace.
    pub async fn workspaces(&self) -> Result<Vec<Workspace>> {
        Ok(self.store.list_workspaces().await?)
    }

    /// The workspace linked to a Slack team.
    pub async fn workspace_for_slack_team(&self, team: &str) -> Result<Workspace> {
        self.store.workspace_by_slack_team(team).await.map_err(|e| match e {
            StoreError::NotFound(_) => Error::not_found(
                Thing::SlackTeam,
                team,
                format!(
                    "this Slack team ({team}) is not linked to a Vigilo workspace; an admin can link it to one"
                ),
            ),
            other => other.into(),
        })
    }

    /// The member of `workspace` a chat identity is mapped to. Only that workspace's own
    /// mappings count: a mapping made in another workspace never lets anyone act here.
    pub async fn member_for_chat(
        &self,
        workspace: WorkspaceId,
        identity: &ChatIdentity,
    ) -> Result<(User, Membership)> {
        self.store
            .member_by_chat(workspace, identity)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => Error::not_found(
                    Thing::ChatIdentity,
                    identity.user.clone(),
                    format!(
                        "your {} account is not linked to a member of this Vigilo workspace; ask an admin to add you",
                        identity.platform
                    ),
                ),
                other => other.into(),
            })
    }

    /// A member of the workspace by handle. A user who exists but is not a member (or was
    /// removed) is reported as not found, like one who does not exist.
    pub async fn member(&self, workspace: WorkspaceId, handle: &str) -> Result<(User, Membership)> {
        let not_found = || {
            let handle = handle.trim_start_matches('@');
            Error::not_found(
                Thing::Member,
                format!("@{handle}"),
                format!("no user @{handle} in this workspace"),
            )
        };
        let name = Name::parse_field("handle", handle).map_err(|_| not_found())?;
        let user = match self.store.user_by_handle(name.as_str()).await {
            Ok(u) => u,
            Err(StoreError::NotFound(_)) => return Err(not_found()),
            Err(e) => return Err(e.into()),
        };
        match self.store.membership(workspace, user.id).await {
            Ok(m) if m.is_active() => Ok((user, m)),
            Ok(_) | Err(StoreError::NotFound(_)) => Err(not_found()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every current member of the workspace (removed members left out). Any member may list
    /// them.
    pub async fn members(&self, who: &Who) -> Result<Vec<(User, Membership)>> {
        self.actor(who).await?;
        Ok(self
            .store
            .list_members(who.workspace)
            .await?
            .into_iter()
            .filter(|(_, m)| m.is_active())
            .collect())
    }

    /// Refuses a chat identity another current member of the workspace holds.
    async fn check_identity_free(
        &self,
        workspace: WorkspaceId,
        identity: &ChatIdentity,
        for_user: UserId,
    ) -> Result<()> {
        match self.store.member_by_chat(workspace, identity).await {
            Ok((holder, _)) if holder.id != for_user => Err(Error::conflict(
                format!("{} user {}", identity.platform, identity.user),
                ConflictKind::Taken {
                    thing: Thing::ChatIdentity,
                    holder: Some(format!("@{}", holder.handle)),
                },
                format!(
                    "{} user {} is already mapped to @{} in this workspace; remove that mapping first",
                    identity.platform, identity.user, holder.handle
                ),
            )),
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Adds a member (admins and the owner; only the owner may add another owner). A person
    /// who already exists elsewhere keeps their handle; the display name, rank, team roles and
    /// chat identity given here are this workspace's alone. A removed member is added back.
    pub async fn add_member(&self, who: &Who, new: NewMember) -> Result<(User, Membership)> {
        let actor = self.actor(who).await?;
        self.check(&actor, Action::ManageMembers, &Subject::NONE)?;
        if new.role == WorkspaceRole::Owner {
            self.check(&actor, Action::ManageOwners, &Subject::NONE)?;
        }
        let handle = Name::parse_field("handle", new.handle.as_str())?;
        let display_name = Label::parse_field("name", new.display_name.as_str())?;
        let team_roles = parse_team_roles(&new.team_roles)?;
        if let Some(id) = &new.chat_identity {
            check_identity(id)?;
        }
        let now = self.now();
        let mut writes = Vec::new();
        let mut previous: Option<Membership> = None;
        let user = match self.store.user_by_handle(handle.as_str()).await {
            Ok(u) => {
                match self.store.membership(who.workspace, u.id).await {
                    Ok(m) if m.is_active() => {
                        return Err(Error::conflict(
                            format!("@{handle}"),
                            ConflictKind::Taken {
                                thing: Thing::Member,
                                holder: Some(format!("@{handle}")),
                            },
                            format!("@{handle} is already a member; change their role instead"),
                        ));
                    }
                    Ok(m) => previous = Some(m),
                    Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                u
            }
            Err(StoreError::NotFound(_)) => {
                let u = User {
                    id: UserId::new(),
                    handle,
                    rev: 1,
                };
                writes.push(Write::User {
                    user: u.clone(),
                    expected_rev: None,
                });
                u
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(id) = &new.chat_identity {
            self.check_identity_free(who.workspace, id, user.id).await?;
        }
        let membership = Membership {
            workspace: who.workspace,
            user: user.id,
            role: new.role,
            team_roles,
            display_name,
            chat_identities: new.chat_identity.into_iter().collect(),
            removed_at: None,
            rev: previous.as_ref().map_or(1, |m| m.rev + 1),
        };
        writes.push(Write::Membership {
            membership: membership.clone(),
            expected_rev: previous.as_ref().map(|m| m.rev),
        });
        let roles: Vec<&str> = membership.team_roles.iter().map(|n| n.as_str()).collect();
        let identities: Vec<String> = membership
            .chat_identities
            .iter()
            .map(|c| format!("{}:{}", c.platform, c.user))
            .collect();
        let draft = self.draft(
            Some(&actor),
            now,
            "member.added",
            format!("@{}", user.handle),
            serde_json::json!({
                "role": new.role.as_str(),
                "team_roles": roles,
                "name": membership.display_name.as_str(),
                "chat_identities": identities,
                "rejoined": previous.is_some(),
            }),
            AuditLinks::default(),
        );
        self.commit(&actor, writes, draft).await?;
        Ok((user, membership))
    }

    /// Refuses a change that would leave the workspace without an active owner. The store
    /// checks the same at commit (where a concurrent change cannot slip in); this check gives
    /// the common case its plain answer.
    async fn check_keeps_owner(&self, workspace: WorkspaceId, losing: UserId) -> Result<()> {
        let others = self
            .store
            .list_members(workspace)
            .await?
            .into_iter()
            .filter(|(u, m)| u.id != losing && m.is_active_owner())
            .count();
        if others == 0 {
            return Err(Error::refused(
                Rule::LastOwner,
                "this is the workspace's only owner; make someone else owner first",
            ));
        }
        Ok(())
    }

    /// Changes a member's rank and, when `team_roles` is given, their team roles.
    pub async fn set_member_role(
        &self,
        who: &Who,
        handle: &str,
        role: WorkspaceRole,
        team_roles: Option<Vec<String>>,
    ) -> Result<Membership> {
        let actor = self.actor(who).await?;
        self.check(&actor, Action::ManageMembers, &Subject::NONE)?;
        let (user, m) = self.member(who.workspace, handle).await?;
        if role == WorkspaceRole::Owner || m.role == WorkspaceRole::Owner {
            self.check(&actor, Action::ManageOwners, &Subject::NONE)?;
        }
        if m.role == WorkspaceRole::Owner && role != WorkspaceRole::Owner {
            self.check_keeps_owner(who.workspace, user.id).await?;
        }
        let mut next = m.clone();
        next.role = role;
        if let Some(t) = team_roles {
            next.team_roles = parse_team_roles(&t)?;
        }
        if next == m {
            return Ok(m);
        }
        let roles: Vec<&str> = next.team_roles.iter().map(|n| n.as_str()).collect();
        let draft = self.draft(
            Some(&actor),
            self.now(),
            "member.role_changed",
            format!("@{}", user.handle),
            serde_json::json!({ "from": m.role.as_str(), "to": role.as_str(), "team_roles": roles }),
            AuditLinks::default(),
        );
        self.commit(&actor, vec![Write::update(&mut next, m.rev)], draft)
            .await?;
        Ok(next)
    }

    /// Removes a member from the workspace (off-boarding): admins and the owner; removing an
    /// owner takes an owner, and the last owner cannot be removed. The person can no longer act
    /// here and their chat identities stop mapping; history and the audit trail keep their
    /// handle. Their running executions are returned: they stay readable.
    pub async fn remove_member(&self, who: &Who, handle: &str) -> Result<Removed> {
        let actor = self.actor(who).await?;
        self.check(&actor, Action::ManageMembers, &Subject::NONE)?;
        let (user, m) = self.member(who.workspace, handle).await?;
        if m.role == WorkspaceRole::Owner {
            self.check(&actor, Action::ManageOwners, &Subject::NONE)?;
            self.check_keeps_owner(who.workspace, user.id).await?;
        }
        let now = self.now();
        let mut next = m.clone();
        next.removed_at = Some(now);
        next.chat_identities.clear();
        let open_runs: Vec<_> = self
            .store
            .list_executions(
                who.workspace,
                &crate::store::ExecutionQuery {
                    open_only: true,
                    limit: 10_000,
                    ..Default::default()
                },
            )
            .await?
            .into_iter()
            .filter(|e| e.operator == user.id)
            .collect();
        let runs: Vec<String> = open_runs.iter().map(|e| e.key.to_string()).collect();
        let draft = self.draft(
            Some(&actor),
            now,
            "member.removed",
            format!("@{}", user.handle),
            serde_json::json!({ "role": m.role.as_str(), "open_runs": runs }),
            AuditLinks::default(),
        );
        self.commit(&actor, vec![Write::update(&mut next, m.rev)], draft)
            .await?;
        Ok(Removed {
            membership: next,
            open_runs,
        })
    }

    /// Links a Slack team to the workspace (admins and the owner). Chat identities mapped in
    /// this workspace, before or after the link, act through that team.
    pub async fn link_slack_team(&self, who: &Who, team: &str) -> Result<Workspace> {
        let actor = self.actor(who).await?;
        self.check(&actor, Action::ManageMembers, &Subject::NONE)?;
        let team = team.trim();
        if team.is_empty() || team.len() > 64 || !team.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(crate::fields::ValidationError::new(
                "team",
                "must be a Slack team id such as T01234567",
            )
            .into());
        }
        let ws = self.store.workspace(who.workspace).await?;
        if ws.slack_team.as_deref() == Some(team) {
            return Ok(ws);
        }
        let mut next = ws.clone();
        next.slack_team = Some(team.to_owned());
        let draft = self.draft(
            Some(&actor),
            self.now(),
            "workspace.slack_linked",
            ws.slug.to_string(),
            serde_json::json!({ "team": team }),
            AuditLinks::default(),
        );
        self.commit(
            &actor,
            vec![Write::update(&mut next, ws.rev)],
            draft,
        )
        .await
        .map_err(|e| match e {
            Error::Conflict(c)
                if matches!(c.kind, ConflictKind::Taken { .. })
                    || c.to_string().contains("linked to Slack team") =>
            {
                Error::conflict(
                    team,
                    ConflictKind::Taken {
                        thing: Thing::SlackTeam,
                        holder: None,
                    },
                    format!(
                        "Slack team {team} is already linked to another workspace; a team maps to one workspace"
                    ),
                )
            }
            other => other,
        })?;
        Ok(next)
    }

    /// Changes the workspace policy (admins and the owner).
    pub async fn set_policy(&self, who: &Who, policy: Policy) -> Result<Workspace> {
        let actor = self.actor(who).await?;
        self.check(&actor, Action::ManageMembers, &Subject::NONE)?;
        let ws = self.store.workspace(who.workspace).await?;
        if ws.policy == policy {
            return Ok(ws);
        }
        let mut next = ws.clone();
        next.policy = policy.clone();
        let draft = self.draft(
            Some(&actor),
            self.now(),
            "workspace.policy_changed",
            ws.slug.to_string(),
            serde_json::json!({ "approver_must_differ": policy.approver_must_differ }),
            AuditLinks::default(),
        );
        self.commit(&actor, vec![Write::update(&mut next, ws.rev)], draft)
            .await?;
        Ok(next)
    }
}
