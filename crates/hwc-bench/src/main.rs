//! `hwc-bench`: how much latency and memory hwc-model-router adds over calling
//! the upstream directly, both measured in the same run on 127.0.0.1.
//!
//! A fast in-process upstream answers OpenAI chat requests; the router runs
//! as a subprocess in front of it. Each phase sends the same fixed number of
//! requests straight to the upstream and through the router, and the
//! difference is what the router adds. nginx as a plain reverse proxy (when
//! installed) gets the same treatment as the limit any proxy costs, in the
//! same rounds as the router (`rounds`), and the report gives the router's
//! ratio to it; optionally LiteLLM's proxy too.

mod load;
mod procs;
mod report;
mod rounds;
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
    /// Rounds each non-streaming phase is split into; in each, the direct
    /// path and every proxy in turn send their share of the requests, so a
    /// drift in the machine's speed hits them alike [default: 10; --quick 3].
    #[arg(long)]
    rounds: Option<usize>,
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
    rounds: usize,
    max_phase: Duration,
}

impl Args {
    fn plan(&self) -> Plan {
        let (c1, high, streams, warmup, rounds) = if self.quick {
            (300, 3000, 20, 100, 3)
        } else {
            (2000, 20000, 200, 500, 10)
        };
        Plan {
            c1: self.requests_c1.unwrap_or(c1),
            high: self.requests_high.unwrap_or(high),
            concurrency: self.concurrency.max(1),
            streams: self.streams.unwrap_or(streams),
            warmup: self.warmup.unwrap_or(warmup),
            rounds: self.rounds.unwrap_or(rounds).max(1),
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
        "Interleaved: each non-streaming phase in {} rounds; in each round the direct path and each proxy (the router, and nginx when measured) in turn (the order rotating) send an equal share of the phase's requests, so the machine's drift hits them alike. LiteLLM runs after them, interleaved with the direct path only.",
        plan.rounds
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

    // nginx as a plain reverse proxy: the limit, measured in the same
    // rounds as the router.
    let nginx = if args.no_nginx {
        None
    } else {
        procs::find_nginx(args.nginx_bin.as_deref())
    };
    let mut nginx = match nginx {
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
            None
        }
        Some(bin) => {
            let nginx_dir = dir.join("nginx");
            std::fs::create_dir_all(&nginx_dir)?;
            let mut nginx = Proc::nginx(&bin, &nginx_dir, &upstream.base_url())?;
            nginx
                .wait_ready("/healthz", Duration::from_secs(10))
                .await?;
            report.notes.push(format!(
                "nginx: `{}` ({}), one process (`master_process off`), `proxy_pass` with upstream keepalive 128, no access log, no buffering: a reverse proxy that reads nothing.",
                bin.display(),
                nginx_version(&bin)
            ));
            Some(nginx)
        }
    };
    let proxies = std::iter::once(&mut router).chain(nginx.as_mut()).collect();
    measure(&plan, &direct, proxies, auth.clone(), true, &mut report).await?;

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
                    measure(&plan, &direct, vec![&mut litellm], auth, false, &mut report).await?;
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

/// A proxy under test and the chat completions URL through it.
struct Via<'a> {
    proc: &'a Proc,
    target: Target,
}

impl<'a> Via<'a> {
    fn new(proc: &'a Proc, auth: Option<HeaderValue>) -> Self {
        let target = Target {
            url: format!("{}/v1/chat/completions", proc.url),
            auth,
        };
        Self { proc, target }
    }
}

/// Every phase through `proxies`, interleaved with each other and with the
/// direct path in `plan.rounds` rounds (the streaming one too through the
/// first proxy when `streams`), their rows and memory added to `report`;
/// then the proxies are stopped.
async fn measure(
    plan: &Plan,
    direct: &Target,
    proxies: Vec<&mut Proc>,
    auth: Option<HeaderValue>,
    streams: bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    {
        let vias: Vec<Via<'_>> = proxies.iter().map(|p| Via::new(p, auth.clone())).collect();
        let (pairs, rss) = proxy_phases(plan, direct, &vias).await?;
        report.pairs.extend(pairs);
        if let (true, Some(first)) = (streams, vias.first()) {
            let stream = stream_phase(plan, direct, &first.target, first.proc.name).await?;
            report.streams.push(stream);
        }
        for (via, rss) in vias.iter().zip(rss) {
            let hwm = via.proc.hwm_kb();
            report.rss.push(RssRow { hwm_kb: hwm, ..rss });
        }
    }
    for proxy in proxies {
        let how = proxy.stop(Duration::from_secs(10))?;
        eprintln!("{} {how}", proxy.name);
    }
    Ok(())
}

/// What one target collected over the rounds of a phase: its runs merged,
/// and its process's CPU time summed (`None` once a reading failed, and
/// for the direct path, which has no process of its own).
struct Pooled {
    run: load::Run,
    cpu: Option<Duration>,
}

/// The non-streaming phases: in each round the direct path and every proxy
/// take their turn at the round's share of the requests, on clients warmed
/// up once per phase (see `rounds`). Returns a row per proxy and phase, all
/// against the same direct measurement, and each proxy's idle and peak RSS.
async fn proxy_phases(
    plan: &Plan,
    direct: &Target,
    vias: &[Via<'_>],
) -> anyhow::Result<(Vec<PairRow>, Vec<RssRow>)> {
    // Let them settle before the idle reading.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_kb: Vec<Option<u64>> = vias.iter().map(|v| v.proc.rss_kb()).collect();
    let mut peak_kb: Vec<Option<u64>> = vec![None; vias.len()];
    let targets: Vec<&Target> = std::iter::once(direct)
        .chain(vias.iter().map(|v| &v.target))
        .collect();
    let names: Vec<&str> = std::iter::once("direct")
        .chain(vias.iter().map(|v| v.proc.name))
        .collect();
    let slot_limit = plan.max_phase / u32::try_from(plan.rounds).unwrap_or(u32::MAX);
    let mut rows = Vec::new();
    for (concurrency, total) in [(1, plan.c1), (plan.concurrency, plan.high)] {
        let phase = format!("non-stream c={concurrency}");
        let body = load::chat_body(false);
        let mut clients = Vec::with_capacity(targets.len());
        for target in &targets {
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
            clients.push(client);
        }
        let samplers = if concurrency == plan.concurrency {
            vias.iter()
                .map(|v| RssSampler::start(v.proc.pid, Duration::from_millis(50)).map(Some))
                .collect::<anyhow::Result<Vec<_>>>()?
        } else {
            vias.iter().map(|_| None).collect()
        };
        let mut pooled: Vec<Pooled> = (0..targets.len())
            .map(|i| Pooled {
                run: load::Run::default(),
                cpu: (i > 0).then_some(Duration::ZERO),
            })
            .collect();
        for round in 0..plan.rounds {
            let n = rounds::share(total, plan.rounds, round);
            for i in rounds::order(targets.len(), round) {
                let proc = i.checked_sub(1).map(|v| vias[v].proc);
                let cpu0 = proc.and_then(|p| p.cpu_time());
                let run = load::non_stream(
                    &clients[i],
                    targets[i],
                    body.clone(),
                    n,
                    concurrency,
                    slot_limit,
                )
                .await;
                let used = match (cpu0, proc.and_then(|p| p.cpu_time())) {
                    (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                    _ => None,
                };
                let p = &mut pooled[i];
                p.cpu = p.cpu.zip(used).map(|(a, b)| a + b);
                p.run.wall += run.wall;
                p.run.absorb(run);
            }
        }
        for (peak, sampler) in peak_kb.iter_mut().zip(samplers) {
            if let Some(s) = sampler {
                *peak = Some(s.finish());
            }
        }
        let mut sides = pooled.into_iter().zip(&names).map(|(mut p, name)| {
            let (latency, rps) = p.run.summarise(&phase, name, "req");
            let side = Side {
                latency,
                errors: p.run.errors,
                rps,
            };
            let n = u32::try_from(latency.n).unwrap_or(u32::MAX);
            (side, p.cpu.filter(|_| n > 0).map(|c| c / n))
        });
        let (direct_side, _) = sides.next().unwrap_or_default();
        for (via, (proxied, proxy_cpu_per_req)) in vias.iter().zip(sides) {
            rows.push(PairRow {
                phase: phase.clone(),
                via: via.proc.name,
                requested: total,
                direct: direct_side,
                proxied,
                proxy_cpu_per_req,
            });
        }
    }
    let rss = vias
        .iter()
        .zip(idle_kb.into_iter().zip(peak_kb))
        .map(|(v, (idle_kb, peak_kb))| RssRow {
            process: v.proc.name,
            idle_kb,
            peak_kb,
            hwm_kb: None,
        })
        .collect();
    Ok((rows, rss))
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
