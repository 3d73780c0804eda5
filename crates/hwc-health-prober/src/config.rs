//! The prober's configuration: `[server]`, `[telemetry]`, `[defaults]`, `[healing]` and one
//! `[[targets]]` entry per thing to probe. docs/health-prober.md documents
//! every key; examples/health-prober.toml is a full example.
//!
//! Targets are parsed in two steps so that each kind has its own keys and a
//! key that does not belong to the kind is an error naming the target:
//! common keys first, the rest into the kind's own struct.

use hwc_ai_core::config::Validate;
use hwc_ai_core::server::ServerConfig;
use hwc_ai_core::telemetry::TelemetryConfig;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

/// Default port of the prober.
pub const DEFAULT_PORT: u16 = 8473;

/// The whole configuration, as read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProberConfig {
    /// Listener and limits shared by every daemon.
    pub server: ServerConfig,
    /// Values a target takes when it does not set its own.
    pub defaults: Defaults,
    /// Restart policy for targets that name a unit.
    pub healing: HealingConfig,
    /// Who may read `/status`.
    pub auth: crate::AuthConfig,
    /// The targets, checked and typed by [`ProberConfig::targets`].
    pub targets: Vec<Map<String, Value>>,
    /// Trace export and sampling, shared by every daemon.
    pub telemetry: TelemetryConfig,
}

impl Default for ProberConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig::on_port(DEFAULT_PORT),
            defaults: Defaults::default(),
            healing: HealingConfig::default(),
            auth: crate::AuthConfig::default(),
            targets: Vec::new(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

/// `[defaults]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// Time between probes.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Longest a probe may take; past it the probe fails.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Consecutive failures before a target counts as down.
    pub failure_threshold: u32,
    /// Consecutive successes before a down target counts as up again.
    pub success_threshold: u32,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            failure_threshold: 3,
            success_threshold: 2,
        }
    }
}

/// `[healing]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealingConfig {
    /// Log what would be restarted, restart nothing.
    pub dry_run: bool,
    /// Wait after a restart before another of the same unit; doubles after
    /// each restart that did not bring the target back.
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    /// Largest wait between restarts of one unit.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Restarts of one unit allowed in any hour; beyond it the prober only
    /// reports. Never a restart loop.
    pub max_restarts_per_hour: u32,
}

impl Default for HealingConfig {
    fn default() -> Self {
        Self {
            dry_run: false,
            backoff_initial: Duration::from_secs(30),
            backoff_max: Duration::from_secs(600),
            max_restarts_per_hour: 3,
        }
    }
}

/// A checked target.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Unique name (metrics label, `/status` key).
    pub name: String,
    /// What to check and how.
    pub check: Check,
    /// Time between probes.
    pub interval: Duration,
    /// Probe deadline.
    pub timeout: Duration,
    /// Consecutive failures before down.
    pub failure_threshold: u32,
    /// Consecutive successes before up again.
    pub success_threshold: u32,
    /// Extra labels shown in `/status` (not in metrics, to keep them small).
    pub labels: BTreeMap<String, String>,
    /// Unit to restart when the target keeps failing.
    pub restart_unit: Option<String>,
    /// Consecutive failures before the restart; defaults to the failure threshold.
    pub restart_after: u32,
}

/// The kinds of probe.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Any HTTP endpoint.
    Http(HttpCheck),
    /// An OpenAI-compatible server.
    Openai(OpenaiCheck),
    /// Ollama's native API.
    Ollama(OllamaCheck),
    /// llama.cpp's `/health`, where 503 "Loading model" means starting.
    LlamaCpp(UrlCheck),
    /// vLLM's `/health`.
    Vllm(UrlCheck),
    /// Open WebUI's `/health`.
    OpenWebui(UrlCheck),
    /// A Streamable HTTP MCP server: `initialize` then `tools/list`.
    Mcp(McpCheck),
    /// Another hwc-ai daemon's `/readyz`.
    Hwc(UrlCheck),
    /// A TCP connect.
    Tcp(TcpCheck),
    /// A systemd unit's state over D-Bus.
    SystemdUnit(UnitCheck),
}

impl Check {
    /// The kind's name, as written in config and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Http(_) => "http",
            Check::Openai(_) => "openai",
            Check::Ollama(_) => "ollama",
            Check::LlamaCpp(_) => "llama_cpp",
            Check::Vllm(_) => "vllm",
            Check::OpenWebui(_) => "open_webui",
            Check::Mcp(_) => "mcp",
            Check::Hwc(_) => "hwc",
            Check::Tcp(_) => "tcp",
            Check::SystemdUnit(_) => "systemd_unit",
        }
    }
}

/// Every kind, for errors that list them.
pub const KINDS: &[&str] = &[
    "http",
    "openai",
    "ollama",
    "llama_cpp",
    "vllm",
    "open_webui",
    "mcp",
    "hwc",
    "tcp",
    "systemd_unit",
];

