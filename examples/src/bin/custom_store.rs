//! Runs the engine on a custom store (`CountingStore`, a skeleton that wraps another store)
//! and prints what a workspace's first minutes cost in commits and reads.
//!
//! Run: `cargo run -p vigilo-examples --bin custom_store`; the conformance suite checks the
//! same store in `cargo test -p vigilo-examples`.

use std::sync::Arc;

use anyhow::Result;
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::service::{AuditVerdict, NewMember, Vigilo, Who};
use vigilo_core::testkit::memory::MemoryStore;
use vigilo_examples::counting_store::CountingStore;

#[tokio::main]
async fn main() -> Result<()> {
    let store = Arc::new(CountingStore::new(MemoryStore::new()));
    let vigilo = Vigilo::new(store.clone());
    let (ws, alice) = vigilo.create_workspace("acme", "alice", "Alice").await?;
    let alice = Who::new(ws.id, alice.id);
    vigilo
        .add_member(
            &alice,
            NewMember {
                handle: "bob".into(),
                display_name: "Bob".into(),
                role: WorkspaceRole::Operator,
                team_roles: Vec::new(),
                chat_identity: None,
            },
        )
        .await?;
    let members = vigilo.members(&alice).await?;
    let verdict = vigilo.verify_audit(ws.id).await?;
    println!(
        "{} members; audit chain {}; the store saw {} commits and {} reads",
        members.len(),
        match verdict {
            AuditVerdict::Intact { entries, .. } => format!("intact ({entries} entries)"),
            AuditVerdict::Tampered(t) => format!("TAMPERED: {t}"),
        },
        store.commits(),
        store.reads()
    );
    anyhow::ensure!(store.commits() == 2, "expected two commits");
    Ok(())
}
