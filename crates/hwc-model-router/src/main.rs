//! `hwc-model-router`: parse flags, load config, run.

use clap::Parser;
use hwc_ai_core::cli::DaemonArgs;
use hwc_model_router::config::RouterConfig;
use std::process::ExitCode;

/// OpenAI-compatible model router for hwc-ai.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    daemon: DaemonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    hwc_ai_core::logging::init("info");
    let cfg: RouterConfig = match hwc_ai_core::config::load(args.daemon.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hwc-model-router: {e}");
            return ExitCode::from(2);
        }
    };
    if args.daemon.check_config {
        return match hwc_model_router::check(&cfg) {
            Ok(()) => {
                println!(
                    "configuration OK: {} backends, {} models, {} aliases, listening on {}",
                    cfg.backends.len(),
                    cfg.models.len(),
                    cfg.aliases.len(),
                    cfg.server.listen
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("hwc-model-router: {e}");
                ExitCode::from(2)
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hwc-model-router: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(hwc_model_router::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "hwc-model-router failed");
            eprintln!("hwc-model-router: {e}");
            ExitCode::FAILURE
        }
    }
}
