//! Conformance of the users, groups and members endpoints over real HTTP.

mod common;

use common::{assert_error, exact_firm, small_config, start, start_firm, TestSim};
use imanage_sim::SimConfig;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashSet;

const USER_FIELDS: &[&str] = &[
    "id",
    "login_name",
    "email",
    "first_name",
    "last_name",
    "display_name",
    "active",
    "user_type",
    "groups",
    "default_database",
    "phone",
    "department",
    "title",
    "created_date",
];

#[tokio::test]
async fn users_list_pages_through_every_user_in_id_order() {
    let sim = start(small_config()).await;
    let token = sim.token(None).await;
    let truth = sim.running.handle.truth();
    let snapshot = sim.running.handle.snapshot();
    for db in &snapshot {
        let users = sim
            .all_pages(&sim.api(&db.customer_id, "/users"), &token, 37)
            .await;
        let ids: Vec<&str> = users
            .iter()
            .map(|u| u["id"].as_str().expect("id"))
            .collect();
        let expected: Vec<&str> = db.users.keys().map(String::as_str).collect();
        assert_eq!(ids, expected, "{}", db.customer_id);
        for u in &users {
            let obj = u.as_object().expect("user object");
            for f in USER_FIELDS {
                assert!(obj.contains_key(*f), "{f} missing in {u}");
            }
            assert!(!obj.contains_key("password"));
            let id = u["id"].as_str().expect("id");
            assert!(truth.person_of(&db.customer_id, id).is_some());
            let sim_user = &db.users[id];
            assert_eq!(u["login_name"], sim_user.login_name.as_str());
            assert_eq!(u["email"], json!(sim_user.email));
            assert_eq!(u["active"], sim_user.active);
            // `groups` is exactly the groups that list the user as a member.
            let groups: HashSet<&str> = u["groups"]
                .as_array()
                .expect("groups")
                .iter()
                .map(|g| g.as_str().expect("group id"))
                .collect();
            let expected: HashSet<&str> = db
                .groups
                .values()
                .filter(|g| g.members.contains(id))
                .map(|g| g.id.as_str())
                .collect();
            assert_eq!(groups, expected);
        }
    }
}

#[tokio::test]
async fn default_page_is_100_and_large_pages_are_served_at_1000() {
    let sim = start_firm(SimConfig::default(), exact_firm(&[("big", 2500, 0)])).await;
    let token = sim.token(None).await;
    let (status, body) = sim.get(&sim.api("big", "/users"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"].as_array().map(Vec::len), Some(100));
    assert_eq!(body["total_results"], 2500);
    for (max, served) in [
        ("1000", 1000),
        ("1001", 1000),
        ("50000", 1000),
        ("0", 0),
        ("1", 1),
    ] {
        let (status, body) = sim
            .get(
                &sim.api("big", &format!("/users?max_results={max}")),
                &token,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["data"].as_array().map(Vec::len), Some(served), "{max}");
        assert_eq!(body["total_results"], 2500);
    }
    let (_, body) = sim
        .get(
            &sim.api("big", "/users?start_index=2400&max_results=1000"),
            &token,
        )
        .await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(100));
    assert_eq!(body["data"][0]["id"], "usr_002400");
    let (_, body) = sim
        .get(&sim.api("big", "/users?start_index=2500"), &token)
        .await;
    assert_eq!(body["data"], json!([]));
    assert_eq!(body["total_results"], 2500);
}

#[tokio::test]
async fn bad_pagination_values_get_400() {
    let sim = start(small_config()).await;
    let token = sim.token(None).await;
    for q in [
        "start_index=-1",
        "max_results=-5",
        "start_index=abc",
        "max_results=1.5",
        "max_results=",
        "start_index=99999999999999999999999",
    ] {
        for path in ["/users", "/groups"] {
            let (status, body) = sim
                .get(&sim.api("acme-london", &format!("{path}?{q}")), &token)
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}?{q}");
            assert_error(&body, "bad_request");
        }
    }
}

