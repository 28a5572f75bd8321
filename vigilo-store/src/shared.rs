//! What the SQLite and PostgreSQL adapters share beyond the core's store contract: the page
//! size of a query as a bound SQL value. (What is indexed for search, the page defaults and the
//! commit rules themselves live in `vigilo_core::store`.)

use vigilo_core::store::contract::page_size;

pub(crate) use vigilo_core::store::contract::{DEFAULT_AUDIT_PAGE, DEFAULT_PAGE};
pub(crate) use vigilo_core::store::search::SearchText;

/// A query's page size as an SQL integer: `limit`, or `default` when it is 0.
pub(crate) fn page(limit: usize, default: usize) -> i64 {
    i64::try_from(page_size(limit, default)).unwrap_or(i64::MAX)
}
