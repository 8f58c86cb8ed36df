//! Every query of the contract against the simulator's ground truth and the graph the API
//! serves, over a firm committed to a real SQLite store.

mod support;

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use support::{data, first_code, post, Fixture, ADMIN, READER};

type Key = (String, String);

fn account_keys(accounts: &Value) -> BTreeSet<Key> {
    accounts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["database"].as_str().unwrap().to_string(),
                a["userId"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const PERSON_BY_LOGIN: &str = "query($login: String!) { person(login: $login) { id \
    accounts { database userId loginName active groups { database groupId } person { id } } } }";

#[tokio::test]
async fn person_by_login_matches_truth_and_sim_memberships() {
    let f = Fixture::loaded().await;
    let router = api::router(f.state.clone());
    let graph = f.state.current().unwrap();
    let people = f.truth_people();
    let shared: HashSet<&str> = f
        .firm
        .truth
        .mess
        .shared_logins
        .keys()
        .map(String::as_str)
        .collect();

    let (mut exact, mut ambiguous, mut differ) = (0, 0, Vec::new());
    for (person_key, accounts) in &people {
        let (db, user) = accounts.iter().next().unwrap();
        let login = f.database(db).users[user].login_name.clone();
        let (status, body) = post(
            &router,
            Some(READER),
            PERSON_BY_LOGIN,
            json!({"login": login}),
        )
        .await;
        assert_eq!(status, 200);

        // The API says exactly what the graph says.
        let in_graph = graph.person_by_login(&login);
        if in_graph.len() > 1 {
            assert_eq!(first_code(&body), "BAD_USER_INPUT", "{body}");
            let candidates: BTreeSet<&str> = body["errors"][0]["extensions"]["candidates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            let expected: BTreeSet<&str> = in_graph.iter().map(|p| p.id()).collect();
            assert_eq!(candidates, expected);
            ambiguous += 1;
            continue;
        }
        assert!(body.get("errors").is_none(), "{body}");
        let person = &body["data"]["person"];
        assert_eq!(person["id"].as_str().unwrap(), in_graph[0].id());
        let got = account_keys(&person["accounts"]);
        let graph_accounts: BTreeSet<Key> = in_graph[0]
            .accounts()
            .map(|a| (a.database().to_string(), a.user_id().to_string()))
            .collect();
        assert_eq!(got, graph_accounts);

        // Every account's groups are the simulator's memberships, and it points back.
        for a in person["accounts"].as_array().unwrap() {
            let (db, user) = (
                a["database"].as_str().unwrap(),
                a["userId"].as_str().unwrap(),
            );
            let groups: BTreeSet<String> = a["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| {
                    assert_eq!(g["database"], json!(db));
                    g["groupId"].as_str().unwrap().to_string()
                })
                .collect();
            assert_eq!(groups, f.groups_of(db, user), "groups of {db}/{user}");
            assert_eq!(a["person"]["id"], person["id"]);
        }

        // And, where the login is not one of the firm's known shared ones, the truth.
        if got == *accounts {
            exact += 1;
        } else if !shared.contains(login.to_lowercase().as_str()) {
            differ.push(person_key.clone());
        }
    }
    println!(
        "{} people: {exact} exactly as the truth, {ambiguous} ambiguous logins, {} differ",
        people.len(),
        differ.len()
    );
    // The resolver's own accuracy is tested in the graph crate; here the API must serve a
    // graph that agrees with the truth for nearly everyone.
    assert!(
        differ.len() * 100 <= people.len(),
        "more than 1% of people differ from the truth: {differ:?}"
    );
    assert!(exact * 100 >= people.len() * 95);
}

#[tokio::test]
async fn person_by_email_and_by_id() {
    let f = Fixture::loaded().await;
    let router = api::router(f.state.clone());
    let graph = f.state.current().unwrap();
    let mut checked = 0;
    for p in graph.persons().take(60) {
        let d = data(
            &router,
            "query($id: ID!) { person(id: $id) { id displayName emails logins accounts { email } } }",
            json!({"id": p.id()}),
        )
        .await;
        let person = &d["person"];
        assert_eq!(person["id"], json!(p.id()));
        let emails: Vec<&str> = person["emails"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert_eq!(emails, p.emails());
        let logins: Vec<&str> = person["logins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert_eq!(logins, p.logins());
        let Some(email) = person["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|a| a["email"].as_str())
        else {
            continue;
        };
        // Looking up by the raw (unnormalized) email finds the same person, unless the email is
        // a shared mailbox.
        let (_, body) = post(
            &router,
            Some(READER),
            "query($e: String!) { person(email: $e) { id } }",
            json!({"e": email.to_uppercase()}),
        )
        .await;
        if graph.person_by_email(email).len() == 1 {
            assert_eq!(body["data"]["person"]["id"], json!(p.id()), "{body}");
            checked += 1;
        } else {
            assert_eq!(first_code(&body), "BAD_USER_INPUT");
        }
    }
    assert!(checked > 30);

    let d = data(
        &router,
        r#"{ a: person(login: "nobody-here-xyz") { id } b: person(id: "no-such-id") { id } c: person(email: "nobody@nowhere.example") { id } }"#,
        json!({}),
    )
    .await;
    assert_eq!(d, json!({"a": null, "b": null, "c": null}));
}

#[tokio::test]
async fn persons_pagination_visits_everyone_once() {
    let f = Fixture::loaded().await;
    let router = api::router(f.state.clone());
    let graph = f.state.current().unwrap();
    let mut seen = Vec::new();
    let mut accounts = BTreeSet::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let d = data(
            &router,
            "query($after: String) { persons(first: 37, after: $after) { totalCount \
             edges { cursor node { id accounts { database userId } } } \
             pageInfo { hasNextPage hasPreviousPage endCursor } } }",
            json!({"after": after}),
        )
        .await;
        let conn = &d["persons"];
        assert_eq!(
            conn["totalCount"].as_u64().unwrap() as usize,
            graph.persons().len()
        );
        assert_eq!(conn["pageInfo"]["hasPreviousPage"], json!(after.is_some()));
        let edges = conn["edges"].as_array().unwrap();
        assert!(edges.len() <= 37);
        for e in edges {
            seen.push(e["node"]["id"].as_str().unwrap().to_string());
            for k in account_keys(&e["node"]["accounts"]) {
                assert!(accounts.insert(k), "an account in two persons");
            }
        }
        pages += 1;
        if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = Some(conn["pageInfo"]["endCursor"].as_str().unwrap().to_string());
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no person twice");
    assert_eq!(seen.len(), graph.persons().len(), "every person once");
    let expected: Vec<&str> = graph.persons().map(|p| p.id()).collect();
    assert_eq!(seen, expected, "in the graph's order");
    let total_users: usize = f.firm.databases.iter().map(|d| d.users.len()).sum();
    assert_eq!(
        accounts.len(),
        total_users,
        "every account in exactly one person"
    );
    assert!(pages > 2);

    // The default page is 50; `first: 0` answers only the count.
    let d = data(&router, "{ persons { edges { cursor } } none: persons(first: 0) { totalCount edges { cursor } pageInfo { hasNextPage } } }", json!({})).await;
    assert_eq!(
        d["persons"]["edges"].as_array().unwrap().len(),
        50.min(seen.len())
    );
    assert_eq!(d["none"]["edges"], json!([]));
    assert_eq!(d["none"]["pageInfo"]["hasNextPage"], json!(true));
}

#[tokio::test]
async fn persons_filters() {
    let f = Fixture::loaded().await;
    let router = api::router(f.state.clone());
    let all = |filter: Value| {
        let router = router.clone();
        async move {
            let d = data(
                &router,
                "query($f: PersonFilter) { persons(filter: $f, first: 500) { totalCount edges { node { id \
                 displayName active conflicts { kind } \
                 accounts { database userId active loginName email firstName lastName displayName groups { groupId } } } } } }",
                json!({"f": filter}),
            )
            .await;
            let conn = d["persons"].clone();
            assert_eq!(
                conn["totalCount"].as_u64().unwrap() as usize,
                conn["edges"].as_array().unwrap().len(),
                "one page holds the small firm"
            );
            conn["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"].clone())
                .collect::<Vec<Value>>()
        }
    };

    let everyone = all(json!(null)).await;
    let db = f.firm.databases[1].customer_id.clone();

    // database: exactly the persons with an account there.
    let in_db = all(json!({"database": db})).await;
    let expected: BTreeSet<&str> = everyone
        .iter()
        .filter(|p| {
            p["accounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["database"] == json!(db))
        })
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    let got: BTreeSet<&str> = in_db.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(got, expected);
    assert!(!got.is_empty() && got.len() < everyone.len());

    // database + groupId: exactly the persons of the group's members.
    let group = f.firm.databases[1]
        .groups
        .values()
        .find(|g| g.members.len() >= 3)
        .unwrap();
    let in_group = all(json!({"database": db, "groupId": group.id})).await;
    let members: BTreeSet<&str> = in_group
        .iter()
        .flat_map(|p| p["accounts"].as_array().unwrap().iter())
        .filter(|a| {
            a["database"] == json!(db) && group.members.contains(a["userId"].as_str().unwrap())
        })
        .map(|a| a["userId"].as_str().unwrap())
        .collect();
    assert_eq!(members.len(), group.members.len());
    for p in &in_group {
        assert!(p["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["database"] == json!(db)
                && group.members.contains(a["userId"].as_str().unwrap())));
    }

    // database + groupId + active: `active` within the database, as for `database` alone, for a
    // group with members of both kinds (the graph answers this from the member accounts).
    let mixed = f.firm.databases[1]
        .groups
        .values()
        .find(|g| {
            let users = &f.firm.databases[1].users;
            let active = g
                .members
                .iter()
                .filter(|m| users[m.as_str()].active)
                .count();
            active >= 2 && active < g.members.len()
        })
        .expect("a group with active and deactivated members");
    let in_mixed = all(json!({"database": db, "groupId": mixed.id})).await;
    let active_here = |p: &Value| {
        p["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["database"] == json!(db) && a["active"] == json!(true))
    };
    let ids = |persons: &[Value]| -> BTreeSet<String> {
        persons
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    };
    for active in [true, false] {
        let got = all(json!({"database": db, "groupId": mixed.id, "active": active})).await;
        let expected: Vec<Value> = in_mixed
            .iter()
            .filter(|p| active_here(p) == active)
            .cloned()
            .collect();
        assert!(!expected.is_empty(), "active: {active}");
        assert_eq!(ids(&got), ids(&expected), "active: {active}");
        // Ordered by id, as every listing is.
        let order: Vec<&str> = got.iter().map(|p| p["id"].as_str().unwrap()).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "active: {active}");
    }

    // active: false means active nowhere; true, active somewhere.
    let inactive = all(json!({"active": false})).await;
    assert!(!inactive.is_empty(), "the firm has leavers everywhere");
    for p in &inactive {
        assert_eq!(p["active"], json!(false));
        assert!(p["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["active"] == json!(false)));
    }
    let active = all(json!({"active": true})).await;
    assert_eq!(active.len() + inactive.len(), everyone.len());
    for p in &active {
        assert!(p["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["active"] == json!(true)));
    }

    // hasConflicts.
    let conflicted = all(json!({"hasConflicts": true})).await;
    for p in &conflicted {
        assert!(!p["conflicts"].as_array().unwrap().is_empty());
    }
    let calm = all(json!({"hasConflicts": false})).await;
    assert_eq!(conflicted.len() + calm.len(), everyone.len());
    for p in &calm {
        assert!(p["conflicts"].as_array().unwrap().is_empty());
    }

    // search: a case-insensitive substring of a name, login or email.
    let sample = &f.firm.databases[0]
        .users
        .values()
        .map(|u| &u.last_name)
        .find(|n| n.len() >= 5 && n.is_ascii())
        .unwrap();
    let needle = sample.to_uppercase();
    let found = all(json!({"search": needle})).await;
    assert!(!found.is_empty());
    let lower = sample.to_lowercase();
    for p in &found {
        let hay =
            p["accounts"].to_string().to_lowercase() + &p["displayName"].to_string().to_lowercase();
        assert!(hay.contains(&lower), "{p} does not contain {lower}");
    }

    // Combined: every condition holds, `active` applying within the database.
    let both = all(json!({"database": db, "active": false})).await;
    assert!(
        both.len()
            >= inactive
                .iter()
                .filter(|p| in_db.iter().any(|q| q["id"] == p["id"]))
                .count()
    );
    for p in &both {
        assert!(in_db.iter().any(|q| q["id"] == p["id"]));
        let here: Vec<&Value> = p["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["database"] == json!(db))
            .collect();
        assert!(!here.is_empty() && here.iter().all(|a| a["active"] == json!(false)));
    }
}

#[tokio::test]
async fn databases_groups_and_who_can_reach_match_the_sim() {
    let f = Fixture::loaded().await;
    let router = api::router(f.state.clone());

    let d = data(
        &router,
        "{ databases { id accountCount groupCount lastHarvestedAt complete lastError } }",
        json!({}),
    )
    .await;
    let dbs = d["databases"].as_array().unwrap();
    let mut ids: Vec<&str> = f
        .firm
        .databases
        .iter()
        .map(|d| d.customer_id.as_str())
        .collect();
    ids.sort();
    assert_eq!(
        dbs.iter()
            .map(|d| d["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ids
    );
    for db in dbs {
        let sim = f.database(db["id"].as_str().unwrap());
        assert_eq!(db["accountCount"], json!(sim.users.len()));
        assert_eq!(db["groupCount"], json!(sim.groups.len()));
        assert_eq!(db["complete"], json!(true));
        assert_eq!(db["lastError"], json!(null));
        chrono::DateTime::parse_from_rfc3339(db["lastHarvestedAt"].as_str().unwrap()).unwrap();
    }

    let sim = &f.firm.databases[2];
    for group in sim.groups.values().take(25) {
        let vars = json!({"db": sim.customer_id, "g": group.id});
        let d = data(
            &router,
            "query($db: String!, $g: String!) { group(database: $db, groupId: $g) { database groupId name memberCount members { database userId } } \
             whoCanReach(database: $db, groupId: $g) { database access path account { database userId } group { groupId } workspace { workspaceId } } }",
            vars,
        )
        .await;
        let g = &d["group"];
        assert_eq!(g["name"], json!(group.name));
        assert_eq!(g["memberCount"], json!(group.members.len()));
        let members: BTreeSet<String> = account_keys(&g["members"])
            .into_iter()
            .map(|(db, u)| {
                assert_eq!(db, sim.customer_id);
                u
            })
            .collect();
        assert_eq!(members, group.members);
        let reach = d["whoCanReach"].as_array().unwrap();
        let reaching: BTreeSet<String> = reach
            .iter()
            .map(|gr| {
                assert_eq!(gr["access"], json!("member"));
                assert_eq!(gr["database"], json!(sim.customer_id));
                assert_eq!(gr["group"]["groupId"], json!(group.id));
                assert_eq!(gr["workspace"], json!(null));
                assert_eq!(gr["path"].as_array().unwrap().len(), 2);
                gr["account"]["userId"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(reaching, group.members);
    }

    let d = data(
        &router,
        r#"query($db: String!) { group(database: $db, groupId: "no-such-group") { groupId } }"#,
        json!({"db": sim.customer_id}),
    )
    .await;
    assert_eq!(d["group"], json!(null));
    let (_, body) = post(
        &router,
        Some(READER),
        r#"query($db: String!) { whoCanReach(database: $db, groupId: "no-such-group") { access } }"#,
        json!({"db": sim.customer_id}),
    )
    .await;
    assert_eq!(first_code(&body), "NOT_FOUND");
    let (_, body) = post(
        &router,
        Some(READER),
        r#"{ whoCanReach(database: "x", groupId: "a", workspaceId: "b") { access } }"#,
        json!({}),
    )
    .await;
    assert_eq!(first_code(&body), "BAD_USER_INPUT");
}

#[tokio::test]
async fn reach_is_the_union_of_the_accounts_groups() {
    let f = Fixture::loaded().await;
    let router = api::router(f.state.clone());
    let graph = f.state.current().unwrap();
    let mut checked = 0;
    for p in graph
        .persons()
        .filter(|p| p.accounts().count() > 1)
        .take(40)
    {
        let d = data(
            &router,
            "query($id: ID!) { person(id: $id) { accounts { database userId groups { groupId } } \
             reach { database access path account { userId } group { database groupId } } evidence { key value accounts { userId } } } }",
            json!({"id": p.id()}),
        )
        .await;
        let person = &d["person"];
        let mut expected = BTreeSet::new();
        for a in person["accounts"].as_array().unwrap() {
            for g in a["groups"].as_array().unwrap() {
                expected.insert((
                    a["database"].as_str().unwrap().to_string(),
                    a["userId"].as_str().unwrap().to_string(),
                    g["groupId"].as_str().unwrap().to_string(),
                ));
            }
        }
        let got: BTreeSet<(String, String, String)> = person["reach"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["access"] == json!("member"))
            .map(|g| {
                let path = g["path"].as_array().unwrap();
                assert!(path[0].as_str().unwrap().starts_with("account:"));
                (
                    g["group"]["database"].as_str().unwrap().to_string(),
                    g["account"]["userId"].as_str().unwrap().to_string(),
                    g["group"]["groupId"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(got, expected);
        // Linked accounts carry their evidence.
        let evidence = person["evidence"].as_array().unwrap();
        assert!(!evidence.is_empty(), "{person}");
        for e in evidence {
            assert!(["LOGIN_NAME", "EMAIL", "OVERRIDE"].contains(&e["key"].as_str().unwrap()));
            assert!(e["accounts"].as_array().unwrap().len() >= 2);
        }
        checked += 1;
    }
    assert!(checked >= 20);
}

#[tokio::test]
async fn anomalies_by_kind_and_page() {
    let f = Fixture::loaded().await;
    let router = api::router(f.state.clone());
    let mut total = 0;
    for kind in [
        "PARTLY_ACTIVE",
        "NO_EMAIL",
        "CONFLICT",
        "EXTERNAL_IN_INTERNAL_GROUP",
    ] {
        let mut after: Option<String> = None;
        let mut seen = 0;
        let mut count: Option<u64>;
        loop {
            let d = data(
                &router,
                "query($k: AnomalyKind, $after: String) { anomalies(kind: $k, first: 7, after: $after) { totalCount \
                 edges { cursor node { kind detail person { id } accounts { email active external } group { groupId } } } \
                 pageInfo { hasNextPage endCursor } } }",
                json!({"k": kind, "after": after}),
            )
            .await;
            let conn = &d["anomalies"];
            count = Some(conn["totalCount"].as_u64().unwrap());
            for e in conn["edges"].as_array().unwrap() {
                let node = &e["node"];
                assert_eq!(node["kind"], json!(kind));
                assert!(!node["detail"].as_str().unwrap().is_empty());
                let accounts = node["accounts"].as_array().unwrap();
                match kind {
                    "NO_EMAIL" => assert!(accounts.iter().all(|a| a["email"].is_null())),
                    "PARTLY_ACTIVE" => {
                        assert!(accounts.iter().any(|a| a["active"] == json!(true)));
                        assert!(accounts.iter().any(|a| a["active"] == json!(false)));
                    }
                    "EXTERNAL_IN_INTERNAL_GROUP" => {
                        assert!(accounts.iter().any(|a| a["external"] == json!(true)));
                        assert!(!node["group"].is_null());
                    }
                    _ => assert!(accounts.len() >= 2, "{node}"),
                }
                seen += 1;
            }
            if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
                break;
            }
            after = conn["pageInfo"]["endCursor"].as_str().map(str::to_string);
        }
        assert_eq!(Some(seen), count, "{kind}");
        println!("{kind}: {seen}");
        total += seen;
    }
    let d = data(&router, "{ anomalies(first: 0) { totalCount } }", json!({})).await;
    assert_eq!(d["anomalies"]["totalCount"], json!(total));
    // The firm's mess produces every kind but possibly conflicts.
    assert!(total > 0);
}

#[tokio::test]
async fn changes_after_a_second_harvest() {
    let f = Fixture::loaded().await;
    let router = api::router(f.state.clone());

    // The first harvest is the baseline: no change rows.
    let d = data(
        &router,
        "{ changes { edges { cursor } pageInfo { hasNextPage } } }",
        json!({}),
    )
    .await;
    assert_eq!(d["changes"]["edges"], json!([]));

    // Deactivate one active user, change another's email, drop a membership.
    let mut databases = f.firm.databases.clone();
    let db = &mut databases[0];
    let db_id = db.customer_id.clone();
    let leaver = db.users.values().find(|u| u.active).unwrap().id.clone();
    db.users.get_mut(&leaver).unwrap().active = false;
    let mover = db.users.keys().next_back().unwrap().clone();
    db.users.get_mut(&mover).unwrap().email = Some("moved.person@acme.com".into());
    let group = db
        .groups
        .values_mut()
        .find(|g| !g.members.is_empty())
        .unwrap();
    let dropped = group.members.iter().next().unwrap().clone();
    group.members.remove(&dropped);
    let group_id = group.id.clone();
    support::commit_all(&f.store, &databases).await;
    api::reload(&f.state).await.unwrap();

    let page = "query($f: ChangeFilter, $first: Int, $after: String) { changes(filter: $f, first: $first, after: $after) { \
        edges { cursor node { id at database kind userId groupId field oldValue newValue account { userId active } } } \
        pageInfo { hasNextPage endCursor } } }";
    let all = data(
        &router,
        page,
        json!({"f": {"database": db_id}, "first": 500}),
    )
    .await;
    let edges = all["changes"]["edges"].as_array().unwrap().clone();
    let has = |kind: &str, user: &str| {
        edges
            .iter()
            .any(|e| e["node"]["kind"] == json!(kind) && e["node"]["userId"] == json!(user))
    };
    assert!(has("ACCOUNT_DEACTIVATED", &leaver), "{edges:?}");
    assert!(has("ACCOUNT_CHANGED", &mover));
    assert!(edges
        .iter()
        .any(|e| e["node"]["kind"] == json!("MEMBERSHIP_REMOVED")
            && e["node"]["userId"] == json!(dropped)
            && e["node"]["groupId"] == json!(group_id)));
    let deactivated = edges
        .iter()
        .find(|e| e["node"]["kind"] == json!("ACCOUNT_DEACTIVATED"))
        .unwrap();
    assert_eq!(deactivated["node"]["account"]["active"], json!(false));
    chrono::DateTime::parse_from_rfc3339(deactivated["node"]["at"].as_str().unwrap()).unwrap();

    // Page by page, one at a time: the same entries, in the same order.
    let mut after: Option<String> = None;
    let mut walked = Vec::new();
    loop {
        let d = data(
            &router,
            page,
            json!({"f": {"database": db_id}, "first": 1, "after": after}),
        )
        .await;
        let conn = &d["changes"];
        for e in conn["edges"].as_array().unwrap() {
            walked.push(e["node"]["id"].clone());
        }
        if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = conn["pageInfo"]["endCursor"].as_str().map(str::to_string);
    }
    assert_eq!(
        walked,
        edges
            .iter()
            .map(|e| e["node"]["id"].clone())
            .collect::<Vec<_>>()
    );

    // By person: only changes of that person's accounts.
    let graph = f.state.current().unwrap();
    let person = graph.account(&db_id, &leaver).unwrap().person();
    let mine: BTreeSet<String> = person.accounts().map(|a| a.user_id().to_string()).collect();
    let d = data(
        &router,
        page,
        json!({"f": {"personId": person.id()}, "first": 500}),
    )
    .await;
    let by_person = d["changes"]["edges"].as_array().unwrap();
    assert!(!by_person.is_empty());
    for e in by_person {
        assert!(mine.contains(e["node"]["userId"].as_str().unwrap()), "{e}");
    }
    assert!(by_person
        .iter()
        .any(|e| e["node"]["kind"] == json!("ACCOUNT_DEACTIVATED")));

    // By kind, and by time.
    let d = data(
        &router,
        page,
        json!({"f": {"kinds": ["MEMBERSHIP_REMOVED"]}, "first": 500}),
    )
    .await;
    let kinds: BTreeSet<&str> = d["changes"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, BTreeSet::from(["MEMBERSHIP_REMOVED"]));
    let d = data(
        &router,
        page,
        json!({"f": {"since": "2999-01-01T00:00:00Z"}}),
    )
    .await;
    assert_eq!(d["changes"]["edges"], json!([]));
    let d = data(
        &router,
        page,
        json!({"f": {"until": "2000-01-01T00:00:00+01:00"}}),
    )
    .await;
    assert_eq!(d["changes"]["edges"], json!([]));
    let d = data(
        &router,
        page,
        json!({"f": {"since": "2000-01-01T00:00:00Z", "database": db_id}, "first": 500}),
    )
    .await;
    assert_eq!(d["changes"]["edges"].as_array().unwrap().len(), edges.len());

    let (_, body) = post(
        &router,
        Some(READER),
        page,
        json!({"f": {"personId": "no-such-person"}}),
    )
    .await;
    assert_eq!(first_code(&body), "NOT_FOUND");
}

const ADD: &str = "mutation($i: OverrideInput!) { addOverride(input: $i) { id kind reason createdBy createdAt \
    a { database userId account { person { id } } } b { database userId account { person { id } } } } }";

fn input(kind: &str, a: &Key, b: &Key, reason: &str) -> Value {
    json!({"i": {"kind": kind, "a": {"database": a.0, "userId": a.1}, "b": {"database": b.0, "userId": b.1}, "reason": reason}})
}

#[tokio::test]
async fn overrides_apply_at_once_and_are_validated() {
    let f = Fixture::loaded().await;
    let router = api::router(f.state.clone());
    let graph = f.state.current().unwrap();

    // Two linked accounts of one person: a cannot-link splits them in the answer itself.
    let person = graph.persons().find(|p| p.accounts().count() == 2).unwrap();
    let pair: Vec<Key> = person
        .accounts()
        .map(|a| (a.database().to_string(), a.user_id().to_string()))
        .collect();
    let d = data(
        &router,
        ADD,
        input(
            "CANNOT_LINK",
            &pair[0],
            &pair[1],
            "different people, checked with HR",
        ),
    )
    .await;
    let ov = &d["addOverride"];
    assert_eq!(ov["kind"], json!("CANNOT_LINK"));
    assert_eq!(ov["reason"], json!("different people, checked with HR"));
    assert!(ov["createdBy"].as_str().unwrap().starts_with("admin:"));
    assert!(!ov["createdBy"].as_str().unwrap().contains(ADMIN));
    assert_ne!(
        ov["a"]["account"]["person"]["id"], ov["b"]["account"]["person"]["id"],
        "{ov}"
    );
    let id = ov["id"].as_str().unwrap().to_string();

    // Every later request sees it too.
    let d = data(
        &router,
        "{ overrides { id kind a { userId } b { userId } } }",
        json!({}),
    )
    .await;
    assert!(d["overrides"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o["id"] == json!(id)));
    let split = f.state.current().unwrap();
    assert_ne!(
        split.account(&pair[0].0, &pair[0].1).unwrap().person().id(),
        split.account(&pair[1].0, &pair[1].1).unwrap().person().id()
    );

    // A must-link on the same pair contradicts it.
    let (_, body) = post(
        &router,
        Some(ADMIN),
        ADD,
        input("MUST_LINK", &pair[0], &pair[1], "same"),
    )
    .await;
    assert_eq!(first_code(&body), "BAD_USER_INPUT", "{body}");

    // Removing it links them again.
    let d = data(
        &router,
        "mutation($id: ID!) { removeOverride(id: $id) }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(d["removeOverride"], json!(true));
    let joined = f.state.current().unwrap();
    assert_eq!(
        joined
            .account(&pair[0].0, &pair[0].1)
            .unwrap()
            .person()
            .id(),
        joined
            .account(&pair[1].0, &pair[1].1)
            .unwrap()
            .person()
            .id()
    );
    let d = data(
        &router,
        "mutation($id: ID!) { removeOverride(id: $id) }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(d["removeOverride"], json!(false), "already removed");

    // A must-link joins two single-account persons of two different databases.
    let singles: Vec<Key> = joined
        .persons()
        .filter(|p| p.accounts().count() == 1)
        .filter_map(|p| p.accounts().next())
        .map(|a| (a.database().to_string(), a.user_id().to_string()))
        .collect();
    let a = singles[0].clone();
    let b_key = singles.iter().find(|k| k.0 != a.0).unwrap().clone();
    let d = data(
        &router,
        ADD,
        input("MUST_LINK", &a, &b_key, "same person after a name change"),
    )
    .await;
    assert_eq!(
        d["addOverride"]["a"]["account"]["person"]["id"],
        d["addOverride"]["b"]["account"]["person"]["id"]
    );
    let linked = f.state.current().unwrap();
    let person = linked.account(&a.0, &a.1).unwrap().person();
    assert_eq!(person.accounts().count(), 2);
    assert!(person
        .evidence()
        .iter()
        .any(|e| e.key == graph::EvidenceKey::Override));

    // Validation.
    for (vars, code) in [
        (input("MUST_LINK", &a, &a, "self"), "BAD_USER_INPUT"),
        (
            input("MUST_LINK", &a, &("nope".into(), "nobody".into()), "x"),
            "NOT_FOUND",
        ),
        (input("CANNOT_LINK", &a, &b_key, "   "), "BAD_USER_INPUT"),
    ] {
        let (_, body) = post(&router, Some(ADMIN), ADD, vars).await;
        assert_eq!(first_code(&body), code, "{body}");
    }
    let (_, body) = post(
        &router,
        Some(ADMIN),
        "mutation { removeOverride(id: \"x1\") }",
        json!({}),
    )
    .await;
    assert_eq!(first_code(&body), "BAD_USER_INPUT");

    // The audit log has both the add and the remove, by the admin key.
    let audit = f.store.audit(&store::AuditQuery::default()).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|r| r.action.as_str()).collect();
    assert!(actions.contains(&"override.add") && actions.contains(&"override.remove"));
    assert!(audit
        .iter()
        .all(|r| r.actor.as_deref().is_some_and(|a| a.starts_with("admin:"))));

    // Stored person ids survive a restart: a new state over the same store answers the same.
    let before: BTreeMap<String, String> = f
        .state
        .current()
        .unwrap()
        .persons()
        .flat_map(|p| {
            p.accounts().map(move |a| {
                (
                    format!("{}/{}", a.database(), a.user_id()),
                    p.id().to_string(),
                )
            })
        })
        .collect();
    let again = api::AppState::new(
        f.store.clone(),
        None,
        api::Limits::default(),
        support::resolve_config(&f.firm),
    );
    api::reload(&again).await.unwrap();
    let after: BTreeMap<String, String> = again
        .current()
        .unwrap()
        .persons()
        .flat_map(|p| {
            p.accounts().map(move |a| {
                (
                    format!("{}/{}", a.database(), a.user_id()),
                    p.id().to_string(),
                )
            })
        })
        .collect();
    assert_eq!(before, after);
}

#[tokio::test]
async fn workspace_reach_follows_entries_groups_and_defaults() {
    let f = Fixture::loaded().await;
    let router = api::router(f.state.clone());
    let sim = f.firm.databases[0].clone();
    let db = sim.customer_id.clone();
    let group = sim.groups.values().find(|g| g.members.len() >= 3).unwrap();
    let mut in_group = group.members.iter();
    let (u1, u2) = (
        in_group.next().unwrap().clone(),
        in_group.next().unwrap().clone(),
    );
    let u3 = sim
        .users
        .keys()
        .find(|u| !group.members.contains(*u))
        .unwrap()
        .clone();

    let ws = |id: &str, default: model::DefaultSecurity| model::Workspace {
        database: db.clone(),
        workspace_id: id.into(),
        name: Some(format!("Matter {id}")),
        default_security: default,
        raw: json!({"id": id}).into(),
    };
    let entry =
        |ws: &str, principal: &str, is_group: bool, access: model::Access| model::WorkspaceEntry {
            database: db.clone(),
            workspace_id: ws.into(),
            principal_id: principal.into(),
            is_group,
            access,
        };
    let mut snapshot = support::snapshot(&sim);
    snapshot.workspaces = Some(vec![
        ws("ws-team", model::DefaultSecurity::Private),
        ws("ws-open", model::DefaultSecurity::Public),
        ws("ws-view", model::DefaultSecurity::View),
        ws("ws-locked", model::DefaultSecurity::Private),
    ]);
    snapshot.workspace_entries = Some(vec![
        entry("ws-team", &group.id, true, model::Access::ReadWrite),
        entry("ws-team", &u1, false, model::Access::FullAccess),
        entry("ws-team", &u2, false, model::Access::NoAccess),
        entry("ws-team", &u3, false, model::Access::Read),
        entry("ws-view", &group.id, true, model::Access::NoAccess),
    ]);
    let run = f.store.start_run(std::slice::from_ref(&db)).await.unwrap();
    f.store
        .commit_database(run, &snapshot, &store::CrawlStats::default())
        .await
        .unwrap();
    f.store.finish_run(run).await.unwrap();
    api::reload(&f.state).await.unwrap();

    let reach = |ws: &'static str| {
        let router = router.clone();
        let db = db.clone();
        async move {
            let d = data(
                &router,
                "query($db: String!, $ws: String!) { whoCanReach(database: $db, workspaceId: $ws) { \
                 database access via path account { userId } group { groupId } workspace { workspaceId name defaultSecurity } } }",
                json!({"db": db, "ws": ws}),
            )
            .await;
            d["whoCanReach"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| {
                    assert_eq!(g["workspace"]["workspaceId"], json!(ws));
                    assert_eq!(
                        g["path"].as_array().unwrap().last().unwrap(),
                        &json!(format!("workspace:{db}/{ws}"))
                    );
                    (
                        g["account"]["userId"].as_str().unwrap().to_string(),
                        g.clone(),
                    )
                })
                .collect::<BTreeMap<String, Value>>()
        }
    };

    // ws-team: u1's and u3's own entries decide; u2's own no_access shuts it out; the other
    // members come in through the group.
    let team = reach("ws-team").await;
    let mut expected: BTreeSet<String> = group.members.clone();
    expected.remove(&u2);
    expected.insert(u3.clone());
    assert_eq!(team.keys().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(team[&u1]["access"], json!("full_access"));
    assert_eq!(team[&u1]["via"], json!("EXPLICIT"));
    assert_eq!(team[&u3]["access"], json!("read"));
    for (user, g) in &team {
        if *user != u1 && *user != u3 {
            assert_eq!(g["access"], json!("read_write"));
            assert_eq!(g["via"], json!("GROUP"));
            assert_eq!(g["group"]["groupId"], json!(group.id));
        }
    }

    // ws-open: everyone in the database, by default.
    let open = reach("ws-open").await;
    assert_eq!(open.len(), sim.users.len());
    for g in open.values() {
        assert_eq!(g["access"], json!("read_write"));
        assert_eq!(g["via"], json!("DEFAULT"));
        assert!(g["path"]
            .as_array()
            .unwrap()
            .contains(&json!("default:public")));
        assert_eq!(g["workspace"]["defaultSecurity"], json!("public"));
    }

    // ws-view: the group's no_access entry beats the default for its members.
    let view = reach("ws-view").await;
    let outsiders: BTreeSet<String> = sim
        .users
        .keys()
        .filter(|u| !group.members.contains(*u))
        .cloned()
        .collect();
    assert_eq!(view.keys().cloned().collect::<BTreeSet<_>>(), outsiders);
    assert!(view.values().all(|g| g["access"] == json!("read")));

    assert!(reach("ws-locked").await.is_empty());
    let (_, body) = post(
        &router,
        Some(READER),
        "query($db: String!) { whoCanReach(database: $db, workspaceId: \"ws-nope\") { access } }",
        json!({"db": db}),
    )
    .await;
    assert_eq!(first_code(&body), "NOT_FOUND");

    // The person's reach carries the workspace grants of their accounts.
    let graph = f.state.current().unwrap();
    let person = graph.account(&db, &u1).unwrap().person();
    let d = data(
        &router,
        "query($id: ID!) { person(id: $id) { reach { access via account { userId } workspace { workspaceId } } } }",
        json!({"id": person.id()}),
    )
    .await;
    let grants = d["person"]["reach"].as_array().unwrap();
    assert!(grants
        .iter()
        .any(|g| g["workspace"]["workspaceId"] == json!("ws-team")
            && g["account"]["userId"] == json!(u1)
            && g["access"] == json!("full_access")));
    assert!(!grants
        .iter()
        .any(|g| g["workspace"]["workspaceId"] == json!("ws-locked")));
    let d = data(&router, "{ databases { id workspaceCount } }", json!({})).await;
    let row = d["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == json!(db))
        .unwrap()
        .clone();
    assert_eq!(row["workspaceCount"], json!(4));
}
