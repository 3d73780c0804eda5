//! The daemon's background work (flush loops, probe loops, reconcile,
//! child supervisors, job workers) in one group that the drain stops and
//! awaits.
//!
//! Each task gets a [`CancellationToken`]: on SIGTERM the server cancels it
//! and waits for the group within the drain bound, so a loop can finish its
//! last piece of work (the router's final usage flush, a supervisor killing
//! its child's process group) instead of being aborted mid-write. A task
//! still running when the bound passes is aborted and named in the log.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
pub use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Background tasks that live as long as the daemon serves.
#[derive(Clone, Default)]
pub struct TaskGroup {
    tracker: TaskTracker,
    cancel: CancellationToken,
    running: Arc<Mutex<Vec<(&'static str, tokio::task::AbortHandle)>>>,
}

impl TaskGroup {
    /// An empty group.
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns `task(cancel)`: a loop that must return soon after `cancel`
    /// fires, having done whatever last work it owes (flush, kill a child).
    /// `name` appears in the log if it has to be aborted.
    pub fn spawn<F, Fut>(&self, name: &'static str, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handle = self.tracker.spawn(task(self.cancel.child_token()));
        let mut running = crate::sync::lock(&self.running);
        // Tasks that ended (a job worker's run) need no handle kept.
        running.retain(|(_, h)| !h.is_finished());
        running.push((name, handle.abort_handle()));
    }

    /// Spawns a loop that runs until cancelled and then just stops: for
    /// work that owes nothing at shutdown (a periodic export, a prune).
    pub fn spawn_until_cancelled<Fut>(&self, name: &'static str, task: Fut)
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.spawn(name, |cancel| async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = task => {}
            }
        });
    }

    /// Number of tasks still running.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    /// True when no task is running.
    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }

    /// Cancels every task and waits up to `bound` for all to end; returns
    /// the names of those aborted because they did not end in time.
    pub async fn shutdown(&self, bound: Duration) -> Vec<&'static str> {
        self.cancel.cancel();
        self.tracker.close();
        if tokio::time::timeout(bound, self.tracker.wait())
            .await
            .is_ok()
        {
            return Vec::new();
        }
        let running = crate::sync::lock(&self.running);
        let stuck: Vec<&'static str> = running
            .iter()
            .filter(|(_, h)| !h.is_finished())
            .map(|(name, h)| {
                h.abort();
                *name
            })
            .collect();
        for name in &stuck {
            tracing::warn!(
                task = name,
                bound_s = bound.as_secs_f64(),
                "background task did not stop within the drain bound; aborted"
            );
        }
        stuck
    }
}

impl std::fmt::Debug for TaskGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskGroup")
            .field("running", &self.tracker.len())
            .field("cancelled", &self.cancel.is_cancelled())
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn shutdown_lets_tasks_finish_their_last_work() {
        let group = TaskGroup::new();
        let flushed = Arc::new(AtomicBool::new(false));
        let f = flushed.clone();
        group.spawn("flush", |cancel| async move {
            cancel.cancelled().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            f.store(true, Ordering::SeqCst);
        });
        group.spawn_until_cancelled("export", std::future::pending());
        assert_eq!(group.len(), 2);
        let stuck = group.shutdown(Duration::from_secs(5)).await;
        assert!(stuck.is_empty(), "{stuck:?}");
        assert!(flushed.load(Ordering::SeqCst), "the final flush ran");
        assert!(group.is_empty());
    }

    #[tokio::test]
    async fn a_task_that_ignores_cancel_is_aborted_and_named() {
        let group = TaskGroup::new();
        group.spawn("stubborn", |_cancel| async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        group.spawn("polite", |cancel| async move { cancel.cancelled().await });
        let stuck = group.shutdown(Duration::from_millis(50)).await;
        assert_eq!(stuck, vec!["stubborn"]);
        tokio::time::timeout(Duration::from_secs(1), group.tracker.wait())
            .await
            .unwrap();
    }
}
