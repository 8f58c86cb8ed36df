//! Plans: every discrete API call an operation will make, worked out from the identity graph
//! before anything is called.
//!
//! Planning is pure: it reads a [`Graph`] and returns a [`Plan`]; it calls nothing and stores
//! nothing. Whatever the graph cannot settle (an entry that matches no account, or several; a
//! login another account holds) becomes a [`Problem`] in the plan, never a guess.

use crate::error::{Error, Result};
use graph::{AccountRef, Graph, PersonRef};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Which admin scenario an operation carries out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// Deactivate a person everywhere and take away their group memberships.
    Offboard,
    /// Create (or reuse) a person's accounts in several databases and add them to groups.
    Provision,
    /// Make a group's members equal an authoritative list.
    SyncGroup,
}

impl OperationKind {
    /// The stored name, e.g. `sync_group`.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Offboard => "offboard",
            OperationKind::Provision => "provision",
            OperationKind::SyncGroup => "sync_group",
        }
    }

    /// The inverse of [`OperationKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "offboard" => OperationKind::Offboard,
            "provision" => OperationKind::Provision,
            "sync_group" => OperationKind::SyncGroup,
            _ => return None,
        })
    }
}

impl fmt::Display for OperationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The user a membership call is about: an account that exists, or the one an earlier step of
/// the same operation creates (its id is known only once that step has run).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRef {
    /// An existing account's user id.
    Existing(String),
    /// The account created by the `CreateUser` step with this index.
    CreatedInStep(u32),
}

impl fmt::Display for UserRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserRef::Existing(id) => f.write_str(id),
            UserRef::CreatedInStep(i) => write!(f, "{{user created in step {i}}}"),
        }
    }
}

/// One discrete iManage API call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Call {
    /// `PATCH users/{user_id}` with `{"active": false}`.
    DeactivateUser {
        /// The database (`customer_id`).
        database: String,
        /// The account.
        user_id: String,
    },
    /// `PATCH users/{user_id}` with `{"active": true}` (provisioning a person whose account in
    /// that database was deactivated).
    ActivateUser {
        /// The database (`customer_id`).
        database: String,
        /// The account.
        user_id: String,
    },
    /// `DELETE groups/{group_id}/members/{user_id}`.
    RemoveMember {
        /// The database (`customer_id`).
        database: String,
        /// The group.
        group_id: String,
        /// The member.
        user_id: String,
    },
    /// `DELETE users/{user_id}`: permanent, only with an explicit `delete`.
    DeleteUser {
        /// The database (`customer_id`).
        database: String,
        /// The account.
        user_id: String,
    },
    /// `POST users` with the four fields the API requires.
    CreateUser {
        /// The database (`customer_id`).
        database: String,
        /// `login_name`.
        login: String,
        /// `email`.
        email: String,
        /// `first_name`.
        first_name: String,
        /// `last_name`.
        last_name: String,
    },
    /// `POST groups/{group_id}/members` with `{"user_id"}`.
    AddMember {
        /// The database (`customer_id`).
        database: String,
        /// The group.
        group_id: String,
        /// The user to add.
        user: UserRef,
    },
}

impl Call {
    /// The database the call goes to.
    pub fn database(&self) -> &str {
        match self {
            Call::DeactivateUser { database, .. }
            | Call::ActivateUser { database, .. }
            | Call::RemoveMember { database, .. }
            | Call::DeleteUser { database, .. }
            | Call::CreateUser { database, .. }
            | Call::AddMember { database, .. } => database,
        }
    }

    /// The audit-log action that records this call, e.g. `imanage.user.deactivate`.
    pub fn action(&self) -> &'static str {
        match self {
            Call::DeactivateUser { .. } => "imanage.user.deactivate",
            Call::ActivateUser { .. } => "imanage.user.activate",
            Call::RemoveMember { .. } => "imanage.member.remove",
            Call::DeleteUser { .. } => "imanage.user.delete",
            Call::CreateUser { .. } => "imanage.user.create",
            Call::AddMember { .. } => "imanage.member.add",
        }
    }
}

impl fmt::Display for Call {
    /// The call as an HTTP request line under `/api/v1/customers`, with its body.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::DeactivateUser { database, user_id } => {
                write!(f, "PATCH {database}/users/{user_id} {{\"active\": false}}")
            }
            Call::ActivateUser { database, user_id } => {
                write!(f, "PATCH {database}/users/{user_id} {{\"active\": true}}")
            }
            Call::RemoveMember {
                database,
                group_id,
                user_id,
            } => write!(f, "DELETE {database}/groups/{group_id}/members/{user_id}"),
            Call::DeleteUser { database, user_id } => {
                write!(f, "DELETE {database}/users/{user_id}")
            }
            Call::CreateUser {
                database,
                login,
                email,
                first_name,
                last_name,
            } => write!(
                f,
                "POST {database}/users {{\"login_name\": {login:?}, \"email\": {email:?}, \
                 \"first_name\": {first_name:?}, \"last_name\": {last_name:?}}}"
            ),
            Call::AddMember {
                database,
                group_id,
                user,
            } => write!(
                f,
                "POST {database}/groups/{group_id}/members {{\"user_id\": \"{user}\"}}"
            ),
        }
    }
}

