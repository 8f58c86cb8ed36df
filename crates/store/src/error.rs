//! The store's error type.
//!
//! Messages never carry SQL text with data values: every value goes to the database as a bound
//! parameter, and the database's own messages (which `sqlx` shows) name constraints, not rows.

use crate::RunId;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is neither `sqlite://...` nor `postgres://...` (or `postgresql://...`).
    #[error("unsupported store URL: expected sqlite://PATH or postgres://...")]
    UnsupportedUrl,
    /// The store could not be opened or reached.
    #[error("could not open the store: {0}")]
    Connect(#[source] sqlx::Error),
    /// Applying the embedded migrations failed.
    #[error("migrating the store failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("store query failed: {0}")]
    Database(#[from] sqlx::Error),
    /// The run id was never returned by [`crate::Store::start_run`].
    #[error("run {0} does not exist")]
    UnknownRun(RunId),
    /// Nothing has ever been stored for this database.
    #[error("database {0:?} is not in the store")]
    UnknownDatabase(String),
    /// The snapshot contradicts itself (for example a row of another database).
    #[error("invalid snapshot: {0}")]
    InvalidSnapshot(String),
    /// An argument was out of range or contradictory.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A stored value could not be read back (a row written by something other than this crate,
    /// or a newer version of it).
    #[error("stored value in {column} is unreadable: {detail}")]
    Corrupt {
        /// The table and column, e.g. `accounts.group_ids`.
        column: &'static str,
        /// What was wrong with it.
        detail: String,
    },
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn corrupt(column: &'static str, detail: impl std::fmt::Display) -> Self {
        Error::Corrupt {
            column,
            detail: detail.to_string(),
        }
    }
}
