//! Faults, with the scripted fault injector (tests/fixtures/fault_server.py)
//! as the child: a crash mid-call, a child that never answers, a stderr
//! flood, grandchildren, an oversize answer, a child that stops answering
//! ping, requests from the child; and bad clients: wrong token, bad
//! Origin/Host, malformed JSON-RPC, batches, unknown sessions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{fault_server, text_of, tool_names, Bridge};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_crash_mid_call_errors_at_once_and_old_sessions_get_404() {
    let b = Bridge::start(&fault_server(
        "f",
        "call_timeout = \"30s\"\n[servers.restart]\nbase = \"100ms\"\nmax = \"200ms\"",
    ))
    .await;
    let old = b.init("f").await;
    let gen1 = b.state("f").await["state"]["generation"].as_u64().unwrap();
    let t0 = Instant::now();
    let r = b.call("f", &old, 7, "crash", json!({})).await;
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "the caller waited {:?}",
        t0.elapsed()
    );
    assert_eq!(r.body["id"], 7, "{}", r.text);
    assert_eq!(r.body["error"]["code"], -32000, "{}", r.text);
    assert!(r.text.contains("exited"), "{}", r.text);
    let s = b.wait_running("f", Duration::from_secs(10)).await;
    assert!(s["state"]["generation"].as_u64().unwrap() > gen1, "{s}");
    // The old session is bound to the dead child: 404, re-initialize.
    let r = b.call("f", &old, 8, "echo", json!({"text": "hi"})).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let new = b.init("f").await;
    let r = b.call("f", &new, 9, "echo", json!({"text": "back"})).await;
    assert_eq!(text_of(&r.body), "back", "{}", r.text);
    let m = b.metrics().await;
    assert!(
        m.contains("hwc_bridge_child_restarts_total{server=\"f\"} 1"),
        "{m}"
    );
    assert!(m.contains("outcome=\"child_exited\""), "{m}");
    b.stop().await;
}

#[tokio::test]
async fn a_child_that_never_answers_times_out_and_others_are_unaffected() {
    let b = Bridge::start(
        &(fault_server("slow", "call_timeout = \"700ms\"") + &fault_server("other", "")),
    )
    .await;
    let s1 = b.init("slow").await;
    let s2 = b.init("slow").await;
    let s3 = b.init("other").await;
    let t0 = Instant::now();
    let (hang, echo, other) = tokio::join!(
        b.call("slow", &s1, 1, "hang", json!({})),
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            b.call(
                "slow",
                &s2,
                1,
                "echo",
                json!({"text": "same child, other session"}),
            )
            .await
        },
        b.call("other", &s3, 1, "echo", json!({"text": "other server"})),
    );
    assert_eq!(hang.body["error"]["code"], -32001, "{}", hang.text);
    assert!(hang.text.contains("call_timeout"), "{}", hang.text);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(650) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert_eq!(text_of(&echo.body), "same child, other session");
    assert_eq!(text_of(&other.body), "other server");
    // The child was told (with its own id, not the client's).
    let r = b.call("slow", &s1, 2, "cancelled", json!({})).await;
    let ids: Vec<Value> = serde_json::from_str(&text_of(&r.body)).unwrap();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_ne!(ids[0], json!(1), "the child sees the bridge's id");
    b.stop().await;
}

