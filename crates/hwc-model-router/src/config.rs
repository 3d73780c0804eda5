//! The router's configuration: `[server]`, `[auth]`, `[[backends]]`,
//! `[models.*]`, `[aliases]`, `[auto]`, `[fallback]`, `[privacy]`,
//! `[streaming]`, `[state]`, `[telemetry]`. docs/router.md documents every key.

use hwc_ai_core::config::Validate;
use hwc_ai_core::runtimes::Runtimes;
use hwc_ai_core::server::ServerConfig;
use hwc_ai_core::telemetry::TelemetryConfig;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

/// Default port of the router.
pub const DEFAULT_PORT: u16 = 8470;

/// The whole router configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterConfig {
    /// Listener and limits shared by every daemon.
    pub server: ServerConfig,
    /// Who may call the router.
    pub auth: AuthConfig,
    /// Upstream servers.
    pub backends: Vec<BackendConfig>,
    /// Model names clients may ask for, each with its ordered targets.
    pub models: BTreeMap<String, ModelConfig>,
    /// Extra names for models (`default = "gpt-oss-20b"`).
    pub aliases: BTreeMap<String, String>,
    /// The `auto` model: default vs strong by local rules.
    pub auto: AutoConfig,
    /// Retries, backoff and cooldown.
    pub fallback: FallbackConfig,
    /// Local-only requests.
    pub privacy: PrivacyConfig,
    /// SSE behaviour.
    pub streaming: StreamingConfig,
    /// Persistent state (usage, budgets, idempotency).
    pub state: StateConfig,
    /// Trace export and sampling, shared by every daemon.
    pub telemetry: TelemetryConfig,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            // Its handlers only wait (on a backend, on the store), so
            // threads of their own, without hand-offs between them, cost
            // the least per request (hwc_ai_core::runtimes).
            server: ServerConfig {
                runtimes: Runtimes::PerCore,
                ..ServerConfig::on_port(DEFAULT_PORT)
            },
            auth: AuthConfig::default(),
            backends: Vec::new(),
            models: BTreeMap::new(),
            aliases: BTreeMap::new(),
            auto: AutoConfig::default(),
            fallback: FallbackConfig::default(),
            privacy: PrivacyConfig::default(),
            streaming: StreamingConfig::default(),
            state: StateConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

/// `[auth]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// TOML file of API keys (relative paths resolve under
    /// `$CREDENTIALS_DIRECTORY`). See docs/router.md for its format.
    pub keys_file: Option<PathBuf>,
    /// Let requests without a key in (loopback development only); they get
    /// the `anonymous_*` limits below.
    pub allow_anonymous: bool,
    /// Privacy of anonymous requests.
    pub anonymous_privacy: Privacy,
}

/// Where a request may be served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Privacy {
    /// Local and cloud backends alike.
    #[default]
    AllowCloud,
    /// Never a cloud backend, not even on fallback.
    LocalOnly,
}

/// Where a backend runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Locality {
    /// On this host or this site: may serve local-only requests.
    #[default]
    Local,
    /// A third party's API: never sees local-only requests.
    Cloud,
}

/// The protocol a backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// OpenAI-compatible: vLLM, llama.cpp, Ollama `/v1`, OpenAI, OpenRouter.
    Openai,
    /// Anthropic's Messages API, translated both ways.
    Anthropic,
}

/// How requests spread over a backend's replicas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Peak-EWMA of latency times outstanding requests, two random choices.
    #[default]
    PeakEwma,
    /// Fewest outstanding requests, two random choices.
    LeastOutstanding,
}

/// One `[[backends]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Unique name, used in `[models.*]` targets, metrics and `x-hwc-backend`.
    pub name: String,
    /// Protocol.
    pub kind: BackendKind,
    /// Local or cloud, for privacy rules.
    #[serde(default)]
    pub locality: Locality,
    /// Base URLs of the replicas, up to and including `/v1`
    /// (`http://127.0.0.1:8080/v1`).
    pub urls: Vec<String>,
    /// File with the upstream API key (relative: under `$CREDENTIALS_DIRECTORY`).
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// Replica selection.
    #[serde(default)]
    pub balance: Balance,
    /// Whether the backend serves `/v1/responses`.
    #[serde(default)]
    pub responses_api: bool,
    /// TCP connect deadline.
    #[serde(default = "defaults::connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Deadline for the response head and, when streaming, the first token;
    /// past it the next candidate is tried.
    #[serde(default = "defaults::first_token_timeout", with = "humantime_serde")]
    pub first_token_timeout: Duration,
    /// Deadline for a whole non-streamed answer.
    #[serde(default = "defaults::request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// `max_tokens` sent to Anthropic when the client gave none.
    #[serde(default = "defaults::max_tokens")]
    pub default_max_tokens: u64,
}

