//! Workspaces of the synthetic firm, the access truth and the v1 workspace extension.
//!
//! The access rule is written out again here, in the plainest form, so that the simulator's own
//! implementation is checked against an independent one.

mod common;

use common::{small_config, start, start_firm, TestSim};
use imanage_sim::firm::{
    generate, Access, DefaultSecurity, FirmSpec, SecurityMode, SimDatabase, Truth,
};
use imanage_sim::{Sim, SimConfig};
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The rule, from DESIGN.md, for one account and one workspace, by brute force.
fn expected_access(db: &SimDatabase, mode: SecurityMode, user: &str, ws: &str) -> Access {
    let ws = &db.workspaces[ws];
    if let Some(own) = ws.security.iter().find(|e| !e.is_group && e.id == user) {
        return own.access;
    }
    let levels: Vec<Access> = ws
        .security
        .iter()
        .filter(|e| e.is_group && db.groups[&e.id].members.contains(user))
        .map(|e| e.access)
        .collect();
    if !levels.is_empty() {
        let mut best = levels[0];
        for l in &levels[1..] {
            best = match mode {
                SecurityMode::Optimistic if *l > best => *l,
                SecurityMode::Pessimistic if *l < best => *l,
                _ => best,
            };
        }
        return best;
    }
    match ws.default_security {
        DefaultSecurity::Private => Access::NoAccess,
        DefaultSecurity::View => Access::Read,
        DefaultSecurity::Public => Access::ReadWrite,
    }
}

/// Every (account, workspace) with access above no_access, by brute force.
fn expected_truth(
    dbs: &[SimDatabase],
    truth: &Truth,
) -> BTreeMap<String, BTreeMap<String, Access>> {
    let mut out: BTreeMap<String, BTreeMap<String, Access>> = BTreeMap::new();
    for db in dbs {
        let mode = truth.security_mode(&db.customer_id);
        for user in db.users.keys() {
            for ws in db.workspaces.keys() {
                let a = expected_access(db, mode, user, ws);
                if a > Access::NoAccess {
                    out.entry(format!("{}/{user}", db.customer_id))
                        .or_default()
                        .insert(ws.clone(), a);
                }
            }
        }
    }
    out
}

fn small_firm() -> imanage_sim::firm::Firm {
    firm_of_seed(7)
}

fn firm_of_seed(seed: u64) -> imanage_sim::firm::Firm {
    generate(&FirmSpec {
        seed,
        databases: 3,
        people: 300,
        ..FirmSpec::default()
    })
}

#[test]
fn workspaces_are_plausible_and_name_only_principals_of_their_database() {
    let firm = generate(&FirmSpec {
        seed: 5,
        databases: 4,
        people: 2000,
        ..FirmSpec::default()
    });
    let mut open = 0;
    let mut private = 0;
    for db in &firm.databases {
        let n = db.workspaces.len();
        assert!(n >= 5, "{}: {n} workspaces", db.customer_id);
        // Up to five for the hard cases, then one per 40 accounts (at least three).
        assert!(
            n >= db.users.len() / 40 + 3 && n <= (db.users.len() / 40).max(3) + 5,
            "{}: {n} workspaces for {} users",
            db.customer_id,
            db.users.len()
        );
        for (id, ws) in &db.workspaces {
            assert_eq!(id, &ws.id);
            let (lib, number) = id.split_once('!').expect("LIBRARY!NUMBER");
            assert_eq!(lib, db.customer_id);
            assert!(number.parse::<u64>().is_ok(), "{id}");
            assert!(!ws.name.is_empty());
            let mut principals = BTreeSet::new();
            for e in &ws.security {
                assert!(
                    principals.insert((e.is_group, e.id.clone())),
                    "{id}: repeated {e:?}"
                );
                if e.is_group {
                    assert!(
                        db.groups.contains_key(&e.id),
                        "{id}: unknown group {}",
                        e.id
                    );
                } else {
                    assert!(db.users.contains_key(&e.id), "{id}: unknown user {}", e.id);
                }
            }
            // Groups first, then users, each by id.
            let order: Vec<(bool, &str)> = ws
                .security
                .iter()
                .map(|e| (!e.is_group, e.id.as_str()))
                .collect();
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(order, sorted, "{id}");
            match ws.default_security {
                DefaultSecurity::Private => private += 1,
                _ => open += 1,
            }
        }
    }
    assert!(
        private > 9 * open,
        "mostly private: {private} private, {open} open"
    );
    // Both modes in a multi-database firm, and every database has one.
    let modes: BTreeSet<SecurityMode> = firm.truth.security_modes.values().copied().collect();
    assert_eq!(modes.len(), 2, "{:?}", firm.truth.security_modes);
    assert_eq!(firm.truth.security_modes.len(), firm.databases.len());
}

