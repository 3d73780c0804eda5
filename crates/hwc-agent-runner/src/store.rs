//! The runner's database: SQLite (WAL, `synchronous = FULL`) embedded by
//! default, or PostgreSQL so several runners on several hosts share jobs,
//! approvals and the audit chain. One code path for both, through sqlx's
//! `Any` driver: every query uses `$N` placeholders (sqlx's SQLite driver
//! maps `$N` to argument N) and only `BIGINT` and `TEXT` columns, and each
//! backend has its own migrations (`migrations/sqlite`, `migrations/postgres`)
//! so their DDL may differ where the dialects do.
//!
//! Durability: a write returns after its transaction commits; with SQLite
//! that is an fsync of the WAL (`synchronous = FULL`), with PostgreSQL the
//! server's commit. Callers acknowledge nothing before that.

use sqlx::AnyPool;

pub use hwc_ai_core::db::{db_err, redact_url, sqlite_url, Backend, DbError as StoreError};

/// The handle every module queries through.
#[derive(Debug, Clone)]
pub struct Store {
    /// The pool.
    pub pool: AnyPool,
    /// Which database.
    pub backend: Backend,
}

/// Each backend's migrations, in order.
const SQLITE: &[hwc_ai_core::db::Migration] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "sessions",
        include_str!("../migrations/sqlite/0002_sessions.sql"),
    ),
];
const POSTGRES: &[hwc_ai_core::db::Migration] = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "sessions",
        include_str!("../migrations/postgres/0002_sessions.sql"),
    ),
];

impl Store {
    /// Opens `url` (`sqlite://…` or `postgres://…`) and runs migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let (pool, backend) = hwc_ai_core::db::open(
            url,
            hwc_ai_core::db::Options {
                sqlite: SQLITE,
                postgres: POSTGRES,
                sqlite_synchronous: "FULL",
                max_connections: (4, 8),
            },
        )
        .await?;
        Ok(Self { pool, backend })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_opens_in_wal_mode_and_migrates_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = sqlite_url(&dir.path().join("runner.db"));
        for _ in 0..2 {
            let s = Store::open(&url).await.unwrap_or_else(|e| panic!("{e}"));
            let mode: (String,) = sqlx::query_as("PRAGMA journal_mode")
                .fetch_one(&s.pool)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(mode.0, "wal");
        }
        assert!(Store::open("mysql://x")
            .await
            .is_err_and(|e| e.to_string().contains("neither")));
    }
}
