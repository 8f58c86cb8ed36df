//! Committing one database's crawl: diff, write the difference, log it, record the outcome.

use std::collections::HashMap;

use futures::TryStreamExt;
use model::{Account, DatabaseSnapshot, Group, Workspace};
use tracing::{debug, warn};

use crate::diff::{self, EntityPlan, Hashed, NewChange, StoredEntry};
use crate::error::{Error, Result};
use crate::read::{self, AccountRow, GroupRow, WorkspaceRow};
use crate::sql::{on_tx, Mode, Tx, Val};
use crate::tables;
use crate::types::{ChangeCounts, ChangeKind, CrawlStats, RunId, RunOutcome};
use crate::{now_ms, to_i64, Store, LOCK_CHANGE_LOG, LOCK_NAMESPACE};

const SET_REMOVED: &str = "present = FALSE, removed_at = $2, last_seen_at = $3, updated_run = $4";

/// What the store knew about a database before this commit.
pub(crate) struct DatabaseRow {
    pub last_complete_at: Option<i64>,
    pub has_workspaces: bool,
    pub has_workspace_entries: bool,
    /// Whether `member_sets` holds every present member of this database as of its last
    /// complete commit (see the migrations).
    pub member_sets: bool,
}

/// An account ready to be written: its group list serialized once (the raw object is text
/// already).
struct AccountWrite<'a> {
    a: &'a Account,
    hash: i64,
    core_hash: i64,
    groups: String,
}

impl<'a> AccountWrite<'a> {
    fn new(h: &Hashed<'a, Account>) -> Self {
        AccountWrite {
            a: h.row,
            hash: h.hash,
            core_hash: h.core,
            groups: diff::groups_json(&h.row.groups),
        }
    }
}

fn fill_account<'a>(w: &'a AccountWrite<'_>, out: &mut Vec<Val<'a>>) {
    let a = w.a;
    let t = |s: &'a Option<String>| Val::Text(s.as_deref());
    out.extend([
        Val::Text(Some(&a.user_id)),
        t(&a.login_name),
        t(&a.email),
        t(&a.first_name),
        t(&a.last_name),
        t(&a.display_name),
        Val::Bool(a.active),
        t(&a.user_type),
        Val::Text(Some(&w.groups)),
        t(&a.default_database),
        t(&a.phone),
        t(&a.department),
        t(&a.title),
        t(&a.created_date),
        Val::Text(Some(a.raw.as_str())),
        Val::Int(Some(w.hash)),
        Val::Int(Some(w.core_hash)),
        Val::Int(Some(w.hash)),
    ]);
}

struct GroupWrite<'a> {
    g: &'a Group,
    hash: i64,
}

impl<'a> GroupWrite<'a> {
    fn new(h: &Hashed<'a, Group>) -> Self {
        GroupWrite {
            g: h.row,
            hash: h.hash,
        }
    }
}

fn fill_group<'a>(w: &'a GroupWrite<'_>, out: &mut Vec<Val<'a>>) {
    out.extend([
        Val::Text(Some(&w.g.group_id)),
        Val::Text(w.g.name.as_deref()),
        Val::Int(w.g.member_count),
        Val::Text(Some(w.g.raw.as_str())),
        Val::Int(Some(w.hash)),
    ]);
}

struct WorkspaceWrite<'a> {
    w: &'a Workspace,
    hash: i64,
}

impl<'a> WorkspaceWrite<'a> {
    fn new(h: &Hashed<'a, Workspace>) -> Self {
        WorkspaceWrite {
            w: h.row,
            hash: h.hash,
        }
    }
}

fn fill_workspace<'a>(w: &'a WorkspaceWrite<'_>, out: &mut Vec<Val<'a>>) {
    out.extend([
        Val::Text(Some(&w.w.workspace_id)),
        Val::Text(w.w.name.as_deref()),
        Val::Text(Some(w.w.default_security.as_str())),
        Val::Text(Some(w.w.raw.as_str())),
        Val::Int(Some(w.hash)),
    ]);
}

fn fill_membership<'a>(m: &'a &model::Membership, out: &mut Vec<Val<'a>>) {
    out.push(Val::Text(Some(&m.group_id)));
    out.push(Val::Text(Some(&m.user_id)));
}

fn fill_entry<'a>(e: &'a &model::WorkspaceEntry, out: &mut Vec<Val<'a>>) {
    out.extend([
        Val::Text(Some(&e.workspace_id)),
        Val::Text(Some(diff::principal_kind(e.is_group))),
        Val::Text(Some(&e.principal_id)),
        Val::Text(Some(e.access.as_str())),
    ]);
}

