//! The chat command parser: the grammar, the usage answers to mistakes, and properties (no
//! input panics; every command round-trips through its `Display`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use vigilo_bot::chat::command::{Command, ParseError, Subcommand, parse};
use vigilo_bot::chat::limits::MAX_INPUT_BYTES;
use vigilo_core::ids::{Key, KeyKind};

fn rb(n: u64) -> Key {
    Key::new(KeyKind::Runbook, n)
}

fn ex(n: u64) -> Key {
    Key::new(KeyKind::Execution, n)
}

#[test]
fn the_grammar_of_the_spec() {
    assert_eq!(
        parse("/runbook help").unwrap(),
        Command::Help { topic: None }
    );
    assert_eq!(parse("").unwrap(), Command::Help { topic: None });
    assert_eq!(parse("/runbook").unwrap(), Command::Help { topic: None });
    assert_eq!(
        parse("help run").unwrap(),
        Command::Help {
            topic: Some(Subcommand::Run)
        }
    );
    assert_eq!(parse("list").unwrap(), Command::List { category: None });
    assert_eq!(
        parse("/runbook list  security ").unwrap(),
        Command::List {
            category: Some("security".into())
        }
    );
    assert_eq!(
        parse("search tls  certificate").unwrap(),
        Command::Search {
            words: "tls  certificate".into()
        }
    );
    assert_eq!(
        parse("show RB-00012").unwrap(),
        Command::Show { runbook: rb(12) }
    );
    assert_eq!(
        parse("SHOW rb-12").unwrap(),
        Command::Show { runbook: rb(12) }
    );
    assert_eq!(
        parse("/runbook run RB-00012 CR-00003 INC-00007 rehearsal").unwrap(),
        Command::Run {
            runbook: rb(12),
            change: Some(Key::new(KeyKind::Change, 3)),
            incident: Some(Key::new(KeyKind::Incident, 7)),
            rehearsal: true,
        }
    );
    assert_eq!(
        parse("run RB-00012 --incident INC-00003 --rehearsal").unwrap(),
        Command::Run {
            runbook: rb(12),
            change: None,
            incident: Some(Key::new(KeyKind::Incident, 3)),
            rehearsal: true,
        }
    );
    assert_eq!(
        parse("status").unwrap(),
        Command::Status { execution: None }
    );
    assert_eq!(
        parse("status EX-00002").unwrap(),
        Command::Status {
            execution: Some(ex(2))
        }
    );
    assert_eq!(
        parse("/runbook report").unwrap(),
        Command::Report { execution: None }
    );
    assert_eq!(
        parse("report EX-00002").unwrap(),
        Command::Report {
            execution: Some(ex(2))
        }
    );
    assert!(parse("report EX-00002 now").is_err());
    assert_eq!(
        parse("done").unwrap(),
        Command::Done {
            execution: None,
            note: None
        }
    );
    assert_eq!(
        parse("/runbook done  all good\nsecond line ").unwrap(),
        Command::Done {
            execution: None,
            note: Some("all good\nsecond line".into())
        }
    );
    assert_eq!(
        parse("skip EX-00003 not needed on staging").unwrap(),
        Command::Skip {
            execution: Some(ex(3)),
            reason: "not needed on staging".into()
        }
    );
    assert_eq!(
        parse("fail -- EX-00003 was the wrong one").unwrap(),
        Command::Fail {
            execution: None,
            note: "EX-00003 was the wrong one".into()
        }
    );
    assert_eq!(
        parse("approve").unwrap(),
        Command::Approve { execution: None }
    );
    assert_eq!(
        parse("retry EX-1").unwrap(),
        Command::Retry {
            execution: Some(ex(1))
        }
    );
    assert_eq!(
        parse("abort rollback instead").unwrap(),
        Command::Abort {
            execution: None,
            reason: "rollback instead".into()
        }
    );
    assert_eq!(
        parse("/runbook note paged the DBA").unwrap(),
        Command::Note {
            execution: None,
            step: None,
            text: "paged the DBA".into()
        }
    );
    assert_eq!(
        parse("note EX-2 --step 3 lag was 40 s").unwrap(),
        Command::Note {
            execution: Some(ex(2)),
            step: Some(3),
            text: "lag was 40 s".into()
        }
    );
    assert_eq!(
        parse("handoff @erin").unwrap(),
        Command::Handoff {
            execution: None,
            to: "@erin".into()
        }
    );
    assert_eq!(
        parse("takeover EX-7").unwrap(),
        Command::Takeover {
            execution: Some(ex(7))
        }
    );
    for (bad, says) in [
        ("note", "the note is required"),
        ("note --step 2", "the note is required"),
        ("note --step 0 x", "steps start at 1"),
        ("note --step x", "not a step number"),
        ("handoff", "the member to hand the run to is required"),
        ("handoff @a @b", "unexpected `@b`"),
        ("takeover now", "unexpected `now`"),
    ] {
        let err = parse(bad).unwrap_err().to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
    assert_eq!(
        parse("history RB-00012").unwrap(),
        Command::History { runbook: rb(12) }
    );
    assert_eq!(
        parse("diff RB-00012 2 3").unwrap(),
        Command::Diff {
            runbook: rb(12),
            from: 2,
            to: 3
        }
    );
    assert_eq!(
        parse("diff RB-00012 v2 v3").unwrap(),
        Command::Diff {
            runbook: rb(12),
            from: 2,
            to: 3
        }
    );
    assert_eq!(
        parse("/publish RB-00012").unwrap(),
        Command::Publish { runbook: rb(12) }
    );
}

fn message(input: &str) -> String {
    parse(input).unwrap_err().to_string()
}

#[test]
fn mistakes_are_answered_with_the_usage_meant() {
    assert_eq!(
        message("skip"),
        "a skip reason is required. Usage: /runbook skip <reason>"
    );
    assert_eq!(
        message("/runbook skip EX-00001"),
        "a skip reason is required. Usage: /runbook skip <reason>"
    );
    assert_eq!(
        message("fail"),
        "a failure note is required. Usage: /runbook fail <note>"
    );
    assert_eq!(
        message("abort"),
        "an abort reason is required. Usage: /runbook abort <reason>"
    );
    assert!(message("show").contains("Usage: /runbook show RB-00012"));
    assert!(message("show EX-00001").contains("expected a RB- key"));
    assert!(message("show banana").contains("is not a key"));
    assert!(message("show RB-1 extra").contains("unexpected `extra`"));
    assert!(message("run").contains("Usage: /runbook run RB-00012"));
    assert!(message("run RB-1 EX-2").contains("cannot be linked"));
    assert!(message("run RB-1 CR-2 CR-3").contains("at most one change"));
    assert!(message("run RB-1 --change INC-3").contains("--change"));
    assert!(message("diff RB-1 2").contains("the to version is required"));
    assert!(message("diff RB-1 0 2").contains("versions start at 1"));
    assert!(message("approve now").contains("Usage: /runbook approve"));
    assert!(message("search").contains("Usage: /runbook search <words>"));
}

#[test]
fn unknown_commands_get_the_closest_one() {
    let e = parse("dne").unwrap_err();
    assert_eq!(
        e,
        ParseError::Unknown {
            word: "dne".into(),
            suggestion: Some(Subcommand::Done)
        }
    );
    assert_eq!(e.to_string(), "unknown command `dne`; did you mean `done`?");
    let suggest = |w: &str| match parse(w).unwrap_err() {
        ParseError::Unknown { suggestion, .. } => suggestion,
        other => panic!("{other:?}"),
    };
    assert_eq!(suggest("hlep"), Some(Subcommand::Help));
    assert_eq!(suggest("aprove"), Some(Subcommand::Approve));
    assert_eq!(suggest("start RB-1"), Some(Subcommand::Run));
    assert_eq!(suggest("RB-00001"), Some(Subcommand::Show));
    assert_eq!(suggest("pub"), Some(Subcommand::Publish));
    assert_eq!(suggest("xyzzy"), None);
    assert!(parse("help xyzzy").is_err());
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let long = format!("done {}", "x".repeat(MAX_INPUT_BYTES));
    let e = parse(&long).unwrap_err();
    assert!(matches!(e, ParseError::TooLong { len } if len == long.len()));
    assert!(e.to_string().contains("at most 8192 bytes"));
    let just = format!("done {}", "x".repeat(MAX_INPUT_BYTES - 5));
    assert!(parse(&just).is_ok());
}

fn key(kind: KeyKind) -> impl Strategy<Value = Key> + Clone {
    (1u64..2_000_000).prop_map(move |n| Key::new(kind, n))
}

/// Free text as a user types it: trimmed, not empty, possibly with keys, `--` and newlines in it.
fn free_text() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        "[a-zA-Z0-9_.,;:!?'\"()<>&@*#/-]{1,12}",
        Just("--".to_owned()),
        Just("EX-00001".to_owned()),
        Just("RB-00002".to_owned()),
        Just("<!channel>".to_owned()),
        Just("/runbook".to_owned()),
        "\\PC{1,4}",
    ];
    let sep = prop_oneof![Just(" "), Just("  "), Just("\n"), Just("\t")];
    (word.clone(), proptest::collection::vec((sep, word), 0..8)).prop_filter_map(
        "trimmed and not empty",
        |(first, rest)| {
            let mut s = first;
            for (sep, w) in rest {
                s.push_str(sep);
                s.push_str(&w);
            }
            let t = s.trim().to_owned();
            (!t.is_empty() && t == s && !t.chars().any(char::is_control)).then_some(t)
        },
    )
}

