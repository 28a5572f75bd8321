//! The Markdown runbook file format: the spec's example, every kind of error with its line,
//! exact round trips over generated runbooks, and a parser that never panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use vigilo_core::ids::{Key, KeyKind};
use vigilo_core::runbook::file::{self, FileError, RunbookFile};
use vigilo_core::runbook::{RunbookBody, RunbookInput, StepInput};

const SPEC_EXAMPLE: &str = r#"+++
title = "Rotate the TLS certificate on the edge proxies"
category = "security"
owner = "alice"          # optional; default: the importing user
published = true         # optional; default false
+++

Rotate the wildcard certificate before it expires.
Dashboard: https://grafana.example.com/d/edge

## 1. Announce the rotation
- role: operator
- est: 2
- expected: The on-call engineer acknowledges in #ops.

Post in #ops that the rotation starts and link this runbook.

## 2. Swap the certificate on the proxies
- role: sre
- est: 10
- approval: required
- destructive: yes
- verification: `curl -sI https://edge.example.com | grep -i expire`
- rollback: Re-deploy the previous certificate bundle from the vault.

Run the deploy job with the new bundle:

    deploy-cert --bundle new.pem --all
"#;

fn parse_ok(text: &str) -> RunbookFile {
    match file::parse("rotate.md", text) {
        Ok(f) => f,
        Err(e) => panic!("parse failed: {e}\n---\n{text}"),
    }
}

fn parse_err(text: &str) -> FileError {
    match file::parse("rotate.md", text) {
        Ok(f) => panic!("parsed, expected an error: {f:?}\n---\n{text}"),
        Err(e) => e,
    }
}

fn body_of(input: RunbookInput) -> RunbookBody {
    input.validate().expect("valid")
}

#[test]
fn the_spec_example_reads_as_the_spec_says() {
    let f = parse_ok(SPEC_EXAMPLE);
    assert_eq!(f.owner.as_deref(), Some("alice"));
    assert_eq!(f.published, Some(true));
    assert_eq!(f.key, None);
    let i = &f.input;
    assert_eq!(i.title, "Rotate the TLS certificate on the edge proxies");
    assert_eq!(i.category, "security");
    assert_eq!(
        i.description,
        "Rotate the wildcard certificate before it expires.\nDashboard: https://grafana.example.com/d/edge"
    );
    assert_eq!(i.steps.len(), 2);
    let s1 = &i.steps[0];
    assert_eq!(s1.title, "Announce the rotation");
    assert_eq!(s1.owner_role, "operator");
    assert_eq!(s1.est_minutes, 2);
    assert_eq!(
        s1.expected_outcome,
        "The on-call engineer acknowledges in #ops."
    );
    assert_eq!(
        s1.description,
        "Post in #ops that the rotation starts and link this runbook."
    );
    assert!(!s1.requires_approval && !s1.is_destructive);
    let s2 = &i.steps[1];
    assert_eq!(s2.owner_role, "sre");
    assert_eq!(s2.est_minutes, 10);
    assert!(s2.requires_approval && s2.is_destructive);
    assert_eq!(
        s2.verification,
        "`curl -sI https://edge.example.com | grep -i expire`"
    );
    assert_eq!(
        s2.rollback_note,
        "Re-deploy the previous certificate bundle from the vault."
    );
    assert_eq!(
        s2.description,
        "Run the deploy job with the new bundle:\n\n    deploy-cert --bundle new.pem --all"
    );
}

#[test]
fn the_canonical_form_is_stable_and_reads_back() {
    let f = parse_ok(SPEC_EXAMPLE);
    let body = body_of(f.input.clone());
    let canonical = file::write(&body, f.owner.as_deref(), f.published);
    let again = parse_ok(&canonical);
    assert_eq!(again, f);
    assert_eq!(
        file::write(
            &body_of(again.input),
            again.owner.as_deref(),
            again.published
        ),
        canonical
    );
    // Canonical layout: a blank line after the front matter, fields right under headings.
    assert!(canonical.starts_with("+++\ntitle = \"Rotate the TLS certificate"));
    assert!(canonical.contains("+++\n\nRotate the wildcard"));
    assert!(canonical.contains("## 1. Announce the rotation\n- role: operator\n- est: 2\n"));
    assert!(canonical.ends_with("deploy-cert --bundle new.pem --all\n"));
}