/// One step of a plan: a call, its position, and a note for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Position in the plan, from 0; steps run in this order.
    pub index: u32,
    /// The call.
    pub call: Call,
    /// Whose account, which group, and why.
    pub note: String,
}

/// What kind of thing planning found worth saying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProblemKind {
    /// The plan has no step: everything is as asked already.
    NothingToDo,
    /// A sync entry matches no account in the database.
    Unresolved,
    /// A sync entry (or a provisioning login or email) matches several accounts or persons.
    Ambiguous,
    /// Another account in the database holds the login a new account would need.
    LoginTaken,
    /// The graph does not know the database (never harvested).
    UnknownDatabase,
    /// The graph does not know the group.
    UnknownGroup,
    /// A group to join is in a database the person is not provisioned in.
    NotProvisioned,
    /// The person's accounts carry identity conflicts: check them before applying.
    IdentityConflict,
    /// An account that is inactive (it will still be added to the group).
    InactiveAccount,
    /// Two entries name the same account.
    Duplicate,
    /// Something asked for is in place already, so no call is planned for it.
    AlreadySatisfied,
}

impl ProblemKind {
    /// The name, e.g. `LOGIN_TAKEN`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::NothingToDo => "NOTHING_TO_DO",
            ProblemKind::Unresolved => "UNRESOLVED",
            ProblemKind::Ambiguous => "AMBIGUOUS",
            ProblemKind::LoginTaken => "LOGIN_TAKEN",
            ProblemKind::UnknownDatabase => "UNKNOWN_DATABASE",
            ProblemKind::UnknownGroup => "UNKNOWN_GROUP",
            ProblemKind::NotProvisioned => "NOT_PROVISIONED",
            ProblemKind::IdentityConflict => "IDENTITY_CONFLICT",
            ProblemKind::InactiveAccount => "INACTIVE_ACCOUNT",
            ProblemKind::Duplicate => "DUPLICATE",
            ProblemKind::AlreadySatisfied => "ALREADY_SATISFIED",
        }
    }
}

/// Something planning could not settle, or wants a person to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// What kind.
    pub kind: ProblemKind,
    /// What it is about: a sync entry, a database, a group (`db/group_id`), a person.
    pub subject: String,
    /// A sentence for people.
    pub detail: String,
}

impl Problem {
    fn new(kind: ProblemKind, subject: impl Into<String>, detail: impl Into<String>) -> Self {
        Problem {
            kind,
            subject: subject.into(),
            detail: detail.into(),
        }
    }
}

/// How to offboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OffboardOptions {
    /// Remove every group membership of every account (default true): deactivation does not
    /// take them away.
    pub remove_from_groups: bool,
    /// Delete every account after deactivating it (default false). Deletion is permanent and
    /// loses iManage's own audit trail and document ownership history; deactivation is
    /// preferred.
    pub delete: bool,
}

impl Default for OffboardOptions {
    fn default() -> Self {
        OffboardOptions {
            remove_from_groups: true,
            delete: false,
        }
    }
}

/// A group in a database, e.g. `acme-london:grp_123` on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupTarget {
    /// The database (`customer_id`).
    pub database: String,
    /// The group id.
    pub group_id: String,
}

impl std::str::FromStr for GroupTarget {
    type Err = Error;

    /// Parses `DATABASE:GROUP_ID`. Database names cannot hold `:` in a URL path segment
    /// without escaping, so the first colon separates them.
    fn from_str(s: &str) -> Result<Self> {
        match s.split_once(':') {
            Some((db, gid)) if !db.trim().is_empty() && !gid.trim().is_empty() => Ok(GroupTarget {
                database: db.trim().to_string(),
                group_id: gid.trim().to_string(),
            }),
            _ => Err(Error::InvalidInput(format!(
                "a group is DATABASE:GROUP_ID, not {s:?}"
            ))),
        }
    }
}

/// Whom to provision, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionInput {
    /// `login_name` for new accounts.
    pub login: String,
    /// `email` for new accounts; also how the person is found in the graph.
    pub email: String,
    /// `first_name` for new accounts.
    pub first_name: String,
    /// `last_name` for new accounts.
    pub last_name: String,
    /// The databases the person needs an account in.
    pub databases: Vec<String>,
    /// The groups to add the person's account to (each in a database the person has, or gets,
    /// an account in).
    #[serde(default)]
    pub groups: Vec<GroupTarget>,
}

/// What an operation was asked to do: kept with the plan, so the record says what the plan was
/// made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Request {
    /// `offboardPerson`.
    Offboard {
        /// The person id given.
        person_id: String,
        /// The options given.
        options: OffboardOptions,
    },
    /// `provisionPerson`.
    Provision(ProvisionInput),
    /// `syncGroup`.
    SyncGroup {
        /// The database (`customer_id`).
        database: String,
        /// The group.
        group_id: String,
        /// The authoritative list of logins or emails, as given.
        members: Vec<String>,
    },
}

impl Request {
    /// Which scenario.
    pub fn kind(&self) -> OperationKind {
        match self {
            Request::Offboard { .. } => OperationKind::Offboard,
            Request::Provision(_) => OperationKind::Provision,
            Request::SyncGroup { .. } => OperationKind::SyncGroup,
        }
    }
}

