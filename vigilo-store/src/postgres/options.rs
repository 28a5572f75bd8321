//! How a [`super::PgStore`] connects: pool size, timeouts, retries.

use std::time::Duration;

/// Settings for [`super::PgStore::connect`]. `PgOptions::default()` suits production.
///
/// Everything about *where* to connect (host, port, user, password, database, `options`
/// such as `-c search_path=…`) comes from the URL given to `connect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgOptions {
    /// The most connections the store keeps open to the server; commits and reads share them.
    /// Each replica of the service has its own pool, so mind the server's `max_connections`.
    /// Default: 16.
    pub max_connections: usize,
    /// How long opening one connection (TCP connect plus startup) may take. Default: 5 seconds.
    pub connect_timeout: Duration,
    /// How long a call waits for a free connection of the pool (including opening a new one)
    /// before it gets [`vigilo_core::store::StoreError::Unavailable`]. Default: 10 seconds.
    pub acquire_timeout: Duration,
    /// How many times a commit that PostgreSQL aborted as a deadlock victim or serialization
    /// failure (SQLSTATE `40P01`, `40001`) is run again, with exponential backoff, before the
    /// caller gets [`vigilo_core::store::StoreError::Unavailable`]. Nothing of an aborted try
    /// stays applied. Default: 10.
    pub max_retries: u32,
    /// How long a commit whose connection broke while `COMMIT` (or a one-call step
    /// transition) was on its way keeps asking the server (on another connection) whether it
    /// committed, before it gives up and reports an outcome it could not learn. Default: 30
    /// seconds.
    pub in_doubt_timeout: Duration,
    /// The `application_name` the connections report (seen in `pg_stat_activity`).
    /// Default: `vigilo`.
    pub application_name: String,
    /// The server ends a session of the store that stays idle inside a transaction this long
    /// (`idle_in_transaction_session_timeout`), releasing its locks. The store never pauses
    /// inside a transaction, so this only fires when the client vanished without the server
    /// noticing (a broken network): without it, a commit cut off that way could hold its
    /// workspace's audit chain head until TCP keepalives gave up. Zero leaves the server's
    /// setting. Default: 60 seconds.
    pub idle_in_transaction_timeout: Duration,
    /// Whether a step transition (an execution update with its step event, what every click
    /// commits) runs as one call of the `vigilo_step_transition` function, in one round trip,
    /// instead of a transaction of four. Same checks, locks and answers either way (the
    /// fault and conformance tests run both); off, it is the transaction path, for comparing
    /// the two. The function is part of the schema either way. Default: on.
    pub server_side_transitions: bool,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(10),
            max_retries: 10,
            in_doubt_timeout: Duration::from_secs(30),
            application_name: "vigilo".into(),
            idle_in_transaction_timeout: Duration::from_secs(60),
            server_side_transitions: true,
        }
    }
}

impl PgOptions {
    /// These options with another pool size (at least 1).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// These options with another connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// These options with another wait for a pooled connection.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// These options with another number of retries of deadlocked commits.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// These options with another limit on resolving an in-doubt commit.
    pub fn in_doubt_timeout(mut self, timeout: Duration) -> Self {
        self.in_doubt_timeout = timeout;
        self
    }

    /// These options with another idle-in-transaction timeout (zero: the server's setting).
    pub fn idle_in_transaction_timeout(mut self, timeout: Duration) -> Self {
        self.idle_in_transaction_timeout = timeout;
        self
    }

    /// These options with step transitions run as one function call (`true`, the default) or
    /// as a transaction of several statements.
    pub fn server_side_transitions(mut self, on: bool) -> Self {
        self.server_side_transitions = on;
        self
    }

    /// These options with another `application_name`.
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }
}
