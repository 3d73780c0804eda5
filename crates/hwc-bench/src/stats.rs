//! Order statistics of latency samples, the loop outcome they come from,
//! and how the reports print them.

use std::time::Duration;

/// The outcome of one measured loop.
#[derive(Debug, Default)]
pub struct Run {
    /// Latency of every success, in nanoseconds.
    pub latencies_ns: Vec<u64>,
    /// Requests that failed.
    pub errors: usize,
    /// The first failure, for the log.
    pub first_error: Option<String>,
    /// From the first send to the last answer.
    pub wall: Duration,
}

impl Run {
    /// Adds another task's outcome to this one.
    pub fn absorb(&mut self, other: Self) {
        self.latencies_ns.extend(other.latencies_ns);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Counts a failure.
    pub fn fail(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }

    /// Waits for every task and merges their outcomes (a task that panicked
    /// counts as one failure); `wall` is left for the caller to set.
    pub async fn join(tasks: Vec<tokio::task::JoinHandle<Self>>) -> Self {
        let mut all = Self::default();
        for task in tasks {
            match task.await {
                Ok(run) => all.absorb(run),
                Err(e) => all.fail(format!("task: {e}")),
            }
        }
        all
    }

    /// The latencies' summary and the successes per second of wall time,
    /// logged to stderr as one line (`PHASE NAME n=... UNIT/s errors=N`),
    /// and the first error after it.
    pub fn summarise(&mut self, phase: &str, name: &str, unit: &str) -> (Summary, f64) {
        let latency = Summary::of(&mut self.latencies_ns);
        let rate = latency.n as f64 / self.wall.as_secs_f64().max(1e-9);
        eprintln!(
            "{phase:<18} {name:<17} n={:<6} p50={:.3} ms p99={:.3} ms mean={:.3} ms max={:.3} ms {rate:.0} {unit}/s errors={}",
            latency.n,
            latency.p50 as f64 / 1e6,
            latency.p99 as f64 / 1e6,
            latency.mean as f64 / 1e6,
            latency.max as f64 / 1e6,
            self.errors
        );
        if let Some(e) = &self.first_error {
            eprintln!("  first error: {e}");
        }
        (latency, rate)
    }
}

/// A duration in nanoseconds (saturating).
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Order statistics of a sample, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Sample size.
    pub n: usize,
    /// Median (nearest rank).
    pub p50: u64,
    /// 99th percentile (nearest rank).
    pub p99: u64,
    /// Arithmetic mean.
    pub mean: u64,
    /// Largest value.
    pub max: u64,
}

impl Summary {
    /// Summarises `v` (sorted in place).
    pub fn of(v: &mut [u64]) -> Self {
        if v.is_empty() {
            return Self::default();
        }
        v.sort_unstable();
        let sum: u128 = v.iter().map(|&x| u128::from(x)).sum();
        let n = v.len();
        Self {
            n,
            p50: v[rank(n, 0.50)],
            p99: v[rank(n, 0.99)],
            mean: u64::try_from(sum / n as u128).unwrap_or(u64::MAX),
            max: v[n - 1],
        }
    }
}

/// Nearest-rank index of quantile `q` in a sorted sample of `n`.
fn rank(n: usize, q: f64) -> usize {
    let r = (q * n as f64).ceil() as usize;
    r.clamp(1, n) - 1
}

/// Nanoseconds as milliseconds with three decimals.
pub fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

/// `proxy - direct` (nanoseconds) as signed milliseconds with three decimals.
pub fn added(proxy: u64, direct: u64) -> String {
    format!("{:+.3}", (proxy as f64 - direct as f64) / 1e6)
}

/// kB as MiB with one decimal, `n/a` when unknown.
pub fn mb(kb: Option<u64>) -> String {
    kb.map_or_else(|| "n/a".into(), |kb| format!("{:.1}", kb as f64 / 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        let s = Summary::of(&mut v);
        assert_eq!((s.n, s.p50, s.p99, s.max), (100, 50, 99, 100));
        assert_eq!(s.mean, 50);
        let mut one = vec![7];
        assert_eq!(Summary::of(&mut one).p99, 7);
        assert_eq!(Summary::of(&mut []), Summary::default());
    }

    #[test]
    fn runs_merge_and_summarise() {
        let mut a = Run {
            latencies_ns: vec![3, 1],
            wall: Duration::from_secs(2),
            ..Run::default()
        };
        a.fail("first".into());
        let mut b = Run {
            latencies_ns: vec![2],
            ..Run::default()
        };
        b.fail("second".into());
        a.absorb(b);
        assert_eq!((a.errors, a.first_error.as_deref()), (2, Some("first")));
        let (s, rate) = a.summarise("phase", "name", "calls");
        assert_eq!((s.n, s.p50, s.max), (3, 2, 3));
        assert!((rate - 1.5).abs() < 1e-9);
        assert_eq!(nanos(Duration::from_micros(2)), 2000);
    }

    #[test]
    fn formatting() {
        assert_eq!(ms(1_234_567), "1.235");
        assert_eq!(added(1_000_000, 1_500_000), "-0.500");
        assert_eq!(added(1_500_000, 1_000_000), "+0.500");
        assert_eq!(mb(Some(2048)), "2.0");
        assert_eq!(mb(None), "n/a");
    }
}
