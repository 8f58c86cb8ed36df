//! Planned write operations against iManage and their steps, for the `ops` crate.
//!
//! The store keeps what an operation is made of without knowing iManage's calls: the request, the
//! problems and every step's call are JSON the `ops` crate writes and reads back. What the store
//! does own is the bookkeeping that makes applying safe:
//!
//! - An operation is **claimed** before it is applied ([`Store::claim_operation`]): it becomes
//!   `running` under a lease token, and a heartbeat keeps the claim alive. Another claim is refused
//!   while the heartbeat is recent; once it is older than the caller's limit the operation counts
//!   as abandoned (its process died) and may be taken over.
//! - Every write of a step checks the lease token in the same transaction, so a process that lost
//!   its claim cannot record anything after the new owner started.
//! - A step's outcome and the audit entry recording its call commit together, or not at all.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sql::{on_tx, Tx};
use crate::types::{AuditEntry, AuditQuery, AuditRecord, MAX_PAGE};
use crate::{now_ms, on_pool, Store};

/// Identifies one operation.
pub type OperationId = i64;

/// Where an operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationStatus {
    /// Planned (possibly as a dry run) and never applied.
    Planned,
    /// Being applied, or left behind by a process that died while applying it.
    Running,
    /// Every step is done.
    Completed,
    /// The last apply stopped at a failed step; the steps after it were not attempted.
    Failed,
}

impl OperationStatus {
    /// The stored name, e.g. `planned`.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationStatus::Planned => "planned",
            OperationStatus::Running => "running",
            OperationStatus::Completed => "completed",
            OperationStatus::Failed => "failed",
        }
    }

    /// The inverse of [`OperationStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "planned" => OperationStatus::Planned,
            "running" => OperationStatus::Running,
            "completed" => OperationStatus::Completed,
            "failed" => OperationStatus::Failed,
            _ => return None,
        })
    }
}

/// Where one step of an operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not attempted yet.
    Pending,
    /// Its call was about to be made, and no outcome was recorded: the outcome is unknown.
    Started,
    /// The call succeeded (or the state it was to bring about was found in place).
    Done,
    /// The call failed; the error is recorded.
    Failed,
}

impl StepStatus {
    /// The stored name, e.g. `pending`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Started => "started",
            StepStatus::Done => "done",
            StepStatus::Failed => "failed",
        }
    }

    /// The inverse of [`StepStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => StepStatus::Pending,
            "started" => StepStatus::Started,
            "done" => StepStatus::Done,
            "failed" => StepStatus::Failed,
            _ => return None,
        })
    }
}

/// An operation to record, as planned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewOperation {
    /// What kind of operation, e.g. `offboard` (the `ops` crate's names).
    pub kind: String,
    /// One line for people, e.g. `offboard p17 (Jane Doe)`.
    pub summary: String,
    /// The request the plan was made from.
    pub request: serde_json::Value,
    /// Problems found while planning.
    pub problems: serde_json::Value,
    /// The steps, in the order they are to run.
    pub steps: Vec<NewOperationStep>,
}

/// One step of a [`NewOperation`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewOperationStep {
    /// The database (`customer_id`) the call goes to.
    pub database: String,
    /// The call.
    pub call: serde_json::Value,
    /// A note for people (whose account, which group).
    pub note: Option<String>,
}

/// A stored operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationRecord {
    /// The operation.
    pub id: OperationId,
    /// See [`NewOperation::kind`].
    pub kind: String,
    /// Where it stands.
    pub status: OperationStatus,
    /// See [`NewOperation::summary`].
    pub summary: String,
    /// See [`NewOperation::request`].
    pub request: serde_json::Value,
    /// See [`NewOperation::problems`].
    pub problems: serde_json::Value,
    /// When it was planned (unix ms).
    pub created_at: i64,
    /// Who planned it.
    pub created_by: Option<String>,
    /// Who applied it last.
    pub applied_by: Option<String>,
    /// How many times it was claimed for applying.
    pub apply_count: i64,
    /// When the first apply started (unix ms).
    pub started_at: Option<i64>,
    /// When the latest apply finished (unix ms); `None` while running or never applied.
    pub finished_at: Option<i64>,
    /// The last sign of life of the process applying it (unix ms).
    pub heartbeat_at: Option<i64>,
    /// Steps per status.
    pub counts: StepCounts,
    /// The steps in order; empty in listings ([`Store::operations`]).
    pub steps: Vec<OperationStepRecord>,
}

