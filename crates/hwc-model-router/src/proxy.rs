//! Sending a routed request upstream: candidate choice, retries with
//! jittered backoff, `Retry-After`, cooldowns, and the streamed and whole
//! answer paths.
//!
//! Fallback happens only while nothing from an upstream has reached the
//! client. A stream holds its response head until the first event is ready
//! (so an upstream 4xx still reaches the client as that status) unless the
//! first token is slow: then the head goes out with SSE keepalive comments,
//! and a later failure before the first event can still fall over to the
//! next candidate, since comments carry no content.
//!
//! Accounting never depends on how the client leaves. A stream is complete
//! (outcome `ok`, its usage charged) as soon as its final event (`[DONE]`,
//! or `response.completed`/`response.incomplete` on the Responses API) has
//! been handed to the client, whatever the client does next: the openai
//! SDK's stream helpers and Codex close the connection right there. A
//! client that leaves before that is `cancelled`, and is still charged what
//! the stream used so far (the upstream's usage if it came, else an
//! estimate), so closing early is no way around a budget.

use crate::backends::transport::UpstreamResponse;
use crate::balance::{Cooled, Replica};
use crate::config::FallbackConfig;
use crate::keys::ApiKey;
use crate::metrics::{BackendLabel, FallbackLabels, ModelBackend, RouterMetrics};
use crate::request::ClientRequest;
use crate::routing::{Candidate, Route, RoutingTable};
use crate::upstream::{self, Forward, StreamShape};
use crate::usage::{Ledger, Tokens};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use hwc_ai_core::sse::{self, SseParser};
use hwc_ai_core::telemetry;
use hwc_ai_core::ApiError;
use opentelemetry::trace::SpanKind;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// How long an upstream may go on after its final event before the
/// client's stream is ended anyway (what arrives meanwhile, usually just
/// the end of the body, is passed on). Bounds the wait on an upstream that
/// keeps the connection open after `[DONE]`.
const DRAIN_GRACE: Duration = Duration::from_millis(250);

/// Everything a request needs after auth and routing.
pub struct Call {
    /// The parsed request.
    pub req: ClientRequest,
    /// Where it may go.
    pub route: Route,
    /// Who sent it.
    pub key: Arc<ApiKey>,
    /// For upstream logs (`x-request-id`).
    pub request_id: String,
    /// When the router received it.
    pub started: Instant,
    /// The span the handler runs in: the request's server span
    /// ([`hwc_ai_core::telemetry::server_span`]) while spans are recorded,
    /// else the edge's log span. Each upstream attempt is a client span
    /// under it, and holding it here keeps it open for as long as a stream
    /// runs.
    pub span: tracing::Span,
    /// The request's trace context
    /// ([`hwc_ai_core::telemetry::request_context`]): what every attempt's
    /// `traceparent` continues while spans are not recorded, so a retry
    /// or a fallback stays in the request's one trace.
    pub trace: Option<opentelemetry::trace::SpanContext>,
}

/// The shared proxy state.
pub struct Engine {
    /// Models, aliases and backends.
    pub table: RoutingTable,
    /// Retry and cooldown settings.
    pub fallback: FallbackConfig,
    /// SSE keepalive period.
    pub keepalive: Duration,
    /// Metrics.
    pub metrics: RouterMetrics,
    /// Usage and budgets.
    pub ledger: Arc<Ledger>,
}

/// Why one attempt failed, kept for the final error message.
#[derive(Debug)]
struct Failure {
    backend: String,
    reason: &'static str,
    detail: String,
    retry_after: Option<Duration>,
}

enum SendError {
    /// Worth trying the next candidate.
    Retry(Failure),
    /// The backend refused the request itself (4xx): the client gets it.
    Final(ApiError),
}

enum Pick {
    Go(Candidate, Arc<Replica>),
    Wait(Duration),
    Exhausted(Option<Duration>),
}

