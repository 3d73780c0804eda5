//! The Responses API served from a backend that only speaks Chat
//! Completions: a `/v1/responses` request becomes a chat request, and the
//! chat answer becomes a Responses object, a chat stream the Responses
//! event sequence ([`ResponsesStream`]; see docs/adr/0015).
//!
//! Pure functions over JSON, like [`super::anthropic`]; an Anthropic
//! backend gets the chat request translated once more.
//!
//! Mapped: `instructions` (a system message first), `input` (a string, or
//! items: messages with text and image parts, `function_call`,
//! `function_call_output`, `custom_tool_call`, `custom_tool_call_output`),
//! flat `tools` to nested ones, `custom` (freeform) tools as a function
//! with one string argument `input` whose calls come back as
//! `custom_tool_call`, `namespace` tools as their members named
//! `NAMESPACE__NAME` whose calls come back with their `namespace`,
//! `tool_choice` (`allowed_tools` too),
//! `parallel_tool_calls`, `max_output_tokens`, `text.format`,
//! `reasoning.effort`, sampling options, and usage. `reasoning` input
//! items are dropped: a chat backend has no field to take them back, and
//! an opaque `encrypted_content` is never turned into text.
//!
//! `previous_response_id` is resolved before translation, from the
//! router's own store ([`crate::stored`]): it is echoed, never sent.
//! So are `item_reference` items ([`crate::stored`] puts the stored item in
//! its place). Refused with a 400 that says why: `conversation` (the
//! router keeps no conversations objects), `background`,
//! `prompt` templates, file inputs, and hosted
//! tools (file search, MCP, code interpreter...) that only a backend with
//! the Responses API runs. Web search, which clients such as Codex offer
//! by default, is left out of the chat request instead ([`dropped_tools`]):
//! the model answers without searching, as it would where search is off.

use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};

/// A Responses request that a chat backend cannot be sent: what to tell
/// the client (a 400).
pub type Refusal = String;

type Res<T> = Result<T, Refusal>;

fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn kind_of(v: &Value) -> &'static str {
    crate::request::kind_of(v)
}

/// Sampling and limit fields that mean the same in both APIs.
const SAME: [&str; 7] = [
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "user",
];

/// The chat request for a Responses request `body` (whose checks
/// [`crate::request::ClientRequest::parse`] passed). `model` and `stream`
/// are copied; the caller sets the backend's model and stream options.
pub fn request_to_chat(body: &Map<String, Value>) -> Res<Map<String, Value>> {
    for (field, why) in [
        ("conversation", "the router keeps no conversations yet"),
        ("prompt", "reusable prompt templates live on OpenAI's side"),
    ] {
        if get(body, field).is_some() {
            return Err(format!(
                "`{field}` is not supported by this model's backend ({why}): send the whole conversation in `input`, or use a backend with responses_api = true"
            ));
        }
    }
    if get(body, "background").and_then(Value::as_bool) == Some(true) {
        return Err("`background` is not supported by this model's backend: send the request without it, or use a backend with responses_api = true".into());
    }
    let mut out = Map::new();
    if let Some(m) = body.get("model") {
        out.insert("model".into(), m.clone());
    }
    if let Some(s) = get(body, "stream") {
        out.insert("stream".into(), s.clone());
    }
    let mut messages: Vec<Value> = Vec::new();
    match get(body, "instructions") {
        None => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(other) => {
            return Err(format!(
                "`instructions` must be a string, not {}",
                kind_of(other)
            ))
        }
    }
    match body.get("input") {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                push_item(&mut messages, item, i)?;
            }
        }
        _ => return Err("`input` must be a string or an array of input items".into()),
    }
    if messages.is_empty() {
        return Err("`input` has no message; send at least one".into());
    }
    out.insert("messages".into(), Value::Array(messages));

    let mut tools = Vec::new();
    match get(body, "tools") {
        None => {}
        Some(Value::Array(t)) => {
            for (i, t) in t.iter().enumerate() {
                tool_to_chat(t, i, &mut tools)?;
            }
        }
        Some(other) => return Err(format!("`tools` must be an array, not {}", kind_of(other))),
    }
    if let Some(choice) = get(body, "tool_choice") {
        let (choice, allowed) = tool_choice_to_chat(choice)?;
        if let Some(allowed) = allowed {
            tools.retain(|t| {
                t.pointer("/function/name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| allowed.contains(n))
            });
        }
        out.insert("tool_choice".into(), choice);
    }
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    } else {
        out.remove("tool_choice");
    }

    for k in SAME {
        if let Some(v) = get(body, k) {
            out.insert(k.into(), v.clone());
        }
    }
    if let Some(n) = get(body, "max_output_tokens") {
        out.insert("max_tokens".into(), n.clone());
    }
    if let Some(effort) = body
        .get("reasoning")
        .and_then(|r| r.get("effort"))
        .and_then(Value::as_str)
    {
        out.insert("reasoning_effort".into(), Value::String(effort.into()));
    }
    if let Some(format) = body.get("text").and_then(|t| t.get("format")) {
        if let Some(rf) = format_to_chat(format)? {
            out.insert("response_format".into(), rf);
        }
    }
    Ok(out)
}

