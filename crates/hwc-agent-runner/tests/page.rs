//! The approval page: its HTTP contract (no auth for the static files,
//! the browser security headers, the `Origin` guard on the API) and the
//! page itself end to end in headless Chromium (Debian's `chromium`,
//! driven by npm `playwright-core`, both installed by scripts/setup.sh):
//! tests/page/approval.cjs signs in as each person and clicks through an
//! R2 approval (refused for the requester, given by an approver, the job
//! finishing in the live timeline), an R3 approval (the first approver
//! shown, refused twice, completed by a second one), a rejection, markup
//! in commands, rollbacks, output and reports rendered as text, a stream
//! resumed with `Last-Event-ID`, and another site's form refused.
//!
//! With `HWC_SCREENSHOTS=DIR` (relative: to the repository root) the
//! script writes the screenshots docs/agent-runner.md shows. Without
//! chromium, node or playwright-core the browser test is skipped with a
//! message, except under `CI=true`, where a missing peer fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{finish, Runner, ALICE, BOB, CAROL, RITA, ROOT};
use hwc_testkit::scripted::{tool_call, Act, Upstream};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn shell(cmd: &str, rollback: &str) -> Act {
    tool_call(
        "shell",
        &json!({"command": cmd, "rollback": rollback}).to_string(),
    )
}

fn done() -> Act {
    tool_call("finish", &finish("done", &[]))
}

fn script() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/page/approval.cjs"
    ))
}

fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The playwright-core package: `HWC_PLAYWRIGHT_CORE`, else where
/// scripts/setup.sh puts it.
fn playwright() -> PathBuf {
    std::env::var_os("HWC_PLAYWRIGHT_CORE")
        .map(PathBuf::from)
        .unwrap_or_else(|| hwc_testkit::llama::cache().join("npm/node_modules/playwright-core"))
}

