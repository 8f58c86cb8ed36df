//! From the store's rows to an immutable [`Graph`]: canonical order, interning, linking,
//! stable ids, adjacency and indexes.

use crate::ids;
use crate::intern::{Interner, Sym};
use crate::normalize::{last_name_key, name_key, names_disagree, Normalizer};
use crate::{
    AccountNode, AnomalyRec, ConflictKind, ConflictRec, DbNode, EvidenceKey, Graph, GroupNode,
    Input, Link, PersonNode, ResolveConfig, WorkspaceNode,
};
use hashbrown::{HashMap, HashSet};
use model::{Access, OverrideKind};
use petgraph::csr::Csr;
use petgraph::unionfind::UnionFind;
use std::collections::BTreeMap;

/// Email or login groups larger than this are not linked within (a default address, a
/// placeholder login): they are reported, since no sound rule links hundreds of accounts.
const MAX_KEY_GROUP: usize = 64;

pub(crate) fn build(input: Input, config: &ResolveConfig) -> Graph {
    let Input {
        mut accounts,
        mut groups,
        memberships,
        mut workspaces,
        workspace_entries,
        overrides,
        previous,
    } = input;
    let norm = Normalizer::new(&config.email_domain_aliases, &config.login_domain_aliases);
    let mut strings = Interner::default();

    let mut timer = PhaseTimer::new();
    // Canonical order: the result must not depend on the order rows arrived in.
    // The store delivers rows in key order; otherwise sort a permutation rather than the
    // (large) rows themselves.
    let in_order = accounts
        .windows(2)
        .all(|w| (&w[0].database, &w[0].user_id) < (&w[1].database, &w[1].user_id));
    if !in_order {
        let mut order: Vec<u32> = (0..accounts.len() as u32).collect();
        order.sort_unstable_by(|&x, &y| {
            let (a, b) = (&accounts[x as usize], &accounts[y as usize]);
            (&a.database, &a.user_id).cmp(&(&b.database, &b.user_id))
        });
        order.dedup_by(|x, y| {
            let (a, b) = (&accounts[*x as usize], &accounts[*y as usize]);
            a.database == b.database && a.user_id == b.user_id
        });
        let mut slots: Vec<Option<model::Account>> = accounts.drain(..).map(Some).collect();
        accounts = order
            .iter()
            .filter_map(|&i| slots[i as usize].take())
            .collect();
    }
    groups.sort_by(|a, b| (&a.database, &a.group_id).cmp(&(&b.database, &b.group_id)));
    groups.dedup_by(|a, b| a.database == b.database && a.group_id == b.group_id);
    workspaces.sort_by(|a, b| (&a.database, &a.workspace_id).cmp(&(&b.database, &b.workspace_id)));
    workspaces.dedup_by(|a, b| a.database == b.database && a.workspace_id == b.workspace_id);

    timer.phase("sorted");
    // Databases, in sorted order.
    let mut db_names: Vec<&str> = accounts
        .iter()
        .map(|a| a.database.as_str())
        .chain(groups.iter().map(|g| g.database.as_str()))
        .chain(workspaces.iter().map(|w| w.database.as_str()))
        .collect();
    db_names.sort_unstable();
    db_names.dedup();
    let db_index: HashMap<&str, u16> = db_names
        .iter()
        .enumerate()
        .map(|(i, d)| (*d, i as u16))
        .collect();
    let mut dbs: Vec<DbNode> = db_names
        .iter()
        .map(|d| DbNode {
            id: strings.intern(d),
            mode: config.security_modes.get(*d).copied().unwrap_or_default(),
            accounts: (0, 0),
            groups: (0, 0),
            workspaces: (0, 0),
        })
        .collect();

    // Accounts.
    let mut nodes: Vec<AccountNode> = Vec::with_capacity(accounts.len());
    let mut names: Vec<(String, String)> = Vec::with_capacity(accounts.len());
    for (i, a) in accounts.iter().enumerate() {
        let db = db_index[a.database.as_str()];
        let range = &mut dbs[db as usize].accounts;
        if range.1 == 0 {
            range.0 = i as u32;
        }
        range.1 = i as u32 + 1;
        let login_key = a.login_name.as_deref().and_then(|l| norm.login_key(l));
        let email_key = a.email.as_deref().and_then(|e| norm.email_key(e));
        nodes.push(AccountNode {
            db,
            user_id: strings.intern(&a.user_id),
            login: strings.intern_opt(a.login_name.as_deref()),
            email: strings.intern_opt(a.email.as_deref()),
            first: strings.intern_opt(a.first_name.as_deref()),
            last: strings.intern_opt(a.last_name.as_deref()),
            display: strings.intern_opt(a.display_name.as_deref()),
            user_type: strings.intern_opt(a.user_type.as_deref()),
            login_key: strings.intern_opt(login_key.as_deref()),
            email_key: strings.intern_opt(email_key.as_deref()),
            active: a.active,
            external: a.is_external(),
        });
        names.push((
            a.first_name.as_deref().map(name_key).unwrap_or_default(),
            a.last_name
                .as_deref()
                .map(last_name_key)
                .unwrap_or_default(),
        ));
    }
    let n_accounts = nodes.len();

    timer.phase("accounts");
    // Groups and workspaces.
    let mut group_nodes = Vec::with_capacity(groups.len());
    for (i, g) in groups.iter().enumerate() {
        let db = db_index[g.database.as_str()];
        let range = &mut dbs[db as usize].groups;
        if range.1 == 0 {
            range.0 = i as u32;
        }
        range.1 = i as u32 + 1;
        group_nodes.push(GroupNode {
            db,
            group_id: strings.intern(&g.group_id),
            name: strings.intern_opt(g.name.as_deref()),
        });
    }
    let mut ws_nodes = Vec::with_capacity(workspaces.len());
    for (i, w) in workspaces.iter().enumerate() {
        let db = db_index[w.database.as_str()];
        let range = &mut dbs[db as usize].workspaces;
        if range.1 == 0 {
            range.0 = i as u32;
        }
        range.1 = i as u32 + 1;
        ws_nodes.push(WorkspaceNode {
            db,
            workspace_id: strings.intern(&w.workspace_id),
            name: strings.intern_opt(w.name.as_deref()),
            default: w.default_security,
        });
    }

    timer.phase("groups");
    // Lookups by id within a database, borrowed from the sorted input.
    let account_of: HashMap<(u16, &str), u32> = accounts
        .iter()
        .enumerate()
        .map(|(i, a)| ((nodes[i].db, a.user_id.as_str()), i as u32))
        .collect();
    let group_of: HashMap<(u16, &str), u32> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| ((group_nodes[i].db, g.group_id.as_str()), i as u32))
        .collect();
    let ws_of: HashMap<(u16, &str), u32> = workspaces
        .iter()
        .enumerate()
        .map(|(i, w)| ((ws_nodes[i].db, w.workspace_id.as_str()), i as u32))
        .collect();

    timer.phase("lookups");
    // Memberships as (account, group) pairs; rows naming an unknown account or group are
    // dropped (the store only keeps consistent snapshots, so this is defensive).
    let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(memberships.len());
    let mut last: Option<(&str, &str, u16, u32)> = None;
    for m in &memberships {
        let (db, g) = match last {
            Some((d, gid, db, g)) if d == m.database && gid == m.group_id => (db, g),
            _ => {
                let Some(&db) = db_index.get(m.database.as_str()) else {
                    continue;
                };
                let Some(&g) = group_of.get(&(db, m.group_id.as_str())) else {
                    continue;
                };
                last = Some((m.database.as_str(), m.group_id.as_str(), db, g));
                (db, g)
            }
        };
        if let Some(&a) = account_of.get(&(db, m.user_id.as_str())) {
            pairs.push((a, g));
        }
    }
    // Freeing millions of small strings takes a while: let another thread do it.
    std::thread::spawn(move || drop(memberships));
    pairs.sort_unstable();
    pairs.dedup();

    timer.phase("memberships");
    // Workspace security entries.
    let mut account_ws: Vec<(u32, u32, Access)> = Vec::new();
    let mut group_ws: Vec<(u32, u32, Access)> = Vec::new();
    for e in &workspace_entries {
        let Some(&db) = db_index.get(e.database.as_str()) else {
            continue;
        };
        let Some(&w) = ws_of.get(&(db, e.workspace_id.as_str())) else {
            continue;
        };
        if e.is_group {
            if let Some(&g) = group_of.get(&(db, e.principal_id.as_str())) {
                group_ws.push((g, w, e.access));
            }
        } else if let Some(&a) = account_of.get(&(db, e.principal_id.as_str())) {
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

    timer.phase("ws");
    // Linking.
    let key_of = |a: u32| {
        let row = &accounts[a as usize];
        (row.database.as_str(), row.user_id.as_str())
    };
    let key_index: HashMap<(&str, &str), u32> =
        (0..n_accounts as u32).map(|a| (key_of(a), a)).collect();
    let mut linker = Linker::new(&nodes, &names, dbs.len());
    let mut overrides = overrides;
    overrides.sort_by_key(|o| o.id);
    for o in &overrides {
        let (Some(&a), Some(&b)) = (
            key_index.get(&(o.a.database.as_str(), o.a.user_id.as_str())),
            key_index.get(&(o.b.database.as_str(), o.b.user_id.as_str())),
        ) else {
            continue;
        };
        if o.kind == OverrideKind::CannotLink && a != b {
            linker.cannot.push((a, b));
        }
    }
    for o in &overrides {
        let (Some(&a), Some(&b)) = (
            key_index.get(&(o.a.database.as_str(), o.a.user_id.as_str())),
            key_index.get(&(o.b.database.as_str(), o.b.user_id.as_str())),
        ) else {
            continue;
        };
        if o.kind == OverrideKind::MustLink && a != b {
            linker.must_link(a, b);
        }
    }
    // Emails first: the stronger key.
    let by_email = group_by(&nodes, |n| n.email_key);
    for (key, members) in &by_email {
        linker.link_group(*key, members, EvidenceKey::Email);
    }
    let by_login = group_by(&nodes, |n| n.login_key);
    for (key, members) in &by_login {
        linker.link_group(*key, members, EvidenceKey::LoginName);
    }
    let Linker {
        mut uf,
        links,
        mut conflicts,
        ..
    } = linker;

    timer.phase("linking");
    // Clusters, ordered by their first account.
    let mut root_cluster: HashMap<u32, u32> = HashMap::new();
    let mut clusters: Vec<Vec<u32>> = Vec::new();
    let mut account_cluster = vec![0u32; n_accounts];
    for a in 0..n_accounts as u32 {
        let r = uf.find_mut(a);
        let c = *root_cluster.entry(r).or_insert_with(|| {
            clusters.push(Vec::new());
            clusters.len() as u32 - 1
        });
        clusters[c as usize].push(a);
        account_cluster[a as usize] = c;
    }
    drop(uf);

    timer.phase("clusters");
    // Stable ids; persons ordered by id as strings (the API pages by comparing ids).
    let assigned = ids::assign(&clusters, key_of, &previous);
    let mut order: Vec<u32> = (0..clusters.len() as u32).collect();
    order.sort_by(|&x, &y| {
        let (ix, sx) = &assigned.ids[x as usize];
        let (iy, sy) = &assigned.ids[y as usize];
        ix.cmp(iy).then(sx.cmp(sy))
    });
    let mut cluster_person = vec![0u32; clusters.len()];
    for (p, &c) in order.iter().enumerate() {
        cluster_person[c as usize] = p as u32;
    }
    let account_person: Vec<u32> = account_cluster
        .iter()
        .map(|&c| cluster_person[c as usize])
        .collect();
    let mut persons: Vec<PersonNode> = Vec::with_capacity(clusters.len());
    for &c in &order {
        let (id, seq) = &assigned.ids[c as usize];
        persons.push(PersonNode {
            id: strings.intern(id),
            seq: *seq,
            display: person_display(&clusters[c as usize], &nodes, &mut strings),
        });
    }
    let n_persons = persons.len();

    timer.phase("ids");
    // One petgraph CSR for the whole graph: accounts, then groups, then persons. An account's
    // neighbours are its groups and then its person; a group's its members; a person's its
    // accounts. Edges are generated in sorted order, so the CSR is built in one pass.
    let n_groups = group_nodes.len();
    let group_base = n_accounts as u32;
    let person_base = (n_accounts + n_groups) as u32;
    // Members per group and accounts per person, by counting sort (pairs are sorted by
    // account, so each group's members come out sorted too).
    let members_off = offsets(n_groups, {
        let mut g: Vec<u32> = pairs.iter().map(|(_, g)| *g).collect();
        g.sort_unstable();
        g.into_iter()
    });
    let mut members = vec![0u32; pairs.len()];
    let mut fill = members_off.clone();
    for &(a, g) in &pairs {
        members[fill[g as usize] as usize] = a;
        fill[g as usize] += 1;
    }
    let person_off = offsets(n_persons, {
        let mut p = account_person.clone();
        p.sort_unstable();
        p.into_iter()
    });
    let mut person_accounts = vec![0u32; n_accounts];
    let mut fill = person_off.clone();
    for (a, &p) in account_person.iter().enumerate() {
        person_accounts[fill[p as usize] as usize] = a as u32;
        fill[p as usize] += 1;
    }
    drop(fill);
    let edge_count = 2 * pairs.len() + 2 * n_accounts;
    let mut edges: Vec<(u32, u32)> = Vec::with_capacity(edge_count);
    let mut next_pair = 0;
    for a in 0..n_accounts as u32 {
        while next_pair < pairs.len() && pairs[next_pair].0 == a {
            edges.push((a, group_base + pairs[next_pair].1));
            next_pair += 1;
        }
        edges.push((a, person_base + account_person[a as usize]));
    }
    drop(pairs);
    for g in 0..n_groups {
        for &a in &members[members_off[g] as usize..members_off[g + 1] as usize] {
            edges.push((group_base + g as u32, a));
        }
    }
    drop(members);
    for p in 0..n_persons {
        for &a in &person_accounts[person_off[p] as usize..person_off[p + 1] as usize] {
            edges.push((person_base + p as u32, a));
        }
    }
    drop(person_accounts);
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

    // Indexes by normalized login and email.
    let mut login_index: Vec<(Sym, u32)> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| !n.login_key.is_none())
        .map(|(a, n)| (n.login_key, account_person[a]))
        .collect();
    login_index.sort_unstable();
    login_index.dedup();
    let mut email_index: Vec<(Sym, u32)> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| !n.email_key.is_none())
        .map(|(a, n)| (n.email_key, account_person[a]))
        .collect();
    email_index.sort_unstable();
    email_index.dedup();

    let aliases: HashMap<String, u32> = {
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
    timer.phase("anomalies");
    graph.build_phases = timer.phases;
    graph.strings.shrink_to_fit();
    graph
}

