//! The runner's HTTP API (the contract products integrate with; the
//! OpenAPI document at `/agent/openapi.json` describes it): jobs, their
//! approvals, their event stream (SSE, resumable with `Last-Event-ID`) and
//! their report, and `/status`. Errors are the fleet's JSON shape.

use crate::approval::{self, Grant, Refusal, Standing};
use crate::audit::Entry;
use crate::job::{ActionState, Job, JobRequest, JobSpec, JobState, Progress};
use crate::repo;
use crate::runner::Runner;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hwc_ai_core::auth::{Principal, Role, TokenAuth};
use hwc_ai_core::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

type Shared = State<Arc<Runner>>;

fn store_err(e: crate::store::StoreError) -> ApiError {
    tracing::error!(error = %e, "store error in a request");
    ApiError::unavailable(
        "store_unavailable",
        format!(
            "the runner's database is unavailable ({}); retry shortly",
            e.what
        ),
        Duration::from_secs(5),
    )
}

/// Every route: the API behind bearer auth (no anonymous access) and the
/// `Origin` guard (a state-changing request from another site's page is
/// refused), the approval page's static files beside it (no data, no
/// auth), and the browser security headers on all of them.
pub fn routes(runner: Arc<Runner>, auth: &TokenAuth) -> Router {
    let allowed = Arc::new(runner.cfg.ui.allowed_origins.clone());
    let api = Router::new()
        .route("/agent/jobs", post(create_job).get(list_jobs))
        .route("/agent/jobs/{id}", get(get_job))
        .route("/agent/jobs/{id}/approve", post(approve))
        .route("/agent/jobs/{id}/reject", post(reject))
        .route("/agent/jobs/{id}/cancel", post(cancel))
        .route("/agent/jobs/{id}/events", get(events))
        .route("/agent/jobs/{id}/report", get(report))
        .route("/agent/sessions", post(create_session))
        .route("/agent/sessions/{id}", get(get_session))
        .route("/agent/sessions/{id}/messages", post(session_message))
        .route("/agent/openapi.json", get(openapi))
        .route("/agent/whoami", get(whoami))
        .route("/status", get(status))
        .with_state(runner);
    auth.protect(api)
        .layer(axum::middleware::from_fn_with_state(
            allowed,
            crate::ui::origin_guard,
        ))
        .merge(crate::ui::routes())
        .layer(axum::middleware::from_fn(crate::ui::secure))
}

/// `GET /agent/whoami`: the caller's name and role, as the token says
/// (the approval page shows who is signed in).
async fn whoami(Extension(who): Extension<Principal>) -> Json<Value> {
    Json(json!({"name": who.name, "role": who.role}))
}

async fn job_or_404(r: &Runner, id: &str) -> Result<Job, ApiError> {
    repo::get_job(&r.store, id)
        .await
        .map_err(store_err)?
        .ok_or_else(|| {
            ApiError::not_found(
                "job_not_found",
                format!("no job `{id}`; GET /agent/jobs lists them"),
            )
        })
}

