//! The conformance suite: one set of behaviours every [`Store`] adapter must show, written once
//! and run unchanged against the in-memory store, SQLite and PostgreSQL.
//!
//! Each case is a `pub async fn case(store: &dyn Store)` that takes a **fresh, empty** store and
//! panics (through `assert!`) when the store breaks the contract written on [`crate::store`].
//! Cases that exercise concurrency run callers on parallel OS threads, so every case must run on
//! a multi-thread Tokio runtime; [`crate::conformance_tests!`] sets that up.
//!
//! # Running the suite against an adapter
//!
//! In an integration test of the adapter's crate (with `vigilo-core`'s `testkit` feature on),
//! call the macro once with an `async` expression that builds a fresh store. The expression is
//! evaluated once per case and must evaluate to something that dereferences to `dyn Store`:
//! an `Arc<dyn Store>`, a `Box<dyn Store>`, or a guard of your own that owns what the store
//! needs (a temporary directory, a scratch database) and drops it after the case.
//!
//! ```ignore
//! // tests/conformance_sqlite.rs
//! vigilo_core::conformance_tests!(async {
//!     let dir = tempfile::tempdir().unwrap();
//!     TempStore::open(dir).await // impl Deref<Target = dyn vigilo_core::store::Store>
//! });
//! ```
//!
//! The macro expands to one `#[test]` per name in [`ALL`] (each running its case on a fresh
//! multi-thread Tokio runtime with two workers, like
//! `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`), plus
//! `conformance_suite_is_complete`, which checks that the macro and [`ALL`] agree.
//! Run one case with `cargo test --test conformance_memory runbook_round_trip`.
//!
//! # Layout
//!
//! The cases live in one private module per capability and are re-exported here, so every case
//! is `vigilo_core::testkit::conformance::<case>`:
//!
//! - `workspaces` — workspaces, users, memberships: rows, unique values, concurrent inserts;
//! - `runbooks` — runbooks, versions, lists, search;
//! - `executions` — executions and their events (notes, hand-overs and takeovers included),
//!   [`Store::action_reads`], lists;
//! - `changes_incidents` — change requests and incidents;
//! - `reads` — default page sizes, rows never written;
//! - `keys` — key allocation, sequential and concurrent;
//! - `commits` — atomicity, `commit_all`, the order of writes, one winner among concurrent
//!   updates;
//! - `invariants` — the acting membership and the owner invariant, and their races;
//! - `audit_trail` — the chain and its queries;
//! - `isolation` — workspace isolation of reads, writes and people;
//! - `round_trip` — every row type, field for field;
//! - `stats` — the facts timing figures are computed from, on a hand-built history;
//! - `fixtures` — what the cases share: row builders, commits that must succeed, the
//!   assertions on a store's errors, callers run in parallel.
//!
//! A new case is a `pub async fn` in the module of its capability, re-exported here, and named
//! both in [`crate::conformance_tests!`] and in [`ALL`] (in the same place).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::ops::Deref;

use crate::store::Store;

mod audit_trail;
mod changes_incidents;
mod commits;
mod executions;
mod fixtures;
mod invariants;
mod isolation;
mod keys;
mod reads;
mod round_trip;
mod runbooks;
mod stats;
mod workspaces;

pub use audit_trail::{audit_chain, audit_queries};
pub use changes_incidents::{change_round_trip, incident_round_trip};
pub use commits::{
    commit_all_is_all_or_nothing, commit_applies_writes_in_order, commit_is_atomic,
    commit_to_unknown_workspace_is_refused, concurrent_updates_one_winner,
};
pub use executions::{
    action_reads_match_single_reads, approval_policies_round_trip, execution_notes_and_hand_overs,
    execution_round_trip, list_executions_filters,
};
pub use invariants::{
    commit_checks_acting_membership, owner_demotions_race, workspace_keeps_an_owner,
};
pub use isolation::{
    people_are_isolated_between_workspaces, workspace_isolation_reads, workspace_isolation_writes,
};
pub use keys::{allocate_key_concurrent, allocate_key_monotonic};
pub use reads::{default_page_sizes, missing_rows_are_not_found};
pub use round_trip::rows_round_trip_exactly;
pub use runbooks::{list_runbooks_filters, runbook_round_trip, runbook_versions, search_runbooks};
pub use stats::run_facts_figures;
pub use workspaces::{
    concurrent_inserts_of_one_handle, membership_round_trip, user_round_trip, user_unique_values,
    workspace_round_trip, workspace_unique_values,
};

