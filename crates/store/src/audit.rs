//! Analysts' overrides and the general audit log they are recorded in.

use model::{AccountKey, Override, OverrideKind};
use serde_json::json;

use crate::error::{Error, Result};
use crate::sql::{on_tx, Tx};
use crate::types::{AuditEntry, AuditQuery, AuditRecord, MAX_PAGE};
use crate::{now_ms, on_pool, Store};

#[derive(sqlx::FromRow)]
struct OverrideRow {
    id: i64,
    kind: String,
    a_database: String,
    a_user_id: String,
    b_database: String,
    b_user_id: String,
    reason: Option<String>,
    created_by: Option<String>,
    created_at: i64,
}

const OVERRIDE_SELECT: &str = "SELECT id, kind, a_database, a_user_id, b_database, b_user_id, \
    reason, created_by, created_at FROM overrides";

impl OverrideRow {
    fn into_model(self) -> Result<Override> {
        let kind = OverrideKind::parse(&self.kind)
            .ok_or_else(|| Error::corrupt("overrides.kind", &self.kind))?;
        Ok(Override {
            id: self.id,
            kind,
            a: AccountKey::new(self.a_database, self.a_user_id),
            b: AccountKey::new(self.b_database, self.b_user_id),
            reason: self.reason,
            created_by: self.created_by,
            created_at: self.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at: i64,
    actor: Option<String>,
    action: String,
    target: Option<String>,
    detail: String,
    outcome: String,
}

impl AuditRow {
    fn into_model(self) -> Result<AuditRecord> {
        Ok(AuditRecord {
            detail: serde_json::from_str(&self.detail)
                .map_err(|e| Error::corrupt("audit_log.detail", e))?,
            id: self.id,
            at: self.at,
            actor: self.actor,
            action: self.action,
            target: self.target,
            outcome: self.outcome,
        })
    }
}

/// The active overrides, oldest first.
pub(crate) async fn active_overrides(tx: &mut Tx) -> Result<Vec<Override>> {
    let sql = format!("{OVERRIDE_SELECT} WHERE removed_at IS NULL ORDER BY id");
    let rows: Vec<OverrideRow> = on_tx!(tx, c => {
        sqlx::query_as::<_, OverrideRow>(&sql).fetch_all(c).await?
    });
    rows.into_iter().map(OverrideRow::into_model).collect()
}

/// Appends an audit entry inside the caller's transaction, so the entry commits with the change
/// it records or not at all.
pub(crate) async fn append(tx: &mut Tx, entry: &AuditEntry, at: i64) -> Result<i64> {
    if entry.action.is_empty() || entry.outcome.is_empty() {
        return Err(Error::InvalidInput(
            "an audit entry needs an action and an outcome".into(),
        ));
    }
    let detail = entry.detail.to_string();
    let id = on_tx!(tx, c => {
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO audit_log (at, actor, action, target, detail, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(at)
        .bind(entry.actor.as_deref())
        .bind(&entry.action)
        .bind(entry.target.as_deref())
        .bind(&detail)
        .bind(&entry.outcome)
        .fetch_one(c)
        .await?
    });
    Ok(id)
}

fn key_json(k: &AccountKey) -> serde_json::Value {
    json!({"database": k.database, "user_id": k.user_id})
}

impl Store {
    /// Records an analyst's override between two accounts, audited as `override.add`. Adding an
    /// override that is already active (same kind, same pair in either order) returns the
    /// existing one and audits the attempt with outcome `exists`.
    pub async fn add_override(
        &self,
        kind: OverrideKind,
        a: &AccountKey,
        b: &AccountKey,
        reason: Option<&str>,
        by: Option<&str>,
    ) -> Result<Override> {
        if a == b {
            return Err(Error::InvalidInput(
                "an override needs two different accounts".into(),
            ));
        }
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let sql = format!(
            "{OVERRIDE_SELECT} WHERE removed_at IS NULL AND kind = $1 AND \
             ((a_database = $2 AND a_user_id = $3 AND b_database = $4 AND b_user_id = $5) OR \
              (a_database = $4 AND a_user_id = $5 AND b_database = $2 AND b_user_id = $3)) \
             ORDER BY id LIMIT 1"
        );
        let existing: Option<OverrideRow> = on_tx!(&mut tx, c => {
            sqlx::query_as::<_, OverrideRow>(&sql)
                .bind(kind.as_str())
                .bind(&a.database)
                .bind(&a.user_id)
                .bind(&b.database)
                .bind(&b.user_id)
                .fetch_optional(c)
                .await?
        });
        let (ov, outcome) = match existing {
            Some(row) => (row.into_model()?, "exists"),
            None => {
                let id = on_tx!(&mut tx, c => {
                    sqlx::query_scalar::<_, i64>(
                        "INSERT INTO overrides (kind, a_database, a_user_id, b_database, \
                         b_user_id, reason, created_by, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                    )
                    .bind(kind.as_str())
                    .bind(&a.database)
                    .bind(&a.user_id)
                    .bind(&b.database)
                    .bind(&b.user_id)
                    .bind(reason)
                    .bind(by)
                    .bind(now)
                    .fetch_one(c)
                    .await?
                });
                let ov = Override {
                    id,
                    kind,
                    a: a.clone(),
                    b: b.clone(),
                    reason: reason.map(str::to_owned),
                    created_by: by.map(str::to_owned),
                    created_at: now,
                };
                (ov, "ok")
            }
        };
        let entry = AuditEntry {
            actor: by.map(str::to_owned),
            action: "override.add".into(),
            target: Some(format!("override:{}", ov.id)),
            detail: json!({
                "kind": kind.as_str(),
                "a": key_json(a),
                "b": key_json(b),
                "reason": reason,
            }),
            outcome: outcome.into(),
        };
        append(&mut tx, &entry, now).await?;
        if outcome == "ok" {
            crate::replica::notify_state_change(&mut tx, "override").await?;
        }
        tx.commit().await?;
        Ok(ov)
    }

    /// Removes an active override, audited as `override.remove`. Returns false (and audits
    /// `not_found`) when there is no active override with that id. The row is kept, marked
    /// removed, for the record.
    pub async fn remove_override(&self, id: i64, by: Option<&str>) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let sql = format!("{OVERRIDE_SELECT} WHERE id = $1 AND removed_at IS NULL");
        let removed: Option<OverrideRow> = on_tx!(&mut tx, c => {
            let row = sqlx::query_as::<_, OverrideRow>(&sql)
                .bind(id)
                .fetch_optional(&mut *c)
                .await?;
            if row.is_some() {
                sqlx::query(
                    "UPDATE overrides SET removed_at = $2, removed_by = $3 \
                     WHERE id = $1 AND removed_at IS NULL",
                )
                .bind(id)
                .bind(now)
                .bind(by)
                .execute(&mut *c)
                .await?;
            }
            row
        });
        let detail = match &removed {
            Some(r) => json!({
                "kind": r.kind,
                "a": {"database": r.a_database, "user_id": r.a_user_id},
                "b": {"database": r.b_database, "user_id": r.b_user_id},
            }),
            None => json!({}),
        };
        let entry = AuditEntry {
            actor: by.map(str::to_owned),
            action: "override.remove".into(),
            target: Some(format!("override:{id}")),
            detail,
            outcome: if removed.is_some() { "ok" } else { "not_found" }.into(),
        };
        append(&mut tx, &entry, now).await?;
        if removed.is_some() {
            crate::replica::notify_state_change(&mut tx, "override").await?;
        }
        tx.commit().await?;
        Ok(removed.is_some())
    }

    /// The active overrides, oldest first.
    pub async fn overrides(&self) -> Result<Vec<Override>> {
        let mut tx = self.begin_read().await?;
        let out = active_overrides(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Appends an entry to the audit log and returns its id. The store stamps the time.
    pub async fn append_audit(&self, entry: &AuditEntry) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let id = append(&mut tx, entry, now_ms()).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Audit entries matching `q`, ordered by id ascending.
    pub async fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        self.audit_page(q, false).await
    }

    /// One page of audit entries: forward from `q.after_id` in id order, or (`newest_first`)
    /// the newest entries, `after_id` ignored, returned oldest first.
    pub(crate) async fn audit_page(
        &self,
        q: &AuditQuery,
        newest_first: bool,
    ) -> Result<Vec<AuditRecord>> {
        if q.limit == 0 || q.actions.as_ref().is_some_and(Vec::is_empty) {
            return Ok(Vec::new());
        }
        let limit = i64::from(q.limit.min(MAX_PAGE));
        let mut rows: Vec<AuditRow> = on_pool!(self, p => {
            let mut qb = sqlx::QueryBuilder::new(
                "SELECT id, at, actor, action, target, detail, outcome FROM audit_log WHERE TRUE",
            );
            if let Some(actor) = &q.actor {
                qb.push(" AND actor = ");
                qb.push_bind(actor.clone());
            }
            if let Some(actions) = &q.actions {
                qb.push(" AND action IN (");
                let mut sep = qb.separated(", ");
                for a in actions {
                    sep.push_bind(a.clone());
                }
                qb.push(")");
            }
            if let Some(target) = &q.target {
                qb.push(" AND target = ");
                qb.push_bind(target.clone());
            }
            if let Some(since) = q.since {
                qb.push(" AND at >= ");
                qb.push_bind(since);
            }
            if let Some(until) = q.until {
                qb.push(" AND at < ");
                qb.push_bind(until);
            }
            if newest_first {
                qb.push(" ORDER BY id DESC LIMIT ");
            } else {
                if let Some(after) = q.after_id {
                    qb.push(" AND id > ");
                    qb.push_bind(after);
                }
                qb.push(" ORDER BY id LIMIT ");
            }
            qb.push_bind(limit);
            qb.build_query_as::<AuditRow>().fetch_all(p).await?
        });
        if newest_first {
            rows.reverse();
        }
        rows.into_iter().map(AuditRow::into_model).collect()
    }
}
