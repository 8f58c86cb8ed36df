//! Identity resolution and reach, pure and deterministic: no IO.
//!
//! [`resolve`] turns the store's rows (per-database accounts, groups, memberships, workspaces
//! and their security, analysts' overrides, and the previous person-id assignment) into an
//! immutable [`Graph`]: person, account, group and workspace nodes, every link with its
//! evidence, every conflict it refused to merge, and the indexes the API's questions need.
//! The rules are written down in `docs/RESOLUTION.md`.
//!
//! Layout, for memory: every string is interned once ([`intern`]); nodes are small structs of
//! `u32` symbols; the account, group and person nodes and their edges live in one petgraph
//! [`Csr`] (compressed sparse rows), which costs four bytes per edge.

pub mod access;
mod build;
pub mod ids;
mod intern;
pub mod memory;
pub mod normalize;
pub mod synthetic;

pub use access::{effective_access, Decision};
pub use ids::PersonIds;

use intern::{Interner, Sym};
use model::{Access, AccountKey, DefaultSecurity, SecurityMode};
use petgraph::csr::Csr;
use std::collections::HashMap;

/// Settings of the resolver.
#[derive(Debug, Clone, Default)]
pub struct ResolveConfig {
    /// Groups of email domains that are one firm's, e.g. `[["acme.com", "acme-law.com"]]`: all
    /// map to the first.
    pub email_domain_aliases: Vec<Vec<String>>,
    /// Groups of login domains that are the same, e.g. `[["ACME", "acme.com"]]`.
    pub login_domain_aliases: Vec<Vec<String>>,
    /// Per-database security mode for workspace access (default optimistic).
    pub security_modes: HashMap<String, SecurityMode>,
}

/// Everything a resolution starts from.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub accounts: Vec<model::Account>,
    pub groups: Vec<model::Group>,
    pub memberships: Vec<model::Membership>,
    pub workspaces: Vec<model::Workspace>,
    pub workspace_entries: Vec<model::WorkspaceEntry>,
    pub overrides: Vec<model::Override>,
    /// The previous assignment, for stable person ids.
    pub previous: PersonIds,
}

/// [`Input`] with memberships given as indexes instead of strings: the compact form for large
/// firms. Everything but `memberships` is as in [`Input`].
#[derive(Debug, Clone, Default)]
pub struct IndexedInput {
    pub accounts: Vec<model::Account>,
    pub groups: Vec<model::Group>,
    /// `(account, group)`: indexes into `accounts` and `groups` as given (before any sorting
    /// the resolver does). Any order; duplicates count once; a pair naming an index out of
    /// range is dropped, as a string membership naming an unknown account or group is.
    /// Sorted by `(group, account)` with `accounts` and `groups` in key order (the store's
    /// order) is the fastest.
    pub memberships: Vec<(u32, u32)>,
    pub workspaces: Vec<model::Workspace>,
    pub workspace_entries: Vec<model::WorkspaceEntry>,
    pub overrides: Vec<model::Override>,
    /// The previous assignment, for stable person ids.
    pub previous: PersonIds,
}

impl From<IndexedInput> for Input {
    /// The string-keyed form of the same input (pairs out of range are dropped).
    fn from(i: IndexedInput) -> Self {
        let memberships = i
            .memberships
            .iter()
            .filter_map(|&(a, g)| {
                let (a, g) = (i.accounts.get(a as usize)?, i.groups.get(g as usize)?);
                (a.database == g.database).then(|| model::Membership {
                    database: a.database.clone(),
                    group_id: g.group_id.clone(),
                    user_id: a.user_id.clone(),
                })
            })
            .collect();
        Input {
            accounts: i.accounts,
            groups: i.groups,
            memberships,
            workspaces: i.workspaces,
            workspace_entries: i.workspace_entries,
            overrides: i.overrides,
            previous: i.previous,
        }
    }
}

/// Resolves accounts into persons and builds the graph.
///
/// Uses two threads besides the caller's, which waits: the build runs on a thread of its own
/// while another frees the input's strings once read, so that the two do not contend in the
/// allocator (glibc gives each thread its own arena).
pub fn resolve(input: Input, config: &ResolveConfig) -> Graph {
    on_own_thread(|| build::build(input, config))
}

/// [`resolve`] from the compact form; the same input gives the same graph either way.
pub fn resolve_indexed(input: IndexedInput, config: &ResolveConfig) -> Graph {
    on_own_thread(|| build::build_indexed(input, config, build::PhaseTimer::new()))
}

fn on_own_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| build::join(build::spawn_scoped(s, "resolve", f)))
}

/// Which key linked two accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EvidenceKey {
    LoginName,
    Email,
    Override,
}

impl EvidenceKey {
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKey::LoginName => "LOGIN_NAME",
            EvidenceKey::Email => "EMAIL",
            EvidenceKey::Override => "OVERRIDE",
        }
    }
}

/// Why two accounts were not merged although a key suggested it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConflictKind {
    /// The same login, but both accounts carry emails and they differ.
    LoginEmailMismatch,
    /// The same login, but the names clearly disagree.
    LoginNameMismatch,
    /// One email on accounts whose names clearly disagree (a shared mailbox).
    SharedEmail,
    /// An account matches several persons that are kept apart; it was not guessed.
    AmbiguousLogin,
    AmbiguousEmail,
    /// The link would put two accounts of one database into one person.
    SameDatabase,
    /// An analyst's cannot-link override kept them apart.
    CannotLinkOverride,
}

