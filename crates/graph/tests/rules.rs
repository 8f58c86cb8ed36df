//! The linking rules, overrides, stable ids and reach, on small hand-made inputs.

use graph::{resolve, ConflictKind, EvidenceKey, Input, PersonIds, ResolveConfig};
use model::{
    Access, Account, AccountKey, DefaultSecurity, Group, Membership, Override, OverrideKind,
    SecurityMode, Workspace, WorkspaceEntry,
};
use proptest::prelude::*;

fn acct(db: &str, id: &str, login: &str, email: Option<&str>, first: &str, last: &str) -> Account {
    Account {
        database: db.into(),
        user_id: id.into(),
        login_name: Some(login.into()),
        email: email.map(Into::into),
        first_name: Some(first.into()),
        last_name: Some(last.into()),
        active: true,
        user_type: Some("full".into()),
        ..Account::default()
    }
}

fn config() -> ResolveConfig {
    ResolveConfig {
        email_domain_aliases: vec![vec!["acme.com".into(), "acme-law.com".into()]],
        login_domain_aliases: vec![vec![
            "ACME".into(),
            "acme.com".into(),
            "acme-law.com".into(),
        ]],
        ..ResolveConfig::default()
    }
}

fn input(accounts: Vec<Account>) -> Input {
    Input {
        accounts,
        ..Input::default()
    }
}

/// The persons as sorted lists of `db/user` keys, sorted.
fn clusters(g: &graph::Graph) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = g
        .persons()
        .map(|p| {
            let mut v: Vec<String> = p
                .accounts()
                .map(|a| format!("{}/{}", a.database(), a.user_id()))
                .collect();
            v.sort();
            v
        })
        .collect();
    out.sort();
    out
}

#[test]
fn login_forms_link_across_databases() {
    let g = resolve(
        input(vec![
            acct("a", "1", "jdoe", None, "John", "Doe"),
            acct("b", "2", "ACME\\JDoe", None, "John", "Doe"),
            acct("c", "3", "jdoe@acme.com", None, "John", "Doe"),
        ]),
        &config(),
    );
    assert_eq!(clusters(&g), vec![vec!["a/1", "b/2", "c/3"]]);
    let p = g.person_by_login("ACME\\jdoe");
    assert_eq!(p.len(), 1);
    let evidence = p[0].evidence();
    assert!(evidence
        .iter()
        .any(|e| e.key == EvidenceKey::LoginName && e.value == "jdoe" && e.accounts.len() == 3));
}

#[test]
fn email_case_and_domain_aliases_link() {
    let g = resolve(
        input(vec![
            acct("a", "1", "jdoe", Some("John.Doe@acme.com"), "John", "Doe"),
            acct(
                "b",
                "2",
                "johnd",
                Some("john.doe@ACME-LAW.com"),
                "John",
                "Doe",
            ),
        ]),
        &config(),
    );
    assert_eq!(clusters(&g), vec![vec!["a/1", "b/2"]]);
    assert_eq!(g.person_by_email("JOHN.DOE@acme-law.com").len(), 1);
    let e = &g.persons().next().unwrap().evidence()[0];
    assert_eq!(
        (e.key, e.value.as_str()),
        (EvidenceKey::Email, "john.doe@acme.com")
    );
}

#[test]
fn diacritics_do_not_split_a_person() {
    let g = resolve(
        input(vec![
            acct(
                "a",
                "1",
                "jalvarez",
                Some("jose.alvarez@acme.com"),
                "José",
                "Álvarez",
            ),
            acct("b", "2", "jalvarez", None, "Jose", "Alvarez"),
        ]),
        &config(),
    );
    assert_eq!(clusters(&g), vec![vec!["a/1", "b/2"]]);
}

