//! The bridge's HTTP API: `/mcp/{server}` (both protocol eras),
//! `/openapi/{server}` (the same tools as OpenAPI operations), `/servers`,
//! `/status`, behind Origin/Host validation and bearer auth.

pub mod forward;
pub mod listen;
pub mod openapi;
pub mod session_era;
pub mod stateless;

use crate::config::HttpConfig;
use crate::headers;
use crate::jsonrpc;
use crate::metrics::BridgeMetrics;
use crate::session::Sessions;
use crate::status;
use crate::upstream::Upstream;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use hwc_ai_core::auth::{Principal, TokenAuth};
use hwc_ai_core::status::StatusHeader;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Everything a request handler needs.
pub struct Bridge {
    /// The servers, by name (a per-session server's is never started: it
    /// holds its config and policy; its sessions' children are in `pools`).
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    /// The per-session servers' children, by server name.
    pub pools: BTreeMap<String, Arc<crate::isolation::Pool>>,
    /// Session-era sessions.
    pub sessions: Sessions,
    /// The bridge's metrics.
    pub metrics: BridgeMetrics,
    /// `/status` envelope header.
    pub header: StatusHeader,
    /// `[http]`.
    pub http: HttpConfig,
    /// Host values accepted.
    pub hosts: Vec<String>,
    /// Cancelled when the bridge starts draining: open streams end.
    pub draining: tokio_util::sync::CancellationToken,
}

impl Bridge {
    /// A refusal for a request that would share a per-session server's
    /// child between callers (stateless requests, the OpenAPI view).
    pub fn per_session_refusal(&self, server: &str) -> Option<String> {
        self.pools.contains_key(server).then(|| {
            format!(
                "server `{server}` gives each session its own child (isolation = \"per-session\"): open a session (initialize, protocol 2025-11-25); stateless 2026-07-28 requests and the OpenAPI view would share one child between callers"
            )
        })
    }

    /// Updates the open-sessions gauge of `server`.
    pub fn sessions_changed(&self, server: &str) {
        self.metrics
            .sessions_open(server, self.sessions.count(server));
    }
}

/// A JSON-RPC message as the HTTP answer, with `status`.
pub fn rpc(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// A JSON-RPC error without id, with `status`.
pub fn rpc_error(status: StatusCode, code: i64, message: impl Into<String>) -> Response {
    rpc(status, jsonrpc::error(Value::Null, code, message))
}

/// The routes, each behind auth, all behind Origin/Host validation.
pub fn routes(bridge: Arc<Bridge>, auth: &TokenAuth) -> Router {
    let api = Router::new()
        .route(
            "/mcp/{server}",
            get(get_mcp).post(post_mcp).delete(delete_mcp),
        )
        .route("/openapi/{server}/openapi.json", get(openapi::openapi_json))
        .route(
            "/openapi/{server}/{tool}",
            axum::routing::post(openapi::call_tool),
        )
        .route("/servers", get(status::servers))
        .route("/status", get(status::status))
        .with_state(bridge.clone());
    auth.protect(api)
        .layer(axum::middleware::map_response(www_authenticate))
        .layer(axum::middleware::from_fn_with_state(
            bridge,
            origin_and_host,
        ))
}

/// 401s say how to authenticate (RFC 9110 requires `WWW-Authenticate`).
async fn www_authenticate(mut resp: Response) -> Response {
    if resp.status() == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"hwc-mcp-bridge\""),
        );
    }
    resp
}

/// DNS-rebinding protection: an `Origin` not listed (and not the bridge's
/// own), or a `Host` not listed, gets 403 before anything else.
async fn origin_and_host(State(b): State<Arc<Bridge>>, req: Request, next: Next) -> Response {
    let (origin, host) = hwc_ai_core::origin::origin_and_host(req.headers(), req.uri());
    if let Err(why) = headers::check_origin(origin, host, &b.http.allowed_origins)
        .and_then(|()| headers::check_host(host, &b.hosts))
    {
        tracing::warn!(reason = %why, "request refused");
        return rpc_error(StatusCode::FORBIDDEN, jsonrpc::FORBIDDEN, why);
    }
    next.run(req).await
}

fn no_server(server: &str) -> Response {
    rpc_error(
        StatusCode::NOT_FOUND,
        jsonrpc::INVALID_REQUEST,
        format!("no MCP server named `{server}` here; GET /servers lists them"),
    )
}

fn out_of_scope(server: &str) -> Response {
    rpc_error(
        StatusCode::FORBIDDEN,
        jsonrpc::FORBIDDEN,
        crate::policy::Denial::ServerOutOfScope.message(server, ""),
    )
}

/// The `Mcp-Session-Id` header, if any.
pub fn session_id(h: &HeaderMap) -> Option<&str> {
    h.get("mcp-session-id").and_then(|v| v.to_str().ok())
}

/// Whether the client accepts an SSE answer.
pub fn accepts_sse(h: &HeaderMap) -> bool {
    h.get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"))
}

