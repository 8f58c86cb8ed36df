//! Helpers shared by the simulator's integration tests: a simulator on 127.0.0.1 port 0, a
//! reqwest client, tokens, and firms of exact sizes.
#![allow(dead_code)]

use imanage_sim::firm::{Firm, SimDatabase, SimGroup, SimUser, Truth};
use imanage_sim::{RunningSim, Sim, SimConfig};
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

pub struct TestSim {
    pub running: RunningSim,
    pub http: reqwest::Client,
    pub base: String,
}

pub async fn start(config: SimConfig) -> TestSim {
    wrap(Sim::new(config)).await
}

pub async fn start_firm(config: SimConfig, firm: Firm) -> TestSim {
    wrap(Sim::from_firm(config, firm)).await
}

async fn wrap(sim: Sim) -> TestSim {
    let running = sim.spawn("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let base = running.base_url();
    TestSim {
        running,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("reqwest client"),
        base,
    }
}

/// A small firm for API tests: seed 7, 3 databases, 300 people.
pub fn small_config() -> SimConfig {
    let mut c = SimConfig::default();
    c.firm.seed = 7;
    c.firm.databases = 3;
    c.firm.people = 300;
    c
}

impl TestSim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn api(&self, customer: &str, rest: &str) -> String {
        self.url(&format!("/api/v1/customers/{customer}{rest}"))
    }

    /// A client-credentials token for the default client with the given scope (all when None).
    pub async fn token(&self, scope: Option<&str>) -> String {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", "idgraph"),
            ("client_secret", "idgraph-secret"),
        ];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        let resp = self
            .http
            .post(self.url("/auth/oauth2/token"))
            .form(&form)
            .send()
            .await
            .expect("token request");
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.expect("token json");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    pub async fn get(&self, url: &str, token: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("GET");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    /// Every item of a paged list, page by page.
    pub async fn all_pages(&self, url: &str, token: &str, page: usize) -> Vec<Value> {
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let sep = if url.contains('?') { '&' } else { '?' };
            let (status, body) = self
                .get(
                    &format!("{url}{sep}start_index={start}&max_results={page}"),
                    token,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let data = body["data"].as_array().expect("data").clone();
            let total = body["total_results"].as_u64().expect("total") as usize;
            let n = data.len();
            out.extend(data);
            start += n;
            if n == 0 || start >= total {
                break;
            }
        }
        out
    }
}

/// The error envelope `{"error": {"code", "message"}}` with the given code.
pub fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

pub fn user(i: usize) -> SimUser {
    SimUser {
        id: format!("usr_{i:06}"),
        login_name: format!("user{i}"),
        email: Some(format!("user{i}@acme.com")),
        first_name: "Test".into(),
        last_name: format!("User{i}"),
        display_name: Some(format!("Test User{i}")),
        active: true,
        user_type: "full".into(),
        default_database: None,
        phone: None,
        department: None,
        title: None,
        created_date: "2020-01-01T00:00:00Z".into(),
    }
}

/// A firm of one database per entry `(customer_id, users, members of its one group)`.
pub fn exact_firm(dbs: &[(&str, usize, usize)]) -> Firm {
    let mut truth = Truth::default();
    let databases = dbs
        .iter()
        .map(|&(customer, users, members)| {
            let users: BTreeMap<String, SimUser> = (0..users)
                .map(|i| {
                    let u = user(i);
                    truth
                        .accounts
                        .insert(format!("{customer}/{}", u.id), format!("p{i}"));
                    (u.id.clone(), u)
                })
                .collect();
            let group = SimGroup {
                id: "grp_000001".into(),
                name: "Everyone".into(),
                members: users.keys().take(members).cloned().collect::<BTreeSet<_>>(),
            };
            truth.databases.push(customer.to_string());
            SimDatabase {
                customer_id: customer.to_string(),
                users,
                groups: BTreeMap::from([(group.id.clone(), group)]),
                workspaces: BTreeMap::new(),
            }
        })
        .collect();
    Firm { databases, truth }
}
