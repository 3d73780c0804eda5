//! Pieces shared by the benchmark binaries.

pub mod procinfo;
