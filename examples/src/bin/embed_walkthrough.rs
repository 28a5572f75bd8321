//! Embeds vigilo-core with the in-memory store and walks a gated runbook end to end:
//! workspace and members, a runbook with a destructive gated step, publish, execute, a denied
//! approval, an approval by the right team role, done, skip with a reason, the summary, and
//! the audit chain verified.
//!
//! Run: `cargo run -p vigilo-examples --bin embed_walkthrough`

use std::sync::Arc;

use anyhow::Result;
use vigilo_core::execution::machine::Command;
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::runbook::{RunbookInput, StepInput};
use vigilo_core::service::{AuditVerdict, CreateRunbook, NewMember, StartOptions, Vigilo, Who};
use vigilo_core::testkit::memory::MemoryStore;

#[tokio::main]
async fn main() -> Result<()> {
    let vigilo = Vigilo::new(Arc::new(MemoryStore::new()));

    let (ws, alice) = vigilo
        .create_workspace("acme", "alice", "Alice Martin")
        .await?;
    let alice = Who::new(ws.id, alice.id);
    let member = |handle: &str, role, teams: &[&str]| NewMember {
        handle: handle.into(),
        display_name: String::new(),
        role,
        team_roles: teams.iter().map(|t| t.to_string()).collect(),
        chat_identity: None,
    };
    let (bob, _) = vigilo
        .add_member(&alice, member("bob", WorkspaceRole::Operator, &[]))
        .await?;
    let (carol, _) = vigilo
        .add_member(&alice, member("carol", WorkspaceRole::Member, &["sre"]))
        .await?;
    let bob = Who::new(ws.id, bob.id);
    let carol = Who::new(ws.id, carol.id);

    let runbook = RunbookInput {
        title: "Rotate the TLS certificate on the edge proxies".into(),
        description: "Rotate the wildcard certificate before it expires.".into(),
        category: "security".into(),
        steps: vec![
            StepInput {
                title: "Announce the rotation".into(),
                description: "Post in #ops that the rotation starts.".into(),
                owner_role: "operator".into(),
                est_minutes: 2,
                ..Default::default()
            },
            StepInput {
                title: "Swap the certificate on the proxies".into(),
                description: "Run `deploy-cert --bundle new.pem --all`.".into(),
                owner_role: "sre".into(),
                est_minutes: 10,
                verification: "curl -sI https://edge.example.com | grep -i expire".into(),
                rollback_note: "Re-deploy the previous bundle from the vault.".into(),
                requires_approval: true,
                is_destructive: true,
                ..Default::default()
            },
            StepInput {
                title: "Confirm expiry dates".into(),
                est_minutes: 3,
                ..Default::default()
            },
        ],
    };
    let rb = vigilo
        .create_runbook(
            &bob,
            runbook,
            CreateRunbook {
                publish: true,
                ..Default::default()
            },
        )
        .await?;
    println!(
        "created {} v{} ({} steps)",
        rb.key,
        rb.version,
        rb.body.steps.len()
    );

    let ex = vigilo
        .start_execution(&bob, rb.key, StartOptions::default())
        .await?;
    println!("started {} as @bob", ex.key);
    vigilo
        .act(
            &bob,
            ex.key,
            Command::Done {
                step: 1,
                note: None,
            },
        )
        .await?;
    println!("step 1 done");

    // Bob started the execution, so he may not approve its gated step (four eyes).
    match vigilo.act(&bob, ex.key, Command::Approve { step: 2 }).await {
        Ok(_) => anyhow::bail!("the operator approved their own gated step"),
        Err(e) => println!("approve as @bob refused: {e}"),
    }
    vigilo
        .act(&carol, ex.key, Command::Approve { step: 2 })
        .await?;
    println!("step 2 approved by @carol (team role sre)");
    vigilo
        .act(
            &bob,
            ex.key,
            Command::Done {
                step: 2,
                note: Some("rolled out".into()),
            },
        )
        .await?;
    let out = vigilo
        .act(
            &bob,
            ex.key,
            Command::Skip {
                step: 3,
                reason: "monitoring checks expiry".into(),
            },
        )
        .await?;
    println!("{} is {}", ex.key, out.execution.status.as_str());

    let (_, summary) = vigilo.execution_summary(&bob, ex.key).await?;
    for s in &summary.steps {
        println!(
            "  {}. {:<40} {:<8} est {:>3} min, actual {:>5.1} min",
            s.order,
            s.title,
            s.status.as_str(),
            s.est_minutes,
            s.actual_minutes.unwrap_or(0.0)
        );
    }
    println!(
        "total: est {} min, actual {:.1} min, variance {:+.1} min",
        summary.est_minutes, summary.actual_minutes, summary.variance_minutes
    );

    match vigilo.verify_audit(ws.id).await? {
        AuditVerdict::Intact { entries, .. } => println!("audit chain intact: {entries} entries"),
        AuditVerdict::Tampered(t) => anyhow::bail!("audit chain broken: {t}"),
    }
    Ok(())
}
