//! Runbooks through the binary: import/export round trip, no-op re-import, `--into` with
//! `--expect-version`, sync (all or nothing), list/show/publish/archive/history/diff/search and
//! their `--json` shapes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use cli_support::{Env, ROTATE, has_keys, path_str, simple};

#[test]
fn import_export_round_trip() {
    let env = Env::seeded();
    let f = env.write("rotate.md", ROTATE);
    let rb = env.json(Some("alice"), &["runbook", "import", path_str(&f)]);
    has_keys(&rb, &["key", "id", "version", "action", "is_published"]);
    assert_eq!(rb["key"], "RB-00001");
    assert_eq!(rb["action"], "created");
    assert_eq!(rb["version"], 1);
    assert_eq!(rb["is_published"], true, "published = true in the file");

    // Export is the canonical form, with the key; importing it changes nothing.
    let exported = env.ok(Some("alice"), &["runbook", "export", "RB-00001"]);
    assert!(exported.contains("key = \"RB-00001\""), "{exported}");
    assert!(exported.contains("owner = \"alice\""), "{exported}");
    let e = env.write("exported.md", &exported);
    let before = env.audit_count();
    let again = env.json(Some("alice"), &["runbook", "import", path_str(&e)]);
    assert_eq!(again["key"], "RB-00001");
    assert_eq!(again["action"], "unchanged");
    assert_eq!(again["version"], 1);
    assert_eq!(
        env.audit_count(),
        before,
        "an unchanged import writes nothing"
    );
    // The original file into the same runbook: unchanged too.
    let into = env.json(
        Some("alice"),
        &[
            "runbook",
            "import",
            path_str(&f),
            "--into",
            "RB-00001",
            "--expect-version",
            "1",
        ],
    );
    assert_eq!(into["action"], "unchanged");
    // Export of the export is identical (canonical), also through -o.
    let out = env.path("again.md");
    env.ok(
        Some("alice"),
        &["runbook", "export", "RB-00001", "-o", path_str(&out)],
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), exported);
    let j = env.json(Some("bob"), &["runbook", "export", "RB-00001"]);
    assert_eq!(j["markdown"].as_str().unwrap(), exported);

    // Show: the fields the contract names.
    let show = env.json(Some("bob"), &["runbook", "show", "RB-00001"]);
    has_keys(
        &show,
        &[
            "key",
            "id",
            "version",
            "title",
            "category",
            "is_published",
            "archived_at",
            "steps",
        ],
    );
    let s2 = &show["steps"][1];
    has_keys(
        s2,
        &[
            "order",
            "title",
            "owner_role",
            "est_minutes",
            "requires_approval",
            "is_destructive",
        ],
    );
    assert_eq!(s2["order"], 2);
    assert_eq!(s2["owner_role"], "sre");
    assert_eq!(s2["est_minutes"], 10);
    assert_eq!(s2["requires_approval"], true);
    assert_eq!(s2["is_destructive"], true);
    assert_eq!(
        s2["description"],
        "Run the deploy job with the new bundle:\n\n    deploy-cert --bundle new.pem --all"
    );
    let text = env.ok(Some("bob"), &["runbook", "show", "RB-00001"]);
    assert!(
        text.contains("[DESTRUCTIVE]") && text.contains("[APPROVAL REQUIRED]"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "no colour off a terminal");

    // Edit the file: a new version; --expect-version of a stale version is a conflict.
    let edited = exported.replace("- est: 10", "- est: 15");
    let e2 = env.write("edited.md", &edited);
    let v2 = env.json(Some("alice"), &["runbook", "import", path_str(&e2)]);
    assert_eq!(v2["action"], "updated");
    assert_eq!(v2["version"], 2);
    let conflict = env.fails(
        Some("alice"),
        &[
            "runbook",
            "import",
            path_str(&f),
            "--into",
            "RB-00001",
            "--expect-version",
            "1",
        ],
        5,
    );
    assert_eq!(conflict["kind"], "conflict");
    let show = env.json(Some("bob"), &["runbook", "show", "RB-00001"]);
    assert_eq!(show["version"], 2, "the conflict changed nothing");
    // Old versions are exported and shown on request.
    let old = env.ok(
        Some("alice"),
        &["runbook", "export", "RB-00001", "--version", "1"],
    );
    assert_eq!(old, exported);
    let v1 = env.json(
        Some("bob"),
        &["runbook", "show", "RB-00001", "--version", "1"],
    );
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["steps"][1]["est_minutes"], 10);
    env.fails(
        Some("bob"),
        &["runbook", "show", "RB-00001", "--version", "9"],
        3,
    );

    // A bad file: exit 6 naming file:line, nothing changed.
    let bad = env.write(
        "bad.md",
        "+++\ntitle = \"Bad\"\n+++\n\n## 1. One\n- estimate: 5\n",
    );
    let before = env.audit_count();
    let err = env.fails(Some("alice"), &["runbook", "import", path_str(&bad)], 6);
    assert_eq!(err["kind"], "refused");
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("bad.md:6: unknown field \"estimate\" (did you mean \"est\"?)"),
        "{msg}"
    );
    // Several files, one bad: none imported.
    let good = env.write("good.md", &simple("Good one", &[("a", 1)]));
    env.fails(
        Some("alice"),
        &["runbook", "import", path_str(&good), path_str(&bad)],
        6,
    );
    assert_eq!(env.audit_count(), before);
    env.fails(Some("alice"), &["runbook", "import", "missing.md"], 3);
    // Permissions: a member cannot create runbooks; bob cannot edit alice's.
    env.fails(Some("dave"), &["runbook", "import", path_str(&good)], 4);
    env.fails(
        Some("bob"),
        &["runbook", "import", path_str(&e2), "--into", "RB-00001"],
        4,
    );
    env.fails(
        Some("alice"),
        &["runbook", "import", path_str(&good), "--into", "RB-00077"],
        3,
    );
    // --publish publishes what it imports.
    let published = env.json(
        Some("bob"),
        &["runbook", "import", path_str(&good), "--publish"],
    );
    assert_eq!(published["action"], "created");
    assert_eq!(published["is_published"], true);
    // --expect-version without --into is a usage error.
    env.fails(
        Some("alice"),
        &[
            "runbook",
            "import",
            path_str(&good),
            "--expect-version",
            "1",
        ],
        2,
    );
}