impl ConflictKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictKind::LoginEmailMismatch => "LOGIN_EMAIL_MISMATCH",
            ConflictKind::LoginNameMismatch => "LOGIN_NAME_MISMATCH",
            ConflictKind::SharedEmail => "SHARED_EMAIL",
            ConflictKind::AmbiguousLogin => "AMBIGUOUS_LOGIN",
            ConflictKind::AmbiguousEmail => "AMBIGUOUS_EMAIL",
            ConflictKind::SameDatabase => "SAME_DATABASE",
            ConflictKind::CannotLinkOverride => "CANNOT_LINK_OVERRIDE",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct AccountNode {
    pub db: u16,
    pub user_id: Sym,
    pub login: Sym,
    pub email: Sym,
    pub first: Sym,
    pub last: Sym,
    pub display: Sym,
    pub user_type: Sym,
    pub login_key: Sym,
    pub email_key: Sym,
    pub active: bool,
    pub external: bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct GroupNode {
    pub db: u16,
    pub group_id: Sym,
    pub name: Sym,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct WorkspaceNode {
    pub db: u16,
    pub workspace_id: Sym,
    pub name: Sym,
    pub default: DefaultSecurity,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct PersonNode {
    pub id: Sym,
    pub seq: i64,
    pub display: Sym,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct DbNode {
    pub id: Sym,
    pub mode: SecurityMode,
    /// Half-open index ranges; rows are sorted by database, so each database is contiguous.
    pub accounts: (u32, u32),
    pub groups: (u32, u32),
    pub workspaces: (u32, u32),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Link {
    pub a: u32,
    pub b: u32,
    pub kind: EvidenceKey,
    pub value: Sym,
}

#[derive(Debug, Clone)]
pub(crate) struct ConflictRec {
    pub kind: ConflictKind,
    pub value: Sym,
    pub accounts: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum AnomalyRec {
    PartlyActive(u32),
    NoEmail(u32),
    Conflict(u32),
    ExternalInInternalGroup(u32, u32),
}

/// The resolved identity graph. Immutable: a new harvest builds a new one.
pub struct Graph {
    strings: Interner,
    dbs: Vec<DbNode>,
    accounts: Vec<AccountNode>,
    groups: Vec<GroupNode>,
    workspaces: Vec<WorkspaceNode>,
    persons: Vec<PersonNode>,
    account_person: Vec<u32>,
    /// Nodes: accounts, then groups, then persons.
    net: Csr<(), (), petgraph::Directed, u32>,
    login_index: Vec<(Sym, u32)>,
    email_index: Vec<(Sym, u32)>,
    aliases: hashbrown::HashMap<String, u32>,
    alias_pairs: Vec<(String, String)>,
    next_seq: i64,
    links: Vec<Link>,
    person_links_off: Vec<u32>,
    conflicts: Vec<ConflictRec>,
    person_conflicts_off: Vec<u32>,
    person_conflicts: Vec<u32>,
    account_ws_off: Vec<u32>,
    account_ws: Vec<(u32, Access)>,
    group_ws_off: Vec<u32>,
    group_ws: Vec<(u32, Access)>,
    anomalies: Vec<AnomalyRec>,
    norm: normalize::Normalizer,
    build_phases: Vec<(&'static str, std::time::Duration)>,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Sizes of a graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphStats {
    pub persons: usize,
    pub accounts: usize,
    pub groups: usize,
    pub memberships: usize,
    pub workspaces: usize,
    pub conflicts: usize,
    /// Estimated heap bytes held by the graph.
    pub bytes: usize,
}

/// One database as the graph sees it.
#[derive(Debug, Clone, Copy)]
pub struct DatabaseInfo<'g> {
    pub id: &'g str,
    pub account_count: usize,
    pub group_count: usize,
    pub workspace_count: usize,
    pub security_mode: SecurityMode,
}

/// Which persons a listing wants.
#[derive(Debug, Clone, Default)]
pub struct PersonFilter {
    /// Persons with an account in this database.
    pub database: Option<String>,
    /// Persons with an account that is a member of this group: `(database, group id)`.
    pub group: Option<(String, String)>,
    /// `true`: persons with an active account (in `database` when given); `false`: persons with
    /// none.
    pub active: Option<bool>,
    pub has_conflicts: Option<bool>,
    /// Case-insensitive substring of the display name, a login or an email.
    pub search: Option<String>,
}

/// Something that looks wrong.
#[derive(Debug, Clone)]
pub enum Anomaly<'g> {
    /// Active in some databases and deactivated in others: the departing-employee trap.
    PartlyActive {
        person: PersonRef<'g>,
    },
    NoEmail {
        account: AccountRef<'g>,
    },
    Conflict(Conflict<'g>),
    /// An external account in a group whose members are mostly internal.
    ExternalInInternalGroup {
        account: AccountRef<'g>,
        group: GroupRef<'g>,
    },
}

impl Anomaly<'_> {
    pub fn kind(&self) -> &'static str {
        match self {
            Anomaly::PartlyActive { .. } => "PARTLY_ACTIVE",
            Anomaly::NoEmail { .. } => "NO_EMAIL",
            Anomaly::Conflict(_) => "CONFLICT",
            Anomaly::ExternalInInternalGroup { .. } => "EXTERNAL_IN_INTERNAL_GROUP",
        }
    }
}

/// What one account can reach: a group it is a member of, or a workspace with an access level.
#[derive(Debug, Clone)]
pub struct Grant<'g> {
    pub account: AccountRef<'g>,
    /// The group: for a group grant, the group itself; for a workspace grant, the group whose
    /// entry decided the access (none when the account's own entry or the default decided).
    pub group: Option<GroupRef<'g>>,
    pub workspace: Option<WorkspaceRef<'g>>,
    /// The workspace access level; `None` for a group grant (membership).
    pub access: Option<Access>,
    /// How a workspace's access was decided.
    pub via: Option<Via>,
}

/// How a workspace grant was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Explicit,
    Group,
    Default,
}

impl<'g> Grant<'g> {
    pub fn database(&self) -> &'g str {
        self.account.database()
    }

    /// The path from the account to what it reaches, e.g. `["account:acme/usr_1",
    /// "group:acme/grp_2", "workspace:acme/ws_3"]`.
    pub fn path(&self) -> Vec<String> {
        let db = self.database();
        let mut path = vec![format!("account:{db}/{}", self.account.user_id())];
        if let Some(g) = self.group {
            path.push(format!("group:{db}/{}", g.group_id()));
        }
        if let Some(w) = self.workspace {
            if self.via == Some(Via::Default) {
                path.push(format!("default:{}", w.default_security().as_str()));
            }
            path.push(format!("workspace:{db}/{}", w.workspace_id()));
        }
        path
    }
}

/// The evidence for links within one person.
#[derive(Debug, Clone)]
pub struct LinkEvidence<'g> {
    pub key: EvidenceKey,
    /// The normalized value the accounts share (empty for an override).
    pub value: String,
    pub accounts: Vec<AccountRef<'g>>,
}

