//! What differs between backend kinds on the wire: the request body sent,
//! how a whole answer is read back, and how each streamed event becomes the
//! bytes the client sees. OpenAI-compatible answers pass through with only
//! the reasoning field renamed and `model` set to the name the client asked
//! for (a backend's own id, such as llama-server's GGUF path, never reaches
//! the client); Anthropic ones are translated.

use crate::backends::anthropic::{self, StreamTranslator};
use crate::backends::responses;
use crate::config::BackendKind;
use crate::request::{ClientRequest, Endpoint};
use crate::usage::Tokens;
use bytes::{BufMut, Bytes, BytesMut};
use hwc_ai_core::sse::{self, SseEvent};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// The one name reasoning text comes out under, whatever the backend used
/// (`reasoning_content` from llama.cpp and older vLLM, `thinking` from
/// Ollama's native API). See docs/adr/0002-reasoning-field.md.
pub const REASONING_FIELD: &str = "reasoning";
const REASONING_ALIASES: [&str; 2] = ["reasoning_content", "thinking"];

/// Whether a request to `endpoint` goes to a backend of `kind` as chat
/// completions, translated ([`responses`]): the Responses API to a backend
/// that does not serve it.
pub fn via_chat(kind: BackendKind, responses_api: bool, endpoint: Endpoint) -> bool {
    endpoint == Endpoint::Responses && !(kind == BackendKind::Openai && responses_api)
}

/// The path under the backend's base URL a request to `endpoint` is sent to.
pub fn upstream_path(kind: BackendKind, responses_api: bool, endpoint: Endpoint) -> &'static str {
    if via_chat(kind, responses_api, endpoint) {
        Endpoint::Chat.path()
    } else {
        endpoint.path()
    }
}

/// The body to send to a backend of `kind` (serving the Responses API or
/// not) for `upstream_model`.
pub fn request_body(
    kind: BackendKind,
    responses_api: bool,
    req: &ClientRequest,
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<Vec<u8>, String> {
    let translated;
    let (body, endpoint) = if via_chat(kind, responses_api, req.endpoint) {
        translated = responses::request_to_chat(&req.body)?;
        if tracing::enabled!(tracing::Level::DEBUG) {
            let dropped = responses::dropped_tools(&req.body);
            if !dropped.is_empty() {
                tracing::debug!(
                    ?dropped,
                    "hosted tools not offered to a chat completions backend"
                );
            }
        }
        (&translated, Endpoint::Chat)
    } else {
        (&req.body, req.endpoint)
    };
    match kind {
        BackendKind::Openai => {
            let out = OpenaiBody {
                body,
                model: upstream_model,
                // The router resolved it from its own store into `input`
                // (crate::stored); a backend's own store (llama.cpp has
                // none) must not see it.
                drop_previous: endpoint == Endpoint::Responses,
                // Ask for usage so accounting works; the extra chunk is
                // dropped again if the client did not ask for it.
                ask_usage: req.stream && matches!(endpoint, Endpoint::Chat | Endpoint::Completions),
            };
            serde_json::to_vec(&out).map_err(|e| e.to_string())
        }
        BackendKind::Anthropic => {
            let v = anthropic::chat_request_to_messages(body, upstream_model, default_max_tokens)
                .map_err(|e| e.to_string())?;
            serde_json::to_vec(&v).map_err(|e| e.to_string())
        }
    }
}

/// The client's body as an OpenAI-compatible backend gets it, written
/// straight from the parsed request (no copy of the whole body per
/// attempt): `model` set, `previous_response_id` left out, and
/// `stream_options.include_usage` set when asked. Keys keep their order;
/// `model` is added at the end when the client's body had none.
struct OpenaiBody<'a> {
    body: &'a Map<String, Value>,
    model: &'a str,
    drop_previous: bool,
    ask_usage: bool,
}

