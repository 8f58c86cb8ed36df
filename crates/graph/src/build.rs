//! From the store's rows to an immutable [`Graph`]: canonical order, interning, linking,
//! stable ids, adjacency and indexes.
//!
//! At scale (a million accounts, ten million memberships) the work is arranged for two cores:
//! memberships become adjacency lists (integer counting sorts, no strings) on one thread while
//! the accounts are normalized in two halves and interned, linked and given ids on the other;
//! the input's strings are freed on a helper thread once read. Every step's result is
//! independent of that arrangement.

use crate::ids;
use crate::intern::{Interner, Sym};
use crate::normalize::{names_disagree, push_last_name_key, push_name_key, Normalizer};
use crate::{
    AccountNode, AnomalyRec, ConflictKind, ConflictRec, DbNode, EvidenceKey, Graph, GroupNode,
    IndexedInput, Input, Link, PersonNode, ResolveConfig, WorkspaceNode,
};
use hashbrown::{DefaultHashBuilder, HashMap, HashSet, HashTable};
use model::{Access, Account, OverrideKind};
use petgraph::csr::Csr;
use petgraph::unionfind::UnionFind;
use std::cmp::Ordering;
use std::hash::BuildHasher;

/// Email or login groups larger than this are not linked within (a default address, a
/// placeholder login): they are reported, since no sound rule links hundreds of accounts.
const MAX_KEY_GROUP: usize = 64;

/// The string-keyed input: memberships are first turned into index pairs (one hash lookup of a
/// compact `(database, id)` key per row, on two threads), then resolved as the indexed form.
pub(crate) fn build(input: Input, config: &ResolveConfig) -> Graph {
    let mut timer = PhaseTimer::new();
    let Input {
        accounts,
        groups,
        memberships,
        workspaces,
        workspace_entries,
        overrides,
        previous,
    } = input;
    let pairs = membership_pairs(&accounts, &groups, &memberships);
    // Freeing millions of small strings takes a while: let another thread do it.
    spawn("resolve-free", move || drop(memberships));
    timer.phase("membership keys");
    build_indexed(
        IndexedInput {
            accounts,
            groups,
            memberships: pairs,
            workspaces,
            workspace_entries,
            overrides,
            previous,
        },
        config,
        timer,
    )
}

/// Each membership row as `(account, group)` indexes into the given vectors; rows naming an
/// unknown database, account or group are dropped (the store only keeps consistent snapshots,
/// so this is defensive). With duplicate accounts or groups the first one is named; the
/// canonical ordering later maps duplicates to one node anyway.
fn membership_pairs(
    accounts: &[Account],
    groups: &[model::Group],
    memberships: &[model::Membership],
) -> Vec<(u32, u32)> {
    let hasher = DefaultHashBuilder::default();
    let mut db_ids: HashMap<&str, u16> = HashMap::new();
    let mut account_db: Vec<u16> = Vec::with_capacity(accounts.len());
    for a in accounts {
        let n = db_ids.len() as u16;
        account_db.push(*db_ids.entry(a.database.as_str()).or_insert(n));
    }
    let mut group_db: Vec<u16> = Vec::with_capacity(groups.len());
    for g in groups {
        let n = db_ids.len() as u16;
        group_db.push(*db_ids.entry(g.database.as_str()).or_insert(n));
    }
    let key_hash = |db: u16, id: &str| hasher.hash_one((db, id));
    let account_id = |i: usize| accounts[i].user_id.as_str();
    let group_id = |i: usize| groups[i].group_id.as_str();
    let account_table = key_table(&account_db, account_id, key_hash);
    let group_table = key_table(&group_db, group_id, key_hash);
    let rows_to_pairs = |rows: &[model::Membership]| -> Vec<(u32, u32)> {
        let mut out = Vec::with_capacity(rows.len());
        let mut last: Option<(&str, &str, u16, u32)> = None;
        for m in rows {
            let (db, g) = match last {
                Some((d, gid, db, g)) if d == m.database && gid == m.group_id => (db, g),
                _ => {
                    let Some(&db) = db_ids.get(m.database.as_str()) else {
                        continue;
                    };
                    let h = key_hash(db, &m.group_id);
                    let same = |j: &u32| {
                        group_db[*j as usize] == db && group_id(*j as usize) == m.group_id
                    };
                    let Some(&g) = group_table.find(h, same) else {
                        continue;
                    };
                    last = Some((m.database.as_str(), m.group_id.as_str(), db, g));
                    (db, g)
                }
            };
            let h = key_hash(db, &m.user_id);
            let same =
                |j: &u32| account_db[*j as usize] == db && account_id(*j as usize) == m.user_id;
            if let Some(&a) = account_table.find(h, same) {
                out.push((a, g));
            }
        }
        out
    };
    let (first, second) = memberships.split_at(memberships.len() / 2);
    std::thread::scope(|s| {
        let other = spawn_scoped(s, "resolve-keys", || rows_to_pairs(second));
        let mut pairs = rows_to_pairs(first);
        pairs.extend(join(other));
        pairs
    })
}

/// A hash table of row indexes by `(database, id)`, the first row of each key.
fn key_table<'a>(
    dbs: &[u16],
    id: impl Fn(usize) -> &'a str,
    key_hash: impl Fn(u16, &str) -> u64,
) -> HashTable<u32> {
    let mut table: HashTable<u32> = HashTable::with_capacity(dbs.len());
    for (i, &db) in dbs.iter().enumerate() {
        let h = key_hash(db, id(i));
        let same = |j: &u32| dbs[*j as usize] == db && id(*j as usize) == id(i);
        if table.find(h, same).is_none() {
            table.insert_unique(h, i as u32, |j| key_hash(dbs[*j as usize], id(*j as usize)));
        }
    }
    table
}

/// Spawns a named thread (names show in profilers).
pub(crate) fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("the system can start a thread")
}

/// Spawns a named scoped thread (names show in profilers).
pub(crate) fn spawn_scoped<'scope, T: Send + 'scope>(
    s: &'scope std::thread::Scope<'scope, '_>,
    name: &str,
    f: impl FnOnce() -> T + Send + 'scope,
) -> std::thread::ScopedJoinHandle<'scope, T> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn_scoped(s, f)
        .expect("the system can start a thread")
}

/// The result of a scoped or spawned thread, re-raising its panic.
pub(crate) fn join<T>(handle: impl Joinable<T>) -> T {
    handle
        .join_result()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

pub(crate) trait Joinable<T> {
    fn join_result(self) -> std::thread::Result<T>;
}

impl<T> Joinable<T> for std::thread::ScopedJoinHandle<'_, T> {
    fn join_result(self) -> std::thread::Result<T> {
        self.join()
    }
}

