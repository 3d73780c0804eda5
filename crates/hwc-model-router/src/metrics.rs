//! The router's own metrics (`hwc_router_*`), beside the HTTP ones from
//! hwc-ai-core. Labels are model, backend, outcome and reason names from
//! the config: bounded by it, never by client input.

use hwc_ai_core::metrics::latency_histogram;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Resolved model.
    pub model: String,
    /// Backend that answered, or `none`.
    pub backend: String,
    /// `ok`, `client_error`, `upstream_error`, `rate_limited`, `cancelled`...
    pub outcome: &'static str,
}

/// Model and backend.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelBackend {
    /// Resolved model.
    pub model: String,
    /// Backend.
    pub backend: String,
}

/// Tokens by model and direction.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// Resolved model.
    pub model: String,
    /// API key name.
    pub key: String,
    /// `prompt` or `completion`.
    pub kind: &'static str,
}

/// A fallback from one backend to the next.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FallbackLabels {
    /// Resolved model.
    pub model: String,
    /// Backend that failed.
    pub backend: String,
    /// `connect`, `timeout`, `first_token_timeout`, `status_5xx`, `status_429`, `bad_body`, `stream_error`.
    pub reason: &'static str,
}

/// One backend.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabel {
    /// Backend.
    pub backend: String,
}

/// An API key, by name (names come from the keys file, so they are bounded).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyLabel {
    /// Key name.
    pub key: String,
}

/// A routing decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `direct`, `alias`, `auto-default`, `auto-strong`.
    pub decision: &'static str,
    /// The kind of rule that decided: `direct`, `alias`, `header`,
    /// `prompt_chars`, `tools`, `messages`, `marker`, `none`.
    pub rule: &'static str,
    /// Model chosen.
    pub model: String,
}

/// Every router metric.
#[derive(Clone)]
pub struct RouterMetrics {
    /// Requests by model, backend and outcome.
    pub requests: Family<RequestLabels, Counter>,
    /// Whole request latency by model and backend.
    pub latency: Family<ModelBackend, Histogram>,
    /// Time to first streamed token by model and backend.
    pub ttft: Family<ModelBackend, Histogram>,
    /// Time the router itself added.
    pub overhead: Histogram,
    /// Tokens in and out.
    pub tokens: Family<TokenLabels, Counter>,
    /// Fallbacks to a next candidate.
    pub fallbacks: Family<FallbackLabels, Counter>,
    /// Replica cooldowns started.
    pub cooldowns: Family<BackendLabel, Counter>,
    /// 1 while a backend has a replica in rotation.
    pub backend_up: Family<BackendLabel, Gauge>,
    /// Routing decisions.
    pub decisions: Family<DecisionLabels, Counter>,
    /// Idempotent answers replayed from the store.
    pub idempotent_replays: Counter,
    /// Daily token budget per key (keys with a budget).
    pub key_budget: Family<KeyLabel, Gauge>,
    /// Tokens booked today (UTC) per key, for the budget alerts.
    pub key_tokens_today: Family<KeyLabel, Gauge>,
}

impl RouterMetrics {
    /// Registers every router metric.
    pub fn register(r: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            ttft: Family::new_with_constructor(latency_histogram),
            overhead: Histogram::new(exponential_buckets(0.00001, 2.0, 18)),
            tokens: Family::default(),
            fallbacks: Family::default(),
            cooldowns: Family::default(),
            backend_up: Family::default(),
            decisions: Family::default(),
            idempotent_replays: Counter::default(),
            key_budget: Family::default(),
            key_tokens_today: Family::default(),
        };
        r.register(
            "requests",
            "Model requests by model, backend and outcome",
            m.requests.clone(),
        );
        r.register_with_unit(
            "request_duration",
            "Model request latency, end to end",
            Unit::Seconds,
            m.latency.clone(),
        );
        r.register_with_unit(
            "time_to_first_token",
            "Time from request to first streamed token",
            Unit::Seconds,
            m.ttft.clone(),
        );
        r.register_with_unit(
            "overhead",
            "Time the router added: total minus time waiting on upstreams",
            Unit::Seconds,
            m.overhead.clone(),
        );
        r.register(
            "tokens",
            "Tokens accounted, by model, key and kind",
            m.tokens.clone(),
        );
        r.register(
            "fallbacks",
            "Attempts that failed over to the next candidate, by reason",
            m.fallbacks.clone(),
        );
        r.register(
            "backend_cooldowns",
            "Replica cooldowns started",
            m.cooldowns.clone(),
        );
        r.register(
            "backend_up",
            "1 while the backend has a replica in rotation",
            m.backend_up.clone(),
        );
        r.register(
            "route_decisions",
            "Routing decisions by kind and chosen model",
            m.decisions.clone(),
        );
        r.register(
            "idempotent_replays",
            "Answers replayed for a repeated Idempotency-Key",
            m.idempotent_replays.clone(),
        );
        r.register(
            "key_budget_tokens",
            "Daily token budget of a key (keys with a budget)",
            m.key_budget.clone(),
        );
        r.register(
            "key_tokens_today",
            "Tokens a key used today (UTC), prompt and completion",
            m.key_tokens_today.clone(),
        );
        m
    }

    /// Counts a finished request.
    pub fn request(&self, model: &str, backend: &str, outcome: &'static str) {
        self.requests
            .get_or_create(&RequestLabels {
                model: model.into(),
                backend: backend.into(),
                outcome,
            })
            .inc();
    }
}
