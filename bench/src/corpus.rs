//! 100,000 runbooks: seeding them through the store's public API, then listing a category and
//! searching, through the store, through the service, and with raw rusqlite on the same file.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};
use serde_json::json;
use vigilo_core::audit::{AuditDraft, AuditLinks};
use vigilo_core::ids::{KeyKind, RunbookId};
use vigilo_core::runbook::{Runbook, RunbookInput, RunbookVersion, StepInput, VersionSource};
use vigilo_core::service::{ListRunbooks, Vigilo, Who};
use vigilo_core::store::{Commit, DraftFilter, RunbookQuery, Store, Write};
use vigilo_store::{SqliteOptions, SqliteStore, WriteStats};

use crate::stats::Latencies;

const VERBS: &[&str] = &[
    "restart",
    "drain",
    "rotate",
    "failover",
    "promote",
    "rollback",
    "scale",
    "flush",
    "purge",
    "reindex",
    "vacuum",
    "upgrade",
    "patch",
    "cordon",
    "migrate",
    "restore",
    "snapshot",
    "resize",
    "rebalance",
    "throttle",
    "renew",
    "revoke",
    "disable",
    "enable",
    "reload",
    "compact",
    "evict",
    "replay",
    "pause",
    "resume",
];
const TECH: &[&str] = &[
    "postgres",
    "mysql",
    "redis",
    "kafka",
    "nginx",
    "kubernetes",
    "elasticsearch",
    "rabbitmq",
    "cassandra",
    "mongodb",
    "haproxy",
    "envoy",
    "consul",
    "vault",
    "etcd",
    "zookeeper",
    "memcached",
    "clickhouse",
    "prometheus",
    "grafana",
    "terraform",
    "ansible",
    "jenkins",
    "docker",
    "ceph",
    "minio",
    "nats",
    "traefik",
    "istio",
    "coredns",
];
const NOUNS: &[&str] = &[
    "cluster",
    "node",
    "pool",
    "replica",
    "primary",
    "certificate",
    "cache",
    "queue",
    "topic",
    "partition",
    "index",
    "shard",
    "volume",
    "disk",
    "bucket",
    "gateway",
    "listener",
    "route",
    "secret",
    "token",
    "lease",
    "backup",
    "schema",
    "table",
    "connection",
    "worker",
    "cron",
    "deployment",
    "service",
    "ingress",
    "firewall",
    "tunnel",
    "mirror",
    "quota",
    "tenant",
    "region",
    "zone",
    "endpoint",
    "balancer",
    "namespace",
];
const FILLER: &[&str] = &[
    "check",
    "verify",
    "ensure",
    "metrics",
    "dashboard",
    "alert",
    "latency",
    "errors",
    "logs",
    "before",
    "after",
    "wait",
    "until",
    "healthy",
    "confirm",
    "owner",
    "ticket",
    "channel",
    "announce",
    "carefully",
    "slowly",
    "traffic",
    "load",
    "capacity",
    "threshold",
    "percent",
    "minutes",
    "status",
    "page",
    "oncall",
    "rollout",
    "canary",
    "window",
    "maintenance",
    "customer",
    "impact",
    "expected",
    "output",
    "command",
    "the",
];
/// 20 categories: a category filter selects 5% of the runbooks.
pub const CATEGORIES: &[&str] = &[
    "database",
    "network",
    "kubernetes",
    "security",
    "storage",
    "messaging",
    "observability",
    "ci",
    "dns",
    "cdn",
    "billing",
    "auth",
    "search",
    "cache",
    "backup",
    "compute",
    "edge",
    "payments",
    "identity",
    "platform",
];
const SERVICE_PREFIXES: &[&str] = &[
    "ledger", "pay", "auth", "search", "media", "mail", "geo", "cart", "order", "stock", "price",
    "promo", "user", "feed", "chat", "notify", "report", "audit", "asset", "fleet", "route",
    "quote", "claim", "vault", "batch",
];
const SERVICE_SUFFIXES: &[&str] = &[
    "sync", "gate", "api", "hub", "core", "worker", "proxy", "store", "index", "relay", "stream",
    "cron", "bridge", "engine", "front", "admin", "agent", "cache", "dock", "mesh",
];

