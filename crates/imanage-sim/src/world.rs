//! The simulator's mutable state: the databases, their indexes, the truth, and the changes
//! (API writes, drift, mutations) applied to them. Public here: the [`Change`]s that
//! [`crate::SimHandle::mutate`] reports.
//!
//! Everything here is synchronous; the HTTP layer takes the lock, calls in, and releases the lock
//! before it awaits anything.

use crate::firm::{self, Firm, SimDatabase, SimUser, Truth};
use crate::names;
use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// One change the simulator made by itself (drift or [`crate::SimHandle::mutate`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A new account; `person` is its key in the truth (a new person or one who already had
    /// accounts in other databases).
    UserAdded {
        /// The customer id.
        database: String,
        /// The whole new user.
        user: Box<SimUser>,
        /// Its person key in the truth.
        person: String,
    },
    /// An account deleted. Each of its memberships is reported as a `MemberRemoved` right after.
    UserRemoved {
        /// The customer id.
        database: String,
        /// The id the user had.
        user_id: String,
        /// Its person key in the truth, if it had one.
        person: Option<String>,
    },
    /// One field of an account changed.
    UserUpdated {
        /// The customer id.
        database: String,
        /// The user changed.
        user_id: String,
        /// `title`, `department`, `email`, `display_name` or `phone`.
        field: String,
        /// The value before.
        old: Option<String>,
        /// The value after.
        new: Option<String>,
    },
    /// `active` went from true to false.
    UserDeactivated {
        /// The customer id.
        database: String,
        /// The user deactivated.
        user_id: String,
    },
    /// `active` went from false to true.
    UserReactivated {
        /// The customer id.
        database: String,
        /// The user reactivated.
        user_id: String,
    },
    /// A user joined a group.
    MemberAdded {
        /// The customer id.
        database: String,
        /// The group joined.
        group_id: String,
        /// The new member.
        user_id: String,
    },
    /// A user left a group (or was deleted).
    MemberRemoved {
        /// The customer id.
        database: String,
        /// The group left.
        group_id: String,
        /// The former member.
        user_id: String,
    },
    /// A deleted user's own entry was taken off a workspace's security.
    WorkspaceEntryRemoved {
        /// The customer id.
        database: String,
        /// The workspace.
        workspace_id: String,
        /// The former user.
        user_id: String,
    },
}

/// Everything one call of [`crate::SimHandle::mutate`] changed, in the order it was applied.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MutationReport {
    /// The fraction asked for (clamped to 0..=1).
    pub fraction: f64,
    /// The seed the changes were drawn with.
    pub seed: u64,
    /// Every change, in the order applied.
    pub changes: Vec<Change>,
}

impl MutationReport {
    /// How many changes of one kind (`user_added`, `member_removed`, ...) the report holds.
    pub fn count(&self, kind: &str) -> usize {
        self.changes.iter().filter(|c| c.kind() == kind).count()
    }
}

impl Change {
    /// The serialized `kind` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::UserAdded { .. } => "user_added",
            Change::UserRemoved { .. } => "user_removed",
            Change::UserUpdated { .. } => "user_updated",
            Change::UserDeactivated { .. } => "user_deactivated",
            Change::UserReactivated { .. } => "user_reactivated",
            Change::MemberAdded { .. } => "member_added",
            Change::MemberRemoved { .. } => "member_removed",
            Change::WorkspaceEntryRemoved { .. } => "workspace_entry_removed",
        }
    }
}

/// One database and the reverse index the API needs (a user's groups).
pub(crate) struct DbState {
    pub db: SimDatabase,
    /// user id -> ids of the groups it is a member of.
    pub user_groups: HashMap<String, BTreeSet<String>>,
    /// The number of users at start, around which drift keeps the database.
    baseline: usize,
}

