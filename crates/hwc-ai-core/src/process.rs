//! Child processes that leave nothing behind: MCP servers, tools, anything a
//! daemon runs as a subprocess.
//!
//! Existing bridges orphan their children: they kill `sh -c` but not the
//! grandchildren it forked, and when the bridge itself is SIGKILLed the
//! whole tree lives on. Here every child runs under a small **guard**, the
//! daemon's own binary re-executed in guard mode (see
//! [`guard_if_requested`], which [`crate::cli::run_daemon`] calls first):
//!
//! ```text
//! daemon ── guard (process-group leader, PR_SET_PDEATHSIG=SIGTERM, rlimits)
//!             └─ program ── grandchildren   (all in the guard's group)
//! ```
//!
//! - **stop** ([`Child::stop`], and on drain): SIGTERM to the whole group,
//!   a grace period, then SIGKILL to the whole group;
//! - **crash** (the program exits on its own): the guard exits with its
//!   status and the daemon SIGKILLs the group, taking any stragglers;
//! - **daemon SIGKILLed**: the kernel sends the guard SIGTERM
//!   (`PR_SET_PDEATHSIG`, set without any `unsafe` `pre_exec` hook); it
//!   signals the group, waits the grace and SIGKILLs the group, itself
//!   included.
//!
//! The guard applies the rlimits (address space, open files, CPU seconds)
//! to itself before starting the program, which inherits them. The
//! program's stdin and stdout are the daemon's pipes (the guard writes
//! nothing to them); its stderr lines go to the daemon's log tagged with
//! the child's name.
//!
//! One caveat of `PR_SET_PDEATHSIG`: it fires when the *thread* that
//! spawned the guard exits. Spawn from async tasks (tokio's worker threads
//! live as long as the runtime), never from `spawn_blocking`, whose threads
//! end when idle.

use crate::backoff::Backoff;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::Serialize;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitCode, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout};

const GUARD_ENV: &str = "HWC_AI_PROCESS_GUARD";
const PARENT_ENV: &str = "HWC_AI_GUARD_PARENT";
const GRACE_ENV: &str = "HWC_AI_GUARD_GRACE_MS";
const LIMITS_ENV: &str = "HWC_AI_GUARD_LIMITS";
/// Longest stderr line logged; the rest of a longer line is dropped.
const MAX_LOG_LINE: usize = 8 * 1024;

/// Resource limits for a child (and everything it forks), set with
/// `setrlimit` before the program starts. `None` leaves the daemon's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// `RLIMIT_AS`: address space in bytes. Runtimes that reserve large
    /// virtual regions up front (Node.js, the JVM) need generous values;
    /// systemd's `MemoryMax` on the unit bounds resident memory instead.
    pub address_space_bytes: Option<u64>,
    /// `RLIMIT_NOFILE`: open file descriptors.
    pub open_files: Option<u64>,
    /// `RLIMIT_CPU`: CPU seconds before the kernel sends SIGXCPU (and
    /// SIGKILL two seconds later).
    pub cpu_seconds: Option<u64>,
}

impl Limits {
    fn encode(&self) -> String {
        let f = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
        format!(
            "{},{},{}",
            f(self.address_space_bytes),
            f(self.open_files),
            f(self.cpu_seconds)
        )
    }

