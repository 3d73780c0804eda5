//! A scripted GitHub Actions REST API, for the agent runner's `ci` tool.
//! Neither GitHub nor Forgejo/Gitea can be installed on this machine, so the
//! tests drive this stand-in: it follows the shapes GitHub documents for
//! workflow dispatch, workflow runs, jobs, job logs and cancel (Forgejo and
//! Gitea expose the same shape under `/api/v1`), and lets a test script how
//! each dispatched run advances and inject faults (status codes, hangs).
//! It is a scripted peer, never a real CI: nothing runs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DOCS: &str = "https://docs.github.com/rest";
/// GitHub's limit on `inputs` properties of a dispatch.
const MAX_INPUTS: usize = 25;

/// How long a dispatched run stays in one status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advance {
    /// For this many responses that show the run (get run, list runs, list
    /// jobs); `Polls(0)` skips the status.
    Polls(u32),
    /// For this long (from the moment the status began), however often it is
    /// polled.
    For(Duration),
}

/// How a run or job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conclusion {
    /// `success`: the happy path a `ci` tool reports as passed.
    Success,
    /// `failure`: what the tool must surface with the failing job's log.
    Failure,
    /// `cancelled`: what a cancel leaves (or a plan that ends so).
    Cancelled,
    /// `timed_out`: GitHub's job-timeout conclusion, neither pass nor fail.
    TimedOut,
}

impl Conclusion {
    /// The value GitHub writes in `conclusion`.
    pub fn as_str(self) -> &'static str {
        match self {
            Conclusion::Success => "success",
            Conclusion::Failure => "failure",
            Conclusion::Cancelled => "cancelled",
            Conclusion::TimedOut => "timed_out",
        }
    }
}

/// One job of a planned run: its steps and the log lines its log download
/// serves (each gets GitHub's timestamp prefix).
#[derive(Clone, Debug)]
pub struct JobPlan {
    /// The job's `name` in the jobs list.
    pub name: String,
    /// Step names, numbered from 1 in `steps`.
    pub steps: Vec<String>,
    /// The lines its log download serves, without timestamps.
    pub log: Vec<String>,
    /// `None`: the run's conclusion.
    pub conclusion: Option<Conclusion>,
}

impl JobPlan {
    /// A job `name` whose log is `log`, with steps "Set up job", `name`,
    /// "Complete job" (as GitHub lists them).
    pub fn new(name: &str, log: &[&str]) -> Self {
        Self {
            name: name.into(),
            steps: vec!["Set up job".into(), name.into(), "Complete job".into()],
            log: log.iter().map(|l| l.to_string()).collect(),
            conclusion: None,
        }
    }

    /// Replaces the steps.
    pub fn steps(mut self, steps: &[&str]) -> Self {
        self.steps = steps.iter().map(|s| s.to_string()).collect();
        self
    }

    /// This job ends with `c` whatever the run's conclusion.
    pub fn concluding(mut self, c: Conclusion) -> Self {
        self.conclusion = Some(c);
        self
    }
}

/// How each run dispatched from a workflow advances: queued, then
/// in_progress, then completed with `conclusion`.
#[derive(Clone, Debug)]
pub struct RunPlan {
    /// How long the run reports `queued`.
    pub queued: Advance,
    /// How long it then reports `in_progress`.
    pub in_progress: Advance,
    /// The `conclusion` it completes with.
    pub conclusion: Conclusion,
    /// Its jobs, listed in this order.
    pub jobs: Vec<JobPlan>,
}

impl RunPlan {
    /// Queued for one poll, in_progress for one, then `conclusion`; one job
    /// "build".
    pub fn new(conclusion: Conclusion) -> Self {
        Self {
            queued: Advance::Polls(1),
            in_progress: Advance::Polls(1),
            conclusion,
            jobs: vec![JobPlan::new("build", &["Run build", "build finished"])],
        }
    }

    /// [`RunPlan::new`] ending in success.
    pub fn success() -> Self {
        Self::new(Conclusion::Success)
    }

    /// [`RunPlan::new`] ending in failure.
    pub fn failure() -> Self {
        Self::new(Conclusion::Failure)
    }

    /// How long the run stays queued.
    pub fn queued(mut self, a: Advance) -> Self {
        self.queued = a;
        self
    }

    /// How long the run stays in_progress.
    pub fn in_progress(mut self, a: Advance) -> Self {
        self.in_progress = a;
        self
    }

    /// Replaces the jobs.
    pub fn jobs(mut self, jobs: Vec<JobPlan>) -> Self {
        self.jobs = jobs;
        self
    }
}

