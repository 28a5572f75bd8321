//! Mapping between core values and SQLite: JSON documents, ids, times, and errors.

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, Params, ffi};
use serde::Serialize;
use serde::de::DeserializeOwned;
use vigilo_core::store::{StoreError, StoreResult};

/// Serialises a core value into the `doc` column.
pub(crate) fn to_doc<T: Serialize>(value: &T, what: &str) -> StoreResult<String> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::backend(format!("cannot encode {what}"), e))
}

/// Reads a core value back from the `doc` column.
pub(crate) fn from_doc<T: DeserializeOwned>(doc: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// Microseconds since the Unix epoch: how times are kept in indexed columns.
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The first whole microsecond at or after `t`, for "at or after" and "before" bounds on a
/// microsecond column.
pub(crate) fn micros_ceil(t: DateTime<Utc>) -> i64 {
    let floor = t.timestamp_micros();
    if t.timestamp_subsec_nanos().is_multiple_of(1000) {
        floor
    } else {
        floor.saturating_add(1)
    }
}

/// An integer column value from a `u64`, refusing values SQLite cannot hold.
pub(crate) fn int(n: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(n)
        .map_err(|e| StoreError::backend(format!("{what} {n} is too large to store"), e))
}

/// A text column value.
pub(crate) fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

/// True when SQLite reported that another connection holds a lock.
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// The `UNIQUE constraint failed: table.column` message when `e` is a unique or primary-key
/// violation.
pub(crate) fn unique_violation(e: &rusqlite::Error) -> Option<&str> {
    match e {
        rusqlite::Error::SqliteFailure(f, msg)
            if f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            Some(msg.as_deref().unwrap_or(""))
        }
        _ => None,
    }
}

/// Maps a SQLite error that no caller handles specially.
pub(crate) fn sql_err(e: rusqlite::Error) -> StoreError {
    if is_busy(&e) {
        return StoreError::Unavailable {
            message: "the database is busy (locked by another connection)".into(),
            source: Some(Box::new(e)),
        };
    }
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            StoreError::Corrupt(format!("SQLite reports the database file is damaged: {e}"))
        }
        Some(ErrorCode::DiskFull | ErrorCode::SystemIoFailure | ErrorCode::CannotOpen) => {
            StoreError::Unavailable {
                message: "the database file cannot be written (disk full or I/O error)".into(),
                source: Some(Box::new(e)),
            }
        }
        _ => StoreError::backend("SQLite failed", e),
    }
}

/// The `doc` column of the one row `sql` selects, decoded; `NotFound(what)` without a row.
pub(crate) fn one<T: DeserializeOwned, P: Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    what: impl FnOnce() -> String,
) -> StoreResult<T> {
    let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
    let mut rows = stmt.query(params).map_err(sql_err)?;
    match rows.next().map_err(sql_err)? {
        Some(row) => {
            let doc: String = row.get(0).map_err(sql_err)?;
            let what = what();
            from_doc(&doc, &what)
        }
        None => Err(StoreError::NotFound(what())),
    }
}

/// The `doc` column of every row `sql` selects, decoded, in order.
pub(crate) fn many<T: DeserializeOwned, P: Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    what: &str,
) -> StoreResult<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
    let mut rows = stmt.query(params).map_err(sql_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_err)? {
        let doc: String = row.get(0).map_err(sql_err)?;
        out.push(from_doc(&doc, what)?);
    }
    Ok(out)
}

/// Whether `sql` selects at least one row.
pub(crate) fn exists<P: Params>(conn: &Connection, sql: &str, params: P) -> StoreResult<bool> {
    let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
    stmt.exists(params).map_err(sql_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_rounds_only_sub_microsecond_times() {
        let exact = DateTime::from_timestamp(1_700_000_000, 5_000).unwrap_or_default();
        assert_eq!(micros_ceil(exact), micros(exact));
        let inexact = DateTime::from_timestamp(1_700_000_000, 5_001).unwrap_or_default();
        assert_eq!(micros_ceil(inexact), micros(inexact) + 1);
    }
}
