//! The runner's shared state and the two things everything goes through:
//! [`Runner::event`] (redacted, stored, then broadcast to SSE readers) and
//! [`Runner::record`] (an audit record, durable before it returns). The
//! scheduler picks queued jobs for this host and resumes the ones a
//! restart interrupted.

use crate::audit::{Appended, Audit, Entry};
use crate::config::RunnerConfig;
use crate::job::JobState;
use crate::metrics::RunnerMetrics;
use crate::model::ModelClient;
use crate::policy::Policy;
use crate::redact::Redactor;
use crate::store::{Store, StoreError};
use crate::tools::Toolbox;
use hwc_ai_core::clock::Clock;
use hwc_ai_core::systemd::Systemd;
use hwc_ai_core::tasks::CancellationToken;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{broadcast, Notify, Semaphore};

/// Everything a job, a handler and the scheduler share.
pub struct Runner {
    /// The configuration.
    pub cfg: RunnerConfig,
    /// The database.
    pub store: Store,
    /// The audit chain.
    pub audit: Audit,
    /// The policy in force (replaced on SIGHUP when the file is valid).
    pub policy: RwLock<Arc<Policy>>,
    /// The router client.
    pub model: ModelClient,
    /// All tools.
    pub toolbox: Toolbox,
    /// Secret redaction.
    pub redactor: Redactor,
    /// This host's name: jobs targeting it run here.
    pub host: String,
    /// Metrics.
    pub metrics: RunnerMetrics,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// (job, seq) of every new event, for SSE readers on this runner.
    pub events: broadcast::Sender<(String, i64)>,
    /// Per job: woken when an approval, rejection or cancel arrives.
    pub wake: Mutex<HashMap<String, Arc<Notify>>>,
    /// Per running job: cancelled by `POST …/cancel`.
    pub cancels: Mutex<HashMap<String, CancellationToken>>,
    /// Slots for running jobs.
    pub slots: Arc<Semaphore>,
    /// The system bus.
    pub systemd: Arc<Systemd>,
    /// Where workspaces live.
    pub workspaces: PathBuf,
    /// Paths the sandbox hides (state, credentials).
    pub hidden: Vec<PathBuf>,
    /// The sandbox probe's result at start.
    pub sandbox_status: RwLock<Result<(), String>>,
    /// For tools that fetch.
    pub http: reqwest::Client,
    /// The `/status` envelope's header (uptime counts from the start).
    pub header: hwc_ai_core::status::StatusHeader,
    /// Cancelled when the daemon starts draining: open event streams end.
    pub draining: CancellationToken,
    /// Runbooks and past incidents (`[tools.knowledge]`), if configured.
    pub knowledge: Option<Arc<crate::knowledge::Knowledge>>,
}

impl Runner {
    /// Unix milliseconds now (wall time, for records and events).
    pub fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    /// Unix seconds now from the runner's clock (approval expiry; tests set it).
    pub fn now_s(&self) -> i64 {
        self.clock.unix_now()
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        hwc_ai_core::sync::read(&self.policy).clone()
    }

    /// Appends an event (its strings redacted) to `job`'s stream; its seq.
    pub async fn event(&self, job: &str, kind: &str, data: Value) -> Result<i64, StoreError> {
        let data = self.redactor.json(&data);
        let seq = crate::repo::append_event(&self.store, job, kind, &data, self.now_ms()).await?;
        let _ = self.events.send((job.to_string(), seq));
        Ok(seq)
    }

    /// Appends an audit record (arguments and detail redacted); returns
    /// once it is durable.
    pub async fn record(&self, mut entry: Entry) -> Result<Appended, StoreError> {
        if let Some(a) = &entry.arguments {
            entry.arguments = Some(self.redactor.json(a));
        }
        if let Some(d) = &entry.detail {
            entry.detail = Some(self.redactor.text(d).into_owned());
        }
        let a = self.audit.append(entry, self.now_ms()).await?;
        self.metrics.audit_records.inc();
        Ok(a)
    }

