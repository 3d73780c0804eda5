//! Files in the job's workspace: read, search, write, apply a unified diff.
//! Paths are relative to the workspace; `..`, absolute paths elsewhere and
//! symlinks that lead out are refused before the policy sees the call, so
//! the policy's `file write PATH` words always name a path inside. A write
//! records the reverse patch as its rollback before it happens; a patch's
//! rollback is the same patch applied in reverse.

use super::{program, str_arg, Ctx, ItemKind, PlanSubject, Planned, Tool, ToolError, ToolOutput};
use crate::model::ToolSpec;
use serde_json::{json, Value};
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

/// `rel` resolved inside `ws`: (absolute path, normalised relative path).
pub fn resolve(ws: &Path, rel: &str) -> Result<(PathBuf, String), ToolError> {
    let p = Path::new(rel);
    let rel_path = if p.is_absolute() {
        p.strip_prefix(ws)
            .map_err(|_| {
                ToolError(format!(
                    "`{rel}` is outside the workspace; use a path relative to it"
                ))
            })?
            .to_path_buf()
    } else {
        p.to_path_buf()
    };
    let mut norm = PathBuf::new();
    for c in rel_path.components() {
        match c {
            Component::Normal(x) => norm.push(x),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(ToolError(format!(
                    "`{rel}` leaves the workspace (`..` is not allowed)"
                )))
            }
        }
    }
    let abs = ws.join(&norm);
    // A symlink anywhere on the way must not lead out.
    let ws_real = ws.canonicalize().map_err(ToolError::new)?;
    let mut probe = abs.clone();
    while !probe.exists() {
        if !probe.pop() {
            break;
        }
    }
    let real = probe.canonicalize().map_err(ToolError::new)?;
    if !real.starts_with(&ws_real) {
        return Err(ToolError(format!(
            "`{rel}` resolves outside the workspace (through a symlink)"
        )));
    }
    let shown = norm.display().to_string();
    Ok((abs, if shown.is_empty() { ".".into() } else { shown }))
}

fn file_plan(
    tool: &str,
    args: Value,
    verb: &str,
    paths: Vec<String>,
    ctx: &Ctx,
    item: ItemKind,
) -> Planned {
    Planned {
        tool: tool.into(),
        arguments: args,
        summary: format!("file {verb} {}", paths.join(" ")),
        subject: PlanSubject::Commands(
            paths
                .iter()
                .map(|p| vec!["file".into(), verb.into(), p.clone()])
                .collect(),
        ),
        target: format!("{}:{}", ctx.host, ctx.workspace.display()),
        rollback: None,
        claimed: None,
        item,
        network: false,
        call_id: None,
        environment: None,
    }
}

/// Reads a file.
pub struct ReadFile;

#[async_trait::async_trait]
impl Tool for ReadFile {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "read_file".into(),
            description: "Read a text file in the workspace, from start_line (1-based) for at most max_lines lines.".into(),
            parameters: json!({"type": "object", "required": ["path"], "properties": {
                "path": {"type": "string", "maxLength": 1024},
                "start_line": {"type": "integer", "minimum": 1},
                "max_lines": {"type": "integer", "minimum": 1, "maximum": 5000}}}),
        }
    }

    async fn plan(&self, args: &Value, ctx: &Ctx) -> Result<Planned, ToolError> {
        let (_, rel) = resolve(&ctx.workspace, str_arg(args, "path")?)?;
        let start = args["start_line"].as_u64().unwrap_or(1);
        let max = args["max_lines"].as_u64().unwrap_or(400);
        Ok(file_plan(
            "read_file",
            json!({"path": rel, "start_line": start, "max_lines": max}),
            "read",
            vec![rel],
            ctx,
            ItemKind::ToolCall,
        ))
    }

    async fn run(&self, p: &Planned, ctx: &Ctx) -> Result<ToolOutput, ToolError> {
        let t0 = Instant::now();
        let (abs, rel) = resolve(&ctx.workspace, str_arg(&p.arguments, "path")?)?;
        let bytes = tokio::fs::read(&abs)
            .await
            .map_err(|e| ToolError(format!("cannot read {rel}: {e}")))?;
        let text = String::from_utf8_lossy(&bytes);
        let start = p.arguments["start_line"].as_u64().unwrap_or(1) as usize;
        let max = p.arguments["max_lines"].as_u64().unwrap_or(400) as usize;
        let total = text.lines().count();
        let body: Vec<String> = text
            .lines()
            .enumerate()
            .skip(start.saturating_sub(1))
            .take(max)
            .map(|(i, l)| format!("{:>5}  {l}", i + 1))
            .collect();
        Ok(ToolOutput {
            text: format!("{rel} ({total} lines)\n{}", body.join("\n")),
            ok: true,
            exit_code: None,
            output_hash: crate::audit::sha256_hex(&bytes),
            duration_ms: t0.elapsed().as_millis() as i64,
            changes: Vec::new(),
        })
    }
}

