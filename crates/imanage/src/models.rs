//! Wire models: the user, group and member objects of the API summary, the bodies of the write
//! calls, and the list envelope.
//!
//! Every response model keeps the fields it does not know in `extra` and the whole object as
//! received in `raw`, so a newer server's fields survive into the store. A `password` that a
//! server should never send is dropped on arrival, so it cannot reach a log, the store or a
//! Debug print.

use crate::error::{decode_error, Error, Result};
use crate::lenient;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// A user object as the API returns it (`GET users`, `GET users/{id}`, and the answers of the
/// write calls, which may carry only some fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Unique within its database only: the same person has another id in every database.
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    /// The login, typically the email or a domain account; the best cross-database key.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub login_name: Option<String>,
    /// Email address.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub email: Option<String>,
    /// First name.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_name: Option<String>,
    /// Full display name, often first and last name.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub display_name: Option<String>,
    /// `None` when the server left it out; the summary's default is `true`.
    #[serde(
        default,
        deserialize_with = "lenient::opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub active: Option<bool>,
    /// `full`, `external`, ...
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub user_type: Option<String>,
    /// Group ids, when the server lists them on the user.
    #[serde(
        default,
        deserialize_with = "lenient::string_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub groups: Vec<String>,
    /// The user's default database (library).
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_database: Option<String>,
    /// Phone number.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub phone: Option<String>,
    /// Department.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub department: Option<String>,
    /// Job title.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub title: Option<String>,
    /// ISO 8601, as the server wrote it.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_date: Option<String>,
    /// Fields this version of the client does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The object exactly as received (`Null` when built by hand).
    #[serde(skip)]
    pub raw: Value,
}

impl User {
    /// True unless the server says the account is inactive (the summary's default is active).
    pub fn is_active(&self) -> bool {
        self.active.unwrap_or(true)
    }

    /// The account row of this user in `database`; `raw` is the object as received.
    pub fn into_account(self, database: impl Into<String>) -> model::Account {
        let raw = raw_or_serialized(&self.raw, &self);
        model::Account {
            database: database.into(),
            active: self.is_active(),
            user_id: self.id,
            login_name: self.login_name,
            email: self.email,
            first_name: self.first_name,
            last_name: self.last_name,
            display_name: self.display_name,
            user_type: self.user_type,
            groups: self.groups,
            default_database: self.default_database,
            phone: self.phone,
            department: self.department,
            title: self.title,
            created_date: self.created_date,
            raw,
        }
    }
}

/// A group object (`GET groups`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// The group's id, unique within its database.
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    /// The group's name.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    /// Informational only: the member list is the authority.
    #[serde(
        default,
        deserialize_with = "lenient::opt_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub member_count: Option<i64>,
    /// Fields this version of the client does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The object exactly as received (`Null` when built by hand).
    #[serde(skip)]
    pub raw: Value,
}

impl Group {
    /// The group row of this group in `database`.
    pub fn into_group(self, database: impl Into<String>) -> model::Group {
        let raw = raw_or_serialized(&self.raw, &self);
        model::Group {
            database: database.into(),
            group_id: self.id,
            name: self.name,
            member_count: self.member_count,
            raw,
        }
    }
}

/// One item of a group's member list.
///
/// The summary does not fix its shape; the member's id arrives as `user_id` or as `id` (when
/// both are present, `user_id` wins: `id` may then be the membership's own id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "MemberWire")]
pub struct Member {
    /// The member's user id in the group's database.
    pub user_id: String,
    /// The member's login, when the server includes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_name: Option<String>,
    /// The member's email, when the server includes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Fields this version of the client does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The object exactly as received (`Null` when built by hand).
    #[serde(skip)]
    pub raw: Value,
}

#[derive(Deserialize)]
struct MemberWire {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    login_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    email: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl TryFrom<MemberWire> for Member {
    type Error = &'static str;

