//! Harvest acceptance tests: the real client over HTTP against the simulator, into a real store
//! on SQLite and on PostgreSQL, compared with the simulator's state exactly.

mod support;

use harvest::{HarvestOptions, HarvestReport, Harvester};
use imanage_sim::firm::FirmSpec;
use imanage_sim::world::Change;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{ChangeKind, ChangeQuery, Store};
use support::{
    assert_store_matches_sim, assert_workspaces_match_sim, client, start_sim, Backend, TestStore,
};

async fn harvest(sim: &imanage_sim::RunningSim, store: &Store, page_size: u32) -> HarvestReport {
    let databases = sim.handle.databases();
    let harvester = Harvester::new(
        Arc::new(client(sim, page_size, 8)),
        store.clone(),
        HarvestOptions {
            databases,
            page_size,
            max_recrawls: 5,
            ..HarvestOptions::default()
        },
    );
    harvester
        .run(&())
        .await
        .expect("the store accepts the harvest")
}

/// One change, in a form both the simulator's report and the store's change log reduce to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    AccountAdded(String, String),
    AccountRemoved(String, String),
    Activated(String, String),
    Deactivated(String, String),
    Field(String, String, String, Option<String>, Option<String>),
    MemberAdded(String, String, String),
    MemberRemoved(String, String, String),
    /// A deleted user's own entry on a workspace's security (database, workspace, user).
    EntryRemoved(String, String, String),
}

/// A field of an account: (database, user id, field).
type FieldKey = (String, String, String);

/// The net effect of the simulator's changes: a field changed twice is one change from the first
/// old value to the last new one; a membership added and removed again is none.
fn expected_changes(changes: &[Change]) -> Vec<Seen> {
    let mut fields: BTreeMap<FieldKey, (Option<String>, Option<String>)> = BTreeMap::new();
    let mut members: BTreeMap<(String, String, String), i32> = BTreeMap::new();
    let mut out = Vec::new();
    for c in changes {
        match c {
            Change::UserAdded { database, user, .. } => {
                out.push(Seen::AccountAdded(database.clone(), user.id.clone()))
            }
            Change::UserRemoved {
                database, user_id, ..
            } => out.push(Seen::AccountRemoved(database.clone(), user_id.clone())),
            Change::UserUpdated {
                database,
                user_id,
                field,
                old,
                new,
            } => {
                let e = fields
                    .entry((database.clone(), user_id.clone(), field.clone()))
                    .or_insert((old.clone(), None));
                e.1 = new.clone();
            }
            Change::UserDeactivated { database, user_id } => {
                out.push(Seen::Deactivated(database.clone(), user_id.clone()))
            }
            Change::UserReactivated { database, user_id } => {
                out.push(Seen::Activated(database.clone(), user_id.clone()))
            }
            Change::MemberAdded {
                database,
                group_id,
                user_id,
            } => {
                *members
                    .entry((database.clone(), group_id.clone(), user_id.clone()))
                    .or_default() += 1
            }
            Change::MemberRemoved {
                database,
                group_id,
                user_id,
            } => {
                *members
                    .entry((database.clone(), group_id.clone(), user_id.clone()))
                    .or_default() -= 1
            }
            Change::WorkspaceEntryRemoved {
                database,
                workspace_id,
                user_id,
            } => out.push(Seen::EntryRemoved(
                database.clone(),
                workspace_id.clone(),
                user_id.clone(),
            )),
        }
    }
    for ((db, user, field), (old, new)) in fields {
        if old != new {
            out.push(Seen::Field(db, user, field, old, new));
        }
    }
    for ((db, group, user), n) in members {
        match n {
            1 => out.push(Seen::MemberAdded(db, group, user)),
            -1 => out.push(Seen::MemberRemoved(db, group, user)),
            _ => {}
        }
    }
    out.sort();
    out
}

