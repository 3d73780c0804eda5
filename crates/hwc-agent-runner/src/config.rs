//! The runner's configuration: `[server]`, `[telemetry]`, `[auth]` (tokens
//! with roles: requester, approver, admin), `[store]`, `[policy]`,
//! `[audit]`, `[model]`, `[limits]`, `[sandbox]`, `[tools]`, `[retention]`,
//! `[ui]`.
//! docs/agent-runner.md documents every key; examples/agent-runner.toml is
//! a full example.

use crate::sandbox::SandboxConfig;
use hwc_ai_core::auth::AuthConfig;
use hwc_ai_core::config::Validate;
use hwc_ai_core::server::ServerConfig;
use hwc_ai_core::telemetry::TelemetryConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Default port of the runner.
pub const DEFAULT_PORT: u16 = 8472;

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunnerConfig {
    /// Listener and limits shared by every daemon.
    pub server: ServerConfig,
    /// Trace export.
    pub telemetry: TelemetryConfig,
    /// Bearer tokens with roles; there is no anonymous access.
    pub auth: AuthConfig,
    /// Where jobs, events, approvals and the audit live.
    pub store: StoreConfig,
    /// The policy file.
    pub policy: PolicyConfig,
    /// Checkpoint signing.
    pub audit: AuditConfig,
    /// The model router.
    pub model: ModelConfig,
    /// Default and maximum budgets of a job.
    pub limits: LimitsConfig,
    /// The shell sandbox.
    pub sandbox: SandboxConfig,
    /// What the tools may reach.
    pub tools: ToolsConfig,
    /// How long tool output is kept.
    pub retention: RetentionConfig,
    /// The approval page.
    pub ui: UiConfig,
    /// Evaluation results shown in `/metrics`.
    pub eval: EvalConfig,
}

/// `[eval]`: the history file `hwc-agent-runner eval --history` appends
/// to; the last run of each mode and model is exported as `hwc_runner_eval_*`
/// so a Grafana panel shows success and unsafe rate over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// The history file (JSON lines); none: no eval metrics.
    pub history: Option<PathBuf>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig::on_port(DEFAULT_PORT),
            telemetry: TelemetryConfig::default(),
            auth: AuthConfig::default(),
            store: StoreConfig::default(),
            policy: PolicyConfig::default(),
            audit: AuditConfig::default(),
            model: ModelConfig::default(),
            limits: LimitsConfig::default(),
            sandbox: SandboxConfig::default(),
            tools: ToolsConfig::default(),
            retention: RetentionConfig::default(),
            ui: UiConfig::default(),
            eval: EvalConfig::default(),
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://PATH` (relative: under `$STATE_DIRECTORY`) or `postgres://…`.
    pub url: String,
    /// A file holding the whole URL instead (for a PostgreSQL password;
    /// relative: under `$CREDENTIALS_DIRECTORY`).
    pub url_file: Option<PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://agent-runner.db".into(),
            url_file: None,
        }
    }
}

/// `[policy]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// The policy file; the built-in policy (examples/agent-policy.toml)
    /// when absent.
    pub file: Option<PathBuf>,
}

/// `[audit]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The Ed25519 seed that signs checkpoints (a systemd credential);
    /// absent: `audit-signing.key` in the state directory, created on first start.
    pub signing_key_file: Option<PathBuf>,
    /// The key's name in signed notes.
    pub key_name: String,
    /// A checkpoint every this many records (and on shutdown).
    pub checkpoint_every: i64,
    /// This host's name in records; the system's hostname when empty.
    pub host: String,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            signing_key_file: None,
            key_name: "hwc-agent-runner".into(),
            checkpoint_every: 256,
            host: String::new(),
        }
    }
}

