//! `tools/call` loops: one caller one call at a time, or many callers at
//! once taking calls from a shared counter (a closed loop). A call is timed
//! from just before it is sent to when its answer was parsed.

use super::http::{Endpoint, Session};
use super::stdio::StdioServer;
use crate::stats::{nanos, Run};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Who a loop calls through.
#[derive(Clone)]
pub enum Caller {
    /// The server's stdio, shared by every task.
    Direct(Arc<StdioServer>),
    /// One HTTP session through a bridge.
    Http(Arc<Session>),
}

impl Caller {
    async fn call(&self, tool: &str, arguments: &Value) -> Result<Instant, String> {
        match self {
            Self::Direct(s) => s.call(tool, arguments).await,
            Self::Http(s) => s.call(tool, arguments).await,
        }
    }
}

/// The tool and its arguments.
#[derive(Debug, Clone)]
pub struct Call {
    /// Tool name.
    pub tool: String,
    /// Its `arguments`.
    pub arguments: Value,
}

/// Calls until `next` reaches `total` or `max` has passed since `start`.
async fn worker(
    caller: &Caller,
    call: &Call,
    next: &AtomicUsize,
    total: usize,
    start: Instant,
    max: Duration,
) -> Run {
    let mut run = Run::default();
    while next.fetch_add(1, Ordering::Relaxed) < total && start.elapsed() < max {
        let t0 = Instant::now();
        match caller.call(&call.tool, &call.arguments).await {
            Ok(at) => run.latencies_ns.push(nanos(at - t0)),
            Err(e) => run.fail(e),
        }
    }
    run
}

/// `warmup` unmeasured calls, then `total` measured ones, one at a time.
pub async fn sequential(
    caller: &Caller,
    call: &Call,
    warmup: usize,
    total: usize,
    max: Duration,
) -> Run {
    let _ = worker(
        caller,
        call,
        &AtomicUsize::new(0),
        warmup,
        Instant::now(),
        max,
    )
    .await;
    let start = Instant::now();
    let mut run = worker(caller, call, &AtomicUsize::new(0), total, start, max).await;
    run.wall = start.elapsed();
    run
}

/// One task per caller: each makes `warmup` unmeasured calls; when all are
/// done, `on_start` runs and the tasks share `total` measured calls.
/// Returns the run and what `on_start` returned.
pub async fn concurrent<T>(
    callers: Vec<Caller>,
    call: &Call,
    warmup: usize,
    total: usize,
    max: Duration,
    on_start: impl FnOnce() -> T,
) -> (Run, T) {
    let barrier = Arc::new(tokio::sync::Barrier::new(callers.len() + 1));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut tasks = Vec::with_capacity(callers.len());
    for caller in callers {
        let (barrier, next, started, call) =
            (barrier.clone(), next.clone(), started.clone(), call.clone());
        tasks.push(tokio::spawn(async move {
            let warm = AtomicUsize::new(0);
            let _ = worker(&caller, &call, &warm, warmup, Instant::now(), max).await;
            barrier.wait().await;
            let start = *started.get_or_init(Instant::now);
            worker(&caller, &call, &next, total, start, max).await
        }));
    }
    barrier.wait().await;
    let hook = on_start();
    let start = *started.get_or_init(Instant::now);
    let mut all = Run::join(tasks).await;
    all.wall = start.elapsed();
    (all, hook)
}

/// Sessions opened at once, and how long each took.
pub struct Opened {
    /// The sessions that opened.
    pub sessions: Vec<Arc<Session>>,
    /// `initialize` + `notifications/initialized` per opened session, ns.
    pub latencies_ns: Vec<u64>,
    /// Sessions that failed to open.
    pub errors: usize,
    /// The first failure.
    pub first_error: Option<String>,
}

/// Opens `n` sessions concurrently.
pub async fn open_sessions(client: &reqwest::Client, endpoint: &Endpoint, n: usize) -> Opened {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (client, endpoint) = (client.clone(), endpoint.clone());
            tokio::spawn(async move {
                let t0 = Instant::now();
                Session::open(&client, &endpoint)
                    .await
                    .map(|s| (s, nanos(t0.elapsed())))
            })
        })
        .collect();
    let mut out = Opened {
        sessions: Vec::with_capacity(n),
        latencies_ns: Vec::with_capacity(n),
        errors: 0,
        first_error: None,
    };
    for t in tasks {
        match t.await.map_err(|e| format!("task: {e}")).and_then(|r| r) {
            Ok((s, ns)) => {
                out.sessions.push(Arc::new(s));
                out.latencies_ns.push(ns);
            }
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(e);
            }
        }
    }
    out
}
