//! What the manager is told to keep on the host: `[ollama]`, `[manager]`,
//! `[[ollama_models]]`, `[[file_models]]`; plus `[server]`, `[auth]` and
//! `[telemetry]` like every daemon. docs/model-manager.md documents
//! every key; examples/model-manager.toml is a full example.

use crate::disk::Reserve;
use hwc_ai_core::config::Validate;
use hwc_ai_core::server::ServerConfig;
use hwc_ai_core::telemetry::TelemetryConfig;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

/// Default port of the manager.
pub const DEFAULT_PORT: u16 = 8474;

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManagerConfig {
    /// Listener and limits shared by every daemon.
    pub server: ServerConfig,
    /// Who may call `POST /reconcile`.
    pub auth: AuthConfig,
    /// The Ollama server.
    pub ollama: OllamaConfig,
    /// Reconcile behaviour.
    pub manager: ManagerSettings,
    /// Declared Ollama models.
    pub ollama_models: Vec<OllamaModel>,
    /// Declared file models (llama.cpp, vLLM).
    pub file_models: Vec<FileModel>,
    /// Trace export and sampling, shared by every daemon.
    pub telemetry: TelemetryConfig,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig::on_port(DEFAULT_PORT),
            auth: AuthConfig::default(),
            ollama: OllamaConfig::default(),
            manager: ManagerSettings::default(),
            ollama_models: Vec::new(),
            file_models: Vec::new(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

/// `[auth]`: bearer tokens for `POST /reconcile` and `/status`; none
/// configured leaves them open (the listener is loopback).
pub use hwc_ai_core::auth::AuthConfig;

/// `[ollama]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OllamaConfig {
    /// Base URL.
    pub url: String,
    /// Where Ollama keeps its models, for the disk guard.
    pub models_dir: PathBuf,
    /// Deadline of a verify generation.
    #[serde(with = "humantime_serde")]
    pub verify_timeout: Duration,
}

impl Default for OllamaConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:11434".into(),
            models_dir: PathBuf::from("/var/lib/ollama"),
            verify_timeout: Duration::from_secs(120),
        }
    }
}

/// `[manager]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManagerSettings {
    /// Remove Ollama models that are not declared (exact names only).
    pub prune: bool,
    /// Space that must stay free on a model's filesystem: bytes or `"N%"`.
    pub reserve: Reserve,
    /// Pulls and downloads at once.
    pub concurrency: usize,
    /// How often models with `update = "schedule"` are pulled again.
    #[serde(with = "humantime_serde")]
    pub update_interval: Duration,
    /// Attempts for a transient failure within one reconcile.
    pub attempts: u32,
    /// First retry delay; doubles with jitter.
    #[serde(with = "humantime_serde")]
    pub retry_base: Duration,
}

impl Default for ManagerSettings {
    fn default() -> Self {
        Self {
            prune: false,
            reserve: Reserve::Percent(10.0),
            concurrency: 2,
            update_interval: Duration::from_secs(24 * 3600),
            attempts: 3,
            retry_base: Duration::from_secs(2),
        }
    }
}

/// When a present model is pulled again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Update {
    /// Only when missing.
    #[default]
    Never,
    /// Every `manager.update_interval`.
    Schedule,
}

/// One `[[ollama_models]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OllamaModel {
    /// `name:tag` (`gpt-oss:20b`); no tag means `latest`.
    pub name: String,
    /// Pinned manifest digest (`sha256:<64 hex>` or the 64 hex digits).
    #[serde(default)]
    pub digest: Option<String>,
    /// A one-token generation must succeed after the pull.
    #[serde(default)]
    pub verify: bool,
    /// Update policy.
    #[serde(default)]
    pub update: Update,
    /// Keep it loaded (`keep_alive = -1`).
    #[serde(default)]
    pub keep_loaded: bool,
    /// Expected size in bytes, for the disk guard before the pull starts.
    #[serde(default)]
    pub size: Option<u64>,
}

impl OllamaModel {
    /// The name as Ollama lists it (`:latest` added when no tag).
    pub fn canonical(&self) -> String {
        canonical(&self.name)
    }

    /// The pinned digest's 64 hex digits.
    pub fn pinned(&self) -> Option<String> {
        self.digest
            .as_deref()
            .map(|d| d.trim_start_matches("sha256:").to_ascii_lowercase())
    }
}

