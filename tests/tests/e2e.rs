//! End-to-end stories across the crates, on one database: the library
//! (`vigilo_core::service::Vigilo` over a real store) sets a workspace up, the `vigilo` command
//! line (its library entry point, `vigilo_bot::cli::run`, in this process) adds the approver
//! and publishes the runbook, the Slack surface (`vigilo_bot::slack::SlackServer` on loopback,
//! requests signed with Slack's scheme, a fake Web API) runs it to the end, and the audit trail
//! is checked by the library and by `vigilo audit verify`; the run's report, written by `vigilo
//! exec report` in md and json, verifies until the trail behind it is edited.
//!
//! The story runs on an SQLite file, and on PostgreSQL when `VIGILO_TEST_PG_URL` names an admin
//! URL (e.g. `postgres://postgres@127.0.0.1:5432/postgres`); without it the PostgreSQL story
//! writes `SKIPPED …` to the test process's stderr, past the harness's output capture, and
//! returns. The store's `pg_conformance` suite fails a CI run that lacks the variable.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::sync::Arc;

use clap::Parser;
use support::{Call, FakeSlack, SECRET, SlackClient, SlackUser};
use vigilo_bot::cli::{self, Cli};
use vigilo_bot::slack::{SlackOptions, SlackServer};
use vigilo_core::audit::{AuditEntry, Origin, Surface};
use vigilo_core::execution::{ExecutionStatus, StepStatus};
use vigilo_core::ids::{Key, KeyKind, WorkspaceId};
use vigilo_core::roles::WorkspaceRole;
use vigilo_core::runbook::{RunbookInput, StepInput};
use vigilo_core::service::{
    AuditFilter, AuditVerdict, CreateRunbook, NewMember, ReportVerdict, Vigilo, Who,
};
use vigilo_core::store::Store;
use vigilo_core::workspace::ChatIdentity;
use vigilo_store::postgres::{PgOptions, PgStore, ScratchDatabase};
use vigilo_store::{SqliteOptions, SqliteStore};

/// The variable naming the admin URL of the PostgreSQL test server.
const URL_VAR: &str = "VIGILO_TEST_PG_URL";

/// The principal the library's own actions record (surface `api`).
const LIBRARY_PRINCIPAL: &str = "e2e-setup";

/// The Slack team the workspace is linked to.
const TEAM: &str = "T0ACME";

/// Runs `vigilo --db DB --workspace acme ARGS…` in this process; the contract's exit code.
async fn vigilo(db: &str, args: &[&str]) -> u8 {
    let mut argv = vec!["vigilo", "--db", db, "--workspace", "acme"];
    argv.extend_from_slice(args);
    let parsed = Cli::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("`{}` does not parse: {e}", argv.join(" ")));
    match cli::run(parsed).await {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "`{}`: {e}", argv.join(" "));
            e.exit_code()
        }
    }
}

/// The audit entries of the workspace, oldest first.
async fn trail(vigilo: &Vigilo, who: &Who) -> Vec<AuditEntry> {
    vigilo
        .audit_entries(
            who,
            AuditFilter {
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap()
}

/// The one entry with `action`, if there is exactly one.
fn only<'a>(trail: &'a [AuditEntry], action: &str) -> &'a AuditEntry {
    let found: Vec<&AuditEntry> = trail.iter().filter(|e| e.action == action).collect();
    assert_eq!(found.len(), 1, "one {action} entry in {trail:#?}");
    found[0]
}

fn surface(e: &AuditEntry) -> Surface {
    e.origin
        .as_ref()
        .unwrap_or_else(|| panic!("no origin on {e:#?}"))
        .surface
}

fn principal(e: &AuditEntry) -> &str {
    e.origin
        .as_ref()
        .map(|o| o.principal.as_str())
        .unwrap_or_default()
}

/// What a story leaves behind for the tamper check.
struct Told {
    lib: Vigilo,
    workspace: WorkspaceId,
    /// The `seq` of the approval's entry.
    approval: u64,
    /// The run's reports (`EX-00001.md`, `EX-00001.json`), written by `vigilo exec report`.
    reports: tempfile::TempDir,
}

impl Told {
    fn report_files(&self) -> [String; 2] {
        ["md", "json"].map(|f| {
            self.reports
                .path()
                .join(format!("EX-00001.{f}"))
                .display()
                .to_string()
        })
    }
}

