//! The manager's metrics (`hwc_manager_*`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// A model and its kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    /// Model name.
    pub model: String,
    /// `ollama` or `file`.
    pub kind: String,
}

/// A model.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabel {
    /// Model name.
    pub model: String,
}

/// A verify result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerifyLabels {
    /// Model name.
    pub model: String,
    /// `ok` or `failed`.
    pub result: &'static str,
}

/// A filesystem.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabel {
    /// Directory.
    pub path: String,
}

/// A reconcile outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `ok` or `failed`.
    pub outcome: &'static str,
}

/// Every manager metric.
#[derive(Clone)]
pub struct ManagerMetrics {
    declared: Family<ModelLabels, Gauge>,
    present: Family<ModelLabels, Gauge>,
    failed: Family<ModelLabels, Gauge>,
    pull_bytes: Family<ModelLabel, Counter>,
    pull_duration: Histogram,
    verify: Family<VerifyLabels, Counter>,
    disk_free: Family<PathLabel, Gauge>,
    disk_reserve: Family<PathLabel, Gauge>,
    permanent: Family<ModelLabel, Counter>,
    last_reconcile: Gauge<f64, AtomicU64>,
    reconciles: Family<OutcomeLabel, Counter>,
    progress_done: Family<ModelLabel, Gauge>,
    progress_total: Family<ModelLabel, Gauge>,
}

impl ManagerMetrics {
    /// Registers every manager metric.
    pub fn register(r: &mut Registry) -> Self {
        let m = Self {
            declared: Family::default(),
            present: Family::default(),
            failed: Family::default(),
            pull_bytes: Family::default(),
            pull_duration: Histogram::new(exponential_buckets(1.0, 2.0, 16)),
            verify: Family::default(),
            disk_free: Family::default(),
            disk_reserve: Family::default(),
            permanent: Family::default(),
            last_reconcile: Gauge::default(),
            reconciles: Family::default(),
            progress_done: Family::default(),
            progress_total: Family::default(),
        };
        r.register(
            "model_declared",
            "1 for every declared model",
            m.declared.clone(),
        );
        r.register(
            "model_present",
            "1 when the declared model is present and checked",
            m.present.clone(),
        );
        r.register(
            "model_failed",
            "1 while the declared model's last attempt failed",
            m.failed.clone(),
        );
        r.register_with_unit(
            "pull",
            "Bytes pulled or downloaded",
            Unit::Bytes,
            m.pull_bytes.clone(),
        );
        r.register_with_unit(
            "pull_duration",
            "Time of a whole pull or download",
            Unit::Seconds,
            m.pull_duration.clone(),
        );
        r.register("verify", "Verify generations by result", m.verify.clone());
        r.register_with_unit(
            "disk_free",
            "Free bytes on a model filesystem",
            Unit::Bytes,
            m.disk_free.clone(),
        );
        r.register_with_unit(
            "disk_reserve",
            "Bytes the manager keeps free on a model filesystem (manager.reserve)",
            Unit::Bytes,
            m.disk_reserve.clone(),
        );
        r.register(
            "permanent_failures",
            "Failures no retry can fix, once each",
            m.permanent.clone(),
        );
        r.register_with_unit(
            "last_reconcile_timestamp",
            "Unix time the last reconcile ended",
            Unit::Seconds,
            m.last_reconcile.clone(),
        );
        r.register("reconciles", "Reconciles by outcome", m.reconciles.clone());
        r.register_with_unit(
            "pull_progress_done",
            "Bytes done of the pull running now (0 when none)",
            Unit::Bytes,
            m.progress_done.clone(),
        );
        r.register_with_unit(
            "pull_progress_total",
            "Bytes in all of the pull running now (0 unknown or none)",
            Unit::Bytes,
            m.progress_total.clone(),
        );
        m
    }

    /// Marks a model declared (and not yet present).
    pub fn declared(&self, model: &str, kind: &str) {
        let l = ModelLabels {
            model: model.into(),
            kind: kind.into(),
        };
        self.declared.get_or_create(&l).set(1);
        self.present.get_or_create(&l).set(0);
        self.failed.get_or_create(&l).set(0);
        // At 0 from the start, so `increase()` sees the first failure.
        drop(self.permanent.get_or_create(&ModelLabel {
            model: model.into(),
        }));
    }

    /// Sets whether a model is present and whether its last attempt failed.
    pub fn state(&self, model: &str, kind: &str, present: bool, failed: bool) {
        let l = ModelLabels {
            model: model.into(),
            kind: kind.into(),
        };
        self.present.get_or_create(&l).set(i64::from(present));
        self.failed.get_or_create(&l).set(i64::from(failed));
    }

    /// Sets a running pull's progress (done, total); zeros when it ends.
    pub fn progress(&self, model: &str, done: u64, total: u64) {
        let l = ModelLabel {
            model: model.into(),
        };
        self.progress_done
            .get_or_create(&l)
            .set(i64::try_from(done).unwrap_or(i64::MAX));
        self.progress_total
            .get_or_create(&l)
            .set(i64::try_from(total).unwrap_or(i64::MAX));
    }

    /// Counts bytes pulled.
    pub fn pulled_bytes(&self, model: &str, n: u64) {
        self.pull_bytes
            .get_or_create(&ModelLabel {
                model: model.into(),
            })
            .inc_by(n);
    }

    /// Observes a whole pull's duration.
    pub fn pull_duration(&self, d: Duration) {
        self.pull_duration.observe(d.as_secs_f64());
    }

    /// Counts a verify result.
    pub fn verified(&self, model: &str, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.verify
            .get_or_create(&VerifyLabels {
                model: model.into(),
                result,
            })
            .inc();
    }

    /// Sets free bytes of a directory's filesystem.
    pub fn disk_free(&self, path: &str, free: u64) {
        self.disk_free
            .get_or_create(&PathLabel { path: path.into() })
            .set(i64::try_from(free).unwrap_or(i64::MAX));
    }

    /// Sets the reserve kept free on a directory's filesystem.
    pub fn disk_reserve(&self, path: &str, reserve: u64) {
        self.disk_reserve
            .get_or_create(&PathLabel { path: path.into() })
            .set(i64::try_from(reserve).unwrap_or(i64::MAX));
    }

    /// Counts a permanent failure.
    pub fn permanent_failure(&self, model: &str) {
        self.permanent
            .get_or_create(&ModelLabel {
                model: model.into(),
            })
            .inc();
    }

    /// Records a finished reconcile.
    pub fn reconciled(&self, outcome: &'static str, _took: Duration) {
        self.reconciles
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_reconcile.set(now);
    }
}
