//! The index against real files and the real embedding model, each
//! behaviour against both stores: SQLite, and the real PostgreSQL of
//! hwc_testkit::postgres (without pgvector, which cannot be installed on
//! this machine: its HNSW path is written but not run here).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Db;
use hwc_knowledge::chunk::{chunk_markdown, estimate_tokens};
use hwc_knowledge::embed::embed_fitting;
use hwc_knowledge::{
    ChunkOptions, EmbedError, Embedder, Incident, Index, KnowledgeError, Mode, OpenAiEmbedder,
};

/// Touches a file's mtime forward so the index sees a change even on coarse clocks.
fn bump_mtime(path: &std::path::Path) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    let t = std::time::SystemTime::now() + Duration::from_secs(5);
    f.set_modified(t).unwrap();
}

async fn indexes_the_corpus_and_finds_passages_with_source_and_heading(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    common::copy_corpus(dir.path());
    let index = common::open(db, dir.path()).await;
    let src = dir.path().join("runbooks");
    let r = index.sync_dir(&src, None).await.unwrap();
    assert_eq!(r.added.len(), 7, "{r:?}");
    let hits = index
        .search("vLLM CUDA out of memory", 3, Mode::Bm25, None)
        .await
        .unwrap();
    assert!(hits[0].source.ends_with("runbooks/vllm.md"), "{hits:?}");
    assert_eq!(
        hits[0].heading,
        "vLLM runbook > CUDA out of memory at startup"
    );
    // User text that is FTS5 syntax is just words.
    for q in [r#"NEAR("a" b) AND *"#, "col:x OR (", "\"", "-", ""] {
        index.search(q, 5, Mode::Bm25, None).await.unwrap();
    }
    // Again: nothing changed.
    let r = index.sync_dir(&src, None).await.unwrap();
    assert_eq!((r.added.len(), r.updated.len(), r.unchanged), (0, 0, 7));
}

