//! What `/healthz`, `/readyz` and the systemd watchdog ask a daemon.
//!
//! Checks are synchronous and cheap on purpose: a daemon keeps its own state
//! current from its background tasks, and the probes only read it. A health
//! endpoint that does I/O falls over exactly when it is needed.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// A daemon's own view of whether it can do its job.
pub trait Health: Send + Sync + 'static {
    /// Can serve requests now (`/readyz`); `Err` says why not.
    fn readiness(&self) -> Result<(), String>;

    /// The daemon's own loops are running (`/healthz`, and whether the
    /// watchdog is petted). Defaults to alive.
    fn liveness(&self) -> Result<(), String> {
        Ok(())
    }
}

/// A daemon with no dependencies: always ready once serving.
pub struct AlwaysReady;

impl Health for AlwaysReady {
    fn readiness(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The JSON answer for a health check result.
pub fn respond(result: Result<(), String>, ok: &'static str) -> Response {
    match result {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": ok }))).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": reason })),
        )
            .into_response(),
    }
}