/// The browser: `HWC_CHROMIUM`, else Debian's.
fn chromium() -> PathBuf {
    std::env::var_os("HWC_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// The missing peers, if any.
fn missing() -> Vec<String> {
    let mut m = Vec::new();
    if Command::new("node").arg("--version").output().is_err() {
        m.push("node (Debian package nodejs)".into());
    }
    if !playwright().join("package.json").exists() {
        m.push(format!("{} (npm playwright-core)", playwright().display()));
    }
    if !chromium().exists() {
        m.push(format!(
            "{} (Debian package chromium)",
            chromium().display()
        ));
    }
    m
}

/// False (after saying why) when a peer is missing outside CI; a panic
/// under `CI=true`.
fn peers_present() -> bool {
    let m = missing();
    if m.is_empty() {
        return true;
    }
    let msg = format!(
        "approval page peers missing: {}; run scripts/setup.sh",
        m.join(", ")
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
    eprintln!("SKIPPED: {msg}");
    false
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn the_page_is_served_without_auth_with_strict_headers_and_other_origins_cannot_post() {
    let up = Upstream::start(vec![], done()).await;
    let r = Runner::start(
        &up.url(),
        "\n[ui]\nallowed_origins = [\"https://agent.example.org\"]\n",
    )
    .await;
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let root = plain.get(format!("{}/", r.url)).send().await.unwrap();
    assert_eq!(root.status(), 303);
    assert_eq!(header(&root, "location"), "/ui/");
    let page = plain.get(format!("{}/ui/", r.url)).send().await.unwrap();
    assert_eq!(page.status(), 200, "the page needs no token");
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    let csp = header(&page, "content-security-policy");
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header(&page, "x-frame-options"), "DENY");
    assert_eq!(header(&page, "referrer-policy"), "no-referrer");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    assert_eq!(header(&page, "cache-control"), "no-cache");
    let body = page.text().await.unwrap();
    assert!(body.contains("/ui/app.js"), "{body}");
    for asset in ["/ui/app.js", "/ui/app.css", "/ui/favicon.svg"] {
        let a = plain.get(format!("{}{asset}", r.url)).send().await.unwrap();
        assert_eq!(a.status(), 200, "{asset}");
        let tag = header(&a, "etag").to_string();
        let again = plain
            .get(format!("{}{asset}", r.url))
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{asset} {tag}");
    }
    // The data is not: the API still wants a token, and says who it is.
    let anon = plain
        .get(format!("{}/agent/jobs", r.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    assert_eq!(header(&anon, "cache-control"), "no-store");
    assert_eq!(
        r.get_json("/agent/whoami", CAROL).await,
        json!({"name": "carol", "role": "approver"})
    );
    // A POST from another site's page is refused before anything else.
    let host = r.url.trim_start_matches("http://").to_string();
    let post = |origin: Option<&str>| {
        let mut b = r
            .post("/agent/jobs", ALICE)
            .json(&json!({"goal": "uptime", "environment": "dev", "max_steps": 1}));
        if let Some(o) = origin {
            b = b.header("origin", o);
        }
        b.send()
    };
    for evil in ["http://evil.example", "null", "http://localhost:1"] {
        let resp = post(Some(evil)).await.unwrap();
        assert_eq!(resp.status(), 403, "{evil}");
        let e: Value = resp.json().await.unwrap();
        assert_eq!(e["error"]["code"], "origin_refused", "{e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(evil),
            "{e}"
        );
    }
    let anon_evil = plain
        .post(format!("{}/agent/jobs/x/cancel", r.url))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(anon_evil.status(), 403, "refused before authentication");
    let own = format!("http://{host}");
    for ok in [None, Some(own.as_str()), Some("https://agent.example.org")] {
        assert_eq!(post(ok).await.unwrap().status(), 201, "{ok:?}");
    }
    // A GET with a foreign Origin changes nothing and is answered.
    let listed = r
        .get("/agent/jobs", RITA)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    // A configured origin that is not one fails the config check.
    let bad = hwc_ai_core::config::load_str::<hwc_agent_runner::config::RunnerConfig>(&format!(
        "{}\n[ui]\nallowed_origins = [\"https://agent.example.org/ui/\"]\n",
        common::base_toml(&r.dir, &up.url())
    ))
    .unwrap_err()
    .to_string();
    assert!(bad.contains("is not an origin"), "{bad}");
    r.stop().await;
}

/// Where `HWC_SCREENSHOTS` points, relative to the repository root.
fn screenshots() -> Option<PathBuf> {
    let d = std::env::var_os("HWC_SCREENSHOTS")?;
    let p = Path::new(&d);
    Some(if p.is_absolute() {
        p.to_path_buf()
    } else {
        repo_root().join(p)
    })
}

#[tokio::test]
async fn the_page_in_chromium_approves_refuses_and_renders_untrusted_text_inertly() {
    if !peers_present() {
        return;
    }
    // One model for four jobs started one after another (each waits for
    // approval, or ends, before the next asks the model): d investigates,
    // a proposes an R2 action, b an R3 one, c an R2 one full of markup;
    // every later turn finishes.
    let up = Upstream::start(
        vec![
            shell(
                "echo '<img src=x onerror=window.__xss=3>'",
                "nothing to undo",
            ),
            tool_call(
                "finish",
                &finish(
                    "<script>window.__xss=6</script> the host answers",
                    &[("echo printed <i>markup</i>", &[8])],
                ),
            ),
            shell("kill -0 1", "nothing to undo"),
            shell(
                "git push --force origin main",
                "push the previous head back",
            ),
            shell(
                "kill -0 1 '<script>window.__xss=1</script><img src=x onerror=window.__xss=2>'",
                "<img src=x onerror=\"window.__xss=4\">",
            ),
        ],
        done(),
    )
    .await;
    let r = Runner::start(&up.url(), "").await;
    let d = r
        .job(json!({"goal": "how long is <i>uptime</i>?", "environment": "dev"}))
        .await;
    assert_eq!(
        r.wait_for(&d, &["completed", "failed"]).await["state"],
        "completed"
    );
    let a = r
        .job(json!({"goal": "check that init answers signals", "environment": "prod"}))
        .await;
    r.wait_for(&a, &["waiting_approval"]).await;
    let b = r
        .job_as(
            BOB,
            json!({"goal": "publish the rewritten main branch", "environment": "dev"}),
        )
        .await;
    assert_eq!(
        r.wait_for(&b, &["waiting_approval"]).await["pending"]["risk"],
        "R3"
    );
    let c = r
        .job(json!({"goal": "signal init, says a log line", "environment": "prod"}))
        .await;
    r.wait_for(&c, &["waiting_approval"]).await;

    let cfg = json!({
        "url": r.url,
        "tokens": {"alice": ALICE, "bob": BOB, "carol": CAROL, "rita": RITA, "root": ROOT},
        "jobs": {"a": a, "b": b, "c": c, "d": d},
    });
    let mut cmd = Command::new("node");
    cmd.arg(script())
        .env("HWC_PAGE", cfg.to_string())
        .env("HWC_PLAYWRIGHT_CORE", playwright())
        .env("HWC_CHROMIUM", chromium());
    match screenshots() {
        Some(dir) => cmd.env("HWC_SCREENSHOTS", dir),
        None => cmd.env_remove("HWC_SCREENSHOTS"),
    };
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("cannot run node"))
        .await
        .unwrap();
    let said = format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the page test failed:\n{said}");
    eprintln!("{said}");

    // What the clicks did, as the runner recorded it.
    let mut actions = Vec::new();
    for id in [&a, &b, &c] {
        assert_eq!(r.view(id).await["state"], "completed", "{id}");
        let rep = r.get_json(&format!("/agent/jobs/{id}/report"), RITA).await;
        actions.push(rep["actions"][0].clone());
    }
    assert_eq!(actions[0]["approvers"], json!(["bob"]));
    assert_eq!(actions[1]["approvers"], json!(["carol", "root"]));
    assert_eq!(actions[2]["state"], "rejected");
    let approvals = r.audit_kind("approval").await;
    let comments: Vec<&str> = approvals
        .iter()
        .map(|e| e["detail"].as_str().unwrap_or(""))
        .collect();
    assert!(
        comments.contains(&"signal 0 only checks that init exists"),
        "{comments:?}"
    );
    let refused: Vec<(String, String)> = r
        .audit_kind("approval_refused")
        .await
        .iter()
        .map(|e| {
            (
                e["operator"].as_str().unwrap().to_string(),
                e["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(refused.len(), 3, "{refused:#?}");
    assert!(refused[0].0 == "alice" && refused[0].1.contains("has role requester"));
    assert!(refused[1].0 == "bob" && refused[1].1.contains("asked for this job"));
    assert!(refused[2].0 == "carol" && refused[2].1.contains("already approved"));
    let rejected = r.events_of(&c, "approval.rejected").await;
    assert_eq!(rejected[0]["data"]["by"], "root");
    // The cross-site form reached the runner and changed nothing.
    assert!(r
        .events_of(&a, "job.state")
        .await
        .iter()
        .all(|e| e["data"]["state"] != "cancelled"));
    if let Some(dir) = screenshots() {
        for name in [
            "approval-page-jobs.png",
            "approval-page-waiting.png",
            "approval-page-r3.png",
            "approval-page-finished.png",
        ] {
            let size = std::fs::metadata(dir.join(name)).unwrap().len();
            assert!(size < 300 * 1024, "{name} is {size} bytes");
        }
    }
    r.stop().await;
}
