//! The chat engine's replies: header and step cards, badges and buttons, private errors, stale
//! clicks, the summary, escaping for Slack, and long texts kept inside the platform limits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use vigilo_bot::chat::limits::{MAX_BLOCKS, MAX_SECTION_CHARS};
use vigilo_bot::chat::markdown::{code_to_mrkdwn, escape_mrkdwn, to_mrkdwn, to_plain};
use vigilo_bot::chat::reply::{
    ACTION_APPROVE, ACTION_DONE, ACTION_FAIL, ACTION_NOTE, ACTION_RETRY, ACTION_SKIP,
};
use vigilo_bot::chat::{Anchor, Badge, Block, ChatContext, ChatEngine, Reply, Target, Visibility};
use vigilo_core::clock::ManualClock;
use vigilo_core::execution::StepStatus;
use vigilo_core::ids::{Key, KeyKind};
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::runbook::{RunbookInput, StepInput};
use vigilo_core::service::{CreateRunbook, NewMember, Vigilo, Who};
use vigilo_core::testkit::memory::MemoryStore;

struct World {
    vigilo: Vigilo,
    clock: Arc<ManualClock>,
    engine: ChatEngine,
    alice: Who,
    bob: Who,
    carol: Who,
}

impl World {
    fn ctx(&self, who: Who) -> ChatContext {
        ChatContext::new(who, "slack", "C0OPS")
    }

    async fn say(&self, who: Who, text: &str) -> Vec<Reply> {
        self.engine.handle_text(&self.ctx(who), text).await
    }

    async fn click(&self, who: Who, action: &str, value: &str, text: Option<&str>) -> Vec<Reply> {
        self.engine
            .click(&self.ctx(who), action, value, text.map(str::to_owned))
            .await
    }
}

async fn world() -> World {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2025, 5, 1, 9, 0, 0).unwrap(),
    ));
    let vigilo = Vigilo::with_clock(Arc::new(MemoryStore::new()), clock.clone());
    let (ws, alice) = vigilo
        .create_workspace("acme", "alice", "Alice")
        .await
        .unwrap();
    let alice = Who::new(ws.id, alice.id);
    let add = async |handle: &str, role: WorkspaceRole, teams: &[&str]| {
        let (u, _) = vigilo
            .add_member(
                &alice,
                NewMember {
                    handle: handle.into(),
                    display_name: String::new(),
                    role,
                    team_roles: teams.iter().map(|t| t.to_string()).collect(),
                    chat_identity: None,
                },
            )
            .await
            .unwrap();
        Who::new(ws.id, u.id)
    };
    let bob = add("bob", WorkspaceRole::Operator, &["sre"]).await;
    let carol = add("carol", WorkspaceRole::Member, &["dba"]).await;
    World {
        engine: ChatEngine::new(vigilo.clone()),
        vigilo,
        clock,
        alice,
        bob,
        carol,
    }
}

fn step(title: &str, est: i64) -> StepInput {
    StepInput {
        title: title.into(),
        description: format!("Do {title}."),
        owner_role: "sre".into(),
        est_minutes: est,
        ..Default::default()
    }
}

