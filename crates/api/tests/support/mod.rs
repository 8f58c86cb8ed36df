//! Shared test fixtures: a generated firm committed to a real SQLite store file, an app state
//! over it with one reader and one admin key, and helpers to send GraphQL over `oneshot` or
//! real HTTP.
#![allow(dead_code)]

use api::{AppState, Limits};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use imanage_sim::firm::{Firm, FirmSpec, SimDatabase};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use tower::ServiceExt;

pub const READER: &str = "reader-secret-0123456789";
pub const ADMIN: &str = "admin-secret-9876543210";

/// A small firm: big enough for every kind of mess, small enough for debug-build tests.
pub fn small_spec() -> FirmSpec {
    FirmSpec {
        seed: 7,
        databases: 3,
        people: 400,
        users_per_database: None,
        groups_per_database: None,
    }
}

/// The model rows of one simulated database, as a complete harvest would deliver them.
pub fn snapshot(db: &SimDatabase) -> model::DatabaseSnapshot {
    let mut groups_of: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for g in db.groups.values() {
        for m in &g.members {
            groups_of.entry(m.as_str()).or_default().push(g.id.clone());
        }
    }
    let accounts = db
        .users
        .values()
        .map(|u| model::Account {
            database: db.customer_id.clone(),
            user_id: u.id.clone(),
            login_name: Some(u.login_name.clone()),
            email: u.email.clone(),
            first_name: Some(u.first_name.clone()),
            last_name: Some(u.last_name.clone()),
            display_name: u.display_name.clone(),
            active: u.active,
            user_type: Some(u.user_type.clone()),
            groups: groups_of.get(u.id.as_str()).cloned().unwrap_or_default(),
            default_database: u.default_database.clone(),
            phone: u.phone.clone(),
            department: u.department.clone(),
            title: u.title.clone(),
            created_date: Some(u.created_date.clone()),
            raw: serde_json::to_value(u).unwrap().into(),
        })
        .collect();
    let groups = db
        .groups
        .values()
        .map(|g| model::Group {
            database: db.customer_id.clone(),
            group_id: g.id.clone(),
            name: Some(g.name.clone()),
            member_count: Some(g.members.len() as i64),
            raw: json!({"id": g.id, "name": g.name, "member_count": g.members.len()}).into(),
        })
        .collect();
    let memberships = db
        .groups
        .values()
        .flat_map(|g| {
            g.members.iter().map(|m| model::Membership {
                database: db.customer_id.clone(),
                group_id: g.id.clone(),
                user_id: m.clone(),
            })
        })
        .collect();
    model::DatabaseSnapshot {
        database: db.customer_id.clone(),
        accounts,
        groups,
        memberships,
        workspaces: None,
        workspace_entries: None,
    }
}

/// The resolver configuration the simulated firm needs (its alias domains).
pub fn resolve_config(firm: &Firm) -> graph::ResolveConfig {
    graph::ResolveConfig {
        email_domain_aliases: firm.truth.email_domain_aliases.clone(),
        login_domain_aliases: vec![firm.truth.login_domains.clone()],
        ..Default::default()
    }
}

/// A firm in a fresh SQLite store file, and an app state over it (not yet loaded).
pub struct Fixture {
    pub firm: Firm,
    pub store: store::Store,
    pub state: AppState,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// Generates `spec`, commits every database in one run, and builds the state (no graph
    /// published: call `api::reload`).
    pub async fn new(spec: &FirmSpec, limits: Limits) -> Fixture {
        let firm = imanage_sim::firm::generate(spec);
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("idgraph.db").display());
        let store = store::Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        commit_all(&store, &firm.databases).await;
        let keys = vec![
            format!("reader:{READER}").parse().unwrap(),
            format!("admin:{ADMIN}").parse().unwrap(),
        ];
        let state = AppState::new(store.clone(), Some(keys), limits, resolve_config(&firm));
        Fixture {
            firm,
            store,
            state,
            dir,
        }
    }

    /// `new` with the small firm and default limits, then a first reload.
    pub async fn loaded() -> Fixture {
        let f = Fixture::new(&small_spec(), Limits::default()).await;
        api::reload(&f.state).await.unwrap();
        f
    }

    pub fn database(&self, id: &str) -> &SimDatabase {
        self.firm
            .databases
            .iter()
            .find(|d| d.customer_id == id)
            .unwrap()
    }

    /// The group ids the simulator has the user in.
    pub fn groups_of(&self, database: &str, user_id: &str) -> BTreeSet<String> {
        self.database(database)
            .groups
            .values()
            .filter(|g| g.members.contains(user_id))
            .map(|g| g.id.clone())
            .collect()
    }

    /// Truth: person key -> its accounts as (database, user id).
    pub fn truth_people(&self) -> BTreeMap<String, BTreeSet<(String, String)>> {
        let mut people: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
        for (key, person) in &self.firm.truth.accounts {
            let (db, user) = key.split_once('/').unwrap();
            people
                .entry(person.clone())
                .or_default()
                .insert((db.to_string(), user.to_string()));
        }
        people
    }
}

/// Commits every database to the store in one run.
pub async fn commit_all(store: &store::Store, databases: &[SimDatabase]) {
    let ids: Vec<String> = databases.iter().map(|d| d.customer_id.clone()).collect();
    let run = store.start_run(&ids).await.unwrap();
    for db in databases {
        store
            .commit_database(run, &snapshot(db), &store::CrawlStats::default())
            .await
            .unwrap();
    }
    store.finish_run(run).await.unwrap();
}

/// POSTs a GraphQL request through the router with `oneshot`; returns status and JSON body.
pub async fn post(
    router: &axum::Router,
    key: Option<&str>,
    query: &str,
    variables: Value,
) -> (StatusCode, Value) {
    let body = json!({"query": query, "variables": variables}).to_string();
    post_raw(router, key, body).await
}

pub async fn post_raw(
    router: &axum::Router,
    key: Option<&str>,
    body: String,
) -> (StatusCode, Value) {
    let mut request = Request::post("/graphql").header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)}));
    (status, value)
}

/// Runs a query as an admin; panics on any error in the answer; returns `data`.
pub async fn data(router: &axum::Router, query: &str, variables: Value) -> Value {
    let (status, body) = post(router, Some(ADMIN), query, variables).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "unexpected errors: {body}");
    body["data"].clone()
}

/// The `extensions.code` of the first error.
pub fn first_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}
