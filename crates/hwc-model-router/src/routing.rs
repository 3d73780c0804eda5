//! From the model a client names to an ordered list of candidates: aliases,
//! the `auto` model's escalation rules, key permissions and privacy.

use crate::backends::Backend;
use crate::config::{AutoConfig, Privacy, RouterConfig};
use crate::keys::ApiKey;
use crate::request::Signals;
use hwc_ai_core::ApiError;
use regex::RegexSet;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One place a request can be sent.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The backend.
    pub backend: Arc<Backend>,
    /// The model name the backend knows.
    pub upstream_model: String,
}

/// Where a request goes and why; the reason is sent back in `x-hwc-route`.
#[derive(Debug, Clone)]
pub struct Route {
    /// The `[models]` entry chosen.
    pub model: String,
    /// Why: `direct`, `alias`, `auto-default`, `auto-strong`.
    pub decision: &'static str,
    /// The kind of rule behind it (`direct`, `alias`, `header`,
    /// `prompt_chars`, `tools`, `messages`, `marker`, `none`): a metric label.
    pub rule: &'static str,
    /// The rule behind the decision, e.g. `tools 9>=8`.
    pub reason: String,
    /// Candidates in order, after privacy filtering.
    pub candidates: Vec<Candidate>,
}

impl Route {
    /// The `x-hwc-route` header value.
    pub fn header(&self) -> String {
        format!(
            "model={}; decision={}; reason={}",
            self.model, self.decision, self.reason
        )
    }
}

/// The compiled routing table.
#[derive(Debug)]
pub struct RoutingTable {
    models: BTreeMap<String, Vec<Candidate>>,
    aliases: BTreeMap<String, String>,
    auto: Option<Escalation>,
    auto_name: String,
    /// Every backend, by name.
    pub backends: HashMap<String, Arc<Backend>>,
}

/// The `auto` model's rules.
#[derive(Debug)]
pub struct Escalation {
    default_model: String,
    strong_model: Option<String>,
    header: String,
    prompt_chars: usize,
    tools: usize,
    messages: usize,
    markers: RegexSet,
    marker_sources: Vec<String>,
}

impl Escalation {
    /// Compiles `[auto]`; `None` when no default model is set.
    pub fn new(cfg: &AutoConfig) -> Result<Option<Self>, regex::Error> {
        let Some(default_model) = cfg.default_model.clone() else {
            return Ok(None);
        };
        Ok(Some(Self {
            default_model,
            strong_model: cfg.strong_model.clone(),
            header: cfg.header.to_ascii_lowercase(),
            prompt_chars: cfg.prompt_chars,
            tools: cfg.tools,
            messages: cfg.messages,
            markers: RegexSet::new(&cfg.markers)?,
            marker_sources: cfg.markers.clone(),
        }))
    }

    /// The header that forces a decision.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// Strong or default, and the rule that decided. Local signals only.
    /// Returns (escalate, rule, reason): `rule` is the kind of rule that
    /// decided (a bounded metric label), `reason` the detail for logs and
    /// `x-hwc-route`.
    pub fn decide(&self, signals: &Signals, forced: Option<&str>) -> (bool, &'static str, String) {
        if self.strong_model.is_none() {
            return (false, "none", "no strong model configured".into());
        }
        match forced.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            Some("strong" | "1" | "true" | "yes") => {
                return (true, "header", format!("header {}", self.header))
            }
            Some("default" | "0" | "false" | "no") => {
                return (false, "header", format!("header {}", self.header))
            }
            _ => {}
        }
        if signals.prompt_chars >= self.prompt_chars {
            return (
                true,
                "prompt_chars",
                format!(
                    "prompt_chars {}>={}",
                    signals.prompt_chars, self.prompt_chars
                ),
            );
        }
        if signals.tools >= self.tools {
            return (
                true,
                "tools",
                format!("tools {}>={}", signals.tools, self.tools),
            );
        }
        if signals.messages >= self.messages {
            return (
                true,
                "messages",
                format!("messages {}>={}", signals.messages, self.messages),
            );
        }
        if let Some(i) = self.markers.matches(&signals.last_user_text).iter().next() {
            return (
                true,
                "marker",
                format!("marker {}", marker_label(&self.marker_sources[i])),
            );
        }
        (false, "none", "no rule matched".into())
    }
}

fn marker_label(src: &str) -> String {
    src.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == ' ')
        .take(24)
        .collect::<String>()
        .trim()
        .replace(' ', "_")
}

/// Escalation decision labels for metrics.
pub const DECISIONS: [&str; 4] = ["direct", "alias", "auto-default", "auto-strong"];