/// One input item appended to the chat messages.
fn push_item(messages: &mut Vec<Value>, item: &Value, i: usize) -> Res<()> {
    let Some(obj) = item.as_object() else {
        // A bare string in the list is a user message's text.
        if let Some(s) = item.as_str() {
            messages.push(json!({"role": "user", "content": s}));
            return Ok(());
        }
        return Err(format!(
            "input[{i}] must be an object, not {}",
            kind_of(item)
        ));
    };
    let ty = obj.get("type").and_then(Value::as_str);
    match ty {
        None | Some("message") => {
            let role = match obj.get("role").and_then(Value::as_str) {
                Some("developer" | "system") => "system",
                Some("user") => "user",
                Some("assistant") => "assistant",
                Some(other) => return Err(format!("input[{i}].role `{other}` is not one of user, assistant, system, developer")),
                None => return Err(format!("input[{i}] is a message without a `role`")),
            };
            let content = content_to_chat(obj.get("content"), role, i)?;
            messages.push(json!({"role": role, "content": content}));
        }
        Some("function_call") => {
            let call_id = str_field(obj, "call_id", i)?;
            let name = &chat_name(namespace_of(obj), str_field(obj, "name", i)?);
            let arguments = obj.get("arguments").and_then(Value::as_str).unwrap_or("{}");
            push_tool_call(
                messages,
                json!({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}),
            );
        }
        Some("custom_tool_call") => {
            let call_id = str_field(obj, "call_id", i)?;
            let name = &chat_name(namespace_of(obj), str_field(obj, "name", i)?);
            let input = obj.get("input").and_then(Value::as_str).unwrap_or("");
            let arguments = json!({ "input": input }).to_string();
            push_tool_call(
                messages,
                json!({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}),
            );
        }
        Some("function_call_output" | "custom_tool_call_output") => {
            let call_id = str_field(obj, "call_id", i)?;
            let output = match obj.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => text_parts(parts, i)?,
                None | Some(Value::Null) => String::new(),
                Some(other) => {
                    return Err(format!(
                        "input[{i}].output must be a string or an array of parts, not {}",
                        kind_of(other)
                    ))
                }
            };
            messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": output}));
        }
        // Reasoning from an earlier turn: a chat backend has nowhere to
        // take it, and encrypted content is opaque by design.
        Some("reasoning") => {}
        Some("item_reference") => {
            return Err(format!(
                "input[{i}]: this `item_reference` was not resolved from the router's stored responses; send the item itself"
            ))
        }
        Some(other) => {
            return Err(format!(
                "input[{i}]: item type `{other}` is not supported by this model's backend (it speaks chat completions); use a backend with responses_api = true"
            ))
        }
    }
    Ok(())
}

fn str_field<'a>(obj: &'a Map<String, Value>, key: &str, i: usize) -> Res<&'a str> {
    obj.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("input[{i}].{key} must be a string"))
}

/// A tool call joins the assistant message just before it (its text, or
/// the calls made with it), else starts one.
fn push_tool_call(messages: &mut Vec<Value>, call: Value) {
    if let Some(Value::Object(last)) = messages.last_mut() {
        if last.get("role").and_then(Value::as_str) == Some("assistant") {
            match last.get_mut("tool_calls") {
                Some(Value::Array(calls)) => calls.push(call),
                _ => {
                    last.insert("tool_calls".into(), Value::Array(vec![call]));
                }
            }
            return;
        }
    }
    messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
}

/// A message's content in chat terms: text only becomes a string, images
/// become `image_url` parts (user messages only).
fn content_to_chat(content: Option<&Value>, role: &str, i: usize) -> Res<Value> {
    let parts = match content {
        Some(Value::String(s)) => return Ok(Value::String(s.clone())),
        Some(Value::Array(parts)) => parts,
        None | Some(Value::Null) => return Ok(Value::String(String::new())),
        Some(other) => {
            return Err(format!(
                "input[{i}].content must be a string or an array of parts, not {}",
                kind_of(other)
            ))
        }
    };
    let has_image = parts
        .iter()
        .any(|p| p.get("type").and_then(Value::as_str) == Some("input_image"));
    if !has_image {
        return text_parts(parts, i).map(Value::String);
    }
    if role != "user" {
        return Err(format!(
            "input[{i}]: images are accepted in user messages only by this model's backend"
        ));
    }
    let mut out = Vec::with_capacity(parts.len());
    for (j, p) in parts.iter().enumerate() {
        match p.get("type").and_then(Value::as_str) {
            Some("input_image") => {
                let Some(url) = p.get("image_url").and_then(Value::as_str) else {
                    return Err(format!("input[{i}].content[{j}]: only images given by `image_url` (a URL or data: URL) can be sent to this model's backend, not by `file_id`"));
                };
                let mut image = json!({ "url": url });
                if let Some(d) = p.get("detail").and_then(Value::as_str) {
                    image["detail"] = Value::String(d.into());
                }
                out.push(json!({"type": "image_url", "image_url": image}));
            }
            _ => out.push(json!({"type": "text", "text": part_text(p, i, j)?})),
        }
    }
    Ok(Value::Array(out))
}

fn part_text(p: &Value, i: usize, j: usize) -> Res<String> {
    if let Some(s) = p.as_str() {
        return Ok(s.to_owned());
    }
    match p.get("type").and_then(Value::as_str) {
        Some("input_text" | "output_text" | "text" | "summary_text" | "reasoning_text") => Ok(p
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()),
        Some("refusal") => Ok(p
            .get("refusal")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()),
        Some(other) => Err(format!(
            "input[{i}].content[{j}]: part type `{other}` is not supported by this model's backend (it speaks chat completions)"
        )),
        None => Err(format!("input[{i}].content[{j}] has no `type`")),
    }
}

fn text_parts(parts: &[Value], i: usize) -> Res<String> {
    let texts = parts
        .iter()
        .enumerate()
        .map(|(j, p)| part_text(p, i, j))
        .collect::<Res<Vec<_>>>()?;
    Ok(texts.join("\n"))
}

/// A freeform tool becomes a function taking its text as `input`.
fn custom_parameters() -> Value {
    json!({
        "type": "object",
        "properties": {"input": {"type": "string", "description": "The tool's whole input, as free text in the format described."}},
        "required": ["input"],
        "additionalProperties": false
    })
}

/// Joins a namespace member's name to its namespace's, for a chat
/// backend that has no namespaces (the `mcp__server__tool` convention).
const NAMESPACE_SEPARATOR: &str = "__";