/// Checks that every row belongs to the snapshot's database, so a harvester bug cannot write one
/// database's rows into another's history.
fn validate(s: &DatabaseSnapshot) -> Result<()> {
    let db = s.database.as_str();
    if db.is_empty() {
        return Err(Error::InvalidSnapshot("empty database name".into()));
    }
    let bad = |what: &str, other: &str| {
        Err(Error::InvalidSnapshot(format!(
            "{what} of database {other:?} in the snapshot of {db:?}"
        )))
    };
    if let Some(a) = s.accounts.iter().find(|a| a.database != db) {
        return bad("an account", &a.database);
    }
    if let Some(g) = s.groups.iter().find(|g| g.database != db) {
        return bad("a group", &g.database);
    }
    if let Some(m) = s.memberships.iter().find(|m| m.database != db) {
        return bad("a membership", &m.database);
    }
    if let Some(w) = s.workspaces.iter().flatten().find(|w| w.database != db) {
        return bad("a workspace", &w.database);
    }
    if let Some(e) = s
        .workspace_entries
        .iter()
        .flatten()
        .find(|e| e.database != db)
    {
        return bad("a workspace entry", &e.database);
    }
    Ok(())
}

/// Fails with [`Error::UnknownRun`] unless the run exists.
pub(crate) async fn ensure_run(tx: &mut Tx, run: RunId) -> Result<()> {
    let found = on_tx!(tx, c => {
        sqlx::query_scalar::<_, i64>("SELECT id FROM runs WHERE id = $1")
            .bind(run)
            .fetch_optional(c)
            .await?
    });
    match found {
        Some(_) => Ok(()),
        None => Err(Error::UnknownRun(run)),
    }
}

/// Creates the database's row if needed and locks it for this transaction. On PostgreSQL the row
/// lock serializes concurrent writers of one database; SQLite's write transaction already is.
pub(crate) async fn lock_database(tx: &mut Tx, db: &str, now: i64) -> Result<DatabaseRow> {
    let lock = if tx.is_postgres() { " FOR UPDATE" } else { "" };
    let sql = format!(
        "SELECT last_complete_at, has_workspaces, has_workspace_entries, member_sets, \
         member_sets_at FROM databases \
         WHERE database = $1{lock}"
    );
    let row = on_tx!(tx, c => {
        sqlx::query(
            "INSERT INTO databases (database, first_seen_at) VALUES ($1, $2) \
             ON CONFLICT (database) DO NOTHING",
        )
        .bind(db)
        .bind(now)
        .execute(&mut *c)
        .await?;
        sqlx::query_as::<_, (Option<i64>, bool, bool, bool, Option<i64>)>(&sql)
            .bind(db)
            .fetch_one(&mut *c)
            .await?
    });
    Ok(DatabaseRow {
        last_complete_at: row.0,
        has_workspaces: row.1,
        has_workspace_entries: row.2,
        // Sets written by an earlier commit than the last complete one may be stale.
        member_sets: row.3 && row.4.is_some() && row.4 == row.0,
    })
}

/// Every `(key, value, present)` of one table's rows of one database, as one JSON array that the
/// database builds: one row to fetch instead of one for each of the database's rows, whose
/// decoding by the driver cost more than everything else a commit does with them.
async fn key_values(
    tx: &mut Tx,
    table: &'static str,
    key_col: &'static str,
    value_col: &'static str,
    present_col: &'static str,
    extra: Option<&'static str>,
    db: &str,
) -> Result<String> {
    let extra = extra.map(|e| format!(", {e}")).unwrap_or_default();
    let sql = if tx.is_postgres() {
        format!(
            "SELECT COALESCE(json_agg(json_build_array({key_col}, {value_col}, \
             CASE WHEN {present_col} THEN 1 ELSE 0 END{extra}))::text, '[]') \
             FROM {table} WHERE database = $1"
        )
    } else {
        format!(
            "SELECT json_group_array(json_array({key_col}, {value_col}, \
             CASE WHEN {present_col} THEN 1 ELSE 0 END{extra})) FROM {table} WHERE database = $1"
        )
    };
    let text = on_tx!(tx, c => {
        sqlx::query_scalar::<_, String>(&sql)
            .bind(db)
            .fetch_one(c)
            .await?
    });
    Ok(text)
}

/// One stored row's key (borrowed from the JSON text unless it had escapes), value and presence
/// (1 or 0).
type KeyValue<'t> = (std::borrow::Cow<'t, str>, i64, i64);

fn parse_key_values<'t>(column: &'static str, text: &'t str) -> Result<Vec<KeyValue<'t>>> {
    serde_json::from_str(text).map_err(|e| Error::corrupt(column, e))
}

