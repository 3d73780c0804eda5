//! Driving a daemon binary's `--check-config` the way an operator does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

/// For each `(toml, want)`: `bin --config <toml> --check-config` exits 2
/// and its stderr contains `want` (the key or target and what to change).
pub fn assert_check_config_rejects(bin: &str, cases: &[(&str, &str)]) {
    let dir = tempfile_dir();
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
    let _ = std::fs::remove_dir_all(&dir);
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

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "hwc-check-config-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