/// The chat function name of a Responses tool `name` in `namespace`.
fn chat_name(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}{NAMESPACE_SEPARATOR}{name}"),
        None => name.to_owned(),
    }
}

fn namespace_of(obj: &Map<String, Value>) -> Option<&str> {
    obj.get("namespace").and_then(Value::as_str)
}

/// A hosted tool a chat request goes without: web search, which a client
/// offers whether or not the model needs it (Codex does by default).
fn is_droppable(ty: &str) -> bool {
    ty.starts_with("web_search")
}

/// The types of the request's tools a chat backend is not offered (see
/// [`is_droppable`]), for the caller to log.
pub fn dropped_tools(body: &Map<String, Value>) -> Vec<String> {
    body.get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("type").and_then(Value::as_str))
        .filter(|ty| is_droppable(ty))
        .map(str::to_owned)
        .collect()
}

/// Tool `t` (at `tools[i]`) as chat functions appended to `out`: one for a
/// function or a freeform tool, one per member for a namespace, none for a
/// droppable hosted tool.
fn tool_to_chat(t: &Value, i: usize, out: &mut Vec<Value>) -> Res<()> {
    match t.get("type").and_then(Value::as_str) {
        Some("namespace") => {
            let ns = t
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("tools[{i}].name must be a string"))?;
            let about = t.get("description").and_then(Value::as_str).unwrap_or("");
            let members = t
                .get("tools")
                .and_then(Value::as_array)
                .ok_or_else(|| format!("tools[{i}].tools must be an array of the namespace's tools"))?;
            for (j, m) in members.iter().enumerate() {
                let at = format!("tools[{i}].tools[{j}]");
                match m.get("type").and_then(Value::as_str) {
                    Some("function" | "custom") => out.push(member_to_chat(m, &at, Some((ns, about)))?),
                    other => {
                        return Err(format!(
                            "{at}: a namespace holds function and custom tools, not `{}`",
                            other.unwrap_or("?")
                        ))
                    }
                }
            }
            Ok(())
        }
        Some("function" | "custom") => {
            out.push(member_to_chat(t, &format!("tools[{i}]"), None)?);
            Ok(())
        }
        Some(ty) if is_droppable(ty) => Ok(()),
        Some(other) => Err(format!(
            "tools[{i}]: tool type `{other}` runs only on a backend with the Responses API (responses_api = true); this model's backend speaks chat completions"
        )),
        None => Err(format!("tools[{i}] has no `type`")),
    }
}

/// A function or freeform tool (at `at`, in the namespace `ns` with its
/// description, if any) as a chat function.
fn member_to_chat(t: &Value, at: &str, ns: Option<(&str, &str)>) -> Res<Value> {
    let name = t
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{at}.name must be a string"))?;
    let mut description = t
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if let Some((ns, about)) = ns.filter(|(_, about)| !about.is_empty()) {
        description = format!("({ns}: {about}) {description}");
    }
    let name = chat_name(ns.map(|(ns, _)| ns), name);
    if t.get("type").and_then(Value::as_str) == Some("custom") {
        if let Some(f) = t
            .get("format")
            .filter(|f| f.get("type").and_then(Value::as_str) == Some("grammar"))
        {
            let syntax = f.get("syntax").and_then(Value::as_str).unwrap_or("lark");
            let definition = f.get("definition").and_then(Value::as_str).unwrap_or("");
            description.push_str(&format!(
                "\n\nThe `input` argument must follow this {syntax} grammar exactly:\n{definition}"
            ));
        }
        return Ok(json!({"type": "function", "function": {
            "name": name, "description": description.trim_start(), "parameters": custom_parameters()
        }}));
    }
    let mut f = Map::new();
    f.insert("name".into(), Value::String(name));
    if !description.is_empty() {
        f.insert("description".into(), Value::String(description));
    }
    for k in ["parameters", "strict"] {
        if let Some(v) = t.get(k).filter(|v| !v.is_null()) {
            f.insert(k.into(), v.clone());
        }
    }
    if !f.contains_key("parameters") {
        f.insert(
            "parameters".into(),
            json!({"type": "object", "properties": {}}),
        );
    }
    Ok(json!({"type": "function", "function": f}))
}

