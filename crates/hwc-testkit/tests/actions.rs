//! The scripted GitHub Actions API (`hwc_testkit::actions`) answers as
//! GitHub documents it. A scripted server, not a real GitHub or Forgejo:
//! neither can be installed here.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use hwc_testkit::actions::{Advance, Conclusion, FakeActions, JobPlan, RunPlan};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

const TOKEN: &str = "ghp_test";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A request as GitHub's docs show it: Bearer token, the JSON media type,
/// an API version header.
fn gh(c: &reqwest::Client, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
    c.request(method, url)
        .bearer_auth(TOKEN)
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
}

async fn get_json(c: &reqwest::Client, url: String) -> Value {
    let r = gh(c, reqwest::Method::GET, url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn dispatch(c: &reqwest::Client, fake: &FakeActions, wf: &str, body: Value) -> StatusCode {
    gh(
        c,
        reqwest::Method::POST,
        format!(
            "{}/repos/acme/app/actions/workflows/{wf}/dispatches",
            fake.url()
        ),
    )
    .json(&body)
    .send()
    .await
    .unwrap()
    .status()
}

#[tokio::test]
async fn dispatch_is_204_and_the_run_is_listed_newest_first() {
    let fake = FakeActions::start(TOKEN).await;
    let id = fake.add_workflow("acme/app", "deploy.yml", RunPlan::success());
    let c = client();
    let body = json!({"ref": "main", "inputs": {"env": "staging"}});
    assert_eq!(
        dispatch(&c, &fake, "deploy.yml", body).await,
        StatusCode::NO_CONTENT
    );
    // The numeric workflow id works too.
    let body = json!({"ref": "release", "inputs": {"env": "prod"}});
    assert_eq!(
        dispatch(&c, &fake, &id.to_string(), body).await,
        StatusCode::NO_CONTENT
    );

    let runs = fake.runs();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].id, 1000);
    assert_eq!(runs[0].git_ref, "main");
    assert_eq!(runs[0].inputs, json!({"env": "staging"}));

    let base = format!(
        "{}/repos/acme/app/actions/workflows/deploy.yml/runs",
        fake.url()
    );
    let list = get_json(&c, format!("{base}?event=workflow_dispatch")).await;
    assert_eq!(list["total_count"], 2);
    assert_eq!(list["workflow_runs"][0]["id"], 1001);
    assert_eq!(list["workflow_runs"][1]["id"], 1000);
    let run = &list["workflow_runs"][1];
    assert_eq!(run["status"], "queued");
    assert_eq!(run["conclusion"], Value::Null);
    assert_eq!(run["event"], "workflow_dispatch");
    assert_eq!(run["head_branch"], "main");
    assert_eq!(run["head_sha"].as_str().unwrap().len(), 40);
    assert_eq!(run["run_attempt"], 1);
    assert!(run["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(run["html_url"]
        .as_str()
        .unwrap()
        .ends_with("/acme/app/actions/runs/1000"));
    assert!(run["jobs_url"]
        .as_str()
        .unwrap()
        .ends_with("/repos/acme/app/actions/runs/1000/jobs"));

    let only_main = get_json(&c, format!("{base}?branch=main&per_page=10")).await;
    assert_eq!(only_main["total_count"], 1);
    let one = get_json(&c, format!("{base}?per_page=1")).await;
    assert_eq!(one["total_count"], 2);
    assert_eq!(one["workflow_runs"].as_array().unwrap().len(), 1);
    let pushes = get_json(&c, format!("{base}?event=push")).await;
    assert_eq!(pushes["total_count"], 0);

    let created = runs[0].id;
    let since = get_json(&c, format!("{base}?created=%3E%3D2000-01-01T00:00:00Z")).await;
    assert_eq!(since["total_count"], 2);
    let future = get_json(&c, format!("{base}?created=>=2999-01-01")).await;
    assert_eq!(future["total_count"], 0, "run {created} is not from 2999");

    // The header GitHub documents was sent and recorded.
    let reqs = fake.requests();
    assert!(reqs.iter().all(|r| r.auth_ok));
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].body["ref"], "main");
    assert_eq!(reqs[0].api_version.as_deref(), Some("2022-11-28"));
    assert_eq!(reqs[2].query, "event=workflow_dispatch");
}

