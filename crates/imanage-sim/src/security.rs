//! Workspace security: the workspaces of the synthetic firm with their default security and
//! entries, the security mode of each database, and the simulator's own implementation of the
//! access rule, which makes the ground truth of "what can they reach".
//!
//! The rule (DESIGN.md, "Access model") is implemented here independently of the graph crate's,
//! so that a misreading in one shows up as a difference in the tests:
//! 1. an account's own entry on the workspace decides, whatever its level;
//! 2. otherwise, if any of the account's groups has an entry, the group entries decide: the
//!    highest level under the optimistic mode, the lowest under the pessimistic mode (so one
//!    `no_access` group entry denies);
//! 3. otherwise the workspace's default security decides: `public` gives `read_write`, `view`
//!    gives `read`, `private` gives nothing.
//!
//! The generator makes sure each database that has the people for it shows the hard cases: an
//! account whose own entry overrides its group's, an account in two groups with different levels
//! (one of them `no_access`), a group `no_access` entry on a `view` workspace, an explicit
//! `no_access` against a default that would grant, and workspaces that have only a default.

use crate::firm::{
    Access, DefaultSecurity, SecurityEntry, SecurityMode, SimDatabase, SimGroup, SimWorkspace,
    Truth,
};
use crate::names;
use crate::rng::Rng;
use std::collections::{BTreeMap, HashMap};

/// Groups up to this size are "teams" that workspace entries name; larger ones (offices,
/// practices, All Staff) get entries rarely, as in a real firm, which also keeps the truth small.
const TEAM_MAX: usize = 200;

/// At most this many randomly generated workspaces per database are `view` or `public`; each
/// such workspace reaches every account of the database, so they dominate the truth's size.
const RANDOM_OPEN_MAX: usize = 3;

/// The effective access of one account to one workspace: the documented rule, in one place.
///
/// `explicit` is the account's own entry, `groups` the entries of the account's groups that the
/// workspace lists (in any order). The result `NoAccess` means the account cannot reach it.
pub fn effective_access(
    explicit: Option<Access>,
    groups: &[Access],
    mode: SecurityMode,
    default: DefaultSecurity,
) -> Access {
    if let Some(own) = explicit {
        return own;
    }
    let combined = match mode {
        SecurityMode::Optimistic => groups.iter().copied().max(),
        SecurityMode::Pessimistic => groups.iter().copied().min(),
    };
    combined.unwrap_or_else(|| default.access())
}

/// Every account's effective access to every workspace of one database, where it is above
/// `no_access`: user id -> (workspace id, level), workspaces in id order.
pub fn database_access(db: &SimDatabase, mode: SecurityMode) -> Vec<(&str, Vec<(&str, Access)>)> {
    // Accounts by position rather than by hashed id: a public workspace reaches every account,
    // and this loop is what `SimHandle::truth` spends its time in for large firms.
    let users: Vec<&str> = db.users.keys().map(String::as_str).collect();
    let position: HashMap<&str, usize> = users.iter().enumerate().map(|(i, u)| (*u, i)).collect();
    let mut out: Vec<Vec<(&str, Access)>> = vec![Vec::new(); users.len()];
    let mut decided = vec![false; users.len()];
    // Workspaces in id order, so every account's list comes out sorted without a sort.
    for ws in db.workspaces.values() {
        let mut explicit: HashMap<usize, Access> = HashMap::new();
        let mut via_groups: HashMap<usize, Vec<Access>> = HashMap::new();
        for e in &ws.security {
            if e.is_group {
                let Some(group) = db.groups.get(&e.id) else {
                    continue;
                };
                for m in &group.members {
                    if let Some(&i) = position.get(m.as_str()) {
                        via_groups.entry(i).or_default().push(e.access);
                    }
                }
            } else if let Some(&i) = position.get(e.id.as_str()) {
                explicit.insert(i, e.access);
            }
        }
        let mut touched = Vec::with_capacity(explicit.len() + via_groups.len());
        for (&i, own) in &explicit {
            let groups = via_groups.get(&i).map(Vec::as_slice).unwrap_or(&[]);
            let access = effective_access(Some(*own), groups, mode, ws.default_security);
            touched.push((i, access));
        }
        for (&i, groups) in &via_groups {
            if !explicit.contains_key(&i) {
                touched.push((i, effective_access(None, groups, mode, ws.default_security)));
            }
        }
        for &(i, access) in &touched {
            decided[i] = true;
            if access > Access::NoAccess {
                out[i].push((ws.id.as_str(), access));
            }
        }
        let everyone = effective_access(None, &[], mode, ws.default_security);
        if everyone > Access::NoAccess {
            for (i, reach) in out.iter_mut().enumerate() {
                if !decided[i] {
                    reach.push((ws.id.as_str(), everyone));
                }
            }
        }
        for &(i, _) in &touched {
            decided[i] = false;
        }
    }
    users
        .into_iter()
        .zip(out)
        .filter(|(_, reach)| !reach.is_empty())
        .collect()
}

