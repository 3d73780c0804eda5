//! The router's SQLite database (WAL): usage per key, model and day, and
//! stored answers for `Idempotency-Key`, stored Responses. Schema is created on open.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::{Path, PathBuf};

/// A database problem, with the file named.
#[derive(Debug, thiserror::Error)]
#[error("state database {path}: {source}")]
pub struct StoreError {
    /// The database file.
    pub path: PathBuf,
    /// The driver's error.
    #[source]
    pub source: sqlx::Error,
}

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
    pool: SqlitePool,
    path: PathBuf,
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS usage (
        day TEXT NOT NULL, key TEXT NOT NULL, model TEXT NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (day, key, model))",
    "CREATE TABLE IF NOT EXISTS idempotency (
        key TEXT NOT NULL, idempotency_key TEXT NOT NULL,
        request_hash TEXT NOT NULL, status INTEGER NOT NULL,
        route TEXT NOT NULL, backend TEXT NOT NULL, body BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (key, idempotency_key))",
    "CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency (created_at)",
    // Stored Responses (`store` true): this request's own input items and
    // the response object, per key; `previous_id` links the chain.
    "CREATE TABLE IF NOT EXISTS responses (
        key TEXT NOT NULL, id TEXT NOT NULL, previous_id TEXT,
        input BLOB NOT NULL, response BLOB NOT NULL,
        local_only INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (key, id))",
    "CREATE INDEX IF NOT EXISTS responses_created ON responses (created_at)",
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
    /// Opens (creating if needed) the database at `path`.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let path = hwc_ai_core::state::resolve(path);
        let err = |source| StoreError {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| err(sqlx::Error::Io(e)))?;
        }
        let opts = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await
            .map_err(err)?;
        for stmt in SCHEMA {
            sqlx::query(stmt).execute(&pool).await.map_err(err)?;
        }
        Ok(Self { pool, path })
    }

    fn err(&self, source: sqlx::Error) -> StoreError {
        StoreError {
            path: self.path.clone(),
            source,
        }
    }

    /// Adds usage rows in one transaction.
    pub async fn add_usage(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.err(e))?;
        for r in rows {
            sqlx::query(
                "INSERT INTO usage (day, key, model, requests, prompt_tokens, completion_tokens)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (day, key, model) DO UPDATE SET
                   requests = requests + excluded.requests,
                   prompt_tokens = prompt_tokens + excluded.prompt_tokens,
                   completion_tokens = completion_tokens + excluded.completion_tokens",
            )
            .bind(&r.day)
            .bind(&r.key)
            .bind(&r.model)
            .bind(r.requests as i64)
            .bind(r.prompt_tokens as i64)
            .bind(r.completion_tokens as i64)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Every usage row of one UTC day.
    pub async fn usage_on(&self, day: &str) -> Result<Vec<UsageRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT day, key, model, requests, prompt_tokens, completion_tokens
             FROM usage WHERE day = ?1 ORDER BY key, model",
        )
        .bind(day)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
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
             FROM idempotency WHERE key = ?1 AND idempotency_key = ?2",
        )
        .bind(key)
        .bind(idem)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
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
            "INSERT OR REPLACE INTO idempotency
             (key, idempotency_key, request_hash, status, route, backend, body, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
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
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Drops answers stored before `before` (unix seconds).
    pub async fn prune_answers(&self, before: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM idempotency WHERE created_at < ?1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(r.rows_affected())
    }

    /// Keeps a response of `key` under `id` (replacing one of that id).
    pub async fn put_response(
        &self,
        key: &str,
        id: &str,
        r: &StoredResponse,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR REPLACE INTO responses (key, id, previous_id, input, response, local_only, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(key)
        .bind(id)
        .bind(&r.previous_id)
        .bind(&r.input)
        .bind(&r.response)
        .bind(r.local_only)
        .bind(r.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// `key`'s response `id`, if it has one (another key's never).
    pub async fn response(
        &self,
        key: &str,
        id: &str,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let row = sqlx::query(
            "SELECT previous_id, input, response, local_only, created_at
             FROM responses WHERE key = ?1 AND id = ?2",
        )
        .bind(key)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(row.map(|r| StoredResponse {
            previous_id: r.get(0),
            input: r.get(1),
            response: r.get(2),
            local_only: r.get(3),
            created_at: r.get(4),
        }))
    }

    /// Deletes `key`'s response `id`; false if it had none.
    pub async fn delete_response(&self, key: &str, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM responses WHERE key = ?1 AND id = ?2")
            .bind(key)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(r.rows_affected() > 0)
    }

    /// Drops responses stored before `before` (unix seconds).
    pub async fn prune_responses(&self, before: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM responses WHERE created_at < ?1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(r.rows_affected())
    }

    /// Closes the pool, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
