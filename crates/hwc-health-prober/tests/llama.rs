//! Against the real llama-server: while it loads its model the target is
//! `starting` (its 503 "Loading model" is not `down`), then `up`; once it
//! is killed the target goes `down`, only after the failure threshold.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::Prober;
use hwc_testkit::llama;
use std::time::{Duration, Instant};

#[tokio::test]
async fn starting_then_up_then_down_with_thresholds() {
    let mut l = llama::spawn();
    let p = Prober::start(&format!(
        "[[targets]]\nname = \"llama\"\nkind = \"llama_cpp\"\nurl = \"{}\"\ninterval = \"50ms\"\ntimeout = \"50ms\"\nfailure_threshold = 8\nsuccess_threshold = 2\n",
        l.base()
    ))
    .await;
    let mut seen = Vec::new();
    let up = p
        .wait_state("llama", "up", Duration::from_secs(120), &mut seen)
        .await;
    assert!(
        seen.contains(&"starting".to_string()),
        "loading shows as starting: {seen:?}"
    );
    assert!(
        !seen.contains(&"down".to_string()),
        "loading is never down: {seen:?}"
    );
    assert!(up["last_latency_s"].as_f64().unwrap() < 0.05);

    l.stop();
    let killed = Instant::now();
    let down = p
        .wait_state("llama", "down", Duration::from_secs(5), &mut seen)
        .await;
    // 8 failures at a 50 ms interval: not before about 350 ms.
    assert!(
        killed.elapsed() >= Duration::from_millis(340),
        "down too early: {:?}",
        killed.elapsed()
    );
    assert!(down["consecutive_failures"].as_u64().unwrap() >= 8);
    assert!(
        down["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{down}"
    );
    let m = p.metrics().await;
    assert_eq!(
        hwc_testkit::metric(&m, "hwc_prober_state_changes_total", &["to=\"down\""]),
        Some(1.0)
    );
    p.stop().await;
}
