//! How a [`super::SqliteStore`] opens its file: durability, waiting for other processes, pools.

use std::time::Duration;

/// How hard SQLite works to make a commit survive a crash (`PRAGMA synchronous`).
///
/// The store always runs in WAL mode, where both levels keep the database consistent: a crash
/// or power loss never corrupts it, and every commit is atomic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// `synchronous=FULL` (the default): the WAL is synced to disk on every commit, so a commit
    /// the store has acknowledged survives power loss and an operating-system crash.
    #[default]
    Full,
    /// `synchronous=NORMAL`: the WAL is synced only at checkpoints. Commits are faster, and a
    /// crash of the process alone loses nothing; but on power loss or an operating-system crash
    /// the last transactions acknowledged before it may be lost (rolled back as if they never
    /// happened). It never corrupts the database and never splits a commit in half.
    Normal,
}

impl Synchronous {
    /// The value given to `PRAGMA synchronous`.
    pub(crate) fn pragma_value(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// Settings for [`super::SqliteStore::open`]. `SqliteOptions::default()` suits production.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Durability of commits; see [`Synchronous`]. Default: [`Synchronous::Full`].
    pub synchronous: Synchronous,
    /// How long one SQLite call waits for another process holding the write lock before it
    /// reports "busy" (`PRAGMA busy_timeout`). Default: 5 seconds.
    pub busy_timeout: Duration,
    /// How many more times the writer retries a transaction that found the database busy
    /// after `busy_timeout`, with exponential backoff, before the waiting calls get
    /// [`vigilo_core::store::StoreError::Unavailable`]. Default: 3.
    pub busy_retries: u32,
    /// How many read connections may be open at once (each read runs on one, on Tokio's
    /// blocking pool). Default: 4.
    pub read_connections: usize,
    /// The most writes (commits and key allocations) the writer groups into one transaction.
    /// Default: 256.
    pub max_batch: usize,
    /// How much of the file each connection maps into memory for reading (`PRAGMA
    /// mmap_size`), in bytes; 0 reads with system calls only. Reads of a large database
    /// (searches and lists over many runbooks) touch pages all over the file, and mapped pages
    /// cost no system call. It reserves address space, not memory. Default: 1 GiB.
    pub mmap_size: u64,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            busy_retries: 3,
            read_connections: 4,
            max_batch: 256,
            mmap_size: 1 << 30,
        }
    }
}

impl SqliteOptions {
    /// These options with another durability level.
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// These options with another busy timeout.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// These options with another number of busy retries.
    pub fn busy_retries(mut self, retries: u32) -> Self {
        self.busy_retries = retries;
        self
    }

    /// These options with another read pool size (at least 1).
    pub fn read_connections(mut self, n: usize) -> Self {
        self.read_connections = n.max(1);
        self
    }

    /// These options with another memory-map size (0 turns mapping off).
    pub fn mmap_size(mut self, bytes: u64) -> Self {
        self.mmap_size = bytes;
        self
    }

    /// These options with another largest group-commit batch (at least 1).
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.max(1);
        self
    }
}
