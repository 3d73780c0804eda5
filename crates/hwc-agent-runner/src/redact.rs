//! Secret redaction for everything that leaves a tool before it reaches the
//! model, a log, an event, an audit record or a report.
//!
//! Two kinds of match: the exact values of every secret the daemon holds
//! (its router key, its tokens; registered with [`Redactor::with_secrets`])
//! or found in a job's workspace (dotenv files and the like, registered
//! with [`Redactor::learn`] by [`crate::secret_files`]), and well-known token formats, written here from the public formats
//! (gitleaks' rule list, MIT, was read for which formats matter; no
//! pattern is copied from TruffleHog, which is AGPL). A match becomes
//! `[REDACTED:<kind>]`, so a reader still sees that something was there.

use regex::{Captures, Regex};
use serde_json::Value;
use std::borrow::Cow;
use std::sync::{Arc, LazyLock, RwLock};

struct Pattern {
    kind: &'static str,
    re: Regex,
    /// The capture group holding the secret (0: the whole match); what is
    /// around it in the match is kept.
    group: usize,
    /// Only when the secret looks random (Shannon entropy, bits per char).
    min_entropy: Option<f64>,
}

#[allow(clippy::expect_used)]
fn p(kind: &'static str, re: &str, group: usize, min_entropy: Option<f64>) -> Pattern {
    Pattern {
        kind,
        re: Regex::new(re).expect("a redaction pattern compiles"),
        group,
        min_entropy,
    }
}

/// The words that make a key name a secret's (`DB_PASSWORD`, `api-key`,
/// `PRIVATE_KEY`): the key-value pattern's and [`names_a_secret`]'s.
const SECRET_NAME_WORDS: &str =
    "api[_-]?key|access[_-]?key|private[_-]?key|secret|token|passw(?:or)?d|passwd|pwd|credential|auth";

#[allow(clippy::expect_used)]
static SECRET_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!("(?i)(?:{SECRET_NAME_WORDS})")).expect("the secret-name pattern compiles")
});

/// Whether a key (an environment variable's, a setting's) names a secret.
pub fn names_a_secret(key: &str) -> bool {
    SECRET_NAME.is_match(key)
}

static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    vec![
        p(
            "private-key",
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)",
            0,
            None,
        ),
        p(
            "aws-access-key",
            r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
            0,
            None,
        ),
        p(
            "jwt",
            r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
            0,
            None,
        ),
        p(
            "github-token",
            r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}\b",
            0,
            None,
        ),
        p("github-token", r"\bgithub_pat_[A-Za-z0-9_]{50,}\b", 0, None),
        p("gitlab-token", r"\bglpat-[A-Za-z0-9_-]{20,}\b", 0, None),
        p("slack-token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b", 0, None),
        p(
            "openai-key",
            r"\bsk-(?:proj-|ant-|svcacct-)?[A-Za-z0-9_-]{20,}",
            0,
            None,
        ),
        p("google-api-key", r"\bAIza[0-9A-Za-z_-]{35}\b", 0, None),
        p(
            "stripe-key",
            r"\b[rs]k_(?:live|test)_[0-9A-Za-z]{16,}\b",
            0,
            None,
        ),
        p(
            "authorization",
            r"(?i)\b(?:authorization|proxy-authorization)\s*[:=]\s*(?:bearer|basic|token|digest)\s+([^\s'\x22,;]+)",
            1,
            None,
        ),
        p(
            "bearer",
            r"(?i)\bbearer\s+([A-Za-z0-9._~+/=-]{16,})",
            1,
            None,
        ),
        p(
            "url-password",
            r"[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:([^/\s@]+)@",
            1,
            None,
        ),
        p(
            "key-value",
            &format!(
                r#"(?i)\b[a-z0-9_.-]*(?:{SECRET_NAME_WORDS})[a-z0-9_.-]*["']?\s*[=:]\s*["']?([^\s"',;]{{8,}})"#
            ),
            1,
            Some(3.2),
        ),
    ]
});

