//! The platform database: SQLite (the embedded default) or PostgreSQL, one
//! schema, migrations embedded in the binary.
//!
//! Both databases go through sqlx's `Any` driver, so every query is written
//! once, in the SQL both understand (`$n` parameters, `ON CONFLICT`).

mod audit;
pub use audit::AuditTarget;
mod bindings;
mod cache;
mod model;
mod organizations;
mod paging;
mod providers;
mod pull_secrets;
mod references;
mod replicas;
mod rollouts;
mod secrets;
mod tokens;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, ConnectOptions, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

pub use model::*;
pub use providers::{NewProvider, ProviderChanges};
pub use pull_secrets::NewImagePullSecret;
pub use rollouts::{Rollout, RolloutState, Rotation, Scope};
pub use secrets::{NewSecret, RemoteChanges};
pub use tokens::{TOKEN_PREFIX, hash_token};

use crate::crypto::CryptoError;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("database is unavailable: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The database a `sqlite:` or `postgres:` URL names.
    fn of_url(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::Invalid {
                field: "database_url",
                message: "use a sqlite:// or postgres:// URL".into(),
            })
        }
    }
}

/// The pool's size, timeouts and per-connection set-up for `backend`.
fn pool_options(backend: Backend) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(match backend {
            Backend::Sqlite => 8,
            Backend::Postgres => 16,
        })
        // Short, so that a database that is gone denies admissions quickly,
        // well inside the admission deadline.
        .acquire_timeout(Duration::from_secs(1))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                    )
                    .await?;
                }
                Ok(())
            })
        })
        // A SQLite transaction that failed to commit (a full disk) is rolled
        // back by SQLite, but the connection may still count it as open;
        // such a connection would later answer writes that never commit.
        // Ping it on release (which runs the queued rollback) and drop it
        // if it still thinks it is in a transaction.
        .after_release(move |conn, _| {
            Box::pin(async move {
                if backend != Backend::Sqlite {
                    return Ok(true);
                }
                sqlx::Connection::ping(&mut *conn).await?;
                Ok(!sqlx::Connection::is_in_transaction(&*conn))
            })
        })
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    url: Arc<str>,
    /// This process's id among the replicas sharing a PostgreSQL database.
    replica_id: Arc<str>,
    cache: Arc<cache::Cache>,
    /// SQLite takes one writer at a time; writers in this process queue here
    /// instead of failing with SQLITE_BUSY when a deferred transaction tries
    /// to upgrade its lock.
    write_lock: Option<Arc<Mutex<()>>>,
}

/// A write transaction, holding the SQLite write lock while it lives.
pub(crate) struct WriteTx {
    pub tx: Transaction<'static, Any>,
    _guard: Option<OwnedMutexGuard<()>>,
    /// On PostgreSQL: tell the other replicas about the change.
    sync: Option<Store>,
    cache: Arc<cache::Cache>,
}

impl Store {
    /// Connects to `url` (`sqlite:` or `postgres:`); a SQLite file is created
    /// when it does not exist.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
        let pool = pool_options(backend).connect_with(options).await?;
        Ok(Self {
            pool,
            backend,
            url: url.into(),
            replica_id: new_id().into(),
            cache: Arc::default(),
            write_lock: (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(()))),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Applies the embedded migrations.
    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) async fn write(&self) -> Result<WriteTx> {
        let guard = match &self.write_lock {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        let tx = self.pool.begin().await?;
        Ok(WriteTx {
            tx,
            _guard: guard,
            sync: (self.backend == Backend::Postgres).then(|| self.clone()),
            cache: self.cache.clone(),
        })
    }

    /// Turns on the read cache of the admission path. On PostgreSQL,
    /// background tasks keep this replica registered and listening for other
    /// replicas' changes, and the cache stays off while they cannot; they end
    /// when the returned handle is aborted.
    pub fn enable_cache(&self) -> Option<tokio::task::JoinHandle<()>> {
        match self.backend {
            Backend::Sqlite => {
                // One process owns a SQLite file; its own writes invalidate.
                self.cache.set_enabled(true);
                None
            }
            Backend::Postgres => Some(tokio::spawn(replicas::keep_in_sync(self.clone()))),
        }
    }

    /// Clears the read cache (after a key ring change, for instance).
    pub fn invalidate_cache(&self) {
        self.cache.invalidate();
    }

    pub(crate) fn cache(&self) -> &cache::Cache {
        &self.cache
    }
}

impl WriteTx {
    /// Commits a change that touches no cached table.
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    /// Commits a change to a cached table, and clears the caches of this
    /// process and of every other replica. On PostgreSQL it returns once every
    /// live replica has acknowledged (see `replicas`), so that the next
    /// admission anywhere sees the change.
    pub async fn commit_and_invalidate(mut self) -> Result<()> {
        let waiter = match &self.sync {
            Some(store) => Some(replicas::announce(store, &mut self.tx).await?),
            None => None,
        };
        let result = self.tx.commit().await;
        // Also after a failed commit: the outcome may be unknown.
        self.cache.invalidate();
        result?;
        if let Some(waiter) = waiter {
            waiter.wait().await;
        }
        Ok(())
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

/// RFC 3339 text for a stored time.
pub fn format_time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Turns a unique-constraint violation into a 409-shaped error.
pub(crate) fn conflict_on_unique(
    error: sqlx::Error,
    message: impl FnOnce() -> String,
) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(message()),
        _ => StoreError::Database(error),
    }
}
