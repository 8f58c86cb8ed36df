//! The real `idgraph serve` and `idgraph demo` over HTTP: harvest from the simulator, resolve,
//! serve, and answer the CONTRACTS.md queries against the simulator's ground truth.

mod support;

use imanage_sim::firm::FirmSpec;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{base_url, start_sim, Backend, TestStore};

const ADMIN_KEY: &str = "admin-key-for-tests-0123456789";
const READER_KEY: &str = "reader-key-for-tests-0123456789";

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a process and waits for the line naming its URL on standard output.
fn start(mut cmd: Command, marker: &str) -> (Child, String, Vec<String>) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    #[allow(clippy::zombie_processes)] // the caller's `Server` waits for it on drop
    let mut child = cmd.spawn().expect("idgraph starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut lines = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(line.clone());
            if let Some(i) = line.find(marker) {
                let url: String = line[i + marker.len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string();
                // Keep draining so the child never blocks on a full pipe.
                std::thread::spawn(move || while rx.recv().is_ok() {});
                return (child, url, lines);
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("no line with {marker:?} within two minutes; got {lines:?}");
}

fn serve(sim: &imanage_sim::RunningSim, database_url: &str) -> Server {
    serve_with(sim, database_url, None, false)
}

/// `idgraph serve` against the simulator; with `v2`, in the v2 profile with the libraries
/// discovered rather than configured.
fn serve_with(
    sim: &imanage_sim::RunningSim,
    database_url: &str,
    config: Option<&std::path::Path>,
    v2: bool,
) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idgraph"));
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--harvest-every", "1h"])
        .env("IDGRAPH_LOG", "warn")
        .env("DATABASE_URL", database_url)
        .env("IMANAGE_BASE_URL", base_url(sim))
        .env("IMANAGE_CLIENT_ID", support::CLIENT_ID)
        .env("IMANAGE_CLIENT_SECRET", support::CLIENT_SECRET)
        .env("IMANAGE_CUSTOMERS", sim.handle.truth().databases.join(","))
        .env(
            "IDGRAPH_API_KEYS",
            format!("admin:{ADMIN_KEY},reader:{READER_KEY}"),
        )
        .env("IDGRAPH_EMAIL_DOMAIN_ALIASES", "acme.com=acme-law.com")
        .env(
            "IDGRAPH_LOGIN_DOMAIN_ALIASES",
            "ACME=ACMELAW=acme.com=acme-law.com",
        );
    if v2 {
        cmd.env("IMANAGE_API", "v2").env_remove("IMANAGE_CUSTOMERS");
    }
    let (child, url, _) = start(cmd, "serving on ");
    Server { child, url }
}

async fn wait_ready(http: &reqwest::Client, graphql_url: &str) {
    let base = graphql_url.trim_end_matches("/graphql");
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{base}/readyz never answered 200");
}

async fn gql(
    http: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    query: &str,
    variables: Value,
) -> (u16, Value) {
    let mut req = http
        .post(url)
        .json(&json!({"query": query, "variables": variables}));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.expect("request is answered");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

const PERSON: &str = "query($login: String!) { person(login: $login) { id displayName logins emails accounts { database userId loginName email active groups { database groupId name } person { id } } reach { database access account { userId } group { groupId } workspace { workspaceId } } evidence { key value accounts { userId } } conflicts { kind detail } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_the_contract_queries_from_a_harvest() {
    let sim = start_sim(
        FirmSpec {
            seed: 4,
            databases: 4,
            people: 800,
            ..FirmSpec::default()
        },
        0.0,
        3600,
    )
    .await;
    let ts = TestStore::new(Backend::Sqlite).await;
    let server = serve(&sim, &ts.url);
    let http = reqwest::Client::new();
    let base = server.url.trim_end_matches("/graphql").to_string();
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    wait_ready(&http, &server.url).await;

    // No key, a wrong key: 401 before any GraphQL runs, with a GraphQL-shaped error.
    for key in [None, Some("wrong")] {
        let (status, body) = gql(&http, &server.url, key, "{ databases { id } }", json!({})).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    }

    // databases: every simulated database, complete, with the simulator's counts.
    let (status, body) = gql(
        &http,
        &server.url,
        Some(READER_KEY),
        "{ databases { id accountCount groupCount lastHarvestedAt complete } }",
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let snapshot = sim.handle.snapshot();
    let dbs = body["data"]["databases"].as_array().unwrap();
    assert_eq!(dbs.len(), snapshot.len());
    for db in &snapshot {
        let d = dbs
            .iter()
            .find(|d| d["id"] == db.customer_id.as_str())
            .unwrap();
        assert_eq!(d["accountCount"], db.users.len());
        assert_eq!(d["groupCount"], db.groups.len());
        assert_eq!(d["complete"], true);
        assert!(d["lastHarvestedAt"].is_string());
    }

    // person(login:): for people with accounts in several databases, the accounts equal the
    // ground truth and each account's groups equal the simulator's memberships.
    let truth = sim.handle.truth();
    let mut by_person: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (account, person) in &truth.accounts {
        by_person.entry(person).or_default().push(account);
    }
    let shared: std::collections::HashSet<&str> = truth
        .mess
        .shared_logins
        .keys()
        .map(String::as_str)
        .collect();
    let mut checked = 0;
    let mut offboard_candidate: Option<String> = None;
    for accounts in by_person.values().filter(|a| a.len() >= 2).take(40) {
        let (db, uid) = accounts[0].split_once('/').unwrap();
        let sdb = snapshot.iter().find(|d| d.customer_id == db).unwrap();
        let login = &sdb.users[uid].login_name;
        if shared.contains(login.to_lowercase().as_str()) {
            continue;
        }
        let (status, body) = gql(
            &http,
            &server.url,
            Some(READER_KEY),
            PERSON,
            json!({"login": login}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let person = &body["data"]["person"];
        let mut got: Vec<String> = person["accounts"]
            .as_array()
            .unwrap_or_else(|| panic!("no person for login {login}: {body}"))
            .iter()
            .map(|a| {
                format!(
                    "{}/{}",
                    a["database"].as_str().unwrap(),
                    a["userId"].as_str().unwrap()
                )
            })
            .collect();
        got.sort();
        let mut want: Vec<String> = accounts.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "accounts of {login}");
        for a in person["accounts"].as_array().unwrap() {
            let db = a["database"].as_str().unwrap();
            let uid = a["userId"].as_str().unwrap();
            let sdb = snapshot.iter().find(|d| d.customer_id == db).unwrap();
            let mut want: Vec<&str> = sdb
                .groups
                .values()
                .filter(|g| g.members.contains(uid))
                .map(|g| g.id.as_str())
                .collect();
            want.sort();
            let mut got: Vec<&str> = a["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g["groupId"].as_str().unwrap())
                .collect();
            got.sort();
            assert_eq!(got, want, "groups of {db}/{uid}");
            assert_eq!(a["person"]["id"], person["id"]);
        }
        let reach_groups = person["reach"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["workspace"].is_null())
            .count();
        let groups: usize = person["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["groups"].as_array().unwrap().len())
            .sum();
        assert_eq!(
            reach_groups, groups,
            "reach lists every group of every account: {body}"
        );
        assert!(
            !person["evidence"].as_array().unwrap().is_empty(),
            "a multi-account person has evidence"
        );
        offboard_candidate = person["id"].as_str().map(str::to_string);
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} persons checked");

    // person(id:) finds the same person; nobody matches -> null; two arguments -> BAD_USER_INPUT.
    let (_, body) = gql(
        &http,
        &server.url,
        Some(READER_KEY),
        "{ person(login: \"nobody-here\") { id } }",
        json!({}),
    )
    .await;
    assert!(body["data"]["person"].is_null(), "{body}");
    let (_, body) = gql(
        &http,
        &server.url,
        Some(READER_KEY),
        "{ person(login: \"a\", email: \"b\") { id } }",
        json!({}),
    )
    .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );

    // group and whoCanReach agree with the simulator's members.
    let db = &snapshot[0];
    let g = db.groups.values().find(|g| g.members.len() > 3).unwrap();
    let (_, body) = gql(
        &http,
        &server.url,
        Some(READER_KEY),
        "query($d: String!, $g: String!) { group(database: $d, groupId: $g) { name members { userId } } whoCanReach(database: $d, groupId: $g) { account { userId } } }",
        json!({"d": db.customer_id, "g": g.id}),
    )
    .await;
    let mut members: Vec<&str> = body["data"]["group"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["userId"].as_str().unwrap())
        .collect();
    members.sort();
    let want: Vec<&str> = g.members.iter().map(String::as_str).collect();
    assert_eq!(members, want);
    assert_eq!(
        body["data"]["whoCanReach"].as_array().unwrap().len(),
        g.members.len()
    );

    // persons: paging walks every person exactly once.
    let mut seen = std::collections::HashSet::new();
    let mut after: Option<String> = None;
    let total;
    loop {
        let (_, body) = gql(
            &http,
            &server.url,
            Some(READER_KEY),
            "query($after: String) { persons(first: 200, after: $after) { totalCount edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }",
            json!({"after": after}),
        )
        .await;
        let conn = &body["data"]["persons"];
        let count = conn["totalCount"].as_u64().unwrap();
        for e in conn["edges"].as_array().unwrap() {
            assert!(
                seen.insert(e["node"]["id"].as_str().unwrap().to_string()),
                "a person was listed twice"
            );
        }
        if conn["pageInfo"]["hasNextPage"] != true {
            total = count;
            break;
        }
        after = conn["pageInfo"]["endCursor"].as_str().map(str::to_string);
    }
    assert_eq!(seen.len() as u64, total);
    assert_eq!(total as usize, truth.people());

    // offboardPerson: a reader is refused; an admin's dry run plans and calls nothing; the
    // apply deactivates every account and removes every membership, and the served graph shows
    // it without a manual harvest.
    let person_id = offboard_candidate.expect("a multi-account person was checked");
    const OFFBOARD: &str = "mutation($p: ID!, $dry: Boolean!) { offboardPerson(personId: $p, dryRun: $dry) { id status steps { request state } } }";
    let (_, body) = gql(
        &http,
        &server.url,
        Some(READER_KEY),
        OFFBOARD,
        json!({"p": person_id, "dry": true}),
    )
    .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    let calls_before = sim.handle.stats().total_calls();
    let (_, body) = gql(
        &http,
        &server.url,
        Some(ADMIN_KEY),
        OFFBOARD,
        json!({"p": person_id, "dry": true}),
    )
    .await;
    let planned = body["data"]["offboardPerson"]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .len();
    assert!(planned >= 2, "{body}");
    assert_eq!(body["data"]["offboardPerson"]["status"], "planned");
    assert_eq!(
        sim.handle.stats().total_calls(),
        calls_before,
        "a dry run calls nothing"
    );
    let (_, body) = gql(
        &http,
        &server.url,
        Some(ADMIN_KEY),
        OFFBOARD,
        json!({"p": person_id, "dry": false}),
    )
    .await;
    assert_eq!(
        body["data"]["offboardPerson"]["status"], "completed",
        "{body}"
    );
    let (_, body) = gql(
        &http,
        &server.url,
        Some(READER_KEY),
        "query($p: ID!) { person(id: $p) { accounts { database userId active groups { groupId } } } }",
        json!({"p": person_id}),
    )
    .await;
    for a in body["data"]["person"]["accounts"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
    {
        assert_eq!(a["active"], false, "{body}");
        assert!(a["groups"].as_array().unwrap().is_empty(), "{body}");
    }
    for db in sim.handle.snapshot() {
        for g in db.groups.values() {
            for a in body["data"]["person"]["accounts"].as_array().unwrap() {
                if a["database"] == db.customer_id.as_str() {
                    assert!(!g.members.contains(a["userId"].as_str().unwrap()));
                }
            }
        }
    }
    let (_, body) = gql(
        &http,
        &server.url,
        Some(READER_KEY),
        "{ auditLog(first: 500) { action outcome } }",
        json!({}),
    )
    .await;
    let calls = body["data"]["auditLog"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .filter(|e| e["action"].as_str().unwrap_or("").starts_with("imanage."))
        .count();
    assert_eq!(calls, planned, "the audit log holds every call: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_to_start_without_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_idgraph"))
        .args(["serve", "--no-harvest", "--listen", "127.0.0.1:0"])
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("x.db").display()),
        )
        .env_remove("IDGRAPH_API_KEYS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("IDGRAPH_API_KEYS"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_and_its_example_curl_returns_a_person_in_several_databases() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idgraph"));
    cmd.args(["demo", "--listen", "127.0.0.1:0"])
        .env("IDGRAPH_LOG", "warn");
    let (child, url, lines) = start(cmd, "curl -s ");
    let _server = Server {
        child,
        url: url.clone(),
    };
    // Send exactly what the printed curl sends.
    let curl = lines.last().unwrap();
    let key = curl
        .split("Authorization: Bearer ")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .expect("the curl names the key");
    let body = curl
        .split("-d '")
        .nth(1)
        .and_then(|s| s.rsplit_once('\''))
        .map(|(b, _)| b)
        .expect("the curl has a body");
    let body: Value = serde_json::from_str(body).expect("the curl's body is JSON");
    let http = reqwest::Client::new();
    let resp = http
        .post(&url)
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    let person = &answer["data"]["person"];
    let accounts = person["accounts"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"));
    let databases: std::collections::HashSet<&str> = accounts
        .iter()
        .map(|a| a["database"].as_str().unwrap())
        .collect();
    assert!(
        databases.len() >= 2,
        "a person in several databases: {answer}"
    );
    assert!(
        accounts
            .iter()
            .any(|a| !a["groups"].as_array().unwrap().is_empty()),
        "{answer}"
    );
    assert!(!person["reach"].as_array().unwrap().is_empty(), "{answer}");
    assert!(
        lines.iter().any(|l| l.contains("GraphiQL: http://")),
        "{lines:?}"
    );
}

/// Issue 9's check through the real service: for every account of every person, the
/// workspaces `reach` lists, with their access, are exactly the simulator's access truth
/// (explicit entries, groups under each database's security mode, default security).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reach_lists_every_workspace_with_the_access_the_rule_gives_v1() {
    reach_matches_the_access_truth(imanage_sim::ApiProfile::V1).await;
}

/// The same through the v2 shape: libraries discovered, workspaces searched, security read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reach_lists_every_workspace_with_the_access_the_rule_gives_v2() {
    reach_matches_the_access_truth(imanage_sim::ApiProfile::V2).await;
}

async fn reach_matches_the_access_truth(api: imanage_sim::ApiProfile) {
    let mut config = support::sim_config(
        FirmSpec {
            seed: 9,
            databases: 3,
            people: 500,
            ..FirmSpec::default()
        },
        0.0,
        3600,
    );
    config.api = api;
    let sim = support::start_sim_config(config).await;
    let truth = sim.handle.truth();
    assert!(
        !truth.workspace_access.is_empty(),
        "the firm has workspace security"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("idgraph.toml");
    let modes: Vec<String> = truth
        .security_modes
        .iter()
        .map(|(db, mode)| format!("\"{db}\" = {}", serde_json::to_string(mode).unwrap()))
        .collect();
    std::fs::write(
        &config,
        format!("[resolve]\nsecurity_modes = {{ {} }}\n", modes.join(", ")),
    )
    .unwrap();
    let ts = TestStore::new(Backend::Sqlite).await;
    let server = serve_with(
        &sim,
        &ts.url,
        Some(&config),
        api == imanage_sim::ApiProfile::V2,
    );
    let http = reqwest::Client::new();
    wait_ready(&http, &server.url).await;

    let mut seen_accounts = 0;
    let mut after: Option<String> = None;
    loop {
        let (_, body) = gql(
            &http,
            &server.url,
            Some(READER_KEY),
            "query($after: String) { persons(first: 100, after: $after) { edges { node { accounts { database userId } reach { access account { database userId } workspace { id } } } } pageInfo { hasNextPage endCursor } } }",
            json!({"after": after}),
        )
        .await;
        let conn = &body["data"]["persons"];
        for edge in conn["edges"].as_array().unwrap_or_else(|| panic!("{body}")) {
            let node = &edge["node"];
            for a in node["accounts"].as_array().unwrap() {
                let (db, uid) = (
                    a["database"].as_str().unwrap(),
                    a["userId"].as_str().unwrap(),
                );
                let got: std::collections::BTreeMap<String, String> = node["reach"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|g| {
                        !g["workspace"].is_null()
                            && g["account"]["database"] == db
                            && g["account"]["userId"] == uid
                    })
                    .map(|g| {
                        (
                            g["workspace"]["id"].as_str().unwrap().to_string(),
                            g["access"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect();
                let want: std::collections::BTreeMap<String, String> = truth
                    .workspace_access
                    .get(&format!("{db}/{uid}"))
                    .map(|m| {
                        m.iter()
                            .map(|(w, a)| {
                                (
                                    w.clone(),
                                    serde_json::to_value(a)
                                        .unwrap()
                                        .as_str()
                                        .unwrap()
                                        .to_string(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                assert_eq!(got, want, "workspace access of {db}/{uid}");
                seen_accounts += 1;
            }
        }
        if conn["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = conn["pageInfo"]["endCursor"].as_str().map(str::to_string);
    }
    assert_eq!(
        seen_accounts,
        truth.accounts.len(),
        "every account was checked"
    );
}
