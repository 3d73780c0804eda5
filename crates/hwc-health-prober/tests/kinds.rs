//! The remaining kinds: `openai` (with a deep one-token check) against the
//! real llama-server, `hwc` against a real hwc-ai daemon's `/readyz` (a
//! second prober), and `ollama`, `vllm`, `open_webui` against scripted
//! servers speaking their documented APIs: Ollama's server, vLLM (needs a
//! GPU) and Open WebUI can't run on this machine.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use axum::routing::{get, post};
use axum::Json;
use common::Prober;
use serde_json::json;
use std::time::Duration;

async fn serve(app: axum::Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    url
}

#[tokio::test]
async fn every_other_kind_against_its_peer() {
    let llama = hwc_testkit::llama::start();
    let other = Prober::start("").await;
    let ollama = serve(
        axum::Router::new()
            .route(
                "/api/version",
                get(|| async { Json(json!({"version": "0.13.0"})) }),
            )
            .route(
                "/api/tags",
                get(|| async {
                    Json(json!({"models": [{"name": "gpt-oss:20b", "digest": "abc"}]}))
                }),
            )
            .route("/api/ps", get(|| async { Json(json!({"models": []})) }))
            .route(
                "/api/generate",
                post(|| async { Json(json!({"response": "p", "done": true})) }),
            ),
    )
    .await;
    let vllm = serve(axum::Router::new().route("/health", get(|| async { "" }))).await;
    let webui = serve(
        axum::Router::new().route("/health", get(|| async { Json(json!({"status": true})) })),
    )
    .await;

    let cfg = format!(
        r#"
[defaults]
# Generous: the deep probe generates with the real llama-server, which a
# loaded 2-core CI machine can keep busy for well over a second.
interval = "2s"
timeout = "2s"
failure_threshold = 1
[[targets]]
name = "llama-openai"
kind = "openai"
url = "{llama}/v1"
deep = true
model = "{model}"
[[targets]]
name = "llama-openai-missing"
kind = "openai"
url = "{llama}/v1"
model = "gpt-oss-120b"
[[targets]]
name = "other-prober"
kind = "hwc"
url = "{other}"
[[targets]]
name = "ollama"
kind = "ollama"
url = "{ollama}"
models = ["gpt-oss:20b"]
generate = true
[[targets]]
name = "ollama-not-loaded"
kind = "ollama"
url = "{ollama}"
models = ["gpt-oss:20b"]
loaded = true
[[targets]]
name = "ollama-missing"
kind = "ollama"
url = "{ollama}"
models = ["qwen3"]
[[targets]]
name = "vllm"
kind = "vllm"
url = "{vllm}"
[[targets]]
name = "webui"
kind = "open_webui"
url = "{webui}"
"#,
        llama = llama.base(),
        model = llama_model_id(&llama.base()).await,
        other = other.url,
    );
    let p = Prober::start(&cfg).await;
    for name in ["llama-openai", "other-prober", "ollama", "vllm", "webui"] {
        p.wait_state(name, "up", Duration::from_secs(30), &mut Vec::new())
            .await;
    }
    for (name, why) in [
        ("llama-openai-missing", "does not list model `gpt-oss-120b`"),
        ("ollama-not-loaded", "is not loaded"),
        ("ollama-missing", "model `qwen3` is not pulled"),
    ] {
        let t = p
            .wait_state(name, "down", Duration::from_secs(15), &mut Vec::new())
            .await;
        assert!(
            t["last_error"].as_str().unwrap().contains(why),
            "{name}: {t}"
        );
    }
    p.stop().await;
    other.stop().await;
}

/// The id llama-server lists for its model (its file name).
async fn llama_model_id(base: &str) -> String {
    let v: serde_json::Value = reqwest::get(format!("{base}/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["data"][0]["id"].as_str().unwrap().to_string()
}
