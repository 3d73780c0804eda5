//! Revisions 2025-03-26 / 2025-06-18 / 2025-11-25: `initialize` opens a
//! session (answered from the child's cached initialize result, no round
//! trip), later POSTs carry `Mcp-Session-Id`; a session of a child that
//! has since restarted gets 404 so the client initializes again. Resource
//! subscriptions are kept per session ([`listen`]).

use super::{forward, listen, rpc, rpc_error, session_id, Bridge};
use crate::headers;
use crate::jsonrpc::{self, Kind};
use crate::session::Lookup;
use crate::upstream::Upstream;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hwc_ai_core::auth::Principal;
use serde_json::{json, Value};
use std::sync::Arc;

/// One session-era POST.
pub async fn post(
    b: &Arc<Bridge>,
    up: Arc<Upstream>,
    p: &Principal,
    h: &HeaderMap,
    msg: Value,
) -> Response {
    let kind = jsonrpc::kind(&msg);
    if kind == Kind::Request && jsonrpc::method(&msg) == "initialize" {
        return match b.pools.get(up.name()) {
            Some(pool) => initialize_own(b, pool, &up, p, msg).await,
            None => initialize(b, &up, p, msg),
        };
    }
    if let Some(v) = headers::protocol_version_header(h) {
        if !headers::SESSION_VERSIONS.contains(&v) {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                jsonrpc::INVALID_REQUEST,
                format!(
                    "MCP-Protocol-Version `{v}` is not supported; supported: {}",
                    headers::ALL_VERSIONS.join(", ")
                ),
            );
        }
    }
    let Some(sid) = session_id(h) else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            "no Mcp-Session-Id header: send initialize first (or a 2026-07-28 request with MCP-Protocol-Version and _meta)",
        );
    };
    let up = b.sessions.own_upstream(sid).unwrap_or(up);
    let live = up.link().map(|l| l.generation);
    match b.sessions.get(sid, up.name(), &p.name, live) {
        Lookup::Ok(_) => {}
        Lookup::Unknown => {
            return rpc_error(
                StatusCode::NOT_FOUND,
                jsonrpc::SESSION_NOT_FOUND,
                "unknown or ended session; initialize again",
            )
        }
        Lookup::Stale => {
            b.sessions_changed(up.name());
            return rpc_error(
                StatusCode::NOT_FOUND,
                jsonrpc::SESSION_NOT_FOUND,
                format!(
                    "the session ended because server `{}` restarted; initialize again",
                    up.name()
                ),
            );
        }
    }
    match kind {
        Kind::Notification => {
            if jsonrpc::method(&msg) == "notifications/cancelled" {
                if let Some(rid) = msg.pointer("/params/requestId") {
                    let reason = msg
                        .pointer("/params/reason")
                        .and_then(Value::as_str)
                        .unwrap_or("cancelled by the client");
                    up.cancel_client(sid, rid, reason);
                }
            }
            // initialized, roots/list_changed (roots are never forwarded)
            // and the rest end here.
            StatusCode::ACCEPTED.into_response()
        }
        // Answers to server-initiated requests: the bridge never forwards
        // any, so there is nothing to route them to.
        Kind::Response => StatusCode::ACCEPTED.into_response(),
        Kind::Request if jsonrpc::method(&msg) == "ping" => rpc(
            StatusCode::OK,
            jsonrpc::result(jsonrpc::id(&msg), json!({})),
        ),
        Kind::Request if jsonrpc::method(&msg) == "resources/subscribe" => {
            listen::session_subscribe(b, &up, sid, msg).await
        }
        Kind::Request if jsonrpc::method(&msg) == "resources/unsubscribe" => {
            listen::session_unsubscribe(b, &up, sid, msg).await
        }
        Kind::Request => {
            let mut msg = msg;
            forward::strip_owned_meta(&mut msg);
            forward::request(
                b,
                up,
                p,
                msg,
                Some(sid.to_string()),
                super::accepts_sse(h),
                false,
            )
            .await
        }
        Kind::Invalid => rpc_error(
            StatusCode::BAD_REQUEST,
            jsonrpc::INVALID_REQUEST,
            "not a JSON-RPC message",
        ),
    }
}

/// `initialize` on a per-session server: the session's own child first.
async fn initialize_own(
    b: &Arc<Bridge>,
    pool: &crate::isolation::Pool,
    shared: &Upstream,
    p: &Principal,
    msg: Value,
) -> Response {
    let id = jsonrpc::id(&msg);
    let ended = tokio_util::sync::CancellationToken::new();
    let own = match pool.start(ended.clone()).await {
        Ok(own) => own,
        Err(e) => {
            tracing::warn!(server = %shared.name(), client = %p.name, error = %e, "no child for a new session");
            let mut r = rpc(
                StatusCode::SERVICE_UNAVAILABLE,
                jsonrpc::error(id, jsonrpc::SERVER_UNAVAILABLE, e.to_string()),
            );
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from_static("2"),
            );
            return r;
        }
    };
    let Some(link) = own.link() else {
        ended.cancel();
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            jsonrpc::SERVER_UNAVAILABLE,
            format!(
                "server `{}`: the session's child ended at once; retry",
                shared.name()
            ),
        );
    };
    let version = headers::negotiate(
        msg.pointer("/params/protocolVersion")
            .and_then(Value::as_str),
    );
    let mut result = (*link.init).clone();
    result["protocolVersion"] = json!(version);
    let sid = b.sessions.open_own(
        shared.name(),
        link.generation,
        version,
        &p.name,
        ended,
        Some(own),
    );
    b.sessions_changed(shared.name());
    tracing::debug!(server = %shared.name(), client = %p.name, protocol_version = version, "session opened with its own child");
    let mut r = rpc(StatusCode::OK, jsonrpc::result(id, result));
    if let Ok(v) = HeaderValue::from_str(&sid) {
        r.headers_mut().insert("mcp-session-id", v);
    }
    r
}

fn initialize(b: &Arc<Bridge>, up: &Upstream, p: &Principal, msg: Value) -> Response {
    let id = jsonrpc::id(&msg);
    let Some(link) = up.link() else {
        let mut r = rpc(
            StatusCode::SERVICE_UNAVAILABLE,
            jsonrpc::error(
                id,
                jsonrpc::SERVER_UNAVAILABLE,
                format!(
                    "server `{}` is not running yet; retry shortly (GET /servers shows its state)",
                    up.name()
                ),
            ),
        );
        r.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            HeaderValue::from_static("1"),
        );
        return r;
    };
    let requested = msg
        .pointer("/params/protocolVersion")
        .and_then(Value::as_str);
    let version = headers::negotiate(requested);
    let mut result = (*link.init).clone();
    result["protocolVersion"] = json!(version);
    let sid = b
        .sessions
        .open(up.name(), link.generation, version, &p.name);
    b.sessions_changed(up.name());
    tracing::debug!(server = %up.name(), client = %p.name, protocol_version = version, "session opened");
    let mut r = rpc(StatusCode::OK, jsonrpc::result(id, result));
    if let Ok(v) = HeaderValue::from_str(&sid) {
        r.headers_mut().insert("mcp-session-id", v);
    }
    r
}
