//! # vigilo-store
//!
//! Storage adapters for Vigilo. Each implements [`vigilo_core::store::Store`]; nothing here
//! knows about chat platforms or the service, and no backend type crosses the trait.
//!
//! - [`sqlite::SqliteStore`]: one SQLite file (bundled SQLite through rusqlite) in WAL mode,
//!   with a dedicated writer thread that group-commits concurrent writes and a small pool of
//!   read connections used from [`tokio::task::spawn_blocking`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), vigilo_store::sqlite::OpenError> {
//! use std::sync::Arc;
//! use vigilo_core::store::Store;
//! use vigilo_store::sqlite::{SqliteOptions, SqliteStore};
//!
//! let store: Arc<dyn Store> = Arc::new(SqliteStore::open("vigilo.db", SqliteOptions::default()).await?);
//! # let _ = store;
//! # Ok(())
//! # }
//! ```

// Every public item says what it is and why: the crates are meant to be embedded.
#![deny(missing_docs)]

#[cfg(feature = "postgres")]
pub mod postgres;
mod shared;
mod snapshot_cache;
pub mod sqlite;
#[cfg(feature = "postgres")]
pub mod transfer;

#[cfg(feature = "postgres")]
pub use postgres::{PgError, PgOptions, PgStore};
pub use sqlite::{OpenError, SqliteOptions, SqliteStore, Synchronous, WriteStats};