impl DbState {
    fn new(db: SimDatabase) -> Self {
        let mut user_groups: HashMap<String, BTreeSet<String>> = HashMap::new();
        for g in db.groups.values() {
            for m in &g.members {
                user_groups
                    .entry(m.clone())
                    .or_default()
                    .insert(g.id.clone());
            }
        }
        let baseline = db.users.len();
        Self {
            db,
            user_groups,
            baseline,
        }
    }

    /// The group every internal account is put in, found by name.
    fn all_staff(&self) -> Option<String> {
        self.db
            .groups
            .values()
            .find(|g| g.name == "All Staff")
            .map(|g| g.id.clone())
    }

    /// The groups of a user, ordered by id.
    pub fn groups_of(&self, user_id: &str) -> Vec<&str> {
        self.user_groups
            .get(user_id)
            .map(|g| g.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Users whose login matches exactly, ignoring case.
    pub fn find_login(&self, login: &str) -> Option<&SimUser> {
        let wanted = login.to_lowercase();
        self.db
            .users
            .values()
            .find(|u| u.login_name.to_lowercase() == wanted)
    }

    /// Adds a membership; false when it already existed (or the group is unknown).
    pub fn add_member(&mut self, group_id: &str, user_id: &str) -> bool {
        let Some(group) = self.db.groups.get_mut(group_id) else {
            return false;
        };
        if !group.members.insert(user_id.to_string()) {
            return false;
        }
        self.user_groups
            .entry(user_id.to_string())
            .or_default()
            .insert(group_id.to_string());
        true
    }

    /// Removes a membership; false when there was none.
    pub fn remove_member(&mut self, group_id: &str, user_id: &str) -> bool {
        let Some(group) = self.db.groups.get_mut(group_id) else {
            return false;
        };
        if !group.members.remove(user_id) {
            return false;
        }
        if let Some(set) = self.user_groups.get_mut(user_id) {
            set.remove(group_id);
            if set.is_empty() {
                self.user_groups.remove(user_id);
            }
        }
        true
    }

    /// Removes a user, its memberships and its own workspace security entries; returns it, the
    /// groups it was in and the workspaces whose security named it.
    pub fn remove_user(&mut self, user_id: &str) -> Option<(SimUser, Vec<String>, Vec<String>)> {
        let user = self.db.users.remove(user_id)?;
        let groups: Vec<String> = self
            .user_groups
            .remove(user_id)
            .map(|s| s.into_iter().collect())
            .unwrap_or_default();
        for g in &groups {
            if let Some(group) = self.db.groups.get_mut(g) {
                group.members.remove(user_id);
            }
        }
        // A deleted account cannot keep an entry: the security list would name nobody. A scan
        // is enough at the sizes simulated (hundreds of workspaces, a few entries each).
        let mut workspaces = Vec::new();
        for ws in self.db.workspaces.values_mut() {
            let before = ws.security.len();
            ws.security.retain(|e| e.is_group || e.id != user_id);
            if ws.security.len() != before {
                workspaces.push(ws.id.clone());
            }
        }
        Some((user, groups, workspaces))
    }
}

/// The whole mutable world of one simulator.
pub(crate) struct World {
    pub dbs: Vec<DbState>,
    index: HashMap<String, usize>,
    pub truth: Truth,
    /// Every normalized login ever used, so that made-up people never reuse one.
    taken_logins: HashSet<String>,
    /// Every normalized email ever used, likewise.
    taken_emails: HashSet<String>,
    /// Person keys in use.
    persons: HashSet<String>,
    next_person: u64,
    firm_domains: Vec<String>,
    drift_rng: Rng,
    id_rng: Rng,
}

impl World {
    pub fn new(firm: Firm, seed: u64) -> Self {
        let firm_domains: Vec<String> = firm
            .truth
            .email_domain_aliases
            .iter()
            .flatten()
            .map(|d| d.to_lowercase())
            .collect();
        let mut world = Self {
            dbs: Vec::new(),
            index: HashMap::new(),
            taken_logins: HashSet::new(),
            taken_emails: HashSet::new(),
            persons: firm.truth.accounts.values().cloned().collect(),
            next_person: 0,
            firm_domains,
            truth: Truth {
                // Access changes with every membership; it is computed when asked for.
                workspace_access: BTreeMap::new(),
                ..firm.truth
            },
            drift_rng: Rng::stream(seed, 0xD21F7),
            id_rng: Rng::stream(seed, 0x1D5),
        };
        for db in firm.databases {
            for u in db.users.values() {
                let login = world.login_key(&u.login_name);
                world.taken_logins.insert(login);
                if let Some(e) = &u.email {
                    let email = world.email_key(e);
                    world.taken_emails.insert(email);
                }
            }
            world.index.insert(db.customer_id.clone(), world.dbs.len());
            world.dbs.push(DbState::new(db));
        }
        if world.truth.databases.is_empty() {
            world.truth.databases = world.dbs.iter().map(|d| d.db.customer_id.clone()).collect();
        }
        world
    }

    pub fn position(&self, customer_id: &str) -> Option<usize> {
        self.index.get(customer_id).copied()
    }

    pub fn db(&self, customer_id: &str) -> Option<&DbState> {
        self.dbs.get(self.position(customer_id)?)
    }

    pub fn db_mut(&mut self, customer_id: &str) -> Option<&mut DbState> {
        let i = self.position(customer_id)?;
        self.dbs.get_mut(i)
    }

    /// The login as the firm means it: lowercase, without `DOMAIN\` and without a firm email
    /// domain (`ACME\JDoe`, `jdoe@acme.com` -> `jdoe`).
    fn login_key(&self, login: &str) -> String {
        let lower = login.to_lowercase();
        let bare = lower.rsplit('\\').next().unwrap_or(&lower);
        if let Some((local, domain)) = bare.split_once('@') {
            if self.firm_domains.iter().any(|d| d == domain) {
                return local.to_string();
            }
        }
        bare.to_string()
    }

    /// The email as the firm means it: lowercase, alias domains folded into the first one.
    fn email_key(&self, email: &str) -> String {
        let lower = email.to_lowercase();
        match (lower.split_once('@'), self.firm_domains.first()) {
            (Some((local, domain)), Some(primary))
                if self.firm_domains.iter().any(|d| d == domain) =>
            {
                format!("{local}@{primary}")
            }
            _ => lower,
        }
    }

    /// Records a login and email as used (API-created users, so made-up people avoid them).
    pub fn reserve(&mut self, login: Option<&str>, email: Option<&str>) {
        if let Some(l) = login {
            let login = self.login_key(l);
            self.taken_logins.insert(login);
        }
        if let Some(e) = email {
            let email = self.email_key(e);
            self.taken_emails.insert(email);
        }
    }

    /// A user id not used in the database: `usr_` and ten random-looking characters.
    pub fn new_id(&mut self, d: usize, prefix: &str) -> String {
        loop {
            let id = firm::random_id(&mut self.id_rng, prefix);
            let taken = self
                .dbs
                .get(d)
                .is_some_and(|s| s.db.users.contains_key(&id) || s.db.groups.contains_key(&id));
            if !taken {
                return id;
            }
        }
    }

    fn new_person_key(&mut self) -> String {
        loop {
            self.next_person += 1;
            let key = format!("p{:06}", self.next_person + 900_000);
            if self.persons.insert(key.clone()) {
                return key;
            }
        }
    }

    /// A new person's account in database `d`, with a login and email nobody has used.
    fn made_up_user(&mut self, d: usize, rng: &mut Rng) -> (String, SimUser) {
        let (first, last) = firm::random_name(rng);
        let base = names::login_base(first, last);
        let mut login = base.clone();
        let mut k = 2;
        while self.taken_logins.contains(&login) {
            login = format!("{base}{k}");
            k += 1;
        }
        self.taken_logins.insert(login.clone());
        let local = names::email_local(first, last);
        let primary = self
            .firm_domains
            .first()
            .cloned()
            .unwrap_or_else(|| firm::PRIMARY_EMAIL_DOMAIN.to_string());
        let mut email = format!("{local}@{primary}");
        let mut k = 2;
        while self.taken_emails.contains(&email) {
            email = format!("{local}{k}@{primary}");
            k += 1;
        }
        self.taken_emails.insert(email.clone());
        let (title, _) = firm::random_title(rng);
        let department = firm::weighted_str(rng, names::DEPARTMENTS);
        let customer = self.dbs.get(d).map(|s| s.db.customer_id.clone());
        let id = self.new_id(d, "usr_");
        let person = self.new_person_key();
        // Accounts made at run time are dated in 2025, after everything generated.
        let created = firm::iso8601(1_735_689_600 + rng.below(364 * 86_400) as i64);
        let user = SimUser {
            id,
            login_name: login,
            email: Some(email),
            first_name: first.to_string(),
            last_name: last.to_string(),
            display_name: Some(format!("{first} {last}")),
            active: true,
            user_type: "full".to_string(),
            default_database: customer,
            phone: None,
            department: Some(department.to_string()),
            title: Some(title.to_string()),
            created_date: created,
        };
        (person, user)
    }

    /// Adds an account the simulator made up, to its database, the truth and All Staff.
    fn add_made_up(&mut self, d: usize, person: String, user: SimUser, out: &mut Vec<Change>) {
        let Some(state) = self.dbs.get_mut(d) else {
            return;
        };
        let database = state.db.customer_id.clone();
        let id = user.id.clone();
        self.truth
            .accounts
            .insert(Truth::account_key(&database, &id), person.clone());
        let internal = user.user_type != "external";
        state.db.users.insert(id.clone(), user.clone());
        out.push(Change::UserAdded {
            database: database.clone(),
            user: Box::new(user),
            person,
        });
        if internal {
            if let Some(all) = state.all_staff() {
                if state.add_member(&all, &id) {
                    out.push(Change::MemberAdded {
                        database,
                        group_id: all,
                        user_id: id,
                    });
                }
            }
        }
    }

    /// Deletes a user, its memberships and its truth entry.
    pub fn delete_user(&mut self, d: usize, user_id: &str, out: &mut Vec<Change>) -> bool {
        let Some(state) = self.dbs.get_mut(d) else {
            return false;
        };
        let Some((_, groups, workspaces)) = state.remove_user(user_id) else {
            return false;
        };
        let database = state.db.customer_id.clone();
        let person = self
            .truth
            .accounts
            .remove(&Truth::account_key(&database, user_id));
        out.push(Change::UserRemoved {
            database: database.clone(),
            user_id: user_id.to_string(),
            person,
        });
        for group_id in groups {
            out.push(Change::MemberRemoved {
                database: database.clone(),
                group_id,
                user_id: user_id.to_string(),
            });
        }
        for workspace_id in workspaces {
            out.push(Change::WorkspaceEntryRemoved {
                database: database.clone(),
                workspace_id,
                user_id: user_id.to_string(),
            });
        }
        true
    }

    /// Drift before one page of a users list: `events` additions or removals at random places,
    /// kept within 5% (at least 5 users) of the database's starting size.
    pub fn drift(&mut self, d: usize, events: u32) -> (u64, u64) {
        let (mut added, mut removed) = (0, 0);
        let mut rng = self.drift_rng.clone();
        let mut sink = Vec::new();
        for _ in 0..events {
            let Some(state) = self.dbs.get(d) else { break };
            let size = state.db.users.len();
            let bound = (state.baseline / 20).max(5);
            let add = if size == 0 || size + bound <= state.baseline {
                true
            } else if size >= state.baseline + bound {
                false
            } else {
                rng.chance(0.5)
            };
            if add {
                let (person, user) = self.made_up_user(d, &mut rng);
                self.add_made_up(d, person, user, &mut sink);
                added += 1;
            } else {
                let victim = state.db.users.keys().nth(rng.below(size)).cloned();
                if let Some(id) = victim {
                    if self.delete_user(d, &id, &mut sink) {
                        removed += 1;
                    }
                }
            }
            sink.clear();
        }
        self.drift_rng = rng;
        (added, removed)
    }

    /// Changes about `fraction` of the users and of the memberships; see [`crate::SimHandle::mutate`].
    pub fn mutate(&mut self, fraction: f64, seed: u64) -> MutationReport {
        let fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let mut rng = Rng::new(seed);
        let mut out = Vec::new();

        let targets: Vec<(usize, String)> = self
            .dbs
            .iter()
            .enumerate()
            .flat_map(|(d, s)| s.db.users.keys().map(move |id| (d, id.clone())))
            .collect();
        let n_users = (fraction * targets.len() as f64).round() as usize;
        let mut by_person: Option<HashMap<String, Vec<usize>>> = None;
        let mut logins_in: HashMap<usize, HashSet<String>> = HashMap::new();
        for i in rng.sample(targets.len(), n_users) {
            let (d, id) = &targets[i];
            let r = rng.unit();
            if r < 0.07 {
                if rng.chance(0.5) {
                    let by_person = by_person.get_or_insert_with(|| self.accounts_by_person());
                    if self.add_existing_person(
                        *d,
                        id,
                        by_person,
                        &mut logins_in,
                        &mut rng,
                        &mut out,
                    ) {
                        continue;
                    }
                }
                let (person, user) = self.made_up_user(*d, &mut rng);
                self.add_made_up(*d, person, user, &mut out);
            } else if r < 0.15 {
                self.delete_user(*d, id, &mut out);
            } else if r < 0.30 {
                self.toggle_active(*d, id, &mut out);
            } else {
                self.change_fields(*d, id, &mut rng, &mut out);
            }
        }

        self.mutate_memberships(fraction, &mut rng, &mut out);
        MutationReport {
            fraction,
            seed,
            changes: out,
        }
    }

    /// person key -> positions of its databases, from the truth.
    fn accounts_by_person(&self) -> HashMap<String, Vec<usize>> {
        let mut map: HashMap<String, Vec<usize>> = HashMap::new();
        for (key, person) in &self.truth.accounts {
            if let Some((db, _)) = key.split_once('/') {
                if let Some(d) = self.position(db) {
                    map.entry(person.clone()).or_default().push(d);
                }
            }
        }
        map
    }

    /// The person behind account `id` of database `d` gets an account in another database, with
    /// the same names, login and email. False when that is not possible.
    fn add_existing_person(
        &mut self,
        d: usize,
        id: &str,
        by_person: &mut HashMap<String, Vec<usize>>,
        logins_in: &mut HashMap<usize, HashSet<String>>,
        rng: &mut Rng,
        out: &mut Vec<Change>,
    ) -> bool {
        let Some(state) = self.dbs.get(d) else {
            return false;
        };
        let Some(source) = state.db.users.get(id).cloned() else {
            return false;
        };
        let Some(person) = self
            .truth
            .accounts
            .get(&Truth::account_key(&state.db.customer_id, id))
            .cloned()
        else {
            return false;
        };
        let has: Vec<usize> = by_person.get(&person).cloned().unwrap_or_default();
        let free: Vec<usize> = (0..self.dbs.len()).filter(|e| !has.contains(e)).collect();
        let Some(&e) = rng.pick(&free) else {
            return false;
        };
        let login = self.login_key(&source.login_name);
        let index = logins_in.entry(e).or_insert_with(|| {
            self.dbs
                .get(e)
                .map(|s| {
                    s.db.users
                        .values()
                        .map(|u| self.login_key(&u.login_name))
                        .collect()
                })
                .unwrap_or_default()
        });
        if !index.insert(login.clone()) {
            return false;
        }
        let user = SimUser {
            id: self.new_id(e, "usr_"),
            login_name: if source.user_type == "external" {
                source.login_name.to_lowercase()
            } else {
                login
            },
            created_date: firm::iso8601(1_735_689_600 + rng.below(364 * 86_400) as i64),
            active: true,
            phone: None,
            ..source
        };
        by_person.entry(person.clone()).or_default().push(e);
        self.add_made_up(e, person, user, out);
        true
    }

    fn toggle_active(&mut self, d: usize, id: &str, out: &mut Vec<Change>) {
        let Some(state) = self.dbs.get_mut(d) else {
            return;
        };
        let database = state.db.customer_id.clone();
        let Some(user) = state.db.users.get_mut(id) else {
            return;
        };
        user.active = !user.active;
        out.push(if user.active {
            Change::UserReactivated {
                database,
                user_id: id.to_string(),
            }
        } else {
            Change::UserDeactivated {
                database,
                user_id: id.to_string(),
            }
        });
    }

    fn change_fields(&mut self, d: usize, id: &str, rng: &mut Rng, out: &mut Vec<Change>) {
        let primary = self.firm_domains.first().cloned();
        let alias = self.firm_domains.get(1).cloned();
        let Some(state) = self.dbs.get_mut(d) else {
            return;
        };
        let database = state.db.customer_id.clone();
        let Some(user) = state.db.users.get_mut(id) else {
            return;
        };
        let internal = user.user_type != "external";
        let mut fields: Vec<&str> = vec!["display_name", "phone"];
        if internal {
            fields.extend(["title", "department"]);
        }
        if user.email.is_some() {
            fields.push("email");
        }
        let count = rng.range(1, 2);
        for i in rng.sample(fields.len(), count) {
            let field = fields[i];
            let (slot, new) = match field {
                "title" => {
                    let mut t = firm::random_title(rng).0;
                    if Some(t) == user.title.as_deref() {
                        t = if t == "Partner" { "Counsel" } else { "Partner" };
                    }
                    (&mut user.title, Some(t.to_string()))
                }
                "department" => {
                    let mut dep = firm::weighted_str(rng, names::DEPARTMENTS);
                    if Some(dep) == user.department.as_deref() {
                        dep = if dep == "Tax" { "Litigation" } else { "Tax" };
                    }
                    (&mut user.department, Some(dep.to_string()))
                }
                "email" => {
                    let old = user.email.clone().unwrap_or_default();
                    // Moves between the firm's two domains, or changes letter case: the person
                    // stays recognisable, as in a real directory clean-up.
                    let lower = old.to_lowercase();
                    let new = match (lower.split_once('@'), &primary, &alias) {
                        (Some((local, dom)), Some(p), Some(a)) if dom == p && internal => {
                            format!("{local}@{a}")
                        }
                        (Some((local, dom)), Some(p), Some(a)) if dom == a && internal => {
                            format!("{local}@{p}")
                        }
                        _ if old == lower => names::email_case_variant(&old),
                        _ => lower,
                    };
                    (&mut user.email, Some(new))
                }
                "display_name" => {
                    let new = match &user.display_name {
                        Some(n) if n.contains(", ") => {
                            format!("{} {}", user.first_name, user.last_name)
                        }
                        _ => format!("{}, {}", user.last_name, user.first_name),
                    };
                    (&mut user.display_name, Some(new))
                }
                _ => {
                    let new = format!("+44 20 7946 {:04}", rng.below(10_000));
                    (&mut user.phone, Some(new))
                }
            };
            if *slot == new {
                continue;
            }
            let old = std::mem::replace(slot, new.clone());
            out.push(Change::UserUpdated {
                database: database.clone(),
                user_id: id.to_string(),
                field: field.to_string(),
                old,
                new,
            });
        }
    }

    fn mutate_memberships(&mut self, fraction: f64, rng: &mut Rng, out: &mut Vec<Change>) {
        let all: Vec<(usize, &str, &str)> = self
            .dbs
            .iter()
            .enumerate()
            .flat_map(|(d, s)| {
                s.db.groups.values().flat_map(move |g| {
                    g.members
                        .iter()
                        .map(move |u| (d, g.id.as_str(), u.as_str()))
                })
            })
            .collect();
        let n = (fraction * all.len() as f64).round() as usize;
        let removals = n / 2;
        let additions = n - removals;
        let chosen: Vec<(usize, String, String)> = rng
            .sample(all.len(), removals)
            .into_iter()
            .map(|i| (all[i].0, all[i].1.to_string(), all[i].2.to_string()))
            .collect();
        drop(all);
        let mut touched: HashSet<(usize, String, String)> = HashSet::new();
        for (d, g, u) in chosen {
            let Some(state) = self.dbs.get_mut(d) else {
                continue;
            };
            if state.remove_member(&g, &u) {
                out.push(Change::MemberRemoved {
                    database: state.db.customer_id.clone(),
                    group_id: g.clone(),
                    user_id: u.clone(),
                });
                touched.insert((d, g, u));
            }
        }

        let users: Vec<Vec<String>> = self
            .dbs
            .iter()
            .map(|s| s.db.users.keys().cloned().collect())
            .collect();
        let groups: Vec<Vec<String>> = self
            .dbs
            .iter()
            .map(|s| s.db.groups.keys().cloned().collect())
            .collect();
        let weights: Vec<f64> = users.iter().map(|u| u.len() as f64).collect();
        for _ in 0..additions {
            for _attempt in 0..10 {
                let d = rng.weighted(&weights);
                let (Some(us), Some(gs)) = (users.get(d), groups.get(d)) else {
                    break;
                };
                let (Some(u), Some(g)) = (rng.pick(us), rng.pick(gs)) else {
                    break;
                };
                let key = (d, g.clone(), u.clone());
                if touched.contains(&key) {
                    continue;
                }
                let Some(state) = self.dbs.get_mut(d) else {
                    break;
                };
                if state.add_member(g, u) {
                    out.push(Change::MemberAdded {
                        database: state.db.customer_id.clone(),
                        group_id: g.clone(),
                        user_id: u.clone(),
                    });
                    touched.insert(key);
                    break;
                }
            }
        }
    }

    /// The truth as it stands: accounts removed since generation are gone from it, and the
    /// access truth follows the current memberships and security.
    pub fn current_truth(&self) -> Truth {
        let mut truth = self.truth.clone();
        truth.workspace_access =
            crate::security::access_truth(self.dbs.iter().map(|s| &s.db), &truth.security_modes);
        let accounts = &truth.accounts;
        let keep = |list: &mut Vec<String>| list.retain(|k| accounts.contains_key(k));
        let mess = &mut truth.mess;
        keep(&mut mess.login_variants);
        keep(&mut mess.email_case_variants);
        keep(&mut mess.alias_domain_emails);
        keep(&mut mess.missing_emails);
        keep(&mut mess.diacritic_variants);
        keep(&mut mess.externals_in_internal_groups);
        for list in mess.shared_mailboxes.values_mut() {
            keep(list);
        }
        truth
    }

    /// A copy of every database.
    pub fn snapshot(&self) -> Vec<SimDatabase> {
        self.dbs.iter().map(|s| s.db.clone()).collect()
    }

    /// Mapping for `/_sim/state`.
    pub fn state_json(&self) -> BTreeMap<&'static str, Vec<&SimDatabase>> {
        let mut m = BTreeMap::new();
        m.insert("databases", self.dbs.iter().map(|s| &s.db).collect());
        m
    }
}
