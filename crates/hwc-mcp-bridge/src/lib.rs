//! hwc-mcp-bridge: stdio MCP servers declared by the operator, each one
//! supervised child, served to many HTTP clients over Streamable HTTP in
//! both protocol eras (session 2025-03-26 / 2025-06-18 / 2025-11-25 and
//! stateless 2026-07-28), behind bearer tokens scoped to servers and tools.
//!
//! [`config`] types the TOML, [`upstream`] runs and multiplexes a child,
//! [`session`] keeps session-era sessions, [`isolation`] gives sessions of
//! a per-session server their own child, [`policy`] decides which tools a
//! caller may see and call, [`headers`] holds the header rules, [`http`]
//! the endpoints, [`status`] `/servers` and `/status`, [`metrics`] the
//! `hwc_bridge_*` metrics. ADR 0008 says why JSON-RPC is handled raw;
//! docs/mcp-bridge.md is the operator's guide.

pub mod config;
pub mod headers;
pub mod http;
pub mod isolation;
pub mod jsonrpc;
pub mod metrics;
pub mod policy;
pub mod session;
pub mod status;
pub mod upstream;

use crate::config::{BridgeConfig, Isolation, ServerEntry};
use crate::http::Bridge;
use crate::isolation::Pool;
use crate::metrics::BridgeMetrics;
use crate::session::Sessions;
use crate::upstream::Upstream;
use hwc_ai_core::auth::{Role, TokenAuth};
use hwc_ai_core::health::Health;
use hwc_ai_core::process::ChildSpec;
use hwc_ai_core::server::{self, Daemon};
use hwc_ai_core::status::StatusHeader;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The daemon's name.
pub const NAME: &str = "hwc-mcp-bridge";

/// Why the bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A server entry cannot be run as configured.
    #[error("server `{server}`: {message}")]
    Server {
        /// The server.
        server: String,
        /// What is wrong and what to change.
        message: String,
    },
    /// A token or `env_files` file.
    #[error(transparent)]
    Secret(#[from] hwc_ai_core::secret::SecretError),
    /// Listening or serving.
    #[error(transparent)]
    Listen(#[from] server::ServerError),
}

/// What `--check-config` checks beyond the config's own rules: every
/// command resolves, every `env_files` and token file is readable.
pub fn check(cfg: &BridgeConfig) -> Result<String, StartError> {
    for s in &cfg.servers {
        child_spec(s, None)?;
    }
    cfg.auth.key_table(None)?;
    let names: Vec<&str> = cfg.servers.iter().map(|s| s.name.as_str()).collect();
    Ok(format!(
        "{} servers ({}), listening on {}",
        names.len(),
        names.join(", "),
        cfg.server.listen
    ))
}

/// The child to run for `s`: command resolved, `env_files` read.
pub fn child_spec(s: &ServerEntry, guard: Option<PathBuf>) -> Result<ChildSpec, StartError> {
    let program = config::resolve_command(&s.command, std::env::var_os("PATH").as_deref())
        .map_err(|message| StartError::Server {
            server: s.name.clone(),
            message,
        })?;
    let mut spec = ChildSpec::new(format!("mcp:{}", s.name), program, s.args.iter());
    spec.env = s.env.iter().map(|(k, v)| (k.into(), v.into())).collect();
    for (var, file) in &s.env_files {
        let value = hwc_ai_core::secret::read_file(file)?;
        spec.env.push((var.into(), value.into()));
    }
    spec.cwd = s.cwd.clone();
    spec.limits = s.limits;
    spec.grace = Duration::from_secs(3);
    spec.guard = guard;
    Ok(spec)
}

struct BridgeHealth(Arc<Bridge>);

impl Health for BridgeHealth {
    fn readiness(&self) -> Result<(), String> {
        let down: Vec<&str> = self
            .0
            .upstreams
            .values()
            .filter(|u| {
                // A per-session server has no resident child to wait for.
                u.cfg.required && u.cfg.isolation == Isolation::Shared && u.link().is_none()
            })
            .map(|u| u.name())
            .collect();
        if down.is_empty() {
            Ok(())
        } else {
            Err(format!("required servers not running: {}", down.join(", ")))
        }
    }
}

/// The bridge as a daemon, its children started by the re-executed
/// running binary as their guard (see [`hwc_ai_core::process`]).
pub async fn daemon(cfg: BridgeConfig) -> Result<Daemon, StartError> {
    daemon_with_guard(cfg, None).await
}

/// [`daemon`] with the guard binary named: tests in-process pass the
/// bridge's binary, since the test binary is no guard.
pub async fn daemon_with_guard(
    cfg: BridgeConfig,
    guard: Option<PathBuf>,
) -> Result<Daemon, StartError> {
    let mut daemon = Daemon::new(NAME, cfg.server.clone(), axum::Router::new());
    daemon.telemetry = cfg.telemetry.clone();
    let metrics = BridgeMetrics::register(&mut daemon.registry);
    let mut upstreams = BTreeMap::new();
    let mut pools = BTreeMap::new();
    for s in &cfg.servers {
        let spec = child_spec(s, guard.clone())?;
        metrics.declare(&s.name);
        if s.isolation == Isolation::PerSession {
            let pool = Pool::new(
                s.clone(),
                spec.clone(),
                metrics.clone(),
                daemon.tasks.clone(),
            );
            pools.insert(s.name.clone(), Arc::new(pool));
        }
        upstreams.insert(
            s.name.clone(),
            Upstream::new(s.clone(), spec, metrics.clone()),
        );
    }
    let bridge = Arc::new(Bridge {
        upstreams,
        pools,
        sessions: Sessions::new(cfg.http.max_sessions, cfg.http.session_idle_timeout),
        metrics,
        header: StatusHeader::new(NAME, env!("CARGO_PKG_VERSION"), status::STATUS_FORMAT),
        http: cfg.http.clone(),
        hosts: cfg.effective_hosts(),
        draining: daemon.draining.clone(),
    });
    for up in bridge.upstreams.values() {
        if !bridge.pools.contains_key(up.name()) {
            up.spawn(&daemon.tasks);
        }
    }
    let sweeper = bridge.clone();
    daemon
        .tasks
        .spawn_until_cancelled("mcp-session-sweep", async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                sweeper.sessions.sweep();
                for name in sweeper.upstreams.keys() {
                    sweeper.sessions_changed(name);
                }
            }
        });
    let auth = TokenAuth::load(&cfg.auth, Some(Role::Requester))?;
    daemon.api = http::routes(bridge.clone(), &auth);
    daemon.reload = Some(Box::new(move || auth.reload_logged()));
    daemon.health = Arc::new(BridgeHealth(bridge.clone()));
    hwc_ai_core::notify::status(&format!(
        "{} MCP servers configured",
        bridge.upstreams.len()
    ));
    Ok(daemon)
}
