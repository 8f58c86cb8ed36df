//! Run bookkeeping: starting and finishing runs, failed crawls, finding orphaned runs.
//!
//! A run is `running` from [`Store::start_run`] until [`Store::finish_run`]. A process that dies
//! in between leaves it `running`; the next `start_run` of another store instance marks it
//! `abandoned`. Telling "dead" from "still working" differs per backend:
//!
//! - PostgreSQL: each store instance holds a session advisory lock keyed by its random owner id
//!   on a dedicated connection for as long as it lives. A run whose owner's lock can be taken
//!   belongs to a process that is gone (the server drops the lock with the connection). This is
//!   exact, across hosts.
//! - SQLite: each store instance that starts a run holds an exclusive lock on a file of its own
//!   beside the database for as long as it lives (`owner_lock.rs`); a run whose owner's file is
//!   unlocked (or gone) belongs to a process that is gone. This is exact for processes on one
//!   host. An in-memory database has no file: there, runs of any other owner still `running`
//!   count as orphaned, and should that be wrong, the live owner's [`Store::finish_run`] sets
//!   its run's real status again: the status is bookkeeping, and the data of a run never
//!   depends on it.

use std::collections::HashMap;

use sqlx::Connection;
use tracing::warn;

use crate::commit::{ensure_run, lock_database, record_outcome};
use crate::error::{Error, Result};
use crate::owner_lock::OwnerLock;
use crate::read::BothRows;
use crate::sql::{on_tx, Tx};
use crate::types::{
    ChangeCounts, CrawlStats, RunDatabase, RunId, RunOutcome, RunRecord, RunStatus,
};
use crate::{now_ms, on_pool, to_u64, Pool, Store, LOCK_NAMESPACE};

/// Causes longer than this are cut: a cause is for people, and a runaway error chain should not
/// bloat every status answer.
const MAX_CAUSE_CHARS: usize = 4_000;

#[derive(sqlx::FromRow)]
struct RunRow {
    id: i64,
    status: String,
    started_at: i64,
    finished_at: Option<i64>,
    requested: String,
}

#[derive(sqlx::FromRow)]
struct RunDatabaseRow {
    run_id: i64,
    database: String,
    outcome: String,
    at: i64,
    api_calls: i64,
    min_calls: i64,
    retries: i64,
    pages: i64,
    recrawls: i64,
    duration_ms: i64,
    change_counts: String,
    account_count: Option<i64>,
    group_count: Option<i64>,
    membership_count: Option<i64>,
    cause: Option<String>,
}

impl RunDatabaseRow {
    fn into_model(self) -> Result<RunDatabase> {
        let outcome = RunOutcome::parse(&self.outcome)
            .ok_or_else(|| Error::corrupt("run_databases.outcome", &self.outcome))?;
        let changes: ChangeCounts = serde_json::from_str(&self.change_counts)
            .map_err(|e| Error::corrupt("run_databases.change_counts", e))?;
        Ok(RunDatabase {
            database: self.database,
            outcome,
            at: self.at,
            stats: CrawlStats {
                api_calls: to_u64(self.api_calls),
                min_calls: to_u64(self.min_calls),
                retries: to_u64(self.retries),
                pages: to_u64(self.pages),
                recrawls: u32::try_from(self.recrawls).unwrap_or(u32::MAX),
                duration_ms: to_u64(self.duration_ms),
            },
            changes,
            account_count: self.account_count,
            group_count: self.group_count,
            membership_count: self.membership_count,
            cause: self.cause,
        })
    }
}

fn parse_requested(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| Error::corrupt("runs.requested", e))
}