/// A merge that was refused.
#[derive(Debug, Clone)]
pub struct Conflict<'g> {
    pub kind: ConflictKind,
    pub detail: String,
    pub accounts: Vec<AccountRef<'g>>,
}

macro_rules! handle {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub struct $name<'g>(&'g Graph, u32);

        impl<'g> $name<'g> {
            /// The node's index, stable within this graph.
            pub fn index(&self) -> u32 {
                self.1
            }

            /// The graph the handle points into.
            pub fn graph(&self) -> &'g Graph {
                self.0
            }
        }

        impl PartialEq for $name<'_> {
            fn eq(&self, other: &Self) -> bool {
                std::ptr::eq(self.0, other.0) && self.1 == other.1
            }
        }

        impl Eq for $name<'_> {}

        impl std::fmt::Debug for $name<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.1)
            }
        }
    };
}

handle!(
    /// A person: the accounts resolved to one human (or one shared identity).
    PersonRef
);
handle!(
    /// One account in one database.
    AccountRef
);
handle!(
    /// One group in one database.
    GroupRef
);
handle!(
    /// One workspace in one database.
    WorkspaceRef
);

impl Graph {
    fn str(&self, s: Sym) -> &str {
        self.strings.str(s)
    }

    fn opt(&self, s: Sym) -> Option<&str> {
        self.strings.get(s)
    }

    fn group_base(&self) -> usize {
        self.accounts.len()
    }

    fn person_base(&self) -> usize {
        self.accounts.len() + self.groups.len()
    }

    pub(crate) fn person_account_slice(&self, p: u32) -> &[u32] {
        self.net
            .neighbors_slice((self.person_base() + p as usize) as u32)
    }

    pub(crate) fn group_member_slice(&self, g: u32) -> &[u32] {
        self.net
            .neighbors_slice((self.group_base() + g as usize) as u32)
    }

    /// An account's groups (its neighbours but the last, which is its person).
    pub(crate) fn account_group_slice(&self, a: u32) -> &[u32] {
        let all = self.net.neighbors_slice((a as usize) as u32);
        &all[..all.len().saturating_sub(1)]
    }