/// The story: `db` is what `--db` takes for `store`, the store the library uses.
async fn story(store: Arc<dyn Store>, db: &str) -> Told {
    // (a) The library: a workspace linked to Slack, an operator, and a draft runbook whose
    // second step is gated on the `dba` team role.
    let lib = Vigilo::new(store).acting_via(Origin::new(Surface::Api, LIBRARY_PRINCIPAL));
    let (ws, olivia) = lib
        .create_workspace("acme", "olivia", "Olivia Owner")
        .await
        .unwrap();
    let olivia = Who::new(ws.id, olivia.id);
    lib.link_slack_team(&olivia, TEAM).await.unwrap();
    let (otto, _) = lib
        .add_member(
            &olivia,
            NewMember {
                handle: "otto".into(),
                display_name: "Otto Operator".into(),
                role: WorkspaceRole::Operator,
                team_roles: vec![],
                chat_identity: Some(ChatIdentity::slack("U0OTTO")),
            },
        )
        .await
        .unwrap();
    let otto = Who::new(ws.id, otto.id);
    let step = |title: &str, gated: bool| StepInput {
        title: title.into(),
        description: format!("{title}, then say so."),
        owner_role: if gated { "dba".into() } else { String::new() },
        est_minutes: 5,
        expected_outcome: "It is done.".into(),
        requires_approval: gated,
        is_destructive: gated,
        ..Default::default()
    };
    let rb = lib
        .create_runbook(
            &olivia,
            RunbookInput {
                title: "Fail over the database".into(),
                description: "Move the primary to the standby.".into(),
                category: "db".into(),
                steps: vec![
                    step("Drain writes", false),
                    step("Promote the standby", true),
                    step("Check replication", false),
                ],
            },
            CreateRunbook::default(),
        )
        .await
        .unwrap();
    let rb_key = rb.key;
    assert_eq!(rb_key, Key::new(KeyKind::Runbook, 1));
    assert!(!rb.is_published, "created as a draft");

    // (b) The command line on the same database: the approver joins with their Slack id, and
    // the runbook is published.
    let add = [
        "--as",
        "olivia",
        "user",
        "add",
        "abe",
        "--role",
        "operator",
        "--team-role",
        "dba",
        "--slack-id",
        "U0ABE",
    ];
    assert_eq!(vigilo(db, &add).await, 0, "user add");
    assert_eq!(
        vigilo(db, &["--as", "olivia", "runbook", "publish", "RB-00001"]).await,
        0,
        "runbook publish"
    );
    // Refused by a rule through the same entry point (exit 4: otto may not add members), so a
    // zero above means something.
    assert_eq!(
        vigilo(
            db,
            &["--as", "otto", "user", "add", "eve", "--role", "owner"]
        )
        .await,
        4,
        "an operator adding an owner is denied"
    );
    let abe = lib
        .members(&olivia)
        .await
        .unwrap()
        .into_iter()
        .find(|(u, _)| u.handle.as_str() == "abe")
        .map(|(u, _)| Who::new(ws.id, u.id))
        .expect("abe was added by the CLI");
    assert!(
        lib.runbook(&otto, rb_key).await.unwrap().is_published,
        "published by the CLI"
    );

    // (c) Slack over the same store: otto runs the runbook, abe approves the gated step by
    // button (otto cannot: the approver must differ), otto finishes.
    let fake = FakeSlack::start().await;
    let server = SlackServer::bind(
        Vigilo::new(lib.store().clone()),
        SlackOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            signing_secret: SECRET.into(),
            bot_token: "xoxb-test-token".into(),
            slack_api_url: fake.url.clone(),
            ..SlackOptions::default()
        },
    )
    .await
    .unwrap();
    let client = SlackClient::new(server.local_addr(), SECRET);
    let otto_slack = SlackUser::new(TEAM, "U0OTTO", "C0OPS");
    let abe_slack = SlackUser::new(TEAM, "U0ABE", "C0OPS");
    let ex1 = Key::new(KeyKind::Execution, 1);

    let from = fake.count();
    let a = client
        .post("/slack/commands", &otto_slack.command("run RB-00001"))
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let posts = fake.wait_calls(from, "chat.postMessage", 2).await;
    let card1 = posts[1].clone();
    assert!(card1.text().contains("Step 1/3"), "{}", card1.text());

    let card2 = click_for_next_card(&fake, &client, &otto_slack, &card1, "vigilo.done").await;
    assert!(card2.text().contains("Step 2/3"), "{}", card2.text());
    assert!(card2.button("vigilo.approve").is_some(), "{card2:#?}");

    // otto started the execution, so otto may not approve: a private refusal, no approval.
    let from = fake.count();
    client
        .post(
            "/slack/interactions",
            &otto_slack.click(&card2, "vigilo.approve"),
        )
        .await;
    let refusal = fake.wait_calls(from, "chat.postEphemeral", 1).await;
    assert_eq!(refusal[0].body["user"], "U0OTTO");
    let exec = lib.execution(&otto, ex1).await.unwrap();
    assert!(exec.steps[1].approvals.is_empty(), "{:?}", exec.steps[1]);

    let from = fake.count();
    let a = client
        .post(
            "/slack/interactions",
            &abe_slack.click(&card2, "vigilo.approve"),
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    let updates = fake.wait_calls(from, "chat.update", 1).await;
    assert!(
        updates[0].text().contains("APPROVED"),
        "{}",
        updates[0].text()
    );

    let card3 = click_for_next_card(&fake, &client, &otto_slack, &card2, "vigilo.done").await;
    assert!(card3.text().contains("Step 3/3"), "{}", card3.text());
    let summary = click_for_next_card(&fake, &client, &otto_slack, &card3, "vigilo.done").await;
    assert!(summary.text().contains("Summary"), "{}", summary.text());
    server.shutdown().await.unwrap();

    let exec = lib.execution(&otto, ex1).await.unwrap();
    assert_eq!(exec.status, ExecutionStatus::Completed);
    let statuses: Vec<StepStatus> = exec.steps.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [StepStatus::Done; 3]);
    assert_eq!(exec.steps[1].approvals[0].by, abe.user);
    assert_eq!(exec.operator, otto.user);

    // (d) The trail: intact for the library and for `vigilo audit verify`, and each entry says
    // which surface and principal it came through.
    let AuditVerdict::Intact { entries, head } = lib.verify_audit(ws.id).await.unwrap() else {
        panic!("the chain is not intact");
    };
    assert!(head.is_some());
    assert_eq!(vigilo(db, &["audit", "verify"]).await, 0, "audit verify");

    let trail = trail(&lib, &olivia).await;
    assert_eq!(trail.len() as u64, entries, "{trail:#?}");
    for action in [
        "workspace.created",
        "workspace.slack_linked",
        "runbook.created",
    ] {
        let e = only(&trail, action);
        assert_eq!(surface(e), Surface::Api, "{e:#?}");
        assert_eq!(principal(e), LIBRARY_PRINCIPAL, "{e:#?}");
    }
    let cli_principal = vigilo_bot::principal::local_principal();
    let added: Vec<&AuditEntry> = trail
        .iter()
        .filter(|e| e.action == "member.added")
        .collect();
    assert_eq!(
        added.len(),
        2,
        "otto by the library, abe by the CLI: {added:#?}"
    );
    assert_eq!(surface(added[0]), Surface::Api, "{:#?}", added[0]);
    for e in [added[1], only(&trail, "runbook.published")] {
        assert_eq!(surface(e), Surface::Cli, "{e:#?}");
        assert_eq!(principal(e), cli_principal, "{e:#?}");
        assert_eq!(e.actor, Some(olivia.user), "{e:#?}");
    }
    let slack_actions = [
        ("execution.started", "U0OTTO"),
        ("execution.step_approved", "U0ABE"),
    ];
    for (action, user) in slack_actions {
        let e = only(&trail, action);
        assert_eq!(surface(e), Surface::Slack, "{e:#?}");
        assert_eq!(principal(e), format!("{TEAM}/{user}"), "{e:#?}");
    }
    let done: Vec<&AuditEntry> = trail
        .iter()
        .filter(|e| e.action == "execution.step_done")
        .collect();
    assert_eq!(done.len(), 3, "{trail:#?}");
    for e in done {
        assert_eq!(surface(e), Surface::Slack, "{e:#?}");
        assert_eq!(principal(e), format!("{TEAM}/U0OTTO"), "{e:#?}");
        assert_eq!(e.actor, Some(otto.user), "{e:#?}");
    }
    assert_eq!(
        trail.len(),
        // library: workspace, link, otto, runbook; CLI: abe, publish; Slack: start,
        // approval, three steps done.
        4 + 2 + 5,
        "no other entry (a refused approval writes none): {trail:#?}"
    );
    // (e) The run as evidence: its report, from the CLI, verifies in md and json.
    let reports = tempfile::tempdir().unwrap();
    let told = Told {
        approval: only(&trail, "execution.step_approved").seq,
        workspace: ws.id,
        lib,
        reports,
    };
    for (format, file) in ["md", "json"].iter().zip(told.report_files()) {
        let args = [
            "--as", "olivia", "exec", "report", "EX-00001", "--format", format, "-o", &file,
        ];
        assert_eq!(vigilo(db, &args).await, 0, "exec report --format {format}");
        assert_eq!(
            vigilo(db, &["audit", "verify", "--report", &file]).await,
            0,
            "{file}"
        );
    }
    let report = told.lib.execution_report(&olivia, ex1).await.unwrap();
    assert_eq!(report.steps[1].approvals[0].by, "abe");
    assert_eq!(report.steps[1].approvals[0].role, "dba");
    told
}

