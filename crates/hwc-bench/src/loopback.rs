//! HTTP on 127.0.0.1.

use anyhow::Context;
use std::time::Duration;

/// A client whose pool keeps `concurrency` connections to one host; it
/// ignores proxy settings from the environment (everything is on 127.0.0.1).
pub fn client(concurrency: usize) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(concurrency.max(1))
        .pool_idle_timeout(Duration::from_secs(120))
        .timeout(Duration::from_secs(60))
        .build()
        .context("building the HTTP client")
}
