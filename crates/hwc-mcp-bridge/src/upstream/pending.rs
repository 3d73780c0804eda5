//! The pending map's entries: a request's way to the child and back
//! (bridge-unique id and progress token, restored on the way back), the
//! guard that cancels it at the child when its caller stops waiting, and a
//! client's `notifications/cancelled`.

use super::{CallError, CallOpts, Upstream};
use crate::jsonrpc;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use tokio::sync::{mpsc, oneshot};

/// What a pending request gets instead of waiting on.
pub(super) enum Reply {
    Message(Value),
    Failed(CallError),
}

/// A request sent to the child, by the bridge's id for it.
pub(super) struct Pending {
    /// The child generation it was sent to.
    pub(super) generation: u64,
    session: Option<String>,
    /// The client's id, restored on the answer.
    pub(super) client_id: Value,
    /// The client's progress token, restored on its progress.
    pub(super) client_token: Option<Value>,
    /// Where the answer goes.
    pub(super) reply: oneshot::Sender<Reply>,
    /// Where its progress notifications go.
    pub(super) progress: Option<mpsc::UnboundedSender<Value>>,
}

impl Upstream {
    /// Sends `msg` on `tx` as a request of `generation` and waits until
    /// `deadline` for its answer, carrying the client's id again.
    pub(super) async fn roundtrip(
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

    /// Removes the pending request `n`, if still there.
    pub(super) fn take_pending(&self, n: u64) -> Option<Pending> {
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
