//! File models: one file made present at its final path with a known
//! sha256, downloaded over HTTP(S) without ever exposing a half-done file.
//!
//! - The body streams into `.<name>.partial` beside the final file and is
//!   hashed on the way (constant memory: a 1 MiB write buffer, whatever the
//!   file size), then fsynced, checked, renamed over the final path, and the
//!   directory fsynced.
//! - An interrupted download keeps its partial file; the next attempt
//!   re-hashes those bytes and asks for the rest with `Range: bytes=N-`.
//!   A server that answers 200 (ignores ranges), or a 206 for another
//!   offset, or 416, makes it start over. If a resumed file does not match
//!   its hash, the kept bytes may have been bad (a crash can leave zeros at
//!   the end of an unsynced file), so it downloads once more from the start
//!   before reporting a mismatch.
//! - After the checked rename a sidecar `.<name>.sha256` records the hash
//!   and the file's size, mtime and inode, so [`is_present`] answers
//!   without reading gigabytes. A final file without a valid sidecar (put
//!   there by hand) is hashed once by [`ensure`].

use crate::disk::{self, DiskError, Reserve};
use futures_util::StreamExt;
use reqwest::header::{ACCEPT_ENCODING, CONTENT_RANGE, RANGE};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufWriter};

/// A download with no byte for this long is cut (and resumed on retry).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Write and read buffer: large writes, constant memory.
const BUF: usize = 1 << 20;

/// One file of a file model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Where to download it from (http or https).
    pub url: String,
    /// Its sha256, 64 hex digits (lowercase; uppercase is accepted).
    pub sha256: String,
    /// Final location; its directory is created if missing.
    pub path: PathBuf,
}

/// Live progress of one [`ensure`], shared by reference so the daemon can
/// show it in `/status` and metrics while the download runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes of the file present so far (a resumed download starts at the
    /// resumed offset).
    pub done: AtomicU64,
    /// Size of the file; 0 while unknown.
    pub total: AtomicU64,
}

/// What [`ensure`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    /// The file was already there with the right hash; nothing downloaded.
    AlreadyPresent,
    /// The file was downloaded (or finished from its partial file).
    Downloaded {
        /// Bytes received over the network by this call, every request
        /// counted (for the pulled-bytes metric; the file's size is in
        /// [`Progress::total`] or its metadata).
        bytes: u64,
        /// Wall time of the download, hashing and renaming included.
        seconds: f64,
        /// Offset the last request resumed from (0: from the start).
        resumed_from: u64,
    },
}

/// Why a file could not be made present; every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The spec itself is unusable (bad sha256, no file name...).
    #[error("{path}: {reason}")]
    BadSpec {
        /// The final path.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The URL does not parse or is not http(s).
    #[error("url `{url}` cannot be downloaded: {reason}; write a full http:// or https:// URL in file_models")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A local filesystem operation failed.
    #[error("cannot {action} {path}: {source}{}", io_hint(source))]
    Io {
        /// What was being done (`write`, `rename`...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The system error.
        source: io::Error,
    },
    /// The request could not be sent or its answer not read.
    #[error(
        "request to {url} failed: {}; check that the server is reachable (a retry may help)",
        chain(source)
    )]
    Request {
        /// The URL (query and credentials removed).
        url: String,
        /// The HTTP client's error.
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("{url} answered HTTP {status}{}", status_hint(*status))]
    Status {
        /// The URL (query and credentials removed).
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The body stopped before its end; the partial file is kept.
    #[error("download of {url} was cut after {got}{} bytes: {reason}; the partial file is kept and the next attempt resumes from it", of_total(*total))]
    Interrupted {
        /// The URL (query and credentials removed).
        url: String,
        /// Bytes in the partial file now.
        got: u64,
        /// Size announced by the server, if it said.
        total: Option<u64>,
        /// Why it stopped.
        reason: String,
    },
    /// The downloaded bytes do not have the declared sha256.
    #[error("{url} does not have the declared sha256: expected {expected}, got {actual}; the partial file {partial} was deleted. Check the url and sha256 in file_models (the file may have changed upstream), then POST /reconcile")]
    HashMismatch {
        /// The URL (query and credentials removed).
        url: String,
        /// The declared sha256.
        expected: String,
        /// The sha256 of what arrived.
        actual: String,
        /// The deleted temporary file.
        partial: PathBuf,
    },
    /// The disk guard refused, or free space could not be read.
    #[error(transparent)]
    Disk(#[from] DiskError),
}

impl FileError {
    /// Whether a retry cannot help: 4xx answers (but 408 and 429), a hash
    /// mismatch, the disk reserve, a bad URL or spec, a full or read-only
    /// disk. Network errors, 5xx and cut connections are worth a retry.
    pub fn is_permanent(&self) -> bool {
        match self {
            FileError::BadSpec { .. } | FileError::BadUrl { .. } => true,
            FileError::HashMismatch { .. } => true,
            FileError::Disk(e) => e.is_permanent(),
            FileError::Status { status, .. } => {
                (400..500).contains(status) && *status != 408 && *status != 429
            }
            FileError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::PermissionDenied
                    | io::ErrorKind::ReadOnlyFilesystem
                    | io::ErrorKind::StorageFull
            ),
            FileError::Request { .. } | FileError::Interrupted { .. } => false,
        }
    }
}