async fn re_indexes_edits_and_deletions_incrementally(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    common::copy_corpus(dir.path());
    let src = dir.path().join("runbooks");
    let index = common::open(db, dir.path()).await;
    index.sync_dir(&src, None).await.unwrap();
    let before = index.chunk_count().await.unwrap();

    // Same content, new mtime: unchanged by hash.
    bump_mtime(&src.join("router.md"));
    let r = index.sync_dir(&src, None).await.unwrap();
    assert_eq!((r.updated.len(), r.unchanged), (0, 7), "{r:?}");

    // An edit replaces that document's chunks.
    let ollama = src.join("ollama.md");
    std::fs::write(
        &ollama,
        "# Ollama runbook\n\n## Zebra quokka failure\n\nThe quokka zebra appears.\n",
    )
    .unwrap();
    bump_mtime(&ollama);
    let r = index.sync_dir(&src, None).await.unwrap();
    assert_eq!(r.updated.len(), 1, "{r:?}");
    let hits = index.search("quokka", 5, Mode::Bm25, None).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].heading, "Ollama runbook > Zebra quokka failure");
    assert!(index
        .search("ollama ps processor split", 5, Mode::Bm25, None)
        .await
        .unwrap()
        .iter()
        .all(|p| !p.text.contains("processor split")));
    let after_edit = index.chunk_count().await.unwrap();

    // A deletion removes it.
    std::fs::remove_file(&ollama).unwrap();
    let r = index.sync_dir(&src, None).await.unwrap();
    assert_eq!(r.removed.len(), 1);
    assert!(index
        .search("quokka", 5, Mode::Bm25, None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(index.chunk_count().await.unwrap(), after_edit - 1);
    assert!(before > after_edit - 1);
}

async fn missing_dir_and_binary_files_are_clear_and_never_served(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let index = common::open(db, dir.path()).await;
    let err = index
        .sync_dir(&dir.path().join("nope"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, KnowledgeError::MissingSource { .. }), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");

    let src = dir.path().join("docs");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("good.md"), "# Good\n\nzebra text\n").unwrap();
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR zebra".to_vec();
    png.extend([0u8; 64]);
    std::fs::write(src.join("diagram.md"), &png).unwrap();
    std::fs::write(src.join("latin1.txt"), b"caf\xe9 zebra").unwrap();
    let r = index.sync_dir(&src, None).await.unwrap();
    assert_eq!(r.added.len(), 1);
    assert_eq!(r.skipped.len(), 2, "{r:?}");
    assert!(r
        .skipped
        .iter()
        .any(|(p, why)| p.ends_with("diagram.md") && why.contains("binary")));
    assert!(r
        .skipped
        .iter()
        .any(|(p, why)| p.ends_with("latin1.txt") && why.contains("UTF-8")));
    assert_eq!(index.skipped().await.unwrap().len(), 2);
    let hits = index.search("zebra", 10, Mode::Bm25, None).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert!(hits[0].source.ends_with("good.md"));

    // A text document later overwritten by binary stops being served.
    std::fs::write(src.join("good.md"), &png).unwrap();
    bump_mtime(&src.join("good.md"));
    let r = index.sync_dir(&src, None).await.unwrap();
    assert_eq!(r.skipped.len(), 3, "{r:?}");
    assert!(index
        .search("zebra", 10, Mode::Bm25, None)
        .await
        .unwrap()
        .is_empty());
}

async fn an_embedding_endpoint_that_is_down_is_a_clear_error_and_writes_nothing(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    common::copy_corpus(dir.path());
    let index = common::open(db, dir.path()).await;
    let down = OpenAiEmbedder::new(
        &format!("http://127.0.0.1:{}/v1", hwc_testkit::free_port()),
        "m",
    );
    let err = index
        .sync_dir(&dir.path().join("runbooks"), Some(&down))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unreachable"), "{err}");
    assert_eq!(index.chunk_count().await.unwrap(), 0);
    let err = index.search("x", 3, Mode::Hybrid, None).await.unwrap_err();
    assert!(matches!(err, KnowledgeError::NoEmbedder));
}

async fn dense_and_hybrid_search_through_real_llama_server_embeddings(db: Db) {
    let server = common::shared();
    let embedder = server.embedder().with_batch(8);
    let v = embedder
        .embed(&["disk full".to_string(), "no space left".to_string()])
        .await
        .unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].len(), 384);

    let dir = tempfile::tempdir().unwrap();
    common::copy_corpus(dir.path());
    let index = common::open(db, dir.path()).await;
    let r = index
        .sync_dir(&dir.path().join("runbooks"), Some(&embedder))
        .await
        .unwrap();
    assert_eq!(r.embedded as i64, index.chunk_count().await.unwrap());
    // No shared word with the passage: only the dense side can find it.
    let q = "graphics card ran out of RAM when the inference engine booted";
    let dense = index
        .search(q, 5, Mode::Dense, Some(&embedder))
        .await
        .unwrap();
    assert!(
        dense
            .iter()
            .any(|p| p.heading.ends_with("CUDA out of memory at startup")),
        "{dense:?}"
    );
    let hybrid = index
        .search(q, 5, Mode::Hybrid, Some(&embedder))
        .await
        .unwrap();
    assert!(
        hybrid
            .iter()
            .any(|p| p.heading.ends_with("CUDA out of memory at startup")),
        "{hybrid:?}"
    );

    // Incident records are found like documents.
    index
        .add_incident(
            &Incident {
                job_id: "job-42".into(),
                goal: "find why the wombat exporter is silent".into(),
                findings: "its unit was masked".into(),
                actions: "unmasked and started it".into(),
                outcome: "metrics flow again".into(),
            },
            Some(&embedder),
        )
        .await
        .unwrap();
    let hits = index
        .search("wombat exporter silent", 3, Mode::Hybrid, Some(&embedder))
        .await
        .unwrap();
    assert_eq!(hits[0].source, "incident:job-42");
}

both!(
    indexes_the_corpus_and_finds_passages_with_source_and_heading,
    corpus_sqlite,
    corpus_postgres
);
both!(
    re_indexes_edits_and_deletions_incrementally,
    incremental_sqlite,
    incremental_postgres
);
both!(
    missing_dir_and_binary_files_are_clear_and_never_served,
    missing_and_binary_sqlite,
    missing_and_binary_postgres
);
both!(
    an_embedding_endpoint_that_is_down_is_a_clear_error_and_writes_nothing,
    embedder_down_sqlite,
    embedder_down_postgres
);
both!(
    dense_and_hybrid_search_through_real_llama_server_embeddings,
    dense_hybrid_incident_sqlite,
    dense_hybrid_incident_postgres
);

