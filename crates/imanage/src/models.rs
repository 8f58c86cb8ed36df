//! Wire models: the user, group and member objects of the API summary, the bodies of the write
//! calls, and the list envelope.
//!
//! Those that become stored rows (users, groups, workspaces) keep the whole object as received
//! in `raw`, as its text, so a newer server's fields survive into the store; the other models,
//! and groups and workspaces too, keep the fields they do not know in `extra` (a user's are in
//! its `raw`: [`User::extra`]). A `password` that a
//! server should never send is dropped on arrival, so it cannot reach a log, the store or a
//! Debug print.

use crate::config::ApiProfile;
use crate::error::{decode_error, Error, Result};
use crate::lenient;
use crate::pagination::Page;
use model::RawJson;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
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
    /// The object exactly as received, as its text (`null` when built by hand). The fields
    /// this version of the client does not know are in it ([`User::extra`]): users are most of
    /// what a harvest reads, and sorting their fields into a map of their own on the way in
    /// would cost more than reading them.
    #[serde(skip)]
    pub raw: RawJson,
}

/// The fields of the v1 user object that [`User`] reads.
const USER_FIELDS: [&str; 14] = [
    "id",
    "login_name",
    "email",
    "first_name",
    "last_name",
    "display_name",
    "active",
    "user_type",
    "groups",
    "default_database",
    "phone",
    "department",
    "title",
    "created_date",
];

impl User {
    /// Fields of the object as received that this version of the client does not know
    /// (under the v1 names: a v2 object's own names are among them).
    pub fn extra(&self) -> Map<String, Value> {
        match self.raw.to_value() {
            Value::Object(mut map) => {
                map.retain(|k, _| !USER_FIELDS.contains(&k.as_str()));
                map
            }
            _ => Map::new(),
        }
    }

    /// True unless the server says the account is inactive (the summary's default is active).
    pub fn is_active(&self) -> bool {
        self.active.unwrap_or(true)
    }

