//! Where the index lives: SQLite (FTS5) embedded, or PostgreSQL (a
//! `tsvector` column with a GIN index; vectors as `real[]`, or as
//! pgvector's `vector` with an HNSW index where `CREATE EXTENSION vector`
//! succeeds). [`crate::Index`] holds the logic (walking, hashing, chunking,
//! embedding, fusion) once; this module is the only place the two SQL
//! dialects differ, method by method side by side.
//!
//! Like the agent runner's store, the backend is chosen by the URL's
//! scheme and each backend has its own DDL. Unlike it, this uses the
//! native sqlx drivers rather than `Any`: `Any` cannot bind or read arrays
//! (`real[]`), and the lexical side differs in kind (an FTS5 virtual table
//! against a generated `tsvector` column), not just in placeholders.
//!
//! PostgreSQL tables are prefixed `knowledge_` so the index can share a
//! database with the runner's own tables.

use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{PgPool, Row, SqlitePool};

use crate::chunk::Chunk;
use crate::error::KnowledgeError;
use crate::search;

/// Which database an [`crate::Index`] is in (for logs, health and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// An embedded SQLite file (or memory): FTS5 BM25, vectors as bytes.
    Sqlite,
    /// A PostgreSQL server: `tsvector` ranked by `ts_rank_cd`; vectors as
    /// `real[]` scored in Rust, or, when `pgvector` is true, pgvector's
    /// `vector` with an HNSW index scored in the server.
    Postgres {
        /// Whether `CREATE EXTENSION vector` succeeded.
        pgvector: bool,
    },
}

const SQLITE_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', 0)",
    "CREATE TABLE IF NOT EXISTS documents (
        id INTEGER PRIMARY KEY,
        root TEXT NOT NULL,
        path TEXT NOT NULL UNIQUE,
        mtime_ns INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        chunks INTEGER NOT NULL,
        skipped TEXT
    )",
    "CREATE INDEX IF NOT EXISTS documents_root ON documents (root)",
    "CREATE TABLE IF NOT EXISTS chunks (
        id INTEGER PRIMARY KEY,
        doc_id INTEGER NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
        ord INTEGER NOT NULL,
        heading TEXT NOT NULL,
        text TEXT NOT NULL,
        embedding BLOB,
        model TEXT
    )",
    "CREATE INDEX IF NOT EXISTS chunks_doc ON chunks (doc_id)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5 (heading, text, tokenize = 'porter unicode61')",
];

/// The text search configuration of the `tsvector` column and the query:
/// `english` (Snowball stemming, like FTS5's porter tokenizer, and English
/// stop words dropped, which matters more here than for BM25 because
/// `ts_rank_cd` has no inverse document frequency to discount "the").
const PG_TS_CONFIG: &str = "english";

/// `ts_rank_cd` normalization: 1 divides by 1 + log(document length),
/// the nearest thing to BM25's length normalization. Measured on the
/// labelled sets (docs/benchmarks.md, "Knowledge retrieval"): 0 (none) is
/// a hair better for the lexical ranking alone, 1 better for hybrid, the
/// ranking used whenever an embedder is configured; 2 (by length) worse.
const PG_RANK_NORMALIZATION: i32 = 1;

