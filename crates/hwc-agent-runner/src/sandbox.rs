//! The shell sandbox: bubblewrap around `/bin/sh -c LINE`.
//!
//! Read-only root, the job's workspace the only writable path, a private
//! `/tmp`, the runner's state and credentials hidden, new user, PID, IPC,
//! UTS and cgroup namespaces, no network unless the policy's rule grants
//! it, no capabilities, `no_new_privs` (bubblewrap sets it), a cleared
//! environment, dies with the runner, and a timeout after which the whole
//! tree goes (the PID namespace ends with its first process, and the
//! process group is killed; see [`crate::exec`]).
//!
//! Where user namespaces are unavailable (a kernel or a unit that forbids
//! them) bubblewrap fails and the command is not run: the sandbox fails
//! closed, and `/status` says why from the probe at start.

use crate::exec::{self, Invocation, Outcome};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[sandbox]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// The bubblewrap binary.
    pub bwrap: PathBuf,
    /// Default time a shell command may run.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The most any command may ask for.
    #[serde(with = "humantime_serde")]
    pub max_timeout: Duration,
    /// Bytes of each stream's head and of its tail the model is shown.
    pub keep_bytes: usize,
    /// `PATH` inside the sandbox.
    pub path: String,
    /// Paths hidden behind an empty tmpfs (besides the runner's own state
    /// and credentials, always hidden).
    pub hide: Vec<PathBuf>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            bwrap: PathBuf::from("bwrap"),
            timeout: Duration::from_secs(60),
            max_timeout: Duration::from_secs(30 * 60),
            keep_bytes: 8 * 1024,
            path: "/run/current-system/sw/bin:/usr/local/bin:/usr/bin:/bin".into(),
            hide: Vec::new(),
        }
    }
}

/// One sandboxed command.
#[derive(Debug, Clone)]
pub struct ShellRun<'a> {
    /// The line, as judged by the policy.
    pub line: &'a str,
    /// The only writable directory; the working directory.
    pub workspace: &'a Path,
    /// Whether the policy granted network access.
    pub network: bool,
    /// How long it may run.
    pub timeout: Duration,
}

/// Why the sandbox could not run a command.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// bubblewrap itself is missing or could not start.
    #[error("the sandbox could not start ({0}); the command was not run")]
    Exec(#[from] exec::ExecError),
    /// bubblewrap ran but refused to set up the sandbox.
    #[error("the sandbox is unavailable: {0}; the command was not run (user namespaces are required: fail closed)")]
    Unavailable(String),
}

/// The bubblewrap argv for `run`, hiding `hidden` (state, credentials).
pub fn argv(cfg: &SandboxConfig, run: &ShellRun<'_>, hidden: &[PathBuf]) -> Vec<String> {
    let ws = run.workspace.display().to_string();
    let mut a: Vec<String> = vec![cfg.bwrap.display().to_string()];
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    push(&[
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
    ]);
    // Hidden first; the workspace (which may live under the hidden state
    // directory) is bound back after.
    let all: Vec<&PathBuf> = hidden.iter().chain(&cfg.hide).collect();
    let dirs: Vec<&PathBuf> = all.iter().copied().filter(|h| h.is_dir()).collect();
    for d in &dirs {
        push(&["--tmpfs", &d.display().to_string()]);
    }
    // A file: an empty one in its place, unless a hidden directory holds
    // it already (binding over it there would make its name reappear).
    for f in all.iter().filter(|h| h.is_file()) {
        if !dirs.iter().any(|d| f.starts_with(d)) {
            push(&["--ro-bind", "/dev/null", &f.display().to_string()]);
        }
    }
    push(&["--bind", &ws, &ws, "--chdir", &ws]);
    push(&[
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--hostname",
        "hwc-agent-sandbox",
    ]);
    if !run.network {
        push(&["--unshare-net"]);
    }
    push(&["--", "/bin/sh", "-c", run.line]);
    a
}

/// The environment inside: nothing inherited.
fn env(cfg: &SandboxConfig, workspace: &Path) -> Vec<(String, String)> {
    vec![
        ("PATH".into(), cfg.path.clone()),
        ("HOME".into(), workspace.display().to_string()),
        ("LANG".into(), "C.UTF-8".into()),
        ("TERM".into(), "dumb".into()),
        ("NO_COLOR".into(), "1".into()),
        ("GIT_TERMINAL_PROMPT".into(), "0".into()),
    ]
}

/// bubblewrap's own failure lines, which mean the command never ran.
fn setup_failure(o: &Outcome) -> Option<String> {
    let err = String::from_utf8_lossy(&o.stderr.head);
    let first = err.lines().next().unwrap_or("");
    (o.exit_code == Some(1) && first.starts_with("bwrap:")).then(|| first.to_string())
}

/// Runs `run` in the sandbox.
pub async fn run(
    cfg: &SandboxConfig,
    run: &ShellRun<'_>,
    hidden: &[PathBuf],
) -> Result<Outcome, SandboxError> {
    let inv = Invocation {
        argv: argv(cfg, run, hidden),
        env: env(cfg, run.workspace),
        cwd: Some(run.workspace.to_path_buf()),
        timeout: run.timeout.min(cfg.max_timeout),
        keep: cfg.keep_bytes,
    };
    let o = exec::run(&inv).await?;
    if let Some(why) = setup_failure(&o) {
        return Err(SandboxError::Unavailable(why));
    }
    Ok(o)
}

/// Whether the sandbox works here: runs `true` in it. The reason when not.
pub async fn probe(cfg: &SandboxConfig) -> Result<(), String> {
    let dir = std::env::temp_dir();
    let r = ShellRun {
        line: "true",
        workspace: &dir,
        network: false,
        timeout: Duration::from_secs(10),
    };
    match run(cfg, &r, &[]).await {
        Ok(o) if o.success() => Ok(()),
        Ok(o) => Err(format!("a test command failed: {}", o.for_model())),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod hiding_tests {
    use super::*;

    #[test]
    fn secret_files_read_empty_unless_a_hidden_directory_holds_them() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = tmp.path().join("state");
        std::fs::create_dir_all(&state).unwrap_or_else(|e| panic!("{e}"));
        let inside = state.join("runner.db");
        let outside = tmp.path().join("audit.key");
        for f in [&inside, &outside] {
            std::fs::write(f, "secret").unwrap_or_else(|e| panic!("{e}"));
        }
        let run = ShellRun {
            line: "true",
            workspace: tmp.path(),
            network: false,
            timeout: std::time::Duration::from_secs(1),
        };
        let a = argv(
            &SandboxConfig::default(),
            &run,
            &[state.clone(), inside.clone(), outside.clone()],
        )
        .join(" ");
        assert!(a.contains(&format!("--tmpfs {}", state.display())), "{a}");
        assert!(
            a.contains(&format!("--ro-bind /dev/null {}", outside.display())),
            "{a}"
        );
        assert!(
            !a.contains(&format!("/dev/null {}", inside.display())),
            "{a}"
        );
    }
}
