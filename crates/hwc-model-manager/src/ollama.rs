//! Ollama: pulls and deletes through `ollama-rs`; the calls it lacks
//! (`/api/tags` with digests, `/api/ps`, `/api/version`) and the verify
//! generation over plain HTTP.

use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// A failure, classified: a permanent one is reported once and not retried.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct OllamaError {
    /// What went wrong, for a person.
    pub message: String,
    /// No retry can fix it (model not found, needs a newer Ollama, digest mismatch).
    pub permanent: bool,
}

impl OllamaError {
    fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }

    /// Classifies a message from Ollama by what it says.
    pub fn classify(message: impl Into<String>) -> Self {
        let message = message.into();
        let lower = message.to_ascii_lowercase();
        let permanent = lower.contains("412")
            || lower.contains("newer version of ollama")
            || lower.contains("file does not exist")
            || lower.contains("not found")
            || lower.contains("invalid model name")
            || lower.contains("unauthorized");
        Self { message, permanent }
    }
}

/// Progress of a pull, as Ollama reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PullProgress {
    /// Bytes of the current layer done.
    pub completed: u64,
    /// Bytes of the current layer.
    pub total: u64,
}

/// The Ollama server.
pub struct Ollama {
    base: String,
    http: reqwest::Client,
    rs: ollama_rs::Ollama,
}

#[derive(Deserialize)]
struct Tags {
    #[serde(default)]
    models: Vec<Tag>,
}

#[derive(Deserialize)]
struct Tag {
    name: String,
    #[serde(default)]
    digest: String,
    #[serde(default)]
    size: u64,
}

/// A model Ollama has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Present {
    /// Manifest digest (hex).
    pub digest: String,
    /// Bytes on disk.
    pub size: u64,
}

impl Ollama {
    /// A client for the server at `base` (`http://127.0.0.1:11434`).
    pub fn new(base: &str) -> Result<Self, OllamaError> {
        let url = reqwest::Url::parse(base)
            .map_err(|e| OllamaError::classify(format!("ollama.url: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| OllamaError::transient(e.to_string()))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            rs: ollama_rs::Ollama::from_url(url),
            http,
        })
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T, OllamaError> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .get(&url)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| OllamaError::transient(format!("cannot reach Ollama at {url}: {e}")))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| OllamaError::transient(e.to_string()))?;
        if !status.is_success() {
            return Err(OllamaError::transient(format!(
                "{url} answered {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        serde_json::from_slice(&body).map_err(|e| {
            OllamaError::transient(format!("{url} answered with unexpected JSON: {e}"))
        })
    }

    /// Ollama's version (`/api/version`).
    pub async fn version(&self) -> Result<String, OllamaError> {
        #[derive(Deserialize)]
        struct V {
            version: String,
        }
        Ok(self.get_json::<V>("/api/version").await?.version)
    }

    /// Models present, by canonical name (`/api/tags`).
    pub async fn present(&self) -> Result<BTreeMap<String, Present>, OllamaError> {
        let tags: Tags = self.get_json("/api/tags").await?;
        Ok(tags
            .models
            .into_iter()
            .map(|t| {
                (
                    crate::config::canonical(&t.name),
                    Present {
                        digest: t.digest.trim_start_matches("sha256:").to_ascii_lowercase(),
                        size: t.size,
                    },
                )
            })
            .collect())
    }

    /// Models loaded now (`/api/ps`).
    pub async fn loaded(&self) -> Result<Vec<String>, OllamaError> {
        let tags: Tags = self.get_json("/api/ps").await?;
        Ok(tags
            .models
            .into_iter()
            .map(|t| crate::config::canonical(&t.name))
            .collect())
    }

    /// Pulls `name`, calling `progress` for each update. Returns when Ollama
    /// says `success`; an error line or a cut stream is an error.
    pub async fn pull(
        &self,
        name: &str,
        mut progress: impl FnMut(&str, PullProgress),
    ) -> Result<(), OllamaError> {
        let mut stream = self
            .rs
            .pull_model_stream(name.to_string(), false)
            .await
            .map_err(|e| from_rs(name, e))?;
        let mut success = false;
        while let Some(item) = stream.next().await {
            let status = item.map_err(|e| from_rs(name, e))?;
            progress(
                &status.message,
                PullProgress {
                    completed: status.completed.unwrap_or(0),
                    total: status.total.unwrap_or(0),
                },
            );
            if status.message == "success" {
                success = true;
            }
        }
        if success {
            Ok(())
        } else {
            Err(OllamaError::transient(format!(
                "the pull of {name} ended before Ollama said success"
            )))
        }
    }

    /// Deletes `name` (exact name).
    pub async fn delete(&self, name: &str) -> Result<(), OllamaError> {
        self.rs
            .delete_model(name.to_string())
            .await
            .map_err(|e| from_rs(name, e))
    }

    /// A one-token generation; with `keep_loaded` the model stays in memory.
    pub async fn generate(
        &self,
        name: &str,
        keep_loaded: bool,
        timeout: Duration,
    ) -> Result<(), OllamaError> {
        let url = format!("{}/api/generate", self.base);
        let mut body = json!({"model": name, "prompt": "Say OK.", "stream": false, "options": {"num_predict": 1}});
        if keep_loaded {
            body["keep_alive"] = json!(-1);
        }
        let resp = self
            .http
            .post(&url)
            .json(&body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| {
                OllamaError::transient(format!("verify generation with {name} failed: {e}"))
            })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() || text.contains("\"error\"") {
            return Err(OllamaError::classify(format!(
                "verify generation with {name} failed ({status}): {text}"
            )));
        }
        Ok(())
    }
}

fn from_rs(name: &str, e: ollama_rs::error::OllamaError) -> OllamaError {
    use ollama_rs::error::OllamaError as E;
    match e {
        E::InternalError(i) => {
            OllamaError::classify(format!("Ollama refused {name}: {}", i.message))
        }
        E::Other(m) => OllamaError::classify(format!("Ollama refused {name}: {m}")),
        E::ReqwestError(r) => {
            OllamaError::transient(format!("cannot reach Ollama for {name}: {r}"))
        }
        other => OllamaError::transient(format!("{name}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_errors_are_recognised() {
        assert!(OllamaError::classify("pull model manifest: 412: The model you are attempting to pull requires a newer version of Ollama.").permanent);
        assert!(OllamaError::classify("pull model manifest: file does not exist").permanent);
        assert!(!OllamaError::classify("connection reset by peer").permanent);
    }
}