/// The access truth of a whole firm: `CUSTOMER_ID/USER_ID` -> workspace id -> level, for every
/// level above `no_access`.
pub fn access_truth<'a>(
    databases: impl IntoIterator<Item = &'a SimDatabase>,
    modes: &BTreeMap<String, SecurityMode>,
) -> BTreeMap<String, BTreeMap<String, Access>> {
    let mut rows: Vec<(String, BTreeMap<String, Access>)> = Vec::new();
    for db in databases {
        let mode = modes.get(&db.customer_id).copied().unwrap_or_default();
        for (user, reach) in database_access(db, mode) {
            // Sorted input: the map is built in bulk rather than by repeated inserts.
            let reach: BTreeMap<String, Access> = reach
                .into_iter()
                .map(|(ws, a)| (ws.to_string(), a))
                .collect();
            rows.push((Truth::account_key(&db.customer_id, user), reach));
        }
    }
    // Databases may come in any order; within one, accounts come sorted already.
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows.into_iter().collect()
}

/// Pass 6: security modes, then every database's workspaces. The access truth is left to
/// [`crate::firm::Firm::access_truth`] and [`crate::SimHandle::truth`]: it follows every later
/// membership change, and for the largest firms it costs about as much as the rest of the firm.
pub(crate) fn generate(databases: &mut [SimDatabase], truth: &mut Truth, rng: &mut Rng) {
    let n = databases.len();
    let mut pessimistic: Vec<bool> = (0..n).map(|_| rng.chance(0.3)).collect();
    if n >= 2 {
        // Both modes in every multi-database firm, so that tests meet both.
        if !pessimistic.iter().any(|p| *p) {
            pessimistic[1 + rng.below(n - 1)] = true;
        }
        if pessimistic.iter().all(|p| *p) {
            pessimistic[0] = false;
        }
    }
    for (db, p) in databases.iter().zip(pessimistic) {
        let mode = if p {
            SecurityMode::Pessimistic
        } else {
            SecurityMode::Optimistic
        };
        truth.security_modes.insert(db.customer_id.clone(), mode);
    }
    for db in databases.iter_mut() {
        db.workspaces = workspaces_of(db, rng);
    }
}

/// The entries of one workspace while it is made: a principal's first entry stands.
#[derive(Default)]
struct Entries(BTreeMap<(bool, String), Access>);

impl Entries {
    fn user(&mut self, id: &str, access: Access) {
        self.0.entry((false, id.to_string())).or_insert(access);
    }

    fn group(&mut self, group: &SimGroup, access: Access) {
        self.0.entry((true, group.id.clone())).or_insert(access);
    }

    /// Groups first, then users, each by id.
    fn finish(self) -> Vec<SecurityEntry> {
        let mut entries: Vec<SecurityEntry> = self
            .0
            .into_iter()
            .map(|((is_group, id), access)| SecurityEntry {
                id,
                is_group,
                access,
            })
            .collect();
        entries.sort_by(|a, b| b.is_group.cmp(&a.is_group).then_with(|| a.id.cmp(&b.id)));
        entries
    }
}

/// Hands out increasing matter numbers, so workspace ids are unique and look like iManage's.
struct Numbers {
    library: String,
    next: usize,
}

impl Numbers {
    fn id(&mut self, rng: &mut Rng) -> (String, usize) {
        self.next += rng.range(1, 40);
        (format!("{}!{}", self.library, self.next), self.next)
    }
}

/// One member of a group, drawn at random, other than those in `not`.
fn member_of<'a>(group: &'a SimGroup, not: &[&str], rng: &mut Rng) -> Option<&'a str> {
    let candidates: Vec<&str> = group
        .members
        .iter()
        .map(String::as_str)
        .filter(|m| !not.contains(m))
        .collect();
    rng.pick(&candidates).copied()
}

