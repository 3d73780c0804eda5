//! Exponential backoff with jitter, once: retries of a pull, fallback
//! between upstream attempts, restarts of a crashed child.
//!
//! [`Backoff::delay`] is a pure function of the attempt number and a
//! random draw, so the schedule is table-tested; [`Backoff::next`] draws.

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How much of the exponential delay is randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Jitter {
    /// Anywhere in `0..=delay` ("full jitter": spreads a thundering herd most).
    Full,
    /// In `delay/2..=delay`: never much shorter than planned.
    Half,
    /// Exactly the exponential delay.
    None,
}

/// `base * 2^(attempt-1)`, capped at `max`, then jittered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first retry (attempt 1), before jitter.
    pub base: Duration,
    /// The longest delay, before jitter.
    pub max: Duration,
    /// How the delay is randomised.
    pub jitter: Jitter,
}

impl Backoff {
    /// The delay before retry number `attempt` (1-based; 0 counts as 1),
    /// given `draw` in `0.0..=1.0`.
    pub fn delay(&self, attempt: u32, draw: f64) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.clamp(1, 31).saturating_sub(1).min(20))
            .min(self.max);
        let draw = draw.clamp(0.0, 1.0);
        match self.jitter {
            Jitter::Full => exp.mul_f64(draw),
            Jitter::Half => exp.mul_f64(0.5 + draw / 2.0),
            Jitter::None => exp,
        }
    }

    /// [`Backoff::delay`] with a fresh random draw.
    pub fn next(&self, attempt: u32) -> Duration {
        self.delay(attempt, rand::rng().random_range(0.0..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_jitters_as_told() {
        let ms = Duration::from_millis;
        let b = |jitter| Backoff {
            base: ms(100),
            max: ms(1000),
            jitter,
        };
        let table = [
            (Jitter::None, 1, 0.3, ms(100)),
            (Jitter::None, 2, 0.3, ms(200)),
            (Jitter::None, 4, 0.3, ms(800)),
            (Jitter::None, 5, 0.3, ms(1000)),
            (Jitter::None, 400, 0.3, ms(1000)),
            (Jitter::None, 0, 0.3, ms(100)),
            (Jitter::Full, 3, 0.0, ms(0)),
            (Jitter::Full, 3, 0.5, ms(200)),
            (Jitter::Half, 3, 0.0, ms(200)),
            (Jitter::Half, 3, 1.0, ms(400)),
            (Jitter::Half, 3, 7.0, ms(400)),
        ];
        for (jitter, attempt, draw, want) in table {
            assert_eq!(
                b(jitter).delay(attempt, draw),
                want,
                "{jitter:?} attempt {attempt} draw {draw}"
            );
        }
    }
}
