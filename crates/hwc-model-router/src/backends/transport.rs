//! The HTTP client that carries requests to a backend.
//!
//! A backend is reached with hyper-util's pooled client directly (HTTP/1.1
//! and HTTP/2 over rustls with the webpki roots, `TCP_NODELAY`, the
//! backend's connect deadline). reqwest, which the router used before, cost
//! about 39k instructions per request here, and most of it was machinery
//! the router never uses: two URL parses per request for its redirect
//! policy, and its retry and redirect layers (docs/benchmarks.md).
//!
//! Each thread that sends to a backend has a client, and so a connection
//! pool, of its own: on the router's serving threads (one single-threaded
//! runtime each, `server.runtimes`) a connection's task then runs on the
//! thread whose requests use it, and no answer is handed across threads.
//!
//! A backend whose URLs an HTTP proxy in the environment applies to
//! (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, less `NO_PROXY`, read once at
//! start) still goes through reqwest, which speaks to proxies. Either way
//! the caller gets the same [`UpstreamResponse`] and [`TransportError`].

use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use bytes::Bytes;
use futures_util::Stream;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyDataStream, BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

/// An error from a response body, whichever client read it.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// The connector every direct client of a backend is built with.
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// hyper-util's pooled client, one per thread that sends.
#[derive(Debug)]
pub struct PerThread {
    connector: Connector,
    clients: thread_local::ThreadLocal<Client<Connector, Full<Bytes>>>,
}

impl PerThread {
    /// This thread's client, built on first use.
    fn client(&self) -> &Client<Connector, Full<Bytes>> {
        self.clients.get_or(|| {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(POOL_IDLE)
                .pool_timer(TokioTimer::new())
                .build(self.connector.clone())
        })
    }
}

/// A client for one backend.
#[derive(Debug)]
pub enum Transport {
    /// hyper-util directly: no proxy applies to the backend's URLs.
    Direct(Box<PerThread>),
    /// Through reqwest, because an HTTP proxy applies.
    Proxied(reqwest::Client),
}

/// Why a request got no response head: the client's own error, shown as
/// itself (its `source` chain is the client error's).
#[derive(Debug)]
pub struct TransportError {
    connect: bool,
    timeout: bool,
    source: BodyError,
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

impl TransportError {
    /// No connection could be made (refused, unreachable, connect deadline).
    pub fn is_connect(&self) -> bool {
        self.connect
    }

    /// A deadline inside the client passed.
    pub fn is_timeout(&self) -> bool {
        self.timeout
    }

    /// A replica URL that is not a valid URI (config validation should
    /// have caught it).
    pub fn invalid_url(e: axum::http::uri::InvalidUri) -> Self {
        Self {
            connect: true,
            timeout: false,
            source: Box::new(e),
        }
    }
}

/// A backend's response head, with its body still to read.
#[derive(Debug)]
pub struct UpstreamResponse(axum::http::Response<BoxBody<Bytes, BodyError>>);

impl UpstreamResponse {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.0.status()
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        self.0.headers()
    }

    /// The whole body.
    pub async fn bytes(self) -> Result<Bytes, BodyError> {
        Ok(self.0.into_body().collect().await?.to_bytes())
    }

    /// The body as it arrives.
    pub fn bytes_stream(self) -> impl Stream<Item = Result<Bytes, BodyError>> + Send {
        BodyDataStream::new(self.0.into_body())
    }
}

impl Transport {
    /// The client for a backend with these base URLs, given the proxy
    /// settings of the environment.
    pub fn new(urls: &[String], connect_timeout: Duration) -> Result<Self, reqwest::Error> {
        Self::with_proxies(urls, connect_timeout, &Matcher::from_env())
    }

    /// [`Transport::new`] with these proxy settings.
    pub fn with_proxies(
        urls: &[String],
        connect_timeout: Duration,
        proxies: &Matcher,
    ) -> Result<Self, reqwest::Error> {
        let proxied = urls.iter().any(|u| {
            u.parse::<Uri>()
                .is_ok_and(|uri| proxies.intercept(&uri).is_some())
        });
        if proxied {
            let client = reqwest::Client::builder()
                .connect_timeout(connect_timeout)
                .pool_idle_timeout(POOL_IDLE)
                .tcp_nodelay(true)
                .build()?;
            return Ok(Self::Proxied(client));
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        Ok(Self::Direct(Box::new(PerThread {
            connector,
            clients: thread_local::ThreadLocal::new(),
        })))
    }

    /// Whether requests go through an HTTP proxy (logged at start).
    pub fn is_proxied(&self) -> bool {
        matches!(self, Self::Proxied(_))
    }

    /// POSTs `body` to `uri` with `headers`.
    pub async fn post(
        &self,
        uri: Uri,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<UpstreamResponse, TransportError> {
        match self {
            Self::Direct(clients) => {
                let mut req = Request::new(Full::new(Bytes::from(body)));
                *req.method_mut() = Method::POST;
                *req.uri_mut() = uri;
                *req.headers_mut() = headers;
                let resp = clients
                    .client()
                    .request(req)
                    .await
                    .map_err(|e| TransportError {
                        connect: e.is_connect(),
                        timeout: false,
                        source: Box::new(e),
                    })?;
                Ok(UpstreamResponse(
                    resp.map(|b| b.map_err(BodyError::from).boxed()),
                ))
            }
            Self::Proxied(client) => {
                let resp = client
                    .post(uri.to_string())
                    .headers(headers)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| TransportError {
                        connect: e.is_connect(),
                        timeout: e.is_timeout(),
                        source: Box::new(e),
                    })?;
                let resp: axum::http::Response<reqwest::Body> = resp.into();
                Ok(UpstreamResponse(
                    resp.map(|b| b.map_err(BodyError::from).boxed()),
                ))
            }
        }
    }
}

/// `value` as a header value marked sensitive (kept out of debug output),
/// or `None` if it has bytes a header cannot carry.
pub fn sensitive(value: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(value).ok()?;
    v.set_sensitive(true);
    Some(v)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn transport(urls: &[&str], proxies: Matcher) -> Transport {
        let urls: Vec<String> = urls.iter().map(|u| (*u).to_owned()).collect();
        Transport::with_proxies(&urls, Duration::from_secs(1), &proxies).unwrap()
    }

    #[test]
    fn a_proxy_that_applies_sends_the_backend_through_reqwest() {
        let corporate = || Matcher::builder().all("http://proxy.internal:3128").build();
        assert!(transport(&["https://api.example.com/v1"], corporate()).is_proxied());
        // One proxied replica is enough: all of a backend's go one way.
        assert!(transport(
            &["http://10.0.0.5:8000/v1", "https://api.example.com/v1"],
            corporate()
        )
        .is_proxied());
        let except_lan = Matcher::builder()
            .all("http://proxy.internal:3128")
            .no("10.0.0.0/8,localhost")
            .build();
        assert!(!transport(&["http://10.0.0.5:8000/v1"], except_lan).is_proxied());
        assert!(!transport(&["http://127.0.0.1:8080/v1"], Matcher::builder().build()).is_proxied());
    }
}
