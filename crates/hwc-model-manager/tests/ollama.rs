//! Reconciling Ollama models. Ollama's server can't be installed on this
//! machine, so these tests run against an Ollama protocol double, marked as
//! such, that follows the documented API: `/api/version`, `/api/tags` with
//! digests, `/api/ps`, NDJSON `/api/pull` progress ending in `success` or an
//! `{"error"}` line, HTTP 412 for "requires a newer Ollama", a pull cut
//! mid-way, a slow pull, `/api/generate`, `/api/delete`.
#![allow(clippy::unwrap_used, missing_docs)]

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Json;
use hwc_model_manager::config::ManagerConfig;

mod common;
use common::Running;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the double answers the next pull of a model.
#[derive(Clone)]
enum Pull {
    /// Progress in 4 steps, then success with this digest.
    Ok(&'static str),
    /// Like Ok, with a pause between steps.
    Slow(&'static str, Duration),
    /// HTTP 412 before any progress.
    NeedsNewer,
    /// Progress, then the connection ends without `success`.
    Cut,
    /// Progress, then an `{"error": ...}` line (Ollama's in-stream error).
    ErrorLine(&'static str),
}

#[derive(Default)]
struct Double {
    present: BTreeMap<String, String>,
    pulls: BTreeMap<String, VecDeque<Pull>>,
    pull_calls: Vec<String>,
    deleted: Vec<String>,
    generated: Vec<(String, Value)>,
}

type Shared = Arc<Mutex<Double>>;

async fn serve_double(d: Shared) -> String {
    let app = axum::Router::new()
        .route(
            "/api/version",
            get(|| async { Json(json!({"version": "0.13.0"})) }),
        )
        .route(
            "/api/tags",
            get(|State(d): State<Shared>| async move {
                let models: Vec<Value> = d
                    .lock()
                    .unwrap()
                    .present
                    .iter()
                    .map(|(n, dg)| json!({"name": n, "model": n, "digest": dg, "size": 1000}))
                    .collect();
                Json(json!({ "models": models }))
            }),
        )
        .route("/api/ps", get(|| async { Json(json!({"models": []})) }))
        .route("/api/pull", post(pull))
        .route(
            "/api/generate",
            post(
                |State(d): State<Shared>, Json(body): Json<Value>| async move {
                    let model = body["model"].as_str().unwrap_or("").to_string();
                    d.lock().unwrap().generated.push((model, body));
                    Json(json!({"response": "OK", "done": true}))
                },
            ),
        )
        .route(
            "/api/delete",
            delete(
                |State(d): State<Shared>, Json(body): Json<Value>| async move {
                    let name = body["model"]
                        .as_str()
                        .or(body["name"].as_str())
                        .unwrap_or("")
                        .to_string();
                    let mut g = d.lock().unwrap();
                    g.present.remove(&name);
                    g.deleted.push(name);
                    StatusCode::OK
                },
            ),
        )
        .with_state(d);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    url
}

async fn pull(State(d): State<Shared>, Json(body): Json<Value>) -> Response {
    let name = body["model"]
        .as_str()
        .or(body["name"].as_str())
        .unwrap_or("")
        .to_string();
    let behaviour = {
        let mut g = d.lock().unwrap();
        g.pull_calls.push(name.clone());
        g.pulls
            .get_mut(&name)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Pull::Ok("ffff"))
    };
    let (digest, pause, cut) = match behaviour {
        Pull::NeedsNewer => {
            return (
                StatusCode::PRECONDITION_FAILED,
                Json(json!({"error": "pull model manifest: 412: The model you are attempting to pull requires a newer version of Ollama."})),
            )
                .into_response()
        }
        Pull::Ok(dg) => (dg, Duration::ZERO, false),
        Pull::Slow(dg, p) => (dg, p, false),
        Pull::Cut => ("", Duration::ZERO, true),
        Pull::ErrorLine(msg) => {
            let line = format!("{{\"status\":\"pulling manifest\"}}\n{{\"error\":\"{msg}\"}}\n");
            return Response::builder().header("content-type", "application/x-ndjson").body(Body::from(line)).unwrap();
        }
    };
    let stream = async_stream::stream! {
        yield Ok::<_, std::io::Error>(bytes::Bytes::from("{\"status\":\"pulling manifest\"}\n"));
        for done in [0u64, 250, 500, 750, 1000] {
            tokio::time::sleep(pause).await;
            yield Ok(bytes::Bytes::from(format!("{{\"status\":\"pulling abc\",\"digest\":\"sha256:abc\",\"total\":1000,\"completed\":{done}}}\n")));
            if cut && done == 500 {
                return;
            }
        }
        yield Ok(bytes::Bytes::from("{\"status\":\"verifying sha256 digest\"}\n{\"status\":\"writing manifest\"}\n"));
        d.lock().unwrap().present.insert(name.clone(), digest.to_string());
        yield Ok(bytes::Bytes::from("{\"status\":\"success\"}\n"));
    };
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn config(url: &str, body: &str) -> ManagerConfig {
    let dir = std::env::temp_dir();
    let toml = format!(
        "[ollama]\nurl = \"{url}\"\nmodels_dir = \"{}\"\n[manager]\nretry_base = \"10ms\"\nreserve = 0\n{body}",
        dir.display()
    );
    hwc_ai_core::config::load_str(&toml).unwrap_or_else(|e| {
        panic!(
            "{e}
{toml}"
        )
    })
}

#[tokio::test]
async fn pulls_with_progress_verifies_and_keeps_loaded() {
    let d: Shared = Default::default();
    d.lock().unwrap().pulls.insert(
        "gpt-oss:20b".into(),
        VecDeque::from([Pull::Slow("aaaa", Duration::from_millis(150))]),
    );
    let url = serve_double(d.clone()).await;
    let m = Running::start(config(
        &url,
        "[[ollama_models]]\nname = \"gpt-oss:20b\"\nverify = true\nkeep_loaded = true\n",
    ))
    .await;
    // Progress shows while the pull runs: bytes done of the layer's total.
    let t0 = Instant::now();
    let pulling = loop {
        let p = m.model("gpt-oss:20b").await;
        if p["state"] == "pulling" && p["total"] == 1000 && p["done"].as_u64().unwrap() > 0 {
            break p;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "no pull progress: {p}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(pulling["rate"].as_f64().unwrap() > 0.0, "{pulling}");

    m.wait("gpt-oss:20b", "present", Duration::from_secs(10))
        .await;
    {
        let g = d.lock().unwrap();
        assert_eq!(g.pull_calls, ["gpt-oss:20b"]);
        assert_eq!(g.generated.len(), 1);
        assert_eq!(g.generated[0].1["keep_alive"], -1, "kept loaded");
    }
    let metrics = m.metrics().await;
    assert!(
        metrics.contains("hwc_manager_model_present{model=\"gpt-oss:20b\",kind=\"ollama\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("hwc_manager_verify_total{model=\"gpt-oss:20b\",result=\"ok\"} 1"));
}

#[tokio::test]
async fn pinned_digest_mismatch_is_permanent_and_names_both() {
    let d: Shared = Default::default();
    d.lock()
        .unwrap()
        .pulls
        .insert("llama3:8b".into(), VecDeque::from([Pull::Ok("bbbb")]));
    let url = serve_double(d.clone()).await;
    let pin = "a".repeat(64);
    let m = Running::start(config(
        &url,
        &format!("[[ollama_models]]\nname = \"llama3:8b\"\ndigest = \"sha256:{pin}\"\n"),
    ))
    .await;
    let f = m.wait("llama3:8b", "failed", Duration::from_secs(5)).await;
    assert_eq!(f["permanent"], true);
    let reason = f["reason"].as_str().unwrap();
    assert!(reason.contains(&pin) && reason.contains("bbbb"), "{reason}");
}

#[tokio::test]
async fn needs_newer_ollama_is_permanent_and_not_retried() {
    let d: Shared = Default::default();
    d.lock().unwrap().pulls.insert(
        "qwen3:next".into(),
        VecDeque::from([Pull::NeedsNewer, Pull::Ok("cccc")]),
    );
    let url = serve_double(d.clone()).await;
    let m = Running::start(config(&url, "[[ollama_models]]\nname = \"qwen3:next\"\n")).await;
    let f = m.wait("qwen3:next", "failed", Duration::from_secs(5)).await;
    assert_eq!(f["permanent"], true);
    assert!(
        f["reason"]
            .as_str()
            .unwrap()
            .contains("newer version of Ollama"),
        "{f}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        d.lock().unwrap().pull_calls.len(),
        1,
        "no retry of a permanent failure"
    );
    // An operator's POST /reconcile tries again.
    let resp = reqwest::Client::new()
        .post(format!("{}/reconcile", m.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    m.wait("qwen3:next", "present", Duration::from_secs(5))
        .await;
}

#[tokio::test]
async fn a_cut_pull_is_retried_and_never_reported_present_early() {
    let d: Shared = Default::default();
    d.lock().unwrap().pulls.insert(
        "mistral:7b".into(),
        VecDeque::from([Pull::Cut, Pull::Cut, Pull::Ok("dddd")]),
    );
    let url = serve_double(d.clone()).await;
    let m = Running::start(config(
        &url,
        "[[ollama_models]]\nname = \"mistral\"\n[[ollama_models]]\nname = \"mistral:7b\"\n",
    ))
    .await;
    m.wait("mistral:7b", "present", Duration::from_secs(5))
        .await;
    assert_eq!(
        d.lock()
            .unwrap()
            .pull_calls
            .iter()
            .filter(|n| *n == "mistral:7b")
            .count(),
        3
    );
    m.wait("mistral:latest", "present", Duration::from_secs(5))
        .await;
}

#[tokio::test]
async fn prune_removes_exact_undeclared_names_only() {
    let d: Shared = Default::default();
    {
        let mut g = d.lock().unwrap();
        for n in ["llama3:8b", "llama3:8b-instruct", "old:1"] {
            g.present.insert(n.into(), "eeee".into());
        }
    }
    let url = serve_double(d.clone()).await;
    let mut cfg = config(&url, "[[ollama_models]]\nname = \"llama3:8b\"\n");
    cfg.manager.prune = true;
    let m = Running::start(cfg).await;
    m.wait("llama3:8b", "present", Duration::from_secs(5)).await;
    let t0 = Instant::now();
    while d.lock().unwrap().deleted.len() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut deleted = d.lock().unwrap().deleted.clone();
    deleted.sort();
    assert_eq!(deleted, ["llama3:8b-instruct", "old:1"]);
    assert!(d.lock().unwrap().present.contains_key("llama3:8b"));
}

#[tokio::test]
async fn without_prune_undeclared_models_are_listed_not_touched() {
    let d: Shared = Default::default();
    d.lock()
        .unwrap()
        .present
        .insert("stray:1".into(), "ffff".into());
    let url = serve_double(d.clone()).await;
    let m = Running::start(config(&url, "")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(m.status().await["undeclared"], json!(["stray:1"]));
    assert!(d.lock().unwrap().deleted.is_empty());
}

#[tokio::test]
async fn an_error_line_in_the_pull_stream_is_reported_with_its_words() {
    let d: Shared = Default::default();
    d.lock().unwrap().pulls.insert(
        "nosuch:1b".into(),
        VecDeque::from([Pull::ErrorLine("pull model manifest: file does not exist")]),
    );
    let url = serve_double(d.clone()).await;
    let m = Running::start(config(&url, "[[ollama_models]]\nname = \"nosuch:1b\"\n")).await;
    let f = m.wait("nosuch:1b", "failed", Duration::from_secs(5)).await;
    assert!(
        f["reason"]
            .as_str()
            .unwrap()
            .contains("file does not exist"),
        "{f}"
    );
    assert_eq!(f["permanent"], true, "a missing model is not retried");
    assert_eq!(d.lock().unwrap().pull_calls.len(), 1);
    let metrics = m.metrics().await;
    assert!(
        metrics.contains("hwc_manager_permanent_failures_total{model=\"nosuch:1b\"} 1"),
        "{metrics}"
    );
}
