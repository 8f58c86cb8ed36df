//! Resolve time and resident memory per account at scale.
//!
//! `cargo run --release -p graph --example resolve_scale -- [ACCOUNTS] [MEMBERSHIPS] [DATABASES]`
//! (defaults 1,000,000, 10,000,000 and 20). Memory is the growth of the process's resident set
//! from before the input exists to after the graph is built and the input dropped, so it counts
//! everything the graph holds (nodes, interned strings, adjacency, indexes) and nothing else.

use std::time::Instant;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    let accounts = args.first().copied().unwrap_or(1_000_000);
    let memberships = args.get(1).copied().unwrap_or(10_000_000);
    let databases = args.get(2).copied().unwrap_or(20);

    let before = rss_bytes();
    let input = graph::synthetic::synthetic_input(accounts, memberships, databases, 42);
    let with_input = rss_bytes();
    let started = Instant::now();
    // The synthetic firm writes some logins as `ACME\user`: ACME is the firm's login domain.
    let config = graph::ResolveConfig {
        login_domain_aliases: vec![vec!["ACME".into()]],
        ..graph::ResolveConfig::default()
    };
    let g = graph::resolve(input, &config);
    let resolve_s = started.elapsed().as_secs_f64();
    // Give the allocator a moment to return the freed input to the system.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let after = rss_bytes();
    let stats = g.stats();
    for (phase, took) in g.build_phases() {
        println!("phase {phase}: {:.3} s", took.as_secs_f64());
    }
    let per_account = after.saturating_sub(before) as f64 / accounts as f64;
    println!(
        "resolve: {accounts} accounts, {memberships} memberships, {databases} databases -> {} persons, {} groups, {} conflicts",
        stats.persons, stats.groups, stats.conflicts
    );
    println!("resolve_seconds={resolve_s:.3}");
    println!(
        "rss_before_input_mb={:.1} rss_with_input_mb={:.1} rss_after_graph_mb={:.1}",
        before as f64 / 1e6,
        with_input as f64 / 1e6,
        after as f64 / 1e6
    );
    println!(
        "resident_bytes_per_account={per_account:.0} (graph's own estimate {:.0})",
        stats.bytes as f64 / accounts as f64
    );
    // Keep the graph alive until measured.
    assert!(g.persons().len() > 0);
}
