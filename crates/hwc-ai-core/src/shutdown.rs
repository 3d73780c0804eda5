//! The signals that end a daemon: SIGTERM from systemd, SIGINT from a terminal.

/// Resolves on the first SIGTERM or SIGINT.
pub async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
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
