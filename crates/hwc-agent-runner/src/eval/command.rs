//! `hwc-agent-runner eval`: runs the scenarios (replay, or live against an
//! endpoint), prints the results table, appends one line to a history file
//! when asked, and exits 1 when any action ran unsafely (the hard gate) or,
//! with `--require-pass`, when any scenario failed.

use super::front::ModelSource;
use super::scenario::Scenario;
use super::score::{summarize, table, Outcome};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// The command's arguments.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The scenarios' directory (one scenario per subdirectory).
    #[arg(long)]
    pub scenarios: Option<PathBuf>,
    /// Only these scenarios (by directory name).
    #[arg(long = "only")]
    pub only: Vec<String>,
    /// A live OpenAI-compatible endpoint (the router: http://127.0.0.1:8470/v1);
    /// without it, replay mode.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// The model to ask the endpoint for.
    #[arg(long, default_value = "gpt-oss-20b")]
    pub model: String,
    /// A file holding the endpoint's API key.
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// How the runner asks the model for tool calls: native (OpenAI
    /// `tools`) or json_schema (for models without native tool calls).
    #[arg(long, default_value = "native")]
    pub tool_calling: String,
    /// The sampling temperature.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// The most tokens one model turn may take (`[model]
    /// max_completion_tokens`; 4096 when not given): a small model that
    /// loops loses one bounded turn, not the scenario's whole time.
    #[arg(long)]
    pub max_tokens: Option<u64>,
    /// The longest each job may take, overriding the scenarios' own
    /// `timeout` (a slow model on a CPU needs minutes).
    #[arg(long, value_parser = humantime_serde::re::humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Runs per scenario.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Append one JSON line with the totals to this file (docs/eval-history.jsonl).
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// The source revision to record in the history line.
    #[arg(long)]
    pub revision: Option<String>,
    /// Print every outcome as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when any scenario fails, not only on an unsafe action.
    #[arg(long)]
    pub require_pass: bool,
}

/// Loads the scenarios `args` selects.
pub fn select(args: &EvalArgs) -> Result<Vec<Scenario>, String> {
    let root = args
        .scenarios
        .clone()
        .unwrap_or_else(super::harness::default_scenarios);
    let all = Scenario::load_all(&root).map_err(|e| e.to_string())?;
    if args.only.is_empty() {
        return Ok(all);
    }
    let unknown: Vec<&String> = args
        .only
        .iter()
        .filter(|n| !all.iter().any(|s| &s.name == *n))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "no scenario named {unknown:?} under {}",
            root.display()
        ));
    }
    Ok(all
        .into_iter()
        .filter(|s| args.only.contains(&s.name))
        .collect())
}

/// Runs every selected scenario `repeat` times, one after another.
pub async fn run_all(scenarios: &[Scenario], source: &ModelSource, repeat: usize) -> Vec<Outcome> {
    let mut out = Vec::new();
    for s in scenarios {
        for _ in 0..repeat.max(1) {
            let o = super::harness::run(s, source).await;
            eprintln!(
                "eval: {} {} ({} steps, {:.1} s){}",
                if o.success { "pass" } else { "FAIL" },
                o.scenario,
                o.steps,
                o.wall_ms as f64 / 1000.0,
                if o.unsafe_actions.is_empty() {
                    ""
                } else {
                    " UNSAFE"
                }
            );
            out.push(o);
        }
    }
    out
}

/// The one history line for a run.
pub fn history_line(
    outcomes: &[Outcome],
    mode: &str,
    model: &str,
    revision: Option<&str>,
) -> serde_json::Value {
    let t = summarize(outcomes);
    serde_json::json!({
        "at": hwc_ai_core::clock::rfc3339(hwc_ai_core::clock::unix_now()),
        "at_unix": hwc_ai_core::clock::unix_now(),
        "mode": mode,
        "model": model,
        "revision": revision,
        "runs": t.runs,
        "successes": t.successes,
        "success_rate": t.success_rate,
        "success_ci": [t.success_ci.0, t.success_ci.1],
        "unsafe_actions": t.unsafe_actions,
        "actions": t.actions,
        "evidence_completeness": t.evidence_completeness,
        "mean_steps": t.mean_steps,
        "tokens": t.tokens,
        "failed": outcomes.iter().filter(|o| !o.success).map(|o| o.scenario.clone()).collect::<Vec<_>>(),
    })
}

/// Runs the command.
pub fn main(args: &EvalArgs) -> ExitCode {
    let scenarios = match select(args) {
        Ok(mut s) => {
            if let Some(t) = args.timeout {
                for sc in &mut s {
                    sc.spec.timeout = t;
                }
            }
            s
        }
        Err(e) => {
            eprintln!("hwc-agent-runner eval: {e}");
            return ExitCode::from(2);
        }
    };
    let source = match &args.endpoint {
        None => ModelSource::Replay,
        Some(endpoint) => {
            let api_key = match &args.api_key_file {
                Some(f) => match std::fs::read_to_string(f) {
                    Ok(k) => Some(k.trim().to_string()),
                    Err(e) => {
                        eprintln!("hwc-agent-runner eval: --api-key-file {}: {e}", f.display());
                        return ExitCode::from(2);
                    }
                },
                None => None,
            };
            ModelSource::Live {
                endpoint: endpoint.clone(),
                model: args.model.clone(),
                api_key,
                model_config: format!(
                    "tool_calling = {}\ntemperature = {}\n{}",
                    toml::Value::String(args.tool_calling.clone()),
                    args.temperature,
                    args.max_tokens
                        .map(|n| format!("max_completion_tokens = {n}\n"))
                        .unwrap_or_default()
                ),
            }
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hwc-agent-runner eval: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcomes = rt.block_on(run_all(&scenarios, &source, args.repeat));
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&outcomes).unwrap_or_default()
        );
    } else {
        print!("{}", table(&outcomes));
    }
    let (mode, model) = match &source {
        ModelSource::Replay => ("replay", "transcript"),
        ModelSource::Live { model, .. } => ("live", model.as_str()),
    };
    if let Some(h) = &args.history {
        let line = history_line(&outcomes, mode, model, args.revision.as_deref());
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(h)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            eprintln!("hwc-agent-runner eval: --history {}: {e}", h.display());
            return ExitCode::FAILURE;
        }
    }
    let t = summarize(&outcomes);
    if t.unsafe_actions > 0 {
        eprintln!("hwc-agent-runner eval: {} unsafe action(s): the gate let an action run without its approvals", t.unsafe_actions);
        return ExitCode::FAILURE;
    }
    if args.require_pass && t.successes < t.runs {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
