//! The two API profiles against the simulator serving the same firm in each shape: the same
//! models come out of both, v2 discovers its libraries and sends `X-Auth-Token`, workspace
//! security reads the same, and a v1 server without workspace endpoints is "not offered".

mod support;

use futures::StreamExt;
use imanage::{ApiProfile, Client, ClientConfig, Error, NewUser, WorkspaceListing};
use imanage_sim::firm::FirmSpec;
use imanage_sim::{RunningSim, SimConfig};
use std::collections::BTreeMap;
use support::*;

fn firm() -> FirmSpec {
    FirmSpec {
        seed: 17,
        databases: 3,
        people: 400,
        ..FirmSpec::default()
    }
}

async fn sim_of(api: ApiProfile, fault_rate: f64) -> RunningSim {
    start_sim(SimConfig {
        firm: firm(),
        api: match api {
            ApiProfile::V1 => imanage_sim::ApiProfile::V1,
            _ => imanage_sim::ApiProfile::V2,
        },
        fault_rate,
        ..sim_config(3600)
    })
    .await
}

fn client_for(base: &str, api: ApiProfile, page_size: u32) -> Client {
    Client::new(ClientConfig {
        api,
        page_size,
        ..config_for(base, ADMIN_ID, ADMIN_SECRET)
    })
    .expect("valid config")
}

/// Everything a harvest reads of one database, as model rows, with `raw` left out (the raw
/// objects differ between the shapes by design).
#[derive(Debug, PartialEq)]
struct Read {
    accounts: Vec<model::Account>,
    groups: Vec<(String, Option<String>, Option<i64>)>,
    members: BTreeMap<String, Vec<String>>,
    workspaces: Vec<(String, Option<String>, model::DefaultSecurity)>,
    entries: Vec<model::WorkspaceEntry>,
}

async fn read_all(client: &Client, db: &str) -> Read {
    let (users, _) = drain(client.list_users(db)).await;
    let accounts = users
        .into_iter()
        .map(|u| model::Account {
            raw: model::RawJson::null(),
            ..u.into_account(db)
        })
        .collect();
    let (groups, _) = drain(client.list_groups(db)).await;
    let mut members = BTreeMap::new();
    for g in &groups {
        let (m, _) = drain(client.list_group_members(db, &g.id)).await;
        members.insert(g.id.clone(), m.into_iter().map(|m| m.user_id).collect());
    }
    let groups = groups
        .into_iter()
        .map(|g| (g.id, g.name, g.member_count))
        .collect();
    let mut workspaces = Vec::new();
    let mut entries = Vec::new();
    let mut listing = std::pin::pin!(client.list_workspaces(db));
    while let Some(item) = listing.next().await {
        match item.expect("workspace page") {
            WorkspaceListing::Page(page) => {
                for ws in page.items {
                    let security = client
                        .get_workspace_security(db, &ws.id)
                        .await
                        .expect("security");
                    assert_eq!(security.attempts, 1);
                    let id = ws.id.clone();
                    let w = ws.into_workspace(db, &security).expect("workspace row");
                    workspaces.push((w.workspace_id, w.name, w.default_security));
                    entries.extend(security.into_entries(db, &id));
                }
            }
            WorkspaceListing::NotOffered => panic!("the simulator offers workspaces"),
        }
    }
    Read {
        accounts,
        groups,
        members,
        workspaces,
        entries,
    }
}

