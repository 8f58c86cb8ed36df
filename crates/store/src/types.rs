//! The store's public data types: run bookkeeping, change log, state, persons and audit.

use serde::{Deserialize, Serialize};

/// Identifies one harvest run.
pub type RunId = i64;

/// The page size [`crate::Store::changes`] and [`crate::Store::audit`] use when a query asks for
/// more; keeps one answer bounded in memory.
pub const MAX_PAGE: u32 = 10_000;

/// Which database engine a [`crate::Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A SQLite file (the zero set-up default).
    Sqlite,
    /// A PostgreSQL server (production).
    Postgres,
}

/// What one crawl of one database cost, as the harvester counted it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CrawlStats {
    /// API calls made, retries included.
    pub api_calls: u64,
    /// The fewest calls a perfect crawl would have needed.
    pub min_calls: u64,
    /// Calls repeated after a failure or a rate limit.
    pub retries: u64,
    /// Pages received.
    pub pages: u64,
    /// Times the crawl started over because the data moved under it.
    pub recrawls: u32,
    /// Wall time of the crawl.
    pub duration_ms: u64,
}

/// What one committed crawl changed, by kind of row.
///
/// The counts describe the difference between the stored state and the snapshot. `total` is the
/// number of change-log rows written, which is zero for a database's first complete harvest: that
/// harvest is the baseline, and logging every row of it as "added" would bury real changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChangeCounts {
    /// Accounts new to the store or back after a removal.
    pub accounts_added: u64,
    /// Present accounts the crawl no longer found.
    pub accounts_removed: u64,
    /// Accounts with at least one changed field (activation included).
    pub accounts_changed: u64,
    /// Groups new to the store or back after a removal.
    pub groups_added: u64,
    /// Present groups the crawl no longer found.
    pub groups_removed: u64,
    /// Groups with a logged field change (a new member count alone is not one).
    pub groups_changed: u64,
    /// Memberships new or back.
    pub memberships_added: u64,
    /// Memberships gone.
    pub memberships_removed: u64,
    /// Workspaces new or back.
    pub workspaces_added: u64,
    /// Workspaces gone (only when the snapshot carried workspaces).
    pub workspaces_removed: u64,
    /// Workspaces with a changed field.
    pub workspaces_changed: u64,
    /// Security entries new or back.
    pub workspace_entries_added: u64,
    /// Security entries gone.
    pub workspace_entries_removed: u64,
    /// Security entries whose access level changed.
    pub workspace_entries_changed: u64,
    /// Change-log rows written.
    pub total: u64,
}

impl ChangeCounts {
    /// True when the crawl found nothing different from the stored state.
    pub fn is_empty(&self) -> bool {
        *self
            == ChangeCounts {
                total: self.total,
                ..ChangeCounts::default()
            }
    }
}

/// How fresh and how big one database's stored state is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseStatus {
    /// The database (`customer_id`).
    pub database: String,
    /// When the last complete crawl was committed (unix ms); `None` before the first.
    pub last_complete_at: Option<i64>,
    /// When the last crawl, complete or not, was recorded (unix ms).
    pub last_attempt_at: Option<i64>,
    /// True when the last attempt succeeded.
    pub complete: bool,
    /// Why the last attempt failed, when it did.
    pub last_error: Option<String>,
    /// Present accounts.
    pub account_count: i64,
    /// Present groups.
    pub group_count: i64,
    /// Present memberships.
    pub membership_count: i64,
}