/// Every call an operation will make, in order, and what planning found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Which scenario.
    pub kind: OperationKind,
    /// One line for people.
    pub summary: String,
    /// What was asked.
    pub request: Request,
    /// The calls, in the order they will run.
    pub steps: Vec<Step>,
    /// What planning could not settle or wants known. Steps are planned for everything else.
    pub problems: Vec<Problem>,
}

impl Plan {
    /// The databases the plan writes to, in order.
    pub fn databases(&self) -> BTreeSet<&str> {
        self.steps.iter().map(|s| s.call.database()).collect()
    }

    /// The plan as text: the summary, one line per call, then the problems.
    pub fn render(&self) -> String {
        let mut out = format!("plan: {}\n", self.summary);
        if self.steps.is_empty() {
            out.push_str("  no calls\n");
        }
        for s in &self.steps {
            out.push_str(&format!("  [{}] {}\n      {}\n", s.index, s.call, s.note));
        }
        for p in &self.problems {
            out.push_str(&format!(
                "  problem {} {}: {}\n",
                p.kind.as_str(),
                p.subject,
                p.detail
            ));
        }
        out
    }
}

/// Collects steps with consecutive indexes.
#[derive(Default)]
struct Steps(Vec<Step>);

impl Steps {
    fn push(&mut self, call: Call, note: String) -> u32 {
        // A plan holds at most a few thousand calls (a group of a few thousand members), far
        // below u32::MAX.
        let index = u32::try_from(self.0.len()).unwrap_or(u32::MAX);
        self.0.push(Step { index, call, note });
        index
    }
}

/// `login (Display Name)` or the user id, for notes.
fn account_label(a: &AccountRef<'_>) -> String {
    let login = a.login_name().unwrap_or(a.user_id());
    match a.display_name() {
        Some(d) => format!("{login} ({d})"),
        None => login.to_string(),
    }
}

fn person_label(p: &PersonRef<'_>) -> String {
    match p.display_name() {
        Some(d) => format!("{} ({d})", p.id()),
        None => p.id().to_string(),
    }
}

/// Persons found under several keys, each once, in the order found.
fn unique_persons<'g>(lists: impl IntoIterator<Item = Vec<PersonRef<'g>>>) -> Vec<PersonRef<'g>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for p in lists.into_iter().flatten() {
        if seen.insert(p.id()) {
            out.push(p);
        }
    }
    out
}

fn sorted_accounts<'g>(p: &PersonRef<'g>) -> Vec<AccountRef<'g>> {
    let mut accounts: Vec<AccountRef<'g>> = p.accounts().collect();
    accounts.sort_by(|a, b| (a.database(), a.user_id()).cmp(&(b.database(), b.user_id())));
    accounts
}

/// The person's accounts in one database (none for a new person).
fn accounts_in<'g>(person: Option<&PersonRef<'g>>, database: &str) -> Vec<AccountRef<'g>> {
    person
        .map(sorted_accounts)
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a.database() == database)
        .collect()
}

fn identity_conflicts(p: &PersonRef<'_>, problems: &mut Vec<Problem>) {
    for c in p.conflicts() {
        problems.push(Problem::new(
            ProblemKind::IdentityConflict,
            p.id(),
            format!("{}: {}", c.kind.as_str(), c.detail),
        ));
    }
}

fn nothing_to_do(steps: &Steps, problems: &mut Vec<Problem>, subject: &str, detail: &str) {
    if steps.0.is_empty() {
        problems.push(Problem::new(ProblemKind::NothingToDo, subject, detail));
    }
}

/// Plans offboarding person `person_id`: deactivate every active account, then (unless
/// `remove_from_groups` is false) remove every membership of every account, active or not,
/// since deactivation does not cascade; then, only with `delete`, delete every account.
///
/// Deactivation comes first even when deleting: should the apply stop halfway, the person can
/// no longer sign in anywhere, and nothing irreversible happened before that was true.
/// Memberships are removed one by one even before a delete, so the audit log records every
/// group the person left (a delete would take them silently).
pub fn offboard(graph: &Graph, person_id: &str, options: OffboardOptions) -> Result<Plan> {
    let person = graph
        .person(person_id)
        .ok_or_else(|| Error::UnknownPerson(person_id.to_string()))?;
    let accounts = sorted_accounts(&person);
    let mut steps = Steps::default();
    let mut problems = Vec::new();
    identity_conflicts(&person, &mut problems);

    for a in accounts.iter().filter(|a| a.active()) {
        steps.push(
            Call::DeactivateUser {
                database: a.database().to_string(),
                user_id: a.user_id().to_string(),
            },
            format!("deactivate {} in {}", account_label(a), a.database()),
        );
    }
    let mut memberships = 0;
    if options.remove_from_groups {
        for a in &accounts {
            for g in a.groups() {
                memberships += 1;
                steps.push(
                    Call::RemoveMember {
                        database: a.database().to_string(),
                        group_id: g.group_id().to_string(),
                        user_id: a.user_id().to_string(),
                    },
                    format!(
                        "remove {} from {}",
                        account_label(a),
                        g.name().unwrap_or(g.group_id())
                    ),
                );
            }
        }
    }
    if options.delete {
        for a in &accounts {
            steps.push(
                Call::DeleteUser {
                    database: a.database().to_string(),
                    user_id: a.user_id().to_string(),
                },
                format!(
                    "delete {} in {} (permanent)",
                    account_label(a),
                    a.database()
                ),
            );
        }
    }
    nothing_to_do(
        &steps,
        &mut problems,
        person.id(),
        "every account is inactive already and in no group",
    );
    let active = accounts.iter().filter(|a| a.active()).count();
    let mut summary = format!(
        "offboard {}: deactivate {active} of {} accounts",
        person_label(&person),
        accounts.len()
    );
    if options.remove_from_groups {
        summary.push_str(&format!(", remove {memberships} memberships"));
    }
    if options.delete {
        summary.push_str(&format!(", delete {} accounts", accounts.len()));
    }
    Ok(Plan {
        kind: OperationKind::Offboard,
        summary,
        request: Request::Offboard {
            person_id: person_id.to_string(),
            options,
        },
        steps: steps.0,
        problems,
    })
}