    fn decode(s: &str) -> Option<Self> {
        let parts: Vec<Option<u64>> = s
            .split(',')
            .map(|p| {
                if p == "-" {
                    Ok(None)
                } else {
                    p.parse().map(Some)
                }
            })
            .collect::<Result<_, _>>()
            .ok()?;
        match parts[..] {
            [address_space_bytes, open_files, cpu_seconds] => Some(Self {
                address_space_bytes,
                open_files,
                cpu_seconds,
            }),
            _ => None,
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// Name in logs and status (`mcp:git`).
    pub name: String,
    /// The program (absolute, or looked up in `PATH`).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Variables added to the daemon's environment for it.
    pub env: Vec<(OsString, OsString)>,
    /// Working directory; the daemon's when `None`.
    pub cwd: Option<PathBuf>,
    /// Resource limits.
    pub limits: Limits,
    /// Between SIGTERM and SIGKILL on stop.
    pub grace: Duration,
    /// The guard binary; `None` re-executes the running binary
    /// (`/proc/self/exe`), which must call [`guard_if_requested`] first
    /// thing (every daemon's `main` does, through `run_daemon`).
    pub guard: Option<PathBuf>,
}

impl ChildSpec {
    /// `program args...` named `name`, with a 5 s grace and no limits.
    pub fn new(
        name: impl Into<String>,
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Self {
        Self {
            name: name.into(),
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: None,
            limits: Limits::default(),
            grace: Duration::from_secs(5),
            guard: None,
        }
    }
}

/// Why a child could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The guard (and so the program) could not be executed.
    #[error("cannot start `{name}` ({program}): {source}")]
    Spawn {
        /// The child's name.
        name: String,
        /// The program it runs.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A running child under its guard. Dropping it SIGKILLs the whole group.
#[derive(Debug)]
pub struct Child {
    name: String,
    inner: tokio::process::Child,
    group: Pid,
    grace: Duration,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    exited: Option<ExitStatus>,
}

impl Child {
    /// Starts `spec` with piped stdin and stdout; stderr lines are logged.
    pub fn spawn(spec: &ChildSpec) -> Result<Self, ProcessError> {
        let spawn_err = |source| ProcessError::Spawn {
            name: spec.name.clone(),
            program: spec.program.display().to_string(),
            source,
        };
        let guard = spec
            .guard
            .clone()
            .unwrap_or_else(|| PathBuf::from("/proc/self/exe"));
        let mut cmd = tokio::process::Command::new(guard);
        cmd.arg(&spec.program)
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .env(GUARD_ENV, &spec.name)
            .env(PARENT_ENV, std::process::id().to_string())
            .env(GRACE_ENV, spec.grace.as_millis().to_string())
            .env(LIMITS_ENV, spec.limits.encode())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        if let Some(dir) = &spec.cwd {
            cmd.current_dir(dir);
        }
        let mut inner = cmd.spawn().map_err(spawn_err)?;
        let pid = inner
            .id()
            .ok_or_else(|| spawn_err(std::io::Error::other("exited before its pid was read")))?;
        let group = Pid::from_raw(pid as i32);
        if let Some(stderr) = inner.stderr.take() {
            tokio::spawn(log_lines(spec.name.clone(), stderr));
        }
        tracing::info!(child = %spec.name, program = %spec.program.display(), pid, "child started");
        Ok(Self {
            name: spec.name.clone(),
            stdin: inner.stdin.take(),
            stdout: inner.stdout.take(),
            inner,
            group,
            grace: spec.grace,
            exited: None,
        })
    }

    /// The process group every process of this child is in.
    pub fn group(&self) -> i32 {
        self.group.as_raw()
    }

    /// The program's stdin, once.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    /// The program's stdout, once.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.stdout.take()
    }

    /// Waits for the program to end on its own, then kills whatever it left
    /// in its group. Cancel-safe.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(s) = self.exited {
            return Ok(s);
        }
        let status = self.inner.wait().await?;
        self.exited = Some(status);
        self.kill_group(Signal::SIGKILL);
        tracing::info!(child = %self.name, status = %describe(status), "child exited");
        Ok(status)
    }

    /// SIGTERM to the group, up to the grace period for it to end, then
    /// SIGKILL to the group. Returns the guard's exit status.
    pub async fn stop(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(s) = self.exited {
            // `wait` already killed the group right after reaping the guard.
            return Ok(s);
        }
        self.kill_group(Signal::SIGTERM);
        // The guard itself waits the grace and SIGKILLs the group; give it
        // a moment beyond that before doing it from here.
        let bound = self.grace + Duration::from_secs(1);
        let status = match tokio::time::timeout(bound, self.inner.wait()).await {
            Ok(s) => s?,
            Err(_) => {
                self.kill_group(Signal::SIGKILL);
                self.inner.wait().await?
            }
        };
        self.kill_group(Signal::SIGKILL);
        self.exited = Some(status);
        tracing::info!(child = %self.name, status = %describe(status), "child stopped");
        Ok(status)
    }

    fn kill_group(&self, signal: Signal) {
        // ESRCH: the group is already empty, which is the goal.
        let _ = killpg(self.group, signal);
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Once the guard is reaped and its group killed, the group's id is
        // free for the kernel to hand out again: signal it no more.
        if self.exited.is_none() {
            self.kill_group(Signal::SIGKILL);
        }
    }
}

/// Logs the child's stderr line by line. A line is read at most
/// `MAX_LOG_LINE` bytes at a time, so a child writing without newlines
/// can't make the daemon buffer without bound; the rest of a longer line is
/// skipped.
async fn log_lines(name: String, stderr: tokio::process::ChildStderr) {
    let mut lines = BufReader::new(stderr);
    let mut buf = Vec::new();
    let mut skipping = false;
    loop {
        buf.clear();
        let limit = MAX_LOG_LINE as u64;
        match (&mut lines).take(limit).read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let ended = buf.last() == Some(&b'\n');
                if !std::mem::replace(&mut skipping, !ended) {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end();
                    if !line.is_empty() {
                        tracing::info!(child = %name, stream = "stderr", "{line}");
                    }
                }
            }
        }
    }
}

