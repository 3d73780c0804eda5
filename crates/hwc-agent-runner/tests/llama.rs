//! The agent against a real model: the real router in front of the real
//! llama.cpp llama-server serving SmolLM2-135M-Instruct, which does not
//! call tools natively, so the runner asks in `json_schema` mode (the
//! server constrains decoding to `{"tool": …, "arguments": …}` with the
//! tool names and arguments as the schema allows). A 135M model decides
//! poorly, so the test asserts what the system guarantees, not what the
//! model concludes: every answer is a well-formed call, every call is
//! judged, the job ends within its budget with a report, and a call the
//! policy denies never runs.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{Runner, RITA};
use hwc_testkit::inprocess::InProcess;
use serde_json::{json, Value};

async fn router(dir: &std::path::Path) -> InProcess {
    std::fs::write(
        dir.join("keys.toml"),
        "[[keys]]\nname = \"runner\"\nsecret = \"sk-runner-test\"\n",
    )
    .unwrap();
    let toml = format!(
        r#"
[auth]
keys_file = "{keys}"
[state]
database = "{db}"
[[backends]]
name = "llama"
kind = "openai"
urls = ["{url}"]
[models.smol]
targets = [{{ backend = "llama", model = "smollm2" }}]
"#,
        keys = dir.join("keys.toml").display(),
        db = dir.join("router.sqlite").display(),
        url = hwc_testkit::llama::shared().url(),
    );
    let cfg: hwc_model_router::config::RouterConfig = hwc_ai_core::config::load_str(&toml).unwrap();
    InProcess::daemon(hwc_model_router::daemon(cfg)).await
}

#[tokio::test]
async fn a_real_small_model_drives_a_job_through_the_router_in_json_schema_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = router(tmp.path()).await;
    std::fs::write(tmp.path().join("router.key"), "sk-runner-test").unwrap();
    // 512 completion tokens bound a turn on a busy machine: SmolLM2 once ran
    // a turn to the default 4096 and the job past its 180 s (a JSON answer
    // cut short stays text, which the loop answers, never a failed turn).
    let extra = format!(
        "tool_calling = \"json_schema\"\napi_key_file = \"{}\"\ntemperature = 0.0\nmax_completion_tokens = 512\n",
        tmp.path().join("router.key").display()
    );
    // [model] is already open in the base config: append to it.
    let r = Runner::start_with_model_keys(&format!("{}/v1", rt.url), &extra).await;
    let id = r
        .job(
            json!({"goal": "Report the host's uptime and memory.", "environment": "prod",
                    "tools": ["host_facts", "shell"], "max_steps": 4, "model": "smol"}),
        )
        .await;
    let v = r
        .wait_for_within(
            &id,
            &["completed", "failed"],
            std::time::Duration::from_secs(180),
        )
        .await;
    let events = r.events(&id).await;
    let turns = events
        .iter()
        .filter(|e| e["kind"] == "turn.completed")
        .count();
    assert!((1..=4).contains(&turns), "{turns} turns: {v}");
    // The model answered every turn (no router or stream failure).
    assert!(
        events.iter().all(|e| e["kind"] != "turn.failed"
            || e["data"]["error"].as_str().unwrap_or("").contains("budget")),
        "{events:#?}"
    );
    // Every call it made was judged; nothing denied ran.
    let decisions: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "policy.decision")
        .collect();
    let started: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "item.started")
        .collect();
    let allowed = decisions
        .iter()
        .filter(|d| d["data"]["verdict"] == "allow")
        .count();
    assert_eq!(started.len(), allowed, "{decisions:#?}");
    // The job ended within its budget with a report.
    let rep = r
        .get(&format!("/agent/jobs/{id}/report"), RITA)
        .send()
        .await
        .unwrap();
    assert_eq!(rep.status(), 200, "{v}");
    let rep: Value = rep.json().await.unwrap();
    assert!(rep["steps"].as_u64().unwrap() <= 4, "{rep}");
    assert!(
        rep["tokens"].as_u64().unwrap() > 0,
        "usage came back through the router: {rep}"
    );
    r.stop().await;
    rt.stop().await;
}
