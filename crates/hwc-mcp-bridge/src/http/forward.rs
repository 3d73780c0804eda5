//! A client request on its way to the child and back, the same in both
//! eras: tool policy (list filtered, call refused before the child), the
//! call slots, the timeout, the call log line and metrics, and the answer
//! as JSON or, when the client asked for progress and accepts it, as an
//! SSE stream of the progress notifications followed by the answer.

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
use tokio::sync::mpsc;

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

/// Forwards a request to the child and answers the client.
/// `stateless`: mark results with `resultType` (2026-07-28), and
/// cacheable ones with `ttlMs` / `cacheScope`.
pub async fn request(
    b: &Arc<Bridge>,
    up: Arc<Upstream>,
    p: &Principal,
    msg: Value,
    session: Option<String>,
    sse_ok: bool,
    stateless: bool,
) -> Response {
    let id = jsonrpc::id(&msg);
    let method = jsonrpc::method(&msg).to_string();
    let deadline = tokio::time::Instant::now() + up.cfg.call_timeout;
    let mut call: Option<CallInfo> = None;
    let mut permit = None;
    if method == "tools/call" {
        let Some(tool) = msg
            .pointer("/params/name")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return rpc(
                StatusCode::OK,
                jsonrpc::error(id, jsonrpc::INVALID_PARAMS, "tools/call needs params.name"),
            );
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
            log_call(b, &up, p, &info, "denied");
            return rpc(
                StatusCode::FORBIDDEN,
                jsonrpc::error(id, jsonrpc::FORBIDDEN, r.message),
            );
        }
        match policy::tool_permitted(rules(&up), p.scopes.as_deref(), &info.tool) {
            Ok(()) => {}
            Err(d) => {
                log_call(b, &up, p, &info, "denied");
                let message = d.message(up.name(), &info.tool);
                return match d {
                    // The tool does not exist as far as this bridge's clients go.
                    Denial::Denied | Denial::NotAllowed => rpc(
                        StatusCode::OK,
                        jsonrpc::error(id, jsonrpc::INVALID_PARAMS, message),
                    ),
                    Denial::ToolOutOfScope | Denial::ServerOutOfScope => rpc(
                        StatusCode::FORBIDDEN,
                        jsonrpc::error(id, jsonrpc::FORBIDDEN, message),
                    ),
                };
            }
        }
        match up.call_slot(deadline).await {
            Ok(permit_) => permit = Some(permit_),
            Err(e) => {
                log_call(b, &up, p, &info, e.outcome());
                return rpc(StatusCode::OK, e.to_response(id));
            }
        }
        call = Some(info);
    }
    let wants_progress = msg.pointer("/params/_meta/progressToken").is_some();
    let scopes = p.scopes.clone();
    let finish = {
        let b = b.clone();
        let up = up.clone();
        let p = p.clone();
        move |answer: Result<Value, CallError>| -> Value {
            drop(permit);
            let mut out = match answer {
                Ok(m) => m,
                Err(e) => {
                    if let Some(c) = &call {
                        log_call(&b, &up, &p, c, e.outcome());
                    }
                    return e.to_response(id);
                }
            };
            if method == "tools/list" {
                if let Some(result) = out.get_mut("result") {
                    up.learn_tools(result);
                    policy::filter_tools_list(result, rules(&up), scopes.as_deref());
                }
            }
            if let Some(c) = &call {
                let outcome = if out.get("error").is_some() {
                    "error"
                } else if out.pointer("/result/isError") == Some(&Value::Bool(true)) {
                    "tool_error"
                } else {
                    "ok"
                };
                log_call(&b, &up, &p, c, outcome);
            }
            if stateless {
                if let Some(r) = out.get_mut("result").and_then(Value::as_object_mut) {
                    r.entry("resultType").or_insert_with(|| json!("complete"));
                    if CACHEABLE.contains(&method.as_str()) {
                        // The child (session era) gives no caching hints:
                        // 0 ms (it may change its lists at any time, and no
                        // list_changed reaches clients), private (tools/list
                        // is filtered by the caller's token).
                        r.entry("ttlMs").or_insert_with(|| json!(0));
                        r.entry("cacheScope").or_insert_with(|| json!("private"));
                    }
                }
            }
            out
        }
    };
    if !(sse_ok && wants_progress) {
        let answer = up
            .request(
                msg,
                deadline,
                CallOpts {
                    session,
                    progress: None,
                },
            )
            .await;
        let out = finish(answer);
        // 2026-07-28: a method the server does not implement is HTTP 404
        // (the child answers -32601 for, say, prompts/list without prompts).
        let status = if stateless
            && out.pointer("/error/code").and_then(Value::as_i64) == Some(jsonrpc::METHOD_NOT_FOUND)
        {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
        return rpc(status, out);
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
    let stream = async_stream::stream! {
        let fut = up.request(msg, deadline, CallOpts { session, progress: Some(tx) });
        tokio::pin!(fut);
        loop {
            tokio::select! {
                biased;
                Some(note) = rx.recv() => yield Ok::<Event, Infallible>(event(&note)),
                answer = &mut fut => {
                    while let Ok(note) = rx.try_recv() {
                        yield Ok(event(&note));
                    }
                    yield Ok(event(&finish(answer)));
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