/// RB-00001: three steps, the second gated and destructive; a title that tries to ping.
async fn tls_runbook(w: &World) -> Key {
    let input = RunbookInput {
        title: "Rotate <!channel> & <b>certs</b>".into(),
        description: "Rotate them.".into(),
        category: "security".into(),
        steps: vec![
            StepInput {
                title: "Announce @here & <!here>".into(),
                description: "Tell **everyone** in <#C123|ops> & see [the doc](https://wiki.example/a?b=1&c=2)."
                    .into(),
                owner_role: "sre".into(),
                est_minutes: 5,
                expected_outcome: "People know.".into(),
                verification: "curl -s 'https://status.example/?a=1&b=<2>'".into(),
                rollback_note: "Post a correction.".into(),
                ..Default::default()
            },
            StepInput {
                requires_approval: true,
                is_destructive: true,
                ..step("Install the certificate", 10)
            },
            step("Verify", 5),
        ],
    };
    w.vigilo
        .create_runbook(
            &w.alice,
            input,
            CreateRunbook {
                publish: true,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .key
}

fn ex(n: u64) -> Key {
    Key::new(KeyKind::Execution, n)
}

/// Everything a Slack surface would send for a reply, rendered as mrkdwn.
fn slack_text(reply: &Reply) -> String {
    let mut out = vec![escape_mrkdwn(&reply.text)];
    for b in &reply.blocks {
        match b {
            Block::Header(t) => out.push(escape_mrkdwn(t)),
            Block::Section(md) | Block::Context(md) => out.push(to_mrkdwn(md)),
            Block::Fields(fs) => {
                for f in fs {
                    out.push(format!(
                        "*{}*\n{}",
                        escape_mrkdwn(&f.label),
                        to_mrkdwn(&f.value)
                    ));
                }
            }
            Block::Code(c) => out.push(code_to_mrkdwn(c)),
            Block::Badges(bs) => out.extend(bs.iter().map(|b| b.label().to_owned())),
            Block::Buttons(bs) => out.extend(bs.iter().map(|b| escape_mrkdwn(&b.label))),
        }
    }
    out.join("\n")
}

fn fields(reply: &Reply) -> Vec<(String, String)> {
    reply
        .blocks
        .iter()
        .flat_map(|b| match b {
            Block::Fields(fs) => fs
                .iter()
                .map(|f| (f.label.clone(), f.value.clone()))
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

fn field(reply: &Reply, label: &str) -> String {
    fields(reply)
        .into_iter()
        .find(|(l, _)| l == label)
        .map(|(_, v)| to_plain(&v))
        .unwrap_or_else(|| panic!("no field {label} in {reply:#?}"))
}

fn header(reply: &Reply) -> &str {
    match reply.blocks.first() {
        Some(Block::Header(h)) => h,
        other => panic!("no header: {other:?}"),
    }
}

fn badges(reply: &Reply) -> Vec<Badge> {
    reply
        .blocks
        .iter()
        .flat_map(|b| match b {
            Block::Badges(bs) => bs.clone(),
            _ => Vec::new(),
        })
        .collect()
}

fn button_ids(reply: &Reply) -> Vec<&str> {
    reply.buttons().map(|b| b.action_id.as_str()).collect()
}

fn all_text(reply: &Reply) -> String {
    slack_text(reply)
}

#[tokio::test]
async fn run_posts_a_header_and_threads_the_first_card() {
    let w = world().await;
    let key = tls_runbook(&w).await;
    let replies = w.say(w.alice, &format!("/runbook run {key}")).await;
    assert_eq!(replies.len(), 2, "{replies:#?}");
    let (head, card) = (&replies[0], &replies[1]);

    assert_eq!(head.visibility, Visibility::Public);
    assert_eq!(head.target, Target::NewMessage);
    assert_eq!(head.anchor, Some(Anchor::Execution(ex(1))));
    assert!(header(head).starts_with("EX-00001 · Rotate"));
    assert_eq!(field(head, "Runbook"), "RB-00001 v1");
    assert_eq!(field(head, "Operator"), "@alice");
    assert_eq!(field(head, "Steps"), "3");
    assert_eq!(field(head, "Estimated total"), "20 min");
    assert_eq!(field(head, "Status"), "running");

    assert_eq!(card.visibility, Visibility::Public);
    assert_eq!(card.target, Target::Thread(Anchor::Execution(ex(1))));
    assert_eq!(
        card.anchor,
        Some(Anchor::StepCard {
            execution: ex(1),
            step: 1
        })
    );
    assert_eq!(header(card), "Step 1/3 · Announce @here & <!here>");
    assert_eq!(field(card, "Estimate"), "5 min");
    assert_eq!(field(card, "Owner role"), "sre");
    assert!(badges(card).is_empty());
    assert_eq!(
        button_ids(card),
        vec![ACTION_DONE, ACTION_SKIP, ACTION_FAIL, ACTION_NOTE]
    );
    let labels: Vec<&str> = card.buttons().map(|b| b.label.as_str()).collect();
    assert_eq!(labels, vec!["Done", "Skip…", "Failed…", "Note…"]);
    assert!(
        card.buttons().all(|b| b.value == "EX-00001:1"
            || (b.action_id == ACTION_NOTE && b.value == "EX-00001:1@1"))
    );
    assert!(
        card.buttons()
            .find(|b| b.action_id == ACTION_SKIP)
            .unwrap()
            .prompt
            .is_some()
    );
    assert!(
        card.blocks
            .iter()
            .any(|b| matches!(b, Block::Code(c) if c.starts_with("curl -s")))
    );
    let text = all_text(card);
    assert!(text.contains("*Expected outcome:* People know."), "{text}");
    assert!(text.contains("*Rollback:* Post a correction."), "{text}");
}

#[tokio::test]
async fn user_and_runbook_text_can_never_ping_a_channel() {
    let w = world().await;
    let key = tls_runbook(&w).await;
    let mut replies = w.say(w.alice, &format!("run {key}")).await;
    replies.extend(w.say(w.alice, &format!("show {key}")).await);
    replies.extend(w.say(w.alice, "list").await);
    replies.extend(
        w.click(
            w.alice,
            ACTION_DONE,
            "EX-00001:1",
            Some("done <!everyone> & @channel"),
        )
        .await,
    );
    for r in &replies {
        let text = slack_text(r);
        for ping in ["<!channel>", "<!here>", "<!everyone>", "<#C123", "<b>"] {
            assert!(!text.contains(ping), "{ping} in {text}");
        }
        for word in ["@here", "@channel", "@everyone"] {
            assert!(!text.contains(word), "{word} in {text}");
        }
    }
    let head = slack_text(&replies[0]);
    assert!(
        head.contains("Rotate &lt;!channel&gt; &amp; &lt;b&gt;certs&lt;/b&gt;"),
        "{head}"
    );
    let card = slack_text(&replies[1]);
    assert!(card.contains("Tell *everyone* in &lt;#C123|ops&gt; &amp; see <https://wiki.example/a?b=1&amp;c=2|the doc>."), "{card}");
    assert!(
        card.contains("curl -s 'https://status.example/?a=1&amp;b=&lt;2&gt;'"),
        "{card}"
    );
}

#[tokio::test]
async fn a_gated_step_shows_badges_and_approve_until_approved() {
    let w = world().await;
    let key = tls_runbook(&w).await;
    w.say(w.alice, &format!("run {key}")).await;
    let replies = w.click(w.alice, ACTION_DONE, "EX-00001:1", None).await;
    assert_eq!(replies.len(), 2, "{replies:#?}");
    let (updated, next) = (&replies[0], &replies[1]);
    assert_eq!(
        updated.target,
        Target::Update(Anchor::StepCard {
            execution: ex(1),
            step: 1
        })
    );
    assert!(updated.buttons().next().is_none());
    assert!(all_text(updated).contains("✔ *Done* by @alice at 2025-05-01 09:00 UTC"));

    assert_eq!(header(next), "Step 2/3 · Install the certificate");
    assert_eq!(
        badges(next),
        vec![Badge::Destructive, Badge::ApprovalRequired]
    );
    assert_eq!(
        button_ids(next),
        vec![
            ACTION_DONE,
            ACTION_SKIP,
            ACTION_FAIL,
            ACTION_APPROVE,
            ACTION_NOTE
        ]
    );
    assert_eq!(field(next, "Approval"), "needs team role `sre`");

    // Done before the approval is refused privately.
    let early = w.click(w.bob, ACTION_DONE, "EX-00001:2", None).await;
    assert_eq!(early.len(), 1);
    assert_eq!(early[0].visibility, Visibility::Private);
    assert!(
        early[0]
            .text
            .contains("requires approval by team role `sre`"),
        "{}",
        early[0].text
    );

    let approved = w.click(w.bob, ACTION_APPROVE, "EX-00001:2", None).await;
    assert_eq!(approved.len(), 1, "{approved:#?}");
    let card = &approved[0];
    assert_eq!(card.visibility, Visibility::Public);
    assert_eq!(
        card.target,
        Target::Update(Anchor::StepCard {
            execution: ex(1),
            step: 2
        })
    );
    assert_eq!(
        button_ids(card),
        vec![ACTION_DONE, ACTION_SKIP, ACTION_FAIL, ACTION_NOTE]
    );
    assert_eq!(
        badges(card),
        vec![Badge::Destructive, Badge::ApprovalRequired, Badge::Approved]
    );
    assert!(field(card, "Approval").starts_with("approved by @bob"));

    // A second approval is a stale click.
    let again = w.click(w.bob, ACTION_APPROVE, "EX-00001:2", None).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].visibility, Visibility::Private);
    assert!(again[0].text.contains("already approved by @bob"));
}

#[tokio::test]
async fn a_denied_approval_is_private_names_the_role_and_changes_nothing() {
    let w = world().await;
    let key = tls_runbook(&w).await;
    w.say(w.alice, &format!("run {key}")).await;
    w.click(w.alice, ACTION_DONE, "EX-00001:1", None).await;
    let before = w.vigilo.execution(&w.alice, ex(1)).await.unwrap();

    let denied = w.click(w.carol, ACTION_APPROVE, "EX-00001:2", None).await;
    assert_eq!(denied.len(), 1, "{denied:#?}");
    assert_eq!(denied[0].visibility, Visibility::Private);
    assert_eq!(denied[0].target, Target::NewMessage);
    assert!(denied[0].anchor.is_none());
    assert!(
        denied[0]
            .text
            .starts_with("Not allowed: approving step 2 needs team role `sre`"),
        "{}",
        denied[0].text
    );

    // The operator cannot approve their own gated step either (approver_must_differ).
    let own = w.say(w.alice, "approve").await;
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].visibility, Visibility::Private);
    assert!(own[0].text.contains("cannot approve"), "{}", own[0].text);

    let after = w.vigilo.execution(&w.alice, ex(1)).await.unwrap();
    assert_eq!(after.rev, before.rev);
    assert!(after.steps[1].approvals.is_empty());
}

#[tokio::test]
async fn a_stale_click_says_who_acted_and_posts_nothing_else() {
    let w = world().await;
    let key = tls_runbook(&w).await;
    w.say(w.alice, &format!("run {key}")).await;
    w.clock.advance(Duration::minutes(3));
    w.click(w.alice, ACTION_DONE, "EX-00001:1", None).await;
    let stale = w.click(w.bob, ACTION_DONE, "EX-00001:1", None).await;
    assert_eq!(stale.len(), 1, "{stale:#?}");
    assert_eq!(stale[0].visibility, Visibility::Private);
    assert!(
        stale[0]
            .text
            .contains("already marked done by @alice at 2025-05-01 09:03:00 UTC"),
        "{}",
        stale[0].text
    );
    let exec = w.vigilo.execution(&w.alice, ex(1)).await.unwrap();
    assert_eq!(exec.steps[1].status, StepStatus::Pending);
}

#[tokio::test]
async fn skip_and_fail_need_a_text() {
    let w = world().await;
    let key = tls_runbook(&w).await;
    w.say(w.alice, &format!("run {key}")).await;
    for (action, text) in [
        (ACTION_SKIP, None),
        (ACTION_SKIP, Some("   ")),
        (ACTION_FAIL, None),
    ] {
        let r = w.click(w.alice, action, "EX-00001:1", text).await;
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].visibility, Visibility::Private);
        assert!(r[0].text.contains("is required"), "{}", r[0].text);
    }
    let typed = w.say(w.alice, "skip").await;
    assert_eq!(typed.len(), 1);
    assert!(
        typed[0]
            .text
            .contains("A skip reason is required. Usage: /runbook skip <reason>")
    );
    let exec = w.vigilo.execution(&w.alice, ex(1)).await.unwrap();
    assert_eq!(exec.rev, 1);
}