    /// Every person, ordered by id as strings (`p10` before `p9`), the order the API's cursors
    /// compare in.
    pub fn persons(&self) -> impl ExactSizeIterator<Item = PersonRef<'_>> {
        (0..self.persons.len() as u32).map(move |i| PersonRef(self, i))
    }

    /// The person at an index.
    pub fn person_at(&self, index: u32) -> Option<PersonRef<'_>> {
        ((index as usize) < self.persons.len()).then_some(PersonRef(self, index))
    }

    pub fn account_at(&self, index: u32) -> Option<AccountRef<'_>> {
        ((index as usize) < self.accounts.len()).then_some(AccountRef(self, index))
    }

    pub fn group_at(&self, index: u32) -> Option<GroupRef<'_>> {
        ((index as usize) < self.groups.len()).then_some(GroupRef(self, index))
    }

    pub fn workspace_at(&self, index: u32) -> Option<WorkspaceRef<'_>> {
        ((index as usize) < self.workspaces.len()).then_some(WorkspaceRef(self, index))
    }

    /// A person by id; an id merged into another person still finds the survivor.
    pub fn person(&self, id: &str) -> Option<PersonRef<'_>> {
        if let Ok(i) = self.persons.binary_search_by(|p| self.str(p.id).cmp(id)) {
            return Some(PersonRef(self, i as u32));
        }
        self.aliases.get(id).map(|&p| PersonRef(self, p))
    }

    fn persons_by_key(&self, index: &[(Sym, u32)], key: Option<String>) -> Vec<PersonRef<'_>> {
        let Some(sym) = key.and_then(|k| self.strings.lookup(&k)) else {
            return Vec::new();
        };
        let start = index.partition_point(|(s, _)| *s < sym);
        index[start..]
            .iter()
            .take_while(|(s, _)| *s == sym)
            .map(|(_, p)| PersonRef(self, *p))
            .collect()
    }

    /// Persons holding this login, normalized as at resolution; several when different
    /// people hold it.
    pub fn person_by_login(&self, login: &str) -> Vec<PersonRef<'_>> {
        self.persons_by_key(&self.login_index, self.norm.login_key(login))
    }

    /// Persons with this email, normalized as at resolution (domain aliases applied).
    pub fn person_by_email(&self, email: &str) -> Vec<PersonRef<'_>> {
        self.persons_by_key(&self.email_index, self.norm.email_key(email))
    }

    /// An account by database and user id.
    pub fn account(&self, database: &str, user_id: &str) -> Option<AccountRef<'_>> {
        let db = self.db(database)?;
        let (lo, hi) = self.dbs[db].accounts;
        let slice = &self.accounts[lo as usize..hi as usize];
        slice
            .binary_search_by(|a| self.str(a.user_id).cmp(user_id))
            .ok()
            .map(|i| AccountRef(self, lo + i as u32))
    }

    /// A group by database and group id.
    pub fn group(&self, database: &str, group_id: &str) -> Option<GroupRef<'_>> {
        let db = self.db(database)?;
        let (lo, hi) = self.dbs[db].groups;
        let slice = &self.groups[lo as usize..hi as usize];
        slice
            .binary_search_by(|g| self.str(g.group_id).cmp(group_id))
            .ok()
            .map(|i| GroupRef(self, lo + i as u32))
    }

    /// A workspace by database and workspace id.
    pub fn workspace(&self, database: &str, workspace_id: &str) -> Option<WorkspaceRef<'_>> {
        let db = self.db(database)?;
        let (lo, hi) = self.dbs[db].workspaces;
        let slice = &self.workspaces[lo as usize..hi as usize];
        slice
            .binary_search_by(|w| self.str(w.workspace_id).cmp(workspace_id))
            .ok()
            .map(|i| WorkspaceRef(self, lo + i as u32))
    }

    fn db(&self, database: &str) -> Option<usize> {
        self.dbs
            .binary_search_by(|d| self.str(d.id).cmp(database))
            .ok()
    }

    /// Every database, sorted by id.
    pub fn databases(&self) -> impl Iterator<Item = DatabaseInfo<'_>> {
        self.dbs.iter().map(move |d| DatabaseInfo {
            id: self.str(d.id),
            account_count: (d.accounts.1 - d.accounts.0) as usize,
            group_count: (d.groups.1 - d.groups.0) as usize,
            workspace_count: (d.workspaces.1 - d.workspaces.0) as usize,
            security_mode: d.mode,
        })
    }

    /// Every account that is a member of the group.
    pub fn who_can_reach_group(&self, database: &str, group_id: &str) -> Vec<Grant<'_>> {
        let Some(g) = self.group(database, group_id) else {
            return Vec::new();
        };
        g.members()
            .map(|a| Grant {
                account: a,
                group: Some(g),
                workspace: None,
                access: None,
                via: None,
            })
            .collect()
    }

    /// Every account with access (other than `no_access`) to the workspace, and how.
    pub fn who_can_reach_workspace(&self, database: &str, workspace_id: &str) -> Vec<Grant<'_>> {
        let Some(w) = self.workspace(database, workspace_id) else {
            return Vec::new();
        };
        let d = &self.dbs[self.workspaces[w.1 as usize].db as usize];
        let mut out = Vec::new();
        for a in d.accounts.0..d.accounts.1 {
            if let Some(grant) = self.workspace_grant(a, w.1) {
                out.push(grant);
            }
        }
        out
    }

    /// The account's grant on one workspace, if it reaches it.
    fn workspace_grant(&self, a: u32, w: u32) -> Option<Grant<'_>> {
        let ws = &self.workspaces[w as usize];
        let mode = self.dbs[ws.db as usize].mode;
        let explicit = self
            .account_ws_entries(a)
            .iter()
            .find(|(x, _)| *x == w)
            .map(|(_, acc)| *acc);
        let mut levels = Vec::new();
        let mut deciders = Vec::new();
        for g in self.account_group_slice(a) {
            let gi = g - self.group_base() as u32;
            if let Some((_, acc)) = self.group_ws_entries(gi).iter().find(|(x, _)| *x == w) {
                levels.push(*acc);
                deciders.push(gi);
            }
        }
        let decision = effective_access(explicit, &levels, mode, ws.default);
        let (group, via) = match decision {
            Decision::Explicit(_) => (None, Via::Explicit),
            Decision::Groups(_, i) => (Some(GroupRef(self, deciders[i])), Via::Group),
            Decision::Default(_) => (None, Via::Default),
        };
        let access = decision.access();
        (access != Access::NoAccess).then_some(Grant {
            account: AccountRef(self, a),
            group,
            workspace: Some(WorkspaceRef(self, w)),
            access: Some(access),
            via: Some(via),
        })
    }

    fn account_ws_entries(&self, a: u32) -> &[(u32, Access)] {
        let (lo, hi) = (
            self.account_ws_off[a as usize] as usize,
            self.account_ws_off[a as usize + 1] as usize,
        );
        &self.account_ws[lo..hi]
    }

    fn group_ws_entries(&self, g: u32) -> &[(u32, Access)] {
        let (lo, hi) = (
            self.group_ws_off[g as usize] as usize,
            self.group_ws_off[g as usize + 1] as usize,
        );
        &self.group_ws[lo..hi]
    }

    /// What one account reaches: its groups, then its workspaces.
    fn account_reach<'g>(&'g self, a: u32, out: &mut Vec<Grant<'g>>) {
        let account = AccountRef(self, a);
        for g in account.groups() {
            out.push(Grant {
                account,
                group: Some(g),
                workspace: None,
                access: None,
                via: None,
            });
        }
        let node = &self.accounts[a as usize];
        let d = &self.dbs[node.db as usize];
        if d.workspaces.0 == d.workspaces.1 {
            return;
        }
        // Candidates: workspaces open by default, and those with an entry for the account or
        // one of its groups. Everything else is private with no entry: no access.
        let mut candidates: Vec<u32> = (d.workspaces.0..d.workspaces.1)
            .filter(|&w| self.workspaces[w as usize].default != DefaultSecurity::Private)
            .collect();
        candidates.extend(self.account_ws_entries(a).iter().map(|(w, _)| *w));
        for g in self.account_group_slice(a) {
            let gi = g - self.group_base() as u32;
            candidates.extend(self.group_ws_entries(gi).iter().map(|(w, _)| *w));
        }
        candidates.sort_unstable();
        candidates.dedup();
        for w in candidates {
            if let Some(grant) = self.workspace_grant(a, w) {
                out.push(grant);
            }
        }
    }

    /// Things that look wrong, in a stable order.
    pub fn anomalies(&self) -> Vec<Anomaly<'_>> {
        self.anomalies
            .iter()
            .map(|a| match *a {
                AnomalyRec::PartlyActive(p) => Anomaly::PartlyActive {
                    person: PersonRef(self, p),
                },
                AnomalyRec::NoEmail(a) => Anomaly::NoEmail {
                    account: AccountRef(self, a),
                },
                AnomalyRec::Conflict(c) => Anomaly::Conflict(self.conflict(c)),
                AnomalyRec::ExternalInInternalGroup(a, g) => Anomaly::ExternalInInternalGroup {
                    account: AccountRef(self, a),
                    group: GroupRef(self, g),
                },
            })
            .collect()
    }

    fn conflict(&self, c: u32) -> Conflict<'_> {
        let rec = &self.conflicts[c as usize];
        let accounts: Vec<AccountRef<'_>> =
            rec.accounts.iter().map(|&a| AccountRef(self, a)).collect();
        let names: Vec<String> = accounts
            .iter()
            .map(|a| format!("{}/{}", a.database(), a.user_id()))
            .collect();
        let value = self.opt(rec.value).unwrap_or("");
        let detail = match rec.kind {
            ConflictKind::LoginEmailMismatch => format!(
                "login {value:?} is held by accounts with different emails: {}",
                names.join(", ")
            ),
            ConflictKind::LoginNameMismatch => format!(
                "login {value:?} is held by accounts whose names disagree: {}",
                names.join(", ")
            ),
            ConflictKind::SharedEmail => format!(
                "email {value:?} is on accounts whose names disagree (a shared mailbox?): {}",
                names.join(", ")
            ),
            ConflictKind::AmbiguousLogin => format!(
                "login {value:?} matches accounts of several persons; not guessed: {}",
                names.join(", ")
            ),
            ConflictKind::AmbiguousEmail => format!(
                "email {value:?} matches accounts of several persons; not guessed: {}",
                names.join(", ")
            ),
            ConflictKind::SameDatabase => format!(
                "{value:?} would join two accounts of one database: {}",
                names.join(", ")
            ),
            ConflictKind::CannotLinkOverride => format!(
                "a cannot-link override keeps these accounts apart: {}",
                names.join(", ")
            ),
        };
        Conflict {
            kind: rec.kind,
            detail,
            accounts,
        }
    }

    /// The assignment of accounts to person ids, to persist for the next resolution.
    pub fn person_ids(&self) -> PersonIds {
        let by_account = (0..self.accounts.len() as u32)
            .map(|a| {
                let account = AccountRef(self, a);
                let p = self.account_person[a as usize];
                (
                    account.key(),
                    self.str(self.persons[p as usize].id).to_string(),
                )
            })
            .collect();
        PersonIds {
            by_account,
            aliases: self.alias_pairs.clone(),
            created: self
                .persons
                .iter()
                .map(|p| (self.str(p.id).to_string(), p.seq))
                .collect(),
            next_seq: self.next_seq,
        }
    }

    /// How long each phase of the build took (for profiling the resolver at scale).
    pub fn build_phases(&self) -> &[(&'static str, std::time::Duration)] {
        &self.build_phases
    }

    /// Sizes, and an estimate of the heap the graph holds.
    pub fn stats(&self) -> GraphStats {
        use std::mem::size_of;
        let bytes = self.strings.heap_bytes()
            + self.accounts.capacity() * size_of::<AccountNode>()
            + self.groups.capacity() * size_of::<GroupNode>()
            + self.workspaces.capacity() * size_of::<WorkspaceNode>()
            + self.persons.capacity() * size_of::<PersonNode>()
            + self.account_person.capacity() * 4
            + (self.net.edge_count() * 4 + self.net.node_count() * 8)
            + (self.login_index.capacity() + self.email_index.capacity()) * 8
            + self.links.capacity() * size_of::<Link>()
            + self.anomalies.capacity() * size_of::<AnomalyRec>()
            + (self.account_ws.capacity() + self.group_ws.capacity()) * 8
            + (self.account_ws_off.capacity() + self.group_ws_off.capacity()) * 4;
        GraphStats {
            persons: self.persons.len(),
            accounts: self.accounts.len(),
            groups: self.groups.len(),
            memberships: self
                .net
                .edge_count()
                .saturating_sub(2 * self.accounts.len())
                / 2,
            workspaces: self.workspaces.len(),
            conflicts: self.conflicts.len(),
            bytes,
        }
    }

    /// The persons of `members` (account indexes), ascending, each once, with whether one of its
    /// member accounts is active.
    fn member_persons(&self, members: &[u32]) -> Vec<(u32, bool)> {
        let n = self.persons.len();
        if members.len() < n / 64 {
            let mut persons: Vec<(u32, bool)> = members
                .iter()
                .map(|&a| {
                    (
                        self.account_person[a as usize],
                        self.accounts[a as usize].active,
                    )
                })
                .collect();
            persons.sort_unstable();
            persons.dedup_by(|later, kept| {
                let same = later.0 == kept.0;
                if same {
                    kept.1 |= later.1;
                }
                same
            });
            return persons;
        }
        // A large group (a firm's All Staff): two bitmaps over the persons, read in order, instead
        // of sorting tens of thousands of entries (most of such a listing's time when it sorted).
        let words = n.div_ceil(64);
        let mut member = vec![0u64; words];
        let mut active = vec![0u64; words];
        for &a in members {
            let p = self.account_person[a as usize] as usize;
            member[p / 64] |= 1 << (p % 64);
            if self.accounts[a as usize].active {
                active[p / 64] |= 1 << (p % 64);
            }
        }
        let mut persons = Vec::with_capacity(members.len());
        for (w, (&m, &act)) in member.iter().zip(&active).enumerate() {
            let mut bits = m;
            while bits != 0 {
                let b = bits.trailing_zeros();
                persons.push(((w * 64) as u32 + b, act >> b & 1 == 1));
                bits &= bits - 1;
            }
        }
        persons
    }

    /// Persons matching a filter, ordered by id.
    pub fn filter_persons(&self, f: &PersonFilter) -> Vec<PersonRef<'_>> {
        let db = match &f.database {
            Some(d) => match self.db(d) {
                Some(i) => Some(i as u16),
                None => return Vec::new(),
            },
            None => None,
        };
        // A group's persons, each with whether one of its member accounts is active. Found
        // through a member account, a person is known to have an account in the group's
        // database, and an active one there if that member is active: the checks below take
        // both from the member instead of walking every account of every member's person, which
        // made a large group (a firm's All Staff: 45,000 persons of 10 accounts each) cost
        // milliseconds.
        let (group_db, group_members) = match &f.group {
            Some((d, g)) => match self.group(d, g) {
                Some(g) => (
                    Some(self.groups[g.1 as usize].db),
                    Some(self.member_persons(self.group_member_slice(g.1))),
                ),
                None => return Vec::new(),
            },
            None => (None, None),
        };
        // What the member says holds only for the filter's own database.
        let from_member = db.is_some() && db == group_db;
        let search = f.search.as_deref().map(normalize::fold);
        let candidates: Box<dyn Iterator<Item = (u32, Option<bool>)>> = match group_members {
            Some(v) => Box::new(
                v.into_iter()
                    .map(move |(p, active)| (p, Some(active).filter(|_| from_member))),
            ),
            None => Box::new((0..self.persons.len() as u32).map(|p| (p, None))),
        };
        candidates
            .filter(|&(p, member_active)| {
                let p = PersonRef(self, p);
                if let Some(db) = db {
                    if member_active.is_none() && !p.account_nodes().any(|a| a.db == db) {
                        return false;
                    }
                }
                if let Some(active) = f.active {
                    let any_active = member_active == Some(true)
                        || p.account_nodes()
                            .filter(|a| db.is_none_or(|d| a.db == d))
                            .any(|a| a.active);
                    if any_active != active {
                        return false;
                    }
                }
                if let Some(want) = f.has_conflicts {
                    if p.has_conflicts() != want {
                        return false;
                    }
                }
                if let Some(s) = &search {
                    if !p.matches(s) {
                        return false;
                    }
                }
                true
            })
            .map(|(p, _)| PersonRef(self, p))
            .collect()
    }
}