impl<T> Joinable<T> for std::thread::JoinHandle<T> {
    fn join_result(self) -> std::thread::Result<T> {
        self.join()
    }
}

/// Sorts `rows` into canonical order and drops duplicates (equal under `cmp`; the first in
/// input order is kept). Returns the rows and, when they were not already strictly in order,
/// the new index of every original row (a duplicate maps to the row kept in its place).
fn canonical<T>(rows: Vec<T>, cmp: impl Fn(&T, &T) -> Ordering) -> (Vec<T>, Option<Vec<u32>>) {
    if rows.windows(2).all(|w| cmp(&w[0], &w[1]) == Ordering::Less) {
        return (rows, None);
    }
    // Sort a permutation rather than the (large) rows themselves.
    let mut order: Vec<u32> = (0..rows.len() as u32).collect();
    order.sort_unstable_by(|&x, &y| cmp(&rows[x as usize], &rows[y as usize]).then(x.cmp(&y)));
    let mut map = vec![0u32; rows.len()];
    let mut kept: Vec<u32> = Vec::with_capacity(rows.len());
    for &i in &order {
        let duplicate = kept
            .last()
            .is_some_and(|&k| cmp(&rows[k as usize], &rows[i as usize]) == Ordering::Equal);
        if !duplicate {
            kept.push(i);
        }
        map[i as usize] = kept.len() as u32 - 1;
    }
    let mut slots: Vec<Option<T>> = rows.into_iter().map(Some).collect();
    let rows = kept
        .iter()
        .filter_map(|&i| slots[i as usize].take())
        .collect();
    (rows, Some(map))
}

/// The runs of equal values: `(first index, value)` for each.
fn runs<'a>(values: impl Iterator<Item = &'a str>) -> Vec<(u32, &'a str)> {
    let mut out: Vec<(u32, &str)> = Vec::new();
    for (i, v) in values.enumerate() {
        if out.last().is_none_or(|(_, last)| *last != v) {
            out.push((i as u32, v));
        }
    }
    out
}

/// The normalized name keys of every account, for the linking rules: `name_key(first)` and
/// `last_name_key(last)`, back to back in one buffer.
struct NameKeys {
    buf: String,
    /// Per account: where its first-name key starts, where its last-name key starts and ends.
    spans: Vec<[u32; 3]>,
}

impl NameKeys {
    fn get(&self, a: u32) -> (&str, &str) {
        let [s, m, e] = self.spans[a as usize];
        (
            &self.buf[s as usize..m as usize],
            &self.buf[m as usize..e as usize],
        )
    }
}

/// A string to intern, as a span of [`Prepared::keys`] with its hash; `start == u32::MAX` for
/// none.
#[derive(Clone, Copy)]
struct KeySpan {
    start: u32,
    end: u32,
    hash: u64,
}

impl KeySpan {
    const NONE: KeySpan = KeySpan {
        start: u32::MAX,
        end: 0,
        hash: 0,
    };
}

/// One half of the accounts, normalized: what can be done without the shared interner.
struct Prepared {
    /// The account's own strings (user id, login, email, first and last name, display name),
    /// not deduplicated (they are nearly all distinct, or short): `nodes` name them by their
    /// index here.
    arena: String,
    ends: Vec<u32>,
    nodes: Vec<AccountNode>,
    /// Strings to intern (deduplicated): per account its login key, email key and user type,
    /// with their hashes.
    keys: String,
    key_spans: Vec<[KeySpan; 3]>,
    names: NameKeys,
}

fn prepare(
    accounts: &[Account],
    dbs: &[u16],
    norm: &Normalizer,
    hasher: &DefaultHashBuilder,
) -> Prepared {
    let n = accounts.len();
    let mut p = Prepared {
        arena: String::with_capacity(n * 64),
        ends: Vec::with_capacity(n * 5),
        nodes: Vec::with_capacity(n),
        keys: String::with_capacity(n * 32),
        key_spans: Vec::with_capacity(n),
        names: NameKeys {
            buf: String::with_capacity(n * 16),
            spans: Vec::with_capacity(n),
        },
    };
    let (mut scratch, mut key) = (String::new(), String::new());
    for (a, &db) in accounts.iter().zip(dbs) {
        let Prepared {
            arena, ends, keys, ..
        } = &mut p;
        let mut raw = |s: Option<&str>| match s {
            Some(s) => {
                arena.push_str(s);
                ends.push(arena.len() as u32);
                Sym(ends.len() as u32 - 1)
            }
            None => Sym::NONE,
        };
        let node = AccountNode {
            db,
            user_id: raw(Some(&a.user_id)),
            login: raw(a.login_name.as_deref()),
            email: raw(a.email.as_deref()),
            first: raw(a.first_name.as_deref()),
            last: raw(a.last_name.as_deref()),
            display: raw(a.display_name.as_deref()),
            user_type: Sym::NONE,
            login_key: Sym::NONE,
            email_key: Sym::NONE,
            active: a.active,
            external: a.is_external(),
        };
        let mut span = |s: Option<&str>| match s {
            Some(s) => {
                let start = keys.len() as u32;
                keys.push_str(s);
                KeySpan {
                    start,
                    end: keys.len() as u32,
                    hash: hasher.hash_one(s),
                }
            }
            None => KeySpan::NONE,
        };
        let login_key = a
            .login_name
            .as_deref()
            .filter(|l| norm.login_key_into(l, &mut scratch, &mut key))
            .map(|_| key.as_str());
        let login_key = span(login_key);
        let email_key = a
            .email
            .as_deref()
            .filter(|e| norm.email_key_into(e, &mut scratch, &mut key))
            .map(|_| key.as_str());
        let email_key = span(email_key);
        let spans = [login_key, email_key, span(a.user_type.as_deref())];
        p.key_spans.push(spans);
        p.nodes.push(node);
        let names = &mut p.names;
        let start = names.buf.len() as u32;
        if let Some(f) = &a.first_name {
            push_name_key(f, &mut names.buf);
        }
        let mid = names.buf.len() as u32;
        if let Some(l) = &a.last_name {
            push_last_name_key(l, &mut names.buf);
        }
        names.spans.push([start, mid, names.buf.len() as u32]);
    }
    p
}

/// Adjacency of memberships both ways: each group's members and each account's groups, sorted
/// and without duplicates.
struct Memberships {
    group_off: Vec<u32>,
    group_members: Vec<u32>,
    account_off: Vec<u32>,
    account_groups: Vec<u32>,
}

