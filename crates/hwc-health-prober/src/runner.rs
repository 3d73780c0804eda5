//! The probe loops: one task per target on its own schedule (spread over
//! the interval so 500 targets don't fire at once), state and metrics after
//! each probe, and healing when a target keeps failing.

use crate::config::{HealingConfig, Target};
use crate::healing::{Action, Decision, Healer};
use crate::metrics::{
    ChangeLabels, KindLabel, ProberMetrics, RestartLabels, StateLabels, TargetLabels, UnitLabel,
};
use crate::probe::Probers;
use crate::state::{Health, Outcome, TargetState};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// Slack beyond two intervals plus a timeout before a loop counts as stalled.
const WATCHDOG_GRACE: Duration = Duration::from_secs(5);

/// Healing actions kept for `/status`.
const ACTIONS_KEPT: usize = 50;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One target and everything known about it.
pub struct TargetRuntime {
    /// Its config.
    pub target: Target,
    /// Its state.
    pub state: Mutex<TargetState>,
    healer: Mutex<Healer>,
    /// The last healing action on it.
    pub last_action: Mutex<Option<Action>>,
    /// When its loop last started a probe (ms since the prober started).
    last_start_ms: AtomicU64,
    series: Series,
}

/// A target's metric series, looked up once: the handles share their
/// values with the registry, so a probe updates them without hashing labels.
struct Series {
    success: Gauge,
    last_success: Gauge<f64, AtomicU64>,
    consecutive_failures: Gauge,
    duration: Histogram,
    /// 1 while the hourly restart cap holds for the target's unit.
    restart_capped: Option<Gauge>,
}

impl Series {
    fn new(m: &ProberMetrics, target: &Target) -> Self {
        let labels = TargetLabels {
            target: target.name.clone(),
            kind: target.check.kind().to_string(),
        };
        // Healed units get their series at 0 from the start, so
        // `increase()` counts the first restart and panels show a zero.
        let restart_capped = target.restart_unit.as_ref().map(|unit| {
            drop(m.restarts.get_or_create(&RestartLabels {
                unit: unit.clone(),
                result: "restarted",
            }));
            m.restart_capped
                .get_or_create(&UnitLabel { unit: unit.clone() })
                .clone()
        });
        Self {
            restart_capped,
            success: m.success.get_or_create(&labels).clone(),
            last_success: m.last_success.get_or_create(&labels).clone(),
            consecutive_failures: m.consecutive_failures.get_or_create(&labels).clone(),
            duration: m
                .duration
                .get_or_create(&KindLabel {
                    kind: labels.kind.clone(),
                })
                .clone(),
        }
    }
}

/// The prober: targets, probers, metrics.
pub struct Prober {
    /// Every target.
    pub targets: Vec<Arc<TargetRuntime>>,
    probers: Probers,
    metrics: ProberMetrics,
    healing: HealingConfig,
    started: Instant,
    watchdog_grace: Duration,
    /// Recent healing actions, newest last.
    pub actions: Mutex<VecDeque<Action>>,
}

impl Prober {
    /// A prober for `targets`.
    pub fn new(
        targets: Vec<Target>,
        probers: Probers,
        metrics: ProberMetrics,
        healing: HealingConfig,
    ) -> Self {
        metrics.targets.set(targets.len() as i64);
        let targets = targets
            .into_iter()
            .map(|target| {
                for state in [Health::Unknown, Health::Starting, Health::Up, Health::Down] {
                    metrics
                        .state
                        .get_or_create(&StateLabels {
                            target: target.name.clone(),
                            state: state.as_str(),
                        })
                        .set(i64::from(state == Health::Unknown));
                }
                Arc::new(TargetRuntime {
                    series: Series::new(&metrics, &target),
                    healer: Mutex::new(Healer::new(&healing)),
                    target,
                    state: Mutex::new(TargetState::default()),
                    last_action: Mutex::new(None),
                    last_start_ms: AtomicU64::new(0),
                })
            })
            .collect();
        Self {
            targets,
            probers,
            metrics,
            healing,
            started: Instant::now(),
            watchdog_grace: WATCHDOG_GRACE,
            actions: Mutex::new(VecDeque::new()),
        }
    }

