//! The v2 profile end to end: the same firm harvested through v1 (into SQLite) and through v2
//! (into PostgreSQL, its libraries discovered) fills the same store, workspace security
//! included, and both equal the simulator; resolved, every account reaches exactly the
//! workspaces, at exactly the levels, that the simulator's truth gives; after the same changes
//! on both sides, both stores log the same changes. Then v2 under faults, drift and short-lived
//! tokens, and a v1 deployment without workspace endpoints.

mod support;

use harvest::{HarvestOptions, HarvestReport, Harvester};
use imanage_sim::firm::{FirmSpec, Truth};
use imanage_sim::SimConfig;
use model::Access;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use store::{ChangeQuery, Store};
use support::{
    assert_store_matches_sim, assert_workspaces_match_sim, client, client_with_profile, sim_config,
    start_sim_config, Backend, TestStore,
};

async fn harvest(
    client: imanage::Client,
    databases: Vec<String>,
    store: &Store,
    page_size: u32,
) -> HarvestReport {
    let report = Harvester::new(
        Arc::new(client),
        store.clone(),
        HarvestOptions {
            databases,
            page_size,
            max_recrawls: 5,
            ..HarvestOptions::default()
        },
    )
    .run(&())
    .await
    .expect("the store accepts the harvest");
    for db in &report.databases {
        println!("{}", db.summary_line());
    }
    report
}

fn v2_config(firm: FirmSpec, fault_rate: f64, token_ttl_s: u64) -> SimConfig {
    SimConfig {
        api: imanage_sim::ApiProfile::V2,
        ..sim_config(firm, fault_rate, token_ttl_s)
    }
}

/// One database's stored rows without the raw objects, which differ between the shapes.
async fn stored_rows(store: &Store, database: &str) -> model::DatabaseSnapshot {
    let mut s = store.load_database(database).await.expect("loads");
    for a in &mut s.accounts {
        a.raw = model::RawJson::null();
    }
    for g in &mut s.groups {
        g.raw = model::RawJson::null();
    }
    for w in s.workspaces.iter_mut().flatten() {
        w.raw = model::RawJson::null();
    }
    s
}

/// Every logged change, as comparable text, without `raw` field rows (the raw objects differ
/// between the shapes by design).
async fn change_log(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .changes(&ChangeQuery {
                after_id: after,
                limit: 5000,
                ..ChangeQuery::default()
            })
            .await
            .expect("changes");
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for c in page {
            if c.field.as_deref() == Some("raw") {
                continue;
            }
            out.push(format!(
                "{} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
                c.database,
                c.kind,
                c.user_id,
                c.group_id,
                c.workspace_id,
                c.field,
                c.old_value,
                c.new_value
            ));
        }
    }
    out.sort();
    out
}

/// The graph of a store, resolved with the firm's domains and the truth's security modes.
async fn resolve(store: &Store, truth: &Truth) -> graph::Graph {
    let s = store.load_state().await.expect("state loads");
    let input = graph::Input {
        accounts: s.accounts,
        groups: s.groups,
        memberships: s.memberships,
        workspaces: s.workspaces,
        workspace_entries: s.workspace_entries,
        overrides: s.overrides,
        previous: graph::PersonIds::default(),
    };
    let config = graph::ResolveConfig {
        email_domain_aliases: truth.email_domain_aliases.clone(),
        login_domain_aliases: vec![truth.login_domains.clone()],
        security_modes: truth
            .security_modes
            .iter()
            .map(|(db, mode)| {
                let mode = match mode {
                    imanage_sim::firm::SecurityMode::Optimistic => model::SecurityMode::Optimistic,
                    imanage_sim::firm::SecurityMode::Pessimistic => {
                        model::SecurityMode::Pessimistic
                    }
                };
                (db.clone(), mode)
            })
            .collect(),
    };
    graph::resolve(input, &config)
}

type Reach = BTreeMap<String, BTreeMap<String, Access>>;

/// The truth's access, in the model's levels.
fn truth_reach(truth: &Truth) -> Reach {
    truth
        .workspace_access
        .iter()
        .map(|(account, reach)| {
            let reach = reach
                .iter()
                .map(|(ws, a)| (ws.clone(), Access::parse(a.as_str()).expect("a level")))
                .collect();
            (account.clone(), reach)
        })
        .collect()
}

