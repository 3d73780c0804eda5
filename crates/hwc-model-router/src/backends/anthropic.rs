//! Translation between OpenAI Chat Completions and Anthropic's Messages API.
//!
//! Clients of the router speak OpenAI chat (`/v1/chat/completions`), but
//! Anthropic only speaks Messages (`/v1/messages`, `anthropic-version:
//! 2023-06-01`). This module converts requests, non-streamed responses,
//! error bodies and server-sent event streams between the two. It is pure
//! (functions over [`serde_json::Value`]s, no HTTP, no async), so the backend
//! code owns transport and this module owns the mapping.

use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest excerpt of a foreign body quoted in an error message.
const EXCERPT_CHARS: usize = 200;

/// A request or response that cannot be translated.
///
/// Exists so the router can answer the client with a precise OpenAI error
/// (400 for [`TranslateError::InvalidRequest`], 502 for the others) instead
/// of forwarding something Anthropic would reject or the client would misread.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// The client's OpenAI request cannot be expressed as a Messages request.
    #[error("invalid request parameter `{param}`: {message}")]
    InvalidRequest {
        /// Path of the offending parameter, e.g. `messages[2].content`.
        param: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Anthropic sent something that is not a valid Messages response or event.
    #[error("unexpected response from Anthropic: {0}")]
    InvalidResponse(String),
    /// Anthropic reported an error (an `error` body or stream event).
    #[error("Anthropic error ({openai_type}): {message}")]
    Upstream {
        /// The OpenAI error `type` it corresponds to, e.g. `rate_limit_error`.
        openai_type: &'static str,
        /// Anthropic's message.
        message: String,
    },
}

/// Token counts in OpenAI terms, for accounting and the `usage` object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input tokens, cache reads and writes included (as OpenAI counts them).
    pub prompt_tokens: u64,
    /// Generated tokens, thinking included.
    pub completion_tokens: u64,
}

