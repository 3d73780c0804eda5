//! `hwc-model-manager`: parse flags, load config, run (or print a plan).

use clap::{Parser, Subcommand};
use hwc_ai_core::cli::{run_command, run_daemon, DaemonArgs};
use std::process::ExitCode;

/// Model manager for hwc-ai.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print what a reconcile would do (pull, update, prune, nothing), do nothing.
    Plan {
        #[command(flatten)]
        daemon: DaemonArgs,
    },
}

fn main() -> ExitCode {
    let args = match hwc_ai_core::cli::parse::<Args>() {
        Ok(args) => args,
        Err(guard_exit) => return guard_exit,
    };
    match args.command {
        Some(Command::Plan { daemon }) => run_command(
            "hwc-model-manager",
            &DaemonArgs {
                check_config: false,
                ..daemon
            },
            hwc_model_manager::check,
            hwc_model_manager::plan,
        ),
        None => run_daemon(
            "hwc-model-manager",
            &args.daemon,
            hwc_model_manager::check,
            hwc_model_manager::daemon,
        ),
    }
}
