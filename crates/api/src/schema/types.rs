//! The GraphQL output and input types.
//!
//! Output types are thin wrappers around the graph's `Copy` handles, borrowing the graph of the
//! request (`'g`), so resolving a field is a pointer chase in memory, never a lookup by key or a
//! store call.

use super::cursor::Cursor;
use super::{charge, request_data, ApiError};
use crate::state::Published;
use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject, ID};
use std::sync::Arc;

pub(crate) struct Person<'g>(pub(crate) graph::PersonRef<'g>);

/// A person: the accounts of one human across iManage Work databases, linked by normalized
/// login name and email (see `evidence`) or by an analyst's override.
#[Object]
impl<'g> Person<'g> {
    /// The stable person id. It survives harvests; when two persons merge, the older id
    /// survives and `person(id:)` still answers for the other.
    async fn id(&self) -> ID {
        ID(self.0.id().to_string())
    }

    /// A display name taken from the person's accounts.
    async fn display_name(&self) -> Option<&'g str> {
        self.0.display_name()
    }

    /// The normalized login names of the person's accounts (case folded; `DOMAIN\user` and
    /// `user@domain` reduced to one comparable form).
    async fn logins(&self, ctx: &Context<'_>) -> Result<Vec<&'g str>> {
        let logins = self.0.logins();
        charge(ctx, logins.len())?;
        Ok(logins)
    }

    /// The normalized email addresses of the person's accounts (case folded, firm domain
    /// aliases mapped to one domain).
    async fn emails(&self, ctx: &Context<'_>) -> Result<Vec<&'g str>> {
        let emails = self.0.emails();
        charge(ctx, emails.len())?;
        Ok(emails)
    }

    /// The person's accounts, at most a few per database.
    async fn accounts(&self, ctx: &Context<'_>) -> Result<Vec<Account<'g>>> {
        let accounts: Vec<Account<'g>> = self.0.accounts().map(Account).collect();
        charge(ctx, accounts.len())?;
        Ok(accounts)
    }

    /// What the person can reach: the union over their accounts of the groups they are members
    /// of and the workspaces they can access, each grant tagged with its database, account and
    /// path. Computed from iManage Work's own security only: a Security Policy Manager, where a
    /// firm runs one, can deny access before any of this and is not visible through the API.
    async fn reach(&self, ctx: &Context<'_>) -> Result<Vec<Grant<'g>>> {
        let grants: Vec<Grant<'g>> = self.0.reach().into_iter().map(Grant).collect();
        charge(ctx, grants.len())?;
        Ok(grants)
    }

    /// Why these accounts are one person: each shared normalized key and the accounts sharing
    /// it, plus analysts' must-link overrides.
    async fn evidence(&self, ctx: &Context<'_>) -> Result<Vec<LinkEvidence<'g>>> {
        let evidence: Vec<LinkEvidence<'g>> =
            self.0.evidence().into_iter().map(LinkEvidence).collect();
        charge(ctx, evidence.len())?;
        Ok(evidence)
    }

    /// Links the resolver refused to make (e.g. one login with two different emails, a shared
    /// mailbox, a cannot-link override) that involve this person's accounts.
    async fn conflicts(&self, ctx: &Context<'_>) -> Result<Vec<Conflict<'g>>> {
        let conflicts: Vec<Conflict<'g>> = self.0.conflicts().into_iter().map(Conflict).collect();
        charge(ctx, conflicts.len())?;
        Ok(conflicts)
    }

    /// True when at least one of the person's accounts is active.
    async fn active(&self) -> bool {
        self.0.is_active_somewhere()
    }
}

pub(crate) struct Account<'g>(pub(crate) graph::AccountRef<'g>);

/// One user account in one database.
#[Object]
impl<'g> Account<'g> {
    /// The database (the API's `customer_id`).
    async fn database(&self) -> &'g str {
        self.0.database()
    }

    /// The user id inside that database.
    async fn user_id(&self) -> &'g str {
        self.0.user_id()
    }

    /// The login name as iManage Work has it (not normalized).
    async fn login_name(&self) -> Option<&'g str> {
        self.0.login_name()
    }

    /// The email as iManage Work has it (not normalized).
    async fn email(&self) -> Option<&'g str> {
        self.0.email()
    }

    /// First name.
    async fn first_name(&self) -> Option<&'g str> {
        self.0.first_name()
    }

    /// Last name.
    async fn last_name(&self) -> Option<&'g str> {
        self.0.last_name()
    }

    /// Display name.
    async fn display_name(&self) -> Option<&'g str> {
        self.0.display_name()
    }

    /// Whether the account is active (may sign in).
    async fn active(&self) -> bool {
        self.0.active()
    }

    /// The account's user type as iManage Work reports it (e.g. `regular`, `external`).
    async fn user_type(&self) -> Option<&'g str> {
        self.0.user_type()
    }

    /// True when the account is marked external.
    async fn external(&self) -> bool {
        self.0.is_external()
    }

    /// The groups the account is a member of, in its own database.
    async fn groups(&self, ctx: &Context<'_>) -> Result<Vec<Group<'g>>> {
        let groups: Vec<Group<'g>> = self.0.groups().map(Group).collect();
        charge(ctx, groups.len())?;
        Ok(groups)
    }

    /// The person the account belongs to.
    async fn person(&self) -> Person<'g> {
        Person(self.0.person())
    }
}

