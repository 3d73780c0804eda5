//! The `mcp` probe: a real Streamable HTTP session, not a bare GET. It
//! sends `initialize`, `notifications/initialized` and `tools/list`, then
//! ends the session with DELETE, so a server whose stdio child died (and
//! can't list tools) is seen as down even if its HTTP listener is up.

use super::Verdict;
use crate::config::McpCheck;
use hwc_ai_core::mcp_client::McpSession;
use serde_json::{json, Value};

/// `kind = "mcp"`.
pub async fn probe(client: &reqwest::Client, c: &McpCheck) -> Result<Verdict, String> {
    let token = c
        .bearer_token_file
        .as_deref()
        .map(|p| {
            hwc_ai_core::secret::read_secret(p)
                .map(|s| s.expose().to_string())
                .map_err(|e| e.to_string())
        })
        .transpose()?;
    let mut s = McpSession::new(client.clone(), &c.url, token);
    let listed = async {
        s.initialize("hwc-health-prober", env!("CARGO_PKG_VERSION"))
            .await?;
        s.request("tools/list", json!({})).await
    }
    .await;
    s.close().await;
    let tools = listed.map_err(|e| e.to_string())?;
    let count = tools
        .get("tools")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if count < c.min_tools {
        return Err(format!(
            "MCP server lists {count} tools, fewer than min_tools {}",
            c.min_tools
        ));
    }
    Ok(Verdict::Ok)
}
