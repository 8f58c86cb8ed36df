//! Pure planning of a commit: which rows of a snapshot are new, back, changed or gone, and which
//! change-log rows that makes. No IO here, so the rules are unit-tested on their own.

use std::collections::{HashMap, HashSet};

/// The maps a commit probes once per snapshot row: hashbrown's default hasher (foldhash, seeded
/// per process) is several times faster than std's SipHash on short keys.
pub(crate) type FastMap<K, V> = hashbrown::HashMap<K, V>;

use model::{Account, Group, Membership, RawJson, Workspace, WorkspaceEntry};
use serde_json::Value;

use crate::types::ChangeKind;

/// What the store holds for one keyed row: its content hash and whether it is present.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
    pub hash: i64,
    pub present: bool,
}

/// A change-log row before it gets its id, run, time and database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewChange {
    pub kind: ChangeKind,
    pub user_id: Option<String>,
    pub group_id: Option<String>,
    pub workspace_id: Option<String>,
    pub field: Option<&'static str>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
}

impl NewChange {
    fn new(kind: ChangeKind) -> Self {
        NewChange {
            kind,
            user_id: None,
            group_id: None,
            workspace_id: None,
            field: None,
            old_value: None,
            new_value: None,
        }
    }

    fn user(kind: ChangeKind, user_id: &str) -> Self {
        NewChange {
            user_id: Some(user_id.to_owned()),
            ..NewChange::new(kind)
        }
    }

    fn group(kind: ChangeKind, group_id: &str) -> Self {
        NewChange {
            group_id: Some(group_id.to_owned()),
            ..NewChange::new(kind)
        }
    }

    fn workspace(kind: ChangeKind, workspace_id: &str) -> Self {
        NewChange {
            workspace_id: Some(workspace_id.to_owned()),
            ..NewChange::new(kind)
        }
    }

    fn membership(kind: ChangeKind, group_id: &str, user_id: &str) -> Self {
        NewChange {
            group_id: Some(group_id.to_owned()),
            user_id: Some(user_id.to_owned()),
            ..NewChange::new(kind)
        }
    }

    fn entry(kind: ChangeKind, key: &EntryKey) -> Self {
        let mut c = NewChange::workspace(kind, &key.0);
        if key.1 == PRINCIPAL_GROUP {
            c.group_id = Some(key.2.clone());
        } else {
            c.user_id = Some(key.2.clone());
        }
        c
    }

    fn field(mut self, field: &'static str, old: Option<String>, new: Option<String>) -> Self {
        self.field = Some(field);
        self.old_value = old;
        self.new_value = new;
        self
    }
}

/// A snapshot row together with its content hash.
#[derive(Debug)]
pub(crate) struct Hashed<'a, T> {
    pub row: &'a T,
    pub hash: i64,
    /// An account's hash without its group list (see `hash::account_and_core`), made in the
    /// same pass; for other rows, `hash` again.
    pub core: i64,
}

impl<T> Clone for Hashed<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Hashed<'_, T> {}

/// The plan for a table of hashed rows (accounts, groups, workspaces).
#[derive(Debug)]
pub(crate) struct EntityPlan<'a, T> {
    /// Keys never stored before: plain inserts.
    pub fresh: Vec<Hashed<'a, T>>,
    /// Keys stored but not present: written again and present once more.
    pub readded: Vec<Hashed<'a, T>>,
    /// Present rows whose hash differs: compare with the stored row, then rewrite.
    pub suspect: Vec<Hashed<'a, T>>,
    /// Present keys the snapshot no longer has, sorted.
    pub removed: Vec<String>,
    /// Rows present after the commit.
    pub present_after: usize,
    /// Rows dropped because their key repeated an earlier row's.
    pub duplicates: usize,
}

/// Sorts a snapshot's rows against the stored keys and hashes, given as a map: the reference
/// [`EntityMerge`] is tested against.
#[cfg(test)]
pub(crate) fn plan_entities<'a, T>(
    rows: &'a [T],
    key: impl Fn(&T) -> &str,
    hash: impl Fn(&T) -> i64,
    stored: &HashMap<String, Stored>,
) -> EntityPlan<'a, T> {
    let mut merge = EntityMerge::new(rows, key, hash);
    let mut keys: Vec<(&String, &Stored)> = stored.iter().collect();
    // Any order will do; a fixed one keeps the test deterministic.
    keys.sort_by(|a, b| a.0.cmp(b.0));
    for (k, s) in keys {
        merge.stored(k, s.hash, s.present);
    }
    merge.finish()
}

