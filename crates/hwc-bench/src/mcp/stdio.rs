//! The direct path: the bench itself is the stdio server's only client,
//! writing newline-delimited JSON-RPC to its stdin and reading its stdout.
//! Requests are multiplexed by id, so any number of tasks may call at once
//! over the one pipe (as a bridge does with its shared child).

use super::{answers, check_call, initialize, tools_call};
use anyhow::Context;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::oneshot;

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// How long one request may take before it counts as failed.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A stdio MCP server started by the bench.
pub struct StdioServer {
    child: Child,
    stdin: Arc<tokio::sync::Mutex<ChildStdin>>,
    pending: Pending,
    next: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
}

impl StdioServer {
    /// Starts `argv` with its stderr going to `log`, then initializes it
    /// (`initialize`, `notifications/initialized`).
    pub async fn start(argv: &[String], log: &Path) -> anyhow::Result<Self> {
        let (program, args) = argv.split_first().context("empty server command")?;
        let err =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        let stdin = Arc::new(tokio::sync::Mutex::new(
            child.stdin.take().context("no stdin")?,
        ));
        let stdout = child.stdout.take().context("no stdout")?;
        let pending: Pending = Arc::default();
        let reader = tokio::spawn(read_answers(stdout, pending.clone(), stdin.clone()));
        let server = Self {
            child,
            stdin,
            pending,
            next: AtomicU64::new(1),
            reader,
        };
        let init = server
            .request_value(0, initialize(0).to_string())
            .await
            .map_err(anyhow::Error::msg)
            .context("initialize")?;
        if let Some(e) = init.get("error") {
            anyhow::bail!("initialize failed: {e}");
        }
        server
            .write(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string())
            .await
            .map_err(anyhow::Error::msg)?;
        Ok(server)
    }

    /// The child's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn write(&self, line: &str) -> Result<(), String> {
        let mut stdin = self.stdin.lock().await;
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        stdin
            .write_all(&buf)
            .await
            .map_err(|e| format!("write: {e}"))?;
        stdin.flush().await.map_err(|e| format!("flush: {e}"))
    }

    async fn request_value(&self, id: u64, line: String) -> Result<Value, String> {
        let (tx, rx) = oneshot::channel();
        self.pending.lock().map_err(|_| "poisoned")?.insert(id, tx);
        if let Err(e) = self.write(&line).await {
            let _ = self.pending.lock().map(|mut p| p.remove(&id));
            return Err(e);
        }
        match tokio::time::timeout(TIMEOUT, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err("the server closed its stdout".into()),
            Err(_) => {
                let _ = self.pending.lock().map(|mut p| p.remove(&id));
                Err(format!("no answer within {TIMEOUT:?}"))
            }
        }
    }

    /// One `tools/call`; when its answer arrived.
    pub async fn call(&self, tool: &str, arguments: &Value) -> Result<Instant, String> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let answer = self
            .request_value(id, tools_call(id, tool, arguments))
            .await?;
        let at = Instant::now();
        check_call(&answer)?;
        Ok(at)
    }

    /// Closes its stdin and waits up to 5 s for the exit, then kills it.
    pub async fn stop(mut self) {
        // The reader holds the other handle on stdin.
        self.reader.abort();
        let _ = self.reader.await;
        drop(self.stdin);
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Hands every answer on `stdout` to its waiting request; answers the
/// server's own requests with -32601 (the bench declares no client
/// capabilities); ignores notifications.
async fn read_answers(
    stdout: tokio::process::ChildStdout,
    pending: Pending,
    stdin: Arc<tokio::sync::Mutex<ChildStdin>>,
) {
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(id) = msg.get("id").and_then(Value::as_u64) {
            if answers(&msg, id) {
                let tx = pending.lock().ok().and_then(|mut p| p.remove(&id));
                if let Some(tx) = tx {
                    let _ = tx.send(msg);
                }
                continue;
            }
        }
        if msg.get("method").is_some() {
            if let Some(id) = msg.get("id") {
                let reply = json!({"jsonrpc": "2.0", "id": id,
                    "error": {"code": -32601, "message": "not supported by the bench"}});
                let mut w = stdin.lock().await;
                let _ = w.write_all(format!("{reply}\n").as_bytes()).await;
                let _ = w.flush().await;
            }
        }
    }
    // End of stdout: every waiting request fails at once.
    if let Ok(mut p) = pending.lock() {
        p.clear();
    }
}
