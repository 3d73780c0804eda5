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
