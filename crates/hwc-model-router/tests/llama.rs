//! Against the real llama.cpp llama-server serving SmolLM2-135M-Instruct:
//! chat, streaming, the Responses API passed through, usage accounting,
//! metrics, the model name clients see, and a client disconnect that
//! cancels the generation upstream.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::llama;
use common::{Router, ALICE};
use futures_util::StreamExt;
use hwc_testkit::{http_get, metric};
use serde_json::json;
use std::time::{Duration, Instant};

async fn router() -> Router {
    router_for(llama::shared()).await
}

async fn router_for(l: &llama::Llama) -> Router {
    Router::start(&format!(
        r#"
[[backends]]
name = "llama"
kind = "openai"
urls = ["{}"]
responses_api = true
[models.smol]
targets = [{{ backend = "llama", model = "smollm2" }}]
[aliases]
default = "smol"
"#,
        l.url()
    ))
    .await
}

#[tokio::test]
async fn chat_answers_and_usage_is_accounted() {
    let r = router().await;
    let resp = r.chat(ALICE, "default", false).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-hwc-backend"], "llama");
    let v: serde_json::Value = resp.json().await.unwrap();
    assert!(
        !v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .is_empty(),
        "{v}"
    );
    let prompt = v["usage"]["prompt_tokens"].as_u64().unwrap();
    let completion = v["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(prompt > 0 && completion > 0);

    let m = r.metrics().await;
    assert_eq!(
        metric(
            &m,
            "hwc_router_tokens_total",
            &["model=\"smol\"", "kind=\"prompt\""]
        ),
        Some(prompt as f64)
    );
    assert_eq!(
        metric(&m, "hwc_router_tokens_total", &["kind=\"completion\""]),
        Some(completion as f64)
    );
    assert_eq!(
        metric(&m, "hwc_router_requests_total", &["outcome=\"ok\""]),
        Some(1.0)
    );
    assert_eq!(
        metric(&m, "hwc_router_overhead_seconds_count", &[]),
        Some(1.0)
    );
    let status: serde_json::Value = r.status(ALICE).await;
    assert_eq!(
        status["usage"]["tokens_by_key"]["alice"],
        prompt + completion
    );
    assert_eq!(status["backends"][0]["state"], "up");
    r.stop().await;
}

#[tokio::test]
async fn streaming_flows_with_usage_when_asked() {
    let r = router().await;
    for include_usage in [false, true] {
        let resp = r
            .post("/v1/chat/completions", ALICE)
            .json(&json!({
                "model": "smol", "stream": true, "max_tokens": 12,
                "stream_options": {"include_usage": include_usage},
                "messages": [{"role": "user", "content": "Name three colours."}],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let text = resp.text().await.unwrap();
        let chunks: Vec<serde_json::Value> = text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert!(
            chunks
                .iter()
                .any(|c| c["choices"][0]["delta"]["content"].is_string()),
            "{text}"
        );
        assert!(text.ends_with("data: [DONE]\n\n"));
        let usage = chunks
            .iter()
            .find(|c| c["usage"].is_object() && c["choices"].as_array().is_some_and(Vec::is_empty));
        assert_eq!(usage.is_some(), include_usage, "{text}");
    }
    let m = r.metrics().await;
    assert_eq!(
        metric(
            &m,
            "hwc_router_time_to_first_token_seconds_count",
            &["backend=\"llama\""]
        ),
        Some(2.0)
    );
    assert!(
        metric(&m, "hwc_router_tokens_total", &["kind=\"completion\""]).unwrap() > 0.0,
        "usage counted even when the client did not ask"
    );
    r.stop().await;
}

fn processing(port: u16) -> f64 {
    let (_, body) = http_get(port, "/metrics").unwrap();
    metric(&body, "llamacpp:requests_processing", &[]).unwrap_or(0.0)
}

#[tokio::test]
async fn client_disconnect_cancels_the_generation() {
    // Its own server, so other tests' requests don't show in its counters.
    let l = llama::start();
    let r = router_for(&l).await;
    let resp = r
        .post("/v1/chat/completions", ALICE)
        .json(&json!({
            "model": "smol", "stream": true, "max_tokens": 1500, "ignore_eos": true,
            "messages": [{"role": "user", "content": "Count from one to one thousand."}],
        }))
        .send()
        .await
        .unwrap();
    let mut s = resp.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("\"content\"") {
        seen.push_str(&String::from_utf8_lossy(&s.next().await.unwrap().unwrap()));
    }
    assert_eq!(processing(l.port), 1.0, "the generation is running");
    drop(s);
    // llama-server notices the closed connection between tokens; on two
    // busy cores (the rest of the suite runs beside it) that has taken over
    // 5 s once. The bound is for "it stops", not for how fast.
    let t0 = Instant::now();
    while processing(l.port) > 0.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "llama-server still generating 30 s after the client left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let m = r.metrics().await;
    assert_eq!(
        metric(&m, "hwc_router_requests_total", &["outcome=\"cancelled\""]),
        Some(1.0)
    );
    r.stop().await;
}

#[tokio::test]
async fn legacy_completions_pass_through() {
    let r = router().await;
    let resp = r
        .post("/v1/completions", ALICE)
        .json(&json!({"model": "smol", "prompt": "The capital of France is", "max_tokens": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert!(v["choices"][0]["text"].is_string(), "{v}");
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    r.stop().await;
}

/// Every `"model"` value in a text of JSON events or a JSON body.
fn models_in(text: &str) -> Vec<String> {
    text.split("\"model\":")
        .skip(1)
        .filter_map(|rest| rest.strip_prefix('"'))
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn answers_carry_the_requested_model_name_never_the_gguf_path() {
    let r = router().await;
    for model in ["smol", "default"] {
        let chat = json!({"model": model, "max_tokens": 4,
            "messages": [{"role": "user", "content": "Say hi."}]});
        let resp = |path: &'static str, body: serde_json::Value| {
            let req = r.post(path, ALICE).json(&body);
            async move { req.send().await.unwrap().text().await.unwrap() }
        };
        let mut texts = vec![resp("/v1/chat/completions", chat.clone()).await];
        let mut streamed = chat.clone();
        streamed["stream"] = json!(true);
        streamed["stream_options"] = json!({"include_usage": true});
        texts.push(resp("/v1/chat/completions", streamed).await);
        let responses = json!({"model": model, "input": "Say hi.", "max_output_tokens": 4});
        texts.push(resp("/v1/responses", responses.clone()).await);
        let mut streamed = responses;
        streamed["stream"] = json!(true);
        texts.push(resp("/v1/responses", streamed).await);
        for text in texts {
            let models = models_in(&text);
            assert!(!models.is_empty(), "no model field: {text}");
            assert!(models.iter().all(|m| m == model), "{models:?} in {text}");
            assert!(!text.contains(".gguf"), "{text}");
        }
    }
    let m = r.metrics().await;
    assert_eq!(
        metric(&m, "hwc_router_requests_total", &["outcome=\"ok\""]),
        Some(8.0),
        "{m}"
    );
    r.stop().await;
}
