//! Traces across the fleet: W3C Trace Context accepted on every request and
//! passed on to the next hop, spans through `tracing`, and an optional
//! OTLP/HTTP exporter (off by default) configured by `[telemetry]`.
//!
//! How the pieces fit:
//! - [`layer`] is part of the subscriber [`crate::logging::init`] installs.
//!   It turns only spans whose target is [`SPAN_TARGET`] into OpenTelemetry
//!   spans. Events (log lines) never become span events, so nothing a log
//!   line carries (an upstream's error excerpt, say) reaches a trace backend.
//! - [`server_span`], in every daemon's [`crate::server::app`], opens one
//!   server span per API request while spans are recorded, the child of
//!   the caller's `traceparent` when it sent one.
//! - [`inject`] and [`inject_reqwest`] put a span's context into an outgoing
//!   request (the router does so for every local backend), or while spans
//!   are not recorded one minted under the request's [`request_context`].
//! - [`start`], called by [`crate::server::serve_on`], installs the exporter
//!   when `telemetry.otlp_endpoint` is set; [`Telemetry::shutdown`] flushes
//!   it within a bound on drain.
//!
//! Propagation never depends on export. With export off no OpenTelemetry
//! span is built at all ([`recording`]; they cost a fifth of the router's
//! work per request), and a request that arrived with a `traceparent` still
//! reaches the next hop with the same trace id and a span id of this hop's
//! as parent; one that arrived without gets a fresh trace, sampled per
//! `sample_ratio`, so a backend that traces on its own still sees one trace
//! per request.
//!
//! What goes into a span is metadata only: method, route, status, request
//! id, backend and model names. Never a body, a prompt, a completion, a tool
//! output, a query string or a header value (`Authorization` least of all).
//! docs/adr/0006-traces.md has the reasons.
//!
//! One file per job, everything re-exported here:
//! - `config`: the `[telemetry]` section ([`TelemetryConfig`]) and its
//!   validation.
//! - `context`: W3C Trace Context, parsing, extracting and injecting
//!   ([`parse_traceparent`], [`extract`], [`inject`]).
//! - `span`: the HTTP spans' shape ([`server_span`], [`record_status`]).
//! - `export`: the process-wide tracer, its sampler and the OTLP exporter
//!   ([`layer`], [`start`]).

mod config;
mod context;
mod export;
mod span;

pub use config::{TelemetryConfig, TelemetryError};
pub use context::{
    extract, format_traceparent, inject, inject_reqwest, inject_span_context, parse_traceparent,
    request_context, span_context,
};
pub use export::{export_to, is_trace_only, layer, recording, start, Telemetry};
pub use span::{record_error, record_status, server_span};

/// The `tracing` target of spans that are exported. Only spans created with
/// `target: SPAN_TARGET` become OpenTelemetry spans, so a span is exported
/// only where someone decided its fields are fit to leave the host; the log
/// output leaves these spans out (their fields would only repeat the
/// request span's).
pub const SPAN_TARGET: &str = "hwc_trace";

/// The W3C header naming the caller's trace and span.
pub const TRACEPARENT: &str = "traceparent";

/// The W3C header with vendors' trace data, passed on as it came.
pub const TRACESTATE: &str = "tracestate";