/// The chat `tool_choice`, and for `allowed_tools` the names kept.
fn tool_choice_to_chat(c: &Value) -> Res<(Value, Option<HashSet<String>>)> {
    if c.is_string() {
        return Ok((c.clone(), None));
    }
    match c.get("type").and_then(Value::as_str) {
        Some("function" | "custom") => {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .ok_or("`tool_choice.name` must be a string")?;
            let name = chat_name(c.get("namespace").and_then(Value::as_str), name);
            Ok((json!({"type": "function", "function": {"name": name}}), None))
        }
        Some("allowed_tools") => {
            let mode = c.get("mode").and_then(Value::as_str).unwrap_or("auto");
            let names = c
                .get("tools")
                .and_then(Value::as_array)
                .map(|ts| {
                    ts.iter()
                        .filter_map(|t| {
                            let name = t.get("name").and_then(Value::as_str)?;
                            Some(chat_name(t.get("namespace").and_then(Value::as_str), name))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok((Value::String(mode.into()), Some(names)))
        }
        other => Err(format!(
            "`tool_choice` of type `{}` is not supported by this model's backend (it speaks chat completions)",
            other.unwrap_or("?")
        )),
    }
}

fn format_to_chat(f: &Value) -> Res<Option<Value>> {
    match f.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut s = Map::new();
            s.insert(
                "name".into(),
                f.get("name").cloned().unwrap_or_else(|| json!("response")),
            );
            for k in ["schema", "strict", "description"] {
                if let Some(v) = f.get(k).filter(|v| !v.is_null()) {
                    s.insert(k.into(), v.clone());
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": s})))
        }
        Some(other) => Err(format!(
            "`text.format` of type `{other}` is not one of text, json_object, json_schema"
        )),
    }
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{:032x}", rand::random::<u128>())
}

/// What a chat function name stands for in the Responses request: the
/// tool's own name, its namespace, and whether it is freeform.
#[derive(Debug, Clone, PartialEq)]
struct Callee {
    name: String,
    namespace: Option<String>,
    custom: bool,
}

/// The request's tools by the chat names they were offered under, so a
/// chat tool call comes back as the item the client's tool expects.
#[derive(Debug, Default)]
struct ToolNames(HashMap<String, Callee>);

impl ToolNames {
    fn of(body: &Map<String, Value>) -> Self {
        let mut names = HashMap::new();
        let mut add = |t: &Value, namespace: Option<&str>| {
            if let Some(name) = t.get("name").and_then(Value::as_str) {
                let custom = t.get("type").and_then(Value::as_str) == Some("custom");
                let callee = Callee {
                    name: name.to_owned(),
                    namespace: namespace.map(str::to_owned),
                    custom,
                };
                names.insert(chat_name(namespace, name), callee);
            }
        };
        for t in body
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match t.get("type").and_then(Value::as_str) {
                Some("function" | "custom") => add(t, None),
                Some("namespace") => {
                    let ns = t.get("name").and_then(Value::as_str);
                    for m in t
                        .get("tools")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        add(m, ns);
                    }
                }
                _ => {}
            }
        }
        Self(names)
    }

    /// The tool behind chat name `name`; a name the request did not offer
    /// is a function of that name, as the model said it.
    fn callee(&self, name: &str) -> Callee {
        self.0.get(name).cloned().unwrap_or_else(|| Callee {
            name: name.to_owned(),
            namespace: None,
            custom: false,
        })
    }
}

/// A tool call output item: `custom_tool_call` with the freeform text, or
/// `function_call` with the arguments; with its namespace if it has one.
fn call_item(id: &str, status: &str, call_id: &str, callee: &Callee, arguments: &str) -> Value {
    let mut item = if callee.custom {
        json!({
            "type": "custom_tool_call", "id": id, "status": status,
            "call_id": call_id, "name": callee.name, "input": custom_input(arguments)
        })
    } else {
        json!({
            "type": "function_call", "id": id, "status": status,
            "call_id": call_id, "name": callee.name, "arguments": arguments
        })
    };
    if let Some(ns) = &callee.namespace {
        item["namespace"] = Value::String(ns.clone());
    }
    item
}

/// The Responses object for a whole chat answer (already in the router's
/// client shape: reasoning under `reasoning`, `model` set) to the request
/// `body`, named `model`.
pub fn chat_answer_to_response(
    chat: &[u8],
    body: &Map<String, Value>,
    model: &str,
) -> Result<Vec<u8>, String> {
    let v: Value = serde_json::from_slice(chat).map_err(|e| format!("answer is not JSON: {e}"))?;
    let choice = v
        .pointer("/choices/0")
        .ok_or("chat answer has no choices[0]")?;
    let msg = choice.get("message").ok_or("chat answer has no message")?;
    let names = ToolNames::of(body);
    let mut output: Vec<Value> = Vec::new();
    let reasoning = ["reasoning", "reasoning_content"]
        .iter()
        .find_map(|k| msg.get(*k).and_then(Value::as_str))
        .filter(|s| !s.is_empty());
    if let Some(r) = reasoning {
        output.push(json!({
            "type": "reasoning", "id": new_id("rs"), "summary": [],
            "content": [{"type": "reasoning_text", "text": r}]
        }));
    }
    let text = msg.get("content").and_then(Value::as_str).unwrap_or("");
    let refusal = msg
        .get("refusal")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    if !text.is_empty() || refusal.is_some() {
        let part = match refusal {
            Some(r) if text.is_empty() => json!({"type": "refusal", "refusal": r}),
            _ => json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []}),
        };
        output.push(json!({
            "type": "message", "id": new_id("msg"), "status": "completed",
            "role": "assistant", "content": [part]
        }));
    }
    for call in msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let call_id = call
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| new_id("call"), str::to_owned);
        let name = call
            .pointer("/function/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let arguments = call
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .unwrap_or("{}");
        let callee = names.callee(name);
        let id = new_id(if callee.custom { "ctc" } else { "fc" });
        output.push(call_item(&id, "completed", &call_id, &callee, arguments));
    }
    let (status, incomplete) = match choice.get("finish_reason").and_then(Value::as_str) {
        Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    };
    let created = v
        .get("created")
        .and_then(Value::as_i64)
        .unwrap_or_else(crate::clock::unix_now);
    let response = envelope(
        body,
        Fields {
            id: new_id("resp"),
            created,
            status,
            incomplete,
            model,
            output,
            usage: usage_to_responses(v.get("usage")),
        },
    );
    serde_json::to_vec(&response).map_err(|e| e.to_string())
}

/// What a Responses object has of its own; the rest echoes the request.
struct Fields<'a> {
    id: String,
    created: i64,
    status: &'a str,
    incomplete: Value,
    model: &'a str,
    output: Vec<Value>,
    usage: Value,
}

