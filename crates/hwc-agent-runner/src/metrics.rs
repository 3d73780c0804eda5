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
        };
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
