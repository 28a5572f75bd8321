//! Tenancy of people through the binary, tried as a hostile tenant would: what one workspace's
//! admins do to a person changes only their own workspace's view of that person; a Slack
//! identity binds to the workspace's linked team; runbook owners are operators or above;
//! `user remove` off-boards; every entry names the surface and the principal behind it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use cli_support::{Env, path_str, simple};
use serde_json::Value;

/// `user list --json` of the workspace `ws`, acting as `user`: handle → member document.
fn members(env: &Env, user: &str, ws: &str) -> Vec<Value> {
    env.json(Some(user), &["--workspace", ws, "user", "list"])
        .as_array()
        .unwrap()
        .clone()
}

fn member<'a>(list: &'a [Value], handle: &str) -> &'a Value {
    list.iter()
        .find(|m| m["handle"] == handle)
        .unwrap_or_else(|| panic!("no @{handle} in {list:?}"))
}

/// acme (linked to Slack team T0ACME) is owned by olivia, mapped to U0OLI; evil is owned by
/// mallory.
fn two_tenants() -> Env {
    let env = Env::empty();
    env.ok(
        None,
        &[
            "init",
            "--workspace",
            "acme",
            "--owner",
            "olivia",
            "--name",
            "Olivia Ørsted",
        ],
    );
    env.ok(
        Some("olivia"),
        &["workspace", "link-slack", "acme", "--team", "T0ACME"],
    );
    env.ok(None, &["workspace", "create", "evil", "--owner", "mallory"]);
    env
}

/// The attack of the first wave: evil's owner "adds" acme's owner with a new name and a Slack
/// identity in acme's team. It used to rename olivia everywhere and let U0MAL act in acme as
/// olivia; now the team is refused, and without it the mapping stays in evil.
#[test]
fn another_workspace_cannot_take_over_a_person() {
    let env = two_tenants();
    let attack = env.fails(
        Some("mallory"),
        &[
            "--workspace",
            "evil",
            "user",
            "add",
            "olivia",
            "--role",
            "member",
            "--name",
            "pwned",
            "--slack-id",
            "U0MAL",
            "--slack-team",
            "T0ACME",
        ],
        6,
    );
    assert!(
        attack["message"]
            .as_str()
            .unwrap()
            .contains("not linked to a Slack team"),
        "{attack}"
    );

    // Without the team: evil gets its own view of olivia, and nothing else.
    env.ok(
        Some("mallory"),
        &[
            "--workspace",
            "evil",
            "user",
            "add",
            "olivia",
            "--role",
            "member",
            "--name",
            "pwned",
            "--slack-id",
            "U0MAL",
        ],
    );
    let evil = members(&env, "mallory", "evil");
    assert_eq!(member(&evil, "olivia")["name"], "pwned");
    let acme = members(&env, "olivia", "acme");
    let olivia = member(&acme, "olivia");
    assert_eq!(olivia["name"], "Olivia Ørsted", "acme's view is untouched");
    assert_eq!(olivia["role"], "owner");
    assert_eq!(olivia["chat_identities"], serde_json::json!([]));

    // Linking evil to acme's team is refused: a team maps to one workspace.
    let taken = env.fails(
        Some("mallory"),
        &["workspace", "link-slack", "evil", "--team", "T0ACME"],
        5,
    );
    assert!(
        taken["message"].as_str().unwrap().contains("T0ACME"),
        "{taken}"
    );
    // acme's trail never mentions evil's changes; evil's trail has its own.
    let acme_trail = env.json(Some("olivia"), &["--workspace", "acme", "audit", "list"]);
    assert!(
        acme_trail
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["details"]["name"] != "pwned"),
        "{acme_trail}"
    );
    assert_eq!(
        env.json(Some("olivia"), &["--workspace", "acme", "audit", "verify"])["result"],
        "intact"
    );
}

/// An identity mapped in the workspace's own team is accepted, and `--slack-team` naming the
/// linked team keeps working for scripts; an identity held by another member here is refused.
#[test]
fn slack_identities_bind_to_the_linked_team() {
    let env = two_tenants();
    env.ok(
        Some("olivia"),
        &[
            "--workspace",
            "acme",
            "user",
            "add",
            "bob",
            "--role",
            "operator",
            "--slack-id",
            "U0BOB",
            "--slack-team",
            "T0ACME",
        ],
    );
    let other = env.fails(
        Some("olivia"),
        &[
            "--workspace",
            "acme",
            "user",
            "add",
            "carl",
            "--role",
            "operator",
            "--slack-id",
            "U0BOB",
        ],
        5,
    );
    assert!(
        other["message"].as_str().unwrap().contains("@bob"),
        "{other}"
    );
    let wrong = env.fails(
        Some("olivia"),
        &[
            "--workspace",
            "acme",
            "user",
            "add",
            "dan",
            "--role",
            "operator",
            "--slack-id",
            "U0DAN",
            "--slack-team",
            "T0OTHER",
        ],
        6,
    );
    assert!(
        wrong["message"].as_str().unwrap().contains("T0ACME"),
        "{wrong}"
    );
    // The same Slack id may be mapped in another workspace, to someone else.
    env.ok(
        Some("mallory"),
        &[
            "--workspace",
            "evil",
            "user",
            "add",
            "eve",
            "--role",
            "member",
            "--slack-id",
            "U0BOB",
        ],
    );
    let acme = members(&env, "olivia", "acme");
    assert_eq!(member(&acme, "bob")["chat_identities"][0]["user"], "U0BOB");
}