/// `exited 0`, `exited 3`, `killed by SIGKILL`: an exit status for a person.
pub fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited {c}"),
        (None, Some(s)) => match Signal::try_from(s) {
            Ok(sig) => format!("killed by {}", sig.as_str()),
            Err(_) => format!("killed by signal {s}"),
        },
        _ => "ended".into(),
    }
}

/// The state of a supervised child, for `/status` and metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum ChildState {
    /// Being started.
    Starting,
    /// Running since the given unix time.
    Running {
        /// Unix time it started.
        since: i64,
    },
    /// Waiting to be restarted after it ended.
    Backoff {
        /// How it ended.
        last_exit: String,
        /// Seconds until the restart.
        retry_in_s: f64,
    },
    /// Restarted too often; left stopped until the daemon restarts or an
    /// operator asks.
    Failed {
        /// How it last ended.
        last_exit: String,
    },
    /// Stopped by the daemon (drain).
    Stopped,
}

/// Restart policy: jittered exponential backoff, and a cap of restarts
/// within a window after which the child is left failed.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    /// Delay schedule between restarts.
    pub backoff: Backoff,
    /// Most restarts within `window`.
    pub max_restarts: u32,
    /// The window `max_restarts` counts in.
    pub window: Duration,
    /// A run at least this long resets the backoff to its first step.
    pub healthy_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            backoff: Backoff {
                base: Duration::from_millis(500),
                max: Duration::from_secs(30),
                jitter: crate::backoff::Jitter::Half,
            },
            max_restarts: 5,
            window: Duration::from_secs(300),
            healthy_after: Duration::from_secs(60),
        }
    }
}

/// What the supervisor does after a child ended: a pure function of the
/// policy, the times of earlier restarts and how long the last run lasted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RestartDecision {
    /// Restart after this long; the attempt number is for the backoff.
    After(u32),
    /// Give up: `max_restarts` within `window` reached.
    GiveUp,
}

impl RestartPolicy {
    /// Decides the next step. `recent` are the restart times (seconds,
    /// monotonic) so far, `now` the time of this exit, `ran` how long the
    /// run that just ended lasted, `attempt` the backoff step so far.
    pub fn decide(&self, recent: &[f64], now: f64, ran: Duration, attempt: u32) -> RestartDecision {
        let window = self.window.as_secs_f64();
        let in_window = recent.iter().filter(|t| now - **t < window).count();
        if in_window >= self.max_restarts as usize {
            return RestartDecision::GiveUp;
        }
        if ran >= self.healthy_after {
            RestartDecision::After(1)
        } else {
            RestartDecision::After(attempt + 1)
        }
    }
}

/// A child kept running: started, restarted with backoff when it ends,
/// given up on after too many restarts, stopped with its whole group when
/// the task group is cancelled. `on_start` gets each new incarnation (to
/// take its stdin/stdout) and runs beside it.
pub struct Supervisor {
    spec: ChildSpec,
    policy: RestartPolicy,
    state: Arc<Mutex<ChildState>>,
}

impl Supervisor {
    /// A supervisor for `spec` (nothing runs until [`Supervisor::run`]).
    pub fn new(spec: ChildSpec, policy: RestartPolicy) -> Self {
        Self {
            spec,
            policy,
            state: Arc::new(Mutex::new(ChildState::Starting)),
        }
    }

    /// A handle on the child's state that stays current.
    pub fn state(&self) -> Arc<Mutex<ChildState>> {
        self.state.clone()
    }

