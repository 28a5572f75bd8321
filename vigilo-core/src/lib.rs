//! # vigilo-core
//!
//! Vigilo's runbook engine, storage-agnostic: the model (workspaces, users, runbooks, steps,
//! versions, executions, change requests, incidents), version diffs, the execution state
//! machine, the permission table, change-plan sync, and a tamper-evident audit chain.
//!
//! Front ends (the chat bot, the CLI, programs that embed Vigilo) call [`service::Vigilo`];
//! storage adapters implement [`store::Store`]. See `ARCHITECTURE.md` at the repository root.

// Every public item says what it is and why: the crates are meant to be embedded.
#![deny(missing_docs)]

pub mod audit;
pub mod authz;
pub mod change;
pub mod checkpoint;
pub mod clock;
pub mod error;
pub mod execution;
pub mod fields;
pub mod ids;
pub mod incident;
pub mod roles;
pub mod runbook;
pub mod service;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod workspace;
