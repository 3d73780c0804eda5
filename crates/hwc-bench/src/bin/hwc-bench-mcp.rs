//! Benchmark of hwc-mcp-bridge beside PyPI `mcp-proxy` and npm
//! `supergateway`, all in front of the same stdio MCP server: the latency
//! each adds to a `tools/call` over talking stdio to that server directly
//! (one call at a time, then many sessions at once), and the memory each
//! holds idle and under load. Each bridge's loops run right after the same
//! loops direct, in one run on 127.0.0.1. Results: docs/benchmarks.md.

use anyhow::Context;
use clap::{Parser, ValueEnum};
use hwc_bench::mcp::echo;
use hwc_bench::mcp::http::Session;
use hwc_bench::mcp::load::{concurrent, open_sessions, Call, Caller};
use hwc_bench::mcp::peers::{tree_rss, BridgeOptions, Peer, TreeSampler};
use hwc_bench::mcp::report::{Measured, Phase, Report, Row};
use hwc_bench::mcp::stdio::StdioServer;
use hwc_bench::procinfo::cpu_time;
use hwc_bench::runinfo::{self, output_of};
use hwc_bench::stats::{Run, Summary};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Measures the latency and memory hwc-mcp-bridge, mcp-proxy and
/// supergateway add in front of the same stdio MCP server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The hwc-mcp-bridge binary [default: $CARGO_TARGET_DIR/release/hwc-mcp-bridge
    /// when CARGO_TARGET_DIR is set, else target/release/hwc-mcp-bridge].
    #[arg(long)]
    bridge_bin: Option<PathBuf>,
    /// PyPI mcp-proxy's command [default: ~/.cache/hwc-ai/mcp-proxy/bin/mcp-proxy].
    #[arg(long)]
    mcp_proxy_bin: Option<PathBuf>,
    /// npm supergateway's `dist/index.js`
    /// [default: ~/.cache/hwc-ai/npm/node_modules/supergateway/dist/index.js].
    #[arg(long)]
    supergateway_js: Option<PathBuf>,
    /// Node.js, for supergateway.
    #[arg(long, default_value = "node")]
    node: PathBuf,
    /// The bridges to measure, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "hwc-mcp-bridge,mcp-proxy,supergateway"
    )]
    peers: Vec<Kind>,
    /// The stdio MCP server behind every path, as words split at spaces
    /// (no quoting) [default: this binary's built-in echo server,
    /// `hwc-bench-mcp --serve-echo`].
    #[arg(long)]
    server_cmd: Option<String>,
    /// The tool to call.
    #[arg(long, default_value = "echo")]
    tool: String,
    /// Its arguments, a JSON object.
    #[arg(long, default_value = r#"{"message":"hello"}"#)]
    tool_args: String,
    /// Small counts (about 25 s for all three bridges on 2 cores).
    #[arg(long)]
    quick: bool,
    /// Measured calls of the one-at-a-time loop [default: 5000; --quick 300].
    #[arg(long)]
    calls: Option<usize>,
    /// Unmeasured calls before it [default: 500; --quick 50].
    #[arg(long)]
    warmup: Option<usize>,
    /// Sessions of the concurrent loop, each opened by its own task.
    #[arg(long, default_value_t = 100)]
    sessions: usize,
    /// Measured calls of the concurrent loop, all sessions together
    /// [default: 20000; --quick 2000].
    #[arg(long)]
    calls_concurrent: Option<usize>,
    /// Unmeasured calls per session before it [default: 5; --quick 2].
    #[arg(long)]
    warmup_per_session: Option<usize>,
    /// A measured loop stops issuing calls after this many seconds.
    #[arg(long, default_value_t = 60)]
    max_phase_secs: u64,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// `RUST_LOG` for hwc-mcp-bridge (default: unset, so its built-in `info`).
    #[arg(long)]
    bridge_rust_log: Option<String>,
    /// `max_concurrent_calls` of the bridge's server entry (default: unset,
    /// so the bridge's default, 16).
    #[arg(long)]
    bridge_max_concurrent_calls: Option<usize>,
    /// Also write the Markdown report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep the temporary directory (configs and logs) and print it.
    #[arg(long)]
    keep_dir: bool,
    /// Be the echo MCP server on stdin and stdout (what the bridges run).
    #[arg(long, hide = true)]
    serve_echo: bool,
}

/// A bridge under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// hwc-mcp-bridge.
    #[value(name = "hwc-mcp-bridge")]
    Bridge,
    /// PyPI mcp-proxy.
    #[value(name = "mcp-proxy")]
    McpProxy,
    /// npm supergateway.
    #[value(name = "supergateway")]
    Supergateway,
}

/// Counts after `--quick` and the explicit flags.
#[derive(Debug, Clone, Copy)]
struct Plan {
    calls: usize,
    warmup: usize,
    sessions: usize,
    calls_concurrent: usize,
    warmup_per_session: usize,
    max_phase: Duration,
}

