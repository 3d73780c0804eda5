//! The quality and speed measurement of docs/benchmarks.md, "Knowledge
//! retrieval" (not a timed assertion; ignored by default), on SQLite and
//! on the real PostgreSQL of hwc_testkit::postgres. Run:
//!
//! ```console
//! cargo test -p hwc-knowledge --release --test quality -- --ignored --nocapture
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::Db;
use hwc_knowledge::search::recall_and_rr;
use hwc_knowledge::{Chunk, Embedder, Index, Mode};

struct Question {
    text: String,
    source: String,
    heading: String,
}

fn questions(file: &str) -> Vec<Question> {
    std::fs::read_to_string(common::corpus().join(file))
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

/// The two labelled sets: the first (keywords mostly shared with the
/// runbooks) and the harder one (paraphrases, no shared terms).
const SETS: [(&str, &str); 2] = [
    ("questions.tsv", "keyword"),
    ("questions-hard.tsv", "paraphrase"),
];

/// recall@1, recall@5 and MRR (top 10) of a ranking of (source, heading).
#[derive(Default)]
struct Score {
    r1: usize,
    r5: usize,
    rr: f64,
    n: usize,
}

impl Score {
    fn add(&mut self, q: &Question, got: &[(String, String)]) -> bool {
        let ranked: Vec<bool> = got
            .iter()
            .map(|(source, heading)| {
                source.ends_with(&q.source)
                    && (q.heading.is_empty() || heading.ends_with(&q.heading))
            })
            .collect();
        let (hit1, _) = recall_and_rr(&ranked, &[true], 1);
        let (hit5, r) = recall_and_rr(&ranked, &[true], 5);
        self.r1 += usize::from(hit1);
        self.r5 += usize::from(hit5);
        self.rr += r;
        self.n += 1;
        hit5
    }

    fn row(&self) -> String {
        let n = self.n.max(1) as f64;
        format!(
            "{:.3} | {:.3} | {:.3}",
            self.r1 as f64 / n,
            self.r5 as f64 / n,
            self.rr / n
        )
    }
}

async fn open(db: Db, dir: &std::path::Path, name: &str) -> Index {
    match db {
        Db::Sqlite => Index::open(&dir.join(format!("{name}.db"))).await.unwrap(),
        Db::Postgres => Index::open_url(&hwc_testkit::postgres::shared().database(name))
            .await
            .unwrap(),
    }
}

/// The PostgreSQL lexical ranking with a chosen text search configuration
/// and `ts_rank_cd` normalization, computed from the columns (not the
/// stored `tsvector`), to compare the variants on the same database.
async fn pg_lexical(
    pool: &sqlx::PgPool,
    query: &str,
    config: &str,
    norm: i32,
) -> Vec<(String, String)> {
    let Some(q) = hwc_knowledge::search::websearch_query(query) else {
        return Vec::new();
    };
    let sql = format!(
        "SELECT d.path, c.heading FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.doc_id,
           websearch_to_tsquery('{config}', $1) q,
           LATERAL (SELECT setweight(to_tsvector('{config}', c.heading), 'A') || setweight(to_tsvector('{config}', c.text), 'B') AS v) t
         WHERE t.v @@ q ORDER BY ts_rank_cd(t.v, q, {norm}) DESC, c.id LIMIT 10"
    );
    sqlx::query_as(&sql).bind(q).fetch_all(pool).await.unwrap()
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
    // The SQLite files apart from the corpus synced.
    let dbdir = tempfile::tempdir().unwrap();
    let sets: Vec<(&str, Vec<Question>)> =
        SETS.iter().map(|(f, name)| (*name, questions(f))).collect();
    for (name, qs) in &sets {
        println!("set {name}: {} questions", qs.len());
    }
    for db in [Db::Sqlite, Db::Postgres] {
        let index = open(db, dbdir.path(), "quality").await;
        let t = Instant::now();
        let r = index.sync_dir(dir.path(), Some(&embedder)).await.unwrap();
        println!(
            "\n{db:?} ({:?}): {} documents, {} chunks, indexed with embeddings in {:.2} s",
            index.backend(),
            r.added.len(),
            index.chunk_count().await.unwrap(),
            t.elapsed().as_secs_f64()
        );
        println!("| store | set | ranking | recall@1 | recall@5 | MRR (top 10) |");
        println!("|---|---|---|---|---|---|");
        for (name, qs) in &sets {
            for mode in [Mode::Bm25, Mode::Dense, Mode::Hybrid] {
                let mut score = Score::default();
                for q in qs {
                    let got: Vec<(String, String)> = index
                        .search(&q.text, 10, mode, Some(&embedder))
                        .await
                        .unwrap()
                        .into_iter()
                        .map(|p| (p.source, p.heading))
                        .collect();
                    if !score.add(q, &got) {
                        println!("  miss@5 ({db:?} {name} {mode:?}): {}", q.text);
                    }
                }
                println!("| {db:?} | {name} | {mode:?} | {} |", score.row());
            }
        }
    }

    // The PostgreSQL lexical variants, on one database holding the corpus.
    let url = hwc_testkit::postgres::shared().database("variants");
    let index = Index::open_url(&url).await.unwrap();
    index.sync_dir(dir.path(), None).await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    println!("\nPostgreSQL lexical variants (ts_rank_cd)");
    println!("| set | config | normalization | recall@1 | recall@5 | MRR (top 10) |");
    println!("|---|---|---|---|---|---|");
    for (name, qs) in &sets {
        for config in ["english", "simple"] {
            for norm in [0, 1, 2] {
                let mut score = Score::default();
                for q in qs {
                    score.add(q, &pg_lexical(&pool, &q.text, config, norm).await);
                }
                println!("| {name} | {config} | {norm} | {} |", score.row());
            }
        }
    }
    let qs: Vec<&Question> = sets.iter().flat_map(|(_, q)| q).collect();

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
    for db in [Db::Sqlite, Db::Postgres] {
        let big = open(db, dbdir.path(), "big").await;
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
            "\n{db:?}: 10k chunks stored (rows, lexical index, vectors; 500 documents, one transaction each) in {store_s:.2} s; with embedding at the measured rate the full index would take {:.0} s",
            store_s + per_chunk * n as f64
        );
        println!(
            "chunks in the scale index: {}",
            big.chunk_count().await.unwrap()
        );
        println!("| store | ranking | p50 ms | p95 ms |");
        println!("|---|---|---|---|");
        for mode in [Mode::Bm25, Mode::Dense, Mode::Hybrid] {
            // Warm the vector cache once.
            big.search("warm", 5, mode, Some(&embedder)).await.unwrap();
            let mut ms = Vec::new();
            for q in &qs {
                let t = Instant::now();
                big.search(&q.text, 5, mode, Some(&embedder)).await.unwrap();
                let took = t.elapsed().as_secs_f64() * 1000.0;
                if took > 300.0 {
                    println!("  slow ({took:.0} ms, {mode:?}): {}", q.text);
                }
                ms.push(took);
            }
            println!(
                "| {db:?} | {mode:?} | {:.2} | {:.2} |",
                percentile(ms.clone(), 0.5),
                percentile(ms, 0.95)
            );
        }
    }

    let mut ms = Vec::new();
    for q in &qs {
        let t = Instant::now();
        embedder.embed(std::slice::from_ref(&q.text)).await.unwrap();
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "\nembedding one query (part of every dense and hybrid query): p50 {:.2} ms, p95 {:.2} ms",
        percentile(ms.clone(), 0.5),
        percentile(ms, 0.95)
    );

    // Cosine in SQL over real[] instead of in Rust over the cached vectors:
    // the alternative the PostgreSQL store did not take.
    let url = hwc_testkit::postgres::shared().database("sqlcosine");
    let big = Index::open_url(&url).await.unwrap();
    for (i, (c, v)) in chunks.chunks(20).zip(vectors.chunks(20)).enumerate() {
        big.insert_chunks(
            &format!("synthetic/doc{i}.md"),
            c,
            Some((v, embedder.model())),
        )
        .await
        .unwrap();
    }
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let mut ms = Vec::new();
    for q in qs.iter().take(10) {
        let v = embedder
            .embed(std::slice::from_ref(&q.text))
            .await
            .unwrap()
            .remove(0);
        let t = Instant::now();
        let rows: Vec<(i64, f64)> = sqlx::query_as(
            "SELECT id, ((SELECT sum(a::float8 * b) FROM unnest(embedding, $1::real[]) u(a, b))
                 / (sqrt((SELECT sum(a::float8 * a) FROM unnest(embedding) u(a))) * sqrt((SELECT sum(b::float8 * b) FROM unnest($1::real[]) u(b))))) AS s
             FROM knowledge_chunks WHERE model = $2 ORDER BY s DESC LIMIT 5",
        )
        .bind(&v)
        .bind(embedder.model())
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(rows.len(), 5);
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "\nPostgreSQL cosine in SQL over real[] at 10k chunks (query embedding excluded): p50 {:.1} ms, max {:.1} ms",
        percentile(ms.clone(), 0.5),
        percentile(ms, 1.0)
    );
}
