//! The OpenAPI view of a server (what mcpo offers, in the same binary and
//! under the same policy): `GET /openapi/{server}/openapi.json` describes
//! every tool the caller may call as `POST /openapi/{server}/{tool}`, its
//! request body the tool's input schema (OpenAPI 3.1 takes JSON Schema
//! 2020-12 as it is); the call goes the way of every `tools/call`
//! ([`super::forward`]: policy, slots, timeout, log line, metrics).
//!
//! Answers: the tool's `structuredContent` when it has one; else a single
//! text content, parsed as JSON when it is JSON, else as a JSON string;
//! else the content array. A tool's own error (`isError`) is HTTP 500 with
//! its text (what mcpo does, and what Open WebUI's tool servers expect);
//! the bridge's errors have their own statuses (ADR 0011).

use super::{forward, Bridge};
use crate::jsonrpc;
use crate::policy;
use crate::upstream::Upstream;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use hwc_ai_core::auth::Principal;
use hwc_ai_core::error::ApiError;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Pages of `tools/list` read for one document at most.
const MAX_PAGES: usize = 20;

/// Whether `tool` can be a path segment as it is (the names MCP
/// recommends); other tools are left out of the document, and said so.
pub fn path_safe(tool: &str) -> bool {
    !tool.is_empty()
        && tool.len() <= 128
        && tool
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
        && tool != "openapi.json"
}

/// The OpenAPI 3.1 document for `server`: `init` is the child's
/// initialize result, `tools` the tools the caller may call.
pub fn document(server: &str, init: &Value, tools: &[Value]) -> Value {
    let mut paths = Map::new();
    let mut left_out = Vec::new();
    for t in tools {
        let Some(name) = t.get("name").and_then(Value::as_str) else {
            continue;
        };
        if !path_safe(name) {
            left_out.push(name.to_string());
            continue;
        }
        let input = t
            .get("inputSchema")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"}));
        let output = t.get("outputSchema").cloned().unwrap_or_else(|| json!({}));
        let mut op = json!({
            "operationId": name,
            "summary": t.get("title").or_else(|| t.pointer("/annotations/title")).and_then(Value::as_str).unwrap_or(name),
            "requestBody": {"required": true, "content": {"application/json": {"schema": input}}},
            "responses": {
                "200": {"description": "The tool's result: its structuredContent, or its text (parsed when it is JSON), or its content array",
                    "content": {"application/json": {"schema": output}}},
                "500": {"description": "The tool reported an error (isError)",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "default": {"description": "The bridge refused or could not complete the call",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        });
        if let Some(d) = t.get("description").and_then(Value::as_str) {
            op["description"] = json!(d);
        }
        if let Some(a) = t.get("annotations") {
            // Reported as the server describes its tool; never policy.
            op["x-mcp-annotations"] = a.clone();
        }
        paths.insert(format!("/{name}"), json!({"post": op}));
    }
    let info_name = init
        .pointer("/serverInfo/name")
        .and_then(Value::as_str)
        .unwrap_or(server);
    let mut description = format!(
        "The tools of MCP server `{server}` ({info_name}) through hwc-mcp-bridge; the same tools, policy and limits as its MCP endpoint /mcp/{server}."
    );
    if let Some(i) = init.get("instructions").and_then(Value::as_str) {
        description.push_str("\n\n");
        description.push_str(i);
    }
    if !left_out.is_empty() {
        description.push_str(&format!(
            "\n\nLeft out (names that are not path segments; call them over MCP): {}",
            left_out.join(", ")
        ));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": format!("{server} (MCP tools)"),
            "version": init.pointer("/serverInfo/version").and_then(Value::as_str).unwrap_or("0"),
            "description": description,
        },
        "servers": [{"url": format!("/openapi/{server}")}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {
                "error": {"type": "object", "required": ["message"], "properties": {
                    "type": {"type": "string"}, "code": {"type": "string"}, "message": {"type": "string"},
                    "content": {"type": "array", "description": "The tool's content, for a tool's own error"}}}}}},
        },
        "security": [{"bearer": []}],
    })
}