pub(crate) struct Group<'g>(pub(crate) graph::GroupRef<'g>);

/// A group in one database.
#[Object]
impl<'g> Group<'g> {
    /// The database (the API's `customer_id`).
    async fn database(&self) -> &'g str {
        self.0.database()
    }

    /// The group id inside that database.
    async fn group_id(&self) -> &'g str {
        self.0.group_id()
    }

    /// The group's name.
    async fn name(&self) -> Option<&'g str> {
        self.0.name()
    }

    /// How many members the last complete harvest found.
    async fn member_count(&self) -> usize {
        self.0.member_count()
    }

    /// The member accounts. Large groups count against the request's list budget.
    async fn members(&self, ctx: &Context<'_>) -> Result<Vec<Account<'g>>> {
        let members: Vec<Account<'g>> = self.0.members().map(Account).collect();
        charge(ctx, members.len())?;
        Ok(members)
    }
}

pub(crate) struct Workspace<'g>(pub(crate) graph::WorkspaceRef<'g>);

/// A workspace in one database.
#[Object]
impl<'g> Workspace<'g> {
    /// The database (the API's `customer_id`).
    async fn database(&self) -> &'g str {
        self.0.database()
    }

    /// The workspace id inside that database.
    async fn workspace_id(&self) -> &'g str {
        self.0.workspace_id()
    }

    /// The workspace id inside that database (the same as `workspaceId`).
    async fn id(&self) -> &'g str {
        self.0.workspace_id()
    }

    /// The workspace's name.
    async fn name(&self) -> Option<&'g str> {
        self.0.name()
    }

    /// What the workspace grants every account of its database when no entry decides:
    /// `private`, `view` or `public`.
    async fn default_security(&self) -> &'static str {
        self.0.default_security().as_str()
    }
}

pub(crate) struct Grant<'g>(pub(crate) graph::Grant<'g>);

