//! Shared parts of the end-to-end tests: a simulator on a real port, a client for it, a fresh
//! store on a real SQLite file or a real PostgreSQL database, and an exact comparison of the store
//! with the simulator's state.
#![allow(dead_code)]

use imanage_sim::firm::FirmSpec;
use imanage_sim::{ClientSpec, RunningSim, Sim, SimConfig};
use secrecy::SecretString;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use store::Store;

pub const CLIENT_ID: &str = "idgraph";
pub const CLIENT_SECRET: &str = "idgraph-secret";

/// Starts a simulator on 127.0.0.1 with an OS-chosen port.
pub async fn start_sim(firm: FirmSpec, fault_rate: f64, token_ttl_s: u64) -> RunningSim {
    start_sim_config(sim_config(firm, fault_rate, token_ttl_s)).await
}

/// Starts a simulator of any configuration on 127.0.0.1 with an OS-chosen port.
pub async fn start_sim_config(config: SimConfig) -> RunningSim {
    Sim::new(config)
        .spawn("127.0.0.1:0")
        .await
        .expect("simulator starts")
}

/// The configuration [`start_sim`] uses: the v1 shape, the admin client and a `user`-scope
/// client `reader`.
pub fn sim_config(firm: FirmSpec, fault_rate: f64, token_ttl_s: u64) -> SimConfig {
    SimConfig {
        firm,
        clients: vec![
            ClientSpec {
                id: CLIENT_ID.into(),
                secret: CLIENT_SECRET.into(),
                scopes: vec!["admin".into(), "user".into()],
            },
            ClientSpec {
                id: "reader".into(),
                secret: "reader-secret".into(),
                scopes: vec!["user".into()],
            },
        ],
        latency_ms: 0,
        fault_rate,
        token_ttl_s,
        ..SimConfig::default()
    }
}

pub fn base_url(sim: &RunningSim) -> String {
    format!("http://{}", sim.addr)
}

/// A client for the simulator's admin client.
pub fn client(sim: &RunningSim, page_size: u32, max_concurrency: usize) -> imanage::Client {
    client_with_profile(sim, imanage::ApiProfile::V1, page_size, max_concurrency)
}

/// A client for the simulator's admin client in the given API profile.
pub fn client_with_profile(
    sim: &RunningSim,
    api: imanage::ApiProfile,
    page_size: u32,
    max_concurrency: usize,
) -> imanage::Client {
    imanage::Client::new(imanage::ClientConfig {
        api,
        base_url: url::Url::parse(&base_url(sim)).unwrap(),
        client_id: CLIENT_ID.into(),
        client_secret: SecretString::from(CLIENT_SECRET),
        page_size,
        max_concurrency,
        ..imanage::ClientConfig::default()
    })
    .expect("client config is valid")
}

/// Which store backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty store: a SQLite file in a temporary directory, or a new PostgreSQL database
/// that is dropped again when this value is.
pub struct TestStore {
    pub url: String,
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
    pg_db: Option<String>,
}

