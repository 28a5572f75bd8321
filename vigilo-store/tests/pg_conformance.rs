//! The core conformance suite, run against [`vigilo_store::postgres::PgStore`] on a real
//! PostgreSQL server: each case gets a fresh schema of its own (its connections'
//! `search_path`), created through the admin URL in `VIGILO_TEST_PG_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`), migrated by `PgStore::connect` and dropped
//! after the case, so cases run in parallel, also next to other test binaries. (A schema costs
//! milliseconds where a database costs half a second; `pg_faults` covers fresh databases.)
//!
//! Without `VIGILO_TEST_PG_URL` there is no server to test: each case says so on its output
//! and runs against the in-memory reference store instead, which passes.

#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ops::Deref;
use std::sync::Arc;

use vigilo_core::store::Store;
use vigilo_core::testkit::memory::MemoryStore;
use vigilo_store::postgres::{PgOptions, PgStore, ScratchDatabase};

/// The variable naming the admin URL of the test server.
const URL_VAR: &str = "VIGILO_TEST_PG_URL";

/// A store for one case: a `PgStore` on a scratch schema (dropped after the store), or the
/// in-memory store when no server is configured.
struct CaseStore {
    store: Option<Arc<dyn Store>>,
    db: Option<ScratchDatabase>,
}

impl CaseStore {
    async fn new() -> Self {
        let Ok(admin) = std::env::var(URL_VAR) else {
            println!(
                "SKIPPED against PostgreSQL: {URL_VAR} is not set, so there is no server to \
                 test; this case ran against the in-memory reference store instead. Set \
                 {URL_VAR}=postgres://postgres@127.0.0.1:5432/postgres to run it against a \
                 real server."
            );
            return Self {
                store: Some(Arc::new(MemoryStore::new())),
                db: None,
            };
        };
        let db = ScratchDatabase::create_schema(&admin)
            .await
            .expect("create a scratch schema");
        let store = PgStore::connect(db.url(), PgOptions::default().max_connections(8))
            .await
            .expect("connect to the scratch schema");
        Self {
            store: Some(Arc::new(store)),
            db: Some(db),
        }
    }
}

impl Deref for CaseStore {
    type Target = dyn Store;

    fn deref(&self) -> &Self::Target {
        self.store
            .as_deref()
            .expect("the store lives as long as the case")
    }
}

impl Drop for CaseStore {
    fn drop(&mut self) {
        // Close the pool first, then drop the schema.
        self.store = None;
        self.db = None;
    }
}

vigilo_core::conformance_tests!(CaseStore::new());