/// A whole answer for the client.
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Body.
    pub body: Bytes,
    /// Backend that answered.
    pub backend: String,
}

/// What the streamed path yields to the handler.
pub enum Out {
    /// Commit to a 200 SSE response now; the backend if known.
    Start(Option<String>),
    /// Bytes for the client.
    Bytes(Bytes),
    /// Nothing was sent yet and the request failed: answer with this.
    Fail(ApiError),
}

fn parse_retry_after(resp: &UpstreamResponse) -> Option<Duration> {
    let v = resp
        .headers()
        .get(axum::http::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

impl Engine {
    fn pick(&self, call: &Call, tried: &[usize]) -> Pick {
        let now = Instant::now();
        for c in &call.route.candidates {
            if let Some(r) = c.backend.pick(tried, now) {
                return Pick::Go(c.clone(), r);
            }
        }
        // Every replica tried once: retry any that is not cooling.
        for c in &call.route.candidates {
            if let Some(r) = c.backend.pick(&[], now) {
                return Pick::Go(c.clone(), r);
            }
        }
        let soonest = call
            .route
            .candidates
            .iter()
            .filter_map(|c| c.backend.cooling_left(now))
            .min();
        match soonest {
            Some(d) if d <= self.fallback.backoff_max => Pick::Wait(d),
            other => Pick::Exhausted(other),
        }
    }

    /// The candidate for the next attempt, waiting out a short cooldown
    /// (at most `backoff_max`, added to `waited`) once; the final error when
    /// nothing can serve.
    async fn next(
        &self,
        call: &Call,
        tried: &[usize],
        failures: &[Failure],
        waited: &mut Duration,
    ) -> Result<(Candidate, Arc<Replica>), ApiError> {
        match self.pick(call, tried) {
            Pick::Go(c, r) => return Ok((c, r)),
            Pick::Exhausted(d) => return Err(self.exhausted(call, failures, d)),
            Pick::Wait(d) => {
                tokio::time::sleep(d).await;
                *waited += d;
            }
        }
        match self.pick(call, tried) {
            Pick::Go(c, r) => Ok((c, r)),
            Pick::Wait(d) | Pick::Exhausted(Some(d)) => {
                Err(self.exhausted(call, failures, Some(d)))
            }
            Pick::Exhausted(None) => Err(self.exhausted(call, failures, None)),
        }
    }

    fn backoff(&self, attempt: usize) -> Duration {
        hwc_ai_core::backoff::Backoff {
            base: self.fallback.backoff_base,
            max: self.fallback.backoff_max,
            jitter: hwc_ai_core::backoff::Jitter::Full,
        }
        .next(u32::try_from(attempt).unwrap_or(u32::MAX))
    }

    fn fail(&self, call: &Call, c: &Candidate, replica: &Replica, f: &Failure) {
        let backend = c.backend.name().to_string();
        tracing::warn!(backend = %backend, replica = %replica.url, reason = f.reason, detail = %f.detail, "upstream attempt failed");
        self.metrics
            .fallbacks
            .get_or_create(&FallbackLabels {
                model: call.route.model.clone(),
                backend: backend.clone(),
                reason: f.reason,
            })
            .inc();
        if let Cooled::For(d) =
            replica.record_failure(Instant::now(), &self.fallback, f.retry_after)
        {
            tracing::warn!(backend = %backend, replica = %replica.url, cooldown_s = d.as_secs_f64(), "replica cooled down");
            self.metrics
                .cooldowns
                .get_or_create(&BackendLabel {
                    backend: backend.clone(),
                })
                .inc();
        }
        self.refresh_up(c);
    }

    fn refresh_up(&self, c: &Candidate) {
        self.metrics
            .backend_up
            .get_or_create(&BackendLabel {
                backend: c.backend.name().to_string(),
            })
            .set(i64::from(c.backend.is_up(Instant::now())));
    }

    /// One attempt at `replica`, as a client span under the request's
    /// span; the span is handed back with the response so that it covers
    /// reading the answer too.
    async fn send(
        &self,
        call: &Call,
        c: &Candidate,
        replica: &Replica,
    ) -> Result<(UpstreamResponse, tracing::Span), SendError> {
        let span = attempt_span(call, c, replica);
        match self
            .send_in(call, c, replica, &span)
            .instrument(span.clone())
            .await
        {
            Ok(resp) => Ok((resp, span)),
            Err(SendError::Retry(f)) => {
                // An answered attempt has its status recorded already.
                if !f.reason.starts_with("status_") {
                    telemetry::record_error(&span, f.reason);
                }
                Err(SendError::Retry(f))
            }
            Err(e) => Err(e),
        }
    }

    async fn send_in(
        &self,
        call: &Call,
        c: &Candidate,
        replica: &Replica,
        span: &tracing::Span,
    ) -> Result<UpstreamResponse, SendError> {
        let backend = c.backend.name().to_string();
        let retry = |reason, detail: String| {
            SendError::Retry(Failure {
                backend: backend.clone(),
                reason,
                detail,
                retry_after: None,
            })
        };
        let body = upstream::request_body(
            c.backend.kind(),
            c.backend.config.responses_api,
            &call.req,
            &c.upstream_model,
            c.backend.config.default_max_tokens,
        )
        .map_err(|e| {
            telemetry::record_error(span, "untranslatable_request");
            SendError::Final(ApiError::invalid_request("untranslatable_request", e))
        })?;
        let mut extra = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&call.request_id) {
            extra.insert("x-request-id", v);
        }
        // Trace context goes to local backends only: a cloud provider can't
        // join our traces, and the ids would let it link requests together.
        if c.backend.is_local() {
            telemetry::inject(span, call.trace.as_ref(), &mut extra);
        }
        let send = c.backend.send(
            replica,
            upstream::upstream_path(
                c.backend.kind(),
                c.backend.config.responses_api,
                call.req.endpoint,
            ),
            extra,
            body,
        );
        let deadline = c.backend.config.first_token_timeout;
        let resp = match tokio::time::timeout(deadline, send).await {
            Err(_) => {
                return Err(retry(
                    "timeout",
                    format!(
                        "no response head within {}s (first_token_timeout)",
                        deadline.as_secs_f64()
                    ),
                ))
            }
            Ok(Err(e)) if e.is_connect() => {
                return Err(retry(
                    "connect",
                    format!("cannot connect: {}", root_cause(&e)),
                ))
            }
            Ok(Err(e)) if e.is_timeout() => return Err(retry("timeout", root_cause(&e))),
            Ok(Err(e)) => return Err(retry("transport", root_cause(&e))),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        telemetry::record_status(span, status.as_u16(), SpanKind::Client);
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after = parse_retry_after(&resp);
        let text = resp.bytes().await.unwrap_or_default();
        // 501 and 505 say the backend can't do this at all: no retry helps,
        // and the backend is not unhealthy for saying so.
        let permanent = matches!(status.as_u16(), 501 | 505);
        if status.as_u16() == 429
            || status.as_u16() == 408
            || (status.is_server_error() && !permanent)
        {
            let reason = if status.as_u16() == 429 {
                "status_429"
            } else {
                "status_5xx"
            };
            return Err(SendError::Retry(Failure {
                backend,
                reason,
                detail: format!("answered {}: {}", status.as_u16(), upstream::excerpt(&text)),
                retry_after,
            }));
        }
        let (kind, message) =
            upstream::client_error_body(c.backend.kind(), &backend, status.as_u16(), &text);
        let code = if status.as_u16() == 404 {
            "upstream_not_found"
        } else {
            "upstream_rejected"
        };
        let mut e = ApiError::new(status, static_kind(&kind), code, message);
        if status.as_u16() == 401 || status.as_u16() == 403 {
            // The client's key is fine; ours for the backend is not.
            e = ApiError::new(StatusCode::BAD_GATEWAY, "server_error", "upstream_auth_failed",
                format!("backend `{backend}` refused the router's credentials ({}); check its api_key_file", status.as_u16()));
        }
        Err(SendError::Final(e))
    }

    fn exhausted(&self, call: &Call, failures: &[Failure], cooling: Option<Duration>) -> ApiError {
        if failures.is_empty() {
            let wait = cooling.unwrap_or(self.fallback.cooldown);
            return ApiError::unavailable(
                "backends_cooling_down",
                format!(
                    "every backend of model `{}` is cooling down after repeated failures; retry after the Retry-After delay",
                    call.route.model
                ),
                wait,
            );
        }
        let summary = failures
            .iter()
            .map(|f| format!("{} ({}: {})", f.backend, f.reason, f.detail))
            .collect::<Vec<_>>()
            .join("; ");
        let message = format!(
            "model `{}`: all {} upstream attempts failed: {summary}",
            call.route.model,
            failures.len()
        );
        if failures.iter().all(|f| f.reason == "status_429") {
            let wait = failures
                .iter()
                .filter_map(|f| f.retry_after)
                .min()
                .or(cooling)
                .unwrap_or(Duration::from_secs(1));
            return ApiError::rate_limited("upstream_rate_limited", message, wait);
        }
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "server_error",
            "upstream_failed",
            message,
        )
    }

    /// The non-streamed path: tries candidates until one answers. A client
    /// that leaves before the answer (the future is dropped) is recorded as
    /// `cancelled` and charged the prompt estimate once a request went
    /// upstream.
    pub async fn complete(&self, call: &Call) -> Result<Answer, ApiError> {
        let mut watch = Unanswered {
            engine: self,
            call,
            sent: false,
            settled: false,
        };
        let result = self.complete_in(call, &mut watch).await;
        watch.settled = true;
        result
    }

    async fn complete_in(
        &self,
        call: &Call,
        watch: &mut Unanswered<'_>,
    ) -> Result<Answer, ApiError> {
        let mut tried: Vec<usize> = Vec::new();
        let mut failures: Vec<Failure> = Vec::new();
        let mut upstream_time = Duration::ZERO;
        for attempt in 0..self.fallback.max_attempts {
            let (c, replica) = self
                .next(call, &tried, &failures, &mut upstream_time)
                .await?;
            if attempt > 0 {
                let pause = self.backoff(attempt);
                tokio::time::sleep(pause).await;
                upstream_time += pause;
            }
            tried.push(Arc::as_ptr(&replica) as usize);
            let t0 = Instant::now();
            let guard = replica.begin();
            watch.sent = true;
            let result = self.send(call, &c, &replica).await;
            guard.observe_head();
            let (resp, _attempt) = match result {
                Ok(r) => r,
                Err(SendError::Final(e)) => {
                    upstream_time += t0.elapsed();
                    replica.record_success(Instant::now(), &self.fallback);
                    return Err(e);
                }
                Err(SendError::Retry(f)) => {
                    upstream_time += t0.elapsed();
                    self.fail(call, &c, &replica, &f);
                    failures.push(f);
                    continue;
                }
            };
            let body = tokio::time::timeout(c.backend.config.request_timeout, resp.bytes()).await;
            upstream_time += t0.elapsed();
            drop(guard);
            let failure = |reason, detail| Failure {
                backend: c.backend.name().to_string(),
                reason,
                detail,
                retry_after: None,
            };
            let body = match body {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => {
                    let f = failure(
                        "transport",
                        format!("answer cut short: {}", root_cause(&*e)),
                    );
                    self.fail(call, &c, &replica, &f);
                    failures.push(f);
                    continue;
                }
                Err(_) => {
                    let f = failure(
                        "timeout",
                        format!(
                            "no whole answer within request_timeout ({}s)",
                            c.backend.config.request_timeout.as_secs_f64()
                        ),
                    );
                    self.fail(call, &c, &replica, &f);
                    failures.push(f);
                    continue;
                }
            };
            match upstream::read_answer_for(
                c.backend.kind(),
                c.backend.config.responses_api,
                &call.req,
                &body,
                &call.req.model,
            ) {
                Ok((out, tokens)) => {
                    replica.record_success(Instant::now(), &self.fallback);
                    self.refresh_up(&c);
                    let backend = c.backend.name().to_string();
                    self.account(call, &backend, "ok", tokens);
                    let total = call.started.elapsed();
                    self.metrics
                        .overhead
                        .observe(total.saturating_sub(upstream_time).as_secs_f64());
                    return Ok(Answer {
                        status: StatusCode::OK,
                        body: out,
                        backend,
                    });
                }
                Err(detail) => {
                    let f = failure("bad_body", detail);
                    self.fail(call, &c, &replica, &f);
                    failures.push(f);
                }
            }
        }
        Err(self.exhausted(call, &failures, None))
    }

    fn account(&self, call: &Call, backend: &str, outcome: &'static str, tokens: Tokens) {
        let model = &call.route.model;
        self.metrics.request(model, backend, outcome);
        self.metrics
            .latency
            .get_or_create(&ModelBackend {
                model: model.clone(),
                backend: backend.to_string(),
            })
            .observe(call.started.elapsed().as_secs_f64());
        for (kind, n) in [("prompt", tokens.prompt), ("completion", tokens.completion)] {
            self.metrics
                .tokens
                .get_or_create(&crate::metrics::TokenLabels {
                    model: model.clone(),
                    key: call.key.name.clone(),
                    kind,
                })
                .inc_by(n);
        }
        self.ledger.record(&call.key.name, model, tokens);
    }

    /// The streamed path. The first item is `Start` or `Fail`; see the
    /// module doc for when fallback is still possible.
    pub fn stream(self: Arc<Self>, call: Call) -> impl Stream<Item = Out> + Send + 'static {
        async_stream::stream! {
            let call = Arc::new(call);
            let mut record = StreamRecord { engine: self.clone(), call: call.clone(), backend: String::from("none"), tokens: Tokens::default(), reported: false, sent: false, outcome: None, accounted: false };
            let engine = self;
            let mut committed = false;
            let mut tried: Vec<usize> = Vec::new();
            let mut failures: Vec<Failure> = Vec::new();
            let mut upstream_time = Duration::ZERO;
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + engine.keepalive, engine.keepalive);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let call = &*call;
            let mut attempt = 0usize;
            let mut final_error: Option<ApiError> = None;
            'attempts: while attempt < engine.fallback.max_attempts {
                let (c, replica) = match engine.next(call, &tried, &failures, &mut upstream_time).await {
                    Ok(next) => next,
                    Err(e) => { final_error = Some(e); break 'attempts; }
                };
                if attempt > 0 {
                    let pause = engine.backoff(attempt);
                    tokio::time::sleep(pause).await;
                    upstream_time += pause;
                }
                attempt += 1;
                tried.push(Arc::as_ptr(&replica) as usize);
                let t0 = Instant::now();
                let deadline = tokio::time::Instant::now() + c.backend.config.first_token_timeout;
                let guard = replica.begin();
                let backend_name = c.backend.name().to_string();
                record.sent = true;

                // 1. The response head, with keepalives while it is slow.
                let send = engine.send(call, &c, &replica);
                tokio::pin!(send);
                let sent = loop {
                    let step = tokio::select! {
                        r = &mut send => Some(r),
                        _ = ticker.tick() => None,
                    };
                    match step {
                        Some(r) => break r,
                        None => {
                            if !committed { committed = true; yield Out::Start(None); }
                            yield Out::Bytes(Bytes::from_static(sse::KEEPALIVE));
                        }
                    }
                };
                guard.observe_head();
                let (resp, _attempt) = match sent {
                    Ok(r) => r,
                    Err(SendError::Final(e)) => {
                        replica.record_success(Instant::now(), &engine.fallback);
                        final_error = Some(e);
                        break 'attempts;
                    }
                    Err(SendError::Retry(f)) => {
                        upstream_time += t0.elapsed();
                        engine.fail(call, &c, &replica, &f);
                        failures.push(f);
                        continue 'attempts;
                    }
                };

                // 2. The first event, by the first-token deadline.
                let mut body = resp.bytes_stream();
                let mut parser = SseParser::default();
                let mut shape = StreamShape::for_backend(c.backend.kind(), c.backend.config.responses_api, &call.req, &call.req.model);
                let mut pending: Vec<Bytes> = Vec::new();
                let first: Result<(), Failure> = loop {
                    let step = tokio::select! {
                        chunk = body.next() => Some(chunk),
                        _ = ticker.tick() => None,
                        _ = tokio::time::sleep_until(deadline) => {
                            break Err(Failure { backend: backend_name.clone(), reason: "first_token_timeout",
                                detail: format!("no first token within {}s (first_token_timeout)", c.backend.config.first_token_timeout.as_secs_f64()), retry_after: None });
                        }
                    };
                    let Some(chunk) = step else {
                        if !committed { committed = true; yield Out::Start(None); }
                        yield Out::Bytes(Bytes::from_static(sse::KEEPALIVE));
                        continue;
                    };
                    let bytes = match chunk {
                        Some(Ok(b)) => b,
                        Some(Err(e)) => break Err(Failure { backend: backend_name.clone(), reason: "stream_error", detail: format!("stream broke before the first token: {}", root_cause(&*e)), retry_after: None }),
                        None => break Err(Failure { backend: backend_name.clone(), reason: "stream_error", detail: "stream ended before the first token".into(), retry_after: None }),
                    };
                    let events = match parser.push(&bytes) {
                        Ok(ev) => ev,
                        Err(e) => break Err(Failure { backend: backend_name.clone(), reason: "bad_body", detail: e.to_string(), retry_after: None }),
                    };
                    let mut got_data = false;
                    let mut upstream_error = None;
                    for ev in events {
                        got_data |= StreamShape::is_data(&ev);
                        match shape.forward(ev) {
                            Forward::Bytes(b) => pending.extend(b),
                            Forward::UpstreamError(m) => { upstream_error = Some(m); break; }
                        }
                    }
                    if let Some(m) = upstream_error {
                        break Err(Failure { backend: backend_name.clone(), reason: "stream_error", detail: format!("error event before the first token: {m}"), retry_after: None });
                    }
                    if got_data { break Ok(()); }
                };
                if let Err(f) = first {
                    upstream_time += t0.elapsed();
                    drop(body);
                    engine.fail(call, &c, &replica, &f);
                    failures.push(f);
                    continue 'attempts;
                }

                // 3. Committed to this backend: forward everything as it comes.
                let ttft = call.started.elapsed();
                upstream_time += t0.elapsed();
                engine.metrics.ttft.get_or_create(&ModelBackend { model: call.route.model.clone(), backend: backend_name.clone() }).observe(ttft.as_secs_f64());
                engine.metrics.overhead.observe(ttft.saturating_sub(upstream_time).as_secs_f64());
                record.backend = backend_name.clone();
                // The final event may be among the first ones already.
                record.settle(&shape);
                if shape.done() { record.complete(&c, &replica); }
                if !committed { yield Out::Start(Some(backend_name.clone())); }
                for b in pending.drain(..) { yield Out::Bytes(b); }
                let idle = c.backend.config.first_token_timeout;
                let mut cut: Option<String> = None;
                let mut ended = false;
                while !shape.done() {
                    let next = match tokio::time::timeout(idle, body.next()).await {
                        Err(_) => { cut = Some(format!("backend `{backend_name}` sent nothing for {}s", idle.as_secs_f64())); break; }
                        Ok(n) => n,
                    };
                    let bytes = match next {
                        None => { ended = true; break; }
                        Some(Ok(b)) => b,
                        Some(Err(e)) => { cut = Some(format!("backend `{backend_name}` stream broke: {}", root_cause(&*e))); break; }
                    };
                    let events = match parser.push(&bytes) {
                        Ok(ev) => ev,
                        Err(e) => { cut = Some(e.to_string()); break; }
                    };
                    let mut out: Vec<Bytes> = Vec::new();
                    for ev in events {
                        match shape.forward(ev) {
                            Forward::Bytes(bs) => out.extend(bs),
                            Forward::UpstreamError(m) => { cut = Some(format!("backend `{backend_name}`: {m}")); break; }
                        }
                    }
                    record.settle(&shape);
                    if shape.done() {
                        // Complete before its final event goes out: a
                        // client may close the moment it has it.
                        cut = None;
                        record.complete(&c, &replica);
                    }
                    for b in out { yield Out::Bytes(b); }
                    if cut.is_some() { break; }
                }
                if !shape.done() {
                    // An event the upstream did not end with a blank line.
                    if let Some(ev) = parser.finish() {
                        if let Forward::Bytes(bs) = shape.forward(ev) {
                            record.settle(&shape);
                            if shape.done() && cut.is_none() { record.complete(&c, &replica); }
                            for b in bs { yield Out::Bytes(b); }
                        }
                    }
                }
                if record.outcome.is_some() {
                    // Done. Pass on what still comes within a grace, so a
                    // well-behaved upstream's connection can be reused and
                    // one that holds it open can't hold the client.
                    if !ended {
                        let grace = tokio::time::sleep(DRAIN_GRACE);
                        tokio::pin!(grace);
                        loop {
                            let next = tokio::select! {
                                n = body.next() => n,
                                _ = &mut grace => None,
                            };
                            let Some(Ok(bytes)) = next else { break };
                            let Ok(events) = parser.push(&bytes) else { break };
                            let mut out: Vec<Bytes> = Vec::new();
                            for ev in events {
                                if let Forward::Bytes(bs) = shape.forward(ev) { out.extend(bs); }
                            }
                            for b in out { yield Out::Bytes(b); }
                        }
                    }
                    drop(guard);
                    record.finish();
                    return;
                }
                drop(guard);
                let msg = cut.unwrap_or_else(|| format!("backend `{backend_name}` ended the stream before its final event ([DONE] or response.completed)"));
                tracing::warn!(backend = %backend_name, detail = %msg, "stream cut after the first token; no fallback possible");
                let f = Failure { backend: backend_name.clone(), reason: "stream_error", detail: msg.clone(), retry_after: None };
                engine.fail(call, &c, &replica, &f);
                let e = ApiError::new(StatusCode::BAD_GATEWAY, "server_error", "stream_cut", format!("{msg}; the answer is incomplete"));
                record.outcome = Some("stream_cut");
                yield Out::Bytes(sse::data_event(&e.to_json()));
                record.finish();
                return;
            }
            let e = final_error.unwrap_or_else(|| engine.exhausted(call, &failures, None));
            record.outcome = Some(if e.status.is_client_error() && e.status != StatusCode::TOO_MANY_REQUESTS { "client_error" } else { "upstream_error" });
            record.finish();
            if committed {
                yield Out::Bytes(sse::data_event(&e.to_json()));
            } else {
                yield Out::Fail(e);
            }
        }
    }
}

