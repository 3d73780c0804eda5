//! `hwc-ai`: parse, run, exit with the command's code.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Like every binary of the fleet it can be a child's process guard
    // (hwc_ai_core::process), which the CLI's own tests use.
    let cli = match hwc_ai_core::cli::parse::<hwc_ai::cli::Cli>() {
        Ok(cli) => cli,
        Err(guard_exit) => return guard_exit,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hwc-ai: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(hwc_ai::run::run(cli))
}
