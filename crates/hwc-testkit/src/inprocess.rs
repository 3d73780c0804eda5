//! A daemon, as its lib's `daemon(cfg)` builds it, served inside the test
//! process on a free loopback port by the same `hwc_ai_core::server::run_on`
//! that `main` uses, and stopped through its shutdown future: the harness
//! every daemon crate's integration tests share, so none wires a listener,
//! a oneshot channel and a task by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The shutdown future handed to the daemon: resolves when the test stops the
/// daemon (or drops its handle).
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A daemon running in this process; dropping it asks it to stop.
pub struct InProcess {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://` + `addr`.
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl InProcess {
    /// Binds a free port and spawns `run(listener, shutdown)`, e.g.
    /// `InProcess::start(|l, s| server::run_on(l, build, s))`; most tests
    /// want [`InProcess::daemon`].
    /// The daemon returning an error fails the test (at [`InProcess::stop`]).
    pub async fn start<F, Fut, E>(run: F) -> Self
    where
        F: FnOnce(TcpListener, Shutdown) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Debug,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown: Shutdown = Box::pin(async move {
            let _ = rx.await;
        });
        let served = run(listener, shutdown);
        let task = tokio::spawn(async move { served.await.expect("daemon failed") });
        Self {
            addr,
            url: format!("http://{addr}"),
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Builds a daemon from `build` (a daemon lib's `daemon(cfg)`) and
    /// serves it like `main` does, on a free port:
    /// `InProcess::daemon(hwc_health_prober::daemon(cfg))`.
    pub async fn daemon<Fut, E>(build: Fut) -> Self
    where
        Fut: Future<Output = Result<hwc_ai_core::server::Daemon, E>> + Send + 'static,
        E: Debug + From<hwc_ai_core::server::ServerError> + Send + 'static,
    {
        Self::start(|l, stop| hwc_ai_core::server::run_on(l, build, stop)).await
    }

    /// Stops the daemon and waits (up to 20 s) for its drain and final work.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), t)
                .await
                .expect("daemon did not stop within 20 s")
                .expect("daemon task panicked");
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
