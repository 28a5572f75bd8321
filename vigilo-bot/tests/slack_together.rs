//! Running together in Slack, over real HTTP on loopback (signed requests, the fake Web API, a
//! real SQLite file): a note through the Note… button and its modal (a repeated submission adds
//! it once), typed notes, a member's denial, hand-over by mention, takeover, and the header
//! that says a newer version was published, with its Diff button.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::*;
use vigilo_core::ids::{Key, KeyKind};
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::runbook::{RunbookInput, VersionSource};
use vigilo_store::SqliteOptions;

fn ex1() -> Key {
    Key::new(KeyKind::Execution, 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_hand_overs_and_drift_from_slack() {
    let dir = tempfile::tempdir().unwrap();
    let vigilo = open_sqlite(dir.path(), SqliteOptions::default()).await;
    let acme = space(
        &vigilo,
        "acme",
        "T0ACME",
        &[
            ("dave", WorkspaceRole::Admin, &[], "U0DAVE"),
            ("bob", WorkspaceRole::Operator, &["sre"], "U0BOB"),
            ("carol", WorkspaceRole::Member, &["dba"], "U0CAROL"),
            ("erin", WorkspaceRole::Operator, &[], "U0ERIN"),
        ],
    )
    .await;
    let rb = runbook(
        &vigilo,
        &acme.owner,
        "Fail over",
        &[("Announce", false), ("Promote", true), ("Verify", false)],
    )
    .await;
    let fake = FakeSlack::start().await;
    let server = start_bot(vigilo.clone(), &fake).await;
    let client = SlackClient::new(server.local_addr(), SECRET);
    let bob = SlackUser::new("T0ACME", "U0BOB", "C0OPS");
    let carol = SlackUser::new("T0ACME", "U0CAROL", "C0OPS");
    let dave = SlackUser::new("T0ACME", "U0DAVE", "C0OPS");
    let dave_who = acme.members["dave"];
    let audit = async || audit_count(&vigilo, acme.id).await;

    let from = fake.count();
    client
        .post("/slack/commands", &bob.command("run RB-00001"))
        .await;
    let posts = fake.wait_calls(from, "chat.postMessage", 2).await;
    let (header, card1) = (posts[0].clone(), posts[1].clone());
    let header_ts = header.ts.clone().unwrap();
    assert!(card1.button("vigilo.note").is_some(), "{card1:#?}");

    // The Note… button opens a modal; its submission posts the note in the run's thread and
    // refreshes the card. Text is escaped: no ping.
    let before = audit().await;
    let from = fake.count();
    client
        .post("/slack/interactions", &bob.click(&card1, "vigilo.note"))
        .await;
    let opened = fake.wait_calls(from, "views.open", 1).await.remove(0);
    let view = opened.body["view"].to_string();
    assert!(view.contains("Note on step 1"), "{view}");
    let submission = bob.submit(&opened, "paged <!channel> the *DBA*");
    let from = fake.count();
    let a = client.post("/slack/interactions", &submission).await;
    assert_eq!(a.status, 200);
    let calls = fake
        .wait_for(from, "the note and the card", |c| {
            c.iter().any(|c| c.method == "chat.postMessage")
                && c.iter().any(|c| c.method == "chat.update")
        })
        .await;
    let posted = calls
        .iter()
        .find(|c| c.method == "chat.postMessage")
        .unwrap();
    assert_eq!(posted.body["thread_ts"], header_ts.as_str());
    assert!(posted.text().contains("paged"), "{}", posted.text());
    assert!(!posted.text().contains("<!channel>"), "{}", posted.text());
    let update = calls.iter().find(|c| c.method == "chat.update").unwrap();
    assert_eq!(update.body["ts"], card1.ts.clone().unwrap().as_str());
    assert!(update.text().contains("paged"), "{}", update.text());
    assert_eq!(audit().await, before + 1);

    // Slack's redelivery of the same submission, and a second submission of the same note
    // made from the same card (a double submit, another replica): added once.
    client
        .post_at(
            "/slack/interactions",
            &submission,
            now(),
            &[("x-slack-retry-num", "1".into())],
        )
        .await;
    let from = fake.count();
    client
        .post(
            "/slack/interactions",
            &bob.submit(&opened, "paged <!channel> the *DBA*"),
        )
        .await;
    let told = fake.wait_calls(from, "chat.postEphemeral", 1).await;
    assert!(
        told[0].text().contains("already added to step 1"),
        "{}",
        told[0].text()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(audit().await, before + 1);
    let exec = vigilo.execution(&dave_who, ex1()).await.unwrap();
    assert_eq!(exec.steps[0].notes.len(), 1);

    // Typed: a note on another step; a member who may not act on bob's run is denied.
    let from = fake.count();
    client
        .post(
            "/slack/commands",
            &bob.command("note --step 3 check the lag"),
        )
        .await;
    let posted = fake.wait_calls(from, "chat.postMessage", 1).await;
    assert_eq!(posted[0].body["thread_ts"], header_ts.as_str());
    let from = fake.count();
    client
        .post("/slack/commands", &carol.command("note hello"))
        .await;
    let told = fake.wait_calls(from, "chat.postEphemeral", 1).await;
    assert!(told[0].text().contains("Not allowed"), "{}", told[0].text());
    assert_eq!(audit().await, before + 2);

    // Hand-over by Slack mention; the new operator is told in the thread, the header updated.
    let from = fake.count();
    client
        .post("/slack/commands", &bob.command("handoff <@U0ERIN|erin>"))
        .await;
    let calls = fake
        .wait_for(from, "the hand-over", |c| {
            c.iter().any(|c| c.method == "chat.postMessage")
                && c.iter().any(|c| c.method == "chat.update")
        })
        .await;
    let told = calls
        .iter()
        .find(|c| c.method == "chat.postMessage")
        .unwrap();
    assert!(
        told.text().contains("@erin is the operator now"),
        "{}",
        told.text()
    );
    assert_eq!(told.body["thread_ts"], header_ts.as_str());
    let updated = calls.iter().find(|c| c.method == "chat.update").unwrap();
    assert_eq!(updated.body["ts"], header_ts.as_str());
    assert!(
        updated.text().contains("started by @bob"),
        "{}",
        updated.text()
    );
    // Takeover by an admin; an operator who is not one is denied.
    let from = fake.count();
    client
        .post("/slack/commands", &bob.command("takeover"))
        .await;
    let told = fake.wait_calls(from, "chat.postEphemeral", 1).await;
    assert!(told[0].text().contains("admin"), "{}", told[0].text());
    let from = fake.count();
    client
        .post("/slack/commands", &dave.command("takeover EX-00001"))
        .await;
    let posted = fake.wait_calls(from, "chat.postMessage", 1).await;
    assert!(
        posted[0].text().contains("@dave took EX-00001 over"),
        "{}",
        posted[0].text()
    );
    let exec = vigilo.execution(&dave_who, ex1()).await.unwrap();
    assert_eq!(exec.operator, dave_who.user);
    assert_eq!(exec.handoffs.len(), 2);

    // A newer version is published: the next click refreshes the header with the drift and a
    // Diff button, which shows the diff privately. The run stays on v1.
    let mut input = RunbookInput::from(&vigilo.runbook(&acme.owner, rb).await.unwrap().body);
    input.steps[2].title = "Verify from outside".into();
    vigilo
        .edit_runbook(&acme.owner, rb, input, Some(1), VersionSource::Edit)
        .await
        .unwrap();
    let from = fake.count();
    client
        .post("/slack/interactions", &bob.click(&card1, "vigilo.done"))
        .await;
    let calls = fake
        .wait_for(from, "the header refreshed", |c| {
            c.iter()
                .any(|c| c.method == "chat.update" && c.body["ts"] == header_ts.as_str())
        })
        .await;
    let refreshed = calls
        .iter()
        .find(|c| c.method == "chat.update" && c.body["ts"] == header_ts.as_str())
        .unwrap();
    assert!(
        refreshed
            .text()
            .contains("v2 was published after this run started: 1 step changed"),
        "{}",
        refreshed.text()
    );
    let diff = refreshed.button("vigilo.diff").expect("a Diff button");
    let from = fake.count();
    client
        .post(
            "/slack/interactions",
            &form(&dave.click_payload("vigilo.diff", &diff, &header_ts, None)),
        )
        .await;
    let shown = fake.wait_calls(from, "chat.postEphemeral", 1).await;
    assert!(shown[0].text().contains("v1 → v2"), "{}", shown[0].text());
    assert!(
        shown[0].text().contains("Verify from outside"),
        "{}",
        shown[0].text()
    );
    let exec = vigilo.execution(&dave_who, ex1()).await.unwrap();
    assert_eq!(exec.runbook_version, 1);
    assert_eq!(exec.current_index(), Some(1));
    server.shutdown().await.unwrap();
}