/// The statement that rewrites the target of the approval's entry behind Vigilo's back (run
/// after dropping the store's append-only trigger, as someone with the database's rights
/// would).
fn tamper_sql(told: &Told) -> String {
    format!(
        "UPDATE audit SET target = 'EX-00002' WHERE workspace_id = '{}' AND seq = {}",
        told.workspace, told.approval
    )
}

/// After `tamper_sql` ran: the library and `vigilo audit verify` (exit 7) both name the entry.
async fn tampering_is_found(told: &Told, db: &str) {
    match told.lib.verify_audit(told.workspace).await.unwrap() {
        AuditVerdict::Tampered(t) => assert_eq!(t.seq, told.approval, "{t:?}"),
        AuditVerdict::Intact { .. } => panic!("an edited audit row verified as intact"),
    }
    assert_eq!(vigilo(db, &["audit", "verify"]).await, 7, "audit verify");
    // The reports the approval is behind no longer verify.
    for file in told.report_files() {
        assert_eq!(
            vigilo(db, &["audit", "verify", "--report", &file]).await,
            7,
            "{file}"
        );
        let text = std::fs::read_to_string(&file).unwrap();
        let verdict = told.lib.verify_report(None, &text).await.unwrap();
        assert!(
            matches!(&verdict, ReportVerdict::Tampered { problem, .. } if problem.contains(&format!("entry {}", told.approval))),
            "{verdict:?}"
        );
    }
}

