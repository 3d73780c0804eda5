//! When to restart a failing target's unit: after `restart_after`
//! consecutive failures, then with exponential backoff while it stays
//! down, and never more than `max_restarts_per_hour` times in any hour.
//! The policy is pure; the restart itself goes over D-Bus
//! ([`crate::probe::Systemd::restart`]).

use crate::config::HealingConfig;
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

const HOUR: Duration = Duration::from_secs(3600);

/// What the policy says to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing: not failing enough, or waiting out the backoff.
    Wait,
    /// Restart now.
    Restart,
    /// The hourly cap is reached: report, don't restart.
    Capped,
}

/// A healing action, kept for `/status` and logged.
#[derive(Debug, Clone, Serialize)]
pub struct Action {
    /// Unix seconds.
    pub at: f64,
    /// The unit.
    pub unit: String,
    /// `restarted`, `dry_run`, `failed`, `capped`.
    pub result: &'static str,
    /// Details: the job path, the error, or the cap.
    pub detail: String,
}

impl Action {
    /// An action happening now.
    pub fn now(unit: &str, result: &'static str, detail: String) -> Self {
        let at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Self {
            at,
            unit: unit.to_string(),
            result,
            detail,
        }
    }
}

/// Restart bookkeeping for one target.
#[derive(Debug)]
pub struct Healer {
    restarts: VecDeque<Instant>,
    next_allowed: Option<Instant>,
    backoff: Duration,
    capped_reported: bool,
}

impl Healer {
    /// No restarts yet.
    pub fn new(cfg: &HealingConfig) -> Self {
        Self {
            restarts: VecDeque::new(),
            next_allowed: None,
            backoff: cfg.backoff_initial,
            capped_reported: false,
        }
    }

    /// Decides after a probe, given the target's failure streak.
    pub fn decide(
        &mut self,
        now: Instant,
        failures: u32,
        restart_after: u32,
        cfg: &HealingConfig,
    ) -> Decision {
        if failures < restart_after {
            return Decision::Wait;
        }
        if self.next_allowed.is_some_and(|t| now < t) {
            return Decision::Wait;
        }
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) >= HOUR)
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() as u32 >= cfg.max_restarts_per_hour {
            if self.capped_reported {
                return Decision::Wait;
            }
            self.capped_reported = true;
            return Decision::Capped;
        }
        // The cap has lifted: a later cap is reported again.
        self.capped_reported = false;
        Decision::Restart
    }

    /// Records a restart made at `now` and sets the next backoff.
    pub fn restarted(&mut self, now: Instant, cfg: &HealingConfig) {
        self.restarts.push_back(now);
        self.next_allowed = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(cfg.backoff_max);
    }

    /// The target is up again: the next failure starts from the first step.
    /// True when this ends a reported restart cap.
    pub fn recovered(&mut self, cfg: &HealingConfig) -> bool {
        self.backoff = cfg.backoff_initial;
        self.next_allowed = None;
        std::mem::take(&mut self.capped_reported)
    }

    /// Restarts in the last hour.
    pub fn restarts_last_hour(&self, now: Instant) -> usize {
        self.restarts
            .iter()
            .filter(|t| now.duration_since(**t) < HOUR)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> HealingConfig {
        HealingConfig {
            dry_run: false,
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(40),
            max_restarts_per_hour: 3,
        }
    }

    #[test]
    fn restarts_after_n_failures_backs_off_and_caps() {
        let c = cfg();
        let mut h = Healer::new(&c);
        let t0 = Instant::now();
        assert_eq!(h.decide(t0, 2, 3, &c), Decision::Wait);
        assert_eq!(h.decide(t0, 3, 3, &c), Decision::Restart);
        h.restarted(t0, &c);
        assert_eq!(
            h.decide(t0 + Duration::from_secs(9), 5, 3, &c),
            Decision::Wait,
            "backoff 10 s"
        );
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(h.decide(t1, 6, 3, &c), Decision::Restart);
        h.restarted(t1, &c);
        assert_eq!(
            h.decide(t1 + Duration::from_secs(19), 9, 3, &c),
            Decision::Wait,
            "backoff doubled"
        );
        let t2 = t1 + Duration::from_secs(20);
        assert_eq!(h.decide(t2, 9, 3, &c), Decision::Restart);
        h.restarted(t2, &c);
        let t3 = t2 + Duration::from_secs(40);
        assert_eq!(h.decide(t3, 12, 3, &c), Decision::Capped, "3 per hour");
        assert_eq!(
            h.decide(t3 + Duration::from_secs(60), 13, 3, &c),
            Decision::Wait,
            "cap reported once"
        );
        assert_eq!(
            h.decide(t0 + HOUR, 30, 3, &c),
            Decision::Restart,
            "the oldest restart left the hour"
        );
        h.restarted(t0 + HOUR, &c);
        for t in [
            t0 + HOUR + Duration::from_secs(40),
            t0 + HOUR + Duration::from_secs(80),
        ] {
            assert_eq!(h.decide(t, 31, 3, &c), Decision::Restart);
            h.restarted(t, &c);
        }
        assert_eq!(
            h.decide(t0 + HOUR + Duration::from_secs(120), 31, 3, &c),
            Decision::Capped,
            "a second cap in a later hour is reported too"
        );
        assert!(h.recovered(&c), "recovery ends the reported cap");
        assert!(!h.recovered(&c), "and only once");
    }

    #[test]
    fn recovery_resets_the_backoff() {
        let c = cfg();
        let mut h = Healer::new(&c);
        let t0 = Instant::now();
        h.restarted(t0, &c);
        h.restarted(t0, &c);
        h.recovered(&c);
        assert_eq!(h.decide(t0, 3, 3, &c), Decision::Restart);
        h.restarted(t0, &c);
        assert_eq!(
            h.decide(t0 + Duration::from_secs(10), 3, 3, &c),
            Decision::Capped
        );
    }
}
