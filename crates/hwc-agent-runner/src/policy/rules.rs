//! The policy file: environments and prefix rules, compiled and checked.
//!
//! ```toml
//! version = 1
//!
//! [environments.prod]
//! production = true          # an action no rule matches is denied
//!
//! [[rules]]
//! name = "systemctl-restart-fleet"
//! pattern = ["systemctl", ["restart", "start"], ["ollama.service", "hwc-ai-*.service"]]
//! decision = "prompt"        # allow | prompt | forbidden
//! risk = "R2"
//! justification = "restarting a fleet unit interrupts requests in flight"
//! match = ["systemctl restart ollama.service"]
//! not_match = ["systemctl restart sshd.service"]
//! ```
//!
//! A pattern is a list of positions, each a glob or a list of alternative
//! globs (`*` stops at `/`, `**` crosses it); it matches a command whose
//! first words match position by position. Every `match` example must be
//! matched by its rule and no `not_match` example may be, or the file is
//! refused, so `--check-config` catches a rule that does not say what its
//! author meant.

use super::shell;
use super::Risk;
use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a rule does to the commands it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RuleDecision {
    /// Runs at the rule's risk class (approvals as the class needs).
    #[default]
    Allow,
    /// Needs approval whatever the class: raised to at least R2.
    Prompt,
    /// Never runs.
    Forbidden,
}

/// One pattern position: a glob or alternatives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PatternToken {
    /// One glob.
    One(String),
    /// Any of these globs.
    Any(Vec<String>),
}

/// A rule as written in the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Shown in decisions, audit records and approvals.
    pub name: String,
    /// The command prefix it matches.
    pub pattern: Vec<PatternToken>,
    /// What it does.
    #[serde(default)]
    pub decision: RuleDecision,
    /// The class of what it matches (ignored when forbidden).
    #[serde(default)]
    pub risk: Risk,
    /// Why: shown to the approver and the model.
    pub justification: String,
    /// Environments it applies in; all when absent.
    #[serde(default)]
    pub environments: Option<Vec<String>>,
    /// Arguments (globs) that take a command out of this rule: `find`
    /// without `-exec`, say.
    #[serde(default)]
    pub unless_args: Vec<String>,
    /// Whether the shell sandbox may give what it matches network access.
    #[serde(default)]
    pub network: bool,
    /// False when what it matches cannot be undone: at least R3.
    #[serde(default = "yes")]
    pub reversible: bool,
    /// Command lines the rule must match.
    #[serde(default, rename = "match")]
    pub matches: Vec<String>,
    /// Command lines the rule must not match.
    #[serde(default)]
    pub not_match: Vec<String>,
}

fn yes() -> bool {
    true
}

/// An environment a job runs in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentSpec {
    /// Production: what no rule matches is denied rather than asked about.
    #[serde(default)]
    pub production: bool,
    /// Programs and tools (first words) denied here whatever the rules say.
    #[serde(default)]
    pub denied: Vec<String>,
    /// The highest class allowed here at all; above it is denied.
    #[serde(default)]
    pub max_risk: Option<Risk>,
}

/// The file as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Format version; 1.
    pub version: u32,
    /// How long an approval stays valid.
    #[serde(default = "default_ttl", with = "humantime_serde")]
    pub approval_ttl: Duration,
    /// Variables a command may set before its program (`LC_ALL=C ls`);
    /// any other assignment makes the command the strictest class.
    #[serde(default = "default_safe_env")]
    pub safe_env: Vec<String>,
    /// Environments by name.
    #[serde(default)]
    pub environments: BTreeMap<String, EnvironmentSpec>,
    /// Rules, in any order: the strictest match wins.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

fn default_ttl() -> Duration {
    Duration::from_secs(3600)
}

fn default_safe_env() -> Vec<String> {
    [
        "LC_ALL",
        "LANG",
        "TZ",
        "NO_COLOR",
        "SYSTEMD_PAGER",
        "SYSTEMD_COLORS",
        "PAGER",
        "GIT_PAGER",
    ]
    .map(String::from)
    .to_vec()
}

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("policy {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML for a policy.
    #[error("policy {origin}: {message}")]
    Syntax {
        /// The file or `built-in`.
        origin: String,
        /// The parser's message.
        message: String,
    },
    /// A rule that does not say what its author meant.
    #[error("policy {origin}: rule `{rule}`: {message}")]
    Rule {
        /// The file.
        origin: String,
        /// The rule.
        rule: String,
        /// What is wrong and what to change.
        message: String,
    },
    /// Something outside any one rule.
    #[error("policy {origin}: {message}")]
    Invalid {
        /// The file.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// As written.
    pub spec: RuleSpec,
    positions: Vec<GlobSet>,
    unless: GlobSet,
}

impl Rule {
    /// Whether the rule applies to `words` in `env`.
    pub fn matches(&self, env: &str, words: &[String]) -> bool {
        if let Some(envs) = &self.spec.environments {
            if !envs.iter().any(|e| e == env) {
                return false;
            }
        }
        self.matches_words(words)
    }

    fn matches_words(&self, words: &[String]) -> bool {
        words.len() >= self.positions.len()
            && self
                .positions
                .iter()
                .zip(words)
                .all(|(set, w)| set.is_match(w))
            && !words.iter().skip(1).any(|w| self.unless.is_match(w))
    }
}

/// A policy ready to classify with.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Where it came from, for messages.
    pub origin: String,
    /// The file as written.
    pub file: PolicyFile,
    /// Compiled rules, in file order.
    pub rules: Vec<Rule>,
    safe_env: BTreeSet<String>,
}