#[test]
fn sync_is_all_or_nothing() {
    let env = Env::seeded();
    let dir = env.path("runbooks");
    env.write(
        "runbooks/restart.md",
        &simple("Restart the API", &[("Drain", 2), ("Restart", 3)]),
    );
    env.write(
        "runbooks/db/failover.md",
        &simple("Fail over the database", &[("Promote", 5)]),
    );
    env.write("runbooks/README.md", "# Our runbooks\n");
    env.write(
        "runbooks/broken.md",
        "+++\ntitle = \"Broken\"\n+++\n\n## 1. a\n\n## 3. c\n",
    );
    let before = env.audit_count();
    let err = env.fails(Some("alice"), &["runbook", "sync", path_str(&dir)], 6);
    let msg = err["message"].as_str().unwrap();
    assert!(msg.contains("broken.md:7: step 2 is numbered 3"), "{msg}");
    assert_eq!(env.audit_count(), before, "nothing at all changed");
    let list = env.json(Some("alice"), &["runbook", "list", "--drafts"]);
    assert_eq!(list.as_array().unwrap().len(), 0);

    std::fs::remove_file(dir.join("broken.md")).unwrap();
    let dry = env.json(
        Some("alice"),
        &["runbook", "sync", path_str(&dir), "--dry-run"],
    );
    assert_eq!(dry["runbooks"].as_array().unwrap().len(), 2);
    assert_eq!(env.audit_count(), before, "a dry run saves nothing");
    let s = env.json(Some("alice"), &["runbook", "sync", path_str(&dir)]);
    assert_eq!(s["created"], 2);
    assert_eq!(s["updated"], 0);
    let files: Vec<&str> = s["runbooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["db/failover.md", "restart.md"]);

    // Again: nothing changes. Then edit one file: only that one gets a new version.
    let s = env.json(Some("alice"), &["runbook", "sync", path_str(&dir)]);
    assert_eq!(
        (
            s["created"].as_u64(),
            s["updated"].as_u64(),
            s["unchanged"].as_u64()
        ),
        (Some(0), Some(0), Some(2))
    );
    env.write(
        "runbooks/restart.md",
        &simple("Restart the API", &[("Drain", 2), ("Restart", 4)]),
    );
    let s = env.json(Some("alice"), &["runbook", "sync", path_str(&dir)]);
    assert_eq!(s["updated"], 1);
    assert_eq!(s["unchanged"], 1);
    let restart = s["runbooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["file"] == "restart.md")
        .unwrap()
        .clone();
    assert_eq!(restart["version"], 2);
    // An exported file (with its key) follows the runbook through a title change.
    let key = restart["key"].as_str().unwrap().to_owned();
    let exported = env.ok(Some("alice"), &["runbook", "export", &key]);
    env.write(
        "runbooks/restart.md",
        &exported.replace("Restart the API", "Restart the API server"),
    );
    let s = env.json(Some("alice"), &["runbook", "sync", path_str(&dir)]);
    assert_eq!(s["created"], 0);
    assert_eq!(s["updated"], 1);
    // Two files for one runbook are refused.
    env.write("runbooks/copy.md", &exported);
    let e = env.fails(Some("alice"), &["runbook", "sync", path_str(&dir)], 6);
    assert!(
        e["message"].as_str().unwrap().contains("both update"),
        "{e}"
    );
    env.fails(Some("alice"), &["runbook", "sync", "no-such-dir"], 3);
    let text = {
        std::fs::remove_file(dir.join("copy.md")).unwrap();
        env.ok(Some("alice"), &["runbook", "sync", path_str(&dir)])
    };
    assert!(
        text.contains("0 created, 0 updated, 2 unchanged."),
        "{text}"
    );
}

#[test]
fn list_show_publish_history_diff_search() {
    let env = Env::seeded();
    let a = env.write(
        "a.md",
        &simple("Restart the API", &[("Drain", 2), ("Restart", 3)]),
    );
    let b = env.write("b.md", &simple("Rotate keys", &[("Rotate", 5)]));
    env.ok(
        Some("bob"),
        &["runbook", "import", path_str(&a), path_str(&b)],
    );
    // Drafts: visible to their owner and admins with --drafts, not to others.
    assert_eq!(
        env.json(Some("bob"), &["runbook", "list"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        env.json(Some("bob"), &["runbook", "list", "--drafts"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        env.json(Some("dave"), &["runbook", "list", "--drafts"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    env.fails(Some("dave"), &["runbook", "show", "RB-00001"], 4);
    // Publish (owner), unpublish, publish again; a member cannot.
    let p = env.json(Some("bob"), &["runbook", "publish", "RB-00001"]);
    assert_eq!(p["is_published"], true);
    env.fails(Some("dave"), &["runbook", "unpublish", "RB-00001"], 4);
    let u = env.json(Some("bob"), &["runbook", "unpublish", "RB-00001"]);
    assert_eq!(u["is_published"], false);
    env.ok(Some("bob"), &["runbook", "publish", "RB-00001"]);
    let list = env.json(Some("dave"), &["runbook", "list"]);
    let only = &list.as_array().unwrap()[0];
    has_keys(
        only,
        &[
            "key",
            "id",
            "version",
            "title",
            "category",
            "is_published",
            "archived_at",
        ],
    );
    assert_eq!(only["key"], "RB-00001");
    assert_eq!(
        env.json(Some("dave"), &["runbook", "list", "--category", "nope"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let text = env.ok(Some("dave"), &["runbook", "list"]);
    assert!(text.starts_with("KEY"), "{text}");

    // Edit twice and read the history and diffs.
    let v2 = env.write(
        "a2.md",
        &simple(
            "Restart the API",
            &[("Drain", 2), ("Restart", 5), ("Verify", 1)],
        ),
    );
    env.ok(
        Some("bob"),
        &["runbook", "import", path_str(&v2), "--into", "RB-00001"],
    );
    let hist = env.json(Some("dave"), &["runbook", "history", "RB-00001"]);
    let h = hist.as_array().unwrap();
    assert_eq!(h.len(), 2);
    has_keys(&h[1], &["version", "author", "saved_at", "source"]);
    assert_eq!(h[1]["author"], "bob");
    assert_eq!(h[1]["source"], "file sync (a2.md)");
    let text = env.ok(Some("dave"), &["runbook", "history", "RB-00001"]);
    assert!(
        text.contains("VERSION") && text.contains("@bob") && text.contains("file sync"),
        "{text}"
    );
    let d = env.json(
        Some("dave"),
        &["runbook", "diff", "RB-00001", "--from", "1", "--to", "2"],
    );
    assert_eq!(d["summary"]["added"], 1);
    assert_eq!(d["summary"]["changed"], 1);
    let unified = env.ok(
        Some("dave"),
        &["runbook", "diff", "RB-00001", "--from", "1", "--to", "2"],
    );
    assert!(
        unified.contains("--- v1") && unified.contains("+++ v2"),
        "{unified}"
    );
    assert!(unified.contains("+ step 3 \"Verify\" (added)"), "{unified}");
    assert!(unified.contains("-   3\n+   5"), "{unified}");
    let sbs = env.ok(
        Some("dave"),
        &[
            "runbook",
            "diff",
            "RB-00001",
            "--from",
            "1",
            "--to",
            "2",
            "--side-by-side",
            "--width",
            "80",
        ],
    );
    assert!(
        sbs.lines().skip(1).all(|l| l.chars().count() <= 80),
        "{sbs}"
    );
    assert!(sbs.contains(" > ") && sbs.contains(" | "), "{sbs}");
    // Defaults: the last change.
    let last = env.ok(Some("dave"), &["runbook", "diff", "RB-00001"]);
    assert!(last.contains("--- v1") && last.contains("+++ v2"), "{last}");
    env.fails(
        Some("dave"),
        &["runbook", "diff", "RB-00001", "--from", "1", "--to", "7"],
        3,
    );

    // Search.
    let found = env.json(Some("dave"), &["runbook", "search", "restart"]);
    assert_eq!(found[0]["key"], "RB-00001");
    let none = env.json(Some("dave"), &["runbook", "search", "zebra"]);
    assert_eq!(none.as_array().unwrap().len(), 0);

    // Archive: admins only; then it leaves the list, refuses edits and executions.
    env.fails(Some("bob"), &["runbook", "archive", "RB-00001"], 4);
    let ar = env.json(Some("carol"), &["runbook", "archive", "RB-00001"]);
    assert!(ar["archived_at"].is_string());
    assert_eq!(
        env.json(Some("dave"), &["runbook", "list"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let archived = env.json(Some("carol"), &["runbook", "list", "--archived"]);
    assert_eq!(archived[0]["key"], "RB-00001");
    env.fails(Some("dave"), &["runbook", "list", "--archived"], 4);
    env.fails(Some("carol"), &["runbook", "archive", "RB-00001"], 6);
    env.fails(
        Some("carol"),
        &["runbook", "import", path_str(&a), "--into", "RB-00001"],
        6,
    );
    env.fails(Some("bob"), &["exec", "start", "RB-00001"], 6);
    // An id works where the key does.
    let id = ar["id"].as_str().unwrap();
    let by_id = env.json(Some("carol"), &["runbook", "show", id]);
    assert_eq!(by_id["key"], "RB-00001");
}

#[test]
fn a_file_can_hand_a_runbook_to_another_owner() {
    let env = Env::seeded();
    let f = env.write("rotate.md", ROTATE);
    env.json(Some("alice"), &["runbook", "import", path_str(&f)]);
    let exported = env.ok(Some("alice"), &["runbook", "export", "RB-00001"]);
    assert!(exported.contains("owner = \"alice\""), "{exported}");
    let to_bob = env.write(
        "to-bob.md",
        &exported.replace("owner = \"alice\"", "owner = \"bob\""),
    );
    let before = env.audit_count();

    // bob is an operator and not the owner: he may not take it; nothing changes.
    let err = env.fails(Some("bob"), &["runbook", "import", path_str(&to_bob)], 4);
    assert!(
        err["message"].as_str().unwrap().contains("to-bob.md"),
        "{err}"
    );
    // An owner nobody knows: exit 3 naming the file.
    let nobody = env.write(
        "nobody.md",
        &exported.replace("owner = \"alice\"", "owner = \"mallory\""),
    );
    let err = env.fails(Some("alice"), &["runbook", "import", path_str(&nobody)], 3);
    assert!(
        err["message"].as_str().unwrap().contains("nobody.md"),
        "{err}"
    );
    assert_eq!(env.audit_count(), before);

    // alice hands it over: the version does not move, one audit entry records it.
    std::fs::create_dir(env.path("repo")).unwrap();
    std::fs::copy(&to_bob, env.path("repo/rotate.md")).unwrap();
    let dry = env.json(
        Some("alice"),
        &["runbook", "sync", path_str(&env.path("repo")), "--dry-run"],
    );
    assert_eq!(dry["runbooks"][0]["action"], "would change owner", "{dry}");
    assert_eq!(env.audit_count(), before);
    let done = env.json(Some("alice"), &["runbook", "import", path_str(&to_bob)]);
    assert_eq!(done["action"], "owner changed", "{done}");
    assert_eq!(done["version"], 1);
    assert_eq!(env.audit_count(), before + 1);
    let again = env.ok(Some("bob"), &["runbook", "export", "RB-00001"]);
    assert!(again.contains("owner = \"bob\""), "{again}");
    // Importing the same file again changes nothing.
    let same = env.json(Some("bob"), &["runbook", "import", path_str(&to_bob)]);
    assert_eq!(same["action"], "unchanged");
    assert_eq!(env.audit_count(), before + 1);
}

#[test]
fn a_published_file_without_steps_is_refused_and_a_draft_is_saved() {
    let env = Env::seeded();
    let notes =
        "+++\ntitle = \"On-call notes\"\npublished = true\n+++\n\nJust notes, no step heading.\n";
    let path = env.write("repo/notes.md", notes);
    env.write(
        "repo/restart.md",
        &simple("Restart the API", &[("Drain", 2)]),
    );
    let before = env.audit_count();
    // Import and sync refuse it like any other bad file, naming the file and the line.
    for args in [
        vec!["runbook", "import", path_str(&path)],
        vec!["runbook", "sync", path_str(&env.path("repo"))],
    ] {
        let err = env.fails(Some("alice"), &args, 6);
        let msg = err["message"].as_str().unwrap();
        assert!(msg.contains("notes.md:3: "), "{msg}");
        assert!(
            msg.contains("has no steps") && msg.contains("## 1. Title"),
            "{msg}"
        );
    }
    assert_eq!(env.audit_count(), before, "nothing changed");
    // As a draft it is saved; publishing it is refused with the same reason.
    let draft = env.write("draft/notes.md", &notes.replace("true", "false"));
    let saved = env.json(Some("alice"), &["runbook", "import", path_str(&draft)]);
    let key = saved["key"]
        .as_str()
        .or_else(|| saved["runbook"]["key"].as_str())
        .or_else(|| saved["runbooks"][0]["key"].as_str())
        .unwrap_or_else(|| panic!("no key in {saved}"))
        .to_owned();
    let err = env.fails(Some("alice"), &["runbook", "publish", &key], 6);
    assert!(
        err["message"].as_str().unwrap().contains("has no steps"),
        "{err}"
    );
}

/// Issue 14: a file `runbook sync` cannot read (a `.md` that is a folder behind a link, a file
/// or folder without read permission) is a refused input (exit 6) named with its path, and
/// nothing is saved; it used to exit 1 as an internal error.
#[test]
fn sync_names_an_unreadable_file() {
    let env = Env::seeded();
    let dir = env.path("runbooks");
    env.write(
        "runbooks/restart.md",
        &simple("Restart the API", &[("Drain", 2), ("Restart", 3)]),
    );
    std::fs::create_dir_all(env.path("elsewhere")).unwrap();
    std::os::unix::fs::symlink(env.path("elsewhere"), dir.join("notes.md")).unwrap();
    let before = env.audit_count();
    let e = env.fails(Some("alice"), &["runbook", "sync", path_str(&dir)], 6);
    assert_eq!(e["kind"], "refused", "{e}");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("notes.md"), "{msg}");
    assert!(msg.contains("cannot read"), "{msg}");
    assert!(msg.contains("nothing was changed"), "{msg}");
    assert_eq!(env.audit_count(), before);
    std::fs::remove_file(dir.join("notes.md")).unwrap();

    // Without read permission (meaningful only where permissions apply: not as root).
    use std::os::unix::fs::PermissionsExt;
    let locked = env.write("runbooks/locked.md", &simple("Locked", &[("One", 1)]));
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&locked).is_err() {
        let e = env.fails(Some("alice"), &["runbook", "sync", path_str(&dir)], 6);
        assert!(e["message"].as_str().unwrap().contains("locked.md"), "{e}");
    }
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::remove_file(&locked).unwrap();
    let sub = env.path("runbooks/private");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read_dir(&sub).is_err() {
        let e = env.fails(Some("alice"), &["runbook", "sync", path_str(&dir)], 6);
        assert!(e["message"].as_str().unwrap().contains("private"), "{e}");
    }
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(env.audit_count(), before, "nothing was saved");
}