/// A run as a test inspects it: what the dispatch asked for, where it is now
/// (read without counting as a poll).
#[derive(Clone, Debug)]
pub struct DispatchedRun {
    /// The run id the API reports (from 1000 up).
    pub id: u64,
    /// `owner/repo` as given to [`FakeActions::add_workflow`].
    pub repo: String,
    /// The workflow file name.
    pub workflow: String,
    /// The dispatch body's `ref`.
    pub git_ref: String,
    /// The dispatch body's `inputs` (`{}` when absent).
    pub inputs: Value,
    /// `queued`, `in_progress` or `completed`, now.
    pub status: &'static str,
    /// Set once completed.
    pub conclusion: Option<&'static str>,
    /// Its jobs' ids (from 20000 up, never equal to a run id).
    pub job_ids: Vec<u64>,
}

/// One request the fake received, in arrival order (faulted and
/// unauthenticated ones included).
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The URL path, without the query.
    pub path: String,
    /// The raw query string, `""` when none.
    pub query: String,
    /// `Authorization` carried the token (`Bearer` or `token` scheme).
    pub auth_ok: bool,
    /// The `Accept` header (GitHub asks for `application/vnd.github+json`).
    pub accept: Option<String>,
    /// The `X-GitHub-Api-Version` header (recorded, otherwise ignored).
    pub api_version: Option<String>,
    /// The JSON body, `Null` when empty or not JSON.
    pub body: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Queued,
    InProgress,
    Completed,
}

enum Fault {
    Status(u16),
    Hang,
}

struct Workflow {
    id: u64,
    repo: String,
    file: String,
    name: String,
    plan: RunPlan,
    next_plans: VecDeque<RunPlan>,
    runs: u64,
    created: SystemTime,
}

struct Run {
    id: u64,
    workflow: usize,
    run_number: u64,
    git_ref: String,
    head_sha: String,
    inputs: Value,
    plan: RunPlan,
    job_ids: Vec<u64>,
    created: SystemTime,
    created_at: Instant,
    phase: Phase,
    phase_since: Instant,
    seen_in_phase: u32,
    started: Option<SystemTime>,
    completed: Option<SystemTime>,
    updated: SystemTime,
    conclusion: Option<Conclusion>,
}

impl Run {
    /// Moves through every status whose time is up (a poll-counted status
    /// once it has been shown its count; a timed one once its duration has
    /// passed, the next one starting when it ended).
    fn advance(&mut self, now: Instant) {
        loop {
            let limit = match self.phase {
                Phase::Queued => self.plan.queued,
                Phase::InProgress => self.plan.in_progress,
                Phase::Completed => return,
            };
            let end = match limit {
                Advance::Polls(n) if self.seen_in_phase >= n => now,
                Advance::For(d) if now.duration_since(self.phase_since) >= d => {
                    self.phase_since + d
                }
                _ => return,
            };
            let wall = self.created + end.duration_since(self.created_at);
            self.phase_since = end;
            self.seen_in_phase = 0;
            self.updated = wall;
            if self.phase == Phase::Queued {
                self.phase = Phase::InProgress;
                self.started = Some(wall);
            } else {
                self.finish(Some(self.plan.conclusion), wall);
            }
        }
    }

    fn finish(&mut self, c: Option<Conclusion>, wall: SystemTime) {
        self.phase = Phase::Completed;
        self.conclusion = c;
        self.completed = Some(wall);
        self.updated = wall;
        if self.started.is_none() {
            self.started = Some(wall);
        }
    }

    /// A response is about to show this run: advance, and count the poll.
    fn observe(&mut self) {
        self.advance(Instant::now());
        self.seen_in_phase += 1;
    }

    fn status(&self) -> &'static str {
        match self.phase {
            Phase::Queued => "queued",
            Phase::InProgress => "in_progress",
            Phase::Completed => "completed",
        }
    }

    fn job_conclusion(&self, i: usize) -> Option<Conclusion> {
        match self.conclusion? {
            Conclusion::Cancelled => Some(Conclusion::Cancelled),
            c => Some(self.plan.jobs[i].conclusion.unwrap_or(c)),
        }
    }
}

struct Inner {
    token: String,
    base: String,
    workflows: Vec<Workflow>,
    runs: Vec<Run>,
    next_run: u64,
    next_job: u64,
    next_workflow: u64,
    faults: VecDeque<Fault>,
    requests: Vec<RecordedRequest>,
}

type Shared = Arc<Mutex<Inner>>;

/// A running fake GitHub Actions API on loopback.
#[derive(Clone)]
pub struct FakeActions {
    /// Where it listens (loopback, a free port).
    pub addr: SocketAddr,
    shared: Shared,
}

