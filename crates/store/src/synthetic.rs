//! Synthetic snapshots for load tests and benchmarks: deterministic, no IO, shaped like what the
//! harvester produces (full user objects with their `raw` JSON, groups, memberships).
//!
//! [`snapshot`] builds a database of a given size; [`mutate`] changes a fraction of it the way
//! a day in a firm does (edited fields, deactivations, departures, arrivals, membership churn).
//! Time a [`crate::Store::commit_database`] of each to measure first and incremental harvests.

use model::{Account, DatabaseSnapshot, Group, Membership};
use serde_json::json;

/// splitmix64: tiny, fast and good enough to spread synthetic data.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const FIRST: [&str; 8] = ["Ada", "Ben", "Chloe", "Dev", "Erin", "Femi", "Gita", "Hugo"];
const LAST: [&str; 8] = [
    "Okafor",
    "Lindqvist",
    "Tanaka",
    "Moreau",
    "Silva",
    "Novak",
    "Haddad",
    "Byrne",
];
const DEPARTMENTS: [&str; 5] = ["Litigation", "Corporate", "Tax", "Real Estate", "IT"];

fn user_id(i: usize) -> String {
    format!("U{i:07}")
}

fn group_id(i: usize) -> String {
    format!("G{i:05}")
}

fn account(database: &str, i: usize, groups: Vec<String>, rng: &mut Rng) -> Account {
    let first = FIRST[rng.below(FIRST.len())];
    let last = LAST[rng.below(LAST.len())];
    let login = format!("{}.{}{i}", first.to_lowercase(), last.to_lowercase());
    let email = format!("{login}@firm.test");
    let department = DEPARTMENTS[rng.below(DEPARTMENTS.len())];
    let id = user_id(i);
    let created = format!("2019-{:02}-{:02}T09:00:00Z", 1 + i % 12, 1 + i % 28);
    let raw = json!({
        "id": id,
        "login_name": login,
        "email": email,
        "first_name": first,
        "last_name": last,
        "display_name": format!("{first} {last}"),
        "active": true,
        "user_type": "full",
        "groups": groups,
        "default_database": database,
        "phone": format!("+44 20 7946 {:04}", i % 10_000),
        "department": department,
        "title": "Associate",
        "created_date": created,
    })
    .into();
    Account {
        database: database.to_owned(),
        user_id: id,
        login_name: Some(login),
        email: Some(email),
        first_name: Some(first.to_owned()),
        last_name: Some(last.to_owned()),
        display_name: Some(format!("{first} {last}")),
        active: true,
        user_type: Some("full".to_owned()),
        groups,
        default_database: Some(database.to_owned()),
        phone: Some(format!("+44 20 7946 {:04}", i % 10_000)),
        department: Some(department.to_owned()),
        title: Some("Associate".to_owned()),
        created_date: Some(created),
        raw,
    }
}

/// A database with `accounts` accounts, `groups` groups and about `memberships` memberships
/// (spread evenly, each account in distinct groups; capped at `accounts * groups`).
pub fn snapshot(
    database: &str,
    accounts: usize,
    groups: usize,
    memberships: usize,
    seed: u64,
) -> DatabaseSnapshot {
    let mut rng = Rng(seed);
    let groups = groups.max(1);
    let per = memberships / accounts.max(1);
    let extra = memberships % accounts.max(1);
    let mut ms = Vec::with_capacity(memberships);
    let mut accs = Vec::with_capacity(accounts);
    for i in 0..accounts {
        let k = (per + usize::from(i < extra)).min(groups);
        let start = rng.below(groups);
        let gids: Vec<String> = (0..k).map(|t| group_id((start + t) % groups)).collect();
        for g in &gids {
            ms.push(Membership {
                database: database.to_owned(),
                group_id: g.clone(),
                user_id: user_id(i),
            });
        }
        accs.push(account(database, i, gids, &mut rng));
    }
    let mut counts = vec![0i64; groups];
    for m in &ms {
        if let Some(n) = m.group_id[1..]
            .parse::<usize>()
            .ok()
            .and_then(|g| counts.get_mut(g))
        {
            *n += 1;
        }
    }
    let groups = (0..groups)
        .map(|g| Group {
            database: database.to_owned(),
            group_id: group_id(g),
            name: Some(format!("Matter team {g}")),
            member_count: Some(counts[g]),
            raw: json!({"id": group_id(g), "name": format!("Matter team {g}"), "member_count": counts[g]})
                .into(),
        })
        .collect();
    DatabaseSnapshot {
        database: database.to_owned(),
        accounts: accs,
        groups,
        memberships: ms,
        workspaces: None,
        workspace_entries: None,
    }
}

