//! A scenario as written: a directory with `scenario.toml` (the goal, the
//! environment, the setup that makes real state, the operator's answers to
//! approvals, the checks on the state afterwards), optionally `files/` (the
//! repository the job works in), `knowledge/` (runbooks it may search) and
//! `transcript.json` (the recorded model turns replay mode drives the real
//! loop with).

use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What kind of work a scenario is (the seed's four kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Find why something is broken.
    Troubleshooting,
    /// Change code and prove it with its tests.
    CodeChange,
    /// Review a change and say what is wrong with it.
    Review,
    /// Coordinate an incident: evidence, actions with approvals, a report.
    Incident,
}

/// The operator's answer to an approval request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// Approve, by each of `by`.
    Approve,
    /// Reject.
    Reject,
}

/// One rule for the approvals the job asks for: the first whose glob
/// matches the pending action's summary answers it; an action no rule
/// names is rejected (an operator saying no).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRule {
    /// A glob on the action's summary (`git push *`).
    pub summary: String,
    /// What the operator says.
    pub decision: Answer,
    /// Who approves (token names: `bob`, `carol`); two for an R3.
    #[serde(default = "bob")]
    pub by: Vec<String>,
}

fn bob() -> Vec<String> {
    vec!["bob".into()]
}

/// One check on the outcome; exactly one of its fields is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// What it shows, for the results table.
    pub name: String,
    /// A shell line that must exit 0, run in the scenario's work directory
    /// with `$WORK` and `$WORKSPACE` (the job's worktree) set.
    pub command: Option<String>,
    /// Words the report (summary and findings) must all contain, any case.
    pub report_mentions: Option<Vec<String>>,
    /// The job's final state.
    pub state: Option<String>,
    /// Paths (relative to the work directory) whose bytes must be as the
    /// setup left them.
    pub unchanged: Option<Vec<String>>,
    /// A glob no started action's summary may match.
    pub never_ran: Option<String>,
    /// A string that must appear in no model request and no report.
    pub not_leaked: Option<String>,
}

/// What a check asks, once parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// See [`Check::command`].
    Command(String),
    /// See [`Check::report_mentions`].
    ReportMentions(Vec<String>),
    /// See [`Check::state`].
    State(String),
    /// See [`Check::unchanged`].
    Unchanged(Vec<String>),
    /// See [`Check::never_ran`].
    NeverRan(String),
    /// See [`Check::not_leaked`].
    NotLeaked(String),
}

impl Check {
    /// The one thing it asks, or why it is not one thing.
    pub fn kind(&self) -> Result<CheckKind, String> {
        let mut kinds = Vec::new();
        if let Some(c) = &self.command {
            kinds.push(CheckKind::Command(c.clone()));
        }
        if let Some(w) = &self.report_mentions {
            kinds.push(CheckKind::ReportMentions(w.clone()));
        }
        if let Some(s) = &self.state {
            kinds.push(CheckKind::State(s.clone()));
        }
        if let Some(u) = &self.unchanged {
            kinds.push(CheckKind::Unchanged(u.clone()));
        }
        if let Some(g) = &self.never_ran {
            kinds.push(CheckKind::NeverRan(g.clone()));
        }
        if let Some(s) = &self.not_leaked {
            kinds.push(CheckKind::NotLeaked(s.clone()));
        }
        match kinds.len() {
            1 => Ok(kinds.remove(0)),
            0 => Err(format!("check `{}` asks nothing: set one of command, report_mentions, state, unchanged, never_ran, not_leaked", self.name)),
            _ => Err(format!("check `{}` sets more than one of command, report_mentions, state, unchanged, never_ran, not_leaked; split it", self.name)),
        }
    }
}

/// `scenario.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// The goal, as an operator would type it.
    pub goal: String,
    /// What kind of work it is.
    pub kind: Kind,
    /// Whether it tries to get the agent around the gate.
    #[serde(default)]
    pub adversarial: bool,
    /// The job's environment.
    #[serde(default = "dev")]
    pub environment: String,
    /// Shell lines run in the work directory before the job (`$WORK` set),
    /// after `files/` became a git repository there (`$WORK/repo`).
    #[serde(default)]
    pub setup: Vec<String>,
    /// Shell lines run after the job and its checks, whatever happened
    /// (stop what the setup started).
    #[serde(default)]
    pub teardown: Vec<String>,
    /// TOML appended to the runner's configuration (`{work}` is replaced
    /// by the work directory).
    #[serde(default)]
    pub config: String,
    /// The longest the job may take.
    #[serde(default = "timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// The operator's answers.
    #[serde(default)]
    pub approvals: Vec<ApprovalRule>,
    /// What must hold afterwards.
    pub checks: Vec<Check>,
}

fn dev() -> String {
    "dev".into()
}

fn timeout() -> Duration {
    Duration::from_secs(120)
}

/// One recorded model turn: a tool call, or text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayTurn {
    /// The tool called.
    pub tool: Option<String>,
    /// Its arguments. A string `"{{result:N}}"` anywhere in them becomes
    /// the event number of the N-th tool result the job has seen (1-based),
    /// so a recorded `finish` cites the events this run produced.
    #[serde(default)]
    pub arguments: Value,
    /// Text instead of a call.
    pub content: Option<String>,
}

/// A loaded scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its directory's name.
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// `scenario.toml`.
    pub spec: ScenarioFile,
    /// `transcript.json`, when recorded.
    pub transcript: Option<Vec<ReplayTurn>>,
}

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("scenario {dir}: {message}")]
pub struct ScenarioError {
    /// Its directory.
    pub dir: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl Scenario {
    /// Loads and checks the scenario in `dir`.
    pub fn load(dir: &Path) -> Result<Self, ScenarioError> {
        let err = |message: String| ScenarioError {
            dir: dir.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(dir.join("scenario.toml"))
            .map_err(|e| err(format!("scenario.toml: {e}")))?;
        let spec: ScenarioFile =
            toml::from_str(&text).map_err(|e| err(format!("scenario.toml: {e}")))?;
        if spec.checks.is_empty() {
            return Err(err(
                "no [[checks]]: a scenario is graded by the state it leaves; add at least one"
                    .into(),
            ));
        }
        for c in &spec.checks {
            c.kind().map_err(err)?;
        }
        let transcript = match std::fs::read_to_string(dir.join("transcript.json")) {
            Ok(t) => Some(
                serde_json::from_str::<Vec<ReplayTurn>>(&t)
                    .map_err(|e| err(format!("transcript.json: {e}")))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(err(format!("transcript.json: {e}"))),
        };
        if let Some(t) = &transcript {
            for (i, turn) in t.iter().enumerate() {
                if turn.tool.is_some() == turn.content.is_some() {
                    return Err(err(format!(
                        "transcript.json turn {}: give either `tool` (with `arguments`) or `content`",
                        i + 1
                    )));
                }
            }
        }
        Ok(Self {
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            dir: dir.to_path_buf(),
            spec,
            transcript,
        })
    }

    /// Every scenario under `root` (one per subdirectory), by name.
    pub fn load_all(root: &Path) -> Result<Vec<Self>, ScenarioError> {
        let rd = std::fs::read_dir(root).map_err(|e| ScenarioError {
            dir: root.display().to_string(),
            message: format!("{e}; pass --scenarios DIR (the repository's crates/hwc-agent-runner/eval/scenarios)"),
        })?;
        let mut dirs: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("scenario.toml").is_file())
            .collect();
        dirs.sort();
        dirs.iter().map(|d| Self::load(d)).collect()
    }
}
