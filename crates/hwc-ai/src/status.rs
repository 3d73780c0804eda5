//! `hwc-ai status`: the fleet at a glance from each daemon's typed
//! `/status` (the same serde types the daemons write, from their libs),
//! what is wrong in it ([`problems`], a pure function), and the tables.
//! A shape this CLI does not know (another `format`) is said so, never
//! misread.

use crate::client::Client;
use crate::config::{CliConfig, ConfigError};
use crate::fleet::{self, Daemon};
use crate::render::{self, paint, state, table, wire};
use hwc_ai_core::status::Envelope;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

/// One daemon's `/status`, typed.
#[derive(Debug, Clone, Serialize)]
#[allow(clippy::large_enum_variant)] // a handful, once per command
#[serde(untagged)]
pub enum Report {
    /// The router.
    Router(Envelope<hwc_model_router::api::RouterStatus>),
    /// The health prober.
    Prober(Envelope<hwc_health_prober::api::ProberStatus>),
    /// The model manager.
    Manager(Envelope<hwc_model_manager::api::ManagerStatus>),
    /// The MCP bridge.
    Bridge(Envelope<hwc_mcp_bridge::status::BridgeStatus>),
    /// The agent runner.
    Runner(Envelope<hwc_agent_runner::status::RunnerStatus>),
}

/// A daemon and what it said (or why it said nothing).
#[derive(Debug, Clone)]
pub struct Entry {
    /// The daemon.
    pub daemon: Daemon,
    /// Where it was asked.
    pub url: String,
    /// Its status, or why there is none.
    pub report: Result<Report, String>,
}

async fn typed<T: DeserializeOwned>(
    c: &Client,
    format: u32,
    wrap: fn(Envelope<T>) -> Report,
) -> Result<Report, String> {
    let v: Value = c.get_json("/status").await.map_err(|e| e.to_string())?;
    let got = v.get("format").and_then(Value::as_u64);
    if got != Some(u64::from(format)) {
        return Err(format!(
            "{} answered /status in format {}; this hwc-ai reads format {format}: use the hwc-ai of the same release",
            c.target.daemon.name,
            got.map_or("?".into(), |g| g.to_string())
        ));
    }
    serde_json::from_value(v)
        .map(wrap)
        .map_err(|e| format!("{}: /status does not parse: {e}", c.target.daemon.name))
}

/// Asks `daemon` for its status.
pub async fn fetch(c: &Client) -> Result<Report, String> {
    match c.target.daemon.component {
        "router" => typed(c, hwc_model_router::api::STATUS_FORMAT, Report::Router).await,
        "health-prober" => typed(c, hwc_health_prober::api::STATUS_FORMAT, Report::Prober).await,
        "model-manager" => typed(c, hwc_model_manager::api::STATUS_FORMAT, Report::Manager).await,
        "mcp-bridge" => typed(c, hwc_mcp_bridge::status::STATUS_FORMAT, Report::Bridge).await,
        _ => typed(c, hwc_agent_runner::status::STATUS_FORMAT, Report::Runner).await,
    }
}

/// Every enabled daemon's status, asked at once.
pub async fn collect(cfg: &CliConfig) -> Result<Vec<Entry>, ConfigError> {
    let mut clients = Vec::new();
    for d in fleet::ALL {
        let t = cfg.target(d)?;
        if t.enabled {
            clients.push(Client::new(t, &cfg.path.display().to_string()));
        }
    }
    let asks = clients.iter().map(|c| async move {
        Entry {
            daemon: c.target.daemon,
            url: c.target.url.clone(),
            report: fetch(c).await,
        }
    });
    Ok(futures_util::future::join_all(asks).await)
}

/// What is wrong, one line each; empty when all is well. Waiting
/// approvals are not a fault (they are shown, not counted).
pub fn problems(e: &Entry) -> Vec<String> {
    let name = e.daemon.name;
    let r = match &e.report {
        Ok(r) => r,
        Err(why) => return vec![why.clone()],
    };
    let mut p = Vec::new();
    match r {
        Report::Router(s) => {
            for b in &s.body.backends {
                if wire(&b.state) == "down" {
                    p.push(format!("{name}: backend {} is down", b.name));
                }
            }
        }
        Report::Prober(s) => {
            for t in &s.body.targets {
                if t.state.as_str() == "down" {
                    p.push(format!(
                        "{name}: target {} is down: {}",
                        t.name,
                        t.last_error.as_deref().unwrap_or("no error recorded")
                    ));
                }
            }
        }
        Report::Manager(s) => {
            for m in &s.body.models {
                if let hwc_model_manager::reconcile::State::Failed { reason, .. } = &m.state {
                    p.push(format!("{name}: model {} failed: {reason}", m.name));
                }
            }
        }
        Report::Bridge(s) => {
            use hwc_mcp_bridge::upstream::ServerState as S;
            for v in &s.body.servers {
                match &v.state {
                    S::Restarting { last_error, .. } => p.push(format!(
                        "{name}: server {} is restarting: {last_error}",
                        v.name
                    )),
                    S::Failed { reason } => {
                        p.push(format!("{name}: server {} failed: {reason}", v.name))
                    }
                    S::Starting if v.required => {
                        p.push(format!("{name}: server {} is not up yet", v.name))
                    }
                    _ => {}
                }
            }
        }
        Report::Runner(s) => {
            if s.body.sandbox != "ok" {
                p.push(format!(
                    "{name}: shell sandbox unavailable: {}",
                    s.body.sandbox
                ));
            }
        }
    }
    p
}