/// One thing an account can reach, and how. Computed from iManage Work's own security only
/// (no Security Policy Manager).
#[Object]
impl<'g> Grant<'g> {
    /// The database the grant is in.
    async fn database(&self) -> &'g str {
        self.0.database()
    }

    /// The account that holds the grant.
    async fn account(&self) -> Account<'g> {
        Account(self.0.account)
    }

    /// The group the grant comes through: the group itself for a membership, the deciding
    /// group for workspace access granted to a group; null otherwise.
    async fn group(&self) -> Option<Group<'g>> {
        self.0.group.map(Group)
    }

    /// The workspace, for a workspace grant.
    async fn workspace(&self) -> Option<Workspace<'g>> {
        self.0.workspace.map(Workspace)
    }

    /// `member` for a group membership; for a workspace, the effective access:
    /// `no_access`, `read`, `read_write` or `full_access`.
    async fn access(&self) -> &'static str {
        grant_access(&self.0)
    }

    /// How the grant arises, outermost first: `account:DB/USER`, then `group:DB/GROUP` when a
    /// group is involved, then, for workspace access, `default:SECURITY` when the workspace's
    /// default decided, and `workspace:DB/WORKSPACE`.
    async fn path(&self) -> Vec<String> {
        self.0.path()
    }

    /// For workspace access, what decided it: `EXPLICIT` (the account's own entry), `GROUP`
    /// (its groups' entries, combined by the database's security mode) or `DEFAULT` (the
    /// workspace's default security). Null for a group membership.
    async fn via(&self) -> Option<&'static str> {
        self.0.via.map(|v| match v {
            graph::Via::Explicit => "EXPLICIT",
            graph::Via::Group => "GROUP",
            graph::Via::Default => "DEFAULT",
        })
    }
}

pub(crate) fn grant_access(g: &graph::Grant<'_>) -> &'static str {
    match g.access {
        Some(access) => access.as_str(),
        None => "member",
    }
}

pub(crate) struct LinkEvidence<'g>(pub(crate) graph::LinkEvidence<'g>);

/// One reason accounts were linked into a person.
#[Object]
impl<'g> LinkEvidence<'g> {
    /// `LOGIN_NAME`, `EMAIL` or `OVERRIDE`.
    async fn key(&self) -> &'static str {
        self.0.key.as_str()
    }

    /// The normalized value the accounts share (empty for an override).
    async fn value(&self) -> &str {
        &self.0.value
    }

    /// The accounts sharing it.
    async fn accounts(&self, ctx: &Context<'_>) -> Result<Vec<Account<'g>>> {
        charge(ctx, self.0.accounts.len())?;
        Ok(self.0.accounts.iter().copied().map(Account).collect())
    }
}

pub(crate) struct Conflict<'g>(pub(crate) graph::Conflict<'g>);

/// A link the resolver refused to make, reported for an analyst to decide.
#[Object]
impl<'g> Conflict<'g> {
    /// What kind of conflict: `LOGIN_EMAIL_MISMATCH`, `LOGIN_NAME_MISMATCH`, `SHARED_EMAIL`,
    /// `AMBIGUOUS_LOGIN`, `AMBIGUOUS_EMAIL`, `SAME_DATABASE` or `CANNOT_LINK_OVERRIDE`.
    async fn kind(&self) -> &'static str {
        self.0.kind.as_str()
    }

    /// A sentence describing it.
    async fn detail(&self) -> &str {
        &self.0.detail
    }

    /// The accounts involved.
    async fn accounts(&self, ctx: &Context<'_>) -> Result<Vec<Account<'g>>> {
        charge(ctx, self.0.accounts.len())?;
        Ok(self.0.accounts.iter().copied().map(Account).collect())
    }
}

pub(crate) struct Database<'g> {
    pub(crate) id: &'g str,
    /// `None` for a database in the store that the graph has nothing of.
    pub(crate) info: Option<graph::DatabaseInfo<'g>>,
    pub(crate) status: Option<&'g store::DatabaseStatus>,
}