/// Accounts a stream once, however it ends; a client that goes away drops
/// the stream, and the drop records it: `ok` if its final event was handed
/// on already, else `cancelled`, with the tokens seen so far either way.
struct StreamRecord {
    engine: Arc<Engine>,
    call: Arc<Call>,
    backend: String,
    /// Usage so far: the upstream's, or the chunk estimate.
    tokens: Tokens,
    /// `tokens` came from the upstream, not from counting chunks.
    reported: bool,
    /// A request went upstream, so its prompt was (being) processed.
    sent: bool,
    /// How it ended; `None` until it does (a drop then means cancelled).
    outcome: Option<&'static str>,
    accounted: bool,
}

impl StreamRecord {
    /// Takes the stream's usage so far.
    fn settle(&mut self, shape: &StreamShape) {
        self.tokens = shape.tokens();
        self.reported = shape.reported();
    }

    /// The final event is about to go out: the stream is complete.
    fn complete(&mut self, c: &Candidate, replica: &Replica) {
        if self.outcome.is_some() {
            return;
        }
        replica.record_success(Instant::now(), &self.engine.fallback);
        self.engine.refresh_up(c);
        self.outcome = Some("ok");
    }

    fn finish(&mut self) {
        if self.accounted {
            return;
        }
        self.accounted = true;
        let outcome = self.outcome.unwrap_or("cancelled");
        let mut tokens = self.tokens;
        // Without the upstream's usage the prompt is estimated, so that a
        // stream given up early still costs what it cost upstream.
        if self.sent && !self.reported && matches!(outcome, "ok" | "cancelled" | "stream_cut") {
            tokens.prompt = tokens.prompt.max(self.call.req.estimated_prompt_tokens());
        }
        if outcome == "cancelled" {
            tracing::info!(
                backend = %self.backend,
                prompt_tokens = tokens.prompt,
                completion_tokens = tokens.completion,
                estimated = !self.reported,
                "client went away before the final event; upstream request cancelled"
            );
        }
        self.engine
            .account(&self.call, &self.backend, outcome, tokens);
    }
}

