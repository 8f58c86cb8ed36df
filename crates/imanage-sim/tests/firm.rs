//! The synthetic firm: determinism, shape, every kind of mess, and that a sound resolver can
//! resolve it.

use imanage_sim::firm::{generate, Firm, FirmSpec, SimUser, Truth};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;
use unicode_normalization::UnicodeNormalization;

fn spec(seed: u64, databases: usize, people: usize) -> FirmSpec {
    FirmSpec {
        seed,
        databases,
        people,
        ..FirmSpec::default()
    }
}

#[test]
fn same_seed_gives_byte_identical_firm_and_other_seeds_differ() {
    let a = generate(&spec(42, 4, 1500));
    let b = generate(&spec(42, 4, 1500));
    assert_eq!(a, b);
    assert_eq!(
        serde_json::to_vec(&a).expect("json"),
        serde_json::to_vec(&b).expect("json")
    );
    let c = generate(&spec(43, 4, 1500));
    assert_ne!(
        serde_json::to_vec(&a.truth).expect("json"),
        serde_json::to_vec(&c.truth).expect("json")
    );
    // Same customer ids, different users.
    assert_eq!(a.truth.databases, c.truth.databases);
    assert_ne!(a.databases[0].users, c.databases[0].users);
}

#[test]
fn databases_are_named_after_offices_and_ids_look_like_imanage() {
    let firm = generate(&spec(1, 5, 500));
    assert_eq!(
        firm.truth.databases,
        [
            "acme-london",
            "acme-newyork",
            "acme-paris",
            "acme-frankfurt",
            "acme-hongkong"
        ]
    );
    let mut ids = HashSet::new();
    for db in &firm.databases {
        for (id, u) in &db.users {
            assert_eq!(id, &u.id);
            assert!(id.starts_with("usr_") && id.len() == 14, "{id}");
            assert!(ids.insert(id.clone()), "{id} repeated across databases");
            assert!(u.created_date.ends_with('Z') && u.created_date.len() == 20);
            assert!(u.user_type == "full" || u.user_type == "external");
        }
        for (id, g) in &db.groups {
            assert_eq!(id, &g.id);
            assert!(id.starts_with("grp_"), "{id}");
            for m in &g.members {
                assert!(db.users.contains_key(m), "member {m} of {id} is no user");
            }
        }
        // Logins are unique in a database, ignoring case.
        let logins: HashSet<String> = db
            .users
            .values()
            .map(|u| u.login_name.to_lowercase())
            .collect();
        assert_eq!(logins.len(), db.users.len());
    }
    // Every account is in the truth, and nothing else is.
    let accounts: usize = firm.databases.iter().map(|d| d.users.len()).sum();
    assert_eq!(firm.truth.accounts.len(), accounts);
}

#[test]
fn truth_serializes_in_the_contract_format() {
    let firm = generate(&spec(3, 2, 50));
    let v = serde_json::to_value(&firm.truth).expect("json");
    assert_eq!(
        v["databases"],
        serde_json::json!(["acme-london", "acme-newyork"])
    );
    let accounts = v["accounts"].as_object().expect("accounts object");
    let (key, person) = accounts.iter().next().expect("an account");
    let (db, user) = key.split_once('/').expect("DB/USER");
    assert!(db.starts_with("acme-") && user.starts_with("usr_"));
    assert!(person.is_string());
    assert_eq!(
        v["email_domain_aliases"],
        serde_json::json!([["acme.com", "acme-law.com"]])
    );
    assert!(v["login_domains"].as_array().is_some_and(|d| !d.is_empty()));
    let back: Truth = serde_json::from_value(v).expect("round trip");
    assert_eq!(back, firm.truth);

    let path = std::env::temp_dir().join(format!("imanage-sim-truth-{}.json", std::process::id()));
    firm.truth.write_json(&path).expect("write");
    assert_eq!(Truth::read_json(&path).expect("read"), firm.truth);
    let _ = std::fs::remove_file(&path);
    // Only the two contract keys are required when reading.
    let minimal: Truth =
        serde_json::from_str(r#"{"databases": ["a"], "accounts": {"a/u1": "p1"}}"#)
            .expect("minimal truth");
    assert_eq!(minimal.person_of("a", "u1"), Some("p1"));
}

fn users_of<'a>(firm: &'a Firm, key: &str) -> &'a SimUser {
    let (db, id) = key.split_once('/').expect("DB/ID");
    let db = firm
        .databases
        .iter()
        .find(|d| d.customer_id == db)
        .expect("database");
    db.users.get(id).expect("user")
}

