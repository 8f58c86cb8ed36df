//! The synthetic firm: databases full of users and groups, and the ground truth of who is who.
//!
//! [`generate`] is a pure function of its [`FirmSpec`]: the same spec gives byte-identical
//! databases and truth. People have accounts in one or several databases under different ids,
//! and the data carries the mess of real directories (login forms, email case and alias domains,
//! missing emails, names with and without diacritics, one login used by two different people,
//! shared mailboxes, leavers, external users, groups of every size), each at a small rate, each
//! recorded in [`Truth::mess`]. The mess stays resolvable by sound rules: within the firm a
//! normalized login belongs to one person except for the recorded shared logins (whose people
//! always carry different emails and first names), and a normalized email belongs to one person
//! except for the recorded shared mailboxes (whose people have different names).

use crate::names::{self, fold};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// The firm's primary email domain.
pub const PRIMARY_EMAIL_DOMAIN: &str = "acme.com";
/// The firm's second email domain, used for the same people in some databases.
pub const ALIAS_EMAIL_DOMAIN: &str = "acme-law.com";
/// NetBIOS domains that appear in `DOMAIN\login` login names.
pub const LOGIN_DOMAINS: &[&str] = &["ACME", "ACMELAW"];

/// What firm to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirmSpec {
    /// The same seed (with the same spec) gives the same firm, byte for byte.
    pub seed: u64,
    /// Number of databases (customer ids), named after offices: `acme-london`, `acme-newyork`, ...
    pub databases: usize,
    /// Number of people; ignored when `users_per_database` is set.
    pub people: usize,
    /// When set, every database gets exactly this many user accounts (people are created as needed).
    pub users_per_database: Option<usize>,
    /// Groups per database; None = a sensible default scaled to size (e.g. 300 for 20,000 users).
    pub groups_per_database: Option<usize>,
}

impl Default for FirmSpec {
    fn default() -> Self {
        Self {
            seed: 1,
            databases: 4,
            people: 2000,
            users_per_database: None,
            groups_per_database: None,
        }
    }
}

/// One user account in one database, with the fields of the API's user object (group
/// memberships live in [`SimGroup::members`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimUser {
    /// The user id in its database (`usr_...`); different for the same person in each database.
    pub id: String,
    /// The login, in whatever form this database keeps it (`jdoe`, `ACME\\jdoe`, ...).
    pub login_name: String,
    /// The email, if the account has one.
    pub email: Option<String>,
    /// Given name, with or without diacritics.
    pub first_name: String,
    /// Family name, with or without diacritics.
    pub last_name: String,
    /// `First Last`, sometimes `Last, First`, sometimes none.
    pub display_name: Option<String>,
    /// False when the account is deactivated.
    pub active: bool,
    /// `full` or `external`.
    pub user_type: String,
    /// The customer id of the person's home database.
    pub default_database: Option<String>,
    /// Office telephone number.
    pub phone: Option<String>,
    /// Practice or business-services department.
    pub department: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// ISO 8601, UTC (`2016-03-14T09:21:07Z`).
    pub created_date: String,
}

/// One group in one database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimGroup {
    /// The group id in its database (`grp_...`).
    pub id: String,
    /// The group's name, unique in its database.
    pub name: String,
    /// User ids of the members.
    pub members: BTreeSet<String>,
}

/// An access level on a workspace, lowest first, so that `Ord` orders by privilege.
///
/// The simulator keeps its own copy of these small types rather than sharing the `model` crate's:
/// it shares no code with what it tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// `no_access`: an explicit denial.
    NoAccess,
    /// `read`.
    Read,
    /// `read_write`.
    ReadWrite,
    /// `full_access`.
    FullAccess,
}

impl Access {
    /// The API's name for the level (`read_write`).
    pub fn as_str(self) -> &'static str {
        match self {
            Access::NoAccess => "no_access",
            Access::Read => "read",
            Access::ReadWrite => "read_write",
            Access::FullAccess => "full_access",
        }
    }
}

/// What a workspace grants every account of its database when no entry decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultSecurity {
    /// Nothing: only the entries give access.
    Private,
    /// `read` for everyone.
    View,
    /// `read_write` for everyone.
    Public,
}

impl DefaultSecurity {
    /// The API's name (`private`, `view`, `public`).
    pub fn as_str(self) -> &'static str {
        match self {
            DefaultSecurity::Private => "private",
            DefaultSecurity::View => "view",
            DefaultSecurity::Public => "public",
        }
    }

    /// The access the default gives an account that no entry decides for.
    pub fn access(self) -> Access {
        match self {
            DefaultSecurity::Private => Access::NoAccess,
            DefaultSecurity::View => Access::Read,
            DefaultSecurity::Public => Access::ReadWrite,
        }
    }
}

/// How a database combines the entries of an account's several groups on one workspace.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum SecurityMode {
    /// The highest level among the account's groups wins (iManage's default).
    #[default]
    Optimistic,
    /// The lowest level wins, so one `no_access` group entry denies.
    Pessimistic,
}

/// One entry of a workspace's security: a user or a group of the workspace's database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityEntry {
    /// A user id when `is_group` is false, a group id otherwise.
    pub id: String,
    /// Whether `id` names a group.
    pub is_group: bool,
    /// The level granted (or denied, for `no_access`).
    pub access: Access,
}

/// A workspace with its security.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimWorkspace {
    /// The workspace id, `LIBRARY!NUMBER` as iManage writes it (`acme-london!10234`).
    pub id: String,
    /// The workspace's name (`Globex - Acquisition of Initech (10234)`).
    pub name: String,
    /// What everyone in the database gets when no entry decides.
    pub default_security: DefaultSecurity,
    /// The entries, groups first, each ordered by id; a principal appears at most once.
    pub security: Vec<SecurityEntry>,
}

