//! git in the job's worktree: status, diff, log, show, branch, add, commit,
//! push. Hooks, fsmonitor, external diff drivers and `ext::` transports
//! are switched off for every command, and options that make git run a
//! program (`--upload-pack`, `--receive-pack`, `--exec`) or leave the
//! worktree (`--git-dir`, `--work-tree`, `-C`) are refused, so the words
//! the policy judges are all that runs. A commit's rollback is the HEAD
//! before it; a push's is the remote ref before it.

use super::{program, Ctx, ItemKind, PlanSubject, Planned, Tool, ToolError, ToolOutput};
use crate::model::ToolSpec;
use serde_json::{json, Value};

const COMMANDS: &[&str] = &[
    "status", "diff", "log", "show", "branch", "add", "commit", "push", "revert",
];

const REFUSED: &[&str] = &[
    "--upload-pack",
    "--receive-pack",
    "--exec",
    "--git-dir",
    "--work-tree",
    "--namespace",
    "--output",
    "--ext-diff",
    "--textconv",
    "-C",
    "-c",
    "--config",
    "--config-env",
    // Read or write files the agent names, outside the worktree too.
    "--no-index",
    "--file",
    "--template",
    "--pathspec-from-file",
    "--orderfile",
    "--output-directory",
];

/// Why `arg` may not be passed to git, if it may not.
pub fn refused_arg(arg: &str) -> Option<&'static str> {
    let long = REFUSED
        .iter()
        .copied()
        .find(|r| arg == *r || (r.starts_with("--") && arg.starts_with(&format!("{r}="))));
    long.or_else(|| {
        let cluster = arg.strip_prefix('-').filter(|c| !c.starts_with('-'))?;
        let flag = cluster
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .find(|c| REFUSED_SHORT.contains(c))?;
        Some(match flag {
            'F' => "-F",
            't' => "-t",
            _ => "-O",
        })
    })
}

fn base_argv(ctx: &Ctx) -> Vec<String> {
    [
        program(&ctx.tools.git),
        "-c".into(),
        "core.hooksPath=/dev/null".into(),
        "-c".into(),
        "core.fsmonitor=false".into(),
        "-c".into(),
        "protocol.ext.allow=never".into(),
        "-c".into(),
        "core.pager=cat".into(),
        // The agent's commits say they are the agent's (the audit says
        // who approved them); a runner's user has no identity of its own,
        // and git refuses to commit without one.
        "-c".into(),
        format!("user.name={}", ctx.tools.git_author_name),
        "-c".into(),
        format!("user.email={}", git_author_email(ctx)),
        // No editor: a command that would open one fails instead of hanging.
        "-c".into(),
        "core.editor=false".into(),
        "-c".into(),
        "sequence.editor=false".into(),
    ]
    .into_iter()
    .chain(repository_args(ctx))
    .chain(["-C".into(), ctx.workspace.display().to_string()])
    .collect()
}

/// `--git-dir` and `--work-tree` for host-side git in the job's workspace:
/// the git directory from the repository's records, never the one the
/// workspace's `.git` file names ([`Ctx::git_dir`]); without a repository,
/// one that does not exist (git then works outside any repository, as
/// `git apply` does like patch).
pub fn repository_args(ctx: &Ctx) -> [String; 2] {
    [
        format!(
            "--git-dir={}",
            ctx.git_dir
                .as_deref()
                .unwrap_or(std::path::Path::new("/nonexistent/hwc-agent-runner"))
                .display()
        ),
        format!("--work-tree={}", ctx.workspace.display()),
    ]
}

/// Short options (alone or in a cluster such as `-aF`) that read or write a
/// file the agent names: `commit -F`/`-t`, `diff -O`.
const REFUSED_SHORT: &[char] = &['F', 't', 'O'];

/// `[tools] git_author_email`, or `hwc-agent-runner@HOST`.
fn git_author_email(ctx: &Ctx) -> String {
    ctx.tools
        .git_author_email
        .clone()
        .unwrap_or_else(|| format!("hwc-agent-runner@{}", ctx.host))
}

async fn git_text(ctx: &Ctx, args: &[&str]) -> Option<String> {
    let mut argv = base_argv(ctx);
    argv.extend(args.iter().map(|s| s.to_string()));
    let o = crate::exec::run(&super::host_invocation(ctx, argv))
        .await
        .ok()?;
    o.success()
        .then(|| String::from_utf8_lossy(&o.stdout.head).trim().to_string())
}

/// git.
pub struct Git;