/// Watches a non-streamed request: dropped unsettled, the client left
/// before its answer.
struct Unanswered<'a> {
    engine: &'a Engine,
    call: &'a Call,
    sent: bool,
    settled: bool,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let tokens = Tokens {
            prompt: if self.sent {
                self.call.req.estimated_prompt_tokens()
            } else {
                0
            },
            completion: 0,
        };
        tracing::info!(
            prompt_tokens = tokens.prompt,
            "client went away before the answer; upstream request cancelled"
        );
        self.engine.account(self.call, "none", "cancelled", tokens);
    }
}

impl Drop for StreamRecord {
    fn drop(&mut self) {
        self.finish();
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

fn static_kind(kind: &str) -> &'static str {
    match kind {
        "authentication_error" => "authentication_error",
        "permission_error" => "permission_error",
        "not_found_error" => "not_found_error",
        "rate_limit_error" => "rate_limit_error",
        "server_error" => "server_error",
        _ => "invalid_request_error",
    }
}

/// The client span of one upstream attempt, child of the request's span:
/// OTel HTTP client conventions (`http.request.method`, `server.address`,
/// `server.port`, then the status) plus the backend's and model's
/// configured names. Never the body, the URL path or a header.
fn attempt_span(call: &Call, c: &Candidate, replica: &Replica) -> tracing::Span {
    tracing::info_span!(
        target: telemetry::SPAN_TARGET,
        parent: &call.span,
        "http.client",
        otel.name = "POST",
        otel.kind = "client",
        http.request.method = "POST",
        server.address = replica.host.as_deref(),
        server.port = replica.port.map(i64::from),
        hwc.backend = %c.backend.name(),
        gen_ai.request.model = %c.upstream_model,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

/// Header value for the `x-hwc-route` header.
pub fn route_header(route: &Route) -> HeaderValue {
    HeaderValue::from_str(&route.header())
        .unwrap_or_else(|_| HeaderValue::from_static("unprintable"))
}

/// Builds the routing table's backends' up gauges at start.
pub fn init_backend_gauges(table: &RoutingTable, metrics: &RouterMetrics) {
    for b in table.backends.values() {
        metrics
            .backend_up
            .get_or_create(&BackendLabel {
                backend: b.name().to_string(),
            })
            .set(1);
    }
}
