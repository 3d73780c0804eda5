//! The shapes others rely on: `/status` (deserialized by `hwc-ai` as
//! `Envelope<ProberStatus>`) and the `/metrics` families the dashboards and
//! alerts are written against. A change here is a change of contract:
//! review the snapshot diff, and bump `STATUS_FORMAT` if it is incompatible.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use hwc_ai_core::status::Envelope;
use hwc_health_prober::api::ProberStatus;
use hwc_testkit::snapshot::{metric_families, shape};
use std::time::Duration;

#[tokio::test]
async fn status_and_metrics_shapes() {
    let dead = hwc_testkit::free_port();
    let p = common::Prober::start(&format!(
        "[[targets]]\nname = \"dead\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{dead}\"\ninterval = \"50ms\"\nfailure_threshold = 1\n"
    ))
    .await;
    p.wait_state("dead", "down", Duration::from_secs(10), &mut Vec::new())
        .await;
    let status = p.status().await;
    let typed: Envelope<ProberStatus> = serde_json::from_value(status.clone()).unwrap();
    assert_eq!(typed.daemon, "hwc-health-prober");
    assert_eq!(typed.body.targets_total, 1);
    insta::assert_json_snapshot!("status", shape(&status));
    insta::assert_snapshot!("metrics", metric_families(&p.metrics().await));
    p.stop().await;
}
