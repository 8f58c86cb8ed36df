//! The HTTP app: keys, roles, limits, health and readiness, GraphiQL, metrics, request ids,
//! and serving over a real socket.

mod support;

use api::Limits;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use support::{first_code, post, post_raw, Fixture, ADMIN, READER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const SIMPLE: &str = "{ databases { id accountCount } }";

async fn get(router: &axum::Router, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

#[tokio::test]
async fn missing_or_wrong_key_is_401_before_graphql() {
    let f = Fixture::loaded().await;
    let router = api::router(f.state.clone());

    let (status, body) = post(&router, None, SIMPLE, json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(first_code(&body), "UNAUTHENTICATED");
    assert!(body.get("data").is_none(), "no GraphQL ran: {body}");

    let (status, body) = post(&router, Some("not-a-key"), SIMPLE, json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(first_code(&body), "UNAUTHENTICATED");
    assert!(!body.to_string().contains(READER) && !body.to_string().contains(ADMIN));

    // A body that is not even JSON still gets 401, not 400: the key is checked first.
    let (status, body) = post_raw(&router, None, "{{{".into()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(first_code(&body), "UNAUTHENTICATED");

    // A prefix of a valid key is not a key.
    let (status, _) = post(&router, Some(&ADMIN[..ADMIN.len() - 1]), SIMPLE, json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn readers_query_and_only_admins_mutate() {
    let f = Fixture::loaded().await;
    let router = api::router(f.state.clone());

    let (status, body) = post(&router, Some(READER), SIMPLE, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(
        body["data"]["databases"].as_array().unwrap().len(),
        f.firm.databases.len()
    );

    let mutation = r#"mutation { removeOverride(id: "424242") }"#;
    let (status, body) = post(&router, Some(READER), mutation, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first_code(&body), "FORBIDDEN", "{body}");
    assert!(body["data"].is_null(), "{body}");

    let (status, body) = post(&router, Some(ADMIN), mutation, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["removeOverride"], json!(false));
}

#[tokio::test]
async fn without_keys_everyone_is_admin() {
    let f = Fixture::new(&support::small_spec(), Limits::default()).await;
    let state = api::AppState::new(
        f.store.clone(),
        None,
        Limits::default(),
        support::resolve_config(&f.firm),
    );
    api::reload(&state).await.unwrap();
    let router = api::router(state);
    let (status, body) = post(
        &router,
        None,
        r#"mutation { removeOverride(id: "1") }"#,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("errors").is_none(), "{body}");
}

#[tokio::test]
async fn malformed_requests_are_bad_user_input() {
    let f = Fixture::loaded().await;
    let router = api::router(f.state.clone());

    let (status, body) = post_raw(&router, Some(READER), "not json".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(first_code(&body), "BAD_USER_INPUT");

    for (query, variables) in [
        ("{ databases { id ", json!({})),
        ("{ databases { nope } }", json!({})),
        ("{ person(login: 12) { id } }", json!({})),
        (
            "query($n: Int) { persons(first: $n) { totalCount } }",
            json!({"n": "ten"}),
        ),
        ("{ person { id } }", json!({})),
        (r#"{ person(login: "a", email: "b") { id } }"#, json!({})),
        (r#"{ persons(first: -1) { totalCount } }"#, json!({})),
        (r#"{ persons(after: "garbage") { totalCount } }"#, json!({})),
        (
            r#"{ persons(filter: {groupId: "g1"}) { totalCount } }"#,
            json!({}),
        ),
        (r#"{ whoCanReach(database: "x") { access } }"#, json!({})),
        (
            r#"{ changes(filter: {since: "yesterday"}) { edges { cursor } } }"#,
            json!({}),
        ),
    ] {
        let (status, body) = post(&router, Some(READER), query, variables).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(first_code(&body), "BAD_USER_INPUT", "{query}: {body}");
    }
}

#[tokio::test]
async fn depth_complexity_and_page_limits() {
    let f = Fixture::loaded().await;
    let router = api::router(f.state.clone());

    // 16 levels of selection against a limit of 15.
    let mut deep = String::from("id");
    for _ in 0..7 {
        deep = format!("accounts {{ person {{ {deep} }} }}");
    }
    let deep = format!("{{ person(id: \"x\") {{ {deep} }} }}");
    let (_, body) = post(&router, Some(READER), &deep, json!({})).await;
    assert_eq!(first_code(&body), "LIMIT_EXCEEDED", "{body}");

    // One rich page of 500 is allowed; two of them under aliases are too complex.
    let page = "persons(first: 500) { edges { cursor node { id displayName logins emails active \
        accounts { database userId loginName email firstName lastName displayName active userType external \
        groups { database groupId name memberCount } } reach { database access path account { userId } group { groupId } } } } }";
    let (_, body) = post(&router, Some(READER), &format!("{{ {page} }}"), json!({})).await;
    assert!(body.get("errors").is_none(), "one page is fine: {body}");
    let (_, body) = post(
        &router,
        Some(READER),
        &format!("{{ a: {page} b: {page} }}"),
        json!({}),
    )
    .await;
    assert_eq!(first_code(&body), "LIMIT_EXCEEDED", "{body}");

    let (_, body) = post(
        &router,
        Some(READER),
        "{ persons(first: 501) { totalCount } }",
        json!({}),
    )
    .await;
    assert_eq!(first_code(&body), "LIMIT_EXCEEDED", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["maxPage"], json!(500));
}

#[tokio::test]
async fn list_fan_out_is_bounded() {
    let limits = Limits {
        max_nodes: 300,
        ..Limits::default()
    };
    let f = Fixture::new(&support::small_spec(), limits).await;
    api::reload(&f.state).await.unwrap();
    let router = api::router(f.state.clone());
    let db = &f.firm.databases[0];
    let group = db.groups.values().max_by_key(|g| g.members.len()).unwrap();
    // members -> groups -> members multiplies quickly; static complexity cannot see it.
    let query = "query($db: String!, $g: String!) { group(database: $db, groupId: $g) { \
        members { groups { members { userId } } } } }";
    let (_, body) = post(
        &router,
        Some(READER),
        query,
        json!({"db": db.customer_id, "g": group.id}),
    )
    .await;
    assert_eq!(first_code(&body), "LIMIT_EXCEEDED", "{body}");
    // The group alone fits.
    let (_, body) = post(
        &router,
        Some(READER),
        "query($db: String!, $g: String!) { group(database: $db, groupId: $g) { members { userId } } }",
        json!({"db": db.customer_id, "g": group.id}),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");
}

/// graphql-js's introspection query (what GraphiQL sends on load), with its type references
/// nested nine `ofType`s deep as newer versions do: it must fit the default depth and
/// complexity limits, or GraphiQL would show no schema.
const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    description
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description isRepeatable locations args(includeDeprecated: true) { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description specifiedByURL
  fields(includeDeprecated: true) {
    name description args(includeDeprecated: true) { ...InputValue }
    type { ...TypeRef } isDeprecated deprecationReason
  }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name description type { ...TypeRef } defaultValue isDeprecated deprecationReason
}
fragment TypeRef on __Type {
  kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
  } } } } } } } } }
}
"#;

#[tokio::test]
async fn graphiql_introspection_fits_the_limits() {
    let f = Fixture::loaded().await;
    let router = api::router(f.state.clone());
    let (status, body) = post(&router, Some(READER), INTROSPECTION, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("errors").is_none(), "{body}");
    let types = body["data"]["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == json!("Person")));
}

#[tokio::test]
async fn oversized_body_is_413_limit_exceeded() {
    let f = Fixture::loaded().await;
    let router = api::router(f.state.clone());
    let padding = " ".repeat(300 * 1024);
    let body = json!({"query": format!("{{ databases {{ id }} {padding} }}")}).to_string();
    let (status, body) = post_raw(&router, Some(READER), body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(first_code(&body), "LIMIT_EXCEEDED");
}

#[tokio::test]
async fn health_readiness_graphiql_metrics() {
    let f = Fixture::new(&support::small_spec(), Limits::default()).await;
    let router = api::router(f.state.clone());

    let (status, _, _) = get(&router, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = get(&router, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // Before the first graph, queries say why they cannot answer.
    let (status, body) = post(&router, Some(READER), SIMPLE, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first_code(&body), "UPSTREAM_ERROR", "{body}");

    api::reload(&f.state).await.unwrap();
    let (status, _, _) = get(&router, "/readyz").await;
    assert_eq!(status, StatusCode::OK);

    let (status, headers, page) = get(&router, "/graphql").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(page.contains("graphiql"), "GraphiQL page");

    let (status, _) = post(
        &router,
        Some(READER),
        "query MetricsProbe { databases { id } }",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, text) = get(&router, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains(r#"idgraph_graphql_requests_total{operation="MetricsProbe",outcome="ok"}"#),
        "{text}"
    );
    assert!(text.contains("idgraph_graphql_request_duration_seconds_bucket"));
    assert!(text.contains(r#"idgraph_graph_size{kind="accounts"}"#));
    let db = &f.firm.databases[0].customer_id;
    assert!(
        text.contains(&format!(
            "idgraph_database_last_complete_harvest_timestamp_seconds{{database=\"{db}\"}}"
        )),
        "{text}"
    );
    assert!(!text.contains(READER) && !text.contains(ADMIN));
}

#[tokio::test]
async fn request_ids_are_set_and_propagated() {
    let f = Fixture::loaded().await;
    let router = api::router(f.state.clone());
    let response = router
        .clone()
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let generated = response.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    let response = router
        .oneshot(
            Request::get("/healthz")
                .header("x-request-id", "trace-me-42")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
}

/// Binds 127.0.0.1:0 and serves the state; returns the address and a trigger for shutdown.
async fn spawn(
    state: api::AppState,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(listener, state, async {
        let _ = stopped.await;
    }));
    (addr, stop, server)
}

#[tokio::test]
async fn serves_over_real_http_and_shuts_down_gracefully() {
    let f = Fixture::loaded().await;
    let (addr, stop, server) = spawn(f.state.clone()).await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/graphql");

    let response = client
        .post(&url)
        .bearer_auth(READER)
        .json(&json!({"query": "query Q { databases { id complete lastHarvestedAt } }", "operationName": "Q"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    let dbs = body["data"]["databases"].as_array().unwrap();
    assert_eq!(dbs.len(), f.firm.databases.len());
    for db in dbs {
        assert_eq!(db["complete"], json!(true));
        let at = db["lastHarvestedAt"].as_str().unwrap();
        chrono::DateTime::parse_from_rfc3339(at).unwrap();
    }

    let response = client
        .post(&url)
        .json(&json!({"query": SIMPLE}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let body: Value = response.json().await.unwrap();
    assert_eq!(first_code(&body), "UNAUTHENTICATED");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("graceful shutdown finishes")
        .unwrap()
        .unwrap();
    assert!(client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn a_request_that_takes_too_long_is_cut_off() {
    let limits = Limits {
        request_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let f = Fixture::new(&support::small_spec(), limits).await;
    api::reload(&f.state).await.unwrap();
    let (addr, stop, server) = spawn(f.state.clone()).await;

    // Announce a body and never send most of it.
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {READER}\r\n\
         content-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"query\""
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf))
            .await
            .expect("the server answers before the client gives up")
            .unwrap();
        answer.extend_from_slice(&buf[..n]);
        if n == 0 || String::from_utf8_lossy(&answer).contains("LIMIT_EXCEEDED") {
            break;
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(answer.contains(r#""code":"LIMIT_EXCEEDED""#), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));

    stop.send(()).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}