impl Usage {
    fn to_json(self) -> Value {
        let total = self.prompt_tokens.saturating_add(self.completion_tokens);
        json!({ "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "total_tokens": total })
    }

    /// Reads an Anthropic `usage` object; absent fields keep their value.
    fn read(&mut self, u: &Value) {
        let n = |k: &str| u.get(k).and_then(Value::as_u64);
        if n("input_tokens").is_some() {
            let keys = [
                "input_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
            ];
            self.prompt_tokens = keys
                .iter()
                .filter_map(|k| n(k))
                .fold(0, u64::saturating_add);
        }
        if let Some(out) = n("output_tokens") {
            self.completion_tokens = out;
        }
    }
}

type Res<T> = Result<T, TranslateError>;

fn invalid(param: impl Into<String>, message: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest {
        param: param.into(),
        message: message.into(),
    }
}

fn bad<T>(param: impl Into<String>, message: impl Into<String>) -> Res<T> {
    Err(invalid(param, message))
}

/// An [`TranslateError::InvalidResponse`] quoting the start of `body`.
fn bad_response(what: impl std::fmt::Display, body: &str) -> TranslateError {
    TranslateError::InvalidResponse(format!("{what}: {}", excerpt(body)))
}

/// The first [`EXCERPT_CHARS`] characters of `s`, for error messages.
fn excerpt(s: &str) -> String {
    let mut out: String = s.chars().take(EXCERPT_CHARS).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Treats JSON `null` like an absent field, as OpenAI does.
fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// `v.key` as a string, if both exist.
fn str_at<'a>(v: Option<&'a Value>, key: &str) -> Option<&'a str> {
    v?.get(key)?.as_str()
}

// ---------------------------------------------------------------- request

/// Converts an OpenAI chat request body into an Anthropic Messages request body.
///
/// Exists because Anthropic takes a different shape: system prompt on top,
/// strictly alternating user/assistant turns, tool calls and results as
/// content blocks, and a mandatory `max_tokens`. `upstream_model` replaces
/// the client's `model`; `default_max_tokens` is used when the request sets
/// neither `max_completion_tokens` nor `max_tokens`.
pub fn chat_request_to_messages(
    req: &Map<String, Value>,
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<Value, TranslateError> {
    reject_unsupported(req)?;
    let (system, messages) = translate_messages(req)?;
    let mut out = Map::new();
    out.insert("model".into(), upstream_model.into());
    if !system.is_empty() {
        out.insert("system".into(), system.into());
    }
    out.insert("messages".into(), messages.into());
    let max_tokens = match (get(req, "max_completion_tokens"), get(req, "max_tokens")) {
        (Some(v), _) => positive(v, "max_completion_tokens")?,
        (None, Some(v)) => positive(v, "max_tokens")?,
        (None, None) => default_max_tokens,
    };
    out.insert("max_tokens".into(), max_tokens.into());
    for key in ["temperature", "top_p"] {
        match get(req, key) {
            None => {}
            Some(v) if v.is_number() => drop(out.insert(key.into(), v.clone())),
            Some(_) => return bad(key, "must be a number"),
        }
    }
    if let Some(stop) = get(req, "stop") {
        let list = match stop {
            Value::Array(a) => a.as_slice(),
            one => std::slice::from_ref(one),
        };
        let seqs: Option<Vec<&str>> = list.iter().map(Value::as_str).collect();
        let mut seqs = seqs.ok_or_else(|| invalid("stop", "must be a string or string array"))?;
        seqs.retain(|s| !s.trim().is_empty());
        if !seqs.is_empty() {
            out.insert("stop_sequences".into(), json!(seqs));
        }
    }
    if let Some(v) = get(req, "stream") {
        let stream = v
            .as_bool()
            .ok_or_else(|| invalid("stream", "must be a boolean"))?;
        out.insert("stream".into(), stream.into());
    }
    if let Some(v) = get(req, "user") {
        let user = v
            .as_str()
            .ok_or_else(|| invalid("user", "must be a string"))?;
        out.insert("metadata".into(), json!({ "user_id": user }));
    }
    translate_tools(req, &mut out)?;
    Ok(Value::Object(out))
}

/// Fails on OpenAI features Anthropic lacks whose silent loss would change
/// what the client gets back.
fn reject_unsupported(req: &Map<String, Value>) -> Res<()> {
    if get(req, "n").is_some_and(|n| n.as_u64() != Some(1)) {
        return bad(
            "n",
            "Anthropic returns one choice; omit `n` or send several requests",
        );
    }
    if get(req, "logprobs").and_then(Value::as_bool) == Some(true) {
        return bad(
            "logprobs",
            "Anthropic does not return log probabilities; omit `logprobs`",
        );
    }
    match str_at(get(req, "response_format"), "type") {
        None if get(req, "response_format").is_none() => Ok(()),
        Some("text") => Ok(()),
        kind => bad(
            "response_format",
            format!(
                "{} is not supported by Anthropic backends; describe the format in the prompt \
                 or use a tool whose parameters are the schema",
                kind.map_or_else(|| "this format".to_owned(), |k| format!("`{k}`"))
            ),
        ),
    }
}

fn positive(v: &Value, param: &str) -> Res<u64> {
    v.as_u64()
        .filter(|n| *n > 0)
        .ok_or_else(|| invalid(param, "must be a positive integer"))
}

/// The alternating Anthropic turn list; same-role neighbours are merged.
#[derive(Default)]
struct Turns(Vec<(&'static str, Vec<Value>)>);

impl Turns {
    fn push(&mut self, role: &'static str, blocks: Vec<Value>) {
        match self.0.last_mut() {
            _ if blocks.is_empty() => {}
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => self.0.push((role, blocks)),
        }
    }
}

fn text_block(text: &str) -> Value {
    json!({ "type": "text", "text": text })
}

/// Returns the `system` text and the translated `messages`.
fn translate_messages(req: &Map<String, Value>) -> Res<(String, Vec<Value>)> {
    let msgs = match get(req, "messages") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        _ => return bad("messages", "must be a non-empty array of messages"),
    };
    let mut system: Vec<String> = Vec::new();
    let mut turns = Turns::default();
    for (i, msg) in msgs.iter().enumerate() {
        let path = format!("messages[{i}]");
        let Some(msg) = msg.as_object() else {
            return bad(path, "must be an object with `role` and `content`");
        };
        let content = get(msg, "content");
        let cpath = format!("{path}.content");
        match get(msg, "role").and_then(Value::as_str) {
            Some("system" | "developer") => {
                let text = plain_text(content, &cpath)?;
                if !text.is_empty() {
                    system.push(text);
                }
            }
            Some("user") => turns.push("user", user_blocks(content, &cpath)?),
            Some("assistant") => turns.push("assistant", assistant_blocks(msg, &path)?),
            Some("tool") => {
                let Some(id) = get(msg, "tool_call_id").and_then(Value::as_str) else {
                    let msg = "tool messages need the `tool_call_id` of the call they answer";
                    return bad(format!("{path}.tool_call_id"), msg);
                };
                let content = plain_text(content, &cpath)?;
                let block = json!({ "type": "tool_result", "tool_use_id": id, "content": content });
                turns.push("user", vec![block]);
            }
            _ => {
                let msg = "must be one of system, developer, user, assistant, tool";
                return bad(format!("{path}.role"), msg);
            }
        }
    }
    if turns.0.is_empty() {
        let msg = "must contain a user or assistant message with non-empty content";
        return bad("messages", msg);
    }
    let messages = turns
        .0
        .into_iter()
        .map(|(r, c)| json!({ "role": r, "content": c }));
    Ok((system.join("\n\n"), messages.collect()))
}

/// Text of a string or an array of `{type:"text"}` parts (absent = empty).
fn plain_text(content: Option<&Value>, path: &str) -> Res<String> {
    match content {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for (j, part) in parts.iter().enumerate() {
                let Some(text) = part_text(part) else {
                    return bad(format!("{path}[{j}]"), "only text parts are allowed here");
                };
                out.push_str(text);
            }
            Ok(out)
        }
        Some(_) => bad(path, "must be a string or an array of text parts"),
    }
}

fn part_text(part: &Value) -> Option<&str> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => part.get("text").and_then(Value::as_str),
        _ => None,
    }
}