fn pg_admin_url() -> String {
    std::env::var("IDGRAPH_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

impl TestStore {
    pub async fn new(backend: Backend) -> TestStore {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path: PathBuf = dir.path().join("idgraph.db");
                let url = format!("sqlite://{}", path.display());
                let store = Store::connect(&url).await.expect("sqlite store opens");
                store.migrate().await.expect("sqlite migrations apply");
                TestStore {
                    url,
                    store,
                    _dir: Some(dir),
                    pg_db: None,
                }
            }
            Backend::Postgres => {
                use sqlx::Connection;
                let admin = pg_admin_url();
                let name = format!("idgraph_e2e_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .expect("PostgreSQL must be running on 127.0.0.1:5432 (.ci/run starts it)");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let mut url = url::Url::parse(&admin).unwrap();
                url.set_path(&name);
                let url = url.to_string();
                let store = Store::connect(&url).await.expect("postgres store opens");
                store.migrate().await.expect("postgres migrations apply");
                TestStore {
                    url,
                    store,
                    _dir: None,
                    pg_db: Some(name),
                }
            }
        }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some(name) = self.pg_db.take() {
            // Best effort: a leftover test database is harmless and named as such.
            let admin = pg_admin_url();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    use sqlx::Connection;
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut conn)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Asserts that the store's current state of every simulated database equals the simulator's
/// state exactly: every account and field, every group, every membership.
pub async fn assert_store_matches_sim(store: &Store, sim: &imanage_sim::SimHandle) {
    for db in sim.snapshot() {
        let stored = store
            .load_database(&db.customer_id)
            .await
            .expect("database loads from the store");
        let stored_users: BTreeMap<&str, &model::Account> = stored
            .accounts
            .iter()
            .map(|a| (a.user_id.as_str(), a))
            .collect();
        let sim_ids: BTreeSet<&str> = db.users.keys().map(String::as_str).collect();
        let stored_ids: BTreeSet<&str> = stored_users.keys().copied().collect();
        assert_eq!(
            sim_ids.len(),
            stored_ids.len(),
            "{}: account count differs",
            db.customer_id
        );
        let missing: Vec<_> = sim_ids.difference(&stored_ids).take(5).collect();
        let extra: Vec<_> = stored_ids.difference(&sim_ids).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{}: accounts missing from the store {missing:?}, extra in the store {extra:?}",
            db.customer_id
        );
        for (id, u) in &db.users {
            let a = stored_users[id.as_str()];
            let expected = (
                Some(u.login_name.as_str()),
                u.email.as_deref(),
                Some(u.first_name.as_str()),
                Some(u.last_name.as_str()),
                u.display_name.as_deref(),
                u.active,
                Some(u.user_type.as_str()),
                u.default_database.as_deref(),
                u.phone.as_deref(),
                u.department.as_deref(),
                u.title.as_deref(),
                Some(u.created_date.as_str()),
            );
            let got = (
                a.login_name.as_deref(),
                a.email.as_deref(),
                a.first_name.as_deref(),
                a.last_name.as_deref(),
                a.display_name.as_deref(),
                a.active,
                a.user_type.as_deref(),
                a.default_database.as_deref(),
                a.phone.as_deref(),
                a.department.as_deref(),
                a.title.as_deref(),
                a.created_date.as_deref(),
            );
            assert_eq!(got, expected, "{}/{id}: fields differ", db.customer_id);
        }
        let sim_groups: BTreeMap<&str, &str> = db
            .groups
            .values()
            .map(|g| (g.id.as_str(), g.name.as_str()))
            .collect();
        let stored_groups: BTreeMap<&str, &str> = stored
            .groups
            .iter()
            .map(|g| (g.group_id.as_str(), g.name.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            stored_groups, sim_groups,
            "{}: groups differ",
            db.customer_id
        );
        let sim_members: BTreeSet<(&str, &str)> = db
            .groups
            .values()
            .flat_map(|g| g.members.iter().map(move |m| (g.id.as_str(), m.as_str())))
            .collect();
        let stored_members: BTreeSet<(&str, &str)> = stored
            .memberships
            .iter()
            .map(|m| (m.group_id.as_str(), m.user_id.as_str()))
            .collect();
        assert_eq!(
            sim_members.len(),
            stored_members.len(),
            "{}: membership count differs",
            db.customer_id
        );
        assert!(
            sim_members == stored_members,
            "{}: memberships differ",
            db.customer_id
        );
    }
}

/// Asserts that the store's current workspaces and security entries of every simulated database
/// equal the simulator's exactly.
pub async fn assert_workspaces_match_sim(store: &Store, sim: &imanage_sim::SimHandle) {
    for db in sim.snapshot() {
        let stored = store
            .load_database(&db.customer_id)
            .await
            .expect("database loads from the store");
        let workspaces = stored
            .workspaces
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no workspaces stored", db.customer_id));
        let got: Vec<(&str, Option<&str>, &str)> = workspaces
            .iter()
            .map(|w| {
                (
                    w.workspace_id.as_str(),
                    w.name.as_deref(),
                    w.default_security.as_str(),
                )
            })
            .collect();
        let want: Vec<(&str, Option<&str>, &str)> = db
            .workspaces
            .values()
            .map(|w| {
                (
                    w.id.as_str(),
                    Some(w.name.as_str()),
                    w.default_security.as_str(),
                )
            })
            .collect();
        assert_eq!(got, want, "{}: workspaces differ", db.customer_id);
        let got: BTreeSet<(&str, &str, bool, &str)> = stored
            .workspace_entries
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no security entries stored", db.customer_id))
            .iter()
            .map(|e| {
                (
                    e.workspace_id.as_str(),
                    e.principal_id.as_str(),
                    e.is_group,
                    e.access.as_str(),
                )
            })
            .collect();
        let want: BTreeSet<(&str, &str, bool, &str)> = db
            .workspaces
            .values()
            .flat_map(|w| {
                w.security
                    .iter()
                    .map(move |e| (w.id.as_str(), e.id.as_str(), e.is_group, e.access.as_str()))
            })
            .collect();
        assert_eq!(got, want, "{}: security entries differ", db.customer_id);
    }
}