    fn try_from(w: MemberWire) -> Result<Self, Self::Error> {
        let user_id = w
            .user_id
            .or(w.id)
            .ok_or("a member needs a user_id (or an id)")?;
        Ok(Member {
            user_id,
            login_name: w.login_name,
            email: w.email,
            extra: w.extra,
            raw: Value::Null,
        })
    }
}

impl Member {
    /// The membership row of this member in `group_id` of `database`.
    pub fn into_membership(
        self,
        database: impl Into<String>,
        group_id: impl Into<String>,
    ) -> model::Membership {
        model::Membership {
            database: database.into(),
            group_id: group_id.into(),
            user_id: self.user_id,
        }
    }
}

fn raw_or_serialized<T: Serialize>(raw: &Value, value: &T) -> Value {
    if raw.is_null() {
        // Built by hand rather than received: the serialized fields are the best record there is.
        serde_json::to_value(value).unwrap_or(Value::Null)
    } else {
        raw.clone()
    }
}

/// What `add_member` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// The user is now a member: the server answered 201, or a check after an answer that was
    /// lost found the membership in place.
    Added,
    /// The server answered 409 on the first attempt: the user was a member already.
    AlreadyMember,
}

/// What `delete_user` and `remove_member` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The server answered 204.
    Removed,
    /// An earlier attempt's answer was lost, and the user (or membership) is gone now: most
    /// likely that attempt did it.
    AlreadyAbsent,
}

fn expose_opt<S: Serializer>(secret: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => s.serialize_some(secret.expose_secret()),
        None => s.serialize_none(),
    }
}

/// The body of `POST users`. The four required fields are arguments of [`NewUser::new`]; set
/// the optional ones on the struct.
#[derive(Clone, Default, Serialize)]
pub struct NewUser {
    /// Required: the login.
    pub login_name: String,
    /// Required: the email address.
    pub email: String,
    /// Required: the first name.
    pub first_name: String,
    /// Required: the last name.
    pub last_name: String,
    /// Display name; the server may derive it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The server's default is `true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// `full`, `external`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    /// Group ids to put the new user in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// Default database (library).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_database: Option<String>,
    /// Phone number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Department.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// Job title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Write-only: required by the summary unless the deployment uses SSO. Never printed.
    #[serde(serialize_with = "expose_opt", skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretString>,
    /// Fields a deployment accepts beyond the summary's.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl NewUser {
    /// A new user with the fields the summary requires on create.
    pub fn new(
        login_name: impl Into<String>,
        email: impl Into<String>,
        first_name: impl Into<String>,
        last_name: impl Into<String>,
    ) -> Self {
        Self {
            login_name: login_name.into(),
            email: email.into(),
            first_name: first_name.into(),
            last_name: last_name.into(),
            ..Self::default()
        }
    }

    /// True when `user` carries what this request asked for, as far as `user` shows it: the
    /// check that tells our own lost create from someone else's account with the same login.
    pub(crate) fn matches(&self, user: &User) -> bool {
        let same = |ours: &str, theirs: &Option<String>| {
            theirs
                .as_deref()
                .is_none_or(|t| t.trim().eq_ignore_ascii_case(ours.trim()))
        };
        user.login_name
            .as_deref()
            .is_some_and(|l| l.trim().eq_ignore_ascii_case(self.login_name.trim()))
            && same(&self.email, &user.email)
            && same(&self.first_name, &user.first_name)
            && same(&self.last_name, &user.last_name)
    }
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hand-written so the password cannot appear, not even redacted, and so new fields
        // are a deliberate choice here.
        f.debug_struct("NewUser")
            .field("login_name", &self.login_name)
            .field("email", &self.email)
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("display_name", &self.display_name)
            .field("active", &self.active)
            .field("user_type", &self.user_type)
            .field("groups", &self.groups)
            .field("default_database", &self.default_database)
            .field("phone", &self.phone)
            .field("department", &self.department)
            .field("title", &self.title)
            .field("extra", &self.extra)
            .finish_non_exhaustive()
    }
}

