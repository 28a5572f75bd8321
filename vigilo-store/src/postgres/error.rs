//! Errors: [`PgError`] for connecting, and the mapping of driver errors onto
//! [`StoreError`] for every call after that.

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;
use vigilo_core::store::StoreError;

/// Why [`super::PgStore::connect`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The URL could not be parsed.
    #[error("invalid PostgreSQL URL: {0}")]
    Url(#[source] tokio_postgres::Error),
    /// The URL asks for TLS (`sslmode=require`), which this adapter does not support yet.
    #[error(
        "the PostgreSQL URL requires TLS (sslmode=require), which Vigilo does not support yet; \
         connect over loopback or a private network with sslmode=disable or prefer"
    )]
    TlsUnsupported,
    /// The connection pool could not be set up.
    #[error("cannot set up the PostgreSQL connection pool: {0}")]
    Pool(String),
    /// The server could not be reached, or refused the connection.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A statement outside the migrations failed (creating a scratch database).
    #[error("PostgreSQL failed while {doing}: {source}")]
    Statement {
        /// What was being done.
        doing: String,
        /// The server's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A statement of the schema check or of a migration failed; the migration's transaction
    /// was rolled back.
    #[error("schema migration to version {version} failed: {source}")]
    Migration {
        /// The version being applied (or checked).
        version: i32,
        /// The server's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A migration could not convert an execution: what it would store does not give the
    /// same execution back (or its stored rows are unreadable). The migration's transaction
    /// was rolled back; nothing was changed.
    #[error(
        "schema migration to version {version} failed: execution {execution} of workspace \
         {workspace} cannot be converted: {reason}; the migration was rolled back and nothing \
         was changed"
    )]
    Conversion {
        /// The version being applied.
        version: i32,
        /// The execution's key (its id when its document is unreadable).
        execution: String,
        /// Its workspace.
        workspace: uuid::Uuid,
        /// What does not fit.
        reason: String,
    },
    /// The database was migrated by a newer Vigilo whose schema this build does not know. It
    /// was not modified.
    #[error(
        "the database has Vigilo schema version {found}, newer than the {known} this build \
         knows; upgrade Vigilo to use it (the database was left untouched)"
    )]
    TooNew {
        /// The version recorded in `vigilo_schema_version`.
        found: i32,
        /// The newest version this build knows.
        known: usize,
    },
}

/// A failed statement, classified: whether the whole commit may simply run again.
#[derive(Debug)]
pub(crate) struct Fail {
    /// What the caller gets if it is not retried.
    pub error: StoreError,
    /// A deadlock victim or serialization failure: nothing was applied, run it again.
    pub retry: bool,
}

impl Fail {
    /// A failure that is final.
    pub(crate) fn done(error: StoreError) -> Self {
        Self {
            error,
            retry: false,
        }
    }
}

impl From<StoreError> for Fail {
    fn from(error: StoreError) -> Self {
        Fail::done(error)
    }
}

/// Whether `e` says the connection is gone or the server is going away: nothing of the current
/// transaction can commit any more, and another connection may work.
pub(crate) fn is_connection_loss(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        let c = code.code();
        return c.starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW;
    }
    // No SQLSTATE: an I/O error, a timeout, or a broken protocol stream.
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Whether PostgreSQL aborted the transaction only to resolve contention (deadlock victim,
/// serialization failure): running it again is the documented remedy.
pub(crate) fn is_contention(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    )
}

/// Whether the server is busy or short of a resource rather than refusing the statement: the
/// same call may succeed later.
fn is_busy(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => {
            let c = code.code();
            // 53: insufficient resources (disk full, out of memory, too many connections);
            // 55P03 lock_not_available (lock_timeout); 57014 query_canceled
            // (statement_timeout); 25006 read-only transaction (a standby after failover).
            c.starts_with("53")
                || *code == SqlState::LOCK_NOT_AVAILABLE
                || *code == SqlState::QUERY_CANCELED
                || *code == SqlState::READ_ONLY_SQL_TRANSACTION
        }
        None => false,
    }
}

/// The constraint a unique or foreign-key violation names, if `e` is one.
pub(crate) fn violated(e: &tokio_postgres::Error, state: &SqlState) -> Option<String> {
    let db = e.as_db_error()?;
    if db.code() == state {
        Some(db.constraint().unwrap_or_default().to_owned())
    } else {
        None
    }
}

/// Maps a driver error that no caller handles specially.
pub(crate) fn fail(doing: &str, e: tokio_postgres::Error) -> Fail {
    if is_contention(&e) {
        return Fail {
            error: unavailable(format!("{doing}: the transaction lost a lock race"), e),
            retry: true,
        };
    }
    Fail::done(store_err(doing, e))
}

/// Maps a driver error onto a [`StoreError`]: lost connections and a busy server are
/// `Unavailable`, anything else `Backend`.
pub(crate) fn store_err(doing: &str, e: tokio_postgres::Error) -> StoreError {
    if is_connection_loss(&e) {
        return unavailable(format!("{doing}: the connection to PostgreSQL was lost"), e);
    }
    if is_busy(&e) || is_contention(&e) {
        return unavailable(format!("{doing}: PostgreSQL is busy"), e);
    }
    StoreError::backend(format!("PostgreSQL failed while {doing}"), e)
}

/// `Unavailable` with `source`.
pub(crate) fn unavailable(
    message: impl Into<String>,
    source: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    StoreError::Unavailable {
        message: message.into(),
        source: Some(Box::new(source)),
    }
}

/// Maps a failure to get a pooled connection: always `Unavailable` (nothing was attempted).
pub(crate) fn pool_err(e: PoolError) -> StoreError {
    unavailable("no connection to PostgreSQL could be had", e)
}
