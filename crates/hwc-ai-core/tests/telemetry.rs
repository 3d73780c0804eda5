//! Trace context through `server::app`, with the subscriber every daemon
//! installs (`logging::init`): the server span continues the caller's
//! `traceparent`, a handler's outgoing `traceparent` names that span as
//! parent, and what is exported holds no body, query string or header
//! value. The spans are collected by an in-process `SpanExporter` (the
//! router's tests send them to a real OTLP receiver). Without an exporter
//! no span is built, and the outgoing `traceparent` is the same but for
//! its minted span id.
#![allow(clippy::unwrap_used, missing_docs)]

use axum::body::Body;
use axum::http::{HeaderMap, Request};
use axum::routing::post;
use axum::Router;
use hwc_ai_core::server::{app, Daemon, ServerConfig};
use hwc_ai_core::telemetry;
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Mutex as AsyncMutex;
use tower::ServiceExt;

/// Whether an exporter is installed is process-wide: the tests that
/// depend on it take turns.
static EXPORTER: AsyncMutex<()> = AsyncMutex::const_new(());

#[derive(Debug, Clone, Default)]
struct Collect(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collect {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const SECRET_PROMPT: &str = "zebra-quartz-prompt-7731";
const SECRET_KEY: &str = "sk-never-in-a-span-4242";
const SECRET_QUERY: &str = "token-in-query-9090";

/// Echoes the `traceparent` it would send to its own peer.
fn api() -> Router {
    Router::new().route(
        "/v1/echo",
        post(|headers: HeaderMap, body: String| async move {
            let mut out = HeaderMap::new();
            let trace = telemetry::request_context(&headers);
            telemetry::inject(&tracing::Span::current(), trace.as_ref(), &mut out);
            let tp = out
                .get(telemetry::TRACEPARENT)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            format!("{tp}\n{}", body.len())
        }),
    )
}

async fn call(router: Router, traceparent: Option<&str>) -> (u16, String) {
    let mut req = Request::post(format!("/v1/echo?key={SECRET_QUERY}"))
        .header("authorization", format!("Bearer {SECRET_KEY}"))
        .header("x-api-key", SECRET_KEY)
        .header("tracestate", "vendor=opaque");
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    let resp = router
        .oneshot(
            req.body(Body::from(format!("{{\"prompt\":\"{SECRET_PROMPT}\"}}")))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// The outgoing `traceparent`s for a sampled caller, an unsampled one and
/// none, checked the same with spans recorded or not: the parent the
/// sampled caller's request passed on, and the fresh trace's id.
async fn assert_propagates(
    router: &Router,
) -> (opentelemetry::trace::SpanId, opentelemetry::trace::TraceId) {
    // 1. With a caller: same trace, a span of ours as the next hop's parent.
    let incoming = format!("00-{TRACE}-{CALLER_SPAN}-01");
    let (status, body) = call(router.clone(), Some(&incoming)).await;
    assert_eq!(status, 200, "{body}");
    let outgoing = body.lines().next().unwrap().to_owned();
    let (trace, parent, flags) = telemetry::parse_traceparent(&outgoing)
        .unwrap_or_else(|| panic!("handler sent no valid traceparent: {outgoing:?}"));
    assert_eq!(trace.to_string(), TRACE);
    assert_ne!(
        parent.to_string(),
        CALLER_SPAN,
        "a new span must be the parent"
    );
    assert!(flags.is_sampled());

    // 2. An unsampled caller stays unsampled downstream (and unexported).
    let unsampled = format!("00-{TRACE}-{CALLER_SPAN}-00");
    let (_, body) = call(router.clone(), Some(&unsampled)).await;
    let (t, _, f) = telemetry::parse_traceparent(body.lines().next().unwrap()).unwrap();
    assert_eq!(t.to_string(), TRACE);
    assert!(!f.is_sampled());

    // 3. No caller: a fresh trace (sample_ratio defaults to 1.0).
    let (_, body) = call(router.clone(), None).await;
    let (fresh, _, f) = telemetry::parse_traceparent(body.lines().next().unwrap())
        .expect("a request without traceparent still propagates a fresh one");
    assert_ne!(fresh.to_string(), TRACE);
    assert!(f.is_sampled());
    (parent, fresh)
}

fn echo_daemon() -> Router {
    app(Daemon::new(
        "hwc-test-daemon",
        ServerConfig::on_port(0),
        api(),
    ))
}

#[tokio::test]
async fn without_an_exporter_no_span_is_built_and_the_trace_goes_on() {
    hwc_ai_core::logging::init("warn");
    let _turn = EXPORTER.lock().await;
    assert!(
        !telemetry::recording(),
        "an exporter is still installed: did the exporting test fail before its shutdown?"
    );
    let router = echo_daemon();
    let (first, _) = assert_propagates(&router).await;
    let (second, _) = assert_propagates(&router).await;
    assert_ne!(first, second, "each request passes on a span id of its own");
    // The `tracestate` goes on with the caller's trace.
    let mut out = HeaderMap::new();
    let mut incoming = HeaderMap::new();
    incoming.insert(
        "traceparent",
        format!("00-{TRACE}-{CALLER_SPAN}-01").parse().unwrap(),
    );
    incoming.insert("tracestate", "vendor=opaque".parse().unwrap());
    let caller = telemetry::extract(&incoming);
    let span = tracing::info_span!(target: telemetry::SPAN_TARGET, "http.client");
    assert!(
        span.is_disabled(),
        "spans are not built without an exporter"
    );
    assert!(telemetry::inject(&span, caller.as_ref(), &mut out));
    assert_eq!(out["tracestate"], "vendor=opaque");
    // Without a caller, the calls of one request share one minted trace.
    let root = telemetry::request_context(&HeaderMap::new());
    let sent = || {
        let mut h = HeaderMap::new();
        assert!(telemetry::inject(&span, root.as_ref(), &mut h));
        telemetry::parse_traceparent(h["traceparent"].to_str().unwrap()).unwrap()
    };
    let (a, b) = (sent(), sent());
    assert_eq!(a.0, b.0, "one trace for the request");
    assert_ne!(a.1, b.1, "a span id per call");
}

#[tokio::test]
async fn server_span_continues_the_caller_and_carries_no_content() {
    hwc_ai_core::logging::init("warn");
    let _turn = EXPORTER.lock().await;
    let collected = Collect::default();
    let export = telemetry::export_to("hwc-test-daemon", collected.clone());
    assert!(telemetry::recording());
    let router = echo_daemon();
    let (parent, fresh) = assert_propagates(&router).await;

    // 4. The health and metrics routes make no spans.
    let probe = router
        .clone()
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(probe.status(), 200);

    export.shutdown(Duration::from_secs(5)).await;
    assert!(!telemetry::recording());
    let spans = collected.0.lock().unwrap().clone();
    let ours: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_context.trace_id().to_string() == TRACE)
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "one sampled server span for the trace: {spans:#?}"
    );
    let server = ours[0];
    assert_eq!(server.name, "POST /v1/echo");
    assert_eq!(server.span_kind, SpanKind::Server);
    assert_eq!(server.parent_span_id.to_string(), CALLER_SPAN);
    assert_eq!(
        server.span_context.span_id(),
        parent,
        "exported span = propagated parent"
    );
    assert!(server.parent_span_is_remote);
    assert_eq!(server.span_context.trace_state().header(), "vendor=opaque");
    assert_eq!(attr(server, "http.request.method").as_deref(), Some("POST"));
    assert_eq!(attr(server, "http.route").as_deref(), Some("/v1/echo"));
    assert_eq!(
        attr(server, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert!(attr(server, "hwc.request_id").is_some_and(|v| !v.is_empty()));
    assert!(
        spans.iter().all(|s| !s.name.contains("healthz")),
        "probe spans exported: {spans:#?}"
    );
    assert!(
        spans.iter().any(|s| s.span_context.trace_id() == fresh
            && s.parent_span_id.to_string() == "0000000000000000"),
        "the fresh trace's root span is exported too"
    );

    let everything = format!("{spans:?}");
    for secret in [
        SECRET_PROMPT,
        SECRET_KEY,
        SECRET_QUERY,
        "Bearer",
        "authorization",
    ] {
        assert!(
            !everything.contains(secret),
            "`{secret}` reached an exported span: {everything}"
        );
    }
}