impl<'g> PersonRef<'g> {
    pub fn id(&self) -> &'g str {
        self.0.str(self.0.persons[self.1 as usize].id)
    }

    pub fn display_name(&self) -> Option<&'g str> {
        self.0.opt(self.0.persons[self.1 as usize].display)
    }

    fn account_nodes(&self) -> impl Iterator<Item = &'g AccountNode> + 'g {
        let g = self.0;
        g.person_account_slice(self.1)
            .iter()
            .map(move |a| &g.accounts[*a as usize])
    }

    /// The normalized login names of the person's accounts.
    pub fn logins(&self) -> Vec<&'g str> {
        let mut v: Vec<&str> = self
            .account_nodes()
            .filter(|a| !a.login_key.is_none())
            .map(|a| self.0.str(a.login_key))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The normalized emails of the person's accounts.
    pub fn emails(&self) -> Vec<&'g str> {
        let mut v: Vec<&str> = self
            .account_nodes()
            .filter(|a| !a.email_key.is_none())
            .map(|a| self.0.str(a.email_key))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The person's accounts, ordered by database and user id.
    pub fn accounts(&self) -> impl Iterator<Item = AccountRef<'g>> + 'g {
        let g = self.0;
        g.person_account_slice(self.1)
            .iter()
            .map(move |a| AccountRef(g, *a))
    }

    /// Everything the person's accounts reach, each grant tagged with its account and path.
    /// Computed from iManage Work's own security only.
    pub fn reach(&self) -> Vec<Grant<'g>> {
        let mut out = Vec::new();
        for a in self.accounts() {
            self.0.account_reach(a.1, &mut out);
        }
        out
    }

    /// Why these accounts are one person.
    pub fn evidence(&self) -> Vec<LinkEvidence<'g>> {
        let g = self.0;
        let p = self.1 as usize;
        let links = &g.links[g.person_links_off[p] as usize..g.person_links_off[p + 1] as usize];
        let mut out: Vec<LinkEvidence<'g>> = Vec::new();
        let mut i = 0;
        while i < links.len() {
            let (kind, value) = (links[i].kind, links[i].value);
            let mut accounts: Vec<u32> = Vec::new();
            while i < links.len() && links[i].kind == kind && links[i].value == value {
                accounts.push(links[i].a);
                accounts.push(links[i].b);
                i += 1;
            }
            accounts.sort_unstable();
            accounts.dedup();
            out.push(LinkEvidence {
                key: kind,
                value: g.opt(value).unwrap_or("").to_string(),
                accounts: accounts.into_iter().map(|a| AccountRef(g, a)).collect(),
            });
        }
        out
    }

    /// Merges that were refused around this person.
    pub fn conflicts(&self) -> Vec<Conflict<'g>> {
        let g = self.0;
        let p = self.1 as usize;
        g.person_conflicts
            [g.person_conflicts_off[p] as usize..g.person_conflicts_off[p + 1] as usize]
            .iter()
            .map(|&c| g.conflict(c))
            .collect()
    }

    pub fn has_conflicts(&self) -> bool {
        let g = self.0;
        let p = self.1 as usize;
        g.person_conflicts_off[p] != g.person_conflicts_off[p + 1]
    }

    pub fn is_active_somewhere(&self) -> bool {
        self.account_nodes().any(|a| a.active)
    }

    fn matches(&self, folded_needle: &str) -> bool {
        if self
            .display_name()
            .is_some_and(|d| normalize::fold(d).contains(folded_needle))
        {
            return true;
        }
        self.account_nodes().any(|a| {
            [a.login_key, a.email_key]
                .iter()
                .any(|s| !s.is_none() && self.0.str(*s).contains(folded_needle))
        })
    }
}

