//! The HTTP API: OpenAI's endpoints, `GET /v1/models` and `GET /status`.

use crate::balance::Contact;
use crate::config::Privacy;
use crate::config::{BackendKind, Locality};
use crate::idempotency::{self, Claim, Idempotency};
use crate::keys::ApiKey;
use crate::metrics::DecisionLabels;
use crate::proxy::{route_header, Call, Engine, Out};
use crate::request::{ClientRequest, Endpoint};
use crate::stored::{Responses, Turn};
use crate::upstream;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures_util::StreamExt;
use hwc_ai_core::status::{Envelope, StatusHeader};
use hwc_ai_core::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Shared state of the handlers.
pub struct Api {
    /// The proxy.
    pub engine: Arc<Engine>,
    /// Idempotent answers.
    pub idempotency: Idempotency,
    /// Stored Responses (`store`, `previous_response_id`).
    pub responses: Responses,
    /// Header that makes a request local-only.
    pub privacy_header: HeaderName,
    /// Largest body, for the 413 message.
    pub max_body: usize,
    /// Name, version and start of the router, for `/status`.
    pub status: StatusHeader,
}

/// Response header with the routing decision.
pub const ROUTE_HEADER: &str = "x-hwc-route";
/// Response header naming the backend that answered.
pub const BACKEND_HEADER: &str = "x-hwc-backend";

/// The API routes (auth is added by the caller).
pub fn routes(api: Arc<Api>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/responses", post(responses))
        .route(
            "/v1/responses/{id}",
            get(retrieve_response).delete(delete_response),
        )
        .route("/v1/responses/{id}/input_items", get(response_input_items))
        .route("/v1/models", get(models))
        .route("/v1/route/explain", post(explain))
        .route("/status", get(status))
        .with_state(api)
}

/// The request body, or why axum could not read it (mapped to our errors).
type RawBody = Result<Bytes, BytesRejection>;

async fn chat(
    State(a): State<Arc<Api>>,
    Extension(k): Extension<Arc<ApiKey>>,
    h: HeaderMap,
    b: RawBody,
) -> Response {
    handle(a, Endpoint::Chat, k, h, b)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}
async fn completions(
    State(a): State<Arc<Api>>,
    Extension(k): Extension<Arc<ApiKey>>,
    h: HeaderMap,
    b: RawBody,
) -> Response {
    handle(a, Endpoint::Completions, k, h, b)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}
async fn embeddings(
    State(a): State<Arc<Api>>,
    Extension(k): Extension<Arc<ApiKey>>,
    h: HeaderMap,
    b: RawBody,
) -> Response {
    handle(a, Endpoint::Embeddings, k, h, b)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}
async fn responses(
    State(a): State<Arc<Api>>,
    Extension(k): Extension<Arc<ApiKey>>,
    h: HeaderMap,
    b: RawBody,
) -> Response {
    handle(a, Endpoint::Responses, k, h, b)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn retrieve_response(
    State(a): State<Arc<Api>>,
    Extension(k): Extension<Arc<ApiKey>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    a.responses.retrieve(&k.name, &id).await.map(Json)
}
async fn response_input_items(
    State(a): State<Arc<Api>>,
    Extension(k): Extension<Arc<ApiKey>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    a.responses.input_items(&k.name, &id).await.map(Json)
}
async fn delete_response(
    State(a): State<Arc<Api>>,
    Extension(k): Extension<Arc<ApiKey>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    a.responses.delete(&k.name, &id).await.map(Json)
}

fn privacy_of(api: &Api, key: &ApiKey, headers: &HeaderMap) -> Result<Privacy, ApiError> {
    let requested = match headers.get(&api.privacy_header) {
        None => Privacy::AllowCloud,
        Some(v) => match v.to_str().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            Ok("local-only") => Privacy::LocalOnly,
            Ok("allow-cloud") => Privacy::AllowCloud,
            _ => {
                return Err(ApiError::invalid_request(
                    "invalid_privacy",
                    format!(
                        "header {} must be `local-only` or `allow-cloud`",
                        api.privacy_header
                    ),
                ))
            }
        },
    };
    // A key's local-only can't be lifted by a header.
    Ok(if key.privacy == Privacy::LocalOnly {
        Privacy::LocalOnly
    } else {
        requested
    })
}