#[tokio::test]
async fn polling_advances_queued_in_progress_completed() {
    let fake = FakeActions::start(TOKEN).await;
    let plan = RunPlan::success()
        .queued(Advance::Polls(2))
        .in_progress(Advance::Polls(1));
    fake.add_workflow("acme/app", "ci.yml", plan);
    let c = client();
    assert_eq!(
        dispatch(&c, &fake, "ci.yml", json!({"ref": "main"})).await,
        StatusCode::NO_CONTENT
    );
    let url = format!("{}/repos/acme/app/actions/runs/1000", fake.url());
    let mut seen = Vec::new();
    for _ in 0..5 {
        let run = get_json(&c, url.clone()).await;
        seen.push((run["status"].clone(), run["conclusion"].clone()));
    }
    assert_eq!(
        seen,
        vec![
            (json!("queued"), Value::Null),
            (json!("queued"), Value::Null),
            (json!("in_progress"), Value::Null),
            (json!("completed"), json!("success")),
            (json!("completed"), json!("success")),
        ]
    );
    assert_eq!(fake.runs()[0].conclusion, Some("success"));
}

#[tokio::test]
async fn timed_plan_completes_with_failure() {
    let fake = FakeActions::start(TOKEN).await;
    let plan = RunPlan::failure()
        .queued(Advance::For(Duration::from_secs(1)))
        .in_progress(Advance::For(Duration::from_millis(200)));
    fake.add_workflow("acme/app", "ci.yml", plan);
    let c = client();
    dispatch(&c, &fake, "ci.yml", json!({"ref": "main"})).await;
    let url = format!("{}/repos/acme/app/actions/runs/1000", fake.url());
    assert_eq!(get_json(&c, url.clone()).await["status"], "queued");
    tokio::time::sleep(Duration::from_millis(1400)).await;
    let run = get_json(&c, url).await;
    assert_eq!(run["status"], "completed");
    assert_eq!(run["conclusion"], "failure");
}

