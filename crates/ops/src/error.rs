//! The error type at the crate boundary.
//!
//! A failed iManage call is not an [`Error`]: it is an outcome, recorded on its step and in the
//! audit log, and reported in the [`crate::OperationReport`] (see [`crate::CallError`]). Errors
//! here are what stops the operator itself: a bad request, an unknown operation, the store.

use crate::OperationId;

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the operator can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed; the operation's state is as last committed.
    #[error("store: {0}")]
    Store(#[from] store::Error),

    /// No person with that id (nor an alias of one) in the graph.
    #[error("no person {0:?} in the graph")]
    UnknownPerson(String),

    /// No such group in the graph.
    #[error("no group {group_id:?} in database {database:?} in the graph")]
    UnknownGroup {
        /// The database asked for.
        database: String,
        /// The group asked for.
        group_id: String,
    },

    /// No operation with that id.
    #[error("no operation {0}")]
    UnknownOperation(OperationId),

    /// Another process is applying the operation (its heartbeat is recent).
    #[error(
        "operation {id} is being applied by {} (last heartbeat {age_ms} ms ago); \
         re-run it once that apply ends, or after it has been silent for {lease_ms} ms",
        applied_by.as_deref().unwrap_or("someone")
    )]
    Busy {
        /// The operation.
        id: OperationId,
        /// Who applies it.
        applied_by: Option<String>,
        /// How long ago its heartbeat was.
        age_ms: i64,
        /// How long a silent apply counts as alive.
        lease_ms: i64,
    },

    /// This apply lost its claim on the operation (it was silent longer than the lease and
    /// another process took over). It stopped without recording anything further.
    #[error("lost the claim on operation {0} to another apply; stopped")]
    LeaseLost(OperationId),

    /// A request the operator cannot plan (an empty login, an email without `@`, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A stored plan that this version cannot read back.
    #[error("stored operation {id} is unreadable: {detail}")]
    Corrupt {
        /// The operation.
        id: OperationId,
        /// What was wrong.
        detail: String,
    },

    /// Encoding a plan as JSON failed (not expected for these types).
    #[error("cannot encode the plan: {0}")]
    Encode(#[source] serde_json::Error),

    /// Resolving the graph did not finish (the resolver panicked or its task was cancelled).
    #[error("resolving the graph did not finish: {0}")]
    Resolve(String),
}