/// Plans one hashed table's rows of one database: the snapshot's rows against the stored keys
/// and hashes (the single read a harvest makes of a table it has not changed), with no owned
/// copy of a stored key but those of removed rows.
async fn plan_hashed<'a, T>(
    tx: &mut Tx,
    table: &'static str,
    key_col: &'static str,
    db: &str,
    mut merge: diff::EntityMerge<'a, T>,
) -> Result<EntityPlan<'a, T>> {
    let text = key_values(tx, table, key_col, "hash", "present", None, db).await?;
    for (k, h, present) in parse_key_values(table, &text)? {
        merge.stored(&k, h, present != 0);
    }
    Ok(merge.finish())
}

/// Plans the accounts like [`plan_hashed`], then takes out of `suspect` the accounts whose only
/// change is their group list: those whose stored core hash (trusted only when it was written
/// with the stored hash, `core_for = hash`) equals the snapshot's. They log nothing (the
/// memberships do) and are returned to be rewritten without their stored rows being read.
/// Rows without a trusted core hash (stored before the column, or rewritten by an older binary)
/// stay suspects and are compared in full.
async fn plan_accounts<'a>(
    tx: &mut Tx,
    db: &str,
    mut merge: diff::EntityMerge<'a, Account>,
) -> Result<(EntityPlan<'a, Account>, Vec<Hashed<'a, Account>>)> {
    let text = key_values(
        tx,
        "accounts",
        "user_id",
        "hash",
        "present",
        Some("CASE WHEN core_for = hash THEN core_hash END"),
        db,
    )
    .await?;
    let stored: Vec<(std::borrow::Cow<'_, str>, i64, i64, Option<i64>)> =
        serde_json::from_str(&text).map_err(|e| Error::corrupt("accounts", e))?;
    for (k, h, present, _) in &stored {
        merge.stored(k, *h, *present != 0);
    }
    let mut plan = merge.finish();
    if plan.suspect.is_empty() {
        return Ok((plan, Vec::new()));
    }
    let suspects: diff::FastMap<&str, usize> = plan
        .suspect
        .iter()
        .enumerate()
        .map(|(i, h)| (h.row.user_id.as_str(), i))
        .collect();
    let mut groups_only = vec![false; plan.suspect.len()];
    for (k, _, _, core) in &stored {
        if let (Some(core), Some(&i)) = (core, suspects.get(k.as_ref())) {
            groups_only[i] = *core == plan.suspect[i].core;
        }
    }
    drop(suspects);
    let (only, suspect): (Vec<_>, Vec<_>) = plan
        .suspect
        .drain(..)
        .zip(groups_only)
        .partition(|(_, only)| *only);
    plan.suspect = suspect.into_iter().map(|(h, _)| h).collect();
    Ok((plan, only.into_iter().map(|(h, _)| h).collect()))
}

/// Plans the memberships by merging the snapshot's with the stored ones, read in key order
/// (the primary key's order: no sort) and compared as they stream in, without copying them.
async fn plan_memberships<'a>(
    tx: &mut Tx,
    db: &str,
    mut merge: diff::MembershipMerge<'a>,
) -> Result<diff::MembershipPlan<'a>> {
    use sqlx::Row;
    on_tx!(tx, c => {
        let mut stored = sqlx::query(
            "SELECT group_id, user_id, present FROM memberships WHERE database = $1 \
             ORDER BY group_id, user_id",
        )
        .bind(db)
        .fetch(c);
        while let Some(row) = stored.try_next().await? {
            let group_id: &str = row.try_get(0)?;
            let user_id: &str = row.try_get(1)?;
            let present: bool = row.try_get(2)?;
            if !merge.stored(group_id, user_id, present) {
                return Err(Error::Corrupt {
                    column: "memberships.group_id, memberships.user_id",
                    detail: "stored memberships did not come back in key order".into(),
                });
            }
        }
    });
    Ok(merge.finish())
}

async fn entry_index(tx: &mut Tx, db: &str) -> Result<HashMap<diff::EntryKey, StoredEntry>> {
    let mut index = HashMap::new();
    on_tx!(tx, c => {
        let mut rows = sqlx::query_as::<_, (String, String, String, String, bool)>(
            "SELECT workspace_id, principal_kind, principal_id, access, present \
             FROM workspace_entries WHERE database = $1",
        )
        .bind(db)
        .fetch(c);
        while let Some((w, k, p, access, present)) = rows.try_next().await? {
            index.insert((w, k, p), StoredEntry { access, present });
        }
    });
    Ok(index)
}

