//! The results as Markdown tables.

use crate::load::Summary;
use hwc_bench::stats::{added, mb, ms};
use std::fmt::Write as _;
use std::time::Duration;

/// One side of a non-streaming comparison.
#[derive(Debug, Clone, Copy, Default)]
pub struct Side {
    /// Latency order statistics.
    pub latency: Summary,
    /// Failed requests.
    pub errors: usize,
    /// Completed requests per second of wall time.
    pub rps: f64,
}

/// A non-streaming phase: the same load direct and through a proxy.
#[derive(Debug, Clone)]
pub struct PairRow {
    /// Phase name, e.g. `non-stream c=64`.
    pub phase: String,
    /// The proxy measured against the direct path.
    pub via: &'static str,
    /// Requests asked for (a run may stop early at the phase time limit).
    pub requested: usize,
    /// Straight to the upstream.
    pub direct: Side,
    /// Through the proxy.
    pub proxied: Side,
    /// The proxy's own CPU time (user + system) per request of this phase.
    pub proxy_cpu_per_req: Option<Duration>,
}

/// One side of a streaming comparison.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamSide {
    /// Send to first data event.
    pub ttft: Summary,
    /// Gaps between consecutive data events.
    pub gap: Summary,
    /// Send to `[DONE]`.
    pub total: Summary,
    /// Failed streams.
    pub errors: usize,
}

/// The streaming phase, direct and through a proxy.
#[derive(Debug, Clone)]
pub struct StreamRow {
    /// The proxy measured against the direct path.
    pub via: &'static str,
    /// Streams asked for.
    pub requested: usize,
    /// Straight to the upstream.
    pub direct: StreamSide,
    /// Through the proxy.
    pub proxied: StreamSide,
}

/// Resident memory of one proxy process.
#[derive(Debug, Clone)]
pub struct RssRow {
    /// The process.
    pub process: &'static str,
    /// `VmRSS` shortly after it became ready, kB.
    pub idle_kb: Option<u64>,
    /// Largest `VmRSS` sampled during the high-concurrency phase, kB.
    pub peak_kb: Option<u64>,
    /// `VmHWM` at the end of its run, kB.
    pub hwm_kb: Option<u64>,
}

/// Everything printed at the end.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The command line, shell-quoted.
    pub command: String,
    /// Lines describing the machine and the build.
    pub machine: Vec<String>,
    /// Lines describing the load.
    pub setup: Vec<String>,
    /// Non-streaming phases.
    pub pairs: Vec<PairRow>,
    /// Streaming phases.
    pub streams: Vec<StreamRow>,
    /// Memory rows.
    pub rss: Vec<RssRow>,
    /// Anything skipped or odd.
    pub notes: Vec<String>,
    /// The high concurrency level, for the memory table's heading.
    pub high_concurrency: usize,
}

/// Targets for hwc-model-router: added p99 at high concurrency, resident
/// memory under load, added time to first token (all at most).
const TARGET_ADDED_P99_MS: f64 = 1.0;
const TARGET_RSS_MB: f64 = 30.0;
const TARGET_ADDED_TTFT_MS: f64 = 1.0;

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

impl Report {
    /// The hwc-model-router rows judged against the targets.
    fn targets(&self, s: &mut String) {
        const ROUTER: &str = "hwc-model-router";
        let mut lines = Vec::new();
        let high = format!("non-stream c={}", self.high_concurrency);
        if let Some(r) = self
            .pairs
            .iter()
            .find(|r| r.via == ROUTER && r.phase == high)
        {
            let added = (r.proxied.latency.p99 as f64 - r.direct.latency.p99 as f64) / 1e6;
            lines.push(format!(
                "| added p99 latency at c={} | at most {TARGET_ADDED_P99_MS} ms | {added:+.3} ms | {} |",
                self.high_concurrency,
                verdict(added <= TARGET_ADDED_P99_MS)
            ));
        }
        if let Some(r) = self.rss.iter().find(|r| r.process == ROUTER) {
            if let Some(kb) = r.peak_kb.max(r.hwm_kb) {
                let mb = kb as f64 / 1024.0;
                lines.push(format!(
                    "| resident memory under load (max of sampled peak and VmHWM) | at most {TARGET_RSS_MB} MB | {mb:.1} MB | {} |",
                    verdict(mb <= TARGET_RSS_MB)
                ));
            }
        }
        if let Some(r) = self.streams.iter().find(|r| r.via == ROUTER) {
            let p50 = (r.proxied.ttft.p50 as f64 - r.direct.ttft.p50 as f64) / 1e6;
            let p99 = (r.proxied.ttft.p99 as f64 - r.direct.ttft.p99 as f64) / 1e6;
            lines.push(format!(
                "| added time to first token (p99; p50 {p50:+.3} ms) | at most {TARGET_ADDED_TTFT_MS} ms | {p99:+.3} ms | {} |",
                verdict(p99 <= TARGET_ADDED_TTFT_MS)
            ));
        }
        if lines.is_empty() {
            return;
        }
        s.push_str("#### hwc-model-router against its targets\n\n");
        s.push_str("| target | limit | measured | verdict |\n|---|--:|--:|---|\n");
        for l in lines {
            s.push_str(&l);
            s.push('\n');
        }
        s.push('\n');
    }

