//! One supervised stdio child per `[[servers]]` entry, and the multiplexer
//! that lets many client sessions share it.
//!
//! Each (re)start of the child is a *generation*: the bridge initializes
//! it once (declaring no client capabilities: no roots, sampling or
//! elicitation, so client roots can never reach it), caches the
//! initialize result, and only then publishes a [`Link`] to it. Requests
//! get bridge-unique numeric ids (and progress tokens) towards the child;
//! the pending map routes answers and `notifications/progress` back. When
//! the child ends, its link goes and every request pending on it is
//! answered at once; sessions bound to the old generation then get 404.

pub mod lines;

use crate::config::ServerEntry;
use crate::jsonrpc::{self, Kind};
use crate::metrics::BridgeMetrics;
use hwc_ai_core::process::{Child, ChildSpec, ChildState, Supervisor};
use hwc_ai_core::tasks::TaskGroup;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

/// Lines queued towards one child's stdin at most; a sender waits beyond.
const WRITE_QUEUE: usize = 256;
/// The protocol revision the bridge speaks to its children.
pub const CHILD_PROTOCOL_VERSION: &str = "2025-11-25";

/// Why a request to a child got no answer from it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The child is not running (starting, restarting or failed).
    #[error("server `{server}` is not available: {detail}")]
    Unavailable {
        /// The server.
        server: String,
        /// Its state, for the caller.
        detail: String,
    },
    /// No answer within `call_timeout`.
    #[error("server `{server}` did not answer within {}s (call_timeout); the request was cancelled", .after.as_secs_f64())]
    Timeout {
        /// The server.
        server: String,
        /// The timeout.
        after: Duration,
    },
    /// `max_concurrent_calls` calls were running for the whole `call_timeout`.
    #[error("server `{server}` is busy: {max} calls in flight (max_concurrent_calls) for the whole call_timeout")]
    Busy {
        /// The server.
        server: String,
        /// Its limit.
        max: usize,
    },
    /// The child's answer was over `max_result_bytes`.
    #[error("the answer of server `{server}` was {len} bytes, over its max_result_bytes of {max}; it was dropped")]
    TooLarge {
        /// The server.
        server: String,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The child ended while the request was pending.
    #[error("server `{server}` exited while handling the request; it is being restarted")]
    ChildExited {
        /// The server.
        server: String,
    },
    /// The client cancelled it.
    #[error("the request was cancelled by the client")]
    Cancelled,
}

impl CallError {
    /// The JSON-RPC error code for it.
    pub fn code(&self) -> i64 {
        match self {
            CallError::Unavailable { .. }
            | CallError::ChildExited { .. }
            | CallError::Busy { .. } => jsonrpc::SERVER_UNAVAILABLE,
            CallError::Timeout { .. } => jsonrpc::REQUEST_TIMEOUT,
            CallError::TooLarge { .. } => jsonrpc::RESULT_TOO_LARGE,
            CallError::Cancelled => jsonrpc::REQUEST_CANCELLED,
        }
    }

    /// The outcome label in metrics and logs.
    pub fn outcome(&self) -> &'static str {
        match self {
            CallError::Unavailable { .. } => "unavailable",
            CallError::Timeout { .. } => "timeout",
            CallError::Busy { .. } => "busy",
            CallError::TooLarge { .. } => "too_large",
            CallError::ChildExited { .. } => "child_exited",
            CallError::Cancelled => "cancelled",
        }
    }

    /// The JSON-RPC error response to `id`.
    pub fn to_response(&self, id: Value) -> Value {
        jsonrpc::error(id, self.code(), self.to_string())
    }
}

/// A live, initialized child: where to write and what it said.
#[derive(Clone)]
pub struct Link {
    tx: mpsc::Sender<String>,
    /// Its initialize result.
    pub init: Arc<Value>,
    /// Which start of the child this is.
    pub generation: u64,
}

enum Reply {
    Message(Value),
    Failed(CallError),
}

struct Pending {
    generation: u64,
    session: Option<String>,
    client_id: Value,
    client_token: Option<Value>,
    reply: oneshot::Sender<Reply>,
    progress: Option<mpsc::UnboundedSender<Value>>,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    link: Option<Link>,
    pending: HashMap<u64, Pending>,
    starts: u64,
    down_since: Option<Instant>,
    last_error: Option<String>,
}

/// What one request needs besides its message.
#[derive(Default)]
pub struct CallOpts {
    /// The session it belongs to (`None`: stateless or internal).
    pub session: Option<String>,
    /// Where `notifications/progress` for it go (tokens restored).
    pub progress: Option<mpsc::UnboundedSender<Value>>,
}

