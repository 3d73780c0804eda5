//! The binary: `--check-config` accepts the example and says which target
//! is wrong and what to change; the systemd contract (READY, STATUS,
//! watchdog, SIGHUP, SIGTERM drain, socket activation).
#![allow(clippy::unwrap_used, missing_docs)]

use hwc_testkit::daemon::{
    assert_check_config_accepts, assert_check_config_rejects, assert_systemd_contract,
};

const BIN: &str = env!("CARGO_BIN_EXE_hwc-health-prober");

#[test]
fn check_config_accepts_the_example_and_names_bad_targets() {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let out = assert_check_config_accepts(BIN, root, "examples/health-prober.toml");
    assert!(
        out.contains("configuration OK: 10 targets (4 with restart_unit)"),
        "{out}"
    );
    let cases = [
        ("[[targets]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\n[[targets]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:2\"\n", "target `a`: the name is used twice"),
        ("[[targets]]\nname = \"b\"\nkind = \"redis\"\n", "target `b`: unknown kind `redis`"),
        ("[[targets]]\nname = \"c\"\nkind = \"http\"\nurl = \"localhost:80\"\n", "target `c`: url `localhost:80`"),
        ("[[targets]]\nname = \"d\"\nkind = \"tcp\"\naddress = \"h:1\"\nsuccess_threshold = 0\n", "target `d`: failure_threshold, success_threshold and restart_after must be at least 1"),
        ("[[targets]]\nname = \"e\"\nkind = \"tcp\"\naddress = \"h:1\"\nrestart_unit = \"ollama\"\n", "restart_unit `ollama` needs its suffix"),
        ("[defaults]\nintervall = \"1s\"\n", "defaults.intervall"),
        ("[auth]\ntoken_files = [\"/nonexistent/token\"]\n", "cannot read secret file /nonexistent/token"),
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
fn keeps_the_systemd_contract() {
    let dead = hwc_testkit::free_port();
    assert_systemd_contract(
        BIN,
        &format!(
            "[server]\nlisten = \"{{listen}}\"\n[auth]\ntoken_files = [\"token\"]\n\
             [[targets]]\nname = \"dead\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{dead}\"\ninterval = \"100ms\"\n"
        ),
        &[("token", "sk-prober\n")],
    );
}