fn user_blocks(content: Option<&Value>, path: &str) -> Res<Vec<Value>> {
    let parts = match content {
        Some(Value::String(s)) if s.is_empty() => return Ok(Vec::new()),
        Some(Value::String(s)) => return Ok(vec![text_block(s)]),
        Some(Value::Array(parts)) => parts,
        None => return bad(path, "user messages need content"),
        Some(_) => return bad(path, "must be a string or an array of content parts"),
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let ppath = format!("{path}[{j}]");
        match part.get("type").and_then(Value::as_str) {
            Some("text") => match part_text(part) {
                Some("") => {}
                Some(t) => blocks.push(text_block(t)),
                None => return bad(format!("{ppath}.text"), "must be a string"),
            },
            Some("image_url") => blocks.push(image_block(part, &ppath)?),
            kind => {
                let kind = kind.unwrap_or("(missing)");
                let msg = format!("part type `{kind}` is not supported; use `text` or `image_url`");
                return bad(format!("{ppath}.type"), msg);
            }
        }
    }
    Ok(blocks)
}

fn image_block(part: &Value, path: &str) -> Res<Value> {
    let image = part.get("image_url");
    let url = image
        .and_then(|i| i.get("url").or(Some(i)))
        .and_then(Value::as_str);
    let path = format!("{path}.image_url.url");
    let Some(url) = url else {
        return bad(path, "must be a string URL");
    };
    if let Some(rest) = url.strip_prefix("data:") {
        let parsed = rest
            .split_once(',')
            .and_then(|(m, d)| Some((m.strip_suffix(";base64")?, d)));
        return match parsed {
            Some((media_type, data)) if !media_type.is_empty() => Ok(json!({ "type": "image",
                "source": { "type": "base64", "media_type": media_type, "data": data } })),
            _ => bad(
                path,
                "data URLs must look like `data:image/png;base64,<data>`",
            ),
        };
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({ "type": "image", "source": { "type": "url", "url": url } }));
    }
    bad(path, "must be an http(s) URL or a base64 data URL")
}

/// Text and `tool_use` blocks of an assistant turn; reasoning is dropped
/// because Anthropic only accepts thinking blocks with their signatures.
fn assistant_blocks(msg: &Map<String, Value>, path: &str) -> Res<Vec<Value>> {
    let cpath = format!("{path}.content");
    let text = match get(msg, "content") {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for (j, part) in parts.iter().enumerate() {
                let text = part_text(part).or_else(|| str_at(Some(part), "refusal"));
                let Some(text) = text else {
                    return bad(
                        format!("{cpath}[{j}]"),
                        "must be a `text` or `refusal` part",
                    );
                };
                out.push_str(text);
            }
            out
        }
        Some(_) => return bad(cpath, "must be a string, an array of text parts or null"),
    };
    let mut blocks = Vec::new();
    if !text.is_empty() {
        blocks.push(text_block(&text));
    }
    let calls = match get(msg, "tool_calls") {
        None => return Ok(blocks),
        Some(Value::Array(a)) => a,
        Some(_) => return bad(format!("{path}.tool_calls"), "must be an array"),
    };
    for (j, call) in calls.iter().enumerate() {
        let cpath = format!("{path}.tool_calls[{j}]");
        let Some(id) = str_at(Some(call), "id") else {
            return bad(format!("{cpath}.id"), "must be a string");
        };
        let function = call.get("function");
        let Some(name) = str_at(function, "name") else {
            return bad(format!("{cpath}.function.name"), "must be a string");
        };
        let apath = format!("{cpath}.function.arguments");
        let input = match function.and_then(|f| f.get("arguments")) {
            None | Some(Value::Null) => json!({}),
            Some(Value::String(s)) if s.trim().is_empty() => json!({}),
            Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
                invalid(
                    &apath,
                    format!("is not valid JSON ({e}); send a JSON object string"),
                )
            })?,
            Some(v) => v.clone(),
        };
        if !input.is_object() {
            return bad(apath, "must encode a JSON object");
        }
        blocks.push(json!({ "type": "tool_use", "id": id, "name": name, "input": input }));
    }
    Ok(blocks)
}

fn translate_tools(req: &Map<String, Value>, out: &mut Map<String, Value>) -> Res<()> {
    let tools = match get(req, "tools") {
        None => return Ok(()),
        Some(Value::Array(a)) if a.is_empty() => return Ok(()),
        Some(Value::Array(a)) => a,
        Some(_) => return bad("tools", "must be an array of function tools"),
    };
    let mut translated = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        if str_at(Some(tool), "type") != Some("function") {
            return bad(
                format!("tools[{i}].type"),
                "only `function` tools are supported",
            );
        }
        let f = tool.get("function");
        let Some(name) = str_at(f, "name") else {
            return bad(format!("tools[{i}].function.name"), "must be a string");
        };
        let mut t = Map::new();
        t.insert("name".into(), name.into());
        if let Some(d) = f
            .and_then(|f| f.get("description"))
            .filter(|d| !d.is_null())
        {
            t.insert("description".into(), d.clone());
        }
        let schema = f.and_then(|f| f.get("parameters")).filter(|p| !p.is_null());
        let schema = schema
            .cloned()
            .unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
        t.insert("input_schema".into(), schema);
        translated.push(Value::Object(t));
    }
    out.insert("tools".into(), translated.into());

    const CHOICES: &str = "must be auto, required, none or {type:function, function:{name}}";
    let mut choice = match get(req, "tool_choice") {
        None => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => json!({ "type": "auto" }),
            "required" => json!({ "type": "any" }),
            "none" => json!({ "type": "none" }),
            _ => return bad("tool_choice", CHOICES),
        }),
        Some(v) if str_at(Some(v), "type") == Some("function") => {
            let name = str_at(v.get("function"), "name");
            let name =
                name.ok_or_else(|| invalid("tool_choice.function.name", "must be a string"))?;
            Some(json!({ "type": "tool", "name": name }))
        }
        Some(_) => return bad("tool_choice", CHOICES),
    };
    if get(req, "parallel_tool_calls").and_then(Value::as_bool) == Some(false) {
        let c = choice.get_or_insert_with(|| json!({ "type": "auto" }));
        if let Some(obj) = c.as_object_mut().filter(|o| o["type"] != "none") {
            obj.insert("disable_parallel_tool_use".into(), true.into());
        }
    }
    if let Some(c) = choice {
        out.insert("tool_choice".into(), c);
    }
    Ok(())
}

