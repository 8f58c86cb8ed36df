//! Admin operations on iManage Work, planned and audited: offboard a person everywhere,
//! provision a person into several databases and groups, sync a group's members from an
//! authoritative list.
//!
//! Every operation goes **plan, then apply**:
//!
//! 1. **Plan** ([`plan::offboard`], [`plan::provision`], [`plan::sync_group`], or the
//!    [`Operator`] methods of the same names): the identity graph says which accounts and
//!    memberships are involved, and the [`Plan`] lists every discrete API call in order, plus
//!    the [`Problem`]s planning would not guess about. Planning calls nothing.
//! 2. **Record** ([`Operator::record`]): the plan is stored (status `planned`) and audited. A dry
//!    run stops here; the plan can be applied later by its id.
//! 3. **Apply** ([`Operator::apply`]): the calls run one at a time under the client's retry
//!    rules. Each step is marked `started` before its call and `done` or `failed` after it,
//!    together with an audit entry (who, when, which call, the result). The first failure
//!    stops the apply; the report says what is done, what failed (with the upstream error) and
//!    what was not attempted. Afterwards the touched databases are harvested again, so the next
//!    graph shows the result.
//!
//! An apply can be **re-run** after a crash or a failure: done steps are skipped, and a step left
//! `started` (its outcome unknown) or `failed` is checked against iManage's real state before it
//! is repeated, so no user or membership is ever made twice. One apply at a time holds an
//! operation, under a lease that a heartbeat renews ([`OperatorOptions::lease`]).
//!
//! Writes need the `admin` role at the API; this crate records the actor it is given. The
//! iManage token needs the `admin` scope: a `user`-scope token gets 403 on the first write,
//! reported as a failed step with kind `forbidden`.
//!
//! Wiring a mutation (what `idgraph offboard` does, and what `offboardPerson` should do):
//!
//! ```no_run
//! # async fn mutation(operator: ops::Operator, graph: &graph::Graph) -> ops::Result<()> {
//! let plan = operator.plan_offboard(graph, "p42", ops::OffboardOptions::default())?;
//! let dry_run = false;
//! // In a task of its own, so a dropped request cannot cancel an apply halfway.
//! let report = tokio::spawn(async move {
//!     operator.run(&plan, "admin-key:alice", dry_run, &()).await
//! })
//! .await
//! .expect("the apply task ran")?;
//! // report.status, report.steps (done / failed with the upstream error / not attempted);
//! // then reload the graph (the touched databases were harvested again).
//! # Ok(()) }
//! ```

mod error;
mod execute;
pub mod plan;
mod report;

pub use error::{Error, Result};
pub use execute::{CallError, CallResult};
pub use plan::{
    Call, GroupTarget, OffboardOptions, OperationKind, Plan, Problem, ProblemKind, ProvisionInput,
    Request, Step, UserRef,
};
pub use report::{
    format_time, render_audit, HarvestSummary, HarvestedDatabase, OperationReport,
    OperationSummary, StepReport, StepState,
};
pub use store::{AuditQuery, AuditRecord, OperationId, OperationQuery, OperationStatus};

use harvest::{HarvestOptions, Harvester};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use store::{AuditEntry, Claim, NewOperation, NewOperationStep, StepFinish, StepStatus, Store};
use tracing::{info, instrument, warn};

/// Receives an apply's progress as it happens; every method has a no-op default.
pub trait ApplyProgress: Send + Sync {
    /// A step that an earlier apply finished, skipped now.
    fn step_skipped(&self, _step: &Step) {}
    /// A step is about to make its call (it is recorded `started`).
    fn step_started(&self, _step: &Step) {}
    /// The call answered; the outcome is not recorded yet. (Tests stop here to play a crash
    /// between a call and its record.)
    fn call_returned(&self, _step: &Step, _outcome: &Result<CallResult, CallError>) {}
    /// The outcome is recorded, with its audit entry.
    fn step_finished(&self, _step: &Step, _outcome: &Result<CallResult, CallError>) {}
}

impl ApplyProgress for () {}

/// How the operator applies.
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    /// How long an apply may stay silent before another may take its operation over. The
    /// heartbeat renews the claim four times per lease, so only a dead (or frozen) process
    /// loses it; re-running a crashed apply waits until its lease has run out.
    pub lease: Duration,
    /// Harvest the touched databases after an apply (default true), so the next graph shows
    /// the result.
    pub reharvest: bool,
}

impl Default for OperatorOptions {
    fn default() -> Self {
        OperatorOptions {
            lease: Duration::from_secs(60),
            reharvest: true,
        }
    }
}

/// Plans, records, applies and reports operations. Cheap to clone.
#[derive(Clone)]
pub struct Operator {
    client: Arc<imanage::Client>,
    store: Store,
    harvest: HarvestOptions,
    options: OperatorOptions,
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator")
            .field("client", &self.client)
            .field("store", &self.store)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(Error::Encode)
}

