//! Test peers: llama-server serving all-MiniLM-L6-v2 (scripts/setup.sh
//! converts it), started like hwc_testkit::llama's servers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Child;
use std::sync::OnceLock;

use hwc_knowledge::OpenAiEmbedder;

/// The model name the tests give the embedder.
pub const MODEL: &str = "all-MiniLM-L6-v2";

/// The GGUF scripts/setup.sh produces (or `HWC_EMBED_MODEL`).
pub fn model_path() -> PathBuf {
    std::env::var_os("HWC_EMBED_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| hwc_testkit::llama::cache().join("models/all-MiniLM-L6-v2.F32.gguf"))
}

/// A running embedding llama-server.
pub struct EmbedServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    _child: Child,
}

impl EmbedServer {
    /// Base URL with `/v1`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// An embedder over it.
    pub fn embedder(&self) -> OpenAiEmbedder {
        OpenAiEmbedder::new(&self.url(), MODEL)
    }
}

/// Starts llama-server with `--embeddings --pooling mean` on the MiniLM
/// GGUF and waits until it is healthy; it dies with the test process.
pub fn start() -> EmbedServer {
    let (server, _) = hwc_testkit::llama::runtime();
    let model = model_path();
    assert!(
        model.exists(),
        "{} is missing; run scripts/setup.sh first",
        model.display()
    );
    let port = hwc_testkit::free_port();
    let child = hwc_testkit::held_by_pipe(&server, None)
        .arg("-m")
        .arg(&model)
        .args(["--embeddings", "--pooling", "mean"])
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "-c", "2048", "-b", "512", "-ub", "512", "-np", "4", "-t", "2",
        ])
        .spawn()
        .expect("cannot start llama-server");
    hwc_testkit::llama::wait_healthy(port);
    EmbedServer {
        port,
        _child: child,
    }
}

/// One server shared by the tests of a binary.
pub fn shared() -> &'static EmbedServer {
    static S: OnceLock<EmbedServer> = OnceLock::new();
    S.get_or_init(start)
}

/// The corpus shipped with the crate.
pub fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// Copies the corpus documents (not the questions) under `dst`.
pub fn copy_corpus(dst: &std::path::Path) {
    for sub in ["runbooks", "postmortems", "distractors"] {
        std::fs::create_dir_all(dst.join(sub)).unwrap();
        for e in std::fs::read_dir(corpus().join(sub)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dst.join(sub).join(e.file_name())).unwrap();
        }
    }
}

/// The two stores every behaviour is tested against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// A SQLite file in the test's directory.
    Sqlite,
    /// A fresh database on the test binary's real PostgreSQL
    /// (hwc_testkit::postgres; pgvector is not installable here, so this
    /// is the `tsvector` + `real[]` path).
    Postgres,
}

/// Opens a new, empty index of kind `db` through `Index::open_url`.
pub async fn open(db: Db, dir: &std::path::Path) -> hwc_knowledge::Index {
    let url = match db {
        Db::Sqlite => format!("sqlite://{}?mode=rwc", dir.join("k.db").display()),
        Db::Postgres => hwc_testkit::postgres::shared().database("knowledge"),
    };
    let index = hwc_knowledge::Index::open_url(&url).await.unwrap();
    if db == Db::Postgres {
        assert_eq!(
            index.backend(),
            hwc_knowledge::Backend::Postgres { pgvector: false },
            "pgvector appeared on this machine: the HNSW path can now be tested"
        );
    }
    index
}

/// Two `#[tokio::test]`s, one per store, running the async `body(Db)`:
/// `both!(body, sqlite_test_name, postgres_test_name);`.
#[macro_export]
macro_rules! both {
    ($body:ident, $sqlite:ident, $postgres:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            $body(common::Db::Sqlite).await;
        }
        #[tokio::test]
        async fn $postgres() {
            $body(common::Db::Postgres).await;
        }
    };
}
