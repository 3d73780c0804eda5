//! The fast in-process upstream: an OpenAI-style `POST /v1/chat/completions`
//! that answers at once with a fixed body, or streams a fixed number of
//! chunks paced by a fixed gap. It runs on its own tokio runtime on its own
//! thread so that it never competes with the load generator's tasks for a
//! worker.

use anyhow::{anyhow, Context};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;

/// What the upstream streams.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamConfig {
    /// Data events per streamed answer (before `data: [DONE]`).
    pub chunks: usize,
    /// Pause between two streamed data events.
    pub gap: Duration,
    /// Worker threads of the upstream's runtime.
    pub threads: usize,
}

/// A running upstream; dropping it stops the server and joins its thread.
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Pre-rendered answers, shared by every request.
struct Canned {
    answer: Bytes,
    chunks: Vec<Bytes>,
    gap: Duration,
}

#[derive(Deserialize)]
struct ChatRequest {
    #[serde(default)]
    stream: bool,
}

impl Upstream {
    /// Binds 127.0.0.1:0 and serves until dropped.
    pub fn start(cfg: UpstreamConfig) -> anyhow::Result<Self> {
        let canned = Arc::new(Canned::new(cfg)?);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<anyhow::Result<SocketAddr>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let threads = cfg.threads.max(1);
        let thread = std::thread::Builder::new()
            .name("bench-upstream".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .thread_name("bench-upstream-rt")
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = addr_tx.send(Err(anyhow!("upstream runtime: {e}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = addr_tx.send(Err(anyhow!("upstream bind: {e}")));
                            return;
                        }
                    };
                    let addr = listener.local_addr().map_err(anyhow::Error::from);
                    let _ = addr_tx.send(addr);
                    let app = Router::new()
                        .route("/v1/chat/completions", post(chat))
                        .route("/v1/models", get(models))
                        .with_state(canned);
                    // TCP_NODELAY, as uvicorn (vLLM) sets it: a streamed chunk
                    // leaves at once instead of waiting for the previous
                    // one's ACK (Nagle), so the baseline has no 40 ms stalls.
                    let listener = listener.tap_io(|tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stop_rx.await;
                        })
                        .await;
                });
            })
            .context("spawning the upstream thread")?;
        let addr = addr_rx
            .recv()
            .context("the upstream thread died before binding")??;
        Ok(Self {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Base URL up to and including `/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Canned {
    fn new(cfg: UpstreamConfig) -> anyhow::Result<Self> {
        let answer = serde_json::to_vec(&json!({
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "m",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the bench upstream."},
                "finish_reason": "stop"
            }],
            "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16}
        }))?;
        let n = cfg.chunks.max(1);
        let mut chunks = Vec::with_capacity(n + 1);
        for i in 0..n {
            let last = i + 1 == n;
            let delta = if i == 0 {
                json!({"role": "assistant", "content": "tok "})
            } else {
                json!({"content": "tok "})
            };
            let mut chunk = json!({
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": "m",
                "choices": [{
                    "index": 0,
                    "delta": delta,
                    "finish_reason": if last { json!("stop") } else { json!(null) }
                }]
            });
            if last {
                chunk["usage"] =
                    json!({"prompt_tokens": 9, "completion_tokens": n, "total_tokens": 9 + n});
            }
            chunks.push(Bytes::from(format!(
                "data: {}\n\n",
                serde_json::to_string(&chunk)?
            )));
        }
        chunks.push(Bytes::from_static(b"data: [DONE]\n\n"));
        Ok(Self {
            answer: Bytes::from(answer),
            chunks,
            gap: cfg.gap,
        })
    }
}

async fn chat(State(c): State<Arc<Canned>>, body: Bytes) -> Response {
    let stream = serde_json::from_slice::<ChatRequest>(&body)
        .map(|r| r.stream)
        .unwrap_or(false);
    if !stream {
        return (
            [(header::CONTENT_TYPE, "application/json")],
            c.answer.clone(),
        )
            .into_response();
    }
    let body = Body::from_stream(async_stream::stream! {
        let last = c.chunks.len() - 1;
        for (i, chunk) in c.chunks.iter().enumerate() {
            // Data events are paced; `[DONE]` follows the last one at once.
            if i > 0 && i < last {
                tokio::time::sleep(c.gap).await;
            }
            yield Ok::<Bytes, Infallible>(chunk.clone());
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn models() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"object":"list","data":[{"id":"m","object":"model","owned_by":"bench"}]}"#,
    )
        .into_response()
}
