//! JSON-RPC 2.0 messages as `serde_json::Value` (ADR 0008: nothing a peer
//! sends is reshaped but what the bridge must change), the error codes the
//! bridge answers with, and the few accessors every module needs.

use serde_json::{json, Map, Value};

/// Invalid JSON.
pub const PARSE_ERROR: i64 = -32700;
/// Not a valid request object (batches included).
pub const INVALID_REQUEST: i64 = -32600;
/// No such method (also every request a child sends the bridge).
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Bad parameters; also a tool refused by policy.
pub const INVALID_PARAMS: i64 = -32602;
/// The bridge's own fault, or the child's that it cannot name better.
pub const INTERNAL_ERROR: i64 = -32603;
/// The child is down, restarting or failed; retry later.
pub const SERVER_UNAVAILABLE: i64 = -32000;
/// The request took longer than `call_timeout`.
pub const REQUEST_TIMEOUT: i64 = -32001;
/// The child's answer was larger than `max_result_bytes`.
pub const RESULT_TOO_LARGE: i64 = -32002;
/// The caller's token does not allow this server or tool.
pub const FORBIDDEN: i64 = -32003;
/// The session is unknown or ended (HTTP 404).
pub const SESSION_NOT_FOUND: i64 = -32004;
/// The request was cancelled by the client.
pub const REQUEST_CANCELLED: i64 = -32800;
/// 2026-07-28: `Mcp-Method`/`Mcp-Name`/`MCP-Protocol-Version` headers do not match the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// 2026-07-28: protocol version not supported.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// An error response to `id` (`null` when unknown).
pub fn error(id: Value, code: i64, message: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}})
}

/// An error response with `data`.
pub fn error_with(id: Value, code: i64, message: impl Into<String>, data: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into(), "data": data}})
}

/// A result response to `id`.
pub fn result(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// What a JSON-RPC message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Has `method` and `id`.
    Request,
    /// Has `method`, no `id`.
    Notification,
    /// Has `id` and `result` or `error`, no `method`.
    Response,
    /// None of those.
    Invalid,
}

/// Classifies `msg`.
pub fn kind(msg: &Value) -> Kind {
    let Some(o) = msg.as_object() else {
        return Kind::Invalid;
    };
    let has_id = o.get("id").is_some_and(|i| i.is_string() || i.is_number());
    match (o.get("method").and_then(Value::as_str), has_id) {
        (Some(_), true) => Kind::Request,
        (Some(_), false) if !o.contains_key("id") => Kind::Notification,
        (None, true) if o.contains_key("result") || o.contains_key("error") => Kind::Response,
        _ => Kind::Invalid,
    }
}

/// `msg.method`, or "".
pub fn method(msg: &Value) -> &str {
    msg.get("method").and_then(Value::as_str).unwrap_or("")
}

/// `msg.id`, or `null`.
pub fn id(msg: &Value) -> Value {
    msg.get("id").cloned().unwrap_or(Value::Null)
}

/// `msg.params._meta`, created when absent (params too), when `params`
/// is an object or missing; `None` when `params` is something else.
pub fn meta_mut(msg: &mut Value) -> Option<&mut Map<String, Value>> {
    let o = msg.as_object_mut()?;
    let params = o.entry("params").or_insert_with(|| json!({}));
    let meta = params
        .as_object_mut()?
        .entry("_meta")
        .or_insert_with(|| json!({}));
    meta.as_object_mut()
}

/// `msg.params._meta[key]`.
pub fn meta_get<'a>(msg: &'a Value, key: &str) -> Option<&'a Value> {
    msg.get("params")?.get("_meta")?.get(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let table = [
            (
                json!({"jsonrpc":"2.0","id":1,"method":"ping"}),
                Kind::Request,
            ),
            (
                json!({"jsonrpc":"2.0","id":"a","method":"ping"}),
                Kind::Request,
            ),
            (
                json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
                Kind::Notification,
            ),
            (json!({"jsonrpc":"2.0","id":1,"result":{}}), Kind::Response),
            (
                json!({"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}),
                Kind::Response,
            ),
            (
                json!({"jsonrpc":"2.0","id":null,"method":"x"}),
                Kind::Invalid,
            ),
            (json!({"jsonrpc":"2.0","id":{},"method":"x"}), Kind::Invalid),
            (json!([1]), Kind::Invalid),
            (json!({"id":1}), Kind::Invalid),
        ];
        for (m, want) in table {
            assert_eq!(kind(&m), want, "{m}");
        }
    }

    #[test]
    fn meta_is_created_on_demand() {
        let mut m = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
        meta_mut(&mut m).map(|x| x.insert("k".into(), json!(1)));
        assert_eq!(meta_get(&m, "k"), Some(&json!(1)));
        let mut bad = json!({"jsonrpc":"2.0","id":1,"method":"x","params":[1]});
        assert!(meta_mut(&mut bad).is_none());
    }
}
