//! The MCP results as Markdown tables.

use super::peers::TreeRss;
use crate::stats::{added, mb, ms, Summary};
use std::fmt::Write as _;
use std::time::Duration;

/// The bridge whose numbers the others are compared with.
pub const BRIDGE: &str = "hwc-mcp-bridge";

/// Target for hwc-mcp-bridge: added p99 per `tools/call`, at most.
pub const TARGET_ADDED_P99_MS: f64 = 1.0;

/// One side of one loop.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phase {
    /// Latency order statistics.
    pub latency: Summary,
    /// Failed calls.
    pub errors: usize,
    /// Completed calls per second of wall time.
    pub rps: f64,
    /// The bridge process's CPU time (user + system) per call.
    pub cpu_per_call: Option<Duration>,
}

/// Everything measured for one bridge, each loop beside the direct one run
/// just before it.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Sequential calls, direct.
    pub seq_direct: Phase,
    /// Sequential calls, through the bridge.
    pub seq_via: Phase,
    /// Concurrent calls, direct (one stdio pipe, requests multiplexed).
    pub conc_direct: Phase,
    /// Concurrent calls, one session each, through the bridge.
    pub conc_via: Phase,
    /// Sessions of the concurrent phase that opened.
    pub sessions: usize,
    /// Sessions that failed to open.
    pub sessions_failed: usize,
    /// Time to open a session (`initialize` + `notifications/initialized`),
    /// all opened at once.
    pub open: Summary,
    /// The tree shortly after the bridge was ready, before any session.
    pub idle: TreeRss,
    /// Peaks sampled during the concurrent phase.
    pub load: TreeRss,
    /// `VmHWM` of the bridge process at the end.
    pub hwm_kb: Option<u64>,
}

/// One bridge: measured, or why not.
#[derive(Debug, Clone)]
pub struct Row {
    /// `hwc-mcp-bridge`, `mcp-proxy`, `supergateway`.
    pub name: &'static str,
    /// Its version, as it says.
    pub version: String,
    /// The numbers, or what went wrong.
    pub outcome: Result<Measured, String>,
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
    /// Sessions asked for in the concurrent phase.
    pub sessions: usize,
    /// One row per bridge, in run order.
    pub rows: Vec<Row>,
    /// Anything odd.
    pub notes: Vec<String>,
}

fn added_ms(via: u64, direct: u64) -> f64 {
    (via as f64 - direct as f64) / 1e6
}

