//! The Responses API against backends that speak chat completions only:
//! the request is translated to chat, the answer back to a Responses
//! object. The upstreams are scripted so that they return the exact tool
//! calls a small real model won't make (the real llama-server serves
//! `/v1/responses` itself and is tested by passthrough in llama.rs).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::scripted::{tool_call, Act, Upstream};
use common::{error_of, Router, ALICE};
use futures_util::StreamExt;
use hwc_testkit::metric;
use serde_json::{json, Value};
use std::time::Duration;

fn config(url: &str) -> String {
    format!(
        r#"
[[backends]]
name = "chatonly"
kind = "openai"
urls = ["{url}"]
[models.small]
targets = [{{ backend = "chatonly", model = "up-model" }}]
"#
    )
}

fn chat_answer(message: Value, finish: &str) -> Act {
    Act::Json(
        200,
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000,
            "model": "/models/up.gguf",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 7, "total_tokens": 47}
        }),
        None,
    )
}

fn tools() -> Value {
    json!([
        {"type": "function", "name": "shell", "description": "Runs a command",
         "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}},
                        "required": ["command"]}},
        {"type": "custom", "name": "apply_patch", "description": "Edits files",
         "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch"}}
    ])
}

async fn respond(r: &Router, body: Value) -> (u16, Value) {
    r.respond(ALICE, body).await
}

#[tokio::test]
async fn a_tool_call_turn_is_translated_both_ways() {
    let up = Upstream::always(chat_answer(
        json!({"role": "assistant", "content": null, "reasoning_content": "need ls",
               "tool_calls": [{"id": "call_1", "type": "function",
                               "function": {"name": "shell", "arguments": "{\"command\":[\"ls\"]}"}}]}),
        "tool_calls",
    ))
    .await;
    let r = Router::start(&config(&up.url())).await;
    let (status, resp) = respond(
        &r,
        json!({"model": "small", "instructions": "You are an operator.", "input": "List the files.",
               "tools": tools(), "tool_choice": "auto", "max_output_tokens": 64, "store": false}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");

    let (path, _, sent) = up.request(0);
    assert_eq!(path, "chat/completions");
    assert_eq!(sent["model"], "up-model");
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "You are an operator."},
               {"role": "user", "content": "List the files."}])
    );
    assert_eq!(sent["tools"][0]["function"]["name"], "shell");
    assert_eq!(sent["tools"][1]["function"]["name"], "apply_patch");
    assert_eq!(sent["max_tokens"], 64);
    assert!(sent.get("input").is_none() && sent.get("store").is_none());

    assert_eq!(resp["object"], "response");
    assert_eq!(
        resp["model"], "small",
        "the client's name, not the backend's"
    );
    assert_eq!(resp["status"], "completed");
    let out = resp["output"].as_array().unwrap();
    assert_eq!(out[0]["type"], "reasoning");
    assert_eq!(out[1]["type"], "function_call");
    assert_eq!(out[1]["call_id"], "call_1");
    assert_eq!(out[1]["arguments"], "{\"command\":[\"ls\"]}");
    assert_eq!(resp["usage"]["input_tokens"], 40);
    assert_eq!(resp["usage"]["output_tokens"], 7);

    // Accounted like any answer.
    let m = r.metrics().await;
    assert_eq!(
        metric(&m, "hwc_router_requests_total", &["outcome=\"ok\""]),
        Some(1.0),
        "{m}"
    );
    let status: Value = r.status(ALICE).await;
    assert_eq!(status["usage"]["tokens_by_key"]["alice"], 47);
    r.stop().await;
}

