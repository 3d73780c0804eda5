//! The model, through the router: OpenAI chat completions, streamed, with
//! tools (native `tool_calls`, or a JSON-schema-constrained answer for
//! backends without them), retries on 429/503 honouring `Retry-After`, and
//! `x-hwc-escalate: strong` when the job asks for the strong model.

use crate::config::{ModelConfig, ToolCalling};
use hwc_ai_core::secret::Secret;
use hwc_ai_core::sse::SseParser;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

/// A tool as the model is told about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolSpec {
    /// Its name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON schema of its arguments.
    pub parameters: Value,
}

/// One tool call the model made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call id (generated in JSON-schema mode).
    pub id: String,
    /// The tool's name, as the model wrote it.
    pub name: String,
    /// The arguments' JSON text, as the model wrote it (may be malformed).
    pub arguments: String,
}

/// Token counts of a turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
}

/// What the model said in one turn.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// Text for the user.
    pub content: String,
    /// Reasoning text, sent back with later requests (gpt-oss needs it).
    pub reasoning: String,
    /// Tool calls, in order.
    pub tool_calls: Vec<ToolCall>,
    /// Tokens.
    pub usage: Usage,
    /// `stop`, `tool_calls`, `length`, …
    pub finish_reason: String,
    /// The model that answered (from the response).
    pub model: String,
}

/// Why a turn failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The router refused the request for good (4xx other than 429).
    #[error("the router refused the request ({status}): {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Its error body.
        body: String,
    },
    /// Every attempt failed with a retryable error.
    #[error("the router did not answer after {attempts} attempts: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: String,
    },
    /// The stream ended before the turn did, or was not understood.
    #[error("the model's answer was cut or malformed: {0}")]
    Stream(String),
}

/// The router client.
#[derive(Debug, Clone)]
pub struct ModelClient {
    http: reqwest::Client,
    cfg: ModelConfig,
    key: Option<Secret>,
}

/// One request.
#[derive(Debug, Clone)]
pub struct TurnRequest<'a> {
    /// The router alias.
    pub model: &'a str,
    /// The conversation so far, OpenAI messages.
    pub messages: &'a [Value],
    /// The tools on offer.
    pub tools: &'a [ToolSpec],
    /// Send `x-hwc-escalate: strong`.
    pub escalate: bool,
    /// Cap on completion tokens.
    pub max_tokens: Option<u64>,
}

impl ModelClient {
    /// A client for `cfg`, with the router key when one is configured.
    pub fn new(cfg: &ModelConfig, key: Option<Secret>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            http,
            cfg: cfg.clone(),
            key,
        }
    }

    /// How tool calls are asked for.
    pub fn mode(&self) -> ToolCalling {
        self.cfg.tool_calling
    }

    /// The request body for `req`.
    pub fn body(&self, req: &TurnRequest<'_>) -> Value {
        let mut body = json!({
            "model": req.model,
            "messages": req.messages,
            "stream": true,
            "stream_options": {"include_usage": true},
            "temperature": self.cfg.temperature,
        });
        if let Some(n) = req.max_tokens.or(Some(self.cfg.max_completion_tokens)) {
            body["max_tokens"] = json!(n);
        }
        match self.cfg.tool_calling {
            ToolCalling::Native => {
                body["tools"] = Value::Array(
                    req.tools
                        .iter()
                        .map(|t| {
                            json!({"type": "function", "function": {
                                "name": t.name, "description": t.description,
                                "parameters": grammar_safe(&t.parameters)}})
                        })
                        .collect(),
                );
                body["tool_choice"] = json!("auto");
                body["parallel_tool_calls"] = json!(false);
            }
            ToolCalling::JsonSchema => {
                body["response_format"] = json!({
                    "type": "json_schema",
                    "json_schema": {"name": "tool_call", "strict": true, "schema": with_units(&call_schema(req.tools), &self.cfg.units)},
                });
            }
        }
        body
    }

    /// One turn, with retries.
    pub async fn turn(&self, req: &TurnRequest<'_>) -> Result<Turn, ModelError> {
        let body = self.body(req);
        let url = format!("{}/chat/completions", self.cfg.url.trim_end_matches('/'));
        let mut last = String::new();
        for attempt in 1..=self.cfg.max_attempts {
            let mut r = self
                .http
                .post(&url)
                .timeout(self.cfg.request_timeout)
                .json(&body);
            if let Some(k) = &self.key {
                r = r.bearer_auth(k.expose());
            }
            if req.escalate {
                r = r.header("x-hwc-escalate", "strong");
            }
            let wait = match r.send().await {
                Ok(resp) if resp.status().is_success() => {
                    match read_stream(resp, self.cfg.tool_calling).await {
                        Ok(t) => return Ok(t),
                        Err(e) => {
                            last = e.to_string();
                            Duration::from_millis(500 * u64::from(attempt))
                        }
                    }
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    let text = resp.text().await.unwrap_or_default();
                    if status != 429 && status != 503 && status != 502 && status != 504 {
                        return Err(ModelError::Refused { status, body: text });
                    }
                    last = format!("{status}: {}", text.chars().take(300).collect::<String>());
                    retry_after
                        .map(|s| Duration::from_secs(s.min(120)))
                        .unwrap_or_else(|| Duration::from_millis(500 * 2u64.pow(attempt.min(6))))
                }
                Err(e) => {
                    last = e.to_string();
                    Duration::from_millis(500 * 2u64.pow(attempt.min(6)))
                }
            };
            if attempt < self.cfg.max_attempts {
                tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, error = %last, "router turn failed; retrying");
                tokio::time::sleep(wait).await;
            }
        }
        Err(ModelError::Exhausted {
            attempts: self.cfg.max_attempts,
            last,
        })
    }
}

