//! hwc-agent-runner: an operations agent that investigates and acts through
//! tools, every action gated by an R0-R3 policy before it runs.
//!
//! [`policy`] reduces every proposed action to the commands it would run and
//! decides its class, verdict and rule as a pure function. The gate, not the
//! model's judgement, is what keeps a host safe: open-weight models are weak
//! at free-form terminal work, so nothing the model says about risk lowers a
//! class. docs/agent-runner.md is the operator's guide; ADR 0009 says why
//! shell lines are judged as a deliberate subset of the shell language.

pub mod approval;
pub mod audit;
pub mod cli;
pub mod exec;
pub mod policy;
pub mod redact;
pub mod sandbox;
pub mod store;

/// The daemon's name.
pub const NAME: &str = "hwc-agent-runner";