/// The body of `PATCH users/{id}`: only the fields set here are sent.
///
/// The outer `Option` says whether a field is sent at all; for the fields a user may lack, the
/// inner one says whether it is set to a value or cleared (`null`). Build it with the setters:
/// `UserPatch::default().active(false).title("Senior Associate").clear_phone()`.
#[derive(Clone, Default, Serialize)]
pub struct UserPatch {
    /// A new login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_name: Option<String>,
    /// A new email address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// A new first name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// A new last name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// A new display name, or `Some(None)` to clear it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<Option<String>>,
    /// `false` deactivates the account without deleting it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// A new user type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    /// Replaces the user's group list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// A new default database, or `Some(None)` to clear it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_database: Option<Option<String>>,
    /// A new phone number, or `Some(None)` to clear it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<Option<String>>,
    /// A new department, or `Some(None)` to clear it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<Option<String>>,
    /// A new title, or `Some(None)` to clear it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<Option<String>>,
    /// Write-only. Never printed.
    #[serde(serialize_with = "expose_opt", skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretString>,
}

macro_rules! setters {
    ($($field:ident: $set:ident),* $(,)?) => {
        $(
            #[doc = concat!("Sets `", stringify!($field), "`.")]
            pub fn $set(mut self, value: impl Into<String>) -> Self {
                self.$field = Some(value.into());
                self
            }
        )*
    };
}

macro_rules! nullable_setters {
    ($($field:ident: $set:ident, $clear:ident),* $(,)?) => {
        $(
            #[doc = concat!("Sets `", stringify!($field), "`.")]
            pub fn $set(mut self, value: impl Into<String>) -> Self {
                self.$field = Some(Some(value.into()));
                self
            }

            #[doc = concat!("Clears `", stringify!($field), "` (sends `null`).")]
            pub fn $clear(mut self) -> Self {
                self.$field = Some(None);
                self
            }
        )*
    };
}

impl UserPatch {
    setters!(
        login_name: login_name,
        email: email,
        first_name: first_name,
        last_name: last_name,
        user_type: user_type,
    );
    nullable_setters!(
        display_name: display_name, clear_display_name,
        default_database: default_database, clear_default_database,
        phone: phone, clear_phone,
        department: department, clear_department,
        title: title, clear_title,
    );

    /// Sets `active` (`false` deactivates without deleting, as the summary recommends).
    pub fn active(mut self, active: bool) -> Self {
        self.active = Some(active);
        self
    }

    /// Replaces the user's group list.
    pub fn groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.groups = Some(groups.into_iter().map(Into::into).collect());
        self
    }

    /// Sets a new password.
    pub fn password(mut self, password: SecretString) -> Self {
        self.password = Some(password);
        self
    }

    /// True when nothing would be sent.
    pub fn is_empty(&self) -> bool {
        self.login_name.is_none()
            && self.email.is_none()
            && self.first_name.is_none()
            && self.last_name.is_none()
            && self.display_name.is_none()
            && self.active.is_none()
            && self.user_type.is_none()
            && self.groups.is_none()
            && self.default_database.is_none()
            && self.phone.is_none()
            && self.department.is_none()
            && self.title.is_none()
            && self.password.is_none()
    }
}

impl std::fmt::Debug for UserPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserPatch")
            .field("login_name", &self.login_name)
            .field("email", &self.email)
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("display_name", &self.display_name)
            .field("active", &self.active)
            .field("user_type", &self.user_type)
            .field("groups", &self.groups)
            .field("default_database", &self.default_database)
            .field("phone", &self.phone)
            .field("department", &self.department)
            .field("title", &self.title)
            .finish_non_exhaustive()
    }
}

/// Types decoded from the `data` of a response, which keep the object as received.
pub(crate) trait Decoded: DeserializeOwned {
    fn set_raw(&mut self, raw: Value);
}

macro_rules! decoded {
    ($($t:ty),*) => {
        $(impl Decoded for $t {
            fn set_raw(&mut self, raw: Value) {
                self.raw = raw;
            }
        })*
    };
}
decoded!(User, Group, Member);

/// Parses a body as JSON, without quoting it in the error.
fn parse_json(body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body).map_err(|e| Error::Decode {
        path: "$".into(),
        message: format!(
            "not valid JSON ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ),
    })
}

/// Decodes one object; `path` says where it sat, for errors.
fn decode_item<T: Decoded>(mut item: Value, path: &str) -> Result<T> {
    if let Value::Object(map) = &mut item {
        // Write-only by the summary; a server that echoes it anyway must not get it stored.
        map.remove("password");
    }
    let mut out: T = serde_path_to_error::deserialize(&item).map_err(|e| decode_error(path, e))?;
    out.set_raw(item);
    Ok(out)
}

