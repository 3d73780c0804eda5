//! Parsing and checking a client's request body, with errors that say what
//! is wrong, and the local signals the `auto` model decides from.
//!
//! The body stays a JSON object so everything the router does not look at
//! (tools, `tool_choice`, `response_format`, sampling options) passes through
//! to the backend untouched.

use hwc_ai_core::ApiError;
use serde_json::{Map, Value};

/// Which OpenAI endpoint a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`
    Chat,
    /// `POST /v1/completions`
    Completions,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `POST /v1/responses`
    Responses,
}

impl Endpoint {
    /// Path under a backend's `/v1` base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat/completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Responses => "responses",
        }
    }

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Responses => "responses",
        }
    }
}

/// A request body that passed the router's checks.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    /// Endpoint it came in on.
    pub endpoint: Endpoint,
    /// The JSON object, as sent.
    pub body: Map<String, Value>,
    /// The `model` the client asked for.
    pub model: String,
    /// Whether the client wants SSE.
    pub stream: bool,
    /// Whether the client asked for the usage chunk at the end of a stream.
    pub include_usage: bool,
}

/// What the `auto` model's rules look at, computed once per request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    /// Characters of message (or prompt/input) text.
    pub prompt_chars: usize,
    /// Tools offered.
    pub tools: usize,
    /// Messages in the conversation.
    pub messages: usize,
    /// Text of the last user message.
    pub last_user_text: String,
}

fn bad(code: &'static str, param: &str, message: String) -> ApiError {
    ApiError::invalid_request(code, message).with_param(param)
}

impl ClientRequest {
    /// Parses and checks a body for `endpoint`.
    pub fn parse(endpoint: Endpoint, bytes: &[u8]) -> Result<Self, ApiError> {
        if bytes.is_empty() {
            return Err(ApiError::invalid_request(
                "empty_body",
                "request body is empty; send a JSON object such as {\"model\":\"default\",\"messages\":[...]}",
            ));
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            ApiError::invalid_request(
                "invalid_json",
                format!("request body is not valid JSON ({e}); send a JSON object with Content-Type: application/json"),
            )
        })?;
        let Value::Object(body) = value else {
            return Err(ApiError::invalid_request(
                "invalid_json",
                format!(
                    "request body must be a JSON object, not {}",
                    kind_of(&value)
                ),
            ));
        };
        let model = match body.get("model") {
            Some(Value::String(m)) if !m.is_empty() => m.clone(),
            Some(Value::String(_)) | None => {
                return Err(bad(
                    "missing_model",
                    "model",
                    "`model` is required; GET /v1/models lists the names you may use".into(),
                ))
            }
            Some(other) => {
                return Err(bad(
                    "invalid_type",
                    "model",
                    format!("`model` must be a string, not {}", kind_of(other)),
                ))
            }
        };
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(bad(
                    "invalid_type",
                    "stream",
                    format!("`stream` must be true or false, not {}", kind_of(other)),
                ))
            }
        };
        if stream && endpoint == Endpoint::Embeddings {
            return Err(bad(
                "invalid_value",
                "stream",
                "embeddings cannot be streamed; remove `stream`".into(),
            ));
        }
        let include_usage = body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        match endpoint {
            Endpoint::Chat => check_messages(&body)?,
            Endpoint::Completions => require(&body, "prompt", "a string or an array of strings")?,
            Endpoint::Embeddings => require(&body, "input", "a string or an array")?,
            Endpoint::Responses => require(&body, "input", "a string or an array of input items")?,
        }
        if let Some(tools) = body.get("tools") {
            if !tools.is_array() {
                return Err(bad(
                    "invalid_type",
                    "tools",
                    format!("`tools` must be an array, not {}", kind_of(tools)),
                ));
            }
        }
        Ok(Self {
            endpoint,
            body,
            model,
            stream,
            include_usage,
        })
    }

    /// Prompt tokens charged when a backend never reported usage (a client
    /// that left early, a backend that ignores `stream_options`): the
    /// characters of message text divided by four, rounded up. Tool
    /// schemas and images are not counted, so it errs low.
    pub fn estimated_prompt_tokens(&self) -> u64 {
        (self.signals().prompt_chars as u64).div_ceil(4)
    }

    /// The signals the escalation rules read.
    pub fn signals(&self) -> Signals {
        let mut s = Signals {
            tools: self
                .body
                .get("tools")
                .and_then(Value::as_array)
                .map_or(0, Vec::len),
            ..Signals::default()
        };
        match self.body.get("messages").and_then(Value::as_array) {
            Some(messages) => {
                s.messages = messages.len();
                for m in messages {
                    let text = m.get("content").map(text_of).unwrap_or_default();
                    s.prompt_chars += text.len();
                    if m.get("role").and_then(Value::as_str) == Some("user") {
                        s.last_user_text = text;
                    }
                }
            }
            None if self.endpoint == Endpoint::Responses => {
                // Responses: `instructions`, then `input` as a string or
                // items, read as chat messages are.
                if let Some(Value::String(i)) = self.body.get("instructions") {
                    s.prompt_chars += i.len();
                    s.messages += 1;
                }
                match self.body.get("input") {
                    Some(Value::Array(items)) => {
                        for item in items {
                            let text = item
                                .get("content")
                                .or_else(|| item.get("output"))
                                .or_else(|| item.get("arguments"))
                                .or_else(|| item.get("input"))
                                .map(text_of)
                                .unwrap_or_default();
                            s.prompt_chars += text.len();
                            s.messages += 1;
                            if item.get("role").and_then(Value::as_str) == Some("user") {
                                s.last_user_text = text;
                            }
                        }
                    }
                    Some(other) => {
                        let text = text_of(other);
                        s.prompt_chars += text.len();
                        s.messages += 1;
                        s.last_user_text = text;
                    }
                    None => {}
                }
            }
            None => {
                let text = self
                    .body
                    .get("prompt")
                    .or_else(|| self.body.get("input"))
                    .map(text_of)
                    .unwrap_or_default();
                s.prompt_chars = text.len();
                s.messages = 1;
                s.last_user_text = text;
            }
        }
        s
    }
}

