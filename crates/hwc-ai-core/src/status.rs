//! The `/status` envelope every daemon answers in.
//!
//! `format`, `daemon`, `version` and `uptime_s` come first and mean the same
//! everywhere; the daemon's own fields follow, flattened from a serde struct
//! defined in the daemon's lib so the `hwc-ai` CLI deserializes the same
//! type the daemon serializes. `format` is bumped only on an incompatible
//! change of that struct, so a client can refuse a shape it does not know
//! instead of misreading it.

use serde::{Deserialize, Serialize};
use std::time::Instant;

/// A `/status` document: the common header and the daemon's own `body`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope<T> {
    /// Version of the daemon's status shape.
    pub format: u32,
    /// The daemon's name (`hwc-model-router`).
    pub daemon: String,
    /// The daemon's version.
    pub version: String,
    /// Seconds since the daemon started.
    pub uptime_s: u64,
    /// The daemon's own fields.
    #[serde(flatten)]
    pub body: T,
}

/// What a daemon needs to wrap its status: its name, version, shape
/// version and start time, fixed at startup.
#[derive(Debug, Clone)]
pub struct StatusHeader {
    daemon: &'static str,
    version: &'static str,
    format: u32,
    started: Instant,
}

impl StatusHeader {
    /// A header for `daemon` at `version` (pass `env!("CARGO_PKG_VERSION")`)
    /// whose status shape is `format`; uptime counts from now.
    pub fn new(daemon: &'static str, version: &'static str, format: u32) -> Self {
        Self {
            daemon,
            version,
            format,
            started: Instant::now(),
        }
    }

    /// `body` inside the envelope, with the uptime as of now.
    pub fn wrap<T>(&self, body: T) -> Envelope<T> {
        Envelope {
            format: self.format,
            daemon: self.daemon.to_string(),
            version: self.version.to_string(),
            uptime_s: self.started.elapsed().as_secs(),
            body,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Mine {
        targets_up: u32,
    }

    #[test]
    fn header_first_then_the_daemons_fields_and_back() {
        let h = StatusHeader::new("hwc-x", "1.2.3", 4);
        let json = serde_json::to_value(h.wrap(Mine { targets_up: 2 })).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"format": 4, "daemon": "hwc-x", "version": "1.2.3", "uptime_s": 0, "targets_up": 2})
        );
        let back: Envelope<Mine> = serde_json::from_value(json).unwrap();
        assert_eq!(back.body, Mine { targets_up: 2 });
    }
}
