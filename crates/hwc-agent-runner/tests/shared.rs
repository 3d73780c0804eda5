//! Several runners on one real PostgreSQL (Debian's, started by the test):
//! a job asked for on one runner runs on the runner of its target host,
//! its approval can come through either, and the one audit chain both
//! append to verifies. And retention: tool output leaves events and
//! conversations after the configured period, the audit keeps its hash.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{finish, Runner, BOB, RITA};
use hwc_testkit::scripted::{tool_call, Upstream};
use serde_json::{json, Value};

#[tokio::test]
async fn runners_on_two_hosts_share_jobs_approvals_and_one_audit_chain() {
    let url = hwc_testkit::postgres::shared().database("runners");
    let up = Upstream::start(
        vec![tool_call(
            "shell",
            &json!({"command": "kill -0 1", "rollback": "nothing"}).to_string(),
        )],
        tool_call("finish", &finish("done", &[])),
    )
    .await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Runner::start_shared(da.path(), &up.url(), &url, "host-a").await;
    let b = Runner::start_shared(db.path(), &up.url(), &url, "host-b").await;
    // Asked for on A, for host B.
    let id = a
        .job(json!({"goal": "signal init on b", "environment": "prod", "target": "host-b"}))
        .await;
    let v = a.wait_for(&id, &["waiting_approval"]).await;
    let digest = v["pending"]["digest"].as_str().unwrap().to_string();
    // B sees the same job; the approval goes through A.
    assert_eq!(b.view(&id).await["state"], "waiting_approval");
    let (s, body) = a.approve(&id, BOB, &digest).await;
    assert_eq!(s, 200, "{body}");
    let v = b.wait_for(&id, &["completed", "failed"]).await;
    assert_eq!(v["state"], "completed", "{v}");
    // It ran on B: the records of the action say so.
    let store = hwc_agent_runner::store::Store::open(&url).await.unwrap();
    let started: Vec<String> =
        sqlx::query_scalar("SELECT record FROM audit WHERE kind = 'action_started'")
            .fetch_all(&store.pool)
            .await
            .unwrap();
    assert_eq!(started.len(), 1);
    assert!(started[0].contains("\"host\":\"host-b\""), "{}", started[0]);
    let created: Vec<String> =
        sqlx::query_scalar("SELECT record FROM audit WHERE kind = 'job_created'")
            .fetch_all(&store.pool)
            .await
            .unwrap();
    assert!(created[0].contains("\"host\":\"host-a\""));
    let v = hwc_agent_runner::audit::verify(&store, None).await.unwrap();
    assert!(v.ok(), "{:?}", v.breaks);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn tool_output_is_forgotten_after_the_retention_period() {
    let up = Upstream::start(
        vec![tool_call("host_facts", r#"{"what": "uptime"}"#)],
        tool_call("finish", &finish("up", &[("up", &[8])])),
    )
    .await;
    let r = Runner::start(&up.url(), "").await;
    let id = r.job(json!({"goal": "uptime", "environment": "dev"})).await;
    r.wait_for(&id, &["completed"]).await;
    let store = hwc_agent_runner::store::Store::open(&format!(
        "sqlite://{}",
        r.dir.join("runner.db").display()
    ))
    .await
    .unwrap();
    let n = hwc_agent_runner::repo::trim_outputs(&store, i64::MAX)
        .await
        .unwrap();
    assert!(n >= 2, "{n}");
    let ev = r.events_of(&id, "item.completed").await;
    let tool = ev
        .iter()
        .find(|e| e["data"]["item"]["tool"] == "host_facts")
        .unwrap();
    assert_eq!(
        tool["data"]["item"]["output"],
        "[removed after the retention period]"
    );
    assert_eq!(
        tool["data"]["item"]["output_hash"].as_str().unwrap().len(),
        64
    );
    let progress: String = sqlx::query_scalar("SELECT progress FROM jobs WHERE id = $1")
        .bind(&id)
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert!(!progress.contains("load average"), "{progress}");
    // The report and the audit stay.
    let rep: Value = r
        .get(&format!("/agent/jobs/{id}/report"), RITA)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rep["summary"], "up");
    assert!(r
        .audit(&id)
        .await
        .iter()
        .any(|a| a["kind"] == "action_finished" && a["output_hash"].is_string()));
    r.stop().await;
}
