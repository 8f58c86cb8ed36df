//! The admin-operation commands: `offboard`, `provision`, `sync-group`, `apply`, `operations`
//! and `audit`. Wiring of the `ops` crate, nothing more: each loads the store's current state,
//! resolves the graph, plans, prints the plan, applies unless `--dry-run`, and prints the report.
//!
//! A child of `commands` (declared there) so it shares that module's store and client set-up.

use super::{bad_config, imanage_client, open_store};
use crate::cli::{
    ApplyArgs, AuditArgs, OffboardArgs, OperationsArgs, OpsCommand, ProvisionArgs, SyncGroupArgs,
};
use crate::config::Config;
use anyhow::Context;
use harvest::HarvestOptions;
use ops::{
    ApplyProgress, CallError, CallResult, OffboardOptions, OperationReport, OperationStatus,
    Operator, Plan, ProvisionInput, Step,
};
use std::process::ExitCode;
use std::sync::Arc;
use store::Store;

/// The exit status when an operation stopped at a failed call (0 when it completed or was a
/// dry run; 2 for bad configuration, 1 for any other error).
const EXIT_STEP_FAILED: u8 = 4;

/// Runs one admin-operation command.
pub(super) async fn run(config: &Config, command: OpsCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(&config.database_url).await?;
    match command {
        OpsCommand::Operations(args) => operations(&store, args).await,
        OpsCommand::Audit(args) => audit(&store, args).await,
        OpsCommand::Offboard(args) => offboard(config, &store, args).await,
        OpsCommand::Provision(args) => provision(config, &store, args).await,
        OpsCommand::SyncGroup(args) => sync_group(config, &store, args).await,
        OpsCommand::Apply(args) => apply(config, &store, args).await,
    }
}

/// Who asked, as the audit log records it: the operating-system user running the command.
fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".to_string());
    format!("cli:{user}")
}

fn operator(config: &Config, store: &Store) -> anyhow::Result<Operator> {
    let client = Arc::new(imanage_client(config)?);
    Ok(Operator::new(
        client,
        store.clone(),
        HarvestOptions {
            page_size: config.imanage.page_size,
            ..HarvestOptions::default()
        },
    ))
}

async fn graph(config: &Config, store: &Store) -> anyhow::Result<graph::Graph> {
    ops::load_graph(store, &config.resolve_config())
        .await
        .context("resolving the graph from the store")
}

/// Prints each step to stderr as it finishes, so a long apply shows where it is.
struct StepLines {
    total: usize,
}

impl ApplyProgress for StepLines {
    fn step_skipped(&self, step: &Step) {
        eprintln!(
            "[{}/{}] already done: {}",
            step.index + 1,
            self.total,
            step.call
        );
    }

    fn step_finished(&self, step: &Step, outcome: &Result<CallResult, CallError>) {
        match outcome {
            Ok(result) => eprintln!(
                "[{}/{}] done: {} ({result})",
                step.index + 1,
                self.total,
                step.call
            ),
            Err(error) => eprintln!(
                "[{}/{}] FAILED: {} ({error})",
                step.index + 1,
                self.total,
                step.call
            ),
        }
    }
}

/// Prints the plan, records it, applies it unless `dry_run`, prints the report.
async fn execute(operator: &Operator, plan: &Plan, dry_run: bool) -> anyhow::Result<ExitCode> {
    print!("{}", plan.render());
    let progress = StepLines {
        total: plan.steps.len(),
    };
    let report = operator.run(plan, &actor(), dry_run, &progress).await?;
    if dry_run {
        println!(
            "dry run: nothing was called; recorded as operation {} (apply it with `idgraph apply --operation {}`)",
            report.id, report.id
        );
        return Ok(ExitCode::SUCCESS);
    }
    finish(&report)
}

fn finish(report: &OperationReport) -> anyhow::Result<ExitCode> {
    print!("{}", report.render());
    Ok(match report.status {
        OperationStatus::Failed => {
            println!(
                "operation {} stopped at a failed call; fix the cause and re-run it with \
                 `idgraph apply --operation {}`",
                report.id, report.id
            );
            ExitCode::from(EXIT_STEP_FAILED)
        }
        _ => ExitCode::SUCCESS,
    })
}

async fn offboard(config: &Config, store: &Store, args: OffboardArgs) -> anyhow::Result<ExitCode> {
    let operator = operator(config, store)?;
    let graph = graph(config, store).await?;
    let plan = operator.plan_offboard(
        &graph,
        &args.person,
        OffboardOptions {
            remove_from_groups: !args.keep_groups,
            delete: args.delete,
        },
    )?;
    drop(graph);
    execute(&operator, &plan, args.dry_run).await
}

async fn provision(
    config: &Config,
    store: &Store,
    args: ProvisionArgs,
) -> anyhow::Result<ExitCode> {
    let groups = args
        .groups
        .iter()
        .map(|g| g.parse())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_config(anyhow::Error::new(e)))?;
    let operator = operator(config, store)?;
    let graph = graph(config, store).await?;
    let plan = operator.plan_provision(
        &graph,
        ProvisionInput {
            login: args.login,
            email: args.email,
            first_name: args.first_name,
            last_name: args.last_name,
            databases: args.databases,
            groups,
        },
    )?;
    drop(graph);
    execute(&operator, &plan, args.dry_run).await
}

/// The entries of a members file: one login or email per line; blank lines and lines starting
/// with `#` are skipped.
fn members(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

async fn sync_group(
    config: &Config,
    store: &Store,
    args: SyncGroupArgs,
) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.members_file)
        .with_context(|| format!("reading {}", args.members_file.display()))?;
    let members = members(&text);
    let operator = operator(config, store)?;
    let graph = graph(config, store).await?;
    let plan = operator.plan_sync_group(&graph, &args.database, &args.group, &members)?;
    drop(graph);
    execute(&operator, &plan, args.dry_run).await
}

async fn apply(config: &Config, store: &Store, args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let operator = operator(config, store)?;
    let total = operator
        .operation(args.operation)
        .await?
        .map_or(0, |r| r.steps.len());
    let report = operator
        .apply_with(args.operation, &actor(), &StepLines { total })
        .await?;
    finish(&report)
}

async fn operations(store: &Store, args: OperationsArgs) -> anyhow::Result<ExitCode> {
    // Listing needs no iManage client; the operator's read side is the store's.
    if let Some(id) = args.operation {
        let record = store
            .operation(id)
            .await?
            .ok_or(ops::Error::UnknownOperation(id))?;
        let report = OperationReport::try_from(record)?;
        print!("{}", report.render());
        return Ok(ExitCode::SUCCESS);
    }
    let listed = store
        .operations(&ops::OperationQuery {
            limit: args.limit,
            ..ops::OperationQuery::default()
        })
        .await?;
    if listed.is_empty() {
        println!("no operations");
    }
    for record in listed {
        println!("{}", ops::OperationSummary::try_from(record)?.render());
    }
    Ok(ExitCode::SUCCESS)
}

async fn audit(store: &Store, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let entries = store
        .latest_audit(&ops::AuditQuery {
            limit: args.limit,
            target: args.operation.map(|id| format!("operation:{id}")),
            ..ops::AuditQuery::default()
        })
        .await?;
    if entries.is_empty() {
        println!("no audit entries");
    }
    for entry in &entries {
        println!("{}", ops::render_audit(entry));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::members;

    #[test]
    fn members_files_skip_blanks_and_comments() {
        assert_eq!(
            members("jdoe\n  # a comment\n\n Jane.Roe@acme.com \r\n"),
            ["jdoe", "Jane.Roe@acme.com"]
        );
    }
}
