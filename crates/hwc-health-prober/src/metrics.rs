//! The prober's metrics (`hwc_prober_*`). Per-target series carry only the
//! target name and kind; latency histograms are per kind so 500 targets
//! don't make 9,000 bucket series.

use hwc_ai_core::metrics::latency_histogram;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

/// Target and kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    /// Target name.
    pub target: String,
    /// Probe kind.
    pub kind: String,
}

/// Kind only.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// Probe kind.
    pub kind: String,
}

/// A state change.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChangeLabels {
    /// Target name.
    pub target: String,
    /// New state.
    pub to: &'static str,
}

/// One-hot target state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// Target name.
    pub target: String,
    /// `unknown`, `starting`, `up`, `down`.
    pub state: &'static str,
}

/// A restart attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestartLabels {
    /// Unit.
    pub unit: String,
    /// `restarted`, `dry_run`, `failed`, `capped`.
    pub result: &'static str,
}

/// A unit the prober heals.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UnitLabel {
    /// Unit.
    pub unit: String,
}

/// Every prober metric.
#[derive(Clone)]
pub struct ProberMetrics {
    /// 1 when the last probe succeeded.
    pub success: Family<TargetLabels, Gauge>,
    /// Probe latency by kind.
    pub duration: Family<KindLabel, Histogram>,
    /// Unix time of the last success.
    pub last_success: Family<TargetLabels, Gauge<f64, AtomicU64>>,
    /// Failures in a row.
    pub consecutive_failures: Family<TargetLabels, Gauge>,
    /// State changes.
    pub changes: Family<ChangeLabels, Counter>,
    /// 1 for the target's current state.
    pub state: Family<StateLabels, Gauge>,
    /// Healing actions.
    pub restarts: Family<RestartLabels, Counter>,
    /// 1 while a unit's hourly restart cap holds.
    pub restart_capped: Family<UnitLabel, Gauge>,
    /// How late probes start against their schedule.
    pub lateness: Histogram,
    /// Targets configured.
    pub targets: Gauge,
    /// Targets up.
    pub targets_up: Gauge,
}

impl ProberMetrics {
    /// Registers every prober metric.
    pub fn register(r: &mut Registry) -> Self {
        let m = Self {
            success: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            last_success: Family::default(),
            consecutive_failures: Family::default(),
            changes: Family::default(),
            state: Family::default(),
            restarts: Family::default(),
            restart_capped: Family::default(),
            lateness: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            targets: Gauge::default(),
            targets_up: Gauge::default(),
        };
        r.register(
            "probe_success",
            "1 when the target's last probe succeeded",
            m.success.clone(),
        );
        r.register_with_unit(
            "probe_duration",
            "Probe latency by kind",
            Unit::Seconds,
            m.duration.clone(),
        );
        r.register_with_unit(
            "last_success_timestamp",
            "Unix time of the target's last successful probe",
            Unit::Seconds,
            m.last_success.clone(),
        );
        r.register(
            "consecutive_failures",
            "Failed probes in a row",
            m.consecutive_failures.clone(),
        );
        r.register(
            "state_changes",
            "Target state changes, by new state",
            m.changes.clone(),
        );
        r.register(
            "target_state",
            "1 for the target's current state (unknown, starting, up, down)",
            m.state.clone(),
        );
        r.register(
            "restarts",
            "Healing actions by unit and result",
            m.restarts.clone(),
        );
        r.register(
            "restart_capped",
            "1 while the unit's hourly restart cap holds (needs a person)",
            m.restart_capped.clone(),
        );
        r.register_with_unit(
            "schedule_lateness",
            "How late probes start against their schedule",
            Unit::Seconds,
            m.lateness.clone(),
        );
        r.register("targets", "Targets configured", m.targets.clone());
        r.register("targets_up", "Targets up now", m.targets_up.clone());
        m
    }
}