/// Clicks `action_id` on `card` as `user`, and returns the next message the bot posts.
async fn click_for_next_card(
    fake: &FakeSlack,
    client: &SlackClient,
    user: &SlackUser,
    card: &Call,
    action_id: &str,
) -> Call {
    let from = fake.count();
    let a = client
        .post("/slack/interactions", &user.click(card, action_id))
        .await;
    assert_eq!((a.status, a.body.as_str()), (200, ""), "{action_id}");
    fake.wait_calls(from, "chat.postMessage", 1).await[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_cli_and_slack_share_one_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vigilo.db");
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    let db = path.to_str().unwrap();
    let told = story(Arc::new(store), db).await;

    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch("DROP TRIGGER audit_no_update").unwrap();
    assert_eq!(c.execute(&tamper_sql(&told), []).unwrap(), 1);
    drop(c);
    tampering_is_found(&told, db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_cli_and_slack_share_one_postgres_database() {
    let admin = match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => {
            // Straight to stderr: the harness shows `eprintln!` only for failing tests.
            let line = format!(
                "SKIPPED e2e::library_cli_and_slack_share_one_postgres_database: needs \
                 {URL_VAR} (a PostgreSQL admin URL, e.g. \
                 postgres://postgres@127.0.0.1:5432/postgres)\n"
            );
            let _ = std::io::stderr().write_all(line.as_bytes());
            return;
        }
    };
    let db = ScratchDatabase::create(&admin).await.unwrap();
    let store = PgStore::connect(db.url(), PgOptions::default().max_connections(4))
        .await
        .unwrap();
    let told = story(Arc::new(store), db.url()).await;

    let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    client
        .batch_execute("DROP TRIGGER audit_no_update_or_delete ON audit")
        .await
        .unwrap();
    assert_eq!(client.execute(&tamper_sql(&told), &[]).await.unwrap(), 1);
    drop(client);
    let _ = connection.await;
    tampering_is_found(&told, db.url()).await;

    drop(told);
    db.drop_database().await;
}