#[test]
fn same_login_different_people_are_a_conflict_not_a_merge() {
    let g = resolve(
        input(vec![
            acct(
                "london",
                "1",
                "jsmith",
                Some("john.smith@acme.com"),
                "John",
                "Smith",
            ),
            acct(
                "newyork",
                "2",
                "jsmith",
                Some("jane.smith@acme.com"),
                "Jane",
                "Smith",
            ),
        ]),
        &config(),
    );
    assert_eq!(g.persons().len(), 2);
    let persons = g.person_by_login("jsmith");
    assert_eq!(persons.len(), 2);
    for p in persons {
        let c = p.conflicts();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].kind, ConflictKind::LoginNameMismatch);
        assert_eq!(c[0].accounts.len(), 2);
    }
}

#[test]
fn same_login_with_different_emails_is_a_conflict() {
    let g = resolve(
        input(vec![
            acct(
                "a",
                "1",
                "asmith",
                Some("alex.smith@acme.com"),
                "Alex",
                "Smith",
            ),
            acct(
                "b",
                "2",
                "asmith",
                Some("alexander.smith@client.com"),
                "Alex",
                "Smith",
            ),
        ]),
        &config(),
    );
    assert_eq!(g.persons().len(), 2);
    let c = g.persons().next().unwrap().conflicts();
    assert_eq!(c[0].kind, ConflictKind::LoginEmailMismatch);
}

#[test]
fn shared_mailbox_is_not_merged() {
    let g = resolve(
        input(vec![
            acct(
                "a",
                "1",
                "mjones",
                Some("reception@acme.com"),
                "Mary",
                "Jones",
            ),
            acct(
                "a",
                "2",
                "pbrown",
                Some("reception@acme.com"),
                "Peter",
                "Brown",
            ),
            acct(
                "b",
                "3",
                "tgreen",
                Some("reception@acme.com"),
                "Tom",
                "Green",
            ),
        ]),
        &config(),
    );
    assert_eq!(g.persons().len(), 3);
    let p = g.person_by_login("tgreen");
    assert!(p[0]
        .conflicts()
        .iter()
        .any(|c| c.kind == ConflictKind::SharedEmail));
}

#[test]
fn missing_email_links_by_login() {
    let g = resolve(
        input(vec![
            acct("a", "1", "kwu", Some("kevin.wu@acme.com"), "Kevin", "Wu"),
            acct("b", "2", "KWU", None, "Kevin", "Wu"),
        ]),
        &config(),
    );
    assert_eq!(g.persons().len(), 1);
}

#[test]
fn two_accounts_of_one_database_never_merge() {
    let g = resolve(
        input(vec![
            acct("a", "1", "jdoe", Some("jdoe@acme.com"), "John", "Doe"),
            acct("a", "2", "jdoe", Some("jdoe@acme.com"), "John", "Doe"),
            acct("b", "3", "jdoe", Some("jdoe@acme.com"), "John", "Doe"),
        ]),
        &config(),
    );
    for p in g.persons() {
        let dbs: Vec<&str> = p.accounts().map(|a| a.database()).collect();
        let mut unique = dbs.clone();
        unique.dedup();
        assert_eq!(dbs, unique, "one person holds two accounts of one database");
    }
    // b/3 matches both a/1 and a/2, which cannot be one person: it is not guessed.
    assert_eq!(g.persons().len(), 3);
    assert!(g.person_by_login("jdoe").iter().any(|p| p
        .conflicts()
        .iter()
        .any(|c| c.kind == ConflictKind::AmbiguousEmail)));
}

fn ov(id: i64, kind: OverrideKind, a: (&str, &str), b: (&str, &str)) -> Override {
    Override {
        id,
        kind,
        a: AccountKey::new(a.0, a.1),
        b: AccountKey::new(b.0, b.1),
        reason: None,
        created_by: None,
        created_at: 0,
    }
}

