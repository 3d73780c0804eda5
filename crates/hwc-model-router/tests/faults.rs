//! Fault injection through scripted upstreams: fallback, timeouts, slow
//! first tokens, cut streams, 429 with Retry-After, garbage bodies,
//! cooldowns, and privacy that never lets a local-only request reach a
//! cloud backend.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::scripted::{answer, chunk, stream_of, Act, Upstream};
use common::{error_of, Router, ALICE, LOCAL_KEY};
use futures_util::StreamExt;
use hwc_testkit::metric;
use serde_json::json;
use std::time::{Duration, Instant};

/// A config with model `small` served by `primary` then `secondary`.
fn two_backends(primary: &str, secondary: &str, extra: &str) -> String {
    format!(
        r#"
[[backends]]
name = "primary"
kind = "openai"
urls = ["{primary}"]
first_token_timeout = "400ms"
[[backends]]
name = "secondary"
kind = "openai"
locality = "cloud"
urls = ["{secondary}"]
first_token_timeout = "400ms"
[models.small]
targets = [{{ backend = "primary", model = "up-a" }}, {{ backend = "secondary", model = "up-b" }}]
[fallback]
backoff_base = "1ms"
{extra}
"#
    )
}

#[tokio::test]
async fn falls_back_on_500_and_says_where_it_went() {
    let a = Upstream::always(Act::Json(500, json!({"error": "boom"}), None)).await;
    let b = Upstream::always(answer("from b")).await;
    let r = Router::start(&two_backends(&a.url(), &b.url(), "")).await;
    let resp = r.chat(ALICE, "small", false).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-hwc-backend"], "secondary");
    assert!(resp.headers()["x-hwc-route"]
        .to_str()
        .unwrap()
        .contains("model=small"));
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "from b");
    assert_eq!(
        b.request(0).2["model"],
        "up-b",
        "model rewritten for the backend"
    );
    let m = r.metrics().await;
    assert_eq!(
        metric(
            &m,
            "hwc_router_fallbacks_total",
            &["backend=\"primary\"", "status_5xx"]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "hwc_router_requests_total",
            &["backend=\"secondary\"", "outcome=\"ok\""]
        ),
        Some(1.0)
    );
    r.stop().await;
}

#[tokio::test]
async fn connect_error_hang_and_garbage_fall_back() {
    for bad in [
        Upstream::always(Act::Hang).await.url(),
        Upstream::always(Act::Raw("<html>oops")).await.url(),
        common::dead_url(),
    ] {
        let b = Upstream::always(answer("ok")).await;
        let r = Router::start(&two_backends(&bad, &b.url(), "")).await;
        let t0 = Instant::now();
        let resp = r.chat(ALICE, "small", false).await;
        assert_eq!(resp.status(), 200, "{bad}");
        assert_eq!(resp.headers()["x-hwc-backend"], "secondary");
        assert!(t0.elapsed() < Duration::from_secs(5));
        r.stop().await;
    }
}

#[tokio::test]
async fn all_failing_gives_502_naming_each_attempt() {
    let a = Upstream::always(Act::Json(503, json!({}), None)).await;
    let b = Upstream::always(Act::Raw("not json")).await;
    let r = Router::start(&two_backends(&a.url(), &b.url(), "max_attempts = 2")).await;
    let (status, err) = error_of(r.chat(ALICE, "small", false).await).await;
    assert_eq!(status, 502);
    assert_eq!(err["code"], "upstream_failed");
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("primary (status_5xx") && msg.contains("secondary (bad_body"),
        "{msg}"
    );
    r.stop().await;
}

#[tokio::test]
async fn client_errors_pass_through_without_retry() {
    let a = Upstream::always(Act::Json(
        400,
        json!({"error": {"message": "context too long", "type": "invalid_request_error"}}),
        None,
    ))
    .await;
    let b = Upstream::always(answer("never")).await;
    let r = Router::start(&two_backends(&a.url(), &b.url(), "")).await;
    let (status, err) = error_of(r.chat(ALICE, "small", false).await).await;
    assert_eq!(status, 400);
    assert_eq!(err["message"], "context too long");
    assert_eq!(b.calls(), 0);
    r.stop().await;
}