/// How the model is asked for tool calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ToolCalling {
    /// OpenAI `tools` and `tool_calls` (gpt-oss, Qwen, Llama 3.1+).
    #[default]
    Native,
    /// `response_format: json_schema` with the tool and argument choices as
    /// enums: for backends and models without native tool calling (the
    /// backend enforces the schema while decoding).
    JsonSchema,
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// The router's OpenAI base URL.
    pub url: String,
    /// A file holding the router API key (relative: under `$CREDENTIALS_DIRECTORY`).
    pub api_key_file: Option<PathBuf>,
    /// The model alias a job uses unless it names one.
    pub default_alias: String,
    /// How tool calls are asked for.
    pub tool_calling: ToolCalling,
    /// One request's limit.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Attempts on 429/503 and connection errors (Retry-After honoured).
    pub max_attempts: u32,
    /// Temperature sent with every request.
    pub temperature: f64,
    /// Completion tokens one turn may take (`max_tokens`).
    pub max_completion_tokens: u64,
    /// In `json_schema` mode, the unit names a `unit` argument is decoded
    /// from (an enum in the schema), so a small model names a real unit;
    /// empty: any string. The NixOS module fills in the fleet's units and
    /// `unitControl`.
    pub units: Vec<String>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8470/v1".into(),
            api_key_file: None,
            default_alias: "auto".into(),
            tool_calling: ToolCalling::Native,
            request_timeout: Duration::from_secs(300),
            max_attempts: 5,
            temperature: 0.2,
            max_completion_tokens: 4096,
            units: Vec::new(),
        }
    }
}

/// `[limits]`: budgets (a job may ask for less, never more).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Model turns per job.
    pub max_steps: u32,
    /// Prompt plus completion tokens per job.
    pub max_tokens: u64,
    /// Wall-clock time per job (time waiting for approval counts).
    #[serde(with = "humantime_serde")]
    pub max_wall: Duration,
    /// Jobs running at once on this runner; more wait in `queued`.
    pub max_running_jobs: usize,
    /// Bytes of one tool result sent to the model.
    pub max_tool_result_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_steps: 40,
            max_tokens: 400_000,
            max_wall: Duration::from_secs(3600),
            max_running_jobs: 4,
            max_tool_result_bytes: 16 * 1024,
        }
    }
}

/// `[tools]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolsConfig {
    /// Prometheus' base URL for `prometheus_query`.
    pub prometheus_url: String,
    /// Repositories a job may name (`repo`); each job works in its own git
    /// worktree of one, under the state directory.
    pub repositories: Vec<PathBuf>,
    /// Where job workspaces are made (relative: under `$STATE_DIRECTORY`).
    pub workspaces: PathBuf,
    /// `systemctl` and `journalctl` (the host's, found in PATH by default).
    pub systemctl: PathBuf,
    /// `journalctl`.
    pub journalctl: PathBuf,
    /// `git`.
    pub git: PathBuf,
    /// The name on the agent's commits.
    pub git_author_name: String,
    /// The email on the agent's commits; `hwc-agent-runner@HOST` by default.
    pub git_author_email: Option<String>,
    /// Lines `journal` returns at most.
    pub max_journal_lines: u32,
    /// `[tools.mcp]`: MCP servers through hwc-mcp-bridge.
    pub mcp: McpToolsConfig,
    /// `[tools.ssh]`: commands on declared hosts.
    pub ssh: SshToolsConfig,
    /// `[tools.knowledge]`: runbooks and past incidents for `search_knowledge`.
    pub knowledge: KnowledgeConfig,
    /// `[tools.kubernetes]`: clusters for `kubectl`, one per environment.
    pub kubernetes: KubernetesToolsConfig,
    /// `[tools.ci]`: pipelines the `ci` tool may trigger and read.
    pub ci: CiToolsConfig,
}

/// `[tools.ci]`: CI pipelines (GitHub Actions workflows, or Forgejo's and
/// Gitea's Actions through the same REST shape) the `ci` tool triggers and
/// reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CiToolsConfig {
    /// The declared pipelines.
    pub pipelines: Vec<CiPipeline>,
    /// Longest one API request may take.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Longest a trigger or `status` may wait for a run to finish (a call
    /// asks for less with `wait_seconds`).
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    /// How often a waiting call asks for the run's state.
    #[serde(with = "humantime_serde")]
    pub poll_every: Duration,
    /// Bytes of job logs `logs` returns (the end of each log is kept).
    pub max_log_bytes: usize,
}

impl Default for CiToolsConfig {
    fn default() -> Self {
        Self {
            pipelines: Vec::new(),
            request_timeout: Duration::from_secs(20),
            max_wait: Duration::from_secs(900),
            poll_every: Duration::from_secs(5),
            max_log_bytes: 64 * 1024,
        }
    }
}

