//! Arize Phoenix, a real OpenTelemetry trace receiver: it accepts OTLP/HTTP
//! protobuf on `/v1/traces`, stores the spans and serves them back as OTLP
//! JSON from its REST API. It comes from PyPI (`arize-phoenix`), installed
//! by scripts/setup.sh into `${XDG_CACHE_HOME:-$HOME/.cache}/hwc-ai/phoenix`
//! (or set `HWC_TEST_PHOENIX` to its `phoenix` executable). Each test starts
//! its own, with its state in a temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

/// The `phoenix` executable, or a panic saying how to get it.
pub fn binary() -> PathBuf {
    let bin = std::env::var_os("HWC_TEST_PHOENIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::llama::cache().join("phoenix/bin/phoenix"));
    assert!(
        bin.exists(),
        "the real OTLP receiver is missing ({}); run scripts/setup.sh first (it installs arize-phoenix from PyPI into a venv)",
        bin.display()
    );
    bin
}

/// A running Phoenix; it dies with the test process.
pub struct Phoenix {
    /// Its HTTP port on 127.0.0.1 (UI, REST API and OTLP/HTTP).
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Phoenix {
    /// The OTLP/HTTP base URL, what `[telemetry] otlp_endpoint` takes.
    pub fn otlp_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every span stored in the default project, as the OTLP JSON text the
    /// REST API returns (`/v1/projects/default/spans/otlpv1`).
    pub fn spans_json(&self) -> String {
        match crate::http_get(self.port, "/v1/projects/default/spans/otlpv1?limit=1000") {
            Some((200, body)) => body,
            Some((404, _)) => r#"{"data":[]}"#.to_owned(), // no span yet: no project
            other => panic!("Phoenix's span API answered {other:?}"),
        }
    }

    /// The stored spans of `trace_id` (hex), polling up to `wait` for at
    /// least `min` of them (ingestion is asynchronous).
    pub fn wait_for_trace(
        &self,
        trace_id: &str,
        min: usize,
        wait: Duration,
    ) -> Vec<serde_json::Value> {
        let t0 = Instant::now();
        loop {
            let v: serde_json::Value = serde_json::from_str(&self.spans_json()).unwrap();
            let spans: Vec<serde_json::Value> = v["data"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|s| s["trace_id"] == trace_id)
                .collect();
            if spans.len() >= min || t0.elapsed() > wait {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Stops Phoenix and waits for it.
    pub fn stop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Phoenix {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts Phoenix on free ports with a fresh working directory and waits
/// (up to 180 s: it is a Python server with a database to set up) until
/// it is healthy.
pub fn start() -> Phoenix {
    let bin = binary();
    let dir = tempfile::tempdir().unwrap();
    let port = crate::free_port();
    let grpc = crate::free_port();
    // It dies with the test process (held by our pipe).
    let child = crate::held_by_pipe(&bin, Some(&dir.path().join("phoenix.log")))
        .arg("serve")
        .env("PHOENIX_WORKING_DIR", dir.path())
        .env("PHOENIX_HOST", "127.0.0.1")
        .env("PHOENIX_PORT", port.to_string())
        .env("PHOENIX_GRPC_PORT", grpc.to_string())
        .env("PHOENIX_TELEMETRY_ENABLED", "false")
        .spawn()
        .expect("cannot start Phoenix");
    let phoenix = Phoenix {
        port,
        child,
        _dir: dir,
    };
    let t0 = Instant::now();
    while !matches!(crate::http_get(port, "/healthz"), Some((200, _))) {
        if t0.elapsed() > Duration::from_secs(180) {
            let log = std::fs::read_to_string(phoenix._dir.path().join("phoenix.log"))
                .unwrap_or_default();
            panic!("Phoenix not healthy after 180 s; its log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    phoenix
}
