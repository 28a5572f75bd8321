//! A throughput benchmark of step transitions on PostgreSQL (ignored by default; needs
//! `VIGILO_TEST_PG_URL`):
//!
//! ```text
//! VIGILO_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo test -p vigilo-store --features postgres --test pg_bench -- --ignored --nocapture
//! ```
//!
//! Each client walks executions of a ten-step runbook step by step ("done"), as fast as it can,
//! for a few seconds (starting a new execution when one completes; starts count as
//! transitions too). A transition is one [`Store::commit`]: the execution's new revision, its step
//! event, and one audit entry chained after the workspace's head. Measured with 1 and 8 clients,
//! all in one workspace (one audit chain, so commits serialise on its head) and each in a
//! workspace of its own; once through the store alone, once through the service
//! ([`Vigilo::act`], which also reads the actor, the execution and the workspace).

#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use vigilo_core::execution::machine::{self, Command};
use vigilo_core::execution::{Execution, ExecutionStatus};
use vigilo_core::ids::Key;
use vigilo_core::runbook::{RunbookInput, StepInput};
use vigilo_core::service::{CreateRunbook, StartOptions, Vigilo, Who};
use vigilo_core::store::{Commit, Write};
use vigilo_store::postgres::{PgOptions, PgStore, ScratchDatabase};

const URL_VAR: &str = "VIGILO_TEST_PG_URL";
const RUN_FOR: Duration = Duration::from_secs(4);
const STEPS: u32 = 10;

/// How a client applies a transition.
#[derive(Clone, Copy, Debug)]
enum Via {
    Store,
    Service,
}

struct Client {
    vigilo: Vigilo,
    who: Who,
    runbook: Key,
}

impl Client {
    async fn start(&self) -> Execution {
        self.vigilo
            .start_execution(&self.who, self.runbook, StartOptions::default())
            .await
            .unwrap()
    }

    /// Marks the current step done; returns the execution after it.
    async fn step(&self, ex: &Execution, via: Via) -> Execution {
        let step = ex.current_index().map(|i| i as u32 + 1).unwrap();
        let cmd = Command::Done { step, note: None };
        match via {
            Via::Service => {
                self.vigilo
                    .act(&self.who, ex.key, cmd)
                    .await
                    .unwrap()
                    .execution
            }
            Via::Store => {
                let actor = self.vigilo.actor(&self.who).await.unwrap();
                let policy = Default::default();
                let t = machine::apply(ex, &cmd, &actor, &policy, self.vigilo.now()).unwrap();
                let mut draft = vigilo_core::audit::AuditDraft {
                    at: self.vigilo.now(),
                    actor: Some(actor.id()),
                    actor_handle: Some(actor.user.handle.to_string()),
                    action: "execution.step_done".into(),
                    target: ex.key.to_string(),
                    details: serde_json::json!({ "step": step }),
                    links: Default::default(),
                };
                draft.links.execution = Some(ex.key);
                self.vigilo
                    .store()
                    .commit(Commit {
                        workspace: self.who.workspace,
                        writes: vec![
                            Write::Execution {
                                execution: t.execution.clone(),
                                expected_rev: Some(ex.rev),
                            },
                            Write::StepEvent(t.event),
                        ],
                        audit: draft,
                    })
                    .await
                    .unwrap();
                t.execution
            }
        }
    }
}

/// A workspace with its owner and a published runbook of [`STEPS`] steps.
async fn workspace(vigilo: &Vigilo, slug: &str) -> (Who, Key) {
    let (ws, owner) = vigilo
        .create_workspace(slug, &format!("{slug}-owner"), "Owner")
        .await
        .unwrap();
    let who = Who::new(ws.id, owner.id);
    let input = RunbookInput {
        title: "Long procedure".into(),
        description: String::new(),
        category: "bench".into(),
        steps: (1..=STEPS)
            .map(|i| StepInput {
                title: format!("Step {i}"),
                est_minutes: 1,
                ..StepInput::default()
            })
            .collect(),
    };
    let rb = vigilo
        .create_runbook(
            &who,
            input,
            CreateRunbook {
                publish: true,
                ..CreateRunbook::default()
            },
        )
        .await
        .unwrap();
    (who, rb.key)
}

/// Transitions per second with `clients` clients, in one shared workspace or one each.
async fn measure(store: Arc<PgStore>, clients: usize, shared: bool, via: Via, round: usize) -> f64 {
    let vigilo = Vigilo::new(store);
    let mut setups = Vec::new();
    for i in 0..clients {
        if shared && i > 0 {
            let first: &(Who, Key) = &setups[0];
            setups.push(*first);
        } else {
            setups.push(workspace(&vigilo, &format!("bench-{round}-{i}")).await);
        }
    }
    let deadline = Instant::now() + RUN_FOR;
    let started = Instant::now();
    let tasks: Vec<_> = setups
        .into_iter()
        .map(|(who, runbook)| {
            let client = Client {
                vigilo: vigilo.clone(),
                who,
                runbook,
            };
            tokio::spawn(async move {
                let mut done = 0u64;
                let mut ex = client.start().await;
                while Instant::now() < deadline {
                    ex = client.step(&ex, via).await;
                    done += 1;
                    if ex.status == ExecutionStatus::Completed {
                        ex = client.start().await;
                        done += 1;
                    }
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture and VIGILO_TEST_PG_URL"]
async fn step_transitions_per_second() {
    let Ok(admin) = std::env::var(URL_VAR) else {
        println!("SKIPPED step_transitions_per_second: {URL_VAR} is not set");
        return;
    };
    let scratch = ScratchDatabase::create(&admin).await.unwrap();
    let store = Arc::new(
        PgStore::connect(scratch.url(), PgOptions::default().max_connections(16))
            .await
            .unwrap(),
    );
    let mut round = 0;
    for via in [Via::Store, Via::Service] {
        for (clients, shared) in [(1, true), (8, true), (8, false)] {
            round += 1;
            let rate = measure(store.clone(), clients, shared, via, round).await;
            println!(
                "{via:?}: {clients} client(s), {}: {rate:.0} transitions/s",
                if shared {
                    "one workspace"
                } else {
                    "a workspace each"
                }
            );
        }
    }
    drop(store);
    scratch.drop_database().await;
}
