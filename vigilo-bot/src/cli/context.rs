//! What every command needs: the store opened from `--db`, the workspace from `--workspace`
//! (or the only one), the acting user from `--as`, and the output.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use vigilo_core::error::Error;
use vigilo_core::ids::{ChangeId, ExecutionId, Key, KeyKind, RunbookId, UserId};
use vigilo_core::service::{Vigilo, Who};
use vigilo_core::store::{Store, StoreError};
use vigilo_core::workspace::{Membership, User, Workspace};
use vigilo_store::{SqliteOptions, SqliteStore};

use super::output::Out;
use super::{CliError, Global, Ref};

/// Where the database is, as `--db` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbUrl {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl FromStr for DbUrl {
    type Err = CliError;

    /// `sqlite:PATH`, `sqlite://PATH`, `postgres://…`, `postgresql://…`, or a bare path.
    fn from_str(s: &str) -> Result<Self, CliError> {
        let s = s.trim();
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(DbUrl::Postgres(s.to_owned()));
        }
        let path = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
            .unwrap_or(s);
        if path.is_empty() {
            return Err(CliError::Usage(
                "--db is empty; give a file path, `sqlite:PATH` or `postgres://…`".into(),
            ));
        }
        Ok(DbUrl::Sqlite(PathBuf::from(path)))
    }
}

/// The open database, the global options and the output of one command.
pub struct Ctx {
    /// The service.
    pub vigilo: Vigilo,
    /// The global options.
    pub global: Global,
    /// Where output goes, and how it looks.
    pub out: Out,
    /// The database as people read it: the SQLite file, or the PostgreSQL URL without its
    /// password.
    pub db_label: String,
    /// The SQLite file, when the database is one.
    pub db_path: Option<PathBuf>,
    sqlite: Option<Arc<SqliteStore>>,
    #[cfg(feature = "postgres")]
    postgres: Option<Arc<vigilo_store::PgStore>>,
    handles: Mutex<HashMap<UserId, String>>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("db", &self.db_label)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// Opens the database `global.db` names. Unless `create`, a missing SQLite file is an error
    /// (so a typo in `--db` does not leave an empty database behind).
    pub async fn open(global: Global, create: bool) -> Result<Ctx, CliError> {
        let path = match global.db.parse::<DbUrl>()? {
            DbUrl::Postgres(url) => return Self::open_postgres(global, &url).await,
            DbUrl::Sqlite(p) => p,
        };
        if !create && !path.exists() {
            return Err(CliError::NotFound(format!(
                "no Vigilo database at {}; create one with `vigilo init --workspace <slug> --owner <handle>`, or point --db / VIGILO_DB at yours",
                path.display()
            )));
        }
        let store = SqliteStore::open(&path, SqliteOptions::default())
            .await
            .map_err(|e| CliError::Internal(e.to_string()))?;
        let store = Arc::new(store);
        let dyn_store: Arc<dyn Store> = store.clone();
        let out = Out::new(global.json);
        Ok(Ctx {
            vigilo: Vigilo::new(dyn_store).acting_via(crate::principal::local_origin(
                vigilo_core::audit::Surface::Cli,
            )),
            global,
            out,
            db_label: path.display().to_string(),
            db_path: Some(path),
            sqlite: Some(store),
            #[cfg(feature = "postgres")]
            postgres: None,
            handles: Mutex::new(HashMap::new()),
        })
    }

    /// Connects to PostgreSQL (feature `postgres`), applying missing migrations.
    #[cfg(feature = "postgres")]
    async fn open_postgres(global: Global, url: &str) -> Result<Ctx, CliError> {
        let store = vigilo_store::PgStore::connect(url, vigilo_store::PgOptions::default())
            .await
            .map_err(|e| {
                CliError::Internal(format!("cannot use PostgreSQL at {}: {e}", redact(url)))
            })?;
        let store = Arc::new(store);
        let dyn_store: Arc<dyn Store> = store.clone();
        let out = Out::new(global.json);
        Ok(Ctx {
            vigilo: Vigilo::new(dyn_store).acting_via(crate::principal::local_origin(
                vigilo_core::audit::Surface::Cli,
            )),
            global,
            out,
            db_label: redact(url),
            db_path: None,
            sqlite: None,
            postgres: Some(store),
            handles: Mutex::new(HashMap::new()),
        })
    }

    /// Without the `postgres` feature, a PostgreSQL URL is a clear error.
    #[cfg(not(feature = "postgres"))]
    async fn open_postgres(_global: Global, _url: &str) -> Result<Ctx, CliError> {
        Err(CliError::Internal(
            "PostgreSQL support is not built into this binary yet (build vigilo-bot with `--features postgres`); use an SQLite file (--db ./vigilo.db or sqlite:PATH)".into(),
        ))
    }