/// Bits of entropy per character of `s`.
pub fn shannon_entropy(s: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    let n = s.chars().count() as f64;
    for c in s.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    counts
        .values()
        .map(|&k| {
            let p = k as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Redacts text and JSON. Clones share what was learned.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// (name, value) of every secret the daemon holds, longest first.
    secrets: Vec<(String, String)>,
    /// (name, value) of the secrets found in workspaces, longest first.
    learned: Arc<RwLock<Vec<(String, String)>>>,
}

impl Redactor {
    /// A redactor that also removes these exact values (shorter than 6
    /// characters are ignored: too likely to occur by chance).
    pub fn with_secrets(secrets: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut secrets: Vec<(String, String)> = secrets
            .into_iter()
            .filter(|(_, v)| v.trim().len() >= 6)
            .map(|(n, v)| (n, v.trim().to_string()))
            .collect();
        secrets.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        Self {
            secrets,
            learned: Arc::default(),
        }
    }

    /// Also removes these exact values from now on, in this redactor and
    /// its clones (a value already known is not added twice; shorter than 6
    /// characters are ignored).
    pub fn learn(&self, found: impl IntoIterator<Item = (String, String)>) {
        let mut learned = self.learned.write().unwrap_or_else(|e| e.into_inner());
        let before = learned.len();
        for (name, value) in found {
            let value = value.trim().to_string();
            let known = self
                .secrets
                .iter()
                .chain(learned.iter())
                .any(|(_, v)| *v == value);
            if value.len() >= 6 && !known {
                learned.push((name, value));
            }
        }
        if learned.len() != before {
            learned.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        }
    }

    /// `text` with every secret replaced.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out: Cow<'a, str> = Cow::Borrowed(text);
        let learned = self.learned.read().unwrap_or_else(|e| e.into_inner());
        for (name, value) in self.secrets.iter().chain(learned.iter()) {
            if out.contains(value.as_str()) {
                out = Cow::Owned(out.replace(value.as_str(), &format!("[REDACTED:{name}]")));
            }
        }
        drop(learned);
        for pat in PATTERNS.iter() {
            if !pat.re.is_match(&out) {
                continue;
            }
            let replaced = pat
                .re
                .replace_all(&out, |c: &Captures<'_>| {
                    let whole = c.get(0).map_or("", |m| m.as_str());
                    let Some(secret) = c.get(pat.group) else {
                        return whole.to_string();
                    };
                    if secret.as_str().starts_with("[REDACTED:") {
                        return whole.to_string();
                    }
                    if let Some(min) = pat.min_entropy {
                        let s = secret.as_str();
                        if shannon_entropy(s) < min || !s.chars().any(|c| c.is_ascii_alphabetic()) {
                            return whole.to_string();
                        }
                    }
                    let start = secret.start() - c.get(0).map_or(0, |m| m.start());
                    let end = start + secret.as_str().len();
                    format!(
                        "{}[REDACTED:{}]{}",
                        &whole[..start],
                        pat.kind,
                        &whole[end..]
                    )
                })
                .into_owned();
            out = Cow::Owned(replaced);
        }
        out
    }

    /// `v` with every string in it redacted (keys too).
    pub fn json(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.text(s).into_owned()),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.json(x)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (self.text(k).into_owned(), self.json(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_formats_are_redacted_and_context_is_kept() {
        let r = Redactor::default();
        let table: &[(&str, &str)] = &[
            ("key AKIAIOSFODNN7EXAMPLE here", "key [REDACTED:aws-access-key] here"),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\nafter",
                "[REDACTED:private-key]\nafter",
            ),
            (
                "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                "token [REDACTED:jwt]",
            ),
            ("ghp_abcdefghijklmnopqrstuvwxyzABCDEF0123", "[REDACTED:github-token]"),
            ("glpat-abcdefghij0123456789", "[REDACTED:gitlab-token]"),
            ("OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz0123", "OPENAI_API_KEY=[REDACTED:openai-key]"),
            (
                "curl -H 'Authorization: Bearer abc.def-ghi_jkl' x",
                "curl -H 'Authorization: Bearer [REDACTED:authorization]' x",
            ),
            (
                "postgres://runner:hunter2hunter2@db/x",
                "postgres://runner:[REDACTED:url-password]@db/x",
            ),
            ("db_password = \"Xq9#mZ2$vL7!pR4w\"", "db_password = \"[REDACTED:key-value]\""),
            ("client_secret: 8f3a9c1e7b2d4f6a0c5e", "client_secret: [REDACTED:key-value]"),
        ];
        for (input, want) in table {
            assert_eq!(r.text(input), *want, "{input}");
        }
    }

    #[test]
    fn low_entropy_values_and_plain_words_stay() {
        let r = Redactor::default();
        for keep in [
            "password = changeme",
            "token_count: 12345678",
            "max_tokens=aaaaaaaaaaaa",
            "systemctl restart ollama.service",
            "the secret of good logs is context",
        ] {
            assert_eq!(r.text(keep), keep);
        }
    }

    #[test]
    fn learned_values_are_removed_bare_and_in_every_clone() {
        let r = Redactor::with_secrets([("model-key".into(), "sk-local-abcdef".into())]);
        let clone = r.clone();
        assert_eq!(
            r.text("vT7q-Zr3x9LmK2pW8sYb4NcE"),
            "vT7q-Zr3x9LmK2pW8sYb4NcE"
        );
        r.learn([
            (
                "DATABASE_PASSWORD (.env)".into(),
                "vT7q-Zr3x9LmK2pW8sYb4NcE\n".into(),
            ),
            ("again".into(), "sk-local-abcdef".into()),
            ("short".into(), "abc".into()),
        ]);
        assert_eq!(
            clone.text("cut gave: vT7q-Zr3x9LmK2pW8sYb4NcE."),
            "cut gave: [REDACTED:DATABASE_PASSWORD (.env)]."
        );
        assert_eq!(clone.text("sk-local-abcdef"), "[REDACTED:model-key]");
        assert_eq!(clone.text("abc"), "abc");
    }

    #[test]
    fn the_daemons_own_secrets_are_removed_wherever_they_appear() {
        let r = Redactor::with_secrets([
            (
                "router-key".to_string(),
                "plain-words-but-secret".to_string(),
            ),
            ("short".to_string(), "abc".to_string()),
        ]);
        assert_eq!(
            r.text("echo plain-words-but-secret | abc"),
            "echo [REDACTED:router-key] | abc"
        );
        let v = serde_json::json!({"cmd": ["x", "plain-words-but-secret"], "n": 1});
        assert_eq!(
            r.json(&v),
            serde_json::json!({"cmd": ["x", "[REDACTED:router-key]"], "n": 1})
        );
    }
}
