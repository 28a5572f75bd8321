//! The core conformance suite, run against [`vigilo_store::postgres::PgStore`] on a real
//! PostgreSQL server, twice: once per way a step transition is committed.
//!
//! - `server_side_transitions::*`: the default, one autocommitted call of the
//!   `vigilo_step_transition` function;
//! - `transaction_transitions::*`: the transaction path
//!   ([`PgOptions::server_side_transitions`] off).
//!
//! Each case gets a fresh schema of its own (its connections' `search_path`), created through
//! the admin URL in `VIGILO_TEST_PG_URL` (e.g. `postgres://postgres@127.0.0.1:5432/postgres`),
//! migrated by `PgStore::connect` and dropped after the case, so cases run in parallel, also
//! next to other test binaries. (A schema costs milliseconds where a database costs half a
//! second; `pg_faults` covers fresh databases.)
//!
//! Without `VIGILO_TEST_PG_URL` there is no server to test, and no other store stands in for
//! it: each case writes `SKIPPED <case>: …` straight to the test process's stderr (past the
//! harness's output capture, so `cargo test` shows it) and returns. `pg_url_is_set_in_ci`
//! fails when `CI` is set and the variable is not, so a CI run cannot pass on skipped cases.

#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::ops::Deref;

use vigilo_core::store::Store;
use vigilo_store::postgres::{PgOptions, PgStore, ScratchDatabase};

/// The variable naming the admin URL of the test server.
const URL_VAR: &str = "VIGILO_TEST_PG_URL";

/// The admin URL, or `None` after saying on the test process's stderr that `case` is skipped.
///
/// The line is written to the stderr handle itself, not through `eprintln!`, whose output the
/// test harness captures and shows only for failing tests.
fn admin_url(case: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            // One write of the whole line, so parallel cases do not tear it.
            let line = format!(
                "SKIPPED {case}: needs {URL_VAR} (a PostgreSQL admin URL, e.g. \
                 postgres://postgres@127.0.0.1:5432/postgres)\n"
            );
            let _ = std::io::stderr().write_all(line.as_bytes());
            None
        }
    }
}

/// Whether this run is a CI run (`CI` set to anything but empty, `0` or `false`).
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE"))
}

/// CI must test PostgreSQL: a run where every case above said `SKIPPED` is not a pass.
#[test]
fn pg_url_is_set_in_ci() {
    let url = std::env::var(URL_VAR).unwrap_or_default();
    assert!(
        !in_ci() || !url.is_empty(),
        "CI is set but {URL_VAR} is not: every PostgreSQL conformance case was skipped. \
         Run PostgreSQL and set {URL_VAR} (`.ci/run` does when the server answers on \
         127.0.0.1:5432)."
    );
}

/// A `PgStore` on a scratch schema of its own; the pool is closed before the schema is dropped
/// (fields drop in declaration order).
struct CaseStore {
    store: PgStore,
    _db: ScratchDatabase,
}

impl CaseStore {
    /// A fresh, migrated store on a new schema of the server at `admin`, committing step
    /// transitions through the function (`server_side`) or the transaction path.
    async fn new(admin: &str, server_side: bool) -> Self {
        let db = ScratchDatabase::create_schema(admin)
            .await
            .expect("create a scratch schema");
        let options = PgOptions::default()
            .max_connections(8)
            .server_side_transitions(server_side);
        let store = PgStore::connect(db.url(), options)
            .await
            .expect("connect to the scratch schema");
        assert_eq!(store.options().server_side_transitions, server_side);
        Self { store, _db: db }
    }
}

impl Deref for CaseStore {
    type Target = dyn Store;

    fn deref(&self) -> &Self::Target {
        &self.store
    }
}

/// One `#[test]` per named case, on a fresh store whose step transitions go through the
/// function (`$server_side` true) or the transaction path, plus `conformance_suite_is_complete`
/// (the list below and the core's `ALL` agree, so a new core case cannot be left out here).
macro_rules! pg_cases {
    ($server_side:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let Some(admin) =
                    crate::admin_url(concat!(module_path!(), "::", stringify!($case)))
                else {
                    return;
                };
                vigilo_core::testkit::conformance::run(async {
                    let store = crate::CaseStore::new(&admin, $server_side).await;
                    vigilo_core::testkit::conformance::$case(
                        vigilo_core::testkit::conformance::as_store(&store),
                    )
                    .await;
                });
            }
        )*

        #[test]
        fn conformance_suite_is_complete() {
            let listed: &[&str] = &[$(stringify!($case)),*];
            assert_eq!(
                listed,
                vigilo_core::testkit::conformance::ALL,
                "the PostgreSQL suite must list every conformance case, in the core's order"
            );
        }
    };
}

/// The whole suite, on a store committing step transitions as `$server_side` says.
macro_rules! pg_conformance {
    ($server_side:expr) => {
        pg_cases!($server_side;
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
}

/// Step transitions as one call of `vigilo_step_transition` (the default).
mod server_side_transitions {
    pg_conformance!(true);
}

/// Step transitions as a transaction of several statements.
mod transaction_transitions {
    pg_conformance!(false);
}