#[test]
fn overrides_both_ways() {
    let accounts = vec![
        acct("a", "1", "jdoe", Some("jdoe@acme.com"), "John", "Doe"),
        acct("b", "2", "jdoe", Some("jdoe@acme.com"), "John", "Doe"),
        acct("c", "3", "johnny", None, "Johnny", "Dough"),
    ];
    let mut i = input(accounts.clone());
    i.overrides = vec![ov(1, OverrideKind::CannotLink, ("a", "1"), ("b", "2"))];
    let g = resolve(i, &config());
    assert_eq!(g.persons().len(), 3);
    assert!(g.persons().any(|p| p
        .conflicts()
        .iter()
        .any(|c| c.kind == ConflictKind::CannotLinkOverride)));

    let mut i = input(accounts);
    i.overrides = vec![ov(2, OverrideKind::MustLink, ("a", "1"), ("c", "3"))];
    let g = resolve(i, &config());
    assert_eq!(clusters(&g), vec![vec!["a/1", "b/2", "c/3"]]);
    let p = g.person_by_login("johnny")[0];
    assert!(p.evidence().iter().any(|e| e.key == EvidenceKey::Override));
}

#[test]
fn ids_are_stable_merges_keep_the_older_id_and_splits_keep_it_on_the_bigger_part() {
    let base = vec![
        acct("a", "1", "jdoe", None, "John", "Doe"),
        acct("b", "2", "jdoe", None, "John", "Doe"),
        acct("c", "3", "jdoe", None, "John", "Doe"),
        acct("a", "4", "mray", None, "Mary", "Ray"),
        acct("b", "5", "mary.ray", None, "Mary", "Ray"),
    ];
    let g1 = resolve(input(base.clone()), &config());
    assert_eq!(g1.persons().len(), 3);
    let ids1 = g1.person_ids();
    let jdoe = g1.person_by_login("jdoe")[0].id().to_string();
    let mray = g1.person_by_login("mray")[0].id().to_string();
    let mary = g1.person_by_login("mary.ray")[0].id().to_string();

    // Unchanged input: unchanged ids.
    let mut i = input(base.clone());
    i.previous = ids1.clone();
    let g2 = resolve(i, &config());
    assert_eq!(g2.person_ids(), ids1);

    // Merge: the older id survives and the other still finds the person.
    let mut i = input(base.clone());
    i.previous = ids1.clone();
    i.overrides = vec![ov(1, OverrideKind::MustLink, ("a", "4"), ("b", "5"))];
    let g3 = resolve(i, &config());
    let merged = g3.person_by_login("mray")[0];
    let seq = |id: &str| id[1..].parse::<i64>().unwrap();
    let older = if seq(&mray) < seq(&mary) {
        &mray
    } else {
        &mary
    };
    assert_eq!(merged.id(), older);
    assert_eq!(g3.person(&mray).unwrap().id(), merged.id());
    assert_eq!(g3.person(&mary).unwrap().id(), merged.id());
    assert_eq!(g3.person(&jdoe).unwrap().id(), jdoe);

    // Split: the part with most accounts keeps the id.
    let mut i = input(base);
    i.previous = ids1;
    i.overrides = vec![
        ov(1, OverrideKind::CannotLink, ("a", "1"), ("c", "3")),
        ov(2, OverrideKind::CannotLink, ("b", "2"), ("c", "3")),
    ];
    let g4 = resolve(i, &config());
    let keeper = g4.account("a", "1").unwrap().person();
    assert_eq!(keeper.id(), jdoe);
    assert_eq!(keeper.accounts().count(), 2);
    let split = g4.account("c", "3").unwrap().person();
    assert_ne!(split.id(), jdoe);
    let jdoe_seq: i64 = jdoe[1..].parse().unwrap();
    let split_seq: i64 = split.id()[1..].parse().unwrap();
    assert!(
        split_seq > jdoe_seq,
        "a split part gets a new, never used id"
    );
}

