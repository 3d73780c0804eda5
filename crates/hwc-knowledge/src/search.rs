//! Ranking: a safe FTS5 query builder, cosine scoring and reciprocal rank
//! fusion, as pure functions; [`crate::Index::search`] runs them.

use serde::Serialize;

/// The reciprocal rank fusion constant (Cormack et al.): 60.
pub const RRF_K: f64 = 60.0;

/// Which ranking a search uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// BM25 over FTS5 alone.
    Bm25,
    /// Cosine over the dense vectors alone.
    Dense,
    /// Both, fused by reciprocal rank.
    Hybrid,
}

/// One passage found: what `search_knowledge` returns and a report cites.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Passage {
    /// The chunk's id in the index.
    pub chunk_id: i64,
    /// The source document's path (or `incident:<job>`).
    pub source: String,
    /// The heading path, joined with " > ".
    pub heading: String,
    /// The passage text.
    pub text: String,
    /// The score of the ranking used (BM25 negated, cosine, or RRF); larger is better.
    pub score: f64,
}

/// The most query terms kept (a pasted log line should not make a huge query).
const MAX_TERMS: usize = 32;

/// The words of user text a lexical query keeps: Unicode letters and
/// digits, lower-cased, deduplicated, at most 32, in order. Both backends
/// build their query from these, so nothing the user typed is syntax.
pub fn query_terms(text: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        let w = word.to_lowercase();
        if !terms.contains(&w) {
            terms.push(w);
        }
        if terms.len() == MAX_TERMS {
            break;
        }
    }
    terms
}

/// Builds an FTS5 MATCH expression from user text: its [`query_terms`],
/// each a quoted string, joined by OR. Nothing the user typed is FTS5
/// syntax (`AND`, `NEAR`, `*`, `:`, `"`, parentheses are all just
/// separators or plain words). `None` when the text has no word.
pub fn fts_query(text: &str) -> Option<String> {
    let terms = query_terms(text);
    if terms.is_empty() {
        return None;
    }
    Some(
        terms
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(" OR "),
    )
}

/// Builds the text given to PostgreSQL's `websearch_to_tsquery`: the
/// [`query_terms`] joined by ` or ` (the one operator it is given; that
/// function never raises a syntax error, and the terms hold no quote or
/// minus; the word "or" itself, an English stop word, is dropped). `None`
/// when the text has no word.
pub fn websearch_query(text: &str) -> Option<String> {
    let terms: Vec<String> = query_terms(text)
        .into_iter()
        .filter(|t| t != "or")
        .collect();
    (!terms.is_empty()).then(|| terms.join(" or "))
}

/// Cosine similarity; 0 for empty, mismatched or zero vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

/// The `k` best items by score, best first (ties by id, for stable output).
pub fn top_k(mut scored: Vec<(i64, f64)>, k: usize) -> Vec<(i64, f64)> {
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    scored
}

/// Reciprocal rank fusion: each id scores the sum over the lists it appears
/// in of `1 / (k + rank)`, rank counted from 1. Best first; ties by the
/// id's best rank, then by id.
pub fn rrf(lists: &[Vec<i64>], k: f64) -> Vec<(i64, f64)> {
    let mut acc: Vec<(i64, f64, usize)> = Vec::new();
    for list in lists {
        for (i, id) in list.iter().enumerate() {
            let add = 1.0 / (k + (i + 1) as f64);
            match acc.iter_mut().find(|(x, _, _)| x == id) {
                Some(e) => {
                    e.1 += add;
                    e.2 = e.2.min(i);
                }
                None => acc.push((*id, add, i)),
            }
        }
    }
    acc.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)).then(a.0.cmp(&b.0)));
    acc.into_iter().map(|(id, s, _)| (id, s)).collect()
}

