//! Talking to systemd: readiness, status lines, stopping, and a watchdog that
//! is only petted while the daemon's own health check holds.
//!
//! Every call is a no-op outside systemd (`NOTIFY_SOCKET` unset), so the same
//! binary runs from a terminal or a test.

use crate::health::Health;
use sd_notify::NotifyState;
use std::sync::Arc;
use std::time::Duration;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// READY=1 plus a first STATUS= line, once the listener is bound.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A STATUS= line `systemctl status` shows.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// STOPPING=1, when a drain begins.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// The interval systemd asked for (`WatchdogSec`), if any.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

/// Pets the watchdog at half its interval while `health.liveness()` holds.
/// When it fails, the pets stop and systemd restarts the unit after
/// `WatchdogSec`: a wedged daemon is not kept alive by a healthy timer.
pub fn spawn_watchdog(health: Arc<dyn Health>) -> Option<tokio::task::JoinHandle<()>> {
    let interval = watchdog_interval()?;
    let period = interval / 2;
    tracing::info!(
        watchdog_sec = interval.as_secs_f64(),
        "systemd watchdog enabled"
    );
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            match health.liveness() {
                Ok(()) => {
                    if failing {
                        tracing::info!("liveness restored; watchdog petting resumes");
                        failing = false;
                    }
                    send(&[NotifyState::Watchdog]);
                }
                Err(reason) => {
                    if !failing {
                        tracing::error!(%reason, "liveness failed; withholding watchdog pets");
                        failing = true;
                    }
                }
            }
        }
    }))
}