/// The example policy shipped with the runner, used when none is configured.
pub const BUILT_IN: &str = include_str!("../../../../examples/agent-policy.toml");

fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern).literal_separator(true).build()
}

fn glob_set<'a>(patterns: impl IntoIterator<Item = &'a String>) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(glob(p).map_err(|e| format!("`{p}` is not a glob: {e}"))?);
    }
    b.build().map_err(|e| e.to_string())
}

impl Policy {
    /// Reads and compiles `path`.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The built-in example policy.
    pub fn built_in() -> Result<Self, PolicyError> {
        Self::parse(BUILT_IN, "built-in (examples/agent-policy.toml)")
    }

    /// Compiles `text`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, PolicyError> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| PolicyError::Syntax {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        Self::compile(file, origin)
    }

    /// Compiles a parsed file, checking every rule and its examples.
    pub fn compile(file: PolicyFile, origin: &str) -> Result<Self, PolicyError> {
        let invalid = |message: String| PolicyError::Invalid {
            origin: origin.into(),
            message,
        };
        if file.version != 1 {
            return Err(invalid(format!(
                "version = {} is not known; this runner reads version = 1",
                file.version
            )));
        }
        if file.environments.is_empty() {
            return Err(invalid(
                "no [environments.<name>] table; declare at least one (production = true for production)".into(),
            ));
        }
        let mut names = BTreeSet::new();
        let mut rules = Vec::new();
        for spec in &file.rules {
            let fail = |message: String| PolicyError::Rule {
                origin: origin.into(),
                rule: spec.name.clone(),
                message,
            };
            if !names.insert(spec.name.clone()) {
                return Err(fail(
                    "a second rule has this name; names must be unique".into(),
                ));
            }
            if spec.pattern.is_empty() {
                return Err(fail(
                    "pattern is empty; it must name at least the program".into(),
                ));
            }
            if spec.justification.trim().is_empty() {
                return Err(fail(
                    "justification is empty; say why, it is shown to approvers".into(),
                ));
            }
            if let Some(envs) = &spec.environments {
                if let Some(e) = envs.iter().find(|e| !file.environments.contains_key(*e)) {
                    return Err(fail(format!(
                        "environment `{e}` is not declared; known: {}",
                        file.environments
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
            let positions = spec
                .pattern
                .iter()
                .map(|t| match t {
                    PatternToken::One(p) => glob_set([p]),
                    PatternToken::Any(ps) if ps.is_empty() => {
                        Err("a pattern position lists no alternatives".into())
                    }
                    PatternToken::Any(ps) => glob_set(ps),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(fail)?;
            let unless = glob_set(&spec.unless_args).map_err(fail)?;
            let rule = Rule {
                spec: spec.clone(),
                positions,
                unless,
            };
            if spec.matches.is_empty() {
                return Err(fail(
                    "no `match` examples; give at least one command line the rule is for".into(),
                ));
            }
            for (example, want) in spec
                .matches
                .iter()
                .map(|e| (e, true))
                .chain(spec.not_match.iter().map(|e| (e, false)))
            {
                let commands = shell::parse(example)
                    .map_err(|e| fail(format!("example `{example}` does not parse: {e}")))?;
                let got = commands.iter().any(|c| rule.matches_words(&c.words));
                if got != want {
                    return Err(fail(format!(
                        "example `{example}` {} the pattern, but is listed under `{}`",
                        if got { "matches" } else { "does not match" },
                        if want { "match" } else { "not_match" }
                    )));
                }
            }
            rules.push(rule);
        }
        let safe_env = file.safe_env.iter().cloned().collect();
        Ok(Self {
            origin: origin.into(),
            file,
            rules,
            safe_env,
        })
    }

    /// The environment named `env`, if declared.
    pub fn environment(&self, env: &str) -> Option<&EnvironmentSpec> {
        self.file.environments.get(env)
    }

    /// Whether `name=…` before a program is harmless.
    pub fn safe_assignment(&self, name: &str) -> bool {
        self.safe_env.contains(name)
    }

    /// The names of the declared environments.
    pub fn environment_names(&self) -> Vec<&str> {
        self.file.environments.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "version = 1\n[environments.dev]\n[environments.prod]\nproduction = true\n";

    fn refused(rules: &str) -> String {
        match Policy::parse(&format!("{HEAD}{rules}"), "test.toml") {
            Ok(_) => panic!("accepted:\n{rules}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_built_in_policy_compiles_and_its_examples_hold() {
        let p = Policy::built_in().unwrap_or_else(|e| panic!("{e}"));
        assert!(p.rules.len() > 10, "{}", p.rules.len());
        assert!(p.environment("prod").is_some_and(|e| e.production));
    }

    #[test]
    fn a_rule_whose_examples_disagree_with_it_is_refused() {
        let table: &[(&str, &str)] = &[
            (
                "[[rules]]\nname='r'\npattern=['ls']\njustification='j'\nmatch=['cat x']\n",
                "rule `r`: example `cat x` does not match the pattern, but is listed under `match`",
            ),
            (
                "[[rules]]\nname='r'\npattern=['ls']\njustification='j'\nmatch=['ls']\nnot_match=['ls -l']\n",
                "example `ls -l` matches the pattern, but is listed under `not_match`",
            ),
            (
                "[[rules]]\nname='r'\npattern=['ls']\njustification='j'\n",
                "no `match` examples",
            ),
            (
                "[[rules]]\nname='r'\npattern=['ls']\njustification=''\nmatch=['ls']\n",
                "justification is empty",
            ),
            (
                "[[rules]]\nname='r'\npattern=['ls']\njustification='j'\nenvironments=['qa']\nmatch=['ls']\n",
                "environment `qa` is not declared; known: dev, prod",
            ),
            (
                "[[rules]]\nname='r'\npattern=['ls[']\njustification='j'\nmatch=['ls']\n",
                "`ls[` is not a glob",
            ),
            (
                "[[rules]]\nname='r'\npattern=['ls']\njustification='j'\nmatch=['ls $X']\n",
                "example `ls $X` does not parse",
            ),
            (
                "[[rules]]\nname='r'\npattern=['ls']\njustification='j'\nmatch=['ls']\n[[rules]]\nname='r'\npattern=['ls']\njustification='j'\nmatch=['ls']\n",
                "a second rule has this name",
            ),
            (
                "[[rules]]\nname='r'\npattern=['ls']\njustification='j'\nmatch=['ls']\nrisk='R9'\n",
                "unknown variant `R9`",
            ),
            ("[[rules]]\nname='r'\npatern=['ls']\n", "unknown field `patern`"),
        ];
        for (rules, want) in table {
            let got = refused(rules);
            assert!(got.contains(want), "{rules}\n{got}");
        }
        assert!(Policy::parse("version = 2\n[environments.dev]\n", "t")
            .is_err_and(|e| e.to_string().contains("version = 1")));
        assert!(Policy::parse("version = 1\n", "t")
            .is_err_and(|e| e.to_string().contains("[environments.<name>]")));
    }

    #[test]
    fn patterns_match_by_position_with_globs_and_exclusions() {
        let p = Policy::parse(
            &format!(
                "{HEAD}[[rules]]\nname='find'\npattern=['find']\njustification='j'\n\
                 unless_args=['-exec','-execdir','-delete','-fprint*']\nmatch=['find / -name x']\n\
                 not_match=['find . -exec rm {{}} ;', 'find . -fprint0 f']\n\
                 [[rules]]\nname='units'\npattern=['systemctl',['restart','start'],'hwc-ai-*.service']\n\
                 justification='j'\nmatch=['systemctl restart hwc-ai-router.service']\n\
                 not_match=['systemctl restart sshd.service','systemctl restart hwc-ai-x/../../y.service','systemctl stop hwc-ai-router.service']\n"
            ),
            "t",
        );
        // `{}` must be quoted in the examples: the parser refuses bare braces.
        assert!(p.is_err_and(|e| e.to_string().contains("does not parse")));
        let p = Policy::parse(
            &format!(
                "{HEAD}[[rules]]\nname='find'\npattern=['find']\njustification='j'\n\
                 unless_args=['-exec','-execdir','-delete','-fprint*']\nmatch=['find / -name x']\n\
                 not_match=['find . -exec rm \"{{}}\" \";\"', 'find . -fprint0 f']\n\
                 [[rules]]\nname='units'\npattern=['systemctl',['restart','start'],'hwc-ai-*.service']\n\
                 justification='j'\nmatch=['systemctl restart hwc-ai-router.service']\n\
                 not_match=['systemctl restart sshd.service','systemctl restart hwc-ai-x/../../y.service','systemctl stop hwc-ai-router.service']\n"
            ),
            "t",
        );
        assert!(p.is_ok(), "{:?}", p.err().map(|e| e.to_string()));
    }
}
