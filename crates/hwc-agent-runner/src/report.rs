//! The job report: summary, findings each citing the tool results they
//! rest on (by event id), the actions with their class, rule, approvers and
//! rollback, what is still unknown, and evidence completeness (the share of
//! findings with at least one citation of a real tool result of this job).
//! Served as JSON and as Markdown.

use crate::approval::Grant;
use crate::job::Job;
use crate::repo::{ActionRow, StoredEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// What was found.
    pub text: String,
    /// Event ids cited.
    pub evidence: Vec<i64>,
    /// Cited ids that are not tool results of this job.
    pub invalid_evidence: Vec<i64>,
}

/// One action taken or proposed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionLine {
    /// Action id.
    pub id: i64,
    /// The tool.
    pub tool: String,
    /// What it was.
    pub summary: String,
    /// Class.
    pub risk: String,
    /// allow / needs_approval / deny (as judged).
    pub verdict: String,
    /// The rule.
    pub rule: Option<String>,
    /// Who approved.
    pub approvers: Vec<String>,
    /// How it ended (`done`, `denied`, `rejected`, …).
    pub state: String,
    /// Its rollback plan.
    pub rollback: Option<String>,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The job.
    pub job: String,
    /// The goal.
    pub goal: String,
    /// Environment and host.
    pub environment: String,
    /// The host.
    pub target: String,
    /// The summary.
    pub summary: String,
    /// Findings.
    pub findings: Vec<Finding>,
    /// Actions.
    pub actions: Vec<ActionLine>,
    /// What is still unknown.
    pub unknowns: Vec<String>,
    /// Share of findings with a valid citation (1.0 with no findings is
    /// not claimed: 0.0).
    pub evidence_completeness: f64,
    /// Why the job did not finish, if it did not.
    pub error: Option<String>,
    /// Model turns.
    pub steps: u32,
    /// Tokens.
    pub tokens: u64,
}

/// Builds the report from what the model said at `finish` and the record.
pub fn build(
    job: &Job,
    finish: Option<&Value>,
    events: &[StoredEvent],
    actions: &[ActionRow],
    grants: &[Vec<Grant>],
) -> Report {
    let evidence_ids: BTreeSet<i64> = events
        .iter()
        .filter(|e| e.kind == "item.completed" && e.data["item"].get("output").is_some())
        .map(|e| e.seq)
        .collect();
    let findings: Vec<Finding> = finish
        .and_then(|f| f["findings"].as_array())
        .into_iter()
        .flatten()
        .map(|f| {
            let cited: Vec<i64> = f["evidence"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_i64)
                .collect();
            Finding {
                text: f["text"].as_str().unwrap_or("").to_string(),
                invalid_evidence: cited
                    .iter()
                    .copied()
                    .filter(|c| !evidence_ids.contains(c))
                    .collect(),
                evidence: cited
                    .into_iter()
                    .filter(|c| evidence_ids.contains(c))
                    .collect(),
            }
        })
        .collect();
    let with = findings.iter().filter(|f| !f.evidence.is_empty()).count();
    let completeness = if findings.is_empty() {
        0.0
    } else {
        with as f64 / findings.len() as f64
    };
    let actions = actions
        .iter()
        .zip(grants.iter().chain(std::iter::repeat(&Vec::new())))
        .map(|(a, g)| ActionLine {
            id: a.id,
            tool: a.planned.tool.clone(),
            summary: a.planned.summary.clone(),
            risk: a.decision["risk"].as_str().unwrap_or("").to_string(),
            verdict: a.decision["verdict"].as_str().unwrap_or("").to_string(),
            rule: a.decision["rule"].as_str().map(String::from),
            approvers: g
                .iter()
                .filter(|x| x.digest == a.digest)
                .map(|x| x.approver.clone())
                .collect(),
            state: a.state.as_str().into(),
            rollback: a.planned.rollback.clone(),
        })
        .collect();
    Report {
        job: job.id.clone(),
        goal: job.spec.goal.clone(),
        environment: job.spec.environment.clone(),
        target: job.spec.target.clone(),
        summary: finish
            .and_then(|f| f["summary"].as_str())
            .unwrap_or("")
            .to_string(),
        findings,
        actions,
        unknowns: finish
            .and_then(|f| f["unknowns"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|u| u.as_str().map(String::from))
            .collect(),
        evidence_completeness: completeness,
        error: job.progress.error.clone(),
        steps: job.progress.steps,
        tokens: job.progress.usage.prompt_tokens + job.progress.usage.completion_tokens,
    }
}

/// The report for people.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Job {}\n", r.job);
    let _ = writeln!(s, "**Goal:** {}  ", r.goal);
    let _ = writeln!(s, "**Where:** {} ({})  ", r.target, r.environment);
    let _ = writeln!(
        s,
        "**Evidence completeness:** {:.0} % · {} steps · {} tokens\n",
        r.evidence_completeness * 100.0,
        r.steps,
        r.tokens
    );
    if let Some(e) = &r.error {
        let _ = writeln!(s, "> Stopped: {e}\n");
    }
    let _ = writeln!(
        s,
        "## Summary\n\n{}\n",
        if r.summary.is_empty() {
            "(none)"
        } else {
            &r.summary
        }
    );
    let _ = writeln!(s, "## Findings\n");
    if r.findings.is_empty() {
        let _ = writeln!(s, "(none)\n");
    }
    for f in &r.findings {
        let cites: Vec<String> = f.evidence.iter().map(|e| format!("event {e}")).collect();
        let _ = writeln!(
            s,
            "- {} ({})",
            f.text,
            if cites.is_empty() {
                "no evidence cited".to_string()
            } else {
                cites.join(", ")
            }
        );
    }
    let _ = writeln!(s, "\n## Actions\n");
    if r.actions.is_empty() {
        let _ = writeln!(s, "(none)");
    } else {
        let _ = writeln!(
            s,
            "| # | action | class | decision | rule | approvers | outcome |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        for a in &r.actions {
            let _ = writeln!(
                s,
                "| {} | `{}` | {} | {} | {} | {} | {} |",
                a.id,
                a.summary.replace('|', "\\|"),
                a.risk,
                a.verdict,
                a.rule.as_deref().unwrap_or("-"),
                if a.approvers.is_empty() {
                    "-".to_string()
                } else {
                    a.approvers.join(", ")
                },
                a.state
            );
        }
    }
    let rollbacks: Vec<&ActionLine> = r
        .actions
        .iter()
        .filter(|a| a.rollback.is_some() && a.state == "done")
        .collect();
    if !rollbacks.is_empty() {
        let _ = writeln!(s, "\n## Rollback plan\n");
        for a in rollbacks {
            let _ = writeln!(
                s,
                "- action {}: {}",
                a.id,
                a.rollback.as_deref().unwrap_or("")
            );
        }
    }
    let _ = writeln!(s, "\n## Still unknown\n");
    if r.unknowns.is_empty() {
        let _ = writeln!(s, "(nothing listed)");
    }
    for u in &r.unknowns {
        let _ = writeln!(s, "- {u}");
    }
    s
}