/// A server's state for `/servers` and `/status`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum ServerState {
    /// Started, not yet initialized.
    Starting,
    /// Initialized and serving.
    Running {
        /// Unix time the process started.
        since: i64,
        /// Which start of the child this is.
        generation: u64,
    },
    /// Waiting to be restarted.
    Restarting {
        /// Seconds until the next attempt.
        next_attempt_in_s: f64,
        /// Why it ended.
        last_error: String,
    },
    /// Restarted too often; left stopped until the bridge restarts.
    Failed {
        /// Why it last ended.
        reason: String,
    },
    /// Stopped by the bridge (shutdown).
    Stopped,
}

/// One server: its config, its child's link and pending requests.
pub struct Upstream {
    /// Its `[[servers]]` entry.
    pub cfg: Arc<ServerEntry>,
    spec: ChildSpec,
    inner: Mutex<Inner>,
    next_id: AtomicU64,
    calls: Arc<Semaphore>,
    child_state: OnceLock<Arc<Mutex<ChildState>>>,
    known_tools: Mutex<HashSet<String>>,
    metrics: BridgeMetrics,
}

impl Upstream {
    /// An upstream for `cfg` that will run `spec` (nothing runs until
    /// [`Upstream::spawn`]).
    pub fn new(cfg: ServerEntry, spec: ChildSpec, metrics: BridgeMetrics) -> Arc<Self> {
        let calls = Arc::new(Semaphore::new(cfg.max_concurrent_calls));
        Arc::new(Self {
            cfg: Arc::new(cfg),
            spec,
            inner: Mutex::new(Inner::default()),
            next_id: AtomicU64::new(1),
            calls,
            child_state: OnceLock::new(),
            known_tools: Mutex::new(HashSet::new()),
            metrics,
        })
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The live link, if the child is up and initialized.
    pub fn link(&self) -> Option<Link> {
        hwc_ai_core::sync::lock(&self.inner).link.clone()
    }

    /// Starts the supervisor in `tasks`: the child runs until the group is
    /// cancelled, restarted with backoff when it ends.
    pub fn spawn(self: &Arc<Self>, tasks: &TaskGroup) {
        let sup = Supervisor::new(self.spec.clone(), self.cfg.restart.policy());
        let _ = self.child_state.set(sup.state());
        let up = self.clone();
        tasks.spawn("mcp-child-supervisor", move |cancel| async move {
            let on_start = {
                let up = up.clone();
                move |child: &mut Child| {
                    let stdin = child.take_stdin();
                    let stdout = child.take_stdout();
                    let group = child.group();
                    let up = up.clone();
                    async move { up.run_child(stdin, stdout, group).await }
                }
            };
            sup.run(cancel, on_start).await;
            up.metrics.child_up(&up.cfg.name, false);
        });
    }

    /// The state as `/servers` shows it.
    pub fn state(&self) -> ServerState {
        let child = self
            .child_state
            .get()
            .map(|s| hwc_ai_core::sync::lock(s).clone())
            .unwrap_or(ChildState::Starting);
        let inner = hwc_ai_core::sync::lock(&self.inner);
        match child {
            ChildState::Running { since } => match &inner.link {
                Some(l) => ServerState::Running {
                    since,
                    generation: l.generation,
                },
                None => ServerState::Starting,
            },
            ChildState::Starting => ServerState::Starting,
            ChildState::Backoff {
                last_exit,
                retry_in_s,
            } => {
                let waited = inner.down_since.map_or(0.0, |t| t.elapsed().as_secs_f64());
                ServerState::Restarting {
                    next_attempt_in_s: (retry_in_s - waited).max(0.0),
                    last_error: inner.last_error.clone().unwrap_or(last_exit),
                }
            }
            ChildState::Failed { last_exit } => ServerState::Failed {
                reason: inner
                    .last_error
                    .clone()
                    .map_or(last_exit.clone(), |e| format!("{e} ({last_exit})")),
            },
            ChildState::Stopped => ServerState::Stopped,
        }
    }

    fn unavailable(&self) -> CallError {
        let detail = match self.state() {
            ServerState::Restarting {
                next_attempt_in_s,
                last_error,
            } => {
                format!("restarting (next attempt in {next_attempt_in_s:.1}s; last error: {last_error})")
            }
            ServerState::Failed { reason } => {
                format!("failed: {reason}; restart the bridge after fixing it")
            }
            ServerState::Stopped => "the bridge is shutting down".into(),
            _ => "starting; retry in a moment".into(),
        };
        CallError::Unavailable {
            server: self.cfg.name.clone(),
            detail,
        }
    }

    /// A `tools/call` slot, waited for until `deadline`.
    pub async fn call_slot(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<OwnedSemaphorePermit, CallError> {
        match tokio::time::timeout_at(deadline, self.calls.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(CallError::Busy {
                server: self.cfg.name.clone(),
                max: self.cfg.max_concurrent_calls,
            }),
        }
    }

    /// Tool names this child has listed (the `tool` metric label is one of
    /// these or `other`, so callers can't grow the label set).
    pub fn tool_label(&self, tool: &str) -> String {
        if hwc_ai_core::sync::lock(&self.known_tools).contains(tool) {
            tool.to_string()
        } else {
            "other".into()
        }
    }

    /// Remembers the tool names of a `tools/list` result.
    pub fn learn_tools(&self, result: &Value) {
        if let Some(tools) = result.get("tools").and_then(Value::as_array) {
            let mut known = hwc_ai_core::sync::lock(&self.known_tools);
            for t in tools
                .iter()
                .filter_map(|t| t.get("name").and_then(Value::as_str))
            {
                if known.len() < 1024 {
                    known.insert(t.to_string());
                }
            }
        }
    }

    /// Sends `msg` (a request carrying the client's id) to the current
    /// child and waits for its answer until `deadline`; the answer carries
    /// the client's id again.
    pub async fn request(
        &self,
        msg: Value,
        deadline: tokio::time::Instant,
        opts: CallOpts,
    ) -> Result<Value, CallError> {
        let link = self.link().ok_or_else(|| self.unavailable())?;
        self.roundtrip(&link.tx, link.generation, msg, deadline, opts)
            .await
    }

    async fn roundtrip(
        &self,
        tx: &mpsc::Sender<String>,
        generation: u64,
        mut msg: Value,
        deadline: tokio::time::Instant,
        opts: CallOpts,
    ) -> Result<Value, CallError> {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let client_id = jsonrpc::id(&msg);
        msg["id"] = json!(n);
        let client_token = msg
            .get_mut("params")
            .and_then(|p| p.get_mut("_meta"))
            .and_then(Value::as_object_mut)
            .and_then(|m| m.get_mut("progressToken"))
            .map(|t| std::mem::replace(t, json!(n)));
        let (reply, rx) = oneshot::channel();
        {
            let mut inner = hwc_ai_core::sync::lock(&self.inner);
            inner.pending.insert(
                n,
                Pending {
                    generation,
                    session: opts.session,
                    client_id,
                    client_token,
                    reply,
                    progress: opts.progress,
                },
            );
        }
        let mut guard = PendingGuard {
            up: self,
            tx: tx.clone(),
            n,
            armed: true,
            reason: "the client went away",
        };
        let line = msg.to_string();
        match tokio::time::timeout_at(deadline, tx.send(line)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                guard.armed = false;
                self.take_pending(n);
                return Err(CallError::ChildExited {
                    server: self.cfg.name.clone(),
                });
            }
            Err(_) => {
                guard.reason = "call_timeout";
                return Err(self.timeout());
            }
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(Reply::Message(m))) => {
                guard.armed = false;
                Ok(m)
            }
            Ok(Ok(Reply::Failed(e))) => {
                guard.armed = false;
                Err(e)
            }
            Ok(Err(_)) => {
                guard.armed = false;
                Err(CallError::ChildExited {
                    server: self.cfg.name.clone(),
                })
            }
            Err(_) => {
                guard.reason = "call_timeout";
                Err(self.timeout())
            }
        }
    }