#[test]
fn the_key_is_written_and_read() {
    let f = parse_ok(SPEC_EXAMPLE);
    let body = body_of(f.input.clone());
    let k = Key::new(KeyKind::Runbook, 7);
    let text = file::write_keyed(Some(k), &body, Some("alice"), Some(false));
    assert!(text.contains("key = \"RB-00007\"\n"), "{text}");
    let back = parse_ok(&text);
    assert_eq!(back.key, Some(k));
    assert_eq!(back.published, Some(false));

    let e = parse_err("+++\ntitle = \"x\"\nkey = \"EX-00001\"\n+++\n");
    assert_eq!(e.line, 3, "{e}");
    assert!(e.message.contains("runbook key"), "{e}");
}

#[test]
fn misnumbered_steps_name_the_line() {
    let text = "+++\ntitle = \"t\"\n+++\n\n## 1. a\n\n## 2. b\n- est: 1\n\n## 4. d\n";
    let e = parse_err(text);
    assert_eq!(e.to_string(), "rotate.md:10: step 3 is numbered 4");
    let e = parse_err("+++\ntitle = \"t\"\n+++\n## 2. a\n");
    assert_eq!(e.to_string(), "rotate.md:4: step 1 is numbered 2");
}

#[test]
fn unknown_fields_get_a_suggestion() {
    let text = "+++\ntitle = \"t\"\n+++\n\n## 1. a\n- role: sre\n- estimate: 5\n";
    let e = parse_err(text);
    assert_eq!(
        e.to_string(),
        "rotate.md:7: unknown field \"estimate\" (did you mean \"est\"?)"
    );
    let e = parse_err("+++\ntitle = \"t\"\ncategry = \"x\"\n+++\n");
    assert_eq!(
        e.to_string(),
        "rotate.md:3: unknown field \"categry\" (did you mean \"category\"?)"
    );
    let e = parse_err("+++\ntitle = \"t\"\n+++\n## 1. a\n- est: 1\n- est: 2\n");
    assert_eq!(e.line, 6);
    assert!(e.message.contains("twice"), "{e}");
}

#[test]
fn front_matter_errors_name_the_line() {
    let e = parse_err("# Rotate\n\n## 1. a\n");
    assert_eq!(e.line, 1);
    assert!(e.message.contains("+++"), "{e}");
    let e = parse_err("");
    assert_eq!(e.line, 1);
    let e = parse_err("+++\ntitle = \"t\"\n\n## 1. a\n");
    assert_eq!(e.line, 1);
    assert!(e.message.contains("not closed"), "{e}");
    let e = parse_err("+++\ncategory = \"x\"\ntitle = \"unterminated\n+++\n");
    assert_eq!(e.line, 3, "{e}");
    assert!(e.message.starts_with("front matter:"), "{e}");
    let e = parse_err("+++\ncategory = \"x\"\n+++\n\ntext\n");
    assert_eq!(e.line, 1);
    assert!(e.message.contains("no title"), "{e}");
    let e = parse_err("+++\ntitle = \"t\"\npublished = \"yes\"\n+++\n");
    assert_eq!(e.line, 3);
    assert!(e.message.contains("true or false"), "{e}");
    let e = parse_err("+++\ntitle = 5\n+++\n");
    assert_eq!(e.line, 2);
    let e = parse_err("+++\ntitle = \"   \"\n+++\n");
    assert_eq!(e.to_string(), "rotate.md:2: title must not be empty");
    let e = parse_err("+++\ntitle = \"t\"\ndescription = \"d\"\n+++\n");
    assert_eq!(e.line, 3);
}

