//! Stored Responses: what a stateless backend cannot keep.
//!
//! A `/v1/responses` request with `store` true (OpenAI's default: a request
//! that does not say `store: false` is stored) has its own input items and
//! the response object kept in the router's database, per API key, for
//! `[state] responses_retention` (30 days by default). A request with
//! `previous_response_id` gets that response's conversation (its input and
//! output items, and those of the responses it continued, oldest first)
//! put before its own input, here, before routing and translation: every
//! backend then sees the whole conversation, whether it serves the
//! Responses API itself (passed through; llama.cpp's is stateless, so the
//! id is never passed on) or is translated to chat completions. An id of
//! another key, or one unknown or expired, is a 404: one key never reads
//! another's data. `GET /v1/responses/{id}` and `DELETE` act on the
//! caller's own responses only. A conversation with a local-only turn
//! stays local-only: its continuation is routed as if the request said
//! `local-only`, so stored local data never reaches a cloud backend.
//! `item_reference` input items are replaced the same way by the stored
//! item they name (any input or output item with an id of the key's live
//! responses), before routing.

use crate::clock;
use crate::store::{Store, StoredResponse};
use axum::http::StatusCode;
use hwc_ai_core::ApiError;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Longest `previous_response_id` chain followed.
pub const MAX_CHAIN: usize = 1000;

/// The stored responses and their retention.
pub struct Responses {
    store: Store,
    retention: Duration,
}

/// What a request continues and what it brings: kept with its answer.
#[derive(Debug, Clone, Default)]
pub struct Turn {
    /// Whether the answer is to be stored (`store` is not false).
    pub store: bool,
    /// The response it continues.
    pub previous_id: Option<String>,
    /// The request's own input items, before the stored ones were added.
    pub input: Vec<Value>,
    /// From [`Responses::prepare`]: some response of the chain was
    /// local-only, so this one must be. Then set to whether this request
    /// went local-only, for what continues it.
    pub local_only: bool,
}

/// The request's `input` as items: a string is one user message.
pub fn input_items(input: Option<&Value>) -> Vec<Value> {
    match input {
        Some(Value::String(s)) => {
            vec![json!({"type": "message", "role": "user", "content": s})]
        }
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    }
}

/// The 404 for a response a key cannot see, in OpenAI's shape.
fn not_found(id: &str, param: Option<&str>) -> ApiError {
    let (code, message) = match param {
        Some(_) => (
            "previous_response_not_found",
            format!("Previous response with id '{id}' not found."),
        ),
        None => (
            "response_not_found",
            format!("Response with id '{id}' not found."),
        ),
    };
    let e = ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        code,
        message,
    );
    match param {
        Some(p) => e.with_param(p),
        None => e,
    }
}

fn store_error(e: crate::store::StoreError) -> ApiError {
    tracing::error!(error = %e, "responses store failed");
    ApiError::unavailable(
        "state_unavailable",
        "the router's state database is unavailable, so stored responses cannot be read or kept; retry later, or send the whole conversation with store: false",
        Duration::from_secs(1),
    )
}

impl Responses {
    /// Over `store`, keeping responses for `retention`.
    pub fn new(store: Store, retention: Duration) -> Self {
        Self { store, retention }
    }

    /// Whether something stored at `created_at` is within the retention.
    fn live(&self, created_at: i64) -> bool {
        clock::unix_now() - created_at < self.retention.as_secs() as i64
    }

    async fn get(&self, key: &str, id: &str) -> Result<Option<StoredResponse>, ApiError> {
        Ok(self
            .store
            .response(key, id)
            .await
            .map_err(store_error)?
            .filter(|r| self.live(r.created_at)))
    }