impl<'g> AccountRef<'g> {
    fn node(&self) -> &'g AccountNode {
        &self.0.accounts[self.1 as usize]
    }

    pub fn key(&self) -> AccountKey {
        AccountKey::new(self.database(), self.user_id())
    }

    pub fn database(&self) -> &'g str {
        self.0.str(self.0.dbs[self.node().db as usize].id)
    }

    pub fn user_id(&self) -> &'g str {
        self.0.str(self.node().user_id)
    }

    pub fn login_name(&self) -> Option<&'g str> {
        self.0.opt(self.node().login)
    }

    pub fn email(&self) -> Option<&'g str> {
        self.0.opt(self.node().email)
    }

    pub fn first_name(&self) -> Option<&'g str> {
        self.0.opt(self.node().first)
    }

    pub fn last_name(&self) -> Option<&'g str> {
        self.0.opt(self.node().last)
    }

    pub fn display_name(&self) -> Option<&'g str> {
        self.0.opt(self.node().display)
    }

    pub fn active(&self) -> bool {
        self.node().active
    }

    pub fn user_type(&self) -> Option<&'g str> {
        self.0.opt(self.node().user_type)
    }

    pub fn is_external(&self) -> bool {
        self.node().external
    }

    /// The account's groups, ordered by group id.
    pub fn groups(&self) -> impl Iterator<Item = GroupRef<'g>> + 'g {
        let g = self.0;
        let base = g.group_base();
        g.account_group_slice(self.1)
            .iter()
            .map(move |n| GroupRef(g, *n - base as u32))
    }

    pub fn person(&self) -> PersonRef<'g> {
        PersonRef(self.0, self.0.account_person[self.1 as usize])
    }
}