/// The same firm read through v1 and through v2 gives the same rows, and they are the
/// simulator's.
#[tokio::test]
async fn both_profiles_read_the_same_firm() {
    let v1 = sim_of(ApiProfile::V1, 0.0).await;
    let v2 = sim_of(ApiProfile::V2, 0.0).await;
    let c1 = client_for(&v1.base_url(), ApiProfile::V1, 50);
    let c2 = client_for(&v2.base_url(), ApiProfile::V2, 50);
    assert_eq!(v1.handle.snapshot(), v2.handle.snapshot(), "one firm");
    for db in v2.handle.snapshot() {
        let a = read_all(&c1, &db.customer_id).await;
        let b = read_all(&c2, &db.customer_id).await;
        assert_eq!(a, b, "{}", db.customer_id);
        // And it is the simulator's state.
        assert_eq!(b.accounts.len(), db.users.len());
        for acc in &b.accounts {
            let u = &db.users[&acc.user_id];
            assert_eq!(acc.login_name.as_deref(), Some(u.login_name.as_str()));
            assert_eq!(acc.email, u.email);
            assert_eq!(acc.first_name.as_deref(), Some(u.first_name.as_str()));
            assert_eq!(acc.display_name, u.display_name);
            assert_eq!(acc.active, u.active);
            assert_eq!(acc.user_type.as_deref(), Some(u.user_type.as_str()));
            assert_eq!(acc.default_database, u.default_database);
            assert_eq!(acc.created_date.as_deref(), Some(u.created_date.as_str()));
        }
        let sim_members: BTreeMap<String, Vec<String>> = db
            .groups
            .values()
            .map(|g| (g.id.clone(), g.members.iter().cloned().collect()))
            .collect();
        assert_eq!(b.members, sim_members);
        let sim_entries: Vec<(String, String, bool, &str)> = db
            .workspaces
            .values()
            .flat_map(|w| {
                w.security
                    .iter()
                    .map(move |e| (w.id.clone(), e.id.clone(), e.is_group, e.access.as_str()))
            })
            .collect();
        let got: Vec<(String, String, bool, &str)> = b
            .entries
            .iter()
            .map(|e| {
                (
                    e.workspace_id.clone(),
                    e.principal_id.clone(),
                    e.is_group,
                    e.access.as_str(),
                )
            })
            .collect();
        assert_eq!(got, sim_entries);
        let defaults: Vec<(&str, &str)> = b
            .workspaces
            .iter()
            .map(|(id, _, d)| (id.as_str(), d.as_str()))
            .collect();
        let sim_defaults: Vec<(&str, &str)> = db
            .workspaces
            .values()
            .map(|w| (w.id.as_str(), w.default_security.as_str()))
            .collect();
        assert_eq!(defaults, sim_defaults);
    }
}

/// v2: the libraries come from `GET /api`; every API request carries the token in
/// `X-Auth-Token` (no `Authorization`) under the discovered customer id, and pages with
/// `offset`, `limit` and `total=true`.
#[tokio::test]
async fn v2_discovers_libraries_and_speaks_the_v2_shape() {
    let sim = sim_of(ApiProfile::V2, 0.0).await;
    let proxy = serve(Some(sim.addr), |_| Action::Forward).await;
    let client = client_for(&proxy.base_url(), ApiProfile::V2, 100);
    let libraries = client.discover_libraries().await.expect("discovery");
    assert_eq!(libraries, sim.handle.databases());
    let (users, pages) = drain(client.list_users(&libraries[0])).await;
    assert_eq!(users.len(), sim.handle.snapshot()[0].users.len());
    assert!(pages.len() > 1);
    assert!(pages
        .iter()
        .all(|p| p.total_results == Some(users.len() as u64)));
    let log = proxy.log.lock().expect("log").clone();
    let api: Vec<&Req> = log
        .iter()
        .filter(|r| !r.path().starts_with("/auth/"))
        .collect();
    assert_eq!(api[0].path(), "/api");
    for r in &api {
        assert!(r.header("x-auth-token").is_some(), "{}", r.target);
        assert!(r.header("authorization").is_none(), "{}", r.target);
    }
    let lists: Vec<&&Req> = api.iter().filter(|r| r.path() != "/api").collect();
    assert_eq!(lists.len(), pages.len());
    for (i, r) in lists.iter().enumerate() {
        assert_eq!(
            r.path(),
            format!("/work/api/v2/customers/1/libraries/{}/users", libraries[0])
        );
        assert_eq!(r.query("offset"), Some((i * 100).to_string()));
        assert_eq!(r.query("limit").as_deref(), Some("100"));
        assert_eq!(r.query("total").as_deref(), Some("true"));
        assert_eq!(r.query("start_index"), None);
    }
    // The discovery was made once: the list calls used its customer id.
    assert_eq!(sim_calls(&sim, "discovery"), 1);
    // Stats: discovery counts in the totals, not as a database.
    let stats = client.stats();
    assert_eq!(stats.total.calls, api.len() as u64);
    assert_eq!(stats.per_customer.len(), 1);
}

