//! The official MCP conformance suite (npm `@modelcontextprotocol/conformance`,
//! installed by scripts/setup.sh) against the bridge, with the suite's own
//! fixture set (tests/conformance/fixture_server.py, on the official PyPI
//! `mcp` 1.x SDK) as the child:
//!
//! - 0.1.16, active suite: the session era (2025-06-18 / 2025-11-25);
//! - 0.2.0-alpha.12 with `--requirements 2026-07-28`: the stateless era.
//!
//! Each run has a baseline (tests/conformance/baseline-*.yml) listing every
//! expected failure with its reason; the suite fails on an unexpected
//! failure and on a listed scenario that passes. Node 20 (Debian 12/13)
//! needs tests/conformance/node20-shim. Without node or the package the
//! test is skipped with a message, except under `CI=true`, where a missing
//! peer fails like every other peer of this repository.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::Bridge;
use std::path::{Path, PathBuf};
use std::process::Command;

fn conformance_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance"))
}

/// `<prefix>/node_modules/@modelcontextprotocol/conformance/dist/index.js`;
/// `env` overrides the prefix.
fn suite(env: &str, default_prefix: &str) -> PathBuf {
    std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| hwc_testkit::llama::cache().join(default_prefix))
        .join("node_modules/@modelcontextprotocol/conformance/dist/index.js")
}

/// The missing peers, if any: node, the suite, the fixture's Python.
fn missing(suite: &Path) -> Vec<String> {
    let mut m = Vec::new();
    if Command::new("node").arg("--version").output().is_err() {
        m.push("node (Debian package nodejs)".into());
    }
    if !suite.exists() {
        m.push(suite.display().to_string());
    }
    let py = python();
    if !py.exists() {
        m.push(py.display().to_string());
    }
    m
}

fn python() -> PathBuf {
    std::env::var_os("HWC_MCP_CLIENT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| hwc_testkit::llama::cache().join("mcp-client/bin/python"))
}

/// False (after saying why) when a peer is missing outside CI; a panic
/// under `CI=true`.
fn peers_present(suite: &Path) -> bool {
    let m = missing(suite);
    if m.is_empty() {
        return true;
    }
    let msg = format!(
        "conformance peers missing: {}; run scripts/setup.sh",
        m.join(", ")
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
    eprintln!("SKIPPED: {msg}");
    false
}

/// Starts the bridge with the fixture as server `conf`, runs the suite with
/// `args` and the baseline, and fails with the suite's output unless it
/// exits 0.
async fn run_suite(suite: PathBuf, baseline: &str, args: &[&str]) {
    let toml = format!(
        "[[servers]]\nname = \"conf\"\ncommand = \"{}\"\nargs = [\"{}\"]\ncall_timeout = \"20s\"\n",
        python().display(),
        conformance_dir().join("fixture_server.py").display()
    );
    let b = Bridge::start(&toml).await;
    let url = format!("{}/mcp/conf", b.d.url);
    let out_dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("node");
    cmd.arg("--import")
        .arg(conformance_dir().join("node20-shim/register.mjs"))
        .arg(&suite)
        .args(["server", "--url", &url])
        .args(args)
        .arg("--expected-failures")
        .arg(conformance_dir().join(baseline))
        .arg("-o")
        .arg(out_dir.path())
        .env("NO_COLOR", "1");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("cannot run node"))
        .await
        .unwrap();
    b.stop().await;
    assert!(
        out.status.success(),
        "conformance suite {} {args:?} failed against the bridge (baseline {baseline}), exit {:?}:\n--- stdout\n{}\n--- stderr\n{}",
        suite.display(),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn conformance_session_era_0_1_16_matches_its_baseline() {
    let s = suite("HWC_MCP_CONFORMANCE", "conformance");
    if !peers_present(&s) {
        return;
    }
    run_suite(s, "baseline-2025.yml", &[]).await;
}

#[tokio::test]
async fn conformance_stateless_2026_07_28_matches_its_baseline() {
    let s = suite("HWC_MCP_CONFORMANCE_2026", "conformance-2026");
    if !peers_present(&s) {
        return;
    }
    run_suite(s, "baseline-2026.yml", &["--requirements", "2026-07-28"]).await;
}
