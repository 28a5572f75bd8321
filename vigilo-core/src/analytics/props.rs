//! Property tests of the figures over histories the state machine builds.

#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration};
use proptest::prelude::*;

use super::*;
use crate::execution::machine::{self, Command, StartParams};
use crate::execution::{Execution, StepEvent};
use crate::ids::{Key, KeyKind, RunbookId, UserId, WorkspaceId};
use crate::runbook::{Runbook, RunbookInput, StepInput};
use crate::workspace::{Actor, Membership, Policy, User};

fn runbook() -> Runbook {
    let body = RunbookInput {
        title: "Props".into(),
        steps: (1..=4)
            .map(|i| StepInput {
                title: format!("Step {i}"),
                est_minutes: 5,
                requires_approval: i == 2,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
    .validate()
    .unwrap();
    let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    Runbook {
        id: RunbookId::new(),
        workspace: WorkspaceId::new(),
        key: Key::new(KeyKind::Runbook, 1),
        body,
        version: 1,
        owner: UserId::new(),
        is_published: true,
        archived_at: None,
        created_at: at,
        updated_at: at,
        rev: 1,
    }
}

fn actor(ws: WorkspaceId, handle: &str, role: crate::roles::WorkspaceRole) -> Actor {
    let user = User {
        id: UserId::new(),
        handle: crate::fields::Name::parse_field("h", handle).unwrap(),
        rev: 1,
    };
    Actor {
        membership: Membership {
            workspace: ws,
            user: user.id,
            role,
            team_roles: Default::default(),
            display_name: Default::default(),
            chat_identities: vec![],
            removed_at: None,
            rev: 1,
        },
        user,
    }
}

/// One execution walked by `moves` (each a command choice and minutes later), applying only
/// what the machine accepts.
fn walk(rb: &Runbook, n: u32, rehearsal: bool, moves: &[(u8, i64)]) -> (Execution, Vec<StepEvent>) {
    let op = actor(rb.workspace, "op", crate::roles::WorkspaceRole::Operator);
    let admin = actor(rb.workspace, "ad", crate::roles::WorkspaceRole::Admin);
    let mut now = rb.created_at + Duration::days(i64::from(n));
    let t = machine::start(
        rb,
        StartParams {
            key: Key::new(KeyKind::Execution, u64::from(n)),
            operator: op.id(),
            change: None,
            incident: None,
            rehearsal,
            channel: None,
        },
        now,
    );
    let (mut e, mut events) = (t.execution, vec![t.event]);
    for (choice, minutes) in moves {
        let Some(idx) = e.current_index() else { break };
        let step = idx as u32 + 1;
        now += Duration::minutes(*minutes);
        let (cmd, who) = match choice % 8 {
            0..=2 => (Command::Done { step, note: None }, &op),
            3 => (
                Command::Skip {
                    step,
                    reason: "no".into(),
                },
                &op,
            ),
            4 => (
                Command::Fail {
                    step,
                    note: "x".into(),
                },
                &op,
            ),
            5 => (Command::Retry { step }, &op),
            6 => (Command::Approve { step }, &admin),
            _ => (
                Command::Abort {
                    reason: "stop".into(),
                },
                &op,
            ),
        };
        if let Ok(t) = machine::apply(&e, &cmd, who, &Policy::default(), now) {
            e = t.execution;
            events.push(t.event);
        }
    }
    (e, events)
}

type History = Vec<(bool, Vec<(u8, i64)>)>;

fn history() -> impl Strategy<Value = History> {
    prop::collection::vec(
        (
            prop::bool::weighted(0.2),
            prop::collection::vec((any::<u8>(), 0i64..90), 0..20),
        ),
        0..12,
    )
}

fn built(rb: &Runbook, h: &History) -> Vec<(Execution, Vec<StepEvent>)> {
    h.iter()
        .enumerate()
        .map(|(i, (rehearsal, moves))| walk(rb, i as u32 + 1, *rehearsal, moves))
        .collect()
}

fn stats_of(rb: &Runbook, runs: &[(Execution, Vec<StepEvent>)], q: &StatsQuery) -> RunbookStats {
    let facts: Vec<RunFacts> = runs
        .iter()
        .filter_map(|(e, ev)| RunFacts::of(e, ev, q))
        .collect();
    let shape = RunbookShape {
        key: Some(rb.key),
        title: "Props".into(),
        versions: [(1, rb.body.steps.clone())].into_iter().collect(),
    };
    runbook_stats(rb.key, &shape, &facts, q)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The order of events (and of executions) does not change the figures.
    #[test]
    fn order_of_events_does_not_matter(h in history(), seed in any::<u64>()) {
        let rb = runbook();
        let q = StatsQuery::runbook(rb.id);
        let runs = built(&rb, &h);
        let mut facts: Vec<RunFacts> =
            runs.iter().filter_map(|(e, ev)| RunFacts::of(e, ev, &q)).collect();
        let shape = RunbookShape {
            key: Some(rb.key),
            title: "Props".into(),
            versions: [(1, rb.body.steps.clone())].into_iter().collect(),
        };
        let before = runbook_stats(rb.key, &shape, &facts, &q);
        // A deterministic shuffle from `seed`.
        let mut x = seed | 1;
        let mut next = |n: usize| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; (x % n.max(1) as u64) as usize };
        for f in &mut facts {
            for i in (1..f.events.len()).rev() { let j = next(i + 1); f.events.swap(i, j); }
        }
        for i in (1..facts.len()).rev() { let j = next(i + 1); facts.swap(i, j); }
        let after = runbook_stats(rb.key, &shape, &facts, &q);
        prop_assert_eq!(before, after);
    }

    /// Rehearsals never count unless asked for: the figures equal those of the history
    /// without them.
    #[test]
    fn rehearsals_never_count(h in history()) {
        let rb = runbook();
        let q = StatsQuery::runbook(rb.id);
        let runs = built(&rb, &h);
        let real: Vec<_> = runs.iter().filter(|(e, _)| !e.rehearsal).cloned().collect();
        prop_assert_eq!(stats_of(&rb, &runs, &q), stats_of(&rb, &real, &q));
        let with = stats_of(&rb, &runs, &StatsQuery { include_rehearsals: true, ..q.clone() });
        prop_assert_eq!(with.executions, runs.len() as u64);
    }

    /// A step has a duration exactly when it was done at least once: never a zero standing
    /// in for "never done"; the runs add up.
    #[test]
    fn durations_only_from_done_runs(h in history()) {
        let rb = runbook();
        let runs = built(&rb, &h);
        let s = stats_of(&rb, &runs, &StatsQuery::runbook(rb.id));
        for step in &s.steps {
            prop_assert_eq!(step.median_minutes.is_some(), step.done > 0, "{:?}", step);
            prop_assert_eq!(step.p90_minutes.is_some(), step.done > 0);
            prop_assert!(step.done + step.skipped <= step.runs);
            prop_assert!(step.failed_runs <= step.runs);
            if let (Some(m), Some(p)) = (step.median_minutes, step.p90_minutes) {
                prop_assert!(m <= p, "median {} > p90 {}", m, p);
            }
        }
        prop_assert_eq!(s.executions, s.completed + s.aborted + s.running);
    }
}