#[tokio::test]
async fn fail_retry_and_abort_update_the_card() {
    let w = world().await;
    let key = tls_runbook(&w).await;
    w.say(w.alice, &format!("run {key}")).await;
    let failed = w.say(w.alice, "fail the status page is down").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(
        button_ids(&failed[0]),
        vec![ACTION_RETRY, ACTION_SKIP, "vigilo.abort", ACTION_NOTE]
    );
    assert!(all_text(&failed[0]).contains("*Failed*"));
    let retried = w.click(w.alice, ACTION_RETRY, "EX-00001:1", None).await;
    assert_eq!(
        button_ids(&retried[0]),
        vec![ACTION_DONE, ACTION_SKIP, ACTION_FAIL, ACTION_NOTE]
    );
    let aborted = w.say(w.alice, "abort wrong certificate ordered").await;
    assert_eq!(aborted.len(), 3, "{aborted:#?}");
    assert!(all_text(&aborted[0]).contains("*Aborted* by @alice"));
    assert_eq!(header(&aborted[1]), "Summary · EX-00001 aborted");
    assert_eq!(aborted[2].target, Target::Update(Anchor::Execution(ex(1))));
    assert!(field(&aborted[2], "Status").starts_with("aborted at"));
}

#[tokio::test]
async fn the_last_step_posts_a_summary_with_variances() {
    let w = world().await;
    let key = tls_runbook(&w).await;
    w.say(w.alice, &format!("run {key}")).await;
    w.clock.advance(Duration::minutes(7));
    let r = w
        .click(w.alice, ACTION_DONE, "EX-00001:1", Some("announced"))
        .await;
    let done1 = all_text(&r[0]);
    assert!(
        done1.contains("7.0 min (estimate 5 min, +2.0 min)"),
        "{done1}"
    );
    assert!(done1.contains("*Note:* announced"), "{done1}");
    w.click(w.bob, ACTION_APPROVE, "EX-00001:2", None).await;
    w.clock.advance(Duration::minutes(8));
    w.say(w.bob, "done").await;
    w.clock.advance(Duration::minutes(1));
    let last = w
        .say(w.alice, "skip checked by the monitoring already")
        .await;
    assert_eq!(last.len(), 3, "{last:#?}");
    let (card, summary, head) = (&last[0], &last[1], &last[2]);
    assert!(all_text(card).contains("↷ *Skipped* by @alice"));
    assert!(all_text(card).contains("*Reason:* checked by the monitoring already"));
    assert_eq!(summary.target, Target::Thread(Anchor::Execution(ex(1))));
    assert_eq!(header(summary), "Summary · EX-00001 completed");
    assert_eq!(field(summary, "Outcome"), "completed");
    assert_eq!(field(summary, "Steps"), "2 done · 1 skipped");
    assert_eq!(field(summary, "Actual"), "16.0 min");
    assert_eq!(field(summary, "Estimated"), "20 min");
    assert_eq!(field(summary, "Variance"), "-4.0 min");
    let text = all_text(summary);
    assert!(text.contains("✔ 1. Announce @\u{200B}here &amp; &lt;!here&gt; — done by @alice · 7.0 min / est 5 min (+2.0 min)"), "{text}");
    assert!(text.contains("↷ 3. Verify — skipped by @alice: checked by the monitoring already · 1.0 min / est 5 min (-4.0 min)"), "{text}");
    assert_eq!(head.target, Target::Update(Anchor::Execution(ex(1))));
    assert!(
        field(head, "Status")
            .contains("completed at 2025-05-01 09:16 UTC · 16.0 min (estimate 20 min, -4.0 min)")
    );

    // Sealed: nothing more.
    let after = w.say(w.alice, "done EX-00001").await;
    assert_eq!(after.len(), 1);
    assert!(after[0].text.contains("is sealed"), "{}", after[0].text);
    let none = w.say(w.alice, "done").await;
    assert!(
        none[0]
            .text
            .contains("No execution is open in this channel")
    );
}

