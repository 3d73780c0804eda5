//! `hwc-agent-runner`: the policy commands.

use clap::Parser;
use hwc_agent_runner::cli::{self, PolicyCommand};
use std::process::ExitCode;

/// Operations agent for hwc-ai, gated by an R0-R3 policy.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Check a policy file, or explain a decision.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

fn main() -> ExitCode {
    let args = match hwc_ai_core::cli::parse::<Args>() {
        Ok(args) => args,
        Err(guard_exit) => return guard_exit,
    };
    match &args.command {
        Command::Policy(cmd) => cli::policy(cmd),
    }
}