/// `[[tools.ci.pipelines]]`: one workflow the agent may run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CiPipeline {
    /// The name jobs and rules use (`deploy-web`).
    pub name: String,
    /// The API's base URL: `https://api.github.com`, or a Forgejo or Gitea
    /// instance's `https://git.example.org/api/v1`.
    pub api_url: String,
    /// `owner/repo`.
    pub repository: String,
    /// The workflow file (`deploy.yml`) or id.
    pub workflow: String,
    /// The ref a trigger runs when the call names none.
    #[serde(default = "default_ref")]
    pub default_ref: String,
    /// A file with the API token (relative: under `$CREDENTIALS_DIRECTORY`);
    /// read at each call, so a rotation needs no restart.
    pub token_file: PathBuf,
    /// The environment its runs are judged in; the job's when absent.
    #[serde(default)]
    pub environment: Option<String>,
    /// A deploy: its trigger is the words `ci deploy NAME` (R2, R3 in
    /// production by the built-in policy) rather than `ci trigger NAME` (R1).
    #[serde(default)]
    pub deploy: bool,
}

fn default_ref() -> String {
    "main".into()
}

/// `[tools.kubernetes]`: the `kubectl` tool acts on these clusters only,
/// each through a context of a kubeconfig credential, in allow-listed
/// namespaces only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesToolsConfig {
    /// The kubectl binary.
    pub program: PathBuf,
    /// Clusters by the policy environment their actions are judged in
    /// (`[tools.kubernetes.clusters.prod]`).
    pub clusters: BTreeMap<String, KubeCluster>,
    /// Longest one API request may take (`--request-timeout`).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Longest `rollout status` waits for a rollout.
    #[serde(with = "humantime_serde")]
    pub rollout_timeout: Duration,
    /// Log lines `logs` returns at most.
    pub max_log_lines: u32,
    /// Bytes of output kept.
    pub max_output_bytes: usize,
}

impl Default for KubernetesToolsConfig {
    fn default() -> Self {
        Self {
            program: PathBuf::from("kubectl"),
            clusters: BTreeMap::new(),
            request_timeout: Duration::from_secs(20),
            rollout_timeout: Duration::from_secs(120),
            max_log_lines: 500,
            max_output_bytes: 64 * 1024,
        }
    }
}

/// `[tools.kubernetes.clusters.<environment>]`: one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeCluster {
    /// The kubeconfig (relative: under `$CREDENTIALS_DIRECTORY`).
    pub kubeconfig: PathBuf,
    /// The context in it to use.
    pub context: String,
    /// The namespaces the agent may act in; nothing else is reachable.
    pub namespaces: Vec<String>,
}

/// `[tools.knowledge]`: the directories `search_knowledge` searches (plus
/// the incident records of finished jobs), indexed in the background.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KnowledgeConfig {
    /// Directories of Markdown and text (runbooks, postmortems, docs).
    pub paths: Vec<PathBuf>,
    /// The index (relative: under `$STATE_DIRECTORY`), when `store_url` is
    /// not set.
    pub index: PathBuf,
    /// A PostgreSQL URL for the index (`postgres://…`; its tables are
    /// prefixed `knowledge_`), or `"store"` for the runner's own `[store]`
    /// database when that is PostgreSQL; none: SQLite at `index`.
    pub store_url: Option<String>,
    /// The router model alias for `/v1/embeddings` (hybrid search); none:
    /// BM25 only.
    pub embedding_model: Option<String>,
    /// How often the directories are re-read (changed files only).
    #[serde(with = "humantime_serde")]
    pub reindex_every: Duration,
    /// Passages one search returns at most.
    pub max_k: usize,
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        Self {
            paths: Vec::new(),
            index: PathBuf::from("knowledge.sqlite"),
            store_url: None,
            embedding_model: None,
            reindex_every: Duration::from_secs(600),
            max_k: 10,
        }
    }
}

