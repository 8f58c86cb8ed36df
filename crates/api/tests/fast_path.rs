//! The HTTP app answers `person(...)` queries through a synchronous fast path and everything
//! else through async-graphql. These tests hold the two to the same answers: every query here
//! is sent through the router (fast path where it applies, response cache off) and through
//! `api::execute` (async-graphql alone), and the JSON must be equal, errors included. The
//! fixture's store has no workspace security, so one test publishes a graph with the firm's
//! workspaces to compare workspace grants too.
//!
//! The last test checks the response cache across a graph swap.

mod support;

use api::{Caller, Limits, Role};
use serde_json::{json, Value};
use support::{post, Fixture, READER};

const EVERYTHING: &str = "query Everything($id: ID!) { __typename who: person(id: $id) { \
    __typename id displayName logins emails active \
    accounts { __typename database userId loginName email firstName lastName displayName active \
               userType external groups { __typename database groupId name memberCount } \
               person { id displayName } } \
    reach { __typename database access path via account { userId database } \
            group { groupId name } workspace { __typename id workspaceId name database defaultSecurity } } } }";

const DEMO: &str = "query PersonByLogin($login: String!) { person(login: $login) { \
    id displayName accounts { database userId loginName active groups { name } } \
    reach { database access group { name } } } }";

async fn fixture() -> Fixture {
    let limits = Limits {
        response_cache_bytes: 0,
        ..Limits::default()
    };
    let f = Fixture::new(&support::small_spec(), limits).await;
    api::reload(&f.state).await.unwrap();
    f
}

/// The answer through the router and through async-graphql alone, as JSON values.
async fn both(f: &Fixture, query: &str, variables: Value) -> (Value, Value) {
    let router = api::router(f.state.clone());
    let (_, routed) = post(&router, Some(READER), query, variables.clone()).await;
    let schema = api::schema(f.state.clone());
    let caller = Caller {
        role: Role::Reader,
        actor: "test".into(),
    };
    let request = async_graphql::Request::new(query)
        .variables(async_graphql::Variables::from_json(variables));
    let direct = api::execute(&schema, caller, request).await;
    (routed, serde_json::to_value(&direct).unwrap())
}

async fn assert_same(f: &Fixture, query: &str, variables: Value) -> Value {
    let (routed, direct) = both(f, query, variables.clone()).await;
    assert_eq!(routed, direct, "query {query} with {variables}");
    routed
}

#[tokio::test]
async fn every_person_answers_as_async_graphql_does() {
    let f = fixture().await;
    let graph = f.state.current().unwrap();
    let ids: Vec<String> = graph.persons().map(|p| p.id().to_string()).collect();
    assert!(ids.len() > 300);
    for id in &ids {
        let answer = assert_same(&f, EVERYTHING, json!({ "id": id })).await;
        assert_eq!(answer["data"]["who"]["id"], json!(id), "{answer}");
    }
}

#[tokio::test]
async fn logins_emails_literals_and_misses_answer_alike() {
    let f = fixture().await;
    let graph = f.state.current().unwrap();
    for p in graph.persons().take(60) {
        for login in p.logins() {
            assert_same(&f, DEMO, json!({ "login": login })).await;
        }
        if let Some(email) = p.emails().first() {
            let q = format!(
                "{{ a: person(email: {email:?}) {{ id }} b: person(id: {:?}) {{ displayName }} }}",
                p.id()
            );
            assert_same(&f, &q, json!({})).await;
        }
    }
    let missing = assert_same(&f, DEMO, json!({ "login": "nobody-at-all" })).await;
    assert_eq!(missing, json!({ "data": { "person": null } }));
}

#[tokio::test]
async fn what_the_fast_path_does_not_take_still_answers_alike() {
    let f = fixture().await;
    let graph = f.state.current().unwrap();
    let p = graph.persons().next().unwrap();
    let login = p.logins()[0].to_string();
    let id = p.id().to_string();
    let cases: Vec<(String, Value)> = vec![
        // A login several people hold: an error with candidates.
        (DEMO.into(), json!({ "login": ambiguous_login(&f) })),
        // Errors async-graphql reports.
        ("{ person { id } }".into(), json!({})),
        (format!("{{ person(login: {login:?}, id: {id:?}) {{ id }} }}"), json!({})),
        (format!("{{ person(login: {login:?}) {{ nope }} }}"), json!({})),
        (format!("{{ person(login: {login:?}) }}"), json!({})),
        (format!("{{ person(login: {login:?}) {{ id id: displayName }} }}"), json!({})),
        ("query($l: String!) { person(login: $l) { id } }".into(), json!({})),
        ("query($l: Int) { person(login: $l) { id } }".into(), json!({ "l": 3 })),
        ("query($l: String, $x: String) { person(login: $l) { id } }".into(), json!({ "l": login, "x": "y" })),
        // Shapes the fast path leaves to async-graphql.
        (format!("{{ person(login: {login:?}) {{ ...F }} }} fragment F on Person {{ id }}"), json!({})),
        (format!("{{ person(login: {login:?}) {{ id @include(if: true) evidence {{ key }} }} }}"), json!({})),
        (format!("{{ person(login: {login:?}) {{ accounts {{ groups {{ members {{ userId }} }} }} }} }}"), json!({})),
        (format!("query A {{ person(login: {login:?}) {{ id }} }} query B {{ graph {{ persons }} }}"), json!({})),
        (format!("{{ person(login: {login:?}) {{ id }} databases {{ id }} }}"), json!({})),
        ("query($l: String = \"x\") { person(login: $l) { id } }".into(), json!({})),
    ];
    for (query, variables) in cases {
        assert_same(&f, &query, variables).await;
    }
}