    /// Closes the store, waiting for its writer to finish.
    pub async fn close(self) {
        #[cfg(feature = "postgres")]
        if let Some(pg) = &self.postgres {
            pg.close();
        }
        let Ctx { vigilo, sqlite, .. } = self;
        drop(vigilo);
        if let Some(store) = sqlite
            && let Ok(store) = Arc::try_unwrap(store)
        {
            store.close().await;
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        self.vigilo.store()
    }

    /// The workspace: `--workspace`, or the only one.
    pub async fn workspace(&self) -> Result<Workspace, CliError> {
        if let Some(slug) = &self.global.workspace {
            return Ok(self.vigilo.workspace_by_slug(slug).await?);
        }
        let all = self.vigilo.workspaces().await?;
        match all.as_slice() {
            [] => Err(CliError::NotFound(
                "this database has no workspace yet; create one with `vigilo init --workspace <slug> --owner <handle>`".into(),
            )),
            [one] => Ok(one.clone()),
            many => {
                let slugs: Vec<&str> = many.iter().map(|w| w.slug.as_str()).collect();
                Err(CliError::Usage(format!(
                    "this database has {} workspaces ({}); choose one with --workspace or VIGILO_WORKSPACE",
                    many.len(),
                    slugs.join(", ")
                )))
            }
        }
    }

    /// The workspace and the acting user (`--as`, required).
    pub async fn who(&self) -> Result<(Workspace, Who, User, Membership), CliError> {
        let ws = self.workspace().await?;
        let Some(handle) = &self.global.as_user else {
            return Err(CliError::Usage(
                "this command acts on behalf of someone: pass --as <handle> or set VIGILO_USER"
                    .into(),
            ));
        };
        let (user, m) = match self.vigilo.member(ws.id, handle).await {
            Ok(found) => found,
            Err(e) => return Err(self.removed_or(&ws, handle, e).await),
        };
        let who = Who::new(ws.id, user.id);
        self.remember(user.id, user.handle.as_str());
        Ok((ws, who, user, m))
    }

    /// `error`, unless `handle` names a member removed from `ws`: then a denial that says so.
    async fn removed_or(
        &self,
        ws: &Workspace,
        handle: &str,
        error: vigilo_core::error::Error,
    ) -> CliError {
        let handle = handle.trim_start_matches('@');
        if let Ok(user) = self.store().user_by_handle(handle).await
            && let Ok(m) = self.store().membership(ws.id, user.id).await
            && !m.is_active()
        {
            return CliError::Denied(format!(
                "@{handle} was removed from workspace {} and can no longer act in it; an admin can add them again (`vigilo user add {handle} --role <role>`)",
                ws.slug
            ));
        }
        error.into()
    }

    fn remember(&self, id: UserId, handle: &str) {
        if let Ok(mut h) = self.handles.lock() {
            h.insert(id, handle.to_owned());
        }
    }

    /// A user's handle (without `@`), or `?` when the user is unknown.
    pub async fn handle(&self, id: UserId) -> String {
        if let Some(h) = self.handles.lock().ok().and_then(|h| h.get(&id).cloned()) {
            return h;
        }
        match self.store().user(id).await {
            Ok(u) => {
                self.remember(id, u.handle.as_str());
                u.handle.to_string()
            }
            Err(_) => "?".into(),
        }
    }

    /// The handle of an optional user.
    pub async fn handle_opt(&self, id: Option<UserId>) -> Option<String> {
        match id {
            Some(id) => Some(self.handle(id).await),
            None => None,
        }
    }

    /// The key a [`Ref`] names in the workspace: keys as they are (checked for kind), ids
    /// looked up.
    pub async fn key(&self, who: &Who, r: Ref, kind: KeyKind) -> Result<Key, CliError> {
        let id = match r {
            Ref::Key(k) if k.kind == kind => return Ok(k),
            Ref::Key(k) => {
                return Err(CliError::Usage(format!(
                    "{k} is not a {} key; expected {}-…",
                    kind.as_str(),
                    kind.prefix()
                )));
            }
            Ref::Id(id) => id,
        };
        let ws = who.workspace;
        let not_found = || {
            CliError::NotFound(format!(
                "no {} with id {id} in this workspace",
                kind.as_str()
            ))
        };
        let found: Result<Key, StoreError> = match kind {
            KeyKind::Runbook => self.store().runbook(ws, RunbookId(id)).await.map(|r| r.key),
            KeyKind::Execution => self
                .store()
                .execution(ws, ExecutionId(id))
                .await
                .map(|e| e.key),
            KeyKind::Change => self.store().change(ws, ChangeId(id)).await.map(|c| c.key),
            KeyKind::Incident => {
                let all = self.store().list_incidents(ws).await.map_err(Error::from)?;
                return all
                    .into_iter()
                    .find(|i| i.id.0 == id)
                    .map(|i| i.key)
                    .ok_or_else(not_found);
            }
        };
        match found {
            Ok(k) => Ok(k),
            Err(StoreError::NotFound(_)) => Err(not_found()),
            Err(e) => Err(Error::from(e).into()),
        }
    }

    /// Like [`Ctx::key`] for an optional reference.
    pub async fn key_opt(
        &self,
        who: &Who,
        r: Option<Ref>,
        kind: KeyKind,
    ) -> Result<Option<Key>, CliError> {
        match r {
            Some(r) => Ok(Some(self.key(who, r, kind).await?)),
            None => Ok(None),
        }
    }
}

/// A PostgreSQL URL without its password, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (auth, host) = match rest.split_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    match auth.and_then(|a| a.split_once(':')) {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// A file name for messages: the path relative to `base` when it is inside it.
pub fn display_name(path: &Path, base: Option<&Path>) -> String {
    base.and_then(|b| path.strip_prefix(b).ok())
        .unwrap_or(path)
        .display()
        .to_string()
}