/// How many steps of an operation are in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepCounts {
    /// Not attempted.
    pub pending: u64,
    /// Outcome unknown.
    pub started: u64,
    /// Done.
    pub done: u64,
    /// Failed.
    pub failed: u64,
}

impl StepCounts {
    /// Every step.
    pub fn total(&self) -> u64 {
        self.pending + self.started + self.done + self.failed
    }
}

/// A stored step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationStepRecord {
    /// Its position, from 0.
    pub index: u32,
    /// See [`NewOperationStep::database`].
    pub database: String,
    /// See [`NewOperationStep::call`].
    pub call: serde_json::Value,
    /// See [`NewOperationStep::note`].
    pub note: Option<String>,
    /// Where it stands.
    pub status: StepStatus,
    /// How many times it was started.
    pub attempts: i64,
    /// When it was last started (unix ms).
    pub started_at: Option<i64>,
    /// When its last outcome was recorded (unix ms).
    pub finished_at: Option<i64>,
    /// The outcome of a done step.
    pub result: Option<serde_json::Value>,
    /// The error of a failed step.
    pub error: Option<serde_json::Value>,
    /// The user id a `create user` step got.
    pub created_user_id: Option<String>,
}

/// The recorded end of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepFinish {
    /// [`StepStatus::Done`] or [`StepStatus::Failed`].
    pub status: StepStatus,
    /// The outcome, for a done step.
    pub result: Option<serde_json::Value>,
    /// The error, for a failed step.
    pub error: Option<serde_json::Value>,
    /// The user id a `create user` step got.
    pub created_user_id: Option<String>,
}

/// What [`Store::claim_operation`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The caller now applies the operation (it is `running` under the caller's token).
    Claimed(Box<OperationRecord>),
    /// Another process applies it and its heartbeat is recent.
    Busy {
        /// Who applies it.
        applied_by: Option<String>,
        /// Its last heartbeat (unix ms).
        heartbeat_at: Option<i64>,
    },
    /// There is no operation with that id.
    Unknown,
}

/// A filter over operations, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationQuery {
    /// Operations of this kind.
    pub kind: Option<String>,
    /// Operations in this status.
    pub status: Option<OperationStatus>,
    /// Operations planned by this actor.
    pub created_by: Option<String>,
    /// Only operations with a smaller id: the cursor for the next (older) page.
    pub before_id: Option<OperationId>,
    /// Page size, capped at [`MAX_PAGE`].
    pub limit: u32,
}

impl Default for OperationQuery {
    fn default() -> Self {
        OperationQuery {
            kind: None,
            status: None,
            created_by: None,
            before_id: None,
            limit: 100,
        }
    }
}

#[derive(sqlx::FromRow)]
struct OperationRow {
    id: i64,
    kind: String,
    status: String,
    summary: String,
    request: String,
    problems: String,
    created_at: i64,
    created_by: Option<String>,
    applied_by: Option<String>,
    apply_count: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    heartbeat_at: Option<i64>,
    pending: i64,
    started: i64,
    done: i64,
    failed: i64,
}

/// Every column of [`OperationRow`], the step counts computed per operation. Correlated counts
/// are cheap here: an operation has tens to hundreds of steps, found through the primary key.
const OPERATION_SELECT: &str = "SELECT o.id, o.kind, o.status, o.summary, o.request, o.problems, \
    o.created_at, o.created_by, o.applied_by, o.apply_count, o.started_at, o.finished_at, \
    o.heartbeat_at, \
    (SELECT COUNT(*) FROM operation_steps s WHERE s.operation_id = o.id AND s.status = 'pending') AS pending, \
    (SELECT COUNT(*) FROM operation_steps s WHERE s.operation_id = o.id AND s.status = 'started') AS started, \
    (SELECT COUNT(*) FROM operation_steps s WHERE s.operation_id = o.id AND s.status = 'done') AS done, \
    (SELECT COUNT(*) FROM operation_steps s WHERE s.operation_id = o.id AND s.status = 'failed') AS failed \
    FROM operations o";

