//! The real MCP "everything" server from npm
//! (`@modelcontextprotocol/server-everything`, installed by
//! scripts/setup.sh), serving Streamable HTTP at `/mcp`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Path of the server's entry point, or a panic saying how to get it.
pub fn entry_point() -> PathBuf {
    installed(
        "HWC_MCP_EVERYTHING",
        "npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
    )
}

/// A running MCP server, killed on drop.
pub struct McpServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
}

impl McpServer {
    /// The Streamable HTTP endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// Kills the server.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the everything server in Streamable HTTP mode and waits for its port.
pub fn everything() -> McpServer {
    let port = crate::free_port();
    let child = Command::new("node")
        .arg(entry_point())
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start node");
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "MCP server not listening after 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    McpServer { port, child }
}

/// A peer installed by scripts/setup.sh under the cache at `rel`, or where
/// the environment variable `var` says.
fn installed(var: &str, rel: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::llama::cache().join(rel));
    assert!(
        path.exists(),
        "{} is missing; run scripts/setup.sh",
        path.display()
    );
    path
}

/// The PyPI `mcp-server-time` stdio server (a real MCP server), installed
/// by scripts/setup.sh into its own venv; `HWC_MCP_TIME` overrides.
pub fn time_server() -> PathBuf {
    installed("HWC_MCP_TIME", "mcp-time/bin/mcp-server-time")
}

/// The PyPI `mcp-server-git` stdio server (`--repository DIR`);
/// `HWC_MCP_GIT` overrides.
pub fn git_server() -> PathBuf {
    installed("HWC_MCP_GIT", "mcp-git/bin/mcp-server-git")
}

/// The npm `@modelcontextprotocol/server-filesystem` entry point (run with
/// `node`, its allowed directories as arguments); `HWC_MCP_FILESYSTEM`
/// overrides.
pub fn filesystem_entry_point() -> PathBuf {
    installed(
        "HWC_MCP_FILESYSTEM",
        "npm/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js",
    )
}

/// The Python of the venv holding the official PyPI `mcp` 1.x client (what
/// Open WebUI runs), installed by scripts/setup.sh; `HWC_MCP_CLIENT_PYTHON`
/// overrides.
pub fn client_python() -> PathBuf {
    installed("HWC_MCP_CLIENT_PYTHON", "mcp-client/bin/python")
}

/// The Python of the venv holding the official PyPI `mcp` 2.x client;
/// `HWC_MCP_CLIENT2_PYTHON` overrides.
pub fn client2_python() -> PathBuf {
    installed("HWC_MCP_CLIENT2_PYTHON", "mcp-client2/bin/python")
}
