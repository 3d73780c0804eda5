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

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// An embedded file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A database problem, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("database ({what}): {source}")]
pub struct StoreError {
    /// What the store was doing.
    pub what: String,
    /// The driver's error.
    #[source]
    pub source: sqlx::Error,
}

/// Wraps a driver error with what was being done.
pub fn db_err(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError {
    let what = what.into();
    move |source| StoreError { what, source }
}

/// The handle every module queries through.
#[derive(Debug, Clone)]
pub struct Store {
    /// The pool.
    pub pool: AnyPool,
    /// Which database.
    pub backend: Backend,
}

/// Each backend's migrations, in order: (version, description, SQL).
/// Embedded with `include_str!` rather than `sqlx::migrate!` so the crate
/// needs no sqlx proc-macros.
const SQLITE: &[(i64, &str, &str)] = &[
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
const POSTGRES: &[(i64, &str, &str)] = &[
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

fn migrator(steps: &'static [(i64, &'static str, &'static str)]) -> sqlx::migrate::Migrator {
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    use std::borrow::Cow;
    Migrator {
        migrations: Cow::Owned(
            steps
                .iter()
                .map(|(v, d, sql)| {
                    Migration::new(
                        *v,
                        Cow::Borrowed(*d),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect(),
        ),
        ..Migrator::DEFAULT
    }
}

/// The URL for a database file, created when missing.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

impl Store {
    /// Opens `url` (`sqlite://…` or `postgres://…`) and runs migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError {
                what: "open".into(),
                source: sqlx::Error::Configuration(
                    format!("`{}` is neither sqlite:// nor postgres://", redact_url(url)).into(),
                ),
            });
        };
        let options = AnyConnectOptions::from_str(url).map_err(db_err("parse the URL"))?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(db_err(format!("connect to {}", redact_url(url))))?;
        let migrator = migrator(match backend {
            Backend::Sqlite => SQLITE,
            Backend::Postgres => POSTGRES,
        });
        migrator.run(&pool).await.map_err(|e| StoreError {
            what: "migrate".into(),
            source: e.into(),
        })?;
        Ok(Self { pool, backend })
    }
}

/// `url` with any password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_never_show_passwords() {
        assert_eq!(
            redact_url("postgres://runner:s3cret@db.lan/hwc"),
            "postgres://runner:***@db.lan/hwc"
        );
        assert_eq!(
            redact_url("sqlite:///var/lib/x.db"),
            "sqlite:///var/lib/x.db"
        );
    }

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
