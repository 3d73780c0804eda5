//! Plan and apply: what is declared against what is on the host.
//!
//! A plan is computed first (cheap: Ollama's model list and the file
//! models' sidecars) and shown by `hwc-model-manager plan`; applying it
//! pulls, downloads, verifies and prunes with bounded concurrency. A model
//! is reported `present` only once everything about it checked out; a
//! permanent failure is reported once and left until an operator asks
//! again (`POST /reconcile`).

use crate::config::{FileModel, ManagerConfig, OllamaModel, Update};
use crate::disk;
use crate::files::{self, FileSpec, Progress};
use crate::metrics::ManagerMetrics;
use crate::ollama::{Ollama, OllamaError};
use hwc_ai_core::backoff::{Backoff, Jitter};
use hwc_ai_core::sync::lock;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Pull an Ollama model.
    Pull {
        /// Model.
        model: String,
        /// `missing` or `update`.
        reason: &'static str,
    },
    /// Download a file model's missing files.
    Download {
        /// Model.
        model: String,
        /// Files to fetch.
        files: Vec<String>,
    },
    /// Delete an undeclared Ollama model (only with `prune = true`).
    Prune {
        /// Exact name.
        model: String,
    },
    /// A pinned digest differs from what Ollama has: not fixable by a pull.
    DigestMismatch {
        /// Model.
        model: String,
        /// Declared.
        pinned: String,
        /// Present.
        present: String,
    },
    /// Declared and present.
    Nothing {
        /// Model.
        model: String,
    },
    /// The plan could not look (Ollama down).
    Unknown {
        /// Model.
        model: String,
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Pull { model, reason } => write!(f, "pull      {model} ({reason})"),
            Action::Download { model, files } => {
                write!(f, "download  {model}: {}", files.join(", "))
            }
            Action::Prune { model } => write!(f, "prune     {model} (not declared, prune = true)"),
            Action::DigestMismatch {
                model,
                pinned,
                present,
            } => {
                write!(
                    f,
                    "ERROR     {model}: pinned digest {pinned} but Ollama has {present}"
                )
            }
            Action::Nothing { model } => write!(f, "nothing   {model} (present)"),
            Action::Unknown { model, reason } => write!(f, "unknown   {model}: {reason}"),
        }
    }
}

/// A declared model's state, as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    /// Not there yet.
    Missing,
    /// Being pulled or downloaded.
    Pulling {
        /// Bytes done.
        done: u64,
        /// Bytes in all (0 unknown).
        total: u64,
        /// Bytes per second since the pull started.
        rate: f64,
    },
    /// Pulled; the verify generation runs.
    Verifying,
    /// There and checked.
    Present,
    /// Failed: why, and whether a retry can help.
    Failed {
        /// For a person.
        reason: String,
        /// No retry can fix it.
        permanent: bool,
    },
}

/// A declared model in `/status`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ModelStatus {
    /// Name.
    pub name: String,
    /// `ollama` or `file`.
    pub kind: String,
    /// State.
    #[serde(flatten)]
    pub state: State,
    /// Unix seconds the state began.
    pub since: f64,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The manager's state and its means.
pub struct Manager {
    cfg: ManagerConfig,
    ollama: Ollama,
    http: reqwest::Client,
    metrics: ManagerMetrics,
    models: Mutex<BTreeMap<String, ModelStatus>>,
    undeclared: Mutex<Vec<String>>,
    permanent: Mutex<HashSet<String>>,
    last_pull: Mutex<HashMap<String, Instant>>,
    /// One reconcile at a time.
    running: tokio::sync::Mutex<()>,
    /// Unix time and outcome of the last reconcile.
    pub last: Mutex<Option<(f64, String)>>,
}

