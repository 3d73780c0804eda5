//! MCP servers through hwc-mcp-bridge (`[tools.mcp]`): `mcp_tools` lists
//! a server's tools (names, descriptions, input schemas), `mcp_call` calls
//! one. The runner is an MCP client of the bridge with a token of its own
//! ([`hwc_ai_core::mcp_client`], a session per call, ended after it).
//!
//! The policy judges a call as the words `mcp SERVER TOOL` and a listing as
//! `mcp-tools SERVER` (a different first word, so no rule for calls can
//! match a listing by prefix): a tool's risk is the runner's own rules,
//! never the server's annotations (`readOnlyHint` says what the server
//! claims). A tool no rule names is R2 outside production and denied in
//! it, as every unknown action is.

use super::{str_arg, Ctx, ItemKind, PlanSubject, Planned, Tool, ToolError, ToolOutput};
use crate::model::ToolSpec;
use hwc_ai_core::mcp_client::McpSession;
use serde_json::{json, Value};
use std::time::Instant;

/// Largest `arguments` object accepted, serialized.
const MAX_ARGUMENTS: usize = 64 * 1024;
/// `tools/list` pages read at most.
const MAX_PAGES: usize = 10;

/// A server or tool name that can be a policy word and a URL segment.
fn name_arg<'a>(args: &'a Value, key: &str) -> Result<&'a str, ToolError> {
    let v = str_arg(args, key)?;
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
    if ok {
        Ok(v)
    } else {
        Err(ToolError(format!(
            "`{key}` `{v}` is not a name (letters, digits, _ - . only); mcp_tools lists the names"
        )))
    }
}

/// A session with `server` through the bridge.
fn session(ctx: &Ctx, server: &str) -> Result<McpSession, ToolError> {
    let c = &ctx.tools.mcp;
    let Some(base) = &c.bridge_url else {
        return Err(ToolError(
            "no MCP bridge is configured ([tools.mcp] bridge_url); MCP tools are unavailable on this runner".into(),
        ));
    };
    let token = match &c.token_file {
        Some(f) => Some(
            hwc_ai_core::secret::read_secret(f)
                .map_err(|e| ToolError(format!("the runner's bridge token: {e}")))?
                .expose()
                .to_string(),
        ),
        None => None,
    };
    let client = reqwest::Client::builder()
        .timeout(c.timeout)
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(ToolError::new)?;
    Ok(McpSession::new(
        client,
        &format!("{}/mcp/{server}", base.trim_end_matches('/')),
        token,
    ))
}

/// Runs `f` in an initialized session with `server`, ending it after.
async fn with_session<T>(
    ctx: &Ctx,
    server: &str,
    f: impl AsyncFnOnce(&mut McpSession) -> Result<T, hwc_ai_core::mcp_client::McpError>,
) -> Result<T, ToolError> {
    let mut s = session(ctx, server)?;
    let out = async {
        s.initialize("hwc-agent-runner", env!("CARGO_PKG_VERSION"))
            .await?;
        f(&mut s).await
    }
    .await;
    s.close().await;
    out.map_err(|e| ToolError(format!("MCP server `{server}` through the bridge: {e}")))
}

fn capped(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}\n[… {} more bytes left out …]",
        &text[..cut],
        text.len() - cut
    )
}

/// What a `tools/call` result says, for the model: its text contents, its
/// structured content, and whether it is the tool's own error.
pub fn result_text(result: &Value) -> (String, bool) {
    let mut parts: Vec<String> = result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| match c["type"].as_str() {
            Some("text") => c["text"].as_str().unwrap_or("").to_string(),
            Some(other) => format!("[{other} content]"),
            None => c.to_string(),
        })
        .collect();
    if let Some(s) = result.get("structuredContent") {
        parts.push(format!("structured: {s}"));
    }
    let is_error = result["isError"] == json!(true);
    (parts.join("\n"), !is_error)
}

/// `mcp_tools(server)`.
pub struct McpTools;

