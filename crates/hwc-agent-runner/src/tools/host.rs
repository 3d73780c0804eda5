//! Host inspection (R0 by the policy: `systemctl status`, `list-units`,
//! the journal, disk/memory/sockets) and unit lifecycle over D-Bus
//! (`systemctl restart` and friends, R2 by the example policy, authorised
//! by the polkit rule the NixOS module writes from the policy).

use super::{
    program, run_host, str_arg, unit_name, Ctx, ItemKind, PlanSubject, Planned, Tool, ToolError,
    ToolOutput,
};
use crate::model::ToolSpec;
use hwc_ai_core::systemd::UnitVerb;
use serde_json::{json, Value};

fn planned(tool: &str, args: Value, words: Vec<String>, ctx: &Ctx, target: String) -> Planned {
    Planned {
        tool: tool.into(),
        arguments: args,
        summary: words.join(" "),
        subject: PlanSubject::Commands(vec![words]),
        target: format!("{}:{target}", ctx.host),
        rollback: None,
        claimed: None,
        item: ItemKind::CommandExecution,
        network: false,
        call_id: None,
        environment: None,
    }
}

fn words(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

/// `systemctl status UNIT`.
pub struct SystemctlStatus;

#[async_trait::async_trait]
impl Tool for SystemctlStatus {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "systemctl_status".into(),
            description: "Show a systemd unit's state, recent restarts and its last log lines (systemctl status).".into(),
            parameters: json!({"type": "object", "required": ["unit"], "properties": {
                "unit": {"type": "string", "maxLength": 255, "description": "unit name, e.g. ollama.service"}}}),
        }
    }

    async fn plan(&self, args: &Value, ctx: &Ctx) -> Result<Planned, ToolError> {
        let unit = unit_name(str_arg(args, "unit")?)?;
        Ok(planned(
            "systemctl_status",
            json!({"unit": unit}),
            words(&["systemctl", "status", &unit]),
            ctx,
            unit.clone(),
        ))
    }

    async fn run(&self, p: &Planned, ctx: &Ctx) -> Result<ToolOutput, ToolError> {
        let unit = str_arg(&p.arguments, "unit")?;
        let mut out = run_host(
            ctx,
            vec![
                program(&ctx.tools.systemctl),
                "status".into(),
                "--no-pager".into(),
                "--full".into(),
                "--lines=30".into(),
                "--".into(),
                unit.into(),
            ],
        )
        .await?;
        // 3 is "not running": still an answer.
        out.ok = matches!(out.exit_code, Some(0 | 3));
        Ok(out)
    }
}

/// `systemctl list-units`.
pub struct ListUnits;

#[async_trait::async_trait]
impl Tool for ListUnits {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "list_units".into(),
            description: "List systemd units and their states; failed_only lists the failed ones."
                .into(),
            parameters: json!({"type": "object", "properties": {"failed_only": {"type": "boolean"}}}),
        }
    }

    async fn plan(&self, args: &Value, ctx: &Ctx) -> Result<Planned, ToolError> {
        let failed = args["failed_only"].as_bool().unwrap_or(false);
        let mut w = words(&["systemctl", "list-units"]);
        if failed {
            w.push("--failed".into());
        }
        Ok(planned(
            "list_units",
            json!({"failed_only": failed}),
            w,
            ctx,
            "units".into(),
        ))
    }

    async fn run(&self, p: &Planned, ctx: &Ctx) -> Result<ToolOutput, ToolError> {
        let mut argv = vec![
            program(&ctx.tools.systemctl),
            "list-units".into(),
            "--no-pager".into(),
            "--plain".into(),
            "--no-legend".into(),
        ];
        if p.arguments["failed_only"].as_bool().unwrap_or(false) {
            argv.push("--failed".into());
        }
        run_host(ctx, argv).await
    }
}

/// `journalctl -u UNIT -n N`.
pub struct Journal;

fn safe_since(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || " :-+.".contains(c))
}

