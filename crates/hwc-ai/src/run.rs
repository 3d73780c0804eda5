//! Each command end to end: load the configuration, ask the daemon,
//! print, and the exit code: 0 done and all well, 1 something is down or
//! the daemon refused, 2 the configuration or the command line is wrong.

use crate::cli::{Cli, Command, JobsCommand, McpCommand, ModelsCommand, RouteCommand};
use crate::client::{Client, ClientError};
use crate::config::{CliConfig, ConfigError};
use crate::fleet::{self, Daemon};
use crate::render::{self, paint};
use crate::{jobs, mcp, models, status};
use anstream::{eprint, eprintln, print, println};
use clap::CommandFactory;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

/// Why a command did not do its job.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The CLI's configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A daemon.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The operator's intent is not clear enough to act on.
    #[error("{0}")]
    Refused(String),
    /// Writing the output.
    #[error("cannot write: {0}")]
    Io(#[from] std::io::Error),
}

impl RunError {
    fn code(&self) -> ExitCode {
        match self {
            RunError::Config(_) => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }
}

fn client(cfg: &CliConfig, d: Daemon) -> Result<Client, RunError> {
    Ok(Client::new(cfg.target(d)?, &cfg.path.display().to_string()))
}

fn print_json(v: &impl serde::Serialize) -> Result<(), RunError> {
    let text = serde_json::to_string_pretty(v).map_err(std::io::Error::other)?;
    println!("{text}");
    Ok(())
}

/// Runs `cli` and returns the exit code (errors printed to stderr).
pub async fn run(cli: Cli) -> ExitCode {
    match dispatch(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{} {e}", paint(render::BAD, "hwc-ai:"));
            e.code()
        }
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode, RunError> {
    let json = cli.json;
    match cli.command {
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "hwc-ai", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            std::io::stdout().write_all(&out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy { command } => Ok(hwc_agent_runner::cli::policy(&command)),
        Command::Audit {
            runner_config,
            command,
        } => {
            let args = hwc_ai_core::cli::DaemonArgs {
                config: runner_config.exists().then_some(runner_config),
                check_config: false,
            };
            Ok(hwc_agent_runner::cli::audit(&command, &args))
        }
        Command::Status => {
            let cfg = CliConfig::load()?;
            let entries = status::collect(&cfg).await?;
            let ok = entries.iter().all(|e| status::problems(e).is_empty());
            if json {
                print_json(&status::to_json(&entries))?;
            } else {
                print!("{}", status::render(&entries, render::now()));
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Models { command } => {
            let cfg = CliConfig::load()?;
            let c = client(&cfg, fleet::MANAGER)?;
            models_cmd(
                &c,
                command.unwrap_or(ModelsCommand::List { watch: false }),
                json,
            )
            .await
        }
        Command::Mcp {
            command: McpCommand::Servers,
        } => {
            let cfg = CliConfig::load()?;
            let list = mcp::servers(&client(&cfg, fleet::BRIDGE)?).await?;
            if json {
                print_json(&list)?;
            } else {
                print!("{}", mcp::render(&list));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Jobs { command } => {
            let cfg = CliConfig::load()?;
            jobs_cmd(&client(&cfg, fleet::RUNNER)?, command, json).await
        }
        Command::Route {
            command:
                RouteCommand::Explain {
                    model,
                    prompt,
                    tools,
                    local_only,
                    escalate,
                    endpoint,
                    request,
                },
        } => {
            let cfg = CliConfig::load()?;
            let c = client(&cfg, fleet::ROUTER)?;
            let body = match request {
                Some(f) => {
                    let text = std::fs::read_to_string(&f)?;
                    serde_json::from_str(&text).map_err(|e| {
                        RunError::Refused(format!("{} is not JSON: {e}", f.display()))
                    })?
                }
                None => crate::route::request_body(&endpoint, &model, &prompt, tools),
            };
            let mut req = c
                .post(&format!("/v1/route/explain?endpoint={endpoint}"))
                .json(&body);
            if local_only {
                req = req.header("x-hwc-privacy", "local-only");
            }
            if escalate {
                req = req.header("x-hwc-escalate", "strong");
            }
            let resp = c.send(req).await?;
            let v: serde_json::Value = resp.json().await.map_err(|e| {
                RunError::Refused(format!("the router's answer does not parse: {e}"))
            })?;
            if json {
                print_json(&v)?;
            } else {
                print!("{}", crate::route::render(&v));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn models_cmd(c: &Client, cmd: ModelsCommand, json: bool) -> Result<ExitCode, RunError> {
    match cmd {
        ModelsCommand::List { watch } => {
            let s = models::status(c).await?;
            if watch && !json && std::io::stdout().is_terminal() {
                watch_pulls(c).await?;
            }
            let s = if watch { models::status(c).await? } else { s };
            if json {
                print_json(&s.body)?;
            } else {
                print!("{}", models::render(&s.body));
            }
            let failed = s
                .body
                .models
                .iter()
                .any(|m| matches!(m.state, hwc_model_manager::reconcile::State::Failed { .. }));
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        ModelsCommand::Plan => {
            let v: serde_json::Value = c.get_json("/plan").await?;
            if json {
                print_json(&v)?;
            } else {
                for l in v["lines"].as_array().into_iter().flatten() {
                    println!("{}", l.as_str().unwrap_or(""));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Reconcile { no_wait } => {
            let v = models::reconcile(c).await?;
            if json {
                print_json(&v)?;
                return Ok(ExitCode::SUCCESS);
            }
            println!("reconciling; the plan:");
            for a in v["plan"].as_array().into_iter().flatten() {
                println!(
                    "  {} {}",
                    a["action"].as_str().unwrap_or("?"),
                    a["model"].as_str().unwrap_or("")
                );
            }
            if !no_wait {
                watch_pulls(c).await?;
                let s = models::status(c).await?;
                print!("{}", models::render(&s.body));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Progress bars, one per model being pulled, until none is.
async fn watch_pulls(c: &Client) -> Result<(), RunError> {
    use hwc_model_manager::reconcile::State;
    use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let multi = MultiProgress::with_draw_target(target);
    let style = ProgressStyle::with_template(
        "{prefix:20} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let mut bars: std::collections::BTreeMap<String, ProgressBar> = Default::default();
    // A reconcile just asked for may not show as pulling on the first look.
    let mut idle_looks = 0;
    loop {
        let s = models::status(c).await?.body;
        for m in &s.models {
            let bar = bars.entry(m.name.clone()).or_insert_with(|| {
                let b = multi.add(ProgressBar::new(0));
                b.set_style(style.clone());
                b.set_prefix(m.name.clone());
                b
            });
            match &m.state {
                State::Pulling { done, total, .. } => {
                    bar.set_length(*total);
                    bar.set_position(*done);
                }
                other => {
                    let (word, detail) = models::state_of(other);
                    bar.set_message(format!("{word} {detail}"));
                    if matches!(other, State::Present | State::Failed { .. }) {
                        bar.finish();
                    }
                }
            }
        }
        if models::busy(&s) {
            idle_looks = 0;
        } else {
            idle_looks += 1;
            if idle_looks >= 2 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for b in bars.values() {
        b.finish_and_clear();
    }
    Ok(())
}

async fn jobs_cmd(c: &Client, cmd: JobsCommand, json: bool) -> Result<ExitCode, RunError> {
    match cmd {
        JobsCommand::List { state, limit } => {
            let list = jobs::list(c, state.as_deref(), limit).await?;
            if json {
                print_json(&list)?;
            } else {
                print!(
                    "{}",
                    jobs::render_list(&list, (render::now() * 1000.0) as i64)
                );
            }
        }
        JobsCommand::Show { id } => {
            let j = jobs::show(c, &id).await?;
            if json {
                print_json(&j)?;
            } else {
                print!("{}", jobs::render_show(&j));
            }
        }
        JobsCommand::Approve {
            id,
            comment,
            digest,
            yes,
        } => {
            let j = jobs::show(c, &id).await?;
            let Some(p) = &j.pending else {
                return Err(RunError::Refused(format!(
                    "job {id} is not waiting for approval (it is {})",
                    render::wire(&j.state)
                )));
            };
            let current = p["digest"].as_str().unwrap_or("").to_string();
            if let Some(d) = &digest {
                if *d != current {
                    return Err(RunError::Refused(format!(
                        "the action job {id} waits on is not the one you saw: its digest is now {current}; run hwc-ai jobs show {id} again"
                    )));
                }
            }
            if !json {
                print!("{}", jobs::render_pending(p));
            }
            if digest.is_none() && !yes {
                if !std::io::stdin().is_terminal() {
                    return Err(RunError::Refused(format!(
                        "not on a terminal, so nothing asks you to confirm: pass --digest {current} (what hwc-ai jobs show {id} prints) or --yes"
                    )));
                }
                eprint!(
                    "approve this {} action? [y/N] ",
                    p["risk"].as_str().unwrap_or("")
                );
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    return Err(RunError::Refused("not approved".into()));
                }
            }
            let v = jobs::approve(c, &id, &current, &comment).await?;
            if json {
                print_json(&v)?;
            } else {
                println!("{}", approval_outcome(&v));
            }
        }
        JobsCommand::Reject { id, comment } => {
            let v = jobs::reject(c, &id, &comment).await?;
            if json {
                print_json(&v)?;
            } else {
                println!("rejected; the job goes on without that action");
            }
        }
        JobsCommand::Cancel { id } => {
            let v = jobs::cancel(c, &id).await?;
            if json {
                print_json(&v)?;
            } else {
                println!("cancel asked; hwc-ai jobs follow {id} shows it end");
            }
        }
        JobsCommand::Report { id, markdown } => {
            let text = jobs::report(c, &id, markdown).await?;
            if markdown || json {
                println!("{}", text.trim_end());
            } else {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                println!("{}", report_summary(&v));
            }
        }
        JobsCommand::Follow { id, after } => {
            let tty = std::io::stdout().is_terminal() && !json;
            let spinner = tty.then(|| {
                let s = indicatif::ProgressBar::new_spinner();
                s.enable_steady_tick(Duration::from_millis(120));
                s.set_message("following…");
                s
            });
            let end = jobs::follow(c, &id, after, |ev| {
                let line = if json {
                    ev.to_string()
                } else {
                    jobs::event_line(ev)
                };
                match &spinner {
                    Some(s) => {
                        s.println(line);
                        if ev["type"] == "job.state" {
                            s.set_message(ev["data"]["state"].as_str().unwrap_or("").to_string());
                        }
                    }
                    None => println!("{line}"),
                }
            })
            .await?;
            if let Some(s) = spinner {
                s.finish_and_clear();
            }
            return Ok(if end == "completed" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What the runner said to an approval, for a person.
pub fn approval_outcome(v: &serde_json::Value) -> String {
    if v["granted"] == serde_json::json!(true) {
        return "approved; the job goes on".into();
    }
    match v
        .pointer("/standing/waiting/more")
        .and_then(serde_json::Value::as_u64)
    {
        Some(more) => {
            format!("approval recorded; it waits for {more} more, from a different approver")
        }
        None => format!("recorded: {}", v["standing"]),
    }
}

/// A report's findings, for a person.
pub fn report_summary(v: &serde_json::Value) -> String {
    let mut out = String::new();
    if let Some(s) = v["summary"].as_str() {
        out.push_str(s);
        out.push('\n');
    }
    for f in v["findings"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "- {}\n",
            f["text"]
                .as_str()
                .or_else(|| f.as_str())
                .unwrap_or(&f.to_string())
        ));
    }
    if let Some(e) = v["evidence_completeness"].as_f64() {
        out.push_str(&format!("evidence completeness {:.0} %", e * 100.0));
    }
    out.trim_end().to_string()
}
