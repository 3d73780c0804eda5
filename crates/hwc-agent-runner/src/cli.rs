//! The runner's one-shot commands: `policy check`, `policy explain`.
//!
//! They print for people (or JSON with `--json`) and return the exit code:
//! 0 when the file is valid or the action was judged, 2 when the policy
//! file is refused, so they fit in CI and in `ExecStartPre=`.

use crate::policy::{classify, shell, Decision, Policy, Proposal, Subject};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// `hwc-agent-runner policy …`.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Load a policy file and check every rule's examples.
    Check {
        /// The policy file.
        file: PathBuf,
    },
    /// Show what the policy decides for an action, and why.
    Explain {
        /// The policy file; the built-in policy when absent.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// The environment the action would run in.
        #[arg(long)]
        env: String,
        /// Judge it as if no rollback plan were recorded (a shell command
        /// whose rollback the model did not write).
        #[arg(long)]
        no_rollback: bool,
        /// Print the decision as JSON.
        #[arg(long)]
        json: bool,
        /// The action: one shell command line, or its words.
        #[arg(last = true, required = true)]
        action: Vec<String>,
    },
}

fn load(file: Option<&PathBuf>) -> Result<Policy, ExitCode> {
    let p = match file {
        Some(f) => Policy::load(f),
        None => Policy::built_in(),
    };
    p.map_err(|e| {
        eprintln!("hwc-agent-runner: {e}");
        ExitCode::from(2)
    })
}

/// Runs a `policy` subcommand.
pub fn policy(cmd: &PolicyCommand) -> ExitCode {
    match cmd {
        PolicyCommand::Check { file } => match load(Some(file)) {
            Ok(p) => {
                let examples: usize = p
                    .rules
                    .iter()
                    .map(|r| r.spec.matches.len() + r.spec.not_match.len())
                    .sum();
                println!(
                    "policy OK: {} rules, {examples} examples hold, environments: {}",
                    p.rules.len(),
                    p.environment_names().join(", ")
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        PolicyCommand::Explain {
            policy,
            env,
            no_rollback,
            json,
            action,
        } => {
            let p = match load(policy.as_ref()) {
                Ok(p) => p,
                Err(code) => return code,
            };
            let line = action_line(action);
            let d = classify(
                &p,
                env,
                &Proposal {
                    subject: Subject::Shell(&line),
                    has_rollback: !no_rollback,
                    claimed: None,
                },
            );
            if *json {
                match serde_json::to_string_pretty(&d) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("hwc-agent-runner: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", explain_text(&p, env, &line, &d));
            }
            ExitCode::SUCCESS
        }
    }
}

/// One argument is a command line as typed; several are its words.
fn action_line(action: &[String]) -> String {
    match action {
        [one] => one.clone(),
        words => words
            .iter()
            .map(|w| shell::quote(w))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// The decision for people.
pub fn explain_text(policy: &Policy, env: &str, line: &str, d: &Decision) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "action:   {line}");
    let _ = writeln!(out, "policy:   {} (environment {env})", policy.origin);
    let _ = writeln!(out, "decision: {} ({})", d.verdict, d.risk);
    let _ = writeln!(out, "rule:     {}", d.rule.as_deref().unwrap_or("(none)"));
    let _ = writeln!(out, "reason:   {}", d.reason);
    let _ = writeln!(
        out,
        "network:  {}",
        if d.network { "granted" } else { "none" }
    );
    if d.parts.len() > 1 {
        let _ = writeln!(out, "commands:");
        for p in &d.parts {
            let _ = writeln!(
                out,
                "  {:<4} {:<26} {}",
                if p.denied {
                    "deny".to_string()
                } else {
                    p.risk.to_string()
                },
                p.rule.as_deref().unwrap_or("(no rule)"),
                p.command
            );
        }
    }
    out
}

/// `hwc-agent-runner audit …`.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Walk the whole chain and every signed checkpoint; exit 1 at any break.
    Verify {
        /// The database; the `[store]` of `--config` when absent.
        #[arg(long)]
        database: Option<String>,
        /// The checkpoint key's public half (hex); derived from the
        /// configured key file when absent.
        #[arg(long)]
        public_key: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a new Ed25519 checkpoint key (the seed, hex) to FILE and print
    /// its public half.
    Keygen {
        /// Where to write it (created with mode 0600; never overwritten).
        file: PathBuf,
    },
}

/// Runs an `audit` subcommand.
pub fn audit(cmd: &AuditCommand, daemon: &hwc_ai_core::cli::DaemonArgs) -> ExitCode {
    match cmd {
        AuditCommand::Keygen { file } => {
            let key = crate::audit::CheckpointKey::generate("hwc-agent-runner");
            match crate::write_private(file, &key.seed_hex()) {
                Ok(()) => {
                    println!("{}", key.public_hex());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("hwc-agent-runner: {}: {e}", file.display());
                    ExitCode::from(2)
                }
            }
        }
        AuditCommand::Verify {
            database,
            public_key,
            json,
        } => {
            let cfg: crate::config::RunnerConfig =
                match hwc_ai_core::config::load(daemon.config.as_deref()) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("hwc-agent-runner: {e}");
                        return ExitCode::from(2);
                    }
                };
            let url = match database {
                Some(u) => u.clone(),
                None => match crate::store_url(&cfg) {
                    Ok(u) => u,
                    Err(e) => {
                        eprintln!("hwc-agent-runner: {e}");
                        return ExitCode::from(2);
                    }
                },
            };
            // A missing SQLite file is an error, never a new empty chain that
            // verifies (`audit verify` run without the unit's STATE_DIRECTORY).
            if let Some(path) = url.strip_prefix("sqlite://") {
                let path = path.split('?').next().unwrap_or(path);
                if !std::path::Path::new(path).exists() {
                    eprintln!("hwc-agent-runner: no audit database at {path}; pass --database, or run with the runner's STATE_DIRECTORY (e.g. STATE_DIRECTORY=/var/lib/hwc-ai/agent-runner)");
                    return ExitCode::from(2);
                }
            }
            let public = match public_key {
                Some(hexkey) => match hex::decode(hexkey.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok())
                {
                    Some(k) => Some(k),
                    None => {
                        eprintln!(
                            "hwc-agent-runner: --public-key is not a 64-digit hex Ed25519 key"
                        );
                        return ExitCode::from(2);
                    }
                },
                None => crate::checkpoint_key(&cfg)
                    .ok()
                    .map(|k| k.signing.verifying_key()),
            };
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("hwc-agent-runner: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let result = rt.block_on(async {
                let store = crate::store::Store::open(&url).await?;
                crate::audit::verify(&store, public.as_ref()).await
            });
            match result {
                Err(e) => {
                    eprintln!("hwc-agent-runner: {e}");
                    ExitCode::from(2)
                }
                Ok(v) => {
                    if *json {
                        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                    } else if v.ok() {
                        println!(
                            "audit OK: {} records in {}, head {}, {} signed checkpoints verified{}",
                            v.records,
                            crate::store::redact_url(&url),
                            v.head,
                            v.checkpoints,
                            if public.is_none() {
                                " (no key: checkpoints not checked)"
                            } else {
                                ""
                            }
                        );
                    } else {
                        println!("audit BROKEN: {} problems", v.breaks.len());
                        for b in &v.breaks {
                            println!("  record {}: {}", b.seq, b.problem);
                        }
                    }
                    if v.ok() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
            }
        }
    }
}
