//! Resolve time and resident memory per account at scale ([`graph::synthetic::scale_run`]).
//!
//! `cargo run --release -p graph --example resolve_scale -- [ACCOUNTS] [MEMBERSHIPS] [DATABASES]`
//! (defaults 1,000,000, 10,000,000 and 20). Memory is the growth of the process's resident set
//! from before the input exists to after the graph is built, the input dropped and the freed
//! heap handed back to the system, so it counts everything the graph holds (nodes, interned
//! strings, adjacency, indexes) and nothing else.

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    let accounts = args.first().copied().unwrap_or(1_000_000);
    let memberships = args.get(1).copied().unwrap_or(10_000_000);
    let databases = args.get(2).copied().unwrap_or(20);
    println!(
        "{}",
        graph::synthetic::scale_run(accounts, memberships, databases)
    );
}
