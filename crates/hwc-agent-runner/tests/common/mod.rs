//! Test harness: the runner in-process on a free port with its state in a
//! temporary directory, five tokens (alice requests, bob and carol approve,
//! rita reads, root is admin), and helpers that keep each test about the
//! behaviour: start a job, wait for a state, read events, approve.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use hwc_agent_runner::config::RunnerConfig;
use hwc_testkit::inprocess::InProcess;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const ALICE: &str = "tok-alice-requester-0001";
pub const BOB: &str = "tok-bob-approver-0002";
pub const CAROL: &str = "tok-carol-approver-0003";
pub const RITA: &str = "tok-rita-reader-0004";
pub const ROOT: &str = "tok-root-admin-0005";

pub struct Runner {
    pub url: String,
    pub dir: PathBuf,
    daemon: Option<InProcess>,
    _tmp: Option<tempfile::TempDir>,
}

/// The `[auth]` and path settings every test runner has.
pub fn base_toml(dir: &Path, model_url: &str) -> String {
    base_toml_with(dir, model_url, "")
}

/// [`base_toml`] with `model_extra` lines in its `[model]` table.
pub fn base_toml_with(dir: &Path, model_url: &str, model_extra: &str) -> String {
    for (name, tok) in [
        ("alice", ALICE),
        ("bob", BOB),
        ("carol", CAROL),
        ("rita", RITA),
        ("root", ROOT),
    ] {
        std::fs::write(dir.join(format!("{name}.token")), tok).unwrap();
    }
    let t = |n: &str| dir.join(format!("{n}.token")).display().to_string();
    format!(
        r#"
[store]
url = "sqlite://{db}"
[audit]
signing_key_file = "{key}"
host = "test-host"
checkpoint_every = 5
[model]
url = "{model_url}"
max_attempts = 4
{model_extra}
[tools]
workspaces = "{ws}"
[[auth.tokens]]
file = "{alice}"
name = "alice"
role = "requester"
[[auth.tokens]]
file = "{bob}"
name = "bob"
role = "approver"
[[auth.tokens]]
file = "{carol}"
name = "carol"
role = "approver"
[[auth.tokens]]
file = "{rita}"
name = "rita"
role = "reader"
[[auth.tokens]]
file = "{root}"
name = "root"
role = "admin"
"#,
        db = dir.join("runner.db").display(),
        key = dir.join("audit.key").display(),
        ws = dir.join("workspaces").display(),
        alice = t("alice"),
        bob = t("bob"),
        carol = t("carol"),
        rita = t("rita"),
        root = t("root"),
    )
}

impl Runner {
    /// A runner whose model is at `model_url`, with `extra` TOML appended.
    pub async fn start(model_url: &str, extra: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut r = Self::start_in(&dir, model_url, extra).await;
        r._tmp = Some(tmp);
        r
    }

    /// A runner whose `[model]` table also has `model_extra`.
    pub async fn start_with_model_keys(model_url: &str, model_extra: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut r = Self::start_full(&dir, model_url, model_extra, "").await;
        r._tmp = Some(tmp);
        r
    }