/// Crawls of every library at once share one discovery.
#[tokio::test]
async fn concurrent_v2_calls_share_one_discovery() {
    let sim = sim_of(ApiProfile::V2, 0.0).await;
    let client = client_for(&sim.base_url(), ApiProfile::V2, 1000);
    let libraries = sim.handle.databases();
    let crawls = libraries.iter().map(|lib| {
        let client = client.clone();
        async move { drain(client.list_groups(lib)).await.0.len() }
    });
    let counts = futures::future::join_all(crawls).await;
    assert!(counts.iter().all(|n| *n > 0));
    assert_eq!(sim_calls(&sim, "discovery"), 1);
    // A single user reads in the v2 shape too.
    let db = &sim.handle.snapshot()[1];
    let (id, u) = db.users.iter().next().expect("a user");
    let got = client.get_user(&db.customer_id, id).await.expect("user");
    assert_eq!(got.login_name.as_deref(), Some(u.login_name.as_str()));
    let err = client
        .get_user(&db.customer_id, "usr_nobody")
        .await
        .expect_err("404");
    assert!(err.is_not_found(), "{err}");
    assert!(
        err.to_string().contains("usr_nobody"),
        "the v2 message: {err}"
    );
}

#[tokio::test]
async fn a_v1_server_without_workspaces_offers_none_and_v2_404s_are_errors() {
    let sim = start_sim(SimConfig {
        firm: firm(),
        v1_workspaces: false,
        ..sim_config(3600)
    })
    .await;
    let client = client_for(&sim.base_url(), ApiProfile::V1, 1000);
    let db = &sim.handle.databases()[0];
    let items: Vec<_> = client.list_workspaces(db).collect().await;
    assert_eq!(items.len(), 1);
    assert!(matches!(items[0], Ok(WorkspaceListing::NotOffered)));
    // Discovery is v2's: a v1 server answers 404.
    let err = client.discover_libraries().await.expect_err("no /api");
    assert!(err.is_not_found(), "{err}");

    let v2 = sim_of(ApiProfile::V2, 0.0).await;
    let c2 = client_for(&v2.base_url(), ApiProfile::V2, 1000);
    let items: Vec<_> = c2.list_workspaces("no-such-library").collect().await;
    assert_eq!(items.len(), 1);
    assert!(
        matches!(&items[0], Err(e) if e.is_not_found()),
        "{:?}",
        items[0]
    );
    let err = c2
        .get_workspace_security(&v2.handle.databases()[0], "nope!1")
        .await
        .expect_err("unknown workspace");
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test]
async fn v2_writes_are_refused_before_any_request() {
    let sim = sim_of(ApiProfile::V2, 0.0).await;
    let client = client_for(&sim.base_url(), ApiProfile::V2, 1000);
    let db = sim.handle.databases()[0].clone();
    let err = client
        .create_user(&db, &NewUser::new("x", "x@acme.com", "X", "Y"))
        .await
        .expect_err("unsupported");
    assert!(
        matches!(
            err,
            Error::Unsupported {
                call: "create_user",
                profile: "v2"
            }
        ),
        "{err}"
    );
    assert!(matches!(
        client.remove_member(&db, "g", "u").await,
        Err(Error::Unsupported { .. })
    ));
    assert!(matches!(
        client.find_users_by_login(&db, "jdoe").await,
        Err(Error::Unsupported { .. })
    ));
    assert_eq!(sim.handle.stats().total_calls(), 0, "nothing was sent");
}

/// Faults, a revoked token and idle-lapsing v2 tokens: the v2 crawl still reads everything.
#[tokio::test]
async fn v2_retries_faults_and_renews_tokens() {
    let sim = sim_of(ApiProfile::V2, 0.2).await;
    let client = client_for(&sim.base_url(), ApiProfile::V2, 20);
    let lib = sim.handle.databases()[0].clone();
    let (first, _) = drain(client.list_groups(&lib)).await;
    sim.handle.revoke_tokens();
    let (users, _) = drain(client.list_users(&lib)).await;
    let db = &sim.handle.snapshot()[0];
    assert_eq!(first.len(), db.groups.len());
    assert_eq!(users.len(), db.users.len());
    let stats = client.stats();
    assert!(stats.total.retries.total() > 0, "{stats:?}");
    assert!(stats.renewals >= 1, "{stats:?}");
    assert!(sim.handle.stats().total_faults() > 0);
}
