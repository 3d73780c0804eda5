//! Command-line flags every daemon shares.

use std::path::PathBuf;

/// `--config` and `--check-config`, flattened into each daemon's own clap
/// parser so the flags are spelled the same everywhere.
#[derive(Debug, Clone, clap::Args)]
pub struct DaemonArgs {
    /// TOML config file layered over the built-in defaults (NixOS renders it
    /// from the module's `settings`).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Validate the configuration (and the files it names), print the result
    /// and exit: 0 when valid, 2 when not.
    #[arg(long)]
    pub check_config: bool,
}

/// A daemon binary's flags, parsed after the one thing that must come
/// first: when [`crate::process`] re-executes this binary as a child's guard,
/// the command line is the child's, not ours, and the guard runs instead
/// (`Err` carries its exit code). Every daemon's `main` starts here, so none
/// can forget it:
///
/// ```ignore
/// let args = match hwc_ai_core::cli::parse::<Args>() { Ok(a) => a, Err(code) => return code };
/// ```
pub fn parse<A: clap::Parser>() -> Result<A, std::process::ExitCode> {
    match crate::process::guard_if_requested() {
        Some(code) => Err(code),
        None => Ok(A::parse()),
    }
}

/// The whole `main` of a daemon: load the layered config, answer
/// `--check-config` with `check`'s summary (exit 0) or its error (exit 2),
/// else `build` the daemon from it and [`crate::server::run`] it: bind or
/// take systemd's socket, serve, drain on SIGTERM, exit 0. A child-process
/// guard asked for by [`crate::process`] runs instead, before anything else.
pub fn run_daemon<C, E, Fut>(
    name: &str,
    args: &DaemonArgs,
    check: impl FnOnce(&C) -> Result<String, E>,
    build: impl FnOnce(C) -> Fut,
) -> std::process::ExitCode
where
    C: serde::de::DeserializeOwned + serde::Serialize + Default + crate::config::Validate,
    E: std::fmt::Display + From<crate::server::ServerError>,
    Fut: std::future::Future<Output = Result<crate::server::Daemon, E>>,
{
    run_command(name, args, check, |cfg| crate::server::run(build(cfg)))
}

/// [`run_daemon`] for a one-shot command of a daemon binary (the model
/// manager's `plan`): the same config loading and `--check-config`, then
/// `run` to completion.
pub fn run_command<C, E, Fut>(
    name: &str,
    args: &DaemonArgs,
    check: impl FnOnce(&C) -> Result<String, E>,
    run: impl FnOnce(C) -> Fut,
) -> std::process::ExitCode
where
    C: serde::de::DeserializeOwned + serde::Serialize + Default + crate::config::Validate,
    E: std::fmt::Display,
    Fut: std::future::Future<Output = Result<(), E>>,
{
    use std::process::ExitCode;
    if let Some(code) = crate::process::guard_if_requested() {
        return code;
    }
    crate::logging::init("info");
    let cfg: C = match crate::config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        return match check(&cfg) {
            Ok(summary) => {
                println!("configuration OK: {summary}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{name}: {e}");
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
            eprintln!("{name}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "{name} failed");
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}
