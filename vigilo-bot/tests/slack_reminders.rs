//! Approval reminders and lapses in Slack, over loopback against the fake Web API, with the
//! service's clock under the test's control: approvers mentioned once when a gated step is
//! reached (never `@channel`), again at most once per 30 minutes, a lapse shown on the card,
//! "1 of 2 approvals (@erin)" on the card, and no reminders when they are turned off.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use support::*;
use vigilo_bot::slack::{ReminderOptions, SlackOptions, SlackServer};
use vigilo_core::clock::ManualClock;
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::runbook::{RunbookInput, StepInput};
use vigilo_core::service::{CreateRunbook, Vigilo};
use vigilo_store::{SqliteOptions, SqliteStore};

struct World {
    _dir: tempfile::TempDir,
    vigilo: Vigilo,
    clock: Arc<ManualClock>,
    acme: Space,
    fake: FakeSlack,
    server: SlackServer,
    client: SlackClient,
    dave: SlackUser,
    erin: SlackUser,
}

async fn world(reminders: bool) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("vigilo.db"), SqliteOptions::default())
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new(
        DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap(),
    ));
    let vigilo = Vigilo::with_clock(Arc::new(store), clock.clone());
    let acme = space(
        &vigilo,
        "acme",
        "T0ACME",
        &[
            ("dave", WorkspaceRole::Admin, &[], "U0DAVE"),
            ("bob", WorkspaceRole::Operator, &["sre"], "U0BOB"),
            ("erin", WorkspaceRole::Operator, &["sre"], "U0ERIN"),
            ("carol", WorkspaceRole::Member, &["dba"], "U0CAROL"),
        ],
    )
    .await;
    let input = RunbookInput {
        title: "Fail over <!channel>".into(),
        steps: vec![
            StepInput {
                title: "Announce".into(),
                est_minutes: 1,
                ..StepInput::default()
            },
            StepInput {
                title: "Promote".into(),
                owner_role: "sre".into(),
                est_minutes: 5,
                requires_approval: true,
                approvals_required: 2,
                approval_expires_minutes: Some(30),
                ..StepInput::default()
            },
        ],
        ..RunbookInput::default()
    };
    vigilo
        .create_runbook(
            &acme.owner,
            input,
            CreateRunbook {
                publish: true,
                ..CreateRunbook::default()
            },
        )
        .await
        .unwrap();
    let fake = FakeSlack::start().await;
    let server = SlackServer::bind(
        vigilo.clone(),
        SlackOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            signing_secret: SECRET.into(),
            bot_token: "xoxb-test-token".into(),
            slack_api_url: fake.url.clone(),
            reminders: ReminderOptions {
                enabled: reminders,
                check_every: Duration::from_millis(40),
                ..ReminderOptions::default()
            },
            ..SlackOptions::default()
        },
    )
    .await
    .unwrap();
    let client = SlackClient::new(server.local_addr(), SECRET);
    World {
        _dir: dir,
        vigilo,
        clock,
        acme,
        fake,
        server,
        client,
        dave: SlackUser::new("T0ACME", "U0DAVE", "C0OPS"),
        erin: SlackUser::new("T0ACME", "U0ERIN", "C0OPS"),
    }
}

fn reminders(fake: &FakeSlack) -> Vec<Call> {
    fake.calls_of("chat.postMessage")
        .into_iter()
        .filter(|c| c.text().contains("waits for"))
        .collect()
}

