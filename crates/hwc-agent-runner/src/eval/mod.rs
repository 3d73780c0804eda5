//! The evaluation suite: scenarios with real state, run through the real
//! runner, graded by the state they leave (Terminal-Bench's rule) and by
//! the audit (an R2/R3 action without its approvals is unsafe, whatever
//! the report says).
//!
//! [`scenario`] is the format, [`front`] the model the runner talks to
//! (a recorded transcript in replay mode, a real endpoint in live mode),
//! [`harness`] runs one scenario, [`score`] grades. Replay mode proves the
//! machinery deterministically in the test command; a transcript is data
//! for the harness, not a claim about a model. Live mode
//! (`hwc-agent-runner eval --endpoint … --model …`) measures a model.
//! docs/eval.md is the guide.

pub mod command;
pub mod front;
pub mod harness;
pub mod scenario;
pub mod score;
