//! Typed errors of the knowledge layer.

use std::path::PathBuf;

/// What went wrong while embedding text.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The endpoint could not be reached (refused, timed out, DNS).
    #[error("the embeddings endpoint {url} is unreachable: {source}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The endpoint refused an input as longer than the model's context
    /// (llama-server: `input (N tokens) is too large to process`, or
    /// `exceed_context_size_error`; OpenAI: `maximum context length`).
    /// [`crate::embed::embed_fitting`] handles it by splitting the input.
    #[error("the embeddings endpoint {url} refused an input as too long: {body}")]
    TooLong {
        /// The URL asked.
        url: String,
        /// The start of the body.
        body: String,
    },
    /// The endpoint answered with an error status.
    #[error("the embeddings endpoint {url} answered {status}: {body}")]
    Status {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The answer was not the expected shape (count, dimension, JSON).
    #[error("the embeddings endpoint {url} answered something unusable: {reason}")]
    Malformed {
        /// The URL asked.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
}

/// What went wrong in indexing or searching.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    /// A knowledge source directory does not exist or is not a directory.
    #[error("knowledge source {path} does not exist or is not a directory")]
    MissingSource {
        /// The path configured.
        path: PathBuf,
    },
    /// Reading a source failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The database failed.
    #[error("knowledge index database: {0}")]
    Db(#[from] sqlx::Error),
    /// The SQLite library lacks the FTS5 module.
    #[error("the SQLite library has no FTS5 module")]
    NoFts5,
    /// Embedding failed; nothing of the document being indexed was written.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The index URL is neither `sqlite:…`, `postgres://…` nor a path.
    #[error("knowledge index URL `{url}` is neither sqlite:, postgres:// nor a file path")]
    BadUrl {
        /// The URL given, any password replaced by `***`.
        url: String,
    },
    /// Dense or hybrid search was asked without an embedder.
    #[error("dense search needs an embeddings endpoint and none is configured")]
    NoEmbedder,
}
