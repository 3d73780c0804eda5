//! Running a program for a tool: a fixed argv (never a shell string unless
//! the program is the sandboxed shell), a timeout, the whole process group
//! killed at the end, and output captured as head and tail with the whole
//! of it hashed, so the model sees a bounded excerpt and the audit can
//! prove what the full output was.

use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// What to run.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// The environment (nothing else is inherited).
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Killed (with its whole group) after this.
    pub timeout: Duration,
    /// Bytes kept from the start and from the end of each stream.
    pub keep: usize,
}

/// One stream's capture.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    /// The first bytes.
    pub head: Vec<u8>,
    /// The last bytes (after `head`, not overlapping it).
    pub tail: Vec<u8>,
    /// All bytes seen.
    pub total: u64,
}

impl Captured {
    /// Head and tail as text, with a marker where bytes were left out.
    pub fn excerpt(&self) -> String {
        let head = String::from_utf8_lossy(&self.head);
        if self.tail.is_empty() {
            return head.into_owned();
        }
        let skipped = self.total - self.head.len() as u64 - self.tail.len() as u64;
        let tail = String::from_utf8_lossy(&self.tail);
        if skipped == 0 {
            format!("{head}{tail}")
        } else {
            format!("{head}\n[… {skipped} bytes left out …]\n{tail}")
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal, when one ended it.
    pub signal: Option<i32>,
    /// Whether the timeout ended it.
    pub timed_out: bool,
    /// Wall time.
    pub duration: Duration,
    /// Standard output.
    pub stdout: Captured,
    /// Standard error.
    pub stderr: Captured,
    /// SHA-256 over stdout then stderr, in full.
    pub output_hash: String,
}

impl Outcome {
    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// The exit code for records: the code, or 128 + signal, or -1.
    pub fn code_for_record(&self) -> i64 {
        self.exit_code
            .map(i64::from)
            .or(self.signal.map(|s| 128 + i64::from(s)))
            .unwrap_or(-1)
    }

    /// One line: "exit 0 in 12 ms", "killed after the 30 s timeout".
    pub fn status_line(&self) -> String {
        let ms = self.duration.as_millis();
        if self.timed_out {
            format!("killed after the timeout ({ms} ms)")
        } else if let Some(c) = self.exit_code {
            format!("exit {c} in {ms} ms")
        } else if let Some(s) = self.signal {
            format!("killed by signal {s} after {ms} ms")
        } else {
            format!("ended after {ms} ms")
        }
    }

    /// What the model sees: status, then both streams' excerpts.
    pub fn for_model(&self) -> String {
        let mut out = self.status_line();
        let so = self.stdout.excerpt();
        let se = self.stderr.excerpt();
        if !so.is_empty() {
            out.push_str("\n--- stdout ---\n");
            out.push_str(&so);
        }
        if !se.is_empty() {
            out.push_str("\n--- stderr ---\n");
            out.push_str(&se);
        }
        out
    }
}

/// Why a program could not be run at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot run `{program}`: {source}")]
pub struct ExecError {
    /// The program.
    pub program: String,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

async fn capture<R: tokio::io::AsyncRead + Unpin>(mut r: R, keep: usize) -> (Captured, Sha256) {
    let mut hasher = Sha256::new();
    let mut c = Captured::default();
    let mut tail: VecDeque<u8> = VecDeque::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        hasher.update(chunk);
        c.total += n as u64;
        let mut rest = chunk;
        if c.head.len() < keep {
            let take = (keep - c.head.len()).min(rest.len());
            c.head.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        tail.extend(rest);
        while tail.len() > keep {
            tail.pop_front();
        }
    }
    c.tail = tail.into_iter().collect();
    (c, hasher)
}

/// Runs `inv` to the end or the timeout, whichever comes first; the
/// process group is killed either way, so nothing it started survives.
pub async fn run(inv: &Invocation) -> Result<Outcome, ExecError> {
    let program = inv.argv.first().cloned().unwrap_or_default();
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&inv.argv[1..])
        .env_clear()
        .envs(inv.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &inv.cwd {
        cmd.current_dir(cwd);
    }
    let t0 = Instant::now();
    let mut child = cmd.spawn().map_err(|source| ExecError {
        program: program.clone(),
        source,
    })?;
    let pgid = child.id().map(|p| p as i32);
    let out = child.stdout.take();
    let err = child.stderr.take();
    let keep = inv.keep;
    let out_task = tokio::spawn(async move {
        match out {
            Some(o) => Some(capture(o, keep).await),
            None => None,
        }
    });
    let err_task = tokio::spawn(async move {
        match err {
            Some(e) => Some(capture(e, keep).await),
            None => None,
        }
    });
    let (status, timed_out) = match tokio::time::timeout(inv.timeout, child.wait()).await {
        Ok(s) => (s.ok(), false),
        Err(_) => (None, true),
    };
    // The group goes whatever happened: background children, a timeout.
    if let Some(pgid) = pgid {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pgid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let status = match status {
        Some(s) => Some(s),
        None => child.wait().await.ok(),
    };
    let duration = t0.elapsed();
    // Readers end when every holder of the pipes is gone (killed above).
    // A process that left the group (setsid) may still hold a pipe: wait a
    // moment, then give up on the rest of its output.
    let grace = Duration::from_secs(2);
    let (stdout, h1) = tokio::time::timeout(grace, out_task)
        .await
        .ok()
        .and_then(|r| r.ok())
        .flatten()
        .unwrap_or_default();
    let (stderr, h2) = tokio::time::timeout(grace, err_task)
        .await
        .ok()
        .and_then(|r| r.ok())
        .flatten()
        .unwrap_or_default();
    let mut whole = Sha256::new();
    whole.update(h1.finalize());
    whole.update(h2.finalize());
    use std::os::unix::process::ExitStatusExt;
    Ok(Outcome {
        exit_code: if timed_out {
            None
        } else {
            status.and_then(|s| s.code())
        },
        signal: status.and_then(|s| s.signal()),
        timed_out,
        duration,
        stdout,
        stderr,
        output_hash: hex::encode(whole.finalize()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout_ms: u64, keep: usize) -> Invocation {
        Invocation {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: None,
            timeout: Duration::from_millis(timeout_ms),
            keep,
        }
    }

    #[tokio::test]
    async fn output_is_kept_as_head_and_tail_and_hashed_whole() {
        let o = run(&sh("seq 1 10000; echo oops >&2; exit 3", 10_000, 64))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.exit_code, Some(3));
        assert_eq!(o.stdout.total, 48894);
        assert!(o.stdout.excerpt().starts_with("1\n2\n3\n"));
        assert!(o.stdout.excerpt().ends_with("9999\n10000\n"));
        assert!(o.stdout.excerpt().contains("bytes left out"));
        assert_eq!(o.stderr.excerpt(), "oops\n");
        assert_eq!(o.output_hash.len(), 64);
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group_including_background_children() {
        let marker = format!("sleep 301.{}", std::process::id());
        let o = run(&sh(&format!("{marker} & sleep 300"), 300, 1024))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(o.timed_out);
        assert_eq!(o.exit_code, None);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let left = std::process::Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "left behind: {}",
            String::from_utf8_lossy(&left)
        );
    }
}