/// Pages through users, groups and members at sizes around the page boundaries.
#[tokio::test]
async fn pagination_at_every_boundary_size() {
    let sizes = [0usize, 1, 999, 1000, 1001, 2500];
    let dbs: Vec<(String, usize)> = sizes.iter().map(|n| (format!("db{n}"), *n)).collect();
    let spec: Vec<(&str, usize, usize)> = dbs.iter().map(|(c, n)| (c.as_str(), *n, *n)).collect();
    let sim = start_firm(SimConfig::default(), exact_firm(&spec)).await;
    let token = sim.token(None).await;
    for (customer, n) in &dbs {
        for page in [1000usize, 999, 1] {
            if page == 1 && *n > 1001 {
                continue; // 2,500 one-item pages would only slow the test down.
            }
            let users = sim
                .all_pages(&sim.api(customer, "/users"), &token, page)
                .await;
            assert_eq!(users.len(), *n, "{customer} page {page}");
            let unique: HashSet<&str> = users.iter().filter_map(|u| u["id"].as_str()).collect();
            assert_eq!(unique.len(), *n);
            let members = sim
                .all_pages(
                    &sim.api(customer, "/groups/grp_000001/members"),
                    &token,
                    page,
                )
                .await;
            assert_eq!(members.len(), *n, "{customer} members page {page}");
            let ids: Vec<&str> = members
                .iter()
                .filter_map(|m| m["user_id"].as_str())
                .collect();
            let mut sorted = ids.clone();
            sorted.sort();
            assert_eq!(ids, sorted, "members in id order");
        }
        let (_, body) = sim
            .get(&sim.api(customer, "/users?max_results=1000"), &token)
            .await;
        assert_eq!(body["total_results"], *n as u64);
        assert_eq!(body["data"].as_array().map(Vec::len), Some((*n).min(1000)));
    }
}