#[test]
fn reach_follows_groups_and_the_access_rule() {
    let mut i = input(vec![
        acct("a", "u1", "jdoe", None, "John", "Doe"),
        acct("a", "u2", "mray", None, "Mary", "Ray"),
    ]);
    i.groups = vec![
        Group {
            database: "a".into(),
            group_id: "lit".into(),
            name: Some("Litigation".into()),
            ..Group::default()
        },
        Group {
            database: "a".into(),
            group_id: "ext".into(),
            name: Some("Externals".into()),
            ..Group::default()
        },
    ];
    i.memberships = vec![
        Membership {
            database: "a".into(),
            group_id: "lit".into(),
            user_id: "u1".into(),
        },
        Membership {
            database: "a".into(),
            group_id: "ext".into(),
            user_id: "u1".into(),
        },
    ];
    let ws = |id: &str, d: DefaultSecurity| Workspace {
        database: "a".into(),
        workspace_id: id.into(),
        name: None,
        default_security: d,
        raw: model::RawJson::null(),
    };
    i.workspaces = vec![
        ws("w-private", DefaultSecurity::Private),
        ws("w-public", DefaultSecurity::Public),
        ws("w-view", DefaultSecurity::View),
    ];
    let entry = |w: &str, p: &str, g: bool, a: Access| WorkspaceEntry {
        database: "a".into(),
        workspace_id: w.into(),
        principal_id: p.into(),
        is_group: g,
        access: a,
    };
    i.workspace_entries = vec![
        entry("w-private", "lit", true, Access::ReadWrite),
        entry("w-private", "ext", true, Access::NoAccess),
        entry("w-public", "u2", false, Access::NoAccess),
    ];
    let optimistic = resolve(i.clone(), &config());
    let jdoe = optimistic.person_by_login("jdoe")[0];
    let reach = jdoe.reach();
    let groups: Vec<&str> = reach
        .iter()
        .filter(|g| g.workspace.is_none())
        .map(|g| g.group.unwrap().group_id())
        .collect();
    assert_eq!(groups, vec!["ext", "lit"]);
    let ws_access = |r: &[graph::Grant<'_>]| -> Vec<(String, Access)> {
        r.iter()
            .filter_map(|g| {
                g.workspace
                    .map(|w| (w.workspace_id().to_string(), g.access.unwrap()))
            })
            .collect()
    };
    assert_eq!(
        ws_access(&reach),
        vec![
            ("w-private".into(), Access::ReadWrite),
            ("w-public".into(), Access::ReadWrite),
            ("w-view".into(), Access::Read)
        ]
    );
    // Mary's own no_access entry beats the public default.
    let mary = optimistic.person_by_login("mray")[0];
    assert_eq!(
        ws_access(&mary.reach()),
        vec![("w-view".into(), Access::Read)]
    );
    let who = optimistic.who_can_reach_workspace("a", "w-private");
    assert_eq!(who.len(), 1);
    assert_eq!(who[0].group.unwrap().group_id(), "lit");
    assert_eq!(
        who[0].path(),
        vec!["account:a/u1", "group:a/lit", "workspace:a/w-private"]
    );

    // Pessimistic: the no_access group entry denies.
    let mut c = config();
    c.security_modes
        .insert("a".into(), SecurityMode::Pessimistic);
    let pessimistic = resolve(i, &c);
    let jdoe = pessimistic.person_by_login("jdoe")[0];
    assert!(!ws_access(&jdoe.reach())
        .iter()
        .any(|(w, _)| w == "w-private"));
    assert!(pessimistic
        .who_can_reach_workspace("a", "w-private")
        .is_empty());
}

#[test]
fn anomalies_find_partly_active_people() {
    let mut leaver = acct("b", "2", "jdoe", None, "John", "Doe");
    leaver.active = false;
    let g = resolve(
        input(vec![
            acct("a", "1", "jdoe", Some("jdoe@acme.com"), "John", "Doe"),
            leaver,
        ]),
        &config(),
    );
    let kinds: Vec<&str> = g.anomalies().iter().map(|a| a.kind()).collect();
    assert!(kinds.contains(&"PARTLY_ACTIVE"));
    assert!(kinds.contains(&"NO_EMAIL"));
}

