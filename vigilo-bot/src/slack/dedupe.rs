//! Redeliveries applied once: Slack resends a request it got no timely answer for (with
//! `X-Slack-Retry-Num`), byte for byte. Every click, command and event body carries a unique
//! trigger id, action time or event id, so two equal bodies are one delivery. [`Dedupe`]
//! remembers the SHA-256 of each accepted body for a while (longer than the five minutes a
//! signature stays valid, after which a replay is refused anyway).

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How long a body is remembered by default: a little more than the signature window.
pub const DEFAULT_TTL: Duration = Duration::from_secs(6 * 60);
/// How many bodies are remembered at most by default.
pub const DEFAULT_CAPACITY: usize = 200_000;

/// Remembers the bodies of accepted requests.
#[derive(Debug)]
pub struct Dedupe {
    inner: Mutex<Inner>,
    ttl: Duration,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Inner {
    seen: HashSet<[u8; 32]>,
    order: VecDeque<([u8; 32], Instant)>,
}

impl Default for Dedupe {
    fn default() -> Self {
        Self::new(DEFAULT_TTL, DEFAULT_CAPACITY)
    }
}

impl Dedupe {
    /// Remembers bodies for `ttl`, at most `capacity` of them (the oldest go first).
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// True the first time `body` is seen (and remembers it); false for a redelivery.
    pub fn first_time(&self, body: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(body).into();
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((old, at)) = inner.order.front().copied() {
            if now.duration_since(at) <= self.ttl && inner.order.len() < self.capacity {
                break;
            }
            inner.order.pop_front();
            inner.seen.remove(&old);
        }
        if !inner.seen.insert(digest) {
            return false;
        }
        inner.order.push_back((digest, now));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_forgets() {
        let d = Dedupe::new(Duration::from_secs(60), 2);
        assert!(d.first_time(b"a"));
        assert!(!d.first_time(b"a"));
        assert!(d.first_time(b"b"));
        assert!(d.first_time(b"c"));
        // Capacity 2: `a` was forgotten.
        assert!(d.first_time(b"a"));
        let short = Dedupe::new(Duration::ZERO, 10);
        assert!(short.first_time(b"x"));
        std::thread::sleep(Duration::from_millis(2));
        assert!(short.first_time(b"x"));
    }
}
