//! `hwc-mcp-bridge`: parse flags, load config, run.

use clap::Parser;
use hwc_ai_core::cli::{run_daemon, DaemonArgs};
use std::process::ExitCode;

/// MCP bridge for hwc-ai: stdio MCP servers over authenticated Streamable HTTP.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
}

fn main() -> ExitCode {
    let args = match hwc_ai_core::cli::parse::<Args>() {
        Ok(args) => args,
        Err(guard_exit) => return guard_exit,
    };
    run_daemon(
        "hwc-mcp-bridge",
        &args.daemon,
        hwc_mcp_bridge::check,
        hwc_mcp_bridge::daemon,
    )
}