#[test]
fn the_access_truth_follows_the_rule_for_every_account_and_workspace() {
    let firm = small_firm();
    let truth = firm.access_truth();
    assert!(!truth.is_empty());
    assert_eq!(truth, expected_truth(&firm.databases, &firm.truth));
    // The handle computes the same from the state it serves.
    let sim = Sim::new(SimConfig {
        firm: FirmSpec {
            seed: 7,
            databases: 3,
            people: 300,
            ..FirmSpec::default()
        },
        ..SimConfig::default()
    });
    let served = sim.handle().truth();
    assert_eq!(served.workspace_access, truth);
    assert_eq!(served.security_modes, firm.truth.security_modes);
    assert_eq!(
        served.access_of("nope", "nope", "nope"),
        None,
        "unknown accounts reach nothing"
    );
}

/// How one (account, workspace) pair was decided, as the rule's tests need to see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Case {
    /// The account's own entry, at this level.
    Explicit(Access),
    /// The account's own entry at this level, while a group of it has an entry at another.
    ExplicitOverGroup(Access),
    /// The account's own entry at this level, against a default that would give another.
    ExplicitOverDefault(Access),
    /// One group entry decides.
    OneGroup(Access),
    /// Several group entries with different levels, under a mode.
    SeveralGroups(SecurityMode),
    /// Several group entries, one of them no_access, under a mode.
    SeveralWithNoAccess(SecurityMode),
    /// Group entries decide against the default (e.g. a no_access group on a view workspace).
    GroupOverDefault,
    /// No entry for the account: the default, on a workspace with entries for others.
    Default(DefaultSecurity),
    /// A workspace with no entries at all.
    OnlyDefault(DefaultSecurity),
}

fn classify(db: &SimDatabase, user: &str, ws_id: &str, mode: SecurityMode) -> Case {
    let ws = &db.workspaces[ws_id];
    let default = match ws.default_security {
        DefaultSecurity::Private => Access::NoAccess,
        DefaultSecurity::View => Access::Read,
        DefaultSecurity::Public => Access::ReadWrite,
    };
    let own = ws
        .security
        .iter()
        .find(|e| !e.is_group && e.id == user)
        .map(|e| e.access);
    let groups: Vec<Access> = ws
        .security
        .iter()
        .filter(|e| e.is_group && db.groups[&e.id].members.contains(user))
        .map(|e| e.access)
        .collect();
    let distinct: BTreeSet<Access> = groups.iter().copied().collect();
    match own {
        Some(a) if groups.iter().any(|g| *g != a) => Case::ExplicitOverGroup(a),
        Some(a)
            if groups.is_empty()
                && ws.default_security != DefaultSecurity::Private
                && a != default =>
        {
            Case::ExplicitOverDefault(a)
        }
        Some(a) => Case::Explicit(a),
        None if distinct.len() > 1 && distinct.contains(&Access::NoAccess) => {
            Case::SeveralWithNoAccess(mode)
        }
        None if distinct.len() > 1 => Case::SeveralGroups(mode),
        None if !groups.is_empty() && ws.default_security != DefaultSecurity::Private => {
            Case::GroupOverDefault
        }
        None if !groups.is_empty() => Case::OneGroup(groups[0]),
        None if ws.security.is_empty() => Case::OnlyDefault(ws.default_security),
        None => Case::Default(ws.default_security),
    }
}

/// Every combination of the access rule occurs in an ordinary generated firm (of any seed
/// tried), and in each the truth gives what the rule says.
#[test]
fn every_combination_of_the_rule_occurs_in_a_generated_firm() {
    for seed in [7, 21, 1234, 99, 5] {
        every_combination_occurs(&firm_of_seed(seed));
    }
}

