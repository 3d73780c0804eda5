//! hwc-model-manager: declared models reconciled onto the host.
//!
//! [`config`] types what is declared, [`files`] downloads file models
//! (resumable, hashed on the way, atomic), [`disk`] guards free space,
//! [`ollama`] talks to Ollama, [`reconcile`] plans and applies, and
//! [`api`] serves `/status` and `POST /reconcile`. docs/model-manager.md is
//! the operator's guide.

pub mod api;
pub mod config;
pub mod disk;
pub mod files;
pub mod metrics;
pub mod ollama;
pub mod reconcile;

use crate::config::ManagerConfig;
use crate::metrics::ManagerMetrics;
use crate::reconcile::Manager;
use hwc_ai_core::auth::KeyRing;
use hwc_ai_core::health::AlwaysReady;
use hwc_ai_core::server::{self, Daemon};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Why the manager could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The Ollama URL.
    #[error(transparent)]
    Ollama(#[from] ollama::OllamaError),
    /// A token file.
    #[error(transparent)]
    Secret(#[from] hwc_ai_core::secret::SecretError),
    /// Listening or serving.
    #[error(transparent)]
    Server(#[from] server::ServerError),
}

/// What `--check-config` checks beyond parsing: token files readable.
pub fn check(cfg: &ManagerConfig) -> Result<String, StartError> {
    for f in &cfg.auth.token_files {
        hwc_ai_core::secret::read_secret(f)?;
    }
    ollama::Ollama::new(&cfg.ollama.url)?;
    Ok(format!(
        "{} Ollama models, {} file models, prune {}, listening on {}",
        cfg.ollama_models.len(),
        cfg.file_models.len(),
        if cfg.manager.prune { "on" } else { "off" },
        cfg.server.listen
    ))
}

/// Runs the manager on `listener` until `shutdown`. The first plan is made
/// before serving (so READY=1 follows it); pulls run in the background.
pub async fn run_on(
    cfg: ManagerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let mut registry = hwc_ai_core::metrics::registry("manager");
    let metrics = ManagerMetrics::register(&mut registry);
    let keys = hwc_ai_core::auth::token_table(&cfg.auth.token_files)?;
    let server_cfg = cfg.server.clone();
    let every = cfg.manager.update_interval;
    let manager = Arc::new(Manager::new(cfg, metrics)?);

    let plan = manager.plan(true).await;
    for a in &plan {
        tracing::info!(step = %a, "plan");
    }
    let worker = {
        let m = manager.clone();
        tokio::spawn(async move {
            m.apply(&plan).await;
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                m.reconcile(false).await;
            }
        })
    };
    let api = api::routes(manager.clone()).layer(axum::middleware::from_fn_with_state(
        Arc::new(KeyRing::new(keys)),
        hwc_ai_core::auth::require_bearer::<()>,
    ));
    let daemon = Daemon {
        name: "hwc-model-manager",
        config: server_cfg,
        api,
        health: Arc::new(AlwaysReady),
        registry,
        reload: None,
    };
    let served = server::serve_on(listener, daemon, shutdown).await;
    worker.abort();
    served.map_err(StartError::from)
}

/// Binds and runs until SIGTERM/SIGINT.
pub async fn run(cfg: ManagerConfig) -> Result<(), StartError> {
    let listener = server::bind(&cfg.server).await?;
    run_on(cfg, listener, hwc_ai_core::shutdown::signal()).await
}

/// `hwc-model-manager plan`: what a reconcile would do, one line per model.
pub async fn plan(cfg: ManagerConfig) -> Result<(), StartError> {
    let mut registry = hwc_ai_core::metrics::registry("manager");
    let manager = Manager::new(cfg, ManagerMetrics::register(&mut registry))?;
    for a in manager.plan(true).await {
        println!("{a}");
    }
    Ok(())
}
