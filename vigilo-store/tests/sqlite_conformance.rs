//! The core conformance suite, run against a file-backed [`vigilo_store::SqliteStore`] in a
//! temporary directory (a fresh database per case).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

vigilo_core::conformance_tests!(common::TempStore::new());
