//! Tenancy of people through signed Slack requests over loopback: a Slack user mapped in one
//! workspace never acts in another; an identity mapped before the workspace was linked to its
//! team is recognised once it is; a removed member's clicks and commands are refused; entries
//! written from Slack name the surface and the team and user behind them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use support::*;
use vigilo_core::ids::{Key, KeyKind};
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::service::{NewMember, Who};
use vigilo_core::store::AuditQuery;
use vigilo_core::workspace::ChatIdentity;
use vigilo_store::SqliteOptions;

/// The ephemeral answer a slash command got, as text (immediate JSON or a later
/// `chat.postEphemeral`).
async fn private_answer(fake: &FakeSlack, from: usize, a: &Answer) -> String {
    if !a.body.trim().is_empty() {
        let v: Value = serde_json::from_str(&a.body).unwrap();
        return v.to_string();
    }
    let told = fake.wait_calls(from, "chat.postEphemeral", 1).await;
    told[0].body.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_user_acts_only_where_it_is_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let vigilo = open_sqlite(dir.path(), SqliteOptions::default()).await;
    // acme, linked to T0ACME: olivia owns it, bob operates (U0BOB).
    let acme = space(
        &vigilo,
        "acme",
        "T0ACME",
        &[("bob", WorkspaceRole::Operator, &[], "U0BOB")],
    )
    .await;
    let rb = runbook(&vigilo, &acme.owner, "Restart", &[("Drain", false)]).await;
    // evil (no Slack team) maps U0MAL to acme's bob, as the owner of evil may.
    let (evil, mallory) = vigilo
        .create_workspace("evil", "mallory", "Mallory")
        .await
        .unwrap();
    let mallory = Who::new(evil.id, mallory.id);
    vigilo
        .add_member(
            &mallory,
            NewMember {
                handle: "bob".into(),
                display_name: "pwned".into(),
                role: WorkspaceRole::Owner,
                team_roles: Vec::new(),
                chat_identity: Some(ChatIdentity::slack("U0MAL")),
            },
        )
        .await
        .unwrap();
    // beta maps U0BETA to its operator before it is linked to any team; linked afterwards.
    let (beta, beta_owner) = vigilo
        .create_workspace("beta", "betty", "Betty")
        .await
        .unwrap();
    let betty = Who::new(beta.id, beta_owner.id);
    vigilo
        .add_member(
            &betty,
            NewMember {
                handle: "bert".into(),
                display_name: "Bert".into(),
                role: WorkspaceRole::Operator,
                team_roles: Vec::new(),
                chat_identity: Some(ChatIdentity::slack("U0BETA")),
            },
        )
        .await
        .unwrap();
    vigilo.link_slack_team(&betty, "T0BETA").await.unwrap();
    let beta_rb = runbook(&vigilo, &betty, "Beta restart", &[("Drain", false)]).await;

    let fake = FakeSlack::start().await;
    let server = start_bot(vigilo.clone(), &fake).await;
    let client = SlackClient::new(server.local_addr(), SECRET);
    let acme_entries = audit_count(&vigilo, acme.id).await;

    // U0MAL in acme's team: not a member of acme, whatever evil says.
    let mal = SlackUser::new("T0ACME", "U0MAL", "C0OPS");
    let from = fake.count();
    let a = client
        .post("/slack/commands", &mal.command(&format!("run {rb}")))
        .await;
    assert_eq!(a.status, 200);
    let told = private_answer(&fake, from, &a).await;
    assert!(told.contains("not linked to a member"), "{told}");
    assert_eq!(audit_count(&vigilo, acme.id).await, acme_entries);

    // The genuine bob runs it.
    let bob = SlackUser::new("T0ACME", "U0BOB", "C0OPS");
    let from = fake.count();
    let a = client
        .post("/slack/commands", &bob.command(&format!("run {rb}")))
        .await;
    assert_eq!((a.status, a.body.as_str()), (200, ""));
    let posts = fake.wait_calls(from, "chat.postMessage", 2).await;
    let card = posts[1].clone();
    assert_eq!(audit_count(&vigilo, acme.id).await, acme_entries + 1);

    // Mapped before the link, recognised after it.
    let bert = SlackUser::new("T0BETA", "U0BETA", "C0BETA");
    let from = fake.count();
    let a = client
        .post("/slack/commands", &bert.command(&format!("run {beta_rb}")))
        .await;
    assert_eq!((a.status, a.body.as_str()), (200, ""), "{a:?}");
    fake.wait_calls(from, "chat.postMessage", 2).await;
    let runs = vigilo
        .list_executions(&betty, None, Default::default())
        .await
        .unwrap();
    assert_eq!(runs.len(), 1, "bert's run started in beta");

    // Entries written from Slack name the surface and the team and user behind them.
    let trail = vigilo
        .store()
        .audit(acme.id, &AuditQuery::default())
        .await
        .unwrap();
    let started = trail
        .iter()
        .rev()
        .find(|e| e.action == "execution.started")
        .unwrap();
    let origin = started.origin.clone().unwrap();
    assert_eq!(origin.surface.as_str(), "slack");
    assert_eq!(origin.principal, "T0ACME/U0BOB");

    // bob is removed from acme: his click on his own run is refused and changes nothing.
    vigilo.remove_member(&acme.owner, "bob").await.unwrap();
    let entries = audit_count(&vigilo, acme.id).await;
    let from = fake.count();
    let a = client
        .post("/slack/interactions", &bob.click(&card, "vigilo.done"))
        .await;
    assert_eq!(a.status, 200);
    let told = fake.wait_calls(from, "chat.postEphemeral", 1).await;
    assert!(
        told[0].body.to_string().contains("removed"),
        "{:?}",
        told[0]
    );
    assert_eq!(audit_count(&vigilo, acme.id).await, entries);
    let ex = vigilo
        .execution(&acme.owner, Key::new(KeyKind::Execution, 1))
        .await
        .unwrap();
    assert_eq!(
        ex.steps[0].status,
        vigilo_core::execution::StepStatus::Pending
    );
    server.shutdown().await.unwrap();
}