impl Args {
    fn plan(&self) -> Plan {
        let (calls, warmup, conc, wps) = if self.quick {
            (300, 50, 2000, 2)
        } else {
            (5000, 500, 20000, 5)
        };
        Plan {
            calls: self.calls.unwrap_or(calls),
            warmup: self.warmup.unwrap_or(warmup),
            sessions: self.sessions.max(1),
            calls_concurrent: self.calls_concurrent.unwrap_or(conc),
            warmup_per_session: self.warmup_per_session.unwrap_or(wps),
            max_phase: Duration::from_secs(self.max_phase_secs.max(1)),
        }
    }

    fn bridge_bin(&self) -> PathBuf {
        self.bridge_bin.clone().unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| PathBuf::from("target"), PathBuf::from)
                .join("release/hwc-mcp-bridge")
        })
    }

    fn mcp_proxy_bin(&self) -> PathBuf {
        self.mcp_proxy_bin
            .clone()
            .unwrap_or_else(|| cache().join("mcp-proxy/bin/mcp-proxy"))
    }

    fn supergateway_js(&self) -> PathBuf {
        self.supergateway_js
            .clone()
            .unwrap_or_else(|| cache().join("npm/node_modules/supergateway/dist/index.js"))
    }

    fn server(&self) -> anyhow::Result<Vec<String>> {
        match &self.server_cmd {
            Some(cmd) => {
                let words: Vec<String> = cmd.split_whitespace().map(str::to_owned).collect();
                anyhow::ensure!(!words.is_empty(), "--server-cmd is empty");
                Ok(words)
            }
            None => {
                let exe = std::env::current_exe().context("finding this binary")?;
                Ok(vec![exe.display().to_string(), "--serve-echo".into()])
            }
        }
    }
}

/// `~/.cache/hwc-ai`, where scripts/setup.sh installs the peers.
fn cache() -> PathBuf {
    std::env::var_os("HOME")
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
        .join(".cache/hwc-ai")
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.serve_echo {
        let out = std::io::BufWriter::new(std::io::stdout().lock());
        return Ok(echo::serve(std::io::stdin().lock(), out)?);
    }
    let started = Instant::now();
    let runtime = runinfo::client_runtime(args.client_threads)?;
    let dir = tempfile::Builder::new()
        .prefix("hwc-bench-mcp-")
        .tempdir()?;
    let result = runtime.block_on(runinfo::until_interrupted(run(&args, dir.path())));
    if args.keep_dir {
        eprintln!("kept {}", dir.keep().display());
    }
    let mut report = result?;
    report.notes.push(format!(
        "Whole run took {:.1} s.",
        started.elapsed().as_secs_f64()
    ));
    runinfo::emit(&report.markdown(), args.out.as_deref())
}