/// An Ollama model name with its tag (`llama3` -> `llama3:latest`).
pub fn canonical(name: &str) -> String {
    if name.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// One `[[file_models]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileModel {
    /// Name in `/status` and metrics.
    pub name: String,
    /// Target directory.
    pub dir: PathBuf,
    /// The files.
    pub files: Vec<FileEntry>,
    /// An OpenAI-compatible runtime serving this model, to verify it with a
    /// one-token generation after the download (`http://127.0.0.1:8080/v1`).
    #[serde(default)]
    pub verify_url: Option<String>,
}

/// One file of a file model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Where to download it from.
    pub url: String,
    /// Its sha256 (64 hex digits).
    #[serde(default)]
    pub sha256: Option<String>,
    /// File name in `dir`; defaults to the URL's last path segment.
    #[serde(default)]
    pub name: Option<String>,
}

impl FileEntry {
    /// The file name in the model's directory.
    pub fn file_name(&self) -> Option<String> {
        self.name.clone().or_else(|| {
            reqwest::Url::parse(&self.url)
                .ok()?
                .path_segments()?
                .next_back()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        })
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Validate for ManagerConfig {
    fn validate(&self) -> Result<(), Vec<String>> {
        let mut p = self.server.problems();
        p.extend(self.telemetry.problems());
        if reqwest::Url::parse(&self.ollama.url).is_err() {
            p.push(format!("ollama.url `{}` does not parse; write a full URL such as \"http://127.0.0.1:11434\"", self.ollama.url));
        }
        if self.manager.concurrency == 0 || self.manager.attempts == 0 {
            p.push("manager.concurrency and manager.attempts must be at least 1".into());
        }
        let mut names = HashSet::new();
        for m in &self.ollama_models {
            if !names.insert(m.canonical()) {
                p.push(format!(
                    "ollama model `{}` is declared twice; keep one entry",
                    m.name
                ));
            }
            if m.name.trim().is_empty() || m.name.contains(char::is_whitespace) {
                p.push(format!("ollama model name `{}` is not a name:tag", m.name));
            }
            if let Some(d) = m.pinned() {
                if !is_hex64(&d) {
                    p.push(format!(
                        "ollama model `{}`: digest `{}` is not sha256:<64 hex digits>; copy the full digest from `curl -s localhost:11434/api/tags`",
                        m.name,
                        m.digest.as_deref().unwrap_or("")
                    ));
                }
            }
        }
        let mut file_names = HashSet::new();
        let mut paths = HashSet::new();
        for f in &self.file_models {
            if !file_names.insert(f.name.as_str()) {
                p.push(format!(
                    "file model `{}` is declared twice; keep one entry",
                    f.name
                ));
            }
            if f.files.is_empty() {
                p.push(format!("file model `{}` lists no files", f.name));
            }
            for (i, e) in f.files.iter().enumerate() {
                let at = format!("file model `{}` files[{i}]", f.name);
                if reqwest::Url::parse(&e.url).is_err() {
                    p.push(format!("{at}: url `{}` does not parse", e.url));
                }
                match &e.sha256 {
                    None => p.push(format!("{at}: url `{}` has no sha256; add sha256 = \"<64 hex digits>\" (sha256sum of the file) so a corrupt or swapped download is caught", e.url)),
                    Some(h) if !is_hex64(h) => p.push(format!("{at}: sha256 `{h}` is not 64 hex digits")),
                    Some(_) => {}
                }
                if let Some(n) = e.file_name() {
                    if !paths.insert(f.dir.join(&n)) {
                        p.push(format!("{at}: {} is also the target of another file; each file needs its own path", f.dir.join(&n).display()));
                    }
                }
                match e.file_name() {
                    Some(n) if n.contains('/') || n.starts_with('.') => {
                        p.push(format!("{at}: name `{n}` must be a plain file name"))
                    }
                    Some(_) => {}
                    None => p.push(format!(
                        "{at}: no file name in url `{}`; set name = \"...\"",
                        e.url
                    )),
                }
            }
            if let Some(u) = &f.verify_url {
                if reqwest::Url::parse(u).is_err() {
                    p.push(format!(
                        "file model `{}`: verify_url `{u}` does not parse",
                        f.name
                    ));
                }
            }
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(p)
        }
    }
}
