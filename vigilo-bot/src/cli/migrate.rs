//! `vigilo migrate --from sqlite:PATH --to postgres://…`: copies a whole SQLite database into
//! an empty PostgreSQL database, then checks the copy.
//!
//! The steps, each refusing before anything is written when it fails:
//!
//! 1. read the source in one read transaction (read-only: the file is never written), refusing
//!    a file that is not a Vigilo database (exit 6) or is missing (exit 3);
//! 2. verify every workspace's audit chain in the source (a broken chain is exit 7: copying it
//!    would launder the tampering);
//! 3. connect to the target (creating Vigilo's schema if the database has none) and write every
//!    row in one transaction, refusing a target that already holds data (exit 6); the row
//!    counts are compared before `COMMIT`;
//! 4. after `COMMIT`, count every table again and verify every workspace's audit chain through
//!    the target store's ordinary reads (what `vigilo audit verify` runs).
//!
//! The migration never touches `--db`: it names both databases itself.

use clap::Args;

use super::{CliError, Global};
#[cfg(feature = "postgres")]
pub use imp::run;

/// `vigilo migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The database to copy: `sqlite:PATH` or a bare path to a Vigilo SQLite file (only read).
    #[arg(long, value_name = "sqlite:PATH")]
    pub from: String,
    /// The empty PostgreSQL database to copy into: `postgres://user@host:port/database`.
    #[arg(long, value_name = "postgres://…")]
    pub to: String,
}

/// Without the `postgres` feature there is nothing to migrate to.
#[cfg(not(feature = "postgres"))]
pub async fn run(_global: Global, _args: MigrateArgs) -> Result<(), CliError> {
    Err(CliError::Internal(
        "PostgreSQL support is not built into this binary (build vigilo-bot with `--features postgres`), so `vigilo migrate` cannot run".into(),
    ))
}

#[cfg(feature = "postgres")]
mod imp {
    use std::path::PathBuf;
    use std::sync::Arc;

    use serde_json::{Value, json};
    use vigilo_core::service::{AuditVerdict, Vigilo};
    use vigilo_core::store::Store;
    use vigilo_store::transfer::{self, ChainSummary, TABLES, TransferError};
    use vigilo_store::{PgOptions, PgStore};

    use super::super::context::{DbUrl, redact};
    use super::super::output::{Out, Table};
    use super::{CliError, Global, MigrateArgs};

    /// Runs `vigilo migrate`.
    pub async fn run(global: Global, args: MigrateArgs) -> Result<(), CliError> {
        let out = Out::new(global.json);
        let source = source_path(&args.from)?;
        let target = target_url(&args.to)?;
        let label = redact(&target);

        let path = source.clone();
        let snapshot = tokio::task::spawn_blocking(move || transfer::read_sqlite(&path))
            .await
            .map_err(|e| CliError::Internal(format!("the reading thread failed: {e}")))?
            .map_err(transfer_err)?;
        let chains = snapshot.verify_chains().map_err(transfer_err)?;
        let source_counts = snapshot.counts();
        tracing::info!(from = %source.display(), to = %label, rows = ?source_counts, "read the source");

        let store = PgStore::connect(&target, PgOptions::default().max_connections(2))
            .await
            .map_err(|e| CliError::Internal(format!("cannot use PostgreSQL at {label}: {e}")))?;
        let store = Arc::new(store);
        let result = copy_and_check(&store, &snapshot, &chains).await;
        store.close();
        let (target_counts, target_chains) = result?;

        let tables: serde_json::Map<String, Value> = TABLES
            .iter()
            .map(|t| {
                let doc = json!({ "source": source_counts[t], "target": target_counts[t] });
                ((*t).to_owned(), doc)
            })
            .collect();
        let workspaces: Vec<Value> = target_chains
        .iter()
        .map(|c| json!({ "slug": c.slug, "id": c.workspace.0, "audit_entries": c.entries, "head": c.head }))
        .collect();
        let doc = json!({
            "from": source.display().to_string(),
            "to": label,
            "result": "copied",
            "tables": tables,
            "workspaces": workspaces,
            "audit_verified": true,
        });
        out.emit(&doc, |p| {
        let mut t = Table::new(&["TABLE", "SOURCE", "TARGET"]);
        for table in TABLES {
            t.row(vec![
                table.to_owned(),
                source_counts[table].to_string(),
                target_counts[table].to_string(),
            ]);
        }
        let mut s = format!(
            "{} {} into {label}\n\n{}",
            p.green("copied"),
            source.display(),
            t.render(p)
        );
        for c in &target_chains {
            s.push_str(&format!(
                "\naudit chain of {}: {} entries, {} on the target (head {})",
                c.slug,
                c.entries,
                p.green("intact"),
                c.head.as_deref().unwrap_or("-")
            ));
        }
        s.push_str(&format!(
            "\n\nNext: point every replica at the new database (--db / VIGILO_DB = {label}) and keep {} as a backup.",
            source.display()
        ));
        s
    })
    }

