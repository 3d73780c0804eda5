//! The agent's tools. Each one [`Tool::plan`]s a call first: arguments
//! checked against its schema and normalised, the words the policy judges,
//! the target, and a rollback plan where it can generate one. The loop
//! classifies the plan, records it, waits for approvals if needed, and only
//! then [`Tool::run`]s exactly the planned arguments (their digest is what
//! was approved).
//!
//! [`host`] inspects the host (systemctl, journal, facts) and changes unit
//! state over D-Bus; [`net`] GETs fleet endpoints and queries Prometheus;
//! [`files`] reads and changes files in the job's workspace; [`git`] works
//! in the job's worktree; [`shell`] runs a line in the sandbox; [`mcp`]
//! lists and calls MCP tools through hwc-mcp-bridge; [`ssh`] runs a command
//! on a declared host; [`kubectl`] looks at and acts on a declared
//! Kubernetes cluster; [`ci`] triggers and reads declared CI pipelines;
//! [`knowledge`] searches runbooks and past incidents.

pub mod ci;
pub mod files;
pub mod git;
pub mod host;
pub mod knowledge;
pub mod kubectl;
pub mod mcp;
pub mod net;
pub mod schema;
pub mod shell;
pub mod ssh;

use crate::config::ToolsConfig;
use crate::model::ToolSpec;
use crate::policy::Risk;
use crate::sandbox::SandboxConfig;
use hwc_ai_core::systemd::Systemd;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// What a tool needs from the job and the runner.
#[derive(Clone)]
pub struct Ctx {
    /// The job's workspace (its git worktree when it names a repository).
    pub workspace: PathBuf,
    /// The worktree's git directory, found from the repository (which the
    /// agent cannot write), never from the workspace's own `.git` file
    /// (which it can): host-side git reads its configuration there, and a
    /// configuration can run programs. None: the job has no repository.
    pub git_dir: Option<PathBuf>,
    /// The job's environment.
    pub environment: String,
    /// This host's name.
    pub host: String,
    /// The sandbox.
    pub sandbox: SandboxConfig,
    /// Paths the sandbox hides (state, credentials).
    pub hidden: Vec<PathBuf>,
    /// Tool settings.
    pub tools: ToolsConfig,
    /// For `http_get` and Prometheus.
    pub http: reqwest::Client,
    /// The system bus.
    pub systemd: Arc<Systemd>,
    /// Runbooks and past incidents, if configured.
    pub knowledge: Option<Arc<crate::knowledge::Knowledge>>,
}

/// How an action shows in the event stream (Codex's item types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A command ran (shell, systemctl, journal, …).
    CommandExecution,
    /// Files changed.
    FileChange,
    /// A read-only lookup (HTTP GET, Prometheus, a file read).
    ToolCall,
}

/// What the policy judges for a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanSubject {
    /// A shell line, parsed by the policy.
    Shell(String),
    /// Typed words, one command per thing acted on.
    Commands(Vec<Vec<String>>),
}

/// A call, checked and ready to be judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Planned {
    /// The tool.
    pub tool: String,
    /// The arguments that will run (normalised; the digest covers them).
    pub arguments: Value,
    /// What the policy judges.
    pub subject: PlanSubject,
    /// What it acts on (host, unit, path).
    pub target: String,
    /// How to undo it, when it changes something.
    pub rollback: Option<String>,
    /// The class the model claimed, if it did.
    pub claimed: Option<Risk>,
    /// One line for approvers and events: `systemctl restart ollama.service`.
    pub summary: String,
    /// Event item type.
    pub item: ItemKind,
    /// Whether the policy granted network access (set by the loop from the
    /// decision; the shell sandbox reads it).
    #[serde(default)]
    pub network: bool,
    /// The model's id for the call (set by the loop), to answer it; not
    /// part of what is approved.
    #[serde(default)]
    pub call_id: Option<String>,
    /// The environment it runs in when that is not the job's (an ssh
    /// host's): the policy judges it there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

