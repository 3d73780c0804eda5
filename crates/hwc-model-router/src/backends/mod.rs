//! Upstream backends: their replicas, credentials, HTTP client and deadlines.
//!
//! Kind `openai` forwards the client's JSON with only `model` rewritten;
//! kind `anthropic` translates to and from the Messages API
//! ([`anthropic`]). A `/v1/responses` request to a backend without the
//! Responses API is translated to chat completions ([`responses`]).

pub mod anthropic;
pub mod responses;

use crate::balance::{self, Replica};
use crate::config::{BackendConfig, BackendKind, Locality};
use hwc_ai_core::secret::{read_secret, Secret, SecretError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A configured backend, ready to send requests.
#[derive(Debug)]
pub struct Backend {
    /// Its `[[backends]]` entry.
    pub config: BackendConfig,
    /// Its servers.
    pub replicas: Vec<Arc<Replica>>,
    /// Upstream API key, if the backend needs one.
    pub api_key: Option<Secret>,
    /// HTTP client with this backend's connect deadline.
    pub client: reqwest::Client,
    /// Each replica's endpoint URLs, parsed once (parsing a URL per request
    /// showed in the profile); same order as `replicas`.
    endpoints: Vec<Vec<(&'static str, reqwest::Url)>>,
}

/// Every path [`Backend::post`] is asked for.
const ENDPOINT_PATHS: [&str; 5] = [
    "chat/completions",
    "completions",
    "embeddings",
    "responses",
    "messages",
];

/// Why a backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The API key file is unusable.
    #[error("backend `{backend}`: {source}")]
    Secret {
        /// Backend name.
        backend: String,
        /// Underlying error.
        source: SecretError,
    },
    /// The HTTP client could not be built.
    #[error("backend `{backend}`: cannot build HTTP client: {source}")]
    Client {
        /// Backend name.
        backend: String,
        /// Underlying error.
        source: reqwest::Error,
    },
}

impl Backend {
    /// Builds a backend from its config, reading its key file.
    pub fn new(config: BackendConfig) -> Result<Self, BackendError> {
        let api_key = config
            .api_key_file
            .as_deref()
            .map(read_secret)
            .transpose()
            .map_err(|source| BackendError::Secret {
                backend: config.name.clone(),
                source,
            })?;
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .map_err(|source| BackendError::Client {
                backend: config.name.clone(),
                source,
            })?;
        let replicas: Vec<Arc<Replica>> = config
            .urls
            .iter()
            .map(|u| Arc::new(Replica::new(u.as_str())))
            .collect();
        // A URL that does not parse is left out here; `post` then sends
        // the text and reqwest reports it on the attempt.
        let endpoints = replicas
            .iter()
            .map(|r| {
                ENDPOINT_PATHS
                    .iter()
                    .filter_map(|p| {
                        reqwest::Url::parse(&format!("{}/{p}", r.url))
                            .ok()
                            .map(|u| (*p, u))
                    })
                    .collect()
            })
            .collect();
        Ok(Self {
            config,
            replicas,
            api_key,
            client,
            endpoints,
        })
    }

    /// Name, for logs and labels.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Whether the backend may serve local-only requests.
    pub fn is_local(&self) -> bool {
        self.config.locality == Locality::Local
    }

    /// Protocol.
    pub fn kind(&self) -> BackendKind {
        self.config.kind
    }

    /// A replica to send to, skipping cooling ones and those already tried.
    pub fn pick(&self, tried: &[usize], now: Instant) -> Option<Arc<Replica>> {
        balance::pick(&self.replicas, self.config.balance, tried, now)
    }

    /// Shortest remaining cooldown when every replica is cooling.
    pub fn cooling_left(&self, now: Instant) -> Option<Duration> {
        self.replicas
            .iter()
            .map(|r| r.cooling_left(now))
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().min())
    }

    /// True while some replica is in rotation.
    pub fn is_up(&self, now: Instant) -> bool {
        self.cooling_left(now).is_none()
    }

    /// A POST to `path` under a replica, with this backend's credentials.
    pub fn post(&self, replica: &Replica, path: &str) -> reqwest::RequestBuilder {
        let path = match self.kind() {
            BackendKind::Openai => path,
            BackendKind::Anthropic => "messages",
        };
        let parsed = self
            .replicas
            .iter()
            .position(|r| std::ptr::eq(&**r, replica))
            .and_then(|i| self.endpoints.get(i))
            .and_then(|urls| urls.iter().find(|(p, _)| *p == path))
            .map(|(_, u)| u.clone());
        let mut req = match parsed {
            Some(url) => self.client.post(url),
            None => self.client.post(format!("{}/{path}", replica.url)),
        };
        req = req.header("content-type", "application/json");
        if let Some(key) = &self.api_key {
            req = match self.kind() {
                BackendKind::Openai => req.bearer_auth(key.expose()),
                BackendKind::Anthropic => req.header("x-api-key", key.expose()),
            };
        }
        if self.kind() == BackendKind::Anthropic {
            req = req.header("anthropic-version", "2023-06-01");
        }
        req
    }
}
