//! Dense vectors from an OpenAI-compatible `/v1/embeddings` endpoint.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::error::EmbedError;

/// Something that turns texts into vectors, one per text, in order.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// The model name, stored beside each vector so a model change re-embeds.
    fn model(&self) -> &str;
    /// Embeds `texts` (any number; implementations batch).
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// An [`Embedder`] over `POST {base}/embeddings` (the router's, or
/// llama-server's with `--embeddings`).
#[derive(Debug, Clone)]
pub struct OpenAiEmbedder {
    client: reqwest::Client,
    url: String,
    model: String,
    api_key: Option<String>,
    batch: usize,
}

impl OpenAiEmbedder {
    /// An embedder for `base_url` (ending in `/v1`) and `model`, batching 32
    /// texts a request, 60 s per request.
    pub fn new(base_url: &str, model: &str) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            client,
            url: format!("{}/embeddings", base_url.trim_end_matches('/')),
            model: model.to_string(),
            api_key: None,
            batch: 32,
        }
    }

    /// Sends `Authorization: Bearer key` (the router needs a key).
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Texts per request (at least 1).
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    async fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        #[derive(Deserialize)]
        struct Item {
            index: usize,
            embedding: Vec<f32>,
        }
        #[derive(Deserialize)]
        struct Answer {
            data: Vec<Item>,
        }
        let mut req = self.client.post(&self.url).json(
            &serde_json::json!({"model": self.model, "input": texts, "encoding_format": "float"}),
        );
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.map_err(|source| EmbedError::Unreachable {
            url: self.url.clone(),
            source,
        })?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|source| EmbedError::Unreachable {
                url: self.url.clone(),
                source,
            })?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            if is_too_long(status.as_u16(), &text) {
                return Err(EmbedError::TooLong {
                    url: self.url.clone(),
                    body: text.chars().take(300).collect(),
                });
            }
            return Err(EmbedError::Status {
                url: self.url.clone(),
                status: status.as_u16(),
                body: text.chars().take(300).collect(),
            });
        }
        let malformed = |reason: String| EmbedError::Malformed {
            url: self.url.clone(),
            reason,
        };
        let answer: Answer = serde_json::from_slice(&body).map_err(|e| malformed(e.to_string()))?;
        if answer.data.len() != texts.len() {
            return Err(malformed(format!(
                "{} vectors for {} inputs",
                answer.data.len(),
                texts.len()
            )));
        }
        let mut out: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for item in answer.data {
            let slot = out
                .get_mut(item.index)
                .ok_or_else(|| malformed(format!("index {} out of range", item.index)))?;
            if item.embedding.is_empty() || item.embedding.iter().any(|x| !x.is_finite()) {
                return Err(malformed("an empty or non-finite vector".into()));
            }
            *slot = Some(item.embedding);
        }
        let out: Vec<Vec<f32>> = out
            .into_iter()
            .collect::<Option<_>>()
            .ok_or_else(|| malformed("an index repeated".into()))?;
        if out.windows(2).any(|w| w[0].len() != w[1].len()) {
            return Err(malformed("vectors of different dimensions".into()));
        }
        Ok(out)
    }
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn model(&self) -> &str {
        &self.model
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.batch) {
            out.extend(self.embed_batch(batch).await?);
        }
        Ok(out)
    }
}

/// Whether an error answer says an input was longer than the model's
/// context: llama-server answers 500 `input (N tokens) is too large to
/// process. increase the physical batch size` when the input exceeds
/// `-ub`, and 400 `exceed_context_size_error` when it exceeds the slot's
/// context (512 for MiniLM whatever `-c` says); OpenAI answers 400
/// `maximum context length`. The router passes these bodies through.
fn is_too_long(status: u16, body: &str) -> bool {
    let b = body.to_ascii_lowercase();
    matches!(status, 400 | 413 | 500)
        && (b.contains("too large to process")
            || b.contains("exceed_context_size")
            || b.contains("larger than the max context size")
            || b.contains("maximum context length"))
}

/// The most times one input is halved before its refusal is an error.
const MAX_SPLITS: u32 = 6;

/// [`Embedder::embed`], with inputs the endpoint refuses as too long
/// handled rather than failing the whole sync: the batch is retried text
/// by text, and a text still refused is halved (at the whitespace nearest
/// its middle), each half embedded the same way, and the halves' unit
/// vectors averaged weighted by length, an approximation of the mean
/// pooling the model would have done over the whole. Chunks are bounded
/// in tokens already ([`crate::chunk::estimate_tokens`]); this is for
/// what the estimate misses and for long queries (a pasted log).
pub async fn embed_fitting(
    embedder: &dyn Embedder,
    texts: &[String],
) -> Result<Vec<Vec<f32>>, EmbedError> {
    match embedder.embed(texts).await {
        Err(EmbedError::TooLong { .. }) => {}
        other => return other,
    }
    let mut out = Vec::with_capacity(texts.len());
    for text in texts {
        out.push(embed_one_fitting(embedder, text.clone(), 0).await?);
    }
    Ok(out)
}