/// One database (`customer_id`, a library in the v2 API) with its users, groups and workspaces,
/// keyed by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimDatabase {
    /// The database's `customer_id` (`acme-london`).
    pub customer_id: String,
    /// Users by id.
    pub users: BTreeMap<String, SimUser>,
    /// Groups by id.
    pub groups: BTreeMap<String, SimGroup>,
    /// Workspaces by id (absent in hand-built firms that have none).
    #[serde(default)]
    pub workspaces: BTreeMap<String, SimWorkspace>,
}

/// Where the generated firm is messy, as a resolver's tests want to know it.
///
/// Accounts are written `CUSTOMER_ID/USER_ID`, groups `CUSTOMER_ID/GROUP_ID`, people by their
/// person key. Lists are sorted. It describes the firm as generated; [`crate::SimHandle::truth`]
/// drops the accounts that have been removed since.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Mess {
    /// Accounts whose login is not the plain lowercase one: `JDoe`, `ACME\jdoe`, `jdoe@acme.com`.
    pub login_variants: Vec<String>,
    /// Accounts whose email differs from the person's usual one in letter case only.
    pub email_case_variants: Vec<String>,
    /// Accounts whose email uses the firm's alias domain (`acme-law.com`).
    pub alias_domain_emails: Vec<String>,
    /// Accounts without an email.
    pub missing_emails: Vec<String>,
    /// Accounts whose names are spelled without the diacritics the person's name has.
    pub diacritic_variants: Vec<String>,
    /// Plain logins used by different people in different databases: login -> person keys.
    pub shared_logins: BTreeMap<String, Vec<String>>,
    /// Email addresses on accounts of different people: email -> accounts.
    pub shared_mailboxes: BTreeMap<String, Vec<String>>,
    /// People deactivated in some databases and active in others.
    pub leavers: Vec<String>,
    /// External people (`user_type` `external`).
    pub externals: Vec<String>,
    /// External accounts that are members of internal groups.
    pub externals_in_internal_groups: Vec<String>,
    /// Groups without members.
    pub empty_groups: Vec<String>,
}

/// The ground truth: which accounts belong to the same person.
///
/// Serializes as `{"databases": [customer_id, ...], "accounts": {"CUSTOMER_ID/USER_ID":
/// "PERSON_KEY", ...}, ...}` (the `--truth FILE` format of CONTRACTS.md, with more keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truth {
    /// Customer ids of every database, in order.
    pub databases: Vec<String>,
    /// `CUSTOMER_ID/USER_ID` -> person key, for every account the simulator made up itself.
    pub accounts: BTreeMap<String, String>,
    /// Email domains that are one firm's (e.g. [["acme.com","acme-law.com"]]), for the resolver's alias config.
    #[serde(default)]
    pub email_domain_aliases: Vec<Vec<String>>,
    /// NetBIOS domains used in DOMAIN\login forms
    #[serde(default)]
    pub login_domains: Vec<String>,
    /// Where the firm is messy.
    #[serde(default)]
    pub mess: Mess,
    /// The security mode of every database (a database not listed is optimistic).
    #[serde(default)]
    pub security_modes: BTreeMap<String, SecurityMode>,
    /// The effective access of every account to every workspace it can reach, by the
    /// documented rule ([`crate::security::effective_access`]): `CUSTOMER_ID/USER_ID` ->
    /// workspace id -> level. Only levels above `no_access` are listed. Filled by
    /// [`crate::SimHandle::truth`] (so `/_sim/truth` and `--truth FILE`) from the state as it
    /// is; empty in a freshly [`generate`]d firm (see [`Firm::access_truth`]).
    #[serde(default)]
    pub workspace_access: BTreeMap<String, BTreeMap<String, Access>>,
}

impl Truth {
    /// The account key used in [`Truth::accounts`]: `CUSTOMER_ID/USER_ID`.
    pub fn account_key(customer_id: &str, user_id: &str) -> String {
        format!("{customer_id}/{user_id}")
    }

    /// The effective access of an account to a workspace by the documented rule; `None` when
    /// it has none (the truth lists only levels above `no_access`).
    pub fn access_of(
        &self,
        customer_id: &str,
        user_id: &str,
        workspace_id: &str,
    ) -> Option<Access> {
        self.workspace_access
            .get(&Self::account_key(customer_id, user_id))?
            .get(workspace_id)
            .copied()
    }

    /// The security mode of a database (optimistic unless the truth says otherwise).
    pub fn security_mode(&self, customer_id: &str) -> SecurityMode {
        self.security_modes
            .get(customer_id)
            .copied()
            .unwrap_or_default()
    }

    /// The person an account belongs to, if the simulator knows it.
    pub fn person_of(&self, customer_id: &str, user_id: &str) -> Option<&str> {
        self.accounts
            .get(&Self::account_key(customer_id, user_id))
            .map(String::as_str)
    }

    /// Number of distinct people with at least one account.
    pub fn people(&self) -> usize {
        self.accounts.values().collect::<HashSet<_>>().len()
    }

    /// Writes the truth as pretty JSON (the `--truth FILE` of `idgraph sim`).
    pub fn write_json(&self, path: &std::path::Path) -> Result<(), crate::Error> {
        let bytes = serde_json::to_vec_pretty(self)?;
        std::fs::write(path, bytes)?;
        Ok(())
    }