/// `grep -rn` in the workspace.
pub struct SearchFiles;

#[async_trait::async_trait]
impl Tool for SearchFiles {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "search_files".into(),
            description: "Search the workspace (or a directory in it) for a regular expression; returns matching lines with file and line number.".into(),
            parameters: json!({"type": "object", "required": ["pattern"], "properties": {
                "pattern": {"type": "string", "maxLength": 500},
                "path": {"type": "string", "maxLength": 1024}}}),
        }
    }

    async fn plan(&self, args: &Value, ctx: &Ctx) -> Result<Planned, ToolError> {
        let pattern = str_arg(args, "pattern")?;
        let (_, rel) = resolve(&ctx.workspace, args["path"].as_str().unwrap_or("."))?;
        Ok(file_plan(
            "search_files",
            json!({"pattern": pattern, "path": rel}),
            "search",
            vec![rel],
            ctx,
            ItemKind::ToolCall,
        ))
    }

    async fn run(&self, p: &Planned, ctx: &Ctx) -> Result<ToolOutput, ToolError> {
        let (_, rel) = resolve(&ctx.workspace, str_arg(&p.arguments, "path")?)?;
        let mut out = super::run_host(
            ctx,
            vec![
                "grep".into(),
                "-rnIE".into(),
                "-m".into(),
                "50".into(),
                "--exclude-dir=.git".into(),
                "-e".into(),
                str_arg(&p.arguments, "pattern")?.into(),
                "--".into(),
                rel,
            ],
        )
        .await?;
        // 1 is "no match": an answer.
        out.ok = matches!(out.exit_code, Some(0 | 1));
        Ok(out)
    }
}

/// Writes a whole file.
pub struct WriteFile;

/// The unified diff that takes `from` to `to`.
pub fn unified(path: &str, from: &str, to: &str) -> String {
    similar::TextDiff::from_lines(from, to)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

#[async_trait::async_trait]
impl Tool for WriteFile {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "write_file".into(),
            description: "Create or replace a text file in the workspace with `content`. The reverse patch is recorded as the rollback.".into(),
            parameters: json!({"type": "object", "required": ["path", "content"], "properties": {
                "path": {"type": "string", "maxLength": 1024},
                "content": {"type": "string", "maxLength": 1048576}}}),
        }
    }

    async fn plan(&self, args: &Value, ctx: &Ctx) -> Result<Planned, ToolError> {
        let (abs, rel) = resolve(&ctx.workspace, str_arg(args, "path")?)?;
        let content = str_arg(args, "content")?;
        let before = tokio::fs::read_to_string(&abs).await.ok();
        let rollback = match &before {
            Some(old) => format!(
                "apply this reverse patch to restore {rel}:\n{}",
                unified(&rel, content, old)
            ),
            None => format!("delete {rel} (it did not exist before)"),
        };
        let mut p = file_plan(
            "write_file",
            json!({"path": rel, "content": content}),
            "write",
            vec![rel],
            ctx,
            ItemKind::FileChange,
        );
        p.rollback = Some(rollback);
        Ok(p)
    }

    async fn run(&self, p: &Planned, ctx: &Ctx) -> Result<ToolOutput, ToolError> {
        let t0 = Instant::now();
        let (abs, rel) = resolve(&ctx.workspace, str_arg(&p.arguments, "path")?)?;
        let content = str_arg(&p.arguments, "content")?;
        if let Some(dir) = abs.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| ToolError(format!("cannot create the directory of {rel}: {e}")))?;
        }
        tokio::fs::write(&abs, content)
            .await
            .map_err(|e| ToolError(format!("cannot write {rel}: {e}")))?;
        Ok(ToolOutput {
            text: format!("wrote {rel} ({} bytes)", content.len()),
            ok: true,
            exit_code: None,
            output_hash: crate::audit::sha256_hex(content.as_bytes()),
            duration_ms: t0.elapsed().as_millis() as i64,
            changes: vec![rel],
        })
    }
}

/// Applies a unified diff with `git apply`.
pub struct ApplyPatch;