fn embed_one_fitting<'a>(
    embedder: &'a dyn Embedder,
    text: String,
    depth: u32,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<f32>, EmbedError>> + Send + 'a>>
{
    Box::pin(async move {
        let err = match embedder.embed(std::slice::from_ref(&text)).await {
            Ok(mut v) => return v.pop().ok_or_else(|| unreachable_empty(embedder)),
            Err(e @ EmbedError::TooLong { .. }) if depth < MAX_SPLITS => e,
            Err(e) => return Err(e),
        };
        let Some((a, b)) = halve(&text) else {
            return Err(err);
        };
        tracing::debug!(
            chars = text.len(),
            depth,
            "knowledge: input too long for the embedder, split"
        );
        let va = embed_one_fitting(embedder, a.to_string(), depth + 1).await?;
        let vb = embed_one_fitting(embedder, b.to_string(), depth + 1).await?;
        Ok(weighted_mean(&va, a.len(), &vb, b.len()))
    })
}

fn unreachable_empty(embedder: &dyn Embedder) -> EmbedError {
    EmbedError::Malformed {
        url: embedder.model().to_string(),
        reason: "no vector for one input".into(),
    }
}

/// `text` cut in two at the whitespace nearest its middle (or at the
/// middle character when it has none); `None` when too short to cut.
fn halve(text: &str) -> Option<(&str, &str)> {
    if text.chars().count() < 2 {
        return None;
    }
    let mid = text
        .char_indices()
        .map(|(i, _)| i)
        .nth(text.chars().count() / 2)
        .unwrap_or(text.len() / 2);
    let before = text[..mid].rfind(char::is_whitespace);
    let after = text[mid..].find(char::is_whitespace).map(|i| i + mid);
    let cut = match (before, after) {
        (Some(b), Some(a)) => {
            if mid - b <= a - mid {
                b
            } else {
                a
            }
        }
        (Some(b), None) if b > 0 => b,
        (_, Some(a)) => a,
        _ => mid,
    };
    let (a, b) = text.split_at(cut);
    let (a, b) = (a.trim_end(), b.trim_start());
    (!a.is_empty() && !b.is_empty()).then_some((a, b))
}

/// The length-weighted mean of two vectors after normalizing each.
fn weighted_mean(a: &[f32], wa: usize, b: &[f32], wb: usize) -> Vec<f32> {
    let norm = |v: &[f32]| {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if n > 0.0 {
            n
        } else {
            1.0
        }
    };
    let (na, nb) = (norm(a), norm(b));
    let total = (wa + wb).max(1) as f32;
    let (fa, fb) = (wa as f32 / total, wb as f32 / total);
    a.iter()
        .zip(b)
        .map(|(x, y)| fa * x / na + fb * y / nb)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_long_answers_are_recognised() {
        for (status, body, want) in [
            (
                500,
                r#"{"error":{"code":500,"message":"input (802 tokens) is too large to process. increase the physical batch size (current batch size: 512)"}}"#,
                true,
            ),
            (
                400,
                r#"{"error":{"code":400,"message":"input (802 tokens) is larger than the max context size (512 tokens). skipping","type":"exceed_context_size_error"}}"#,
                true,
            ),
            (
                400,
                "This model's maximum context length is 8192 tokens",
                true,
            ),
            (500, "out of memory", false),
            (401, "too large to process", false),
        ] {
            assert_eq!(is_too_long(status, body), want, "{status} {body}");
        }
    }

    #[test]
    fn halve_and_mean_table() {
        assert_eq!(halve("aaaa bb cccc"), Some(("aaaa bb", "cccc")));
        assert_eq!(halve("abcdef"), Some(("abc", "def")));
        assert_eq!(halve("é"), None);
        assert_eq!(halve("日本語テキ"), Some(("日本", "語テキ")));
        let m = weighted_mean(&[2.0, 0.0], 1, &[0.0, 3.0], 3);
        assert!((m[0] - 0.25).abs() < 1e-6 && (m[1] - 0.75).abs() < 1e-6);
    }

    /// An embedder that refuses inputs over 10 characters, as a model with
    /// a 10-token context would.
    struct Tiny;

    #[async_trait]
    impl Embedder for Tiny {
        fn model(&self) -> &str {
            "tiny"
        }
        async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
            if texts.iter().any(|t| t.chars().count() > 10) {
                return Err(EmbedError::TooLong {
                    url: "tiny".into(),
                    body: "too long".into(),
                });
            }
            Ok(texts.iter().map(|t| vec![t.len() as f32, 1.0]).collect())
        }
    }

    #[tokio::test]
    async fn embed_fitting_splits_what_is_refused_and_keeps_order() {
        let texts = vec![
            "short".to_string(),
            "a much longer text that needs splitting".to_string(),
            "ok".to_string(),
        ];
        let v = embed_fitting(&Tiny, &texts).await.unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0], vec![5.0, 1.0]);
        assert_eq!(v[2], vec![2.0, 1.0]);
        assert!(v[1].iter().all(|x| x.is_finite()));
        // 2000 characters without a space, split 6 times, are still 31 a piece: an error.
        let err = embed_fitting(&Tiny, &["x".repeat(2000)]).await.unwrap_err();
        assert!(matches!(err, EmbedError::TooLong { .. }), "{err}");
    }
}
