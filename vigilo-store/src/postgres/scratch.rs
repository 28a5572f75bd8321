//! [`ScratchDatabase`]: a throw-away database on a PostgreSQL server, for tests.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::NoTls;
use tracing::warn;
use uuid::Uuid;

use super::error::PgError;

/// The prefix of every scratch database's name.
const PREFIX: &str = "vigilo_test_";

/// Scratch databases older than this are taken for leftovers of a crashed run and dropped when
/// the next one is created.
const STALE_AFTER: Duration = Duration::from_secs(2 * 60 * 60);

/// How long dropping a database may take.
const DROP_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh, empty database created on the server of an admin URL, dropped (with its
/// connections) when this value is dropped or [`ScratchDatabase::drop_database`] is awaited.
///
/// For tests: each test gets its own database (`vigilo_test_<unix seconds>_<uuid>`), so tests
/// run in parallel, in several test binaries at once, without seeing each other. Creating one
/// also drops scratch databases more than two hours old, left behind by runs that crashed.
///
/// ```no_run
/// # async fn demo() -> Result<(), vigilo_store::postgres::PgError> {
/// use vigilo_store::postgres::{PgOptions, PgStore, ScratchDatabase};
///
/// let db = ScratchDatabase::create("postgres://postgres@127.0.0.1:5432/postgres").await?;
/// let store = PgStore::connect(db.url(), PgOptions::default()).await?;
/// // … use the store …
/// drop(store);
/// db.drop_database().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ScratchDatabase {
    admin_url: String,
    name: String,
    url: String,
    dropped: bool,
}

impl ScratchDatabase {
    /// Creates a new, empty database through `admin_url` (a URL of a role allowed to
    /// `CREATE DATABASE`, usually naming the `postgres` database).
    pub async fn create(admin_url: &str) -> Result<Self, PgError> {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let name = format!("{PREFIX}{secs}_{}", Uuid::now_v7().simple());
        let url = with_database(admin_url, &name);
        let admin = admin_connect(admin_url).await?;
        prune_stale(&admin, secs).await;
        // template0: nobody can be connected to it, so concurrent creations never collide.
        admin
            .batch_execute(&format!(r#"CREATE DATABASE "{name}" TEMPLATE template0"#))
            .await
            .map_err(|source| PgError::Statement {
                doing: format!("creating scratch database {name}"),
                source,
            })?;
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name,
            url,
            dropped: false,
        })
    }

    /// The URL of the scratch database (the admin URL with its database replaced).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database now (terminating its connections), from async code.
    pub async fn drop_database(mut self) {
        self.dropped = true;
        if let Err(e) = drop_named(&self.admin_url, &self.name).await {
            warn!(database = %self.name, error = %e, "cannot drop a scratch database");
        }
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // Drop may run inside a Tokio runtime, which cannot block on another future: do it on
        // a thread of its own, with a runtime of its own, and wait for it.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let job = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(rt) => {
                    if let Err(e) = rt.block_on(drop_named(&admin_url, &name)) {
                        warn!(database = %name, error = %e, "cannot drop a scratch database");
                    }
                }
                Err(e) => warn!(error = %e, "cannot start a runtime to drop a scratch database"),
            }
        });
        let _ = job.join();
    }
}

/// `url` with its database replaced by `name`: the path of a `postgres://` URL, or a `dbname`
/// appended to a `key=value` connection string.
fn with_database(url: &str, name: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return format!("{url} dbname={name}");
    };
    let rest_start = scheme_end + 3;
    let query_start = url[rest_start..]
        .find('?')
        .map_or(url.len(), |i| rest_start + i);
    let authority_end = url[rest_start..query_start]
        .find('/')
        .map_or(query_start, |i| rest_start + i);
    format!("{}/{name}{}", &url[..authority_end], &url[query_start..])
}

/// A plain connection (driven by a task of the current runtime).
async fn admin_connect(url: &str) -> Result<tokio_postgres::Client, PgError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| PgError::Connect(Box::new(e)))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Drops database `name` through `admin_url`, terminating its connections.
async fn drop_named(admin_url: &str, name: &str) -> Result<(), String> {
    let work = async {
        let admin = admin_connect(admin_url).await.map_err(|e| e.to_string())?;
        admin
            .batch_execute(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
            .await
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(DROP_TIMEOUT, work).await {
        Ok(result) => result,
        Err(_) => Err(format!("it took longer than {DROP_TIMEOUT:?}")),
    }
}

/// Drops scratch databases created more than [`STALE_AFTER`] before `now` (best effort).
async fn prune_stale(admin: &tokio_postgres::Client, now: u64) {
    let Ok(rows) = admin
        .query(
            "SELECT datname::text FROM pg_database WHERE starts_with(datname::text, $1)",
            &[&PREFIX],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let Ok(name) = row.try_get::<_, String>(0) else {
            continue;
        };
        let created = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if let Some(created) = created
            && now.saturating_sub(created) > STALE_AFTER.as_secs()
        {
            let _ = admin
                .batch_execute(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "x"),
            "postgresql://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:1", "x"), "postgres://h:1/x");
        assert_eq!(
            with_database("postgres://h?application_name=a", "x"),
            "postgres://h/x?application_name=a"
        );
        assert_eq!(
            with_database("host=h user=u", "x"),
            "host=h user=u dbname=x"
        );
    }
}
