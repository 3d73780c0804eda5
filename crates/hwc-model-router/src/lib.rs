//! hwc-model-router: one OpenAI-compatible endpoint in front of Ollama, vLLM,
//! llama.cpp and cloud providers.
//!
//! A request is authenticated ([`keys`]), parsed ([`request`]), routed to an
//! ordered list of candidates ([`routing`]: aliases, the `auto` model's
//! escalation rules, privacy), admitted against its key's rate and budget
//! ([`usage`]), and sent upstream with fallback ([`proxy`], [`balance`],
//! [`upstream`]). docs/router.md is the operator's guide.

pub mod api;
pub mod backends;
pub mod balance;
pub mod config;
pub mod idempotency;
pub mod keys;
pub mod metrics;
pub mod proxy;
pub mod request;
pub mod routing;
pub mod store;
pub mod stored;
pub mod upstream;
pub mod usage;

use hwc_ai_core::clock;

use crate::api::Api;
use crate::backends::Backend;
use crate::config::RouterConfig;
use crate::idempotency::Idempotency;
use crate::metrics::RouterMetrics;
use crate::proxy::Engine;
use crate::routing::RoutingTable;
use crate::store::Store;
use crate::stored::Responses;
use crate::usage::Ledger;
use hwc_ai_core::health::Health;
use hwc_ai_core::server::{self, Daemon};
use hwc_ai_core::status::StatusHeader;
use std::sync::Arc;
use std::time::Instant;

/// Why the router could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The keys file.
    #[error(transparent)]
    Keys(#[from] keys::KeysError),
    /// A backend's key file or client.
    #[error(transparent)]
    Backend(#[from] backends::BackendError),
    /// A marker regex (already validated, so unexpected).
    #[error("auto.markers: {0}")]
    Markers(#[from] regex::Error),
    /// The state database.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// `state.url_file`.
    #[error(transparent)]
    StoreUrl(#[from] hwc_ai_core::secret::SecretError),
    /// Listening or serving.
    #[error(transparent)]
    Server(#[from] server::ServerError),
}

/// Ready when some backend has a replica in rotation.
struct RouterHealth {
    engine: Arc<Engine>,
}

impl Health for RouterHealth {
    fn readiness(&self) -> Result<(), String> {
        let now = Instant::now();
        let backends = &self.engine.table.backends;
        if backends.is_empty() {
            return Err("no backends configured".into());
        }
        if backends.values().any(|b| b.is_up(now)) {
            Ok(())
        } else {
            Err("every backend is cooling down after failures".into())
        }
    }
}

/// Checks everything `--check-config` can without serving: the keys file
/// and the backends' key files are readable and valid.
pub fn check(cfg: &RouterConfig) -> Result<(), StartError> {
    keys::load(&cfg.auth)?;
    for b in &cfg.backends {
        Backend::new(b.clone())?;
    }
    Ok(())
}

/// The router as a daemon: keys behind SIGHUP reload, the usage flush in
/// the task group (its last flush runs after the drain, then the database
/// closes), ready while some backend is in rotation.
pub async fn daemon(cfg: RouterConfig) -> Result<Daemon, StartError> {
    let keys = Arc::new(hwc_ai_core::auth::KeyRing::new(keys::load(&cfg.auth)?));
    let backends = cfg
        .backends
        .iter()
        .cloned()
        .map(Backend::new)
        .collect::<Result<Vec<_>, _>>()?;
    let table = RoutingTable::new(&cfg, backends)?;
    let store = match (&cfg.state.url, &cfg.state.url_file) {
        (Some(url), _) => Store::open_url(url).await?,
        (None, Some(f)) => Store::open_url(hwc_ai_core::secret::read_secret(f)?.expose()).await?,
        (None, None) => Store::open(&cfg.state.database).await?,
    };
    let ledger = Arc::new(Ledger::load(&store).await?);

    let mut daemon = Daemon::new("hwc-model-router", cfg.server.clone(), axum::Router::new());
    daemon.telemetry = cfg.telemetry.clone();
    let metrics = RouterMetrics::register(&mut daemon.registry);
    proxy::init_backend_gauges(&table, &metrics);
    let engine = Arc::new(Engine {
        table,
        fallback: cfg.fallback.clone(),
        keepalive: cfg.streaming.keepalive,
        metrics,
        ledger: ledger.clone(),
    });
    let privacy_header =
        axum::http::HeaderName::from_bytes(cfg.privacy.header.to_ascii_lowercase().as_bytes())
            .unwrap_or_else(|_| axum::http::HeaderName::from_static("x-hwc-privacy"));
    let api = Arc::new(Api {
        engine: engine.clone(),
        idempotency: Idempotency::new(store.clone(), cfg.state.idempotency_window),
        responses: Responses::new(store.clone(), cfg.state.responses_retention),
        privacy_header,
        max_body: cfg.server.max_body_bytes,
        status: StatusHeader::new(
            "hwc-model-router",
            env!("CARGO_PKG_VERSION"),
            api::STATUS_FORMAT,
        ),
    });

    let every = cfg.state.flush_interval;
    let (flush_api, flush_metrics) = (api.clone(), engine.metrics.clone());
    daemon.tasks.spawn("usage flush", move |cancel| async move {
        let mut tick = tokio::time::interval(every);
        let mut n: u64 = 0;
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = ledger.flush(&store).await {
                tracing::error!(error = %e, "cannot write usage; keeping it in memory and retrying");
            }
            ledger.export(&flush_metrics);
            n += 1;
            if n % 600 == 0 {
                flush_api.idempotency.prune().await;
                flush_api.responses.prune().await;
            }
        }
        // The drain has ended: every request's usage is in the ledger.
        match ledger.flush(&store).await {
            Ok(n) => tracing::info!(rows = n, "usage flushed"),
            Err(e) => tracing::error!(error = %e, "final usage flush failed; the last interval of usage is lost"),
        }
        store.close().await;
    });

    daemon.api = api::routes(api).layer(hwc_ai_core::auth::RequireBearer::new(keys.clone()));
    // SIGHUP re-reads the keys file; a file that does not load is refused
    // and the keys in force stay, so a typo never locks every client out.
    let auth = cfg.auth.clone();
    daemon.reload = Some(Box::new(move || {
        keys.reload_logged("keys", || keys::load(&auth));
    }));
    daemon.health = Arc::new(RouterHealth { engine });
    Ok(daemon)
}