fn required(name: &str, value: &str) -> Result<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(Error::InvalidInput(format!("{name} must not be empty")));
    }
    Ok(v.to_string())
}

/// Which person, if any, provisioning is for: the one the email finds; failing that, the one
/// the login finds, provided no email of theirs says they are someone else (the resolver's own
/// rule: a login links unless the emails differ).
fn provision_person<'g>(
    graph: &'g Graph,
    login: &str,
    email: &str,
    problems: &mut Vec<Problem>,
) -> std::result::Result<Option<PersonRef<'g>>, ()> {
    let by_email = unique_persons([graph.person_by_email(email)]);
    match by_email.len() {
        1 => return Ok(by_email.into_iter().next()),
        0 => {}
        _ => {
            let ids: Vec<&str> = by_email.iter().map(|p| p.id()).collect();
            problems.push(Problem::new(
                ProblemKind::Ambiguous,
                email,
                format!(
                    "the email matches several persons ({}); not guessed",
                    ids.join(", ")
                ),
            ));
            return Err(());
        }
    }
    let by_login: Vec<PersonRef<'g>> = unique_persons([graph.person_by_login(login)])
        .into_iter()
        .filter(|p| p.emails().is_empty())
        .collect();
    match by_login.len() {
        0 | 1 => Ok(by_login.into_iter().next()),
        _ => {
            let ids: Vec<&str> = by_login.iter().map(|p| p.id()).collect();
            problems.push(Problem::new(
                ProblemKind::Ambiguous,
                login,
                format!(
                    "the login matches several persons without an email ({}); not guessed",
                    ids.join(", ")
                ),
            ));
            Err(())
        }
    }
}

/// The account in `database` that holds `login` exactly as iManage compares logins (trimmed,
/// any letter case), if the graph knows one. Candidates come from the graph's own login index,
/// which normalizes more loosely, so every account that could hold it is among them.
fn login_holder<'g>(graph: &'g Graph, database: &str, login: &str) -> Option<AccountRef<'g>> {
    graph
        .person_by_login(login)
        .into_iter()
        .flat_map(|p| p.accounts().collect::<Vec<_>>())
        .find(|a| {
            a.database() == database
                && a.login_name()
                    .is_some_and(|l| l.trim().eq_ignore_ascii_case(login.trim()))
        })
}