/// `peer / bridge` as `N.N×` (`0.NN×` below 1), `n/a` unless both are
/// positive.
pub fn ratio(peer: f64, bridge: f64) -> String {
    if !(peer > 0.0 && bridge > 0.0 && peer.is_finite() && bridge.is_finite()) {
        return "n/a".into();
    }
    let r = peer / bridge;
    if r < 0.995 {
        format!("{r:.2}×")
    } else {
        format!("{r:.1}×")
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

fn cpu(d: Option<Duration>) -> String {
    d.map_or_else(|| "n/a".into(), |d| format!("{} µs", d.as_micros()))
}

fn calls(direct: &Phase, via: &Phase) -> String {
    if direct.latency.n == via.latency.n {
        direct.latency.n.to_string()
    } else {
        format!("{} / {}", direct.latency.n, via.latency.n)
    }
}

/// What the ratio table compares, in its column order: added p50 and p99
/// one at a time, added p50 and p99 concurrent, calls/s concurrent, charged
/// memory (PSS) under load.
fn compared(m: &Measured) -> [f64; 6] {
    let (s, c) = ((&m.seq_via, &m.seq_direct), (&m.conc_via, &m.conc_direct));
    [
        added_ms(s.0.latency.p50, s.1.latency.p50),
        added_ms(s.0.latency.p99, s.1.latency.p99),
        added_ms(c.0.latency.p50, c.1.latency.p50),
        added_ms(c.0.latency.p99, c.1.latency.p99),
        m.conc_via.rps,
        m.load.charged_pss_kb as f64,
    ]
}

impl Report {
    fn measured(&self) -> impl Iterator<Item = (&Row, &Measured)> {
        self.rows
            .iter()
            .filter_map(|r| r.outcome.as_ref().ok().map(|m| (r, m)))
    }

    fn bridge(&self) -> Option<&Measured> {
        self.measured()
            .find(|(r, _)| r.name == BRIDGE)
            .map(|(_, m)| m)
    }

    fn latency_table(&self, s: &mut String, concurrent: bool) {
        if concurrent {
            let _ = writeln!(
                s,
                "#### tools/call, {} concurrent sessions (ms, send to answer parsed)\n",
                self.sessions
            );
            s.push_str(
                "| via | sessions | calls (direct / via) | session open p50 | session open p99 \
                 | direct p50 | direct p99 | via p50 | via p99 | **added p50** | **added p99** \
                 | direct calls/s | via calls/s | via CPU/call | errors (direct / via) |\n",
            );
            s.push_str("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n");
        } else {
            s.push_str(
                "#### tools/call, one session, one call at a time (ms, send to answer parsed)\n\n",
            );
            s.push_str(
                "| via | calls (direct / via) | direct p50 | direct p99 | via p50 | via p99 \
                 | **added p50** | **added p99** | direct calls/s | via calls/s | via CPU/call \
                 | errors (direct / via) |\n",
            );
            s.push_str("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n");
        }
        for (r, m) in self.measured() {
            let (d, v) = if concurrent {
                (&m.conc_direct, &m.conc_via)
            } else {
                (&m.seq_direct, &m.seq_via)
            };
            let _ = write!(s, "| {} | ", r.name);
            if concurrent {
                let sessions = if m.sessions_failed == 0 {
                    m.sessions.to_string()
                } else {
                    format!("{} ({} failed)", m.sessions, m.sessions_failed)
                };
                let _ = write!(
                    s,
                    "{sessions} | {} | {} | {} | ",
                    calls(d, v),
                    ms(m.open.p50),
                    ms(m.open.p99)
                );
            } else {
                let _ = write!(s, "{} | ", calls(d, v));
            }
            let _ = writeln!(
                s,
                "{} | {} | {} | {} | **{}** | **{}** | {:.0} | {:.0} | {} | {} / {} |",
                ms(d.latency.p50),
                ms(d.latency.p99),
                ms(v.latency.p50),
                ms(v.latency.p99),
                added(v.latency.p50, d.latency.p50),
                added(v.latency.p99, d.latency.p99),
                d.rps,
                v.rps,
                cpu(v.cpu_per_call),
                d.errors,
                v.errors,
            );
        }
        s.push('\n');
    }

    fn memory_table(&self, s: &mut String) {
        let _ = writeln!(s, "#### Memory (MB = MiB)\n");
        let _ = writeln!(
            s,
            "| via | process RSS idle | process RSS under load (peak) | process VmHWM | other processes' RSS idle / under load (count) | charged PSS idle | **charged PSS under load** | server processes' RSS under load (count) |"
        );
        s.push_str("|---|--:|--:|--:|--:|--:|--:|--:|\n");
        for (r, m) in self.measured() {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} / {} ({}) | {} | **{}** | {} ({}) |",
                r.name,
                mb(Some(m.idle.own_kb)),
                mb(Some(m.load.own_kb)),
                mb(m.hwm_kb),
                mb(Some(m.idle.helpers_kb)),
                mb(Some(m.load.helpers_kb)),
                m.load.helpers,
                mb(Some(m.idle.charged_pss_kb)),
                mb(Some(m.load.charged_pss_kb)),
                mb(Some(m.load.servers_kb)),
                m.load.servers,
            );
        }
        s.push('\n');
    }

    fn ratio_table(&self, s: &mut String) {
        let Some(b) = self.bridge() else { return };
        let _ = writeln!(s, "#### Against hwc-mcp-bridge (peer ÷ hwc-mcp-bridge; above 1× is worse, except calls/s)\n");
        let _ = writeln!(
            s,
            "| via | added p50, c=1 | added p99, c=1 | added p50, {n} sessions | added p99, {n} sessions | calls/s, {n} sessions | charged PSS under load |",
            n = self.sessions
        );
        s.push_str("|---|--:|--:|--:|--:|--:|--:|\n");
        let base = compared(b);
        for (r, m) in self.measured() {
            let cells: Vec<String> = compared(m)
                .iter()
                .zip(base)
                .map(|(&peer, bridge)| ratio(peer, bridge))
                .collect();
            let _ = writeln!(s, "| {} | {} |", r.name, cells.join(" | "));
        }
        s.push('\n');
    }

    fn target_table(&self, s: &mut String) {
        let Some(b) = self.bridge() else { return };
        let seq = added_ms(b.seq_via.latency.p99, b.seq_direct.latency.p99);
        let conc = added_ms(b.conc_via.latency.p99, b.conc_direct.latency.p99);
        s.push_str("#### hwc-mcp-bridge against its target\n\n");
        s.push_str("| target | limit | measured | verdict |\n|---|--:|--:|---|\n");
        let one = "one call at a time".to_owned();
        let many = format!("{} concurrent sessions", self.sessions);
        for (how, added) in [(one, seq), (many, conc)] {
            let _ = writeln!(
                s,
                "| added p99 per tools/call, {how} | under {TARGET_ADDED_P99_MS} ms | {added:+.3} ms | {} |",
                verdict(added < TARGET_ADDED_P99_MS)
            );
        }
        s.push('\n');
    }

    /// Renders the report as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "Command: `{}`\n", self.command);
        for line in self.machine.iter().chain(&self.setup) {
            let _ = writeln!(s, "- {line}");
        }
        for r in &self.rows {
            match &r.outcome {
                Ok(_) => {
                    let _ = writeln!(s, "- {}: {}.", r.name, r.version);
                }
                Err(e) => {
                    let _ = writeln!(
                        s,
                        "- **{} ({}): not measured**: {}",
                        r.name,
                        r.version,
                        one_line(e)
                    );
                }
            }
        }
        s.push('\n');
        if self.measured().next().is_some() {
            self.latency_table(&mut s, false);
            self.latency_table(&mut s, true);
            self.memory_table(&mut s);
            self.ratio_table(&mut s);
            self.target_table(&mut s);
        }
        for n in &self.notes {
            let _ = writeln!(s, "- {n}");
        }
        s
    }
}

