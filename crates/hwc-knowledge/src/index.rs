//! The index: documents, chunks, their lexical rows and vectors, kept in
//! step with source directories incrementally, in SQLite or PostgreSQL
//! ([`crate::store`] holds the SQL of each; everything else is here, once).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::sqlite::SqliteConnectOptions;

use crate::chunk::{chunk_document, Chunk, ChunkOptions};
use crate::embed::{embed_fitting, Embedder};
use crate::error::KnowledgeError;
use crate::search::{self, Mode, Passage, RRF_K};
use crate::store::{redact, Backend, Store};

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

/// The knowledge index over one database (SQLite or PostgreSQL).
#[derive(Debug)]
pub struct Index {
    store: Store,
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
    /// Opens (creating) the SQLite index at `path`, checking the FTS5 module.
    pub async fn open(path: &Path) -> Result<Self, KnowledgeError> {
        Self::with_store(Store::sqlite(SqliteConnectOptions::new().filename(path), false).await?)
    }

    /// Opens (creating) the index a URL names, so a deployment picks its
    /// database by configuration: `postgres://…` or `postgresql://…` (a
    /// PostgreSQL server; pgvector used when `CREATE EXTENSION vector`
    /// succeeds), `sqlite:…` (sqlx's SQLite URL, `sqlite::memory:`
    /// included), or a bare file path. Anything else with a `://` is
    /// [`KnowledgeError::BadUrl`], its password redacted.
    pub async fn open_url(url: &str) -> Result<Index, KnowledgeError> {
        let store = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Store::postgres(url).await?
        } else if url.starts_with("sqlite:") {
            Store::sqlite_url(url).await?
        } else if url.contains("://") || url.is_empty() {
            return Err(KnowledgeError::BadUrl { url: redact(url) });
        } else {
            return Self::open(Path::new(url)).await;
        };
        Self::with_store(store)
    }

    /// Opens a private in-memory SQLite index (tests, benchmarks).
    pub async fn open_in_memory() -> Result<Self, KnowledgeError> {
        Self::with_store(
            Store::sqlite(SqliteConnectOptions::from_str("sqlite::memory:")?, true).await?,
        )
    }

    fn with_store(store: Store) -> Result<Self, KnowledgeError> {
        Ok(Self {
            store,
            opts: ChunkOptions::default(),
            dense: Mutex::new(None),
        })
    }

    /// Which database this index is in (and, on PostgreSQL, whether
    /// pgvector serves the dense side).
    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    /// Uses `opts` for documents indexed from now on.
    pub fn with_chunk_options(mut self, opts: ChunkOptions) -> Self {
        self.opts = opts;
        self
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
            let prev = self.store.doc_state(&path).await?;
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
                    self.store.touch(&path, mtime_ns).await?;
                    report.unchanged += 1;
                    continue;
                }
            }
            if let Some(reason) = not_text_reason(&bytes) {
                tracing::warn!(path, reason, "knowledge: document skipped");
                self.store
                    .replace(&root_name, &path, mtime_ns, &sha, Some(&reason), &[], None)
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
            self.store
                .replace(
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
        let known = self.store.paths_under(&root_name).await?;
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
        self.store
            .replace(
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
        self.store.remove(path).await
    }

    /// Documents recorded as skipped, with the reason.
    pub async fn skipped(&self) -> Result<Vec<(String, String)>, KnowledgeError> {
        self.store.skipped().await
    }

    /// The number of chunks served.
    pub async fn chunk_count(&self) -> Result<i64, KnowledgeError> {
        self.store.chunk_count().await
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
        Ok(embed_fitting(embedder, &texts).await?)
    }

    /// Embeds every chunk lacking a vector of `embedder`'s model; returns how many.
    pub async fn backfill(&self, embedder: &dyn Embedder) -> Result<usize, KnowledgeError> {
        let model = embedder.model().to_string();
        let mut done = 0;
        loop {
            let rows = self.store.unembedded(&model, 256).await?;
            if rows.is_empty() {
                return Ok(done);
            }
            let texts: Vec<String> = rows.iter().map(|(_, h, t)| embed_text(h, t)).collect();
            let vectors = embed_fitting(embedder, &texts).await?;
            let pairs: Vec<(i64, &[f32])> = rows
                .iter()
                .zip(&vectors)
                .map(|((id, _, _), v)| (*id, v.as_slice()))
                .collect();
            self.store.set_vectors(&pairs, &model).await?;
            done += rows.len();
        }
    }

    /// Inserts ready-made chunks with their vectors as one document (for
    /// benchmarks at scale and for callers with their own sources).
    pub async fn insert_chunks(
        &self,
        path: &str,
        chunks: &[Chunk],
        vectors: Option<(&[Vec<f32>], &str)>,
    ) -> Result<(), KnowledgeError> {
        self.store
            .replace("external", path, 0, "", None, chunks, vectors)
            .await
    }

    /// The ids of the `k` best chunks by the lexical ranking, best first:
    /// BM25 (FTS5) on SQLite, `ts_rank_cd` over the `tsvector` column on
    /// PostgreSQL. Scores are larger-better but not comparable across
    /// backends; fusion only uses the order.
    pub async fn bm25_ids(&self, query: &str, k: usize) -> Result<Vec<(i64, f64)>, KnowledgeError> {
        self.store.lexical(query, k).await
    }

    /// The ids of the `k` chunks nearest `query` by cosine (best first):
    /// through pgvector's HNSW index where the PostgreSQL store has it,
    /// otherwise scored in Rust over the stored vectors of `embedder`'s
    /// model (cached in memory until the index changes; the change counter
    /// lives in the database, so several processes sharing it stay right).
    pub async fn dense_ids(
        &self,
        query: &str,
        k: usize,
        embedder: &dyn Embedder,
    ) -> Result<Vec<(i64, f64)>, KnowledgeError> {
        let q = embed_fitting(embedder, &[query.to_string()])
            .await?
            .into_iter()
            .next()
            .unwrap_or_default();
        if let Some(found) = self.store.nearest(&q, embedder.model(), k).await? {
            return Ok(found);
        }
        let vectors = self.vectors(embedder.model()).await?;
        let scored = vectors
            .iter()
            .map(|(id, v)| (*id, f64::from(search::cosine(&q, v))))
            .collect();
        Ok(search::top_k(scored, k))
    }

    async fn vectors(&self, model: &str) -> Result<Arc<Vec<(i64, Vec<f32>)>>, KnowledgeError> {
        let generation = self.store.generation().await?;
        if let Ok(guard) = self.dense.lock() {
            if let Some((g, m, v)) = guard.as_ref() {
                if *g == generation && m == model {
                    return Ok(v.clone());
                }
            }
        }
        let out = self.store.vectors(model).await?;
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
            if let Some((source, heading, text)) = self.store.passage(id).await? {
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