/// Plans provisioning: in each database, the person's existing account is used (and activated
/// if it was deactivated); where they have none, one is created. Then the account is added to
/// each requested group it is not in yet.
///
/// The person is found by email first, then by login (see the rules in `provision_person`).
/// Several candidates, a login held by someone else, an unknown group: each is a problem, and
/// nothing is planned for what it touches.
pub fn provision(graph: &Graph, input: ProvisionInput) -> Result<Plan> {
    let login = required("login", &input.login)?;
    let email = required("email", &input.email)?;
    let first_name = required("first name", &input.first_name)?;
    let last_name = required("last name", &input.last_name)?;
    if !email.contains('@') {
        return Err(Error::InvalidInput(format!(
            "{email:?} is not an email address"
        )));
    }
    if input.databases.is_empty() {
        return Err(Error::InvalidInput(
            "name at least one database to provision in".into(),
        ));
    }
    let mut databases: Vec<String> = Vec::new();
    for db in &input.databases {
        let db = required("database", db)?;
        if !databases.contains(&db) {
            databases.push(db);
        }
    }

    let mut steps = Steps::default();
    let mut problems = Vec::new();
    let known: BTreeSet<&str> = graph.databases().map(|d| d.id).collect();
    let person = match provision_person(graph, &login, &email, &mut problems) {
        Ok(p) => p,
        Err(()) => {
            return Ok(Plan {
                kind: OperationKind::Provision,
                summary: format!("provision {login} <{email}>: nothing planned (ambiguous)"),
                request: Request::Provision(input),
                steps: Vec::new(),
                problems,
            })
        }
    };
    if let Some(p) = &person {
        identity_conflicts(p, &mut problems);
    }
    let accounts_in = |db: &str| accounts_in(person.as_ref(), db);

    // The account (existing or to be created) per database, and what it is already in.
    let mut users: BTreeMap<String, (UserRef, BTreeSet<String>)> = BTreeMap::new();
    let mut created = 0;
    let mut reused = 0;
    for db in &databases {
        if !known.contains(db.as_str()) {
            problems.push(Problem::new(
                ProblemKind::UnknownDatabase,
                db,
                "the graph has no harvest of this database, so its accounts are unknown; \
                 harvest it first",
            ));
            continue;
        }
        let existing = accounts_in(db);
        match existing.as_slice() {
            [a] => {
                reused += 1;
                if !a.active() {
                    steps.push(
                        Call::ActivateUser {
                            database: db.clone(),
                            user_id: a.user_id().to_string(),
                        },
                        format!("reactivate the existing account {}", account_label(a)),
                    );
                } else {
                    problems.push(Problem::new(
                        ProblemKind::AlreadySatisfied,
                        db,
                        format!(
                            "uses the existing active account {} ({})",
                            a.user_id(),
                            account_label(a)
                        ),
                    ));
                }
                let groups = a.groups().map(|g| g.group_id().to_string()).collect();
                users.insert(
                    db.clone(),
                    (UserRef::Existing(a.user_id().to_string()), groups),
                );
            }
            [] => {
                if let Some(holder) = login_holder(graph, db, &login) {
                    problems.push(Problem::new(
                        ProblemKind::LoginTaken,
                        db,
                        format!(
                            "{} already holds the login {login:?} and is another person ({}); \
                             no account is created here",
                            holder.user_id(),
                            person_label(&holder.person())
                        ),
                    ));
                    continue;
                }
                created += 1;
                let index = steps.push(
                    Call::CreateUser {
                        database: db.clone(),
                        login: login.clone(),
                        email: email.clone(),
                        first_name: first_name.clone(),
                        last_name: last_name.clone(),
                    },
                    format!("create {login} <{email}> in {db}"),
                );
                users.insert(db.clone(), (UserRef::CreatedInStep(index), BTreeSet::new()));
            }
            several => {
                let ids: Vec<&str> = several.iter().map(|a| a.user_id()).collect();
                problems.push(Problem::new(
                    ProblemKind::Ambiguous,
                    db,
                    format!(
                        "the person has several accounts here ({}); not guessed",
                        ids.join(", ")
                    ),
                ));
            }
        }
    }

    let mut seen = BTreeSet::new();
    let mut additions = 0;
    for target in &input.groups {
        if !seen.insert(target.clone()) {
            continue;
        }
        let subject = format!("{}/{}", target.database, target.group_id);
        let Some(group) = graph.group(&target.database, &target.group_id) else {
            problems.push(Problem::new(
                ProblemKind::UnknownGroup,
                subject,
                "the graph has no such group",
            ));
            continue;
        };
        let user = match users.get(&target.database) {
            Some(u) => Some(u.clone()),
            // A group in a database not asked for: the person's account there will do, but
            // provisioning does not create accounts it was not asked to.
            None if !databases.contains(&target.database) => {
                match accounts_in(&target.database).as_slice() {
                    [a] => Some((
                        UserRef::Existing(a.user_id().to_string()),
                        a.groups().map(|g| g.group_id().to_string()).collect(),
                    )),
                    _ => None,
                }
            }
            None => None,
        };
        let Some((user, groups)) = user else {
            problems.push(Problem::new(
                ProblemKind::NotProvisioned,
                subject,
                format!(
                    "the person has no account in {} to add (list the database to provision \
                     one)",
                    target.database
                ),
            ));
            continue;
        };
        let name = group.name().unwrap_or(group.group_id());
        if groups.contains(&target.group_id) {
            problems.push(Problem::new(
                ProblemKind::AlreadySatisfied,
                subject,
                format!("already a member of {name}"),
            ));
            continue;
        }
        additions += 1;
        steps.push(
            Call::AddMember {
                database: target.database.clone(),
                group_id: target.group_id.clone(),
                user,
            },
            format!("add {login} to {name}"),
        );
    }
    let who = match &person {
        Some(p) => format!("{login} <{email}>, person {}", person_label(p)),
        None => format!("{login} <{email}>, a new person"),
    };
    nothing_to_do(
        &steps,
        &mut problems,
        &login,
        "the person has every account and membership asked for",
    );
    Ok(Plan {
        kind: OperationKind::Provision,
        summary: format!(
            "provision {who}: create {created} accounts, reuse {reused}, add {additions} \
             memberships"
        ),
        request: Request::Provision(input),
        steps: steps.0,
        problems,
    })
}

