//! `GET /status`: every target's state, since when, last error and latency,
//! and recent healing actions. The JSON shape is documented in
//! docs/health-prober.md and kept stable for `hwc-ai status`.

use crate::runner::Prober;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::{Arc, PoisonError};

/// Version of the `/status` format; bumped only on incompatible change.
pub const STATUS_FORMAT: u32 = 1;

/// The API routes (auth is added by the caller).
pub fn routes(prober: Arc<Prober>) -> Router {
    Router::new()
        .route("/status", get(status))
        .with_state(prober)
}

/// The `/status` document.
pub fn status_json(p: &Prober) -> Value {
    let targets: Vec<Value> = p
        .targets
        .iter()
        .map(|t| {
            let s = t
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let action = t
                .last_action
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            // The state record (state, since, last_error, ...) beside the target's identity.
            let mut v = serde_json::to_value(&s).unwrap_or_else(|_| json!({}));
            if let Some(obj) = v.as_object_mut() {
                obj.insert("name".into(), json!(t.target.name));
                obj.insert("kind".into(), json!(t.target.check.kind()));
                obj.insert("labels".into(), json!(t.target.labels));
                obj.insert("restart_unit".into(), json!(t.target.restart_unit));
                obj.insert("last_action".into(), json!(action));
            }
            v
        })
        .collect();
    let (up, total) = p.counts();
    let actions: Vec<_> = p
        .actions
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .cloned()
        .collect();
    json!({
        "format": STATUS_FORMAT,
        "daemon": "hwc-health-prober",
        "version": env!("CARGO_PKG_VERSION"),
        "targets_up": up,
        "targets_total": total,
        "targets": targets,
        "actions": actions,
    })
}

async fn status(State(p): State<Arc<Prober>>) -> Json<Value> {
    Json(status_json(&p))
}