fn check_messages(body: &Map<String, Value>) -> Result<(), ApiError> {
    let messages = match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => {
            return Err(bad(
                "invalid_value",
                "messages",
                "`messages` is empty; send at least one message".into(),
            ))
        }
        None => {
            return Err(bad(
                "missing_messages",
                "messages",
                "`messages` is required: an array of {\"role\":\"user\",\"content\":\"...\"}"
                    .into(),
            ))
        }
        Some(other) => {
            return Err(bad(
                "invalid_type",
                "messages",
                format!("`messages` must be an array, not {}", kind_of(other)),
            ))
        }
    };
    for (i, m) in messages.iter().enumerate() {
        let Some(obj) = m.as_object() else {
            return Err(bad(
                "invalid_type",
                &format!("messages[{i}]"),
                format!(
                    "messages[{i}] must be an object with `role` and `content`, not {}",
                    kind_of(m)
                ),
            ));
        };
        match obj.get("role") {
            Some(Value::String(_)) => {}
            _ => {
                return Err(bad(
                    "invalid_type",
                    &format!("messages[{i}].role"),
                    format!("messages[{i}].role must be a string such as \"user\""),
                ))
            }
        }
        match obj.get("content") {
            None | Some(Value::Null | Value::String(_) | Value::Array(_)) => {}
            Some(other) => {
                return Err(bad(
                    "invalid_type",
                    &format!("messages[{i}].content"),
                    format!(
                        "messages[{i}].content must be a string or an array of parts, not {}",
                        kind_of(other)
                    ),
                ))
            }
        }
    }
    Ok(())
}

