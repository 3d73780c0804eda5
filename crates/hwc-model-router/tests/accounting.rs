//! Usage is never lost on a stream, however the client leaves, and answers
//! carry the client's model name.
//!
//! The upstreams here are fault injectors (`Act::SseHold`): they keep the
//! connection open after their last event, as an upstream slow to close
//! after `[DONE]` does, which a real llama-server won't do on demand. The
//! clients close the way the openai SDK's stream helpers and Codex CLI do:
//! the moment they have the final event.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::scripted::{answer, chunk, responses_parts, stream_parts, Act, Upstream};
use common::{error_of, Router, ALICE, LIMITED_KEY};
use futures_util::StreamExt;
use hwc_testkit::metric;
use serde_json::json;
use std::time::{Duration, Instant};

/// "Say hi." is 7 characters: the prompt estimate is 2 tokens.
const PROMPT_ESTIMATE: f64 = 2.0;

fn config(url: &str) -> String {
    format!(
        r#"
[[backends]]
name = "up"
kind = "openai"
urls = ["{url}"]
responses_api = true
first_token_timeout = "5s"
[models.small]
targets = [{{ backend = "up", model = "up-model" }}]
"#
    )
}

/// Reads a stream until its text contains `needle`, then closes it at
/// once (drops the connection), as the SDK helpers do. The text read.
async fn read_then_close(resp: reqwest::Response, needle: &str) -> String {
    assert_eq!(resp.status(), 200);
    let mut s = resp.bytes_stream();
    let mut seen = String::new();
    while !seen.contains(needle) {
        let b = tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} within 5 s; got {seen}"))
            .unwrap_or_else(|| panic!("stream ended before {needle:?}: {seen}"))
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&b));
    }
    drop(s);
    seen
}

async fn stream_chat(r: &Router, key: &str, include_usage: bool) -> reqwest::Response {
    r.post("/v1/chat/completions", key)
        .json(&json!({
            "model": "small", "stream": true,
            "stream_options": {"include_usage": include_usage},
            "messages": [{"role": "user", "content": "Say hi."}],
        }))
        .send()
        .await
        .unwrap()
}

async fn stream_responses(r: &Router) -> reqwest::Response {
    r.post("/v1/responses", ALICE)
        .json(&json!({"model": "small", "stream": true, "input": "Say hi."}))
        .send()
        .await
        .unwrap()
}

