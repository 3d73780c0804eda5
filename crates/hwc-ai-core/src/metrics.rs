//! Prometheus metrics in OpenMetrics text, with the HTTP metrics every daemon
//! exports the same way.
//!
//! A daemon builds its [`Registry`] with [`registry`] (prefix
//! `hwc_<daemon>`), registers its own metrics, and hands the registry to
//! [`crate::server::serve`], which adds the HTTP ones and serves `/metrics`.

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::time::Instant;

/// Content type of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A registry whose metric names start with `hwc_<daemon>_`.
pub fn registry(daemon: &str) -> Registry {
    Registry::with_prefix(format!("hwc_{daemon}"))
}

/// Latency buckets from 0.5 ms to about 65 s, for anything from a routing
/// decision to a long generation.
pub fn latency_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0005, 2.0, 18,
    ))
}

/// Labels of an HTTP request counter: low cardinality by construction
/// (the route template, never the raw path).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// HTTP method.
    pub method: String,
    /// Matched route template, or `unmatched`.
    pub route: String,
    /// Response status code.
    pub status: u16,
}

/// Labels of the HTTP latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Matched route template, or `unmatched`.
    pub route: String,
}

/// The HTTP metrics every daemon exports.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<HttpLabels, Counter>,
    duration: Family<RouteLabels, Histogram>,
    in_flight: Gauge,
    shed: Counter,
}

impl HttpMetrics {
    /// Registers the HTTP metrics in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            in_flight: Gauge::default(),
            shed: Counter::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            m.requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time to the response head, by route",
            Unit::Seconds,
            m.duration.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "Requests being handled now",
            m.in_flight.clone(),
        );
        registry.register(
            "http_shed",
            "Requests refused with 503 because the concurrency limit was reached",
            m.shed.clone(),
        );
        m
    }

    /// Counts a request shed by the concurrency limit.
    pub fn record_shed(&self) {
        self.shed.inc();
    }
}

/// axum middleware recording [`HttpMetrics`] for each request.
pub async fn track_http(State(m): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let start = Instant::now();
    m.in_flight.inc();
    let resp = next.run(req).await;
    m.in_flight.dec();
    m.duration
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(start.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&HttpLabels {
            method,
            route,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// The `/metrics` handler.
pub async fn serve_metrics(State(registry): State<Arc<Registry>>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &registry) {
        Ok(()) => ([(CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response(),
        Err(e) => crate::ApiError::internal(format!("cannot encode metrics: {e}")).into_response(),
    }
}
