//! Upstream backends: their replicas, credentials, HTTP client and deadlines.
//!
//! Kind `openai` forwards the client's JSON with only `model` rewritten;
//! kind `anthropic` translates to and from the Messages API
//! ([`anthropic`]). A `/v1/responses` request to a backend without the
//! Responses API is translated to chat completions ([`responses`]).

pub mod anthropic;
pub mod responses;
pub mod transport;

use crate::balance::{self, Replica};
use crate::config::{BackendConfig, BackendKind, Locality};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};
use hwc_ai_core::secret::{read_secret, Secret, SecretError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use transport::{Transport, TransportError, UpstreamResponse};

/// A configured backend, ready to send requests.
#[derive(Debug)]
pub struct Backend {
    /// Its `[[backends]]` entry.
    pub config: BackendConfig,
    /// Its servers.
    pub replicas: Vec<Arc<Replica>>,
    /// HTTP client with this backend's connect deadline.
    pub transport: Transport,
    /// Each replica's endpoint URLs, parsed once (parsing a URL per request
    /// showed in the profile); same order as `replicas`.
    endpoints: Vec<Vec<(&'static str, Uri)>>,
    /// The headers every request to this backend carries: content type,
    /// credentials (the key from `api_key_file`, marked sensitive), API
    /// version; built once.
    headers: HeaderMap,
}

/// Every path [`Backend::send`] is asked for.
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
        let transport = Transport::new(&config.urls, config.connect_timeout).map_err(|source| {
            BackendError::Client {
                backend: config.name.clone(),
                source,
            }
        })?;
        if transport.is_proxied() {
            tracing::info!(backend = %config.name, "an HTTP proxy from the environment applies; requests go through it");
        }
        let replicas: Vec<Arc<Replica>> = config
            .urls
            .iter()
            .map(|u| Arc::new(Replica::new(u.as_str())))
            .collect();
        // A URL that does not parse is left out here; `send` then reports
        // it on the attempt.
        let endpoints = replicas
            .iter()
            .map(|r| {
                ENDPOINT_PATHS
                    .iter()
                    .filter_map(|p| {
                        format!("{}/{p}", r.url)
                            .parse::<Uri>()
                            .ok()
                            .map(|u| (*p, u))
                    })
                    .collect()
            })
            .collect();
        let headers = fixed_headers(config.kind, api_key.as_ref()).map_err(|()| {
            BackendError::Secret {
                backend: config.name.clone(),
                source: SecretError {
                    path: config.api_key_file.clone().unwrap_or_default(),
                    reason: "the key has characters an HTTP header cannot carry (a line break or a control character?)".into(),
                },
            }
        })?;
        Ok(Self {
            config,
            replicas,
            transport,
            endpoints,
            headers,
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

    /// POSTs `body` to `path` under a replica, with this backend's
    /// credentials and `extra` headers (request id, trace context).
    pub async fn send(
        &self,
        replica: &Replica,
        path: &str,
        extra: HeaderMap,
        body: Vec<u8>,
    ) -> Result<UpstreamResponse, TransportError> {
        let path = match self.kind() {
            BackendKind::Openai => path,
            BackendKind::Anthropic => "messages",
        };
        let uri = self
            .replicas
            .iter()
            .position(|r| std::ptr::eq(&**r, replica))
            .and_then(|i| self.endpoints.get(i))
            .and_then(|urls| urls.iter().find(|(p, _)| *p == path))
            .map(|(_, u)| u.clone());
        let uri = match uri {
            Some(u) => u,
            None => format!("{}/{path}", replica.url)
                .parse::<Uri>()
                .map_err(TransportError::invalid_url)?,
        };
        let mut headers = self.headers.clone();
        headers.extend(extra);
        self.transport.post(uri, headers, body).await
    }
}

/// The headers a backend of `kind` gets on every request; `Err` when the
/// key cannot be a header value.
fn fixed_headers(kind: BackendKind, key: Option<&Secret>) -> Result<HeaderMap, ()> {
    let mut h = HeaderMap::new();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(key) = key {
        let (name, value) = match kind {
            BackendKind::Openai => (
                axum::http::header::AUTHORIZATION,
                format!("Bearer {}", key.expose()),
            ),
            BackendKind::Anthropic => (
                HeaderName::from_static("x-api-key"),
                key.expose().to_owned(),
            ),
        };
        h.insert(name, transport::sensitive(&value).ok_or(())?);
    }
    if kind == BackendKind::Anthropic {
        h.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static("2023-06-01"),
        );
    }
    Ok(h)
}