#[test]
fn bad_fields_name_the_line() {
    let e = parse_err("+++\ntitle = \"t\"\n+++\n\n## 1. a\n- est: ten\n");
    assert_eq!(e.line, 6);
    assert!(e.message.contains("whole minutes"), "{e}");
    let e = parse_err("+++\ntitle = \"t\"\n+++\n\n## 1. a\n- est: 20000\n");
    assert_eq!(e.line, 6);
    assert!(e.message.contains("10080"), "{e}");
    let e = parse_err("+++\ntitle = \"t\"\n+++\n\n## 1. a\n- est: 1\n- approval: maybe\n");
    assert_eq!(e.line, 7);
    let e = parse_err("+++\ntitle = \"t\"\n+++\n\n## 1. a\n- destructive: perhaps\n");
    assert_eq!(e.line, 6);
    let e = parse_err("+++\ntitle = \"t\"\n+++\n\n## 1.\n");
    assert_eq!(e.line, 5);
    assert!(e.message.contains("no title"), "{e}");
    let e = parse_err("+++\ntitle = \"t\"\n+++\n\n## Notes\n");
    assert_eq!(e.line, 5);
    assert!(e.message.contains("## N. Title"), "{e}");
    let long = "x".repeat(201);
    let e = parse_err(&format!("+++\ntitle = \"t\"\n+++\n\n## 1. {long}\n"));
    assert_eq!(e.line, 5);
    assert!(e.message.contains("200"), "{e}");
    let e = parse_err("+++\ntitle = \"t\"\n+++\n\n## 1. a\n- role: sre\n- Check the logs\n");
    assert_eq!(e.line, 7);
    assert!(e.message.contains("blank line"), "{e}");
    let long_role = "r".repeat(65);
    let e = parse_err(&format!(
        "+++\ntitle = \"t\"\n+++\n\n## 1. a\n- est: 1\n- role: {long_role}\n"
    ));
    assert_eq!(e.line, 7);
    assert!(e.message.starts_with("step 1: role"), "{e}");
}

/// Issue 14: an `est` too large for any integer is reported as written, not as
/// 9223372036854775807, at its file and line.
#[test]
fn too_large_est_names_the_number_written() {
    for written in [
        "99999999999999999999999",
        "1234567890123",
        "9223372036854775808",
    ] {
        let e = parse_err(&format!(
            "+++\ntitle = \"t\"\n+++\n\n## 1. a\n- est: {written}\n"
        ));
        assert_eq!(e.line, 6, "{e}");
        assert!(e.to_string().starts_with("rotate.md:6:"), "{e}");
        assert!(e.message.contains(written), "{e}");
        assert!(e.message.contains("10080"), "{e}");
        assert!(!e.message.contains("9223372036854775807"), "{e}");
    }
    // Leading zeros are kept as written too.
    let e = parse_err("+++\ntitle = \"t\"\n+++\n\n## 1. a\n- est: 0020000 min\n");
    assert!(e.message.contains("0020000"), "{e}");
}

#[test]
fn oversize_texts_name_the_line() {
    let big = "y".repeat(64 * 1024 + 1);
    let text = format!("+++\ntitle = \"t\"\n+++\n\n## 1. a\n- est: 1\n\n{big}\n\n## 2. b\n");
    let e = parse_err(&text);
    assert_eq!(e.line, 8);
    assert!(e.message.contains("64 KiB"), "{e}");
    let text = format!("+++\ntitle = \"t\"\n+++\n\n## 1. a\n- est: 1\n- rollback: {big}\n");
    let e = parse_err(&text);
    assert_eq!(e.line, 7);
    assert!(e.message.starts_with("step 1: rollback"), "{e}");
    let text = format!("+++\ntitle = \"t\"\n+++\n\nintro\n{big}\n");
    let e = parse_err(&text);
    assert_eq!(e.line, 5);
    let mut many = String::from("+++\ntitle = \"t\"\n+++\n");
    for n in 1..=501 {
        many.push_str(&format!("## {n}. s\n"));
    }
    let e = parse_err(&many);
    assert_eq!(e.line, 4 + 500);
    assert!(e.message.contains("500"), "{e}");
}

