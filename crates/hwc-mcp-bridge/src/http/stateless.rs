//! Revision 2026-07-28: no initialize, no session; every request carries
//! its protocol version in `_meta` and in `MCP-Protocol-Version`, and its
//! method (and name) in `Mcp-Method` (`Mcp-Name`), checked against the
//! body (-32020). `server/discover` is synthesized from the child's cached
//! initialize result; the rest goes to the child with the bridge's own
//! `io.modelcontextprotocol/*` `_meta` keys removed (the child speaks the
//! session era).

use super::{forward, rpc, rpc_error, Bridge};
use crate::headers;
use crate::jsonrpc::{self, Kind};
use crate::upstream::Upstream;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hwc_ai_core::auth::Principal;
use serde_json::{json, Value};
use std::sync::Arc;

/// Seconds a client may cache `server/discover`.
const DISCOVER_TTL_MS: u64 = 60_000;

/// One stateless POST.
pub async fn post(
    b: &Arc<Bridge>,
    up: Arc<Upstream>,
    p: &Principal,
    h: &HeaderMap,
    msg: Value,
) -> Response {
    let id = jsonrpc::id(&msg);
    let header_version = headers::protocol_version_header(h);
    let meta_version =
        jsonrpc::meta_get(&msg, headers::META_PROTOCOL_VERSION).and_then(Value::as_str);
    let mismatch = |why: String| {
        rpc(
            StatusCode::BAD_REQUEST,
            jsonrpc::error(id.clone(), jsonrpc::HEADER_MISMATCH, why),
        )
    };
    match (header_version, meta_version) {
        (None, _) => return mismatch("missing required MCP-Protocol-Version header".into()),
        (Some(hv), Some(mv)) if hv != mv => {
            return mismatch(format!(
                "MCP-Protocol-Version header `{hv}` does not match _meta protocol version `{mv}`"
            ))
        }
        _ => {}
    }
    if jsonrpc::kind(&msg) != Kind::Request {
        // No client notifications are defined for this revision; accept
        // and drop (cancellation is closing the response stream).
        return StatusCode::ACCEPTED.into_response();
    }
    if let Err(why) = headers::validate_request_headers(h, &msg) {
        return mismatch(why);
    }
    match jsonrpc::method(&msg) {
        "server/discover" => discover(&up, id),
        "ping" => rpc(
            StatusCode::OK,
            jsonrpc::result(id, json!({"resultType": "complete"})),
        ),
        _ => {
            let mut msg = msg;
            forward::strip_owned_meta(&mut msg);
            forward::request(b, up, p, msg, None, super::accepts_sse(h), true).await
        }
    }
}

/// A request whose `MCP-Protocol-Version` is not served at all (no
/// session id, not initialize): 400 with the supported versions.
pub fn unsupported_version(id: Value, requested: &str) -> Response {
    rpc(
        StatusCode::BAD_REQUEST,
        jsonrpc::error_with(
            id,
            jsonrpc::UNSUPPORTED_PROTOCOL_VERSION,
            "Unsupported protocol version",
            json!({"requested": requested, "supported": headers::ALL_VERSIONS}),
        ),
    )
}

fn discover(up: &Upstream, id: Value) -> Response {
    let Some(link) = up.link() else {
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            jsonrpc::SERVER_UNAVAILABLE,
            format!("server `{}` is not running yet; retry shortly", up.name()),
        );
    };
    let init = &link.init;
    let mut result = json!({
        "resultType": "complete",
        "supportedVersions": headers::ALL_VERSIONS,
        "capabilities": init.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        "ttlMs": DISCOVER_TTL_MS,
        "cacheScope": "public",
    });
    if let Some(i) = init.get("instructions") {
        result["instructions"] = i.clone();
    }
    if let Some(info) = init.get("serverInfo") {
        result["_meta"] = json!({"io.modelcontextprotocol/serverInfo": info});
    }
    rpc(StatusCode::OK, jsonrpc::result(id, result))
}
