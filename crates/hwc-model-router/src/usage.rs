//! Usage accounting, daily token budgets and per-key request rates.
//!
//! Counting happens in memory on the request path; a background task writes
//! the increments to SQLite every `state.flush_interval` and once more at
//! shutdown, so the database is never on the hot path and at most one
//! interval of usage is at risk in a crash. Today's totals are read back at
//! start, so budgets hold across restarts.

use crate::clock;
use crate::keys::ApiKey;
use crate::metrics::{KeyLabel, RouterMetrics};
use crate::store::{Store, StoreError, UsageRow};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hwc_ai_core::clock::{Clock, SystemClock};
use hwc_ai_core::ApiError;
use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Tokens of one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Prompt (input) tokens.
    pub prompt: u64,
    /// Completion (output) tokens.
    pub completion: u64,
}

#[derive(Default)]
struct Day {
    /// Days since the epoch, to notice midnight without formatting a date
    /// on every request.
    day_no: i64,
    /// The same day as `YYYY-MM-DD`.
    day: String,
    /// Tokens per key today, flushed or not.
    totals: HashMap<String, u64>,
    /// Increments not yet written, by (day, key, model): a flush after
    /// midnight still writes yesterday's under yesterday.
    pending: HashMap<(String, String, String), (u64, Tokens)>,
    /// Daily budgets of the keys that asked for something, for the budget
    /// gauges (the key table itself is swapped on SIGHUP and not iterable).
    budgets: HashMap<String, u64>,
    /// Every key with usage since start, so its gauge drops to 0 at midnight.
    seen: HashSet<String>,
}

/// In-memory usage with periodic persistence.
pub struct Ledger {
    inner: Mutex<Day>,
    limiters: Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
    clock: Arc<dyn Clock>,
}

impl Ledger {
    /// A ledger primed with today's totals from the store, on the real clock.
    pub async fn load(store: &Store) -> Result<Self, StoreError> {
        Self::load_with(store, Arc::new(SystemClock)).await
    }

    /// [`Ledger::load`] reading the time from `clock` (tests set the day).
    pub async fn load_with(store: &Store, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let now = clock.unix_now();
        let day = clock::utc_day(now);
        let mut totals = HashMap::new();
        for r in store.usage_on(&day).await? {
            *totals.entry(r.key).or_insert(0) += r.prompt_tokens + r.completion_tokens;
        }
        Ok(Self {
            inner: Mutex::new(Day {
                day_no: now.div_euclid(86_400),
                day,
                seen: totals.keys().cloned().collect(),
                totals,
                pending: HashMap::new(),
                budgets: HashMap::new(),
            }),
            limiters: Mutex::new(HashMap::new()),
            clock,
        })
    }

