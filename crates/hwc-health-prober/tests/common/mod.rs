//! Test harness: the prober in-process on a free port, and polling its
//! `/status` until a condition holds.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use hwc_health_prober::config::ProberConfig;
use hwc_testkit::inprocess::InProcess;
use serde_json::Value;
use std::time::{Duration, Instant};

pub struct Prober {
    pub url: String,
    daemon: InProcess,
}

impl Prober {
    pub async fn start(toml: &str) -> Self {
        let cfg: ProberConfig = hwc_ai_core::config::load_str(toml).unwrap_or_else(|e| {
            panic!(
                "test config rejected: {e}
{toml}"
            )
        });
        let daemon = InProcess::daemon(hwc_health_prober::daemon(cfg)).await;
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

    pub async fn target(&self, name: &str) -> Value {
        let s = self.status().await;
        s["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap()
    }

    /// Polls until `name`'s state is `state`, returning the target's JSON;
    /// records every state seen on the way.
    pub async fn wait_state(
        &self,
        name: &str,
        state: &str,
        within: Duration,
        seen: &mut Vec<String>,
    ) -> Value {
        let t0 = Instant::now();
        loop {
            let t = self.target(name).await;
            let s = t["state"].as_str().unwrap().to_string();
            if seen.last() != Some(&s) {
                seen.push(s.clone());
            }
            if s == state {
                return t;
            }
            assert!(
                t0.elapsed() < within,
                "`{name}` not {state} within {within:?}; states seen {seen:?}; last: {t}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
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

    pub async fn stop(self) {
        self.daemon.stop().await;
    }
}
