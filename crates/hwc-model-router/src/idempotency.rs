//! `Idempotency-Key` for non-streamed requests: a repeat within the window
//! gets the stored answer and the model is not called twice.
//!
//! Answers are stored per API key (one caller cannot read another's) with a
//! hash of the request: the same key with a different body is refused (422),
//! a repeat while the first is still running gets 409 with `Retry-After`.
//! Only successful answers are kept, so a failure can be retried.

use crate::clock;
use crate::store::{Store, StoredAnswer};
use hwc_ai_core::ApiError;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Longest `Idempotency-Key` accepted.
pub const MAX_KEY_LEN: usize = 255;

/// The idempotency store and the keys being worked on now.
pub struct Idempotency {
    store: Store,
    window: Duration,
    inflight: Arc<Mutex<HashSet<(String, String)>>>,
}

/// What to do with a request that carries an `Idempotency-Key`.
pub enum Claim {
    /// Answered before: send this.
    Replay(StoredAnswer),
    /// New: run it, then [`Idempotency::keep`] the answer.
    Fresh(Running),
}

/// A request being worked on; dropping it frees the key.
pub struct Running {
    slot: (String, String),
    hash: String,
    inflight: Arc<Mutex<HashSet<(String, String)>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.slot);
    }
}

/// Hash that identifies a request: path and body.
pub fn request_hash(path: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(path.as_bytes());
    h.update([0]);
    h.update(body);
    hex::encode(h.finalize())
}

impl Idempotency {
    /// Over `store`, keeping answers for `window`.
    pub fn new(store: Store, window: Duration) -> Self {
        Self {
            store,
            window,
            inflight: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// Claims `idem` for `key`'s request with hash `hash`.
    pub async fn claim(&self, key: &str, idem: &str, hash: String) -> Result<Claim, ApiError> {
        if idem.is_empty() || idem.len() > MAX_KEY_LEN || !idem.is_ascii() {
            return Err(ApiError::invalid_request(
                "invalid_idempotency_key",
                format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} ASCII characters"),
            ));
        }
        let slot = (key.to_string(), idem.to_string());
        if let Some(stored) = self.store.answer(key, idem).await.map_err(store_error)? {
            let fresh = clock::unix_now() - stored.created_at < self.window.as_secs() as i64;
            if fresh {
                if stored.request_hash != hash {
                    return Err(ApiError::new(
                        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_request_error",
                        "idempotency_key_reused",
                        "this Idempotency-Key was used for a different request; use a new key for a new request",
                    ));
                }
                return Ok(Claim::Replay(stored));
            }
        }
        let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        if !inflight.insert(slot.clone()) {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "invalid_request_error",
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is still running; retry after the Retry-After delay to get its answer",
            )
            .with_retry_after(Duration::from_secs(1)));
        }
        Ok(Claim::Fresh(Running {
            slot,
            hash,
            inflight: self.inflight.clone(),
        }))
    }

    /// Stores the answer of a claimed request. A store failure is logged,
    /// not sent to the client: the answer itself is good.
    pub async fn keep(&self, running: Running, route: String, backend: String, body: Vec<u8>) {
        let answer = StoredAnswer {
            request_hash: running.hash.clone(),
            status: 200,
            route,
            backend,
            body,
            created_at: clock::unix_now(),
        };
        if let Err(e) = self
            .store
            .put_answer(&running.slot.0, &running.slot.1, &answer)
            .await
        {
            tracing::error!(error = %e, "cannot store idempotent answer; a repeat would call the model again");
        }
    }

    /// Drops answers older than the window.
    pub async fn prune(&self) {
        let before = clock::unix_now() - self.window.as_secs() as i64;
        match self.store.prune_answers(before).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(removed = n, "pruned idempotent answers"),
            Err(e) => tracing::warn!(error = %e, "cannot prune idempotent answers"),
        }
    }
}

fn store_error(e: crate::store::StoreError) -> ApiError {
    tracing::error!(error = %e, "idempotency store failed");
    ApiError::unavailable(
        "state_unavailable",
        "the router's state database is unavailable, so Idempotency-Key cannot be honoured; retry later or send without it",
        Duration::from_secs(1),
    )
}
