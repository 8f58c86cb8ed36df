//! idgraph's store: every harvest, with history, in SQLite (the zero set-up default) or
//! PostgreSQL (production), through sqlx.
//!
//! This is the only crate that writes SQL. It keeps, per database (an iManage `customer_id`), the
//! accounts, groups, memberships and workspace security that the last complete harvest found, the
//! rows that earlier harvests found and later ones did not (with first- and last-seen times), a
//! change log between harvests, the run bookkeeping, analysts' overrides, person ids and an audit
//! log. It knows nothing about HTTP or iManage's API.
//!
//! A harvest commits each database in one transaction ([`Store::commit_database`]): the snapshot
//! is diffed against the stored state, only the difference is written, and nothing is written
//! unless all of it commits. A failed crawl ([`Store::fail_database`]) never touches the data.
//!
//! The backend is chosen by URL: `sqlite://PATH` (the file is created if missing; WAL, foreign
//! keys on, a busy timeout) or `postgres://...`. Migrations for each backend live in the
//! repository's `migrations/` folder and are embedded in the binary.
//!
//! Concurrency and failure: writers of one database are serialized (SQLite has one writer;
//! PostgreSQL locks the database's row), change-log ids follow commit order, and every operation
//! is one transaction, so a process killed at any point leaves the last committed state. A
//! future dropped mid-transaction (a timeout, an aborted task) rolls back too: its connection is
//! closed rather than returned to the pool half-way through a statement. Runs a dead process
//! left `running` are marked `abandoned` by the next [`Store::start_run`].
//!
//! Several processes on one PostgreSQL store: [`Store::try_lead_harvest`] elects the one that
//! harvests (an advisory lock), and [`Store::state_changes`] (`LISTEN`) with
//! [`Store::state_generation`] (a cheap fingerprint to poll) tell the others that a new state was
//! committed.

#![warn(missing_docs)]

mod audit;
mod commit;
mod diff;
mod error;
mod hash;
mod operations;
mod owner_lock;
mod persons;
mod read;
mod replica;
mod runs;
mod sql;
pub mod synthetic;
mod tables;
mod types;

use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgConnection, PgPool, SqlitePool};
use tokio::sync::Mutex;

pub use error::{Error, Result};
pub use operations::*;
pub use replica::{HarvestLeadership, StateChanges, StateGeneration, STATE_CHANNEL};
pub use types::*;

use sql::{Open, Tx};

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// The first key of every PostgreSQL advisory lock the store takes ("idgr"), so its locks cannot
/// meet another application's two-key locks.
const LOCK_NAMESPACE: i32 = 0x6964_6772;
/// Second keys of the store's own advisory locks; store owners are positive, these are not.
const LOCK_CHANGE_LOG: i32 = -1;
const LOCK_PERSONS: i32 = -2;
/// Held (session-level) by the one process that harvests; see [`Store::try_lead_harvest`].
const LOCK_HARVEST_LEADER: i32 = -3;

/// How to size and time out the connection pool.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections in the pool at most (SQLite in memory always uses one).
    pub max_connections: u32,
    /// How long to wait for a free connection.
    pub acquire_timeout: Duration,
    /// How long SQLite waits for another process's write lock before giving up.
    pub busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(30),
        }
    }
}

enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

struct Inner {
    pool: Pool,
    /// A random id for this store instance, recorded on the runs it starts.
    owner: i32,
    /// SQLite in memory: the database dies with its only connection, which must never close.
    sqlite_memory: bool,
    /// Serializes this process's SQLite writers, which SQLite allows one at a time anyway;
    /// queueing here beats polling on `SQLITE_BUSY`.
    sqlite_writer: Arc<Mutex<()>>,
    /// PostgreSQL only: a connection holding the advisory lock `(LOCK_NAMESPACE, owner)` for as
    /// long as this instance lives, which tells other processes that its runs are alive.
    liveness: Mutex<Option<PgConnection>>,
    /// SQLite on a file: the file, and once this instance has started a run, its locked owner
    /// file, which tells other processes the same (`owner_lock.rs`).
    sqlite_file: Option<PathBuf>,
    owner_lock: std::sync::Mutex<Option<owner_lock::OwnerLock>>,
    /// Database commits under way at once, at most one per core (see `commit_database`).
    commits: tokio::sync::Semaphore,
}

/// A handle on the store; cheap to clone, every clone shares one pool.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .field("owner", &self.inner.owner)
            .finish_non_exhaustive()
    }
}

