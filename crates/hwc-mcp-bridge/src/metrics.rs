//! The bridge's metrics (`hwc_bridge_*`), low-cardinality by construction:
//! `server` comes from the config, `tool` is a name the child listed or
//! `other`, `outcome` is one of a fixed set.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Labels of a tools/call counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The server.
    pub server: String,
    /// The tool (`other` for names the child never listed).
    pub tool: String,
    /// `ok`, `tool_error`, `error`, `denied`, `timeout`, `busy`,
    /// `too_large`, `child_exited`, `unavailable`, `cancelled`.
    pub outcome: String,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabels {
    /// The server.
    pub server: String,
    /// The tool.
    pub tool: String,
}

/// Labels naming a server.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabels {
    /// The server.
    pub server: String,
}

/// Every metric of the bridge.
#[derive(Clone)]
pub struct BridgeMetrics {
    calls: Family<CallLabels, Counter>,
    duration: Family<ToolLabels, Histogram>,
    children_up: Family<ServerLabels, Gauge>,
    restarts: Family<ServerLabels, Counter>,
    sessions: Family<ServerLabels, Gauge>,
}

impl BridgeMetrics {
    /// Registers them in `registry` (prefix `hwc_bridge`).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            calls: Family::default(),
            duration: Family::new_with_constructor(hwc_ai_core::metrics::latency_histogram),
            children_up: Family::default(),
            restarts: Family::default(),
            sessions: Family::default(),
        };
        registry.register(
            "calls",
            "tools/call requests, by server, tool and outcome",
            m.calls.clone(),
        );
        registry.register_with_unit(
            "call_duration",
            "Time from a tools/call request to its answer, by server and tool",
            Unit::Seconds,
            m.duration.clone(),
        );
        registry.register(
            "children_up",
            "1 while the server's child is running and initialized",
            m.children_up.clone(),
        );
        registry.register(
            "child_restarts",
            "Restarts of a server's child",
            m.restarts.clone(),
        );
        registry.register(
            "sessions_open",
            "Session-era client sessions open, by server",
            m.sessions.clone(),
        );
        m
    }

    /// Declares a server, so its series exist (at 0) before anything happens.
    pub fn declare(&self, server: &str) {
        let l = ServerLabels {
            server: server.into(),
        };
        let _ = self.children_up.get_or_create(&l);
        let _ = self.restarts.get_or_create(&l);
        let _ = self.sessions.get_or_create(&l);
    }

    /// Counts a finished tools/call and its duration.
    pub fn call(&self, server: &str, tool: &str, outcome: &str, seconds: f64) {
        self.calls
            .get_or_create(&CallLabels {
                server: server.into(),
                tool: tool.into(),
                outcome: outcome.into(),
            })
            .inc();
        self.duration
            .get_or_create(&ToolLabels {
                server: server.into(),
                tool: tool.into(),
            })
            .observe(seconds);
    }

    /// Sets whether the child is up.
    pub fn child_up(&self, server: &str, up: bool) {
        self.children_up
            .get_or_create(&ServerLabels {
                server: server.into(),
            })
            .set(i64::from(up));
    }

    /// Sets how many children of a per-session server are running.
    pub fn child_count(&self, server: &str, n: usize) {
        self.children_up
            .get_or_create(&ServerLabels {
                server: server.into(),
            })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts a restart.
    pub fn restarted(&self, server: &str) {
        self.restarts
            .get_or_create(&ServerLabels {
                server: server.into(),
            })
            .inc();
    }

    /// Sets the number of open sessions.
    pub fn sessions_open(&self, server: &str, n: usize) {
        self.sessions
            .get_or_create(&ServerLabels {
                server: server.into(),
            })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}
