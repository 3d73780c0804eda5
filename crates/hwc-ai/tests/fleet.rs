//! `hwc-ai` against the real daemons, all five in-process with real
//! configurations: a router with a backend that answers (the testkit's
//! scripted OpenAI-compatible model) and one nothing listens on, a prober
//! probing the router and a dead port, a manager whose file model cannot
//! be fetched, a bridge with the fault-injecting stdio server, and a
//! runner whose scripted model proposes an R2 action. The binary runs as
//! an operator runs it, its configuration a `cli.toml` in
//! `HWC_AI_CLI_CONFIG`; tables are snapshot with the ports, times and
//! ids filtered.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use hwc_testkit::inprocess::InProcess;
use hwc_testkit::scripted::{answer, tool_call, Upstream};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hwc-ai");
const REQUESTER: &str = "tok-alice-requester-0001";
const APPROVER: &str = "tok-bob-approver-0002";
const ROUTER_KEY: &str = "sk-ops";

fn fault_server() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../hwc-mcp-bridge/tests/fixtures/fault_server.py"
    ))
}

struct Fleet {
    dir: tempfile::TempDir,
    daemons: Vec<InProcess>,
    _models: Vec<Upstream>,
}

impl Fleet {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let write = |name: &str, text: &str| {
            let p = d.join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        let model = Upstream::always(answer("hi")).await;
        let agent_model = Upstream::start(
            vec![tool_call(
                "shell",
                &json!({"command": "kill -0 1", "rollback": "nothing to undo"}).to_string(),
            )],
            tool_call(
                "finish",
                &json!({"summary": "signalled", "findings": [], "unknowns": []}).to_string(),
            ),
        )
        .await;

