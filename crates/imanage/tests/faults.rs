//! Retries: every fault the simulator injects, `Retry-After` in both forms, dropped and stalled
//! connections, exhausted retries, the client-side rate limit and the shared concurrency cap.

mod support;

use futures::future::join_all;
use imanage::{AddOutcome, Client, ClientConfig, Error, NewUser, Removal, RetryPolicy, UserPatch};
use serde_json::json;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// Fault tests keep waits short: a `Retry-After: 1` is capped to 50ms here (its honouring is
/// tested on its own below).
fn fast_client(sim: &imanage_sim::RunningSim, page_size: u32) -> Client {
    Client::new(ClientConfig {
        page_size,
        retry: RetryPolicy {
            max_retries: 12,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(50),
            budget: Duration::from_secs(30),
        },
        ..config_for(&sim.base_url(), ADMIN_ID, ADMIN_SECRET)
    })
    .expect("config")
}

#[tokio::test]
async fn every_fault_kind_is_retried_and_the_crawl_is_exact() {
    let sim = start_firm(sim_config(3600), exact_firm(&[3000], 3000)).await;
    sim.handle.set_faults(0.5, 0);
    let client = fast_client(&sim, 100);
    let (users, pages) = drain(client.list_users("db0")).await;
    let (members, _) = drain(client.list_group_members("db0", "grp_all")).await;
    let snapshot = sim.handle.snapshot();
    let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
    let want: Vec<&str> = snapshot[0].users.keys().map(String::as_str).collect();
    assert_eq!(ids, want);
    assert_eq!(members.len(), 3000);
    assert!(
        pages.iter().any(|p| p.attempts > 1),
        "some page needed retries"
    );

    let faults = sim.handle.stats().faults;
    for kind in ["429_retry_after", "429", "502", "503", "504"] {
        assert!(
            faults.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} in {faults:?}"
        );
    }
    let retries = client.stats().total.retries;
    assert_eq!(
        retries.rate_limited,
        faults["429_retry_after"] + faults["429"]
    );
    assert_eq!(retries.bad_gateway, faults["502"]);
    assert_eq!(retries.unavailable, faults["503"]);
    assert_eq!(retries.gateway_timeout, faults["504"]);
    let attempts: u64 = pages.iter().map(|p| u64::from(p.attempts)).sum();
    assert_eq!(
        attempts,
        sim_calls(&sim, "users_list"),
        "Page::attempts counts HTTP calls"
    );
}

#[tokio::test]
async fn writes_under_faults_happen_exactly_once() {
    let sim = start_firm(sim_config(3600), exact_firm(&[10], 5)).await;
    sim.handle.set_faults(0.5, 0);
    let client = fast_client(&sim, 1000);
    let mut created = Vec::new();
    for i in 0..8 {
        let new = NewUser::new(
            format!("new{i}"),
            format!("new{i}@acme.com"),
            "New",
            format!("User{i}"),
        );
        created.push(client.create_user("db0", &new).await.expect("create").id);
    }
    for id in &created {
        assert_eq!(
            client.add_member("db0", "grp_none", id).await.expect("add"),
            AddOutcome::Added
        );
        client
            .update_user("db0", id, &UserPatch::default().title("Paralegal"))
            .await
            .expect("patch");
    }
    for id in &created[..4] {
        let r = client
            .remove_member("db0", "grp_none", id)
            .await
            .expect("remove");
        assert!(matches!(r, Removal::Removed | Removal::AlreadyAbsent));
        let r = client.delete_user("db0", id).await.expect("delete");
        assert!(matches!(r, Removal::Removed | Removal::AlreadyAbsent));
    }
    let db = sim.handle.snapshot().remove(0);
    assert_eq!(
        db.users.len(),
        10 + 4,
        "no duplicate creates, the deletes done"
    );
    for i in 0..8 {
        let n = db
            .users
            .values()
            .filter(|u| u.login_name == format!("new{i}"))
            .count();
        assert_eq!(n, usize::from(i >= 4), "new{i}");
    }
    let members: Vec<&String> = db.groups["grp_none"].members.iter().collect();
    assert_eq!(members.len(), 4);
    assert!(db
        .users
        .values()
        .filter(|u| u.login_name.starts_with("new"))
        .all(|u| u.title.as_deref() == Some("Paralegal")));
    let stats = client.stats();
    assert!(
        stats.total.write_checks > 0,
        "a 502 or 504 on a write was checked: {stats:?}"
    );
}

