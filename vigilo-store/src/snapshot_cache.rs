//! Parsed execution snapshots by content address, shared by both SQL adapters.
//!
//! A snapshot of steps is immutable and stored under the SHA-256 of its document, so a parse
//! can be reused for as long as the stored document reads back the same. Every read hands the
//! bytes it read: they are compared in full with the copy parsed before, and a document not
//! seen before must hash to its address, so an edited row is never masked by the cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use vigilo_core::execution::history::Snapshot;
use vigilo_core::store::{StoreError, StoreResult};

/// How many bytes of snapshot documents a cache keeps before it starts over.
const CACHE_BYTES: usize = 64 << 20;

/// A cached snapshot: the document's bytes as read, and the snapshot parsed from them.
type Cached = (Arc<str>, Arc<Snapshot>);

/// Parsed snapshots, keyed by content address (the same bytes parse the same in any
/// workspace).
#[derive(Default)]
pub(crate) struct SnapshotCache {
    entries: Mutex<HashMap<String, Cached>>,
}

impl SnapshotCache {
    /// The snapshot stored as `doc` under address `hash`, for the execution named `what`:
    /// the cached parse when the bytes are the same, else `doc` checked against its address
    /// and parsed.
    pub(crate) fn get(&self, hash: &str, doc: &str, what: &str) -> StoreResult<Snapshot> {
        if let Ok(entries) = self.entries.lock()
            && let Some((bytes, parsed)) = entries.get(hash)
            && **bytes == *doc
        {
            return Ok(Snapshot::clone(parsed));
        }
        let found = Snapshot::hash_of(doc);
        if found != hash {
            return Err(StoreError::Corrupt(format!(
                "{what}: its snapshot of steps {hash} was edited (its document now hashes to {found})"
            )));
        }
        let parsed: Snapshot = serde_json::from_str(doc).map_err(|e| {
            StoreError::Corrupt(format!("{what}: its snapshot of steps {hash}: {e}"))
        })?;
        if let Ok(mut entries) = self.entries.lock() {
            let held: usize = entries.values().map(|(b, _)| b.len()).sum();
            if held + doc.len() > CACHE_BYTES {
                entries.clear();
            }
            entries.insert(hash.to_owned(), (Arc::from(doc), Arc::new(parsed.clone())));
        }
        Ok(parsed)
    }
}