/// One database: its size in the serving graph and how fresh it is.
#[Object]
impl<'g> Database<'g> {
    /// The database id (the API's `customer_id`).
    async fn id(&self) -> &'g str {
        self.id
    }

    /// Accounts in the serving graph.
    async fn account_count(&self) -> usize {
        self.info.as_ref().map_or(0, |i| i.account_count)
    }

    /// Groups in the serving graph.
    async fn group_count(&self) -> usize {
        self.info.as_ref().map_or(0, |i| i.group_count)
    }

    /// Workspaces in the serving graph (0 where the API profile offers no workspace security).
    async fn workspace_count(&self) -> usize {
        self.info.as_ref().map_or(0, |i| i.workspace_count)
    }

    /// When the last complete harvest of this database was committed (RFC 3339); null before
    /// the first. Answers about this database reflect that harvest.
    async fn last_harvested_at(&self) -> Option<String> {
        self.status.and_then(|s| s.last_complete_at).map(rfc3339)
    }

    /// When the last harvest attempt, complete or not, was recorded (RFC 3339).
    async fn last_attempt_at(&self) -> Option<String> {
        self.status.and_then(|s| s.last_attempt_at).map(rfc3339)
    }

    /// True when the last harvest attempt was complete. False means the last attempt failed and
    /// the answers still reflect `lastHarvestedAt`.
    async fn complete(&self) -> bool {
        self.status.is_some_and(|s| s.complete)
    }

    /// Why the last attempt failed, when it did.
    async fn last_error(&self) -> Option<&'g str> {
        self.status.and_then(|s| s.last_error.as_deref())
    }
}

/// Unix milliseconds as RFC 3339 (UTC, millisecond precision).
pub(crate) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Sizes of the serving graph.
#[derive(SimpleObject)]
pub(crate) struct GraphInfo {
    /// Persons.
    pub(crate) persons: usize,
    /// Accounts.
    pub(crate) accounts: usize,
    /// Groups.
    pub(crate) groups: usize,
    /// Group memberships.
    pub(crate) memberships: usize,
    /// Workspaces.
    pub(crate) workspaces: usize,
    /// Conflicts the resolver reported.
    pub(crate) conflicts: usize,
}

/// Relay-style page information.
#[derive(SimpleObject)]
pub(crate) struct PageInfo {
    /// True when there are more items after this page.
    pub(crate) has_next_page: bool,
    /// True when this page did not start at the beginning (an `after` cursor was given).
    pub(crate) has_previous_page: bool,
    /// The cursor of the first item of the page.
    pub(crate) start_cursor: Option<String>,
    /// The cursor of the last item of the page: pass it as `after` for the next page.
    pub(crate) end_cursor: Option<String>,
}

/// A page of persons.
#[derive(SimpleObject)]
pub(crate) struct PersonConnection<'g> {
    /// How many persons match, over all pages.
    pub(crate) total_count: usize,
    /// The persons of this page, in id order.
    pub(crate) edges: Vec<PersonEdge<'g>>,
    /// Where this page is.
    pub(crate) page_info: PageInfo,
}

/// A person and its cursor.
#[derive(SimpleObject)]
pub(crate) struct PersonEdge<'g> {
    /// Pass as `after` to continue after this person.
    pub(crate) cursor: String,
    /// The person.
    pub(crate) node: Person<'g>,
}

/// Narrows `persons`. Every given field must hold.
#[derive(InputObject, Default, Debug)]
pub(crate) struct PersonFilter {
    /// Persons with an account in this database.
    pub(crate) database: Option<String>,
    /// Persons with an account in this group; needs `database`.
    pub(crate) group_id: Option<String>,
    /// true: persons with an active account (in `database` when given); false: persons with
    /// none.
    pub(crate) active: Option<bool>,
    /// Persons with (true) or without (false) conflicts.
    pub(crate) has_conflicts: Option<bool>,
    /// Case- and accent-insensitive substring of the person's display name, or of a
    /// normalized login or email of their accounts.
    pub(crate) search: Option<String>,
}

/// The kinds of change-log entries.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub(crate) enum ChangeKind {
    /// An account appeared.
    AccountAdded,
    /// An account disappeared.
    AccountRemoved,
    /// An account became active.
    AccountActivated,
    /// An account became inactive.
    AccountDeactivated,
    /// A field of an account changed (one entry per field).
    AccountChanged,
    /// A group appeared.
    GroupAdded,
    /// A group disappeared.
    GroupRemoved,
    /// A field of a group changed.
    GroupChanged,
    /// An account joined a group.
    MembershipAdded,
    /// An account left a group.
    MembershipRemoved,
    /// A workspace appeared.
    WorkspaceAdded,
    /// A workspace disappeared.
    WorkspaceRemoved,
    /// A field of a workspace changed.
    WorkspaceChanged,
    /// A workspace security entry appeared.
    WorkspaceEntryAdded,
    /// A workspace security entry disappeared.
    WorkspaceEntryRemoved,
    /// A workspace security entry's access changed.
    WorkspaceEntryChanged,
}

