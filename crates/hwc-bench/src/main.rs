//! `hwc-bench`: how much latency and memory hwc-model-router adds over calling
//! the upstream directly, both measured in the same run on 127.0.0.1.
//!
//! A fast in-process upstream answers OpenAI chat requests; the router runs
//! as a subprocess in front of it. Each phase sends the same fixed number of
//! requests straight to the upstream and then through the router, and the
//! difference is what the router adds. nginx as a plain reverse proxy (when
//! installed) gets the same treatment as the limit any proxy costs, and the
//! report gives the router's ratio to it; optionally LiteLLM's proxy too.

mod load;
mod procs;
mod report;
mod upstream;

use anyhow::Context;
use clap::Parser;
use hwc_bench::runinfo::{self, output_of};
use load::{Summary, Target};
use procs::{Proc, RssSampler};
use report::{PairRow, Report, RssRow, Side, StreamRow, StreamSide};
use reqwest::header::HeaderValue;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use upstream::{Upstream, UpstreamConfig};

/// Measures the latency and memory hwc-model-router adds over a direct call.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The router binary to start.
    #[arg(long, default_value = "target/release/hwc-model-router")]
    router_bin: PathBuf,
    /// LiteLLM's `litellm` proxy command to compare with (default: `litellm`
    /// on PATH, if any).
    #[arg(long)]
    litellm_bin: Option<PathBuf>,
    /// nginx to measure as the plain-proxy baseline (default: `nginx` on
    /// PATH or in /usr/sbin, if any).
    #[arg(long)]
    nginx_bin: Option<PathBuf>,
    /// Skip the nginx baseline even if nginx is installed.
    #[arg(long)]
    no_nginx: bool,
    /// Skip LiteLLM even if it is on PATH.
    #[arg(long)]
    no_litellm: bool,
    /// Small counts: about 10 s, or 35 s with LiteLLM.
    #[arg(long)]
    quick: bool,
    /// Requests of the concurrency-1 phase [default: 2000; --quick 300].
    #[arg(long)]
    requests_c1: Option<usize>,
    /// Requests of the high-concurrency phase [default: 20000; --quick 3000].
    #[arg(long)]
    requests_high: Option<usize>,
    /// Concurrency of the high-concurrency phase.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Streams of the streaming phase per target, one at a time, alternating
    /// direct and proxied [default: 200; --quick 20].
    #[arg(long)]
    streams: Option<usize>,
    /// Data events per stream.
    #[arg(long, default_value_t = 10)]
    chunks: usize,
    /// Milliseconds between two data events of a stream.
    #[arg(long, default_value_t = 20)]
    chunk_gap_ms: u64,
    /// Unmeasured requests before each measured run, per target
    /// [default: 500; --quick 100].
    #[arg(long)]
    warmup: Option<usize>,
    /// A measured run stops issuing requests after this many seconds.
    #[arg(long, default_value_t = 45)]
    max_phase_secs: u64,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Worker threads of the upstream's runtime.
    #[arg(long, default_value_t = 1)]
    upstream_threads: usize,
    /// `RUST_LOG` for the router (default: unset, so its built-in `info`).
    #[arg(long)]
    router_rust_log: Option<String>,
    /// Extra `KEY=VALUE` environment for the router, e.g.
    /// `TOKIO_WORKER_THREADS=1` (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    router_env: Vec<String>,
    /// Also write the Markdown report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Keep the temporary directory (configs and child logs) and print it.
    #[arg(long)]
    keep_dir: bool,
}

/// Counts after `--quick` and the explicit flags are applied.
#[derive(Debug, Clone, Copy)]
struct Plan {
    c1: usize,
    high: usize,
    concurrency: usize,
    streams: usize,
    warmup: usize,
    max_phase: Duration,
}