/// The kinds of change-log rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeKind {
    /// An account appeared (or came back).
    AccountAdded,
    /// An account disappeared from its database's user list.
    AccountRemoved,
    /// An account's `active` went from false to true.
    AccountActivated,
    /// An account's `active` went from true to false.
    AccountDeactivated,
    /// One field of an account changed; one row per changed field (`raw` for changes only
    /// the raw object shows).
    AccountChanged,
    /// A group appeared (or came back).
    GroupAdded,
    /// A group disappeared.
    GroupRemoved,
    /// One field of a group changed.
    GroupChanged,
    /// An account joined a group.
    MembershipAdded,
    /// An account left a group.
    MembershipRemoved,
    /// A workspace appeared (or came back).
    WorkspaceAdded,
    /// A workspace disappeared.
    WorkspaceRemoved,
    /// One field of a workspace changed.
    WorkspaceChanged,
    /// A user or group got an entry in a workspace's security.
    WorkspaceEntryAdded,
    /// A security entry was taken away.
    WorkspaceEntryRemoved,
    /// A security entry's access level changed.
    WorkspaceEntryChanged,
}

impl ChangeKind {
    /// Every kind, in declaration order.
    pub const ALL: [ChangeKind; 16] = [
        ChangeKind::AccountAdded,
        ChangeKind::AccountRemoved,
        ChangeKind::AccountActivated,
        ChangeKind::AccountDeactivated,
        ChangeKind::AccountChanged,
        ChangeKind::GroupAdded,
        ChangeKind::GroupRemoved,
        ChangeKind::GroupChanged,
        ChangeKind::MembershipAdded,
        ChangeKind::MembershipRemoved,
        ChangeKind::WorkspaceAdded,
        ChangeKind::WorkspaceRemoved,
        ChangeKind::WorkspaceChanged,
        ChangeKind::WorkspaceEntryAdded,
        ChangeKind::WorkspaceEntryRemoved,
        ChangeKind::WorkspaceEntryChanged,
    ];

    /// The stored and displayed name, e.g. `ACCOUNT_ADDED`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::AccountAdded => "ACCOUNT_ADDED",
            ChangeKind::AccountRemoved => "ACCOUNT_REMOVED",
            ChangeKind::AccountActivated => "ACCOUNT_ACTIVATED",
            ChangeKind::AccountDeactivated => "ACCOUNT_DEACTIVATED",
            ChangeKind::AccountChanged => "ACCOUNT_CHANGED",
            ChangeKind::GroupAdded => "GROUP_ADDED",
            ChangeKind::GroupRemoved => "GROUP_REMOVED",
            ChangeKind::GroupChanged => "GROUP_CHANGED",
            ChangeKind::MembershipAdded => "MEMBERSHIP_ADDED",
            ChangeKind::MembershipRemoved => "MEMBERSHIP_REMOVED",
            ChangeKind::WorkspaceAdded => "WORKSPACE_ADDED",
            ChangeKind::WorkspaceRemoved => "WORKSPACE_REMOVED",
            ChangeKind::WorkspaceChanged => "WORKSPACE_CHANGED",
            ChangeKind::WorkspaceEntryAdded => "WORKSPACE_ENTRY_ADDED",
            ChangeKind::WorkspaceEntryRemoved => "WORKSPACE_ENTRY_REMOVED",
            ChangeKind::WorkspaceEntryChanged => "WORKSPACE_ENTRY_CHANGED",
        }
    }

    /// The inverse of [`ChangeKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        ChangeKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change-log row.
///
/// Which ids are set depends on the kind: accounts carry `user_id`; groups `group_id`;
/// memberships both; workspaces `workspace_id`; workspace entries `workspace_id` plus `user_id`
/// or `group_id` for the principal. Field changes carry `field`, `old_value` and `new_value`
/// (lists and raw objects as JSON text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Increasing in commit order: the cursor for paging.
    pub id: i64,
    /// The run whose commit found the change.
    pub run_id: RunId,
    /// When the change was committed (unix ms).
    pub at: i64,
    /// The database it happened in.
    pub database: String,
    /// What happened.
    pub kind: ChangeKind,
    /// The account (or the member, or the entry's user).
    pub user_id: Option<String>,
    /// The group (or the entry's group).
    pub group_id: Option<String>,
    /// The workspace.
    pub workspace_id: Option<String>,
    /// The changed field, for field changes.
    pub field: Option<String>,
    /// The value before.
    pub old_value: Option<String>,
    /// The value after.
    pub new_value: Option<String>,
}

