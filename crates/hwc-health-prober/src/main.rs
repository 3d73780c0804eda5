//! `hwc-health-prober`: parse flags, load config, run.

use clap::Parser;
use hwc_ai_core::cli::{run_daemon, DaemonArgs};
use hwc_health_prober::config::ProberConfig;
use std::process::ExitCode;

/// Health prober for hwc-ai.
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
        "hwc-health-prober",
        &args.daemon,
        |cfg: &ProberConfig| {
            hwc_health_prober::check(cfg).map(|n| {
                let healing = cfg
                    .targets()
                    .map_or(0, |t| t.iter().filter(|t| t.restart_unit.is_some()).count());
                format!(
                    "{n} targets ({healing} with restart_unit{}), listening on {}",
                    if cfg.healing.dry_run { ", dry run" } else { "" },
                    cfg.server.listen
                )
            })
        },
        hwc_health_prober::daemon,
    )
}
