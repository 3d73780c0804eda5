//! The bridges under test as child processes, and what their memory is.
//!
//! Each bridge runs the same stdio server command. A bridge's memory is
//! read from its process tree: the bridge process itself (its `VmRSS`),
//! the other processes it runs that are not the server (hwc-mcp-bridge's
//! per-child guard, supergateway's `sh -c`), and the server processes with
//! everything below them, counted apart.

use super::http::Endpoint;
use crate::child::{free_port, Process};
use crate::procinfo::{cmdline, descendants, process_table, pss_kb, status_kb};
use anyhow::{bail, Context};
use reqwest::header::HeaderValue;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The bearer token the bench gives hwc-mcp-bridge.
pub const TOKEN: &str = "hwc-bench-mcp-token";

/// A bridge running as a child process.
pub struct Peer {
    /// Where sessions are opened.
    pub endpoint: Endpoint,
    /// `GET` this until 200 to know it is up.
    pub ready_url: String,
    process: Process,
}

impl Deref for Peer {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.process
    }
}

impl DerefMut for Peer {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

/// How hwc-mcp-bridge is run.
#[derive(Debug, Clone, Default)]
pub struct BridgeOptions {
    /// `RUST_LOG` (unset: its built-in `info`).
    pub rust_log: Option<String>,
    /// `max_concurrent_calls` of the server entry (unset: its default).
    pub max_concurrent_calls: Option<usize>,
}

fn toml_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn spawn(
    name: &'static str,
    cmd: Command,
    dir: &Path,
    endpoint: Endpoint,
    ready_url: String,
) -> anyhow::Result<Peer> {
    Ok(Peer {
        endpoint,
        ready_url,
        process: Process::spawn(name, cmd, dir)?,
    })
}

impl Peer {
    /// hwc-mcp-bridge with one `[[servers]]` entry `echo` running `server`,
    /// one admin token from a file, everything else default.
    pub fn bridge(
        bin: &Path,
        dir: &Path,
        server: &[String],
        opts: &BridgeOptions,
    ) -> anyhow::Result<Self> {
        let bin = std::fs::canonicalize(bin).with_context(|| {
            format!(
                "bridge binary {} not found; build it with `cargo build --release -p hwc-mcp-bridge` or pass --bridge-bin",
                bin.display()
            )
        })?;
        let (program, args) = server.split_first().context("empty server command")?;
        let port = free_port()?;
        let token = dir.join("token");
        std::fs::write(&token, TOKEN)?;
        let mut config = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[auth]\ntoken_files = [{}]\n\n[[servers]]\nname = \"echo\"\ncommand = {}\nargs = [{}]\n",
            toml_str(&token.display().to_string()),
            toml_str(program),
            args.iter().map(|a| toml_str(a)).collect::<Vec<_>>().join(", "),
        );
        if let Some(n) = opts.max_concurrent_calls {
            config.push_str(&format!("max_concurrent_calls = {n}\n"));
        }
        let path = dir.join("mcp-bridge.toml");
        std::fs::write(&path, config)?;
        let mut cmd = Command::new(&bin);
        cmd.arg("--config").arg(&path);
        match &opts.rust_log {
            Some(f) => cmd.env("RUST_LOG", f),
            None => cmd.env_remove("RUST_LOG"),
        };
        let base = format!("http://127.0.0.1:{port}");
        let endpoint = Endpoint {
            url: format!("{base}/mcp/echo"),
            auth: Some(HeaderValue::from_str(&format!("Bearer {TOKEN}"))?),
        };
        spawn(
            "hwc-mcp-bridge",
            cmd,
            dir,
            endpoint,
            format!("{base}/readyz"),
        )
    }

    /// PyPI `mcp-proxy` serving `server` over Streamable HTTP at `/mcp`
    /// (its defaults: stateful sessions, JSON answers).
    pub fn mcp_proxy(bin: &Path, dir: &Path, server: &[String]) -> anyhow::Result<Self> {
        let port = free_port()?;
        let mut cmd = Command::new(bin);
        cmd.args(["--port", &port.to_string(), "--host", "127.0.0.1", "--"])
            .args(server);
        let base = format!("http://127.0.0.1:{port}");
        let endpoint = Endpoint {
            url: format!("{base}/mcp"),
            auth: None,
        };
        spawn("mcp-proxy", cmd, dir, endpoint, format!("{base}/status"))
    }

    /// npm `supergateway` with `--outputTransport streamableHttp --stateful`
    /// (sessions; it starts one server process per session).
    pub fn supergateway(
        node: &Path,
        script: &Path,
        dir: &Path,
        server: &[String],
    ) -> anyhow::Result<Self> {
        if !script.is_file() {
            bail!("supergateway script {} not found", script.display());
        }
        let port = free_port()?;
        let mut cmd = Command::new(node);
        cmd.arg(script)
            .args([
                "--stdio",
                &crate::runinfo::shell_words(server.iter().cloned()),
            ])
            .args(["--outputTransport", "streamableHttp", "--stateful"])
            .args(["--port", &port.to_string(), "--healthEndpoint", "/healthz"]);
        let base = format!("http://127.0.0.1:{port}");
        let endpoint = Endpoint {
            url: format!("{base}/mcp"),
            auth: None,
        };
        spawn(
            "supergateway",
            cmd,
            dir,
            endpoint,
            format!("{base}/healthz"),
        )
    }

    /// Polls the ready URL until 200, the process exits or `timeout` passes.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let url = self.ready_url.clone();
        self.process.wait_ready(&url, timeout).await
    }
}

