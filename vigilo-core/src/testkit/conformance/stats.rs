//! Timing figures: a hand-built history of two versions, and the numbers every store must give.

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::analytics::{self, RunbookShape, RunbookStats, StatsQuery};
use crate::execution::Execution;
use crate::execution::machine::{self, Command, StartParams};
use crate::ids::KeyKind;
use crate::runbook::{Runbook, RunbookInput, RunbookVersion, StepInput, VersionSource};
use crate::store::{Store, Write};

use super::fixtures::*;

/// Monday 2026-01-05 00:00 UTC: the first execution starts here.
fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-05T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn at(day: i64, minute: i64) -> DateTime<Utc> {
    t0() + Duration::days(day) + Duration::minutes(minute)
}

fn step(title: &str, est: i64, gated: bool) -> StepInput {
    StepInput {
        title: title.into(),
        description: format!("Do {title}"),
        est_minutes: est,
        requires_approval: gated,
        ..StepInput::default()
    }
}

use Command::{Abort, Approve, Done, Fail, Retry, Skip};

fn done(step: u32) -> Command {
    Done { step, note: None }
}

fn skip(step: u32) -> Command {
    Skip {
        step,
        reason: "not needed".into(),
    }
}

fn fail(step: u32) -> Command {
    Fail {
        step,
        note: "broke".into(),
    }
}

/// Starts `rb` at `(day, 0)` and applies each command at its minute, committing each event.
async fn walk(
    store: &dyn Store,
    ctx: &Ctx,
    rb: &Runbook,
    day: i64,
    rehearsal: bool,
    script: &[(i64, Command)],
) -> Execution {
    let key = store
        .allocate_key(ctx.id(), KeyKind::Execution)
        .await
        .unwrap();
    let started = machine::start(
        rb,
        StartParams {
            key,
            operator: ctx.bob.id,
            change: None,
            incident: None,
            rehearsal,
            channel: None,
        },
        at(day, 0),
    );
    commit_ok(
        store,
        ctx.id(),
        vec![
            Write::Execution {
                execution: started.execution.clone(),
                expected_rev: None,
            },
            Write::StepEvent(started.event.clone()),
        ],
        draft_by(&ctx.bob, "execution.started", &key.to_string()),
    )
    .await;
    let mut ex = started.execution;
    for (minute, cmd) in script {
        let by = if matches!(cmd, Approve { .. }) {
            &ctx.alice
        } else {
            &ctx.bob
        };
        let t = machine::apply(&ex, cmd, &ctx.actor(by), &ctx.ws.policy, at(day, *minute))
            .unwrap_or_else(|e| panic!("{cmd:?} on {key}: {e}"));
        let rev = ex.rev;
        commit_ok(
            store,
            ctx.id(),
            vec![
                Write::Execution {
                    execution: t.execution.clone(),
                    expected_rev: Some(rev),
                },
                Write::StepEvent(t.event.clone()),
            ],
            draft_by(by, "execution.step", &key.to_string()),
        )
        .await;
        ex = t.execution;
    }
    ex
}

/// The figures of `rb` from the store's facts, the way the service computes them.
async fn figures(
    store: &dyn Store,
    ctx: &Ctx,
    shape: &RunbookShape,
    query: StatsQuery,
) -> RunbookStats {
    let facts = store.run_facts(ctx.id(), &query).await.unwrap();
    analytics::runbook_stats(shape.key.unwrap(), shape, &facts, &query)
}

fn row<'a>(stats: &'a RunbookStats, title: &str) -> &'a analytics::StepStats {
    stats
        .steps
        .iter()
        .find(|s| s.title == title)
        .unwrap_or_else(|| panic!("no row {title:?} in {:#?}", stats.steps))
}