/// The `data` member of an object body.
fn take_data(body: &[u8]) -> Result<(Value, Map<String, Value>)> {
    match parse_json(body)? {
        Value::Object(mut map) => match map.remove("data") {
            Some(data) => Ok((data, map)),
            None => Err(Error::Decode {
                path: "data".into(),
                message: "missing field `data`".into(),
            }),
        },
        _ => Err(Error::Decode {
            path: "$".into(),
            message: "expected a JSON object".into(),
        }),
    }
}

/// `{"data": {...}}`.
pub(crate) fn decode_one<T: Decoded>(body: &[u8]) -> Result<T> {
    let (data, _) = take_data(body)?;
    decode_item(data, "data")
}

/// One page of a list: `{"data": [...], "total_results": N}`, the total being optional.
pub(crate) fn decode_list<T: Decoded>(body: &[u8]) -> Result<(Vec<T>, Option<u64>)> {
    let (data, rest) = take_data(body)?;
    let total = match rest.get("total_results") {
        None => None,
        Some(v) => match lenient::value_to_i64(v) {
            Ok(None) => None,
            Ok(Some(n)) => Some(u64::try_from(n).map_err(|_| Error::Decode {
                path: "total_results".into(),
                message: "must not be negative".into(),
            })?),
            Err(message) => {
                return Err(Error::Decode {
                    path: "total_results".into(),
                    message: message.into(),
                })
            }
        },
    };
    let items = match data {
        Value::Array(items) => items,
        // Some servers send `null` for an empty list.
        Value::Null => Vec::new(),
        _ => {
            return Err(Error::Decode {
                path: "data".into(),
                message: "expected a list".into(),
            })
        }
    };
    let items = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| decode_item(item, &format!("data[{i}]")))
        .collect::<Result<Vec<T>>>()?;
    Ok((items, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).expect("json")
    }

    #[test]
    fn a_full_user_object_decodes_and_converts() {
        let v = json!({"data": {
            "id": "usr_001", "login_name": "jdoe", "email": "jdoe@acme.com",
            "first_name": "John", "last_name": "Doe", "display_name": "John Doe",
            "active": false, "user_type": "external", "groups": ["grp_1", "grp_2"],
            "default_database": "acme", "phone": "+1 555", "department": "Litigation",
            "title": "Partner", "created_date": "2016-03-14T09:21:07Z",
            "office_location": "Floor 3"
        }});
        let u: User = decode_one(&body(v.clone())).expect("user");
        assert_eq!(u.id, "usr_001");
        assert_eq!(u.groups, vec!["grp_1", "grp_2"]);
        assert_eq!(u.extra.get("office_location"), Some(&json!("Floor 3")));
        let a = u.into_account("acme");
        assert_eq!(a.key(), model::AccountKey::new("acme", "usr_001"));
        assert!(!a.active);
        assert!(a.is_external());
        assert_eq!(a.title.as_deref(), Some("Partner"));
        assert_eq!(a.created_date.as_deref(), Some("2016-03-14T09:21:07Z"));
        assert_eq!(&a.raw, v.get("data").expect("data"));
    }

    #[test]
    fn a_minimal_user_is_active_and_a_password_is_dropped() {
        let (users, total): (Vec<User>, _) = decode_list(&body(json!({
            "data": [{"id": 7, "password": "hunter2"}]
        })))
        .expect("list");
        assert_eq!(total, None);
        let u = &users[0];
        assert_eq!(u.id, "7");
        assert!(u.is_active());
        assert!(!format!("{u:?}").contains("hunter2"));
        assert!(u.raw.get("password").is_none());
        assert!(u.extra.get("password").is_none());
    }

    #[test]
    fn list_totals_may_be_strings_null_or_absent() {
        for (total, want) in [
            (json!(120), Some(120)),
            (json!("120"), Some(120)),
            (json!(null), None),
        ] {
            let (_, t): (Vec<Group>, _) =
                decode_list(&body(json!({"data": [], "total_results": total}))).expect("list");
            assert_eq!(t, want);
        }
        let err = decode_list::<Group>(&body(json!({"data": [], "total_results": -1})))
            .expect_err("negative");
        assert!(matches!(err, Error::Decode { ref path, .. } if path == "total_results"));
    }

    #[test]
    fn groups_and_members_decode_tolerantly() {
        let (groups, total): (Vec<Group>, _) = decode_list(&body(json!({
            "data": [{"id": "grp_001", "name": "Litigation", "member_count": "12", "kind": "x"}],
            "total_results": 1
        })))
        .expect("groups");
        assert_eq!(total, Some(1));
        assert_eq!(groups[0].member_count, Some(12));
        let g = groups[0].clone().into_group("acme");
        assert_eq!((g.group_id.as_str(), g.member_count), ("grp_001", Some(12)));
        assert_eq!(g.raw.get("kind"), Some(&json!("x")));

        let (members, _): (Vec<Member>, _) = decode_list(&body(json!({"data": [
            {"user_id": "u1", "login_name": "a"},
            {"id": 2, "email": "b@acme.com"},
            {"user_id": "u3", "id": "m-77"}
        ]})))
        .expect("members");
        let ids: Vec<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
        assert_eq!(ids, vec!["u1", "2", "u3"]);
        let m = members[2].clone().into_membership("acme", "grp_1");
        assert_eq!(m.user_id, "u3");
        assert_eq!(m.group_id, "grp_1");
    }

    #[test]
    fn decode_errors_carry_a_path_and_no_values() {
        let err = decode_list::<User>(&body(json!({"data": [
            {"id": "u1"},
            {"id": "u2", "active": "hunter2"}
        ]})))
        .expect_err("bad bool");
        match err {
            Error::Decode { path, message } => {
                assert_eq!(path, "data[1].active");
                assert!(!message.contains("hunter2"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
        let err = decode_list::<Member>(&body(json!({"data": [{"login_name": "x"}]})))
            .expect_err("no id");
        assert!(
            matches!(err, Error::Decode { ref path, .. } if path.starts_with("data[0]")),
            "{err}"
        );
        assert!(matches!(
            decode_one::<User>(b"{not json"),
            Err(Error::Decode { .. })
        ));
        assert!(matches!(
            decode_one::<User>(&body(json!({"user": {}}))),
            Err(Error::Decode { ref path, .. }) if path == "data"
        ));
    }

    #[test]
    fn patches_send_only_what_was_set() {
        let p = UserPatch::default()
            .active(false)
            .title("Senior Associate")
            .clear_phone();
        assert_eq!(
            serde_json::to_value(&p).expect("json"),
            json!({"active": false, "title": "Senior Associate", "phone": null})
        );
        assert!(UserPatch::default().is_empty());
        assert!(!p.is_empty());
        assert_eq!(
            serde_json::to_value(UserPatch::default()).expect("json"),
            json!({})
        );
    }

    #[test]
    fn passwords_are_sent_but_never_printed() {
        let mut n = NewUser::new("jsmith", "jsmith@acme.com", "Jane", "Smith");
        n.password = Some(SecretString::from("hunter2"));
        let v = serde_json::to_value(&n).expect("json");
        assert_eq!(v.get("password"), Some(&json!("hunter2")));
        assert_eq!(v.get("login_name"), Some(&json!("jsmith")));
        assert!(v.get("title").is_none());
        assert!(!format!("{n:?}").contains("hunter2"));

        let p = UserPatch::default().password(SecretString::from("hunter2"));
        assert_eq!(
            serde_json::to_value(&p).expect("json"),
            json!({"password": "hunter2"})
        );
        assert!(!format!("{p:?}").contains("hunter2"));
        assert!(!p.is_empty());
    }

    #[test]
    fn new_user_matches_its_own_echo_only() {
        let n = NewUser::new("JSmith", "jsmith@acme.com", "Jane", "Smith");
        let mine: User = serde_json::from_value(json!({
            "id": "u9", "login_name": "jsmith", "email": "JSmith@acme.com"
        }))
        .expect("user");
        assert!(n.matches(&mine));
        let theirs: User = serde_json::from_value(json!({
            "id": "u1", "login_name": "jsmith", "email": "john.smith@acme.com"
        }))
        .expect("user");
        assert!(!n.matches(&theirs));
    }
}
