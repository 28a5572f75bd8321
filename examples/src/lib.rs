//! Shared parts of the example programs: [`counting_store::CountingStore`], a skeleton of a
//! custom [`vigilo_core::store::Store`] that the conformance suite checks
//! (`tests/custom_store_conformance.rs`), and [`loopback_http`], the minimal HTTP/1.1 client
//! with which `http_service --self-test` and its test talk to the service.

pub mod counting_store;
pub mod loopback_http;
