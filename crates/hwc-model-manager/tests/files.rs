//! File-model downloads against a real local HTTP server (axum +
//! tower-http's `ServeDir`, which answers range requests), and once the
//! whole path real: the SmolLM2 GGUF downloaded, hash-checked and loaded by
//! a real llama-server.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use hwc_model_manager::disk::{self, Reserve};
use hwc_model_manager::files::{
    ensure, is_present, partial_path, sidecar_path, Fetched, FileError, FileSpec, Progress,
};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower_http::services::ServeDir;

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    range: Option<String>,
}

#[derive(Default)]
struct Shared {
    root: PathBuf,
    seen: Mutex<Vec<Seen>>,
    /// Serve the first request for this path cut after so many bytes.
    cut: Option<(String, usize)>,
    cut_done: AtomicBool,
    /// Drop `Range` headers, like a server without range support.
    ignore_range: bool,
}

struct Server {
    base: String,
    shared: Arc<Shared>,
}

impl Server {
    fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

async fn front(State(s): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let range = req
        .headers()
        .get(header::RANGE)
        .map(|v| v.to_str().unwrap().to_string());
    s.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        range,
    });
    if path == "/busy.bin" {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if let Some((cut_path, n)) = &s.cut {
        if *cut_path == path && !s.cut_done.swap(true, Ordering::SeqCst) {
            // Announce the whole file, send `n` bytes, then fail the body:
            // hyper drops the connection mid-body.
            let data = std::fs::read(s.root.join(path.trim_start_matches('/'))).unwrap();
            let len = data.len();
            let head = Bytes::from(data).slice(..*n);
            let body = async_stream::stream! {
                yield Ok::<Bytes, std::io::Error>(head);
                tokio::time::sleep(Duration::from_millis(200)).await;
                yield Err(std::io::Error::other("cut by the test"));
            };
            return Response::builder()
                .header(header::CONTENT_LENGTH, len)
                .body(Body::from_stream(body))
                .unwrap();
        }
    }
    if s.ignore_range {
        req.headers_mut().remove(header::RANGE);
    }
    next.run(req).await
}

async fn serve(shared: Shared) -> Server {
    let shared = Arc::new(shared);
    let app = Router::new()
        .fallback_service(ServeDir::new(&shared.root))
        .layer(middleware::from_fn_with_state(shared.clone(), front));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server { base, shared }
}

async fn serve_dir(root: &Path) -> Server {
    serve(Shared {
        root: root.to_path_buf(),
        ..Shared::default()
    })
    .await
}

/// A few MB of pseudo-random bytes (xorshift: no two runs differ).
fn random_bytes(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A served directory with `model.bin` in it, and an empty target directory.
struct Fixture {
    _tmp: tempfile::TempDir,
    served: PathBuf,
    target: PathBuf,
    data: Vec<u8>,
}

fn fixture(len: usize) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let served = tmp.path().join("served");
    let target = tmp.path().join("models/small");
    std::fs::create_dir_all(&served).unwrap();
    let data = random_bytes(len);
    std::fs::write(served.join("model.bin"), &data).unwrap();
    Fixture {
        _tmp: tmp,
        served,
        target,
        data,
    }
}

impl Fixture {
    fn spec(&self, server: &Server, sha256: &str) -> FileSpec {
        FileSpec {
            url: server.url("model.bin"),
            sha256: sha256.into(),
            path: self.target.join("model.bin"),
        }
    }
}

const SIZE: usize = 3 * 1024 * 1024 + 12345;

async fn get(spec: &FileSpec) -> Result<Fetched, FileError> {
    ensure(
        &reqwest::Client::new(),
        spec,
        Reserve::Bytes(0),
        &Progress::default(),
    )
    .await
}

#[tokio::test]
async fn full_download_then_already_present_without_a_request() {
    let f = fixture(SIZE);
    let server = serve_dir(&f.served).await;
    let spec = f.spec(&server, &sha(&f.data));
    assert!(!is_present(&spec));

    let progress = Progress::default();
    let got = ensure(&reqwest::Client::new(), &spec, Reserve::Bytes(0), &progress)
        .await
        .unwrap();
    let Fetched::Downloaded {
        bytes,
        resumed_from,
        ..
    } = got
    else {
        panic!("{got:?}")
    };
    assert_eq!((bytes, resumed_from), (SIZE as u64, 0));
    assert_eq!(progress.done.load(Ordering::Relaxed), SIZE as u64);
    assert_eq!(progress.total.load(Ordering::Relaxed), SIZE as u64);
    assert_eq!(std::fs::read(&spec.path).unwrap(), f.data);
    assert!(!partial_path(&spec).unwrap().exists(), "temp file left");
    let sidecar = std::fs::read_to_string(sidecar_path(&spec).unwrap()).unwrap();
    assert!(sidecar.contains(&spec.sha256), "{sidecar}");
    assert!(is_present(&spec));
    // The directory holds the file and its sidecar, nothing else.
    let mut names: Vec<String> = std::fs::read_dir(&f.target)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".model.bin.sha256", "model.bin"]);

    let before = server.seen().len();
    assert_eq!(before, 1);
    assert_eq!(server.seen()[0].path, "/model.bin");
    assert_eq!(get(&spec).await.unwrap(), Fetched::AlreadyPresent);
    assert_eq!(server.seen().len(), before, "AlreadyPresent made a request");
}

