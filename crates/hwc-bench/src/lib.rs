//! Pieces shared by the benchmark binaries.

pub mod child;
pub mod loopback;
pub mod mcp;
pub mod procinfo;
pub mod runinfo;
pub mod sse;
pub mod stats;
