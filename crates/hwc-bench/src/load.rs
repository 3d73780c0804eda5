//! Load generation: a fixed number of requests at a fixed concurrency, each
//! timed from send to the last byte of the body; and streams timed to their
//! first data event and between data events.

use bytes::Bytes;
use futures_util::StreamExt;
pub use hwc_bench::loopback::client;
use hwc_bench::sse::{data_of, event_end};
pub use hwc_bench::stats::{nanos, Run, Summary};
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a phase sends its requests.
#[derive(Debug, Clone)]
pub struct Target {
    /// Full URL of the chat completions endpoint.
    pub url: String,
    /// `Authorization` header value, if the target needs one.
    pub auth: Option<HeaderValue>,
}

/// The request body: a small chat request for model `m`.
pub fn chat_body(stream: bool) -> Bytes {
    let body = serde_json::json!({
        "model": "m",
        "messages": [{"role": "user", "content": "Say hello in five words."}],
        "max_tokens": 16,
        "stream": stream,
    });
    Bytes::from(body.to_string())
}

async fn one(client: &reqwest::Client, target: &Target, body: &Bytes) -> Result<(), String> {
    let mut req = client
        .post(&target.url)
        .header(CONTENT_TYPE, "application/json")
        .body(body.clone());
    if let Some(auth) = &target.auth {
        req = req.header(AUTHORIZATION, auth.clone());
    }
    let resp = req.send().await.map_err(|e| format!("send: {e}"))?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| format!("body: {e}"))?;
    if status != reqwest::StatusCode::OK {
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        ));
    }
    Ok(())
}

/// Sends `total` requests from `concurrency` tasks sharing `client`; stops
/// issuing new ones once `max` has passed.
pub async fn non_stream(
    client: &reqwest::Client,
    target: &Target,
    body: Bytes,
    total: usize,
    concurrency: usize,
    max: Duration,
) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        let next = next.clone();
        let client = client.clone();
        let target = target.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut run = Run {
                latencies_ns: Vec::with_capacity(total / concurrency.max(1) + 1),
                ..Run::default()
            };
            while next.fetch_add(1, Ordering::Relaxed) < total && start.elapsed() < max {
                let t0 = Instant::now();
                match one(&client, &target, &body).await {
                    Ok(()) => run.latencies_ns.push(nanos(t0.elapsed())),
                    Err(e) => run.fail(e),
                }
            }
            run
        }));
    }
    let mut all = Run::join(tasks).await;
    all.wall = start.elapsed();
    all
}

/// Timings of the streams sent to one target.
#[derive(Debug, Default)]
pub struct StreamRun {
    /// Send to response headers, per stream, in nanoseconds.
    pub headers_ns: Vec<u64>,
    /// Send to first data event, per stream, in nanoseconds.
    pub ttft_ns: Vec<u64>,
    /// Every gap between two consecutive data events, in nanoseconds.
    pub gaps_ns: Vec<u64>,
    /// Send to `[DONE]`, per stream, in nanoseconds.
    pub total_ns: Vec<u64>,
    /// Data events received (all streams).
    pub events: usize,
    /// Streams that failed, answered other than 200 or missed `[DONE]`.
    pub errors: usize,
    /// The first failure, for the log.
    pub first_error: Option<String>,
}

/// Runs `n` streams one at a time (concurrency 1) against each of `sides`
/// (a client and its target), alternating between them stream by stream so
/// that a passing disturbance on the machine hits every side alike. Stops
/// starting streams once `max` has passed.
pub async fn streams(
    sides: &[(&reqwest::Client, &Target)],
    body: Bytes,
    n: usize,
    max: Duration,
) -> Vec<StreamRun> {
    let mut runs: Vec<StreamRun> = sides.iter().map(|_| StreamRun::default()).collect();
    let start = Instant::now();
    for _ in 0..n {
        if start.elapsed() >= max {
            break;
        }
        for ((client, target), run) in sides.iter().zip(runs.iter_mut()) {
            if let Err(e) = one_stream(client, target, &body, run).await {
                run.errors += 1;
                run.first_error.get_or_insert(e);
            }
        }
    }
    runs
}

async fn one_stream(
    client: &reqwest::Client,
    target: &Target,
    body: &Bytes,
    run: &mut StreamRun,
) -> Result<(), String> {
    let mut req = client
        .post(&target.url)
        .header(CONTENT_TYPE, "application/json")
        .body(body.clone());
    if let Some(auth) = &target.auth {
        req = req.header(AUTHORIZATION, auth.clone());
    }
    let t0 = Instant::now();
    let resp = req.send().await.map_err(|e| format!("send: {e}"))?;
    let headers = t0.elapsed();
    if resp.status() != reqwest::StatusCode::OK {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        return Err(format!("status {status}: {}", &text[..text.len().min(300)]));
    }
    let mut body = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut times: Vec<Instant> = Vec::with_capacity(32);
    let mut done = None;
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|e| format!("stream: {e}"))?;
        let now = Instant::now();
        buf.extend_from_slice(&piece);
        while let Some(end) = event_end(&buf) {
            let event: Vec<u8> = buf.drain(..end).collect();
            match data_of(&event) {
                Some(d) if d.trim() == "[DONE]" => done = Some(now),
                Some(_) => times.push(now),
                None => {} // comment or keep-alive
            }
        }
    }
    let done = done.ok_or("stream ended without data: [DONE]")?;
    let first = *times.first().ok_or("stream had no data events")?;
    run.headers_ns.push(nanos(headers));
    run.ttft_ns.push(nanos(first - t0));
    run.gaps_ns
        .extend(times.windows(2).map(|w| nanos(w[1] - w[0])));
    run.total_ns.push(nanos(done - t0));
    run.events += times.len();
    Ok(())
}
