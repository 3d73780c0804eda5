//! The tools against real peers: git (hooks never run, a commit's and a
//! push's rollback are the refs before, a push really lands), workspace
//! files (a write's reverse patch really restores the file, patches are
//! checked before they are proposed), HTTP GET and a real Prometheus
//! (Debian's, started here).
#![allow(clippy::unwrap_used, missing_docs)]

use hwc_agent_runner::config::ToolsConfig;
use hwc_agent_runner::sandbox::SandboxConfig;
use hwc_agent_runner::tools::{Ctx, PlanSubject, Toolbox};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn ctx(ws: &Path) -> Ctx {
    Ctx {
        workspace: ws.to_path_buf(),
        // A plain repository here: its git directory is its own .git.
        git_dir: ws.join(".git").is_dir().then(|| ws.join(".git")),
        environment: "dev".into(),
        host: "test-host".into(),
        sandbox: SandboxConfig::default(),
        hidden: Vec::new(),
        tools: ToolsConfig::default(),
        http: reqwest::Client::new(),
        systemd: Arc::new(hwc_ai_core::systemd::Systemd::default()),
        knowledge: None,
    }
}

async fn call(
    c: &Ctx,
    tool: &str,
    args: Value,
) -> Result<
    (
        hwc_agent_runner::tools::Planned,
        hwc_agent_runner::tools::ToolOutput,
    ),
    String,
> {
    let tb = Toolbox::all();
    let t = tb.get(tool).unwrap();
    let p = t.plan(&args, c).await.map_err(|e| e.0)?;
    let o = t.run(&p, c).await.map_err(|e| e.0)?;
    Ok((p, o))
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn git_commits_and_pushes_with_hooks_off_and_rollbacks_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let (ws, remote) = (tmp.path().join("ws"), tmp.path().join("remote.git"));
    std::fs::create_dir(&ws).unwrap();
    git(
        tmp.path(),
        &["init", "-q", "--bare", remote.to_str().unwrap()],
    );
    git(&ws, &["init", "-q", "-b", "main"]);
    git(&ws, &["config", "user.name", "agent"]);
    git(&ws, &["config", "user.email", "agent@example.invalid"]);
    git(&ws, &["remote", "add", "origin", remote.to_str().unwrap()]);
    std::fs::write(ws.join("a.txt"), "one\n").unwrap();
    git(&ws, &["add", "a.txt"]);
    git(&ws, &["commit", "-qm", "first"]);
    let first = git(&ws, &["rev-parse", "HEAD"]);
    // A hook that would run code if git ran hooks.
    let marker = tmp.path().join("hook-ran");
    let hook = ws.join(".git/hooks/pre-commit");
    std::fs::write(&hook, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    Command::new("chmod").arg("+x").arg(&hook).status().unwrap();

    let c = ctx(&ws);
    std::fs::write(ws.join("a.txt"), "two\n").unwrap();
    call(&c, "git", json!({"command": "add", "args": ["a.txt"]}))
        .await
        .unwrap();
    let (p, o) = call(
        &c,
        "git",
        json!({"command": "commit", "args": ["-m", "second"]}),
    )
    .await
    .unwrap();
    assert!(o.ok, "{}", o.text);
    assert_eq!(
        p.rollback.as_deref(),
        Some(format!("git reset --soft {first} (HEAD before the commit)").as_str())
    );
    assert_eq!(
        p.subject,
        PlanSubject::Commands(vec![vec![
            "git".into(),
            "commit".into(),
            "-m".into(),
            "second".into()
        ]])
    );
    assert!(!marker.exists(), "a hook ran");
    let (p, o) = call(
        &c,
        "git",
        json!({"command": "push", "args": ["origin", "main"]}),
    )
    .await
    .unwrap();
    assert!(o.ok, "{}", o.text);
    assert!(p
        .rollback
        .unwrap()
        .contains("git push origin --delete main (it did not exist on origin before)"));
    assert_eq!(
        git(&remote, &["rev-parse", "main"]),
        git(&ws, &["rev-parse", "HEAD"])
    );
    let (p, _) = call(
        &c,
        "git",
        json!({"command": "push", "args": ["origin", "main"]}),
    )
    .await
    .unwrap();
    assert!(
        p.rollback
            .unwrap()
            .starts_with("git push --force-with-lease origin "),
        "the second push knows the ref before it"
    );
    let err = call(
        &c,
        "git",
        json!({"command": "push", "args": ["--receive-pack=touch /tmp/x", "origin"]}),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("`--receive-pack=touch /tmp/x` is refused"),
        "{err}"
    );
    let (_, o) = call(&c, "git", json!({"command": "log", "args": ["--oneline"]}))
        .await
        .unwrap();
    assert!(
        o.text.contains("second") && o.text.contains("first"),
        "{}",
        o.text
    );
}

#[tokio::test]
async fn a_writes_rollback_restores_the_file_and_patches_are_checked_first() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    std::fs::write(ws.join("config.toml"), "port = 1\nname = \"x\"\n").unwrap();
    let c = ctx(ws);
    let (p, o) = call(
        &c,
        "write_file",
        json!({"path": "config.toml", "content": "port = 2\nname = \"x\"\n"}),
    )
    .await
    .unwrap();
    assert!(o.ok);
    assert_eq!(o.changes, ["config.toml"]);
    let rollback = p.rollback.unwrap();
    let reverse = rollback.split_once(":\n").unwrap().1;
    // The recorded rollback, applied with git apply, restores the original.
    let (_, o) = call(&c, "apply_patch", json!({"patch": reverse}))
        .await
        .unwrap();
    assert!(o.ok, "{}", o.text);
    assert_eq!(
        std::fs::read_to_string(ws.join("config.toml")).unwrap(),
        "port = 1\nname = \"x\"\n"
    );
    // A new file's rollback is its deletion.
    let (p, _) = call(
        &c,
        "write_file",
        json!({"path": "docs/new.md", "content": "hi\n"}),
    )
    .await
    .unwrap();
    assert_eq!(
        p.rollback.as_deref(),
        Some("delete docs/new.md (it did not exist before)")
    );
    // A patch that does not apply is refused at planning, with git's reason.
    let bad = "--- a/config.toml\n+++ b/config.toml\n@@ -1 +1 @@\n-port = 9\n+port = 3\n";
    let err = call(&c, "apply_patch", json!({"patch": bad}))
        .await
        .unwrap_err();
    assert!(err.contains("the patch does not apply"), "{err}");
    let escape = "--- a/../outside\n+++ b/../outside\n@@ -0,0 +1 @@\n+x\n";
    let err = call(&c, "apply_patch", json!({"patch": escape}))
        .await
        .unwrap_err();
    assert!(err.contains("leaves the workspace"), "{err}");
    // Reads and searches stay inside.
    let (_, o) = call(&c, "read_file", json!({"path": "config.toml"}))
        .await
        .unwrap();
    assert!(o.text.contains("    1  port = 1"), "{}", o.text);
    let (_, o) = call(&c, "search_files", json!({"pattern": "port"}))
        .await
        .unwrap();
    assert!(o.text.contains("config.toml:1:port = 1"), "{}", o.text);
}

