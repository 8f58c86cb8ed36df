//! Domain types shared by idgraph's crates.
//!
//! These are the rows a harvest produces and the store keeps: per-database accounts, groups,
//! group memberships and (where the API offers it) workspaces with their security. They carry no
//! behaviour beyond small conversions, so every crate can depend on them without pulling in
//! HTTP, SQL or the graph.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;
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

/// A JSON value kept as the text it arrived in: the `raw` object of a row.
///
/// A harvest reads hundreds of thousands of these and mostly only stores them, so they are not
/// parsed into a tree: the text is checked once (it is always valid JSON) and kept as it was
/// received, key order and all. [`RawJson::to_value`] parses it when something needs to look
/// inside. Equality is JSON equality (key order and spacing do not matter), like
/// `serde_json::Value`'s.
#[derive(Clone)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// `null`, the raw object of a row built by hand rather than received.
    pub fn null() -> Self {
        RawJson(RawValue::NULL.to_owned())
    }

    /// Checks that `text` is one JSON value and keeps it as it is.
    pub fn from_text(text: impl Into<String>) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text.into()).map(RawJson)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// True for `null`.
    pub fn is_null(&self) -> bool {
        self.as_str() == "null"
    }

    /// The value parsed into a tree.
    pub fn to_value(&self) -> Value {
        // The text was checked when it was made, so it parses; `Null` would only stand for a
        // value too deeply nested for the parser, which the check would have refused too.
        serde_json::from_str(self.as_str()).unwrap_or(Value::Null)
    }

    /// Changes the value through its tree (parsed, edited, written back as compact text).
    pub fn update(&mut self, edit: impl FnOnce(&mut Value)) {
        let mut value = self.to_value();
        edit(&mut value);
        *self = RawJson::from(&value);
    }
}

impl Default for RawJson {
    fn default() -> Self {
        RawJson::null()
    }
}

impl From<&Value> for RawJson {
    fn from(value: &Value) -> Self {
        // Serializing a `Value` cannot fail: its keys are strings.
        RawJson(
            serde_json::value::to_raw_value(value).unwrap_or_else(|_| RawValue::NULL.to_owned()),
        )
    }
}

impl From<&RawValue> for RawJson {
    fn from(value: &RawValue) -> Self {
        RawJson(value.to_owned())
    }
}

impl From<Value> for RawJson {
    fn from(value: Value) -> Self {
        RawJson::from(&value)
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str() || self.to_value() == other.to_value()
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(deserializer).map(RawJson)
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
    pub raw: RawJson,
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
    pub raw: RawJson,
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
    pub raw: RawJson,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn raw_json_keeps_its_text_and_compares_as_json() {
        let a = RawJson::from_text(r#"{"b": [1, 2], "a": {"x": null}}"#).unwrap();
        let b = RawJson::from_text(r#"{"a":{"x":null},"b":[1,2]}"#).unwrap();
        assert_eq!(
            a.as_str(),
            r#"{"b": [1, 2], "a": {"x": null}}"#,
            "kept as received"
        );
        assert_eq!(a, b, "key order and spacing do not matter");
        assert_ne!(a, RawJson::from(json!({"a": {"x": null}, "b": [1, 3]})));
        assert_eq!(a.to_value(), json!({"a": {"x": null}, "b": [1, 2]}));
    }

    #[test]
    fn raw_json_refuses_what_is_not_one_json_value() {
        for text in ["", "{", "{} {}", "nul", r#"{"a": 1,}"#] {
            assert!(RawJson::from_text(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn raw_json_is_null_by_default_and_edits_through_its_tree() {
        let mut raw = RawJson::default();
        assert!(raw.is_null());
        assert_eq!(raw, RawJson::null());
        raw = RawJson::from(json!({"id": "u1"}));
        raw.update(|v| v["groups"] = json!(["g1"]));
        assert!(!raw.is_null());
        assert_eq!(raw.to_value(), json!({"id": "u1", "groups": ["g1"]}));
    }

    #[test]
    fn raw_json_is_embedded_as_json_when_a_row_is_serialized() {
        let account = Account {
            database: "db".into(),
            user_id: "u1".into(),
            raw: RawJson::from_text(r#"{"id": "u1", "x": [1]}"#).unwrap(),
            ..Account::default()
        };
        let text = serde_json::to_string(&account).unwrap();
        assert!(text.contains(r#""raw":{"id": "u1", "x": [1]}"#), "{text}");
        let back: Account = serde_json::from_str(&text).unwrap();
        assert_eq!(back, account);
        assert_eq!(back.raw.as_str(), account.raw.as_str());
    }
}
