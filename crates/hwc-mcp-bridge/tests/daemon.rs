//! The binary: `--check-config` accepts the example and names what is
//! wrong; the systemd contract (READY, STATUS, watchdog, SIGHUP, SIGTERM
//! drain with the children stopped, socket activation).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use hwc_testkit::daemon::{assert_check_config_rejects, assert_systemd_contract};

const BIN: &str = common::BIN;

#[test]
fn check_config_accepts_the_example_and_names_what_is_wrong() {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let creds = tempfile::tempdir().unwrap();
    for f in ["mcp-admin-token", "open-webui-token", "everything-api-key"] {
        std::fs::write(creds.path().join(f), "sk-x\n").unwrap();
    }
    let time_dir = hwc_testkit::mcp::time_server()
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        time_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new(BIN)
        .args(["--config", "examples/mcp-bridge.toml", "--check-config"])
        .current_dir(root)
        .env("CREDENTIALS_DIRECTORY", creds.path())
        .env("PATH", &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "configuration OK: 2 servers (time, everything), listening on 127.0.0.1:8471"
        ),
        "{stdout}"
    );

    let ok = "[[servers]]\nname = \"a\"\ncommand = \"/bin/sh\"\n";
    let cases = [
        (
            "[[servers]]\nname = \"a\"\ncommand = \"/nonexistent/mcp\"\n",
            "server `a`: command `/nonexistent/mcp` does not exist",
        ),
        (
            "[[servers]]\nname = \"a\"\ncommand = \"no-such-mcp-server\"\n",
            "is not in PATH",
        ),
        (
            &format!("{ok}isolation = \"per-session\"\nmax_children = 0\n"),
            "max_children must be at least 1",
        ),
        (
            &format!("{ok}env_files = {{ K = \"/nonexistent/key\" }}\n"),
            "cannot read secret file /nonexistent/key",
        ),
        (&format!("{ok}timeout = \"1s\"\n"), "timeout"),
        ("[server]\nlisten = \"0.0.0.0:8471\"\n", "not loopback"),
        ("[http]\nallowed_origin = []\n", "allowed_origin"),
        (
            "[auth]\ntoken_files = [\"/nonexistent/token\"]\n",
            "cannot read secret file /nonexistent/token",
        ),
    ];
    let cases: Vec<(&str, &str)> = cases.iter().map(|(a, b)| (*a, *b)).collect();
    assert_check_config_rejects(BIN, &cases);
}

#[test]
fn keeps_the_systemd_contract() {
    assert_systemd_contract(
        BIN,
        &format!(
            "[server]\nlisten = \"{{listen}}\"\n[auth]\ntoken_files = [\"token\"]\n{}",
            common::fault_server("f", "required = false")
        ),
        &[("token", "sk-bridge\n")],
    );
}
