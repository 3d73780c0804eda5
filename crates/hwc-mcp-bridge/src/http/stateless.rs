//! Revision 2026-07-28: no initialize, no session; every request carries
//! its protocol version in `_meta` and in `MCP-Protocol-Version`, and its
//! method (and name) in `Mcp-Method` (`Mcp-Name`), and a `tools/call` the
//! arguments its tool mirrors (`x-mcp-header`) in `Mcp-Param-*`, checked
//! against the body (-32020). `server/discover` is synthesized from the child's cached
//! initialize result; the rest goes to the child with the bridge's own
//! `io.modelcontextprotocol/*` `_meta` keys removed (the child speaks the
//! session era). A request must carry `_meta` with the protocol version
//! and the client capabilities (-32602, HTTP 400); a method this revision
//! removed or never had is -32601 with HTTP 404, before the child.

use super::{forward, listen, rpc, rpc_error, Bridge};
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
    if let Some(why) = b.per_session_refusal(up.name()) {
        return rpc(
            StatusCode::BAD_REQUEST,
            jsonrpc::error(id, jsonrpc::INVALID_REQUEST, why),
        );
    }
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
    if let Err(why) = check_meta(&msg) {
        return rpc(
            StatusCode::BAD_REQUEST,
            jsonrpc::error(id, jsonrpc::INVALID_PARAMS, why),
        );
    }
    if jsonrpc::method(&msg) == "tools/call" {
        let tool = msg.pointer("/params/name").and_then(Value::as_str);
        // Only for a tool the caller may call: the refusal (in forward)
        // must not depend on, or show, a hidden tool's schema.
        let callable = tool.filter(|t| {
            crate::policy::tool_permitted(forward::rules(&up), p.scopes.as_deref(), t).is_ok()
        });
        if let Some(tool) = callable {
            if let Some(schema) = up.tool_schema_listed(tool).await {
                if let Err(why) =
                    headers::validate_param_headers(h, &schema, msg.pointer("/params/arguments"))
                {
                    return mismatch(why);
                }
            }
        }
    }
    match method_route(jsonrpc::method(&msg)) {
        Route::Discover => discover(&up, id),
        Route::Listen => listen::listen(b, up, msg, super::accepts_sse(h)).await,
        Route::NotFound(why) => method_not_found(id, why),
        Route::Child => {
            let mut msg = msg;
            forward::strip_owned_meta(&mut msg);
            forward::request(b, up, p, msg, None, super::accepts_sse(h), true).await
        }
    }
}

/// Methods of the session era that 2026-07-28 removed: answered -32601
/// (HTTP 404) in the stateless era, never passed to the child.
const REMOVED_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];

/// Methods of 2026-07-28 (besides `server/discover`) that go to the child;
/// `tasks/*` (the tasks extension) goes too. `subscriptions/listen` is the
/// bridge's own (the child's change feed, [`listen`]).
const CHILD_METHODS: &[&str] = &[
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "completion/complete",
];

/// Where a stateless request goes.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Discover,
    Listen,
    Child,
    /// -32601, HTTP 404, with the reason.
    NotFound(&'static str),
}

fn method_route(method: &str) -> Route {
    if method == "server/discover" {
        Route::Discover
    } else if method == "subscriptions/listen" {
        Route::Listen
    } else if REMOVED_METHODS.contains(&method) {
        Route::NotFound("removed in protocol revision 2026-07-28")
    } else if CHILD_METHODS.contains(&method) || method.starts_with("tasks/") {
        Route::Child
    } else {
        Route::NotFound("not a method of protocol revision 2026-07-28 served here")
    }
}

/// A 2026-07-28 request needs `params._meta` with the protocol version
/// and the client capabilities (an object); `clientInfo` is optional.
fn check_meta(msg: &Value) -> Result<(), String> {
    let Some(meta) = msg.pointer("/params/_meta").and_then(Value::as_object) else {
        return Err(
            "a 2026-07-28 request needs params._meta (protocol version and client capabilities)"
                .into(),
        );
    };
    if !meta
        .get(headers::META_PROTOCOL_VERSION)
        .is_some_and(Value::is_string)
    {
        return Err(format!(
            "params._meta needs `{}`",
            headers::META_PROTOCOL_VERSION
        ));
    }
    if !meta
        .get(headers::META_CLIENT_CAPABILITIES)
        .is_some_and(Value::is_object)
    {
        return Err(format!(
            "params._meta needs `{}` (an object; {{}} when none)",
            headers::META_CLIENT_CAPABILITIES
        ));
    }
    Ok(())
}

/// -32601 with HTTP 404: what 2026-07-28 requires for a method a server
/// does not implement.
fn method_not_found(id: Value, why: &str) -> Response {
    rpc(
        StatusCode::NOT_FOUND,
        jsonrpc::error(
            id,
            jsonrpc::METHOD_NOT_FOUND,
            format!("Method not found: {why}"),
        ),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_of_the_stateless_era() {
        assert_eq!(method_route("server/discover"), Route::Discover);
        for m in [
            "tools/call",
            "resources/read",
            "completion/complete",
            "tasks/get",
        ] {
            assert_eq!(method_route(m), Route::Child, "{m}");
        }
        for m in REMOVED_METHODS {
            assert!(
                matches!(method_route(m), Route::NotFound(w) if w.contains("removed")),
                "{m}"
            );
        }
        assert_eq!(method_route("subscriptions/listen"), Route::Listen);
        for m in ["unknown/method", "", "notifications/initialized"] {
            assert!(matches!(method_route(m), Route::NotFound(_)), "{m}");
        }
    }

    #[test]
    fn meta_needs_version_and_capabilities() {
        let ok = json!({"params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}
        }}});
        assert!(check_meta(&ok).is_ok());
        for bad in [
            json!({}),
            json!({"params": {}}),
            json!({"params": {"_meta": 1}}),
            json!({"params": {"_meta": {"io.modelcontextprotocol/clientCapabilities": {}}}}),
            json!({"params": {"_meta": {"io.modelcontextprotocol/protocolVersion": 2026,
                "io.modelcontextprotocol/clientCapabilities": {}}}}),
            json!({"params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}}),
            json!({"params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": null}}}),
        ] {
            assert!(check_meta(&bad).is_err(), "{bad}");
        }
    }
}
