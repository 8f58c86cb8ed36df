//! OAuth2 over real HTTP: the three grants (PKCE included), scopes, expiry and revocation.

mod common;

use common::{assert_error, small_config, start, TestSim};
use imanage_sim::{ClientSpec, SimConfig};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

async fn token_request(
    sim: &TestSim,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> (StatusCode, Value) {
    let mut req = sim.http.post(sim.url("/auth/oauth2/token")).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().await.expect("token request");
    let status = resp.status();
    if status == StatusCode::OK {
        assert_eq!(
            resp.headers().get("cache-control").map(|v| v.to_str().ok()),
            Some(Some("no-store"))
        );
    }
    (status, resp.json().await.expect("json body"))
}

fn assert_token(body: &Value, scope: &str) {
    assert!(
        body["access_token"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], scope);
    assert!(body["expires_in"].as_u64().is_some());
}

fn assert_oauth_error(body: &Value, error: &str) {
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
}

#[tokio::test]
async fn client_credentials_in_body_or_basic_and_scope_narrowing() {
    let sim = start(small_config()).await;
    let (status, body) = token_request(
        &sim,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "idgraph"),
            ("client_secret", "idgraph-secret"),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_token(&body, "admin user");
    assert_eq!(body["expires_in"], 3600);

    let (status, body) = token_request(
        &sim,
        &[("grant_type", "client_credentials"), ("scope", "user")],
        Some(("idgraph", "idgraph-secret")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_token(&body, "user");

    // Unregistered scopes are dropped; none left is an error.
    let (status, body) = token_request(
        &sim,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "user superpowers"),
        ],
        Some(("idgraph", "idgraph-secret")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_token(&body, "user");
    let (status, body) = token_request(
        &sim,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "superpowers"),
        ],
        Some(("idgraph", "idgraph-secret")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_oauth_error(&body, "invalid_scope");
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc_6749() {
    let sim = start(small_config()).await;
    type Case<'a> = (
        Vec<(&'a str, &'a str)>,
        Option<(&'a str, &'a str)>,
        StatusCode,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "idgraph"),
                ("client_secret", "wrong"),
            ],
            None,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            vec![("grant_type", "client_credentials")],
            Some(("idgraph", "wrong")),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "stranger"),
                ("client_secret", "x"),
            ],
            None,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "idgraph"),
            ],
            None,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            vec![("grant_type", "client_credentials")],
            None,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("client_id", "idgraph"),
                ("client_secret", "idgraph-secret"),
            ],
            None,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            vec![
                ("client_id", "idgraph"),
                ("client_secret", "idgraph-secret"),
            ],
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", "rt_bogus"),
            ],
            Some(("idgraph", "idgraph-secret")),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            vec![("grant_type", "refresh_token")],
            Some(("idgraph", "idgraph-secret")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "authorization_code"),
                ("code", "ac_bogus"),
                ("redirect_uri", "http://localhost/cb"),
            ],
            Some(("idgraph", "idgraph-secret")),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_secret", "idgraph-secret"),
            ],
            Some(("idgraph", "idgraph-secret")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (form, basic, status, error) in cases {
        let (got, body) = token_request(&sim, &form, basic).await;
        assert_eq!(got, status, "{form:?}");
        assert_oauth_error(&body, error);
    }
    // JSON instead of a form.
    let resp = sim
        .http
        .post(sim.url("/auth/oauth2/token"))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.expect("json");
    assert_oauth_error(&body, "invalid_request");
}

