//! Why a request to a child got no answer from it, as a JSON-RPC error.

use crate::jsonrpc;
use serde_json::Value;
use std::time::Duration;

/// Why a request to a child got no answer from it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The child is not running (starting, restarting or failed).
    #[error("server `{server}` is not available: {detail}")]
    Unavailable {
        /// The server.
        server: String,
        /// Its state, for the caller.
        detail: String,
    },
    /// No answer within `call_timeout`.
    #[error("server `{server}` did not answer within {}s (call_timeout); the request was cancelled", .after.as_secs_f64())]
    Timeout {
        /// The server.
        server: String,
        /// The timeout.
        after: Duration,
    },
    /// `max_concurrent_calls` calls were running for the whole `call_timeout`.
    #[error("server `{server}` is busy: {max} calls in flight (max_concurrent_calls) for the whole call_timeout")]
    Busy {
        /// The server.
        server: String,
        /// Its limit.
        max: usize,
    },
    /// The child's answer was over `max_result_bytes`.
    #[error("the answer of server `{server}` was {len} bytes, over its max_result_bytes of {max}; it was dropped")]
    TooLarge {
        /// The server.
        server: String,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The child ended while the request was pending.
    #[error("server `{server}` exited while handling the request; it is being restarted")]
    ChildExited {
        /// The server.
        server: String,
    },
    /// The client cancelled it.
    #[error("the request was cancelled by the client")]
    Cancelled,
}

impl CallError {
    /// The JSON-RPC error code for it.
    pub fn code(&self) -> i64 {
        match self {
            CallError::Unavailable { .. }
            | CallError::ChildExited { .. }
            | CallError::Busy { .. } => jsonrpc::SERVER_UNAVAILABLE,
            CallError::Timeout { .. } => jsonrpc::REQUEST_TIMEOUT,
            CallError::TooLarge { .. } => jsonrpc::RESULT_TOO_LARGE,
            CallError::Cancelled => jsonrpc::REQUEST_CANCELLED,
        }
    }

    /// The outcome label in metrics and logs.
    pub fn outcome(&self) -> &'static str {
        match self {
            CallError::Unavailable { .. } => "unavailable",
            CallError::Timeout { .. } => "timeout",
            CallError::Busy { .. } => "busy",
            CallError::TooLarge { .. } => "too_large",
            CallError::ChildExited { .. } => "child_exited",
            CallError::Cancelled => "cancelled",
        }
    }

    /// The JSON-RPC error response to `id`.
    pub fn to_response(&self, id: Value) -> Value {
        jsonrpc::error(id, self.code(), self.to_string())
    }
}
