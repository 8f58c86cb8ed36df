//! Several processes on one store: who harvests, and how the others hear of a new state.
//!
//! - **Harvest leadership** ([`Store::try_lead_harvest`]): on PostgreSQL, a session advisory
//!   lock `(LOCK_NAMESPACE, LOCK_HARVEST_LEADER)` held on a connection of its own. At most one
//!   session in the whole cluster holds it; when the holder's process dies its connection drops
//!   and the server releases the lock, so another process can take it. On SQLite there is
//!   nothing to coordinate (one process per file): the leadership is always granted.
//! - **State changes** ([`Store::state_changes`]): every transaction that changes what a graph is
//!   built from (a database's committed crawl, an override added or removed) sends
//!   `NOTIFY idgraph_state` on PostgreSQL inside the transaction, so the notification goes out
//!   exactly when it commits and never for a rollback. A harvest run's end (finished or
//!   abandoned) is announced the same way. Notifications sent while a listener's connection is
//!   down are lost; [`Store::state_generation`] is the check that catches up.
//! - **Whole harvests only** ([`Store::harvest_in_progress`]): a harvest commits database by
//!   database, so a process that loads the store while another one harvests would publish half
//!   of that harvest. Readers ask first and wait for the run's end.

use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection};
use tracing::warn;

use crate::error::{Error, Result};
use crate::sql::Tx;
use crate::{on_pool, Pool, Store, LOCK_HARVEST_LEADER, LOCK_NAMESPACE};

/// The PostgreSQL channel that state changes are announced on; the payload names what changed
/// (`commit:DATABASE`, `override`, `run-finished`).
pub const STATE_CHANNEL: &str = "idgraph_state";

/// A `running` run older than this no longer holds readers back (see
/// [`Store::harvest_in_progress`]).
pub const RUN_IN_PROGRESS_AT_MOST: std::time::Duration = std::time::Duration::from_secs(3600);

/// A fingerprint of the state a graph is built from: it differs whenever a database's crawl has
/// been committed or an override added or removed since it was taken. Compare two for equality;
/// the values mean nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateGeneration {
    /// Sum over databases of the last complete commit time: every commit moves it.
    commits: i64,
    /// Databases with a complete commit.
    complete: i64,
    /// Overrides ever added, the newest id, and how many were removed.
    overrides: (i64, i64, i64),
}

impl StateGeneration {
    /// Whether any database has a complete harvest, that is, whether there is a graph to build.
    pub fn any_complete(&self) -> bool {
        self.complete > 0
    }
}

/// Announces a state change inside `tx` (PostgreSQL; a no-op on SQLite). The notification is
/// delivered when, and only if, the transaction commits.
pub(crate) async fn notify_state_change(tx: &mut Tx, what: &str) -> Result<()> {
    if let Tx::Postgres(t) = tx {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(STATE_CHANNEL)
            .bind(what)
            .execute(&mut **t)
            .await?;
    }
    Ok(())
}

/// The right to harvest, held until released or until this process's connection to PostgreSQL
/// is lost. Dropping it closes the connection, which releases the lock as well.
#[derive(Debug)]
pub struct HarvestLeadership {
    /// PostgreSQL: the session holding the advisory lock. SQLite: none.
    conn: Option<PgConnection>,
}

impl HarvestLeadership {
    /// Whether the leadership is still held: on PostgreSQL, whether the session that holds the
    /// lock still answers (if it does not, the server has released the lock, or will, and
    /// another process may already hold it). Always true on SQLite.
    pub async fn is_held(&mut self) -> bool {
        match self.conn.as_mut() {
            None => true,
            Some(conn) => conn.ping().await.is_ok(),
        }
    }

    /// Gives the leadership up at once (rather than when the connection times out).
    pub async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            // Best effort: if the unlock fails, closing the session releases the lock anyway.
            let _ = sqlx::query("SELECT pg_advisory_unlock($1, $2)")
                .bind(LOCK_NAMESPACE)
                .bind(LOCK_HARVEST_LEADER)
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
        }
    }
}

/// Notifications of state changes committed by any process on the store (PostgreSQL).
pub struct StateChanges {
    listener: PgListener,
}

impl std::fmt::Debug for StateChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateChanges").finish_non_exhaustive()
    }
}