    fn timeout(&self) -> CallError {
        CallError::Timeout {
            server: self.cfg.name.clone(),
            after: self.cfg.call_timeout,
        }
    }

    fn take_pending(&self, n: u64) -> Option<Pending> {
        hwc_ai_core::sync::lock(&self.inner).pending.remove(&n)
    }

    /// A client's `notifications/cancelled` for its request `client_id` in
    /// `session`: the child is told (with its id), the caller answered at
    /// once. Returns whether such a request was pending.
    pub fn cancel_client(&self, session: &str, client_id: &Value, reason: &str) -> bool {
        let (n, p, tx) = {
            let mut inner = hwc_ai_core::sync::lock(&self.inner);
            let Some(n) = inner
                .pending
                .iter()
                .find(|(_, p)| p.session.as_deref() == Some(session) && &p.client_id == client_id)
                .map(|(n, _)| *n)
            else {
                return false;
            };
            let tx = inner.link.as_ref().map(|l| l.tx.clone());
            let Some(p) = inner.pending.remove(&n) else {
                return false;
            };
            (n, p, tx)
        };
        if let Some(tx) = tx {
            let _ = tx.try_send(cancelled(n, reason));
        }
        let _ = p.reply.send(Reply::Failed(CallError::Cancelled));
        true
    }

