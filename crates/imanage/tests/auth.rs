//! OAuth2: renewal at expiry (shared by concurrent requests), revoked tokens, authorization code
//! with PKCE and refresh, the refresh-to-client-credentials fallback, and secrets kept out of
//! Debug output and logs.

mod support;

use futures::future::join_all;
use imanage::{Client, Error};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

fn grants(sim: &imanage_sim::RunningSim, grant: &str) -> u64 {
    sim.handle
        .stats()
        .token_requests
        .get(grant)
        .copied()
        .unwrap_or(0)
}

#[tokio::test]
async fn the_token_is_renewed_before_it_expires_by_refresh_token() {
    let sim = start_firm(sim_config(2), exact_firm(&[3], 1)).await;
    let client = admin(&sim, 1000);
    client.get_user("db0", "usr_000001").await.expect("first");
    assert_eq!(sim.handle.stats().tokens_issued, 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    client
        .get_user("db0", "usr_000001")
        .await
        .expect("after expiry");
    let stats = sim.handle.stats();
    assert_eq!(stats.tokens_issued, 2);
    assert_eq!(stats.unauthorized, 0, "renewed before use, not after a 401");
    assert_eq!(grants(&sim, "client_credentials"), 1);
    assert_eq!(
        grants(&sim, "refresh_token"),
        1,
        "the refresh token is preferred"
    );
    assert_eq!(client.stats().renewals, 1);
}

#[tokio::test]
async fn fifty_concurrent_requests_at_expiry_share_one_renewal() {
    // Three seconds: the renewed token must outlive the fifty requests even on a busy machine.
    let sim = start_firm(sim_config(3), exact_firm(&[60], 1)).await;
    let client = admin(&sim, 1000);
    client.get_user("db0", "usr_000000").await.expect("warm up");
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let results = join_all((0..50).map(|i| {
        let client = client.clone();
        async move { client.get_user("db0", &format!("usr_{i:06}")).await }
    }))
    .await;
    assert!(results.iter().all(Result::is_ok));
    let stats = sim.handle.stats();
    assert_eq!(stats.tokens_issued, 2, "one renewal for all fifty");
    assert_eq!(stats.unauthorized, 0);
    assert_eq!(stats.calls["user_get"], 51);
}

#[tokio::test]
async fn fifty_concurrent_requests_after_a_revocation_share_one_renewal() {
    let sim = start_firm(sim_config(3600), exact_firm(&[60], 1)).await;
    let client = admin(&sim, 1000);
    client.get_user("db0", "usr_000000").await.expect("warm up");
    assert_eq!(sim.handle.revoke_tokens(), 1);
    let results = join_all((0..50).map(|i| {
        let client = client.clone();
        async move { client.get_user("db0", &format!("usr_{i:06}")).await }
    }))
    .await;
    assert!(results.iter().all(Result::is_ok));
    let stats = sim.handle.stats();
    assert_eq!(stats.tokens_issued, 2, "the 401s share one renewal");
    assert!(stats.unauthorized >= 1);
    assert_eq!(
        stats.calls["user_get"],
        51 + stats.unauthorized,
        "one retry per 401"
    );
    let mine = client.stats();
    assert_eq!(mine.renewals, 1);
    assert_eq!(mine.total.retries.unauthorized, stats.unauthorized);
}

#[tokio::test]
async fn a_crawl_survives_revocations_in_the_middle() {
    let sim = start_firm(sim_config(3600), exact_firm(&[3000, 3000, 3000], 0)).await;
    let client = admin(&sim, 100);
    let handle = sim.handle.clone();
    let revoker = tokio::spawn(async move {
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(60)).await;
            handle.revoke_tokens();
        }
    });
    let crawls = join_all(["db0", "db1", "db2"].map(|db| {
        let client = client.clone();
        async move { drain(client.list_users(db)).await.0 }
    }))
    .await;
    revoker.await.expect("revoker");
    for (d, users) in crawls.iter().enumerate() {
        let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
        let snapshot = sim.handle.snapshot();
        let want: Vec<&str> = snapshot[d].users.keys().map(String::as_str).collect();
        assert_eq!(ids, want);
    }
    let stats = client.stats();
    assert!(stats.renewals >= 1, "{stats:?}");
    assert_eq!(
        stats.total.retries.unauthorized,
        sim.handle.stats().unauthorized
    );
}

