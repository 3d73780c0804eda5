//! Prometheus metrics in OpenMetrics text, with the HTTP metrics every daemon
//! exports the same way.
//!
//! A daemon builds its [`Registry`] with [`registry`] (prefix
//! `hwc_<daemon>`), registers its own metrics, and hands the registry to
//! [`crate::server::app`], which adds the HTTP ones and serves `/metrics`.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;

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

    /// Counts a request as in flight until the guard is dropped, answered
    /// or abandoned (a client that hangs up before the head drops it too).
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Records an answered request: its count by method, route template
    /// (`unmatched` for none) and status, and its time to the head.
    pub fn record(
        &self,
        method: &axum::http::Method,
        route: Option<&str>,
        status: u16,
        elapsed: std::time::Duration,
    ) {
        let route = route.unwrap_or("unmatched");
        self.duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
        self.requests
            .get_or_create(&HttpLabels {
                method: method.as_str().to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
    }
}

/// A request counted in `http_requests_in_flight` while this lives.
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Content type of the classic Prometheus text format.
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `/metrics` handler. Prometheus asks for OpenMetrics in its `Accept`
/// header and gets it; other clients (curl, `promtool check metrics`) get
/// the classic text format, which they parse without surprises.
pub async fn serve_metrics(
    State(registry): State<Arc<Registry>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &registry) {
        return crate::ApiError::internal(format!("cannot encode metrics: {e}")).into_response();
    }
    let wants_openmetrics = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    if wants_openmetrics {
        ([(CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response()
    } else {
        (
            [(CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE)],
            openmetrics_to_prometheus_text(&body),
        )
            .into_response()
    }
}

/// OpenMetrics text to the classic format: counter families take their
/// `_total` name in `HELP`/`TYPE`, and `UNIT`/`EOF` lines go.
pub fn openmetrics_to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line.starts_with("# HELP ") {
            if let Some(h) = help.take() {
                out.push_str(h);
                out.push('\n');
            }
            help = Some(line);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.splitn(2, ' ');
            let name = parts.next().unwrap_or("");
            let kind = parts.next().unwrap_or("");
            let suffix = if kind == "counter" && !name.ends_with("_total") {
                "_total"
            } else {
                ""
            };
            if let Some(h) = help.take() {
                let text = h
                    .strip_prefix("# HELP ")
                    .and_then(|r| r.split_once(' '))
                    .map_or("", |(_, t)| t);
                out.push_str(&format!("# HELP {name}{suffix} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name}{suffix} {kind}\n"));
            continue;
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        if let Some(h) = help.take() {
            out.push_str(h);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_take_their_total_name_in_classic_text() {
        let om = "# HELP x_requests Requests.\n# TYPE x_requests counter\nx_requests_total{a=\"b\"} 1\n\
                  # HELP x_seconds Time.\n# TYPE x_seconds histogram\n# UNIT x_seconds seconds\nx_seconds_count 1\n# EOF\n";
        assert_eq!(
            openmetrics_to_prometheus_text(om),
            "# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\nx_requests_total{a=\"b\"} 1\n\
             # HELP x_seconds Time.\n# TYPE x_seconds histogram\nx_seconds_count 1\n"
        );
    }
}