    /// One generation of the child: writer, reader, initialize, pings.
    async fn run_child(
        self: Arc<Self>,
        stdin: Option<ChildStdin>,
        stdout: Option<ChildStdout>,
        group: i32,
    ) {
        let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
            tracing::error!(server = %self.cfg.name, "child started without pipes");
            return;
        };
        let generation = {
            let mut inner = hwc_ai_core::sync::lock(&self.inner);
            inner.generation += 1;
            inner.starts += 1;
            inner.generation
        };
        if generation > 1 {
            self.metrics.restarted(&self.cfg.name);
        }
        let (tx, rx) = mpsc::channel::<String>(WRITE_QUEUE);
        let _cleanup = GenerationEnd {
            up: self.clone(),
            generation,
        };
        tokio::select! {
            () = write_lines(stdin, rx) => {
                tracing::warn!(server = %self.cfg.name, "cannot write to the child's stdin any more");
            }
            () = self.read_lines(stdout, tx.clone()) => {
                tracing::warn!(server = %self.cfg.name, generation, "child closed its stdout");
            }
            () = self.handshake_and_ping(tx, generation, group) => {}
        }
    }

    async fn handshake_and_ping(&self, tx: mpsc::Sender<String>, generation: u64, group: i32) {
        let name = &self.cfg.name;
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": CHILD_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "hwc-mcp-bridge", "version": env!("CARGO_PKG_VERSION")},
        }});
        let deadline = tokio::time::Instant::now() + self.cfg.call_timeout;
        let answer = self
            .roundtrip(&tx, generation, init, deadline, CallOpts::default())
            .await;
        let result = match answer {
            Ok(m) if m.get("result").is_some_and(Value::is_object) => m["result"].clone(),
            Ok(m) => {
                self.fail_generation(
                    group,
                    format!(
                        "the child refused initialize: {}",
                        m.get("error").unwrap_or(&Value::Null)
                    ),
                );
                return std::future::pending().await;
            }
            Err(e) => {
                self.fail_generation(group, format!("initialize failed: {e}"));
                return std::future::pending().await;
            }
        };
        let _ = tx
            .send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string())
            .await;
        let version = result
            .get("protocolVersion")
            .and_then(|v| v.as_str())
            .unwrap_or("?");
        let child = result
            .pointer("/serverInfo/name")
            .and_then(|v| v.as_str())
            .unwrap_or("?");
        tracing::info!(server = %name, generation, protocol_version = %version, child_server = %child, "child initialized");
        {
            let mut inner = hwc_ai_core::sync::lock(&self.inner);
            inner.link = Some(Link {
                tx: tx.clone(),
                init: Arc::new(result),
                generation,
            });
            inner.down_since = None;
            inner.last_error = None;
        }
        self.metrics.child_up(name, true);
        loop {
            tokio::time::sleep(self.cfg.ping_interval).await;
            let deadline = tokio::time::Instant::now() + self.cfg.ping_timeout;
            let ping = json!({"jsonrpc": "2.0", "id": 0, "method": "ping"});
            if let Err(e) = self
                .roundtrip(&tx, generation, ping, deadline, CallOpts::default())
                .await
            {
                let why = match e {
                    CallError::Timeout { .. } => format!(
                        "no answer to ping within {}s (ping_timeout)",
                        self.cfg.ping_timeout.as_secs_f64()
                    ),
                    e => e.to_string(),
                };
                self.fail_generation(group, why);
                return std::future::pending().await;
            }
        }
    }

    /// Ends this generation with `why`: SIGKILL to the child's process
    /// group, so the supervisor sees it exit and restarts it with backoff.
    fn fail_generation(&self, group: i32, why: String) {
        tracing::warn!(server = %self.cfg.name, reason = %why, "restarting the child");
        hwc_ai_core::sync::lock(&self.inner).last_error = Some(why);
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(group),
            nix::sys::signal::Signal::SIGKILL,
        );
    }

    async fn read_lines(&self, stdout: ChildStdout, tx: mpsc::Sender<String>) {
        let mut r = BufReader::new(stdout);
        let max = self.cfg.max_result_bytes;
        while let Some(line) = lines::next_line(&mut r, max).await {
            match line {
                lines::Line::Full(bytes) => {
                    if bytes.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match serde_json::from_slice::<Value>(&bytes) {
                        Ok(msg) => self.dispatch(msg, &tx),
                        Err(e) => {
                            tracing::warn!(server = %self.cfg.name, error = %e, bytes = bytes.len(), "child wrote a line that is not JSON; ignored")
                        }
                    }
                }
                lines::Line::Oversize { head, tail, len } => {
                    let id = lines::oversize_id(&head, &tail);
                    tracing::warn!(server = %self.cfg.name, bytes = len, max, ?id, "child message over max_result_bytes; dropped");
                    if let Some(p) = id.and_then(|n| self.take_pending(n)) {
                        let _ = p.reply.send(Reply::Failed(CallError::TooLarge {
                            server: self.cfg.name.clone(),
                            len,
                            max,
                        }));
                    }
                }
            }
        }
    }

    fn dispatch(&self, msg: Value, tx: &mpsc::Sender<String>) {
        match jsonrpc::kind(&msg) {
            Kind::Response => {
                let Some(n) = msg.get("id").and_then(Value::as_u64) else {
                    tracing::warn!(server = %self.cfg.name, "child answered an id the bridge never sent; ignored");
                    return;
                };
                if let Some(p) = self.take_pending(n) {
                    let mut msg = msg;
                    msg["id"] = p.client_id;
                    let _ = p.reply.send(Reply::Message(msg));
                }
            }
            Kind::Notification if jsonrpc::method(&msg) == "notifications/progress" => {
                let Some(n) = msg.pointer("/params/progressToken").and_then(Value::as_u64) else {
                    return;
                };
                let inner = hwc_ai_core::sync::lock(&self.inner);
                if let Some(p) = inner.pending.get(&n) {
                    if let (Some(sink), Some(token)) = (&p.progress, &p.client_token) {
                        let mut note = msg.clone();
                        note["params"]["progressToken"] = token.clone();
                        let _ = sink.send(note);
                    }
                }
            }
            Kind::Notification => {
                tracing::debug!(server = %self.cfg.name, method = jsonrpc::method(&msg), "child notification");
            }
            Kind::Request => {
                let id = jsonrpc::id(&msg);
                let answer = if jsonrpc::method(&msg) == "ping" {
                    jsonrpc::result(id, json!({}))
                } else {
                    tracing::info!(server = %self.cfg.name, method = jsonrpc::method(&msg), "child sent a request; refused (the bridge declares no client capabilities)");
                    jsonrpc::error(
                        id,
                        jsonrpc::METHOD_NOT_FOUND,
                        "the bridge declares no client capabilities (no roots, sampling or elicitation)",
                    )
                };
                let _ = tx.try_send(answer.to_string());
            }
            Kind::Invalid => {
                tracing::warn!(server = %self.cfg.name, "child wrote a message that is not JSON-RPC; ignored");
            }
        }
    }
}

