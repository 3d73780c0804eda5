//! The API's contract: auth, bad input, models, escalation, idempotency,
//! rate limits and budgets that survive a restart, the Responses API.
//! Upstreams here are scripted only to count calls and see what they got.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::scripted::{answer, Act, Upstream};
use common::{error_of, Router, ALICE, LIMITED_KEY, LOCAL_KEY};
use hwc_testkit::metric;
use serde_json::json;

fn config(small: &str, big: &str) -> String {
    format!(
        r#"
[server]
max_body_bytes = 4096
[[backends]]
name = "small-be"
kind = "openai"
urls = ["{small}"]
[[backends]]
name = "big-be"
kind = "openai"
urls = ["{big}"]
responses_api = true
[models.small]
targets = [{{ backend = "small-be", model = "s" }}]
[models.big]
targets = [{{ backend = "big-be", model = "b" }}]
[aliases]
default = "small"
strong = "big"
[auto]
default_model = "default"
strong_model = "strong"
tools = 3
"#
    )
}

async fn setup() -> (Router, Upstream, Upstream) {
    let small = Upstream::always(answer("small")).await;
    let big = Upstream::always(answer("big")).await;
    let r = Router::start(&config(&small.url(), &big.url())).await;
    (r, small, big)
}

#[tokio::test]
async fn auth_is_required_and_errors_are_openai_shaped() {
    let (r, small, _) = setup().await;
    let resp = common::client()
        .post(format!("{}/v1/chat/completions", r.url))
        .json(&json!({"model": "small", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    let (status, err) = error_of(resp).await;
    assert_eq!(status, 401);
    assert_eq!(err["code"], "invalid_api_key");
    assert!(err["message"]
        .as_str()
        .unwrap()
        .contains("Authorization: Bearer"));
    let (status, _) = error_of(r.chat("sk-wrong", "small", false).await).await;
    assert_eq!(status, 401);
    // Health and metrics stay open.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let resp = common::client()
            .get(format!("{}{path}", r.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    assert_eq!(small.calls(), 0);
    r.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_400_never_a_panic() {
    let (r, small, _) = setup().await;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "/v1/chat/completions",
            b"{not json".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "/v1/chat/completions",
            b"[1,2]".to_vec(),
            400,
            "JSON object",
        ),
        (
            "/v1/chat/completions",
            br#"{"model":1,"messages":[]}"#.to_vec(),
            400,
            "`model` must be a string",
        ),
        (
            "/v1/chat/completions",
            br#"{"model":"small","messages":"hi"}"#.to_vec(),
            400,
            "`messages` must be an array",
        ),
        (
            "/v1/chat/completions",
            br#"{"model":"nope","messages":[{"role":"user","content":"x"}]}"#.to_vec(),
            404,
            "does not exist here",
        ),
        (
            "/v1/embeddings",
            br#"{"model":"small"}"#.to_vec(),
            400,
            "`input` is required",
        ),
        (
            "/v1/chat/completions",
            vec![b' '; 10_000],
            413,
            "larger than the 4096 bytes",
        ),
    ];
    for (path, body, status, want) in cases {
        let resp = r
            .post(path, ALICE)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (got, err) = error_of(resp).await;
        assert_eq!(got, status, "{path} {want}: {err}");
        assert!(
            err["message"].as_str().unwrap().contains(want),
            "{want}: {err}"
        );
    }
    assert_eq!(small.calls(), 0);
    r.stop().await;
}

#[tokio::test]
async fn models_lists_what_the_key_may_use() {
    let (r, _, _) = setup().await;
    let ids = |v: serde_json::Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    let all = ids(r
        .get("/v1/models", ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap());
    for m in ["small", "big", "default", "strong", "auto"] {
        assert!(all.contains(&m.to_string()), "{m} in {all:?}");
    }
    let limited = ids(r
        .get("/v1/models", LIMITED_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap());
    assert_eq!(limited, vec!["small"]);
    let (status, err) = error_of(r.chat(LIMITED_KEY, "big", false).await).await;
    assert_eq!(
        (status, err["code"].as_str().unwrap()),
        (403, "model_not_allowed")
    );
    r.stop().await;
}

#[tokio::test]
async fn auto_escalates_hard_tasks_and_says_why() {
    let (r, small, big) = setup().await;
    let send = |body: serde_json::Value, header: Option<&'static str>| {
        let mut req = r.post("/v1/chat/completions", ALICE).json(&body);
        if let Some(h) = header {
            req = req.header("x-hwc-escalate", h);
        }
        req.send()
    };
    let easy = json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]});
    let resp = send(easy.clone(), None).await.unwrap();
    let route = resp.headers()["x-hwc-route"].to_str().unwrap().to_string();
    assert_eq!(
        route,
        "model=small; decision=auto-default; reason=no rule matched"
    );
    let tools = json!({"model": "auto", "tools": [{}, {}, {}], "messages": [{"role": "user", "content": "hi"}]});
    let resp = send(tools, None).await.unwrap();
    assert_eq!(
        resp.headers()["x-hwc-route"],
        "model=big; decision=auto-strong; reason=tools 3>=3"
    );
    let trace = json!({"model": "auto", "messages": [{"role": "user", "content": "fix:\nTraceback (most recent call last):\n  File \"a.py\", line 1"}]});
    let resp = send(trace, None).await.unwrap();
    assert!(resp.headers()["x-hwc-route"]
        .to_str()
        .unwrap()
        .contains("reason=marker Traceback"));
    let resp = send(easy, Some("strong")).await.unwrap();
    assert!(resp.headers()["x-hwc-route"]
        .to_str()
        .unwrap()
        .contains("decision=auto-strong; reason=header"));
    assert_eq!((small.calls(), big.calls()), (1, 3));
    let m = r.metrics().await;
    assert_eq!(
        metric(
            &m,
            "hwc_router_route_decisions_total",
            &["auto-strong", "model=\"big\""]
        ),
        Some(3.0)
    );
    for rule in ["tools", "marker", "header"] {
        assert_eq!(
            metric(
                &m,
                "hwc_router_route_decisions_total",
                &["auto-strong", &format!("rule=\"{rule}\"")]
            ),
            Some(1.0),
            "escalations by {rule}: {m}"
        );
    }
    r.stop().await;
}

#[tokio::test]
async fn idempotency_key_replays_without_calling_the_model() {
    let (r, small, _) = setup().await;
    let body = json!({"model": "small", "messages": [{"role": "user", "content": "charge once"}]});
    let send = |b: serde_json::Value| {
        r.post("/v1/chat/completions", ALICE)
            .header("idempotency-key", "op-42")
            .json(&b)
            .send()
    };
    let first = send(body.clone()).await.unwrap();
    assert_eq!(first.status(), 200);
    let first_body = first.text().await.unwrap();
    let again = send(body.clone()).await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["x-hwc-backend"], "small-be");
    assert_eq!(again.text().await.unwrap(), first_body);
    assert_eq!(small.calls(), 1, "model called once");
    let other = json!({"model": "small", "messages": [{"role": "user", "content": "different"}]});
    let (status, err) = error_of(send(other).await.unwrap()).await;
    assert_eq!(
        (status, err["code"].as_str().unwrap()),
        (422, "idempotency_key_reused")
    );
    // Another key's same Idempotency-Key is its own.
    let resp = r
        .post("/v1/chat/completions", LOCAL_KEY)
        .header("idempotency-key", "op-42")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("idempotent-replayed").is_none());
    assert_eq!(small.calls(), 2);
    r.stop().await;
}

