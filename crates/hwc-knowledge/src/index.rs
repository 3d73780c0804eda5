//! The index: documents, chunks, an FTS5 table and the chunks' vectors in
//! SQLite, kept in step with source directories incrementally.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

use crate::chunk::{chunk_document, Chunk, ChunkOptions};
use crate::embed::Embedder;
use crate::error::KnowledgeError;
use crate::search::{self, Mode, Passage, RRF_K};

const SCHEMA: &[&str] = &[
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

/// Deletes a document's FTS rows (the chunks go by cascade or explicitly).
const DELETE_FTS: &str = "DELETE FROM chunks_fts WHERE rowid IN (SELECT c.id FROM chunks c JOIN documents d ON c.doc_id = d.id WHERE d.path = ?)";

/// The root name incident records are filed under.
pub const INCIDENTS: &str = "incidents";

/// What one [`Index::sync_dir`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Documents indexed for the first time.
    pub added: Vec<String>,
    /// Documents whose content changed, re-chunked.
    pub updated: Vec<String>,
    /// Documents unchanged (same mtime, or same sha256).
    pub unchanged: usize,
    /// Documents gone from the directory, removed from the index.
    pub removed: Vec<String>,
    /// Documents not indexed, with the reason (binary, not UTF-8).
    pub skipped: Vec<(String, String)>,
    /// Chunks embedded in this run.
    pub embedded: usize,
}

/// A finished job's record, indexed so later jobs find what was learnt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    /// The job's id (the document is `incident:<id>`).
    pub job_id: String,
    /// What the job was asked.
    pub goal: String,
    /// What it found.
    pub findings: String,
    /// What it did.
    pub actions: String,
    /// How it ended.
    pub outcome: String,
}

impl Incident {
    /// The record as Markdown, one section per field.
    pub fn to_markdown(&self) -> String {
        format!(
            "# Incident {}\n\n## Goal\n\n{}\n\n## Findings\n\n{}\n\n## Actions\n\n{}\n\n## Outcome\n\n{}\n",
            self.job_id, self.goal, self.findings, self.actions, self.outcome
        )
    }
}

type DenseCache = (i64, String, Arc<Vec<(i64, Vec<f32>)>>);

/// The knowledge index over one SQLite database.
#[derive(Debug)]
pub struct Index {
    pool: SqlitePool,
    opts: ChunkOptions,
    dense: Mutex<Option<DenseCache>>,
}