// --------------------------------------------------------------- response

fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

fn upstream_error(err: Option<&Value>) -> TranslateError {
    let message = str_at(err, "message").unwrap_or("Anthropic reported an error without a message");
    TranslateError::Upstream {
        openai_type: openai_error_type(str_at(err, "type").unwrap_or("")),
        message: message.to_owned(),
    }
}

/// Converts a non-streamed Anthropic Messages response into an OpenAI
/// `chat.completion`, returning the token usage alongside for accounting.
///
/// Exists because the client expects `choices[0].message` with `content`,
/// `tool_calls` and `finish_reason`, not Anthropic content blocks. `model`
/// is the name to report (normally the one the client asked for).
pub fn messages_response_to_chat(
    resp: &Value,
    model: &str,
) -> Result<(Value, Usage), TranslateError> {
    if str_at(Some(resp), "type") == Some("error") {
        return Err(upstream_error(resp.get("error")));
    }
    let Some(blocks) = resp.get("content").and_then(Value::as_array) else {
        return Err(bad_response("no `content` array in", &resp.to_string()));
    };
    let (mut text, mut reasoning, mut tool_calls) = (String::new(), String::new(), Vec::new());
    for block in blocks {
        let field = |k| str_at(Some(block), k).unwrap_or("");
        match field("type") {
            "text" => text.push_str(field("text")),
            "thinking" => reasoning.push_str(field("thinking")),
            "tool_use" => {
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                let function = json!({ "name": field("name"), "arguments": input.to_string() });
                tool_calls
                    .push(json!({ "id": field("id"), "type": "function", "function": function }));
            }
            _ => {}
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    let content = if text.is_empty() && !tool_calls.is_empty() {
        Value::Null
    } else {
        text.into()
    };
    message.insert("content".into(), content);
    if !reasoning.is_empty() {
        message.insert("reasoning".into(), reasoning.into());
    }
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), tool_calls.into());
    }
    let mut usage = Usage::default();
    if let Some(u) = resp.get("usage") {
        usage.read(u);
    }
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let finish = finish_reason(str_at(Some(resp), "stop_reason"));
    let body = json!({
        "id": format!("chatcmpl-{}", str_at(Some(resp), "id").unwrap_or("unknown")),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{ "index": 0, "message": message, "finish_reason": finish }],
        "usage": usage.to_json(),
    });
    Ok((body, usage))
}

// ------------------------------------------------------------------ errors

fn openai_error_type(anthropic: &str) -> &'static str {
    match anthropic {
        "invalid_request_error" | "not_found_error" | "request_too_large" => {
            "invalid_request_error"
        }
        "authentication_error" => "authentication_error",
        "permission_error" => "permission_error",
        "billing_error" => "insufficient_quota",
        "rate_limit_error" => "rate_limit_error",
        _ => "server_error",
    }
}

/// Converts an Anthropic error body into an OpenAI error `type` and message.
///
/// Exists so upstream failures reach the client in OpenAI's vocabulary.
/// Never fails: a body that is not an Anthropic error gives `server_error`
/// and a message quoting the start of the body.
pub fn error_to_openai(body: &[u8]) -> (&'static str, String) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    match str_at(err, "message") {
        Some(message) => (
            openai_error_type(str_at(err, "type").unwrap_or("")),
            message.to_owned(),
        ),
        None => {
            let body = excerpt(&String::from_utf8_lossy(body));
            (
                "server_error",
                format!("Anthropic returned an unrecognized error body: {body}"),
            )
        }
    }
}

// ---------------------------------------------------------------- streaming

/// Incremental translation of an Anthropic Messages SSE stream into OpenAI
/// `chat.completion.chunk` JSON strings.
///
/// Exists because streaming clients expect OpenAI chunks: tool calls indexed
/// from 0 in order, text in `delta.content`, a `finish_reason` chunk and,
/// on request, a final usage chunk. Feed it one SSE event at a time.
#[derive(Debug)]
pub struct StreamTranslator {
    model: String,
    id: String,
    created: u64,
    include_usage: bool,
    usage: Usage,
    finished: bool,
    /// Anthropic content block index -> OpenAI tool call index.
    tool_index: HashMap<u64, usize>,
}

impl StreamTranslator {
    /// Starts a stream; `id` is the chat completion id to report (e.g.
    /// `chatcmpl-...`), `created` unix seconds, `include_usage` whether the
    /// client asked for `stream_options.include_usage`.
    pub fn new(model: &str, id: String, created: u64, include_usage: bool) -> Self {
        Self {
            model: model.to_owned(),
            id,
            created,
            include_usage,
            usage: Usage::default(),
            finished: false,
            tool_index: HashMap::new(),
        }
    }