impl Operator {
    /// An operator writing through `client`, recording in `store`, and re-harvesting with
    /// `harvest` (its `databases` are replaced by the touched ones on each apply, and its
    /// `page_size` by the client's, which the harvester needs to spot short pages).
    pub fn new(client: Arc<imanage::Client>, store: Store, harvest: HarvestOptions) -> Self {
        let harvest = HarvestOptions {
            page_size: client.config().page_size,
            ..harvest
        };
        Operator {
            client,
            store,
            harvest,
            options: OperatorOptions::default(),
        }
    }

    /// The same operator with other options.
    pub fn with_options(mut self, options: OperatorOptions) -> Self {
        self.options = options;
        self
    }

    /// The store operations are recorded in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Plans offboarding a person (see [`plan::offboard`]).
    pub fn plan_offboard(
        &self,
        graph: &graph::Graph,
        person_id: &str,
        options: OffboardOptions,
    ) -> Result<Plan> {
        plan::offboard(graph, person_id, options)
    }

    /// Plans provisioning a person (see [`plan::provision`]).
    pub fn plan_provision(&self, graph: &graph::Graph, input: ProvisionInput) -> Result<Plan> {
        plan::provision(graph, input)
    }

    /// Plans syncing a group to an authoritative list of logins or emails (see
    /// [`plan::sync_group`]).
    pub fn plan_sync_group(
        &self,
        graph: &graph::Graph,
        database: &str,
        group_id: &str,
        members: &[String],
    ) -> Result<Plan> {
        plan::sync_group(graph, database, group_id, members)
    }

    /// Stores `plan` as an operation in status `planned`, audited as `operation.plan` by
    /// `actor`. No call is made.
    #[instrument(skip_all, fields(kind = %plan.kind, steps = plan.steps.len()))]
    pub async fn record(&self, plan: &Plan, actor: &str) -> Result<OperationReport> {
        let new = NewOperation {
            kind: plan.kind.as_str().to_string(),
            summary: plan.summary.clone(),
            request: to_json(&plan.request)?,
            problems: to_json(&plan.problems)?,
            steps: plan
                .steps
                .iter()
                .map(|s| {
                    Ok(NewOperationStep {
                        database: s.call.database().to_string(),
                        call: to_json(&s.call)?,
                        note: Some(s.note.clone()),
                    })
                })
                .collect::<Result<_>>()?,
        };
        let record = self.store.create_operation(&new, Some(actor)).await?;
        info!(operation_id = record.id, "operation planned");
        OperationReport::from_record(record, None)
    }

    /// Records `plan` and, unless `dry_run`, applies it: the one call behind each of the API's
    /// mutations. A dry run returns the recorded plan with every step not attempted.
    pub async fn run(
        &self,
        plan: &Plan,
        actor: &str,
        dry_run: bool,
        progress: &dyn ApplyProgress,
    ) -> Result<OperationReport> {
        let recorded = self.record(plan, actor).await?;
        if dry_run {
            return Ok(recorded);
        }
        self.apply_with(recorded.id, actor, progress).await
    }

    /// Applies (or re-applies) operation `id` as `actor`; see [`Operator::apply_with`].
    pub async fn apply(&self, id: OperationId, actor: &str) -> Result<OperationReport> {
        self.apply_with(id, actor, &()).await
    }