/// Groups account indexes by a key; groups come in the order of their first account, which is
/// canonical (symbols are not: they depend on interning order).
fn group_by(nodes: &[AccountNode], key: impl Fn(&AccountNode) -> Sym) -> Vec<(Sym, Vec<u32>)> {
    let mut keyed: Vec<(Sym, u32)> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| !key(n).is_none())
        .map(|(i, n)| (key(n), i as u32))
        .collect();
    keyed.sort_unstable();
    let mut groups: Vec<(Sym, Vec<u32>)> = keyed
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|run| run.len() > 1)
        .map(|run| (run[0].0, run.iter().map(|(_, i)| *i).collect()))
        .collect();
    // Account indexes are canonical, so ordering groups by their first account is too.
    groups.sort_by_key(|(_, v)| v[0]);
    groups
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

/// The person's display name: the most common display name among their accounts, else the
/// first account's first and last name.
fn person_display(accounts: &[u32], nodes: &[AccountNode], strings: &mut Interner) -> Sym {
    let mut counts: BTreeMap<Sym, usize> = BTreeMap::new();
    for &a in accounts {
        let d = nodes[a as usize].display;
        if !d.is_none() && !strings.str(d).trim().is_empty() {
            *counts.entry(d).or_default() += 1;
        }
    }
    if let Some((sym, _)) = counts
        .iter()
        .max_by(|(sa, na), (sb, nb)| na.cmp(nb).then(sb.cmp(sa)))
    {
        return *sym;
    }
    for &a in accounts {
        let n = &nodes[a as usize];
        let first = strings.get(n.first).unwrap_or("").trim().to_string();
        let last = strings.get(n.last).unwrap_or("").trim().to_string();
        let full = format!("{first} {last}").trim().to_string();
        if !full.is_empty() {
            return strings.intern(&full);
        }
    }
    Sym::NONE
}

/// Union-find with the rules that may refuse a union: two accounts of one database never
/// share a person, and a cannot-link override keeps two accounts' persons apart.
struct Linker<'a> {
    nodes: &'a [AccountNode],
    names: &'a [(String, String)],
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
    fn new(nodes: &'a [AccountNode], names: &'a [(String, String)], databases: usize) -> Self {
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
        let (f, l) = &self.names[a as usize];
        (f.as_str(), l.as_str())
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
struct PhaseTimer {
    last: std::time::Instant,
    phases: Vec<(&'static str, std::time::Duration)>,
}

impl PhaseTimer {
    fn new() -> Self {
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
