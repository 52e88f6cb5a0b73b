//! The connection every aggregate module shares: one `AnyPool` over a SQLite file (the default)
//! or PostgreSQL, migrated on connect from `migrations/sqlite` or `migrations/postgres`. The SQL
//! of the modules is the common dialect of the two (`$n` parameters, `ON CONFLICT`,
//! `RETURNING`). Also the store's error type and the helpers rows share.

use procure_domain::{Currency, Money};
use sqlx::{AnyPool, any::AnyPoolOptions};
use std::{str::FromStr, time::Duration};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("idempotency key reused with a different request")]
    IdempotencyConflict,
    #[error("insufficient stock for {sku}: requested {requested}, available {available}")]
    OutOfStock {
        sku: String,
        requested: u32,
        available: i64,
    },
    #[error("{0}")]
    StateConflict(String),
    #[error("unknown sku {0}")]
    UnknownSku(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub(crate) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// An amount stored as minor units and a currency code.
pub(crate) fn money(minor: i64, currency: &str) -> Result<Money> {
    Ok(Money::new(
        minor,
        Currency::from_str(currency).map_err(corrupt)?,
    ))
}

/// A stored status word as its enum.
pub(crate) fn parse<T: FromStr>(s: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(corrupt)
}

/// A JSON document stored as text.
pub(crate) fn json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(corrupt)
}

/// A count or measure that must fit `u32` (a corrupt row saturates rather than wraps).
/// `$first,$first+1,…`: the bound values of an `IN (…)` list of `count` items, numbered after
/// the statement's other parameters.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn u32_of(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// The database file of a `sqlite:` URL; `None` for an in-memory database.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| path.into())
}

/// An exclusive lock on `<db>.migrate.lock`, held until the returned file is dropped; waits
/// (off the async threads) while another process holds it.
async fn migration_lock(db: &std::path::Path) -> Result<std::fs::File> {
    let mut name = db.as_os_str().to_owned();
    name.push(".migrate.lock");
    let path = std::path::PathBuf::from(name);
    tokio::task::spawn_blocking(move || {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|locked| locked)
    .map_err(|e| {
        sqlx::Error::Io(std::io::Error::new(
            e.kind(),
            format!("the migration lock beside the database file: {e}"),
        ))
        .into()
    })
}

impl Store {
    /// Connect and migrate. `sqlite://path/to/file.db` (created when missing) or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Store> {
        let max = if url.starts_with("sqlite:") { 8 } else { 16 };
        Store::connect_with(url, max, Duration::from_secs(30)).await
    }

    /// As [`Store::connect`], with at most `max_connections` pooled connections, each caller
    /// waiting at most `acquire_timeout` for one.
    pub async fn connect_with(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::Corrupt(
                "database URL must start with sqlite: or postgres:".into(),
            ));
        };
        let pool = match backend {
            Backend::Sqlite => {
                let url = if url.contains('?') {
                    url.to_owned()
                } else {
                    format!("{url}?mode=rwc")
                };
                AnyPoolOptions::new()
                    .max_connections(max_connections)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // WAL lets readers run beside the single writer; the busy timeout
                            // makes concurrent writers queue instead of failing.
                            sqlx::query("PRAGMA journal_mode=WAL")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("PRAGMA synchronous=NORMAL")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("PRAGMA busy_timeout=10000")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("PRAGMA foreign_keys=ON")
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    })
                    .acquire_timeout(acquire_timeout)
                    .connect(&url)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(acquire_timeout)
                    .connect(url)
                    .await?
            }
        };
        match backend {
            Backend::Sqlite => {
                // sqlx takes an advisory lock while migrating PostgreSQL, but has none for
                // SQLite: processes starting together on a fresh file (an API and its workers)
                // would apply the same script twice. A lock on a file beside the database
                // makes them migrate one after the other.
                let _lock = match sqlite_file(url) {
                    Some(db) => Some(migration_lock(&db).await?),
                    None => None,
                };
                SQLITE_MIGRATIONS.run(&pool).await?
            }
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Store { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// One round trip to the database (the readiness check).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
