//! The one layer in front of every route of a daemon: request ids, HTTP
//! metrics and, for the API, the request's log span, its server span, the
//! body, concurrency and time limits, and a log line for every failure.
//!
//! These were eight layers (tower-http's request-id and trace layers, axum
//! middleware functions, tower's load-shed, concurrency and timeout
//! layers). axum boxes each layer given to `Router::layer` once more per
//! route and each middleware function boxes its future, so every request
//! paid for eight boxed services cloned, eight boxed futures and the dynamic
//! calls between them: about a quarter of the router's instructions per
//! request (docs/benchmarks.md, "Cutting CPU per request"). One layer does
//! the same in one future. What each piece does, and in which order:
//!
//! 1. the request gets an `x-request-id` if it came without one (a prefix
//!    drawn at start and a counter, [`SequentialRequestId`]), and the answer
//!    carries the same id;
//! 2. `http_requests_in_flight` counts it until the answer's head, or until
//!    it is abandoned;
//! 3. API only: a `request` span (request id, method, path) is entered
//!    while the request is handled and while its body is sent, so every log
//!    line of the request, a stream's last ones included, names it;
//! 4. API only, inside its server span ([`crate::telemetry::server_span`],
//!    which records every answer's status; built only while traces are
//!    exported): a declared `Content-Length`
//!    over `server.max_body_bytes` is refused with 413 before the body is
//!    read (axum's body limit catches the ones that do not declare it); a
//!    request beyond `server.max_concurrency` is refused at once with 503
//!    and `Retry-After`; one whose head takes longer than
//!    `server.request_timeout` gets 504;
//! 5. an API answer of 500 or more (a shed 503 and a 504 included) is
//!    logged at ERROR (`response failed`) with its latency (a probe's 503
//!    while not ready is an answer, not a failure), and so is a body that
//!    fails while it is sent;
//! 6. `http_requests` and `http_request_duration` record it by route
//!    template.

use crate::error::ApiError;
use crate::metrics::HttpMetrics;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http_body::{Body as _, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tower::{Layer, Service};
use tracing::Instrument;

/// The header a request id travels in.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the API's limits are, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `server.max_body_bytes`.
    pub max_body_bytes: usize,
    /// `server.max_concurrency`.
    pub max_concurrency: usize,
    /// `server.request_timeout`.
    pub request_timeout: Duration,
}

/// What every route's edge shares: the metrics, the id sequence and the
/// API's concurrency permits.
struct Shared {
    metrics: HttpMetrics,
    ids: SequentialRequestId,
    permits: Arc<Semaphore>,
    limits: Limits,
}

/// The layer: [`EdgeLayer::api`] for the daemon's API, [`EdgeLayer::probes`]
/// for `/healthz`, `/readyz` and `/metrics` (ids and metrics only: a trace
/// backend and the logs would only fill with the prober's polls).
#[derive(Clone)]
pub struct EdgeLayer {
    shared: Arc<Shared>,
    api: bool,
}

impl EdgeLayer {
    /// The API's edge with these limits, recording into `metrics`.
    pub fn api(metrics: HttpMetrics, limits: Limits) -> Self {
        Self {
            shared: Arc::new(Shared {
                metrics,
                ids: SequentialRequestId::new(),
                permits: Arc::new(Semaphore::new(limits.max_concurrency)),
                limits,
            }),
            api: true,
        }
    }

    /// The probes' edge: the same metrics and id sequence as the API's.
    pub fn probes(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            api: false,
        }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<<DefaultBodyLimit as Layer<S>>::Service>;

    fn layer(&self, inner: S) -> Self::Service {
        Edge {
            inner: DefaultBodyLimit::max(self.shared.limits.max_body_bytes).layer(inner),
            shared: self.shared.clone(),
            api: self.api,
        }
    }
}

/// The service [`EdgeLayer`] wraps a route in.
#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    shared: Arc<Shared>,
    api: bool,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The clone that was polled ready handles this request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        let id = match req.headers().get(&REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                let id = shared.ids.next();
                req.headers_mut().insert(REQUEST_ID, id.clone());
                id
            }
        };
        let method = req.method().clone();
        let route = req.extensions().get::<MatchedPath>().cloned();
        let api = self.api;
        Box::pin(async move {
            let started = Instant::now();
            let in_flight = shared.metrics.in_flight();
            let mut resp = if api {
                let span = tracing::info_span!(
                    "request",
                    request_id = id.to_str().unwrap_or("-"),
                    method = %method,
                    path = req.uri().path(),
                );
                let handled = handle_api(inner, req, &shared, started).instrument(span.clone());
                let resp = handled.await;
                in_span(resp, span)
            } else {
                handle(inner, req).await
            };
            drop(in_flight);
            shared.metrics.record(
                &method,
                route.as_ref().map(MatchedPath::as_str),
                resp.status().as_u16(),
                started.elapsed(),
            );
            resp.headers_mut().entry(REQUEST_ID).or_insert(id);
            Ok(resp)
        })
    }
}

