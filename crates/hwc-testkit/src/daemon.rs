//! A daemon binary driven the way an operator and systemd drive it:
//! `--check-config`, and the systemd contract every hwc-ai daemon keeps
//! ([`assert_systemd_contract`]): READY=1 with a STATUS= line over a real
//! notify socket, watchdog pets, health and metrics, SIGHUP handled without
//! ending the process, SIGTERM drained with STOPPING=1 and exit 0, and
//! serving on a socket passed by `systemd-socket-activate`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// For each `(toml, want)`: `bin --config <toml> --check-config` exits 2
/// and its stderr contains `want` (the key or target and what to change).
pub fn assert_check_config_rejects(bin: &str, cases: &[(&str, &str)]) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (toml, want) in cases {
        let path = dir.join("bad.toml");
        std::fs::write(&path, toml).unwrap();
        let out = Command::new(bin)
            .arg("--config")
            .arg(&path)
            .arg("--check-config")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{toml}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "want `{want}` in: {err}");
    }
}

/// `bin --config <example> --check-config`, run from the repository root,
/// succeeds; returns its stdout.
pub fn assert_check_config_accepts(bin: &str, repo_root: &Path, example: &str) -> String {
    let out = Command::new(bin)
        .args(["--config", example, "--check-config"])
        .current_dir(repo_root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `bin` with `config` (TOML whose `{listen}` is replaced by the address
/// to serve on) and `files` (name, content) written beside it, which is
/// also `$CREDENTIALS_DIRECTORY`, `$STATE_DIRECTORY` and the working
/// directory, as under systemd's `LoadCredential` and `StateDirectory`.
/// Panics naming the first broken promise.
pub fn assert_systemd_contract(bin: &str, config: &str, files: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let port = crate::free_port();
    let cfg = dir.path().join("daemon.toml");
    std::fs::write(
        &cfg,
        config.replace("{listen}", &format!("127.0.0.1:{port}")),
    )
    .unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();

    let mut child = as_unit(Command::new(bin), &cfg, dir.path())
        .stderr(Stdio::piped())
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .spawn()
        .unwrap();
    let stderr = drain_stderr(&mut child);

    let ready = recv_until(&sock, "READY=1", Duration::from_secs(15), bin);
    let serving = format!("serving on 127.0.0.1:{port}");
    assert!(
        ready.contains("STATUS=") && ready.contains(&serving),
        "{bin}: READY=1 must come with `STATUS=... {serving}`; got {ready:?}"
    );
    recv_until(&sock, "WATCHDOG=1", Duration::from_secs(2), bin);
    recv_until(&sock, "WATCHDOG=1", Duration::from_secs(2), bin);

    let (code, body) = crate::http_get(port, "/healthz").expect("no answer on /healthz");
    assert_eq!(code, 200, "{bin}: /healthz: {body}");
    let (code, body) = crate::http_get(port, "/metrics").expect("no answer on /metrics");
    assert_eq!(code, 200, "{bin}: /metrics");
    assert!(
        body.contains("# TYPE hwc_"),
        "{bin}: /metrics has no hwc_ metric:\n{body}"
    );

    signal(&child, "HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "{bin}: SIGHUP ended the daemon; it must reload or ignore it"
    );
    assert_eq!(
        crate::http_get(port, "/healthz").map(|r| r.0),
        Some(200),
        "{bin}: not serving after SIGHUP"
    );

    signal(&child, "TERM");
    recv_until(&sock, "STOPPING=1", Duration::from_secs(5), bin);
    let status = wait_exit(&mut child, Duration::from_secs(15), bin);
    let log = stderr.join().unwrap();
    assert!(
        status.success(),
        "{bin}: SIGTERM must end in exit 0, got {status:?}\n{log}"
    );
    assert!(
        log.contains("drained"),
        "{bin}: no drain in the log:\n{log}"
    );
    assert!(log.contains("SIGHUP"), "{bin}: SIGHUP not logged:\n{log}");

    // Socket activation: the socket systemd passes wins over server.listen.
    let activate = which("systemd-socket-activate").unwrap_or_else(|| {
        panic!(
            "systemd-socket-activate missing: scripts/setup.sh installs Debian's systemd package"
        )
    });
    let passed = crate::free_port();
    std::fs::write(&cfg, config.replace("{listen}", "127.0.0.1:1")).unwrap();
    let mut activated = Command::new(activate);
    activated.args(["-l", &format!("127.0.0.1:{passed}"), bin]);
    let mut child = as_unit(activated, &cfg, dir.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        // systemd-socket-activate starts the daemon on the first connection.
        if let Some((200, _)) = crate::http_get(passed, "/healthz") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "{bin}: no answer on the socket passed by systemd-socket-activate"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(15), bin);
    assert!(
        status.success(),
        "{bin}: socket-activated run must exit 0 on SIGTERM, got {status:?}"
    );
}

/// `c --config cfg` run the way its unit would: `dir` as working,
/// credentials and state directory, no socket inherited by accident.
fn as_unit(mut c: Command, cfg: &Path, dir: &Path) -> Command {
    c.arg("--config")
        .arg(cfg)
        .current_dir(dir)
        .env("CREDENTIALS_DIRECTORY", dir)
        .env("STATE_DIRECTORY", dir)
        .env_remove("LISTEN_FDS")
        .stdout(Stdio::null());
    c
}

/// Reads the child's stderr to the end in a thread (so a chatty daemon
/// never blocks on a full pipe); joins to the whole log.
fn drain_stderr(child: &mut Child) -> std::thread::JoinHandle<String> {
    let mut err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    })
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill -{sig} failed");
}

fn wait_exit(child: &mut Child, within: Duration, bin: &str) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if t0.elapsed() > within {
            let _ = child.kill();
            panic!("{bin}: did not exit within {within:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for a notify message containing `want`; returns it.
pub fn recv_until(sock: &UnixDatagram, want: &str, within: Duration, who: &str) -> String {
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    let mut seen = String::new();
    while t0.elapsed() < within {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            if msg.contains(want) {
                return msg;
            }
            seen.push_str(&msg);
            seen.push('|');
        }
    }
    panic!("{who}: no `{want}` on the notify socket within {within:?}; got: {seen}");
}

/// An executable on `PATH`.
pub fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `promtool check metrics` (Debian's prometheus package) finds nothing to
/// say about `text`, a daemon's `/metrics`.
pub fn assert_promtool_clean(text: &str) {
    use std::io::Write;
    let Some(promtool) = which("promtool") else {
        panic!("promtool missing: scripts/setup.sh installs Debian's prometheus package");
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool:\n{report}\n{text}"
    );
}
