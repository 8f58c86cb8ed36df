//! The compact input form (memberships as index pairs) and the scale benchmark function: the
//! indexed and string-keyed forms of one firm resolve to the same graph, whatever the order of
//! rows and pairs, and duplicates or pairs naming nothing change nothing.

use graph::synthetic::{scale_run, synthetic_indexed_input};
use graph::{Graph, IndexedInput, Input, ResolveConfig};

fn config() -> ResolveConfig {
    ResolveConfig {
        login_domain_aliases: vec![vec!["ACME".into()]],
        ..ResolveConfig::default()
    }
}

/// Everything a caller can see of a graph, as text.
fn fingerprint(g: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for p in g.persons() {
        let accounts: Vec<String> = p
            .accounts()
            .map(|a| {
                let groups: Vec<String> = a.groups().map(|g| g.group_id().to_string()).collect();
                format!(
                    "{}/{} {:?} {:?} {:?} [{}]",
                    a.database(),
                    a.user_id(),
                    a.login_name(),
                    a.email(),
                    a.first_name(),
                    groups.join(",")
                )
            })
            .collect();
        let evidence: Vec<String> = p
            .evidence()
            .iter()
            .map(|e| format!("{:?}={}:{}", e.key, e.value, e.accounts.len()))
            .collect();
        out.push(format!(
            "{} {:?} {} | {}",
            p.id(),
            p.display_name(),
            accounts.join("; "),
            evidence.join(" ")
        ));
    }
    for c in g.persons().flat_map(|p| p.conflicts()) {
        out.push(format!("conflict {:?} {}", c.kind, c.detail));
    }
    for a in g.anomalies() {
        out.push(format!("anomaly {}", a.kind()));
    }
    let s = g.stats();
    out.push(format!(
        "{} persons {} accounts {} groups {} memberships",
        s.persons, s.accounts, s.groups, s.memberships
    ));
    out
}

/// A deterministic permutation of `0..n`.
fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut x = seed | 1;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

fn firm() -> IndexedInput {
    synthetic_indexed_input(1_500, 5_000, 3, 7)
}

#[test]
fn the_indexed_and_string_forms_give_the_same_graph() {
    let indexed = firm();
    let strings: Input = indexed.clone().into();
    assert_eq!(strings.memberships.len(), indexed.memberships.len());
    let a = graph::resolve_indexed(indexed, &config());
    let b = graph::resolve(strings, &config());
    assert!(a.stats().persons > 500 && a.stats().memberships == 5_000);
    assert_eq!(fingerprint(&a), fingerprint(&b));
}

#[test]
fn order_duplicates_and_pairs_naming_nothing_change_nothing() {
    let base = firm();
    let expected = fingerprint(&graph::resolve_indexed(base.clone(), &config()));

    // Rows in another order, pairs renumbered to follow them, and shuffled.
    let account_perm = permutation(base.accounts.len(), 11);
    let group_perm = permutation(base.groups.len(), 13);
    let mut new_account = vec![0u32; base.accounts.len()];
    for (new, &old) in account_perm.iter().enumerate() {
        new_account[old] = new as u32;
    }
    let mut new_group = vec![0u32; base.groups.len()];
    for (new, &old) in group_perm.iter().enumerate() {
        new_group[old] = new as u32;
    }
    let mut pairs: Vec<(u32, u32)> = base
        .memberships
        .iter()
        .map(|&(a, g)| (new_account[a as usize], new_group[g as usize]))
        .collect();
    // Duplicates, and pairs naming nothing or joining two databases: all ignored.
    let extra: Vec<(u32, u32)> = pairs[..500].to_vec();
    pairs.extend(extra);
    pairs.push((u32::MAX, 0));
    pairs.push((0, base.groups.len() as u32));
    let first_db = &base.accounts[account_perm[0]].database;
    let other_db_group = group_perm
        .iter()
        .position(|&old| &base.groups[old].database != first_db)
        .expect("the firm has several databases");
    pairs.push((0, other_db_group as u32));
    let order = permutation(pairs.len(), 17);
    let pairs: Vec<(u32, u32)> = order.iter().map(|&i| pairs[i]).collect();
    let shuffled = IndexedInput {
        accounts: account_perm
            .iter()
            .map(|&i| base.accounts[i].clone())
            .collect(),
        groups: group_perm.iter().map(|&i| base.groups[i].clone()).collect(),
        memberships: pairs,
        ..IndexedInput::default()
    };
    assert_eq!(
        fingerprint(&graph::resolve_indexed(shuffled, &config())),
        expected
    );
}

#[test]
fn the_scale_run_measures_a_small_firm() {
    let r = scale_run(5_000, 20_000, 4);
    assert_eq!((r.accounts, r.memberships, r.databases), (5_000, 20_000, 4));
    assert!(r.persons > 2_000 && r.persons < 5_000, "{r}");
    assert!(r.resolve_seconds > 0.0 && r.resolve_seconds < 60.0, "{r}");
    assert!(r.phases.iter().any(|(name, _)| *name == "linking"), "{r}");
    assert!(r.heap_estimate_per_account > 50.0, "{r}");
    #[cfg(target_os = "linux")]
    {
        assert!(r.rss_before > 0 && r.rss_with_input > r.rss_before, "{r}");
        assert!(r.bytes_per_account.is_finite(), "{r}");
    }
}
