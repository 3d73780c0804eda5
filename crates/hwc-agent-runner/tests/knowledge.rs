//! `search_knowledge` over a real runbook directory and the incident
//! records of finished jobs (the hwc-knowledge index, BM25 here: the
//! hybrid path with real embeddings is tested in crates/hwc-knowledge):
//! the passage comes back with its source and heading, and a later job
//! finds what an earlier one found.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{finish, Runner};
use hwc_testkit::scripted::{tool_call, Upstream};
use serde_json::json;

#[tokio::test]
async fn runbooks_and_past_incidents_are_found_with_their_source() {
    let docs = tempfile::tempdir().unwrap();
    std::fs::write(
        docs.path().join("ollama.md"),
        "# Ollama\n\n## Ollama stops answering\n\nCheck the GPU with nvidia-smi; if the driver is fine, restart ollama.service.\n\n## Disk\n\nModels live in /var/lib/ollama.\n",
    )
    .unwrap();
    std::fs::write(
        docs.path().join("logo.png"),
        [0x89, b'P', b'N', b'G', 0, 0, 1, 2],
    )
    .unwrap();
    let up = Upstream::start(
        vec![
            tool_call("search_knowledge", r#"{"query": "ollama stops answering"}"#),
            tool_call(
                "finish",
                &finish(
                    "the runbook says restart after nvidia-smi",
                    &[("runbook: check the GPU first", &[8])],
                ),
            ),
            tool_call(
                "search_knowledge",
                r#"{"query": "what did we learn about the GPU check"}"#,
            ),
        ],
        tool_call("finish", &finish("found the earlier incident", &[])),
    )
    .await;
    let extra = format!(
        "[tools.knowledge]\npaths = [\"{}\", \"{}\"]\nindex = \"{}\"\n",
        docs.path().display(),
        docs.path().join("gone").display(),
        docs.path().join("index.sqlite").display()
    );
    let r = Runner::start(&up.url(), &extra).await;
    let first = r
        .job(json!({"goal": "ollama is not answering", "environment": "dev"}))
        .await;
    r.wait_for(&first, &["completed"]).await;
    let told = up.request(1).2.to_string();
    assert!(
        told.contains("ollama.md > Ollama > Ollama stops answering") && told.contains("nvidia-smi"),
        "the passage with its source and heading: {told}"
    );
    assert!(
        !told.contains("PNG"),
        "a binary file is never served: {told}"
    );
    assert!(
        told.contains("not searched: ") && told.contains("gone is not indexed"),
        "a missing directory is told with the answer: {told}"
    );
    let second = r
        .job(json!({"goal": "the GPU again", "environment": "dev"}))
        .await;
    r.wait_for(&second, &["completed"]).await;
    let told = up.request(3).2.to_string();
    assert!(
        told.contains(&format!("incident:{first}")) && told.contains("check the GPU first"),
        "the first job's incident record: {told}"
    );
    r.stop().await;
}
