//! The `anthropic` backend kind end to end: OpenAI chat in, Messages API out
//! and back, streamed and not, tool calls included. Anthropic's API can't be
//! reached from this machine, so the upstream is scripted with bodies shaped
//! like Anthropic's documented examples.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::scripted::{Act, Upstream};
use common::{error_of, Router, ALICE};
use serde_json::json;
use std::time::Duration;

fn config(url: &str) -> String {
    format!(
        r#"
[[backends]]
name = "claude"
kind = "anthropic"
locality = "cloud"
urls = ["{url}"]
api_key_file = "{key}"
[models.claude]
targets = [{{ backend = "claude", model = "claude-sonnet-4-5" }}]
"#,
        key = key_file()
    )
}

fn key_file() -> String {
    let path = std::env::temp_dir().join("hwc-router-test-anthropic-key");
    std::fs::write(&path, "sk-ant-test\n").unwrap();
    path.display().to_string()
}

fn tool_request(stream: bool) -> serde_json::Value {
    json!({
        "model": "claude", "stream": stream, "max_tokens": 100,
        "stream_options": {"include_usage": true},
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"}
        ]
    })
}

#[tokio::test]
async fn translates_a_tool_call_answer() {
    let up = Upstream::always(Act::Json(
        200,
        json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 20, "output_tokens": 9}
        }),
        None,
    ))
    .await;
    let r = Router::start(&config(&up.url())).await;
    let resp = r
        .post("/v1/chat/completions", ALICE)
        .json(&tool_request(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["content"], "Let me check.");
    assert_eq!(msg["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(
        msg["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["usage"]["prompt_tokens"], 20);

    let (path, headers, sent) = up.request(0);
    assert_eq!(path, "messages");
    assert_eq!(headers["x-api-key"], "sk-ant-test");
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    assert_eq!(sent["system"], "Be brief.");
    assert_eq!(
        sent["tools"][0]["input_schema"]["properties"]["city"]["type"],
        "string"
    );
    r.stop().await;
}

#[tokio::test]
async fn translates_a_streamed_tool_call() {
    let ev = |name: &str, data: serde_json::Value| {
        (Duration::ZERO, format!("event: {name}\ndata: {data}\n\n"))
    };
    let up = Upstream::always(Act::Sse(
        vec![
            ev("message_start", json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude","usage":{"input_tokens":25,"output_tokens":1}}})),
            ev("ping", json!({"type":"ping"})),
            ev("content_block_start", json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})),
            ev("content_block_delta", json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking"}})),
            ev("content_block_stop", json!({"type":"content_block_stop","index":0})),
            ev("content_block_start", json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}})),
            ev("content_block_delta", json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": "}})),
            ev("content_block_delta", json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}})),
            ev("content_block_stop", json!({"type":"content_block_stop","index":1})),
            ev("message_delta", json!({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":15}})),
            ev("message_stop", json!({"type":"message_stop"})),
        ],
        true,
    ))
    .await;
    let r = Router::start(&config(&up.url())).await;
    let resp = r
        .post("/v1/chat/completions", ALICE)
        .json(&tool_request(true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let chunks: Vec<serde_json::Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Checking");
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, "{\"city\": \"Paris\"}");
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
    let usage = chunks.last().unwrap();
    assert_eq!(usage["usage"]["prompt_tokens"], 25);
    assert_eq!(usage["usage"]["completion_tokens"], 15);
    let m = r.metrics().await;
    assert_eq!(
        hwc_testkit::metric(&m, "hwc_router_tokens_total", &["kind=\"completion\""]),
        Some(15.0)
    );
    r.stop().await;
}

#[tokio::test]
async fn anthropic_errors_come_back_in_openai_shape() {
    let up = Upstream::always(Act::Json(
        400,
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: too large"}}),
        None,
    ))
    .await;
    let r = Router::start(&config(&up.url())).await;
    let (status, err) = error_of(r.chat(ALICE, "claude", false).await).await;
    assert_eq!(status, 400);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens: too large"),
        "{err}"
    );
    assert_eq!(err["type"], "invalid_request_error");
    // Embeddings are not something an anthropic backend serves.
    let (status, err) = error_of(
        r.post("/v1/embeddings", ALICE)
            .json(&json!({"model": "claude", "input": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str().unwrap()),
        (400, "endpoint_not_supported")
    );
    r.stop().await;
}