#[tokio::test]
async fn prometheus_queries_a_real_prometheus_and_http_get_reads_status() {
    let Some(prom) = hwc_testkit::daemon::which("prometheus") else {
        panic!("prometheus missing: scripts/setup.sh installs Debian's prometheus package");
    };
    let tmp = tempfile::tempdir().unwrap();
    let port = hwc_testkit::free_port();
    std::fs::write(
        tmp.path().join("prometheus.yml"),
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"),
    )
    .unwrap();
    let mut child = hwc_testkit::held_by_pipe(&prom, Some(&tmp.path().join("prom.log")))
        .arg(format!(
            "--config.file={}",
            tmp.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            tmp.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .spawn()
        .unwrap();
    let mut c = ctx(tmp.path());
    c.tools.prometheus_url = format!("http://127.0.0.1:{port}");
    let t0 = Instant::now();
    let text = loop {
        if let Ok((_, o)) = call(&c, "prometheus_query", json!({"query": "up"})).await {
            if o.ok && o.text.contains("\"value\"") {
                break o.text;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no sample of `up` from the real Prometheus"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        text.starts_with("HTTP 200") && text.contains("\"job\":\"self\""),
        "{text}"
    );
    let (p, o) = call(
        &c,
        "prometheus_query",
        json!({"query": "up", "range_minutes": 5, "step_seconds": 1}),
    )
    .await
    .unwrap();
    assert!(
        o.ok && o.text.contains("\"resultType\":\"matrix\""),
        "{}",
        o.text
    );
    assert_eq!(
        p.subject,
        PlanSubject::Commands(vec![vec![
            "prometheus".into(),
            "query_range".into(),
            "up".into()
        ]])
    );
    let (p, o) = call(
        &c,
        "http_get",
        json!({"url": format!("http://127.0.0.1:{port}/-/ready")}),
    )
    .await
    .unwrap();
    assert!(o.ok && o.text.starts_with("HTTP 200"), "{}", o.text);
    assert_eq!(p.summary, format!("GET http://127.0.0.1:{port}/-/ready"));
    assert!(
        call(&c, "http_get", json!({"url": "http://user:pw@127.0.0.1/"}))
            .await
            .unwrap_err()
            .contains("credentials")
    );
    drop(child.stdin.take());
    let _ = child.wait();
}
