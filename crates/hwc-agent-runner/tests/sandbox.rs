//! The shell sandbox with the real bubblewrap (Debian's `bubblewrap`,
//! installed by scripts/setup.sh): what a command inside can and cannot do.

use hwc_agent_runner::sandbox::{self, SandboxConfig, ShellRun};
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Box_ {
    ws: tempfile::TempDir,
    state: tempfile::TempDir,
}

fn new_box() -> Box_ {
    Box_ {
        ws: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
        state: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
    }
}

async fn sh(
    b: &Box_,
    line: &str,
    network: bool,
    timeout_ms: u64,
) -> hwc_agent_runner::exec::Outcome {
    let cfg = SandboxConfig::default();
    sandbox::run(
        &cfg,
        &ShellRun {
            line,
            workspace: b.ws.path(),
            network,
            timeout: Duration::from_millis(timeout_ms),
        },
        &[b.state.path().to_path_buf()],
    )
    .await
    .unwrap_or_else(|e| panic!("{line}: {e}"))
}

fn out(o: &hwc_agent_runner::exec::Outcome) -> String {
    format!("{}{}", o.stdout.excerpt(), o.stderr.excerpt())
}

#[tokio::test]
async fn only_the_workspace_is_writable() {
    let b = new_box();
    let o = sh(&b, "echo hi > note.txt && cat note.txt", false, 10_000).await;
    assert!(o.success(), "{}", out(&o));
    assert_eq!(
        std::fs::read_to_string(b.ws.path().join("note.txt")).unwrap_or_default(),
        "hi\n"
    );
    for target in [
        "/etc/hwc-sandbox-test",
        "/usr/hwc-sandbox-test",
        "/root/hwc-sandbox-test",
    ] {
        let o = sh(&b, &format!("echo x > {target}"), false, 10_000).await;
        assert!(!o.success(), "{target} was writable");
        assert!(!Path::new(target).exists());
    }
    // /tmp is private: the host's files there are not visible (only the
    // mount points of this test's own temporary directories).
    std::fs::write(std::env::temp_dir().join("hwc-sandbox-visible"), "x").unwrap_or_default();
    let o = sh(&b, "ls -A /tmp", false, 10_000).await;
    assert!(
        !o.stdout.excerpt().contains("hwc-sandbox-visible"),
        "{}",
        out(&o)
    );
}

#[tokio::test]
async fn the_runners_state_and_environment_are_hidden() {
    let b = new_box();
    std::fs::write(b.state.path().join("runner.db"), "secret rows").unwrap_or_default();
    let o = sh(
        &b,
        &format!("ls -A {}; env", b.state.path().display()),
        false,
        10_000,
    )
    .await;
    let text = out(&o);
    assert!(!text.contains("runner.db"), "{text}");
    assert!(
        !text.contains("CARGO"),
        "the runner's environment leaked: {text}"
    );
    assert!(text.contains("HOME="), "{text}");
}

#[tokio::test]
async fn no_network_unless_granted() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let probe = format!(
        "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), timeout=2); print(\"connected\")'"
    );
    let b = new_box();
    let o = sh(&b, &probe, false, 10_000).await;
    assert!(!o.success(), "connected without a grant: {}", out(&o));
    let o = sh(&b, &probe, true, 10_000).await;
    assert!(o.success(), "{}", out(&o));
    assert!(o.stdout.excerpt().contains("connected"));
}

#[tokio::test]
async fn processes_inside_cannot_see_or_signal_the_host() {
    let b = new_box();
    // kill -9 -1 kills everything the sandbox can see: only itself.
    let o = sh(
        &b,
        "ls /proc | grep -c '^[0-9]'; kill -9 -1; true",
        false,
        10_000,
    )
    .await;
    let visible: u32 = o
        .stdout
        .excerpt()
        .trim()
        .lines()
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(99);
    assert!(visible <= 4, "saw {visible} processes: {}", out(&o));
    // This test process is still here to assert it.
}

#[tokio::test]
async fn a_timeout_ends_the_whole_tree() {
    let b = new_box();
    let marker = format!("302.{}", std::process::id());
    let o = sh(
        &b,
        &format!("sleep {marker} & sleep {marker} & wait"),
        false,
        500,
    )
    .await;
    assert!(o.timed_out);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let left = std::process::Command::new("pgrep")
        .args(["-f", &format!("sleep {marker}")])
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "left behind: {}",
        String::from_utf8_lossy(&left)
    );
}

#[tokio::test]
async fn without_user_namespaces_it_fails_closed() {
    // A scripted bubblewrap that fails as the real one does where user
    // namespaces are forbidden (this machine allows them, so the real
    // failure can't be produced on demand).
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake: PathBuf = dir.path().join("bwrap");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'bwrap: No permissions to create a new namespace, likely because the kernel does not allow non-privileged user namespaces.' >&2\nexit 1\n",
    )
    .unwrap_or_default();
    std::process::Command::new("chmod")
        .args(["+x"])
        .arg(&fake)
        .status()
        .ok();
    let cfg = SandboxConfig {
        bwrap: fake,
        ..SandboxConfig::default()
    };
    let ws = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let r = sandbox::run(
        &cfg,
        &ShellRun {
            line: "touch ran",
            workspace: ws.path(),
            network: false,
            timeout: Duration::from_secs(5),
        },
        &[],
    )
    .await;
    let e = r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        e.contains("fail closed") && e.contains("was not run"),
        "{e}"
    );
    assert!(!ws.path().join("ran").exists());
    assert!(sandbox::probe(&cfg).await.is_err());
    assert_eq!(sandbox::probe(&SandboxConfig::default()).await, Ok(()));
}
