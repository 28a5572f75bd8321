//! The store conformance suite run against the in-memory store
//! (`cargo test -p vigilo-core --features testkit --test conformance_memory`).

vigilo_core::conformance_tests!(async {
    std::sync::Arc::new(vigilo_core::testkit::memory::MemoryStore::new())
        as std::sync::Arc<dyn vigilo_core::store::Store>
});
