//! A small MCP client over Streamable HTTP, session era (2025-06-18 /
//! 2025-11-25): `initialize`, `notifications/initialized`, requests, and
//! DELETE at the end. What the fleet's daemons need to talk to an MCP
//! server: the health prober's `mcp` probe lists tools, the agent runner's
//! MCP tools call them through hwc-mcp-bridge. Answers are read as JSON
//! or as an SSE stream, whichever the server sends.
//!
//! Why not rmcp's client: it pulls reqwest 0.13 while the workspace is on
//! 0.12 (facts.md); this is the handful of messages the daemons send.

use serde_json::{json, Value};

/// Protocol revision offered in `initialize`.
pub const PROTOCOL_VERSION: &str = "2025-06-18";

/// Why an MCP exchange failed, said for the log or the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McpError {
    /// The server could not be reached, or its answer not read.
    #[error("MCP {method} to {url}: {detail}")]
    Transport {
        /// The JSON-RPC method.
        method: String,
        /// The endpoint.
        url: String,
        /// What happened.
        detail: String,
    },
    /// An HTTP error status.
    #[error("MCP {method} answered {status}: {body}")]
    Status {
        /// The JSON-RPC method.
        method: String,
        /// The status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// A JSON-RPC error answer.
    #[error("MCP {method} failed: {code} {message}")]
    Rpc {
        /// The JSON-RPC method.
        method: String,
        /// Its code.
        code: i64,
        /// Its message.
        message: String,
    },
    /// No response with the request's id in the answer.
    #[error("MCP {method}: no JSON-RPC response with id {id} in the answer: {body}")]
    NoResponse {
        /// The JSON-RPC method.
        method: String,
        /// The id looked for.
        id: String,
        /// The start of the body.
        body: String,
    },
}

/// One MCP session with a server.
pub struct McpSession {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
    id: Option<String>,
    version: String,
    next_id: u64,
}

impl McpSession {
    /// A session (not opened yet) with the MCP endpoint `url`, sending
    /// `token` as a bearer token when there is one.
    pub fn new(client: reqwest::Client, url: &str, token: Option<String>) -> Self {
        Self {
            client,
            url: url.to_string(),
            token,
            id: None,
            version: PROTOCOL_VERSION.into(),
            next_id: 1,
        }
    }

    fn http(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut req = self
            .client
            .request(method, &self.url)
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

    /// Sends one JSON-RPC message; for a request, the result of its response.
    async fn send(&mut self, msg: Value) -> Result<Option<Value>, McpError> {
        let id = msg.get("id").cloned();
        let method = msg
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let transport = |detail: String| McpError::Transport {
            method: method.clone(),
            url: self.url.clone(),
            detail,
        };
        let resp = self
            .http(reqwest::Method::POST)
            .json(&msg)
            .send()
            .await
            .map_err(|e| transport(e.to_string()))?;
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
            .map_err(|e| transport(format!("reading the answer: {e}")))?;
        let start = || body.chars().take(200).collect::<String>();
        if !(200..300).contains(&status) {
            // A JSON-RPC error in an error status says more than the status.
            if let Some(e) = id
                .as_ref()
                .and_then(|id| find_response(&body, id))
                .and_then(|a| a.get("error").cloned())
            {
                return Err(rpc_error(&method, &e));
            }
            return Err(McpError::Status {
                method,
                status,
                body: start(),
            });
        }
        let Some(id) = id else {
            return Ok(None);
        };
        let answer = find_response(&body, &id).ok_or_else(|| McpError::NoResponse {
            method: method.clone(),
            id: id.to_string(),
            body: start(),
        })?;
        if let Some(e) = answer.get("error") {
            return Err(rpc_error(&method, e));
        }
        Ok(answer.get("result").cloned())
    }

    /// `initialize` as `client_name` (declaring no client capabilities)
    /// and `notifications/initialized`; the server's initialize result.
    pub async fn initialize(
        &mut self,
        client_name: &str,
        version: &str,
    ) -> Result<Value, McpError> {
        let init = self
            .request(
                "initialize",
                json!({"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                    "clientInfo": {"name": client_name, "version": version}}),
            )
            .await?;
        if let Some(v) = init.get("protocolVersion").and_then(Value::as_str) {
            self.version = v.to_string();
        }
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(init)
    }

    /// A request and its result.
    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, McpError> {
        let id = self.next_id;
        self.next_id += 1;
        Ok(self
            .send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await?
            .unwrap_or(Value::Null))
    }

    /// Ends the session (DELETE), best effort: a server without sessions
    /// answers 405, and a failed end is the server's to expire.
    pub async fn close(&self) {
        if self.id.is_some() {
            let _ = self.http(reqwest::Method::DELETE).send().await;
        }
    }
}

fn rpc_error(method: &str, e: &Value) -> McpError {
    McpError::Rpc {
        method: method.to_string(),
        code: e.get("code").and_then(Value::as_i64).unwrap_or(0),
        message: e
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    }
}

/// The JSON-RPC response with `id`, from a JSON body or an SSE stream.
pub fn find_response(body: &str, id: &Value) -> Option<Value> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
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
