//! Benchmark of hwc-model-manager's file downloads: throughput against
//! `curl` fetching the same file from the same local server (both write to
//! disk; the manager also hashes, fsyncs and renames; its time is its own
//! `hwc_manager_pull_duration_seconds`, without start-up), and the
//! manager's peak RSS for two file sizes, to show it stays flat. Results:
//! docs/benchmarks.md.

use anyhow::{bail, Context};
use clap::Parser;
use hwc_bench::procinfo::status_kb;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Flags.
#[derive(Parser)]
struct Args {
    /// The manager binary.
    #[arg(long, default_value = "target/release/hwc-model-manager")]
    manager_bin: PathBuf,
    /// File sizes in MiB.
    #[arg(long, value_delimiter = ',', default_value = "256,2048")]
    sizes_mib: Vec<u64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let serve_dir = dir.path().join("www");
    std::fs::create_dir_all(&serve_dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let addr = rt.block_on(async {
        let app =
            axum::Router::new().fallback_service(tower_http::services::ServeDir::new(&serve_dir));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        tokio::spawn(async move { axum::serve(l, app).await });
        anyhow::Ok(addr)
    })?;
    println!(
        "Command: `target/release/hwc-bench-manager --sizes-mib {}` (nproc = {})\n",
        args.sizes_mib
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| file | curl MB/s | manager MB/s | ratio | manager VmHWM |");
    println!("|---|--:|--:|--:|--:|");
    for &mib in &args.sizes_mib {
        let name = format!("model-{mib}.bin");
        let sha = write_file(&serve_dir.join(&name), mib)?;
        let url = format!("http://{addr}/{name}");
        let curl = time_curl(&url, &dir.path().join("curl.out"))?;
        let (secs, hwm_kb) = time_manager(&args.manager_bin, dir.path(), &url, &sha)?;
        let mb = (mib * 1024 * 1024) as f64 / 1e6;
        println!(
            "| {mib} MiB | {:.0} | {:.0} | {:.2} | {:.1} MB |",
            mb / curl,
            mb / secs,
            curl / secs,
            hwm_kb as f64 / 1024.0
        );
        std::fs::remove_file(serve_dir.join(&name))?;
    }
    println!("\nTargets: at least 0.9 of curl's rate; RSS under 30 MB and flat with file size.");
    Ok(())
}

/// Writes `mib` MiB of pseudo-random bytes; returns their sha256.
fn write_file(path: &Path, mib: u64) -> anyhow::Result<String> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut h = Sha256::new();
    let mut block = vec![0u8; 1024 * 1024];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..mib {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        h.update(&block);
        f.write_all(&block)?;
    }
    f.flush()?;
    Ok(hex::encode(h.finalize()))
}

fn time_curl(url: &str, out: &Path) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let status = Command::new("curl")
        .args(["-sf", "-o"])
        .arg(out)
        .arg(url)
        .status()
        .context("curl missing")?;
    let secs = t0.elapsed().as_secs_f64();
    if !status.success() {
        bail!("curl failed: {status}");
    }
    std::fs::remove_file(out)?;
    Ok(secs)
}

/// Runs the manager with one file model until `/status` says present;
/// the download's seconds (from the manager's own histogram) and its VmHWM.
fn time_manager(bin: &Path, dir: &Path, url: &str, sha: &str) -> anyhow::Result<(f64, u64)> {
    let models = dir.join("models");
    let _ = std::fs::remove_dir_all(&models);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let cfg = dir.join("manager.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[ollama]\nurl = \"http://127.0.0.1:9\"\n[manager]\nreserve = 0\n\
             [[file_models]]\nname = \"m\"\ndir = \"{}\"\n[[file_models.files]]\nurl = \"{url}\"\nsha256 = \"{sha}\"\n",
            models.display()
        ),
    )?;
    let t0 = Instant::now();
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    loop {
        if let Ok(text) = http_get(port, "/status") {
            if text.contains("\"state\":\"present\"") {
                break;
            }
            if text.contains("\"state\":\"failed\"") {
                let _ = child.kill();
                bail!("download failed: {text}");
            }
        }
        if t0.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            bail!("no download after 300 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The manager's own measure of the download (request to renamed,
    // hash and fsync included), without its start-up and plan.
    let metrics = http_get(port, "/metrics")?;
    let secs = metrics
        .lines()
        .find(|l| l.starts_with("hwc_manager_pull_duration_seconds_sum"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or_else(|| t0.elapsed().as_secs_f64());
    let hwm = status_kb(pid, "VmHWM:").unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    Ok((secs, hwm))
}

/// A plain HTTP GET body, without a client library.
fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text)
}
