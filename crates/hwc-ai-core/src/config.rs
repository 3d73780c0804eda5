//! Layered daemon configuration: built-in defaults < TOML file < `HWC_AI_*`
//! environment, merged with figment.
//!
//! Config structs are expected to use `#[serde(deny_unknown_fields)]`: a typo
//! in `/etc/hwc-ai/router.toml` must stop the daemon with the key and the file
//! named, not silently fall back to a default. Environment overrides use `__`
//! between levels: `HWC_AI_SERVER__LISTEN=127.0.0.1:9000` sets
//! `server.listen`.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Prefix of environment overrides common to every daemon.
pub const ENV_PREFIX: &str = "HWC_AI_";

/// Why a configuration could not be loaded; the text is meant for an operator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--config` named a file that is not there.
    #[error("config file {0} does not exist; pass an existing file to --config or leave it out to use built-in defaults")]
    Missing(PathBuf),
    /// The file is not valid TOML, a key is unknown, or a value has the wrong type.
    #[error("{}", describe(.0))]
    Parse(Box<figment::Error>),
    /// The values parse but do not make sense together.
    #[error("invalid configuration{}: {message}", source_suffix(.file))]
    Invalid {
        /// The file the values came from, if any.
        file: Option<PathBuf>,
        /// What is wrong and what to change.
        message: String,
    },
}

fn source_suffix(file: &Option<PathBuf>) -> String {
    file.as_ref()
        .map(|f| format!(" in {}", f.display()))
        .unwrap_or_default()
}

fn describe(err: &figment::Error) -> String {
    let lines: Vec<String> = err
        .clone()
        .into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                String::new()
            } else {
                format!(" at key `{}`", e.path.join("."))
            };
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(src) => format!(" (from {src})"),
                    None => format!(" (from {})", m.name),
                })
                .unwrap_or_default();
            format!("invalid configuration{key}{source}: {}", e.kind)
        })
        .collect();
    lines.join("\n")
}

/// Values that can check themselves after parsing, for rules serde can't
/// express (duplicate names, references between sections, ranges).
pub trait Validate {
    /// Every problem found, each saying what to change.
    fn validate(&self) -> Result<(), Vec<String>>;
}

/// Loads `T` from its defaults, then `file`, then the process environment.
pub fn load<T>(file: Option<&Path>) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default + Validate,
{
    load_from(figment::<T>(file)?, file)
}

/// The merged figment before extraction, so tests (or daemons with extra
/// layers) can add providers on top.
pub fn figment<T: Serialize + Default>(file: Option<&Path>) -> Result<Figment, ConfigError> {
    let mut fig = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::Missing(path.to_path_buf()));
        }
        fig = fig.merge(Toml::file(path));
    }
    Ok(fig.merge(Env::prefixed(ENV_PREFIX).split("__")))
}

/// `T` from its defaults and a TOML text, validated; no file and no
/// environment layer. For configs built in code (tests, generated text).
pub fn load_str<T>(text: &str) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default + Validate,
{
    load_from(
        Figment::from(Serialized::defaults(T::default())).merge(Toml::string(text)),
        None,
    )
}

/// Extracts and validates `T` from an already-built figment.
pub fn load_from<T>(fig: Figment, file: Option<&Path>) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Validate,
{
    let value: T = fig.extract().map_err(|e| ConfigError::Parse(Box::new(e)))?;
    value.validate().map_err(|problems| ConfigError::Invalid {
        file: file.map(Path::to_path_buf),
        message: problems.join("; "),
    })?;
    Ok(value)
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's own error type
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Sample {
        name: String,
        inner: Inner,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Inner {
        port: u16,
    }

    impl Default for Inner {
        fn default() -> Self {
            Self { port: 1 }
        }
    }

    impl Validate for Sample {
        fn validate(&self) -> Result<(), Vec<String>> {
            if self.inner.port == 0 {
                return Err(vec!["inner.port must not be 0; pick a free port".into()]);
            }
            Ok(())
        }
    }

    #[test]
    fn layers_defaults_file_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "name = \"file\"\n[inner]\nport = 5\n")?;
            let s: Sample = load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(
                s,
                Sample {
                    name: "file".into(),
                    inner: Inner { port: 5 }
                }
            );
            jail.set_env("HWC_AI_INNER__PORT", "7");
            let s: Sample = load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(s.inner.port, 7);
            let s: Sample = load(None).map_err(|e| e.to_string())?;
            assert_eq!(s.name, "");
            Ok(())
        });
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[inner]\nprot = 5\n")?;
            let err = load::<Sample>(Some(Path::new("c.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("prot"), "{err}");
            assert!(err.contains("c.toml"), "{err}");
            assert!(err.contains("inner"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn missing_file_and_validation_errors_are_clear() {
        figment::Jail::expect_with(|jail| {
            let err = load::<Sample>(Some(Path::new("nope.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("nope.toml does not exist"), "{err}");
            jail.create_file("z.toml", "[inner]\nport = 0\n")?;
            let err = load::<Sample>(Some(Path::new("z.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("inner.port must not be 0"), "{err}");
            assert!(err.contains("z.toml"), "{err}");
            Ok(())
        });
    }
}
