//! A target's state, with thresholds so one bad probe does not flap it.
//!
//! `unknown` until the first verdict; `starting` while the target says it is
//! loading (llama.cpp's 503 "Loading model"); `down` after
//! `failure_threshold` consecutive failures; `up` again only after
//! `success_threshold` consecutive successes.

use serde::Serialize;
use std::time::{Duration, SystemTime};

/// What one probe found.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Healthy, in this long.
    Up(Duration),
    /// Alive but not ready yet (loading), with its words.
    Starting(String),
    /// Failed, with what went wrong.
    Down(String),
}

/// The state `/status` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// No verdict yet.
    Unknown,
    /// Loading.
    Starting,
    /// Healthy.
    Up,
    /// Failing past the threshold.
    Down,
}

impl Health {
    /// Metric label and JSON value.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Starting => "starting",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// The running record of one target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetState {
    /// Current state.
    pub state: Health,
    /// When it entered that state.
    #[serde(with = "unix_seconds")]
    pub since: SystemTime,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Successes in a row.
    pub consecutive_successes: u32,
    /// The last failure, in words.
    pub last_error: Option<String>,
    /// Latency of the last successful probe, seconds.
    pub last_latency_s: Option<f64>,
    /// When a probe last succeeded.
    #[serde(with = "opt_unix_seconds")]
    pub last_success: Option<SystemTime>,
    /// Probes done.
    pub probes: u64,
}

impl Default for TargetState {
    fn default() -> Self {
        Self {
            state: Health::Unknown,
            since: SystemTime::now(),
            consecutive_failures: 0,
            consecutive_successes: 0,
            last_error: None,
            last_latency_s: None,
            last_success: None,
            probes: 0,
        }
    }
}

impl TargetState {
    /// Applies an outcome; returns the previous state when it changed.
    pub fn apply(
        &mut self,
        outcome: &Outcome,
        failure_threshold: u32,
        success_threshold: u32,
    ) -> Option<Health> {
        self.probes += 1;
        let now = SystemTime::now();
        let next = match outcome {
            Outcome::Up(latency) => {
                self.consecutive_successes += 1;
                self.consecutive_failures = 0;
                self.last_latency_s = Some(latency.as_secs_f64());
                self.last_success = Some(now);
                match self.state {
                    Health::Down if self.consecutive_successes < success_threshold => Health::Down,
                    _ => Health::Up,
                }
            }
            Outcome::Starting(why) => {
                self.consecutive_successes = 0;
                self.consecutive_failures = 0;
                self.last_error = Some(why.clone());
                Health::Starting
            }
            Outcome::Down(why) => {
                self.consecutive_failures += 1;
                self.consecutive_successes = 0;
                self.last_error = Some(why.clone());
                if self.consecutive_failures >= failure_threshold {
                    Health::Down
                } else {
                    self.state
                }
            }
        };
        if next == self.state {
            return None;
        }
        let prev = self.state;
        self.state = next;
        self.since = now;
        Some(prev)
    }
}

mod unix_seconds {
    use serde::Serializer;
    use std::time::{SystemTime, UNIX_EPOCH};
    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(
            t.duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        )
    }
}

mod opt_unix_seconds {
    use serde::Serializer;
    use std::time::SystemTime;
    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::unix_seconds::serialize(t, s),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: Outcome = Outcome::Up(Duration::from_millis(5));
    fn bad() -> Outcome {
        Outcome::Down("refused".into())
    }

    #[test]
    fn thresholds_hold_against_flapping() {
        let mut s = TargetState::default();
        assert_eq!(s.apply(&OK, 3, 2), Some(Health::Unknown));
        assert_eq!(s.state, Health::Up);
        assert_eq!(s.apply(&bad(), 3, 2), None);
        assert_eq!(s.apply(&bad(), 3, 2), None);
        assert_eq!(s.apply(&OK, 3, 2), None, "a success resets the streak");
        s.apply(&bad(), 3, 2);
        s.apply(&bad(), 3, 2);
        assert_eq!(s.apply(&bad(), 3, 2), Some(Health::Up));
        assert_eq!(s.state, Health::Down);
        assert_eq!(
            s.apply(&OK, 3, 2),
            None,
            "one success is not enough to come back"
        );
        assert_eq!(s.apply(&OK, 3, 2), Some(Health::Down));
        assert_eq!(s.state, Health::Up);
    }

    #[test]
    fn loading_is_starting_not_down() {
        let mut s = TargetState::default();
        for _ in 0..10 {
            s.apply(&Outcome::Starting("Loading model".into()), 3, 2);
        }
        assert_eq!(s.state, Health::Starting);
        assert_eq!(s.consecutive_failures, 0);
        s.apply(&OK, 3, 2);
        assert_eq!(s.state, Health::Up);
    }
}
