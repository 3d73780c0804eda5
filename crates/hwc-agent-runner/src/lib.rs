//! hwc-agent-runner: an operations agent that investigates and acts through
//! tools, every action gated by an R0-R3 policy before it runs.
//!
//! [`policy`] reduces every proposed action to the commands it would run and
//! decides its class, verdict and rule as a pure function; [`approval`]
//! binds approvals to the digest of the exact action; [`audit`] keeps the
//! hash-chained, checkpoint-signed record; [`agent`] is the loop that asks
//! the model (through the router, [`model`]), judges each tool call
//! ([`tools`]), waits for people, runs what may run (shell lines in the
//! [`sandbox`]), and writes the [`report`]. [`api`] is the HTTP contract,
//! [`store`] and [`repo`] the database (SQLite or PostgreSQL), [`ui`] the
//! approval page served beside the API.
//!
//! The gate, not the model's judgement, is what keeps a host safe:
//! open-weight models are weak at free-form terminal work, so nothing the
//! model says about risk lowers a class. docs/agent-runner.md is the
//! operator's guide; ADR 0009 says why shell lines are judged as a
//! deliberate subset of the shell language.

pub mod agent;
pub mod api;
pub mod approval;
pub mod audit;
pub mod cli;
pub mod config;
pub mod eval;
pub mod exec;
pub mod job;
pub mod knowledge;
pub mod metrics;
pub mod model;
pub mod policy;
pub mod redact;
pub mod repo;
pub mod report;
pub mod runner;
pub mod sandbox;
pub mod secret_files;
pub mod session;
pub mod status;
pub mod store;
pub mod tools;
pub mod ui;

use crate::audit::{Audit, CheckpointKey};
use crate::config::RunnerConfig;
use crate::metrics::RunnerMetrics;
use crate::model::ModelClient;
use crate::policy::Policy;
use crate::redact::Redactor;
use crate::runner::Runner;
use crate::store::Store;
use crate::tools::Toolbox;
use hwc_ai_core::auth::TokenAuth;
use hwc_ai_core::server::{self, Daemon};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// The daemon's name.
pub const NAME: &str = "hwc-agent-runner";

