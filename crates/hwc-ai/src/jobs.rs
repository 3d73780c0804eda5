//! `hwc-ai jobs`: the agent runner's jobs: list, show, follow (the SSE
//! events rendered live, with each action's risk and decision), approve,
//! reject, cancel, report. An approval binds the digest of the action the
//! operator was shown, so it can never approve something else.

use crate::client::{Client, ClientError};
use crate::render::{self, paint, state, table};
use hwc_agent_runner::api::JobView;
use serde_json::{json, Value};

/// A job's age and steps, the list's columns.
fn row(j: &JobView, now_ms: i64) -> Vec<String> {
    let pending = j
        .pending
        .as_ref()
        .map(|p| {
            format!(
                "{} {}",
                p["risk"].as_str().unwrap_or("?"),
                p["summary"].as_str().unwrap_or("")
            )
        })
        .unwrap_or_default();
    vec![
        j.id.clone(),
        state(&render::wire(&j.state)),
        j.spec.environment.clone(),
        j.requester.clone(),
        render::duration(((now_ms - j.created_at).max(0) / 1000) as u64),
        j.steps.to_string(),
        short(&j.spec.goal, 48),
        pending,
    ]
}

fn short(s: &str, n: usize) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() <= n {
        one_line
    } else {
        format!("{}…", one_line.chars().take(n - 1).collect::<String>())
    }
}

/// The jobs table.
pub fn render_list(jobs: &[JobView], now_ms: i64) -> String {
    if jobs.is_empty() {
        return "no jobs\n".into();
    }
    let mut t = table(&[
        "ID",
        "STATE",
        "ENV",
        "REQUESTER",
        "AGE",
        "STEPS",
        "GOAL",
        "WAITING FOR APPROVAL",
    ]);
    for j in jobs {
        t.add_row(row(j, now_ms));
    }
    render::lines(&t) + "\n"
}

