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
    #[command(flatten)]
    Ops(OpsCommand),
}

/// Admin operations on iManage: each is planned from the graph of the store's last harvest,
/// printed, recorded and (unless `--dry-run`) applied one call at a time, with every call in the
/// audit log; the touched databases are harvested again afterwards. Exit status 4 when a call
/// failed (re-run with `idgraph apply --operation ID`).
#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// Offboard a person everywhere: deactivate every active account, then remove every group
    /// membership (exit 4 if a call failed).
    Offboard(OffboardArgs),
    /// Provision a person into databases and groups, reusing the accounts they already have
    /// (exit 4 if a call failed).
    Provision(ProvisionArgs),
    /// Make a group's members exactly a list of logins or emails (exit 4 if a call failed).
    SyncGroup(SyncGroupArgs),
    /// Apply a recorded operation: a dry run's plan, or a re-run after a failure or a crash
    /// (done calls are skipped, interrupted ones checked first; exit 4 if a call failed).
    Apply(ApplyArgs),
    /// List past operations, newest first, or show one with every call.
    Operations(OperationsArgs),
    /// Show the newest audit-log entries, oldest first.
    Audit(AuditArgs),
}

#[derive(Debug, Args)]
pub struct OffboardArgs {
    /// The person's id (as the API shows it, e.g. p42).
    #[arg(long)]
    pub person: String,
    /// Leave group memberships alone (by default every one is removed: deactivation does not).
    #[arg(long)]
    pub keep_groups: bool,
    /// Also delete every account after deactivating it. Permanent; deactivation is preferred.
    #[arg(long)]
    pub delete: bool,
    /// Plan and record only; call nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// Login for new accounts.
    #[arg(long)]
    pub login: String,
    /// Email for new accounts; also how an existing person is found.
    #[arg(long)]
    pub email: String,
    /// First name for new accounts.
    #[arg(long)]
    pub first_name: String,
    /// Last name for new accounts.
    #[arg(long)]
    pub last_name: String,
    /// A database to have an account in; repeatable.
    #[arg(long = "database", value_name = "DB", required = true)]
    pub databases: Vec<String>,
    /// A group to join, as DB:GROUP_ID; repeatable.
    #[arg(long = "group", value_name = "DB:GROUP_ID")]
    pub groups: Vec<String>,
    /// Plan and record only; call nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct SyncGroupArgs {
    /// The database (customer_id).
    #[arg(long)]
    pub database: String,
    /// The group id.
    #[arg(long, value_name = "GROUP_ID")]
    pub group: String,
    /// The authoritative members: one login or email per line (# starts a comment).
    #[arg(long, value_name = "FILE")]
    pub members_file: PathBuf,
    /// Plan and record only; call nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The operation's id.
    #[arg(long, value_name = "ID")]
    pub operation: i64,
}

#[derive(Debug, Args)]
pub struct OperationsArgs {
    /// How many to list.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Show this operation with every call instead.
    #[arg(long, value_name = "ID")]
    pub operation: Option<i64>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// How many entries to show (the newest).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Only the entries of this operation.
    #[arg(long, value_name = "ID")]
    pub operation: Option<i64>,
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
    /// The API shape to serve: v1 (the API summary's, with the workspace extension) or v2
    /// (iManage Work's: discovery at /api, the databases as libraries, X-Auth-Token).
    #[arg(long, value_name = "v1|v2", default_value = "v1", value_parser = parse_api_profile)]
    pub api: imanage_sim::ApiProfile,
}

fn parse_api_profile(s: &str) -> Result<imanage_sim::ApiProfile, String> {
    s.parse().map_err(|e: imanage_sim::Error| e.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every argument that takes a value, of every (sub)command: `command path --long` and its
    /// long name with its value names, lower-cased.
    fn valued_args(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
        for arg in cmd.get_arguments() {
            if !arg.get_action().takes_values() {
                continue;
            }
            let name = arg
                .get_long()
                .map(str::to_string)
                .unwrap_or_else(|| arg.get_id().to_string());
            let values: Vec<String> = arg
                .get_value_names()
                .unwrap_or_default()
                .iter()
                .map(|v| v.to_string())
                .collect();
            let text = format!("{name} {}", values.join(" ")).to_lowercase();
            out.push((format!("{path} --{name}"), text));
        }
        for sub in cmd.get_subcommands() {
            valued_args(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn no_flag_takes_a_secret() {
        let mut args = Vec::new();
        valued_args(&Cli::command(), "idgraph", &mut args);
        assert!(args.len() > 20, "too few arguments found: {args:?}");
        // The simulator's `--client ID:SECRET:SCOPES` registers a made-up application in the
        // simulator (its default is public), not a credential of idgraph's; `--token-ttl-s` is
        // a lifetime.
        let not_secrets = ["idgraph sim --client", "idgraph sim --token-ttl-s"];
        for (arg, text) in &args {
            if not_secrets.contains(&arg.as_str()) {
                continue;
            }
            for word in ["secret", "password", "key", "token", "credential"] {
                assert!(
                    !text.contains(word),
                    "{arg} looks like it takes a secret ({word}): secrets come from the \
                     environment or a _FILE variable only"
                );
            }
        }
    }
}