/// The schema of one answer in JSON-schema mode: a call of one of the
/// tools, its arguments constrained by that tool's schema.
pub fn call_schema(tools: &[ToolSpec]) -> Value {
    let variants: Vec<Value> = tools
        .iter()
        .map(|t| {
            json!({
                "type": "object",
                "properties": {"tool": {"const": t.name}, "arguments": decodable(&t.parameters)},
                "required": ["tool", "arguments"],
                "additionalProperties": false,
            })
        })
        .collect();
    json!({"anyOf": variants})
}

/// `schema` with the bounds a decoding grammar can hold: llama.cpp expands
/// `maxLength`/`maxItems` into repetitions and refuses more than a few
/// thousand, so lengths are capped at 400 characters and lists at 8 items
/// (which also keeps a small model from writing without end); numeric
/// bounds are left out. The runner checks the tool's own bounds when the
/// call comes back ([`crate::tools::schema`]).
pub fn decodable(schema: &Value) -> Value {
    match schema {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "minimum" | "maximum"))
                .map(|(k, v)| match (k.as_str(), v.as_u64()) {
                    ("maxLength", Some(n)) => (k.clone(), json!(n.min(400))),
                    ("maxItems", Some(n)) => (k.clone(), json!(n.min(8))),
                    _ => (k.clone(), decodable(v)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(decodable).collect()),
        other => other.clone(),
    }
}

/// `schema` for native tool calling, without `maxLength`/`maxItems`: a
/// server that turns tool schemas into a decoding grammar (llama.cpp with
/// `--jinja`) expands them into repetitions and refuses a request whose
/// repetitions, multiplied through nested lists, pass a few thousand (the
/// runner's schemas made every request of a live eval fail with "failed
/// to parse grammar"). The runner checks the tool's own bounds when the
/// call comes back ([`crate::tools::schema`]).
pub fn grammar_safe(schema: &Value) -> Value {
    match schema {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "maxLength" | "maxItems"))
                .map(|(k, v)| (k.clone(), grammar_safe(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(grammar_safe).collect()),
        other => other.clone(),
    }
}

/// `schema` with every `unit` property's string schema narrowed to `units`
/// (no change when `units` is empty).
pub fn with_units(schema: &Value, units: &[String]) -> Value {
    if units.is_empty() {
        return schema.clone();
    }
    match schema {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    if k == "properties" {
                        if let Some(props) = v.as_object() {
                            let mut props = props.clone();
                            if let Some(u) = props.get_mut("unit") {
                                *u = json!({"type": "string", "enum": units});
                            }
                            let props: serde_json::Map<String, Value> = props
                                .into_iter()
                                .map(|(pk, pv)| (pk, with_units(&pv, units)))
                                .collect();
                            return (k.clone(), Value::Object(props));
                        }
                    }
                    (k.clone(), with_units(v, units))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|x| with_units(x, units)).collect()),
        other => other.clone(),
    }
}

#[derive(Default)]
struct Partial {
    id: String,
    name: String,
    arguments: String,
}