/// SplitMix64, seeded per runbook so the corpus is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[(self.next() % words.len() as u64) as usize]
    }

    fn sentence(&mut self, words: usize, tech: &str, noun: &str) -> String {
        let mut out = Vec::with_capacity(words);
        for i in 0..words {
            out.push(match (i, self.next() % 6) {
                (0, _) => self.pick(VERBS),
                (_, 0) => tech,
                (_, 1) => noun,
                (_, 2) => self.pick(NOUNS),
                _ => self.pick(FILLER),
            });
        }
        let mut s = out.join(" ");
        s.push('.');
        s
    }
}

/// The service name runbook `i` is about (500 names, each in 1/500 of the runbooks).
fn service_name(i: usize) -> String {
    let n = i % (SERVICE_PREFIXES.len() * SERVICE_SUFFIXES.len());
    format!(
        "{}{}",
        SERVICE_PREFIXES[n % SERVICE_PREFIXES.len()],
        SERVICE_SUFFIXES[n / SERVICE_PREFIXES.len()]
    )
}

/// Runbook `i` of the corpus: a title, two sentences of description and five steps, in one of
/// 20 categories (about 1 KB of text).
fn body(i: usize) -> RunbookInput {
    let mut rng = Rng(i as u64 ^ 0xC0FF_EE00);
    let tech = rng.pick(TECH);
    let noun = rng.pick(NOUNS);
    let service = service_name(i);
    let title = format!("{} {tech} {noun} of {service}", rng.pick(VERBS));
    let description = format!(
        "{} {} Owned by the {service} team.",
        rng.sentence(12, tech, noun),
        rng.sentence(10, tech, noun)
    );
    let steps = (0..5)
        .map(|_| StepInput {
            title: format!("{} the {}", rng.pick(VERBS), rng.pick(NOUNS)),
            description: rng.sentence(14, tech, noun),
            est_minutes: 5,
            ..StepInput::default()
        })
        .collect();
    RunbookInput {
        title,
        description,
        category: CATEGORIES[i % CATEGORIES.len()].to_owned(),
        steps,
    }
}

/// The seeded file: how long seeding took and what the writer did.
pub struct Seeded {
    /// Runbooks created.
    pub runbooks: usize,
    /// Wall time of the seeding.
    pub elapsed: Duration,
    /// Key allocations and commits, and the transactions they shared.
    pub stats: WriteStats,
}

/// Creates `n` runbooks (90% published) through [`Store::allocate_key`] and [`Store::commit`]
/// (a runbook row, its version 1 and its audit entry per commit, as the service writes them),
/// from `concurrency` Tokio tasks so that the writer group-commits them.
pub async fn seed(
    store: Arc<SqliteStore>,
    who: Who,
    n: usize,
    concurrency: usize,
) -> Result<Seeded> {
    let next = Arc::new(AtomicUsize::new(0));
    let before = store.write_stats();
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (store, next) = (Arc::clone(&store), Arc::clone(&next));
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                let body = body(i).validate()?;
                let key = store.allocate_key(who.workspace, KeyKind::Runbook).await?;
                let now = chrono::Utc::now();
                let rb = Runbook {
                    id: RunbookId::new(),
                    workspace: who.workspace,
                    key,
                    body,
                    version: 1,
                    owner: who.user,
                    // Not `i % 10`: categories cycle every 20, so that would leave whole categories unpublished.
                    is_published: !(i / CATEGORIES.len()).is_multiple_of(10),
                    archived_at: None,
                    created_at: now,
                    updated_at: now,
                    rev: 1,
                };
                let version = RunbookVersion {
                    runbook: rb.id,
                    version: 1,
                    body: rb.body.clone(),
                    author: who.user,
                    saved_at: now,
                    source: VersionSource::Created,
                };
                let audit = AuditDraft {
                    at: now,
                    actor: Some(who.user),
                    actor_handle: Some("alice".into()),
                    action: "runbook.created".into(),
                    target: key.to_string(),
                    details: json!({
                        "title": rb.body.title.as_str(),
                        "category": rb.body.category.as_str(),
                        "steps": rb.body.steps.len(),
                        "published": rb.is_published,
                        "source": "created",
                    }),
                    links: AuditLinks {
                        runbook: Some(key),
                        runbook_version: Some(1),
                        ..AuditLinks::default()
                    },
                    origin: None,
                };
                store
                    .commit(Commit {
                        workspace: who.workspace,
                        writes: vec![
                            Write::Runbook {
                                runbook: rb,
                                expected_rev: None,
                            },
                            Write::RunbookVersion(version),
                        ],
                        audit,
                        acting: None,
                    })
                    .await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let elapsed = t.elapsed();
    let after = store.write_stats();
    Ok(Seeded {
        runbooks: n,
        elapsed,
        stats: WriteStats {
            transactions: after.transactions - before.transactions,
            writes: after.writes - before.writes,
        },
    })
}