/// Plans a group sync: `members` is the authoritative list of logins or emails. Each entry is
/// resolved through the graph (as a login and as an email, normalized as the resolver does) to
/// the persons it names, then to their accounts in `database`. An entry that finds no account,
/// or several, is a problem and is not guessed; members that an ambiguous entry might mean are
/// kept rather than removed. Additions run first, then removals, one call each.
pub fn sync_group(
    graph: &Graph,
    database: &str,
    group_id: &str,
    members: &[String],
) -> Result<Plan> {
    let group = graph
        .group(database, group_id)
        .ok_or_else(|| Error::UnknownGroup {
            database: database.to_string(),
            group_id: group_id.to_string(),
        })?;
    let name = group.name().unwrap_or(group_id).to_string();
    let current: BTreeMap<&str, AccountRef<'_>> =
        group.members().map(|a| (a.user_id(), a)).collect();
    let mut wanted: BTreeMap<&str, (AccountRef<'_>, &str)> = BTreeMap::new();
    let mut protected: BTreeSet<&str> = BTreeSet::new();
    let mut problems = Vec::new();
    let mut seen_entries = BTreeSet::new();

    for raw in members {
        let entry = raw.trim();
        if entry.is_empty() {
            continue;
        }
        if !seen_entries.insert(entry.to_lowercase()) {
            problems.push(Problem::new(
                ProblemKind::Duplicate,
                entry,
                "listed more than once",
            ));
            continue;
        }
        let persons = unique_persons([graph.person_by_login(entry), graph.person_by_email(entry)]);
        let mut found: Vec<AccountRef<'_>> = persons
            .iter()
            .flat_map(|p| p.accounts().filter(|a| a.database() == database))
            .collect();
        found.sort_by_key(|a| a.user_id());
        found.dedup_by_key(|a| a.user_id());
        match found.as_slice() {
            [] if persons.is_empty() => problems.push(Problem::new(
                ProblemKind::Unresolved,
                entry,
                "matches no person in the graph",
            )),
            [] => {
                let ids: Vec<&str> = persons.iter().map(|p| p.id()).collect();
                problems.push(Problem::new(
                    ProblemKind::Unresolved,
                    entry,
                    format!("{} has no account in {database}", ids.join(", ")),
                ));
            }
            [a] => {
                if let Some((_, earlier)) = wanted.get(a.user_id()) {
                    problems.push(Problem::new(
                        ProblemKind::Duplicate,
                        entry,
                        format!("names the same account as {earlier:?} ({})", a.user_id()),
                    ));
                } else {
                    if !a.active() {
                        problems.push(Problem::new(
                            ProblemKind::InactiveAccount,
                            entry,
                            format!("{} is inactive; it is added all the same", a.user_id()),
                        ));
                    }
                    wanted.insert(a.user_id(), (*a, entry));
                }
            }
            several => {
                let ids: Vec<String> = several
                    .iter()
                    .map(|a| format!("{} ({})", a.user_id(), account_label(a)))
                    .collect();
                problems.push(Problem::new(
                    ProblemKind::Ambiguous,
                    entry,
                    format!(
                        "matches {} accounts in {database}: {}; not guessed, and none of them \
                         is removed",
                        several.len(),
                        ids.join(", ")
                    ),
                ));
                protected.extend(several.iter().map(|a| a.user_id()));
            }
        }
    }

    let mut steps = Steps::default();
    let mut added = 0;
    for (uid, (a, entry)) in &wanted {
        if current.contains_key(uid) {
            continue;
        }
        added += 1;
        steps.push(
            Call::AddMember {
                database: database.to_string(),
                group_id: group_id.to_string(),
                user: UserRef::Existing(uid.to_string()),
            },
            format!("add {} (listed as {entry:?})", account_label(a)),
        );
    }
    let mut removed = 0;
    for (uid, a) in &current {
        if wanted.contains_key(uid) || protected.contains(uid) {
            continue;
        }
        removed += 1;
        steps.push(
            Call::RemoveMember {
                database: database.to_string(),
                group_id: group_id.to_string(),
                user_id: uid.to_string(),
            },
            format!("remove {} (not on the list)", account_label(a)),
        );
    }
    nothing_to_do(
        &steps,
        &mut problems,
        &format!("{database}/{group_id}"),
        "the group's members match the list already",
    );
    Ok(Plan {
        kind: OperationKind::SyncGroup,
        summary: format!(
            "sync {database}/{group_id} ({name}) to {} entries: add {added}, remove {removed}, \
             keep {}",
            seen_entries.len(),
            current.len() - removed
        ),
        request: Request::SyncGroup {
            database: database.to_string(),
            group_id: group_id.to_string(),
            members: members.to_vec(),
        },
        steps: steps.0,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Account, Group, Membership};

    fn account(
        db: &str,
        id: &str,
        login: &str,
        email: Option<&str>,
        name: (&str, &str),
    ) -> Account {
        Account {
            database: db.into(),
            user_id: id.into(),
            login_name: Some(login.into()),
            email: email.map(str::to_owned),
            first_name: Some(name.0.into()),
            last_name: Some(name.1.into()),
            display_name: Some(format!("{} {}", name.0, name.1)),
            active: true,
            ..Account::default()
        }
    }

    fn group(db: &str, id: &str, name: &str) -> Group {
        Group {
            database: db.into(),
            group_id: id.into(),
            name: Some(name.into()),
            ..Group::default()
        }
    }

    fn member(db: &str, gid: &str, uid: &str) -> Membership {
        Membership {
            database: db.into(),
            group_id: gid.into(),
            user_id: uid.into(),
        }
    }

    /// Two databases. John Doe has an account in each (the London one inactive, his login in
    /// another form in Paris); Jane Roe only in London; two different people share the
    /// reception mailbox in London; Jim Smith holds `jsmith` in Paris.
    fn firm() -> Graph {
        let mut inactive = account(
            "lon",
            "u1",
            "jdoe",
            Some("john.doe@acme.com"),
            ("John", "Doe"),
        );
        inactive.active = false;
        let accounts = vec![
            inactive,
            account(
                "par",
                "p1",
                "ACME\\JDoe",
                Some("John.Doe@acme.com"),
                ("John", "Doe"),
            ),
            account(
                "lon",
                "u2",
                "jroe",
                Some("jane.roe@acme.com"),
                ("Jane", "Roe"),
            ),
            account(
                "lon",
                "u3",
                "amy",
                Some("reception@acme.com"),
                ("Amy", "Adams"),
            ),
            account(
                "lon",
                "u4",
                "bob",
                Some("reception@acme.com"),
                ("Bob", "Brown"),
            ),
            account(
                "par",
                "p2",
                "jsmith",
                Some("jim.smith@acme.com"),
                ("Jim", "Smith"),
            ),
        ];
        let groups = vec![
            group("lon", "g1", "All Staff"),
            group("lon", "g2", "Litigation"),
            group("par", "g9", "Paris Office"),
        ];
        let memberships = vec![
            member("lon", "g1", "u1"),
            member("lon", "g1", "u2"),
            member("lon", "g1", "u3"),
            member("lon", "g1", "u4"),
            member("lon", "g2", "u1"),
            member("par", "g9", "p1"),
        ];
        graph::resolve(
            graph::Input {
                accounts,
                groups,
                memberships,
                ..graph::Input::default()
            },
            // `ACME\jdoe` is the firm's `jdoe` only when ACME is known to be the firm's domain.
            &graph::ResolveConfig {
                login_domain_aliases: vec![vec!["ACME".into()]],
                ..graph::ResolveConfig::default()
            },
        )
    }

    fn john(g: &Graph) -> String {
        let found = g.person_by_email("john.doe@acme.com");
        assert_eq!(found.len(), 1, "John resolves to one person");
        assert_eq!(
            found[0].accounts().count(),
            2,
            "John's two accounts are linked"
        );
        found[0].id().to_string()
    }

    #[test]
    fn offboard_deactivates_active_accounts_then_removes_every_membership() {
        let g = firm();
        let plan = offboard(&g, &john(&g), OffboardOptions::default()).unwrap();
        let calls: Vec<String> = plan.steps.iter().map(|s| s.call.to_string()).collect();
        assert_eq!(
            calls,
            [
                "PATCH par/users/p1 {\"active\": false}",
                "DELETE lon/groups/g1/members/u1",
                "DELETE lon/groups/g2/members/u1",
                "DELETE par/groups/g9/members/p1",
            ],
            "only the active account is deactivated; the inactive one's memberships go too"
        );
        assert_eq!(
            plan.steps.iter().map(|s| s.index).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        assert!(plan.problems.is_empty(), "{:?}", plan.problems);
        assert_eq!(plan.kind, OperationKind::Offboard);
        assert_eq!(
            plan.databases().into_iter().collect::<Vec<_>>(),
            ["lon", "par"]
        );
    }

    #[test]
    fn offboard_options_keep_groups_and_delete_last() {
        let g = firm();
        let id = john(&g);
        let keep = offboard(
            &g,
            &id,
            OffboardOptions {
                remove_from_groups: false,
                delete: false,
            },
        )
        .unwrap();
        assert_eq!(keep.steps.len(), 1);
        let delete = offboard(
            &g,
            &id,
            OffboardOptions {
                remove_from_groups: true,
                delete: true,
            },
        )
        .unwrap();
        let kinds: Vec<&str> = delete.steps.iter().map(|s| s.call.action()).collect();
        assert_eq!(
            kinds,
            [
                "imanage.user.deactivate",
                "imanage.member.remove",
                "imanage.member.remove",
                "imanage.member.remove",
                "imanage.user.delete",
                "imanage.user.delete",
            ]
        );
        assert!(matches!(
            offboard(&g, "p999999", OffboardOptions::default()),
            Err(Error::UnknownPerson(_))
        ));
    }

    #[test]
    fn offboarding_someone_already_gone_is_nothing_to_do() {
        let mut gone = account("lon", "u9", "gone", Some("gone@acme.com"), ("Old", "Timer"));
        gone.active = false;
        let g = graph::resolve(
            graph::Input {
                accounts: vec![gone],
                ..graph::Input::default()
            },
            &graph::ResolveConfig::default(),
        );
        let id = g.person_by_login("gone")[0].id().to_string();
        let plan = offboard(&g, &id, OffboardOptions::default()).unwrap();
        assert!(plan.steps.is_empty());
        assert_eq!(plan.problems[0].kind, ProblemKind::NothingToDo);
    }

    fn provision_input(dbs: &[&str], groups: &[&str]) -> ProvisionInput {
        ProvisionInput {
            login: "jdoe".into(),
            email: "JOHN.DOE@acme.com".into(),
            first_name: "John".into(),
            last_name: "Doe".into(),
            databases: dbs.iter().map(|d| d.to_string()).collect(),
            groups: groups.iter().map(|g| g.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn provision_reuses_and_reactivates_existing_accounts() {
        let g = firm();
        let plan = provision(
            &g,
            provision_input(&["lon", "par"], &["lon:g1", "lon:g2", "par:g9", "lon:nope"]),
        )
        .unwrap();
        let calls: Vec<&Call> = plan.steps.iter().map(|s| &s.call).collect();
        assert_eq!(
            calls,
            [&Call::ActivateUser {
                database: "lon".into(),
                user_id: "u1".into()
            }],
            "John's London account is reactivated, his Paris account used as it is, and he is \
             in every group asked for already"
        );
        let kinds: Vec<ProblemKind> = plan.problems.iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds,
            [
                ProblemKind::AlreadySatisfied,
                ProblemKind::AlreadySatisfied,
                ProblemKind::AlreadySatisfied,
                ProblemKind::AlreadySatisfied,
                ProblemKind::UnknownGroup,
            ]
        );
    }

    #[test]
    fn provision_creates_where_missing_and_refers_to_the_created_user() {
        let g = firm();
        let mut input = provision_input(&["par", "lon"], &["lon:g2", "par:g9"]);
        input.login = "jroe2".into();
        input.email = "jane.roe@acme.com".into();
        input.first_name = "Jane".into();
        input.last_name = "Roe".into();
        let plan = provision(&g, input).unwrap();
        assert_eq!(
            plan.steps
                .iter()
                .map(|s| s.call.clone())
                .collect::<Vec<_>>(),
            [
                Call::CreateUser {
                    database: "par".into(),
                    login: "jroe2".into(),
                    email: "jane.roe@acme.com".into(),
                    first_name: "Jane".into(),
                    last_name: "Roe".into(),
                },
                Call::AddMember {
                    database: "lon".into(),
                    group_id: "g2".into(),
                    user: UserRef::Existing("u2".into()),
                },
                Call::AddMember {
                    database: "par".into(),
                    group_id: "g9".into(),
                    user: UserRef::CreatedInStep(0),
                },
            ]
        );
    }

    #[test]
    fn provision_never_takes_a_login_another_person_holds() {
        let g = firm();
        let mut input = provision_input(&["par", "lon"], &["par:g9"]);
        input.login = "JSmith".into();
        input.email = "john.smith@acme.com".into();
        input.first_name = "John".into();
        input.last_name = "Smith".into();
        let plan = provision(&g, input).unwrap();
        assert_eq!(plan.steps.len(), 1, "{}", plan.render());
        assert!(
            matches!(&plan.steps[0].call, Call::CreateUser { database, .. } if database == "lon")
        );
        let kinds: Vec<ProblemKind> = plan.problems.iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds,
            [ProblemKind::LoginTaken, ProblemKind::NotProvisioned]
        );
    }

    #[test]
    fn provision_refuses_an_email_shared_by_several_persons() {
        let g = firm();
        let mut input = provision_input(&["lon"], &[]);
        input.email = "reception@acme.com".into();
        let plan = provision(&g, input).unwrap();
        assert!(plan.steps.is_empty());
        assert_eq!(plan.problems[0].kind, ProblemKind::Ambiguous);
        let mut bad = provision_input(&["lon"], &[]);
        bad.email = "not-an-address".into();
        assert!(matches!(provision(&g, bad), Err(Error::InvalidInput(_))));
        assert!(matches!(
            provision(&g, provision_input(&[], &[])),
            Err(Error::InvalidInput(_))
        ));
        assert!("no-colon".parse::<GroupTarget>().is_err());
    }

    #[test]
    fn sync_resolves_through_the_graph_and_never_guesses() {
        let g = firm();
        let members: Vec<String> = [
            "ACME\\jroe",         // Jane, another login form: stays
            "John.Doe@ACME.com",  // John's inactive London account: stays (he is a member)
            "jim.smith@acme.com", // Jim has no London account: unresolved
            "nobody@example.com", // nobody: unresolved
            "reception@acme.com", // two people in London: ambiguous, both kept
            "jroe",               // Jane again: duplicate
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let plan = sync_group(&g, "lon", "g1", &members).unwrap();
        assert!(plan.steps.is_empty(), "{}", plan.render());
        let kinds: Vec<(ProblemKind, &str)> = plan
            .problems
            .iter()
            .map(|p| (p.kind, p.subject.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (ProblemKind::InactiveAccount, "John.Doe@ACME.com"),
                (ProblemKind::Unresolved, "jim.smith@acme.com"),
                (ProblemKind::Unresolved, "nobody@example.com"),
                (ProblemKind::Ambiguous, "reception@acme.com"),
                (ProblemKind::Duplicate, "jroe"),
                (ProblemKind::NothingToDo, "lon/g1"),
            ]
        );

        // Litigation has only John: make it Jane and Amy (by login).
        let plan = sync_group(&g, "lon", "g2", &["jroe".into(), "AMY".into()]).unwrap();
        let calls: Vec<String> = plan.steps.iter().map(|s| s.call.to_string()).collect();
        assert_eq!(
            calls,
            [
                "POST lon/groups/g2/members {\"user_id\": \"u2\"}",
                "POST lon/groups/g2/members {\"user_id\": \"u3\"}",
                "DELETE lon/groups/g2/members/u1",
            ],
            "additions first, then removals"
        );
        assert!(matches!(
            sync_group(&g, "lon", "nope", &[]),
            Err(Error::UnknownGroup { .. })
        ));
    }

    #[test]
    fn plans_round_trip_through_json() {
        let g = firm();
        let plan = provision(&g, provision_input(&["lon", "par"], &["par:g9"])).unwrap();
        let json = serde_json::to_value(&plan).unwrap();
        let back: Plan = serde_json::from_value(json).unwrap();
        assert_eq!(back, plan);
        let step = serde_json::to_value(&Call::AddMember {
            database: "d".into(),
            group_id: "g".into(),
            user: UserRef::CreatedInStep(3),
        })
        .unwrap();
        assert_eq!(
            step,
            serde_json::json!({"type": "add_member", "database": "d", "group_id": "g",
                               "user": {"created_in_step": 3}})
        );
    }
}
