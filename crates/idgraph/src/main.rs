//! `idgraph`: the identity graph for iManage Work. See `idgraph --help`.

mod cli;
mod commands;
mod config;
// Read by the tests only (the README's and the compose file's checks).
#[cfg_attr(not(test), allow(dead_code))]
mod env_vars;
mod replica;
mod telemetry;

use clap::Parser;
use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: a harvest allocates and frees millions of short-lived
/// strings across threads, and glibc's allocator was about a quarter of its CPU
/// (`docs/BENCHMARKS.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // A resolve of a million accounts takes about two thirds of the time without them where the
    // kernel hands them out to every mapping; `MIMALLOC_ALLOW_THP=1` keeps them.
    let thp_off = graph::memory::disable_transparent_huge_pages();
    let cli = cli::Cli::parse();
    telemetry::init();
    tracing::debug!(thp_off, "transparent huge pages");
    match commands::run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            if err.is::<commands::BadConfig>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