/// What a run returned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolOutput {
    /// Text for the model (redacted by the loop before it goes anywhere).
    pub text: String,
    /// Whether it did what was asked.
    pub ok: bool,
    /// Exit code, for commands.
    pub exit_code: Option<i64>,
    /// SHA-256 of the whole output.
    pub output_hash: String,
    /// Duration.
    pub duration_ms: i64,
    /// Files changed, for `file_change` items.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
}

impl ToolOutput {
    /// A text answer (no program, no exit code), hashed whole, timed from
    /// `started`.
    pub fn from_text(text: String, ok: bool, started: std::time::Instant) -> Self {
        Self {
            output_hash: crate::audit::sha256_hex(text.as_bytes()),
            text,
            ok,
            exit_code: None,
            duration_ms: started.elapsed().as_millis() as i64,
            changes: Vec::new(),
        }
    }

    /// What a finished program returned.
    pub fn from_outcome(o: &crate::exec::Outcome) -> Self {
        Self {
            text: o.for_model(),
            ok: o.success(),
            exit_code: Some(o.code_for_record()),
            output_hash: o.output_hash.clone(),
            duration_ms: o.duration.as_millis() as i64,
            changes: Vec::new(),
        }
    }
}

/// A call that can't be planned or run: told to the model, never a crash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ToolError(pub String);

impl ToolError {
    /// An error from anything displayable.
    pub fn new(e: impl std::fmt::Display) -> Self {
        Self(e.to_string())
    }
}

/// One tool.
#[async_trait::async_trait]
pub trait Tool: Send + Sync {
    /// Its name, description and argument schema.
    fn spec(&self) -> ToolSpec;

    /// Checks and normalises `args` into a plan (may look at the host, to
    /// record a unit's state for its rollback, say).
    async fn plan(&self, args: &Value, ctx: &Ctx) -> Result<Planned, ToolError>;

    /// Runs a plan exactly as planned.
    async fn run(&self, planned: &Planned, ctx: &Ctx) -> Result<ToolOutput, ToolError>;
}

/// The tools by name.
#[derive(Clone)]
pub struct Toolbox {
    tools: BTreeMap<String, Arc<dyn Tool>>,
}

impl Toolbox {
    /// Every tool.
    pub fn all() -> Self {
        let list: Vec<Arc<dyn Tool>> = vec![
            Arc::new(host::SystemctlStatus),
            Arc::new(host::ListUnits),
            Arc::new(host::Journal),
            Arc::new(host::HostFacts),
            Arc::new(host::UnitControl),
            Arc::new(net::HttpGet),
            Arc::new(net::PrometheusQuery),
            Arc::new(files::ReadFile),
            Arc::new(files::SearchFiles),
            Arc::new(files::WriteFile),
            Arc::new(files::ApplyPatch),
            Arc::new(git::Git),
            Arc::new(shell::Shell),
            Arc::new(mcp::McpTools),
            Arc::new(mcp::McpCall),
            Arc::new(ssh::Ssh),
            Arc::new(knowledge::SearchKnowledge),
            Arc::new(kubectl::Kubectl),
            Arc::new(ci::Ci),
        ];
        Self {
            tools: list.into_iter().map(|t| (t.spec().name, t)).collect(),
        }
    }

    /// Every tool this configuration can serve: the MCP tools only with a
    /// bridge, `ssh` only with declared hosts, `kubectl` only with declared
    /// clusters, `ci` only with declared pipelines, `search_knowledge` only
    /// with knowledge directories. A tool that could only say "not configured"
    /// is not offered (a small model's prompt is short: every tool costs).
    pub fn configured(cfg: &ToolsConfig) -> Self {
        let mut off: Vec<&str> = Vec::new();
        if cfg.mcp.bridge_url.is_none() {
            off.extend(["mcp_tools", "mcp_call"]);
        }
        if cfg.ssh.hosts.is_empty() {
            off.push("ssh");
        }
        if cfg.knowledge.paths.is_empty() {
            off.push("search_knowledge");
        }
        if cfg.kubernetes.clusters.is_empty() {
            off.push("kubectl");
        }
        if cfg.ci.pipelines.is_empty() {
            off.push("ci");
        }
        let mut all = Self::all();
        all.tools.retain(|name, _| !off.contains(&name.as_str()));
        all
    }