/// Whether `argv` runs `server`: the same arguments, and a program of the
/// same file name (a bridge may have resolved it in `PATH`).
pub fn is_server(argv: &[String], server: &[String]) -> bool {
    let base = |p: &str| Path::new(p).file_name().map(|f| f.to_owned());
    match (argv.split_first(), server.split_first()) {
        (Some((p, a)), Some((sp, sa))) => a == sa && base(p) == base(sp),
        _ => false,
    }
}

/// The processes below a bridge, split into the server processes (a
/// server and everything below it) and the others.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// Processes that are neither the bridge nor a server.
    pub helpers: Vec<u32>,
    /// Server processes and their descendants.
    pub servers: Vec<u32>,
    /// How many server processes (not counting their descendants).
    pub server_roots: usize,
}

/// Splits the descendants of `root` (from `table`) by `server_of`, which
/// says whether a pid is a server process.
pub fn split(root: u32, table: &[(u32, u32)], server_of: impl Fn(u32) -> bool) -> Split {
    let mut out = Split::default();
    for pid in descendants(root, table) {
        let parent = table.iter().find(|(p, _)| *p == pid).map(|(_, pp)| *pp);
        if parent.is_some_and(|pp| out.servers.contains(&pp)) {
            out.servers.push(pid);
        } else if server_of(pid) {
            out.servers.push(pid);
            out.server_roots += 1;
        } else {
            out.helpers.push(pid);
        }
    }
    out
}

/// Resident memory of a bridge's process tree at one moment, kB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeRss {
    /// `VmRSS` of the bridge process.
    pub own_kb: u64,
    /// `VmRSS` of its other processes (not servers), summed.
    pub helpers_kb: u64,
    /// How many of those.
    pub helpers: usize,
    /// `Pss` of the bridge process plus its other processes: what they hold,
    /// pages shared among them (the guard maps the bridge's own binary)
    /// counted once.
    pub charged_pss_kb: u64,
    /// `VmRSS` of the server processes and their descendants, summed.
    pub servers_kb: u64,
    /// How many server processes.
    pub servers: usize,
}

impl TreeRss {
    /// The largest of each field of `self` and `other`.
    pub fn max(self, other: Self) -> Self {
        Self {
            own_kb: self.own_kb.max(other.own_kb),
            helpers_kb: self.helpers_kb.max(other.helpers_kb),
            helpers: self.helpers.max(other.helpers),
            charged_pss_kb: self.charged_pss_kb.max(other.charged_pss_kb),
            servers_kb: self.servers_kb.max(other.servers_kb),
            servers: self.servers.max(other.servers),
        }
    }
}

/// Reads the tree below `root` now.
pub fn tree_rss(root: u32, server: &[String]) -> TreeRss {
    let table = process_table();
    let s = split(root, &table, |pid| is_server(&cmdline(pid), server));
    let rss = |pids: &[u32]| pids.iter().filter_map(|&p| status_kb(p, "VmRSS:")).sum();
    TreeRss {
        own_kb: status_kb(root, "VmRSS:").unwrap_or(0),
        helpers_kb: rss(&s.helpers),
        helpers: s.helpers.len(),
        charged_pss_kb: std::iter::once(root)
            .chain(s.helpers.iter().copied())
            .filter_map(pss_kb)
            .sum(),
        servers_kb: rss(&s.servers),
        servers: s.server_roots,
    }
}

/// Samples a bridge's tree on a thread (the bridge process's `VmRSS` every
/// 50 ms, the whole tree every 500 ms) and keeps the largest of each field.
pub struct TreeSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<TreeRss>,
}

impl TreeSampler {
    /// Starts sampling the tree below `root`.
    pub fn start(root: u32, server: Vec<String>) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("bench-rss".into())
            .spawn(move || {
                let mut peak = tree_rss(root, &server);
                for tick in 1u64.. {
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                    if tick % 10 == 0 {
                        peak = peak.max(tree_rss(root, &server));
                    } else if let Some(kb) = status_kb(root, "VmRSS:") {
                        peak.own_kb = peak.own_kb.max(kb);
                    }
                }
                peak.max(tree_rss(root, &server))
            })?;
        Ok(Self { stop, thread })
    }

    /// Stops sampling; the peaks.
    pub fn finish(self) -> TreeRss {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn server_by_file_name_and_arguments() {
        let server = v(&["/x/hwc-bench-mcp", "--serve-echo"]);
        assert!(is_server(&server, &server));
        assert!(is_server(&v(&["hwc-bench-mcp", "--serve-echo"]), &server));
        // hwc-mcp-bridge's guard runs the same words after its own name.
        assert!(!is_server(
            &v(&["/b/hwc-mcp-bridge", "/x/hwc-bench-mcp", "--serve-echo"]),
            &server
        ));
        assert!(!is_server(
            &v(&["/bin/sh", "-c", "/x/hwc-bench-mcp --serve-echo"]),
            &server
        ));
        assert!(!is_server(&[], &server));
    }

    #[test]
    fn splits_servers_from_helpers() {
        // 1 bridge; 2 guard -> 3 server -> 4 its child; 5 sh -> 6 server; 7 other.
        let table = [
            (1, 0),
            (2, 1),
            (3, 2),
            (4, 3),
            (5, 1),
            (6, 5),
            (7, 1),
            (9, 8),
        ];
        let mut s = split(1, &table, |p| p == 3 || p == 6);
        s.helpers.sort_unstable();
        s.servers.sort_unstable();
        assert_eq!(
            s,
            Split {
                helpers: vec![2, 5, 7],
                servers: vec![3, 4, 6],
                server_roots: 2
            }
        );
    }
}