/// A file naming a member as its owner is refused with the file and line; an operator may own.
#[test]
fn a_file_cannot_hand_a_runbook_to_a_member() {
    let env = Env::seeded(); // alice owner, bob operator, carol admin, dave member
    let text = simple("Rotate keys", &[("Announce", 2)]).replacen(
        "category = \"ops\"\n",
        "category = \"ops\"\nowner = \"dave\"\n",
        1,
    );
    let f = env.write("rotate.md", &text);
    let refused = env.fails(Some("bob"), &["runbook", "import", path_str(&f)], 6);
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("rotate.md:4: owner: @dave is a member"),
        "{message}"
    );
    assert_eq!(
        env.json(Some("alice"), &["runbook", "list"]),
        serde_json::json!([])
    );
    let text = text.replace("owner = \"dave\"", "owner = \"bob\"");
    let f = env.write("rotate.md", &text);
    env.ok(Some("alice"), &["runbook", "import", path_str(&f)]);
    let rb = env.json(Some("alice"), &["runbook", "show", "RB-00001"]);
    assert_eq!(rb["owner"], "bob", "{rb}");
    // A sync handing it to dave later is refused the same way.
    let text = text.replace("owner = \"bob\"", "owner = \"dave\"");
    let f = env.write("rotate.md", &text);
    env.fails(Some("bob"), &["runbook", "import", path_str(&f)], 6);
}

/// Off-boarding: a removed member can no longer act; their open runs are listed and stay
/// readable; history keeps their name; the last owner cannot be removed.
#[test]
fn user_remove_off_boards_a_member() {
    let env = Env::seeded();
    let f = env.write("rb.md", &simple("Restart", &[("Drain", 1), ("Restart", 2)]));
    env.ok(
        Some("alice"),
        &["runbook", "import", path_str(&f), "--publish"],
    );
    let ex = env.json(Some("bob"), &["exec", "start", "RB-00001"]);
    assert_eq!(ex["key"], "EX-00001");

    // A member or operator may not remove anyone; an admin may not remove the owner.
    env.fails(Some("bob"), &["user", "remove", "dave"], 4);
    env.fails(Some("carol"), &["user", "remove", "alice"], 4);
    // The last owner cannot remove themselves.
    let last = env.fails(Some("alice"), &["user", "remove", "alice"], 6);
    assert!(
        last["message"].as_str().unwrap().contains("only owner"),
        "{last}"
    );

    let removed = env.json(Some("carol"), &["user", "remove", "bob"]);
    assert_eq!(removed["handle"], "bob");
    assert_eq!(removed["open_runs"], serde_json::json!(["EX-00001"]));
    assert!(removed["removed_at"].is_string(), "{removed}");

    // bob can no longer act, nor read; his run stays readable to others with his name.
    let denied = env.fails(Some("bob"), &["exec", "done", "EX-00001"], 4);
    assert!(
        denied["message"].as_str().unwrap().contains("removed"),
        "{denied}"
    );
    env.fails(Some("bob"), &["runbook", "list"], 4);
    let shown = env.json(Some("alice"), &["exec", "show", "EX-00001"]);
    assert_eq!(shown["operator"], "bob", "{shown}");
    // He is gone from the member list, and removing him again finds no one.
    let list = members(&env, "alice", "acme");
    assert!(list.iter().all(|m| m["handle"] != "bob"), "{list:?}");
    env.fails(Some("alice"), &["user", "remove", "bob"], 3);
    // One audit entry, naming him and his open run.
    let trail = env.json(Some("alice"), &["audit", "list", "--target", "@bob"]);
    let entry = trail
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "member.removed")
        .unwrap();
    assert_eq!(entry["actor_handle"], "carol");
    assert_eq!(
        entry["details"]["open_runs"],
        serde_json::json!(["EX-00001"])
    );
    // Added back, he acts again.
    env.ok(Some("alice"), &["user", "add", "bob", "--role", "operator"]);
    env.ok(Some("bob"), &["exec", "done", "EX-00001"]);
}

/// Every entry written by the CLI names the surface and the operating-system principal
/// behind `--as`.
#[test]
fn entries_name_the_surface_and_the_principal() {
    let env = Env::seeded();
    let trail = env.json(Some("alice"), &["audit", "list"]);
    let entries = trail.as_array().unwrap();
    assert!(!entries.is_empty());
    for e in entries {
        assert_eq!(e["surface"], "cli", "{e}");
        let principal = e["principal"].as_str().unwrap();
        let (user, host) = principal.split_once('@').unwrap();
        assert!(!user.is_empty() && !host.is_empty(), "{principal}");
    }
    let csv = env.ok(Some("alice"), &["audit", "export", "--format", "csv"]);
    let header = csv.lines().next().unwrap();
    assert!(header.ends_with(",surface,principal"), "{header}");
    assert!(csv.lines().nth(1).unwrap().contains(",cli,"), "{csv}");
    assert_eq!(
        env.json(Some("alice"), &["audit", "verify"])["result"],
        "intact"
    );
}

/// The console records its own surface, with the operating-system principal.
#[test]
fn the_console_records_its_surface() {
    let env = Env::seeded();
    let f = env.write("rb.md", &simple("Restart", &[("Drain", 1)]));
    env.ok(
        Some("alice"),
        &["runbook", "import", path_str(&f), "--publish"],
    );
    let r = env.run_stdin(Some("bob"), &["console"], "run RB-00001\n");
    assert_eq!(r.code, 0, "{r:?}");
    let trail = env.json(Some("alice"), &["audit", "list"]);
    let last = trail.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "execution.started", "{last}");
    assert_eq!(last["surface"], "console", "{last}");
    assert!(last["principal"].as_str().unwrap().contains('@'), "{last}");
}