/// One read measured three ways.
pub struct QueryResult {
    /// What was asked.
    pub name: String,
    /// How many runbooks the page held.
    pub returned: usize,
    /// How many runbooks match in all (selectivity).
    pub matching: u64,
    /// Through `Store` (`SqliteStore`: read pool on the blocking pool, JSON decoding).
    pub store: Latencies,
    /// Through `Vigilo` (adds the actor's membership and user reads and the permission check).
    pub service: Latencies,
    /// Raw rusqlite on a read-only connection of the same file: the same rows as JSON text.
    pub raw: Latencies,
}

/// A read to measure.
#[derive(Clone)]
pub enum Query {
    /// First page of published runbooks in a category.
    List {
        /// The category.
        category: &'static str,
        /// The page size.
        limit: usize,
    },
    /// Full-text search.
    Search {
        /// The words.
        words: &'static str,
        /// The page size.
        limit: usize,
    },
}

impl Query {
    fn name(&self) -> String {
        match self {
            Query::List { category, limit } => {
                format!("list_runbooks category={category:?} limit={limit} (first page)")
            }
            Query::Search { words, limit } => format!("search_runbooks {words:?} limit={limit}"),
        }
    }

    /// The FTS5 expression the store builds for `words` (each word quoted, all required).
    fn fts(words: &str) -> String {
        words
            .split_whitespace()
            .map(|w| format!("\"{w}\""))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    async fn store(&self, store: &dyn Store, who: Who) -> Result<usize> {
        Ok(match self {
            Query::List { category, limit } => store
                .list_runbooks(
                    who.workspace,
                    &RunbookQuery {
                        category: Some((*category).to_owned()),
                        drafts: DraftFilter::None,
                        limit: *limit,
                        ..RunbookQuery::default()
                    },
                )
                .await?
                .len(),
            Query::Search { words, limit } => store
                .search_runbooks(who.workspace, words, DraftFilter::All, *limit)
                .await?
                .len(),
        })
    }

    async fn service(&self, vigilo: &Vigilo, who: Who) -> Result<usize> {
        Ok(match self {
            Query::List { category, limit } => vigilo
                .list_runbooks(
                    &who,
                    ListRunbooks {
                        category: Some((*category).to_owned()),
                        limit: *limit,
                        ..ListRunbooks::default()
                    },
                )
                .await?
                .len(),
            Query::Search { words, limit } => {
                vigilo.search_runbooks(&who, words, *limit).await?.len()
            }
        })
    }

    /// The plain-SQL equivalent: the list query of the store; for search, FTS5 `MATCH` with
    /// bm25 ordering (without the store's title-first tiers).
    fn raw(&self, conn: &Connection, who: Who) -> Result<usize> {
        let ws = who.workspace.to_string();
        let docs: Vec<String> = match self {
            Query::List { category, limit } => conn
                .prepare_cached(
                    "SELECT r.doc FROM runbooks r WHERE r.workspace_id = ?1 AND r.archived = 0
                     AND r.is_published = 1 AND r.category = ?2 ORDER BY r.key_number LIMIT ?3",
                )?
                .query_map(rusqlite::params![ws, category, *limit as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?,
            Query::Search { words, limit } => conn
                .prepare_cached(
                    "SELECT r.doc FROM runbook_search s JOIN runbooks r ON r.pk = s.rowid
                     WHERE runbook_search MATCH ?1 AND r.workspace_id = ?2 AND r.archived = 0
                     ORDER BY bm25(runbook_search) LIMIT ?3",
                )?
                .query_map(
                    rusqlite::params![Self::fts(words), ws, *limit as i64],
                    |r| r.get(0),
                )?
                .collect::<rusqlite::Result<_>>()?,
        };
        Ok(docs.len())
    }

    fn matching(&self, conn: &Connection, who: Who) -> Result<u64> {
        let ws = who.workspace.to_string();
        Ok(match self {
            Query::List { category, .. } => conn.query_row(
                "SELECT count(*) FROM runbooks WHERE workspace_id = ?1 AND archived = 0
                 AND is_published = 1 AND category = ?2",
                rusqlite::params![ws, category],
                |r| r.get(0),
            )?,
            Query::Search { words, .. } => conn.query_row(
                "SELECT count(*) FROM runbook_search WHERE runbook_search MATCH ?1",
                [Self::fts(words)],
                |r| r.get(0),
            )?,
        })
    }
}

/// The reads measured over the corpus.
pub fn queries() -> Vec<Query> {
    vec![
        Query::List {
            category: "database",
            limit: 100,
        },
        Query::List {
            category: "database",
            limit: 20,
        },
        // One service name: 1 runbook in 500.
        Query::Search {
            words: "ledgersync",
            limit: 20,
        },
        // Two words of the ops vocabulary, both common, rarely together.
        Query::Search {
            words: "redis failover",
            limit: 20,
        },
        // One very common word.
        Query::Search {
            words: "restart",
            limit: 20,
        },
    ]
}

/// Runs every query `rounds` times, interleaved (store, service, raw, next query, …), after a
/// warm-up round.
pub async fn measure(
    db: &Path,
    store: Arc<SqliteStore>,
    vigilo: &Vigilo,
    who: Who,
    rounds: usize,
) -> Result<Vec<QueryResult>> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {} read-only", db.display()))?;
    let mut results = Vec::new();
    for q in queries() {
        results.push(QueryResult {
            name: q.name(),
            returned: q.store(&*store, who).await?,
            matching: q.matching(&conn, who)?,
            store: Latencies::default(),
            service: Latencies::default(),
            raw: Latencies::default(),
        });
        q.service(vigilo, who).await?;
        q.raw(&conn, who)?;
    }
    for _ in 0..rounds {
        for (q, r) in queries().iter().zip(results.iter_mut()) {
            let t = Instant::now();
            q.store(&*store, who).await?;
            r.store.push(t.elapsed());
            let t = Instant::now();
            q.service(vigilo, who).await?;
            r.service.push(t.elapsed());
            let t = Instant::now();
            q.raw(&conn, who)?;
            r.raw.push(t.elapsed());
        }
    }
    Ok(results)
}

/// Opens (or reuses) the corpus at `db`: seeds `n` runbooks unless the file already holds them.
pub async fn open_or_seed(
    db: &Path,
    n: usize,
) -> Result<(crate::service::Service, Option<Seeded>)> {
    if db.exists() {
        let store = Arc::new(SqliteStore::open(db, SqliteOptions::default()).await?);
        let ws = store.workspace_by_slug("bench").await?;
        let owner = store.user_by_handle("alice").await?;
        let who = Who::new(ws.id, owner.id);
        let count = {
            let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            conn.query_row("SELECT count(*) FROM runbooks", [], |r| r.get::<_, i64>(0))?
        };
        if count as usize > n {
            let rb = store
                .list_runbooks(who.workspace, &RunbookQuery::default())
                .await?
                .first()
                .map(|r| r.key)
                .context("no runbook in the reused corpus")?;
            let vigilo = Vigilo::new(store.clone());
            return Ok((
                crate::service::Service {
                    store,
                    vigilo,
                    who,
                    runbook: rb,
                },
                None,
            ));
        }
        anyhow::bail!(
            "{} exists but holds {count} runbooks, not {n}; delete it",
            db.display()
        );
    }
    let svc = crate::service::Service::create(db).await?;
    let seeded = seed(Arc::clone(&svc.store), svc.who, n, 256).await?;
    Ok((svc, Some(seeded)))
}