#[tokio::test]
async fn a_client_cancel_reaches_the_child_and_answers_the_caller() {
    let b = Bridge::start(&fault_server("f", "call_timeout = \"30s\"")).await;
    let sid = b.init("f").await;
    let t0 = Instant::now();
    let (hang, cancel) = tokio::join!(b.call("f", &sid, 41, "hang", json!({})), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.post("f", Some(&sid), &json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 41, "reason": "user"}}), &[]).await
    });
    assert_eq!(cancel.status, 202);
    assert_eq!(hang.body["error"]["code"], -32800, "{}", hang.text);
    assert!(t0.elapsed() < Duration::from_secs(5));
    let r = b.call("f", &sid, 42, "cancelled", json!({})).await;
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&text_of(&r.body))
            .unwrap()
            .len(),
        1
    );
    b.stop().await;
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_its_request_on_the_child() {
    let b = Bridge::start(&fault_server("f", "call_timeout = \"30s\"")).await;
    let sid = b.init("f").await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "hang", "arguments": {}}});
    let gone = impatient
        .post(format!("{}/mcp/f", b.d.url))
        .header("mcp-session-id", &sid)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up");
    let t0 = Instant::now();
    loop {
        let r = b.call("f", &sid, 2, "cancelled", json!({})).await;
        let ids: Vec<Value> = serde_json::from_str(&text_of(&r.body)).unwrap();
        if ids.len() == 1 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the child was never told: {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.stop().await;
}

#[tokio::test]
async fn a_stderr_flood_is_logged_and_the_child_keeps_serving() {
    let b = Bridge::start(&fault_server("f", "")).await;
    let sid = b.init("f").await;
    let r = b.call("f", &sid, 1, "flood", json!({})).await;
    assert_eq!(text_of(&r.body), "flooded", "{}", r.text);
    let r = b
        .call("f", &sid, 2, "echo", json!({"text": "still here"}))
        .await;
    assert_eq!(text_of(&r.body), "still here");
    b.stop().await;
}

#[tokio::test]
async fn grandchildren_are_gone_after_stop() {
    let b = Bridge::start(&fault_server("f", "")).await;
    let sid = b.init("f").await;
    let r = b.call("f", &sid, 1, "fork", json!({})).await;
    let pids: Vec<i32> = serde_json::from_str(&text_of(&r.body)).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pids[0])).unwrap();
    let pgid: i32 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        hwc_ai_core::process::group_members(pgid).len() >= 4,
        "guard, python and 3 sleeps"
    );
    b.stop().await;
    let t0 = Instant::now();
    while !hwc_ai_core::process::group_members(pgid).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "left: {:?}",
            hwc_ai_core::process::group_members(pgid)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn an_oversize_answer_is_an_error_and_the_child_lives_on() {
    let b = Bridge::start(&fault_server("f", "max_result_bytes = 4096")).await;
    let sid = b.init("f").await;
    let gen = b.state("f").await["state"]["generation"].clone();
    let r = b.call("f", &sid, 5, "big", json!({"bytes": 100000})).await;
    assert_eq!(r.body["id"], 5, "{}", r.text);
    assert_eq!(r.body["error"]["code"], -32002, "{}", r.text);
    assert!(r.text.contains("max_result_bytes"), "{}", r.text);
    let r = b.call("f", &sid, 6, "big", json!({"bytes": 100})).await;
    assert_eq!(text_of(&r.body).len(), 100);
    assert_eq!(
        b.state("f").await["state"]["generation"],
        gen,
        "child unaffected"
    );
    b.stop().await;
}

#[tokio::test]
async fn a_child_that_stops_answering_ping_is_restarted() {
    let b = Bridge::start(&fault_server(
        "f",
        "ping_interval = \"200ms\"\nping_timeout = \"200ms\"\nenv = { FAULT_NO_PING = \"1\" }\n[servers.restart]\nbase = \"100ms\"\nmax = \"100ms\"",
    ))
    .await;
    let t0 = Instant::now();
    loop {
        let m = b.metrics().await;
        if m.contains("hwc_bridge_child_restarts_total{server=\"f\"} 1") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.stop().await;
}

#[tokio::test]
async fn requests_from_the_child_get_method_not_found_and_no_capabilities_are_declared() {
    let b = Bridge::start(&fault_server("f", "")).await;
    let r = b
        .post("f", None, &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {"roots": {}}, "clientInfo": {"name": "t", "version": "0"}}}), &[])
        .await;
    assert_eq!(r.body["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(
        r.body["result"]["_meta"]["clientCapabilities"],
        json!({}),
        "the bridge declared nothing to the child"
    );
    let sid = r.headers["mcp-session-id"].to_str().unwrap().to_string();
    assert_eq!(sid.len(), 32);
    let r = b.call("f", &sid, 2, "ask_roots", json!({})).await;
    let answer: Value = serde_json::from_str(&text_of(&r.body)).unwrap();
    assert_eq!(answer["error"]["code"], -32601, "{answer}");
    b.stop().await;
}