fn every_combination_occurs(firm: &imanage_sim::firm::Firm) {
    let truth = firm.access_truth();
    let mut seen: BTreeMap<Case, usize> = BTreeMap::new();
    for db in &firm.databases {
        let mode = firm.truth.security_mode(&db.customer_id);
        for user in db.users.keys() {
            for ws in db.workspaces.keys() {
                let case = classify(db, user, ws, mode);
                *seen.entry(case).or_default() += 1;
                let got = truth
                    .get(&format!("{}/{user}", db.customer_id))
                    .and_then(|r| r.get(ws))
                    .copied()
                    .unwrap_or(Access::NoAccess);
                assert_eq!(got, expected_access(db, mode, user, ws), "{case:?}");
            }
        }
    }
    use Access::*;
    use SecurityMode::*;
    let wanted = [
        Case::Explicit(Read),
        Case::Explicit(ReadWrite),
        Case::Explicit(FullAccess),
        // A lower own entry wins over a higher group's, a higher one over a no_access group's,
        // and an own no_access over a default that would let everyone read.
        Case::ExplicitOverGroup(Read),
        Case::ExplicitOverGroup(FullAccess),
        Case::ExplicitOverDefault(NoAccess),
        Case::OneGroup(ReadWrite),
        Case::OneGroup(FullAccess),
        Case::OneGroup(NoAccess),
        Case::SeveralGroups(Optimistic),
        Case::SeveralGroups(Pessimistic),
        Case::SeveralWithNoAccess(Optimistic),
        Case::SeveralWithNoAccess(Pessimistic),
        Case::GroupOverDefault,
        Case::Default(DefaultSecurity::Private),
        Case::Default(DefaultSecurity::View),
        Case::OnlyDefault(DefaultSecurity::Private),
        Case::OnlyDefault(DefaultSecurity::Public),
    ];
    let missing: Vec<&Case> = wanted.iter().filter(|c| !seen.contains_key(c)).collect();
    assert!(missing.is_empty(), "missing {missing:?}; seen {seen:?}");
    // The two modes really differ somewhere: an account in a read and a full_access group.
    let differs = firm.databases.iter().any(|db| {
        db.users.keys().any(|u| {
            db.workspaces.keys().any(|w| {
                expected_access(db, Optimistic, u, w) != expected_access(db, Pessimistic, u, w)
            })
        })
    });
    assert!(differs);
}

#[test]
fn tiny_and_hand_built_firms_have_workspaces_or_none_without_panicking() {
    for (databases, people) in [(1, 0), (1, 1), (2, 3), (1, 12)] {
        let firm = generate(&FirmSpec {
            seed: 3,
            databases,
            people,
            ..FirmSpec::default()
        });
        assert_eq!(
            firm.access_truth(),
            expected_truth(&firm.databases, &firm.truth)
        );
    }
}