    /// Translates one SSE event (its `event:` name and `data:` payload) into
    /// zero or more chunk JSON strings, each to be sent as `data: <json>`.
    ///
    /// Unknown events such as `ping`, and anything after `message_stop`,
    /// give nothing; an `error` event gives [`TranslateError::Upstream`];
    /// unparseable data gives [`TranslateError::InvalidResponse`]. An empty
    /// `event` name falls back to the data's `type`.
    pub fn on_event(&mut self, event: &str, data: &str) -> Result<Vec<String>, TranslateError> {
        let known = ["", "error"].contains(&event)
            || event.starts_with("message_")
            || event.starts_with("content_block_");
        if self.finished || !known {
            return Ok(Vec::new());
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|e| bad_response(format!("invalid JSON ({e}) in `{event}` event"), data))?;
        let event = if event.is_empty() {
            str_at(Some(&v), "type").unwrap_or("")
        } else {
            event
        };
        let mut out = Vec::new();
        match event {
            "message_start" => {
                if let Some(u) = v.get("message").and_then(|m| m.get("usage")) {
                    self.usage.read(u);
                }
                out.push(self.chunk(json!({ "role": "assistant", "content": "" }), None));
            }
            "content_block_start" => {
                let block = v.get("content_block");
                let field = |k| str_at(block, k).unwrap_or("");
                match field("type") {
                    "tool_use" => {
                        let k = self.tool_index.len();
                        self.tool_index.insert(block_index(&v)?, k);
                        let function = json!({ "name": field("name"), "arguments": "" });
                        let call = json!({ "index": k, "id": field("id"), "type": "function",
                                           "function": function });
                        out.push(self.chunk(json!({ "tool_calls": [call] }), None));
                    }
                    "text" if !field("text").is_empty() => {
                        out.push(self.chunk(json!({ "content": field("text") }), None));
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let delta = v.get("delta");
                let field = |k| str_at(delta, k).unwrap_or("");
                let delta = match field("type") {
                    "text_delta" if !field("text").is_empty() => {
                        json!({ "content": field("text") })
                    }
                    "thinking_delta" if !field("thinking").is_empty() => {
                        json!({ "reasoning": field("thinking") })
                    }
                    "input_json_delta" if !field("partial_json").is_empty() => {
                        let idx = block_index(&v)?;
                        // Not one of our function tools (e.g. a server tool): skip it.
                        let Some(k) = self.tool_index.get(&idx) else {
                            return Ok(out);
                        };
                        let function = json!({ "arguments": field("partial_json") });
                        json!({ "tool_calls": [{ "index": k, "function": function }] })
                    }
                    _ => return Ok(out),
                };
                out.push(self.chunk(delta, None));
            }
            "message_delta" => {
                if let Some(u) = v.get("usage") {
                    self.usage.read(u);
                }
                let stop = str_at(v.get("delta"), "stop_reason");
                out.push(self.chunk(json!({}), Some(finish_reason(stop))));
            }
            "message_stop" => {
                self.finished = true;
                if self.include_usage {
                    let chunk = json!({ "id": self.id, "object": "chat.completion.chunk",
                        "created": self.created, "model": self.model, "choices": [],
                        "usage": self.usage.to_json() });
                    out.push(chunk.to_string());
                }
            }
            "error" => return Err(upstream_error(v.get("error"))),
            _ => {}
        }
        Ok(out)
    }

    /// True once `message_stop` was seen; the caller then sends `data: [DONE]`.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Usage seen so far: input from `message_start`, output from `message_delta`.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// One chunk; with `include_usage`, `usage: null` as OpenAI sends it.
    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        let mut c = json!({ "id": self.id, "object": "chat.completion.chunk",
            "created": self.created, "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] });
        if let (true, Some(obj)) = (self.include_usage, c.as_object_mut()) {
            obj.insert("usage".into(), Value::Null);
        }
        c.to_string()
    }
}

fn block_index(v: &Value) -> Res<u64> {
    let index = v.get("index").and_then(Value::as_u64);
    index.ok_or_else(|| bad_response("no `index` in content block event", &v.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn j(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    fn translate(body: &str) -> Result<Value, TranslateError> {
        chat_request_to_messages(j(body).as_object().unwrap(), "claude-up", 1024)
    }

    fn usage(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
        }
    }

    #[test]
    fn multi_turn_with_system_tool_calls_and_merging() {
        let out = translate(
            r#"{"model": "client-name", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": "", "reasoning_content": "hmm", "tool_calls": [
              {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Paris\"}"}},
              {"id": "c2", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Rome\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "rain"}]},
            {"role": "user", "content": "Thanks. Tomorrow?"},
            {"role": "assistant", "content": "Unknown."},
            {"role": "assistant", "content": [{"type": "text", "text": " Sorry."}]}],
          "max_tokens": 50, "temperature": 0.5, "top_p": 0.9, "stop": "END", "stream": true,
          "user": "u-42", "seed": 7, "stream_options": {"include_usage": true}}"#,
        );
        let expected = j(
            r#"{"model": "claude-up", "system": "Be brief.\n\nUse tools.", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
            {"role": "assistant", "content": [
              {"type": "tool_use", "id": "c1", "name": "w", "input": {"city": "Paris"}},
              {"type": "tool_use", "id": "c2", "name": "w", "input": {"city": "Rome"}}]},
            {"role": "user", "content": [
              {"type": "tool_result", "tool_use_id": "c1", "content": "sunny"},
              {"type": "tool_result", "tool_use_id": "c2", "content": "rain"},
              {"type": "text", "text": "Thanks. Tomorrow?"}]},
            {"role": "assistant", "content": [
              {"type": "text", "text": "Unknown."}, {"type": "text", "text": " Sorry."}]}],
          "max_tokens": 50, "temperature": 0.5, "top_p": 0.9, "stop_sequences": ["END"],
          "stream": true, "metadata": {"user_id": "u-42"}}"#,
        );
        assert_eq!(out.unwrap(), expected);
    }

    #[test]
    fn defaults_and_max_tokens_precedence() {
        let out = translate(r#"{"messages": [{"role": "user", "content": "hi"}]}"#).unwrap();
        let expected = r#"{"model": "claude-up", "max_tokens": 1024,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}"#;
        assert_eq!(out, j(expected));
        let body = r#"{"messages": [{"role": "user", "content": "hi"}], "n": 1, "tools": [],
            "max_tokens": 10, "max_completion_tokens": 20, "stop": ["a", " ", "b"],
            "temperature": null, "response_format": {"type": "text"}}"#;
        let out = translate(body).unwrap();
        assert_eq!(out["max_tokens"], 20);
        assert_eq!(out["stop_sequences"], j(r#"["a", "b"]"#));
        assert!(out.get("temperature").is_none() && out.get("tools").is_none());
    }

    #[test]
    fn images() {
        let out = translate(
            r#"{"messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg", "detail": "high"}}]}]}"#,
        );
        let expected = j(r#"[{"type": "text", "text": "What is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
              "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}}]"#);
        assert_eq!(out.unwrap()["messages"][0]["content"], expected);
    }

    const TOOLS: &str = r#""tools": [{"type": "function", "function": {"name": "a",
        "description": "does a", "parameters": {"type": "object", "properties": {"x": {}}}}},
        {"type": "function", "function": {"name": "b", "strict": true}}]"#;

    #[test]
    fn tools_and_tool_choice_variants() {
        let with = |extra: &str| {
            let body =
                format!(r#"{{"messages": [{{"role": "user", "content": "hi"}}], {TOOLS}{extra}}}"#);
            translate(&body).unwrap()
        };
        let expected = j(r#"[{"name": "a", "description": "does a",
            "input_schema": {"type": "object", "properties": {"x": {}}}},
            {"name": "b", "input_schema": {"type": "object", "properties": {}}}]"#);
        assert_eq!(with("")["tools"], expected);
        // Each line: extra request fields => expected Anthropic tool_choice.
        let cases = r#"
            ,"tool_choice": null => null
            ,"tool_choice": "auto" => {"type": "auto"}
            ,"tool_choice": "required" => {"type": "any"}
            ,"tool_choice": "none" => {"type": "none"}
            ,"tool_choice": {"type": "function", "function": {"name": "b"}} => {"type": "tool", "name": "b"}
            ,"parallel_tool_calls": false => {"type": "auto", "disable_parallel_tool_use": true}
            ,"tool_choice": "required", "parallel_tool_calls": false => {"type": "any", "disable_parallel_tool_use": true}
            ,"tool_choice": "none", "parallel_tool_calls": false => {"type": "none"}
            ,"parallel_tool_calls": true => null"#;
        for line in cases.trim().lines() {
            let (extra, want) = line.trim().split_once(" => ").unwrap();
            assert_eq!(with(extra)["tool_choice"], j(want), "{extra}");
        }
    }

    #[test]
    fn invalid_inputs_name_the_param() {
        // Each line: expected `param` | request body; `USER` stands for a valid user turn.
        let cases = r#"
            messages | {}
            messages | {"messages": []}
            messages | {"messages": "hi"}
            messages[0] | {"messages": [1]}
            messages | {"messages": [{"role": "system", "content": "only a system prompt"}]}
            messages[0].role | {"messages": [{"role": "wizard", "content": "x"}]}
            messages[0].content | {"messages": [{"role": "user", "content": 42}]}
            messages[0].content | {"messages": [{"role": "user"}]}
            messages[0].content[0].type | {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}
            messages[0].content[1].image_url.url | {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": "data:image/png,raw"}}]}]}
            messages[0].content[0].image_url.url | {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]}
            messages[2].content | {"messages": [{"role": "system", "content": "s"}, USER, {"role": "assistant", "content": {"text": "no"}}]}
            messages[1].tool_calls[1].function.arguments | {"messages": [USER, {"role": "assistant", "tool_calls": [{"id": "c0", "type": "function", "function": {"name": "f", "arguments": "{}"}}, {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]}
            messages[1].tool_calls[0].function.arguments | {"messages": [USER, {"role": "assistant", "tool_calls": [{"id": "c0", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]}
            messages[1].tool_calls[0].id | {"messages": [USER, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f"}}]}]}
            messages[1].tool_call_id | {"messages": [USER, {"role": "tool", "content": "r"}]}
            messages[1].content[0] | {"messages": [USER, {"role": "tool", "tool_call_id": "c", "content": [{"type": "image_url"}]}]}
            n | {"messages": [USER], "n": 2}
            logprobs | {"messages": [USER], "logprobs": true}
            response_format | {"messages": [USER], "response_format": {"type": "json_object"}}
            max_tokens | {"messages": [USER], "max_tokens": 0}
            max_completion_tokens | {"messages": [USER], "max_completion_tokens": -5}
            stop | {"messages": [USER], "stop": 5}
            temperature | {"messages": [USER], "temperature": "hot"}
            stream | {"messages": [USER], "stream": "yes"}
            user | {"messages": [USER], "user": 7}
            tools | {"messages": [USER], "tools": {}}
            tools[0].type | {"messages": [USER], "tools": [{"type": "code_interpreter"}]}
            tools[0].function.name | {"messages": [USER], "tools": [{"type": "function", "function": {}}]}
            tool_choice | {"messages": [USER], TOOLS, "tool_choice": "sometimes"}
            tool_choice.function.name | {"messages": [USER], TOOLS, "tool_choice": {"type": "function"}}"#;
        for line in cases.trim().lines() {
            let (param, body) = line.trim().split_once(" | ").unwrap();
            let body = body
                .replace("USER", r#"{"role": "user", "content": "q"}"#)
                .replace("TOOLS", TOOLS);
            match translate(&body) {
                Err(TranslateError::InvalidRequest { param: p, message }) => {
                    assert_eq!(p, param, "{body}");
                    assert!(!message.is_empty());
                }
                other => panic!("expected InvalidRequest for {body}, got {other:?}"),
            }
        }
        let err = translate(r#"{"messages": [{"role": "user", "content": 4}]}"#).unwrap_err();
        let want = "invalid request parameter `messages[0].content`: must be a string or an array of content parts";
        assert_eq!(err.to_string(), want);
    }

    #[test]
    fn response_with_text_tool_use_and_thinking() {
        let resp = j(
            r#"{"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-up",
            "content": [{"type": "thinking", "thinking": "Need weather.", "signature": "sig"},
              {"type": "text", "text": "Let me check"}, {"type": "text", "text": " that."},
              {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 100, "output_tokens": 30, "cache_read_input_tokens": 20}}"#,
        );
        let (mut body, got) = messages_response_to_chat(&resp, "my-model").unwrap();
        assert_eq!(got, usage(120, 30));
        assert!(body["created"].as_u64().unwrap() > 1_600_000_000);
        body["created"] = 0.into();
        let expected = j(
            r#"{"id": "chatcmpl-msg_01", "object": "chat.completion", "created": 0,
            "model": "my-model", "choices": [{"index": 0, "finish_reason": "tool_calls",
              "message": {"role": "assistant", "content": "Let me check that.",
                "reasoning": "Need weather.", "tool_calls": [{"id": "toolu_1", "type": "function",
                  "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}}"#,
        );
        assert_eq!(body, expected);
    }

    #[test]
    fn response_edge_cases() {
        let only_tool = j(r#"{"id": "m", "stop_reason": "tool_use",
            "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}"#);
        let (body, got) = messages_response_to_chat(&only_tool, "m").unwrap();
        assert!(body["choices"][0]["message"]["content"].is_null());
        assert_eq!(got, Usage::default());
        for (reason, want) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("pause_turn", "stop"),
            ("refusal", "content_filter"),
        ] {
            let (body, _) =
                messages_response_to_chat(&json!({"content": [], "stop_reason": reason}), "m")
                    .unwrap();
            assert_eq!(body["choices"][0]["finish_reason"], want);
            assert_eq!(
                body["choices"][0]["message"],
                j(r#"{"role": "assistant", "content": ""}"#)
            );
        }
        let bad = messages_response_to_chat(&j(r#"{"id": "m"}"#), "m");
        assert!(
            matches!(bad, Err(TranslateError::InvalidResponse(m)) if m.contains(r#"{"id":"m"}"#))
        );
        let err =
            j(r#"{"type": "error", "error": {"type": "overloaded_error", "message": "Busy"}}"#);
        let got = messages_response_to_chat(&err, "m").unwrap_err();
        assert!(
            matches!(got, TranslateError::Upstream { openai_type: "server_error", message } if message == "Busy")
        );
    }

    #[test]
    fn error_bodies() {
        for (kind, want) in [
            ("rate_limit_error", "rate_limit_error"),
            ("not_found_error", "invalid_request_error"),
            ("authentication_error", "authentication_error"),
            ("overloaded_error", "server_error"),
        ] {
            let body =
                format!(r#"{{"type":"error","error":{{"type":"{kind}","message":"Slow down"}}}}"#);
            assert_eq!(
                error_to_openai(body.as_bytes()),
                (want, "Slow down".to_owned())
            );
        }
        let (kind, msg) = error_to_openai(b"<html>502 Bad Gateway</html>");
        assert_eq!(kind, "server_error");
        assert!(msg.contains("502 Bad Gateway"), "{msg}");
        let (_, msg) = error_to_openai("é".repeat(1000).as_bytes());
        assert!(msg.chars().count() < 300 && msg.ends_with('…'));
    }

    /// A recorded-style stream: text, then a tool call in content block 1
    /// with its arguments split over two fragments.
    const RECORDED: &str = r#"
event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-up","stop_reason":null,"usage":{"input_tokens":25,"output_tokens":1}}}
event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}
event: ping
data: {"type": "ping"}
event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking"}}
event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" now."}}
event: content_block_stop
data: {"type":"content_block_stop","index":0}
event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_9","name":"weather","input":{}}}
event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}
event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Pa"}}
event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ris\"}"}}
event: content_block_stop
data: {"type":"content_block_stop","index":1}
event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}}
event: message_stop
data: {"type":"message_stop"}"#;

    /// Expected `delta`s and `finish_reason`s of the chunks for [`RECORDED`].
    const EXPECTED_DELTAS: &str = r#"
{"role": "assistant", "content": ""} | null
{"content": "Checking"} | null
{"content": " now."} | null
{"tool_calls": [{"index": 0, "id": "toolu_9", "type": "function", "function": {"name": "weather", "arguments": ""}}]} | null
{"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": \"Pa"}}]} | null
{"tool_calls": [{"index": 0, "function": {"arguments": "ris\"}"}}]} | null
{} | "tool_calls""#;

    fn run_stream(include_usage: bool) -> Vec<Value> {
        let mut t = StreamTranslator::new(
            "my-model",
            "chatcmpl-x".into(),
            1_700_000_000,
            include_usage,
        );
        let mut chunks = Vec::new();
        let lines: Vec<&str> = RECORDED.trim().lines().collect();
        for pair in lines.chunks(2) {
            assert!(!t.finished());
            let event = pair[0].strip_prefix("event: ").unwrap();
            let data = pair[1].strip_prefix("data: ").unwrap();
            chunks.extend(t.on_event(event, data).unwrap().iter().map(|c| j(c)));
        }
        assert!(t.finished());
        assert_eq!(t.usage(), usage(25, 42));
        let expected: Vec<&str> = EXPECTED_DELTAS.trim().lines().collect();
        for (chunk, line) in chunks.iter().zip(&expected) {
            let (delta, finish) = line.split_once(" | ").unwrap();
            let mut want = json!({"id": "chatcmpl-x", "object": "chat.completion.chunk",
                "created": 1_700_000_000, "model": "my-model",
                "choices": [{"index": 0, "delta": j(delta), "finish_reason": j(finish)}]});
            if include_usage {
                want["usage"] = Value::Null;
            }
            assert_eq!(*chunk, want);
        }
        assert_eq!(chunks.len(), expected.len() + usize::from(include_usage));
        chunks
    }

    #[test]
    fn stream_without_usage() {
        let chunks = run_stream(false);
        let args: String = chunks[3..6]
            .iter()
            .map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(j(&args), j(r#"{"city": "Paris"}"#));
    }

    #[test]
    fn stream_with_usage() {
        let chunks = run_stream(true);
        let last = j(
            r#"{"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "my-model", "choices": [],
            "usage": {"prompt_tokens": 25, "completion_tokens": 42, "total_tokens": 67}}"#,
        );
        assert_eq!(chunks.last(), Some(&last));
    }

    #[test]
    fn stream_thinking_ping_error_and_bad_json() {
        let mut t = StreamTranslator::new("m", "chatcmpl-y".into(), 1, false);
        let mut delta = |event: &str, data: &str| -> Result<Vec<Value>, TranslateError> {
            let chunks = t.on_event(event, data)?;
            Ok(chunks
                .iter()
                .map(|c| j(c)["choices"][0]["delta"].clone())
                .collect())
        };
        assert!(delta("ping", r#"{"type":"ping"}"#).unwrap().is_empty());
        assert!(delta("future_event", "not json").unwrap().is_empty());
        let thinking = r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Hmm"}}"#;
        assert_eq!(
            delta("content_block_delta", thinking).unwrap(),
            [j(r#"{"reasoning": "Hmm"}"#)]
        );
        let sig = r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"s"}}"#;
        assert!(delta("content_block_delta", sig).unwrap().is_empty());
        // Without an event name the data's `type` decides.
        let text =
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"hi"}}"#;
        assert_eq!(delta("", text).unwrap(), [j(r#"{"content": "hi"}"#)]);
        let orphan = r#"{"type":"content_block_delta","index":5,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#;
        assert!(delta("content_block_delta", orphan).unwrap().is_empty());
        let no_index = r#"{"type":"content_block_start","content_block":{"type":"tool_use"}}"#;
        let got = delta("content_block_start", no_index);
        assert!(matches!(got, Err(TranslateError::InvalidResponse(m)) if m.contains("index")));
        let got = delta("content_block_delta", "{broken");
        assert!(matches!(got, Err(TranslateError::InvalidResponse(m)) if m.contains("{broken")));
        let err = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let got = delta("error", err).unwrap_err();
        assert!(matches!(
            &got,
            TranslateError::Upstream {
                openai_type: "server_error",
                ..
            }
        ));
        assert_eq!(
            got.to_string(),
            "Anthropic error (server_error): Overloaded"
        );
        assert!(delta("message_stop", r#"{"type":"message_stop"}"#)
            .unwrap()
            .is_empty());
        assert!(delta("content_block_delta", text).unwrap().is_empty());
        assert!(t.finished());
    }
}
