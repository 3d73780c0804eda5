//! The binary: `--check-config` accepts the example and says what to fix;
//! `plan` prints what a reconcile would do without doing it; the systemd
//! contract (READY, STATUS, watchdog, SIGHUP, SIGTERM drain, socket
//! activation).
#![allow(clippy::unwrap_used, missing_docs)]

use hwc_testkit::daemon::{
    assert_check_config_accepts, assert_check_config_rejects, assert_systemd_contract,
};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_hwc-model-manager");

#[test]
fn check_config_accepts_the_example_and_names_what_to_fix() {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let out = assert_check_config_accepts(BIN, root, "examples/model-manager.toml");
    assert!(
        out.contains("configuration OK: 2 Ollama models, 1 file models"),
        "{out}"
    );
    let cases = [
        ("[[ollama_models]]\nname = \"a\"\n[[ollama_models]]\nname = \"a:latest\"\n", "ollama model `a:latest` is declared twice"),
        ("[[ollama_models]]\nname = \"a\"\ndigest = \"sha256:1234\"\n", "digest `sha256:1234` is not sha256:<64 hex digits>"),
        ("[[file_models]]\nname = \"m\"\ndir = \"/tmp/m\"\n[[file_models.files]]\nurl = \"http://h/m.gguf\"\n", "has no sha256"),
        ("[manager]\nreserve = \"10GB\"\n", "reserve"),
        ("[ollama]\nurll = \"x\"\n", "ollama.urll"),
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
        "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\nsample_ratio = 0.25\n",
    )
    .unwrap();
    assert_check_config_accepts(BIN, root, traced.to_str().unwrap());
}

#[test]
fn plan_says_what_would_happen_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("models");
    let cfg = dir.path().join("m.toml");
    std::fs::write(
        &cfg,
        format!(
            "[ollama]\nurl = \"http://127.0.0.1:1\"\n[[ollama_models]]\nname = \"gpt-oss:20b\"\n\
             [[file_models]]\nname = \"smol\"\ndir = \"{}\"\n[[file_models.files]]\nurl = \"http://127.0.0.1:1/smol.gguf\"\nsha256 = \"{}\"\n",
            model.display(),
            "ab".repeat(32)
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["plan", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("unknown   gpt-oss:20b: cannot reach Ollama"),
        "{text}"
    );
    assert!(
        text.contains("download  smol:") && text.contains("smol.gguf"),
        "{text}"
    );
    assert!(!model.exists(), "plan wrote nothing");
}

#[test]
fn keeps_the_systemd_contract() {
    let dead = hwc_testkit::free_port();
    assert_systemd_contract(
        BIN,
        &format!(
            "[server]\nlisten = \"{{listen}}\"\n[auth]\ntoken_files = [\"token\"]\n\
             [ollama]\nurl = \"http://127.0.0.1:{dead}\"\n"
        ),
        &[("token", "sk-manager\n")],
    );
}
