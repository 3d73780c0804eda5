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
    // Before clap: a child's guard is this binary re-executed with the
    // child's command line, which is not ours to parse.
    if let Some(code) = hwc_ai_core::process::guard_if_requested() {
        return code;
    }
    let args = Args::parse();
    run_daemon(
        "hwc-mcp-bridge",
        &args.daemon,
        hwc_mcp_bridge::check,
        hwc_mcp_bridge::daemon,
    )
}
