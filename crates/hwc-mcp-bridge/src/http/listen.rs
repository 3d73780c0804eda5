//! Change notifications to clients, in both eras, from the child's change
//! feed ([`crate::upstream::Change`]):
//!
//! - session era: `GET /mcp/{server}` with the session's `Mcp-Session-Id`
//!   opens an SSE stream of the child's `*/list_changed` notifications and
//!   the `resources/updated` of the URIs that session subscribed to
//!   (`resources/subscribe`, forwarded to the child; `resources/unsubscribe`
//!   reaches the child only when no session or stream holds the URI any
//!   more). It ends when the session ends (DELETE, expiry, a child restart).
//! - 2026-07-28: `subscriptions/listen` answers with an SSE stream that opens
//!   with `notifications/subscriptions/acknowledged` (the requested types the
//!   child supports) and carries only what the client opted in to, each
//!   tagged with the listen request's id; when the child ends, or the bridge
//!   drains, the stream ends with the listen result (the child's
//!   subscriptions went with it: the client listens again).
//!
//! Both send an SSE comment every 15 s so idle intermediaries keep them.

use super::{rpc, rpc_error, Bridge};
use crate::jsonrpc;
use crate::upstream::{CallOpts, Change, ChangeKind, Upstream};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// The `_meta` key tagging a notification with its listen stream.
pub const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// How often an open GET stream marks its session used.
const TOUCH_EVERY: Duration = Duration::from_secs(30);

/// What a 2026-07-28 client opts in to (`SubscriptionFilter`); unknown
/// fields are ignored, as later revisions may add types.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// `notifications/tools/list_changed`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub tools_list_changed: bool,
    /// `notifications/prompts/list_changed`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub prompts_list_changed: bool,
    /// `notifications/resources/list_changed`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub resources_list_changed: bool,
    /// `notifications/resources/updated` for these URIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_subscriptions: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Filter {
    /// The part of the filter the child supports, by its initialize
    /// `capabilities` (`tools.listChanged`, ..., `resources.subscribe`).
    pub fn supported_by(&self, capabilities: &Value) -> Filter {
        let cap = |p: &str| capabilities.pointer(p) == Some(&Value::Bool(true));
        Filter {
            tools_list_changed: self.tools_list_changed && cap("/tools/listChanged"),
            prompts_list_changed: self.prompts_list_changed && cap("/prompts/listChanged"),
            resources_list_changed: self.resources_list_changed && cap("/resources/listChanged"),
            resource_subscriptions: if cap("/resources/subscribe") {
                let mut uris = self.resource_subscriptions.clone();
                uris.sort();
                uris.dedup();
                uris
            } else {
                Vec::new()
            },
        }
    }

    /// Whether a stream with this filter passes `kind` on.
    pub fn wants(&self, kind: &ChangeKind) -> bool {
        match kind {
            ChangeKind::ToolsListChanged => self.tools_list_changed,
            ChangeKind::PromptsListChanged => self.prompts_list_changed,
            ChangeKind::ResourcesListChanged => self.resources_list_changed,
            ChangeKind::ResourceUpdated(uri) => self.resource_subscriptions.contains(uri),
        }
    }
}

/// What the next item of a stream is.
enum Next {
    Note(ChangeKind, Arc<Value>),
    /// The child generation the stream is bound to ended.
    ChildEnded,
    /// Nothing more will come (the feed closed).
    Closed,
}

async fn next_change(rx: &mut broadcast::Receiver<Change>, generation: u64) -> Next {
    loop {
        match rx.recv().await {
            Ok(Change::Note(kind, msg)) => return Next::Note(kind, msg),
            Ok(Change::Ended(g)) if g == generation => return Next::ChildEnded,
            Ok(Change::Ended(_)) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "a change stream fell behind; oldest notifications dropped"
                );
            }
            Err(broadcast::error::RecvError::Closed) => return Next::Closed,
        }
    }
}

fn event(v: &Value) -> Event {
    Event::default().event("message").data(v.to_string())
}

fn sse<S>(stream: S) -> Response
where
    S: tokio_stream::Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    let mut r = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    r.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// 406 for a stream request that does not accept `text/event-stream`.
pub fn needs_sse(id: Value) -> Response {
    rpc(
        StatusCode::NOT_ACCEPTABLE,
        jsonrpc::error(
            id,
            jsonrpc::INVALID_REQUEST,
            "this answer is an SSE stream: send Accept: text/event-stream",
        ),
    )
}

