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