impl FakeActions {
    /// Serves on a free loopback port; requests must carry `token`.
    pub async fn start(token: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared: Shared = Arc::new(Mutex::new(Inner {
            token: token.into(),
            base: format!("http://{addr}"),
            workflows: Vec::new(),
            runs: Vec::new(),
            next_run: 1000,
            next_job: 20_000,
            next_workflow: 161_335,
            faults: VecDeque::new(),
            requests: Vec::new(),
        }));
        let repo = "/repos/{owner}/{repo}/actions";
        let app = Router::new()
            .route(&format!("{repo}/workflows"), get(list_workflows))
            .route(&format!("{repo}/workflows/{{workflow}}"), get(get_workflow))
            .route(
                &format!("{repo}/workflows/{{workflow}}/dispatches"),
                post(dispatch),
            )
            .route(
                &format!("{repo}/workflows/{{workflow}}/runs"),
                get(list_workflow_runs),
            )
            .route(&format!("{repo}/runs"), get(list_repo_runs))
            .route(&format!("{repo}/runs/{{run}}"), get(get_run))
            .route(&format!("{repo}/runs/{{run}}/jobs"), get(list_jobs))
            .route(&format!("{repo}/runs/{{run}}/cancel"), post(cancel))
            .route(&format!("{repo}/jobs/{{job}}"), get(get_job))
            .route(&format!("{repo}/jobs/{{job}}/logs"), get(job_logs))
            .route("/_blob/job-logs/{job}", get(log_blob))
            .fallback(not_found)
            .method_not_allowed_fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(shared.clone(), gate))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, shared }
    }

    /// The API base, as `https://api.github.com` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Declares workflow `file` (e.g. `deploy.yml`) in `owner_repo`; every
    /// run dispatched from it follows `plan` (unless [`Self::push_plan`]
    /// queued another). Returns the workflow's numeric id, which the API
    /// accepts in place of the file name. Declaring it again replaces the
    /// plan.
    pub fn add_workflow(&self, owner_repo: &str, file: &str, plan: RunPlan) -> u64 {
        let mut s = self.shared.lock().unwrap();
        if let Some(w) = s
            .workflows
            .iter_mut()
            .find(|w| w.repo.eq_ignore_ascii_case(owner_repo) && w.file == file)
        {
            w.plan = plan;
            return w.id;
        }
        let id = s.next_workflow;
        s.next_workflow += 1;
        s.workflows.push(Workflow {
            id,
            repo: owner_repo.into(),
            file: file.into(),
            name: file
                .trim_end_matches(".yml")
                .trim_end_matches(".yaml")
                .into(),
            plan,
            next_plans: VecDeque::new(),
            runs: 0,
            created: SystemTime::now(),
        });
        id
    }

    /// The next dispatch of this (already added) workflow follows `plan`
    /// instead of its default; queued plans are used in order.
    pub fn push_plan(&self, owner_repo: &str, file: &str, plan: RunPlan) {
        let mut s = self.shared.lock().unwrap();
        let w = s
            .workflows
            .iter_mut()
            .find(|w| w.repo.eq_ignore_ascii_case(owner_repo) && w.file == file)
            .expect("push_plan: add_workflow first");
        w.next_plans.push_back(plan);
    }

    /// Every dispatched run, oldest first. Reading them is not a poll.
    pub fn runs(&self) -> Vec<DispatchedRun> {
        let mut s = self.shared.lock().unwrap();
        let now = Instant::now();
        let Inner {
            runs, workflows, ..
        } = &mut *s;
        runs.iter_mut()
            .map(|r| {
                r.advance(now);
                let w = &workflows[r.workflow];
                DispatchedRun {
                    id: r.id,
                    repo: w.repo.clone(),
                    workflow: w.file.clone(),
                    git_ref: r.git_ref.clone(),
                    inputs: r.inputs.clone(),
                    status: r.status(),
                    conclusion: r.conclusion.map(Conclusion::as_str),
                    job_ids: r.job_ids.clone(),
                }
            })
            .collect()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// The next `times` requests (any route) answer `status` with GitHub's
    /// error body (`{"message": "Server Error", ...}` for 500) and change
    /// nothing.
    pub fn fail_next(&self, status: u16, times: usize) {
        let mut s = self.shared.lock().unwrap();
        for _ in 0..times {
            s.faults.push_back(Fault::Status(status));
        }
    }

    /// The next request is never answered (the connection stays open until
    /// the client gives up), for timeout tests. Queued after any pending
    /// `fail_next`.
    pub fn hang_next(&self) {
        self.shared.lock().unwrap().faults.push_back(Fault::Hang);
    }
}

fn gh_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({
            "message": message,
            "documentation_url": DOCS,
            "status": status.as_u16().to_string(),
        })),
    )
        .into_response()
}

async fn not_found() -> Response {
    gh_error(StatusCode::NOT_FOUND, "Not Found")
}

#[derive(Clone, Copy, PartialEq)]
enum Auth {
    Ok,
    Missing,
    Wrong,
}

