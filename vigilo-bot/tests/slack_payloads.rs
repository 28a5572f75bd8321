//! Real Slack request payloads (`tests/testdata/slack/`, taken from Slack's own SDK test suites
//! and other public projects; see its README) sent to the real server over loopback, signed
//! with Slack's scheme: every one is accepted or answered with a 200, never refused as
//! malformed. An org-wide (Enterprise Grid) install, where `team` is `null`, reaches the
//! workspace of the user's team and acts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use support::*;
use vigilo_bot::slack::verify;
use vigilo_core::execution::StepStatus;
use vigilo_core::ids::{Key, KeyKind};
use vigilo_core::roles::WorkspaceRole;
use vigilo_store::SqliteOptions;

fn testdata(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata/slack")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file of the test data is one of the cases below; a new file fails this test until it
/// is given one.
#[test]
fn every_test_data_file_is_a_case() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/slack");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "README.md",
            "block_actions_remote_function_no_response_url.json",
            "block_actions_thread_ephemeral_state.json",
            "signature_vectors.json",
            "slash_command_docs_example.form.txt",
            "slash_command_org_app.form.txt",
            "view_submission_modal_inputs.json",
            "view_submission_org_app_team_null.json",
        ]
    );
}

/// The repository's copy is the shared test data, file for file and byte for byte, so a payload
/// added there fails [`every_test_data_file_is_a_case`] here until it is a case. The shared
/// folder sits beside the clone (`../shared`); CI always has it, so there its absence fails.
#[test]
fn the_copy_matches_the_shared_test_data() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shared = root.join("shared/testdata/slack");
    if !shared.is_dir() {
        assert!(
            std::env::var("CI").is_err(),
            "{} is missing: CI runs beside a copy of shared/",
            shared.display()
        );
        eprintln!("SKIPPED: {} is not here", shared.display());
        return;
    }
    let list = |dir: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let ours = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/slack");
    assert_eq!(list(&shared), list(&ours));
    for name in list(&shared) {
        assert_eq!(
            std::fs::read(shared.join(&name)).unwrap(),
            std::fs::read(ours.join(&name)).unwrap(),
            "{name} differs from the shared copy"
        );
    }
}