/// Calls `inner`, whose error is `Infallible`.
async fn handle<S>(inner: S, req: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    use tower::ServiceExt;
    match inner.oneshot(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

/// An API request inside its server span, through the limits; called
/// inside the request's log span. Every answer's status is recorded on the
/// server span, and every 5xx (a shed 503 and a 504 too) is logged.
async fn handle_api<S>(inner: S, req: Request, shared: &Shared, started: Instant) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let span = crate::telemetry::server_span(&req);
    let resp = limited(inner, req, shared).instrument(span.clone()).await;
    let status = resp.status();
    crate::telemetry::record_status(
        &span,
        status.as_u16(),
        opentelemetry::trace::SpanKind::Server,
    );
    if status.is_server_error() {
        tracing::error!(
            status = status.as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "response failed"
        );
    }
    resp
}

/// The body, concurrency and time limits around the handler.
async fn limited<S>(inner: S, req: Request, shared: &Shared) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let limits = &shared.limits;
    if declared_length(&req).is_some_and(|len| len > limits.max_body_bytes as u64) {
        return crate::server::body_too_large(limits.max_body_bytes).into_response();
    }
    let Ok(_permit) = shared.permits.clone().try_acquire_owned() else {
        shared.metrics.record_shed();
        return ApiError::unavailable(
            "overloaded",
            "the daemon is at its concurrency limit (server.max_concurrency); retry after the Retry-After delay",
            Duration::from_secs(1),
        )
        .into_response();
    };
    match tokio::time::timeout(limits.request_timeout, handle(inner, req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "server_error",
            "request_timeout",
            format!(
                "the request took longer than server.request_timeout ({}s) to answer",
                limits.request_timeout.as_secs_f64()
            ),
        )
        .into_response(),
    }
}

/// The `Content-Length` a request declares, if it declares a valid one.
fn declared_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// `resp` with its body sent inside `span`, when the body is more than one
/// chunk known in advance (a stream, whose last log lines then name the
/// request).
fn in_span(resp: Response, span: tracing::Span) -> Response {
    if resp.body().size_hint().exact().is_some() {
        return resp;
    }
    resp.map(|body| Body::new(InSpan { body, span }))
}

/// A body polled inside a span, logging an error it fails with.
struct InSpan {
    body: Body,
    span: tracing::Span,
}

impl http_body::Body for InSpan {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, axum::Error>>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(Some(Err(e))) = &frame {
            tracing::error!(error = %e, "response failed while its body was sent");
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Request ids unique per process start and cheap to make: a random
/// prefix drawn once and a counter (a UUID per request costs a
/// `getrandom` syscall each time).
#[derive(Clone)]
pub struct SequentialRequestId {
    prefix: u32,
    next: Arc<AtomicU64>,
}

impl SequentialRequestId {
    /// A new sequence with a prefix from the clock and process id.
    pub fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Self {
            prefix: nanos ^ std::process::id().rotate_left(16),
            next: Arc::new(AtomicU64::new(1)),
        }
    }

    /// The next id, `prefix-counter` in hex.
    pub fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut text = String::with_capacity(24);
        use std::fmt::Write;
        let _ = write!(text, "{:08x}-{n:x}", self.prefix);
        HeaderValue::try_from(text).unwrap_or(HeaderValue::from_static("-"))
    }
}

impl Default for SequentialRequestId {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_share_a_prefix_and_count_up() {
        let ids = SequentialRequestId::new();
        let a = ids.next();
        let b = ids.next();
        let (pa, na) = a.to_str().unwrap().split_once('-').unwrap();
        let (pb, nb) = b.to_str().unwrap().split_once('-').unwrap();
        assert_eq!(pa, pb);
        assert_eq!(pa.len(), 8);
        assert_eq!(
            u64::from_str_radix(nb, 16).unwrap(),
            u64::from_str_radix(na, 16).unwrap() + 1
        );
    }
}
