//! What a report says about its own run (the command line, the machine and
//! the source tree), the runtime the load runs on, and where the report goes.

use anyhow::Context;
use std::path::Path;

/// The load generator's runtime: `threads` tokio workers (at least one).
pub fn client_runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("bench-client")
        .enable_all()
        .build()
        .context("starting the load generator's runtime")
}

/// Runs `work` until it ends or SIGINT/SIGTERM arrives. On a signal `work`
/// is dropped, and with it every [`crate::child::Process`] it started
/// (their drop kills them), so a stopped benchmark leaves no router or
/// nginx behind holding a port.
pub async fn until_interrupted<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    tokio::select! {
        r = work => r,
        _ = int.recv() => anyhow::bail!("interrupted (SIGINT); the processes it started are stopped"),
        _ = term.recv() => anyhow::bail!("terminated (SIGTERM); the processes it started are stopped"),
    }
}

/// Prints the Markdown report to stdout, and writes it to `out` too.
pub fn emit(md: &str, out: Option<&Path>) -> anyhow::Result<()> {
    println!("{md}");
    if let Some(out) = out {
        std::fs::write(out, md).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

/// This process's arguments, quoted for a POSIX shell where needed.
pub fn command_line() -> String {
    shell_words(std::env::args())
}

/// `args` joined with spaces, each quoted for a POSIX shell where needed.
pub fn shell_words(args: impl IntoIterator<Item = String>) -> String {
    args.into_iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c));
            if plain {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
/// A command's trimmed stdout, if it ran and said something.
pub fn output_of(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// Lines describing the machine and the source tree.
pub fn machine() -> Vec<String> {
    let nproc = output_of("nproc", &[]).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into())
    });
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = output_of("uname", &["-sr"]).unwrap_or_else(|| "unknown kernel".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into());
    let mut lines = vec![format!(
        "Machine: `nproc` = {nproc}, {cpu}, {kernel}; load average at start {load}."
    )];
    if let Some(rev) = output_of("git", &["rev-parse", "--short", "HEAD"]) {
        let dirty = output_of("git", &["status", "--porcelain", "--untracked-files=no"])
            .map_or("", |_| " with uncommitted changes");
        lines.push(format!("Source: git {rev}{dirty}."));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        let words = ["a", "--x=1", "it's", ""].map(String::from);
        assert_eq!(shell_words(words), r"a --x=1 'it'\''s' ''");
    }
}
