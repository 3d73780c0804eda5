//! The proxies under test as child processes: hwc-model-router and,
//! optionally, nginx as a plain reverse proxy (the limit: what any proxy
//! costs) and LiteLLM; their readiness, memory (`/proc/PID/status`) and CPU
//! time (`/proc/PID/stat`), and a polite stop (SIGTERM, then SIGKILL).

use anyhow::Context;
use hwc_bench::child::{free_port, Process};
use hwc_bench::procinfo::status_kb;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The API key both proxies accept.
pub const SECRET: &str = "sk-bench";

/// A proxy running as a child process.
pub struct Proc {
    /// Base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    process: Process,
}

impl Deref for Proc {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.process
    }
}

impl DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

impl Proc {
    /// Writes the router's config and key file into `dir` and starts
    /// `bin --config DIR/router.toml` in front of `upstream` (a base URL
    /// ending in `/v1`). `rust_log` overrides the router's log filter; by
    /// default it logs at its built-in `info`. `env` is added to its
    /// environment.
    pub fn router(
        bin: &Path,
        dir: &Path,
        upstream: &str,
        rust_log: Option<&str>,
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let keys = dir.join("keys.toml");
        std::fs::write(
            &keys,
            format!("[[keys]]\nname = \"bench\"\nsecret = \"{SECRET}\"\n"),
        )?;
        let db = dir.join("router.sqlite");
        let config = dir.join("router.toml");
        std::fs::write(
            &config,
            format!(
                r#"[server]
listen = "127.0.0.1:{port}"
max_concurrency = 4096

[auth]
keys_file = "{keys}"

[state]
database = "{db}"

[[backends]]
name = "fast"
kind = "openai"
urls = ["{upstream}"]

[models.m]
targets = [{{ backend = "fast", model = "m" }}]
"#,
                keys = keys.display(),
                db = db.display(),
            ),
        )?;
        let bin = std::fs::canonicalize(bin).with_context(|| {
            format!(
                "router binary {} not found; build it with `cargo build --release -p hwc-model-router` or pass --router-bin",
                bin.display()
            )
        })?;
        let mut cmd = Command::new(&bin);
        cmd.arg("--config").arg(&config);
        match rust_log {
            Some(filter) => cmd.env("RUST_LOG", filter),
            None => cmd.env_remove("RUST_LOG"),
        };
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let process = Process::spawn("hwc-model-router", cmd, dir)
            .context("build it with `cargo build --release -p hwc-model-router`")?;
        Ok(Self {
            url: format!("http://127.0.0.1:{port}"),
            process,
        })
    }

    /// Writes a LiteLLM proxy config into `dir` and starts
    /// `LITELLM_MASTER_KEY=sk-bench bin --config DIR/litellm.yaml --port P`.
    pub fn litellm(bin: &Path, dir: &Path, upstream: &str) -> anyhow::Result<Self> {
        let port = free_port()?;
        let config = dir.join("litellm.yaml");
        std::fs::write(
            &config,
            format!(
                "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/m\n      api_base: {upstream}\n      api_key: x\n"
            ),
        )?;
        let bin = std::fs::canonicalize(bin)
            .with_context(|| format!("LiteLLM command {} not found", bin.display()))?;
        let mut cmd = Command::new(&bin);
        cmd.arg("--config")
            .arg(&config)
            .arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .env("LITELLM_MASTER_KEY", SECRET)
            // Use the bundled model price list instead of fetching it.
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True");
        Ok(Self {
            url: format!("http://127.0.0.1:{port}"),
            process: Process::spawn("LiteLLM", cmd, dir)?,
        })
    }

    /// Writes an nginx config into `dir` that proxies `/v1/...` unchanged
    /// to `upstream` (a base URL ending in `/v1`) with upstream keepalive, no
    /// access log and one worker (as the router, one process), and starts
    /// `bin -p DIR -c DIR/nginx.conf` in the foreground. Its health answer
    /// is its own (`/healthz`), so readiness does not load the upstream.
    pub fn nginx(bin: &Path, dir: &Path, upstream: &str) -> anyhow::Result<Self> {
        let port = free_port()?;
        let target = upstream
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .with_context(|| format!("upstream {upstream} is not an http:// URL"))?;
        let config = dir.join("nginx.conf");
        std::fs::write(
            &config,
            format!(
                r#"daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream fast {{ server {target}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port};
        location = /healthz {{ return 200 "ok"; }}
        location /v1/ {{
            proxy_pass http://fast;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"#,
                dir = dir.display(),
            ),
        )?;
        let mut cmd = Command::new(bin);
        cmd.arg("-p").arg(dir).arg("-c").arg(&config);
        Ok(Self {
            url: format!("http://127.0.0.1:{port}"),
            process: Process::spawn("nginx", cmd, dir)?,
        })
    }

    /// Polls `GET {url}{path}` until it answers 200, the process exits or
    /// `timeout` passes.
    pub async fn wait_ready(&mut self, path: &str, timeout: Duration) -> anyhow::Result<Duration> {
        let url = format!("{}{path}", self.url);
        self.process.wait_ready(&url, timeout).await
    }
}

/// Samples a process's `VmRSS` on a thread and keeps the largest value.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

impl RssSampler {
    /// Starts sampling `pid` every `every`.
    pub fn start(pid: u32, every: Duration) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("bench-rss".into())
            .spawn(move || {
                let mut peak = 0;
                loop {
                    if let Some(kb) = status_kb(pid, "VmRSS:") {
                        peak = peak.max(kb);
                    }
                    if flag.load(Ordering::Relaxed) {
                        return peak;
                    }
                    std::thread::sleep(every);
                }
            })?;
        Ok(Self { stop, thread })
    }

    /// Stops sampling; the peak `VmRSS` seen, kB.
    pub fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

/// `nginx` from `--nginx-bin`, else from `PATH` or `/usr/sbin`.
pub fn find_nginx(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

/// `litellm` from `--litellm-bin`, else from `PATH`.
pub fn find_litellm(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("litellm"))
        .find(|p| p.is_file())
}
