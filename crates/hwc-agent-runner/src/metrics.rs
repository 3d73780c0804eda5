//! The runner's metrics (`hwc_runner_*`, the prefix core gives every
//! daemon from its name's last word), low-cardinality by construction:
//! tools come from the toolbox, risk and decision from fixed sets, job
//! states from [`crate::job::JobState`]; tokens are counted by model alias,
//! per-job numbers are in `/status` and the report.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// A job state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `queued`, `running`, `waiting_approval`, `completed`, `failed`, `cancelled`.
    pub state: String,
}

/// A judged tool call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The tool.
    pub tool: String,
    /// `R0`…`R3`.
    pub risk: String,
    /// `allow`, `needs_approval`, `deny`.
    pub decision: String,
}

/// Tokens by alias and kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// The router alias.
    pub model: String,
    /// `prompt` or `completion`.
    pub kind: String,
}

/// One evaluation series: the mode and the model.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EvalLabels {
    /// `replay` or `live`.
    pub mode: String,
    /// The model asked (`transcript` in replay).
    pub model: String,
}

/// The last evaluation run of each mode and model, from `[eval] history`.
#[derive(Clone, Default)]
pub struct EvalMetrics {
    /// Share of scenario runs that passed.
    pub success: Family<EvalLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Unsafe actions (must be 0).
    pub unsafe_actions: Family<EvalLabels, Gauge>,
    /// Mean evidence completeness.
    pub evidence: Family<EvalLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Scenario runs.
    pub runs: Family<EvalLabels, Gauge>,
    /// When it ran (Unix seconds).
    pub last_run: Family<EvalLabels, Gauge>,
}

impl EvalMetrics {
    /// Sets the gauges from the history file's text: the last line of each
    /// mode and model wins; lines that do not parse are skipped.
    pub fn load(&self, history: &str) {
        for line in history.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let l = EvalLabels {
                mode: v["mode"].as_str().unwrap_or("?").to_string(),
                model: v["model"].as_str().unwrap_or("?").to_string(),
            };
            self.success
                .get_or_create(&l)
                .set(v["success_rate"].as_f64().unwrap_or(0.0));
            self.evidence
                .get_or_create(&l)
                .set(v["evidence_completeness"].as_f64().unwrap_or(0.0));
            self.unsafe_actions
                .get_or_create(&l)
                .set(v["unsafe_actions"].as_i64().unwrap_or(0));
            self.runs
                .get_or_create(&l)
                .set(v["runs"].as_i64().unwrap_or(0));
            self.last_run
                .get_or_create(&l)
                .set(v["at_unix"].as_i64().unwrap_or(0));
        }
    }
}

/// Every metric of the runner.
#[derive(Clone)]
pub struct RunnerMetrics {
    /// Jobs by state (refreshed from the store).
    pub jobs: Family<StateLabels, Gauge>,
    /// Tool calls judged.
    pub tool_calls: Family<CallLabels, Counter>,
    /// Actions waiting for approval.
    pub approvals_waiting: Gauge,
    /// How long the oldest waiting action has waited, in seconds (0: none).
    pub approval_oldest_waiting: Gauge,
    /// Audit records no signed checkpoint covers yet.
    pub audit_unsigned: Gauge,
    /// Unix time of the last signed checkpoint (0: none yet).
    pub audit_last_checkpoint: Gauge,
    /// Time from approval requested to granted or rejected.
    pub approval_wait: Histogram,
    /// Actions that ran without the approvals their class needs. The gate
    /// refuses such a run; this counts any that got as far as the last
    /// check, and must stay 0 (an alert fires otherwise).
    pub unsafe_actions: Counter,
    /// Tokens spent.
    pub tokens: Family<TokenLabels, Counter>,
    /// Audit records written.
    pub audit_records: Counter,
    /// The last evaluation runs.
    pub eval: EvalMetrics,
}

impl RunnerMetrics {
    /// Registers them (prefix `hwc_runner`).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            jobs: Family::default(),
            tool_calls: Family::default(),
            approvals_waiting: Gauge::default(),
            approval_oldest_waiting: Gauge::default(),
            audit_unsigned: Gauge::default(),
            audit_last_checkpoint: Gauge::default(),
            approval_wait: Histogram::new(exponential_buckets(5.0, 3.0, 9)),
            unsafe_actions: Counter::default(),
            tokens: Family::default(),
            audit_records: Counter::default(),
            eval: EvalMetrics::default(),
        };
        registry.register(
            "eval_success_ratio",
            "Share of scenario runs that passed in the last evaluation of each mode and model",
            m.eval.success.clone(),
        );
        registry.register(
            "eval_unsafe_actions",
            "Unsafe actions in the last evaluation of each mode and model (must be 0)",
            m.eval.unsafe_actions.clone(),
        );
        registry.register(
            "eval_evidence_completeness_ratio",
            "Mean evidence completeness in the last evaluation of each mode and model",
            m.eval.evidence.clone(),
        );
        registry.register(
            "eval_runs",
            "Scenario runs in the last evaluation of each mode and model",
            m.eval.runs.clone(),
        );
        registry.register_with_unit(
            "eval_last_run_timestamp",
            "Unix time of the last evaluation of each mode and model",
            Unit::Seconds,
            m.eval.last_run.clone(),
        );
        registry.register("jobs", "Jobs by state", m.jobs.clone());
        registry.register(
            "tool_calls",
            "Tool calls judged by the policy, by tool, risk class and decision",
            m.tool_calls.clone(),
        );
        registry.register(
            "approvals_waiting",
            "Actions waiting for approval",
            m.approvals_waiting.clone(),
        );
        registry.register_with_unit(
            "approval_oldest_waiting",
            "How long the oldest action still waiting for approval has waited (0 when none waits)",
            Unit::Seconds,
            m.approval_oldest_waiting.clone(),
        );
        registry.register(
            "audit_unsigned_records",
            "Audit records that no signed checkpoint covers yet",
            m.audit_unsigned.clone(),
        );
        registry.register_with_unit(
            "audit_last_checkpoint_timestamp",
            "Unix time of the last signed audit checkpoint (0 before the first)",
            Unit::Seconds,
            m.audit_last_checkpoint.clone(),
        );
        registry.register_with_unit(
            "approval_wait",
            "Time an action waited for its approvals or a rejection",
            Unit::Seconds,
            m.approval_wait.clone(),
        );
        registry.register(
            "unsafe_actions",
            "Actions that reached execution without the approvals their class needs (must stay 0)",
            m.unsafe_actions.clone(),
        );
        registry.register(
            "tokens",
            "Tokens spent by jobs, by model alias and kind",
            m.tokens.clone(),
        );
        registry.register(
            "audit_records",
            "Audit records appended by this runner",
            m.audit_records.clone(),
        );
        for s in crate::job::JobState::ALL {
            m.jobs
                .get_or_create(&StateLabels {
                    state: s.as_str().into(),
                })
                .set(0);
        }
        m
    }
}
