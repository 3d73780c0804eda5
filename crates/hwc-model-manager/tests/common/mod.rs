//! Test harness: the manager in-process on a free port, and polling its
//! `/status` until a model reaches a state.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use hwc_model_manager::config::ManagerConfig;
use hwc_testkit::inprocess::InProcess;
use serde_json::Value;
use std::time::{Duration, Instant};

/// A manager running in this process, and the questions tests ask it.
pub struct Running {
    pub url: String,
    daemon: InProcess,
}

impl Running {
    pub async fn start(cfg: ManagerConfig) -> Self {
        let daemon = InProcess::daemon(hwc_model_manager::daemon(cfg)).await;
        Self {
            url: daemon.url.clone(),
            daemon,
        }
    }

    pub async fn status(&self) -> Value {
        reqwest::get(format!("{}/status", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn model(&self, name: &str) -> Value {
        let s = self.status().await;
        s["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .cloned()
            .unwrap()
    }

    pub async fn wait(&self, name: &str, state: &str, within: Duration) -> Value {
        let t0 = Instant::now();
        loop {
            let m = self.model(name).await;
            if m["state"] == state {
                return m;
            }
            assert!(t0.elapsed() < within, "{name} not {state}: {m}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Stops the manager and waits for it to exit cleanly.
    pub async fn stop(self) {
        self.daemon.stop().await;
    }
}
