//! The acceptance test: five databases of 20,000 users each, crawled concurrently under the
//! shared cap with 10% of calls failing and tokens living five seconds, must yield every user
//! record exactly once.

mod support;

use futures::future::join_all;
use futures::StreamExt;
use imanage::ClientConfig;
use imanage_sim::firm::FirmSpec;
use imanage_sim::SimConfig;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_databases_of_20000_users_under_faults_and_short_tokens() {
    let started = Instant::now();
    let firm = FirmSpec {
        databases: 5,
        users_per_database: Some(20_000),
        ..FirmSpec::default()
    };
    let sim = start_sim(SimConfig {
        firm,
        clients: clients(),
        latency_ms: 0,
        fault_rate: 0.10,
        token_ttl_s: 5,
        ..SimConfig::default()
    })
    .await;
    let generated = started.elapsed();
    let snapshot = sim.handle.snapshot();
    assert_eq!(snapshot.len(), 5);

    // The documented defaults throughout: page size 1000, cap 8, the default retry policy.
    let client = imanage::Client::new(ClientConfig {
        retry: imanage::RetryPolicy::default(),
        ..config_for(&sim.base_url(), ADMIN_ID, ADMIN_SECRET)
    })
    .expect("config");
    let crawl_started = Instant::now();
    let crawls = join_all(snapshot.iter().map(|db| {
        let client = client.clone();
        let customer = db.customer_id.clone();
        async move {
            let (users, pages) = drain(client.list_users(&customer)).await;
            (customer, users, pages)
        }
    }))
    .await;
    let users_done = crawl_started.elapsed();

    // Then groups and every group's members, many lists at once: the cap of 8 is what holds
    // them back.
    let memberships = join_all(snapshot.iter().map(|db| {
        let client = client.clone();
        let customer = db.customer_id.clone();
        async move {
            let (groups, group_pages) = drain(client.list_groups(&customer)).await;
            let group_pages = group_pages.len() as u64;
            let lists = futures::stream::iter(groups.into_iter().map(|g| {
                let client = client.clone();
                let customer = customer.clone();
                async move {
                    let (members, pages) = drain(client.list_group_members(&customer, &g.id)).await;
                    let ids: BTreeSet<String> = members.into_iter().map(|m| m.user_id).collect();
                    (g.id, ids, pages.len() as u64)
                }
            }))
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
            (customer, lists, group_pages)
        }
    }))
    .await;
    let crawl = crawl_started.elapsed();

    for ((customer, users, pages), db) in crawls.iter().zip(&snapshot) {
        assert_eq!(customer, &db.customer_id);
        let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
        let unique: BTreeSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "{customer}: a user came twice");
        let want: BTreeSet<&str> = db.users.keys().map(String::as_str).collect();
        assert_eq!(unique, want, "{customer}: every user exactly once");
        assert_eq!(
            pages.len(),
            20,
            "{customer}: 20,000 users in 20 pages of 1000"
        );
    }
    let mut groups = 0;
    let mut pages_read = 100;
    for ((customer, lists, group_pages), db) in memberships.iter().zip(&snapshot) {
        assert_eq!(lists.len(), db.groups.len(), "{customer}: every group");
        for (gid, members, pages) in lists {
            assert_eq!(members, &db.groups[gid].members, "{customer}/{gid}");
            pages_read += pages;
        }
        pages_read += group_pages;
        groups += lists.len();
    }
    let stats = client.stats();
    let sim_stats = sim.handle.stats();
    assert!(sim_stats.total_faults() > 0, "faults were injected");
    assert_eq!(
        stats.total.calls,
        sim_stats.total_calls(),
        "every call counted"
    );
    assert_eq!(
        stats.total.calls,
        pages_read + stats.total.retries.total(),
        "one call per page plus one per retry"
    );
    if crawl > Duration::from_secs(5) {
        assert!(sim_stats.tokens_issued >= 2, "the 5s token was renewed");
    }
    assert_eq!(
        stats.max_in_flight, 8,
        "the shared cap is reached, never exceeded"
    );
    eprintln!(
        "acceptance: 5 x 20,000 users, {groups} groups; firm generated in {:.1}s; users crawled \
         in {:.1}s, everything in {:.1}s; {} API calls, {} retries ({} faults injected), {} \
         tokens issued, max {} in flight; total {:.1}s",
        generated.as_secs_f64(),
        users_done.as_secs_f64(),
        crawl.as_secs_f64(),
        stats.total.calls,
        stats.total.retries.total(),
        sim_stats.total_faults(),
        sim_stats.tokens_issued,
        stats.max_in_flight,
        started.elapsed().as_secs_f64()
    );
    assert!(crawl < Duration::from_secs(60), "the crawl took {crawl:?}");
}
