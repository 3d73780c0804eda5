//! `hwc-agent-runner`: the daemon (no subcommand), or one of its commands.

use clap::Parser;
use hwc_agent_runner::cli::{self, AuditCommand, PolicyCommand};
use hwc_ai_core::cli::{run_daemon, DaemonArgs};
use std::process::ExitCode;

/// Operations agent for hwc-ai, gated by an R0-R3 policy.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Check a policy file, or explain a decision.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Verify the audit chain, or make a checkpoint key.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Run the evaluation scenarios: replayed transcripts, or live against
    /// an endpoint (docs/eval.md).
    Eval(hwc_agent_runner::eval::command::EvalArgs),
}

fn main() -> ExitCode {
    let args = match hwc_ai_core::cli::parse::<Args>() {
        Ok(args) => args,
        Err(guard_exit) => return guard_exit,
    };
    match &args.command {
        Some(Command::Policy(cmd)) => cli::policy(cmd),
        Some(Command::Audit(cmd)) => cli::audit(cmd, &args.daemon),
        Some(Command::Eval(a)) => hwc_agent_runner::eval::command::main(a),
        None => run_daemon(
            hwc_agent_runner::NAME,
            &args.daemon,
            hwc_agent_runner::check,
            hwc_agent_runner::daemon,
        ),
    }
}
