//! `GET /status` and `POST /reconcile`.

use crate::reconcile::Manager;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::{Arc, PoisonError};

/// The API routes (auth is added by the caller).
pub fn routes(m: Arc<Manager>) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/reconcile", post(reconcile))
        .with_state(m)
}

async fn status(State(m): State<Arc<Manager>>) -> Json<serde_json::Value> {
    let last = m
        .last
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Json(json!({
        "format": 1,
        "daemon": "hwc-model-manager",
        "version": env!("CARGO_PKG_VERSION"),
        "models": m.statuses(),
        "undeclared": m.undeclared(),
        "last_reconcile": last.map(|(at, outcome)| json!({"at": at, "outcome": outcome})),
    }))
}

/// Starts a reconcile in the background and answers with its plan
/// (202); progress shows in `/status`.
async fn reconcile(State(m): State<Arc<Manager>>) -> impl IntoResponse {
    let plan = m.plan(true).await;
    let me = m.clone();
    tokio::spawn(async move {
        me.reconcile(true).await;
    });
    (StatusCode::ACCEPTED, Json(json!({ "plan": plan })))
}
