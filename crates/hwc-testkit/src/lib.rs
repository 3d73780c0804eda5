//! Real peers for integration tests, shared by every daemon crate so no two
//! test suites start them differently.

pub mod daemon;
pub mod inprocess;
pub mod llama;
pub mod mcp;

/// A loopback TCP port that was free a moment ago (the kernel's pick). For
/// a peer that binds it itself, or for an address nothing listens on.
#[allow(clippy::unwrap_used)]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