    fn day(&self) -> MutexGuard<'_, Day> {
        let mut d = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let now = self.clock.unix_now();
        if d.day_no != now.div_euclid(86_400) {
            // Pending rows carry their own day; only the totals reset.
            d.day_no = now.div_euclid(86_400);
            let old = std::mem::replace(&mut d.day, clock::utc_day(now));
            d.totals.clear();
            tracing::info!(previous_day = %old, "new UTC day: daily budgets reset");
        }
        d
    }

    /// Refuses a request over its key's rate or today's budget, with a
    /// `Retry-After` that says when it would pass.
    pub fn admit(&self, key: &ApiKey) -> Result<(), ApiError> {
        if let Some(rpm) = key.requests_per_minute.and_then(NonZeroU32::new) {
            let limiter = self
                .limiters
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key.name.clone())
                .or_insert_with(|| Arc::new(RateLimiter::direct(Quota::per_minute(rpm))))
                .clone();
            if let Err(not_until) = limiter.check() {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                return Err(ApiError::rate_limited(
                    "rate_limited",
                    format!("key `{}` is over its {rpm} requests per minute; retry after the Retry-After delay", key.name),
                    wait.max(Duration::from_secs(1)),
                ));
            }
        }
        if let Some(budget) = key.daily_token_budget {
            let used = {
                let mut d = self.day();
                if d.budgets.get(&key.name) != Some(&budget) {
                    d.budgets.insert(key.name.clone(), budget);
                }
                d.totals.get(&key.name).copied().unwrap_or(0)
            };
            if used >= budget {
                let now = self.clock.unix_now();
                return Err(ApiError::rate_limited(
                    "budget_exceeded",
                    format!(
                        "key `{}` has used {used} of its {budget} tokens for {} (UTC); the budget resets at UTC midnight",
                        key.name,
                        clock::utc_day(now)
                    ),
                    clock::until_utc_midnight(now),
                ));
            }
        }
        Ok(())
    }

    /// Records one answered request.
    pub fn record(&self, key: &str, model: &str, tokens: Tokens) {
        let mut d = self.day();
        *d.totals.entry(key.to_string()).or_insert(0) += tokens.prompt + tokens.completion;
        if !d.seen.contains(key) {
            d.seen.insert(key.to_string());
        }
        let slot = (d.day.clone(), key.to_string(), model.to_string());
        let e = d.pending.entry(slot).or_insert((0, Tokens::default()));
        e.0 += 1;
        e.1.prompt += tokens.prompt;
        e.1.completion += tokens.completion;
    }

    /// Tokens a key used today.
    pub fn tokens_today(&self, key: &str) -> u64 {
        self.day().totals.get(key).copied().unwrap_or(0)
    }

    /// Today's totals per key, for `/status`.
    pub fn totals(&self) -> (String, HashMap<String, u64>) {
        let d = self.day();
        (d.day.clone(), d.totals.clone())
    }

    /// Sets the per-key gauges: today's tokens for every key seen since
    /// start (0 after UTC midnight) and the daily budget of keys that have one.
    pub fn export(&self, m: &RouterMetrics) {
        let d = self.day();
        for (key, budget) in &d.budgets {
            m.key_budget
                .get_or_create(&KeyLabel { key: key.clone() })
                .set(i64::try_from(*budget).unwrap_or(i64::MAX));
        }
        for key in d.seen.iter().chain(d.budgets.keys()) {
            let used = d.totals.get(key).copied().unwrap_or(0);
            m.key_tokens_today
                .get_or_create(&KeyLabel { key: key.clone() })
                .set(i64::try_from(used).unwrap_or(i64::MAX));
        }
    }

    /// Writes pending increments. On failure they are put back, so nothing
    /// accepted is lost to a transient database error.
    pub async fn flush(&self, store: &Store) -> Result<usize, StoreError> {
        let written = self.write_pending(store).await?;
        self.refresh(store).await?;
        Ok(written)
    }

    /// Today's totals from the database, plus what this router recorded
    /// since its last write: routers sharing a database (PostgreSQL) see
    /// each other's usage within one flush interval, so a key's daily
    /// budget holds across all of them.
    async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let day = self.day().day.clone();
        let mut stored: HashMap<String, u64> = HashMap::new();
        for r in store.usage_on(&day).await? {
            *stored.entry(r.key).or_insert(0) += r.prompt_tokens + r.completion_tokens;
        }
        let mut d = self.day();
        if d.day != day {
            return Ok(()); // midnight passed while reading: the new day starts empty
        }
        for ((pday, key, _), (_, t)) in &d.pending {
            if *pday == day {
                *stored.entry(key.clone()).or_insert(0) += t.prompt + t.completion;
            }
        }
        for key in stored.keys() {
            d.seen.insert(key.clone());
        }
        d.totals = stored;
        Ok(())
    }

    async fn write_pending(&self, store: &Store) -> Result<usize, StoreError> {
        let pending = std::mem::take(&mut self.day().pending);
        if pending.is_empty() {
            return Ok(0);
        }
        let rows: Vec<UsageRow> = pending
            .iter()
            .map(|((day, key, model), (requests, t))| UsageRow {
                day: day.clone(),
                key: key.clone(),
                model: model.clone(),
                requests: *requests,
                prompt_tokens: t.prompt,
                completion_tokens: t.completion,
            })
            .collect();
        match store.add_usage(&rows).await {
            Ok(()) => Ok(rows.len()),
            Err(e) => {
                let mut d = self.day();
                for (k, (n, t)) in pending {
                    let e = d.pending.entry(k).or_insert((0, Tokens::default()));
                    e.0 += n;
                    e.1.prompt += t.prompt;
                    e.1.completion += t.completion;
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::Privacy;

    fn key(rpm: Option<u32>, budget: Option<u64>) -> ApiKey {
        ApiKey {
            name: "k".into(),
            privacy: Privacy::AllowCloud,
            models: None,
            requests_per_minute: rpm,
            daily_token_budget: budget,
        }
    }

    #[tokio::test]
    async fn budgets_persist_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("r.sqlite");
        let store = Store::open(&db).await.unwrap();
        let ledger = Ledger::load(&store).await.unwrap();
        let k = key(None, Some(100));
        ledger.admit(&k).unwrap();
        ledger.record(
            "k",
            "m",
            Tokens {
                prompt: 60,
                completion: 50,
            },
        );
        let e = ledger.admit(&k).unwrap_err();
        assert_eq!(e.code, "budget_exceeded");
        assert!(e.retry_after.unwrap() <= Duration::from_secs(86_400));
        assert_eq!(ledger.flush(&store).await.unwrap(), 1);
        store.close().await;

        let store = Store::open(&db).await.unwrap();
        let ledger = Ledger::load(&store).await.unwrap();
        assert_eq!(ledger.tokens_today("k"), 110);
        assert_eq!(ledger.admit(&k).unwrap_err().code, "budget_exceeded");
        let rows = store
            .usage_on(&clock::utc_day(clock::unix_now()))
            .await
            .unwrap();
        assert_eq!(rows[0].requests, 1);
    }

    #[tokio::test]
    async fn budgets_reset_at_utc_midnight_and_rows_keep_their_day() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.sqlite")).await.unwrap();
        let clock = Arc::new(hwc_ai_core::clock::ManualClock::at(1_795_305_600 - 2));
        let ledger = Ledger::load_with(&store, clock.clone()).await.unwrap();
        let k = key(None, Some(100));
        ledger.admit(&k).unwrap();
        let used = Tokens {
            prompt: 90,
            completion: 20,
        };
        ledger.record("k", "m", used);
        assert_eq!(ledger.admit(&k).unwrap_err().code, "budget_exceeded");
        clock.advance(Duration::from_secs(3));
        assert_eq!(ledger.tokens_today("k"), 0, "a new UTC day");
        ledger.admit(&k).unwrap();
        ledger.flush(&store).await.unwrap();
        let before = store.usage_on("2026-11-21").await.unwrap();
        assert_eq!(
            before.len(),
            1,
            "the tokens stay booked on the day they were used"
        );
        assert!(store.usage_on("2026-11-22").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn rate_limit_gives_retry_after() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.sqlite")).await.unwrap();
        let ledger = Ledger::load(&store).await.unwrap();
        let k = key(Some(2), None);
        ledger.admit(&k).unwrap();
        ledger.admit(&k).unwrap();
        let e = ledger.admit(&k).unwrap_err();
        assert_eq!(e.status, 429);
        assert!(e.retry_after.unwrap() >= Duration::from_secs(1));
    }

    #[tokio::test]
    async fn export_sets_budget_and_usage_gauges() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.sqlite")).await.unwrap();
        let ledger = Ledger::load(&store).await.unwrap();
        let mut registry = prometheus_client::registry::Registry::default();
        let m = RouterMetrics::register(&mut registry);
        ledger.admit(&key(None, Some(1000))).unwrap();
        ledger.record(
            "k",
            "m",
            Tokens {
                prompt: 30,
                completion: 12,
            },
        );
        ledger.record("nobudget", "m", Tokens::default());
        ledger.export(&m);
        let k = KeyLabel { key: "k".into() };
        assert_eq!(m.key_budget.get_or_create(&k).get(), 1000);
        assert_eq!(m.key_tokens_today.get_or_create(&k).get(), 42);
        let other = KeyLabel {
            key: "nobudget".into(),
        };
        assert_eq!(m.key_tokens_today.get_or_create(&other).get(), 0);
    }
}