/// The users whose stored member set differs from the snapshot's (by digest), or who are on
/// only one side: every stored digest of the database is read, no membership.
async fn changed_members(
    tx: &mut Tx,
    db: &str,
    digests: &diff::FastMap<&str, i64>,
) -> Result<Vec<String>> {
    let mut changed = Vec::new();
    let mut same = hashbrown::HashSet::with_capacity(digests.len());
    // Every row is present: the constant keeps the shape of the other tables' reads.
    let text = key_values(tx, "member_sets", "user_id", "digest", "TRUE", None, db).await?;
    for (user, digest, _) in parse_key_values("member_sets", &text)? {
        match digests.get_key_value(user.as_ref()) {
            Some((u, d)) if *d == digest => {
                same.insert(*u);
            }
            _ => changed.push(user.into_owned()),
        }
    }
    changed.extend(
        digests
            .keys()
            .filter(|u| !same.contains(*u))
            .map(|u| (*u).to_owned()),
    );
    changed.sort_unstable();
    changed.dedup();
    Ok(changed)
}

/// The stored present groups of `users` (each sorted; empty for a user with none).
async fn stored_member_sets(
    tx: &mut Tx,
    db: &str,
    users: Vec<String>,
) -> Result<diff::FastMap<String, Vec<String>>> {
    let rows =
        read::fetch_by_keys::<read::MemberSetRow>(tx, "member_sets", "user_id", db, &users).await?;
    let mut sets: diff::FastMap<String, Vec<String>> =
        users.into_iter().map(|u| (u, Vec::new())).collect();
    for r in rows {
        let groups: Vec<String> = serde_json::from_str(&r.group_ids)
            .map_err(|e| Error::corrupt("member_sets.group_ids", e))?;
        sets.insert(r.user_id, groups);
    }
    Ok(sets)
}

/// A member set ready to be written.
struct MemberSetWrite<'a> {
    user_id: &'a str,
    digest: i64,
    group_ids: String,
}

impl<'a> MemberSetWrite<'a> {
    fn new(user_id: &'a str, groups: &[&str], digest: i64) -> Self {
        MemberSetWrite {
            user_id,
            digest,
            group_ids: serde_json::to_string(groups).unwrap_or_else(|_| "[]".to_owned()),
        }
    }
}

fn fill_member_set<'a>(w: &'a MemberSetWrite<'_>, out: &mut Vec<Val<'a>>) {
    out.extend([
        Val::Text(Some(w.user_id)),
        Val::Int(Some(w.digest)),
        Val::Text(Some(&w.group_ids)),
    ]);
}

fn suspect_ids<T>(plan: &EntityPlan<'_, T>, key: impl Fn(&T) -> &str) -> Vec<String> {
    plan.suspect.iter().map(|h| key(h.row).to_owned()).collect()
}

/// Marks the keys of one table removed: not present, removed now, last seen at the previous
/// complete harvest.
async fn mark_removed(
    tx: &mut Tx,
    table: &'static str,
    key_cols: &[&'static str],
    keys: &[Vec<&str>],
    ctx: &Ctx<'_>,
) -> Result<()> {
    tx.update_keys(
        table,
        SET_REMOVED,
        "database = $1",
        &[
            Val::Text(Some(ctx.db)),
            Val::Int(Some(ctx.now)),
            Val::Int(ctx.prev),
            Val::Int(Some(ctx.run)),
        ],
        key_cols,
        keys,
    )
    .await?;
    Ok(())
}

/// The values every row of one commit shares.
struct Ctx<'a> {
    db: &'a str,
    now: i64,
    run: RunId,
    /// The previous complete harvest, the last time a row removed now was seen.
    prev: Option<i64>,
}

impl<'a> Ctx<'a> {
    fn shared(&self) -> [Val<'a>; 4] {
        [
            Val::Text(Some(self.db)),
            Val::Bool(true),
            Val::Int(Some(self.now)),
            Val::Int(Some(self.run)),
        ]
    }
}

fn count(n: usize) -> u64 {
    n as u64
}

