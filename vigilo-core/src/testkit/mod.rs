//! Test support for Vigilo and for every storage adapter (feature `testkit`).
//!
//! - [`memory::MemoryStore`]: a complete in-memory [`crate::store::Store`], for tests of the
//!   service and the front ends, simulations and examples.
//! - [`conformance`]: the one suite of behaviour every [`crate::store::Store`] adapter must
//!   show, run by [`crate::conformance_tests!`] against the in-memory store here and against
//!   the SQLite and PostgreSQL adapters in `vigilo-store`.

pub mod conformance;
pub mod memory;

/// The Tokio runtime the conformance tests run on, re-exported so that
/// [`crate::conformance_tests!`] works in crates that do not depend on Tokio themselves.
#[doc(hidden)]
pub use tokio;