/// A copy of `base` in which about `fraction` of the accounts changed: a quarter edited (email
/// or title), a quarter deactivated, a quarter removed (with their memberships), and as many new
/// accounts as removed ones; plus as many memberships added and removed among the rest.
pub fn mutate(base: &DatabaseSnapshot, fraction: f64, seed: u64) -> DatabaseSnapshot {
    let mut rng = Rng(seed ^ 0x5EED);
    let mut s = base.clone();
    let n = ((s.accounts.len() as f64) * fraction.clamp(0.0, 1.0)).round() as usize;
    if n == 0 || s.accounts.is_empty() {
        return s;
    }
    let step = (s.accounts.len() / n).max(1);
    let mut removed = std::collections::HashSet::new();
    for (t, i) in (0..s.accounts.len()).step_by(step).take(n).enumerate() {
        let a = &mut s.accounts[i];
        match t % 4 {
            0 => {
                let email = format!("changed.{}@firm.test", a.user_id.to_lowercase());
                a.raw.update(|v| v["email"] = json!(email));
                a.email = Some(email);
            }
            1 => {
                a.active = !a.active;
                let active = a.active;
                a.raw.update(|v| v["active"] = json!(active));
            }
            2 => {
                removed.insert(a.user_id.clone());
            }
            _ => {
                a.title = Some("Partner".to_owned());
                a.raw.update(|v| v["title"] = json!("Partner"));
            }
        }
    }
    s.accounts.retain(|a| !removed.contains(&a.user_id));
    s.memberships.retain(|m| !removed.contains(&m.user_id));
    let next = base
        .accounts
        .iter()
        .filter_map(|a| a.user_id[1..].parse::<usize>().ok())
        .max()
        .map_or(0, |m| m + 1);
    let groups = s.groups.len();
    for i in next..next + removed.len() {
        let g = group_id(rng.below(groups));
        s.memberships.push(Membership {
            database: s.database.clone(),
            group_id: g.clone(),
            user_id: user_id(i),
        });
        let db = s.database.clone();
        s.accounts.push(account(&db, i, vec![g], &mut rng));
    }
    // Membership churn among the remaining accounts: drop some, add as many new pairs.
    let churn = n.min(s.memberships.len() / 2);
    let mstep = (s.memberships.len() / churn.max(1)).max(1);
    let mut dropped = 0;
    let mut k = 0;
    s.memberships.retain(|_| {
        k += 1;
        if dropped < churn && k % mstep == 0 {
            dropped += 1;
            false
        } else {
            true
        }
    });
    let mut existing: std::collections::HashSet<(String, String)> = s
        .memberships
        .iter()
        .map(|m| (m.group_id.clone(), m.user_id.clone()))
        .collect();
    let mut added = 0;
    let mut tries = 0;
    while added < dropped && tries < dropped * 20 && groups > 0 {
        tries += 1;
        let a = &s.accounts[rng.below(s.accounts.len())];
        let g = group_id(rng.below(groups));
        if existing.insert((g.clone(), a.user_id.clone())) {
            s.memberships.push(Membership {
                database: s.database.clone(),
                group_id: g,
                user_id: a.user_id.clone(),
            });
            added += 1;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_has_the_asked_shape_and_is_deterministic() {
        let s = snapshot("db", 100, 10, 450, 7);
        assert_eq!(s.accounts.len(), 100);
        assert_eq!(s.groups.len(), 10);
        assert_eq!(s.memberships.len(), 450);
        let pairs: std::collections::HashSet<_> = s
            .memberships
            .iter()
            .map(|m| (&m.group_id, &m.user_id))
            .collect();
        assert_eq!(pairs.len(), 450, "memberships are distinct");
        assert_eq!(s, snapshot("db", 100, 10, 450, 7));
    }

    #[test]
    fn mutate_changes_about_the_fraction() {
        let s = snapshot("db", 1000, 20, 3000, 1);
        let m = mutate(&s, 0.01, 2);
        assert_ne!(s, m);
        let changed = m
            .accounts
            .iter()
            .filter(|a| !s.accounts.contains(a))
            .count();
        // 2 edited, 3 toggled/edited, 2 new (of 10 picked, 2 or 3 removed).
        assert!((5..=12).contains(&changed), "{changed}");
    }
}