async fn logged_changes(store: &Store, run_id: i64) -> Vec<Seen> {
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
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|c| c.id);
        for c in page.into_iter().filter(|c| c.run_id == run_id) {
            let db = c.database.clone();
            let user = c.user_id.clone().unwrap_or_default();
            let group = c.group_id.clone().unwrap_or_default();
            out.push(match c.kind {
                ChangeKind::AccountAdded => Seen::AccountAdded(db, user),
                ChangeKind::AccountRemoved => Seen::AccountRemoved(db, user),
                ChangeKind::AccountActivated => Seen::Activated(db, user),
                ChangeKind::AccountDeactivated => Seen::Deactivated(db, user),
                ChangeKind::AccountChanged => Seen::Field(
                    db,
                    user,
                    c.field.clone().unwrap_or_default(),
                    c.old_value.clone(),
                    c.new_value.clone(),
                ),
                ChangeKind::MembershipAdded => Seen::MemberAdded(db, group, user),
                ChangeKind::MembershipRemoved => Seen::MemberRemoved(db, group, user),
                ChangeKind::WorkspaceEntryRemoved => {
                    Seen::EntryRemoved(db, c.workspace_id.clone().unwrap_or_default(), user)
                }
                other => panic!("unexpected change kind {other:?} in {c:?}"),
            });
        }
    }
    out.sort();
    out
}

