//! A cheap, deterministic synthetic input for benchmarks: `accounts` accounts spread over
//! `databases` databases, people with one to three accounts each, and `memberships` group
//! memberships. It is shaped like a firm (shared logins and emails across databases) but has none
//! of the simulator's realism; use the simulator for accuracy, this for speed and memory.

use crate::Input;
use model::{Account, Group, Membership};

/// A small deterministic generator (SplitMix64).
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Builds the input; the same arguments give the same input.
pub fn synthetic_input(accounts: usize, memberships: usize, databases: usize, seed: u64) -> Input {
    let databases = databases.max(1);
    let mut rng = Mix(seed);
    let db_names: Vec<String> = (0..databases).map(|d| format!("db{d:02}")).collect();
    let mut out = Vec::with_capacity(accounts);
    let mut person = 0usize;
    while out.len() < accounts {
        let copies = 1 + rng.below(3) as usize;
        let first_db = rng.below(databases as u64) as usize;
        let first = format!("First{}", person % 5000);
        let last = format!("Last{person}");
        for c in 0..copies.min(databases) {
            if out.len() == accounts {
                break;
            }
            let db = (first_db + c) % databases;
            let n = out.len();
            out.push(Account {
                database: db_names[db].clone(),
                user_id: format!("u{n:08x}"),
                login_name: Some(if c == 1 {
                    format!("ACME\\user{person}")
                } else {
                    format!("user{person}")
                }),
                email: (rng.below(10) != 0).then(|| format!("user{person}@acme.com")),
                first_name: Some(first.clone()),
                last_name: Some(last.clone()),
                display_name: Some(format!("{first} {last}")),
                active: rng.below(50) != 0,
                user_type: Some("full".into()),
                ..Account::default()
            });
        }
        person += 1;
    }
    // Groups: about one per 70 accounts per database, at least one.
    let per_db = (accounts / databases / 70).max(1);
    let mut groups = Vec::with_capacity(per_db * databases);
    for db in &db_names {
        for g in 0..per_db {
            groups.push(Group {
                database: db.clone(),
                group_id: format!("g{g:05}"),
                name: Some(format!("Group {g}")),
                ..Group::default()
            });
        }
    }
    let mut members = Vec::with_capacity(memberships);
    while members.len() < memberships && !out.is_empty() {
        let a = &out[rng.below(out.len() as u64) as usize];
        let g = rng.below(per_db as u64);
        members.push(Membership {
            database: a.database.clone(),
            group_id: format!("g{g:05}"),
            user_id: a.user_id.clone(),
        });
    }
    // The store delivers rows in key order; so does this generator.
    out.sort_by(|a, b| (&a.database, &a.user_id).cmp(&(&b.database, &b.user_id)));
    members.sort_by(|a, b| {
        (&a.database, &a.group_id, &a.user_id).cmp(&(&b.database, &b.group_id, &b.user_id))
    });
    members.dedup();
    Input {
        accounts: out,
        groups,
        memberships: members,
        ..Input::default()
    }
}