#[async_trait::async_trait]
impl Tool for Journal {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "journal".into(),
            description: "Read or search a unit's journal: the last `lines` entries, optionally within a time range (since/until: \"1 hour ago\", \"2026-12-01 10:00\"), matching a regular expression (grep) and at or above a priority.".into(),
            parameters: json!({"type": "object", "required": ["unit"], "properties": {
                "unit": {"type": "string", "maxLength": 255},
                "lines": {"type": "integer", "minimum": 1, "maximum": 5000},
                "since": {"type": "string", "maxLength": 40},
                "until": {"type": "string", "maxLength": 40},
                "grep": {"type": "string", "maxLength": 200, "description": "a regular expression the message must match (journalctl -g)"},
                "priority": {"type": "string", "enum": ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]}}}),
        }
    }

    async fn plan(&self, args: &Value, ctx: &Ctx) -> Result<Planned, ToolError> {
        let unit = unit_name(str_arg(args, "unit")?)?;
        let lines = args["lines"]
            .as_u64()
            .unwrap_or(100)
            .min(u64::from(ctx.tools.max_journal_lines));
        let mut norm = json!({"unit": unit, "lines": lines});
        let mut w = words(&["journalctl", "-u", &unit, "-n", &lines.to_string()]);
        for key in ["since", "until"] {
            if let Some(t) = args[key].as_str() {
                if !safe_since(t) {
                    return Err(ToolError(format!(
                        "`{key}` = {t:?} is not a time journalctl reads (letters, digits, spaces and :-+. only)"
                    )));
                }
                norm[key] = json!(t);
                w.extend([format!("--{key}"), t.to_string()]);
            }
        }
        if let Some(g) = args["grep"].as_str().filter(|g| !g.is_empty()) {
            if g.starts_with('-') || g.contains('\n') {
                return Err(ToolError(format!(
                    "`grep` = {g:?} must be one line and not start with -"
                )));
            }
            norm["grep"] = json!(g);
            w.extend(["-g".to_string(), g.to_string()]);
        }
        if let Some(p) = args["priority"].as_str() {
            norm["priority"] = json!(p);
            w.extend(["-p".to_string(), p.to_string()]);
        }
        Ok(planned("journal", norm, w, ctx, unit.clone()))
    }

    async fn run(&self, p: &Planned, ctx: &Ctx) -> Result<ToolOutput, ToolError> {
        let a = &p.arguments;
        let mut argv = vec![
            program(&ctx.tools.journalctl),
            "-u".into(),
            str_arg(a, "unit")?.into(),
            "-n".into(),
            a["lines"].as_u64().unwrap_or(100).to_string(),
            "--no-pager".into(),
            "-o".into(),
            "short-iso".into(),
        ];
        for key in ["since", "until"] {
            if let Some(t) = a[key].as_str() {
                argv.extend([format!("--{key}"), t.to_string()]);
            }
        }
        if let Some(g) = a["grep"].as_str() {
            argv.extend(["-g".to_string(), g.to_string()]);
        }
        if let Some(pr) = a["priority"].as_str() {
            argv.extend(["-p".to_string(), pr.to_string()]);
        }
        run_host(ctx, argv).await
    }
}

/// Disk, memory, sockets, uptime, processes.
pub struct HostFacts;

fn facts_argv(what: &str) -> Option<Vec<&'static str>> {
    Some(match what {
        "disk" => vec!["df", "-h", "-x", "tmpfs", "-x", "devtmpfs"],
        "memory" => vec!["free", "-m"],
        "sockets" => vec!["ss", "-ltnup"],
        "uptime" => vec!["uptime"],
        "processes" => vec![
            "ps",
            "-eo",
            "pid,ppid,user,pcpu,pmem,etime,args",
            "--sort=-pcpu",
        ],
        _ => return None,
    })
}

#[async_trait::async_trait]
impl Tool for HostFacts {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "host_facts".into(),
            description: "Facts about the host: disk (df), memory (free), sockets (ss -ltnup), uptime, processes (ps by CPU).".into(),
            parameters: json!({"type": "object", "required": ["what"], "properties": {
                "what": {"type": "string", "enum": ["disk", "memory", "sockets", "uptime", "processes"]}}}),
        }
    }

    async fn plan(&self, args: &Value, ctx: &Ctx) -> Result<Planned, ToolError> {
        let what = str_arg(args, "what")?;
        let argv = facts_argv(what).ok_or_else(|| ToolError(format!("unknown fact `{what}`")))?;
        Ok(planned(
            "host_facts",
            json!({"what": what}),
            words(&argv),
            ctx,
            what.into(),
        ))
    }

    async fn run(&self, p: &Planned, ctx: &Ctx) -> Result<ToolOutput, ToolError> {
        let what = str_arg(&p.arguments, "what")?;
        let argv = facts_argv(what).ok_or_else(|| ToolError(format!("unknown fact `{what}`")))?;
        run_host(ctx, argv.into_iter().map(String::from).collect()).await
    }
}