/// `[tools.ssh]`: the `ssh` tool runs commands on these hosts only, with
/// their host keys pinned (never trust on first use) and one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SshToolsConfig {
    /// The declared hosts.
    pub hosts: Vec<SshHost>,
    /// The pinned `known_hosts` file (relative: under `$CREDENTIALS_DIRECTORY`).
    pub known_hosts: Option<PathBuf>,
    /// The private key (relative: under `$CREDENTIALS_DIRECTORY`).
    pub key_file: Option<PathBuf>,
    /// The OpenSSH client.
    pub program: PathBuf,
    /// Longest the connection may take to set up.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest a command may run.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// Bytes of output kept.
    pub max_output_bytes: usize,
}

impl Default for SshToolsConfig {
    fn default() -> Self {
        Self {
            hosts: Vec::new(),
            known_hosts: None,
            key_file: None,
            program: PathBuf::from("ssh"),
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(120),
            max_output_bytes: 64 * 1024,
        }
    }
}

/// `[[tools.ssh.hosts]]`: one host the agent may run commands on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshHost {
    /// The name jobs and rules use (`db1`).
    pub name: String,
    /// Its address (name or IP).
    pub address: String,
    /// Its port.
    #[serde(default = "ssh_port")]
    pub port: u16,
    /// The user to log in as.
    pub user: String,
    /// The environment its commands are judged in (a policy environment).
    pub environment: String,
}

fn ssh_port() -> u16 {
    22
}

/// `[tools.mcp]`: the runner as an MCP client of hwc-mcp-bridge (the
/// `mcp_tools` and `mcp_call` tools). Without `bridge_url` the tools say so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpToolsConfig {
    /// The bridge's base URL (`http://127.0.0.1:8471`).
    pub bridge_url: Option<String>,
    /// A file with the runner's bridge token (relative: under
    /// `$CREDENTIALS_DIRECTORY`); read at each call, so a rotation needs
    /// no restart.
    pub token_file: Option<PathBuf>,
    /// Longest one MCP round trip may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Bytes of a tool's answer kept for the model.
    pub max_result_bytes: usize,
}

impl Default for McpToolsConfig {
    fn default() -> Self {
        Self {
            bridge_url: None,
            token_file: None,
            timeout: Duration::from_secs(60),
            max_result_bytes: 64 * 1024,
        }
    }
}

impl Default for ToolsConfig {
    fn default() -> Self {
        Self {
            prometheus_url: "http://127.0.0.1:9090".into(),
            repositories: Vec::new(),
            workspaces: PathBuf::from("workspaces"),
            systemctl: PathBuf::from("systemctl"),
            journalctl: PathBuf::from("journalctl"),
            git: PathBuf::from("git"),
            git_author_name: "hwc-agent-runner".into(),
            git_author_email: None,
            max_journal_lines: 500,
            mcp: McpToolsConfig::default(),
            ssh: SshToolsConfig::default(),
            knowledge: KnowledgeConfig::default(),
            kubernetes: KubernetesToolsConfig::default(),
            ci: CiToolsConfig::default(),
        }
    }
}

/// `[retention]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Tool output (in events) older than this is removed; the audit keeps
    /// its hash.
    #[serde(with = "humantime_serde")]
    pub tool_output: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            tool_output: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// `[ui]`: the approval page (served at `/ui/`, ADR 0012).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// `Origin` values, besides the runner's own (`http(s)://` + the
    /// request's `Host`), whose pages may send state-changing requests
    /// (`POST`): the page's public origin behind a reverse proxy that does
    /// not pass `Host` through, e.g. `"https://agent.example.org"`.
    /// Any other `Origin` on a `POST` gets 403.
    pub allowed_origins: Vec<String>,
}

