//! The bridge in-process with its binary as the children's guard, and a
//! small raw Streamable HTTP client for checks the official client hides.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    missing_docs
)]

use hwc_mcp_bridge::config::BridgeConfig;
use hwc_testkit::inprocess::InProcess;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_hwc-mcp-bridge");

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")).join(name)
}

/// A `[[servers]]` entry running the fault injector.
pub fn fault_server(name: &str, extra: &str) -> String {
    format!(
        "[[servers]]\nname = \"{name}\"\ncommand = \"/usr/bin/python3\"\nargs = [\"{}\"]\n{extra}\n",
        fixture("fault_server.py").display()
    )
}

pub struct Bridge {
    pub d: InProcess,
    pub http: reqwest::Client,
    pub token: Option<String>,
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Bridge {
    /// Starts the bridge with `toml` and waits until every server runs.
    pub async fn start(toml: &str) -> Self {
        let cfg: BridgeConfig = hwc_ai_core::config::load_str(toml).unwrap();
        let names: Vec<String> = cfg.servers.iter().map(|s| s.name.clone()).collect();
        let d = InProcess::daemon(hwc_mcp_bridge::daemon_with_guard(cfg, Some(BIN.into()))).await;
        let b = Self {
            d,
            http: reqwest::Client::new(),
            token: None,
        };
        for n in names {
            b.wait_running(&n, Duration::from_secs(30)).await;
        }
        b
    }

    pub fn with_token(mut self, t: &str) -> Self {
        self.token = Some(t.into());
        self
    }

    pub async fn state(&self, server: &str) -> Value {
        let r = self.get("/servers").await;
        r.body["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == server)
            .cloned()
            .unwrap_or(Value::Null)
    }

    pub async fn wait_running(&self, server: &str, within: Duration) -> Value {
        let t0 = Instant::now();
        loop {
            let s = self.state(server).await;
            // A per-session server has no resident child to wait for.
            if s["state"]["state"] == "running" || s["state"]["state"] == "per_session" {
                return s;
            }
            assert!(
                t0.elapsed() < within,
                "server {server} not running within {within:?}: {s}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        let mut req = self.http.get(format!("{}{path}", self.d.url));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        reply(req.send().await.unwrap()).await
    }

    /// POST `body` to `/mcp/<server>` with the session (if any) and extra headers.
    pub async fn post(
        &self,
        server: &str,
        sid: Option<&str>,
        body: &Value,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut req = self
            .http
            .post(format!("{}/mcp/{server}", self.d.url))
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(s) = sid {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-11-25");
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        reply(req.send().await.unwrap()).await
    }

    /// `initialize` then `notifications/initialized`; the session id.
    pub async fn init(&self, server: &str) -> String {
        let r = self
            .post(server, None, &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {"roots": {"listChanged": true}, "sampling": {}},
                "clientInfo": {"name": "test", "version": "0"}}}), &[])
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let sid = r.headers["mcp-session-id"].to_str().unwrap().to_string();
        let n = self
            .post(
                server,
                Some(&sid),
                &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                &[],
            )
            .await;
        assert_eq!(n.status, 202);
        sid
    }

    pub async fn call(&self, server: &str, sid: &str, id: u64, tool: &str, args: Value) -> Reply {
        self.post(server, Some(sid), &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}}), &[]).await
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.d.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn stop(self) {
        self.d.stop().await;
    }
}

pub async fn reply(r: reqwest::Response) -> Reply {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

/// The text of a tools/call result.
pub fn text_of(body: &Value) -> String {
    body["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub fn tool_names(body: &Value) -> Vec<String> {
    let mut v: Vec<String> = body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// An open SSE answer, read event by event.
pub struct Events {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    resp: reqwest::Response,
    buf: String,
}

impl Events {
    /// The next `data:` payload as JSON within `within`; `None` on a
    /// timeout or the end of the stream.
    pub async fn next(&mut self, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let data: Vec<&str> = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some(serde_json::from_str(&data.join("\n")).unwrap());
            }
            match tokio::time::timeout_at(deadline, self.resp.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return None,
            }
        }
    }

    /// Whether the server ended the stream within `within` (events before
    /// the end are skipped).
    pub async fn ends_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.resp.chunk()).await {
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) | Ok(Err(_)) => return true,
                Err(_) => return false,
            }
        }
    }
}

impl Bridge {
    /// Opens `req` (to the bridge, with the token) as an SSE stream.
    pub async fn events(&self, mut req: reqwest::RequestBuilder) -> Events {
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .header("accept", "application/json, text/event-stream")
            .send()
            .await
            .unwrap();
        Events {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            resp,
            buf: String::new(),
        }
    }

    /// The session era's GET stream of session `sid` on `server`.
    pub async fn get_stream(&self, server: &str, sid: &str) -> Events {
        self.events(
            self.http
                .get(format!("{}/mcp/{server}", self.d.url))
                .header("mcp-session-id", sid)
                .header("mcp-protocol-version", "2025-11-25"),
        )
        .await
    }

    /// A 2026-07-28 `subscriptions/listen` with `filter`, as request `id`.
    pub async fn listen(&self, server: &str, id: u64, filter: Value) -> Events {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen",
            "params": {"_meta": stateless_meta(), "notifications": filter}});
        self.events(
            self.http
                .post(format!("{}/mcp/{server}", self.d.url))
                .header("content-type", "application/json")
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "subscriptions/listen")
                .body(body.to_string()),
        )
        .await
    }
}

/// The `_meta` every 2026-07-28 request carries.
pub fn stateless_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "0"}
    })
}
