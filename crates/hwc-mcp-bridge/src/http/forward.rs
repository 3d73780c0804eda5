//! A client request on its way to the child and back, the same in both
//! eras and in the OpenAPI view: tool policy (list filtered, call refused
//! before the child), the call slots, the timeout, the call log line and
//! metrics ([`prepare`], then `finish`), and the answer whole ([`call`])
//! or, when the client asked for progress and accepts it, as an SSE stream
//! of the progress notifications followed by the answer ([`request`]).

use super::{rpc, Bridge};
use crate::jsonrpc;
use crate::policy::{self, Denial, ToolRules};
use crate::upstream::{CallError, CallOpts, Upstream};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use hwc_ai_core::auth::{Principal, Role};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

/// Removes the `io.modelcontextprotocol/*` keys from `params._meta` (the
/// bridge's own, never the child's business); an emptied `_meta` goes.
pub fn strip_owned_meta(msg: &mut Value) {
    let Some(params) = msg.get_mut("params").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) else {
        return;
    };
    meta.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
    if meta.is_empty() {
        params.remove("_meta");
    }
}

/// The tool rules of `up`'s `[[servers]]` entry.
pub(crate) fn rules(up: &Upstream) -> ToolRules<'_> {
    ToolRules {
        server: &up.cfg.name,
        allowed: up.cfg.allowed_tools.as_deref(),
        denied: &up.cfg.denied_tools,
    }
}

/// What a tools/call is, for its log line.
struct CallInfo {
    tool: String,
    label: String,
    argument_keys: Vec<String>,
    started: Instant,
}

/// Results that are a `CacheableResult` in 2026-07-28 (SEP-2549): they
/// must carry `ttlMs` and `cacheScope`.
const CACHEABLE: &[&str] = &[
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
];

/// A request past the bridge's own checks, on its way to the child.
pub struct Prepared {
    id: Value,
    method: String,
    deadline: tokio::time::Instant,
    call: Option<CallInfo>,
    permit: Option<OwnedSemaphorePermit>,
}

/// The checks before the child: for `tools/call` the caller's role, the
/// tool policy and a call slot. `Err`: the answer instead (HTTP status and
/// JSON-RPC body).
pub async fn prepare(
    b: &Bridge,
    up: &Upstream,
    p: &Principal,
    msg: &Value,
) -> Result<Prepared, (StatusCode, Value)> {
    let id = jsonrpc::id(msg);
    let method = jsonrpc::method(msg).to_string();
    let deadline = tokio::time::Instant::now() + up.cfg.call_timeout;
    let mut prep = Prepared {
        id: id.clone(),
        method,
        deadline,
        call: None,
        permit: None,
    };
    if prep.method != "tools/call" {
        return Ok(prep);
    }
    let Some(tool) = msg
        .pointer("/params/name")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Err((
            StatusCode::OK,
            jsonrpc::error(id, jsonrpc::INVALID_PARAMS, "tools/call needs params.name"),
        ));
    };
    let info = CallInfo {
        label: up.tool_label(&tool),
        argument_keys: msg
            .pointer("/params/arguments")
            .and_then(Value::as_object)
            .map(|a| a.keys().cloned().collect())
            .unwrap_or_default(),
        tool,
        started: Instant::now(),
    };
    if let Err(r) = p.require(Role::Requester) {
        log_call(b, up, p, &info, "denied");
        return Err((
            StatusCode::FORBIDDEN,
            jsonrpc::error(id, jsonrpc::FORBIDDEN, r.message),
        ));
    }
    if let Err(d) = policy::tool_permitted(rules(up), p.scopes.as_deref(), &info.tool) {
        log_call(b, up, p, &info, "denied");
        let message = d.message(up.name(), &info.tool);
        return Err(match d {
            // The tool does not exist as far as this bridge's clients go.
            Denial::Denied | Denial::NotAllowed => (
                StatusCode::OK,
                jsonrpc::error(id, jsonrpc::INVALID_PARAMS, message),
            ),
            Denial::ToolOutOfScope | Denial::ServerOutOfScope => (
                StatusCode::FORBIDDEN,
                jsonrpc::error(id, jsonrpc::FORBIDDEN, message),
            ),
        });
    }
    match up.call_slot(deadline).await {
        Ok(permit) => prep.permit = Some(permit),
        Err(e) => {
            log_call(b, up, p, &info, e.outcome());
            return Err((StatusCode::OK, e.to_response(id)));
        }
    }
    prep.call = Some(info);
    Ok(prep)
}