/// Runs the same body against whichever pool the store holds (see `sql::on_tx`).
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.inner.pool {
            $crate::Pool::Sqlite($pool) => $body,
            $crate::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// The current time in unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A counter as the signed 64-bit integer both backends store, saturating rather than wrapping.
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The inverse of [`to_i64`]; negative values (never written) read as zero.
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn random_owner() -> i32 {
    // `RandomState` is seeded from the OS per process and varies per instance; mixing in the pid
    // and the clock separates instances created in the same instant.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_i64(now_ms());
    // Positive, so the store's own fixed lock keys (negative) can never collide with an owner.
    (h.finish() & 0x7fff_fffe) as i32 + 1
}

impl Store {
    /// Opens the store at `url` (`sqlite://PATH` or `postgres://...`) with default pool options.
    /// Does not migrate.
    pub async fn connect(url: &str) -> Result<Store> {
        Store::connect_with(url, &StoreOptions::default()).await
    }

    /// Opens the store at `url` with the given pool options. Does not migrate.
    pub async fn connect_with(url: &str, options: &StoreOptions) -> Result<Store> {
        let memory =
            url.starts_with("sqlite:") && (url.contains(":memory:") || url.contains("mode=memory"));
        let mut sqlite_file = None;
        let pool = if url.starts_with("sqlite:") {
            let mut opts = SqliteConnectOptions::from_str(url)
                .map_err(Error::Connect)?
                .create_if_missing(true)
                .foreign_keys(true)
                .busy_timeout(options.busy_timeout)
                // With WAL, NORMAL loses at most the last commits on power loss, never
                // consistency; FULL would fsync every commit.
                .synchronous(SqliteSynchronous::Normal)
                .pragma("temp_store", "memory")
                .pragma("cache_size", "-32768");
            let mut pool = SqlitePoolOptions::new().acquire_timeout(options.acquire_timeout);
            if memory {
                // Every connection to an in-memory database would see its own empty database,
                // and the last one closing would drop it: keep exactly one, forever.
                pool = pool
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            } else {
                opts = opts.journal_mode(SqliteJournalMode::Wal);
                pool = pool.max_connections(options.max_connections.max(1));
                sqlite_file = Some(opts.get_filename().to_path_buf());
            }
            Pool::Sqlite(pool.connect_with(opts).await.map_err(Error::Connect)?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)
                .map_err(Error::Connect)?
                .application_name("idgraph");
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(options.max_connections.max(2))
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(opts)
                    .await
                    .map_err(Error::Connect)?,
            )
        } else {
            return Err(Error::UnsupportedUrl);
        };
        Ok(Store {
            inner: Arc::new(Inner {
                pool,
                owner: random_owner(),
                sqlite_memory: memory,
                sqlite_writer: Arc::new(Mutex::new(())),
                liveness: Mutex::new(None),
                sqlite_file,
                owner_lock: std::sync::Mutex::new(None),
                commits: tokio::sync::Semaphore::new(
                    std::thread::available_parallelism().map_or(1, |n| n.get()),
                ),
            }),
        })
    }

    /// Applies the embedded migrations of this backend. Idempotent, and safe to run from several
    /// processes at once (sqlx takes a lock on PostgreSQL; SQLite allows one writer).
    pub async fn migrate(&self) -> Result<()> {
        match &self.inner.pool {
            Pool::Sqlite(p) => SQLITE_MIGRATOR.run(p).await?,
            Pool::Postgres(p) => POSTGRES_MIGRATOR.run(p).await?,
        }
        Ok(())
    }

    /// This instance's SQLite owner lock, if it has taken one.
    fn owner_lock(&self) -> std::sync::MutexGuard<'_, Option<owner_lock::OwnerLock>> {
        self.inner
            .owner_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// SQLite: whether the store instance `owner` (this one or another process's) is alive, or
    /// `None` for an in-memory database, where nothing tells.
    pub(crate) fn sqlite_owner_alive(&self, owner: i64) -> Option<bool> {
        if owner == i64::from(self.inner.owner) {
            return Some(true);
        }
        let file = self.inner.sqlite_file.as_deref()?;
        Some(owner_lock::is_alive(file, owner))
    }

    /// Which backend this store talks to.
    pub fn backend(&self) -> Backend {
        match &self.inner.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Closes every connection. Runs this instance left running will be found abandoned by the
    /// next [`Store::start_run`] of another instance. Other clones become unusable.
    pub async fn close(&self) {
        if let Some(conn) = self.inner.liveness.lock().await.take() {
            // Closing is best effort: if it fails the server drops the lock with the socket.
            let _ = conn.close().await;
        }
        drop(self.owner_lock().take());
        on_pool!(self, p => p.close().await);
    }

    /// A write transaction. SQLite: this process's writer lock, then `BEGIN IMMEDIATE`, so the
    /// transaction holds the file's write lock from its first statement and can never fail to
    /// upgrade halfway. PostgreSQL: a plain transaction; callers lock what they serialize on.
    pub(crate) async fn begin_write(&self) -> Result<Tx> {
        match &self.inner.pool {
            Pool::Sqlite(p) => {
                let guard = self.inner.sqlite_writer.clone().lock_owned().await;
                let conn = p.acquire().await?;
                let open = if self.inner.sqlite_memory {
                    Open::begin_keeping(conn, "BEGIN IMMEDIATE").await?
                } else {
                    Open::begin(conn, "BEGIN IMMEDIATE").await?
                };
                Ok(Tx::Sqlite(open, Some(guard)))
            }
            Pool::Postgres(p) => Ok(Tx::Postgres(
                Open::begin(p.acquire().await?, "BEGIN").await?,
            )),
        }
    }

    /// A read transaction that sees one consistent state throughout (a WAL snapshot in SQLite,
    /// `REPEATABLE READ` in PostgreSQL), so a harvest committing meanwhile cannot tear it.
    pub(crate) async fn begin_read(&self) -> Result<Tx> {
        match &self.inner.pool {
            Pool::Sqlite(p) => {
                let conn = p.acquire().await?;
                let open = if self.inner.sqlite_memory {
                    Open::begin_keeping(conn, "BEGIN").await?
                } else {
                    Open::begin(conn, "BEGIN").await?
                };
                Ok(Tx::Sqlite(open, None))
            }
            Pool::Postgres(p) => Ok(Tx::Postgres(
                Open::begin(
                    p.acquire().await?,
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                )
                .await?,
            )),
        }
    }

    /// Reads a small setting.
    pub async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        let v = on_pool!(self, p => {
            sqlx::query_scalar::<_, String>("SELECT value FROM meta WHERE key = $1")
                .bind(key)
                .fetch_optional(p)
                .await?
        });
        Ok(v)
    }

    /// Writes a small setting.
    pub async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sql::on_tx!(&mut tx, c => {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(key)
            .bind(value)
            .execute(c)
            .await?
            .rows_affected()
        });
        tx.commit().await
    }
}