    /// Applies operation `id` as `actor`, telling `progress` about each step.
    ///
    /// Steps run one at a time, in order. Done steps (from an earlier apply) are skipped; a step
    /// that is `started` or `failed` from an earlier apply is verified against iManage before
    /// its call is repeated. The first failure stops the apply. Every outcome is recorded with
    /// its audit entry before the next call. Then the touched databases are harvested again.
    ///
    /// Upstream failures are in the report (status `failed`), not an `Err`. An `Err` means the
    /// operator could not go on: the store failed, another process holds the operation
    /// ([`Error::Busy`]), or this apply lost its claim ([`Error::LeaseLost`]). In each case a
    /// later re-run picks up where the record ends.
    ///
    /// If the future is dropped halfway (a crash, a cancelled request), the step in flight stays
    /// `started` and the operation `running` until its lease runs out; callers that must not be
    /// cancelled (an HTTP handler) should run this in a task of its own.
    #[instrument(skip_all, fields(operation_id = id, actor = %actor))]
    pub async fn apply_with(
        &self,
        id: OperationId,
        actor: &str,
        progress: &dyn ApplyProgress,
    ) -> Result<OperationReport> {
        let existing = self
            .store
            .operation(id)
            .await?
            .ok_or(Error::UnknownOperation(id))?;
        if existing.status == OperationStatus::Completed {
            return OperationReport::from_record(existing, None);
        }
        let token = uuid::Uuid::new_v4().to_string();
        let lease_ms = millis(self.options.lease);
        let now = now_ms();
        let record = match self
            .store
            .claim_operation(id, Some(actor), &token, now.saturating_sub(lease_ms))
            .await?
        {
            Claim::Claimed(record) => *record,
            Claim::Busy {
                applied_by,
                heartbeat_at,
            } => {
                return Err(Error::Busy {
                    id,
                    applied_by,
                    age_ms: heartbeat_at.map_or(0, |h| now - h),
                    lease_ms,
                })
            }
            Claim::Unknown => return Err(Error::UnknownOperation(id)),
        };
        let report = OperationReport::from_record(record, None)?;
        info!(
            steps = report.steps.len(),
            done = report.done,
            "applying operation"
        );

        let failed = {
            let work = self.run_steps(id, &token, actor, &report, progress);
            let heartbeat = self.keep_claim(id, &token);
            tokio::select! {
                failed = work => failed?,
                lost = heartbeat => return Err(lost),
            }
        };
        let status = if failed {
            OperationStatus::Failed
        } else {
            OperationStatus::Completed
        };
        let audit = AuditEntry {
            actor: Some(actor.to_string()),
            action: "operation.apply".into(),
            target: Some(format!("operation:{id}")),
            detail: serde_json::json!({ "kind": report.kind, "summary": report.summary }),
            outcome: status.as_str().into(),
        };
        if !self
            .store
            .finish_operation(id, &token, status, &audit)
            .await?
        {
            return Err(Error::LeaseLost(id));
        }
        let record = self
            .store
            .operation(id)
            .await?
            .ok_or(Error::UnknownOperation(id))?;
        let touched: BTreeSet<String> = record
            .steps
            .iter()
            .filter(|s| s.status != StepStatus::Pending)
            .map(|s| s.database.clone())
            .collect();
        let harvest = if self.options.reharvest && !touched.is_empty() {
            Some(self.reharvest(touched.into_iter().collect()).await)
        } else {
            None
        };
        let report = OperationReport::from_record(record, harvest)?;
        info!(
            status = report.status.as_str(),
            done = report.done,
            failed = report.failed,
            not_attempted = report.not_attempted,
            "operation applied"
        );
        Ok(report)
    }