/// Turns `(account, group)` pairs (original indexes) into [`Memberships`] over the canonical
/// indexes, with counting sorts: linear, no comparisons. Pairs out of range or joining an
/// account and a group of different databases are dropped.
fn membership_lists(
    mut pairs: Vec<(u32, u32)>,
    account_map: Option<Vec<u32>>,
    group_map: Option<Vec<u32>>,
    account_db: &[u16],
    group_db: &[u16],
) -> Memberships {
    let (na, ng) = (account_db.len(), group_db.len());
    let original_na = account_map.as_ref().map_or(na, Vec::len);
    let original_ng = group_map.as_ref().map_or(ng, Vec::len);
    pairs.retain_mut(|(a, g)| {
        if *a as usize >= original_na || *g as usize >= original_ng {
            return false;
        }
        if let Some(m) = &account_map {
            *a = m[*a as usize];
        }
        if let Some(m) = &group_map {
            *g = m[*g as usize];
        }
        account_db[*a as usize] == group_db[*g as usize]
    });
    drop((account_map, group_map));
    // The store delivers memberships by group, then account: then the members per group are
    // the pairs as they come.
    let group_major = pairs
        .windows(2)
        .all(|w| (w[0].1, w[0].0) < (w[1].1, w[1].0));
    let (group_off, group_members) = if group_major {
        let off = offsets(ng, pairs.iter().map(|p| p.1));
        let members = pairs.iter().map(|p| p.0).collect();
        (off, members)
    } else {
        // Counting sort by account, then stably by group: group-major with accounts ascending,
        // duplicates adjacent.
        let account_off = offsets(na, pairs.iter().map(|p| p.0));
        let mut by_account = vec![0u32; pairs.len()];
        let mut fill = account_off.clone();
        for &(a, g) in &pairs {
            by_account[fill[a as usize] as usize] = g;
            fill[a as usize] += 1;
        }
        drop((pairs, fill));
        let (off, members) = transpose(&account_off, &by_account, ng);
        dedup_rows(off, members)
    };
    let (account_off, account_groups) = transpose(&group_off, &group_members, na);
    Memberships {
        group_off,
        group_members,
        account_off,
        account_groups,
    }
}

/// The transpose of a CSR (`off`, `items`) whose items are columns below `columns`: for each
/// column, the rows that hold it, ascending.
fn transpose(off: &[u32], items: &[u32], columns: usize) -> (Vec<u32>, Vec<u32>) {
    let out_off = offsets(columns, items.iter().copied());
    let mut out = vec![0u32; items.len()];
    let mut fill = out_off.clone();
    for row in 0..off.len().saturating_sub(1) {
        for &c in &items[off[row] as usize..off[row + 1] as usize] {
            out[fill[c as usize] as usize] = row as u32;
            fill[c as usize] += 1;
        }
    }
    (out_off, out)
}

/// Drops adjacent repeats within each row of a CSR.
fn dedup_rows(off: Vec<u32>, mut items: Vec<u32>) -> (Vec<u32>, Vec<u32>) {
    let mut out_off = vec![0u32; off.len()];
    let mut w = 0usize;
    for row in 0..off.len().saturating_sub(1) {
        let mut last = None;
        for i in off[row] as usize..off[row + 1] as usize {
            let v = items[i];
            if last != Some(v) {
                items[w] = v;
                w += 1;
                last = Some(v);
            }
        }
        out_off[row + 1] = w as u32;
    }
    items.truncate(w);
    (out_off, items)
}

/// The index of the row with `id` within `range` of `rows` sorted by id, if any.
fn find_in<T>(rows: &[T], range: (u32, u32), id: &str, id_of: impl Fn(&T) -> &str) -> Option<u32> {
    let slice = rows.get(range.0 as usize..range.1 as usize)?;
    slice
        .binary_search_by(|r| id_of(r).cmp(id))
        .ok()
        .map(|i| range.0 + i as u32)
}