impl serde::Serialize for OpenaiBody<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        let (mut model_written, mut usage_written) = (false, false);
        for (k, v) in self.body {
            match k.as_str() {
                "model" => {
                    map.serialize_entry(k, self.model)?;
                    model_written = true;
                }
                "previous_response_id" if self.drop_previous => {}
                "stream_options" if self.ask_usage => {
                    let mut opts = match v {
                        Value::Object(o) => o.clone(),
                        _ => Map::new(),
                    };
                    opts.insert("include_usage".into(), Value::Bool(true));
                    map.serialize_entry(k, &opts)?;
                    usage_written = true;
                }
                _ => map.serialize_entry(k, v)?,
            }
        }
        if !model_written {
            map.serialize_entry("model", self.model)?;
        }
        if self.ask_usage && !usage_written {
            map.serialize_entry(
                "stream_options",
                &serde_json::json!({"include_usage": true}),
            )?;
        }
        map.end()
    }
}

/// Whether a backend of `kind` can serve `endpoint` at all. The Responses
/// API is served by every backend: passed through, or translated to chat
/// ([`via_chat`]).
pub fn supports(kind: BackendKind, endpoint: Endpoint) -> bool {
    match (kind, endpoint) {
        (BackendKind::Openai, _) => true,
        (BackendKind::Anthropic, Endpoint::Chat | Endpoint::Responses) => true,
        (BackendKind::Anthropic, _) => false,
    }
}

/// [`read_answer`], then for a translated request ([`via_chat`]) the chat
/// answer made a Responses object.
pub fn read_answer_for(
    kind: BackendKind,
    responses_api: bool,
    req: &ClientRequest,
    body: &[u8],
    public_model: &str,
) -> Result<(Bytes, Tokens), String> {
    let (out, tokens) = read_answer(kind, body, public_model)?;
    if !via_chat(kind, responses_api, req.endpoint) {
        return Ok((out, tokens));
    }
    let r = responses::chat_answer_to_response(&out, &req.body, public_model)?;
    Ok((Bytes::from(r), tokens))
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
        // The common case: nothing to rename, so only the top level is
        // split (values unparsed), `model` is replaced and `usage` read.
        let (out, usage) = with_model(body, public_model).map_err(not_json)?;
        let tokens = usage.map_or_else(Tokens::default, raw_usage);
        return Ok((Bytes::from(out), tokens));
    }
    let value: Value = serde_json::from_slice(body).map_err(not_json)?;
    match kind {
        BackendKind::Openai => {
            let Value::Object(mut obj) = value else {
                return Err(format!("answer is not a JSON object: {}", excerpt(body)));
            };
            let tokens = usage_of(obj.get("usage"));
            rename_reasoning(&mut obj, "message");
            set_model(&mut obj, public_model);
            let out = Bytes::from(serde_json::to_vec(&obj).map_err(|e| e.to_string())?);
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

/// The token counts of a raw `usage` object, as [`usage_of`] reads them,
/// without building a [`Value`] for it (a map and its keys per request).
fn raw_usage(usage: &RawValue) -> Tokens {
    #[derive(serde::Deserialize)]
    struct Counts<'a> {
        #[serde(borrow)]
        prompt_tokens: Option<&'a RawValue>,
        #[serde(borrow)]
        input_tokens: Option<&'a RawValue>,
        #[serde(borrow)]
        completion_tokens: Option<&'a RawValue>,
        #[serde(borrow)]
        output_tokens: Option<&'a RawValue>,
    }
    let Ok(c) = serde_json::from_str::<Counts<'_>>(usage.get()) else {
        return Tokens::default();
    };
    let n = |a: Option<&RawValue>, b: Option<&RawValue>| {
        a.or(b)
            .and_then(|v| v.get().parse::<u64>().ok())
            .unwrap_or(0)
    };
    Tokens {
        prompt: n(c.prompt_tokens, c.input_tokens),
        completion: n(c.completion_tokens, c.output_tokens),
    }
}

/// The top-level fields of a JSON object in order, values unparsed.
struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

