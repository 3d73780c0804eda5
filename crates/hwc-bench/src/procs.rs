//! The proxies under test as child processes: hwc-model-router and,
//! optionally, LiteLLM; their readiness, memory (`/proc/PID/status`) and CPU
//! time (`/proc/PID/stat`), and a polite stop (SIGTERM, then SIGKILL).

use anyhow::{bail, Context};
use hwc_bench::procinfo::{cpu_time, status_kb};
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The API key both proxies accept.
pub const SECRET: &str = "sk-bench";

/// Environment variables that would send 127.0.0.1 traffic through a proxy.
const PROXY_VARS: [&str; 6] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// A proxy running as a child process.
pub struct Proc {
    /// What it is, for messages.
    pub name: &'static str,
    /// Base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its process id.
    pub pid: u32,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    child: Child,
    stopped: bool,
}

/// A free TCP port on 127.0.0.1 (released before the child binds it).
fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<(PathBuf, File, File)> {
    let path = dir.join(format!("{name}.log"));
    let out = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let err = out.try_clone()?;
    Ok((path, out, err))
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
        let (log, out, err) = log_file(dir, "router")?;
        let mut cmd = Command::new(&bin);
        cmd.arg("--config")
            .arg(&config)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID");
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("HWC_AI_") {
                cmd.env_remove(k);
            }
        }
        for v in PROXY_VARS {
            cmd.env_remove(v);
        }
        match rust_log {
            Some(filter) => cmd.env("RUST_LOG", filter),
            None => cmd.env_remove("RUST_LOG"),
        };
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let child = cmd.spawn().with_context(|| {
            format!(
                "starting {} (build it with `cargo build --release -p hwc-model-router`)",
                bin.display()
            )
        })?;
        Ok(Self {
            name: "hwc-model-router",
            url: format!("http://127.0.0.1:{port}"),
            pid: child.id(),
            log,
            child,
            stopped: false,
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
        let (log, out, err) = log_file(dir, "litellm")?;
        let mut cmd = Command::new(&bin);
        cmd.arg("--config")
            .arg(&config)
            .arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env("LITELLM_MASTER_KEY", SECRET)
            // Use the bundled model price list instead of fetching it.
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True");
        for v in PROXY_VARS {
            cmd.env_remove(v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Self {
            name: "LiteLLM",
            url: format!("http://127.0.0.1:{port}"),
            pid: child.id(),
            log,
            child,
            stopped: false,
        })
    }

    /// Polls `GET {url}{path}` until it answers 200, the process exits or
    /// `timeout` passes.
    pub async fn wait_ready(&mut self, path: &str, timeout: Duration) -> anyhow::Result<Duration> {
        let client = crate::load::client(1)?;
        let start = Instant::now();
        let url = format!("{}{path}", self.url);
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.stopped = true;
                bail!(
                    "{} exited ({status}) before it was ready; its log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if let Ok(r) = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                if r.status() == reqwest::StatusCode::OK {
                    return Ok(start.elapsed());
                }
            }
            if start.elapsed() > timeout {
                bail!(
                    "{} was not ready at {url} after {timeout:?}; its log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of the child's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Current resident set size, kB.
    pub fn rss_kb(&self) -> Option<u64> {
        status_kb(self.pid, "VmRSS:")
    }

    /// Peak resident set size since start (`VmHWM`), kB.
    pub fn hwm_kb(&self) -> Option<u64> {
        status_kb(self.pid, "VmHWM:")
    }

    /// User plus system CPU time used so far.
    pub fn cpu_time(&self) -> Option<Duration> {
        cpu_time(self.pid)
    }

    /// Sends SIGTERM and waits up to `grace` for the exit, then SIGKILL.
    pub fn stop(&mut self, grace: Duration) -> anyhow::Result<String> {
        if self.stopped {
            return Ok("already exited".into());
        }
        self.stopped = true;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Some(status) = self.child.try_wait()? {
                return Ok(format!("exited after SIGTERM ({status})"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        let status = self.child.wait()?;
        Ok(format!("killed after {grace:?} ({status})"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
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