/// `POST /agent/jobs`.
async fn create_job(
    State(r): Shared,
    Extension(who): Extension<Principal>,
    body: Result<Json<JobRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    who.require(Role::Requester)?;
    let Json(req) = body.map_err(|e| {
        ApiError::invalid_request(
            "invalid_job",
            format!("the job request is not valid: {}", e.body_text()),
        )
    })?;
    let job = start_job(&r, &who.name, req).await?;
    let mut resp = (StatusCode::CREATED, Json(job_view(&r, &job).await?)).into_response();
    if let Ok(v) = format!("/agent/jobs/{}", job.id).parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// Creates a queued job for `requester`, recorded in the audit before it
/// is acknowledged.
pub async fn start_job(r: &Runner, requester: &str, req: JobRequest) -> Result<Job, ApiError> {
    let spec = spec_of(r, req)?;
    let now = r.now_ms();
    let job = Job {
        id: crate::job::new_id(now),
        created_at: now,
        updated_at: now,
        requester: requester.to_string(),
        state: JobState::Queued,
        spec,
        progress: Progress::default(),
    };
    let created = Entry {
        kind: "job_created".into(),
        job: Some(job.id.clone()),
        operator: Some(requester.to_string()),
        environment: Some(job.spec.environment.clone()),
        model: Some(job.spec.model.clone()),
        detail: Some(job.spec.goal.clone()),
        ..Entry::default()
    };
    // The record and the first event come before the job exists for the
    // scheduler, so both tell the story in order: created, then started.
    r.record(created.clone()).await.map_err(store_err)?;
    r.event(&job.id, "job.created", json!({"goal": job.spec.goal, "environment": job.spec.environment, "target": job.spec.target, "requester": job.requester}))
        .await
        .map_err(store_err)?;
    if let Err(e) = repo::insert_job(&r.store, &job).await {
        let _ = r
            .record(Entry {
                kind: "job_create_failed".into(),
                detail: Some(e.to_string()),
                ..created
            })
            .await;
        return Err(store_err(e));
    }
    Ok(job)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageBody {
    content: String,
}

/// `POST /agent/sessions`.
async fn create_session(
    State(r): Shared,
    Extension(who): Extension<Principal>,
    body: Result<Json<crate::session::SessionRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    who.require(Role::Requester)?;
    let Json(req) = body.map_err(|e| {
        ApiError::invalid_request(
            "invalid_session",
            format!("the session request is not valid: {}", e.body_text()),
        )
    })?;
    let s = crate::session::create(&r, &who.name, req)
        .await
        .map_err(|m| ApiError::invalid_request("invalid_session", m).with_param("environment"))?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": s.id, "environment": s.environment, "target": s.target, "model": s.model}),
        ),
    )
        .into_response())
}

async fn session_of(
    r: &Runner,
    id: &str,
    who: &Principal,
) -> Result<crate::session::Session, ApiError> {
    let s = crate::session::get(r, id)
        .await
        .map_err(store_err)?
        .ok_or_else(|| {
            ApiError::not_found(
                "session_not_found",
                format!("no session `{id}`; POST /agent/sessions starts one"),
            )
        })?;
    if s.requester != who.name && who.role < Role::Admin {
        return Err(ApiError::forbidden(
            "not_yours",
            format!("session `{id}` belongs to `{}`", s.requester),
        ));
    }
    Ok(s)
}

