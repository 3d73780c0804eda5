//! A server's state as `/servers` and `/status` show it, from the
//! supervisor's view of the process and the bridge's view of the link.

use super::{CallError, Upstream};
use hwc_ai_core::process::ChildState;

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
    /// `isolation = "per-session"`: no resident child; each session has its own.
    PerSession {
        /// Sessions' children running now.
        children: usize,
        /// At most this many.
        max_children: usize,
    },
}

impl Upstream {
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

    /// Why the child cannot take a request now, for the caller.
    pub(super) fn unavailable(&self) -> CallError {
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
}