fn envelope(body: &Map<String, Value>, f: Fields<'_>) -> Value {
    let echo = |k: &str, default: Value| get(body, k).cloned().unwrap_or(default);
    let effort = body
        .get("reasoning")
        .and_then(|r| r.get("effort"))
        .cloned()
        .unwrap_or(Value::Null);
    json!({
        "id": f.id,
        "object": "response",
        "created_at": f.created,
        "status": f.status,
        "error": null,
        "incomplete_details": f.incomplete,
        "instructions": echo("instructions", Value::Null),
        "max_output_tokens": echo("max_output_tokens", Value::Null),
        "model": f.model,
        "output": f.output,
        "parallel_tool_calls": echo("parallel_tool_calls", Value::Bool(true)),
        "previous_response_id": echo("previous_response_id", Value::Null),
        "reasoning": {"effort": effort, "summary": null},
        "store": echo("store", Value::Bool(true)),
        "temperature": echo("temperature", Value::Null),
        "text": echo("text", json!({"format": {"type": "text"}})),
        "tool_choice": echo("tool_choice", json!("auto")),
        "tools": echo("tools", json!([])),
        "top_p": echo("top_p", Value::Null),
        "truncation": "disabled",
        "usage": f.usage,
        "metadata": echo("metadata", json!({})),
    })
}

/// A freeform tool's text from the arguments of the function it became;
/// arguments that are not that object are passed on as they are.
fn custom_input(arguments: &str) -> String {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(o)) => match o.get("input") {
            Some(Value::String(s)) => s.clone(),
            _ => arguments.to_owned(),
        },
        _ => arguments.to_owned(),
    }
}

/// A chat `usage` object in Responses terms.
pub fn usage_to_responses(u: Option<&Value>) -> Value {
    let n = |p: &str| {
        u.and_then(|u| u.pointer(p))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let (input, output) = (n("/prompt_tokens"), n("/completion_tokens"));
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": n("/prompt_tokens_details/cached_tokens")},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": n("/completion_tokens_details/reasoning_tokens")},
        "total_tokens": input + output,
    })
}

/// An output item being streamed.
#[derive(Debug)]
enum Open {
    Reasoning {
        text: String,
    },
    Message {
        text: String,
    },
    Call {
        call_id: String,
        callee: Callee,
        arguments: String,
    },
}

#[derive(Debug)]
struct Item {
    id: String,
    index: usize,
    open: Open,
    done: bool,
}

/// Turns a chat completion stream (its chunks, in the router's client
/// shape) into the Responses event sequence: `response.created`,
/// `response.in_progress`, then per output item `output_item.added`,
/// `content_part.added`, the deltas (`reasoning_text.delta`,
/// `output_text.delta`, `function_call_arguments.delta`), their `.done`
/// events and `output_item.done`, and last `response.completed` or
/// `response.incomplete` with the whole response and its usage; every event
/// with its `sequence_number`, no `[DONE]`. A freeform tool's input comes
/// in one `custom_tool_call_input.delta` when its call is complete (its
/// text is inside the function's JSON arguments until then).
#[derive(Debug)]
pub struct ResponsesStream {
    body: Map<String, Value>,
    model: String,
    id: String,
    created: i64,
    seq: u64,
    started: bool,
    items: Vec<Item>,
    /// chat `tool_calls[].index` -> position in `items`.
    calls: Vec<(u64, usize)>,
    finish: Option<String>,
    usage: Option<Value>,
    finished: bool,
    names: ToolNames,
}

impl ResponsesStream {
    /// A stream answering the Responses request `body`, named `model`.
    pub fn new(body: &Map<String, Value>, model: &str) -> Self {
        Self {
            names: ToolNames::of(body),
            body: body.clone(),
            model: model.to_owned(),
            id: new_id("resp"),
            created: crate::clock::unix_now(),
            seq: 0,
            started: false,
            items: Vec::new(),
            calls: Vec::new(),
            finish: None,
            usage: None,
            finished: false,
        }
    }

    /// The final event went out.
    pub fn finished(&self) -> bool {
        self.finished
    }

    fn event(&mut self, ty: &str, mut data: Value) -> bytes::Bytes {
        data["type"] = Value::String(ty.to_owned());
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        hwc_ai_core::sse::named_event(ty, &data.to_string())
    }

    fn response(&self, status: &str, incomplete: Value, usage: Value) -> Value {
        let output = self.items.iter().map(item_json).collect();
        envelope(
            &self.body,
            Fields {
                id: self.id.clone(),
                created: self.created,
                status,
                incomplete,
                model: &self.model,
                output,
                usage,
            },
        )
    }

    fn start(&mut self, out: &mut Vec<bytes::Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let r = self.response("in_progress", Value::Null, Value::Null);
        out.push(self.event("response.created", json!({ "response": r })));
        out.push(self.event("response.in_progress", json!({ "response": r })));
    }