/// Sorts a snapshot's rows against the stored keys and hashes as they stream in, in any order,
/// without copying the stored keys (only those of removed rows). The first row of a repeated
/// key wins: a crawl that saw a record twice (offset pagination shifting under it) saw the same
/// one.
pub(crate) struct EntityMerge<'a, T> {
    /// The snapshot's rows without repeats, in their order.
    rows: Vec<Hashed<'a, T>>,
    /// Key -> position in `rows`.
    index: FastMap<&'a str, usize>,
    /// What the stored row of each of `rows` says.
    found: Vec<Found>,
    plan: EntityPlan<'a, T>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Nothing,
    Absent,
    Differs,
    Same,
}

impl<'a, T> EntityMerge<'a, T> {
    pub(crate) fn new(
        rows: &'a [T],
        key: impl Fn(&'a T) -> &'a str,
        hash: impl Fn(&T) -> i64,
    ) -> Self {
        Self::with_core(rows, key, |row| {
            let h = hash(row);
            (h, h)
        })
    }

    /// As [`EntityMerge::new`], with `hashes` giving each row's hash and core hash at once.
    pub(crate) fn with_core(
        rows: &'a [T],
        key: impl Fn(&'a T) -> &'a str,
        hashes: impl Fn(&T) -> (i64, i64),
    ) -> Self {
        let mut index = FastMap::with_capacity(rows.len());
        let mut unique = Vec::with_capacity(rows.len());
        let mut duplicates = 0;
        for row in rows {
            match index.entry(key(row)) {
                hashbrown::hash_map::Entry::Occupied(_) => duplicates += 1,
                hashbrown::hash_map::Entry::Vacant(v) => {
                    v.insert(unique.len());
                    let (hash, core) = hashes(row);
                    unique.push(Hashed { row, hash, core });
                }
            }
        }
        EntityMerge {
            found: vec![Found::Nothing; unique.len()],
            plan: EntityPlan {
                fresh: Vec::new(),
                readded: Vec::new(),
                suspect: Vec::new(),
                removed: Vec::new(),
                present_after: unique.len(),
                duplicates,
            },
            rows: unique,
            index,
        }
    }

    /// One stored row: its key, hash and whether it is present.
    pub(crate) fn stored(&mut self, key: &str, hash: i64, present: bool) {
        match self.index.get(key) {
            Some(&i) => {
                self.found[i] = if !present {
                    Found::Absent
                } else if self.rows[i].hash != hash {
                    Found::Differs
                } else {
                    Found::Same
                };
            }
            None if present => self.plan.removed.push(key.to_owned()),
            None => {}
        }
    }

    /// The plan, once every stored row has been seen; each list in the snapshot's order.
    pub(crate) fn finish(mut self) -> EntityPlan<'a, T> {
        for (h, found) in self.rows.iter().zip(&self.found) {
            match found {
                Found::Nothing => self.plan.fresh.push(*h),
                Found::Absent => self.plan.readded.push(*h),
                Found::Differs => self.plan.suspect.push(*h),
                Found::Same => {}
            }
        }
        self.plan.removed.sort_unstable();
        self.plan
    }
}

/// Change-log rows for additions and removals of a hashed table.
pub(crate) fn added_removed<T>(
    plan: &EntityPlan<'_, T>,
    key: impl Fn(&T) -> &str,
    added: ChangeKind,
    removed: ChangeKind,
    make: impl Fn(ChangeKind, &str) -> NewChange,
    out: &mut Vec<NewChange>,
) {
    for h in plan.fresh.iter().chain(&plan.readded) {
        out.push(make(added, key(h.row)));
    }
    for k in &plan.removed {
        out.push(make(removed, k));
    }
}

pub(crate) fn user_change(kind: ChangeKind, id: &str) -> NewChange {
    NewChange::user(kind, id)
}

pub(crate) fn group_change(kind: ChangeKind, id: &str) -> NewChange {
    NewChange::group(kind, id)
}

pub(crate) fn workspace_change(kind: ChangeKind, id: &str) -> NewChange {
    NewChange::workspace(kind, id)
}

fn json_text(raw: &RawJson) -> String {
    raw.as_str().to_owned()
}

/// The JSON text stored for an account's group list.
pub(crate) fn groups_json(groups: &[String]) -> String {
    // Serializing strings cannot fail; the fallback only keeps this function total.
    serde_json::to_string(groups).unwrap_or_else(|_| "[]".to_owned())
}

/// Field-level changes between a stored account and its new version: one row per changed field,
/// activation as its own kind, and `raw` only when no known field explains the difference. The
/// group list is not logged here (see below).
pub(crate) fn account_changes(old: &Account, new: &Account, out: &mut Vec<NewChange>) -> bool {
    let start = out.len();
    let id = new.user_id.as_str();
    let mut text = |field: &'static str, o: &Option<String>, n: &Option<String>| {
        if o != n {
            out.push(NewChange::user(ChangeKind::AccountChanged, id).field(
                field,
                o.clone(),
                n.clone(),
            ));
        }
    };
    text("login_name", &old.login_name, &new.login_name);
    text("email", &old.email, &new.email);
    text("first_name", &old.first_name, &new.first_name);
    text("last_name", &old.last_name, &new.last_name);
    text("display_name", &old.display_name, &new.display_name);
    text("user_type", &old.user_type, &new.user_type);
    text(
        "default_database",
        &old.default_database,
        &new.default_database,
    );
    text("phone", &old.phone, &new.phone);
    text("department", &old.department, &new.department);
    text("title", &old.title, &new.title);
    text("created_date", &old.created_date, &new.created_date);
    if old.active != new.active {
        let kind = if new.active {
            ChangeKind::AccountActivated
        } else {
            ChangeKind::AccountDeactivated
        };
        out.push(NewChange::user(kind, id).field(
            "active",
            Some(old.active.to_string()),
            Some(new.active.to_string()),
        ));
    }
    // `groups` (on the account and in its raw object) mirrors the memberships, whose changes
    // are logged as MEMBERSHIP_ADDED/REMOVED: the row is rewritten, but not logged twice.
    if out.len() == start && !eq_without_key(&old.raw, &new.raw, "groups") {
        out.push(NewChange::user(ChangeKind::AccountChanged, id).field(
            "raw",
            Some(json_text(&old.raw)),
            Some(json_text(&new.raw)),
        ));
    }
    out.len() > start
}