#[tokio::test]
async fn typed_commands_find_the_open_execution_or_ask() {
    let w = world().await;
    let key = tls_runbook(&w).await;
    w.say(w.alice, &format!("run {key}")).await;
    let status = w.say(w.alice, "status").await;
    assert_eq!(status.len(), 2, "{status:#?}");
    assert!(all_text(&status[0]).contains("Now: Step 1/3"));
    assert_eq!(status[1].visibility, Visibility::Private);
    assert!(status[1].anchor.is_none());
    assert_eq!(
        button_ids(&status[1]),
        vec![ACTION_DONE, ACTION_SKIP, ACTION_FAIL, ACTION_NOTE]
    );

    w.say(w.bob, &format!("run {key} rehearsal")).await;
    let ambiguous = w.say(w.alice, "done").await;
    assert_eq!(ambiguous.len(), 1);
    assert_eq!(ambiguous[0].visibility, Visibility::Private);
    assert!(
        ambiguous[0]
            .text
            .contains("2 executions are open in this channel")
    );
    assert!(
        ambiguous[0].text.contains("`done EX-00002`"),
        "{}",
        ambiguous[0].text
    );

    let named = w.say(w.alice, "done EX-00001").await;
    assert_eq!(named.len(), 2);
    assert_eq!(header(&named[1]), "Step 2/3 · Install the certificate");

    // Another channel sees none of them.
    let elsewhere = w
        .engine
        .handle_text(&ChatContext::new(w.alice, "slack", "C0OTHER"), "status")
        .await;
    assert!(all_text(&elsewhere[0]).contains("No execution is open"));
}

