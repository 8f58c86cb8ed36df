//! Faults, latency, outages, drift, mutations and the `/_sim/` control API, over real HTTP.

mod common;

use common::{assert_error, exact_firm, small_config, start, start_firm};
use imanage_sim::firm::{SimDatabase, Truth};
use imanage_sim::{Change, MutationReport, Sim, SimConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

#[tokio::test]
async fn faults_are_injected_at_about_the_configured_rate() {
    let mut config = small_config();
    config.fault_rate = 0.3;
    let sim = start(config).await;
    let token = sim.token(None).await;
    let url = sim.api("acme-london", "/users?max_results=1");
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    let (mut with_retry_after, mut without_retry_after) = (0, 0);
    let calls = 600;
    for _ in 0..calls {
        let resp = sim
            .http
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        *by_status.entry(status).or_default() += 1;
        if status == 429 {
            match resp.headers().get("retry-after") {
                Some(v) => {
                    assert_eq!(v, "1");
                    with_retry_after += 1;
                }
                None => without_retry_after += 1,
            }
        }
        if status != 200 {
            let body: Value = resp.json().await.expect("json error body");
            let code = if status == 429 {
                "rate_limited"
            } else {
                "unavailable"
            };
            assert_error(&body, code);
        }
    }
    let faults: usize = by_status
        .iter()
        .filter(|(s, _)| **s != 200)
        .map(|(_, n)| n)
        .sum();
    // 180 expected; the binomial standard deviation is about 11.
    assert!((130..=230).contains(&faults), "{by_status:?}");
    assert_eq!(
        by_status.keys().copied().collect::<Vec<_>>(),
        [200, 429, 502, 503, 504]
    );
    assert!(with_retry_after > 0 && without_retry_after > 0);
    let stats = sim.running.handle.stats();
    assert_eq!(stats.total_faults(), faults as u64);
    assert_eq!(stats.faults["429_retry_after"], with_retry_after);
    assert_eq!(stats.calls["users_list"], calls);
    // The token endpoint never fails.
    assert_eq!(stats.token_requests["client_credentials"], 1);

    // Switched off at run time, nothing fails.
    sim.running.handle.set_faults(0.0, 0);
    for _ in 0..50 {
        let (status, _) = sim.get(&url, &token).await;
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn body_faults_spoil_successful_reads_only() {
    let sim = start(small_config()).await;
    let token = sim.token(None).await;
    let url = sim.api("acme-london", "/users?max_results=5");
    let (_, good) = sim.get(&url, &token).await;
    let good_items = good["data"].as_array().map(Vec::len);
    assert_eq!(good_items, Some(5));
    let h = &sim.running.handle;
    h.set_faults(1.0, 0);
    for kind in imanage_sim::FaultKind::BODY {
        h.set_fault_kinds(&[kind]);
        let resp = sim
            .http
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), StatusCode::OK, "{kind}");
        let bytes = resp.bytes().await.expect("body");
        let parsed = serde_json::from_slice::<Value>(&bytes);
        match kind {
            imanage_sim::FaultKind::MalformedJson | imanage_sim::FaultKind::TruncatedBody => {
                assert!(parsed.is_err(), "{kind}: not JSON")
            }
            imanage_sim::FaultKind::WrongTypes => {
                let v = parsed.expect("JSON");
                assert!(v["data"][4]["id"].is_object(), "{kind}: {v}");
                assert_eq!(v["data"][0]["id"], good["data"][0]["id"]);
            }
            imanage_sim::FaultKind::OversizedPage => {
                let v = parsed.expect("JSON");
                assert_eq!(v["data"].as_array().map(Vec::len), Some(50), "{kind}");
            }
            _ => assert!(bytes.len() >= 24 * 1024 * 1024, "{kind}: {}", bytes.len()),
        }
        // Writes and refused calls are never spoiled.
        let (status, _) = sim.get(&url, "not-a-token").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{kind}");
    }
    let stats = h.stats();
    for kind in imanage_sim::FaultKind::BODY {
        assert_eq!(
            stats.faults.get(kind.as_str()),
            Some(&1),
            "{kind}: {stats:?}"
        );
    }
    h.set_faults(0.0, 0);
    h.set_fault_kinds(&[]);
    assert_eq!(h.fault_kinds(), imanage_sim::FaultKind::STATUS.to_vec());
}

#[tokio::test]
async fn fault_rate_one_fails_every_api_call_but_not_tokens_or_control() {
    let mut config = small_config();
    config.fault_rate = 1.0;
    let sim = start(config).await;
    for _ in 0..20 {
        let token = sim.token(None).await;
        let (status, _) = sim.get(&sim.api("acme-london", "/groups"), &token).await;
        assert!([429, 502, 503, 504].contains(&status.as_u16()), "{status}");
        let resp = sim
            .http
            .get(sim.url("/_sim/stats"))
            .send()
            .await
            .expect("stats");
        assert_eq!(resp.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn latency_delays_every_api_call() {
    let mut config = small_config();
    config.latency_ms = 150;
    let sim = start(config).await;
    let token = sim.token(None).await;
    let started = Instant::now();
    let (status, _) = sim
        .get(&sim.api("acme-london", "/users?max_results=1"), &token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));
    // The token endpoint is not delayed.
    let started = Instant::now();
    sim.token(None).await;
    assert!(started.elapsed() < Duration::from_millis(150));
    sim.running.handle.set_faults(0.0, 0);
    assert_eq!(sim.running.handle.faults(), (0.0, 0));
}

#[tokio::test]
async fn a_database_can_be_down_while_others_serve() {
    let sim = start(small_config()).await;
    let token = sim.token(None).await;
    sim.running.handle.set_database_down("acme-newyork", true);
    for path in ["/users", "/groups", "/users/usr_x", "/groups/grp_x/members"] {
        let (status, body) = sim.get(&sim.api("acme-newyork", path), &token).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_error(&body, "unavailable");
    }
    let (status, _) = sim.get(&sim.api("acme-london", "/users"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sim.running.handle.stats().database_down, 4);

    // Through the control API as well.
    let resp = sim
        .http
        .post(sim.url("/_sim/database-down"))
        .json(&json!({"customer_id": "acme-newyork", "down": false}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, _) = sim.get(&sim.api("acme-newyork", "/users"), &token).await;
    assert_eq!(status, StatusCode::OK);
    let resp = sim
        .http
        .post(sim.url("/_sim/database-down"))
        .json(&json!({"customer_id": "acme-atlantis", "down": true}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

fn check_consistent(db: &SimDatabase, truth: &Truth) {
    for g in db.groups.values() {
        for m in &g.members {
            assert!(db.users.contains_key(m), "{} lists missing user {m}", g.id);
        }
    }
    for id in db.users.keys() {
        assert!(
            truth.person_of(&db.customer_id, id).is_some(),
            "{id} missing from the truth"
        );
    }
    let in_truth = truth
        .accounts
        .keys()
        .filter(|k| k.starts_with(&format!("{}/", db.customer_id)))
        .count();
    assert_eq!(in_truth, db.users.len());
}

#[tokio::test]
async fn drift_shifts_pages_and_stays_bounded() {
    let sim = start(small_config()).await;
    let token = sim.token(None).await;
    let before = sim.running.handle.snapshot()[0].clone();
    let baseline = before.users.len();
    sim.running.handle.set_drift(3);

    let url = sim.api("acme-london", "/users");
    let mut totals = Vec::new();
    let mut seen = Vec::new();
    let mut start = 0;
    loop {
        let (status, body) = sim
            .get(&format!("{url}?start_index={start}&max_results=20"), &token)
            .await;
        assert_eq!(status, StatusCode::OK);
        let data = body["data"].as_array().expect("data");
        totals.push(body["total_results"].as_u64().expect("total"));
        seen.extend(
            data.iter()
                .filter_map(|u| u["id"].as_str().map(str::to_string)),
        );
        start += data.len();
        if data.is_empty() || start as u64 >= *totals.last().unwrap_or(&0) {
            break;
        }
    }
    let stats = sim.running.handle.stats();
    assert_eq!(
        stats.drift_added + stats.drift_removed,
        3 * totals.len() as u64
    );
    assert!(
        totals.iter().collect::<HashSet<_>>().len() > 1,
        "totals never moved: {totals:?}"
    );
    // The crawl saw users that no longer exist, or missed some that do: offsets shifted.
    let now = sim.running.handle.snapshot()[0].clone();
    let seen_set: HashSet<&String> = seen.iter().collect();
    let current: HashSet<&String> = now.users.keys().collect();
    assert_ne!(seen_set, current);
    check_consistent(&now, &sim.running.handle.truth());

    // Long drift stays within 5% of the starting size (at least 5 users).
    for _ in 0..150 {
        sim.get(&format!("{url}?max_results=1"), &token).await;
    }
    let size = sim.running.handle.snapshot()[0].users.len();
    let bound = (baseline / 20).max(5);
    assert!(
        size + bound >= baseline && size <= baseline + bound,
        "{size} vs {baseline}"
    );
    // Other databases are untouched, and groups lists do not drift.
    let before_other = &sim.running.handle.snapshot()[1];
    let (_, g1) = sim.get(&sim.api("acme-newyork", "/groups"), &token).await;
    let (_, g2) = sim.get(&sim.api("acme-newyork", "/groups"), &token).await;
    assert_eq!(g1, g2);
    assert_eq!(&sim.running.handle.snapshot()[1], before_other);

    sim.running.handle.set_drift(0);
    let (_, a) = sim.get(&url, &token).await;
    let (_, b) = sim.get(&url, &token).await;
    assert_eq!(a, b);
}

#[tokio::test]
async fn drift_is_deterministic_for_a_seed() {
    let mut sizes = Vec::new();
    for _ in 0..2 {
        let sim = start(small_config()).await;
        let token = sim.token(None).await;
        sim.running.handle.set_drift(4);
        for i in 0..10 {
            sim.get(
                &sim.api(
                    "acme-london",
                    &format!("/users?start_index={}&max_results=10", i * 10),
                ),
                &token,
            )
            .await;
        }
        sizes.push(sim.running.handle.snapshot());
    }
    assert_eq!(sizes[0], sizes[1]);
}

/// Applies a report to a snapshot, the way a consumer of the change log would.
fn apply(before: &[SimDatabase], report: &MutationReport) -> Vec<SimDatabase> {
    let mut dbs = before.to_vec();
    let find = |dbs: &mut Vec<SimDatabase>, c: &str| -> usize {
        dbs.iter()
            .position(|d| d.customer_id == c)
            .expect("database")
    };
    for change in &report.changes {
        match change {
            Change::UserAdded { database, user, .. } => {
                let d = find(&mut dbs, database);
                assert!(dbs[d]
                    .users
                    .insert(user.id.clone(), (**user).clone())
                    .is_none());
            }
            Change::UserRemoved {
                database, user_id, ..
            } => {
                let d = find(&mut dbs, database);
                assert!(dbs[d].users.remove(user_id).is_some());
            }
            Change::UserUpdated {
                database,
                user_id,
                field,
                old,
                new,
            } => {
                let d = find(&mut dbs, database);
                let u = dbs[d].users.get_mut(user_id).expect("user");
                let slot = match field.as_str() {
                    "title" => &mut u.title,
                    "department" => &mut u.department,
                    "email" => &mut u.email,
                    "display_name" => &mut u.display_name,
                    "phone" => &mut u.phone,
                    other => panic!("unexpected field {other}"),
                };
                assert_eq!(slot, old);
                assert_ne!(old, new);
                *slot = new.clone();
            }
            Change::UserDeactivated { database, user_id } => {
                let d = find(&mut dbs, database);
                let u = dbs[d].users.get_mut(user_id).expect("user");
                assert!(u.active);
                u.active = false;
            }
            Change::UserReactivated { database, user_id } => {
                let d = find(&mut dbs, database);
                let u = dbs[d].users.get_mut(user_id).expect("user");
                assert!(!u.active);
                u.active = true;
            }
            Change::MemberAdded {
                database,
                group_id,
                user_id,
            } => {
                let d = find(&mut dbs, database);
                let g = dbs[d].groups.get_mut(group_id).expect("group");
                assert!(g.members.insert(user_id.clone()));
            }
            Change::MemberRemoved {
                database,
                group_id,
                user_id,
            } => {
                let d = find(&mut dbs, database);
                let g = dbs[d].groups.get_mut(group_id).expect("group");
                assert!(g.members.remove(user_id));
            }
            Change::WorkspaceEntryRemoved {
                database,
                workspace_id,
                user_id,
            } => {
                let d = find(&mut dbs, database);
                assert!(!dbs[d].users.contains_key(user_id), "only deleted users");
                let ws = dbs[d].workspaces.get_mut(workspace_id).expect("workspace");
                let before = ws.security.len();
                ws.security.retain(|e| e.is_group || &e.id != user_id);
                assert_eq!(ws.security.len(), before - 1);
            }
        }
    }
    dbs
}

#[tokio::test]
async fn mutate_reports_exactly_what_changed() {
    let sim = Sim::new(small_config());
    let handle = sim.handle();
    let before = handle.snapshot();
    let truth_before = handle.truth();
    let users: usize = before.iter().map(|d| d.users.len()).sum();
    let memberships: usize = before
        .iter()
        .flat_map(|d| d.groups.values().map(|g| g.members.len()))
        .sum();

    let report = handle.mutate(0.1, 99);
    let after = handle.snapshot();
    assert_eq!(apply(&before, &report), after);

    for kind in [
        "user_added",
        "user_removed",
        "user_updated",
        "user_deactivated",
        "member_added",
        "member_removed",
    ] {
        assert!(
            report.count(kind) > 0,
            "no {kind} in {:?}",
            report.changes.len()
        );
    }
    // About 10% of users touched, about 10% of memberships changed.
    let touched: HashSet<(&str, &str)> = report
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::UserUpdated {
                database, user_id, ..
            }
            | Change::UserDeactivated { database, user_id }
            | Change::UserReactivated { database, user_id }
            | Change::UserRemoved {
                database, user_id, ..
            } => Some((database.as_str(), user_id.as_str())),
            Change::UserAdded { database, user, .. } => Some((database.as_str(), user.id.as_str())),
            _ => None,
        })
        .collect();
    let share = touched.len() as f64 / users as f64;
    assert!((0.07..=0.11).contains(&share), "{share}");
    let member_changes = report.count("member_added") + report.count("member_removed");
    let share = member_changes as f64 / memberships as f64;
    assert!((0.08..=0.13).contains(&share), "{share}");

    // The truth follows: added accounts are in it, removed ones are not.
    let truth = handle.truth();
    for c in &report.changes {
        match c {
            Change::UserAdded {
                database,
                user,
                person,
            } => {
                assert_eq!(truth.person_of(database, &user.id), Some(person.as_str()));
            }
            Change::UserRemoved {
                database,
                user_id,
                person,
            } => {
                assert!(truth.person_of(database, user_id).is_none());
                assert_eq!(truth_before.person_of(database, user_id), person.as_deref());
            }
            _ => {}
        }
    }
    for db in &after {
        check_consistent(db, &truth);
    }

    // The same seed on the same firm gives the same report; another seed does not.
    let other = Sim::new(small_config()).handle();
    assert_eq!(other.mutate(0.1, 99), report);
    let third = Sim::new(small_config()).handle();
    assert_ne!(third.mutate(0.1, 100), report);
    assert!(handle.mutate(0.0, 1).changes.is_empty());
}

#[tokio::test]
async fn mutate_keeps_the_firm_resolvable_logins_unique_per_database() {
    let sim = Sim::new(small_config());
    let handle = sim.handle();
    for seed in 0..3 {
        handle.mutate(0.2, seed);
    }
    for db in handle.snapshot() {
        let logins: HashSet<String> = db
            .users
            .values()
            .map(|u| u.login_name.to_lowercase())
            .collect();
        assert_eq!(logins.len(), db.users.len(), "{}", db.customer_id);
    }
}

#[tokio::test]
async fn control_api_over_http() {
    let sim = start_firm(SimConfig::default(), exact_firm(&[("one", 10, 5)])).await;
    let get = |path: &str| {
        let url = sim.url(path);
        let http = sim.http.clone();
        async move {
            let resp = http.get(url).send().await.expect("send");
            (resp.status(), resp.json::<Value>().await.expect("json"))
        }
    };
    let post = |path: &str, body: Value| {
        let url = sim.url(path);
        let http = sim.http.clone();
        async move {
            let resp = http.post(url).json(&body).send().await.expect("send");
            (resp.status(), resp.json::<Value>().await.expect("json"))
        }
    };

    let (status, state) = get("/_sim/state").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state["databases"][0]["customer_id"], "one");
    assert_eq!(
        state["databases"][0]["users"].as_object().map(|m| m.len()),
        Some(10)
    );
    assert_eq!(
        state["databases"][0]["groups"]["grp_000001"]["members"]
            .as_array()
            .map(Vec::len),
        Some(5)
    );
    let (status, truth) = get("/_sim/truth").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(truth["databases"], json!(["one"]));
    assert_eq!(truth["accounts"]["one/usr_000003"], "p3");

    let (status, body) = post("/_sim/faults", json!({"fault_rate": 0.5, "latency_ms": 3})).await;
    assert_eq!(status, StatusCode::OK);
    let status_kinds = json!(["429_retry_after", "429", "502", "503", "504"]);
    assert_eq!(
        body,
        json!({"fault_rate": 0.5, "latency_ms": 3, "kinds": status_kinds})
    );
    assert_eq!(sim.running.handle.faults(), (0.5, 3));
    let (status, body) = post("/_sim/faults", json!({"latency_ms": 0})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"fault_rate": 0.5, "latency_ms": 0, "kinds": status_kinds})
    );
    let (status, body) = post(
        "/_sim/faults",
        json!({"kinds": ["wrong_types", "huge_body"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["kinds"], json!(["wrong_types", "huge_body"]));
    let (status, body) = post("/_sim/faults", json!({"kinds": ["teapot"]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "bad_request");
    let (_, body) = post("/_sim/faults", json!({"kinds": []})).await;
    assert_eq!(
        body["kinds"], status_kinds,
        "an empty list restores the default"
    );
    let (status, body) = post("/_sim/faults", json!({"fault_rate": 2.0})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, "bad_request");
    post("/_sim/faults", json!({"fault_rate": 0.0})).await;

    let (status, body) = post("/_sim/drift", json!({"events_per_page": 2})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["events_per_page"], 2);
    let token = sim.token(None).await;
    let (_, page) = sim.get(&sim.api("one", "/users"), &token).await;
    assert_ne!(page["total_results"], 10, "drift of 2 moved the count");
    post("/_sim/drift", json!({"events_per_page": 0})).await;

    let (status, report) = post("/_sim/mutate", json!({"fraction": 0.5, "seed": 4})).await;
    assert_eq!(status, StatusCode::OK);
    let report: MutationReport = serde_json::from_value(report).expect("a mutation report");
    assert!(!report.changes.is_empty());
    let (status, _) = post("/_sim/mutate", json!({"fraction": -1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post("/_sim/mutate", json!({"seed": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, body) = post("/_sim/revoke-tokens", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["revoked"], 1);
    let (status, _) = sim.get(&sim.api("one", "/users"), &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, stats) = get("/_sim/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["calls"]["users_list"], 2);
    assert_eq!(stats["unauthorized"], 1);
    assert_eq!(stats["tokens_issued"], 1);
    assert_eq!(
        stats["drift_added"].as_u64().unwrap_or(0) + stats["drift_removed"].as_u64().unwrap_or(0),
        2
    );
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let sim = Sim::new(small_config())
        .spawn("127.0.0.1:0")
        .await
        .expect("spawn");
    let url = format!("{}/_sim/stats", sim.base_url());
    assert!(sim.base_url().starts_with("http://127.0.0.1:"));
    let client = reqwest::Client::new();
    assert_eq!(
        client.get(&url).send().await.expect("send").status(),
        StatusCode::OK
    );
    sim.shutdown().await.expect("clean shutdown");
    let fresh = reqwest::Client::new();
    assert!(fresh.get(&url).send().await.is_err());
}
