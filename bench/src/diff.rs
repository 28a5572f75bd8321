//! `runbook::diff::diff` of two 500-step versions (the pair of vigilo-core's own speed test).

use std::time::Instant;

use anyhow::{Result, ensure};
use vigilo_core::ids::StepId;
use vigilo_core::runbook::diff::diff;
use vigilo_core::runbook::{RunbookBody, RunbookInput, StepInput};

use crate::stats::Latencies;

fn body(steps: Vec<StepInput>) -> Result<RunbookBody> {
    Ok(RunbookInput {
        title: "Rotate node pools".into(),
        description: String::new(),
        category: String::new(),
        steps,
    }
    .validate()?)
}

/// Two 500-step versions with a few hundred bytes per step, ~10% of steps changed, two removed,
/// one added and one moved.
pub fn big_pair() -> Result<(RunbookBody, RunbookBody)> {
    let steps: Vec<StepInput> = (0..500)
        .map(|i| StepInput {
            id: Some(StepId::new()),
            title: format!("Step {i}: drain node pool {}", i % 17),
            description: format!(
                "Cordon the nodes of pool {i}.\nDrain them one by one with a grace period of {} s.\n\
                 Watch the pod disruption budgets while draining.\nDo not continue while \
                 any pod is pending.\n",
                30 + i % 5
            ),
            owner_role: "sre".to_owned(),
            est_minutes: 5 + (i % 7),
            expected_outcome: format!("All pods of pool {i} run elsewhere.\nNo alert fires.\n"),
            verification: format!("kubectl get pods -o wide | grep pool-{i}\n"),
            rollback_note: "Uncordon the nodes.\n".to_owned(),
            requires_approval: i % 10 == 0,
            approvals_required: 0,
            approval_expires_minutes: None,
            is_destructive: i % 25 == 0,
        })
        .collect();
    let from = body(steps.clone())?;
    let mut next = steps;
    for (i, s) in next.iter_mut().enumerate() {
        if i % 10 == 3 {
            s.description = s.description.replace("one by one", "two at a time");
            s.description.push_str("Post in #ops when done.\n");
            s.est_minutes += 1;
        }
    }
    next.remove(250);
    next.remove(100);
    let moved = next.remove(400);
    next.insert(10, moved);
    next.push(StepInput {
        title: "Announce completion".to_owned(),
        ..StepInput::default()
    });
    next.truncate(500);
    let to = body(next)?;
    Ok((from, to))
}

/// Diffs the pair `runs` times after a few warm-up runs; checks the result once.
pub fn measure(runs: usize) -> Result<Latencies> {
    let (from, to) = big_pair()?;
    let d = diff(1, &from, 2, &to);
    ensure!(
        (
            d.summary.removed,
            d.summary.added,
            d.summary.moved,
            d.summary.changed
        ) == (2, 1, 1, 50),
        "unexpected diff summary {:?}",
        d.summary
    );
    for _ in 0..5 {
        std::hint::black_box(diff(1, &from, 2, &to));
    }
    let mut latencies = Latencies::default();
    for _ in 0..runs {
        let t = Instant::now();
        std::hint::black_box(diff(1, &from, 2, &to));
        latencies.push(t.elapsed());
    }
    Ok(latencies)
}
