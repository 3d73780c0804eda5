//! Traces through the router: a caller's W3C `traceparent` reaches local
//! backends with the same trace id and a span id of the router's as parent
//! (no exporter, so no span is built and the id is minted; a scripted
//! upstream shows the headers it got; cloud backends get none), and with
//! `[telemetry] otlp_endpoint` set the spans arrive at a real OTLP
//! receiver (Arize Phoenix, from PyPI) with no prompt, completion or key in
//! them, the real llama-server answering.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::scripted::{answer, stream_of, Act, Upstream};
use common::{llama, Router, ALICE};
use hwc_ai_core::telemetry::parse_traceparent;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::Mutex as AsyncMutex;

/// Whether an exporter is installed is process-wide (the routers run in
/// this process): the two tests take turns.
static EXPORTER: AsyncMutex<()> = AsyncMutex::const_new(());

const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn traceparent(trace: &str) -> String {
    format!("00-{trace}-{CALLER_SPAN}-01")
}

/// The (trace id, parent id, sampled) of the `traceparent` an upstream got.
fn received(up: &Upstream, i: usize) -> Option<(String, String, bool)> {
    let (_, headers, _) = up.request(i);
    let v = headers.get("traceparent")?.to_str().unwrap().to_owned();
    let (t, s, f) = parse_traceparent(&v)
        .unwrap_or_else(|| panic!("upstream got an invalid traceparent {v:?}"));
    Some((t.to_string(), s.to_string(), f.is_sampled()))
}