#[tokio::test]
async fn upstream_429_cools_down_and_surfaces_retry_after() {
    let a = Upstream::always(Act::Json(
        429,
        json!({"error": {"message": "slow down"}}),
        Some(30),
    ))
    .await;
    let cfg = format!(
        r#"
[[backends]]
name = "only"
kind = "openai"
urls = ["{}"]
[models.small]
targets = [{{ backend = "only", model = "m" }}]
[fallback]
backoff_base = "1ms"
"#,
        a.url()
    );
    let r = Router::start(&cfg).await;
    let resp = r.chat(ALICE, "small", false).await;
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((29..=30).contains(&retry), "{retry}");
    assert_eq!(
        a.calls(),
        1,
        "Retry-After of 30 s is not waited out inside one request"
    );
    // Cooling now: the router answers without calling the upstream.
    let (status, err) = error_of(r.chat(ALICE, "small", false).await).await;
    assert_eq!(status, 503);
    assert_eq!(err["code"], "backends_cooling_down");
    assert_eq!(a.calls(), 1);
    let ready = common::client()
        .get(format!("{}/readyz", r.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    r.stop().await;
}

#[tokio::test]
async fn repeated_failures_cool_down_then_come_back() {
    let a = Upstream::start(
        vec![Act::Json(500, json!({}), None); 3],
        answer("a is back"),
    )
    .await;
    let b = Upstream::always(answer("b")).await;
    let r = Router::start(&two_backends(
        &a.url(),
        &b.url(),
        "cooldown = \"300ms\"\nmax_attempts = 2",
    ))
    .await;
    for _ in 0..3 {
        assert_eq!(
            r.chat(ALICE, "small", false).await.headers()["x-hwc-backend"],
            "secondary"
        );
    }
    assert_eq!(a.calls(), 3);
    // Cooling: a is skipped without being called.
    assert_eq!(
        r.chat(ALICE, "small", false).await.headers()["x-hwc-backend"],
        "secondary"
    );
    assert_eq!(a.calls(), 3);
    let m = r.metrics().await;
    assert_eq!(
        metric(&m, "hwc_router_backend_cooldowns_total", &["primary"]),
        Some(1.0)
    );
    assert_eq!(metric(&m, "hwc_router_backend_up", &["primary"]), Some(0.0));
    tokio::time::sleep(Duration::from_millis(350)).await;
    let resp = r.chat(ALICE, "small", false).await;
    assert_eq!(
        resp.headers()["x-hwc-backend"],
        "primary",
        "back by itself after the cooldown"
    );
    r.stop().await;
}

#[tokio::test]
async fn local_only_never_reaches_cloud() {
    let local = Upstream::always(Act::Json(500, json!({}), None)).await;
    let cloud = Upstream::always(answer("cloud")).await;
    let extra = "max_attempts = 3\ncooldown_failures = 100\ncooldown_min_requests = 100";
    let r = Router::start(&two_backends(&local.url(), &cloud.url(), extra)).await;
    // By key.
    let (status, err) = error_of(r.chat(LOCAL_KEY, "small", false).await).await;
    assert_eq!(status, 502, "{err}");
    // By header.
    let resp = r
        .post("/v1/chat/completions", ALICE)
        .header("x-hwc-privacy", "local-only")
        .json(&json!({"model": "small", "messages": [{"role": "user", "content": "secret"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    // A local-only key can't lift its privacy with the header.
    let resp = r
        .post("/v1/chat/completions", LOCAL_KEY)
        .header("x-hwc-privacy", "allow-cloud")
        .json(&json!({"model": "small", "messages": [{"role": "user", "content": "secret"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(
        cloud.calls(),
        0,
        "no local-only request reached the cloud backend"
    );
    // Without privacy the fallback does go to the cloud.
    assert_eq!(r.chat(ALICE, "small", false).await.status(), 200);
    assert_eq!(cloud.calls(), 1);
    r.stop().await;
}

#[tokio::test]
async fn local_only_without_local_backend_is_refused_clearly() {
    let cloud = Upstream::always(answer("cloud")).await;
    let cfg = format!(
        r#"
[[backends]]
name = "openai"
kind = "openai"
locality = "cloud"
urls = ["{}"]
[models.big]
targets = [{{ backend = "openai", model = "gpt" }}]
"#,
        cloud.url()
    );
    let r = Router::start(&cfg).await;
    let (status, err) = error_of(r.chat(LOCAL_KEY, "big", false).await).await;
    assert_eq!(status, 403);
    assert_eq!(err["code"], "no_local_backend");
    assert!(err["message"].as_str().unwrap().contains("local-only"));
    assert_eq!(cloud.calls(), 0);
    r.stop().await;
}

async fn sse_text(resp: reqwest::Response) -> String {
    let mut s = resp.bytes_stream();
    let mut out = String::new();
    while let Some(Ok(b)) = s.next().await {
        out.push_str(&String::from_utf8_lossy(&b));
    }
    out
}

#[tokio::test]
async fn slow_first_token_gets_keepalives_then_falls_back() {
    // primary: first token never arrives within the deadline.
    let slow = Act::Sse(vec![(Duration::from_secs(5), chunk("late"))], true);
    let a = Upstream::always(slow).await;
    let b = Upstream::always(stream_of(&["fast", "answer"], Duration::ZERO)).await;
    let mut cfg = two_backends(&a.url(), &b.url(), "");
    cfg = cfg.replace(
        "first_token_timeout = \"400ms\"",
        "first_token_timeout = \"700ms\"",
    );
    cfg.push_str("[streaming]\nkeepalive = \"200ms\"\n");
    let r = Router::start(&cfg).await;
    let resp = r.chat(ALICE, "small", true).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = sse_text(resp).await;
    assert!(text.starts_with(": keepalive\n\n"), "{text}");
    assert!(
        text.contains("\"fast\"") && text.contains("\"answer\""),
        "{text}"
    );
    assert!(!text.contains("late"));
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(
        !text.contains("usage"),
        "usage chunk only when asked: {text}"
    );
    assert_eq!(
        b.request(0).2["stream_options"]["include_usage"],
        true,
        "usage asked upstream for accounting"
    );
    r.stop().await;
}

#[tokio::test]
async fn stream_error_before_first_token_keeps_its_status() {
    let a = Upstream::always(Act::Json(
        400,
        json!({"error": {"message": "bad tool schema", "type": "invalid_request_error"}}),
        None,
    ))
    .await;
    let b = Upstream::always(stream_of(&["x"], Duration::ZERO)).await;
    let r = Router::start(&two_backends(&a.url(), &b.url(), "")).await;
    let (status, err) = error_of(r.chat(ALICE, "small", true).await).await;
    assert_eq!(status, 400);
    assert_eq!(err["message"], "bad tool schema");
    r.stop().await;
}

#[tokio::test]
async fn stream_cut_midway_ends_with_an_error_event_and_no_fallback() {
    let cut = Act::Sse(
        vec![
            (Duration::ZERO, chunk("one")),
            (Duration::from_millis(50), chunk("two")),
        ],
        false,
    );
    let a = Upstream::always(cut).await;
    let b = Upstream::always(stream_of(&["other"], Duration::ZERO)).await;
    let r = Router::start(&two_backends(&a.url(), &b.url(), "")).await;
    let resp = r.chat(ALICE, "small", true).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-hwc-backend"], "primary");
    let text = sse_text(resp).await;
    assert!(
        text.contains("\"one\"") && text.contains("\"two\""),
        "{text}"
    );
    assert!(text.contains("\"code\":\"stream_cut\""), "{text}");
    assert!(!text.contains("[DONE]"));
    assert_eq!(b.calls(), 0, "bytes reached the client: no fallback");
    let m = r.metrics().await;
    assert_eq!(
        metric(&m, "hwc_router_requests_total", &["outcome=\"stream_cut\""]),
        Some(1.0)
    );
    r.stop().await;
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_stream() {
    let words: Vec<String> = (0..200).map(|i| format!("w{i}")).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let a = Upstream::always(stream_of(&refs, Duration::from_millis(20))).await;
    let b = Upstream::always(answer("unused")).await;
    let r = Router::start(&two_backends(&a.url(), &b.url(), "")).await;
    let resp = r.chat(ALICE, "small", true).await;
    let mut s = resp.bytes_stream();
    let first = s.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("w0"));
    drop(s);
    let t0 = Instant::now();
    while a.dropped_streams() == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "upstream stream still running after client left"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
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
async fn reasoning_fields_come_out_under_one_name() {
    let reasoning = |field: &str| {
        format!(
            "data: {}\n\n",
            json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"up",
                   "choices":[{"index":0,"delta":{field: "thinking..."},"finish_reason":null}]})
        )
    };
    let a = Upstream::start(
        vec![Act::Sse(
            vec![
                (Duration::ZERO, reasoning("reasoning_content")),
                (Duration::ZERO, "data: [DONE]\n\n".into()),
            ],
            true,
        )],
        Act::Sse(
            vec![
                (Duration::ZERO, reasoning("reasoning")),
                (Duration::ZERO, "data: [DONE]\n\n".into()),
            ],
            true,
        ),
    )
    .await;
    let r = Router::start(&two_backends(&a.url(), &common::dead_url(), "")).await;
    for _ in 0..2 {
        let text = sse_text(r.chat(ALICE, "small", true).await).await;
        assert!(text.contains("\"reasoning\":\"thinking...\""), "{text}");
        assert!(!text.contains("reasoning_content"), "{text}");
    }
    r.stop().await;
}

#[tokio::test]
async fn replicas_share_the_load() {
    let a = Upstream::always(Act::After(Duration::from_millis(30), Box::new(answer("a")))).await;
    let b = Upstream::always(Act::After(Duration::from_millis(30), Box::new(answer("b")))).await;
    let cfg = format!(
        r#"
[[backends]]
name = "pool"
kind = "openai"
balance = "least_outstanding"
urls = ["{}", "{}"]
[models.small]
targets = [{{ backend = "pool", model = "m" }}]
"#,
        a.url(),
        b.url()
    );
    let r = Router::start(&cfg).await;
    let reqs: Vec<_> = (0..20).map(|_| r.chat(ALICE, "small", false)).collect();
    for resp in futures_util::future::join_all(reqs).await {
        assert_eq!(resp.status(), 200);
    }
    assert!(
        a.calls() >= 5 && b.calls() >= 5,
        "a={} b={}",
        a.calls(),
        b.calls()
    );
    r.stop().await;
}
