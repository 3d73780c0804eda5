//! A timer that is always due within a second, on every runtime that
//! serves requests, so a request's own timers never wake the runtime.
//!
//! Each request arms timers: its `server.request_timeout`, and in the
//! router a backend's `first_token_timeout` and `request_timeout`. tokio's
//! time driver remembers, when its thread parks, the earliest deadline it
//! promised to wake for; a timer armed earlier than that promise (or while
//! no timer at all is armed, the promise then being "never") makes it
//! unpark the driver: a write to its eventfd and one more `epoll_wait` that
//! returns at once, even from the runtime's own thread. A runtime that is
//! idle between requests, as every runtime is at low load and each
//! single-threaded one of `server.runtimes = "per-core"` is most of the
//! time, parks with no timer armed, so every request paid that round trip
//! for each timer it armed (docs/benchmarks.md, "Timers that wake the
//! runtime").
//!
//! The anchor is an interval of [`PERIOD`]: the driver's promise is then
//! never later than a second away, and a timer of a second or more, every
//! request timeout, is armed without a wake. What it costs is one wake a
//! second per serving runtime, idle or not, and when the anchor was the
//! only timer armed, the eventfd write of re-arming it.

use std::time::Duration;
use tokio::time::MissedTickBehavior;
use tokio_util::task::AbortOnDropHandle;

/// How far away the next wake of a serving runtime ever is: a timer armed
/// for at least this long never wakes the runtime early.
pub(crate) const PERIOD: Duration = Duration::from_secs(1);

/// Keeps the anchor on the current runtime for as long as the handle lives.
pub(crate) fn hold() -> AbortOnDropHandle<()> {
    AbortOnDropHandle::new(tokio::spawn(async {
        let mut tick = tokio::time::interval(PERIOD);
        // A tick missed while the runtime was busy is not made up for.
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
        }
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_anchor_keeps_ticking_until_its_handle_is_dropped() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let metrics = runtime.metrics();
        runtime.block_on(async {
            let anchor = hold();
            // Past its first tick and into its second period.
            tokio::time::sleep(PERIOD + PERIOD / 4).await;
            assert_eq!(metrics.num_alive_tasks(), 1);
            assert!(!anchor.is_finished());
            drop(anchor);
            tokio::task::yield_now().await;
            assert_eq!(metrics.num_alive_tasks(), 0);
        });
    }
}
