//! Change notifications through the bridge, in both eras, from a real
//! server: npm `server-everything` sends `notifications/resources/updated`
//! for subscribed URIs (once at once, then every 5 s) after its
//! `toggle-subscriber-updates` tool. The child has one connection (the
//! bridge's), so the bridge decides which client stream gets what. The
//! end-of-child cases use the fault injector (`crash`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{fault_server, Bridge};
use serde_json::{json, Value};
use std::time::Duration;

const META_SUB: &str = "io.modelcontextprotocol/subscriptionId";

fn everything() -> String {
    format!(
        "[[servers]]\nname = \"everything\"\ncommand = \"node\"\nargs = [\"{}\", \"stdio\"]\ncall_timeout = \"20s\"\n",
        hwc_testkit::mcp::entry_point().display()
    )
}

/// The first resource URI the server lists.
async fn a_resource(b: &Bridge, sid: &str) -> String {
    let r = b
        .post(
            "everything",
            Some(sid),
            &json!({"jsonrpc": "2.0", "id": 2, "method": "resources/list"}),
            &[],
        )
        .await;
    r.body["result"]["resources"][0]["uri"]
        .as_str()
        .unwrap_or_else(|| panic!("no resources: {}", r.text))
        .to_string()
}

async fn subscribe(b: &Bridge, sid: &str, verb: &str, uri: &str) -> Value {
    let r = b
        .post(
            "everything",
            Some(sid),
            &json!({"jsonrpc": "2.0", "id": 3, "method": format!("resources/{verb}"), "params": {"uri": uri}}),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

#[tokio::test]
async fn a_session_get_stream_carries_only_its_own_subscriptions_and_ends_with_the_session() {
    let b = Bridge::start(&everything()).await;
    let a = b.init("everything").await;
    let other = b.init("everything").await;
    let uri = a_resource(&b, &a).await;
    let mut a_stream = b.get_stream("everything", &a).await;
    assert_eq!(a_stream.status, 200);
    assert_eq!(
        a_stream.headers["content-type"], "text/event-stream",
        "{:?}",
        a_stream.headers
    );
    let mut other_stream = b.get_stream("everything", &other).await;
    assert!(subscribe(&b, &a, "subscribe", &uri)
        .await
        .get("result")
        .is_some());
    let r = b
        .call("everything", &a, 4, "toggle-subscriber-updates", json!({}))
        .await;
    assert!(r.body.get("result").is_some(), "{}", r.text);
    let note = a_stream
        .next(Duration::from_secs(15))
        .await
        .expect("the subscribed session's stream gets the update");
    assert_eq!(note["method"], "notifications/resources/updated", "{note}");
    assert_eq!(note["params"]["uri"], uri.as_str());
    assert!(
        note["params"].get("_meta").is_none(),
        "session-era notifications are passed on as the child sent them: {note}"
    );
    assert_eq!(
        other_stream.next(Duration::from_millis(300)).await,
        None,
        "a session that did not subscribe gets nothing"
    );
    // The other session's unsubscribe of a URI it never held does not
    // unsubscribe the child: the subscribed session keeps getting updates.
    assert_eq!(
        subscribe(&b, &other, "unsubscribe", &uri).await["result"],
        json!({})
    );
    let again = a_stream.next(Duration::from_secs(10)).await;
    assert!(again.is_some(), "updates go on (every 5 s)");
    // DELETE ends the session's stream.
    let del = b
        .http
        .delete(format!("{}/mcp/everything", b.d.url))
        .header("mcp-session-id", &a)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    assert!(a_stream.ends_within(Duration::from_secs(5)).await);
    // A GET without a session, with an ended one, or without SSE.
    let r = b.get("/mcp/everything").await;
    assert_eq!(r.status, 405, "{}", r.text);
    assert!(r.text.contains("subscriptions/listen"), "{}", r.text);
    let gone = b.get_stream("everything", &a).await;
    assert_eq!(gone.status, 404);
    let r = b
        .http
        .get(format!("{}/mcp/everything", b.d.url))
        .header("mcp-session-id", &other)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406);
    b.stop().await;
}

#[tokio::test]
async fn subscriptions_listen_acknowledges_filters_and_tags_with_its_id() {
    let b = Bridge::start(&everything()).await;
    let sid = b.init("everything").await;
    let uri = a_resource(&b, &sid).await;
    let mut s = b
        .listen(
            "everything",
            41,
            json!({"resourceSubscriptions": [uri], "promptsListChanged": true, "somethingNew": true}),
        )
        .await;
    assert_eq!(s.status, 200);
    let ack = s
        .next(Duration::from_secs(10))
        .await
        .expect("the ack first");
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(ack["params"]["_meta"][META_SUB], 41, "{ack}");
    assert_eq!(
        ack["params"]["notifications"],
        json!({"promptsListChanged": true, "resourceSubscriptions": [uri]}),
        "what the child supports, and nothing unknown: {ack}"
    );
    // Started from a session (the child has one connection): the update
    // for the URI reaches the listen stream, tagged.
    let r = b
        .call(
            "everything",
            &sid,
            5,
            "toggle-subscriber-updates",
            json!({}),
        )
        .await;
    assert!(r.body.get("result").is_some(), "{}", r.text);
    let note = s.next(Duration::from_secs(15)).await.expect("an update");
    assert_eq!(note["method"], "notifications/resources/updated", "{note}");
    assert_eq!(note["params"]["uri"], uri.as_str());
    assert_eq!(note["params"]["_meta"][META_SUB], 41, "{note}");
    // A listen that asked for nothing gets the ack and then nothing (and
    // stays open, until the bridge stops below).
    let mut quiet = b.listen("everything", 42, json!({})).await;
    let ack = quiet.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(ack["params"]["notifications"], json!({}), "{ack}");
    assert_eq!(quiet.next(Duration::from_secs(6)).await, None);
    // Bad filters are refused before a stream opens.
    for (filter, why) in [
        (Value::Null, "needs params.notifications"),
        (
            json!({"toolsListChanged": "yes"}),
            "not a subscription filter",
        ),
    ] {
        let body = if filter.is_null() {
            json!({"jsonrpc": "2.0", "id": 9, "method": "subscriptions/listen",
                "params": {"_meta": common::stateless_meta()}})
        } else {
            json!({"jsonrpc": "2.0", "id": 9, "method": "subscriptions/listen",
                "params": {"_meta": common::stateless_meta(), "notifications": filter}})
        };
        let r = b
            .post(
                "everything",
                None,
                &body,
                &[
                    ("mcp-protocol-version", "2026-07-28"),
                    ("mcp-method", "subscriptions/listen"),
                ],
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.text.contains(why), "{}", r.text);
    }
    // Open streams do not hold the drain: they end with the listen result.
    let t0 = std::time::Instant::now();
    b.stop().await;
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "open streams held the drain for {:?}",
        t0.elapsed()
    );
    let end = quiet
        .next(Duration::from_secs(5))
        .await
        .expect("the listen result at shutdown");
    assert_eq!(end["id"], 42, "{end}");
    assert_eq!(end["result"]["resultType"], "complete", "{end}");
}

#[tokio::test]
async fn streams_end_when_their_child_ends() {
    let b = Bridge::start(&fault_server(
        "f",
        "call_timeout = \"30s\"\n[servers.restart]\nbase = \"100ms\"\nmax = \"200ms\"",
    ))
    .await;
    let sid = b.init("f").await;
    let mut get = b.get_stream("f", &sid).await;
    let mut listen = b.listen("f", 7, json!({"toolsListChanged": true})).await;
    let ack = listen.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        ack["params"]["notifications"],
        json!({}),
        "the fault server declares no listChanged: {ack}"
    );
    let _ = b.call("f", &sid, 1, "crash", json!({})).await;
    let end = listen
        .next(Duration::from_secs(10))
        .await
        .expect("the listen result");
    assert_eq!(end["id"], 7, "{end}");
    assert_eq!(end["result"]["resultType"], "complete", "{end}");
    assert!(listen.ends_within(Duration::from_secs(5)).await);
    assert!(
        get.ends_within(Duration::from_secs(5)).await,
        "the session's GET stream ends with its child"
    );
    b.stop().await;
}