/// The `--json` document.
pub fn to_json(entries: &[Entry]) -> Value {
    let daemons: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "daemon": e.daemon.name,
                "url": e.url,
                "reachable": e.report.is_ok(),
                "status": e.report.as_ref().ok(),
                "error": e.report.as_ref().err(),
                "problems": problems(e),
            })
        })
        .collect();
    let ok = entries.iter().all(|e| problems(e).is_empty());
    json!({"ok": ok, "daemons": daemons})
}

fn header(d: Daemon, url: &str, word: &str, version: &str, uptime: u64) -> String {
    format!(
        "{}  {}  {version}  up {}  {url}",
        paint(render::HEAD, d.name),
        state(word),
        render::duration(uptime)
    )
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

/// The tables, a block per daemon; `now` is unix seconds.
pub fn render(entries: &[Entry], now: f64) -> String {
    let mut out = String::new();
    for e in entries {
        let r = match &e.report {
            Ok(r) => r,
            Err(why) => {
                out.push_str(&format!(
                    "{}  {}  {why}\n\n",
                    paint(render::HEAD, e.daemon.name),
                    state("unreachable")
                ));
                continue;
            }
        };
        let word = if problems(e).is_empty() {
            "ok"
        } else {
            "degraded"
        };
        match r {
            Report::Router(s) => {
                out.push_str(&header(e.daemon, &e.url, word, &s.version, s.uptime_s));
                out.push('\n');
                let mut t = table(&["BACKEND", "KIND", "LOCALITY", "STATE", "REPLICAS"]);
                for b in &s.body.backends {
                    let rotating = b
                        .replicas
                        .iter()
                        .filter(|r| wire(&r.state) == "in_rotation")
                        .count();
                    let cooling: Vec<String> = b
                        .replicas
                        .iter()
                        .filter_map(|r| r.cooling_left_s.map(|c| format!("{:.0}s", c.ceil())))
                        .collect();
                    let mut reps = format!("{rotating}/{} in rotation", b.replicas.len());
                    if !cooling.is_empty() {
                        reps.push_str(&format!(", cooling {}", cooling.join(" ")));
                    }
                    t.add_row(vec![
                        b.name.clone(),
                        wire(&b.kind),
                        wire(&b.locality),
                        state(&wire(&b.state)),
                        reps,
                    ]);
                }
                out.push_str(&indent(&render::lines(&t)));
            }
            Report::Prober(s) => {
                out.push_str(&header(e.daemon, &e.url, word, &s.version, s.uptime_s));
                out.push_str(&format!(
                    "  {}/{} targets up\n",
                    s.body.targets_up, s.body.targets_total
                ));
                let mut t = table(&["TARGET", "KIND", "STATE", "SINCE", "LAST ERROR"]);
                for x in &s.body.targets {
                    t.add_row(vec![
                        x.name.clone(),
                        x.kind.clone(),
                        state(x.state.as_str()),
                        render::ago(now, x.since),
                        x.last_error.clone().unwrap_or_default(),
                    ]);
                }
                out.push_str(&indent(&render::lines(&t)));
            }
            Report::Manager(s) => {
                out.push_str(&header(e.daemon, &e.url, word, &s.version, s.uptime_s));
                out.push('\n');
                out.push_str(&indent(&crate::models::render(&s.body)));
            }
            Report::Bridge(s) => {
                out.push_str(&header(e.daemon, &e.url, word, &s.version, s.uptime_s));
                out.push('\n');
                let mut t = table(&["SERVER", "STATE", "SESSIONS", "DETAIL"]);
                for v in &s.body.servers {
                    let (st, detail) = crate::mcp::state_of(&v.state);
                    t.add_row(vec![
                        v.name.clone(),
                        state(st),
                        v.sessions_open.to_string(),
                        detail,
                    ]);
                }
                out.push_str(&indent(&render::lines(&t)));
            }
            Report::Runner(s) => {
                let b = &s.body;
                out.push_str(&header(e.daemon, &e.url, word, &s.version, s.uptime_s));
                out.push('\n');
                let jobs: Vec<String> = b.jobs.iter().map(|(k, v)| format!("{k} {v}")).collect();
                let mut t = table(&["", ""]);
                t.add_row(vec!["host".into(), b.host.clone()]);
                t.add_row(vec![
                    "policy".into(),
                    format!(
                        "{} rules, environments {} ({})",
                        b.policy.rules,
                        b.policy.environments.join(", "),
                        b.policy.origin
                    ),
                ]);
                t.add_row(vec!["sandbox".into(), state(&b.sandbox)]);
                t.add_row(vec![
                    "audit".into(),
                    format!(
                        "{} records, {} checkpointed",
                        b.audit.records,
                        b.audit.checkpointed.unwrap_or(0)
                    ),
                ]);
                t.add_row(vec![
                    "jobs".into(),
                    if jobs.is_empty() {
                        "none".into()
                    } else {
                        jobs.join(", ")
                    },
                ]);
                let waiting = if b.approvals_waiting > 0 {
                    paint(
                        render::WARN,
                        &format!(
                            "{} (hwc-ai jobs list --state waiting_approval)",
                            b.approvals_waiting
                        ),
                    )
                } else {
                    "0".into()
                };
                t.add_row(vec!["approvals waiting".into(), waiting]);
                // The empty header row of a two-column key/value table.
                let text = render::lines(&t);
                out.push_str(&indent(text.split_once('\n').map_or("", |(_, rest)| rest)));
            }
        }
        out.push('\n');
    }
    let all: Vec<String> = entries.iter().flat_map(problems).collect();
    if all.is_empty() {
        out.push_str(&format!("{}\n", paint(render::GOOD, "all well")));
    } else {
        for p in all {
            out.push_str(&format!("{} {p}\n", paint(render::BAD, "problem:")));
        }
    }
    out
}
