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
use hwc_ai_core::auth::KeyRing;
use hwc_ai_core::health::Health;
use hwc_ai_core::server::{self, Daemon};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

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

/// Who may read `/status`: bearer tokens from files, or anyone when none
/// is configured (the default listener is loopback).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Files each holding one bearer token (relative: under `$CREDENTIALS_DIRECTORY`).
    pub token_files: Vec<std::path::PathBuf>,
}

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
    for f in &cfg.auth.token_files {
        hwc_ai_core::secret::read_secret(f)?;
    }
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

/// Runs the prober on `listener` until `shutdown` resolves.
pub async fn run_on(
    cfg: ProberConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let targets = cfg
        .targets()
        .map_err(|p| StartError::Targets(p.join("; ")))?;
    let mut registry = hwc_ai_core::metrics::registry("prober");
    let metrics = ProberMetrics::register(&mut registry);
    let prober = Arc::new(Prober::new(
        targets,
        Probers::new()?,
        metrics,
        cfg.healing.clone(),
    ));
    let loops = prober.spawn();

    let keys = hwc_ai_core::auth::token_table(&cfg.auth.token_files)?;
    let api = api::routes(prober.clone()).layer(axum::middleware::from_fn_with_state(
        Arc::new(KeyRing::new(keys)),
        hwc_ai_core::auth::require_bearer::<()>,
    ));
    let daemon = Daemon {
        name: "hwc-health-prober",
        config: cfg.server.clone(),
        api,
        health: Arc::new(ProberHealth(prober.clone())),
        registry,
        reload: None,
    };
    let (up, total) = prober.counts();
    hwc_ai_core::notify::status(&format!("{up} of {total} targets up"));
    let served = server::serve_on(listener, daemon, shutdown).await;
    for l in loops {
        l.abort();
    }
    served.map_err(StartError::from)
}

/// Binds the configured address (or systemd's socket) and runs until
/// SIGTERM/SIGINT.
pub async fn run(cfg: ProberConfig) -> Result<(), StartError> {
    let listener = server::bind(&cfg.server).await?;
    run_on(cfg, listener, hwc_ai_core::shutdown::signal()).await
}