/// Reads the body and decides where the request goes, changing nothing:
/// the part of a request that `POST /v1/route/explain` shows.
fn resolve(
    api: &Api,
    endpoint: Endpoint,
    key: &ApiKey,
    headers: &HeaderMap,
    body: RawBody,
) -> Result<(Bytes, ClientRequest, Privacy, crate::routing::Route), ApiError> {
    let (bytes, req) = parse(api, endpoint, body)?;
    let (privacy, route) = route_of(api, endpoint, key, headers, &req, false)?;
    Ok((bytes, req, privacy, route))
}

/// The body, checked.
fn parse(api: &Api, endpoint: Endpoint, body: RawBody) -> Result<(Bytes, ClientRequest), ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            hwc_ai_core::server::body_too_large(api.max_body)
        } else {
            ApiError::invalid_request(
                "unreadable_body",
                format!("cannot read the request body: {rejection}"),
            )
        }
    })?;
    let req = ClientRequest::parse(endpoint, &bytes)?;
    Ok((bytes, req))
}

/// Where a checked request goes; `local_only` forces local-only (a
/// conversation that was local-only stays so).
fn route_of(
    api: &Api,
    endpoint: Endpoint,
    key: &ApiKey,
    headers: &HeaderMap,
    req: &ClientRequest,
    local_only: bool,
) -> Result<(Privacy, crate::routing::Route), ApiError> {
    let privacy = match privacy_of(api, key, headers)? {
        _ if local_only => Privacy::LocalOnly,
        p => p,
    };
    let engine = &api.engine;
    let forced = engine
        .table
        .escalation()
        .and_then(|e| headers.get(e.header()))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut route = engine.table.route(
        &req.model,
        key,
        privacy,
        || req.signals(),
        forced.as_deref(),
    )?;
    route
        .candidates
        .retain(|c| upstream::supports(c.backend.kind(), endpoint));
    if route.candidates.is_empty() {
        return Err(ApiError::invalid_request(
            "endpoint_not_supported",
            format!(
                "no backend of model `{}` serves /v1/{}; anthropic backends serve /v1/chat/completions and /v1/responses only",
                route.model,
                endpoint.path(),
            ),
        )
        .with_param("model"));
    }
    Ok((privacy, route))
}