/// What an approver must see of a pending action, one line each.
pub fn render_pending(p: &Value) -> String {
    let args = p
        .get("arguments")
        .map(|a| serde_json::to_string(a).unwrap_or_default())
        .unwrap_or_default();
    let approved: Vec<&str> = p["approved_by"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut t = table(&["", ""]);
    let risk = p["risk"].as_str().unwrap_or("?");
    let style = if risk == "R3" {
        render::BAD
    } else {
        render::WARN
    };
    for (k, v) in [
        ("action", p["summary"].as_str().unwrap_or("").to_string()),
        ("risk", paint(style, risk)),
        ("rule", p["rule"].as_str().unwrap_or("(none)").to_string()),
        ("why", p["reason"].as_str().unwrap_or("").to_string()),
        ("tool", p["tool"].as_str().unwrap_or("").to_string()),
        ("arguments", args),
        ("target", p["target"].as_str().unwrap_or("").to_string()),
        (
            "rollback",
            p["rollback"].as_str().unwrap_or("(none)").to_string(),
        ),
        (
            "approvals",
            format!(
                "{} needed{}",
                p["approvals_needed"].as_u64().unwrap_or(1),
                if approved.is_empty() {
                    String::new()
                } else {
                    format!(", approved by {}", approved.join(", "))
                }
            ),
        ),
        ("digest", p["digest"].as_str().unwrap_or("").to_string()),
    ] {
        t.add_row(vec![k.to_string(), v]);
    }
    let text = render::lines(&t);
    text.split_once('\n')
        .map_or(String::new(), |(_, r)| r.to_string())
        + "\n"
}

/// One job, in full.
pub fn render_show(j: &JobView) -> String {
    let mut t = table(&["", ""]);
    for (k, v) in [
        ("id", j.id.clone()),
        ("state", state(&render::wire(&j.state))),
        ("goal", j.spec.goal.clone()),
        ("environment", j.spec.environment.clone()),
        ("target", j.spec.target.clone()),
        ("requester", j.requester.clone()),
        ("model", j.spec.model.clone()),
        ("steps", format!("{} of {}", j.steps, j.spec.max_steps)),
        ("tokens", format!("{} of {}", j.tokens, j.spec.max_tokens)),
    ] {
        t.add_row(vec![k.to_string(), v]);
    }
    if let Some(e) = &j.error {
        t.add_row(vec!["error".into(), paint(render::BAD, e)]);
    }
    let text = render::lines(&t);
    let mut out = text
        .split_once('\n')
        .map_or(String::new(), |(_, r)| r.to_string())
        + "\n";
    if let Some(p) = &j.pending {
        out.push_str(&format!(
            "\n{}\n",
            paint(render::HEAD, "waiting for approval:")
        ));
        for l in render_pending(p).lines() {
            out.push_str(&format!("  {l}\n"));
        }
        out.push_str(&format!(
            "\n  hwc-ai jobs approve {id}   or   hwc-ai jobs reject {id}\n",
            id = j.id
        ));
    }
    out
}

/// One event of a job's stream as a line: time, kind, and what matters
/// of it (risk and verdict for a decision, the command for an action).
pub fn event_line(ev: &Value) -> String {
    let kind = ev["type"].as_str().unwrap_or("?");
    let d = &ev["data"];
    let at = ev["at"].as_i64().unwrap_or(0);
    let time = format!(
        "{:02}:{:02}:{:02}",
        at / 3_600_000 % 24,
        at / 60_000 % 60,
        at / 1000 % 60
    );
    let text = match kind {
        "job.state" => {
            let s = d["state"].as_str().unwrap_or("?");
            match d["error"].as_str() {
                Some(e) => format!("{} {e}", state(s)),
                None => state(s),
            }
        }
        "turn.started" => format!("step {}", d["step"]),
        "turn.completed" => format!(
            "step {} ({}{})",
            d["step"],
            d["model"].as_str().unwrap_or("?"),
            if d["escalated"] == json!(true) {
                ", escalated"
            } else {
                ""
            }
        ),
        "turn.failed" => paint(render::BAD, d["error"].as_str().unwrap_or("")),
        "policy.decision" => {
            let verdict = d["verdict"].as_str().unwrap_or("?");
            let style = match verdict {
                "allow" | "allowed" => render::GOOD,
                "deny" | "denied" | "refused" => render::BAD,
                _ => render::WARN,
            };
            format!(
                "{} {} {} (rule {}) {}",
                d["risk"].as_str().unwrap_or("?"),
                paint(style, verdict),
                d["summary"].as_str().unwrap_or(""),
                d["rule"].as_str().unwrap_or("none"),
                d["reason"].as_str().unwrap_or("")
            )
        }
        "approval.requested" => paint(
            render::WARN,
            &format!(
                "{} needs {} approval(s): {} — rollback: {}",
                d["risk"].as_str().unwrap_or("?"),
                d["approvals"].as_u64().unwrap_or(1),
                d["summary"].as_str().unwrap_or(""),
                d["rollback"].as_str().unwrap_or("(none)")
            ),
        ),
        "approval.expired" => paint(render::BAD, "the approval request expired"),
        "item.started" | "item.completed" => {
            let item = &d["item"];
            let what = item["summary"]
                .as_str()
                .or_else(|| item["text"].as_str())
                .or_else(|| item["message"].as_str())
                .unwrap_or("");
            let status = item["status"].as_str().unwrap_or("");
            format!(
                "{} {}{}",
                item["type"].as_str().unwrap_or("item"),
                short(what, 100),
                if status.is_empty() || status == "in_progress" {
                    String::new()
                } else {
                    format!(" [{status}]")
                }
            )
        }
        "rollback.recorded" => format!("rollback: {}", d["rollback"].as_str().unwrap_or("")),
        "report.ready" => format!(
            "report: {} findings, evidence completeness {}",
            d["findings"], d["evidence_completeness"]
        ),
        _ => short(&d.to_string(), 100),
    };
    format!("{time}  {:<18} {text}", kind)
}

/// Whether `ev` ends a job's stream (a final `job.state`).
pub fn is_final(ev: &Value) -> bool {
    ev["type"] == "job.state"
        && matches!(
            ev["data"]["state"].as_str(),
            Some("completed" | "failed" | "cancelled")
        )
}

/// `GET /agent/jobs`.
pub async fn list(
    c: &Client,
    state: Option<&str>,
    limit: u32,
) -> Result<Vec<JobView>, ClientError> {
    let mut path = format!("/agent/jobs?limit={limit}");
    if let Some(s) = state {
        path.push_str(&format!("&state={s}"));
    }
    let v: Value = c.get_json(&path).await?;
    serde_json::from_value(v["jobs"].clone()).map_err(|e| ClientError::Unreadable {
        daemon: c.target.daemon.name,
        url: c.target.url.clone(),
        path,
        why: e.to_string(),
    })
}

/// `GET /agent/jobs/{id}`.
pub async fn show(c: &Client, id: &str) -> Result<JobView, ClientError> {
    c.get_json(&format!("/agent/jobs/{id}")).await
}

/// Approves the action `id` waits on, bound to `digest`.
pub async fn approve(
    c: &Client,
    id: &str,
    digest: &str,
    comment: &str,
) -> Result<Value, ClientError> {
    c.post_json(
        &format!("/agent/jobs/{id}/approve"),
        &json!({"digest": digest, "comment": comment}),
    )
    .await
}

/// Rejects the action `id` waits on.
pub async fn reject(c: &Client, id: &str, comment: &str) -> Result<Value, ClientError> {
    c.post_json(
        &format!("/agent/jobs/{id}/reject"),
        &json!({"comment": comment}),
    )
    .await
}

/// Cancels job `id`.
pub async fn cancel(c: &Client, id: &str) -> Result<Value, ClientError> {
    c.post_json(&format!("/agent/jobs/{id}/cancel"), &json!({}))
        .await
}

/// The report, as JSON or Markdown.
pub async fn report(c: &Client, id: &str, markdown: bool) -> Result<String, ClientError> {
    let mut req = c.get(&format!("/agent/jobs/{id}/report"));
    if markdown {
        req = req.header("accept", "text/markdown");
    }
    let resp = c.send(req).await?;
    resp.text().await.map_err(|e| ClientError::Unreadable {
        daemon: c.target.daemon.name,
        url: c.target.url.clone(),
        path: format!("/agent/jobs/{id}/report"),
        why: e.to_string(),
    })
}

/// Follows job `id`'s events from `after`, calling `each` with every
/// event, until the job ends; returns the final state.
pub async fn follow(
    c: &Client,
    id: &str,
    mut after: i64,
    mut each: impl FnMut(&Value),
) -> Result<String, ClientError> {
    loop {
        let req = c
            .get(&format!("/agent/jobs/{id}/events"))
            .header("accept", "text/event-stream")
            .header("last-event-id", after.to_string());
        let mut resp = c.send_stream(req).await?;
        let mut parser = hwc_ai_core::sse::SseParser::default();
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(b)) => b,
                // The stream ended (the runner drained or restarted):
                // resume from the last event seen.
                Ok(None) | Err(_) => break,
            };
            let events = parser.push(&chunk).unwrap_or_default();
            for e in events {
                let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
                    continue;
                };
                after = v["seq"].as_i64().unwrap_or(after);
                each(&v);
                if is_final(&v) {
                    return Ok(v["data"]["state"].as_str().unwrap_or("?").to_string());
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, data: Value) -> Value {
        json!({"seq": 1, "at": 45_296_000, "type": kind, "data": data})
    }

    #[test]
    fn event_lines() {
        let lines: Vec<String> = [
            ev("job.state", json!({"state": "running"})),
            ev("turn.started", json!({"step": 1})),
            ev("policy.decision", json!({"risk": "R2", "verdict": "needs_approval", "summary": "systemctl restart web",
                "rule": "restart-units", "reason": "a restart interrupts service"})),
            ev("approval.requested", json!({"risk": "R2", "approvals": 1, "summary": "systemctl restart web", "rollback": "systemctl start web"})),
            ev("item.completed", json!({"item": {"type": "command_execution", "summary": "systemctl restart web", "status": "completed"}})),
            ev("job.state", json!({"state": "failed", "error": "max_steps reached"})),
            ev("report.ready", json!({"findings": 2, "evidence_completeness": 1.0})),
        ]
        .iter()
        .map(|e| anstream::adapter::strip_str(&event_line(e)).to_string())
        .collect();
        insta::assert_snapshot!(lines.join("\n"));
        assert!(is_final(&ev("job.state", json!({"state": "completed"}))));
        assert!(!is_final(&ev(
            "job.state",
            json!({"state": "waiting_approval"})
        )));
    }
}
