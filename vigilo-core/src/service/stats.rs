//! Learning from runs: the figures of a runbook and of the workspace, new estimates.

use std::collections::{BTreeSet, HashMap};

use super::runbooks::{EditOutcome, subject};
use super::{Vigilo, Who};
use crate::analytics::{
    self, RunFacts, RunbookShape, RunbookStats, StatsQuery, Suggestion, Typical, WorkspaceStats,
};
use crate::authz::Action;
use crate::error::{Error, Result};
use crate::execution::{Execution, ExecutionSummary};
use crate::ids::{Key, RunbookId, WorkspaceId};
use crate::runbook::{Runbook, RunbookInput, VersionSource};
use crate::store::StoreError;

/// What [`Vigilo::apply_estimates`] did.
#[derive(Clone, Debug)]
pub struct AppliedEstimates {
    /// The figures the estimates came from.
    pub stats: RunbookStats,
    /// Every step's suggestion (kept ones say why).
    pub suggestions: Vec<Suggestion>,
    /// The save: a new version, or `changed: false` when every estimate already matched.
    pub outcome: EditOutcome,
}

impl Vigilo {
    /// The figures of runbook `key` over its executions that `query` admits (its `runbook` is
    /// set from `key`): per step, runs, estimate, median and p90 actual minutes, skip and fail
    /// rates, retries and approval waits; per runbook, completion and abort rates and total
    /// time against the estimate. Rehearsals are left out unless `query.include_rehearsals`.
    /// Anyone who may view the runbook may read them. The store answers with an aggregate
    /// read of the executions' events ([`crate::store::Store::run_facts`]), never whole
    /// executions.
    pub async fn runbook_stats(
        &self,
        who: &Who,
        key: Key,
        query: StatsQuery,
    ) -> Result<RunbookStats> {
        let actor = self.actor(who).await?;
        let rb = self.load_runbook(who, key).await?;
        self.check(&actor, Action::ViewRunbook, &subject(&rb))?;
        let query = StatsQuery {
            runbook: Some(rb.id),
            ..query
        };
        let facts = self.store.run_facts(who.workspace, &query).await?;
        let shape = self
            .shape_of(who.workspace, &rb, &facts, query.version)
            .await?;
        Ok(analytics::runbook_stats(rb.key, &shape, &facts, &query))
    }

    /// The workspace at a glance over the executions `query` admits (its `runbook` is
    /// ignored): executions, completed and aborted, runs per week, and the steps furthest over
    /// their estimate. Any member may read it.
    pub async fn workspace_stats(&self, who: &Who, query: StatsQuery) -> Result<WorkspaceStats> {
        self.actor(who).await?;
        let query = StatsQuery {
            runbook: None,
            ..query
        };
        let facts = self.store.run_facts(who.workspace, &query).await?;
        let ids: BTreeSet<RunbookId> = facts.iter().map(|f| f.runbook).collect();
        let mut shapes = HashMap::with_capacity(ids.len());
        for id in ids {
            let rb = match self.store.runbook(who.workspace, id).await {
                Ok(rb) => rb,
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let mine: Vec<RunFacts> = facts.iter().filter(|f| f.runbook == id).cloned().collect();
            shapes.insert(id, self.shape_of(who.workspace, &rb, &mine, None).await?);
        }
        Ok(analytics::workspace_stats(&facts, &shapes, &query))
    }

    /// The figures of runbook `key` and a new estimate per step of the newest version (the
    /// median of its done runs, rounded, at least 1 minute; steps with fewer than
    /// [`analytics::MIN_RUNS_TO_SUGGEST`] done runs keep theirs and say why). Saves nothing.
    pub async fn suggest_estimates(
        &self,
        who: &Who,
        key: Key,
        query: StatsQuery,
    ) -> Result<(RunbookStats, Vec<Suggestion>)> {
        let stats = self.runbook_stats(who, key, query).await?;
        let suggestions = analytics::suggest(&stats);
        Ok((stats, suggestions))
    }

    /// Saves [`Vigilo::suggest_estimates`]' proposals as a new version of runbook `key`
    /// (the normal edit permission), with one audit entry whose source says "estimates from N
    /// runs". Steps are matched by id, so a step edited meanwhile keeps its other fields.
    pub async fn apply_estimates(
        &self,
        who: &Who,
        key: Key,
        query: StatsQuery,
    ) -> Result<AppliedEstimates> {
        let (stats, suggestions) = self.suggest_estimates(who, key, query).await?;
        let rb = self.load_runbook(who, key).await?;
        let mut input = RunbookInput::from(&rb.body);
        for step in &mut input.steps {
            if let Some(s) = suggestions
                .iter()
                .find(|s| Some(s.step) == step.id && s.kept_because.is_none())
            {
                step.est_minutes = i64::from(s.est_minutes);
            }
        }
        let outcome = self
            .edit_runbook(
                who,
                key,
                input,
                Some(rb.version),
                VersionSource::Estimates {
                    runs: stats.executions,
                },
            )
            .await?;
        Ok(AppliedEstimates {
            stats,
            suggestions,
            outcome,
        })
    }

    /// How `execution` (summarised in `summary`) compares with its runbook's typical run:
    /// the median of its completed executions (rehearsals left out, this one included when
    /// it is one of them). `None` when there is no completed run to compare with.
    pub async fn typical_run(
        &self,
        who: &Who,
        execution: &Execution,
        summary: &ExecutionSummary,
    ) -> Result<Option<Typical>> {
        let stats = self
            .runbook_stats(
                who,
                execution.runbook_key,
                StatsQuery::runbook(execution.runbook),
            )
            .await?;
        Ok(Typical::of(summary.actual_minutes, &stats))
    }

    /// The steps of every version the figures need: each version the facts name, the
    /// runbook's current one (or `version`) when there are none.
    async fn shape_of(
        &self,
        workspace: WorkspaceId,
        rb: &Runbook,
        facts: &[RunFacts],
        version: Option<u32>,
    ) -> Result<RunbookShape> {
        let mut wanted: BTreeSet<u32> = facts.iter().map(|f| f.version).collect();
        if wanted.is_empty() {
            wanted.insert(version.unwrap_or(rb.version));
        }
        let mut shape = RunbookShape {
            key: Some(rb.key),
            title: rb.body.title.to_string(),
            versions: Default::default(),
        };
        for v in wanted {
            if v == rb.version {
                shape.versions.insert(v, rb.body.steps.clone());
                continue;
            }
            match self.store.runbook_version(workspace, rb.id, v).await {
                Ok(saved) => {
                    shape.versions.insert(v, saved.body.steps);
                }
                Err(StoreError::NotFound(_)) if version == Some(v) => {
                    return Err(Error::not_found(
                        crate::error::Thing::RunbookVersion,
                        format!("{} v{v}", rb.key),
                        format!(
                            "{} has no version {v} (it is at version {})",
                            rb.key, rb.version
                        ),
                    ));
                }
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(shape)
    }
}
