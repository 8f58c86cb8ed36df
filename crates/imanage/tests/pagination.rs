//! Offset pagination: exact call counts at the page-size edges against the simulator, and the
//! shapes and misbehaviours the simulator does not produce, against a stand-in server.

mod support;

use futures::StreamExt;
use imanage::{Client, ClientConfig, Error};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use support::*;

/// Users per database and the list calls a page size of 1000 must take for them.
const CASES: [(usize, u64); 6] = [(0, 1), (1, 1), (999, 1), (1000, 1), (1001, 2), (2500, 3)];

#[tokio::test]
async fn users_lists_at_the_page_size_edges_take_the_fewest_calls() {
    let sizes: Vec<usize> = CASES.iter().map(|(n, _)| *n).collect();
    let sim = start_firm(sim_config(3600), exact_firm(&sizes, 0)).await;
    let client = admin(&sim, 1000);
    let snapshot = sim.handle.snapshot();
    for (d, (n, calls)) in CASES.iter().enumerate() {
        let db = format!("db{d}");
        let before = sim_calls(&sim, "users_list");
        let (users, pages) = drain(client.list_users(&db)).await;
        assert_eq!(users.len(), *n, "{db}");
        assert_eq!(sim_calls(&sim, "users_list") - before, *calls, "{n} users");
        assert_eq!(pages.len() as u64, *calls);
        assert_eq!(client.stats().per_customer[&db].calls, *calls);
        let starts: Vec<u64> = pages.iter().map(|p| p.start_index).collect();
        let want: Vec<u64> = (0..*calls).map(|i| i * 1000).collect();
        assert_eq!(starts, want);
        assert!(pages.iter().all(|p| p.total_results == Some(*n as u64)));
        assert!(pages.iter().all(|p| p.attempts == 1));
        let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
        let want: Vec<&str> = snapshot[d].users.keys().map(String::as_str).collect();
        assert_eq!(ids, want, "every user once, in order");
    }
}

#[tokio::test]
async fn member_lists_page_the_same_way() {
    let sim = start_firm(sim_config(3600), exact_firm(&[2500, 1001], 2500)).await;
    let client = admin(&sim, 1000);
    for (db, want, calls) in [("db0", 2500, 3), ("db1", 1001, 2)] {
        let before = sim_calls(&sim, "members_list");
        let (members, _) = drain(client.list_group_members(db, "grp_all")).await;
        assert_eq!(members.len(), want);
        assert_eq!(sim_calls(&sim, "members_list") - before, calls);
    }
    // Small pages: 2500 records in pages of 100 is 25 calls.
    let small = admin(&sim, 100);
    let before = sim_calls(&sim, "members_list");
    let (members, pages) = drain(small.list_group_members("db0", "grp_all")).await;
    assert_eq!(members.len(), 2500);
    assert_eq!(pages.len(), 25);
    assert_eq!(sim_calls(&sim, "members_list") - before, 25);
}

/// A stand-in server: token endpoint plus whatever `list` answers for API paths.
async fn stand_in(list: impl Fn(&Req) -> Resp + Send + Sync + 'static) -> (TestServer, Client) {
    let server = serve(None, move |req: &Req| {
        if req.path() == "/auth/oauth2/token" {
            Action::Respond(token_response())
        } else {
            Action::Respond(list(req))
        }
    })
    .await;
    let client = Client::new(ClientConfig {
        page_size: 2,
        ..config_for(&server.base_url(), "app", "app-secret")
    })
    .expect("config");
    (server, client)
}

fn start_of(req: &Req) -> usize {
    req.query("start_index")
        .and_then(|s| s.parse().ok())
        .expect("start_index")
}

#[tokio::test]
async fn lists_without_a_total_end_on_a_short_page() {
    // Five members, no total_results, numbers as strings, ids as `id` or numbers.
    let (server, client) = stand_in(|req| {
        let all = [
            json!({"user_id": "u1"}),
            json!({"id": "u2", "login_name": "b"}),
            json!({"user_id": 3, "extra": {"x": 1}}),
            json!({"id": "u4"}),
            json!({"user_id": "u5", "id": "membership-9"}),
        ];
        let start = start_of(req);
        let page: Vec<_> = all.iter().skip(start).take(2).cloned().collect();
        Resp::json(200, json!({ "data": page }))
    })
    .await;
    let (members, pages) = drain(client.list_group_members("acme", "grp_1")).await;
    let ids: Vec<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
    assert_eq!(ids, vec!["u1", "u2", "3", "u4", "u5"]);
    assert_eq!(members[2].extra.get("extra"), Some(&json!({"x": 1})));
    assert!(pages.iter().all(|p| p.total_results.is_none()));
    assert_eq!(pages.len(), 3, "2 + 2 + a short page of 1");
    let api_calls = server
        .seen()
        .iter()
        .filter(|(_, t)| t.contains("/members"))
        .count();
    assert_eq!(api_calls, 3);
}

