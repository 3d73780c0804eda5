//! One probe of one target, by kind. Every probe runs under the target's
//! timeout (applied by the scheduler) and ends in an [`Outcome`] whose
//! failure text says what was wrong in words an operator can act on.

mod http;
mod mcp;
mod systemd;

pub use systemd::Systemd;

use crate::config::{Check, Target};
use crate::state::Outcome;
use std::time::Instant;

/// What every probe shares: one HTTP client (one connection pool for all
/// targets) and the lazily opened system bus.
pub struct Probers {
    client: reqwest::Client,
    /// systemd over D-Bus.
    pub systemd: Systemd,
}

impl Probers {
    /// Probers with a shared client; redirects are not followed (a health
    /// endpoint that redirects is misconfigured).
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(2)
            .user_agent(concat!("hwc-health-prober/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            systemd: Systemd::default(),
        })
    }

    /// Probes `target` once (without the timeout; the caller applies it).
    pub async fn probe(&self, target: &Target) -> Outcome {
        let start = Instant::now();
        let result = match &target.check {
            Check::Http(c) => http::http(&self.client, c).await,
            Check::Openai(c) => http::openai(&self.client, c).await,
            Check::Ollama(c) => http::ollama(&self.client, c).await,
            Check::LlamaCpp(c) => http::llama_cpp(&self.client, &c.url).await,
            Check::Vllm(c) => http::status_only(&self.client, &c.url, "/health").await,
            Check::OpenWebui(c) => http::open_webui(&self.client, &c.url).await,
            Check::Hwc(c) => http::status_only(&self.client, &c.url, "/readyz").await,
            Check::Mcp(c) => mcp::probe(&self.client, c).await,
            Check::Tcp(c) => tokio::net::TcpStream::connect(&c.address)
                .await
                .map(|_| Verdict::Ok)
                .map_err(|e| format!("cannot connect to {}: {e}", c.address)),
            Check::SystemdUnit(c) => systemd::unit_verdict(&self.systemd, &c.unit).await,
        };
        match result {
            Ok(Verdict::Ok) => Outcome::Up(start.elapsed()),
            Ok(Verdict::Starting(why)) => Outcome::Starting(why),
            Err(why) => Outcome::Down(why),
        }
    }
}

/// A probe's finding short of failure.
#[derive(Debug)]
pub enum Verdict {
    /// Healthy.
    Ok,
    /// Alive but loading.
    Starting(String),
}