/// Expands to one test per conformance case, each run against a fresh store built by the given
/// `async` expression (evaluated once per case; its value must dereference to `dyn Store`).
///
/// ```ignore
/// vigilo_core::conformance_tests!(async {
///     std::sync::Arc::new(vigilo_core::testkit::memory::MemoryStore::new())
///         as std::sync::Arc<dyn vigilo_core::store::Store>
/// });
/// ```
///
/// See [`testkit::conformance`](crate::testkit::conformance) for the details.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr $(,)?) => {
        $crate::conformance_tests!(@cases $factory;
            workspace_round_trip,
            workspace_unique_values,
            user_round_trip,
            user_unique_values,
            concurrent_inserts_of_one_handle,
            membership_round_trip,
            runbook_round_trip,
            runbook_versions,
            list_runbooks_filters,
            search_runbooks,
            execution_round_trip,
            execution_notes_and_hand_overs,
            action_reads_match_single_reads,
            list_executions_filters,
            change_round_trip,
            incident_round_trip,
            default_page_sizes,
            allocate_key_monotonic,
            allocate_key_concurrent,
            commit_is_atomic,
            commit_all_is_all_or_nothing,
            commit_applies_writes_in_order,
            commit_to_unknown_workspace_is_refused,
            concurrent_updates_one_winner,
            commit_checks_acting_membership,
            workspace_keeps_an_owner,
            owner_demotions_race,
            audit_chain,
            audit_queries,
            workspace_isolation_reads,
            workspace_isolation_writes,
            people_are_isolated_between_workspaces,
            missing_rows_are_not_found,
            rows_round_trip_exactly,
            run_facts_figures,
            approval_policies_round_trip,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testkit::conformance::run(async {
                    let store = $factory.await;
                    $crate::testkit::conformance::$case($crate::testkit::conformance::as_store(&store)).await;
                });
            }
        )*

        #[test]
        fn conformance_suite_is_complete() {
            let listed: &[&str] = &[$(stringify!($case)),*];
            assert_eq!(listed, $crate::testkit::conformance::ALL);
        }
    };
}

/// The names of every case, in the order [`crate::conformance_tests!`] declares them.
pub const ALL: &[&str] = &[
    "workspace_round_trip",
    "workspace_unique_values",
    "user_round_trip",
    "user_unique_values",
    "concurrent_inserts_of_one_handle",
    "membership_round_trip",
    "runbook_round_trip",
    "runbook_versions",
    "list_runbooks_filters",
    "search_runbooks",
    "execution_round_trip",
    "execution_notes_and_hand_overs",
    "action_reads_match_single_reads",
    "list_executions_filters",
    "change_round_trip",
    "incident_round_trip",
    "default_page_sizes",
    "allocate_key_monotonic",
    "allocate_key_concurrent",
    "commit_is_atomic",
    "commit_all_is_all_or_nothing",
    "commit_applies_writes_in_order",
    "commit_to_unknown_workspace_is_refused",
    "concurrent_updates_one_winner",
    "commit_checks_acting_membership",
    "workspace_keeps_an_owner",
    "owner_demotions_race",
    "audit_chain",
    "audit_queries",
    "workspace_isolation_reads",
    "workspace_isolation_writes",
    "people_are_isolated_between_workspaces",
    "missing_rows_are_not_found",
    "rows_round_trip_exactly",
    "run_facts_figures",
    "approval_policies_round_trip",
];

/// Runs one case on a fresh multi-thread Tokio runtime with two workers (used by
/// [`crate::conformance_tests!`]).
#[doc(hidden)]
pub fn run(case: impl Future<Output = ()>) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("cannot build the Tokio runtime for a conformance case: {e}"),
    };
    runtime.block_on(case);
}

/// Borrows the store out of whatever the factory of [`crate::conformance_tests!`] built.
#[doc(hidden)]
pub fn as_store<S: Deref<Target = dyn Store>>(store: &S) -> &dyn Store {
    &**store
}