const PG_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS knowledge_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    "INSERT INTO knowledge_meta (key, value) VALUES ('generation', 0) ON CONFLICT DO NOTHING",
    "CREATE TABLE IF NOT EXISTS knowledge_documents (
        id BIGSERIAL PRIMARY KEY,
        root TEXT NOT NULL,
        path TEXT NOT NULL UNIQUE,
        mtime_ns BIGINT NOT NULL,
        sha256 TEXT NOT NULL,
        chunks BIGINT NOT NULL,
        skipped TEXT
    )",
    "CREATE INDEX IF NOT EXISTS knowledge_documents_root ON knowledge_documents (root)",
    "CREATE TABLE IF NOT EXISTS knowledge_chunks (
        id BIGSERIAL PRIMARY KEY,
        doc_id BIGINT NOT NULL REFERENCES knowledge_documents (id) ON DELETE CASCADE,
        ord BIGINT NOT NULL,
        heading TEXT NOT NULL,
        text TEXT NOT NULL,
        embedding REAL[],
        dims INTEGER,
        model TEXT,
        tsv tsvector GENERATED ALWAYS AS (
            setweight(to_tsvector('english', heading), 'A') ||
            setweight(to_tsvector('english', text), 'B')
        ) STORED
    )",
    "CREATE INDEX IF NOT EXISTS knowledge_chunks_doc ON knowledge_chunks (doc_id)",
    "CREATE INDEX IF NOT EXISTS knowledge_chunks_tsv ON knowledge_chunks USING GIN (tsv)",
];

/// DDL run only where pgvector is present: an untyped `vector` column (the
/// model's dimension is not known until the first vector; the HNSW index
/// is per dimension, see [`Store::ensure_hnsw`]), and vectors stored as
/// `real[]` before the extension existed moved into it.
const PG_VECTOR_SCHEMA: &[&str] = &[
    "ALTER TABLE knowledge_chunks ADD COLUMN IF NOT EXISTS vec vector",
    "UPDATE knowledge_chunks SET vec = embedding::vector, embedding = NULL WHERE embedding IS NOT NULL AND vec IS NULL",
];

/// The most dimensions pgvector's HNSW indexes a `vector` (pgvector's
/// documented limit); above it the dense query is an exact scan.
const HNSW_MAX_DIMS: usize = 2000;

/// The database behind an index.
#[derive(Debug)]
pub(crate) enum Store {
    Sqlite(SqlitePool),
    Postgres {
        pool: PgPool,
        pgvector: bool,
        /// Dimensions whose HNSW index is known to exist.
        hnsw: Mutex<Vec<usize>>,
    },
}

/// A document's stored state: mtime, sha256, skip reason.
pub(crate) type DocState = (i64, String, Option<String>);

