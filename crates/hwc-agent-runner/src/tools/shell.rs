//! A shell line in the sandbox ([`crate::sandbox`]). The policy judges the
//! line itself (every command in it); the model may add a rollback plan,
//! which is shown to the approver, and a risk class, which can only raise
//! the policy's. Network only where the deciding rule grants it.

use super::{str_arg, Ctx, ItemKind, PlanSubject, Planned, Tool, ToolError, ToolOutput};
use crate::model::ToolSpec;
use crate::policy::Risk;
use crate::sandbox::{self, ShellRun};
use serde_json::{json, Value};
use std::time::Duration;

/// The sandboxed shell.
pub struct Shell;

fn claimed(args: &Value) -> Option<Risk> {
    match args["risk"].as_str()? {
        "R0" => Some(Risk::R0),
        "R1" => Some(Risk::R1),
        "R2" => Some(Risk::R2),
        "R3" => Some(Risk::R3),
        _ => None,
    }
}

#[async_trait::async_trait]
impl Tool for Shell {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "shell".into(),
            description: "Run a shell command line in a sandbox: read-only system, the workspace writable, no network unless policy grants it. For a change, give `rollback`: how to undo it. Plain commands only: no $VAR, $(...), backticks or shell keywords.".into(),
            parameters: json!({"type": "object", "required": ["command"], "properties": {
                "command": {"type": "string", "maxLength": 8192},
                "timeout_s": {"type": "integer", "minimum": 1, "maximum": 1800},
                "rollback": {"type": "string", "maxLength": 4000},
                "risk": {"type": "string", "enum": ["R0", "R1", "R2", "R3"]}}}),
        }
    }

    async fn plan(&self, args: &Value, ctx: &Ctx) -> Result<Planned, ToolError> {
        let command = str_arg(args, "command")?.trim();
        if command.is_empty() {
            return Err(ToolError("`command` is empty".into()));
        }
        let timeout = args["timeout_s"]
            .as_u64()
            .unwrap_or(ctx.sandbox.timeout.as_secs())
            .min(ctx.sandbox.max_timeout.as_secs());
        let rollback = args["rollback"].as_str().filter(|r| !r.trim().is_empty());
        let mut norm = json!({"command": command, "timeout_s": timeout});
        if let Some(r) = rollback {
            norm["rollback"] = json!(r);
        }
        if let Some(r) = args["risk"].as_str() {
            norm["risk"] = json!(r);
        }
        Ok(Planned {
            tool: "shell".into(),
            claimed: claimed(args),
            arguments: norm,
            subject: PlanSubject::Shell(command.to_string()),
            target: format!("{}:{}", ctx.host, ctx.workspace.display()),
            rollback: rollback.map(|r| format!("(written by the model) {r}")),
            summary: command.to_string(),
            item: ItemKind::CommandExecution,
            network: false,
            call_id: None,
            environment: None,
        })
    }

    async fn run(&self, p: &Planned, ctx: &Ctx) -> Result<ToolOutput, ToolError> {
        let line = str_arg(&p.arguments, "command")?;
        let timeout = Duration::from_secs(p.arguments["timeout_s"].as_u64().unwrap_or(60));
        let o = sandbox::run(
            &ctx.sandbox,
            &ShellRun {
                line,
                workspace: &ctx.workspace,
                network: p.network,
                timeout,
            },
            &ctx.hidden,
        )
        .await
        .map_err(ToolError::new)?;
        Ok(ToolOutput::from_outcome(&o))
    }
}
