//! Replicas of a backend: load-aware choice (peak-EWMA or least outstanding,
//! power of two random choices) and cooldown of replicas that keep failing.
//!
//! A replica cools down after `cooldown_failures` consecutive failures, or
//! when at least half (configurable) of the requests in the last window
//! failed, or when the upstream answered 429 with a `Retry-After`. It is
//! skipped until the cooldown ends and then tried again by itself: the next
//! request is the probe, and a failure cools it again at once.

use crate::config::{Balance, FallbackConfig};
use rand::Rng;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Decay time of the latency average.
const EWMA_DECAY: Duration = Duration::from_secs(10);
/// Latency assumed before a replica has answered anything.
const INITIAL_RTT: Duration = Duration::from_millis(50);

/// One upstream server.
#[derive(Debug)]
pub struct Replica {
    /// Base URL, up to and including `/v1`.
    pub url: String,
    /// Its host and port, parsed once for each attempt's span
    /// (`server.address`, `server.port`).
    pub host: Option<String>,
    /// See `host`.
    pub port: Option<u16>,
    outstanding: AtomicUsize,
    state: Mutex<ReplicaState>,
}

#[derive(Debug)]
struct ReplicaState {
    rtt_ewma: f64,
    last_sample: Instant,
    consecutive_failures: u32,
    window_start: Instant,
    window_requests: u32,
    window_failures: u32,
    cooling_until: Option<Instant>,
    last_contact: Contact,
}

/// How the last attempt at a replica went, for `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Contact {
    /// Not tried since the router started.
    Never,
    /// It answered (a 4xx about the request itself counts: it is alive).
    Answered,
    /// It failed (connect, timeout, 5xx, 429, a bad body, a cut stream).
    Failed,
}

/// Whether a recorded failure started a cooldown (for metrics and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cooled {
    /// Still in rotation.
    No,
    /// Taken out of rotation for this long.
    For(Duration),
}