#[tokio::test]
async fn idempotent_answers_and_budgets_survive_a_restart() {
    let small = Upstream::always(answer("small")).await;
    let big = Upstream::always(answer("big")).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&small.url(), &big.url());
    let r = Router::start_in(dir.path(), &cfg).await;
    let body = json!({"model": "small", "messages": [{"role": "user", "content": "x"}]});
    let resp = r
        .post("/v1/chat/completions", LIMITED_KEY)
        .header("idempotency-key", "k1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // 15 tokens of the 30 budget; one more request reaches it.
    assert_eq!(r.chat(LIMITED_KEY, "small", false).await.status(), 200);
    r.stop().await;

    let r = Router::start_in(dir.path(), &cfg).await;
    let (status, err) = error_of(r.chat(LIMITED_KEY, "small", false).await).await;
    assert_eq!(
        (status, err["code"].as_str().unwrap()),
        (429, "budget_exceeded")
    );
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("30 of its 30 tokens"),
        "{err}"
    );
    let resp = r
        .post("/v1/chat/completions", ALICE)
        .header("idempotency-key", "k1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers().get("idempotent-replayed").is_none(),
        "stored per key"
    );
    let status: serde_json::Value = r.status(LIMITED_KEY).await;
    assert_eq!(status["usage"]["tokens_by_key"]["limited"], 30);
    assert!(
        status["usage"]["tokens_by_key"].get("alice").is_none(),
        "a key sees only its own usage"
    );
    r.stop().await;
    assert_eq!(small.calls(), 3);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let (r, _, _) = setup().await;
    assert_eq!(r.chat(LIMITED_KEY, "small", false).await.status(), 200);
    // The limited key's budget (30) is not reached by one answer (15); its rate (2/min) is by the third.
    assert_eq!(r.chat(LIMITED_KEY, "small", false).await.status(), 200);
    let resp = r.chat(LIMITED_KEY, "small", false).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    r.stop().await;
}