    /// The same prober with another stall grace (tests use a short one).
    pub fn with_watchdog_grace(mut self, grace: Duration) -> Self {
        self.watchdog_grace = grace;
        self
    }

    /// Targets up now, and in all.
    pub fn counts(&self) -> (usize, usize) {
        let up = self
            .targets
            .iter()
            .filter(|t| lock(&t.state).state == Health::Up)
            .count();
        (up, self.targets.len())
    }

    /// Whether every loop started a probe recently enough: the watchdog's
    /// question. A loop that stalls (a probe stuck past its timeout, a
    /// starved runtime) fails it.
    pub fn loops_on_time(&self) -> Result<(), String> {
        let now = self.started.elapsed();
        for t in &self.targets {
            let last = Duration::from_millis(t.last_start_ms.load(Ordering::Relaxed));
            let allowed = t.target.interval * 2 + t.target.timeout + self.watchdog_grace;
            if now > allowed && now.saturating_sub(last) > allowed {
                return Err(format!(
                    "the probe loop of `{}` has not run for {:.1}s",
                    t.target.name,
                    now.saturating_sub(last).as_secs_f64()
                ));
            }
        }
        Ok(())
    }

    /// Starts one loop per target in `tasks`; they stop when the group is cancelled.
    pub fn spawn_on(self: &Arc<Self>, tasks: &hwc_ai_core::tasks::TaskGroup) {
        for t in &self.targets {
            let me = self.clone();
            let t = t.clone();
            tasks.spawn_until_cancelled("probe loop", async move { me.run(t).await });
        }
    }

    async fn run(self: Arc<Self>, t: Arc<TargetRuntime>) {
        let interval = t.target.interval;
        // Spread first probes over the interval, by name, so restarts keep the spread.
        let offset = spread(&t.target.name, interval);
        let mut next = tokio::time::Instant::now() + offset;
        loop {
            tokio::time::sleep_until(next).await;
            let now = tokio::time::Instant::now();
            self.metrics
                .lateness
                .observe(now.duration_since(next).as_secs_f64());
            t.last_start_ms
                .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
            self.probe_once(&t).await;
            next += interval;
            let now = tokio::time::Instant::now();
            if next < now {
                // Fell behind (a probe took longer than the interval): skip, don't burst.
                next = now + interval;
            }
        }
    }

    /// Probes a target once and applies the result: state, metrics, healing.
    pub async fn probe_once(&self, t: &TargetRuntime) {
        let target = &t.target;
        let start = Instant::now();
        let outcome = match tokio::time::timeout(target.timeout, self.probers.probe(target)).await {
            Ok(o) => o,
            Err(_) => Outcome::Down(format!(
                "no answer within the {}s timeout",
                target.timeout.as_secs_f64()
            )),
        };
        let m = &t.series;
        m.duration.observe(start.elapsed().as_secs_f64());
        m.success.set(i64::from(matches!(outcome, Outcome::Up(_))));
        if matches!(outcome, Outcome::Up(_)) {
            let unix = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            m.last_success.set(unix);
        }
        let (changed, failures, now_state) = {
            let mut s = lock(&t.state);
            let changed = s.apply(&outcome, target.failure_threshold, target.success_threshold);
            (changed, s.consecutive_failures, s.state)
        };
        m.consecutive_failures.set(i64::from(failures));
        if let Some(prev) = changed {
            self.state_changed(t, prev, now_state, &outcome);
        }
        if let Some(unit) = &target.restart_unit {
            self.heal(t, unit, failures, now_state).await;
        }
    }

    fn state_changed(&self, t: &TargetRuntime, prev: Health, now: Health, outcome: &Outcome) {
        let name = &t.target.name;
        for (state, v) in [(prev, 0), (now, 1)] {
            self.metrics
                .state
                .get_or_create(&StateLabels {
                    target: name.clone(),
                    state: state.as_str(),
                })
                .set(v);
        }
        self.metrics
            .changes
            .get_or_create(&ChangeLabels {
                target: name.clone(),
                to: now.as_str(),
            })
            .inc();
        match (now, outcome) {
            (Health::Down, Outcome::Down(why)) => {
                tracing::warn!(target_name = %name, from = prev.as_str(), error = %why, "target down")
            }
            _ => {
                tracing::info!(target_name = %name, from = prev.as_str(), to = now.as_str(), "target state changed")
            }
        }
        let (up, total) = self.counts();
        self.metrics.targets_up.set(up as i64);
        hwc_ai_core::notify::status(&format!("{up} of {total} targets up"));
    }