/// A tool's result as the OpenAPI answer body.
pub fn result_body(result: &Value) -> Value {
    if let Some(s) = result.get("structuredContent") {
        return s.clone();
    }
    let content = result.get("content").and_then(Value::as_array);
    match content.map(Vec::as_slice) {
        Some([one]) if one.get("type") == Some(&json!("text")) => {
            let text = one.get("text").and_then(Value::as_str).unwrap_or_default();
            serde_json::from_str(text).unwrap_or_else(|_| json!(text))
        }
        Some(items) => Value::Array(items.to_vec()),
        None => json!(null),
    }
}

/// The text of a tool's error result.
fn error_text(result: &Value) -> String {
    let texts: Vec<&str> = result
        .get("content")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .filter_map(|i| i.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if texts.is_empty() {
        "the tool reported an error without text".into()
    } else {
        texts.join("\n")
    }
}

fn lookup(b: &Bridge, server: &str, p: &Principal) -> Result<Arc<Upstream>, ApiError> {
    let Some(up) = b.upstreams.get(server).cloned() else {
        return Err(ApiError::not_found(
            "unknown_server",
            format!("no MCP server named `{server}` here; GET /servers lists them"),
        ));
    };
    if let Some(why) = b.per_session_refusal(server) {
        return Err(ApiError::invalid_request("per_session_server", why));
    }
    if !policy::server_in_scope(p.scopes.as_deref(), server) {
        return Err(ApiError::forbidden(
            "server_out_of_scope",
            policy::Denial::ServerOutOfScope.message(server, ""),
        ));
    }
    Ok(up)
}

/// A JSON-RPC error from the bridge or the child as an HTTP error.
fn rpc_failure(error: &Value, tool: &str, permitted: bool) -> ApiError {
    let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("the call failed")
        .to_string();
    let retry = Duration::from_secs(1);
    match code {
        jsonrpc::FORBIDDEN => ApiError::forbidden("forbidden", message),
        jsonrpc::INVALID_PARAMS if !permitted => ApiError::not_found("unknown_tool", message),
        jsonrpc::INVALID_PARAMS => ApiError::invalid_request("invalid_arguments", message),
        jsonrpc::METHOD_NOT_FOUND => ApiError::not_found(
            "unknown_tool",
            format!("the server has no tool `{tool}`: {message}"),
        ),
        jsonrpc::REQUEST_TIMEOUT => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "call_timeout",
            message,
        ),
        jsonrpc::SERVER_UNAVAILABLE => ApiError::unavailable("server_unavailable", message, retry),
        jsonrpc::RESULT_TOO_LARGE => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "result_too_large",
            message,
        ),
        _ => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "mcp_error",
            message,
        ),
    }
}

/// `GET /openapi/{server}/openapi.json`.
pub async fn openapi_json(
    State(b): State<Arc<Bridge>>,
    Path(server): Path<String>,
    Extension(p): Extension<Principal>,
) -> Result<Response, ApiError> {
    let up = lookup(&b, &server, &p)?;
    let Some(link) = up.link() else {
        return Err(ApiError::unavailable(
            "server_unavailable",
            format!("server `{server}` is not running yet; retry shortly (GET /servers shows its state)"),
            Duration::from_secs(1),
        ));
    };
    let mut tools = Vec::new();
    let mut cursor: Option<Value> = None;
    for _ in 0..MAX_PAGES {
        let mut params = json!({});
        if let Some(c) = &cursor {
            params["cursor"] = c.clone();
        }
        let msg = json!({"jsonrpc": "2.0", "id": 0, "method": "tools/list", "params": params});
        let (_, out) = forward::call(&b, &up, &p, msg, None, false).await;
        if let Some(e) = out.get("error") {
            return Err(rpc_failure(e, "", true));
        }
        let result = out.get("result").cloned().unwrap_or_default();
        if let Some(t) = result.get("tools").and_then(Value::as_array) {
            tools.extend(t.iter().cloned());
        }
        cursor = result.get("nextCursor").filter(|c| !c.is_null()).cloned();
        if cursor.is_none() {
            break;
        }
    }
    Ok(Json(document(&server, &link.init, &tools)).into_response())
}

