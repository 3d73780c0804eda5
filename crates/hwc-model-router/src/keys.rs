//! API keys: who may call the router, with which privacy, models, rate and
//! daily token budget. Loaded from a TOML file (a systemd credential).
//!
//! ```toml
//! [[keys]]
//! name = "ops-agent"
//! secret_sha256 = "9f86d0…"      # or: secret = "sk-…"
//! privacy = "local-only"
//! models = ["default", "auto"]    # absent: every model
//! requests_per_minute = 120
//! daily_token_budget = 2000000
//! ```

use crate::config::{AuthConfig, Privacy};
use hwc_ai_core::auth::{KeyTable, TokenDigest};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

/// The identity and limits a request runs under.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    /// Name used in usage records, metrics and logs (never the secret).
    pub name: String,
    /// Privacy every request of this key gets.
    pub privacy: Privacy,
    /// Models and aliases the key may use; `None` means all.
    pub models: Option<HashSet<String>>,
    /// Requests per minute; `None` means unlimited.
    pub requests_per_minute: Option<u32>,
    /// Prompt plus completion tokens per UTC day; `None` means unlimited.
    pub daily_token_budget: Option<u64>,
}

impl ApiKey {
    /// Whether this key may use the public model name `model`.
    pub fn may_use(&self, model: &str) -> bool {
        self.models.as_ref().is_none_or(|m| m.contains(model))
    }

    /// The principal of anonymous requests.
    pub fn anonymous(privacy: Privacy) -> Self {
        Self {
            name: "anonymous".into(),
            privacy,
            models: None,
            requests_per_minute: None,
            daily_token_budget: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    secret: Option<String>,
    secret_sha256: Option<String>,
    #[serde(default)]
    privacy: Privacy,
    models: Option<Vec<String>>,
    requests_per_minute: Option<u32>,
    daily_token_budget: Option<u64>,
}

/// Why the keys file can't be used; says which entry and what to change.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// Unreadable file.
    #[error(transparent)]
    Read(#[from] hwc_ai_core::secret::SecretError),
    /// Not TOML, or unknown fields.
    #[error("keys file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's words.
        message: String,
    },
    /// An entry is inconsistent.
    #[error("keys file {path}: key `{name}`: {message}")]
    Entry {
        /// The file.
        path: String,
        /// The entry's name.
        name: String,
        /// What to change.
        message: String,
    },
}

/// The table of keys the auth layer looks requests up in.
pub type Keys = KeyTable<Arc<ApiKey>>;

/// Builds the key table from `[auth]`: the keys file if set, plus the
/// anonymous principal if allowed.
pub fn load(auth: &AuthConfig) -> Result<Keys, KeysError> {
    let mut table = match &auth.keys_file {
        Some(path) => load_file(path)?,
        None => KeyTable::new(),
    };
    if auth.allow_anonymous {
        table.allow_anonymous(Arc::new(ApiKey::anonymous(auth.anonymous_privacy)));
    }
    Ok(table)
}

/// Parses a keys file.
pub fn load_file(path: &Path) -> Result<Keys, KeysError> {
    let text = hwc_ai_core::secret::read_file(path)?;
    parse(&text, &path.display().to_string())
}

/// Parses the text of a keys file; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Keys, KeysError> {
    let file: KeysFile = toml_parse(text).map_err(|message| KeysError::Parse {
        path: origin.into(),
        message,
    })?;
    let mut table = KeyTable::new();
    let mut names = HashSet::new();
    for e in file.keys {
        let entry_err = |message: &str| KeysError::Entry {
            path: origin.into(),
            name: e.name.clone(),
            message: message.into(),
        };
        if !names.insert(e.name.clone()) {
            return Err(entry_err("the name is used twice; names must be unique"));
        }
        let digest = match (&e.secret, &e.secret_sha256) {
            (Some(s), None) if !s.is_empty() => TokenDigest::of(s),
            (None, Some(h)) => TokenDigest::from_hex(h).ok_or_else(|| {
                entry_err("secret_sha256 is not 64 hex digits; write `printf %s KEY | sha256sum`")
            })?,
            (Some(_), Some(_)) => return Err(entry_err("set secret or secret_sha256, not both")),
            _ => return Err(entry_err("set secret or secret_sha256")),
        };
        let key = ApiKey {
            name: e.name.clone(),
            privacy: e.privacy,
            models: e.models.map(|m| m.into_iter().collect()),
            requests_per_minute: e.requests_per_minute,
            daily_token_budget: e.daily_token_budget,
        };
        if key.requests_per_minute == Some(0) {
            return Err(entry_err(
                "requests_per_minute is 0; remove it for no limit",
            ));
        }
        if !table.insert(digest, Arc::new(key)) {
            return Err(entry_err(
                "its secret is the same as another key's; every key needs its own secret",
            ));
        }
    }
    Ok(table)
}

fn toml_parse(text: &str) -> Result<KeysFile, String> {
    use figment::providers::{Format, Toml};
    figment::Figment::from(Toml::string(text))
        .extract()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_secret_forms_and_limits() {
        let t = parse(
            r#"
            [[keys]]
            name = "a"
            secret = "sk-a"
            privacy = "local-only"
            models = ["default"]
            requests_per_minute = 5
            [[keys]]
            name = "b"
            secret_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            "#,
            "k.toml",
        )
        .unwrap();
        let a = t.lookup("sk-a").unwrap();
        assert_eq!(a.privacy, Privacy::LocalOnly);
        assert!(a.may_use("default") && !a.may_use("auto"));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn errors_name_the_entry() {
        let err = parse("[[keys]]\nname = \"x\"\n", "k.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("key `x`") && err.contains("set secret"),
            "{err}"
        );
        let err = parse(
            "[[keys]]\nname = \"x\"\nsecret = \"s\"\n[[keys]]\nname = \"x\"\nsecret = \"t\"\n",
            "k.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("used twice"), "{err}");
        let err = parse("[[keys]]\nname = \"x\"\nsecrt = \"s\"\n", "k.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("secrt"), "{err}");
    }
}