pub(crate) fn build_indexed(
    input: IndexedInput,
    config: &ResolveConfig,
    mut timer: PhaseTimer,
) -> Graph {
    let IndexedInput {
        accounts,
        groups,
        memberships,
        mut workspaces,
        workspace_entries,
        overrides,
        previous,
    } = input;
    let norm = Normalizer::new(&config.email_domain_aliases, &config.login_domain_aliases);
    let mut strings = Interner::default();

    // Canonical order: the result must not depend on the order rows arrived in.
    let (accounts, account_map) = canonical(accounts, |a, b| {
        (&a.database, &a.user_id).cmp(&(&b.database, &b.user_id))
    });
    let (groups, group_map) = canonical(groups, |a, b| {
        (&a.database, &a.group_id).cmp(&(&b.database, &b.group_id))
    });
    workspaces.sort_by(|a, b| (&a.database, &a.workspace_id).cmp(&(&b.database, &b.workspace_id)));
    workspaces.dedup_by(|a, b| a.database == b.database && a.workspace_id == b.workspace_id);

    // Databases, in sorted order. Rows are sorted by database, so each database is one run of
    // rows: one pass over the rows finds the runs, and only the runs are looked up.
    let account_runs = runs(accounts.iter().map(|a| a.database.as_str()));
    let group_runs = runs(groups.iter().map(|g| g.database.as_str()));
    let workspace_runs = runs(workspaces.iter().map(|w| w.database.as_str()));
    let mut db_names: Vec<String> = account_runs
        .iter()
        .chain(&group_runs)
        .chain(&workspace_runs)
        .map(|(_, d)| d.to_string())
        .collect();
    db_names.sort_unstable();
    db_names.dedup();
    let db_index: HashMap<&str, u16> = db_names
        .iter()
        .enumerate()
        .map(|(i, d)| (d.as_str(), i as u16))
        .collect();
    let mut dbs: Vec<DbNode> = db_names
        .iter()
        .map(|d| DbNode {
            // Interned with the accounts' strings below.
            id: Sym::NONE,
            mode: config.security_modes.get(d).copied().unwrap_or_default(),
            accounts: (0, 0),
            groups: (0, 0),
            workspaces: (0, 0),
        })
        .collect();
    // Each row's database, and each database's (contiguous) range of rows.
    let db_of = |runs: &[(u32, &str)], len: usize| -> Vec<u16> {
        let mut out = Vec::with_capacity(len);
        for (i, &(start, name)) in runs.iter().enumerate() {
            let end = runs.get(i + 1).map_or(len, |r| r.0 as usize);
            out.resize(out.len() + (end - start as usize), db_index[name]);
        }
        out
    };
    let account_db = db_of(&account_runs, accounts.len());
    let group_db = db_of(&group_runs, groups.len());
    let workspace_db = db_of(&workspace_runs, workspaces.len());
    drop((account_runs, group_runs, workspace_runs));
    for (rows, range_of) in [
        (
            &account_db,
            (|d: &mut DbNode| &mut d.accounts) as fn(&mut DbNode) -> &mut (u32, u32),
        ),
        (&group_db, |d: &mut DbNode| &mut d.groups),
        (&workspace_db, |d: &mut DbNode| &mut d.workspaces),
    ] {
        for (i, &db) in rows.iter().enumerate() {
            let range = range_of(&mut dbs[db as usize]);
            if range.1 == 0 {
                range.0 = i as u32;
            }
            range.1 = i as u32 + 1;
        }
    }
    let n_accounts = accounts.len();
    let n_groups = groups.len();

    timer.phase("sort");
    // Memberships, on their own thread: integers only.
    let memberships_job = {
        let (account_db, group_db) = (account_db.clone(), group_db.clone());
        spawn("resolve-members", move || {
            membership_lists(memberships, account_map, group_map, &account_db, &group_db)
        })
    };

    // Accounts: normalized in two halves in parallel, then interned in order.
    let hasher = strings.hasher();
    let mid = n_accounts / 2;
    let halves: [Prepared; 2] = std::thread::scope(|s| {
        let second = spawn_scoped(s, "resolve-prepare", || {
            prepare(&accounts[mid..], &account_db[mid..], &norm, &hasher)
        });
        let first = prepare(&accounts[..mid], &account_db[..mid], &norm, &hasher);
        [first, join(second)]
    });
    // The first half's buffers become the graph's (growing a large buffer remaps it rather
    // than copying), the second half's are appended.
    let [first, second] = halves;
    let mut names = first.names;
    let name_base = names.buf.len() as u32;
    names.buf.push_str(&second.names.buf);
    names
        .spans
        .extend(second.names.spans.iter().map(|s| s.map(|x| x + name_base)));
    drop(second.names);
    let base = strings.adopt(first.arena, first.ends);
    let mut nodes = first.nodes;
    let shift = |s: Sym, base: u32| if s.is_none() { s } else { Sym(s.0 + base) };
    for node in &mut nodes {
        node.user_id = shift(node.user_id, base);
        node.login = shift(node.login, base);
        node.email = shift(node.email, base);
        node.first = shift(node.first, base);
        node.last = shift(node.last, base);
        node.display = shift(node.display, base);
    }
    let base = strings.append_chunk(&second.arena, &second.ends);
    drop((second.arena, second.ends));
    nodes.reserve_exact(second.nodes.len());
    nodes.extend(second.nodes.iter().map(|node| AccountNode {
        user_id: shift(node.user_id, base),
        login: shift(node.login, base),
        email: shift(node.email, base),
        first: shift(node.first, base),
        last: shift(node.last, base),
        display: shift(node.display, base),
        ..*node
    }));
    drop(second.nodes);
    strings.reserve(
        2 * n_accounts,
        first.keys.len() + second.keys.len(),
        2 * n_accounts + 64,
    );
    let spans = first
        .key_spans
        .iter()
        .map(|s| (s, &first.keys))
        .chain(second.key_spans.iter().map(|s| (s, &second.keys)));
    // User types are a handful of values, mostly repeated from the previous account.
    let mut last_user_type: Option<(&str, Sym)> = None;
    for (node, (spans, keys)) in nodes.iter_mut().zip(spans) {
        let mut intern = |k: KeySpan| {
            if k.start == u32::MAX {
                Sym::NONE
            } else {
                strings.intern_hashed(&keys[k.start as usize..k.end as usize], k.hash)
            }
        };
        let [login_key, email_key, user_type] = *spans;
        node.login_key = intern(login_key);
        node.email_key = intern(email_key);
        node.user_type = match last_user_type {
            _ if user_type.start == u32::MAX => Sym::NONE,
            Some((s, sym)) if s == &keys[user_type.start as usize..user_type.end as usize] => sym,
            _ => {
                let sym = intern(user_type);
                last_user_type =
                    Some((&keys[user_type.start as usize..user_type.end as usize], sym));
                sym
            }
        };
    }
    drop((first.keys, first.key_spans, second.keys, second.key_spans));
    for (db, name) in dbs.iter_mut().zip(&db_names) {
        db.id = strings.intern(name);
    }

    timer.phase("accounts");
    // Groups and workspaces.
    let group_nodes: Vec<GroupNode> = groups
        .iter()
        .zip(&group_db)
        .map(|(g, &db)| GroupNode {
            db,
            group_id: strings.intern(&g.group_id),
            name: strings.intern_opt(g.name.as_deref()),
        })
        .collect();
    let ws_nodes: Vec<WorkspaceNode> = workspaces
        .iter()
        .zip(&workspace_db)
        .map(|(w, &db)| WorkspaceNode {
            db,
            workspace_id: strings.intern(&w.workspace_id),
            name: strings.intern_opt(w.name.as_deref()),
            default: w.default_security,
        })
        .collect();
    // Lookups by id within a database: binary searches in the sorted rows.
    let account_of = |db: &str, id: &str| {
        let db = *db_index.get(db)?;
        find_in(&accounts, dbs[db as usize].accounts, id, |a| &a.user_id)
    };
    let group_of =
        |db: u16, id: &str| find_in(&groups, dbs[db as usize].groups, id, |g| &g.group_id);

    // Workspace security entries.
    let mut account_ws: Vec<(u32, u32, Access)> = Vec::new();
    let mut group_ws: Vec<(u32, u32, Access)> = Vec::new();
    for e in &workspace_entries {
        let Some(&db) = db_index.get(e.database.as_str()) else {
            continue;
        };
        let Some(w) = find_in(
            &workspaces,
            dbs[db as usize].workspaces,
            &e.workspace_id,
            |w| &w.workspace_id,
        ) else {
            continue;
        };
        if e.is_group {
            if let Some(g) = group_of(db, &e.principal_id) {
                group_ws.push((g, w, e.access));
            }
        } else if let Some(a) = account_of(&e.database, &e.principal_id) {
            account_ws.push((a, w, e.access));
        }
    }
    drop(workspace_entries);
    account_ws.sort_unstable();
    account_ws.dedup_by_key(|(a, w, _)| (*a, *w));
    group_ws.sort_unstable();
    group_ws.dedup_by_key(|(g, w, _)| (*g, *w));
    let (account_ws_off, account_ws) = csr_of(n_accounts, account_ws);
    let (group_ws_off, group_ws) = csr_of(group_nodes.len(), group_ws);

    // Overrides, as account index pairs, in id order.
    let mut overrides = overrides;
    overrides.sort_by_key(|o| o.id);
    let override_pairs: Vec<(OverrideKind, u32, u32)> = overrides
        .iter()
        .filter_map(|o| {
            let a = account_of(&o.a.database, &o.a.user_id)?;
            let b = account_of(&o.b.database, &o.b.user_id)?;
            (a != b).then_some((o.kind, a, b))
        })
        .collect();
    drop(overrides);
    // Everything the graph needs from the input's rows has been read: free them on another
    // thread meanwhile. The build runs on a thread of its own (see `crate::resolve`), so its
    // allocations do not meet these frees in the allocator.
    let freeing = spawn("resolve-free", move || drop((accounts, groups, workspaces)));

    timer.phase("groups, workspaces, overrides");
    // Linking.
    let mut linker = Linker::new(&nodes, &names, dbs.len());
    for &(kind, a, b) in &override_pairs {
        if kind == OverrideKind::CannotLink {
            linker.cannot.push((a, b));
        }
    }
    for &(kind, a, b) in &override_pairs {
        if kind == OverrideKind::MustLink {
            linker.must_link(a, b);
        }
    }
    // Emails first: the stronger key.
    let by_email = group_by(&nodes, |n| n.email_key);
    for (key, members) in by_email.iter() {
        linker.link_group(key, members, EvidenceKey::Email);
    }
    drop(by_email);
    let by_login = group_by(&nodes, |n| n.login_key);
    for (key, members) in by_login.iter() {
        linker.link_group(key, members, EvidenceKey::LoginName);
    }
    drop(by_login);
    let Linker {
        mut uf,
        links,
        mut conflicts,
        ..
    } = linker;
    drop(names);

    timer.phase("linking");
    // Clusters, ordered by their first account; each cluster's accounts ascending.
    let mut cluster_of_root = vec![u32::MAX; n_accounts];
    let mut account_cluster = vec![0u32; n_accounts];
    let mut n_clusters = 0u32;
    for a in 0..n_accounts as u32 {
        let r = uf.find_mut(a) as usize;
        if cluster_of_root[r] == u32::MAX {
            cluster_of_root[r] = n_clusters;
            n_clusters += 1;
        }
        account_cluster[a as usize] = cluster_of_root[r];
    }
    drop((uf, cluster_of_root));
    let (cluster_off, cluster_accounts) = {
        let off = offsets(n_clusters as usize, account_cluster.iter().copied());
        let mut members = vec![0u32; n_accounts];
        let mut fill = off.clone();
        for (a, &c) in account_cluster.iter().enumerate() {
            members[fill[c as usize] as usize] = a as u32;
            fill[c as usize] += 1;
        }
        (off, members)
    };

    // Stable ids; persons ordered by id as strings (the API pages by comparing ids).
    let assigned = ids::assign(
        &cluster_off,
        &cluster_accounts,
        |a| {
            let n = &nodes[a as usize];
            (db_names[n.db as usize].as_str(), strings.str(n.user_id))
        },
        &previous,
    );
    drop(previous);
    let mut order: Vec<u32> = (0..n_clusters).collect();
    order.sort_unstable_by(|&x, &y| {
        let (ix, sx) = &assigned.ids[x as usize];
        let (iy, sy) = &assigned.ids[y as usize];
        ix.cmp(iy).then(sx.cmp(sy))
    });
    let mut cluster_person = vec![0u32; n_clusters as usize];
    for (p, &c) in order.iter().enumerate() {
        cluster_person[c as usize] = p as u32;
    }
    let account_person: Vec<u32> = account_cluster
        .iter()
        .map(|&c| cluster_person[c as usize])
        .collect();
    drop((account_cluster, cluster_person));
    let mut persons: Vec<PersonNode> = Vec::with_capacity(n_clusters as usize);
    // Accounts per person: the clusters' lists in person order.
    let mut person_off: Vec<u32> = Vec::with_capacity(n_clusters as usize + 1);
    let mut person_accounts: Vec<u32> = Vec::with_capacity(n_accounts);
    person_off.push(0);
    for &c in &order {
        let (id, seq) = &assigned.ids[c as usize];
        let accounts = &cluster_accounts
            [cluster_off[c as usize] as usize..cluster_off[c as usize + 1] as usize];
        persons.push(PersonNode {
            id: strings.push(id),
            seq: *seq,
            display: person_display(accounts, &nodes, &mut strings),
        });
        person_accounts.extend_from_slice(accounts);
        person_off.push(person_accounts.len() as u32);
    }
    drop((order, cluster_off, cluster_accounts));
    let n_persons = persons.len();

    timer.phase("clusters and ids");
    let Memberships {
        group_off: members_off,
        group_members: members,
        account_off: groups_off,
        account_groups,
    } = join(memberships_job);

    timer.phase("memberships (waited for)");
    // One petgraph CSR for the whole graph: accounts, then groups, then persons. An account's
    // neighbours are its groups and then its person; a group's its members; a person's its
    // accounts. Edges are generated in sorted order, so the CSR is built in one pass. The
    // indexes by login and email are sorted on the other core meanwhile.
    let (net, login_index, email_index) = std::thread::scope(|s| {
        // On a fresh thread: `Csr::from_sorted_edges` grows its edge list step by step, and a
        // fresh allocator arena (without the build's small garbage) makes that cheap.
        let csr = spawn_scoped(s, "resolve-csr", || {
            let group_base = n_accounts as u32;
            let person_base = (n_accounts + n_groups) as u32;
            let mut edges: Vec<(u32, u32)> = Vec::with_capacity(2 * members.len() + 2 * n_accounts);
            for a in 0..n_accounts {
                let groups = &account_groups[groups_off[a] as usize..groups_off[a + 1] as usize];
                edges.extend(groups.iter().map(|&g| (a as u32, group_base + g)));
                edges.push((a as u32, person_base + account_person[a]));
            }
            for g in 0..n_groups {
                let accounts = &members[members_off[g] as usize..members_off[g + 1] as usize];
                edges.extend(accounts.iter().map(|&a| (group_base + g as u32, a)));
            }
            for p in 0..n_persons {
                let accounts = &person_accounts[person_off[p] as usize..person_off[p + 1] as usize];
                edges.extend(accounts.iter().map(|&a| (person_base + p as u32, a)));
            }
            let mut net: Csr<(), (), petgraph::Directed, u32> = if edges.is_empty() {
                Csr::new()
            } else {
                // The edges were generated in sorted order, so this cannot fail.
                Csr::from_sorted_edges(&edges).unwrap_or_else(|_| Csr::new())
            };
            drop(edges);
            while net.node_count() < n_accounts + n_groups + n_persons {
                net.add_node(());
            }
            net
        });
        let index = |key: fn(&AccountNode) -> Sym| {
            let mut index: Vec<(Sym, u32)> = nodes
                .iter()
                .zip(&account_person)
                .filter(|(n, _)| !key(n).is_none())
                .map(|(n, &p)| (key(n), p))
                .collect();
            index.sort_unstable();
            index.dedup();
            index
        };
        let login_index = index(|n| n.login_key);
        let email_index = index(|n| n.email_key);
        (join(csr), login_index, email_index)
    });
    drop((members, members_off, account_groups, groups_off));
    drop((person_accounts, person_off));

    timer.phase("csr");
    // Evidence, by person.
    let mut links = links;
    links.sort_by_key(|l| {
        (
            account_person[l.a as usize],
            l.kind as u8,
            l.value,
            l.a,
            l.b,
        )
    });
    let person_links_off = offsets(
        n_persons,
        links.iter().map(|l| account_person[l.a as usize]),
    );

    // Conflicts, and which persons they concern.
    for c in &mut conflicts {
        c.accounts.sort_unstable();
        c.accounts.dedup();
    }
    conflicts.sort_by(|a, b| {
        (a.kind as u8, &a.accounts, a.value).cmp(&(b.kind as u8, &b.accounts, b.value))
    });
    conflicts.dedup_by(|a, b| a.kind == b.kind && a.accounts == b.accounts && a.value == b.value);
    let mut person_conflict_pairs: Vec<(u32, u32)> = Vec::new();
    for (ci, c) in conflicts.iter().enumerate() {
        for &a in &c.accounts {
            person_conflict_pairs.push((account_person[a as usize], ci as u32));
        }
    }
    person_conflict_pairs.sort_unstable();
    person_conflict_pairs.dedup();
    let person_conflicts_off = offsets(n_persons, person_conflict_pairs.iter().map(|(p, _)| *p));
    let person_conflicts: Vec<u32> = person_conflict_pairs.into_iter().map(|(_, c)| c).collect();

    let aliases: HashMap<String, u32> = if assigned.aliases.is_empty() {
        HashMap::new()
    } else {
        let by_id: HashMap<&str, u32> = persons
            .iter()
            .enumerate()
            .map(|(p, n)| (strings.str(n.id), p as u32))
            .collect();
        assigned
            .aliases
            .iter()
            .filter_map(|(alias, target)| by_id.get(target.as_str()).map(|p| (alias.clone(), *p)))
            .collect()
    };

    timer.phase("indexes");
    let mut graph = Graph {
        strings,
        dbs,
        accounts: nodes,
        groups: group_nodes,
        workspaces: ws_nodes,
        persons,
        account_person,
        net,
        login_index,
        email_index,
        aliases,
        alias_pairs: assigned.aliases,
        next_seq: assigned.next_seq,
        links,
        person_links_off,
        conflicts,
        person_conflicts_off,
        person_conflicts,
        account_ws_off,
        account_ws,
        group_ws_off,
        group_ws,
        anomalies: Vec::new(),
        norm,
        build_phases: Vec::new(),
    };
    graph.anomalies = find_anomalies(&graph);
    graph.strings.shrink_to_fit();
    timer.phase("anomalies");
    join(freeing);
    timer.phase("input freed (waited for)");
    graph.build_phases = timer.phases;
    graph
}