fn accounts_of(truth: &Truth) -> HashMap<&str, Vec<&str>> {
    let mut m: HashMap<&str, Vec<&str>> = HashMap::new();
    for (k, p) in &truth.accounts {
        m.entry(p.as_str()).or_default().push(k.as_str());
    }
    m
}

#[test]
fn every_kind_of_mess_exists_and_is_recorded_faithfully() {
    let firm = generate(&FirmSpec::default());
    let t = &firm.truth;
    let m = &t.mess;
    let by_person = accounts_of(t);
    let domains = ["ACME\\", "ACMELAW\\"];

    // 1. login forms.
    assert!(!m.login_variants.is_empty());
    let forms: HashSet<&str> = m
        .login_variants
        .iter()
        .map(|k| {
            let l = &users_of(&firm, k).login_name;
            if domains.iter().any(|d| l.starts_with(d)) {
                "domain"
            } else if l.ends_with("@acme.com") {
                "upn"
            } else if l.chars().any(|c| c.is_ascii_uppercase()) {
                "capitalised"
            } else {
                "other"
            }
        })
        .collect();
    assert_eq!(forms, HashSet::from(["domain", "upn", "capitalised"]));

    // 2. email case, alias domain, missing (about 10%).
    for k in &m.email_case_variants {
        let e = users_of(&firm, k).email.clone().expect("email");
        assert_ne!(e, e.to_lowercase(), "{k}");
    }
    for k in &m.alias_domain_emails {
        let e = users_of(&firm, k).email.clone().expect("email");
        assert!(e.to_lowercase().ends_with("@acme-law.com"), "{e}");
    }
    assert!(!m.email_case_variants.is_empty() && !m.alias_domain_emails.is_empty());
    let accounts = t.accounts.len() as f64;
    let missing = m.missing_emails.len() as f64 / accounts;
    assert!((0.05..0.15).contains(&missing), "{missing}");
    for k in &m.missing_emails {
        assert!(users_of(&firm, k).email.is_none());
    }
    let recorded: HashSet<&String> = m.missing_emails.iter().collect();
    let actually_missing = t
        .accounts
        .keys()
        .filter(|k| users_of(&firm, k).email.is_none())
        .count();
    assert_eq!(actually_missing, recorded.len());

    // 3. diacritics: the same person spelled with and without them.
    assert!(!m.diacritic_variants.is_empty());
    for k in &m.diacritic_variants {
        let u = users_of(&firm, k);
        assert!(u.first_name.is_ascii() && u.last_name.is_ascii(), "{k}");
        let person = &t.accounts[k];
        assert!(
            by_person[person.as_str()]
                .iter()
                .any(|o| !users_of(&firm, o).first_name.is_ascii()
                    || !users_of(&firm, o).last_name.is_ascii()),
            "{person} is never spelled with diacritics"
        );
    }

    // 4. one login, two people, in different databases, with different emails and first names.
    assert!(!m.shared_logins.is_empty());
    for (login, people) in &m.shared_logins {
        assert_eq!(people.len(), 2);
        let a = &by_person[people[0].as_str()];
        let b = &by_person[people[1].as_str()];
        let dbs = |v: &Vec<&str>| -> HashSet<String> {
            v.iter()
                .map(|k| k.split('/').next().unwrap_or("").to_string())
                .collect()
        };
        assert!(dbs(a).is_disjoint(&dbs(b)), "{login}");
        let ua = users_of(&firm, a[0]);
        let ub = users_of(&firm, b[0]);
        assert_ne!(ua.first_name, ub.first_name);
        assert_ne!(
            ua.email
                .as_ref()
                .map(|e| e.to_lowercase().replace("acme-law", "acme")),
            ub.email
                .as_ref()
                .map(|e| e.to_lowercase().replace("acme-law", "acme"))
        );
        for k in a.iter().chain(b) {
            assert!(
                users_of(&firm, k).email.is_some(),
                "{k} of a shared login lacks an email"
            );
        }
    }

    // 5. shared mailboxes: one address, several people, different names.
    assert!(!m.shared_mailboxes.is_empty());
    for (email, keys) in &m.shared_mailboxes {
        let people: HashSet<&String> = keys.iter().map(|k| &t.accounts[k]).collect();
        assert!(people.len() >= 2, "{email}");
        let names: HashSet<String> = keys
            .iter()
            .map(|k| fold(&users_of(&firm, k).last_name))
            .collect();
        assert!(names.len() >= 2, "{email}");
        for k in keys {
            assert_eq!(users_of(&firm, k).email.as_deref(), Some(email.as_str()));
        }
    }

    // 6. leavers: inactive somewhere, active elsewhere.
    assert!(!m.leavers.is_empty());
    for p in &m.leavers {
        let states: HashSet<bool> = by_person[p.as_str()]
            .iter()
            .map(|k| users_of(&firm, k).active)
            .collect();
        assert_eq!(states.len(), 2, "{p}");
    }

    // 7. externals: client-domain emails, login = email, one or two databases, some in groups.
    assert!(!m.externals.is_empty());
    for p in &m.externals {
        let keys = &by_person[p.as_str()];
        assert!((1..=2).contains(&keys.len()));
        for k in keys {
            let u = users_of(&firm, k);
            assert_eq!(u.user_type, "external");
            let email = u.email.clone().expect("external email");
            assert!(!email.to_lowercase().contains("@acme"), "{email}");
            assert_eq!(u.login_name.to_lowercase(), email.to_lowercase());
        }
    }
    assert!(!m.externals_in_internal_groups.is_empty());

    // 8. groups from empty to very large.
    assert!(!m.empty_groups.is_empty());
    let sizes: Vec<usize> = firm
        .databases
        .iter()
        .flat_map(|d| d.groups.values().map(|g| g.members.len()))
        .collect();
    assert!(sizes.contains(&0));
    assert!(sizes.iter().any(|s| (1..10).contains(s)));
    assert!(*sizes.iter().max().unwrap_or(&0) > 500);

    // Names with diacritics exist at all.
    assert!(firm
        .databases
        .iter()
        .flat_map(|d| d.users.values())
        .any(|u| u.last_name.contains('ü')
            || u.first_name.contains('é')
            || !u.last_name.is_ascii()));
}

