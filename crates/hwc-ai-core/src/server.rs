//! HTTP server bootstrap: listener (configured or handed over by systemd),
//! the health and metrics routes, the protective layers around a daemon's
//! API, sd_notify, and a bounded drain on SIGTERM.

use crate::edge::{EdgeLayer, Limits};
use crate::error::ApiError;
use crate::health::{self, Health};
use crate::metrics::{self, HttpMetrics};
use crate::notify;
use crate::runtimes::{self, Runtimes};
use crate::tasks::{CancellationToken, TaskGroup};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The `[server]` section every daemon's config has.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to bind when systemd hands over no socket. Loopback by default.
    pub listen: SocketAddr,
    /// Longest time a request may take to produce its response head.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// Requests handled at once; beyond it requests get 503 + `Retry-After`
    /// at once instead of waiting in an unbounded queue.
    pub max_concurrency: usize,
    /// How long SIGTERM waits for in-flight requests before exiting anyway.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Where requests run: `"shared"` (the daemon's own multi-threaded
    /// runtime), `"per-core"` or a number of single-threaded runtimes all
    /// accepting on the one socket ([`crate::runtimes`]).
    pub runtimes: Runtimes,
}

impl ServerConfig {
    /// Defaults with the daemon's own port on loopback.
    pub fn on_port(port: u16) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            request_timeout: Duration::from_secs(600),
            max_body_bytes: 8 * 1024 * 1024,
            max_concurrency: 512,
            drain_timeout: Duration::from_secs(30),
            runtimes: Runtimes::Shared,
        }
    }

    /// Problems serde cannot see, each saying what to change.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.max_concurrency == 0 {
            out.push(
                "server.max_concurrency is 0, which refuses every request; set it to at least 1"
                    .into(),
            );
        }
        if self.max_body_bytes == 0 {
            out.push("server.max_body_bytes is 0, which refuses every body; set a size in bytes such as 8388608".into());
        }
        if self.request_timeout.is_zero() {
            out.push("server.request_timeout is 0; set a duration such as \"600s\"".into());
        }
        out
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::on_port(8080)
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding the configured address failed.
    #[error("cannot listen on {addr}: {source}; free the port or change server.listen")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A socket from systemd was present but unusable.
    #[error("cannot use the socket passed by systemd: {0}")]
    Activation(std::io::Error),
    /// The accept loop failed.
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    /// `[telemetry]` asked for an exporter that could not be set up.
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
}

/// Everything [`serve`] needs from a daemon.
pub struct Daemon {
    /// Short name (`router`), used in status lines.
    pub name: &'static str,
    /// The `[server]` section.
    pub config: ServerConfig,
    /// The `[telemetry]` section: where spans are exported, if anywhere.
    pub telemetry: crate::telemetry::TelemetryConfig,
    /// The daemon's own API. Auth is the daemon's to add (with
    /// [`crate::auth::RequireBearer`]), since only it knows its principals.
    pub api: Router,
    /// Readiness and liveness.
    pub health: Arc<dyn Health>,
    /// The daemon's metrics; HTTP metrics are added here.
    pub registry: Registry,
    /// What SIGHUP does (re-read keys, say). `None`: SIGHUP is logged and
    /// ignored, never the default of ending the process.
    pub reload: Option<Box<dyn Fn() + Send + Sync>>,
    /// Background work (flush loops, probe loops, supervisors). The drain
    /// cancels it after the last request and waits for it within the bound.
    pub tasks: TaskGroup,
    /// Cancelled when the drain begins: long-lived answers (SSE streams of
    /// change notifications, of job events) end on it, so the drain waits
    /// only for requests that finish by themselves.
    pub draining: CancellationToken,
}