/// Account indexes grouped by a key, for the keys at least two accounts share.
struct KeyGroups {
    /// `(key, start, end)` into `members`, in the order of each group's first account.
    groups: Vec<(Sym, u32, u32)>,
    members: Vec<u32>,
}

impl KeyGroups {
    fn iter(&self) -> impl Iterator<Item = (Sym, &[u32])> {
        self.groups
            .iter()
            .map(|&(k, s, e)| (k, &self.members[s as usize..e as usize]))
    }
}

/// Groups account indexes by a key; groups come in the order of their first account, which is
/// canonical (symbols are not: they depend on interning order).
fn group_by(nodes: &[AccountNode], key: impl Fn(&AccountNode) -> Sym) -> KeyGroups {
    let mut keyed: Vec<(Sym, u32)> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| !key(n).is_none())
        .map(|(i, n)| (key(n), i as u32))
        .collect();
    keyed.sort_unstable();
    let mut groups = Vec::new();
    let mut members = Vec::new();
    for run in keyed
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|run| run.len() > 1)
    {
        let start = members.len() as u32;
        members.extend(run.iter().map(|(_, i)| *i));
        groups.push((run[0].0, start, members.len() as u32));
    }
    // Account indexes are canonical, so ordering groups by their first account is too.
    groups.sort_unstable_by_key(|&(_, s, _)| members[s as usize]);
    KeyGroups { groups, members }
}