async fn run(args: &Args, dir: &Path) -> anyhow::Result<Report> {
    let plan = args.plan();
    let server = args.server()?;
    let call = Call {
        tool: args.tool.clone(),
        arguments: serde_json::from_str(&args.tool_args).context("--tool-args: not JSON")?,
    };
    let mut report = Report {
        command: runinfo::command_line(),
        machine: runinfo::machine(),
        sessions: plan.sessions,
        ..Report::default()
    };
    let server_words = runinfo::shell_words(server.iter().cloned());
    report.setup.push(if args.server_cmd.is_some() {
        format!("Server behind every path: `{server_words}`; tool `{}` with `{}`.", call.tool, call.arguments)
    } else {
        format!(
            "Server behind every path: the bench's own echo server (`hwc-bench-mcp --serve-echo`: one tool, `echo`, answering `Echo: <message>`, one JSON line in and out); tool `{}` with `{}`.",
            call.tool, call.arguments
        )
    });
    report.setup.push(format!(
        "Load: {} calls one at a time in one session after {} unmeasured; then {} sessions opened at once, {} unmeasured calls each, then {} calls shared by the {} sessions in a closed loop; a loop stops issuing after {} s. Each bridge's loops run right after the same loops direct (direct concurrent: {} tasks multiplexing requests by id on the server's one stdio pipe, as a bridge does with its shared child).",
        plan.calls, plan.warmup, plan.sessions, plan.warmup_per_session, plan.calls_concurrent, plan.sessions, plan.max_phase.as_secs(), plan.sessions
    ));
    report.setup.push(format!(
        "Latency: from just before a request is sent to when its answer is parsed (for an event-stream answer, the event carrying it; the rest of the stream is read after, untimed). Added = via minus direct of the same statistic (nearest-rank percentiles). Threads: load generator {} tokio worker(s); every bridge runs as a separate process with its defaults.",
        args.client_threads.max(1)
    ));
    report.setup.push("Memory: read 1 s after the bridge is ready, before any session (idle), and the largest sampled during the concurrent loop (under load: the bridge process's `VmRSS` every 50 ms, its whole process tree every 500 ms); `VmHWM` of the bridge process at the end. *Other processes* are the bridge's descendants that are not server processes (hwc-mcp-bridge: one guard per child; supergateway: a `sh -c` per session); their `VmRSS` is mostly pages shared with each other or with the bridge. *Charged PSS* = `Pss` (smaps_rollup) of the bridge process plus its other processes, which counts each shared page once. Server processes (and anything below them) are counted apart. CPU/call: growth of the bridge process's `utime + stime` (all its threads, not its children) over the measured loop divided by its calls; the clock tick is 10 ms.".into());
    for &kind in &args.peers {
        let (name, version) = describe(args, kind);
        eprintln!("== {name} ({version})");
        let peer_dir = dir.join(name);
        std::fs::create_dir_all(&peer_dir)?;
        let outcome = measure(
            args,
            &plan,
            kind,
            &server,
            &call,
            &peer_dir,
            &mut report.notes,
        )
        .await
        .map_err(|e| format!("{e:#}"));
        if let Err(e) = &outcome {
            eprintln!("{name} not measured: {e}");
        }
        report.rows.push(Row {
            name,
            version,
            outcome,
        });
    }
    let opts = bridge_options(args);
    report.notes.push(format!(
        "hwc-mcp-bridge: one `[[servers]]` entry with defaults{}, an admin bearer token from `token_files` (sent on every request), log filter {}. mcp-proxy: `mcp-proxy --port P --host 127.0.0.1 -- SERVER` (stateful sessions, JSON answers, one shared server child). supergateway: `node dist/index.js --stdio SERVER --outputTransport streamableHttp --stateful --port P --healthEndpoint /healthz` (it starts one server process per session). The peers have no authentication.",
        opts.max_concurrent_calls
            .map_or_else(String::new, |n| format!(" but `max_concurrent_calls = {n}`")),
        opts.rust_log
            .as_deref()
            .map_or_else(|| "built-in default (`info`)".to_owned(), |f| format!("RUST_LOG=`{f}`"))
    ));
    Ok(report)
}

fn bridge_options(args: &Args) -> BridgeOptions {
    BridgeOptions {
        rust_log: args.bridge_rust_log.clone(),
        max_concurrent_calls: args.bridge_max_concurrent_calls,
    }
}

/// The bridge's name and version, as it says.
fn describe(args: &Args, kind: Kind) -> (&'static str, String) {
    match kind {
        Kind::Bridge => {
            let bin = args.bridge_bin();
            let v = bin
                .to_str()
                .and_then(|b| output_of(b, &["--version"]))
                .unwrap_or_else(|| format!("hwc-mcp-bridge {}", env!("CARGO_PKG_VERSION")));
            ("hwc-mcp-bridge", format!("{v}, `{}`", bin.display()))
        }
        Kind::McpProxy => {
            let bin = args.mcp_proxy_bin();
            let v = bin
                .to_str()
                .and_then(|b| output_of(b, &["--version"]))
                .unwrap_or_else(|| "version unknown".into());
            ("mcp-proxy", format!("{v}, `{}`", bin.display()))
        }
        Kind::Supergateway => {
            let js = args.supergateway_js();
            let v = js
                .parent()
                .and_then(Path::parent)
                .and_then(|d| std::fs::read_to_string(d.join("package.json")).ok())
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|p| p["version"].as_str().map(|v| format!("supergateway {v}")))
                .unwrap_or_else(|| "version unknown".into());
            let node = args
                .node
                .to_str()
                .and_then(|n| output_of(n, &["--version"]))
                .unwrap_or_else(|| "?".into());
            (
                "supergateway",
                format!("{v} on Node.js {node}, `{}`", js.display()),
            )
        }
    }
}

/// A loop's summary, logged to stderr; failures also become a note.
fn phase(
    mut run: Run,
    cpu: Option<Duration>,
    who: &str,
    what: &str,
    notes: &mut Vec<String>,
) -> Phase {
    let (latency, rps) = run.summarise(what, who, "calls");
    if let Some(e) = &run.first_error {
        notes.push(format!(
            "{who}, {what}: {} calls failed; the first: {e}",
            run.errors
        ));
    }
    Phase {
        latency,
        errors: run.errors,
        rps,
        cpu_per_call: cpu.map(|c| c / u32::try_from(latency.n.max(1)).unwrap_or(u32::MAX)),
    }
}

fn delta(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    Some(b?.saturating_sub(a?))
}

