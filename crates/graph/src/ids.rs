//! Stable person ids across resolutions.
//!
//! A person keeps its id while their accounts stay theirs. When clusters merge, the oldest id
//! (lowest creation sequence) survives and the others become aliases that still resolve. When a
//! person splits, the part holding most of the old accounts keeps the id (ties go to the part
//! with the first account in canonical order) and the other parts get new ids. A vanished
//! person's id is never reused: new ids come from a sequence that only grows.

use model::AccountKey;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The assignment of accounts to person ids, as persisted between resolutions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonIds {
    pub by_account: Vec<(AccountKey, String)>,
    /// `(old id, surviving id)` for persons that were merged into another.
    pub aliases: Vec<(String, String)>,
    /// `(person id, creation sequence)`; a lower sequence is an older person.
    pub created: Vec<(String, i64)>,
    /// The next sequence to hand out.
    pub next_seq: i64,
}

/// The id of a new person with sequence `seq`.
pub fn format_id(seq: i64) -> String {
    format!("p{seq}")
}

fn parse_seq(id: &str) -> Option<i64> {
    id.strip_prefix('p')?.parse().ok()
}

/// What [`assign`] decided.
#[derive(Debug)]
pub(crate) struct Assigned {
    /// Per cluster, its id and creation sequence.
    pub ids: Vec<(String, i64)>,
    /// `(alias, surviving id)`, every target a current id.
    pub aliases: Vec<(String, String)>,
    pub next_seq: i64,
}

/// Assigns ids to clusters, given as a CSR (cluster `c`'s account indexes are
/// `accounts[offsets[c]..offsets[c + 1]]`, clusters in canonical order), where `key(i)` is
/// account `i`'s `(database, user id)`.
pub(crate) fn assign<'k>(
    offsets: &[u32],
    accounts: &[u32],
    key: impl Fn(u32) -> (&'k str, &'k str),
    previous: &PersonIds,
) -> Assigned {
    let alias_of: HashMap<&str, &str> = previous
        .aliases
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let seq_of: HashMap<&str, i64> = previous
        .created
        .iter()
        .map(|(id, seq)| (id.as_str(), *seq))
        .collect();
    let prev_by_account: HashMap<(&str, &str), &str> = previous
        .by_account
        .iter()
        .map(|(k, id)| ((k.database.as_str(), k.user_id.as_str()), id.as_str()))
        .collect();

    // For every old id: how many of its accounts each cluster holds.
    let n_clusters = offsets.len().saturating_sub(1);
    let mut counts: HashMap<&str, Vec<(usize, u32)>> = HashMap::new();
    for c in (0..n_clusters).filter(|_| !prev_by_account.is_empty()) {
        let mut local: HashMap<&str, u32> = HashMap::new();
        for &a in &accounts[offsets[c] as usize..offsets[c + 1] as usize] {
            if let Some(old) = prev_by_account.get(&key(a)) {
                *local.entry(resolve_static(&alias_of, old)).or_default() += 1;
            }
        }
        for (old, n) in local {
            counts.entry(old).or_default().push((c, n));
        }
    }
    // Each old id goes to the cluster that holds most of its accounts.
    let mut claims: Vec<Vec<&str>> = vec![Vec::new(); n_clusters];
    for (old, holders) in &counts {
        if let Some(&(best, _)) = holders
            .iter()
            .max_by(|(ca, na), (cb, nb)| na.cmp(nb).then(cb.cmp(ca)))
        {
            claims[best].push(old);
        }
    }
    let seq = |id: &str, seq_of: &HashMap<&str, i64>| -> i64 {
        seq_of
            .get(id)
            .copied()
            .or_else(|| parse_seq(id))
            .unwrap_or(i64::MAX)
    };
    let mut next_seq = previous.next_seq.max(
        previous
            .created
            .iter()
            .map(|(_, s)| s + 1)
            .max()
            .unwrap_or(1),
    );
    next_seq = next_seq.max(1);
    let mut ids = Vec::with_capacity(n_clusters);
    let mut new_aliases: Vec<(String, String)> = Vec::new();
    for claimed in &mut claims {
        if claimed.is_empty() {
            let s = next_seq;
            next_seq += 1;
            ids.push((format_id(s), s));
            continue;
        }
        claimed.sort_by(|a, b| seq(a, &seq_of).cmp(&seq(b, &seq_of)).then(a.cmp(b)));
        let survivor = claimed[0];
        let s = seq(survivor, &seq_of);
        for other in &claimed[1..] {
            new_aliases.push((other.to_string(), survivor.to_string()));
        }
        ids.push((survivor.to_string(), s));
    }
    // Ids that were handed out must stay unique even if a stored id had no parsable sequence.
    for (_, s) in &ids {
        if *s != i64::MAX && *s >= next_seq {
            next_seq = s + 1;
        }
    }
    let current: HashMap<&str, ()> = if previous.aliases.is_empty() {
        HashMap::new()
    } else {
        ids.iter().map(|(id, _)| (id.as_str(), ())).collect()
    };
    let new_alias_of: HashMap<&str, &str> = new_aliases
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let mut aliases: Vec<(String, String)> = Vec::new();
    // Old aliases whose target is still a person (possibly through a new alias) stay.
    for (alias, _) in &previous.aliases {
        let target = resolve_static(&alias_of, alias);
        let target = new_alias_of.get(target).copied().unwrap_or(target);
        if current.contains_key(target) && !current.contains_key(alias.as_str()) {
            aliases.push((alias.clone(), target.to_string()));
        }
    }
    aliases.extend(new_aliases);
    aliases.sort();
    aliases.dedup();
    Assigned {
        ids,
        aliases,
        next_seq,
    }
}

fn resolve_static<'a>(alias_of: &HashMap<&'a str, &'a str>, mut id: &'a str) -> &'a str {
    for _ in 0..16 {
        match alias_of.get(id) {
            Some(next) if *next != id => id = next,
            _ => break,
        }
    }
    id
}