/// Mutations and deletes change who reaches what; the truth follows, and a deleted user's own
/// entries go with it, reported as changes.
#[tokio::test]
async fn the_truth_follows_memberships_and_deleted_users_leave_the_security() {
    let sim = start(small_config()).await;
    let handle = &sim.running.handle;
    let report = handle.mutate(0.3, 5);
    let now = handle.snapshot();
    let truth = handle.truth();
    assert_eq!(truth.workspace_access, expected_truth(&now, &truth));
    let entry_removals = report.count("workspace_entry_removed");
    assert!(entry_removals > 0, "{:?}", report.changes.len());
    for db in &now {
        for ws in db.workspaces.values() {
            for e in ws.security.iter().filter(|e| !e.is_group) {
                assert!(
                    db.users.contains_key(&e.id),
                    "{} names deleted {}",
                    ws.id,
                    e.id
                );
            }
        }
    }
    // An API delete takes the entries too.
    let token = sim.token(None).await;
    let (db, ws, user) = now
        .iter()
        .find_map(|db| {
            db.workspaces.values().find_map(|ws| {
                ws.security
                    .iter()
                    .find(|e| !e.is_group)
                    .map(|e| (db.customer_id.clone(), ws.id.clone(), e.id.clone()))
            })
        })
        .expect("a user entry");
    let (status, _) = sim
        .send(
            reqwest::Method::DELETE,
            &sim.api(&db, &format!("/users/{user}")),
            &token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = sim
        .get(&sim.api(&db, &format!("/workspaces/{ws}/security")), &token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["data"]["members"]
        .as_array()
        .expect("members")
        .iter()
        .all(|m| m["id"] != user.as_str()));
}

async fn all_workspaces(sim: &TestSim, db: &str, token: &str, page: usize) -> Vec<Value> {
    sim.all_pages(&sim.api(db, "/workspaces"), token, page)
        .await
}

#[tokio::test]
async fn v1_extension_pages_workspaces_and_serves_their_security() {
    let sim = start(small_config()).await;
    let token = sim.token(Some("user")).await;
    for db in sim.running.handle.snapshot() {
        for page in [1, 7, 1000] {
            let listed = all_workspaces(&sim, &db.customer_id, &token, page).await;
            let ids: Vec<&str> = listed
                .iter()
                .map(|w| w["id"].as_str().expect("id"))
                .collect();
            let expected: Vec<&str> = db.workspaces.keys().map(String::as_str).collect();
            assert_eq!(ids, expected, "{} page {page}", db.customer_id);
        }
        for ws in db.workspaces.values() {
            let (status, body) = sim
                .get(
                    &sim.api(&db.customer_id, &format!("/workspaces/{}/security", ws.id)),
                    &token,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let data = &body["data"];
            assert_eq!(data["default_security"], ws.default_security.as_str());
            let members: Vec<(String, bool, String)> = data["members"]
                .as_array()
                .expect("members")
                .iter()
                .map(|m| {
                    (
                        m["id"].as_str().expect("id").to_string(),
                        m["is_group"].as_bool().expect("is_group"),
                        m["access"].as_str().expect("access").to_string(),
                    )
                })
                .collect();
            let expected: Vec<(String, bool, String)> = ws
                .security
                .iter()
                .map(|e| (e.id.clone(), e.is_group, e.access.as_str().to_string()))
                .collect();
            assert_eq!(members, expected, "{}", ws.id);
        }
    }
    let stats = sim.running.handle.stats();
    assert!(stats.calls["workspaces_list"] > 0);
    assert!(stats.calls["workspace_security"] > 0);

    // The list item carries the default too; unknown workspaces and databases are 404.
    let db = &sim.running.handle.databases()[0];
    let (status, body) = sim
        .get(&sim.api(db, "/workspaces?max_results=1"), &token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["total_results"].as_u64().expect("total") >= 5);
    assert!(body["data"][0]["default_security"].is_string());
    assert!(body["data"][0]["name"].is_string());
    let (status, body) = sim
        .get(&sim.api(db, "/workspaces/nope!1/security"), &token)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    common::assert_error(&body, "not_found");
    let (status, _) = sim.get(&sim.api("nope", "/workspaces"), &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = sim
        .get(&sim.api(db, "/workspaces?start_index=-1"), &token)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn without_the_extension_v1_has_no_workspace_endpoints() {
    let sim = start(SimConfig {
        v1_workspaces: false,
        ..small_config()
    })
    .await;
    let token = sim.token(None).await;
    let db = &sim.running.handle.databases()[0];
    let (status, body) = sim.get(&sim.api(db, "/workspaces"), &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    common::assert_error(&body, "not_found");
    // Everything else is still there.
    let (status, _) = sim.get(&sim.api(db, "/users"), &token).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_truth_over_http_carries_modes_and_access() {
    let sim = start(small_config()).await;
    let (status, body) = sim.get(&sim.url("/_sim/truth"), "unused").await;
    assert_eq!(status, StatusCode::OK);
    let modes = body["security_modes"].as_object().expect("modes");
    assert_eq!(modes.len(), 3);
    assert!(modes.values().any(|m| m == "pessimistic"));
    let access = body["workspace_access"].as_object().expect("access");
    let (key, reach) = access.iter().next().expect("someone reaches something");
    assert!(key.contains("/usr_"));
    let (ws, level) = reach.as_object().expect("map").iter().next().expect("one");
    assert!(ws.contains('!'));
    assert!(["read", "read_write", "full_access"].contains(&level.as_str().expect("level")));
    let truth: Truth = serde_json::from_value(body).expect("round trip");
    assert_eq!(truth, sim.running.handle.truth());
}

#[tokio::test]
async fn a_hand_built_firm_without_workspaces_lists_none() {
    let firm = common::exact_firm(&[("solo", 3, 2)]);
    let sim = start_firm(SimConfig::default(), firm).await;
    let token = sim.token(None).await;
    let (status, body) = sim.get(&sim.api("solo", "/workspaces"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"], serde_json::json!([]));
    assert_eq!(body["total_results"], 0);
    assert!(sim.running.handle.truth().workspace_access.is_empty());
}
