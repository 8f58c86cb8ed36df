//! Resolve: 1,000,000 accounts with 10,000,000 memberships across 20 databases; time to resolve
//! and build the graph, and resident memory per account.
//!
//! Each run happens in a fresh child process (this executable's hidden `resolve-child`
//! command), so the resident-memory figure counts the graph and nothing the other sections left
//! behind. The run itself is [`graph::synthetic::scale_run`]; the section reports the median of
//! the runs beside the goals.

use crate::report::{Figure, Table};
use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Options of the resolve section.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Accounts in the synthetic firm.
    #[arg(long, default_value_t = 1_000_000)]
    pub accounts: usize,
    /// Memberships in the synthetic firm.
    #[arg(long, default_value_t = 10_000_000)]
    pub memberships: usize,
    /// Databases the accounts spread over.
    #[arg(long, default_value_t = 20)]
    pub databases: usize,
    /// Runs, each in a fresh process; the table shows every run and the median.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            accounts: 1_000_000,
            memberships: 10_000_000,
            databases: 20,
            runs: 3,
        }
    }
}

/// Options of one run in a child process.
#[derive(Debug, Clone, clap::Args)]
pub struct ChildArgs {
    #[arg(long)]
    pub accounts: usize,
    #[arg(long)]
    pub memberships: usize,
    #[arg(long)]
    pub databases: usize,
}

/// What one child run reports, as one JSON line on stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunResult {
    accounts: usize,
    memberships: usize,
    persons: usize,
    resolve_seconds: f64,
    bytes_per_account: f64,
    heap_estimate_per_account: f64,
    memory_released: bool,
    phases: Vec<(String, f64)>,
}

/// The child's side: one scale run, its figures as JSON on stdout.
pub fn child(args: &ChildArgs) -> anyhow::Result<()> {
    let report = graph::synthetic::scale_run(args.accounts, args.memberships, args.databases);
    let result = RunResult {
        accounts: report.accounts,
        memberships: report.memberships,
        persons: report.persons,
        resolve_seconds: report.resolve_seconds,
        bytes_per_account: report.bytes_per_account,
        heap_estimate_per_account: report.heap_estimate_per_account,
        memory_released: report.memory_released,
        phases: report
            .phases
            .iter()
            .map(|(name, s)| (name.to_string(), *s))
            .collect(),
    };
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

pub async fn run(args: &Args) -> anyhow::Result<Vec<Figure>> {
    let exe = std::env::current_exe().context("finding the benchmark executable")?;
    println!(
        "\n## Resolve\n\n{} accounts, {} memberships, {} databases; {} runs, each in a fresh process",
        args.accounts,
        args.memberships,
        args.databases,
        args.runs.max(1)
    );
    let mut runs = Vec::new();
    for i in 0..args.runs.max(1) {
        let output = tokio::process::Command::new(&exe)
            .arg("resolve-child")
            .arg("--accounts")
            .arg(args.accounts.to_string())
            .arg("--memberships")
            .arg(args.memberships.to_string())
            .arg("--databases")
            .arg(args.databases.to_string())
            .output()
            .await
            .context("running a resolve child process")?;
        anyhow::ensure!(
            output.status.success(),
            "resolve run {} failed: {}",
            i + 1,
            String::from_utf8_lossy(&output.stderr)
        );
        let line = String::from_utf8_lossy(&output.stdout);
        let result: RunResult = serde_json::from_str(line.trim())
            .with_context(|| format!("reading the resolve run's report: {line}"))?;
        runs.push(result);
    }

    let mut table = Table::new([
        "run",
        "accounts",
        "memberships",
        "persons",
        "resolve s",
        "resident B/account",
        "graph heap B/account",
    ]);
    for (i, r) in runs.iter().enumerate() {
        table.row([
            (i + 1).to_string(),
            r.accounts.to_string(),
            r.memberships.to_string(),
            r.persons.to_string(),
            format!("{:.3}", r.resolve_seconds),
            format!("{:.0}", r.bytes_per_account),
            format!("{:.0}", r.heap_estimate_per_account),
        ]);
    }
    let seconds = median(runs.iter().map(|r| r.resolve_seconds).collect());
    let bytes = median(runs.iter().map(|r| r.bytes_per_account).collect());
    let heap = median(runs.iter().map(|r| r.heap_estimate_per_account).collect());
    table.row([
        "median".to_string(),
        String::new(),
        String::new(),
        String::new(),
        format!("{seconds:.3}"),
        format!("{bytes:.0}"),
        format!("{heap:.0}"),
    ]);
    print!("\n{}", table.render());

    // The phases of the median run, so a regression shows where it happened.
    if let Some(median_run) = runs.iter().min_by(|a, b| {
        (a.resolve_seconds - seconds)
            .abs()
            .total_cmp(&(b.resolve_seconds - seconds).abs())
    }) {
        let mut phases = Table::new(["phase (median run)", "seconds", "share"]);
        for (name, s) in &median_run.phases {
            phases.row([
                name.clone(),
                format!("{s:.3}"),
                format!("{:.0}%", 100.0 * s / median_run.resolve_seconds.max(1e-9)),
            ]);
        }
        print!("\n{}", phases.render());
        if !median_run.memory_released {
            println!(
                "(freed heap could not be handed back to the system: resident figures include it)"
            );
        }
    }

    Ok(vec![
        Figure::new(
            "resolve",
            format!("{} accounts: resolve time (median)", args.accounts),
            format!("{seconds:.2} s"),
            "< 3 s",
            seconds < 3.0,
        ),
        Figure::new(
            "resolve",
            "resident memory per account (median)",
            format!("{bytes:.0} B"),
            "< 512 B",
            bytes < 512.0,
        ),
    ])
}
