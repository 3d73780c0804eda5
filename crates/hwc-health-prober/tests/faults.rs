//! HTTP fault injection against the prober: slow answers past the timeout,
//! 5xx, bad JSON, connection refused, and a server that accepts and never
//! answers. These servers are scripted because no real one misbehaves on
//! demand; the real peers are in llama.rs and mcp.rs.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use axum::routing::get;
use axum::Router;
use common::Prober;
use hwc_testkit::metric;
use std::time::Duration;

async fn serve(app: Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    url
}

#[tokio::test]
async fn each_fault_is_down_with_its_reason() {
    let ok = serve(Router::new().route(
        "/health",
        get(|| async { axum::Json(serde_json::json!({"status": true})) }),
    ))
    .await;
    let slow = serve(Router::new().route(
        "/health",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        }),
    ))
    .await;
    let err500 = serve(Router::new().route(
        "/health",
        get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
    ))
    .await;
    let garbage = serve(Router::new().route("/health", get(|| async { "<html>not json" }))).await;
    let refused = format!("http://127.0.0.1:{}", hwc_testkit::free_port());
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (s, _) = silent.accept().await.unwrap();
            held.push(s);
        }
    });

    let target = |name: &str, url: &str| {
        format!(
            "[[targets]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}/health\"\njson_pointer = \"/status\"\njson_equals = true\n"
        )
    };
    let cfg = format!(
        "[defaults]\ninterval = \"200ms\"\ntimeout = \"150ms\"\nfailure_threshold = 2\n{}{}{}{}{}{}",
        target("ok", &ok),
        target("slow", &slow),
        target("err500", &err500),
        target("garbage", &garbage),
        target("refused", &refused),
        target("silent", &silent_url),
    );
    let p = Prober::start(&cfg).await;
    let mut seen = Vec::new();
    p.wait_state("ok", "up", Duration::from_secs(3), &mut seen)
        .await;
    let cases = [
        ("slow", "timeout"),
        ("err500", "answered 500"),
        ("garbage", "not JSON"),
        ("refused", "cannot connect"),
        ("silent", "timeout"),
    ];
    for (name, why) in cases {
        let mut seen = Vec::new();
        let t = p
            .wait_state(name, "down", Duration::from_secs(3), &mut seen)
            .await;
        assert!(
            t["last_error"].as_str().unwrap().contains(why),
            "{name}: {t}"
        );
        assert!(t["consecutive_failures"].as_u64().unwrap() >= 2);
        assert!(
            !seen.contains(&"up".to_string()),
            "{name} never up: {seen:?}"
        );
    }
    let m = p.metrics().await;
    assert_eq!(
        metric(&m, "hwc_prober_probe_success", &["target=\"ok\""]),
        Some(1.0)
    );
    assert_eq!(
        metric(&m, "hwc_prober_probe_success", &["target=\"silent\""]),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &m,
            "hwc_prober_target_state",
            &["target=\"err500\"", "state=\"down\""]
        ),
        Some(1.0)
    );
    assert_eq!(metric(&m, "hwc_prober_targets_up", &[]), Some(1.0));
    assert!(
        metric(
            &m,
            "hwc_prober_last_success_timestamp_seconds",
            &["target=\"ok\""]
        )
        .unwrap()
            > 1.7e9
    );
    let s = p.status().await;
    assert_eq!(
        (s["targets_up"].as_u64(), s["targets_total"].as_u64()),
        (Some(1), Some(6))
    );
    p.stop().await;
}

#[tokio::test]
async fn status_needs_a_token_when_tokens_are_configured() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let p = Prober::start(&format!(
        "[auth]\ntoken_files = [\"{}\"]\n",
        token.display()
    ))
    .await;
    let c = reqwest::Client::new();
    assert_eq!(
        c.get(format!("{}/status", p.url))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let ok = c
        .get(format!("{}/status", p.url))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        c.get(format!("{}/metrics", p.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    p.stop().await;
}
