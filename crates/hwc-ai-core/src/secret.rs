//! Secrets read from files, never from the TOML itself.
//!
//! systemd's `LoadCredential=name:/path` places the file under
//! `$CREDENTIALS_DIRECTORY`, readable only by the service; a `*_file` key with
//! a relative path resolves there, so NixOS modules only pass credential
//! names.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a secret file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot read secret file {path}: {reason}")]
pub struct SecretError {
    /// The path after resolution against `$CREDENTIALS_DIRECTORY`.
    pub path: PathBuf,
    /// What went wrong, for the operator.
    pub reason: String,
}

/// A secret value whose `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value already in memory (tests, generated tokens).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where a `*_file` path points: absolute as given, relative under
/// `$CREDENTIALS_DIRECTORY` when systemd set it, else relative to the cwd.
pub fn resolve(path: &Path) -> PathBuf {
    resolve_with(
        path,
        std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
    )
}

/// [`resolve`] with the credentials directory passed in, for tests.
pub fn resolve_with(path: &Path, credentials_dir: Option<PathBuf>) -> PathBuf {
    match credentials_dir {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

/// Reads a whole secret file (trailing newline trimmed, as editors add one).
pub fn read_file(path: &Path) -> Result<String, SecretError> {
    let path = resolve(path);
    let text = std::fs::read_to_string(&path).map_err(|e| SecretError {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

/// Reads a one-line secret (a token or key) and refuses an empty one.
pub fn read_secret(path: &Path) -> Result<Secret, SecretError> {
    let text = read_file(path)?;
    let value = text.trim();
    if value.is_empty() {
        return Err(SecretError {
            path: resolve(path),
            reason: "the file is empty; write the secret into it".into(),
        });
    }
    Ok(Secret(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_under_credentials_directory() {
        let dir = PathBuf::from("/run/credentials/x.service");
        assert_eq!(
            resolve_with(Path::new("token"), Some(dir.clone())),
            dir.join("token")
        );
        assert_eq!(
            resolve_with(Path::new("/etc/token"), Some(dir)),
            PathBuf::from("/etc/token")
        );
        assert_eq!(
            resolve_with(Path::new("token"), None),
            PathBuf::from("token")
        );
    }

    #[test]
    fn reads_trims_and_redacts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "sk-abc\n").unwrap();
        let s = read_secret(&p).unwrap();
        assert_eq!(s.expose(), "sk-abc");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        std::fs::write(&p, "\n").unwrap();
        assert!(read_secret(&p).unwrap_err().to_string().contains("empty"));
        let err = read_secret(&dir.path().join("none"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read secret file"), "{err}");
    }
}
