//! HTTP server bootstrap: listener (configured or handed over by systemd),
//! the health and metrics routes, the protective layers around a daemon's
//! API, sd_notify, and a bounded drain on SIGTERM.

use crate::error::ApiError;
use crate::health::{self, Health};
use crate::metrics::{self, HttpMetrics};
use crate::notify;
use crate::tasks::{CancellationToken, TaskGroup};
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self as axum_mw, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{BoxError, Router};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

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
    /// [`crate::auth::require_bearer`]), since only it knows its principals.
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

/// Builds the full application: health and metrics routes, then the API
/// behind body, time and concurrency limits, all with request ids, tracing
/// and HTTP metrics. Each API request (not the probes and `/metrics`, which
/// would only flood a trace backend) gets a server span that continues the
/// caller's W3C `traceparent` ([`crate::telemetry::server_span`]).
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

    let shed_counter = http_metrics.clone();
    let timeout = config.request_timeout;
    let limits = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(move |err: BoxError| {
            let shed_counter = shed_counter.clone();
            async move { limit_error(err, timeout, &shed_counter) }
        }))
        .load_shed()
        // Global: `Router::layer` builds the layers once per route, and a
        // plain `concurrency_limit` would then be a limit per route.
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            config.max_concurrency,
        ))
        .timeout(config.request_timeout);

    let max_body = config.max_body_bytes;
    let api = api
        .layer(limits)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum_mw::from_fn(move |req: Request, next: Next| {
            reject_oversize(req, next, max_body)
        }))
        .layer(axum_mw::from_fn(crate::telemetry::server_span));

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
        .route("/metrics", get(metrics::serve_metrics).with_state(registry));

    let request_id = HeaderName::from_static("x-request-id");
    // Request spans and their failure lines for the API only: a probe's 503
    // while not ready is an answer, not a failure, and the prober polls it.
    let api = api
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::not_found(
                "unknown_endpoint",
                format!("no endpoint at {}; see the daemon's docs for its API", uri.path()),
            )
        })
        .method_not_allowed_fallback(|method: axum::http::Method, uri: axum::http::Uri| async move {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                "method_not_allowed",
                format!("{method} is not allowed on {}", uri.path()),
            )
        })
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
        }));
    probes
        .merge(api)
        .layer(axum_mw::from_fn_with_state(
            http_metrics,
            metrics::track_http,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(
                    request_id.clone(),
                    SequentialRequestId::new(),
                ))
                .layer(PropagateRequestIdLayer::new(request_id)),
        )
}

fn limit_error(err: BoxError, timeout: Duration, metrics: &HttpMetrics) -> Response {
    if err.is::<tower::load_shed::error::Overloaded>() {
        metrics.record_shed();
        return ApiError::unavailable(
            "overloaded",
            "the daemon is at its concurrency limit (server.max_concurrency); retry after the Retry-After delay",
            Duration::from_secs(1),
        )
        .into_response();
    }
    if err.is::<tower::timeout::error::Elapsed>() {
        return ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "server_error",
            "request_timeout",
            format!(
                "the request took longer than server.request_timeout ({}s) to answer",
                timeout.as_secs_f64()
            ),
        )
        .into_response();
    }
    ApiError::internal(format!("unhandled middleware error: {err}")).into_response()
}

async fn reject_oversize(req: Request, next: Next, max: usize) -> Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared {
        if len > max as u64 {
            return body_too_large(max).into_response();
        }
    }
    next.run(req).await
}

/// Request ids unique per process start and cheap to make: a random
/// prefix drawn once and a counter (a UUID per request costs a
/// `getrandom` syscall each time).
#[derive(Clone)]
pub struct SequentialRequestId {
    prefix: u32,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl SequentialRequestId {
    /// A new sequence with a prefix from the clock and process id.
    pub fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Self {
            prefix: nanos ^ std::process::id().rotate_left(16),
            next: Arc::new(std::sync::atomic::AtomicU64::new(1)),
        }
    }
}

impl Default for SequentialRequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl MakeRequestId for SequentialRequestId {
    fn make_request_id<B>(&mut self, _: &http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        axum::http::HeaderValue::from_str(&format!("{:08x}-{n:x}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
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
    let app = app(daemon);

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // Without TCP_NODELAY, Nagle holds small writes (one SSE event per
    // token) for up to 40 ms while the client's ACK is delayed.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stop_rx.await;
    });
    let mut server = tokio::spawn(async move { server.await });

    tracing::info!(daemon = name, %addr, "listening");
    notify::ready(&format!("{name} serving on {addr}"));
    let watchdog = notify::spawn_watchdog(health);
    let stop_helpers = || {
        if let Some(w) = &watchdog {
            w.abort();
        }
        reload.abort();
    };

    tokio::pin!(shutdown);
    tokio::select! {
        result = &mut server => {
            stop_helpers();
            tasks.shutdown(drain).await;
            telemetry.shutdown(Duration::from_secs(5)).await;
            return match result {
                Ok(r) => r.map_err(ServerError::Serve),
                Err(e) => Err(ServerError::Serve(std::io::Error::other(e))),
            };
        }
        () = &mut shutdown => {}
    }

    notify::stopping();
    tracing::info!(
        daemon = name,
        drain_timeout_s = drain.as_secs_f64(),
        "draining in-flight requests"
    );
    let started = tokio::time::Instant::now();
    draining.cancel();
    let _ = stop_tx.send(());
    match tokio::time::timeout(drain, &mut server).await {
        Ok(_) => tracing::info!(daemon = name, "requests drained"),
        Err(_) => {
            server.abort();
            tracing::warn!(
                daemon = name,
                "drain_timeout reached with requests still open; closing them"
            );
        }
    }
    stop_helpers();
    let left = drain
        .saturating_sub(started.elapsed())
        .max(Duration::from_secs(1));
    let stuck = tasks.shutdown(left).await;
    let left = drain
        .saturating_sub(started.elapsed())
        .clamp(Duration::from_secs(1), Duration::from_secs(5));
    telemetry.shutdown(left).await;
    tracing::info!(
        daemon = name,
        aborted_tasks = stuck.len(),
        "drained; exiting"
    );
    Ok(())
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
