//! A declared file model through the whole daemon: downloaded from a real
//! local HTTP server, placed, then verified with a one-token generation
//! through the real llama-server named by `verify_url`; `/status` and the
//! metrics follow it.
#![allow(clippy::unwrap_used, missing_docs)]

use hwc_model_manager::config::ManagerConfig;
use sha2::{Digest, Sha256};
use std::time::Duration;

mod common;
use common::Running;

#[tokio::test]
async fn downloads_places_and_verifies_through_the_runtime() {
    let llama = hwc_testkit::llama::start();
    let www = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(www.path().join("weights.bin"), &data).unwrap();
    let sha = hex::encode(Sha256::digest(&data));
    let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", server.local_addr().unwrap());
    let app = axum::Router::new().fallback_service(tower_http::services::ServeDir::new(www.path()));
    tokio::spawn(async move { axum::serve(server, app).await.unwrap() });

    let models = tempfile::tempdir().unwrap();
    let toml = format!(
        "[ollama]\nurl = \"http://127.0.0.1:9\"\n[manager]\nreserve = 0\n\
         [[file_models]]\nname = \"weights\"\ndir = \"{}\"\nverify_url = \"{}\"\n\
         [[file_models.files]]\nurl = \"{base}/weights.bin\"\nsha256 = \"{sha}\"\n",
        models.path().join("w").display(),
        llama.url()
    );
    let cfg: ManagerConfig = hwc_ai_core::config::load_str(&toml).unwrap();
    let m = Running::start(cfg).await;
    let model = m.wait("weights", "present", Duration::from_secs(30)).await;
    assert_eq!(model["state"], "present", "{model}");
    assert_eq!(
        std::fs::read(models.path().join("w/weights.bin")).unwrap(),
        data
    );
    let metrics = m.metrics().await;
    assert!(
        metrics.contains("hwc_manager_verify_total{model=\"weights\",result=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("hwc_manager_model_present{model=\"weights\",kind=\"file\"} 1"));
    assert!(
        metrics.contains("hwc_manager_pull_bytes_total{model=\"weights\"} 3000000"),
        "{metrics}"
    );
    m.stop().await;
}
