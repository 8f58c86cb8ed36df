//! idgraph's benchmarks, one command: `cargo run --release -p idgraph-bench -- all`.
//!
//! Every section builds what it measures (a simulated firm, a store, a served graph), measures it
//! side by side with its bound or baseline in the same run, prints a table, and returns the
//! figures that have goals; `all` ends with one table of every goal, met or missed.
//!
//! `all` runs each section in a child process of its own, one after the other: a section then
//! starts as it would alone (a fresh heap, no threads or caches left by the one before), so the
//! figures of `all` and of a section run by itself measure the same thing.

mod harvest;
mod query;
mod report;
mod resolve;
mod scratch;
mod store;

use clap::{Parser, Subcommand};
use report::Figure;
use std::io::IsTerminal;
use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: a harvest allocates and frees millions of short-lived
/// strings across threads, and glibc's allocator was about a quarter of its CPU
/// (`docs/BENCHMARKS.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "idgraph-bench", about = "idgraph's benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Write the section's figures to this file (JSON) instead of printing the goals table:
    /// how `all` collects the figures of the sections it runs in child processes.
    #[arg(long, global = true, hide = true)]
    figures_to: Option<std::path::PathBuf>,
}

/// The sections `all` runs, in order, each in a child process.
const SECTIONS: [&str; 4] = ["harvest", "store", "resolve", "query"];

/// Runs every section in a child process of its own and prints every goal at the end.
fn run_all() -> anyhow::Result<Vec<Figure>> {
    use anyhow::Context as _;
    report::machine_banner();
    let exe = std::env::current_exe().context("finding the benchmark executable")?;
    let dir = tempfile::tempdir().context("creating a directory for the sections' figures")?;
    let mut figures = Vec::new();
    for section in SECTIONS {
        let path = dir.path().join(format!("{section}.json"));
        // The child's tables go straight to this process's output, as the section prints them.
        let status = std::process::Command::new(&exe)
            .arg(section)
            .arg("--figures-to")
            .arg(&path)
            .status()
            .with_context(|| format!("starting the {section} section"))?;
        anyhow::ensure!(status.success(), "the {section} section failed ({status})");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the {section} section's figures"))?;
        let mut section_figures: Vec<Figure> = serde_json::from_str(&text)
            .with_context(|| format!("parsing the {section} section's figures"))?;
        figures.append(&mut section_figures);
    }
    report::print_goals(&figures);
    Ok(figures)
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
    // As `idgraph` does: see `graph::memory::disable_transparent_huge_pages`.
    graph::memory::disable_transparent_huge_pages();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // As `idgraph` does: colours only on a terminal, and not with `NO_COLOR`.
        .with_ansi(
            std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .init();
    let cli = Cli::parse();
    if let Command::All = &cli.command {
        return match run_all() {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("idgraph-bench: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
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
            Command::All => unreachable!("handled before the runtime starts"),
            Command::Harvest(args) => figures.extend(harvest::run(&args).await?),
            Command::Store(args) => figures.extend(store::run(&args).await?),
            Command::Resolve(args) => figures.extend(resolve::run(&args).await?),
            Command::Query(args) => figures.extend(query::run(&args).await?),
            Command::ResolveChild(_) => unreachable!("handled before the runtime starts"),
        }
        match &cli.figures_to {
            Some(path) => std::fs::write(path, serde_json::to_vec(&figures)?)?,
            None => report::print_goals(&figures),
        }
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