#[async_trait::async_trait]
impl Tool for Git {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "git".into(),
            description: "Run git in the job's worktree: status, diff, log, show, branch, add, commit, revert, push (push usually needs approval).".into(),
            parameters: json!({"type": "object", "required": ["command"], "properties": {
                "command": {"type": "string", "enum": COMMANDS},
                "args": {"type": "array", "items": {"type": "string", "maxLength": 1024}, "maxItems": 64}}}),
        }
    }

    async fn plan(&self, args: &Value, ctx: &Ctx) -> Result<Planned, ToolError> {
        let command = super::str_arg(args, "command")?;
        if !COMMANDS.contains(&command) {
            return Err(ToolError(format!("git {command} is not offered")));
        }

        let list: Vec<String> = args["args"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(bad) = list.iter().find_map(|a| refused_arg(a).map(|r| (a, r))) {
            return Err(ToolError(format!(
                "git argument `{}` is refused ({} makes git run a program or leave the worktree)",
                bad.0, bad.1
            )));
        }
        if ctx.git_dir.is_none() {
            return Err(ToolError(
                "this job has no repository: the git tool works in the job's worktree of a declared repository (start the job with `repo`)".into(),
            ));
        }
        let rollback = match command {
            "commit" | "revert" => git_text(ctx, &["rev-parse", "--verify", "-q", "HEAD"])
                .await
                .map(|head| format!("git reset --soft {head} (HEAD before the {command})"))
                .or(Some("the first commit: git update-ref -d HEAD".into())),
            "add" => Some("git reset -q -- <the same paths>".into()),
            "push" => {
                let pos: Vec<&String> = list.iter().filter(|a| !a.starts_with('-')).collect();
                let remote = pos.first().map_or("origin", |s| s.as_str());
                let branch = pos
                    .get(1)
                    .map(|s| s.rsplit(':').next().unwrap_or(s).to_string())
                    .or(git_text(ctx, &["rev-parse", "--abbrev-ref", "HEAD"]).await)
                    .unwrap_or_default();
                let before = git_text(
                    ctx,
                    &[
                        "rev-parse",
                        "--verify",
                        "-q",
                        &format!("refs/remotes/{remote}/{branch}"),
                    ],
                )
                .await;
                Some(match before {
                    Some(sha) => format!(
                        "git push --force-with-lease {remote} {sha}:{branch} ({remote}/{branch} was {sha} before)"
                    ),
                    None => format!("git push {remote} --delete {branch} (it did not exist on {remote} before)"),
                })
            }
            "branch" if !list.is_empty() && !list[0].starts_with('-') => {
                Some(format!("git branch -D {}", list[0]))
            }
            _ => None,
        };
        let mut words = vec!["git".to_string(), command.to_string()];
        words.extend(list.iter().cloned());
        Ok(Planned {
            tool: "git".into(),
            arguments: json!({"command": command, "args": list}),
            summary: words.join(" "),
            subject: PlanSubject::Commands(vec![words]),
            target: format!("{}:{}", ctx.host, ctx.workspace.display()),
            rollback,
            claimed: None,
            item: ItemKind::CommandExecution,
            network: false,
            call_id: None,
            environment: None,
        })
    }

    async fn run(&self, p: &Planned, ctx: &Ctx) -> Result<ToolOutput, ToolError> {
        let command = super::str_arg(&p.arguments, "command")?;
        let mut argv = base_argv(ctx);
        argv.push(command.into());
        if matches!(command, "diff" | "log" | "show") {
            argv.extend([
                "--no-ext-diff".to_string(),
                "--no-textconv".to_string(),
                "--no-color".to_string(),
            ]);
        }
        for a in p.arguments["args"].as_array().into_iter().flatten() {
            if let Some(s) = a.as_str() {
                argv.push(s.to_string());
            }
        }
        super::run_host(ctx, argv).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_that_run_programs_are_refused() {
        for bad in [
            "--no-index",
            "-F",
            "-aF/etc/shadow",
            "--file=/x",
            "-t",
            "-O/root/key",
            "--upload-pack=x",
            "--receive-pack",
            "--exec=sh",
            "-C",
            "--git-dir=/",
            "-c",
        ] {
            assert!(refused_arg(bad).is_some(), "{bad}");
        }
        for good in [
            "origin",
            "main",
            "-m",
            "--oneline",
            "--stat",
            "--cached",
            "-n5",
        ] {
            assert!(refused_arg(good).is_none(), "{good}");
        }
    }
}