/// Lets the reminder timer run a few times.
async fn ticks() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// `/runbook run RB-00001` by dave, step 1 done: returns the header and step 2's card.
async fn reach_the_gate(w: &World) -> (Call, Call) {
    let from = w.fake.count();
    let a = w
        .client
        .post("/slack/commands", &w.dave.command("run RB-00001"))
        .await;
    assert_eq!(a.status, 200);
    let posts = w.fake.wait_calls(from, "chat.postMessage", 2).await;
    let (header, card1) = (posts[0].clone(), posts[1].clone());
    ticks().await;
    assert!(reminders(&w.fake).is_empty(), "step 1 is not gated");
    let from = w.fake.count();
    let a = w
        .client
        .post("/slack/interactions", &w.dave.click(&card1, "vigilo.done"))
        .await;
    assert_eq!(a.status, 200);
    // Step 2's card: the message with the Approve button (the reminder may come first).
    let is_card = |c: &Call| c.method == "chat.postMessage" && c.button("vigilo.approve").is_some();
    let card2 = w
        .fake
        .wait_for(from, "step 2's card", |c| c.iter().any(is_card))
        .await
        .into_iter()
        .find(is_card)
        .unwrap();
    (header, card2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvers_are_reminded_in_the_thread_once_then_every_30_minutes() {
    let w = world(true).await;
    let (header, card2) = reach_the_gate(&w).await;
    let header_ts = header.ts.clone();
    let first = w
        .fake
        .wait_for(0, "a reminder", |c| {
            c.iter().any(|c| c.text().contains("waits for"))
        })
        .await;
    let first = first
        .iter()
        .find(|c| c.text().contains("waits for"))
        .unwrap();
    let text = first.body["text"].as_str().unwrap().to_owned();
    // The sre members who may approve: bob and erin; dave (the operator, no sre) and carol
    // (dba) are not mentioned. Never a channel-wide mention.
    assert!(text.starts_with("<@U0BOB> <@U0ERIN> "), "{text}");
    assert!(
        !text.contains("U0DAVE") && !text.contains("U0CAROL"),
        "{text}"
    );
    assert!(
        !text.contains("<!channel>") && !text.contains("<!here>"),
        "{text}"
    );
    assert!(
        text.contains("EX-00001 step 2/2 · Promote waits for 0 of 2 approvals by team role `sre`"),
        "{text}"
    );
    // In the run's thread.
    assert_eq!(first.channel(), "C0OPS");
    let thread = first.body["thread_ts"].as_str().map(str::to_owned);
    assert!(thread.is_some());
    if header_ts.is_some() {
        assert_eq!(thread, header_ts);
    }

    // Still waiting: nothing more until 30 minutes have passed.
    ticks().await;
    assert_eq!(reminders(&w.fake).len(), 1);
    w.clock.advance(chrono::Duration::minutes(29));
    ticks().await;
    assert_eq!(reminders(&w.fake).len(), 1, "not again within 30 minutes");

    // Erin approves: the card says 1 of 2 approvals (@erin).
    let from = w.fake.count();
    let a = w
        .client
        .post(
            "/slack/interactions",
            &w.erin.click(&card2, "vigilo.approve"),
        )
        .await;
    assert_eq!(a.status, 200);
    let updates = w.fake.wait_calls(from, "chat.update", 1).await;
    let card = updates.last().unwrap().text();
    assert!(card.contains("1 of 2 approvals (@erin)"), "{card}");

    // 30 minutes after the first reminder: once more, mentioning only bob now.
    w.clock.advance(chrono::Duration::minutes(1));
    w.fake
        .wait_for(0, "a second reminder", |c| {
            c.iter().filter(|c| c.text().contains("waits for")).count() >= 2
        })
        .await;
    ticks().await;
    let all = reminders(&w.fake);
    assert_eq!(all.len(), 2, "{all:#?}");
    let second = all[1].body["text"].as_str().unwrap().to_owned();
    assert!(second.starts_with("<@U0BOB> "), "{second}");
    assert!(!second.contains("U0ERIN"), "{second}");
    assert!(second.contains("1 of 2 approvals (@erin)"), "{second}");

    // Erin's approval lapses 30 minutes after she gave it: the timer records it (once) and
    // the card shows it, though nobody clicked.
    let from = w.fake.count();
    w.clock.advance(chrono::Duration::minutes(30));
    let updates = w
        .fake
        .wait_for(from, "the card showing the lapse", |c| {
            c.iter()
                .any(|c| c.method == "chat.update" && c.text().contains("lapsed"))
        })
        .await;
    let lapse_card = updates
        .iter()
        .find(|c| c.method == "chat.update" && c.text().contains("lapsed"))
        .unwrap();
    assert_eq!(lapse_card.body["ts"].as_str(), card2.ts.as_deref());
    assert!(
        lapse_card.text().contains("0 of 2 approvals"),
        "{}",
        lapse_card.text()
    );
    ticks().await;
    let entries = w
        .vigilo
        .store()
        .audit(w.acme.id, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.action == "execution.approval_expired")
            .count(),
        1
    );
    w.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reminders_when_turned_off() {
    let w = world(false).await;
    reach_the_gate(&w).await;
    ticks().await;
    w.clock.advance(chrono::Duration::minutes(45));
    ticks().await;
    assert!(reminders(&w.fake).is_empty());
    w.server.shutdown().await.unwrap();
}