fn truncate(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

async fn fetch_all<T: BothRows>(tx: &mut Tx, sql: &str, a: i64, b: i64) -> Result<Vec<T>> {
    let rows = on_tx!(tx, c => {
        sqlx::query_as::<_, T>(sql).bind(a).bind(b).fetch_all(c).await?
    });
    Ok(rows)
}

impl Store {
    /// PostgreSQL: makes sure this instance holds its liveness lock (see the module docs),
    /// reconnecting if the connection that held it died.
    async fn ensure_liveness(&self) -> Result<()> {
        let Pool::Postgres(pool) = &self.inner.pool else {
            if let Some(file) = &self.inner.sqlite_file {
                let mut held = self.owner_lock();
                if held.is_none() {
                    let lock = OwnerLock::acquire(file, i64::from(self.inner.owner))
                        .map_err(|e| Error::Connect(sqlx::Error::Io(e)))?;
                    *held = Some(lock);
                }
            }
            return Ok(());
        };
        let mut held = self.inner.liveness.lock().await;
        if let Some(conn) = held.as_mut() {
            if conn.ping().await.is_ok() {
                return Ok(());
            }
            // The lock died with the connection; another process may have marked this
            // instance's runs abandoned meanwhile, which `finish_run` puts right.
            warn!("the store's liveness connection was lost; reconnecting");
        }
        let options = pool.connect_options();
        let mut conn = sqlx::PgConnection::connect_with(&options)
            .await
            .map_err(Error::Connect)?;
        sqlx::query("SELECT pg_advisory_lock($1, $2)")
            .bind(LOCK_NAMESPACE)
            .bind(self.inner.owner)
            .execute(&mut conn)
            .await?;
        *held = Some(conn);
        Ok(())
    }

    /// Starts a run over `databases` and returns its id. Also marks runs left `running` by a
    /// process that is gone as `abandoned`.
    pub async fn start_run(&self, databases: &[String]) -> Result<RunId> {
        let requested = serde_json::to_string(databases)
            .map_err(|e| Error::InvalidInput(format!("databases: {e}")))?;
        self.ensure_liveness().await?;
        let owner = i64::from(self.inner.owner);
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let others: Vec<i64> = on_tx!(&mut tx, c => {
            sqlx::query_scalar(
                "SELECT DISTINCT owner FROM runs WHERE status = 'running' AND owner <> $1",
            )
            .bind(owner)
            .fetch_all(c)
            .await?
        });
        let mut abandoned = 0;
        for other in others {
            let gone = match &mut tx {
                // An owner id this crate did not write cannot hold a lock: orphaned.
                Tx::Postgres(t) => match i32::try_from(other) {
                    Ok(key) => {
                        sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_xact_lock($1, $2)")
                            .bind(LOCK_NAMESPACE)
                            .bind(key)
                            .fetch_one(&mut **t)
                            .await?
                    }
                    Err(_) => true,
                },
                // In memory, nothing tells: another owner there is taken to be gone.
                Tx::Sqlite(..) => self.sqlite_owner_alive(other) != Some(true),
            };
            if gone {
                abandoned += on_tx!(&mut tx, c => {
                    sqlx::query(
                        "UPDATE runs SET status = 'abandoned', finished_at = $1 \
                         WHERE status = 'running' AND owner = $2",
                    )
                    .bind(now)
                    .bind(other)
                    .execute(c)
                    .await?
                    .rows_affected()
                });
            }
        }
        if abandoned > 0 {
            crate::replica::notify_state_change(&mut tx, "run-finished").await?;
            warn!(
                abandoned,
                "marked runs left running by a stopped process as abandoned"
            );
        }
        let id = on_tx!(&mut tx, c => {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO runs (owner, status, started_at, requested) \
                 VALUES ($1, 'running', $2, $3) RETURNING id",
            )
            .bind(owner)
            .bind(now)
            .bind(&requested)
            .fetch_one(c)
            .await?
        });
        tx.commit().await?;
        Ok(id)
    }

    /// Marks this instance's runs that are still `running` as `abandoned` and returns how many
    /// there were: for a process that stops in an orderly way after dropping a harvest in flight
    /// (its uncommitted database transactions rolled back; those already committed stay, whole).
    /// Call it only once nothing of this instance is harvesting any more.
    pub async fn abandon_own_runs(&self) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let n = on_tx!(&mut tx, c => {
            sqlx::query(
                "UPDATE runs SET status = 'abandoned', finished_at = $1 \
                 WHERE status = 'running' AND owner = $2",
            )
            .bind(now_ms())
            .bind(i64::from(self.inner.owner))
            .execute(c)
            .await?
            .rows_affected()
        });
        if n > 0 {
            crate::replica::notify_state_change(&mut tx, "run-finished").await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Records that a crawl of `database` failed or was incomplete, with its cost and cause.
    /// Touches none of that database's data: its last complete state stays what the store
    /// serves, and its status says the last attempt failed.
    #[tracing::instrument(skip(self, stats, cause))]
    pub async fn fail_database(
        &self,
        run: RunId,
        database: &str,
        stats: &CrawlStats,
        cause: &str,
    ) -> Result<()> {
        if database.is_empty() {
            return Err(Error::InvalidInput("empty database name".into()));
        }
        let cause = truncate(cause, MAX_CAUSE_CHARS);
        let mut tx = self.begin_write().await?;
        ensure_run(&mut tx, run).await?;
        let now = now_ms();
        lock_database(&mut tx, database, now).await?;
        on_tx!(&mut tx, c => {
            sqlx::query(
                "UPDATE databases SET last_attempt_at = $2, complete = FALSE, last_error = $3 \
                 WHERE database = $1",
            )
            .bind(database)
            .bind(now)
            .bind(cause)
            .execute(c)
            .await?
            .rows_affected()
        });
        record_outcome(
            &mut tx,
            run,
            database,
            now,
            RunOutcome::Failed,
            stats,
            &ChangeCounts::default(),
            None,
            Some(cause),
        )
        .await?;
        tx.commit().await
    }

    /// Finishes a run: `complete` when every requested database was committed, `failed` when
    /// none was, `partial` otherwise. Also repairs a run wrongly marked abandoned.
    pub async fn finish_run(&self, run: RunId) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let (requested, outcomes) = on_tx!(&mut tx, c => {
            let requested: Option<String> =
                sqlx::query_scalar("SELECT requested FROM runs WHERE id = $1")
                    .bind(run)
                    .fetch_optional(&mut *c)
                    .await?;
            let outcomes: Vec<(String, String)> = sqlx::query_as(
                "SELECT database, outcome FROM run_databases WHERE run_id = $1",
            )
            .bind(run)
            .fetch_all(&mut *c)
            .await?;
            (requested, outcomes)
        });
        let requested = parse_requested(&requested.ok_or(Error::UnknownRun(run))?)?;
        let complete: HashMap<&str, bool> = outcomes
            .iter()
            .map(|(d, o)| (d.as_str(), o == RunOutcome::Complete.as_str()))
            .collect();
        let wanted: Vec<&str> = if requested.is_empty() {
            complete.keys().copied().collect()
        } else {
            requested.iter().map(String::as_str).collect()
        };
        let done = wanted
            .iter()
            .filter(|d| complete.get(*d).copied().unwrap_or(false))
            .count();
        let status = if done == wanted.len() {
            RunStatus::Complete
        } else if done == 0 {
            RunStatus::Failed
        } else {
            RunStatus::Partial
        };
        on_tx!(&mut tx, c => {
            sqlx::query("UPDATE runs SET status = $2, finished_at = $3 WHERE id = $1")
                .bind(run)
                .bind(status.as_str())
                .bind(now_ms())
                .execute(c)
                .await?
                .rows_affected()
        });
        // Readers that held back while the run was under way load it whole now.
        crate::replica::notify_state_change(&mut tx, "run-finished").await?;
        tx.commit().await
    }

    /// The latest `limit` runs, newest first, each with its per-database outcomes.
    pub async fn runs(&self, limit: u32) -> Result<Vec<RunRecord>> {
        self.load_runs(None, limit).await
    }

    /// One run with its per-database outcomes.
    pub async fn run(&self, id: RunId) -> Result<Option<RunRecord>> {
        Ok(self.load_runs(Some(id), 1).await?.pop())
    }

    async fn load_runs(&self, id: Option<RunId>, limit: u32) -> Result<Vec<RunRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_read().await?;
        let (lo, hi) = match id {
            Some(id) => (id, id),
            None => (i64::MIN, i64::MAX),
        };
        let rows: Vec<RunRow> = on_tx!(&mut tx, c => {
            sqlx::query_as::<_, RunRow>(
                "SELECT id, status, started_at, finished_at, requested FROM runs \
                 WHERE id BETWEEN $1 AND $2 ORDER BY id DESC LIMIT $3",
            )
            .bind(lo)
            .bind(hi)
            .bind(i64::from(limit))
            .fetch_all(c)
            .await?
        });
        let (Some(newest), Some(oldest)) = (rows.first(), rows.last()) else {
            return Ok(Vec::new());
        };
        let outcome_rows: Vec<RunDatabaseRow> = fetch_all(
            &mut tx,
            "SELECT run_id, database, outcome, at, api_calls, min_calls, retries, pages, \
             recrawls, duration_ms, change_counts, account_count, group_count, \
             membership_count, cause FROM run_databases \
             WHERE run_id BETWEEN $1 AND $2 ORDER BY run_id, database",
            oldest.id,
            newest.id,
        )
        .await?;
        tx.commit().await?;
        let mut outcomes: HashMap<i64, Vec<RunDatabase>> = HashMap::new();
        for r in outcome_rows {
            let run_id = r.run_id;
            outcomes.entry(run_id).or_default().push(r.into_model()?);
        }
        rows.into_iter()
            .map(|r| {
                Ok(RunRecord {
                    id: r.id,
                    status: RunStatus::parse(&r.status)
                        .ok_or_else(|| Error::corrupt("runs.status", &r.status))?,
                    started_at: r.started_at,
                    finished_at: r.finished_at,
                    requested: parse_requested(&r.requested)?,
                    databases: outcomes.remove(&r.id).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Counts of runs by status; mostly for tests and metrics.
    pub async fn run_status_counts(&self) -> Result<HashMap<RunStatus, u64>> {
        let rows: Vec<(String, i64)> = on_pool!(self, p => {
            sqlx::query_as("SELECT status, COUNT(*) FROM runs GROUP BY status")
                .fetch_all(p)
                .await?
        });
        rows.into_iter()
            .map(|(s, n)| {
                RunStatus::parse(&s)
                    .map(|st| (st, to_u64(n)))
                    .ok_or_else(|| Error::corrupt("runs.status", &s))
            })
            .collect()
    }
}