#[tokio::test]
async fn exhausted_retries_return_a_retryable_error() {
    let sim = start_firm(sim_config(3600), exact_firm(&[3], 1)).await;
    sim.handle.set_faults(1.0, 0);
    let client = Client::new(ClientConfig {
        retry: RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            budget: Duration::from_secs(10),
        },
        ..config_for(&sim.base_url(), ADMIN_ID, ADMIN_SECRET)
    })
    .expect("config");
    let err = client
        .get_user("db0", "usr_000001")
        .await
        .expect_err("always failing");
    assert!(err.is_retryable(), "{err}");
    assert!(
        matches!(
            err,
            Error::RateLimited { attempts: 4 } | Error::Upstream { .. }
        ),
        "{err:?}"
    );
    assert_eq!(
        sim_calls(&sim, "user_get"),
        4,
        "one attempt and three retries"
    );
}

/// A stand-in that answers each API call with the next of `script`, then with a user.
async fn scripted(script: Vec<Resp>) -> (TestServer, Arc<AtomicU32>) {
    let n = Arc::new(AtomicU32::new(0));
    let count = n.clone();
    let server = serve(None, move |req: &Req| {
        if req.path() == "/auth/oauth2/token" {
            return Action::Respond(token_response());
        }
        let i = count.fetch_add(1, Ordering::SeqCst) as usize;
        Action::Respond(
            script
                .get(i)
                .cloned()
                .unwrap_or_else(|| Resp::json(200, json!({"data": {"id": "u1"}}))),
        )
    })
    .await;
    (server, n)
}

fn rate_limited() -> Resp {
    Resp::json(
        429,
        json!({"error": {"code": "rate_limited", "message": "slow down"}}),
    )
}

#[tokio::test]
async fn retry_after_in_seconds_is_honoured() {
    let (server, calls) = scripted(vec![rate_limited().with_header("Retry-After", "1")]).await;
    let client = Client::new(config_for(&server.base_url(), "app", "s")).expect("config");
    let started = Instant::now();
    client.get_user("acme", "u1").await.expect("after the wait");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(990), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(client.stats().total.retries.rate_limited, 1);
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    let at = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(2));
    let (server, _) = scripted(vec![
        Resp::json(503, json!({})).with_header("Retry-After", &at)
    ])
    .await;
    let client = Client::new(config_for(&server.base_url(), "app", "s")).expect("config");
    let started = Instant::now();
    client.get_user("acme", "u1").await.expect("after the wait");
    // The date has whole seconds: the wait is between one and two seconds.
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert_eq!(client.stats().total.retries.unavailable, 1);
}

