//! The HTTP spans: one server span per API request, and the status and
//! error fields every HTTP span (server or client) records.

use super::context::extract;
use super::SPAN_TARGET;
use axum::extract::MatchedPath;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::Context;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Records a response status on a span opened with
/// `http.response.status_code`, `otel.status_code` and `error.type` fields
/// (as [`server_span`]'s and the router's client spans are): a client span
/// is an error from 400 up, a server span from 500 up (OTel HTTP semantic
/// conventions).
pub fn record_status(span: &tracing::Span, status: u16, kind: SpanKind) {
    span.record("http.response.status_code", i64::from(status));
    let threshold = if kind == SpanKind::Server { 500 } else { 400 };
    if status >= threshold {
        span.record("otel.status_code", "error");
        span.record("error.type", status.to_string().as_str());
    }
}

/// Marks a client span failed without a response (`timeout`, `connect`...).
pub fn record_error(span: &tracing::Span, error_type: &str) {
    span.record("otel.status_code", "error");
    span.record("error.type", error_type);
}

/// The method as the semantic conventions want it: the known ones as they
/// are, anything else `_OTHER` (a client must not mint span names).
fn semconv_method(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::CONNECT => "CONNECT",
        http::Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// Opens the server span of one request, named `METHOD route`
/// (`POST /v1/chat/completions`) with `http.request.method`, `http.route`,
/// `hwc.request_id` and, once [`record_status`] is called with the answer,
/// `http.response.status_code`; the caller's `traceparent` is its parent.
/// No URL query, header value or body is read. The span stays open as long
/// as a clone of it is kept (the router keeps one for a stream's lifetime).
/// [`crate::server::app`] opens one for every API request. While spans are
/// not recorded ([`super::recording`]) it is [`tracing::Span::none`].
pub fn server_span<B>(req: &http::Request<B>) -> tracing::Span {
    if !super::recording() {
        return tracing::Span::none();
    }
    let method = semconv_method(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let name = match route {
        Some(r) => format!("{method} {r}"),
        None => method.to_owned(),
    };
    let request_id = req
        .headers()
        .get(crate::edge::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let request_id = match request_id.char_indices().nth(128) {
        Some((end, _)) => &request_id[..end],
        None => request_id,
    };
    let span = tracing::info_span!(
        target: SPAN_TARGET,
        "http.server",
        otel.name = %name,
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        hwc.request_id = %request_id,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    if let Some(parent) = extract(req.headers()) {
        // Fails only when no OTel layer is installed, which leaves the
        // span a plain tracing span: nothing to do about it here.
        let _ = span.set_parent(Context::new().with_remote_span_context(parent));
    }
    span
}