impl ChangeKind {
    pub(crate) fn to_store(self) -> store::ChangeKind {
        use store::ChangeKind as S;
        match self {
            ChangeKind::AccountAdded => S::AccountAdded,
            ChangeKind::AccountRemoved => S::AccountRemoved,
            ChangeKind::AccountActivated => S::AccountActivated,
            ChangeKind::AccountDeactivated => S::AccountDeactivated,
            ChangeKind::AccountChanged => S::AccountChanged,
            ChangeKind::GroupAdded => S::GroupAdded,
            ChangeKind::GroupRemoved => S::GroupRemoved,
            ChangeKind::GroupChanged => S::GroupChanged,
            ChangeKind::MembershipAdded => S::MembershipAdded,
            ChangeKind::MembershipRemoved => S::MembershipRemoved,
            ChangeKind::WorkspaceAdded => S::WorkspaceAdded,
            ChangeKind::WorkspaceRemoved => S::WorkspaceRemoved,
            ChangeKind::WorkspaceChanged => S::WorkspaceChanged,
            ChangeKind::WorkspaceEntryAdded => S::WorkspaceEntryAdded,
            ChangeKind::WorkspaceEntryRemoved => S::WorkspaceEntryRemoved,
            ChangeKind::WorkspaceEntryChanged => S::WorkspaceEntryChanged,
        }
    }

    pub(crate) fn from_store(kind: store::ChangeKind) -> Self {
        use store::ChangeKind as S;
        match kind {
            S::AccountAdded => ChangeKind::AccountAdded,
            S::AccountRemoved => ChangeKind::AccountRemoved,
            S::AccountActivated => ChangeKind::AccountActivated,
            S::AccountDeactivated => ChangeKind::AccountDeactivated,
            S::AccountChanged => ChangeKind::AccountChanged,
            S::GroupAdded => ChangeKind::GroupAdded,
            S::GroupRemoved => ChangeKind::GroupRemoved,
            S::GroupChanged => ChangeKind::GroupChanged,
            S::MembershipAdded => ChangeKind::MembershipAdded,
            S::MembershipRemoved => ChangeKind::MembershipRemoved,
            S::WorkspaceAdded => ChangeKind::WorkspaceAdded,
            S::WorkspaceRemoved => ChangeKind::WorkspaceRemoved,
            S::WorkspaceChanged => ChangeKind::WorkspaceChanged,
            S::WorkspaceEntryAdded => ChangeKind::WorkspaceEntryAdded,
            S::WorkspaceEntryRemoved => ChangeKind::WorkspaceEntryRemoved,
            S::WorkspaceEntryChanged => ChangeKind::WorkspaceEntryChanged,
        }
    }
}

/// Narrows `changes`. Every given field must hold.
#[derive(InputObject, Default, Debug)]
pub(crate) struct ChangeFilter {
    /// Changes touching the accounts this person has now (their memberships and workspace
    /// entries included).
    pub(crate) person_id: Option<ID>,
    /// Changes touching this one account.
    pub(crate) account: Option<AccountKeyInput>,
    /// Changes in this database.
    pub(crate) database: Option<String>,
    /// Changes of these kinds.
    pub(crate) kinds: Option<Vec<ChangeKind>>,
    /// Changes committed at or after this instant (RFC 3339).
    pub(crate) since: Option<String>,
    /// Changes committed before this instant (RFC 3339).
    pub(crate) until: Option<String>,
}

pub(crate) struct Change<'g> {
    pub(crate) change: store::Change,
    pub(crate) graph: Option<&'g graph::Graph>,
}

