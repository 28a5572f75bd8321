//! Shared parts of the example programs: [`counting_store::CountingStore`], a skeleton of a
//! custom [`vigilo_core::store::Store`] that the conformance suite checks
//! (`tests/custom_store_conformance.rs`).

pub mod counting_store;