/// The session era's GET stream of session `sid` (already looked up and
/// bound to `generation`).
pub fn session_stream(
    b: &Arc<Bridge>,
    up: &Arc<Upstream>,
    sid: String,
    generation: u64,
    ended: CancellationToken,
) -> Response {
    let mut rx = up.changes();
    let b = b.clone();
    let server = up.name().to_string();
    let stream = async_stream::stream! {
        let mut touch = tokio::time::interval(TOUCH_EVERY);
        touch.tick().await;
        loop {
            tokio::select! {
                () = ended.cancelled() => break,
                () = b.draining.cancelled() => break,
                _ = touch.tick() => {
                    if !b.sessions.touch(&sid) {
                        break;
                    }
                }
                next = next_change(&mut rx, generation) => match next {
                    Next::Note(ChangeKind::ResourceUpdated(uri), msg) => {
                        if b.sessions.subscribed(&sid, &uri) {
                            yield Ok::<Event, Infallible>(event(&msg));
                        }
                    }
                    Next::Note(_, msg) => yield Ok(event(&msg)),
                    Next::ChildEnded | Next::Closed => break,
                }
            }
        }
        tracing::debug!(server = %server, "session GET stream ended");
    };
    sse(stream)
}

/// `resources/subscribe` in the session era: forwarded to the child, and
/// on success recorded for the session's GET stream.
pub async fn session_subscribe(b: &Bridge, up: &Upstream, sid: &str, msg: Value) -> Response {
    let uri = msg
        .pointer("/params/uri")
        .and_then(Value::as_str)
        .map(str::to_string);
    let deadline = tokio::time::Instant::now() + up.cfg.call_timeout;
    let id = jsonrpc::id(&msg);
    let answer = match up.request(msg, deadline, CallOpts::default()).await {
        Ok(a) => a,
        Err(e) => return rpc(StatusCode::OK, e.to_response(id)),
    };
    if let (Some(uri), true) = (uri, answer.get("result").is_some()) {
        b.sessions.subscribe(sid, &uri);
    }
    rpc(StatusCode::OK, answer)
}

/// `resources/unsubscribe` in the session era: the session lets the URI
/// go; the child is told only when nobody else holds it.
pub async fn session_unsubscribe(b: &Bridge, up: &Upstream, sid: &str, msg: Value) -> Response {
    let id = jsonrpc::id(&msg);
    let Some(uri) = msg.pointer("/params/uri").and_then(Value::as_str) else {
        return rpc(
            StatusCode::OK,
            jsonrpc::error(
                id,
                jsonrpc::INVALID_PARAMS,
                "resources/unsubscribe needs params.uri",
            ),
        );
    };
    let others = b.sessions.unsubscribe(sid, up.name(), uri) + up.listen_holders(uri);
    if others > 0 {
        return rpc(StatusCode::OK, jsonrpc::result(id, json!({})));
    }
    let deadline = tokio::time::Instant::now() + up.cfg.call_timeout;
    match up.request(msg, deadline, CallOpts::default()).await {
        Ok(a) => rpc(StatusCode::OK, a),
        Err(e) => rpc(StatusCode::OK, e.to_response(id)),
    }
}

/// Sends `resources/<verb>` for `uri` to the child; whether it succeeded.
async fn child_subscription(up: &Upstream, verb: &str, uri: &str) -> bool {
    let msg = json!({"jsonrpc": "2.0", "id": 0, "method": format!("resources/{verb}"),
        "params": {"uri": uri}});
    let deadline = tokio::time::Instant::now() + up.cfg.call_timeout;
    match up.request(msg, deadline, CallOpts::default()).await {
        Ok(a) if a.get("result").is_some() => true,
        Ok(a) => {
            let error = a.get("error").cloned().unwrap_or(Value::Null);
            tracing::info!(server = %up.name(), uri, verb, %error, "the child refused a resource subscription");
            false
        }
        Err(e) => {
            tracing::info!(server = %up.name(), uri, verb, error = %e, "resource subscription failed");
            false
        }
    }
}

/// Releases a listen stream's URIs when it goes (however it goes).
struct Held {
    b: Arc<Bridge>,
    up: Arc<Upstream>,
    uris: Vec<String>,
    generation: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        let uris = std::mem::take(&mut self.uris);
        if uris.is_empty() {
            return;
        }
        let (b, up, generation) = (self.b.clone(), self.up.clone(), self.generation);
        tokio::spawn(async move {
            for uri in uris {
                let left = up.listen_release(&uri) + b.sessions.holders(up.name(), &uri);
                let live = up.link().map(|l| l.generation) == Some(generation);
                if left == 0 && live {
                    child_subscription(&up, "unsubscribe", &uri).await;
                }
            }
        });
    }
}

