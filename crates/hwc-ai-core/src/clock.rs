//! Time as an input: decisions (budgets that reset at UTC midnight,
//! backoff, cooldowns, approval expiry) take a [`Clock`] so tests can set
//! the time instead of sleeping, and the calendar arithmetic lives once.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where a daemon reads the time.
pub trait Clock: Send + Sync + 'static {
    /// Seconds since the Unix epoch (wall time, for days and records).
    fn unix_now(&self) -> i64;
    /// A monotonic instant (for intervals, never goes back).
    fn instant(&self) -> Instant;
}

/// The real clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_now(&self) -> i64 {
        unix_now()
    }
    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told, for table tests of time-based rules.
#[derive(Debug)]
pub struct ManualClock {
    base: Instant,
    start_unix: i64,
    offset_ms: AtomicI64,
}

impl ManualClock {
    /// A clock reading `unix` seconds now.
    pub fn at(unix: i64) -> Self {
        Self {
            base: Instant::now(),
            start_unix: unix,
            offset_ms: AtomicI64::new(0),
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    fn offset(&self) -> Duration {
        Duration::from_millis(self.offset_ms.load(Ordering::SeqCst).max(0) as u64)
    }
}

impl Clock for ManualClock {
    fn unix_now(&self) -> i64 {
        self.start_unix + self.offset().as_secs() as i64
    }
    fn instant(&self) -> Instant {
        self.base + self.offset()
    }
}

/// Seconds since the epoch, now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `YYYY-MM-DD` of a unix time, UTC.
pub fn utc_day(unix: i64) -> String {
    let (y, m, d) = civil(unix);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a unix time (RFC 3339, UTC), for records and
/// `/status` fields a person reads.
pub fn rfc3339(unix: i64) -> String {
    let (y, m, d) = civil(unix);
    let s = unix.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Time until the next UTC midnight (when daily budgets reset).
pub fn until_utc_midnight(unix: i64) -> Duration {
    Duration::from_secs((86_400 - unix.rem_euclid(86_400)) as u64)
}

/// Year, month, day of a unix time (Howard Hinnant's days-to-civil).
fn civil(unix: i64) -> (i64, i64, i64) {
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(951_782_400), "2000-02-29");
        assert_eq!(utc_day(1_795_305_600), "2026-11-22");
        assert_eq!(rfc3339(1_795_305_600 + 3661), "2026-11-22T01:01:01Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(until_utc_midnight(86_400 - 5), Duration::from_secs(5));
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at(86_400 - 2);
        let t0 = c.instant();
        assert_eq!(utc_day(c.unix_now()), "1970-01-01");
        c.advance(Duration::from_secs(3));
        assert_eq!(utc_day(c.unix_now()), "1970-01-02");
        assert_eq!(c.instant() - t0, Duration::from_secs(3));
    }
}