fn require(body: &Map<String, Value>, field: &str, what: &str) -> Result<(), ApiError> {
    match body.get(field) {
        Some(Value::String(_) | Value::Array(_)) => Ok(()),
        None => Err(bad(
            "missing_field",
            field,
            format!("`{field}` is required: {what}"),
        )),
        Some(other) => Err(bad(
            "invalid_type",
            field,
            format!("`{field}` must be {what}, not {}", kind_of(other)),
        )),
    }
}

/// Plain text of a content value: a string, or the `text` of its parts.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.as_str().or_else(|| p.get("text").and_then(Value::as_str)))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// "a number", "an object"... for error messages.
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn err(endpoint: Endpoint, body: &str) -> ApiError {
        ClientRequest::parse(endpoint, body.as_bytes()).unwrap_err()
    }

    #[test]
    fn bad_bodies_get_clear_errors() {
        let cases = [
            ("", "empty"),
            ("{", "not valid JSON"),
            ("[]", "must be a JSON object, not an array"),
            ("{\"messages\":[]}", "`model` is required"),
            (
                "{\"model\":3,\"messages\":[]}",
                "`model` must be a string, not a number",
            ),
            ("{\"model\":\"m\"}", "`messages` is required"),
            (
                "{\"model\":\"m\",\"messages\":{}}",
                "must be an array, not an object",
            ),
            ("{\"model\":\"m\",\"messages\":[]}", "is empty"),
            (
                "{\"model\":\"m\",\"messages\":[1]}",
                "messages[0] must be an object",
            ),
            (
                "{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}",
                "messages[0].role",
            ),
            (
                "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}",
                "messages[0].content",
            ),
            (
                "{\"model\":\"m\",\"stream\":\"yes\",\"messages\":[{\"role\":\"user\"}]}",
                "`stream` must be true or false",
            ),
            (
                "{\"model\":\"m\",\"tools\":{},\"messages\":[{\"role\":\"user\"}]}",
                "`tools` must be an array",
            ),
        ];
        for (body, want) in cases {
            let e = err(Endpoint::Chat, body);
            assert_eq!(e.status, 400, "{body}");
            assert!(e.message.contains(want), "{body}: {}", e.message);
        }
        assert!(err(Endpoint::Embeddings, "{\"model\":\"m\"}")
            .message
            .contains("`input` is required"));
    }

    #[test]
    fn responses_input_is_read_as_messages() {
        let r = ClientRequest::parse(
            Endpoint::Responses,
            br#"{"model":"auto","instructions":"abcd","tools":[{}],
                "input":[{"role":"user","content":[{"type":"input_text","text":"hello"}]},
                         {"type":"function_call","call_id":"c","name":"f","arguments":"{}"},
                         {"type":"function_call_output","call_id":"c","output":"result"},
                         {"type":"message","role":"user","content":"again"}]}"#,
        )
        .unwrap();
        let s = r.signals();
        assert_eq!(s.tools, 1);
        assert_eq!(s.messages, 5);
        assert_eq!(s.prompt_chars, 4 + 5 + 2 + 6 + 5);
        assert_eq!(s.last_user_text, "again");
        let r = ClientRequest::parse(Endpoint::Responses, br#"{"model":"m","input":"hi there"}"#)
            .unwrap();
        assert_eq!((r.signals().messages, r.estimated_prompt_tokens()), (1, 2));
    }

    #[test]
    fn signals_count_text_tools_and_turns() {
        let r = ClientRequest::parse(
            Endpoint::Chat,
            br#"{"model":"auto","stream":true,"stream_options":{"include_usage":true},
                "tools":[{},{}],
                "messages":[{"role":"system","content":"abc"},
                            {"role":"user","content":[{"type":"text","text":"hello"}]}]}"#,
        )
        .unwrap();
        assert!(r.stream && r.include_usage);
        let s = r.signals();
        assert_eq!(s.tools, 2);
        assert_eq!(s.messages, 2);
        assert_eq!(s.prompt_chars, 8);
        assert_eq!(s.last_user_text, "hello");
    }
}