/// The paths a unified diff touches (`--- a/x`, `+++ b/x`; `/dev/null` skipped).
pub fn patch_paths(patch: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in patch.lines() {
        let rest = line
            .strip_prefix("+++ ")
            .or_else(|| line.strip_prefix("--- "));
        let Some(rest) = rest else { continue };
        let path = rest.split('\t').next().unwrap_or("").trim();
        if path == "/dev/null" || path.is_empty() {
            continue;
        }
        let path = path
            .strip_prefix("a/")
            .or_else(|| path.strip_prefix("b/"))
            .unwrap_or(path)
            .to_string();
        if !out.contains(&path) {
            out.push(path);
        }
    }
    out
}

async fn git_apply(
    ctx: &Ctx,
    patch: &str,
    extra: &[&str],
) -> Result<crate::exec::Outcome, ToolError> {
    let file = tempfile::NamedTempFile::new().map_err(ToolError::new)?;
    std::fs::write(file.path(), patch).map_err(ToolError::new)?;
    // Never the git directory the workspace's `.git` names.
    let mut argv = vec![
        program(&ctx.tools.git),
        "-c".into(),
        "core.hooksPath=/dev/null".into(),
        "-c".into(),
        "core.fsmonitor=false".into(),
    ];
    argv.extend(super::git::repository_args(ctx));
    argv.extend(["apply".into(), "--whitespace=nowarn".into()]);
    argv.extend(extra.iter().map(|s| s.to_string()));
    argv.push(file.path().display().to_string());
    crate::exec::run(&super::host_invocation(ctx, argv))
        .await
        .map_err(ToolError::new)
}

#[async_trait::async_trait]
impl Tool for ApplyPatch {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "apply_patch".into(),
            description: "Apply a unified diff (paths relative to the workspace, a/ and b/ prefixes as git writes them). Checked before it is proposed; the reverse patch is the rollback.".into(),
            parameters: json!({"type": "object", "required": ["patch"], "properties": {
                "patch": {"type": "string", "maxLength": 1048576}}}),
        }
    }

    async fn plan(&self, args: &Value, ctx: &Ctx) -> Result<Planned, ToolError> {
        let patch = str_arg(args, "patch")?;
        let paths = patch_paths(patch);
        if paths.is_empty() {
            return Err(ToolError(
                "the patch names no file (expected `--- a/PATH` and `+++ b/PATH` lines)".into(),
            ));
        }
        let mut rels = Vec::new();
        for p in &paths {
            rels.push(resolve(&ctx.workspace, p)?.1);
        }
        let check = git_apply(ctx, patch, &["--check"]).await?;
        if !check.success() {
            return Err(ToolError(format!(
                "the patch does not apply: {}",
                check.stderr.excerpt().trim()
            )));
        }
        let mut p = file_plan(
            "apply_patch",
            json!({"patch": patch}),
            "patch",
            rels,
            ctx,
            ItemKind::FileChange,
        );
        p.rollback = Some("apply the same patch in reverse (git apply -R)".into());
        Ok(p)
    }

    async fn run(&self, p: &Planned, ctx: &Ctx) -> Result<ToolOutput, ToolError> {
        let patch = str_arg(&p.arguments, "patch")?;
        let o = git_apply(ctx, patch, &[]).await?;
        Ok(ToolOutput {
            text: if o.success() {
                format!("applied to {}", patch_paths(patch).join(", "))
            } else {
                o.for_model()
            },
            ok: o.success(),
            exit_code: Some(o.code_for_record()),
            output_hash: o.output_hash.clone(),
            duration_ms: o.duration.as_millis() as i64,
            changes: patch_paths(patch),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_workspace() {
        let ws = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(outside.path(), ws.path().join("escape")).unwrap_or_default();
        let ok = |p: &str| resolve(ws.path(), p).map(|r| r.1);
        assert_eq!(ok("src/main.rs"), Ok("src/main.rs".into()));
        assert_eq!(ok("./a/./b"), Ok("a/b".into()));
        assert_eq!(
            ok(&ws.path().join("x").display().to_string()),
            Ok("x".into())
        );
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "escape/secret",
            "escape",
        ] {
            assert!(ok(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn a_patch_names_its_files() {
        let patch = "--- a/src/x.rs\n+++ b/src/x.rs\n@@ -1 +1 @@\n-a\n+b\n--- /dev/null\n+++ b/.git/hooks/pre-commit\n@@ -0,0 +1 @@\n+evil\n";
        assert_eq!(patch_paths(patch), ["src/x.rs", ".git/hooks/pre-commit"]);
    }
}