    /// Runs the steps not done yet, in order, until one fails. True when one failed.
    async fn run_steps(
        &self,
        id: OperationId,
        token: &str,
        actor: &str,
        report: &OperationReport,
        progress: &dyn ApplyProgress,
    ) -> Result<bool> {
        let mut created: HashMap<u32, String> = report
            .steps
            .iter()
            .filter_map(|s| {
                s.result
                    .as_ref()
                    .and_then(CallResult::created_user_id)
                    .map(|u| (s.index, u.to_string()))
            })
            .collect();
        for s in &report.steps {
            let step = Step {
                index: s.index,
                call: s.call.clone(),
                note: s.note.clone(),
            };
            // Anything but a clean slate may have taken effect already: check before calling.
            let verify = match s.state {
                StepState::Done => {
                    progress.step_skipped(&step);
                    continue;
                }
                StepState::NotAttempted => false,
                StepState::Interrupted | StepState::Failed => true,
            };
            if !self.store.start_operation_step(id, s.index, token).await? {
                return Err(Error::LeaseLost(id));
            }
            progress.step_started(&step);
            let outcome = execute::execute(&self.client, &step.call, &created, verify).await;
            progress.call_returned(&step, &outcome);
            let (finish, outcome_name) = match &outcome {
                Ok(result) => (
                    StepFinish {
                        status: StepStatus::Done,
                        result: Some(to_json(result)?),
                        error: None,
                        created_user_id: result.created_user_id().map(str::to_owned),
                    },
                    if result.changed() { "ok" } else { "already" },
                ),
                Err(error) => (
                    StepFinish {
                        status: StepStatus::Failed,
                        result: None,
                        error: Some(to_json(error)?),
                        created_user_id: None,
                    },
                    "error",
                ),
            };
            let audit = AuditEntry {
                actor: Some(actor.to_string()),
                action: step.call.action().into(),
                target: Some(format!("operation:{id}")),
                detail: serde_json::json!({
                    "operation_id": id,
                    "step": step.index,
                    "database": step.call.database(),
                    "call": &step.call,
                    "request": step.call.to_string(),
                    "verified_first": verify,
                    "result": &finish.result,
                    "error": &finish.error,
                }),
                outcome: outcome_name.into(),
            };
            if !self
                .store
                .finish_operation_step(id, s.index, token, &finish, &audit)
                .await?
            {
                return Err(Error::LeaseLost(id));
            }
            progress.step_finished(&step, &outcome);
            match outcome {
                Ok(result) => {
                    if let Some(user_id) = result.created_user_id() {
                        created.insert(s.index, user_id.to_string());
                    }
                }
                Err(error) => {
                    warn!(step = s.index, call = %step.call, %error, "step failed; stopping");
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Renews the claim until it is lost; returns only then. Store errors are logged and
    /// retried at the next beat: the step writes check the claim anyway.
    async fn keep_claim(&self, id: OperationId, token: &str) -> Error {
        let every = (self.options.lease / 4).max(Duration::from_millis(10));
        loop {
            tokio::time::sleep(every).await;
            match self.store.heartbeat_operation(id, token).await {
                Ok(true) => {}
                Ok(false) => return Error::LeaseLost(id),
                Err(e) => warn!(operation_id = id, error = %e, "heartbeat failed"),
            }
        }
    }

    /// Harvests `databases` again.
    async fn reharvest(&self, databases: Vec<String>) -> HarvestSummary {
        let options = HarvestOptions {
            databases,
            ..self.harvest.clone()
        };
        let harvester = Harvester::new(self.client.clone(), self.store.clone(), options);
        match harvester.run(&()).await {
            Ok(report) => HarvestSummary {
                run_id: Some(report.run_id),
                databases: report
                    .databases
                    .iter()
                    .map(|d| HarvestedDatabase {
                        database: d.database.clone(),
                        complete: d.is_complete(),
                        cause: match &d.outcome {
                            harvest::Outcome::Complete { .. } => None,
                            harvest::Outcome::Incomplete { cause } => Some(cause.clone()),
                        },
                    })
                    .collect(),
                error: None,
            },
            Err(e) => {
                warn!(error = %e, "re-harvest after the apply failed");
                HarvestSummary {
                    run_id: None,
                    databases: Vec::new(),
                    error: Some(e.to_string()),
                }
            }
        }
    }

    /// One operation with its steps.
    pub async fn operation(&self, id: OperationId) -> Result<Option<OperationReport>> {
        match self.store.operation(id).await? {
            Some(r) => Ok(Some(OperationReport::from_record(r, None)?)),
            None => Ok(None),
        }
    }

    /// Past operations matching `query`, newest first.
    pub async fn operations(&self, query: &OperationQuery) -> Result<Vec<OperationSummary>> {
        self.store
            .operations(query)
            .await?
            .into_iter()
            .map(OperationSummary::from_record)
            .collect()
    }

    /// Audit entries matching `query`, oldest first from its cursor. Operations write
    /// `operation.plan`, `operation.apply` and one `imanage.*` entry per call (e.g.
    /// `imanage.user.deactivate`), each with target `operation:ID`.
    pub async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        Ok(self.store.audit(query).await?)
    }

    /// The newest `query.limit` audit entries matching `query`, oldest first.
    pub async fn latest_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        Ok(self.store.latest_audit(query).await?)
    }
}

/// Loads the store's current state, resolves the graph with the stored person ids (so ids stay
/// stable), and saves the new assignment, as the API's reload does. For the CLI and tests,
/// which need the same graph the service would show.
pub async fn load_graph(store: &Store, config: &graph::ResolveConfig) -> Result<graph::Graph> {
    let stored = store.load_state().await?;
    let input = graph::Input {
        accounts: stored.accounts,
        groups: stored.groups,
        memberships: stored.memberships,
        workspaces: stored.workspaces,
        workspace_entries: stored.workspace_entries,
        overrides: stored.overrides,
        previous: graph::PersonIds {
            by_account: stored.persons.by_account,
            aliases: stored.persons.aliases,
            created: stored.persons.created,
            next_seq: stored.persons.next_seq,
        },
    };
    let config = config.clone();
    // Resolution is CPU-bound for seconds on a large firm; keep it off the async workers.
    let graph = tokio::task::spawn_blocking(move || graph::resolve(input, &config))
        .await
        .map_err(|e| Error::Resolve(e.to_string()))?;
    let ids = graph.person_ids();
    store
        .save_persons(&store::PersonIds {
            by_account: ids.by_account,
            aliases: ids.aliases,
            created: ids.created,
            next_seq: ids.next_seq,
        })
        .await?;
    Ok(graph)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API runs operations inside async-graphql resolvers and spawned tasks, which need
    /// `Send` futures and a `Send + Sync` operator; this fails to compile if that breaks.
    #[allow(dead_code)]
    fn futures_are_send(operator: &Operator, plan: &Plan, store: &Store) {
        fn send<T: Send>(_: &T) {}
        fn shared<T: Send + Sync + Clone + 'static>() {}
        shared::<Operator>();
        send(&operator.run(plan, "a", false, &()));
        send(&operator.apply(1, "a"));
        send(&operator.operations(&OperationQuery::default()));
        send(&operator.audit(&AuditQuery::default()));
        send(&load_graph(store, &graph::ResolveConfig::default()));
    }
}