/// `POST /v1/route/explain[?endpoint=chat|completions|embeddings|responses]`:
/// the body of a request to that endpoint (chat by default); the answer
/// is where it would go and why, nothing sent: the `[models]` entry, the
/// decision and its rule, the privacy in force, and the candidates in
/// order with their backends' state now (`hwc-ai route explain`).
async fn explain(
    State(api): State<Arc<Api>>,
    Extension(key): Extension<Arc<ApiKey>>,
    axum::extract::Query(q): axum::extract::Query<ExplainQuery>,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Json<serde_json::Value>, ApiError> {
    let endpoint = match q.endpoint.as_deref().unwrap_or("chat") {
        "chat" => Endpoint::Chat,
        "completions" => Endpoint::Completions,
        "embeddings" => Endpoint::Embeddings,
        "responses" => Endpoint::Responses,
        other => {
            return Err(ApiError::invalid_request(
                "invalid_endpoint",
                format!(
                    "endpoint `{other}` is not one of chat, completions, embeddings, responses"
                ),
            )
            .with_param("endpoint"))
        }
    };
    let (_, _, privacy, route) = resolve(&api, endpoint, &key, &headers, body)?;
    let status = status_of(&api.engine, &key);
    let candidates: Vec<serde_json::Value> = route
        .candidates
        .iter()
        .map(|c| {
            let b = status.backends.iter().find(|b| b.name == c.backend.name());
            serde_json::json!({
                "backend": c.backend.name(),
                "upstream_model": c.upstream_model,
                "locality": b.map(|b| b.locality),
                "kind": b.map(|b| b.kind),
                "state": b.map(|b| b.state),
                "replicas": b.map(|b| b.replicas.clone()),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({
        "model": route.model,
        "decision": route.decision,
        "rule": route.rule,
        "reason": route.reason,
        "header": route.header(),
        "privacy": privacy,
        "candidates": candidates,
    })))
}

#[derive(serde::Deserialize)]
struct ExplainQuery {
    endpoint: Option<String>,
}

async fn handle(
    api: Arc<Api>,
    endpoint: Endpoint,
    key: Arc<ApiKey>,
    headers: HeaderMap,
    body: RawBody,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (bytes, mut req) = parse(&api, endpoint, body)?;
    // A stored conversation goes before the input first, so that routing
    // (`auto`) and the prompt estimate see all of it.
    let mut turn = if endpoint == Endpoint::Responses {
        Some(api.responses.prepare(&key.name, &mut req.body).await?)
    } else {
        None
    };
    let chain_local = turn.as_ref().is_some_and(|t| t.local_only);
    let (privacy, route) = route_of(&api, endpoint, &key, &headers, &req, chain_local)?;
    if let Some(t) = &mut turn {
        t.local_only = privacy == Privacy::LocalOnly;
    }
    let engine = &api.engine;
    engine.ledger.admit(&key).inspect_err(|e| {
        engine.metrics.request(
            &route.model,
            "none",
            if e.code == "budget_exceeded" {
                "budget_exceeded"
            } else {
                "rate_limited"
            },
        );
    })?;
    engine
        .metrics
        .decisions
        .get_or_create(&DecisionLabels {
            decision: route.decision,
            rule: route.rule,
            model: route.model.clone(),
        })
        .inc();
    tracing::info!(key = %key.name, requested = %req.model, model = %route.model, decision = route.decision, reason = %route.reason, stream = req.stream, "routed");

    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let route_value = route_header(&route);
    let call = Call {
        req,
        route,
        key: key.clone(),
        request_id,
        started,
        span: tracing::Span::current(),
        trace: hwc_ai_core::telemetry::request_context(&headers),
    };

    if call.req.stream {
        return Ok(stream_response(api.clone(), call, route_value, turn).await);
    }

    let claim = match headers.get("idempotency-key") {
        Some(v) => {
            let idem = v.to_str().map_err(|_| {
                ApiError::invalid_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be ASCII",
                )
            })?;
            let hash = idempotency::request_hash(endpoint.path(), &bytes);
            match api.idempotency.claim(&key.name, idem, hash).await? {
                Claim::Replay(stored) => {
                    engine.metrics.idempotent_replays.inc();
                    let mut resp = json_response(
                        StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK),
                        Bytes::from(stored.body),
                    );
                    let h = resp.headers_mut();
                    if let Ok(v) = HeaderValue::from_str(&stored.route) {
                        h.insert(ROUTE_HEADER, v);
                    }
                    if let Ok(v) = HeaderValue::from_str(&stored.backend) {
                        h.insert(BACKEND_HEADER, v);
                    }
                    h.insert("idempotent-replayed", HeaderValue::from_static("true"));
                    return Ok(resp);
                }
                Claim::Fresh(running) => Some(running),
            }
        }
        None => None,
    };

    let mut answer = match engine.complete(&call).await {
        Ok(a) => a,
        Err(e) => {
            let outcome = if e.status.is_client_error() && e.status != StatusCode::TOO_MANY_REQUESTS
            {
                "client_error"
            } else {
                "upstream_error"
            };
            engine.metrics.request(&call.route.model, "none", outcome);
            return Err(e);
        }
    };
    if let Some(turn) = &turn {
        if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&answer.body) {
            api.responses.keep(&key.name, turn, &mut v).await;
            if let Ok(b) = serde_json::to_vec(&v) {
                answer.body = Bytes::from(b);
            }
        }
    }
    if let Some(running) = claim {
        let route_text = route_value.to_str().unwrap_or("").to_string();
        api.idempotency
            .keep(
                running,
                route_text,
                answer.backend.clone(),
                answer.body.to_vec(),
            )
            .await;
    }
    let mut resp = json_response(answer.status, answer.body);
    let h = resp.headers_mut();
    h.insert(ROUTE_HEADER, route_value);
    if let Ok(v) = HeaderValue::from_str(&answer.backend) {
        h.insert(BACKEND_HEADER, v);
    }
    Ok(resp)
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A Responses stream's final response object, if `ev` is its final event.
fn final_response(ev: &hwc_ai_core::sse::SseEvent) -> Option<serde_json::Value> {
    if !(ev.data.contains("response.completed") || ev.data.contains("response.incomplete")) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&ev.data).ok()?;
    match v.get("type").and_then(serde_json::Value::as_str) {
        Some("response.completed" | "response.incomplete") => v.get("response").cloned(),
        _ => None,
    }
}