#[tokio::test]
async fn resumes_after_a_cut_with_a_range_request() {
    let f = fixture(SIZE);
    let cut_at = 1_000_000;
    let server = serve(Shared {
        root: f.served.clone(),
        cut: Some(("/model.bin".into(), cut_at)),
        ..Shared::default()
    })
    .await;
    let spec = f.spec(&server, &sha(&f.data));

    let err = get(&spec).await.unwrap_err();
    assert!(matches!(err, FileError::Interrupted { .. }), "{err:?}");
    assert!(!err.is_permanent(), "{err}");
    assert!(err.to_string().contains("resumes"), "{err}");
    let partial = partial_path(&spec).unwrap();
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), cut_at as u64);
    assert!(!spec.path.exists() && !is_present(&spec));

    let got = get(&spec).await.unwrap();
    assert!(
        matches!(got, Fetched::Downloaded { bytes, resumed_from, .. }
            if bytes == (SIZE - cut_at) as u64 && resumed_from == cut_at as u64),
        "{got:?}"
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].range, None);
    assert_eq!(
        seen[1].range.as_deref(),
        Some(format!("bytes={cut_at}-").as_str())
    );
    assert_eq!(sha(&std::fs::read(&spec.path).unwrap()), spec.sha256);
    assert!(!partial.exists() && is_present(&spec));
}

#[tokio::test]
async fn server_without_ranges_makes_it_start_over() {
    let f = fixture(SIZE);
    let server = serve(Shared {
        root: f.served.clone(),
        ignore_range: true,
        ..Shared::default()
    })
    .await;
    let spec = f.spec(&server, &sha(&f.data));
    std::fs::create_dir_all(&f.target).unwrap();
    std::fs::write(partial_path(&spec).unwrap(), &f.data[..500_000]).unwrap();

    let got = get(&spec).await.unwrap();
    assert!(
        matches!(got, Fetched::Downloaded { bytes, resumed_from: 0, .. } if bytes == SIZE as u64),
        "{got:?}"
    );
    assert_eq!(server.seen()[0].range.as_deref(), Some("bytes=500000-"));
    assert_eq!(std::fs::read(&spec.path).unwrap(), f.data);
}

#[tokio::test]
async fn complete_partial_file_is_finished_without_downloading() {
    // A crash after the last byte but before the rename: the server says
    // 416 to `bytes=SIZE-`, and the kept bytes already have the hash.
    let f = fixture(SIZE);
    let server = serve_dir(&f.served).await;
    let spec = f.spec(&server, &sha(&f.data));
    std::fs::create_dir_all(&f.target).unwrap();
    std::fs::write(partial_path(&spec).unwrap(), &f.data).unwrap();

    let got = get(&spec).await.unwrap();
    assert!(
        matches!(got, Fetched::Downloaded { bytes: 0, resumed_from, .. } if resumed_from == SIZE as u64),
        "{got:?}"
    );
    assert_eq!(server.seen().len(), 1);
    assert!(is_present(&spec));
}

#[tokio::test]
async fn bad_partial_bytes_are_redone_from_the_start() {
    let f = fixture(SIZE);
    let server = serve_dir(&f.served).await;
    let spec = f.spec(&server, &sha(&f.data));
    std::fs::create_dir_all(&f.target).unwrap();
    // Zeros where data should be, as a crash can leave them.
    std::fs::write(partial_path(&spec).unwrap(), vec![0u8; 700_000]).unwrap();

    let got = get(&spec).await.unwrap();
    assert!(
        matches!(
            got,
            Fetched::Downloaded {
                resumed_from: 0,
                ..
            }
        ),
        "{got:?}"
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].range.as_deref(), Some("bytes=700000-"));
    assert_eq!(seen[1].range, None);
    assert_eq!(std::fs::read(&spec.path).unwrap(), f.data);
}

#[tokio::test]
async fn hash_mismatch_deletes_the_temp_file_and_names_both_hashes() {
    let f = fixture(SIZE);
    let server = serve_dir(&f.served).await;
    let wrong = sha(b"something else");
    let spec = f.spec(&server, &wrong);

    let err = get(&spec).await.unwrap_err();
    assert!(err.is_permanent(), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&wrong), "{msg}");
    assert!(msg.contains(&sha(&f.data)), "{msg}");
    assert!(msg.contains("deleted"), "{msg}");
    assert!(!partial_path(&spec).unwrap().exists(), "temp file left");
    assert!(!spec.path.exists() && !is_present(&spec));
}