fn io_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::PermissionDenied => {
            "; give the manager's user write access to that directory"
        }
        io::ErrorKind::ReadOnlyFilesystem => "; put the model on a writable filesystem",
        io::ErrorKind::StorageFull => "; the disk is full: free some space",
        _ => "",
    }
}

fn status_hint(status: u16) -> &'static str {
    match status {
        404 | 410 => ": the file is not there; fix the url in file_models",
        401 | 403 => ": the server refuses access; use a url that needs no credentials",
        408 | 429 => ": the server is busy; a retry may help",
        500..=599 => ": the server is failing; a retry may help",
        400..=499 => ": the server rejects the request; check the url in file_models",
        _ => ": not a download answer; check the url in file_models",
    }
}

fn of_total(total: Option<u64>) -> String {
    total.map(|t| format!(" of {t}")).unwrap_or_default()
}

/// An error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FileError + 'a {
    move |source| FileError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The temporary file a download of `spec` writes to
/// (`<dir>/.<name>.partial`); `None` when the path has no file name.
pub fn partial_path(spec: &FileSpec) -> Option<PathBuf> {
    dotted(&spec.path, ".partial")
}

/// The sidecar that records a verified file (`<dir>/.<name>.sha256`);
/// `None` when the path has no file name.
pub fn sidecar_path(spec: &FileSpec) -> Option<PathBuf> {
    dotted(&spec.path, ".sha256")
}

fn dotted(path: &Path, suffix: &str) -> Option<PathBuf> {
    let name = path.file_name()?;
    let mut n = OsString::from(".");
    n.push(name);
    n.push(suffix);
    Some(path.with_file_name(n))
}

/// What the sidecar records about a verified final file.
#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    format: u32,
    sha256: String,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    ino: u64,
}

impl Sidecar {
    fn of(sha256: &str, meta: &std::fs::Metadata) -> Sidecar {
        Sidecar {
            format: 1,
            sha256: sha256.to_string(),
            size: meta.len(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            ino: meta.ino(),
        }
    }

    /// Whether the sidecar still describes this file (not replaced or
    /// rewritten since it was verified).
    fn describes(&self, meta: &std::fs::Metadata) -> bool {
        self.format == 1
            && self.size == meta.len()
            && self.mtime == meta.mtime()
            && self.mtime_nsec == meta.mtime_nsec()
            && self.ino == meta.ino()
    }

    fn read(path: &Path) -> Option<Sidecar> {
        let text = std::fs::read(path).ok()?;
        serde_json::from_slice(&text).ok()
    }
}

/// Whether the final file is present and verified, without downloading or
/// hashing: the sidecar written after the checked rename must name
/// `spec.sha256` and still match the file's size, mtime and inode.
pub fn is_present(spec: &FileSpec) -> bool {
    let Some(sidecar) = sidecar_path(spec) else {
        return false;
    };
    let Ok(meta) = std::fs::metadata(&spec.path) else {
        return false;
    };
    meta.is_file()
        && Sidecar::read(&sidecar).is_some_and(|s| {
            s.sha256.eq_ignore_ascii_case(spec.sha256.trim()) && s.describes(&meta)
        })
}

/// A spec checked and resolved into the paths a download uses.
struct Job<'a> {
    spec: &'a FileSpec,
    url: reqwest::Url,
    /// The URL for messages and logs: no query, no credentials.
    shown: String,
    expected: String,
    dir: PathBuf,
    partial: PathBuf,
    sidecar: PathBuf,
}