impl Daemon {
    /// A daemon with `api` and nothing else yet: always ready, its own
    /// metrics registry (`hwc_<component>_*`), no reload, no tasks, no
    /// trace export (set [`Daemon::telemetry`] from the config for that).
    pub fn new(name: &'static str, config: ServerConfig, api: Router) -> Self {
        let component = name.strip_prefix("hwc-").unwrap_or(name);
        let component = component.rsplit('-').next().unwrap_or(component);
        Self {
            name,
            config,
            telemetry: crate::telemetry::TelemetryConfig::default(),
            api,
            health: Arc::new(crate::health::AlwaysReady),
            registry: crate::metrics::registry(component),
            reload: None,
            tasks: TaskGroup::new(),
            draining: CancellationToken::new(),
        }
    }
}

/// A listener bound as configured, or the first socket systemd passed
/// (`LISTEN_FDS`, socket activation) when there is one.
pub async fn bind(config: &ServerConfig) -> Result<TcpListener, ServerError> {
    let mut fds = listenfd::ListenFd::from_env();
    if let Some(std_listener) = fds.take_tcp_listener(0).map_err(ServerError::Activation)? {
        std_listener
            .set_nonblocking(true)
            .map_err(ServerError::Activation)?;
        tracing::info!("using the socket passed by systemd");
        return TcpListener::from_std(std_listener).map_err(ServerError::Activation);
    }
    TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })
}

/// Builds the full application: health and metrics routes, then the API,
/// every route behind one [`crate::edge::EdgeLayer`]: request ids and HTTP
/// metrics for all, and for the API its request span, its limits (body,
/// time, concurrency), failure lines and, while traces are exported, a
/// server span that continues the caller's W3C `traceparent` (the probes
/// and `/metrics` get none of those, which would only flood the logs and a
/// trace backend).
pub fn app(daemon: Daemon) -> Router {
    let Daemon {
        config,
        api,
        health,
        mut registry,
        ..
    } = daemon;
    let http_metrics = HttpMetrics::register(&mut registry);
    let registry = Arc::new(registry);
    let edge = EdgeLayer::api(
        http_metrics,
        Limits {
            max_body_bytes: config.max_body_bytes,
            max_concurrency: config.max_concurrency,
            request_timeout: config.request_timeout,
        },
    );

    let live = health.clone();
    let ready = health;
    let probes = Router::new()
        .route(
            "/healthz",
            get(move || async move { health::respond(live.liveness(), "ok") }),
        )
        .route(
            "/readyz",
            get(move || async move { health::respond(ready.readiness(), "ready") }),
        )
        .route("/metrics", get(metrics::serve_metrics).with_state(registry))
        .layer(edge.probes());

    let api = api
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::not_found(
                "unknown_endpoint",
                format!(
                    "no endpoint at {}; see the daemon's docs for its API",
                    uri.path()
                ),
            )
        })
        .method_not_allowed_fallback(
            |method: axum::http::Method, uri: axum::http::Uri| async move {
                ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "invalid_request_error",
                    "method_not_allowed",
                    format!("{method} is not allowed on {}", uri.path()),
                )
            },
        )
        .layer(edge);
    probes.merge(api)
}

/// The 413 error for a body over `server.max_body_bytes`.
pub fn body_too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request_error",
        "body_too_large",
        format!("request body is larger than the {max} bytes allowed (server.max_body_bytes); send less or raise the limit"),
    )
}

/// The whole life of a daemon: build it (open stores, make a first plan),
/// bind its address or take systemd's socket, serve until SIGTERM/SIGINT,
/// drain within `server.drain_timeout`, stop its tasks. What every daemon's
/// `main` runs (through [`crate::cli::run_daemon`]).
pub async fn run<E>(build: impl Future<Output = Result<Daemon, E>>) -> Result<(), E>
where
    E: From<ServerError>,
{
    let daemon = build.await?;
    let listener = bind(&daemon.config).await?;
    Ok(serve_on(listener, daemon, crate::shutdown::signal()).await?)
}

/// [`run`] on a listener already bound and with the shutdown trigger passed
/// in: how tests run a daemon in-process.
pub async fn run_on<E>(
    listener: TcpListener,
    build: impl Future<Output = Result<Daemon, E>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), E>