impl Store {
    /// Commits one database's complete crawl in one transaction: diffs the snapshot against the
    /// stored state, writes only what changed, appends the change log, and records the run's
    /// outcome for this database. Nothing is written unless it all commits.
    ///
    /// The first complete harvest of a database is its baseline: its rows are stored and
    /// counted, but not logged as changes (likewise for workspaces and their entries the first
    /// time a snapshot carries them). `snapshot.workspaces == None` leaves stored workspaces
    /// alone, and so does `workspace_entries == None` for entries. Rows repeated within the
    /// snapshot are stored once (the first wins).
    ///
    /// On PostgreSQL the commit does not wait for its WAL to be flushed (`synchronous_commit =
    /// off` for this transaction): a crash may lose the last commits, each whole, which the next
    /// harvest makes again; it never leaves one half-written.
    ///
    /// Every field and the raw object are compared. Two fields mirror memberships, which are
    /// logged as `MEMBERSHIP_ADDED`/`MEMBERSHIP_REMOVED`: an account's `groups` and a group's
    /// `member_count`. They are stored when they change but not logged a second time.
    #[tracing::instrument(skip(self, snapshot, stats), fields(database = %snapshot.database))]
    pub async fn commit_database(
        &self,
        run: RunId,
        snapshot: &DatabaseSnapshot,
        stats: &CrawlStats,
    ) -> Result<ChangeCounts> {
        validate(snapshot)?;
        // One commit a core at most: each is mostly CPU work on this side (hashing, diffing,
        // encoding) or on the server's, and more at once only share the cores among them (on
        // SQLite, with its one writer too) and finish later, all of them. The wait is not
        // counted in the commit's time. (The semaphore is never closed; were it, the commit
        // would go ahead without a slot.)
        let _slot = self.inner.commits.acquire().await.ok();
        let started = std::time::Instant::now();
        let db = snapshot.database.as_str();
        // What needs only the snapshot (every row's hash, the members' digests) is done before
        // the write transaction: SQLite has one writer, and another database's commit can
        // write meanwhile.
        // Both hashes of every account from one parse of its raw object: the core hash is
        // written with every fresh or rewritten row, and compared for every suspect one.
        let accounts = diff::EntityMerge::with_core(
            &snapshot.accounts,
            |a: &Account| a.user_id.as_str(),
            crate::hash::account_and_core,
        );
        let groups = diff::EntityMerge::new(
            &snapshot.groups,
            |g: &Group| g.group_id.as_str(),
            crate::hash::group,
        );
        let workspaces = snapshot.workspaces.as_deref().map(|w| {
            diff::EntityMerge::new(
                w,
                |w: &Workspace| w.workspace_id.as_str(),
                crate::hash::workspace,
            )
        });
        let merge = diff::MembershipMerge::new(&snapshot.memberships);
        let digests = diff::member_digests(merge.rows());
        let mut tx = self.begin_write().await?;
        if let Tx::Postgres(t) = &mut tx {
            // The commit need not wait for its WAL to reach the disk: a crash can lose only the
            // last commits, whole (never half of one), and the next harvest makes them again;
            // SQLite's `synchronous=NORMAL` makes the same trade. Waiting would also hold the
            // change-log lock (taken last, below) through a disk flush, one database after the
            // other.
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut **t)
                .await?;
        }
        ensure_run(&mut tx, run).await?;
        let now = now_ms();
        let before = lock_database(&mut tx, db, now).await?;
        let ctx = Ctx {
            db,
            now,
            run,
            prev: before.last_complete_at,
        };
        let shared = ctx.shared();
        let mut counts = ChangeCounts::default();
        // The first complete harvest is the baseline: stored and counted, not logged.
        let log = before.last_complete_at.is_some();
        let mut changes: Vec<NewChange> = Vec::new();
        let mut duplicates = 0;

        // Accounts. Those whose only change is their group list are rewritten without reading
        // their stored rows (see `plan_accounts`); the others whose hash differs are compared.
        let (plan, groups_only) = plan_accounts(&mut tx, db, accounts).await?;
        duplicates += plan.duplicates;
        let old: HashMap<String, Account> = read::fetch_by_keys::<AccountRow>(
            &mut tx,
            "accounts",
            "user_id",
            db,
            &suspect_ids(&plan, |a| &a.user_id),
        )
        .await?
        .into_iter()
        .map(|r| r.into_model().map(|a| (a.user_id.clone(), a)))
        .collect::<Result<_>>()?;
        diff::added_removed(
            &plan,
            |a| &a.user_id,
            ChangeKind::AccountAdded,
            ChangeKind::AccountRemoved,
            diff::user_change,
            &mut changes,
        );
        for h in &plan.suspect {
            if let Some(o) = old.get(&h.row.user_id) {
                if diff::account_changes(o, h.row, &mut changes) {
                    counts.accounts_changed += 1;
                }
            }
        }
        counts.accounts_added = count(plan.fresh.len() + plan.readded.len());
        counts.accounts_removed = count(plan.removed.len());
        // Rows in key order land at the right end of the primary-key b-tree, which makes a
        // large first load several times faster than the crawl's order would; lists that
        // arrive sorted (the API pages by id) cost one pass to check.
        let mut fresh = plan.fresh.clone();
        fresh.sort_unstable_by(|a, b| a.row.user_id.cmp(&b.row.user_id));
        let fresh: Vec<AccountWrite<'_>> = fresh.iter().map(AccountWrite::new).collect();
        tx.write_rows(
            &tables::ACCOUNTS,
            &shared,
            &fresh,
            Mode::Fresh,
            fill_account,
        )
        .await?;
        drop(fresh);
        let rewrite: Vec<AccountWrite<'_>> = plan
            .readded
            .iter()
            .chain(&plan.suspect)
            .chain(&groups_only)
            .map(AccountWrite::new)
            .collect();
        tx.write_rows(
            &tables::ACCOUNTS,
            &shared,
            &rewrite,
            Mode::Upsert,
            fill_account,
        )
        .await?;
        let keys: Vec<Vec<&str>> = plan.removed.iter().map(|k| vec![k.as_str()]).collect();
        mark_removed(&mut tx, "accounts", &["user_id"], &keys, &ctx).await?;
        let account_count = plan.present_after;

