//! A scripted OpenAI-compatible upstream, for faults a real server won't
//! produce on demand (500s, hangs, slow first tokens, cut streams, 429s,
//! garbage, a stream whose connection stays open after its final event) and
//! for exact tool calls a small real model won't make (the agent runner's
//! gate tests). Never used where the real llama-server can serve the test.
//! Shared by the router's and the agent runner's tests.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the upstream does with one request.
#[derive(Clone)]
pub enum Act {
    /// A JSON answer with this status (and optional Retry-After).
    Json(u16, Value, Option<u64>),
    /// Raw bytes with status 200.
    Raw(&'static str),
    /// Never answer.
    Hang,
    /// Wait, then act.
    After(Duration, Box<Act>),
    /// SSE: each piece after its delay; then end (`true`) or cut the connection (`false`).
    Sse(Vec<(Duration, String)>, bool),
    /// Fault injector: SSE pieces as in `Sse`, then the connection is held
    /// open without another byte (as an upstream that is slow to close
    /// after `[DONE]`, or one stalled mid-stream). Counted in
    /// `dropped_streams` once the router lets go of it.
    SseHold(Vec<(Duration, String)>),
}

/// A chat answer with `text`.
pub fn answer(text: &str) -> Act {
    Act::Json(
        200,
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "up",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        }),
        None,
    )
}

/// One `data:` chunk with delta content.
pub fn chunk(text: &str) -> String {
    format!(
        "data: {}\n\n",
        json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"up",
               "choices":[{"index":0,"delta":{"content":text},"finish_reason":null}]})
    )
}

/// The pieces of [`stream_of`]: `words` `gap` apart, the usage chunk
/// (7 prompt tokens, one completion token a word), `[DONE]`.
pub fn stream_parts(words: &[&str], gap: Duration) -> Vec<(Duration, String)> {
    match stream_of(words, gap) {
        Act::Sse(parts, _) => parts,
        _ => unreachable!(),
    }
}

/// A Responses API stream of `words`, ending with `response.completed`
/// whose usage is 11 input tokens and one output token a word.
pub fn responses_parts(words: &[&str], gap: Duration) -> Vec<(Duration, String)> {
    let ev = |v: Value| {
        let name = v["type"].as_str().unwrap().to_string();
        format!("event: {name}\ndata: {v}\n\n")
    };
    let response = |status: &str, usage: Value| json!({"id":"resp_1","object":"response","status":status,"model":"/up/model.gguf","output":[],"usage":usage});
    let mut parts = vec![(
        Duration::ZERO,
        ev(json!({"type":"response.created","response":response("in_progress", Value::Null)})),
    )];
    for w in words {
        parts.push((
            gap,
            ev(json!({"type":"response.output_text.delta","item_id":"msg_1","delta":w})),
        ));
    }
    parts.push((
        Duration::ZERO,
        ev(
            json!({"type":"response.completed","response":response("completed",
            json!({"input_tokens":11,"output_tokens":words.len(),"total_tokens":11+words.len()}))}),
        ),
    ));
    parts
}

/// A full stream of `words`, with usage and [DONE], `gap` apart.
pub fn stream_of(words: &[&str], gap: Duration) -> Act {
    let mut parts: Vec<(Duration, String)> = words.iter().map(|w| (gap, chunk(w))).collect();
    parts.push((
        Duration::ZERO,
        format!(
            "data: {}\n\n",
            json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"up","choices":[],
                   "usage":{"prompt_tokens":7,"completion_tokens":words.len()}})
        ),
    ));
    parts.push((Duration::ZERO, "data: [DONE]\n\n".into()));
    Act::Sse(parts, true)
}

struct Shared {
    script: Mutex<Vec<Act>>,
    fallback: Act,
    calls: AtomicUsize,
    bodies: Mutex<Vec<(String, HeaderMap, Value)>>,
    dropped: AtomicUsize,
}