/// Follows the simulator's test login: GET the authorize URL, read the redirect.
async fn sign_in(url: &url::Url) -> (String, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http");
    let resp = http.get(url.clone()).send().await.expect("authorize");
    assert_eq!(resp.status(), 302);
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location");
    let location = url::Url::parse(location).expect("redirect url");
    let param = |k: &str| {
        location
            .query_pairs()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.to_string())
            .unwrap_or_else(|| panic!("{k} in the redirect"))
    };
    (param("code"), param("state"))
}

#[tokio::test]
async fn authorization_code_with_pkce_then_refresh() {
    let sim = start_firm(sim_config(2), exact_firm(&[3], 1)).await;
    let client = admin(&sim, 1000);
    let redirect = url::Url::parse("http://127.0.0.1:9/callback").expect("redirect");
    let scopes = vec!["user".to_string(), "openid".to_string()];

    let pending = client
        .begin_authorization(&redirect, &scopes)
        .expect("begin");
    let url = pending.url().clone();
    assert!(url
        .as_str()
        .starts_with(&format!("{}/auth/oauth2/authorize?", sim.base_url())));
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], ADMIN_ID);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert_eq!(q["scope"], "user openid");
    assert!(!q.contains_key("client_secret"));

    // A redirect that does not carry our state is refused before the code is spent.
    let (code, state) = sign_in(&url).await;
    let other = client
        .begin_authorization(&redirect, &scopes)
        .expect("begin");
    let err = client
        .complete_authorization(other, &code, &state)
        .await
        .expect_err("state mismatch");
    assert!(matches!(err, Error::Auth { .. }), "{err}");
    assert_eq!(grants(&sim, "authorization_code"), 0);

    client
        .complete_authorization(pending, &code, &state)
        .await
        .expect("exchange with the PKCE verifier");
    assert_eq!(grants(&sim, "authorization_code"), 1);

    // The session is the user's now: `user` scope only, so writes are refused.
    client.get_user("db0", "usr_000001").await.expect("read");
    let err = client
        .delete_user("db0", "usr_000001")
        .await
        .expect_err("user scope");
    assert!(matches!(err, Error::Forbidden { .. }), "{err}");

    tokio::time::sleep(Duration::from_millis(2100)).await;
    client
        .get_user("db0", "usr_000002")
        .await
        .expect("after expiry");
    assert_eq!(grants(&sim, "refresh_token"), 1);
    assert_eq!(
        grants(&sim, "client_credentials"),
        0,
        "a delegated session never falls back to the app's own credentials"
    );
    // A code is single-use: a replay is refused by the server.
    let again = client
        .begin_authorization(&redirect, &scopes)
        .expect("begin");
    let state = again
        .url()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.to_string())
        .expect("state");
    let err = client
        .complete_authorization(again, &code, &state)
        .await
        .expect_err("used code");
    assert!(matches!(err, Error::Auth { .. }), "{err}");
}

