//! The binary as an operator and systemd drive it: `--check-config`, the
//! systemd contract, `policy` and `audit` commands, and what a SIGKILL
//! does: no acknowledged record lost, the chain still verifies, and an
//! action that was running is reported as interrupted, never re-run.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{ALICE, RITA};
use hwc_testkit::daemon::{assert_check_config_rejects, assert_systemd_contract};
use hwc_testkit::scripted::{tool_call, Upstream};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hwc-agent-runner");

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn check_config_accepts_the_example_and_names_what_is_wrong() {
    let creds = tempfile::tempdir().unwrap();
    for f in [
        "agent-alice-token",
        "agent-bob-token",
        "agent-carol-token",
        "agent-admin-token",
        "agent-router-key",
    ] {
        std::fs::write(creds.path().join(f), format!("{f}-secret-value\n")).unwrap();
    }
    std::fs::write(creds.path().join("agent-audit-key"), "11".repeat(32)).unwrap();
    let out = Command::new(BIN)
        .args(["--config", "examples/agent-runner.toml", "--check-config"])
        .current_dir(root())
        .env("CREDENTIALS_DIRECTORY", creds.path())
        .env("STATE_DIRECTORY", creds.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("configuration OK: policy examples/agent-policy.toml"),
        "{stdout}"
    );
    assert!(
        stdout.contains("environments dev, prod, staging"),
        "{stdout}"
    );

    let bad_policy = creds.path().join("bad-policy.toml");
    std::fs::write(&bad_policy, "version = 1\n[environments.dev]\n[[rules]]\nname = \"ls\"\npattern = [\"ls\"]\njustification = \"j\"\nmatch = [\"cat x\"]\n").unwrap();
    let tokens = format!(
        "[[auth.tokens]]\nfile = \"{}\"\nrole = \"admin\"\n",
        creds.path().join("agent-admin-token").display()
    );
    let tokens = tokens.as_str();
    assert_check_config_rejects(
        BIN,
        &[
            ("", "[auth] has no tokens"),
            (
                &format!("{tokens}[store]\nurl = \"mysql://x\"\n"),
                "[store] url = \"mysql://x\" must start with sqlite:// or postgres://",
            ),
            (
                &format!("{tokens}[model]\ntool_calling = \"guess\"\n"),
                "found `guess`, expected ``native` or `json_schema``",
            ),
            (
                &format!("{tokens}[sandbox]\ntimeout = \"2h\"\n"),
                "[sandbox] timeout is longer than max_timeout",
            ),
            (
                &format!("{tokens}[policy]\nfile = \"{}\"\n", bad_policy.display()),
                "rule `ls`: example `cat x` does not match the pattern",
            ),
            (
                &format!("{tokens}[audit]\nsigning_key_file = \"/dev/null\"\n"),
                "audit signing key /dev/null",
            ),
            (
                "[[auth.tokens]]\nfile = \"/nonexistent/token\"\nrole = \"admin\"\n",
                "/nonexistent/token",
            ),
        ],
    );
}

#[test]
fn keeps_the_systemd_contract() {
    assert_systemd_contract(
        BIN,
        "[server]\nlisten = \"{listen}\"\n[[auth.tokens]]\nfile = \"admin-token\"\nrole = \"admin\"\n[model]\nurl = \"http://127.0.0.1:9/v1\"\n",
        &[("admin-token", "tok-admin-systemd-0001")],
    );
}

