//! Jobs: what was asked, where a job stands, and what it has done so far.
//! The whole of a job's progress (the conversation, budgets spent, the
//! action waiting) is stored after every step, so a runner that restarts
//! resumes each job where it was.

use crate::model::Usage;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a runner slot on its target host.
    Queued,
    /// The agent is working.
    Running,
    /// An action waits for approvals.
    WaitingApproval,
    /// Finished with a report.
    Completed,
    /// Stopped by an error or a spent budget (the report says which).
    Failed,
    /// Cancelled by a person.
    Cancelled,
}

impl JobState {
    /// Every state, for metrics.
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::WaitingApproval,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::WaitingApproval => "waiting_approval",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Parses a stored state.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether the job is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }
}

/// What `POST /agent/jobs` takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// What to find out or do, in plain words.
    pub goal: String,
    /// The policy environment (`prod`, `staging`, `dev`).
    pub environment: String,
    /// The host it acts on; the receiving runner's host when absent.
    #[serde(default)]
    pub target: Option<String>,
    /// A configured repository to work in (a git worktree per job).
    #[serde(default)]
    pub repo: Option<String>,
    /// Only these tools (a subset of the runner's); all when absent.
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    /// Model turns at most (capped by `[limits] max_steps`).
    #[serde(default)]
    pub max_steps: Option<u32>,
    /// Tokens at most (capped by `[limits] max_tokens`).
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Seconds at most (capped by `[limits] max_wall`).
    #[serde(default)]
    pub max_seconds: Option<u64>,
    /// The router alias; `[model] default_alias` when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// Ask for the strong model from the first turn.
    #[serde(default)]
    pub hard: bool,
}

/// The request after defaults and caps: what the job runs with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The goal.
    pub goal: String,
    /// The environment.
    pub environment: String,
    /// The host.
    pub target: String,
    /// The repository, if any.
    pub repo: Option<String>,
    /// The tools offered.
    pub tools: Vec<String>,
    /// Turn budget.
    pub max_steps: u32,
    /// Token budget.
    pub max_tokens: u64,
    /// Time budget, seconds.
    pub max_seconds: u64,
    /// The router alias.
    pub model: String,
    /// Strong model from the start.
    pub hard: bool,
}

/// What a job has done so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The conversation, as OpenAI messages (tool output redacted).
    pub messages: Vec<Value>,
    /// Model turns taken.
    pub steps: u32,
    /// Tokens spent.
    pub usage: Usage,
    /// Failed steps in a row (a bad tool call, a failed action); two in a
    /// row escalate to the strong model.
    pub failures_in_a_row: u32,
    /// Unix ms the job started running.
    pub started_at_ms: i64,
    /// The action waiting for approvals.
    pub pending_action: Option<i64>,
    /// Why the job failed, when it did.
    pub error: Option<String>,
    /// The report, once written.
    pub report: Option<Value>,
    /// Tool calls the model answered without `finish` in a row.
    pub nudges: u32,
    /// Tools left out of the next turn (in `json_schema` mode, after the
    /// model repeated a call whose result it already has).
    #[serde(default)]
    pub avoid_next_turn: Vec<String>,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// `job_…`.
    pub id: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms of the last change.
    pub updated_at: i64,
    /// Who asked (token name).
    pub requester: String,
    /// Where it stands.
    pub state: JobState,
    /// What it runs with.
    pub spec: JobSpec,
    /// What it did.
    pub progress: Progress,
}

/// A new job id: time-ordered, random tail.
pub fn new_id(now_ms: i64) -> String {
    let tail: u32 = rand::random();
    format!("job_{now_ms:x}{tail:08x}")
}

/// An action's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    /// Judged; denied.
    Denied,
    /// Waiting for approvals.
    Waiting,
    /// An approver said no.
    Rejected,
    /// The approval window passed.
    Expired,
    /// Running now.
    Running,
    /// Ran and succeeded.
    Done,
    /// Ran and failed.
    Failed,
    /// Was running when the runner stopped; never re-run.
    Interrupted,
    /// Cancelled with its job before it ran.
    Cancelled,
}

impl ActionState {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionState::Denied => "denied",
            ActionState::Waiting => "waiting",
            ActionState::Rejected => "rejected",
            ActionState::Expired => "expired",
            ActionState::Running => "running",
            ActionState::Done => "done",
            ActionState::Failed => "failed",
            ActionState::Interrupted => "interrupted",
            ActionState::Cancelled => "cancelled",
        }
    }

    /// Parses a stored state.
    pub fn parse(s: &str) -> Option<Self> {
        [
            ActionState::Denied,
            ActionState::Waiting,
            ActionState::Rejected,
            ActionState::Expired,
            ActionState::Running,
            ActionState::Done,
            ActionState::Failed,
            ActionState::Interrupted,
            ActionState::Cancelled,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}