/// Offsets of a CSR over `n` rows from the (sorted) row of each item.
fn offsets(n: usize, rows: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut off = vec![0u32; n + 1];
    for r in rows {
        off[r as usize + 1] += 1;
    }
    for i in 0..n {
        off[i + 1] += off[i];
    }
    off
}

/// A CSR from sorted `(row, target, access)` triples.
fn csr_of(n: usize, items: Vec<(u32, u32, Access)>) -> (Vec<u32>, Vec<(u32, Access)>) {
    let off = offsets(n, items.iter().map(|(r, _, _)| *r));
    (off, items.into_iter().map(|(_, t, a)| (t, a)).collect())
}

/// The person's display name: the most common non-blank display name among their accounts
/// (on a tie, the one that comes first in their accounts' order), else the first account's
/// first and last name.
fn person_display(accounts: &[u32], nodes: &[AccountNode], strings: &mut Interner) -> Sym {
    let display = |a: u32| {
        let d = nodes[a as usize].display;
        strings
            .get(d)
            .filter(|s| !s.trim().is_empty())
            .map(|s| (d, s))
    };
    if let [a] = accounts {
        if let Some((d, _)) = display(*a) {
            return d;
        }
    } else {
        let mut counts: Vec<(Sym, &str, usize)> = Vec::new();
        for &a in accounts {
            if let Some((d, s)) = display(a) {
                match counts.iter_mut().find(|(_, t, _)| *t == s) {
                    Some((_, _, n)) => *n += 1,
                    None => counts.push((d, s, 1)),
                }
            }
        }
        // The first of the most common: `max_by_key` would take the last.
        let mut best: Option<(Sym, usize)> = None;
        for (d, _, n) in counts {
            if best.is_none_or(|(_, m)| n > m) {
                best = Some((d, n));
            }
        }
        if let Some((d, _)) = best {
            return d;
        }
    }
    for &a in accounts {
        let n = &nodes[a as usize];
        let first = strings.get(n.first).unwrap_or("").trim();
        let last = strings.get(n.last).unwrap_or("").trim();
        let full = format!("{first} {last}").trim().to_string();
        if !full.is_empty() {
            return strings.push(&full);
        }
    }
    Sym::NONE
}

