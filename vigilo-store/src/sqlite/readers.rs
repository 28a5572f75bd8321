//! The read side: a small pool of read-only connections, each read run on Tokio's blocking
//! pool so that no worker thread ever waits on SQLite.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rusqlite::Connection;
use tokio::sync::Semaphore;
use vigilo_core::store::{StoreError, StoreResult};

use super::open::open_reader;
use super::options::SqliteOptions;
use super::rows::sql_err;

/// Read connections, opened lazily up to a limit and reused.
pub(crate) struct Readers {
    path: PathBuf,
    options: SqliteOptions,
    /// Connections not in use.
    idle: Mutex<Vec<Connection>>,
    /// One permit per connection that may be open at once.
    permits: Semaphore,
}

impl Readers {
    pub(crate) fn new(path: PathBuf, options: SqliteOptions) -> Self {
        let size = options.read_connections.max(1);
        Self {
            path,
            options,
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Semaphore::new(size),
        }
    }

    /// Runs `read` on a pooled connection on the blocking pool, waiting for a free connection
    /// (asynchronously) when all are busy.
    pub(crate) async fn run<T, F>(self: &Arc<Self>, read: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let asked = Instant::now();
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| StoreError::Unavailable {
                message: "the store is closed".into(),
                source: Some(Box::new(e)),
            })?;
        let permitted = Instant::now();
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let running = Instant::now();
            let conn = this.checkout()?;
            let out = read(&conn);
            this.checkin(conn);
            tracing::trace!(
                permit_us = permitted.duration_since(asked).as_micros() as u64,
                handoff_us = running.duration_since(permitted).as_micros() as u64,
                read_us = running.elapsed().as_micros() as u64,
                "read"
            );
            out
        })
        .await
        .map_err(|e| StoreError::backend("a read task failed", e))?
    }

    fn checkout(&self) -> StoreResult<Connection> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match pooled {
            Some(conn) => Ok(conn),
            None => open_reader(&self.path, &self.options).map_err(sql_err),
        }
    }

    fn checkin(&self, conn: Connection) {
        if !conn.is_autocommit() {
            // A read left a transaction open (it cannot, but a stuck snapshot would pin the WAL):
            // drop the connection rather than reuse it.
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        // A read whose caller gave up releases its permit before its connection comes back, so
        // a few extra connections may exist for a moment: keep no more than the pool size.
        if idle.len() < self.options.read_connections.max(1) {
            idle.push(conn);
        }
    }
}
