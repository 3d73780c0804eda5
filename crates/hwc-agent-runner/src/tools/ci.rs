//! `ci {action, pipeline, …}`: trigger, watch, read the logs of and cancel
//! a declared CI pipeline (`[[tools.ci.pipelines]]`) through the GitHub
//! Actions REST API, the shape Forgejo and Gitea serve for their Actions
//! too: `workflow_dispatch`, runs, jobs, job logs, cancel.
//!
//! The policy judges the words `ci read NAME` (R0), `ci trigger NAME --ref
//! REF` and `ci cancel NAME` (R1), and `ci deploy NAME --ref REF` for a
//! pipeline marked `deploy` (R2, R3 in production), in the pipeline's
//! environment. A deploy's rollback is planned from the API: deploy again
//! the commit of the last successful run.
//!
//! A dispatch answers 204 with no run id, so the trigger lists the
//! workflow's runs before and after it and takes the new one; a waiting
//! call polls the run within a bound and reports its jobs' conclusions.

use super::{str_arg, Ctx, ItemKind, PlanSubject, Planned, Tool, ToolError, ToolOutput};
use crate::config::CiPipeline;
use crate::model::ToolSpec;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The CI tool.
pub struct Ci;

const ACTIONS: &[&str] = &["trigger", "status", "runs", "logs", "cancel"];

fn pipeline<'a>(ctx: &'a Ctx, name: &str) -> Result<&'a CiPipeline, ToolError> {
    let all = &ctx.tools.ci.pipelines;
    all.iter().find(|p| p.name == name).ok_or_else(|| {
        let known: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
        ToolError(if known.is_empty() {
            "no CI pipelines are declared on this runner ([[tools.ci.pipelines]])".into()
        } else {
            format!(
                "`{name}` is not a declared pipeline; the pipelines are {}",
                known.join(", ")
            )
        })
    })
}

/// A git ref a dispatch accepts: a branch, tag or commit, no options.
fn is_ref(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && !s.starts_with(['-', '/'])
        && !s.contains("..")
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"/._-".contains(&c))
}

/// The checked arguments and the words the policy judges. Pure.
pub fn command(args: &Value, ctx: &Ctx) -> Result<(Value, Vec<String>), ToolError> {
    let action = str_arg(args, "action")?;
    if !ACTIONS.contains(&action) {
        return Err(ToolError(format!(
            "`action` = {action:?} is not one of {}",
            ACTIONS.join(", ")
        )));
    }
    let p = pipeline(ctx, str_arg(args, "pipeline")?)?;
    let mut norm = json!({"action": action, "pipeline": p.name});
    let words = |xs: &[&str]| -> Vec<String> { xs.iter().map(|s| s.to_string()).collect() };
    if let Some(id) = args["run_id"].as_u64() {
        norm["run_id"] = json!(id);
    } else if matches!(action, "logs" | "cancel") {
        return Err(ToolError(format!(
            "`run_id` is required for `{action}` (the trigger's answer and `runs` name it)"
        )));
    }
    if let Some(w) = args["wait_seconds"].as_u64() {
        norm["wait_seconds"] = json!(w.min(ctx.tools.ci.max_wait.as_secs()));
    }
    let w = match action {
        "trigger" => {
            let r = args["ref"].as_str().unwrap_or(&p.default_ref);
            if !is_ref(r) {
                return Err(ToolError(format!(
                    "`ref` = {r:?} is not a branch, tag or commit name"
                )));
            }
            norm["ref"] = json!(r);
            if let Some(inputs) = args.get("inputs").filter(|v| !v.is_null()) {
                let Some(map) = inputs.as_object() else {
                    return Err(ToolError("`inputs` must be an object of strings".into()));
                };
                if map.len() > 10 || map.values().any(|v| !v.is_string()) {
                    return Err(ToolError(
                        "`inputs` must be at most 10 string values (workflow_dispatch inputs)"
                            .into(),
                    ));
                }
                norm["inputs"] = inputs.clone();
            }
            let verb = if p.deploy { "deploy" } else { "trigger" };
            words(&["ci", verb, &p.name, "--ref", r])
        }
        "cancel" => words(&["ci", "cancel", &p.name]),
        _ => words(&["ci", "read", &p.name]),
    };
    if let Some(j) = args["job"].as_str() {
        norm["job"] = json!(j);
    }
    Ok((norm, w))
}