#[test]
fn lenient_inputs_read_sensibly() {
    // Blank line between heading and fields; est with a unit; CRLF line ends; no description.
    let text = "+++\r\ntitle = \"t\"\r\n+++\r\n## 1. a\r\n\r\n- est: 5 min\r\n- Role: dba\r\n\r\nDo it.\r\n";
    let f = parse_ok(text);
    assert_eq!(f.input.description, "");
    let s = &f.input.steps[0];
    assert_eq!(s.est_minutes, 5);
    assert_eq!(s.owner_role, "dba");
    assert_eq!(s.title, "a");
    assert_eq!(s.description, "Do it.\r");
    // A step with no fields at all.
    let f = parse_ok("+++\ntitle = \"t\"\n+++\n\n## 1. a\n\nJust text.\n- a list\n");
    assert_eq!(f.input.steps[0].description, "Just text.\n- a list");
    assert_eq!(f.input.steps[0].est_minutes, 0);
    // `## ` inside a fenced block is not a heading.
    let f = parse_ok("+++\ntitle = \"t\"\n+++\n## 1. a\n- est: 1\n\n```sh\n## a comment\n```\n");
    assert_eq!(f.input.steps.len(), 1);
    assert_eq!(f.input.steps[0].description, "```sh\n## a comment\n```");
    // Multi-line field values and quoted values.
    let f = parse_ok(
        "+++\ntitle = \"t\"\n+++\n## 1. a\n- rollback: first\n  second\n- expected: \"two\\n\\nparas\"\n",
    );
    assert_eq!(f.input.steps[0].rollback_note, "first\nsecond");
    assert_eq!(f.input.steps[0].expected_outcome, "two\n\nparas");
}

#[test]
fn special_lines_in_texts_round_trip() {
    let input = RunbookInput {
        title: "t".into(),
        description: "## not a step\n\\## escaped already\n```\nunclosed".into(),
        category: String::new(),
        steps: vec![StepInput {
            title: "s".into(),
            description: "```sh\n## comment\n```\n##\n~~~\n".into(),
            expected_outcome: "  padded\n\n".into(),
            verification: "\"quoted\"".into(),
            rollback_note: "```\nx\n```".into(),
            ..Default::default()
        }],
    };
    let body = body_of(input.clone());
    let text = file::write(&body, None, None);
    assert!(text.contains("\n\\## not a step\n"), "{text}");
    assert!(text.contains("\n\\\\## escaped already\n"), "{text}");
    assert!(text.contains("\n```sh\n## comment\n```\n"), "{text}");
    let back = parse_ok(&text);
    assert_eq!(back.input, input);
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

fn title() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 #\"'\\\\.,:!?()\\[\\]`*_éß漢-]{1,50}"
        .prop_map(|s| s.trim().to_owned())
        .prop_filter("non-empty", |s| !s.is_empty())
}

fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z][a-z0-9_-]{0,12}",
        "[a-zA-Z0-9 \"#`~]{0,20}".prop_map(|s| s.trim().to_owned()),
    ]
}

fn md_line() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 .,;:!?()#*_`'\"<>/=|+-]{0,40}",
        1 => Just(String::new()),
        1 => Just("   ".to_owned()),
        1 => Just("## heading-like".to_owned()),
        1 => Just("##".to_owned()),
        1 => Just("\\## escaped".to_owned()),
        1 => Just("\\\\```".to_owned()),
        1 => Just("```bash".to_owned()),
        1 => Just("```".to_owned()),
        1 => Just("~~~~".to_owned()),
        1 => Just("    indented code".to_owned()),
        1 => Just("- list item".to_owned()),
        1 => Just("- role: not a field".to_owned()),
        1 => Just("  continuation".to_owned()),
        1 => Just("+++".to_owned()),
        1 => Just("1. ordered".to_owned()),
        1 => Just("trailing spaces  ".to_owned()),
        1 => Just("tab\there\r".to_owned()),
        1 => Just("### sub heading".to_owned()),
        1 => Just("\"quoted\"".to_owned()),
    ]
}

fn markdown() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(md_line(), 0..10),
        0usize..3,
        prop::bool::ANY,
    )
        .prop_map(|(lines, trailing, lead)| {
            let mut s = String::new();
            if lead {
                s.push_str(" \n");
            }
            s.push_str(&lines.join("\n"));
            for _ in 0..trailing {
                s.push('\n');
            }
            s
        })
}