/// The workspaces of one database.
fn workspaces_of(db: &SimDatabase, rng: &mut Rng) -> BTreeMap<String, SimWorkspace> {
    let users: Vec<&str> = db.users.keys().map(String::as_str).collect();
    let is_all_staff = |g: &SimGroup| g.name == "All Staff";
    let teams: Vec<&SimGroup> = db
        .groups
        .values()
        .filter(|g| (2..=TEAM_MAX).contains(&g.members.len()) && !is_all_staff(g))
        .collect();
    let large: Vec<&SimGroup> = db
        .groups
        .values()
        .filter(|g| g.members.len() > TEAM_MAX && !is_all_staff(g))
        .collect();
    let mut numbers = Numbers {
        library: db.customer_id.clone(),
        next: 10_000 + rng.below(5_000),
    };
    let mut made: Vec<(String, String, DefaultSecurity, Entries)> = Vec::new();

    // The hard cases first, each in a workspace of its own.
    let (id, _) = numbers.id(rng);
    made.push((
        id,
        "Firm Policies and Procedures".into(),
        DefaultSecurity::Public,
        Entries::default(),
    ));
    let (id, _) = numbers.id(rng);
    made.push((
        id,
        "Board Minutes (Restricted)".into(),
        DefaultSecurity::Private,
        Entries::default(),
    ));
    let (id, _) = numbers.id(rng);
    let mut know_how = Entries::default();
    if let Some(&km) = rng.pick(&teams) {
        know_how.group(km, Access::FullAccess);
        // A whole team walled off a workspace everyone else may read.
        if let Some(&walled) = rng.pick(&teams) {
            if walled.id != km.id {
                know_how.group(walled, Access::NoAccess);
            }
        }
        // One person walled off by name, whatever the default would give.
        let outsiders: Vec<&str> = users
            .iter()
            .copied()
            .filter(|u| !km.members.contains(*u))
            .collect();
        if let Some(&u) = rng.pick(&outsiders) {
            know_how.user(u, Access::NoAccess);
        }
    }
    made.push((
        id,
        "Know-How Library".into(),
        DefaultSecurity::View,
        know_how,
    ));
    if let Some((u, ga, gb)) = two_groups_of_one_user(db, rng) {
        let client = rng.pick(names::CLIENTS).map_or("Globex", |c| c.0);
        // Under the optimistic mode `u` gets read_write here, under the pessimistic one nothing.
        let (id, number) = numbers.id(rng);
        let mut wall = Entries::default();
        wall.group(ga, Access::ReadWrite);
        wall.group(gb, Access::NoAccess);
        // Own entries win over the groups', lower or higher.
        let w = member_of(ga, &[u], rng);
        if let Some(w) = w {
            wall.user(w, Access::Read);
        }
        if let Some(x) = member_of(gb, &[u, w.unwrap_or("")], rng) {
            wall.user(x, Access::FullAccess);
        }
        made.push((
            id,
            format!("Ethical Wall - {client} Investigation ({number})"),
            DefaultSecurity::Private,
            wall,
        ));
        // Several groups, different levels and none of them no_access: `u` gets full_access
        // under the optimistic mode and read under the pessimistic one.
        let (id, number) = numbers.id(rng);
        let mut joint = Entries::default();
        joint.group(ga, Access::Read);
        joint.group(gb, Access::FullAccess);
        made.push((
            id,
            format!("{client} - Joint Defence ({number})"),
            DefaultSecurity::Private,
            joint,
        ));
    }

    // About one matter workspace per 40 accounts, and a few even in the smallest database.
    let target = made.len() + (users.len() / 40).max(3);
    let mut open_left = RANDOM_OPEN_MAX;
    while made.len() < target {
        let (id, number) = numbers.id(rng);
        let client = rng.pick(names::CLIENTS).map_or("Globex", |c| c.0);
        let matter = rng.pick(names::MATTER_TYPES).copied().unwrap_or("Advice");
        let name = format!("{client} - {matter} ({number})");
        let default = if open_left > 0 && rng.chance(0.03) {
            open_left -= 1;
            if rng.chance(0.6) {
                DefaultSecurity::View
            } else {
                DefaultSecurity::Public
            }
        } else {
            DefaultSecurity::Private
        };
        let mut entries = Entries::default();
        if !rng.chance(0.03) {
            random_entries(&mut entries, default, &users, &teams, &large, rng);
        }
        made.push((id, name, default, entries));
    }

    made.into_iter()
        .map(|(id, name, default_security, entries)| {
            let ws = SimWorkspace {
                id: id.clone(),
                name,
                default_security,
                security: entries.finish(),
            };
            (id, ws)
        })
        .collect()
}