fn cancelled(n: u64, reason: &str) -> String {
    json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": n, "reason": reason}}).to_string()
}

/// Removes a request that got no answer (timeout, client gone) and tells
/// the child it is cancelled.
struct PendingGuard<'a> {
    up: &'a Upstream,
    tx: mpsc::Sender<String>,
    n: u64,
    armed: bool,
    reason: &'static str,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.armed && self.up.take_pending(self.n).is_some() {
            let _ = self.tx.try_send(cancelled(self.n, self.reason));
        }
    }
}

/// Runs when a generation's future ends or is dropped (the supervisor
/// aborts it when the child exits): the link goes and every request
/// pending on this generation is answered (its reply channel dropped).
struct GenerationEnd {
    up: Arc<Upstream>,
    generation: u64,
}

impl Drop for GenerationEnd {
    fn drop(&mut self) {
        let mut inner = hwc_ai_core::sync::lock(&self.up.inner);
        if inner
            .link
            .as_ref()
            .is_some_and(|l| l.generation == self.generation)
        {
            inner.link = None;
        }
        inner.down_since = Some(Instant::now());
        let gen = self.generation;
        let dead: Vec<u64> = inner
            .pending
            .iter()
            .filter(|(_, p)| p.generation == gen)
            .map(|(n, _)| *n)
            .collect();
        let name = self.up.cfg.name.clone();
        for n in dead {
            if let Some(p) = inner.pending.remove(&n) {
                let _ = p.reply.send(Reply::Failed(CallError::ChildExited {
                    server: name.clone(),
                }));
            }
        }
        drop(inner);
        self.up.metrics.child_up(&name, false);
    }
}

async fn write_lines(mut stdin: ChildStdin, mut rx: mpsc::Receiver<String>) {
    while let Some(mut line) = rx.recv().await {
        line.push('\n');
        if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
            return;
        }
    }
}