/// Six executions of a runbook over two versions (a step renamed and moved, one added, one
/// failure and retry, skips, approvals, an abort, a rehearsal, one still running): every
/// figure is stated, for the whole history, one version, a window and with rehearsals.
pub async fn run_facts_figures(store: &dyn Store) {
    let ctx = setup(store, "stats").await;
    let other = setup(store, "stats-other").await;
    let v1_input = RunbookInput {
        title: "Rotate certificates".into(),
        steps: vec![
            step("A", 5, false),
            step("B", 10, true),
            step("C", 3, false),
        ],
        ..RunbookInput::default()
    };
    let rb1 = add_runbook(store, &ctx, v1_input.validate().unwrap(), &ctx.alice, true).await;
    // Version 2: A's estimate 4, C before B, B renamed (same id), D added.
    let (a, b, c) = (&rb1.body.steps[0], &rb1.body.steps[1], &rb1.body.steps[2]);
    let mut a2 = StepInput::from(a);
    a2.est_minutes = 4;
    let mut b2 = StepInput::from(b);
    b2.title = "Approve and switch".into();
    let v2_input = RunbookInput {
        title: "Rotate certificates".into(),
        steps: vec![a2, StepInput::from(c), b2, step("D", 2, false)],
        ..RunbookInput::default()
    };
    let mut rb2 = rb1.clone();
    rb2.body = v2_input.validate().unwrap();
    rb2.version = 2;
    let version2 = RunbookVersion {
        runbook: rb1.id,
        version: 2,
        body: rb2.body.clone(),
        author: ctx.alice.id,
        saved_at: now(),
        source: VersionSource::Edit,
    };
    commit_ok(
        store,
        ctx.id(),
        vec![Write::update(&mut rb2, 1), Write::RunbookVersion(version2)],
        runbook_draft(&ctx.alice, "runbook.edited", rb1.key),
    )
    .await;
    let shape = RunbookShape {
        key: Some(rb1.key),
        title: "Rotate certificates".into(),
        versions: [(1, rb1.body.steps.clone()), (2, rb2.body.steps.clone())]
            .into_iter()
            .collect(),
    };

    // v1: A, B (gated), C.
    walk(
        store,
        &ctx,
        &rb1,
        0,
        false,
        &[
            (6, done(1)),
            (8, Approve { step: 2 }),
            (20, done(2)),
            (23, done(3)),
        ],
    )
    .await;
    walk(
        store,
        &ctx,
        &rb1,
        1,
        false,
        &[
            (3, fail(1)),
            (4, Retry { step: 1 }),
            (9, done(1)),
            (13, Approve { step: 2 }),
            (21, done(2)),
            (22, skip(3)),
        ],
    )
    .await;
    // v2: A, C, B (gated), D.
    walk(
        store,
        &ctx,
        &rb2,
        8,
        false,
        &[
            (2, done(1)),
            (3, skip(2)),
            (4, Approve { step: 3 }),
            (10, done(3)),
            (11, skip(4)),
        ],
    )
    .await;
    walk(
        store,
        &ctx,
        &rb2,
        9,
        false,
        &[
            (4, done(1)),
            (5, fail(2)),
            (
                6,
                Abort {
                    reason: "gave up".into(),
                },
            ),
        ],
    )
    .await;
    walk(store, &ctx, &rb2, 10, true, &[(100, done(1))]).await;
    walk(store, &ctx, &rb1, 15, false, &[(1, done(1))]).await;
    // Another workspace's run of its own runbook never counts here.
    let foreign = add_runbook(store, &other, rb1.body.clone(), &other.alice, true).await;
    walk(store, &other, &foreign, 0, false, &[(50, done(1))]).await;

    // The whole history.
    let s = figures(store, &ctx, &shape, StatsQuery::runbook(rb1.id)).await;
    assert_eq!(
        (s.executions, s.completed, s.aborted, s.running),
        (5, 3, 1, 1)
    );
    assert_eq!(s.completion_rate, Some(0.6));
    assert_eq!(s.abort_rate, Some(0.2));
    assert_eq!(s.newest_version, Some(2));
    assert_eq!(s.est_minutes, 4 + 3 + 10 + 2);
    assert_eq!((s.median_minutes, s.p90_minutes), (Some(22.0), Some(23.0)));
    let titles: Vec<(Option<u32>, &str)> = s
        .steps
        .iter()
        .map(|r| (r.order, r.title.as_str()))
        .collect();
    assert_eq!(
        titles,
        vec![
            (Some(1), "A"),
            (Some(2), "C"),
            (Some(3), "Approve and switch"),
            (Some(4), "D")
        ]
    );
    let ra = row(&s, "A");
    assert_eq!((ra.runs, ra.done, ra.failed_runs, ra.retries), (5, 5, 1, 1));
    assert_eq!(
        (ra.est_minutes, ra.median_minutes, ra.p90_minutes),
        (4, Some(4.0), Some(6.0))
    );
    assert_eq!((ra.skip_rate, ra.fail_rate), (Some(0.0), Some(0.2)));
    let rc = row(&s, "C");
    assert_eq!((rc.runs, rc.done, rc.skipped, rc.failed_runs), (4, 1, 2, 1));
    assert_eq!(
        (rc.median_minutes, rc.skip_rate, rc.fail_rate),
        (Some(3.0), Some(0.5), Some(0.25))
    );
    let rb = row(&s, "Approve and switch");
    assert!(rb.gated);
    assert_eq!((rb.runs, rb.est_minutes), (3, 10));
    assert_eq!(
        (rb.median_minutes, rb.p90_minutes),
        (Some(12.0), Some(14.0))
    );
    assert_eq!(rb.approval_wait_median_minutes, Some(2.0));
    let rd = row(&s, "D");
    assert_eq!((rd.runs, rd.done, rd.skipped), (1, 0, 1));
    assert_eq!(
        (rd.median_minutes, rd.p90_minutes),
        (None, None),
        "always skipped: no duration"
    );
    assert_eq!(rd.skip_rate, Some(1.0));

    // Version 1 only: its titles and order, B's two runs.
    let v1 = figures(
        store,
        &ctx,
        &shape,
        StatsQuery {
            version: Some(1),
            ..StatsQuery::runbook(rb1.id)
        },
    )
    .await;
    assert_eq!(
        (v1.executions, v1.completed, v1.newest_version),
        (3, 2, Some(1))
    );
    let titles: Vec<&str> = v1.steps.iter().map(|r| r.title.as_str()).collect();
    assert_eq!(titles, vec!["A", "B", "C"]);
    assert_eq!(
        (row(&v1, "A").median_minutes, row(&v1, "A").p90_minutes),
        (Some(5.0), Some(6.0))
    );
    let b1 = row(&v1, "B");
    assert_eq!(
        (b1.median_minutes, b1.p90_minutes),
        (Some(13.0), Some(14.0))
    );
    assert_eq!(b1.approval_wait_median_minutes, Some(3.0));
    assert_eq!(row(&v1, "C").skip_rate, Some(0.5));

    // A window: from day 8 on.
    let recent = figures(
        store,
        &ctx,
        &shape,
        StatsQuery {
            since: Some(at(8, 0)),
            ..StatsQuery::runbook(rb1.id)
        },
    )
    .await;
    assert_eq!(
        (recent.executions, recent.completed, recent.aborted),
        (3, 1, 1)
    );
    assert_eq!(row(&recent, "A").median_minutes, Some(2.0));

    // With rehearsals: the 100-minute practice run of A counts.
    let all = figures(
        store,
        &ctx,
        &shape,
        StatsQuery {
            include_rehearsals: true,
            ..StatsQuery::runbook(rb1.id)
        },
    )
    .await;
    assert_eq!(all.executions, 6);
    let ra = row(&all, "A");
    assert_eq!(
        (ra.median_minutes, ra.p90_minutes),
        (Some(4.5), Some(100.0))
    );

    // The workspace at a glance.
    let facts = store
        .run_facts(ctx.id(), &StatsQuery::default())
        .await
        .unwrap();
    let shapes = [(rb1.id, shape.clone())].into_iter().collect();
    let w = analytics::workspace_stats(&facts, &shapes, &StatsQuery::default());
    assert_eq!(
        (w.executions, w.completed, w.aborted, w.running),
        (5, 3, 1, 1)
    );
    let weeks: Vec<(NaiveDate, u64, u64, u64)> = w
        .by_week
        .iter()
        .map(|x| (x.week, x.executions, x.completed, x.aborted))
        .collect();
    let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    assert_eq!(
        weeks,
        vec![
            (d("2026-01-05"), 2, 2, 0),
            (d("2026-01-12"), 2, 1, 1),
            (d("2026-01-19"), 1, 0, 0)
        ]
    );
    assert_eq!(w.slowest_steps.len(), 1);
    assert_eq!(w.slowest_steps[0].step.title, "Approve and switch");
    assert_eq!(w.slowest_steps[0].over_minutes, 2.0);

    // The other workspace sees only its own run.
    let theirs = store
        .run_facts(other.id(), &StatsQuery::default())
        .await
        .unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].runbook, foreign.id);
}