/// The child's answer (or why there is none) as the client gets it: a
/// `tools/list` learnt and filtered, a call logged and counted, and in the
/// stateless era `resultType` and the caching hints added.
fn finish(
    b: &Bridge,
    up: &Upstream,
    p: &Principal,
    prep: Prepared,
    answer: Result<Value, CallError>,
    stateless: bool,
) -> Value {
    let Prepared {
        id,
        method,
        call,
        permit,
        ..
    } = prep;
    drop(permit);
    let mut out = match answer {
        Ok(m) => m,
        Err(e) => {
            if let Some(c) = &call {
                log_call(b, up, p, c, e.outcome());
            }
            return e.to_response(id);
        }
    };
    if method == "tools/list" {
        if let Some(result) = out.get_mut("result") {
            up.learn_tools(result);
            policy::filter_tools_list(result, rules(up), p.scopes.as_deref());
        }
    }
    if let Some(c) = &call {
        log_call(b, up, p, c, outcome_of(&out));
    }
    if stateless {
        if let Some(r) = out.get_mut("result").and_then(Value::as_object_mut) {
            r.entry("resultType").or_insert_with(|| json!("complete"));
            if CACHEABLE.contains(&method.as_str()) {
                // The child (session era) gives no caching hints: 0 ms (it
                // may change its lists at any time), private (tools/list
                // is filtered by the caller's token).
                r.entry("ttlMs").or_insert_with(|| json!(0));
                r.entry("cacheScope").or_insert_with(|| json!("private"));
            }
        }
    }
    out
}

/// The `outcome` label of a tools/call answer.
fn outcome_of(out: &Value) -> &'static str {
    if out.get("error").is_some() {
        "error"
    } else if out.pointer("/result/isError") == Some(&Value::Bool(true)) {
        "tool_error"
    } else {
        "ok"
    }
}

/// A request to the child and its answer, whole (no SSE): the HTTP
/// status and the JSON-RPC answer.
pub async fn call(
    b: &Bridge,
    up: &Upstream,
    p: &Principal,
    msg: Value,
    session: Option<String>,
    stateless: bool,
) -> (StatusCode, Value) {
    let prep = match prepare(b, up, p, &msg).await {
        Ok(prep) => prep,
        Err(refused) => return refused,
    };
    let answer = up
        .request(
            msg,
            prep.deadline,
            CallOpts {
                session,
                progress: None,
            },
        )
        .await;
    let out = finish(b, up, p, prep, answer, stateless);
    // 2026-07-28: a method the server does not implement is HTTP 404
    // (the child answers -32601 for, say, prompts/list without prompts).
    let status = if stateless
        && out.pointer("/error/code").and_then(Value::as_i64) == Some(jsonrpc::METHOD_NOT_FOUND)
    {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    (status, out)
}

/// Forwards a request to the child and answers the client: whole, or,
/// when the client asked for progress and accepts SSE, as a stream of the
/// progress notifications followed by the answer. `stateless`: mark
/// results with `resultType` (2026-07-28), and cacheable ones with
/// `ttlMs` / `cacheScope`.
pub async fn request(
    b: &Arc<Bridge>,
    up: Arc<Upstream>,
    p: &Principal,
    msg: Value,
    session: Option<String>,
    sse_ok: bool,
    stateless: bool,
) -> Response {
    let wants_progress = msg.pointer("/params/_meta/progressToken").is_some();
    if !(sse_ok && wants_progress) {
        let (status, out) = call(b, &up, p, msg, session, stateless).await;
        return rpc(status, out);
    }
    let prep = match prepare(b, &up, p, &msg).await {
        Ok(prep) => prep,
        Err((status, body)) => return rpc(status, body),
    };
    let (b, p) = (b.clone(), p.clone());
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    let stream = async_stream::stream! {
        let fut = up.request(msg, prep.deadline, CallOpts { session, progress: Some(tx) });
        tokio::pin!(fut);
        loop {
            tokio::select! {
                biased;
                Some(note) = rx.recv() => yield Ok::<Event, Infallible>(event(&note)),
                answer = &mut fut => {
                    while let Ok(note) = rx.try_recv() {
                        yield Ok(event(&note));
                    }
                    yield Ok(event(&finish(&b, &up, &p, prep, answer, stateless)));
                    break;
                }
            }
        }
    };
    let mut r = Sse::new(stream).into_response();
    r.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn event(v: &Value) -> Event {
    Event::default().event("message").data(v.to_string())
}

fn log_call(b: &Bridge, up: &Upstream, p: &Principal, c: &CallInfo, outcome: &str) {
    let secs = c.started.elapsed().as_secs_f64();
    b.metrics.call(up.name(), &c.label, outcome, secs);
    tracing::info!(
        client = %p.name,
        server = %up.name(),
        tool = %c.tool,
        duration_ms = (secs * 1000.0).round() as u64,
        outcome,
        argument_keys = ?c.argument_keys,
        "tools/call"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_meta_is_stripped_and_the_rest_kept() {
        let mut m = json!({"method": "tools/call", "params": {"name": "x", "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {},
            "progressToken": 3
        }}});
        strip_owned_meta(&mut m);
        assert_eq!(m["params"]["_meta"], json!({"progressToken": 3}));
        let mut m = json!({"method": "tools/list", "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}});
        strip_owned_meta(&mut m);
        assert_eq!(m["params"], json!({}));
        let mut m = json!({"method": "ping"});
        strip_owned_meta(&mut m);
        assert_eq!(m, json!({"method": "ping"}));
    }
}
