//! The MCP bridge benchmark (`hwc-bench-mcp`): what hwc-mcp-bridge, PyPI
//! `mcp-proxy` and npm `supergateway` add to a `tools/call` over talking
//! stdio to the same server directly, and how much memory they hold.
//!
//! - [`echo`]: the stdio MCP server behind every path, built into the
//!   bench binary so that the server costs next to nothing;
//! - [`stdio`]: the direct path, newline-delimited JSON-RPC on the child's
//!   stdin and stdout, requests multiplexed by id;
//! - [`http`]: a Streamable HTTP session (session era) against a bridge;
//! - [`load`]: sequential and concurrent `tools/call` loops over either;
//! - [`peers`]: starting the three bridges and counting their memory;
//! - [`report`]: the Markdown tables.

pub mod echo;
pub mod http;
pub mod load;
pub mod peers;
pub mod report;
pub mod stdio;

/// The protocol version the bench asks for in `initialize` (served by all
/// three bridges and by the echo server).
pub const PROTOCOL: &str = "2025-06-18";

/// The `initialize` request the bench sends, direct and over HTTP.
pub fn initialize(id: u64) -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "hwc-bench-mcp", "version": env!("CARGO_PKG_VERSION")},
        },
    })
}

/// A `tools/call` request as one JSON line (no newline).
pub fn tools_call(id: u64, tool: &str, arguments: &serde_json::Value) -> String {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    })
    .to_string()
}

/// Whether `msg` is the answer (a result or an error) to request `id`.
pub fn answers(msg: &serde_json::Value, id: u64) -> bool {
    msg.get("id").and_then(serde_json::Value::as_u64) == Some(id)
        && msg.get("method").is_none()
        && (msg.get("result").is_some() || msg.get("error").is_some())
}

/// `Ok` when the answer to a `tools/call` is a result that is not a tool
/// error, else what it was instead (shortened).
pub fn check_call(msg: &serde_json::Value) -> Result<(), String> {
    if let Some(e) = msg.get("error") {
        return Err(format!("JSON-RPC error {}", short(&e.to_string())));
    }
    let result = msg.get("result").ok_or("answer without result")?;
    if result.get("isError").and_then(serde_json::Value::as_bool) == Some(true) {
        return Err(format!("tool error {}", short(&result.to_string())));
    }
    if result.get("content").is_none() {
        return Err(format!(
            "result without content {}",
            short(&result.to_string())
        ));
    }
    Ok(())
}

/// At most 300 bytes of `s` (on a character boundary).
pub fn short(s: &str) -> &str {
    let mut end = s.len().min(300);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_and_checks() {
        let ok = json!({"jsonrpc": "2.0", "id": 3, "result": {"content": []}});
        assert!(answers(&ok, 3));
        assert!(!answers(&ok, 4));
        assert!(!answers(
            &json!({"jsonrpc": "2.0", "id": 3, "method": "roots/list"}),
            3
        ));
        assert!(check_call(&ok).is_ok());
        let tool_err = json!({"id": 3, "result": {"content": [], "isError": true}});
        assert!(check_call(&tool_err).unwrap_err().starts_with("tool error"));
        let rpc_err = json!({"id": 3, "error": {"code": -32000, "message": "busy"}});
        assert!(check_call(&rpc_err).unwrap_err().contains("busy"));
        assert!(check_call(&json!({"id": 3, "result": {}})).is_err());
    }

    #[test]
    fn call_line() {
        let line = tools_call(7, "echo", &json!({"message": "hi"}));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["params"]["arguments"]["message"], "hi");
        assert_eq!(v["id"], 7);
        assert_eq!(initialize(0)["params"]["protocolVersion"], PROTOCOL);
        assert_eq!(short(&"é".repeat(200)).len(), 300);
    }
}
