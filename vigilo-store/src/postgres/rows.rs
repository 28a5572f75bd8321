//! Mapping between core values and PostgreSQL: JSON documents, numbers, times, and running
//! cached statements.

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use vigilo_core::store::{StoreError, StoreResult};

/// Bound parameters of one statement.
pub(crate) type Params<'a> = [&'a (dyn ToSql + Sync)];

/// Serialises a core value into the `doc` column.
pub(crate) fn to_doc<T: Serialize>(value: &T, what: &str) -> StoreResult<String> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::backend(format!("cannot encode {what}"), e))
}

/// Reads a core value back from the `doc` column.
pub(crate) fn from_doc<T: DeserializeOwned>(doc: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// The `doc` text in column `index` of `row`, decoded.
pub(crate) fn doc_at<T: DeserializeOwned>(row: &Row, index: usize, what: &str) -> StoreResult<T> {
    let doc: String = row
        .try_get(index)
        .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))?;
    from_doc(&doc, what)
}

/// A `bigint` value from a `u64`, refusing values PostgreSQL cannot hold.
pub(crate) fn int(n: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(n)
        .map_err(|e| StoreError::backend(format!("{what} {n} is too large to store"), e))
}

/// A `u64` read back from a `bigint` column.
pub(crate) fn uint(n: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{what} is negative ({n})")))
}

/// `t` truncated to whole microseconds (what `timestamptz` keeps).
pub(crate) fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::microseconds(1)).unwrap_or(t)
}

/// The first whole microsecond at or after `t`, for "at or after" and "before" bounds on a
/// microsecond column.
pub(crate) fn micros_ceil(t: DateTime<Utc>) -> DateTime<Utc> {
    let floor = micros(t);
    if floor == t {
        t
    } else {
        floor + Duration::microseconds(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_rounds_only_sub_microsecond_times() {
        let exact = DateTime::from_timestamp(1_700_000_000, 5_000).unwrap_or_default();
        assert_eq!(micros_ceil(exact), exact);
        let inexact = DateTime::from_timestamp(1_700_000_000, 5_001).unwrap_or_default();
        assert_eq!(micros_ceil(inexact), exact + Duration::microseconds(1));
        assert_eq!(micros(inexact), exact);
    }
}