#[tokio::test]
async fn refresh_tokens_work_once_and_rotate() {
    let sim = start(small_config()).await;
    let (_, first) = token_request(
        &sim,
        &[("grant_type", "client_credentials")],
        Some(("idgraph", "idgraph-secret")),
    )
    .await;
    let rt1 = first["refresh_token"].as_str().expect("rt").to_string();
    let (status, second) = token_request(
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt1),
            ("client_id", "idgraph"),
            ("client_secret", "idgraph-secret"),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_token(&second, "admin user");
    let rt2 = second["refresh_token"].as_str().expect("rt").to_string();
    assert_ne!(rt1, rt2);
    assert_ne!(first["access_token"], second["access_token"]);
    let (status, _) = sim
        .get(
            &sim.api("acme-london", "/users?max_results=1"),
            second["access_token"].as_str().expect("at"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // The used refresh token is dead; the new one works, and can narrow the scope.
    let (status, body) = token_request(
        &sim,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
        Some(("idgraph", "idgraph-secret")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_oauth_error(&body, "invalid_grant");
    let (status, body) = token_request(
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt2),
            ("scope", "user"),
        ],
        Some(("idgraph", "idgraph-secret")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_token(&body, "user");
    // Widening is refused.
    let rt3 = body["refresh_token"].as_str().expect("rt").to_string();
    let (status, body) = token_request(
        &sim,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt3),
            ("scope", "user admin"),
        ],
        Some(("idgraph", "idgraph-secret")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_oauth_error(&body, "invalid_scope");
}

#[tokio::test]
async fn refresh_token_of_another_client_is_refused() {
    let mut config = small_config();
    config
        .clients
        .push("reader:reader-secret:user".parse().expect("client"));
    let sim = start(config).await;
    let (_, body) = token_request(
        &sim,
        &[("grant_type", "client_credentials")],
        Some(("reader", "reader-secret")),
    )
    .await;
    assert_token(&body, "user");
    let rt = body["refresh_token"].as_str().expect("rt");
    let (status, body) = token_request(
        &sim,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        Some(("idgraph", "idgraph-secret")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_oauth_error(&body, "invalid_grant");
}

/// The test login: authorize answers 302 with a code and the state.
async fn authorize(
    sim: &TestSim,
    params: &[(&str, &str)],
) -> (StatusCode, HashMap<String, String>) {
    let url =
        reqwest::Url::parse_with_params(&sim.url("/auth/oauth2/authorize"), params).expect("url");
    let resp = sim.http.get(url).send().await.expect("authorize");
    let status = resp.status();
    let mut out = HashMap::new();
    if let Some(loc) = resp.headers().get("location") {
        let loc = reqwest::Url::parse(loc.to_str().expect("ascii")).expect("location url");
        out.insert(
            "_base".to_string(),
            format!("{}{}", loc.origin().ascii_serialization(), loc.path()),
        );
        for (k, v) in loc.query_pairs() {
            out.insert(k.into_owned(), v.into_owned());
        }
    }
    (status, out)
}

#[tokio::test]
async fn authorization_code_with_pkce_s256() {
    let sim = start(small_config()).await;
    // RFC 7636 appendix B.
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let redirect = "http://127.0.0.1:8765/callback";
    let params = [
        ("response_type", "code"),
        ("client_id", "idgraph"),
        ("redirect_uri", redirect),
        ("scope", "openid user"),
        ("state", "xyz 1/2&3"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    let (status, q) = authorize(&sim, &params).await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(q["_base"], redirect);
    assert_eq!(q["state"], "xyz 1/2&3");
    let code = q["code"].clone();

    // A wrong verifier fails, and burns the code.
    let wrong = "A".repeat(43);
    let (status, body) = token_request(
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("client_id", "idgraph"),
            ("code_verifier", &wrong),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_oauth_error(&body, "invalid_grant");
    let (status, _) = token_request(
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("client_id", "idgraph"),
            ("code_verifier", verifier),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A fresh code with the right verifier works without a secret (a public client).
    let (_, q) = authorize(&sim, &params).await;
    let (status, body) = token_request(
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", redirect),
            ("client_id", "idgraph"),
            ("code_verifier", verifier),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_token(&body, "openid user");
    let (status, _) = sim
        .get(
            &sim.api("acme-london", "/users?max_results=1"),
            body["access_token"].as_str().expect("at"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // ... once only.
    let (status, body) = token_request(
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", redirect),
            ("client_id", "idgraph"),
            ("code_verifier", verifier),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_oauth_error(&body, "invalid_grant");

    // Missing verifier, and a different redirect_uri, fail.
    let (_, q) = authorize(&sim, &params).await;
    let (status, _) = token_request(
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", redirect),
            ("client_id", "idgraph"),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, q) = authorize(&sim, &params).await;
    let (status, _) = token_request(
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", "http://evil.example/cb"),
            ("client_id", "idgraph"),
            ("code_verifier", verifier),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn authorization_code_without_pkce_needs_the_secret() {
    let sim = start(small_config()).await;
    let redirect = "http://localhost/cb";
    let params = [
        ("response_type", "code"),
        ("client_id", "idgraph"),
        ("redirect_uri", redirect),
    ];
    let (status, q) = authorize(&sim, &params).await;
    assert_eq!(status, StatusCode::FOUND);
    assert!(!q.contains_key("state"));
    let (status, body) = token_request(
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", redirect),
            ("client_id", "idgraph"),
        ],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_oauth_error(&body, "invalid_client");
    let (_, q) = authorize(&sim, &params).await;
    let (status, body) = token_request(
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", redirect),
        ],
        Some(("idgraph", "idgraph-secret")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_token(&body, "admin user");
}

#[tokio::test]
async fn authorize_rejects_bad_requests() {
    let sim = start(small_config()).await;
    for params in [
        vec![
            ("response_type", "code"),
            ("client_id", "stranger"),
            ("redirect_uri", "http://localhost/cb"),
        ],
        vec![
            ("response_type", "token"),
            ("client_id", "idgraph"),
            ("redirect_uri", "http://localhost/cb"),
        ],
        vec![("response_type", "code"), ("client_id", "idgraph")],
        vec![
            ("response_type", "code"),
            ("client_id", "idgraph"),
            ("redirect_uri", "not a url"),
        ],
    ] {
        let (status, _) = authorize(&sim, &params).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{params:?}");
    }
    // Errors after the redirect URI is known go back through it.
    let (status, q) = authorize(
        &sim,
        &[
            ("response_type", "code"),
            ("client_id", "idgraph"),
            ("redirect_uri", "http://localhost/cb"),
            ("scope", "nothing"),
            ("state", "s1"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(q["error"], "invalid_scope");
    assert_eq!(q["state"], "s1");
}

#[tokio::test]
async fn user_scope_reads_but_every_write_is_forbidden() {
    let sim = start(small_config()).await;
    let token = sim.token(Some("user")).await;
    let db = &sim.running.handle.snapshot()[0];
    let c = &db.customer_id;
    let user = db.users.keys().next().expect("user");
    let group = db.groups.keys().next().expect("group");
    for url in [
        sim.api(c, "/users"),
        sim.api(c, &format!("/users/{user}")),
        sim.api(c, "/groups"),
        sim.api(c, &format!("/groups/{group}/members")),
    ] {
        let (status, _) = sim.get(&url, &token).await;
        assert_eq!(status, StatusCode::OK, "{url}");
    }
    let writes = [
        (
            Method::POST,
            sim.api(c, "/users"),
            Some(
                json!({"login_name": "x", "email": "x@acme.com", "first_name": "X", "last_name": "Y"}),
            ),
        ),
        (
            Method::PATCH,
            sim.api(c, &format!("/users/{user}")),
            Some(json!({"title": "X"})),
        ),
        (Method::DELETE, sim.api(c, &format!("/users/{user}")), None),
        (
            Method::POST,
            sim.api(c, &format!("/groups/{group}/members")),
            Some(json!({"user_id": user})),
        ),
        (
            Method::DELETE,
            sim.api(c, &format!("/groups/{group}/members/{user}")),
            None,
        ),
    ];
    for (method, url, body) in &writes {
        let (status, resp) = sim.send(method.clone(), url, &token, body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {url}");
        assert_error(&resp, "forbidden");
    }
    // Nothing changed.
    assert_eq!(&sim.running.handle.snapshot()[0], db);
    // An openid-only token cannot even read.
    let (_, q) = authorize(
        &sim,
        &[
            ("response_type", "code"),
            ("client_id", "idgraph"),
            ("redirect_uri", "http://localhost/cb"),
            ("scope", "openid"),
        ],
    )
    .await;
    let (_, body) = token_request(
        &sim,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", "http://localhost/cb"),
        ],
        Some(("idgraph", "idgraph-secret")),
    )
    .await;
    let (status, _) = sim
        .get(
            &sim.api(c, "/users"),
            body["access_token"].as_str().expect("at"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(sim.running.handle.stats().forbidden, 6);
}

#[tokio::test]
async fn missing_bad_expired_and_revoked_tokens_get_401() {
    let mut config = small_config();
    config.token_ttl_s = 1;
    let sim = start(config).await;
    let url = sim.api("acme-london", "/users?max_results=1");

    let resp = sim.http.get(&url).send().await.expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().get("www-authenticate").is_some());
    assert_error(&resp.json::<Value>().await.expect("json"), "unauthorized");
    let (status, _) = sim.get(&url, "at_made_up").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let resp = sim
        .http
        .get(&url)
        .header("authorization", "Basic aWRncmFwaDppZGdyYXBoLXNlY3JldA==")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let token = sim.token(None).await;
    let (status, _) = sim.get(&url, &token).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = sim.get(&url, &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("expired")));

    let token = sim.token(None).await;
    let other = sim.token(Some("user")).await;
    assert_eq!(sim.running.handle.revoke_tokens(), 2);
    for t in [&token, &other] {
        let (status, _) = sim.get(&url, t).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // A new token works again.
    let token = sim.token(None).await;
    let (status, _) = sim.get(&url, &token).await;
    assert_eq!(status, StatusCode::OK);
    let stats = sim.running.handle.stats();
    assert_eq!(stats.unauthorized, 6);
    assert_eq!(stats.tokens_issued, 4);
}

#[test]
fn client_specs_parse() {
    let c: ClientSpec = "idgraph:idgraph-secret:admin user".parse().expect("parse");
    assert_eq!(c, ClientSpec::default());
    let c: ClientSpec = "a:s:e:c:r:e:t:user".parse().expect("colons in the secret");
    assert_eq!(c.secret, "s:e:c:r:e:t");
    assert_eq!(c.scopes, ["user"]);
    for bad in ["", "a", "a:b", ":s:user", "a::user", "a:s:", "a:s:  "] {
        assert!(bad.parse::<ClientSpec>().is_err(), "{bad:?}");
    }
    assert!(
        !format!("{c:?}").contains("s:e:c"),
        "secret in Debug output"
    );
    assert_eq!(SimConfig::default().clients, vec![ClientSpec::default()]);
}
