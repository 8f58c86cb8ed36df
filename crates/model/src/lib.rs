//! Domain types shared by idgraph's crates.
//!
//! These are the rows a harvest produces and the store keeps: per-database accounts, groups,
//! group memberships and (where the API offers it) workspaces with their security. They carry no
//! behaviour beyond small conversions, so every crate can depend on them without pulling in
//! HTTP, SQL or the graph.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifies one account: the database (`customer_id`, or a v2 library) and the user id in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccountKey {
    pub database: String,
    pub user_id: String,
}

impl AccountKey {
    pub fn new(database: impl Into<String>, user_id: impl Into<String>) -> Self {
        Self {
            database: database.into(),
            user_id: user_id.into(),
        }
    }
}

impl fmt::Display for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.database, self.user_id)
    }
}

/// One user account in one database, with every field of the API's user object.
///
/// `raw` is the object exactly as the API returned it, so fields this version of idgraph does not
/// know are kept rather than dropped. `password` is write-only in the API and never appears here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Account {
    pub database: String,
    pub user_id: String,
    pub login_name: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: Option<String>,
    pub active: bool,
    pub user_type: Option<String>,
    /// Group ids as listed on the user object itself, when the API includes them.
    pub groups: Vec<String>,
    pub default_database: Option<String>,
    pub phone: Option<String>,
    pub department: Option<String>,
    pub title: Option<String>,
    pub created_date: Option<String>,
    pub raw: serde_json::Value,
}

impl Account {
    pub fn key(&self) -> AccountKey {
        AccountKey::new(self.database.clone(), self.user_id.clone())
    }

    /// True when the account is marked external (`user_type` of `external`).
    pub fn is_external(&self) -> bool {
        self.user_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("external"))
    }
}

/// One group in one database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Group {
    pub database: String,
    pub group_id: String,
    pub name: Option<String>,
    /// The member count the API reported on the group, if any (informational).
    pub member_count: Option<i64>,
    pub raw: serde_json::Value,
}

/// One account's membership of one group, in one database.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Membership {
    pub database: String,
    pub group_id: String,
    pub user_id: String,
}

/// An access level on a workspace, lowest first, so `Ord` orders by privilege.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    NoAccess,
    Read,
    ReadWrite,
    FullAccess,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::NoAccess => "no_access",
            Access::Read => "read",
            Access::ReadWrite => "read_write",
            Access::FullAccess => "full_access",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "no_access" => Access::NoAccess,
            "read" => Access::Read,
            "read_write" => Access::ReadWrite,
            "full_access" => Access::FullAccess,
            _ => return None,
        })
    }
}

/// What a workspace grants everyone in its database when no entry decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultSecurity {
    Private,
    View,
    Public,
}

impl DefaultSecurity {
    pub fn as_str(self) -> &'static str {
        match self {
            DefaultSecurity::Private => "private",
            DefaultSecurity::View => "view",
            DefaultSecurity::Public => "public",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "private" => DefaultSecurity::Private,
            "view" => DefaultSecurity::View,
            "public" => DefaultSecurity::Public,
            _ => return None,
        })
    }

    /// The access the default security gives every account of the database.
    pub fn access(self) -> Access {
        match self {
            DefaultSecurity::Private => Access::NoAccess,
            DefaultSecurity::View => Access::Read,
            DefaultSecurity::Public => Access::ReadWrite,
        }
    }
}

/// How a database combines the entries of an account's several groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityMode {
    /// The highest level among the account's groups wins.
    #[default]
    Optimistic,
    /// The lowest level among the account's groups wins: one `no_access` denies.
    Pessimistic,
}

/// A workspace in one database, with its default security.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    pub database: String,
    pub workspace_id: String,
    pub name: Option<String>,
    pub default_security: DefaultSecurity,
    pub raw: serde_json::Value,
}

/// One entry of a workspace's security: a user or a group with an access level.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WorkspaceEntry {
    pub database: String,
    pub workspace_id: String,
    /// A user id when `is_group` is false, a group id otherwise.
    pub principal_id: String,
    pub is_group: bool,
    pub access: Access,
}

/// Everything one complete crawl of one database found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatabaseSnapshot {
    pub database: String,
    pub accounts: Vec<Account>,
    pub groups: Vec<Group>,
    pub memberships: Vec<Membership>,
    /// `None` when the API profile offers no workspace security; the store then keeps whatever
    /// it had rather than reading the absence as "every workspace removed".
    pub workspaces: Option<Vec<Workspace>>,
    pub workspace_entries: Option<Vec<WorkspaceEntry>>,
}

/// An analyst's decision about two accounts, applied on every resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OverrideKind {
    MustLink,
    CannotLink,
}

impl OverrideKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OverrideKind::MustLink => "MUST_LINK",
            OverrideKind::CannotLink => "CANNOT_LINK",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "MUST_LINK" => Some(OverrideKind::MustLink),
            "CANNOT_LINK" => Some(OverrideKind::CannotLink),
            _ => None,
        }
    }
}

/// A persisted override between two accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    pub id: i64,
    pub kind: OverrideKind,
    pub a: AccountKey,
    pub b: AccountKey,
    pub reason: Option<String>,
    pub created_by: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
}