        // Groups.
        let plan = plan_hashed(&mut tx, "groups", "group_id", db, groups).await?;
        duplicates += plan.duplicates;
        let old: HashMap<String, Group> = read::fetch_by_keys::<GroupRow>(
            &mut tx,
            "groups",
            "group_id",
            db,
            &suspect_ids(&plan, |g| &g.group_id),
        )
        .await?
        .into_iter()
        .map(|r| r.into_model().map(|g| (g.group_id.clone(), g)))
        .collect::<Result<_>>()?;
        diff::added_removed(
            &plan,
            |g| &g.group_id,
            ChangeKind::GroupAdded,
            ChangeKind::GroupRemoved,
            diff::group_change,
            &mut changes,
        );
        for h in &plan.suspect {
            if let Some(o) = old.get(&h.row.group_id) {
                if diff::group_changes(o, h.row, &mut changes) {
                    counts.groups_changed += 1;
                }
            }
        }
        counts.groups_added = count(plan.fresh.len() + plan.readded.len());
        counts.groups_removed = count(plan.removed.len());
        let fresh: Vec<GroupWrite<'_>> = plan.fresh.iter().map(GroupWrite::new).collect();
        tx.write_rows(&tables::GROUPS, &shared, &fresh, Mode::Fresh, fill_group)
            .await?;
        let rewrite: Vec<GroupWrite<'_>> = plan
            .readded
            .iter()
            .chain(&plan.suspect)
            .map(GroupWrite::new)
            .collect();
        tx.write_rows(&tables::GROUPS, &shared, &rewrite, Mode::Upsert, fill_group)
            .await?;
        let keys: Vec<Vec<&str>> = plan.removed.iter().map(|k| vec![k.as_str()]).collect();
        mark_removed(&mut tx, "groups", &["group_id"], &keys, &ctx).await?;
        let group_count = plan.present_after;

        // Memberships.
        // Each user's present groups and their digest. Once a database's member sets are
        // stored, only the users whose digest differs have their stored groups read: a harvest
        // costs in proportion to the users whose memberships changed, not to the firm. Before
        // (the first commit, or memberships stored before the member sets existed), every
        // stored membership is read and merged, and the member sets are written whole.
        let (plan, sets, gone) = if before.member_sets {
            let changed = changed_members(&mut tx, db, &digests).await?;
            let stored = stored_member_sets(&mut tx, db, changed).await?;
            let (plan, sets) = merge.plan_users(&stored);
            let gone: Vec<String> = stored
                .into_keys()
                .filter(|u| !sets.contains_key(u.as_str()))
                .collect();
            (plan, sets, gone)
        } else {
            let sets = diff::member_sets(merge.rows());
            let plan = plan_memberships(&mut tx, db, merge).await?;
            on_tx!(&mut tx, c => {
                sqlx::query("DELETE FROM member_sets WHERE database = $1")
                    .bind(db)
                    .execute(c)
                    .await?
                    .rows_affected()
            });
            (plan, sets, Vec::new())
        };
        let gone: Vec<Vec<&str>> = gone.iter().map(|u| vec![db, u.as_str()]).collect();
        tx.delete_keys("member_sets", &["database", "user_id"], &gone)
            .await?;
        let mut set_writes: Vec<MemberSetWrite<'_>> = sets
            .iter()
            .map(|(u, groups)| MemberSetWrite::new(u, groups, digests[u]))
            .collect();
        set_writes.sort_unstable_by(|a, b| a.user_id.cmp(b.user_id));
        let mode = if before.member_sets {
            Mode::Upsert
        } else {
            Mode::Fresh
        };
        tx.write_rows(
            &tables::MEMBER_SETS,
            &shared,
            &set_writes,
            mode,
            fill_member_set,
        )
        .await?;
        drop(set_writes);
        duplicates += plan.duplicates;
        diff::membership_changes(&plan, &mut changes);
        counts.memberships_added = count(plan.fresh.len() + plan.readded.len());
        counts.memberships_removed = count(plan.removed.len());
        // `fresh` is in key order, the order that loads the primary key fastest.
        tx.write_rows(
            &tables::MEMBERSHIPS,
            &shared,
            &plan.fresh,
            Mode::Fresh,
            fill_membership,
        )
        .await?;
        tx.write_rows(
            &tables::MEMBERSHIPS,
            &shared,
            &plan.readded,
            Mode::Upsert,
            fill_membership,
        )
        .await?;
        let keys: Vec<Vec<&str>> = plan
            .removed
            .iter()
            .map(|(g, u)| vec![g.as_str(), u.as_str()])
            .collect();
        mark_removed(
            &mut tx,
            "memberships",
            &["group_id", "user_id"],
            &keys,
            &ctx,
        )
        .await?;
        let membership_count = plan.present_after;
        if !log {
            changes.clear();
        }

