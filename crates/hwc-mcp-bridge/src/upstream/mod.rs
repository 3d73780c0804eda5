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
//!
//! This module is the [`Upstream`] facade; the parts: `error`
//! ([`CallError`]), `state` ([`ServerState`]), `pending` (the pending
//! map's entries, the round trip and cancellation), `generation` (one
//! child's lifecycle: writer and reader tasks, handshake, pings, cleanup)
//! [`lines`] (size-capped stdout framing) and `changes` (the feed of the
//! child's change notifications to open streams).

mod changes;
mod error;
mod generation;
pub mod lines;
mod pending;
mod state;

pub use changes::{Change, ChangeKind};
pub use error::CallError;
pub use state::ServerState;

use crate::config::ServerEntry;
use crate::metrics::BridgeMetrics;
use hwc_ai_core::process::{Child, ChildSpec, ChildState, Supervisor};
use hwc_ai_core::tasks::{CancellationToken, TaskGroup};
use pending::Pending;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use tokio::sync::{broadcast, mpsc, OwnedSemaphorePermit, Semaphore};

/// The protocol revision the bridge speaks to its children.
pub const CHILD_PROTOCOL_VERSION: &str = "2025-11-25";

/// A live, initialized child: where to write and what it said.
#[derive(Clone)]
pub struct Link {
    tx: mpsc::Sender<String>,
    /// Its initialize result.
    pub init: Arc<Value>,
    /// Which start of the child this is.
    pub generation: u64,
}

/// What is shared between the HTTP side and the child's tasks.
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
    tool_schemas: Mutex<HashMap<String, Arc<Value>>>,
    changes: broadcast::Sender<Change>,
    listen_subs: Mutex<HashMap<String, usize>>,
    metrics: BridgeMetrics,
    /// A per-session child ([`crate::isolation`]): its pool reports the
    /// children-up gauge for the server, not each child.
    session_child: bool,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("server", &self.cfg.name)
            .field("session_child", &self.session_child)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// An upstream for `cfg` that will run `spec` (nothing runs until
    /// [`Upstream::spawn`]).
    pub fn new(cfg: ServerEntry, spec: ChildSpec, metrics: BridgeMetrics) -> Arc<Self> {
        Self::build(cfg, spec, metrics, false)
    }

    /// An upstream that is one session's own child (`isolation =
    /// "per-session"`).
    pub fn for_session(cfg: ServerEntry, spec: ChildSpec, metrics: BridgeMetrics) -> Arc<Self> {
        Self::build(cfg, spec, metrics, true)
    }

    fn build(
        cfg: ServerEntry,
        spec: ChildSpec,
        metrics: BridgeMetrics,
        session_child: bool,
    ) -> Arc<Self> {
        let calls = Arc::new(Semaphore::new(cfg.max_concurrent_calls));
        Arc::new(Self {
            cfg: Arc::new(cfg),
            spec,
            inner: Mutex::new(Inner::default()),
            next_id: AtomicU64::new(1),
            calls,
            child_state: OnceLock::new(),
            known_tools: Mutex::new(HashSet::new()),
            tool_schemas: Mutex::new(HashMap::new()),
            changes: broadcast::channel(changes::FEED).0,
            listen_subs: Mutex::new(HashMap::new()),
            metrics,
            session_child,
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
        self.spawn_until(tasks, CancellationToken::new(), || {});
    }

    /// [`Upstream::spawn`] that also ends when `until` is cancelled, and
    /// then calls `on_end` (a per-session child ends with its session).
    pub fn spawn_until(
        self: &Arc<Self>,
        tasks: &TaskGroup,
        until: CancellationToken,
        on_end: impl FnOnce() + Send + 'static,
    ) {
        let sup = Supervisor::new(self.spec.clone(), self.cfg.restart.policy());
        let _ = self.child_state.set(sup.state());
        let up = self.clone();
        tasks.spawn("mcp-child-supervisor", move |cancel| async move {
            let stop = CancellationToken::new();
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
            let run = sup.run(stop.clone(), on_start);
            tokio::pin!(run);
            tokio::select! {
                () = &mut run => {}
                () = cancel.cancelled() => { stop.cancel(); run.await }
                () = until.cancelled() => { stop.cancel(); run.await }
            }
            if !up.session_child {
                up.metrics.child_up(&up.cfg.name, false);
            }
            on_end();
        });
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

    /// Remembers the tools of a `tools/list` result: their names (metric
    /// labels) and input schemas (the `Mcp-Param-*` checks), until the
    /// child says its list changed or ends.
    pub fn learn_tools(&self, result: &Value) {
        let Some(tools) = result.get("tools").and_then(Value::as_array) else {
            return;
        };
        let mut known = hwc_ai_core::sync::lock(&self.known_tools);
        let mut schemas = hwc_ai_core::sync::lock(&self.tool_schemas);
        for t in tools {
            let Some(name) = t.get("name").and_then(Value::as_str) else {
                continue;
            };
            if known.len() < 1024 {
                known.insert(name.to_string());
            }
            if schemas.len() < 1024 {
                let schema = t.get("inputSchema").cloned().unwrap_or(Value::Null);
                schemas.insert(name.to_string(), Arc::new(schema));
            }
        }
    }

    /// The input schema of `tool` as last listed by the live child.
    pub fn tool_schema(&self, tool: &str) -> Option<Arc<Value>> {
        hwc_ai_core::sync::lock(&self.tool_schemas)
            .get(tool)
            .cloned()
    }

    /// [`Upstream::tool_schema`], listing the child's tools first (every
    /// page, up to 20) when none is known: after a restart or a
    /// `list_changed` the bridge has not seen a list yet. `None`: the
    /// child has no such tool (or could not list).
    pub async fn tool_schema_listed(&self, tool: &str) -> Option<Arc<Value>> {
        if let Some(s) = self.tool_schema(tool) {
            return Some(s);
        }
        let deadline = tokio::time::Instant::now() + self.cfg.call_timeout;
        let mut cursor: Option<Value> = None;
        for _ in 0..20 {
            let mut params = serde_json::json!({});
            if let Some(c) = &cursor {
                params["cursor"] = c.clone();
            }
            let msg = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "tools/list", "params": params});
            let answer = self
                .request(msg, deadline, CallOpts::default())
                .await
                .ok()?;
            let result = answer.get("result")?;
            self.learn_tools(result);
            cursor = result.get("nextCursor").filter(|c| !c.is_null()).cloned();
            if cursor.is_none() {
                break;
            }
        }
        self.tool_schema(tool)
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
}
