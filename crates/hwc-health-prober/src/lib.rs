//! hwc-health-prober: probes every AI runtime and hwc-ai daemon, exports
//! the results to Prometheus and `/status`, and restarts failed units over
//! D-Bus with backoff and an hourly cap.
//!
//! [`config`] types the targets, [`probe`] checks one target by kind,
//! [`state`] turns outcomes into up/down with thresholds, [`healing`]
//! decides restarts, [`runner`] runs a loop per target. docs/health-prober.md
//! is the operator's guide.

pub mod api;
pub mod config;
pub mod healing;
pub mod metrics;
pub mod probe;
pub mod runner;
pub mod state;

use crate::config::ProberConfig;
use crate::metrics::ProberMetrics;
use crate::probe::Probers;
use crate::runner::Prober;
use hwc_ai_core::auth::{Role, TokenAuth};
use hwc_ai_core::health::Health;
use hwc_ai_core::server::{self, Daemon};
use std::sync::Arc;

/// Why the prober could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The targets don't check (already reported by `--check-config`).
    #[error("invalid targets: {0}")]
    Targets(String),
    /// The HTTP client.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// A token file.
    #[error(transparent)]
    Secret(#[from] hwc_ai_core::secret::SecretError),
    /// Listening or serving.
    #[error(transparent)]
    Server(#[from] server::ServerError),
}

/// The `[auth]` section: bearer tokens from files, or anyone when none is
/// configured (the default listener is loopback).
pub use hwc_ai_core::auth::AuthConfig;

struct ProberHealth(Arc<Prober>);

impl Health for ProberHealth {
    fn readiness(&self) -> Result<(), String> {
        self.0.loops_on_time()
    }

    fn liveness(&self) -> Result<(), String> {
        self.0.loops_on_time()
    }
}

/// Checks what `--check-config` can without probing: the targets, and
/// that every token file is readable.
pub fn check(cfg: &ProberConfig) -> Result<usize, StartError> {
    let targets = cfg
        .targets()
        .map_err(|p| StartError::Targets(p.join("; ")))?;
    cfg.auth.key_table(None)?;
    for t in &targets {
        let file = match &t.check {
            config::Check::Openai(c) => c.api_key_file.as_deref(),
            config::Check::Mcp(c) => c.bearer_token_file.as_deref(),
            _ => None,
        };
        if let Some(f) = file {
            hwc_ai_core::secret::read_secret(f)?;
        }
    }
    Ok(targets.len())
}

/// The prober as a daemon: a probe loop per target in its task group,
/// `/status` behind `[auth]` (tokens re-read on SIGHUP), ready while the
/// loops are on time.
pub async fn daemon(cfg: ProberConfig) -> Result<Daemon, StartError> {
    let targets = cfg
        .targets()
        .map_err(|p| StartError::Targets(p.join("; ")))?;
    let mut daemon = Daemon::new("hwc-health-prober", cfg.server.clone(), axum::Router::new());
    daemon.telemetry = cfg.telemetry.clone();
    let metrics = ProberMetrics::register(&mut daemon.registry);
    let prober = Arc::new(Prober::new(
        targets,
        Probers::new()?,
        metrics,
        cfg.healing.clone(),
    ));
    prober.spawn_on(&daemon.tasks);
    let auth = TokenAuth::load(&cfg.auth, Some(Role::Admin))?;
    daemon.api = auth.protect(api::routes(prober.clone()));
    daemon.reload = Some(Box::new(move || auth.reload_logged()));
    daemon.health = Arc::new(ProberHealth(prober.clone()));
    let (up, total) = prober.counts();
    hwc_ai_core::notify::status(&format!("{up} of {total} targets up"));
    Ok(daemon)
}