/// Asks the graph, person by person, what each account reaches, and workspace by workspace,
/// who reaches it; both must be the truth, for every person and every workspace.
fn assert_reach_is_the_truth(graph: &graph::Graph, truth: &Truth, label: &str) {
    let want = truth_reach(truth);
    let mut by_person: Reach = BTreeMap::new();
    let mut persons = 0;
    for p in graph.persons() {
        persons += 1;
        for g in p.reach() {
            if let (Some(ws), Some(access)) = (g.workspace, g.access) {
                if access > Access::NoAccess {
                    let key = format!("{}/{}", g.database(), g.account.user_id());
                    let old = by_person
                        .entry(key)
                        .or_default()
                        .insert(ws.workspace_id().to_string(), access);
                    assert!(
                        old.is_none(),
                        "{label}: one grant per account and workspace"
                    );
                }
            }
        }
    }
    assert!(persons > 0);
    assert_eq!(
        by_person.len(),
        want.len(),
        "{label}: accounts reaching something"
    );
    for (account, reach) in &want {
        assert_eq!(
            by_person.get(account),
            Some(reach),
            "{label}: reach of {account}"
        );
    }
    let mut by_workspace: Reach = BTreeMap::new();
    let workspaces: BTreeSet<(String, String)> = want
        .iter()
        .flat_map(|(account, reach)| {
            let db = account.split_once('/').map(|(d, _)| d.to_string());
            reach
                .keys()
                .map(move |ws| (db.clone().unwrap_or_default(), ws.clone()))
        })
        .collect();
    for (db, ws) in &workspaces {
        for g in graph.who_can_reach_workspace(db, ws) {
            let access = g.access.expect("a workspace grant has a level");
            by_workspace
                .entry(format!("{db}/{}", g.account.user_id()))
                .or_default()
                .insert(ws.clone(), access);
        }
    }
    assert_eq!(by_workspace, want, "{label}: who can reach each workspace");
}