#[tokio::test]
async fn retry_after_is_capped_by_max_delay() {
    let (server, _) = scripted(vec![rate_limited().with_header("Retry-After", "3600")]).await;
    let client = Client::new(ClientConfig {
        retry: RetryPolicy {
            max_delay: Duration::from_millis(200),
            ..RetryPolicy::default()
        },
        ..config_for(&server.base_url(), "app", "s")
    })
    .expect("config");
    let started = Instant::now();
    client
        .get_user("acme", "u1")
        .await
        .expect("after the capped wait");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_429_without_retry_after_backs_off_with_jitter() {
    let (server, calls) = scripted(vec![rate_limited(), rate_limited(), rate_limited()]).await;
    let client = Client::new(config_for(&server.base_url(), "app", "s")).expect("config");
    let started = Instant::now();
    client.get_user("acme", "u1").await.expect("recovers");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    // quick_retry: at most 5 + 10 + 20 ms of backoff.
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(client.stats().total.retries.rate_limited, 3);
}

#[tokio::test]
async fn a_500_is_not_retried() {
    let (server, calls) = scripted(vec![Resp::json(
        500,
        json!({"error": {"code": "internal", "message": "boom"}}),
    )])
    .await;
    let client = Client::new(config_for(&server.base_url(), "app", "s")).expect("config");
    let err = client.get_user("acme", "u1").await.expect_err("500");
    assert!(
        matches!(err, Error::Upstream { status: 500, ref code, ref message } if code.as_deref() == Some("internal") && message == "boom"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn dropped_connections_on_reads_are_retried() {
    let sim = start_firm(sim_config(3600), exact_firm(&[2500], 0)).await;
    let proxy = serve(
        Some(sim.addr),
        on_nth("GET", "/users", 2, Action::DropAfterForward),
    )
    .await;
    let client = Client::new(ClientConfig {
        page_size: 1000,
        ..config_for(&proxy.base_url(), ADMIN_ID, ADMIN_SECRET)
    })
    .expect("config");
    let (users, pages) = drain(client.list_users("db0")).await;
    assert_eq!(users.len(), 2500);
    assert_eq!(pages[0].attempts, 3, "two dropped answers, then the page");
    assert_eq!(client.stats().total.retries.connection, 2);

    let proxy2 = serve(
        Some(sim.addr),
        on_nth("GET", "/users", 1, Action::DropBeforeForward),
    )
    .await;
    let client2 =
        Client::new(config_for(&proxy2.base_url(), ADMIN_ID, ADMIN_SECRET)).expect("config");
    let (users, _) = drain(client2.list_users("db0")).await;
    assert_eq!(users.len(), 2500);
    assert_eq!(client2.stats().total.retries.connection, 1);
}

#[tokio::test]
async fn a_stalled_answer_times_out_and_is_retried() {
    let sim = start_firm(sim_config(3600), exact_firm(&[5], 0)).await;
    let proxy = serve(
        Some(sim.addr),
        on_nth("GET", "/users/usr_000001", 1, Action::Stall),
    )
    .await;
    let client = Client::new(ClientConfig {
        request_timeout: Duration::from_millis(300),
        ..config_for(&proxy.base_url(), ADMIN_ID, ADMIN_SECRET)
    })
    .expect("config");
    let started = Instant::now();
    let user = client
        .get_user("db0", "usr_000001")
        .await
        .expect("second attempt");
    assert_eq!(user.id, "usr_000001");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(client.stats().total.retries.timeout, 1);
}

#[tokio::test]
async fn calls_queued_behind_a_failed_token_request_share_its_failure() {
    // With the token endpoint down, every database of a harvest asks for a token at once; one
    // goes through the retries, the others get its failure instead of retrying all over again.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let client = Client::new(ClientConfig {
        retry: RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(40),
            budget: Duration::from_secs(5),
        },
        ..config_for(&format!("http://127.0.0.1:{port}"), "app", "s")
    })
    .expect("config");
    let calls = (0..4).map(|i| {
        let client = client.clone();
        async move { client.get_user(&format!("db{i}"), "u1").await }
    });
    for result in join_all(calls).await {
        let err = result.expect_err("nobody listens");
        assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    }
    assert_eq!(
        client.stats().token_requests,
        4,
        "one token request and its three retries, shared by the four calls"
    );
    // A later call tries again on its own.
    client.get_user("db9", "u1").await.expect_err("still down");
    assert_eq!(client.stats().token_requests, 8);
}

#[tokio::test]
async fn a_refused_connection_is_a_retryable_transport_error() {
    // Bind and drop a listener: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let client = Client::new(ClientConfig {
        retry: RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            budget: Duration::from_secs(5),
        },
        ..config_for(&format!("http://127.0.0.1:{port}"), "app", "s")
    })
    .expect("config");
    let err = client
        .get_user("acme", "u1")
        .await
        .expect_err("nobody listens");
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(
        client.stats().token_requests,
        3,
        "the token request was retried twice"
    );
}