    /// Reads a truth file written by [`Truth::write_json`].
    pub fn read_json(path: &std::path::Path) -> Result<Self, crate::Error> {
        let bytes = std::fs::read(path)?;
        Ok(serde_json::from_slice(&bytes)?)
    }
}

/// A generated firm: its databases and the truth about them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firm {
    /// The databases, in order.
    pub databases: Vec<SimDatabase>,
    /// Who is who. [`generate`] leaves `workspace_access` empty; see [`Firm::access_truth`].
    pub truth: Truth,
}

impl Firm {
    /// The effective access of every account to every workspace it can reach, by the
    /// documented rule and the truth's security modes (the `workspace_access` of the truth).
    pub fn access_truth(&self) -> BTreeMap<String, BTreeMap<String, Access>> {
        crate::security::access_truth(&self.databases, &self.truth.security_modes)
    }
}

/// The customer id of the `index`-th database: `acme-london`, `acme-newyork`, ..., then
/// `acme-db41`, ... past the list of offices.
pub fn customer_id(index: usize) -> String {
    match names::OFFICES.get(index) {
        Some((slug, _)) => format!("acme-{slug}"),
        None => format!("acme-db{}", index + 1),
    }
}

fn office_name(index: usize) -> String {
    match names::OFFICES.get(index) {
        Some((_, name)) => (*name).to_string(),
        None => format!("Office {}", index + 1),
    }
}

/// Groups per database when the spec does not say: 300 for 20,000 users, at least 40 (room for
/// the standing groups and some matter teams), at most 1000.
pub fn default_groups_per_database(users: usize) -> usize {
    (users.saturating_mul(3) / 200).clamp(40, 1000)
}

/// Stream ids for [`Rng::stream`], one per part of the generator.
mod streams {
    pub const PEOPLE: u64 = 1;
    pub const SPECIAL: u64 = 2;
    pub const ACCOUNTS: u64 = 3;
    pub const GROUPS: u64 = 4;
    pub const IDS: u64 = 5;
    pub const WORKSPACES: u64 = 6;
}

/// Alphabet of generated ids: lowercase letters and digits without look-alikes.
const ID_ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A random-looking id such as `usr_k3v9x2m7qa`.
pub(crate) fn random_id(rng: &mut Rng, prefix: &str) -> String {
    let mut bits = rng.next_u64();
    let mut id = String::with_capacity(prefix.len() + 10);
    id.push_str(prefix);
    for _ in 0..10 {
        id.push(char::from(ID_ALPHABET[(bits & 31) as usize]));
        bits >>= 5;
    }
    id
}

