//! Child processes of a benchmark: a free port for them, a log file for
//! their output, an environment without HTTP proxies or systemd hand-overs,
//! readiness over HTTP, memory and CPU time from `/proc`, and a polite stop
//! (SIGTERM, then SIGKILL).

use crate::procinfo::{cpu_time, status_kb};
use anyhow::{bail, Context};
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variables that would send 127.0.0.1 traffic through a proxy.
pub const PROXY_VARS: [&str; 6] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// A free TCP port on 127.0.0.1 (released before the child binds it).
pub fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// `DIR/NAME.log`, opened twice: for the child's stdout and its stderr.
pub fn log_file(dir: &Path, name: &str) -> anyhow::Result<(PathBuf, File, File)> {
    let path = dir.join(format!("{name}.log"));
    let out = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let err = out.try_clone()?;
    Ok((path, out, err))
}

/// The last `n` lines of a log file.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Sends SIGTERM to `child` and waits up to `grace` for its exit, then
/// SIGKILLs it. Says which happened.
pub fn stop(child: &mut Child, grace: Duration) -> anyhow::Result<String> {
    if let Some(status) = child.try_wait()? {
        return Ok(format!("had already exited ({status})"));
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let start = Instant::now();
    while start.elapsed() < grace {
        if let Some(status) = child.try_wait()? {
            return Ok(format!("exited after SIGTERM ({status})"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill()?;
    let status = child.wait()?;
    Ok(format!("killed after {grace:?} ({status})"))
}

/// A process under test, started by [`Process::spawn`]; dropping it kills it.
pub struct Process {
    /// What it is, for messages and tables.
    pub name: &'static str,
    /// Its process id.
    pub pid: u32,
    /// Its stdout and stderr.
    pub log: PathBuf,
    child: Child,
    stopped: bool,
}

impl Process {
    /// Starts `cmd` in `dir`, stdin from `/dev/null`, stdout and stderr to
    /// `DIR/NAME.log`, without the proxy variables, systemd's hand-overs
    /// (`NOTIFY_SOCKET`, `LISTEN_*`, `JOURNAL_STREAM`) or `HWC_AI_*`.
    pub fn spawn(name: &'static str, mut cmd: Command, dir: &Path) -> anyhow::Result<Self> {
        let (log, out, err) = log_file(dir, name)?;
        cmd.current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let inherited = std::env::vars_os().map(|(k, _)| k);
        for k in inherited.filter(|k| k.to_string_lossy().starts_with("HWC_AI_")) {
            cmd.env_remove(k);
        }
        for v in PROXY_VARS.iter().chain(&[
            "NOTIFY_SOCKET",
            "LISTEN_FDS",
            "LISTEN_PID",
            "JOURNAL_STREAM",
        ]) {
            cmd.env_remove(v);
        }
        let child = cmd.spawn().with_context(|| {
            format!("starting {name} ({})", cmd.get_program().to_string_lossy())
        })?;
        Ok(Self {
            name,
            pid: child.id(),
            log,
            child,
            stopped: false,
        })
    }

    /// Polls `GET url` until it answers 200, the process exits or `timeout`
    /// passes; how long it took.
    pub async fn wait_ready(&mut self, url: &str, timeout: Duration) -> anyhow::Result<Duration> {
        let client = crate::loopback::client(1)?;
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.stopped = true;
                bail!(
                    "{} exited ({status}) before it was ready; its log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if let Ok(r) = client.get(url).timeout(Duration::from_secs(2)).send().await {
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

    /// The last 30 lines of its log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log, 30)
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
        stop(&mut self.child, grace)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
