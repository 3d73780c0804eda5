//! `/status`: what an operator checks first (policy in force, store,
//! audit head and checkpoint key, sandbox, model, jobs by state, actions
//! waiting for approval), in the fleet's envelope.

use crate::runner::Runner;
use crate::store::StoreError;
use hwc_ai_core::status::Envelope;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of this status shape.
pub const STATUS_FORMAT: u32 = 1;

/// The runner's own status fields.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunnerStatus {
    /// Jobs targeting this host run here.
    pub host: String,
    /// The policy in force.
    pub policy: PolicyStatus,
    /// `sqlite` or `postgres`.
    pub store: String,
    /// The audit chain.
    pub audit: AuditStatus,
    /// `ok`, or why the shell sandbox is unavailable (it then fails closed).
    pub sandbox: String,
    /// The router.
    pub model: ModelStatus,
    /// Jobs by state, across every runner sharing the store.
    pub jobs: BTreeMap<String, i64>,
    /// Actions waiting for approval.
    pub approvals_waiting: i64,
    /// Jobs this runner is driving now.
    pub running_here: usize,
}

/// The policy part.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PolicyStatus {
    /// The file, or `built-in`.
    pub origin: String,
    /// Rules.
    pub rules: usize,
    /// Environments.
    pub environments: Vec<String>,
}

/// The audit part.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditStatus {
    /// Records in the chain.
    pub records: i64,
    /// The last record's hash.
    pub head: Option<String>,
    /// Records covered by the last signed checkpoint.
    pub checkpointed: Option<i64>,
    /// The checkpoint key's public half (hex), for `audit verify`.
    pub public_key: Option<String>,
}

/// The model part.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelStatus {
    /// The router URL.
    pub url: String,
    /// The alias jobs use by default.
    pub default_alias: String,
    /// `native` or `json_schema`.
    pub tool_calling: crate::config::ToolCalling,
}

/// Collects the status now.
pub async fn collect(r: &Runner) -> Result<Envelope<RunnerStatus>, StoreError> {
    let policy = r.policy();
    let head = crate::audit::head(&r.store.pool).await?;
    let records = head.as_ref().map_or(0, |(seq, _)| *seq);
    let head = head.map(|(_, hash)| hash);
    let checkpointed = crate::audit::checkpointed(&r.store).await?;
    let jobs = crate::repo::count_by_state(&r.store)
        .await?
        .into_iter()
        .collect();
    let approvals_waiting = crate::repo::waiting_actions(&r.store).await?;
    let sandbox = match &*hwc_ai_core::sync::read(&r.sandbox_status) {
        Ok(()) => "ok".to_string(),
        Err(e) => e.clone(),
    };
    let body = RunnerStatus {
        host: r.host.clone(),
        policy: PolicyStatus {
            origin: policy.origin.clone(),
            rules: policy.rules.len(),
            environments: policy
                .environment_names()
                .into_iter()
                .map(String::from)
                .collect(),
        },
        store: match r.store.backend {
            crate::store::Backend::Sqlite => "sqlite".into(),
            crate::store::Backend::Postgres => "postgres".into(),
        },
        audit: AuditStatus {
            records,
            head,
            checkpointed,
            public_key: r.audit.public_key(),
        },
        sandbox,
        model: ModelStatus {
            url: r.cfg.model.url.clone(),
            default_alias: r.cfg.model.default_alias.clone(),
            tool_calling: r.cfg.model.tool_calling,
        },
        jobs,
        approvals_waiting,
        running_here: hwc_ai_core::sync::lock(&r.cancels).len(),
    };
    Ok(r.header.wrap(body))
}