    /// A runner named `host` whose store is `store_url` (PostgreSQL shared
    /// with other runners), its files in `dir`.
    pub async fn start_shared(dir: &Path, model_url: &str, store_url: &str, host: &str) -> Self {
        let sqlite = format!("url = \"sqlite://{}\"", dir.join("runner.db").display());
        let toml = base_toml(dir, model_url)
            .replace(&sqlite, &format!("url = \"{store_url}\""))
            .replace("host = \"test-host\"", &format!("host = \"{host}\""));
        if !dir.join("audit.key").exists() {
            let k = hwc_agent_runner::audit::CheckpointKey::generate("hwc-agent-runner");
            std::fs::write(dir.join("audit.key"), k.seed_hex()).unwrap();
        }
        let cfg: RunnerConfig =
            hwc_ai_core::config::load_str(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let daemon = InProcess::daemon(hwc_agent_runner::daemon(cfg)).await;
        Self {
            url: daemon.url.clone(),
            dir: dir.to_path_buf(),
            daemon: Some(daemon),
            _tmp: None,
        }
    }

    /// A runner with its state in `dir`.
    pub async fn start_in(dir: &Path, model_url: &str, extra: &str) -> Self {
        Self::start_full(dir, model_url, "", extra).await
    }

    async fn start_full(dir: &Path, model_url: &str, model_extra: &str, extra: &str) -> Self {
        if !dir.join("audit.key").exists() {
            let k = hwc_agent_runner::audit::CheckpointKey::generate("hwc-agent-runner");
            std::fs::write(dir.join("audit.key"), k.seed_hex()).unwrap();
        }
        let full = format!("{}{extra}", base_toml_with(dir, model_url, model_extra));
        let cfg: RunnerConfig = hwc_ai_core::config::load_str(&full)
            .unwrap_or_else(|e| panic!("test config rejected: {e}\n{full}"));
        let daemon = InProcess::daemon(hwc_agent_runner::daemon(cfg)).await;
        Self {
            url: daemon.url.clone(),
            dir: dir.to_path_buf(),
            daemon: Some(daemon),
            _tmp: None,
        }
    }

    pub async fn stop(mut self) {
        if let Some(d) = self.daemon.take() {
            d.stop().await;
        }
    }

    pub fn get(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
    }

    pub fn post(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
    }

    /// Starts a job as alice; its id.
    pub async fn job(&self, body: Value) -> String {
        self.job_as(ALICE, body).await
    }

    /// Starts a job as the holder of `token`; its id.
    pub async fn job_as(&self, token: &str, body: Value) -> String {
        let resp = self
            .post("/agent/jobs", token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert_eq!(status, 201, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    pub async fn view(&self, id: &str) -> Value {
        self.get_json(&format!("/agent/jobs/{id}"), RITA).await
    }

    /// `GET path` as the holder of `token`, its body as JSON.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        self.get(path, token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Polls until the job is in one of `states` (20 s at most).
    pub async fn wait_for(&self, id: &str, states: &[&str]) -> Value {
        self.wait_for_within(id, states, Duration::from_secs(20))
            .await
    }

    /// [`Runner::wait_for`] with its own bound (a real model on a busy machine).
    pub async fn wait_for_within(&self, id: &str, states: &[&str], bound: Duration) -> Value {
        let t0 = Instant::now();
        loop {
            let v = self.view(id).await;
            if states.iter().any(|s| v["state"] == *s) {
                return v;
            }
            assert!(
                t0.elapsed() < bound,
                "job {id} never reached {states:?}: {v}\nevents: {:#}",
                Value::Array(self.events(id).await)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every stored event of a job.
    pub async fn events(&self, id: &str) -> Vec<Value> {
        let v: Value = self
            .get(&format!("/agent/jobs/{id}/events"), RITA)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["events"].as_array().cloned().unwrap_or_default()
    }

    /// The events of one kind.
    pub async fn events_of(&self, id: &str, kind: &str) -> Vec<Value> {
        self.events(id)
            .await
            .into_iter()
            .filter(|e| e["kind"] == kind)
            .collect()
    }

    /// Approves the waiting action as `token` with `digest`; (status, body).
    pub async fn approve(&self, id: &str, token: &str, digest: &str) -> (u16, Value) {
        let resp = self
            .post(&format!("/agent/jobs/{id}/approve"), token)
            .json(&json!({"digest": digest, "comment": "ok"}))
            .send()
            .await
            .unwrap();
        let s = resp.status().as_u16();
        (s, resp.json().await.unwrap_or(Value::Null))
    }

    /// The runner's database, opened beside it.
    pub async fn store(&self) -> hwc_agent_runner::store::Store {
        hwc_agent_runner::store::Store::open(&format!(
            "sqlite://{}",
            self.dir.join("runner.db").display()
        ))
        .await
        .unwrap()
    }

    /// The audit records of a job, as stored (kind, record JSON).
    pub async fn audit(&self, id: &str) -> Vec<Value> {
        let store = self.store().await;
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT record FROM audit WHERE job_id = $1 ORDER BY seq")
                .bind(id)
                .fetch_all(&store.pool)
                .await
                .unwrap();
        rows.iter()
            .map(|r| serde_json::from_str(r).unwrap())
            .collect()
    }

    /// Every audit record of kind `kind` (all jobs).
    pub async fn audit_kind(&self, kind: &str) -> Vec<Value> {
        let store = self.store().await;
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT record FROM audit WHERE kind = $1 ORDER BY seq")
                .bind(kind)
                .fetch_all(&store.pool)
                .await
                .unwrap();
        rows.iter()
            .map(|r| serde_json::from_str(r).unwrap())
            .collect()
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// The finish call citing `evidence`.
pub fn finish(summary: &str, findings: &[(&str, &[i64])]) -> String {
    json!({
        "summary": summary,
        "findings": findings.iter().map(|(t, e)| json!({"text": t, "evidence": e})).collect::<Vec<_>>(),
        "unknowns": ["nothing else"],
    })
    .to_string()
}