/// An object key, borrowed unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> serde::Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(m.size_hint().unwrap_or(8));
                while let Some(Key(k)) = m.next_key()? {
                    let v: &'de RawValue = m.next_value()?;
                    out.push((k, v));
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// `json` (an object) with its top-level `model` string, and that of a
/// `response` object inside it (Responses API events), replaced by
/// `model`; everything else is copied as it came. Also hands back the
/// top-level `usage`, unparsed.
fn with_model<'a>(
    json: &'a [u8],
    model: &str,
) -> Result<(Vec<u8>, Option<&'a RawValue>), serde_json::Error> {
    let fields: Fields<'a> = serde_json::from_slice(json)?;
    let mut out = Vec::with_capacity(json.len() + model.len());
    write_with_model(&fields, model, true, &mut out)?;
    let usage = fields
        .0
        .iter()
        .find(|(k, _)| k.as_ref() == "usage")
        .map(|(_, v)| *v);
    Ok((out, usage))
}

fn write_with_model(
    fields: &Fields<'_>,
    model: &str,
    nested: bool,
    out: &mut Vec<u8>,
) -> Result<(), serde_json::Error> {
    out.push(b'{');
    for (i, (k, v)) in fields.0.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match k {
            // Borrowed means the key had no escapes: its source bytes are
            // the JSON string already.
            Cow::Borrowed(k) => {
                out.push(b'"');
                out.extend_from_slice(k.as_bytes());
                out.push(b'"');
            }
            Cow::Owned(k) => serde_json::to_writer(&mut *out, k)?,
        }
        out.push(b':');
        let raw = v.get();
        if k.as_ref() == "model" && raw.starts_with('"') {
            serde_json::to_writer(&mut *out, model)?;
        } else if nested && k.as_ref() == "response" && raw.starts_with('{') {
            let inner: Fields<'_> = serde_json::from_str(raw)?;
            write_with_model(&inner, model, false, out)?;
        } else {
            out.extend_from_slice(raw.as_bytes());
        }
    }
    out.push(b'}');
    Ok(())
}