/// A vector as little-endian f32 bytes (the storage format in SQLite;
/// PostgreSQL stores `real[]`, or pgvector's `vector` where it exists).
pub fn vector_to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Bytes back to a vector; `None` when the length is not a multiple of 4.
pub fn vector_from_bytes(b: &[u8]) -> Option<Vec<f32>> {
    if b.len() % 4 != 0 {
        return None;
    }
    Some(
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// Recall@k and reciprocal rank of one question: whether any of `relevant`
/// is in the first `k` of `ranked`, and `1 / rank` of the first relevant
/// one (0 when none is found).
pub fn recall_and_rr<T: PartialEq>(ranked: &[T], relevant: &[T], k: usize) -> (bool, f64) {
    let first = ranked.iter().position(|r| relevant.contains(r));
    (
        first.is_some_and(|i| i < k),
        first.map_or(0.0, |i| 1.0 / (i + 1) as f64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts_query_never_passes_syntax() {
        for (input, want) in [
            ("disk full", Some(r#""disk" OR "full""#)),
            ("Disk DISK disk", Some(r#""disk""#)),
            (r#"a" OR "b"#, Some(r#""a" OR "or" OR "b""#)),
            (
                "NEAR(x y) AND z*",
                Some(r#""near" OR "x" OR "y" OR "and" OR "z""#),
            ),
            (
                "col:value -neg ^start",
                Some(r#""col" OR "value" OR "neg" OR "start""#),
            ),
            ("", None),
            ("*** :: \"\" ()", None),
            ("vLLM 503 ünïcode", Some(r#""vllm" OR "503" OR "ünïcode""#)),
        ] {
            assert_eq!(fts_query(input).as_deref(), want, "{input:?}");
        }
        let long = (0..100)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(
            fts_query(&long).map(|q| q.matches(" OR ").count()),
            Some(31)
        );
        assert_eq!(
            websearch_query(r#"disk -full "x" OR"#).as_deref(),
            Some("disk or full or x")
        );
        assert_eq!(websearch_query("or OR Or"), None);
        assert_eq!(websearch_query("-- \"\""), None);
    }

    #[test]
    fn cosine_table() {
        for (a, b, want) in [
            (vec![1.0, 0.0], vec![1.0, 0.0], 1.0),
            (vec![1.0, 0.0], vec![0.0, 1.0], 0.0),
            (vec![1.0, 1.0], vec![-1.0, -1.0], -1.0),
            (vec![3.0, 4.0], vec![6.0, 8.0], 1.0),
            (vec![0.0, 0.0], vec![1.0, 0.0], 0.0),
            (vec![1.0], vec![1.0, 0.0], 0.0),
            (vec![], vec![], 0.0),
        ] {
            assert!((cosine(&a, &b) - want).abs() < 1e-6, "{a:?} {b:?}");
        }
    }

    #[test]
    fn rrf_table() {
        // Both lists agree on 1: it wins; 2 and 3 tie on score, 2 ranked first earlier.
        let got = rrf(&[vec![1, 2, 3], vec![1, 3, 2]], RRF_K);
        assert_eq!(got.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!((got[0].1 - 2.0 / 61.0).abs() < 1e-12);
        // An id in one list only, at rank 1, loses to one at ranks 2 and 2.
        let got = rrf(&[vec![7, 8], vec![9, 8]], RRF_K);
        assert_eq!(got[0].0, 8);
        assert!((got[0].1 - 2.0 / 62.0).abs() < 1e-12);
        assert_eq!(rrf(&[], RRF_K), vec![]);
        assert_eq!(rrf(&[vec![], vec![5]], RRF_K), vec![(5, 1.0 / 61.0)]);
    }

    #[test]
    fn top_k_and_vectors_round_trip() {
        assert_eq!(
            top_k(vec![(3, 0.5), (2, 0.9), (1, 0.5)], 5),
            vec![(2, 0.9), (1, 0.5), (3, 0.5)]
        );
        assert_eq!(
            top_k(vec![(1, 0.5), (2, 0.9), (3, 0.5)], 2),
            vec![(2, 0.9), (1, 0.5)]
        );
        let v = vec![0.25f32, -1.5, 3.0e-7];
        assert_eq!(vector_from_bytes(&vector_to_bytes(&v)), Some(v));
        assert_eq!(vector_from_bytes(&[0, 1, 2]), None);
    }

    #[test]
    fn recall_and_rr_table() {
        assert_eq!(recall_and_rr(&[3, 1, 2], &[1], 5), (true, 0.5));
        assert_eq!(recall_and_rr(&[3, 1, 2], &[9], 5), (false, 0.0));
        assert_eq!(
            recall_and_rr(&[1, 2, 3, 4, 5, 6], &[6], 5),
            (false, 1.0 / 6.0)
        );
        assert_eq!(recall_and_rr(&[2, 1], &[1, 2], 1), (true, 1.0));
    }
}