    /// Closes every open item but those for which `keep` holds.
    fn close_open(&mut self, out: &mut Vec<bytes::Bytes>, keep: impl Fn(&Open) -> bool) {
        for i in 0..self.items.len() {
            if self.items[i].done || keep(&self.items[i].open) {
                continue;
            }
            self.items[i].done = true;
            let (id, index) = (self.items[i].id.clone(), self.items[i].index);
            let base = json!({"item_id": id, "output_index": index});
            match &self.items[i].open {
                Open::Reasoning { text } | Open::Message { text } => {
                    let reasoning = matches!(self.items[i].open, Open::Reasoning { .. });
                    let text = text.clone();
                    let (done_ty, part) = if reasoning {
                        (
                            "response.reasoning_text.done",
                            json!({"type": "reasoning_text", "text": text}),
                        )
                    } else {
                        (
                            "response.output_text.done",
                            json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []}),
                        )
                    };
                    let mut d = base.clone();
                    d["content_index"] = json!(0);
                    d["text"] = Value::String(text);
                    if !reasoning {
                        d["logprobs"] = json!([]);
                    }
                    out.push(self.event(done_ty, d));
                    let mut d = base.clone();
                    d["content_index"] = json!(0);
                    d["part"] = part;
                    out.push(self.event("response.content_part.done", d));
                }
                Open::Call {
                    arguments, callee, ..
                } => {
                    let (arguments, custom) = (arguments.clone(), callee.custom);
                    if custom {
                        let input = custom_input(&arguments);
                        let mut d = base.clone();
                        d["delta"] = Value::String(input.clone());
                        out.push(self.event("response.custom_tool_call_input.delta", d));
                        let mut d = base.clone();
                        d["input"] = Value::String(input);
                        out.push(self.event("response.custom_tool_call_input.done", d));
                    } else {
                        let mut d = base.clone();
                        d["arguments"] = Value::String(arguments);
                        out.push(self.event("response.function_call_arguments.done", d));
                    }
                }
            }
            let item = item_json(&self.items[i]);
            out.push(self.event(
                "response.output_item.done",
                json!({"output_index": index, "item": item}),
            ));
        }
    }

    fn open(&mut self, open: Open, out: &mut Vec<bytes::Bytes>) -> usize {
        let prefix = match &open {
            Open::Reasoning { .. } => "rs",
            Open::Message { .. } => "msg",
            Open::Call { callee, .. } if callee.custom => "ctc",
            Open::Call { .. } => "fc",
        };
        let index = self.items.len();
        self.items.push(Item {
            id: new_id(prefix),
            index,
            open,
            done: false,
        });
        let mut added = item_json(&self.items[index]);
        added["status"] = json!("in_progress");
        if let Some(c) = added.get_mut("content") {
            *c = json!([]);
        }
        out.push(self.event(
            "response.output_item.added",
            json!({"output_index": index, "item": added}),
        ));
        let part = match &self.items[index].open {
            Open::Reasoning { .. } => Some(json!({"type": "reasoning_text", "text": ""})),
            Open::Message { .. } => {
                Some(json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []}))
            }
            Open::Call { .. } => None,
        };
        if let Some(part) = part {
            let id = self.items[index].id.clone();
            out.push(self.event(
                "response.content_part.added",
                json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
            ));
        }
        index
    }

    /// The last open text item of the kind (reasoning or message), opened
    /// now (closing the others) if there is none.
    fn text_item(&mut self, reasoning: bool, out: &mut Vec<bytes::Bytes>) -> usize {
        let is = |o: &Open| {
            if reasoning {
                matches!(o, Open::Reasoning { .. })
            } else {
                matches!(o, Open::Message { .. })
            }
        };
        if let Some(i) = self.items.iter().rposition(|it| !it.done && is(&it.open)) {
            return i;
        }
        self.close_open(out, |_| false);
        let open = if reasoning {
            Open::Reasoning {
                text: String::new(),
            }
        } else {
            Open::Message {
                text: String::new(),
            }
        };
        self.open(open, out)
    }

    /// One chat chunk (a parsed `data:` object).
    pub fn on_chunk(&mut self, chunk: &Value) -> Vec<bytes::Bytes> {
        let mut out = Vec::new();
        self.start(&mut out);
        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            return out;
        };
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(f.to_owned());
        }
        let Some(delta) = choice.get("delta") else {
            return out;
        };
        for (reasoning, key) in [
            (true, "reasoning"),
            (true, "reasoning_content"),
            (false, "content"),
        ] {
            let Some(text) = delta
                .get(key)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            else {
                continue;
            };
            let i = self.text_item(reasoning, &mut out);
            let (id, index) = (self.items[i].id.clone(), self.items[i].index);
            if let Open::Reasoning { text: t } | Open::Message { text: t } = &mut self.items[i].open
            {
                t.push_str(text);
            }
            let (ty, mut d) = if reasoning {
                ("response.reasoning_text.delta", json!({}))
            } else {
                ("response.output_text.delta", json!({"logprobs": []}))
            };
            d["item_id"] = json!(id);
            d["output_index"] = json!(index);
            d["content_index"] = json!(0);
            d["delta"] = json!(text);
            out.push(self.event(ty, d));
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let n = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let pos = match self.calls.iter().find(|(k, _)| *k == n) {
                Some((_, p)) => *p,
                None => {
                    self.close_open(&mut out, |o| matches!(o, Open::Call { .. }));
                    let name = call
                        .pointer("/function/name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned();
                    let call_id = call
                        .get("id")
                        .and_then(Value::as_str)
                        .map_or_else(|| new_id("call"), str::to_owned);
                    let callee = self.names.callee(&name);
                    let p = self.open(
                        Open::Call {
                            call_id,
                            callee,
                            arguments: String::new(),
                        },
                        &mut out,
                    );
                    self.calls.push((n, p));
                    p
                }
            };
            let Some(args) = call
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())
            else {
                continue;
            };
            let custom = match &mut self.items[pos].open {
                Open::Call {
                    arguments, callee, ..
                } => {
                    arguments.push_str(args);
                    callee.custom
                }
                _ => true,
            };
            if !custom {
                let d = json!({"item_id": self.items[pos].id, "output_index": pos, "delta": args});
                out.push(self.event("response.function_call_arguments.delta", d));
            }
        }
        out
    }

    /// The chat stream's `[DONE]`: every item closed, then the final event.
    pub fn on_done(&mut self) -> Vec<bytes::Bytes> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.start(&mut out);
        self.close_open(&mut out, |_| false);
        let (ty, status, incomplete) = match self.finish.as_deref() {
            Some("length") => (
                "response.incomplete",
                "incomplete",
                json!({"reason": "max_output_tokens"}),
            ),
            Some("content_filter") => (
                "response.incomplete",
                "incomplete",
                json!({"reason": "content_filter"}),
            ),
            _ => ("response.completed", "completed", Value::Null),
        };
        let usage = usage_to_responses(self.usage.as_ref());
        let r = self.response(status, incomplete, usage);
        out.push(self.event(ty, json!({ "response": r })));
        self.finished = true;
        out
    }
}