/// [`with_model`] on a parsed object.
fn set_model(obj: &mut Map<String, Value>, model: &str) {
    if let Some(v @ Value::String(_)) = obj.get_mut("model") {
        *v = Value::String(model.to_owned());
    }
    if let Some(Value::Object(r)) = obj.get_mut("response") {
        if let Some(v @ Value::String(_)) = r.get_mut("model") {
            *v = Value::String(model.to_owned());
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
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
    /// OpenAI-compatible: pass through, rename reasoning, set `model` to
    /// the client's name, drop the usage chunk the client did not ask for.
    Openai {
        /// The model name the client sees.
        model: String,
        /// Client asked for the usage chunk.
        client_wants_usage: bool,
        /// Usage seen.
        tokens: Tokens,
        /// Content chunks seen (an estimate when no usage arrives).
        chunks: u64,
        /// The final event seen: `[DONE]`, or for the Responses API
        /// `response.completed` or `response.incomplete`.
        done: bool,
    },
    /// Anthropic: translated event by event.
    Anthropic(Box<StreamTranslator>),
    /// A Responses request served as chat ([`via_chat`]): the backend's
    /// stream in chat shape (`inner`), made the Responses event sequence.
    Translated {
        /// The chat stream, usage chunk kept.
        inner: Box<StreamShape>,
        /// Splits `inner`'s output back into events.
        parser: sse::SseParser,
        /// Builds the Responses events.
        out: Box<responses::ResponsesStream>,
    },
}

/// What one upstream event became.
pub enum Forward {
    /// Bytes for the client (possibly none, for dropped events).
    Bytes(Vec<Bytes>),
    /// The upstream reported an error inside the stream.
    UpstreamError(String),
}

impl StreamShape {
    /// State for a new stream of `req` from a backend of `kind`, serving
    /// the Responses API or not.
    pub fn for_backend(
        kind: BackendKind,
        responses_api: bool,
        req: &ClientRequest,
        public_model: &str,
    ) -> Self {
        if !via_chat(kind, responses_api, req.endpoint) {
            return Self::new(kind, req, public_model);
        }
        Self::Translated {
            inner: Box::new(Self::chat(kind, true, public_model)),
            parser: sse::SseParser::default(),
            out: Box::new(responses::ResponsesStream::new(&req.body, public_model)),
        }
    }

    /// State for a new stream from a backend of `kind`, in the shape the
    /// request came in.
    pub fn new(kind: BackendKind, req: &ClientRequest, public_model: &str) -> Self {
        Self::chat(kind, req.include_usage, public_model)
    }

    fn chat(kind: BackendKind, include_usage: bool, public_model: &str) -> Self {
        match kind {
            BackendKind::Openai => Self::Openai {
                model: public_model.to_owned(),
                client_wants_usage: include_usage,
                tokens: Tokens::default(),
                chunks: 0,
                done: false,
            },
            BackendKind::Anthropic => Self::Anthropic(Box::new(StreamTranslator::new(
                public_model,
                format!("chatcmpl-{:016x}", rand::random::<u64>()),
                crate::clock::unix_now().max(0) as u64,
                include_usage,
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
            Self::Translated { inner, parser, out } => {
                let chat = match inner.forward(ev) {
                    Forward::Bytes(b) => b,
                    e @ Forward::UpstreamError(_) => return e,
                };
                let mut res = Vec::new();
                for b in chat {
                    let Ok(events) = parser.push(&b) else {
                        continue;
                    };
                    for e in events {
                        if e.data.is_empty() {
                            res.push(e.raw);
                        } else if e.data == "[DONE]" {
                            res.extend(out.on_done());
                        } else if let Ok(v) = serde_json::from_str::<Value>(&e.data) {
                            res.extend(out.on_chunk(&v));
                        }
                    }
                }
                Forward::Bytes(res)
            }
            Self::Openai {
                model,
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
                    || has("response.completed")
                    || has("response.incomplete"))
                {
                    // The common chunk: only `model` changes, without
                    // parsing the rest (Responses deltas carry none).
                    *chunks += 1;
                    if has("\"model\"") {
                        if let Ok((json, _)) = with_model(ev.data.as_bytes(), model) {
                            return Forward::Bytes(vec![rewrap(&ev, &json)]);
                        }
                    }
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
                set_model(&mut obj, model);
                // Responses API: the final event holds the response and its
                // usage (`incomplete` is final too: max_output_tokens).
                if matches!(
                    obj.get("type").and_then(Value::as_str),
                    Some("response.completed" | "response.incomplete")
                ) {
                    *tokens = usage_of(obj.get("response").and_then(|r| r.get("usage")));
                    *done = true;
                    return Forward::Bytes(vec![reserialized(&ev, &obj)]);
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
                rename_reasoning(&mut obj, "delta");
                Forward::Bytes(vec![reserialized(&ev, &obj)])
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
            Self::Translated { out, .. } => out.finished(),
        }
    }

    /// Whether the upstream reported usage (so [`StreamShape::tokens`] is
    /// not an estimate).
    pub fn reported(&self) -> bool {
        match self {
            Self::Openai { tokens, .. } => *tokens != Tokens::default(),
            Self::Anthropic(t) => {
                let u = t.usage();
                u.prompt_tokens > 0 || u.completion_tokens > 0
            }
            Self::Translated { inner, .. } => inner.reported(),
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
            Self::Translated { inner, .. } => inner.tokens(),
        }
    }
}

/// The event again, its data replaced by `json` (one line).
fn rewrap(ev: &SseEvent, json: &[u8]) -> Bytes {
    let name = ev.event.as_deref();
    let mut b = BytesMut::with_capacity(json.len() + name.map_or(0, str::len) + 16);
    if let Some(name) = name {
        b.put_slice(b"event: ");
        b.put_slice(name.as_bytes());
        b.put_u8(b'\n');
    }
    b.put_slice(b"data: ");
    b.put_slice(json);
    b.put_slice(b"\n\n");
    b.freeze()
}

fn reserialized(ev: &SseEvent, obj: &Map<String, Value>) -> Bytes {
    match serde_json::to_vec(obj) {
        Ok(json) => rewrap(ev, &json),
        Err(_) => ev.raw.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hwc_ai_core::sse::SseParser;

    fn req(stream: bool, include_usage: bool) -> ClientRequest {
        let body = format!(
            r#"{{"model":"m","stream":{stream},"stream_options":{{"include_usage":{include_usage}}},"messages":[{{"role":"user","content":"hi"}}]}}"#
        );
        ClientRequest::parse(Endpoint::Chat, body.as_bytes()).unwrap()
    }

    #[test]
    fn openai_body_rewrites_model_and_asks_for_usage() {
        let body = request_body(BackendKind::Openai, false, &req(true, false), "up", 1).unwrap();
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
    fn raw_usage_reads_what_usage_of_reads() {
        let cases = [
            r#"{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}"#,
            r#"{"input_tokens":2,"output_tokens":1}"#,
            r#"{"prompt_tokens":3,"input_tokens":9,"completion_tokens_details":{"reasoning_tokens":1}}"#,
            r#"{"prompt_tokens":-1,"completion_tokens":1.5}"#,
            r#"{"prompt_tokens":"3"}"#,
            r#"{}"#,
        ];
        for case in cases {
            let raw: &RawValue = serde_json::from_str(case).unwrap();
            let value: Value = serde_json::from_str(case).unwrap();
            assert_eq!(raw_usage(raw), usage_of(Some(&value)), "{case}");
        }
        let not_an_object: &RawValue = serde_json::from_str("[1]").unwrap();
        assert_eq!(raw_usage(not_an_object), Tokens::default());
    }

    #[test]
    fn answers_carry_the_clients_model_name() {
        // The common path: top level split, values copied as they came.
        let body = br#"{"id":"x","model":"/models/smol.gguf","choices":[{"message":{"content":"say \"model\":\"a\""}}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
        let (out, t) = read_answer(BackendKind::Openai, body, "small").unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "small");
        assert_eq!(v["choices"][0]["message"]["content"], "say \"model\":\"a\"");
        assert_eq!(t.prompt + t.completion, 7);
        // The reasoning path, and a Responses object.
        let body = br#"{"model":"up","choices":[{"message":{"reasoning_content":"r"}}]}"#;
        let (out, _) = read_answer(BackendKind::Openai, body, "small").unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&out).unwrap()["model"],
            "small"
        );
        let body = br#"{"object":"response","model":"up","output":[],"usage":{"input_tokens":2,"output_tokens":1}}"#;
        let (out, t) = read_answer(BackendKind::Openai, body, "small").unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&out).unwrap()["model"],
            "small"
        );
        assert_eq!((t.prompt, t.completion), (2, 1));
        // Keys with escapes survive; a non-string model is left alone.
        let (out, _) = with_model(br#"{"a\"b":1,"model":null}"#, "m").unwrap();
        assert_eq!(out, br#"{"a\"b":1,"model":null}"#);
    }

    #[test]
    fn streamed_events_carry_the_clients_model_name() {
        let mut shape = StreamShape::new(BackendKind::Openai, &req(true, true), "small");
        let mut p = SseParser::default();
        let events = p
            .push(
                b"data: {\"model\":\"/m.gguf\",\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n\
                  data: {\"model\":\"/m.gguf\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n\
                  event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"model\":\"/m.gguf\",\"metadata\":{\"model\":\"mine\"}}}\n\n\
                  event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"x\"}\n\n\
                  event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"model\":\"/m.gguf\",\"usage\":{\"input_tokens\":9,\"output_tokens\":3}}}\n\n",
            )
            .unwrap();
        let mut text = String::new();
        for ev in events {
            if let Forward::Bytes(b) = shape.forward(ev) {
                for b in b {
                    text.push_str(&String::from_utf8_lossy(&b));
                }
            }
        }
        assert!(!text.contains("gguf"), "{text}");
        assert_eq!(text.matches("\"model\":\"small\"").count(), 4, "{text}");
        assert!(text.contains("\"metadata\":{\"model\":\"mine\"}"), "{text}");
        assert!(
            text.contains("event: response.completed\ndata: {"),
            "event names kept: {text}"
        );
        assert!(shape.done() && shape.reported());
        assert_eq!((shape.tokens().prompt, shape.tokens().completion), (9, 3));
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