/// Union-find with the rules that may refuse a union: two accounts of one database never
/// share a person, and a cannot-link override keeps two accounts' persons apart.
struct Linker<'a> {
    nodes: &'a [AccountNode],
    names: &'a NameKeys,
    uf: UnionFind<u32>,
    /// The members of each cluster as a circular list: `next[a]` is the next account of `a`'s
    /// cluster. Joining two clusters swaps one `next` pointer of each, which splices the
    /// circles, so a cluster's members can be walked without a list per cluster.
    next: Vec<u32>,
    /// Accounts joined by must-link overrides (and only by them).
    vouched: UnionFind<u32>,
    /// Databases per root, as a bit set of `words` words.
    dbs: Vec<u64>,
    words: usize,
    cannot: Vec<(u32, u32)>,
    links: Vec<Link>,
    conflicts: Vec<ConflictRec>,
}

#[derive(Debug, PartialEq, Eq)]
enum Union {
    Joined,
    Already,
    SameDatabase,
    CannotLink,
}

impl<'a> Linker<'a> {
    fn new(nodes: &'a [AccountNode], names: &'a NameKeys, databases: usize) -> Self {
        let words = databases.div_ceil(64).max(1);
        let mut dbs = vec![0u64; nodes.len() * words];
        for (i, n) in nodes.iter().enumerate() {
            dbs[i * words + n.db as usize / 64] |= 1 << (n.db % 64);
        }
        Self {
            nodes,
            names,
            uf: UnionFind::new(nodes.len()),
            next: (0..nodes.len() as u32).collect(),
            vouched: UnionFind::new(nodes.len()),
            dbs,
            words,
            cannot: Vec::new(),
            links: Vec::new(),
            conflicts: Vec::new(),
        }
    }

    fn try_union(&mut self, a: u32, b: u32, check_databases: bool) -> Union {
        let (ra, rb) = (self.uf.find_mut(a), self.uf.find_mut(b));
        if ra == rb {
            return Union::Already;
        }
        let w = self.words;
        let (ia, ib) = (ra as usize * w, rb as usize * w);
        if check_databases && (0..w).any(|k| self.dbs[ia + k] & self.dbs[ib + k] != 0) {
            return Union::SameDatabase;
        }
        for i in 0..self.cannot.len() {
            let (x, y) = self.cannot[i];
            let (rx, ry) = (self.uf.find_mut(x), self.uf.find_mut(y));
            if (rx == ra && ry == rb) || (rx == rb && ry == ra) {
                return Union::CannotLink;
            }
        }
        self.uf.union(ra, rb);
        self.next.swap(a as usize, b as usize);
        let root = self.uf.find_mut(ra) as usize * w;
        for k in 0..w {
            let merged = self.dbs[ia + k] | self.dbs[ib + k];
            self.dbs[root + k] = merged;
        }
        Union::Joined
    }

    fn must_link(&mut self, a: u32, b: u32) {
        match self.try_union(a, b, false) {
            Union::Joined | Union::Already => {
                self.vouched.union(a, b);
                self.links.push(Link {
                    a: a.min(b),
                    b: a.max(b),
                    kind: EvidenceKey::Override,
                    value: Sym::NONE,
                });
            }
            Union::CannotLink => self.conflicts.push(ConflictRec {
                kind: ConflictKind::CannotLinkOverride,
                value: Sym::NONE,
                accounts: vec![a, b],
            }),
            Union::SameDatabase => {}
        }
    }

    fn names_of(&self, a: u32) -> (&str, &str) {
        self.names.get(a)
    }

    /// Why two accounts sharing `key` must not be linked, if they must not.
    fn refusal(&self, key: EvidenceKey, a: u32, b: u32) -> Option<ConflictKind> {
        if names_disagree(self.names_of(a), self.names_of(b)) {
            return Some(match key {
                EvidenceKey::Email => ConflictKind::SharedEmail,
                _ => ConflictKind::LoginNameMismatch,
            });
        }
        if key == EvidenceKey::LoginName {
            let (ea, eb) = (
                self.nodes[a as usize].email_key,
                self.nodes[b as usize].email_key,
            );
            if !ea.is_none() && !eb.is_none() && ea != eb {
                return Some(ConflictKind::LoginEmailMismatch);
            }
        }
        None
    }

    /// Why two accounts must not be in one person by the rules: their names clearly disagree,
    /// or both carry emails and they differ. Used for every pair across two clusters about to
    /// be joined, whatever key suggested the join.
    fn pair_refusal(&self, key: EvidenceKey, x: u32, y: u32) -> Option<ConflictKind> {
        let (ex, ey) = (
            self.nodes[x as usize].email_key,
            self.nodes[y as usize].email_key,
        );
        let emails_differ = !ex.is_none() && !ey.is_none() && ex != ey;
        if names_disagree(self.names_of(x), self.names_of(y)) || emails_differ {
            return Some(match (key, emails_differ) {
                (EvidenceKey::LoginName, true) => ConflictKind::LoginEmailMismatch,
                (EvidenceKey::LoginName, false) => ConflictKind::LoginNameMismatch,
                _ => ConflictKind::SharedEmail,
            });
        }
        None
    }