fn arbitrary_firm() -> impl Strategy<Value = Vec<Account>> {
    let logins = prop::sample::select(vec!["jdoe", "JDoe", "ACME\\jdoe", "mray", "jsmith", "kwu"]);
    let emails = prop::option::of(prop::sample::select(vec![
        "jdoe@acme.com",
        "JDOE@acme-law.com",
        "reception@acme.com",
        "mray@acme.com",
    ]));
    let first = prop::sample::select(vec!["John", "Jane", "Mary", "J", "José", "Jose"]);
    let last = prop::sample::select(vec!["Doe", "Smith", "Ray"]);
    let db = prop::sample::select(vec!["a", "b", "c", "d"]);
    prop::collection::vec((db, logins, emails, first, last), 1..24).prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, (db, login, email, first, last))| {
                acct(db, &format!("u{i}"), login, email, first, last)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_result_does_not_depend_on_input_order(accounts in arbitrary_firm(), seed in any::<u64>()) {
        let a = resolve(input(accounts.clone()), &config());
        let mut shuffled = accounts;
        // A deterministic shuffle from the seed.
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        let b = resolve(input(shuffled), &config());
        prop_assert_eq!(clusters(&a), clusters(&b));
        prop_assert_eq!(a.person_ids(), b.person_ids());
    }

    #[test]
    fn resolving_twice_changes_nothing(accounts in arbitrary_firm()) {
        let first = resolve(input(accounts.clone()), &config());
        let ids: PersonIds = first.person_ids();
        let mut again = input(accounts);
        again.previous = ids.clone();
        let second = resolve(again, &config());
        prop_assert_eq!(clusters(&first), clusters(&second));
        prop_assert_eq!(second.person_ids(), ids);
    }

    #[test]
    fn no_person_holds_two_accounts_of_one_database(accounts in arbitrary_firm()) {
        let g = resolve(input(accounts), &config());
        for p in g.persons() {
            let mut dbs: Vec<&str> = p.accounts().map(|a| a.database()).collect();
            let n = dbs.len();
            dbs.dedup();
            prop_assert_eq!(dbs.len(), n);
        }
    }
}

/// An account without names or email.
fn blank(db: &str, id: &str, login: &str, email: Option<&str>) -> Account {
    Account {
        first_name: None,
        last_name: None,
        ..acct(db, id, login, email, "", "")
    }
}

#[test]
fn a_blank_account_does_not_bridge_two_people_under_one_login() {
    let g = resolve(
        input(vec![
            acct(
                "a",
                "1",
                "jsmith",
                Some("john.smith@acme.com"),
                "John",
                "Smith",
            ),
            blank("b", "2", "jsmith", None),
            acct(
                "c",
                "3",
                "jsmith",
                Some("jane.smith@acme.com"),
                "Jane",
                "Smith",
            ),
        ]),
        &config(),
    );
    let john = g.account("a", "1").unwrap().person();
    let jane = g.account("c", "3").unwrap().person();
    assert_ne!(john, jane, "John and Jane merged through the blank account");
    assert!(jane.conflicts().iter().any(|c| matches!(
        c.kind,
        ConflictKind::LoginEmailMismatch | ConflictKind::LoginNameMismatch
    )));
}

#[test]
fn a_blank_account_does_not_bridge_a_shared_mailbox() {
    let g = resolve(
        input(vec![
            acct(
                "a",
                "1",
                "abrown",
                Some("reception@acme.com"),
                "Alice",
                "Brown",
            ),
            blank("b", "2", "frontdesk", Some("reception@acme.com")),
            acct(
                "c",
                "3",
                "cgreen",
                Some("reception@acme.com"),
                "Carol",
                "Green",
            ),
        ]),
        &config(),
    );
    let alice = g.account("a", "1").unwrap().person();
    let carol = g.account("c", "3").unwrap().person();
    assert_ne!(alice, carol, "Alice and Carol merged through reception@");
    assert!(carol
        .conflicts()
        .iter()
        .any(|c| c.kind == ConflictKind::SharedEmail));
}

#[test]
fn a_foreign_windows_domain_is_not_the_firms() {
    let g = resolve(
        input(vec![
            acct("a", "1", "ACME\\jdoe", None, "John", "Doe"),
            acct("b", "2", "CLIENTCORP\\jdoe", None, "J", "Doe"),
        ]),
        &config(),
    );
    assert_eq!(g.persons().len(), 2);
    assert_eq!(g.person_by_login("clientcorp\\JDOE").len(), 1);
    assert_eq!(g.person_by_login("jdoe@clientcorp").len(), 1);
}

