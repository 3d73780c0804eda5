//! The router's state: usage per key, model and day, stored answers for
//! `Idempotency-Key`, stored Responses. SQLite (a file, WAL) by default, or
//! PostgreSQL so several routers behind one address share budgets,
//! idempotency and stored responses (`[state] url`/`url_file`); one code
//! path for both ([`hwc_ai_core::db`]).

use hwc_ai_core::db::{db_err, Migration};
use sqlx::{AnyPool, Row};
use std::path::Path;

pub use hwc_ai_core::db::DbError as StoreError;

/// Usage added since the last flush, for one key and model on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// API key name.
    pub key: String,
    /// Resolved model.
    pub model: String,
    /// Requests.
    pub requests: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
}

/// An answer kept for a repeated `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    /// Hash of the request it answered, to refuse a reused key.
    pub request_hash: String,
    /// HTTP status.
    pub status: u16,
    /// `x-hwc-route` and `x-hwc-backend` values as sent.
    pub route: String,
    /// Backend that answered.
    pub backend: String,
    /// Response body.
    pub body: Vec<u8>,
    /// Unix seconds it was stored.
    pub created_at: i64,
}

/// The database handle.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
}

const SQLITE: &[Migration] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "response items",
        include_str!("../migrations/sqlite/0002_response_items.sql"),
    ),
];
const POSTGRES: &[Migration] = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "response items",
        include_str!("../migrations/postgres/0002_response_items.sql"),
    ),
];