impl Validate for RunnerConfig {
    fn validate(&self) -> Result<(), Vec<String>> {
        let mut p = self.server.problems();
        p.extend(self.telemetry.problems());
        if !(self.store.url.starts_with("sqlite:") || self.store.url.starts_with("postgres"))
            && self.store.url_file.is_none()
        {
            p.push(format!(
                "[store] url = \"{}\" must start with sqlite:// or postgres://",
                crate::store::redact_url(&self.store.url)
            ));
        }
        if !self.model.url.starts_with("http://") && !self.model.url.starts_with("https://") {
            p.push(format!(
                "[model] url = \"{}\" must be an http(s) URL",
                self.model.url
            ));
        }
        if self.model.default_alias.trim().is_empty() {
            p.push(
                "[model] default_alias is empty; name the router alias jobs use (gpt-oss-20b)"
                    .into(),
            );
        }
        if self.model.max_attempts == 0 {
            p.push("[model] max_attempts must be at least 1".into());
        }
        if self.limits.max_steps == 0 || self.limits.max_running_jobs == 0 {
            p.push("[limits] max_steps and max_running_jobs must be at least 1".into());
        }
        if self.audit.checkpoint_every < 1 {
            p.push("[audit] checkpoint_every must be at least 1".into());
        }
        if self.sandbox.timeout > self.sandbox.max_timeout {
            p.push("[sandbox] timeout is longer than max_timeout".into());
        }
        if self.auth.token_files.is_empty() && self.auth.tokens.is_empty() {
            p.push("[auth] has no tokens: the runner has no anonymous access; add [[auth.tokens]] with role = \"requester\", \"approver\" or \"admin\"".into());
        }
        let ssh = &self.tools.ssh;
        if !ssh.hosts.is_empty() && (ssh.known_hosts.is_none() || ssh.key_file.is_none()) {
            p.push("[tools.ssh] has hosts but no known_hosts or key_file: host keys are pinned (never trusted on first use) and the key comes from a file; set both".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for h in &ssh.hosts {
            let ok_name = !h.name.is_empty()
                && h.name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
            if !ok_name {
                p.push(format!(
                    "[[tools.ssh.hosts]] name `{}` must be letters, digits, - _ . only",
                    h.name
                ));
            }
            if !seen.insert(h.name.clone()) {
                p.push(format!(
                    "[[tools.ssh.hosts]] `{}` is declared twice",
                    h.name
                ));
            }
            if h.address.is_empty()
                || h.address.starts_with('-')
                || h.user.is_empty()
                || h.user.starts_with('-')
            {
                p.push(format!(
                    "[[tools.ssh.hosts]] `{}`: address and user must be set and not start with -",
                    h.name
                ));
            }
        }
        for (env, c) in &self.tools.kubernetes.clusters {
            if c.context.trim().is_empty() {
                p.push(format!("[tools.kubernetes.clusters.{env}] context is empty; name the kubeconfig context this environment's cluster is reached through"));
            }
            if c.namespaces.is_empty() {
                p.push(format!("[tools.kubernetes.clusters.{env}] namespaces is empty; list the namespaces the agent may act in (nothing else is reachable)"));
            }
            for ns in &c.namespaces {
                if !crate::tools::kubectl::is_dns_label(ns) {
                    p.push(format!("[tools.kubernetes.clusters.{env}] namespace `{ns}` is not a Kubernetes namespace name (lowercase letters, digits and -, at most 63)"));
                }
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.tools.ci.pipelines {
            let at = format!("[[tools.ci.pipelines]] `{}`", c.name);
            if c.name.is_empty()
                || !c
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                p.push(format!("{at}: name must be letters, digits, - _ . only"));
            }
            if !seen.insert(c.name.clone()) {
                p.push(format!("{at} is declared twice"));
            }
            match reqwest::Url::parse(&c.api_url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => p.push(format!("{at}: api_url `{}` is not an http(s) URL (https://api.github.com, or https://git.example.org/api/v1 for Forgejo)", c.api_url)),
            }
            let parts: Vec<&str> = c.repository.split('/').collect();
            if parts.len() != 2 || parts.iter().any(|s| s.is_empty() || s.starts_with('.')) {
                p.push(format!(
                    "{at}: repository `{}` must be owner/repo",
                    c.repository
                ));
            }
            if c.workflow.is_empty() || c.workflow.contains('/') {
                p.push(format!(
                    "{at}: workflow must be a workflow file name (deploy.yml) or id"
                ));
            }
        }
        for o in &self.ui.allowed_origins {
            if crate::ui::parse_origin(o).is_none() {
                p.push(format!("[ui] allowed_origins: `{o}` is not an origin; write scheme://host[:port] with no path, e.g. \"https://agent.example.org\""));
            }
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(p)
        }
    }
}