    /// Reads `store` and `previous_response_id` of a Responses request
    /// `body` of `key`, and puts the stored conversation before its input
    /// (`previous_response_id` stays, for the answer to echo; no upstream
    /// is sent it).
    pub async fn prepare(
        &self,
        key: &str,
        body: &mut Map<String, Value>,
    ) -> Result<Turn, ApiError> {
        let store = body.get("store").and_then(Value::as_bool) != Some(false);
        let input = input_items(body.get("input"));
        let previous_id = match body.get("previous_response_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(ApiError::invalid_request(
                    "invalid_previous_response_id",
                    "`previous_response_id` must be a string (the id of an earlier response)",
                )
                .with_param("previous_response_id"))
            }
        };
        let mut local_only = false;
        if let Some(first) = &previous_id {
            let mut chain: Vec<StoredResponse> = Vec::new();
            let mut next = Some(first.clone());
            let mut seen = std::collections::HashSet::new();
            while let Some(id) = next {
                // A backend that reuses ids could make a loop: stop there.
                if !seen.insert(id.clone()) {
                    break;
                }
                if chain.len() >= MAX_CHAIN {
                    return Err(ApiError::invalid_request(
                        "conversation_too_long",
                        format!("the previous_response_id chain is longer than {MAX_CHAIN} responses; start a new conversation with the whole input"),
                    ));
                }
                let Some(r) = self.get(key, &id).await? else {
                    // Only the id the client sent is named: an older one in
                    // the chain expired or was deleted.
                    return Err(not_found(first, Some("previous_response_id")));
                };
                next = r.previous_id.clone();
                local_only |= r.local_only;
                chain.push(r);
            }
            let mut items: Vec<Value> = Vec::new();
            for r in chain.iter().rev() {
                if let Ok(Value::Array(i)) = serde_json::from_slice(&r.input) {
                    items.extend(i);
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&r.response) {
                    if let Some(Value::Array(o)) = v.get("output") {
                        items.extend(o.iter().cloned());
                    }
                }
            }
            items.extend(input.iter().cloned());
            body.insert("input".into(), Value::Array(items));
        }
        local_only |= self.resolve_references(key, body).await?;
        Ok(Turn {
            store,
            previous_id,
            input,
            local_only,
        })
    }

    /// Replaces every `item_reference` input item of `body` by the stored
    /// item it names (one of `key`'s, live); true if one of them came from
    /// a local-only response. An id the key does not have is a 404.
    async fn resolve_references(
        &self,
        key: &str,
        body: &mut Map<String, Value>,
    ) -> Result<bool, ApiError> {
        let Some(Value::Array(items)) = body.get_mut("input") else {
            return Ok(false);
        };
        let mut local_only = false;
        for (i, item) in items.iter_mut().enumerate() {
            if item.get("type").and_then(Value::as_str) != Some("item_reference") {
                continue;
            }
            let Some(id) = item.get("id").and_then(Value::as_str) else {
                return Err(ApiError::invalid_request(
                    "invalid_item_reference",
                    format!("input[{i}]: an item_reference needs the `id` of a stored item"),
                )
                .with_param("input"));
            };
            let found = self
                .store
                .item(key, id)
                .await
                .map_err(store_error)?
                .filter(|(_, _, at)| self.live(*at));
            let Some((stored, local, _)) = found else {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    "item_not_found",
                    format!("Item with id '{id}' not found (input[{i}]): it is not among this key's stored responses, or it expired."),
                )
                .with_param("input"));
            };
            *item = serde_json::from_slice(&stored)
                .map_err(|e| ApiError::internal(format!("stored item {id} is not JSON: {e}")))?;
            local_only |= local;
        }
        Ok(local_only)
    }

    /// Sets `store` and `previous_response_id` of the response object `r`
    /// as they are for the client, and keeps it if the turn is stored. A
    /// store failure is logged: the answer itself is good.
    pub async fn keep(&self, key: &str, turn: &Turn, r: &mut Value) {
        let Some(obj) = r.as_object_mut() else { return };
        obj.insert("store".into(), Value::Bool(turn.store));
        obj.insert(
            "previous_response_id".into(),
            turn.previous_id.clone().map_or(Value::Null, Value::String),
        );
        if !turn.store {
            return;
        }
        let id = match obj.get("id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => {
                let id = format!("resp_{:032x}", rand::random::<u128>());
                obj.insert("id".into(), Value::String(id.clone()));
                id
            }
        };
        let stored = StoredResponse {
            previous_id: turn.previous_id.clone(),
            input: serde_json::to_vec(&turn.input).unwrap_or_else(|_| b"[]".to_vec()),
            response: serde_json::to_vec(r).unwrap_or_default(),
            local_only: turn.local_only,
            created_at: clock::unix_now(),
        };
        // Every item with an id, input and output, for item_reference.
        let outputs = r
            .get("output")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        let items: Vec<(String, Vec<u8>)> = turn
            .input
            .iter()
            .chain(outputs)
            .filter(|item| item.get("type").and_then(Value::as_str) != Some("item_reference"))
            .filter_map(|item| {
                let item_id = item.get("id").and_then(Value::as_str)?;
                Some((item_id.to_owned(), serde_json::to_vec(item).ok()?))
            })
            .collect();
        if let Err(e) = self.store.put_response(key, &id, &stored, &items).await {
            tracing::error!(error = %e, "cannot store response; previous_response_id = {id} will not be found");
        }
    }

    /// `GET /v1/responses/{id}`: the stored response object.
    pub async fn retrieve(&self, key: &str, id: &str) -> Result<Value, ApiError> {
        let r = self
            .get(key, id)
            .await?
            .ok_or_else(|| not_found(id, None))?;
        serde_json::from_slice(&r.response)
            .map_err(|e| ApiError::internal(format!("stored response {id} is not JSON: {e}")))
    }

    /// `GET /v1/responses/{id}/input_items`: its input items, as a list.
    pub async fn input_items(&self, key: &str, id: &str) -> Result<Value, ApiError> {
        let r = self
            .get(key, id)
            .await?
            .ok_or_else(|| not_found(id, None))?;
        let items: Vec<Value> = serde_json::from_slice(&r.input).unwrap_or_default();
        let first = items.first().and_then(|i| i.get("id")).cloned();
        let last = items.last().and_then(|i| i.get("id")).cloned();
        Ok(json!({
            "object": "list", "data": items,
            "first_id": first, "last_id": last, "has_more": false,
        }))
    }

    /// `DELETE /v1/responses/{id}`.
    pub async fn delete(&self, key: &str, id: &str) -> Result<Value, ApiError> {
        if !self
            .store
            .delete_response(key, id)
            .await
            .map_err(store_error)?
        {
            return Err(not_found(id, None));
        }
        Ok(json!({"id": id, "object": "response.deleted", "deleted": true}))
    }

    /// Drops responses older than the retention.
    pub async fn prune(&self) -> u64 {
        let before = clock::unix_now() - self.retention.as_secs() as i64;
        match self.store.prune_responses(before).await {
            Ok(n) => {
                if n > 0 {
                    tracing::debug!(removed = n, "pruned stored responses");
                }
                n
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot prune stored responses");
                0
            }
        }
    }
}