fn parse_json(column: &'static str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| Error::corrupt(column, e))
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl OperationRow {
    fn into_model(self) -> Result<OperationRecord> {
        Ok(OperationRecord {
            status: OperationStatus::parse(&self.status)
                .ok_or_else(|| Error::corrupt("operations.status", &self.status))?,
            request: parse_json("operations.request", &self.request)?,
            problems: parse_json("operations.problems", &self.problems)?,
            id: self.id,
            kind: self.kind,
            summary: self.summary,
            created_at: self.created_at,
            created_by: self.created_by,
            applied_by: self.applied_by,
            apply_count: self.apply_count,
            started_at: self.started_at,
            finished_at: self.finished_at,
            heartbeat_at: self.heartbeat_at,
            counts: StepCounts {
                pending: count(self.pending),
                started: count(self.started),
                done: count(self.done),
                failed: count(self.failed),
            },
            steps: Vec::new(),
        })
    }
}

#[derive(sqlx::FromRow)]
struct StepRow {
    step: i64,
    database: String,
    call: String,
    note: Option<String>,
    status: String,
    attempts: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    result: Option<String>,
    error: Option<String>,
    created_user_id: Option<String>,
}

impl StepRow {
    fn into_model(self) -> Result<OperationStepRecord> {
        Ok(OperationStepRecord {
            index: u32::try_from(self.step)
                .map_err(|e| Error::corrupt("operation_steps.step", e))?,
            status: StepStatus::parse(&self.status)
                .ok_or_else(|| Error::corrupt("operation_steps.status", &self.status))?,
            call: parse_json("operation_steps.call", &self.call)?,
            result: self
                .result
                .as_deref()
                .map(|r| parse_json("operation_steps.result", r))
                .transpose()?,
            error: self
                .error
                .as_deref()
                .map(|e| parse_json("operation_steps.error", e))
                .transpose()?,
            database: self.database,
            note: self.note,
            attempts: self.attempts,
            started_at: self.started_at,
            finished_at: self.finished_at,
            created_user_id: self.created_user_id,
        })
    }
}

async fn fetch_operation(tx: &mut Tx, id: OperationId) -> Result<Option<OperationRecord>> {
    let sql = format!("{OPERATION_SELECT} WHERE o.id = $1");
    let row: Option<OperationRow> = on_tx!(tx, c => {
        sqlx::query_as::<_, OperationRow>(&sql)
            .bind(id)
            .fetch_optional(c)
            .await?
    });
    let Some(row) = row else {
        return Ok(None);
    };
    let mut op = row.into_model()?;
    let steps: Vec<StepRow> = on_tx!(tx, c => {
        sqlx::query_as::<_, StepRow>(
            "SELECT step, database, call, note, status, attempts, started_at, finished_at, \
             result, error, created_user_id FROM operation_steps \
             WHERE operation_id = $1 ORDER BY step",
        )
        .bind(id)
        .fetch_all(c)
        .await?
    });
    op.steps = steps
        .into_iter()
        .map(StepRow::into_model)
        .collect::<Result<_>>()?;
    Ok(Some(op))
}

/// Renews the lease of `token` on `id` (and locks the operation's row until the transaction
/// ends, on PostgreSQL). False when the caller no longer holds the lease.
async fn renew_lease(tx: &mut Tx, id: OperationId, token: &str, now: i64) -> Result<bool> {
    let n = on_tx!(tx, c => {
        sqlx::query(
            "UPDATE operations SET heartbeat_at = $3 \
             WHERE id = $1 AND lease_token = $2 AND status = 'running'",
        )
        .bind(id)
        .bind(token)
        .bind(now)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}

fn json_text(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(serde_json::Value::to_string)
}

impl Store {
    /// Records a planned operation and its steps (status `planned`, every step `pending`), and
    /// audits it as `operation.plan` by `actor`, all in one transaction.
    pub async fn create_operation(
        &self,
        op: &NewOperation,
        actor: Option<&str>,
    ) -> Result<OperationRecord> {
        if op.kind.is_empty() {
            return Err(Error::InvalidInput("an operation needs a kind".into()));
        }
        let now = now_ms();
        let request = op.request.to_string();
        let problems = op.problems.to_string();
        let mut tx = self.begin_write().await?;
        let id = on_tx!(&mut tx, c => {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO operations (kind, status, summary, request, problems, created_at, \
                 created_by) VALUES ($1, 'planned', $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(&op.kind)
            .bind(&op.summary)
            .bind(&request)
            .bind(&problems)
            .bind(now)
            .bind(actor)
            .fetch_one(c)
            .await?
        });
        for (i, step) in op.steps.iter().enumerate() {
            let index = i64::try_from(i)
                .map_err(|_| Error::InvalidInput("too many steps in one operation".into()))?;
            let call = step.call.to_string();
            on_tx!(&mut tx, c => {
                sqlx::query(
                    "INSERT INTO operation_steps (operation_id, step, database, call, note, status) \
                     VALUES ($1, $2, $3, $4, $5, 'pending')",
                )
                .bind(id)
                .bind(index)
                .bind(&step.database)
                .bind(&call)
                .bind(step.note.as_deref())
                .execute(c)
                .await?;
            });
        }
        let entry = AuditEntry {
            actor: actor.map(str::to_owned),
            action: "operation.plan".into(),
            target: Some(format!("operation:{id}")),
            detail: serde_json::json!({
                "kind": op.kind,
                "summary": op.summary,
                "steps": op.steps.len(),
                "problems": op.problems,
            }),
            outcome: "planned".into(),
        };
        crate::audit::append(&mut tx, &entry, now).await?;
        let record = fetch_operation(&mut tx, id)
            .await?
            .ok_or_else(|| Error::corrupt("operations.id", "the new operation vanished"))?;
        tx.commit().await?;
        Ok(record)
    }

    /// One operation with its steps.
    pub async fn operation(&self, id: OperationId) -> Result<Option<OperationRecord>> {
        let mut tx = self.begin_read().await?;
        let op = fetch_operation(&mut tx, id).await?;
        tx.commit().await?;
        Ok(op)
    }

    /// Operations matching `q`, newest first, without their steps (see [`Store::operation`]).
    pub async fn operations(&self, q: &OperationQuery) -> Result<Vec<OperationRecord>> {
        if q.limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::from(q.limit.min(MAX_PAGE));
        let rows: Vec<OperationRow> = on_pool!(self, p => {
            let mut qb = sqlx::QueryBuilder::new(OPERATION_SELECT);
            qb.push(" WHERE TRUE");
            if let Some(kind) = &q.kind {
                qb.push(" AND o.kind = ");
                qb.push_bind(kind.clone());
            }
            if let Some(status) = q.status {
                qb.push(" AND o.status = ");
                qb.push_bind(status.as_str());
            }
            if let Some(by) = &q.created_by {
                qb.push(" AND o.created_by = ");
                qb.push_bind(by.clone());
            }
            if let Some(before) = q.before_id {
                qb.push(" AND o.id < ");
                qb.push_bind(before);
            }
            qb.push(" ORDER BY o.id DESC LIMIT ");
            qb.push_bind(limit);
            qb.build_query_as::<OperationRow>().fetch_all(p).await?
        });
        rows.into_iter().map(OperationRow::into_model).collect()
    }

    /// Claims an operation for applying under `token`: it becomes `running`, applied by `actor`,
    /// unless another claim's heartbeat is newer than `stale_before` (unix ms). A claim of an
    /// operation that is not running, or whose heartbeat is older, succeeds: the earlier process
    /// is taken to be gone. Audited as `operation.apply` with outcome `started`.
    pub async fn claim_operation(
        &self,
        id: OperationId,
        actor: Option<&str>,
        token: &str,
        stale_before: i64,
    ) -> Result<Claim> {
        if token.is_empty() {
            return Err(Error::InvalidInput("a claim needs a token".into()));
        }
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let claimed = on_tx!(&mut tx, c => {
            sqlx::query(
                "UPDATE operations SET status = 'running', lease_token = $2, heartbeat_at = $3, \
                 applied_by = $4, apply_count = apply_count + 1, \
                 started_at = COALESCE(started_at, $3), finished_at = NULL \
                 WHERE id = $1 AND (status <> 'running' OR heartbeat_at IS NULL \
                                    OR heartbeat_at < $5)",
            )
            .bind(id)
            .bind(token)
            .bind(now)
            .bind(actor)
            .bind(stale_before)
            .execute(c)
            .await?
            .rows_affected()
        }) == 1;
        let Some(op) = fetch_operation(&mut tx, id).await? else {
            tx.commit().await?;
            return Ok(Claim::Unknown);
        };
        if !claimed {
            tx.commit().await?;
            return Ok(Claim::Busy {
                applied_by: op.applied_by,
                heartbeat_at: op.heartbeat_at,
            });
        }
        let entry = AuditEntry {
            actor: actor.map(str::to_owned),
            action: "operation.apply".into(),
            target: Some(format!("operation:{id}")),
            detail: serde_json::json!({
                "kind": op.kind,
                "summary": op.summary,
                "apply": op.apply_count,
                "steps": {
                    "pending": op.counts.pending,
                    "started": op.counts.started,
                    "done": op.counts.done,
                    "failed": op.counts.failed,
                },
            }),
            outcome: "started".into(),
        };
        crate::audit::append(&mut tx, &entry, now).await?;
        tx.commit().await?;
        Ok(Claim::Claimed(Box::new(op)))
    }

    /// Renews the claim of `token` on operation `id`. False when the claim was lost (taken over
    /// after its heartbeat went stale, or finished).
    pub async fn heartbeat_operation(&self, id: OperationId, token: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let held = renew_lease(&mut tx, id, token, now_ms()).await?;
        tx.commit().await?;
        Ok(held)
    }

    /// Marks step `index` as `started` (its call is about to be made). False, and nothing
    /// written, when `token` no longer holds the operation.
    pub async fn start_operation_step(
        &self,
        id: OperationId,
        index: u32,
        token: &str,
    ) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        if !renew_lease(&mut tx, id, token, now).await? {
            tx.commit().await?;
            return Ok(false);
        }
        let n = on_tx!(&mut tx, c => {
            sqlx::query(
                "UPDATE operation_steps SET status = 'started', attempts = attempts + 1, \
                 started_at = $3 WHERE operation_id = $1 AND step = $2",
            )
            .bind(id)
            .bind(i64::from(index))
            .bind(now)
            .execute(c)
            .await?
            .rows_affected()
        });
        if n != 1 {
            return Err(Error::InvalidInput(format!(
                "operation {id} has no step {index}"
            )));
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Records the end of step `index` and appends `audit` (the entry for its call), in one
    /// transaction. False, and nothing written, when `token` no longer holds the operation.
    pub async fn finish_operation_step(
        &self,
        id: OperationId,
        index: u32,
        token: &str,
        finish: &StepFinish,
        audit: &AuditEntry,
    ) -> Result<bool> {
        if !matches!(finish.status, StepStatus::Done | StepStatus::Failed) {
            return Err(Error::InvalidInput("a step finishes done or failed".into()));
        }
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        if !renew_lease(&mut tx, id, token, now).await? {
            tx.commit().await?;
            return Ok(false);
        }
        let n = on_tx!(&mut tx, c => {
            sqlx::query(
                "UPDATE operation_steps SET status = $3, finished_at = $4, result = $5, \
                 error = $6, created_user_id = COALESCE($7, created_user_id) \
                 WHERE operation_id = $1 AND step = $2",
            )
            .bind(id)
            .bind(i64::from(index))
            .bind(finish.status.as_str())
            .bind(now)
            .bind(json_text(&finish.result))
            .bind(json_text(&finish.error))
            .bind(finish.created_user_id.as_deref())
            .execute(c)
            .await?
            .rows_affected()
        });
        if n != 1 {
            return Err(Error::InvalidInput(format!(
                "operation {id} has no step {index}"
            )));
        }
        crate::audit::append(&mut tx, audit, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Ends the claim of `token`: the operation becomes `status` (`completed` or `failed`) and
    /// `audit` is appended. False, and nothing written, when `token` no longer holds it.
    pub async fn finish_operation(
        &self,
        id: OperationId,
        token: &str,
        status: OperationStatus,
        audit: &AuditEntry,
    ) -> Result<bool> {
        if !matches!(status, OperationStatus::Completed | OperationStatus::Failed) {
            return Err(Error::InvalidInput(
                "an apply finishes completed or failed".into(),
            ));
        }
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let n = on_tx!(&mut tx, c => {
            sqlx::query(
                "UPDATE operations SET status = $3, finished_at = $4, heartbeat_at = $4, \
                 lease_token = NULL \
                 WHERE id = $1 AND lease_token = $2 AND status = 'running'",
            )
            .bind(id)
            .bind(token)
            .bind(status.as_str())
            .bind(now)
            .execute(c)
            .await?
            .rows_affected()
        });
        if n != 1 {
            tx.commit().await?;
            return Ok(false);
        }
        crate::audit::append(&mut tx, audit, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The newest `q.limit` audit entries matching `q` (its `actor`, `actions`, `target`,
    /// `since` and `until`; `after_id` is ignored), returned oldest first. [`Store::audit`]
    /// pages forward from the start; this answers "what happened last".
    pub async fn latest_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        self.audit_page(q, true).await
    }

    /// Operations left `running` whose heartbeat is older than `stale_before` (unix ms): applies
    /// interrupted by a crash, to be re-run. Newest first, without steps.
    pub async fn abandoned_operations(&self, stale_before: i64) -> Result<Vec<OperationRecord>> {
        let sql = format!(
            "{OPERATION_SELECT} WHERE o.status = 'running' AND \
             (o.heartbeat_at IS NULL OR o.heartbeat_at < $1) ORDER BY o.id DESC"
        );
        let rows: Vec<OperationRow> = on_pool!(self, p => {
            sqlx::query_as::<_, OperationRow>(&sql)
                .bind(stale_before)
                .fetch_all(p)
                .await?
        });
        rows.into_iter().map(OperationRow::into_model).collect()
    }
}
