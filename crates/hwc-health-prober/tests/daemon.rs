//! The binary: `--check-config` accepts the example and says which target
//! is wrong and what to change; SIGTERM ends it with 0.
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_hwc-health-prober");

#[test]
fn check_config_accepts_the_example_and_names_bad_targets() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let ok = Command::new(BIN)
        .args(["--config", "examples/health-prober.toml", "--check-config"])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout)
        .contains("configuration OK: 10 targets (4 with restart_unit)"));

    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[[targets]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\n[[targets]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:2\"\n", "target `a`: the name is used twice"),
        ("[[targets]]\nname = \"b\"\nkind = \"redis\"\n", "target `b`: unknown kind `redis`"),
        ("[[targets]]\nname = \"c\"\nkind = \"http\"\nurl = \"localhost:80\"\n", "target `c`: url `localhost:80`"),
        ("[[targets]]\nname = \"d\"\nkind = \"tcp\"\naddress = \"h:1\"\nsuccess_threshold = 0\n", "target `d`: failure_threshold, success_threshold and restart_after must be at least 1"),
        ("[[targets]]\nname = \"e\"\nkind = \"tcp\"\naddress = \"h:1\"\nrestart_unit = \"ollama\"\n", "restart_unit `ollama` needs its suffix"),
        ("[defaults]\nintervall = \"1s\"\n", "defaults.intervall"),
        ("[auth]\ntoken_files = [\"/nonexistent/token\"]\n", "cannot read secret file /nonexistent/token"),
    ];
    for (toml, want) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, toml).unwrap();
        let out = Command::new(BIN)
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