/// `kind = "http"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// URL to GET.
    pub url: String,
    /// Status codes that count as success.
    #[serde(default = "ok_statuses")]
    pub expect_status: Vec<u16>,
    /// A JSON body condition: the value at `json_pointer` must equal `json_equals`.
    #[serde(default)]
    pub json_pointer: Option<String>,
    /// Expected value at `json_pointer`.
    #[serde(default)]
    pub json_equals: Option<Value>,
    /// Slower answers count as failures.
    #[serde(default, with = "humantime_serde")]
    pub max_latency: Option<Duration>,
}

fn ok_statuses() -> Vec<u16> {
    vec![200]
}

/// Kinds that only need a base URL.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlCheck {
    /// Base URL of the server (`http://127.0.0.1:8080`).
    pub url: String,
}

/// `kind = "openai"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenaiCheck {
    /// Base URL including `/v1`.
    pub url: String,
    /// A model `/v1/models` must list.
    #[serde(default)]
    pub model: Option<String>,
    /// Also ask the model for one token and time it.
    #[serde(default)]
    pub deep: bool,
    /// File with a bearer token (relative: under `$CREDENTIALS_DIRECTORY`).
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
}

/// `kind = "ollama"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OllamaCheck {
    /// Base URL (`http://127.0.0.1:11434`).
    pub url: String,
    /// Models that must be present (`/api/tags`).
    #[serde(default)]
    pub models: Vec<String>,
    /// They must also be loaded (`/api/ps`).
    #[serde(default)]
    pub loaded: bool,
    /// Also generate one token with the first model.
    #[serde(default)]
    pub generate: bool,
}

/// `kind = "mcp"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpCheck {
    /// The MCP endpoint (`http://127.0.0.1:8471/mcp/fs`).
    pub url: String,
    /// File with a bearer token.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// At least this many tools must be listed.
    #[serde(default)]
    pub min_tools: usize,
}

/// `kind = "tcp"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpCheck {
    /// `host:port`.
    pub address: String,
}

/// `kind = "systemd_unit"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitCheck {
    /// Unit name (`ollama.service`).
    pub unit: String,
}

const COMMON_KEYS: &[&str] = &[
    "name",
    "kind",
    "interval",
    "timeout",
    "failure_threshold",
    "success_threshold",
    "labels",
    "restart_unit",
    "restart_after",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    name: String,
    kind: String,
    #[serde(default, with = "humantime_serde")]
    interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    failure_threshold: Option<u32>,
    success_threshold: Option<u32>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    restart_unit: Option<String>,
    restart_after: Option<u32>,
}

fn kind_fields<T: serde::de::DeserializeOwned>(rest: Map<String, Value>) -> Result<T, String> {
    serde_json::from_value(Value::Object(rest)).map_err(|e| e.to_string())
}

fn check_url(u: &str) -> Result<(), String> {
    match reqwest::Url::parse(u) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(()),
        Ok(_) => Err(format!("url `{u}` is not http or https")),
        Err(e) => Err(format!(
            "url `{u}` does not parse ({e}); write a full URL such as \"http://127.0.0.1:8080\""
        )),
    }
}

