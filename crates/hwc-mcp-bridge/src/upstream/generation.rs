//! One generation of a child: the writer task (a bounded queue to stdin,
//! newline framed), the reader task (stdout lines, size-capped before
//! parsing, dispatched to the pending map), the initialize handshake and
//! the pings, and the cleanup when it ends.

use super::pending::Reply;
use super::{
    lines, CallError, CallOpts, Change, ChangeKind, Link, Upstream, CHILD_PROTOCOL_VERSION,
};
use crate::jsonrpc::{self, Kind};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::mpsc;

/// Lines queued towards one child's stdin at most; a sender waits beyond.
const WRITE_QUEUE: usize = 256;

impl Upstream {
    /// One generation of the child: writer, reader, initialize, pings.
    pub(super) async fn run_child(
        self: Arc<Self>,
        stdin: Option<ChildStdin>,
        stdout: Option<ChildStdout>,
        group: i32,
    ) {
        let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
            tracing::error!(server = %self.cfg.name, "child started without pipes");
            return;
        };
        let generation = {
            let mut inner = hwc_ai_core::sync::lock(&self.inner);
            inner.generation += 1;
            inner.starts += 1;
            inner.generation
        };
        if generation > 1 && !self.session_child {
            self.metrics.restarted(&self.cfg.name);
        }
        let (tx, rx) = mpsc::channel::<String>(WRITE_QUEUE);
        let _cleanup = GenerationEnd {
            up: self.clone(),
            generation,
        };
        tokio::select! {
            () = write_lines(stdin, rx) => {
                tracing::warn!(server = %self.cfg.name, "cannot write to the child's stdin any more");
            }
            () = self.read_lines(stdout, tx.clone()) => {
                tracing::warn!(server = %self.cfg.name, generation, "child closed its stdout");
            }
            () = self.handshake_and_ping(tx, generation, group) => {}
        }
    }

    async fn handshake_and_ping(&self, tx: mpsc::Sender<String>, generation: u64, group: i32) {
        let name = &self.cfg.name;
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": CHILD_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "hwc-mcp-bridge", "version": env!("CARGO_PKG_VERSION")},
        }});
        let deadline = tokio::time::Instant::now() + self.cfg.call_timeout;
        let answer = self
            .roundtrip(&tx, generation, init, deadline, CallOpts::default())
            .await;
        let result = match answer {
            Ok(m) if m.get("result").is_some_and(Value::is_object) => m["result"].clone(),
            Ok(m) => {
                self.fail_generation(
                    group,
                    format!(
                        "the child refused initialize: {}",
                        m.get("error").unwrap_or(&Value::Null)
                    ),
                );
                return std::future::pending().await;
            }
            Err(e) => {
                self.fail_generation(group, format!("initialize failed: {e}"));
                return std::future::pending().await;
            }
        };
        let _ = tx
            .send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string())
            .await;
        let version = result
            .get("protocolVersion")
            .and_then(|v| v.as_str())
            .unwrap_or("?");
        let child = result
            .pointer("/serverInfo/name")
            .and_then(|v| v.as_str())
            .unwrap_or("?");
        tracing::info!(server = %name, generation, protocol_version = %version, child_server = %child, "child initialized");
        {
            let mut inner = hwc_ai_core::sync::lock(&self.inner);
            inner.link = Some(Link {
                tx: tx.clone(),
                init: Arc::new(result),
                generation,
            });
            inner.down_since = None;
            inner.last_error = None;
        }
        if !self.session_child {
            self.metrics.child_up(name, true);
        }
        loop {
            tokio::time::sleep(self.cfg.ping_interval).await;
            let deadline = tokio::time::Instant::now() + self.cfg.ping_timeout;
            let ping = json!({"jsonrpc": "2.0", "id": 0, "method": "ping"});
            if let Err(e) = self
                .roundtrip(&tx, generation, ping, deadline, CallOpts::default())
                .await
            {
                let why = match e {
                    CallError::Timeout { .. } => format!(
                        "no answer to ping within {}s (ping_timeout)",
                        self.cfg.ping_timeout.as_secs_f64()
                    ),
                    e => e.to_string(),
                };
                self.fail_generation(group, why);
                return std::future::pending().await;
            }
        }
    }

    /// Ends this generation with `why`: SIGKILL to the child's process
    /// group, so the supervisor sees it exit and restarts it with backoff.
    fn fail_generation(&self, group: i32, why: String) {
        tracing::warn!(server = %self.cfg.name, reason = %why, "restarting the child");
        hwc_ai_core::sync::lock(&self.inner).last_error = Some(why);
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(group),
            nix::sys::signal::Signal::SIGKILL,
        );
    }

    async fn read_lines(&self, stdout: ChildStdout, tx: mpsc::Sender<String>) {
        let mut r = BufReader::new(stdout);
        let max = self.cfg.max_result_bytes;
        while let Some(line) = lines::next_line(&mut r, max).await {
            match line {
                lines::Line::Full(bytes) => {
                    if bytes.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match serde_json::from_slice::<Value>(&bytes) {
                        Ok(msg) => self.dispatch(msg, &tx),
                        Err(e) => {
                            tracing::warn!(server = %self.cfg.name, error = %e, bytes = bytes.len(), "child wrote a line that is not JSON; ignored")
                        }
                    }
                }
                lines::Line::Oversize { head, tail, len } => {
                    let id = lines::oversize_id(&head, &tail);
                    tracing::warn!(server = %self.cfg.name, bytes = len, max, ?id, "child message over max_result_bytes; dropped");
                    if let Some(p) = id.and_then(|n| self.take_pending(n)) {
                        let _ = p.reply.send(Reply::Failed(CallError::TooLarge {
                            server: self.cfg.name.clone(),
                            len,
                            max,
                        }));
                    }
                }
            }
        }
    }

    fn dispatch(&self, msg: Value, tx: &mpsc::Sender<String>) {
        match jsonrpc::kind(&msg) {
            Kind::Response => {
                let Some(n) = msg.get("id").and_then(Value::as_u64) else {
                    tracing::warn!(server = %self.cfg.name, "child answered an id the bridge never sent; ignored");
                    return;
                };
                if let Some(p) = self.take_pending(n) {
                    let mut msg = msg;
                    msg["id"] = p.client_id;
                    let _ = p.reply.send(Reply::Message(msg));
                }
            }
            Kind::Notification if jsonrpc::method(&msg) == "notifications/progress" => {
                let Some(n) = msg.pointer("/params/progressToken").and_then(Value::as_u64) else {
                    return;
                };
                let inner = hwc_ai_core::sync::lock(&self.inner);
                if let Some(p) = inner.pending.get(&n) {
                    if let (Some(sink), Some(token)) = (&p.progress, &p.client_token) {
                        let mut note = msg.clone();
                        note["params"]["progressToken"] = token.clone();
                        let _ = sink.send(note);
                    }
                }
            }
            Kind::Notification => match ChangeKind::of(&msg) {
                Some(kind) => {
                    tracing::debug!(server = %self.cfg.name, method = jsonrpc::method(&msg), "child change notification");
                    if kind == ChangeKind::ToolsListChanged {
                        hwc_ai_core::sync::lock(&self.tool_schemas).clear();
                    }
                    self.publish(Change::Note(kind, Arc::new(msg)));
                }
                None => {
                    tracing::debug!(server = %self.cfg.name, method = jsonrpc::method(&msg), "child notification");
                }
            },
            Kind::Request => {
                let id = jsonrpc::id(&msg);
                let answer = if jsonrpc::method(&msg) == "ping" {
                    jsonrpc::result(id, json!({}))
                } else {
                    tracing::info!(server = %self.cfg.name, method = jsonrpc::method(&msg), "child sent a request; refused (the bridge declares no client capabilities)");
                    jsonrpc::error(
                        id,
                        jsonrpc::METHOD_NOT_FOUND,
                        "the bridge declares no client capabilities (no roots, sampling or elicitation)",
                    )
                };
                let _ = tx.try_send(answer.to_string());
            }
            Kind::Invalid => {
                tracing::warn!(server = %self.cfg.name, "child wrote a message that is not JSON-RPC; ignored");
            }
        }
    }
}

