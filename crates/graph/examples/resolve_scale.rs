//! Resolve time and resident memory per account at scale ([`graph::synthetic::scale_run`]).
//!
//! `cargo run --release -p graph --example resolve_scale -- [ACCOUNTS] [MEMBERSHIPS] [DATABASES]`
//! (defaults 1,000,000, 10,000,000 and 20). Memory is the growth of the process's resident set
//! from before the input exists to after the graph is built, the input dropped and the freed
//! heap handed back to the system, so it counts everything the graph holds (nodes, interned
//! strings, adjacency, indexes) and nothing else.
//!
//! With `strings` as the first argument it times [`graph::resolve`] on the string-keyed form of
//! the same firm instead (memberships as `(database, group id, user id)` rows), time only.

fn main() {
    let strings = std::env::args().nth(1).as_deref() == Some("strings");
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    let accounts = args.first().copied().unwrap_or(1_000_000);
    let memberships = args.get(1).copied().unwrap_or(10_000_000);
    let databases = args.get(2).copied().unwrap_or(20);
    if strings {
        let input = graph::synthetic::synthetic_input(accounts, memberships, databases, 42);
        let config = graph::ResolveConfig {
            login_domain_aliases: vec![vec!["ACME".into()]],
            ..graph::ResolveConfig::default()
        };
        let started = std::time::Instant::now();
        let g = graph::resolve(input, &config);
        let seconds = started.elapsed().as_secs_f64();
        for (phase, took) in g.build_phases() {
            println!("phase {phase}: {:.3} s", took.as_secs_f64());
        }
        println!(
            "string-keyed resolve_seconds={seconds:.3} persons={}",
            g.stats().persons
        );
        return;
    }
    println!(
        "{}",
        graph::synthetic::scale_run(accounts, memberships, databases)
    );
}
