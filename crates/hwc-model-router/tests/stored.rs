//! Stored Responses: `store` (true unless the client says false),
//! `previous_response_id` resolved from the router's own store for
//! translated and passed-through backends alike, per key, and
//! `GET`/`DELETE /v1/responses/{id}`.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::scripted::{Act, Upstream};
use common::{client, error_of, Router, ALICE, LOCAL_KEY};
use futures_util::StreamExt;
use hwc_model_router::store::{Store, StoredResponse};
use hwc_model_router::stored::Responses;
use serde_json::{json, Value};
use std::time::Duration;

fn config(url: &str, responses_api: bool) -> String {
    format!(
        r#"
[[backends]]
name = "up"
kind = "openai"
urls = ["{url}"]
responses_api = {responses_api}
locality = "local"
[models.small]
targets = [{{ backend = "up", model = "up-model" }}]
"#
    )
}

fn chat_answer(text: &str) -> Act {
    Act::Json(
        200,
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000,
            "model": "up",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
        }),
        None,
    )
}

async fn respond(r: &Router, key: &str, body: Value) -> (u16, Value) {
    r.respond(key, body).await
}

#[tokio::test]
async fn a_conversation_goes_on_by_previous_response_id_on_a_chat_only_backend() {
    let up = Upstream::start(
        vec![
            chat_answer("Paris."),
            chat_answer("About 105 square km."),
            chat_answer("Yes."),
        ],
        chat_answer("?"),
    )
    .await;
    let r = Router::start(&config(&up.url(), false)).await;

    let (status, first) = respond(
        &r,
        ALICE,
        json!({"model": "small", "instructions": "Be brief.", "input": "Capital of France?"}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["store"], true, "OpenAI's default: stored");
    assert_eq!(first["previous_response_id"], Value::Null);
    let id1 = first["id"].as_str().unwrap().to_owned();

    let (status, second) = respond(
        &r,
        ALICE,
        json!({"model": "small", "input": "How big is it?", "previous_response_id": id1}),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["previous_response_id"], id1.as_str());
    let (_, _, sent) = up.request(1);
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Paris."},
            {"role": "user", "content": "How big is it?"},
        ]),
        "the first turn before the second; instructions are not carried over"
    );
    assert!(sent.get("previous_response_id").is_none());

    // Through the chain: the third turn sees both earlier ones.
    let id2 = second["id"].as_str().unwrap().to_owned();
    let (status, _) = respond(
        &r,
        ALICE,
        json!({"model": "small", "input": [{"role": "user", "content": [{"type": "input_text", "text": "Sure?"}]}],
               "previous_response_id": id2}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, _, sent) = up.request(2);
    let contents: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents,
        [
            "Capital of France?",
            "Paris.",
            "How big is it?",
            "About 105 square km.",
            "Sure?"
        ]
    );
    r.stop().await;
}

