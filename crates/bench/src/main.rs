//! idgraph's benchmarks, one command: `cargo run --release -p idgraph-bench -- all`.
//!
//! Every section builds what it measures (a simulated firm, a store, a served graph), measures it
//! side by side with its bound or baseline in the same run, prints a table, and returns the
//! figures that have goals; `all` ends with one table of every goal, met or missed.

mod harvest;
mod query;
mod report;
mod resolve;
mod scratch;
mod store;

use clap::{Parser, Subcommand};
use report::Figure;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "idgraph-bench", about = "idgraph's benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every section below, in order, then a summary of every goal.
    All,
    /// Harvest wall time and calls against the lower bound, at several concurrency caps.
    Harvest(harvest::Args),
    /// Store write throughput (PostgreSQL and SQLite) and the cost of a 1% re-harvest.
    Store(store::Args),
    /// Resolve time and resident memory per account at scale.
    Resolve(resolve::Args),
    /// `person(login:)` and a listing query under fixed-rate load, beside a plain-SQL baseline.
    Query(query::Args),
    /// One resolve run in this process (the resolve section starts it in a child process).
    #[command(hide = true)]
    ResolveChild(resolve::ChildArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Command::ResolveChild(args) = &cli.command {
        // No runtime and nothing else in this process: its resident set is the graph's.
        return match resolve::child(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("idgraph-bench resolve-child: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    let result = runtime.block_on(async {
        let mut figures: Vec<Figure> = Vec::new();
        match cli.command {
            Command::All => {
                report::machine_banner();
                figures.extend(harvest::run(&harvest::Args::default()).await?);
                figures.extend(store::run(&store::Args::default()).await?);
                figures.extend(resolve::run(&resolve::Args::default()).await?);
                figures.extend(query::run(&query::Args::default()).await?);
            }
            Command::Harvest(args) => figures.extend(harvest::run(&args).await?),
            Command::Store(args) => figures.extend(store::run(&args).await?),
            Command::Resolve(args) => figures.extend(resolve::run(&args).await?),
            Command::Query(args) => figures.extend(query::run(&args).await?),
            Command::ResolveChild(_) => unreachable!("handled before the runtime starts"),
        }
        report::print_goals(&figures);
        anyhow::Ok(figures)
    });
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("idgraph-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