/// Which era a POST belongs to: stateless when it says 2026-07-28 in
/// the `MCP-Protocol-Version` header or in `_meta`, never for a request
/// carrying a session id. An `initialize` saying 2026-07-28 is stateless
/// too (and refused there: that revision removed it); one that does not
/// opens a session.
pub fn is_stateless(h: &HeaderMap, msg: &Value) -> bool {
    if session_id(h).is_some() {
        return false;
    }
    headers::protocol_version_header(h) == Some(headers::STATELESS_VERSION)
        || jsonrpc::meta_get(msg, headers::META_PROTOCOL_VERSION).and_then(Value::as_str)
            == Some(headers::STATELESS_VERSION)
}

async fn post_mcp(
    State(b): State<Arc<Bridge>>,
    Path(server): Path<String>,
    Extension(p): Extension<Principal>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(up) = b.upstreams.get(&server).cloned() else {
        return no_server(&server);
    };
    if !crate::policy::server_in_scope(p.scopes.as_deref(), &server) {
        return out_of_scope(&server);
    }
    let msg: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                jsonrpc::PARSE_ERROR,
                format!("the body is not JSON: {e}"),
            )
        }
    };
    if msg.is_array() {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            "JSON-RPC batches are not supported; send one message per POST",
        );
    }
    if jsonrpc::kind(&msg) == jsonrpc::Kind::Invalid
        || msg.get("jsonrpc").and_then(Value::as_str) != Some("2.0")
    {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            "not a JSON-RPC 2.0 request, notification or response (it needs \"jsonrpc\": \"2.0\" and a method or a result)",
        );
    }
    if let Some(v) = headers::protocol_version_header(&h) {
        let fresh = session_id(&h).is_none() && jsonrpc::method(&msg) != "initialize";
        if fresh && !headers::ALL_VERSIONS.contains(&v) {
            return stateless::unsupported_version(jsonrpc::id(&msg), v);
        }
    }
    if is_stateless(&h, &msg) {
        stateless::post(&b, up, &p, &h, msg).await
    } else {
        session_era::post(&b, up, &p, &h, msg).await
    }
}

/// The session era's GET stream of change notifications; 2026-07-28 has
/// none (405: it has `subscriptions/listen`).
async fn get_mcp(
    State(b): State<Arc<Bridge>>,
    Path(server): Path<String>,
    Extension(p): Extension<Principal>,
    h: HeaderMap,
) -> Response {
    let Some(up) = b.upstreams.get(&server).cloned() else {
        return no_server(&server);
    };
    if !crate::policy::server_in_scope(p.scopes.as_deref(), &server) {
        return out_of_scope(&server);
    }
    let Some(sid) = session_id(&h) else {
        let mut r = rpc_error(
            StatusCode::METHOD_NOT_ALLOWED,
            jsonrpc::INVALID_REQUEST,
            "a GET stream belongs to a session: send its Mcp-Session-Id (2026-07-28 clients POST subscriptions/listen instead)",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST, DELETE"));
        return r;
    };
    if !accepts_sse(&h) {
        return listen::needs_sse(Value::Null);
    }
    let up = b.sessions.own_upstream(sid).unwrap_or(up);
    let live = up.link().map(|l| l.generation);
    match b.sessions.get(sid, up.name(), &p.name, live) {
        crate::session::Lookup::Ok(s) => {
            listen::session_stream(&b, &up, sid.to_string(), s.generation, s.ended)
        }
        crate::session::Lookup::Unknown | crate::session::Lookup::Stale => {
            b.sessions_changed(up.name());
            rpc_error(
                StatusCode::NOT_FOUND,
                jsonrpc::SESSION_NOT_FOUND,
                "unknown or ended session; initialize again",
            )
        }
    }
}

async fn delete_mcp(
    State(b): State<Arc<Bridge>>,
    Path(server): Path<String>,
    Extension(p): Extension<Principal>,
    h: HeaderMap,
) -> Response {
    if !b.upstreams.contains_key(&server) {
        return no_server(&server);
    }
    let Some(id) = session_id(&h) else {
        let mut r = rpc_error(
            StatusCode::METHOD_NOT_ALLOWED,
            jsonrpc::INVALID_REQUEST,
            "DELETE ends a session and needs its Mcp-Session-Id (stateless 2026-07-28 requests have none)",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    };
    if b.sessions.close(id, &server, &p.name) {
        b.sessions_changed(&server);
        StatusCode::NO_CONTENT.into_response()
    } else {
        rpc_error(
            StatusCode::NOT_FOUND,
            jsonrpc::SESSION_NOT_FOUND,
            "no such session",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn era_of_a_post() {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25"}});
        assert!(!is_stateless(&headers(&[]), &init));
        // An initialize that says 2026-07-28 is of that era (and refused there).
        assert!(is_stateless(
            &headers(&[("mcp-protocol-version", "2026-07-28")]),
            &init
        ));
        let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list",
            "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}});
        assert!(is_stateless(&headers(&[]), &list));
        assert!(!is_stateless(
            &headers(&[
                ("mcp-session-id", "s"),
                ("mcp-protocol-version", "2026-07-28")
            ]),
            &list
        ));
    }
}