/// Formats Unix seconds as ISO 8601 UTC (`2016-03-14T09:21:07Z`).
pub(crate) fn iso8601(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// 2008-01-01 and 2025-01-01, the range of generated creation dates.
const CREATED_FROM: i64 = 1_199_145_600;
const CREATED_TO: i64 = 1_735_689_600;

pub(crate) fn random_created_date(rng: &mut Rng) -> String {
    let span = (CREATED_TO - CREATED_FROM) as usize;
    iso8601(CREATED_FROM + rng.below(span) as i64)
}

/// The relative size of each office: London is the largest, later offices smaller.
fn office_weights(databases: usize) -> Vec<f64> {
    (0..databases)
        .map(|i| 1.0 / (1.0 + i as f64 * 0.35))
        .collect()
}

/// One person of the firm while it is being generated.
struct Person {
    key: String,
    first: &'static str,
    last: &'static str,
    /// Index into [`names::CLIENTS`] for an external person.
    client: Option<usize>,
    /// Databases with an account; the first is the home office.
    dbs: Vec<usize>,
    department: &'static str,
    title: &'static str,
    role: Option<&'static str>,
    /// The plain login (`jdoe`), or the email for an external person.
    login: String,
    /// The usual email, lowercase.
    email: String,
    shared_mailbox: Option<String>,
    /// One of a pair sharing a login: its email is always present and never shared.
    shares_login: bool,
    /// Per entry of `dbs`: deactivated there.
    inactive: Vec<bool>,
    /// Per entry of `dbs`: names spelled without diacritics there.
    folded: Vec<bool>,
}

impl Person {
    fn is_internal(&self) -> bool {
        self.client.is_none()
    }

    fn is_ordinary(&self) -> bool {
        self.client.is_none() && !self.shares_login && self.shared_mailbox.is_none()
    }

    fn has_diacritics(&self) -> bool {
        !self.first.is_ascii() || !self.last.is_ascii()
    }
}

/// How many databases a new person has accounts in: most have one to three.
fn database_count(rng: &mut Rng, external: bool, databases: usize) -> usize {
    let k = if external {
        if rng.chance(0.2) {
            2
        } else {
            1
        }
    } else {
        let u = rng.unit();
        if u < 0.55 {
            1
        } else if u < 0.82 {
            2
        } else if u < 0.94 {
            3
        } else {
            rng.range(4, 6)
        }
    };
    k.clamp(1, databases.max(1))
}

/// `k` distinct indices drawn by weight without replacement.
fn weighted_distinct(rng: &mut Rng, weights: &[f64], k: usize) -> Vec<usize> {
    let mut w = weights.to_vec();
    let mut out = Vec::with_capacity(k);
    while out.len() < k && w.iter().any(|x| *x > 0.0) {
        let i = rng.weighted(&w);
        if let Some(slot) = w.get_mut(i) {
            *slot = 0.0;
        }
        out.push(i);
    }
    out
}

pub(crate) fn weighted_str(rng: &mut Rng, items: &[(&'static str, f64)]) -> &'static str {
    let weights: Vec<f64> = items.iter().map(|(_, w)| *w).collect();
    items.get(rng.weighted(&weights)).map_or("", |(s, _)| s)
}

pub(crate) fn random_title(rng: &mut Rng) -> (&'static str, Option<&'static str>) {
    let weights: Vec<f64> = names::TITLES.iter().map(|(_, w, _)| *w).collect();
    names::TITLES
        .get(rng.weighted(&weights))
        .map_or(("Associate", None), |(t, _, role)| (*t, *role))
}

pub(crate) fn random_name(rng: &mut Rng) -> (&'static str, &'static str) {
    let first = rng.pick(names::FIRST_NAMES).copied().unwrap_or("Alex");
    let last = rng.pick(names::LAST_NAMES).copied().unwrap_or("Smith");
    (first, last)
}

fn new_person(rng: &mut Rng, index: usize, dbs: Vec<usize>, external: bool) -> Person {
    let (first, last) = random_name(rng);
    let client = external.then(|| rng.below(names::CLIENTS.len()));
    let (department, title, role) = if external {
        ("", "", None)
    } else {
        let (title, role) = random_title(rng);
        (weighted_str(rng, names::DEPARTMENTS), title, role)
    };
    let n = dbs.len();
    Person {
        key: format!("p{index:06}"),
        first,
        last,
        client,
        dbs,
        department,
        title,
        role,
        login: String::new(),
        email: String::new(),
        shared_mailbox: None,
        shares_login: false,
        inactive: vec![false; n],
        folded: vec![false; n],
    }
}

/// Pass 1: people and the databases they have accounts in.
fn people(spec: &FirmSpec, rng: &mut Rng) -> Vec<Person> {
    let n_db = spec.databases;
    if n_db == 0 {
        return Vec::new();
    }
    let weights = office_weights(n_db);
    let mut people = Vec::new();
    match spec.users_per_database {
        None => {
            for i in 0..spec.people {
                let external = rng.chance(0.03);
                let k = database_count(rng, external, n_db);
                let dbs = weighted_distinct(rng, &weights, k);
                people.push(new_person(rng, i, dbs, external));
            }
        }
        Some(per_db) => {
            // Fill every database to exactly `per_db` accounts: each new person takes a seat in
            // k databases that still have room, drawn by the room they have left, so that the
            // databases fill evenly and overlap as they would in a real firm.
            let mut room = vec![per_db; n_db];
            let mut i = 0;
            while room.iter().any(|r| *r > 0) {
                let external = rng.chance(0.03);
                let k = database_count(rng, external, n_db);
                let w: Vec<f64> = room.iter().map(|r| *r as f64).collect();
                let dbs = weighted_distinct(rng, &w, k);
                for d in &dbs {
                    if let Some(r) = room.get_mut(*d) {
                        *r -= 1;
                    }
                }
                people.push(new_person(rng, i, dbs, external));
                i += 1;
            }
        }
    }
    people
}

/// Pass 2: who carries which kind of mess.
fn assign_mess(people: &mut [Person], n_db: usize, rng: &mut Rng) {
    let n = people.len();
    if n == 0 {
        return;
    }

    // External users: about 3% already; make sure there is at least one in a firm of any size.
    if n >= 10 && !people.iter().any(|p| p.client.is_some()) {
        let i = rng.below(n);
        let p = &mut people[i];
        p.client = Some(rng.below(names::CLIENTS.len()));
        p.department = "";
        p.title = "";
        p.role = None;
    }

    // Two different people with one login, in disjoint sets of databases: John Smith (jsmith)
    // in London, Jane Smith (jsmith) in New York.
    if n_db >= 2 {
        let target = (n / 500).max(1);
        let mut made = 0;
        let mut attempts = 0;
        while made < target && attempts < target * 50 {
            attempts += 1;
            let a = rng.below(n);
            if !people[a].is_ordinary() || people[a].dbs.len() >= n_db {
                continue;
            }
            let a_first = people[a].first;
            let a_initial = names::slug(a_first).chars().next();
            let a_slug = names::slug(a_first);
            let candidates: Vec<&'static str> = names::FIRST_NAMES
                .iter()
                .copied()
                .filter(|f| {
                    let s = names::slug(f);
                    s.chars().next() == a_initial
                        && !s.starts_with(&a_slug)
                        && !a_slug.starts_with(&s)
                })
                .collect();
            let Some(&b_first) = rng.pick(&candidates) else {
                continue;
            };
            let mut found = None;
            for _ in 0..200 {
                let b = rng.below(n);
                if b != a
                    && people[b].is_ordinary()
                    && people[b].dbs.iter().all(|d| !people[a].dbs.contains(d))
                {
                    found = Some(b);
                    break;
                }
            }
            let Some(b) = found else { continue };
            let last = people[a].last;
            people[b].first = b_first;
            people[b].last = last;
            people[a].shares_login = true;
            people[b].shares_login = true;
            made += 1;
        }
    }

    // Shared mailboxes: one address on the accounts of two or three people with different names.
    if n >= 10 {
        let target = (n / 400).max(1);
        let mut used = HashSet::new();
        for m in 0..target {
            let size = rng.range(2, 3);
            let mut chosen: Vec<usize> = Vec::new();
            for _ in 0..size * 40 {
                if chosen.len() == size {
                    break;
                }
                let i = rng.below(n);
                let p = &people[i];
                let differs = chosen.iter().all(|&j| {
                    let q = &people[j];
                    names::slug(q.first) != names::slug(p.first)
                        && names::slug(q.last) != names::slug(p.last)
                });
                if p.is_ordinary() && !chosen.contains(&i) && differs {
                    chosen.push(i);
                }
            }
            if chosen.len() < 2 {
                continue;
            }
            let base = names::SHARED_MAILBOXES[m % names::SHARED_MAILBOXES.len()];
            let home = people[chosen[0]].dbs.first().copied().unwrap_or(0);
            let mut local = if m < names::SHARED_MAILBOXES.len() {
                base.to_string()
            } else {
                format!("{}.{base}", names::slug(&office_name(home)))
            };
            let mut k = 2;
            while !used.insert(local.clone()) {
                local = format!("{base}{k}");
                k += 1;
            }
            let address = format!("{local}@{PRIMARY_EMAIL_DOMAIN}");
            for i in chosen {
                people[i].shared_mailbox = Some(address.clone());
            }
        }
    }

    // Leavers: deactivated in some of their databases, still active in others.
    let multi: Vec<usize> = (0..n)
        .filter(|&i| people[i].is_internal() && people[i].dbs.len() >= 2)
        .collect();
    let mut any_leaver = false;
    for &i in &multi {
        if rng.chance(0.04) {
            make_leaver(&mut people[i], rng);
            any_leaver = true;
        }
    }
    if !any_leaver {
        if let Some(&i) = rng.pick(&multi) {
            make_leaver(&mut people[i], rng);
        }
    }
    // A few people are deactivated everywhere (they have left; nobody deleted them).
    for p in people.iter_mut() {
        if p.dbs.len() == 1 && rng.chance(0.02) {
            p.inactive[0] = true;
        }
    }

    // Names spelled without diacritics in some databases (José in London, Jose in Paris).
    let mut any_folded = false;
    for p in people.iter_mut() {
        if p.is_ordinary() && p.dbs.len() >= 2 && p.has_diacritics() {
            for slot in p.folded.iter_mut().skip(1) {
                if rng.chance(0.25) {
                    *slot = true;
                    any_folded = true;
                }
            }
        }
    }
    if !any_folded {
        let ordinary_multi: Vec<usize> = multi
            .iter()
            .copied()
            .filter(|&i| people[i].is_ordinary())
            .collect();
        if let Some(&i) = rng.pick(&ordinary_multi) {
            let accented: Vec<&'static str> = names::FIRST_NAMES
                .iter()
                .copied()
                .filter(|f| !f.is_ascii())
                .collect();
            if let Some(&first) = rng.pick(&accented) {
                people[i].first = first;
                people[i].folded[1] = true;
            }
        }
    }
}

fn make_leaver(p: &mut Person, rng: &mut Rng) {
    let k = p.dbs.len();
    // Deactivated in a non-empty proper subset of the databases.
    let off = rng.range(1, k - 1);
    for i in rng.sample(k, off) {
        p.inactive[i] = true;
    }
}

fn unique(taken: &mut HashSet<String>, base: &str, make: impl Fn(&str, usize) -> String) -> String {
    if taken.insert(base.to_string()) {
        return base.to_string();
    }
    let mut k = 2;
    loop {
        let candidate = make(base, k);
        if taken.insert(candidate.clone()) {
            return candidate;
        }
        k += 1;
    }
}

/// Pass 3: logins and emails, unique in the firm except where the mess says otherwise.
fn assign_logins(people: &mut [Person]) -> BTreeMap<String, Vec<String>> {
    let mut logins: HashSet<String> = HashSet::new();
    let mut emails: HashSet<String> = HashSet::new();
    for p in people.iter() {
        if let Some(m) = &p.shared_mailbox {
            emails.insert(m.clone());
        }
    }
    let mut shared_logins: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let suffix = |b: &str, k: usize| format!("{b}{k}");

    // Pairs sharing a login first: both take one login, deduplicated against other pairs only.
    let mut pairs: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, p) in people.iter().enumerate() {
        if p.shares_login {
            let initial: String = names::slug(p.first).chars().take(1).collect();
            pairs
                .entry((initial, names::slug(p.last)))
                .or_default()
                .push(i);
        }
    }
    for members in pairs.values() {
        // Two pairs can share initial and last name; split them into pairs again so that each
        // login is shared by exactly two people with disjoint databases and different first
        // names.
        let mut rest: Vec<usize> = members.clone();
        while rest.len() >= 2 {
            let a = rest.remove(0);
            let pos = rest.iter().position(|&b| {
                people[b].dbs.iter().all(|d| !people[a].dbs.contains(d))
                    && names::slug(people[b].first) != names::slug(people[a].first)
            });
            let Some(pos) = pos else {
                people[a].shares_login = false;
                continue;
            };
            let b = rest.remove(pos);
            let login = unique(
                &mut logins,
                &names::login_base(people[a].first, people[a].last),
                suffix,
            );
            people[a].login = login.clone();
            people[b].login = login.clone();
            shared_logins.insert(login, vec![people[a].key.clone(), people[b].key.clone()]);
        }
        for i in rest {
            people[i].shares_login = false;
        }
    }

    for p in people.iter_mut() {
        match p.client {
            Some(c) => {
                let domain = names::CLIENTS.get(c).map_or("client.com", |(_, d)| *d);
                let local = names::email_local(p.first, p.last);
                let email = unique(&mut emails, &format!("{local}@{domain}"), |_, k| {
                    format!("{local}{k}@{domain}")
                });
                logins.insert(email.clone());
                p.login = email.clone();
                p.email = email;
            }
            None => {
                if p.login.is_empty() {
                    p.login = unique(&mut logins, &names::login_base(p.first, p.last), suffix);
                }
                let local = names::email_local(p.first, p.last);
                p.email = unique(
                    &mut emails,
                    &format!("{local}@{PRIMARY_EMAIL_DOMAIN}"),
                    |_, k| format!("{local}{k}@{PRIMARY_EMAIL_DOMAIN}"),
                );
            }
        }
    }
    shared_logins
}

/// Bookkeeping of one generated account, for the passes after it is made.
struct Made {
    db: usize,
    id: String,
    person: usize,
}

/// Pass 4: the accounts.
fn accounts(
    people: &[Person],
    databases: &mut [SimDatabase],
    truth: &mut Truth,
    rng: &mut Rng,
    ids: &mut Rng,
) -> Vec<Made> {
    let mut made = Vec::new();
    let mut taken_ids: Vec<HashSet<String>> = vec![HashSet::new(); databases.len()];
    for (pi, p) in people.iter().enumerate() {
        for (slot, &d) in p.dbs.iter().enumerate() {
            let Some(db) = databases.get_mut(d) else {
                continue;
            };
            let id = loop {
                let id = random_id(ids, "usr_");
                if taken_ids[d].insert(id.clone()) {
                    break id;
                }
            };
            let key = Truth::account_key(&db.customer_id, &id);
            let mess = &mut truth.mess;

            let login_name = if p.is_internal() {
                let u = rng.unit();
                if u < 0.82 {
                    p.login.clone()
                } else {
                    mess.login_variants.push(key.clone());
                    if u < 0.88 {
                        names::capitalised_login(&p.login, p.last)
                    } else if u < 0.94 {
                        format!("{}\\{}", LOGIN_DOMAINS[d % LOGIN_DOMAINS.len()], p.login)
                    } else {
                        format!("{}@{PRIMARY_EMAIL_DOMAIN}", p.login)
                    }
                }
            } else {
                p.login.clone()
            };

            let email = if let Some(shared) = &p.shared_mailbox {
                mess.shared_mailboxes
                    .entry(shared.clone())
                    .or_default()
                    .push(key.clone());
                Some(shared.clone())
            } else if !p.is_internal() || p.shares_login || !rng.chance(0.10) {
                let mut email = p.email.clone();
                if p.is_internal() && rng.chance(0.10) {
                    email = email.replace(
                        &format!("@{PRIMARY_EMAIL_DOMAIN}"),
                        &format!("@{ALIAS_EMAIL_DOMAIN}"),
                    );
                    mess.alias_domain_emails.push(key.clone());
                }
                if rng.chance(0.05) {
                    email = names::email_case_variant(&email);
                    mess.email_case_variants.push(key.clone());
                }
                Some(email)
            } else {
                mess.missing_emails.push(key.clone());
                None
            };

            let folded = p.folded.get(slot).copied().unwrap_or(false);
            let (first_name, last_name) = if folded {
                mess.diacritic_variants.push(key.clone());
                (fold(p.first), fold(p.last))
            } else {
                (p.first.to_string(), p.last.to_string())
            };
            let u = rng.unit();
            let display_name = if u < 0.85 {
                Some(format!("{first_name} {last_name}"))
            } else if u < 0.93 {
                Some(format!("{last_name}, {first_name}"))
            } else {
                None
            };
            let home = p.dbs.first().copied().unwrap_or(d);
            let default_database = if !p.is_internal() || rng.chance(0.9) {
                Some(customer_id(home))
            } else {
                None
            };
            let phone = rng.chance(0.8).then(|| {
                let prefix = names::PHONE_PREFIXES[d % names::PHONE_PREFIXES.len()];
                format!("{prefix} {:04}", rng.below(10_000))
            });
            let user = SimUser {
                id: id.clone(),
                login_name,
                email,
                first_name,
                last_name,
                display_name,
                active: !p.inactive.get(slot).copied().unwrap_or(false),
                user_type: if p.is_internal() { "full" } else { "external" }.to_string(),
                default_database,
                phone,
                department: (!p.department.is_empty()).then(|| p.department.to_string()),
                title: (!p.title.is_empty()).then(|| p.title.to_string()),
                created_date: random_created_date(rng),
            };
            truth.accounts.insert(key, p.key.clone());
            db.users.insert(id.clone(), user);
            made.push(Made {
                db: d,
                id,
                person: pi,
            });
        }
    }
    force_account_mess(people, databases, truth, &made);
    made
}

/// Small firms can miss a kind of account-level mess by chance; give each kind one example.
fn force_account_mess(
    people: &[Person],
    databases: &mut [SimDatabase],
    truth: &mut Truth,
    made: &[Made],
) {
    let ordinary: Vec<&Made> = made
        .iter()
        .filter(|m| people[m.person].is_ordinary())
        .collect();
    let mut candidates = ordinary.iter().filter_map(|m| {
        let db = databases.get(m.db)?;
        let key = Truth::account_key(&db.customer_id, &m.id);
        Some((m.db, m.id.clone(), key, m.person))
    });
    // Four different accounts, one per kind, so that no two forced kinds overlap.
    let mess = &truth.mess;
    let need = [
        mess.login_variants.is_empty(),
        mess.missing_emails.is_empty(),
        mess.alias_domain_emails.is_empty(),
        mess.email_case_variants.is_empty(),
    ];
    let mut picked = Vec::new();
    for needed in need {
        if needed {
            picked.push(candidates.next());
        } else {
            picked.push(None);
        }
    }
    for (kind, pick) in picked.into_iter().enumerate() {
        let Some((d, id, key, person)) = pick else {
            continue;
        };
        let p = &people[person];
        let Some(user) = databases.get_mut(d).and_then(|db| db.users.get_mut(&id)) else {
            continue;
        };
        let mess = &mut truth.mess;
        match kind {
            0 => {
                if user.login_name == p.login {
                    user.login_name = names::capitalised_login(&p.login, p.last);
                    mess.login_variants.push(key);
                }
            }
            1 => {
                if user.email.take().is_some() {
                    mess.alias_domain_emails.retain(|k| *k != key);
                    mess.email_case_variants.retain(|k| *k != key);
                }
                mess.missing_emails.push(key);
            }
            2 => {
                user.email = Some(p.email.replace(
                    &format!("@{PRIMARY_EMAIL_DOMAIN}"),
                    &format!("@{ALIAS_EMAIL_DOMAIN}"),
                ));
                mess.missing_emails.retain(|k| *k != key);
                mess.email_case_variants.retain(|k| *k != key);
                mess.alias_domain_emails.push(key);
            }
            _ => {
                user.email = Some(names::email_case_variant(&p.email));
                mess.missing_emails.retain(|k| *k != key);
                mess.alias_domain_emails.retain(|k| *k != key);
                mess.email_case_variants.push(key);
            }
        }
    }
}

/// What a group is for, which decides who is in it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum GroupKind {
    AllStaff,
    Office,
    Empty,
    Practice,
    Role,
    Externals,
    Matter,
}

/// Pass 5: the groups of every database.
fn groups(
    spec: &FirmSpec,
    people: &[Person],
    databases: &mut [SimDatabase],
    made: &[Made],
    truth: &mut Truth,
    rng: &mut Rng,
    ids: &mut Rng,
) {
    let mut per_db: Vec<Vec<&Made>> = vec![Vec::new(); databases.len()];
    for m in made {
        if let Some(v) = per_db.get_mut(m.db) {
            v.push(m);
        }
    }
    // Matter and practice groups an external user could be put in, should none have landed in one by chance.
    let mut external_candidates: Vec<(usize, String)> = Vec::new();
    for (d, db) in databases.iter_mut().enumerate() {
        let accounts = &per_db[d];
        let internal: Vec<&str> = accounts
            .iter()
            .filter(|m| people[m.person].is_internal())
            .map(|m| m.id.as_str())
            .collect();
        let external: Vec<&str> = accounts
            .iter()
            .filter(|m| !people[m.person].is_internal())
            .map(|m| m.id.as_str())
            .collect();
        let external_set: HashSet<&str> = external.iter().copied().collect();
        let target = spec
            .groups_per_database
            .unwrap_or_else(|| default_groups_per_database(accounts.len()));

        let mut plan: Vec<(GroupKind, String, Vec<&str>)> = Vec::new();
        plan.push((GroupKind::AllStaff, "All Staff".into(), internal.clone()));
        let home: Vec<&str> = accounts
            .iter()
            .filter(|m| people[m.person].is_internal() && people[m.person].dbs.first() == Some(&d))
            .map(|m| m.id.as_str())
            .collect();
        plan.push((
            GroupKind::Office,
            format!("{} Office", office_name(d)),
            home,
        ));
        plan.push((
            GroupKind::Empty,
            names::EMPTY_GROUP_NAMES[0].to_string(),
            Vec::new(),
        ));
        for (dept, _) in names::DEPARTMENTS {
            // Most, not all, of a practice are in its group: directories lag behind HR.
            let ids: Vec<&str> = accounts
                .iter()
                .filter(|m| people[m.person].department == *dept)
                .map(|m| m.id.as_str())
                .filter(|_| rng.chance(0.95))
                .collect();
            if !ids.is_empty() {
                plan.push((GroupKind::Practice, (*dept).to_string(), ids));
            }
        }
        for role in names::ROLE_GROUPS {
            let ids: Vec<&str> = accounts
                .iter()
                .filter(|m| people[m.person].role == Some(*role))
                .map(|m| m.id.as_str())
                .collect();
            if !ids.is_empty() {
                plan.push((GroupKind::Role, (*role).to_string(), ids));
            }
        }
        if !external.is_empty() {
            plan.push((
                GroupKind::Externals,
                "External Users".into(),
                external.clone(),
            ));
        }
        for name in names::EMPTY_GROUP_NAMES.iter().skip(1).take(target / 50) {
            plan.push((GroupKind::Empty, (*name).to_string(), Vec::new()));
        }
        let mut matter = 0usize;
        while plan.len() < target && !internal.is_empty() {
            let number = 10_000 + matter;
            let client = names::CLIENTS[rng.below(names::CLIENTS.len())].0;
            let name = match matter % 3 {
                0 => format!("Matter {number} - {client}"),
                1 => format!(
                    "Project {} {number}",
                    names::CODENAMES[rng.below(names::CODENAMES.len())]
                ),
                _ => format!("{client} Deal Team {number}"),
            };
            // Mostly small teams, some large, a few of thousands (capped by the office's size).
            let u = rng.unit();
            let size = if u < 0.70 {
                rng.range(2, 25)
            } else if u < 0.90 {
                rng.range(26, 200)
            } else if u < 0.98 {
                rng.range(201, 1000)
            } else {
                rng.range(1001, 5000)
            };
            let ids: Vec<&str> = rng
                .sample(internal.len(), size)
                .into_iter()
                .filter_map(|i| internal.get(i).copied())
                .collect();
            plan.push((GroupKind::Matter, name, ids));
            matter += 1;
        }
        plan.truncate(target);
        // About a third of the external users also sit in a matter or practice group, as
        // client contacts on deal teams do.
        let working: Vec<usize> = (0..plan.len())
            .filter(|&i| matches!(plan[i].0, GroupKind::Matter | GroupKind::Practice))
            .collect();
        for e in &external {
            if rng.chance(0.3) {
                if let Some(&i) = rng.pick(&working) {
                    plan[i].2.push(e);
                }
            }
        }

        let mut taken: HashSet<String> = HashSet::new();
        for (kind, name, members) in plan {
            let id = loop {
                let id = random_id(ids, "grp_");
                if taken.insert(id.clone()) {
                    break id;
                }
            };
            let members: BTreeSet<String> = members.into_iter().map(str::to_string).collect();
            if members.is_empty() {
                truth
                    .mess
                    .empty_groups
                    .push(Truth::account_key(&db.customer_id, &id));
            }
            if matches!(kind, GroupKind::Matter | GroupKind::Practice) {
                for m in &members {
                    if external_set.contains(m.as_str()) {
                        truth
                            .mess
                            .externals_in_internal_groups
                            .push(Truth::account_key(&db.customer_id, m));
                    }
                }
                external_candidates.push((d, id.clone()));
            }
            db.groups.insert(id.clone(), SimGroup { id, name, members });
        }
    }

    // Some external users sit in internal groups; make sure a firm with externals shows it.
    if truth.mess.externals_in_internal_groups.is_empty() {
        for (d, group_id) in external_candidates {
            let Some(db) = databases.get_mut(d) else {
                continue;
            };
            let external = per_db[d]
                .iter()
                .find(|m| !people[m.person].is_internal())
                .map(|m| m.id.clone());
            if let (Some(user), Some(group)) = (external, db.groups.get_mut(&group_id)) {
                group.members.insert(user.clone());
                truth
                    .mess
                    .externals_in_internal_groups
                    .push(Truth::account_key(&db.customer_id, &user));
                break;
            }
        }
    }
}

/// Generates the firm a spec describes. Deterministic: the same spec gives the same firm.
pub fn generate(spec: &FirmSpec) -> Firm {
    let mut people_rng = Rng::stream(spec.seed, streams::PEOPLE);
    let mut special_rng = Rng::stream(spec.seed, streams::SPECIAL);
    let mut account_rng = Rng::stream(spec.seed, streams::ACCOUNTS);
    let mut group_rng = Rng::stream(spec.seed, streams::GROUPS);
    let mut id_rng = Rng::stream(spec.seed, streams::IDS);
    let mut workspace_rng = Rng::stream(spec.seed, streams::WORKSPACES);

    let mut people = people(spec, &mut people_rng);
    assign_mess(&mut people, spec.databases, &mut special_rng);
    let shared_logins = assign_logins(&mut people);

    let mut databases: Vec<SimDatabase> = (0..spec.databases)
        .map(|i| SimDatabase {
            customer_id: customer_id(i),
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            workspaces: BTreeMap::new(),
        })
        .collect();
    let mut truth = Truth {
        databases: databases.iter().map(|d| d.customer_id.clone()).collect(),
        accounts: BTreeMap::new(),
        email_domain_aliases: vec![vec![
            PRIMARY_EMAIL_DOMAIN.to_string(),
            ALIAS_EMAIL_DOMAIN.to_string(),
        ]],
        login_domains: LOGIN_DOMAINS.iter().map(|d| d.to_string()).collect(),
        mess: Mess {
            shared_logins,
            ..Mess::default()
        },
        security_modes: BTreeMap::new(),
        workspace_access: BTreeMap::new(),
    };
    let made = accounts(
        &people,
        &mut databases,
        &mut truth,
        &mut account_rng,
        &mut id_rng,
    );
    groups(
        spec,
        &people,
        &mut databases,
        &made,
        &mut truth,
        &mut group_rng,
        &mut id_rng,
    );
    crate::security::generate(&mut databases, &mut truth, &mut workspace_rng);

    let mess = &mut truth.mess;
    for p in &people {
        let active = p.inactive.iter().filter(|x| !**x).count();
        if p.is_internal() && active > 0 && active < p.inactive.len() {
            mess.leavers.push(p.key.clone());
        }
        if !p.is_internal() {
            mess.externals.push(p.key.clone());
        }
    }
    for list in [
        &mut mess.login_variants,
        &mut mess.email_case_variants,
        &mut mess.alias_domain_emails,
        &mut mess.missing_emails,
        &mut mess.diacritic_variants,
        &mut mess.leavers,
        &mut mess.externals,
        &mut mess.externals_in_internal_groups,
        &mut mess.empty_groups,
    ] {
        list.sort();
        list.dedup();
    }
    for list in mess.shared_mailboxes.values_mut() {
        list.sort();
    }
    Firm { databases, truth }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_formats_known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(CREATED_FROM), "2008-01-01T00:00:00Z");
        assert_eq!(iso8601(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn customer_ids_follow_offices_then_numbers() {
        assert_eq!(customer_id(0), "acme-london");
        assert_eq!(customer_id(1), "acme-newyork");
        assert_eq!(
            customer_id(names::OFFICES.len()),
            format!("acme-db{}", names::OFFICES.len() + 1)
        );
    }

    #[test]
    fn default_group_count_scales() {
        assert_eq!(default_groups_per_database(20_000), 300);
        assert_eq!(default_groups_per_database(100), 40);
    }

    #[test]
    fn empty_and_tiny_specs_do_not_panic() {
        for (databases, people) in [(0, 0), (0, 10), (1, 0), (1, 1), (2, 3), (1, 50)] {
            let firm = generate(&FirmSpec {
                seed: 9,
                databases,
                people,
                ..FirmSpec::default()
            });
            assert_eq!(firm.databases.len(), databases);
        }
    }
}