    /// One table row per phase measured through both the router and nginx:
    /// what the router adds beyond what any proxy adds, and its throughput
    /// as a share of nginx's (issue 16's bars: at most 50 µs added p50 at
    /// concurrency 1, at least 60 % of nginx's req/s at 64).
    pub fn against_limit(&self) -> Vec<String> {
        let by =
            |via: &str, phase: &str| self.pairs.iter().find(|r| r.via == via && r.phase == phase);
        let mut out = Vec::new();
        for r in self.pairs.iter().filter(|r| r.via == "hwc-model-router") {
            let Some(n) = by("nginx", &r.phase) else {
                continue;
            };
            if n.proxied.errors > 0 || n.proxied.latency.n == 0 {
                out.push(format!(
                    "| {} | n/a: nginx failed {} of its requests (its error.log is in the run directory, --keep-dir) | | | | | |",
                    r.phase, n.proxied.errors
                ));
                continue;
            }
            let router_added = r.proxied.latency.p50.saturating_sub(r.direct.latency.p50);
            let nginx_added = n.proxied.latency.p50.saturating_sub(n.direct.latency.p50);
            let share = if n.proxied.rps > 0.0 {
                format!("{:.0} %", 100.0 * r.proxied.rps / n.proxied.rps)
            } else {
                "n/a".into()
            };
            out.push(format!(
                "| {} | {} µs | {} µs | **{} µs** | {:.0} | {:.0} | **{share}** |",
                r.phase,
                router_added / 1000,
                nginx_added / 1000,
                router_added.saturating_sub(nginx_added) / 1000,
                r.proxied.rps,
                n.proxied.rps,
            ));
        }
        out
    }

    /// Renders the report as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "Command: `{}`\n", self.command);
        for line in &self.machine {
            let _ = writeln!(s, "- {line}");
        }
        for line in &self.setup {
            let _ = writeln!(s, "- {line}");
        }
        s.push('\n');

        if !self.pairs.is_empty() {
            let _ = writeln!(
                s,
                "#### Non-streaming chat completions (ms, send to last body byte)\n"
            );
            s.push_str(
                "| phase | via | requests (direct / via) | direct p50 | direct p99 | direct mean \
                 | via p50 | via p99 | via mean | **added p50** | **added p99** \
                 | direct req/s | via req/s | via CPU/req | errors (direct / via) |\n",
            );
            s.push_str("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n");
            for r in &self.pairs {
                let requests =
                    if r.direct.latency.n == r.requested && r.proxied.latency.n == r.requested {
                        r.requested.to_string()
                    } else {
                        format!(
                            "{} / {} (of {})",
                            r.direct.latency.n, r.proxied.latency.n, r.requested
                        )
                    };
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | **{}** | **{}** | {:.0} | {:.0} | {} | {} / {} |",
                    r.phase,
                    r.via,
                    requests,
                    ms(r.direct.latency.p50),
                    ms(r.direct.latency.p99),
                    ms(r.direct.latency.mean),
                    ms(r.proxied.latency.p50),
                    ms(r.proxied.latency.p99),
                    ms(r.proxied.latency.mean),
                    added(r.proxied.latency.p50, r.direct.latency.p50),
                    added(r.proxied.latency.p99, r.direct.latency.p99),
                    r.direct.rps,
                    r.proxied.rps,
                    r.proxy_cpu_per_req
                        .map_or_else(|| "n/a".into(), |d| format!("{} µs", d.as_micros())),
                    r.direct.errors,
                    r.proxied.errors,
                );
            }
            s.push('\n');
        }

        let limit = self.against_limit();
        if !limit.is_empty() {
            let _ = writeln!(s, "#### hwc-model-router against the limit (nginx as a plain reverse proxy, same run)\n");
            s.push_str("| phase | router added p50 | nginx added p50 | router above nginx | router req/s | nginx req/s | router / nginx req/s |\n");
            s.push_str("|---|--:|--:|--:|--:|--:|--:|\n");
            for l in limit {
                let _ = writeln!(s, "{l}");
            }
            s.push('\n');
        }

        if !self.streams.is_empty() {
            let _ = writeln!(s, "#### Streaming chat completions, concurrency 1 (ms)\n");
            s.push_str(
                "| via | streams | direct TTFT p50 | direct TTFT p99 | via TTFT p50 | via TTFT p99 \
                 | **added TTFT p50** | **added TTFT p99** | direct mean gap | via mean gap \
                 | **added mean gap** | direct gap p99 | via gap p99 | errors (direct / via) |\n",
            );
            s.push_str("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n");
            for r in &self.streams {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | **{}** | **{}** | {} | {} | **{}** | {} | {} | {} / {} |",
                    r.via,
                    r.proxied.ttft.n.min(r.direct.ttft.n).min(r.requested),
                    ms(r.direct.ttft.p50),
                    ms(r.direct.ttft.p99),
                    ms(r.proxied.ttft.p50),
                    ms(r.proxied.ttft.p99),
                    added(r.proxied.ttft.p50, r.direct.ttft.p50),
                    added(r.proxied.ttft.p99, r.direct.ttft.p99),
                    ms(r.direct.gap.mean),
                    ms(r.proxied.gap.mean),
                    added(r.proxied.gap.mean, r.direct.gap.mean),
                    ms(r.direct.gap.p99),
                    ms(r.proxied.gap.p99),
                    r.direct.errors,
                    r.proxied.errors,
                );
            }
            s.push('\n');
        }

        if !self.rss.is_empty() {
            let _ = writeln!(s, "#### Resident memory (MB = MiB)\n");
            let _ = writeln!(
                s,
                "| process | idle after start | peak sampled under c={} load (every 50 ms) | VmHWM at end of run |",
                self.high_concurrency
            );
            s.push_str("|---|--:|--:|--:|\n");
            for r in &self.rss {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} |",
                    r.process,
                    mb(r.idle_kb),
                    mb(r.peak_kb),
                    mb(r.hwm_kb)
                );
            }
            s.push('\n');
        }

        self.targets(&mut s);
        for n in &self.notes {
            let _ = writeln!(s, "- {n}");
        }
        s
    }
}