impl<'g> GroupRef<'g> {
    fn node(&self) -> &'g GroupNode {
        &self.0.groups[self.1 as usize]
    }

    pub fn database(&self) -> &'g str {
        self.0.str(self.0.dbs[self.node().db as usize].id)
    }

    pub fn group_id(&self) -> &'g str {
        self.0.str(self.node().group_id)
    }

    pub fn name(&self) -> Option<&'g str> {
        self.0.opt(self.node().name)
    }

    /// The group's members, ordered by user id.
    pub fn members(&self) -> impl Iterator<Item = AccountRef<'g>> + 'g {
        let g = self.0;
        g.group_member_slice(self.1)
            .iter()
            .map(move |a| AccountRef(g, *a))
    }

    pub fn member_count(&self) -> usize {
        self.0.group_member_slice(self.1).len()
    }
}

impl<'g> WorkspaceRef<'g> {
    fn node(&self) -> &'g WorkspaceNode {
        &self.0.workspaces[self.1 as usize]
    }

    pub fn database(&self) -> &'g str {
        self.0.str(self.0.dbs[self.node().db as usize].id)
    }

    pub fn workspace_id(&self) -> &'g str {
        self.0.str(self.node().workspace_id)
    }

    pub fn name(&self) -> Option<&'g str> {
        self.0.opt(self.node().name)
    }

    pub fn default_security(&self) -> DefaultSecurity {
        self.node().default
    }
}

