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