impl Args {
    fn plan(&self) -> Plan {
        let (c1, high, streams, warmup) = if self.quick {
            (300, 3000, 20, 100)
        } else {
            (2000, 20000, 200, 500)
        };
        Plan {
            c1: self.requests_c1.unwrap_or(c1),
            high: self.requests_high.unwrap_or(high),
            concurrency: self.concurrency.max(1),
            streams: self.streams.unwrap_or(streams),
            warmup: self.warmup.unwrap_or(warmup),
            max_phase: Duration::from_secs(self.max_phase_secs.max(1)),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let upstream = Upstream::start(UpstreamConfig {
        chunks: args.chunks.max(1),
        gap: Duration::from_millis(args.chunk_gap_ms),
        threads: args.upstream_threads,
    })?;
    let runtime = runinfo::client_runtime(args.client_threads)?;
    let dir = tempfile::Builder::new().prefix("hwc-bench-").tempdir()?;
    let result = runtime.block_on(runinfo::until_interrupted(run(
        &args,
        &upstream,
        dir.path(),
    )));
    if args.keep_dir {
        let kept = dir.keep();
        eprintln!("kept {}", kept.display());
    }
    let mut report = result?;
    report.notes.push(format!(
        "Whole run took {:.1} s.",
        started.elapsed().as_secs_f64()
    ));
    runinfo::emit(&report.markdown(), args.out.as_deref())?;
    drop(runtime);
    drop(upstream);
    Ok(())
}

async fn run(args: &Args, upstream: &Upstream, dir: &std::path::Path) -> anyhow::Result<Report> {
    let plan = args.plan();
    let mut report = Report {
        command: runinfo::command_line(),
        machine: runinfo::machine(),
        high_concurrency: plan.concurrency,
        ..Report::default()
    };
    report.setup.push(format!(
        "Load: non-stream {} requests at concurrency 1 and {} at concurrency {}; {} streams per target at concurrency 1 (alternating direct and proxied) of {} data events {} ms apart; {} warm-up requests per target and phase; a run stops issuing after {} s.",
        plan.c1, plan.high, plan.concurrency, plan.streams, args.chunks, args.chunk_gap_ms, plan.warmup, plan.max_phase.as_secs()
    ));
    report.setup.push(format!(
        "Threads: load generator {} tokio worker(s), upstream {} (in-process, own runtime); the proxy runs as a separate process with its defaults.",
        args.client_threads.max(1), args.upstream_threads.max(1)
    ));
    report.setup.push(format!(
        "Router log filter: {}.",
        args.router_rust_log.as_deref().map_or_else(
            || "built-in default (`info`, one line per request to a file)".to_owned(),
            |f| format!("RUST_LOG=`{f}`")
        )
    ));

    let direct = Target {
        url: format!("{}/chat/completions", upstream.base_url()),
        auth: None,
    };
    let auth = Some(HeaderValue::from_str(&format!("Bearer {}", procs::SECRET))?);

    // hwc-model-router.
    let router_env = args
        .router_env
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--router-env {kv}: expected KEY=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !router_env.is_empty() {
        report.setup.push(format!(
            "Router environment: {}.",
            args.router_env
                .iter()
                .map(|kv| format!("`{kv}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let router_dir = dir.join("router");
    std::fs::create_dir_all(&router_dir)?;
    let mut router = Proc::router(
        &args.router_bin,
        &router_dir,
        &upstream.base_url(),
        args.router_rust_log.as_deref(),
        &router_env,
    )?;
    let ready = router
        .wait_ready("/readyz", Duration::from_secs(30))
        .await?;
    eprintln!(
        "hwc-model-router ready in {} ms (pid {})",
        ready.as_millis(),
        router.pid
    );
    measure(&plan, &direct, &mut router, auth.clone(), true, &mut report).await?;

    // nginx as a plain reverse proxy: the limit.
    let nginx = if args.no_nginx {
        None
    } else {
        procs::find_nginx(args.nginx_bin.as_deref())
    };
    match nginx {
        None => {
            let why = if args.no_nginx {
                "--no-nginx"
            } else {
                "no nginx installed"
            };
            eprintln!("nginx baseline skipped ({why})");
            report
                .notes
                .push(format!("nginx baseline skipped ({why})."));
        }
        Some(bin) => {
            let nginx_dir = dir.join("nginx");
            std::fs::create_dir_all(&nginx_dir)?;
            let mut nginx = Proc::nginx(&bin, &nginx_dir, &upstream.base_url())?;
            nginx
                .wait_ready("/healthz", Duration::from_secs(10))
                .await?;
            measure(&plan, &direct, &mut nginx, auth.clone(), false, &mut report).await?;
            report.notes.push(format!(
                "nginx: `{}` ({}), one process (`master_process off`), `proxy_pass` with upstream keepalive 128, no access log, no buffering: a reverse proxy that reads nothing.",
                bin.display(),
                nginx_version(&bin)
            ));
        }
    }

    // LiteLLM, if there is one.
    let litellm = if args.no_litellm {
        None
    } else {
        procs::find_litellm(args.litellm_bin.as_deref())
    };
    match litellm {
        None => {
            let why = if args.no_litellm {
                "--no-litellm"
            } else {
                "no --litellm-bin and no `litellm` on PATH"
            };
            eprintln!("LiteLLM skipped ({why})");
            report.notes.push(format!("LiteLLM skipped ({why})."));
        }
        Some(bin) => {
            let litellm_dir = dir.join("litellm");
            std::fs::create_dir_all(&litellm_dir)?;
            let mut litellm = Proc::litellm(&bin, &litellm_dir, &upstream.base_url())?;
            match litellm
                .wait_ready("/health/liveliness", Duration::from_secs(60))
                .await
            {
                Err(e) => {
                    eprintln!("LiteLLM skipped: {e:#}");
                    report.notes.push(format!(
                        "LiteLLM ({}) did not start; skipped.",
                        bin.display()
                    ));
                    let _ = litellm.stop(Duration::from_secs(5));
                }
                Ok(ready) => {
                    eprintln!(
                        "LiteLLM ready in {} ms (pid {})",
                        ready.as_millis(),
                        litellm.pid
                    );
                    measure(&plan, &direct, &mut litellm, auth, false, &mut report).await?;
                    report.notes.push(format!(
                        "LiteLLM: `{}` ({}), default settings, `LITELLM_MASTER_KEY=sk-bench`, one process; its RSS is that process's only.",
                        bin.display(),
                        litellm_version(&bin)
                    ));
                }
            }
        }
    }
    Ok(report)
}

/// Every phase through `proxy` (the streaming one too when `streams`), its
/// rows and memory added to `report`; then `proxy` is stopped.
async fn measure(
    plan: &Plan,
    direct: &Target,
    proxy: &mut Proc,
    auth: Option<HeaderValue>,
    streams: bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    let via = Target {
        url: format!("{}/v1/chat/completions", proxy.url),
        auth,
    };
    let (pairs, rss) = proxy_phases(plan, direct, &via, proxy).await?;
    report.pairs.extend(pairs);
    if streams {
        let stream = stream_phase(plan, direct, &via, proxy.name).await?;
        report.streams.push(stream);
    }
    let hwm = proxy.hwm_kb();
    report.rss.push(RssRow { hwm_kb: hwm, ..rss });
    let how = proxy.stop(Duration::from_secs(10))?;
    eprintln!("{} {how}", proxy.name);
    Ok(())
}

/// The non-streaming phases against one proxy, and its idle and peak RSS.
async fn proxy_phases(
    plan: &Plan,
    direct: &Target,
    via: &Target,
    proxy: &Proc,
) -> anyhow::Result<(Vec<PairRow>, RssRow)> {
    // Let it settle before the idle reading.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_kb = proxy.rss_kb();
    let mut rows = Vec::new();
    let mut peak_kb = None;
    for (concurrency, total) in [(1, plan.c1), (plan.concurrency, plan.high)] {
        let phase = format!("non-stream c={concurrency}");
        let body = load::chat_body(false);
        let d = measured(plan, direct, &body, total, concurrency, "direct", &phase).await?;
        let warm_client = load::client(concurrency)?;
        let _ = load::non_stream(
            &warm_client,
            via,
            body.clone(),
            plan.warmup,
            concurrency,
            plan.max_phase,
        )
        .await;
        let sampler = if concurrency == plan.concurrency {
            Some(RssSampler::start(proxy.pid, Duration::from_millis(50))?)
        } else {
            None
        };
        let cpu0 = proxy.cpu_time();
        let p = timed(
            &warm_client,
            plan,
            via,
            &body,
            total,
            concurrency,
            proxy.name,
            &phase,
        )
        .await;
        let cpu1 = proxy.cpu_time();
        if let Some(s) = sampler {
            peak_kb = Some(s.finish());
        }
        let proxy_cpu_per_req = match (cpu0, cpu1) {
            (Some(a), Some(b)) if p.latency.n > 0 => {
                Some((b.saturating_sub(a)) / u32::try_from(p.latency.n).unwrap_or(u32::MAX))
            }
            _ => None,
        };
        rows.push(PairRow {
            phase,
            via: proxy.name,
            requested: total,
            direct: d,
            proxied: p,
            proxy_cpu_per_req,
        });
    }
    Ok((
        rows,
        RssRow {
            process: proxy.name,
            idle_kb,
            peak_kb,
            hwm_kb: None,
        },
    ))
}

/// A fresh client, a warm-up, then the measured run.
async fn measured(
    plan: &Plan,
    target: &Target,
    body: &bytes::Bytes,
    total: usize,
    concurrency: usize,
    name: &str,
    phase: &str,
) -> anyhow::Result<Side> {
    let client = load::client(concurrency)?;
    let _ = load::non_stream(
        &client,
        target,
        body.clone(),
        plan.warmup,
        concurrency,
        plan.max_phase,
    )
    .await;
    Ok(timed(&client, plan, target, body, total, concurrency, name, phase).await)
}

/// The measured run on an already warm client.
#[allow(clippy::too_many_arguments)]
async fn timed(
    client: &reqwest::Client,
    plan: &Plan,
    target: &Target,
    body: &bytes::Bytes,
    total: usize,
    concurrency: usize,
    name: &str,
    phase: &str,
) -> Side {
    let mut run = load::non_stream(
        client,
        target,
        body.clone(),
        total,
        concurrency,
        plan.max_phase,
    )
    .await;
    let (latency, rps) = run.summarise(phase, name, "req");
    Side {
        latency,
        errors: run.errors,
        rps,
    }
}

/// Streams one at a time, alternating direct and through the proxy.
async fn stream_phase(
    plan: &Plan,
    direct: &Target,
    via: &Target,
    name: &'static str,
) -> anyhow::Result<StreamRow> {
    let body = load::chat_body(true);
    let (direct_client, via_client) = (load::client(1)?, load::client(1)?);
    let pairs = [(&direct_client, direct), (&via_client, via)];
    let _ = load::streams(&pairs, body.clone(), 3, plan.max_phase).await;
    let runs = load::streams(&pairs, body, plan.streams, plan.max_phase * 2).await;
    let mut sides = Vec::new();
    for (mut run, who) in runs.into_iter().zip(["direct", name]) {
        let headers = Summary::of(&mut run.headers_ns);
        let side = StreamSide {
            ttft: Summary::of(&mut run.ttft_ns),
            gap: Summary::of(&mut run.gaps_ns),
            total: Summary::of(&mut run.total_ns),
            errors: run.errors,
        };
        eprintln!(
            "stream c=1         {who:<17} n={:<6} headers p50={:.3} ms ttft p50={:.3} ms p99={:.3} ms gap mean={:.3} ms p99={:.3} ms total p50={:.1} ms events={} errors={}",
            side.ttft.n,
            headers.p50 as f64 / 1e6,
            side.ttft.p50 as f64 / 1e6,
            side.ttft.p99 as f64 / 1e6,
            side.gap.mean as f64 / 1e6,
            side.gap.p99 as f64 / 1e6,
            side.total.p50 as f64 / 1e6,
            run.events,
            run.errors
        );
        if let Some(e) = &run.first_error {
            eprintln!("  first error: {e}");
        }
        sides.push(side);
    }
    let proxied = sides.pop().unwrap_or_default();
    let direct = sides.pop().unwrap_or_default();
    Ok(StreamRow {
        via: name,
        requested: plan.streams,
        direct,
        proxied,
    })
}

fn litellm_version(bin: &std::path::Path) -> String {
    // `litellm --version` prints a banner; the venv's pip knows exactly.
    bin.parent()
        .map(|d| d.join("pip"))
        .and_then(|pip| {
            output_of(pip.to_str()?, &["show", "litellm"])?
                .lines()
                .find_map(|l| l.strip_prefix("Version: ").map(|v| format!("litellm {v}")))
        })
        .unwrap_or_else(|| "version unknown".into())
}

/// `nginx -v` (which writes to stderr).
fn nginx_version(bin: &std::path::Path) -> String {
    std::process::Command::new(bin)
        .arg("-v")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "version unknown".into())
}