impl<'a> Job<'a> {
    fn new(spec: &'a FileSpec) -> Result<Job<'a>, FileError> {
        let bad = |reason: &str| FileError::BadSpec {
            path: spec.path.clone(),
            reason: reason.to_string(),
        };
        let expected = spec.sha256.trim().to_ascii_lowercase();
        if expected.len() != 64 || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(&format!(
                "sha256 `{}` is not 64 hex digits; write the output of `sha256sum` for the file",
                spec.sha256
            )));
        }
        let (Some(partial), Some(sidecar)) = (partial_path(spec), sidecar_path(spec)) else {
            return Err(bad(
                "the path has no file name; give the full path of the file",
            ));
        };
        let dir = match spec.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let url = reqwest::Url::parse(&spec.url).map_err(|e| FileError::BadUrl {
            url: spec.url.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FileError::BadUrl {
                url: spec.url.clone(),
                reason: format!("scheme `{}` is not http or https", url.scheme()),
            });
        }
        let mut shown = url.clone();
        shown.set_query(None);
        shown.set_fragment(None);
        let _ = shown.set_password(None);
        let _ = shown.set_username("");
        Ok(Job {
            spec,
            shown: shown.to_string(),
            url,
            expected,
            dir,
            partial,
            sidecar,
        })
    }

    fn status(&self, status: StatusCode) -> FileError {
        FileError::Status {
            url: self.shown.clone(),
            status: status.as_u16(),
        }
    }
}