    async fn heal(&self, t: &TargetRuntime, unit: &str, failures: u32, state: Health) {
        let now = Instant::now();
        let decision = {
            let mut h = lock(&t.healer);
            if state == Health::Up {
                if h.recovered(&self.healing) {
                    if let Some(g) = &t.series.restart_capped {
                        g.set(0);
                    }
                }
                return;
            }
            let d = h.decide(now, failures, t.target.restart_after, &self.healing);
            if d == Decision::Restart {
                // Counted before the call, so a slow D-Bus can't let a second one through.
                h.restarted(now, &self.healing);
            }
            d
        };
        if decision == Decision::Restart {
            if let Some(g) = &t.series.restart_capped {
                g.set(0);
            }
        }
        let action = match decision {
            Decision::Wait => return,
            Decision::Capped => {
                if let Some(g) = &t.series.restart_capped {
                    g.set(1);
                }
                let n = lock(&t.healer).restarts_last_hour(now);
                tracing::error!(target_name = %t.target.name, unit, restarts = n, "restart cap reached; not restarting again this hour");
                Action::now(unit, "capped", format!("{n} restarts in the last hour (healing.max_restarts_per_hour); needs a person"))
            }
            Decision::Restart if self.healing.dry_run => {
                tracing::warn!(target_name = %t.target.name, unit, failures, "dry run: would restart unit");
                Action::now(
                    unit,
                    "dry_run",
                    format!("would restart after {failures} consecutive failures"),
                )
            }
            Decision::Restart => match self.probers.systemd.restart(unit).await {
                Ok(job) => {
                    tracing::warn!(target_name = %t.target.name, unit, failures, job = %job, "restarted unit");
                    Action::now(
                        unit,
                        "restarted",
                        format!("after {failures} consecutive failures; job {job}"),
                    )
                }
                Err(e) => {
                    tracing::error!(target_name = %t.target.name, unit, error = %e, "restart failed");
                    Action::now(unit, "failed", e)
                }
            },
        };
        self.metrics
            .restarts
            .get_or_create(&RestartLabels {
                unit: unit.to_string(),
                result: action.result,
            })
            .inc();
        *lock(&t.last_action) = Some(action.clone());
        let mut actions = lock(&self.actions);
        actions.push_back(action);
        while actions.len() > ACTIONS_KEPT {
            actions.pop_front();
        }
    }
}

/// A stable offset in `[0, interval)` from the target's name.
fn spread(name: &str, interval: Duration) -> Duration {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let ms = interval.as_millis().max(1) as u64;
    Duration::from_millis(h % ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProberConfig;

    fn prober() -> Prober {
        let cfg: ProberConfig = hwc_ai_core::config::load_str(
            "[[targets]]\nname = \"t\"\nkind = \"tcp\"\naddress = \"127.0.0.1:9\"\ninterval = \"50ms\"\ntimeout = \"20ms\"\n",
        )
        .unwrap();
        let mut registry = prometheus_client::registry::Registry::default();
        Prober::new(
            cfg.targets().unwrap(),
            Probers::new().unwrap(),
            ProberMetrics::register(&mut registry),
            cfg.healing,
        )
        .with_watchdog_grace(Duration::from_millis(200))
    }

    #[tokio::test]
    async fn the_watchdog_question_fails_when_loops_stall_and_holds_while_they_run() {
        // Allowed: 2 x 50 ms + 20 ms + 200 ms grace = 320 ms.
        let stalled = prober();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let err = stalled.loops_on_time().unwrap_err();
        assert!(err.contains("probe loop of `t`"), "{err}");

        let running = Arc::new(prober());
        let tasks = hwc_ai_core::tasks::TaskGroup::new();
        running.spawn_on(&tasks);
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            running.loops_on_time().unwrap();
        }
        assert!(tasks.shutdown(Duration::from_secs(1)).await.is_empty());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            running.loops_on_time().is_err(),
            "stopped loops stop the pets"
        );
    }
}
