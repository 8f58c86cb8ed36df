//! The v2 shape (`idgraph sim --api v2`): discovery, libraries, v2 fields and paging, the token
//! header, the error envelope, and the gate's faults, outages and drift.

mod common;

use common::{small_config, start, TestSim};
use imanage_sim::{ApiProfile, SimConfig, V2_CUSTOMER_ID};
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::BTreeMap;

fn v2_config() -> SimConfig {
    SimConfig {
        api: ApiProfile::V2,
        ..small_config()
    }
}

fn lib_url(sim: &TestSim, lib: &str, rest: &str) -> String {
    sim.url(&format!(
        "/work/api/v2/customers/{V2_CUSTOMER_ID}/libraries/{lib}{rest}"
    ))
}

/// GET with the v2 token header.
async fn get(sim: &TestSim, url: &str, token: &str) -> (StatusCode, Value) {
    let resp = sim
        .http
        .get(url)
        .header("X-Auth-Token", token)
        .send()
        .await
        .expect("GET");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Every item of a v2 list, with `offset`, `limit` and `total=true`.
async fn all(sim: &TestSim, url: &str, token: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let sep = if url.contains('?') { '&' } else { '?' };
        let (status, body) = get(
            sim,
            &format!("{url}{sep}offset={}&limit={limit}&total=true", out.len()),
            token,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let data = body["data"].as_array().expect("data").clone();
        let total = body["total_count"].as_u64().expect("total_count") as usize;
        let n = data.len();
        out.extend(data);
        if n == 0 || out.len() >= total {
            return out;
        }
    }
}

/// The v2 error envelope with the given code.
fn assert_v2_error(body: &Value, code: &str) {
    let e = &body["error"];
    assert_eq!(e["code"], code, "{body}");
    assert!(e["code_message"].is_string(), "{body}");
    let messages = e["messages"].as_array().expect("messages");
    assert!(
        !messages.is_empty() && messages.iter().all(Value::is_string),
        "{body}"
    );
    assert!(e.get("message").is_none(), "no v1 field: {body}");
}

#[tokio::test]
async fn discovery_names_the_customer_and_every_library() {
    let sim = start(v2_config()).await;
    let token = sim.token(Some("user")).await;
    let (status, body) = get(&sim, &sim.url("/api"), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let data = &body["data"];
    assert_eq!(data["user"]["customer_id"], 1);
    assert_eq!(data["user"]["id"], "idgraph");
    assert!(data["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .any(|v| v["name"] == "v2"));
    let libraries: Vec<&str> = data["work"]["libraries"]
        .as_array()
        .expect("libraries")
        .iter()
        .map(|l| l["alias"].as_str().expect("alias"))
        .collect();
    let expected = sim.running.handle.databases();
    assert_eq!(libraries, expected);
    assert_eq!(data["work"]["preferred_library"], expected[0].as_str());
    // Discovery needs a token like every other call.
    let (status, body) = get(&sim, &sim.url("/api"), "bogus").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_v2_error(&body, "UNAUTHORIZED");
    assert_eq!(sim.running.handle.stats().calls["discovery"], 2);
}

/// Each v2 user carries everything the v1 user object does, under the documented names.
#[tokio::test]
async fn users_groups_and_members_carry_everything_v1_does() {
    let sim = start(v2_config()).await;
    let token = sim.token(None).await;
    for db in sim.running.handle.snapshot() {
        let lib = &db.customer_id;
        let users = all(&sim, &lib_url(&sim, lib, "/users"), &token, 37).await;
        assert_eq!(users.len(), db.users.len(), "{lib}");
        let mut groups_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for g in db.groups.values() {
            for m in &g.members {
                groups_of.entry(m).or_default().push(&g.id);
            }
        }
        for (v, (id, u)) in users.iter().zip(&db.users) {
            assert_eq!(v["id"], id.as_str());
            assert_eq!(v["user_id_ex"], u.login_name.as_str());
            assert_eq!(v["full_name"], serde_json::json!(u.display_name));
            assert_eq!(v["first_name"], u.first_name.as_str());
            assert_eq!(v["last_name"], u.last_name.as_str());
            assert_eq!(v["email"], serde_json::json!(u.email));
            assert_eq!(v["allow_logon"], u.active);
            assert_eq!(v["is_external"], u.user_type == "external");
            assert_eq!(
                v["preferred_library"],
                serde_json::json!(u.default_database)
            );
            assert_eq!(v["phone"], serde_json::json!(u.phone));
            assert_eq!(v["department"], serde_json::json!(u.department));
            assert_eq!(v["title"], serde_json::json!(u.title));
            assert_eq!(v["create_date"], u.created_date.as_str());
            assert!(v["edit_date"].is_string());
            assert!(v["user_num"].is_u64());
            let groups: Vec<&str> = groups_of.get(id.as_str()).cloned().unwrap_or_default();
            assert_eq!(v["groups"], serde_json::json!(groups));
            assert!(v.get("login_name").is_none() && v.get("active").is_none());
        }
        let groups = all(&sim, &lib_url(&sim, lib, "/groups"), &token, 1000).await;
        assert_eq!(groups.len(), db.groups.len());
        for (v, g) in groups.iter().zip(db.groups.values()) {
            assert_eq!(v["id"], g.id.as_str());
            assert_eq!(v["full_name"], g.name.as_str());
            assert_eq!(v["enabled"], true);
            assert_eq!(v["member_count"], g.members.len());
            assert!(v["is_external"].is_boolean());
        }
        let g = db
            .groups
            .values()
            .max_by_key(|g| g.members.len())
            .expect("a group");
        let members = all(
            &sim,
            &lib_url(&sim, lib, &format!("/groups/{}/members", g.id)),
            &token,
            10,
        )
        .await;
        let ids: Vec<&str> = members
            .iter()
            .map(|m| m["id"].as_str().expect("id"))
            .collect();
        let expected: Vec<&str> = g.members.iter().map(String::as_str).collect();
        assert_eq!(ids, expected);
        // Single objects.
        let (id, _) = db.users.iter().next().expect("a user");
        let (status, body) = get(&sim, &lib_url(&sim, lib, &format!("/users/{id}")), &token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["data"]["id"], id.as_str());
        let (status, body) = get(
            &sim,
            &lib_url(&sim, lib, &format!("/groups/{}", g.id)),
            &token,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["data"]["full_name"], g.name.as_str());
    }
}

#[tokio::test]
async fn workspaces_and_security_in_the_v2_shape() {
    let sim = start(v2_config()).await;
    let token = sim.token(None).await;
    for db in sim.running.handle.snapshot() {
        let lib = &db.customer_id;
        let listed = all(&sim, &lib_url(&sim, lib, "/workspaces"), &token, 3).await;
        assert_eq!(listed.len(), db.workspaces.len());
        for (v, ws) in listed.iter().zip(db.workspaces.values()) {
            assert_eq!(v["id"], ws.id.as_str());
            assert_eq!(v["name"], ws.name.as_str());
            assert_eq!(v["default_security"], ws.default_security.as_str());
            assert_eq!(v["database"], lib.as_str());
            let (status, body) = get(
                &sim,
                &lib_url(&sim, lib, &format!("/workspaces/{}/security", ws.id)),
                &token,
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                body["data"]["default_security"],
                ws.default_security.as_str()
            );
            let members = body["data"]["members"].as_array().expect("members");
            assert_eq!(members.len(), ws.security.len());
            for (m, e) in members.iter().zip(&ws.security) {
                assert_eq!(m["id"], e.id.as_str());
                assert_eq!(m["is_group"], e.is_group);
                assert_eq!(m["access"], e.access.as_str());
            }
        }
        let ws = db.workspaces.values().next().expect("a workspace");
        let (status, body) = get(
            &sim,
            &lib_url(&sim, lib, &format!("/workspaces/{}", ws.id)),
            &token,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["data"]["id"], ws.id.as_str());
    }
}

#[tokio::test]
async fn paging_is_offset_limit_and_total_on_request() {
    let sim = start(v2_config()).await;
    let token = sim.token(None).await;
    let lib = sim.running.handle.databases()[0].clone();
    let n = sim.running.handle.snapshot()[0].users.len();
    let url = lib_url(&sim, &lib, "/users");
    // Without total=true there is no count; the default page is 100.
    let (status, body) = get(&sim, &url, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("total_count").is_none(), "{}", body["total_count"]);
    assert_eq!(body["data"].as_array().expect("data").len(), n.min(100));
    let (_, body) = get(&sim, &format!("{url}?total=true&limit=0"), &token).await;
    assert_eq!(body["total_count"], n);
    assert_eq!(body["data"], serde_json::json!([]));
    let (_, body) = get(
        &sim,
        &format!("{url}?offset={n}&limit=5&total=true"),
        &token,
    )
    .await;
    assert_eq!(body["data"], serde_json::json!([]));
    let (_, body) = get(&sim, &format!("{url}?limit=5000&total=1"), &token).await;
    assert_eq!(body["data"].as_array().expect("data").len(), n.min(1000));
    for bad in ["offset=-1", "limit=x", "total=maybe", "offset="] {
        let (status, body) = get(&sim, &format!("{url}?{bad}"), &token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_v2_error(&body, "BAD_REQUEST");
    }
}

#[tokio::test]
async fn tokens_go_in_x_auth_token_or_a_bearer_header() {
    let sim = start(v2_config()).await;
    let token = sim.token(None).await;
    let lib = sim.running.handle.databases()[0].clone();
    let url = lib_url(&sim, &lib, "/groups");
    let (status, _) = get(&sim, &url, &token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = sim.get(&url, &token).await;
    assert_eq!(status, StatusCode::OK, "Authorization: Bearer works too");
    let resp = sim.http.get(&url).send().await.expect("GET");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.expect("json");
    assert_v2_error(&body, "UNAUTHORIZED");
    // v1 does not read X-Auth-Token.
    let v1 = start(small_config()).await;
    let v1_token = v1.token(None).await;
    let url = v1.api(&v1.running.handle.databases()[0], "/groups");
    let (status, _) = get(&v1, &url, &v1_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// v2 tokens lapse after a time without use, not at a fixed time.
#[tokio::test]
async fn v2_tokens_lapse_only_when_idle() {
    let sim = start(SimConfig {
        token_ttl_s: 1,
        ..v2_config()
    })
    .await;
    let token = sim.token(None).await;
    let url = sim.url("/api");
    // Used every 400 ms for 2 s: longer than the lifetime, never idle for it.
    for _ in 0..5 {
        let (status, body) = get(&sim, &url, &token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let (status, body) = get(&sim, &url, &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"]["messages"][0]
        .as_str()
        .expect("message")
        .contains("expired"));
}

#[tokio::test]
async fn errors_use_the_v2_envelope_and_v1_paths_are_gone() {
    let sim = start(v2_config()).await;
    let token = sim.token(Some("user")).await;
    let lib = sim.running.handle.databases()[0].clone();
    for (url, code) in [
        (lib_url(&sim, "nope", "/users"), "NOT_FOUND"),
        (lib_url(&sim, &lib, "/users/usr_nobody"), "NOT_FOUND"),
        (
            lib_url(&sim, &lib, "/groups/grp_nobody/members"),
            "NOT_FOUND",
        ),
        (lib_url(&sim, &lib, "/workspaces/x!1/security"), "NOT_FOUND"),
        (
            sim.url(&format!("/work/api/v2/customers/999/libraries/{lib}/users")),
            "NOT_FOUND",
        ),
        (sim.api(&lib, "/users"), "NOT_FOUND"),
        (sim.url("/nothing/here"), "NOT_FOUND"),
    ] {
        let (status, body) = get(&sim, &url, &token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}: {body}");
        assert_v2_error(&body, code);
    }
    // The shape is read-only: writes are not routed.
    let resp = sim
        .http
        .post(lib_url(&sim, &lib, "/users"))
        .header("X-Auth-Token", &token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_v2_error(&resp.json().await.expect("json"), "BAD_REQUEST");
    // The token endpoint keeps RFC 6749's error shape.
    let resp = sim
        .http
        .post(sim.url("/auth/oauth2/token"))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.expect("json");
    assert!(body["error"].is_string(), "{body}");
}

#[tokio::test]
async fn faults_outages_and_drift_apply_to_v2() {
    let sim = start(SimConfig {
        fault_rate: 1.0,
        ..v2_config()
    })
    .await;
    let token = sim.token(None).await;
    let lib = sim.running.handle.databases()[0].clone();
    let url = lib_url(&sim, &lib, "/users");
    for _ in 0..10 {
        let (status, body) = get(&sim, &url, &token).await;
        assert!(
            [429, 502, 503, 504].contains(&status.as_u16()),
            "{status}: {body}"
        );
        let code = body["error"]["code"].as_str().expect("code");
        assert!(
            ["RATE_LIMITED", "SERVICE_UNAVAILABLE"].contains(&code),
            "{body}"
        );
    }
    sim.running.handle.set_faults(0.0, 0);

    sim.running.handle.set_database_down(&lib, true);
    let (status, body) = get(&sim, &url, &token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_v2_error(&body, "SERVICE_UNAVAILABLE");
    let other = sim.running.handle.databases()[1].clone();
    let (status, _) = get(&sim, &lib_url(&sim, &other, "/users"), &token).await;
    assert_eq!(status, StatusCode::OK);
    sim.running.handle.set_database_down(&lib, false);

    let before = sim.running.handle.snapshot()[0].users.len();
    sim.running.handle.set_drift(3);
    let (status, _) = get(&sim, &format!("{url}?total=true"), &token).await;
    assert_eq!(status, StatusCode::OK);
    let stats = sim.running.handle.stats();
    assert_eq!(stats.drift_added + stats.drift_removed, 3);
    let after = sim.running.handle.snapshot()[0].users.len();
    assert_ne!(before, after);
}

#[tokio::test]
async fn the_user_scope_reads_everything() {
    let sim = start(v2_config()).await;
    let lib = sim.running.handle.databases()[0].clone();
    let reader = sim.token(Some("user")).await;
    for rest in ["/users", "/groups", "/workspaces"] {
        let (status, body) = get(&sim, &lib_url(&sim, &lib, rest), &reader).await;
        assert_eq!(status, StatusCode::OK, "{rest}: {body}");
    }
}
