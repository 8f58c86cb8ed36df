//! Publishing new graphs while requests run: no request fails, and no answer mixes two graphs.

mod support;

use imanage_sim::firm::SimDatabase;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{Fixture, READER};

/// Resolves a graph from simulated databases, directly (no store).
fn resolve(databases: &[SimDatabase], config: &graph::ResolveConfig) -> graph::Graph {
    let mut input = graph::Input {
        accounts: vec![],
        groups: vec![],
        memberships: vec![],
        workspaces: vec![],
        workspace_entries: vec![],
        overrides: vec![],
        previous: graph::PersonIds::default(),
    };
    for db in databases {
        let s = support::snapshot(db);
        input.accounts.extend(s.accounts);
        input.groups.extend(s.groups);
        input.memberships.extend(s.memberships);
    }
    graph::resolve(input, config)
}

/// What one answer says about the graph it came from; every figure is read by a different
/// resolver, so an implementation that looked the graph up per field could mix two.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Signature {
    accounts: u64,
    per_database: Vec<u64>,
    persons: u64,
    first_ids: Vec<String>,
}

const QUERY: &str = "query Swap { graph { accounts } databases { id accountCount } \
    persons(first: 5) { totalCount edges { node { id } } } }";

fn signature(data: &Value) -> Signature {
    Signature {
        accounts: data["graph"]["accounts"].as_u64().unwrap(),
        per_database: data["databases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["accountCount"].as_u64().unwrap())
            .collect(),
        persons: data["persons"]["totalCount"].as_u64().unwrap(),
        first_ids: data["persons"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_string())
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swapping_graphs_under_load_never_mixes_answers() {
    let f = Fixture::loaded().await;
    let config = support::resolve_config(&f.firm);

    // Graph A: the whole firm. Graph B: the firm with a fifth of the first database's users
    // gone, so every figure of the signature differs.
    let full = f.firm.databases.clone();
    let mut trimmed = full.clone();
    let victims: Vec<String> = trimmed[0].users.keys().step_by(5).cloned().collect();
    for v in &victims {
        trimmed[0].users.remove(v);
        for g in trimmed[0].groups.values_mut() {
            g.members.remove(v);
        }
    }
    let statuses = f.store.database_statuses().await.unwrap();

    // Learn the answer each graph gives. Resolution is deterministic, so every later
    // publication of the same source answers the same.
    let router = api::router(f.state.clone());
    let mut expected = Vec::new();
    for source in [&full, &trimmed] {
        f.state.publish(resolve(source, &config), statuses.clone());
        let data = support::data(&router, QUERY, json!({})).await;
        expected.push(signature(&data));
    }
    assert_ne!(expected[0], expected[1]);
    assert_eq!(
        expected[0].accounts,
        expected[0].per_database.iter().sum::<u64>()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let router = router.clone();
        let stop = stop.clone();
        let answers = answers.clone();
        let expected = expected.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = [0usize; 2];
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = support::post(&router, Some(READER), QUERY, json!({})).await;
                assert_eq!(status, 200, "{body}");
                assert!(body.get("errors").is_none(), "failed answer: {body}");
                let sig = signature(&body["data"]);
                let which = expected.iter().position(|e| *e == sig).unwrap_or_else(|| {
                    panic!("mixed answer {sig:?}, expected one of {expected:?}")
                });
                seen[which] += 1;
                answers.fetch_add(1, Ordering::Relaxed);
                // A oneshot request never waits on anything, so without this the task would
                // never give its worker back and the runtime's timers would not advance.
                tokio::task::yield_now().await;
            }
            seen
        }));
    }

    // Publish alternately, as fast as resolving allows, for a while.
    let mut publications = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        let source = if publications % 2 == 0 {
            &trimmed
        } else {
            &full
        };
        let g = resolve(source, &config);
        f.state.publish(g, statuses.clone());
        publications += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut seen = [0usize; 2];
    for t in tasks {
        let s = t.await.unwrap();
        seen[0] += s[0];
        seen[1] += s[1];
    }
    println!(
        "{publications} publications, {} answers ({} from A, {} from B)",
        answers.load(Ordering::Relaxed),
        seen[0],
        seen[1]
    );
    assert!(publications >= 4);
    assert!(seen[0] > 0 && seen[1] > 0, "both graphs answered: {seen:?}");
}
