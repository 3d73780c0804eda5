//! The shapes others rely on: `/status` (read by `hwc-ai` as
//! `Envelope<BridgeStatus>`), `/servers`, and the `/metrics` families the
//! dashboards and alerts are written against. A change here is a change
//! of contract: review the diff, bump `STATUS_FORMAT` if incompatible.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use hwc_ai_core::status::Envelope;
use hwc_mcp_bridge::status::{BridgeStatus, ServersList};
use hwc_testkit::snapshot::{metric_families, shape};
use serde_json::json;

#[tokio::test]
async fn status_servers_and_metrics_shapes() {
    let b = common::Bridge::start(&common::fault_server("f", "")).await;
    let sid = b.init("f").await;
    b.call("f", &sid, 1, "echo", json!({"text": "x"})).await;
    let status = b.get("/status").await.body;
    let typed: Envelope<BridgeStatus> = serde_json::from_value(status.clone()).unwrap();
    assert_eq!(typed.daemon, "hwc-mcp-bridge");
    assert_eq!(typed.body.servers_up, 1);
    insta::assert_json_snapshot!("status", shape(&status));
    let servers = b.get("/servers").await.body;
    let _: ServersList = serde_json::from_value(servers.clone()).unwrap();
    insta::assert_json_snapshot!("servers", shape(&servers));
    let metrics = b.metrics().await;
    insta::assert_snapshot!("metrics", metric_families(&metrics));
    b.stop().await;
}

#[tokio::test]
async fn metrics_pass_promtool() {
    let b = common::Bridge::start(&common::fault_server("f", "")).await;
    let sid = b.init("f").await;
    b.call("f", &sid, 1, "echo", json!({"text": "x"})).await;
    b.call("f", &sid, 2, "nope", json!({})).await;
    let text = b.metrics().await;
    b.stop().await;
    hwc_testkit::daemon::assert_promtool_clean(&text);
}
