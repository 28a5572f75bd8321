//! The corpus of real-world-shaped runbooks (`tests/corpus/`: long checklists with lazy and
//! explicit numbering, deep nested lists, tables, reference links, a 56,000-character code block,
//! a single 20,000-character step, Unicode with full-width punctuation) walked end to end:
//!
//! - in the console (the real `run_with` over a SQLite file, typed commands, `/as` for the
//!   approvers), and
//! - in Slack (the real server on loopback, signed requests, a fake Web API recording every
//!   call), clicking the buttons of the posted cards.
//!
//! Every outgoing Slack message is checked against Slack's limits (50 blocks, 3,000 characters
//! per section, 2,000 per field, 150 per header, 75 per button, 10,000 over all text fields),
//! and every step's text is checked to reach the user in order, with each list number and link
//! target exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;
use vigilo_bot::chat::markdown::{to_mrkdwn, to_plain};
use vigilo_bot::console::{ConsoleOptions, run_with};
use vigilo_core::execution::ExecutionStatus;
use vigilo_core::ids::{Key, KeyKind};
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::runbook::file;
use vigilo_core::runbook::{Runbook, StepInput};
use vigilo_core::service::{CreateRunbook, Vigilo, Who};
use vigilo_store::SqliteOptions;

const CORPUS: [&str; 4] = [
    "postgres-failover.md",
    "k8s-node-drain.md",
    "incident-comms-ja.md",
    "bulk-restore.md",
];

