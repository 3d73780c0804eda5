//! What the runner under evaluation talks to as its model: in replay mode
//! a server that answers each chat completion with the scenario's next
//! recorded turn (streamed as the router streams: deltas, a finish reason,
//! usage, `[DONE]`); in live mode a proxy to a real OpenAI-compatible
//! endpoint. Both keep every request, so a check can prove a secret never
//! reached the model.

use super::scenario::ReplayTurn;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// Where the model's turns come from.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// The scenario's recorded transcript.
    Replay,
    /// A real endpoint (the router, or any OpenAI-compatible server).
    Live {
        /// Its base URL, ending in `/v1`.
        endpoint: String,
        /// The model name to ask for.
        model: String,
        /// A bearer key, if it needs one.
        api_key: Option<String>,
        /// Extra lines for the runner's `[model]` table
        /// (`tool_calling = "json_schema"` for a model without native
        /// tool calls).
        model_config: String,
    },
}

struct Shared {
    turns: Vec<ReplayTurn>,
    next: Mutex<usize>,
    requests: Mutex<Vec<Value>>,
    live: Option<(String, String, Option<String>)>,
    http: reqwest::Client,
}

/// A running front; stops when dropped.
pub struct Front {
    /// Its base URL (`http://127.0.0.1:PORT/v1`).
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Front {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Front {
    /// Starts one on a loopback port.
    pub async fn start(source: &ModelSource, turns: Vec<ReplayTurn>) -> std::io::Result<Self> {
        let live = match source {
            ModelSource::Replay => None,
            ModelSource::Live {
                endpoint,
                model,
                api_key,
                ..
            } => Some((
                endpoint.trim_end_matches('/').to_string(),
                model.clone(),
                api_key.clone(),
            )),
        };
        let shared = Arc::new(Shared {
            turns,
            next: Mutex::new(0),
            requests: Mutex::new(Vec::new()),
            live,
            http: reqwest::Client::new(),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url: format!("http://{addr}/v1"),
            shared,
            task,
        })
    }

    /// Every request the runner sent, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Turns of the transcript not asked for (replay).
    pub fn unused_turns(&self) -> usize {
        let next = self.shared.next.lock().map(|n| *n).unwrap_or(0);
        self.shared.turns.len().saturating_sub(next)
    }
}

/// The event numbers of the tool results in a request, in order (each
/// tool message starts `[event N]`).
pub fn tool_result_events(request: &Value) -> Vec<i64> {
    request["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "tool")
        .filter_map(|m| {
            let c = m["content"].as_str()?;
            let rest = c.strip_prefix("[event ")?;
            rest.split(']').next()?.parse().ok()
        })
        .collect()
}

/// `arguments` with every `"{{result:N}}"` replaced by the N-th event of
/// `events`; an N beyond them is left as the string (the runner's schema
/// check then says what is wrong).
pub fn fill_results(arguments: &Value, events: &[i64]) -> Value {
    match arguments {
        Value::String(s) => s
            .strip_prefix("{{result:")
            .and_then(|r| r.strip_suffix("}}"))
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| events.get(i))
            .map_or_else(|| arguments.clone(), |e| json!(e)),
        Value::Array(a) => Value::Array(a.iter().map(|v| fill_results(v, events)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), fill_results(v, events)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The SSE body of one recorded turn, as a chat completions stream.
pub fn turn_stream(turn: &ReplayTurn, events: &[i64]) -> String {
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "replay", "object": "chat.completion.chunk", "created": 0, "model": "replay",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    let mut out = chunk(json!({"role": "assistant", "content": ""}), Value::Null);
    match (&turn.tool, &turn.content) {
        (Some(tool), _) => {
            let args = fill_results(&turn.arguments, events).to_string();
            out.push_str(&chunk(
                json!({"tool_calls": [{"index": 0, "id": format!("call_{tool}"), "type": "function",
                                        "function": {"name": tool, "arguments": args}}]}),
                Value::Null,
            ));
            out.push_str(&chunk(json!({}), json!("tool_calls")));
        }
        (None, content) => {
            out.push_str(&chunk(
                json!({"content": content.clone().unwrap_or_default()}),
                Value::Null,
            ));
            out.push_str(&chunk(json!({}), json!("stop")));
        }
    }
    out.push_str(&format!(
        "data: {}\n\n",
        json!({"id": "replay", "object": "chat.completion.chunk", "created": 0, "model": "replay", "choices": [],
               "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}})
    ));
    out.push_str("data: [DONE]\n\n");
    out
}

async fn complete(State(s): State<Arc<Shared>>, body: axum::body::Bytes) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Ok(mut r) = s.requests.lock() {
        r.push(req.clone());
    }
    if let Some((endpoint, model, key)) = &s.live {
        let mut fwd = req;
        fwd["model"] = json!(model);
        let mut rb = s
            .http
            .post(format!("{endpoint}/chat/completions"))
            .json(&fwd);
        if let Some(k) = key {
            rb = rb.bearer_auth(k);
        }
        return match rb.send().await {
            Ok(resp) => {
                let status =
                    StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
                let ct = resp
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("text/event-stream")
                    .to_string();
                (
                    status,
                    [(axum::http::header::CONTENT_TYPE, ct)],
                    Body::from_stream(resp.bytes_stream()),
                )
                    .into_response()
            }
            Err(e) => error(
                StatusCode::BAD_GATEWAY,
                &format!("the live endpoint {endpoint}: {e}"),
            ),
        };
    }
    let idx = {
        let Ok(mut n) = s.next.lock() else {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "replay state poisoned");
        };
        let i = *n;
        *n += 1;
        i
    };
    let Some(turn) = s.turns.get(idx) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!(
                "the transcript has {} turns and the runner asked for turn {}: the run diverged from the recording",
                s.turns.len(),
                idx + 1
            ),
        );
    };
    let events = tool_result_events(&req);
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
        turn_stream(turn, &events),
    )
        .into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"message": message, "type": "replay_error"}})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_citations_become_this_runs_event_numbers() {
        let req = json!({"messages": [
            {"role": "user", "content": "x"},
            {"role": "tool", "content": "[event 9] exit 0"},
            {"role": "tool", "content": "[event 15] HTTP 200"}]});
        let events = tool_result_events(&req);
        assert_eq!(events, [9, 15]);
        let args = json!({"findings": [{"text": "t", "evidence": ["{{result:2}}", "{{result:1}}", "{{result:7}}"]}]});
        assert_eq!(
            fill_results(&args, &events),
            json!({"findings": [{"text": "t", "evidence": [15, 9, "{{result:7}}"]}]})
        );
    }
}
