//! Real peers on both sides: PyPI `mcp-server-time`, `mcp-server-git` and
//! npm `@modelcontextprotocol/server-everything` and `server-filesystem`
//! (stdio) as children; the official PyPI `mcp` 1.x client
//! (`streamablehttp_client` + `ClientSession`, what Open WebUI runs), the
//! 2.x client (`mcp.Client`, in the 2026-07-28 era it probes for and in the
//! session era) and raw requests as clients.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{fixture, text_of, tool_names, Bridge};
use serde_json::{json, Value};

fn servers(extra_time: &str) -> String {
    format!(
        "[[servers]]\nname = \"time\"\ncommand = \"{}\"\n{extra_time}\n\
         [[servers]]\nname = \"everything\"\ncommand = \"node\"\nargs = [\"{}\", \"stdio\"]\ndenied_tools = [\"get-env\"]\ncall_timeout = \"20s\"\n",
        hwc_testkit::mcp::time_server().display(),
        hwc_testkit::mcp::entry_point().display()
    )
}

/// Runs the official Python client against `url`; its JSON summary.
fn py_client(url: &str, token: &str, tool: &str, args: Value) -> Value {
    let out = std::process::Command::new(hwc_testkit::mcp::client_python())
        .arg(fixture("py_client.py"))
        .args([url, token, tool, &args.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn the_official_python_client_lists_and_calls_through_the_bridge() {
    let b = Bridge::start(&servers("allowed_tools = [\"get_current_time\"]")).await;
    let url = format!("{}/mcp/time", b.d.url);
    let (time, everything) = tokio::task::spawn_blocking({
        let base = b.d.url.clone();
        move || {
            let t = py_client(&url, "", "get_current_time", json!({"timezone": "Etc/UTC"}));
            let e = py_client(
                &format!("{base}/mcp/everything"),
                "",
                "echo",
                json!({"message": "through the bridge"}),
            );
            (t, e)
        }
    })
    .await
    .unwrap();
    assert_eq!(time["server"], "mcp-time", "{time}");
    assert_eq!(
        time["tools"],
        json!(["get_current_time"]),
        "convert_time filtered out: {time}"
    );
    assert_eq!(time["is_error"], false, "{time}");
    assert!(time["text"].as_str().unwrap().contains("Etc/UTC"), "{time}");
    assert_eq!(everything["is_error"], false, "{everything}");
    assert!(
        everything["text"]
            .as_str()
            .unwrap()
            .contains("through the bridge"),
        "{everything}"
    );
    let tools: Vec<&str> = everything["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tools.contains(&"echo") && !tools.contains(&"get-env"),
        "{tools:?}"
    );

    // A denied tool is refused before it reaches the child, through the same client.
    let url = format!("{}/mcp/everything", b.d.url);
    let denied = tokio::task::spawn_blocking(move || py_client(&url, "", "get-env", json!({})))
        .await
        .unwrap();
    assert_eq!(denied["rpc_error"]["code"], -32602, "{denied}");
    assert!(
        denied["rpc_error"]["message"]
            .as_str()
            .unwrap()
            .contains("denied"),
        "{denied}"
    );

    let m = b.metrics().await;
    assert!(
        m.contains(
            "hwc_bridge_calls_total{server=\"time\",tool=\"get_current_time\",outcome=\"ok\"} 1"
        ),
        "{m}"
    );
    assert!(
        m.contains("hwc_bridge_children_up{server=\"everything\"} 1"),
        "{m}"
    );
    b.stop().await;
}

#[tokio::test]
async fn session_era_by_hand_against_real_servers() {
    let b = Bridge::start(&servers("")).await;
    let sid = b.init("time").await;
    let r = b
        .post(
            "time",
            Some(&sid),
            &json!({"jsonrpc": "2.0", "id": "a", "method": "tools/list"}),
            &[],
        )
        .await;
    assert_eq!(r.body["id"], "a");
    assert_eq!(tool_names(&r.body), ["convert_time", "get_current_time"]);
    let r = b
        .call(
            "time",
            &sid,
            2,
            "convert_time",
            json!({"source_timezone": "Etc/UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}),
        )
        .await;
    assert!(text_of(&r.body).contains("Asia/Tokyo"), "{}", r.text);
    let r = b
        .post(
            "time",
            Some(&sid),
            &json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}),
            &[],
        )
        .await;
    assert_eq!(r.body["result"], json!({}));
    // Many cheap sessions on one child (Open WebUI opens one per chat request).
    let mut ids = std::collections::HashSet::new();
    for _ in 0..50 {
        ids.insert(b.init("everything").await);
    }
    assert_eq!(ids.len(), 50);
    let status = b.get("/status").await;
    assert_eq!(status.body["servers_up"], 2, "{}", status.text);
    assert!(status.body["sessions_open"].as_u64().unwrap() >= 51);
    b.stop().await;
}

#[tokio::test]
async fn stateless_2026_07_28_against_a_real_server() {
    let b = Bridge::start(&servers("")).await;
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let v = ("mcp-protocol-version", "2026-07-28");
    let r = b
        .post("time", None, &json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta}}), &[v, ("mcp-method", "server/discover")])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["result"]["resultType"], "complete");
    assert!(r.body["result"]["supportedVersions"]
        .as_array()
        .unwrap()
        .contains(&json!("2026-07-28")));
    assert_eq!(
        r.body["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "mcp-time"
    );
    assert!(r.headers.get("mcp-session-id").is_none());

    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "get_current_time", "arguments": {"timezone": "Europe/Berlin"}, "_meta": meta}});
    let r = b
        .post(
            "time",
            None,
            &call,
            &[
                v,
                ("mcp-method", "tools/call"),
                ("mcp-name", "get_current_time"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(text_of(&r.body).contains("Europe/Berlin"), "{}", r.text);
    assert_eq!(r.body["result"]["resultType"], "complete");

    // Headers that don't match the body: -32020, HTTP 400.
    for (extra, want) in [
        (
            vec![
                v,
                ("mcp-method", "tools/list"),
                ("mcp-name", "get_current_time"),
            ],
            "does not match body method",
        ),
        (
            vec![
                v,
                ("mcp-method", "tools/call"),
                ("mcp-name", "convert_time"),
            ],
            "does not match body value",
        ),
        (
            vec![v, ("mcp-method", "tools/call")],
            "missing required Mcp-Name",
        ),
        (
            vec![
                ("mcp-protocol-version", "2025-11-25"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "get_current_time"),
            ],
            "does not match _meta",
        ),
    ] {
        let r = b.post("time", None, &call, &extra).await;
        assert_eq!(
            (r.status, r.body["error"]["code"].as_i64()),
            (400, Some(-32020)),
            "{}",
            r.text
        );
        assert!(r.text.contains(want), "want {want}: {}", r.text);
    }
    let r = b
        .post(
            "time",
            None,
            &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
            &[("mcp-protocol-version", "2099-01-01")],
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_i64()),
        (400, Some(-32022)),
        "{}",
        r.text
    );
    // Denied tools are hidden in this era too.
    let list =
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": {"_meta": meta}});
    let r = b
        .post(
            "everything",
            None,
            &list,
            &[v, ("mcp-method", "tools/list")],
        )
        .await;
    let names = tool_names(&r.body);
    assert!(
        names.contains(&"echo".to_string()) && !names.contains(&"get-env".to_string()),
        "{names:?}"
    );
    let del = b
        .http
        .delete(format!("{}/mcp/time", b.d.url))
        .header("mcp-protocol-version", "2026-07-28")
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 405);
    b.stop().await;
}