fn step() -> impl Strategy<Value = StepInput> {
    (
        title(),
        markdown(),
        label(),
        0i64..=10_080,
        markdown(),
        markdown(),
        markdown(),
        (prop::bool::ANY, 1i64..=4, prop::option::of(1i64..=10_080)),
        prop::bool::ANY,
    )
        .prop_map(
            |(
                title,
                description,
                owner_role,
                est,
                expected,
                verification,
                rollback,
                (a, n, m),
                d,
            )| {
                StepInput {
                    id: None,
                    title,
                    description,
                    owner_role,
                    est_minutes: est,
                    expected_outcome: expected,
                    verification,
                    rollback_note: rollback,
                    requires_approval: a,
                    approvals_required: if a { n } else { 0 },
                    approval_expires_minutes: m.filter(|_| a),
                    is_destructive: d,
                }
            },
        )
}

fn runbook() -> impl Strategy<Value = RunbookInput> {
    (
        title(),
        markdown(),
        label(),
        prop::collection::vec(step(), 0..6),
    )
        .prop_map(|(title, description, category, steps)| RunbookInput {
            title,
            description,
            category,
            steps,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// `parse(write(b)) == b`, step ids aside, for every field and awkward text.
    #[test]
    fn write_then_parse_is_exact(
        input in runbook(),
        owner in prop::option::of("[a-z][a-z0-9]{0,8}"),
        published in prop::option::of(prop::bool::ANY),
        key in prop::option::of(1u64..200_000),
    ) {
        let Ok(body) = input.clone().validate() else {
            return Err(TestCaseError::reject("invalid input"));
        };
        let key = key.map(|n| Key::new(KeyKind::Runbook, n));
        let text = file::write_keyed(key, &body, owner.as_deref(), published);
        if published == Some(true) && body.steps.is_empty() {
            // A published runbook needs a step: the file is refused at its `published` line.
            let e = file::parse("gen.md", &text).map_err(|e| e.to_string());
            prop_assert!(e.as_ref().is_err_and(|e| e.contains("has no steps")), "{:?}", e);
            return Ok(());
        }
        let back = match file::parse("gen.md", &text) {
            Ok(f) => f,
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n---\n{text}"))),
        };
        let mut expected = RunbookInput::from(&body);
        for s in &mut expected.steps {
            s.id = None;
        }
        prop_assert_eq!(&back.input, &expected, "file:\n{}", text);
        prop_assert_eq!(&back.owner, &owner);
        prop_assert_eq!(back.published, published);
        prop_assert_eq!(back.key, key);
        // And writing what was read gives the same file.
        let again = file::write_keyed(back.key, &back.input.validate().map_err(|e| TestCaseError::fail(e.to_string()))?, back.owner.as_deref(), back.published);
        prop_assert_eq!(again, text);
    }

    /// Arbitrary text never panics the parser.
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = file::parse("fuzz.md", &text);
        let _ = file::parse("fuzz.md", &format!("+++\ntitle = \"t\"\n+++\n{text}"));
    }

    /// Line-level mutations of a real file never panic, and errors point inside the file.
    #[test]
    fn mutated_files_never_panic(
        lines in prop::collection::vec(
            prop_oneof![
                md_line(),
                Just("## 1. step".to_owned()),
                Just("## 2. step".to_owned()),
                Just("- est: 5".to_owned()),
                Just("- est: 99999999999999999999999".to_owned()),
                Just("- approval: required".to_owned()),
                Just("- approval: 3".to_owned()),
                Just("- approval: 0".to_owned()),
                Just("- approval-expires: 30".to_owned()),
                Just("- approval-expires: 99999999999999".to_owned()),
                Just("- verification: \"unterminated".to_owned()),
                Just("- rollback: \"\\u12\"".to_owned()),
                Just("- rollback: \"\\uD800\"".to_owned()),
                Just("+++".to_owned()),
                Just("title = \"t\"".to_owned()),
                Just("[table]".to_owned()),
                Just("## 99999999999999999999. big".to_owned()),
                Just("## 1.".to_owned()),
                Just("\u{feff}".to_owned()),
            ],
            0..30,
        ),
    ) {
        let text = lines.join("\n");
        let line_count = text.split('\n').count().max(1);
        if let Err(e) = file::parse("m.md", &text) {
            prop_assert!(e.line >= 1 && e.line <= line_count + 1, "{} for\n{}", e, text);
        }
    }
}
