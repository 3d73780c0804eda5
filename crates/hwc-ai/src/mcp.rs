//! `hwc-ai mcp servers`: the bridge's servers the operator's token may
//! use, with their state, sessions and both URLs.

use crate::client::{Client, ClientError};
use crate::render::{self, state, table};
use hwc_mcp_bridge::status::ServersList;
use hwc_mcp_bridge::upstream::ServerState;

/// `GET /servers`.
pub async fn servers(c: &Client) -> Result<ServersList, ClientError> {
    c.get_json("/servers").await
}

/// A server's state word and its detail (next attempt, reason, children).
pub fn state_of(s: &ServerState) -> (&'static str, String) {
    match s {
        ServerState::Starting => ("starting", String::new()),
        ServerState::Running { generation, .. } => ("running", format!("start #{generation}")),
        ServerState::Restarting {
            next_attempt_in_s,
            last_error,
        } => (
            "restarting",
            format!("next try in {next_attempt_in_s:.0}s: {last_error}"),
        ),
        ServerState::Failed { reason } => ("failed", reason.clone()),
        ServerState::Stopped => ("stopped", String::new()),
        ServerState::PerSession {
            children,
            max_children,
        } => ("per_session", format!("{children}/{max_children} children")),
    }
}

/// The servers table.
pub fn render(list: &ServersList) -> String {
    if list.servers.is_empty() {
        return "no servers (or none in this token's scopes)\n".into();
    }
    let mut t = table(&[
        "SERVER",
        "STATE",
        "ISOLATION",
        "SESSIONS",
        "TOOLS",
        "MCP",
        "OPENAPI",
    ]);
    for s in &list.servers {
        let (st, _) = state_of(&s.state);
        let tools = match (&s.allowed_tools, s.denied_tools.is_empty()) {
            (Some(a), true) => a.join(","),
            (Some(a), false) => format!("{} minus {}", a.join(","), s.denied_tools.join(",")),
            (None, true) => "all".into(),
            (None, false) => format!("all but {}", s.denied_tools.join(",")),
        };
        t.add_row(vec![
            s.name.clone(),
            state(st),
            render::wire(&s.isolation),
            s.sessions_open.to_string(),
            tools,
            s.url.clone(),
            s.openapi_url.clone(),
        ]);
    }
    render::lines(&t) + "\n"
}