    /// The notifier of `job`.
    pub fn waker(&self, job: &str) -> Arc<Notify> {
        hwc_ai_core::sync::lock(&self.wake)
            .entry(job.to_string())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }

    /// Wakes `job` (an approval or a cancel arrived).
    pub fn wake(&self, job: &str) {
        self.waker(job).notify_waiters();
        self.waker(job).notify_one();
    }

    /// Refreshes the job and approval gauges from the store.
    pub async fn refresh_gauges(&self) {
        if let Ok(counts) = crate::repo::count_by_state(&self.store).await {
            for s in JobState::ALL {
                let n = counts
                    .iter()
                    .find(|(k, _)| k == s.as_str())
                    .map_or(0, |(_, n)| *n);
                self.metrics
                    .jobs
                    .get_or_create(&crate::metrics::StateLabels {
                        state: s.as_str().into(),
                    })
                    .set(n);
            }
        }
        if let Ok(n) = crate::repo::waiting_actions(&self.store).await {
            self.metrics.approvals_waiting.set(n);
        }
        if let Ok(oldest) = crate::repo::oldest_waiting(&self.store).await {
            let waited = oldest.map_or(0, |at| (self.now_ms() - at).max(0) / 1000);
            self.metrics.approval_oldest_waiting.set(waited);
        }
        if let (Ok(head), Ok(signed)) = (
            crate::audit::head(&self.store.pool).await,
            crate::audit::checkpointed(&self.store).await,
        ) {
            let records = head.map_or(0, |(seq, _)| seq);
            self.metrics
                .audit_unsigned
                .set((records - signed.unwrap_or(0)).max(0));
        }
        if let Ok(at) = crate::audit::last_checkpoint_at(&self.store).await {
            self.metrics
                .audit_last_checkpoint
                .set(at.map_or(0, |ms| ms / 1000));
        }
    }
}

/// Runs queued jobs for this host as slots free up, after resuming the
/// ones that were running or waiting when the runner last stopped.
pub async fn schedule(runner: Arc<Runner>, cancel: CancellationToken) {
    match crate::repo::jobs_for(
        &runner.store,
        &runner.host,
        &[JobState::Running, JobState::WaitingApproval],
    )
    .await
    {
        Ok(jobs) => {
            for job in jobs {
                tracing::info!(job = %job.id, state = job.state.as_str(), "resuming a job the last run left unfinished");
                spawn_job(runner.clone(), job.id.clone(), &cancel).await;
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot read unfinished jobs"),
    }
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        runner.refresh_gauges().await;
        if runner.slots.available_permits() == 0 {
            continue;
        }
        let queued =
            match crate::repo::jobs_for(&runner.store, &runner.host, &[JobState::Queued]).await {
                Ok(q) => q,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read queued jobs");
                    continue;
                }
            };
        for job in queued {
            if runner.slots.available_permits() == 0 {
                break;
            }
            let now = runner.now_ms();
            match crate::repo::transition(
                &runner.store,
                &job.id,
                &[JobState::Queued],
                JobState::Running,
                &runner.host,
                now,
            )
            .await
            {
                Ok(true) => spawn_job(runner.clone(), job.id.clone(), &cancel).await,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, job = %job.id, "cannot claim a queued job"),
            }
        }
    }
}

async fn spawn_job(runner: Arc<Runner>, id: String, shutdown: &CancellationToken) {
    let Ok(permit) = runner.slots.clone().acquire_owned().await else {
        return;
    };
    let token = shutdown.child_token();
    hwc_ai_core::sync::lock(&runner.cancels).insert(id.clone(), token.clone());
    tokio::spawn(async move {
        crate::agent::drive(runner.clone(), id.clone(), token).await;
        hwc_ai_core::sync::lock(&runner.cancels).remove(&id);
        drop(permit);
    });
}
