//! `ssh {host, command}`: a command on a declared host (`[tools.ssh]`),
//! through the OpenSSH client with the host keys pinned in a known_hosts
//! file (`StrictHostKeyChecking=yes`: an unknown or changed key is a
//! refusal, never trust on first use), one key from a credential, batch
//! mode (no password prompt), connection and command timeouts, output
//! capped. The policy judges the command line like a local one, in the
//! host's environment (a `prod` host's commands are production's).

use super::{str_arg, Ctx, ItemKind, PlanSubject, Planned, Tool, ToolError, ToolOutput};
use crate::config::SshHost;
use crate::model::ToolSpec;
use serde_json::{json, Value};

/// The ssh tool.
pub struct Ssh;

fn host<'a>(ctx: &'a Ctx, name: &str) -> Result<&'a SshHost, ToolError> {
    let hosts = &ctx.tools.ssh.hosts;
    hosts.iter().find(|h| h.name == name).ok_or_else(|| {
        let known: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
        ToolError(if known.is_empty() {
            "no ssh hosts are declared on this runner ([[tools.ssh.hosts]])".into()
        } else {
            format!(
                "`{name}` is not a declared ssh host; the hosts are {}",
                known.join(", ")
            )
        })
    })
}

/// The OpenSSH client's argv for `command` on `h`: no config file, batch
/// mode, pinned host keys only, this key only.
pub fn argv(ctx: &Ctx, h: &SshHost, command: &str) -> Result<Vec<String>, ToolError> {
    let c = &ctx.tools.ssh;
    let (Some(known), Some(key)) = (&c.known_hosts, &c.key_file) else {
        return Err(ToolError(
            "[tools.ssh] needs known_hosts and key_file".into(),
        ));
    };
    let resolve = |p: &std::path::Path| hwc_ai_core::secret::resolve(p).display().to_string();
    let o = |kv: String| ["-o".to_string(), kv];
    let mut v = vec![super::program(&c.program), "-F".into(), "/dev/null".into()];
    for kv in [
        "BatchMode=yes".to_string(),
        "StrictHostKeyChecking=yes".into(),
        format!("UserKnownHostsFile={}", resolve(known)),
        "GlobalKnownHostsFile=/dev/null".into(),
        "IdentitiesOnly=yes".into(),
        "IdentityAgent=none".into(),
        "ForwardAgent=no".into(),
        "ClearAllForwardings=yes".into(),
        "PermitLocalCommand=no".into(),
        "UpdateHostKeys=no".into(),
        format!("ConnectTimeout={}", c.connect_timeout.as_secs().max(1)),
        "ServerAliveInterval=5".into(),
        "ServerAliveCountMax=3".into(),
        "LogLevel=ERROR".into(),
    ] {
        v.extend(o(kv));
    }
    v.extend([
        "-i".into(),
        resolve(key),
        "-p".into(),
        h.port.to_string(),
        "-l".into(),
        h.user.clone(),
        "--".into(),
        h.address.clone(),
        command.to_string(),
    ]);
    Ok(v)
}

#[async_trait::async_trait]
impl Tool for Ssh {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "ssh".into(),
            description: "Run a command on a declared remote host over SSH (its host key pinned). Judged like a local command, in that host's environment. For a change, give `rollback`: how to undo it.".into(),
            parameters: json!({"type": "object", "required": ["host", "command"], "properties": {
                "host": {"type": "string", "maxLength": 128},
                "command": {"type": "string", "maxLength": 8192},
                "rollback": {"type": "string", "maxLength": 4000}}}),
        }
    }

    async fn plan(&self, args: &Value, ctx: &Ctx) -> Result<Planned, ToolError> {
        let h = host(ctx, str_arg(args, "host")?)?;
        let command = str_arg(args, "command")?.trim();
        if command.is_empty() {
            return Err(ToolError("`command` is empty".into()));
        }
        let rollback = args["rollback"].as_str().filter(|r| !r.trim().is_empty());
        let mut norm = json!({"host": h.name, "command": command});
        if let Some(r) = rollback {
            norm["rollback"] = json!(r);
        }
        Ok(Planned {
            tool: "ssh".into(),
            arguments: norm,
            subject: PlanSubject::Shell(command.to_string()),
            target: format!("ssh:{}@{}:{}", h.user, h.address, h.port),
            rollback: rollback.map(|r| format!("(written by the model) {r}")),
            claimed: None,
            summary: format!("ssh {}: {command}", h.name),
            item: ItemKind::CommandExecution,
            network: false,
            call_id: None,
            environment: Some(h.environment.clone()),
        })
    }

    async fn run(&self, p: &Planned, ctx: &Ctx) -> Result<ToolOutput, ToolError> {
        let h = host(ctx, str_arg(&p.arguments, "host")?)?;
        let command = str_arg(&p.arguments, "command")?;
        let c = &ctx.tools.ssh;
        let mut inv = super::host_invocation(ctx, argv(ctx, h, command)?);
        inv.timeout = c.connect_timeout + c.command_timeout;
        inv.keep = c.max_output_bytes;
        let o = crate::exec::run(&inv).await.map_err(ToolError::new)?;
        let mut out = ToolOutput::from_outcome(&o);
        // 255 is ssh's own failure: say which, so the model does not read
        // it as the command's.
        if out.exit_code == Some(255) {
            out.text = format!(
                "ssh to {} ({}:{}) failed before or while running the command (a refused or changed host key, an unreachable host, a refused key): {}",
                h.name, h.address, h.port, out.text
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ToolsConfig;

    fn ctx() -> Ctx {
        let mut tools = ToolsConfig::default();
        tools.ssh.known_hosts = Some("/etc/hwc/known".into());
        tools.ssh.key_file = Some("/etc/hwc/key".into());
        tools.ssh.hosts = vec![SshHost {
            name: "db1".into(),
            address: "10.0.0.5".into(),
            port: 2222,
            user: "ops".into(),
            environment: "prod".into(),
        }];
        crate::tools::test_ctx(tools)
    }

    #[test]
    fn the_argv_pins_keys_and_ends_options_before_the_host() {
        let c = ctx();
        let v = argv(&c, &c.tools.ssh.hosts[0], "uptime").unwrap_or_default();
        let line = v.join(" ");
        for want in [
            "-F /dev/null",
            "StrictHostKeyChecking=yes",
            "UserKnownHostsFile=/etc/hwc/known",
            "GlobalKnownHostsFile=/dev/null",
            "BatchMode=yes",
            "-i /etc/hwc/key -p 2222 -l ops -- 10.0.0.5 uptime",
        ] {
            assert!(line.contains(want), "{want}: {line}");
        }
    }

    #[tokio::test]
    async fn plans_name_the_host_and_its_environment() {
        let c = ctx();
        let p = Ssh
            .plan(
                &json!({"host": "db1", "command": " systemctl status pg "}),
                &c,
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.environment.as_deref(), Some("prod"));
        assert_eq!(p.subject, PlanSubject::Shell("systemctl status pg".into()));
        assert_eq!(p.target, "ssh:ops@10.0.0.5:2222");
        let e = Ssh
            .plan(&json!({"host": "db2", "command": "uptime"}), &c)
            .await
            .unwrap_err();
        assert!(e.0.contains("the hosts are db1"), "{e}");
    }
}
