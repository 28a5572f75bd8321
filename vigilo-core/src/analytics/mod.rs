//! Learning from runs: per-step timing and outcomes across executions.
//!
//! A store answers [`Store::run_facts`](crate::store::Store::run_facts) with the few columns
//! of the counted executions' events ([`RunFacts`]); the pure functions here turn them into
//! figures ([`runbook_stats`], [`workspace_stats`]) and proposals ([`suggest`]). The service
//! methods are [`Vigilo::runbook_stats`](crate::service::Vigilo::runbook_stats) and
//! [`Vigilo::workspace_stats`](crate::service::Vigilo::workspace_stats).

pub mod facts;
pub mod figures;
pub mod suggest;

#[cfg(test)]
mod props;

pub use facts::{EventFact, FACT_KINDS, RunFacts, StatsQuery, fact_kind};
pub use figures::{
    RunbookShape, RunbookStats, SLOWEST_STEPS, SlowStep, StepStats, WeekStats, WorkspaceStats,
    minutes, runbook_stats, week_of, workspace_stats,
};
pub use suggest::{MIN_RUNS_TO_SUGGEST, Suggestion, Typical, suggest};