/// Runs the official Python `mcp` 2.x client against `url` in `mode`.
fn py_client2(url: &str, mode: &str, tool: &str, args: Value) -> Value {
    let out = std::process::Command::new(hwc_testkit::mcp::client2_python())
        .arg(fixture("py_client2.py"))
        .args([url, mode, tool, &args.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python mcp 2.x client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn the_mcp_2_client_in_both_eras_against_the_real_git_server() {
    let repo = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
            .args(args)
            .current_dir(repo.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["commit", "-q", "--allow-empty", "-m", "the first commit"]);
    let toml = format!(
        "[[servers]]\nname = \"git\"\ncommand = \"{}\"\nargs = [\"--repository\", \"{}\"]\ndenied_tools = [\"git_reset\"]\n",
        hwc_testkit::mcp::git_server().display(),
        repo.path().display()
    );
    let b = Bridge::start(&toml).await;
    let url = format!("{}/mcp/git", b.d.url);
    let repo_path = repo.path().display().to_string();
    let (modern, legacy) = tokio::task::spawn_blocking(move || {
        let args = json!({"repo_path": repo_path});
        (
            py_client2(&url, "auto", "git_log", args.clone()),
            py_client2(&url, "legacy", "git_status", args),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        modern["protocol"], "2026-07-28",
        "discover probed: {modern}"
    );
    assert_eq!(legacy["protocol"], "2025-11-25", "{legacy}");
    for out in [&modern, &legacy] {
        let tools = out["tools"].as_array().unwrap();
        assert!(tools.contains(&json!("git_log")), "{out}");
        assert!(!tools.contains(&json!("git_reset")), "denied: {out}");
        assert_eq!(out["is_error"], false, "{out}");
    }
    assert!(
        modern["text"]
            .as_str()
            .unwrap()
            .contains("the first commit"),
        "{modern}"
    );
    assert!(
        legacy["text"]
            .as_str()
            .unwrap()
            .contains("working tree clean"),
        "{legacy}"
    );
    b.stop().await;
}

#[tokio::test]
async fn client_roots_never_reach_the_real_filesystem_server() {
    let allowed = tempfile::tempdir().unwrap();
    std::fs::write(allowed.path().join("note.txt"), "inside").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "outside").unwrap();
    let toml = format!(
        "[[servers]]\nname = \"fs\"\ncommand = \"node\"\nargs = [\"{}\", \"{}\"]\ncall_timeout = \"20s\"\n",
        hwc_testkit::mcp::filesystem_entry_point().display(),
        allowed.path().display()
    );
    let b = Bridge::start(&toml).await;
    // The client declares roots and says they changed: the bridge answers
    // for itself; the server never asks (the bridge declared no roots).
    let sid = b.init("fs").await;
    let n = b
        .post(
            "fs",
            Some(&sid),
            &json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}),
            &[],
        )
        .await;
    assert_eq!(n.status, 202);
    let dirs = b
        .call("fs", &sid, 2, "list_allowed_directories", json!({}))
        .await;
    let text = text_of(&dirs.body);
    let canonical = std::fs::canonicalize(allowed.path()).unwrap();
    assert!(
        text.contains(&*canonical.to_string_lossy()),
        "the configured directory: {text}"
    );
    assert!(
        !text.contains(&*outside.path().to_string_lossy()),
        "nothing else: {text}"
    );
    let inside = b
        .call(
            "fs",
            &sid,
            3,
            "read_text_file",
            json!({"path": allowed.path().join("note.txt")}),
        )
        .await;
    assert_eq!(text_of(&inside.body), "inside", "{}", inside.text);
    let denied = b
        .call(
            "fs",
            &sid,
            4,
            "read_text_file",
            json!({"path": outside.path().join("secret.txt")}),
        )
        .await;
    assert_eq!(denied.body["result"]["isError"], true, "{}", denied.text);
    assert!(!denied.text.contains("\"outside\""), "{}", denied.text);
    b.stop().await;
}