/// `POST /openapi/{server}/{tool}`: the body is the tool's arguments.
pub async fn call_tool(
    State(b): State<Arc<Bridge>>,
    Path((server, tool)): Path<(String, String)>,
    Extension(p): Extension<Principal>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let up = lookup(&b, &server, &p)?;
    let arguments: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::invalid_request(
                "invalid_json",
                format!("the body is not JSON ({e}); send the tool's arguments as a JSON object"),
            )
        })?
    };
    if !arguments.is_object() {
        return Err(ApiError::invalid_request(
            "invalid_arguments",
            "the body must be a JSON object of the tool's arguments (openapi.json has its schema)",
        ));
    }
    let msg = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": tool, "arguments": arguments}});
    let (_, out) = forward::call(&b, &up, &p, msg, None, false).await;
    if let Some(e) = out.get("error") {
        let permitted =
            policy::tool_permitted(forward::rules(&up), p.scopes.as_deref(), &tool).is_ok();
        return Err(rpc_failure(e, &tool, permitted));
    }
    let result = out.get("result").cloned().unwrap_or_default();
    if result.get("isError") == Some(&Value::Bool(true)) {
        let body = json!({"error": {"type": "tool_error", "code": "tool_error",
            "message": error_text(&result),
            "content": result.get("content").cloned().unwrap_or_else(|| json!([]))}});
        return Ok((StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response());
    }
    Ok(Json(result_body(&result)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_that_are_path_segments() {
        for ok in ["get_current_time", "read-file", "v1.echo", "A9"] {
            assert!(path_safe(ok), "{ok}");
        }
        for bad in ["", "a/b", "a b", "é", "openapi.json", &"x".repeat(129)] {
            assert!(!path_safe(bad), "{bad}");
        }
    }

    #[test]
    fn result_bodies() {
        assert_eq!(
            result_body(
                &json!({"content": [{"type": "text", "text": "{\"a\": 1}"}], "structuredContent": {"b": 2}})
            ),
            json!({"b": 2}),
            "structuredContent first"
        );
        assert_eq!(
            result_body(&json!({"content": [{"type": "text", "text": "{\"a\": 1}"}]})),
            json!({"a": 1})
        );
        assert_eq!(
            result_body(&json!({"content": [{"type": "text", "text": "plain"}]})),
            json!("plain")
        );
        let two = json!([{"type": "text", "text": "a"}, {"type": "image", "data": "x", "mimeType": "image/png"}]);
        assert_eq!(result_body(&json!({"content": two})), two);
        assert_eq!(result_body(&json!({})), json!(null));
    }

    #[test]
    fn the_document_of_a_server() {
        let init =
            json!({"serverInfo": {"name": "mcp-time", "version": "1.2"}, "instructions": "Times."});
        let tools = vec![
            json!({"name": "get_current_time", "description": "Now", "inputSchema": {"type": "object",
                "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]},
                "annotations": {"readOnlyHint": true}}),
            json!({"name": "has space", "inputSchema": {"type": "object"}}),
            json!({"name": "typed", "title": "Typed", "inputSchema": {"type": "object"},
                "outputSchema": {"type": "object", "properties": {"n": {"type": "integer"}}}}),
        ];
        // Sorted: serde_json keeps insertion order in workspace builds
        // (another crate turns on preserve_order), sorted keys otherwise.
        insta::with_settings!({sort_maps => true}, {
            insta::assert_json_snapshot!(document("time", &init, &tools));
        });
    }
}