/// Makes `spec.path` hold the file with `spec.sha256`: nothing to do when
/// [`is_present`]; a final file without a sidecar is hashed once and kept
/// if it matches; otherwise the file is downloaded (resuming a partial
/// file), checked against the disk reserve first, hashed on the way, and
/// renamed into place only when its hash matches. `progress` is updated as
/// bytes arrive.
///
/// ```no_run
/// use hwc_model_manager::disk::Reserve;
/// use hwc_model_manager::files::{ensure, Fetched, FileSpec, Progress};
///
/// # async fn demo() -> Result<(), hwc_model_manager::files::FileError> {
/// let spec = FileSpec {
///     url: "https://example.org/models/model.gguf".into(),
///     sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
///     path: "/var/lib/hwc-ai/models/small/model.gguf".into(),
/// };
/// let progress = Progress::default();
/// match ensure(&reqwest::Client::new(), &spec, Reserve::Percent(10.0), &progress).await {
///     Ok(Fetched::AlreadyPresent) => println!("already there"),
///     Ok(Fetched::Downloaded { bytes, seconds, resumed_from }) => {
///         println!("{bytes} bytes in {seconds:.1} s (resumed at {resumed_from})")
///     }
///     Err(e) if e.is_permanent() => eprintln!("fix it first: {e}"),
///     Err(e) => eprintln!("retry later: {e}"),
/// }
/// # Ok(())
/// # }
/// ```
pub async fn ensure(
    client: &reqwest::Client,
    spec: &FileSpec,
    reserve: Reserve,
    progress: &Progress,
) -> Result<Fetched, FileError> {
    let job = Job::new(spec)?;
    let present = |size: u64| {
        progress.total.store(size, Ordering::Relaxed);
        progress.done.store(size, Ordering::Relaxed);
    };
    if is_present(spec) {
        if let Ok(m) = std::fs::metadata(&spec.path) {
            present(m.len());
        }
        return Ok(Fetched::AlreadyPresent);
    }
    match tokio::fs::metadata(&spec.path).await {
        Ok(meta) if meta.is_file() => {
            // A sidecar that still describes the file but names another
            // hash (the declared sha256 changed) spares the hashing.
            let known = Sidecar::read(&job.sidecar)
                .filter(|s| s.describes(&meta))
                .map(|s| s.sha256.to_ascii_lowercase());
            let actual = match known {
                Some(h) => h,
                None => {
                    tracing::info!(path = %spec.path.display(), bytes = meta.len(), "hashing a file found without a valid sidecar");
                    hex::encode(hash_file(&spec.path).await?.0.finalize())
                }
            };
            if actual == job.expected {
                let (path, sidecar, hash) =
                    (spec.path.clone(), job.sidecar.clone(), actual.clone());
                blocking(move || write_sidecar(&path, &sidecar, &hash)).await?;
                tracing::info!(path = %spec.path.display(), "existing file has the declared sha256; kept");
                present(meta.len());
                return Ok(Fetched::AlreadyPresent);
            }
            tracing::warn!(path = %spec.path.display(), expected = %job.expected, actual = %actual, "existing file has another sha256; downloading the declared one to replace it");
        }
        Ok(_) => {
            return Err(FileError::BadSpec {
                path: spec.path.clone(),
                reason: "exists and is not a regular file; remove it or choose another name".into(),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("inspect", &spec.path)(e)),
    }
    download(client, &job, reserve, progress).await
}

/// Where a download stands between requests.
struct State {
    /// Running hash of the bytes `have` covers.
    hasher: Sha256,
    /// Bytes of the partial file the next request continues from.
    have: u64,
    /// Length of the partial file on disk (what truncating would free).
    on_disk: u64,
}

impl State {
    fn fresh(&mut self) {
        self.hasher = Sha256::new();
        self.have = 0;
    }
}

async fn download(
    client: &reqwest::Client,
    job: &Job<'_>,
    reserve: Reserve,
    progress: &Progress,
) -> Result<Fetched, FileError> {
    let started = Instant::now();
    let mut st = match tokio::fs::metadata(&job.partial).await {
        Ok(m) if m.len() > 0 => {
            let (hasher, have) = hash_file(&job.partial).await?;
            State {
                hasher,
                have,
                on_disk: have,
            }
        }
        Ok(_) => State {
            hasher: Sha256::new(),
            have: 0,
            on_disk: 0,
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => State {
            hasher: Sha256::new(),
            have: 0,
            on_disk: 0,
        },
        Err(e) => return Err(io_err("inspect", &job.partial)(e)),
    };
    // A resumed file that fails its hash is downloaded once more whole.
    let mut may_redo = true;
    let mut received = 0u64;
    loop {
        let mut req = client
            .get(job.url.clone())
            .header(ACCEPT_ENCODING, "identity");
        if st.have > 0 {
            req = req.header(RANGE, format!("bytes={}-", st.have));
        }
        let resp = req.send().await.map_err(|e| FileError::Request {
            url: job.shown.clone(),
            source: e.without_url(),
        })?;
        let status = resp.status();
        let (start, total) = match status {
            StatusCode::PARTIAL_CONTENT if st.have > 0 => match content_range(&resp) {
                Some((Some(first), total)) if first == st.have => {
                    (first, total.or(resp.content_length().map(|l| first + l)))
                }
                other => {
                    tracing::warn!(url = %job.shown, asked = st.have, answered = ?other, "server answered another range; starting over");
                    st.fresh();
                    continue;
                }
            },
            StatusCode::OK => {
                if st.have > 0 {
                    tracing::info!(url = %job.shown, had = st.have, "server ignored the range request; starting over");
                }
                st.fresh();
                (0, resp.content_length())
            }
            StatusCode::RANGE_NOT_SATISFIABLE if st.have > 0 => {
                let total = content_range(&resp).and_then(|(_, t)| t);
                if total == Some(st.have)
                    && hex::encode(st.hasher.clone().finalize()) == job.expected
                {
                    tracing::info!(path = %job.partial.display(), bytes = st.have, "partial file is already complete");
                    progress.total.store(st.have, Ordering::Relaxed);
                    progress.done.store(st.have, Ordering::Relaxed);
                    finish(job).await?;
                    return Ok(Fetched::Downloaded {
                        bytes: received,
                        seconds: started.elapsed().as_secs_f64(),
                        resumed_from: st.have,
                    });
                }
                tracing::warn!(url = %job.shown, had = st.have, total = ?total, "server refused the range (416); starting over");
                st.fresh();
                continue;
            }
            s => return Err(job.status(s)),
        };

        // The disk guard, before a byte is written.
        let needed = match total {
            Some(t) => t.saturating_sub(st.on_disk),
            None => {
                tracing::warn!(url = %job.shown, "server gives no size; the disk guard can only check the reserve");
                0
            }
        };
        disk::check(&job.dir, needed, reserve)?;

        tokio::fs::create_dir_all(&job.dir)
            .await
            .map_err(io_err("create directory", &job.dir))?;
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&job.partial)
            .await
            .map_err(io_err("open", &job.partial))?;
        file.set_len(start)
            .await
            .map_err(io_err("truncate", &job.partial))?;
        file.seek(io::SeekFrom::Start(start))
            .await
            .map_err(io_err("seek in", &job.partial))?;
        st.on_disk = start;
        progress.total.store(total.unwrap_or(0), Ordering::Relaxed);
        progress.done.store(start, Ordering::Relaxed);
        if start > 0 {
            tracing::info!(url = %job.shown, path = %job.spec.path.display(), from = start, total = ?total, "resuming download");
        } else {
            tracing::info!(url = %job.shown, path = %job.spec.path.display(), total = ?total, "starting download");
        }

        let mut out = BufWriter::with_capacity(BUF, file);
        let mut got = start;
        let mut body = resp.bytes_stream();
        let cut = loop {
            match tokio::time::timeout(IDLE_TIMEOUT, body.next()).await {
                Err(_) => break Some(format!("no data for {} s", IDLE_TIMEOUT.as_secs())),
                Ok(None) => break None,
                Ok(Some(Err(e))) => break Some(chain(&e.without_url())),
                Ok(Some(Ok(chunk))) => {
                    st.hasher.update(&chunk);
                    out.write_all(&chunk)
                        .await
                        .map_err(io_err("write", &job.partial))?;
                    let n = chunk.len() as u64;
                    got += n;
                    received += n;
                    progress.done.fetch_add(n, Ordering::Relaxed);
                }
            }
        };
        out.flush().await.map_err(io_err("write", &job.partial))?;
        let file = out.into_inner();
        st.have = got;
        st.on_disk = got;
        let short = total.filter(|t| got < *t);
        if let Some(reason) = cut.or(short.map(|_| "the connection closed early".to_string())) {
            return Err(FileError::Interrupted {
                url: job.shown.clone(),
                got,
                total,
                reason,
            });
        }
        drop(file);

        let actual = hex::encode(std::mem::take(&mut st.hasher).finalize());
        if actual != job.expected {
            match tokio::fs::remove_file(&job.partial).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("delete", &job.partial)(e)),
            }
            st.fresh();
            st.on_disk = 0;
            if start > 0 && may_redo {
                may_redo = false;
                tracing::warn!(url = %job.shown, resumed_from = start, expected = %job.expected, actual = %actual, "resumed file does not match its sha256 (the kept bytes may have been bad); downloading again from the start");
                continue;
            }
            return Err(FileError::HashMismatch {
                url: job.shown.clone(),
                expected: job.expected.clone(),
                actual,
                partial: job.partial.clone(),
            });
        }
        finish(job).await?;
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            url = %job.shown,
            path = %job.spec.path.display(),
            bytes = received,
            size = got,
            resumed_from = start,
            seconds,
            mb_per_s = received as f64 / 1e6 / seconds.max(1e-9),
            "download done"
        );
        return Ok(Fetched::Downloaded {
            bytes: received,
            seconds,
            resumed_from: start,
        });
    }
}

