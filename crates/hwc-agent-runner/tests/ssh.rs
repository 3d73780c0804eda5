//! The `ssh` tool against a real OpenSSH server (Debian's sshd, started
//! here on a loopback port with its own host key and one authorized key):
//! a command on a declared host runs and its output comes back; a host
//! whose pinned key is not the server's is refused by the client (never
//! trusted on first use); a command on a `prod` host is judged in
//! production, whatever the job's environment. Skipped without sshd,
//! except under `CI=true`.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{finish, Runner};
use hwc_testkit::scripted::{tool_call, Upstream};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

struct Sshd {
    child: Child,
    port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ssh-keygen {}", path.display());
}

fn sshd(dir: &Path) -> Option<Sshd> {
    if !Path::new(SSHD).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{SSHD} is missing; run scripts/setup.sh (Debian openssh-server)"
        );
        eprintln!("SKIPPED: {SSHD} is missing; run scripts/setup.sh");
        return None;
    }
    keygen(&dir.join("host_key"));
    keygen(&dir.join("client_key"));
    std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
    // Privilege separation needs it (the service would make it).
    let _ = std::fs::create_dir_all("/run/sshd");
    let port = hwc_testkit::free_port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             PermitRootLogin prohibit-password\nPidFile {pid}\n",
            hk = dir.join("host_key").display(),
            ak = dir.join("authorized_keys").display(),
            pid = dir.join("sshd.pid").display()
        ),
    )
    .unwrap();
    let child = Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "sshd did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Sshd { child, port })
}

fn whoami() -> String {
    String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string()
}

#[tokio::test]
async fn commands_on_declared_hosts_with_pinned_keys_and_the_hosts_environment() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(server) = sshd(d) else { return };
    let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
    std::fs::write(
        d.join("known_hosts"),
        format!("[127.0.0.1]:{} {host_pub}", server.port),
    )
    .unwrap();
    // A second name for the same server, pinned to another key.
    keygen(&d.join("other_key"));
    let other_pub = std::fs::read_to_string(d.join("other_key.pub")).unwrap();
    std::fs::write(
        d.join("known_hosts_wrong"),
        format!("[localhost]:{} {other_pub}", server.port),
    )
    .unwrap();
    let mut known = std::fs::read_to_string(d.join("known_hosts")).unwrap();
    known.push_str(&std::fs::read_to_string(d.join("known_hosts_wrong")).unwrap());
    std::fs::write(d.join("known_hosts"), known).unwrap();
    let user = whoami();
    let hosts = format!(
        "[tools.ssh]\nknown_hosts = \"{kh}\"\nkey_file = \"{key}\"\nconnect_timeout = \"5s\"\ncommand_timeout = \"20s\"\n\
         [[tools.ssh.hosts]]\nname = \"lab\"\naddress = \"127.0.0.1\"\nport = {p}\nuser = \"{user}\"\nenvironment = \"dev\"\n\
         [[tools.ssh.hosts]]\nname = \"spoofed\"\naddress = \"localhost\"\nport = {p}\nuser = \"{user}\"\nenvironment = \"dev\"\n\
         [[tools.ssh.hosts]]\nname = \"db1\"\naddress = \"127.0.0.1\"\nport = {p}\nuser = \"{user}\"\nenvironment = \"prod\"\n",
        kh = d.join("known_hosts").display(),
        key = d.join("client_key").display(),
        p = server.port,
    );
    let up = Upstream::start(
        vec![
            tool_call("ssh", r#"{"host": "lab", "command": "uname -a"}"#),
            tool_call("ssh", r#"{"host": "spoofed", "command": "uname -a"}"#),
            tool_call("ssh", r#"{"host": "nowhere", "command": "uname -a"}"#),
            // No rule names it: R2 in a dev job, but db1 is production's.
            tool_call("ssh", r#"{"host": "db1", "command": "frobnicate --now"}"#),
            tool_call(
                "ssh",
                r#"{"host": "db1", "command": "kill -0 1", "rollback": "nothing to undo"}"#,
            ),
        ],
        tool_call("finish", &finish("done", &[])),
    )
    .await;
    let r = Runner::start(&up.url(), &hosts).await;
    // A dev job: the prod host's command still waits for an approval.
    let id = r
        .job(json!({"goal": "look around", "environment": "dev"}))
        .await;
    let v = r.wait_for(&id, &["waiting_approval"]).await;
    assert_eq!(v["pending"]["risk"], "R2", "{v}");
    assert_eq!(v["pending"]["summary"], "ssh db1: kill -0 1", "{v}");
    assert_eq!(
        v["pending"]["target"],
        format!("ssh:{user}@127.0.0.1:{}", server.port)
    );
    let told: String = (0..up.calls())
        .map(|i| up.request(i).2.to_string())
        .collect();
    assert!(
        told.contains("Linux"),
        "the command ran on the host: {told}"
    );
    assert!(
        told.contains("ssh to spoofed") && told.contains("host key"),
        "a key that is not the pinned one is refused: {told}"
    );
    assert!(
        told.contains("`nowhere` is not a declared ssh host"),
        "{told}"
    );
    let events = r.events(&id).await;
    let denied = events.iter().find(|e| {
        e["kind"] == "policy.decision" && e["data"]["summary"] == "ssh db1: frobnicate --now"
    });
    assert_eq!(
        denied.map(|e| e["data"]["verdict"].clone()),
        Some(json!("deny")),
        "judged in the host's environment (prod), not the job's (dev): {events:?}"
    );
    let ran: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["kind"] == "item.completed" && e["data"]["item"]["type"] == "command_execution"
        })
        .collect();
    assert!(ran.len() >= 2, "{events:?}");
    r.stop().await;
}