fn corpus_file(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Imports every corpus file as `who`, published as the file says.
async fn import_corpus(vigilo: &Vigilo, who: &Who) -> Vec<Runbook> {
    let mut out = Vec::new();
    for name in CORPUS {
        let parsed = file::parse(name, &corpus_file(name)).unwrap();
        let rb = vigilo
            .create_runbook(
                who,
                parsed.input,
                CreateRunbook {
                    publish: parsed.published.unwrap_or(false),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(rb.is_published, "{name}");
        out.push(rb);
    }
    // The corpus has what it claims.
    let longest = out
        .iter()
        .flat_map(|rb| rb.body.steps.iter())
        .map(|s| s.description.as_str().chars().count())
        .max()
        .unwrap();
    assert!(
        longest > 50_000,
        "the longest step has {longest} characters"
    );
    let restore = &out[3].body.steps[0];
    assert!(restore.description.as_str().chars().count() >= 20_000);
    out
}

/// Lines of a rendering without what splitting may legitimately repeat or reshape: code
/// fences, table rules, and a table header seen before (each chunk of a table repeats it).
fn content_lines(rendered: &str) -> Vec<String> {
    let lines: Vec<&str> = rendered.lines().collect();
    let is_rule = |l: &str| {
        let t = l.trim();
        !t.is_empty() && t.chars().all(|c| matches!(c, '-' | '+' | ' ')) && t.contains("-+-")
    };
    let mut seen_headers: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        let next_is_rule = lines.get(i + 1).is_some_and(|n| is_rule(n));
        if next_is_rule {
            let header = line.to_owned();
            if seen_headers.contains(&header) {
                i += 2;
                continue;
            }
            seen_headers.push(header);
        }
        if !line.is_empty() && !is_rule(line) && !line.trim_start_matches('`').is_empty() {
            out.push(line.to_owned());
        }
        i += 1;
    }
    out
}

fn tokens(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .flat_map(|l| l.split_whitespace())
        .filter(|t| !t.chars().all(|c| c == '`'))
        .map(|t| t.trim_start_matches("```").to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// `12.` (an ordered list marker).
fn list_numbers(tokens: &[String]) -> Vec<String> {
    tokens
        .iter()
        .filter(|t| {
            t.len() > 1 && t.ends_with('.') && t[..t.len() - 1].bytes().all(|b| b.is_ascii_digit())
        })
        .cloned()
        .collect()
}

/// Every link target in the text, in order.
fn urls(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("https://") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '|' | ')' | '>'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

/// The step's text reached the user: every word in order, each list number and link target
/// exactly once and in order.
fn assert_text_arrived(what: &str, reference: &str, shown: &str) {
    let want = tokens(&content_lines(reference));
    let got = tokens(&content_lines(shown));
    let mut at = 0;
    for (i, t) in want.iter().enumerate() {
        match got[at..].iter().position(|g| g == t) {
            Some(p) => at += p + 1,
            None => panic!(
                "{what}: word {i} of {} ({t:?}) is missing or out of order; around it: {:?}",
                want.len(),
                &want[i.saturating_sub(5)..(i + 5).min(want.len())]
            ),
        }
    }
    let (numbers, wanted) = (list_numbers(&got), list_numbers(&want));
    assert!(
        contains_run(&numbers, &wanted),
        "{what}: list numbers {wanted:?} not shown as such in {numbers:?}"
    );
    let (links, wanted) = (urls(shown), urls(reference));
    assert!(
        contains_run(&links, &wanted),
        "{what}: link targets {wanted:?} not shown as such in {links:?}"
    );
}

/// Whether `needle` appears in `haystack` as one unbroken run (so once, in order, nothing
/// repeated or lost in between).
fn contains_run(haystack: &[String], needle: &[String]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Who approves a step of the corpus: the member holding its owner role.
fn approver_for(role: &str) -> &'static str {
    match role {
        "dba" => "carol",
        _ => "bob",
    }
}

#[tokio::test]
async fn the_corpus_walks_in_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let vigilo = open_sqlite(dir.path(), SqliteOptions::default()).await;
    // The first start seeds the demo workspace (alice, bob with sre, carol with dba, dave).
    let mut out = Vec::new();
    run_with(
        vigilo.clone(),
        ConsoleOptions::default(),
        "/quit\n".as_bytes(),
        &mut out,
    )
    .await
    .unwrap();
    let ws = vigilo.workspace_by_slug("acme").await.unwrap();
    let (alice, _) = vigilo.member(ws.id, "alice").await.unwrap();
    let alice = Who::new(ws.id, alice.id);
    let runbooks = import_corpus(&vigilo, &alice).await;

    for rb in &runbooks {
        let mut script = format!("run {}\n", rb.key);
        for s in &rb.body.steps {
            if s.requires_approval {
                script.push_str(&format!(
                    "/as {}\napprove\n/as alice\n",
                    approver_for(s.owner_role.as_str())
                ));
            }
            script.push_str("done\n");
        }
        script.push_str("/quit\n");
        let mut out = Vec::new();
        run_with(
            vigilo.clone(),
            ConsoleOptions {
                user: Some("alice".into()),
                ..Default::default()
            },
            script.as_bytes(),
            &mut out,
        )
        .await
        .unwrap();
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        let n = rb.body.steps.len();
        for (i, s) in rb.body.steps.iter().enumerate() {
            // The step's messages: from its first title line to its card's buttons.
            let title = format!("== Step {}/{n} · ", i + 1);
            let start = lines
                .iter()
                .position(|l| l.contains(&title))
                .unwrap_or_else(|| panic!("{}: no {title} in\n{out}", rb.key));
            let end = start
                + lines[start..]
                    .iter()
                    .position(|l| l.contains("] Done  ["))
                    .unwrap_or_else(|| panic!("{}: step {} has no Done button", rb.key, i + 1));
            let shown = lines[start..=end].join("\n");
            assert_text_arrived(
                &format!("console {} step {}", rb.key, i + 1),
                &to_plain(s.description.as_str()),
                &shown,
            );
        }
        let exec = vigilo
            .list_executions(&alice, Some(rb.key), Default::default())
            .await
            .unwrap()
            .remove(0);
        assert_eq!(
            exec.status,
            ExecutionStatus::Completed,
            "{}:\n{out}",
            rb.key
        );
    }
}

/// Checks one Web API call against Slack's limits.
fn assert_within_slack_limits(call: &Call) {
    let body = &call.body;
    let blocks = body["blocks"].as_array().cloned().unwrap_or_default();
    assert!(
        blocks.len() <= 50,
        "{} blocks in {}",
        blocks.len(),
        call.method
    );
    let mut total = body["text"].as_str().map_or(0, |t| t.chars().count());
    for b in &blocks {
        total += text_chars(b);
        match b["type"].as_str() {
            Some("header") => assert!(chars(&b["text"]["text"]) <= 150),
            Some("section") => {
                assert!(chars(&b["text"]["text"]) <= 3_000, "a section over 3,000");
                for f in b["fields"].as_array().into_iter().flatten() {
                    assert!(chars(&f["text"]) <= 2_000, "a field over 2,000");
                }
            }
            Some("actions") => {
                for e in b["elements"].as_array().into_iter().flatten() {
                    assert!(chars(&e["text"]["text"]) <= 75, "a button over 75");
                }
            }
            _ => {}
        }
    }
    assert!(
        total <= 10_000,
        "{} carries {total} characters of text",
        call.method
    );
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

/// The characters of every `text` string in a block, however deep.
fn text_chars(v: &Value) -> usize {
    match v {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) if k == "text" => s.chars().count(),
                other => text_chars(other),
            })
            .sum(),
        Value::Array(items) => items.iter().map(text_chars).sum(),
        _ => 0,
    }
}

/// The `mrkdwn` of the section blocks of a message (no header, fields or small print).
fn section_texts(call: &Call) -> String {
    call.body["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "section")
        .filter_map(|b| b["text"]["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn header_of(call: &Call) -> String {
    call.body["blocks"][0]["text"]["text"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// Whether `call` posts the card of a step titled `title…` (the message with the buttons).
fn is_card(call: &Call, title: &str) -> bool {
    call.method == "chat.postMessage"
        && call.button("vigilo.done").is_some()
        && header_of(call).starts_with(title)
}

/// Waits until the bot has been quiet for a while (every follow-up of an action posted).
async fn settle(fake: &FakeSlack) {
    let deadline = Instant::now() + WAIT;
    let mut last = fake.count();
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let now = fake.count();
        if now != last {
            last = now;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() > Duration::from_millis(300) {
            return;
        }
    }
}

#[tokio::test]
async fn the_corpus_walks_in_slack_within_the_limits() {
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
        ],
    )
    .await;
    let runbooks = import_corpus(&vigilo, &acme.members["dave"]).await;
    let fake = FakeSlack::start().await;
    let server = start_bot(vigilo.clone(), &fake).await;
    let client = SlackClient::new(server.local_addr(), SECRET);
    let users: HashMap<&str, SlackUser> = [
        ("dave", SlackUser::new("T0ACME", "U0DAVE", "C0OPS")),
        ("bob", SlackUser::new("T0ACME", "U0BOB", "C0OPS")),
        ("carol", SlackUser::new("T0ACME", "U0CAROL", "C0OPS")),
    ]
    .into();
    let dave = &users["dave"];

    for (r, rb) in runbooks.iter().enumerate() {
        // `show` spreads over several private messages, each within the limits.
        let from = fake.count();
        let a = client
            .post(
                "/slack/commands",
                &dave.command(&format!("show {}", rb.key)),
            )
            .await;
        assert_eq!(a.status, 200);
        fake.wait_for(from, "the last page of show", |calls| {
            calls.iter().any(|c| {
                c.method == "chat.postEphemeral" && c.text().contains("Start it here with")
            })
        })
        .await;
        settle(&fake).await;
        let shown: Vec<Call> = fake.calls().into_iter().skip(from).collect();
        assert!(!shown.is_empty());
        assert!(shown.iter().all(|c| c.method == "chat.postEphemeral"));
        let all: String = shown
            .iter()
            .map(section_texts)
            .collect::<Vec<_>>()
            .join("\n");
        for (i, s) in rb.body.steps.iter().enumerate() {
            assert_text_arrived(
                &format!("show {} step {}", rb.key, i + 1),
                &to_mrkdwn(s.description.as_str()),
                &all,
            );
        }

        // The walk.
        let from = fake.count();
        let a = client
            .post("/slack/commands", &dave.command(&format!("run {}", rb.key)))
            .await;
        assert_eq!(a.status, 200);
        fake.wait_for(from, "the first card", |calls| {
            calls
                .iter()
                .any(|c| is_card(c, &format!("Step 1/{} · ", rb.body.steps.len())))
        })
        .await;
        settle(&fake).await;
        let n = rb.body.steps.len();
        let mut since = from;
        for (i, s) in rb.body.steps.iter().enumerate() {
            let title = format!("Step {}/{n} · ", i + 1);
            let posts: Vec<Call> = fake
                .calls()
                .into_iter()
                .skip(since)
                .filter(|c| c.method == "chat.postMessage" && header_of(c).starts_with(&title))
                .collect();
            assert!(
                !posts.is_empty(),
                "{}: no message for step {}",
                rb.key,
                i + 1
            );
            let card = posts.last().unwrap().clone();
            assert!(
                card.button("vigilo.done").is_some(),
                "the last message has the buttons"
            );
            assert!(
                posts[..posts.len() - 1]
                    .iter()
                    .all(|p| p.button("vigilo.done").is_none())
            );
            let thread = card.body["thread_ts"].as_str().map(str::to_owned);
            assert!(thread.is_some(), "step messages are in the run's thread");
            assert!(
                posts
                    .iter()
                    .all(|p| p.body["thread_ts"].as_str() == thread.as_deref())
            );
            let text: String = posts
                .iter()
                .map(section_texts)
                .collect::<Vec<_>>()
                .join("\n");
            assert_text_arrived(
                &format!("slack {} step {}", rb.key, i + 1),
                &to_mrkdwn(s.description.as_str()),
                &text,
            );
            since = fake.count();
            if s.requires_approval {
                let approver = &users[approver_for(s.owner_role.as_str())];
                let a = client
                    .post(
                        "/slack/interactions",
                        &approver.click(&card, "vigilo.approve"),
                    )
                    .await;
                assert_eq!(a.status, 200, "{a:?}");
                fake.wait_for(since, "the approved card", |calls| {
                    calls.iter().any(|c| {
                        c.method == "chat.update" && c.body["ts"].as_str() == card.ts.as_deref()
                    })
                })
                .await;
                settle(&fake).await;
                let updated = fake.calls_of("chat.update");
                let last = updated.last().unwrap();
                assert_eq!(
                    last.body["ts"].as_str(),
                    card.ts.as_deref(),
                    "the card is updated"
                );
                assert!(last.text().contains("APPROVED"), "{}", last.text());
            }
            let before = fake.count();
            let a = client
                .post("/slack/interactions", &dave.click(&card, "vigilo.done"))
                .await;
            assert_eq!(a.status, 200, "{a:?}");
            let next = if i + 1 < n {
                format!("Step {}/{n} · ", i + 2)
            } else {
                "Summary".to_owned()
            };
            fake.wait_for(before, "the next message", |calls| {
                calls
                    .iter()
                    .any(|c| c.method == "chat.postMessage" && header_of(c).starts_with(&next))
            })
            .await;
            settle(&fake).await;
            let update = fake
                .calls()
                .into_iter()
                .skip(before)
                .find(|c| c.method == "chat.update")
                .unwrap_or_else(|| panic!("{}: step {} card not updated", rb.key, i + 1));
            assert_eq!(update.body["ts"].as_str(), card.ts.as_deref());
            assert!(update.text().contains("Done"), "{}", update.text());
        }
        let exec = vigilo
            .execution(
                &acme.members["dave"],
                Key::new(KeyKind::Execution, r as u64 + 1),
            )
            .await
            .unwrap();
        assert_eq!(exec.status, ExecutionStatus::Completed, "{}", rb.key);
    }
    let calls = fake.calls();
    assert!(calls.len() > 50);
    for c in &calls {
        assert!(!c.method.contains("rejected"), "{}", c.method);
        assert_within_slack_limits(c);
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_runbook_without_steps_is_refused_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let vigilo = open_sqlite(dir.path(), SqliteOptions::default()).await;
    let acme = space(
        &vigilo,
        "acme",
        "T0ACME",
        &[("dave", WorkspaceRole::Admin, &[], "U0DAVE")],
    )
    .await;
    let dave = acme.members["dave"];
    // A published file without steps is refused, naming the file and the line.
    let text = "+++\ntitle = \"Notes\"\npublished = true\n+++\n\nJust notes, no `## 1.` heading.\n";
    let e = file::parse("notes.md", text).unwrap_err().to_string();
    assert!(e.starts_with("notes.md:3: "), "{e}");
    assert!(e.contains("no steps") && e.contains("## 1. Title"), "{e}");
    // As a draft it is saved, but cannot be published or started (not even rehearsed).
    let draft = file::parse("notes.md", &text.replace("true", "false")).unwrap();
    let rb = vigilo
        .create_runbook(&dave, draft.input.clone(), CreateRunbook::default())
        .await
        .unwrap();
    let rb2 = vigilo
        .create_runbook(&dave, draft.input.clone(), CreateRunbook::default())
        .await
        .unwrap();
    let e = vigilo.set_published(&dave, rb.key, true).await.unwrap_err();
    assert!(e.to_string().contains("has no steps"), "{e}");
    let e = vigilo
        .create_runbook(
            &dave,
            draft.input,
            CreateRunbook {
                publish: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("has no steps"), "{e}");

    // Starting checks the steps before anything else (publication included), so a runbook
    // published before this rule, with no steps, is refused exactly like the draft below.
    // In Slack: publish and a rehearsal are answered privately with the same reason.
    let fake = FakeSlack::start().await;
    let server = start_bot(vigilo.clone(), &fake).await;
    let client = SlackClient::new(server.local_addr(), SECRET);
    let user = SlackUser::new("T0ACME", "U0DAVE", "C0OPS");
    for cmd in [
        format!("publish {}", rb2.key),
        format!("run {}", rb.key),
        format!("run {} rehearsal", rb.key),
    ] {
        let from = fake.count();
        client.post("/slack/commands", &user.command(&cmd)).await;
        let told = fake.wait_calls(from, "chat.postEphemeral", 1).await;
        assert!(
            told[0].text().contains("has no steps"),
            "{cmd}: {}",
            told[0].text()
        );
    }
    assert!(
        fake.calls_of("chat.postMessage").is_empty(),
        "nothing public"
    );
    server.shutdown().await.unwrap();
    // A runbook with steps is unaffected.
    let ok = vigilo
        .create_runbook(
            &dave,
            vigilo_core::runbook::RunbookInput {
                title: "One step".into(),
                steps: vec![StepInput {
                    title: "Do it".into(),
                    est_minutes: 1,
                    ..Default::default()
                }],
                ..Default::default()
            },
            CreateRunbook {
                publish: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(ok.is_published);
}
