//! The signals that end a daemon: SIGTERM from systemd, SIGINT from a terminal.
//!
//! The handlers are installed when [`signal`] is called, not when its future
//! is first polled: a daemon answers `/healthz` (and systemd or a test may
//! send SIGTERM) from the moment its server task runs, which can be before
//! the task awaiting shutdown is scheduled. A SIGTERM in that window would
//! otherwise take the default action and kill the daemon undrained.

use std::future::Future;

/// Installs the SIGTERM and SIGINT handlers now; the future resolves on the
/// first of them.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
                    _ = int.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
                }
            }
            _ => {
                tracing::error!("cannot install signal handlers; only ctrl-c will stop the daemon");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
