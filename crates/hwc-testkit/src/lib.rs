//! Real peers for integration tests, shared by every daemon crate so no two
//! test suites start them differently.

pub mod daemon;
pub mod inprocess;
pub mod llama;
pub mod mcp;