async fn stream_response(
    api: Arc<Api>,
    call: Call,
    route: HeaderValue,
    turn: Option<Turn>,
) -> Response {
    let key = call.key.name.clone();
    let mut stream = Box::pin(api.engine.clone().stream(call));
    let backend = match stream.next().await {
        Some(Out::Start(backend)) => backend,
        Some(Out::Fail(e)) => return e.into_response(),
        Some(Out::Bytes(_)) | None => {
            return ApiError::internal(
                "stream ended before it started; this is a router bug, please report it",
            )
            .into_response()
        }
    };
    // A stored Responses stream is kept when its final event goes by,
    // before that event is forwarded: a client may send the next turn
    // the moment it has it.
    let body = async_stream::stream! {
        let mut parser = hwc_ai_core::sse::SseParser::default();
        let mut kept = false;
        while let Some(o) = stream.next().await {
            let Out::Bytes(b) = o else { continue };
            if let (Some(turn), false) = (turn.as_ref().filter(|t| t.store), kept) {
                if let Ok(events) = parser.push(&b) {
                    for ev in events {
                        if let Some(mut r) = final_response(&ev) {
                            api.responses.keep(&key, turn, &mut r).await;
                            kept = true;
                        }
                    }
                }
            }
            yield Ok::<_, std::convert::Infallible>(b);
        }
    };
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    h.insert(ROUTE_HEADER, route);
    if let Some(v) = backend.and_then(|b| HeaderValue::from_str(&b).ok()) {
        h.insert(BACKEND_HEADER, v);
    }
    resp
}

async fn models(State(api): State<Arc<Api>>, Extension(key): Extension<Arc<ApiKey>>) -> Response {
    let created = api_created();
    let data: Vec<_> = api
        .engine
        .table
        .visible_names(&key)
        .into_iter()
        .map(|id| json!({ "id": id, "object": "model", "created": created, "owned_by": "hwc-ai" }))
        .collect();
    Json(json!({ "object": "list", "data": data })).into_response()
}

fn api_created() -> i64 {
    crate::clock::unix_now()
}

/// Version of the `/status` shape; bumped only on incompatible change.
/// 2: a backend's `up: bool` became `state` ([`BackendState`]), replicas
/// gained `last_contact`.
pub const STATUS_FORMAT: u32 = 2;

/// The router's `/status` fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouterStatus {
    /// Every backend, by name.
    pub backends: Vec<BackendStatus>,
    /// Today's usage of the calling key.
    pub usage: UsageStatus,
}

/// A backend in `/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendStatus {
    /// Its name.
    pub name: String,
    /// Its API kind.
    pub kind: BackendKind,
    /// Local or cloud.
    pub locality: Locality,
    /// Up, down, or not known yet.
    pub state: BackendState,
    /// Its replicas.
    pub replicas: Vec<ReplicaStatus>,
}

/// What the router knows of a backend's health, from its own requests
/// (it does not probe: the health prober does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendState {
    /// A replica in rotation answered the last request it was sent.
    Up,
    /// Every replica is cooling down, or the last attempt at each failed.
    Down,
    /// Nothing to go by: no replica in rotation has answered, and not
    /// all have failed (a backend no request has reached since start).
    Unknown,
}

/// A replica's place in the rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaState {
    /// Requests may go to it.
    InRotation,
    /// Skipped until its cooldown ends.
    Cooling,
}

