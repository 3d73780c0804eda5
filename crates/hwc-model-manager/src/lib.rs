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
use hwc_ai_core::auth::{Role, TokenAuth};
use hwc_ai_core::server::{self, Daemon};
use std::sync::Arc;

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
    cfg.auth.key_table(None)?;
    ollama::Ollama::new(&cfg.ollama.url)?;
    Ok(format!(
        "{} Ollama models, {} file models, prune {}, listening on {}",
        cfg.ollama_models.len(),
        cfg.file_models.len(),
        if cfg.manager.prune { "on" } else { "off" },
        cfg.server.listen
    ))
}

/// The manager as a daemon. The first plan is made before serving (so
/// READY=1 follows it); applying it and the periodic reconciles run in
/// the task group.
pub async fn daemon(cfg: ManagerConfig) -> Result<Daemon, StartError> {
    let mut daemon = Daemon::new("hwc-model-manager", cfg.server.clone(), axum::Router::new());
    daemon.telemetry = cfg.telemetry.clone();
    let metrics = ManagerMetrics::register(&mut daemon.registry);
    let auth = TokenAuth::load(&cfg.auth, Some(Role::Admin))?;
    let every = cfg.manager.update_interval;
    let manager = Arc::new(Manager::new(cfg, metrics)?);

    let plan = manager.plan(true).await;
    for a in &plan {
        tracing::info!(step = %a, "plan");
    }
    let m = manager.clone();
    daemon.tasks.spawn_until_cancelled("reconcile", async move {
        m.apply(&plan).await;
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            m.reconcile(false).await;
        }
    });
    daemon.api = auth.protect(api::routes(manager));
    daemon.reload = Some(Box::new(move || auth.reload_logged()));
    Ok(daemon)
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