/// The OpenAPI document of the API, served at `/agent/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Why the runner could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The policy file.
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    /// The database.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A token, key or URL file.
    #[error(transparent)]
    Secret(#[from] hwc_ai_core::secret::SecretError),
    /// The checkpoint key.
    #[error(transparent)]
    Key(#[from] audit::KeyError),
    /// The state directory.
    #[error("state directory {path}: {message}")]
    State {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Listening or serving.
    #[error(transparent)]
    Listen(#[from] server::ServerError),
}

/// Every file of the configuration that holds a secret or the runner's own
/// records (keys, tokens, kubeconfigs, the SQLite store and its journal):
/// hidden from the shell sandbox wherever it lives, not only when it is in
/// the state or credentials directory.
pub fn secret_paths(cfg: &RunnerConfig) -> Vec<PathBuf> {
    let t = &cfg.tools;
    let mut files: Vec<PathBuf> = cfg.auth.token_files.clone();
    files.extend(cfg.auth.tokens.iter().map(|e| e.file.clone()));
    files.extend(
        [
            &cfg.audit.signing_key_file,
            &cfg.model.api_key_file,
            &cfg.store.url_file,
            &t.mcp.token_file,
            &t.ssh.key_file,
            &t.ssh.known_hosts,
        ]
        .into_iter()
        .flatten()
        .cloned(),
    );
    files.extend(t.kubernetes.clusters.values().map(|c| c.kubeconfig.clone()));
    files.extend(t.ci.pipelines.iter().map(|p| p.token_file.clone()));
    let mut out: Vec<PathBuf> = files
        .iter()
        .map(|f| hwc_ai_core::secret::resolve(f))
        .collect();
    if let Some(db) = cfg.store.url.strip_prefix("sqlite://") {
        let db = db.split('?').next().unwrap_or(db);
        for suffix in ["", "-wal", "-shm", "-journal"] {
            out.push(under_state(Path::new(&format!("{db}{suffix}"))));
        }
    }
    let knowledge = under_state(&t.knowledge.index);
    for suffix in ["", "-wal", "-shm"] {
        out.push(PathBuf::from(format!("{}{suffix}", knowledge.display())));
    }
    out
}

/// The state directory: `$STATE_DIRECTORY` under systemd, else `./state`.
pub fn state_dir() -> PathBuf {
    hwc_ai_core::state::directory().unwrap_or_else(|| PathBuf::from("state"))
}

fn under_state(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        state_dir().join(p)
    }
}

/// The store URL in force: `url_file`'s content, or `url` with a relative
/// SQLite path placed in the state directory.
pub fn store_url(cfg: &RunnerConfig) -> Result<String, StartError> {
    if let Some(f) = &cfg.store.url_file {
        return Ok(hwc_ai_core::secret::read_secret(f)?
            .expose()
            .trim()
            .to_string());
    }
    Ok(match cfg.store.url.strip_prefix("sqlite://") {
        Some(path) => store::sqlite_url(&under_state(Path::new(
            path.split('?').next().unwrap_or(path),
        ))),
        None => cfg.store.url.clone(),
    })
}

/// The host name records and job targets use.
pub fn host_name(cfg: &RunnerConfig) -> String {
    if !cfg.audit.host.is_empty() {
        return cfg.audit.host.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The policy in force.
pub fn load_policy(cfg: &RunnerConfig) -> Result<Policy, policy::PolicyError> {
    match &cfg.policy.file {
        Some(f) => Policy::load(f),
        None => Policy::built_in(),
    }
}

/// The checkpoint key: the configured credential, or one kept in the state
/// directory (created with mode 0600 on first start).
pub fn checkpoint_key(cfg: &RunnerConfig) -> Result<CheckpointKey, StartError> {
    if let Some(f) = &cfg.audit.signing_key_file {
        return Ok(CheckpointKey::load(
            &hwc_ai_core::secret::resolve(f),
            &cfg.audit.key_name,
        )?);
    }
    let path = state_dir().join("audit-signing.key");
    if !path.exists() {
        let key = CheckpointKey::generate(&cfg.audit.key_name);
        write_private(&path, &key.seed_hex()).map_err(|e| StartError::State {
            path: path.clone(),
            message: e.to_string(),
        })?;
        tracing::info!(public_key = %key.public_hex(), path = %path.display(), "created an audit checkpoint key; keep its public half to verify the audit elsewhere");
    }
    Ok(CheckpointKey::load(&path, &cfg.audit.key_name)?)
}

/// Writes `text` to a new file only its owner can read.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// What `--check-config` checks beyond the config's own rules: the policy
/// and its examples, every token and key file, the store URL.
pub fn check(cfg: &RunnerConfig) -> Result<String, StartError> {
    let policy = load_policy(cfg)?;
    cfg.auth.key_table(None)?;
    if let Some(f) = &cfg.model.api_key_file {
        hwc_ai_core::secret::read_secret(f)?;
    }
    if let Some(f) = &cfg.audit.signing_key_file {
        CheckpointKey::load(&hwc_ai_core::secret::resolve(f), &cfg.audit.key_name)?;
    }
    let url = store_url(cfg)?;
    Ok(format!(
        "policy {} ({} rules; environments {}), store {}, router {}, listening on {}",
        policy.origin,
        policy.rules.len(),
        policy.environment_names().join(", "),
        store::redact_url(&url),
        cfg.model.url,
        cfg.server.listen
    ))
}

/// The secrets the daemon holds, by name, for the redactor.
fn held_secrets(cfg: &RunnerConfig, url: &str, model_key: Option<&str>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(k) = model_key {
        out.push(("router-key".to_string(), k.to_string()));
    }
    for t in &cfg.auth.tokens {
        if let Ok(s) = hwc_ai_core::secret::read_secret(&t.file) {
            out.push(("runner-token".into(), s.expose().to_string()));
        }
    }
    for f in &cfg.auth.token_files {
        if let Ok(s) = hwc_ai_core::secret::read_secret(f) {
            out.push(("runner-token".into(), s.expose().to_string()));
        }
    }
    if let Some(pw) = url
        .split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, pw)| pw.to_string())
    {
        out.push(("store-password".into(), pw));
    }
    out
}

/// The runner as a daemon.
pub async fn daemon(cfg: RunnerConfig) -> Result<Daemon, StartError> {
    let policy = load_policy(&cfg)?;
    let url = store_url(&cfg)?;
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(state_dir()).map_err(|e| StartError::State {
            path: state_dir(),
            message: e.to_string(),
        })?;
    }
    let store = Store::open(&url).await?;
    let host = host_name(&cfg);
    let key = checkpoint_key(&cfg)?;
    let audit = Audit::new(store.clone(), &host, Some(key), cfg.audit.checkpoint_every);
    let model_key = match &cfg.model.api_key_file {
        Some(f) => Some(hwc_ai_core::secret::read_secret(f)?),
        None => None,
    };
    let redactor = Redactor::with_secrets(held_secrets(
        &cfg,
        &url,
        model_key.as_ref().map(|k| k.expose()),
    ));
    let knowledge = if cfg.tools.knowledge.paths.is_empty() {
        None
    } else {
        let path = match cfg.tools.knowledge.store_url.as_deref() {
            Some("store") => url.clone(),
            Some(u) => u.to_string(),
            None => under_state(&cfg.tools.knowledge.index)
                .display()
                .to_string(),
        };
        match knowledge::Knowledge::open(&cfg, &path, model_key.as_ref().map(|k| k.expose())).await
        {
            Ok(k) => Some(Arc::new(k)),
            Err(e) => {
                // The runner works without it; search_knowledge says why.
                let shown = match (path.find("://"), path.rfind('@')) {
                    (Some(a), Some(b)) if b > a => format!("{}***{}", &path[..a + 3], &path[b..]),
                    _ => path.clone(),
                };
                tracing::error!(index = %shown, error = %e, "knowledge index unavailable");
                None
            }
        }
    };
    let sandbox_status = sandbox::probe(&cfg.sandbox).await;
    if let Err(e) = &sandbox_status {
        tracing::warn!(error = %e, "the shell sandbox is unavailable; shell commands will be refused (fail closed)");
    }
    let mut daemon = Daemon::new(NAME, cfg.server.clone(), axum::Router::new());
    daemon.telemetry = cfg.telemetry.clone();
    let metrics = RunnerMetrics::register(&mut daemon.registry);
    let mut hidden = vec![state_dir()];
    if let Some(c) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        hidden.push(PathBuf::from(c));
    }
    hidden.extend(secret_paths(&cfg));
    let hidden: Vec<PathBuf> = hidden
        .into_iter()
        .filter_map(|p| p.canonicalize().ok())
        .collect();
    let workspaces = under_state(&cfg.tools.workspaces);
    let (events, _) = tokio::sync::broadcast::channel(1024);
    let runner = Arc::new(Runner {
        model: ModelClient::new(&cfg.model, model_key),
        toolbox: Toolbox::configured(&cfg.tools),
        redactor,
        host,
        metrics,
        clock: Arc::new(hwc_ai_core::clock::SystemClock),
        events,
        wake: Mutex::new(Default::default()),
        cancels: Mutex::new(Default::default()),
        slots: Arc::new(tokio::sync::Semaphore::new(cfg.limits.max_running_jobs)),
        systemd: Arc::new(hwc_ai_core::systemd::Systemd::default()),
        workspaces,
        hidden,
        sandbox_status: RwLock::new(sandbox_status),
        http: reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default(),
        header: hwc_ai_core::status::StatusHeader::new(
            NAME,
            env!("CARGO_PKG_VERSION"),
            status::STATUS_FORMAT,
        ),
        policy: RwLock::new(Arc::new(policy)),
        store,
        audit,
        cfg: cfg.clone(),
        draining: daemon.draining.clone(),
        knowledge: knowledge.clone(),
    });
    if let Some(k) = knowledge {
        let every = cfg.tools.knowledge.reindex_every;
        daemon
            .tasks
            .spawn_until_cancelled("knowledge-sync", async move {
                loop {
                    k.sync().await;
                    tokio::time::sleep(every).await;
                }
            });
    }
    let sched = runner.clone();
    daemon.tasks.spawn("agent-scheduler", move |cancel| {
        runner::schedule(sched, cancel)
    });
    let keeper = runner.clone();
    daemon
        .tasks
        .spawn("audit-checkpoints", move |cancel| async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(300)) => {}
                }
                if let Err(e) = keeper.audit.checkpoint_now(keeper.now_ms()).await {
                    tracing::warn!(error = %e, "audit checkpoint failed");
                }
            }
            // The last checkpoint covers everything written before the stop.
            if let Err(e) = keeper.audit.checkpoint_now(keeper.now_ms()).await {
                tracing::warn!(error = %e, "final audit checkpoint failed");
            }
        });
    if let Some(history) = cfg.eval.history.clone() {
        let eval = runner.metrics.eval.clone();
        daemon.tasks.spawn_until_cancelled("eval-metrics", async move {
            loop {
                match tokio::fs::read_to_string(&history).await {
                    Ok(text) => eval.load(&text),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(file = %history.display(), error = %e, "cannot read the eval history")
                    }
                }
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        });
    }
    let sweeper = runner.clone();
    daemon.tasks.spawn_until_cancelled("retention", async move {
        loop {
            let keep = sweeper.cfg.retention.tool_output.as_millis() as i64;
            match repo::trim_outputs(&sweeper.store, sweeper.now_ms() - keep).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(events = n, "tool output past the retention period removed")
                }
                Err(e) => tracing::warn!(error = %e, "retention sweep failed"),
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
    let auth = TokenAuth::load(&cfg.auth, None)?;
    daemon.api = api::routes(runner.clone(), &auth);
    let reloader = runner.clone();
    daemon.reload = Some(Box::new(move || {
        auth.reload_logged();
        match load_policy(&reloader.cfg) {
            Ok(p) => {
                tracing::info!(policy = %p.origin, rules = p.rules.len(), "policy reloaded");
                *hwc_ai_core::sync::write(&reloader.policy) = Arc::new(p);
            }
            Err(e) => {
                tracing::error!(error = %e, "policy not reloaded; keeping the policy in force")
            }
        }
    }));
    hwc_ai_core::notify::status(&format!("agent runner on {}", runner.host));
    Ok(daemon)
}