/// One change-log entry: what one harvest found different from the one before.
#[Object]
impl<'g> Change<'g> {
    /// The entry's id; entries are ordered by it.
    async fn id(&self) -> ID {
        ID(self.change.id.to_string())
    }

    /// The harvest run that found the change.
    async fn run_id(&self) -> ID {
        ID(self.change.run_id.to_string())
    }

    /// When the change was committed (RFC 3339).
    async fn at(&self) -> String {
        rfc3339(self.change.at)
    }

    /// The database.
    async fn database(&self) -> &str {
        &self.change.database
    }

    /// What changed.
    async fn kind(&self) -> ChangeKind {
        ChangeKind::from_store(self.change.kind)
    }

    /// The user id, for account, membership and user-entry changes.
    async fn user_id(&self) -> Option<&str> {
        self.change.user_id.as_deref()
    }

    /// The group id, for group, membership and group-entry changes.
    async fn group_id(&self) -> Option<&str> {
        self.change.group_id.as_deref()
    }

    /// The workspace id, for workspace and entry changes.
    async fn workspace_id(&self) -> Option<&str> {
        self.change.workspace_id.as_deref()
    }

    /// The changed field, for `*_CHANGED` entries.
    async fn field(&self) -> Option<&str> {
        self.change.field.as_deref()
    }

    /// The value before (lists and objects as JSON text).
    async fn old_value(&self) -> Option<&str> {
        self.change.old_value.as_deref()
    }

    /// The value after (lists and objects as JSON text).
    async fn new_value(&self) -> Option<&str> {
        self.change.new_value.as_deref()
    }

    /// The account as it is now, when it still exists.
    async fn account(&self) -> Option<Account<'g>> {
        let user = self.change.user_id.as_deref()?;
        self.graph?
            .account(&self.change.database, user)
            .map(Account)
    }

    /// The group as it is now, when it still exists.
    async fn group(&self) -> Option<Group<'g>> {
        let group = self.change.group_id.as_deref()?;
        self.graph?.group(&self.change.database, group).map(Group)
    }
}

/// A page of change-log entries. There is no total count: counting the log is a scan.
#[derive(SimpleObject)]
pub(crate) struct ChangeConnection<'g> {
    /// The entries of this page, oldest first.
    pub(crate) edges: Vec<ChangeEdge<'g>>,
    /// Where this page is.
    pub(crate) page_info: PageInfo,
}

/// A change-log entry and its cursor.
#[derive(SimpleObject)]
pub(crate) struct ChangeEdge<'g> {
    /// Pass as `after` to continue after this entry.
    pub(crate) cursor: String,
    /// The entry.
    pub(crate) node: Change<'g>,
}

/// The kinds of anomaly the graph reports.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub(crate) enum AnomalyKind {
    /// A person active in some databases and inactive in others (an incomplete offboarding,
    /// or a rehire).
    PartlyActive,
    /// An account without an email address.
    NoEmail,
    /// A conflict the resolver refused to merge.
    Conflict,
    /// An external account that is a member of an internal group.
    ExternalInInternalGroup,
}

pub(crate) struct Anomaly<'g>(pub(crate) graph::Anomaly<'g>);

/// Something in the identity data that looks wrong.
#[Object]
impl<'g> Anomaly<'g> {
    /// What kind of anomaly.
    async fn kind(&self) -> AnomalyKind {
        anomaly_kind(&self.0)
    }

    /// A sentence describing it.
    async fn detail(&self) -> String {
        anomaly_detail(&self.0)
    }

    /// The person concerned.
    async fn person(&self) -> Option<Person<'g>> {
        anomaly_person(&self.0).map(Person)
    }

    /// The accounts concerned.
    async fn accounts(&self, ctx: &Context<'_>) -> Result<Vec<Account<'g>>> {
        let accounts = anomaly_accounts(&self.0);
        charge(ctx, accounts.len())?;
        Ok(accounts.into_iter().map(Account).collect())
    }

    /// The group concerned, for `EXTERNAL_IN_INTERNAL_GROUP`.
    async fn group(&self) -> Option<Group<'g>> {
        anomaly_group(&self.0).map(Group)
    }
}