#[async_trait::async_trait]
impl Tool for McpTools {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "mcp_tools".into(),
            description: "List the tools of an MCP server through the MCP bridge: each tool's name, description and input schema. Call one with mcp_call.".into(),
            parameters: json!({"type": "object", "required": ["server"], "properties": {
                "server": {"type": "string", "maxLength": 128}}}),
        }
    }

    async fn plan(&self, args: &Value, _ctx: &Ctx) -> Result<Planned, ToolError> {
        let server = name_arg(args, "server")?;
        Ok(Planned {
            tool: "mcp_tools".into(),
            arguments: json!({"server": server}),
            subject: PlanSubject::Commands(vec![vec!["mcp-tools".into(), server.into()]]),
            target: format!("mcp:{server}"),
            rollback: None,
            claimed: None,
            summary: format!("mcp-tools {server}"),
            item: ItemKind::ToolCall,
            network: false,
            call_id: None,
            environment: None,
        })
    }

    async fn run(&self, p: &Planned, ctx: &Ctx) -> Result<ToolOutput, ToolError> {
        let server = str_arg(&p.arguments, "server")?.to_string();
        let t0 = Instant::now();
        let tools = with_session(ctx, &server, async |s: &mut McpSession| {
            let mut all = Vec::new();
            let mut cursor: Option<Value> = None;
            for _ in 0..MAX_PAGES {
                let params = match &cursor {
                    Some(c) => json!({"cursor": c}),
                    None => json!({}),
                };
                let page = s.request("tools/list", params).await?;
                all.extend(page["tools"].as_array().cloned().unwrap_or_default());
                cursor = page.get("nextCursor").filter(|c| !c.is_null()).cloned();
                if cursor.is_none() {
                    break;
                }
            }
            Ok(all)
        })
        .await?;
        let full = serde_json::to_string(&tools).unwrap_or_default();
        let text = tools
            .iter()
            .map(|t| {
                format!(
                    "{}: {}\n  input: {}",
                    t["name"].as_str().unwrap_or("?"),
                    t["description"].as_str().unwrap_or(""),
                    t.get("inputSchema").map_or("{}".into(), Value::to_string)
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        Ok(ToolOutput {
            text: capped(
                format!("{} tools on `{server}`:\n{text}", tools.len()),
                ctx.tools.mcp.max_result_bytes,
            ),
            ok: true,
            exit_code: None,
            output_hash: crate::audit::sha256_hex(full.as_bytes()),
            duration_ms: t0.elapsed().as_millis() as i64,
            changes: Vec::new(),
        })
    }
}

/// `mcp_call(server, tool, arguments)`.
pub struct McpCall;

#[async_trait::async_trait]
impl Tool for McpCall {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "mcp_call".into(),
            description: "Call a tool of an MCP server through the MCP bridge with its arguments (as mcp_tools lists its schema). For a change, give `rollback`: how to undo it.".into(),
            parameters: json!({"type": "object", "required": ["server", "tool"], "properties": {
                "server": {"type": "string", "maxLength": 128},
                "tool": {"type": "string", "maxLength": 128},
                "arguments": {"type": "object", "additionalProperties": true},
                "rollback": {"type": "string", "maxLength": 4000}}}),
        }
    }

    async fn plan(&self, args: &Value, _ctx: &Ctx) -> Result<Planned, ToolError> {
        let server = name_arg(args, "server")?;
        let tool = name_arg(args, "tool")?;
        let arguments = match &args["arguments"] {
            Value::Null => json!({}),
            v @ Value::Object(_) => v.clone(),
            _ => return Err(ToolError("`arguments` must be an object".into())),
        };
        let shown = arguments.to_string();
        if shown.len() > MAX_ARGUMENTS {
            return Err(ToolError(format!(
                "`arguments` is {} bytes; at most {MAX_ARGUMENTS}",
                shown.len()
            )));
        }
        let rollback = args["rollback"].as_str().filter(|r| !r.trim().is_empty());
        let mut norm = json!({"server": server, "tool": tool, "arguments": arguments});
        if let Some(r) = rollback {
            norm["rollback"] = json!(r);
        }
        Ok(Planned {
            tool: "mcp_call".into(),
            arguments: norm,
            subject: PlanSubject::Commands(vec![vec!["mcp".into(), server.into(), tool.into()]]),
            target: format!("mcp:{server}"),
            rollback: rollback.map(|r| format!("(written by the model) {r}")),
            claimed: None,
            summary: format!("mcp {server} {tool} {}", capped(shown, 300)),
            item: ItemKind::ToolCall,
            network: false,
            call_id: None,
            environment: None,
        })
    }

    async fn run(&self, p: &Planned, ctx: &Ctx) -> Result<ToolOutput, ToolError> {
        let server = str_arg(&p.arguments, "server")?.to_string();
        let tool = str_arg(&p.arguments, "tool")?.to_string();
        let arguments = p.arguments["arguments"].clone();
        let t0 = Instant::now();
        let result = with_session(ctx, &server, async |s: &mut McpSession| {
            s.request("tools/call", json!({"name": tool, "arguments": arguments}))
                .await
        })
        .await?;
        let (text, ok) = result_text(&result);
        let full = result.to_string();
        Ok(ToolOutput {
            text: capped(text, ctx.tools.mcp.max_result_bytes),
            ok,
            exit_code: None,
            output_hash: crate::audit::sha256_hex(full.as_bytes()),
            duration_ms: t0.elapsed().as_millis() as i64,
            changes: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_for_the_model() {
        let (t, ok) = result_text(&json!({"content": [{"type": "text", "text": "12:00"}]}));
        assert_eq!((t.as_str(), ok), ("12:00", true));
        let (t, ok) = result_text(
            &json!({"content": [{"type": "text", "text": "no such zone"}], "isError": true}),
        );
        assert_eq!((t.as_str(), ok), ("no such zone", false));
        let (t, _) = result_text(
            &json!({"content": [{"type": "image", "data": "x"}], "structuredContent": {"a": 1}}),
        );
        assert_eq!(t, "[image content]\nstructured: {\"a\":1}");
        assert!(capped("é".repeat(10), 5).starts_with("éé\n[…"));
    }

    #[test]
    fn names_are_policy_words() {
        assert!(name_arg(&json!({"s": "mcp-time_1.x"}), "s").is_ok());
        for bad in ["", "a b", "a/b", "x;y", "é"] {
            assert!(name_arg(&json!({"s": bad}), "s").is_err(), "{bad}");
        }
    }
}
