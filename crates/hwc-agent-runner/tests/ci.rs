//! The `ci` tool in real jobs, against a SCRIPTED GitHub Actions REST
//! server (`hwc_testkit::actions`: neither GitHub nor Forgejo can be
//! installed on this machine; the fake follows GitHub's documented shapes,
//! which Forgejo and Gitea serve for their Actions too). A trigger runs at
//! R1 without an approval, finds its run, waits for it within the bound and
//! reports the failed step; logs come back through the API's redirect; a
//! deploy to production waits for two approvers with a rollback to the
//! last good commit; an API answering 500, a refused token and an unknown
//! run are errors the model reads, and the job goes on.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{finish, Runner};
use hwc_testkit::actions::{Advance, Conclusion, FakeActions, JobPlan, RunPlan};
use hwc_testkit::scripted::{tool_call, Upstream};
use serde_json::json;

const TOKEN: &str = "ghp_test_token";

/// One completed deploy before the test, so a deploy's rollback has a
/// last good commit to name.
async fn seed_deploy(ci: &FakeActions) -> String {
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}/repos/ops/web/actions{p}", ci.url());
    let s = http
        .post(url("/workflows/deploy.yml/dispatches"))
        .bearer_auth(TOKEN)
        .json(&json!({"ref": "main"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(s, 204);
    loop {
        let run: serde_json::Value = http
            .get(url("/runs/1000"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if run["status"] == "completed" {
            return run["head_sha"].as_str().unwrap().to_string();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_are_triggered_watched_and_read_within_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ci = FakeActions::start(TOKEN).await;
    ci.add_workflow(
        "ops/web",
        "build.yml",
        RunPlan::failure()
            .queued(Advance::Polls(1))
            .in_progress(Advance::Polls(2))
            .jobs(vec![
                JobPlan::new("lint", &["cargo clippy", "ok"]).concluding(Conclusion::Success),
                JobPlan::new("test", &["running 12 tests", "FAILED test_router_fallback"])
                    .steps(&["Checkout", "cargo test"]),
            ]),
    );
    ci.add_workflow("ops/web", "deploy.yml", RunPlan::success());
    let good = seed_deploy(&ci).await;
    let down = FakeActions::start(TOKEN).await;
    down.add_workflow("ops/web", "build.yml", RunPlan::success());
    down.fail_next(500, 1000);

    std::fs::write(d.join("ci.token"), TOKEN).unwrap();
    std::fs::write(d.join("stale.token"), "ghp_revoked").unwrap();
    let pipe = |name: &str, url: &str, wf: &str, tok: &str, extra: &str| {
        format!(
            "[[tools.ci.pipelines]]\nname = \"{name}\"\napi_url = \"{url}\"\nrepository = \"ops/web\"\n\
             workflow = \"{wf}\"\ntoken_file = \"{}\"\n{extra}\n",
            d.join(tok).display()
        )
    };
    let extra = [
        "[tools.ci]\npoll_every = \"50ms\"\nrequest_timeout = \"5s\"\n".to_string(),
        pipe("build", &ci.url(), "build.yml", "ci.token", ""),
        pipe(
            "deploy-web",
            &ci.url(),
            "deploy.yml",
            "ci.token",
            "deploy = true\nenvironment = \"prod\"",
        ),
        pipe("flaky", &down.url(), "build.yml", "ci.token", ""),
        pipe("stale", &ci.url(), "build.yml", "stale.token", ""),
    ]
    .concat();
    let up = Upstream::start(
        vec![
            tool_call(
                "ci",
                r#"{"action": "trigger", "pipeline": "build", "wait_seconds": 30}"#,
            ),
            tool_call(
                "ci",
                r#"{"action": "logs", "pipeline": "build", "run_id": 1001}"#,
            ),
            tool_call(
                "ci",
                r#"{"action": "status", "pipeline": "build", "run_id": 4242}"#,
            ),
            tool_call("ci", r#"{"action": "runs", "pipeline": "flaky"}"#),
            tool_call("ci", r#"{"action": "runs", "pipeline": "stale"}"#),
            tool_call(
                "ci",
                r#"{"action": "trigger", "pipeline": "deploy-web", "ref": "main"}"#,
            ),
        ],
        tool_call("finish", &finish("done", &[])),
    )
    .await;
    let r = Runner::start(&up.url(), &extra).await;
    let id = r
        .job(json!({"goal": "why is the build red", "environment": "dev"}))
        .await;
    let v = r.wait_for(&id, &["waiting_approval"]).await;
    // The deploy is production's (the pipeline's environment), so two
    // approvers, and its rollback names the last good commit.
    assert_eq!(v["pending"]["risk"], "R3", "{v}");
    assert_eq!(
        v["pending"]["summary"], "ci deploy deploy-web --ref main",
        "{v}"
    );
    let rollback = v["pending"]["rollback"].as_str().unwrap_or_default();
    assert!(
        rollback.contains(&good) && rollback.contains("run 1000"),
        "{v}"
    );

    // What the tools answered, as the model last saw them.
    let last = up.request(up.calls() - 1).2;
    let told: String = last["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| format!("{}\n", m["content"].as_str().unwrap_or_default()))
        .collect();
    for want in [
        // The trigger found its run, waited and named the failed step.
        "triggered build.yml on main: run 1001",
        "job 20002 `test`: failure (step 2 `cargo test` failed)",
        // Logs through the redirect, the failed job first.
        "--- job `test` (failure) ---",
        "FAILED test_router_fallback",
        "answered 404: not found",
        "answered 500: the CI API failed (Server Error)",
        "answered 401: the CI API refused the token in",
    ] {
        assert!(
            told.contains(want),
            "{want:?} not told to the model: {told}"
        );
    }
    let runs = ci.runs();
    assert_eq!(
        runs.len(),
        2,
        "the seed and the build; the deploy waits: {runs:?}"
    );
    assert_eq!(
        (runs[1].workflow.as_str(), runs[1].git_ref.as_str()),
        ("build.yml", "main")
    );
    let decisions = r.events_of(&id, "policy.decision").await;
    let trigger = decisions
        .iter()
        .find(|e| e["data"]["summary"] == "ci trigger build --ref main")
        .unwrap_or_else(|| panic!("{decisions:?}"));
    assert_eq!(trigger["data"]["risk"], "R1", "{trigger}");
    assert_eq!(trigger["data"]["verdict"], "allow", "{trigger}");
    let refused: Vec<_> = ci
        .requests()
        .into_iter()
        .filter(|q| !q.auth_ok && !q.path.contains("/_blob/"))
        .collect();
    assert_eq!(
        refused.len(),
        1,
        "only the stale pipeline's token: {refused:?}"
    );
    r.stop().await;
}
