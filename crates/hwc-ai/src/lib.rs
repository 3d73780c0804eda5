//! `hwc-ai`: the operator's CLI for the whole fleet. It reads each
//! daemon's typed `/status` (the daemons' own serde types, from their
//! libs), drives the agent runner's jobs and approvals, and runs the
//! runner's local policy and audit commands.
//!
//! [`cli`] is the command line, [`config`] where the daemons are,
//! [`fleet`] which daemons there are, [`client`] the HTTP and its errors,
//! [`render`] the tables, and one module per command group: [`status`],
//! [`models`], [`route`], [`jobs`], [`mcp`]; [`run`] ties them to the
//! exit code.

pub mod cli;
pub mod client;
pub mod config;
pub mod fleet;
pub mod jobs;
pub mod mcp;
pub mod models;
pub mod render;
pub mod route;
pub mod run;
pub mod status;