where
    E: From<ServerError>,
{
    let daemon = build.await?;
    Ok(serve_on(listener, daemon, shutdown).await?)
}

/// Serves a built `daemon` on `listener` until `shutdown`, then drains the
/// requests in flight and after them the background tasks, together within
/// `server.drain_timeout` (the tasks get at least a second), and last
/// flushes the trace exporter, if `[telemetry]` set one up (within what is
/// left of the drain, at least a second and at most five).
pub async fn serve_on(
    listener: TcpListener,
    mut daemon: Daemon,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let name = daemon.name;
    let drain = daemon.config.drain_timeout;
    let telemetry = match crate::telemetry::start(name, &daemon.telemetry) {
        Ok(t) => t,
        Err(e) => {
            // Built but never served: its tasks must not outlive it.
            daemon.tasks.shutdown(Duration::from_secs(1)).await;
            return Err(e.into());
        }
    };
    let health = daemon.health.clone();
    let tasks = daemon.tasks.clone();
    let draining = daemon.draining.clone();
    let reload = spawn_reload(name, daemon.reload.take());
    let addr = listener.local_addr().map_err(ServerError::Serve)?;
    let daemon_runtimes = daemon.config.runtimes;
    let app = app(daemon);

    let mut serving = match Serving::start(name, listener, app, daemon_runtimes) {
        Ok(s) => s,
        Err(e) => {
            // Built but never served: nothing it started may outlive it.
            reload.abort();
            tasks.shutdown(Duration::from_secs(1)).await;
            telemetry.shutdown(Duration::from_secs(1)).await;
            return Err(e);
        }
    };

    tracing::info!(daemon = name, %addr, "listening");
    notify::ready(&format!("{name} serving on {addr}"));
    let watchdog = notify::spawn_watchdog(health);

    // Until SIGTERM, or until the serving fails by itself (one serving
    // thread of several, say): either way the rest is drained the same.
    tokio::pin!(shutdown);
    let failed = tokio::select! {
        result = serving.finished() => Some(result),
        () = &mut shutdown => None,
    };

    notify::stopping();
    match &failed {
        Some(Err(e)) => tracing::error!(
            daemon = name,
            error = %e,
            drain_timeout_s = drain.as_secs_f64(),
            "serving failed; draining the requests still in flight"
        ),
        _ => tracing::info!(
            daemon = name,
            drain_timeout_s = drain.as_secs_f64(),
            "draining in-flight requests"
        ),
    }
    let started = tokio::time::Instant::now();
    draining.cancel();
    serving.stop();
    serving.drain(name, started + drain).await;
    if let Some(w) = &watchdog {
        w.abort();
    }
    reload.abort();
    let left = drain
        .saturating_sub(started.elapsed())
        .max(Duration::from_secs(1));
    let stuck = tasks.shutdown(left).await;
    let left = drain
        .saturating_sub(started.elapsed())
        .clamp(Duration::from_secs(1), Duration::from_secs(5));
    telemetry.shutdown(left).await;
    // Last: the serving threads' runtimes carry connections (to backends,
    // to PostgreSQL) the background tasks may have used until now.
    drop(serving);
    tracing::info!(
        daemon = name,
        aborted_tasks = stuck.len(),
        "drained; exiting"
    );
    match failed {
        Some(result) => result.map_err(ServerError::Serve),
        None => Ok(()),
    }
}

/// `listener` with `TCP_NODELAY` set on every accepted connection: without
/// it, Nagle holds small writes (one SSE event per token) for up to 40 ms
/// while the client's ACK is delayed.
pub(crate) fn with_nodelay(listener: TcpListener) -> impl axum::serve::Listener<Addr = SocketAddr> {
    axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
    })
}