#[tokio::test]
async fn the_rate_limit_spaces_calls() {
    let sim = start_firm(sim_config(3600), exact_firm(&[40], 0)).await;
    let client = Client::new(ClientConfig {
        page_size: 1,
        rate_limit_per_s: Some(20),
        ..config_for(&sim.base_url(), ADMIN_ID, ADMIN_SECRET)
    })
    .expect("config");
    let started = Instant::now();
    let (users, _) = drain(client.list_users("db0")).await;
    assert_eq!(users.len(), 40);
    // A burst of 20, then 20 more at 20 per second.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");
}

#[tokio::test]
async fn the_concurrency_cap_is_shared_by_every_database() {
    let sim = start_firm(sim_config(3600), exact_firm(&[300, 300, 300, 300], 0)).await;
    sim.handle.set_faults(0.0, 15);
    let client = Client::new(ClientConfig {
        page_size: 20,
        max_concurrency: 3,
        ..config_for(&sim.base_url(), ADMIN_ID, ADMIN_SECRET)
    })
    .expect("config");
    let crawls = join_all(["db0", "db1", "db2", "db3"].map(|db| {
        let client = client.clone();
        async move { drain(client.list_users(db)).await.0.len() }
    }))
    .await;
    assert_eq!(crawls, vec![300; 4]);
    let stats = client.stats();
    assert_eq!(
        stats.max_in_flight, 3,
        "the cap is reached and never exceeded"
    );
    assert_eq!(stats.total.calls, 4 * 15);
    assert_eq!(stats.per_customer.len(), 4);
}

/// Bodies spoiled on the way: one that is not JSON (garbled or cut short) is retried and the
/// list comes out exact; JSON of the wrong shape, a page longer than asked for and a body over
/// the client's cap fail the list at once with a clear error, and no page of it is yielded.
#[tokio::test]
async fn spoiled_bodies_are_retried_or_refused_whole() {
    use imanage_sim::FaultKind;
    let sim = start_firm(sim_config(3600), exact_firm(&[1200], 100)).await;
    let want: Vec<String> = sim.handle.snapshot()[0].users.keys().cloned().collect();

    sim.handle
        .set_fault_kinds(&[FaultKind::MalformedJson, FaultKind::TruncatedBody]);
    sim.handle.set_faults(0.4, 0);
    let client = fast_client(&sim, 100);
    let (users, _) = drain(client.list_users("db0")).await;
    let ids: Vec<String> = users.into_iter().map(|u| u.id).collect();
    assert_eq!(ids, want, "garbled pages are retried until they decode");
    let faults = sim.handle.stats().total_faults();
    assert!(faults > 0);
    assert_eq!(client.stats().total.retries.malformed, faults);

    sim.handle.set_faults(1.0, 0);
    for (kind, expect) in [
        (FaultKind::WrongTypes, "data[99].id"),
        (FaultKind::OversizedPage, "more than the 100 asked for"),
        (FaultKind::HugeBody, "larger than the client's limit"),
    ] {
        sim.handle.set_fault_kinds(&[kind]);
        let client = Client::new(ClientConfig {
            max_body_bytes: 4 * 1024 * 1024,
            ..fast_client(&sim, 100).config().clone()
        })
        .expect("config");
        let pages: Vec<_> = futures::StreamExt::collect::<Vec<_>>(client.list_users("db0")).await;
        assert_eq!(pages.len(), 1, "{kind}: the list stops at the spoiled page");
        let err = pages.into_iter().next().unwrap().unwrap_err();
        assert!(!err.is_retryable(), "{kind}: {err}");
        assert!(err.to_string().contains(expect), "{kind}: {err}");
        assert!(
            matches!(err, Error::Decode { .. } | Error::TooLarge { .. }),
            "{kind}: {err:?}"
        );
        assert_eq!(client.stats().total.calls, 1, "{kind}: not retried");
    }
    sim.handle.set_faults(0.0, 0);
}