/// The first line of `e`, for a list item.
fn one_line(e: &str) -> &str {
    e.lines().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(p50_us: u64, p99_us: u64) -> Summary {
        Summary {
            n: 100,
            p50: p50_us * 1000,
            p99: p99_us * 1000,
            mean: p50_us * 1000,
            max: p99_us * 1000,
        }
    }

    fn phase(p50_us: u64, p99_us: u64, rps: f64) -> Phase {
        Phase {
            latency: summary(p50_us, p99_us),
            errors: 0,
            rps,
            cpu_per_call: Some(Duration::from_micros(40)),
        }
    }

    fn measured(seq: (u64, u64), conc: (u64, u64), rps: f64, own_mb: u64) -> Measured {
        let tree = TreeRss {
            own_kb: own_mb * 1024,
            helpers_kb: 1024,
            helpers: 1,
            charged_pss_kb: (own_mb + 1) * 1024,
            servers_kb: 2048,
            servers: 1,
        };
        Measured {
            seq_direct: phase(20, 30, 40000.0),
            seq_via: phase(seq.0, seq.1, 5000.0),
            conc_direct: phase(500, 800, 150000.0),
            conc_via: phase(conc.0, conc.1, rps),
            sessions: 100,
            sessions_failed: 0,
            open: summary(1000, 3000),
            idle: tree,
            load: tree,
            hwm_kb: Some(own_mb * 1024),
        }
    }

    #[test]
    fn renders_rows_ratios_targets_and_failures() {
        let report = Report {
            command: "hwc-bench-mcp --quick".into(),
            machine: vec!["Machine: test.".into()],
            setup: vec!["Load: test.".into()],
            sessions: 100,
            rows: vec![
                Row {
                    name: BRIDGE,
                    version: "hwc-mcp-bridge 0.1.0".into(),
                    outcome: Ok(measured((120, 530), (2500, 4000), 20000.0, 11)),
                },
                Row {
                    name: "mcp-proxy",
                    version: "mcp-proxy 0.13.0".into(),
                    outcome: Ok(measured((2020, 3030), (50500, 80800), 1000.0, 43)),
                },
                Row {
                    name: "supergateway",
                    version: "supergateway 4.0.0".into(),
                    outcome: Err("exited (exit status: 1) before it was ready\nlog...".into()),
                },
            ],
            notes: vec!["Whole run took 1.0 s.".into()],
        };
        let md = report.markdown();
        // Sequential: added = via - direct (120 - 20 us, 530 - 30 us).
        assert!(
            md.contains("| hwc-mcp-bridge | 100 | 0.020 | 0.030 | 0.120 | 0.530 | **+0.100** | **+0.500** | 40000 | 5000 | 40 µs | 0 / 0 |"),
            "{md}"
        );
        // Concurrent: sessions, session-open percentiles.
        assert!(md.contains("| mcp-proxy | 100 | 100 | 1.000 | 3.000 | 0.500 | 0.800 | 50.500 | 80.800 | **+50.000** | **+80.000** |"), "{md}");
        // Ratios: (2020-20)/(120-20) = 20, (3030-30)/(530-30) = 6, calls/s 0.05.
        assert!(
            md.contains("| mcp-proxy | 20.0× | 6.0× | 25.0× | 25.0× | 0.05× | 3.7× |"),
            "{md}"
        );
        assert!(
            md.contains("| hwc-mcp-bridge | 1.0× | 1.0× | 1.0× | 1.0× | 1.0× | 1.0× |"),
            "{md}"
        );
        // Memory: process, helpers, charged PSS idle and under load, servers.
        assert!(
            md.contains(
                "| hwc-mcp-bridge | 11.0 | 11.0 | 11.0 | 1.0 / 1.0 (1) | 12.0 | **12.0** | 2.0 (1) |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| added p99 per tools/call, one call at a time | under 1 ms | +0.500 ms | met |"
            ),
            "{md}"
        );
        assert!(md.contains("| added p99 per tools/call, 100 concurrent sessions | under 1 ms | +3.200 ms | **missed** |"), "{md}");
        assert!(md.contains("- **supergateway (supergateway 4.0.0): not measured**: exited (exit status: 1) before it was ready\n"), "{md}");
        assert!(!md.contains("| supergateway |"), "{md}");
        assert!(md.ends_with("- Whole run took 1.0 s.\n"), "{md}");
    }

    #[test]
    fn ratios_need_two_positive_numbers() {
        assert_eq!(ratio(3.0, 1.5), "2.0×");
        assert_eq!(ratio(460.0, 9524.0), "0.05×");
        assert_eq!(ratio(0.999, 1.0), "1.0×");
        assert_eq!(ratio(3.0, 0.0), "n/a");
        assert_eq!(ratio(-1.0, 2.0), "n/a");
    }

    #[test]
    fn nothing_measured_renders_only_the_lines() {
        let report = Report {
            command: "x".into(),
            sessions: 100,
            rows: vec![Row {
                name: BRIDGE,
                version: "?".into(),
                outcome: Err("not found".into()),
            }],
            ..Report::default()
        };
        let md = report.markdown();
        assert!(md.contains("not measured**: not found"));
        assert!(!md.contains("####"));
    }
}