/// Runs when a generation's future ends or is dropped (the supervisor
/// aborts it when the child exits): the link goes and every request
/// pending on this generation is answered (its reply channel dropped).
struct GenerationEnd {
    up: Arc<Upstream>,
    generation: u64,
}

impl Drop for GenerationEnd {
    fn drop(&mut self) {
        let mut inner = hwc_ai_core::sync::lock(&self.up.inner);
        if inner
            .link
            .as_ref()
            .is_some_and(|l| l.generation == self.generation)
        {
            inner.link = None;
        }
        inner.down_since = Some(Instant::now());
        let gen = self.generation;
        let dead: Vec<u64> = inner
            .pending
            .iter()
            .filter(|(_, p)| p.generation == gen)
            .map(|(n, _)| *n)
            .collect();
        let name = self.up.cfg.name.clone();
        for n in dead {
            if let Some(p) = inner.pending.remove(&n) {
                let _ = p.reply.send(Reply::Failed(CallError::ChildExited {
                    server: name.clone(),
                }));
            }
        }
        drop(inner);
        hwc_ai_core::sync::lock(&self.up.listen_subs).clear();
        hwc_ai_core::sync::lock(&self.up.tool_schemas).clear();
        self.up.publish(Change::Ended(gen));
        if !self.up.session_child {
            self.up.metrics.child_up(&name, false);
        }
    }
}

async fn write_lines(mut stdin: ChildStdin, mut rx: mpsc::Receiver<String>) {
    while let Some(mut line) = rx.recv().await {
        line.push('\n');
        if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
            return;
        }
    }
}