#[tokio::test]
async fn lists_without_a_total_end_on_an_empty_page_after_full_ones() {
    let (_server, client) = stand_in(|req| {
        let data: Vec<_> = if start_of(req) < 4 {
            vec![json!({"id": "g", "name": "G", "member_count": "3"}); 2]
        } else {
            vec![]
        };
        Resp::json(200, json!({ "data": data, "total_results": null }))
    })
    .await;
    let (groups, pages) = drain(client.list_groups("acme")).await;
    assert_eq!(groups.len(), 4);
    assert_eq!(groups[0].member_count, Some(3));
    assert_eq!(pages.len(), 3);
}

#[tokio::test]
async fn a_total_as_a_string_is_honoured() {
    let (_server, client) = stand_in(|req| {
        let start = start_of(req);
        let data: Vec<_> = (start..(start + 2).min(3))
            .map(|i| json!({"id": format!("u{i}"), "active": "false"}))
            .collect();
        Resp::json(200, json!({ "data": data, "total_results": "3" }))
    })
    .await;
    let (users, pages) = drain(client.list_users("acme")).await;
    assert_eq!(users.len(), 3);
    assert!(users.iter().all(|u| u.active == Some(false)));
    assert_eq!(pages[0].total_results, Some(3));
}

#[tokio::test]
async fn a_total_that_grows_without_end_is_bounded() {
    let served = Arc::new(AtomicU64::new(0));
    let counter = served.clone();
    let (_server, client) = stand_in(move |req| {
        // Every page is full and the total always lies one page ahead.
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let start = start_of(req) as u64;
        Resp::json(
            200,
            json!({
                "data": [{"id": format!("a{n}")}, {"id": format!("b{n}")}],
                "total_results": start + 4,
            }),
        )
    })
    .await;
    let mut stream = std::pin::pin!(client.list_users("acme"));
    let mut pages = 0;
    let err = loop {
        match stream.next().await.expect("the stream ends with an error") {
            Ok(_) => pages += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::Pagination { .. }), "{err}");
    // First total 4 at 2 per page: 2 pages promised, so at most 2*2 + 8.
    assert_eq!(pages, 12);
    assert!(stream.next().await.is_none(), "nothing after the error");
    assert_eq!(served.load(Ordering::SeqCst), 12);
}

#[tokio::test]
async fn a_server_ignoring_the_offset_without_a_total_is_bounded() {
    let (_server, client) =
        stand_in(|_req| Resp::json(200, json!({"data": [{"id": "same"}, {"id": "again"}]}))).await;
    let client = Client::new(ClientConfig {
        max_list_records: 50,
        ..client.config().clone()
    })
    .expect("config");
    let results: Vec<_> = client.list_users("acme").collect().await;
    let (ok, err): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    assert_eq!(ok.len(), 26, "50 records at 2 per page, plus one");
    assert_eq!(err.len(), 1);
}

#[tokio::test]
async fn a_page_beyond_the_total_ends_the_list() {
    let (server, client) = stand_in(|_req| {
        // Claims 1 record but sends 2 on the first page.
        Resp::json(
            200,
            json!({"data": [{"id": "x"}, {"id": "y"}], "total_results": 1}),
        )
    })
    .await;
    let (users, pages) = drain(client.list_users("acme")).await;
    assert_eq!(
        users.len(),
        2,
        "yielded as served; judging it is the harvester's job"
    );
    assert_eq!(pages.len(), 1);
    assert_eq!(server.seen().len(), 2, "token + one page");
}

#[tokio::test]
async fn a_malformed_page_is_a_decode_error_with_a_path() {
    let (_server, client) = stand_in(|_req| {
        Resp::json(
            200,
            json!({"data": [{"id": "u1"}, {"id": "u2", "groups": {"secret": "x"}}], "total_results": 2}),
        )
    })
    .await;
    let mut stream = std::pin::pin!(client.list_users("acme"));
    let err = stream.next().await.expect("item").expect_err("decode");
    match err {
        Error::Decode { path, message } => {
            assert_eq!(path, "data[1].groups");
            assert!(!message.contains("secret"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(stream.next().await.is_none());
}