impl Manager {
    /// A manager for `cfg`, every declared model `missing` until planned.
    pub fn new(cfg: ManagerConfig, metrics: ManagerMetrics) -> Result<Self, OllamaError> {
        let ollama = Ollama::new(&cfg.ollama.url)?;
        let mut models = BTreeMap::new();
        for m in &cfg.ollama_models {
            models.insert(
                m.canonical(),
                ModelStatus {
                    name: m.canonical(),
                    kind: "ollama".into(),
                    state: State::Missing,
                    since: unix_now(),
                },
            );
            metrics.declared(&m.canonical(), "ollama");
        }
        for m in &cfg.file_models {
            models.insert(
                m.name.clone(),
                ModelStatus {
                    name: m.name.clone(),
                    kind: "file".into(),
                    state: State::Missing,
                    since: unix_now(),
                },
            );
            metrics.declared(&m.name, "file");
        }
        Ok(Self {
            cfg,
            ollama,
            // No overall timeout: a download may take hours; files::ensure
            // cuts stalls itself.
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| OllamaError::classify(format!("cannot build the HTTP client: {e}")))?,
            metrics,
            models: Mutex::new(models),
            undeclared: Mutex::new(Vec::new()),
            permanent: Mutex::new(HashSet::new()),
            last_pull: Mutex::new(HashMap::new()),
            running: tokio::sync::Mutex::new(()),
            last: Mutex::new(None),
        })
    }

    fn set(&self, name: &str, state: State) {
        let mut models = lock(&self.models);
        if let Some(m) = models.get_mut(name) {
            if m.state != state {
                let same_kind = std::mem::discriminant(&m.state) == std::mem::discriminant(&state);
                if !same_kind {
                    m.since = unix_now();
                    tracing::info!(model = name, state = ?state, "model state");
                }
                self.metrics.state(
                    name,
                    &m.kind,
                    state == State::Present,
                    matches!(state, State::Failed { .. }),
                );
                match &state {
                    State::Pulling { done, total, .. } => {
                        self.metrics.progress(name, *done, *total)
                    }
                    _ => self.metrics.progress(name, 0, 0),
                }
                m.state = state;
            }
        }
    }

    /// Every declared model's status.
    pub fn statuses(&self) -> Vec<ModelStatus> {
        lock(&self.models).values().cloned().collect()
    }

    /// Ollama models present but not declared.
    pub fn undeclared(&self) -> Vec<String> {
        lock(&self.undeclared).clone()
    }

    fn file_specs(m: &FileModel) -> Vec<FileSpec> {
        m.files
            .iter()
            .filter_map(|e| {
                Some(FileSpec {
                    url: e.url.clone(),
                    sha256: e.sha256.clone()?.to_ascii_lowercase(),
                    path: m.dir.join(e.file_name()?),
                })
            })
            .collect()
    }

    /// What a reconcile would do now. `updates` includes due scheduled updates.
    pub async fn plan(&self, updates: bool) -> Vec<Action> {
        let mut plan = Vec::new();
        // Ollama is asked even with nothing declared for it, so /status can
        // list undeclared models; a host without Ollama only loses that list.
        {
            match self.ollama.present().await {
                Ok(present) => {
                    let declared: HashSet<String> = self
                        .cfg
                        .ollama_models
                        .iter()
                        .map(OllamaModel::canonical)
                        .collect();
                    *lock(&self.undeclared) = present
                        .keys()
                        .filter(|n| !declared.contains(*n))
                        .cloned()
                        .collect();
                    for m in &self.cfg.ollama_models {
                        let name = m.canonical();
                        plan.push(match (present.get(&name), m.pinned()) {
                            (None, _) => Action::Pull {
                                model: name,
                                reason: "missing",
                            },
                            (Some(p), Some(pin)) if p.digest != pin => Action::DigestMismatch {
                                model: name,
                                pinned: pin,
                                present: p.digest.clone(),
                            },
                            (Some(_), _)
                                if updates
                                    && m.update == Update::Schedule
                                    && self.update_due(&name) =>
                            {
                                Action::Pull {
                                    model: name,
                                    reason: "update",
                                }
                            }
                            (Some(_), _) => Action::Nothing { model: name },
                        });
                    }
                    if self.cfg.manager.prune {
                        for name in self.undeclared() {
                            plan.push(Action::Prune { model: name });
                        }
                    }
                }
                Err(e) => {
                    for m in &self.cfg.ollama_models {
                        plan.push(Action::Unknown {
                            model: m.canonical(),
                            reason: e.message.clone(),
                        });
                    }
                }
            }
        }
        for m in &self.cfg.file_models {
            let missing: Vec<String> = Self::file_specs(m)
                .iter()
                .filter(|s| !files::is_present(s))
                .map(|s| s.path.display().to_string())
                .collect();
            plan.push(if missing.is_empty() {
                Action::Nothing {
                    model: m.name.clone(),
                }
            } else {
                Action::Download {
                    model: m.name.clone(),
                    files: missing,
                }
            });
        }
        plan
    }

    fn update_due(&self, name: &str) -> bool {
        lock(&self.last_pull)
            .get(name)
            .is_none_or(|t| t.elapsed() >= self.cfg.manager.update_interval)
    }

    /// Plans and applies. `operator` (POST /reconcile) also retries
    /// permanent failures; scheduled runs leave them alone.
    pub async fn reconcile(self: &Arc<Self>, operator: bool) -> Vec<Action> {
        let _one = self.running.lock().await;
        if operator {
            lock(&self.permanent).clear();
        }
        let plan = self.plan(true).await;
        self.apply(&plan).await;
        plan
    }

    /// Applies a plan (with bounded concurrency).
    pub async fn apply(self: &Arc<Self>, plan: &[Action]) {
        let started = Instant::now();
        self.update_disk_metrics();
        let gate = Arc::new(tokio::sync::Semaphore::new(self.cfg.manager.concurrency));
        let mut tasks = Vec::new();
        for action in plan.iter().cloned() {
            let me = self.clone();
            let gate = gate.clone();
            tasks.push(tokio::spawn(async move {
                let Ok(_permit) = gate.acquire().await else {
                    return true;
                };
                me.apply_one(action).await
            }));
        }
        let mut ok = true;
        for t in tasks {
            ok &= t.await.unwrap_or(false);
        }
        let outcome = if ok { "ok" } else { "failed" };
        self.metrics.reconciled(outcome, started.elapsed());
        *lock(&self.last) = Some((unix_now(), outcome.to_string()));
        self.update_disk_metrics();
        tracing::info!(
            outcome,
            seconds = started.elapsed().as_secs_f64(),
            "reconcile done"
        );
    }

    fn update_disk_metrics(&self) {
        let mut dirs = vec![self.cfg.ollama.models_dir.clone()];
        dirs.extend(self.cfg.file_models.iter().map(|m| m.dir.clone()));
        for d in dirs {
            if let Ok(space) = disk::space(&d) {
                let path = d.display().to_string();
                self.metrics.disk_free(&path, space.free);
                self.metrics
                    .disk_reserve(&path, self.cfg.manager.reserve.bytes(space.total));
            }
        }
    }

    fn fail(&self, model: &str, reason: String, permanent: bool) -> bool {
        if permanent {
            if lock(&self.permanent).insert(model.to_string()) {
                tracing::error!(model, %reason, "permanent failure; not retried until POST /reconcile");
                self.metrics.permanent_failure(model);
            }
        } else {
            tracing::warn!(model, %reason, "failed; retried at the next reconcile");
        }
        self.set(model, State::Failed { reason, permanent });
        false
    }

    async fn apply_one(self: Arc<Self>, action: Action) -> bool {
        match action {
            Action::Nothing { model } => {
                if !lock(&self.permanent).contains(&model) {
                    self.set(&model, State::Present);
                }
                true
            }
            Action::Unknown { model, reason } => self.fail(&model, reason, false),
            Action::DigestMismatch { model, pinned, present } => self.fail(
                &model,
                format!("pinned digest sha256:{pinned} but Ollama has sha256:{present}; update the pin or remove the model (`ollama rm {model}`) so the pinned one is pulled"),
                true,
            ),
            Action::Prune { model } => match self.ollama.delete(&model).await {
                Ok(()) => {
                    tracing::warn!(model, "pruned undeclared model");
                    true
                }
                Err(e) => {
                    tracing::error!(model, error = %e, "prune failed");
                    false
                }
            },
            Action::Pull { model, .. } => {
                if lock(&self.permanent).contains(&model) {
                    return false;
                }
                let Some(decl) = self.cfg.ollama_models.iter().find(|m| m.canonical() == model).cloned() else {
                    return false;
                };
                self.pull_ollama(&decl).await
            }
            Action::Download { model, .. } => {
                if lock(&self.permanent).contains(&model) {
                    return false;
                }
                let Some(decl) = self.cfg.file_models.iter().find(|m| m.name == model).cloned() else {
                    return false;
                };
                self.download(&decl).await
            }
        }
    }

    async fn retrying<T, F, Fut>(&self, model: &str, mut op: F) -> Result<T, (String, bool)>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, (String, bool)>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match op().await {
                Ok(v) => return Ok(v),
                Err((reason, true)) => return Err((reason, true)),
                Err((reason, false)) if attempt >= self.cfg.manager.attempts => {
                    return Err((reason, false))
                }
                Err((reason, false)) => {
                    let wait = Backoff {
                        base: self.cfg.manager.retry_base,
                        max: Duration::MAX,
                        jitter: Jitter::Half,
                    }
                    .next(attempt);
                    tracing::warn!(model, attempt, %reason, wait_s = wait.as_secs_f64(), "transient failure; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn pull_ollama(&self, m: &OllamaModel) -> bool {
        let name = m.canonical();
        if let Some(size) = m.size {
            if let Err(e) = disk::check(&self.cfg.ollama.models_dir, size, self.cfg.manager.reserve)
            {
                return self.fail(&name, e.to_string(), true);
            }
        }
        let started = Instant::now();
        let result = self
            .retrying(&name, || async {
                let mut last_bytes = 0u64;
                self.ollama
                    .pull(&name, |status, p| {
                        let rate = p.completed as f64 / started.elapsed().as_secs_f64().max(0.001);
                        if p.completed > last_bytes {
                            self.metrics.pulled_bytes(&name, p.completed - last_bytes);
                        }
                        last_bytes = p.completed;
                        tracing::debug!(model = %name, status, done = p.completed, total = p.total, "pull progress");
                        self.set(&name, State::Pulling { done: p.completed, total: p.total, rate });
                    })
                    .await
                    .map_err(|e| (e.message, e.permanent))
            })
            .await;
        if let Err((reason, permanent)) = result {
            return self.fail(&name, reason, permanent);
        }
        self.metrics.pull_duration(started.elapsed());
        lock(&self.last_pull).insert(name.clone(), Instant::now());
        if let Some(pin) = m.pinned() {
            match self.ollama.present().await.map(|p| p.get(&name).map(|x| x.digest.clone())) {
                Ok(Some(d)) if d == pin => {}
                Ok(Some(d)) => {
                    return self.fail(
                        &name,
                        format!("pinned digest sha256:{pin} but the pull brought sha256:{d}; the tag moved: update the pin after checking the new model"),
                        true,
                    )
                }
                Ok(None) => return self.fail(&name, "Ollama said success but does not list the model".into(), false),
                Err(e) => return self.fail(&name, e.message, e.permanent),
            }
        }
        if m.verify || m.keep_loaded {
            self.set(&name, State::Verifying);
            let r = self
                .ollama
                .generate(&name, m.keep_loaded, self.cfg.ollama.verify_timeout)
                .await;
            self.metrics.verified(&name, r.is_ok());
            if let Err(e) = r {
                return self.fail(&name, e.message, e.permanent);
            }
        }
        self.set(&name, State::Present);
        true
    }

    async fn download(self: &Arc<Self>, m: &FileModel) -> bool {
        let specs = Self::file_specs(m);
        let started = Instant::now();
        let mut total_done = 0u64;
        for spec in &specs {
            let progress = Arc::new(Progress::default());
            // Progress into /status twice a second while this file downloads.
            let reporter = {
                let (me, progress, name) = (self.clone(), progress.clone(), m.name.clone());
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_millis(500));
                    loop {
                        tick.tick().await;
                        let done = total_done + progress.done.load(Ordering::Relaxed);
                        let total = progress.total.load(Ordering::Relaxed);
                        let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
                        me.set(&name, State::Pulling { done, total, rate });
                    }
                })
            };
            let result = self
                .retrying(&m.name, || async {
                    files::ensure(&self.http, spec, self.cfg.manager.reserve, &progress)
                        .await
                        .map_err(|e| (e.to_string(), e.is_permanent()))
                })
                .await;
            reporter.abort();
            match result {
                Ok(files::Fetched::Downloaded { bytes, .. }) => {
                    // `bytes` is what came over the network (less after a
                    // resume); the running total counts whole files.
                    total_done += progress.total.load(Ordering::Relaxed).max(bytes);
                    self.metrics.pulled_bytes(&m.name, bytes);
                }
                Ok(files::Fetched::AlreadyPresent) => {}
                Err((reason, permanent)) => {
                    return self.fail(
                        &m.name,
                        format!("{}: {reason}", spec.path.display()),
                        permanent,
                    )
                }
            }
        }
        self.metrics.pull_duration(started.elapsed());
        if let Some(url) = &m.verify_url {
            self.set(&m.name, State::Verifying);
            let ok = self.verify_openai(url).await;
            self.metrics.verified(&m.name, ok.is_ok());
            if let Err(reason) = ok {
                return self.fail(&m.name, reason, false);
            }
        }
        self.set(&m.name, State::Present);
        true
    }

    async fn verify_openai(&self, base: &str) -> Result<(), String> {
        let base = base.trim_end_matches('/');
        let models: serde_json::Value = self
            .http
            .get(format!("{base}/models"))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| format!("verify: cannot reach {base}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("verify: {base}/models: {e}"))?;
        let model = models
            .pointer("/data/0/id")
            .and_then(|v| v.as_str())
            .unwrap_or("default")
            .to_string();
        let resp = self
            .http
            .post(format!("{base}/chat/completions"))
            .json(&serde_json::json!({"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "Say OK."}]}))
            .timeout(self.cfg.ollama.verify_timeout)
            .send()
            .await
            .map_err(|e| format!("verify generation failed: {e}"))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("verify generation answered {}", resp.status()))
        }
    }
}