#[test]
fn a_last_name_inside_another_is_a_different_last_name() {
    let g = resolve(
        input(vec![
            acct("a", "1", "jli", Some("team@acme.com"), "John", "Li"),
            acct(
                "b",
                "2",
                "jwilliams",
                Some("team@acme.com"),
                "John",
                "Williams",
            ),
            acct("a", "3", "asmith", Some("anna@acme.com"), "Anna", "Smith"),
            acct(
                "b",
                "4",
                "asmith",
                Some("anna@acme.com"),
                "Anna",
                "Smith-Jones",
            ),
        ]),
        &config(),
    );
    assert_eq!(
        clusters(&g),
        vec![vec!["a/1"], vec!["a/3", "b/4"], vec!["b/2"]],
        "Li is not Williams; Smith is a part of Smith-Jones"
    );
}

#[test]
fn persons_come_in_the_string_order_of_their_ids() {
    // The API pages with `id <= after` and `partition_point`, comparing ids as strings.
    let accounts = (0..12)
        .map(|i| blank("a", &format!("u{i:02}"), &format!("user{i}"), None))
        .collect();
    let g = resolve(input(accounts), &config());
    let ids: Vec<&str> = g.persons().map(|p| p.id()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted);
    assert_eq!(g.person("p10").unwrap().id(), "p10");
}

/// Like `arbitrary_firm`, with accounts that may lack names too (the bridge case).
fn arbitrary_sparse_firm() -> impl Strategy<Value = Vec<Account>> {
    let logins = prop::sample::select(vec!["jdoe", "JDoe", "ACME\\jdoe", "mray", "jsmith"]);
    let emails = prop::option::of(prop::sample::select(vec![
        "jdoe@acme.com",
        "JDOE@acme-law.com",
        "reception@acme.com",
        "mray@acme.com",
    ]));
    let first = prop::option::of(prop::sample::select(vec![
        "John", "Jane", "Mary", "J", "José",
    ]));
    let last = prop::option::of(prop::sample::select(vec!["Doe", "Smith", "Ray"]));
    let db = prop::sample::select(vec!["a", "b", "c", "d", "e"]);
    prop::collection::vec((db, logins, emails, first, last), 1..24).prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, (db, login, email, first, last))| Account {
                first_name: first.map(Into::into),
                last_name: last.map(Into::into),
                ..acct(db, &format!("u{i}"), login, email, "", "")
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Without overrides, no person holds two accounts the rules keep apart: emails that
    /// differ, or names that clearly disagree (directly or through other accounts).
    #[test]
    fn no_person_holds_two_accounts_the_rules_keep_apart(accounts in arbitrary_sparse_firm()) {
        use graph::normalize::{last_name_key, name_key, names_disagree, Normalizer};
        let config = config();
        let norm = Normalizer::new(&config.email_domain_aliases, &config.login_domain_aliases);
        let g = resolve(input(accounts), &config);
        for p in g.persons() {
            let accounts: Vec<_> = p.accounts().collect();
            for (i, x) in accounts.iter().enumerate() {
                for y in &accounts[i + 1..] {
                    let (ex, ey) = (
                        x.email().and_then(|e| norm.email_key(e)),
                        y.email().and_then(|e| norm.email_key(e)),
                    );
                    prop_assert!(!matches!((&ex, &ey), (Some(a), Some(b)) if a != b),
                        "{} holds {:?} and {:?}", p.id(), ex, ey);
                    let nx = (name_key(x.first_name().unwrap_or("")), last_name_key(x.last_name().unwrap_or("")));
                    let ny = (name_key(y.first_name().unwrap_or("")), last_name_key(y.last_name().unwrap_or("")));
                    prop_assert!(!names_disagree((&nx.0, &nx.1), (&ny.0, &ny.1)),
                        "{} holds {:?} and {:?}", p.id(), nx, ny);
                }
            }
        }
    }
}
