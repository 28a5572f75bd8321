//! The custom store of the examples passes the whole conformance suite, as any adapter must.

vigilo_core::conformance_tests!(async {
    std::sync::Arc::new(vigilo_examples::counting_store::CountingStore::new(
        vigilo_core::testkit::memory::MemoryStore::new(),
    )) as std::sync::Arc<dyn vigilo_core::store::Store>
});
