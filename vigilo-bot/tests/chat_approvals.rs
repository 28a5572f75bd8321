//! Approval policies in the chat engine (every surface's cards: Slack and the console): a step
//! asking for two approvals shows "1 of 2 approvals (@carol)", keeps its Approve button until
//! both stand, and shows a lapse on the card; `approve` typed in the channel works the same.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use vigilo_bot::chat::markdown::to_plain;
use vigilo_bot::chat::reply::{ACTION_APPROVE, ACTION_DONE};
use vigilo_bot::chat::{Block, ChatContext, ChatEngine, Reply, Visibility};
use vigilo_core::clock::ManualClock;
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::runbook::{RunbookInput, StepInput};
use vigilo_core::service::{CreateRunbook, NewMember, Vigilo, Who};
use vigilo_core::testkit::memory::MemoryStore;

fn text(r: &Reply) -> String {
    let mut out = vec![r.text.clone()];
    for b in &r.blocks {
        match b {
            Block::Section(m) | Block::Context(m) => out.push(to_plain(m)),
            Block::Fields(fs) => out.extend(
                fs.iter()
                    .map(|f| format!("{}: {}", f.label, to_plain(&f.value))),
            ),
            Block::Header(h) => out.push(h.clone()),
            _ => {}
        }
    }
    out.join("\n")
}

fn has_approve(r: &Reply) -> bool {
    r.buttons().any(|b| b.action_id == ACTION_APPROVE)
}

#[tokio::test]
async fn two_approvals_and_a_lapse_on_the_card() {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2027, 3, 1, 9, 0, 0).unwrap(),
    ));
    let vigilo = Vigilo::with_clock(Arc::new(MemoryStore::new()), clock.clone());
    let (ws, alice) = vigilo
        .create_workspace("acme", "alice", "Alice")
        .await
        .unwrap();
    let alice = Who::new(ws.id, alice.id);
    let add = async |handle: &str| {
        let (u, _) = vigilo
            .add_member(
                &alice,
                NewMember {
                    handle: handle.into(),
                    display_name: String::new(),
                    role: WorkspaceRole::Operator,
                    team_roles: vec!["sre".into()],
                    chat_identity: None,
                },
            )
            .await
            .unwrap();
        Who::new(ws.id, u.id)
    };
    let (bob, carol, erin) = (add("bob").await, add("carol").await, add("erin").await);
    vigilo
        .create_runbook(
            &alice,
            RunbookInput {
                title: "Fail over".into(),
                steps: vec![StepInput {
                    title: "Promote".into(),
                    owner_role: "sre".into(),
                    requires_approval: true,
                    approvals_required: 2,
                    approval_expires_minutes: Some(15),
                    ..StepInput::default()
                }],
                ..RunbookInput::default()
            },
            CreateRunbook {
                publish: true,
                ..CreateRunbook::default()
            },
        )
        .await
        .unwrap();
    let engine = ChatEngine::new(vigilo.clone());
    let ctx = |who| ChatContext::new(who, "console", "ops");
    let started = engine.handle_text(&ctx(bob), "run RB-00001").await;
    let card = started.last().unwrap();
    let t = text(card);
    assert!(
        t.contains("Approval: 0 of 2 approvals · needs team role `sre` · each lapses after 15 min"),
        "{t}"
    );
    assert!(has_approve(card));

    let replies = engine
        .click(&ctx(carol), ACTION_APPROVE, "EX-00001:1", None)
        .await;
    let card = &replies[0];
    let t = text(card);
    assert!(t.contains("1 of 2 approvals (@carol)"), "{t}");
    assert!(
        t.contains(
            "Approved by @carol at 2027-03-01 09:00 UTC (as sre), lapses at 2027-03-01 09:15 UTC"
        ),
        "{t}"
    );
    assert!(has_approve(card), "one more approval is needed");

    // Done too early: a private answer naming what stands.
    let early = engine
        .click(&ctx(bob), ACTION_DONE, "EX-00001:1", None)
        .await;
    assert_eq!(early[0].visibility, Visibility::Private);
    assert!(
        early[0].text.contains("1 of 2 approvals (@carol)"),
        "{}",
        early[0].text
    );

    // Carol's approval lapses; erin's approval (typed) shows it on the card.
    clock.advance(Duration::minutes(20));
    let replies = engine.handle_text(&ctx(erin), "approve").await;
    let t = text(&replies[0]);
    assert!(t.contains("1 of 2 approvals (@erin)"), "{t}");
    assert!(
        t.contains(
            "The approval by @carol (given at 2027-03-01 09:00 UTC) lapsed at 2027-03-01 09:15 UTC"
        ),
        "{t}"
    );
    // Carol again, then done.
    engine
        .click(&ctx(carol), ACTION_APPROVE, "EX-00001:1", None)
        .await;
    let done = engine
        .click(&ctx(bob), ACTION_DONE, "EX-00001:1", None)
        .await;
    assert!(
        done.iter().any(|r| r.visibility == Visibility::Public),
        "{done:#?}"
    );
}