impl RoutingTable {
    /// Builds the table from a validated config and its backends.
    pub fn new(cfg: &RouterConfig, backends: Vec<Backend>) -> Result<Self, regex::Error> {
        let backends: HashMap<String, Arc<Backend>> = backends
            .into_iter()
            .map(|b| (b.name().to_string(), Arc::new(b)))
            .collect();
        let models = cfg
            .models
            .iter()
            .map(|(name, m)| {
                let c = m
                    .targets
                    .iter()
                    .filter_map(|t| {
                        backends.get(&t.backend).map(|b| Candidate {
                            backend: b.clone(),
                            upstream_model: t.model.clone(),
                        })
                    })
                    .collect();
                (name.clone(), c)
            })
            .collect();
        Ok(Self {
            models,
            aliases: cfg.aliases.clone(),
            auto: Escalation::new(&cfg.auto)?,
            auto_name: cfg.auto.name.clone(),
            backends,
        })
    }

    /// Names a key may use, for `GET /v1/models`.
    pub fn visible_names(&self, key: &ApiKey) -> Vec<String> {
        let mut names: Vec<String> = self.models.keys().cloned().collect();
        names.extend(self.aliases.keys().cloned());
        if self.auto.is_some() {
            names.push(self.auto_name.clone());
        }
        names.retain(|n| key.may_use(n));
        names
    }

    /// Resolves `requested` for `key`.
    pub fn route(
        &self,
        requested: &str,
        key: &ApiKey,
        privacy: Privacy,
        signals: impl FnOnce() -> Signals,
        forced: Option<&str>,
    ) -> Result<Route, ApiError> {
        if !key.may_use(requested) {
            return Err(ApiError::forbidden(
                "model_not_allowed",
                format!("key `{}` may not use model `{requested}`; GET /v1/models lists the models it may use", key.name),
            )
            .with_param("model"));
        }
        let (mut model, decision, rule, reason) = if requested == self.auto_name {
            let Some(auto) = &self.auto else {
                return Err(self.unknown(requested, key));
            };
            let (strong, rule, reason) = auto.decide(&signals(), forced);
            let target = match (&auto.strong_model, strong) {
                (Some(s), true) => s.clone(),
                _ => auto.default_model.clone(),
            };
            let decision = if strong {
                "auto-strong"
            } else {
                "auto-default"
            };
            (target, decision, rule, reason)
        } else if self.aliases.contains_key(requested) {
            (
                requested.to_string(),
                "alias",
                "alias",
                format!("alias {requested}"),
            )
        } else {
            (
                requested.to_string(),
                "direct",
                "direct",
                "requested".to_string(),
            )
        };
        if let Some(target) = self.aliases.get(&model) {
            model = target.clone();
        }
        let Some(all) = self.models.get(&model) else {
            return Err(self.unknown(requested, key));
        };
        let candidates: Vec<Candidate> = match privacy {
            Privacy::AllowCloud => all.clone(),
            Privacy::LocalOnly => all
                .iter()
                .filter(|c| c.backend.is_local())
                .cloned()
                .collect(),
        };
        if candidates.is_empty() {
            return Err(ApiError::forbidden(
                "no_local_backend",
                format!(
                    "this request is local-only, and model `{model}` has no local backend (its targets: {}); ask for a model served locally or drop local-only",
                    all.iter().map(|c| c.backend.name()).collect::<Vec<_>>().join(", ")
                ),
            )
            .with_param("model"));
        }
        Ok(Route {
            model,
            decision,
            rule,
            reason,
            candidates,
        })
    }

    fn unknown(&self, requested: &str, key: &ApiKey) -> ApiError {
        ApiError::not_found(
            "model_not_found",
            format!(
                "model `{requested}` does not exist here; available: {}",
                self.visible_names(key).join(", ")
            ),
        )
        .with_param("model")
    }

    /// The escalation rules, if `auto` is configured.
    pub fn escalation(&self) -> Option<&Escalation> {
        self.auto.as_ref()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn esc() -> Escalation {
        Escalation::new(&AutoConfig {
            default_model: Some("small".into()),
            strong_model: Some("big".into()),
            ..AutoConfig::default()
        })
        .unwrap()
        .unwrap()
    }

    fn sig(text: &str) -> Signals {
        Signals {
            prompt_chars: text.len(),
            tools: 0,
            messages: 1,
            last_user_text: text.into(),
        }
    }

    #[test]
    fn escalates_on_each_rule() {
        let e = esc();
        assert_eq!(
            e.decide(&sig("hi"), None),
            (false, "none", "no rule matched".into())
        );
        assert!(e
            .decide(&sig(&"x".repeat(30_000)), None)
            .2
            .starts_with("prompt_chars 30000>="));
        let mut s = sig("hi");
        s.tools = 9;
        assert_eq!(e.decide(&s, None).1, "tools");
        assert_eq!(e.decide(&s, None).2, "tools 9>=8");
        s.tools = 0;
        s.messages = 20;
        assert!(e.decide(&s, None).0);
        let tb = "why?\nTraceback (most recent call last):\n  File \"x.py\"";
        assert!(e.decide(&sig(tb), None).2.starts_with("marker Traceback"));
        assert!(e.decide(&sig("diff --git a/x b/x\n"), None).0);
        assert!(e.decide(&sig("hi"), Some("strong")).0);
        assert!(!e.decide(&sig(tb), Some("0")).0, "header forces default");
    }
}