/// One `[models.<name>]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Candidates in order of preference; later ones are fallbacks.
    pub targets: Vec<TargetConfig>,
}

/// One candidate for a model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// A `[[backends]]` name.
    pub backend: String,
    /// The model name the backend knows it by.
    pub model: String,
}

/// `[auto]`: the `auto` model escalates hard tasks to the strong model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoConfig {
    /// Name clients send to get rule-based routing.
    pub name: String,
    /// Model for ordinary requests.
    pub default_model: Option<String>,
    /// Model for hard ones.
    pub strong_model: Option<String>,
    /// Request header that forces a choice: `strong`/`1`/`true` escalates,
    /// `default`/`0`/`false` never does.
    pub header: String,
    /// Escalate at this many characters of message text.
    pub prompt_chars: usize,
    /// Escalate at this many tools offered.
    pub tools: usize,
    /// Escalate at this many messages in the conversation.
    pub messages: usize,
    /// Regular expressions that mark a hard task (stack traces, diffs),
    /// matched against the last user message.
    pub markers: Vec<String>,
}

impl Default for AutoConfig {
    fn default() -> Self {
        Self {
            name: "auto".into(),
            default_model: None,
            strong_model: None,
            header: "x-hwc-escalate".into(),
            prompt_chars: 24_000,
            tools: 8,
            messages: 16,
            markers: vec![
                r"Traceback \(most recent call last\)".into(),
                r"(?m)^\s+at [\w$.<>]+\(.*:\d+\)".into(),
                r"panicked at ".into(),
                r"(?m)^diff --git ".into(),
                r"(?m)^@@ -\d+(,\d+)? \+\d+(,\d+)? @@".into(),
                r"(?i)\bsegmentation fault\b".into(),
            ],
        }
    }
}

/// `[fallback]`: retries, backoff and cooldown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FallbackConfig {
    /// Upstream attempts per request, across all candidates.
    pub max_attempts: usize,
    /// First backoff step; each later one doubles, with full jitter.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// Largest backoff, and the longest upstream `Retry-After` that is
    /// waited out rather than skipped.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Consecutive failures that cool a replica down.
    pub cooldown_failures: u32,
    /// Error ratio over `cooldown_window` that cools a replica down
    /// (with at least `cooldown_min_requests` requests).
    pub cooldown_error_rate: f64,
    /// Minimum requests in the window before the ratio counts.
    pub cooldown_min_requests: u32,
    /// Window for the error ratio.
    #[serde(with = "humantime_serde")]
    pub cooldown_window: Duration,
    /// How long a cooled-down replica is skipped.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            cooldown_failures: 3,
            cooldown_error_rate: 0.5,
            cooldown_min_requests: 4,
            cooldown_window: Duration::from_secs(60),
            cooldown: Duration::from_secs(5),
        }
    }
}

/// `[privacy]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Request header a client sets to `local-only` to keep a request local.
    pub header: String,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            header: "x-hwc-privacy".into(),
        }
    }
}

/// `[streaming]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamingConfig {
    /// While the first token is awaited, an SSE comment is sent this often so
    /// clients and proxies don't time out.
    #[serde(with = "humantime_serde")]
    pub keepalive: Duration,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        Self {
            keepalive: Duration::from_secs(5),
        }
    }
}

/// `[state]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// SQLite database for usage, budgets and idempotent answers. Relative
    /// paths resolve under `$STATE_DIRECTORY` (systemd `StateDirectory`).
    /// Not used when `url` or `url_file` names a database.
    pub database: PathBuf,
    /// A `postgres://` (or `sqlite://`) URL without a password: several
    /// routers given the same one share budgets, idempotency answers and
    /// stored responses.
    pub url: Option<String>,
    /// A file holding that URL (a credential: it may carry a password).
    pub url_file: Option<PathBuf>,
    /// How long an `Idempotency-Key` answer is kept.
    #[serde(with = "humantime_serde")]
    pub idempotency_window: Duration,
    /// How often accumulated usage is written to the database.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// How long stored Responses (`store` true) are kept for
    /// `previous_response_id` and `GET /v1/responses/{id}`.
    #[serde(with = "humantime_serde")]
    pub responses_retention: Duration,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            database: PathBuf::from("router.sqlite"),
            url: None,
            url_file: None,
            idempotency_window: Duration::from_secs(24 * 3600),
            flush_interval: Duration::from_secs(1),
            responses_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

mod defaults {
    use std::time::Duration;
    pub fn connect_timeout() -> Duration {
        Duration::from_secs(2)
    }
    pub fn first_token_timeout() -> Duration {
        Duration::from_secs(60)
    }
    pub fn request_timeout() -> Duration {
        Duration::from_secs(600)
    }
    pub fn max_tokens() -> u64 {
        4096
    }
}