impl ProberConfig {
    /// Types and checks every target; each error names the target (by
    /// name, or by position when it has none) and says what to change.
    pub fn targets(&self) -> Result<Vec<Target>, Vec<String>> {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        let mut names = HashSet::new();
        for (i, raw) in self.targets.iter().enumerate() {
            let label = raw
                .get("name")
                .and_then(Value::as_str)
                .map_or_else(|| format!("targets[{i}]"), |n| format!("target `{n}`"));
            match self.target(raw) {
                Ok(t) => {
                    if !names.insert(t.name.clone()) {
                        problems.push(format!(
                            "{label}: the name is used twice; give each target a unique name"
                        ));
                    }
                    out.push(t);
                }
                Err(e) => problems.push(format!("{label}: {e}")),
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }

    fn target(&self, raw: &Map<String, Value>) -> Result<Target, String> {
        let (common, rest): (Map<String, Value>, Map<String, Value>) = raw
            .clone()
            .into_iter()
            .partition(|(k, _)| COMMON_KEYS.contains(&k.as_str()));
        let c: Common = serde_json::from_value(Value::Object(common)).map_err(|e| e.to_string())?;
        if c.name.trim().is_empty() {
            return Err("name is empty".into());
        }
        let check = match c.kind.as_str() {
            "http" => Check::Http(kind_fields(rest)?),
            "openai" => Check::Openai(kind_fields(rest)?),
            "ollama" => Check::Ollama(kind_fields(rest)?),
            "llama_cpp" => Check::LlamaCpp(kind_fields(rest)?),
            "vllm" => Check::Vllm(kind_fields(rest)?),
            "open_webui" => Check::OpenWebui(kind_fields(rest)?),
            "mcp" => Check::Mcp(kind_fields(rest)?),
            "hwc" => Check::Hwc(kind_fields(rest)?),
            "tcp" => Check::Tcp(kind_fields(rest)?),
            "systemd_unit" => Check::SystemdUnit(kind_fields(rest)?),
            other => {
                return Err(format!(
                    "unknown kind `{other}`; use one of: {}",
                    KINDS.join(", ")
                ))
            }
        };
        match &check {
            Check::Http(h) => check_url(&h.url)?,
            Check::Openai(o) => check_url(&o.url)?,
            Check::Ollama(o) => check_url(&o.url)?,
            Check::Mcp(m) => check_url(&m.url)?,
            Check::LlamaCpp(u) | Check::Vllm(u) | Check::OpenWebui(u) | Check::Hwc(u) => {
                check_url(&u.url)?
            }
            Check::Tcp(t) => {
                if t.address
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                    .is_none()
                {
                    return Err(format!("address `{}` is not host:port", t.address));
                }
            }
            Check::SystemdUnit(u) => {
                if !u.unit.contains('.') {
                    return Err(format!(
                        "unit `{}` needs its suffix, e.g. `{}.service`",
                        u.unit, u.unit
                    ));
                }
            }
        }
        let d = &self.defaults;
        let interval = c.interval.unwrap_or(d.interval);
        let t = Target {
            name: c.name,
            check,
            interval,
            // A default timeout never outlasts the target's own interval.
            timeout: c.timeout.unwrap_or(d.timeout.min(interval)),
            failure_threshold: c.failure_threshold.unwrap_or(d.failure_threshold),
            success_threshold: c.success_threshold.unwrap_or(d.success_threshold),
            labels: c.labels,
            restart_after: c
                .restart_after
                .or(c.failure_threshold)
                .unwrap_or(d.failure_threshold),
            restart_unit: c.restart_unit,
        };
        if t.failure_threshold == 0 || t.success_threshold == 0 || t.restart_after == 0 {
            return Err(
                "failure_threshold, success_threshold and restart_after must be at least 1".into(),
            );
        }
        if t.interval.is_zero() || t.timeout.is_zero() {
            return Err("interval and timeout must be longer than 0".into());
        }
        if t.timeout > t.interval {
            return Err(format!(
                "timeout ({}s) is longer than interval ({}s); probes would overlap: shorten the timeout",
                t.timeout.as_secs_f64(),
                t.interval.as_secs_f64()
            ));
        }
        if let Some(u) = &t.restart_unit {
            if !u.contains('.') {
                return Err(format!(
                    "restart_unit `{u}` needs its suffix, e.g. `{u}.service`"
                ));
            }
        }
        Ok(t)
    }
}

impl Validate for ProberConfig {
    fn validate(&self) -> Result<(), Vec<String>> {
        let mut p = self.server.problems();
        p.extend(self.telemetry.problems());
        if let Err(mut t) = self.targets() {
            p.append(&mut t);
        }
        if self.healing.max_restarts_per_hour == 0 {
            p.push("healing.max_restarts_per_hour is 0; use healing.dry_run = true to turn restarts off".into());
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<ProberConfig, String> {
        hwc_ai_core::config::load_str(toml).map_err(|e| e.to_string())
    }

    #[test]
    fn typed_targets_with_defaults() {
        let cfg = parse(
            r#"
            [defaults]
            interval = "2s"
            [[targets]]
            name = "llama"
            kind = "llama_cpp"
            url = "http://127.0.0.1:8080"
            restart_unit = "llama-cpp.service"
            [[targets]]
            name = "web"
            kind = "http"
            url = "http://127.0.0.1:8080/health"
            json_pointer = "/status"
            json_equals = true
            timeout = "1s"
            failure_threshold = 5
            "#,
        )
        .unwrap();
        let t = cfg.targets().unwrap();
        assert_eq!(t[0].interval, Duration::from_secs(2));
        assert_eq!(t[0].restart_after, 3);
        assert_eq!(
            t[1].restart_after, 5,
            "follows the target's own failure threshold"
        );
        assert!(matches!(&t[1].check, Check::Http(h) if h.json_equals == Some(Value::Bool(true))));
    }

    #[test]
    fn bad_targets_say_which_and_what_to_change() {
        let cases = [
            ("[[targets]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"x:1\"\n[[targets]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"y:1\"\n", "target `a`: the name is used twice"),
            ("[[targets]]\nname = \"a\"\nkind = \"smtp\"\n", "target `a`: unknown kind `smtp`; use one of: http"),
            ("[[targets]]\nname = \"a\"\nkind = \"http\"\nurl = \"not a url\"\n", "target `a`: url `not a url` does not parse"),
            ("[[targets]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"x:1\"\nfailure_threshold = 0\n", "target `a`: failure_threshold"),
            ("[[targets]]\nname = \"a\"\nkind = \"vllm\"\nurl = \"http://x\"\nmodel = \"m\"\n", "target `a`: unknown field `model`"),
            ("[[targets]]\nkind = \"tcp\"\naddress = \"x:1\"\n", "targets[0]: missing field `name`"),
            ("[[targets]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"x:1\"\ntimeout = \"20s\"\n", "timeout (20s) is longer than interval"),
        ];
        for (toml, want) in cases {
            let err = parse(toml).unwrap_err();
            assert!(err.contains(want), "want `{want}` in: {err}");
        }
    }
}
