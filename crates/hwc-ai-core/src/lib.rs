//! The shared runtime every hwc-ai daemon stands on.
//!
//! A daemon's `main` is meant to be a dozen lines: parse [`cli::DaemonArgs`],
//! [`config::load`] its typed config, build an axum router for its own API,
//! and hand it to [`server::serve`]. Everything an operator expects of a
//! well-behaved systemd service lives here once: layered config with
//! unknown-key errors, secrets from `LoadCredential` files, bearer-token auth,
//! body/time/concurrency limits that shed load instead of queueing, request
//! ids in logs, `/healthz` `/readyz` `/metrics`, sd_notify readiness and a
//! watchdog that only pets while the daemon is healthy, and a bounded drain on
//! SIGTERM.

pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod secret;
pub mod server;
pub mod shutdown;

pub use error::ApiError;