#[tokio::test]
async fn responses_api_passes_through_or_is_translated() {
    let (r, small, big) = setup().await;
    let body = json!({"model": "big", "input": "hello"});
    let resp = r
        .post("/v1/responses", ALICE)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (path, _, sent) = big.request(0);
    assert_eq!(path, "responses");
    assert_eq!(sent["model"], "b");
    // A backend without responses_api gets it as chat (tests/responses.rs).
    let resp = r
        .post("/v1/responses", ALICE)
        .json(&json!({"model": "small", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "response");
    assert_eq!(small.request(0).0, "chat/completions");
    r.stop().await;
}

#[tokio::test]
async fn concurrency_limit_sheds_with_503_and_retry_after() {
    let slow = Upstream::always(Act::After(
        std::time::Duration::from_millis(500),
        Box::new(answer("slow")),
    ))
    .await;
    let cfg = format!(
        "[server]\nmax_concurrency = 2\n[[backends]]\nname = \"s\"\nkind = \"openai\"\nurls = [\"{}\"]\n[models.small]\ntargets = [{{ backend = \"s\", model = \"m\" }}]\n",
        slow.url()
    );
    let r = Router::start(&cfg).await;
    let reqs: Vec<_> = (0..6).map(|_| r.chat(ALICE, "small", false)).collect();
    let statuses: Vec<u16> = futures_util::future::join_all(reqs)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        4,
        "{statuses:?}"
    );
    let resp = futures_util::future::join_all((0..3).map(|_| r.chat(ALICE, "small", false))).await;
    let shed = resp.into_iter().find(|r| r.status() == 503).unwrap();
    assert_eq!(shed.headers()["retry-after"], "1");
    let (_, err) = error_of(shed).await;
    assert_eq!(err["code"], "overloaded");
    assert!(metric(&r.metrics().await, "hwc_router_http_shed_total", &[]).unwrap() >= 4.0);
    r.stop().await;
}

#[tokio::test]
async fn embeddings_pass_through_with_usage() {
    let up = Upstream::always(Act::Json(
        200,
        json!({"object": "list", "model": "e", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
               "usage": {"prompt_tokens": 3, "total_tokens": 3}}),
        None,
    ))
    .await;
    let r = Router::start(&config(&up.url(), &common::dead_url())).await;
    let resp = r
        .post("/v1/embeddings", ALICE)
        .json(&json!({"model": "small", "input": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["data"][0]["embedding"][1], 0.2);
    let (path, _, sent) = up.request(0);
    assert_eq!(
        (path.as_str(), sent["model"].as_str()),
        ("embeddings", Some("s"))
    );
    assert_eq!(
        metric(
            &r.metrics().await,
            "hwc_router_tokens_total",
            &["kind=\"prompt\""]
        ),
        Some(3.0)
    );
    r.stop().await;
}

#[tokio::test]
async fn route_explain_says_where_a_request_would_go_and_sends_nothing() {
    let (r, small, big) = setup().await;
    let explain = |body: serde_json::Value, query: &'static str| {
        r.post(&format!("/v1/route/explain{query}"), ALICE)
            .json(&body)
            .send()
    };
    let tools: Vec<_> = (0..3)
        .map(|i| json!({"type": "function", "function": {"name": format!("t{i}"), "parameters": {"type": "object"}}}))
        .collect();
    let v: serde_json::Value = explain(
        json!({"model": "auto", "messages": [{"role": "user", "content": "x"}], "tools": tools}),
        "",
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(v["model"], "big", "{v}");
    assert_eq!(v["decision"], "auto-strong", "{v}");
    assert_eq!(v["rule"], "tools", "{v}");
    assert_eq!(v["candidates"][0]["backend"], "big-be", "{v}");
    assert_eq!(v["candidates"][0]["upstream_model"], "b");
    assert_eq!(
        v["candidates"][0]["state"], "unknown",
        "not contacted yet: {v}"
    );
    assert_eq!(v["privacy"], "allow-cloud");
    let v: serde_json::Value = explain(
        json!({"model": "auto", "messages": [{"role": "user", "content": "x"}]}),
        "",
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        (v["model"].as_str(), v["decision"].as_str()),
        (Some("small"), Some("auto-default")),
        "{v}"
    );
    // The request's own errors, as the real endpoint would give them.
    let (status, err) = error_of(
        explain(
            json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
            "",
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (404, Some("model_not_found"))
    );
    let v: serde_json::Value = explain(
        json!({"model": "small", "input": "x", "stream": true}),
        "?endpoint=responses",
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(v["candidates"][0]["backend"], "small-be", "{v}");
    let (status, _) = error_of(explain(json!({}), "?endpoint=fax").await.unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(small.calls() + big.calls(), 0, "nothing was sent");
    r.stop().await;
}
