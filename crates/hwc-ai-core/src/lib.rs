//! The shared runtime every hwc-ai daemon stands on.
//!
//! A daemon's `main` is meant to be a dozen lines: parse [`cli::DaemonArgs`]
//! and hand [`cli::run_daemon`] a function that builds its
//! [`server::Daemon`] (its API behind [`auth::TokenAuth`], its health, its
//! metrics, its background loops in a [`tasks::TaskGroup`]) from its typed
//! config; [`server::run`] does the rest. Everything an operator expects of a
//! well-behaved systemd service lives here once: layered config with
//! unknown-key errors, secrets from `LoadCredential` files, bearer-token auth,
//! body/time/concurrency limits that shed load instead of queueing, request
//! ids in logs, `/healthz` `/readyz` `/metrics`, sd_notify readiness and a
//! watchdog that only pets while the daemon is healthy, a bounded drain on
//! SIGTERM, and W3C trace context in and out of every request with optional
//! OTLP export ([`telemetry`]).

pub mod auth;
pub mod backoff;
pub mod cli;
pub mod clock;
pub mod config;
#[cfg(feature = "db")]
pub mod db;
pub mod edge;
pub mod error;
pub mod health;
pub mod logging;
pub mod mcp_client;
pub mod metrics;
pub mod notify;
pub mod origin;
pub mod process;
pub mod runtimes;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod sse;
pub mod state;
pub mod status;
pub mod sync;
pub mod systemd;
pub mod tasks;
pub mod telemetry;
mod timer_anchor;

pub use error::ApiError;