#[tokio::test]
async fn another_keys_or_an_unknown_id_is_a_404_and_nothing_is_sent() {
    let up = Upstream::always(chat_answer("secret answer")).await;
    let r = Router::start(&config(&up.url(), false)).await;
    let (_, first) = respond(&r, ALICE, json!({"model": "small", "input": "my secret"})).await;
    let id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(up.calls(), 1);

    for (key, id) in [(LOCAL_KEY, id.as_str()), (ALICE, "resp_unknown")] {
        let (status, err) = error_of(
            r.post("/v1/responses", key)
                .json(&json!({"model": "small", "input": "go on", "previous_response_id": id}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 404, "{err}");
        assert_eq!(err["type"], "invalid_request_error");
        assert_eq!(err["code"], "previous_response_not_found");
        assert_eq!(err["param"], "previous_response_id");
        assert!(!err.to_string().contains("secret"), "{err}");
    }
    // Another key can neither read nor delete it.
    let (status, err) = error_of(
        r.get(&format!("/v1/responses/{id}"), LOCAL_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404, "{err}");
    let (status, _) = error_of(
        client()
            .delete(format!("{}/v1/responses/{id}", r.url))
            .bearer_auth(LOCAL_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(up.calls(), 1, "nothing went upstream");
    // Still there for its owner.
    let resp = r
        .get(&format!("/v1/responses/{id}"), ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    r.stop().await;
}

#[tokio::test]
async fn get_returns_the_stored_response_and_delete_deletes_it() {
    let up = Upstream::always(chat_answer("Hi.")).await;
    let r = Router::start(&config(&up.url(), false)).await;
    let (_, created) = respond(&r, ALICE, json!({"model": "small", "input": "Hello"})).await;
    let id = created["id"].as_str().unwrap().to_owned();

    let got: Value = r
        .get(&format!("/v1/responses/{id}"), ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, created);
    let items: Value = r
        .get(&format!("/v1/responses/{id}/input_items"), ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(items["object"], "list");
    assert_eq!(items["data"][0]["content"], "Hello");

    let del = client()
        .delete(format!("{}/v1/responses/{id}", r.url))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    let del: Value = del.json().await.unwrap();
    assert_eq!(
        del,
        json!({"id": id, "object": "response.deleted", "deleted": true})
    );
    let (status, err) = error_of(
        r.get(&format!("/v1/responses/{id}"), ALICE)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(err["type"], "invalid_request_error");

    // store: false keeps nothing.
    let (_, unstored) = respond(
        &r,
        ALICE,
        json!({"model": "small", "input": "Hello", "store": false}),
    )
    .await;
    assert_eq!(unstored["store"], false);
    let resp = r
        .get(
            &format!("/v1/responses/{}", unstored["id"].as_str().unwrap()),
            ALICE,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    r.stop().await;
}

async fn final_response(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), 200);
    let mut text = String::new();
    let mut s = resp.bytes_stream();
    while let Some(b) = s.next().await {
        text.push_str(&String::from_utf8_lossy(&b.unwrap()));
        if text.contains("response.completed") && text.ends_with("\n\n") {
            break; // as Codex does: leave the moment it has the final event
        }
    }
    let data = text
        .split("\n\n")
        .find(|e| e.contains("event: response.completed"))
        .and_then(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .unwrap_or_else(|| panic!("no response.completed: {text}"));
    let v: Value = serde_json::from_str(data).unwrap();
    v["response"].clone()
}

#[tokio::test]
async fn a_stream_is_stored_when_its_completed_event_goes_out() {
    let up = Upstream::start(
        vec![common::scripted::stream_of(&["Par", "is."], Duration::ZERO)],
        chat_answer("Big."),
    )
    .await;
    let r = Router::start(&config(&up.url(), false)).await;
    let resp = r
        .post("/v1/responses", ALICE)
        .json(&json!({"model": "small", "input": "Capital of France?", "stream": true}))
        .send()
        .await
        .unwrap();
    let done = final_response(resp).await;
    assert_eq!(done["store"], true);
    let id = done["id"].as_str().unwrap().to_owned();
    // The next turn at once: the first was stored before its final event.
    let (status, second) = respond(
        &r,
        ALICE,
        json!({"model": "small", "input": "How big?", "previous_response_id": id}),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    let (_, _, sent) = up.request(1);
    assert_eq!(sent["messages"][1]["content"], "Paris.");
    let got: Value = r
        .get(&format!("/v1/responses/{id}"), ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["output"][0]["content"][0]["text"], "Paris.");
    r.stop().await;
}

fn upstream_response(id: &str, text: &str) -> Act {
    Act::Json(
        200,
        json!({
            "id": id, "object": "response", "status": "completed", "model": "/m.gguf",
            "store": false,
            "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": text, "annotations": []}]}],
            "usage": {"input_tokens": 5, "output_tokens": 1, "total_tokens": 6}
        }),
        None,
    )
}

#[tokio::test]
async fn a_passthrough_backend_gets_the_conversation_not_the_id() {
    let up = Upstream::start(
        vec![
            upstream_response("resp_up1", "Paris."),
            Act::Sse(
                common::scripted::responses_parts(&["Big"], Duration::ZERO),
                true,
            ),
        ],
        upstream_response("resp_up3", "Yes."),
    )
    .await;
    let r = Router::start(&config(&up.url(), true)).await;
    let (status, first) = respond(&r, ALICE, json!({"model": "small", "input": "Capital?"})).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["id"], "resp_up1");
    assert_eq!(first["store"], true, "the router stores it");

    let resp = r
        .post("/v1/responses", ALICE)
        .json(
            &json!({"model": "small", "input": "How big?", "stream": true,
                      "previous_response_id": "resp_up1"}),
        )
        .send()
        .await
        .unwrap();
    let done = final_response(resp).await;
    let (path, _, sent) = up.request(1);
    assert_eq!(path, "responses");
    assert!(sent.get("previous_response_id").is_none(), "{sent}");
    let input = sent["input"].as_array().unwrap();
    assert_eq!(input.len(), 3, "{sent}");
    assert_eq!(input[0]["content"], "Capital?");
    assert_eq!(input[1]["content"][0]["text"], "Paris.");
    assert_eq!(input[2]["content"], "How big?");

    // The passed-through stream's final response is stored under its id.
    let id2 = done["id"].as_str().unwrap();
    let got: Value = r
        .get(&format!("/v1/responses/{id2}"), ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["previous_response_id"], "resp_up1");
    assert_eq!(got["store"], true);
    r.stop().await;
}

#[tokio::test]
async fn the_retention_sweep_removes_old_responses() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("r.sqlite")).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let day = 24 * 3600;
    for (id, age) in [("resp_old", 31 * day), ("resp_new", day)] {
        store
            .put_response(
                "alice",
                id,
                &StoredResponse {
                    previous_id: None,
                    input: b"[]".to_vec(),
                    response: json!({"id": id, "object": "response", "output": []})
                        .to_string()
                        .into_bytes(),
                    local_only: false,
                    created_at: now - age,
                },
                &[],
            )
            .await
            .unwrap();
    }
    let responses = Responses::new(store.clone(), Duration::from_secs(30 * day as u64));
    assert_eq!(responses.prune().await, 1);
    assert!(store.response("alice", "resp_old").await.unwrap().is_none());
    assert!(responses.retrieve("alice", "resp_new").await.is_ok());
    assert!(responses.retrieve("bob", "resp_new").await.is_err());
    // The default retention is 30 days.
    assert_eq!(
        hwc_model_router::config::StateConfig::default().responses_retention,
        Duration::from_secs(30 * day as u64)
    );
    store.close().await;
}

#[tokio::test]
async fn a_local_only_conversation_stays_local_when_continued() {
    let local = Upstream::always(chat_answer("local says")).await;
    let cloud = Upstream::always(chat_answer("cloud says")).await;
    let r = Router::start(&format!(
        r#"
[[backends]]
name = "cloud"
kind = "openai"
locality = "cloud"
urls = ["{cloud}"]
[[backends]]
name = "local"
kind = "openai"
locality = "local"
urls = ["{local}"]
[models.mixed]
targets = [{{ backend = "cloud", model = "c" }}, {{ backend = "local", model = "l" }}]
"#,
        cloud = cloud.url(),
        local = local.url()
    ))
    .await;
    let first: Value = r
        .post("/v1/responses", ALICE)
        .header("x-hwc-privacy", "local-only")
        .json(&json!({"model": "mixed", "input": "my local secret"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(local.calls(), 1);
    let id = first["id"].as_str().unwrap();
    // No header on the next turn: the conversation is still local-only.
    let (status, _) = respond(
        &r,
        ALICE,
        json!({"model": "mixed", "input": "go on", "previous_response_id": id}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(local.calls(), 2);
    assert_eq!(
        cloud.calls(),
        0,
        "the stored local-only turn never goes to the cloud"
    );
    // A new conversation without the header goes to the first target.
    let (status, _) = respond(&r, ALICE, json!({"model": "mixed", "input": "hello"})).await;
    assert_eq!(status, 200);
    assert_eq!(cloud.calls(), 1);
    r.stop().await;
}

#[tokio::test]
async fn item_references_are_replaced_by_the_stored_items_of_the_same_key() {
    let up = Upstream::start(
        vec![chat_answer("Paris."), chat_answer("About 105 square km.")],
        chat_answer("?"),
    )
    .await;
    let r = Router::start(&config(&up.url(), false)).await;
    let (status, first) = respond(
        &r,
        ALICE,
        json!({"model": "small", "input": [
            {"type": "message", "id": "msg_q1", "role": "user", "content": "Capital of France?"}]}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let answer_id = first["output"][0]["id"].as_str().unwrap().to_owned();

    // Both the earlier input item and the answer's output item, by id.
    let (status, second) = respond(
        &r,
        ALICE,
        json!({"model": "small", "input": [
            {"type": "item_reference", "id": "msg_q1"},
            {"type": "item_reference", "id": answer_id},
            {"role": "user", "content": "How big is it?"}]}),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    let (_, _, sent) = up.request(1);
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Paris."},
            {"role": "user", "content": "How big is it?"},
        ])
    );

    // Another key's item, or an unknown one: a 404, nothing sent.
    let calls = up.calls();
    for (key, id) in [(LOCAL_KEY, "msg_q1"), (ALICE, "msg_nope")] {
        let resp = r
            .post("/v1/responses", key)
            .json(&json!({"model": "small", "input": [{"type": "item_reference", "id": id}]}))
            .send()
            .await
            .unwrap();
        let (status, err) = error_of(resp).await;
        assert_eq!(
            (status, err["code"].as_str()),
            (404, Some("item_not_found")),
            "{err}"
        );
        assert!(err["message"].as_str().unwrap().contains(id));
    }
    assert_eq!(up.calls(), calls);

    // Deleting the response deletes its items.
    let id = first["id"].as_str().unwrap();
    let deleted = r
        .get(&format!("/v1/responses/{id}"), ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let del = client()
        .delete(format!("{}/v1/responses/{id}", r.url))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    let (status, err) = respond(
        &r,
        ALICE,
        json!({"model": "small", "input": [{"type": "item_reference", "id": "msg_q1"}]}),
    )
    .await;
    assert_eq!(status, 404, "{err}");
    r.stop().await;
}