/// Diacritics off, lowercase: `Łukasz Müller` -> `lukasz muller`.
fn fold(s: &str) -> String {
    s.nfd()
        .filter(|c| !('\u{300}'..='\u{36f}').contains(c))
        .flat_map(|c| match c {
            'ł' | 'Ł' => "l".chars().collect::<Vec<_>>(),
            'ø' | 'Ø' => vec!['o'],
            'ß' => vec!['s', 's'],
            'đ' | 'Đ' => vec!['d'],
            'ı' => vec!['i'],
            'æ' => vec!['a', 'e'],
            c => c.to_lowercase().collect(),
        })
        .collect()
}

struct Dsu(Vec<usize>);
impl Dsu {
    fn find(&mut self, x: usize) -> usize {
        let mut r = x;
        while self.0[r] != r {
            r = self.0[r];
        }
        let mut y = x;
        while self.0[y] != r {
            let next = self.0[y];
            self.0[y] = r;
            y = next;
        }
        r
    }
    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.0[a] = b;
        }
    }
}

/// A resolver of the kind the product uses: link on normalized login unless the emails
/// disagree, link on normalized email unless the names disagree. Returns (precision, recall)
/// over pairs of accounts.
fn resolve_and_score(firm: &Firm) -> (f64, f64) {
    let t = &firm.truth;
    let aliases: Vec<String> = t.email_domain_aliases.iter().flatten().cloned().collect();
    let primary = aliases.first().cloned().unwrap_or_default();
    let login_key = |l: &str| -> String {
        let l = l.to_lowercase();
        let l = l.rsplit('\\').next().unwrap_or(&l).to_string();
        match l.split_once('@') {
            Some((local, d)) if aliases.iter().any(|a| a == d) => local.to_string(),
            _ => l,
        }
    };
    let email_key = |e: &str| -> String {
        let e = e.to_lowercase();
        match e.split_once('@') {
            Some((local, d)) if aliases.iter().any(|a| a == d) => format!("{local}@{primary}"),
            _ => e,
        }
    };
    let accounts: Vec<(&String, &SimUser)> = firm
        .databases
        .iter()
        .flat_map(|d| d.users.values().map(move |u| (&d.customer_id, u)))
        .collect();
    let mut dsu = Dsu((0..accounts.len()).collect());

    let mut by_login: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut by_email: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, (_, u)) in accounts.iter().enumerate() {
        by_login
            .entry(login_key(&u.login_name))
            .or_default()
            .push(i);
        if let Some(e) = &u.email {
            by_email.entry(email_key(e)).or_default().push(i);
        }
    }
    for ids in by_login.values() {
        let emails: HashSet<String> = ids
            .iter()
            .filter_map(|&i| accounts[i].1.email.as_deref().map(email_key))
            .collect();
        if emails.len() <= 1 {
            for w in ids.windows(2) {
                dsu.union(w[0], w[1]);
            }
        } else {
            // Two emails under one login: link only accounts that also share the email.
            for a in ids {
                for b in ids {
                    let ea = accounts[*a].1.email.as_deref().map(email_key);
                    let eb = accounts[*b].1.email.as_deref().map(email_key);
                    if ea.is_some() && ea == eb {
                        dsu.union(*a, *b);
                    }
                }
            }
        }
    }
    for ids in by_email.values() {
        let names: HashSet<(String, String)> = ids
            .iter()
            .map(|&i| {
                (
                    fold(&accounts[i].1.first_name),
                    fold(&accounts[i].1.last_name),
                )
            })
            .collect();
        if names.len() == 1 {
            for w in ids.windows(2) {
                dsu.union(w[0], w[1]);
            }
        }
    }

    let truth_of = |i: usize| {
        let (db, u) = accounts[i];
        t.person_of(db, &u.id)
            .expect("account in truth")
            .to_string()
    };
    let mut joint: HashMap<(usize, String), u64> = HashMap::new();
    let mut predicted: HashMap<usize, u64> = HashMap::new();
    let mut actual: HashMap<String, u64> = HashMap::new();
    for i in 0..accounts.len() {
        let c = dsu.find(i);
        let p = truth_of(i);
        *joint.entry((c, p.clone())).or_default() += 1;
        *predicted.entry(c).or_default() += 1;
        *actual.entry(p).or_default() += 1;
    }
    let pairs = |n: &u64| n * n.saturating_sub(1) / 2;
    let tp: u64 = joint.values().map(pairs).sum();
    let pp: u64 = predicted.values().map(pairs).sum();
    let ap: u64 = actual.values().map(pairs).sum();
    (tp as f64 / pp.max(1) as f64, tp as f64 / ap.max(1) as f64)
}

