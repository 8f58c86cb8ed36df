//! Pure planning of a commit: which rows of a snapshot are new, back, changed or gone, and which
//! change-log rows that makes. No IO here, so the rules are unit-tested on their own.

use std::collections::{HashMap, HashSet};

use model::{Account, Group, Membership, Workspace, WorkspaceEntry};
use serde_json::Value;

use crate::types::ChangeKind;

/// What the store holds for one keyed row: its content hash and whether it is present.
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
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hashed<'a, T> {
    pub row: &'a T,
    pub hash: i64,
}

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

/// Sorts a snapshot's rows against the stored keys and hashes. The first row of a repeated key
/// wins: a crawl that saw a record twice (offset pagination shifting under it) saw the same one.
pub(crate) fn plan_entities<'a, T>(
    rows: &'a [T],
    key: impl Fn(&T) -> &str,
    hash: impl Fn(&T) -> i64,
    stored: &HashMap<String, Stored>,
) -> EntityPlan<'a, T> {
    let mut seen: HashSet<&str> = HashSet::with_capacity(rows.len());
    let mut plan = EntityPlan {
        fresh: Vec::new(),
        readded: Vec::new(),
        suspect: Vec::new(),
        removed: Vec::new(),
        present_after: 0,
        duplicates: 0,
    };
    for row in rows {
        let k = key(row);
        if !seen.insert(k) {
            plan.duplicates += 1;
            continue;
        }
        let h = Hashed {
            row,
            hash: hash(row),
        };
        match stored.get(k) {
            None => plan.fresh.push(h),
            Some(s) if !s.present => plan.readded.push(h),
            Some(s) if s.hash != h.hash => plan.suspect.push(h),
            Some(_) => {}
        }
    }
    plan.present_after = seen.len();
    plan.removed = stored
        .iter()
        .filter(|(k, s)| s.present && !seen.contains(k.as_str()))
        .map(|(k, _)| k.clone())
        .collect();
    plan.removed.sort_unstable();
    plan
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

fn json_text(v: &Value) -> String {
    v.to_string()
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
    if out.len() == start && without_key(&old.raw, "groups") != without_key(&new.raw, "groups") {
        out.push(NewChange::user(ChangeKind::AccountChanged, id).field(
            "raw",
            Some(json_text(&old.raw)),
            Some(json_text(&new.raw)),
        ));
    }
    out.len() > start
}

/// A raw object without one of its keys (a copy only when the key is there).
fn without_key<'v>(raw: &'v Value, key: &str) -> std::borrow::Cow<'v, Value> {
    match raw {
        Value::Object(map) if map.contains_key(key) => {
            let mut m = map.clone();
            m.remove(key);
            std::borrow::Cow::Owned(Value::Object(m))
        }
        other => std::borrow::Cow::Borrowed(other),
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
    if out.len() == start
        && without_key(&old.raw, "member_count") != without_key(&new.raw, "member_count")
    {
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
            raw: json!({"id": id}),
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
        new.raw = json!({"id": "a", "email": "a@x.test"});
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
        new.raw["groups"] = json!(["g2", "g3"]);
        let mut out = Vec::new();
        assert!(
            !account_changes(&old, &new, &mut out),
            "group lists change with memberships, which are logged on their own"
        );
        new.raw = json!({"id": "a", "custom": 1});
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
            raw: json!({"id": "g", "name": "G", "member_count": 1}),
        };
        let mut new = old.clone();
        new.member_count = Some(2);
        new.raw = json!({"id": "g", "name": "G", "member_count": 2});
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
}