    /// The account row of this user in `database`; `raw` is the object as received.
    pub fn into_account(mut self, database: impl Into<String>) -> model::Account {
        let raw = raw_or_serialized(&mut self, |u| &mut u.raw);
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
    /// The object exactly as received, as its text (`null` when built by hand).
    #[serde(skip)]
    pub raw: RawJson,
}

impl Group {
    /// The group row of this group in `database`.
    pub fn into_group(mut self, database: impl Into<String>) -> model::Group {
        let raw = raw_or_serialized(&mut self, |g| &mut g.raw);
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
    /// Fields this version of the client does not know. (A member keeps no `raw` object: the
    /// account it names is stored from the users list, and a membership row is its ids.)
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A member item as sent. Its `Deserialize` is written out rather than derived with
/// `#[serde(flatten)]`: member listings are most of a crawl's records, and flattening buffers
/// every field of every item before reading it. Known fields are read leniently without an
/// intermediate value; only unknown ones become `Value`s.
#[derive(Default)]
struct MemberWire {
    user_id: Option<String>,
    id: Option<String>,
    login_name: Option<String>,
    /// The v2 name of the login.
    user_id_ex: Option<String>,
    email: Option<String>,
    extra: Map<String, Value>,
}

/// A key of a member item: a known one without allocating, any other by name.
enum MemberKey {
    UserId,
    Id,
    LoginName,
    UserIdEx,
    Email,
    /// Write-only by the summary; a server that echoes it must not get it kept.
    Password,
    Other(String),
}

impl<'de> Deserialize<'de> for MemberKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = MemberKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<MemberKey, E> {
                Ok(match v {
                    "user_id" => MemberKey::UserId,
                    "id" => MemberKey::Id,
                    "login_name" => MemberKey::LoginName,
                    "user_id_ex" => MemberKey::UserIdEx,
                    "email" => MemberKey::Email,
                    "password" => MemberKey::Password,
                    other => MemberKey::Other(other.to_owned()),
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for MemberWire {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct WireVisitor;
        impl<'de> serde::de::Visitor<'de> for WireVisitor {
            type Value = MemberWire;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<MemberWire, A::Error> {
                let mut w = MemberWire::default();
                while let Some(key) = map.next_key::<MemberKey>()? {
                    let slot = match key {
                        MemberKey::UserId => &mut w.user_id,
                        MemberKey::Id => &mut w.id,
                        MemberKey::LoginName => &mut w.login_name,
                        MemberKey::UserIdEx => &mut w.user_id_ex,
                        MemberKey::Email => &mut w.email,
                        MemberKey::Password => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            continue;
                        }
                        MemberKey::Other(name) => {
                            let value = map.next_value::<Value>()?;
                            w.extra.insert(name, value);
                            continue;
                        }
                    };
                    *slot = map.next_value::<lenient::OptString>()?.0;
                }
                Ok(w)
            }
        }
        d.deserialize_map(WireVisitor)
    }
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
            login_name: w.login_name.or(w.user_id_ex),
            email: w.email,
            extra: w.extra,
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

/// A v2 user object. It becomes a [`User`] as soon as it is decoded, so that everything above
/// the client sees one shape: `user_id_ex` is the login (or, when a server leaves it out, `id`,
/// which real v2 servers set to the login), `full_name` the display name, `allow_logon` is
/// `active`, `is_external` gives `user_type` (`external` or `full`), `preferred_library` the
/// default database and `create_date` the creation date. `first_name`, `last_name`,
/// `department`, `title` and `groups` are read under their v1 names when a server sends them.
#[derive(Deserialize)]
pub(crate) struct UserV2 {
    #[serde(deserialize_with = "lenient::string")]
    id: String,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    user_id_ex: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    full_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    first_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    last_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    email: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    is_external: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    allow_logon: Option<bool>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    preferred_library: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    phone: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    department: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    title: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    create_date: Option<String>,
    #[serde(default, deserialize_with = "lenient::string_list")]
    groups: Vec<String>,
    #[serde(skip)]
    raw: RawJson,
}

impl From<UserV2> for User {
    fn from(v: UserV2) -> Self {
        User {
            login_name: v.user_id_ex.or_else(|| Some(v.id.clone())),
            id: v.id,
            email: v.email,
            first_name: v.first_name,
            last_name: v.last_name,
            display_name: v.full_name,
            active: v.allow_logon,
            user_type: v
                .is_external
                .map(|e| if e { "external" } else { "full" }.to_string()),
            groups: v.groups,
            default_database: v.preferred_library,
            phone: v.phone,
            department: v.department,
            title: v.title,
            created_date: v.create_date,
            raw: v.raw,
        }
    }
}

/// A v2 group object, which becomes a [`Group`]: `full_name` is the name (`name` is read too);
/// `enabled`, `is_external` and the rest stay in `extra`.
#[derive(Deserialize)]
pub(crate) struct GroupV2 {
    #[serde(deserialize_with = "lenient::string")]
    id: String,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    full_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    member_count: Option<i64>,
    #[serde(flatten)]
    extra: Map<String, Value>,
    #[serde(skip)]
    raw: RawJson,
}

impl From<GroupV2> for Group {
    fn from(v: GroupV2) -> Self {
        Group {
            id: v.id,
            name: v.full_name.or(v.name),
            member_count: v.member_count,
            extra: v.extra,
            raw: v.raw,
        }
    }
}

/// A workspace, as a workspace list returns it (the v2 search, or the simulator's v1
/// extension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    /// The workspace id (`LIBRARY!NUMBER` in iManage).
    #[serde(deserialize_with = "lenient::string")]
    pub id: String,
    /// The workspace's name.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    /// The default security, when the list carries it.
    #[serde(
        default,
        deserialize_with = "lenient::opt_default_security",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_security: Option<model::DefaultSecurity>,
    /// Fields this version of the client does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The object exactly as received, as its text (`null` when built by hand).
    #[serde(skip)]
    pub raw: RawJson,
}

impl Workspace {
    /// The workspace row of this workspace in `database`, with the default security of its
    /// security call (fresher than the list's), else the list's. A workspace that neither
    /// gives is a [`Error::Decode`]: guessing would misstate who can reach it.
    pub fn into_workspace(
        mut self,
        database: impl Into<String>,
        security: &WorkspaceSecurity,
    ) -> Result<model::Workspace> {
        let default_security = security
            .default_security
            .or(self.default_security)
            .ok_or_else(|| Error::Decode {
                path: "data.default_security".into(),
                message: format!("workspace {} has no default security", self.id),
            })?;
        let raw = raw_or_serialized(&mut self, |w| &mut w.raw);
        Ok(model::Workspace {
            database: database.into(),
            workspace_id: self.id,
            name: self.name,
            default_security,
            raw,
        })
    }
}

/// One entry of a workspace's security: a user or a group with an access level.
///
/// Whether it names a group comes as `is_group`, or as a `type` (or `member_type`) of `group` or
/// `user`, as servers differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SecurityMemberWire")]
pub struct SecurityMember {
    /// A user id, or a group id when `is_group`.
    pub id: String,
    /// Whether `id` names a group.
    pub is_group: bool,
    /// The level granted (`no_access` denies).
    pub access: model::Access,
    /// Fields this version of the client does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Deserialize)]
struct SecurityMemberWire {
    #[serde(deserialize_with = "lenient::string")]
    id: String,
    #[serde(default, deserialize_with = "lenient::opt_bool")]
    is_group: Option<bool>,
    #[serde(default, rename = "type", deserialize_with = "lenient::opt_string")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    member_type: Option<String>,
    #[serde(deserialize_with = "lenient::access")]
    access: model::Access,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl TryFrom<SecurityMemberWire> for SecurityMember {
    type Error = String;

    fn try_from(w: SecurityMemberWire) -> std::result::Result<Self, String> {
        let is_group = match (w.is_group, w.kind.or(w.member_type)) {
            (Some(g), _) => g,
            (None, Some(kind)) if kind.eq_ignore_ascii_case("group") => true,
            (None, Some(kind)) if kind.eq_ignore_ascii_case("user") => false,
            _ => return Err("an entry must say whether it is a group (is_group or type)".into()),
        };
        Ok(SecurityMember {
            id: w.id,
            is_group,
            access: w.access,
            extra: w.extra,
        })
    }
}

/// A workspace's security (`GET .../workspaces/{id}/security`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceSecurity {
    /// What everyone in the database gets when no entry decides.
    #[serde(
        default,
        deserialize_with = "lenient::opt_default_security",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_security: Option<model::DefaultSecurity>,
    /// The entries (`null` or absent: none).
    #[serde(default, deserialize_with = "members_list")]
    pub members: Vec<SecurityMember>,
    /// Fields this version of the client does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The object exactly as received, as its text (`null` when built by hand).
    #[serde(skip)]
    pub raw: RawJson,
    /// HTTP attempts the call took (1 without retries).
    #[serde(skip)]
    pub attempts: u32,
}

fn members_list<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<SecurityMember>, D::Error> {
    Ok(Option::<Vec<SecurityMember>>::deserialize(d)?.unwrap_or_default())
}

impl WorkspaceSecurity {
    /// The entry rows of this security for `workspace_id` of `database`.
    pub fn into_entries(self, database: &str, workspace_id: &str) -> Vec<model::WorkspaceEntry> {
        self.members
            .into_iter()
            .map(|m| model::WorkspaceEntry {
                database: database.to_string(),
                workspace_id: workspace_id.to_string(),
                principal_id: m.id,
                is_group: m.is_group,
                access: m.access,
            })
            .collect()
    }
}

/// One item of [`crate::Directory::workspaces`].
#[derive(Debug, Clone, PartialEq)]
pub enum WorkspaceListing {
    /// The next page of workspaces.
    Page(Page<Workspace>),
    /// The deployment offers no workspace endpoints (a v1 server that answered 404 to the first
    /// page): nothing is known about its workspaces, which is not the same as "none". The only
    /// item of its stream.
    NotOffered,
}

/// What `GET api` tells about the signed-in caller's tenant (the v2 profile's discovery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The tenant's one customer id, as the v2 paths need it.
    pub customer_id: String,
    /// The libraries (databases) the caller may use, by alias, in the server's order.
    pub libraries: Vec<String>,
    /// The caller's preferred library, when the server names one.
    pub preferred_library: Option<String>,
}

#[derive(Deserialize)]
struct DiscoveryWire {
    #[serde(default)]
    user: Option<DiscoveryUser>,
    #[serde(default)]
    work: Option<DiscoveryWork>,
}

#[derive(Deserialize)]
struct DiscoveryUser {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    customer_id: Option<String>,
}

#[derive(Deserialize)]
struct DiscoveryWork {
    #[serde(default)]
    libraries: Option<Vec<LibraryWire>>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    preferred_library: Option<String>,
}

#[derive(Deserialize)]
struct LibraryWire {
    #[serde(default, deserialize_with = "lenient::opt_string")]
    alias: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_string")]
    id: Option<String>,
}

/// The `GET api` answer: `{"data": {"user": {"customer_id"}, "work": {"libraries": [{"alias"}],
/// "preferred_library"}}}`.
pub(crate) fn decode_discovery(body: &[u8]) -> Result<Discovery> {
    let (data, _) = take_data(body)?;
    let wire: DiscoveryWire =
        serde_path_to_error::deserialize(&data).map_err(|e| decode_error("data", e))?;
    let customer_id = wire
        .user
        .and_then(|u| u.customer_id)
        .ok_or_else(|| Error::Decode {
            path: "data.user.customer_id".into(),
            message: "missing: the v2 paths need the customer id".into(),
        })?;
    let (libraries, preferred_library) = match wire.work {
        Some(work) => (
            work.libraries
                .unwrap_or_default()
                .into_iter()
                .filter_map(|l| l.alias.or(l.id))
                .collect(),
            work.preferred_library,
        ),
        None => (Vec::new(), None),
    };
    Ok(Discovery {
        customer_id,
        libraries,
        preferred_library,
    })
}

/// The object as received, taken out of `value` (no copy), or, for one built by hand, its
/// serialized fields.
fn raw_or_serialized<T: Serialize>(value: &mut T, raw: impl Fn(&mut T) -> &mut RawJson) -> RawJson {
    let received = std::mem::take(raw(value));
    if received.is_null() {
        // Built by hand rather than received: the serialized fields are the best record there is.
        RawJson::from(serde_json::to_value(&*value).unwrap_or(Value::Null))
    } else {
        received
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
    fn set_raw(&mut self, raw: RawJson);
}

macro_rules! decoded {
    ($($t:ty),*) => {
        $(impl Decoded for $t {
            fn set_raw(&mut self, raw: RawJson) {
                self.raw = raw;
            }
        })*
    };
}
decoded!(User, Group, UserV2, GroupV2, Workspace, WorkspaceSecurity);

impl Decoded for Member {
    fn set_raw(&mut self, _raw: RawJson) {}
}

/// Records a list call yields, decoded from the wire shape of the profile.
pub(crate) trait Listed: Sized + Send + 'static {
    /// One page: the records and the list's total, if the page gave one.
    fn decode_page(body: &[u8], api: ApiProfile) -> Result<(Vec<Self>, Option<u64>)>;
}

impl Listed for User {
    fn decode_page(body: &[u8], api: ApiProfile) -> Result<(Vec<Self>, Option<u64>)> {
        match api {
            ApiProfile::V1 => decode_list(body),
            ApiProfile::V2 => decode_list::<UserV2>(body)
                .map(|(items, total)| (items.into_iter().map(User::from).collect(), total)),
        }
    }
}

impl Listed for Group {
    fn decode_page(body: &[u8], api: ApiProfile) -> Result<(Vec<Self>, Option<u64>)> {
        match api {
            ApiProfile::V1 => decode_list(body),
            ApiProfile::V2 => decode_list::<GroupV2>(body)
                .map(|(items, total)| (items.into_iter().map(Group::from).collect(), total)),
        }
    }
}

impl Listed for Member {
    fn decode_page(body: &[u8], _api: ApiProfile) -> Result<(Vec<Self>, Option<u64>)> {
        // Straight from the bytes into members; any page this does not take whole goes the
        // general way, which gives the same members or names what is wrong.
        match serde_json::from_slice::<ListEnvelope<Member>>(body) {
            Ok(ListEnvelope {
                data: Some(data),
                total_results,
                total_count,
            }) => {
                let total = list_total(total_results.as_ref(), total_count.as_ref())?;
                Ok((data.unwrap_or_default(), total))
            }
            _ => decode_list(body),
        }
    }
}

impl Listed for Workspace {
    fn decode_page(body: &[u8], _api: ApiProfile) -> Result<(Vec<Self>, Option<u64>)> {
        decode_list(body)
    }
}

/// One user (`GET users/{id}`) in the profile's shape.
pub(crate) fn decode_user(body: &[u8], api: ApiProfile) -> Result<User> {
    match api {
        ApiProfile::V1 => decode_one(body),
        ApiProfile::V2 => decode_one::<UserV2>(body).map(User::from),
    }
}

/// How the message of a body that is not JSON starts ([`is_not_json`]).
const NOT_JSON: &str = "not valid JSON";

/// True for the decode error of a body that is not JSON at all (cut short or garbled on the
/// way), as opposed to JSON of the wrong shape: the first may heal on a retry, the second not.
pub(crate) fn is_not_json(e: &Error) -> bool {
    matches!(e, Error::Decode { path, message } if path == "$" && message.starts_with(NOT_JSON))
}

/// Parses a body as JSON, without quoting it in the error.
fn parse_json(body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body).map_err(|e| Error::Decode {
        path: "$".into(),
        message: format!(
            "{NOT_JSON} ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ),
    })
}

/// Decodes one object from its text as received, which becomes its `raw` as it is; the item
/// `index` of a list, for errors. Objects that may carry a `password` go the way of
/// [`decode_item`], which drops it: those whose text has the word, or an escape that could
/// spell it.
fn decode_text<T: Decoded>(item: &RawValue, index: usize) -> Result<T> {
    let text = item.get();
    let path = || format!("data[{index}]");
    if text.contains("password") || text.contains("\\u") {
        return decode_item(parse_json(text.as_bytes())?, &path());
    }
    match serde_json::from_str::<T>(text) {
        Ok(mut out) => {
            out.set_raw(RawJson::from(item));
            Ok(out)
        }
        // The tree names what is wrong, with its path.
        Err(_) => decode_item(parse_json(text.as_bytes())?, &path()),
    }
}

/// Decodes one object; `path` says where it sat, for errors.
fn decode_item<T: Decoded>(mut item: Value, path: &str) -> Result<T> {
    if let Value::Object(map) = &mut item {
        // Write-only by the summary; a server that echoes it anyway must not get it stored.
        map.remove("password");
    }
    // Path tracking costs on every field, so it runs only to explain a failure.
    let mut out = match T::deserialize(&item) {
        Ok(out) => out,
        Err(_) => {
            return Err(serde_path_to_error::deserialize::<_, T>(&item)
                .err()
                .map(|e| decode_error(path, e))
                .unwrap_or_else(|| Error::Decode {
                    path: path.into(),
                    message: "the object does not decode".into(),
                }))
        }
    };
    out.set_raw(RawJson::from(&item));
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

/// A list body read in one pass: `data` is `None` when absent (an error, left to
/// [`decode_list`] to name) and `Some(None)` when `null`; a total is `Some` whenever its key is
/// present, even as `null`, so that the key that is there decides as in [`decode_list`].
#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
struct ListEnvelope<T> {
    #[serde(default, deserialize_with = "present")]
    data: Option<Option<Vec<T>>>,
    #[serde(default, deserialize_with = "present")]
    total_results: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    total_count: Option<Value>,
}

fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A list's total: `total_results` when the body has that key (v1), else `total_count` (v2).
fn list_total(total_results: Option<&Value>, total_count: Option<&Value>) -> Result<Option<u64>> {
    let (field, value) = match total_results {
        Some(v) => ("total_results", Some(v)),
        None => ("total_count", total_count),
    };
    match value {
        None => Ok(None),
        Some(v) => match lenient::value_to_i64(v) {
            Ok(None) => Ok(None),
            Ok(Some(n)) => u64::try_from(n).map(Some).map_err(|_| Error::Decode {
                path: field.into(),
                message: "must not be negative".into(),
            }),
            Err(message) => Err(Error::Decode {
                path: field.into(),
                message: message.into(),
            }),
        },
    }
}

/// One page of a list: `{"data": [...], "total_results": N}` (v1) or `{"data": [...],
/// "total_count": N}` (v2), the total being optional.
pub(crate) fn decode_list<T: Decoded>(body: &[u8]) -> Result<(Vec<T>, Option<u64>)> {
    // Straight from the bytes: each item is decoded from its own text, which is kept as its
    // `raw` without being parsed into a tree. A body this does not take whole goes the general
    // way below, which gives the same records or names what is wrong.
    if let Ok(ListEnvelope {
        data: Some(data),
        total_results,
        total_count,
    }) = serde_json::from_slice::<ListEnvelope<&RawValue>>(body)
    {
        let total = list_total(total_results.as_ref(), total_count.as_ref())?;
        // Sized once: collecting a fallible iterator grows the vector by doubling, copying
        // the records decoded so far into fresh memory at every step.
        let data = data.unwrap_or_default();
        let mut items = Vec::with_capacity(data.len());
        for (i, item) in data.into_iter().enumerate() {
            items.push(decode_text(item, i)?);
        }
        return Ok((items, total));
    }
    let (data, rest) = take_data(body)?;
    let total = list_total(rest.get("total_results"), rest.get("total_count"))?;
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
        assert_eq!(u.extra().get("office_location"), Some(&json!("Floor 3")));
        let a = u.into_account("acme");
        assert_eq!(a.key(), model::AccountKey::new("acme", "usr_001"));
        assert!(!a.active);
        assert!(a.is_external());
        assert_eq!(a.title.as_deref(), Some("Partner"));
        assert_eq!(a.created_date.as_deref(), Some("2016-03-14T09:21:07Z"));
        assert_eq!(a.raw.to_value(), v["data"]);
    }

    #[test]
    fn a_listed_user_keeps_its_text_as_received() {
        let body = br#"{"data": [ {"id": "u1",  "zeta": [1, 2], "login_name": "jdoe", "alpha": {}} ], "total_results": 1}"#;
        let (users, total): (Vec<User>, _) = decode_list(body).expect("list");
        assert_eq!(total, Some(1));
        assert_eq!(
            users[0].raw.as_str(),
            r#"{"id": "u1",  "zeta": [1, 2], "login_name": "jdoe", "alpha": {}}"#
        );
        assert_eq!(users[0].login_name.as_deref(), Some("jdoe"));
        let extra = users[0].extra();
        let keys: Vec<&str> = extra.keys().map(String::as_str).collect();
        assert_eq!(keys, ["zeta", "alpha"]);
    }

    #[test]
    fn a_password_spelled_with_escapes_is_dropped_too() {
        let body = br#"{"data": [{"id": "7", "pass\u0077ord": "hunter2", "name": "caf\u00e9"}]}"#;
        let (users, _): (Vec<User>, _) = decode_list(body).expect("list");
        assert!(
            !users[0].raw.as_str().contains("hunter2"),
            "{:?}",
            users[0].raw
        );
        assert_eq!(users[0].raw.to_value()["name"], "caf\u{e9}");
        let (groups, _): (Vec<Group>, _) = decode_list(body).expect("list");
        assert!(!groups[0].raw.as_str().contains("hunter2"));
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
        assert!(u.raw.to_value().get("password").is_none());
        assert!(u.extra().get("password").is_none());
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
        assert_eq!(g.raw.to_value().get("kind"), Some(&json!("x")));

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
    fn member_pages_decode_the_same_straight_from_bytes_as_through_values() {
        let bodies = [
            json!({"data": [
                {"user_id": "u1", "login_name": "a", "password": "secret", "team": {"x": 1}},
                {"id": 2, "email": "b@acme.com", "user_id_ex": "B"},
                {"user_id": 3.5, "id": "m-77", "email": null}
            ], "total_results": "3"}),
            json!({"data": null, "total_count": 0}),
            json!({"data": [], "total_results": null, "total_count": 4}),
            json!({"data": [{"user_id": "u1"}], "extra": true}),
            // Refused: the same error either way.
            json!({"data": [{"login_name": "no id"}], "total_results": 1}),
            json!({"data": [{"user_id": ["u1"]}]}),
            json!({"data": [{"user_id": "u1"}], "total_results": -1}),
            json!({"data": {"user_id": "u1"}}),
            json!({"total_results": 1}),
            json!([1, 2]),
        ];
        for b in bodies {
            let bytes = body(b.clone());
            let fast = Member::decode_page(&bytes, ApiProfile::V1);
            let general = decode_list::<Member>(&bytes);
            assert_eq!(format!("{fast:?}"), format!("{general:?}"), "{b}");
            if let Ok((members, _)) = &fast {
                assert!(members.iter().all(|m| !m.extra.contains_key("password")));
            }
        }
        let (members, total) = Member::decode_page(
            &body(json!({"data": [
            {"user_id": "u1", "login_name": "a", "password": "secret", "team": {"x": 1}}
        ], "total_results": 1})),
            ApiProfile::V1,
        )
        .expect("members");
        assert_eq!(total, Some(1));
        assert_eq!(members[0].extra.get("team"), Some(&json!({"x": 1})));
        assert!(Member::decode_page(b"{\"data\": [", ApiProfile::V1).is_err());
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
    fn v2_users_and_groups_become_the_same_models() {
        let (users, total) = User::decode_page(
            &body(json!({"data": [
                {"id": "usr_1", "user_num": 1234567, "user_id_ex": "ACME\\jdoe",
                 "full_name": "John Doe", "first_name": "John", "last_name": "Doe",
                 "email": "john.doe@acme.com", "is_external": false, "allow_logon": false,
                 "preferred_library": "acme-london", "phone": "+44", "department": "Tax",
                 "title": "Partner", "create_date": "2016-03-14T09:21:07Z",
                 "edit_date": "2017-01-01T00:00:00Z", "user_nos": 2, "groups": ["grp_1"]},
                {"id": "JSMITH", "is_external": "true"}
            ], "total_count": 2})),
            ApiProfile::V2,
        )
        .expect("v2 users");
        assert_eq!(total, Some(2));
        let a = users[0].clone().into_account("acme-london");
        assert_eq!(a.user_id, "usr_1");
        assert_eq!(a.login_name.as_deref(), Some("ACME\\jdoe"));
        assert_eq!(a.display_name.as_deref(), Some("John Doe"));
        assert_eq!(
            (a.first_name.as_deref(), a.last_name.as_deref()),
            (Some("John"), Some("Doe"))
        );
        assert!(!a.active);
        assert_eq!(a.user_type.as_deref(), Some("full"));
        assert_eq!(a.default_database.as_deref(), Some("acme-london"));
        assert_eq!(a.created_date.as_deref(), Some("2016-03-14T09:21:07Z"));
        assert_eq!(a.groups, vec!["grp_1"]);
        assert_eq!(
            a.raw.to_value()["user_num"],
            1234567,
            "raw is the v2 object as received"
        );
        assert_eq!(
            users[0].extra().get("edit_date"),
            Some(&json!("2017-01-01T00:00:00Z"))
        );
        // A real v2 server's id is the login; absent fields stay empty, active by default.
        let b = users[1].clone().into_account("lib");
        assert_eq!(b.login_name.as_deref(), Some("JSMITH"));
        assert!(b.active && b.is_external());
        assert_eq!(b.first_name, None);

        let (groups, total) = Group::decode_page(
            &body(json!({"data": [
                {"id": "grp_1", "full_name": "Litigation", "enabled": true, "member_count": 3},
                {"id": "LIT", "name": "Lit"}
            ]})),
            ApiProfile::V2,
        )
        .expect("v2 groups");
        assert_eq!(total, None);
        assert_eq!(groups[0].name.as_deref(), Some("Litigation"));
        assert_eq!(groups[0].member_count, Some(3));
        assert_eq!(groups[0].extra.get("enabled"), Some(&json!(true)));
        assert_eq!(groups[1].name.as_deref(), Some("Lit"));
        // The v1 decoding of the same body keeps v1 names only.
        let (v1, _) = Group::decode_page(
            &body(json!({"data": [{"id": "g", "full_name": "x"}]})),
            ApiProfile::V1,
        )
        .expect("v1 groups");
        assert_eq!(v1[0].name, None);
        let (members, _) = Member::decode_page(
            &body(json!({"data": [{"id": "usr_1", "user_id_ex": "jdoe", "full_name": "J"}]})),
            ApiProfile::V2,
        )
        .expect("v2 members");
        assert_eq!(members[0].user_id, "usr_1");
        assert_eq!(members[0].login_name.as_deref(), Some("jdoe"));
    }

    #[test]
    fn workspaces_and_security_decode_tolerantly() {
        let (ws, _) = Workspace::decode_page(
            &body(json!({"data": [
                {"id": "ACTIVE!12", "name": "Matter", "default_security": "View", "wstype": "workspace"},
                {"id": 13}
            ], "total_results": 2})),
            ApiProfile::V1,
        )
        .expect("workspaces");
        assert_eq!(ws[0].default_security, Some(model::DefaultSecurity::View));
        assert_eq!(ws[1].id, "13");
        let sec: WorkspaceSecurity = decode_one(&body(json!({"data": {
            "default_security": "private",
            "members": [
                {"id": "grp_1", "is_group": true, "access": "read_write"},
                {"id": "usr_1", "type": "user", "access": "FULL_ACCESS"},
                {"id": "grp_2", "member_type": "Group", "access": "no-access", "name": "Wall"}
            ]
        }})))
        .expect("security");
        let w = ws[0]
            .clone()
            .into_workspace("ACTIVE", &sec)
            .expect("workspace");
        assert_eq!(
            w.default_security,
            model::DefaultSecurity::Private,
            "the security call wins"
        );
        assert_eq!(w.raw.to_value()["wstype"], "workspace");
        let entries = sec.clone().into_entries("ACTIVE", "ACTIVE!12");
        let got: Vec<(&str, bool, model::Access)> = entries
            .iter()
            .map(|e| (e.principal_id.as_str(), e.is_group, e.access))
            .collect();
        assert_eq!(
            got,
            vec![
                ("grp_1", true, model::Access::ReadWrite),
                ("usr_1", false, model::Access::FullAccess),
                ("grp_2", true, model::Access::NoAccess),
            ]
        );
        assert_eq!(sec.members[2].extra.get("name"), Some(&json!("Wall")));
        // No members at all, and no default anywhere: the latter cannot be stored.
        let empty: WorkspaceSecurity =
            decode_one(&body(json!({"data": {"members": null}}))).expect("empty");
        assert!(empty.members.is_empty());
        let err = ws[1]
            .clone()
            .into_workspace("A", &empty)
            .expect_err("no default");
        assert!(matches!(err, Error::Decode { .. }), "{err}");
        // An entry that does not say what it is, or an unknown level, is refused with a path.
        for bad in [
            json!({"data": {"members": [{"id": "x", "access": "read"}]}}),
            json!({"data": {"members": [{"id": "x", "is_group": false, "access": "hunter2"}]}}),
        ] {
            let err = decode_one::<WorkspaceSecurity>(&body(bad)).expect_err("refused");
            assert!(
                matches!(&err, Error::Decode { path, message } if path.starts_with("data.members[0]") && !message.contains("hunter2")),
                "{err}"
            );
        }
    }

    #[test]
    fn discovery_reads_the_customer_and_the_libraries() {
        let d = decode_discovery(&body(json!({"data": {
            "user": {"customer_id": 1, "id": "svc"},
            "versions": [{"name": "v2"}],
            "work": {"libraries": [{"alias": "ACTIVE"}, {"id": "ARCHIVE"}, {}], "preferred_library": "ACTIVE"}
        }})))
        .expect("discovery");
        assert_eq!(d.customer_id, "1");
        assert_eq!(d.libraries, vec!["ACTIVE", "ARCHIVE"]);
        assert_eq!(d.preferred_library.as_deref(), Some("ACTIVE"));
        let err = decode_discovery(&body(json!({"data": {"work": {}}}))).expect_err("no customer");
        assert!(matches!(err, Error::Decode { ref path, .. } if path == "data.user.customer_id"));
        let none = decode_discovery(&body(json!({"data": {"user": {"customer_id": "7"}}})))
            .expect("no libraries");
        assert!(none.libraries.is_empty());
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
