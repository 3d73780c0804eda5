//! The real llama.cpp `llama-server` with SmolLM2-135M-Instruct, built and
//! cached by scripts/test-runtime.sh. Tests either share one server per
//! test binary ([`shared`]) or start their own ([`start`]) when they stop it
//! or count its requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Child;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `${XDG_CACHE_HOME:-$HOME/.cache}/hwc-ai`, where scripts/setup.sh caches the peers.
pub fn cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache"))
        .join("hwc-ai")
}

/// Paths of the server binary and the model, or a panic saying how to get them.
pub fn runtime() -> (PathBuf, PathBuf) {
    let server = std::env::var_os("LLAMA_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache().join("llama.cpp/build/bin/llama-server"));
    let model = std::env::var_os("HWC_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    assert!(
        server.exists() && model.exists(),
        "the real test runtime is missing ({} / {}); run scripts/test-runtime.sh first",
        server.display(),
        model.display()
    );
    (server, model)
}

/// A running llama-server.
pub struct Llama {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
}

impl Llama {
    /// Stops the server (the wrapper kills it when its stdin closes) and
    /// waits until the port is closed.
    pub fn stop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }

    /// Base URL with `/v1`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Base URL without `/v1`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

use crate::http_get;

/// Starts a llama-server on a free port and waits until it is healthy.
pub fn start() -> Llama {
    let llama = spawn();
    wait_healthy(llama.port);
    llama
}

/// Starts a llama-server on a free port without waiting for it, to watch
/// it start.
pub fn spawn() -> Llama {
    let port = crate::free_port();
    spawn_on(port)
}

/// Starts a llama-server on `port` without waiting for it. The server dies
/// with the test process: a shell holds it and kills it when its stdin (our
/// pipe) closes.
pub fn spawn_on(port: u16) -> Llama {
    spawn_model_on(port, &runtime().1)
}

/// Starts a llama-server on a free port serving `model` (a GGUF the test
/// produced, such as one a manager downloaded) and waits until it is
/// healthy.
pub fn start_with_model(model: &std::path::Path) -> Llama {
    let port = crate::free_port();
    let llama = spawn_model_on(port, model);
    wait_healthy(llama.port);
    llama
}

/// Starts a llama-server on `port` serving `model`, without waiting; it
/// dies with the test process like [`spawn_on`]'s.
pub fn spawn_model_on(port: u16, model: &std::path::Path) -> Llama {
    let (server, _) = runtime();
    let child = crate::held_by_pipe(&server, None)
        .args(["-m"])
        .arg(model)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        // 2048 tokens per slot: an agent job's four turns of a small model
        // (prompt, tool schemas, outputs) outgrew 1024 once.
        .args(["--metrics", "-c", "4096", "-t", "2", "-np", "2"])
        .spawn()
        .expect("cannot start llama-server");
    Llama { port, child }
}

/// Waits until `/health` answers 200.
pub fn wait_healthy(port: u16) {
    let t0 = Instant::now();
    while !matches!(http_get(port, "/health"), Some((200, _))) {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "llama-server not healthy after 120 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The llama-server shared by the tests of one binary.
pub fn shared() -> &'static Llama {
    static LLAMA: OnceLock<Llama> = OnceLock::new();
    LLAMA.get_or_init(start)
}
