//! The `[telemetry]` section every daemon's config has, and what
//! validation says about it.

use serde::{Deserialize, Serialize};

/// The `[telemetry]` section every daemon's config has: where spans go and
/// how many traces started here are kept. Export is off unless
/// `otlp_endpoint` is set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// OTLP/HTTP (protobuf) base URL of a collector, such as
    /// `http://127.0.0.1:4318`; spans are posted to `<base>/v1/traces`.
    /// Absent: nothing is exported.
    pub otlp_endpoint: Option<String>,
    /// Fraction (0.0 to 1.0) of the traces started here that are sampled. A
    /// caller's sampled flag is honoured as it came (parent-based).
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            sample_ratio: 1.0,
        }
    }
}

impl TelemetryConfig {
    /// Problems serde cannot see, each saying what to change.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            out.push(format!(
                "telemetry.sample_ratio is {}; set a fraction from 0.0 (sample no trace started here) to 1.0 (sample every one)",
                self.sample_ratio
            ));
        }
        if let Some(raw) = &self.otlp_endpoint {
            out.extend(endpoint_problem(raw));
        }
        out
    }

    /// Where spans are posted: `<otlp_endpoint>/v1/traces`, or `None` when
    /// export is off (or the endpoint is unusable, which validation reports).
    pub fn traces_url(&self) -> Option<String> {
        let raw = self.otlp_endpoint.as_deref()?;
        if endpoint_problem(raw).is_some() {
            return None;
        }
        let url = reqwest::Url::parse(raw).ok()?;
        Some(format!("{}/v1/traces", url.as_str().trim_end_matches('/')))
    }
}

/// What is wrong with an `otlp_endpoint`, if anything. The URL is not
/// repeated when it carries credentials.
fn endpoint_problem(raw: &str) -> Option<String> {
    const EXAMPLE: &str = "such as \"http://127.0.0.1:4318\"";
    if raw.trim().is_empty() {
        return Some(format!("telemetry.otlp_endpoint is empty; remove the key to turn export off, or set a collector's OTLP/HTTP base URL {EXAMPLE}"));
    }
    let url = match reqwest::Url::parse(raw) {
        Ok(u) => u,
        Err(e) => {
            return Some(format!("telemetry.otlp_endpoint `{raw}` does not parse ({e}); write a full URL, with http:// or https://, {EXAMPLE}"))
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Some("telemetry.otlp_endpoint carries a user name or password; take them out of the URL (it is logged) and use a collector that needs none, such as one on loopback".into());
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Some(format!(
            "telemetry.otlp_endpoint `{raw}` is not http:// or https://; OTLP/HTTP needs one of them, {EXAMPLE}"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Some(format!(
            "telemetry.otlp_endpoint `{raw}` names no host; write {EXAMPLE}"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Some(format!("telemetry.otlp_endpoint `{raw}` has a query or fragment; give only scheme, host, port and an optional path prefix"));
    }
    if url.path().trim_end_matches('/').ends_with("/v1/traces") {
        return Some(format!("telemetry.otlp_endpoint `{raw}` ends in /v1/traces; give the base URL, {EXAMPLE}: the exporter adds /v1/traces itself"));
    }
    None
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// Export was asked for outside the async runtime it sends from.
    #[error("telemetry: the OTLP exporter must be started inside the daemon's async runtime")]
    NoRuntime,
    /// The exporter could not be built.
    #[error("telemetry: cannot build the OTLP/HTTP exporter for telemetry.otlp_endpoint: {0}")]
    Exporter(String),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn config_validation_says_what_to_change() {
        let cfg = |endpoint: Option<&str>, ratio: f64| TelemetryConfig {
            otlp_endpoint: endpoint.map(str::to_owned),
            sample_ratio: ratio,
        };
        assert!(TelemetryConfig::default().problems().is_empty());
        assert_eq!(TelemetryConfig::default().traces_url(), None);
        let good = cfg(Some("http://127.0.0.1:4318"), 0.25);
        assert!(good.problems().is_empty(), "{:?}", good.problems());
        assert_eq!(
            good.traces_url().as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(
            cfg(Some("https://otel.example:4318/prefix/"), 1.0)
                .traces_url()
                .as_deref(),
            Some("https://otel.example:4318/prefix/v1/traces")
        );
        let cases: &[(Option<&str>, f64, &str)] = &[
            (None, 1.5, "telemetry.sample_ratio is 1.5"),
            (None, -0.1, "from 0.0"),
            (None, f64::NAN, "telemetry.sample_ratio is NaN"),
            (Some(""), 1.0, "remove the key to turn export off"),
            (Some("127.0.0.1:4318"), 1.0, "with http:// or https://"),
            (Some("localhost:4318"), 1.0, "not http:// or https://"),
            (Some("not a url"), 1.0, "does not parse"),
            (Some("ftp://127.0.0.1:4318"), 1.0, "not http:// or https://"),
            (
                Some("http://127.0.0.1:4318/v1/traces"),
                1.0,
                "the exporter adds /v1/traces itself",
            ),
            (Some("http://127.0.0.1:4318/?a=b"), 1.0, "query or fragment"),
        ];
        for (endpoint, ratio, needle) in cases {
            let c = cfg(*endpoint, *ratio);
            let p = c.problems().join("; ");
            assert!(p.contains(needle), "{endpoint:?} {ratio}: {p}");
            if endpoint.is_some() {
                assert_eq!(c.traces_url(), None);
            }
        }
        let secret = cfg(Some("http://user:hunter2@127.0.0.1:4318"), 1.0).problems();
        assert_eq!(secret.len(), 1);
        assert!(secret[0].contains("user name or password"));
        assert!(!secret[0].contains("hunter2"), "{secret:?}");
    }

    #[test]
    fn config_rejects_unknown_keys_and_reads_both() {
        #[derive(Debug, Default, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        struct Wrapper {
            telemetry: TelemetryConfig,
        }
        impl crate::config::Validate for Wrapper {
            fn validate(&self) -> Result<(), Vec<String>> {
                let p = self.telemetry.problems();
                if p.is_empty() {
                    Ok(())
                } else {
                    Err(p)
                }
            }
        }
        let w: Wrapper = crate::config::load_str(
            "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\nsample_ratio = 0.25\n",
        )
        .unwrap();
        assert_eq!(
            w.telemetry.otlp_endpoint.as_deref(),
            Some("http://127.0.0.1:4318")
        );
        assert_eq!(w.telemetry.sample_ratio, 0.25);
        let w: Wrapper = crate::config::load_str("").unwrap();
        assert_eq!(w.telemetry, TelemetryConfig::default());
        let err = crate::config::load_str::<Wrapper>("[telemetry]\nendpoint = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("endpoint") && err.contains("telemetry"),
            "{err}"
        );
        let err = crate::config::load_str::<Wrapper>("[telemetry]\nsample_ratio = 2.0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("telemetry.sample_ratio is 2"), "{err}");
    }
}