#[tokio::test]
async fn open_url_takes_paths_sqlite_urls_and_refuses_other_schemes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.db");
    let a = Index::open_url(path.to_str().unwrap()).await.unwrap();
    assert_eq!(a.backend(), hwc_knowledge::Backend::Sqlite);
    let m = Index::open_url("sqlite::memory:").await.unwrap();
    assert_eq!(m.chunk_count().await.unwrap(), 0);
    for bad in ["mysql://u:hunter2@db/k", "", "http://x"] {
        let err = Index::open_url(bad).await.unwrap_err();
        assert!(matches!(err, KnowledgeError::BadUrl { .. }), "{bad}: {err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
    // A PostgreSQL that is not there is a database error, not a hang.
    let err = Index::open_url(&format!(
        "postgres://u:pw@127.0.0.1:{}/k",
        hwc_testkit::free_port()
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, KnowledgeError::Db(_)), "{err}");
}

#[tokio::test]
async fn two_postgres_handles_share_one_index_and_see_each_others_writes() {
    let url = hwc_testkit::postgres::shared().database("knowledge_shared");
    let (a, b) = tokio::join!(Index::open_url(&url), Index::open_url(&url));
    let (a, b) = (a.unwrap(), b.unwrap());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("n.md"),
        "# Notes\n\n## Wombat\n\nwombat exporter\n",
    )
    .unwrap();
    a.sync_dir(dir.path(), None).await.unwrap();
    let hits = b.search("wombat", 3, Mode::Bm25, None).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].heading, "Notes > Wombat");
    assert!(b.remove(&hits[0].source).await.unwrap());
    assert_eq!(a.chunk_count().await.unwrap(), 0);
}

/// One paragraph of a real-looking postmortem timeline, well over MiniLM's
/// 512 tokens (timestamps, unit names and numbers tokenize densely).
fn long_paragraph() -> String {
    let mut p = String::from(
        "During the outage the router kept accepting requests while every vLLM replica was restarting, so the queue grew until clients timed out; the journal shows the sequence:",
    );
    for i in 0..24 {
        p.push_str(&format!(
            " 2026-03-14T02:{:02}:{:02}Z hwc-model-router[812]: upstream=127.0.0.1:{} status=503 queue_depth={} latency_ms={};",
            11 + i / 6,
            (i * 7) % 60,
            8000 + i % 3,
            40 + i * 13,
            1200 + i * 97
        ));
    }
    p.push_str(" after the replicas came back the queue drained within two minutes and no request was lost.");
    p
}

/// Tokens llama-server counts for `text`, [CLS] and [SEP] included.
async fn real_tokens(server: &common::EmbedServer, text: &str) -> usize {
    let v: serde_json::Value = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/tokenize", server.port))
        .json(&serde_json::json!({"content": text, "add_special": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["tokens"].as_array().unwrap().len()
}

async fn over_long_inputs_are_split_not_failed(db: Db) {
    let server = common::shared();
    let embedder = server.embedder();
    let p = long_paragraph();
    let n = real_tokens(server, &p).await;
    assert!(n > 512, "{n} tokens");
    assert!(
        estimate_tokens(&p) >= n,
        "estimate {} < {n}",
        estimate_tokens(&p)
    );
    // llama-server refuses it (it never truncates): a typed error.
    let err = embedder.embed(std::slice::from_ref(&p)).await.unwrap_err();
    assert!(matches!(err, EmbedError::TooLong { .. }), "{err}");
    let v = embed_fitting(&embedder, std::slice::from_ref(&p))
        .await
        .unwrap();
    assert_eq!(v[0].len(), 384);

    // With the token bound switched off the chunk is over 512 tokens, and
    // the sync (and the backfill in it) still succeeds.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("docs");
    std::fs::create_dir(&src).unwrap();
    let doc = format!("# Postmortem\n\n## Timeline\n\n{p}\n");
    std::fs::write(src.join("pm.md"), &doc).unwrap();
    let unbounded = ChunkOptions {
        max_chars: 1_000_000,
        overlap: 0,
        max_tokens: 1_000_000,
    };
    let index = common::open(db, dir.path())
        .await
        .with_chunk_options(unbounded);
    let r = index.sync_dir(&src, Some(&embedder)).await.unwrap();
    assert_eq!((r.added.len(), r.embedded), (1, 1), "{r:?}");
    let hits = index
        .search(
            "clients timed out while the model replicas restarted",
            1,
            Mode::Dense,
            Some(&embedder),
        )
        .await
        .unwrap();
    assert_eq!(hits[0].heading, "Postmortem > Timeline");
    // A long pasted query is handled the same way.
    index
        .search(&p, 3, Mode::Hybrid, Some(&embedder))
        .await
        .unwrap();

    // With the default bound every chunk fits the model as llama-server
    // counts it, so nothing is refused in the first place.
    let chunks = chunk_markdown("pm.md", &doc, ChunkOptions::default());
    assert!(chunks.len() >= 2);
    for c in &chunks {
        let text = format!("{}\n\n{}", c.heading_path(), c.text);
        let real = real_tokens(server, &text).await;
        assert!(real <= 512, "{real} tokens: {text}");
    }
    let other = tempfile::tempdir().unwrap();
    let index = common::open(db, other.path()).await;
    let r = index.sync_dir(&src, Some(&embedder)).await.unwrap();
    assert_eq!(r.embedded, chunks.len());
}

both!(
    over_long_inputs_are_split_not_failed,
    over_long_sqlite,
    over_long_postgres
);
