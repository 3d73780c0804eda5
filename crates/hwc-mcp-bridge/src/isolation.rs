//! `isolation = "per-session"`: a server that keeps per-connection state
//! (a browser, a REPL, a login) gets a child of its own for each session,
//! at most `max_children` at once, and no resident child.
//!
//! `initialize` starts the session's child and waits (up to
//! `call_timeout`) for it to initialize; the session is answered with that
//! child's own initialize result and bound to it. The child ends with the
//! session (DELETE, idle expiry, eviction: the session's `ended` token),
//! and the session ends with the child (a crash ends the session; the
//! client gets 404 and initializes again, with a fresh child). Stateless
//! 2026-07-28 requests and the OpenAPI view would share one child between
//! callers, so they are refused for such a server (ADR 0011).

use crate::config::ServerEntry;
use crate::metrics::BridgeMetrics;
use crate::upstream::{Change, Upstream};
use hwc_ai_core::process::ChildSpec;
use hwc_ai_core::tasks::{CancellationToken, TaskGroup};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// How long `initialize` waits for a slot at the cap (a session that just
/// ended frees its slot once its child has exited).
const SLOT_WAIT: Duration = Duration::from_secs(5);

/// Why a session's child could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// `max_children` sessions have a child now.
    #[error("server `{server}` gives each session its own child and {max} sessions have one (max_children); end one (DELETE) or let idle ones expire (http.session_idle_timeout)")]
    Full {
        /// The server.
        server: String,
        /// Its `max_children`.
        max: usize,
    },
    /// The child did not initialize in time, or ended first.
    #[error("server `{server}`: the session's own child did not start: {reason}")]
    NotStarted {
        /// The server.
        server: String,
        /// What happened.
        reason: String,
    },
}

/// The children of one per-session server.
pub struct Pool {
    cfg: ServerEntry,
    spec: ChildSpec,
    metrics: BridgeMetrics,
    tasks: TaskGroup,
    slots: Arc<Semaphore>,
}

impl Pool {
    /// A pool for `cfg`, its children run by `spec` in `tasks`.
    pub fn new(
        cfg: ServerEntry,
        spec: ChildSpec,
        metrics: BridgeMetrics,
        tasks: TaskGroup,
    ) -> Self {
        metrics.child_count(&cfg.name, 0);
        Self {
            slots: Arc::new(Semaphore::new(cfg.max_children)),
            cfg,
            spec,
            metrics,
            tasks,
        }
    }

    /// Children running now.
    pub fn children(&self) -> usize {
        self.cfg
            .max_children
            .saturating_sub(self.slots.available_permits())
    }

    /// The server's `max_children`.
    pub fn max(&self) -> usize {
        self.cfg.max_children
    }

    /// Starts a child that lives until `ended` is cancelled (and cancels
    /// it when the child ends first), and waits until it has initialized.
    pub async fn start(&self, ended: CancellationToken) -> Result<Arc<Upstream>, PoolError> {
        let server = self.cfg.name.clone();
        let max = self.cfg.max_children;
        let wait = SLOT_WAIT.min(self.cfg.call_timeout);
        let Ok(Ok(slot)) = tokio::time::timeout(wait, self.slots.clone().acquire_owned()).await
        else {
            return Err(PoolError::Full { server, max });
        };
        self.metrics.child_count(&server, self.children());
        let up = Upstream::for_session(self.cfg.clone(), self.spec.clone(), self.metrics.clone());
        let mut feed = up.changes();
        let (slots, metrics, name) = (self.slots.clone(), self.metrics.clone(), server.clone());
        up.spawn_until(&self.tasks, ended.clone(), move || {
            drop(slot);
            metrics.child_count(&name, max.saturating_sub(slots.available_permits()));
        });
        // The session ends with its child's first generation.
        let watch = ended.clone();
        self.tasks.spawn_until_cancelled("mcp-session-child-watch", async move {
            loop {
                tokio::select! {
                    () = watch.cancelled() => return,
                    c = feed.recv() => match c {
                        Ok(Change::Ended(_)) | Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            watch.cancel();
                            return;
                        }
                        _ => {}
                    },
                }
            }
        });
        let deadline = tokio::time::Instant::now() + self.cfg.call_timeout;
        loop {
            if up.link().is_some() {
                return Ok(up);
            }
            let exited = ended.is_cancelled();
            if exited || tokio::time::Instant::now() >= deadline {
                ended.cancel();
                let reason = if exited {
                    "it exited before answering initialize (the bridge's log has its stderr)".into()
                } else {
                    format!(
                        "no initialize answer within call_timeout ({}s)",
                        self.cfg.call_timeout.as_secs_f64()
                    )
                };
                return Err(PoolError::NotStarted { server, reason });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