#[tokio::test]
async fn the_next_turn_sends_the_calls_and_their_outputs_back() {
    let up = Upstream::start(
        vec![chat_answer(
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_p", "type": "function",
                 "function": {"name": "apply_patch", "arguments": "{\"input\":\"*** Begin Patch\\n*** End Patch\\n\"}"}}]}),
            "tool_calls",
        )],
        chat_answer(
            json!({"role": "assistant", "content": "Both done."}),
            "stop",
        ),
    )
    .await;
    let r = Router::start(&config(&up.url())).await;
    // Turn 1: the freeform tool's call comes back as a custom_tool_call.
    let (status, first) = respond(
        &r,
        json!({"model": "small", "input": "Fix the typo.", "tools": tools()}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let call = &first["output"][0];
    assert_eq!(call["type"], "custom_tool_call", "{first}");
    assert_eq!(call["name"], "apply_patch");
    assert_eq!(call["input"], "*** Begin Patch\n*** End Patch\n");

    // Turn 2: the whole conversation, as a stateless client sends it.
    let mut input = vec![json!({"type": "message", "role": "user",
                                "content": [{"type": "input_text", "text": "Fix the typo."}]})];
    input.push(json!({"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque-blob"}));
    input.push(call.clone());
    input.push(json!({"type": "custom_tool_call_output", "call_id": call["call_id"], "output": "Success."}));
    input.push(json!({"type": "function_call", "call_id": "call_s", "name": "shell", "arguments": "{\"command\":[\"make\"]}"}));
    input.push(json!({"type": "function_call_output", "call_id": "call_s", "output": "ok"}));
    let (status, second) = respond(
        &r,
        json!({"model": "small", "input": input, "tools": tools()}),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    let (_, _, sent) = up.request(1);
    let m = sent["messages"].as_array().unwrap();
    assert_eq!(m[0], json!({"role": "user", "content": "Fix the typo."}));
    assert_eq!(m[1]["role"], "assistant");
    assert_eq!(m[1]["tool_calls"][0]["id"], "call_p");
    assert_eq!(
        m[1]["tool_calls"][0]["function"]["arguments"],
        json!({"input": "*** Begin Patch\n*** End Patch\n"}).to_string()
    );
    assert_eq!(
        m[2],
        json!({"role": "tool", "tool_call_id": "call_p", "content": "Success."})
    );
    assert_eq!(m[3]["tool_calls"][0]["function"]["name"], "shell");
    assert_eq!(
        m[4],
        json!({"role": "tool", "tool_call_id": "call_s", "content": "ok"})
    );
    assert!(!sent.to_string().contains("opaque-blob"));
    assert_eq!(second["output"][0]["type"], "message");
    assert_eq!(second["output"][0]["content"][0]["text"], "Both done.");
    r.stop().await;
}

#[tokio::test]
async fn what_cannot_be_translated_is_refused_before_anything_is_sent() {
    let up = Upstream::always(chat_answer(json!({"content": "x"}), "stop")).await;
    let r = Router::start(&config(&up.url())).await;
    for (body, needle) in [(
        json!({"model": "small", "input": "x", "tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}),
        "file_search",
    )] {
        let (status, err) = error_of(
            r.post("/v1/responses", ALICE)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["code"], "untranslatable_request");
        assert!(err["message"].as_str().unwrap().contains(needle), "{err}");
    }
    assert_eq!(up.calls(), 0);
    // A cut answer is `incomplete`, as the Responses API says it.
    let up2 = Upstream::always(chat_answer(json!({"content": "abc"}), "length")).await;
    let r2 = Router::start(&config(&up2.url())).await;
    let (status, resp) = respond(&r2, json!({"model": "small", "input": "x"})).await;
    assert_eq!(status, 200);
    assert_eq!(resp["status"], "incomplete");
    assert_eq!(resp["incomplete_details"]["reason"], "max_output_tokens");
    r.stop().await;
    r2.stop().await;
}

#[tokio::test]
async fn an_anthropic_backend_serves_responses_too() {
    let up = Upstream::always(Act::Json(
        200,
        json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_01", "name": "shell", "input": {"command": ["ls"]}}
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 20, "output_tokens": 9}
        }),
        None,
    ))
    .await;
    let key = std::env::temp_dir().join("hwc-router-test-responses-anthropic-key");
    std::fs::write(&key, "sk-ant-test\n").unwrap();
    let r = Router::start(&format!(
        r#"
[[backends]]
name = "claude"
kind = "anthropic"
locality = "cloud"
urls = ["{}"]
api_key_file = "{}"
[models.claude]
targets = [{{ backend = "claude", model = "claude-sonnet-4-5" }}]
"#,
        up.url(),
        key.display()
    ))
    .await;
    let (status, resp) = respond(
        &r,
        json!({"model": "claude", "instructions": "Be brief.", "input": "List files.",
               "tools": tools(), "max_output_tokens": 50}),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    let (path, _, sent) = up.request(0);
    assert_eq!(path, "messages");
    assert_eq!(sent["system"], "Be brief.");
    assert_eq!(sent["max_tokens"], 50);
    assert_eq!(sent["tools"][0]["name"], "shell");
    assert_eq!(resp["model"], "claude");
    assert_eq!(resp["output"][0]["content"][0]["text"], "Let me look.");
    assert_eq!(resp["output"][1]["type"], "function_call");
    assert_eq!(resp["output"][1]["call_id"], "toolu_01");
    assert_eq!(
        serde_json::from_str::<Value>(resp["output"][1]["arguments"].as_str().unwrap()).unwrap(),
        json!({"command": ["ls"]})
    );
    assert_eq!(resp["usage"]["input_tokens"], 20);
    r.stop().await;
}

/// The Responses events of a stream, as (event name, data).
async fn events_of(resp: reqwest::Response) -> Vec<(String, Value)> {
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    let mut s = resp.bytes_stream();
    while let Some(b) = s.next().await {
        text.push_str(&String::from_utf8_lossy(&b.unwrap()));
    }
    assert!(
        !text.contains("[DONE]"),
        "no [DONE] on the Responses API: {text}"
    );
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty() && !e.starts_with(':'))
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_else(|| panic!("no event name: {e}"));
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            let v: Value = serde_json::from_str(data).unwrap();
            assert_eq!(v["type"], name, "{e}");
            (name.to_owned(), v)
        })
        .collect()
}

fn check_sequence(events: &[(String, Value)]) {
    for (i, (_, v)) in events.iter().enumerate() {
        assert_eq!(v["sequence_number"], i, "{v}");
    }
    assert_eq!(events[0].0, "response.created");
    assert_eq!(events[1].0, "response.in_progress");
}