/// Whether two raw values are equal once `key` is left out of each (when they are objects).
fn eq_without_key(a: &RawJson, b: &RawJson, key: &str) -> bool {
    if a.as_str() == b.as_str() {
        return true;
    }
    match (&a.to_value(), &b.to_value()) {
        (Value::Object(a), Value::Object(b)) => {
            let len =
                |m: &serde_json::Map<String, Value>| m.len() - usize::from(m.contains_key(key));
            len(a) == len(b)
                && a.iter()
                    .filter(|(k, _)| k.as_str() != key)
                    .all(|(k, v)| b.get(k) == Some(v))
        }
        _ => a == b,
    }
}

/// Field-level changes of a group. A changed `member_count` alone is stored but not logged.
pub(crate) fn group_changes(old: &Group, new: &Group, out: &mut Vec<NewChange>) -> bool {
    let start = out.len();
    let id = new.group_id.as_str();
    if old.name != new.name {
        out.push(NewChange::group(ChangeKind::GroupChanged, id).field(
            "name",
            old.name.clone(),
            new.name.clone(),
        ));
    }
    // The member count moves with every membership change, which the membership rows log.
    if out.len() == start && !eq_without_key(&old.raw, &new.raw, "member_count") {
        out.push(NewChange::group(ChangeKind::GroupChanged, id).field(
            "raw",
            Some(json_text(&old.raw)),
            Some(json_text(&new.raw)),
        ));
    }
    out.len() > start
}

/// Field-level changes of a workspace.
pub(crate) fn workspace_changes(
    old: &Workspace,
    new: &Workspace,
    out: &mut Vec<NewChange>,
) -> bool {
    let start = out.len();
    let id = new.workspace_id.as_str();
    if old.name != new.name {
        out.push(
            NewChange::workspace(ChangeKind::WorkspaceChanged, id).field(
                "name",
                old.name.clone(),
                new.name.clone(),
            ),
        );
    }
    if old.default_security != new.default_security {
        out.push(
            NewChange::workspace(ChangeKind::WorkspaceChanged, id).field(
                "default_security",
                Some(old.default_security.as_str().to_owned()),
                Some(new.default_security.as_str().to_owned()),
            ),
        );
    }
    if out.len() == start && old.raw != new.raw {
        out.push(
            NewChange::workspace(ChangeKind::WorkspaceChanged, id).field(
                "raw",
                Some(json_text(&old.raw)),
                Some(json_text(&new.raw)),
            ),
        );
    }
    out.len() > start
}

