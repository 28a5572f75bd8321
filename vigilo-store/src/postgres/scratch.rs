//! [`ScratchDatabase`]: a throw-away database (or schema) on a PostgreSQL server, for tests
//! (feature `testkit`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::NoTls;
use tracing::warn;
use uuid::Uuid;

use super::error::PgError;

/// The prefix of every scratch database's and schema's name.
const PREFIX: &str = "vigilo_test_";

/// Scratch databases older than this are taken for leftovers of a crashed run and dropped when
/// the next one is created.
const STALE_AFTER: Duration = Duration::from_secs(2 * 60 * 60);

/// How long dropping a database may take.
const DROP_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh, empty database (or schema) created on the server of an admin URL, dropped (with
/// its connections) when this value is dropped or [`ScratchDatabase::drop_database`] is
/// awaited.
///
/// For tests: each test gets a namespace of its own (`vigilo_test_<unix seconds>_<uuid>`), so
/// tests run in parallel, in several test binaries at once, without seeing each other.
///
/// - [`ScratchDatabase::create`] makes a whole database (`CREATE DATABASE … TEMPLATE
///   template0`): the real thing, about half a second on an idle server.
/// - [`ScratchDatabase::create_schema`] makes a schema in the admin URL's database and gives a
///   URL whose connections use it alone (`options=-c search_path=…`): milliseconds, for suites
///   with many cases.
///
/// Creating either also drops scratch databases and schemas more than two hours old, left
/// behind by runs that crashed.
///
/// Only with the `testkit` feature (test-only; a production build does not include it).
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
    kind: Kind,
    dropped: bool,
}

/// What a [`ScratchDatabase`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Database,
    Schema,
}

impl Kind {
    /// The statement dropping the scratch namespace `name`.
    fn drop_sql(self, name: &str) -> String {
        match self {
            Kind::Database => format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#),
            Kind::Schema => format!(r#"DROP SCHEMA IF EXISTS "{name}" CASCADE"#),
        }
    }
}

/// A new scratch name and the current Unix time.
fn new_name() -> (String, u64) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    (format!("{PREFIX}{secs}_{}", Uuid::now_v7().simple()), secs)
}

impl ScratchDatabase {
    /// Creates a new, empty database through `admin_url` (a URL of a role allowed to
    /// `CREATE DATABASE`, usually naming the `postgres` database).
    pub async fn create(admin_url: &str) -> Result<Self, PgError> {
        let (name, secs) = new_name();
        let admin = admin_connect(admin_url).await?;
        prune_stale(&admin, secs).await;
        // template0: nobody can be connected to it, so concurrent creations never collide.
        run(
            &admin,
            &format!(r#"CREATE DATABASE "{name}" TEMPLATE template0"#),
            &name,
        )
        .await?;
        Ok(Self {
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name),
            name,
            kind: Kind::Database,
            dropped: false,
        })
    }

    /// Creates a new, empty schema in the database of `admin_url`; connections through
    /// [`ScratchDatabase::url`] see only it (`search_path`).
    pub async fn create_schema(admin_url: &str) -> Result<Self, PgError> {
        let (name, secs) = new_name();
        let admin = admin_connect(admin_url).await?;
        prune_stale(&admin, secs).await;
        run(&admin, &format!(r#"CREATE SCHEMA "{name}""#), &name).await?;
        Ok(Self {
            admin_url: admin_url.to_owned(),
            url: with_search_path(admin_url, &name),
            name,
            kind: Kind::Schema,
            dropped: false,
        })
    }

    /// The URL to connect to: the admin URL with its database replaced, or with the scratch
    /// schema as `search_path`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's (or schema's) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database (terminating its connections) or schema now, from async code.
    pub async fn drop_database(mut self) {
        self.dropped = true;
        if let Err(e) = drop_named(&self.admin_url, &self.kind.drop_sql(&self.name)).await {
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
        let sql = self.kind.drop_sql(&self.name);
        let job = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(rt) => {
                    if let Err(e) = rt.block_on(drop_named(&admin_url, &sql)) {
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

/// `url` with `options=-c search_path=<schema>` added (percent-encoded in a URL).
fn with_search_path(url: &str, schema: &str) -> String {
    if !url.contains("://") {
        return format!("{url} options='-c search_path={schema}'");
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

/// Runs one administrative statement about scratch namespace `name`.
async fn run(admin: &tokio_postgres::Client, sql: &str, name: &str) -> Result<(), PgError> {
    admin
        .batch_execute(sql)
        .await
        .map_err(|source| PgError::Statement {
            doing: format!("creating scratch namespace {name}"),
            source,
        })
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

/// Runs `sql` (dropping a scratch namespace) through `admin_url`.
async fn drop_named(admin_url: &str, sql: &str) -> Result<(), String> {
    let work = async {
        let admin = admin_connect(admin_url).await.map_err(|e| e.to_string())?;
        admin.batch_execute(sql).await.map_err(|e| e.to_string())
    };
    match tokio::time::timeout(DROP_TIMEOUT, work).await {
        Ok(result) => result,
        Err(_) => Err(format!("it took longer than {DROP_TIMEOUT:?}")),
    }
}

/// Drops scratch databases (on the server) and schemas (in the admin database) created more
/// than [`STALE_AFTER`] before `now` (best effort).
async fn prune_stale(admin: &tokio_postgres::Client, now: u64) {
    let Ok(rows) = admin
        .query(
            "SELECT datname::text, true FROM pg_database WHERE starts_with(datname::text, $1)
             UNION ALL
             SELECT nspname::text, false FROM pg_namespace WHERE starts_with(nspname::text, $1)",
            &[&PREFIX],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let (Ok(name), Ok(is_database)) = (row.try_get::<_, String>(0), row.try_get::<_, bool>(1))
        else {
            continue;
        };
        let created = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if let Some(created) = created
            && now.saturating_sub(created) > STALE_AFTER.as_secs()
        {
            let kind = if is_database {
                Kind::Database
            } else {
                Kind::Schema
            };
            let _ = admin.batch_execute(&kind.drop_sql(&name)).await;
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
        assert_eq!(
            with_search_path("postgres://h/db", "s"),
            "postgres://h/db?options=-c%20search_path%3Ds"
        );
        assert_eq!(
            with_search_path("postgres://h/db?sslmode=disable", "s"),
            "postgres://h/db?sslmode=disable&options=-c%20search_path%3Ds"
        );
    }
}
