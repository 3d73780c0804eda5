//! The `mcp` probe: a real Streamable HTTP session, not a bare GET. It
//! sends `initialize`, `notifications/initialized` and `tools/list`, then
//! ends the session with DELETE, so a server whose stdio child died (and
//! can't list tools) is seen as down even if its HTTP listener is up.

use super::Verdict;
use crate::config::McpCheck;
use serde_json::{json, Value};

/// Protocol revision offered in `initialize` (session-based).
pub const PROTOCOL_VERSION: &str = "2025-06-18";

struct Session<'a> {
    client: &'a reqwest::Client,
    url: &'a str,
    token: Option<String>,
    id: Option<String>,
    version: String,
}

impl Session<'_> {
    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut req = self
            .client
            .request(method, self.url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", &self.version);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(id) = &self.id {
            req = req.header("mcp-session-id", id);
        }
        req
    }

    /// Sends one JSON-RPC message; for requests, the result of the matching response.
    async fn send(&mut self, msg: Value) -> Result<Option<Value>, String> {
        let id = msg.get("id").cloned();
        let method = msg
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let resp = self
            .request(reqwest::Method::POST)
            .json(&msg)
            .send()
            .await
            .map_err(|e| format!("MCP {method} to {}: {e}", self.url))?;
        let status = resp.status().as_u16();
        if let Some(sid) = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.id = Some(sid.to_string());
        }
        let body = resp
            .text()
            .await
            .map_err(|e| format!("MCP {method}: reading the answer: {e}"))?;
        if !(200..300).contains(&status) {
            let text: String = body.chars().take(160).collect();
            return Err(format!("MCP {method} answered {status}: {text}"));
        }
        let Some(id) = id else {
            return Ok(None);
        };
        let answer = find_response(&body, &id).ok_or_else(|| {
            let text: String = body.chars().take(160).collect();
            format!("MCP {method}: no JSON-RPC response with id {id} in the answer: {text}")
        })?;
        if let Some(err) = answer.get("error") {
            return Err(format!("MCP {method} failed: {err}"));
        }
        Ok(answer.get("result").cloned())
    }
}

/// The JSON-RPC response with `id`, from a JSON body or an SSE stream.
fn find_response(body: &str, id: &Value) -> Option<Value> {
    let candidates = std::iter::once(body.trim()).chain(
        body.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim),
    );
    for text in candidates {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            continue;
        };
        let found = match &v {
            Value::Array(items) => items.iter().find(|m| m.get("id") == Some(id)).cloned(),
            _ if v.get("id") == Some(id) => Some(v),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// `kind = "mcp"`.
pub async fn probe(client: &reqwest::Client, c: &McpCheck) -> Result<Verdict, String> {
    let token = c
        .bearer_token_file
        .as_deref()
        .map(|p| {
            hwc_ai_core::secret::read_secret(p)
                .map(|s| s.expose().to_string())
                .map_err(|e| e.to_string())
        })
        .transpose()?;
    let mut s = Session {
        client,
        url: &c.url,
        token,
        id: None,
        version: PROTOCOL_VERSION.into(),
    };
    let init = s
        .send(json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "hwc-health-prober", "version": env!("CARGO_PKG_VERSION")}
            }
        }))
        .await?
        .unwrap_or(Value::Null);
    if let Some(v) = init.get("protocolVersion").and_then(Value::as_str) {
        s.version = v.to_string();
    }
    s.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await?;
    let tools = s
        .send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}))
        .await?
        .unwrap_or(Value::Null);
    let count = tools
        .get("tools")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if s.id.is_some() {
        // Best effort: a server without session support answers 405.
        let _ = s.request(reqwest::Method::DELETE).send().await;
    }
    if count < c.min_tools {
        return Err(format!(
            "MCP server lists {count} tools, fewer than min_tools {}",
            c.min_tools
        ));
    }
    Ok(Verdict::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_responses_in_json_and_sse() {
        let id = json!(2);
        assert!(find_response(r#"{"jsonrpc":"2.0","id":2,"result":{}}"#, &id).is_some());
        let sse = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"}\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[]}}\n\n";
        assert_eq!(
            find_response(sse, &id).unwrap()["result"]["tools"],
            json!([])
        );
        assert!(find_response("garbage", &id).is_none());
    }
}