        // Workspaces, only when the profile offers them.
        if let Some(workspaces) = workspaces {
            let log_here = log && before.has_workspaces;
            let mut local = Vec::new();
            let plan = plan_hashed(&mut tx, "workspaces", "workspace_id", db, workspaces).await?;
            duplicates += plan.duplicates;
            let old: HashMap<String, Workspace> = read::fetch_by_keys::<WorkspaceRow>(
                &mut tx,
                "workspaces",
                "workspace_id",
                db,
                &suspect_ids(&plan, |w| &w.workspace_id),
            )
            .await?
            .into_iter()
            .map(|r| r.into_model().map(|w| (w.workspace_id.clone(), w)))
            .collect::<Result<_>>()?;
            diff::added_removed(
                &plan,
                |w| &w.workspace_id,
                ChangeKind::WorkspaceAdded,
                ChangeKind::WorkspaceRemoved,
                diff::workspace_change,
                &mut local,
            );
            for h in &plan.suspect {
                if let Some(o) = old.get(&h.row.workspace_id) {
                    if diff::workspace_changes(o, h.row, &mut local) {
                        counts.workspaces_changed += 1;
                    }
                }
            }
            counts.workspaces_added = count(plan.fresh.len() + plan.readded.len());
            counts.workspaces_removed = count(plan.removed.len());
            let fresh: Vec<WorkspaceWrite<'_>> =
                plan.fresh.iter().map(WorkspaceWrite::new).collect();
            tx.write_rows(
                &tables::WORKSPACES,
                &shared,
                &fresh,
                Mode::Fresh,
                fill_workspace,
            )
            .await?;
            let rewrite: Vec<WorkspaceWrite<'_>> = plan
                .readded
                .iter()
                .chain(&plan.suspect)
                .map(WorkspaceWrite::new)
                .collect();
            tx.write_rows(
                &tables::WORKSPACES,
                &shared,
                &rewrite,
                Mode::Upsert,
                fill_workspace,
            )
            .await?;
            let keys: Vec<Vec<&str>> = plan.removed.iter().map(|k| vec![k.as_str()]).collect();
            mark_removed(&mut tx, "workspaces", &["workspace_id"], &keys, &ctx).await?;
            if log_here {
                changes.append(&mut local);
            }
        }
        if let Some(entries) = &snapshot.workspace_entries {
            let log_here = log && before.has_workspace_entries;
            let index = entry_index(&mut tx, db).await?;
            let mut plan = diff::plan_entries(entries, &index);
            drop(index);
            duplicates += plan.duplicates;
            counts.workspace_entries_added = plan.added;
            counts.workspace_entries_changed = plan.changed;
            counts.workspace_entries_removed = count(plan.removed.len());
            tx.write_rows(
                &tables::WORKSPACE_ENTRIES,
                &shared,
                &plan.fresh,
                Mode::Fresh,
                fill_entry,
            )
            .await?;
            tx.write_rows(
                &tables::WORKSPACE_ENTRIES,
                &shared,
                &plan.rewrite,
                Mode::Upsert,
                fill_entry,
            )
            .await?;
            let keys: Vec<Vec<&str>> = plan
                .removed
                .iter()
                .map(|(w, k, p)| vec![w.as_str(), k.as_str(), p.as_str()])
                .collect();
            mark_removed(
                &mut tx,
                "workspace_entries",
                &["workspace_id", "principal_kind", "principal_id"],
                &keys,
                &ctx,
            )
            .await?;
            if log_here {
                changes.append(&mut plan.changes);
            }
        }
        if duplicates > 0 {
            warn!(
                duplicates,
                "snapshot repeated some keys; the first of each was kept"
            );
        }