/// Waits until the request with `outcome` is recorded; the metrics then.
async fn recorded(r: &Router, outcome: &str) -> String {
    let needle = format!("outcome=\"{outcome}\"");
    let t0 = Instant::now();
    loop {
        let m = r.metrics().await;
        if metric(&m, "hwc_router_requests_total", &[&needle]).is_some() {
            return m;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "no request with {needle} recorded within 5 s:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn tokens(m: &str, kind: &str) -> f64 {
    metric(m, "hwc_router_tokens_total", &[&format!("kind=\"{kind}\"")]).unwrap_or(0.0)
}

async fn tokens_today(r: &Router, key: &str, name: &str) -> u64 {
    let v: serde_json::Value = r.status(key).await;
    v["usage"]["tokens_by_key"][name].as_u64().unwrap()
}

async fn upstream_released(up: &Upstream, n: usize) {
    let t0 = Instant::now();
    while up.dropped_streams() < n {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "the router still holds the upstream stream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn chat_stream_closed_right_after_done_is_ok_and_charged() {
    let up = Upstream::always(Act::SseHold(stream_parts(
        &["a", "b", "c"],
        Duration::from_millis(10),
    )))
    .await;
    let r = Router::start(&config(&up.url())).await;

    // Without include_usage: the router asked upstream anyway and charges it.
    let text = read_then_close(stream_chat(&r, ALICE, false).await, "data: [DONE]").await;
    assert!(
        !text.contains("usage"),
        "usage chunk only when asked: {text}"
    );
    let m = recorded(&r, "ok").await;
    assert_eq!(
        metric(&m, "hwc_router_requests_total", &["outcome=\"cancelled\""]),
        None,
        "{m}"
    );
    assert_eq!(
        tokens(&m, "prompt"),
        7.0,
        "the upstream's usage, not an estimate"
    );
    assert_eq!(tokens(&m, "completion"), 3.0);
    assert_eq!(tokens_today(&r, ALICE, "alice").await, 10);
    upstream_released(&up, 1).await;

    // A client that reads to the end gets it whole, promptly, with no
    // error event, though the upstream never closes.
    let t0 = Instant::now();
    let resp = stream_chat(&r, ALICE, true).await;
    let text = tokio::time::timeout(Duration::from_secs(3), resp.text())
        .await
        .expect("the client's stream ends though the upstream holds on")
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(!text.contains("stream_cut"), "{text}");
    assert!(text.contains("\"completion_tokens\":3"), "{text}");
    let m = r.metrics().await;
    assert_eq!(
        metric(&m, "hwc_router_requests_total", &["outcome=\"ok\""]),
        Some(2.0)
    );
    assert_eq!(tokens_today(&r, ALICE, "alice").await, 20);
    upstream_released(&up, 2).await;
    r.stop().await;
}

#[tokio::test]
async fn streams_closed_after_done_count_against_the_budget() {
    // 7 prompt + 25 completion tokens: over the limited key's 30.
    let words: Vec<String> = (0..25).map(|i| format!("w{i}")).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let up = Upstream::always(Act::SseHold(stream_parts(&refs, Duration::ZERO))).await;
    let r = Router::start(&config(&up.url())).await;
    read_then_close(stream_chat(&r, LIMITED_KEY, false).await, "data: [DONE]").await;
    recorded(&r, "ok").await;
    let (status, err) = error_of(stream_chat(&r, LIMITED_KEY, false).await).await;
    assert_eq!(status, 429);
    assert_eq!(err["code"], "budget_exceeded", "{err}");
    assert_eq!(up.calls(), 1);
    r.stop().await;
}

#[tokio::test]
async fn chat_stream_closed_midway_is_cancelled_and_charged_so_far() {
    // No usage has come when the client leaves: charged the estimate.
    let parts = ["a", "b", "c"]
        .iter()
        .map(|w| (Duration::from_millis(10), chunk(w)))
        .collect();
    let up = Upstream::always(Act::SseHold(parts)).await;
    let r = Router::start(&config(&up.url())).await;
    read_then_close(stream_chat(&r, ALICE, false).await, "\"content\":\"c\"").await;
    let m = recorded(&r, "cancelled").await;
    assert_eq!(
        metric(&m, "hwc_router_requests_total", &["outcome=\"ok\""]),
        None
    );
    assert_eq!(tokens(&m, "prompt"), PROMPT_ESTIMATE, "{m}");
    assert_eq!(tokens(&m, "completion"), 3.0, "one token a chunk");
    assert_eq!(tokens_today(&r, ALICE, "alice").await, 5);
    upstream_released(&up, 1).await;
    r.stop().await;

    // The usage chunk came, [DONE] not: cancelled, charged the real usage.
    let mut parts = stream_parts(&["a", "b", "c"], Duration::ZERO);
    parts.pop();
    let up = Upstream::always(Act::SseHold(parts)).await;
    let r = Router::start(&config(&up.url())).await;
    read_then_close(stream_chat(&r, ALICE, true).await, "\"usage\"").await;
    let m = recorded(&r, "cancelled").await;
    assert_eq!((tokens(&m, "prompt"), tokens(&m, "completion")), (7.0, 3.0));
    r.stop().await;
}

#[tokio::test]
async fn responses_stream_closed_right_after_completed_is_ok_and_charged() {
    let up = Upstream::always(Act::SseHold(responses_parts(
        &["x", "y"],
        Duration::from_millis(10),
    )))
    .await;
    let r = Router::start(&config(&up.url())).await;
    let text = read_then_close(
        stream_responses(&r).await,
        "\"type\":\"response.completed\"",
    )
    .await;
    assert_eq!(up.request(0).0, "responses");
    assert!(!text.contains("gguf"), "backend id leaked: {text}");
    assert_eq!(text.matches("\"model\":\"small\"").count(), 2, "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
    let m = recorded(&r, "ok").await;
    assert_eq!(
        metric(&m, "hwc_router_requests_total", &["outcome=\"cancelled\""]),
        None
    );
    assert_eq!(
        (tokens(&m, "prompt"), tokens(&m, "completion")),
        (11.0, 2.0)
    );
    assert_eq!(tokens_today(&r, ALICE, "alice").await, 13);
    upstream_released(&up, 1).await;
    r.stop().await;
}

#[tokio::test]
async fn responses_stream_closed_midway_is_cancelled_and_charged_so_far() {
    let mut parts = responses_parts(&["x", "y"], Duration::from_millis(10));
    parts.pop(); // no response.completed
    let up = Upstream::always(Act::SseHold(parts)).await;
    let r = Router::start(&config(&up.url())).await;
    read_then_close(stream_responses(&r).await, "\"delta\":\"y\"").await;
    let m = recorded(&r, "cancelled").await;
    assert_eq!(tokens(&m, "prompt"), PROMPT_ESTIMATE, "{m}");
    // response.created and two deltas, one token an event.
    assert_eq!(tokens(&m, "completion"), 3.0, "{m}");
    upstream_released(&up, 1).await;
    r.stop().await;
}

#[tokio::test]
async fn whole_answer_given_up_is_cancelled_and_charged_the_prompt() {
    let up = Upstream::always(Act::After(Duration::from_secs(2), Box::new(answer("late")))).await;
    let r = Router::start(&config(&up.url())).await;
    let gone = r
        .post("/v1/chat/completions", ALICE)
        .timeout(Duration::from_millis(300))
        .json(&json!({"model": "small", "messages": [{"role": "user", "content": "Say hi."}]}))
        .send()
        .await;
    assert!(gone.unwrap_err().is_timeout());
    let m = recorded(&r, "cancelled").await;
    assert_eq!(tokens(&m, "prompt"), PROMPT_ESTIMATE, "{m}");
    assert_eq!(tokens(&m, "completion"), 0.0);
    r.stop().await;
}

#[tokio::test]
async fn whole_answers_carry_the_clients_model_name() {
    let up = Upstream::start(
        vec![answer("hi")],
        Act::Json(
            200,
            json!({"id": "resp_1", "object": "response", "model": "/models/x.gguf", "output": [],
                   "usage": {"input_tokens": 4, "output_tokens": 1}}),
            None,
        ),
    )
    .await;
    let r = Router::start(&config(&up.url())).await;
    let v: serde_json::Value = r.chat(ALICE, "small", false).await.json().await.unwrap();
    assert_eq!(v["model"], "small", "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "hi");
    let v: serde_json::Value = r
        .post("/v1/responses", ALICE)
        .json(&json!({"model": "small", "input": "hi"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["model"], "small", "{v}");
    assert_eq!(
        up.request(1).2["model"],
        "up-model",
        "the backend got its own name"
    );
    r.stop().await;
}

#[tokio::test]
async fn status_says_unknown_until_a_backend_is_contacted() {
    let up = Upstream::always(answer("hi")).await;
    let cfg = format!(
        r#"{}
[[backends]]
name = "dead"
kind = "openai"
locality = "cloud"
urls = ["{}"]
[models.gone]
targets = [{{ backend = "dead", model = "x" }}]
[fallback]
max_attempts = 1
"#,
        config(&up.url()),
        common::dead_url()
    );
    let r = Router::start(&cfg).await;
    let states = || async {
        let v: serde_json::Value = r.status(ALICE).await;
        let b = v["backends"].as_array().unwrap().clone();
        b.iter()
            .map(|b| {
                (
                    b["name"].as_str().unwrap().to_string(),
                    b["state"].as_str().unwrap().to_string(),
                    b["replicas"][0]["last_contact"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let s = |n: &str, st: &str, c: &str| (n.to_string(), st.to_string(), c.to_string());
    assert_eq!(
        states().await,
        [s("dead", "unknown", "never"), s("up", "unknown", "never")]
    );
    assert_eq!(r.chat(ALICE, "small", false).await.status(), 200);
    assert_eq!(r.chat(ALICE, "gone", false).await.status(), 502);
    assert_eq!(
        states().await,
        [s("dead", "down", "failed"), s("up", "up", "answered")]
    );
    r.stop().await;
}
