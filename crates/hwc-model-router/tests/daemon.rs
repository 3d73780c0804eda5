//! The `hwc-model-router` binary as systemd runs it: sd_notify READY, STATUS,
//! watchdog pets and STOPPING over a real notify socket, a SIGTERM that
//! drains the request in flight and exits 0, and `--check-config`.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::scripted::{answer, Act, Upstream};
use hwc_testkit::daemon::{
    assert_check_config_accepts, assert_check_config_rejects, assert_systemd_contract, recv_until,
};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hwc-model-router");

fn write_config(dir: &std::path::Path, upstream: &str, port: u16) -> std::path::PathBuf {
    std::fs::write(dir.join("keys.toml"), common::KEYS).unwrap();
    let cfg = dir.join("router.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
drain_timeout = "10s"
[auth]
keys_file = "keys.toml"
[state]
database = "router.sqlite"
[[backends]]
name = "slow"
kind = "openai"
urls = ["{upstream}"]
[models.small]
targets = [{{ backend = "slow", model = "m" }}]
"#
        ),
    )
    .unwrap();
    cfg
}

#[tokio::test]
async fn notifies_systemd_and_drains_on_sigterm() {
    let up = Upstream::always(Act::After(
        Duration::from_millis(800),
        Box::new(answer("slow answer")),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let port = hwc_testkit::free_port();
    let cfg = write_config(dir.path(), &up.url(), port);
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();

    // Credentials and state resolve like systemd's LoadCredential and StateDirectory.
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .current_dir("/")
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .env("CREDENTIALS_DIRECTORY", dir.path())
        .env("STATE_DIRECTORY", dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let ready = recv_until(&sock, "READY=1", Duration::from_secs(10), BIN);
    assert!(
        ready.contains(&format!(
            "STATUS=hwc-model-router serving on 127.0.0.1:{port}"
        )),
        "{ready}"
    );
    recv_until(&sock, "WATCHDOG=1", Duration::from_secs(2), BIN);
    assert!(
        dir.path().join("router.sqlite").exists(),
        "database under STATE_DIRECTORY"
    );

    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let inflight = tokio::spawn(async move {
        common::client()
            .post(url)
            .bearer_auth(common::ALICE)
            .json(&serde_json::json!({"model": "small", "messages": [{"role": "user", "content": "x"}]}))
            .send()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    recv_until(&sock, "STOPPING=1", Duration::from_secs(2), BIN);

    let resp = inflight.await.unwrap();
    assert_eq!(
        resp.status(),
        200,
        "the request in flight is drained, not cut"
    );
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "daemon did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("drained"), "{stderr}");
    assert!(!stderr.contains("sk-alice"), "no secret in logs");
}

#[test]
fn check_config_accepts_the_example_and_names_bad_keys() {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let out = assert_check_config_accepts(BIN, root, "examples/router.toml");
    assert!(out.contains("configuration OK"), "{out}");
    let cases = [
        ("[server]\nlsten = \"127.0.0.1:1\"\n", "server.lsten"),
        ("[auth]\nallow_anonymous = true\n[[backends]]\nname = \"a\"\nkind = \"openai\"\nurls = [\"not a url\"]\n", "does not parse"),
        ("[auth]\nallow_anonymous = true\n[models.m]\ntargets = [{ backend = \"ghost\", model = \"x\" }]\n", "backend `ghost`, which is not defined"),
        ("[auth]\nkeys_file = \"/nonexistent/keys.toml\"\n", "cannot read secret file /nonexistent/keys.toml"),
        ("[auth]\nallow_anonymous = true\n[aliases]\ndefault = \"nothing\"\n", "alias `default` points to `nothing`"),
        ("[auth]\nallow_anonymous = true\n[[backends]]\nname = \"a\"\nkind = \"openai\"\nurls = [\"http://127.0.0.1:1/v1\"]\n[models.m]\ntargets = [{ backend = \"a\", model = \"x\" }]\n[aliases]\nauto = \"m\"\n", "alias `auto` clashes with the auto model's name"),
        ("[telemetry]\nendpoint = \"http://127.0.0.1:4318\"\n", "telemetry.endpoint"),
        ("[telemetry]\nsample_ratio = 2.0\n", "telemetry.sample_ratio is 2"),
        ("[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318/v1/traces\"\n", "the exporter adds /v1/traces itself"),
    ];
    assert_check_config_rejects(BIN, &cases);
    // `[telemetry]` is every daemon's (docs/router.md).
    let tmp = tempfile::tempdir().unwrap();
    let traced = tmp.path().join("traced.toml");
    std::fs::write(
        &traced,
        "[auth]\nallow_anonymous = true\n[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\nsample_ratio = 0.25\n",
    )
    .unwrap();
    assert_check_config_accepts(BIN, root, traced.to_str().unwrap());
}

#[test]
fn keeps_the_systemd_contract() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &common::dead_url(), 1);
    let text = std::fs::read_to_string(cfg)
        .unwrap()
        .replace("listen = \"127.0.0.1:1\"", "listen = \"{listen}\"");
    assert_systemd_contract(BIN, &text, &[("keys.toml", common::KEYS)]);
}

#[tokio::test]
async fn sighup_reloads_keys_and_keeps_them_when_the_file_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let port = hwc_testkit::free_port();
    let cfg = write_config(dir.path(), &common::dead_url(), port);
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .current_dir(dir.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let models = |key: &'static str| {
        let url = format!("http://127.0.0.1:{port}/v1/models");
        async move {
            match common::client().get(url).bearer_auth(key).send().await {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            }
        }
    };
    let t0 = Instant::now();
    while models(common::ALICE).await != 200 {
        assert!(t0.elapsed() < Duration::from_secs(10), "router not serving");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(models("sk-rotated").await, 401);

    let hup = |pid: u32| {
        Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
    };
    std::fs::write(
        dir.path().join("keys.toml"),
        format!(
            "{}\n[[keys]]\nname = \"rotated\"\nsecret = \"sk-rotated\"\n",
            common::KEYS
        ),
    )
    .unwrap();
    assert!(hup(child.id()).success());
    let t0 = Instant::now();
    while models("sk-rotated").await != 200 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "new key not in force after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A broken file is refused; the keys in force stay and the daemon lives on.
    std::fs::write(dir.path().join("keys.toml"), "[[keys]]\nname = \n").unwrap();
    assert!(hup(child.id()).success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(models("sk-rotated").await, 200);
    assert_eq!(models(common::ALICE).await, 200);
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP must not end the daemon"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
}
