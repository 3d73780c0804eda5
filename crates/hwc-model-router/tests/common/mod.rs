//! Test harness: the router in-process on a free port, scripted upstreams
//! for fault injection, and the real llama-server for everything else.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

#[allow(unused_imports)]
pub use hwc_testkit::scripted;

#[allow(unused_imports)] // not every test binary starts a llama-server
pub use hwc_testkit::llama;

use hwc_model_router::config::RouterConfig;
use hwc_testkit::inprocess::InProcess;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A router running in this process.
pub struct Router {
    pub addr: SocketAddr,
    pub url: String,
    pub dir: PathBuf,
    daemon: InProcess,
    _tmp: Option<tempfile::TempDir>,
}

pub const ALICE: &str = "sk-alice";
pub const LOCAL_KEY: &str = "sk-local";
pub const LIMITED_KEY: &str = "sk-limited";

/// Keys every test config gets.
pub const KEYS: &str = r#"
[[keys]]
name = "alice"
secret = "sk-alice"

[[keys]]
name = "local"
secret = "sk-local"
privacy = "local-only"

[[keys]]
name = "limited"
secret = "sk-limited"
models = ["small"]
requests_per_minute = 2
daily_token_budget = 30
"#;

impl Router {
    /// Starts a router whose config is `toml` plus a keys file and a state
    /// database in a fresh temporary directory.
    pub async fn start(toml: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut r = Self::start_in(&dir, toml).await;
        r._tmp = Some(tmp);
        r
    }

    /// Starts a router with its state in `dir` (to test restarts).
    pub async fn start_in(dir: &std::path::Path, toml: &str) -> Self {
        std::fs::write(dir.join("keys.toml"), KEYS).unwrap();
        let full = format!(
            "[auth]\nkeys_file = \"{keys}\"\n[state]\ndatabase = \"{db}\"\nflush_interval = \"50ms\"\n{toml}",
            keys = dir.join("keys.toml").display(),
            db = dir.join("router.sqlite").display(),
        );
        let cfg: RouterConfig = hwc_ai_core::config::load_str(&full).unwrap_or_else(|e| {
            panic!(
                "test config rejected: {e}
{full}"
            )
        });
        let daemon = InProcess::daemon(hwc_model_router::daemon(cfg)).await;
        Self {
            addr: daemon.addr,
            url: daemon.url.clone(),
            dir: dir.to_path_buf(),
            daemon,
            _tmp: None,
        }
    }

    /// Stops the router and waits for its drain and final flush.
    pub async fn stop(self) {
        self.daemon.stop().await;
    }

    pub fn post(&self, path: &str, key: &str) -> reqwest::RequestBuilder {
        client()
            .post(format!("{}{path}", self.url))
            .bearer_auth(key)
    }

    /// POST /v1/responses as `key`: the status and the JSON answer.
    pub async fn respond(&self, key: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let resp = self
            .post("/v1/responses", key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    pub fn get(&self, path: &str, key: &str) -> reqwest::RequestBuilder {
        client().get(format!("{}{path}", self.url)).bearer_auth(key)
    }

    /// POST /v1/chat/completions with a one-message body.
    pub async fn chat(&self, key: &str, model: &str, stream: bool) -> reqwest::Response {
        self.post("/v1/chat/completions", key)
            .json(&serde_json::json!({
                "model": model,
                "stream": stream,
                "max_tokens": 8,
                "messages": [{"role": "user", "content": "Say hi."}],
            }))
            .send()
            .await
            .unwrap()
    }

    /// The `/status` document, as `key` sees it.
    pub async fn status(&self, key: &str) -> serde_json::Value {
        self.get("/status", key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        client()
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// An address nothing listens on.
pub fn dead_url() -> String {
    format!("http://127.0.0.1:{}/v1", hwc_testkit::free_port())
}

/// Error JSON of a response, checking the OpenAI shape.
pub async fn error_of(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"].is_string(),
        "not an OpenAI error: {v}"
    );
    assert!(v["error"]["type"].is_string(), "not an OpenAI error: {v}");
    assert!(v["error"].get("code").is_some(), "not an OpenAI error: {v}");
    (status, v["error"].clone())
}
