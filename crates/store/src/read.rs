//! Reading the stored state back: the graph's input, one database's snapshot, row histories,
//! database statuses and the change log.

use futures::TryStreamExt;
use model::{
    Access, Account, AccountKey, DatabaseSnapshot, DefaultSecurity, Group, Membership, Workspace,
    WorkspaceEntry,
};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::FromRow;

use crate::diff::PRINCIPAL_GROUP;
use crate::error::{Error, Result};
use crate::sql::{on_tx, Tx};
use crate::types::{
    AccountRecord, Change, ChangeKind, ChangeQuery, DatabaseStatus, GroupRecord, MembershipRecord,
    Presence, State, MAX_PAGE,
};
use crate::{on_pool, Store};

/// Rows this crate decodes on both backends.
pub(crate) trait BothRows:
    for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin
{
}
impl<T> BothRows for T where
    T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin
{
}

/// A row type with the column list that selects it.
pub(crate) trait Selectable: BothRows {
    const COLUMNS: &'static str;
}

/// A stored raw object, checked and kept as text.
fn parse_raw(column: &'static str, text: String) -> Result<model::RawJson> {
    model::RawJson::from_text(text).map_err(|e| Error::corrupt(column, e))
}

#[derive(sqlx::FromRow)]
pub(crate) struct AccountRow {
    database: String,
    user_id: String,
    login_name: Option<String>,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    display_name: Option<String>,
    active: bool,
    user_type: Option<String>,
    group_ids: String,
    default_database: Option<String>,
    phone: Option<String>,
    department: Option<String>,
    title: Option<String>,
    created_date: Option<String>,
    raw: String,
}

impl Selectable for AccountRow {
    const COLUMNS: &'static str = "database, user_id, login_name, email, first_name, last_name, \
        display_name, active, user_type, group_ids, default_database, phone, department, title, \
        created_date, raw";
}