    /// Runs until `cancel` fires (then stops the child) or the restart cap
    /// is reached. For [`crate::tasks::TaskGroup::spawn`].
    pub async fn run<F, Fut>(self, cancel: crate::tasks::CancellationToken, mut on_start: F)
    where
        F: FnMut(&mut Child) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let clock = std::time::Instant::now();
        let mut restarts: Vec<f64> = Vec::new();
        let mut attempt = 0u32;
        let set = |s: ChildState| *crate::sync::lock(&self.state) = s;
        loop {
            set(ChildState::Starting);
            let started = std::time::Instant::now();
            let last_exit = match Child::spawn(&self.spec) {
                Ok(mut child) => {
                    set(ChildState::Running {
                        since: crate::clock::unix_now(),
                    });
                    let beside = tokio::spawn(on_start(&mut child));
                    let exit = tokio::select! {
                        () = cancel.cancelled() => {
                            beside.abort();
                            let _ = child.stop().await;
                            set(ChildState::Stopped);
                            return;
                        }
                        s = child.wait() => s,
                    };
                    beside.abort();
                    match exit {
                        Ok(s) => describe(s),
                        Err(e) => format!("wait failed: {e}"),
                    }
                }
                Err(e) => {
                    tracing::error!(child = %self.spec.name, error = %e, "cannot start child");
                    e.to_string()
                }
            };
            let now = clock.elapsed().as_secs_f64();
            match self
                .policy
                .decide(&restarts, now, started.elapsed(), attempt)
            {
                RestartDecision::GiveUp => {
                    tracing::error!(
                        child = %self.spec.name,
                        %last_exit,
                        max_restarts = self.policy.max_restarts,
                        window_s = self.policy.window.as_secs_f64(),
                        "child restarted too often; leaving it stopped"
                    );
                    set(ChildState::Failed { last_exit });
                    cancel.cancelled().await;
                    return;
                }
                RestartDecision::After(n) => {
                    attempt = n;
                    let wait = self.policy.backoff.next(n);
                    tracing::warn!(child = %self.spec.name, %last_exit, retry_in_s = wait.as_secs_f64(), "child ended; restarting");
                    set(ChildState::Backoff {
                        last_exit,
                        retry_in_s: wait.as_secs_f64(),
                    });
                    // Only the window counts; older restarts are forgotten.
                    let window = self.policy.window.as_secs_f64();
                    restarts.retain(|t| now - t < window);
                    restarts.push(now);
                    tokio::select! {
                        () = cancel.cancelled() => { set(ChildState::Stopped); return; }
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }
}

/// When this process was started as a guard (by [`Child::spawn`]), runs the
/// guard to its end and returns its exit code; otherwise `None` at once.
/// Every daemon's `main` calls it first (through `run_daemon`).
pub fn guard_if_requested() -> Option<ExitCode> {
    let name = std::env::var_os(GUARD_ENV)?;
    Some(guard_main(&name.to_string_lossy()))
}

/// The guard: see the module doc. Runs the program given as the first
/// argument with the rest, in this process's group.
pub fn guard_main(name: &str) -> ExitCode {
    match guard(name) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hwc-ai guard for `{name}`: {e}");
            ExitCode::from(126)
        }
    }
}

fn guard(name: &str) -> Result<ExitCode, String> {
    use nix::sys::resource::{setrlimit, Resource};
    let env = |k: &str| std::env::var(k).ok();
    let parent: i32 = env(PARENT_ENV)
        .and_then(|p| p.parse().ok())
        .ok_or("started without its parent's pid; start children through hwc_ai_core::process")?;
    let grace = Duration::from_millis(env(GRACE_ENV).and_then(|g| g.parse().ok()).unwrap_or(5000));
    let limits = Limits::decode(&env(LIMITS_ENV).unwrap_or_default())
        .ok_or_else(|| format!("{LIMITS_ENV} is malformed"))?;
    nix::sys::prctl::set_pdeathsig(Some(Signal::SIGTERM))
        .map_err(|e| format!("cannot set PR_SET_PDEATHSIG: {e}"))?;
    // `slack` lifts the hard limit above the soft one: for CPU time the
    // soft limit sends SIGXCPU (which says why), the hard one SIGKILL.
    let set = |r: Resource, v: Option<u64>, slack: u64, what: &str| -> Result<(), String> {
        match v {
            Some(v) => setrlimit(r, v, v.saturating_add(slack))
                .map_err(|e| format!("cannot set the {what} limit to {v}: {e}")),
            None => Ok(()),
        }
    };
    set(
        Resource::RLIMIT_AS,
        limits.address_space_bytes,
        0,
        "address space",
    )?;
    set(Resource::RLIMIT_NOFILE, limits.open_files, 0, "open files")?;
    set(Resource::RLIMIT_CPU, limits.cpu_seconds, 2, "CPU time")?;

    let mut args = std::env::args_os().skip(1);
    let program = args.next().ok_or("no program to run")?;
    let group = nix::unistd::getpgrp();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the guard's runtime: {e}"))?;
    runtime.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        // Signals first: a parent that died before this point must still
        // be noticed, so its pid is checked after the handlers are in.
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        if nix::unistd::getppid().as_raw() != parent {
            return Ok(ExitCode::from(0));
        }
        let mut child = tokio::process::Command::new(&program)
            .args(args)
            .env_remove(GUARD_ENV)
            .env_remove(PARENT_ENV)
            .env_remove(GRACE_ENV)
            .env_remove(LIMITS_ENV)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", program.to_string_lossy()))?;
        let status = tokio::select! {
            s = child.wait() => s.map_err(|e| e.to_string())?,
            _ = term.recv() => return Ok(end_group(group, &mut child, grace).await),
            _ = int.recv() => return Ok(end_group(group, &mut child, grace).await),
        };
        // Whatever the program left behind goes now: the daemon may be
        // gone already (its death closed the program's stdin, which is
        // often why the program ended) and can't be trusted to do it.
        kill_group_but_me(group);
        eprintln_if_signalled(name, status);
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(1);
        Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
    })
}