#[tokio::test]
async fn a_streamed_text_answer_is_the_responses_event_sequence() {
    let up = Upstream::always(common::scripted::stream_of(&["Hel", "lo"], Duration::ZERO)).await;
    let r = Router::start(&config(&up.url())).await;
    let resp = r
        .post("/v1/responses", ALICE)
        .json(&json!({"model": "small", "input": "Say hello.", "stream": true}))
        .send()
        .await
        .unwrap();
    let events = events_of(resp).await;
    check_sequence(&events);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    assert_eq!(events[4].1["delta"], "Hel");
    assert_eq!(events[6].1["text"], "Hello");
    let done = &events[9].1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["model"], "small");
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
    assert!(
        done["usage"]["input_tokens"].as_u64().unwrap() > 0,
        "{done}"
    );
    let (_, _, sent) = up.request(0);
    assert_eq!(up.request(0).0, "chat/completions");
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true);
    // Booked with the upstream's usage.
    let m = r.metrics().await;
    assert_eq!(
        metric(&m, "hwc_router_requests_total", &["outcome=\"ok\""]),
        Some(1.0),
        "{m}"
    );
    let total = done["usage"]["total_tokens"].as_u64().unwrap();
    let status: Value = r.status(ALICE).await;
    assert_eq!(status["usage"]["tokens_by_key"]["alice"], total);
    r.stop().await;
}

#[tokio::test]
async fn a_streamed_tool_call_is_function_call_events() {
    let up = Upstream::start(
        vec![tool_call("shell", "{\"command\":[\"ls\"]}")],
        tool_call(
            "apply_patch",
            "{\"input\":\"*** Begin Patch\\n*** End Patch\"}",
        ),
    )
    .await;
    let r = Router::start(&config(&up.url())).await;
    let go = || {
        r.post("/v1/responses", ALICE)
            .json(&json!({"model": "small", "input": "x", "stream": true, "tools": tools()}))
            .send()
    };
    let events = events_of(go().await.unwrap()).await;
    check_sequence(&events);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"response.reasoning_text.delta"),
        "{names:?}"
    );
    let args: String = events
        .iter()
        .filter(|(n, _)| n == "response.function_call_arguments.delta")
        .map(|(_, v)| v["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(args, "{\"command\":[\"ls\"]}");
    let (_, done) = events
        .iter()
        .find(|(n, _)| n == "response.function_call_arguments.done")
        .unwrap();
    assert_eq!(done["arguments"], "{\"command\":[\"ls\"]}");
    let last = &events.last().unwrap().1["response"];
    assert_eq!(events.last().unwrap().0, "response.completed");
    let out = last["output"].as_array().unwrap();
    assert_eq!(out[0]["type"], "reasoning");
    assert_eq!(out[1]["type"], "function_call");
    assert_eq!(out[1]["call_id"], "call_shell");
    assert_eq!(out[1]["status"], "completed");
    assert_eq!(last["usage"]["input_tokens"], 100);
    assert_eq!(last["usage"]["output_tokens"], 20);

    // The freeform tool: a custom_tool_call with its input.
    let events = events_of(go().await.unwrap()).await;
    check_sequence(&events);
    let (_, input) = events
        .iter()
        .find(|(n, _)| n == "response.custom_tool_call_input.done")
        .unwrap();
    assert_eq!(input["input"], "*** Begin Patch\n*** End Patch");
    let out = &events.last().unwrap().1["response"]["output"];
    assert_eq!(out[1]["type"], "custom_tool_call");
    assert_eq!(out[1]["input"], "*** Begin Patch\n*** End Patch");
    assert!(!events
        .iter()
        .any(|(n, _)| n == "response.function_call_arguments.delta"));
    r.stop().await;
}

#[tokio::test]
async fn a_translated_stream_closed_right_after_completed_is_ok_and_charged() {
    // Codex closes the moment it has response.completed; this upstream
    // keeps its connection open after [DONE].
    let up = Upstream::always(Act::SseHold(common::scripted::stream_parts(
        &["a", "b"],
        Duration::ZERO,
    )))
    .await;
    let r = Router::start(&config(&up.url())).await;
    let resp = r
        .post("/v1/responses", ALICE)
        .json(&json!({"model": "small", "input": "Say hi.", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut s = resp.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("event: response.completed") {
        let b = tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&b));
    }
    drop(s);
    let t0 = std::time::Instant::now();
    loop {
        let m = r.metrics().await;
        if let Some(n) = metric(&m, "hwc_router_requests_total", &["outcome=\"ok\""]) {
            assert_eq!(n, 1.0);
            assert!(
                metric(&m, "hwc_router_requests_total", &["outcome=\"cancelled\""]).is_none(),
                "{m}"
            );
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "not booked ok: {m}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status: Value = r.status(ALICE).await;
    assert_eq!(
        status["usage"]["tokens_by_key"]["alice"],
        7 + 2,
        "the upstream's usage"
    );
    r.stop().await;
}
