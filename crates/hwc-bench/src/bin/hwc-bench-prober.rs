//! Benchmark of hwc-health-prober: 500 HTTP targets probed every second
//! against a local server. Measures the prober's CPU share, RSS and how late
//! probes start against their schedule (p99 from its own
//! `hwc_prober_schedule_lateness_seconds` histogram), beside a baseline
//! prober with no targets run the same way. Results: docs/benchmarks.md.

use anyhow::Context;
use clap::Parser;
use hwc_bench::procinfo::{cpu_time, status_kb};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Flags.
#[derive(Parser)]
struct Args {
    /// The prober binary.
    #[arg(long, default_value = "target/release/hwc-health-prober")]
    prober_bin: PathBuf,
    /// Targets to probe.
    #[arg(long, default_value_t = 500)]
    targets: usize,
    /// Seconds measured after a warm-up of 5 s.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
}

/// A result for one prober run.
struct Run {
    targets: usize,
    cpu_percent: f64,
    rss_mb: f64,
    hwm_mb: f64,
    lateness_p99_ms: Option<f64>,
    probes: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let upstream = rt.block_on(async {
        let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        tokio::spawn(async move { axum::serve(l, app).await });
        anyhow::Ok(addr)
    })?;
    let baseline = measure(&args, &rt, 0, upstream)?;
    let loaded = measure(&args, &rt, args.targets, upstream)?;
    println!("{}", report(&args, &baseline, &loaded));
    Ok(())
}

fn measure(
    args: &Args,
    rt: &tokio::runtime::Runtime,
    n: usize,
    upstream: std::net::SocketAddr,
) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let cfg = dir.path().join("prober.toml");
    let mut f = std::fs::File::create(&cfg)?;
    writeln!(
        f,
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[defaults]\ninterval = \"1s\"\ntimeout = \"900ms\""
    )?;
    for i in 0..n {
        writeln!(
            f,
            "[[targets]]\nname = \"t{i}\"\nkind = \"http\"\nurl = \"http://{upstream}/health\""
        )?;
    }
    drop(f);
    let mut child = Command::new(&args.prober_bin)
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", args.prober_bin.display()))?;
    let pid = child.id();
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    std::thread::sleep(Duration::from_secs(5));
    let t0 = Instant::now();
    let cpu0 = cpu_time(pid).context("cannot read the prober's CPU time")?;
    let before = rt.block_on(scrape(&metrics_url))?;
    std::thread::sleep(Duration::from_secs(args.seconds));
    let cpu1 = cpu_time(pid).context("cannot read the prober's CPU time")?;
    let wall = t0.elapsed();
    let after = rt.block_on(scrape(&metrics_url))?;
    let rss_kb = status_kb(pid, "VmRSS:").unwrap_or(0) as f64;
    let hwm = status_kb(pid, "VmHWM:").unwrap_or(0) as f64;
    let _ = child.kill();
    let _ = child.wait();
    let name = "hwc_prober_schedule_lateness_seconds_bucket";
    let lateness: Vec<(f64, f64)> = buckets(&after, name)
        .into_iter()
        .zip(buckets(&before, name))
        .map(|((le, a), (_, b))| (le, a - b))
        .collect();
    let total = lateness.last().map_or(0.0, |x| x.1);
    let p99 = lateness
        .iter()
        .find(|(_, c)| total > 0.0 && *c >= 0.99 * total)
        .map(|(le, _)| le * 1000.0);
    Ok(Run {
        targets: n,
        cpu_percent: (cpu1.saturating_sub(cpu0)).as_secs_f64() / wall.as_secs_f64() * 100.0,
        rss_mb: rss_kb / 1024.0,
        hwm_mb: hwm / 1024.0,
        lateness_p99_ms: p99,
        probes: total,
    })
}

async fn scrape(url: &str) -> anyhow::Result<String> {
    Ok(reqwest::get(url).await?.text().await?)
}

/// Cumulative bucket counts `(le, count)` of a histogram, in order.
fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

fn report(args: &Args, base: &Run, run: &Run) -> String {
    let p99 = |r: &Run| {
        r.lateness_p99_ms
            .map_or("n/a".into(), |v| format!("<= {v:.1} ms"))
    };
    let row = |label: String, r: &Run| {
        format!(
            "| {label} | {:.0} | {:.2} % | {:.1} MB | {:.1} MB | {} |",
            r.probes,
            r.cpu_percent,
            r.rss_mb,
            r.hwm_mb,
            p99(r)
        )
    };
    [
        format!(
            "Command: `target/release/hwc-bench-prober --targets {} --seconds {}` (nproc = {})\n",
            args.targets,
            args.seconds,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ),
        "| prober | probes in window | CPU (% of one core) | RSS at end | VmHWM (peak) | lateness p99 (bucket bound) |".into(),
        "|---|--:|--:|--:|--:|--:|".into(),
        row(format!("baseline, {} targets", base.targets), base),
        row(format!("{} targets at 1 s", run.targets), run),
        "\nTargets: CPU under 5 % of one core, RSS under 20 MB, lateness p99 under 50 ms.".into(),
    ]
    .join("\n")
}
