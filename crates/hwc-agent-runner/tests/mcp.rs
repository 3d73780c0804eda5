//! MCP tools through the real bridge (hwc-mcp-bridge in-process, its child
//! the real PyPI `mcp-server-time`), judged by the runner's own policy:
//! the built-in rules make the time server's read tools R0, a tool no rule
//! names (or a server no rule names) is denied in production before it
//! reaches the bridge, and without a bridge the tools are not offered.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{finish, Runner};
use hwc_testkit::inprocess::InProcess;
use hwc_testkit::scripted::{tool_call, Upstream};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn bridge() -> InProcess {
    let toml = format!(
        "[[servers]]\nname = \"time\"\ncommand = \"{}\"\n",
        hwc_testkit::mcp::time_server().display()
    );
    let cfg: hwc_mcp_bridge::config::BridgeConfig = hwc_ai_core::config::load_str(&toml).unwrap();
    // The runner's binary is a process guard like every daemon's.
    let b = InProcess::daemon(hwc_mcp_bridge::daemon_with_guard(
        cfg,
        Some(env!("CARGO_BIN_EXE_hwc-agent-runner").into()),
    ))
    .await;
    let t0 = Instant::now();
    loop {
        let v: Value = reqwest::get(format!("{}/servers", b.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["servers"][0]["state"]["state"] == "running" {
            return b;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn decisions(events: &[Value]) -> Vec<(String, String, String)> {
    events
        .iter()
        .filter(|e| e["kind"] == "policy.decision")
        .map(|e| {
            let d = &e["data"];
            (
                d["summary"]
                    .as_str()
                    .unwrap_or("")
                    .split(' ')
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" "),
                d["risk"].as_str().unwrap_or("").to_string(),
                d["verdict"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn mcp_tools_reach_the_real_bridge_under_the_runners_policy() {
    let b = bridge().await;
    let up = Upstream::start(
        vec![
            tool_call("mcp_tools", r#"{"server": "time"}"#),
            tool_call(
                "mcp_call",
                r#"{"server": "time", "tool": "get_current_time", "arguments": {"timezone": "Etc/UTC"}}"#,
            ),
            tool_call("mcp_call", r#"{"server": "time", "tool": "set_clock", "arguments": {}}"#),
            tool_call("mcp_call", r#"{"server": "nope", "tool": "x"}"#),
        ],
        tool_call("finish", &finish("the time is known", &[])),
    )
    .await;
    let r = Runner::start(
        &up.url(),
        &format!("[tools.mcp]\nbridge_url = \"{}\"\n", b.url),
    )
    .await;
    let id = r
        .job(json!({"goal": "what time is it", "environment": "prod"}))
        .await;
    r.wait_for(&id, &["completed"]).await;
    let events = r.events(&id).await;
    let d = decisions(&events);
    assert!(d.len() >= 4, "{:#}", Value::Array(events.clone()));
    assert_eq!(
        d[0],
        ("mcp-tools time".into(), "R0".into(), "allow".into()),
        "{d:?}"
    );
    assert_eq!(d[1].0, "mcp time get_current_time", "{d:?}");
    assert_eq!((d[1].1.as_str(), d[1].2.as_str()), ("R0", "allow"), "{d:?}");
    assert_eq!(d[2].0, "mcp time set_clock", "{d:?}");
    assert_eq!(
        d[2].2, "deny",
        "no rule names it, and this is production: {d:?}"
    );
    let text: String = events
        .iter()
        .filter(|e| e["kind"] == "item.completed")
        .map(|e| e["data"].to_string())
        .collect();
    assert!(
        text.contains("get_current_time") && text.contains("convert_time"),
        "the listing: {text}"
    );
    assert!(text.contains("Etc/UTC"), "the call's answer: {text}");
    assert_eq!(d[3].0, "mcp nope x", "{d:?}");
    assert_eq!(
        d[3].2, "deny",
        "an unknown server is no rule's either: {d:?}"
    );
    // Only the allowed call reached the bridge; the denied one never did.
    let m = reqwest::get(format!("{}/metrics", b.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains(
            "hwc_bridge_calls_total{server=\"time\",tool=\"get_current_time\",outcome=\"ok\"} 1"
        ),
        "{m}"
    );
    assert!(!m.contains("set_clock"), "{m}");
    r.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn without_a_bridge_the_mcp_tools_are_not_offered() {
    let up = Upstream::start(
        vec![tool_call("mcp_tools", r#"{"server": "time"}"#)],
        tool_call("finish", &finish("no bridge", &[])),
    )
    .await;
    let r = Runner::start(&up.url(), "").await;
    let id = r.job(json!({"goal": "list", "environment": "dev"})).await;
    r.wait_for(&id, &["completed"]).await;
    let offered = up.request(0).2["tools"].to_string();
    assert!(
        !offered.contains("mcp_tools") && !offered.contains("mcp_call"),
        "{offered}"
    );
    let told = up.request(1).2.to_string();
    assert!(told.contains("there is no tool `mcp_tools`"), "{told}");
    r.stop().await;
}
