//! The shutdown and reload signals are caught from the moment the daemon
//! can be reached. A regression here does not fail an assertion: the default
//! action of SIGTERM ends this test binary, which the harness reports as a
//! failure of this file (kept alone in it for that reason).

use std::time::Duration;

use nix::sys::signal::{raise, Signal};

#[tokio::test]
async fn sigterm_is_caught_before_the_shutdown_future_is_polled() {
    let shutdown = hwc_ai_core::shutdown::signal();
    // Raised before the first poll: a handler installed lazily would miss it.
    raise(Signal::SIGTERM).unwrap();
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .expect("a SIGTERM raised before the first poll must still resolve the shutdown future");
}