        if !changes.is_empty() {
            append_changes(&mut tx, &ctx, &changes).await?;
            counts.total = count(changes.len());
        }

        // The outcome.
        on_tx!(&mut tx, c => {
            sqlx::query(
                "UPDATE databases SET last_attempt_at = $2, last_complete_at = $2, \
                 complete = TRUE, last_error = NULL, account_count = $3, group_count = $4, \
                 membership_count = $5, has_workspaces = (has_workspaces OR $6), \
                 has_workspace_entries = (has_workspace_entries OR $7), member_sets = TRUE, \
                 member_sets_at = $2 WHERE database = $1",
            )
            .bind(db)
            .bind(now)
            .bind(to_i64(count(account_count)))
            .bind(to_i64(count(group_count)))
            .bind(to_i64(count(membership_count)))
            .bind(snapshot.workspaces.is_some())
            .bind(snapshot.workspace_entries.is_some())
            .execute(c)
            .await?
            .rows_affected()
        });
        record_outcome(
            &mut tx,
            run,
            db,
            now,
            RunOutcome::Complete,
            stats,
            &counts,
            Some([account_count, group_count, membership_count]),
            None,
        )
        .await?;
        crate::replica::notify_state_change(&mut tx, &format!("commit:{db}")).await?;
        tx.commit().await?;
        debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            changes = counts.total,
            "database committed"
        );
        Ok(counts)
    }
}

/// Appends change-log rows. On PostgreSQL a transaction-scoped lock makes appends (and so id
/// allocation) follow commit order across databases; it is taken last, after the heavy writes,
/// and released by the commit right after.
async fn append_changes(tx: &mut Tx, ctx: &Ctx<'_>, changes: &[NewChange]) -> Result<()> {
    if let Tx::Postgres(t) = tx {
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(LOCK_NAMESPACE)
            .bind(LOCK_CHANGE_LOG)
            .execute(&mut **t)
            .await?;
    }
    let shared = [
        Val::Int(Some(ctx.run)),
        Val::Int(Some(ctx.now)),
        Val::Text(Some(ctx.db)),
    ];
    tx.write_rows(&tables::CHANGES, &shared, changes, Mode::Fresh, |c, out| {
        out.extend([
            Val::Text(Some(c.kind.as_str())),
            Val::Text(c.user_id.as_deref()),
            Val::Text(c.group_id.as_deref()),
            Val::Text(c.workspace_id.as_deref()),
            Val::Text(c.field),
            Val::Text(c.old_value.as_deref()),
            Val::Text(c.new_value.as_deref()),
        ])
    })
    .await
}

/// Upserts the `run_databases` row: a database recorded twice in one run keeps the last word.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_outcome(
    tx: &mut Tx,
    run: RunId,
    db: &str,
    now: i64,
    outcome: RunOutcome,
    stats: &CrawlStats,
    counts: &ChangeCounts,
    sizes: Option<[usize; 3]>,
    cause: Option<&str>,
) -> Result<()> {
    let counts_json = serde_json::to_string(counts)
        .map_err(|e| Error::InvalidInput(format!("change counts: {e}")))?;
    let size = |i: usize| sizes.map(|s| to_i64(count(s[i])));
    on_tx!(tx, c => {
        sqlx::query(
            "INSERT INTO run_databases (run_id, database, outcome, at, api_calls, min_calls, \
             retries, pages, recrawls, duration_ms, change_counts, account_count, group_count, \
             membership_count, cause) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (run_id, database) DO UPDATE SET outcome = excluded.outcome, \
             at = excluded.at, api_calls = excluded.api_calls, min_calls = excluded.min_calls, \
             retries = excluded.retries, pages = excluded.pages, recrawls = excluded.recrawls, \
             duration_ms = excluded.duration_ms, change_counts = excluded.change_counts, \
             account_count = excluded.account_count, group_count = excluded.group_count, \
             membership_count = excluded.membership_count, cause = excluded.cause",
        )
        .bind(run)
        .bind(db)
        .bind(outcome.as_str())
        .bind(now)
        .bind(to_i64(stats.api_calls))
        .bind(to_i64(stats.min_calls))
        .bind(to_i64(stats.retries))
        .bind(to_i64(stats.pages))
        .bind(i64::from(stats.recrawls))
        .bind(to_i64(stats.duration_ms))
        .bind(&counts_json)
        .bind(size(0))
        .bind(size(1))
        .bind(size(2))
        .bind(cause)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(())
}
