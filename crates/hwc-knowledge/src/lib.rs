//! hwc-knowledge: the knowledge layer the agent runner searches (issue 13).
//!
//! Sources are directories of Markdown and plain text (runbooks, postmortems,
//! architecture docs) and incident records the runner writes from finished
//! jobs. [`chunk`] splits a document by its headings (each chunk keeps its
//! heading path and source path; long sections are cut with overlap);
//! [`index`] keeps documents, chunks, their lexical rows and vectors in
//! SQLite or PostgreSQL ([`store`]: `Index::open_url`) and re-indexes
//! incrementally (mtime, then sha256; a changed
//! file is replaced in one transaction, a deleted one removed, a binary one
//! skipped with its reason recorded); [`search`] ranks by BM25 (FTS5; on
//! PostgreSQL `ts_rank_cd` over a `tsvector`; user text is never query
//! syntax), by cosine over the vectors (pgvector's HNSW where present),
//! or by both fused by reciprocal rank; [`embed`] gets the vectors from an
//! OpenAI-compatible `/v1/embeddings` (the router, or llama-server
//! directly). ADR 0013 records the decisions.

pub mod chunk;
pub mod embed;
pub mod error;
pub mod index;
pub mod search;
pub mod store;

pub use chunk::{Chunk, ChunkOptions};
pub use embed::{Embedder, OpenAiEmbedder};
pub use error::{EmbedError, KnowledgeError};
pub use index::{Incident, Index, SyncReport};
pub use search::{Mode, Passage};
pub use store::Backend;
