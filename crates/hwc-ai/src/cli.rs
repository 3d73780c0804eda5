//! The command line, as clap definitions: the one source of `--help`, the
//! shell completions (`hwc-ai completions <shell>`) and the man page
//! (`hwc-ai man`).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// The operator's CLI for the hwc-ai fleet.
///
/// Where the daemons are and the tokens to use come from
/// /etc/hwc-ai/cli.toml (the NixOS module writes it), or the file
/// HWC_AI_CLI_CONFIG names; a daemon without a table is asked at its
/// default loopback port.
#[derive(Debug, Parser)]
#[command(name = "hwc-ai", version, about, long_about)]
pub struct Cli {
    /// Print JSON instead of tables (every command).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole fleet at a glance; exit 1 when something is down.
    Status,
    /// The model manager's declared models.
    Models {
        /// What to do with them.
        #[command(subcommand)]
        command: Option<ModelsCommand>,
    },
    /// Where the router would send a request, and why (nothing is sent).
    Route {
        /// What to do.
        #[command(subcommand)]
        command: RouteCommand,
    },
    /// The agent runner's jobs and approvals.
    Jobs {
        /// What to do.
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// The MCP bridge.
    Mcp {
        /// What to do.
        #[command(subcommand)]
        command: McpCommand,
    },
    /// The agent's risk policy: check a file, explain a decision (local,
    /// the runner's own code).
    Policy {
        /// What to do.
        #[command(subcommand)]
        command: hwc_agent_runner::cli::PolicyCommand,
    },
    /// The agent's tamper-evident audit chain (local: run where the
    /// runner's database is, as a user who may read it).
    Audit {
        /// The runner's configuration (its `[store]` and checkpoint key).
        #[arg(long, default_value = "/etc/hwc-ai/agent-runner.toml")]
        runner_config: PathBuf,
        /// What to do.
        #[command(subcommand)]
        command: hwc_agent_runner::cli::AuditCommand,
    },
    /// Shell completions for bash, zsh, fish, elvish or powershell.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The man page (roff), for `man -l -`.
    Man,
}

/// `hwc-ai models …`.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Every declared model and its state (the default).
    List {
        /// Keep showing progress bars until no pull is running.
        #[arg(long)]
        watch: bool,
    },
    /// What a reconcile would do now; changes nothing.
    Plan,
    /// Reconcile now (pull, verify, prune) and show the progress.
    Reconcile {
        /// Return at once instead of following the pulls.
        #[arg(long)]
        no_wait: bool,
    },
}

/// `hwc-ai route …`.
#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    /// The router's decision for a request: the model, the rule, the
    /// backends in order with their state.
    Explain {
        /// The model asked for (an alias, `auto`, or a `[models]` entry).
        #[arg(long, default_value = "auto")]
        model: String,
        /// The user message (its length is a routing signal).
        #[arg(long, default_value = "hello")]
        prompt: String,
        /// Offer this many tools (a routing signal of `auto`).
        #[arg(long, default_value_t = 0)]
        tools: usize,
        /// Local backends only (`x-hwc-privacy: local-only`).
        #[arg(long)]
        local_only: bool,
        /// Ask `auto` for the strong model (`x-hwc-escalate: strong`).
        #[arg(long)]
        escalate: bool,
        /// The endpoint: chat, completions, embeddings or responses.
        #[arg(long, default_value = "chat")]
        endpoint: String,
        /// A whole request body (JSON) instead of the flags above.
        #[arg(long, value_name = "FILE")]
        request: Option<PathBuf>,
    },
}

/// `hwc-ai jobs …`.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// The latest jobs.
    List {
        /// Only jobs in this state (queued, running, waiting_approval,
        /// completed, failed, cancelled).
        #[arg(long)]
        state: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One job, with the action it waits on.
    Show {
        /// The job id.
        id: String,
    },
    /// The job's events as they happen, until it ends.
    Follow {
        /// The job id.
        id: String,
        /// Start after this event (default: from the first).
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
    /// Approve the action the job waits on.
    Approve {
        /// The job id.
        id: String,
        /// Why (kept in the audit).
        #[arg(long, short, default_value = "")]
        comment: String,
        /// Approve only if the waiting action still has this digest (what
        /// `hwc-ai jobs show` printed); required when not on a terminal,
        /// unless --yes.
        #[arg(long)]
        digest: Option<String>,
        /// Do not ask.
        #[arg(long, short)]
        yes: bool,
    },
    /// Reject the action the job waits on (the job goes on without it).
    Reject {
        /// The job id.
        id: String,
        /// Why (kept in the audit, shown to the model).
        #[arg(long, short, default_value = "")]
        comment: String,
    },
    /// Cancel the job.
    Cancel {
        /// The job id.
        id: String,
    },
    /// The job's report.
    Report {
        /// The job id.
        id: String,
        /// As Markdown instead of a summary.
        #[arg(long)]
        markdown: bool,
    },
}

/// `hwc-ai mcp …`.
#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// The servers this token may use.
    Servers,
}