/// Recall of linking accounts whose login_name is exactly equal, as a resolver without any
/// normalization would.
fn naive_recall(firm: &Firm) -> f64 {
    let t = &firm.truth;
    let mut groups: HashMap<&str, Vec<&str>> = HashMap::new();
    for db in &firm.databases {
        for u in db.users.values() {
            let person = t.person_of(&db.customer_id, &u.id).expect("in truth");
            groups
                .entry(u.login_name.as_str())
                .or_default()
                .push(person);
        }
    }
    let mut found = 0u64;
    for people in groups.values() {
        let mut count: HashMap<&str, u64> = HashMap::new();
        for p in people {
            *count.entry(p).or_default() += 1;
        }
        found += count.values().map(|n| n * (n - 1) / 2).sum::<u64>();
    }
    let total: u64 = accounts_of(t)
        .values()
        .map(|a| (a.len() as u64) * (a.len() as u64 - 1) / 2)
        .sum();
    found as f64 / total.max(1) as f64
}

#[test]
fn a_sound_resolver_reaches_the_promised_precision_and_recall() {
    for seed in [1, 2, 3] {
        let firm = generate(&spec(seed, 6, 3000));
        let (precision, recall) = resolve_and_score(&firm);
        eprintln!("seed {seed}: precision {precision:.5} recall {recall:.5}");
        assert!(precision >= 0.995, "seed {seed}: precision {precision}");
        assert!(recall >= 0.99, "seed {seed}: recall {recall}");
        // And the mess is not trivial: exact login matching misses many pairs.
        let naive = naive_recall(&firm);
        assert!(
            naive < 0.9,
            "seed {seed}: exact logins already reach recall {naive}"
        );
        let people = firm.truth.people();
        assert!(people > 2500 && people <= 3000, "{people}");
    }
}