impl AccountRow {
    pub(crate) fn into_model(self) -> Result<Account> {
        let groups: Vec<String> = serde_json::from_str(&self.group_ids)
            .map_err(|e| Error::corrupt("accounts.group_ids", e))?;
        Ok(Account {
            raw: parse_raw("accounts.raw", self.raw)?,
            database: self.database,
            user_id: self.user_id,
            login_name: self.login_name,
            email: self.email,
            first_name: self.first_name,
            last_name: self.last_name,
            display_name: self.display_name,
            active: self.active,
            user_type: self.user_type,
            groups,
            default_database: self.default_database,
            phone: self.phone,
            department: self.department,
            title: self.title,
            created_date: self.created_date,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct GroupRow {
    database: String,
    group_id: String,
    name: Option<String>,
    member_count: Option<i64>,
    raw: String,
}

impl Selectable for GroupRow {
    const COLUMNS: &'static str = "database, group_id, name, member_count, raw";
}

impl GroupRow {
    pub(crate) fn into_model(self) -> Result<Group> {
        Ok(Group {
            raw: parse_raw("groups.raw", self.raw)?,
            database: self.database,
            group_id: self.group_id,
            name: self.name,
            member_count: self.member_count,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct MembershipRow {
    database: String,
    group_id: String,
    user_id: String,
}

impl Selectable for MembershipRow {
    const COLUMNS: &'static str = "database, group_id, user_id";
}

impl MembershipRow {
    fn into_model(self) -> Result<Membership> {
        Ok(Membership {
            database: self.database,
            group_id: self.group_id,
            user_id: self.user_id,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct WorkspaceRow {
    database: String,
    workspace_id: String,
    name: Option<String>,
    default_security: String,
    raw: String,
}

/// A user's stored present groups (`member_sets`), a JSON array of group ids.
#[derive(sqlx::FromRow)]
pub(crate) struct MemberSetRow {
    pub user_id: String,
    pub group_ids: String,
}

impl Selectable for MemberSetRow {
    const COLUMNS: &'static str = "user_id, group_ids";
}

impl Selectable for WorkspaceRow {
    const COLUMNS: &'static str = "database, workspace_id, name, default_security, raw";
}

impl WorkspaceRow {
    pub(crate) fn into_model(self) -> Result<Workspace> {
        let default_security = DefaultSecurity::parse(&self.default_security)
            .ok_or_else(|| Error::corrupt("workspaces.default_security", &self.default_security))?;
        Ok(Workspace {
            raw: parse_raw("workspaces.raw", self.raw)?,
            database: self.database,
            workspace_id: self.workspace_id,
            name: self.name,
            default_security,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EntryRow {
    database: String,
    workspace_id: String,
    principal_kind: String,
    principal_id: String,
    access: String,
}

impl Selectable for EntryRow {
    const COLUMNS: &'static str = "database, workspace_id, principal_kind, principal_id, access";
}

impl EntryRow {
    fn into_model(self) -> Result<WorkspaceEntry> {
        let access = Access::parse(&self.access)
            .ok_or_else(|| Error::corrupt("workspace_entries.access", &self.access))?;
        Ok(WorkspaceEntry {
            database: self.database,
            workspace_id: self.workspace_id,
            is_group: self.principal_kind == PRINCIPAL_GROUP,
            principal_id: self.principal_id,
            access,
        })
    }
}

#[derive(sqlx::FromRow)]
struct PresenceRow {
    present: bool,
    first_seen_at: i64,
    last_seen_at: Option<i64>,
    removed_at: Option<i64>,
    updated_run: i64,
}

const PRESENCE_COLUMNS: &str = "present, first_seen_at, last_seen_at, removed_at, updated_run";

impl PresenceRow {
    /// A present row was last seen by its database's last complete harvest; that time is kept
    /// once per database instead of being rewritten into every row.
    fn into_presence(self, last_complete_at: Option<i64>) -> Presence {
        Presence {
            present: self.present,
            first_seen_at: self.first_seen_at,
            last_seen_at: if self.present {
                last_complete_at
            } else {
                self.last_seen_at
            },
            removed_at: self.removed_at,
            updated_run: self.updated_run,
        }
    }
}

#[derive(sqlx::FromRow)]
struct WithPresence<T> {
    #[sqlx(flatten)]
    row: T,
    #[sqlx(flatten)]
    presence: PresenceRow,
}

#[derive(sqlx::FromRow)]
struct StatusRow {
    database: String,
    last_complete_at: Option<i64>,
    last_attempt_at: Option<i64>,
    complete: bool,
    last_error: Option<String>,
    account_count: i64,
    group_count: i64,
    membership_count: i64,
    has_workspaces: bool,
    has_workspace_entries: bool,
}

impl StatusRow {
    fn status(&self) -> DatabaseStatus {
        DatabaseStatus {
            database: self.database.clone(),
            last_complete_at: self.last_complete_at,
            last_attempt_at: self.last_attempt_at,
            complete: self.complete,
            last_error: self.last_error.clone(),
            account_count: self.account_count,
            group_count: self.group_count,
            membership_count: self.membership_count,
        }
    }
}

const STATUS_SELECT: &str = "SELECT database, last_complete_at, last_attempt_at, complete, \
    last_error, account_count, group_count, membership_count, has_workspaces, \
    has_workspace_entries FROM databases";

#[derive(sqlx::FromRow)]
struct ChangeRow {
    id: i64,
    run_id: i64,
    at: i64,
    database: String,
    kind: String,
    user_id: Option<String>,
    group_id: Option<String>,
    workspace_id: Option<String>,
    field: Option<String>,
    old_value: Option<String>,
    new_value: Option<String>,
}

impl ChangeRow {
    fn into_change(self) -> Result<Change> {
        let kind = ChangeKind::parse(&self.kind)
            .ok_or_else(|| Error::corrupt("changes.kind", &self.kind))?;
        Ok(Change {
            id: self.id,
            run_id: self.run_id,
            at: self.at,
            database: self.database,
            kind,
            user_id: self.user_id,
            group_id: self.group_id,
            workspace_id: self.workspace_id,
            field: self.field,
            old_value: self.old_value,
            new_value: self.new_value,
        })
    }
}

/// Streams `sql` (with `$1` bound to `param` when given) through `f`, so a million rows never
/// sit in memory twice.
async fn collect<T: BothRows, M>(
    tx: &mut Tx,
    sql: &str,
    param: Option<&str>,
    f: impl Fn(T) -> Result<M>,
) -> Result<Vec<M>> {
    let mut out = Vec::new();
    on_tx!(tx, c => {
        let mut q = sqlx::query_as::<_, T>(sql);
        if let Some(p) = param {
            q = q.bind(p);
        }
        let mut rows = q.fetch(c);
        while let Some(row) = rows.try_next().await? {
            out.push(f(row)?);
        }
    });
    Ok(out)
}

/// Present rows of a table, of one database or all, in key order.
async fn present_rows<T: Selectable, M>(
    tx: &mut Tx,
    table: &str,
    order: &str,
    database: Option<&str>,
    f: impl Fn(T) -> Result<M>,
) -> Result<Vec<M>> {
    let sql = match database {
        Some(_) => format!(
            "SELECT {} FROM {table} WHERE database = $1 AND present ORDER BY {order}",
            T::COLUMNS
        ),
        None => format!(
            "SELECT {} FROM {table} WHERE present ORDER BY database, {order}",
            T::COLUMNS
        ),
    };
    collect(tx, &sql, database, f).await
}

/// Every row of a table for one database, removed ones included, with its history.
async fn history_rows<T: Selectable, M>(
    tx: &mut Tx,
    table: &str,
    order: &str,
    database: &str,
    f: impl Fn(T, PresenceRow) -> Result<M>,
) -> Result<Vec<M>>
where
    WithPresence<T>: BothRows,
{
    let sql = format!(
        "SELECT {}, {PRESENCE_COLUMNS} FROM {table} WHERE database = $1 ORDER BY {order}",
        T::COLUMNS
    );
    collect(tx, &sql, Some(database), |r: WithPresence<T>| {
        f(r.row, r.presence)
    })
    .await
}

/// Full rows of one database whose key is in `ids` (in no particular order).
pub(crate) async fn fetch_by_keys<T: Selectable>(
    tx: &mut Tx,
    table: &'static str,
    key: &'static str,
    db: &str,
    ids: &[String],
) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(ids.len());
    if ids.is_empty() {
        return Ok(out);
    }
    let head = format!(
        "SELECT {} FROM {table} WHERE database = $1 AND ",
        T::COLUMNS
    );
    match tx {
        Tx::Postgres(t) => {
            let sql = format!("{head}{key} = ANY($2)");
            let mut rows = sqlx::query_as::<_, T>(&sql)
                .bind(db)
                .bind(ids)
                .fetch(&mut **t);
            while let Some(row) = rows.try_next().await? {
                out.push(row);
            }
        }
        Tx::Sqlite(t, _) => {
            // Anonymous parameters: SQLite binds numbered ones in quadratic time.
            let head = head.replace("$1", "?");
            for chunk in ids.chunks(2_000) {
                let sql = format!("{head}{key} IN ({})", vec!["?"; chunk.len()].join(", "));
                let mut q = sqlx::query_as::<_, T>(&sql).bind(db);
                for id in chunk {
                    q = q.bind(id);
                }
                let mut rows = q.fetch(&mut **t);
                while let Some(row) = rows.try_next().await? {
                    out.push(row);
                }
            }
        }
    }
    Ok(out)
}

async fn status_rows(tx: &mut Tx, database: Option<&str>) -> Result<Vec<StatusRow>> {
    let sql = match database {
        Some(_) => format!("{STATUS_SELECT} WHERE database = $1"),
        None => format!("{STATUS_SELECT} ORDER BY database"),
    };
    collect(tx, &sql, database, Ok).await
}

async fn status_row(tx: &mut Tx, database: &str) -> Result<StatusRow> {
    status_rows(tx, Some(database))
        .await?
        .pop()
        .ok_or_else(|| Error::UnknownDatabase(database.to_owned()))
}

impl Store {
    /// How fresh and how big each database's stored state is, ordered by database.
    pub async fn database_statuses(&self) -> Result<Vec<DatabaseStatus>> {
        let mut tx = self.begin_read().await?;
        let rows = status_rows(&mut tx, None).await?;
        tx.commit().await?;
        Ok(rows.iter().map(StatusRow::status).collect())
    }

    /// Everything the graph is built from, read in one consistent snapshot: every database's
    /// status and present rows (ordered by database, then key), the active overrides and the
    /// person ids.
    #[tracing::instrument(skip(self))]
    pub async fn load_state(&self) -> Result<State> {
        let mut tx = self.begin_read().await?;
        let databases = status_rows(&mut tx, None)
            .await?
            .iter()
            .map(StatusRow::status)
            .collect();
        let accounts =
            present_rows(&mut tx, "accounts", "user_id", None, AccountRow::into_model).await?;
        let groups =
            present_rows(&mut tx, "groups", "group_id", None, GroupRow::into_model).await?;
        let memberships = present_rows(
            &mut tx,
            "memberships",
            "group_id, user_id",
            None,
            MembershipRow::into_model,
        )
        .await?;
        let workspaces = present_rows(
            &mut tx,
            "workspaces",
            "workspace_id",
            None,
            WorkspaceRow::into_model,
        )
        .await?;
        let workspace_entries = present_rows(
            &mut tx,
            "workspace_entries",
            "workspace_id, principal_kind, principal_id",
            None,
            EntryRow::into_model,
        )
        .await?;
        let overrides = crate::audit::active_overrides(&mut tx).await?;
        let persons = crate::persons::load(&mut tx).await?;
        tx.commit().await?;
        Ok(State {
            databases,
            accounts,
            groups,
            memberships,
            workspaces,
            workspace_entries,
            overrides,
            persons,
        })
    }

    /// The current (present) state of one database, as a snapshot: what a complete crawl right
    /// now would find if nothing changed since the last one. `workspaces` and
    /// `workspace_entries` are `None` unless a harvest ever supplied them.
    pub async fn load_database(&self, database: &str) -> Result<DatabaseSnapshot> {
        let mut tx = self.begin_read().await?;
        let status = status_row(&mut tx, database).await?;
        let db = Some(database);
        let accounts =
            present_rows(&mut tx, "accounts", "user_id", db, AccountRow::into_model).await?;
        let groups = present_rows(&mut tx, "groups", "group_id", db, GroupRow::into_model).await?;
        let memberships = present_rows(
            &mut tx,
            "memberships",
            "group_id, user_id",
            db,
            MembershipRow::into_model,
        )
        .await?;
        let workspaces = if status.has_workspaces {
            Some(
                present_rows(
                    &mut tx,
                    "workspaces",
                    "workspace_id",
                    db,
                    WorkspaceRow::into_model,
                )
                .await?,
            )
        } else {
            None
        };
        let workspace_entries = if status.has_workspace_entries {
            Some(
                present_rows(
                    &mut tx,
                    "workspace_entries",
                    "workspace_id, principal_kind, principal_id",
                    db,
                    EntryRow::into_model,
                )
                .await?,
            )
        } else {
            None
        };
        tx.commit().await?;
        Ok(DatabaseSnapshot {
            database: database.to_owned(),
            accounts,
            groups,
            memberships,
            workspaces,
            workspace_entries,
        })
    }

    /// Every account ever stored for one database, removed ones included, with first- and
    /// last-seen times, ordered by user id.
    pub async fn account_history(&self, database: &str) -> Result<Vec<AccountRecord>> {
        let mut tx = self.begin_read().await?;
        let last = status_row(&mut tx, database).await?.last_complete_at;
        let rows = history_rows(
            &mut tx,
            "accounts",
            "user_id",
            database,
            |r: AccountRow, p| {
                Ok(AccountRecord {
                    account: r.into_model()?,
                    presence: p.into_presence(last),
                })
            },
        )
        .await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Every group ever stored for one database, with its history, ordered by group id.
    pub async fn group_history(&self, database: &str) -> Result<Vec<GroupRecord>> {
        let mut tx = self.begin_read().await?;
        let last = status_row(&mut tx, database).await?.last_complete_at;
        let rows = history_rows(&mut tx, "groups", "group_id", database, |r: GroupRow, p| {
            Ok(GroupRecord {
                group: r.into_model()?,
                presence: p.into_presence(last),
            })
        })
        .await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Every membership ever stored for one database, with its history, ordered by group and
    /// user.
    pub async fn membership_history(&self, database: &str) -> Result<Vec<MembershipRecord>> {
        let mut tx = self.begin_read().await?;
        let last = status_row(&mut tx, database).await?.last_complete_at;
        let rows = history_rows(
            &mut tx,
            "memberships",
            "group_id, user_id",
            database,
            |r: MembershipRow, p| {
                Ok(MembershipRecord {
                    membership: r.into_model()?,
                    presence: p.into_presence(last),
                })
            },
        )
        .await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Change-log rows matching `q`, ordered by id ascending. For the next page, pass the last
    /// id as `after_id`.
    pub async fn changes(&self, q: &ChangeQuery) -> Result<Vec<Change>> {
        if q.limit == 0
            || q.databases.as_ref().is_some_and(Vec::is_empty)
            || q.accounts.as_ref().is_some_and(Vec::is_empty)
            || q.kinds.as_ref().is_some_and(Vec::is_empty)
        {
            return Ok(Vec::new());
        }
        let limit = i64::from(q.limit.min(MAX_PAGE));
        let rows: Vec<ChangeRow> = on_pool!(self, p => {
            let mut qb = sqlx::QueryBuilder::new(
                "SELECT id, run_id, at, database, kind, user_id, group_id, workspace_id, field, \
                 old_value, new_value FROM changes WHERE TRUE",
            );
            if let Some(dbs) = &q.databases {
                qb.push(" AND database IN (");
                let mut sep = qb.separated(", ");
                for d in dbs {
                    sep.push_bind(d.clone());
                }
                qb.push(")");
            }
            if let Some(accounts) = &q.accounts {
                qb.push(" AND (");
                for (i, AccountKey { database, user_id }) in accounts.iter().enumerate() {
                    if i > 0 {
                        qb.push(" OR ");
                    }
                    qb.push("(database = ");
                    qb.push_bind(database.clone());
                    qb.push(" AND user_id = ");
                    qb.push_bind(user_id.clone());
                    qb.push(")");
                }
                qb.push(")");
            }
            if let Some(kinds) = &q.kinds {
                qb.push(" AND kind IN (");
                let mut sep = qb.separated(", ");
                for k in kinds {
                    sep.push_bind(k.as_str());
                }
                qb.push(")");
            }
            if let Some(since) = q.since {
                qb.push(" AND at >= ");
                qb.push_bind(since);
            }
            if let Some(until) = q.until {
                qb.push(" AND at < ");
                qb.push_bind(until);
            }
            if let Some(after) = q.after_id {
                qb.push(" AND id > ");
                qb.push_bind(after);
            }
            qb.push(" ORDER BY id LIMIT ");
            qb.push_bind(limit);
            qb.build_query_as::<ChangeRow>().fetch_all(p).await?
        });
        rows.into_iter().map(ChangeRow::into_change).collect()
    }
}