    /// Only the named tools (a session's read-only set, a job's grants).
    pub fn only(&self, names: &[&str]) -> Self {
        Self {
            tools: self
                .tools
                .iter()
                .filter(|(n, _)| names.contains(&n.as_str()))
                .map(|(n, t)| (n.clone(), t.clone()))
                .collect(),
        }
    }

    /// A tool by name.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name)
    }

    /// The names.
    pub fn names(&self) -> Vec<&str> {
        self.tools.keys().map(String::as_str).collect()
    }

    /// Specs for the model.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.values().map(|t| t.spec()).collect()
    }
}

/// What a chat session offers: the tools that only read, and the shell
/// (whose lines a session runs only when the policy classes them R0).
pub const READ_ONLY: &[&str] = &[
    "shell",
    "systemctl_status",
    "list_units",
    "journal",
    "host_facts",
    "http_get",
    "prometheus_query",
    "read_file",
    "search_files",
    "mcp_tools",
    "mcp_call",
    "search_knowledge",
    "kubectl",
    "ci",
];

/// A unit name as systemd accepts it, with `.service` added when it has no
/// suffix; an error naming the rule otherwise.
pub fn unit_name(raw: &str) -> Result<String, ToolError> {
    let ok = !raw.is_empty()
        && raw.len() <= 255
        && !raw.starts_with('-')
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@._:-\\".contains(c));
    if !ok {
        return Err(ToolError(format!(
            "`{raw}` is not a unit name (letters, digits and @._:-\\ only, not starting with -)"
        )));
    }
    Ok(if raw.contains('.') {
        raw.to_string()
    } else {
        format!("{raw}.service")
    })
}

/// The string argument `key`, or an error naming it.
pub fn str_arg<'a>(args: &'a Value, key: &str) -> Result<&'a str, ToolError> {
    args[key]
        .as_str()
        .ok_or_else(|| ToolError(format!("`{key}` must be a string")))
}

/// The exec invocation every host command shares: fixed argv, a plain
/// environment, the sandbox's timeout and capture size.
pub fn host_invocation(ctx: &Ctx, argv: Vec<String>) -> crate::exec::Invocation {
    crate::exec::Invocation {
        argv,
        env: vec![
            ("PATH".into(), ctx.sandbox.path.clone()),
            ("LANG".into(), "C.UTF-8".into()),
            ("SYSTEMD_PAGER".into(), String::new()),
            ("SYSTEMD_COLORS".into(), "0".into()),
        ],
        cwd: Some(ctx.workspace.clone()),
        timeout: ctx.sandbox.timeout,
        keep: ctx.sandbox.keep_bytes,
    }
}

/// Runs a host command (never a shell) and reports it as a tool output.
pub async fn run_host(ctx: &Ctx, argv: Vec<String>) -> Result<ToolOutput, ToolError> {
    let o = crate::exec::run(&host_invocation(ctx, argv))
        .await
        .map_err(ToolError::new)?;
    Ok(ToolOutput::from_outcome(&o))
}

/// A context for the tools' unit tests: a dev job on host `h` in the temp
/// directory, with `tools`.
#[cfg(test)]
pub fn test_ctx(tools: ToolsConfig) -> Ctx {
    Ctx {
        workspace: std::env::temp_dir(),
        git_dir: None,
        environment: "dev".into(),
        host: "h".into(),
        sandbox: Default::default(),
        hidden: Vec::new(),
        tools,
        http: reqwest::Client::new(),
        systemd: Arc::new(Systemd::default()),
        knowledge: None,
    }
}

/// A program from the tools config as an argv word.
pub fn program(p: &std::path::Path) -> String {
    p.display().to_string()
}
