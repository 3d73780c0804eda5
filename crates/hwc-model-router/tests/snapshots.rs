//! The shapes others rely on: `/status` (deserialized by `hwc-ai` as
//! `Envelope<RouterStatus>`) and the `/metrics` families the dashboards and
//! alerts are written against. A change here is a change of contract:
//! review the snapshot diff, and bump `STATUS_FORMAT` if it is incompatible.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use hwc_ai_core::status::Envelope;
use hwc_model_router::api::{BackendState, RouterStatus};
use hwc_testkit::snapshot::{metric_families, shape};

#[tokio::test]
async fn status_and_metrics_shapes() {
    let r = common::Router::start(&format!(
        "[[backends]]\nname = \"local\"\nkind = \"openai\"\nurls = [\"{}\"]\n[models.small]\ntargets = [{{ backend = \"local\", model = \"m\" }}]\n",
        common::dead_url()
    ))
    .await;
    let status: serde_json::Value = r.status(common::ALICE).await;
    let typed: Envelope<RouterStatus> = serde_json::from_value(status.clone()).unwrap();
    assert_eq!(typed.daemon, "hwc-model-router");
    assert_eq!(typed.format, hwc_model_router::api::STATUS_FORMAT);
    assert_eq!(
        typed.body.backends[0].state,
        BackendState::Unknown,
        "never contacted: neither up nor down"
    );
    insta::assert_json_snapshot!("status", shape(&status));
    insta::assert_snapshot!("metrics", metric_families(&r.metrics().await));
    r.stop().await;
}
