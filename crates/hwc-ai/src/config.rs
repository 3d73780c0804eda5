//! Where the daemons are and which token to use: `/etc/hwc-ai/cli.toml`
//! (written by the NixOS module, `hwc.ai.cli`), or the file named by
//! `HWC_AI_CLI_CONFIG`, then `HWC_AI_CLI_<TABLE>__<KEY>` environment
//! overrides (`HWC_AI_CLI_ROUTER__URL`, table names with `_` for `-`).
//! A table per daemon, named by its component (`[router]`,
//! `[mcp-bridge]`, ...): `url`, `token_file`, `enabled`. A daemon without
//! a table is taken at its default loopback port. Tokens come from files
//! only, never from the command line or the environment itself.

use crate::fleet::{self, Daemon};
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file read when `HWC_AI_CLI_CONFIG` is not set.
pub const DEFAULT_PATH: &str = "/etc/hwc-ai/cli.toml";

/// One daemon's table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonEntry {
    /// Its base URL; the default loopback port when absent.
    pub url: Option<String>,
    /// A file holding the bearer token (or the router key) to send.
    pub token_file: Option<PathBuf>,
    /// `false`: not on this host (left out of `status`).
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an override does not parse, or names an unknown key.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A table names no daemon of the fleet.
    #[error("{path}: [{table}] is not a daemon of the fleet; the tables are {known}")]
    UnknownTable {
        /// The file.
        path: String,
        /// The table.
        table: String,
        /// The known ones.
        known: String,
    },
    /// A token file could not be read.
    #[error("cannot read the token for {daemon} from {file}: {source}; check [{component}] token_file in {path}")]
    Token {
        /// The daemon.
        daemon: &'static str,
        /// Its table.
        component: &'static str,
        /// The token file.
        file: String,
        /// The config file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The CLI's configuration.
#[derive(Debug, Clone, Default)]
pub struct CliConfig {
    /// The file it came from (or would have).
    pub path: PathBuf,
    entries: BTreeMap<String, DaemonEntry>,
}

/// Where one daemon is, and the token to send it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The daemon.
    pub daemon: Daemon,
    /// Its base URL, without a trailing `/`.
    pub url: String,
    /// The token, if one is configured.
    pub token: Option<String>,
    /// Whether it is on this host.
    pub enabled: bool,
}

impl CliConfig {
    /// The file `HWC_AI_CLI_CONFIG` names, or [`DEFAULT_PATH`]; a missing
    /// default file is an empty configuration, a missing named one an error.
    pub fn load() -> Result<Self, ConfigError> {
        match std::env::var_os("HWC_AI_CLI_CONFIG") {
            Some(p) => Self::load_from(Path::new(&p), true),
            None => Self::load_from(Path::new(DEFAULT_PATH), false),
        }
    }

    /// Loads `path` (which must exist when `required`) with the
    /// environment overrides.
    pub fn load_from(path: &Path, required: bool) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        if required && !path.exists() {
            return Err(ConfigError::Invalid {
                path: shown,
                message: "no such file (named by HWC_AI_CLI_CONFIG)".into(),
            });
        }
        let figment = Figment::new().merge(Toml::file(path)).merge(
            Env::prefixed("HWC_AI_CLI_")
                .ignore(&["CONFIG"])
                .split("__")
                .map(|k| {
                    // HWC_AI_CLI_MCP_BRIDGE__TOKEN_FILE -> mcp-bridge.token_file
                    let k = k.as_str().to_ascii_lowercase();
                    match k.split_once('.') {
                        Some((table, key)) => format!("{}.{key}", table.replace('_', "-")).into(),
                        None => k.into(),
                    }
                }),
        );
        let entries: BTreeMap<String, DaemonEntry> =
            figment.extract().map_err(|e| ConfigError::Invalid {
                path: shown.clone(),
                message: e.to_string(),
            })?;
        let known: Vec<&str> = fleet::ALL.iter().map(|d| d.component).collect();
        if let Some(t) = entries.keys().find(|t| fleet::by_component(t).is_none()) {
            return Err(ConfigError::UnknownTable {
                path: shown,
                table: t.clone(),
                known: known.join(", "),
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// Where `daemon` is and its token (read now).
    pub fn target(&self, daemon: Daemon) -> Result<Target, ConfigError> {
        let entry = self
            .entries
            .get(daemon.component)
            .cloned()
            .unwrap_or(DaemonEntry {
                enabled: true,
                ..DaemonEntry::default()
            });
        let token = match &entry.token_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .map(|t| t.trim().to_string())
                    .map_err(|source| ConfigError::Token {
                        daemon: daemon.name,
                        component: daemon.component,
                        file: f.display().to_string(),
                        path: self.path.display().to_string(),
                        source,
                    })?,
            ),
            None => None,
        };
        Ok(Target {
            daemon,
            url: entry
                .url
                .unwrap_or_else(|| daemon.default_url())
                .trim_end_matches('/')
                .to_string(),
            token,
            enabled: entry.enabled,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tables_defaults_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("t");
        std::fs::write(&token, "secret\n").unwrap();
        let file = dir.path().join("cli.toml");
        std::fs::write(
            &file,
            format!(
                "[router]\nurl = \"http://10.0.0.1:9000/\"\ntoken_file = \"{}\"\n[mcp-bridge]\nenabled = false\n",
                token.display()
            ),
        )
        .unwrap();
        let c = CliConfig::load_from(&file, true).unwrap();
        let r = c.target(fleet::ROUTER).unwrap();
        assert_eq!(r.url, "http://10.0.0.1:9000");
        assert_eq!(r.token.as_deref(), Some("secret"));
        assert!(!c.target(fleet::BRIDGE).unwrap().enabled);
        let m = c.target(fleet::MANAGER).unwrap();
        assert_eq!(
            (m.url.as_str(), m.token, m.enabled),
            ("http://127.0.0.1:8474", None, true)
        );

        std::fs::write(&file, "[routr]\nurl = \"x\"\n").unwrap();
        let e = CliConfig::load_from(&file, true).unwrap_err().to_string();
        assert!(
            e.contains("[routr] is not a daemon") && e.contains("mcp-bridge"),
            "{e}"
        );
        std::fs::write(&file, "[router]\nurll = \"x\"\n").unwrap();
        let e = CliConfig::load_from(&file, true).unwrap_err().to_string();
        assert!(e.contains("urll"), "{e}");
        std::fs::write(&file, "[router]\ntoken_file = \"/nonexistent/t\"\n").unwrap();
        let e = CliConfig::load_from(&file, true)
            .unwrap()
            .target(fleet::ROUTER)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/nonexistent/t") && e.contains("[router] token_file"),
            "{e}"
        );
        let e = CliConfig::load_from(&dir.path().join("none.toml"), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("HWC_AI_CLI_CONFIG"), "{e}");
        assert!(CliConfig::load_from(&dir.path().join("none.toml"), false).is_ok());
    }
}
