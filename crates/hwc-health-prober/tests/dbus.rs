//! Healing over D-Bus: after N consecutive failures the prober calls
//! `RestartUnit`, backs off, and stops at the hourly cap; `dry_run` calls
//! nothing; `systemd_unit` reads `ActiveState`.
//!
//! Marked as such: the bus is a real `dbus-daemon`, but the systemd on it is
//! a test service implementing the Manager and Unit methods the prober
//! uses. The same restarts against a real systemd (and its polkit rule) are
//! proven in the booted-Debian tier, tests/vm/.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::Prober;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zbus::OwnedObjectPath;

struct FakeManager {
    restarts: Arc<Mutex<Vec<(String, String, Instant)>>>,
}

#[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
impl FakeManager {
    async fn restart_unit(&self, name: String, mode: String) -> zbus::fdo::Result<OwnedObjectPath> {
        self.restarts
            .lock()
            .unwrap()
            .push((name, mode, Instant::now()));
        Ok(OwnedObjectPath::try_from("/org/freedesktop/systemd1/job/1").unwrap())
    }

    async fn load_unit(&self, name: String) -> zbus::fdo::Result<OwnedObjectPath> {
        let escaped: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        Ok(OwnedObjectPath::try_from(format!("/org/freedesktop/systemd1/unit/{escaped}")).unwrap())
    }
}

struct FakeUnit {
    active: &'static str,
    sub: &'static str,
}

#[zbus::interface(name = "org.freedesktop.systemd1.Unit")]
impl FakeUnit {
    #[zbus(property)]
    async fn active_state(&self) -> String {
        self.active.into()
    }

    #[zbus(property)]
    async fn sub_state(&self) -> String {
        self.sub.into()
    }
}

struct Bus {
    daemon: Child,
    _dir: tempfile::TempDir,
    _conn: zbus::Connection,
    restarts: Arc<Mutex<Vec<(String, String, Instant)>>>,
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// A private dbus-daemon with the fake systemd on it; the prober's system
/// bus is pointed at it.
async fn bus() -> Bus {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("bus");
    let address = format!("unix:path={}", sock.display());
    let daemon = Command::new("dbus-daemon")
        .args([
            "--session",
            "--nofork",
            "--nopidfile",
            &format!("--address={address}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dbus-daemon missing: scripts/setup.sh installs Debian's dbus package");
    let t0 = Instant::now();
    while !sock.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "dbus-daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &address);
    let restarts = Arc::new(Mutex::new(Vec::new()));
    let conn = zbus::connection::Builder::address(address.as_str())
        .name("org.freedesktop.systemd1")
        .serve_at(
            "/org/freedesktop/systemd1",
            FakeManager {
                restarts: restarts.clone(),
            },
        )
        .serve_at(
            "/org/freedesktop/systemd1/unit/ollama_service",
            FakeUnit {
                active: "failed",
                sub: "failed",
            },
        )
        .serve_at(
            "/org/freedesktop/systemd1/unit/vllm_service",
            FakeUnit {
                active: "active",
                sub: "running",
            },
        )
        .serve_at(
            "/org/freedesktop/systemd1/unit/webui_service",
            FakeUnit {
                active: "activating",
                sub: "start",
            },
        )
        .build()
        .await
        .unwrap();
    Bus {
        daemon,
        _dir: dir,
        _conn: conn,
        restarts,
    }
}

fn dead_target(name: &str, extra: &str) -> String {
    format!(
        "[[targets]]\nname = \"{name}\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{}\"\ninterval = \"50ms\"\ntimeout = \"50ms\"\nfailure_threshold = 2\nrestart_unit = \"{name}.service\"\nrestart_after = 4\n{extra}",
        hwc_testkit::free_port()
    )
}

// One test function: the bus address is process-wide.
#[tokio::test]
async fn restarts_back_off_cap_and_dry_run() {
    let bus = bus().await;

    // Unit states over D-Bus.
    let p = Prober::start(
        "[defaults]\ninterval = \"100ms\"\ntimeout = \"100ms\"\nfailure_threshold = 1\n\
         [[targets]]\nname = \"ollama\"\nkind = \"systemd_unit\"\nunit = \"ollama.service\"\n\
         [[targets]]\nname = \"vllm\"\nkind = \"systemd_unit\"\nunit = \"vllm.service\"\n\
         [[targets]]\nname = \"webui\"\nkind = \"systemd_unit\"\nunit = \"webui.service\"\n",
    )
    .await;
    let t = p
        .wait_state("ollama", "down", Duration::from_secs(3), &mut Vec::new())
        .await;
    assert_eq!(t["last_error"], "ollama.service is failed (failed)");
    p.wait_state("vllm", "up", Duration::from_secs(3), &mut Vec::new())
        .await;
    p.wait_state("webui", "starting", Duration::from_secs(3), &mut Vec::new())
        .await;
    p.stop().await;

    // Restarts: after 4 failures, then 200 ms, 400 ms apart, then the cap of 3.
    let p = Prober::start(&format!(
        "[healing]\nbackoff_initial = \"200ms\"\nbackoff_max = \"1s\"\nmax_restarts_per_hour = 3\n{}",
        dead_target("ollama", "")
    ))
    .await;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(1800) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let calls = bus.restarts.lock().unwrap().clone();
    assert_eq!(calls.len(), 3, "capped at 3: {calls:?}");
    assert!(calls
        .iter()
        .all(|(u, m, _)| u == "ollama.service" && m == "replace"));
    let gap1 = calls[1].2.duration_since(calls[0].2);
    let gap2 = calls[2].2.duration_since(calls[1].2);
    // The gaps are measured where the calls arrive, not where the prober
    // decided: the first call also opens the bus connection (arriving late,
    // so its gap is short by the connect time) and each call's latency
    // varies by a little. Hence the slack; the backoff itself is exact.
    assert!(gap1 >= Duration::from_millis(100), "{gap1:?}");
    assert!(
        gap2 >= Duration::from_millis(390) && gap2 > gap1,
        "backoff doubles: {gap1:?} then {gap2:?}"
    );
    let t = p.target("ollama").await;
    assert_eq!(t["last_action"]["result"], "capped", "{t}");
    let s = p.status().await;
    let results: Vec<&str> = s["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["restarted", "restarted", "restarted", "capped"]);
    let m = p.metrics().await;
    assert_eq!(
        hwc_testkit::metric(&m, "hwc_prober_restarts_total", &["result=\"restarted\""]),
        Some(3.0)
    );
    assert_eq!(
        hwc_testkit::metric(&m, "hwc_prober_restarts_total", &["result=\"capped\""]),
        Some(1.0)
    );
    p.stop().await;

    // Dry run: logs and reports, calls nothing.
    bus.restarts.lock().unwrap().clear();
    let p = Prober::start(&format!(
        "[healing]\ndry_run = true\nbackoff_initial = \"10s\"\n{}",
        dead_target("vllm", "")
    ))
    .await;
    let t0 = Instant::now();
    loop {
        let t = p.target("vllm").await;
        if t["last_action"]["result"] == "dry_run" {
            assert!(t["last_action"]["detail"]
                .as_str()
                .unwrap()
                .contains("would restart"));
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "no dry-run action: {t}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(bus.restarts.lock().unwrap().is_empty());
    p.stop().await;
}
