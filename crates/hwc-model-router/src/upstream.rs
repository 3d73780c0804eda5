//! What differs between backend kinds on the wire: the request body sent,
//! how a whole answer is read back, and how each streamed event becomes the
//! bytes the client sees. OpenAI-compatible answers pass through with only
//! the reasoning field renamed; Anthropic ones are translated.

use crate::backends::anthropic::{self, StreamTranslator};
use crate::config::BackendKind;
use crate::request::{ClientRequest, Endpoint};
use crate::sse::{self, SseEvent};
use crate::usage::Tokens;
use bytes::Bytes;
use serde_json::{Map, Value};

/// The one name reasoning text comes out under, whatever the backend used
/// (`reasoning_content` from llama.cpp and older vLLM, `thinking` from
/// Ollama's native API). See docs/adr/0002-reasoning-field.md.
pub const REASONING_FIELD: &str = "reasoning";
const REASONING_ALIASES: [&str; 2] = ["reasoning_content", "thinking"];

/// The body to send to a backend of `kind` for `upstream_model`.
pub fn request_body(
    kind: BackendKind,
    req: &ClientRequest,
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<Vec<u8>, String> {
    match kind {
        BackendKind::Openai => {
            let mut body = req.body.clone();
            body.insert("model".into(), Value::String(upstream_model.into()));
            if req.stream && matches!(req.endpoint, Endpoint::Chat | Endpoint::Completions) {
                // Ask for usage so accounting works; the extra chunk is
                // dropped again if the client did not ask for it.
                let opts = body
                    .entry("stream_options")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(o) = opts {
                    o.insert("include_usage".into(), Value::Bool(true));
                }
            }
            serde_json::to_vec(&body).map_err(|e| e.to_string())
        }
        BackendKind::Anthropic => {
            let v =
                anthropic::chat_request_to_messages(&req.body, upstream_model, default_max_tokens)
                    .map_err(|e| e.to_string())?;
            serde_json::to_vec(&v).map_err(|e| e.to_string())
        }
    }
}

/// Whether a backend of `kind` (with or without the Responses API) can
/// serve `endpoint` at all.
pub fn supports(kind: BackendKind, responses_api: bool, endpoint: Endpoint) -> bool {
    match (kind, endpoint) {
        (BackendKind::Openai, Endpoint::Responses) => responses_api,
        (BackendKind::Openai, _) => true,
        (BackendKind::Anthropic, Endpoint::Chat) => true,
        (BackendKind::Anthropic, _) => false,
    }
}

/// A whole (non-streamed) 2xx answer, read into the client's shape.
/// `Err` means the body is not what a healthy backend sends.
pub fn read_answer(
    kind: BackendKind,
    body: &[u8],
    public_model: &str,
) -> Result<(Bytes, Tokens), String> {
    let not_json = |e: serde_json::Error| format!("answer is not JSON ({e}): {}", excerpt(body));
    if kind == BackendKind::Openai
        && !REASONING_ALIASES
            .iter()
            .any(|a| contains(body, a.as_bytes()))
    {
        // The common case: nothing to rename, so only `usage` is read and
        // the body passes on as it came.
        #[derive(serde::Deserialize)]
        struct UsageOnly {
            usage: Option<Value>,
        }
        let answer: UsageOnly = serde_json::from_slice(body).map_err(not_json)?;
        return Ok((
            Bytes::copy_from_slice(body),
            usage_of(answer.usage.as_ref()),
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(not_json)?;
    match kind {
        BackendKind::Openai => {
            let Value::Object(mut obj) = value else {
                return Err(format!("answer is not a JSON object: {}", excerpt(body)));
            };
            let tokens = usage_of(obj.get("usage"));
            let out = if rename_reasoning(&mut obj, "message") {
                Bytes::from(serde_json::to_vec(&obj).map_err(|e| e.to_string())?)
            } else {
                Bytes::copy_from_slice(body)
            };
            Ok((out, tokens))
        }
        BackendKind::Anthropic => {
            let (v, u) = anthropic::messages_response_to_chat(&value, public_model)
                .map_err(|e| e.to_string())?;
            let out = serde_json::to_vec(&v).map_err(|e| e.to_string())?;
            Ok((
                Bytes::from(out),
                Tokens {
                    prompt: u.prompt_tokens,
                    completion: u.completion_tokens,
                },
            ))
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Renames reasoning aliases to [`REASONING_FIELD`] inside each
/// `choices[i].<inner>`; true when something changed.
fn rename_reasoning(obj: &mut Map<String, Value>, inner: &str) -> bool {
    let mut changed = false;
    if let Some(Value::Array(choices)) = obj.get_mut("choices") {
        for c in choices {
            if let Some(Value::Object(m)) = c.get_mut(inner) {
                for alias in REASONING_ALIASES {
                    if let Some(v) = m.remove(alias) {
                        changed = true;
                        if !m.contains_key(REASONING_FIELD) && !v.is_null() {
                            m.insert(REASONING_FIELD.into(), v);
                        }
                    }
                }
            }
        }
    }
    changed
}

/// Token counts from an OpenAI (`prompt_tokens`) or Responses
/// (`input_tokens`) usage object.
pub fn usage_of(usage: Option<&Value>) -> Tokens {
    let Some(u) = usage else {
        return Tokens::default();
    };
    let n = |a: &str, b: &str| {
        u.get(a)
            .or_else(|| u.get(b))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Tokens {
        prompt: n("prompt_tokens", "input_tokens"),
        completion: n("completion_tokens", "output_tokens"),
    }
}

/// The client's error body for a backend's non-retryable 4xx: an
/// OpenAI-shaped error passes through, anything else is wrapped.
pub fn client_error_body(
    kind: BackendKind,
    backend: &str,
    status: u16,
    body: &[u8],
) -> (String, String) {
    match kind {
        BackendKind::Openai => {
            if let Ok(v) = serde_json::from_slice::<Value>(body) {
                if let Some(msg) = v.pointer("/error/message").and_then(Value::as_str) {
                    let kind = v
                        .pointer("/error/type")
                        .and_then(Value::as_str)
                        .unwrap_or("invalid_request_error");
                    return (kind.to_string(), msg.to_string());
                }
            }
            (
                "invalid_request_error".into(),
                format!(
                    "backend `{backend}` refused the request with {status}: {}",
                    excerpt(body)
                ),
            )
        }
        BackendKind::Anthropic => {
            let (kind, msg) = anthropic::error_to_openai(body);
            (kind.to_string(), format!("backend `{backend}`: {msg}"))
        }
    }
}

/// A short, printable piece of a body for error messages.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    let mut s: String = text.chars().filter(|c| !c.is_control()).collect();
    if body.len() > 200 {
        s.push('…');
    }
    s
}

/// Per-stream state turning upstream events into client bytes.
pub enum StreamShape {
    /// OpenAI-compatible: pass through, rename reasoning, drop the usage
    /// chunk the client did not ask for.
    Openai {
        /// Client asked for the usage chunk.
        client_wants_usage: bool,
        /// Usage seen.
        tokens: Tokens,
        /// Content chunks seen (an estimate when no usage arrives).
        chunks: u64,
        /// `[DONE]` (or `response.completed`) seen.
        done: bool,
    },
    /// Anthropic: translated event by event.
    Anthropic(Box<StreamTranslator>),
}

/// What one upstream event became.
pub enum Forward {
    /// Bytes for the client (possibly none, for dropped events).
    Bytes(Vec<Bytes>),
    /// The upstream reported an error inside the stream.
    UpstreamError(String),
}

impl StreamShape {
    /// State for a new stream from a backend of `kind`.
    pub fn new(kind: BackendKind, req: &ClientRequest, public_model: &str) -> Self {
        match kind {
            BackendKind::Openai => Self::Openai {
                client_wants_usage: req.include_usage,
                tokens: Tokens::default(),
                chunks: 0,
                done: false,
            },
            BackendKind::Anthropic => Self::Anthropic(Box::new(StreamTranslator::new(
                public_model,
                format!("chatcmpl-{:016x}", rand::random::<u64>()),
                crate::clock::unix_now().max(0) as u64,
                req.include_usage,
            ))),
        }
    }

    /// True when the event carries content, i.e. counts as a first token.
    pub fn is_data(ev: &SseEvent) -> bool {
        !ev.data.is_empty()
    }

    /// Transforms one event.
    pub fn forward(&mut self, ev: SseEvent) -> Forward {
        match self {
            Self::Openai {
                client_wants_usage,
                tokens,
                chunks,
                done,
            } => {
                if ev.data.is_empty() {
                    // Comments and empty events: keep for the client.
                    return Forward::Bytes(vec![ev.raw]);
                }
                if ev.data == "[DONE]" {
                    *done = true;
                    return Forward::Bytes(vec![ev.raw]);
                }
                let has = |needle: &str| ev.data.contains(needle);
                if !(has("\"usage\"")
                    || has("reasoning_content")
                    || has("\"thinking\"")
                    || has("\"error\"")
                    || has("response.completed"))
                {
                    *chunks += 1;
                    return Forward::Bytes(vec![ev.raw]);
                }
                let Ok(Value::Object(mut obj)) = serde_json::from_str::<Value>(&ev.data) else {
                    *chunks += 1;
                    return Forward::Bytes(vec![ev.raw]);
                };
                if let Some(err) = obj.get("error").filter(|e| e.is_object()) {
                    let msg = err
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("error inside the stream");
                    return Forward::UpstreamError(msg.to_string());
                }
                // Responses API: usage sits in the completed response.
                if obj.get("type").and_then(Value::as_str) == Some("response.completed") {
                    *tokens = usage_of(obj.get("response").and_then(|r| r.get("usage")));
                    *done = true;
                    return Forward::Bytes(vec![ev.raw]);
                }
                let usage_only = obj.get("usage").is_some_and(|u| !u.is_null())
                    && obj
                        .get("choices")
                        .and_then(Value::as_array)
                        .is_some_and(Vec::is_empty);
                if obj.get("usage").is_some_and(|u| !u.is_null()) {
                    *tokens = usage_of(obj.get("usage"));
                }
                if usage_only && !*client_wants_usage {
                    return Forward::Bytes(Vec::new());
                }
                *chunks += 1;
                if rename_reasoning(&mut obj, "delta") {
                    match serde_json::to_string(&obj) {
                        Ok(json) => Forward::Bytes(vec![rewrap(&ev, &json)]),
                        Err(_) => Forward::Bytes(vec![ev.raw]),
                    }
                } else {
                    Forward::Bytes(vec![ev.raw])
                }
            }
            Self::Anthropic(t) => {
                let name = ev.event.as_deref().unwrap_or("");
                if ev.data.is_empty() {
                    return Forward::Bytes(Vec::new());
                }
                match t.on_event(name, &ev.data) {
                    Ok(chunks) => {
                        let mut out: Vec<Bytes> =
                            chunks.iter().map(|c| sse::data_event(c)).collect();
                        if t.finished() {
                            out.push(Bytes::from_static(sse::DONE));
                        }
                        Forward::Bytes(out)
                    }
                    Err(e) => Forward::UpstreamError(e.to_string()),
                }
            }
        }
    }

    /// Whether the upstream ended the stream properly.
    pub fn done(&self) -> bool {
        match self {
            Self::Openai { done, .. } => *done,
            Self::Anthropic(t) => t.finished(),
        }
    }

    /// Tokens for accounting: reported usage, or the chunk count as an
    /// estimate of completion tokens when the stream was cut.
    pub fn tokens(&self) -> Tokens {
        match self {
            Self::Openai { tokens, chunks, .. } => {
                if *tokens == Tokens::default() {
                    Tokens {
                        prompt: 0,
                        completion: *chunks,
                    }
                } else {
                    *tokens
                }
            }
            Self::Anthropic(t) => {
                let u = t.usage();
                Tokens {
                    prompt: u.prompt_tokens,
                    completion: u.completion_tokens,
                }
            }
        }
    }
}

fn rewrap(ev: &SseEvent, json: &str) -> Bytes {
    match &ev.event {
        Some(name) => sse::named_event(name, json),
        None => sse::data_event(json),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sse::SseParser;

    fn req(stream: bool, include_usage: bool) -> ClientRequest {
        let body = format!(
            r#"{{"model":"m","stream":{stream},"stream_options":{{"include_usage":{include_usage}}},"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        ClientRequest::parse(Endpoint::Chat, body.as_bytes()).unwrap()
    }

    #[test]
    fn openai_body_rewrites_model_and_asks_for_usage() {
        let body = request_body(BackendKind::Openai, &req(true, false), "up", 1).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["model"], "up");
        assert_eq!(v["stream_options"]["include_usage"], true);
    }

    #[test]
    fn answer_reasoning_is_renamed_and_usage_read() {
        let body = br#"{"choices":[{"message":{"content":"x","reasoning_content":"think"}}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
        let (out, t) = read_answer(BackendKind::Openai, body, "m").unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["choices"][0]["message"]["reasoning"], "think");
        assert!(v["choices"][0]["message"]
            .get("reasoning_content")
            .is_none());
        assert_eq!(
            t,
            Tokens {
                prompt: 3,
                completion: 4
            }
        );
        assert!(read_answer(BackendKind::Openai, b"<html>", "m")
            .unwrap_err()
            .contains("not JSON"));
    }

    #[test]
    fn stream_renames_and_drops_unrequested_usage() {
        let mut shape = StreamShape::new(BackendKind::Openai, &req(true, false), "m");
        let mut p = SseParser::default();
        let events = p
            .push(
                b"data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"a\"}}]}\n\n\
                  data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n\
                  data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n\
                  data: [DONE]\n\n",
            )
            .unwrap();
        let mut out = Vec::new();
        for ev in events {
            if let Forward::Bytes(b) = shape.forward(ev) {
                out.extend(b);
            }
        }
        let text: String = out
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        assert!(text.contains("\"reasoning\":\"a\""), "{text}");
        assert!(!text.contains("usage"), "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"));
        assert!(shape.done());
        assert_eq!(
            shape.tokens(),
            Tokens {
                prompt: 5,
                completion: 2
            }
        );
    }
}