pub(crate) fn anomaly_kind(a: &graph::Anomaly<'_>) -> AnomalyKind {
    match a {
        graph::Anomaly::PartlyActive { .. } => AnomalyKind::PartlyActive,
        graph::Anomaly::NoEmail { .. } => AnomalyKind::NoEmail,
        graph::Anomaly::Conflict(..) => AnomalyKind::Conflict,
        graph::Anomaly::ExternalInInternalGroup { .. } => AnomalyKind::ExternalInInternalGroup,
    }
}

fn anomaly_detail(a: &graph::Anomaly<'_>) -> String {
    match a {
        graph::Anomaly::PartlyActive { person } => format!(
            "person {} is active in some databases and inactive in others",
            person.id()
        ),
        graph::Anomaly::NoEmail { account } => format!(
            "account {}/{} has no email address",
            account.database(),
            account.user_id()
        ),
        graph::Anomaly::Conflict(c) => c.detail.clone(),
        graph::Anomaly::ExternalInInternalGroup { account, group } => format!(
            "external account {}/{} is a member of internal group {}",
            account.database(),
            account.user_id(),
            group.group_id()
        ),
    }
}

fn anomaly_person<'g>(a: &graph::Anomaly<'g>) -> Option<graph::PersonRef<'g>> {
    match a {
        graph::Anomaly::PartlyActive { person } => Some(*person),
        graph::Anomaly::NoEmail { account } => Some(account.person()),
        graph::Anomaly::Conflict(c) => c.accounts.first().map(|a| a.person()),
        graph::Anomaly::ExternalInInternalGroup { account, .. } => Some(account.person()),
    }
}

fn anomaly_accounts<'g>(a: &graph::Anomaly<'g>) -> Vec<graph::AccountRef<'g>> {
    match a {
        graph::Anomaly::PartlyActive { person } => person.accounts().collect(),
        graph::Anomaly::NoEmail { account } => vec![*account],
        graph::Anomaly::Conflict(c) => c.accounts.clone(),
        graph::Anomaly::ExternalInInternalGroup { account, .. } => vec![*account],
    }
}

fn anomaly_group<'g>(a: &graph::Anomaly<'g>) -> Option<graph::GroupRef<'g>> {
    match a {
        graph::Anomaly::ExternalInInternalGroup { group, .. } => Some(*group),
        _ => None,
    }
}

/// A page of anomalies.
#[derive(SimpleObject)]
pub(crate) struct AnomalyConnection<'g> {
    /// How many anomalies match, over all pages.
    pub(crate) total_count: usize,
    /// The anomalies of this page.
    pub(crate) edges: Vec<AnomalyEdge<'g>>,
    /// Where this page is.
    pub(crate) page_info: PageInfo,
}

/// An anomaly and its cursor.
#[derive(SimpleObject)]
pub(crate) struct AnomalyEdge<'g> {
    /// Pass as `after` to continue after this anomaly.
    pub(crate) cursor: String,
    /// The anomaly.
    pub(crate) node: Anomaly<'g>,
}

/// An analyst's decision about two accounts.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub(crate) enum OverrideKind {
    /// The two accounts are the same person, whatever their keys say.
    MustLink,
    /// The two accounts are never the same person.
    CannotLink,
}

impl OverrideKind {
    pub(crate) fn to_model(self) -> model::OverrideKind {
        match self {
            OverrideKind::MustLink => model::OverrideKind::MustLink,
            OverrideKind::CannotLink => model::OverrideKind::CannotLink,
        }
    }

    pub(crate) fn from_model(kind: model::OverrideKind) -> Self {
        match kind {
            model::OverrideKind::MustLink => OverrideKind::MustLink,
            model::OverrideKind::CannotLink => OverrideKind::CannotLink,
        }
    }
}

