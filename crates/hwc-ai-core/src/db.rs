//! One store opener for the daemons that keep state in a database: SQLite
//! (a file, WAL) embedded by default, or PostgreSQL so several instances on
//! several hosts share it. One code path for both, through sqlx's `Any`
//! driver: queries use `$N` placeholders (sqlx's SQLite driver maps `$N` to
//! argument N) and portable types (`BIGINT`, `TEXT`, bytes), and each
//! backend has its own migrations, so their DDL may differ where the
//! dialects do.
//!
//! Durability: a write returns after its transaction commits; with SQLite
//! that is the WAL written with the `synchronous` level the caller chose,
//! with PostgreSQL the server's commit.

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// An embedded file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// One migration: (version, description, SQL), embedded with
/// `include_str!` rather than `sqlx::migrate!` so no crate needs sqlx's
/// proc-macros.
pub type Migration = (i64, &'static str, &'static str);

/// How to open a store.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// SQLite's migrations, in order.
    pub sqlite: &'static [Migration],
    /// PostgreSQL's migrations, in order.
    pub postgres: &'static [Migration],
    /// SQLite's `synchronous` level: `FULL` where an acknowledged write
    /// must survive a power cut, `NORMAL` where losing the last commits is
    /// acceptable.
    pub sqlite_synchronous: &'static str,
    /// Connections in the pool, per backend: (SQLite, PostgreSQL).
    pub max_connections: (u32, u32),
}

/// A database problem, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("database ({what}): {source}")]
pub struct DbError {
    /// What the store was doing.
    pub what: String,
    /// The driver's error.
    #[source]
    pub source: sqlx::Error,
}

/// Wraps a driver error with what was being done.
pub fn db_err(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> DbError {
    let what = what.into();
    move |source| DbError { what, source }
}

/// The URL for a database file, created when missing.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
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

/// The backend a URL names, or why it names none.
pub fn backend_of(url: &str) -> Result<Backend, DbError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Backend::Postgres)
    } else {
        Err(DbError {
            what: "open".into(),
            source: sqlx::Error::Configuration(
                format!("`{}` is neither sqlite:// nor postgres://", redact_url(url)).into(),
            ),
        })
    }
}

fn migrator(steps: &'static [Migration]) -> sqlx::migrate::Migrator {
    use sqlx::migrate::{MigrationType, Migrator};
    use std::borrow::Cow;
    Migrator {
        migrations: Cow::Owned(
            steps
                .iter()
                .map(|(v, d, sql)| {
                    sqlx::migrate::Migration::new(
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

/// Opens `url` (`sqlite://…` or `postgres://…`) and runs its backend's
/// migrations.
pub async fn open(url: &str, o: Options) -> Result<(AnyPool, Backend), DbError> {
    sqlx::any::install_default_drivers();
    let backend = backend_of(url)?;
    let options = AnyConnectOptions::from_str(url).map_err(db_err("parse the URL"))?;
    let synchronous = o.sqlite_synchronous;
    let pool = AnyPoolOptions::new()
        .max_connections(match backend {
            Backend::Sqlite => o.max_connections.0,
            Backend::Postgres => o.max_connections.1,
        })
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute(format!("PRAGMA synchronous = {synchronous}").as_str())
                        .await?;
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
        Backend::Sqlite => o.sqlite,
        Backend::Postgres => o.postgres,
    });
    migrator.run(&pool).await.map_err(|e| DbError {
        what: "migrate".into(),
        source: e.into(),
    })?;
    Ok((pool, backend))
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
        assert!(backend_of("mysql://x").is_err());
    }
}