async fn read_stream(resp: reqwest::Response, mode: ToolCalling) -> Result<Turn, ModelError> {
    read_events(resp.bytes_stream(), mode).await
}

/// A streamed chat completion read into one turn: the bytes cut into
/// events by [`SseParser`] (a character or a line split between two chunks
/// is whole again, an event that never ends is cut off), each `data`
/// applied as a chunk, up to `[DONE]`.
async fn read_events<E: std::fmt::Display>(
    stream: impl futures_util::Stream<Item = Result<bytes::Bytes, E>>,
    mode: ToolCalling,
) -> Result<Turn, ModelError> {
    use futures_util::StreamExt;
    let mut turn = Turn::default();
    let mut calls: Vec<Partial> = Vec::new();
    let mut done = false;
    let mut parser = SseParser::default();
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ModelError::Stream(e.to_string()))?;
        let events = parser
            .push(&chunk)
            .map_err(|e| ModelError::Stream(e.to_string()))?;
        for ev in events {
            done |= apply_event(&ev.data, &mut turn, &mut calls)?;
        }
    }
    if let Some(ev) = parser.finish() {
        done |= apply_event(&ev.data, &mut turn, &mut calls)?;
    }
    if !done && turn.finish_reason.is_empty() {
        return Err(ModelError::Stream(
            "the stream ended without a finish reason or [DONE]".into(),
        ));
    }
    turn.tool_calls = calls
        .into_iter()
        .enumerate()
        .map(|(i, p)| ToolCall {
            id: if p.id.is_empty() {
                format!("call_{i}")
            } else {
                p.id
            },
            name: p.name,
            arguments: p.arguments,
        })
        .collect();
    if mode == ToolCalling::JsonSchema {
        from_schema_answer(&mut turn);
    }
    Ok(turn)
}

/// One event's `data` applied to the turn; true for `[DONE]`. Comments
/// and keepalives (no data) change nothing.
fn apply_event(data: &str, turn: &mut Turn, calls: &mut Vec<Partial>) -> Result<bool, ModelError> {
    let data = data.trim();
    if data.is_empty() {
        return Ok(false);
    }
    if data == "[DONE]" {
        return Ok(true);
    }
    let v: Value = serde_json::from_str(data)
        .map_err(|e| ModelError::Stream(format!("a chunk is not JSON ({e}): {data}")))?;
    if let Some(err) = v.get("error") {
        return Err(ModelError::Stream(format!(
            "the stream carried an error: {err}"
        )));
    }
    apply_chunk(&v, turn, calls);
    Ok(false)
}

fn apply_chunk(v: &Value, turn: &mut Turn, calls: &mut Vec<Partial>) {
    if let Some(m) = v["model"].as_str() {
        turn.model = m.to_string();
    }
    if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
        turn.usage.prompt_tokens = u["prompt_tokens"].as_u64().unwrap_or(0);
        turn.usage.completion_tokens = u["completion_tokens"].as_u64().unwrap_or(0);
    }
    let Some(choice) = v["choices"].get(0) else {
        return;
    };
    if let Some(f) = choice["finish_reason"].as_str() {
        turn.finish_reason = f.to_string();
    }
    let d = &choice["delta"];
    if let Some(t) = d["content"].as_str() {
        turn.content.push_str(t);
    }
    for key in ["reasoning_content", "reasoning"] {
        if let Some(t) = d[key].as_str() {
            turn.reasoning.push_str(t);
        }
    }
    if let Some(tcs) = d["tool_calls"].as_array() {
        for tc in tcs {
            let i = tc["index"].as_u64().unwrap_or(calls.len() as u64) as usize;
            while calls.len() <= i {
                calls.push(Partial::default());
            }
            let p = &mut calls[i];
            if let Some(id) = tc["id"].as_str() {
                p.id = id.to_string();
            }
            if let Some(n) = tc["function"]["name"].as_str() {
                p.name.push_str(n);
            }
            if let Some(a) = tc["function"]["arguments"].as_str() {
                p.arguments.push_str(a);
            }
        }
    }
}

