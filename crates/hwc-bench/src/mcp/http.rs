//! One MCP client session over Streamable HTTP, session era: `initialize`
//! (the server's `Mcp-Session-Id` kept), `notifications/initialized`, then
//! requests carrying the session id and the negotiated
//! `MCP-Protocol-Version`. Answers may come as `application/json` or as a
//! `text/event-stream` of which one event is the answer.

use super::{answers, check_call, initialize, short, tools_call};
use crate::sse::{data_of, event_end};
use futures_util::StreamExt;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Where sessions are opened.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The MCP URL, e.g. `http://127.0.0.1:PORT/mcp/echo`.
    pub url: String,
    /// `Authorization` header value, if the bridge wants one.
    pub auth: Option<HeaderValue>,
}

/// An open session.
pub struct Session {
    client: reqwest::Client,
    endpoint: Endpoint,
    /// `Mcp-Session-Id` from the server, if it gave one.
    pub id: Option<String>,
    /// The negotiated protocol version.
    pub protocol: String,
    next: AtomicU64,
}

/// What answered a request.
struct Answer {
    msg: Value,
    at: Instant,
    session: Option<String>,
}

impl Session {
    /// `initialize` and `notifications/initialized` on `client`.
    pub async fn open(client: &reqwest::Client, endpoint: &Endpoint) -> Result<Self, String> {
        let mut s = Self {
            client: client.clone(),
            endpoint: endpoint.clone(),
            id: None,
            protocol: super::PROTOCOL.into(),
            next: AtomicU64::new(1),
        };
        let init = s
            .post(initialize(0).to_string(), Some(0))
            .await
            .map_err(|e| format!("initialize: {e}"))?;
        if let Some(e) = init.msg.get("error") {
            return Err(format!("initialize: JSON-RPC error {e}"));
        }
        if let Some(v) = init
            .msg
            .pointer("/result/protocolVersion")
            .and_then(Value::as_str)
        {
            s.protocol = v.to_owned();
        }
        s.id = init.session;
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        s.post(note.to_string(), None)
            .await
            .map_err(|e| format!("notifications/initialized: {e}"))?;
        Ok(s)
    }

    /// One `tools/call`; when its answer arrived.
    pub async fn call(&self, tool: &str, arguments: &Value) -> Result<Instant, String> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let a = self.post(tools_call(id, tool, arguments), Some(id)).await?;
        check_call(&a.msg)?;
        Ok(a.at)
    }

    /// `DELETE` of the session (errors ignored: not every server has it).
    pub async fn close(&self) {
        let Some(id) = &self.id else { return };
        let mut req = self
            .client
            .delete(&self.endpoint.url)
            .header("mcp-session-id", id)
            .header("mcp-protocol-version", &self.protocol);
        if let Some(auth) = &self.endpoint.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        if let Ok(r) = req.send().await {
            let _ = r.bytes().await;
        }
    }

    /// POSTs `body`; for a request (`id` given) waits for its answer, for a
    /// notification for 200, 202 or 204. The answer's time is when it was
    /// parsed; the rest of an event stream is read after that, untimed, so
    /// the connection can be reused.
    async fn post(&self, body: String, id: Option<u64>) -> Result<Answer, String> {
        let mut req = self
            .client
            .post(&self.endpoint.url)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .body(body);
        if let Some(auth) = &self.endpoint.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        if let Some(sid) = &self.id {
            req = req
                .header("mcp-session-id", sid)
                .header("mcp-protocol-version", &self.protocol);
        }
        let resp = req.send().await.map_err(|e| format!("send: {e}"))?;
        let status = resp.status();
        let session = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let stream = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/event-stream"));
        let Some(id) = id else {
            let text = resp.text().await.unwrap_or_default();
            return if matches!(status.as_u16(), 200 | 202 | 204) {
                Ok(Answer {
                    msg: Value::Null,
                    at: Instant::now(),
                    session,
                })
            } else {
                Err(format!("status {status}: {}", short(&text)))
            };
        };
        if status != reqwest::StatusCode::OK {
            let text = resp.text().await.unwrap_or_default();
            return Err(format!("status {status}: {}", short(&text)));
        }
        let found = if stream {
            let mut found = None;
            let mut body = resp.bytes_stream();
            let mut buf: Vec<u8> = Vec::with_capacity(1024);
            while let Some(piece) = body.next().await {
                let piece = piece.map_err(|e| format!("stream: {e}"))?;
                buf.extend_from_slice(&piece);
                while let Some(end) = event_end(&buf) {
                    let event: Vec<u8> = buf.drain(..end).collect();
                    if found.is_none() {
                        found = data_of(&event)
                            .and_then(|d| serde_json::from_str::<Value>(&d).ok())
                            .filter(|m| answers(m, id))
                            .map(|m| (m, Instant::now()));
                    }
                }
            }
            found.ok_or("the event stream ended without the answer")?
        } else {
            let bytes = resp.bytes().await.map_err(|e| format!("body: {e}"))?;
            let at = Instant::now();
            let text = String::from_utf8_lossy(&bytes);
            (
                find_answer(&text, id).ok_or_else(|| format!("no answer in {}", short(&text)))?,
                at,
            )
        };
        Ok(Answer {
            msg: found.0,
            at: found.1,
            session,
        })
    }
}

/// The answer to `id` in a JSON body: the message itself or one of a batch.
fn find_answer(text: &str, id: u64) -> Option<Value> {
    match serde_json::from_str::<Value>(text).ok()? {
        Value::Array(batch) => batch.into_iter().find(|m| answers(m, id)),
        m => answers(&m, id).then_some(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_in_json_bodies() {
        let one = r#"{"jsonrpc":"2.0","id":5,"result":{"content":[]}}"#;
        assert_eq!(find_answer(one, 5).unwrap()["id"], 5);
        assert!(find_answer(one, 6).is_none());
        let batch = r#"[{"jsonrpc":"2.0","method":"notifications/progress"},{"jsonrpc":"2.0","id":2,"error":{"code":1,"message":"x"}}]"#;
        assert_eq!(find_answer(batch, 2).unwrap()["error"]["code"], 1);
        assert!(find_answer("nope", 2).is_none());
    }
}