/// Names one account.
#[derive(InputObject, Debug, Clone)]
pub(crate) struct AccountKeyInput {
    /// The database (the API's `customer_id`).
    pub(crate) database: String,
    /// The user id inside that database.
    pub(crate) user_id: String,
}

impl AccountKeyInput {
    pub(crate) fn to_model(&self) -> model::AccountKey {
        model::AccountKey::new(self.database.trim(), self.user_id.trim())
    }
}

/// An override to add.
#[derive(InputObject, Debug)]
pub(crate) struct OverrideInput {
    /// Must-link or cannot-link.
    pub(crate) kind: OverrideKind,
    /// One account.
    pub(crate) a: AccountKeyInput,
    /// The other account.
    pub(crate) b: AccountKeyInput,
    /// Why: kept in the override and in the audit log.
    pub(crate) reason: String,
}

pub(crate) struct AccountKey<'a> {
    key: &'a model::AccountKey,
    graph: Option<&'a graph::Graph>,
}

/// One end of an override: an account key, and the account when it is in the serving graph.
#[Object]
impl<'a> AccountKey<'a> {
    /// The database (the API's `customer_id`).
    async fn database(&self) -> &str {
        &self.key.database
    }

    /// The user id inside that database.
    async fn user_id(&self) -> &str {
        &self.key.user_id
    }

    /// The account, when the serving graph has it.
    async fn account(&self) -> Option<Account<'a>> {
        self.graph?
            .account(&self.key.database, &self.key.user_id)
            .map(Account)
    }
}

pub(crate) struct Override {
    pub(crate) model: model::Override,
    /// The graph the accounts are looked up in: the request's for queries, the freshly
    /// resolved one after a mutation.
    pub(crate) published: Option<Arc<Published>>,
}

/// An analyst's override, applied on every resolution until removed.
#[Object]
impl Override {
    /// The override's id (for `removeOverride`).
    async fn id(&self) -> ID {
        ID(self.model.id.to_string())
    }

    /// Must-link or cannot-link.
    async fn kind(&self) -> OverrideKind {
        OverrideKind::from_model(self.model.kind)
    }

    /// One account.
    async fn a(&self) -> AccountKey<'_> {
        AccountKey {
            key: &self.model.a,
            graph: self.published.as_deref().map(|p| &*p.graph),
        }
    }

    /// The other account.
    async fn b(&self) -> AccountKey<'_> {
        AccountKey {
            key: &self.model.b,
            graph: self.published.as_deref().map(|p| &*p.graph),
        }
    }

    /// Why it was made.
    async fn reason(&self) -> Option<&str> {
        self.model.reason.as_deref()
    }

    /// Who made it (an API key's role and fingerprint).
    async fn created_by(&self) -> Option<&str> {
        self.model.created_by.as_deref()
    }

    /// When it was made (RFC 3339).
    async fn created_at(&self) -> String {
        rfc3339(self.model.created_at)
    }
}

/// Checks a page size: absent means `default`; negative is bad input; above the configured
/// maximum is `LIMIT_EXCEEDED`.
pub(crate) fn page_size(ctx: &Context<'_>, first: Option<i32>) -> Result<usize, ApiError> {
    let max = request_data(ctx)?.max_page;
    match first {
        None => Ok(super::DEFAULT_PAGE.min(max)),
        Some(n) if n < 0 => Err(ApiError::bad_input("`first` must not be negative")),
        Some(n) if n as usize > max => Err(ApiError::limit(format!(
            "`first` is {n}, larger than the largest page ({max})"
        ))
        .with("maxPage", max as u64)),
        Some(n) => Ok(n as usize),
    }
}

/// The static complexity of a paginated field: its selection times the page size.
pub(crate) fn page_complexity(first: Option<i32>, child: usize) -> usize {
    let n = first.map_or(super::DEFAULT_PAGE, |n| n.max(0) as usize);
    n.saturating_mul(child).saturating_add(1)
}

/// The cursor of a person edge.
pub(crate) fn person_cursor(p: graph::PersonRef<'_>) -> String {
    Cursor::Person(p.id().to_string()).encode()
}
