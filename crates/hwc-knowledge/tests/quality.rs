//! The quality and speed measurement of docs/knowledge.md (not a timed
//! assertion; ignored by default). Run:
//!
//! ```console
//! cargo test -p hwc-knowledge --release --test quality -- --ignored --nocapture
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use hwc_knowledge::search::recall_and_rr;
use hwc_knowledge::{Chunk, Embedder, Index, Mode};

struct Question {
    text: String,
    source: String,
    heading: String,
}

fn questions() -> Vec<Question> {
    std::fs::read_to_string(common::corpus().join("questions.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split('\t');
            Question {
                text: f.next().unwrap().to_string(),
                source: f.next().unwrap().to_string(),
                heading: f.next().unwrap_or("").to_string(),
            }
        })
        .collect()
}

fn percentile(mut xs: Vec<f64>, p: f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[((xs.len() as f64 - 1.0) * p).round() as usize]
}

/// Deterministic pseudo-random words for synthetic chunks.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[tokio::test]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn quality_and_scale() {
    let server = common::shared();
    let embedder = server.embedder().with_batch(32);
    let dir = tempfile::tempdir().unwrap();
    common::copy_corpus(dir.path());
    let index = Index::open(&dir.path().join("k.db")).await.unwrap();
    let t = Instant::now();
    let r = index.sync_dir(dir.path(), Some(&embedder)).await.unwrap();
    println!(
        "corpus: {} documents, {} chunks, indexed with embeddings in {:.2} s",
        r.added.len(),
        index.chunk_count().await.unwrap(),
        t.elapsed().as_secs_f64()
    );
    let qs = questions();
    println!("questions: {}", qs.len());
    println!("| mode | recall@5 | MRR (top 10) |");
    println!("|---|---|---|");
    for mode in [Mode::Bm25, Mode::Dense, Mode::Hybrid] {
        let (mut hits, mut rr) = (0usize, 0f64);
        for q in &qs {
            let got = index
                .search(&q.text, 10, mode, Some(&embedder))
                .await
                .unwrap();
            let ranked: Vec<bool> = got
                .iter()
                .map(|p| {
                    p.source.ends_with(&q.source)
                        && (q.heading.is_empty() || p.heading.ends_with(&q.heading))
                })
                .collect();
            let (hit, r) = recall_and_rr(&ranked, &[true], 5);
            if !hit {
                println!("  miss ({mode:?}): {}", q.text);
            }
            hits += usize::from(hit);
            rr += r;
        }
        println!(
            "| {mode:?} | {:.3} | {:.3} |",
            hits as f64 / qs.len() as f64,
            rr / qs.len() as f64
        );
    }

    // Scale: 10k synthetic chunks (120 words each drawn from the corpus's
    // vocabulary), inserted with vectors; the vectors come
    // from the real model for a sample, to measure its throughput, and are
    // random for the rest.
    let mut vocab: Vec<String> = Vec::new();
    for sub in ["runbooks", "postmortems", "distractors"] {
        for e in std::fs::read_dir(common::corpus().join(sub)).unwrap() {
            for w in std::fs::read_to_string(e.unwrap().path())
                .unwrap()
                .split_whitespace()
            {
                if !vocab.iter().any(|v| v == w) {
                    vocab.push(w.to_string());
                }
            }
        }
    }
    let nv = vocab.len() as u64;
    let mut rng = Lcg(42);
    let n = 10_000usize;
    let chunks: Vec<Chunk> = (0..n)
        .map(|i| Chunk {
            source: format!("synthetic/doc{}.md", i / 20),
            heading: vec![format!("Doc {}", i / 20), format!("Section {}", i % 20)],
            text: (0..100)
                .map(|_| vocab[(rng.next() % nv) as usize].as_str())
                .collect::<Vec<_>>()
                .join(" "),
        })
        .collect();
    let sample: Vec<String> = chunks.iter().take(256).map(|c| c.text.clone()).collect();
    let t = Instant::now();
    let real = embedder.embed(&sample).await.unwrap();
    let per_chunk = t.elapsed().as_secs_f64() / sample.len() as f64;
    println!(
        "embedding throughput (all-MiniLM-L6-v2 F32, llama-server, 2 threads): {:.1} chunks/s of ~100 words",
        1.0 / per_chunk
    );
    let dim = real[0].len();
    let vectors: Vec<Vec<f32>> = (0..n)
        .map(|i| {
            real.get(i).cloned().unwrap_or_else(|| {
                (0..dim)
                    .map(|_| (rng.next() % 2001) as f32 / 1000.0 - 1.0)
                    .collect()
            })
        })
        .collect();
    let big = Index::open(&dir.path().join("big.db")).await.unwrap();
    let t = Instant::now();
    for (i, (c, v)) in chunks.chunks(20).zip(vectors.chunks(20)).enumerate() {
        big.insert_chunks(
            &format!("synthetic/doc{i}.md"),
            c,
            Some((v, embedder.model())),
        )
        .await
        .unwrap();
    }
    let store_s = t.elapsed().as_secs_f64();
    big.sync_dir(dir.path(), Some(&embedder)).await.unwrap();
    println!(
        "10k chunks: stored (chunks, FTS5, vectors; 500 documents, one transaction each) in {store_s:.2} s; with embedding at the measured rate the full index would take {:.0} s",
        store_s + per_chunk * n as f64
    );
    println!(
        "chunks in the scale index: {}",
        big.chunk_count().await.unwrap()
    );
    println!("| mode | p50 ms | p95 ms |");
    println!("|---|---|---|");
    for mode in [Mode::Bm25, Mode::Dense, Mode::Hybrid] {
        // Warm the vector cache once.
        big.search("warm", 5, mode, Some(&embedder)).await.unwrap();
        let mut ms = Vec::new();
        for q in &qs {
            let t = Instant::now();
            big.search(&q.text, 5, mode, Some(&embedder)).await.unwrap();
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "| {mode:?} | {:.2} | {:.2} |",
            percentile(ms.clone(), 0.5),
            percentile(ms, 0.95)
        );
    }
}
