//! The command line (names and defaults as in CONTRACTS.md).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "idgraph",
    version,
    about = "Identity graph for iManage Work: who is this person everywhere, and what can they reach?"
)]
pub struct Cli {
    /// Configuration file (default: ./idgraph.toml when it exists). Environment variables
    /// override it, and flags override both.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Zero set-up: a simulated firm, harvested into a SQLite file, resolved and served.
    Demo(DemoArgs),
    /// The iManage Work simulator alone.
    Sim(SimArgs),
    /// One harvest of every configured database into the store, then exit
    /// (0 complete, 3 some databases incomplete, 2 bad configuration).
    Harvest(HarvestArgs),
    /// The service: the API, with harvests on a schedule.
    Serve(ServeArgs),
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Apply the store's migrations.
    Migrate,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address the API listens on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Seed of the simulated firm.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Databases in the simulated firm.
    #[arg(long, default_value_t = 4)]
    pub databases: usize,
    /// People in the simulated firm.
    #[arg(long, default_value_t = 2000)]
    pub people: usize,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: String,
    /// Seed of the synthetic firm; the same seed gives the same firm.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of databases (customer_ids).
    #[arg(long, default_value_t = 4)]
    pub databases: usize,
    /// Number of people.
    #[arg(long, default_value_t = 2000)]
    pub people: usize,
    /// Exactly this many users in every database (people are added as needed).
    #[arg(long)]
    pub users_per_database: Option<usize>,
    /// Groups per database (default: scaled to the size of the firm).
    #[arg(long)]
    pub groups_per_database: Option<usize>,
    /// Latency added to every API call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Probability that an API call fails with 429, 502, 503 or 504.
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Lifetime of access tokens, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_ttl_s: u64,
    /// Write the ground truth (which account belongs to which person) to this JSON file.
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
    /// A registered client as ID:SECRET:SCOPES (scopes space-separated); repeatable.
    /// Default: idgraph:idgraph-secret:admin user
    #[arg(long = "client", value_name = "ID:SECRET:SCOPES")]
    pub clients: Vec<String>,
}

#[derive(Debug, Args)]
pub struct HarvestArgs {
    /// Re-crawls of a database after pagination drift before it is given up as incomplete.
    #[arg(long, default_value_t = 3)]
    pub max_recrawls: u32,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address the API listens on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// How often to harvest, e.g. 15m, 90s, 1h (default 15m, or IDGRAPH_HARVEST_EVERY).
    #[arg(long, value_name = "DURATION")]
    pub harvest_every: Option<String>,
    /// Serve the stored state only; never harvest.
    #[arg(long)]
    pub no_harvest: bool,
    /// Serve without API keys. Anyone who can reach the port can query and change overrides.
    #[arg(long)]
    pub insecure_no_auth: bool,
}