    /// Writes the snapshot, then counts and verifies the target through its ordinary reads.
    async fn copy_and_check(
        store: &Arc<PgStore>,
        snapshot: &transfer::Snapshot,
        source_chains: &[ChainSummary],
    ) -> Result<(vigilo_store::transfer::TableCounts, Vec<ChainSummary>), CliError> {
        store
            .import_snapshot(snapshot)
            .await
            .map_err(transfer_err)?;
        let counts = store.table_counts().await.map_err(transfer_err)?;
        let want = snapshot.counts();
        for table in TABLES {
            if counts[table] != want[table] {
                return Err(CliError::Internal(format!(
                    "after the copy, table {table} has {} rows in the target but {} in the source; \
                 do not use the target (drop and recreate it, then migrate again)",
                    counts[table], want[table]
                )));
            }
        }
        let dyn_store: Arc<dyn Store> = store.clone();
        let vigilo = Vigilo::new(dyn_store);
        let mut chains = Vec::with_capacity(source_chains.len());
        for source in source_chains {
            match vigilo.verify_audit(source.workspace).await? {
                AuditVerdict::Intact { entries, head }
                    if entries == source.entries && head == source.head =>
                {
                    chains.push(ChainSummary {
                        workspace: source.workspace,
                        slug: source.slug.clone(),
                        entries,
                        head,
                    });
                }
                AuditVerdict::Intact { entries, head } => {
                    return Err(CliError::Tampered(format!(
                        "the audit chain of {} in the target has {entries} entries (head {}) but the \
                     source's has {} (head {}); do not use the target",
                        source.slug,
                        head.as_deref().unwrap_or("-"),
                        source.entries,
                        source.head.as_deref().unwrap_or("-")
                    )));
                }
                AuditVerdict::Tampered(t) => {
                    return Err(CliError::Tampered(format!(
                        "the audit chain of {} does not verify in the target: entry {}: {}; do not \
                     use the target",
                        source.slug, t.seq, t.problem
                    )));
                }
            }
        }
        Ok((counts, chains))
    }

    /// The SQLite file `--from` names.
    fn source_path(from: &str) -> Result<PathBuf, CliError> {
        match from.parse::<DbUrl>()? {
        DbUrl::Sqlite(p) => Ok(p),
        DbUrl::Postgres(_) => Err(CliError::Usage(
            "--from must be an SQLite database (`sqlite:PATH` or a path); to copy one PostgreSQL \
             database to another use pg_dump and pg_restore"
                .into(),
        )),
    }
    }

    /// The PostgreSQL URL `--to` names.
    fn target_url(to: &str) -> Result<String, CliError> {
        match to.parse::<DbUrl>()? {
            DbUrl::Postgres(url) => Ok(url),
            DbUrl::Sqlite(_) => Err(CliError::Usage(format!(
                "--to must be a PostgreSQL URL such as postgres://vigilo@db.example:5432/vigilo, not \
             {to:?}; to copy an SQLite database to another file, copy the file while no bot runs"
            ))),
        }
    }

    /// The exit code of each failure: refusals (6), a missing source (3), a broken source chain
    /// (7), the rest internal (1).
    fn transfer_err(e: TransferError) -> CliError {
        let message = e.to_string();
        match e {
            TransferError::SourceMissing(_) => CliError::NotFound(message),
            TransferError::NotVigilo { .. }
            | TransferError::SchemaVersion { .. }
            | TransferError::TargetNotEmpty { .. }
            | TransferError::Corrupt { .. } => CliError::Refused(message),
            TransferError::SourceTampered { .. } => CliError::Tampered(message),
            _ => CliError::Internal(message),
        }
    }
}