impl Replica {
    /// A replica in rotation with no history.
    pub fn new(url: impl Into<String>) -> Self {
        let now = Instant::now();
        let url = url.into().trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&url).ok();
        Self {
            host: parsed
                .as_ref()
                .and_then(|u| u.host_str().map(str::to_owned)),
            port: parsed
                .as_ref()
                .and_then(reqwest::Url::port_or_known_default),
            url,
            outstanding: AtomicUsize::new(0),
            state: Mutex::new(ReplicaState {
                rtt_ewma: INITIAL_RTT.as_secs_f64(),
                last_sample: now,
                consecutive_failures: 0,
                window_start: now,
                window_requests: 0,
                window_failures: 0,
                cooling_until: None,
                last_contact: Contact::Never,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ReplicaState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Requests in flight to this replica now.
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Time left in a cooldown, if cooling.
    pub fn cooling_left(&self, now: Instant) -> Option<Duration> {
        self.state()
            .cooling_until
            .and_then(|until| until.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// How the last attempt went, for `/status`.
    pub fn last_contact(&self) -> Contact {
        self.state().last_contact
    }

    /// Latency average in seconds, for `/status`.
    pub fn rtt_ewma(&self) -> f64 {
        self.state().rtt_ewma
    }

    fn cost(&self, balance: Balance) -> f64 {
        let pending = (self.outstanding() + 1) as f64;
        match balance {
            Balance::LeastOutstanding => pending,
            Balance::PeakEwma => self.state().rtt_ewma * pending,
        }
    }

    /// Marks a request as started; the guard ends it.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight {
            replica: self.clone(),
            started: Instant::now(),
        }
    }

    /// Records a success: resets the failure streak.
    pub fn record_success(&self, now: Instant, cfg: &FallbackConfig) {
        let mut s = self.state();
        roll_window(&mut s, now, cfg);
        s.window_requests += 1;
        s.consecutive_failures = 0;
        s.last_contact = Contact::Answered;
    }

    /// Records a failure; `retry_after` is an upstream 429's delay.
    pub fn record_failure(
        &self,
        now: Instant,
        cfg: &FallbackConfig,
        retry_after: Option<Duration>,
    ) -> Cooled {
        let mut s = self.state();
        roll_window(&mut s, now, cfg);
        s.window_requests += 1;
        s.window_failures += 1;
        s.consecutive_failures += 1;
        s.last_contact = Contact::Failed;
        let ratio = f64::from(s.window_failures) / f64::from(s.window_requests);
        let by_rate =
            s.window_requests >= cfg.cooldown_min_requests && ratio >= cfg.cooldown_error_rate;
        let cool = match retry_after {
            Some(d) => Some(d.max(Duration::from_millis(100))),
            None if s.consecutive_failures >= cfg.cooldown_failures || by_rate => {
                Some(cfg.cooldown)
            }
            None => None,
        };
        match cool {
            Some(d) => {
                let already = s.cooling_until.is_some_and(|u| u > now);
                s.cooling_until = Some(now + d);
                if already {
                    Cooled::No
                } else {
                    Cooled::For(d)
                }
            }
            None => Cooled::No,
        }
    }

    fn observe_rtt(&self, rtt: Duration) {
        let mut s = self.state();
        let now = Instant::now();
        let sample = rtt.as_secs_f64();
        if sample > s.rtt_ewma {
            s.rtt_ewma = sample;
        } else {
            let elapsed = now.duration_since(s.last_sample).as_secs_f64();
            let w = (-elapsed / EWMA_DECAY.as_secs_f64()).exp();
            s.rtt_ewma = s.rtt_ewma * w + sample * (1.0 - w);
        }
        s.last_sample = now;
    }
}

fn roll_window(s: &mut ReplicaState, now: Instant, cfg: &FallbackConfig) {
    if now.duration_since(s.window_start) >= cfg.cooldown_window {
        s.window_start = now;
        s.window_requests = 0;
        s.window_failures = 0;
    }
}

/// A request in flight to a replica; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight {
    replica: Arc<Replica>,
    started: Instant,
}

impl InFlight {
    /// The replica this request went to.
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    /// Feeds the time to the response head into the latency average.
    pub fn observe_head(&self) {
        self.replica.observe_rtt(self.started.elapsed());
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.replica.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Picks a replica not cooling down and not in `tried` (replica addresses), by two random
/// choices on `balance`'s cost. `None` when every replica is cooling or tried.
pub fn pick(
    replicas: &[Arc<Replica>],
    balance: Balance,
    tried: &[usize],
    now: Instant,
) -> Option<Arc<Replica>> {
    let live: Vec<&Arc<Replica>> = replicas
        .iter()
        .filter(|r| !tried.contains(&(Arc::as_ptr(r) as usize)) && r.cooling_left(now).is_none())
        .collect();
    match live.len() {
        0 => None,
        1 => Some(live[0].clone()),
        n => {
            let mut rng = rand::rng();
            let a = rng.random_range(0..n);
            let mut b = rng.random_range(0..n - 1);
            if b >= a {
                b += 1;
            }
            let (ra, rb) = (live[a], live[b]);
            Some(
                if ra.cost(balance) <= rb.cost(balance) {
                    ra
                } else {
                    rb
                }
                .clone(),
            )
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cfg() -> FallbackConfig {
        FallbackConfig::default()
    }

    #[test]
    fn consecutive_failures_cool_down_and_recover() {
        let r = Replica::new("http://a/v1");
        let t0 = Instant::now();
        assert_eq!(r.record_failure(t0, &cfg(), None), Cooled::No);
        assert_eq!(r.record_failure(t0, &cfg(), None), Cooled::No);
        assert_eq!(
            r.record_failure(t0, &cfg(), None),
            Cooled::For(cfg().cooldown)
        );
        assert!(r.cooling_left(t0).is_some());
        assert!(
            r.cooling_left(t0 + cfg().cooldown).is_none(),
            "comes back by itself"
        );
        // still failing after the cooldown: cools again at once
        assert!(matches!(
            r.record_failure(t0 + cfg().cooldown, &cfg(), None),
            Cooled::For(_)
        ));
    }

    #[test]
    fn error_rate_cools_without_a_streak() {
        let r = Replica::new("http://a/v1");
        let t0 = Instant::now();
        let c = cfg();
        r.record_success(t0, &c);
        assert_eq!(r.record_failure(t0, &c, None), Cooled::No);
        r.record_success(t0, &c);
        assert_eq!(
            r.record_failure(t0, &c, None),
            Cooled::For(c.cooldown),
            "2 of 4 failed"
        );
    }

    #[test]
    fn retry_after_sets_the_cooldown() {
        let r = Replica::new("http://a/v1");
        let t0 = Instant::now();
        let d = Duration::from_secs(7);
        assert_eq!(r.record_failure(t0, &cfg(), Some(d)), Cooled::For(d));
        assert!(r.cooling_left(t0 + Duration::from_secs(6)).is_some());
    }

    #[test]
    fn pick_prefers_less_loaded_and_skips_cooling_and_tried() {
        let a = Arc::new(Replica::new("http://a/v1"));
        let b = Arc::new(Replica::new("http://b/v1"));
        let replicas = vec![a.clone(), b.clone()];
        let _busy: Vec<_> = (0..5).map(|_| a.begin()).collect();
        for _ in 0..20 {
            let p = pick(&replicas, Balance::LeastOutstanding, &[], Instant::now()).unwrap();
            assert!(Arc::ptr_eq(&p, &b));
        }
        let now = Instant::now();
        b.record_failure(now, &cfg(), Some(Duration::from_secs(60)));
        assert!(Arc::ptr_eq(
            &pick(&replicas, Balance::PeakEwma, &[], now).unwrap(),
            &a
        ));
        assert!(pick(
            &replicas,
            Balance::PeakEwma,
            &[Arc::as_ptr(&a) as usize],
            now
        )
        .is_none());
    }

    #[test]
    fn peak_ewma_jumps_up_and_decays() {
        let r = Arc::new(Replica::new("http://a/v1"));
        r.observe_rtt(Duration::from_secs(1));
        assert!((r.rtt_ewma() - 1.0).abs() < 1e-9);
        r.observe_rtt(Duration::from_millis(1));
        assert!(r.rtt_ewma() <= 1.0);
        let g = r.begin();
        assert_eq!(r.outstanding(), 1);
        drop(g);
        assert_eq!(r.outstanding(), 0);
    }
}