/// The entries of an ordinary matter workspace: its team, its responsible people, now and then
/// a second team, a practice, an ethical wall or a personal exception.
fn random_entries(
    entries: &mut Entries,
    default: DefaultSecurity,
    users: &[&str],
    teams: &[&SimGroup],
    large: &[&SimGroup],
    rng: &mut Rng,
) {
    if default != DefaultSecurity::Private {
        if rng.chance(0.5) {
            if let Some(&g) = rng.pick(teams) {
                entries.group(g, Access::FullAccess);
            }
        }
        if rng.chance(0.5) {
            if let Some(&u) = rng.pick(users) {
                entries.user(u, Access::NoAccess);
            }
        }
        return;
    }
    let mut team = None;
    if rng.chance(0.9) {
        if let Some(&g) = rng.pick(teams) {
            let level = if rng.chance(0.6) {
                Access::ReadWrite
            } else {
                Access::FullAccess
            };
            entries.group(g, level);
            team = Some(g);
        }
    }
    if rng.chance(0.25) {
        if let Some(&g) = rng.pick(teams) {
            let level = if rng.chance(0.5) {
                Access::Read
            } else {
                Access::ReadWrite
            };
            entries.group(g, level);
        }
    }
    if rng.chance(0.05) {
        if let Some(&g) = rng.pick(large) {
            entries.group(g, Access::Read);
        }
    }
    if rng.chance(0.06) {
        if let Some(&g) = rng.pick(teams) {
            entries.group(g, Access::NoAccess);
        }
    }
    for k in 0..rng.range(1, 3) {
        if let Some(&u) = rng.pick(users) {
            let level = match k {
                0 => Access::FullAccess,
                _ if rng.chance(0.5) => Access::ReadWrite,
                _ => Access::Read,
            };
            entries.user(u, level);
        }
    }
    if let Some(g) = team {
        if rng.chance(0.1) {
            if let Some(m) = member_of(g, &[], rng) {
                let level = if rng.chance(0.5) {
                    Access::Read
                } else {
                    Access::NoAccess
                };
                entries.user(m, level);
            }
        }
    }
}

/// A user in two small groups (falling back to any two groups when nobody is), with the two
/// groups, the smaller first: the account on which the modes differ.
fn two_groups_of_one_user<'a>(
    db: &'a SimDatabase,
    rng: &mut Rng,
) -> Option<(&'a str, &'a SimGroup, &'a SimGroup)> {
    // Small groups first (cheap to index, and what a wall is put around), then any groups.
    let small = |g: &&SimGroup| g.members.len() <= TEAM_MAX && g.name != "All Staff";
    let users: Vec<&str> = db.users.keys().map(String::as_str).collect();
    if users.is_empty() {
        return None;
    }
    let start = rng.below(users.len());
    for pass in [true, false] {
        let mut groups_of: HashMap<&str, Vec<&SimGroup>> = HashMap::new();
        for g in db.groups.values().filter(|g| !pass || small(g)) {
            for m in &g.members {
                groups_of.entry(m.as_str()).or_default().push(g);
            }
        }
        for i in 0..users.len() {
            let u = users[(start + i) % users.len()];
            if let Some(&[a, b, ..]) = groups_of.get(u).map(Vec::as_slice) {
                let (a, b) = if (a.members.len(), &a.id) <= (b.members.len(), &b.id) {
                    (a, b)
                } else {
                    (b, a)
                };
                return Some((u, a, b));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use Access::*;

    const LEVELS: [Access; 4] = [NoAccess, Read, ReadWrite, FullAccess];
    const DEFAULTS: [DefaultSecurity; 3] = [
        DefaultSecurity::Private,
        DefaultSecurity::View,
        DefaultSecurity::Public,
    ];
    const MODES: [SecurityMode; 2] = [SecurityMode::Optimistic, SecurityMode::Pessimistic];

    #[test]
    fn an_own_entry_wins_over_groups_and_default() {
        for own in LEVELS {
            for g in LEVELS {
                for mode in MODES {
                    for d in DEFAULTS {
                        assert_eq!(effective_access(Some(own), &[g], mode, d), own);
                        assert_eq!(effective_access(Some(own), &[], mode, d), own);
                    }
                }
            }
        }
    }

    #[test]
    fn groups_combine_by_mode_and_win_over_the_default() {
        for a in LEVELS {
            for b in LEVELS {
                for d in DEFAULTS {
                    let opt = effective_access(None, &[a, b], SecurityMode::Optimistic, d);
                    let pes = effective_access(None, &[a, b], SecurityMode::Pessimistic, d);
                    assert_eq!(opt, a.max(b));
                    assert_eq!(pes, a.min(b));
                }
            }
        }
        // A lone no_access group entry denies even on a public workspace.
        assert_eq!(
            effective_access(
                None,
                &[NoAccess],
                SecurityMode::Optimistic,
                DefaultSecurity::Public
            ),
            NoAccess
        );
    }

    #[test]
    fn without_entries_the_default_decides() {
        for mode in MODES {
            assert_eq!(
                effective_access(None, &[], mode, DefaultSecurity::Private),
                NoAccess
            );
            assert_eq!(
                effective_access(None, &[], mode, DefaultSecurity::View),
                Read
            );
            assert_eq!(
                effective_access(None, &[], mode, DefaultSecurity::Public),
                ReadWrite
            );
        }
    }
}