/// 5 databases of 20,000 users and 300 groups each, 10% faults and drift during the first pass:
/// the store equals the simulator exactly. Then 1% of users and memberships change, and the next
/// harvest logs exactly those changes and nothing else.
async fn big_firm_with_faults_and_drift(backend: Backend) {
    let sim = start_sim(
        FirmSpec {
            seed: 11,
            databases: 5,
            people: 0,
            users_per_database: Some(20_000),
            groups_per_database: Some(300),
        },
        0.10,
        3600,
    )
    .await;
    let ts = TestStore::new(backend).await;

    // Drift while the first pass pages through the users (the first 30 of the 100 users-list
    // calls a pass takes, whenever the crawl gets to them); then it stops, and the harvester
    // must notice the drift and converge on the state the simulator ends in.
    sim.handle.set_drift(2);
    let handle = sim.handle.clone();
    let stop_drift = tokio::spawn(async move {
        while handle.stats().calls.get("users_list").copied().unwrap_or(0) < 30 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        handle.set_drift(0);
    });
    let started = Instant::now();
    let first = harvest(&sim, &ts.store, 1000).await;
    stop_drift.await.unwrap();
    for db in &first.databases {
        println!("first harvest ({backend:?}): {}", db.summary_line());
    }
    assert!(first.all_complete(), "first harvest incomplete: {first:?}");
    assert!(
        first.databases.iter().any(|d| d.stats.recrawls > 0),
        "drift was injected, so some database must have been crawled again"
    );
    println!(
        "first harvest of 5 x 20,000 users with 10% faults and drift ({backend:?}): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_store_matches_sim(&ts.store, &sim.handle).await;
    assert_workspaces_match_sim(&ts.store, &sim.handle).await;

    let mutation = sim.handle.mutate(0.01, 99);
    assert!(
        mutation.changes.len() > 1000,
        "1% of 100,000 users is about 1,000 changes"
    );
    let started = Instant::now();
    let second = harvest(&sim, &ts.store, 1000).await;
    assert!(
        second.all_complete(),
        "second harvest incomplete: {second:?}"
    );
    println!(
        "second harvest after 1% changed ({backend:?}): {:.1} s, {} changes",
        started.elapsed().as_secs_f64(),
        mutation.changes.len()
    );
    assert_store_matches_sim(&ts.store, &sim.handle).await;
    assert_workspaces_match_sim(&ts.store, &sim.handle).await;
    let expected = expected_changes(&mutation.changes);
    let logged = logged_changes(&ts.store, second.run_id).await;
    if expected != logged {
        let missing: Vec<_> = expected
            .iter()
            .filter(|c| !logged.contains(c))
            .take(10)
            .collect();
        let extra: Vec<_> = logged
            .iter()
            .filter(|c| !expected.contains(c))
            .take(10)
            .collect();
        panic!(
            "change log differs from the simulator's changes ({} expected, {} logged)\nmissing: {missing:#?}\nextra: {extra:#?}",
            expected.len(),
            logged.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_firm_with_faults_and_drift_on_sqlite() {
    big_firm_with_faults_and_drift(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_firm_with_faults_and_drift_on_postgres() {
    big_firm_with_faults_and_drift(Backend::Postgres).await;
}

/// Without faults, the calls made equal the minimum the page size allows, per database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_equal_the_minimum_without_faults() {
    let sim = start_sim(
        FirmSpec {
            seed: 3,
            databases: 3,
            people: 1500,
            ..FirmSpec::default()
        },
        0.0,
        3600,
    )
    .await;
    let ts = TestStore::new(Backend::Sqlite).await;
    for page_size in [1000, 100, 37] {
        let report = harvest(&sim, &ts.store, page_size).await;
        assert!(report.all_complete());
        for db in &report.databases {
            let snapshot = sim
                .handle
                .snapshot()
                .into_iter()
                .find(|d| d.customer_id == db.database)
                .unwrap();
            let pages = |n: usize| (n as u64).div_ceil(u64::from(page_size)).max(1);
            // Users, groups, every group's members, the workspaces, and one security call
            // per workspace.
            let minimum = pages(snapshot.users.len())
                + pages(snapshot.groups.len())
                + snapshot
                    .groups
                    .values()
                    .map(|g| pages(g.members.len()))
                    .sum::<u64>()
                + pages(snapshot.workspaces.len())
                + snapshot.workspaces.len() as u64;
            assert_eq!(db.stats.min_calls, minimum, "{}: minimum", db.database);
            assert_eq!(db.stats.api_calls, minimum, "{}: calls made", db.database);
            assert_eq!(db.stats.retries, 0);
            assert!(db
                .summary_line()
                .contains(&format!("{minimum} calls (minimum {minimum})")));
        }
    }
}

/// A database whose every call fails keeps its previous state and is reported incomplete with
/// its cause; the other databases are harvested as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_database_keeps_its_last_complete_state() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let sim = start_sim(
            FirmSpec {
                seed: 5,
                databases: 3,
                people: 600,
                ..FirmSpec::default()
            },
            0.0,
            3600,
        )
        .await;
        let ts = TestStore::new(backend).await;
        assert!(harvest(&sim, &ts.store, 1000).await.all_complete());
        let down = sim.handle.databases()[1].clone();
        let before = ts.store.load_database(&down).await.unwrap();

        sim.handle.set_database_down(&down, true);
        sim.handle.mutate(0.05, 7);
        let report = harvest(&sim, &ts.store, 1000).await;
        let failed: Vec<_> = report.incomplete().collect();
        assert_eq!(failed.len(), 1, "{backend:?}: {report:?}");
        assert_eq!(failed[0].database, down);
        let line = failed[0].summary_line();
        assert!(
            line.contains("INCOMPLETE") && line.contains("503"),
            "{line}"
        );
        assert_eq!(
            ts.store.load_database(&down).await.unwrap(),
            before,
            "{backend:?}: the failed database's state must be untouched"
        );
        let status = ts
            .store
            .database_statuses()
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.database == down)
            .unwrap();
        assert!(!status.complete);
        assert!(status.last_error.as_deref().unwrap_or("").contains("503"));
        assert!(status.last_complete_at.is_some());

        // Back up: the next harvest heals it.
        sim.handle.set_database_down(&down, false);
        assert!(harvest(&sim, &ts.store, 1000).await.all_complete());
        assert_store_matches_sim(&ts.store, &sim.handle).await;
        assert_workspaces_match_sim(&ts.store, &sim.handle).await;
    }
}

/// Drift that never stops is never committed: the database is marked incomplete instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_drift_is_reported_not_committed() {
    let sim = start_sim(
        FirmSpec {
            seed: 8,
            databases: 1,
            people: 3000,
            ..FirmSpec::default()
        },
        0.0,
        3600,
    )
    .await;
    let ts = TestStore::new(Backend::Sqlite).await;
    assert!(harvest(&sim, &ts.store, 500).await.all_complete());
    let db = sim.handle.databases()[0].clone();
    let before = ts.store.load_database(&db).await.unwrap();
    sim.handle.set_drift(1);
    let report = harvest(&sim, &ts.store, 500).await;
    assert!(!report.all_complete());
    let line = report.databases[0].summary_line();
    assert!(line.contains("drift"), "{line}");
    assert_eq!(ts.store.load_database(&db).await.unwrap(), before);
}