fn auth_of(headers: &HeaderMap, token: &str) -> Auth {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Auth::Missing;
    };
    let v = v.to_str().unwrap_or("").trim();
    let (scheme, cred) = v.split_once(' ').unwrap_or((v, ""));
    let scheme_ok = scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token");
    if scheme_ok && cred.trim() == token {
        Auth::Ok
    } else {
        Auth::Wrong
    }
}

/// Records every request, applies injected faults, then authentication
/// (API routes only: the log blob URL is pre-signed, as GitHub's is).
async fn gate(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let header_str = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (fault, auth) = {
        let mut st = s.lock().unwrap();
        let auth = auth_of(&parts.headers, &st.token);
        st.requests.push(RecordedRequest {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or("").to_string(),
            auth_ok: auth == Auth::Ok,
            accept: header_str("accept"),
            api_version: header_str("x-github-api-version"),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        });
        (st.faults.pop_front(), auth)
    };
    match fault {
        Some(Fault::Hang) => return std::future::pending::<Response>().await,
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap();
            let message = match code {
                500 => "Server Error",
                _ => status.canonical_reason().unwrap_or("Error"),
            };
            return gh_error(status, message);
        }
        None => {}
    }
    if parts.uri.path().starts_with("/repos/") {
        match auth {
            Auth::Ok => {}
            Auth::Missing => return gh_error(StatusCode::UNAUTHORIZED, "Requires authentication"),
            Auth::Wrong => return gh_error(StatusCode::UNAUTHORIZED, "Bad credentials"),
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn find_workflow(s: &Inner, owner: &str, repo: &str, wf: &str) -> Option<usize> {
    let full = format!("{owner}/{repo}");
    s.workflows.iter().position(|w| {
        w.repo.eq_ignore_ascii_case(&full) && (w.file == wf || w.id.to_string() == wf)
    })
}

fn repo_known(s: &Inner, owner: &str, repo: &str) -> bool {
    let full = format!("{owner}/{repo}");
    s.workflows
        .iter()
        .any(|w| w.repo.eq_ignore_ascii_case(&full))
}

fn find_run(s: &Inner, owner: &str, repo: &str, run: &str) -> Option<usize> {
    let id: u64 = run.parse().ok()?;
    let full = format!("{owner}/{repo}");
    s.runs
        .iter()
        .position(|r| r.id == id && s.workflows[r.workflow].repo.eq_ignore_ascii_case(&full))
}

fn find_job(s: &Inner, owner: &str, repo: &str, job: &str) -> Option<(usize, usize)> {
    let id: u64 = job.parse().ok()?;
    let full = format!("{owner}/{repo}");
    s.runs.iter().enumerate().find_map(|(ri, r)| {
        let ji = r.job_ids.iter().position(|j| *j == id)?;
        s.workflows[r.workflow]
            .repo
            .eq_ignore_ascii_case(&full)
            .then_some((ri, ji))
    })
}

fn workflow_json(s: &Inner, w: &Workflow) -> Value {
    let path = format!(".github/workflows/{}", w.file);
    json!({
        "id": w.id,
        "node_id": format!("W_{}", w.id),
        "name": w.name,
        "path": path,
        "state": "active",
        "created_at": iso(w.created),
        "updated_at": iso(w.created),
        "url": format!("{}/repos/{}/actions/workflows/{}", s.base, w.repo, w.id),
        "html_url": format!("{}/{}/blob/main/{path}", s.base, w.repo),
        "badge_url": format!("{}/{}/workflows/{}/badge.svg", s.base, w.repo, w.name),
    })
}

fn run_json(s: &Inner, r: &Run) -> Value {
    let w = &s.workflows[r.workflow];
    let api = format!("{}/repos/{}/actions/runs/{}", s.base, w.repo, r.id);
    let (owner, name) = w.repo.split_once('/').unwrap_or((&w.repo, ""));
    json!({
        "id": r.id,
        "name": w.name,
        "node_id": format!("WFR_{}", r.id),
        "head_branch": r.git_ref,
        "head_sha": r.head_sha,
        "path": format!(".github/workflows/{}", w.file),
        "display_title": w.name,
        "run_number": r.run_number,
        "event": "workflow_dispatch",
        "status": r.status(),
        "conclusion": r.conclusion.map(Conclusion::as_str),
        "workflow_id": w.id,
        "url": api,
        "html_url": format!("{}/{}/actions/runs/{}", s.base, w.repo, r.id),
        "pull_requests": [],
        "created_at": iso(r.created),
        "updated_at": iso(r.updated),
        "run_attempt": 1,
        "run_started_at": iso(r.created),
        "actor": {"login": "hwc-ci", "type": "User"},
        "triggering_actor": {"login": "hwc-ci", "type": "User"},
        "jobs_url": format!("{api}/jobs"),
        "logs_url": format!("{api}/logs"),
        "check_suite_url": format!("{}/repos/{}/check-suites/{}", s.base, w.repo, r.id + 7_000_000),
        "artifacts_url": format!("{api}/artifacts"),
        "cancel_url": format!("{api}/cancel"),
        "rerun_url": format!("{api}/rerun"),
        "workflow_url": format!("{}/repos/{}/actions/workflows/{}", s.base, w.repo, w.id),
        "repository": {
            "name": name,
            "full_name": w.repo,
            "owner": {"login": owner},
            "html_url": format!("{}/{}", s.base, w.repo),
        },
    })
}

fn job_json(s: &Inner, r: &Run, i: usize) -> Value {
    let w = &s.workflows[r.workflow];
    let job = &r.plan.jobs[i];
    let id = r.job_ids[i];
    let conclusion = r.job_conclusion(i);
    let started = r.started.unwrap_or(r.created);
    let n = job.steps.len();
    let steps: Vec<Value> = match r.phase {
        Phase::Queued => Vec::new(),
        Phase::InProgress => job
            .steps
            .iter()
            .enumerate()
            .map(|(k, name)| {
                json!({
                    "name": name,
                    "status": if k == 0 { "in_progress" } else { "queued" },
                    "conclusion": null,
                    "number": k + 1,
                    "started_at": if k == 0 { Value::from(iso(started)) } else { Value::Null },
                    "completed_at": null,
                })
            })
            .collect(),
        Phase::Completed => job
            .steps
            .iter()
            .enumerate()
            .map(|(k, name)| {
                // A failed job fails at its last step; the ones before succeed.
                let c = match conclusion {
                    Some(Conclusion::Failure) if k + 1 < n => Conclusion::Success,
                    Some(c) => c,
                    None => Conclusion::Success,
                };
                json!({
                    "name": name,
                    "status": "completed",
                    "conclusion": c.as_str(),
                    "number": k + 1,
                    "started_at": iso(started),
                    "completed_at": iso(r.completed.unwrap_or(started)),
                })
            })
            .collect(),
    };
    json!({
        "id": id,
        "run_id": r.id,
        "run_url": format!("{}/repos/{}/actions/runs/{}", s.base, w.repo, r.id),
        "run_attempt": 1,
        "node_id": format!("CR_{id}"),
        "head_sha": r.head_sha,
        "head_branch": r.git_ref,
        "url": format!("{}/repos/{}/actions/jobs/{id}", s.base, w.repo),
        "html_url": format!("{}/{}/actions/runs/{}/job/{id}", s.base, w.repo, r.id),
        "status": r.status(),
        "conclusion": conclusion.map(Conclusion::as_str),
        "created_at": iso(r.created),
        "started_at": iso(started),
        "completed_at": r.completed.map(iso),
        "name": job.name,
        "steps": steps,
        "check_run_url": format!("{}/repos/{}/check-runs/{id}", s.base, w.repo),
        "labels": ["ubuntu-latest"],
        "runner_id": if r.phase == Phase::Queued { Value::Null } else { Value::from(1) },
        "runner_name": if r.phase == Phase::Queued { Value::Null } else { Value::from("fake-runner") },
        "runner_group_id": if r.phase == Phase::Queued { Value::Null } else { Value::from(1) },
        "runner_group_name": if r.phase == Phase::Queued { Value::Null } else { Value::from("Default") },
        "workflow_name": w.name,
    })
}

type RepoPath = Path<(String, String)>;
type ItemPath = Path<(String, String, String)>;

async fn list_workflows(State(s): State<Shared>, Path((o, r)): RepoPath) -> Response {
    let s = s.lock().unwrap();
    if !repo_known(&s, &o, &r) {
        return gh_error(StatusCode::NOT_FOUND, "Not Found");
    }
    let full = format!("{o}/{r}");
    let list: Vec<Value> = s
        .workflows
        .iter()
        .filter(|w| w.repo.eq_ignore_ascii_case(&full))
        .map(|w| workflow_json(&s, w))
        .collect();
    Json(json!({"total_count": list.len(), "workflows": list})).into_response()
}

async fn get_workflow(State(s): State<Shared>, Path((o, r, wf)): ItemPath) -> Response {
    let s = s.lock().unwrap();
    match find_workflow(&s, &o, &r, &wf) {
        Some(i) => Json(workflow_json(&s, &s.workflows[i])).into_response(),
        None => gh_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// `POST .../dispatches`: 204, or 200 with the run's id and URLs when the
/// body sets `return_run_details` (GitHub, since 2026-02-19).
async fn dispatch(State(s): State<Shared>, Path((o, r, wf)): ItemPath, body: Bytes) -> Response {
    let mut guard = s.lock().unwrap();
    let st = &mut *guard;
    let Some(wi) = find_workflow(st, &o, &r, &wf) else {
        return gh_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return gh_error(StatusCode::BAD_REQUEST, "Problems parsing JSON");
    };
    let Some(git_ref) = body.get("ref").and_then(Value::as_str).map(str::to_string) else {
        return gh_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid request.\n\n\"ref\" wasn't supplied.",
        );
    };
    let inputs = match body.get("inputs") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::Object(m)) => {
            if m.len() > MAX_INPUTS {
                return gh_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid request.\n\nFor 'properties/inputs', too many properties (maximum 25).",
                );
            }
            if m.values().any(|v| v.is_object() || v.is_array()) {
                return gh_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid request.\n\nFor 'properties/inputs', input values must be strings, numbers or booleans.",
                );
            }
            Value::Object(m.clone())
        }
        Some(_) => {
            return gh_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid request.\n\nFor 'properties/inputs', it is not an object.",
            )
        }
    };
    let details = body
        .get("return_run_details")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let id = st.next_run;
    st.next_run += 1;
    let w = &mut st.workflows[wi];
    w.runs += 1;
    let run_number = w.runs;
    let plan = w.next_plans.pop_front().unwrap_or_else(|| w.plan.clone());
    let repo = w.repo.clone();
    let job_ids: Vec<u64> = (0..plan.jobs.len() as u64)
        .map(|k| st.next_job + k)
        .collect();
    st.next_job += plan.jobs.len() as u64;
    let now = SystemTime::now();
    let instant = Instant::now();
    st.runs.push(Run {
        id,
        workflow: wi,
        run_number,
        head_sha: fake_sha(&repo, &git_ref),
        git_ref,
        inputs,
        plan,
        job_ids,
        created: now,
        created_at: instant,
        phase: Phase::Queued,
        phase_since: instant,
        seen_in_phase: 0,
        started: None,
        completed: None,
        updated: now,
        conclusion: None,
    });
    if details {
        Json(json!({
            "workflow_run_id": id,
            "run_url": format!("{}/repos/{repo}/actions/runs/{id}", st.base),
            "html_url": format!("{}/{repo}/actions/runs/{id}", st.base),
        }))
        .into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

fn list_runs(st: &mut Inner, pick: impl Fn(&Run) -> bool, q: &HashMap<String, String>) -> Response {
    let now = Instant::now();
    let mut matching: Vec<usize> = Vec::new();
    for (i, r) in st.runs.iter_mut().enumerate() {
        if !pick(r) {
            continue;
        }
        r.advance(now);
        if let Some(b) = q.get("branch") {
            if &r.git_ref != b {
                continue;
            }
        }
        if let Some(e) = q.get("event") {
            if e != "workflow_dispatch" {
                continue;
            }
        }
        if let Some(sha) = q.get("head_sha") {
            if &r.head_sha != sha {
                continue;
            }
        }
        if let Some(want) = q.get("status") {
            let hit = match want.as_str() {
                "queued" | "in_progress" | "completed" => r.status() == want,
                "requested" | "waiting" | "pending" => false,
                other => r.conclusion.map(Conclusion::as_str) == Some(other),
            };
            if !hit {
                continue;
            }
        }
        if let Some(c) = q.get("created") {
            match created_matches(c, secs(r.created)) {
                Some(true) => {}
                Some(false) => continue,
                None => {
                    return gh_error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Validation Failed: invalid 'created' qualifier",
                    )
                }
            }
        }
        matching.push(i);
    }
    matching.reverse(); // newest first
    let per_page = q
        .get("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = q
        .get("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let total = matching.len();
    let shown: Vec<usize> = matching
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    for &i in &shown {
        st.runs[i].seen_in_phase += 1;
    }
    let list: Vec<Value> = shown.iter().map(|&i| run_json(st, &st.runs[i])).collect();
    Json(json!({"total_count": total, "workflow_runs": list})).into_response()
}

async fn list_workflow_runs(
    State(s): State<Shared>,
    Path((o, r, wf)): ItemPath,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut st = s.lock().unwrap();
    let Some(wi) = find_workflow(&st, &o, &r, &wf) else {
        return gh_error(StatusCode::NOT_FOUND, "Not Found");
    };
    list_runs(&mut st, |run| run.workflow == wi, &q)
}

async fn list_repo_runs(
    State(s): State<Shared>,
    Path((o, r)): RepoPath,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut st = s.lock().unwrap();
    if !repo_known(&st, &o, &r) {
        return gh_error(StatusCode::NOT_FOUND, "Not Found");
    }
    let full = format!("{o}/{r}");
    let wis: Vec<usize> = st
        .workflows
        .iter()
        .enumerate()
        .filter(|(_, w)| w.repo.eq_ignore_ascii_case(&full))
        .map(|(i, _)| i)
        .collect();
    list_runs(&mut st, |run| wis.contains(&run.workflow), &q)
}

async fn get_run(State(s): State<Shared>, Path((o, r, run)): ItemPath) -> Response {
    let mut st = s.lock().unwrap();
    let Some(ri) = find_run(&st, &o, &r, &run) else {
        return gh_error(StatusCode::NOT_FOUND, "Not Found");
    };
    st.runs[ri].observe();
    Json(run_json(&st, &st.runs[ri])).into_response()
}

async fn list_jobs(
    State(s): State<Shared>,
    Path((o, r, run)): ItemPath,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut st = s.lock().unwrap();
    let Some(ri) = find_run(&st, &o, &r, &run) else {
        return gh_error(StatusCode::NOT_FOUND, "Not Found");
    };
    st.runs[ri].observe();
    let per_page = q
        .get("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = q
        .get("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let run = &st.runs[ri];
    let jobs: Vec<Value> = (0..run.job_ids.len())
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|i| job_json(&st, run, i))
        .collect();
    Json(json!({"total_count": run.job_ids.len(), "jobs": jobs})).into_response()
}

/// `POST .../cancel`: 202 `{}`; 409 once the run has completed (GitHub's
/// answer to cancelling a finished run).
async fn cancel(State(s): State<Shared>, Path((o, r, run)): ItemPath) -> Response {
    let mut st = s.lock().unwrap();
    let Some(ri) = find_run(&st, &o, &r, &run) else {
        return gh_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let run = &mut st.runs[ri];
    run.advance(Instant::now());
    if run.phase == Phase::Completed {
        return gh_error(
            StatusCode::CONFLICT,
            "Cannot cancel a workflow run that is completed.",
        );
    }
    run.finish(Some(Conclusion::Cancelled), SystemTime::now());
    (StatusCode::ACCEPTED, Json(json!({}))).into_response()
}

async fn get_job(State(s): State<Shared>, Path((o, r, job)): ItemPath) -> Response {
    let mut st = s.lock().unwrap();
    let Some((ri, ji)) = find_job(&st, &o, &r, &job) else {
        return gh_error(StatusCode::NOT_FOUND, "Not Found");
    };
    st.runs[ri].observe();
    Json(job_json(&st, &st.runs[ri], ji)).into_response()
}

fn log_sig(job: u64) -> String {
    format!("{:x}", job.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// `GET .../jobs/{job}/logs`: 302 to a pre-signed URL on this fake (as
/// GitHub redirects to blob storage); 404 until the job has completed.
async fn job_logs(State(s): State<Shared>, Path((o, r, job)): ItemPath) -> Response {
    let mut st = s.lock().unwrap();
    let Some((ri, ji)) = find_job(&st, &o, &r, &job) else {
        return gh_error(StatusCode::NOT_FOUND, "Not Found");
    };
    st.runs[ri].advance(Instant::now());
    if st.runs[ri].phase != Phase::Completed {
        return gh_error(StatusCode::NOT_FOUND, "Not Found");
    }
    let id = st.runs[ri].job_ids[ji];
    let location = format!("{}/_blob/job-logs/{id}?sig={}", st.base, log_sig(id));
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// The pre-signed log URL: no token needed, a wrong signature is 403.
/// GitHub's log files start with a UTF-8 byte order mark, and so does this.
async fn log_blob(
    State(s): State<Shared>,
    Path(job): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let st = s.lock().unwrap();
    let found = job.parse::<u64>().ok().and_then(|id| {
        st.runs.iter().find_map(|r| {
            let ji = r.job_ids.iter().position(|j| *j == id)?;
            Some((r, ji, id))
        })
    });
    let Some((r, ji, id)) = found else {
        return (StatusCode::NOT_FOUND, "BlobNotFound").into_response();
    };
    if q.get("sig") != Some(&log_sig(id)) {
        return (StatusCode::FORBIDDEN, "AuthenticationFailed").into_response();
    }
    let start = r.started.unwrap_or(r.created);
    let mut text = String::from("\u{feff}");
    for (k, line) in r.plan.jobs[ji].log.iter().enumerate() {
        let t = start + Duration::from_millis(10 * k as u64);
        text.push_str(&format!("{} {line}\n", iso7(t)));
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// A stable 40-hex-digit commit id for `repo`@`git_ref`.
fn fake_sha(repo: &str, git_ref: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut out = String::new();
    for round in 0u8..3 {
        for b in repo.bytes().chain([b'@', round]).chain(git_ref.bytes()) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out.truncate(40);
    out
}

fn secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Hinnant).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn fmt_secs(s: i64) -> String {
    let (y, mo, d) = civil(s.div_euclid(86_400));
    let t = s.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// GitHub's API timestamp: `2026-12-01T10:00:00Z`.
fn iso(t: SystemTime) -> String {
    format!("{}Z", fmt_secs(secs(t)))
}

/// GitHub's log-line timestamp: `2026-12-01T10:00:00.0000000Z`.
fn iso7(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap();
    format!(
        "{}.{:07}Z",
        fmt_secs(d.as_secs() as i64),
        d.subsec_nanos() / 100
    )
}

/// Seconds since the epoch of an ISO 8601 date or date-time, and whether it
/// was a bare date. A space stands for `+` (an unencoded `+` in a query).
fn parse_iso(s: &str) -> Option<(i64, bool)> {
    let s = s.trim();
    let num = |a: usize, b: usize| -> Option<i64> {
        let part = s.get(a..b)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if s.len() < 10 || s.as_bytes()[4] != b'-' || s.as_bytes()[7] != b'-' {
        return None;
    }
    let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let day = days_from_civil(y, m as u32, d as u32) * 86_400;
    if s.len() == 10 {
        return Some((day, true));
    }
    if !matches!(s.as_bytes()[10], b'T' | b't') || s.len() < 16 || s.as_bytes()[13] != b':' {
        return None;
    }
    let (h, mi) = (num(11, 13)?, num(14, 16)?);
    let mut rest = &s[16..];
    let mut sec = 0;
    if let Some(r) = rest.strip_prefix(':') {
        sec = r.get(..2)?.parse().ok()?;
        rest = &r[2..];
        if let Some(r) = rest.strip_prefix('.') {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            rest = &r[n..];
        }
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' | b' ' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: String = rest[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let oh: i64 = digits[..2].parse().ok()?;
            let om: i64 = digits[2..].parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    Some((day + h * 3600 + mi * 60 + sec - offset, false))
}

/// GitHub's `created` qualifier (search syntax): `>=X`, `>X`, `<=X`, `<X`,
/// `X..Y` (either side `*`), or `X`; a bare date covers its whole day.
/// `None` when it does not parse.
fn created_matches(q: &str, t: i64) -> Option<bool> {
    let q = q.trim();
    // [from, until) of a bound; a date spans a day, a date-time one second.
    let span = |x: &str| parse_iso(x).map(|(s, date)| (s, s + if date { 86_400 } else { 1 }));
    if let Some((a, b)) = q.split_once("..") {
        let lo = if a == "*" { i64::MIN } else { span(a)?.0 };
        let hi = if b == "*" { i64::MAX } else { span(b)?.1 };
        return Some(lo <= t && t < hi);
    }
    if let Some(x) = q.strip_prefix(">=") {
        return Some(t >= span(x)?.0);
    }
    if let Some(x) = q.strip_prefix("<=") {
        return Some(t < span(x)?.1);
    }
    if let Some(x) = q.strip_prefix('>') {
        return Some(t >= span(x)?.1);
    }
    if let Some(x) = q.strip_prefix('<') {
        return Some(t < span(x)?.0);
    }
    let (a, b) = span(q)?;
    Some(a <= t && t < b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_119_200); // 2026-12-01T10:00:00Z
        assert_eq!(iso(t), "2026-12-01T10:00:00Z");
        assert_eq!(iso7(t), "2026-12-01T10:00:00.0000000Z");
        assert_eq!(
            parse_iso("2026-12-01T10:00:00Z"),
            Some((1_796_119_200, false))
        );
        assert_eq!(
            parse_iso("2026-12-01T11:00:00+01:00"),
            Some((1_796_119_200, false))
        );
        assert_eq!(
            parse_iso("2026-12-01T11:00:00 01:00"),
            Some((1_796_119_200, false))
        );
        assert_eq!(
            parse_iso("2026-12-01T10:00:00.123Z"),
            Some((1_796_119_200, false))
        );
        assert_eq!(parse_iso("2026-12-01"), Some((1_796_083_200, true)));
        assert_eq!(parse_iso("2026-13-01"), None);
        assert_eq!(parse_iso("yesterday"), None);
    }

    #[test]
    fn created_qualifiers() {
        let t = 1_796_119_200; // 2026-12-01T10:00:00Z
        assert_eq!(created_matches(">=2026-12-01T10:00:00Z", t), Some(true));
        assert_eq!(created_matches(">2026-12-01T10:00:00Z", t), Some(false));
        assert_eq!(created_matches("<2026-12-01T10:00:01Z", t), Some(true));
        assert_eq!(created_matches("2026-12-01", t), Some(true));
        assert_eq!(created_matches(">2026-12-01", t), Some(false));
        assert_eq!(created_matches("<=2026-12-01", t), Some(true));
        assert_eq!(created_matches("2026-11-30..2026-12-01", t), Some(true));
        assert_eq!(created_matches("2026-12-02..*", t), Some(false));
        assert_eq!(created_matches("*..2026-12-01T09:59:59Z", t), Some(false));
        assert_eq!(created_matches(">=soon", t), None);
    }

    #[test]
    fn sha_is_forty_hex() {
        let s = fake_sha("acme/app", "main");
        assert_eq!(s.len(), 40);
        assert!(s.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(s, fake_sha("acme/app", "dev"));
    }
}
