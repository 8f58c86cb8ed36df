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
    let cli = cli::Cli::parse();
    telemetry::init();
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
