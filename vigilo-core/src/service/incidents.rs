//! Incidents: declare, resolve, list.

use serde_json::json;

use super::{Vigilo, Who};
use crate::audit::AuditLinks;
use crate::authz::{Action, Subject};
use crate::error::{Error, Result, Rule, Thing};
use crate::fields::Title;
use crate::ids::{IncidentId, Key, KeyKind};
use crate::incident::{Incident, IncidentStatus};
use crate::store::{StoreError, Write};

impl Vigilo {
    pub(crate) async fn load_incident(&self, who: &Who, key: Key) -> Result<Incident> {
        if key.kind != KeyKind::Incident {
            return Err(Error::wrong_key(key, "an incident"));
        }
        self.store
            .incident_by_key(who.workspace, key)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => Error::not_found(
                    Thing::Incident,
                    key.to_string(),
                    format!("no incident {key} in this workspace"),
                ),
                other => other.into(),
            })
    }

    /// Declares an incident (any member).
    pub async fn create_incident(&self, who: &Who, title: &str) -> Result<Incident> {
        let actor = self.actor(who).await?;
        self.check(&actor, Action::CreateIncident, &Subject::NONE)?;
        let title = Title::parse(title)?;
        let key = self
            .store
            .allocate_key(who.workspace, KeyKind::Incident)
            .await?;
        let now = self.now();
        let inc = Incident {
            id: IncidentId::new(),
            workspace: who.workspace,
            key,
            title,
            status: IncidentStatus::Open,
            created_by: actor.id(),
            created_at: now,
            resolved_at: None,
            rev: 1,
        };
        let draft = self.draft(
            Some(&actor),
            now,
            "incident.created",
            key.to_string(),
            json!({ "title": inc.title.as_str() }),
            AuditLinks {
                incident: Some(key),
                ..Default::default()
            },
        );
        self.commit(
            &actor,
            vec![Write::Incident {
                incident: inc.clone(),
                expected_rev: None,
            }],
            draft,
        )
        .await?;
        Ok(inc)
    }

    /// Resolves an open incident (operators and above).
    pub async fn resolve_incident(&self, who: &Who, key: Key) -> Result<Incident> {
        let actor = self.actor(who).await?;
        self.check(&actor, Action::ResolveIncident, &Subject::NONE)?;
        let inc = self.load_incident(who, key).await?;
        if inc.status == IncidentStatus::Resolved {
            return Err(Error::refused(
                Rule::IncidentResolved,
                format!("{key} is already resolved"),
            ));
        }
        let now = self.now();
        let mut next = inc.clone();
        next.status = IncidentStatus::Resolved;
        next.resolved_at = Some(now);
        let draft = self.draft(
            Some(&actor),
            now,
            "incident.resolved",
            key.to_string(),
            json!({}),
            AuditLinks {
                incident: Some(key),
                ..Default::default()
            },
        );
        self.commit(&actor, vec![Write::update(&mut next, inc.rev)], draft)
            .await?;
        Ok(next)
    }

    /// An incident by key (any member).
    pub async fn incident(&self, who: &Who, key: Key) -> Result<Incident> {
        self.actor(who).await?;
        self.load_incident(who, key).await
    }

    /// Every incident (any member).
    pub async fn list_incidents(&self, who: &Who) -> Result<Vec<Incident>> {
        self.actor(who).await?;
        Ok(self.store.list_incidents(who.workspace).await?)
    }
}