impl StateChanges {
    /// Waits for the next notification and returns its payload, or `None` when the listening
    /// connection was lost (it has been re-established, but notifications sent meanwhile are
    /// gone: check [`Store::state_generation`]). An error means it could not reconnect.
    pub async fn next(&mut self) -> Result<Option<String>> {
        Ok(self
            .listener
            .try_recv()
            .await?
            .map(|n| n.payload().to_string()))
    }
}

impl Store {
    /// Tries to become the harvest leader without waiting. `None` when another session holds
    /// the leadership. On SQLite the leadership is always granted.
    pub async fn try_lead_harvest(&self) -> Result<Option<HarvestLeadership>> {
        let Pool::Postgres(pool) = &self.inner.pool else {
            return Ok(Some(HarvestLeadership { conn: None }));
        };
        let mut conn = PgConnection::connect_with(&pool.connect_options())
            .await
            .map_err(Error::Connect)?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(LOCK_NAMESPACE)
            .bind(LOCK_HARVEST_LEADER)
            .fetch_one(&mut conn)
            .await?;
        if got {
            Ok(Some(HarvestLeadership { conn: Some(conn) }))
        } else {
            if let Err(e) = conn.close().await {
                warn!(error = %e, "closing a connection after a refused leadership");
            }
            Ok(None)
        }
    }

    /// Listens for state changes (see the module docs). `None` on SQLite, where one process
    /// makes every change itself.
    pub async fn state_changes(&self) -> Result<Option<StateChanges>> {
        let Pool::Postgres(pool) = &self.inner.pool else {
            return Ok(None);
        };
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(STATE_CHANNEL).await?;
        Ok(Some(StateChanges { listener }))
    }

    /// Whether a harvest run is under way in some live process (this one included): a run still
    /// `running` whose owner is alive (PostgreSQL: its owner's advisory lock is held; SQLite: its
    /// owner's lock file is locked) and that started less than [`RUN_IN_PROGRESS_AT_MOST`] ago.
    /// A run left behind by a killed process so holds nobody back. An in-memory SQLite database
    /// cannot tell a live owner from a dead one: there every recent `running` run counts, and
    /// the age bound keeps an orphan from holding readers back for long.
    pub async fn harvest_in_progress(&self) -> Result<bool> {
        let since = crate::now_ms() - RUN_IN_PROGRESS_AT_MOST.as_millis() as i64;
        let sql = "SELECT DISTINCT owner FROM runs WHERE status = 'running' AND started_at > $1";
        match &self.inner.pool {
            Pool::Sqlite(p) => {
                let owners: Vec<i64> = sqlx::query_scalar(sql).bind(since).fetch_all(p).await?;
                Ok(owners
                    .into_iter()
                    .any(|owner| self.sqlite_owner_alive(owner).unwrap_or(true)))
            }
            Pool::Postgres(p) => {
                let mut tx = p.begin().await?;
                let owners: Vec<i64> = sqlx::query_scalar(sql)
                    .bind(since)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut live = false;
                for owner in owners {
                    if owner == i64::from(self.inner.owner) {
                        live = true;
                        break;
                    }
                    let Ok(key) = i32::try_from(owner) else {
                        continue;
                    };
                    // Taken (and released at the end of this transaction) only when nobody holds
                    // it: then the owner is gone.
                    let gone: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, $2)")
                        .bind(LOCK_NAMESPACE)
                        .bind(key)
                        .fetch_one(&mut *tx)
                        .await?;
                    if !gone {
                        live = true;
                        break;
                    }
                }
                tx.rollback().await?;
                Ok(live)
            }
        }
    }

    /// The current [`StateGeneration`]: three small aggregate queries in one statement.
    pub async fn state_generation(&self) -> Result<StateGeneration> {
        let sql = "SELECT \
             (SELECT CAST(COALESCE(SUM(last_complete_at), 0) AS BIGINT) FROM databases), \
             (SELECT COUNT(*) FROM databases WHERE last_complete_at IS NOT NULL), \
             (SELECT COUNT(*) FROM overrides), \
             (SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM overrides), \
             (SELECT COUNT(*) FROM overrides WHERE removed_at IS NOT NULL)";
        let row: (i64, i64, i64, i64, i64) =
            on_pool!(self, p => sqlx::query_as(sql).fetch_one(p).await?);
        Ok(StateGeneration {
            commits: row.0,
            complete: row.1,
            overrides: (row.2, row.3, row.4),
        })
    }
}
