//! `GET /status`: every target's state, since when, last error and latency,
//! and recent healing actions, as [`ProberStatus`] inside the core's
//! envelope. docs/health-prober.md documents the shape; `hwc-ai status`
//! deserializes this same type.

use crate::runner::Prober;
use crate::state::{Health, TargetState};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use hwc_ai_core::status::{Envelope, StatusHeader};
use hwc_ai_core::sync::lock;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Version of the `/status` shape; bumped only on incompatible change.
pub const STATUS_FORMAT: u32 = 1;

/// The prober's `/status` fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProberStatus {
    /// Targets whose state is up.
    pub targets_up: usize,
    /// Targets probed.
    pub targets_total: usize,
    /// Each target, in config order.
    pub targets: Vec<TargetStatus>,
    /// Recent healing actions, oldest first.
    pub actions: Vec<ActionRecord>,
}

/// One target in `/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetStatus {
    /// The target's name.
    pub name: String,
    /// Its probe kind (`openai`, `hwc`, `mcp`, ...).
    pub kind: String,
    /// Operator labels from the config.
    pub labels: BTreeMap<String, String>,
    /// The unit restarted when it is down, if any.
    pub restart_unit: Option<String>,
    /// Up, down, starting or unknown.
    pub state: Health,
    /// Unix seconds when it entered that state.
    pub since: f64,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Successes in a row.
    pub consecutive_successes: u32,
    /// The last failure, in words.
    pub last_error: Option<String>,
    /// Latency of the last successful probe, seconds.
    pub last_latency_s: Option<f64>,
    /// Unix seconds of the last success.
    pub last_success: Option<f64>,
    /// Probes done.
    pub probes: u64,
    /// The last healing action on its unit.
    pub last_action: Option<ActionRecord>,
}

/// A healing action in `/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// Unix seconds.
    pub at: f64,
    /// The unit.
    pub unit: String,
    /// `restarted`, `dry_run`, `failed`, `capped`.
    pub result: String,
    /// The job path, the error, or the cap.
    pub detail: String,
}

impl From<&crate::healing::Action> for ActionRecord {
    fn from(a: &crate::healing::Action) -> Self {
        Self {
            at: a.at,
            unit: a.unit.clone(),
            result: a.result.to_string(),
            detail: a.detail.clone(),
        }
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

struct StatusState {
    prober: Arc<Prober>,
    header: StatusHeader,
}

/// The API routes (auth is added by the caller).
pub fn routes(prober: Arc<Prober>) -> Router {
    let header = StatusHeader::new(
        "hwc-health-prober",
        env!("CARGO_PKG_VERSION"),
        STATUS_FORMAT,
    );
    Router::new()
        .route("/status", get(status))
        .with_state(Arc::new(StatusState { prober, header }))
}

/// The prober's status now.
pub fn status_of(p: &Prober) -> ProberStatus {
    let targets = p
        .targets
        .iter()
        .map(|t| {
            let s: TargetState = lock(&t.state).clone();
            TargetStatus {
                name: t.target.name.clone(),
                kind: t.target.check.kind().to_string(),
                labels: t.target.labels.clone(),
                restart_unit: t.target.restart_unit.clone(),
                state: s.state,
                since: unix(s.since),
                consecutive_failures: s.consecutive_failures,
                consecutive_successes: s.consecutive_successes,
                last_error: s.last_error,
                last_latency_s: s.last_latency_s,
                last_success: s.last_success.map(unix),
                probes: s.probes,
                last_action: lock(&t.last_action).as_ref().map(ActionRecord::from),
            }
        })
        .collect();
    let (targets_up, targets_total) = p.counts();
    ProberStatus {
        targets_up,
        targets_total,
        targets,
        actions: lock(&p.actions).iter().map(ActionRecord::from).collect(),
    }
}

async fn status(State(s): State<Arc<StatusState>>) -> Json<Envelope<ProberStatus>> {
    Json(s.header.wrap(status_of(&s.prober)))
}