#[tokio::test]
async fn hand_placed_file_is_hashed_once_and_kept_or_replaced() {
    let f = fixture(SIZE);
    let server = serve_dir(&f.served).await;
    let spec = f.spec(&server, &sha(&f.data));
    std::fs::create_dir_all(&f.target).unwrap();

    // The right file, without a sidecar: kept, no request.
    std::fs::write(&spec.path, &f.data).unwrap();
    assert!(!is_present(&spec));
    assert_eq!(get(&spec).await.unwrap(), Fetched::AlreadyPresent);
    assert!(is_present(&spec));
    assert!(server.seen().is_empty());

    // Another file in its place: replaced by the declared one.
    std::fs::remove_file(&spec.path).unwrap();
    std::fs::write(&spec.path, b"not the model").unwrap();
    assert!(!is_present(&spec));
    assert!(matches!(
        get(&spec).await.unwrap(),
        Fetched::Downloaded { .. }
    ));
    assert_eq!(std::fs::read(&spec.path).unwrap(), f.data);
    assert!(is_present(&spec));
}

#[tokio::test]
async fn not_found_is_permanent_and_unavailable_is_not() {
    let f = fixture(1000);
    let server = serve_dir(&f.served).await;
    let mut spec = f.spec(&server, &sha(&f.data));

    spec.url = server.url("missing.bin");
    let err = get(&spec).await.unwrap_err();
    assert!(
        matches!(err, FileError::Status { status: 404, .. }),
        "{err:?}"
    );
    assert!(err.is_permanent());
    assert!(err.to_string().contains("fix the url"), "{err}");

    spec.url = server.url("busy.bin");
    let err = get(&spec).await.unwrap_err();
    assert!(
        matches!(err, FileError::Status { status: 503, .. }),
        "{err:?}"
    );
    assert!(!err.is_permanent(), "{err}");

    // Nobody listening: a network error, worth a retry.
    let port = hwc_testkit::free_port();
    spec.url = format!("http://127.0.0.1:{port}/model.bin");
    let err = get(&spec).await.unwrap_err();
    assert!(matches!(err, FileError::Request { .. }), "{err:?}");
    assert!(!err.is_permanent(), "{err}");
    assert!(!f.target.exists(), "nothing may be written on failure");
}

#[tokio::test]
async fn disk_reserve_refuses_with_the_numbers_and_writes_nothing() {
    let f = fixture(SIZE);
    let server = serve_dir(&f.served).await;
    let spec = f.spec(&server, &sha(&f.data));
    // More than is free by a margin: other tests write to the same disk
    // while this one runs, and free space moves by megabytes meanwhile.
    let free = disk::space(&f.target).unwrap().free + (4 << 30);

    let err = ensure(
        &reqwest::Client::new(),
        &spec,
        Reserve::Bytes(free),
        &Progress::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, FileError::Disk(_)), "{err:?}");
    assert!(err.is_permanent());
    let msg = err.to_string();
    assert!(msg.contains(&format!("({SIZE} bytes) needed")), "{msg}");
    assert!(
        msg.contains(&format!("({free} bytes) must stay free")),
        "{msg}"
    );
    assert!(msg.contains(" free, "), "{msg}");
    assert!(!f.target.exists(), "the refusal wrote something");
}

/// The whole path real once: the SmolLM2 GGUF served over HTTP, downloaded
/// and checked against its real sha256, then loaded by a real llama-server
/// that answers a chat completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_gguf_downloads_and_llama_server_answers() {
    let (_, model) = hwc_testkit::llama::runtime();
    let real = model.clone();
    let expected = tokio::task::spawn_blocking(move || {
        let mut h = Sha256::new();
        std::io::copy(&mut std::fs::File::open(&real).unwrap(), &mut h).unwrap();
        hex::encode(h.finalize())
    })
    .await
    .unwrap();
    let name = model.file_name().unwrap().to_str().unwrap().to_string();
    let server = serve_dir(model.parent().unwrap()).await;
    let tmp = tempfile::tempdir().unwrap();
    let spec = FileSpec {
        url: server.url(&name),
        sha256: expected.clone(),
        path: tmp.path().join("smollm2").join(&name),
    };

    let got = ensure(
        &reqwest::Client::new(),
        &spec,
        Reserve::Percent(1.0),
        &Progress::default(),
    )
    .await
    .unwrap();
    let size = std::fs::metadata(&model).unwrap().len();
    assert!(
        matches!(got, Fetched::Downloaded { bytes, resumed_from: 0, .. } if bytes == size),
        "{got:?}"
    );
    assert!(is_present(&spec));

    let path = spec.path.clone();
    let llama = tokio::task::spawn_blocking(move || hwc_testkit::llama::start_with_model(&path))
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/chat/completions", llama.url()))
        .json(&serde_json::json!({
            "model": name,
            "max_tokens": 4,
            "messages": [{"role": "user", "content": "Say OK."}],
        }))
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body.pointer("/choices/0/message").is_some(),
        "no answer: {body}"
    );
}