        let keys = write(
            "router-keys.toml",
            &format!("[[keys]]\nname = \"ops\"\nsecret = \"{ROUTER_KEY}\"\n"),
        );
        let router: hwc_model_router::config::RouterConfig = hwc_ai_core::config::load_str(&format!(
            "[auth]\nkeys_file = \"{keys}\"\n[state]\ndatabase = \"{db}\"\n\
             [[backends]]\nname = \"local\"\nkind = \"openai\"\nurls = [\"{up}\"]\n\
             [[backends]]\nname = \"cloud\"\nkind = \"openai\"\nlocality = \"cloud\"\nurls = [\"http://127.0.0.1:{dead}/v1\"]\n\
             [models.small]\ntargets = [{{ backend = \"local\", model = \"m\" }}]\n\
             [models.gone]\ntargets = [{{ backend = \"cloud\", model = \"x\" }}]\n[fallback]\nmax_attempts = 1\n",
            db = d.join("router.sqlite").display(),
            up = model.url(),
            dead = hwc_testkit::free_port(),
        ))
        .unwrap();
        let router = InProcess::daemon(hwc_model_router::daemon(router)).await;
        // One answer and one failure: `local` is up, `cloud` cooling.
        for m in ["small", "gone"] {
            let _ = reqwest::Client::new()
                .post(format!("{}/v1/chat/completions", router.url))
                .bearer_auth(ROUTER_KEY)
                .json(&json!({"model": m, "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap();
        }

        let prober: hwc_health_prober::config::ProberConfig = hwc_ai_core::config::load_str(&format!(
            "[defaults]\ninterval = \"200ms\"\ntimeout = \"1s\"\nfailure_threshold = 1\nsuccess_threshold = 1\n\
             [[targets]]\nname = \"router\"\nkind = \"tcp\"\naddress = \"{}\"\n\
             [[targets]]\nname = \"ollama\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{}\"\n",
            router.addr,
            hwc_testkit::free_port()
        ))
        .unwrap();
        let prober = InProcess::daemon(hwc_health_prober::daemon(prober)).await;

        let manager: hwc_model_manager::config::ManagerConfig = hwc_ai_core::config::load_str(&format!(
            "[ollama]\nurl = \"http://127.0.0.1:{}\"\n\
             [[file_models]]\nname = \"smol\"\ndir = \"{}\"\n[[file_models.files]]\nurl = \"http://127.0.0.1:{}/smol.gguf\"\nsha256 = \"{}\"\n",
            hwc_testkit::free_port(),
            d.join("models/smol").display(),
            hwc_testkit::free_port(),
            "0".repeat(64)
        ))
        .unwrap();
        let manager = InProcess::daemon(hwc_model_manager::daemon(manager)).await;

        let bridge: hwc_mcp_bridge::config::BridgeConfig = hwc_ai_core::config::load_str(&format!(
            "[[servers]]\nname = \"fault\"\ncommand = \"/usr/bin/python3\"\nargs = [\"{}\"]\ndenied_tools = [\"crash\"]\n",
            fault_server().display()
        ))
        .unwrap();
        let bridge = InProcess::daemon(hwc_mcp_bridge::daemon_with_guard(
            bridge,
            Some(PathBuf::from(BIN)),
        ))
        .await;

        let alice = write("alice.token", REQUESTER);
        let bob = write("bob.token", APPROVER);
        let key = hwc_agent_runner::audit::CheckpointKey::generate("hwc-agent-runner");
        let key = write("audit.key", &key.seed_hex());
        let runner: hwc_agent_runner::config::RunnerConfig = hwc_ai_core::config::load_str(&format!(
            "[store]\nurl = \"sqlite://{db}\"\n[audit]\nsigning_key_file = \"{key}\"\nhost = \"test-host\"\n\
             [model]\nurl = \"{model}\"\n[tools]\nworkspaces = \"{ws}\"\n\
             [[auth.tokens]]\nfile = \"{alice}\"\nname = \"alice\"\nrole = \"requester\"\n\
             [[auth.tokens]]\nfile = \"{bob}\"\nname = \"bob\"\nrole = \"approver\"\n",
            db = d.join("runner.db").display(),
            model = agent_model.url(),
            ws = d.join("workspaces").display(),
        ))
        .unwrap();
        let runner = InProcess::daemon(hwc_agent_runner::daemon(runner)).await;

        let cli = format!(
            "[router]\nurl = \"{}\"\ntoken_file = \"{}\"\n\
             [health-prober]\nurl = \"{}\"\n[model-manager]\nurl = \"{}\"\n\
             [mcp-bridge]\nurl = \"{}\"\n[agent-runner]\nurl = \"{}\"\ntoken_file = \"{}\"\n",
            router.url,
            write("router.key", ROUTER_KEY),
            prober.url,
            manager.url,
            bridge.url,
            runner.url,
            bob
        );
        write("cli.toml", &cli);
        write("cli-requester.toml", &cli.replace(&bob, &alice));
        Self {
            dir,
            daemons: vec![router, prober, manager, bridge, runner],
            _models: vec![model, agent_model],
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `hwc-ai args` with `config` (a file in the fleet's dir).
    fn run_with(&self, config: &str, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("HWC_AI_CLI_CONFIG", self.path(config))
            .env_remove("NO_COLOR")
            .output()
            .unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with("cli.toml", args)
    }

    async fn stop(self) {
        for d in self.daemons {
            d.stop().await;
        }
    }
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            text(o),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "waited 30 s for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// Multi-threaded: the test blocks on the CLI process while the daemons
// serve it from the runtime's workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_jobs_and_approvals_against_the_real_daemons() {
    let f = Fleet::start().await;

    // The prober has seen its dead target, the manager its failed fetch,
    // the runner's job waits.
    let job: Value = serde_json::from_str(
        &reqwest::Client::new()
            .post(format!("{}/agent/jobs", f.daemons[4].url))
            .bearer_auth(REQUESTER)
            .json(&json!({"goal": "signal init", "environment": "prod"}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    wait_for("the fleet's states", || {
        let s = json_of(&f.run(&["status", "--json"]));
        let problems = s["daemons"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|d| d["problems"].as_array().unwrap().clone())
            .count();
        let waiting = s["daemons"][2]["status"]["approvals_waiting"] == 1;
        problems >= 3 && waiting
    })
    .await;

    let out = f.run(&["status"]);
    assert_eq!(out.status.code(), Some(1), "something is down: exit 1");
    let version = format!("  {}  ", env!("CARGO_PKG_VERSION").replace('.', r"\."));
    insta::with_settings!({filters => vec![
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
        (r"up \d+[dhms](\d+[hms])?", "up [uptime]"),
        (r"\d+[dhms](\d+[hms])? ago", "[age] ago"),
        (version.as_str(), "  [version]  "),
        (r"cooling \d+s", "cooling [s]"),
        (r"start #\d+", "start #[n]"),
        (r"/tmp/\S+", "[tmp]"),
        (r"\d+ records, \d+ checkpointed", "[n] records, [n] checkpointed"),
        (r"\d+ rules, environments", "[n] rules, environments"),
        (r"Connection refused \(os error 111\)|connection refused", "connection refused"),
    ]}, {
        insta::assert_snapshot!("status", text(&out));
    });

    // --json: the daemons' own status types, problems named.
    let s = json_of(&f.run(&["status", "--json"]));
    assert_eq!(s["ok"], false);
    let problems: Vec<String> = s["daemons"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| {
            d["problems"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    for want in [
        "hwc-model-router: backend cloud is down",
        "hwc-health-prober: target ollama is down",
        "hwc-model-manager: model smol failed",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(want)),
            "{want}: {problems:?}"
        );
    }

    // Jobs: list, show, then the requester may not approve its own job.
    let list = text(&f.run(&["jobs", "list"]));
    assert!(
        list.contains(&id) && list.contains("waiting_approval") && list.contains("R2"),
        "{list}"
    );
    let show = text(&f.run(&["jobs", "show", &id]));
    for want in [
        "risk",
        "R2",
        "rule",
        "signal-processes",
        "rollback",
        "nothing to undo",
        "digest",
    ] {
        assert!(show.contains(want), "{want}: {show}");
    }
    let mine = f.run_with("cli-requester.toml", &["jobs", "approve", &id, "--yes"]);
    assert_eq!(mine.status.code(), Some(1));
    let err = String::from_utf8_lossy(&mine.stderr);
    assert!(err.contains("hwc-agent-runner: 403"), "{err}");
    // Not on a terminal and no digest: nothing is approved blind.
    let blind = f.run(&["jobs", "approve", &id]);
    assert_eq!(blind.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&blind.stderr).contains("--digest"));
    let digest = json_of(&f.run(&["jobs", "show", &id, "--json"]))["pending"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let stale = f.run(&["jobs", "approve", &id, "--digest", &"0".repeat(64)]);
    assert!(String::from_utf8_lossy(&stale.stderr).contains("not the one you saw"));
    let ok = f.run(&["jobs", "approve", &id, "--digest", &digest, "-c", "checked"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        text(&ok).contains("approved; the job goes on"),
        "{}",
        text(&ok)
    );
    // Follow replays the events to the end; exit 0 for a completed job.
    let follow = f.run(&["jobs", "follow", &id]);
    assert_eq!(
        follow.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&follow.stderr)
    );
    let lines = text(&follow);
    for want in [
        "policy.decision",
        "R2",
        "approval.requested",
        "job.state",
        "completed",
    ] {
        assert!(lines.contains(want), "{want}: {lines}");
    }
    let report = text(&f.run(&["jobs", "report", &id, "--markdown"]));
    assert!(report.contains("signalled"), "{report}");

    // Where the router would send a request, and a refusal it would give.
    let route = text(&f.run(&["route", "explain", "--model", "small"]));
    assert!(
        route.contains("model small") && route.contains("local") && route.contains("direct"),
        "{route}"
    );
    let local = f.run(&["route", "explain", "--model", "gone", "--local-only"]);
    assert_eq!(local.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&local.stderr).contains("has no local backend"));

    // The bridge's servers.
    let servers = text(&f.run(&["mcp", "servers"]));
    assert!(
        servers.contains("fault") && servers.contains("all but crash"),
        "{servers}"
    );
    // The manager's plan, and its failed model (exit 1).
    let models = f.run(&["models"]);
    assert_eq!(models.status.code(), Some(1));
    assert!(text(&models).contains("smol") && text(&models).contains("failed"));
    let plan = text(&f.run(&["models", "plan"]));
    assert!(plan.contains("smol"), "{plan}");

    f.stop().await;
}

#[test]
fn errors_name_the_daemon_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cli.toml");
    let port = hwc_testkit::free_port();
    std::fs::write(
        &cfg,
        format!("[agent-runner]\nurl = \"http://127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let run = |args: &[&str], env: &[(&str, &Path)]| {
        let mut c = Command::new(BIN);
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let o = run(&["jobs", "list"], &[("HWC_AI_CLI_CONFIG", &cfg)]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&format!("hwc-agent-runner at http://127.0.0.1:{port} refused the connection: is hwc-agent-runner.service running? systemctl status hwc-agent-runner")),
        "{e}"
    );
    std::fs::write(&cfg, "[agent-runer]\nurl = \"x\"\n").unwrap();
    let o = run(&["jobs", "list"], &[("HWC_AI_CLI_CONFIG", &cfg)]);
    assert_eq!(o.status.code(), Some(2), "a bad config is exit 2");
    assert!(String::from_utf8_lossy(&o.stderr).contains("[agent-runer] is not a daemon"));
    let o = run(
        &["status"],
        &[("HWC_AI_CLI_CONFIG", &dir.path().join("missing.toml"))],
    );
    assert_eq!(o.status.code(), Some(2));
    // Completions and the man page come from the same definitions.
    let bash = run(&["completions", "bash"], &[]);
    assert!(String::from_utf8_lossy(&bash.stdout).contains("approve"));
    let man = run(&["man"], &[]);
    assert!(String::from_utf8_lossy(&man.stdout).contains(".TH hwc-ai"));
}

/// `tmux` on this machine, or why not (a failure under `CI=true`).
fn tmux() -> Option<&'static str> {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "tmux is missing; run scripts/setup.sh"
        );
        eprintln!("SKIPPED: tmux is missing; run scripts/setup.sh");
        return None;
    }
    Some("tmux")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_in_a_real_terminal_shows_the_job_live_until_it_ends() {
    let Some(tmux) = tmux() else { return };
    let f = Fleet::start().await;
    let runner = f.daemons[4].url.clone();
    let job: Value = reqwest::Client::new()
        .post(format!("{runner}/agent/jobs"))
        .bearer_auth(REQUESTER)
        .json(&json!({"goal": "signal init", "environment": "prod"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    let socket = format!("hwc-ai-test-{}", std::process::id());
    let tm = |args: &[&str]| {
        Command::new(tmux)
            .args(["-L", &socket])
            .args(args)
            .output()
            .unwrap()
    };
    let cmd = format!(
        "HWC_AI_CLI_CONFIG={} {BIN} jobs follow {id}; echo EXIT=$?; sleep 30",
        f.path("cli.toml").display()
    );
    let o = tm(&[
        "new-session",
        "-d",
        "-x",
        "200",
        "-y",
        "50",
        "sh",
        "-c",
        &cmd,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pane = || String::from_utf8_lossy(&tm(&["capture-pane", "-p"]).stdout).to_string();
    wait_for("the approval request on screen", || {
        pane().contains("approval.requested")
    })
    .await;
    let shown = pane();
    assert!(
        shown.contains("policy.decision") && shown.contains("R2"),
        "{shown}"
    );
    // Approved elsewhere (the API), the terminal shows it run and end.
    let digest = json_of(&f.run(&["jobs", "show", &id, "--json"]))["pending"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let ok = f.run(&["jobs", "approve", &id, "--digest", &digest]);
    assert_eq!(ok.status.code(), Some(0));
    wait_for("the end of the job on screen", || pane().contains("EXIT=")).await;
    let shown = pane();
    let _ = tm(&["kill-server"]);
    assert!(shown.contains("EXIT=0"), "completed: {shown}");
    assert!(
        shown.contains("completed") && shown.contains("report.ready"),
        "{shown}"
    );
    f.stop().await;
}
