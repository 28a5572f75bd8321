//! # vigilo-core
//!
//! Vigilo's runbook engine, storage-agnostic: the model (workspaces, users, runbooks, steps,
//! versions, executions, change requests, incidents), version diffs, the execution state
//! machine, the permission table, change-plan sync, and a tamper-evident audit chain.
//!
//! Front ends (the chat bot, the CLI, programs that embed Vigilo) call [`service::Vigilo`];
//! storage adapters implement [`store::Store`]. See `ARCHITECTURE.md` at the repository root.
//!
//! # Quick start
//!
//! A [`service::Vigilo`] runs over any [`store::Store`] behind an `Arc`: `SqliteStore` or
//! `PgStore` from `vigilo-store`, an embedder's own (see [`store::Store`]), or, in tests, the
//! in-memory `MemoryStore` of the `testkit` feature used here.
//!
//! ```
//! # #[cfg(feature = "testkit")]
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use vigilo_core::service::{Vigilo, Who};
//! use vigilo_core::store::Store;
//! use vigilo_core::testkit::memory::MemoryStore;
//!
//! let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
//! let vigilo = Vigilo::new(store);
//!
//! // The bootstrap call: a workspace and its first owner.
//! let (workspace, alice) = vigilo.create_workspace("acme", "alice", "Alice").await?;
//!
//! // Every other call says who acts, and where.
//! let alice = Who::new(workspace.id, alice.id);
//! assert_eq!(vigilo.workspace_of(&alice).await?.slug.as_str(), "acme");
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "testkit"))]
//! # fn main() {}
//! ```
//!
//! [`service::Vigilo`] shows a run from its start to a step done, and [`store::Store`] how to
//! implement a store.

// Every public item says what it is and why: the crates are meant to be embedded.
#![deny(missing_docs)]

pub mod analytics;
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
pub mod report;
pub mod roles;
pub mod runbook;
pub mod service;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod workspace;