/// `subscriptions/listen` (2026-07-28), its `_meta` already checked.
pub async fn listen(b: &Arc<Bridge>, up: Arc<Upstream>, msg: Value, sse_ok: bool) -> Response {
    let id = jsonrpc::id(&msg);
    if !sse_ok {
        return needs_sse(id);
    }
    let requested: Filter = match msg.pointer("/params/notifications") {
        Some(f) => match serde_json::from_value(f.clone()) {
            Ok(f) => f,
            Err(e) => {
                return rpc(
                    StatusCode::BAD_REQUEST,
                    jsonrpc::error(id, jsonrpc::INVALID_PARAMS, format!("params.notifications is not a subscription filter: {e}")),
                )
            }
        },
        None => {
            return rpc(
                StatusCode::BAD_REQUEST,
                jsonrpc::error(
                    id,
                    jsonrpc::INVALID_PARAMS,
                    "subscriptions/listen needs params.notifications (for example {\"toolsListChanged\": true})",
                ),
            )
        }
    };
    let Some(link) = up.link() else {
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            jsonrpc::SERVER_UNAVAILABLE,
            format!("server `{}` is not running yet; retry shortly", up.name()),
        );
    };
    let caps = link
        .init
        .get("capabilities")
        .cloned()
        .unwrap_or(Value::Null);
    let mut agreed = requested.supported_by(&caps);
    // Subscribe before listening: the feed is subscribed to first so no
    // update between the child's answer and the stream's start is lost.
    let mut rx = up.changes();
    let mut held = Held {
        b: b.clone(),
        up: up.clone(),
        uris: Vec::new(),
        generation: link.generation,
    };
    let mut ok = Vec::new();
    for uri in std::mem::take(&mut agreed.resource_subscriptions) {
        let first = up.listen_hold(&uri);
        held.uris.push(uri.clone());
        let others = b.sessions.holders(up.name(), &uri);
        if !(first && others == 0) || child_subscription(&up, "subscribe", &uri).await {
            ok.push(uri);
        }
    }
    agreed.resource_subscriptions = ok;
    let ack = json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
        "params": {"_meta": {META_SUBSCRIPTION_ID: id}, "notifications": agreed}});
    let generation = link.generation;
    let server = up.name().to_string();
    let draining = b.draining.clone();
    let stream = async_stream::stream! {
        let _held = held;
        yield Ok::<Event, Infallible>(event(&ack));
        loop {
            let next = tokio::select! {
                () = draining.cancelled() => Next::Closed,
                next = next_change(&mut rx, generation) => next,
            };
            match next {
                Next::Note(kind, msg) => {
                    if agreed.wants(&kind) {
                        let mut note = (*msg).clone();
                        tag(&mut note, &id);
                        yield Ok(event(&note));
                    }
                }
                Next::ChildEnded | Next::Closed => {
                    tracing::debug!(server = %server, "listen stream ended (its child ended, or the bridge drains)");
                    yield Ok(event(&jsonrpc::result(id.clone(), json!({
                        "resultType": "complete",
                        "_meta": {META_SUBSCRIPTION_ID: id},
                    }))));
                    break;
                }
            }
        }
    };
    sse(stream)
}

/// Puts the listen request's id into a notification's `params._meta`.
fn tag(note: &mut Value, id: &Value) {
    if !note.get("params").is_some_and(Value::is_object) {
        note["params"] = json!({});
    }
    if !note["params"].get("_meta").is_some_and(Value::is_object) {
        note["params"]["_meta"] = json!({});
    }
    note["params"]["_meta"][META_SUBSCRIPTION_ID] = id.clone();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agreed_filter_is_what_the_child_supports() {
        let asked = Filter {
            tools_list_changed: true,
            prompts_list_changed: true,
            resources_list_changed: true,
            resource_subscriptions: vec!["b".into(), "a".into(), "b".into()],
        };
        let all = json!({"tools": {"listChanged": true}, "prompts": {"listChanged": true},
            "resources": {"listChanged": true, "subscribe": true}});
        let got = asked.supported_by(&all);
        assert_eq!(got.resource_subscriptions, vec!["a", "b"]);
        assert!(got.tools_list_changed && got.prompts_list_changed && got.resources_list_changed);
        let tools_only = json!({"tools": {"listChanged": true}, "resources": {}});
        assert_eq!(
            asked.supported_by(&tools_only),
            Filter {
                tools_list_changed: true,
                ..Filter::default()
            }
        );
        assert_eq!(asked.supported_by(&json!(null)), Filter::default());
        assert_eq!(
            serde_json::to_value(asked.supported_by(&tools_only)).unwrap_or_default(),
            json!({"toolsListChanged": true}),
            "what was not agreed is omitted"
        );
    }

    #[test]
    fn a_stream_passes_on_only_what_was_asked() {
        let f: Filter = serde_json::from_value(json!({"promptsListChanged": true,
            "resourceSubscriptions": ["file:///a"], "somethingNew": true}))
        .unwrap_or_default();
        assert!(f.wants(&ChangeKind::PromptsListChanged));
        assert!(!f.wants(&ChangeKind::ToolsListChanged));
        assert!(!f.wants(&ChangeKind::ResourcesListChanged));
        assert!(f.wants(&ChangeKind::ResourceUpdated("file:///a".into())));
        assert!(!f.wants(&ChangeKind::ResourceUpdated("file:///b".into())));
    }

    #[test]
    fn notifications_are_tagged_with_the_listen_id() {
        let mut n = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
        tag(&mut n, &json!(7));
        assert_eq!(n["params"]["_meta"][META_SUBSCRIPTION_ID], json!(7));
        let mut n = json!({"method": "x", "params": {"uri": "u", "_meta": {"k": 1}}});
        tag(&mut n, &json!("s"));
        assert_eq!(
            n["params"],
            json!({"uri": "u", "_meta": {"k": 1, META_SUBSCRIPTION_ID: "s"}})
        );
    }
}