#[test]
fn policy_commands_check_and_explain() {
    let out = Command::new(BIN)
        .args(["policy", "check", "examples/agent-policy.toml"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("policy OK: "));
    let out = Command::new(BIN)
        .args([
            "policy",
            "explain",
            "--env",
            "prod",
            "--",
            "systemctl",
            "restart",
            "ollama.service",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("decision: needs 1 approval (R2)")
            && text.contains("rule:     fleet-unit-lifecycle"),
        "{text}"
    );
}

struct Proc {
    child: Child,
    port: u16,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary with its state in `dir`, the model at `model`.
fn spawn(dir: &Path, model: &str) -> Proc {
    let toml = common::base_toml(dir, model);
    let port = hwc_testkit::free_port();
    let cfg = dir.join("runner.toml");
    std::fs::write(
        &cfg,
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\n{toml}"),
    )
    .unwrap();
    if !dir.join("audit.key").exists() {
        std::fs::write(dir.join("audit.key"), "22".repeat(32)).unwrap();
    }
    let child = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .env("STATE_DIRECTORY", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while hwc_testkit::http_get(port, "/healthz").map(|r| r.0) != Some(200) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the runner did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Proc { child, port }
}

fn sigkill(p: &mut Proc) {
    let _ = Command::new("kill")
        .args(["-KILL", &p.child.id().to_string()])
        .status();
    let _ = p.child.wait();
}

fn verify(dir: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(dir.join("runner.toml"))
        .args(["audit", "verify"])
        .env("STATE_DIRECTORY", dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn a_sigkill_loses_no_acknowledged_record_and_the_chain_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    // A model nobody answers: jobs are created (and acknowledged) fast.
    let mut p = spawn(dir.path(), "http://127.0.0.1:9/v1");
    let url = format!("http://127.0.0.1:{}/agent/jobs", p.port);
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for i in 0..6 {
        let (url, acked) = (url.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            for n in 0..200 {
                let r = c.post(&url).bearer_auth(ALICE).json(&json!({"goal": format!("job {i}/{n}"), "environment": "dev", "max_steps": 1})).send().await;
                match r {
                    Ok(resp) if resp.status() == 201 => {
                        let v: Value = resp.json().await.unwrap_or(Value::Null);
                        if let Some(id) = v["id"].as_str() {
                            acked.lock().unwrap().push(id.to_string());
                        }
                    }
                    _ => break,
                }
            }
        }));
    }
    let t0 = Instant::now();
    while acked.lock().unwrap().len() < 60 && t0.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sigkill(&mut p);
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 60, "only {} jobs acknowledged", acked.len());
    let (ok, text) = verify(dir.path());
    assert!(ok, "{text}");
    let store = hwc_agent_runner::store::Store::open(&format!(
        "sqlite://{}",
        dir.path().join("runner.db").display()
    ))
    .await
    .unwrap();
    let recorded: Vec<String> =
        sqlx::query_scalar("SELECT job_id FROM audit WHERE kind = 'job_created'")
            .fetch_all(&store.pool)
            .await
            .unwrap();
    let missing: Vec<&String> = acked.iter().filter(|id| !recorded.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not in the audit: {missing:?}"
    );
    // The runner comes back on the same state and the chain goes on.
    let p2 = spawn(dir.path(), "http://127.0.0.1:9/v1");
    let c = reqwest::Client::new();
    let r = c
        .post(format!("http://127.0.0.1:{}/agent/jobs", p2.port))
        .bearer_auth(ALICE)
        .json(&json!({"goal": "after", "environment": "dev"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    drop(p2);
    let (ok, text) = verify(dir.path());
    assert!(ok && text.starts_with("audit OK: "), "{text}");
    // Without the runner's state directory there is no database: an error,
    // not an empty chain that verifies.
    let bare = dir.path().join("bare.toml");
    std::fs::write(
        &bare,
        format!(
            "[[auth.tokens]]\nfile = \"{}\"\nrole = \"admin\"\n",
            dir.path().join("root.token").display()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&bare)
        .args(["audit", "verify"])
        .current_dir(dir.path())
        .env_remove("STATE_DIRECTORY")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no audit database at state/agent-runner.db")
    );
    // And an edit is found by the command, which says where.
    sqlx::query("UPDATE audit SET record = replace(record, 'job 0/1', 'job X/1')")
        .execute(&store.pool)
        .await
        .unwrap();
    let (ok, text) = verify(dir.path());
    assert!(
        !ok && text.contains("its content does not match its hash (edited)"),
        "{text}"
    );
}

fn processes_matching(needle: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-af", needle])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("pgrep"))
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn an_action_running_when_the_runner_dies_is_reported_interrupted_and_not_rerun() {
    let marker = format!("/dev/null/{}", std::process::id());
    let up = Upstream::start(
        vec![tool_call(
            "shell",
            &json!({"command": format!("tail -f {marker} /dev/zero"), "timeout_s": 120})
                .to_string(),
        )],
        tool_call("finish", &common::finish("stopped", &[])),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn(dir.path(), &up.url());
    let base = format!("http://127.0.0.1:{}", p.port);
    let c = reqwest::Client::new();
    let v: Value = c
        .post(format!("{base}/agent/jobs"))
        .bearer_auth(ALICE)
        .json(&json!({"goal": "follow a file", "environment": "dev"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    let t0 = Instant::now();
    loop {
        let ev: Value = c
            .get(format!("{base}/agent/jobs/{id}/events"))
            .bearer_auth(RITA)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ev["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "item.started")
        {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the action never started: {ev}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !processes_matching(&marker).is_empty(),
        "the sandboxed command is not running"
    );
    sigkill(&mut p);
    // The sandbox dies with the runner (--die-with-parent): nothing left.
    let t0 = Instant::now();
    while !processes_matching(&marker).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "left behind: {:?}",
            processes_matching(&marker)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let p2 = spawn(dir.path(), &up.url());
    let base = format!("http://127.0.0.1:{}", p2.port);
    let t0 = Instant::now();
    let job = loop {
        let v: Value = c
            .get(format!("{base}/agent/jobs/{id}"))
            .bearer_auth(RITA)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["state"] == "completed" || v["state"] == "failed" {
            break v;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job["state"], "completed", "{job}");
    let last = up.request(up.calls() - 1).2;
    let told = last["messages"].as_array().unwrap().iter().any(|m| {
        m["content"]
            .as_str()
            .is_some_and(|t| t.contains("was interrupted") && t.contains("not run again"))
    });
    assert!(told, "{last:#}");
    assert_eq!(
        up.calls(),
        2,
        "the model was asked once before and once after the restart"
    );
    drop(p2);
    let store = hwc_agent_runner::store::Store::open(&format!(
        "sqlite://{}",
        dir.path().join("runner.db").display()
    ))
    .await
    .unwrap();
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM audit WHERE job_id = $1 ORDER BY seq")
            .bind(&id)
            .fetch_all(&store.pool)
            .await
            .unwrap();
    assert_eq!(
        kinds.iter().filter(|k| *k == "action_started").count(),
        1,
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"action_interrupted".to_string()),
        "{kinds:?}"
    );
    assert!(verify(dir.path()).0);
}