/// The plan for memberships, which have a key and no content.
#[derive(Debug)]
pub(crate) struct MembershipPlan<'a> {
    pub fresh: Vec<&'a Membership>,
    pub readded: Vec<&'a Membership>,
    /// `(group_id, user_id)`, sorted.
    pub removed: Vec<(String, String)>,
    pub present_after: usize,
    pub duplicates: usize,
}

/// The membership plan from a map of the stored keys: the reference the merge
/// ([`MembershipMerge`]) is tested against.
#[cfg(test)]
pub(crate) fn plan_memberships<'a>(
    rows: &'a [Membership],
    stored: &HashMap<(String, String), bool>,
) -> MembershipPlan<'a> {
    let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(rows.len());
    let mut plan = MembershipPlan {
        fresh: Vec::new(),
        readded: Vec::new(),
        removed: Vec::new(),
        present_after: 0,
        duplicates: 0,
    };
    // Looking a borrowed pair up in a map keyed by owned pairs needs an owned key; reuse one.
    let mut probe = (String::new(), String::new());
    for m in rows {
        if !seen.insert((m.group_id.as_str(), m.user_id.as_str())) {
            plan.duplicates += 1;
            continue;
        }
        probe.0.clear();
        probe.0.push_str(&m.group_id);
        probe.1.clear();
        probe.1.push_str(&m.user_id);
        match stored.get(&probe) {
            None => plan.fresh.push(m),
            Some(false) => plan.readded.push(m),
            Some(true) => {}
        }
    }
    plan.present_after = seen.len();
    plan.removed = stored
        .iter()
        .filter(|((g, u), present)| **present && !seen.contains(&(g.as_str(), u.as_str())))
        .map(|(k, _)| k.clone())
        .collect();
    plan.removed.sort_unstable();
    plan
}

/// The membership key, in the order the store reads its rows back (`ORDER BY group_id,
/// user_id`: both backends compare the bytes, as `str` does).
fn membership_key(m: &Membership) -> (&str, &str) {
    (m.group_id.as_str(), m.user_id.as_str())
}

/// The plan for memberships as a merge: the snapshot's memberships sorted by key, against the
/// stored ones read in the same order, one pass over each and no map of either. This is the
/// part of a harvest's commit that is proportional to the firm rather than to the change, so it
/// is kept to a comparison of two sorted lists. `fresh` comes out in key order.
pub(crate) struct MembershipMerge<'a> {
    rows: Vec<&'a Membership>,
    next: usize,
    /// The previous stored key, to refuse a read that is not in order.
    last: (String, String),
    started: bool,
    plan: MembershipPlan<'a>,
}

impl<'a> MembershipMerge<'a> {
    pub(crate) fn new(rows: &'a [Membership]) -> Self {
        let mut sorted: Vec<&Membership> = rows.iter().collect();
        // The harvester hands them over sorted; a stable sort keeps the first of a repeated key
        // first otherwise.
        if !sorted
            .windows(2)
            .all(|w| membership_key(w[0]) <= membership_key(w[1]))
        {
            sorted.sort_by(|a, b| membership_key(a).cmp(&membership_key(b)));
        }
        let before = sorted.len();
        sorted.dedup_by(|later, kept| membership_key(later) == membership_key(kept));
        MembershipMerge {
            plan: MembershipPlan {
                fresh: Vec::new(),
                readded: Vec::new(),
                removed: Vec::new(),
                present_after: sorted.len(),
                duplicates: before - sorted.len(),
            },
            rows: sorted,
            next: 0,
            last: (String::new(), String::new()),
            started: false,
        }
    }

    /// The next stored membership. Keys must come in strictly ascending order; `false` (and
    /// nothing planned from it) when one does not.
    pub(crate) fn stored(&mut self, group_id: &str, user_id: &str, present: bool) -> bool {
        let key = (group_id, user_id);
        if self.started && (self.last.0.as_str(), self.last.1.as_str()) >= key {
            return false;
        }
        self.started = true;
        self.last.0.clear();
        self.last.0.push_str(group_id);
        self.last.1.clear();
        self.last.1.push_str(user_id);
        while let Some(m) = self.rows.get(self.next).copied() {
            match membership_key(m).cmp(&key) {
                std::cmp::Ordering::Less => {
                    self.plan.fresh.push(m);
                    self.next += 1;
                }
                std::cmp::Ordering::Equal => {
                    if !present {
                        self.plan.readded.push(m);
                    }
                    self.next += 1;
                    return true;
                }
                std::cmp::Ordering::Greater => break,
            }
        }
        if present {
            self.plan
                .removed
                .push((group_id.to_owned(), user_id.to_owned()));
        }
        true
    }

