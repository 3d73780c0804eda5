//! `GET /servers` (discovery) and `GET /status`: typed here so the `hwc-ai`
//! CLI deserializes what the bridge writes.

use crate::config::Isolation;
use crate::http::Bridge;
use crate::upstream::{ServerState, Upstream};
use axum::extract::State;
use axum::{Extension, Json};
use hwc_ai_core::auth::Principal;
use hwc_ai_core::status::Envelope;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Version of the `/status` shape.
pub const STATUS_FORMAT: u32 = 1;

/// One server as clients and operators see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerView {
    /// Its name.
    pub name: String,
    /// Its MCP endpoint (Streamable HTTP, both eras), relative to the bridge.
    pub url: String,
    /// Its OpenAPI document (each allowed tool a `POST` operation).
    pub openapi_url: String,
    /// Running, starting, restarting (with the next attempt), failed (with why).
    pub state: ServerState,
    /// Whether `/readyz` depends on it.
    pub required: bool,
    /// `shared` or `per-session`.
    pub isolation: Isolation,
    /// Tools offered; `None`: all the child lists.
    pub allowed_tools: Option<Vec<String>>,
    /// Tools never offered.
    pub denied_tools: Vec<String>,
    /// Session-era sessions open.
    pub sessions_open: usize,
}

/// `GET /servers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServersList {
    /// The servers the caller's token may use.
    pub servers: Vec<ServerView>,
}

/// The bridge's own `/status` fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeStatus {
    /// Every server.
    pub servers: Vec<ServerView>,
    /// Servers whose child is running and initialized.
    pub servers_up: usize,
    /// Sessions open, all servers.
    pub sessions_open: usize,
}

fn view(b: &Bridge, up: &Upstream) -> ServerView {
    ServerView {
        name: up.cfg.name.clone(),
        url: format!("/mcp/{}", up.cfg.name),
        openapi_url: format!("/openapi/{}/openapi.json", up.cfg.name),
        state: match b.pools.get(up.name()) {
            Some(pool) => ServerState::PerSession {
                children: pool.children(),
                max_children: pool.max(),
            },
            None => up.state(),
        },
        required: up.cfg.required,
        isolation: up.cfg.isolation,
        allowed_tools: up.cfg.allowed_tools.clone(),
        denied_tools: up.cfg.denied_tools.clone(),
        sessions_open: b.sessions.count(&up.cfg.name),
    }
}

/// The status of every server.
pub fn snapshot(b: &Bridge) -> BridgeStatus {
    let servers: Vec<ServerView> = b.upstreams.values().map(|u| view(b, u)).collect();
    BridgeStatus {
        servers_up: servers
            .iter()
            .filter(|s| {
                matches!(
                    s.state,
                    ServerState::Running { .. } | ServerState::PerSession { .. }
                )
            })
            .count(),
        sessions_open: servers.iter().map(|s| s.sessions_open).sum(),
        servers,
    }
}

/// `GET /servers`: the servers in the caller's scope.
pub async fn servers(
    State(b): State<Arc<Bridge>>,
    Extension(p): Extension<Principal>,
) -> Json<ServersList> {
    let servers = b
        .upstreams
        .values()
        .filter(|u| crate::policy::server_in_scope(p.scopes.as_deref(), &u.cfg.name))
        .map(|u| view(&b, u))
        .collect();
    Json(ServersList { servers })
}

/// `GET /status`.
pub async fn status(State(b): State<Arc<Bridge>>) -> Json<Envelope<BridgeStatus>> {
    Json(b.header.wrap(snapshot(&b)))
}