/// SIGTERM to the group, the grace, then SIGKILL to the group (this guard
/// included, so this usually does not return).
async fn end_group(group: Pid, child: &mut tokio::process::Child, grace: Duration) -> ExitCode {
    let _ = killpg(group, Signal::SIGTERM);
    let _ = tokio::time::timeout(grace, child.wait()).await;
    let _ = killpg(group, Signal::SIGKILL);
    ExitCode::from(143)
}

/// SIGKILLs every live process of `group` except this one, from /proc,
/// until none is left (a process forked meanwhile is found by the next
/// pass; a killed one can fork no more).
fn kill_group_but_me(group: Pid) {
    let me = std::process::id() as i32;
    for _ in 0..100 {
        let others: Vec<i32> = group_members(group.as_raw())
            .into_iter()
            .filter(|p| *p != me)
            .collect();
        if others.is_empty() {
            return;
        }
        for pid in others {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// The live (not zombie) processes whose process group is `pgid`, read
/// from /proc. Public for tests that prove a group is gone.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid pgrp ...`: comm may hold spaces and
            // parentheses, so the fields start after the last ')'.
            let (_, rest) = stat.rsplit_once(')')?;
            let mut fields = rest.split_whitespace();
            let state = fields.next()?;
            let pgrp: i32 = fields.nth(1)?.parse().ok()?;
            (state != "Z" && pgrp == pgid).then_some(pid)
        })
        .collect()
}

fn eprintln_if_signalled(name: &str, status: ExitStatus) {
    if status.code().is_none() {
        eprintln!("hwc-ai guard: `{name}` {}", describe(status));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn limits_round_trip_through_the_environment() {
        let l = Limits {
            address_space_bytes: Some(1 << 30),
            open_files: None,
            cpu_seconds: Some(3),
        };
        assert_eq!(l.encode(), "1073741824,-,3");
        assert_eq!(Limits::decode(&l.encode()), Some(l));
        assert_eq!(Limits::decode("1,2"), None);
        assert_eq!(Limits::decode("x,-,-"), None);
    }

    #[test]
    fn restart_decisions() {
        let p = RestartPolicy {
            max_restarts: 3,
            window: Duration::from_secs(60),
            healthy_after: Duration::from_secs(10),
            ..RestartPolicy::default()
        };
        let quick = Duration::from_secs(1);
        let table: [(&[f64], f64, Duration, u32, RestartDecision); 5] = [
            (&[], 0.0, quick, 0, RestartDecision::After(1)),
            (&[1.0], 2.0, quick, 1, RestartDecision::After(2)),
            (&[1.0, 2.0, 3.0], 4.0, quick, 3, RestartDecision::GiveUp),
            // Old restarts fall out of the window.
            (&[1.0, 2.0, 3.0], 70.0, quick, 3, RestartDecision::After(4)),
            // A long healthy run resets the backoff.
            (
                &[1.0],
                200.0,
                Duration::from_secs(30),
                4,
                RestartDecision::After(1),
            ),
        ];
        for (recent, now, ran, attempt, want) in table {
            assert_eq!(
                p.decide(recent, now, ran, attempt),
                want,
                "{recent:?} at {now}"
            );
        }
    }
}
