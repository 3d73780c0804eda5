//! Several routers behind one address, sharing one PostgreSQL store
//! (`[state] url`): a conversation started on one goes on on another, an
//! `Idempotency-Key` answered by one is replayed by another, and a key's
//! daily budget counts what every router served. Against a real PostgreSQL
//! (`hwc_testkit::postgres`, started by the test). Rate limits stay per
//! router (docs/router.md).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::scripted::{answer, Upstream};
use common::{error_of, Router, ALICE, LIMITED_KEY};
use hwc_model_router::store::Store;
use serde_json::json;
use std::time::Duration;

fn config(pg: &str, upstream: &str) -> String {
    // The harness's config ends inside [state]: `url` lands there.
    format!(
        r#"url = "{pg}"
[[backends]]
name = "up"
kind = "openai"
urls = ["{upstream}"]
locality = "local"
[models.small]
targets = [{{ backend = "up", model = "up-model" }}]
"#
    )
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within 5 s: {what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_routers_share_conversations_idempotency_and_budgets() {
    let pg = hwc_testkit::postgres::shared().database("router");
    let up = Upstream::always(answer("Paris.")).await;
    let one = Router::start(&config(&pg, &up.url())).await;
    let two = Router::start(&config(&pg, &up.url())).await;

    // A Responses conversation started on one router goes on on the other.
    let (status, first) = one
        .respond(
            ALICE,
            json!({"model": "small", "input": "Capital of France?"}),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    let id = first["id"].as_str().unwrap();
    let (status, second) = two
        .respond(
            ALICE,
            json!({"model": "small", "input": "And its area?", "previous_response_id": id}),
        )
        .await;
    assert_eq!(status, 200, "{second}");
    let (_, _, sent) = up.request(1);
    let texts: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(texts, ["Capital of France?", "Paris.", "And its area?"]);
    let got = two
        .get(&format!("/v1/responses/{id}"), ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);

    // An Idempotency-Key answered by one router is replayed by the other.
    let body = json!({"model": "small", "messages": [{"role": "user", "content": "charge once"}]});
    let calls = up.calls();
    let send = |r: &Router| {
        r.post("/v1/chat/completions", ALICE)
            .header("idempotency-key", "op-7")
            .json(&body)
            .send()
    };
    let first = send(&one).await.unwrap();
    assert_eq!(first.status(), 200);
    let first = first.text().await.unwrap();
    let again = send(&two).await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.text().await.unwrap(), first);
    assert_eq!(up.calls(), calls + 1, "the model was called once");

    // `limited` may spend 30 tokens a day; each answer costs 15. Two on the
    // first router spend it, and the second router refuses the next one
    // once it has read what the first wrote (one flush interval, 50 ms
    // here); on its own it would have seen nothing spent.
    for _ in 0..2 {
        assert_eq!(one.chat(LIMITED_KEY, "small", false).await.status(), 200);
    }
    eventually("the second router sees the first one's usage", async || {
        two.status(LIMITED_KEY).await["usage"]["tokens_by_key"]["limited"] == json!(30)
    })
    .await;
    let (status, err) = error_of(two.chat(LIMITED_KEY, "small", false).await).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (429, Some("budget_exceeded")),
        "{err}"
    );

    one.stop().await;
    two.stop().await;
    // Both wrote to one database; its usage rows add up.
    let store = Store::open_url(&pg).await.unwrap();
    let day = hwc_ai_core::clock::utc_day(hwc_ai_core::clock::unix_now());
    let limited: u64 = store
        .usage_on(&day)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.key == "limited")
        .map(|r| r.prompt_tokens + r.completion_tokens)
        .sum();
    assert_eq!(limited, 30);
}

#[tokio::test]
async fn a_url_with_a_password_belongs_in_url_file() {
    let err = hwc_ai_core::config::load_str::<hwc_model_router::config::RouterConfig>(
        "[state]\nurl = \"postgres://router:s3cret@db.lan/hwc\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("url_file"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}
