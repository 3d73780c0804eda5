//! The protective layers every daemon gets from `server::app`, driven with
//! `oneshot`: shedding with 503 + Retry-After, 413, 504, JSON 404/405,
//! request ids; and the drain of `serve_on` with real TCP: the request in
//! flight finishes, then the background tasks get their last word, on the
//! daemon's runtime and on serving threads (`server.runtimes`).
#![allow(clippy::unwrap_used, missing_docs)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use futures_util::StreamExt;
use hwc_ai_core::runtimes::Runtimes;
use hwc_ai_core::server::{app, serve_on, Daemon, ServerConfig};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

fn daemon(api: Router, tweak: impl FnOnce(&mut ServerConfig)) -> Daemon {
    let mut config = ServerConfig::on_port(0);
    tweak(&mut config);
    Daemon::new("hwc-test-daemon", config, api)
}

fn api() -> Router {
    Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "slow"
            }),
        )
        .route("/echo", post(|body: String| async move { body }))
}

async fn body_json(resp: axum::response::Response) -> serde_json::Value {
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn get_req(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

/// `api()` plus `/hold`, which says when it has been entered (so a test
/// knows the concurrency slot is taken without guessing with a sleep).
fn holding_api() -> (Router, Arc<tokio::sync::Notify>) {
    let entered = Arc::new(tokio::sync::Notify::new());
    let e = entered.clone();
    let api = api().route(
        "/hold",
        get(move || {
            let e = e.clone();
            async move {
                e.notify_one();
                tokio::time::sleep(Duration::from_millis(300)).await;
                "held"
            }
        }),
    );
    (api, entered)
}

/// A daemon served on real TCP in the background, until `stop` is sent.
struct Serving {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<Result<(), hwc_ai_core::server::ServerError>>,
}

async fn serve(d: Daemon) -> Serving {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(serve_on(listener, d, async move {
        let _ = stopped.await;
    }));
    Serving { addr, stop, served }
}

#[tokio::test]
async fn sheds_at_the_concurrency_limit_with_retry_after() {
    let (api, entered) = holding_api();
    let router = app(daemon(api, |c| c.max_concurrency = 1));
    let busy = tokio::spawn(router.clone().oneshot(get_req("/hold")));
    entered.notified().await;
    let shed = router.clone().oneshot(get_req("/slow")).await.unwrap();
    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shed.headers()["retry-after"], "1");
    let body = body_json(shed).await;
    assert_eq!(body["error"]["code"], "overloaded");
    assert_eq!(busy.await.unwrap().unwrap().status(), StatusCode::OK);
    // Health stays outside the limit: a loaded daemon still answers probes.
    let busy = tokio::spawn(router.clone().oneshot(get_req("/hold")));
    entered.notified().await;
    let health = router.clone().oneshot(get_req("/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    busy.await.unwrap().unwrap();
}

#[tokio::test]
async fn oversize_bodies_get_413_by_header_and_by_stream() {
    let router = app(daemon(api(), |c| c.max_body_bytes = 16));
    let declared = Request::post("/echo")
        .header("content-length", "17")
        .body(Body::from("x".repeat(17)))
        .unwrap();
    let resp = router.clone().oneshot(declared).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body_json(resp).await["error"]["code"], "body_too_large");
    let small = Request::post("/echo").body(Body::from("ok")).unwrap();
    assert_eq!(
        router.oneshot(small).await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn slow_handlers_get_504_naming_the_setting() {
    let router = app(daemon(api(), |c| {
        c.request_timeout = Duration::from_millis(50)
    }));
    let resp = router.oneshot(get_req("/slow")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    let body = body_json(resp).await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.request_timeout"),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors_with_request_ids() {
    let router = app(daemon(api(), |_| {}));
    let resp = router.clone().oneshot(get_req("/nope")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let first_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(body_json(resp).await["error"]["code"], "unknown_endpoint");
    let resp = router.clone().oneshot(get_req("/echo")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let second_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(body_json(resp).await["error"]["code"], "method_not_allowed");
    assert_ne!(first_id, second_id, "each request gets its own id");
    let (prefix, _) = first_id.split_once('-').unwrap();
    assert!(
        second_id.starts_with(prefix),
        "one prefix per process: {first_id} {second_id}"
    );
}

#[tokio::test]
async fn a_given_request_id_is_kept_and_an_abandoned_request_leaves_the_in_flight_gauge() {
    let (api, entered) = holding_api();
    let router = app(daemon(api, |_| {}));
    let given = Request::get("/slow")
        .header("x-request-id", "caller-chose-this")
        .body(Body::empty())
        .unwrap();
    let resp = router.clone().oneshot(given).await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "caller-chose-this");
    // A client that hangs up before the head: its future is dropped.
    let abandoned = tokio::spawn(router.clone().oneshot(get_req("/hold")));
    entered.notified().await;
    abandoned.abort();
    let _ = abandoned.await;
    let metrics = router.oneshot(get_req("/metrics")).await.unwrap();
    let text = String::from_utf8(
        axum::body::to_bytes(metrics.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let gauge = text
        .lines()
        .find(|l| l.starts_with("hwc_daemon_http_requests_in_flight "))
        .unwrap_or_else(|| panic!("no in-flight gauge in:\n{text}"));
    assert_eq!(
        gauge, "hwc_daemon_http_requests_in_flight 1",
        "only /metrics itself"
    );
}

#[tokio::test]
async fn drain_finishes_the_request_in_flight_then_the_tasks() {
    drains_in_flight_then_tasks(Runtimes::Shared).await;
}

#[tokio::test]
async fn serving_threads_drain_as_the_shared_runtime_does() {
    drains_in_flight_then_tasks(Runtimes::Count(NonZeroUsize::new(2).unwrap())).await;
}

async fn drains_in_flight_then_tasks(runtimes: Runtimes) {
    let d = daemon(api(), |c| {
        c.drain_timeout = Duration::from_secs(5);
        c.runtimes = runtimes;
    });
    let flushed = Arc::new(AtomicBool::new(false));
    let f = flushed.clone();
    d.tasks.spawn("flush", |cancel| async move {
        cancel.cancelled().await;
        f.store(true, Ordering::SeqCst);
    });
    let Serving { addr, stop, served } = serve(d).await;
    let inflight = tokio::spawn(reqwest::get(format!("http://{addr}/slow")));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    let resp = inflight.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200, "drained, not cut");
    assert_eq!(resp.text().await.unwrap(), "slow");
    served.await.unwrap().unwrap();
    assert!(flushed.load(Ordering::SeqCst), "the task saw the drain");
    assert!(
        reqwest::get(format!("http://{addr}/healthz"))
            .await
            .is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn serving_threads_answer_on_their_own_threads_and_are_cut_at_the_drain_timeout() {
    let api = api()
        .route(
            "/thread",
            get(|| async { std::thread::current().name().unwrap_or("-").to_owned() }),
        )
        .route(
            "/forever",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "never"
            }),
        );
    let d = daemon(api, |c| {
        c.drain_timeout = Duration::from_millis(300);
        c.runtimes = Runtimes::Count(NonZeroUsize::new(3).unwrap());
    });
    let Serving { addr, stop, served } = serve(d).await;
    let mut threads = std::collections::BTreeSet::new();
    for _ in 0..20 {
        // A fresh connection each time: any of the threads may accept it.
        let client = reqwest::Client::new();
        let name = client
            .get(format!("http://{addr}/thread"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        threads.insert(name);
    }
    assert!(
        threads
            .iter()
            .all(|t| t.starts_with("hwc-test-daemon-http-")),
        "requests run on the serving threads, not the caller's runtime: {threads:?}"
    );
    let stuck = tokio::spawn(reqwest::get(format!("http://{addr}/forever")));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("the drain timeout ends serving")
        .unwrap()
        .unwrap();
    assert!(stuck.await.unwrap().is_err(), "the stuck request was cut");
}

/// Per serving thread, a task spawned on that thread's runtime that
/// answers on a channel: what a pooled connection opened by one thread and
/// used by another's request is.
type Workers = Arc<
    std::sync::Mutex<
        std::collections::BTreeMap<
            String,
            tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<()>>,
        >,
    >,
>;

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("-").to_owned()
}

#[tokio::test]
async fn a_serving_thread_keeps_its_runtime_while_another_thread_drains() {
    let workers: Workers = Arc::default();
    let (w_open, w_use) = (workers.clone(), workers.clone());
    let api = Router::new()
        .route(
            "/open",
            get(move || {
                let workers = w_open.clone();
                async move {
                    let (tx, mut rx) =
                        tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<()>>(1);
                    tokio::spawn(async move {
                        while let Some(reply) = rx.recv().await {
                            let _ = reply.send(());
                        }
                    });
                    workers.lock().unwrap().entry(thread_name()).or_insert(tx);
                    thread_name()
                }
            }),
        )
        .route(
            "/use-the-other",
            get(move || {
                let workers = w_use.clone();
                async move {
                    let other = {
                        let w = workers.lock().unwrap();
                        w.iter()
                            .find(|(name, _)| **name != thread_name())
                            .map(|(_, tx)| tx.clone())
                            .unwrap()
                    };
                    // The drain begins meanwhile.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let (reply, answered) = tokio::sync::oneshot::channel();
                    other
                        .send(reply)
                        .await
                        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
                    answered
                        .await
                        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
                    Ok::<_, StatusCode>("the other thread's task answered")
                }
            }),
        );
    let d = daemon(api, |c| {
        c.drain_timeout = Duration::from_secs(5);
        c.runtimes = Runtimes::Count(NonZeroUsize::new(2).unwrap());
    });
    let Serving { addr, stop, served } = serve(d).await;
    // Fresh connections until both threads have a task of their own.
    for _ in 0..200 {
        if workers.lock().unwrap().len() == 2 {
            break;
        }
        reqwest::Client::new()
            .get(format!("http://{addr}/open"))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(
        workers.lock().unwrap().len(),
        2,
        "both threads accepted a connection"
    );
    let using = tokio::spawn(reqwest::get(format!("http://{addr}/use-the-other")));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    let resp = using.await.unwrap().unwrap();
    assert_eq!(
        resp.status(),
        200,
        "the idle thread's runtime outlived its accept loop"
    );
    served.await.unwrap().unwrap();
}

/// Not ready, always: what a daemon whose required peer is down answers.
struct NeverReady;
impl hwc_ai_core::health::Health for NeverReady {
    fn readiness(&self) -> Result<(), String> {
        Err("the test's peer is down".into())
    }
}

/// Counts the ERROR events emitted while it is the thread's subscriber.
#[derive(Clone, Default)]
struct ErrorCount(Arc<std::sync::atomic::AtomicUsize>);
impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ErrorCount {
    fn on_event(&self, e: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *e.metadata().level() == tracing::Level::ERROR {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The span names around each event with the message `"in the stream"`.
#[derive(Clone, Default)]
struct SpansOfStreamEvents(Arc<std::sync::Mutex<Vec<Vec<String>>>>);
impl<S> tracing_subscriber::Layer<S> for SpansOfStreamEvents
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_event(&self, e: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let mut message = String::new();
        struct Message<'a>(&'a mut String);
        impl tracing::field::Visit for Message<'_> {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" {
                    *self.0 = format!("{v:?}");
                }
            }
        }
        e.record(&mut Message(&mut message));
        if message != "in the stream" {
            return;
        }
        let spans = ctx
            .event_scope(e)
            .map(|scope| scope.map(|s| s.name().to_owned()).collect())
            .unwrap_or_default();
        self.0.lock().unwrap().push(spans);
    }
}

#[tokio::test]
async fn a_streamed_body_is_sent_inside_the_request_span() {
    use tracing_subscriber::layer::SubscriberExt;
    let seen = SpansOfStreamEvents::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(seen.clone()));
    let api = Router::new().route(
        "/stream",
        get(|| async {
            let chunks = futures_util::stream::iter(["a", "b"]).map(|c| {
                tracing::info!("in the stream");
                Ok::<_, std::convert::Infallible>(c)
            });
            Body::from_stream(chunks)
        }),
    );
    let resp = app(daemon(api, |_| {}))
        .oneshot(get_req("/stream"))
        .await
        .unwrap();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    assert_eq!(&body[..], b"ab");
    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen.iter()
            .all(|spans| spans.iter().any(|s| s == "request")),
        "each line logged while the body is sent names its request: {seen:?}"
    );
}

#[tokio::test]
async fn a_probe_answering_not_ready_is_no_error_but_an_api_500_is() {
    use tracing_subscriber::layer::SubscriberExt;
    let errors = ErrorCount::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(errors.clone()));
    let api = Router::new().route("/boom", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }));
    let mut d = daemon(api, |_| {});
    d.health = Arc::new(NeverReady);
    let router = app(d);
    for _ in 0..3 {
        let r = router.clone().oneshot(get_req("/readyz")).await.unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(
        errors.0.load(Ordering::SeqCst),
        0,
        "a polled /readyz must not log errors"
    );
    let r = router.clone().oneshot(get_req("/boom")).await.unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        errors.0.load(Ordering::SeqCst),
        1,
        "an API 500 is still logged"
    );
    // Fallbacks keep their JSON bodies after the split.
    let r = router.clone().oneshot(get_req("/nowhere")).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(body_json(r).await["error"]["code"], "unknown_endpoint");
    let r = router
        .oneshot(Request::post("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}