#[tokio::test]
async fn progress_is_routed_back_with_the_clients_token_over_sse() {
    let b = Bridge::start(&fault_server("f", "")).await;
    let sid = b.init("f").await;
    let r = b
        .post("f", Some(&sid), &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "progress", "arguments": {}, "_meta": {"progressToken": "mine"}}}), &[])
        .await;
    assert_eq!(r.headers["content-type"], "text/event-stream", "{}", r.text);
    let events: Vec<Value> = r
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(events.len(), 4, "{}", r.text);
    for e in &events[..3] {
        assert_eq!(e["method"], "notifications/progress");
        assert_eq!(e["params"]["progressToken"], "mine");
    }
    assert_eq!(events[3]["id"], 3);
    assert!(
        text_of(&events[3]).starts_with("token was "),
        "{}",
        events[3]
    );
    assert_ne!(
        text_of(&events[3]),
        "token was \"mine\"",
        "the child saw the bridge's token"
    );
    b.stop().await;
}

#[tokio::test]
async fn max_concurrent_calls_queues_then_errors() {
    let b = Bridge::start(&fault_server(
        "f",
        "max_concurrent_calls = 1\ncall_timeout = \"500ms\"",
    ))
    .await;
    let sid = b.init("f").await;
    let (a, c) = tokio::join!(b.call("f", &sid, 1, "hang", json!({})), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        b.call("f", &sid, 2, "echo", json!({"text": "x"})).await
    });
    assert_eq!(a.body["error"]["code"], -32001, "{}", a.text);
    assert!(
        c.text.contains("busy") || c.body["result"].is_object(),
        "{}",
        c.text
    );
    // The slot is free again.
    let r = b.call("f", &sid, 3, "echo", json!({"text": "free"})).await;
    assert_eq!(text_of(&r.body), "free");
    b.stop().await;
}

#[tokio::test]
async fn env_files_reach_the_child_and_policy_filters_list_and_call() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let b = Bridge::start(&fault_server(
        "f",
        &format!("env_files = {{ FAULT_SECRET = \"{}\" }}\nallowed_tools = [\"echo\", \"secret\", \"crash\"]\ndenied_tools = [\"crash\"]", secret.display()),
    ))
    .await;
    let sid = b.init("f").await;
    let r = b.call("f", &sid, 1, "secret", json!({})).await;
    assert_eq!(text_of(&r.body), "set");
    let r = b
        .post(
            "f",
            Some(&sid),
            &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
            &[],
        )
        .await;
    assert_eq!(tool_names(&r.body), ["echo", "secret"]);
    for tool in ["crash", "hang"] {
        let r = b.call("f", &sid, 3, tool, json!({})).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["error"]["code"], -32602, "{}", r.text);
    }
    assert_eq!(
        b.state("f").await["state"]["generation"],
        1,
        "crash never reached the child"
    );
    assert!(b.metrics().await.contains("outcome=\"denied\""));
    b.stop().await;
}