#[tokio::test]
async fn help_and_unknown_commands() {
    let w = world().await;
    let help = w.say(w.carol, "help").await;
    assert_eq!(help[0].visibility, Visibility::Private);
    assert!(
        all_text(&help[0]).contains("/runbook run RB-00012 [CR-00003] [INC-00007] [rehearsal]")
    );
    let unknown = w.say(w.carol, "/runbook dne").await;
    assert_eq!(unknown.len(), 1);
    let text = all_text(&unknown[0]);
    assert!(
        text.contains("Unknown command `dne`; did you mean `done`?"),
        "{text}"
    );
    assert!(text.contains("/runbook done [note]"));
    assert!(text.contains("/runbook publish RB-00012"));
    let huge = w.say(w.carol, &"x".repeat(10_000)).await;
    assert!(huge[0].text.contains("at most 8192 bytes"));
}

#[tokio::test]
async fn runbook_views_and_publish() {
    let w = world().await;
    let key = tls_runbook(&w).await;
    let list = w.say(w.carol, "list security").await;
    assert!(all_text(&list[0]).contains("`RB-00001` *Rotate"));
    let none = w.say(w.carol, "list gardening").await;
    assert!(all_text(&none[0]).contains("No runbooks in category `gardening`"));
    let found = w.say(w.carol, "search certificate").await;
    assert!(
        all_text(&found[0]).contains("RB-00001"),
        "{}",
        all_text(&found[0])
    );
    let show = w.say(w.carol, &format!("show {key}")).await;
    let text = all_text(&show[0]);
    assert!(text.contains("*2. Install the certificate* · 10 min · owner role sre · *DESTRUCTIVE* · *APPROVAL REQUIRED*"), "{text}");

    let mut input = RunbookInput::from(&w.vigilo.runbook(&w.alice, key).await.unwrap().body);
    input.steps[2].title = "Verify from outside".into();
    w.vigilo
        .edit_runbook(
            &w.alice,
            key,
            input,
            Some(1),
            vigilo_core::runbook::VersionSource::Edit,
        )
        .await
        .unwrap();
    let history = w.say(w.carol, &format!("history {key}")).await;
    assert!(all_text(&history[0]).contains("*v2*"));
    let diff = w.say(w.carol, &format!("diff {key} 1 2")).await;
    let text = all_text(&diff[0]);
    assert!(text.contains("Verify from outside"), "{text}");
    assert_eq!(field(&diff[0], "Changed"), "1");

    let draft = w
        .vigilo
        .create_runbook(
            &w.bob,
            RunbookInput {
                title: "Draft".into(),
                steps: vec![step("One", 1)],
                ..Default::default()
            },
            CreateRunbook::default(),
        )
        .await
        .unwrap();
    let denied = w.say(w.carol, &format!("publish {}", draft.key)).await;
    assert_eq!(denied[0].visibility, Visibility::Private);
    let published = w.say(w.bob, &format!("publish {}", draft.key)).await;
    assert_eq!(published[0].visibility, Visibility::Public);
    assert!(published[0].text.contains("@bob published RB-00002 v1"));
    let again = w.say(w.bob, &format!("publish {}", draft.key)).await;
    assert!(again[0].text.contains("already published"));
}