/// In JSON-schema mode the content is `{"tool": …, "arguments": …}`: turn
/// it into a tool call (malformed content stays as text; the loop tells
/// the model what was wrong).
fn from_schema_answer(turn: &mut Turn) {
    let Ok(v) = serde_json::from_str::<Value>(turn.content.trim()) else {
        return;
    };
    let (Some(tool), Some(args)) = (v["tool"].as_str(), v.get("arguments")) else {
        return;
    };
    turn.tool_calls = vec![ToolCall {
        id: format!(
            "call_{}",
            &crate::audit::sha256_hex(turn.content.as_bytes())[..12]
        ),
        name: tool.to_string(),
        arguments: args.to_string(),
    }];
    turn.content.clear();
    turn.finish_reason = "tool_calls".into();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_call_deltas_are_assembled_by_index() {
        let mut turn = Turn::default();
        let mut calls = Vec::new();
        for chunk in [
            json!({"model": "gpt-oss-20b", "choices": [{"delta": {"reasoning_content": "check "}}]}),
            json!({"choices": [{"delta": {"reasoning_content": "status", "tool_calls": [{"index": 0, "id": "c1", "function": {"name": "systemctl_", "arguments": "{\"un"}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": "status", "arguments": "it\": \"ollama.service\"}"}}]}}]}),
            json!({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 120, "completion_tokens": 30}}),
        ] {
            apply_chunk(&chunk, &mut turn, &mut calls);
        }
        assert_eq!(turn.reasoning, "check status");
        assert_eq!(turn.finish_reason, "tool_calls");
        assert_eq!(turn.usage.prompt_tokens, 120);
        assert_eq!(calls[0].name, "systemctl_status");
        assert_eq!(calls[0].arguments, "{\"unit\": \"ollama.service\"}");
    }

    /// Chunks cut anywhere (inside `data:`, inside a two-byte character,
    /// between `\r` and `\n`) read as the whole stream does.
    #[tokio::test]
    async fn a_stream_cut_anywhere_reads_whole() {
        let body = concat!(
            "data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"caf\u{e9} \"}}]}\r\n\r\n",
            ": keepalive\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        )
        .as_bytes();
        for cut in 1..body.len() {
            let chunks = [&body[..cut], &body[cut..]]
                .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)));
            let turn = read_events(futures_util::stream::iter(chunks), ToolCalling::Native)
                .await
                .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            assert_eq!(turn.content, "café ok", "cut at {cut}");
            assert_eq!(turn.finish_reason, "stop");
        }
        // The last event may come without its blank line.
        let unended =
            futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(
                b"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}]}",
            ))]);
        let turn = read_events(unended, ToolCalling::Native).await.unwrap();
        assert_eq!(turn.finish_reason, "length");
    }

    #[test]
    fn native_schemas_carry_no_length_bounds() {
        let s = json!({"type": "object", "properties": {
            "command": {"type": "string", "maxLength": 8192},
            "unit": {"type": "string", "maxLength": 255},
            "args": {"type": "array", "maxItems": 5000, "items": {"type": "string", "maxLength": 1024}}}});
        assert_eq!(
            grammar_safe(&s),
            json!({"type": "object", "properties": {
                "command": {"type": "string"},
                "unit": {"type": "string"},
                "args": {"type": "array", "items": {"type": "string"}}}})
        );
    }

    #[test]
    fn unit_arguments_are_narrowed_to_the_known_units() {
        let tools = [ToolSpec {
            name: "journal".into(),
            description: String::new(),
            parameters: json!({"type": "object", "properties": {"unit": {"type": "string", "maxLength": 255}, "lines": {"type": "integer"}}}),
        }];
        let units = vec!["ollama.service".to_string(), "demo.service".to_string()];
        let s = with_units(&call_schema(&tools), &units);
        assert_eq!(
            s["anyOf"][0]["properties"]["arguments"]["properties"]["unit"],
            json!({"type": "string", "enum": ["ollama.service", "demo.service"]})
        );
        assert_eq!(
            s["anyOf"][0]["properties"]["arguments"]["properties"]["lines"],
            json!({"type": "integer"})
        );
        assert_eq!(with_units(&call_schema(&tools), &[]), call_schema(&tools));
    }

    #[test]
    fn a_schema_answer_becomes_a_tool_call() {
        let mut turn = Turn {
            content: r#"{"tool": "journal", "arguments": {"unit": "x.service", "lines": 20}}"#
                .into(),
            ..Turn::default()
        };
        from_schema_answer(&mut turn);
        assert_eq!(turn.tool_calls.len(), 1);
        assert_eq!(turn.tool_calls[0].name, "journal");
        assert!(turn.content.is_empty());
        let mut prose = Turn {
            content: "I think the unit is fine".into(),
            ..Turn::default()
        };
        from_schema_answer(&mut prose);
        assert!(prose.tool_calls.is_empty());
    }
}