#[tokio::test]
async fn bad_clients_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let admin = dir.path().join("admin");
    let scoped = dir.path().join("scoped");
    std::fs::write(&admin, "sk-admin\n").unwrap();
    std::fs::write(&scoped, "sk-scoped\n").unwrap();
    let toml = format!(
        "[auth]\ntoken_files = [\"{}\"]\n[[auth.tokens]]\nfile = \"{}\"\nname = \"webui\"\nrole = \"requester\"\nscopes = [\"f/echo\"]\n\
         [http]\nallowed_origins = [\"http://webui.lan\"]\n{}{}",
        admin.display(),
        scoped.display(),
        fault_server("f", ""),
        fault_server("g", "")
    );
    let b = Bridge::start_with_token(&toml, "sk-admin").await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});

    // Wrong and missing tokens: 401 with WWW-Authenticate.
    for t in [Some("sk-wrong"), None] {
        let mut req = b
            .http
            .post(format!("{}/mcp/f", b.d.url))
            .body(init.to_string());
        if let Some(t) = t {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
    }
    // Origin and Host.
    let r = b
        .post("f", None, &init, &[("origin", "http://evil.example")])
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("allowed_origins"), "{}", r.text);
    assert_eq!(
        b.post("f", None, &init, &[("origin", "http://webui.lan")])
            .await
            .status,
        200
    );
    let r = b
        .post("f", None, &init, &[("host", "evil.example:8471")])
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    // Malformed JSON, batches, non-JSON-RPC.
    let r = reply_raw(&b, "f", "{not json").await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_i64()),
        (400, Some(-32700)),
        "{}",
        r.text
    );
    let r = b.post("f", None, &json!([init.clone()]), &[]).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_i64()),
        (400, Some(-32600)),
        "{}",
        r.text
    );
    let r = b.post("f", None, &json!({"hello": 1}), &[]).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_i64()),
        (400, Some(-32600)),
        "{}",
        r.text
    );
    // No session, unknown session, unknown server.
    let r = b
        .post(
            "f",
            None,
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            &[],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = b
        .post(
            "f",
            Some("00000000000000000000000000000000"),
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            &[],
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(b.post("nope", None, &init, &[]).await.status, 404);
    // GET has no stream in this version; DELETE ends a session.
    assert_eq!(
        b.http
            .get(format!("{}/mcp/f", b.d.url))
            .bearer_auth("sk-admin")
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
    let sid = b.init("f").await;
    let del = b
        .http
        .delete(format!("{}/mcp/f", b.d.url))
        .bearer_auth("sk-admin")
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    assert_eq!(
        b.post(
            "f",
            Some(&sid),
            &json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
            &[]
        )
        .await
        .status,
        404
    );

    // A token scoped to one tool: other server 403, other tool hidden and 403.
    let w = Bridge {
        d: b.d,
        http: b.http.clone(),
        token: Some("sk-scoped".into()),
    };
    assert_eq!(w.post("g", None, &init, &[]).await.status, 403);
    let sid = w.init("f").await;
    let r = w
        .post(
            "f",
            Some(&sid),
            &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
            &[],
        )
        .await;
    assert_eq!(tool_names(&r.body), ["echo"]);
    let r = w.call("f", &sid, 3, "secret", json!({})).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_i64()),
        (403, Some(-32003)),
        "{}",
        r.text
    );
    assert_eq!(
        text_of(
            &w.call("f", &sid, 4, "echo", json!({"text": "ok"}))
                .await
                .body
        ),
        "ok"
    );
    let servers = w.get("/servers").await;
    assert_eq!(
        servers.body["servers"].as_array().unwrap().len(),
        1,
        "{}",
        servers.text
    );
    w.stop().await;
}

async fn reply_raw(b: &Bridge, server: &str, body: &str) -> common::Reply {
    let mut req = b
        .http
        .post(format!("{}/mcp/{server}", b.d.url))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = &b.token {
        req = req.bearer_auth(t);
    }
    common::reply(req.send().await.unwrap()).await
}

impl Bridge {
    async fn start_with_token(toml: &str, token: &str) -> Self {
        let cfg: hwc_mcp_bridge::config::BridgeConfig =
            hwc_ai_core::config::load_str(toml).unwrap();
        let names: Vec<String> = cfg.servers.iter().map(|s| s.name.clone()).collect();
        let d = hwc_testkit::inprocess::InProcess::daemon(hwc_mcp_bridge::daemon_with_guard(
            cfg,
            Some(common::BIN.into()),
        ))
        .await;
        let b = Bridge {
            d,
            http: reqwest::Client::new(),
            token: Some(token.into()),
        };
        for n in names {
            b.wait_running(&n, Duration::from_secs(30)).await;
        }
        b
    }
}

