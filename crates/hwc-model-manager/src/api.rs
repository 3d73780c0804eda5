//! `GET /status` ([`ManagerStatus`] in the core's envelope; `hwc-ai`
//! deserializes the same type), `GET /plan` (what a reconcile would do)
//! and `POST /reconcile`.

use crate::reconcile::{Manager, ModelStatus};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use hwc_ai_core::status::{Envelope, StatusHeader};
use hwc_ai_core::sync::lock;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

/// Version of the `/status` shape; bumped only on incompatible change.
pub const STATUS_FORMAT: u32 = 1;

/// The manager's `/status` fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManagerStatus {
    /// Every declared model and its state.
    pub models: Vec<ModelStatus>,
    /// Ollama models present but not declared (pruned when prune is on).
    pub undeclared: Vec<String>,
    /// When the last reconcile ended and how.
    pub last_reconcile: Option<LastReconcile>,
}

/// The end of a reconcile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastReconcile {
    /// Unix seconds.
    pub at: f64,
    /// What it came to, in words.
    pub outcome: String,
}

struct ApiState {
    manager: Arc<Manager>,
    header: StatusHeader,
}

/// The API routes (auth is added by the caller).
pub fn routes(manager: Arc<Manager>) -> Router {
    let header = StatusHeader::new(
        "hwc-model-manager",
        env!("CARGO_PKG_VERSION"),
        STATUS_FORMAT,
    );
    Router::new()
        .route("/status", get(status))
        .route("/plan", get(plan))
        .route("/reconcile", post(reconcile))
        .with_state(Arc::new(ApiState { manager, header }))
}

/// The manager's status now.
pub fn status_of(m: &Manager) -> ManagerStatus {
    ManagerStatus {
        models: m.statuses(),
        undeclared: m.undeclared(),
        last_reconcile: lock(&m.last)
            .clone()
            .map(|(at, outcome)| LastReconcile { at, outcome }),
    }
}

async fn status(State(s): State<Arc<ApiState>>) -> Json<Envelope<ManagerStatus>> {
    Json(s.header.wrap(status_of(&s.manager)))
}

/// What a reconcile would do now (nothing is changed): `hwc-ai models plan`.
async fn plan(State(s): State<Arc<ApiState>>) -> Json<serde_json::Value> {
    let plan = s.manager.plan(true).await;
    let lines: Vec<String> = plan.iter().map(ToString::to_string).collect();
    Json(json!({ "plan": plan, "lines": lines }))
}

/// Starts a reconcile in the background and answers with its plan
/// (202); progress shows in `/status`.
async fn reconcile(State(s): State<Arc<ApiState>>) -> impl IntoResponse {
    let plan = s.manager.plan(true).await;
    let me = s.manager.clone();
    tokio::spawn(async move {
        me.reconcile(true).await;
    });
    (StatusCode::ACCEPTED, Json(json!({ "plan": plan })))
}