/// Both loops straight to a fresh server.
async fn direct(
    plan: &Plan,
    server: &[String],
    call: &Call,
    dir: &Path,
    notes: &mut Vec<String>,
) -> anyhow::Result<(Phase, Phase)> {
    let s = Arc::new(
        StdioServer::start(server, &dir.join("direct-server.log"))
            .await
            .context("starting the server for the direct baseline")?,
    );
    let one = vec![Caller::Direct(s.clone())];
    let (run, ()) = concurrent(one, call, plan.warmup, plan.calls, plan.max_phase, || ()).await;
    let seq = phase(run, None, "direct", "c=1", notes);
    let many = vec![Caller::Direct(s.clone()); plan.sessions];
    let what = format!("c={}", plan.sessions);
    let (run, ()) = concurrent(
        many,
        call,
        plan.warmup_per_session,
        plan.calls_concurrent,
        plan.max_phase,
        || (),
    )
    .await;
    let conc = phase(run, None, "direct", &what, notes);
    if let Ok(s) = Arc::try_unwrap(s) {
        s.stop().await;
    }
    Ok((seq, conc))
}

async fn close_all(sessions: &[Arc<Session>]) {
    let closing: Vec<_> = sessions
        .iter()
        .map(|s| {
            let s = s.clone();
            tokio::spawn(async move { s.close().await })
        })
        .collect();
    for c in closing {
        let _ = c.await;
    }
}

async fn measure(
    args: &Args,
    plan: &Plan,
    kind: Kind,
    server: &[String],
    call: &Call,
    dir: &Path,
    notes: &mut Vec<String>,
) -> anyhow::Result<Measured> {
    let (seq_direct, conc_direct) = direct(plan, server, call, dir, notes).await?;
    let mut peer = match kind {
        Kind::Bridge => Peer::bridge(&args.bridge_bin(), dir, server, &bridge_options(args))?,
        Kind::McpProxy => Peer::mcp_proxy(&args.mcp_proxy_bin(), dir, server)?,
        Kind::Supergateway => Peer::supergateway(&args.node, &args.supergateway_js(), dir, server)?,
    };
    let name = peer.name;
    let ready = peer.wait_ready(Duration::from_secs(60)).await?;
    eprintln!(
        "{name} ready in {} ms (pid {})",
        ready.as_millis(),
        peer.pid
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = tree_rss(peer.pid, server);
    let pid = peer.pid;
    let fail = |what: &str, e: String, peer: &Peer| {
        anyhow::anyhow!("{what}: {e}; {name}'s log ends:\n{}", peer.log_tail())
    };

    // One session, one call at a time.
    let client = hwc_bench::loopback::client(1)?;
    let session = match Session::open(&client, &peer.endpoint).await {
        Ok(s) => Arc::new(s),
        Err(e) => return Err(fail("opening a session", e, &peer)),
    };
    let (run, cpu0) = concurrent(
        vec![Caller::Http(session.clone())],
        call,
        plan.warmup,
        plan.calls,
        plan.max_phase,
        || cpu_time(pid),
    )
    .await;
    let seq_via = phase(run, delta(cpu0, cpu_time(pid)), name, "c=1", notes);
    session.close().await;

    // Many sessions at once.
    let client = hwc_bench::loopback::client(plan.sessions)?;
    let mut opened = open_sessions(&client, &peer.endpoint, plan.sessions).await;
    let open = Summary::of(&mut opened.latencies_ns);
    eprintln!(
        "{name}: {} sessions opened (p50 {:.3} ms, p99 {:.3} ms), {} failed",
        opened.sessions.len(),
        open.p50 as f64 / 1e6,
        open.p99 as f64 / 1e6,
        opened.errors
    );
    if let Some(e) = &opened.first_error {
        notes.push(format!(
            "{name}: {} of {} sessions failed to open; the first: {e}",
            opened.errors, plan.sessions
        ));
        if opened.sessions.is_empty() {
            return Err(fail("no session opened", e.clone(), &peer));
        }
    }
    let callers = opened.sessions.iter().cloned().map(Caller::Http).collect();
    let ((run, (cpu0, sampler)), what) = (
        concurrent(
            callers,
            call,
            plan.warmup_per_session,
            plan.calls_concurrent,
            plan.max_phase,
            || (cpu_time(pid), TreeSampler::start(pid, server.to_vec())),
        )
        .await,
        format!("c={}", plan.sessions),
    );
    let cpu1 = cpu_time(pid);
    let load = sampler?.finish();
    let conc_via = phase(run, delta(cpu0, cpu1), name, &what, notes);
    let hwm_kb = peer.hwm_kb();
    close_all(&opened.sessions).await;
    let how = peer
        .stop(Duration::from_secs(10))
        .unwrap_or_else(|e| format!("{e:#}"));
    eprintln!("{name} {how}");
    Ok(Measured {
        seq_direct,
        seq_via,
        conc_direct,
        conc_via,
        sessions: opened.sessions.len(),
        sessions_failed: opened.errors,
        open,
        idle,
        load,
        hwm_kb,
    })
}