/// What an API request answered: status, a redirect's target, the body.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: Vec<u8>,
}

/// One API request: the pipeline's token, GitHub's media type, a bound.
/// Redirects are not followed here (the runner's client never follows
/// them): a job log's redirect goes to blob storage, which gets no token.
async fn api(
    ctx: &Ctx,
    p: &CiPipeline,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Answer, ToolError> {
    let url = format!(
        "{}/repos/{}{path}",
        p.api_url.trim_end_matches('/'),
        p.repository
    );
    let token_path = hwc_ai_core::secret::resolve(&p.token_file);
    let token = std::fs::read_to_string(&token_path).map_err(|e| {
        ToolError(format!(
            "pipeline `{}`: cannot read its token {}: {e}",
            p.name,
            token_path.display()
        ))
    })?;
    let mut req = ctx
        .http
        .request(method.clone(), &url)
        .timeout(ctx.tools.ci.request_timeout)
        .bearer_auth(token.trim())
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .header("User-Agent", "hwc-agent-runner");
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| ToolError(format!("{method} {url} failed: {e}")))?;
    let status = resp.status();
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| resp.url().join(l).ok())
        .map(String::from);
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ToolError(format!("{method} {url}: reading the answer failed: {e}")))?;
    if status.is_success() || status.is_redirection() {
        return Ok(Answer {
            status,
            location,
            body: bytes.to_vec(),
        });
    }
    let message = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["message"].as_str().map(String::from))
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned());
    let what = match status.as_u16() {
        401 => format!(
            "the CI API refused the token in {} ({message}): renew it",
            token_path.display()
        ),
        403 => format!("the token may not do this ({message})"),
        404 => format!(
            "not found ({message}): check repository `{}` and workflow `{}`, and that the token can see them",
            p.repository, p.workflow
        ),
        500..=599 => format!(
            "the CI API failed ({message}); nothing is known about the pipeline from this answer: retry later"
        ),
        _ => message,
    };
    Err(ToolError(format!(
        "{method} {url} answered {}: {what}",
        status.as_u16()
    )))
}

async fn api_json(ctx: &Ctx, p: &CiPipeline, path: &str) -> Result<Value, ToolError> {
    let a = api(ctx, p, Method::GET, path, None).await?;
    serde_json::from_slice(&a.body)
        .map_err(|e| ToolError(format!("GET {path}: the answer is not JSON: {e}")))
}

fn runs_path(p: &CiPipeline, query: &str) -> String {
    format!("/actions/workflows/{}/runs?{query}", p.workflow)
}

