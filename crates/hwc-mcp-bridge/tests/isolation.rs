//! `isolation = "per-session"`: each session its own child (the fault
//! injector's `remember`/`recall` keep state per process, `pid` names it),
//! at most `max_children`; the child ends with its session and the session
//! with its child; no process is left behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{fault_server, text_of, Bridge};
use serde_json::json;
use std::time::{Duration, Instant};

fn alive(pid: i32) -> bool {
    // A zombie is gone as far as anyone cares; /proc/<pid>/stat says.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
        .unwrap_or(false)
}

async fn gone_within(pid: i32, within: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn pid(b: &Bridge, sid: &str) -> i32 {
    let r = b.call("iso", sid, 90, "pid", json!({})).await;
    text_of(&r.body)
        .parse()
        .unwrap_or_else(|_| panic!("{}", r.text))
}

#[tokio::test]
async fn every_session_gets_its_own_child_and_nothing_outlives_it() {
    let b = Bridge::start(&fault_server(
        "iso",
        "isolation = \"per-session\"\nmax_children = 2\ncall_timeout = \"10s\"",
    ))
    .await;
    let s = b.state("iso").await;
    assert_eq!(
        s["state"],
        json!({"state": "per_session", "children": 0, "max_children": 2}),
        "{s}"
    );

    let a = b.init("iso").await;
    let c = b.init("iso").await;
    let (pa, pc) = (pid(&b, &a).await, pid(&b, &c).await);
    assert_ne!(pa, pc, "two sessions, two children");
    assert_eq!(pid(&b, &a).await, pa, "a session keeps its child");
    b.call("iso", &a, 1, "remember", json!({"text": "only a's"}))
        .await;
    assert_eq!(
        text_of(&b.call("iso", &a, 2, "recall", json!({})).await.body),
        "only a's"
    );
    assert_eq!(
        text_of(&b.call("iso", &c, 3, "recall", json!({})).await.body),
        "",
        "state does not cross sessions"
    );
    assert!(b
        .metrics()
        .await
        .contains("hwc_bridge_children_up{server=\"iso\"} 2"));

    // At the cap: a clear 503, nothing started.
    let r = b
        .post("iso", None, &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}), &[])
        .await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.text.contains("max_children"), "{}", r.text);
    assert!(r.headers.contains_key("retry-after"));

    // DELETE ends the child; its slot is free again.
    let del = b
        .http
        .delete(format!("{}/mcp/iso", b.d.url))
        .header("mcp-session-id", &a)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    assert!(
        gone_within(pa, Duration::from_secs(10)).await,
        "a's child {pa} outlived its session"
    );
    let d = b.init("iso").await;
    let pd = pid(&b, &d).await;
    assert!(pd != pa && pd != pc);

    // The child's end ends its session: 404, and a fresh session works.
    let r = b.call("iso", &c, 4, "crash", json!({})).await;
    assert_eq!(r.body["error"]["code"], -32000, "{}", r.text);
    let r = b.call("iso", &c, 5, "echo", json!({"text": "x"})).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(gone_within(pc, Duration::from_secs(10)).await);
    let e = b.init("iso").await;
    assert_eq!(
        text_of(
            &b.call("iso", &e, 6, "echo", json!({"text": "fresh"}))
                .await
                .body
        ),
        "fresh"
    );

    // Stateless requests and the OpenAPI view would share a child: refused.
    let r = b
        .post(
            "iso",
            None,
            &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list",
            "params": {"_meta": common::stateless_meta()}}),
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/list"),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("per-session"), "{}", r.text);
    let r = b.get("/openapi/iso/openapi.json").await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "per_session_server", "{}", r.text);
    assert_eq!(
        b.get("/readyz").await.status,
        200,
        "no resident child to wait for"
    );

    // The bridge's stop ends every session's child.
    let (pd, pe) = (pd, pid(&b, &e).await);
    b.stop().await;
    for p in [pd, pe] {
        assert!(
            gone_within(p, Duration::from_secs(5)).await,
            "child {p} outlived the bridge"
        );
    }
}