    /// The plan, once every stored membership has been seen.
    pub(crate) fn finish(mut self) -> MembershipPlan<'a> {
        self.plan
            .fresh
            .extend(self.rows.get(self.next..).unwrap_or_default());
        self.plan
    }
}

impl<'a> MembershipMerge<'a> {
    /// The snapshot's memberships, sorted by key and without repeats.
    pub(crate) fn rows(&self) -> &[&'a Membership] {
        &self.rows
    }

    /// The plan from the stored groups of only the users whose memberships may have changed,
    /// instead of from every stored membership: `changed` maps each such user to its present
    /// stored groups, sorted (empty when it had none). A user left out must have exactly the
    /// same present groups stored as in the snapshot; it then adds and removes nothing. Also
    /// returns the snapshot's groups of each changed user that has any.
    ///
    /// Whether an added membership was stored before (and is back) is not known here, so every
    /// addition is planned as `readded`, which is written as an upsert: right either way. The
    /// change log does not tell the two apart.
    pub(crate) fn plan_users(
        self,
        changed: &FastMap<String, Vec<String>>,
    ) -> (MembershipPlan<'a>, MemberSets<'a>) {
        let mut plan = self.plan;
        let mut now: MemberSets<'a> = FastMap::new();
        for m in &self.rows {
            let Some(stored) = changed.get(m.user_id.as_str()) else {
                continue;
            };
            now.entry(m.user_id.as_str())
                .or_default()
                .push(m.group_id.as_str());
            if stored
                .binary_search_by(|g| g.as_str().cmp(&m.group_id))
                .is_err()
            {
                plan.readded.push(m);
            }
        }
        for (user, stored) in changed {
            let groups = now.get(user.as_str()).map_or(&[][..], Vec::as_slice);
            for g in stored {
                if groups.binary_search(&g.as_str()).is_err() {
                    plan.removed.push((g.clone(), user.clone()));
                }
            }
        }
        plan.removed.sort_unstable();
        (plan, now)
    }
}

/// Each user's groups among a snapshot's memberships, sorted by group id.
pub(crate) type MemberSets<'a> = FastMap<&'a str, Vec<&'a str>>;

/// The member sets of memberships sorted by key and without repeats (as
/// [`MembershipMerge::rows`] has them): walking them group by group appends each user's groups
/// in order.
pub(crate) fn member_sets<'a>(rows: &[&'a Membership]) -> MemberSets<'a> {
    let mut sets: MemberSets<'a> = FastMap::new();
    for m in rows {
        sets.entry(m.user_id.as_str())
            .or_default()
            .push(m.group_id.as_str());
    }
    sets
}

/// Each user's digest of its groups ([`crate::hash::member_set`]) among memberships sorted by key
/// and without repeats, computed as they are walked, without collecting the sets.
pub(crate) fn member_digests<'a>(rows: &[&'a Membership]) -> FastMap<&'a str, i64> {
    let mut partial: FastMap<&'a str, crate::hash::MemberSetHasher> = FastMap::new();
    for m in rows {
        partial
            .entry(m.user_id.as_str())
            .or_default()
            .group(&m.group_id);
    }
    partial.into_iter().map(|(u, h)| (u, h.finish())).collect()
}

pub(crate) fn membership_changes(plan: &MembershipPlan<'_>, out: &mut Vec<NewChange>) {
    for m in plan.fresh.iter().chain(&plan.readded) {
        out.push(NewChange::membership(
            ChangeKind::MembershipAdded,
            &m.group_id,
            &m.user_id,
        ));
    }
    for (g, u) in &plan.removed {
        out.push(NewChange::membership(ChangeKind::MembershipRemoved, g, u));
    }
}

/// How a workspace entry's principal is stored.
pub(crate) const PRINCIPAL_USER: &str = "user";
pub(crate) const PRINCIPAL_GROUP: &str = "group";

pub(crate) fn principal_kind(is_group: bool) -> &'static str {
    if is_group {
        PRINCIPAL_GROUP
    } else {
        PRINCIPAL_USER
    }
}