#[tokio::test]
async fn a_refused_refresh_falls_back_to_client_credentials() {
    let grants_seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = grants_seen.clone();
    let server = serve(None, move |req: &Req| {
        if req.path() == "/auth/oauth2/token" {
            let body = String::from_utf8_lossy(&req.body).to_string();
            let grant = body
                .split('&')
                .find_map(|p| p.strip_prefix("grant_type="))
                .unwrap_or("")
                .to_string();
            assert!(
                body.contains("client_secret=app-secret"),
                "secret in the body"
            );
            seen.lock().expect("log").push(grant.clone());
            if grant == "refresh_token" {
                return Action::Respond(Resp::json(
                    400,
                    serde_json::json!({"error": "invalid_grant", "error_description": "expired"}),
                ));
            }
            return Action::Respond(Resp::json(
                200,
                serde_json::json!({
                    "access_token": "tok", "token_type": "bearer",
                    "expires_in": 1, "refresh_token": "ref"
                }),
            ));
        }
        Action::Respond(Resp::json(200, serde_json::json!({"data": {"id": "u1"}})))
    })
    .await;
    let client = Client::new(config_for(&server.base_url(), "app", "app-secret")).expect("config");
    client.get_user("acme", "u1").await.expect("first");
    tokio::time::sleep(Duration::from_millis(1050)).await;
    client.get_user("acme", "u1").await.expect("second");
    assert_eq!(
        *grants_seen.lock().expect("log"),
        vec!["client_credentials", "refresh_token", "client_credentials"]
    );
    assert_eq!(client.stats().renewals, 1);
}

#[tokio::test]
async fn a_persistent_401_is_an_auth_error_after_two_renewals() {
    let server = serve(None, |req: &Req| {
        if req.path() == "/auth/oauth2/token" {
            Action::Respond(token_response())
        } else {
            Action::Respond(Resp::json(
                401,
                serde_json::json!({"error": {"code": "unauthorized", "message": "no"}}),
            ))
        }
    })
    .await;
    let client = Client::new(config_for(&server.base_url(), "app", "app-secret")).expect("config");
    let err = client.get_user("acme", "u1").await.expect_err("401");
    assert!(matches!(err, Error::Auth { .. }), "{err}");
    let api_calls = server
        .seen()
        .iter()
        .filter(|(_, t)| t.starts_with("/api"))
        .count();
    // A revocation may land between a renewal and its use, so a fresh token refused once is
    // renewed once more; refused again, the API refuses this client.
    assert_eq!(api_calls, 3, "two renewals, two retries");
    assert_eq!(client.stats().tokens_issued, 3);
}

/// A writer that keeps everything logged, for inspection.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_stay_out_of_logs_and_debug_output() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("imanage=trace,oauth2=trace")
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sim = start_firm(sim_config(1), exact_firm(&[5], 1)).await;
    sim.handle.set_faults(0.3, 0);
    let client = admin(&sim, 2);
    let (users, _) = drain(client.list_users("db0")).await;
    assert_eq!(users.len(), 5);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sim.handle.set_faults(0.0, 0);
    let mut new = imanage::NewUser::new("pw", "pw@acme.com", "P", "W");
    new.password = Some(secrecy::SecretString::from("user-password-4411"));
    client.create_user("db0", &new).await.expect("create");
    sim.handle.revoke_tokens();
    client
        .get_user("db0", "usr_000001")
        .await
        .expect("after revoke");

    let log = String::from_utf8(captured.0.lock().expect("log").clone()).expect("utf8");
    assert!(log.contains("imanage_request"), "request spans are logged");
    assert!(
        log.contains("customer_id=db0") && log.contains("duration_ms"),
        "{log}"
    );
    for secret in [ADMIN_SECRET, "user-password-4411", "Bearer "] {
        assert!(!log.contains(secret), "{secret:?} leaked into the log");
    }
    // The simulator's tokens are a prefix and 32 hex digits.
    for prefix in ["at_", "rt_"] {
        let leaked = log.match_indices(prefix).any(|(i, _)| {
            let rest = &log[i + prefix.len()..];
            rest.len() >= 32 && rest[..32].bytes().all(|b| b.is_ascii_hexdigit())
        });
        assert!(!leaked, "a {prefix} token leaked into the log");
    }
    let debug = format!("{client:?} {:?} {new:?}", client.config());
    for secret in [ADMIN_SECRET, "user-password-4411"] {
        assert!(
            !debug.contains(secret),
            "{secret:?} leaked into Debug: {debug}"
        );
    }
}