    /// Whether two clusters may be joined by a rule link, and if not the kind of conflict and
    /// the pair that stands in the way.
    ///
    /// A rule link joins whole clusters, so checking only the two accounts that share the key
    /// would let a blank account (no email, no names) bridge two people the rules keep apart:
    /// John (john@) - blank - Jane (jane@) under one login. So every pair across the two
    /// clusters is checked, with one allowance for analysts' decisions: accounts joined by
    /// must-link overrides form a unit whose names and emails the analyst accepted together,
    /// and a unit is compatible with another when some account of the one is compatible with
    /// some account of the other. Without overrides every unit is one account and this is the
    /// plain all-pairs check.
    fn cluster_refusal(
        &mut self,
        key: EvidenceKey,
        a: u32,
        b: u32,
    ) -> Option<(ConflictKind, u32, u32)> {
        let units = |linker: &mut Self, start: u32| -> Vec<(u32, u32)> {
            let mut v = Vec::new();
            let mut x = start;
            loop {
                v.push((linker.vouched.find_mut(x), x));
                x = linker.next[x as usize];
                if x == start {
                    break;
                }
            }
            v.sort_unstable();
            v
        };
        let xs = units(self, a);
        let ys = units(self, b);
        let mut first_refusal = None;
        for cx in xs.chunk_by(|p, q| p.0 == q.0) {
            for cy in ys.chunk_by(|p, q| p.0 == q.0) {
                let mut unit_refusal = None;
                let mut agree = false;
                'pairs: for &(_, x) in cx {
                    for &(_, y) in cy {
                        match self.pair_refusal(key, x, y) {
                            None => {
                                agree = true;
                                break 'pairs;
                            }
                            Some(kind) => {
                                if unit_refusal.is_none() {
                                    unit_refusal = Some((kind, x, y));
                                }
                            }
                        }
                    }
                }
                if !agree && first_refusal.is_none() {
                    first_refusal = unit_refusal;
                }
            }
        }
        first_refusal
    }

    /// Links the accounts that share one normalized key, in canonical order: each account joins
    /// the person of the earlier accounts it is compatible with, unless those belong to
    /// several persons (then it is ambiguous and reported).
    fn link_group(&mut self, value: Sym, members: &[u32], key: EvidenceKey) {
        if members.len() > MAX_KEY_GROUP {
            self.conflicts.push(ConflictRec {
                kind: match key {
                    EvidenceKey::Email => ConflictKind::AmbiguousEmail,
                    _ => ConflictKind::AmbiguousLogin,
                },
                value,
                accounts: members.to_vec(),
            });
            return;
        }
        for (i, &b) in members.iter().enumerate() {
            let mut compatible: Vec<u32> = Vec::new();
            let mut refused: Option<(ConflictKind, u32)> = None;
            for &a in &members[..i] {
                match self.refusal(key, a, b) {
                    None => compatible.push(a),
                    Some(kind) => {
                        if refused.is_none() {
                            refused = Some((kind, a));
                        }
                    }
                }
            }
            if let Some((kind, a)) = refused {
                if self.uf.find_mut(a) != self.uf.find_mut(b) {
                    self.conflicts.push(ConflictRec {
                        kind,
                        value,
                        accounts: vec![a, b],
                    });
                }
            }
            let mut roots: Vec<u32> = compatible.iter().map(|&a| self.uf.find_mut(a)).collect();
            roots.sort_unstable();
            roots.dedup();
            let own = self.uf.find_mut(b);
            roots.retain(|&r| r != own);
            if roots.len() > 1 {
                // Compatible with several persons that were kept apart: do not guess.
                let mut accounts = compatible.clone();
                accounts.push(b);
                self.conflicts.push(ConflictRec {
                    kind: match key {
                        EvidenceKey::Email => ConflictKind::AmbiguousEmail,
                        _ => ConflictKind::AmbiguousLogin,
                    },
                    value,
                    accounts,
                });
                continue;
            }
            for &a in &compatible {
                if self.uf.find_mut(a) != self.uf.find_mut(b) {
                    if let Some((kind, x, y)) = self.cluster_refusal(key, a, b) {
                        self.conflicts.push(ConflictRec {
                            kind,
                            value,
                            accounts: vec![a, b, x, y],
                        });
                        // Every compatible account is in this one cluster (several clusters
                        // were refused above as ambiguous), so the others would fail alike.
                        break;
                    }
                }
                match self.try_union(a, b, true) {
                    Union::Joined => {
                        self.links.push(Link {
                            a,
                            b,
                            kind: key,
                            value,
                        });
                        break;
                    }
                    Union::Already => {
                        // Already one person: the shared key is still evidence of it.
                        self.links.push(Link {
                            a,
                            b,
                            kind: key,
                            value,
                        });
                        break;
                    }
                    Union::SameDatabase => {
                        self.conflicts.push(ConflictRec {
                            kind: ConflictKind::SameDatabase,
                            value,
                            accounts: vec![a, b],
                        });
                    }
                    Union::CannotLink => {
                        self.conflicts.push(ConflictRec {
                            kind: ConflictKind::CannotLinkOverride,
                            value,
                            accounts: vec![a, b],
                        });
                    }
                }
            }
        }
    }
}

fn find_anomalies(g: &Graph) -> Vec<AnomalyRec> {
    let mut out = Vec::new();
    for p in 0..g.persons.len() as u32 {
        let accounts = g.person_account_slice(p);
        let active = accounts
            .iter()
            .filter(|a| g.accounts[**a as usize].active)
            .count();
        if active > 0 && active < accounts.len() {
            out.push(AnomalyRec::PartlyActive(p));
        }
    }
    for (a, n) in g.accounts.iter().enumerate() {
        if n.email.is_none() || g.strings.str(n.email).trim().is_empty() {
            out.push(AnomalyRec::NoEmail(a as u32));
        }
    }
    for c in 0..g.conflicts.len() as u32 {
        out.push(AnomalyRec::Conflict(c));
    }
    // A group is internal when most of its members are internal accounts.
    let mut internal_group = vec![false; g.groups.len()];
    for (gi, flag) in internal_group.iter_mut().enumerate() {
        let members = g.group_member_slice(gi as u32);
        let internal = members
            .iter()
            .filter(|a| !g.accounts[**a as usize].external)
            .count();
        *flag = internal * 2 > members.len();
    }
    let mut seen: HashSet<(u32, u32)> = HashSet::new();
    for (a, n) in g.accounts.iter().enumerate() {
        if !n.external {
            continue;
        }
        for gi in g.account_group_slice(a as u32) {
            let gi = gi - g.accounts.len() as u32;
            if internal_group[gi as usize] && seen.insert((a as u32, gi)) {
                out.push(AnomalyRec::ExternalInInternalGroup(a as u32, gi));
            }
        }
    }
    out
}

/// How long each phase of a build took, kept on the graph for profiling at scale.
pub(crate) struct PhaseTimer {
    last: std::time::Instant,
    phases: Vec<(&'static str, std::time::Duration)>,
}

impl PhaseTimer {
    pub(crate) fn new() -> Self {
        Self {
            last: std::time::Instant::now(),
            phases: Vec::new(),
        }
    }

    fn phase(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.phases.push((name, now - self.last));
        self.last = now;
    }
}