/// A filter over the change log. Every `Some` narrows the answer; `Some(vec![])` matches nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeQuery {
    /// Changes in these databases.
    pub databases: Option<Vec<String>>,
    /// Changes touching these users, their memberships and workspace entries included.
    pub accounts: Option<Vec<model::AccountKey>>,
    /// Changes of these kinds.
    pub kinds: Option<Vec<ChangeKind>>,
    /// Inclusive lower bound on `at` (unix ms).
    pub since: Option<i64>,
    /// Exclusive upper bound on `at` (unix ms).
    pub until: Option<i64>,
    /// Only changes with a larger id: the cursor for the next page.
    pub after_id: Option<i64>,
    /// Page size, capped at [`MAX_PAGE`].
    pub limit: u32,
}

impl Default for ChangeQuery {
    fn default() -> Self {
        ChangeQuery {
            databases: None,
            accounts: None,
            kinds: None,
            since: None,
            until: None,
            after_id: None,
            limit: 100,
        }
    }
}

/// Person ids as the graph crate assigned them; the store only persists them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonIds {
    /// The person each account belongs to.
    pub by_account: Vec<(model::AccountKey, String)>,
    /// `(old id, surviving id)` for persons merged into another.
    pub aliases: Vec<(String, String)>,
    /// `(person id, creation sequence number)`; the older (smaller) one survives a merge.
    pub created: Vec<(String, i64)>,
    /// The next creation sequence number to hand out.
    pub next_seq: i64,
}

/// Everything the graph is built from: the present rows of every database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    /// Every database's status, ordered by database.
    pub databases: Vec<DatabaseStatus>,
    /// Present accounts, ordered by database and user id.
    pub accounts: Vec<model::Account>,
    /// Present groups, ordered by database and group id.
    pub groups: Vec<model::Group>,
    /// Present memberships, ordered by database, group and user.
    pub memberships: Vec<model::Membership>,
    /// Present workspaces, ordered by database and workspace id.
    pub workspaces: Vec<model::Workspace>,
    /// Present security entries, ordered by database, workspace, kind and principal.
    pub workspace_entries: Vec<model::WorkspaceEntry>,
    /// Active overrides, oldest first.
    pub overrides: Vec<model::Override>,
    /// The stored person ids.
    pub persons: PersonIds,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Started and not finished (or its process is still working on it).
    Running,
    /// Every requested database was committed.
    Complete,
    /// Some requested databases were committed, some not.
    Partial,
    /// No requested database was committed.
    Failed,
    /// Left running by a process that is gone.
    Abandoned,
}

impl RunStatus {
    /// The stored name, e.g. `running`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Complete => "complete",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Abandoned => "abandoned",
        }
    }

    /// The inverse of [`RunStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => RunStatus::Running,
            "complete" => RunStatus::Complete,
            "partial" => RunStatus::Partial,
            "failed" => RunStatus::Failed,
            "abandoned" => RunStatus::Abandoned,
            _ => return None,
        })
    }
}

/// How one database fared in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// The crawl was complete and committed.
    Complete,
    /// The crawl failed or was incomplete; the database's data was left alone.
    Failed,
}

impl RunOutcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Complete => "complete",
            RunOutcome::Failed => "failed",
        }
    }

    /// The inverse of [`RunOutcome::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "complete" => Some(RunOutcome::Complete),
            "failed" => Some(RunOutcome::Failed),
            _ => None,
        }
    }
}