/// A streamed assistant turn that calls `name` with `arguments` (JSON text,
/// sent in two pieces as servers do), with usage and `[DONE]`.
pub fn tool_call(name: &str, arguments: &str) -> Act {
    let mid = arguments.len() / 2;
    let mid = (0..=mid)
        .rev()
        .find(|i| arguments.is_char_boundary(*i))
        .unwrap_or(0);
    let delta = |d: Value| {
        format!(
            "data: {}\n\n",
            json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"up",
                   "choices":[{"index":0,"delta":d,"finish_reason":null}]})
        )
    };
    let parts = vec![
        (
            Duration::ZERO,
            delta(json!({"role":"assistant","reasoning_content":"checking"})),
        ),
        (
            Duration::ZERO,
            delta(
                json!({"tool_calls":[{"index":0,"id":format!("call_{name}"),"type":"function",
            "function":{"name":name,"arguments":&arguments[..mid]}}]}),
            ),
        ),
        (
            Duration::ZERO,
            delta(json!({"tool_calls":[{"index":0,"function":{"arguments":&arguments[mid..]}}]})),
        ),
        (
            Duration::ZERO,
            format!(
                "data: {}\n\n",
                json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"up",
            "choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})
            ),
        ),
        (
            Duration::ZERO,
            format!(
                "data: {}\n\n",
                json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"up","choices":[],
            "usage":{"prompt_tokens":100,"completion_tokens":20}})
            ),
        ),
        (Duration::ZERO, "data: [DONE]\n\n".into()),
    ];
    Act::Sse(parts, true)
}

/// A running scripted upstream.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

/// Counts a stream body dropped before it was sent whole.
struct DropCount(Arc<Shared>, bool);
impl Drop for DropCount {
    fn drop(&mut self) {
        if !self.1 {
            self.0.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Upstream {
    /// Serves `script` in order, then `fallback` for every later request.
    pub async fn start(script: Vec<Act>, fallback: Act) -> Self {
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into_iter().rev().collect()),
            fallback,
            calls: AtomicUsize::new(0),
            bodies: Mutex::new(Vec::new()),
            dropped: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/v1/{*path}", post(handle))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, shared }
    }

    /// Every request gets `act`.
    pub async fn always(act: Act) -> Self {
        Self::start(Vec::new(), act).await
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn calls(&self) -> usize {
        self.shared.calls.load(Ordering::SeqCst)
    }

    /// Streams whose body the upstream saw dropped (client went away).
    pub fn dropped_streams(&self) -> usize {
        self.shared.dropped.load(Ordering::SeqCst)
    }

    /// The path, headers and JSON body of request `i`.
    pub fn request(&self, i: usize) -> (String, HeaderMap, Value) {
        self.shared.bodies.lock().unwrap()[i].clone()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<(String, HeaderMap, Value)> {
        self.shared.bodies.lock().unwrap().clone()
    }
}

async fn handle(
    State(s): State<Arc<Shared>>,
    axum::extract::Path(path): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.calls.fetch_add(1, Ordering::SeqCst);
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.bodies.lock().unwrap().push((path, headers, v));
    let act = s
        .script
        .lock()
        .unwrap()
        .pop()
        .unwrap_or_else(|| s.fallback.clone());
    run(act, s).await
}

fn run(
    act: Act,
    s: Arc<Shared>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>> {
    Box::pin(async move {
        match act {
            Act::Json(status, body, retry) => {
                let mut r =
                    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
                if let Some(secs) = retry {
                    r.headers_mut().insert("retry-after", secs.into());
                }
                r
            }
            Act::Raw(text) => {
                (StatusCode::OK, [("content-type", "application/json")], text).into_response()
            }
            Act::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                StatusCode::OK.into_response()
            }
            Act::After(d, next) => {
                tokio::time::sleep(d).await;
                run(*next, s).await
            }
            Act::Sse(parts, finish) => {
                let guard = DropCount(s.clone(), false);
                let stream = async_stream::stream! {
                    let mut guard = guard;
                    for (d, p) in parts {
                        tokio::time::sleep(d).await;
                        yield Ok::<Bytes, std::io::Error>(Bytes::from(p));
                    }
                    guard.1 = true;
                    if !finish {
                        // Let the last piece leave before the connection is cut.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        yield Err(std::io::Error::other("cut"));
                    }
                };
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from_stream(stream))
                    .unwrap()
            }
            Act::SseHold(parts) => {
                let guard = DropCount(s.clone(), false);
                let stream = async_stream::stream! {
                    let _guard = guard;
                    for (d, p) in parts {
                        tokio::time::sleep(d).await;
                        yield Ok::<Bytes, std::io::Error>(Bytes::from(p));
                    }
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                };
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from_stream(stream))
                    .unwrap()
            }
        }
    })
}