fn run_ids(v: &Value) -> BTreeSet<u64> {
    v["workflow_runs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["id"].as_u64())
        .collect()
}

/// One line for a run: id, status or conclusion, ref, link.
fn run_line(r: &Value) -> String {
    let state = r["conclusion"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| r["status"].as_str().unwrap_or("?").to_string());
    format!(
        "run {} ({}): {state} on {} {} ({}, {})",
        r["id"],
        r["name"].as_str().unwrap_or("?"),
        r["head_branch"].as_str().unwrap_or("?"),
        r["head_sha"]
            .as_str()
            .map(|s| &s[..s.len().min(12)])
            .unwrap_or(""),
        r["created_at"].as_str().unwrap_or("?"),
        r["html_url"].as_str().unwrap_or("")
    )
}

/// The run and its jobs, as the model reads them.
async fn describe_run(ctx: &Ctx, p: &CiPipeline, id: u64) -> Result<(Value, String), ToolError> {
    let run = api_json(ctx, p, &format!("/actions/runs/{id}")).await?;
    let mut text = run_line(&run);
    let jobs = api_json(ctx, p, &format!("/actions/runs/{id}/jobs")).await?;
    for j in jobs["jobs"].as_array().into_iter().flatten() {
        let state = j["conclusion"]
            .as_str()
            .unwrap_or_else(|| j["status"].as_str().unwrap_or("?"));
        let _ = write!(
            text,
            "\n- job {} `{}`: {state}",
            j["id"],
            j["name"].as_str().unwrap_or("?")
        );
        for s in j["steps"].as_array().into_iter().flatten() {
            if s["conclusion"].as_str().is_some_and(|c| c == "failure") {
                let _ = write!(
                    text,
                    " (step {} `{}` failed)",
                    s["number"],
                    s["name"].as_str().unwrap_or("?")
                );
            }
        }
    }
    Ok((run, text))
}

/// Polls run `id` until it completes or `wait` has passed.
async fn wait_for(
    ctx: &Ctx,
    p: &CiPipeline,
    id: u64,
    wait: Duration,
) -> Result<(Value, String), ToolError> {
    let until = Instant::now() + wait;
    loop {
        let (run, text) = describe_run(ctx, p, id).await?;
        let done = run["status"].as_str() == Some("completed");
        if done || Instant::now() >= until {
            let text = if done {
                text
            } else {
                format!("{text}\n(still {} after waiting {} s; ask for `status` with run_id {id} later)", run["status"].as_str().unwrap_or("?"), wait.as_secs())
            };
            return Ok((run, text));
        }
        tokio::time::sleep(ctx.tools.ci.poll_every.min(until - Instant::now())).await;
    }
}

/// The end of each job's log (failed jobs first), within `max_log_bytes`.
async fn logs(ctx: &Ctx, p: &CiPipeline, id: u64, only: Option<&str>) -> Result<String, ToolError> {
    let jobs = api_json(ctx, p, &format!("/actions/runs/{id}/jobs")).await?;
    let mut list: Vec<&Value> = jobs["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|j| only.is_none_or(|n| j["name"].as_str() == Some(n)))
        .collect();
    if list.is_empty() {
        return Err(ToolError(match only {
            Some(n) => format!("run {id} has no job named `{n}`"),
            None => format!("run {id} has no jobs yet"),
        }));
    }
    list.sort_by_key(|j| j["conclusion"].as_str() != Some("failure"));
    let share = ctx.tools.ci.max_log_bytes / list.len();
    let mut out = String::new();
    for j in list {
        let a = api(
            ctx,
            p,
            Method::GET,
            &format!("/actions/jobs/{}/logs", j["id"]),
            None,
        )
        .await?;
        let bytes = match (a.status.is_redirection(), a.location) {
            // GitHub redirects to a signed URL; Gitea answers the log itself.
            (true, Some(to)) => blob(ctx, &to).await?,
            _ => a.body,
        };
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim_start_matches('\u{feff}');
        let cut = text.len().saturating_sub(share);
        let start = (cut..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        let _ = write!(
            out,
            "--- job `{}` ({}){} ---\n{}\n",
            j["name"].as_str().unwrap_or("?"),
            j["conclusion"]
                .as_str()
                .unwrap_or_else(|| j["status"].as_str().unwrap_or("?")),
            if start > 0 {
                format!(", last {} of {} bytes", text.len() - start, text.len())
            } else {
                String::new()
            },
            &text[start..]
        );
    }
    Ok(out)
}

/// A job log from the signed URL the API redirected to (no token: the
/// URL carries its own authority).
async fn blob(ctx: &Ctx, url: &str) -> Result<Vec<u8>, ToolError> {
    let resp = ctx
        .http
        .get(url)
        .timeout(ctx.tools.ci.request_timeout)
        .send()
        .await
        .map_err(|e| ToolError(format!("GET the job log at {url} failed: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(ToolError(format!(
            "GET the job log at {url} answered {}; the signed link may have expired: ask for the logs again",
            status.as_u16()
        )));
    }
    let b = resp
        .bytes()
        .await
        .map_err(|e| ToolError(format!("reading the job log failed: {e}")))?;
    Ok(b.to_vec())
}

#[async_trait::async_trait]
impl Tool for Ci {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "ci".into(),
            description: "Trigger and read a declared CI pipeline (GitHub/Forgejo Actions): `trigger` runs it on a ref (and waits up to wait_seconds), `status` shows a run and its jobs, `runs` lists recent runs, `logs` returns the end of a run's job logs, `cancel` stops a run.".into(),
            parameters: json!({"type": "object", "required": ["action", "pipeline"], "properties": {
                "action": {"type": "string", "enum": ACTIONS},
                "pipeline": {"type": "string", "maxLength": 128},
                "ref": {"type": "string", "maxLength": 200},
                "inputs": {"type": "object", "additionalProperties": true},
                "run_id": {"type": "integer", "minimum": 1},
                "job": {"type": "string", "maxLength": 200},
                "wait_seconds": {"type": "integer", "minimum": 0, "maximum": 3600}}}),
        }
    }

    async fn plan(&self, args: &Value, ctx: &Ctx) -> Result<Planned, ToolError> {
        let (norm, words) = command(args, ctx)?;
        let p = pipeline(ctx, str_arg(&norm, "pipeline")?)?;
        let action = str_arg(&norm, "action")?.to_string();
        let action = action.as_str();
        let rollback = match action {
            "trigger" if p.deploy => {
                let last = api_json(ctx, p, &runs_path(p, "status=success&per_page=1")).await?;
                last["workflow_runs"][0]["head_sha"].as_str().map(|sha| {
                    format!(
                        "deploy the last good commit again: ci trigger {} with ref {sha} (run {}, the last successful deploy)",
                        p.name, last["workflow_runs"][0]["id"]
                    )
                })
            }
            "trigger" => Some(format!(
                "cancel the run (ci cancel {} with its run_id) while it is queued or running",
                p.name
            )),
            "cancel" => Some(format!("trigger {} again", p.name)),
            _ => None,
        };
        Ok(Planned {
            tool: "ci".into(),
            target: format!("ci:{}/{}", p.repository, p.workflow),
            summary: words.join(" "),
            subject: PlanSubject::Commands(vec![words]),
            arguments: norm,
            rollback,
            claimed: None,
            item: if matches!(action, "trigger" | "cancel") {
                ItemKind::CommandExecution
            } else {
                ItemKind::ToolCall
            },
            network: false,
            call_id: None,
            environment: Some(
                p.environment
                    .clone()
                    .unwrap_or_else(|| ctx.environment.clone()),
            ),
        })
    }

    async fn run(&self, planned: &Planned, ctx: &Ctx) -> Result<ToolOutput, ToolError> {
        let t0 = Instant::now();
        let a = &planned.arguments;
        let p = pipeline(ctx, str_arg(a, "pipeline")?)?;
        let wait = Duration::from_secs(a["wait_seconds"].as_u64().unwrap_or(0));
        let run_id = a["run_id"].as_u64();
        match str_arg(a, "action")? {
            "trigger" => {
                let r = str_arg(a, "ref")?;
                let q = format!("event=workflow_dispatch&branch={r}&per_page=20");
                let before = run_ids(&api_json(ctx, p, &runs_path(p, &q)).await?);
                let mut body = json!({"ref": r});
                if let Some(i) = a.get("inputs") {
                    body["inputs"] = i.clone();
                }
                let path = format!("/actions/workflows/{}/dispatches", p.workflow);
                api(ctx, p, Method::POST, &path, Some(body))
                    .await
                    .map_err(|e| {
                        ToolError(format!(
                            "{e}\n(the dispatch was not accepted; list `runs` before trying again)"
                        ))
                    })?;
                // The new run shows up in the list within seconds.
                let find_until =
                    Instant::now() + ctx.tools.ci.request_timeout.max(Duration::from_secs(10));
                let id = loop {
                    let now = api_json(ctx, p, &runs_path(p, &q)).await?;
                    if let Some(id) = run_ids(&now).difference(&before).max() {
                        break *id;
                    }
                    if Instant::now() >= find_until {
                        return Ok(ToolOutput::from_text(format!("dispatched {} on {r}, but no new run appeared within {} s; list `runs` to find it", p.workflow, find_until.duration_since(t0).as_secs()), true, t0));
                    }
                    tokio::time::sleep(ctx.tools.ci.poll_every.min(Duration::from_secs(2))).await;
                };
                let (run, text) = wait_for(ctx, p, id, wait).await?;
                let failed = run["conclusion"].as_str().is_some_and(|c| c != "success");
                Ok(ToolOutput::from_text(
                    format!("triggered {} on {r}: {text}", p.workflow),
                    !failed,
                    t0,
                ))
            }
            "status" => {
                let id = match run_id {
                    Some(id) => id,
                    None => {
                        let last = api_json(ctx, p, &runs_path(p, "per_page=1")).await?;
                        last["workflow_runs"][0]["id"]
                            .as_u64()
                            .ok_or_else(|| ToolError(format!("{} has no runs yet", p.workflow)))?
                    }
                };
                let (run, text) = wait_for(ctx, p, id, wait).await?;
                Ok(ToolOutput::from_text(
                    text,
                    run["conclusion"].as_str().is_none_or(|c| c == "success"),
                    t0,
                ))
            }
            "runs" => {
                let v = api_json(ctx, p, &runs_path(p, "per_page=10")).await?;
                let lines: Vec<String> = v["workflow_runs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(run_line)
                    .collect();
                Ok(ToolOutput::from_text(
                    if lines.is_empty() {
                        format!("{} has no runs yet", p.workflow)
                    } else {
                        lines.join("\n")
                    },
                    true,
                    t0,
                ))
            }
            "logs" => {
                let id = run_id.ok_or_else(|| ToolError("`run_id` is required".into()))?;
                Ok(ToolOutput::from_text(
                    logs(ctx, p, id, a["job"].as_str()).await?,
                    true,
                    t0,
                ))
            }
            "cancel" => {
                let id = run_id.ok_or_else(|| ToolError("`run_id` is required".into()))?;
                api(
                    ctx,
                    p,
                    Method::POST,
                    &format!("/actions/runs/{id}/cancel"),
                    None,
                )
                .await?;
                Ok(ToolOutput::from_text(
                    format!("cancel requested for run {id}"),
                    true,
                    t0,
                ))
            }
            other => Err(ToolError(format!("unknown action {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ToolsConfig;

    fn ctx() -> Ctx {
        let mut tools = ToolsConfig::default();
        for (name, deploy, env) in [("build", false, None), ("deploy-web", true, Some("prod"))] {
            tools.ci.pipelines.push(CiPipeline {
                name: name.into(),
                api_url: "http://127.0.0.1:1".into(),
                repository: "ops/web".into(),
                workflow: format!("{name}.yml"),
                default_ref: "main".into(),
                token_file: "ci-token".into(),
                environment: env.map(String::from),
                deploy,
            });
        }
        crate::tools::test_ctx(tools)
    }

    #[test]
    fn calls_become_the_words_the_policy_judges() {
        let table = [
            (
                json!({"action": "trigger", "pipeline": "build"}),
                "ci trigger build --ref main",
            ),
            (
                json!({"action": "trigger", "pipeline": "deploy-web", "ref": "v1.2.3"}),
                "ci deploy deploy-web --ref v1.2.3",
            ),
            (
                json!({"action": "status", "pipeline": "build"}),
                "ci read build",
            ),
            (
                json!({"action": "logs", "pipeline": "build", "run_id": 7}),
                "ci read build",
            ),
            (
                json!({"action": "cancel", "pipeline": "build", "run_id": 7}),
                "ci cancel build",
            ),
            (
                json!({"action": "logs", "pipeline": "build"}),
                "error: `run_id` is required for `logs` (the trigger's answer and `runs` name it)",
            ),
            (
                json!({"action": "trigger", "pipeline": "build", "ref": "--upload-pack=x"}),
                "error: `ref` = \"--upload-pack=x\" is not a branch, tag or commit name",
            ),
            (
                json!({"action": "trigger", "pipeline": "build", "inputs": {"n": 1}}),
                "error: `inputs` must be at most 10 string values (workflow_dispatch inputs)",
            ),
            (
                json!({"action": "trigger", "pipeline": "nope"}),
                "error: `nope` is not a declared pipeline; the pipelines are build, deploy-web",
            ),
            (
                json!({"action": "rerun", "pipeline": "build"}),
                "error: `action` = \"rerun\" is not one of trigger, status, runs, logs, cancel",
            ),
        ];
        for (args, want) in table {
            let got = match command(&args, &ctx()) {
                Ok((_, w)) => w.join(" "),
                Err(e) => format!("error: {e}"),
            };
            assert_eq!(got, want, "{args}");
        }
    }
}
