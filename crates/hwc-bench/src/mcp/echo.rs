//! The stdio MCP server behind every path: one tool, `echo`, answering
//! `Echo: <message>` (as server-everything's `echo` does), one request at a
//! time, a JSON line in and a JSON line out. It allocates little and does no
//! work, so what a bridge adds stands out. The bench binary runs it when
//! started with `--serve-echo`.

use serde_json::{json, Value};
use std::io::{self, BufRead, Write};

/// Protocol versions served, newest first; an `initialize` asking for
/// another gets the first.
pub const PROTOCOLS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The answer to one message, `None` for notifications and responses.
pub fn answer(msg: &Value) -> Option<Value> {
    let id = msg.get("id")?.clone();
    let Some(method) = msg.get("method").and_then(Value::as_str) else {
        return None; // a response to us (we send no requests) or junk
    };
    let params = msg.get("params").cloned().unwrap_or(Value::Null);
    let result = match method {
        "initialize" => {
            let asked = params.get("protocolVersion").and_then(Value::as_str);
            let version = asked
                .filter(|v| PROTOCOLS.contains(v))
                .unwrap_or(PROTOCOLS[0]);
            json!({
                "protocolVersion": version,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "hwc-bench-echo", "version": env!("CARGO_PKG_VERSION")},
            })
        }
        "ping" => json!({}),
        "tools/list" => json!({"tools": [{
            "name": "echo",
            "description": "Echoes back the input",
            "inputSchema": {
                "type": "object",
                "properties": {"message": {"type": "string", "description": "Message to echo"}},
                "required": ["message"],
            },
        }]}),
        "tools/call" if params.get("name").and_then(Value::as_str) == Some("echo") => {
            let message = params
                .pointer("/arguments/message")
                .and_then(Value::as_str)
                .unwrap_or_default();
            json!({"content": [{"type": "text", "text": format!("Echo: {message}")}], "isError": false})
        }
        "tools/call" => return Some(error(id, -32602, "unknown tool")),
        _ => return Some(error(id, -32601, "method not found")),
    };
    Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

fn error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// Serves `input` until it ends, answering on `output` (flushed per line).
pub fn serve(input: impl BufRead, mut output: impl Write) -> io::Result<()> {
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(msg) => answer(&msg),
            Err(_) => Some(error(Value::Null, -32700, "parse error")),
        };
        if let Some(reply) = reply {
            serde_json::to_writer(&mut output, &reply)?;
            output.write_all(b"\n")?;
            output.flush()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &str) -> Vec<Value> {
        let mut out = Vec::new();
        serve(input.as_bytes(), &mut out).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn a_session() {
        let input = [
            crate::mcp::initialize(0).to_string(),
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.into(),
            String::new(),
            crate::mcp::tools_call(1, "echo", &json!({"message": "hi"})),
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#.into(),
            r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#.into(),
            r#"{"jsonrpc":"2.0","id":4,"method":"resources/list"}"#.into(),
            crate::mcp::tools_call(5, "nope", &json!({})),
            "not json".into(),
        ]
        .join("\n");
        let out = lines(&input);
        assert_eq!(out.len(), 7, "{out:?}");
        assert_eq!(out[0]["result"]["protocolVersion"], crate::mcp::PROTOCOL);
        assert_eq!(out[1]["result"]["content"][0]["text"], "Echo: hi");
        assert_eq!(out[1]["id"], 1);
        assert_eq!(out[2]["result"]["tools"][0]["name"], "echo");
        assert_eq!(out[3]["result"], json!({}));
        assert_eq!(out[4]["error"]["code"], -32601);
        assert_eq!(out[5]["error"]["code"], -32602);
        assert_eq!(out[6]["error"]["code"], -32700);
    }

    #[test]
    fn unknown_version_gets_the_newest() {
        let init = json!({"jsonrpc": "2.0", "id": "a", "method": "initialize",
            "params": {"protocolVersion": "1999-01-01"}});
        let a = answer(&init).unwrap();
        assert_eq!(a["result"]["protocolVersion"], PROTOCOLS[0]);
        assert_eq!(a["id"], "a");
        assert!(answer(&json!({"jsonrpc": "2.0", "id": 1, "result": {}})).is_none());
    }
}