/// The accept loops of a daemon, on its own runtime or on serving threads
/// (`server.runtimes`), with one way to wait for them, stop them and abort
/// them.
enum Serving {
    /// `axum::serve` as a task on the daemon's runtime (`None` once it has
    /// ended and been waited for).
    Shared {
        task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
        stop: CancellationToken,
        /// The runtime's [`crate::timer_anchor`], while this serves.
        _anchor: tokio_util::task::AbortOnDropHandle<()>,
    },
    /// Serving threads, each its own runtime.
    Threads(runtimes::Threads),
}

impl Serving {
    fn start(
        name: &str,
        listener: TcpListener,
        app: Router,
        runtimes: Runtimes,
    ) -> Result<Self, ServerError> {
        if let Some(n) = runtimes.threads() {
            let listener = listener.into_std().map_err(ServerError::Serve)?;
            let threads = runtimes::start(name, listener, app, n).map_err(ServerError::Serve)?;
            tracing::info!(
                daemon = name,
                threads = n,
                "serving on single-threaded runtimes"
            );
            return Ok(Self::Threads(threads));
        }
        let stop = CancellationToken::new();
        let server = axum::serve(with_nodelay(listener), app)
            .with_graceful_shutdown(stop.clone().cancelled_owned());
        let task = tokio::spawn(std::future::IntoFuture::into_future(server));
        Ok(Self::Shared {
            task: Some(task),
            stop,
            _anchor: crate::timer_anchor::hold(),
        })
    }

    /// Until every accept loop and connection has ended (after
    /// [`Serving::stop`]) or one accept loop failed; a later call waits for
    /// the rest. Cancel-safe.
    async fn finished(&mut self) -> std::io::Result<()> {
        match self {
            Self::Shared { task, .. } => {
                let Some(handle) = task.as_mut() else {
                    return Ok(());
                };
                let joined = handle.await;
                *task = None;
                match joined {
                    Ok(r) => r,
                    Err(e) if e.is_cancelled() => Ok(()),
                    Err(e) => Err(std::io::Error::other(e)),
                }
            }
            Self::Threads(threads) => threads.finished().await,
        }
    }

    /// Stops accepting; connections in flight go on.
    fn stop(&self) {
        match self {
            Self::Shared { stop, .. } => stop.cancel(),
            Self::Threads(threads) => threads.stop(),
        }
    }

    /// Waits for the connections in flight until `deadline`, logging any
    /// accept loop that fails meanwhile, and past it closes what is left.
    async fn drain(&mut self, name: &str, deadline: tokio::time::Instant) {
        loop {
            match tokio::time::timeout_at(deadline, self.finished()).await {
                Ok(Ok(())) => {
                    tracing::info!(daemon = name, "requests drained");
                    return;
                }
                Ok(Err(e)) => {
                    tracing::error!(daemon = name, error = %e, "serving failed while draining");
                }
                Err(_) => {
                    self.abort();
                    tracing::warn!(
                        daemon = name,
                        "drain_timeout reached with requests still open; closing them"
                    );
                    return;
                }
            }
        }
    }

    /// Closes what is still open.
    fn abort(&self) {
        match self {
            Self::Shared { task, .. } => {
                if let Some(t) = task {
                    t.abort();
                }
            }
            Self::Threads(threads) => threads.abort(),
        }
    }
}

/// Listens for SIGHUP for the daemon's lifetime and runs its reload. The
/// handler is installed before this returns, so before the server answers:
/// SIGHUP's default action would end the daemon.
fn spawn_reload(
    name: &'static str,
    reload: Option<Box<dyn Fn() + Send + Sync>>,
) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let hup = signal(SignalKind::hangup());
    tokio::spawn(async move {
        let Ok(mut hup) = hup else {
            tracing::warn!("cannot listen for SIGHUP");
            return;
        };
        while hup.recv().await.is_some() {
            match &reload {
                Some(f) => {
                    tracing::info!(daemon = name, signal = "SIGHUP", "reloading");
                    f();
                }
                None => tracing::info!(
                    daemon = name,
                    signal = "SIGHUP",
                    "nothing to reload; ignored"
                ),
            }
        }
    })
}