async fn chat(r: &Router, model: &str, stream: bool, tp: Option<&str>) -> String {
    let mut req = r.post("/v1/chat/completions", ALICE).json(&json!({
        "model": model, "stream": stream, "max_tokens": 8,
        "messages": [{"role": "user", "content": "Say hi."}],
    }));
    if let Some(tp) = tp {
        req = req
            .header("traceparent", tp)
            .header("tracestate", "caller=1");
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

#[tokio::test]
async fn traceparent_reaches_local_backends_only() {
    hwc_ai_core::logging::init("warn");
    let _turn = EXPORTER.lock().await;
    let local = Upstream::start(
        vec![
            answer("hi"),
            stream_of(&["h", "i"], Duration::ZERO),
            answer("hi"),
        ],
        answer("hi"),
    )
    .await;
    let cloud = Upstream::always(answer("hi")).await;
    let failing = Upstream::always(Act::Json(500, json!({}), None)).await;
    let r = Router::start(&format!(
        r#"
[[backends]]
name = "local"
kind = "openai"
urls = ["{}"]
[[backends]]
name = "cloud"
kind = "openai"
locality = "cloud"
urls = ["{}"]
[[backends]]
name = "failing"
kind = "openai"
urls = ["{}"]
[models.near]
targets = [{{ backend = "local", model = "up" }}]
[models.far]
targets = [{{ backend = "cloud", model = "up" }}]
[models.fallback]
targets = [{{ backend = "failing", model = "up" }}, {{ backend = "local", model = "up" }}]
"#,
        local.url(),
        cloud.url(),
        failing.url()
    ))
    .await;
    assert!(
        !hwc_ai_core::telemetry::recording(),
        "an exporter is still installed: did the exporting test fail before its shutdown?"
    );

    // Whole answer and stream: same trace, the router's span as parent.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    chat(&r, "near", false, Some(&traceparent(trace))).await;
    chat(&r, "near", true, Some(&traceparent(trace))).await;
    let mut parents = Vec::new();
    for i in 0..2 {
        let (t, parent, sampled) = received(&local, i).expect("local backend got no traceparent");
        assert_eq!(t, trace, "request {i}");
        assert_ne!(
            parent, CALLER_SPAN,
            "request {i}: the router must add its own span"
        );
        assert!(sampled);
        let (_, headers, _) = local.request(i);
        assert_eq!(headers["tracestate"], "caller=1");
        parents.push(parent);
    }
    assert_ne!(parents[0], parents[1], "each attempt is a span of its own");

    // No caller: a fresh trace all the same (see docs/adr/0006-traces.md).
    chat(&r, "near", false, None).await;
    let (fresh, _, _) = received(&local, 2).expect("no traceparent for a fresh trace");
    assert_ne!(fresh, trace);

    // No caller and a fallback: both attempts stay in the request's one
    // trace, each with a parent of its own.
    chat(&r, "fallback", false, None).await;
    let (first, first_parent, _) =
        received(&failing, 0).expect("the failing backend got no traceparent");
    let (second, second_parent, _) = received(&local, 3).expect("the fallback got no traceparent");
    assert_eq!(
        first, second,
        "a fallback must continue the request's trace"
    );
    assert_ne!(first_parent, second_parent);

    // A cloud backend gets no trace context at all.
    chat(&r, "far", false, Some(&traceparent(trace))).await;
    let (_, headers, _) = cloud.request(0);
    assert!(headers.get("traceparent").is_none(), "{headers:?}");
    assert!(headers.get("tracestate").is_none(), "{headers:?}");
    r.stop().await;
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

fn span_named<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span named {name:?} in {spans:#?}"))
}

#[tokio::test]
async fn spans_reach_a_real_otlp_receiver_without_content() {
    hwc_ai_core::logging::init("warn");
    let _turn = EXPORTER.lock().await;
    let phoenix = hwc_testkit::phoenix::start();
    let l = llama::shared();
    let r = Router::start(&format!(
        r#"
[[backends]]
name = "llama"
kind = "openai"
urls = ["{}"]
[models.smol]
targets = [{{ backend = "llama", model = "smollm2" }}]
[telemetry]
otlp_endpoint = "{}"
sample_ratio = 1.0
"#,
        l.url(),
        phoenix.otlp_endpoint()
    ))
    .await;

    let prompt = "Repeat the word xylophone-marmalade-4417 twice.";
    let mut answers = String::new();
    let traces = [
        ("0af7651916cd43dd8448eb211c80319c", false),
        ("1bf7651916cd43dd8448eb211c80319d", true),
    ];
    for (trace, stream) in traces {
        let resp = r
            .post("/v1/chat/completions", ALICE)
            .header("traceparent", traceparent(trace))
            .json(&json!({
                "model": "smol", "stream": stream, "max_tokens": 16,
                "messages": [{"role": "user", "content": prompt}],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        answers.push_str(&resp.text().await.unwrap());
    }
    // Stopping drains and flushes the exporter.
    r.stop().await;

    for (trace, stream) in traces {
        let spans = phoenix.wait_for_trace(trace, 2, Duration::from_secs(30));
        let server = span_named(&spans, "POST /v1/chat/completions");
        assert_eq!(server["parent_span_id"], CALLER_SPAN, "stream={stream}");
        assert_eq!(
            attr(server, "http.route").unwrap()["string_value"],
            "/v1/chat/completions"
        );
        assert_eq!(
            attr(server, "http.request.method").unwrap()["string_value"],
            "POST"
        );
        assert_eq!(
            attr(server, "http.response.status_code").unwrap()["int_value"],
            200
        );
        let client = span_named(&spans, "POST");
        assert_eq!(
            client["parent_span_id"], server["span_id"],
            "stream={stream}"
        );
        assert_eq!(
            attr(client, "hwc.backend").unwrap()["string_value"],
            "llama"
        );
        assert_eq!(
            attr(client, "gen_ai.request.model").unwrap()["string_value"],
            "smollm2"
        );
        assert_eq!(
            attr(client, "http.response.status_code").unwrap()["int_value"],
            200
        );
    }

    // Nothing a client sent or got as content is in any stored span.
    let everything = phoenix.spans_json();
    for needle in [
        "xylophone",
        "marmalade",
        "Repeat the word",
        common::ALICE,
        "Bearer",
    ] {
        assert!(
            !everything.contains(needle),
            "`{needle}` reached the trace receiver: {everything}"
        );
    }
    // Nor is the completion (the model's whole answer, when long enough
    // not to occur by chance).
    let whole: Value = serde_json::from_str(answers.split("data:").next().unwrap()).unwrap();
    let completion = whole["choices"][0]["message"]["content"].as_str().unwrap();
    if completion.trim().len() >= 12 {
        assert!(
            !everything.contains(completion.trim()),
            "the completion reached the trace receiver"
        );
    }
}