#[tokio::test]
async fn readyz_is_false_while_a_required_server_is_down_and_servers_says_why() {
    let toml = "[[servers]]\nname = \"broken\"\ncommand = \"/bin/false\"\n[servers.restart]\nbase = \"50ms\"\nmax = \"50ms\"\nmax_restarts = 2\n\
                [[servers]]\nname = \"optional\"\ncommand = \"/bin/false\"\nrequired = false\n";
    let cfg: hwc_mcp_bridge::config::BridgeConfig = hwc_ai_core::config::load_str(toml).unwrap();
    let d = hwc_testkit::inprocess::InProcess::daemon(hwc_mcp_bridge::daemon_with_guard(
        cfg,
        Some(common::BIN.into()),
    ))
    .await;
    let b = Bridge {
        d,
        http: reqwest::Client::new(),
        token: None,
    };
    let t0 = Instant::now();
    loop {
        let s = b.state("broken").await;
        if s["state"]["state"] == "failed" {
            assert!(
                s["state"]["reason"].as_str().unwrap().contains("exited 1"),
                "{s}"
            );
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = b.get("/readyz").await;
    assert_eq!(r.status, 503);
    assert!(
        r.text.contains("broken") && !r.text.contains("optional"),
        "{}",
        r.text
    );
    let r = b
        .post(
            "broken",
            None,
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}),
            &[],
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.text.contains("not running"), "{}", r.text);
    b.stop().await;
}

/// 2026-07-28 rules the bridge enforces itself: `_meta` with protocol
/// version and client capabilities (-32602, HTTP 400), removed and unknown
/// methods (-32601, HTTP 404, the child never asked), a child's -32601
/// (HTTP 404); the same methods stay served in the session era.
#[tokio::test]
async fn stateless_meta_and_method_rules() {
    let b = Bridge::start(&fault_server("f", "")).await;
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let post = |method: &'static str, params: Value, id: u64| {
        let b = &b;
        async move {
            let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
            b.post(
                "f",
                None,
                &body,
                &[
                    ("mcp-protocol-version", "2026-07-28"),
                    ("mcp-method", method),
                ],
            )
            .await
        }
    };
    // clientInfo is optional.
    let r = post("tools/list", json!({"_meta": meta}), 1).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        tool_names(&r.body).contains(&"echo".to_string()),
        "{}",
        r.text
    );

    for (params, want) in [
        (json!({}), "needs params._meta"),
        (
            json!({"_meta": {"io.modelcontextprotocol/clientCapabilities": {}}}),
            "io.modelcontextprotocol/protocolVersion",
        ),
        (
            json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}),
            "io.modelcontextprotocol/clientCapabilities",
        ),
        (
            json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": []}}),
            "io.modelcontextprotocol/clientCapabilities",
        ),
    ] {
        let r = post("server/discover", params, 7).await;
        assert_eq!(
            (r.status, r.body["error"]["code"].as_i64(), &r.body["id"]),
            (400, Some(-32602), &json!(7)),
            "{}",
            r.text
        );
        assert!(r.text.contains(want), "want {want}: {}", r.text);
    }

    for method in [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
        "resources/unsubscribe",
        "unknown/method",
    ] {
        let r = post(method, json!({"_meta": meta}), 9).await;
        assert_eq!(
            (r.status, r.body["error"]["code"].as_i64(), &r.body["id"]),
            (404, Some(-32601), &json!(9)),
            "{method}: {}",
            r.text
        );
    }
    // The child does not serve prompts: its -32601 is HTTP 404 here.
    let r = post("prompts/list", json!({"_meta": meta}), 10).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_i64()),
        (404, Some(-32601)),
        "{}",
        r.text
    );

    // The session era keeps initialize and ping, and a child's -32601 is 200.
    let sid = b.init("f").await;
    for (method, want) in [("ping", 200), ("prompts/list", 200)] {
        let r = b
            .post(
                "f",
                Some(&sid),
                &json!({"jsonrpc": "2.0", "id": 11, "method": method}),
                &[],
            )
            .await;
        assert_eq!(r.status, want, "{method}: {}", r.text);
    }
    b.stop().await;
}