fn persons_of(graph: &graph::Graph) -> BTreeSet<BTreeSet<String>> {
    graph
        .persons()
        .map(|p| p.accounts().map(|a| a.key().to_string()).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_and_v2_fill_the_same_store_and_reach_follows_the_truth() {
    let firm = FirmSpec {
        seed: 31,
        databases: 3,
        people: 1500,
        ..FirmSpec::default()
    };
    let v1 = start_sim_config(sim_config(firm.clone(), 0.0, 3600)).await;
    let v2 = start_sim_config(v2_config(firm, 0.0, 3600)).await;
    let sqlite = TestStore::new(Backend::Sqlite).await;
    let postgres = TestStore::new(Backend::Postgres).await;
    let databases = v1.handle.databases();

    // v2 finds its libraries itself.
    let c2 = client_with_profile(&v2, imanage::ApiProfile::V2, 100, 8);
    let libraries = c2.discover_libraries().await.expect("discovery");
    assert_eq!(libraries, databases);

    for round in 0..2 {
        let r1 = harvest(client(&v1, 100, 8), databases.clone(), &sqlite.store, 100).await;
        let r2 = harvest(c2.clone(), libraries.clone(), &postgres.store, 100).await;
        assert!(r1.all_complete() && r2.all_complete(), "round {round}");
        for (a, b) in r1.databases.iter().zip(&r2.databases) {
            // The same calls in either shape: the v2 discovery is made once, outside them.
            assert_eq!(a.stats.min_calls, b.stats.min_calls, "{}", a.database);
            assert!(
                b.summary_line().contains("workspaces ("),
                "{}",
                b.summary_line()
            );
        }
        assert_store_matches_sim(&sqlite.store, &v1.handle).await;
        assert_workspaces_match_sim(&sqlite.store, &v1.handle).await;
        assert_store_matches_sim(&postgres.store, &v2.handle).await;
        assert_workspaces_match_sim(&postgres.store, &v2.handle).await;
        for db in &databases {
            assert_eq!(
                stored_rows(&sqlite.store, db).await,
                stored_rows(&postgres.store, db).await,
                "round {round}: {db} differs between the v1 and the v2 store"
            );
        }
        assert_eq!(
            change_log(&sqlite.store).await,
            change_log(&postgres.store).await,
            "round {round}: the change logs differ"
        );

        let truth = v2.handle.truth();
        assert_eq!(truth, v1.handle.truth());
        let g1 = resolve(&sqlite.store, &truth).await;
        let g2 = resolve(&postgres.store, &truth).await;
        assert_eq!(persons_of(&g1), persons_of(&g2), "round {round}: persons");
        assert_reach_is_the_truth(&g1, &truth, "v1");
        assert_reach_is_the_truth(&g2, &truth, "v2");

        if round == 0 {
            // The same changes on both sides: users come and go (and their own workspace
            // entries with them), memberships move, and with them who reaches what.
            let m1 = v1.handle.mutate(0.05, 3);
            let m2 = v2.handle.mutate(0.05, 3);
            assert_eq!(m1, m2);
            assert!(m1.count("member_added") > 0 && m1.count("user_removed") > 0);
        }
    }
    let log = change_log(&postgres.store).await;
    assert!(
        log.iter().any(|c| c.contains("MembershipAdded")),
        "the second round logged changes"
    );
}

/// Faults, drift while the first pass pages, and tokens that lapse after 3 idle seconds: the
/// v2 harvest still converges on the simulator's state exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_converges_under_faults_drift_and_short_tokens() {
    let sim = start_sim_config(v2_config(
        FirmSpec {
            seed: 41,
            databases: 3,
            people: 0,
            users_per_database: Some(3000),
            groups_per_database: None,
        },
        0.1,
        3,
    ))
    .await;
    let ts = TestStore::new(Backend::Sqlite).await;
    // Drift for the first pages of the users lists only, so that a re-crawl can converge.
    sim.handle.set_drift(2);
    let handle = sim.handle.clone();
    let stop = tokio::spawn(async move {
        while handle.stats().calls.get("users_list").copied().unwrap_or(0) < 6 {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        handle.set_drift(0);
    });
    let client = client_with_profile(&sim, imanage::ApiProfile::V2, 500, 8);
    let libraries = client.discover_libraries().await.expect("discovery");
    let report = harvest(client.clone(), libraries, &ts.store, 500).await;
    stop.await.expect("drift stopper");
    assert!(report.all_complete(), "{report:?}");
    let stats = sim.handle.stats();
    assert!(stats.drift_added + stats.drift_removed > 0);
    assert!(stats.total_faults() > 0);
    assert!(report.databases.iter().any(|d| d.stats.recrawls > 0));
    assert!(report.databases.iter().any(|d| d.stats.retries > 0));
    assert_store_matches_sim(&ts.store, &sim.handle).await;
    assert_workspaces_match_sim(&ts.store, &sim.handle).await;
}

/// A v1 deployment without workspace endpoints: the harvest completes, says so, and stores no
/// workspaces; a store that had them from an earlier harvest keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_deployment_without_workspaces_leaves_them_unknown() {
    let firm = FirmSpec {
        seed: 43,
        databases: 2,
        people: 400,
        ..FirmSpec::default()
    };
    let with = start_sim_config(sim_config(firm.clone(), 0.0, 3600)).await;
    let without = start_sim_config(SimConfig {
        v1_workspaces: false,
        ..sim_config(firm, 0.0, 3600)
    })
    .await;
    let fresh = TestStore::new(Backend::Sqlite).await;
    let report = harvest(
        client(&without, 1000, 8),
        without.handle.databases(),
        &fresh.store,
        1000,
    )
    .await;
    assert!(report.all_complete());
    for db in &report.databases {
        assert!(db.summary_line().contains("no workspace security offered"));
        let stored = fresh.store.load_database(&db.database).await.expect("load");
        assert_eq!((stored.workspaces, stored.workspace_entries), (None, None));
    }
    assert_store_matches_sim(&fresh.store, &without.handle).await;

    let earlier = TestStore::new(Backend::Sqlite).await;
    assert!(harvest(
        client(&with, 1000, 8),
        with.handle.databases(),
        &earlier.store,
        1000
    )
    .await
    .all_complete());
    let before: Vec<_> = {
        let mut v = Vec::new();
        for db in with.handle.databases() {
            v.push(earlier.store.load_database(&db).await.expect("load"));
        }
        v
    };
    assert!(harvest(
        client(&without, 1000, 8),
        without.handle.databases(),
        &earlier.store,
        1000
    )
    .await
    .all_complete());
    for (db, before) in with.handle.databases().iter().zip(before) {
        let after = earlier.store.load_database(db).await.expect("load");
        assert_eq!(after.workspaces, before.workspaces, "{db}");
        assert_eq!(after.workspace_entries, before.workspace_entries, "{db}");
    }
    assert_workspaces_match_sim(&earlier.store, &with.handle).await;
}