impl RouterConfig {
    /// The backend entry called `name`.
    pub fn backend(&self, name: &str) -> Option<&BackendConfig> {
        self.backends.iter().find(|b| b.name == name)
    }

    /// Every name a client may send: models, aliases, and `auto` if set up.
    pub fn public_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.models.keys().cloned().collect();
        names.extend(self.aliases.keys().cloned());
        if self.auto.default_model.is_some() {
            names.push(self.auto.name.clone());
        }
        names
    }
}

impl Validate for RouterConfig {
    fn validate(&self) -> Result<(), Vec<String>> {
        let mut p = self.server.problems();
        p.extend(self.telemetry.problems());
        if self.state.url.is_some() && self.state.url_file.is_some() {
            p.push("state: set `url` or `url_file`, not both".into());
        }
        if let Some(u) = &self.state.url {
            if let Err(e) = hwc_ai_core::db::backend_of(u) {
                p.push(format!("state.url: {}", e.source));
            } else if hwc_ai_core::db::redact_url(u) != *u {
                p.push("state.url carries a password: put the URL in a file and name it in `url_file` (a credential), so it is not in the configuration".into());
            }
        }
        let mut seen = HashSet::new();
        for b in &self.backends {
            if !seen.insert(b.name.as_str()) {
                p.push(format!(
                    "backend name `{}` is used twice; give each [[backends]] entry a unique name",
                    b.name
                ));
            }
            if b.urls.is_empty() {
                p.push(format!("backend `{}` has no urls; list at least one base URL such as \"http://127.0.0.1:8080/v1\"", b.name));
            }
            for u in &b.urls {
                match reqwest::Url::parse(u) {
                    Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                    Ok(_) => p.push(format!("backend `{}` url `{u}` is not http or https", b.name)),
                    Err(e) => p.push(format!("backend `{}` url `{u}` does not parse ({e}); write a full URL such as \"http://127.0.0.1:8080/v1\"", b.name)),
                }
            }
        }
        for (name, m) in &self.models {
            if m.targets.is_empty() {
                p.push(format!("model `{name}` has no targets; add at least one {{ backend = \"...\", model = \"...\" }}"));
            }
            for t in &m.targets {
                if self.backend(&t.backend).is_none() {
                    p.push(format!(
                        "model `{name}` targets backend `{}`, which is not defined in [[backends]]",
                        t.backend
                    ));
                }
            }
            if name == &self.auto.name {
                p.push(format!(
                    "model `{name}` clashes with the auto model's name; rename one of them"
                ));
            }
        }
        for (alias, target) in &self.aliases {
            if self.models.contains_key(alias) {
                p.push(format!(
                    "alias `{alias}` is also a model name; rename the alias"
                ));
            }
            if alias == &self.auto.name {
                p.push(format!(
                    "alias `{alias}` clashes with the auto model's name (requests for `{alias}` would go to [auto], not to `{target}`); rename the alias, or set [auto] default_model = \"{target}\""
                ));
            }
            if !self.models.contains_key(target) {
                p.push(format!(
                    "alias `{alias}` points to `{target}`, which is not a [models] entry"
                ));
            }
        }
        let resolves = |m: &str| self.models.contains_key(m) || self.aliases.contains_key(m);
        match (&self.auto.default_model, &self.auto.strong_model) {
            (Some(d), s) => {
                if !resolves(d) {
                    p.push(format!("auto.default_model `{d}` is not a model or alias"));
                }
                if let Some(s) = s {
                    if !resolves(s) {
                        p.push(format!("auto.strong_model `{s}` is not a model or alias"));
                    }
                }
            }
            (None, Some(_)) => {
                p.push("auto.strong_model is set without auto.default_model; set both".into())
            }
            (None, None) => {}
        }
        for m in &self.auto.markers {
            if let Err(e) = regex::Regex::new(m) {
                p.push(format!(
                    "auto.markers entry `{m}` is not a valid regular expression: {e}"
                ));
            }
        }
        let f = &self.fallback;
        if f.max_attempts == 0 {
            p.push("fallback.max_attempts is 0; set it to at least 1".into());
        }
        if !(0.0..=1.0).contains(&f.cooldown_error_rate) {
            p.push("fallback.cooldown_error_rate must be between 0 and 1".into());
        }
        if f.cooldown_failures == 0 {
            p.push("fallback.cooldown_failures is 0; set it to at least 1".into());
        }
        for (key, name) in [
            ("privacy.header", &self.privacy.header),
            ("auto.header", &self.auto.header),
        ] {
            if axum::http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).is_err() {
                p.push(format!("{key} `{name}` is not a valid HTTP header name; use letters, digits and dashes"));
            }
        }
        if self.auth.keys_file.is_none() && !self.auth.allow_anonymous {
            p.push("no auth.keys_file is set and auth.allow_anonymous is false, so no request could ever be served; set one of them".into());
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(p)
        }
    }
}