/// `GET /agent/sessions/{id}`.
async fn get_session(
    State(r): Shared,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<crate::session::Session>, ApiError> {
    who.require(Role::Requester)?;
    Ok(Json(session_of(&r, &id, &who).await?))
}

/// `POST /agent/sessions/{id}/messages`.
async fn session_message(
    State(r): Shared,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: Result<Json<MessageBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<crate::session::Reply>, ApiError> {
    who.require(Role::Requester)?;
    let Json(body) = body.map_err(|e| {
        ApiError::invalid_request(
            "invalid_message",
            format!("the message is not valid: {}", e.body_text()),
        )
    })?;
    let mut s = session_of(&r, &id, &who).await?;
    let runner = r.clone();
    let requester = s.requester.clone();
    let starter = move |req: JobRequest| {
        let (runner, requester) = (runner.clone(), requester.clone());
        Box::pin(async move {
            start_job(&runner, &requester, req)
                .await
                .map(|j| j.id)
                .map_err(|e| e.to_json())
        })
            as std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send>>
    };
    let reply = crate::session::message(&r, &mut s, &body.content, starter)
        .await
        .map_err(store_err)?;
    Ok(Json(reply))
}

/// A request checked against the runner's limits, policy and tools.
fn spec_of(r: &Runner, req: JobRequest) -> Result<JobSpec, ApiError> {
    let bad = |code: &'static str, m: String| ApiError::invalid_request(code, m);
    if req.goal.trim().is_empty() {
        return Err(bad(
            "invalid_job",
            "`goal` is empty; say what the agent should find out or do".into(),
        )
        .with_param("goal"));
    }
    let policy = r.policy();
    if policy.environment(&req.environment).is_none() {
        return Err(bad(
            "unknown_environment",
            format!(
                "environment `{}` is not in the policy; known: {}",
                req.environment,
                policy.environment_names().join(", ")
            ),
        )
        .with_param("environment"));
    }
    let all = r.toolbox.names();
    let tools: Vec<String> = match req.tools {
        Some(t) => {
            if let Some(u) = t.iter().find(|n| !all.contains(&n.as_str())) {
                return Err(bad(
                    "unknown_tool",
                    format!("tool `{u}` does not exist; tools: {}", all.join(", ")),
                )
                .with_param("tools"));
            }
            t
        }
        None => all.iter().map(|s| s.to_string()).collect(),
    };
    let repo = match req.repo {
        Some(name) => {
            let found = r.cfg.tools.repositories.iter().find(|p| {
                p.display().to_string() == name
                    || p.file_name().is_some_and(|f| f.to_string_lossy() == name)
            });
            match found {
                Some(p) => Some(p.display().to_string()),
                None => {
                    return Err(bad(
                        "unknown_repo",
                        format!("repository `{name}` is not in [tools] repositories"),
                    )
                    .with_param("repo"))
                }
            }
        }
        None => None,
    };
    let l = &r.cfg.limits;
    Ok(JobSpec {
        goal: req.goal,
        environment: req.environment,
        target: req.target.unwrap_or_else(|| r.host.clone()),
        repo,
        tools,
        max_steps: req.max_steps.unwrap_or(l.max_steps).min(l.max_steps),
        max_tokens: req.max_tokens.unwrap_or(l.max_tokens).min(l.max_tokens),
        max_seconds: req
            .max_seconds
            .unwrap_or(l.max_wall.as_secs())
            .min(l.max_wall.as_secs()),
        model: req
            .model
            .unwrap_or_else(|| r.cfg.model.default_alias.clone()),
        hard: req.hard,
    })
}

/// What a job looks like over the API: no conversation, the action waiting.
#[derive(Debug, Serialize, Deserialize)]
pub struct JobView {
    /// The id.
    pub id: String,
    /// Where it stands.
    pub state: JobState,
    /// Who asked.
    pub requester: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
    /// What it runs with.
    pub spec: JobSpec,
    /// Turns taken.
    pub steps: u32,
    /// Tokens spent.
    pub tokens: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// The action waiting for approval, with what an approver must see.
    pub pending: Option<Value>,
}

async fn job_view(r: &Runner, job: &Job) -> Result<JobView, ApiError> {
    let pending = match job.progress.pending_action {
        Some(id) => {
            let a = repo::get_action(&r.store, &job.id, id)
                .await
                .map_err(store_err)?;
            match a {
                Some(a) if a.state == ActionState::Waiting => {
                    let grants = repo::grants(&r.store, &job.id, id)
                        .await
                        .map_err(store_err)?;
                    Some(json!({
                        "action": a.id, "digest": a.digest, "tool": a.planned.tool, "summary": a.planned.summary,
                        "arguments": r.redactor.json(&a.planned.arguments), "target": a.planned.target,
                        "risk": a.decision["risk"], "rule": a.decision["rule"], "reason": a.decision["reason"],
                        "approvals_needed": a.decision["approvals"], "approved_by": grants.iter().map(|g| g.approver.clone()).collect::<Vec<_>>(),
                        "rollback": a.planned.rollback, "expires_at": a.expires_at}))
                }
                _ => None,
            }
        }
        None => None,
    };
    Ok(JobView {
        id: job.id.clone(),
        state: job.state,
        requester: job.requester.clone(),
        created_at: job.created_at,
        updated_at: job.updated_at,
        spec: job.spec.clone(),
        steps: job.progress.steps,
        tokens: job.progress.usage.prompt_tokens + job.progress.usage.completion_tokens,
        error: job.progress.error.clone(),
        pending,
    })
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
    limit: Option<i64>,
}

/// `GET /agent/jobs`.
async fn list_jobs(
    State(r): Shared,
    Extension(who): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    who.require(Role::Reader)?;
    let state = match q.state.as_deref() {
        Some(s) => Some(JobState::parse(s).ok_or_else(|| ApiError::invalid_request("invalid_state", format!("state `{s}` is not one of queued, running, waiting_approval, completed, failed, cancelled")).with_param("state"))?),
        None => None,
    };
    let jobs = repo::list_jobs(&r.store, state, q.limit.unwrap_or(100).clamp(1, 1000))
        .await
        .map_err(store_err)?;
    let mut out = Vec::new();
    for j in &jobs {
        out.push(job_view(&r, j).await?);
    }
    Ok(Json(json!({"jobs": out})))
}

/// `GET /agent/jobs/{id}`.
async fn get_job(
    State(r): Shared,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    who.require(Role::Reader)?;
    let job = job_or_404(&r, &id).await?;
    Ok(Json(job_view(&r, &job).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    /// The digest of the action the approver saw.
    digest: Option<String>,
    #[serde(default)]
    comment: String,
}

fn refusal_error(e: &Refusal) -> ApiError {
    match e {
        Refusal::Role { .. } | Refusal::Requester { .. } | Refusal::Twice { .. } => {
            ApiError::forbidden("approval_refused", e.to_string())
        }
        _ => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "approval_refused",
            e.to_string(),
        ),
    }
}

async fn audit_refusal(r: &Runner, job: &Job, who: &Principal, e: &Refusal, digest: Option<&str>) {
    let _ = r
        .record(Entry {
            kind: "approval_refused".into(),
            job: Some(job.id.clone()),
            operator: Some(who.name.clone()),
            environment: Some(job.spec.environment.clone()),
            digest: digest.map(String::from),
            decision: Some("refused".into()),
            detail: Some(e.to_string()),
            ..Entry::default()
        })
        .await;
    let _ = r
        .event(
            &job.id,
            "approval.refused",
            json!({"by": who.name, "refusal": e}),
        )
        .await;
}

/// `POST /agent/jobs/{id}/approve`.
async fn approve(
    State(r): Shared,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: Result<Json<ApproveBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let job = job_or_404(&r, &id).await?;
    let Json(body) = body.map_err(|e| {
        ApiError::invalid_request(
            "invalid_approval",
            format!("the approval is not valid: {}", e.body_text()),
        )
    })?;
    let waiting = match job.progress.pending_action {
        Some(action) => repo::get_action(&r.store, &id, action)
            .await
            .map_err(store_err)?
            .filter(|a| a.state == ActionState::Waiting),
        None => None,
    };
    let Some(a) = waiting else {
        audit_refusal(
            &r,
            &job,
            &who,
            &Refusal::NothingWaiting,
            body.digest.as_deref(),
        )
        .await;
        return Err(refusal_error(&Refusal::NothingWaiting));
    };
    let action = a.id;
    let Some(digest) = body.digest.clone() else {
        return Err(ApiError::invalid_request("digest_required", format!("name the action you approve: send \"digest\": \"{}\" (from GET /agent/jobs/{id}, after reading what it does)", a.digest)).with_param("digest"));
    };
    let pending = crate::agent::pending_of(&job, &a);
    let grants = repo::grants(&r.store, &id, action)
        .await
        .map_err(store_err)?;
    let now = r.now_s();
    let standing = match approval::approve(
        &pending,
        &grants,
        &who.name,
        who.role,
        &approval::ActionDigest(digest.clone()),
        now,
    ) {
        Ok(s) => s,
        Err(e) => {
            audit_refusal(&r, &job, &who, &e, Some(&digest)).await;
            return Err(refusal_error(&e));
        }
    };
    let grant = Grant {
        approver: who.name.clone(),
        digest: a.digest.clone(),
        at: now,
        comment: body.comment.clone(),
    };
    if let Err(e) = repo::insert_grant(&r.store, &id, action, &grant).await {
        // A concurrent second approval by the same person lost the race.
        if matches!(&e.source, sqlx::Error::Database(d) if d.is_unique_violation()) {
            let e = Refusal::Twice {
                who: who.name.clone(),
            };
            audit_refusal(&r, &job, &who, &e, Some(&digest)).await;
            return Err(refusal_error(&e));
        }
        return Err(store_err(e));
    }
    r.record(Entry {
        kind: "approval".into(),
        job: Some(id.clone()),
        operator: Some(who.name.clone()),
        environment: Some(job.spec.environment.clone()),
        tool: Some(a.planned.tool.clone()),
        digest: Some(digest.clone()),
        approvers: vec![who.name.clone()],
        detail: Some(body.comment.clone()),
        ..Entry::default()
    })
    .await
    .map_err(store_err)?;
    r.event(
        &id,
        "approval.granted",
        json!({"action": action, "by": who.name, "standing": standing, "comment": body.comment}),
    )
    .await
    .map_err(store_err)?;
    r.wake(&id);
    Ok(Json(
        json!({"job": id, "action": action, "standing": standing, "granted": standing == Standing::Granted}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectBody {
    #[serde(default)]
    comment: String,
}

/// `POST /agent/jobs/{id}/reject`.
async fn reject(
    State(r): Shared,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: Option<Json<RejectBody>>,
) -> Result<Json<Value>, ApiError> {
    let job = job_or_404(&r, &id).await?;
    let comment = body.map(|b| b.0.comment).unwrap_or_default();
    if who.role < Role::Approver {
        let e = Refusal::Role {
            who: who.name.clone(),
            role: who.role,
        };
        audit_refusal(&r, &job, &who, &e, None).await;
        return Err(refusal_error(&e));
    }
    let Some(action) = job.progress.pending_action else {
        return Err(refusal_error(&Refusal::NothingWaiting));
    };
    let moved = repo::set_action(
        &r.store,
        &id,
        action,
        &[ActionState::Waiting],
        ActionState::Rejected,
        Some(&json!({"by": who.name, "comment": comment})),
    )
    .await
    .map_err(store_err)?;
    if !moved {
        return Err(refusal_error(&Refusal::NothingWaiting));
    }
    r.record(Entry {
        kind: "rejection".into(),
        job: Some(id.clone()),
        operator: Some(who.name.clone()),
        environment: Some(job.spec.environment.clone()),
        decision: Some("rejected".into()),
        detail: Some(comment.clone()),
        ..Entry::default()
    })
    .await
    .map_err(store_err)?;
    r.event(
        &id,
        "approval.rejected",
        json!({"action": action, "by": who.name, "comment": comment}),
    )
    .await
    .map_err(store_err)?;
    r.wake(&id);
    Ok(Json(json!({"job": id, "action": action, "rejected": true})))
}

/// `POST /agent/jobs/{id}/cancel`: the requester or an admin.
async fn cancel(
    State(r): Shared,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = job_or_404(&r, &id).await?;
    if who.name != job.requester && who.role < Role::Admin {
        return Err(ApiError::forbidden(
            "not_yours",
            format!(
                "`{}` may not cancel a job `{}` asked for; the requester or an admin can",
                who.name, job.requester
            ),
        ));
    }
    if job.state.is_final() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "job_finished",
            format!("job `{id}` is already {}", job.state.as_str()),
        ));
    }
    let from = [
        JobState::Queued,
        JobState::Running,
        JobState::WaitingApproval,
    ];
    repo::transition(
        &r.store,
        &id,
        &from,
        JobState::Cancelled,
        &r.host,
        r.now_ms(),
    )
    .await
    .map_err(store_err)?;
    if let Some(t) = hwc_ai_core::sync::lock(&r.cancels).get(&id) {
        t.cancel();
    }
    r.wake(&id);
    if job.state == JobState::Queued {
        // Nobody drives a queued job: finish its records here.
        r.record(Entry {
            kind: "job_finished".into(),
            job: Some(id.clone()),
            operator: Some(who.name.clone()),
            decision: Some("cancelled".into()),
            ..Entry::default()
        })
        .await
        .map_err(store_err)?;
        r.event(
            &id,
            "job.state",
            json!({"state": "cancelled", "by": who.name}),
        )
        .await
        .map_err(store_err)?;
    }
    Ok(Json(json!({"job": id, "cancelled": true})))
}

#[derive(Deserialize)]
struct EventsQuery {
    after: Option<i64>,
}

/// `GET /agent/jobs/{id}/events`: SSE (resumable) or, with
/// `Accept: application/json`, the stored events as a list.
async fn events(
    State(r): Shared,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    who.require(Role::Reader)?;
    job_or_404(&r, &id).await?;
    let last: i64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or(q.after)
        .unwrap_or(0);
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/event-stream"));
    if wants_json {
        let ev = repo::events_after(&r.store, &id, last, 10_000)
            .await
            .map_err(store_err)?;
        return Ok(Json(json!({"events": ev})).into_response());
    }
    // Subscribe before reading what is stored, so nothing falls between.
    let mut rx = r.events.subscribe();
    let runner = r.clone();
    let stream = async_stream::stream! {
        let mut sent = last;
        loop {
            let batch = match repo::events_after(&runner.store, &id, sent, 500).await {
                Ok(b) => b,
                Err(_) => break,
            };
            let mut done = false;
            for e in &batch {
                sent = e.seq;
                let ev = Event::default()
                    .id(e.seq.to_string())
                    .event(e.kind.clone())
                    .data(json!({"seq": e.seq, "at": e.at, "type": e.kind, "data": e.data}).to_string());
                yield Ok::<Event, std::convert::Infallible>(ev);
                if e.kind == "job.state" && e.data["state"].as_str().and_then(JobState::parse).is_some_and(JobState::is_final) {
                    done = true;
                }
            }
            if done || runner.draining.is_cancelled() {
                break;
            }
            if batch.len() == 500 {
                continue;
            }
            // New events wake us; a poll covers events written by another
            // runner; the drain ends the stream (the client resumes with
            // Last-Event-ID on another runner or after the restart).
            tokio::select! {
                () = runner.draining.cancelled() => break,
                _ = async { loop { match rx.recv().await { Ok((j, _)) if j == id => break, Ok(_) => {}, Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break, Err(_) => { tokio::time::sleep(Duration::from_secs(3600)).await; } } } } => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    };
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// `GET /agent/jobs/{id}/report`: JSON, or Markdown for `Accept: text/markdown`.
async fn report(
    State(r): Shared,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    who.require(Role::Reader)?;
    let job = job_or_404(&r, &id).await?;
    let Some(rep) = job.progress.report.clone() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "report_not_ready",
            format!("job `{id}` is {} and has no report yet", job.state.as_str()),
        ));
    };
    let md = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/markdown"));
    if md {
        let parsed: crate::report::Report = serde_json::from_value(rep)
            .map_err(|e| ApiError::internal(format!("stored report unreadable: {e}")))?;
        return Ok((
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            crate::report::markdown(&parsed),
        )
            .into_response());
    }
    Ok(Json(rep).into_response())
}

/// `GET /agent/openapi.json`.
async fn openapi(Extension(who): Extension<Principal>) -> Result<Response, ApiError> {
    who.require(Role::Reader)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], crate::OPENAPI).into_response())
}

/// `/status`.
async fn status(
    State(r): Shared,
    Extension(who): Extension<Principal>,
) -> Result<Response, ApiError> {
    who.require(Role::Reader)?;
    let body = crate::status::collect(&r).await.map_err(store_err)?;
    Ok(Json(body).into_response())
}
