//! The runner's knowledge: `[tools.knowledge]` directories and the
//! incident records of finished jobs in one hwc-knowledge index, synced
//! in the background (changed files only), searched by `search_knowledge`
//! (hybrid with the router's embeddings when `embedding_model` is set,
//! BM25 otherwise). A search before the first sync has finished waits for
//! it (bounded), so a job never searches an empty index by accident.

use crate::config::RunnerConfig;
use hwc_knowledge::embed::{Embedder, OpenAiEmbedder};
use hwc_knowledge::index::{Incident, Index};
use hwc_knowledge::search::{Mode, Passage};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;

/// The index and how to search it.
pub struct Knowledge {
    index: Index,
    embedder: Option<OpenAiEmbedder>,
    paths: Vec<PathBuf>,
    synced: watch::Sender<bool>,
    /// What the last sync could not index (a missing directory, a refused
    /// document), told with every search so the model and the report know
    /// what the answer could not draw on.
    problems: std::sync::Mutex<Vec<String>>,
}

impl Knowledge {
    /// Opens the index at `location` (a SQLite path or a PostgreSQL URL)
    /// for `cfg`'s directories; `router_key` is the runner's key for the
    /// router's embeddings.
    pub async fn open(
        cfg: &RunnerConfig,
        location: &str,
        router_key: Option<&str>,
    ) -> Result<Self, hwc_knowledge::error::KnowledgeError> {
        let k = &cfg.tools.knowledge;
        let index = Index::open_url(location).await?;
        let embedder = k.embedding_model.as_ref().map(|m| {
            let e = OpenAiEmbedder::new(&cfg.model.url, m);
            match router_key {
                Some(key) => e.with_api_key(key),
                None => e,
            }
        });
        Ok(Self {
            index,
            embedder,
            paths: k.paths.clone(),
            synced: watch::channel(false).0,
            problems: std::sync::Mutex::new(Vec::new()),
        })
    }

    fn embedder(&self) -> Option<&dyn Embedder> {
        self.embedder.as_ref().map(|e| e as &dyn Embedder)
    }

    /// Re-reads every directory; what could not be read is logged (a
    /// missing directory, an embedding failure) and the rest stays served.
    pub async fn sync(&self) {
        let mut problems = Vec::new();
        for p in &self.paths {
            match self.index.sync_dir(p, self.embedder()).await {
                Ok(r) => {
                    if !(r.added.is_empty() && r.updated.is_empty() && r.removed.is_empty()) {
                        tracing::info!(dir = %p.display(), added = r.added.len(), updated = r.updated.len(), removed = r.removed.len(), embedded = r.embedded, "knowledge re-indexed");
                    }
                    for (doc, why) in &r.skipped {
                        tracing::warn!(document = %doc, reason = %why, "knowledge: document not indexed");
                        problems.push(format!("{doc} is not indexed: {why}"));
                    }
                }
                Err(e) => {
                    tracing::warn!(dir = %p.display(), error = %e, "knowledge: directory not indexed");
                    problems.push(format!("the directory {} is not indexed: {e}", p.display()));
                }
            }
        }
        *hwc_ai_core::sync::lock(&self.problems) = problems;
        self.synced.send_replace(true);
    }

    /// What the last sync could not index.
    pub fn problems(&self) -> Vec<String> {
        hwc_ai_core::sync::lock(&self.problems).clone()
    }

    /// The `k` best passages for `query` (after the first sync, waited
    /// for up to 60 s).
    pub async fn search(&self, query: &str, k: usize) -> Result<Vec<Passage>, String> {
        let mut rx = self.synced.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(60), rx.wait_for(|s| *s)).await;
        let mode = if self.embedder.is_some() {
            Mode::Hybrid
        } else {
            Mode::Bm25
        };
        match self.index.search(query, k, mode, self.embedder()).await {
            Ok(p) => Ok(p),
            // The embeddings may be down: the words still find passages.
            Err(e) if mode == Mode::Hybrid => {
                tracing::warn!(error = %e, "knowledge: hybrid search failed; BM25 only");
                self.index
                    .search(query, k, Mode::Bm25, None)
                    .await
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Records a finished job as an incident later jobs can find.
    pub async fn record(&self, incident: &Incident) {
        if let Err(e) = self.index.add_incident(incident, self.embedder()).await {
            tracing::warn!(job = %incident.job_id, error = %e, "knowledge: incident not recorded");
        }
    }
}