#[test]
fn signature_vectors_verify() {
    let v: Value = serde_json::from_str(&testdata("signature_vectors.json")).unwrap();
    let vectors = v["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 3);
    for vector in vectors {
        let secret = vector["signing_secret"].as_str().unwrap();
        let ts: i64 = vector["timestamp"].as_str().unwrap().parse().unwrap();
        let body = vector["body"].as_str().unwrap().as_bytes();
        let signature = vector["signature"].as_str().unwrap();
        assert_eq!(
            verify::sign(secret, ts, body),
            signature,
            "{}",
            vector["source"]
        );
        let mut headers = HeaderMap::new();
        headers.insert(verify::TIMESTAMP_HEADER, HeaderValue::from(ts));
        headers.insert(
            verify::SIGNATURE_HEADER,
            HeaderValue::from_str(signature).unwrap(),
        );
        assert!(verify::verify(secret, &headers, body, ts + 2).is_ok());
        assert!(verify::verify(secret, &headers, b"tampered", ts + 2).is_err());
        assert!(verify::verify("wrong-secret", &headers, body, ts + 2).is_err());
        assert!(verify::verify(secret, &headers, body, ts + 301).is_err());
        if let Some(wrong) = vector["negative_cases"]["wrong_secret"].as_str() {
            assert!(verify::verify(wrong, &headers, body, ts).is_err());
        }
    }
}

struct Org {
    _dir: tempfile::TempDir,
    vigilo: vigilo_core::service::Vigilo,
    acme: Space,
    fake: FakeSlack,
    server: vigilo_bot::slack::SlackServer,
    client: SlackClient,
}

/// A workspace linked to the team `T111` of the org-wide test payloads, with their users
/// (`U111`, `W111`) as members, and one published runbook of two steps.
async fn org() -> Org {
    let dir = tempfile::tempdir().unwrap();
    let vigilo = open_sqlite(dir.path(), SqliteOptions::default()).await;
    let acme = space(
        &vigilo,
        "acme",
        "T111",
        &[
            ("wendy", WorkspaceRole::Admin, &["sre"], "W111"),
            ("seratch", WorkspaceRole::Operator, &["sre"], "U111"),
        ],
    )
    .await;
    runbook(
        &vigilo,
        &acme.members["wendy"],
        "Restart the API",
        &[("Drain", false), ("Restart", false)],
    )
    .await;
    let fake = FakeSlack::start().await;
    let server = start_bot(vigilo.clone(), &fake).await;
    let client = SlackClient::new(server.local_addr(), SECRET);
    Org {
        _dir: dir,
        vigilo,
        acme,
        fake,
        server,
        client,
    }
}

#[tokio::test]
async fn every_real_payload_gets_a_200() {
    let o = org().await;
    for name in [
        "block_actions_thread_ephemeral_state.json",
        "block_actions_remote_function_no_response_url.json",
        "view_submission_modal_inputs.json",
        "view_submission_org_app_team_null.json",
    ] {
        let payload: Value = serde_json::from_str(&testdata(name)).unwrap();
        let a = o.client.post("/slack/interactions", &form(&payload)).await;
        assert_eq!(a.status, 200, "{name}: {a:?}");
        if name.starts_with("view_submission") {
            assert_eq!(a.body, "", "{name}: another app's modal is just closed");
        }
    }
    for name in [
        "slash_command_docs_example.form.txt",
        "slash_command_org_app.form.txt",
    ] {
        let a = o
            .client
            .post("/slack/commands", testdata(name).trim_end())
            .await;
        assert_eq!(a.status, 200, "{name}: {a:?}");
    }
    // The click on another app's button in T111 (a known team and user) is explained privately,
    // and so is the one from a workflow function (no `response_url`, no `trigger_id`); the
    // org-wide command's word `test` is answered privately as an unknown command.
    let told = o.fake.wait_calls(0, "chat.postEphemeral", 3).await;
    let to = |user: &str| {
        told.iter()
            .find(|c| c.body["user"] == user)
            .unwrap_or_else(|| panic!("nothing told to {user}: {told:?}"))
            .clone()
    };
    assert_eq!(to("U111").channel(), "C111");
    assert!(to("U111").text().contains("not one of Vigilo"), "{told:?}");
    assert_eq!(to("U03E94MK0").channel(), "D065ZJQQQAE");
    assert!(
        to("W111").text().contains("Unknown command `test`"),
        "{told:?}"
    );
    // The unknown team of Slack's documentation example is told how to get access.
    let a = o
        .client
        .post(
            "/slack/commands",
            testdata("slash_command_docs_example.form.txt").trim_end(),
        )
        .await;
    assert!(a.body.contains("link-slack"), "{a:?}");
    // The org-wide command's user is known: `list` runs in the workspace of team T111.
    let from = o.fake.count();
    let a = o
        .client
        .post(
            "/slack/commands",
            &testdata("slash_command_org_app.form.txt")
                .trim_end()
                .replace("text=test", "text=list"),
        )
        .await;
    assert_eq!(a.status, 200);
    o.fake
        .wait_for(from, "the list of runbooks", |calls| {
            calls
                .iter()
                .any(|c| c.method == "chat.postEphemeral" && c.text().contains("Restart the API"))
        })
        .await;
    o.server.shutdown().await.unwrap();
}

/// The reason modal submitted from an org-wide install, shaped like Slack's own
/// `view_submission_org_app_team_null.json`: `team` is null, the team is in `user.team_id` and
/// `view.team_id`. It skips the step in the workspace of team T111.
#[tokio::test]
async fn an_org_wide_install_submission_acts_in_the_users_workspace() {
    let o = org().await;
    let wendy = SlackUser::new("T111", "W111", "C111");
    let from = o.fake.count();
    o.client
        .post("/slack/commands", &wendy.command("run RB-00001"))
        .await;
    let posts = o.fake.wait_calls(from, "chat.postMessage", 2).await;
    let card = posts[1].clone();
    // The click itself comes from the org-wide install too: no `team`, no `response_url`.
    let mut click = wendy.click_payload(
        "vigilo.skip",
        &card.button("vigilo.skip").unwrap(),
        card.ts.as_deref().unwrap(),
        card.body["thread_ts"].as_str(),
    );
    click["team"] = Value::Null;
    click.as_object_mut().unwrap().remove("response_url");
    click["is_enterprise_install"] = json!(true);
    click["enterprise"] = json!({ "id": "E111", "name": "TestOrg" });
    let a = o.client.post("/slack/interactions", &form(&click)).await;
    assert_eq!(a.status, 200, "{a:?}");
    let opened = o.fake.wait_calls(from, "views.open", 1).await[0].clone();

    let mut payload: Value =
        serde_json::from_str(&testdata("view_submission_org_app_team_null.json")).unwrap();
    let mut view = opened.body["view"].clone();
    view["id"] = json!("V111");
    view["team_id"] = json!("T111");
    view["app_installed_team_id"] = json!("E111");
    view["state"] = json!({ "values": { "vigilo.reason": { "vigilo.reason": {
        "type": "plain_text_input", "value": "done by hand during the outage",
    } } } });
    payload["view"] = view;
    assert!(payload["team"].is_null());
    let a = o.client.post("/slack/interactions", &form(&payload)).await;
    assert_eq!(a.status, 200, "{a:?}");
    o.fake.wait_calls(from, "chat.update", 1).await;
    let exec = o
        .vigilo
        .execution(&o.acme.members["wendy"], Key::new(KeyKind::Execution, 1))
        .await
        .unwrap();
    assert_eq!(exec.steps[0].status, StepStatus::Skipped);
    assert_eq!(
        exec.steps[0].note.as_ref().map(|n| n.as_str()),
        Some("done by hand during the outage")
    );
    o.server.shutdown().await.unwrap();
}

/// A click on a button that asks for a reason, from a surface that sends no `trigger_id`
/// (Slack's `block_actions_remote_function_no_response_url.json` shape): no modal can open, so
/// the clicker is told privately how to type it instead, and nothing changes.
#[tokio::test]
async fn a_click_without_trigger_id_is_explained() {
    let o = org().await;
    let wendy = SlackUser::new("T111", "W111", "C111");
    let from = o.fake.count();
    o.client
        .post("/slack/commands", &wendy.command("run RB-00001"))
        .await;
    let card = o.fake.wait_calls(from, "chat.postMessage", 2).await[1].clone();
    let mut click = wendy.click_payload(
        "vigilo.fail",
        &card.button("vigilo.fail").unwrap(),
        card.ts.as_deref().unwrap(),
        None,
    );
    let obj = click.as_object_mut().unwrap();
    obj.remove("trigger_id");
    obj.remove("response_url");
    let a = o.client.post("/slack/interactions", &form(&click)).await;
    assert_eq!(a.status, 200, "{a:?}");
    let told = o.fake.wait_calls(from, "chat.postEphemeral", 1).await;
    assert!(told[0].text().contains("/runbook fail"), "{:?}", told[0]);
    assert!(o.fake.calls_of("views.open").is_empty());
    let exec = o
        .vigilo
        .execution(&o.acme.members["wendy"], Key::new(KeyKind::Execution, 1))
        .await
        .unwrap();
    assert_eq!(exec.steps[0].status, StepStatus::Pending);
    o.server.shutdown().await.unwrap();
}
