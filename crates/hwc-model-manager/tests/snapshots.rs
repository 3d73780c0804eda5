//! The shapes others rely on: `/status` (deserialized by `hwc-ai` as
//! `Envelope<ManagerStatus>`) and the `/metrics` families the dashboards and
//! alerts are written against. A change here is a change of contract:
//! review the snapshot diff, and bump `STATUS_FORMAT` if it is incompatible.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use hwc_ai_core::status::Envelope;
use hwc_model_manager::api::ManagerStatus;
use hwc_testkit::snapshot::{metric_families, shape};

#[tokio::test]
async fn status_and_metrics_shapes() {
    let dead = hwc_testkit::free_port();
    let cfg = hwc_ai_core::config::load_str(&format!(
        "[ollama]\nurl = \"http://127.0.0.1:{dead}\"\n[[ollama_models]]\nname = \"gpt-oss:20b\"\n"
    ))
    .unwrap();
    let m = common::Running::start(cfg).await;
    // Settled: the first reconcile has ended (Ollama is unreachable).
    let t0 = std::time::Instant::now();
    let status = loop {
        let s = m.status().await;
        if !s["last_reconcile"].is_null() && s["models"][0]["state"] == "failed" {
            break s;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "never settled: {s}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    let typed: Envelope<ManagerStatus> = serde_json::from_value(status.clone()).unwrap();
    assert_eq!(typed.daemon, "hwc-model-manager");
    assert_eq!(typed.body.models.len(), 1);
    insta::assert_json_snapshot!("status", shape(&status));
    insta::assert_snapshot!("metrics", metric_families(&m.metrics().await));
    m.stop().await;
}