/// One database's outcome within a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDatabase {
    /// The database.
    pub database: String,
    /// Committed or failed.
    pub outcome: RunOutcome,
    /// When the outcome was recorded (unix ms).
    pub at: i64,
    /// What the crawl cost.
    pub stats: CrawlStats,
    /// What the commit changed (all zero for a failed crawl).
    pub changes: ChangeCounts,
    /// Present accounts after the commit; `None` for a failed crawl.
    pub account_count: Option<i64>,
    /// Present groups after the commit.
    pub group_count: Option<i64>,
    /// Present memberships after the commit.
    pub membership_count: Option<i64>,
    /// Why the crawl failed.
    pub cause: Option<String>,
}

/// One harvest run with its per-database outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run.
    pub id: RunId,
    /// Where it stands.
    pub status: RunStatus,
    /// When it started (unix ms).
    pub started_at: i64,
    /// When it finished or was found abandoned (unix ms).
    pub finished_at: Option<i64>,
    /// The databases the run set out to crawl.
    pub requested: Vec<String>,
    /// Recorded outcomes, ordered by database.
    pub databases: Vec<RunDatabase>,
}

impl RunRecord {
    /// Wall time from start to finish, when finished.
    pub fn duration_ms(&self) -> Option<i64> {
        self.finished_at.map(|f| f - self.started_at)
    }
}

/// The life of one stored row: when it was first seen, whether it is still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// Found by the last complete harvest.
    pub present: bool,
    /// The first complete harvest that found it (unix ms).
    pub first_seen_at: i64,
    /// For a present row, the database's last complete harvest; for a removed row, the last
    /// complete harvest that still found it.
    pub last_seen_at: Option<i64>,
    /// When the row was found gone.
    pub removed_at: Option<i64>,
    /// The run that last wrote the row. Harvests that find it unchanged do not rewrite it.
    pub updated_run: RunId,
}

/// An account with its history.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountRecord {
    /// The account as last stored.
    pub account: model::Account,
    /// Its history.
    pub presence: Presence,
}

/// A group with its history.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRecord {
    /// The group as last stored.
    pub group: model::Group,
    /// Its history.
    pub presence: Presence,
}

/// A membership with its history.
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipRecord {
    /// The membership.
    pub membership: model::Membership,
    /// Its history.
    pub presence: Presence,
}

/// An audit-log entry to append: who did what to what, and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Who acted (an API key's name, a CLI user); `None` when unknown.
    pub actor: Option<String>,
    /// What was done, dotted, e.g. `override.add`, `imanage.user.deactivate`.
    pub action: String,
    /// What it was done to, e.g. `override:12` or `db1/u42`.
    pub target: Option<String>,
    /// Anything else worth keeping, as JSON.
    pub detail: serde_json::Value,
    /// How it went, e.g. `ok`, `not_found`, `error`.
    pub outcome: String,
}

/// A stored audit-log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Increasing in append order.
    pub id: i64,
    /// When it was appended (unix ms).
    pub at: i64,
    /// See [`AuditEntry::actor`].
    pub actor: Option<String>,
    /// See [`AuditEntry::action`].
    pub action: String,
    /// See [`AuditEntry::target`].
    pub target: Option<String>,
    /// See [`AuditEntry::detail`].
    pub detail: serde_json::Value,
    /// See [`AuditEntry::outcome`].
    pub outcome: String,
}

/// A filter over the audit log; ordered by id ascending like the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Entries by this actor.
    pub actor: Option<String>,
    /// Entries with one of these exact action names.
    pub actions: Option<Vec<String>>,
    /// Entries about this target.
    pub target: Option<String>,
    /// Inclusive lower bound on `at`.
    pub since: Option<i64>,
    /// Exclusive upper bound on `at`.
    pub until: Option<i64>,
    /// Only entries with a larger id: the cursor for the next page.
    pub after_id: Option<i64>,
    /// Page size, capped at [`MAX_PAGE`].
    pub limit: u32,
}

impl Default for AuditQuery {
    fn default() -> Self {
        AuditQuery {
            actor: None,
            actions: None,
            target: None,
            since: None,
            until: None,
            after_id: None,
            limit: 100,
        }
    }
}