/// `(workspace_id, principal kind, principal_id)`.
pub(crate) type EntryKey = (String, String, String);

/// The stored access of an entry and whether it is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredEntry {
    pub access: String,
    pub present: bool,
}

#[derive(Debug)]
pub(crate) struct EntryPlan<'a> {
    pub fresh: Vec<&'a WorkspaceEntry>,
    /// Re-added or with a changed access level.
    pub rewrite: Vec<&'a WorkspaceEntry>,
    pub removed: Vec<EntryKey>,
    pub changes: Vec<NewChange>,
    pub added: u64,
    pub changed: u64,
    pub duplicates: usize,
}

pub(crate) fn plan_entries<'a>(
    rows: &'a [WorkspaceEntry],
    stored: &HashMap<EntryKey, StoredEntry>,
) -> EntryPlan<'a> {
    let mut seen: HashSet<EntryKey> = HashSet::with_capacity(rows.len());
    let mut plan = EntryPlan {
        fresh: Vec::new(),
        rewrite: Vec::new(),
        removed: Vec::new(),
        changes: Vec::new(),
        added: 0,
        changed: 0,
        duplicates: 0,
    };
    for e in rows {
        let key: EntryKey = (
            e.workspace_id.clone(),
            principal_kind(e.is_group).to_owned(),
            e.principal_id.clone(),
        );
        let access = e.access.as_str();
        match stored.get(&key) {
            _ if seen.contains(&key) => {
                plan.duplicates += 1;
                continue;
            }
            None => {
                plan.fresh.push(e);
                plan.added += 1;
                plan.changes.push(
                    NewChange::entry(ChangeKind::WorkspaceEntryAdded, &key).field(
                        "access",
                        None,
                        Some(access.to_owned()),
                    ),
                );
            }
            Some(s) if !s.present => {
                plan.rewrite.push(e);
                plan.added += 1;
                plan.changes.push(
                    NewChange::entry(ChangeKind::WorkspaceEntryAdded, &key).field(
                        "access",
                        None,
                        Some(access.to_owned()),
                    ),
                );
            }
            Some(s) if s.access != access => {
                plan.rewrite.push(e);
                plan.changed += 1;
                plan.changes.push(
                    NewChange::entry(ChangeKind::WorkspaceEntryChanged, &key).field(
                        "access",
                        Some(s.access.clone()),
                        Some(access.to_owned()),
                    ),
                );
            }
            Some(_) => {}
        }
        seen.insert(key);
    }
    plan.removed = stored
        .iter()
        .filter(|(k, s)| s.present && !seen.contains(*k))
        .map(|(k, _)| k.clone())
        .collect();
    plan.removed.sort_unstable();
    for k in &plan.removed {
        let old = stored.get(k).map(|s| s.access.clone());
        plan.changes.push(
            NewChange::entry(ChangeKind::WorkspaceEntryRemoved, k).field("access", old, None),
        );
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn account(id: &str) -> Account {
        Account {
            database: "db".into(),
            user_id: id.into(),
            login_name: Some(format!("{id}@login")),
            active: true,
            raw: json!({"id": id}).into(),
            ..Account::default()
        }
    }

    fn stored(entries: &[(&str, i64, bool)]) -> HashMap<String, Stored> {
        entries
            .iter()
            .map(|(k, hash, present)| {
                (
                    (*k).to_owned(),
                    Stored {
                        hash: *hash,
                        present: *present,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn entities_are_sorted_into_fresh_back_suspect_and_removed() {
        let rows = vec![account("a"), account("b"), account("c"), account("a")];
        let hash_b = crate::hash::account(&rows[1]);
        let index = stored(&[
            ("b", hash_b, true),
            ("c", 1, true),
            ("d", 2, true),
            ("e", 3, false),
        ]);
        let plan = plan_entities(&rows, |a| &a.user_id, crate::hash::account, &index);
        let ids =
            |v: &[Hashed<'_, Account>]| v.iter().map(|h| h.row.user_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&plan.fresh), ["a"]);
        assert!(plan.readded.is_empty());
        assert_eq!(ids(&plan.suspect), ["c"]);
        assert_eq!(plan.removed, ["d"]);
        assert_eq!(plan.present_after, 3);
        assert_eq!(plan.duplicates, 1);
    }

    #[test]
    fn account_field_changes_name_each_field_and_activation() {
        let old = account("a");
        let mut new = old.clone();
        new.email = Some("a@x.test".into());
        new.active = false;
        new.raw = json!({"id": "a", "email": "a@x.test"}).into();
        let mut out = Vec::new();
        assert!(account_changes(&old, &new, &mut out));
        let kinds: Vec<_> = out.iter().map(|c| (c.kind, c.field)).collect();
        assert_eq!(
            kinds,
            [
                (ChangeKind::AccountChanged, Some("email")),
                (ChangeKind::AccountDeactivated, Some("active")),
            ]
        );
        assert_eq!(out[0].old_value, None);
        assert_eq!(out[0].new_value.as_deref(), Some("a@x.test"));
        assert_eq!(out[1].old_value.as_deref(), Some("true"));
    }

    #[test]
    fn raw_only_differences_are_logged_as_raw_and_group_lists_are_not() {
        let mut old = account("a");
        old.groups = vec!["g1".into(), "g2".into()];
        let mut new = old.clone();
        new.groups = vec!["g2".into(), "g3".into()];
        new.raw.update(|v| v["groups"] = json!(["g2", "g3"]));
        let mut out = Vec::new();
        assert!(
            !account_changes(&old, &new, &mut out),
            "group lists change with memberships, which are logged on their own"
        );
        new.raw = json!({"id": "a", "custom": 1}).into();
        assert!(account_changes(&old, &new, &mut out));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].field, Some("raw"));
    }

    #[test]
    fn a_group_member_count_alone_is_not_logged() {
        let old = Group {
            database: "db".into(),
            group_id: "g".into(),
            name: Some("G".into()),
            member_count: Some(1),
            raw: json!({"id": "g", "name": "G", "member_count": 1}).into(),
        };
        let mut new = old.clone();
        new.member_count = Some(2);
        new.raw = json!({"id": "g", "name": "G", "member_count": 2}).into();
        let mut out = Vec::new();
        assert!(!group_changes(&old, &new, &mut out));
        new.name = Some("H".into());
        assert!(group_changes(&old, &new, &mut out));
        assert_eq!(out[0].field, Some("name"));
    }

    #[test]
    fn memberships_plan_keys_and_duplicates() {
        let m = |g: &str, u: &str| Membership {
            database: "db".into(),
            group_id: g.into(),
            user_id: u.into(),
        };
        let rows = vec![m("g", "a"), m("g", "b"), m("g", "a"), m("h", "c")];
        let index: HashMap<(String, String), bool> = [
            (("g".to_owned(), "b".to_owned()), true),
            (("h".to_owned(), "c".to_owned()), false),
            (("h".to_owned(), "z".to_owned()), true),
        ]
        .into_iter()
        .collect();
        let plan = plan_memberships(&rows, &index);
        assert_eq!(plan.fresh.len(), 1);
        assert_eq!(plan.readded[0].user_id, "c");
        assert_eq!(plan.removed, [("h".to_owned(), "z".to_owned())]);
        assert_eq!(plan.duplicates, 1);
        assert_eq!(plan.present_after, 3);

        // The merge gives the same plan from the stored rows in key order.
        let mut stored: Vec<(&(String, String), &bool)> = index.iter().collect();
        stored.sort();
        let mut merge = MembershipMerge::new(&rows);
        for ((g, u), present) in stored {
            assert!(merge.stored(g, u, *present));
        }
        let merged = merge.finish();
        assert_eq!(merged.fresh.len(), 1);
        assert_eq!(merged.fresh[0].user_id, "a");
        assert_eq!(merged.readded[0].user_id, "c");
        assert_eq!(merged.removed, [("h".to_owned(), "z".to_owned())]);
        assert_eq!(merged.duplicates, 1);
        assert_eq!(merged.present_after, 3);
    }

    #[test]
    fn the_membership_merge_handles_ends_and_refuses_disorder() {
        let m = |g: &str, u: &str| Membership {
            database: "db".into(),
            group_id: g.into(),
            user_id: u.into(),
        };
        // Unsorted input; stored rows before, between and after the snapshot's.
        let rows = vec![m("g", "c"), m("a", "a"), m("z", "z")];
        let mut merge = MembershipMerge::new(&rows);
        assert!(merge.stored("a", "0", true));
        assert!(merge.stored("a", "a", true));
        assert!(merge.stored("g", "b", false));
        assert!(merge.stored("g", "d", true));
        let plan = merge.finish();
        let fresh: Vec<(&str, &str)> = plan
            .fresh
            .iter()
            .map(|m| (m.group_id.as_str(), m.user_id.as_str()))
            .collect();
        assert_eq!(fresh, [("g", "c"), ("z", "z")], "in key order");
        assert!(plan.readded.is_empty());
        assert_eq!(
            plan.removed,
            [
                ("a".to_owned(), "0".to_owned()),
                ("g".to_owned(), "d".to_owned())
            ]
        );
        // A stored key out of order is refused.
        let mut merge = MembershipMerge::new(&rows);
        assert!(merge.stored("g", "x", true));
        assert!(!merge.stored("a", "a", true));
        assert!(
            !merge.stored("g", "x", true),
            "repeats are out of order too"
        );
    }

    #[test]
    fn planning_by_changed_users_matches_the_merge() {
        let m = |g: &str, u: &str| Membership {
            database: "db".into(),
            group_id: g.into(),
            user_id: u.into(),
        };
        // Stored: (group, user, present). u1 unchanged; u2 leaves g1, joins g3 (stored absent,
        // so back); u3 leaves everything; u4 is new; u5 only has an absent row and stays out.
        let stored = [
            ("g1", "u1", true),
            ("g1", "u2", true),
            ("g1", "u3", true),
            ("g2", "u1", true),
            ("g2", "u3", true),
            ("g3", "u2", false),
            ("g3", "u5", false),
        ];
        let rows = vec![
            m("g2", "u1"),
            m("g1", "u1"),
            m("g3", "u2"),
            m("g1", "u4"),
            m("g3", "u4"),
            m("g1", "u1"),
        ];
        let mut merge = MembershipMerge::new(&rows);
        for (g, u, present) in stored {
            assert!(merge.stored(g, u, present));
        }
        let merged = merge.finish();

        let merge = MembershipMerge::new(&rows);
        let digests = member_digests(merge.rows());
        let mut present: HashMap<&str, Vec<&str>> = HashMap::new();
        for (g, u, p) in stored {
            if p {
                present.entry(u).or_default().push(g);
            }
        }
        let mut changed: FastMap<String, Vec<String>> = FastMap::new();
        for (u, groups) in &present {
            if digests.get(u) != Some(&crate::hash::member_set(groups)) {
                changed.insert(
                    (*u).to_owned(),
                    groups.iter().map(|g| (*g).to_owned()).collect(),
                );
            }
        }
        for u in digests.keys() {
            if !present.contains_key(u) {
                changed.insert((*u).to_owned(), Vec::new());
            }
        }
        let mut names: Vec<&String> = changed.keys().collect();
        names.sort();
        assert_eq!(names, ["u2", "u3", "u4"], "u1's digest matches");
        let (by_users, sets) = merge.plan_users(&changed);
        let keys = |v: &[&Membership]| {
            let mut k: Vec<(String, String)> = v
                .iter()
                .map(|m| (m.group_id.clone(), m.user_id.clone()))
                .collect();
            k.sort();
            k
        };
        let mut added = merged.fresh.clone();
        added.extend(&merged.readded);
        assert_eq!(keys(&by_users.readded), keys(&added));
        assert!(by_users.fresh.is_empty());
        assert_eq!(by_users.removed, merged.removed);
        assert_eq!(by_users.present_after, merged.present_after);
        assert_eq!(by_users.duplicates, merged.duplicates);
        assert_eq!(sets.get("u4"), Some(&vec!["g1", "g3"]));
        assert_eq!(sets.get("u3"), None);
    }

    #[test]
    fn member_digests_hash_each_users_sorted_groups() {
        let rows: Vec<Membership> = [("a", "u1"), ("a", "u2"), ("b", "u1"), ("c", "u1")]
            .iter()
            .map(|(g, u)| Membership {
                database: "db".into(),
                group_id: (*g).into(),
                user_id: (*u).into(),
            })
            .collect();
        let refs: Vec<&Membership> = rows.iter().collect();
        let d = member_digests(&refs);
        assert_eq!(d["u1"], crate::hash::member_set(&["a", "b", "c"]));
        assert_eq!(d["u2"], crate::hash::member_set(&["a"]));
        assert_ne!(d["u1"], crate::hash::member_set(&["a", "b"]));
        assert_ne!(
            crate::hash::member_set(&["ab", "c"]),
            crate::hash::member_set(&["a", "bc"])
        );
    }
}
