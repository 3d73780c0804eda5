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
    /// showed in the profile), and its `Host`; same order as `replicas`.
    endpoints: Vec<Endpoints>,
    /// The headers every request to this backend carries: content type,
    /// credentials (the key from `api_key_file`, marked sensitive), API
    /// version; built once.
    headers: HeaderMap,
}

/// One replica's parsed endpoint URLs and `Host` header.
#[derive(Debug)]
struct Endpoints {
    urls: Vec<(&'static str, Uri)>,
    /// For a plain-HTTP replica: the `Host` hyper-util would otherwise
    /// format on every request (about 2k instructions), built once.
    /// HTTPS replicas leave it to the client, since over HTTP/2 the
    /// authority is a pseudo-header instead.
    host: Option<HeaderValue>,
}

impl Endpoints {
    fn of(base: &str) -> Self {
        let urls: Vec<(&'static str, Uri)> = ENDPOINT_PATHS
            .iter()
            .filter_map(|p| format!("{base}/{p}").parse::<Uri>().ok().map(|u| (*p, u)))
            .collect();
        let host = urls.first().and_then(|(_, u)| plain_http_host(u));
        Self { urls, host }
    }
}

/// `Host` for a plain `http://` URI as hyper-util writes it: the host, and
/// the port unless it is 80.
fn plain_http_host(uri: &Uri) -> Option<HeaderValue> {
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let host = uri.host()?;
    let value = match uri.port_u16() {
        Some(port) if port != 80 => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    HeaderValue::from_str(&value).ok()
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
        let endpoints = replicas.iter().map(|r| Endpoints::of(&r.url)).collect();
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
        let endpoints = self
            .replicas
            .iter()
            .position(|r| std::ptr::eq(&**r, replica))
            .and_then(|i| self.endpoints.get(i));
        let uri = endpoints
            .and_then(|e| e.urls.iter().find(|(p, _)| *p == path))
            .map(|(_, u)| u.clone());
        let uri = match uri {
            Some(u) => u,
            None => format!("{}/{path}", replica.url)
                .parse::<Uri>()
                .map_err(TransportError::invalid_url)?,
        };
        let mut headers = self.headers.clone();
        headers.extend(extra);
        if let Some(host) = endpoints.and_then(|e| e.host.clone()) {
            headers.insert(axum::http::header::HOST, host);
        }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn host_is_built_once_for_plain_http_only() {
        let host = |u: &str| plain_http_host(&u.parse::<Uri>().unwrap());
        let cases = [
            (
                "http://127.0.0.1:8080/v1/chat/completions",
                Some("127.0.0.1:8080"),
            ),
            ("http://llm.lan/v1/chat/completions", Some("llm.lan")),
            ("http://llm.lan:80/v1/chat/completions", Some("llm.lan")),
            (
                "http://[::1]:11434/v1/chat/completions",
                Some("[::1]:11434"),
            ),
            ("https://api.openai.com/v1/chat/completions", None),
        ];
        for (url, want) in cases {
            assert_eq!(
                host(url).as_ref().map(|v| v.to_str().unwrap()),
                want,
                "{url}"
            );
        }
        let e = Endpoints::of("http://127.0.0.1:9/v1");
        assert_eq!(e.urls.len(), ENDPOINT_PATHS.len());
        assert_eq!(e.host.unwrap(), "127.0.0.1:9");
    }
}
