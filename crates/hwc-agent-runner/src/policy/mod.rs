//! The R0-R3 policy: what the agent may do, in which environment, with how
//! many approvals.
//!
//! Every action the agent proposes is reduced to words before it runs: a
//! shell command line is split by [`shell`] into the simple commands it
//! would run, and a typed tool call says its own words (`systemctl restart
//! ollama.service`, `file write etc/motd`, `mcp git git_commit`), so one
//! rule covers an operation however it is asked for. [`rules`] loads the
//! operator's TOML (prefix rules in the spirit of Codex's execpolicy, each
//! with examples checked at load) and [`classify`] decides, as a pure
//! function, the class, the verdict and the rule behind it.

pub mod classify;
pub mod rules;
pub mod shell;

pub use classify::{classify, Decision, PartDecision, Proposal, Subject};
pub use rules::{Policy, PolicyError};

use serde::{Deserialize, Serialize};

/// How much harm an action can do, and so how many people must agree.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub enum Risk {
    /// Read-only: runs without asking.
    #[default]
    R0,
    /// A reversible change: runs without asking, with its rollback recorded first.
    R1,
    /// Needs one approval.
    R2,
    /// Needs two approvals from distinct approvers, neither the requester.
    R3,
}

impl Risk {
    /// Approvals an action of this class needs.
    pub fn approvals(self) -> u8 {
        match self {
            Risk::R0 | Risk::R1 => 0,
            Risk::R2 => 1,
            Risk::R3 => 2,
        }
    }
}

impl std::fmt::Display for Risk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Risk::R0 => "R0",
            Risk::R1 => "R1",
            Risk::R2 => "R2",
            Risk::R3 => "R3",
        })
    }
}

/// What happens to a proposed action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    /// Runs now.
    Allow,
    /// Waits for this many approvals.
    NeedsApproval {
        /// Distinct approvers needed.
        approvals: u8,
    },
    /// Never runs.
    Deny,
}

impl Verdict {
    /// The verdict for an action of `risk` that no rule forbids.
    pub fn for_risk(risk: Risk) -> Self {
        match risk.approvals() {
            0 => Verdict::Allow,
            n => Verdict::NeedsApproval { approvals: n },
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Allow => f.write_str("allow"),
            Verdict::NeedsApproval { approvals: 1 } => f.write_str("needs 1 approval"),
            Verdict::NeedsApproval { approvals } => write!(f, "needs {approvals} approvals"),
            Verdict::Deny => f.write_str("deny"),
        }
    }
}
