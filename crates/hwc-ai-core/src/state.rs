//! Where a daemon keeps its state: `$STATE_DIRECTORY` under systemd
//! (`StateDirectory=`). With several entries systemd passes a colon list;
//! the first is the daemon's own.

use std::path::{Path, PathBuf};

/// The daemon's state directory, when systemd gave one.
pub fn directory() -> Option<PathBuf> {
    let dirs = std::env::var_os("STATE_DIRECTORY")?;
    let first = dirs.to_string_lossy().split(':').next()?.to_string();
    (!first.is_empty()).then(|| PathBuf::from(first))
}

/// `path` inside the state directory when it is relative and there is one;
/// as given otherwise.
pub fn resolve(path: &Path) -> PathBuf {
    match directory() {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}