/// A login the graph gives to more than one person (the simulator makes a few).
fn ambiguous_login(f: &Fixture) -> String {
    let graph = f.state.current().unwrap();
    let login = graph
        .persons()
        .flat_map(|p| p.logins())
        .find(|l| graph.person_by_login(l).len() > 1)
        .expect("the small firm has a shared login")
        .to_string();
    login
}

/// With the response cache on, an answer is never served from the cache of an older graph.
#[tokio::test]
async fn a_new_graph_starts_with_an_empty_response_cache() {
    let f = Fixture::new(&support::small_spec(), Limits::default()).await;
    api::reload(&f.state).await.unwrap();
    let router = api::router(f.state.clone());
    let query = "{ graph { persons accounts } }";
    let (_, before) = post(&router, Some(READER), query, json!({})).await;
    let (_, again) = post(&router, Some(READER), query, json!({})).await;
    assert_eq!(before, again);

    // Publish a graph of the first database alone.
    let mut input = graph::Input {
        accounts: vec![],
        groups: vec![],
        memberships: vec![],
        workspaces: vec![],
        workspace_entries: vec![],
        overrides: vec![],
        previous: graph::PersonIds::default(),
    };
    let s = support::snapshot(&f.firm.databases[0]);
    input.accounts.extend(s.accounts);
    input.groups.extend(s.groups);
    input.memberships.extend(s.memberships);
    let smaller = graph::resolve(input, &support::resolve_config(&f.firm));
    let accounts = smaller.stats().accounts;
    f.state.publish(smaller, vec![]);

    let (_, after) = post(&router, Some(READER), query, json!({})).await;
    assert_eq!(
        after["data"]["graph"]["accounts"],
        json!(accounts),
        "{after}"
    );
    assert_ne!(before, after);
}

/// The same comparison over a graph with workspace security, so that workspace grants (their
/// `workspace`, `via`, `path` and deciding group) are compared too.
#[tokio::test]
async fn workspace_grants_answer_as_async_graphql_does() {
    let f = fixture().await;
    let mut input = graph::Input {
        accounts: vec![],
        groups: vec![],
        memberships: vec![],
        workspaces: vec![],
        workspace_entries: vec![],
        overrides: vec![],
        previous: graph::PersonIds::default(),
    };
    for db in &f.firm.databases {
        let s = support::snapshot(db);
        input.accounts.extend(s.accounts);
        input.groups.extend(s.groups);
        input.memberships.extend(s.memberships);
        for ws in db.workspaces.values() {
            input.workspaces.push(model::Workspace {
                database: db.customer_id.clone(),
                workspace_id: ws.id.clone(),
                name: Some(ws.name.clone()),
                default_security: same(json!(ws.default_security)),
                raw: json!({}).into(),
            });
            for e in &ws.security {
                input.workspace_entries.push(model::WorkspaceEntry {
                    database: db.customer_id.clone(),
                    workspace_id: ws.id.clone(),
                    principal_id: e.id.clone(),
                    is_group: e.is_group,
                    access: same(json!(e.access)),
                });
            }
        }
    }
    assert!(
        !input.workspaces.is_empty(),
        "the small firm has workspaces"
    );
    let graph = graph::resolve(input, &support::resolve_config(&f.firm));
    let ids: Vec<String> = graph.persons().map(|p| p.id().to_string()).collect();
    f.state.publish(graph, vec![]);
    let mut workspace_grants = 0;
    for id in &ids {
        let answer = assert_same(&f, EVERYTHING, json!({ "id": id })).await;
        let reach = answer["data"]["who"]["reach"].as_array().unwrap();
        workspace_grants += reach.iter().filter(|g| !g["workspace"].is_null()).count();
    }
    assert!(workspace_grants > 0, "workspace grants were compared");
}

/// The simulator's and the model's enums serialize alike (snake_case): one into the other.
fn same<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}