/// `url` with the password of its user info replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!(
                "{}{user}:***@{host}{}",
                &url[..scheme_end],
                &rest[authority_end..]
            )
        }
        _ => url.to_string(),
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    pub(crate) async fn sqlite(
        opts: SqliteConnectOptions,
        in_memory: bool,
    ) -> Result<Self, KnowledgeError> {
        let opts = opts.foreign_keys(true);
        let pool = if in_memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(opts)
                .await?
        } else {
            SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(
                    opts.create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal)
                        .busy_timeout(Duration::from_secs(5)),
                )
                .await?
        };
        let fts5: i64 = sqlx::query_scalar("SELECT sqlite_compileoption_used('ENABLE_FTS5')")
            .fetch_one(&pool)
            .await?;
        if fts5 != 1 {
            return Err(KnowledgeError::NoFts5);
        }
        for stmt in SQLITE_SCHEMA {
            sqlx::query(stmt).execute(&pool).await?;
        }
        Ok(Self::Sqlite(pool))
    }

    pub(crate) async fn sqlite_url(url: &str) -> Result<Self, KnowledgeError> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|_| KnowledgeError::BadUrl { url: redact(url) })?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        Self::sqlite(opts, in_memory).await
    }

    pub(crate) async fn postgres(url: &str) -> Result<Self, KnowledgeError> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|_| KnowledgeError::BadUrl { url: redact(url) })?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        // The extension first, on its own: where it is not installed (or the
        // role may not create it) the error must not abort the schema's
        // transaction.
        let created = sqlx::query("CREATE EXTENSION IF NOT EXISTS vector")
            .execute(&pool)
            .await;
        let pgvector = match created {
            Ok(_) => true,
            Err(e) => {
                let present: Option<i32> =
                    sqlx::query_scalar("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
                        .fetch_optional(&pool)
                        .await?;
                if present.is_none() {
                    tracing::info!(error = %e, "knowledge: pgvector is not available; vectors stored as real[] and scored in Rust");
                }
                present.is_some()
            }
        };
        // Several runners may open one database at once: the DDL runs under
        // a transaction-scoped advisory lock, so CREATE … IF NOT EXISTS never
        // races itself.
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('hwc-knowledge schema'))")
            .execute(&mut *tx)
            .await?;
        for stmt in PG_SCHEMA {
            sqlx::query(stmt).execute(&mut *tx).await?;
        }
        if pgvector {
            for stmt in PG_VECTOR_SCHEMA {
                sqlx::query(stmt).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        let store = Self::Postgres {
            pool,
            pgvector,
            hnsw: Mutex::new(Vec::new()),
        };
        if pgvector {
            let dims: Vec<i32> = sqlx::query_scalar(
                "SELECT DISTINCT dims FROM knowledge_chunks WHERE dims IS NOT NULL",
            )
            .fetch_all(store.pg())
            .await?;
            for d in dims {
                store.ensure_hnsw(usize::try_from(d).unwrap_or(0)).await?;
            }
        }
        Ok(store)
    }

    fn pg(&self) -> &PgPool {
        match self {
            Self::Postgres { pool, .. } => pool,
            Self::Sqlite(_) => unreachable!("pg() on a SQLite store"),
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres { pgvector, .. } => Backend::Postgres {
                pgvector: *pgvector,
            },
        }
    }

    /// pgvector only: the HNSW index for `dims`-dimensional vectors, an
    /// expression index on `vec::vector(dims)` restricted to rows of that
    /// dimension (pgvector's way to index an untyped column), created once.
    async fn ensure_hnsw(&self, dims: usize) -> Result<(), KnowledgeError> {
        let Self::Postgres {
            pool,
            pgvector: true,
            hnsw,
        } = self
        else {
            return Ok(());
        };
        if dims == 0 || dims > HNSW_MAX_DIMS || hnsw.lock().is_ok_and(|h| h.contains(&dims)) {
            return Ok(());
        }
        // `dims` is an integer: formatting it into DDL injects nothing.
        let ddl = format!(
            "CREATE INDEX IF NOT EXISTS knowledge_chunks_hnsw_{dims} ON knowledge_chunks \
             USING hnsw ((vec::vector({dims})) vector_cosine_ops) WHERE dims = {dims}"
        );
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('hwc-knowledge schema'))")
            .execute(&mut *tx)
            .await?;
        sqlx::query(&ddl).execute(&mut *tx).await?;
        tx.commit().await?;
        if let Ok(mut h) = hnsw.lock() {
            h.push(dims);
        }
        Ok(())
    }

    /// The counter every write bumps (the dense cache's validity).
    pub(crate) async fn generation(&self) -> Result<i64, KnowledgeError> {
        Ok(match self {
            Self::Sqlite(p) => {
                sqlx::query_scalar("SELECT value FROM meta WHERE key = 'generation'")
                    .fetch_one(p)
                    .await?
            }
            Self::Postgres { pool, .. } => {
                sqlx::query_scalar("SELECT value FROM knowledge_meta WHERE key = 'generation'")
                    .fetch_one(pool)
                    .await?
            }
        })
    }

    pub(crate) async fn doc_state(&self, path: &str) -> Result<Option<DocState>, KnowledgeError> {
        Ok(match self {
            Self::Sqlite(p) => {
                sqlx::query_as("SELECT mtime_ns, sha256, skipped FROM documents WHERE path = ?")
                    .bind(path)
                    .fetch_optional(p)
                    .await?
            }
            Self::Postgres { pool, .. } => {
                sqlx::query_as(
                    "SELECT mtime_ns, sha256, skipped FROM knowledge_documents WHERE path = $1",
                )
                .bind(path)
                .fetch_optional(pool)
                .await?
            }
        })
    }

    pub(crate) async fn touch(&self, path: &str, mtime_ns: i64) -> Result<(), KnowledgeError> {
        match self {
            Self::Sqlite(p) => {
                sqlx::query("UPDATE documents SET mtime_ns = ? WHERE path = ?")
                    .bind(mtime_ns)
                    .bind(path)
                    .execute(p)
                    .await?;
            }
            Self::Postgres { pool, .. } => {
                sqlx::query("UPDATE knowledge_documents SET mtime_ns = $1 WHERE path = $2")
                    .bind(mtime_ns)
                    .bind(path)
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn paths_under(&self, root: &str) -> Result<Vec<String>, KnowledgeError> {
        Ok(match self {
            Self::Sqlite(p) => {
                sqlx::query_scalar("SELECT path FROM documents WHERE root = ?")
                    .bind(root)
                    .fetch_all(p)
                    .await?
            }
            Self::Postgres { pool, .. } => {
                sqlx::query_scalar("SELECT path FROM knowledge_documents WHERE root = $1")
                    .bind(root)
                    .fetch_all(pool)
                    .await?
            }
        })
    }

    pub(crate) async fn remove(&self, path: &str) -> Result<bool, KnowledgeError> {
        let gone = match self {
            Self::Sqlite(p) => {
                let mut tx = p.begin().await?;
                sqlx::query(SQLITE_DELETE_FTS)
                    .bind(path)
                    .execute(&mut *tx)
                    .await?;
                let gone = sqlx::query("DELETE FROM documents WHERE path = ?")
                    .bind(path)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                gone
            }
            Self::Postgres { pool, .. } => {
                let mut tx = pool.begin().await?;
                let gone = sqlx::query("DELETE FROM knowledge_documents WHERE path = $1")
                    .bind(path)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query("UPDATE knowledge_meta SET value = value + 1 WHERE key = 'generation'")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                gone
            }
        };
        Ok(gone > 0)
    }

    pub(crate) async fn skipped(&self) -> Result<Vec<(String, String)>, KnowledgeError> {
        Ok(match self {
            Self::Sqlite(p) => {
                sqlx::query_as(
                    "SELECT path, skipped FROM documents WHERE skipped IS NOT NULL ORDER BY path",
                )
                .fetch_all(p)
                .await?
            }
            Self::Postgres { pool, .. } => sqlx::query_as(
                "SELECT path, skipped FROM knowledge_documents WHERE skipped IS NOT NULL ORDER BY path",
            )
            .fetch_all(pool)
            .await?,
        })
    }

    pub(crate) async fn chunk_count(&self) -> Result<i64, KnowledgeError> {
        Ok(match self {
            Self::Sqlite(p) => {
                sqlx::query_scalar("SELECT count(*) FROM chunks")
                    .fetch_one(p)
                    .await?
            }
            Self::Postgres { pool, .. } => {
                sqlx::query_scalar("SELECT count(*) FROM knowledge_chunks")
                    .fetch_one(pool)
                    .await?
            }
        })
    }

    /// Up to `limit` chunks lacking a vector of `model`: (id, heading, text).
    pub(crate) async fn unembedded(
        &self,
        model: &str,
        limit: usize,
    ) -> Result<Vec<(i64, String, String)>, KnowledgeError> {
        Ok(match self {
            Self::Sqlite(p) => sqlx::query_as(
                "SELECT id, heading, text FROM chunks WHERE model IS NULL OR model != ? OR embedding IS NULL ORDER BY id LIMIT ?",
            )
            .bind(model)
            .bind(count(limit))
            .fetch_all(p)
            .await?,
            Self::Postgres { pool, pgvector, .. } => {
                let col = if *pgvector { "vec" } else { "embedding" };
                sqlx::query_as(&format!(
                    "SELECT id, heading, text FROM knowledge_chunks WHERE model IS DISTINCT FROM $1 OR {col} IS NULL ORDER BY id LIMIT $2"
                ))
                .bind(model)
                .bind(count(limit))
                .fetch_all(pool)
                .await?
            }
        })
    }

    /// Stores vectors of `model` for chunks by id, in one transaction.
    pub(crate) async fn set_vectors(
        &self,
        rows: &[(i64, &[f32])],
        model: &str,
    ) -> Result<(), KnowledgeError> {
        match self {
            Self::Sqlite(p) => {
                let mut tx = p.begin().await?;
                for (id, v) in rows {
                    sqlx::query("UPDATE chunks SET embedding = ?, model = ? WHERE id = ?")
                        .bind(search::vector_to_bytes(v))
                        .bind(model)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Self::Postgres { pool, pgvector, .. } => {
                let sql = if *pgvector {
                    "UPDATE knowledge_chunks SET vec = $1::real[]::vector, embedding = NULL, dims = $2, model = $3 WHERE id = $4"
                } else {
                    "UPDATE knowledge_chunks SET embedding = $1, dims = $2, model = $3 WHERE id = $4"
                };
                let mut tx = pool.begin().await?;
                for (id, v) in rows {
                    sqlx::query(sql)
                        .bind(v.to_vec())
                        .bind(i32::try_from(v.len()).unwrap_or(i32::MAX))
                        .bind(model)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("UPDATE knowledge_meta SET value = value + 1 WHERE key = 'generation'")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                if let Some((_, v)) = rows.first() {
                    self.ensure_hnsw(v.len()).await?;
                }
            }
        }
        Ok(())
    }

    /// Replaces one document's row and chunks (with their lexical rows and
    /// vectors) in one transaction: a search sees the old version or the
    /// new, never a mix.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn replace(
        &self,
        root: &str,
        path: &str,
        mtime_ns: i64,
        sha: &str,
        skipped: Option<&str>,
        chunks: &[Chunk],
        vectors: Option<(&[Vec<f32>], &str)>,
    ) -> Result<(), KnowledgeError> {
        let vector = |i: usize| -> (Option<&Vec<f32>>, Option<&str>) {
            match vectors {
                Some((v, m)) => (v.get(i), Some(m)),
                None => (None, None),
            }
        };
        match self {
            Self::Sqlite(p) => {
                let mut tx = p.begin().await?;
                sqlx::query(SQLITE_DELETE_FTS)
                    .bind(path)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "DELETE FROM chunks WHERE doc_id IN (SELECT id FROM documents WHERE path = ?)",
                )
                .bind(path)
                .execute(&mut *tx)
                .await?;
                let doc_id: i64 = sqlx::query_scalar(
                    "INSERT INTO documents (root, path, mtime_ns, sha256, chunks, skipped) VALUES (?, ?, ?, ?, ?, ?)
                     ON CONFLICT (path) DO UPDATE SET root = excluded.root, mtime_ns = excluded.mtime_ns,
                       sha256 = excluded.sha256, chunks = excluded.chunks, skipped = excluded.skipped
                     RETURNING id",
                )
                .bind(root)
                .bind(path)
                .bind(mtime_ns)
                .bind(sha)
                .bind(count(chunks.len()))
                .bind(skipped)
                .fetch_one(&mut *tx)
                .await?;
                for (i, c) in chunks.iter().enumerate() {
                    let heading = c.heading_path();
                    let (v, model) = vector(i);
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO chunks (doc_id, ord, heading, text, embedding, model) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    )
                    .bind(doc_id)
                    .bind(count(i))
                    .bind(&heading)
                    .bind(&c.text)
                    .bind(v.map(|v| search::vector_to_bytes(v)))
                    .bind(v.and(model))
                    .fetch_one(&mut *tx)
                    .await?;
                    sqlx::query("INSERT INTO chunks_fts (rowid, heading, text) VALUES (?, ?, ?)")
                        .bind(id)
                        .bind(&heading)
                        .bind(&c.text)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Self::Postgres { pool, pgvector, .. } => {
                let insert = if *pgvector {
                    "INSERT INTO knowledge_chunks (doc_id, ord, heading, text, vec, dims, model) VALUES ($1, $2, $3, $4, $5::real[]::vector, $6, $7)"
                } else {
                    "INSERT INTO knowledge_chunks (doc_id, ord, heading, text, embedding, dims, model) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                };
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "DELETE FROM knowledge_chunks WHERE doc_id IN (SELECT id FROM knowledge_documents WHERE path = $1)",
                )
                .bind(path)
                .execute(&mut *tx)
                .await?;
                let doc_id: i64 = sqlx::query_scalar(
                    "INSERT INTO knowledge_documents (root, path, mtime_ns, sha256, chunks, skipped) VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (path) DO UPDATE SET root = excluded.root, mtime_ns = excluded.mtime_ns,
                       sha256 = excluded.sha256, chunks = excluded.chunks, skipped = excluded.skipped
                     RETURNING id",
                )
                .bind(root)
                .bind(path)
                .bind(mtime_ns)
                .bind(sha)
                .bind(count(chunks.len()))
                .bind(skipped)
                .fetch_one(&mut *tx)
                .await?;
                for (i, c) in chunks.iter().enumerate() {
                    let (v, model) = vector(i);
                    sqlx::query(insert)
                        .bind(doc_id)
                        .bind(count(i))
                        .bind(c.heading_path())
                        .bind(&c.text)
                        .bind(v.cloned())
                        .bind(v.map(|v| i32::try_from(v.len()).unwrap_or(i32::MAX)))
                        .bind(v.and(model))
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("UPDATE knowledge_meta SET value = value + 1 WHERE key = 'generation'")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                if let Some(v) = vectors.and_then(|(v, _)| v.first()) {
                    self.ensure_hnsw(v.len()).await?;
                }
            }
        }
        Ok(())
    }

    /// The `k` best chunks for `query` by the lexical ranking (BM25 on
    /// SQLite, `ts_rank_cd` on PostgreSQL), best first, larger better.
    pub(crate) async fn lexical(
        &self,
        query: &str,
        k: usize,
    ) -> Result<Vec<(i64, f64)>, KnowledgeError> {
        match self {
            Self::Sqlite(p) => {
                let Some(q) = search::fts_query(query) else {
                    return Ok(Vec::new());
                };
                let rows: Vec<(i64, f64)> = sqlx::query_as(
                    "SELECT rowid, bm25(chunks_fts, 2.0, 1.0) AS s FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY s LIMIT ?",
                )
                .bind(q)
                .bind(count(k))
                .fetch_all(p)
                .await?;
                Ok(rows.into_iter().map(|(id, s)| (id, -s)).collect())
            }
            Self::Postgres { pool, .. } => {
                let Some(q) = search::websearch_query(query) else {
                    return Ok(Vec::new());
                };
                let sql = format!(
                    "SELECT c.id, ts_rank_cd(c.tsv, q, {PG_RANK_NORMALIZATION})::float8 AS s
                     FROM knowledge_chunks c, websearch_to_tsquery('{PG_TS_CONFIG}', $1) q
                     WHERE c.tsv @@ q ORDER BY s DESC, c.id LIMIT $2"
                );
                Ok(sqlx::query_as(&sql)
                    .bind(q)
                    .bind(count(k))
                    .fetch_all(pool)
                    .await?)
            }
        }
    }

    /// Every stored vector of `model`: (chunk id, vector).
    pub(crate) async fn vectors(
        &self,
        model: &str,
    ) -> Result<Vec<(i64, Vec<f32>)>, KnowledgeError> {
        match self {
            Self::Sqlite(p) => {
                let rows = sqlx::query(
                    "SELECT id, embedding FROM chunks WHERE model = ? AND embedding IS NOT NULL",
                )
                .bind(model)
                .fetch_all(p)
                .await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    let id: i64 = row.try_get(0)?;
                    let blob: Vec<u8> = row.try_get(1)?;
                    if let Some(v) = search::vector_from_bytes(&blob) {
                        out.push((id, v));
                    }
                }
                Ok(out)
            }
            Self::Postgres { pool, pgvector, .. } => {
                let sql = if *pgvector {
                    "SELECT id, vec::real[] FROM knowledge_chunks WHERE model = $1 AND vec IS NOT NULL"
                } else {
                    "SELECT id, embedding FROM knowledge_chunks WHERE model = $1 AND embedding IS NOT NULL"
                };
                Ok(sqlx::query_as(sql).bind(model).fetch_all(pool).await?)
            }
        }
    }

    /// pgvector only: the `k` nearest chunks of `model` to `q` by cosine,
    /// through the HNSW index (`hnsw.ef_search` raised to `k` for this
    /// transaction, since it caps how many rows an index scan returns).
    /// `None` on the other backends: the caller scores in Rust.
    pub(crate) async fn nearest(
        &self,
        q: &[f32],
        model: &str,
        k: usize,
    ) -> Result<Option<Vec<(i64, f64)>>, KnowledgeError> {
        let Self::Postgres {
            pool,
            pgvector: true,
            ..
        } = self
        else {
            return Ok(None);
        };
        let d = q.len();
        if d == 0 {
            return Ok(Some(Vec::new()));
        }
        // `d` is an integer: formatting it into SQL injects nothing. The
        // expression must be the index's, `vec::vector(d)`, for the planner
        // to use it; `dims = d` selects the partial index.
        let sql = format!(
            "SELECT id, (1 - (vec::vector({d}) <=> $1::real[]::vector({d})))::float8 AS s
             FROM knowledge_chunks WHERE dims = {d} AND model = $2
             ORDER BY vec::vector({d}) <=> $1::real[]::vector({d}) LIMIT $3"
        );
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT set_config('hnsw.ef_search', $1, true)")
            .bind(k.clamp(40, 1000).to_string())
            .execute(&mut *tx)
            .await?;
        let rows: Vec<(i64, f64)> = sqlx::query_as(&sql)
            .bind(q.to_vec())
            .bind(model)
            .bind(count(k))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(rows))
    }

    /// A chunk's source path, heading path and text.
    pub(crate) async fn passage(
        &self,
        id: i64,
    ) -> Result<Option<(String, String, String)>, KnowledgeError> {
        Ok(match self {
            Self::Sqlite(p) => sqlx::query_as(
                "SELECT d.path, c.heading, c.text FROM chunks c JOIN documents d ON c.doc_id = d.id WHERE c.id = ?",
            )
            .bind(id)
            .fetch_optional(p)
            .await?,
            Self::Postgres { pool, .. } => sqlx::query_as(
                "SELECT d.path, c.heading, c.text FROM knowledge_chunks c JOIN knowledge_documents d ON c.doc_id = d.id WHERE c.id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?,
        })
    }
}

/// Deletes a document's FTS rows (the chunks go by cascade or explicitly).
const SQLITE_DELETE_FTS: &str = "DELETE FROM chunks_fts WHERE rowid IN (SELECT c.id FROM chunks c JOIN documents d ON c.doc_id = d.id WHERE d.path = ?)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_table() {
        for (url, want) in [
            (
                "postgres://runner:s3cret@db.lan:5432/hwc",
                "postgres://runner:***@db.lan:5432/hwc",
            ),
            (
                "postgres://runner@db.lan/hwc",
                "postgres://runner@db.lan/hwc",
            ),
            ("postgres://db.lan/a@b", "postgres://db.lan/a@b"),
            ("sqlite:///var/lib/k.db", "sqlite:///var/lib/k.db"),
            ("/var/lib/k.db", "/var/lib/k.db"),
        ] {
            assert_eq!(redact(url), want, "{url}");
        }
    }
}
