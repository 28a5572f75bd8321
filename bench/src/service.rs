//! The system under test: the real [`Vigilo`] service over a [`SqliteStore`] file.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use vigilo_core::execution::Execution;
use vigilo_core::execution::machine::Command;
use vigilo_core::ids::{Key, KeyKind};
use vigilo_core::runbook::{RunbookInput, StepInput};
use vigilo_core::service::{CreateRunbook, StartOptions, Vigilo, Who};
use vigilo_core::store::Store as _;
use vigilo_store::{SqliteOptions, SqliteStore, WriteStats};

use crate::stats::Latencies;

/// Steps of the runbook every execution benchmark walks.
pub const STEPS: u32 = 10;

/// A store file with workspace `bench`, its owner, and a published 10-step runbook.
pub struct Service {
    /// The store (kept concrete for its write statistics and `close`).
    pub store: Arc<SqliteStore>,
    /// The service over it.
    pub vigilo: Vigilo,
    /// The owner, acting.
    pub who: Who,
    /// The runbook walked.
    pub runbook: Key,
}

/// A runbook step with realistic amounts of text (a few hundred bytes).
pub fn step_input(i: u32) -> StepInput {
    StepInput {
        id: None,
        title: format!("Step {i}: drain and verify node pool {i}"),
        description: format!(
            "Cordon the nodes of pool {i}, then drain them one at a time with a grace period of \
             30 s.\nWatch the pod disruption budgets; do not continue while a pod is pending."
        ),
        owner_role: String::new(),
        est_minutes: 5,
        expected_outcome: format!("Every pod of pool {i} runs elsewhere; no alert fires."),
        verification: format!("kubectl get pods -o wide | grep pool-{i}"),
        rollback_note: "Uncordon the nodes.".into(),
        requires_approval: false,
        approvals_required: 0,
        approval_expires_minutes: None,
        is_destructive: false,
    }
}

impl Service {
    /// Creates the store file at `path` (default options: WAL, `synchronous=FULL`) and the
    /// workspace, owner and runbook.
    pub async fn create(path: &Path) -> Result<Self> {
        Self::create_with(path, SqliteOptions::default()).await
    }

    /// Like [`Service::create`] with other store options.
    pub async fn create_with(path: &Path, options: SqliteOptions) -> Result<Self> {
        let store = Arc::new(
            SqliteStore::open(path, options)
                .await
                .with_context(|| format!("opening {}", path.display()))?,
        );
        let vigilo = Vigilo::new(store.clone());
        let (ws, owner) = vigilo.create_workspace("bench", "alice", "Alice").await?;
        let who = Who::new(ws.id, owner.id);
        let input = RunbookInput {
            title: "Rotate the node pools".into(),
            description: "Move every workload off the old node pools, one pool at a time.".into(),
            category: "kubernetes".into(),
            steps: (1..=STEPS).map(step_input).collect(),
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
            .await?;
        Ok(Self {
            store,
            vigilo,
            who,
            runbook: rb.key,
        })
    }

    /// Opens a file made by [`Service::create`] again.
    pub async fn open(path: &Path) -> Result<Self> {
        let store = Arc::new(
            SqliteStore::open(path, SqliteOptions::default())
                .await
                .with_context(|| format!("opening {}", path.display()))?,
        );
        let ws = store.workspace_by_slug("bench").await?;
        let owner = store.user_by_handle("alice").await?;
        let vigilo = Vigilo::new(store.clone());
        Ok(Self {
            store,
            vigilo,
            who: Who::new(ws.id, owner.id),
            runbook: Key::new(KeyKind::Runbook, 1),
        })
    }

    /// Starts an execution of the runbook.
    pub async fn start(&self) -> Result<Execution> {
        Ok(self
            .vigilo
            .start_execution(&self.who, self.runbook, StartOptions::default())
            .await?)
    }

    /// Marks `step` of `execution` done.
    pub async fn done(&self, execution: Key, step: u32) -> Result<()> {
        let out = self
            .vigilo
            .act(&self.who, execution, Command::Done { step, note: None })
            .await?;
        if out.event.seq != u64::from(step) + 1 {
            bail!("{execution}: step {step} done as event {}", out.event.seq);
        }
        Ok(())
    }

    /// `n` step transitions through `Vigilo::act`, one execution at a time (executions are
    /// started as needed, untimed); the latency of each.
    pub async fn sequential_acts(&self, n: usize) -> Result<Latencies> {
        let mut latencies = Latencies::default();
        while latencies.len() < n {
            let ex = self.start().await?;
            for step in 1..=STEPS {
                if latencies.len() == n {
                    break;
                }
                let t = Instant::now();
                self.done(ex.key, step).await?;
                latencies.push(t.elapsed());
            }
        }
        Ok(latencies)
    }

    /// `tasks` executions walked concurrently, one Tokio task each (started first, untimed):
    /// the wall time of the `tasks * STEPS` transitions and what the writer committed meanwhile.
    pub async fn concurrent_walks(&self, tasks: usize) -> Result<(Duration, WriteStats)> {
        let mut starts = tokio::task::JoinSet::new();
        for _ in 0..tasks {
            let (vigilo, who, runbook) = (self.vigilo.clone(), self.who, self.runbook);
            starts.spawn(async move {
                vigilo
                    .start_execution(&who, runbook, StartOptions::default())
                    .await
            });
        }
        let mut keys = Vec::with_capacity(tasks);
        while let Some(started) = starts.join_next().await {
            keys.push(started??.key);
        }
        let before = self.store.write_stats();
        let t = Instant::now();
        let mut walks = tokio::task::JoinSet::new();
        for key in keys {
            let (vigilo, who) = (self.vigilo.clone(), self.who);
            walks.spawn(async move {
                for step in 1..=STEPS {
                    vigilo
                        .act(&who, key, Command::Done { step, note: None })
                        .await?;
                }
                Ok::<_, vigilo_core::error::Error>(())
            });
        }
        while let Some(walked) = walks.join_next().await {
            walked??;
        }
        let elapsed = t.elapsed();
        let after = self.store.write_stats();
        Ok((
            elapsed,
            WriteStats {
                transactions: after.transactions - before.transactions,
                writes: after.writes - before.writes,
            },
        ))
    }

    /// Drops the service and closes the store (the writer checkpoints on close).
    pub async fn close(self) -> Result<()> {
        let Self { store, vigilo, .. } = self;
        drop(vigilo);
        match Arc::try_unwrap(store) {
            Ok(store) => {
                store.close().await;
                Ok(())
            }
            Err(_) => bail!("the store is still shared"),
        }
    }
}