fn assert_within_limits(replies: &[Reply]) {
    for r in replies {
        assert!(r.blocks.len() <= MAX_BLOCKS, "{} blocks", r.blocks.len());
        assert!(
            vigilo_bot::chat::budget::within_budget(r),
            "a message of {} characters",
            vigilo_bot::chat::budget::reply_chars(r)
        );
        for b in &r.blocks {
            match b {
                Block::Section(md) | Block::Context(md) => {
                    let n = to_mrkdwn(md).chars().count();
                    assert!(n <= MAX_SECTION_CHARS, "section of {n} chars");
                }
                Block::Code(c) => assert!(code_to_mrkdwn(c).chars().count() <= MAX_SECTION_CHARS),
                Block::Header(h) => assert!(h.chars().count() <= 150),
                Block::Fields(fs) => assert!(fs.len() <= 10),
                _ => {}
            }
        }
    }
}

#[tokio::test]
async fn long_texts_are_split_within_the_limits() {
    let w = world().await;
    let paragraph =
        "Drain the node, wait for the queue to empty & check <the dashboard>. ".repeat(12);
    let long = vec![paragraph.trim(); 40].join("\n\n");
    let code: String = (0..300)
        .map(|i| format!("ssh edge-{i} 'sudo nginx -t && sudo systemctl reload nginx'\n"))
        .collect();
    let mut steps = vec![StepInput {
        title: "T".repeat(200),
        description: format!("{long}\n\n```sh\n{code}```\n\n{}", "&".repeat(5_000)),
        verification: code.clone(),
        est_minutes: 5,
        ..Default::default()
    }];
    steps.extend((0..150).map(|i| step(&format!("Step number {i}"), 1)));
    let rb = w
        .vigilo
        .create_runbook(
            &w.alice,
            RunbookInput {
                title: "A very long runbook".into(),
                steps,
                ..Default::default()
            },
            CreateRunbook {
                publish: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let run = w.say(w.alice, &format!("run {}", rb.key)).await;
    // The header, the step's text over several messages, then the card with the buttons.
    assert!(run.len() > 3, "{} messages", run.len());
    assert_within_limits(&run);
    let card = run.last().unwrap();
    assert!(header(card).chars().count() <= 150);
    let parts = &run[1..run.len() - 1];
    let count = |f: fn(&Block) -> bool| -> usize {
        parts
            .iter()
            .flat_map(|r| r.blocks.iter())
            .filter(|b| f(b))
            .count()
    };
    assert!(count(|b| matches!(b, Block::Section(_))) > 5);
    assert!(count(|b| matches!(b, Block::Code(_))) > 2);
    assert!(
        parts
            .iter()
            .all(|p| p.anchor.is_none() && p.buttons().count() == 0)
    );
    // The card is the anchored message (it is updated in place) and keeps its buttons.
    assert!(card.anchor.is_some());
    assert_eq!(
        button_ids(card),
        vec![ACTION_DONE, ACTION_SKIP, ACTION_FAIL, ACTION_NOTE]
    );

    let show = w.say(w.alice, &format!("show {}", rb.key)).await;
    assert!(show.len() > 1, "show should spread over several messages");
    assert_within_limits(&show);
    assert!(show.iter().all(|r| r.visibility == Visibility::Private));

    let mut last = Vec::new();
    for _ in 0..151 {
        last = w.say(w.alice, "skip not today").await;
    }
    assert_within_limits(&last);
    assert!(last.iter().any(|r| {
        r.text
            .starts_with("EX-00001 completed: 0 done, 151 skipped")
    }));
    let exec = w.vigilo.execution(&w.alice, ex(1)).await.unwrap();
    assert!(exec.status.is_sealed());
    let status = w.say(w.alice, "status EX-00001").await;
    assert_within_limits(&status);
}

#[tokio::test]
async fn engine_futures_can_be_spawned() {
    fn assert_send<T: Send>(t: T) -> T {
        t
    }
    let w = world().await;
    let ctx = w.ctx(w.alice);
    let engine = w.engine.clone();
    let handle = tokio::spawn(async move {
        let a = assert_send(engine.handle_text(&ctx, "list")).await;
        let b = assert_send(engine.click(&ctx, ACTION_DONE, "EX-00001:1", None)).await;
        (a, b)
    });
    let (list, click) = handle.await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(
        click[0]
            .text
            .contains("No execution EX-00001 in this workspace"),
        "{}",
        click[0].text
    );
}