fn command() -> impl Strategy<Value = Command> {
    let opt_ex = proptest::option::of(key(KeyKind::Execution));
    prop_oneof![
        proptest::option::of(proptest::sample::select(Subcommand::ALL.to_vec()))
            .prop_map(|topic| Command::Help { topic }),
        proptest::option::of(free_text()).prop_map(|category| Command::List { category }),
        free_text().prop_map(|words| Command::Search { words }),
        key(KeyKind::Runbook).prop_map(|runbook| Command::Show { runbook }),
        (
            key(KeyKind::Runbook),
            proptest::option::of(key(KeyKind::Change)),
            proptest::option::of(key(KeyKind::Incident)),
            any::<bool>()
        )
            .prop_map(|(runbook, change, incident, rehearsal)| Command::Run {
                runbook,
                change,
                incident,
                rehearsal
            }),
        opt_ex
            .clone()
            .prop_map(|execution| Command::Status { execution }),
        (opt_ex.clone(), proptest::option::of(free_text()))
            .prop_map(|(execution, note)| Command::Done { execution, note }),
        (opt_ex.clone(), free_text())
            .prop_map(|(execution, reason)| Command::Skip { execution, reason }),
        (opt_ex.clone(), free_text())
            .prop_map(|(execution, note)| Command::Fail { execution, note }),
        opt_ex
            .clone()
            .prop_map(|execution| Command::Report { execution }),
        opt_ex
            .clone()
            .prop_map(|execution| Command::Approve { execution }),
        opt_ex
            .clone()
            .prop_map(|execution| Command::Retry { execution }),
        (opt_ex.clone(), free_text())
            .prop_map(|(execution, reason)| Command::Abort { execution, reason }),
        (
            opt_ex.clone(),
            proptest::option::of(1u32..500),
            prop_oneof![
                free_text(),
                free_text().prop_map(|t| format!("--step {t}")),
                Just("--".to_owned())
            ]
        )
            .prop_map(|(execution, step, text)| Command::Note {
                execution,
                step,
                text
            }),
        (opt_ex.clone(), "@?[a-z][a-z0-9]{0,8}|<@U[A-Z0-9]{4,9}>")
            .prop_map(|(execution, to)| Command::Handoff { execution, to }),
        opt_ex.prop_map(|execution| Command::Takeover { execution }),
        key(KeyKind::Runbook).prop_map(|runbook| Command::History { runbook }),
        (key(KeyKind::Runbook), 1u32..1000, 1u32..1000)
            .prop_map(|(runbook, from, to)| Command::Diff { runbook, from, to }),
        key(KeyKind::Runbook).prop_map(|runbook| Command::Publish { runbook }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        let _ = parse(&s);
        let _ = parse(&format!("/runbook {s}"));
    }

    #[test]
    fn near_commands_never_panic(
        words in proptest::collection::vec(
            prop_oneof![
                proptest::sample::select(Subcommand::ALL.iter().map(|s| s.name().to_owned()).collect::<Vec<_>>()),
                Just("--".to_owned()), Just("EX-1".to_owned()), Just("RB-0".to_owned()),
                Just("CR-99999999999999999999".to_owned()), Just("--change".to_owned()),
                Just("v0".to_owned()), Just("--step".to_owned()), Just("0".to_owned()), "\\PC{0,6}",
            ],
            0..6,
        )
    ) {
        let _ = parse(&words.join(" "));
    }

    #[test]
    fn valid_commands_round_trip(cmd in command()) {
        let text = cmd.to_string();
        prop_assert_eq!(parse(&text), Ok(cmd.clone()), "text: {:?}", text);
        prop_assert_eq!(parse(&format!("/runbook {text}")), Ok(cmd));
    }
}