/// `systemctl start|stop|restart|reload UNIT` over D-Bus.
pub struct UnitControl;

fn verb(s: &str) -> Option<UnitVerb> {
    Some(match s {
        "start" => UnitVerb::Start,
        "stop" => UnitVerb::Stop,
        "restart" => UnitVerb::Restart,
        "reload" => UnitVerb::Reload,
        _ => return None,
    })
}

#[async_trait::async_trait]
impl Tool for UnitControl {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "systemctl".into(),
            description: "Start, stop, restart or reload a systemd unit (over D-Bus). Usually needs approval; the unit's state before is recorded as the rollback.".into(),
            parameters: json!({"type": "object", "required": ["verb", "unit"], "properties": {
                "verb": {"type": "string", "enum": ["restart", "start", "stop", "reload"]},
                "unit": {"type": "string", "maxLength": 255}}}),
        }
    }

    async fn plan(&self, args: &Value, ctx: &Ctx) -> Result<Planned, ToolError> {
        let v = str_arg(args, "verb")?;
        let unit = unit_name(str_arg(args, "unit")?)?;
        let uv = verb(v).ok_or_else(|| ToolError(format!("unknown verb `{v}`")))?;
        let state = ctx.systemd.unit_state(&unit).await;
        let rollback = match &state {
            Ok((active, sub)) => {
                let was_active = active == "active";
                match uv.undo(was_active) {
                    Some(undo) => format!(
                        "{unit} was {active} ({sub}) before; to undo: systemctl {} {unit}",
                        undo.as_str()
                    ),
                    None => format!(
                        "{unit} was {active} ({sub}) before; {v} leaves it in that state again, so there is nothing to undo beyond the interruption"
                    ),
                }
            }
            Err(e) => format!("the state of {unit} before could not be read ({e}); undo by hand"),
        };
        let mut p = planned(
            "systemctl",
            json!({"verb": v, "unit": unit}),
            words(&["systemctl", v, &unit]),
            ctx,
            unit.clone(),
        );
        p.rollback = Some(rollback);
        Ok(p)
    }

    async fn run(&self, p: &Planned, ctx: &Ctx) -> Result<ToolOutput, ToolError> {
        let v = str_arg(&p.arguments, "verb")?;
        let unit = str_arg(&p.arguments, "unit")?;
        let uv = verb(v).ok_or_else(|| ToolError(format!("unknown verb `{v}`")))?;
        let t0 = std::time::Instant::now();
        let r = ctx.systemd.change(uv, unit).await;
        // Wait briefly for the job to settle so the model sees the outcome.
        let mut state = String::new();
        for _ in 0..20 {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            if let Ok((a, s)) = ctx.systemd.unit_state(unit).await {
                state = format!("{a} ({s})");
                if a != "activating" && a != "deactivating" && a != "reloading" {
                    break;
                }
            }
        }
        let (ok, text) = match r {
            Ok(job) => (
                true,
                format!("systemctl {v} {unit}: queued as {job}; the unit is now {state}"),
            ),
            Err(e) => (false, format!("systemctl {v} {unit} failed: {e}")),
        };
        Ok(ToolOutput {
            exit_code: Some(if ok { 0 } else { 1 }),
            ..ToolOutput::from_text(text, ok, t0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn journal_searches_are_bounded_ranges() {
        let ctx = crate::tools::test_ctx(Default::default());
        let p = Journal
            .plan(
                &json!({"unit": "ollama", "lines": 99999, "since": "2026-12-01 10:00", "until": "1 hour ago", "grep": "CUDA (error|out of memory)"}),
                &ctx,
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            p.summary,
            "journalctl -u ollama.service -n 500 --since 2026-12-01 10:00 --until 1 hour ago -g CUDA (error|out of memory)"
        );
        for (args, want) in [
            (
                json!({"unit": "x", "until": "$(id)"}),
                "`until` = \"$(id)\" is not a time",
            ),
            (
                json!({"unit": "x", "grep": "--output=json"}),
                "must be one line and not start with -",
            ),
        ] {
            let e = Journal.plan(&args, &ctx).await.unwrap_err();
            assert!(e.0.contains(want), "{e}");
        }
    }
}
