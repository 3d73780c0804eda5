//! `hwc-model-router`: parse flags, load config, run.

use clap::Parser;
use hwc_ai_core::cli::{run_daemon, DaemonArgs};
use hwc_model_router::config::RouterConfig;
use std::process::ExitCode;

/// mimalloc instead of glibc malloc: the router allocates per request (the
/// parsed body, headers, spans), and glibc's `malloc`/`free` were about a
/// fifth of its CPU under load (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// OpenAI-compatible model router for hwc-ai.
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
        "hwc-model-router",
        &args.daemon,
        |cfg: &RouterConfig| {
            hwc_model_router::check(cfg).map(|()| {
                format!(
                    "{} backends, {} models, {} aliases, listening on {}",
                    cfg.backends.len(),
                    cfg.models.len(),
                    cfg.aliases.len(),
                    cfg.server.listen
                )
            })
        },
        hwc_model_router::daemon,
    )
}