#[test]
fn most_people_have_one_to_three_accounts() {
    let firm = generate(&spec(5, 8, 4000));
    let by_person = accounts_of(&firm.truth);
    let counts: Vec<usize> = by_person.values().map(Vec::len).collect();
    let one_to_three = counts.iter().filter(|c| (1..=3).contains(*c)).count();
    assert!(one_to_three as f64 / counts.len() as f64 > 0.9);
    assert!(counts.iter().any(|c| *c >= 2));
    assert!(counts.iter().any(|c| *c >= 4));
}

#[test]
fn users_per_database_is_exact_and_large_firms_generate_fast() {
    let started = Instant::now();
    let firm = generate(&FirmSpec {
        seed: 11,
        databases: 5,
        people: 0,
        users_per_database: Some(20_000),
        groups_per_database: Some(300),
    });
    let took = started.elapsed();
    for db in &firm.databases {
        assert_eq!(db.users.len(), 20_000, "{}", db.customer_id);
        assert_eq!(db.groups.len(), 300, "{}", db.customer_id);
        let largest = db
            .groups
            .values()
            .map(|g| g.members.len())
            .max()
            .unwrap_or(0);
        assert!(
            largest >= 2_000,
            "{}: largest group {largest}",
            db.customer_id
        );
    }
    // Generous for a debug build on a shared CI machine; it takes about a second.
    assert!(took.as_secs() < 20, "took {took:?}");

    let started = Instant::now();
    let firm = generate(&spec(12, 10, 20_000));
    let took = started.elapsed();
    assert_eq!(firm.databases.len(), 10);
    assert_eq!(firm.truth.people(), 20_000);
    assert!(took.as_secs() < 10, "took {took:?}");
    eprintln!("10 databases x 20,000 people: {took:?}");
}

#[test]
fn default_group_count_scales_with_size() {
    let firm = generate(&FirmSpec {
        seed: 1,
        databases: 1,
        people: 0,
        users_per_database: Some(20_000),
        groups_per_database: None,
    });
    assert_eq!(firm.databases[0].groups.len(), 300);
}

#[test]
fn mutations_keep_the_firm_resolvable() {
    let config = imanage_sim::SimConfig {
        firm: spec(21, 5, 2500),
        ..Default::default()
    };
    let handle = imanage_sim::Sim::new(config).handle();
    let mut added_for_existing_people = 0;
    for seed in 0..3 {
        let report = handle.mutate(0.1, seed);
        let truth = handle.truth();
        let by_person = accounts_of(&truth);
        added_for_existing_people += report
            .changes
            .iter()
            .filter(|c| match c {
                imanage_sim::Change::UserAdded { person, .. } => {
                    by_person.get(person.as_str()).is_some_and(|a| a.len() > 1)
                }
                _ => false,
            })
            .count();
    }
    // Some additions are new accounts of people who already had one elsewhere.
    assert!(added_for_existing_people > 0);
    let firm = Firm {
        databases: handle.snapshot(),
        truth: handle.truth(),
    };
    let (precision, recall) = resolve_and_score(&firm);
    assert!(precision >= 0.995, "precision {precision}");
    assert!(recall >= 0.99, "recall {recall}");
}

#[test]
fn small_firms_show_every_kind_of_mess_too() {
    for seed in 0..5 {
        let firm = generate(&spec(seed, 2, 40));
        let m = &firm.truth.mess;
        let lists = [
            ("login_variants", m.login_variants.len()),
            ("email_case_variants", m.email_case_variants.len()),
            ("alias_domain_emails", m.alias_domain_emails.len()),
            ("missing_emails", m.missing_emails.len()),
            ("diacritic_variants", m.diacritic_variants.len()),
            ("shared_logins", m.shared_logins.len()),
            ("shared_mailboxes", m.shared_mailboxes.len()),
            ("leavers", m.leavers.len()),
            ("externals", m.externals.len()),
            (
                "externals_in_internal_groups",
                m.externals_in_internal_groups.len(),
            ),
            ("empty_groups", m.empty_groups.len()),
        ];
        for (name, n) in lists {
            assert!(n > 0, "seed {seed}: no {name}");
        }
        let (precision, recall) = resolve_and_score(&firm);
        assert!(
            precision >= 0.995 && recall >= 0.99,
            "seed {seed}: {precision} {recall}"
        );
    }
}
