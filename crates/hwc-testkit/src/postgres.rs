//! A real PostgreSQL server for tests: Debian's `postgresql` package
//! (installed by scripts/setup.sh), a fresh cluster in a temporary
//! directory on a free loopback port, trust auth, `fsync = on`. One server
//! per test binary ([`shared`]); each test takes its own database
//! ([`Postgres::database`]). As root (CI), the cluster runs as the
//! `postgres` user, since PostgreSQL refuses to run as root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The directory holding `initdb`, `postgres` and `createdb`, or a panic
/// saying how to get them.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HWC_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL is missing (no /usr/lib/postgresql/*/bin/initdb); run scripts/setup.sh first (it installs Debian's postgresql), or set HWC_TEST_PG_BIN")
    })
}

/// A running server; it dies with the test process.
pub struct Postgres {
    /// Its port on 127.0.0.1.
    pub port: u16,
    bin: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
    next: AtomicUsize,
}

impl Postgres {
    /// A new empty database on this server, as a `postgres://` URL.
    pub fn database(&self, prefix: &str) -> String {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let name = format!("{prefix}_{}_{n}", std::process::id());
        let out = Command::new(self.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "hwc",
                &name,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "createdb {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("postgres://hwc@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server and waits for it.
    pub fn stop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn postgres_uid() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&"postgres"))
            .then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))?
    })
}

/// `program args…`, as the `postgres` user when we are root.
fn as_owner(program: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Starts a fresh cluster.
pub fn start() -> Postgres {
    let bin = bin_dir();
    let dir = tempfile::tempdir().unwrap();
    let root = is_root();
    if root {
        let (uid, gid) = postgres_uid().expect("running as root, but there is no `postgres` user to run PostgreSQL as; install Debian's postgresql");
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
    }
    let data = dir.path().join("data");
    let out = as_owner(&bin.join("initdb"), root)
        .arg("-D")
        .arg(&data)
        .args(["-U", "hwc", "--auth=trust", "-E", "UTF8", "--no-sync"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = crate::free_port();
    let log = dir.path().join("postgres.log");
    let postgres = bin.join("postgres");
    let mut cmd = if root {
        let mut c = crate::held_by_pipe(Path::new("/usr/sbin/runuser"), Some(&log));
        c.args(["-u", "postgres", "--"]).arg(&postgres);
        c
    } else {
        crate::held_by_pipe(&postgres, Some(&log))
    };
    cmd.arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(dir.path())
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=on"]);
    let child = cmd.spawn().unwrap();
    let t0 = Instant::now();
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "PostgreSQL did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Postgres {
        port,
        bin,
        child,
        _dir: dir,
        next: AtomicUsize::new(0),
    }
}

fn is_root() -> bool {
    // The effective uid from /proc, without a libc dependency here.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// One server for the whole test binary.
pub fn shared() -> &'static Postgres {
    static SERVER: OnceLock<Postgres> = OnceLock::new();
    SERVER.get_or_init(start)
}