#[tokio::test]
async fn jobs_listed_and_logs_follow_the_redirect() {
    let fake = FakeActions::start(TOKEN).await;
    let plan = RunPlan::failure()
        .queued(Advance::Polls(0))
        .in_progress(Advance::Polls(0))
        .jobs(vec![
            JobPlan::new("lint", &["cargo clippy", "clean"]).concluding(Conclusion::Success),
            JobPlan::new("test", &["cargo test", "##[error]1 test failed"]),
        ]);
    fake.add_workflow("acme/app", "ci.yml", plan);
    let c = client();
    let r = gh(
        &c,
        reqwest::Method::POST,
        format!(
            "{}/repos/acme/app/actions/workflows/ci.yml/dispatches",
            fake.url()
        ),
    )
    .json(&json!({"ref": "main", "return_run_details": true}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let details: Value = r.json().await.unwrap();
    assert_eq!(details["workflow_run_id"], 1000);
    assert!(details["run_url"]
        .as_str()
        .unwrap()
        .ends_with("/repos/acme/app/actions/runs/1000"));

    let jobs = get_json(
        &c,
        format!("{}/repos/acme/app/actions/runs/1000/jobs", fake.url()),
    )
    .await;
    assert_eq!(jobs["total_count"], 2);
    let lint = &jobs["jobs"][0];
    let test = &jobs["jobs"][1];
    assert_eq!(lint["name"], "lint");
    assert_eq!(lint["run_id"], 1000);
    assert_eq!(lint["status"], "completed");
    assert_eq!(lint["conclusion"], "success");
    assert_eq!(test["conclusion"], "failure");
    let steps = test["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[0]["number"], 1);
    assert_eq!(steps[0]["conclusion"], "success");
    assert_eq!(steps[2]["conclusion"], "failure");
    assert!(test["completed_at"].is_string());

    let job_id = test["id"].as_u64().unwrap();
    let logs_url = format!("{}/repos/acme/app/actions/jobs/{job_id}/logs", fake.url());
    // The API answers 302 with a Location …
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = gh(&no_follow, reqwest::Method::GET, logs_url.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&fake.url()));
    // … which needs no token, and serves GitHub's timestamped lines.
    let text = no_follow
        .get(&location)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // A followed redirect gives the same text.
    let followed = gh(&c, reqwest::Method::GET, logs_url).send().await.unwrap();
    assert_eq!(followed.status(), StatusCode::OK);
    assert!(followed.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(followed.text().await.unwrap(), text);

    let text = text.trim_start_matches('\u{feff}');
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    let (stamp, rest) = lines[1].split_once(' ').unwrap();
    assert_eq!(rest, "##[error]1 test failed");
    // 2026-12-01T10:00:00.0000000Z
    assert_eq!(stamp.len(), 28);
    assert_eq!(&stamp[10..11], "T");
    assert_eq!(&stamp[19..20], ".");
    assert!(stamp.ends_with('Z'));

    let bad = no_follow
        .get(location.replace("sig=", "sig=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn logs_are_not_found_until_the_job_completes_and_cancel_ends_it() {
    let fake = FakeActions::start(TOKEN).await;
    fake.add_workflow(
        "acme/app",
        "ci.yml",
        RunPlan::success().queued(Advance::Polls(100)),
    );
    let c = client();
    dispatch(&c, &fake, "ci.yml", json!({"ref": "main"})).await;
    let job = fake.runs()[0].job_ids[0];
    let logs = format!("{}/repos/acme/app/actions/jobs/{job}/logs", fake.url());
    let r = gh(&c, reqwest::Method::GET, logs.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let cancel = format!("{}/repos/acme/app/actions/runs/1000/cancel", fake.url());
    let r = gh(&c, reqwest::Method::POST, cancel.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let run = get_json(
        &c,
        format!("{}/repos/acme/app/actions/runs/1000", fake.url()),
    )
    .await;
    assert_eq!(run["status"], "completed");
    assert_eq!(run["conclusion"], "cancelled");
    let r = gh(&c, reqwest::Method::POST, cancel).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = gh(&c, reqwest::Method::GET, logs).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_or_missing_token_is_401() {
    let fake = FakeActions::start(TOKEN).await;
    fake.add_workflow("acme/app", "ci.yml", RunPlan::success());
    let c = client();
    let url = format!(
        "{}/repos/acme/app/actions/workflows/ci.yml/runs",
        fake.url()
    );
    let r = c.get(&url).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["message"], "Bad credentials");
    assert!(body["documentation_url"].is_string());
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // The older `token` scheme is accepted.
    let r = c
        .get(&url)
        .header("Authorization", format!("token {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A rejected dispatch creates nothing.
    let r = c
        .post(format!(
            "{}/repos/acme/app/actions/workflows/ci.yml/dispatches",
            fake.url()
        ))
        .bearer_auth("wrong")
        .json(&json!({"ref": "main"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(fake.runs().is_empty());
    let auth: Vec<bool> = fake.requests().iter().map(|r| r.auth_ok).collect();
    assert_eq!(auth, vec![false, false, true, false]);
}

#[tokio::test]
async fn unknown_workflow_repo_or_run_is_404() {
    let fake = FakeActions::start(TOKEN).await;
    fake.add_workflow("acme/app", "ci.yml", RunPlan::success());
    let c = client();
    assert_eq!(
        dispatch(&c, &fake, "nope.yml", json!({"ref": "main"})).await,
        StatusCode::NOT_FOUND
    );
    for path in [
        "/repos/acme/other/actions/workflows/ci.yml/runs",
        "/repos/acme/app/actions/runs/4242",
        "/repos/acme/app/actions/jobs/4242/logs",
        "/repos/acme/app/actions/nothing",
    ] {
        let r = gh(&c, reqwest::Method::GET, format!("{}{path}", fake.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["message"], "Not Found", "{path}");
    }
    // A missing ref is GitHub's 422.
    assert_eq!(
        dispatch(&c, &fake, "ci.yml", json!({"inputs": {}})).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert!(fake.runs().is_empty());
}

#[tokio::test]
async fn fail_next_then_recovers_and_hang_next_times_out() {
    let fake = FakeActions::start(TOKEN).await;
    fake.add_workflow("acme/app", "ci.yml", RunPlan::success());
    let c = client();
    fake.fail_next(500, 2);
    for _ in 0..2 {
        let r = gh(
            &c,
            reqwest::Method::POST,
            format!(
                "{}/repos/acme/app/actions/workflows/ci.yml/dispatches",
                fake.url()
            ),
        )
        .json(&json!({"ref": "main"}))
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["message"], "Server Error");
    }
    assert!(fake.runs().is_empty(), "a failed dispatch creates no run");
    assert_eq!(
        dispatch(&c, &fake, "ci.yml", json!({"ref": "main"})).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(fake.runs().len(), 1);

    fake.hang_next();
    let url = format!("{}/repos/acme/app/actions/runs/1000", fake.url());
    let r = gh(&c, reqwest::Method::GET, url.clone())
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(r.unwrap_err().is_timeout());
    // Only one request hangs.
    assert_eq!(get_json(&c, url).await["id"], 1000);
}