#[tokio::test]
async fn login_name_filter_is_exact_and_case_insensitive() {
    let sim = start(small_config()).await;
    let token = sim.token(None).await;
    let db = &sim.running.handle.snapshot()[0];
    let user = db.users.values().nth(5).expect("a user");
    let flipped: String = user
        .login_name
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    let url = reqwest::Url::parse_with_params(
        &sim.api(&db.customer_id, "/users"),
        &[("login_name", flipped.as_str())],
    )
    .expect("url");
    let (status, body) = sim.get(url.as_str(), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total_results"], 1);
    assert_eq!(body["data"][0]["id"], user.id.as_str());

    // A prefix is not a match.
    let prefix: String = user.login_name.chars().take(2).collect();
    let url = reqwest::Url::parse_with_params(
        &sim.api(&db.customer_id, "/users"),
        &[("login_name", prefix.as_str())],
    )
    .expect("url");
    let (_, body) = sim.get(url.as_str(), &token).await;
    assert_eq!(body["total_results"], 0);
    assert_eq!(body["data"], json!([]));
}

#[tokio::test]
async fn single_objects_and_404s() {
    let sim = start(small_config()).await;
    let token = sim.token(None).await;
    let db = &sim.running.handle.snapshot()[1];
    let user = db.users.values().next().expect("user");
    let (status, body) = sim
        .get(
            &sim.api(&db.customer_id, &format!("/users/{}", user.id)),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["id"], user.id.as_str());
    assert_eq!(body["data"]["first_name"], user.first_name.as_str());

    for url in [
        sim.api("acme-nowhere", "/users"),
        sim.api("acme-nowhere", "/groups"),
        sim.api(&db.customer_id, "/users/usr_nobody"),
        sim.api(&db.customer_id, "/groups/grp_nothing/members"),
        sim.url("/api/v1/nothing"),
        sim.url("/no/such/path"),
    ] {
        let (status, body) = sim.get(&url, &token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}");
        assert_error(&body, "not_found");
    }
    // A user id of another database is unknown here.
    let other = sim.running.handle.snapshot()[0]
        .users
        .keys()
        .next()
        .cloned()
        .expect("user");
    let (status, _) = sim
        .get(
            &sim.api(&db.customer_id, &format!("/users/{other}")),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = sim
        .send(
            Method::PUT,
            &sim.api(&db.customer_id, "/users"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error(&body, "bad_request");
}

#[tokio::test]
async fn groups_and_members_match_the_state() {
    let sim = start(small_config()).await;
    let token = sim.token(Some("user")).await;
    for db in sim.running.handle.snapshot() {
        let groups = sim
            .all_pages(&sim.api(&db.customer_id, "/groups"), &token, 7)
            .await;
        assert_eq!(groups.len(), db.groups.len());
        for g in &groups {
            let id = g["id"].as_str().expect("id");
            let sim_group = &db.groups[id];
            assert_eq!(g["name"], sim_group.name.as_str());
            assert_eq!(g["member_count"], sim_group.members.len() as u64);
            let members = sim
                .all_pages(
                    &sim.api(&db.customer_id, &format!("/groups/{id}/members")),
                    &token,
                    500,
                )
                .await;
            let ids: Vec<&str> = members
                .iter()
                .filter_map(|m| m["user_id"].as_str())
                .collect();
            let expected: Vec<&str> = sim_group.members.iter().map(String::as_str).collect();
            assert_eq!(ids, expected);
            if let Some(m) = members.first() {
                let u = &db.users[m["user_id"].as_str().expect("user_id")];
                assert_eq!(m["login_name"], u.login_name.as_str());
                assert_eq!(m["email"], json!(u.email));
            }
            let (status, one) = sim
                .get(&sim.api(&db.customer_id, &format!("/groups/{id}")), &token)
                .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(one["data"]["id"], id);
        }
        let (_, body) = sim
            .get(&sim.api(&db.customer_id, "/groups?max_results=2"), &token)
            .await;
        assert_eq!(body["total_results"], db.groups.len() as u64);
    }
}

async fn admin(sim: &TestSim) -> String {
    sim.token(Some("admin")).await
}

#[tokio::test]
async fn create_update_delete_a_user() {
    let sim = start(small_config()).await;
    let token = admin(&sim).await;
    let db = "acme-paris";
    let group = sim.running.handle.snapshot()[2]
        .groups
        .keys()
        .next()
        .cloned()
        .expect("group");
    let (status, body) = sim
        .send(
            Method::POST,
            &sim.api(db, "/users"),
            &token,
            Some(json!({
                "login_name": "zz.newbie", "email": "zz.newbie@acme.com",
                "first_name": "Zoë", "last_name": "Newbie", "password": "hunter2",
                "title": "Associate", "groups": [group]
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let user = body["data"].clone();
    let id = user["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("usr_"));
    assert_eq!(user["active"], true);
    assert_eq!(user["user_type"], "full");
    assert_eq!(user["first_name"], "Zoë");
    assert_eq!(user["groups"], json!([group]));
    assert!(user.get("password").is_none());
    assert!(user["created_date"]
        .as_str()
        .is_some_and(|d| d.ends_with('Z')));
    let snap = sim.running.handle.snapshot();
    assert!(snap[2].users.contains_key(&id));
    assert!(snap[2].groups[&group].members.contains(&id));

    // The same login again, in another case: conflict.
    let (status, body) = sim
        .send(
            Method::POST,
            &sim.api(db, "/users"),
            &token,
            Some(json!({"login_name": "ZZ.Newbie", "email": "x@acme.com",
                        "first_name": "X", "last_name": "Y"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "conflict");

    // Missing required fields, wrong types, system fields.
    for bad in [
        json!({"email": "a@acme.com", "first_name": "A", "last_name": "B"}),
        json!({"login_name": "a", "first_name": "A", "last_name": "B"}),
        json!({"login_name": "a", "email": "a@acme.com", "last_name": "B"}),
        json!({"login_name": "a", "email": "a@acme.com", "first_name": "A"}),
        json!({"login_name": "a", "email": "a@acme.com", "first_name": "A", "last_name": "B", "active": "yes"}),
        json!({"login_name": "a", "email": "a@acme.com", "first_name": "A", "last_name": "B", "id": "usr_x"}),
        json!({"login_name": "", "email": "a@acme.com", "first_name": "A", "last_name": "B"}),
        json!(["not", "an", "object"]),
    ] {
        let (status, body) = sim
            .send(
                Method::POST,
                &sim.api(db, "/users"),
                &token,
                Some(bad.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_error(&body, "bad_request");
    }
    let resp = sim
        .http
        .post(sim.api(db, "/users"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // PATCH changes only what is supplied.
    let (status, body) = sim
        .send(
            Method::PATCH,
            &sim.api(db, &format!("/users/{id}")),
            &token,
            Some(json!({"active": false, "title": "Senior Associate", "phone": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let patched = &body["data"];
    assert_eq!(patched["active"], false);
    assert_eq!(patched["title"], "Senior Associate");
    assert_eq!(patched["phone"], Value::Null);
    for f in [
        "login_name",
        "email",
        "first_name",
        "last_name",
        "created_date",
        "groups",
    ] {
        assert_eq!(patched[f], user[f], "{f} changed");
    }
    for bad in [
        json!({"id": "usr_other"}),
        json!({"created_date": "2020-01-01T00:00:00Z"}),
        json!({"first_name": null}),
    ] {
        let (status, _) = sim
            .send(
                Method::PATCH,
                &sim.api(db, &format!("/users/{id}")),
                &token,
                Some(bad.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    // Renaming onto another user's login conflicts.
    let other_login = snap[2]
        .users
        .values()
        .find(|u| u.id != id)
        .map(|u| u.login_name.clone())
        .expect("other user");
    let (status, _) = sim
        .send(
            Method::PATCH,
            &sim.api(db, &format!("/users/{id}")),
            &token,
            Some(json!({"login_name": other_login})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = sim
        .send(
            Method::PATCH,
            &sim.api(db, "/users/usr_nobody"),
            &token,
            Some(json!({"title": "X"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // DELETE: 204, then gone, memberships gone too.
    let (status, body) = sim
        .send(
            Method::DELETE,
            &sim.api(db, &format!("/users/{id}")),
            &token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
    let (status, _) = sim.get(&sim.api(db, &format!("/users/{id}")), &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let snap = sim.running.handle.snapshot();
    assert!(!snap[2].groups[&group].members.contains(&id));
    let (status, _) = sim
        .send(
            Method::DELETE,
            &sim.api(db, &format!("/users/{id}")),
            &token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn add_and_remove_members() {
    let sim = start(small_config()).await;
    let token = admin(&sim).await;
    let db = &sim.running.handle.snapshot()[0];
    let c = db.customer_id.as_str();
    let group = db
        .groups
        .values()
        .find(|g| g.members.len() < db.users.len())
        .expect("a group someone is not in");
    let outsider = db
        .users
        .keys()
        .find(|u| !group.members.contains(*u))
        .expect("outsider");
    let members = sim.api(c, &format!("/groups/{}/members", group.id));

    let (status, body) = sim
        .send(
            Method::POST,
            &members,
            &token,
            Some(json!({"user_id": outsider})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        body,
        json!({"data": {"group_id": group.id, "user_id": outsider}})
    );
    let (_, listed) = sim
        .get(&format!("{members}?max_results=1000"), &token)
        .await;
    assert_eq!(listed["total_results"], group.members.len() as u64 + 1);
    let (_, u) = sim
        .get(&sim.api(c, &format!("/users/{outsider}")), &token)
        .await;
    assert!(u["data"]["groups"]
        .as_array()
        .expect("groups")
        .contains(&json!(group.id)));

    let (status, body) = sim
        .send(
            Method::POST,
            &members,
            &token,
            Some(json!({"user_id": outsider})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "conflict");
    let (status, body) = sim
        .send(
            Method::POST,
            &members,
            &token,
            Some(json!({"user_id": "usr_nobody"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found");
    let (status, _) = sim
        .send(Method::POST, &members, &token, Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = sim
        .send(
            Method::POST,
            &sim.api(c, "/groups/grp_nothing/members"),
            &token,
            Some(json!({"user_id": outsider})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let one = format!("{members}/{outsider}");
    let (status, body) = sim.send(Method::DELETE, &one, &token, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
    let (status, body) = sim.send(Method::DELETE, &one, &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found");
    assert_eq!(
        sim.running.handle.snapshot()[0].groups[&group.id].members,
        group.members
    );
}

#[tokio::test]
async fn the_router_works_without_a_socket() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    let sim = imanage_sim::Sim::new(small_config());
    let resp = sim
        .router()
        .oneshot(
            Request::get("/api/v1/customers/acme-london/users")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(resp.status().as_u16(), 401);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    let body: Value = serde_json::from_slice(&bytes).expect("json");
    assert_error(&body, "unauthorized");

    let resp = sim
        .router()
        .oneshot(
            Request::post("/auth/oauth2/token")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(
                    "grant_type=client_credentials&client_id=idgraph&client_secret=idgraph-secret",
                ))
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(sim.handle().stats().tokens_issued, 1);
}

#[tokio::test]
async fn cached_pages_are_the_rendered_ones_until_the_world_changes() {
    let sim = start(small_config()).await;
    let token = sim.token(None).await;
    let databases = sim.running.handle.databases();
    let db = &databases[0];
    let users = sim.api(db, "/users?start_index=0&max_results=50");
    let (_, uncached) = sim.get(&users, &token).await;

    sim.running.handle.cache_pages(true);
    let (status, first) = sim.get(&users, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        first, uncached,
        "the cache renders what the handler renders"
    );
    let (_, again) = sim.get(&users, &token).await;
    assert_eq!(again, first);
    let calls_before = sim.running.handle.stats().calls["users_list"];

    // A write through the API: the next page shows it.
    let id = first["data"][0]["id"].as_str().expect("an id").to_string();
    let (status, body) = sim
        .send(
            Method::PATCH,
            &sim.api(db, &format!("/users/{id}")),
            &token,
            Some(json!({"title": "Cache Buster"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, after) = sim.get(&users, &token).await;
    assert_eq!(after["data"][0]["title"], "Cache Buster");

    // A change made through the handle (as tests and benchmarks mutate the firm) too.
    sim.running.handle.mutate(0.5, 3);
    let (_, mutated) = sim.get(&users, &token).await;
    sim.running.handle.cache_pages(false);
    let (_, fresh) = sim.get(&users, &token).await;
    assert_eq!(mutated, fresh, "nothing stale served after a mutation");
    assert_ne!(mutated, after, "half the firm changed");

    // Cached calls still pass the gate: counted, and refused without a token.
    assert!(sim.running.handle.stats().calls["users_list"] > calls_before);
    sim.running.handle.cache_pages(true);
    let (status, _) = sim.get(&users, "not-a-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