/// A stored Responses API response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The response it continued, if any.
    pub previous_id: Option<String>,
    /// This request's own input items, a JSON array.
    pub input: Vec<u8>,
    /// The response object, JSON.
    pub response: Vec<u8>,
    /// It was a local-only request: what continues it stays local-only.
    pub local_only: bool,
    /// Unix seconds it was stored.
    pub created_at: i64,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` (relative:
    /// under `$STATE_DIRECTORY`).
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let path = hwc_ai_core::state::resolve(path);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError {
                what: format!("create {}", parent.display()),
                source: sqlx::Error::Io(e),
            })?;
        }
        Self::open_url(&hwc_ai_core::db::sqlite_url(&path)).await
    }

    /// Opens `url` (`sqlite://…` or `postgres://…`) and runs its
    /// migrations. SQLite syncs at `NORMAL`: at most the last commits of a
    /// power cut are lost, which the usage flush already accepts.
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        let (pool, _) = hwc_ai_core::db::open(
            url,
            hwc_ai_core::db::Options {
                sqlite: SQLITE,
                postgres: POSTGRES,
                sqlite_synchronous: "NORMAL",
                max_connections: (2, 8),
            },
        )
        .await?;
        Ok(Self { pool })
    }

    /// Adds usage rows in one transaction.
    pub async fn add_usage(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err("add_usage"))?;
        for r in rows {
            sqlx::query(
                "INSERT INTO usage (day, key, model, requests, prompt_tokens, completion_tokens)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (day, key, model) DO UPDATE SET
                   requests = usage.requests + excluded.requests,
                   prompt_tokens = usage.prompt_tokens + excluded.prompt_tokens,
                   completion_tokens = usage.completion_tokens + excluded.completion_tokens",
            )
            .bind(&r.day)
            .bind(&r.key)
            .bind(&r.model)
            .bind(r.requests as i64)
            .bind(r.prompt_tokens as i64)
            .bind(r.completion_tokens as i64)
            .execute(&mut *tx)
            .await
            .map_err(db_err("add_usage"))?;
        }
        tx.commit().await.map_err(db_err("add_usage"))
    }

    /// Every usage row of one UTC day.
    pub async fn usage_on(&self, day: &str) -> Result<Vec<UsageRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT day, key, model, requests, prompt_tokens, completion_tokens
             FROM usage WHERE day = $1 ORDER BY key, model",
        )
        .bind(day)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err("usage_on"))?;
        Ok(rows
            .into_iter()
            .map(|r| UsageRow {
                day: r.get(0),
                key: r.get(1),
                model: r.get(2),
                requests: r.get::<i64, _>(3) as u64,
                prompt_tokens: r.get::<i64, _>(4) as u64,
                completion_tokens: r.get::<i64, _>(5) as u64,
            })
            .collect())
    }

    /// The stored answer for a key's `Idempotency-Key`, if any.
    pub async fn answer(&self, key: &str, idem: &str) -> Result<Option<StoredAnswer>, StoreError> {
        let row = sqlx::query(
            "SELECT request_hash, status, route, backend, body, created_at
             FROM idempotency WHERE key = $1 AND idempotency_key = $2",
        )
        .bind(key)
        .bind(idem)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err("answer"))?;
        Ok(row.map(|r| StoredAnswer {
            request_hash: r.get(0),
            status: r.get::<i64, _>(1) as u16,
            route: r.get(2),
            backend: r.get(3),
            body: r.get(4),
            created_at: r.get(5),
        }))
    }

    /// Keeps an answer.
    pub async fn put_answer(
        &self,
        key: &str,
        idem: &str,
        a: &StoredAnswer,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO idempotency
             (key, idempotency_key, request_hash, status, route, backend, body, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (key, idempotency_key) DO UPDATE SET
               request_hash = excluded.request_hash, status = excluded.status,
               route = excluded.route, backend = excluded.backend,
               body = excluded.body, created_at = excluded.created_at",
        )
        .bind(key)
        .bind(idem)
        .bind(&a.request_hash)
        .bind(i64::from(a.status))
        .bind(&a.route)
        .bind(&a.backend)
        .bind(&a.body)
        .bind(a.created_at)
        .execute(&self.pool)
        .await
        .map_err(db_err("put_answer"))?;
        Ok(())
    }

    /// Drops answers stored before `before` (unix seconds).
    pub async fn prune_answers(&self, before: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM idempotency WHERE created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(db_err("prune_answers"))?;
        Ok(r.rows_affected())
    }

    /// Keeps a response of `key` under `id` (replacing one of that id),
    /// and its `items` (`(item id, item JSON)`), in one transaction.
    pub async fn put_response(
        &self,
        key: &str,
        id: &str,
        r: &StoredResponse,
        items: &[(String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err("put_response"))?;
        sqlx::query(
            "INSERT INTO responses (key, id, previous_id, input, response, local_only, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (key, id) DO UPDATE SET
               previous_id = excluded.previous_id, input = excluded.input,
               response = excluded.response, local_only = excluded.local_only,
               created_at = excluded.created_at",
        )
        .bind(key)
        .bind(id)
        .bind(&r.previous_id)
        .bind(&r.input)
        .bind(&r.response)
        .bind(i64::from(r.local_only))
        .bind(r.created_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err("put_response"))?;
        for (item_id, item) in items {
            sqlx::query(
                "INSERT INTO response_items (key, item_id, response_id, item, local_only, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (key, item_id) DO UPDATE SET
                   response_id = excluded.response_id, item = excluded.item,
                   local_only = excluded.local_only, created_at = excluded.created_at",
            )
            .bind(key)
            .bind(item_id)
            .bind(id)
            .bind(item)
            .bind(i64::from(r.local_only))
            .bind(r.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err("put_response"))?;
        }
        tx.commit().await.map_err(db_err("put_response"))
    }

    /// `key`'s stored item `item_id`: its JSON, whether its response was
    /// local-only, and when it was stored.
    pub async fn item(
        &self,
        key: &str,
        item_id: &str,
    ) -> Result<Option<(Vec<u8>, bool, i64)>, StoreError> {
        let row = sqlx::query(
            "SELECT item, local_only, created_at FROM response_items WHERE key = $1 AND item_id = $2",
        )
        .bind(key)
        .bind(item_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err("item"))?;
        Ok(row.map(|r| (r.get(0), r.get::<i64, _>(1) != 0, r.get(2))))
    }

    /// `key`'s response `id`, if it has one (another key's never).
    pub async fn response(
        &self,
        key: &str,
        id: &str,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let row = sqlx::query(
            "SELECT previous_id, input, response, local_only, created_at
             FROM responses WHERE key = $1 AND id = $2",
        )
        .bind(key)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err("response"))?;
        Ok(row.map(|r| StoredResponse {
            previous_id: r.get(0),
            input: r.get(1),
            response: r.get(2),
            local_only: r.get::<i64, _>(3) != 0,
            created_at: r.get(4),
        }))
    }

    /// Deletes `key`'s response `id`; false if it had none.
    pub async fn delete_response(&self, key: &str, id: &str) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM response_items WHERE key = $1 AND response_id = $2")
            .bind(key)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err("delete_response"))?;
        let r = sqlx::query("DELETE FROM responses WHERE key = $1 AND id = $2")
            .bind(key)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err("delete_response"))?;
        Ok(r.rows_affected() > 0)
    }

    /// Drops responses stored before `before` (unix seconds).
    pub async fn prune_responses(&self, before: i64) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM response_items WHERE created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(db_err("prune_responses"))?;
        let r = sqlx::query("DELETE FROM responses WHERE created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(db_err("prune_responses"))?;
        Ok(r.rows_affected())
    }

    /// Closes the pool, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