/// Why `bytes` cannot be indexed as text, if it cannot.
pub fn not_text_reason(bytes: &[u8]) -> Option<String> {
    if bytes.iter().take(8192).any(|b| *b == 0) {
        return Some("binary file (NUL bytes)".into());
    }
    match std::str::from_utf8(bytes) {
        Ok(_) => None,
        Err(e) => Some(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        )),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The text embedded for a chunk: its heading path, then its body.
fn embed_text(heading: &str, text: &str) -> String {
    if heading.is_empty() {
        text.to_string()
    } else {
        format!("{heading}\n\n{text}")
    }
}

impl Index {
    /// Opens (creating) the index at `path`, checking the FTS5 module.
    pub async fn open(path: &Path) -> Result<Self, KnowledgeError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        Self::with_pool(pool).await
    }

    /// Opens a private in-memory index (tests, benchmarks).
    pub async fn open_in_memory() -> Result<Self, KnowledgeError> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await?;
        Self::with_pool(pool).await
    }

    async fn with_pool(pool: SqlitePool) -> Result<Self, KnowledgeError> {
        let fts5: i64 = sqlx::query_scalar("SELECT sqlite_compileoption_used('ENABLE_FTS5')")
            .fetch_one(&pool)
            .await?;
        if fts5 != 1 {
            return Err(KnowledgeError::NoFts5);
        }
        for stmt in SCHEMA {
            sqlx::query(stmt).execute(&pool).await?;
        }
        Ok(Self {
            pool,
            opts: ChunkOptions::default(),
            dense: Mutex::new(None),
        })
    }

    /// Uses `opts` for documents indexed from now on.
    pub fn with_chunk_options(mut self, opts: ChunkOptions) -> Self {
        self.opts = opts;
        self
    }

    /// The pool (for callers that share the database).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Brings the index in step with the directory `root` (recursively,
    /// hidden entries ignored): new and changed files are chunked (and
    /// embedded when `embedder` is given) and replaced in one transaction
    /// each, unchanged ones skipped (same mtime, or same sha256), deleted
    /// ones removed, binary or non-UTF-8 ones recorded as skipped with the
    /// reason and nothing of them served. Then chunks without a vector of
    /// `embedder`'s model are embedded. A missing `root` is an error and
    /// changes nothing. An embedding failure stops the sync with the error;
    /// documents already replaced stay, the failing one keeps its previous
    /// version.
    pub async fn sync_dir(
        &self,
        root: &Path,
        embedder: Option<&dyn Embedder>,
    ) -> Result<SyncReport, KnowledgeError> {
        if !root.is_dir() {
            return Err(KnowledgeError::MissingSource {
                path: root.to_path_buf(),
            });
        }
        let root_name = root.display().to_string();
        let mut files = Vec::new();
        walk(root, &mut files)?;
        files.sort();
        let mut report = SyncReport::default();
        let mut seen = Vec::with_capacity(files.len());
        for file in files {
            let path = file.display().to_string();
            seen.push(path.clone());
            let meta = std::fs::metadata(&file).map_err(|source| KnowledgeError::Io {
                path: file.clone(),
                source,
            })?;
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            let prev: Option<(i64, String, Option<String>)> =
                sqlx::query_as("SELECT mtime_ns, sha256, skipped FROM documents WHERE path = ?")
                    .bind(&path)
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some((m, _, skipped)) = &prev {
                if *m == mtime_ns {
                    match skipped {
                        Some(reason) => report.skipped.push((path, reason.clone())),
                        None => report.unchanged += 1,
                    }
                    continue;
                }
            }
            let bytes = std::fs::read(&file).map_err(|source| KnowledgeError::Io {
                path: file.clone(),
                source,
            })?;
            let sha = sha256_hex(&bytes);
            if let Some((_, s, None)) = &prev {
                if *s == sha {
                    sqlx::query("UPDATE documents SET mtime_ns = ? WHERE path = ?")
                        .bind(mtime_ns)
                        .bind(&path)
                        .execute(&self.pool)
                        .await?;
                    report.unchanged += 1;
                    continue;
                }
            }
            if let Some(reason) = not_text_reason(&bytes) {
                tracing::warn!(path, reason, "knowledge: document skipped");
                self.replace(&root_name, &path, mtime_ns, &sha, Some(&reason), &[], None)
                    .await?;
                report.skipped.push((path, reason));
                continue;
            }
            let text = String::from_utf8_lossy(&bytes);
            let chunks = chunk_document(&path, &text, self.opts);
            let vectors = match embedder {
                Some(e) => Some(self.embed_chunks(e, &chunks).await?),
                None => None,
            };
            let model = embedder.map(|e| e.model());
            self.replace(
                &root_name,
                &path,
                mtime_ns,
                &sha,
                None,
                &chunks,
                vectors.as_deref().zip(model),
            )
            .await?;
            report.embedded += vectors.map_or(0, |v| v.len());
            if prev.is_some() {
                report.updated.push(path);
            } else {
                report.added.push(path);
            }
        }
        let known: Vec<String> = sqlx::query_scalar("SELECT path FROM documents WHERE root = ?")
            .bind(&root_name)
            .fetch_all(&self.pool)
            .await?;
        for path in known {
            if !seen.contains(&path) {
                self.remove(&path).await?;
                report.removed.push(path);
            }
        }
        if let Some(e) = embedder {
            report.embedded += self.backfill(e).await?;
        }
        Ok(report)
    }

    /// Indexes (or replaces) a finished job's incident record as the
    /// document `incident:<job_id>`.
    pub async fn add_incident(
        &self,
        incident: &Incident,
        embedder: Option<&dyn Embedder>,
    ) -> Result<(), KnowledgeError> {
        let path = format!("incident:{}", incident.job_id);
        let md = incident.to_markdown();
        let chunks = crate::chunk::chunk_markdown(&path, &md, self.opts);
        let vectors = match embedder {
            Some(e) => Some(self.embed_chunks(e, &chunks).await?),
            None => None,
        };
        let model = embedder.map(|e| e.model());
        self.replace(
            INCIDENTS,
            &path,
            0,
            &sha256_hex(md.as_bytes()),
            None,
            &chunks,
            vectors.as_deref().zip(model),
        )
        .await
    }

    /// Removes a document and its chunks; true when it was there.
    pub async fn remove(&self, path: &str) -> Result<bool, KnowledgeError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(DELETE_FTS).bind(path).execute(&mut *tx).await?;
        let gone = sqlx::query("DELETE FROM documents WHERE path = ?")
            .bind(path)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(gone > 0)
    }

    /// Documents recorded as skipped, with the reason.
    pub async fn skipped(&self) -> Result<Vec<(String, String)>, KnowledgeError> {
        Ok(sqlx::query_as(
            "SELECT path, skipped FROM documents WHERE skipped IS NOT NULL ORDER BY path",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The number of chunks served.
    pub async fn chunk_count(&self) -> Result<i64, KnowledgeError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM chunks")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn embed_chunks(
        &self,
        embedder: &dyn Embedder,
        chunks: &[Chunk],
    ) -> Result<Vec<Vec<f32>>, KnowledgeError> {
        let texts: Vec<String> = chunks
            .iter()
            .map(|c| embed_text(&c.heading_path(), &c.text))
            .collect();
        Ok(embedder.embed(&texts).await?)
    }

    /// Embeds every chunk lacking a vector of `embedder`'s model; returns how many.
    pub async fn backfill(&self, embedder: &dyn Embedder) -> Result<usize, KnowledgeError> {
        let model = embedder.model().to_string();
        let mut done = 0;
        loop {
            let rows: Vec<(i64, String, String)> = sqlx::query_as(
                "SELECT id, heading, text FROM chunks WHERE model IS NULL OR model != ? ORDER BY id LIMIT 256",
            )
            .bind(&model)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                return Ok(done);
            }
            let texts: Vec<String> = rows.iter().map(|(_, h, t)| embed_text(h, t)).collect();
            let vectors = embedder.embed(&texts).await?;
            let mut tx = self.pool.begin().await?;
            for ((id, _, _), v) in rows.iter().zip(&vectors) {
                sqlx::query("UPDATE chunks SET embedding = ?, model = ? WHERE id = ?")
                    .bind(search::vector_to_bytes(v))
                    .bind(&model)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            done += rows.len();
        }
    }

    /// Replaces one document's row and chunks in one transaction.
    #[allow(clippy::too_many_arguments)]
    async fn replace(
        &self,
        root: &str,
        path: &str,
        mtime_ns: i64,
        sha: &str,
        skipped: Option<&str>,
        chunks: &[Chunk],
        vectors: Option<(&[Vec<f32>], &str)>,
    ) -> Result<(), KnowledgeError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(DELETE_FTS).bind(path).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM chunks WHERE doc_id IN (SELECT id FROM documents WHERE path = ?)")
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
        .bind(i64::try_from(chunks.len()).unwrap_or(i64::MAX))
        .bind(skipped)
        .fetch_one(&mut *tx)
        .await?;
        for (i, c) in chunks.iter().enumerate() {
            let heading = c.heading_path();
            let (blob, model) = match vectors {
                Some((v, m)) => (v.get(i).map(|v| search::vector_to_bytes(v)), Some(m)),
                None => (None, None),
            };
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO chunks (doc_id, ord, heading, text, embedding, model) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(doc_id)
            .bind(i64::try_from(i).unwrap_or(i64::MAX))
            .bind(&heading)
            .bind(&c.text)
            .bind(blob)
            .bind(model)
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
        Ok(())
    }

    /// Inserts ready-made chunks with their vectors as one document (for
    /// benchmarks at scale and for callers with their own sources).
    pub async fn insert_chunks(
        &self,
        path: &str,
        chunks: &[Chunk],
        vectors: Option<(&[Vec<f32>], &str)>,
    ) -> Result<(), KnowledgeError> {
        self.replace("external", path, 0, "", None, chunks, vectors)
            .await
    }

    /// The ids of the `k` best chunks by BM25 (best first).
    pub async fn bm25_ids(&self, query: &str, k: usize) -> Result<Vec<(i64, f64)>, KnowledgeError> {
        let Some(q) = search::fts_query(query) else {
            return Ok(Vec::new());
        };
        let rows: Vec<(i64, f64)> = sqlx::query_as(
            "SELECT rowid, bm25(chunks_fts, 2.0, 1.0) AS s FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY s LIMIT ?",
        )
        .bind(q)
        .bind(i64::try_from(k).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id, s)| (id, -s)).collect())
    }

    /// The ids of the `k` chunks nearest `query` by cosine (best first),
    /// scored in Rust over the stored vectors of `embedder`'s model (cached
    /// in memory until the index changes).
    pub async fn dense_ids(
        &self,
        query: &str,
        k: usize,
        embedder: &dyn Embedder,
    ) -> Result<Vec<(i64, f64)>, KnowledgeError> {
        let q = embedder
            .embed(&[query.to_string()])
            .await?
            .into_iter()
            .next()
            .unwrap_or_default();
        let vectors = self.vectors(embedder.model()).await?;
        let scored = vectors
            .iter()
            .map(|(id, v)| (*id, f64::from(search::cosine(&q, v))))
            .collect();
        Ok(search::top_k(scored, k))
    }

    async fn vectors(&self, model: &str) -> Result<Arc<Vec<(i64, Vec<f32>)>>, KnowledgeError> {
        let generation: i64 = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'generation'")
            .fetch_one(&self.pool)
            .await?;
        if let Ok(guard) = self.dense.lock() {
            if let Some((g, m, v)) = guard.as_ref() {
                if *g == generation && m == model {
                    return Ok(v.clone());
                }
            }
        }
        let rows = sqlx::query(
            "SELECT id, embedding FROM chunks WHERE model = ? AND embedding IS NOT NULL",
        )
        .bind(model)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get(0)?;
            let blob: Vec<u8> = row.try_get(1)?;
            if let Some(v) = search::vector_from_bytes(&blob) {
                out.push((id, v));
            }
        }
        let out = Arc::new(out);
        if let Ok(mut guard) = self.dense.lock() {
            *guard = Some((generation, model.to_string(), out.clone()));
        }
        Ok(out)
    }

    /// `search_knowledge(query, k)`: the `k` best passages by `mode`, each
    /// with its source path and heading. Dense and hybrid need `embedder`.
    /// Hybrid fuses the top `max(4k, 50)` of each ranking by reciprocal rank
    /// (k = 60).
    pub async fn search(
        &self,
        query: &str,
        k: usize,
        mode: Mode,
        embedder: Option<&dyn Embedder>,
    ) -> Result<Vec<Passage>, KnowledgeError> {
        let ranked = match mode {
            Mode::Bm25 => self.bm25_ids(query, k).await?,
            Mode::Dense => {
                let e = embedder.ok_or(KnowledgeError::NoEmbedder)?;
                self.dense_ids(query, k, e).await?
            }
            Mode::Hybrid => {
                let e = embedder.ok_or(KnowledgeError::NoEmbedder)?;
                let depth = (4 * k).max(50);
                let lexical = self.bm25_ids(query, depth).await?;
                let dense = self.dense_ids(query, depth, e).await?;
                let lists = [
                    lexical.into_iter().map(|x| x.0).collect(),
                    dense.into_iter().map(|x| x.0).collect(),
                ];
                let mut fused = search::rrf(&lists, RRF_K);
                fused.truncate(k);
                fused
            }
        };
        let mut out = Vec::with_capacity(ranked.len());
        for (id, score) in ranked {
            let row: Option<(String, String, String)> = sqlx::query_as(
                "SELECT d.path, c.heading, c.text FROM chunks c JOIN documents d ON c.doc_id = d.id WHERE c.id = ?",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            if let Some((source, heading, text)) = row {
                out.push(Passage {
                    chunk_id: id,
                    source,
                    heading,
                    text,
                    score,
                });
            }
        }
        Ok(out)
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), KnowledgeError> {
    let entries = std::fs::read_dir(dir).map_err(|source| KnowledgeError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| KnowledgeError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let ty = entry.file_type().map_err(|source| KnowledgeError::Io {
            path: path.clone(),
            source,
        })?;
        if ty.is_dir() {
            walk(&path, out)?;
        } else if ty.is_file() || (ty.is_symlink() && path.is_file()) {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_text_table() {
        assert_eq!(not_text_reason(b"# hello\n"), None);
        assert_eq!(not_text_reason("ünïcode".as_bytes()), None);
        assert!(not_text_reason(b"\x89PNG\r\n\x1a\n\0\0").is_some_and(|r| r.contains("binary")));
        assert!(not_text_reason(b"caf\xe9").is_some_and(|r| r.contains("UTF-8")));
    }
}