/// A backend's state from each replica's (in rotation, last contact).
pub fn backend_state(replicas: &[(ReplicaState, Contact)]) -> BackendState {
    let in_rotation = || {
        replicas
            .iter()
            .filter(|(s, _)| *s == ReplicaState::InRotation)
    };
    if in_rotation().any(|(_, c)| *c == Contact::Answered) {
        BackendState::Up
    } else if in_rotation().next().is_none() || replicas.iter().all(|(_, c)| *c == Contact::Failed)
    {
        BackendState::Down
    } else {
        BackendState::Unknown
    }
}

/// A replica in `/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// Its base URL.
    pub url: String,
    /// In rotation or cooling.
    pub state: ReplicaState,
    /// How the last request to it went (`never` since start).
    pub last_contact: Contact,
    /// Seconds of cooldown left.
    pub cooling_left_s: Option<f64>,
    /// Requests in flight.
    pub outstanding: usize,
    /// Smoothed round-trip time, seconds.
    pub rtt_ewma_s: f64,
}

/// Usage in `/status`: a key sees its own only (the metrics have everyone's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageStatus {
    /// The UTC day the totals are for.
    pub day: String,
    /// Tokens used today, by key name.
    pub tokens_by_key: BTreeMap<String, u64>,
}

/// The router's status now, as `key` may see it.
pub fn status_of(engine: &Engine, key: &ApiKey) -> RouterStatus {
    let now = Instant::now();
    let mut backends: Vec<BackendStatus> = engine
        .table
        .backends
        .values()
        .map(|b| {
            let replicas: Vec<ReplicaStatus> = b
                .replicas
                .iter()
                .map(|r| {
                    let cooling = r.cooling_left(now);
                    ReplicaStatus {
                        url: r.url.clone(),
                        state: if cooling.is_some() {
                            ReplicaState::Cooling
                        } else {
                            ReplicaState::InRotation
                        },
                        last_contact: r.last_contact(),
                        cooling_left_s: cooling.map(|d| d.as_secs_f64()),
                        outstanding: r.outstanding(),
                        rtt_ewma_s: r.rtt_ewma(),
                    }
                })
                .collect();
            let seen: Vec<_> = replicas.iter().map(|r| (r.state, r.last_contact)).collect();
            BackendStatus {
                name: b.name().to_string(),
                kind: b.kind(),
                locality: b.config.locality,
                state: backend_state(&seen),
                replicas,
            }
        })
        .collect();
    backends.sort_by(|a, b| a.name.cmp(&b.name));
    let (day, totals) = engine.ledger.totals();
    let mine = totals.get(&key.name).copied().unwrap_or(0);
    RouterStatus {
        backends,
        usage: UsageStatus {
            day,
            tokens_by_key: BTreeMap::from([(key.name.clone(), mine)]),
        },
    }
}

async fn status(
    State(api): State<Arc<Api>>,
    Extension(key): Extension<Arc<ApiKey>>,
) -> Json<Envelope<RouterStatus>> {
    Json(api.status.wrap(status_of(&api.engine, &key)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Contact::{Answered, Failed, Never};
    use ReplicaState::{Cooling, InRotation};

    #[test]
    fn backend_state_from_replicas() {
        let cases: &[(&[(ReplicaState, Contact)], BackendState)] = &[
            (&[(InRotation, Never)], BackendState::Unknown),
            (&[(InRotation, Answered)], BackendState::Up),
            (&[(InRotation, Failed)], BackendState::Down),
            (&[(Cooling, Failed)], BackendState::Down),
            (
                &[(Cooling, Failed), (InRotation, Never)],
                BackendState::Unknown,
            ),
            (
                &[(Cooling, Failed), (InRotation, Answered)],
                BackendState::Up,
            ),
            (
                &[(InRotation, Failed), (InRotation, Never)],
                BackendState::Unknown,
            ),
            (
                &[(InRotation, Failed), (InRotation, Failed)],
                BackendState::Down,
            ),
            // Answered, then cooled by a 429's Retry-After.
            (&[(Cooling, Answered)], BackendState::Down),
        ];
        for (replicas, want) in cases {
            assert_eq!(backend_state(replicas), *want, "{replicas:?}");
        }
    }
}