/// `Content-Range: bytes FIRST-LAST/TOTAL` (or `bytes */TOTAL` on a 416)
/// as (FIRST, TOTAL); TOTAL is `None` when the server writes `*`.
fn content_range(resp: &reqwest::Response) -> Option<(Option<u64>, Option<u64>)> {
    let v = resp.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = total.trim().parse().ok();
    let first = range
        .split_once('-')
        .and_then(|(first, _)| first.trim().parse().ok());
    Some((first, total))
}

/// Fsyncs the checked partial file, renames it into place, fsyncs the
/// directory and writes the sidecar.
async fn finish(job: &Job<'_>) -> Result<(), FileError> {
    let (partial, path, dir, sidecar, hash) = (
        job.partial.clone(),
        job.spec.path.clone(),
        job.dir.clone(),
        job.sidecar.clone(),
        job.expected.clone(),
    );
    blocking(move || {
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(io_err("fsync", &partial))?;
        std::fs::rename(&partial, &path).map_err(io_err("rename into place", &partial))?;
        sync_dir(&dir)?;
        write_sidecar(&path, &sidecar, &hash)
    })
    .await
}

/// Records that `path` (as it is now) has `sha256`: written to a
/// temporary name, fsynced, renamed, directory fsynced.
fn write_sidecar(path: &Path, sidecar: &Path, sha256: &str) -> Result<(), FileError> {
    let meta = std::fs::metadata(path).map_err(io_err("inspect", path))?;
    let mut text = serde_json::to_vec(&Sidecar::of(sha256, &meta)).map_err(|e| FileError::Io {
        action: "encode the sidecar for",
        path: path.to_path_buf(),
        source: io::Error::other(e),
    })?;
    text.push(b'\n');
    let mut tmp = sidecar.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
    f.write_all(&text).map_err(io_err("write", &tmp))?;
    f.sync_all().map_err(io_err("fsync", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, sidecar).map_err(io_err("rename into place", &tmp))?;
    sync_dir(sidecar.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> Result<(), FileError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

/// The sha256 state after all of `path`'s bytes, and how many there were.
async fn hash_file(path: &Path) -> Result<(Sha256, u64), FileError> {
    let path = path.to_path_buf();
    blocking(move || {
        let mut f = std::fs::File::open(&path).map_err(io_err("open", &path))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; BUF];
        let mut len = 0u64;
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("read", &path)(e)),
            };
            hasher.update(&buf[..n]);
            len += n as u64;
        }
        Ok((hasher, len))
    })
    .await
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FileError> + Send + 'static,
) -> Result<T, FileError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| FileError::Io {
            action: "finish file work in",
            path: PathBuf::from("a blocking task"),
            source: io::Error::other(e),
        })?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec(path: &str, sha: &str, url: &str) -> FileSpec {
        FileSpec {
            url: url.into(),
            sha256: sha.into(),
            path: path.into(),
        }
    }

    #[test]
    fn temp_and_sidecar_names_sit_beside_the_file() {
        let s = spec("/m/x/model.gguf", "", "http://h/model.gguf");
        assert_eq!(
            partial_path(&s).unwrap(),
            Path::new("/m/x/.model.gguf.partial")
        );
        assert_eq!(
            sidecar_path(&s).unwrap(),
            Path::new("/m/x/.model.gguf.sha256")
        );
        assert!(partial_path(&spec("/", "", "")).is_none());
    }

    #[test]
    fn bad_specs_are_permanent_and_say_why() {
        let h = "a".repeat(64);
        let e = Job::new(&spec("/m/a", "abc", "http://h/a")).err().unwrap();
        assert!(e.is_permanent() && e.to_string().contains("64 hex"), "{e}");
        let e = Job::new(&spec("/m/a", &h, "ftp://h/a")).err().unwrap();
        assert!(e.is_permanent() && e.to_string().contains("ftp"), "{e}");
        let e = Job::new(&spec("/m/a", &h, "not a url")).err().unwrap();
        assert!(e.is_permanent(), "{e}");
        let s = spec("/m/a", &h.to_uppercase(), "https://u:p@h/a?sig=s#f");
        let j = Job::new(&s).unwrap();
        assert_eq!(j.expected, h);
        assert_eq!(j.shown, "https://h/a");
    }

    #[test]
    fn statuses_sort_into_permanent_and_transient() {
        let st = |status| FileError::Status {
            url: "u".into(),
            status,
        };
        for s in [400, 401, 403, 404, 410] {
            assert!(st(s).is_permanent(), "{s}");
        }
        for s in [408, 429, 500, 502, 503] {
            assert!(!st(s).is_permanent(), "{s}");
        }
        assert!(st(404).to_string().contains("fix the url"));
        let io = |kind| FileError::Io {
            action: "write",
            path: "/x".into(),
            source: io::Error::from(kind),
        };
        assert!(io(io::ErrorKind::StorageFull).is_permanent());
        assert!(!io(io::ErrorKind::Interrupted).is_permanent());
    }

    #[test]
    fn is_present_needs_a_sidecar_that_still_describes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.bin");
        std::fs::write(&path, b"hello").unwrap();
        let sha = hex::encode(Sha256::digest(b"hello"));
        let s = FileSpec {
            url: "http://h/m.bin".into(),
            sha256: sha.clone(),
            path: path.clone(),
        };
        assert!(!is_present(&s), "no sidecar");
        write_sidecar(&path, &sidecar_path(&s).unwrap(), &sha).unwrap();
        assert!(is_present(&s));
        let other = FileSpec {
            sha256: "0".repeat(64),
            ..s.clone()
        };
        assert!(!is_present(&other), "sidecar names another hash");
        // Replaced by another file (new inode): no longer present.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"hellx").unwrap();
        assert!(!is_present(&s));
    }
}