/// An item as it stands, in Responses terms.
fn item_json(it: &Item) -> Value {
    let status = if it.done { "completed" } else { "in_progress" };
    match &it.open {
        Open::Reasoning { text } => json!({
            "type": "reasoning", "id": it.id, "summary": [],
            "content": [{"type": "reasoning_text", "text": text}]
        }),
        Open::Message { text } => json!({
            "type": "message", "id": it.id, "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
        }),
        Open::Call {
            call_id,
            callee,
            arguments,
        } => call_item(&it.id, status, call_id, callee, arguments),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_codex_turn_becomes_chat() {
        let body = obj(json!({
            "model": "m", "instructions": "You are Codex.", "stream": false,
            "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "env"}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list files"}]},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA..."},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Looking."}]},
                {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "{\"command\":[\"ls\"]}"},
                {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": "*** Begin Patch"},
                {"type": "function_call_output", "call_id": "c1", "output": "a.txt"},
                {"type": "custom_tool_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "Done"}]},
            ],
            "tools": [
                {"type": "function", "name": "shell", "description": "Runs", "strict": false,
                 "parameters": {"type": "object", "properties": {"command": {"type": "array"}}}},
                {"type": "custom", "name": "apply_patch", "description": "Edits files",
                 "format": {"type": "grammar", "syntax": "lark", "definition": "start: \"*** Begin Patch\""}},
            ],
            "tool_choice": "auto", "parallel_tool_calls": false,
            "reasoning": {"effort": "low", "summary": "auto"},
            "store": false, "include": ["reasoning.encrypted_content"], "prompt_cache_key": "x",
            "max_output_tokens": 100, "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}, "strict": true}},
        }));
        let chat = Value::Object(request_to_chat(&body).unwrap());
        let m = chat["messages"].as_array().unwrap();
        assert_eq!(m[0], json!({"role": "system", "content": "You are Codex."}));
        assert_eq!(m[1], json!({"role": "system", "content": "env"}));
        assert_eq!(m[2], json!({"role": "user", "content": "list files"}));
        assert_eq!(m[3]["role"], "assistant");
        assert_eq!(m[3]["content"], "Looking.");
        let calls = m[3]["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["function"]["name"], "shell");
        assert_eq!(
            calls[1]["function"]["arguments"],
            "{\"input\":\"*** Begin Patch\"}"
        );
        assert_eq!(
            m[4],
            json!({"role": "tool", "tool_call_id": "c1", "content": "a.txt"})
        );
        assert_eq!(
            m[5],
            json!({"role": "tool", "tool_call_id": "c2", "content": "Done"})
        );
        assert_eq!(m.len(), 6);
        assert!(
            !chat.to_string().contains("gAAAA"),
            "encrypted content never becomes text"
        );
        assert_eq!(chat["tools"][0]["function"]["name"], "shell");
        assert_eq!(chat["tools"][0]["function"]["strict"], false);
        let patch = &chat["tools"][1]["function"];
        assert_eq!(patch["parameters"]["required"], json!(["input"]));
        assert!(patch["description"]
            .as_str()
            .unwrap()
            .contains("lark grammar"));
        assert_eq!(chat["tool_choice"], "auto");
        assert_eq!(chat["parallel_tool_calls"], false);
        assert_eq!(chat["reasoning_effort"], "low");
        assert_eq!(chat["max_tokens"], 100);
        assert_eq!(chat["response_format"]["json_schema"]["strict"], true);
        for dropped in [
            "store",
            "include",
            "prompt_cache_key",
            "input",
            "instructions",
            "text",
            "reasoning",
        ] {
            assert!(chat.get(dropped).is_none(), "{dropped}");
        }
    }

    #[test]
    fn tool_choice_forms() {
        let with = |choice: Value| {
            let body = obj(
                json!({"model": "m", "input": "x", "tool_choice": choice, "tools": [
                {"type": "function", "name": "a"}, {"type": "function", "name": "b"}]}),
            );
            Value::Object(request_to_chat(&body).unwrap())
        };
        let c = with(json!({"type": "function", "name": "a"}));
        assert_eq!(
            c["tool_choice"],
            json!({"type": "function", "function": {"name": "a"}})
        );
        assert_eq!(c["tools"][0]["function"]["parameters"]["type"], "object");
        let c = with(
            json!({"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "b"}]}),
        );
        assert_eq!(c["tool_choice"], "required");
        assert_eq!(c["tools"].as_array().unwrap().len(), 1);
        assert_eq!(c["tools"][0]["function"]["name"], "b");
    }

    #[test]
    fn images_and_refusals() {
        let body = obj(json!({"model": "m", "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "what is this"},
            {"type": "input_image", "image_url": "data:image/png;base64,AA", "detail": "low"}]}]}));
        let chat = Value::Object(request_to_chat(&body).unwrap());
        assert_eq!(
            chat["messages"][0]["content"][1]["image_url"]["url"],
            "data:image/png;base64,AA"
        );
        let refused = |v: Value, needle: &str| {
            let e = request_to_chat(&obj(v)).unwrap_err();
            assert!(e.contains(needle), "{e}");
        };
        refused(
            json!({"model": "m", "input": "x", "background": true}),
            "background",
        );
        refused(
            json!({"model": "m", "input": "x", "tools": [{"type": "file_search", "vector_store_ids": ["v"]}]}),
            "tools[0]: tool type `file_search`",
        );
        refused(
            json!({"model": "m", "input": "x", "tools": [{"type": "namespace", "name": "n", "tools": [{"type": "mcp"}]}]}),
            "tools[0].tools[0]: a namespace holds function and custom tools, not `mcp`",
        );
        refused(
            json!({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}),
            "item_reference",
        );
        refused(
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
            "input_file",
        );
        refused(json!({"model": "m", "input": []}), "no message");
    }

    #[test]
    fn namespaces_are_flattened_and_web_search_is_left_out() {
        // The shape Codex 0.169 sends (its sub-agent tools and web search).
        let body = obj(json!({"model": "m", "tools": [
            {"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
            {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.", "tools": [
                {"type": "function", "name": "close_agent", "description": "Close one.", "strict": false,
                 "parameters": {"type": "object", "properties": {"target": {"type": "string"}}}},
                {"type": "custom", "name": "note", "description": "Free text."}]},
            {"type": "web_search", "external_web_access": false}],
            "tool_choice": {"type": "function", "namespace": "multi_agent_v1", "name": "close_agent"},
            "input": [
                {"type": "message", "role": "user", "content": "close it"},
                {"type": "function_call", "call_id": "c1", "namespace": "multi_agent_v1", "name": "close_agent", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "namespace": "multi_agent_v1", "output": "closed"}]}));
        assert_eq!(dropped_tools(&body), ["web_search"]);
        let chat = Value::Object(request_to_chat(&body).unwrap());
        let names: Vec<&str> = chat["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "exec_command",
                "multi_agent_v1__close_agent",
                "multi_agent_v1__note"
            ]
        );
        assert_eq!(
            chat["tools"][1]["function"]["description"],
            "(multi_agent_v1: Sub-agents.) Close one."
        );
        assert_eq!(
            chat["tools"][2]["function"]["parameters"]["required"],
            json!(["input"])
        );
        assert_eq!(
            chat["tool_choice"]["function"]["name"],
            "multi_agent_v1__close_agent"
        );
        assert_eq!(
            chat["messages"][1]["tool_calls"][0]["function"]["name"],
            "multi_agent_v1__close_agent"
        );

        // The answer's calls come back under their own names and namespace,
        // whole and streamed alike.
        let answer = json!({"choices": [{"finish_reason": "tool_calls", "message": {"content": null, "tool_calls": [
            {"id": "k1", "type": "function", "function": {"name": "multi_agent_v1__close_agent", "arguments": "{\"target\":\"a\"}"}},
            {"id": "k2", "type": "function", "function": {"name": "multi_agent_v1__note", "arguments": "{\"input\":\"hi\"}"}},
            {"id": "k3", "type": "function", "function": {"name": "exec_command", "arguments": "{}"}}]}}]});
        let r: Value = serde_json::from_slice(
            &chat_answer_to_response(answer.to_string().as_bytes(), &body, "m").unwrap(),
        )
        .unwrap();
        let o = &r["output"];
        assert_eq!(
            (
                o[0]["type"].as_str(),
                o[0]["name"].as_str(),
                o[0]["namespace"].as_str()
            ),
            (
                Some("function_call"),
                Some("close_agent"),
                Some("multi_agent_v1")
            )
        );
        assert_eq!(
            (
                o[1]["type"].as_str(),
                o[1]["input"].as_str(),
                o[1]["namespace"].as_str()
            ),
            (Some("custom_tool_call"), Some("hi"), Some("multi_agent_v1"))
        );
        assert!(o[2].get("namespace").is_none());

        let mut stream = ResponsesStream::new(&body, "m");
        let chunk = json!({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "k1", "type": "function", "function": {"name": "multi_agent_v1__close_agent", "arguments": "{}"}}]}}]});
        let mut events = stream.on_chunk(&chunk);
        events.extend(stream.on_done());
        let text: String = events
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        assert!(text.contains("\"namespace\":\"multi_agent_v1\""), "{text}");
        assert!(!text.contains("multi_agent_v1__"), "{text}");
    }

    #[test]
    fn chat_answers_become_responses() {
        let body = obj(
            json!({"model": "small", "input": "x", "instructions": "be brief",
            "tools": [{"type": "function", "name": "shell"}, {"type": "custom", "name": "apply_patch"}]}),
        );
        let chat = json!({"id": "c", "created": 7, "model": "small", "choices": [{"index": 0, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": "ok", "reasoning": "thinking",
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "shell", "arguments": "{\"command\":[\"ls\"]}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "apply_patch", "arguments": "{\"input\":\"*** Begin Patch\\n\"}"}}]}}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15,
                      "completion_tokens_details": {"reasoning_tokens": 2}}});
        let out = chat_answer_to_response(chat.to_string().as_bytes(), &body, "small").unwrap();
        let r: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(r["object"], "response");
        assert!(r["id"].as_str().unwrap().starts_with("resp_"));
        assert_eq!(
            (r["status"].as_str(), r["model"].as_str()),
            (Some("completed"), Some("small"))
        );
        assert_eq!(r["created_at"], 7);
        assert_eq!(r["instructions"], "be brief");
        let o = r["output"].as_array().unwrap();
        assert_eq!(o[0]["type"], "reasoning");
        assert_eq!(o[0]["content"][0]["text"], "thinking");
        assert_eq!(
            o[1]["content"][0],
            json!({"type": "output_text", "text": "ok", "annotations": [], "logprobs": []})
        );
        assert_eq!(o[2]["type"], "function_call");
        assert_eq!(
            (o[2]["call_id"].as_str(), o[2]["name"].as_str()),
            (Some("call_1"), Some("shell"))
        );
        assert_eq!(o[2]["arguments"], "{\"command\":[\"ls\"]}");
        assert_eq!(o[3]["type"], "custom_tool_call");
        assert_eq!(o[3]["input"], "*** Begin Patch\n");
        assert_eq!(r["usage"]["input_tokens"], 11);
        assert_eq!(r["usage"]["output_tokens"], 4);
        assert_eq!(r["usage"]["total_tokens"], 15);
        assert_eq!(r["usage"]["output_tokens_details"]["reasoning_tokens"], 2);

        let cut = json!({"choices": [{"finish_reason": "length", "message": {"content": "abc"}}]});
        let r: Value = serde_json::from_slice(
            &chat_answer_to_response(cut.to_string().as_bytes(), &body, "m").unwrap(),
        )
        .unwrap();
        assert_eq!(r["status"], "incomplete");
        assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
        assert!(chat_answer_to_response(b"{}", &body, "m").is_err());
    }
}