#[cfg(test)]
mod member_persons_tests {
    use super::*;
    use model::{Account, Group, Membership};
    use std::collections::BTreeMap;

    /// `people` persons, each with an account in three databases (inactive where `p % 7` is
    /// the database), and a group in `db0` of every `db0` account.
    fn firm(people: usize) -> Graph {
        let mut input = Input::default();
        for d in 0..3 {
            let database = format!("db{d}");
            input.groups.push(Group {
                database: database.clone(),
                group_id: "all".into(),
                ..Group::default()
            });
            for p in 0..people {
                let user_id = format!("u{p:04}");
                input.accounts.push(Account {
                    database: database.clone(),
                    user_id: user_id.clone(),
                    login_name: Some(format!("user{p}")),
                    email: Some(format!("user{p}@acme.com")),
                    active: p % 7 != d,
                    ..Account::default()
                });
                if d == 0 {
                    input.memberships.push(Membership {
                        database: database.clone(),
                        group_id: "all".into(),
                        user_id,
                    });
                }
            }
        }
        resolve(input, &ResolveConfig::default())
    }

    /// What `member_persons` must give, by the plainest means.
    fn reference(g: &Graph, members: &[u32]) -> Vec<(u32, bool)> {
        let mut persons: BTreeMap<u32, bool> = BTreeMap::new();
        for &a in members {
            *persons.entry(g.account_person[a as usize]).or_default() |=
                g.accounts[a as usize].active;
        }
        persons.into_iter().collect()
    }

    #[test]
    fn member_persons_are_ascending_once_each_and_active_if_any_member_is() {
        let g = firm(640);
        assert_eq!(g.persons.len(), 640);
        // Every account, in reverse: each person three times, some of them inactive in one
        // database. Large enough for the bitmaps.
        let all: Vec<u32> = (0..g.accounts.len() as u32).rev().collect();
        assert!(all.len() >= g.persons.len() / 64);
        let got = g.member_persons(&all);
        assert_eq!(got, reference(&g, &all));
        assert_eq!(got.len(), 640);
        assert!(got.iter().all(|&(_, active)| active));
        // The group of every db0 account: once each, inactive where db0's account is.
        let group = g.group("db0", "all").unwrap();
        let db0 = g.group_member_slice(group.1).to_vec();
        assert!(db0.len() >= g.persons.len() / 64);
        let got = g.member_persons(&db0);
        assert_eq!(got, reference(&g, &db0));
        assert_eq!(
            got.iter().filter(|&&(_, active)| !active).count(),
            640usize.div_ceil(7)
        );
        // A few accounts: the sort. Person 0 (inactive in db0) twice, once active; person 7
        // (inactive in db0) once, inactive; one more person.
        let person = |p: usize| g.person_by_login(&format!("user{p}"))[0].1;
        let accounts_of = |p: usize| g.person_account_slice(person(p)).to_vec();
        let mut few = accounts_of(0);
        few.truncate(2);
        few.push(accounts_of(7)[0]);
        few.push(accounts_of(300)[1]);
        assert!(few.len() < g.persons.len() / 64);
        let got = g.member_persons(&few);
        assert_eq!(got, reference(&g, &few));
        assert_eq!(got.len(), 3);
        assert!(got.contains(&(person(7), false)), "{got:?}");
        assert!(got.contains(&(person(0), true)), "{got:?}");
    }
}
